"""One variability module: the reduced chi-square, the isolated-outlier filter, per-filter means
and the period search, the same numbers from `clinepipe variables`, `stars`, `lc` and the web."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from clinepipe.cli import app
from clinepipe.config import load_config
from clinepipe.run.pipeline import run_pipeline
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Star
from clinepipe.variability.statistics import (
    chi2_reduced,
    group_statistics,
    isolated_outliers,
    lightcurve_statistics,
)

# ----------------------------------------------------------------------------- arrays

def test_chi2_reduced_is_one_for_honest_errors_and_scales_with_them():
    rng = np.random.default_rng(3)
    n = 4000
    err = rng.uniform(0.005, 0.05, n)
    mag = 12.0 + rng.normal(0.0, err)
    chi2 = chi2_reduced(mag, err)
    # the reduced chi-square of n-1 degrees of freedom has sigma sqrt(2/(n-1)) ~ 0.022
    assert abs(chi2 - 1.0) < 4 * np.sqrt(2.0 / (n - 1))
    assert chi2_reduced(mag, 2 * err) == pytest.approx(chi2 / 4, rel=1e-12)
    assert np.isnan(chi2_reduced([12.0], [0.01]))


def test_group_statistics_equal_the_formulas_group_by_group():
    rng = np.random.default_rng(4)
    n = 600
    star = rng.integers(1, 8, n)
    filt = rng.choice(["V", "R"], n)
    t = rng.uniform(0, 3, n)
    err = rng.uniform(0.01, 0.03, n)
    mag = 10 + star + rng.normal(0, err) + 0.1 * (star == 3) * np.sin(2 * np.pi * t / 0.4)
    g = group_statistics((star, filt), t, mag, err)
    assert g.n.sum() == n
    for i in range(g.n.size):
        sel = (star == g.labels[0][i]) & (filt == g.labels[1][i])
        m, e, tt = mag[sel], err[sel], t[sel]
        w = 1 / e ** 2
        mean = np.sum(w * m) / np.sum(w)
        assert g.mean_mag[i] == pytest.approx(mean, abs=1e-12)
        assert g.rms[i] == pytest.approx(np.std(m, ddof=1), rel=1e-9)
        assert g.chi2_red[i] == pytest.approx(np.sum(((m - mean) / e) ** 2) / (m.size - 1),
                                              rel=1e-9)
        order = np.argsort(tt)
        delta = np.sqrt(m.size / (m.size - 1)) * ((m - mean) / e)[order]
        pk = delta[:-1] * delta[1:]
        assert g.stetson_j[i] == pytest.approx(np.mean(np.sign(pk) * np.sqrt(np.abs(pk))),
                                               rel=1e-9)
    # the sinusoidal star: a large chi-square and a large positive Stetson J (correlated pairs)
    var = g.labels[0] == 3
    assert np.all(g.chi2_red[var] > 10) and np.all(g.stetson_j[var] > 1)
    assert np.all(g.chi2_red[~var] < 1.5)


def test_isolated_outliers_take_single_points_not_eclipses():
    rng = np.random.default_rng(5)
    n = 120
    t = np.arange(n) * 0.01
    err = np.full(n, 0.01)
    mag = 12 + rng.normal(0, 0.01, n)
    mag[30] += 0.5            # a cosmic ray: one exposure
    mag[70:76] += 0.5         # an eclipse: six exposures
    star = np.ones(n, dtype=int)
    filt = np.where(np.arange(n) % 2 == 0, "V", "R")
    out = isolated_outliers(t, mag, err, (star, filt), (star,))
    assert np.flatnonzero(out).tolist() == [30]
    # the statistics leave it out, and only it
    res = lightcurve_statistics(star, filt, t, mag, err, min_points=10, find_periods=False)
    assert res.used.sum() == n - 1 and not res.used[30]
    # a flagged point is not used either
    flags = np.zeros(n, dtype=int)
    flags[5] = 4
    res = lightcurve_statistics(star, filt, t, mag, err, flags=flags, min_points=10,
                                find_periods=False)
    assert res.used.sum() == n - 2 and not res.used[5]


# ----------------------------------------------------------------------------- a simulated run

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two simulated nights (20 lights per filter and night: enough for the EB's period), run."""
    from clinepipe.simulate import simulate_night

    sim = simulate_night(tmp_path_factory.mktemp("variability"), seed=8, nights=2, width=320,
                         height=320, n_stars=150, lights_per_filter=20)
    cfg = load_config(sim.config_path)
    run_pipeline(cfg)
    engine = open_database(cfg.database.url)
    yield sim, cfg, engine
    engine.dispose()


