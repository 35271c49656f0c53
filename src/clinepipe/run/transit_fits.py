"""Transit fits from the archive: the run's ``_transits`` step and ``clinepipe transit``.

For a planet and a night: the night's calibrated lights whose footprint holds the host, the
BJD_TDB of each, the host and the candidate comparison stars measured again on those frames
with the pipeline's own photometry (``photometry.background.measure_background`` and
``photometry.aperture.aperture_photometry``, as the light stages use them) at a grid of
aperture radii, then :mod:`clinepipe.transits` (comparisons, aperture by the lowest
out-of-transit scatter, the fit) and the files of ``archive/transits/<night>/<planet>/``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sqlalchemy import select

from clinepipe import __version__
from clinepipe.config import Config
from clinepipe.errors import BadInput, UsageError
from clinepipe.store.models import CatalogMatch, Frame, Star
from clinepipe.transits.fit import TransitRefused
from clinepipe.transits.targets import TransitTarget

__all__ = ["APERTURE_FACTORS", "NightLightCurve", "TransitResult", "at_known_star",
           "default_duration",
           "fit_planet_night", "planet_folder", "target_nights", "transits_stage"]

log = logging.getLogger("clinepipe")

#: aperture radii tried, in units of the stored aperture (``[photometry] aperture``)
APERTURE_FACTORS = (0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0)
#: a star closer than this to an edge (px, beyond the largest aperture) is not measured
EDGE_MARGIN_PX = 3.0
#: fewest frames a night needs before a fit is tried
MIN_FRAMES = 20
#: fewer automatic comparisons than this and the choice is made again without the colour
#: test and with a brightness range of RELAXED_DELTA_MAG
MIN_COMPARISONS = 3
RELAXED_DELTA_MAG = 2.5
#: quality flags that keep a frame out of a transit light curve (the star images are smeared)
EXCLUDED_QC = ("trailed", "focus")
#: the AAVSO report's detrend column names for our vector names
AAVSO_NAMES = {"AIRMASS": "AIRMASS", "SKY": "SKY", "FWHM": "FWHM", "X": "XPOS", "Y": "YPOS"}


@dataclass(frozen=True)
class NightFrames:
    """One night's (and filter's) calibrated lights holding the host: frame ids, calibrated
    paths, UTC JD mid-exposure (d), BJD_TDB of the host (d), exposure (s), FWHM (px),
    binning, gain (e-/ADU) and the host's 0-based pixel position on each."""

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


@dataclass(frozen=True)
class TransitResult:
    """What one fit wrote: its folder, the files, the fit and the chosen comparisons."""

    out_dir: Path
    files: dict
    fit: object
    comps: tuple[int, ...]
    aperture: float


