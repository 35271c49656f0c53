"""``clinepipe export --format aavso`` and the nightly AAVSO files: the measurements of the
database as an AAVSO Extended Format file, written through
:func:`clinepipe.products.aavso_format.format_extended`, so that every file is validated before
it is written (issue 21) and every measurement left out is counted with its reason (issue 19).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from sqlalchemy import Engine, func, select

from clinepipe import __version__
from clinepipe.atomic_files import atomic_write_text
from clinepipe.calibrate.relative import RELATIVE_BAND
from clinepipe.catalogs.vsp_sequence import Sequence as ComparisonSequence
from clinepipe.catalogs.vsp_sequence import sequence_band
from clinepipe.errors import BadInput, ClinepipeError, UsageError
from clinepipe.finite import finite_or_none
from clinepipe.photometry.aperture import PHOT_FLAGS
from clinepipe.products.aavso_format import (
    ExtendedHeader,
    ExtendedRow,
    aavso_filter_code,
    check_obscode,
    format_extended,
)
from clinepipe.products.sequence_photometry import ENSEMBLE, sequence_photometry
from clinepipe.store.models import (
    CatalogMatch,
    Frame,
    Measurement,
    Star,
    TransformedMag,
    ZeroPoint,
)

__all__ = ["Written", "aavso_filter", "export_aavso", "describe_left_out"]



class Written(int):
    """The number of data rows an exporter wrote (an ``int``), with ``left_out``:
    ``{reason: measurements}`` of the selected measurements it did not write."""

    left_out: dict[str, int]

    def __new__(cls, rows: int, left_out: dict[str, int] | None = None):
        obj = super().__new__(cls, rows)
        obj.left_out = dict(left_out or {})
        return obj


def describe_left_out(left_out: dict[str, int]) -> str:
    """``"3 flagged blended, 1 without a calibrated magnitude"``: the reasons, most first."""
    return ", ".join(f"{n} {why}" for why, n in sorted(left_out.items(), key=lambda kv: -kv[1]))


def aavso_filter(name: str | None) -> str:
    """The AAVSO band code of one of our filter names; :class:`UsageError` when there is none
    (the name came from the command line: the user chose it)."""
    try:
        return aavso_filter_code(name)
    except BadInput as exc:
        raise UsageError(f"{exc.message[:-1]}; choose another --filter.",
                         reason="no AAVSO filter code") from exc


def _star_label(star_id: int, name: str | None, catalog_id: str | None) -> str:
    for value in (name, catalog_id):
        if value is not None and str(value).strip():
            return " ".join(str(value).split())
    return f"clinepipe-{star_id}"


def _flag_reason(flags: int) -> str:
    names = [name for name, bit in PHOT_FLAGS.items() if flags & bit]
    return "flagged " + "+".join(names or [f"0x{flags:x}"])


def _band_mag(mags_json: str | None, band: str | None) -> float | None:
    """The catalog magnitude of ``band`` in a ``catalog_matches.mags`` JSON, or None."""
    import json

    if not band:
        return None
    try:
        value = json.loads(mags_json or "{}").get(band)
    except (ValueError, AttributeError):
        return None
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return finite_or_none(value) if isinstance(value, (int, float)) else None


def _check_star(conn, check_star_id: int | None) -> tuple[dict, str | None]:
    """({frame id: (mag, inst_mag, transformed mag or None)}, catalog mags JSON) of the check
    star."""
    if check_star_id is None:
        return {}, None
    m, t = Measurement.__table__.c, TransformedMag.__table__.c
    on_frames = {fid: (mag, inst, tmag) for fid, mag, inst, tmag in conn.execute(
        select(m.frame_id, m.mag, m.inst_mag, t.mag)
        .select_from(Measurement.__table__.outerjoin(TransformedMag.__table__,
                                                     t.measurement_id == m.id))
        .where(m.star_id == int(check_star_id), m.mag.is_not(None), m.flags == 0))}
    mags = conn.scalar(select(CatalogMatch.mags).where(
        CatalogMatch.star_id == int(check_star_id)).order_by(CatalogMatch.id).limit(1))
    return on_frames, mags


def _ensemble_inst(conn, frame_ids: set[int]) -> dict[int, float]:
    """{frame id: mean instrumental magnitude of its ensemble stars} (mag)."""
    if not frame_ids:
        return {}
    m = Measurement.__table__.c
    return {fid: float(v) for fid, v in conn.execute(
        select(m.frame_id, func.avg(m.inst_mag)).where(
            m.frame_id.in_(sorted(frame_ids)), m.in_ensemble.is_(True),
            m.inst_mag.is_not(None)).group_by(m.frame_id)) if v is not None}


def _median_mags(rows) -> dict[str, float]:
    """{filter: median calibrated magnitude} of the unflagged rows (to choose a check star)."""
    by: dict[str, list[float]] = {}
    for r in rows:
        if not r.flags and r.mag is not None and math.isfinite(r.mag):
            by.setdefault(r.filter, []).append(float(r.mag))
    return {f: float(np.median(v)) for f, v in by.items()}


def _sequence_row(comp, *, starid, date, inst, err, filt, airmass, group, chart) -> ExtendedRow:
    """One observation calibrated on an AAVSO sequence (see :func:`export_aavso`)."""
    single = comp.cname != ENSEMBLE
    notes = [f"ZPERR={comp.zp_err:.3f}"]
    if comp.kreferr is not None:
        notes.append(f"KREFERR={comp.kreferr:.3f}")
    return ExtendedRow(
        starid=starid, date=date, magnitude=inst + comp.zp, magerr=err, filter=filt,
        trans=False, mtype="STD", cname=comp.cname, cmag=comp.cmagins if single else None,
        kname=comp.kname, kmag=comp.kmagins if single else comp.kmag, airmass=airmass,
        group=group, chart=chart, notes="|".join(notes), vmagins=inst,
        cmagins=comp.cmagins, crefmag=comp.crefmag, kmagins=comp.kmagins,
        krefmag=comp.krefmag)


def export_aavso(engine: Engine, out: str | os.PathLike, *, obscode: str | None,
                 star_ids: Sequence[int], filter: str | None = None,
                 check_star_id: int | None = None, software: str | None = None,
                 group_gap_days: float = 1.0 / 24,
                 frame_ids: Iterable[int] | None = None,
                 sequence: ComparisonSequence | None = None, match_radius: float = 2.0) -> Written:
    """AAVSO Extended File Format report of the calibrated measurements of ``star_ids``,
    built by :func:`~clinepipe.products.aavso_format.format_extended` (validated before it is
    written, atomically; ``out`` ``-`` is standard output).

    One line per observation: STARID the star's known-variable name, else its catalog id,
    else ``clinepipe-<id>`` (never shortened: a name AAVSO cannot take is an error); DATE the
    UTC JD at mid-exposure; FILTER the AAVSO code; TRANS ``NO``, or ``YES`` for a measurement
    transformed to the standard system (``transformed_mags``, ``[transform]``: MAGNITUDE and
    MAGERR are then the transformed ones, NOTES carry ``TRANS: Tv_bv=0.034 Tbv=1.020``, the
    coefficients used); MTYPE ``STD``, CNAME ``ENSEMBLE``, CMAG ``na`` (the frame's ensemble
    zero point); KNAME/KMAG the check star and its calibrated magnitude on the same frame
    (transformed when the target's is and the check star's is too); AIRMASS; GROUP a sequence
    number (a new group after a gap of more than ``group_gap_days`` days or when a star's
    filter repeats); NOTES
    ``VMAGINS`` (the target's instrumental magnitude), ``CMAGINS`` (the mean instrumental
    magnitude of the frame's ensemble stars), ``CREFMAG`` (CMAGINS plus the zero point: the
    ensemble's magnitude as calibrated), ``KMAGINS``, ``KREFMAG`` (the check star's catalog
    magnitude in the zero point's band) and ``ZPERR``, all in mag.

    Measurements with photometry flags, without a calibrated magnitude, with MAGERR >= 1 mag or
    in a filter without an AAVSO code are left out and counted by reason in the result's
    ``left_out``. With ``frame_ids``, only measurements on these frames are considered.

    With an AAVSO comparison ``sequence`` (:mod:`clinepipe.catalogs.vsp_sequence`), the
    magnitudes come from it instead (:mod:`clinepipe.products.sequence_photometry`: its stars
    found within ``match_radius`` arcsec, one the check star, the others the ensemble of each
    frame): CHART the chart id; CNAME ``ENSEMBLE`` (CMAG ``na``) or, with one comparison star,
    its AUID (label without one) and CMAG its instrumental magnitude; KNAME the check star's
    AUID, KMAG its calibrated magnitude with an ensemble, its instrumental one with a single
    comparison star (AAVSO: CMAG and KMAG are the instrumental magnitudes; an ensemble reports
    the check star's standard one); NOTES ``CREFMAG``/``KREFMAG`` the sequence magnitudes,
    ``KREFERR`` the check star's sequence error. TRANS is ``NO``; the ``check_star_id`` is not
    used.

    Returns
    -------
    Written
        the number of observation lines, with ``left_out``.

    Raises
    ------
    BadInput
        without an AAVSO observer code (``N/A`` and the like are none): no file is written.
    UsageError
        without stars, or when ``filter`` has no AAVSO code.
    ClinepipeError
        when no measurement is left to report (the reasons named), or a value cannot be
        written in the format (e.g. a star name longer than AAVSO's 30 characters).
    """
    obscode = check_obscode(obscode)
    if not star_ids:
        raise UsageError("an AAVSO report needs at least one star (--star).")
    if filter is not None:
        aavso_filter(filter)
        if sequence is not None:
            sequence_band(sequence, aavso_filter_code(filter), filter)
    if sequence is not None:
        check_star_id = None
    software = " ".join((software or f"clinepipe {__version__}").replace(",", " ")
                        .replace("#", " ").split())
    ids = sorted({int(s) for s in star_ids})
    m, f, z, s = (Measurement.__table__.c, Frame.__table__.c, ZeroPoint.__table__.c,
                  Star.__table__.c)
    t = TransformedMag.__table__.c
    stmt = (select(m.star_id, m.frame_id, m.jd_mid, m.mag, m.mag_err, m.filter, m.airmass,
                   f.airmass, z.error, z.value, z.catalog_band, m.inst_mag, m.flags,
                   t.mag, t.mag_err, t.coefficients, m.inst_mag_err)
            .select_from(Measurement.__table__.join(Frame.__table__, f.id == m.frame_id)
                         .outerjoin(ZeroPoint.__table__, z.frame_id == m.frame_id)
                         .outerjoin(TransformedMag.__table__, t.measurement_id == m.id))
            .where(m.star_id.in_(ids))
            .order_by(m.jd_mid, m.star_id, m.frame_id))
    if filter is not None:
        stmt = stmt.where(m.filter == filter)
    keep_frames = None if frame_ids is None else {int(i) for i in frame_ids}
    with engine.connect() as conn:
        labels = {sid: _star_label(sid, name, cat) for sid, name, cat in conn.execute(
            select(s.id, s.name, s.catalog_id).where(
                s.id.in_(ids + ([int(check_star_id)] if check_star_id is not None else []))))}
        rows = [r for r in conn.execute(stmt).all()
                if keep_frames is None or r.frame_id in keep_frames]
        check, check_mags = _check_star(conn, check_star_id)
        ensemble = _ensemble_inst(conn, {r.frame_id for r in rows})
        seq = None if sequence is None else sequence_photometry(
            conn, sequence, ids, {r.frame_id: r.filter for r in rows if not r.flags},
            _median_mags(rows), radius_arcsec=match_radius)
    kname = (labels.get(int(check_star_id), f"clinepipe-{check_star_id}")
             if check_star_id is not None else None)
    left_out: Counter = Counter()
    observations = []
    group, last_jd, in_group = 0, None, set()
    for (sid, frame_id, jd, mag, mag_err, filt, m_air, f_air, zp_err, zp, band, inst,
         flags, t_mag, t_err, t_coefficients, inst_err) in rows:
        trans = t_mag is not None and t_err is not None
        if flags:
            left_out[_flag_reason(flags)] += 1
            continue
        if seq is not None:
            try:
                aavso_filter_code(filt)
            except BadInput:
                left_out[f"in filter {filt!r}, which has no AAVSO code"] += 1
                continue
            comp = seq.frames.get(frame_id)
            if comp is None or inst is None or not math.isfinite(inst):
                left_out[seq.reasons.get(frame_id, "without an instrumental magnitude")] += 1
                continue
            err = math.hypot(inst_err if finite_or_none(inst_err) is not None else 0.0,
                             comp.zp_err)
            if round(err, 3) >= 1.0:
                left_out["with MAGERR >= 1 mag (AAVSO takes errors below 1 mag)"] += 1
                continue
            if last_jd is None or jd - last_jd > group_gap_days or (sid, filt) in in_group:
                group, in_group = group + 1, set()
            in_group.add((sid, filt))
            last_jd = jd
            observations.append(_sequence_row(
                comp, starid=labels.get(sid, f"clinepipe-{sid}"), date=jd, inst=inst, err=err,
                filt=filt, airmass=finite_or_none(m_air if m_air is not None else f_air),
                group=group if group <= 99999 else None, chart=seq.chart))
            continue
        if mag is None or not math.isfinite(mag):
            left_out["without a calibrated magnitude (no zero point on their frame)"] += 1
            continue
        if band == RELATIVE_BAND:
            # on the night's own scale (no catalog): not a standard magnitude AAVSO could use
            left_out["on a relative scale (no catalog calibrated their frame)"] += 1
            continue
        try:
            aavso_filter_code(filt)
        except BadInput:
            left_out[f"in filter {filt!r}, which has no AAVSO code"] += 1
            continue
        if trans:  # on the standard system: these are the magnitude and error to report
            mag, mag_err = t_mag, t_err
        if mag_err is not None and math.isfinite(mag_err) and round(mag_err, 3) >= 1.0:
            left_out["with MAGERR >= 1 mag (AAVSO takes errors below 1 mag)"] += 1
            continue
        if last_jd is None or jd - last_jd > group_gap_days or (sid, filt) in in_group:
            group, in_group = group + 1, set()
        in_group.add((sid, filt))
        last_jd = jd
        kmag, kinst, ktrans = check.get(frame_id, (None, None, None))
        if trans and ktrans is not None:
            kmag = ktrans
        cinst = ensemble.get(frame_id)
        notes = [f"ZPERR={zp_err:.3f}"] if finite_or_none(zp_err) is not None else []
        if trans:
            notes.append(f"TRANS: {t_coefficients}")
        observations.append(ExtendedRow(
            starid=labels.get(sid, f"clinepipe-{sid}"), date=jd, magnitude=mag,
            magerr=finite_or_none(mag_err), filter=filt, trans=trans, mtype="STD", cname=ENSEMBLE,
            kname=kname, kmag=finite_or_none(kmag), airmass=finite_or_none(m_air if m_air is not None
                                                              else f_air),
            group=group if group <= 99999 else None,
            notes="|".join(notes) or None,
            vmagins=finite_or_none(inst), cmagins=cinst,
            crefmag=(cinst + zp) if cinst is not None and finite_or_none(zp) is not None else None,
            kmagins=finite_or_none(kinst), krefmag=(_band_mag(check_mags, band)
                                             if kmag is not None else None)))
    if not observations:
        why = (f"all {sum(left_out.values())} measurement(s) were left out: "
               f"{describe_left_out(left_out)}" if left_out
               else "there are no measurements" + (f" in filter {filter}" if filter else ""))
        raise ClinepipeError(f"{out}: no AAVSO observations to write, {why}; nothing written.",
                             reason="no AAVSO observations")
    try:
        text = format_extended(ExtendedHeader(obscode, software), observations)
    except ValueError as exc:
        raise ClinepipeError(f"{out}: not written, {exc}", reason="AAVSO format") from exc
    atomic_write_text(out, text)
    return Written(len(observations), dict(left_out))
