"""``clinepipe export``: measurements out of the database as CSV, AAVSO extended format, the
2018 ``sources.csv`` columns, or VOTable.

Every exporter takes an engine and an output path, writes the file atomically (a temporary file
in the same folder, then ``os.replace``: a reader never sees half a file, a failed export leaves
any older file untouched) and returns the number of data rows written. ``star_ids=None`` means
every star; ``filter`` restricts to one filter name as stored (the FITS ``FILTER`` value).
Row order is deterministic, so the same database always gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine, select

from clinepipe import __version__
from clinepipe.errors import UsageError
from clinepipe.store.db import LIGHTCURVE_COLUMNS, measurement_select, several_telescopes
from clinepipe.store.models import CatalogMatch, Frame, Measurement, Star, ZeroPoint

__all__ = ["CSV_COLUMNS", "AAVSO_FIELDS", "AAVSO_FILTERS", "SOURCES_CSV_COLUMNS",
           "VOTABLE_UNITS", "export_csv", "export_aavso", "export_sources_csv",
           "export_votable", "aavso_filter", "jd_to_iso"]

#: ``export --format csv`` columns (INTERFACE.md), the same as :func:`..db.lightcurve` rows
CSV_COLUMNS = LIGHTCURVE_COLUMNS

#: rows fetched per round trip while streaming (memory stays bounded for millions of rows)
CHUNK_ROWS = 20_000

#: the 15 data fields of the AAVSO Extended File Format, in order
AAVSO_FIELDS = ("STARID", "DATE", "MAGNITUDE", "MAGERR", "FILTER", "TRANS", "MTYPE", "CNAME",
                "CMAG", "KNAME", "KMAG", "AMASS", "GROUP", "CHART", "NOTES")

#: our FILTER header values (compared case-insensitively) → AAVSO band codes. Johnson U B V,
#: Cousins R I (AAVSO "R" and "I" are Cousins Rc, Ic), Sloan (SU SG SR SI SZ), the RGB set of a
#: colour/tricolour filter wheel (TR TG TB), a luminance/clear filter calibrated on V (CV),
#: H-alpha (HA). Anything else is refused rather than guessed.
AAVSO_FILTERS = {
    "u": "U", "b": "B", "v": "V", "r": "R", "i": "I",
    "rc": "R", "ic": "I", "cousins r": "R", "cousins i": "I",
    "johnson u": "U", "johnson b": "B", "johnson v": "V",
    "rj": "RJ", "ij": "IJ", "j": "J", "h": "H", "k": "K",
    "su": "SU", "sg": "SG", "sr": "SR", "si": "SI", "sz": "SZ",
    "u'": "SU", "g'": "SG", "r'": "SR", "i'": "SI", "z'": "SZ",
    "sloan u": "SU", "sloan g": "SG", "sloan r": "SR", "sloan i": "SI", "sloan z": "SZ",
    "red": "TR", "green": "TG", "blue": "TB", "tr": "TR", "tg": "TG", "tb": "TB",
    "lum": "CV", "luminance": "CV", "l": "CV", "clear": "CV", "c": "CV", "cv": "CV",
    "halpha": "HA", "h-alpha": "HA", "ha": "HA",
}

#: the 2018 ``sources.csv`` columns, written with this header row
SOURCES_CSV_COLUMNS = ("id", "RA_C", "DEC_C", "RA_M", "DEC_M", "DIF", "MAG_R", "MAG_V", "MAG_B",
                       "MAG_err", "CMAG_R", "CMAG_V", "CMAG_B", "DATETIME", "IMGNAME")

#: catalog band names (keys of ``catalog_matches.mags``) read for MAG_R / MAG_V / MAG_B, in order
#: of preference (APASS r' stands in for R, as in 2018)
SOURCES_CSV_BANDS = {"R": ("R", "Rc", "r", "rmag", "Rmag", "r'", "SR"),
                     "V": ("V", "Vmag", "v"), "B": ("B", "Bmag", "b")}

#: units of the VOTable columns
VOTABLE_UNITS = {"ra": "deg", "dec": "deg", "jd_mid": "d", "bjd_tdb": "d", "mag": "mag",
                 "mag_err": "mag", "inst_mag": "mag", "inst_mag_err": "mag",
                 "zero_point": "mag", "exptime": "s"}

_VOTABLE_DESCRIPTIONS = {
    "star_id": "clinepipe star identifier",
    "ra": "Right ascension (ICRS) measured on the frame",
    "dec": "Declination (ICRS) measured on the frame",
    "filter": "Filter (FITS FILTER keyword)",
    "jd_mid": "Julian date (UTC) at mid-exposure",
    "bjd_tdb": "Barycentric Julian date (TDB) at mid-exposure",
    "mag": "Calibrated magnitude (ensemble zero point)",
    "mag_err": "1-sigma error of mag",
    "inst_mag": "Instrumental magnitude -2.5 log10(flux / EXPTIME)",
    "inst_mag_err": "1-sigma error of inst_mag",
    "zero_point": "Frame zero point: mag = inst_mag + zero_point",
    "airmass": "Airmass",
    "exptime": "Exposure time",
    "frame": "Raw frame path relative to the incoming folder",
    "flags": "Photometry flags: 1 saturated, 2 edge, 4 masked pixel, 8 blended, 16 no flux",
    "telescope": "Telescope of the frame (config [site] telescope)",
}

_VOTABLE_UCDS = {"star_id": "meta.id;meta.main", "ra": "pos.eq.ra;meta.main",
                 "dec": "pos.eq.dec;meta.main", "filter": "instr.filter",
                 "jd_mid": "time.epoch", "bjd_tdb": "time.epoch", "mag": "phot.mag",
                 "mag_err": "stat.error;phot.mag", "inst_mag": "phot.mag",
                 "inst_mag_err": "stat.error;phot.mag", "zero_point": "phot.calib",
                 "airmass": "obs.airMass", "exptime": "time.duration;obs.exposure",
                 "frame": "meta.file", "flags": "meta.code.qual", "telescope": "instr.tel"}


# ----------------------------------------------------------------------------- helpers

@contextmanager
def _atomic_file(out: str | os.PathLike, newline: str = "", *, binary: bool = False):
    """A file handle (text, or bytes with ``binary``) whose content replaces ``out`` only when
    the block succeeds."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    mode = {"mode": "wb"} if binary else {"mode": "w", "encoding": "utf-8", "newline": newline}
    try:
        with os.fdopen(fd, **mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        with _suppress():
            os.unlink(tmp)
        raise


@contextmanager
def _suppress():
    try:
        yield
    except OSError:
        pass


def _stream(engine: Engine, stmt):
    """Yield the rows of ``stmt`` in chunks of :data:`CHUNK_ROWS` (server-side cursor on
    PostgreSQL, an incremental cursor on SQLite)."""
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=CHUNK_ROWS).execute(stmt)
        for part in result.partitions():
            yield from part


