"""The median of a whole frame: ``bottleneck.nanmedian(a)`` (all axes), the very same value,
at about 40 % of its CPU on a large float32 frame.

bottleneck copies the frame and runs a quickselect over all of it (45 ms at 2048²); a
master's level, each flat's normalisation and a dark's hot-pixel threshold ask for ~16 of
them a night. Here a strided sample brackets the median, one pass counts the pixels below
the bracket and gathers those inside it (a few percent of the frame), and a partition of
those finds the middle order statistics, which the median is made of exactly as bottleneck
makes it. When the bracket misses them (a very unlucky sample), or the median is zero
(-0 or +0: equal values, of which the two selections may take different ones), bottleneck
decides.
"""

from __future__ import annotations

import math

import bottleneck as bn
import numpy as np

#: below this many pixels bottleneck's own quickselect is as quick
_MIN_PIXELS = 1 << 16

#: pixels in the sample that places the bracket
_SAMPLE = 1 << 15

#: the bracket's half-width in standard deviations of the sample median's rank
_SIGMAS = 6.0


def frame_median(a) -> float:
    """``bottleneck.nanmedian(a)`` over all axes (NaN ignored; NaN when every value is).

    Parameters
    ----------
    a : array_like
        Any shape. float32 arrays of at least 65,536 values take the fast path; anything
        else is handed to bottleneck as it is.

    Returns
    -------
    float
        The middle value, or for an even number of values the mean of the two middle ones
        computed as bottleneck does (their float32 sum, halved, rounded to float32).
    """
    arr = np.asarray(a)
    if arr.dtype != np.float32 or arr.size < _MIN_PIXELS:
        return bn.nanmedian(arr)
    flat = arr.reshape(-1)
    sample = flat[::max(1, flat.size // _SAMPLE)]
    sample = sample[~np.isnan(sample)]
    m = sample.size
    if m < 1024:  # mostly NaN: no bracket to be had from the sample
        return bn.nanmedian(arr)
    half = int(_SIGMAS * 0.5 * math.sqrt(m)) + 8
    i_lo, i_hi = max(0, m // 2 - half), min(m - 1, m // 2 + half)
    edges = np.partition(sample, (i_lo, i_hi))
    lo, hi = edges[i_lo], edges[i_hi]
    # NaN is neither below, inside nor above: n counts the finite and infinite values
    below = np.count_nonzero(flat < lo)
    inside = flat[(flat >= lo) & (flat <= hi)]
    n = below + inside.size + np.count_nonzero(flat > hi)
    k0, k1 = (n - 1) // 2 - below, n // 2 - below  # the middle ranks, within ``inside``
    if n == 0 or k0 < 0 or k1 >= inside.size:
        return bn.nanmedian(arr)
    middle = np.partition(inside, (k0, k1))
    if k0 == k1:
        median = float(middle[k0])
    else:
        with np.errstate(over="ignore"):
            total = middle[k0] + middle[k1]  # float32, as bottleneck adds them
        # halved in double and stored as float32, as bottleneck does (which rounds only a
        # subnormal half), then returned as a Python float
        median = float(np.float32(0.5 * float(total)))
    if median == 0.0:
        # -0 and +0 are equal to both selections, which may then take either: bottleneck
        # says which zero it is (the sign shows in what is computed from it)
        return bn.nanmedian(arr)
    return median
