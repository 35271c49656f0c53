"""What the lights step stores, checked row by row and column by column against the per-light
results themselves: a simulated night is run up to its lights (ingest, masters, lights: nothing
after them changes a row yet), then every light is measured again, on its own, through
``process_light`` and ``calibrate_measurements`` (the stages are deterministic), and the
database must hold exactly those values: each measurement's columns, each new star at the
position and with the catalog id of its first detection (ids in the order of first detection,
none within the identity radius of a star known before),
each catalog match with the catalog's own row, the zero point, the frame's columns, and every
measured star marked for its statistics. On SQLite and PostgreSQL, on a fresh night and again
after ``run --reprocess`` (which replaces every light's rows).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from run_snapshots import copy_night
from sqlalchemy import select

from clinepipe.calibrate.light import CalibrationContext, calibrate_measurements
from clinepipe.catalogs.match import separation_arcsec
from clinepipe.catalogs.star_ids import identity_radius
from clinepipe.config import load_config
from clinepipe.finite import finite_or_none
from clinepipe.run import pipeline
from clinepipe.run.light_stages import process_light
from clinepipe.run.lights_step import light_task
from clinepipe.run.masters_step import MasterChooser
from clinepipe.store.db import open_database
from clinepipe.store.tables import (
    catalog_matches,
    frames,
    measurements,
    star_stats_pending,
    stars,
    zero_points,
)

#: the measurement columns that come straight from the per-light arrays
FROM_ARRAYS = ("x", "y", "ra", "dec", "flux", "flux_err", "background", "inst_mag",
               "inst_mag_err", "fwhm", "flags")


def _value(v):
    """A stored value as the store gives it: None for NaN, Python scalars."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    return finite_or_none(v)


def _lights_only_run(cfg_path, monkeypatch, reprocess=False) -> None:
    """A run of ingest, masters and lights only (what the lights stored is left untouched)."""
    monkeypatch.setattr(pipeline, "RUN_STEPS",
                        (pipeline._ingest, pipeline._masters, pipeline._lights))
    pipeline.run_pipeline(load_config(cfg_path), reprocess=reprocess)


