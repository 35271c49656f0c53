"""A light's database edge: star identities, known-variable names, measurements and zero point, in the caller's transaction."""

from __future__ import annotations

import json
import logging

import numpy as np
from sqlalchemy import bindparam, insert, select, text, update

from clinepipe.config import Config
from clinepipe.run.light_stages import LightResult, LightTask
from clinepipe.store.models import Frame, Star, utc_now
from clinepipe.store.tables import catalog_matches, frames, stars, zero_points

log = logging.getLogger("clinepipe")
from clinepipe.calibrate.light import (
    CalibrationContext,
    FrameCalibration,
    calibrate_measurements,
)
from clinepipe.finite import finite_floats_or_none, finite_or_none

#: PostgreSQL advisory-lock key held while a frame's stars are identified (ASCII "clinestr")
STARS_LOCK_KEY = 0x636C696E65737472

#: frame states that never have measurements or a zero point: only ingest writes "ingested",
#: on a new row or on a file that failed at ingest, while a light's results are stored in the
#: transaction that moves it to another state (and a failed light's are deleted then)
NO_RESULTS_STATES = frozenset({"ingested"})





def store_light_result(cfg: Config, s, run_id: int, frame: Frame, result: LightResult,
                        context: CalibrationContext | None, task: LightTask | None = None) -> None:
    """Write one light's outcome (replacing earlier results) in the session ``s``, whose
    transaction the caller commits: all of the light's rows go in that one transaction."""
    from clinepipe.store.measurement_rows import (
        delete_frame_results,
        insert_measurement_columns,
    )

    conn = s.connection()
    if frame.state not in NO_RESULTS_STATES:  # (a light never measured has none to replace)
        delete_frame_results(s, frame.id)
    if not result.ok:
        state = "waiting" if result.waiting else "failed"
        conn.execute(_FRAME_UPDATE, {"frame": frame.id, "state": state, "stage": result.stage,
                                     "reason": result.reason, "run_id": run_id,
                                     "updated_at": utc_now()})
        frame.state = state  # (the caller's copy: a second store of it replaces these)
        (log.info if result.waiting else log.warning)("%s", result.message)
        return

    m = result.measurements
    stats = result.stats
    calib = calibrate_measurements(cfg, frame.filter, m, context)
    # a note of the per-light work (e.g. a damaged .SRC replaced by own detection) is kept
    # with the frame: the worker that made it may have been a Dask process with its own log
    note = stats.get("notes")
    reason = "; ".join(r for r in (calib.reason, note) if r) or None
    if result.bjd_tdb is not None and result.airmass is not None:  # computed with the light
        bjd, x_air = result.bjd_tdb, result.airmass
    else:
        from clinepipe.photometry.times import airmass as airmass_of
        from clinepipe.photometry.times import bjd_tdb

        site = cfg.site
        jd = np.full(len(m), frame.jd_mid)
        finite = np.isfinite(m["ra"]) & np.isfinite(m["dec"])
        x_air = np.full(len(m), np.nan)
        bjd = np.full(len(m), np.nan)
        if finite.any():
            x_air[finite] = airmass_of(m["ra"][finite], m["dec"][finite], frame.jd_mid,
                                       site.latitude, site.longitude)
            bjd[finite] = bjd_tdb(jd[finite], m["ra"][finite], m["dec"][finite], site.latitude,
                                  site.longitude, site.elevation)
    centre_air = float(np.nanmedian(x_air)) if np.isfinite(x_air).any() else None
    values = {
        "state": calib.state, "stage": calib.stage, "reason": reason, "run_id": run_id,
        # keep_calibrated = "none": no file was written, so no path is stored
        "calibrated_path": (None if cfg.archive.keep_calibrated == "none" else
                            result.calibrated_path.relative_to(cfg.paths.archive).as_posix()),
        "bias_master_id": task.bias.id if task else None,
        "dark_master_id": task.dark.id if task else None,
        "flat_master_id": task.flat.id if task else None,
        "fwhm": finite_or_none(stats.get("fwhm")),
        "elongation": finite_or_none(stats.get("elongation")),
        "sky": finite_or_none(stats.get("sky")), "n_stars": stats.get("n_stars"),
        "airmass": centre_air, "astrometric_rms": finite_or_none(calib.astrometric_rms),
        "source_list": stats.get("source_list"), "updated_at": utc_now()}
    # the frame's row first: on SQLite this first write of the transaction takes the
    # database's write lock, so the star list is read and extended under it (another
    # telescope's run waits), as the advisory lock does on PostgreSQL
    conn.execute(_FRAME_UPDATE, {"frame": frame.id, **values})
    star_ids = _identify_stars(cfg, s, m, calib, stats.get("pixel_scale"))
    _name_known_variables(cfg, s, m, star_ids, calib.known,
                          context.named if context is not None else None)
    keep = star_ids > 0
    insert_measurement_columns(s, _measurement_columns(
        frame, m[keep], star_ids[keep], bjd[keep], x_air[keep], calib.mag[keep],
        calib.mag_err[keep], calib.in_ensemble[keep]))
    if calib.zero_point is not None:
        zp = calib.zero_point
        conn.execute(_ZERO_POINT_INSERT, {
            "frame_id": frame.id, "filter": frame.filter, "catalog_band": calib.band,
            "value": zp.value, "error": zp.error, "n_used": zp.n_used,
            "n_candidates": zp.n_candidates, "scatter": finite_or_none(zp.scatter) or 0.0,
            "color_term": None})
    frame.state = calib.state
    log.info("%s: %s, %d stars%s%s", frame.raw_path, calib.state, int(keep.sum()),
             f", zero point {calib.zero_point.value:.3f} ± {calib.zero_point.error:.3f}"
             if calib.zero_point is not None else "", f" ({note})" if note else "")


