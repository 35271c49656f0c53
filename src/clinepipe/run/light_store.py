"""A light's database edge: star identities, known-variable names, measurements and zero point, in the caller's transaction."""

from __future__ import annotations

import json
import logging

import numpy as np
from sqlalchemy import insert, select, text, update

from clinepipe.config import Config
from clinepipe.run.light_stages import LightResult, LightTask
from clinepipe.store.models import CatalogMatch, Frame, Star, ZeroPoint, utc_now

log = logging.getLogger("clinepipe")
from clinepipe.calibrate.light import (
    CalibrationContext,
    FrameCalibration,
    calibrate_measurements,
)
from clinepipe.finite import finite_or_none

#: PostgreSQL advisory-lock key held while a frame's stars are identified (ASCII "clinestr")
STARS_LOCK_KEY = 0x636C696E65737472





def store_light_result(cfg: Config, s, run_id: int, frame: Frame, result: LightResult,
                        context: CalibrationContext | None, task: LightTask | None = None) -> None:
    """Write one light's outcome (replacing earlier results) in the session ``s``, whose
    transaction the caller commits: all of the light's rows go in that one transaction."""
    from clinepipe.store.measurement_rows import (
        delete_frame_results,
        insert_measurements,
    )

    if not result.ok:
        delete_frame_results(s, frame.id)
        s.execute(update(Frame).where(Frame.id == frame.id).values(
            state="waiting" if result.waiting else "failed", stage=result.stage,
            reason=result.reason, run_id=run_id, updated_at=utc_now()))
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
    delete_frame_results(s, frame.id)
    star_ids = _identify_stars(cfg, s, m, calib, stats.get("pixel_scale"))
    _name_known_variables(cfg, s, m, star_ids, calib.known,
                          context.named if context is not None else None)
    keep = star_ids > 0
    rows = _measurement_rows(frame, m[keep], star_ids[keep], bjd[keep], x_air[keep],
                             calib.mag[keep], calib.mag_err[keep], calib.in_ensemble[keep])
    insert_measurements(s, rows)
    if calib.zero_point is not None:
        zp = calib.zero_point
        s.execute(insert(ZeroPoint).values(
            frame_id=frame.id, filter=frame.filter, catalog_band=calib.band, value=zp.value,
            error=zp.error, n_used=zp.n_used, n_candidates=zp.n_candidates,
            scatter=finite_or_none(zp.scatter) or 0.0, color_term=None))
    centre_air = float(np.nanmedian(x_air)) if np.isfinite(x_air).any() else None
    s.execute(update(Frame).where(Frame.id == frame.id).values(
        state=calib.state, stage=calib.stage, reason=reason, run_id=run_id,
        # keep_calibrated = "none": no file was written, so no path is stored
        calibrated_path=(None if cfg.archive.keep_calibrated == "none" else
                         result.calibrated_path.relative_to(cfg.paths.archive).as_posix()),
        bias_master_id=task.bias.id if task else None,
        dark_master_id=task.dark.id if task else None,
        flat_master_id=task.flat.id if task else None, fwhm=finite_or_none(stats.get("fwhm")),
        elongation=finite_or_none(stats.get("elongation")), sky=finite_or_none(stats.get("sky")),
        n_stars=stats.get("n_stars"), airmass=centre_air,
        astrometric_rms=finite_or_none(calib.astrometric_rms), source_list=stats.get("source_list"),
        updated_at=utc_now()))
    log.info("%s: %s, %d stars%s%s", frame.raw_path, calib.state, int(keep.sum()),
             f", zero point {calib.zero_point.value:.3f} ± {calib.zero_point.error:.3f}"
             if calib.zero_point is not None else "", f" ({note})" if note else "")


def _nullable(values) -> list:
    """Floats for the database, one per element, with None for NaN (column-wise, no per-row
    function calls)."""
    a = np.asarray(values, dtype=float)
    out = a.astype(object)
    out[~np.isfinite(a)] = None
    return out.tolist()


