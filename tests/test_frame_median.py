"""frame_median is bottleneck.nanmedian over all axes, the very same value, by a bracket of the
median from a sample and a partition of the pixels inside it (clinepipe.ccd.frame_median)."""

from __future__ import annotations

import bottleneck as bn
import numpy as np
import pytest

import clinepipe.ccd.frame_median as fm
from clinepipe.ccd.frame_median import frame_median


def _same(a) -> None:
    want = bn.nanmedian(a)
    got = frame_median(a)
    assert type(got) is type(want)
    assert got == want or (np.isnan(got) and np.isnan(want)), (got, want)


def _frames():
    rng = np.random.default_rng(7)
    for n in (1 << 16, (1 << 16) + 1, 300_001, 1 << 20):
        yield rng.normal(1000.0, 30.0, n).astype(np.float32)
    sky = rng.normal(900.0, 20.0, (512, 640)).astype(np.float32)
    yield sky
    yield sky[:, ::2]                                    # not contiguous
    yield np.rint(sky)                                   # whole ADU: many ties at the median
    yield np.full((300, 300), 7.0, np.float32)           # constant
    nan = sky.copy()
    nan[rng.random(nan.shape) < 0.3] = np.nan            # a third NaN: the count's parity moves
    yield nan
    for k in range(4):                                   # an even and an odd count of values
        odd = nan.copy()
        odd.reshape(-1)[:k] = np.nan
        yield odd
    inf = sky.copy()
    inf[:3] = np.inf
    inf[3:5] = -np.inf
    yield inf
    tiny = (sky - 900.0) * np.float32(1e-41)            # subnormal middle values
    yield tiny
    two = np.zeros(1 << 17, np.float32)
    two[::2] = 1.0
    two[1::2] = 1.0 + 2.0 ** -23                         # float32 sum of the middle pair rounds
    yield two


FRAMES = list(_frames())


@pytest.mark.parametrize("k", range(len(FRAMES)))
def test_the_value_of_bottleneck(k):
    _same(FRAMES[k])


def test_a_large_frame_takes_the_bracket_not_bottleneck(monkeypatch):
    rng = np.random.default_rng(3)
    frame = rng.normal(1000.0, 30.0, (700, 701)).astype(np.float32)
    frame[rng.random(frame.shape) < 0.01] = np.nan
    want = bn.nanmedian(frame)

    def refuse(_):
        raise AssertionError("fell back on bottleneck")

    monkeypatch.setattr(fm.bn, "nanmedian", refuse)
    assert frame_median(frame) == want


def test_a_sample_that_misses_the_median_falls_back_on_bottleneck():
    """Every sampled pixel far above the rest: the bracket misses the median, bottleneck
    decides (the same value all the same)."""
    frame = np.random.default_rng(5).normal(0.0, 1.0, 1 << 18).astype(np.float32)
    frame[::(1 << 18) // fm._SAMPLE] = 1e6
    _same(frame)


def test_a_median_of_zero_has_bottlenecks_sign():
    """-0 and +0 around the middle: equal to any selection (bottleneck's and a partition take
    different ones in a quarter of these frames), yet the sign of the median shows in what
    is computed from it, so it is bottleneck's."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        frame = rng.normal(0.0, 1.0, int(rng.integers(1 << 16, 1 << 18))).astype(np.float32)
        middle = np.abs(frame) < rng.uniform(0.01, 0.5)
        frame[middle] = np.where(rng.random(middle.sum()) < rng.uniform(0, 1), -0.0, 0.0)
        want, got = bn.nanmedian(frame), frame_median(frame)
        assert got == want == 0.0 and np.signbit(got) == np.signbit(want), seed


def test_small_mostly_nan_and_other_dtypes_are_bottlenecks():
    _same(np.arange(11, dtype=np.float32))
    _same(np.full(1 << 17, np.nan, np.float32))
    mostly = np.full(1 << 17, np.nan, np.float32)
    mostly[:100] = np.arange(100)
    _same(mostly)
    _same(np.random.default_rng(1).normal(size=1 << 17))  # float64
    _same(np.arange(1 << 17, dtype=np.uint16))