def planet_folder(name: str) -> str:
    """A planet's folder name: its name with every run of non-filename characters as ``_``."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name.strip()).strip("_") or "planet"


def default_duration(period: float, rprs: float | None = None, ars: float | None = None,
                     inc: float | None = None) -> float:
    """First-to-fourth-contact duration (d) when none is given: a Sun-like host
    (a/Rs = 4.2 P^(2/3), P in days) and b = 0.3 unless a/Rs and i are known."""
    from clinepipe.transits.model import total_duration

    k = rprs or 0.1
    a = ars or 4.2 * period ** (2.0 / 3.0)
    i = inc if inc else math.degrees(math.acos(min(0.3 / a, 1.0)))
    return float(total_duration(period, k, a, i))


# --- frames ------------------------------------------------------------------------------

def target_nights(cfg: Config, session, ra: float, dec: float, *, nights=None,
                  filter: str | None = None, margin_px: float = 10.0) -> list[NightFrames]:
    """Every (night, filter) whose calibrated lights hold (ra, dec) (deg) at least
    ``margin_px`` from the edges; in night order, the filter with more frames first."""
    from astropy.io import fits

    from clinepipe.astrometry.wcs import header_wcs, sky_to_pixel
    from clinepipe.photometry.times import bjd_tdb

    query = select(Frame).where(Frame.telescope == cfg.site.telescope, Frame.kind == "light",
                                Frame.state.in_(("calibrated", "measured")),
                                Frame.calibrated_path.is_not(None))
    if nights is not None:
        query = query.where(Frame.night.in_(list(nights)))
    if filter:
        query = query.where(Frame.filter == filter)
    rows = session.scalars(query.order_by(Frame.jd_mid)).all()
    groups: dict[tuple[str, str], list] = {}
    for f in rows:
        if any(flag in (f.qc or "").split(";") for flag in EXCLUDED_QC):
            continue
        path = cfg.paths.archive / f.calibrated_path
        try:
            header = fits.getheader(path)
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
    band = cfg.catalog.filters.get(frames.filter, frames.filter)
    mag, colour = np.full(ids.size, np.nan), np.full(ids.size, np.nan)
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
    return ids, sra, sdec, mag, colour, var


def measure_night(cfg: Config, session, frames: NightFrames, ra: float, dec: float,
                  factors=APERTURE_FACTORS) -> NightLightCurve:
    """Measure the host at (ra, dec) (deg) and the candidate comparisons on every frame of
    ``frames`` at ``factors`` x the stored aperture (px; ``[photometry] aperture``, or 1.5 x
    the night's median FWHM when that is 0), with the pipeline's background and aperture
    photometry, the calibrated frame's uncertainty and mask planes."""
    from clinepipe.astrometry.wcs import sky_to_pixel
    from clinepipe.ccd.reduced_files import read_reduced
    from clinepipe.photometry.aperture import aperture_photometry
    from clinepipe.photometry.background import measure_background
    from clinepipe.run.light_stages import PHOTOMETRY_BAD_BITS

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
    for i, (path, wcs) in enumerate(zip(frames.paths, frames.wcs)):
        red = read_reduced(path)
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
        hx[i], hy[i] = x[0], y[0]
    return NightLightCurve(frames=frames, star_ids=ids, grid=grid, flags=flags, sky=sky,
                           x=hx, y=hy, mag=mag, colour=colour, variable=variable,
                           aperture=stored)


# --- the fit -----------------------------------------------------------------------------

def _epoch(target: TransitTarget, bjd: np.ndarray) -> int:
    """The epoch whose ingress or egress falls in the night; TransitRefused when none."""
    from clinepipe.transits.targets import transits_in_window

    epochs = transits_in_window(target, float(bjd.min()), float(bjd.max()))
    if epochs.size == 0:
        nearest = target.mid_time(np.rint((0.5 * (bjd.min() + bjd.max()) - target.t0)
                                          / target.period))
        raise TransitRefused(
            f"no transit of {target.name} in the night: its frames span BJD_TDB "
            f"{bjd.min():.4f}-{bjd.max():.4f}, the nearest predicted mid-transit is "
            f"{float(nearest):.4f}.", reason="no transit in the data")
    centre = 0.5 * (bjd.min() + bjd.max())
    return int(epochs[np.argmin(np.abs(target.mid_time(epochs) - centre))])


def fit_planet_night(cfg: Config, session, target: TransitTarget, frames: NightFrames,
                     out_dir: Path, *, comps=None, detrend=("airmass",),
                     obscode: str | None = None, seed: int | None = None) -> TransitResult:
    """Measure, fit and write one planet's transit in one night (see the module docstring).

    Parameters
    ----------
    target : TransitTarget
        The planet (ephemeris BJD_TDB and days, duration d).
    frames : NightFrames
        From :func:`target_nights`.
    out_dir : path
        Receives ``fit.json``, ``lightcurve.csv``, ``lightcurve.png`` and, with an observer
        code, ``aavso_exoplanet.txt``.
    comps : sequence of int, optional
        Comparison star ids chosen by the user; default automatic.
    detrend : sequence of str
        ``airmass`` (or ``airmass_exp``) and any of ``sky``, ``fwhm``, ``x``, ``y``.
    obscode : str, optional
        AAVSO observer code; without one the AAVSO report is not written (logged).
    seed : int, optional
        MCMC seed; default from the night, filter and frames (a rerun gives the same files).

    Raises
    ------
    TransitRefused
        No transit in the night, or too little baseline.
    BadInput
        Too few frames, no comparison star, an unknown comparison.
    """
    from clinepipe.transits import (
        check_coverage,
        choose_aperture,
        fit_transit,
        quadratic_ld,
        table_priors,
        write_transit_outputs,
    )

    bjd = frames.bjd
    epoch = _epoch(target, bjd)
    predicted = float(target.mid_time(epoch))
    if frames.frame_ids.size < MIN_FRAMES:
        raise TransitRefused(f"{target.name}: only {frames.frame_ids.size} frames in night "
                             f"{frames.night} ({MIN_FRAMES} needed for a fit).",
                             reason="too few frames")
    check_coverage(bjd, predicted, target.duration)  # before the photometry, which costs
    lc_data = measure_night(cfg, session, frames, target.ra, target.dec)
    host_ok = np.all([np.isfinite(f[:, 0]) & (f[:, 0] > 0) for f, _ in lc_data.grid.values()],
                     axis=0)
    keep = host_ok
    oot = np.abs(bjd - predicted) > 0.5 * target.duration
    user = None
    if comps:
        where = {int(s): k for k, s in enumerate(lc_data.star_ids)}
        missing = [c for c in comps if int(c) not in where]
        if missing:
            raise UsageError(f"comparison star(s) {', '.join(map(str, missing))} are not on "
                             f"every frame of night {frames.night} (or not known stars).")
        user = [where[int(c)] for c in comps]
    grid = {r: (f[keep], e[keep]) for r, (f, e) in lc_data.grid.items()}
    selection = dict(oot=oot[keep], mag=_brightness(lc_data), flags=lc_data.flags[keep],
                     variable=lc_data.variable)
    lc = None
    try:
        lc = choose_aperture(grid, 0, comparisons=user, colour=lc_data.colour, **selection)
    except BadInput:
        if user is not None:
            raise
    if user is None and (lc is None or lc.comparisons.indices.size < MIN_COMPARISONS):
        # a sparse field: colour left aside and a wider brightness range, rather than a
        # light curve divided by one or two stars
        wide = choose_aperture(grid, 0, max_delta_mag=RELAXED_DELTA_MAG, **selection)
        if lc is None or wide.comparisons.indices.size > lc.comparisons.indices.size:
            lc = wide
    try:
        ld = quadratic_ld(frames.filter, target.teff, target.logg, target.feh)
        u, ld_source = ld.u, ld.source
    except ValueError as exc:
        u, ld_source = (0.4, 0.25), f"{exc}; u1 = 0.4, u2 = 0.25 assumed"
    airmass_vec = _airmass(cfg, target, frames)[keep]
    vectors = {"sky": lc_data.sky[keep], "fwhm": frames.fwhm[keep], "x": lc_data.x[keep],
               "y": lc_data.y[keep]}
    exptime = float(np.median(frames.exptime))
    if seed is None:  # the same frames give the same chain, from the run or by hand
        seed = zlib.crc32(f"{frames.night}|{frames.filter}|{frames.frame_ids.tolist()}".encode())
    fit = fit_transit(bjd[keep], lc.flux, lc.flux_err, airmass_vec, period=target.period,
                      t0_guess=predicted, duration=target.duration, rprs_guess=target.rprs,
                      priors=table_priors(target.ars, target.inc), detrend=tuple(detrend),
                      vectors={k: v for k, v in vectors.items() if k in detrend},
                      exptime=exptime, ld=u, seed=seed)
    comp_ids = [int(lc_data.star_ids[j]) for j in lc.comparisons.indices]
    extra = {"epoch": epoch, "host_star_id": int(lc_data.star_ids[0]),
             "comparison_weights": [float(w) for w in lc.comparisons.weights],
             "aperture_scatter": {f"{r:g}": float(s) for r, s in lc.scatter_by_aperture.items()},
             "limb_darkening_source": ld_source, "n_frames_dropped": int((~keep).sum()),
             "software": f"clinepipe {__version__}"}
    files = write_transit_outputs(out_dir, fit, planet=target.name, night=frames.night,
                                  filter=frames.filter, comps=comp_ids, aperture=lc.aperture,
                                  extra=extra)
    aavso = _write_aavso(out_dir, fit, target, frames, exptime, obscode)
    if aavso is not None:
        files["aavso_exoplanet.txt"] = aavso
    return TransitResult(out_dir=out_dir, files=files, fit=fit, comps=tuple(comp_ids),
                         aperture=float(lc.aperture))


def _brightness(lc: NightLightCurve) -> np.ndarray:
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


def _airmass(cfg: Config, target: TransitTarget, frames: NightFrames) -> np.ndarray:
    from clinepipe.photometry.times import airmass

    return np.asarray(airmass(target.ra, target.dec, frames.jd_mid, cfg.site.latitude,
                              cfg.site.longitude), dtype=np.float64)


def _write_aavso(out_dir: Path, fit, target: TransitTarget, frames: NightFrames,
                 exptime: float, obscode: str | None) -> Path | None:
    """``aavso_exoplanet.txt`` (raw differential flux, BJD_TDB), or None (logged) without an
    observer code or with a filter AAVSO has no code for."""
    from clinepipe.atomic_files import atomic_write_bytes
    from clinepipe.products.aavso_exoplanet import (
        ExoplanetHeader,
        ExoplanetRow,
        format_exoplanet,
    )
    from clinepipe.transits.outputs import aavso_columns

    if not (obscode or "").strip():
        log.info("%s, night %s: no AAVSO exoplanet report written: [aavso] obscode is empty.",
                 target.name, frames.night)
        return None
    columns = aavso_columns(fit)
    names = list(columns)[3:]
    coeffs = fit.detrend_coefficients
    priors = {"Period": float(target.period), "Tc": fit.predicted_tmid}
    if target.ars:
        priors["a/R*"] = float(target.ars)
    if target.inc:
        priors["inc"] = float(target.inc)
    priors.update({"ecc": 0.0, "u1": fit.u[0], "u2": fit.u[1]})
    results = {"Tc": (fit.tmid, fit.tmid_err), "Rp/R*": (fit.rprs, fit.rprs_err),
               "a/R*": (fit.ars, fit.ars_err), "inc": (fit.inc, fit.inc_err),
               "Am1": coeffs.get("c0", float("nan"))}
    if "airmass" in coeffs:
        results["Am2"] = coeffs["airmass"]
    header = ExoplanetHeader(
        obscode=obscode, software=f"clinepipe {__version__}",
        star_name=re.sub(r"\s+[b-z]$", "", target.name) or target.name,
        exoplanet_name=target.name, filter=frames.filter, exposure_time=exptime,
        binning=frames.binning, detrend_parameters=[AAVSO_NAMES.get(n, n) for n in names],
        priors=priors, results=results)
    rows = [ExoplanetRow(float(t), float(f), float(e), [float(columns[n][k]) for n in names])
            for k, (t, f, e) in enumerate(zip(columns["DATE"], columns["DIFF"], columns["ERR"]))]
    try:
        text = format_exoplanet(header, rows)
    except BadInput as exc:
        log.info("%s, night %s: no AAVSO exoplanet report written: %s", target.name,
                 frames.night, exc.message)
        return None
    path = Path(out_dir) / "aavso_exoplanet.txt"
    atomic_write_bytes(path, [text.encode("ascii")])
    return path


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


# --- the run's step ----------------------------------------------------------------------

def transits_stage(cfg: Config, engine, run_id: int, also_runs=()) -> list[Path]:
    """The run's ``_transits`` step: every planet of ``[transits] path`` with a transit in a
    night this run (or a killed run in ``also_runs``) touched is fitted into
    ``archive/transits/<night>/<planet>/``. A night without a transit, or with too little
    baseline, is one logged sentence; nothing here stops the run. Returns the folders."""
    from clinepipe.store.db import session_scope
    from clinepipe.transits.targets import read_targets
    from clinepipe.variability.suspects import _nights_of_runs

    if str(cfg.transits.path) in ("", "."):
        return []
    done: list[Path] = []
    try:
        targets = read_targets(cfg.transits.path)
        nights = _nights_of_runs(engine, [run_id, *also_runs])
    except BadInput as exc:
        log.warning("transits: %s", exc.message)
        return done
    except Exception:
        log.exception("transits: the targets or the nights could not be read")
        return done
    for target in targets:
        for night in nights:
            try:
                with session_scope(engine) as s:
                    target = at_known_star(cfg, s, target)
                    found = target_nights(cfg, s, target.ra, target.dec, nights=[night])
                    if not found:
                        log.debug("transits: %s is on no frame of night %s", target.name, night)
                        continue
                    frames = found[0]
                    out = cfg.paths.archive / "transits" / night / planet_folder(target.name)
                    fit_planet_night(cfg, s, target, frames, out, obscode=cfg.aavso.obscode)
                    done.append(out)
                    log.info("transits: %s, night %s: fitted into %s", target.name, night, out)
            except BadInput as exc:
                log.info("transits: %s, night %s: %s", target.name, night, exc.message)
            except Exception:
                log.exception("transits: the fit of %s in night %s failed", target.name, night)
    return done

