"""The TESS Follow-up Observing Program (TFOP) Sub Group 1 delivery set of one fitted transit
night, for a target of ``transits.csv`` with a ``tic_id``; written beside ``fit.json``.

File names follow SG1's convention
``TIC<id>-<pp>_<YYYYMMDD>_<Observatory>_<Filter>[_<N>px]_<filetype>.<ext>``:

- ``<id>`` the TIC number; ``<pp>`` the planet: the two digits of a TOI suffix in the
  planet's name (``TOI-1234.01`` -> 01, ``TOI-1234.02`` -> 02), else its letter (``b`` ->
  01, ``c`` -> 02, ...), else 01;
- ``<YYYYMMDD>`` the UTC date at the start of the observations (the first frame);
- ``<Observatory>`` ``[site] name`` (and ``[site] telescope`` after a ``-`` when set), with
  spaces and characters other than letters, digits, ``.``, ``+``, ``-`` removed;
- ``<Filter>`` the night's filter; ``_<N>px`` the aperture radius (px) on the files that
  depend on it (measurements, light curves, NEB check);
- filetypes: ``measurements.csv`` (:mod:`.tfop_table`), ``lightcurve.png`` (with the
  model), ``compstars.png``, ``field.png``, ``field-zoom.png``, ``field.wcs`` (the WCS of
  the field image's frame, a FITS header without data), ``seeing-profile.png``,
  ``notes.txt``, ``NEB-table.csv`` and ``NEB-depth-plot.png``
  (:mod:`clinepipe.transits.neb_check`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from clinepipe import __version__
from clinepipe.astrometry.wcs import pixel_scale_arcsec, sky_to_pixel
from clinepipe.atomic_files import atomic_write_fits, atomic_write_text
from clinepipe.catalogs.match import separation_arcsec
from clinepipe.ccd.reduced_files import read_calibrated, read_calibrated_header
from clinepipe.products import tfop_plots as plots
from clinepipe.products.tfop_table import measurement_columns, write_measurements
from clinepipe.transits.neb_check import (
    NEB_RADIUS_ARCSEC,
    VERDICTS,
    max_delta_mag,
    neb_check,
    unmeasured,
)
from clinepipe.transits.outputs import plot_transit
from clinepipe.transits.targets import TIC_PATTERN

__all__ = ["FILETYPES", "ZOOM_ARCSEC", "observatory_name", "package_name", "planet_number",
           "tic_number", "write_tfop_package"]

#: every filetype of a package, with its extension and whether the name carries _<N>px
FILETYPES = {"measurements": ("csv", True), "lightcurve": ("png", True),
             "compstars": ("png", True), "field": ("png", False),
             "field-zoom": ("png", False), "field.wcs": ("wcs", False),
             "seeing-profile": ("png", False), "notes": ("txt", False),
             "NEB-table": ("csv", True), "NEB-depth-plot": ("png", True)}
#: half-width of the zoomed field (arcsec)
ZOOM_ARCSEC = 40.0
NEB_COLUMNS = ("star_id", "ra", "dec", "sep_arcsec", "delta_mag", "needed_depth",
               "rms_10min", "depth_seen", "depth_seen_err", "verdict")


def tic_number(tic_id: str) -> str:
    """``123456789`` from ``"TIC 123456789"`` or ``"123456789"``; ValueError otherwise."""
    match = TIC_PATTERN.match(tic_id or "")
    if not match:
        raise ValueError(f"{tic_id!r} is not a TIC number")
    return str(int(match.group(1)))


def planet_number(name: str) -> str:
    """``pp``: ``TOI-1234.01`` -> ``01``; ``HAT-P-32 b`` -> ``01``, ``c`` -> ``02``; else ``01``."""
    toi = re.search(r"\.(\d{1,2})\s*$", name)
    if toi:
        return f"{int(toi.group(1)):02d}"
    letter = re.search(r"[\s_-]([b-z])\s*$", name)
    return f"{ord(letter.group(1)) - ord('a'):02d}" if letter else "01"


def observatory_name(site) -> str:
    """``[site] name`` (``-telescope`` when set) without spaces or unsafe characters."""
    text = site.name + (f"-{site.telescope}" if site.telescope else "")
    return re.sub(r"[^A-Za-z0-9.+-]", "", text) or "Observatory"


def package_name(tic: str, pp: str, date: str, observatory: str, filter: str,
                 aperture: float | None, filetype: str) -> str:
    """One file's name (see the module docstring); ``aperture`` None leaves out ``_<N>px``."""
    ext, with_px = FILETYPES[filetype]
    stem = filetype.removesuffix(f".{ext}")
    band = re.sub(r"[^A-Za-z0-9.+-]", "", filter) or "none"
    px = f"_{aperture:g}px" if with_px and aperture is not None else ""
    return f"TIC{tic}-{pp}_{date}_{observatory}_{band}{px}_{stem}.{ext}"


