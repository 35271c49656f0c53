"""Which frames make one master and which master a light uses: the stackers declare what
they group by and how many frames they need (as BANZAI's do), one chooser for every command.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from clinepipe.ccd.dark_bias import holds_bias
from clinepipe.ccd.master_result import MasterResult
from clinepipe.ccd.master_stacks import build_bias, build_dark, build_flat
from clinepipe.errors import MissingCalibration
from clinepipe.ingest.frame_info import FrameInfo


@dataclass(frozen=True)
class Stacker:
    """How the masters of one kind are made (as BANZAI's stackers declare theirs).

    ``group_by``: what the frames of one master share, among ``"binning"``, ``"filter"`` and
    ``"temperature"`` (the CCD-TEMP bucket, :func:`temperature_bucket`); ``needs``: the masters
    it is built on (a dark is bias-subtracted, a flat bias- and dark-subtracted);
    ``min_frames``: the fewest usable frames for a master.
    """

    kind: str
    group_by: tuple[str, ...]
    needs: tuple[str, ...] = ()
    min_frames: int = 3


def stackers(min_frames: int = 3) -> dict[str, Stacker]:
    """The stacker of each kind, in build order, needing ``min_frames`` frames
    (``[reduction] min_frames``).

    Darks are not grouped by exposure: :func:`build_dark` keeps the group's most common one
    and rejects the others by name; flats are dark-subtracted and normalised, so temperature
    and exposure may differ within a group.
    """
    return {
        "bias": Stacker("bias", ("binning",), (), min_frames),
        "dark": Stacker("dark", ("binning", "temperature"), ("bias",), min_frames),
        "flat": Stacker("flat", ("binning", "filter"), ("bias", "dark"), min_frames),
    }


#: the stackers with the default ``min_frames``
STACKERS: dict[str, Stacker] = stackers()


class CalibrationGroup(NamedTuple):
    """What frames of one master share. ``temp`` is the CCD-TEMP bucket of darks (None when
    unknown or not grouped); ``night`` only when grouping by night was asked for."""

    kind: str
    binning: int
    filter: str | None = None
    temp: float | None = None
    night: str | None = None


def temperature_bucket(ccd_temp: float | None, tolerance: float) -> float | None:
    """The bucket centre: CCD-TEMP rounded to a multiple of ``tolerance`` (°C); None when the
    temperature is unknown or ``tolerance`` <= 0 (no temperature grouping)."""
    if ccd_temp is None or tolerance is None or tolerance <= 0:
        return None
    return float(round(ccd_temp / tolerance) * tolerance) + 0.0


def group_calibration_frames(infos: Sequence[FrameInfo], temp_tolerance: float = 2.0, *,
                             by_night: bool = False) -> dict[CalibrationGroup, list[FrameInfo]]:
    """Group calibration frames by what their :data:`STACKERS` entry says one master shares.

    bias: binning; dark: binning and CCD-temperature bucket of ``temp_tolerance`` °C; flat:
    binning and filter; lights are left out. With ``by_night`` the night is part of every key
    (the nightly run; ``clinepipe masters`` combines the nights it is given).

    Each group's frames are sorted by (jd_mid, path); the groups by kind (bias, dark, flat),
    then key.
    """
    groups: dict[CalibrationGroup, list[FrameInfo]] = defaultdict(list)
    for info in infos:
        stacker = STACKERS.get(info.kind)
        if stacker is None:
            continue
        key = CalibrationGroup(
            info.kind, info.binning,
            info.filter if "filter" in stacker.group_by else None,
            temperature_bucket(info.ccd_temp, temp_tolerance)
            if "temperature" in stacker.group_by else None,
            info.night if by_night else None)
        groups[key].append(info)
    order = list(STACKERS)
    return {k: sorted(v, key=lambda i: (i.jd_mid, str(i.path)))
            for k, v in sorted(groups.items(), key=lambda kv: (order.index(kv[0].kind),
                                                               kv[0].binning, str(kv[0].filter),
                                                               str(kv[0].temp), str(kv[0].night)))}


def input_key(mode: str, kind: str, checksums: Sequence[str]) -> str:
    """SHA-256 (hex) of ``"{mode}|{kind}|"`` followed by the sorted input checksums: equal keys
    mean the same master would be built again (the pipeline skips it)."""
    digest = hashlib.sha256(f"{mode}|{kind}|".encode())
    for sha in sorted(checksums):
        digest.update(sha.encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class BuiltMaster:
    """A master built by :func:`make_masters`, as a candidate for :func:`nearest_master`
    (``jd``: mean JD of its inputs, days; ``ccd_temp`` °C)."""

    id: int
    jd: float
    night: str | None
    ccd_temp: float | None
    result: MasterResult
    name: str


def nearest_master(candidates: Sequence, kind: str, jd: float, max_age_days: float, *,
                   ccd_temp: float | None = None, temp_tolerance: float = 0.0):
    """The one chooser of a master, for a light or for a master built on it.

    Parameters
    ----------
    candidates : sequence
        Masters of ``kind`` (and of the right binning and filter), each with ``id`` (larger =
        built later), ``jd`` (mean JD of its inputs, days), ``night`` and ``ccd_temp`` (°C or
        None): database rows or :class:`BuiltMaster`.
    jd : float
        JD (days) of the light or of the group being built.
    max_age_days : float
        Masters further than this in time are not valid.
    ccd_temp, temp_tolerance : float
        °C. Only for a kind whose stacker groups by temperature (darks): masters within
        ``temp_tolerance`` of ``ccd_temp`` are preferred, and each temperature bucket of a
        night is its own group.

    Returns
    -------
    The candidate nearest in time among the latest build of each (night, bucket) group
    (a group rebuilt later supersedes its earlier master; on a tie in time the later build
    wins), or None when none is within ``max_age_days``.
    """
    by_temp = "temperature" in STACKERS[kind].group_by
    rows = [m for m in candidates if abs(m.jd - jd) <= max_age_days]
    if not rows:
        return None
    latest: dict = {}
    for m in rows:
        group = (m.night, temperature_bucket(m.ccd_temp, temp_tolerance) if by_temp else None)
        if group not in latest or m.id > latest[group].id:
            latest[group] = m
    chosen = list(latest.values())
    if by_temp and ccd_temp is not None and temp_tolerance > 0:
        close = [m for m in chosen
                 if m.ccd_temp is not None and abs(m.ccd_temp - ccd_temp) <= temp_tolerance]
        chosen = close or chosen
    return min(chosen, key=lambda m: (abs(m.jd - jd), -m.id))


def missing_master(kind: str, binning: int, filt: str | None = None) -> MissingCalibration:
    """``waiting for calibration: no bias for binning 2`` (``no R-band flat …``)."""
    what = f"{filt}-band flat" if kind == "flat" and filt else kind
    reason = f"waiting for calibration: no {what} for binning {binning}"
    return MissingCalibration(reason, reason=reason)


def build_master(kind: str, paths: Sequence[Path], needs: dict, *, binning: int, camera,
                 reduction, mode: str) -> MasterResult:
    """Build the master of one group with the builder of its kind (the one path of ``run``
    and ``clinepipe masters``).

    ``needs`` maps each kind of :attr:`Stacker.needs` to its chosen master (array,
    :class:`MasterResult` or FITS path; None when there is none: the group waits, raising
    :class:`MissingCalibration`, except a flat with ``reduction.without_masters`` =
    ``"measure"``, made with those there are, see :func:`build_flat`). ``camera`` (:class:`~clinepipe.config.CameraConfig`) gives
    ``max_ccd_temp`` (warm darks are rejected, °C) and ``saturation`` (ADU);
    ``reduction`` (:class:`~clinepipe.config.ReductionConfig`) ``min_frames`` and
    ``chunk_rows``; ``mode`` is ``seed`` or ``default``.
    """
    stacker = stackers(reduction.min_frames)[kind]
    # a flat or dark can be made without what the lights can be measured without; a dark
    # without a bias holds it (clinepipe.ccd.dark_bias)
    optional = kind in ("flat", "dark") and reduction.without_masters == "measure"
    for need in stacker.needs:
        if needs.get(need) is None and not optional:
            raise missing_master(need, binning)
    common = {"min_frames": stacker.min_frames, "chunk_rows": reduction.chunk_rows}
    if kind == "bias":
        return build_bias(paths, **common)
    if kind == "dark":
        return build_dark(paths, needs["bias"], max_ccd_temp=camera.max_ccd_temp, **common)
    dark = needs.get("dark")
    if needs.get("bias") is None and holds_bias(dark):
        dark = None  # bias + dark cannot be scaled to the flats' exposures: made without it
    return build_flat(paths, needs.get("bias"), dark, getattr(dark, "exptime", None), mode=mode,
                      saturation=camera.saturation, allow_missing=optional, **common)
