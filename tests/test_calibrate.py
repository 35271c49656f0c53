"""Ensemble zero point and catalog matching against known answers."""

import numpy as np
import pytest

from clinepipe.calibrate.zero_point import ensemble_zero_point
from clinepipe.catalogs.file_csv import load_file_catalog
from clinepipe.catalogs.match import match_catalog
from clinepipe.errors import BadInput


def ensemble(rng, n=60, zp=21.37, inst_sigma=None, cat_sigma=0.02):
    cat_true = rng.uniform(11, 16, n)
    inst_err = inst_sigma if inst_sigma is not None else 0.003 * 10 ** (0.2 * (cat_true - 11))
    cat_err = np.full(n, cat_sigma)
    cat = cat_true + rng.normal(0, cat_err)
    inst = cat_true - zp + rng.normal(0, inst_err)
    return inst, cat, np.broadcast_to(inst_err, (n,)).copy(), cat_err


def test_zero_point_within_its_error_over_many_trials():
    rng = np.random.default_rng(1)
    pulls = []
    for _ in range(300):
        inst, cat, ie, ce = ensemble(rng)
        zp = ensemble_zero_point(inst, cat, ie, ce)
        pulls.append((zp.value - 21.37) / zp.error)
        assert zp.n_used >= 55
    pulls = np.array(pulls)
    assert abs(pulls.mean()) < 0.15
    assert 0.8 < pulls.std() < 1.25


def test_variables_and_mismatches_do_not_move_the_zero_point():
    rng = np.random.default_rng(2)
    inst, cat, ie, ce = ensemble(rng, n=80)
    clean = ensemble_zero_point(inst, cat, ie, ce)
    bad = inst.copy()
    bad[:3] += [0.4, -0.6, 0.25]      # three variables caught mid-eclipse / at maximum
    cat_bad = cat.copy()
    cat_bad[3:5] += [1.5, -2.0]       # two mismatched catalog stars
    dirty = ensemble_zero_point(bad, cat_bad, ie, ce)
    assert abs(dirty.value - clean.value) <= 0.005
    assert not dirty.used[:5].any()
    # the five bad stars leave; of the good ones, at most one changes its membership
    assert np.count_nonzero(dirty.used[5:] != clean.used[5:]) <= 1


def test_excluded_and_nonfinite_stars_are_never_used():
    rng = np.random.default_rng(3)
    inst, cat, ie, ce = ensemble(rng, n=20)
    inst[0] = np.nan
    exclude = np.zeros(20, bool)
    exclude[1] = True
    zp = ensemble_zero_point(inst, cat, ie, ce, exclude=exclude)
    assert not zp.used[0] and not zp.used[1]
    assert zp.n_candidates == 18


def test_empty_ensemble_is_nan_not_crash():
    zp = ensemble_zero_point([], [])
    assert np.isnan(zp.value) and zp.n_used == 0


def test_extra_scatter_inflates_error():
    rng = np.random.default_rng(4)
    inst, cat, ie, ce = ensemble(rng, n=50, inst_sigma=0.002, cat_sigma=0.002)
    inst = inst + rng.normal(0, 0.05, inst.size)  # scatter the stated errors don't explain
    zp = ensemble_zero_point(inst, cat, ie, ce)
    assert zp.error > 0.05 / np.sqrt(50) * 0.7
    assert abs(zp.value - 21.37) < 4 * zp.error


def test_match_catalog_one_to_one_and_ambiguous(tmp_path):
    cat_ra = np.array([10.0, 10.01, 10.0200, 10.02005])
    cat_dec = np.array([20.0, 20.0, 20.0, 20.0])
    ra = np.array([10.0 + 0.5 / 3600, 10.01, 10.02002, 11.0])
    dec = np.array([20.0, 20.0 + 1.0 / 3600, 20.0, 20.0])
    idx, sep = match_catalog(ra, dec, cat_ra, cat_dec, 2.0)
    assert idx[0] == 0 and abs(sep[0] - 0.5 * np.cos(np.radians(20))) < 0.01
    assert idx[1] == 1 and abs(sep[1] - 1.0) < 0.01
    assert idx[2] == -1  # two catalog stars 0.17" apart: ambiguous
    assert idx[3] == -1 and np.isnan(sep[3])


def test_file_catalog(tmp_path):
    p = tmp_path / "cat.csv"
    p.write_text("id,ra,dec,V,e_V,R\nA,1.0,2.0,12.5,0.02,12.1\nB,1.1,2.1,,0.03,13.0\n")
    cat = load_file_catalog(p)
    assert list(cat.ids) == ["A", "B"]
    mag, err = cat.band("V")
    assert mag[0] == 12.5 and np.isnan(mag[1]) and err[1] == 0.03
    _, err_r = cat.band("R")
    assert np.all(err_r > 0)
    bad = tmp_path / "bad.csv"
    bad.write_text("name,x,y\n")
    with pytest.raises(BadInput, match="bad.csv"):
        load_file_catalog(bad)


def test_colour_term_recovered_per_night():
    from clinepipe.calibrate.colour_term import fit_colour_term

    rng = np.random.default_rng(5)
    n_frames, n_stars = 20, 40
    colour = np.tile(rng.uniform(0.0, 1.5, n_stars), n_frames)
    frame = np.repeat(np.arange(n_frames), n_stars)
    zp_offset = rng.normal(0, 0.05, n_frames)[frame]  # each frame's zero point is off a bit
    err = np.full(colour.size, 0.01)
    for k in (0.0, 0.08, -0.05):
        residual = zp_offset + k * colour + rng.normal(0, err)
        residual[:3] += 1.0  # a few mismatches
        fit = fit_colour_term(residual, colour, err, frame, colour_name="B-V")
        assert abs(fit.value - k) < 4 * fit.error and fit.error < 0.005
        assert fit.colour == "B-V" and fit.reason == ""
    few = fit_colour_term(residual[:5], colour[:5], err[:5], frame[:5])
    assert np.isnan(few.value) and "too few" in few.reason
    narrow = fit_colour_term(residual, np.full(colour.size, 0.6), err, frame)
    assert np.isnan(narrow.value) and "colour range" in narrow.reason


def test_colour_term_error_counts_each_star_once():
    """A star's catalog error is the same on every frame: with the stars given, the term's
    error must describe its real scatter (pulls of std ~1 over many nights); taken as
    independent points it would be several times too small."""
    from clinepipe.calibrate.colour_term import fit_colour_term

    rng = np.random.default_rng(11)
    n_frames, n_stars, n_nights = 30, 35, 300
    frame = np.repeat(np.arange(n_frames), n_stars)
    star = np.tile(np.arange(n_stars), n_frames)
    pulls, naive_pulls = [], []
    for _ in range(n_nights):
        colour = rng.uniform(0.2, 1.6, n_stars)[star]
        catalog_error = rng.normal(0, 0.03, n_stars)[star]  # the same on every frame
        point_error = np.full(frame.size, 0.01)
        residual = (rng.normal(0, 0.05, n_frames)[frame] + catalog_error
                    + rng.normal(0, point_error))
        err = np.hypot(point_error, 0.03)
        fit = fit_colour_term(residual, colour, err, frame, star=star)
        naive = fit_colour_term(residual, colour, err, frame)
        pulls.append(fit.value / fit.error)
        naive_pulls.append(naive.value / naive.error)
    assert 0.8 < np.std(pulls) < 1.25, np.std(pulls)
    print(f"colour-term pulls: std {np.std(pulls):.2f} per star, {np.std(naive_pulls):.2f} naive")
    assert np.std(naive_pulls) > 2.0  # what the error was before the stars were given