def _measurement_rows(frame: Frame, m: np.ndarray, star_ids, bjd, airmass, mag, mag_err,
                      in_ensemble) -> list[dict]:
    """``measurements`` rows of one frame, built column by column (pixels become 1-based)."""
    n = len(m)
    columns = {
        "frame_id": [frame.id] * n, "star_id": np.asarray(star_ids, dtype=np.int64).tolist(),
        "filter": [frame.filter] * n, "jd_mid": [frame.jd_mid] * n, "bjd_tdb": _nullable(bjd),
        "x": (m["x"] + 1.0).tolist(), "y": (m["y"] + 1.0).tolist(),
        "ra": _nullable(m["ra"]), "dec": _nullable(m["dec"]),
        "flux": m["flux"].astype(float).tolist(), "flux_err": m["flux_err"].astype(float).tolist(),
        "background": m["background"].astype(float).tolist(),
        "inst_mag": _nullable(m["inst_mag"]), "inst_mag_err": _nullable(m["inst_mag_err"]),
        "mag": _nullable(mag), "mag_err": _nullable(mag_err), "fwhm": _nullable(m["fwhm"]),
        "airmass": _nullable(airmass), "flags": m["flags"].astype(np.int64).tolist(),
        "in_ensemble": np.asarray(in_ensemble, dtype=bool).tolist(),
    }
    keys = list(columns)
    return [dict(zip(keys, values)) for values in zip(*columns.values())]


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
    known = s.execute(select(Star.id, Star.ra, Star.dec, Star.catalog_id.is_(None)).where(
        Star.dec.between(lo_dec, hi_dec), Star.ra.between(lo_ra, hi_ra))
        .order_by(Star.id)).all()
    k_id = np.array([r[0] for r in known], dtype=np.int64)
    k_ra = np.array([r[1] for r in known], dtype=float)
    k_dec = np.array([r[2] for r in known], dtype=float)
    k_uncatalogued = np.array([bool(r[3]) for r in known], dtype=bool)
    where = np.flatnonzero(ok)
    index = assign_stars(ra[ok], dec[ok], k_ra, k_dec, radius)
    matched = index >= 0
    ids[where[matched]] = k_id[index[matched]]
    catalog = calib.catalog
    if catalog is not None:
        # stars first seen without a catalog (source "none", a field the catalog did not
        # cover then) get their counterpart once a catalog covers them
        late = where[matched][k_uncatalogued[index[matched]]]
        for i in late[calib.cat_index[late] >= 0]:
            cat_id = str(catalog.ids[calib.cat_index[i]])
            s.execute(update(Star).where(Star.id == int(ids[i]), Star.catalog_id.is_(None))
                      .values(catalog_id=cat_id))
            _add_catalog_match(s, int(ids[i]), cat_id, catalog, calib, i)
    new_rows = where[index == -1]
    new_stars = []
    for i in new_rows:
        cat_id = None
        if catalog is not None and calib.cat_index[i] >= 0:
            cat_id = str(catalog.ids[calib.cat_index[i]])
        new_stars.append(Star(ra=float(ra[i]), dec=float(dec[i]), catalog_id=cat_id,
                              n_measurements=0, created_at=utc_now()))
    if new_stars:
        s.add_all(new_stars)
        s.flush()
        for i, star in zip(new_rows, new_stars):
            ids[i] = star.id
            if star.catalog_id is not None:
                _add_catalog_match(s, star.id, star.catalog_id, catalog, calib, i)
    return ids


def _add_catalog_match(s, star_id: int, cat_id: str, catalog, calib: FrameCalibration,
                       i: int) -> None:
    """The ``catalog_matches`` row of star ``star_id``, measurement ``i`` of the frame."""
    c = calib.cat_index[i]
    s.add(CatalogMatch(star_id=star_id, catalog=catalog.name, catalog_id=cat_id,
                       ra=float(catalog.ra[c]), dec=float(catalog.dec[c]),
                       separation=float(calib.cat_sep[i]),
                       mags=json.dumps({b: [finite_or_none(v[c]), finite_or_none(catalog.errors.get(b, v)[c])
                                            if b in catalog.errors else None]
                                        for b, v in catalog.mags.items()})))


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


