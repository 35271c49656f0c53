"""Master bias, dark and flat: outlier frames rejected with a reason, provenance in the FITS header."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple
import bottleneck as bn
import numpy as np
from astropy.io import fits
from clinepipe.ccd.dark_bias import HOLDS_BIAS, holds_bias
from clinepipe import __version__
from clinepipe.errors import BadInput, ClinepipeError, MissingCalibration
from clinepipe.ingest.frame_info import FrameInfo
from clinepipe.ingest.fits_reader import brief
from clinepipe.atomic_files import atomic_write_fits
from clinepipe.ccd.stack import _Rows, _central_slices, _median_of, _open_sources
from clinepipe.finite import finite_or_none


#: IMAGETYP written into each master
MASTER_IMAGETYP = {"bias": "Master Bias", "dark": "Master Dark", "flat": "Master Flat"}

#: median of n Gaussian samples has this many times the error of their mean (large n)
_MEDIAN_EFFICIENCY = math.sqrt(math.pi / 2.0)

_MAD_TO_SIGMA = 1.4826

@dataclass
class FrameStats:
    """Cheap statistics of one input frame's central region (ADU)."""

    path: Path
    shape: tuple[int, int]
    level: float  # median of the central region (raw ADU; darks: after the bias)
    spread: float  # robust standard deviation (1.4826 MAD) of the central region
    exptime: float | None
    ccd_temp: float | None


@dataclass
class MasterResult:
    """A master frame and what went into it.

    ``data`` float32 (ADU; flats normalised to 1); ``used`` the stacked files in input order;
    ``rejected`` file -> named reason; ``exptime`` the exposure a dark master is from (s);
    ``n`` = len(used); ``noise`` the master's random 1-sigma per pixel (ADU; for a flat,
    relative, i.e. in units of the normalised flat), estimated from the difference of pairs of
    input frames (so fixed structure is excluded) as 1.2533 sigma / sqrt(n); ``level`` the
    median of the master before any normalisation (bias level, dark ADU in ``exptime``, flat
    normalisation divisor).
    """

    data: np.ndarray
    used: list[Path]
    rejected: dict[Path, str]
    kind: str = ""
    exptime: float | None = None
    n: int = 0
    noise: float = float("nan")
    level: float = float("nan")
    ccd_temp: float | None = None
    mode: str = "default"
    stats: dict[Path, FrameStats] = field(default_factory=dict, repr=False)
    #: a dark made without a master bias: bias + dark current (see clinepipe.ccd.dark_bias)
    holds_bias: bool = False


def _robust_std(values: np.ndarray, med=None) -> float:
    """1.4826 MAD; ``med`` is ``bn.nanmedian`` of the float32 values when already known."""
    v = np.asarray(values, dtype=np.float32)
    if med is None:
        med = bn.nanmedian(v)
    return float(_MAD_TO_SIGMA * bn.nanmedian(np.abs(v - med)))


def _fmt_shape(shape) -> str:
    return f"{shape[1]}x{shape[0]}"


def _group_shape(stats: list[FrameStats]) -> tuple[int, int]:
    counts = Counter(s.shape for s in stats)
    best = max(counts.values())
    return next(s.shape for s in stats if counts[s.shape] == best)


def _pair_noise(regions: list[np.ndarray]) -> float:
    """Random noise of one frame from pairwise differences (fixed pattern cancels)."""
    if len(regions) < 2:
        return _robust_std(regions[0]) if regions else float("nan")
    sig = [_robust_std(regions[i] - regions[i + 1]) / math.sqrt(2.0)
           for i in range(min(3, len(regions) - 1))]
    return float(np.median(sig))


def _master_noise(regions: list[np.ndarray], n: int) -> float:
    return _MEDIAN_EFFICIENCY * _pair_noise(regions) / math.sqrt(max(n, 1)) if n > 1 else \
        _pair_noise(regions)


def _too_few(kind: str, used: int, min_frames: int, label: str) -> MissingCalibration:
    reason = f"waiting for calibration: only {used} usable {kind} frame(s), {min_frames} needed"
    return MissingCalibration(f"{label}: {reason}.", reason=reason)


