"""Transformation to the standard system, as AAVSO observers do it (pure numpy).

The conventions are those of the AAVSO CCD Photometry Guide (chapter "Transforming your
observations") and of AAVSO's Transform Applier. Lower-case letters are instrumental
magnitudes (``b = -2.5 log10(flux / exptime)``), capitals standard (catalog) magnitudes:

* a *magnitude coefficient* ``Tm_pq`` (``Tv_bv``, ``Tb_bv``, ``Tr_vr`` …) is the slope of
  ``M - m`` against the standard colour ``P - Q``:  ``M = m + Tm_pq (P - Q) + ZPm``;
* a *colour coefficient* ``Tpq`` (``Tbv``, ``Tvr`` …) turns an instrumental colour into a
  standard one:  ``P - Q = Tpq (p - q) + ZPpq``.

The zero points ``ZPm`` (per frame) and ``ZPpq`` (per pair of frames in the two filters, taken
nearest in time) come from the frame's comparison stars, which is the ensemble form of
AAVSO's ``V = v + Tv_bv [(B - V) - (B - V)c] + (V - v)c``.

:func:`~clinepipe.calibrate.transform_fit.fit_transform` fits the coefficients from a night on a standard field;
:func:`~clinepipe.calibrate.transform_apply.apply_transform` transforms the measurements of a night with two or
more filters.

This module holds what fitting and applying share (the coefficients, a night's photometry,
the pairing of frames); :mod:`~clinepipe.calibrate.transform_fit` fits the coefficients,
:mod:`~clinepipe.calibrate.transform_apply` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clinepipe.catalogs.types import DEFAULT_CATALOG_ERROR

#: magnitude coefficients AAVSO names, in the order they are preferred for a band:
#: name -> (band transformed, (blue band, red band) of the colour)
MAGNITUDE_COEFFICIENTS = {
    "Tb_bv": ("B", ("B", "V")), "Tv_bv": ("V", ("B", "V")), "Tv_vr": ("V", ("V", "R")),
    "Tv_vi": ("V", ("V", "I")), "Tr_vr": ("R", ("V", "R")), "Tr_ri": ("R", ("R", "I")),
    "Ti_vi": ("I", ("V", "I")), "Ti_ri": ("I", ("R", "I")),
}


#: colour coefficients: name -> (blue band, red band)
COLOUR_COEFFICIENTS = {"Tbv": ("B", "V"), "Tvr": ("V", "R"), "Tvi": ("V", "I"),
                       "Tri": ("R", "I")}


COEFFICIENT_NAMES = tuple(MAGNITUDE_COEFFICIENTS) + tuple(COLOUR_COEFFICIENTS)


#: fewest stars, and smallest standard colour range (mag), to fit a coefficient
MIN_STARS = 8


MIN_COLOUR_RANGE = 0.3


#: default longest time between the two frames of a colour (days): 1 hour
MAX_PAIR_GAP = 1.0 / 24


@dataclass(frozen=True)
class Coefficient:
    """One fitted coefficient: ``value`` ± ``error`` (1 sigma); NaN and a ``reason`` when it
    could not be fitted. ``n_used`` points of ``n_stars`` stars after clipping."""

    name: str
    value: float
    error: float
    n_used: int = 0
    n_stars: int = 0
    chi2: float = float("nan")          #: reduced chi-square of the fit
    reason: str = ""


@dataclass(frozen=True)
class NightPhotometry:
    """The measurements of one night, flat arrays (n measurements, f frames, k stars).

    ``frame`` (n,) index into the frame arrays; ``star`` (n,) index into the star arrays;
    ``inst``/``inst_err`` (n,) instrumental magnitude and its 1-sigma error (mag);
    ``comparison`` (n,) bool: a constant catalog star, unflagged, usable as a comparison star;
    ``frame_band`` (f,) the standard band each frame measures (``B``, ``V``, ``R``, ``I`` or
    anything else, which is left alone); ``frame_jd`` (f,) mid-exposure JD (days);
    ``catalog`` {band: (k,) standard magnitude, NaN when unknown}, ``catalog_err`` likewise.
    """

    frame: np.ndarray
    star: np.ndarray
    inst: np.ndarray
    inst_err: np.ndarray
    comparison: np.ndarray
    frame_band: np.ndarray
    frame_jd: np.ndarray
    catalog: dict
    catalog_err: dict

    def cat(self, band: str) -> tuple[np.ndarray, np.ndarray]:
        """(mag, err) of ``band`` per measurement (NaN where the catalog has none)."""
        k = self.star
        if band not in self.catalog:
            return np.full(k.size, np.nan), np.full(k.size, np.nan)
        mag = np.asarray(self.catalog[band], float)[k]
        err = (np.asarray(self.catalog_err[band], float)[k] if band in self.catalog_err
               else np.full(k.size, np.nan))
        # a catalog without errors: its magnitudes are taken as good to 0.03 mag
        return mag, np.where(np.isfinite(err) & (err > 0), err, DEFAULT_CATALOG_ERROR)


def group_mean(values, weights, group, n_groups):
    """The weighted mean of ``values`` within each group, broadcast back to every element.

    ``group`` (n,) holds each element's group index in ``0..n_groups-1``; ``values`` and
    ``weights`` (n,) are arrays of any unit (the mean has the unit of ``values``). A group of
    zero total weight gets 0. Returns an array (n,).
    """
    sw = np.bincount(group, weights=weights, minlength=n_groups)
    s = np.bincount(group, weights=weights * values, minlength=n_groups)
    return (s / np.where(sw > 0, sw, 1.0))[group]


def pair_frames(frame_band, frame_jd, blue: str, red: str, anchor: str,
                max_gap: float = MAX_PAIR_GAP) -> np.ndarray:
    """For every frame, the frame of the other band of the colour ``blue - red`` nearest in
    time (index), or -1: for frames not of band ``anchor``, or without such a frame within
    ``max_gap`` days.

    Parameters
    ----------
    frame_band : array (f,) of str
    frame_jd : array (f,)
        Mid-exposure times (days).
    anchor : str
        ``blue`` or ``red``: the band whose frames get a partner.
    """
    band = np.asarray(frame_band).astype(str)
    jd = np.asarray(frame_jd, float)
    other = red if anchor == blue else blue
    cand = np.flatnonzero(band == other)
    out = np.full(band.size, -1)
    mine = np.flatnonzero(band == anchor)
    if cand.size == 0 or mine.size == 0:
        return out
    order = cand[np.argsort(jd[cand], kind="stable")]
    t = jd[order]
    pos = np.searchsorted(t, jd[mine])
    left = np.clip(pos - 1, 0, t.size - 1)
    right = np.clip(pos, 0, t.size - 1)
    pick = np.where(np.abs(jd[mine] - t[left]) <= np.abs(t[right] - jd[mine]), left, right)
    gap = np.abs(t[pick] - jd[mine])
    out[mine] = np.where(gap <= max_gap, order[pick], -1)
    return out


def partner_index(night: NightPhotometry, partner_frame: np.ndarray) -> np.ndarray:
    """For each measurement, the index of the same star's measurement on its frame's partner
    frame, or -1."""
    if night.star.size == 0:
        return np.zeros(0, dtype=int)
    n_star = int(night.star.max()) + 1
    key = night.frame.astype(np.int64) * n_star + night.star
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    pf = partner_frame[night.frame]
    want = np.where(pf >= 0, pf.astype(np.int64) * n_star + night.star, -1)
    pos = np.clip(np.searchsorted(sorted_key, want), 0, max(key.size - 1, 0))
    found = (pf >= 0) & (key.size > 0) & (sorted_key[pos] == want)
    return np.where(found, order[pos], -1)
