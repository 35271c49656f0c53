"""Master bias, dark and flat from their frames: outlier frames rejected with a reason, the
master's noise measured, the frames' statistics kept for the master's header.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import bottleneck as bn
import numpy as np
from astropy.io import fits

from clinepipe.ccd.frame_median import frame_median
from clinepipe.ccd.master_files import read_master
from clinepipe.ccd.master_result import FrameStats, MasterResult
from clinepipe.ccd.stack import _central_slices, _median_of, _open_sources, _Rows
from clinepipe.errors import BadInput, MissingCalibration
from clinepipe.finite import finite_or_none

#: median of n Gaussian samples has this many times the error of their mean (large n)
_MEDIAN_EFFICIENCY = math.sqrt(math.pi / 2.0)


_MAD_TO_SIGMA = 1.4826


def _robust_std(values: np.ndarray, med=None) -> float:
    """1.4826 MAD; ``med`` is ``frame_median`` of the float32 values when already known."""
    v = np.asarray(values, dtype=np.float32)
    if med is None:
        med = frame_median(v)
    return float(_MAD_TO_SIGMA * frame_median(np.abs(v - med)))


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
    med = frame_median(np.asarray(region, dtype=np.float32))  # shared by level and spread
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
                        exptime=0.0, n=len(used), noise=noise, level=float(frame_median(data)),
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
                        exptime=exptime, n=len(used), noise=noise, level=float(frame_median(data)),
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
            bias_level = float(frame_median(bias_data[_central_slices(bias_data.shape)]))
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
                levels.append(np.float32(frame_median(f)))
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
            norm = float(frame_median(stacked))
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