def _label(paths: Sequence[Path], kind: str) -> str:
    if not paths:
        return f"{kind} frames"
    folder = Path(paths[0]).parent
    return f"{kind} frames in {folder}" if folder.name else f"{kind} frames"


def _as_master(master, what: str) -> tuple[np.ndarray, fits.Header | None]:
    """An array from a master given as array, MasterResult or FITS path."""
    if master is None:
        raise MissingCalibration(f"waiting for calibration: no {what}.",
                                 reason=f"waiting for calibration: no {what}")
    if isinstance(master, MasterResult):
        return master.data, None
    if isinstance(master, np.ndarray):
        return master.astype(np.float32, copy=False), None
    data, header = read_master(master)
    return data, header


def _frame_stats(rd: _Rows, offset: np.ndarray | None = None) -> tuple[FrameStats, np.ndarray]:
    region = rd.central()
    if offset is not None and offset.shape == region.shape:
        region = region - offset
    h = rd.header
    exptime = finite_or_none(h.get("EXPTIME", h.get("EXPOSURE")))
    med = bn.nanmedian(np.asarray(region, dtype=np.float32))  # shared by level and spread
    stats = FrameStats(path=Path(rd.label) if rd.label is not None else Path("<array>"),
                       shape=rd.shape, level=float(med),
                       spread=_robust_std(region, med), exptime=exptime,
                       ccd_temp=finite_or_none(h.get("CCD-TEMP")))
    return stats, region


def _reject_shapes(readers, stats, rejected, reference=None, what="the group"):
    shape = reference if reference is not None else _group_shape(stats)
    keep_r, keep_s = [], []
    for rd, st in zip(readers, stats):
        if st.shape != shape:
            rejected[st.path] = f"shape differs from {what}: {_fmt_shape(st.shape)} vs {_fmt_shape(shape)}"
        else:
            keep_r.append(rd)
            keep_s.append(st)
    return keep_r, keep_s


def build_bias(paths: Sequence[Path], *, min_frames: int = 3, chunk_rows: int = 256,
               expected_level: float | None = None, level_tolerance: float | None = None,
               hdu: int | None = None) -> MasterResult:
    """Master bias = median of the bias frames (both modes).

    A frame whose central median is far from the group's is rejected ("bias level 1450 ADU far
    from the group's 1000 ADU"). The group's level is ``expected_level`` when given, else the
    median of the frames' levels; "far" means more than ``level_tolerance`` ADU, by default
    max(5 robust sigma of the levels, one pixel's robust sigma, 10 ADU).
    """
    paths = [Path(p) for p in paths]
    rejected: dict[Path, str] = {}
    with _open_sources(paths, hdu, rejected) as readers:
        pairs = [_frame_stats(rd) for rd in readers]
        stats = [s for s, _ in pairs]
        regions = {s.path: r for s, r in pairs}
        if readers:
            readers, stats = _reject_shapes(readers, stats, rejected)
        if stats:
            levels = np.array([s.level for s in stats])
            ref = float(expected_level) if expected_level is not None else float(np.median(levels))
            tol = level_tolerance
            if tol is None:
                tol = max(5 * _MAD_TO_SIGMA * float(np.median(np.abs(levels - np.median(levels)))),
                          float(np.median([s.spread for s in stats])), 10.0)
            keep = [abs(s.level - ref) <= tol for s in stats]
            for s, ok in zip(stats, keep):
                if not ok:
                    rejected[s.path] = f"bias level {s.level:.0f} ADU far from the group's {ref:.0f} ADU"
            readers = [rd for rd, ok in zip(readers, keep) if ok]
            stats = [s for s, ok in zip(stats, keep) if ok]
        if len(readers) < min_frames:
            raise _too_few("bias", len(readers), min_frames, _label(paths, "bias"))
        data = _median_of(readers, chunk_rows=chunk_rows, scale=None)
        used = [s.path for s in stats]
        noise = _master_noise([regions[p] for p in used[:4]], len(used))
    temps = [s.ccd_temp for s in stats if s.ccd_temp is not None]
    return MasterResult(data=data, used=used, rejected=_in_order(rejected, paths), kind="bias",
                        exptime=0.0, n=len(used), noise=noise, level=float(bn.nanmedian(data)),
                        ccd_temp=float(np.mean(temps)) if temps else None, mode="",
                        stats={s.path: s for s in stats})


