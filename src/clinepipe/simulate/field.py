"""The synthetic star field, its variables and catalog, and the TAN WCS that places them."""

from __future__ import annotations

import math
import warnings

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from .spec import SimulationSpec

EB_TYPE = "EA"       # VSX type of the eclipsing binary (Algol-like: flat outside eclipses)
PULSATOR_TYPE = "DSCT"  # VSX type of the pulsator (delta Scuti)

EB_MODEL = ("phase = frac((jd_mid_utc - epoch_jd) / period_days); d1 = min(phase, 1 - phase); "
            "d2 = |phase - 0.5|; h = eclipse_width_phase / 2; delta_mag = depth_primary * "
            "cos^2(pi d1 / (2 h)) if d1 < h else 0, plus depth_secondary * cos^2(pi d2 / (2 h)) "
            "if d2 < h else 0; mag(band) = out-of-eclipse catalog-band magnitude + delta_mag "
            "(same delta in every band; jd_mid_utc = UTC JD at mid-exposure, no light-time "
            "correction)")
PULSATOR_MODEL = ("phase = frac((jd_mid_utc - epoch_jd) / period_days); delta_mag = "
                  "-amplitude * cos(2 pi phase) (epoch = maximum light); mag(band) = mean "
                  "catalog-band magnitude + delta_mag (same delta in every band; jd_mid_utc = "
                  "UTC JD at mid-exposure, no light-time correction)")


# --- WCS -------------------------------------------------------------------------------

def wcs_cards(nx: int, ny: int, ra: float, dec: float, scale_arcsec: float,
              rotation_deg: float) -> list[tuple[str, object, str]]:
    """TheSkyX Image Link style TAN WCS cards: reference pixel at the image centre.

    CD = s * [[-cos t, sin t], [sin t, cos t]] (deg/px): RA increases to the left (CD1_1 < 0).
    """
    s = scale_arcsec / 3600.0
    t = math.radians(rotation_deg)
    return [
        ("CTYPE1", "RA---TAN", "Gnomonic projection"),
        ("CTYPE2", "DEC--TAN", "Gnomonic projection"),
        ("CRPIX1", (nx + 1) / 2.0, "reference pixel (1-based)"),
        ("CRPIX2", (ny + 1) / 2.0, "reference pixel (1-based)"),
        ("CRVAL1", float(ra), "RA at the reference pixel (deg)"),
        ("CRVAL2", float(dec), "Dec at the reference pixel (deg)"),
        ("CD1_1", -s * math.cos(t), "deg/pixel"),
        ("CD1_2", s * math.sin(t), "deg/pixel"),
        ("CD2_1", s * math.sin(t), "deg/pixel"),
        ("CD2_2", s * math.cos(t), "deg/pixel"),
        ("RADECSYS", "FK5", "equatorial coordinate system"),
        ("EQUINOX", 2000.0, "equinox of the coordinates"),
    ]


def header_roundtrip(cards) -> fits.Header:
    """A Header as a reader of the written file will see it (values re-parsed from text)."""
    hdr = fits.Header()
    for key, value, comment in cards:
        hdr[key] = (value, comment)
    return fits.Header.fromstring(hdr.tostring())


