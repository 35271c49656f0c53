"""Transit fits from the archive: the run's ``_transits`` step and ``clinepipe transit``.

For a planet and a night: the night's calibrated lights whose footprint holds the host, the
BJD_TDB of each, the host and the candidate comparison stars measured again on those frames
with the pipeline's own photometry (``photometry.background.measure_background`` and
``photometry.aperture.aperture_photometry``, as the light stages use them) at a grid of
aperture radii, then :mod:`clinepipe.transits` (comparisons, aperture by the lowest
out-of-transit scatter, the fit) and the files of ``archive/transits/<night>/<planet>/``.
"""

from __future__ import annotations

import logging
import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clinepipe import __version__
from clinepipe.config import Config
from clinepipe.errors import BadInput, UsageError
from clinepipe.run.transit_night import (
    NOT_KEPT,
    NightFrames,
    at_known_star,
    brightness,
    measure_night,
    target_nights,
)
from clinepipe.transits.fit import TransitRefused
from clinepipe.transits.targets import TransitTarget

__all__ = ["TransitResult", "default_duration", "fit_planet_night", "planet_folder",
           "transits_stage"]

log = logging.getLogger("clinepipe")

#: fewest frames a night needs before a fit is tried
MIN_FRAMES = 20
#: fewer automatic comparisons than this and the choice is made again without the colour
#: test and with a brightness range of RELAXED_DELTA_MAG
MIN_COMPARISONS = 3
RELAXED_DELTA_MAG = 2.5
#: the AAVSO report's detrend column names for our vector names
AAVSO_NAMES = {"AIRMASS": "AIRMASS", "SKY": "SKY", "FWHM": "FWHM", "X": "XPOS", "Y": "YPOS"}


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
        Receives ``fit.json``, ``lightcurve.csv``, ``lightcurve.png``, with an observer
        code ``aavso_exoplanet.txt``, and for a target with a ``tic_id`` the TFOP SG1
        package (:mod:`clinepipe.products.tfop`).
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
    # a frame where the host's flux is missing at some radius (masked, off the edge) is left out
    keep = np.all([np.isfinite(f[:, 0]) & (f[:, 0] > 0) for f, _ in lc_data.grid.values()],
                  axis=0)
    oot = np.abs(bjd - predicted) > 0.5 * target.duration
    user = None
    if comps:
        where = {int(s): k for k, s in enumerate(lc_data.star_ids)}
        if int(lc_data.star_ids[0]) in {int(c) for c in comps}:
            raise UsageError(f"star {lc_data.star_ids[0]} is the host itself, not a comparison.")
        missing = [c for c in comps if int(c) not in where]
        if missing:
            raise UsageError(f"comparison star(s) {', '.join(map(str, missing))} are not on "
                             f"every frame of night {frames.night} (or not known stars).")
        user = [where[int(c)] for c in comps]
    grid = {r: (f[keep], e[keep]) for r, (f, e) in lc_data.grid.items()}
    selection = {"oot": oot[keep], "mag": brightness(lc_data), "flags": lc_data.flags[keep],
                 "variable": lc_data.variable}
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
        u, ld_source, ld_model = ld.u, ld.source, ld.model
    except ValueError as exc:
        u, ld_source, ld_model = (0.4, 0.25), f"{exc}; u1 = 0.4, u2 = 0.25 assumed", "assumed"
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
             "limb_darkening_source": ld_source, "limb_darkening_model": ld_model,
             "n_frames_dropped": int((~keep).sum()),
             "software": f"clinepipe {__version__}"}
    files = write_transit_outputs(out_dir, fit, planet=target.name, night=frames.night,
                                  filter=frames.filter, comps=comp_ids, aperture=lc.aperture,
                                  extra=extra)
    aavso = _write_aavso(out_dir, fit, target, frames, exptime, obscode)
    if aavso is not None:
        files["aavso_exoplanet.txt"] = aavso
    if target.tic_id:  # a TESS candidate: the TFOP SG1 delivery set beside the fit
        from clinepipe.products.tfop import write_tfop_package
        from clinepipe.run.transit_night import stars_near
        from clinepipe.transits.neb_check import NEB_RADIUS_ARCSEC

        near = stars_near(cfg, session, float(lc_data.ra[0]), float(lc_data.dec[0]),
                          NEB_RADIUS_ARCSEC, frames.filter)
        sg1 = write_tfop_package(cfg, out_dir, target, frames, lc_data, lc, fit, keep=keep,
                                 airmass=_airmass(cfg, target, frames),
                                 mag=selection["mag"], neighbours=near, ld_source=ld_source)
        files.update({p.name: p for p in sg1.values()})
    return TransitResult(out_dir=out_dir, files=files, fit=fit, comps=tuple(comp_ids),
                         aperture=float(lc.aperture))


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


# --- the run's step ----------------------------------------------------------------------

def transits_stage(cfg: Config, engine, run_id: int, also_runs=()) -> list[Path]:
    """The run's ``_transits`` step: every planet of ``[transits] path`` with a transit in a
    night this run (or a killed run in ``also_runs``) touched is fitted into
    ``archive/transits/<night>/<planet>/``. A night without a transit, or with too little
    baseline, is one logged sentence; nothing here stops the run. Returns the folders."""
    from clinepipe.store.db import session_scope
    from clinepipe.store.queries import nights_of_runs
    from clinepipe.transits.targets import read_targets

    if str(cfg.transits.path) in ("", "."):
        return []
    done: list[Path] = []
    try:
        targets = read_targets(cfg.transits.path)
        nights = nights_of_runs(engine, [run_id, *also_runs])
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
                (log.warning if exc.reason == NOT_KEPT else log.info)(
                    "transits: %s, night %s: %s", target.name, night, exc.message)
            except Exception:
                log.exception("transits: the fit of %s in night %s failed", target.name, night)
    return done

