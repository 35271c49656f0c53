"""The core of ``clinepipe measure``: sources, WCS, aperture photometry (and a zero point) of
any 2-D FITS image, without the database.

:func:`measure_image` does for one file what the pipeline's per-light stages do after the
reduction (``lightframe.sources_stage``, ``wcs_stage``, ``photometry_stage``) and, given a
catalog, what its calibration does (catalog match, ensemble zero point), but it accepts what
an arbitrary image has and reports what it lacks instead of failing:

* a calibrated frame written by ``clinepipe reduce``/``run`` (extensions ``UNCERT`` and
  ``MASK``) is measured with its uncertainty and mask planes; any other image with the
  CCD model from its measured background;
* without a (valid) celestial WCS ``ra``/``dec`` are NaN (empty in the CSV) and no catalog
  can be matched;
* without ``EXPTIME`` (or ``EXPOSURE``) ``inst_mag`` is per frame rather than per second;
* without ``EGAIN`` (or ``GAIN``) the configured gain is used (0.4 e-/ADU by default).

Each of these is a note in :attr:`MeasureResult.notes`, which the command prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clinepipe.errors import BadInput, UsageError
from clinepipe.ccd.reduce import positive_or_none as _positive

__all__ = ["CSV_COLUMNS", "CATALOG_COLUMNS", "MeasureResult", "measure_image", "result_rows"]

#: columns of ``clinepipe measure`` output (x, y 1-based FITS pixels)
CSV_COLUMNS = ("x", "y", "ra", "dec", "flux", "flux_err", "background", "inst_mag",
               "inst_mag_err", "fwhm", "flags")
#: added when a catalog is given
CATALOG_COLUMNS = ("catalog_id", "mag", "mag_err")


@dataclass
class MeasureResult:
    """What :func:`measure_image` found on one image.

    ``measurements`` has ``lightframe.MEASUREMENT_DTYPE`` (0-based x, y); ``catalog_id``,
    ``mag``, ``mag_err`` are per measurement (empty string / NaN when unmatched or
    uncalibrated) when a catalog was given, else None.
    """

    path: Path
    measurements: np.ndarray
    source_list: str
    aperture: float
    fwhm: float
    gain: float
    exptime: float | None
    has_wcs: bool
    zero_point: object | None = None      # calibrate.ZeroPointResult
    zero_point_note: str = ""
    catalog_id: np.ndarray | None = None
    mag: np.ndarray | None = None
    mag_err: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def _read_planes(path: Path):
    """(data float32, header, uncertainty or None, mask or None) of any 2-D FITS image."""
    from astropy.io import fits

    from clinepipe.ingest.fits_reader import check_data, read_image

    data, header = read_image(path)
    check_data(data, path)
    unc = mask = None
    try:
        with fits.open(path, memmap=False) as hdul:
            names = [h.name.upper() for h in hdul]
            if "UNCERT" in names and "MASK" in names:
                u = np.asarray(hdul["UNCERT"].data, dtype=np.float32)
                m = np.asarray(hdul["MASK"].data, dtype=np.uint8)
                if u.shape == data.shape and m.shape == data.shape:
                    unc, mask = u, m
    except (OSError, ValueError, KeyError):  # the image itself was readable: measure it bare
        pass
    return data, header, unc, mask


def _find_src(path: Path) -> Path | None:
    from clinepipe.ingest.files import fits_stem

    stem = fits_stem(path.name)
    for suffix in (".SRC", ".src", ".Src"):
        candidate = path.with_name(stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def measure_image(path, *, config=None, aperture: float | None = None, sources=None,
                  catalog=None, band: str | None = None,
                  gain_from_config: bool = True) -> MeasureResult:
    """Measure one 2-D FITS image.

    Parameters
    ----------
    path : path
        The image (raw or calibrated, plain, ``.gz`` or ``.fz``). Never modified.
    config : clinepipe.config.Config, optional
        Gain, read noise, aperture, annulus, detection threshold, background box, catalog
        match radius and fewest comparison stars; defaults when None.
    aperture : float, optional
        Radius in pixels; default the config's ``[photometry] aperture`` (<= 0: 1.5 x FWHM).
    sources : path, optional
        A ``.SRC`` source list (1-based positions). Default: ``<stem>.SRC`` beside the image
        if there is one, else our own detection.
    catalog : clinepipe.calibrate.Catalog, optional
        Reference stars; with ``band`` (a column of the catalog) the frame is calibrated.
    gain_from_config : bool
        Only changes the wording of the note when the header has no gain: True says the
        configuration's gain was used, False the default one.

    Raises
    ------
    BadInput
        The image cannot be read (named reasons of :func:`clinepipe.ingest.read_image`), the
        source list is malformed, or there is no star to measure.
    """
    from clinepipe.astrometry.detect import detect_sources
    from clinepipe.astrometry.wcs import header_wcs, pixel_to_sky
    from clinepipe.astrometry.src_lists import read_src, src_positions
    from clinepipe.calibrate.zero_point import apply_zero_point, ensemble_zero_point
    from clinepipe.catalogs.match import match_catalog
    from clinepipe.config import Config
    from clinepipe.run.light_stages import _brightest_first, measurement_table
    from clinepipe.photometry.aperture import aperture_photometry, instrumental_magnitude
    from clinepipe.photometry.background import measure_background
    from clinepipe.photometry.psf import psf_shape

    cfg = config or Config()
    path = Path(path)
    notes: list[str] = []
    data, header, unc, mask = _read_planes(path)
    ny, nx = data.shape

    src_path = Path(sources) if sources is not None else _find_src(path)
    src_fwhm = float("nan")
    if src_path is not None:
        table = read_src(src_path)
        x, y = src_positions(table)
        inside = (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)
        x, y = x[inside], y[inside]
        if inside.any():
            src_fwhm = float(np.nanmedian(np.asarray(table["FWHM_IMAGE"], float)[inside]))
        source_list = src_path.name
    else:
        found = detect_sources(data, mask=mask, threshold=cfg.photometry.detect_threshold)
        x, y = found["x"], found["y"]
        good = found["flags"] == 0
        if good.any():
            src_fwhm = float(np.nanmedian(found["fwhm"][good]))
        source_list = "detection"
    if x.size == 0:
        raise BadInput(f"{path.name}: no sources to measure ({source_list}).", reason="no stars")

    bkg = measure_background(data, mask=mask, box=cfg.photometry.background_box)
    guess = src_fwhm if np.isfinite(src_fwhm) else 3.0
    box = int(np.clip(np.ceil(2.5 * guess), 5, 25))
    fwhm, _ = psf_shape(data, x, y, background=bkg.level, box=box,
                        order=_brightest_first(data, x, y, bkg.level, mask))
    if not np.isfinite(fwhm):
        fwhm = src_fwhm
    radius = float(aperture) if aperture is not None else float(cfg.photometry.aperture)
    if radius <= 0:
        radius = 1.5 * fwhm
    if not (np.isfinite(radius) and radius > 0):
        raise BadInput(f"{path.name}: no usable stars to measure the FWHM for the aperture "
                       "(give --aperture).", reason="no stars")

    gain = _positive(header.get("EGAIN")) or _positive(header.get("GAIN"))
    if gain is None:
        gain = float(cfg.camera.gain)
        where = "the configured" if gain_from_config else "the default"
        notes.append(f"no EGAIN/GAIN in the header: errors use {where} gain {gain:g} e-/ADU")
    exptime = _positive(header.get("EXPTIME", header.get("EXPOSURE")))
    if exptime is None:
        notes.append("no EXPTIME in the header: inst_mag is per frame, not per second")

    phot = aperture_photometry(
        data, x, y, radius, background=bkg, gain=gain, read_noise=cfg.camera.read_noise,
        uncertainty=unc, mask=mask,
        annulus=tuple(cfg.photometry.annulus) if cfg.photometry.annulus else None)
    inst, inst_err = instrumental_magnitude(phot["flux"], phot["flux_err"], exptime)
    wcs = header_wcs(header)
    if wcs is None:
        notes.append("no valid celestial WCS in the header: ra, dec are empty "
                     "(plate-solve it with `clinepipe solve`)")
    ra, dec = pixel_to_sky(wcs, phot["x"], phot["y"])

    out = measurement_table(phot, ra, dec, inst, inst_err, fwhm)
    result = MeasureResult(path=path, measurements=out, source_list=source_list, aperture=radius,
                           fwhm=float(fwhm), gain=gain, exptime=exptime, has_wcs=wcs is not None,
                           notes=notes)

    if catalog is not None:
        n = len(out)
        result.catalog_id = np.full(n, "", dtype=object)
        result.mag = np.full(n, np.nan)
        result.mag_err = np.full(n, np.nan)
        if band is None or band not in catalog.mags:
            raise UsageError(f"{path.name}: the catalog has no band '{band}' "
                             f"(it has {', '.join(sorted(catalog.mags)) or 'none'}).")
        if wcs is None:
            result.zero_point_note = "no WCS, so no catalog match"
            return result
        idx, _ = match_catalog(ra, dec, catalog.ra, catalog.dec, cfg.catalog.match_radius)
        matched = idx >= 0
        safe = np.clip(idx, 0, None)
        result.catalog_id[matched] = np.asarray(catalog.ids)[idx[matched]]
        cat_mag, cat_err = catalog.band(band)
        cm = np.where(matched, cat_mag[safe], np.nan)
        ce = np.where(matched, cat_err[safe], np.nan)
        zp = ensemble_zero_point(inst, cm, inst_err, ce, exclude=out["flags"] != 0)
        if zp.n_used < cfg.catalog.min_stars or not np.isfinite(zp.value):
            result.zero_point_note = (f"too few comparison stars ({zp.n_used} < "
                                      f"{cfg.catalog.min_stars}; {int(matched.sum())} matched)")
            return result
        result.zero_point = zp
        result.mag, result.mag_err = apply_zero_point(inst, inst_err, zp)
    return result


def _num(value, fmt: str) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    return format(v, fmt) if math.isfinite(v) else ""


def result_rows(result: MeasureResult, *, with_catalog: bool, with_image: bool = True):
    """CSV rows (lists of str) of a :class:`MeasureResult`: :data:`CSV_COLUMNS` (1-based x, y),
    then :data:`CATALOG_COLUMNS` when ``with_catalog``, then ``image`` when ``with_image``."""
    m = result.measurements
    for i in range(len(m)):
        row = [_num(m["x"][i] + 1.0, ".3f"), _num(m["y"][i] + 1.0, ".3f"),
               _num(m["ra"][i], ".7f"), _num(m["dec"][i], ".7f"),
               _num(m["flux"][i], ".6g"), _num(m["flux_err"][i], ".6g"),
               _num(m["background"][i], ".6g"), _num(m["inst_mag"][i], ".5f"),
               _num(m["inst_mag_err"][i], ".5f"), _num(m["fwhm"][i], ".3f"),
               str(int(m["flags"][i]))]
        if with_catalog:
            cid = result.catalog_id[i] if result.catalog_id is not None else ""
            row += [str(cid), _num(result.mag[i] if result.mag is not None else None, ".5f"),
                    _num(result.mag_err[i] if result.mag_err is not None else None, ".5f")]
        if with_image:
            row.append(str(result.path))
        yield row
