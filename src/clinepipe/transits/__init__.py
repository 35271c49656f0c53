"""Exoplanet transits: targets from transits.csv, the differential light curve, the transit
model and its MCMC fit with detrending, and the files a fit leaves (fit.json, lightcurve.csv,
a plot). Pure functions over numpy arrays; the database edge and the CLI live elsewhere.

The public names are loaded on first use: every run imports the transit step, and a run
without a transit to fit (or ``clinepipe lc``) need not load the limb-darkening table's
triangulation (scipy.spatial) or the fit's MCMC.
"""

import importlib

#: where each public name lives
_HOMES = {
    "Comparisons": "differential", "DifferentialLightCurve": "differential",
    "choose_aperture": "differential", "differential_flux": "differential",
    "select_comparisons": "differential",
    "TransitFit": "fit", "TransitRefused": "fit", "check_coverage": "fit",
    "fit_transit": "fit", "table_priors": "fit",
    "LimbDarkening": "limbdark", "quadratic_ld": "limbdark",
    "TransitCurve": "model", "total_duration": "model", "transit_flux": "model",
    "aavso_columns": "outputs", "fit_record": "outputs", "write_transit_outputs": "outputs",
    "TransitTarget": "targets", "parse_position": "targets", "read_targets": "targets",
    "transits_in_window": "targets",
}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"clinepipe.transits.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'clinepipe.transits' has no attribute {name!r}")


__all__ = [
    "TransitTarget", "read_targets", "transits_in_window", "parse_position", "quadratic_ld",
    "LimbDarkening", "TransitCurve", "transit_flux", "total_duration", "fit_transit",
    "TransitFit", "TransitRefused", "check_coverage", "table_priors", "select_comparisons",
    "differential_flux", "choose_aperture", "Comparisons", "DifferentialLightCurve",
    "write_transit_outputs", "fit_record", "aavso_columns",
]
