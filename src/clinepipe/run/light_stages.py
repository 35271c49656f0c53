"""Per-light-frame work, free of the database so it can run on a Dask worker.

The stages run in this order (read the list to know what happens to a light)::

    LIGHT_STAGES = [reduce_stage, sources_stage, wcs_stage, photometry_stage, times_stage]

Each stage takes the :class:`LightContext` and fills in more of it; a stage that finds the
frame unusable raises a :class:`~clinepipe.errors.ClinepipeError` carrying a named reason,
which :func:`process_light` turns into a failed or waiting :class:`LightResult`.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clinepipe.ccd.masks import PHOTOMETRY_BAD_BITS
from clinepipe.config import Config
from clinepipe.errors import BadInput, ClinepipeError, Waiting, storage_error
from clinepipe.ingest.frame_info import FrameInfo

log = logging.getLogger("clinepipe")

MEASUREMENT_DTYPE = np.dtype([
    ("x", "f8"), ("y", "f8"),            # 0-based pixel centre
    ("ra", "f8"), ("dec", "f8"),         # deg, NaN without WCS
    ("flux", "f8"), ("flux_err", "f8"),  # ADU
    ("background", "f8"),                # ADU / pixel
    ("inst_mag", "f8"), ("inst_mag_err", "f8"),
    ("fwhm", "f8"), ("flags", "i4"),
])


def measurement_table(phot, ra, dec, inst_mag, inst_mag_err, fwhm) -> np.ndarray:
    """One :data:`MEASUREMENT_DTYPE` row per star from the photometry and its sky positions."""
    out = np.zeros(len(phot), dtype=MEASUREMENT_DTYPE)
    for name in ("x", "y", "flux", "flux_err", "background", "flags"):
        out[name] = phot[name]
    out["ra"], out["dec"] = ra, dec
    out["inst_mag"], out["inst_mag_err"] = inst_mag, inst_mag_err
    out["fwhm"] = fwhm
    return out


@dataclass(frozen=True)
class MasterRef:
    """A master calibration frame chosen for a light; ``id`` and ``path`` None when there is
    none and the light is measured without it (``[reduction] without_masters = "measure"``)."""

    id: int | None
    path: Path | None
    exptime: float | None = None

    @property
    def name(self) -> str | None:
        """The master's file name (``BIASFILE``…), None when there is no master."""
        return None if self.path is None else self.path.name


#: the :class:`MasterRef` of a master a light is measured without
NO_MASTER = MasterRef(None, None)


@dataclass(frozen=True)
class LightTask:
    """One light for the stages. ``clinepipe measure`` runs the stages after ``reduce_stage``
    on an already calibrated image: then the masters and ``output`` are None."""

    frame_id: int
    raw_path: Path            # the archive copy of the raw file (read only)
    src_path: Path | None     # the .SRC list beside it, if any
    info: FrameInfo
    bias: MasterRef | None
    dark: MasterRef | None
    flat: MasterRef | None
    output: Path | None       # where the calibrated frame is written
    config: Config


@dataclass
class LightResult:
    """What became of one light after the stages (:func:`process_light`), sent back from a
    worker to the process that stores it.

    Attributes
    ----------
    frame_id : int
        The light's id in the ``frames`` table.
    ok : bool
        Whether every stage ran; else ``stage``, ``reason`` (short, stored in ``frames.reason``)
        and ``message`` (one sentence for the log) say where and why it stopped.
    waiting : bool
        The light lacks something that may come later (a master): retried by the next run.
    calibrated_path : Path or None
        Where the calibrated frame was written.
    measurements : ndarray of :data:`MEASUREMENT_DTYPE` (n,) or None
        One row per star.
    stats : dict
        The frame's summary for QC: ``fwhm`` (binned px), ``elongation`` (a/b), ``sky`` (ADU per
        pixel, without the pedestal), ``n_stars``, ``source_list`` (``"src"``/``"detect"``),
        ``aperture`` (radius, binned px), ``pixel_scale`` (arcsec/px or None), ``notes``.
    bjd_tdb : ndarray (n,) or None
        Mid-exposure BJD_TDB (days) per measurement, NaN without a sky position.
    airmass : ndarray (n,) or None
        Airmass per measurement, NaN without a sky position.
    stop : bool
        See the comment on the field.
    """
    frame_id: int
    ok: bool
    stage: str = ""
    reason: str = ""
    message: str = ""
    waiting: bool = False
    calibrated_path: Path | None = None
    measurements: np.ndarray | None = None
    stats: dict = field(default_factory=dict)
    bjd_tdb: np.ndarray | None = None   # per measurement, NaN without a sky position
    airmass: np.ndarray | None = None
    #: the archive cannot be written (full disk…): the run stops, this light stays pending
    stop: bool = False