def wcs_from_header(hdr: fits.Header) -> WCS:
    """The celestial (2-axis) WCS of ``hdr``, without astropy's warnings about cards it fixes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(hdr, naxis=2)


def nominal_wcs(spec: SimulationSpec) -> WCS:
    """The WCS of a frame pointed exactly at the field centre."""
    cards = wcs_cards(spec.nx, spec.ny, spec.field_ra, spec.field_dec, spec.scale,
                      spec.rotation_deg)
    return wcs_from_header(header_roundtrip(cards))


# --- stars ------------------------------------------------------------------------------

def margin_px(spec: SimulationSpec) -> float:
    """How far (binned px) beyond each image edge stars are placed: 3% of the larger side (at
    least 8 px) plus three times the pointing jitter, so that stars drift in and out of the frame
    as the pointing jitters, as on a real night."""
    return max(8.0, 0.03 * max(spec.nx, spec.ny)) + 3.0 * spec.pointing_jitter_px


def power_law_mags(rng, n: int, lo: float, hi: float, slope: float) -> np.ndarray:
    """Magnitudes with dN/dm proportional to 10**(slope m) between lo and hi."""
    a, b = 10 ** (slope * lo), 10 ** (slope * hi)
    return np.log10(a + rng.random(n) * (b - a)) / slope


def make_stars(spec: SimulationSpec, rng) -> dict[str, np.ndarray]:
    """Nominal 0-based pixel positions, V, B-V, V-R of ``spec.n_stars`` stars."""
    n, m = spec.n_stars, margin_px(spec)
    x = rng.uniform(-m, spec.nx - 1 + m, n)
    y = rng.uniform(-m, spec.ny - 1 + m, n)
    v = power_law_mags(rng, n, *spec.mag_range, spec.mag_slope)
    bv = rng.triangular(0.0, 0.6, 1.6, n)
    vr = 0.55 * bv + rng.normal(0.0, 0.03, n)
    return {"x": x, "y": y, "V": v, "BV": bv, "VR": vr}


def place_isolated(rng, x_all, y_all, exclude, spec: SimulationSpec, tries: int = 64):
    """A position in the central 60% of the image, as far as possible from other stars."""
    cx = rng.uniform(0.2 * spec.nx, 0.8 * spec.nx, tries)
    cy = rng.uniform(0.2 * spec.ny, 0.8 * spec.ny, tries)
    keep = np.ones(x_all.size, bool)
    keep[list(exclude)] = False
    dx = cx[:, None] - x_all[keep][None, :]
    dy = cy[:, None] - y_all[keep][None, :]
    d = np.sqrt(dx * dx + dy * dy).min(axis=1) if keep.any() else np.ones(tries)
    k = int(np.argmax(d))
    return cx[k], cy[k]


# --- light curves -------------------------------------------------------------------------

def _get(row, key, default=0.0):
    try:
        value = row[key]
    except (KeyError, IndexError, ValueError):
        return default
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return default
    return value


def true_light_curve(variable_row, jd) -> np.ndarray | float:
    """Magnitude offset (positive = fainter) of a variable at UTC Julian date(s) ``jd``.

    ``variable_row`` is a row of ``SimulationResult.variables`` / ``truth/variables.csv``
    (any mapping with ``type, period_days, epoch_jd, depth_primary, depth_secondary,
    eclipse_width_phase, amplitude``). The true magnitude in any band is the star's
    ``stars`` magnitude plus this offset, with ``jd`` = UTC JD at mid-exposure (no
    light-time correction). See ``EB_MODEL`` and ``PULSATOR_MODEL`` for the formulas.
    """
    kind = str(_get(variable_row, "type", "")).strip()
    period = float(_get(variable_row, "period_days"))
    epoch = float(_get(variable_row, "epoch_jd"))
    t = np.asarray(jd, dtype=np.float64)
    phase = np.mod((t - epoch) / period, 1.0)
    if kind == EB_TYPE:
        h = 0.5 * float(_get(variable_row, "eclipse_width_phase"))
        d1 = np.minimum(phase, 1.0 - phase)
        d2 = np.abs(phase - 0.5)
        dm = (float(_get(variable_row, "depth_primary"))
              * np.where(d1 < h, np.cos(np.pi * d1 / (2 * h)) ** 2, 0.0)
              + float(_get(variable_row, "depth_secondary"))
              * np.where(d2 < h, np.cos(np.pi * d2 / (2 * h)) ** 2, 0.0))
    elif kind == PULSATOR_TYPE:
        dm = -float(_get(variable_row, "amplitude")) * np.cos(2 * np.pi * phase)
    else:
        raise ValueError(f"unknown variable type {kind!r}")
    return float(dm) if np.ndim(dm) == 0 else dm


def catalog_errors(mag, spec: SimulationSpec) -> np.ndarray:
    """e_mag: catalog_error_range[0] for bright stars growing to [1] at the catalog limit."""
    lo, hi = spec.catalog_error_range
    return lo + (hi - lo) * 10 ** (0.4 * (np.asarray(mag) - spec.catalog_limit))
