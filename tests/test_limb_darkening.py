"""Limb darkening: the Magic et al. (2015) 3D table against its published values, the
interpolation between its models, and the grey-atmosphere fallback outside it."""

from __future__ import annotations

import numpy as np
import pytest

from clinepipe.transits.ld_table import TABLE_BANDS, table_coefficients, table_models
from clinepipe.transits.limbdark import _coefficients, quadratic_ld

#: Magic et al. 2015 (A&A 573, A90) for the Sun in V, as published to three decimals
SUN_V = (0.449, 0.278)


def test_sun_in_v_is_magics_published_value():
    ld = quadratic_ld("V", 5772.0, 4.44, 0.0)
    assert ld.model == "magic2015" and "Magic et al. 2015" in ld.source
    # within half a unit of the last published digit
    assert abs(ld.u1 - SUN_V[0]) <= 5e-4 and abs(ld.u2 - SUN_V[1]) <= 5e-4
    # the grey model's 0.61 / 0.11 is far from it: the table is what is used
    assert abs(_coefficients("V", 5772)[0] - SUN_V[0]) > 0.1


@pytest.mark.parametrize("band", TABLE_BANDS)
def test_interpolation_is_exact_at_every_model(band):
    models = table_models(band)
    assert len(models) == 98
    u1, u2, covered = table_coefficients(band, models[:, 0], models[:, 1], models[:, 2])
    assert covered.all()
    np.testing.assert_allclose(u1, models[:, 3], rtol=0, atol=1e-12)
    np.testing.assert_allclose(u2, models[:, 4], rtol=0, atol=1e-12)


def test_the_solar_model_through_quadratic_ld():
    ld = quadratic_ld("V", 5767.92, 4.44, 0.0)       # the table's solar model itself
    assert ld.u == pytest.approx((0.45027, 0.27706), abs=1e-9)


@pytest.mark.parametrize("band", ["B", "V", "R", "I", "g", "r", "i"])
@pytest.mark.parametrize("logg,feh", [(4.44, 0.0), (4.5, -0.5), (4.0, -1.0)])
def test_between_models_sane_and_monotonic(band, logg, feh):
    teff = np.arange(4000.0, 7001.0, 25.0)
    u1, u2, covered = table_coefficients(band, teff, logg, feh)
    assert covered.sum() >= 40                       # >= 1000 K of a dwarf sequence covered
    # one unbroken run of covered Teff: no holes in the middle of a dwarf row
    edges = np.flatnonzero(np.diff(covered.astype(int)))
    assert edges.size <= 2
    a, b = u1[covered], u2[covered]
    models = table_models(band)
    assert a.min() >= models[:, 3].min() and a.max() <= models[:, 3].max()  # no overshoot
    assert np.all(np.diff(a) < 0)                    # weaker darkening in hotter stars
    assert np.all((a + b > 0) & (a + b < 1))         # limb darker than centre, not black
    assert np.all(np.abs(np.diff(a)) < 0.02)         # continuous: 25 K steps, small changes


def test_logg_and_feh_change_the_coefficients():
    base = quadratic_ld("V", 5500, 4.5, 0.0).u1
    assert quadratic_ld("V", 5500, 4.5, -1.0).u1 < base - 0.05   # metal-poor: less darkening
    assert quadratic_ld("V", 5500, 4.5).u1 == base               # defaults 4.5 and 0.0
    assert quadratic_ld("V", 5500).u == quadratic_ld("V", 5500, 4.5, 0.0).u
    assert quadratic_ld("V", 5500, np.nan, np.nan).u == quadratic_ld("V", 5500).u
    assert "logg unknown, 4.5 assumed" in quadratic_ld("V", 5500).source


@pytest.mark.parametrize("teff,logg,feh,why", [
    (3300.0, 4.9, 0.0, "outside"),        # M dwarf: below the table
    (8000.0, 4.2, 0.0, "outside"),        # A star: above it
    (5772.0, 4.44, 0.8, "outside"),       # far more metal-rich than the table
    (5500.0, 1.5, -2.0, "outside"),       # a hole of the grid (no hot metal-poor giants)
])
def test_grey_fallback_outside_the_table(teff, logg, feh, why):
    ld = quadratic_ld("V", teff, logg, feh)
    assert ld.model == "grey" and ld.source.startswith("grey atmosphere") and why in ld.source
    assert ld.u == _coefficients("V", round(ld.teff))


def test_grey_fallback_for_a_band_not_in_the_table():
    for name in ("clear", "Lum", "CV"):
        ld = quadratic_ld(name, 5772.0, 4.44, 0.0)
        assert ld.model == "grey" and ld.band == "clear"
        assert "band clear not in the Magic et al. 2015" in ld.source


def test_metal_rich_host_at_the_tables_top():
    ld = quadratic_ld("V", 5772.0, 4.44, 0.25)
    assert ld.model == "magic2015" and ld.feh == 0.0 and "+0.25 looked up at 0.0" in ld.source
    assert ld.u == quadratic_ld("V", 5772.0, 4.44, 0.0).u


def test_sloan_and_johnson_aliases_reach_the_table():
    assert quadratic_ld("SG", 5772, 4.44, 0.0).u == quadratic_ld("g", 5772, 4.44, 0.0).u
    assert quadratic_ld("z'", 5772, 4.44, 0.0).model == "magic2015"
    assert quadratic_ld("Johnson U", 5772, 4.44, 0.0).band == "U"
    # redder bands darken less, in the table as in the grey model
    total = [sum(quadratic_ld(b, 5772, 4.44, 0.0).u) for b in "UBVRI"]
    assert total == sorted(total, reverse=True)