@dataclass
class LightContext:
    """The state of one light as it goes through :data:`LIGHT_STAGES`: each stage reads what the
    earlier ones filled in and adds its own (pixel positions are 0-based, in binned pixels of the
    calibrated, trimmed image).

    Attributes
    ----------
    task : LightTask
        The light and its configuration.
    reduced : ReducedFrame
        The calibrated frame (ADU), from :func:`reduce_stage`.
    x, y : ndarray (k,)
        Source positions (0-based px), from :func:`sources_stage`.
    source_list : str
        Where they came from: ``"src"`` (the .SRC list) or ``"detect"``.
    src_fwhm, src_elongation : float
        Median FWHM (binned px) and elongation (a/b) of those sources; NaN when unknown.
    wcs : astropy.wcs.WCS
        The frame's WCS, from :func:`wcs_stage`.
    measurements, stats
        From :func:`photometry_stage`: as in :class:`LightResult`.
    notes : list of str
        Sentences joined into the frame's reason (a missing master, a plate solve...).
    bjd_tdb, airmass : ndarray (n,)
        From :func:`times_stage`: as in :class:`LightResult`.
    writing : Future or None
        The background write of the calibrated frame (see the comment on the field).
    """
    task: LightTask
    reduced: object = None          # clinepipe.reduce.ReducedFrame
    x: np.ndarray | None = None     # 0-based source positions
    y: np.ndarray | None = None
    source_list: str = ""
    src_fwhm: float = float("nan")
    src_elongation: float = float("nan")
    wcs: object = None
    measurements: np.ndarray | None = None
    stats: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    bjd_tdb: np.ndarray | None = None
    airmass: np.ndarray | None = None
    writing: object = None          # Future of the calibrated frame's write (reduce_stage)


def reduce_stage(ctx: LightContext) -> None:
    """Calibrate the raw light with its masters (:func:`~clinepipe.ccd.reduce_light.reduce_light`)
    into ``ctx.reduced`` (ADU) and start writing it to ``task.output`` in the background, so the
    disk works while the next stages measure; a missing master or an unused dark becomes a note."""
    from clinepipe.ccd.reduce import missing_masters_reason
    from clinepipe.ccd.reduce_light import reduce_light
    from clinepipe.ccd.reduced_files import write_reduced_async

    t = ctx.task
    cam = t.config.camera
    red = t.config.reduction
    frame = reduce_light(
        t.raw_path, t.info,
        bias=t.bias.path, dark=t.dark.path, flat=t.flat.path,
        mode=red.mode, camera=cam, reduction=red,
    )
    # written (and fsync'ed) by a background thread while the next stages measure the frame;
    # process_light waits for it before it reports the light
    ctx.writing = write_reduced_async(t.output, frame, masters_used=_masters_used(t),
                                      keep=t.config.archive.keep_calibrated)
    ctx.reduced = frame
    lacking = missing_masters_reason(frame.header["CALSTAT"])
    if lacking:  # the frame's reason: measured, but "no flat"
        ctx.notes.append(lacking)
    if "CLPDNOTE" in frame.header:  # a bias-holding dark of another exposure: why not used
        ctx.notes.append(str(frame.header["CLPDNOTE"]))


def _masters_used(t: LightTask) -> dict:
    return {"bias": t.bias.name, "dark": t.dark.name, "flat": t.flat.name}


