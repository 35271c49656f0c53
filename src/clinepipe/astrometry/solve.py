"""Plate solving with astrometry.net's `solve-field`: our detections in, a checked WCS out."""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.units import UnitsWarning
from astropy.wcs import WCS, FITSFixedWarning

from clinepipe.atomic_files import atomic_write_fits
from clinepipe.errors import BadInput, ClinepipeError, UsageError

log = logging.getLogger(__name__)
from clinepipe.astrometry.detect import SOURCE_EDGE, SOURCE_SATURATED, detect_sources
from clinepipe.astrometry.wcs import (
    header_wcs,
    pixel_scale_arcsec,
    pixel_to_sky,
    sky_to_pixel,
)

#: where the Debian astrometry-data-* packages put their index files (the fallback set)
SYSTEM_INDEX_DIR = Path("/usr/share/astrometry")

_INSTALL_HINT = ("solve-field (astrometry.net) is not installed; run `make system-deps` or "
                 "install the Debian packages astrometry.net and astrometry-data-tycho2.")

#: WCS keywords removed from a header before a new solution is merged in
_WCS_KEY = re.compile(
    r"^(WCSAXES|CTYPE\d|CUNIT\d|CRVAL\d|CRPIX\d|CDELT\d|CROTA\d|CD\d_\d|PC\d_\d|PV\d_\d+|PS\d_\d+"
    r"|LONPOLE|LATPOLE|RADESYS|RADECSYS|EQUINOX|WCSNAME|IMAGEW|IMAGEH"
    r"|[AB]P?_ORDER|[AB]P?_\d+_\d+|[AB]_DMAX)$")

def solve_field_command(xylist: Path, width: int, height: int, out_dir: Path, *,
                        scale_low: float | None = None, scale_high: float | None = None,
                        ra: float | None = None, dec: float | None = None,
                        radius: float | None = None, timeout: float = 120,
                        executable: str = "solve-field",
                        config_file: Path | None = None) -> list[str]:
    """The ``solve-field`` command line for an xylist of our own detections.

    Parameters
    ----------
    xylist : pathlib.Path
        FITS table with columns ``X``, ``Y`` (1-based pixels) and ``FLUX``.
    width, height : int
        Image size, pixels.
    out_dir : pathlib.Path
        Where solve-field writes ``solution.*`` (``.wcs``, ``.corr``, ``.solved``).
    scale_low, scale_high : float, optional
        Pixel-scale bounds, arcsec/pixel.
    ra, dec, radius : float, optional
        Search only within ``radius`` degrees of (ra, dec) degrees.
    timeout : float
        CPU-time limit for the solver, s.
    executable : str
        Path of solve-field.
    config_file : pathlib.Path, optional
        Backend configuration (``--config``) naming the index files to use, see
        :func:`solver_config_text`; None = the system's ``/etc/astrometry.cfg``.

    Returns
    -------
    list of str
    """
    cmd = [
        executable, str(xylist),
        "--width", str(int(width)), "--height", str(int(height)),
        "--x-column", "X", "--y-column", "Y", "--sort-column", "FLUX",
        "--dir", str(out_dir), "--out", "solution",
        "--no-plots", "--overwrite", "--new-fits", "none",
        "--index-xyls", "none", "--rdls", "none", "--match", "none", "--temp-axy",
        "--crpix-center",
        "--cpulimit", str(max(1, int(math.ceil(timeout)))),
    ]
    if config_file is not None:
        cmd += ["--config", str(config_file)]
    if scale_low is not None or scale_high is not None:
        low = scale_low if scale_low is not None else scale_high / 2.0
        high = scale_high if scale_high is not None else scale_low * 2.0
        cmd += ["--scale-units", "arcsecperpix", "--scale-low", f"{low:.6g}",
                "--scale-high", f"{high:.6g}"]
    if ra is not None and dec is not None:
        cmd += ["--ra", f"{float(ra):.8f}", "--dec", f"{float(dec):.8f}",
                "--radius", f"{float(radius if radius is not None else 5.0):.6g}"]
    return cmd