#: the zero point of a light (Core, the statement built once)
_ZERO_POINT_INSERT = insert(zero_points)


#: ``UPDATE frames SET … WHERE id = :frame`` (Core, built once): the SET clause has the
#: columns named by the parameters given with ``frame``
_FRAME_UPDATE = update(frames).where(frames.c.id == bindparam("frame"))


def _measurement_columns(frame: Frame, m: np.ndarray, star_ids, bjd, airmass, mag, mag_err,
                         in_ensemble) -> dict[str, list]:
    """``measurements`` rows of one frame, column by column: name -> one value per row, None
    for NaN (pixels become 1-based)."""
    n = len(m)
    return {
        "frame_id": [frame.id] * n, "star_id": np.asarray(star_ids, dtype=np.int64).tolist(),
        "filter": [frame.filter] * n, "jd_mid": [frame.jd_mid] * n,
        "bjd_tdb": finite_floats_or_none(bjd),
        "x": (m["x"] + 1.0).tolist(), "y": (m["y"] + 1.0).tolist(),
        "ra": finite_floats_or_none(m["ra"]), "dec": finite_floats_or_none(m["dec"]),
        "flux": m["flux"].astype(float).tolist(), "flux_err": m["flux_err"].astype(float).tolist(),
        "background": m["background"].astype(float).tolist(),
        "inst_mag": finite_floats_or_none(m["inst_mag"]),
        "inst_mag_err": finite_floats_or_none(m["inst_mag_err"]),
        "mag": finite_floats_or_none(mag), "mag_err": finite_floats_or_none(mag_err),
        "fwhm": finite_floats_or_none(m["fwhm"]), "airmass": finite_floats_or_none(airmass),
        "flags": m["flags"].astype(np.int64).tolist(),
        "in_ensemble": np.asarray(in_ensemble, dtype=bool).tolist(),
    }


#: the known stars in a box of sky: id, ra, dec and whether it has no catalog counterpart
_STARS_IN_BOX = (
    select(stars.c.id, stars.c.ra, stars.c.dec, stars.c.catalog_id.is_(None))
    .where(stars.c.dec.between(bindparam("lo_dec"), bindparam("hi_dec")),
           stars.c.ra.between(bindparam("lo_ra"), bindparam("hi_ra")))
    .order_by(stars.c.id))


