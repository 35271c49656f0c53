"""Light curves of periodic variables with known periods, sampled as an observatory samples them,
for the truth tests and the benchmark of the period search (not fixtures: plain functions).

The shapes are the simulator's own (:func:`clinepipe.simulate.field.true_light_curve`: an Algol
type eclipsing binary, ``EA``, and a sinusoidal pulsator, ``DSCT``) and two written here from
their parameters: an RR Lyrae-like sawtooth (fast rise, slow decline) and a W UMa-like contact
binary with unequal minima. Nothing here calls the period search: the truth is the period drawn.

Sampling (times in JD): ``short`` (2 or 3 nights of 60 points over 6 h), ``season`` (60 nights over 120 days, 4 to 12 points a night) and ``archive`` (``n``
points over ``span`` days: seasons when the field is up, nights lost to weather, one to three
points a night at random hours, as a field observed every few nights for ten years).
"""

from __future__ import annotations

import numpy as np

from clinepipe.simulate.field import EB_TYPE, PULSATOR_TYPE, true_light_curve

__all__ = ["KINDS", "SAMPLINGS", "light_curve", "sample_times"]

KINDS = ("EA", "sinusoid", "sawtooth", "EW")
SAMPLINGS = ("short", "season", "archive")
JD0 = 2460000.5


def sample_times(rng, sampling: str, n: int = 3000, span: float = 3650.0) -> np.ndarray:
    """Observation times (JD, sorted) of one star under ``sampling`` (see the module)."""
    if sampling == "short":
        nights = np.sort(rng.choice(4, rng.integers(2, 4), replace=False)).astype(float)
        per_night = 60
    elif sampling == "season":
        nights = np.sort(rng.choice(120, 60, replace=False)).astype(float)
        per_night = None
    elif sampling == "archive":
        every = np.arange(int(span))
        # the field is up 8 months a year; two nights in five are lost to weather
        up = (np.mod(every, 365.25) < 240) & (rng.random(every.size) > 0.4)
        nights = every[up].astype(float)
        per_night = None
    else:
        raise ValueError(f"unknown sampling {sampling!r}")
    if per_night is not None:
        # a night's lights: 6-minute cadence over 6 h
        t = np.concatenate([night + 0.1 + np.arange(per_night) * 0.0042 for night in nights])
    else:
        counts = rng.integers(1, 4, nights.size) if sampling == "archive" else \
            rng.integers(4, 13, nights.size)
        night = np.repeat(nights, counts)
        # the hours the field is up drift through the season (about 4 min a night earlier)
        start = 0.05 + 0.25 * np.mod(night, 365.25) / 365.25
        t = night + start + rng.uniform(0.0, 0.3, night.size)
        if sampling == "archive" and t.size > n:
            t = rng.choice(t, n, replace=False)
    return JD0 + np.sort(t)


def _shape(kind: str, phase: np.ndarray, p: dict) -> np.ndarray:
    """Magnitude offset (positive = fainter) at ``phase`` (0-1) of the shapes written here."""
    if kind == "sawtooth":
        # rise over the first ``rise`` of the cycle, linear decline over the rest
        rise = p["rise"]
        return p["amplitude"] * np.where(phase < rise, 1.0 - 2.0 * phase / rise,
                                         -1.0 + 2.0 * (phase - rise) / (1.0 - rise))
    if kind == "EW":
        # two minima a cycle (cos 4 pi phase), the primary deeper by ``diff``
        return (p["amplitude"] * 0.5 * (1.0 + np.cos(4 * np.pi * phase))
                + p["diff"] * 0.5 * (1.0 + np.cos(2 * np.pi * phase)))
    raise ValueError(f"unknown kind {kind!r}")


def light_curve(rng, kind: str, sampling: str, *, period: float | None = None,
                periods: tuple = (0.05, 8.0), n: int = 3000, span: float = 3650.0,
                noise: tuple = (0.005, 0.03)):
    """One star: ``(t, mag, err, period)``, times in JD, magnitudes (mean 0 before noise),
    1-sigma errors (mag, drawn per point within ``noise``) and the true period (days, drawn
    log-uniform over ``periods`` unless given).

    ``kind``: ``EA`` (narrow eclipses: width 0.04-0.10 in phase, depths 0.3-0.8 and 0-0.6 of
    it), ``sinusoid`` (semi-amplitude 0.03-0.3 mag), ``sawtooth`` (RR Lyrae-like: full
    amplitude 0.3-1.0 mag, rise 10-25 % of the cycle) or ``EW`` (contact binary: 0.1-0.5 mag
    with minima differing by 0.1-0.2 mag).
    """
    if period is None:
        period = float(np.exp(rng.uniform(*np.log(periods))))
    t = sample_times(rng, sampling, n, span)
    epoch = JD0 + rng.uniform(0.0, period)
    if kind == "EA":
        depth = rng.uniform(0.3, 0.8)
        row = {"type": EB_TYPE, "period_days": period, "epoch_jd": epoch,
               "depth_primary": depth, "depth_secondary": depth * rng.uniform(0.0, 0.6),
               "eclipse_width_phase": rng.uniform(0.04, 0.10), "amplitude": 0.0}
        dm = true_light_curve(row, t)
    elif kind == "sinusoid":
        row = {"type": PULSATOR_TYPE, "period_days": period, "epoch_jd": epoch,
               "depth_primary": 0.0, "depth_secondary": 0.0, "eclipse_width_phase": 0.0,
               "amplitude": rng.uniform(0.03, 0.3)}
        dm = true_light_curve(row, t)
    else:
        params = {"amplitude": rng.uniform(0.15, 0.5), "rise": rng.uniform(0.10, 0.25),
                  "diff": rng.uniform(0.1, 0.2)} if kind == "sawtooth" else \
            {"amplitude": rng.uniform(0.1, 0.5), "diff": rng.uniform(0.1, 0.2)}
        dm = _shape(kind, np.mod((t - epoch) / period, 1.0), params)
    err = rng.uniform(*noise, t.size)
    mag = dm + rng.normal(0.0, err)
    return t, mag - np.mean(mag), err, period