def solver_config_text(index_files=(), *, system_index: bool = True,
                       timeout: float = 120) -> str:
    """An astrometry.net backend configuration (``solve-field --config``).

    Parameters
    ----------
    index_files : iterable of path
        Index files to load first (e.g. built from the reference catalog by
        :mod:`clinepipe.catalog_index`).
    system_index : bool
        Also load every index file in :data:`SYSTEM_INDEX_DIR` (Tycho-2: the fallback for
        fields wider than ~30 arcmin).
    timeout : float
        The backend's own CPU limit, s.

    Returns
    -------
    str
        The file's text: ``cpulimit``, one ``index`` line per file, and ``add_path`` +
        ``autoindex`` for the system directory.
    """
    lines = [f"cpulimit {max(1, int(math.ceil(timeout)))}"]
    lines += [f"index {Path(f).resolve()}" for f in index_files]
    if system_index and SYSTEM_INDEX_DIR.is_dir():
        lines += [f"add_path {SYSTEM_INDEX_DIR}", "autoindex"]
    return "\n".join(lines) + "\n"


def solve_field(image_path, output_path, *, scale_low: float | None = None,
                scale_high: float | None = None, ra: float | None = None,
                dec: float | None = None, radius: float | None = None,
                timeout: float = 120, max_rms_pixels: float = 2.0,
                max_sources: int = 300, header_hints: bool = True,
                index_files=(), system_index: bool = True) -> Path:
    """Plate-solve an image with astrometry.net and write a copy carrying the solved WCS.

    Our own detections (:func:`detect_sources`, the brightest ``max_sources`` clean ones)
    are given to ``solve-field`` as an xylist, in a temporary directory. The solution is
    then checked independently: the index stars astrometry.net matched (``.corr``) are
    projected through the solved WCS *as astropy reads it* (SIP included) and compared with
    our detections; the solution is rejected when their rms exceeds ``max_rms_pixels`` or
    fewer than 5 stars matched.

    Parameters
    ----------
    image_path : str or os.PathLike
        FITS image (the first HDU with 2-D data is solved). Never modified.
    output_path : str or os.PathLike
        Where the copy goes: every HDU of the input, the image header's old WCS keywords
        replaced by the solution (TAN-SIP), plus ``ASTRMRMS`` (rms, pixels) and ``ASTRMNUM``.
        Written atomically.
    scale_low, scale_high : float, optional
        Pixel-scale bounds, arcsec/pixel (binned pixels).
    ra, dec, radius : float, optional
        Centre hint and search radius, degrees (e.g. the mount's pointing).
    timeout : float
        Solver CPU limit, s (the process is killed 30 s after that; with header hints that
        fail, a second, blind attempt gets the same limit).
    max_rms_pixels : float
        Largest acceptable rms of the matched stars, pixels.
    max_sources : int
        Brightest detections given to the solver.
    header_hints : bool
        When a hint is not given, take it from the header: the scale from ``FOCALLEN`` (mm)
        and ``XPIXSZ`` (binned pixel size, um) or an existing WCS (+-20 %), the centre from
        ``RA``/``DEC`` or ``OBJCTRA``/``OBJCTDEC`` (TheSkyX, MaxIm) or an existing WCS, within
        2 degrees. If the hinted search finds nothing, a blind search follows.
    index_files : iterable of path
        Extra astrometry.net index files, e.g. built from the reference catalog around the
        field (:func:`clinepipe.catalog_index.index_for_image`); tried alongside the system ones.
    system_index : bool
        Also use the index files in ``/usr/share/astrometry`` (Tycho-2).

    Notes
    -----
    The Debian ``astrometry-data-tycho2`` index files hold Tycho-2 stars (about 60 per
    square degree) with quads of 22 arcmin and larger: they solve fields of roughly half a
    degree and more. Smaller fields (this observatory's 18 x 14 arcmin at 3x3 binning holds
    only a handful of Tycho-2 stars) need deeper index files: ``index_files`` built from the
    reference catalog (:mod:`clinepipe.catalog_index`) or the 4100/5200 series.

    Returns
    -------
    pathlib.Path
        ``output_path``.

    Raises
    ------
    ClinepipeError
        solve-field is not installed.
    BadInput
        ``reason="plate solving failed"`` (unreadable image, too few stars, no solution,
        timeout) or ``reason="plate solution rejected"`` (the check failed).
    """
    image_path = Path(image_path)
    output_path = Path(output_path)
    exe = shutil.which("solve-field")
    if exe is None:
        raise ClinepipeError(f"{image_path}: cannot be plate-solved: {_INSTALL_HINT}",
                             reason="solve-field not installed")
    if output_path.resolve() == image_path.resolve():
        raise UsageError(f"{image_path}: the solved copy must not overwrite the image itself.")
    hdus, index = _read_image(image_path)
    try:
        data = hdus[index].data
        height, width = data.shape
        sources = detect_sources(data, threshold=5.0)
        clean = sources[(sources["flags"] & (SOURCE_SATURATED | SOURCE_EDGE)) == 0]
        if clean.size < 10:
            clean = sources
        clean = clean[:max_sources]
        if clean.size < 5:
            raise BadInput(f"{image_path}: only {clean.size} stars found, too few to "
                           "plate-solve.", reason="plate solving failed")
        given = {"scale_low": scale_low, "scale_high": scale_high, "ra": ra, "dec": dec,
                 "radius": radius}
        hints = dict(given)
        if header_hints:
            for key, value in _header_hints(hdus[index].header).items():
                if hints.get(key) is None and (key not in ("ra", "dec") or
                                               (ra is None and dec is None)):
                    hints[key] = value
        attempts = [hints] if hints == given else [hints, given]
        with tempfile.TemporaryDirectory(prefix="clinepipe-solve-") as tmp:
            tmp = Path(tmp)
            xylist = tmp / "sources.xyls"
            Table({"X": clean["x"] + 1.0, "Y": clean["y"] + 1.0,
                   "FLUX": clean["flux"]}).write(xylist, format="fits")
            wcs_file, corr_file = tmp / "solution.wcs", tmp / "solution.corr"
            config_file = None
            index_files = list(index_files)
            if index_files or not system_index:
                # our own backend config: /etc/astrometry.cfg knows only the system indexes
                config_file = tmp / "astrometry.cfg"
                config_file.write_text(solver_config_text(index_files, system_index=system_index,
                                                          timeout=timeout), encoding="utf-8")
            for attempt in attempts:
                cmd = solve_field_command(xylist, width, height, tmp, timeout=timeout,
                                          executable=exe, config_file=config_file, **attempt)
                log.debug("running %s", " ".join(cmd))
                output = _run(cmd, tmp, timeout + 30, image_path)
                if (tmp / "solution.solved").exists() and wcs_file.exists():
                    break
            if not (tmp / "solution.solved").exists() or not wcs_file.exists():
                tail = " ".join(output.strip().splitlines()[-1:])[:200]
                raise BadInput(f"{image_path}: astrometry.net found no plate solution"
                               + (f" ({tail})." if tail else "."), reason="plate solving failed")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FITSFixedWarning)
                solved_header = fits.getheader(wcs_file)
                wcs = WCS(solved_header, relax=True)
            rms, n = _solution_rms(wcs, corr_file)
        if not (n >= 5 and rms <= max_rms_pixels):
            raise BadInput(f"{image_path}: plate solution rejected ({n} matched stars, "
                           f"rms {rms:.2f} px > {max_rms_pixels:g} px allowed).",
                           reason="plate solution rejected")
        header = hdus[index].header
        for key in [k for k in header if _WCS_KEY.match(k)]:
            del header[key]
        # astrometry.net's own TAN-SIP cards (CD matrix, as TheSkyX writes it), not IMAGEW/H
        header.extend([card for card in solved_header.cards if _WCS_KEY.match(card.keyword)
                       and card.keyword not in ("IMAGEW", "IMAGEH")])
        header["ASTRMRMS"] = (round(float(rms), 4), "[pix] rms of stars matched by the solution")
        header["ASTRMNUM"] = (int(n), "stars matched by the plate solution")
        header.add_history("WCS from astrometry.net solve-field (clinepipe)")
        _write_atomic(hdus, output_path)
    finally:
        hdus.close()
    return output_path


