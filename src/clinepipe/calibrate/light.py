"""The photometric calibration of one light: catalog match, ensemble zero point, calibrated magnitudes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from clinepipe.config import Config
from clinepipe.errors import CatalogUnavailable

log = logging.getLogger("clinepipe")

#: ``frames.stage`` of a light whose magnitudes come (or are to come) from the night's
#: catalog-free ensemble (:mod:`clinepipe.run.relative_step`), placed or not
RELATIVE_STAGE = "relative"
#: ``frames.reason`` of a light measured and waiting for the night's ensemble (this run's step)
RELATIVE_PENDING = "to be placed by the night's relative ensemble"


@dataclass
class FrameCalibration:
    """What the photometric calibration made of one light: its state, and per measurement the
    calibrated magnitudes and catalog match. Arrays have one entry per measurement, in the order
    of the frame's measurements (n,).

    Attributes
    ----------
    state : str
        The frame's state: ``"calibrated"``, ``"measured"`` (instrumental magnitudes only) or
        ``"waiting"`` (the catalog is unreachable; retried next run).
    stage, reason : str or None
        Where and why it stopped short of ``"calibrated"`` (``frames.stage``/``frames.reason``);
        ``stage`` is :data:`RELATIVE_STAGE` when the night's catalog-free ensemble is to place it.
    band : str or None
        The catalog band its filter maps to (``[catalog] filters``).
    zero_point : ZeroPointResult or None
        The ensemble zero point (:mod:`clinepipe.calibrate.zero_point`), None when not fitted.
    mag, mag_err : ndarray of float (n,)
        Calibrated magnitudes and their 1-sigma errors (mag); NaN when not calibrated.
    in_ensemble : ndarray of bool (n,)
        Whether the star was one of the comparison stars of the zero point.
    cat_index : ndarray of int (n,)
        Index of the matched catalog star, -1 when unmatched.
    cat_sep : ndarray of float (n,)
        Separation to that catalog star (arcsec), NaN when unmatched.
    astrometric_rms : float or None
        RMS of those separations (arcsec), None with fewer than 3 matches.
    catalog, known
        See the comments on the fields.
    """
    state: str
    stage: str | None
    reason: str | None
    band: str | None
    zero_point: object | None
    mag: np.ndarray
    mag_err: np.ndarray
    in_ensemble: np.ndarray
    cat_index: np.ndarray
    cat_sep: np.ndarray
    astrometric_rms: float | None
    catalog: object | None = None   # the Catalog the frame was matched against
    known: object | None = None     # the known variables of the field


def calibrate_measurements(cfg: Config, filter_name: str | None, m: np.ndarray,
                           context: CalibrationContext | None) -> FrameCalibration:
    """Match to the catalog and fit the frame's ensemble zero point (pure, no database).

    ``filter_name`` is the light's FILTER value (``[catalog] filters`` maps it to a catalog
    band); ``m`` its measurements (:data:`clinepipe.run.light_stages.MEASUREMENT_DTYPE`); the
    field's catalog and known variables come from ``context``, then
    :func:`calibrate_with_catalog`."""
    from clinepipe.catalogs.match import match_catalog

    n = len(m)
    nan = np.full(n, np.nan)
    none = np.full(n, -1)
    empty = np.zeros(n, dtype=bool)
    band = cfg.catalog.filters.get(filter_name or "")
    field = _field_of(m)
    if context is None or field is None:
        return FrameCalibration("measured", "calibrate", "no sky positions to match a catalog",
                                band, None, nan, nan, empty, none, nan, None, None, None)
    if context.catalog is None:  # [catalog] source = "none": never wait for a catalog
        return FrameCalibration("measured", RELATIVE_STAGE,
                                f'{RELATIVE_PENDING} ([catalog] source = "none")', band, None,
                                nan, nan, empty, none, nan, None, None,
                                _known_without_waiting(context, field))
    try:
        catalog = context.catalog.field(*field)
        known = context.known.field(*field) if context.known is not None else None
    except CatalogUnavailable as exc:
        if exc.message not in context.said:  # once per run, not once per frame
            context.said.add(exc.message)
            log.info("%s", exc.message)
        return FrameCalibration("waiting", "calibrate", f"waiting for catalog: {exc.reason}", band,
                                None, nan, nan, empty, none, nan, None, None, None)
    if band is None or band not in catalog.mags:
        idx, sep = match_catalog(m["ra"], m["dec"], catalog.ra, catalog.dec,
                                 cfg.catalog.match_radius)
        matched = idx >= 0
        rms = float(np.sqrt(np.mean(sep[matched] ** 2))) if matched.sum() >= 3 else None
        reason = f"{RELATIVE_PENDING} (no catalog band for filter '{filter_name}')"
        return FrameCalibration("measured", RELATIVE_STAGE, reason, band, None, nan, nan, empty,
                                idx, sep, rms, catalog, known)
    exclude = _known_variable_mask(cfg, m, known)
    exclude |= _known_variable_mask(cfg, m, getattr(context, "suspects", None))
    calib = calibrate_with_catalog(m, catalog, band, match_radius=cfg.catalog.match_radius,
                                   min_stars=cfg.catalog.min_stars, exclude=exclude)
    calib.known = known
    if calib.zero_point is None:
        # the field is not (well) in the catalog: the night's own ensemble places the frame
        calib.stage = RELATIVE_STAGE
        calib.reason = f"{RELATIVE_PENDING} ({calib.reason})"
    return calib


def calibrate_with_catalog(m: np.ndarray, catalog, band: str, *, match_radius: float,
                           min_stars: int, exclude=None) -> FrameCalibration:
    """Match one frame's measurements to a catalog and calibrate them with the ensemble zero
    point in ``band`` (pure: plain arrays in, a :class:`FrameCalibration` out).

    Parameters
    ----------
    m : ndarray of ``MEASUREMENT_DTYPE``
        The frame's measurements: ``ra``, ``dec`` (deg), ``inst_mag``, ``inst_mag_err`` (mag),
        ``flags`` (flagged stars never enter the ensemble).
    catalog : clinepipe.catalogs.Catalog
        Reference stars around the frame; ``band`` must be one of its magnitude columns.
    match_radius : float
        Largest catalog match distance (arcsec).
    min_stars : int
        Fewest comparison stars for a zero point; fewer leave the frame ``measured``.
    exclude : array_like of bool, optional
        Stars never to use as comparison stars (known or suspected variables).
    """
    from clinepipe.calibrate.zero_point import apply_zero_point, ensemble_zero_point
    from clinepipe.catalogs.match import match_catalog

    n = len(m)
    nan = np.full(n, np.nan)
    empty = np.zeros(n, dtype=bool)
    idx, sep = match_catalog(m["ra"], m["dec"], catalog.ra, catalog.dec, match_radius)
    matched = idx >= 0
    rms = float(np.sqrt(np.mean(sep[matched] ** 2))) if matched.sum() >= 3 else None
    cat_mag, cat_err = catalog.band(band)
    cm = np.where(matched, cat_mag[np.clip(idx, 0, None)], np.nan)
    ce = np.where(matched, cat_err[np.clip(idx, 0, None)], np.nan)
    excluded = m["flags"] != 0
    if exclude is not None:
        excluded = excluded | np.asarray(exclude, dtype=bool)
    zp = ensemble_zero_point(m["inst_mag"], cm, m["inst_mag_err"], ce, exclude=excluded)
    if zp.n_used < min_stars or not np.isfinite(zp.value):
        reason = f"too few comparison stars: {zp.n_used} < {min_stars}"
        return FrameCalibration("measured", "calibrate", reason, band, None, nan, nan, empty,
                                idx, sep, rms, catalog, None)
    mag, mag_err = apply_zero_point(m["inst_mag"], m["inst_mag_err"], zp)
    return FrameCalibration("calibrated", None, None, band, zp, mag, mag_err, zp.used, idx, sep,
                            rms, catalog, None)


def _known_without_waiting(context, field):
    """The known variables of the field, or None when their source cannot be had now: a run
    without a catalog must not make frames wait for the variable-star list either (the stars
    are named on a later frame or run)."""
    if context.known is None:
        return None
    try:
        return context.known.field(*field)
    except CatalogUnavailable as exc:
        log.info("%s", exc.message)
        return None


def known_variables_near(cfg: Config, m: np.ndarray, source) -> np.ndarray:
    """Which measurements lie on a known variable of ``source`` (a known-variable list with
    ``field(ra, dec, radius_deg)``, e.g. :func:`~clinepipe.catalogs.known_variables.known_variables_source`),
    as the run leaves them out of the ensemble: within twice ``[stars] match_radius``.

    Raises
    ------
    CatalogUnavailable
        The list cannot be read now.
    """
    field = _field_of(m)
    if source is None or field is None:
        return np.zeros(len(m), dtype=bool)
    return _known_variable_mask(cfg, m, source.field(*field))


def _known_variable_mask(cfg: Config, m: np.ndarray, known) -> np.ndarray:
    from clinepipe.catalogs.match import match_catalog

    if known is None or len(known) == 0:
        return np.zeros(len(m), dtype=bool)
    idx, _ = match_catalog(m["ra"], m["dec"], known.ra, known.dec, cfg.stars.match_radius * 2)
    return idx >= 0


@dataclass
class CalibrationContext:
    """The catalog and known-variable sources of a run, opened once."""

    catalog: object            # .field(ra, dec, radius_deg) -> Catalog
    known: object | None       # .field(ra, dec, radius_deg) -> KnownVariables, or None
    suspects: object | None = None  # KnownVariables of our suspected new variables (aavso.py)
    #: star ids given a known variable's name in this run (the name is set once, not per frame)
    named: set = field(default_factory=set)
    #: catalog problems already logged in this run (each is said once)
    said: set = field(default_factory=set)

    @classmethod
    def load(cls, cfg: Config, suspects=None) -> "CalibrationContext":
        """Open the configured catalog and known-variable sources; ``suspects`` are the
        positions of the suspected new variables found so far (the caller reads them from the
        database, so this stage never does)."""
        from clinepipe.catalogs.known_variables import known_variables_source
        from clinepipe.catalogs.sources import catalog_source

        catalog = None if cfg.catalog.source == "none" else catalog_source(cfg)
        return cls(catalog, known_variables_source(cfg), suspects)


def _field_of(m: np.ndarray) -> tuple[float, float, float] | None:
    """Centre (deg) and radius (deg) covering a frame's measured positions."""
    ok = np.isfinite(m["ra"]) & np.isfinite(m["dec"])
    if not ok.any():
        return None
    ra, dec = m["ra"][ok], m["dec"][ok]
    ra0 = float(np.degrees(np.arctan2(np.mean(np.sin(np.radians(ra))), np.mean(np.cos(np.radians(ra))))) % 360)
    dec0 = float(np.mean(dec))
    d = np.hypot(((ra - ra0 + 180) % 360 - 180) * np.cos(np.radians(dec0)), dec - dec0)
    return ra0, dec0, float(d.max()) + 1.0 / 60
