"""The bits of a calibrated frame's mask plane, and which of them make a pixel unusable for photometry."""

from __future__ import annotations



MASK_SATURATED = 1

MASK_HOT = 2

MASK_BAD_FLAT = 4

MASK_COSMIC_RAY = 8

MASK_NONFINITE = 16

MASK_BITS = {MASK_SATURATED: "saturated", MASK_HOT: "hot pixel", MASK_BAD_FLAT: "bad flat",
             MASK_COSMIC_RAY: "cosmic ray", MASK_NONFINITE: "non-finite"}

