"""A light file reduced end to end: its header and pixels read, the masters it needs found and
loaded, :func:`~clinepipe.ccd.reduce.reduce_frame` applied, the calibrated file written; and
``clinepipe reduce`` on a list of files.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from clinepipe.ccd.dark_bias import holds_bias
from clinepipe.ccd.master_use import crop_master, find_master, master_parts
from clinepipe.ccd.reduce import reduce_frame
from clinepipe.ccd.reduced_files import (
    ReducedFrame,
    calibrated_name,
    write_reduced,
)
from clinepipe.errors import BadInput, ClinepipeError, MissingCalibration
from clinepipe.finite import finite_or_none
from clinepipe.ingest.frame_info import FrameInfo
from clinepipe.ingest.row_order import FLIPPED, bottom_up_origin

#: how a waiting light says it could be measured now
MEASURE_HINT = 'set [reduction] without_masters = "measure" to measure without it'


def _missing(name: str, what: str, binning: int) -> MissingCalibration:
    reason = f"waiting for calibration: no {what} for binning {binning}"
    return MissingCalibration(f"{name}: {reason} ({MEASURE_HINT}).", reason=reason)


def reduce_light(path: Path, info: FrameInfo, masters: dict | None = None, *, bias=None,
                 dark=None, flat=None, dark_exptime: float | None = None,
                 mode: str | None = None, camera=None, reduction=None) -> ReducedFrame:
    """Read a raw light once and reduce it with its masters.

    Parameters
    ----------
    path : Path
        The raw light (the archive copy); read only.
    info : FrameInfo
        Its header facts (from :func:`clinepipe.ingest.read_frame_info`).
    masters : dict, optional
        ``{"bias": m, "dark": m, "flat": m}``; each ``m`` a FITS path (as written by
        :func:`clinepipe.masters.write_master`), an array, a
        :class:`~clinepipe.masters.MasterResult`, or a dict with ``data``/``path``,
        ``noise`` and ``exptime``. The keywords ``bias``/``dark``/``flat`` are the same.
    dark_exptime : float, optional
        Overrides the dark's exposure (else its ``exptime``/EXPTIME).
    mode, camera, reduction
        The reduction mode (default: ``reduction.mode``), :class:`CameraConfig` (gain when the
        frame has no EGAIN, read noise, saturation, ``max_ccd_temp``) and
        :class:`ReductionConfig` (``overscan``, ``cosmic_rays``, ``without_masters``: with
        ``"measure"`` a master not given is left out, see :func:`reduce_frame`).

    Raises
    ------
    BadInput
        ``CCD too warm: -1.2 °C > -3.0 °C``; ``subframe without origin``; ``subframe outside
        the master``; the raw file's own problems (see :mod:`clinepipe.ingest`).
    MissingCalibration
        ``waiting for calibration: no bias for binning 2`` (``no dark …``,
        ``no R-band flat …``) when a master is not given or its file does not exist (and
        ``reduction.without_masters`` is ``"wait"``).
    """
    from clinepipe.config import CameraConfig, ReductionConfig
    from clinepipe.ingest.fits_reader import check_data, read_image

    camera = camera or CameraConfig()
    reduction = reduction or ReductionConfig()
    mode = mode or reduction.mode
    path = Path(path)
    name = path.name
    given = dict(masters or {})
    for key, value in (("bias", bias), ("dark", dark), ("flat", flat)):
        if value is not None:
            given[key] = value

    if (info.ccd_temp is not None and camera.max_ccd_temp is not None
            and info.ccd_temp > camera.max_ccd_temp):
        reason = f"CCD too warm: {info.ccd_temp:.1f} °C > {camera.max_ccd_temp:.1f} °C"
        raise BadInput(f"{name}: CCD too warm ({info.ccd_temp:.1f} °C > "
                       f"{camera.max_ccd_temp:.1f} °C allowed).", reason=reason)
    what = {"bias": "bias", "dark": "dark", "flat": f"{info.filter}-band flat"}
    for key in ("bias", "dark", "flat"):
        m = given.get(key)
        target = m.get("data") if isinstance(m, dict) and m.get("data") is not None else (
            m.get("path") if isinstance(m, dict) else m)
        if target is None or (isinstance(target, (str, os.PathLike)) and not Path(target).is_file()):
            if reduction.without_masters != "measure":
                raise _missing(name, what[key], info.binning)
            given[key] = None

    raw, header = read_image(path)
    if not _has_information(raw):
        check_data(raw, path)  # says why: all-NaN or constant data
    has_origin = "XORGSUBF" in header or "YORGSUBF" in header
    yorg = info.yorg
    parts = {}
    for key in ("bias", "dark", "flat"):
        if given.get(key) is None:  # measured without it
            parts[key] = (None, None, None, "")
            continue
        data, _, noise, exptime, mname = master_parts(given[key])
        if has_origin:
            yorg = bottom_up_origin(header, info.yorg, data.shape[0], raw.shape[0])
        cropped = crop_master(np.asarray(data, dtype=np.float32), info.xorg, yorg, raw.shape,
                              has_origin=has_origin, name=name)
        parts[key] = (cropped, noise, exptime, mname)
    t_dark = dark_exptime if dark_exptime is not None else parts["dark"][2]
    gain = info.gain or positive_or_none(header.get("EGAIN")) or camera.gain
    frame = reduce_frame(
        raw, bias=parts["bias"][0], dark=parts["dark"][0], dark_exptime=positive_or_none(t_dark),
        flat=parts["flat"][0], exptime=info.exptime, mode=mode, gain=gain,
        read_noise=camera.read_noise, saturation=_saturation(info, header, camera, raw),
        bias_noise=finite_or_none(parts["bias"][1]), dark_noise=finite_or_none(parts["dark"][1]),
        flat_noise=finite_or_none(parts["flat"][1]), overscan=reduction.overscan,
        cosmic_rays=reduction.cosmic_rays, header=header, name=name,
        dark_holds_bias=holds_bias(given.get("dark")))
    if header.get(FLIPPED) and has_origin and yorg != info.yorg:  # for the masters' crop
        frame.header["CLPYORG"] = (yorg, "subframe origin row in the bottom-up masters")
    for key, card in (("bias", "BIASFILE"), ("dark", "DARKFILE"), ("flat", "FLATFILE")):
        if parts[key][3]:
            frame.header[card] = (parts[key][3], f"master {key}")
    return frame


def _saturation(info, header, camera, raw=None) -> float:
    """The raw ADU at which a pixel is saturated: the header's (SATURATE, DATAMAX, MAXLIN;
    a FrameInfo rebuilt from the database no longer carries it), else the ceiling of a 12- or
    14-bit ADC in a 16-bit file when ``raw`` shows one (:func:`clinepipe.headers.adc_saturation`;
    header ``CLPADC``), else ``[camera] saturation``."""
    from clinepipe.headers import adc_saturation, read_header_facts

    given = info.saturation or read_header_facts(header).saturation
    if given:
        return given
    adc = adc_saturation(raw) if raw is not None else None
    if adc is not None and adc[1] < camera.saturation:
        header["CLPADC"] = (adc[0], f"ADC bits: every pixel <= {adc[1]:g} ADU, some at it")
        return adc[1]
    return camera.saturation


def _has_information(raw: np.ndarray) -> bool:
    """True when the first row already holds two different finite values, so the frame is
    neither all-NaN nor constant (what :func:`clinepipe.ingest.check_data` checks with full
    passes over the frame); False means "run check_data"."""
    row = raw[0] if raw.ndim == 2 and raw.shape[0] else raw.ravel()[:0]
    row = row[np.isfinite(row)]
    return row.size >= 2 and bool(row.min() != row.max())


def positive_or_none(value) -> float | None:
    """``value`` as a float when it is a finite positive number (a header value), else None."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def reduce_files(lights, masters_dir: Path, output_dir: Path, *, mode: str = "default",
                 camera=None, site=None, reduction=None) -> list[tuple[Path, Path | str]]:
    """The core of ``clinepipe reduce``: each light -> ``output_dir/<stem>_calibrated.fits``.

    Masters are read from ``masters_dir/binning{N}/bias_master.fits``, ``dark_master.fits``,
    ``flat_master_{FILTER}.fits`` (as :func:`clinepipe.masters.make_masters` writes them; a
    ``.fit`` ending is accepted too). A frame that cannot be reduced is reported with its
    reason and the others go on.

    Returns
    -------
    list of (Path, Path or str)
        Per input, in order: the output file, or the reason it was not written.
    """
    from clinepipe.config import CameraConfig, ReductionConfig, SiteConfig
    from clinepipe.ingest.classify import read_frame_info

    camera = camera or CameraConfig()
    site = site or SiteConfig()
    reduction = reduction or ReductionConfig()
    output_dir = Path(output_dir)
    results: list[tuple[Path, Path | str]] = []
    written: dict[Path, Path] = {}
    for light in lights:
        light = Path(light)
        try:
            info = read_frame_info(light, camera, site)
            if info.kind != "light":
                raise BadInput(f"{light.name}: is a {info.kind} frame, not a light.",
                               reason=f"not a light frame ({info.kind})")
            out = output_dir / calibrated_name(light.name)
            if out in written:
                raise BadInput(f"{light.name}: its output {out.name} was already written for "
                               f"{written[out]}.", reason=f"output name collides with {written[out]}")
            masters = {key: find_master(Path(masters_dir), key, info.binning,
                                         info.filter if key == "flat" else None)
                       for key in ("bias", "dark", "flat")}
            frame = reduce_light(light, info, masters, mode=mode, camera=camera,
                                 reduction=reduction)
            output_dir.mkdir(parents=True, exist_ok=True)
            write_reduced(out, frame, masters_used={k: v for k, v in masters.items()})
            written[out] = light
            results.append((light, out))
        except ClinepipeError as exc:
            results.append((light, exc.reason))
    return results
