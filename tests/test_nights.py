"""Several simulated nights: star identities, catalog and non-catalog magnitudes, periods."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from clinepipe.config import load_config
from clinepipe.run.pipeline import run_pipeline
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame, Master, Measurement, Star
from clinepipe.variability.table import variability_table


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    from clinepipe.simulate import simulate_night

    out = tmp_path_factory.mktemp("nights")
    sim = simulate_night(out, seed=8, nights=2, width=320, height=320, n_stars=150,
                         lights_per_filter=20)
    cfg = load_config(sim.config_path)
    run_pipeline(cfg)
    return sim, cfg, open_database(cfg.database.url)


def truth_matches(sim, engine):
    with session_scope(engine) as s:
        rows = s.execute(select(Frame.raw_path, Frame.night, Measurement.x, Measurement.y,
                                Measurement.mag, Measurement.flux, Measurement.flux_err,
                                Measurement.star_id, Star.catalog_id)
                         .join(Frame, Frame.id == Measurement.frame_id)
                         .join(Star, Star.id == Measurement.star_id)
                         .where(Measurement.mag.is_not(None), Measurement.flags == 0)).all()
    out = []
    cache = {}
    for r in rows:
        stem = Path(r.raw_path).stem
        if stem not in cache:
            cache[stem] = sim.light_truth(stem)
        truth = cache[stem]
        d = np.hypot(np.asarray(truth["x"], float) - r.x, np.asarray(truth["y"], float) - r.y)
        k = int(np.argmin(d))
        if d[k] < 1.0:
            out.append((r, int(truth["id"][k]), float(truth["mag"][k])))
    return out


def test_star_ids_stable_across_nights(nights):
    sim, cfg, engine = nights
    ids: dict[int, set] = {}
    seen_nights: dict[int, set] = {}
    for r, tid, _ in truth_matches(sim, engine):
        ids.setdefault(tid, set()).add(r.star_id)
        seen_nights.setdefault(tid, set()).add(r.night)
    both = [t for t, n in seen_nights.items() if len(n) == 2]
    assert len(both) > 50
    assert all(len(ids[t]) == 1 for t in both)


def test_catalog_and_noncatalog_magnitudes_match_truth(nights):
    sim, cfg, engine = nights
    variables = {int(v["star_id"]) for v in sim.variables}
    pts = [(r, m) for r, tid, m in truth_matches(sim, engine)
           if r.flux / r.flux_err > 100 and tid not in variables]
    in_cat = np.array([r.mag - m for r, m in pts if r.catalog_id])
    assert in_cat.size > 200
    print(f"catalog stars S/N>100: median |dmag| {np.median(np.abs(in_cat)):.4f} (n={in_cat.size})")
    assert np.median(np.abs(in_cat)) <= 0.01, np.median(np.abs(in_cat))
    # stars below the catalog limit are all faint (S/N < 30): check them at S/N > 10 for bias and scatter
    # chosen per star (its median S/N), not per point: a cut on each point's own S/N keeps the
    # points that noise made brighter and biases the median (Eddington)
    rows = [(r, tid, m) for r, tid, m in truth_matches(sim, engine)
            if tid not in variables and not r.catalog_id]
    snr: dict[int, list[float]] = {}
    for r, tid, _ in rows:
        snr.setdefault(tid, []).append(r.flux / r.flux_err)
    faint = [(r, m) for r, tid, m in rows if np.median(snr[tid]) > 10]
    d = np.array([r.mag - m for r, m in faint])
    noise = np.median([1.0857 * r.flux_err / r.flux for r, _ in faint])
    print(f"non-catalog S/N>10: n={d.size}, median dmag {np.median(d):+.4f}, "
          f"median |dmag| {np.median(np.abs(d)):.4f}, typical error {noise:.4f}")
    assert d.size > 50
    assert abs(np.median(d)) < 0.01
    assert np.median(np.abs(d)) < 1.5 * noise


def test_second_night_uses_the_first_nights_masters(nights):
    sim, cfg, engine = nights
    with session_scope(engine) as s:
        master_nights = set(s.scalars(select(Master.night)))
        lights = s.execute(select(Frame.night, Frame.state, Frame.flat_master_id)
                           .where(Frame.kind == "light")).all()
    assert len(master_nights) == 1
    assert {n for n, _, _ in lights} == {"20260314", "20260315"}
    assert all(state == "calibrated" and flat for _, state, flat in lights)


def test_simulated_variables_top_the_ranking_with_their_periods(nights):
    sim, cfg, engine = nights
    rows = variability_table(engine)
    ranked = []
    for r in rows:
        if r.star_id not in ranked:
            ranked.append(r.star_id)
    with session_scope(engine) as s:
        cat = dict(s.execute(select(Star.id, Star.catalog_id)).all())
    for v in sim.variables:
        star_id = next(sid for sid, c in cat.items() if c == v["catalog_id"])
        assert star_id in ranked[:3], (v["type"], ranked[:5])
        period = next(r.period_days for r in rows if r.star_id == star_id)
        assert abs(period / float(v["period_days"]) - 1) < 0.01, (v["type"], period)


def test_lc_by_known_variable_name(nights):
    from clinepipe.store.queries import resolve_star

    sim, cfg, engine = nights
    with session_scope(engine) as s:
        star_id = resolve_star(s, "v0001 sim")
        assert s.get(Star, star_id).catalog_id == sim.variables[sim.variables["type"] == "EA"][0]["catalog_id"]


def test_darks_grouped_and_chosen_by_ccd_temperature(small_night, tmp_path):
    """Darks at two CCD temperatures make two masters; a light takes the one at its temperature."""
    import shutil

    from astropy.io import fits

    out = tmp_path / "night"
    shutil.copytree(small_night.out_dir, out)
    darks = sorted((out / "incoming").rglob("*_dark_*.fit"))
    # a second set of darks at -20 C (copies, different temperature)
    for i, dark in enumerate(darks):
        with fits.open(dark) as hdul:
            hdr = hdul[0].header.copy()
            hdr["CCD-TEMP"] = -20.0
            fits.writeto(dark.with_name(f"cold_dark_{i:03d}.fit"), hdul[0].data, hdr)
    cfg = load_config(out / "clinepipe.toml")
    run_pipeline(cfg)
    engine = open_database(cfg.database.url)
    with session_scope(engine) as s:
        dark_masters = s.execute(select(Master.id, Master.ccd_temp).where(Master.kind == "dark")).all()
        used = set(s.scalars(select(Frame.dark_master_id).where(Frame.kind == "light")))
    assert len(dark_masters) == 2
    warm = [mid for mid, temp in dark_masters if temp > -15]
    assert used == set(warm)  # the simulated lights are at about -10 C


def test_colour_term_fitted_and_consistent_with_none(nights):
    """The simulator's bandpasses match the catalog's: the fitted colour terms are ~0."""
    from clinepipe.store.models import ZeroPoint

    sim, cfg, engine = nights
    with session_scope(engine) as s:
        terms = s.execute(select(Frame.night, Frame.filter, ZeroPoint.color_term)
                          .join(ZeroPoint, ZeroPoint.frame_id == Frame.id)).all()
    per_night = {(n, f): t for n, f, t in terms}
    assert len(per_night) == 4  # two nights x two filters, one value each
    assert all(t is not None and abs(t) < 0.02 for t in per_night.values()), per_night
    report = (cfg.paths.archive / "reports" / "20260314" / "index.html").read_text()
    assert "Colour terms" in report
