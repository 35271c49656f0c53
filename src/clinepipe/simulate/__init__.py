"""Simulated nights of the observatory: the source of truth for every test.

``simulate_night(out_dir, seed=0, nights=None, spec=None, **overrides)`` writes::

    OUT/incoming/<YYYYMMDD>/calibration/<night>_{bias_NNN,dark_<t>s_NNN,flat_<F>_NNN}.fit
    OUT/incoming/<YYYYMMDD>/lights/<night>_light_NNN_<F>.fit  (+ .SRC beside each, CRLF)
    OUT/catalog.csv   id,ra,dec,B,V,R,e_B,e_V,e_R  (stars with V < catalog_limit)
    OUT/vsx.csv       name,ra,dec,type,period      (only the eclipsing binary)
    OUT/clinepipe.toml  ready to run
    OUT/truth/{stars,variables,frames}.csv, truth/lights/<stem>.csv, camera.json,
             bias_bin<b>.fits, dark_bin<b>.fits, flat_bin<b>_<F>.fits

Conventions: pixel positions in files are 1-based (FITS); ``jd_mid`` is the UTC JD at
mid-exposure (DATE-OBS is the start); a frame's true zero point satisfies
``catalog_mag = -2.5 log10(flux_ADU / EXPTIME) + zero_point`` with
``zero_point = ZP0[f] - k[f] * airmass + 2.5 log10(transparency)`` and no colour term between
the instrument and the catalog bands (B, V, R; Red/Green/Blue/Lum/Halpha use R/V/B/V/R).
Variables follow :func:`true_light_curve` with the phase from ``jd_mid`` (UTC, no light-time
correction); the same epoch holds on every night.

This package never imports another clinepipe module (only ``clinepipe.__version__``).
"""

from .camera import CameraTruth
from .field import EB_MODEL, PULSATOR_MODEL, true_light_curve
from .night import (
    camera_description,
    recommended_aperture,
    render_light,
    simulate_night,
)
from .scene import FRAME_COLUMNS, FramePlan, LightRender, Simulator
from .spec import SimulationResult, SimulationSpec, read_csv_table
from .writers import SRC_COLUMNS, write_raw_frame, write_src

__all__ = [
    "SimulationSpec", "SimulationResult", "simulate_night", "render_light", "Simulator",
    "FramePlan", "LightRender", "CameraTruth", "true_light_curve", "write_raw_frame",
    "write_src", "read_csv_table", "recommended_aperture", "camera_description",
    "EB_MODEL", "PULSATOR_MODEL", "FRAME_COLUMNS", "SRC_COLUMNS",
]
