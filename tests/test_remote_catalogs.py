"""Remote catalogs (APASS, UCAC4, Gaia DR3, VSX through Vizier): bands, ids, transformations,
the per-field cache and the failures, all without a network.

Vizier answers are mocked at two levels, as astroquery's own tests do: ``VizierClass.
query_region`` returning small tables shaped like the real answers (fixtures in
``tests/fixtures/catalogs/``, same column names and units as Vizier), and, for the full
astroquery path (request payload, VOTable parsing, HTTP errors), ``requests.Session.request``.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import requests
from astropy.coordinates import Angle
from astropy.table import Table
from astroquery.utils.commons import TableList
from astroquery.vizier import VizierClass

from clinepipe.catalogs import vizier as rc
from clinepipe.catalogs.cone_cache import CACHE_VERSION, RADIUS_STEP_DEG, cone_key
from clinepipe.catalogs.known_variables import known_variables_source
from clinepipe.catalogs.photometric_systems import (
    gaia_to_johnson_cousins,
    sloan_to_cousins_r,
)
from clinepipe.catalogs.sources import catalog_source
from clinepipe.catalogs.types import KnownVariables
from clinepipe.config import config_from_dict
from clinepipe.errors import CatalogUnavailable, UsageError

FIXTURES = Path(__file__).parent / "fixtures" / "catalogs"
TABLES = {
    "II/336/apass9": "apass9_cone.ecsv",
    "I/322A/out": "ucac4_cone.ecsv",
    "I/355/gaiadr3": "gaiadr3_cone.ecsv",
    "B/vsx/vsx": "vsx_cone.ecsv",
}
RA0, DEC0, R0 = 283.80, 36.60, 0.15      # the test field


def fixture_table(table_id: str) -> Table:
    return Table.read(FIXTURES / TABLES[table_id], format="ascii.ecsv")


def make_cfg(tmp_path, source="apass", timeout=30.0, known="vsx"):
    return config_from_dict({
        "catalog": {"source": source, "cache": str(tmp_path / "cache"), "timeout": timeout},
        "known_variables": {"source": known},
    })


def sep_deg(ra1, dec1, ra2, dec2):
    """Separation (deg) as astropy computes it: the fake Vizier must not share the code under test."""
    from astropy.coordinates import angular_separation

    return np.degrees(angular_separation(*(np.radians(np.asarray(v, float))
                                           for v in (ra1, dec1, ra2, dec2))))


class FakeVizier:
    """Stands in for ``VizierClass.query_region``: records each call, answers the fixture
    table trimmed to the cone, as Vizier would."""

    def __init__(self, tables=None, error=None):
        self.tables = tables if tables is not None else {k: fixture_table(k) for k in TABLES}
        self.error = error
        self.calls = []

    def __call__(self, viz, coordinates, radius=None, catalog=None, cache=True, **kwargs):
        c = coordinates.icrs
        self.calls.append({
            "ra": float(c.ra.deg), "dec": float(c.dec.deg), "radius": Angle(radius).deg,
            "catalog": catalog, "columns": list(viz.columns), "row_limit": viz.ROW_LIMIT,
            "timeout": viz.TIMEOUT, "filters": dict(viz.column_filters), "cache": cache,
        })
        if self.error is not None:
            raise self.error
        table = self.tables[catalog]
        ra_col = "RA_ICRS" if "RA_ICRS" in table.colnames else "RAJ2000"
        dec_col = "DE_ICRS" if "DE_ICRS" in table.colnames else "DEJ2000"
        if {ra_col, dec_col} <= set(table.colnames):
            d = sep_deg(np.asarray(table[ra_col], float), np.asarray(table[dec_col], float),
                        self.calls[-1]["ra"], self.calls[-1]["dec"])
            table = table[d <= self.calls[-1]["radius"]]
        return TableList({catalog: table}) if len(table) else TableList({})


@pytest.fixture
def vizier(monkeypatch):
    fake = FakeVizier()

    def query_region(self, *args, **kwargs):
        return fake(self, *args, **kwargs)

    monkeypatch.setattr(VizierClass, "query_region", query_region)
    return fake


# ----------------------------------------------------------------------------- bands and ids

def test_apass_bands_ids_and_r_from_lupton(tmp_path, vizier):
    cfg = make_cfg(tmp_path, "apass")
    provider = catalog_source(cfg)                     # the wiring catalogs.py uses
    assert isinstance(provider, rc.VizierCatalog)
    cat = provider.field(RA0, DEC0, R0)

    assert cat.name == "apass9"
    assert set(cat.mags) == {"B", "V", "g", "r", "i", "R"}
    assert set(cat.errors) == set(cat.mags)
    assert len(cat) == 5                               # the sixth fixture star is 0.4° away
    assert all(isinstance(i, str) for i in cat.ids.tolist())
    k = int(np.flatnonzero(np.isclose(cat.ra, 283.801234))[0])
    assert cat.ids[k] == "APASS9 J283.80123+36.60123"
    assert cat.mags["V"][k] == pytest.approx(12.345)
    assert cat.errors["V"][k] == pytest.approx(0.021)
    assert cat.mags["g"][k] == pytest.approx(12.650)
    assert cat.mags["i"][k] == pytest.approx(11.998)
    # Lupton (2005): R = r - 0.1837 (g - r) - 0.0971, sigma 0.0106
    g, r, eg, er = 12.650, 12.151, 0.025, 0.019
    assert cat.mags["R"][k] == pytest.approx(r - 0.1837 * (g - r) - 0.0971, abs=1e-9)
    assert cat.errors["R"][k] == pytest.approx(
        np.sqrt((1.1837 * er) ** 2 + (0.1837 * eg) ** 2 + 0.0106 ** 2), abs=1e-9)
    # a star without B: NaN, not a fill value
    m = int(np.flatnonzero(np.isclose(cat.ra, 283.9))[0])
    assert np.isnan(cat.mags["B"][m]) and np.isnan(cat.errors["B"][m])
    assert np.isfinite(cat.mags["V"][m])


def test_one_cone_query_per_field_with_unlimited_rows_and_the_configured_timeout(tmp_path, vizier):
    rc.vizier_catalog(make_cfg(tmp_path, "apass", timeout=12.5)).field(RA0, DEC0, R0)
    assert len(vizier.calls) == 1
    call = vizier.calls[0]
    assert call["catalog"] == "II/336/apass9"
    assert call["row_limit"] == -1
    assert call["timeout"] == 12.5
    assert call["cache"] is False                      # astroquery's own cache stays out of it
    assert {"RAJ2000", "DEJ2000", "Vmag", "e_Vmag", "Bmag", "g'mag", "e_r'mag", "i'mag"} <= set(call["columns"])
    assert call["radius"] >= R0                        # the cached cone covers the request
    assert sep_deg(call["ra"], call["dec"], RA0, DEC0) + R0 <= call["radius"] + 1e-9


def test_ucac4_ids_and_apass_bands(tmp_path, vizier):
    cat = rc.vizier_catalog(make_cfg(tmp_path, "ucac4")).field(RA0, DEC0, R0)
    assert vizier.calls[0]["catalog"] == "I/322A/out"
    assert cat.name == "ucac4"
    assert set(cat.mags) == {"B", "V", "g", "r", "i", "R"}
    assert sorted(cat.ids.tolist()) == ["UCAC4 633-062877", "UCAC4 634-064098",
                                        "UCAC4 634-064112", "UCAC4 634-064150"]
    k = cat.ids.tolist().index("UCAC4 634-064112")
    assert cat.mags["V"][k] == pytest.approx(12.340)
    assert cat.errors["B"][k] == pytest.approx(0.03)
    assert cat.mags["R"][k] == pytest.approx(12.148 - 0.1837 * (12.645 - 12.148) - 0.0971)
    empty = cat.ids.tolist().index("UCAC4 634-064150")   # a UCAC4 star without APASS data
    assert all(np.isnan(cat.mags[b][empty]) for b in cat.mags)


def test_errors_given_in_centimag_are_converted(tmp_path, monkeypatch):
    table = fixture_table("I/322A/out")
    for name in table.colnames:
        if name.startswith("e_"):
            table[name] = table[name] * 100
            table[name].unit = "cmag"
    fake = FakeVizier({"I/322A/out": table})
    monkeypatch.setattr(VizierClass, "query_region", lambda self, *a, **k: fake(self, *a, **k))
    cat = rc.vizier_catalog(make_cfg(tmp_path, "ucac4")).field(RA0, DEC0, R0)
    k = cat.ids.tolist().index("UCAC4 634-064112")
    assert cat.errors["V"][k] == pytest.approx(0.02)
    assert cat.errors["B"][k] == pytest.approx(0.03)


# ----------------------------------------------------------------------------- Gaia

def g_minus_v(x):    # Riello et al. 2021 Table C.2, written out by hand
    return -0.02704 + 0.01424 * x - 0.2156 * x ** 2 + 0.01426 * x ** 3


def g_minus_r(x):
    return -0.02275 + 0.3961 * x - 0.1243 * x ** 2 - 0.01396 * x ** 3 + 0.003775 * x ** 4


def g_minus_i(x):
    return 0.01753 + 0.76 * x - 0.0991 * x ** 2


def test_gaia_transformation_known_values():
    # two stars: x = 0.82 (solar colour) and x = 1.52 (a K dwarf)
    g = np.array([12.195, 13.5])
    bp = np.array([12.541, 14.22])
    rp = np.array([11.721, 12.70])
    x = bp - rp
    out = gaia_to_johnson_cousins(g, bp, rp)
    # x = 0.82: G-V = -0.02704 + 0.0116768 - 0.14496944 + 0.00786251 = -0.15247
    assert g_minus_v(0.82) == pytest.approx(-0.152470, abs=2e-6)
    assert out["V"][0][0] == pytest.approx(12.195 + 0.152470, abs=1e-5)
    for band, rel in (("V", g_minus_v), ("R", g_minus_r), ("I", g_minus_i)):
        np.testing.assert_allclose(out[band][0], g - rel(x), atol=1e-9)
    # B straight from the published G - B quartic
    g_minus_b = 0.01448 - 0.6874 * x - 0.3604 * x ** 2 + 0.06718 * x ** 3 - 0.006061 * x ** 4
    np.testing.assert_allclose(out["B"][0], g - g_minus_b, atol=1e-9)
    # errors without Gaia errors are the relations' scatter
    np.testing.assert_allclose(out["V"][1], 0.03017)
    np.testing.assert_allclose(out["R"][1], 0.03167)
    np.testing.assert_allclose(out["I"][1], 0.03765)
    np.testing.assert_allclose(out["B"][1], 0.0633)


def test_gaia_transformation_reproduces_the_sun_and_vega():
    # The Sun: (BP-RP) = 0.82 (Casagrande & VandenBerg 2018, MNRAS 479, L102);
    # (B-V, V-Rc, V-Ic) = (0.653, 0.356, 0.701) (Ramirez et al. 2012, ApJ 752, 5).
    # Vega / A0V: BP-RP ~ 0 and all Johnson-Cousins colours 0 by definition.
    out = gaia_to_johnson_cousins([5.0, 5.0], [5.41, 5.0], [4.59, 5.0])
    v, r, i, b = (out[k][0] for k in ("V", "R", "I", "B"))
    assert v[0] - r[0] == pytest.approx(0.356, abs=0.02)
    assert v[0] - i[0] == pytest.approx(0.701, abs=0.04)
    assert b[0] - v[0] == pytest.approx(0.653, abs=0.07)      # the G-B relation scatters 0.06
    assert v[1] - r[1] == pytest.approx(0.0, abs=0.02)
    assert v[1] - i[1] == pytest.approx(0.0, abs=0.05)
    assert b[1] - v[1] == pytest.approx(0.0, abs=0.05)


def test_gaia_errors_include_gaia_errors_and_scatter():
    out = gaia_to_johnson_cousins([12.0], [12.6], [11.6], [0.003], [0.004], [0.005])
    x = 1.0
    slope = 0.01424 - 2 * 0.2156 * x + 3 * 0.01426 * x ** 2
    expected = np.sqrt(0.003 ** 2 + slope ** 2 * (0.004 ** 2 + 0.005 ** 2) + 0.03017 ** 2)
    assert out["V"][1][0] == pytest.approx(expected, rel=1e-9)


def test_gaia_outside_the_colour_ranges_is_nan():
    x = np.array([-0.6, -0.2, 4.2, 4.7, 5.2])
    out = gaia_to_johnson_cousins(np.full(5, 12.0), 12.0 + x / 2, 12.0 - x / 2)
    v, r, i = out["V"][0], out["R"][0], out["I"][0]
    assert np.isnan(v[0]) and np.isnan(r[0]) and np.isnan(i[0])          # bluer than -0.5
    assert np.isfinite(v[1]) and np.isnan(r[1]) and np.isfinite(i[1])     # G-R needs x > 0
    assert np.isfinite(v[2]) and np.isnan(r[2]) and np.isfinite(i[2])     # G-R needs x < 4
    assert np.isfinite(v[3]) and np.isnan(i[3])                          # G-I needs x < 4.5
    assert np.isnan(v[4])                                                # G-V needs x < 5
    assert all(np.isnan(out[b][1][0]) for b in ("V", "R", "I", "B"))      # errors too


def test_gaia_provider_bands_ids_and_magnitude_limit(tmp_path, vizier):
    cat = rc.vizier_catalog(make_cfg(tmp_path, "gaia")).field(RA0, DEC0, R0)
    call = vizier.calls[0]
    assert call["catalog"] == "I/355/gaiadr3"
    assert call["filters"] == {"Gmag": "<18"}
    assert {"Source", "RA_ICRS", "DE_ICRS", "Gmag", "BPmag", "RPmag", "e_Gmag"} <= set(call["columns"])
    assert cat.name == "gaia-dr3"
    assert set(cat.mags) == {"G", "V", "R", "I", "B"}
    k = cat.ids.tolist().index("Gaia DR3 2099012345678901234")
    assert cat.mags["G"][k] == pytest.approx(12.195)
    assert cat.mags["V"][k] == pytest.approx(12.195 - g_minus_v(0.82), abs=1e-6)
    assert cat.errors["V"][k] > 0.03
    red = cat.ids.tolist().index("Gaia DR3 2099012345678913456")       # BP-RP = 5.2
    assert all(np.isnan(cat.mags[b][red]) for b in ("V", "R", "I", "B"))
    no_colour = cat.ids.tolist().index("Gaia DR3 2099012345678917890")  # no BP/RP
    assert cat.mags["G"][no_colour] == pytest.approx(15.1)
    assert all(np.isnan(cat.mags[b][no_colour]) for b in ("V", "R", "I", "B"))


def test_lupton_r_outside_its_colour_guard_is_nan():
    mag, err = sloan_to_cousins_r([12.0, 15.0, 12.0], [12.5, 12.5, np.nan])
    assert np.isfinite(mag[0]) and np.isnan(mag[1]) and np.isnan(mag[2])
    assert np.isnan(err[1])


# ----------------------------------------------------------------------------- VSX

def test_vsx_known_variables(tmp_path, vizier):
    cfg = make_cfg(tmp_path, "apass")
    provider = known_variables_source(cfg)
    assert isinstance(provider, rc.VsxKnownVariables)
    kv = provider.field(RA0, DEC0, R0)
    assert isinstance(kv, KnownVariables)
    assert vizier.calls[0]["catalog"] == "B/vsx/vsx"
    assert set(vizier.calls[0]["columns"]) >= {"Name", "RAJ2000", "DEJ2000", "Type", "Period"}
    assert len(kv) == 3
    by_name = {n: j for j, n in enumerate(kv.names.tolist())}
    j = by_name["V2345 Lyr"]
    assert kv.types[j] == "EA" and kv.periods[j] == pytest.approx(1.2345678)
    assert kv.ra[j] == pytest.approx(283.7521) and kv.dec[j] == pytest.approx(36.6333)
    assert np.isnan(kv.periods[by_name["ASASSN-V J185528.00+363600.0"]])
    # cached under vsx/, and a new provider does not ask again
    assert list((tmp_path / "cache" / "vsx").glob("*.ecsv"))
    again = rc.vsx_known_variables(cfg).field(RA0 + 0.01, DEC0, 0.05)
    assert len(vizier.calls) == 1
    assert set(again.names.tolist()) <= set(kv.names.tolist())


# ----------------------------------------------------------------------------- the cache

def test_same_field_from_a_new_provider_comes_from_the_disk_cache(tmp_path, vizier):
    cfg = make_cfg(tmp_path, "apass")
    first = rc.vizier_catalog(cfg).field(RA0, DEC0, R0)
    second = rc.vizier_catalog(cfg).field(RA0, DEC0, R0)
    assert len(vizier.calls) == 1
    assert second.ids.tolist() == first.ids.tolist()
    for band in first.mags:
        np.testing.assert_array_equal(second.mags[band], first.mags[band])
        np.testing.assert_array_equal(second.errors[band], first.errors[band])


def test_cache_layout_is_one_ecsv_per_cone_written_atomically(tmp_path, vizier):
    rc.vizier_catalog(make_cfg(tmp_path, "apass")).field(RA0 + 0.003, DEC0 - 0.002, R0)
    folder = tmp_path / "cache" / "apass"
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["ra283.80_dec+36.60_r0.20.ecsv"]      # no temporary file left behind
    table = Table.read(folder / files[0], format="ascii.ecsv")
    assert table.meta["table"] == "II/336/apass9"
    assert table.meta["radius"] == pytest.approx(0.20)
    assert table.meta["clinepipe_cache"] == CACHE_VERSION
    assert "g'mag" in table.colnames and str(table["Vmag"].unit) == "mag"


def test_a_smaller_cone_inside_a_cached_one_is_served_from_the_cache(tmp_path, vizier):
    cfg = make_cfg(tmp_path, "apass")
    big = rc.vizier_catalog(cfg).field(RA0, DEC0, R0)
    ra, dec, radius = 283.83, 36.58, 0.05
    small = rc.vizier_catalog(cfg).field(ra, dec, radius)
    assert len(vizier.calls) == 1
    inside = sep_deg(big.ra, big.dec, ra, dec) <= radius
    assert sorted(small.ids.tolist()) == sorted(big.ids[inside].tolist())
    assert 0 < len(small) < len(big)


def test_a_cone_not_inside_any_cached_one_is_queried(tmp_path, vizier):
    cfg = make_cfg(tmp_path, "apass")
    provider = rc.vizier_catalog(cfg)
    provider.field(RA0, DEC0, R0)
    provider.field(RA0, DEC0, 0.4)                 # larger than what is cached
    provider.field(RA0 + 1.0, DEC0, R0)            # elsewhere
    assert len(vizier.calls) == 3
    assert len(list((tmp_path / "cache" / "apass").glob("*.ecsv"))) == 3
    rc.vizier_catalog(cfg).field(RA0 + 0.02, DEC0, 0.2)   # inside the 0.4° cone
    assert len(vizier.calls) == 3


def test_memory_cache_per_provider(tmp_path, vizier):
    cfg = make_cfg(tmp_path, "apass")
    provider = rc.vizier_catalog(cfg)
    provider.field(RA0, DEC0, R0)
    for f in (tmp_path / "cache" / "apass").iterdir():
        f.unlink()
    provider.field(RA0, DEC0, R0)
    assert len(vizier.calls) == 1


def test_a_corrupt_cache_file_is_fetched_again(tmp_path, vizier):
    cfg = make_cfg(tmp_path, "apass")
    rc.vizier_catalog(cfg).field(RA0, DEC0, R0)
    (path,) = (tmp_path / "cache" / "apass").glob("*.ecsv")
    path.write_text("# %ECSV 1.0\n# ---\n# datatype: [garbage\n")
    cat = rc.vizier_catalog(cfg).field(RA0, DEC0, R0)
    assert len(vizier.calls) == 2 and len(cat) == 5
    assert Table.read(path, format="ascii.ecsv").meta["table"] == "II/336/apass9"


def test_an_empty_field_is_an_empty_catalog_and_is_cached(tmp_path, vizier):
    cfg = make_cfg(tmp_path, "apass")
    cat = rc.vizier_catalog(cfg).field(10.0, -20.0, R0)
    assert len(cat) == 0 and "V" in cat.mags and cat.mags["V"].size == 0
    again = rc.vizier_catalog(cfg).field(10.0, -20.0, R0)
    assert len(again) == 0
    assert len(vizier.calls) == 1


def test_no_network_at_all_when_the_cache_is_warm(tmp_path, vizier, monkeypatch):
    cfg = make_cfg(tmp_path, "apass")
    rc.vizier_catalog(cfg).field(RA0, DEC0, R0)
    rc.vsx_known_variables(cfg).field(RA0, DEC0, R0)
    monkeypatch.undo()                              # the real astroquery from here on
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    cat = rc.vizier_catalog(cfg).field(RA0 + 0.01, DEC0, 0.1)
    kv = rc.vsx_known_variables(cfg).field(RA0, DEC0, R0)
    assert len(cat) > 0 and len(kv) == 3
    assert attempts == []
    # and the guard does bite: a cold field goes to the (refused) network
    with pytest.raises(CatalogUnavailable) as info:
        rc.vizier_catalog(cfg).field(120.0, 10.0, R0)
    assert attempts
    assert "could not be reached" in info.value.message


def test_cone_key_contains_the_request_and_wraps():
    rng = np.random.default_rng(5)
    for _ in range(500):
        ra, dec, radius = rng.uniform(0, 360), rng.uniform(-89.9, 89.9), rng.uniform(0.01, 1.0)
        cone = cone_key(ra, dec, radius)
        assert cone.contains(ra, dec, radius)
        assert cone.radius <= radius + 0.0071 + RADIUS_STEP_DEG + 1e-9
        assert round(cone.radius / RADIUS_STEP_DEG, 6) == int(round(cone.radius / RADIUS_STEP_DEG))
    wrap = cone_key(359.998, 10.0, 0.1)
    assert wrap.ra == 0.0 and wrap.contains(359.998, 10.0, 0.1)
    assert cone_key(12.0, 89.999, 0.1).dec == 90.0


def test_a_cone_too_large_is_refused(tmp_path, vizier):
    with pytest.raises(UsageError):
        rc.vizier_catalog(make_cfg(tmp_path, "apass")).field(RA0, DEC0, 20.0)
    assert vizier.calls == []


# ----------------------------------------------------------------------------- failures

@pytest.mark.parametrize("error, expected", [
    (requests.exceptions.ConnectionError("Max retries exceeded with url: /viz-bin/votable\n"
                                         "(Caused by NewConnectionError(...))"),
     "no connection to the service"),
    (requests.exceptions.ReadTimeout("read timed out"), "timed out after 30 s"),
    (requests.exceptions.ConnectTimeout("connect timed out"), "timed out after 30 s"),
    (TimeoutError("timed out"), "timed out after 30 s"),
])
def test_unreachable_service_makes_frames_wait(tmp_path, monkeypatch, error, expected):
    fake = FakeVizier(error=error)
    monkeypatch.setattr(VizierClass, "query_region", lambda self, *a, **k: fake(self, *a, **k))
    with pytest.raises(CatalogUnavailable) as info:
        rc.vizier_catalog(make_cfg(tmp_path, "apass")).field(RA0, DEC0, R0)
    exc = info.value
    assert exc.message == ("the APASS catalog (Vizier II/336/apass9) could not be reached: "
                           f"{expected}; frames wait for the next run.")
    assert "\n" not in exc.message
    assert exc.reason == "APASS unreachable"
    assert not list((tmp_path / "cache").rglob("*.ecsv"))      # nothing cached


def test_unreachable_vsx_and_gaia_name_their_catalog(tmp_path, monkeypatch):
    fake = FakeVizier(error=requests.exceptions.ReadTimeout("slow"))
    monkeypatch.setattr(VizierClass, "query_region", lambda self, *a, **k: fake(self, *a, **k))
    cfg = make_cfg(tmp_path, "gaia", timeout=7)
    with pytest.raises(CatalogUnavailable) as info:
        rc.vizier_catalog(cfg).field(RA0, DEC0, R0)
    assert info.value.message.startswith("the Gaia DR3 catalog (Vizier I/355/gaiadr3) could not "
                                         "be reached: timed out after 7 s")
    assert info.value.reason == "Gaia DR3 unreachable"
    with pytest.raises(CatalogUnavailable) as info:
        rc.vsx_known_variables(cfg).field(RA0, DEC0, R0)
    assert info.value.reason == "VSX unreachable"
    assert "the AAVSO VSX (Vizier B/vsx/vsx)" in info.value.message


def test_an_answer_without_the_expected_columns_is_unusable(tmp_path, monkeypatch):
    table = fixture_table("II/336/apass9")
    table.remove_column("DEJ2000")
    fake = FakeVizier({"II/336/apass9": table})
    monkeypatch.setattr(VizierClass, "query_region", lambda self, *a, **k: fake(self, *a, **k))
    with pytest.raises(CatalogUnavailable) as info:
        rc.vizier_catalog(make_cfg(tmp_path, "apass")).field(RA0, DEC0, R0)
    assert "has no column DEJ2000" in info.value.message
    assert info.value.reason == "APASS answer unusable"


# ----------------------------------------------------------------------------- the HTTP layer

class FakeHTTP:
    """Stands in for ``requests.Session.request`` (as astroquery's own Vizier tests do)."""

    def __init__(self, status=200, body=b""):
        self.status, self.body, self.requests = status, body, []

    def __call__(self, session, method, url, data=None, timeout=None, **kwargs):
        self.requests.append({"method": method, "url": url, "data": data, "timeout": timeout})
        response = requests.Response()
        response.status_code = self.status
        response._content = self.body
        response.url = url
        return response


def patch_http(monkeypatch, **kwargs):
    fake = FakeHTTP(**kwargs)
    monkeypatch.setattr(requests.Session, "request", lambda s, *a, **k: fake(s, *a, **k))
    return fake


def payload(data) -> dict:
    if isinstance(data, dict):
        return {str(k): str(v) for k, v in data.items()}
    pairs = (line.split("=", 1) for line in data.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def test_a_real_vizier_votable_through_astroquery(tmp_path, monkeypatch):
    http = patch_http(monkeypatch, body=(FIXTURES / "apass9_cone.vot").read_bytes())
    cat = rc.vizier_catalog(make_cfg(tmp_path, "apass", timeout=20)).field(RA0, DEC0, R0)
    assert len(http.requests) == 1
    sent = payload(http.requests[0]["data"])
    assert http.requests[0]["method"] == "POST"
    assert http.requests[0]["timeout"] == 20
    assert sent["-source"] == "II/336/apass9"
    assert sent["-out.max"] == "unlimited"
    assert "g'mag" in sent["-out"].split(",")
    assert float(sent["-c.rd"]) == pytest.approx(0.15)
    assert len(cat) == 3
    k = int(np.flatnonzero(np.isclose(cat.ra, 283.801234))[0])
    assert cat.mags["g"][k] == pytest.approx(12.650) and cat.errors["r"][k] == pytest.approx(0.019)
    assert np.isnan(cat.mags["B"][int(np.flatnonzero(np.isclose(cat.ra, 283.9))[0])])


def test_an_empty_votable_is_an_empty_catalog(tmp_path, monkeypatch):
    text = (FIXTURES / "apass9_cone.vot").read_text()
    start, end = text.index("<TABLEDATA>") + len("<TABLEDATA>"), text.index("</TABLEDATA>")
    patch_http(monkeypatch, body=(text[:start] + text[end:]).encode())
    cat = rc.vizier_catalog(make_cfg(tmp_path, "apass")).field(RA0, DEC0, R0)
    assert len(cat) == 0


@pytest.mark.parametrize("status, body, expected, reason", [
    (503, b"<html><body>Service Unavailable</body></html>", "the service answered HTTP 503",
     "APASS unreachable"),
    (200, b"<html><body>VizieR is being updated</body></html>", "gave an unusable answer",
     "APASS answer unusable"),
    (200, b"<?xml version='1.0'?><VOTABLE><RESOURCE><TABLE><FIELD name=", "gave an unusable answer",
     "APASS answer unusable"),
])
def test_http_errors_and_garbled_answers(tmp_path, monkeypatch, status, body, expected, reason):
    patch_http(monkeypatch, status=status, body=body)
    with pytest.raises(CatalogUnavailable) as info:
        rc.vizier_catalog(make_cfg(tmp_path, "apass")).field(RA0, DEC0, R0)
    assert expected in info.value.message
    assert info.value.message.endswith("frames wait for the next run.")
    assert "\n" not in info.value.message
    assert info.value.reason == reason
    assert not list((tmp_path / "cache").rglob("*.ecsv"))