def sources_stage(ctx: LightContext) -> None:
    """The star positions ``ctx.x``, ``ctx.y`` (0-based px): from the .SRC list beside the raw
    file (``[photometry] sources`` ``"auto"`` or ``"src"``; the list counts rows as stored,
    so its y is flipped when the image's rows were reversed on reading), else by own detection
    at ``detect_threshold`` sigma above the background;
    also the sources' median FWHM (px) and elongation.

    Raises :class:`BadInput` when ``sources = "src"`` and the list is missing or unreadable
    (``"auto"`` falls back on detection, with a note).
    """
    from clinepipe.astrometry.detect import detect_sources
    from clinepipe.astrometry.src_lists import read_src, src_positions
    from clinepipe.ingest.row_order import FLIPPED, flip_y

    t = ctx.task
    mode = t.config.photometry.sources
    use_src = mode in ("auto", "src") and t.src_path is not None and t.src_path.exists()
    if mode == "src" and not use_src:
        raise BadInput(f"{t.info.path.name}: no .SRC source list beside the frame.",
                       reason="no .SRC list")
    if use_src:
        try:
            table = read_src(t.src_path)
            x, y = src_positions(table)
            ny, nx = ctx.reduced.data.shape
            if ctx.reduced.header.get(FLIPPED):  # the list counts the rows as stored
                y = flip_y(y, ny)
            inside = (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)
            ctx.x, ctx.y = x[inside], y[inside]
            if len(table):
                ctx.src_fwhm = float(np.nanmedian(np.asarray(table["FWHM_IMAGE"], float)[inside]))
                ctx.src_elongation = float(np.nanmedian(np.asarray(table["ELONGATION"], float)[inside]))
            ctx.source_list = "src"
            return
        except BadInput as exc:
            if mode == "src":
                raise
            ctx.notes.append(f"{exc.reason}; fell back to own detection")
            log.warning("%s; using own detection instead", exc.message)
    sources = detect_sources(ctx.reduced.data, mask=ctx.reduced.mask,
                             threshold=t.config.photometry.detect_threshold)
    ctx.x, ctx.y = sources["x"], sources["y"]
    good = sources["flags"] == 0
    if good.any():
        ctx.src_fwhm = float(np.nanmedian(sources["fwhm"][good]))
        ctx.src_elongation = float(np.nanmedian(sources["elongation"][good]))
    ctx.source_list = "detect"


def wcs_stage(ctx: LightContext) -> None:
    """The frame's WCS ``ctx.wcs`` from its header, else, with ``[astrometry] solve``, from
    astrometry.net (written into the calibrated frame); raises :class:`BadInput` ("no WCS") when
    there is none, as the photometry needs sky positions to match stars."""
    from clinepipe.astrometry.wcs import header_wcs

    wcs = header_wcs(ctx.reduced.header)
    if wcs is None and ctx.task.config.astrometry.solve:
        wcs = _plate_solve(ctx)
    if wcs is None:
        raise BadInput(f"{ctx.task.info.path.name}: the frame has no WCS in its header "
                       "(plate-solve it with `clinepipe solve`, or set [astrometry] solve = true).",
                       reason="no WCS")
    ctx.wcs = wcs


def _plate_solve(ctx: LightContext):
    """Solve the calibrated frame with astrometry.net and put the WCS into its header.

    The index files built from the reference catalog around the field are used with the
    system ones (``[astrometry] catalog_index``), see :mod:`clinepipe.catalog_index`.
    """
    from astropy.io import fits

    from clinepipe.astrometry.catalog_index import solve_with_catalog
    from clinepipe.astrometry.wcs import header_wcs
    from clinepipe.ccd.reduced_files import write_reduced

    t = ctx.task
    keep = t.config.archive.keep_calibrated
    if ctx.writing is not None:
        ctx.writing.result()  # the calibrated frame is written in the background: wait for it
    solved = t.output.with_name(t.output.stem + "_solved.fits")
    image = t.output
    if keep != "all":  # solve-field gets a plain FITS image, not the compressed (or no) file
        image = t.output.with_name(t.output.stem + "_solving.fits")
        write_reduced(image, ctx.reduced, masters_used=_masters_used(t))
    try:
        solve_with_catalog(t.config, image, solved)
    finally:
        if image != t.output:
            image.unlink(missing_ok=True)
    header = fits.getheader(solved)
    wcs = header_wcs(header)
    if wcs is not None:
        for key, value in wcs.to_header(relax=True).items():
            ctx.reduced.header[key] = value
        write_reduced(t.output, ctx.reduced, masters_used=_masters_used(t), keep=keep)
        ctx.notes.append("plate-solved with astrometry.net")
    solved.unlink(missing_ok=True)
    return wcs


