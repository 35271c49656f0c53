"""NaN and infinity stop at the edges: the database and JSON get ``None`` (SQL NULL, JSON null)."""
import math


def finite_or_none(value) -> float | None:
    """``value`` as a Python float, or None when it is None, not a number, NaN or infinite.

    Used wherever a computed quantity (a numpy scalar, in its own unit) leaves the numeric
    stages for a database column or a JSON document, neither of which has a NaN.
    """
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def finite_floats_or_none(values) -> list:
    """:func:`finite_or_none` of every element of ``values`` (array-like), column-wise: a list
    of Python floats with None for NaN and infinity, for a column of many database rows without
    a Python call per value."""
    import numpy as np

    a = np.asarray(values, dtype=float)
    out = a.astype(object)
    out[~np.isfinite(a)] = None
    return out.tolist()