def _in_order(rejected: dict, paths: list[Path]) -> dict[Path, str]:
    order = {p: i for i, p in enumerate(paths)}
    return dict(sorted(rejected.items(), key=lambda kv: order.get(kv[0], len(order))))


def _same_exposure(a: float, b: float) -> bool:
    return abs(a - b) <= max(1e-3 * max(abs(a), abs(b)), 0.01)


def _group_exposure(exptimes: list[float]) -> float:
    """The most common exposure (within 0.1%); ties: the longest."""
    clusters: list[list[float]] = []
    for t in sorted(exptimes, reverse=True):
        for c in clusters:
            if _same_exposure(c[0], t):
                c.append(t)
                break
        else:
            clusters.append([t])
    best = max(clusters, key=lambda c: (len(c), c[0]))
    return float(np.median(best))


def build_dark(paths: Sequence[Path], bias, *, min_frames: int = 3, chunk_rows: int = 256,
               max_ccd_temp: float | None = None, leak_sigma: float = 5.0,
               hdu: int | None = None) -> MasterResult:
    """Master dark = median(dark_i - bias) (both modes), ``exptime`` the darks' exposure (s).
    ``bias`` None (``without_masters = "measure"``): median(dark_i), bias + dark current,
    ``holds_bias`` (:mod:`clinepipe.ccd.dark_bias`).

    ``bias`` is the master bias (array, :class:`MasterResult` or FITS path). Rejections, in
    order: unreadable, shape (vs the master bias), ``CCD too warm`` (when ``max_ccd_temp`` is
    given), ``zero exposure``, exposure other than the group's most common one, and light leaks:
    a dark whose bias-subtracted central median exceeds the group's dark rate times its exposure
    by more than max(``leak_sigma`` robust sigma of the excesses, a quarter of a pixel's robust
    sigma, 3 ADU).
    """
    paths = [Path(p) for p in paths]
    # bias None: a master of bias + dark current (clinepipe.ccd.dark_bias), never a dark
    # "bias-subtracted" with a bias that does not exist
    bias_data = None if bias is None else _as_master(bias, "bias")[0]
    rejected: dict[Path, str] = {}
    with _open_sources(paths, hdu, rejected) as readers:
        bias_central = None if bias_data is None else bias_data[_central_slices(bias_data.shape)]
        pairs = [_frame_stats(rd, bias_central if bias_data is not None
                              and rd.shape == bias_data.shape else None) for rd in readers]
        stats = [s for s, _ in pairs]
        regions = {s.path: r for s, r in pairs}
        readers, stats = _reject_shapes(
            readers, stats, rejected, reference=None if bias_data is None else bias_data.shape,
            what="the group" if bias_data is None else "the master bias")
        keep = []
        for s in stats:
            if max_ccd_temp is not None and s.ccd_temp is not None and s.ccd_temp > max_ccd_temp:
                rejected[s.path] = f"CCD too warm: {s.ccd_temp:.1f} °C > {max_ccd_temp:.1f} °C"
            elif s.exptime is None or s.exptime <= 0:
                rejected[s.path] = "zero exposure"
            else:
                keep.append(s)
        exptime = _group_exposure([s.exptime for s in keep]) if keep else None
        kept = []
        for s in keep:
            if _same_exposure(s.exptime, exptime):
                kept.append(s)
            else:
                rejected[s.path] = f"exposure {s.exptime:g} s differs from the group's {exptime:g} s"
        if kept:
            rates = np.array([s.level / s.exptime for s in kept])
            group_rate = float(np.median(rates))
            excess = np.array([s.level - group_rate * s.exptime for s in kept])
            mad = float(np.median(np.abs(excess - np.median(excess))))
            limit = max(leak_sigma * _MAD_TO_SIGMA * mad,
                        0.25 * float(np.median([s.spread for s in kept])), 3.0)
            good = []
            for s, e, r in zip(kept, excess, rates):
                if e > limit:
                    rejected[s.path] = (f"light leak: dark signal {r:.3g} ADU/s above the "
                                        f"group's {group_rate:.3g} ADU/s")
                else:
                    good.append(s)
            kept = good
        ok = {s.path for s in kept}
        readers = [rd for rd in readers if Path(rd.label) in ok]
        stats = [s for s in stats if s.path in ok]
        if len(readers) < min_frames:
            raise _too_few("dark", len(readers), min_frames, _label(paths, "dark"))

        def minus_bias(i, r0, r1, chunk):
            chunk -= bias_data[r0:r1]

        data = _median_of(readers, chunk_rows=chunk_rows,
                          scale=None if bias_data is None else minus_bias)
        used = [s.path for s in stats]
        noise = _master_noise([regions[p] for p in used[:4]], len(used))
    temps = [s.ccd_temp for s in stats if s.ccd_temp is not None]
    return MasterResult(data=data, used=used, rejected=_in_order(rejected, paths), kind="dark",
                        exptime=exptime, n=len(used), noise=noise, level=float(bn.nanmedian(data)),
                        ccd_temp=float(np.mean(temps)) if temps else None, mode="",
                        stats={s.path: s for s in stats}, holds_bias=bias_data is None)


