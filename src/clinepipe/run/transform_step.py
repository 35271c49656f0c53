"""The database side of the transformation (issue 21): a night's photometry for
:mod:`clinepipe.calibrate.transform`, the run's step that stores transformed magnitudes, and
the fit behind ``clinepipe transform --night``.

A night's measurements are read once: this telescope's calibrated lights (catalog-calibrated:
a relative night has no standard magnitudes), unflagged measurements, each frame's standard
band (its zero point's catalog band, when its filter's AAVSO code is that band: a tricolour
"Green" calibrated against V is reported as TG and never transformed), the stars' catalog
magnitudes, and which stars may serve as comparison stars (catalog stars that are neither
known nor suspected variables).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, insert, select

from clinepipe.calibrate.relative import RELATIVE_BAND
from clinepipe.calibrate.transform import Coefficient, NightPhotometry
from clinepipe.calibrate.transform_apply import TransformResult, apply_transform
from clinepipe.calibrate.transform_fit import fit_transform
from clinepipe.config import Config
from clinepipe.errors import ClinepipeError, UsageError
from clinepipe.products.aavso_rules import FILTER_NAMES
from clinepipe.store.models import (
    CatalogMatch,
    Frame,
    Measurement,
    Star,
    TransformedMag,
    ZeroPoint,
)

log = logging.getLogger("clinepipe")

_CHUNK = 500  # ids per IN (...) list: under every database's limit on bound parameters
#: the standard bands a transformation knows
TRANSFORM_BANDS = ("B", "V", "R", "I")


@dataclass(frozen=True)
class NightData:
    """A night's photometry and where it came from: ``measurement_id`` (n,) the database
    row of each measurement, ``frame_id`` (f,) of each frame, ``star_id`` (k,) of each star."""

    photometry: NightPhotometry
    measurement_id: np.ndarray
    frame_id: np.ndarray
    star_id: np.ndarray

    @property
    def bands(self) -> list[str]:
        """The standard bands observed that night, in B, V, R, I order."""
        seen = set(np.asarray(self.photometry.frame_band).astype(str))
        return [b for b in TRANSFORM_BANDS if b in seen]


def _standard_band(filter_name: str | None, catalog_band: str | None) -> str:
    """The frame's standard band when its filter is that band (AAVSO code), else ""."""
    code = FILTER_NAMES.get(" ".join(str(filter_name or "").lower().split()))
    return catalog_band if catalog_band in TRANSFORM_BANDS and code == catalog_band else ""


def load_night(cfg: Config, engine, night: str) -> NightData | None:
    """This telescope's calibrated photometry of ``night``, or None when it has none."""
    from clinepipe.store.db import session_scope

    with session_scope(engine) as s:
        frames = s.execute(
            select(Frame.id, Frame.filter, Frame.jd_mid, ZeroPoint.catalog_band)
            .join(ZeroPoint, ZeroPoint.frame_id == Frame.id)
            .where(Frame.telescope == cfg.site.telescope, Frame.night == night,
                   Frame.kind == "light", Frame.state == "calibrated",
                   ZeroPoint.catalog_band != RELATIVE_BAND)
            .order_by(Frame.jd_mid, Frame.id)).all()
        if not frames:
            return None
        frame_ids = np.array([f[0] for f in frames])
        rows = []
        for i in range(0, frame_ids.size, _CHUNK):
            rows += s.execute(
                select(Measurement.id, Measurement.frame_id, Measurement.star_id,
                       Measurement.inst_mag, Measurement.inst_mag_err)
                .where(Measurement.frame_id.in_(frame_ids[i:i + _CHUNK].tolist()),
                       Measurement.flags == 0, Measurement.inst_mag.is_not(None))).all()
        if not rows:
            return None
        star_ids = np.unique([r[2] for r in rows])
        stars, mags = {}, {}
        for i in range(0, star_ids.size, _CHUNK):
            chunk = star_ids[i:i + _CHUNK].tolist()
            stars.update({sid: name is None and var is None for sid, name, var in s.execute(
                select(Star.id, Star.name, Star.var_type).where(Star.id.in_(chunk)))})
            for sid, text in s.execute(select(CatalogMatch.star_id, CatalogMatch.mags)
                                       .where(CatalogMatch.star_id.in_(chunk))
                                       .order_by(CatalogMatch.id.desc())):
                mags[sid] = text  # the first catalog match wins (read last)
    cat, cat_err = _catalog_arrays(star_ids, mags)
    m = np.array([(r[0], r[1], r[2], r[3], np.nan if r[4] is None else r[4]) for r in rows],
                 dtype=float)
    frame = np.searchsorted(frame_ids, m[:, 1].astype(int), sorter=np.argsort(frame_ids))
    frame = np.argsort(frame_ids)[frame]
    star = np.searchsorted(star_ids, m[:, 2].astype(int))
    constant = np.array([stars.get(int(sid), False) for sid in star_ids])
    in_catalog = np.zeros(star_ids.size, bool)
    for band in cat:
        in_catalog |= np.isfinite(cat[band])
    photometry = NightPhotometry(
        frame=frame, star=star, inst=m[:, 3], inst_err=m[:, 4],
        comparison=(constant & in_catalog)[star],
        frame_band=np.array([_standard_band(f[1], f[3]) for f in frames]),
        frame_jd=np.array([f[2] for f in frames], float), catalog=cat, catalog_err=cat_err)
    return NightData(photometry, m[:, 0].astype(int), frame_ids, star_ids)


