"""The core of ``clinepipe measure``: sources, WCS, aperture photometry (and a zero point) of
any 2-D FITS image, without the database.

:func:`measure_image` runs on one file the very light stages ``clinepipe run`` runs after the
reduction (:func:`~clinepipe.run.light_stages.sources_stage`, ``wcs_stage``,
``photometry_stage``) and, given a catalog, the run's catalog calibration
(:func:`~clinepipe.calibrate.light.calibrate_with_catalog`), so a calibrated frame measured
here gives the numbers the run stored. It accepts what an arbitrary image has and reports what
it lacks instead of failing:

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

from clinepipe.ccd.reduce_light import positive_or_none as _positive
from clinepipe.errors import BadInput, UsageError

__all__ = ["CATALOG_COLUMNS", "CSV_COLUMNS", "MeasureResult", "measure_image", "result_rows"]

#: columns of ``clinepipe measure`` output (x, y 1-based FITS pixels)
CSV_COLUMNS = ("x", "y", "ra", "dec", "flux", "flux_err", "background", "inst_mag",
               "inst_mag_err", "fwhm", "flags")
#: added when a catalog is given
CATALOG_COLUMNS = ("catalog_id", "mag", "mag_err")


@dataclass
class MeasureResult:
    """What :func:`measure_image` found on one image.

    ``measurements`` has :data:`clinepipe.run.light_stages.MEASUREMENT_DTYPE` (0-based x, y);
    ``catalog_id``, ``mag``, ``mag_err`` are per measurement (empty string / NaN when unmatched or
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


def _read_planes(path: Path, masters_dir: Path | None = None):
    """(data float32, header, uncertainty or None, mask or None) of any 2-D FITS image.

    A calibrated frame kept without its uncertainty plane (``[archive] keep_calibrated =
    "image"``) gets it recomputed by :func:`clinepipe.ccd.reduced_files.read_reduced` from the
    masters under ``masters_dir``, as the run measured it."""
    from astropy.io import fits

    from clinepipe.ccd.reduced_files import read_reduced
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
            kept_image = "IMAGE" in names and "MASK" in names and "UNCERT" not in names
        if kept_image and masters_dir is not None:
            frame = read_reduced(path, masters_dir=masters_dir)
            unc, mask = frame.uncertainty, frame.mask
    except (OSError, ValueError, KeyError, BadInput):  # the image itself was readable: measure it bare
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


def _frame_info(path: Path, header, shape, gain, exptime):
    """The :class:`~clinepipe.ingest.frame_info.FrameInfo` the light stages read (name, gain,
    exposure time) of an image that was never ingested: no observing time is needed, since
    ``measure`` writes no times."""
    from clinepipe.ingest.frame_info import FrameInfo

    filt = header.get("FILTER")
    return FrameInfo(path=path, kind="light", binning=1,
                     filter=str(filt).strip() if filt is not None else None,
                     exptime=exptime, ccd_temp=None, date_obs="", jd_start=float("nan"),
                     jd_mid=float("nan"), night="", shape=tuple(shape), gain=gain)


def measure_image(path, *, config=None, aperture: float | None = None, sources=None,
                  catalog=None, band: str | None = None,
                  gain_from_config: bool = True) -> MeasureResult:
    """Measure one 2-D FITS image with the light stages of ``clinepipe run``.

    Parameters
    ----------
    path : path
        The image (raw or calibrated, plain, ``.gz`` or ``.fz``). Never modified.
    config : clinepipe.config.Config, optional
        Gain, read noise, aperture, annulus, source list mode, detection threshold,
        background box, catalog match radius and fewest comparison stars; defaults when None.
        ``measure`` never plate-solves (``clinepipe solve`` does).
    aperture : float, optional
        Radius in pixels; default the config's ``[photometry] aperture`` (<= 0: 1.5 x FWHM).
    sources : path, optional
        A ``.SRC`` source list (1-based positions), used whatever ``[photometry] sources``
        says. Default: ``<stem>.SRC`` beside the image if there is one, under the config's
        ``sources`` mode as in the run (``auto``: else our own detection).
    catalog : clinepipe.catalogs.Catalog, optional
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
    from dataclasses import replace

    from clinepipe.ccd.reduced_files import ReducedFrame
    from clinepipe.config import Config
    from clinepipe.run.light_stages import (
        LightContext,
        LightTask,
        photometry_stage,
        sources_stage,
        wcs_stage,
    )

    cfg = config or Config()
    path = Path(path)
    notes: list[str] = []
    data, header, unc, mask = _read_planes(path, cfg.paths.archive / "masters")

    phot = cfg.photometry
    if aperture is not None:
        phot = replace(phot, aperture=float(aperture))
    src_path = Path(sources) if sources is not None else _find_src(path)
    if sources is not None:
        phot = replace(phot, sources="src")
    cfg = replace(cfg, photometry=phot, astrometry=replace(cfg.astrometry, solve=False))

    gain = _positive(header.get("EGAIN")) or _positive(header.get("GAIN"))
    if gain is None:
        where = "the configured" if gain_from_config else "the default"
        notes.append(f"no EGAIN/GAIN in the header: errors use {where} gain "
                     f"{float(cfg.camera.gain):g} e-/ADU")
    exptime = _positive(header.get("EXPTIME", header.get("EXPOSURE")))
    if exptime is None:
        notes.append("no EXPTIME in the header: inst_mag is per frame, not per second")

    task = LightTask(frame_id=0, raw_path=path, src_path=src_path,
                     info=_frame_info(path, header, data.shape, gain, exptime),
                     bias=None, dark=None, flat=None, output=None, config=cfg)
    ctx = LightContext(task, reduced=ReducedFrame(data=data, uncertainty=unc, mask=mask,
                                                  header=header))
    sources_stage(ctx)
    source_list = src_path.name if ctx.source_list == "src" else "detection"
    notes.extend(ctx.notes)
    if ctx.x is None or ctx.x.size == 0:
        raise BadInput(f"{path.name}: no sources to measure ({source_list}).", reason="no stars")
    try:
        wcs_stage(ctx)
    except BadInput as exc:
        if exc.reason != "no WCS":
            raise
        notes.append("no valid celestial WCS in the header: ra, dec are empty "
                     "(plate-solve it with `clinepipe solve`)")
    photometry_stage(ctx)
    out = ctx.measurements
    result = MeasureResult(path=path, measurements=out, source_list=source_list,
                           aperture=float(ctx.stats["aperture"]), fwhm=float(ctx.stats["fwhm"]),
                           gain=float(gain or cfg.camera.gain), exptime=exptime,
                           has_wcs=ctx.wcs is not None, notes=notes)
    if catalog is not None:
        _calibrate(result, catalog, band, cfg, known=config is not None)
    return result


def _calibrate(result: MeasureResult, catalog, band: str | None, cfg, *, known: bool) -> None:
    """Calibrate ``result`` in place against ``catalog`` with the run's catalog calibration;
    with ``known``, the configured known variables leave the ensemble as in the run."""
    from clinepipe.calibrate.light import calibrate_with_catalog, known_variables_near
    from clinepipe.catalogs.known_variables import known_variables_source
    from clinepipe.errors import CatalogUnavailable

    path, out = result.path, result.measurements
    n = len(out)
    result.catalog_id = np.full(n, "", dtype=object)
    result.mag = np.full(n, np.nan)
    result.mag_err = np.full(n, np.nan)
    if band is None or band not in catalog.mags:
        raise UsageError(f"{path.name}: the catalog has no band '{band}' "
                         f"(it has {', '.join(sorted(catalog.mags)) or 'none'}).")
    if not result.has_wcs:
        result.zero_point_note = "no WCS, so no catalog match"
        return
    exclude = None
    if known:
        try:
            exclude = known_variables_near(cfg, out, known_variables_source(cfg))
        except CatalogUnavailable as exc:
            result.notes.append(f"known variables not left out of the ensemble ({exc.reason})")
    calib = calibrate_with_catalog(out, catalog, band, match_radius=cfg.catalog.match_radius,
                                   min_stars=cfg.catalog.min_stars, exclude=exclude)
    matched = calib.cat_index >= 0
    result.catalog_id[matched] = np.asarray(catalog.ids)[calib.cat_index[matched]]
    if calib.zero_point is None:
        result.zero_point_note = f"{calib.reason}; {int(matched.sum())} matched"
        return
    result.zero_point = calib.zero_point
    result.mag, result.mag_err = calib.mag, calib.mag_err


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
               _num(m["flux"][i], ".10g"), _num(m["flux_err"][i], ".10g"),
               _num(m["background"][i], ".8g"), _num(m["inst_mag"][i], ".5f"),
               _num(m["inst_mag_err"][i], ".5f"), _num(m["fwhm"][i], ".3f"),
               str(int(m["flags"][i]))]
        if with_catalog:
            cid = result.catalog_id[i] if result.catalog_id is not None else ""
            row += [str(cid), _num(result.mag[i] if result.mag is not None else None, ".5f"),
                    _num(result.mag_err[i] if result.mag_err is not None else None, ".5f")]
        if with_image:
            row.append(str(result.path))
        yield row