def build_flat(paths: Sequence[Path], bias=None, dark=None, dark_exptime: float | None = None, *,
               mode: str = "default", min_frames: int = 3, chunk_rows: int = 256,
               saturation: float = 65535.0, saturation_fraction: float = 0.8,
               min_level: float = 1000.0, hdu: int | None = None,
               allow_missing: bool = False) -> MasterResult:
    """Master flat of one filter, normalised to 1 (``[reduction] mode`` in the README).

    ``seed``: median_i(flat_i) / max(median_i(flat_i)), raw flats (bias and dark are used only
    to judge the frames, and may be None).
    ``default``: f_i = flat_i - bias - (t_i / t_dark) dark, divided by median(f_i) over the
    whole frame (one frame in memory at a time); flat = median_i(f_i) / median(median_i(f_i)).

    ``bias`` and ``dark`` are arrays, :class:`MasterResult` or FITS paths; ``dark_exptime``
    defaults to the dark's ``exptime`` / EXPTIME keyword. ``noise`` of the result is relative.
    Rejections: unreadable, shape, ``flat saturated`` (central median above
    ``saturation_fraction`` x ``saturation``), ``flat too faint`` (central median minus the
    bias below ``min_level`` ADU).

    ``allow_missing`` (``[reduction] without_masters = "measure"``): a ``default`` flat is
    made without the bias or dark not given, as if they were zero. A flat without a bias keeps
    the pedestal, which dilutes its structure by pedestal / level (~4 % of the vignetting for
    a 1000 ADU pedestal under 25000 ADU flats); without a dark it keeps the flats' few ADU of
    dark current.
    """
    if mode not in ("seed", "default"):
        raise ValueError(f"unknown reduction mode {mode!r} (seed or default)")
    paths = [Path(p) for p in paths]
    bias_data = dark_data = None
    if (mode == "default" or bias is not None) and not (bias is None and allow_missing):
        bias_data, _ = _as_master(bias, "bias")
    if mode == "default" and dark is None and allow_missing:
        dark_exptime = 1.0  # any: the dark it scales is zero
    elif mode == "default":
        dark_data, dark_header = _as_master(dark, "dark")
        if dark_exptime is None:
            if isinstance(dark, MasterResult):
                dark_exptime = dark.exptime
            elif dark_header is not None:
                dark_exptime = finite_or_none(dark_header.get("EXPTIME"))
        if not dark_exptime or dark_exptime <= 0:
            raise BadInput("the master dark has no exposure time (EXPTIME).",
                           reason="master dark without EXPTIME")
        if bias_data is not None and dark_data.shape != bias_data.shape:
            raise BadInput(f"the master dark ({_fmt_shape(dark_data.shape)}) and bias "
                           f"({_fmt_shape(bias_data.shape)}) differ in shape.",
                           reason="masters differ in shape")
    rejected: dict[Path, str] = {}
    with _open_sources(paths, hdu, rejected) as readers:
        pairs = [_frame_stats(rd) for rd in readers]
        stats = [s for s, _ in pairs]
        regions = {s.path: r for s, r in pairs}
        if bias_data is not None:
            readers, stats = _reject_shapes(readers, stats, rejected, reference=bias_data.shape,
                                            what="the master bias")
            bias_level = float(bn.nanmedian(bias_data[_central_slices(bias_data.shape)]))
        else:
            if dark_data is not None:
                readers, stats = _reject_shapes(readers, stats, rejected,
                                                reference=dark_data.shape, what="the master dark")
            elif readers:
                readers, stats = _reject_shapes(readers, stats, rejected)
            bias_level = 0.0
        if mode == "default" and stats:  # a master measured without: nothing to subtract
            shape = stats[0].shape
            bias_data = np.zeros(shape, np.float32) if bias_data is None else bias_data
            dark_data = np.zeros(shape, np.float32) if dark_data is None else dark_data
        ok = set()
        for s in stats:
            if s.level > saturation_fraction * saturation:
                rejected[s.path] = (f"flat saturated: median {s.level:.0f} ADU above "
                                    f"{saturation_fraction:.0%} of saturation ({saturation:.0f} ADU)")
            elif s.level - bias_level < min_level:
                rejected[s.path] = (f"flat too faint: median {s.level - bias_level:.0f} ADU above "
                                    f"bias, below {min_level:.0f} ADU")
            else:
                ok.add(s.path)
        readers = [rd for rd in readers if Path(rd.label) in ok]
        stats = [s for s in stats if s.path in ok]
        if len(readers) < min_frames:
            raise _too_few("flat", len(readers), min_frames, _label(paths, "flat"))

        if mode == "seed":
            stacked = _median_of(readers, chunk_rows=chunk_rows, scale=None)
            norm = float(bn.nanmax(stacked))
            norm_regions = [regions[s.path] / np.float32(s.level) for s in stats[:4]]
        else:
            factors = [np.float32(s.exptime / dark_exptime) if s.exptime else np.float32(0.0)
                       for s in stats]
            levels = []
            for rd, k in zip(readers, factors):  # the whole-frame median of each f_i
                f = rd.read_all()
                f -= bias_data
                f -= k * dark_data
                levels.append(np.float32(bn.nanmedian(f)))
                del f
            if any(not np.isfinite(m) or m <= 0 for m in levels):
                bad = [s.path for s, m in zip(stats, levels) if not np.isfinite(m) or m <= 0]
                raise BadInput(f"{bad[0].name}: the flat has no positive signal after bias and "
                               "dark subtraction.", reason="flat too faint")

            def calibrate(i, r0, r1, chunk):
                chunk -= bias_data[r0:r1]
                chunk -= factors[i] * dark_data[r0:r1]
                chunk /= levels[i]

            stacked = _median_of(readers, chunk_rows=chunk_rows, scale=calibrate)
            norm = float(bn.nanmedian(stacked))
            cs = _central_slices(bias_data.shape)
            norm_regions = [(regions[s.path] - bias_data[cs] - factors[j] * dark_data[cs]) / levels[j]
                            for j, s in enumerate(stats[:4])]
        if not np.isfinite(norm) or norm <= 0:
            raise BadInput(f"{paths[0].name}: the combined flat has no positive signal.",
                           reason="flat too faint")
        data = (stacked / np.float32(norm)).astype(np.float32, copy=False)
        used = [s.path for s in stats]
        noise = _master_noise(norm_regions, len(used))
    return MasterResult(data=data, used=used, rejected=_in_order(rejected, paths), kind="flat",
                        exptime=None, n=len(used), noise=noise, level=norm, ccd_temp=None,
                        mode=mode, stats={s.path: s for s in stats})


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


