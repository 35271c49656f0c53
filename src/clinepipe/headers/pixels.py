"""What only the pixels can tell about a camera: a 12- or 14-bit ADC inside a 16-bit file."""

from __future__ import annotations

import numpy as np

__all__ = ["adc_saturation"]

#: (ADC bits, the highest value such an ADC writes unscaled into a 16-bit file)
_ADC_LIMITS = ((12, 4095.0), (14, 16383.0))


def adc_saturation(data) -> tuple[int, float] | None:
    """The ADC depth of a camera whose 16-bit files never exceed 12 or 14 bits.

    Parameters
    ----------
    data : array_like
        The pixels (ADU) of one frame, of a whole night stacked, or the per-frame maxima of a
        night: the test is on the maximum, so all three give the same answer for a night.

    Returns
    -------
    (int, float) or None
        ``(12, 4095.0)`` when every finite value is <= 4095 and some equal it (a saturated
        12-bit pixel), ``(14, 16383.0)`` likewise for 14 bits; None otherwise (a 16-bit
        camera, or a night where no pixel reached the ADC's ceiling, which then cannot be told
        from a faint field).
    """
    arr = np.asarray(data)
    if arr.size == 0:
        return None
    peak = float(np.nanmax(arr)) if arr.dtype.kind == "f" else float(arr.max())
    for bits, ceiling in _ADC_LIMITS:
        if peak == ceiling:
            return bits, ceiling
    return None