def _notes(cfg, target, frames, fit, lc, header, rows, *, depth, depth_source, comps,
           i_field, names, ld_source) -> str:
    phot = cfg.photometry
    site = cfg.site
    counts = {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
    annulus = (f"sky annulus {phot.annulus[0]:g}-{phot.annulus[1]:g} px" if phot.annulus
               else f"sky from the background mesh ({phot.background_box} px boxes)")
    weights = ", ".join(f"C{k} = {c}: {w:.3f}" for k, (c, w) in
                        enumerate(zip(comps, lc.comparisons.weights), start=2))
    coefficients = ", ".join(f"{k} {v:.4g}" for k, v in fit.detrend_coefficients.items())
    lines = [
        f"TFOP SG1 notes: TIC {tic_number(target.tic_id)} ({target.name}), night {frames.night}",
        f"software: clinepipe {__version__}", "",
        (f"observatory: {site.name}{' / ' + site.telescope if site.telescope else ''}, "
         f"latitude {site.latitude:.4f}, longitude {site.longitude:.4f} (deg E), "
         f"elevation {site.elevation:.0f} m"),
        f"telescope: {header.get('TELESCOP', 'unknown')}",
        f"camera: {header.get('INSTRUME', 'unknown')}, binning {frames.binning}x{frames.binning}",
        f"filter: {frames.filter}",
        (f"exposure: {float(np.median(frames.exptime)):g} s, {frames.frame_ids.size} frames, "
         f"UTC JD {frames.jd_mid[0]:.5f}-{frames.jd_mid[-1]:.5f}"),
        (f"pixel scale: {names['scale']:.3f} arcsec/px; median FWHM "
         f"{float(np.nanmedian(frames.fwhm)):.2f} px"),
        (f"aperture radius: {lc.aperture:g} px ({lc.aperture * names['scale']:.1f} arcsec); "
         f"{annulus}"),
        f"comparison stars (database id: weight): {weights}",
        (f"detrending: {', '.join(fit.detrend)} (fitted together with the transit); "
         f"coefficients {coefficients}"),
        f"limb darkening: quadratic u1 {fit.u[0]:.3f}, u2 {fit.u[1]:.3f} ({ld_source})", "",
        "fit (MCMC posterior medians, 1-sigma errors widened for red noise):",
        f"  Tmid = {fit.tmid:.5f} +- {fit.tmid_err:.5f} BJD_TDB",
        (f"  Rp/Rs = {fit.rprs:.4f} +- {fit.rprs_err:.4f}, depth = {fit.depth * 1e3:.2f} +- "
         f"{fit.depth_err * 1e3:.2f} ppt"),
        (f"  a/Rs = {fit.ars:.2f} +- {fit.ars_err:.2f}, inclination = {fit.inc:.2f} +- "
         f"{fit.inc_err:.2f} deg, b = {fit.b:.2f}"),
        (f"  duration (T14) = {fit.duration * 24:.3f} h; residual rms "
         f"{fit.rms_residual * 1e3:.2f} ppt per {fit.exptime_s:g} s point"),
        (f"  O-C = {fit.oc_minutes:+.2f} +- {fit.oc_err_minutes:.2f} min against P = "
         f"{target.period} d, T0 = {target.t0} (predicted {fit.predicted_tmid:.5f})"), "",
        (f"NEB check: stars within 2.5 arcmin, measured in a {names['neb_aperture']:g}-px "
         f"aperture; depth to explain {depth * 1e3:.2f} ppt ({depth_source}); faintest "
         f"possible source dm = {max_delta_mag(depth):.2f} mag; {len(rows)} stars: "
         + ", ".join(f"{n} {v}" for v, n in counts.items())),
    ]
    in_ensemble = [r.star_id for r in rows if r.verdict == "flagged" and r.star_id in comps]
    if in_ensemble:
        lines.append(f"  WARNING: flagged star(s) {', '.join(map(str, in_ensemble))} are "
                     "comparison stars: refit without them (clinepipe transit --comps)")
    lines += [f"  star {r.star_id}: sep {r.sep:.1f}\", dm {r.delta_mag:+.2f}, needs "
              f"{r.needed_depth:.3g}, rms(10 min) {r.rms_binned:.3g}, seen {r.depth_seen:.3g} "
              f"+- {r.depth_seen_err:.3g}: {r.verdict}" for r in rows]
    lines += ["", f"field image and WCS: {frames.paths[i_field].name}", "files:"]
    lines += [f"  {n}" for n in names["files"]]
    return "\n".join(lines) + "\n"


def write_tfop_package(cfg, out_dir, target, frames, night_lc, lc, fit, *, keep, airmass,
                       mag, neighbours=None, ld_source: str = "") -> dict[str, Path]:
    """Write the SG1 files of one fitted night into ``out_dir`` (see the module docstring).

    Parameters
    ----------
    target : TransitTarget
        With ``tic_id``.
    frames : NightFrames
        The night's frames; ``night_lc`` (NightLightCurve) their photometry.
    lc : DifferentialLightCurve
        The fitted light curve (over the ``keep`` frames), with its aperture and comparisons.
    fit : TransitFit
    keep : array (n_frames,) of bool
        Frames in the light curve.
    airmass : array (n_frames,)
    mag : array (n_stars,)
        Each star's magnitude in the night's band (catalog or instrumental on its scale).
    neighbours : (ids, ra, dec, mag) arrays, optional
        The database stars within the NEB radius with their catalog magnitude (NaN:
        unknown); those ``night_lc`` did not measure are listed as not measured (or too
        faint).

    Returns
    -------
    dict
        filetype -> path.
    """
    date = Time(float(frames.jd_mid[0]), format="jd", scale="utc").strftime("%Y%m%d")
    parts = (tic_number(target.tic_id), planet_number(target.name), date,
             observatory_name(cfg.site), frames.filter)
    path = {t: Path(out_dir) / package_name(*parts, lc.aperture, t) for t in FILETYPES}
    flux, err = night_lc.grid[lc.aperture]
    comps = [int(c) for c in lc.comparisons.indices]
    rel, rel_err = np.full(keep.size, np.nan), np.full(keep.size, np.nan)
    rel[keep], rel_err[keep] = lc.flux, lc.flux_err
    columns = measurement_columns(
        labels=[p.name for p in frames.paths], jd_utc=frames.jd_mid, bjd_tdb=frames.bjd,
        airmass=airmass, exptime=frames.exptime, fwhm=frames.fwhm, rel_flux=rel,
        rel_flux_err=rel_err, flux=flux, flux_err=err, sky=night_lc.star_sky,
        x=night_lc.star_x, y=night_lc.star_y, ra=night_lc.ra, dec=night_lc.dec,
        ny=frames.wcs[0].pixel_shape[1], comps=comps)
    write_measurements(path["measurements"], columns)
    title = f"TIC {parts[0]}.{parts[1]} ({target.name})  {frames.night}  {frames.filter}"
    plot_transit(path["lightcurve"], fit, title=title)
    plots.plot_comparisons(path["compstars"], (frames.bjd - fit.predicted_tmid) * 24.0, rel,
                           np.column_stack([columns[f"rel_flux_C{k}"]
                                            for k in range(2, len(comps) + 2)]),
                           [int(night_lc.star_ids[c]) for c in comps], title=title)
    depth, depth_source = ((target.depth, "pl_trandep of transits.csv") if target.depth else
                           (target.rprs**2, "pl_ratror^2 of transits.csv") if target.rprs else
                           (fit.depth, "this night's fitted depth"))
    rows = _neb_rows(night_lc, lc, frames.bjd[keep], airmass[keep], keep, mag, depth,
                     fit.predicted_tmid, target.duration, neighbours)
    _write_neb_table(path["NEB-table"], rows)
    plots.plot_neb(path["NEB-depth-plot"], rows, depth, max_delta_mag(depth), title=title)
    i, scale = _field_files(cfg, path, frames, night_lc, lc, keep, rows, title)
    info = {"scale": scale, "files": sorted(p.name for p in path.values()),
            "neb_aperture": min(night_lc.grid)}
    atomic_write_text(path["notes"], _notes(
        cfg, target, frames, fit, lc, read_calibrated_header(frames.paths[i]), rows,
        depth=depth, depth_source=depth_source,
        comps=[int(night_lc.star_ids[c]) for c in comps], i_field=i, names=info,
        ld_source=ld_source))
    return path


def _neb_rows(night_lc, lc, bjd, airmass, keep, mag, depth, tmid, duration, neighbours):
    """The NEB check of the measured stars (in the smallest aperture of the grid, which takes
    in least of the target's light), plus the unmeasured ``neighbours``; nearest first."""
    sep = separation_arcsec(night_lc.ra[0], night_lc.dec[0], night_lc.ra, night_lc.dec)
    small, small_err = night_lc.grid[min(night_lc.grid)]
    rows = neb_check(bjd, small[keep], small_err[keep], airmass,
                     comparisons=lc.comparisons, sep=sep, delta_mag=mag - mag[0],
                     star_ids=night_lc.star_ids, ra=night_lc.ra, dec=night_lc.dec,
                     depth=depth, tmid=tmid, duration=duration)
    if neighbours is not None:
        ids, nra, ndec, nmag = (np.asarray(v) for v in neighbours)
        new = ~np.isin(ids, night_lc.star_ids)
        rows += unmeasured(ids[new], nra[new], ndec[new],
                           separation_arcsec(night_lc.ra[0], night_lc.dec[0], nra[new],
                                             ndec[new]), nmag[new] - mag[0], depth)
    return sorted(rows, key=lambda r: r.sep)


def _field_files(cfg, path, frames, night_lc, lc, keep, rows, title) -> tuple[int, float]:
    """The field (whole and zoomed), its WCS and the seeing profile, from the sharpest frame
    of the light curve; returns that frame's index and its pixel scale (arcsec/px)."""
    fwhm = np.where(keep & np.isfinite(frames.fwhm), frames.fwhm, np.inf)
    i = int(np.argmin(fwhm)) if np.isfinite(fwhm).any() else int(np.flatnonzero(keep)[0])
    image = read_calibrated(frames.paths[i], cfg.paths.archive).data
    wcs = frames.wcs[i]
    scale = pixel_scale_arcsec(wcs)
    comps = [int(c) for c in lc.comparisons.indices]
    label = {c: f"C{k}" for k, c in enumerate(comps, start=2)}
    sx, sy = night_lc.star_x[i], night_lc.star_y[i]
    stars = [(sx[0], sy[0], "T1", "tab:purple")] + [
        (sx[c], sy[c], label[c], "tab:cyan") for c in comps] + [
        (*(float(v) for v in sky_to_pixel(wcs, r.ra, r.dec)), f"{r.star_id}",
         plots.VERDICT_COLOURS[r.verdict]) for r in rows if r.column not in label]
    annulus = list(cfg.photometry.annulus) or None
    plots.plot_field(path["field"], image, stars, radius=lc.aperture, annulus=annulus,
                     scale=scale, neb_radius=NEB_RADIUS_ARCSEC, title=f"{title}: field")
    plots.plot_field(path["field-zoom"], image, stars, radius=lc.aperture, annulus=annulus,
                     scale=scale, zoom=ZOOM_ARCSEC, title=f"{title}: around the target")
    header = wcs.to_header(relax=True)
    header["IMAGEW"], header["IMAGEH"] = wcs.pixel_shape
    header["FRAME"] = (frames.paths[i].name[:68], "the frame this WCS belongs to")
    atomic_write_fits(path["field.wcs"], fits.HDUList([fits.PrimaryHDU(header=header)]))
    plots.plot_seeing_profile(path["seeing-profile"], image, sx[0], sy[0],
                              background=float(night_lc.star_sky[i, 0]),
                              fwhm=float(frames.fwhm[i]), radius=lc.aperture, annulus=annulus,
                              scale=scale, title=f"{title}: seeing profile")
    return i, scale


def _write_neb_table(path, rows) -> Path:
    """``NEB-table.csv``: :data:`NEB_COLUMNS`, one row per star, nearest first."""
    lines = [",".join(NEB_COLUMNS)]
    for r in rows:
        values = (r.star_id, f"{r.ra:.6f}", f"{r.dec:.6f}", f"{r.sep:.1f}",
                  _g(r.delta_mag), _g(r.needed_depth), _g(r.rms_binned),
                  _g(r.depth_seen), _g(r.depth_seen_err), r.verdict)
        lines.append(",".join(str(v) for v in values))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return Path(path)


def _g(value: float) -> str:
    return f"{value:.5g}" if math.isfinite(value) else "NaN"
