"""Astrometry: where each star is (`.SRC` lists, detection, the WCS, plate solving).

``read_src`` is re-exported here because ``clinepipe.astrometry.read_src`` is part of the
stable Python API (README, "Development").
"""

from clinepipe.astrometry.src_lists import read_src

__all__ = ["read_src"]
