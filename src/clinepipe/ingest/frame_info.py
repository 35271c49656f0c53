"""Small dataclasses that travel between stages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FrameInfo:
    """What the header says about one raw frame (read once, at ingest).

    ``jd_start``/``jd_mid`` are UTC Julian dates; ``night`` is the local observing night
    (noon-to-noon at the site's longitude) as ``YYYYMMDD``; ``shape`` is numpy ``(ny, nx)``;
    ``xorg``/``yorg`` the subframe origin in binned pixels (0-based).
    """

    path: Path
    kind: str
    binning: int
    filter: str | None
    exptime: float
    ccd_temp: float | None
    date_obs: str
    jd_start: float
    jd_mid: float
    night: str
    shape: tuple[int, int]
    xorg: int = 0
    yorg: int = 0
    gain: float | None = None  # e-/ADU, when the header gives it in those units
    object: str | None = None
    saturation: float | None = None  # raw ADU, from SATURATE/DATAMAX/MAXLIN when present
    top_down: bool = False  # ROWORDER = 'TOP-DOWN': rows are flipped when the pixels are read
    time_source: str = ""  # the keyword(s) the time came from, with a converted UTC offset
    time_note: str = ""  # why that keyword, when time keywords disagreed
    notes: tuple[tuple[str, str], ...] = ()  # (reason, message) of what is odd but usable
