"""Exoplanet transits: targets from transits.csv, the differential light curve, the transit
model and its MCMC fit with detrending, and the files a fit leaves (fit.json, lightcurve.csv,
a plot). Pure functions over numpy arrays; the database edge and the CLI live elsewhere."""

from clinepipe.transits.differential import (
                           Comparisons,
                           DifferentialLightCurve,
                           choose_aperture,
                           differential_flux,
                           select_comparisons,
)
from clinepipe.transits.fit import (
                           TransitFit,
                           TransitRefused,
                           check_coverage,
                           fit_transit,
                           table_priors,
)
from clinepipe.transits.limbdark import LimbDarkening, quadratic_ld
from clinepipe.transits.model import TransitCurve, total_duration, transit_flux
from clinepipe.transits.outputs import aavso_columns, fit_record, write_transit_outputs
from clinepipe.transits.targets import (
                           TransitTarget,
                           parse_position,
                           read_targets,
                           transits_in_window,
)

__all__ = [
    "TransitTarget", "read_targets", "transits_in_window", "parse_position", "quadratic_ld",
    "LimbDarkening", "TransitCurve", "transit_flux", "total_duration", "fit_transit",
    "TransitFit", "TransitRefused", "check_coverage", "table_priors", "select_comparisons",
    "differential_flux", "choose_aperture", "Comparisons", "DifferentialLightCurve",
    "write_transit_outputs", "fit_record", "aavso_columns",
]
