"""What a raw frame is (kind, time, exposure, binning, filter, temperature) from its header, in any
acquisition program's style (:mod:`clinepipe.headers`), and its observing night."""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

from clinepipe.config import CameraConfig, SiteConfig
from clinepipe.errors import BadInput
from clinepipe.headers import HeaderRules, read_header_facts
from clinepipe.ingest.fits_reader import (
    _bad,
    _check_complete,
    _hdu_shape,
    _merged_header,
    _open_hdul,
    check_image,
    image_hdu_index,
)
from clinepipe.ingest.frame_info import FrameInfo

#: the named reasons this module raises (``BadInput.reason``) besides those of
#: :func:`clinepipe.headers.read_header_facts` (``no frame type``, ``missing DATE-OBS``,
#: ``DATE-OBS '…' is not a date clinepipe reads``, ``unknown binning …``…)
REASONS = (
    "empty file", "not FITS", "truncated FITS", "no image data", "all-NaN data",
    "constant data", "file changed while being copied", "unreadable file",
)


class SkippedFrame(BadInput):
    """A file that is not a frame clinepipe uses (a focus or test frame, a frame the telescope
    rejected, or one ``[headers.kind_by_path]`` skips): recorded as ``skipped``, never failed."""


def read_frame_info(path: Path, camera: CameraConfig, site: SiteConfig, *,
                    check: bool = True, rules: HeaderRules | None = None,
                    relpath: str | None = None) -> FrameInfo:
    """Read what the header of a raw frame says, or raise :class:`BadInput` with a named reason.

    Parameters
    ----------
    path : Path
        A raw frame (plain, ``.gz`` or fpack ``.fz``). Opened read-only; never modified.
    camera : CameraConfig
        Not used for the header facts themselves (the gain stays None unless the header gives
        it in e-/ADU, and the config's gain applies later); accepted so the call is uniform.
    site : SiteConfig
        Its longitude gives the local observing night; a header site far from it is a note.
    check : bool
        Also look at the pixels (:func:`~clinepipe.ingest.fits_reader.check_image`): a
        compressed file's are decompressed, which catches truncation inside its tiles; then
        ``all-NaN data``, ``constant data``. A plain file's size is checked against its
        header, and its first pixels usually settle the rest.
    rules : HeaderRules, optional
        The ``[headers]`` config (``Config.headers.rules()``); defaults when None.
    relpath : str, optional
        The path relative to ``incoming`` that ``[headers.kind_by_path]`` globs and the smart
        telescopes' file names are read from; the file name when None.

    Returns
    -------
    FrameInfo
        ``shape`` is numpy ``(ny, nx)``; ``xorg``/``yorg`` are XORGSUBF/YORGSUBF (binned,
        0-based), 0 when absent. Whether the frame is a subframe cannot be decided from the
        header alone (the full sensor size is not configured): see :func:`is_subframe`; the
        reduce step raises "subframe without origin" when a smaller frame has no origin.
        ``jd_start``/``jd_mid`` are UTC Julian dates (days); ``exptime`` s; ``gain`` e-/ADU;
        ``saturation`` ADU; ``notes`` the ``(reason, message)`` of what is odd but usable.

    Raises
    ------
    SkippedFrame
        The frame type is one clinepipe does not use: reason ``frame type '<value>' skipped``.
    BadInput
        ``empty file``, ``not FITS``, ``truncated FITS``, ``no image data``, then
        ``all-NaN data``/``constant data``, then the first fatal problem of the header as
        :func:`clinepipe.headers.read_header_facts` names it (``no frame type``, ``missing
        EXPTIME``, ``missing DATE-OBS``, ``DATE-OBS '…' is not a date clinepipe reads``,
        ``unknown binning …``, ``bad subframe origin``…); the message names the file and,
        where a setting fixes it, the config line.
    """
    path = Path(path)
    hdul, size = _open_hdul(path)
    with hdul:
        index = image_hdu_index(hdul)
        if index is None:
            raise _bad(path, "no image data", "has no 2-D image in its primary HDU or first image extension")
        offset = _check_complete(path, hdul, index, size)
        header = _merged_header(hdul, index)
        shape = _hdu_shape(hdul[index])
        facts = read_header_facts(header, relpath or path.name, rules)
        if facts.kind == "skipped":  # its pixels do not matter: a focus frame may be anything
            raise _skipped(path, facts)
        if check:
            check_image(path, hdul, index, offset)

    fatal = [p for p in facts.problems if p.fatal]
    if fatal:
        p = fatal[0]
        fix = f" (set {p.fix} in clinepipe.toml)" if p.fix else ""
        raise _bad(path, p.reason, p.message.rstrip(".") + fix)
    if facts.jd_start is None:  # a mid-exposure time alone, with no exposure time to place it
        raise _bad(path, "missing DATE-OBS", "has no exposure start time (DATE-OBS) clinepipe can use")
    notes = [(p.reason, p.message) for p in facts.problems]
    if facts.temperature is None and facts.kind in ("light", "dark"):
        notes.append(("no CCD temperature", "has no CCD temperature keyword: the temperature "
                      "is not checked."))
    odd_site = facts.site_warning(site.latitude, site.longitude)
    if odd_site is not None:
        notes.append((odd_site.reason, odd_site.message))
    return FrameInfo(
        path=path, kind=facts.kind, binning=facts.binning, filter=facts.filter or None,
        exptime=facts.exptime, ccd_temp=facts.temperature, date_obs=facts.date_obs,
        jd_start=facts.jd_start, jd_mid=facts.jd_mid,
        night=observing_night(facts.jd_start, site.longitude), shape=shape,
        xorg=facts.xorg, yorg=facts.yorg, gain=facts.gain, object=facts.object,
        saturation=facts.saturation, top_down=facts.top_down,
        time_source=facts.time_source + (f" ({facts.time_offset})" if facts.time_offset else ""),
        time_note=facts.time_note, notes=tuple(notes),
    )


