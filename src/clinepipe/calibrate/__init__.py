"""Photometric calibration: instrumental magnitudes onto a standard (or the night's own) scale.

``ensemble_zero_point`` is re-exported here because ``clinepipe.calibrate.ensemble_zero_point``
is part of the stable Python API (README, "Development").
"""

from clinepipe.calibrate.zero_point import ZeroPointResult, ensemble_zero_point

__all__ = ["ZeroPointResult", "ensemble_zero_point"]
