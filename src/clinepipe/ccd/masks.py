"""The bits of a calibrated frame's mask plane, and which of them make a pixel unusable for photometry."""

from __future__ import annotations

MASK_SATURATED = 1

MASK_HOT = 2

MASK_BAD_FLAT = 4

MASK_COSMIC_RAY = 8

MASK_NONFINITE = 16

MASK_BITS = {MASK_SATURATED: "saturated", MASK_HOT: "hot pixel", MASK_BAD_FLAT: "bad flat",
             MASK_COSMIC_RAY: "cosmic ray", MASK_NONFINITE: "non-finite"}

#: mask bits that make a measurement unreliable. Hot pixels are not among them: the scaled
#: master dark removes their signal and the uncertainty plane carries their noise.
PHOTOMETRY_BAD_BITS = MASK_SATURATED | MASK_BAD_FLAT | MASK_COSMIC_RAY | MASK_NONFINITE