def _num(value) -> str:
    """A float as the shortest text that reads back to the same double; '' for NULL/NaN."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def jd_to_iso(jd: float) -> str:
    """UTC Julian date → ``YYYY-MM-DDTHH:MM:SS.sss`` (milliseconds; UTC, no leap seconds)."""
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(days=jd - 2440587.5)
    moment = moment + timedelta(microseconds=500)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _star_label(star_id: int, name: str | None, catalog_id: str | None) -> str:
    for value in (name, catalog_id):
        if value is not None and str(value).strip():
            return str(value).strip()
    return f"clinepipe-{star_id}"


def _clean_field(value: str, delim: str, limit: int) -> str:
    """An AAVSO field: no delimiter, no '#', no line breaks, at most ``limit`` characters."""
    text_ = " ".join(str(value).replace(delim, " ").replace("#", " ").split())
    return text_[:limit] if text_ else "na"


def aavso_filter(name: str | None) -> str:
    """The AAVSO band code of one of our filter names; :class:`UsageError` when there is none."""
    code = AAVSO_FILTERS.get((name or "").strip().lower())
    if code is None:
        raise UsageError(f"filter '{name}' has no AAVSO band code (known: B, V, R, I, U, Rc, Ic, "
                         f"Sloan u' g' r' i' z', Red, Green, Blue, Lum, Clear, Halpha), so it "
                         f"cannot go into an AAVSO report; choose another --filter.",
                         reason="no AAVSO filter code")
    return code


# ----------------------------------------------------------------------------- CSV

def export_csv(engine: Engine, out: str | os.PathLike, star_ids: Iterable[int] | None = None,
               filter: str | None = None) -> int:
    """Write ``out`` with the :data:`CSV_COLUMNS` header and one row per star per frame (the
    ``(frame, star)`` uniqueness of ``measurements`` means no duplicates), sorted by
    (star_id, jd_mid). ``frame`` is the raw file's path relative to ``incoming``; floats are
    written in full precision; NULL is an empty field. Streams in chunks."""
    multi = several_telescopes(engine)
    stmt = measurement_select(star_ids, filter, order="star", telescope=multi)
    n = 0
    with _atomic_file(out) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(CSV_COLUMNS + (("telescope",) if multi else ()))
        for row in _stream(engine, stmt):
            w.writerow([_num(v) for v in row])
            n += 1
    return n


# ----------------------------------------------------------------------------- AAVSO

def export_aavso(engine: Engine, out: str | os.PathLike, *, obscode: str,
                 star_ids: Sequence[int], filter: str | None = None,
                 check_star_id: int | None = None, software: str | None = None,
                 group_gap_days: float = 1.0 / 24, frame_ids: Iterable[int] | None = None) -> int:
    """AAVSO Extended File Format report of the calibrated measurements of ``star_ids``.

    Header: ``#TYPE=EXTENDED``, ``#OBSCODE=``, ``#SOFTWARE=``, ``#DELIM=,``, ``#DATE=JD``,
    ``#OBSTYPE=CCD``; then one line per observation with the 15 :data:`AAVSO_FIELDS`:

    * STARID the star's known-variable (VSX) name, else its catalog id, else ``clinepipe-<id>``;
    * DATE ``jd_mid`` (UTC JD at mid-exposure, 5 decimals); MAGNITUDE, MAGERR (3 decimals,
      ``na`` without an error); FILTER the AAVSO code (:data:`AAVSO_FILTERS`; a filter without
      one raises :class:`UsageError` before anything is written);
    * TRANS ``NO``, MTYPE ``STD``, CNAME ``ENSEMBLE``, CMAG ``na`` (ensemble zero point);
    * KNAME/KMAG: the check star ``check_star_id``'s label and its calibrated magnitude measured
      on the same frame (``na`` when not given or not measured there);
    * AMASS airmass (3 decimals, ``na`` if unknown); GROUP a sequence number: observations are
      numbered in JD order and a new group starts after a gap of more than ``group_gap_days``
      or when the star's filter repeats (so the B, V, R frames of one sequence share a group,
      and alternating V, R, V, R… frames make groups of one V and one R); CHART ``na``;
    * NOTES ``<software>|ZPERR=<zero point error>`` (fields never contain the delimiter).

    Only measurements with a calibrated magnitude and no photometry flags are reported, ordered
    by JD (then star id); with ``frame_ids``, only those on these frames (e.g. one night's good
    frames). Returns the number of observation lines.
    """
    delim = ","
    if not star_ids:
        raise UsageError("an AAVSO report needs at least one star (--star).")
    obscode = (obscode or "").strip()
    if not obscode or any(c in obscode for c in (delim, "#", "\n", "\r")):
        raise UsageError(f"AAVSO observer code {obscode!r} is empty or contains ',' or '#'; set "
                         f"[aavso] obscode in the configuration.", reason="bad obscode")
    software = software or f"clinepipe {__version__}"
    if filter is not None:
        aavso_filter(filter)
    ids = sorted({int(s) for s in star_ids})
    m, f, z, s = (Measurement.__table__.c, Frame.__table__.c, ZeroPoint.__table__.c,
                  Star.__table__.c)
    stmt = (select(m.star_id, m.frame_id, m.jd_mid, m.mag, m.mag_err, m.filter,
                   m.airmass, f.airmass, z.error)
            .select_from(Measurement.__table__.join(Frame.__table__, f.id == m.frame_id)
                         .outerjoin(ZeroPoint.__table__, z.frame_id == m.frame_id))
            .where(m.star_id.in_(ids), m.mag.is_not(None), m.flags == 0)
            .order_by(m.jd_mid, m.star_id, m.frame_id))
    if filter is not None:
        stmt = stmt.where(m.filter == filter)
    with engine.connect() as conn:
        labels = {sid: _star_label(sid, name, cat) for sid, name, cat in conn.execute(
            select(s.id, s.name, s.catalog_id).where(s.id.in_(ids + ([check_star_id]
                                                                      if check_star_id else []))))}
        rows = conn.execute(stmt).all()
        if frame_ids is not None:
            keep = {int(i) for i in frame_ids}
            rows = [r for r in rows if r[1] in keep]
        check = {}
        if check_star_id is not None:
            check = dict(conn.execute(select(m.frame_id, m.mag).where(
                m.star_id == int(check_star_id), m.mag.is_not(None))).all())
    codes = {}
    for row in rows:
        if row[5] not in codes:
            codes[row[5]] = aavso_filter(row[5])
    kname = (_clean_field(labels.get(int(check_star_id), f"clinepipe-{check_star_id}"), delim, 20)
             if check_star_id is not None else "na")
    n = 0
    group = 0
    last_jd = None
    in_group: set = set()
    with _atomic_file(out) as fh:
        for line in ("#TYPE=EXTENDED", f"#OBSCODE={obscode}",
                     f"#SOFTWARE={_clean_field(software, delim, 255)}", f"#DELIM={delim}",
                     "#DATE=JD", "#OBSTYPE=CCD"):
            fh.write(line + "\n")
        for sid, frame_id, jd, mag, mag_err, filt, m_air, f_air, zp_err in rows:
            if last_jd is None or jd - last_jd > group_gap_days or (sid, filt) in in_group:
                group += 1
                in_group = set()
            in_group.add((sid, filt))
            last_jd = jd
            airmass = m_air if m_air is not None else f_air
            kmag = check.get(frame_id) if check_star_id is not None else None
            notes = software + (f"|ZPERR={zp_err:.3f}" if zp_err is not None else "")
            fields = (
                _clean_field(labels.get(sid, f"clinepipe-{sid}"), delim, 30),
                f"{jd:.5f}",
                f"{mag:.3f}",
                f"{mag_err:.3f}" if mag_err is not None and math.isfinite(mag_err) else "na",
                codes[filt],
                "NO",
                "STD",
                "ENSEMBLE",
                "na",
                kname,
                f"{kmag:.3f}" if kmag is not None and math.isfinite(kmag) else "na",
                f"{airmass:.3f}" if airmass is not None and math.isfinite(airmass) else "na",
                str(group) if group <= 99999 else "na",
                "na",
                _clean_field(notes, delim, 100),
            )
            fh.write(delim.join(fields) + "\n")
            n += 1
    return n


# ----------------------------------------------------------------------------- sources.csv

def _angular_sep_arcsec(ra1, dec1, ra2, dec2) -> float | None:
    if None in (ra1, dec1, ra2, dec2):
        return None
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = (math.sin((d2 - d1) / 2) ** 2
         + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2)
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h)))) * 3600.0


def _catalog_mag(mags: dict, band: str):
    for key in SOURCES_CSV_BANDS[band]:
        value = mags.get(key)
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return None


def export_sources_csv(engine: Engine, out: str | os.PathLike,
                       star_ids: Iterable[int] | None = None, filter: str | None = None) -> int:
    """The 2018 ``sources.csv`` layout, with a header row (the 2018 file had none):
    ``id,RA_C,DEC_C,RA_M,DEC_M,DIF,MAG_R,MAG_V,MAG_B,MAG_err,CMAG_R,CMAG_V,CMAG_B,DATETIME,IMGNAME``.

    One row per measurement on a frame whose filter is R, V or B (the only calibrated columns
    the format has; other filters are left out, and ``filter`` must be one of these three):

    * ``id``: the star's reference-catalog id (its catalog match; of several, the closest),
      else ``stars.catalog_id``, else ``clinepipe-<star_id>``;
    * ``RA_C``, ``DEC_C``: that catalog position (deg; empty without a match);
    * ``RA_M``, ``DEC_M``: the position measured on this frame (deg);
    * ``DIF``: the separation between the two, in arcseconds, computed for this frame;
    * ``MAG_R``, ``MAG_V``, ``MAG_B``: catalog magnitudes from ``catalog_matches.mags``
      (R falls back on r'/rmag as the 2018 code compared R with APASS r);
    * ``MAG_err``: the 1-sigma error of our calibrated magnitude (``measurements.mag_err``);
    * ``CMAG_<F>``: our calibrated magnitude in the column of the frame's filter F, the other two
      empty (all empty if the frame has no zero point);
    * ``DATETIME``: UTC mid-exposure, ISO 8601 with milliseconds (from ``jd_mid``);
    * ``IMGNAME``: the raw file's name (last part of ``frames.raw_path``).

    Rows sorted by (star, time). :func:`clinepipe.store.legacy.import_sources_csv` reads this
    file back (it skips the header). Returns the number of rows.
    """
    bands = ("R", "V", "B")
    if filter is not None and filter not in bands:
        raise UsageError(f"the sources-csv format has columns only for R, V and B, not for "
                         f"filter '{filter}'.", reason="filter not in sources-csv")
    wanted = [filter] if filter is not None else list(bands)
    m, f, s, c = (Measurement.__table__.c, Frame.__table__.c, Star.__table__.c,
                  CatalogMatch.__table__.c)
    with engine.connect() as conn:
        matches: dict[int, tuple] = {}
        for star_id, cat_id, ra, dec, sep, mags, catalog in conn.execute(
                select(c.star_id, c.catalog_id, c.ra, c.dec, c.separation, c.mags, c.catalog)
                .order_by(c.star_id, c.separation, c.catalog)):
            if star_id not in matches:
                try:
                    parsed = json.loads(mags) if mags else {}
                except ValueError:
                    parsed = {}
                matches[star_id] = (cat_id, ra, dec, parsed if isinstance(parsed, dict) else {})
        star_cat = dict(conn.execute(select(s.id, s.catalog_id)).all())
    stmt = (select(m.star_id, m.ra, m.dec, m.mag, m.mag_err, m.filter, m.jd_mid, f.raw_path)
            .select_from(Measurement.__table__.join(Frame.__table__, f.id == m.frame_id))
            .where(m.filter.in_(wanted))
            .order_by(m.star_id, m.jd_mid, m.frame_id))
    if star_ids is not None:
        stmt = stmt.where(m.star_id.in_(sorted({int(x) for x in star_ids})))
    n = 0
    with _atomic_file(out) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(SOURCES_CSV_COLUMNS)
        for star_id, ra_m, dec_m, mag, mag_err, filt, jd, raw_path in _stream(engine, stmt):
            match = matches.get(star_id)
            if match is not None:
                ident, ra_c, dec_c, mags = match
            else:
                ident, ra_c, dec_c, mags = star_cat.get(star_id), None, None, {}
            ident = ident if ident else f"clinepipe-{star_id}"
            cmag = {b: (mag if filt == b else None) for b in bands}
            w.writerow([
                ident, _num(ra_c), _num(dec_c), _num(ra_m), _num(dec_m),
                _num(_angular_sep_arcsec(ra_c, dec_c, ra_m, dec_m)),
                _num(_catalog_mag(mags, "R")), _num(_catalog_mag(mags, "V")),
                _num(_catalog_mag(mags, "B")), _num(mag_err),
                _num(cmag["R"]), _num(cmag["V"]), _num(cmag["B"]),
                jd_to_iso(jd), raw_path.replace("\\", "/").rsplit("/", 1)[-1],
            ])
            n += 1
    return n


# ----------------------------------------------------------------------------- VOTable

def export_votable(engine: Engine, out: str | os.PathLike, star_ids: Iterable[int] | None = None,
                   filter: str | None = None) -> int:
    """The :data:`CSV_COLUMNS` as a VOTable (astropy), with units (:data:`VOTABLE_UNITS`),
    descriptions and UCDs; NULLs are masked values. Same rows and order as :func:`export_csv`.
    The table is built in memory (astropy writes a whole table at once)."""
    import numpy as np
    from astropy.table import MaskedColumn, Table

    multi = several_telescopes(engine)
    names = CSV_COLUMNS + (("telescope",) if multi else ())
    columns: dict[str, list] = {name: [] for name in names}
    stmt = measurement_select(star_ids, filter, order="star", telescope=multi)
    for row in _stream(engine, stmt):
        for name, value in zip(names, row):
            columns[name].append(value)
    table = Table(meta={"name": "clinepipe_measurements",
                        "description": f"clinepipe {__version__} export"})
    text_cols = ("filter", "frame", "telescope")
    for name in names:
        values = columns[name]
        if name in ("star_id", "flags"):
            col = MaskedColumn(np.array(values, dtype=np.int64), name=name,
                               mask=np.zeros(len(values), bool))
        elif name in text_cols:
            col = MaskedColumn(np.array(["" if v is None else str(v) for v in values], dtype=str),
                               name=name, mask=[v is None for v in values])
        else:
            arr = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            col = MaskedColumn(arr, name=name, mask=~np.isfinite(arr))
        col.unit = VOTABLE_UNITS.get(name)
        col.description = _VOTABLE_DESCRIPTIONS.get(name)
        table[name] = col
    from astropy.io.votable import from_table

    votable = from_table(table)
    for field in votable.get_first_table().fields:
        field.ucd = _VOTABLE_UCDS.get(field.name)
    buf = io.BytesIO()
    votable.to_xml(buf)
    with _atomic_file(out, binary=True) as fh:
        fh.write(buf.getvalue())
    return len(table)