def _sha_or_empty(path: Path) -> str:
    from clinepipe.ingest.files import sha256_file

    try:
        return sha256_file(path)
    except OSError:
        return ""


def write_master(path: Path, result: MasterResult, *, kind: str, mode: str, binning: int,
                 filter: str | None = None, provenance: dict | None = None,  # noqa: A002
                 checksums: dict | None = None) -> None:
    """Write a master as float32 FITS, atomically (temporary file + ``os.replace``).

    Primary HDU: the image with IMAGETYP ('Master Bias'/'Master Dark'/'Master Flat'),
    XBINNING/YBINNING, FILTER (flats), EXPTIME (darks: the exposure the master is from; bias
    0), NCOMBINE, CLPMODE, CLPVER, CLPNOISE (random 1-sigma per pixel; relative for flats),
    CLPLEVEL, CCD-TEMP (mean of the inputs), DATE (written, UTC), and from ``provenance``:
    NIGHT, BIASFILE/DARKFILE (the masters this one was made with), other items as HISTORY.
    Extension ``INPUTS`` (BINTABLE): ``NAME``, ``SHA256``, ``STATUS`` (used/rejected),
    ``REASON`` — one row per input file. ``provenance["inputs"]`` (a list of
    ``{"raw_path", "sha256"}`` for the used files, in order) names them; otherwise the files'
    own names and checksums are used (``checksums``, {path: SHA-256 hex}, when already known).
    """
    provenance = dict(provenance or {})
    hdr = fits.Header()
    hdr["IMAGETYP"] = (MASTER_IMAGETYP[kind], "clinepipe master calibration frame")
    hdr["XBINNING"] = (int(binning), "binning")
    hdr["YBINNING"] = (int(binning), "binning")
    if filter:
        hdr["FILTER"] = (str(filter), "filter")
    if kind == "dark":
        hdr["EXPTIME"] = (float(result.exptime), "[s] exposure of the darks")
        if result.holds_bias:
            hdr[HOLDS_BIAS] = (True, "no master bias: this dark holds bias + dark")
    elif kind == "bias":
        hdr["EXPTIME"] = (0.0, "[s]")
    hdr["NCOMBINE"] = (int(result.n or len(result.used)), "frames median-combined")
    hdr["CLPMODE"] = (str(mode), "clinepipe reduction mode")
    hdr["CLPVER"] = (__version__, "clinepipe version")
    hdr["CLPKIND"] = (kind, "master kind")
    if math.isfinite(result.noise):
        hdr["CLPNOISE"] = (float(result.noise), "random 1-sigma per pixel" +
                           (" (relative)" if kind == "flat" else " [ADU]"))
    if math.isfinite(result.level):
        hdr["CLPLEVEL"] = (float(result.level), "median before normalisation [ADU]")
    if result.ccd_temp is not None:
        hdr["CCD-TEMP"] = (float(result.ccd_temp), "[C] mean of the inputs")
    if kind != "flat":
        hdr["BUNIT"] = ("ADU", "")
    hdr["DATE"] = (datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "written (UTC)")
    if provenance.get("night"):
        hdr["NIGHT"] = (str(provenance["night"]), "observing night of the inputs")
    for key, card in (("bias", "BIASFILE"), ("dark", "DARKFILE")):
        if provenance.get(key):
            hdr[card] = (Path(str(provenance[key])).name, f"master {key} used")
    for key, value in provenance.items():
        if key not in ("inputs", "night", "bias", "dark"):
            hdr.add_history(f"{key}: {value}")

    given = provenance.get("inputs") or []
    known = {Path(k): v for k, v in (checksums or {}).items()}

    def sha(p) -> str:
        return known.get(Path(p)) or _sha_or_empty(Path(p))

    names, shas, status, reasons = [], [], [], []
    for i, p in enumerate(result.used):
        item = given[i] if i < len(given) else {}
        names.append(str(item.get("raw_path") or Path(p).name))
        shas.append(str(item.get("sha256") or sha(p)))
        status.append("used")
        reasons.append("")
    for p, reason in result.rejected.items():
        names.append(Path(p).name)
        shas.append(sha(p))
        status.append("rejected")
        reasons.append(reason)
    inputs = fits.BinTableHDU.from_columns(
        [_text_column(name, values) for name, values in
         (("NAME", names), ("SHA256", shas), ("STATUS", status), ("REASON", reasons))],
        name="INPUTS")
    primary = fits.PrimaryHDU(np.asarray(result.data, dtype=np.float32), header=hdr)
    atomic_write_fits(Path(path), fits.HDUList([primary, inputs]))


