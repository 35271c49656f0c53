"""A planet's night from the archive: the calibrated lights whose footprint holds its host
(with the host's BJD_TDB on each), and the host and the candidate comparison stars measured
again on them with the pipeline's own photometry (``photometry.background.measure_background``
and ``photometry.aperture.aperture_photometry``, as the light stages use them) at a grid of
aperture radii. Used by :mod:`clinepipe.run.transit_fits`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sqlalchemy import select

from clinepipe.ccd.reduced_files import read_calibrated_header
from clinepipe.config import Config
from clinepipe.errors import BadInput
from clinepipe.store.models import CatalogMatch, Frame, Star
from clinepipe.transits.targets import TransitTarget

__all__ = ["APERTURE_FACTORS", "NightFrames", "NightLightCurve", "at_known_star",
           "brightness", "in_transit_points", "measure_night", "stars_near", "target_nights"]

#: aperture radii tried, in units of the stored aperture (``[photometry] aperture``)
APERTURE_FACTORS = (0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0)
#: a star closer than this to an edge (px, beyond the largest aperture) is not measured
EDGE_MARGIN_PX = 3.0
#: quality flags that keep a frame out of a transit light curve (the star images are smeared)
EXCLUDED_QC = ("trailed", "focus")


@dataclass(frozen=True)
class NightFrames:
    """One night's (and filter's) calibrated lights holding the host: frame ids, calibrated
    paths, UTC JD mid-exposure (d), BJD_TDB of the host (d), exposure (s), FWHM (px),
    binning, gain (e-/ADU) and the celestial WCS of each."""

    night: str
    filter: str
    frame_ids: np.ndarray
    paths: tuple[Path, ...]
    jd_mid: np.ndarray
    bjd: np.ndarray
    exptime: np.ndarray
    fwhm: np.ndarray
    binning: int
    gain: np.ndarray
    wcs: tuple


@dataclass(frozen=True, eq=False)
class NightLightCurve:
    """Photometry of the host (column 0) and the candidates on each frame, at each radius."""

    frames: NightFrames
    star_ids: np.ndarray            #: DB star id per column (-1: the host is not a DB star)
    grid: dict                      #: radius (px) -> (flux, flux_err), (n_frames, n_stars)
    flags: np.ndarray               #: (n_frames, n_stars) photometry flags at the base radius
    sky: np.ndarray                 #: host's background (ADU/px) per frame
    x: np.ndarray                   #: host's 0-based pixel position per frame
    y: np.ndarray
    mag: np.ndarray                 #: catalog magnitude in the filter's band (NaN: unknown)
    colour: np.ndarray              #: catalog B-V (NaN: unknown)
    variable: np.ndarray            #: known or suspected variable
    aperture: float                 #: the stored aperture radius (px), a key of ``grid``
    ra: np.ndarray | None = None    #: (n_stars,) where each star was measured (deg)
    dec: np.ndarray | None = None
    star_x: np.ndarray | None = None  #: (n_frames, n_stars) 0-based pixel positions
    star_y: np.ndarray | None = None
    star_sky: np.ndarray | None = None  #: (n_frames, n_stars) background (ADU/px)


# --- frames ------------------------------------------------------------------------------

#: the reason of the BadInput a transit fit gets when the calibrated frames were not kept
NOT_KEPT = "calibrated frames not kept"


def _refuse_without_calibrated_frames(cfg: Config, session, lights) -> None:
    """BadInput (one sentence) when lights matching the criteria ``lights`` exist but none has
    a calibrated file (``[archive] keep_calibrated = "none"``): a transit fit re-measures the
    calibrated frames, it cannot work from the database alone."""
    from sqlalchemy import func

    n = session.scalar(select(func.count()).select_from(Frame).where(*lights))
    if n:
        raise BadInput(f"the calibrated frames of the {n} light(s) were not kept ([archive] "
                       f"keep_calibrated = \"{cfg.archive.keep_calibrated}\"), and a transit "
                       "fit re-measures them: set keep_calibrated = \"image\" and run "
                       "`clinepipe run --reprocess`.", reason=NOT_KEPT)


def target_nights(cfg: Config, session, ra: float, dec: float, *, nights=None,
                  filter: str | None = None, margin_px: float = 10.0) -> list[NightFrames]:
    """Every (night, filter) whose calibrated lights hold (ra, dec) (deg) at least
    ``margin_px`` from the edges; in night order, the filter with more frames first."""

    from clinepipe.astrometry.wcs import header_wcs, sky_to_pixel
    from clinepipe.photometry.times import bjd_tdb

    lights = [Frame.telescope == cfg.site.telescope, Frame.kind == "light",
              Frame.state.in_(("calibrated", "measured"))]
    if nights is not None:
        lights.append(Frame.night.in_(list(nights)))
    if filter:
        lights.append(Frame.filter == filter)
    rows = session.scalars(select(Frame).where(*lights, Frame.calibrated_path.is_not(None))
                           .order_by(Frame.jd_mid)).all()
    if not rows:
        _refuse_without_calibrated_frames(cfg, session, lights)
    groups: dict[tuple[str, str], list] = {}
    for f in rows:
        if any(flag in (f.qc or "").split(";") for flag in EXCLUDED_QC):
            continue
        path = cfg.paths.archive / f.calibrated_path
        try:
            header = read_calibrated_header(path)
        except OSError:
            continue
        wcs = header_wcs(header)
        if wcs is None:
            continue
        x, y = (float(v) for v in sky_to_pixel(wcs, ra, dec))
        nx, ny = header.get("NAXIS1", 0), header.get("NAXIS2", 0)
        if not (margin_px <= x <= nx - 1 - margin_px and margin_px <= y <= ny - 1 - margin_px):
            continue
        groups.setdefault((f.night, f.filter or ""), []).append((f, path, wcs))
    site = cfg.site
    out = []
    for (night, filt), items in groups.items():
        jd = np.array([f.jd_mid for f, _, _ in items], dtype=np.float64)
        bjd = bjd_tdb(jd, np.full(jd.size, ra), np.full(jd.size, dec), site.latitude,
                      site.longitude, site.elevation)
        out.append(NightFrames(
            night=night, filter=filt, frame_ids=np.array([f.id for f, _, _ in items]),
            paths=tuple(p for _, p, _ in items), jd_mid=jd, bjd=np.asarray(bjd, np.float64),
            exptime=np.array([f.exptime or 0.0 for f, _, _ in items], dtype=np.float64),
            fwhm=np.array([np.nan if f.fwhm is None else f.fwhm for f, _, _ in items]),
            binning=int(items[0][0].binning or 1),
            gain=np.array([f.gain or cfg.camera.gain for f, _, _ in items], dtype=np.float64),
            wcs=tuple(w for _, _, w in items)))
    out.sort(key=lambda n: (n.night, -n.frame_ids.size))
    return out


def in_transit_points(frames: NightFrames, target: TransitTarget) -> int:
    """Frames of the night inside a predicted transit of ``target``."""
    epoch = np.rint((frames.bjd - target.t0) / target.period)
    return int(np.sum(np.abs(frames.bjd - target.mid_time(epoch)) < 0.5 * target.duration))


# --- stars and photometry ----------------------------------------------------------------

def _candidates(cfg: Config, session, frames: NightFrames, ra: float, dec: float,
                radius_px: float):
    """(star ids, ra, dec, mag, colour, variable) of the database stars on every frame at
    least ``radius_px`` from the edges; the host (within the stars' match radius) first, or
    id -1 when it is not a known star."""
    from clinepipe.astrometry.wcs import pixel_to_sky, sky_to_pixel

    wcs0 = frames.wcs[0]
    ny, nx = wcs0.pixel_shape[1], wcs0.pixel_shape[0]
    cx, cy = pixel_to_sky(wcs0, np.array([0.0, nx - 1.0, 0.0, nx - 1.0]),
                          np.array([0.0, 0.0, ny - 1.0, ny - 1.0]))
    query = select(Star.id, Star.ra, Star.dec, Star.var_type).where(
        Star.dec.between(float(np.min(cy)), float(np.max(cy))))
    if np.ptp(cx) < 180.0 and abs(dec) < 80.0:  # across RA 0 or near a pole: pixel test only
        query = query.where(Star.ra.between(float(np.min(cx)), float(np.max(cx))))
    stars = session.execute(query).all()
    ids = np.array([s[0] for s in stars], dtype=np.int64)
    sra = np.array([s[1] for s in stars], dtype=np.float64)
    sdec = np.array([s[2] for s in stars], dtype=np.float64)
    var = np.array([bool(s[3]) for s in stars], dtype=bool)
    inside = np.ones(ids.size, bool)
    for wcs in frames.wcs:
        x, y = sky_to_pixel(wcs, sra, sdec)
        inside &= ((x >= radius_px) & (x <= nx - 1 - radius_px) & (y >= radius_px)
                   & (y <= ny - 1 - radius_px))
    ids, sra, sdec, var = ids[inside], sra[inside], sdec[inside], var[inside]
    sep = 3600.0 * np.hypot((sra - ra) * math.cos(math.radians(dec)), sdec - dec)
    host = int(np.argmin(sep)) if sep.size and sep.min() <= cfg.stars.match_radius else None
    if host is not None:  # measured where the pipeline found it (proper motion included)
        order = np.r_[host, np.delete(np.arange(ids.size), host)]
        ids, sra, sdec, var = ids[order], sra[order], sdec[order], var[order]
    else:
        ids, sra, sdec, var = (np.r_[-1, ids], np.r_[ra, sra], np.r_[dec, sdec],
                               np.r_[False, var])
    mag, colour = _catalog_mags(cfg, session, ids, frames.filter)
    return ids, sra, sdec, mag, colour, var


def _catalog_mags(cfg: Config, session, ids, filter: str):
    """Catalog magnitude in ``filter``'s band and B-V of each star id (NaN: unknown)."""
    band = cfg.catalog.filters.get(filter, filter)
    mag, colour = np.full(len(ids), np.nan), np.full(len(ids), np.nan)
    known = {int(i): k for k, i in enumerate(ids) if i >= 0}
    matches = session.execute(select(CatalogMatch.star_id, CatalogMatch.mags).where(
        CatalogMatch.star_id.in_(list(known)))).all() if known else []
    for star_id, text in matches:
        try:
            mags = json.loads(text or "{}")
        except ValueError:
            continue
        k = known[int(star_id)]
        value = (mags.get(band) or [None])[0]
        mag[k] = np.nan if value is None else float(value)
        b, v = (mags.get("B") or [None])[0], (mags.get("V") or [None])[0]
        if b is not None and v is not None:
            colour[k] = float(b) - float(v)
    return mag, colour


def stars_near(cfg: Config, session, ra: float, dec: float, radius_arcsec: float,
               filter: str):
    """(ids, ra, dec, catalog mag in ``filter``'s band) of the database stars within
    ``radius_arcsec`` of (ra, dec) (deg), e.g. the neighbours a night could not measure."""
    from clinepipe.catalogs.match import separation_arcsec

    r = radius_arcsec / 3600.0
    rows = session.execute(select(Star.id, Star.ra, Star.dec).where(
        Star.dec.between(dec - r, dec + r))).all()
    ids = np.array([s[0] for s in rows], dtype=np.int64)
    sra = np.array([s[1] for s in rows], dtype=np.float64)
    sdec = np.array([s[2] for s in rows], dtype=np.float64)
    near = (separation_arcsec(ra, dec, sra, sdec) <= radius_arcsec) if ids.size else ids > 0
    ids, sra, sdec = ids[near], sra[near], sdec[near]
    return ids, sra, sdec, _catalog_mags(cfg, session, ids, filter)[0]


def measure_night(cfg: Config, session, frames: NightFrames, ra: float, dec: float,
                  factors=APERTURE_FACTORS) -> NightLightCurve:
    """Measure the host at (ra, dec) (deg) and the candidate comparisons on every frame of
    ``frames`` at ``factors`` x the stored aperture (px; ``[photometry] aperture``, or 1.5 x
    the night's median FWHM when that is 0), with the pipeline's background and aperture
    photometry, the calibrated frame's uncertainty and mask planes."""
    from clinepipe.astrometry.wcs import sky_to_pixel
    from clinepipe.ccd.masks import PHOTOMETRY_BAD_BITS
    from clinepipe.ccd.reduced_files import read_calibrated
    from clinepipe.photometry.aperture import aperture_photometry
    from clinepipe.photometry.background import measure_background

    phot = cfg.photometry
    base = phot.aperture if phot.aperture > 0 else 1.5 * float(np.nanmedian(frames.fwhm))
    if not np.isfinite(base) or base <= 0:
        raise BadInput(f"night {frames.night}: no aperture (set [photometry] aperture).",
                       reason="no aperture")
    radii = [round(base * f, 2) for f in factors]
    stored = radii[int(np.argmin(np.abs(np.asarray(factors) - 1.0)))]
    annulus = tuple(phot.annulus) if phot.annulus else None
    reach = max(radii[-1], annulus[1] if annulus else 0.0) + EDGE_MARGIN_PX
    ids, sra, sdec, mag, colour, variable = _candidates(cfg, session, frames, ra, dec, reach)
    n, m = frames.frame_ids.size, ids.size
    grid = {r: (np.full((n, m), np.nan), np.full((n, m), np.nan)) for r in radii}
    flags = np.zeros((n, m), dtype=np.int64)
    sky, hx, hy = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    star_x, star_y, star_sky = np.full((n, m), np.nan), np.full((n, m), np.nan), np.full((n, m), np.nan)
    for i, (path, wcs) in enumerate(zip(frames.paths, frames.wcs)):
        red = read_calibrated(path, cfg.paths.archive)
        x, y = sky_to_pixel(wcs, sra, sdec)
        mask = red.mask & PHOTOMETRY_BAD_BITS
        bkg = measure_background(red.data, mask=red.mask, box=phot.background_box)
        for r in radii:
            p = aperture_photometry(red.data, x, y, r, background=bkg, gain=frames.gain[i],
                                    read_noise=cfg.camera.read_noise,
                                    uncertainty=red.uncertainty, mask=mask, annulus=annulus)
            grid[r][0][i], grid[r][1][i] = p["flux"], p["flux_err"]
            if r == stored:
                flags[i], sky[i] = p["flags"], p["background"][0]
                star_sky[i] = p["background"]
        hx[i], hy[i] = x[0], y[0]
        star_x[i], star_y[i] = x, y
    return NightLightCurve(frames=frames, star_ids=ids, grid=grid, flags=flags, sky=sky,
                           x=hx, y=hy, mag=mag, colour=colour, variable=variable,
                           aperture=stored, ra=sra, dec=sdec, star_x=star_x, star_y=star_y,
                           star_sky=star_sky)


def brightness(lc: NightLightCurve) -> np.ndarray:
    """Catalog magnitudes, and for stars without one (fainter than the catalog, or the host
    when it is not a known star) the instrumental magnitude put on the catalog's scale by the
    median offset of the stars that have both, so that no star escapes the brightness test."""
    flux = lc.grid[lc.aperture][0]
    with np.errstate(invalid="ignore", divide="ignore"):
        inst = -2.5 * np.log10(np.nanmedian(np.where(flux > 0, flux, np.nan), axis=0))
    known = np.isfinite(lc.mag) & np.isfinite(inst)
    offset = float(np.median(lc.mag[known] - inst[known])) if known.any() else 0.0
    if not np.isfinite(lc.mag[0]) and not known.any():
        return inst
    return np.where(np.isfinite(lc.mag), lc.mag, inst + offset)


def at_known_star(cfg: Config, session, target: TransitTarget) -> TransitTarget:
    """``target`` at the position of the database star within ``[stars] match_radius`` of
    it, where the pipeline measured the host (its proper motion included), so that the run
    and ``clinepipe transit`` of that star compute the same times; else unchanged."""
    r = cfg.stars.match_radius / 3600.0
    cosd = max(math.cos(math.radians(target.dec)), 1e-3)
    rows = session.execute(select(Star.ra, Star.dec).where(
        Star.dec.between(target.dec - r, target.dec + r),
        Star.ra.between(target.ra - r / cosd, target.ra + r / cosd))).all()
    if not rows:
        return target
    sep = [math.hypot((ra - target.ra) * cosd, dec - target.dec) for ra, dec in rows]
    k = int(np.argmin(sep))
    return replace(target, ra=rows[k][0], dec=rows[k][1]) if sep[k] <= r else target