def _cli(sim, *args):
    r = CliRunner().invoke(app, ["--config", str(sim.config_path), *args])
    assert r.exit_code == 0, r.output
    return r


def _eb(sim, engine):
    eb = next(v for v in sim.variables if v["type"] == "EA")
    with session_scope(engine) as s:
        sid = s.scalar(select(Star.id).where(Star.catalog_id == eb["catalog_id"]))
    return sid, float(eb["period_days"])


def test_cli_and_web_give_the_eclipsing_binary_the_same_true_period(run):
    from fastapi.testclient import TestClient

    from clinepipe.web import create_app

    sim, cfg, engine = run
    sid, truth = _eb(sim, engine)
    rows = list(csv.DictReader(io.StringIO(_cli(sim, "variables", "--csv").stdout)))
    cli_periods = {float(r["period_days"]) for r in rows if int(r["star_id"]) == sid}
    assert len(cli_periods) == 1  # one period per star, from all its filters
    cli_period = cli_periods.pop()
    with TestClient(create_app(cfg)) as client:
        page = client.get(f"/stars/{sid}").text
    web_period = float(re.search(r'data-role="period"[^>]*value="([0-9.]+)"', page, re.DOTALL).group(1))
    found = re.findall(r'data-role="use-period" data-value="([0-9.]+)"', page)
    print(f"EB star {sid}: truth {truth} d, variables {cli_period:.6f} d, web {web_period} d")
    assert found == [f"{web_period:.6f}"]  # one period on the page, not one per filter
    assert web_period == pytest.approx(cli_period, abs=1e-6)  # the CLI prints 6 decimals
    assert abs(cli_period / truth - 1) < 0.01
    # `lc` prints the same statistics and period as `variables`
    lc = _cli(sim, "lc", str(sid)).output
    assert f"period {cli_period:.6f} d" in lc
    v_row = next(r for r in rows if int(r["star_id"]) == sid and r["filter"] == "V")
    assert f"V: {v_row['n']} points" in lc and f"reduced chi-square {v_row['chi2_red']}" in lc


def test_stars_gives_mean_magnitudes_per_filter(run):
    sim, _, engine = run
    out = _cli(sim, "stars", "--csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    header = out.splitlines()[0].split(",")
    assert header[:4] == ["star_id", "ra", "dec", "n_measurements"]
    assert "mean_V" in header and "mean_R" in header and "mean_mag" not in header
    with session_scope(engine) as s:
        cat = dict(s.execute(select(Star.id, Star.catalog_id)).all())
    truth = {str(r["catalog_id"]): r for r in sim.stars if r["catalog_id"]}
    variables = {str(v["catalog_id"]) for v in sim.variables}
    diffs = {"V": [], "R": []}
    for r in rows:
        cid = cat.get(int(r["star_id"]))
        if not cid or cid in variables or cid not in truth:
            continue
        for f in ("V", "R"):
            if r[f"mean_{f}"] and float(truth[cid][f]) < 16:
                diffs[f].append(float(r[f"mean_{f}"]) - float(truth[cid][f]))
    for f, d in diffs.items():
        d = np.array(d)
        print(f"mean_{f} - true {f}: n={d.size}, median {np.median(d):+.4f}, "
              f"max |d| {np.max(np.abs(d)):.4f}")
        assert d.size > 10
        # bright constant stars: the per-filter means recover their true magnitudes
        assert abs(np.median(d)) < 0.01 and np.percentile(np.abs(d), 90) < 0.03
    # V and R differ by the stars' colours: one mean of both would sit between them
    vr = [float(r["mean_V"]) - float(r["mean_R"]) for r in rows if r["mean_V"] and r["mean_R"]]
    assert np.median(vr) > 0.1