def _text_column(name: str, values: list[str]) -> fits.Column:
    """A FITS ``nA`` column of ``values`` (ASCII: FITS text is ASCII, so "°C" becomes "degC")."""
    encoded = [str(v).replace("\u00b0C", "degC").replace("\u00b0", "deg").encode("ascii", "replace")
               for v in values]
    width = max([1] + [len(b) for b in encoded])
    return fits.Column(name=name, format=f"{width}A", array=np.array(encoded, dtype=f"S{width}"))


def read_master(path: Path) -> tuple[np.ndarray, fits.Header]:
    """A master's float32 image and primary header."""
    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            data = np.asarray(hdul[0].data, dtype=np.float32)
            header = hdul[0].header.copy()
    except FileNotFoundError as exc:
        raise MissingCalibration(f"{path.name}: the master file does not exist.",
                                 reason=f"master missing: {path.name}") from exc
    except OSError as exc:
        raise BadInput(f"{path.name}: the master cannot be read ({brief(exc)}).",
                       reason="unreadable master") from exc
    if data.ndim != 2:
        raise BadInput(f"{path.name}: the master has no 2-D image.", reason="unreadable master")
    return data, header


def safe_filter_name(filt: str) -> str:
    """A filter name usable in a file name (letters, digits, ``._-``; others become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(filt)).strip("_") or "none"


def master_filename(kind: str, filt: str | None = None) -> str:
    """``bias_master.fits``, ``dark_master.fits``, ``flat_master_{FILTER}.fits``."""
    if kind == "flat":
        return f"flat_master_{safe_filter_name(filt)}.fits"
    return f"{kind}_master.fits"


def master_path(root: Path, kind: str, binning: int, filt: str | None = None) -> Path:
    """Where :func:`make_masters` writes (and ``reduce_files`` reads) a master."""
    return Path(root) / f"binning{int(binning)}" / master_filename(kind, filt)


def _expand(paths_or_dirs) -> list[Path]:
    from clinepipe.ingest.files import is_fits_name, iter_fits_files

    out: list[Path] = []
    for item in paths_or_dirs:
        p = Path(item)
        if p.is_dir():
            out.extend(path for path, _ in iter_fits_files(p))
        elif p.is_file() and is_fits_name(p.name):
            out.append(p)
        elif p.exists():
            out.append(p)  # let read_frame_info say what is wrong with it
        else:
            out.append(p)
    seen = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def make_masters(paths_or_dirs, output_dir: Path, *, mode: str = "default", camera=None,
                 site=None, reduction_cfg=None) -> dict:
    """The core of ``clinepipe masters``: masters from raw calibration files.

    Every file (folders are searched recursively) is read with
    :func:`clinepipe.ingest.read_frame_info`; calibration frames are grouped per binning (and
    filter for flats); all nights given are combined. Darks of one binning are split by
    CCD-temperature bucket (``camera.temp_tolerance``) and the most populous bucket is used
    (others rejected: ``CCD temperature -5 °C outside the group's -10 °C bucket``). Writes
    ``output_dir/binning{N}/bias_master.fits``, ``dark_master.fits``,
    ``flat_master_{FILTER}.fits``: bias first, then dark, then flats, each needing the
    previous ones of its binning.

    Returns
    -------
    dict
        ``written``: list of ``{"path", "kind", "binning", "filter", "n", "exptime"}``;
        ``rejected``: {file: reason} of frames left out of a master;
        ``failed``: {file or group label: reason} of files that could not be read and masters
        that could not be built; ``skipped``: light frames given (not used).
    """
    from clinepipe.config import CameraConfig, ReductionConfig, SiteConfig
    from clinepipe.ingest.classify import read_frame_info

    camera = camera or CameraConfig()
    site = site or SiteConfig()
    red = reduction_cfg or ReductionConfig()
    if mode not in ("seed", "default"):
        raise ValueError(f"unknown reduction mode {mode!r} (seed or default)")
    output_dir = Path(output_dir)
    report: dict = {"written": [], "rejected": {}, "failed": {}, "skipped": []}
    infos: list[FrameInfo] = []
    for path in _expand(paths_or_dirs):
        try:
            info = read_frame_info(path, camera, site)
        except BadInput as exc:
            report["failed"][str(path)] = exc.reason
            continue
        if info.kind == "light":
            report["skipped"].append(str(path))
        else:
            infos.append(info)

    groups = _one_dark_group_per_binning(
        group_calibration_frames(infos, temp_tolerance=camera.temp_tolerance), report)
    pool = ThreadPoolExecutor(max_workers=1)  # the inputs' checksums (provenance), computed
    try:                                      # while the masters are built
        hashes = {i.path: pool.submit(_sha_or_empty, i.path)
                  for members in groups.values() for i in members}
        _build_groups(groups, output_dir, mode, camera, red, report, hashes)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return report


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


def _build_groups(groups, output_dir: Path, mode: str, camera, red, report: dict, hashes) -> None:
    built: dict[tuple[str, int], list[BuiltMaster]] = defaultdict(list)
    for key, members in groups.items():
        label = f"{key.kind} binning {key.binning}" + (f" {key.filter}" if key.filter else "")
        paths = [i.path for i in members]
        jd = float(np.mean([i.jd_mid for i in members]))
        temp = _mean_or_none([i.ccd_temp for i in members])
        chosen = {need: nearest_master(built[(need, key.binning)], need, jd,
                                       red.max_master_age_days, ccd_temp=temp,
                                       temp_tolerance=camera.temp_tolerance)
                  for need in STACKERS[key.kind].needs}
        try:
            result = build_master(key.kind, paths, {k: m and m.result for k, m in chosen.items()},
                                  binning=key.binning, camera=camera, reduction=red, mode=mode)
        except ClinepipeError as exc:
            report["failed"][label] = exc.reason
            continue
        out = master_path(output_dir, key.kind, key.binning, key.filter)
        nights = sorted({i.night for i in members})
        built[(key.kind, key.binning)].append(
            BuiltMaster(len(report["written"]), jd, None, result.ccd_temp, result, out.name))
        provenance = {"night": nights[0] if len(nights) == 1 else ",".join(nights),
                      **{k: m.name for k, m in chosen.items() if m is not None}}
        checksums = {p: hashes[p].result() for p in [*result.used, *result.rejected]
                     if p in hashes}
        write_master(out, result, kind=key.kind, mode=mode, binning=key.binning,
                     filter=key.filter, provenance=provenance, checksums=checksums)
        report["rejected"].update({str(p): r for p, r in result.rejected.items()})
        report["written"].append({"path": str(out), "kind": key.kind, "binning": key.binning,
                                  "filter": key.filter, "n": result.n, "exptime": result.exptime})


def _mean_or_none(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _one_dark_group_per_binning(groups: dict, report: dict) -> dict:
    """``clinepipe masters`` writes one dark per binning: the most populous CCD-temperature
    bucket of each binning is kept, the darks of the others are rejected by name."""
    darks: dict[int, list[CalibrationGroup]] = defaultdict(list)
    for key in groups:
        if key.kind == "dark":
            darks[key.binning].append(key)
    for keys in darks.values():
        best = max(keys, key=lambda k: (len(groups[k]), k.temp is not None, -(k.temp or 0)))
        where = "unknown" if best.temp is None else f"{best.temp:g} °C"
        for key in keys:
            if key == best:
                continue
            for info in groups.pop(key):
                temp = "unknown" if info.ccd_temp is None else f"{info.ccd_temp:.1f} °C"
                report["rejected"][str(info.path)] = (
                    f"CCD temperature {temp} outside the group's {where} bucket")
    return groups