def _identify_stars(cfg: Config, s, m: np.ndarray, calib: FrameCalibration,
                    pixel_scale: float | None = None) -> np.ndarray:
    """Star ids for the frame's measurements (new stars are created); 0 = not stored.
    ``pixel_scale`` (arcsec/px) widens ``[stars] match_radius`` to a pixel on wide fields."""
    from clinepipe.catalogs.star_ids import assign_stars, identity_radius

    ra, dec = m["ra"], m["dec"]
    ids = np.zeros(len(m), dtype=np.int64)
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        return ids
    if s.get_bind().dialect.name == "postgresql":
        # runs of other telescopes may write at the same time: one frame at a time reads the
        # star list and adds its new stars (until this frame's transaction ends), so a star
        # seen by two telescopes at once still gets one id
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": STARS_LOCK_KEY})
    radius = identity_radius(cfg.stars.match_radius, pixel_scale)
    margin = radius / 3600.0 * 2
    cosd = max(np.cos(np.radians(np.nanmedian(dec[ok]))), 1e-3)
    lo_ra, hi_ra = np.nanmin(ra[ok]) - margin / cosd, np.nanmax(ra[ok]) + margin / cosd
    lo_dec, hi_dec = np.nanmin(dec[ok]) - margin, np.nanmax(dec[ok]) + margin
    st = stars.c
    conn = s.connection()
    known = _known_stars(s, (lo_ra, hi_ra, lo_dec, hi_dec))
    k_id, k_ra, k_dec, k_uncatalogued = known.within(lo_ra, hi_ra, lo_dec, hi_dec)
    where = np.flatnonzero(ok)
    index = assign_stars(ra[ok], dec[ok], k_ra, k_dec, radius)
    matched = index >= 0
    ids[where[matched]] = k_id[index[matched]]
    catalog = calib.catalog
    matches = []  # catalog_matches rows
    if catalog is not None:
        # stars first seen without a catalog (source "none", a field the catalog did not
        # cover then) get their counterpart once a catalog covers them
        late = where[matched][k_uncatalogued[index[matched]]]
        late = late[calib.cat_index[late] >= 0]
        for i in late:
            cat_id = str(catalog.ids[calib.cat_index[i]])
            conn.execute(update(stars).where(st.id == int(ids[i]), st.catalog_id.is_(None))
                         .values(catalog_id=cat_id))
            matches.append(_catalog_match(int(ids[i]), cat_id, catalog, calib, i))
        if len(late):
            known.catalogued(ids[late])
    new_rows = where[index == -1]
    if len(new_rows):
        cat_ids = [None] * len(new_rows)
        if catalog is not None:
            c = calib.cat_index[new_rows]
            cat_ids = [str(catalog.ids[k]) if k >= 0 else None for k in c.tolist()]
        now = utc_now()
        # one INSERT … RETURNING for all of them: the ids in the rows' order, as the ORM's
        # flush of as many Star objects gave them
        new_ids = conn.execute(
            insert(stars).returning(st.id, sort_by_parameter_order=True),
            [{"ra": r, "dec": d, "catalog_id": c, "n_measurements": 0, "created_at": now}
             for r, d, c in zip(ra[new_rows].tolist(), dec[new_rows].tolist(), cat_ids)]
        ).scalars().all()
        ids[new_rows] = new_ids
        known.add(new_ids, ra[new_rows], dec[new_rows], [c is None for c in cat_ids])
        matches += [_catalog_match(star_id, cat_id, catalog, calib, i)
                    for i, star_id, cat_id in zip(new_rows.tolist(), new_ids, cat_ids)
                    if cat_id is not None]
    if matches:
        conn.execute(insert(catalog_matches), matches)
    return ids