def photometry_stage(ctx: LightContext) -> None:
    """Aperture photometry of every source into ``ctx.measurements`` and the frame's summary into
    ``ctx.stats``.

    The background is a ``[photometry] background_box`` mesh; the FWHM is measured on the image's
    own brightest stars (so QC sees trailing and defocus even with a .SRC list); the aperture
    radius is ``[photometry] aperture`` (binned px) or 1.5 x that FWHM when it is 0. Fluxes are ADU,
    instrumental magnitudes are per second of exposure, ``ra``/``dec`` in degrees from the WCS.
    Raises :class:`BadInput` ("no stars") when no aperture radius can be had.
    """
    from clinepipe.astrometry.wcs import pixel_scale_arcsec, pixel_to_sky
    from clinepipe.photometry.aperture import (
        APERTURE_FWHM_FACTOR,
        aperture_photometry,
        instrumental_magnitude,
    )
    from clinepipe.photometry.background import measure_background
    from clinepipe.photometry.psf import psf_shape

    t = ctx.task
    phot_cfg = t.config.photometry
    data, mask = ctx.reduced.data, ctx.reduced.mask
    bkg = measure_background(data, mask=mask, box=phot_cfg.background_box)
    # the image's own PSF shape (not the .SRC's) so QC sees trailing and defocus
    guess = ctx.src_fwhm if np.isfinite(ctx.src_fwhm) else 3.0
    box = int(np.clip(np.ceil(2.0 * guess), 5, 15))
    # the background at the stamps' and stars' pixels only: no full-frame maps
    fwhm, elongation = psf_shape(data, ctx.x, ctx.y, background=bkg.level_at, box=box,
                                 order=_brightest_first(data, ctx.x, ctx.y, bkg.level_at, mask),
                                 rms=bkg.rms_at)
    if not np.isfinite(fwhm):
        fwhm, elongation = ctx.src_fwhm, ctx.src_elongation
    radius = phot_cfg.aperture if phot_cfg.aperture > 0 else APERTURE_FWHM_FACTOR * fwhm
    if not np.isfinite(radius) or radius <= 0:
        raise BadInput(f"{t.info.path.name}: no usable stars to measure the FWHM for the aperture.",
                       reason="no stars")
    gain = t.info.gain or t.config.camera.gain
    phot = aperture_photometry(
        data, ctx.x, ctx.y, radius, background=bkg, gain=gain,
        read_noise=t.config.camera.read_noise, uncertainty=ctx.reduced.uncertainty,
        mask=_photometry_mask(mask),
        annulus=tuple(phot_cfg.annulus) if phot_cfg.annulus else None,
        fwhm=fwhm, blend_fraction=phot_cfg.blend_fraction,
    )
    inst, inst_err = instrumental_magnitude(phot["flux"], phot["flux_err"], t.info.exptime)
    ra, dec = pixel_to_sky(ctx.wcs, phot["x"], phot["y"])
    out = measurement_table(phot, ra, dec, inst, inst_err, fwhm)
    ctx.measurements = out
    ctx.stats = {
        "fwhm": float(fwhm), "elongation": float(elongation),
        # the sky alone: without a master bias the frame keeps the pedestal (CLPPED)
        "sky": float(bkg.global_level) - float(ctx.reduced.header.get("CLPPED", 0.0)),
        "n_stars": int(np.sum(phot["flags"] == 0)),
        "source_list": ctx.source_list, "aperture": float(radius),
        # arcsec/px: the star-identity radius (no WCS: `clinepipe measure` of a bare image)
        "pixel_scale": pixel_scale_arcsec(ctx.wcs) if ctx.wcs is not None else None,
    }




def _photometry_mask(mask):
    return None if mask is None else (mask & PHOTOMETRY_BAD_BITS)


def _brightest_first(data, x, y, background, mask) -> np.ndarray:
    """Indices of unsaturated, unmasked sources ordered by peak height (brightest first).

    ``background``: a level (ADU), a 2-D map, or a function ``f(columns, rows)`` giving it at
    integer pixels (``Background.level_at``)."""
    ny, nx = data.shape
    xi = np.clip(np.rint(x).astype(int), 0, nx - 1)
    yi = np.clip(np.rint(y).astype(int), 0, ny - 1)
    if callable(background):
        level = background(xi, yi)
    else:
        level = background[yi, xi] if np.ndim(background) else background
    peak = data[yi, xi] - level
    bad = (mask[yi, xi] != 0) if mask is not None else np.zeros(x.size, bool)
    order = np.argsort(-peak, kind="stable")
    return order[~bad[order]]


