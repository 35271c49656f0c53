"""The read-only web dashboard (``clinepipe serve``): nights, failures, stars, light curves."""

from clinepipe.web.app import LIGHTCURVE_FIELDS, create_app

__all__ = ["create_app", "LIGHTCURVE_FIELDS"]