def _catalog_arrays(star_ids: np.ndarray, mags: dict) -> tuple[dict, dict]:
    """({band: (k,) magnitude}, {band: (k,) error}) of the standard bands, NaN where unknown."""
    cat = {b: np.full(star_ids.size, np.nan) for b in TRANSFORM_BANDS}
    err = {b: np.full(star_ids.size, np.nan) for b in TRANSFORM_BANDS}
    for i, sid in enumerate(star_ids.tolist()):
        try:
            values = json.loads(mags.get(sid) or "{}")
        except ValueError:
            continue
        for band in TRANSFORM_BANDS:
            v = values.get(band) if isinstance(values, dict) else None
            v = v if isinstance(v, (list, tuple)) else [v]
            if v and isinstance(v[0], (int, float)):
                cat[band][i] = v[0]
                if len(v) > 1 and isinstance(v[1], (int, float)):
                    err[band][i] = v[1]
    return cat, err


def fit_night(cfg: Config, engine, night: str) -> tuple[dict[str, Coefficient], NightData]:
    """``clinepipe transform --night``: the coefficients fitted on ``night`` (a standard
    field), with the night's data (for the plot).

    Raises
    ------
    UsageError
        when ``night`` is not ``YYYYMMDD``.
    ClinepipeError
        when the night has no calibrated lights in B, V, R or I, or nothing could be fitted.
    """
    if len(night) != 8 or not night.isdigit():
        raise UsageError(f"--night {night!r} is not a night YYYYMMDD.", reason="bad night")
    data = load_night(cfg, engine, night)
    if data is None or not data.bands:
        raise ClinepipeError(f"night {night}: no catalog-calibrated lights in B, V, R or I "
                             f"of this telescope to fit transformation coefficients from.",
                             reason="no standard-band lights")
    fitted = fit_transform(data.photometry)
    if not any(np.isfinite(c.value) for c in fitted.values()):
        why = "; ".join(f"{n}: {c.reason}" for n, c in fitted.items()) or "no catalog colours"
        raise ClinepipeError(f"night {night}: no transformation coefficient could be fitted "
                             f"({why}).", reason="no coefficients")
    return fitted, data


def transform_step(cfg: Config, engine, run_id: int, also_runs=()) -> int:
    """The run's step after the colour terms: :func:`transform_nights` over every night this
    run (or a killed run in ``also_runs``) touched. Never raises: a failure is logged and
    costs only the transformed magnitudes.

    Returns
    -------
    int
        Measurements transformed.
    """
    from clinepipe.store.queries import nights_of_runs

    try:
        return transform_nights(cfg, engine, nights_of_runs(engine, [run_id, *also_runs]))
    except Exception:
        log.exception("the transformed magnitudes could not be made")
        return 0


def transform_nights(cfg: Config, engine, nights) -> int:
    """Store transformed magnitudes (``transformed_mags``) for each of ``nights`` that has
    this telescope's lights in two or more standard bands, with ``[transform]``'s
    coefficients (and their ``_sigma`` errors); without ``[transform]`` the nights'
    transformed magnitudes are removed (their AAVSO files then say TRANS=NO). Each night is redone whole, in one transaction;
    a night that fails is logged and the others go on.

    Returns
    -------
    int
        Measurements transformed.
    """
    coefficients = cfg.transform.coefficients
    done = 0
    for night in nights:
        try:
            data = load_night(cfg, engine, night)
            result = None
            if coefficients and data is not None and len(data.bands) >= 2:
                result = apply_transform(data.photometry, coefficients,
                                         cfg.transform.errors)
                for band, why in sorted(result.reasons.items()):
                    log.info("night %s, %s: not transformed (%s)", night, band, why)
            done += _store(engine, data, result)
            if result is not None:
                log.info("night %s: %d magnitude(s) transformed (%s)", night,
                         int(np.isfinite(result.mag).sum()), "; ".join(result.notes.values()))
        except Exception:
            log.exception("the transformed magnitudes of night %s could not be made", night)
    return done


def _store(engine, data: NightData | None, result: TransformResult | None) -> int:
    """Replace the night's transformed magnitudes by ``result`` (none when None)."""
    from clinepipe.store.db import session_scope

    if data is None:
        return 0
    ids = data.measurement_id
    rows = []
    if result is not None:
        ok = np.isfinite(result.mag) & np.isfinite(result.mag_err)
        rows = [{"measurement_id": int(i), "mag": float(mg), "mag_err": float(e),
                 "colour": float(c), "colour_err": float(ce), "coefficients": result.notes[n]}
                for i, mg, e, c, ce, n in zip(ids[ok], result.mag[ok], result.mag_err[ok],
                                              result.colour[ok], result.colour_err[ok],
                                              result.coefficient[ok])]
    with session_scope(engine) as s:
        for i in range(0, ids.size, _CHUNK):
            s.execute(delete(TransformedMag).where(
                TransformedMag.measurement_id.in_(ids[i:i + _CHUNK].tolist())))
        if rows:
            s.execute(insert(TransformedMag), rows)
    return len(rows)
