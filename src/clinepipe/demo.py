"""``clinepipe demo``: simulate a night, run the pipeline, and show what came out."""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import numpy as np


def run_demo(directory: Path, *, nights: int = 2, seed: int = 2026, echo=print) -> dict:
    """Simulate (unless already simulated), run, plot a variable, print the figures."""
    from sqlalchemy import func, select

    from clinepipe.config import load_config
    from clinepipe.products.plots import plot_lightcurve
    from clinepipe.run.pipeline import run_pipeline
    from clinepipe.simulate import simulate_night
    from clinepipe.store.db import open_database, session_scope
    from clinepipe.store.measurement_rows import lightcurve
    from clinepipe.store.models import Frame, Measurement, Star
    from clinepipe.variability.table import variability_table

    directory = Path(directory).resolve()
    t0 = time.perf_counter()
    config_path = directory / "clinepipe.toml"
    if not config_path.is_file():
        echo(f"simulating {nights} night(s) into {directory} …")
        simulate_night(directory, seed=seed, nights=nights)
        _demo_obscode(config_path)
    t_sim = time.perf_counter() - t0
    cfg = load_config(config_path)
    echo("running the pipeline …")
    summary = run_pipeline(cfg, settle_seconds=0.0)
    engine = open_database(cfg.database.url)
    with session_scope(engine) as s:
        n_frames = s.scalar(select(func.count(Frame.id)))
        n_stars = s.scalar(select(func.count(Star.id)))
        n_meas = s.scalar(select(func.count(Measurement.id)))
        named = s.execute(select(Star.id, Star.name).where(Star.name.is_not(None))).all()
        suspected = set(s.scalars(select(Star.id).where(Star.var_type == "suspected")))
    ranking = variability_table(engine)
    plots = directory / "plots"
    figures = {"frames": n_frames, "stars": n_stars, "measurements": n_meas}
    echo("")
    echo(f"database:      {cfg.database.url}")
    echo(f"archive:       {cfg.paths.archive}")
    echo(f"frames:        {n_frames} ({', '.join(f'{k} {v}' for k, v in sorted(summary.states.items()))})")
    echo(f"stars:         {n_stars}")
    echo(f"measurements:  {n_meas}")
    delta = _truth_comparison(directory, engine)
    if delta is not None:
        figures["median_abs_dmag"] = delta
        echo(f"median |mag − truth| of stars with S/N > 100: {delta:.4f} mag")
    shown = set()
    top, listed = [], set()
    for r in ranking:  # one line per star: its most variable filter
        if r.chi2_red > 10 and r.star_id not in listed and len(top) < 4:
            top.append(r)
            listed.add(r.star_id)
    if top:
        echo("variable stars found (reduced chi² ≫ 1), with their periods:")
    for r in top:
        period = f"{r.period_days:.5f} d" if r.period_days else "no period"
        label = f" ({r.name})" if r.name else (" (suspected new variable)" if r.star_id in suspected else "")
        echo(f"  star {r.star_id}{label} {r.filter}: "
             f"rms {r.rms:.3f} mag, chi²_red {r.chi2_red:.0f}, period {period}")
    figures["variables"] = [(r.star_id, r.period_days) for r in top]
    for sid, label in [(sid, name) for sid, name in named] + [(r.star_id, f"star {r.star_id}") for r in top]:
        if sid in shown:
            continue
        shown.add(sid)
        rows = lightcurve(engine, sid)
        if rows:
            out = plot_lightcurve(rows, plots / f"star_{sid}.png", title=f"{label} (star {sid})")
            echo(f"light curve:   {out}")
    aavso = sorted((cfg.paths.archive / "aavso").glob("*/*.txt"))
    figures["aavso_files"] = aavso
    for path in aavso:
        echo(f"AAVSO file:    {path} (observer code {cfg.aavso.obscode}: the demo's, "
             "not for upload)" if cfg.aavso.obscode == DEMO_OBSCODE else f"AAVSO file:    {path}")
    for warning in summary.warnings:
        echo(f"warning:       {warning}")
    reports = sorted((cfg.paths.archive / "reports").glob("*/index.html"))
    for report in reports:
        echo(f"morning report: {report}")
    elapsed = time.perf_counter() - t0
    figures["elapsed"] = elapsed
    echo(f"elapsed:       {elapsed:.1f} s (simulation {t_sim:.1f} s, pipeline {summary.elapsed:.1f} s)")
    echo(f"next: clinepipe --config {config_path} serve   (web dashboard on http://127.0.0.1:8765)")
    return figures


#: the observer code of the demo's own configuration: clearly not an observer's, so the demo
#: can show a nightly AAVSO file (`clinepipe simulate` leaves the code empty)
DEMO_OBSCODE = "CPDEMO"


def _demo_obscode(config_path: Path) -> None:
    """Give the demo's configuration the demo's observer code (an empty code writes no file)."""
    text = config_path.read_text(encoding="utf-8")
    text = re.sub(r'^obscode = ""[^\n]*$',
                  f'obscode = "{DEMO_OBSCODE}"       # the demo\'s own code, not an observer\'s: '
                  'never upload these files', text, count=1, flags=re.M)
    config_path.write_text(text, encoding="utf-8")


def _truth_comparison(directory: Path, engine) -> float | None:
    """Median |calibrated − true| magnitude for bright stars, when the truth is at hand."""
    from sqlalchemy import select

    from clinepipe.catalogs.match import match_catalog
    from clinepipe.store.db import session_scope
    from clinepipe.store.models import Frame, Measurement

    truth = directory / "truth" / "stars.csv"
    if not truth.is_file():
        return None
    with truth.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    variable = np.array([bool((r.get("variable") or r.get("var_type") or "").strip()) for r in rows])
    t_ra = np.array([float(r["ra"]) for r in rows])
    t_dec = np.array([float(r["dec"]) for r in rows])
    with session_scope(engine) as s:
        meas = s.execute(select(Measurement.ra, Measurement.dec, Measurement.filter,
                                Measurement.mag, Measurement.flux, Measurement.flux_err)
                         .join(Frame, Frame.id == Measurement.frame_id)
                         .where(Measurement.mag.is_not(None), Measurement.flags == 0)).all()
    if not meas:
        return None
    ra = np.array([m[0] for m in meas])
    dec = np.array([m[1] for m in meas])
    snr = np.array([m[4] / m[5] if m[5] else 0 for m in meas])
    idx, _ = match_catalog(ra, dec, t_ra, t_dec, 1.0)
    deltas = []
    for i, (m, k) in enumerate(zip(meas, idx)):
        if k < 0 or variable[k] or snr[i] < 100 or m[2] not in rows[k]:
            continue
        deltas.append(abs(m[3] - float(rows[k][m[2]])))
    return float(np.median(deltas)) if deltas else None
