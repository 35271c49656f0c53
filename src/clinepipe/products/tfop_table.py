"""The TFOP measurements table: one row per frame, AstroImageJ's column names, so that SG1
reviewers can open it in AstroImageJ (File > Open Measurements Table) and replot it.

Stars are AstroImageJ's ``T1`` (the target) and ``C2``, ``C3``, ... (the comparisons, in
star-id order). Columns, with AstroImageJ's meaning:

- ``Label`` (the calibrated file), ``slice`` (1-based frame number), ``JD_UTC`` and
  ``J.D.-2400000`` (UTC, mid-exposure), ``BJD_TDB`` (the target's), ``AIRMASS``,
  ``EXPTIME`` (s), ``FWHM_Mean`` (the frame's median FWHM, px);
- ``rel_flux_T1``, ``rel_flux_err_T1``, ``rel_flux_SNR_T1``: the target over the weighted
  comparison ensemble, normalised to 1 out of transit -- the light curve clinepipe fitted;
- ``tot_C_cnts``, ``tot_C_err``: sum of the comparisons' net counts (ADU) and its error;
- per star ``S`` in T1, C2...: ``Source-Sky_S`` and ``Source_Error_S`` (net aperture counts
  and error, ADU), ``Sky/Pixel_S`` (ADU/px), ``X(IJ)_S``, ``Y(IJ)_S`` (ImageJ pixels: origin
  at the top-left corner, y down), ``X(FITS)_S``, ``Y(FITS)_S`` (1-based FITS pixels),
  ``RA_S``, ``DEC_S`` (deg); for the comparisons also ``rel_flux_C<k>`` and
  ``rel_flux_err_C<k>`` (the star over the sum of the other comparisons, as AstroImageJ
  defines it).

Missing values (a frame where a star could not be measured) are ``NaN``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from clinepipe.atomic_files import atomic_write_text

__all__ = ["measurement_columns", "write_measurements"]

STAR_COLUMNS = ("Source-Sky", "Source_Error", "Sky/Pixel", "X(IJ)", "Y(IJ)", "X(FITS)",
                "Y(FITS)", "RA", "DEC")


def measurement_columns(*, labels, jd_utc, bjd_tdb, airmass, exptime, fwhm, rel_flux,
                        rel_flux_err, flux, flux_err, sky, x, y, ra, dec, ny: int,
                        comps) -> dict[str, np.ndarray]:
    """The table's columns (see the module docstring), in order.

    Parameters
    ----------
    labels : sequence of str (n_frames,)
    jd_utc, bjd_tdb, airmass, exptime, fwhm : arrays (n_frames,)
        Days, days, -, s, px.
    rel_flux, rel_flux_err : arrays (n_frames,)
        The target's normalised differential flux and error.
    flux, flux_err, sky, x, y : arrays (n_frames, n_stars)
        Net counts (ADU), their errors, background (ADU/px), 0-based pixel positions.
    ra, dec : arrays (n_stars,)
        Degrees.
    ny : int
        Image height (px), for ImageJ's y axis.
    comps : sequence of int
        Columns of the comparisons; column 0 is the target.
    """
    n = len(labels)
    cols: dict[str, np.ndarray] = {
        "Label": np.asarray(labels, dtype=object), "slice": np.arange(1, n + 1),
        "JD_UTC": np.asarray(jd_utc), "J.D.-2400000": np.asarray(jd_utc) - 2400000.0,
        "BJD_TDB": np.asarray(bjd_tdb), "AIRMASS": np.asarray(airmass),
        "EXPTIME": np.asarray(exptime), "FWHM_Mean": np.asarray(fwhm),
        "rel_flux_T1": np.asarray(rel_flux), "rel_flux_err_T1": np.asarray(rel_flux_err)}
    with np.errstate(invalid="ignore", divide="ignore"):
        cols["rel_flux_SNR_T1"] = cols["rel_flux_T1"] / cols["rel_flux_err_T1"]
    comps = [int(c) for c in comps]
    tot = flux[:, comps].sum(axis=1)
    tot_err = np.sqrt((flux_err[:, comps] ** 2).sum(axis=1))
    cols["tot_C_cnts"], cols["tot_C_err"] = tot, tot_err
    names = [(0, "T1")] + [(c, f"C{k}") for k, c in enumerate(comps, start=2)]
    for j, name in names:
        if name != "T1":
            others, others_err = tot - flux[:, j], np.sqrt(tot_err**2 - flux_err[:, j] ** 2)
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = flux[:, j] / others
                cols[f"rel_flux_{name}"] = rel
                cols[f"rel_flux_err_{name}"] = np.abs(rel) * np.hypot(
                    flux_err[:, j] / flux[:, j], others_err / others)
        values = (flux[:, j], flux_err[:, j], sky[:, j], x[:, j] + 0.5, ny - y[:, j] - 0.5,
                  x[:, j] + 1.0, y[:, j] + 1.0, np.full(n, ra[j]), np.full(n, dec[j]))
        for key, value in zip(STAR_COLUMNS, values):
            cols[f"{key}_{name}"] = value
    return cols


def _cell(value) -> str:
    if isinstance(value, str):
        return value
    value = float(value)
    if not np.isfinite(value):
        return "NaN"
    return f"{value:.10g}" if abs(value) < 1e6 else f"{value:.8f}"


def write_measurements(path, columns: dict[str, np.ndarray]) -> Path:
    """Write the columns as CSV (one header row, one row per frame), atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(columns))
    for row in zip(*columns.values()):
        writer.writerow([_cell(v) for v in row])
    atomic_write_text(path, buf.getvalue())
    return Path(path)
