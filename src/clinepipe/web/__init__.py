"""The read-only web dashboard (``clinepipe serve``): nights, failures, stars, light curves."""

from clinepipe.web.app import create_app
from clinepipe.web.values import LIGHTCURVE_FIELDS

__all__ = ["create_app", "LIGHTCURVE_FIELDS"]