def _skipped(path: Path, facts) -> SkippedFrame:
    said = [p for p in facts.problems if p.reason.endswith("skipped") or "rejected" in p.reason]
    if said:
        reason, sentence = said[0].reason, said[0].message
    else:  # [headers.kind_by_path] says so
        reason = f"skipped by {facts.kind_source}"
        sentence = f"is skipped by {facts.kind_source}"
    return SkippedFrame(f"{path.name}: {sentence.rstrip('.')}.", reason=reason)


def is_subframe(info: FrameInfo, master_shape: tuple[int, int]) -> bool:
    """True when the frame is smaller than (or placed inside) a master of ``master_shape``.

    The sensor's full size per binning is not in the configuration, so "subframe" is decided
    against the masters of the same binning: a frame that does not cover the master exactly.
    """
    return tuple(info.shape) != tuple(master_shape) or info.xorg != 0 or info.yorg != 0


_UNIX_EPOCH_JD = 2440587.5

def observing_night(jd_utc: float, longitude_deg: float) -> str:
    """The local observing night of a UTC Julian date, as ``YYYYMMDD``.

    A night runs from local noon to the next local noon in local *mean solar* time at the
    site's longitude (east positive): the night is the calendar date of
    ``UTC + longitude/15 h - 12 h``. At Greensboro (79.81 W) local noon is about 17:19 UTC,
    so 2024-03-02 03:00 UTC belongs to night 20240301. The boundary instant belongs to the
    new night. Times are rounded to the millisecond first, so a boundary given as a JD is
    not split by floating-point noise.
    """
    seconds = (float(jd_utc) - _UNIX_EPOCH_JD) * 86400.0
    shifted = round(seconds + float(longitude_deg) / 15.0 * 3600.0 - 12 * 3600.0, 3)
    days = math.floor(shifted / 86400.0)
    return (date(1970, 1, 1) + timedelta(days=days)).strftime("%Y%m%d")


