"""What stacking gives: a master's array with the statistics of the frames that made it and
the frames it rejected (and why); the stacks produce it, the master files write it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


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