class _KnownStars:
    """The stars of a region of sky as one transaction sees them, in id order: ``id``, ``ra``,
    ``dec`` (deg) and ``uncatalogued`` (no catalog counterpart yet).

    Read once per transaction and kept up to date with the stars it adds or gives a catalog
    id: while the transaction holds the star list (SQLite: its write lock, which the light's
    first write takes; PostgreSQL: :data:`STARS_LOCK_KEY`, until it ends) no one else changes
    it, so the lights of one batch (``store.db.BatchedTransaction``) need not read it again."""

    def __init__(self, transaction, region: tuple, rows):
        self.transaction, self.region = transaction, region
        cols = list(zip(*rows)) or [(), (), (), ()]
        self.id = np.array(cols[0], dtype=np.int64)
        self.ra, self.dec = np.array(cols[1], dtype=float), np.array(cols[2], dtype=float)
        self.uncatalogued = np.array(cols[3], dtype=bool)

    def covers(self, lo_ra, hi_ra, lo_dec, hi_dec) -> bool:
        r = self.region
        return r[0] <= lo_ra and hi_ra <= r[1] and r[2] <= lo_dec and hi_dec <= r[3]

    def within(self, lo_ra, hi_ra, lo_dec, hi_dec) -> tuple:
        """(id, ra, dec, uncatalogued) of the stars in the box, as ``_STARS_IN_BOX`` reads
        them (bounds included, id order)."""
        keep = ((self.dec >= lo_dec) & (self.dec <= hi_dec)
                & (self.ra >= lo_ra) & (self.ra <= hi_ra))
        return self.id[keep], self.ra[keep], self.dec[keep], self.uncatalogued[keep]

    def add(self, ids, ra, dec, uncatalogued) -> None:
        """Stars this transaction created."""
        self.id = np.concatenate([self.id, np.asarray(ids, dtype=np.int64)])
        self.ra = np.concatenate([self.ra, ra])
        self.dec = np.concatenate([self.dec, dec])
        self.uncatalogued = np.concatenate([self.uncatalogued,
                                            np.asarray(uncatalogued, dtype=bool)])
        if np.any(np.diff(self.id) <= 0):  # (new ids come last: a sequence only grows)
            order = np.argsort(self.id, kind="stable")
            self.id, self.ra, self.dec, self.uncatalogued = (
                a[order] for a in (self.id, self.ra, self.dec, self.uncatalogued))

    def catalogued(self, ids) -> None:
        """Stars this transaction gave a catalog id."""
        self.uncatalogued[np.isin(self.id, ids)] = False


#: where a session keeps its :class:`_KnownStars` (``Session.info``)
_KNOWN_STARS = "clinepipe.known_stars"


def _known_stars(s, box: tuple) -> _KnownStars:
    """The star list around ``box`` (lo_ra, hi_ra, lo_dec, hi_dec; deg) in the session's
    transaction: read from the database (a region of twice the box's width and height) unless
    this transaction has read a region covering the box already."""
    transaction = s.get_transaction()
    known = s.info.get(_KNOWN_STARS)
    if known is not None and known.transaction is transaction and known.covers(*box):
        return known
    lo_ra, hi_ra, lo_dec, hi_dec = box
    half_ra, half_dec = (hi_ra - lo_ra) / 2, (hi_dec - lo_dec) / 2
    region = (lo_ra - half_ra, hi_ra + half_ra, lo_dec - half_dec, hi_dec + half_dec)
    rows = s.connection().execute(_STARS_IN_BOX, dict(zip(
        ("lo_ra", "hi_ra", "lo_dec", "hi_dec"), region))).all()
    known = _KnownStars(transaction, region, rows)
    # a savepoint rolled back would take stars with it: kept for the whole transaction only
    s.info[_KNOWN_STARS] = None if s.in_nested_transaction() else known
    return known


def _catalog_match(star_id: int, cat_id: str, catalog, calib: FrameCalibration,
                   i: int) -> dict:
    """The ``catalog_matches`` row of star ``star_id``, measurement ``i`` of the frame."""
    c = calib.cat_index[i]
    return {"star_id": star_id, "catalog": catalog.name, "catalog_id": cat_id,
            "ra": float(catalog.ra[c]), "dec": float(catalog.dec[c]),
            "separation": float(calib.cat_sep[i]),
            "mags": json.dumps({b: [finite_or_none(v[c]),
                                    finite_or_none(catalog.errors.get(b, v)[c])
                                    if b in catalog.errors else None]
                                for b, v in catalog.mags.items()})}


def _name_known_variables(cfg: Config, s, m: np.ndarray, star_ids: np.ndarray, known,
                          named: set | None = None) -> None:
    """Give this frame's stars that match a known variable its name, type and period.

    ``named``: the star ids this run has already given a name (skipped, and added to)."""
    from clinepipe.catalogs.match import match_catalog

    if known is None or len(known) == 0:
        return
    idx, _ = match_catalog(m["ra"], m["dec"], known.ra, known.dec, cfg.stars.match_radius * 2)
    for i in np.flatnonzero((idx >= 0) & (star_ids > 0)):
        k = idx[i]
        if named is not None:
            if int(star_ids[i]) in named:
                continue
            named.add(int(star_ids[i]))
        s.execute(update(Star).where(Star.id == int(star_ids[i]), Star.name.is_(None)).values(
            name=str(known.names[k]), var_type=str(known.types[k]) or None,
            var_period=finite_or_none(known.periods[k])))


