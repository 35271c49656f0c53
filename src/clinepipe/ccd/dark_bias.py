"""Master darks that hold the bias: nights with darks but no bias frames.

With ``[reduction] without_masters = "measure"`` and no master bias, the darks are not
bias-subtracted with a bias that does not exist: their median is a master of bias + dark
current (header ``CLPDBIAS = T``, :data:`HOLDS_BIAS`). Such a master can only be subtracted
whole, unscaled: scaling it by the exposure ratio would scale the bias too (a 60 s light
with a 120 s bias-holding dark would lose twice its bias). So, for a light:

* with a master bias as well: the dark current is ``dark - bias`` and is scaled as usual;
* without one, at the dark's exposure (within :data:`SAME_EXPOSURE`): bias and dark are
  subtracted together, the dark master's noise in place of the bias's (``CALSTAT`` ``BD``);
* without one, at another exposure: the dark is not applied, and the frame says why.

Smart telescopes (DWARF) take their darks at the lights' exposure, which is the second case.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: header keyword of a master dark made without a master bias (True: bias + dark current)
HOLDS_BIAS = "CLPDBIAS"
#: exposures (s) this close, relatively, are the same: a bias-holding dark cannot be scaled
SAME_EXPOSURE = 0.005


@dataclass(frozen=True)
class DarkUse:
    """How a light subtracts its masters: ``bias`` unscaled, ``dark`` scaled by the
    exposure ratio (either may be None), their noises (ADU), which of bias and dark were
    removed (for ``CALSTAT``), and ``note``: why a dark was not applied ("" otherwise)."""

    bias: np.ndarray | None
    dark: np.ndarray | None
    bias_noise: float | None
    dark_noise: float | None
    bias_applied: bool
    dark_applied: bool
    note: str = ""


def same_exposure(a: float | None, b: float | None) -> bool:
    """Whether two exposures (s) are equal within :data:`SAME_EXPOSURE` (relative)."""
    if a is None or b is None or a <= 0 or b <= 0:
        return False
    return abs(a - b) <= SAME_EXPOSURE * max(a, b)


def use_dark(bias, dark, *, holds_bias: bool, exptime: float, dark_exptime: float | None,
             bias_noise: float | None = None, dark_noise: float | None = None) -> DarkUse:
    """What a light subtracts given its master ``bias`` and ``dark`` (arrays or None).

    Parameters
    ----------
    bias, dark : ndarray or None
        Master bias (ADU) and master dark (ADU in ``dark_exptime``; bias-free unless
        ``holds_bias``), already cut to the light.
    holds_bias : bool
        The dark was made without a master bias (:data:`HOLDS_BIAS`).
    exptime, dark_exptime : float
        Exposures of the light and of the dark, s.
    bias_noise, dark_noise : float, optional
        Random 1-sigma per pixel of the masters, ADU.

    Returns
    -------
    DarkUse
    """
    plain = DarkUse(bias, dark, bias_noise, dark_noise, bias is not None, dark is not None)
    if dark is None or not holds_bias:
        return plain
    if bias is not None:  # the dark current alone; the bias's noise is in both: left as is
        return DarkUse(bias, dark - bias, bias_noise, dark_noise, True, True)
    if same_exposure(exptime, dark_exptime):
        # the dark master is this exposure's bias + dark: one subtraction, its noise once
        return DarkUse(dark, None, dark_noise, None, True, True)
    note = (f"dark not applied: the {dark_exptime:g} s master dark holds the bias (no master "
            f"bias) and cannot be scaled to the {exptime:g} s exposure")
    return DarkUse(None, None, None, None, False, False, note)


def holds_bias(master) -> bool:
    """Whether a master dark, as :func:`clinepipe.ccd.reduce.reduce_light` accepts it (FITS
    path, :class:`~clinepipe.ccd.masters.MasterResult`, dict with ``path``/``data``,
    array), holds the bias. An array or a dict without a path says nothing: False."""
    from astropy.io import fits

    if master is None or isinstance(master, np.ndarray):
        return False
    if isinstance(master, dict):
        if master.get("holds_bias") is not None:
            return bool(master["holds_bias"])
        return holds_bias(master.get("path")) if master.get("path") is not None else False
    if hasattr(master, "holds_bias"):
        return bool(master.holds_bias)
    try:
        return bool(fits.getheader(Path(master)).get(HOLDS_BIAS, False))
    except (OSError, ValueError):
        return False
