"""The read-only web dashboard (``clinepipe serve``): nights, failures, stars, light curves."""

from .app import LIGHTCURVE_FIELDS, create_app

__all__ = ["create_app", "LIGHTCURVE_FIELDS"]
