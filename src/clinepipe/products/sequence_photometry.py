"""A target's magnitudes on an AAVSO comparison sequence (``[aavso.sequences]``): the sequence
stars are found among the measured stars by position, one of them is the check star, the
others the comparison ensemble, and each frame gets its zero point from that ensemble alone
(:func:`clinepipe.calibrate.ensemble_zero_point` on the sequence magnitudes), as an observer
reducing by hand with the AAVSO chart would.

The check star, per band: among the sequence stars with a magnitude in the band measured
(unflagged) on at least :data:`CHECK_MIN_COVERAGE` of the frames, the one closest in magnitude
to the target's median magnitude (ties: the first in the file). With a single sequence star
measured there is no check star.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from clinepipe.calibrate.zero_point import ensemble_zero_point
from clinepipe.catalogs.match import match_catalog
from clinepipe.catalogs.vsp_sequence import Sequence, sequence_band
from clinepipe.errors import ClinepipeError, UsageError
from clinepipe.products.aavso_rules import aavso_filter_code
from clinepipe.store.models import Measurement, Star

__all__ = ["FrameComparison", "SequencePhotometry", "sequence_photometry"]

#: a check star is measured on at least this fraction of the band's frames
CHECK_MIN_COVERAGE = 0.8
#: the name of an ensemble of comparison stars in CNAME (AAVSO Extended Format)
ENSEMBLE = "ENSEMBLE"


@dataclass(frozen=True)
class FrameComparison:
    """One frame's comparison on the sequence.

    ``zp``/``zp_err`` the zero point and its error (mag: ``mag = inst_mag + zp``); ``n_used``
    comparison stars used; ``cname`` ``ENSEMBLE`` or the one comparison star's AUID (label);
    ``cmagins`` the mean instrumental magnitude of the comparison stars used and ``crefmag``
    that plus the zero point (their weighted sequence magnitude, so that AAVSO's Transform
    Applier finds ``mag = VMAGINS - CMAGINS + CREFMAG``); ``kname``/``kmagins``/``kmag``/
    ``krefmag``/``kreferr`` the check star's name, instrumental and calibrated magnitude and
    its sequence magnitude and error (None without a check star on this frame). Magnitudes in
    mag."""

    zp: float
    zp_err: float
    n_used: int
    cname: str
    cmagins: float
    crefmag: float
    kname: str | None = None
    kmagins: float | None = None
    kmag: float | None = None
    krefmag: float | None = None
    kreferr: float | None = None


@dataclass(frozen=True)
class SequencePhotometry:
    """``frames`` {frame id: :class:`FrameComparison`}; ``reasons`` {frame id: why it has
    none}; ``chart`` the chart id."""

    frames: dict
    reasons: dict
    chart: str


def _matched_stars(conn, sequence: Sequence, exclude: set[int],
                   radius_arcsec: float) -> np.ndarray:
    """The database star id of each sequence star (-1: none within ``radius_arcsec``, or the
    target itself)."""
    ra = np.array([s.ra for s in sequence.stars])
    dec = np.array([s.dec for s in sequence.stars])
    pad = radius_arcsec / 3600.0 + 1e-6
    c = Star.__table__.c
    rows = conn.execute(select(c.id, c.ra, c.dec).where(
        c.dec >= float(dec.min()) - pad, c.dec <= float(dec.max()) + pad)).all()
    if not rows:
        return np.full(ra.size, -1)
    ids = np.array([r[0] for r in rows])
    idx, _ = match_catalog(ra, dec, [r[1] for r in rows], [r[2] for r in rows], radius_arcsec)
    out = np.where(idx >= 0, ids[np.maximum(idx, 0)], -1)
    return np.where(np.isin(out, list(exclude)), -1, out)


def sequence_photometry(conn, sequence: Sequence, target_ids, frame_filters: dict,
                        target_mags: dict, *, radius_arcsec: float = 2.0) -> SequencePhotometry:
    """Zero points, comparison and check star of every frame in ``frame_filters`` ({frame id:
    filter name}) from ``sequence``; ``target_mags`` {filter: the target's median magnitude}
    chooses the check star (see the module docstring).

    Raises
    ------
    ClinepipeError
        when no sequence star is among the measured stars (none within ``radius_arcsec`` of a
        star of the database, the file and key named).
    """
    star_of = _matched_stars(conn, sequence, {int(t) for t in target_ids}, radius_arcsec)
    if not (star_of >= 0).any():
        raise ClinepipeError(f"{sequence.where}: no star of the sequence was measured (none is "
                             f"within {radius_arcsec:g} arcsec of a star in the database); "
                             "check that the sequence is of this field.",
                             reason="no sequence star measured")
    m = Measurement.__table__.c
    frame_ids = sorted(int(f) for f in frame_filters)
    inst: dict[int, dict[int, tuple[float, float]]] = defaultdict(dict)
    for fid, sid, mag, err in conn.execute(
            select(m.frame_id, m.star_id, m.inst_mag, m.inst_mag_err).where(
                m.star_id.in_([int(s) for s in star_of[star_of >= 0]]),
                m.frame_id.in_(frame_ids), m.flags == 0, m.inst_mag.is_not(None))):
        if math.isfinite(mag):
            inst[int(fid)][int(sid)] = (float(mag), math.nan if err is None else float(err))
    by_filter: dict[str, list[int]] = defaultdict(list)
    for fid, filt in frame_filters.items():
        by_filter[filt].append(int(fid))
    frames, reasons = {}, {}
    for filt, fids in by_filter.items():
        try:
            band = sequence_band(sequence, aavso_filter_code(filt), filt)
        except UsageError:
            reasons.update({fid: f"in filter {filt!r}, which the sequence of chart "
                            f"{sequence.chart_id} has no magnitudes for" for fid in fids})
            continue
        except ClinepipeError:  # no AAVSO code: the exporter leaves these out itself
            continue
        seq_mag, seq_err = sequence.magnitudes(band)
        usable = (star_of >= 0) & np.isfinite(seq_mag)
        check = _check_star(star_of, usable, seq_mag, fids, inst, target_mags.get(filt))
        comps = np.flatnonzero(usable & (np.arange(usable.size) != (-1 if check is None
                                                                      else check)))
        for fid in fids:
            on = inst.get(fid, {})
            here = [i for i in comps if int(star_of[i]) in on]
            if not here:
                reasons[fid] = ("on frames where no comparison star of the sequence was "
                                "measured (unflagged)")
                continue
            ci = np.array([on[int(star_of[i])][0] for i in here])
            ce = np.array([on[int(star_of[i])][1] for i in here])
            zp = ensemble_zero_point(ci, seq_mag[here], ce, seq_err[here])
            if zp.n_used == 0 or not math.isfinite(zp.value):
                reasons[fid] = "on frames where the sequence gave no zero point"
                continue
            used = np.asarray(here)[zp.used]
            cname = ENSEMBLE if zp.n_used > 1 else sequence.stars[int(used[0])].name
            frames[fid] = FrameComparison(
                zp=zp.value, zp_err=zp.error, n_used=zp.n_used, cname=cname,
                cmagins=float(ci[zp.used].mean()), crefmag=float(ci[zp.used].mean()) + zp.value,
                **_check_fields(sequence, check, star_of, on, seq_mag, seq_err, zp.value))
    return SequencePhotometry(frames, reasons, sequence.chart_id)


def _check_star(star_of, usable, seq_mag, fids, inst, target_mag) -> int | None:
    """Index (in the sequence) of the band's check star, or None (see the module docstring)."""
    counts = np.array([sum(int(s) in inst.get(f, {}) for f in fids) if ok else 0
                       for s, ok in zip(star_of, usable)])
    measured = np.flatnonzero(counts > 0)
    if measured.size < 2:  # one star: it is the comparison
        return None
    cands = np.flatnonzero(counts >= CHECK_MIN_COVERAGE * len(fids))
    if cands.size == 0:
        return None
    ref = target_mag if target_mag is not None and math.isfinite(target_mag) else \
        float(np.median(seq_mag[measured]))
    return int(cands[np.argmin(np.abs(seq_mag[cands] - ref))])


def _check_fields(sequence, check, star_of, on, seq_mag, seq_err, zp) -> dict:
    if check is None or int(star_of[check]) not in on:
        return {}
    kinst, _ = on[int(star_of[check])]
    err = float(seq_err[check])
    return {"kname": sequence.stars[check].name, "kmagins": kinst, "kmag": kinst + zp,
            "krefmag": float(seq_mag[check]), "kreferr": err if math.isfinite(err) else None}
