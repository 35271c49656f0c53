"""``clinepipe import-sources-csv``: bring the 2018 system's ``sources.csv`` into the database.

The 2018 file has no header row, mixes CR, LF and CRLF line endings (it was appended to from
several machines), repeats rows (every rerun appended again) and may hold blank or broken lines.
Its 15 columns are ``id, RA_C, DEC_C, RA_M, DEC_M, DIF, MAG_R, MAG_V, MAG_B, MAG_err, CMAG_R,
CMAG_V, CMAG_B, DATETIME, IMGNAME`` (C = catalog, M = measured, CMAG = calibrated).

What the import makes of it (all in one transaction: an import either happens whole or not):

* a **frame** per IMGNAME: ``raw_path = "legacy/<IMGNAME>"``, ``kind='light'``,
  ``state='calibrated'``, ``jd_mid`` and ``date_obs`` from DATETIME (read as UTC; the 2018
  value is kept as it is, since without EXPTIME it cannot be moved to mid-exposure), ``night``
  the local noon-to-noon night at ``longitude``. The frame's **filter** is the CMAG column that
  its rows fill (R, V or B); when rows disagree, the column filled alone most often wins;
* a **star** per catalog id ``id``: an existing star with that ``catalog_id``, else the nearest
  star within ``match_radius_arcsec`` of the catalog position (measured position when the row
  has no catalog position) not already tied to another 2018 id, else a new star at that
  position. Rows without an id are matched by position the same way. The 2018 catalog data
  (id, RA_C/DEC_C, MAG_R/V/B) become a ``catalog_matches`` row with catalog ``legacy-2018``;
* a **measurement** per row: ``mag`` = the CMAG value of the frame's filter, ``mag_err`` =
  MAG_err, ``ra``/``dec`` = RA_M/DEC_M; no pixel position or flux (those columns stay NULL);
* a **run** row recording the import (software version, host, the counts as JSON summary).

Idempotent: a (frame, star) pair already in the database, or seen earlier in the file, is a
duplicate and is skipped, so importing the same file twice adds nothing the second time. Lines
that cannot be used (wrong number of fields, unparsable numbers or date, no position, no way to
tell the filter, a CMAG in a column that contradicts the frame's filter) are counted in
``bad_lines`` and skipped; blank lines and a header row (as written by
``export --format sources-csv``) are ignored. ``rows_read == rows_imported +
duplicates_skipped + bad_lines``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import socket
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from astropy.time import Time
from sqlalchemy import Engine, func, select, update

from clinepipe import __version__
from clinepipe.catalogs.match import separation_arcsec
from clinepipe.config import SiteConfig
from clinepipe.ingest.classify import observing_night
from clinepipe.store.db import session_scope
from clinepipe.store.measurement_rows import insert_measurements
from clinepipe.store.models import CatalogMatch, Frame, Measurement, Run, Star

__all__ = ["ImportSummary", "import_sources_csv", "LEGACY_CATALOG", "LEGACY_PREFIX"]

#: ``catalog_matches.catalog`` of the 2018 catalog data (UCAC4 ids, APASS magnitudes)
LEGACY_CATALOG = "legacy-2018"
#: ``frames.raw_path`` prefix of imported frames
LEGACY_PREFIX = "legacy/"

_BANDS = ("R", "V", "B")
_NULLS = {"", "nan", "none", "null", "na", "n/a", "--", "-"}
_LINE_SPLIT = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class ImportSummary:
    """Counts of one import; ``rows_read = rows_imported + duplicates_skipped + bad_lines``."""

    rows_read: int
    rows_imported: int
    duplicates_skipped: int
    bad_lines: int
    blank_lines: int = 0
    frames_created: int = 0
    stars_created: int = 0
    run_id: int | None = None


@dataclass
class _Row:
    line: int
    cat_id: str | None
    ra_c: float | None
    dec_c: float | None
    ra_m: float | None
    dec_m: float | None
    mags: dict
    mag_err: float | None
    cmags: dict
    when: datetime
    imgname: str


class _Bad(ValueError):
    pass


def _float(text: str) -> float | None:
    t = text.strip()
    if t.lower() in _NULLS:
        return None
    try:
        value = float(t)
    except ValueError as exc:
        raise _Bad(f"not a number: {t!r}") from exc
    return value if math.isfinite(value) else None


_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S.%f",
                 "%Y/%m/%d %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%d.%m.%Y %H:%M:%S", "%Y%m%dT%H%M%S")


def _datetime(text: str) -> datetime:
    """A UTC datetime from ISO 8601 (with or without 'T', fraction, 'Z' or offset), a few
    other common layouts, or a bare Julian date."""
    t = text.strip()
    if not t:
        raise _Bad("no DATETIME")
    try:
        jd = float(t)
    except ValueError:
        jd = None
    if jd is not None:
        if 2_300_000 < jd < 2_600_000:
            return _jd_to_datetime(jd)
        raise _Bad(f"DATETIME {t!r} is not a date")
    value = None
    try:
        value = datetime.fromisoformat(t)
    except ValueError:
        for fmt in _DATE_FORMATS:
            try:
                value = datetime.strptime(t, fmt)
                break
            except ValueError:
                continue
    if value is None:
        raise _Bad(f"DATETIME {t!r} is not a date")
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    if not 1990 <= value.year <= 2100:
        raise _Bad(f"DATETIME {t!r} is out of range")
    return value


_EPOCH = datetime(1970, 1, 1)


def _jd(value: datetime) -> float:
    return (value - _EPOCH).total_seconds() / 86400.0 + 2440587.5


def _jd_to_datetime(jd: float) -> datetime:
    return _EPOCH + timedelta(days=jd - 2440587.5)


def _night(value: datetime, longitude: float) -> str:
    """The observing night of a UTC time: the one rule of :func:`observing_night`."""
    return observing_night(Time(value, scale="utc").jd, longitude)


def _parse(fields: list[str], line: int) -> _Row:
    if len(fields) > 15 and all(not f.strip() for f in fields[15:]):
        fields = fields[:15]  # trailing delimiters
    if len(fields) == 16 and fields[0].strip().isdigit():
        fields = fields[1:]  # a leading row index (pandas to_csv without index=False)
    if len(fields) != 15:
        raise _Bad(f"{len(fields)} fields instead of 15")
    cat_id = fields[0].strip()
    cat_id = None if cat_id.lower() in _NULLS else cat_id[:64]
    ra_c, dec_c, ra_m, dec_m = (_float(x) for x in fields[1:5])
    mags = {b: _float(x) for b, x in zip(_BANDS, fields[6:9])}
    mag_err = _float(fields[9])
    cmags = {b: _float(x) for b, x in zip(_BANDS, fields[10:13])}
    when = _datetime(fields[13])
    imgname = fields[14].strip().replace("\\", "/")
    if not imgname:
        raise _Bad("no IMGNAME")
    if len(LEGACY_PREFIX + imgname) > 1024:
        raise _Bad("IMGNAME too long")
    for ra, dec in ((ra_c, dec_c), (ra_m, dec_m)):
        if (ra is None) != (dec is None):
            raise _Bad("half a position")
        if ra is not None and not (0.0 <= ra <= 360.0 and -90.0 <= dec <= 90.0):
            raise _Bad("position out of range")
    if ra_m is None and ra_c is None:
        raise _Bad("no position")
    if mag_err is not None and mag_err < 0:
        raise _Bad("negative MAG_err")
    return _Row(line, cat_id, ra_c, dec_c, ra_m, dec_m, mags, mag_err, cmags, when, imgname)


def _read_lines(path: Path):
    """(line number, fields) of every non-blank line; (line number, None) for blank ones."""
    data = path.read_bytes()
    try:
        text_ = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text_ = data.decode("latin-1")
    lines = _LINE_SPLIT.split(text_)
    if lines and lines[-1] == "":
        lines.pop()  # the final line ending
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.strip().strip(",").strip() == "":
            yield number, None
            continue
        try:
            fields = next(csv.reader([line], skipinitialspace=True))
        except csv.Error:
            fields = []
        yield number, fields


class _SkyIndex:
    """Nearest neighbour on the sphere within a fixed radius: a 3-D grid of unit vectors
    (no RA wrap-around or pole trouble)."""

    def __init__(self, radius_arcsec: float):
        self.chord = 2 * math.sin(math.radians(radius_arcsec / 3600.0) / 2)
        self.cells: dict[tuple, list] = defaultdict(list)

    @staticmethod
    def _vec(ra: float, dec: float):
        r, d = math.radians(ra), math.radians(dec)
        return math.cos(d) * math.cos(r), math.cos(d) * math.sin(r), math.sin(d)

    def _cell(self, v):
        return tuple(int(math.floor(c / self.chord)) for c in v)

    def add(self, key, ra: float, dec: float) -> None:
        v = self._vec(ra, dec)
        self.cells[self._cell(v)].append((key, v))

    def nearest(self, ra: float, dec: float, accept=lambda key: True):
        v = self._vec(ra, dec)
        cx, cy, cz = self._cell(v)
        best, best_d = None, self.chord
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for dz in (-1, 0, 1):
                    for key, w in self.cells.get((cx + dx, cy + dy, cz + dz), ()):
                        d = math.dist(v, w)
                        if d <= best_d and accept(key) and (best is None or d < best_d
                                                            or _order(key) < _order(best)):
                            best, best_d = key, d
        return best


def _order(key) -> tuple:
    """Tie-break of equally near stars: existing stars (ints) by id before new ones."""
    return (0, key) if isinstance(key, int) else (1, key[1])


def import_sources_csv(engine: Engine, path: str | os.PathLike, *,
                       match_radius_arcsec: float = 2.0,
                       longitude: float | None = None) -> ImportSummary:
    """Import a 2018-format ``sources.csv`` (see the module documentation for every rule).
    ``longitude`` (deg east) sets the local night of each frame (default: the site default).
    Never raises for bad content; an unreadable file raises ``OSError``."""
    path = Path(path)
    lon = SiteConfig().longitude if longitude is None else float(longitude)

    # ---- pass 1: parse every line
    rows: list[_Row] = []
    rows_read = bad = blank = 0
    for number, fields in _read_lines(path):
        if fields is None:
            blank += 1
            continue
        if (len(fields) >= 2 and fields[0].strip().lower() == "id"
                and fields[1].strip().upper() == "RA_C"):
            continue  # header row
        rows_read += 1
        try:
            rows.append(_parse(fields, number))
        except _Bad:
            bad += 1

    # ---- pass 2: each frame's filter (the CMAG column its rows fill on their own most often)
    votes: dict[str, Counter] = defaultdict(Counter)
    first: dict[str, _Row] = {}
    for r in rows:
        first.setdefault(r.imgname, r)
        filled = [b for b in _BANDS if r.cmags[b] is not None]
        if len(filled) == 1:
            votes[r.imgname][filled[0]] += 1
    frame_filter: dict[str, str] = {}
    for name, counter in votes.items():
        frame_filter[name] = max(counter.items(), key=lambda kv: (kv[1], -_BANDS.index(kv[0])))[0]
    usable: list[_Row] = []
    for r in rows:
        filt = frame_filter.get(r.imgname)
        filled = {b for b in _BANDS if r.cmags[b] is not None}
        if filt is None or (filled and filt not in filled):
            bad += 1
            continue
        usable.append(r)

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with session_scope(engine) as s:
        run = Run(started_at=now, software_version=__version__,
                  config_text="", config_sha256="", host=socket.gethostname(), pid=os.getpid(),
                  status="running", summary=json.dumps({"import": str(path)}))
        s.add(run)
        s.flush()
        run_id = run.id

        # ---- frames
        names = sorted({r.imgname for r in usable})
        frame_ids: dict[str, int] = {}
        for chunk in _chunks([LEGACY_PREFIX + n for n in names], 500):
            # imported frames carry no telescope (""): frames are unique per (telescope, path)
            for fid, raw in s.execute(select(Frame.id, Frame.raw_path)
                                      .where(Frame.telescope == "", Frame.raw_path.in_(chunk))):
                frame_ids[raw[len(LEGACY_PREFIX):]] = fid
        new_frames = []
        for name in names:
            if name in frame_ids:
                continue
            r = first[name]
            new_frames.append(Frame(
                raw_path=LEGACY_PREFIX + name, kind="light", state="calibrated",
                filter=frame_filter[name], jd_mid=_jd(r.when),
                date_obs=r.when.isoformat(timespec="milliseconds")[:32],
                night=_night(r.when, lon), xorg=0, yorg=0, qc="", run_id=run_id,
                updated_at=now))
        if new_frames:
            s.add_all(new_frames)
            s.flush()
            for fr in new_frames:
                frame_ids[fr.raw_path[len(LEGACY_PREFIX):]] = fr.id

        # ---- stars
        index = _SkyIndex(match_radius_arcsec)
        by_catalog: dict[str, int] = {}
        for sid, ra, dec, cat in s.execute(select(Star.id, Star.ra, Star.dec, Star.catalog_id)
                                           .order_by(Star.id)):
            index.add(sid, ra, dec)
            if cat is not None:
                by_catalog.setdefault(cat, sid)
        legacy_of: dict = {sid: cid for sid, cid in s.execute(
            select(CatalogMatch.star_id, CatalogMatch.catalog_id)
            .where(CatalogMatch.catalog == LEGACY_CATALOG))}
        for sid, cid in sorted(legacy_of.items()):
            by_catalog.setdefault(cid, sid)
        new_stars: list[dict] = []  # keys ("new", i) → star fields
        star_of: list = []
        adopt: dict[int, str] = {}  # existing stars without catalog id that get the 2018 id
        for r in usable:
            ra, dec = (r.ra_c, r.dec_c) if r.ra_c is not None else (r.ra_m, r.dec_m)
            key = by_catalog.get(r.cat_id) if r.cat_id is not None else None
            if key is None:
                def accept(k, cid=r.cat_id):
                    other = legacy_of.get(k)  # a star tied to another 2018 id is another star
                    return cid is None or other is None or other == cid
                key = index.nearest(ra, dec, accept)
                if key is None:
                    key = ("new", len(new_stars))
                    new_stars.append({"ra": ra, "dec": dec, "catalog_id": r.cat_id})
                    index.add(key, ra, dec)
                if r.cat_id is not None:
                    by_catalog[r.cat_id] = key
                    legacy_of.setdefault(key, r.cat_id)
            star_of.append(key)
        new_ids: list[int] = []
        if new_stars:
            objs = [Star(ra=st["ra"], dec=st["dec"], catalog_id=st["catalog_id"],
                         n_measurements=0, created_at=now) for st in new_stars]
            s.add_all(objs)
            s.flush()
            new_ids = [o.id for o in objs]

        def resolve(key) -> int:
            return new_ids[key[1]] if isinstance(key, tuple) else key

        # ---- measurements (skipping pairs already stored or seen earlier in the file)
        frame_set = sorted(set(frame_ids[n] for n in names))
        existing: set[tuple[int, int]] = set()
        for chunk in _chunks(frame_set, 500):
            existing.update((fid, sid) for fid, sid in s.execute(
                select(Measurement.frame_id, Measurement.star_id)
                .where(Measurement.frame_id.in_(chunk))))
        out_rows = []
        matches: dict[int, _Row] = {}
        duplicates = 0
        for r, key in zip(usable, star_of):
            sid = resolve(key)
            fid = frame_ids[r.imgname]
            if (fid, sid) in existing:
                duplicates += 1
                continue
            existing.add((fid, sid))
            filt = frame_filter[r.imgname]
            mag = r.cmags[filt]
            out_rows.append({
                "frame_id": fid, "star_id": sid, "filter": filt, "jd_mid": _jd(first[r.imgname].when),
                "bjd_tdb": None, "x": None, "y": None, "ra": r.ra_m, "dec": r.dec_m,
                "flux": None, "flux_err": None, "background": None,
                "inst_mag": None, "inst_mag_err": None, "mag": mag,
                "mag_err": r.mag_err if mag is not None else None,
                "fwhm": None, "airmass": None, "flags": 0, "in_ensemble": False,
            })
            if r.cat_id is not None and r.ra_c is not None:
                matches.setdefault(sid, r)
        insert_measurements(s, out_rows)

        # ---- the 2018 catalog data, and the 2018 id for stars that had no catalog id
        have = set(s.scalars(select(CatalogMatch.star_id)
                             .where(CatalogMatch.catalog == LEGACY_CATALOG)))
        for sid, r in sorted(matches.items()):
            if sid in have:
                continue
            known = None not in (r.ra_c, r.dec_c, r.ra_m, r.dec_m)
            sep = float(separation_arcsec(r.ra_c, r.dec_c, r.ra_m, r.dec_m)) if known else 0.0
            s.add(CatalogMatch(star_id=sid, catalog=LEGACY_CATALOG, catalog_id=r.cat_id,
                               ra=r.ra_c, dec=r.dec_c, separation=sep,
                               mags=json.dumps({b: [v, None] for b, v in r.mags.items()
                                                if v is not None})))
        for key, cid in legacy_of.items():
            if isinstance(key, int):
                adopt[key] = cid
        if adopt:
            for sid, cid in adopt.items():
                s.execute(update(Star).where(Star.id == sid, Star.catalog_id.is_(None))
                          .values(catalog_id=cid))

        touched = sorted({row["star_id"] for row in out_rows})
        counts = (select(func.count(Measurement.id)).where(Measurement.star_id == Star.id)
                  .scalar_subquery())
        for chunk in _chunks(touched, 500):
            s.execute(update(Star).where(Star.id.in_(chunk)).values(n_measurements=counts))

        summary = ImportSummary(rows_read=rows_read, rows_imported=len(out_rows),
                                duplicates_skipped=duplicates, bad_lines=bad, blank_lines=blank,
                                frames_created=len(new_frames), stars_created=len(new_ids),
                                run_id=run_id)
        s.execute(update(Run).where(Run.id == run_id).values(
            finished_at=datetime.now(timezone.utc).replace(tzinfo=None), status="finished",
            summary=json.dumps({"import": str(path), **asdict(summary)})))
    return summary



def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]