def times_stage(ctx: LightContext) -> None:
    """BJD_TDB and airmass of every measurement with a sky position (NaN otherwise).

    Database-free like the stages before it, so it runs on the Dask worker too and the main
    process, which writes the frames one by one, stays cheap.
    """
    from clinepipe.photometry.times import airmass, bjd_tdb

    m, info, site = ctx.measurements, ctx.task.info, ctx.task.config.site
    ok = np.isfinite(m["ra"]) & np.isfinite(m["dec"])
    ctx.bjd_tdb = np.full(len(m), np.nan)
    ctx.airmass = np.full(len(m), np.nan)
    if ok.any():
        ctx.airmass[ok] = airmass(m["ra"][ok], m["dec"][ok], info.jd_mid, site.latitude,
                                  site.longitude)
        ctx.bjd_tdb[ok] = bjd_tdb(np.full(int(ok.sum()), info.jd_mid), m["ra"][ok], m["dec"][ok],
                                  site.latitude, site.longitude, site.elevation)



def _failure(task: LightTask, stage: str, exc: Exception, path, doing: str) -> LightResult:
    """The result of a light whose ``stage`` raised ``exc`` (``doing`` says what, for the log).

    A :class:`ClinepipeError` carries its named reason; a full or read-only archive (``path``)
    stops the run, the light staying pending; anything else is a bug, which must not stop the
    night: it is logged with its traceback and the light fails with "internal error"."""
    if isinstance(exc, ClinepipeError):
        return LightResult(task.frame_id, False, stage=stage, reason=exc.reason,
                           message=exc.message, waiting=isinstance(exc, Waiting))
    stop = storage_error(exc, path)
    if stop is not None:
        return LightResult(task.frame_id, False, stage=stage, reason=stop.reason,
                           message=stop.message, stop=True)
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    log.error("internal error on %s %s:\n%s", task.raw_path, doing,
              "".join(traceback.format_exception(exc)))
    return LightResult(task.frame_id, False, stage=stage, reason=f"internal error: {detail}",
                       message=f"{task.raw_path.name}: internal error in {stage} ({detail}).")


LIGHT_STAGES = [reduce_stage, sources_stage, wcs_stage, photometry_stage, times_stage]


def process_light(task: LightTask) -> LightResult:
    """Run :data:`LIGHT_STAGES` on one light; never raises (errors become the result).

    Returns once the calibrated frame is on disk: a failed write fails the light at the
    ``reduce`` stage, as if it had been written there synchronously.
    """
    return finish_light(start_light(task))


@dataclass
class PendingLight:
    """A light whose stages have run while its calibrated frame may still be being written."""

    task: LightTask
    result: LightResult
    writing: object = None  # Future of the write, or None


def start_light(task: LightTask) -> PendingLight:
    """:func:`process_light` without the wait for the written file: a serial run starts the
    next light meanwhile, so the disk (fsync of ~8 MB) and the measuring overlap; the light is
    reported (:func:`finish_light`) only once its file is in place."""
    ctx = LightContext(task)
    return PendingLight(task, _run_stages(ctx), ctx.writing)


def finish_light(pending: PendingLight) -> LightResult:
    """Wait for the light's calibrated frame to be written; a failed write fails the light at
    the ``reduce`` stage (a full archive stops the run)."""
    task, result = pending.task, pending.result
    if pending.writing is not None:
        try:
            pending.writing.result()
        except Exception as exc:
            failed = _failure(task, "reduce", exc, task.output, f"writing {task.output}")
            if failed.stop or result.ok:  # a full archive stops the run whatever the stages did
                result = failed
    return result


def _run_stages(ctx: LightContext) -> LightResult:
    task = ctx.task
    for stage in LIGHT_STAGES:
        name = stage.__name__.removesuffix("_stage")
        try:
            stage(ctx)
        except Exception as exc:
            return _failure(task, name, exc, getattr(exc, "filename", None) or task.output,
                            f"in {name}")
    stats = dict(ctx.stats)
    if ctx.notes:
        stats["notes"] = "; ".join(ctx.notes)
    return LightResult(task.frame_id, True, calibrated_path=task.output,
                       measurements=ctx.measurements, stats=stats, bjd_tdb=ctx.bjd_tdb,
                       airmass=ctx.airmass)