def _header_hints(header) -> dict:
    """Plate-solving hints from a header (see :func:`solve_field`); {} when there are none."""
    hints: dict[str, float] = {}
    scale = None
    try:
        focal, pixel = float(header["FOCALLEN"]), float(header["XPIXSZ"])
        if focal > 0 and pixel > 0:
            scale = 206.264806 * pixel / focal  # arcsec per (binned) pixel
    except (KeyError, TypeError, ValueError):
        pass
    old = header_wcs(header)
    if scale is None and old is not None:
        scale = pixel_scale_arcsec(old)
    if scale is not None and math.isfinite(scale) and scale > 0:
        hints["scale_low"], hints["scale_high"] = 0.8 * scale, 1.2 * scale
    centre = _pointing(header)
    if centre is None and old is not None:
        ny, nx = header.get("NAXIS2", 0), header.get("NAXIS1", 0)
        ra, dec = pixel_to_sky(old, [(nx - 1) / 2.0], [(ny - 1) / 2.0])
        if np.isfinite(ra[0]) and np.isfinite(dec[0]):
            centre = float(ra[0]), float(dec[0])
    if centre is not None:
        hints["ra"], hints["dec"], hints["radius"] = centre[0], centre[1], 2.0
    return hints


def _pointing(header) -> tuple[float, float] | None:
    """The mount's pointing from RA/DEC (degrees or sexagesimal) or OBJCTRA/OBJCTDEC."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    for ra_key, dec_key in (("RA", "DEC"), ("OBJCTRA", "OBJCTDEC")):
        if ra_key not in header or dec_key not in header:
            continue
        ra, dec = header[ra_key], header[dec_key]
        try:
            if isinstance(ra, (int, float)) and isinstance(dec, (int, float)):
                coord = SkyCoord(float(ra) * u.deg, float(dec) * u.deg)
            else:  # sexagesimal strings: hours and degrees
                coord = SkyCoord(str(ra), str(dec), unit=(u.hourangle, u.deg))
        except (ValueError, TypeError):
            continue
        return float(coord.ra.deg), float(coord.dec.deg)
    return None


def _read_image(path: Path):
    try:
        hdus = fits.open(path, memmap=False)
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: is not a readable FITS file ({exc}).",
                       reason="plate solving failed") from exc
    for i, hdu in enumerate(hdus):
        if hdu.is_image and hdu.data is not None and hdu.data.ndim == 2:
            return hdus, i
    hdus.close()
    raise BadInput(f"{path}: has no 2-D image to plate-solve.", reason="plate solving failed")


def _run(cmd: list[str], cwd: Path, timeout: float, image_path: Path) -> str:
    """Run solve-field in its own process group; kill that group on timeout."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # solve-field and the astrometry-engine it started
        proc.communicate()
        raise BadInput(f"{image_path}: plate solving timed out after {timeout:.0f} s.",
                       reason="plate solving failed") from None
    log.debug("solve-field output:\n%s", output)
    return output or ""


def _solution_rms(wcs: WCS, corr_file: Path) -> tuple[float, int]:
    """RMS (pixels) between our detections and the matched index stars through ``wcs``."""
    if not corr_file.exists():
        return float("inf"), 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)  # 'pixels', 'degrees' in .corr units
        corr = Table.read(corr_file, hdu=1)
    if len(corr) == 0:
        return float("inf"), 0
    x, y = sky_to_pixel(wcs, np.asarray(corr["index_ra"]), np.asarray(corr["index_dec"]))
    dx = x - (np.asarray(corr["field_x"], dtype=np.float64) - 1.0)
    dy = y - (np.asarray(corr["field_y"], dtype=np.float64) - 1.0)
    d2 = dx * dx + dy * dy
    d2 = d2[np.isfinite(d2)]
    if d2.size == 0:
        return float("inf"), 0
    return float(np.sqrt(np.mean(d2))), int(d2.size)


def _write_atomic(hdus: fits.HDUList, path: Path) -> None:
    atomic_write_fits(path, hdus, output_verify="silentfix")


