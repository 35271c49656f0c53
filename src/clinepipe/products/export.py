"""``clinepipe export``: measurements out of the database as CSV, AAVSO extended format, the
2018 ``sources.csv`` columns, or VOTable.

Every exporter takes an engine and an output path and writes the file through
:func:`clinepipe.atomic_files.atomic_open` (atomically: a reader never sees half a file, a failed
export leaves any older file untouched; ``-`` is standard output, a device or FIFO is written in
place, a symlink written through). It returns a :class:`Written`: the number of data rows
written, with ``left_out`` counting the selected measurements it did not write, by reason. ``star_ids=None`` means
every star; ``filter`` restricts to one filter name as stored (the FITS ``FILTER`` value).
Row order is deterministic, so the same database always gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, select

from clinepipe import __version__
from clinepipe.atomic_files import atomic_open
from clinepipe.catalogs.match import separation_arcsec
from clinepipe.errors import UsageError
from clinepipe.products.aavso_export import (
    Written,
    aavso_filter,
    describe_left_out,
    export_aavso,
)
from clinepipe.store.measurement_rows import (
    LIGHTCURVE_COLUMNS,
    measurement_select,
    several_telescopes,
)
from clinepipe.store.models import CatalogMatch, Frame, Measurement, Star

__all__ = ["CSV_COLUMNS", "AAVSO_FIELDS", "SOURCES_CSV_COLUMNS", "VOTABLE_UNITS", "Written",
           "export_csv", "export_aavso", "export_sources_csv", "export_votable", "aavso_filter",
           "describe_left_out", "jd_to_iso"]

#: ``export --format csv`` columns, the same as :func:`..db.lightcurve` rows
CSV_COLUMNS = LIGHTCURVE_COLUMNS

#: rows fetched per round trip while streaming (memory stays bounded for millions of rows)
CHUNK_ROWS = 20_000

#: the 15 data fields of the AAVSO Extended File Format, in order
AAVSO_FIELDS = ("STARID", "DATE", "MAGNITUDE", "MAGERR", "FILTER", "TRANS", "MTYPE", "CNAME",
                "CMAG", "KNAME", "KMAG", "AMASS", "GROUP", "CHART", "NOTES")

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
    with atomic_open(out, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(CSV_COLUMNS + (("telescope",) if multi else ()))
        for row in _stream(engine, stmt):
            w.writerow([_num(v) for v in row])
            n += 1
    return Written(n)


# ----------------------------------------------------------------------------- sources.csv


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
    with atomic_open(out, "w", newline="") as fh:
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
                _num(None if None in (ra_c, dec_c, ra_m, dec_m)
                     else float(separation_arcsec(ra_c, dec_c, ra_m, dec_m))),
                _num(_catalog_mag(mags, "R")), _num(_catalog_mag(mags, "V")),
                _num(_catalog_mag(mags, "B")), _num(mag_err),
                _num(cmag["R"]), _num(cmag["V"]), _num(cmag["B"]),
                jd_to_iso(jd), raw_path.replace("\\", "/").rsplit("/", 1)[-1],
            ])
            n += 1
    return Written(n, _other_filters(engine, star_ids, bands) if filter is None else {})


def _other_filters(engine: Engine, star_ids, bands) -> dict[str, int]:
    """{reason: measurements} of the stars' measurements in filters other than ``bands``."""
    from sqlalchemy import func

    m = Measurement.__table__.c
    stmt = (select(m.filter, func.count()).where(m.filter.not_in(bands))
            .group_by(m.filter).order_by(m.filter))
    if star_ids is not None:
        stmt = stmt.where(m.star_id.in_(sorted({int(x) for x in star_ids})))
    with engine.connect() as conn:
        return {f"in filter {filt!r} (the format has columns for R, V and B only)": n
                for filt, n in conn.execute(stmt)}


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
    with atomic_open(out, "wb") as fh:
        fh.write(buf.getvalue())
    return Written(len(table))