def _rows(conn, table, *where, order=None):
    stmt = select(table).where(*where).order_by(order if order is not None else table.c.id)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def _check_stored_lights(cfg, engine, tmp_path) -> int:
    """Measure every light again and compare the database with the results; the number of
    measurements."""
    context = CalibrationContext.load(cfg, None)  # no suspects yet: as the run had it
    chooser = MasterChooser(engine, cfg.paths.archive, cfg.site.telescope)
    with engine.connect() as conn:
        lights = conn.execute(select(frames).where(frames.c.kind == "light")
                              .order_by(frames.c.jd_mid, frames.c.raw_path)).all()
        star_rows = {r["id"]: r for r in _rows(conn, stars)}
        match_rows = {r["star_id"]: r for r in _rows(conn, catalog_matches)}
        pending = set(conn.scalars(select(star_stats_pending.c.star_id)))
        seen: dict[int, tuple[float, float]] = {}
        n_rows = 0
        for frame in lights:
            task = light_task(cfg, chooser, frame)
            # measured again beside the archive: the run's calibrated file stays as it is
            result = process_light(dataclasses.replace(task, output=tmp_path / "again.fits"))
            assert result.ok, result.message
            m, stats = result.measurements, result.stats
            calib = calibrate_measurements(cfg, frame.filter, m, context)
            keep = np.isfinite(m["ra"]) & np.isfinite(m["dec"])
            rows = _rows(conn, measurements, measurements.c.frame_id == frame.id)
            assert len(rows) == int(keep.sum()) > 0
            expected = {
                **{c: m[c][keep] for c in FROM_ARRAYS},
                "x": m["x"][keep] + 1.0, "y": m["y"][keep] + 1.0,  # 1-based pixels
                "mag": calib.mag[keep], "mag_err": calib.mag_err[keep],
                "in_ensemble": calib.in_ensemble[keep],
                "bjd_tdb": result.bjd_tdb[keep], "airmass": result.airmass[keep]}
            for col, values in expected.items():
                assert [r[col] for r in rows] == [_value(v) for v in values], col
            assert {(r["filter"], r["jd_mid"]) for r in rows} == {(frame.filter, frame.jd_mid)}

            # star identities: a star is new on the frame of its first detection, where it
            # takes the detection's position and catalog id; later detections lie within the
            # identity radius of it
            radius = identity_radius(cfg.stars.match_radius, stats.get("pixel_scale"))
            for row, i in zip(rows, np.flatnonzero(keep)):
                sid, star = row["star_id"], star_rows[row["star_id"]]
                if sid in seen:
                    sep = separation_arcsec(row["ra"], row["dec"], star["ra"], star["dec"])
                    assert sep <= radius
                    continue
                assert sid == max(seen, default=min(star_rows) - 1) + 1  # in detection order
                if seen:  # new: no star known before lies within the identity radius
                    known_ra, known_dec = np.array(list(seen.values())).T
                    assert separation_arcsec(row["ra"], row["dec"], known_ra,
                                             known_dec).min() > radius
                seen[sid] = (star["ra"], star["dec"])
                assert (star["ra"], star["dec"]) == (row["ra"], row["dec"])
                assert star["n_measurements"] == 0
                c = int(calib.cat_index[i])
                if c < 0:
                    assert star["catalog_id"] is None and sid not in match_rows
                    continue
                cat = calib.catalog
                assert star["catalog_id"] == str(cat.ids[c])
                match = match_rows[sid]
                assert (match["catalog"], match["catalog_id"], match["ra"], match["dec"],
                        match["separation"]) == (cat.name, str(cat.ids[c]), float(cat.ra[c]),
                                                 float(cat.dec[c]), float(calib.cat_sep[i]))
                mags = json.loads(match["mags"])
                assert mags.keys() == cat.mags.keys()
                for band, (mag, err) in mags.items():
                    assert mag == _value(cat.mags[band][c])
                    assert err == (_value(cat.errors[band][c]) if band in cat.errors else None)

            zp = _rows(conn, zero_points, zero_points.c.frame_id == frame.id)
            assert calib.zero_point is not None and len(zp) == 1
            z = calib.zero_point
            assert {k: zp[0][k] for k in ("filter", "catalog_band", "value", "error", "n_used",
                                          "n_candidates", "scatter", "color_term")} == {
                "filter": frame.filter, "catalog_band": calib.band, "value": z.value,
                "error": z.error, "n_used": z.n_used, "n_candidates": z.n_candidates,
                "scatter": finite_or_none(z.scatter) or 0.0, "color_term": None}

            f = conn.execute(select(frames).where(frames.c.id == frame.id)).one()._mapping
            note = stats.get("notes")
            assert (f["state"], f["stage"], f["reason"]) == (
                calib.state, calib.stage, "; ".join(r for r in (calib.reason, note) if r) or None)
            assert f["calibrated_path"] == task.output.relative_to(cfg.paths.archive).as_posix()
            assert (f["bias_master_id"], f["dark_master_id"], f["flat_master_id"]) == (
                task.bias.id, task.dark.id, task.flat.id)
            assert (f["fwhm"], f["elongation"], f["sky"], f["astrometric_rms"]) == tuple(
                _value(v) for v in (stats["fwhm"], stats["elongation"], stats["sky"],
                                    calib.astrometric_rms))
            assert (f["n_stars"], f["source_list"]) == (stats["n_stars"], stats["source_list"])
            assert f["airmass"] == float(np.nanmedian(result.airmass))
            n_rows += len(rows)
        # no star, catalog match or pending mark beyond the measured stars'
        assert set(star_rows) == set(seen) == pending
        assert set(match_rows) <= set(seen)
        # the known variables of the field got their names (within twice the match radius)
        known = calib.known  # the field's (every light is of one field)
        named = {r["name"]: r for r in star_rows.values() if r["name"] is not None}
        assert named, "the simulated night has a known variable"
        for name, star in named.items():
            k = list(known.names).index(name)
            assert star["var_type"] == (str(known.types[k]) or None)
            assert separation_arcsec(star["ra"], star["dec"], known.ra[k],
                                     known.dec[k]) <= 2 * cfg.stars.match_radius
    return n_rows


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_stored_lights_are_their_results(backend, small_night, tmp_path, monkeypatch,
                                         new_database_url):
    cfg_path = copy_night(small_night, tmp_path / "night", scheduler="serial")
    if backend != "sqlite":
        url = new_database_url(backend)
        text = cfg_path.read_text().replace('url = "sqlite:///clinepipe.db"', f'url = "{url}"')
        assert url in text
        cfg_path.write_text(text)
    cfg = load_config(cfg_path)
    _lights_only_run(cfg_path, monkeypatch)
    engine = open_database(cfg.database.url)
    try:
        with engine.connect() as conn:  # every light was new: stored without a DELETE
            assert set(conn.scalars(select(frames.c.state).where(frames.c.kind == "light"))) == {
                "calibrated"}
            first_ids = _rows(conn, stars)
        n = _check_stored_lights(cfg, engine, tmp_path)
        # --reprocess: every light's rows replaced (deleted, stored again), the stars kept
        _lights_only_run(cfg_path, monkeypatch, reprocess=True)
        assert _check_stored_lights(cfg, engine, tmp_path) == n
        with engine.connect() as conn:
            assert _rows(conn, stars) == first_ids
    finally:
        engine.dispose()
