"""Compare whole runs: copy a simulated night's inputs, and snapshot what a run left behind.

``copy_database(cfg, path)`` copies a run's SQLite database. ``copy_night(sim, dest)`` copies a simulated night (incoming, catalog, vsx, config; never an
archive or database) and returns the copy's clinepipe.toml. ``pipeline_snapshot(config_path)``
is the content of a run's database and export free of surrogate ids and timestamps (stars are
named by their rounded position): killed-and-restarted, Dask and catalog-free runs are compared
with an uninterrupted serial run through it.
"""
import csv
import json
import shutil
import tempfile
from pathlib import Path


def copy_night(sim, dest, **execution) -> Path:
    """Copy a simulated night's inputs (not its archive/database) to ``dest``; its config path.
    ``execution``: keys of an ``[execution]`` section appended to the copy's configuration
    (e.g. ``scheduler="serial"``, ``workers=2``, ``address="tcp://…"``)."""
    src, dest = Path(sim.out_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "incoming", dest / "incoming", symlinks=True)
    for name in ("catalog.csv", "vsx.csv", "clinepipe.toml"):
        if (src / name).exists():
            shutil.copy2(src / name, dest / name)
    cfg_path = dest / "clinepipe.toml"
    if execution:
        lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in execution.items())
        with cfg_path.open("a", encoding="utf-8") as fh:
            fh.write(f"\n[execution]\n{lines}")
    return cfg_path


def copy_database(cfg, path):
    """A copy of a run's SQLite database at ``path`` (with what its write-ahead log holds):
    the configuration using it, and its engine."""
    import dataclasses
    import sqlite3

    from clinepipe.store.db import open_database

    src, dest = sqlite3.connect(cfg.database.url.removeprefix("sqlite:///")), sqlite3.connect(path)
    try:
        src.backup(dest)
    finally:
        src.close()
        dest.close()
    cfg = dataclasses.replace(cfg, database=dataclasses.replace(cfg.database,
                                                                url=f"sqlite:///{path}"))
    return cfg, open_database(cfg.database.url)


def _r(value, digits):
    return None if value is None else round(float(value), digits)


def pipeline_snapshot(config_path) -> dict:
    """Everything a run leaves in the database and archive, comparable across runs."""
    from sqlalchemy import func, select

    from clinepipe.config import load_config
    from clinepipe.products.export import export_csv
    from clinepipe.store.db import open_database, session_scope
    from clinepipe.store.models import (
        Frame,
        Master,
        Measurement,
        Star,
        StarPeriod,
        StarStat,
        StarStatPending,
        ZeroPoint,
    )

    cfg = load_config(Path(config_path))
    engine = open_database(cfg.database.url)
    try:
        with session_scope(engine) as s:
            star_key = {sid: f"{ra:.6f} {dec:+.6f}" for sid, ra, dec in
                        s.execute(select(Star.id, Star.ra, Star.dec))}
            master_path = dict(s.execute(select(Master.id, Master.path)).all())
            frames = sorted(
                (f.raw_path, f.kind, f.filter, f.state, f.stage, f.reason, f.night, f.binning,
                 f.archive_path, f.calibrated_path, f.source_list, f.qc, f.n_stars,
                 _r(f.fwhm, 6), _r(f.sky, 4), _r(f.airmass, 6),
                 master_path.get(f.bias_master_id), master_path.get(f.dark_master_id),
                 master_path.get(f.flat_master_id))
                for f in s.scalars(select(Frame)))
            masters = sorted((m.kind, m.binning, m.filter or "", m.night, m.n_frames, m.mode,
                              m.path, m.input_key, _r(m.exptime, 6))
                             for m in s.scalars(select(Master)))
            stars = sorted((star_key[st.id], st.catalog_id or "", st.name or "", st.n_measurements)
                           for st in s.scalars(select(Star)))
            measurements = sorted(
                (raw, star_key[sid], _r(x, 3), _r(y, 3), _r(mag, 6), _r(inst, 6), _r(bjd, 8),
                 flags, bool(ens))
                for raw, sid, x, y, mag, inst, bjd, flags, ens in s.execute(
                    select(Frame.raw_path, Measurement.star_id, Measurement.x, Measurement.y,
                           Measurement.mag, Measurement.inst_mag, Measurement.bjd_tdb,
                           Measurement.flags, Measurement.in_ensemble)
                    .join(Frame, Frame.id == Measurement.frame_id)))
            zero_points = sorted(
                (raw, z.filter, z.catalog_band, _r(z.value, 6), _r(z.error, 6), z.n_used,
                 z.n_candidates)
                for raw, z in s.execute(select(Frame.raw_path, ZeroPoint)
                                        .join(Frame, Frame.id == ZeroPoint.frame_id)))
            star_stats = sorted(
                (star_key[r.star_id], r.filter, r.n_all, r.n, _r(r.mean_mag, 9), _r(r.rms, 9),
                 _r(r.chi2_red, 7), _r(r.stetson_j, 7), r.exclude_qc)
                for r in s.scalars(select(StarStat)))
            star_periods = sorted((star_key[r.star_id], _r(r.period, 7), _r(r.fap, 9))
                                  for r in s.scalars(select(StarPeriod)))
            pending = s.scalar(select(func.count()).select_from(StarStatPending))
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "export.csv"
            export_csv(engine, out)
            with out.open(newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader)
                sid = header.index("star_id")
                rows = sorted(tuple(star_key[int(v)] if i == sid else v for i, v in enumerate(row))
                              for row in reader)
    finally:
        engine.dispose()
    archive = cfg.paths.archive
    files = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*")
                   if p.is_file() and not p.name.endswith(".tmp")
                   and p.relative_to(archive).parts[0] not in ("logs",)
                   and p.name != "clinepipe.lock")
    return {"frames": frames, "masters": masters, "stars": stars, "measurements": measurements,
            "zero_points": zero_points, "star_stats": star_stats, "star_periods": star_periods,
            "star_stats_pending": pending,
            "export_header": header, "export": rows,
            "archive_files": files}


def assert_same_snapshot(got: dict, want: dict) -> None:
    """Compare two :func:`pipeline_snapshot` results part by part (a readable first difference)."""
    assert got.keys() == want.keys()
    for key in want:
        a, b = got[key], want[key]
        if a != b:
            extra = [x for x in a if x not in b][:3] if isinstance(a, list) else a
            missing = [x for x in b if x not in a][:3] if isinstance(b, list) else b
            raise AssertionError(f"{key} differ ({len(a)} vs {len(b)} entries); "
                                 f"only in the run: {extra}; only in the reference: {missing}")
