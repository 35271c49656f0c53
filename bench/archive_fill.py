"""A ten-year archive for ``bench/bench_archive.py``: the rows ``clinepipe run`` would have written
over ~3,000 nights, made in bulk, on SQLite and on PostgreSQL, cached under ``bench/.cache/``.

The schema is the pipeline's own: :func:`clinepipe.store.db.open_database` migrates an empty
database to the head revision, then the tables are filled directly (SQLite: ``sqlite3``
``executemany`` in one transaction with the journal off; PostgreSQL: binary ``COPY`` built from
numpy records, foreign-key triggers off for the session). The one secondary index of
``measurements`` (and on PostgreSQL its unique constraint) is dropped during the fill and made
again from its own DDL, so the result is the migrated schema exactly; PostgreSQL is then
``VACUUM ANALYZE``d, as autovacuum would have done over ten years.

What the archive holds (per :class:`ArchiveSpec`): 20,000 stars in 40 fields of 500; each light
measures every star of its field; lights alternate V and R and cycle over the fields, night after
night, so each star has ``measurements / 20,000`` points over the whole span. Field 0 is the
simulated night's own field (its true star positions and catalog ids), so a new night's run
matches its stars against ten years of history, as at the observatory. Every light has its
frame row (state calibrated, quality figures, masters, run), its zero point and its run; every
second night has bias, dark and V/R flat frames (state used) and their four masters. Magnitudes
are each star's own mean plus noise; one star in a hundred varies (sinusoid, 0.05-0.5 mag).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

#: bump when the generated rows change: the cache is rebuilt (2: the variable stars' periods
#: stored, as the runs of ten years would have left them; 3: the simulated night's stars at
#: their true magnitudes, so that its night agrees with their ten years)
GENERATOR_VERSION = 3

STARS_PER_FIELD = 500
N_FIELDS = 40
FILTERS = ("V", "R")
FIRST_AFTER = date(2026, 3, 14)  # the simulated night: the archive ends the evening before
FRAME_CHUNK = 400  # lights generated (and written) at a time


@dataclass(frozen=True)
class ArchiveSpec:
    measurements: int
    nights: int
    stars: int
    lights: int
    seed: int = 20
    generator: int = GENERATOR_VERSION

    @classmethod
    def for_measurements(cls, n: int) -> "ArchiveSpec":
        """~3,000 nights for 10 M measurements (scaled with ``n``), 20,000 stars, 500 a light."""
        stars = STARS_PER_FIELD * N_FIELDS
        lights = max(2, n // STARS_PER_FIELD)
        nights = max(1, min(lights, round(3000 * n / 10_000_000)))
        return cls(lights * STARS_PER_FIELD, nights, stars, lights)


def log(text: str) -> None:
    print(text, flush=True)


# ----------------------------------------------------------------------------- the rows

def _night_dates(spec: ArchiveSpec) -> list[date]:
    return [FIRST_AFTER - timedelta(days=spec.nights - i) for i in range(spec.nights)]


def _jd0(d: date) -> float:
    """JD at 00:00 UTC of the day after evening ``d`` (local midnight ~ 05:00 UTC)."""
    return 2440587.5 + (d - date(1970, 1, 1)).days + 1.0


def star_table(spec: ArchiveSpec, field0: list[tuple]) -> dict:
    """Star positions, catalog ids, true mean V magnitudes and R - V colours; field 0 starts
    with ``field0`` (ra, dec, catalog id, V, R) of the simulated night, constant stars at their
    true magnitudes: a new night of that field then agrees with their past, as a real one
    does, instead of making hundreds of them look variable (and have their periods searched
    by every run)."""
    rng = np.random.default_rng(spec.seed)
    n = spec.stars
    field = np.arange(n) // STARS_PER_FIELD
    ra_c = (162.0 + 9.0 * field) % 360.0
    dec_c = np.where(field == 0, 30.0, -20.0 + (field * 7) % 80)
    ra = ra_c + rng.uniform(-0.25, 0.25, n) / np.cos(np.radians(dec_c))
    dec = dec_c + rng.uniform(-0.25, 0.25, n)
    cat = np.array([f"ARC-{i:06d}" if rng.random() < 0.6 else None for i in range(n)],
                   dtype=object)
    k = min(len(field0), STARS_PER_FIELD)
    if k:
        ra[:k] = [p[0] for p in field0[:k]]
        dec[:k] = [p[1] for p in field0[:k]]
        cat[:k] = [p[2] for p in field0[:k]]
        mag_k = np.array([p[3] for p in field0[:k]], dtype=float)
        r_minus_v_k = np.array([p[4] - p[3] for p in field0[:k]], dtype=float)
        # the other stars of field 0 sit just outside the simulated frame
        ra[k:STARS_PER_FIELD] = 162.0 + rng.choice([-1, 1], STARS_PER_FIELD - k) * \
            rng.uniform(0.3, 0.45, STARS_PER_FIELD - k) / np.cos(np.radians(30.0))
    mag = rng.uniform(10.0, 18.0, n)
    amp = np.where(rng.random(n) < 0.01, rng.uniform(0.05, 0.5, n), 0.0)
    period = rng.uniform(0.1, 5.0, n)
    r_minus_v = np.full(n, -0.4)
    if k:
        mag[:k], r_minus_v[:k], amp[:k] = mag_k, r_minus_v_k, 0.0
    return {"ra": ra, "dec": dec, "catalog_id": cat, "mag": mag, "amp": amp, "period": period,
            "r_minus_v": r_minus_v}


def light_plan(spec: ArchiveSpec) -> dict:
    """One entry per light, in time order: night index, field, filter, jd_mid."""
    i = np.arange(spec.lights)
    night = i * spec.nights // spec.lights
    first = np.searchsorted(night, night)  # index of the night's first light
    k_in_night = i - first
    rng = np.random.default_rng(spec.seed + 1)
    jd0 = np.array([_jd0(d) for d in _night_dates(spec)])
    jd = jd0[night] + 0.05 + 0.006 * k_in_night + rng.uniform(0, 0.002, spec.lights)
    return {"night": night, "k": k_in_night, "field": (i // 2) % N_FIELDS,
            "filter": np.array(FILTERS)[i % 2], "jd": jd,
            "zp": 21.9 - 0.2 * rng.uniform(1.0, 2.0, spec.lights)
            - np.where(rng.random(spec.lights) < 0.05, rng.uniform(0.3, 1.5, spec.lights), 0.0),
            "airmass": rng.uniform(1.0, 2.0, spec.lights),
            "fwhm": rng.uniform(2.0, 3.5, spec.lights), "sky": rng.uniform(300, 900, spec.lights)}


def measurement_chunk(spec: ArchiveSpec, stars: dict, plan: dict, lo: int, hi: int) -> dict:
    """The measurements of lights ``lo..hi-1`` (0-based), as numpy columns in (frame, star)
    order; ``id`` continues the sequence of the lights before."""
    rng = np.random.default_rng([spec.seed, lo])
    per = STARS_PER_FIELD
    light = np.repeat(np.arange(lo, hi), per)
    star_idx = (plan["field"][lo:hi, None] * per + np.arange(per)[None, :]).ravel()
    n = light.size
    jd = plan["jd"][light]
    true = stars["mag"][star_idx] + stars["amp"][star_idx] * np.sin(
        2 * np.pi * jd / stars["period"][star_idx])
    band_offset = np.where(plan["filter"][light] == "R", stars["r_minus_v"][star_idx], 0.0)
    err = 0.003 + 0.02 * 10 ** (0.4 * (true - 16.0))
    mag = true + band_offset + rng.normal(0, 1, n) * err
    zp = plan["zp"][light]
    inst = mag - zp
    flux = 60.0 * 10 ** (-0.4 * inst)
    dec = stars["dec"][star_idx]
    return {
        "id": np.arange(lo * per + 1, hi * per + 1),
        "frame_id": light + 1, "star_id": star_idx + 1,
        "filter": plan["filter"][light], "jd_mid": jd,
        "bjd_tdb": jd + 0.0057 * np.cos(2 * np.pi * (jd - 2461000.0) / 365.25),
        "x": rng.uniform(1, 1117, n), "y": rng.uniform(1, 844, n),
        "ra": stars["ra"][star_idx] + rng.normal(0, 5e-5, n) / np.cos(np.radians(dec)),
        "dec": dec + rng.normal(0, 5e-5, n),
        "flux": flux, "flux_err": flux * err / 1.0857,
        "background": plan["sky"][light] + rng.normal(0, 5, n),
        "inst_mag": inst, "inst_mag_err": err, "mag": mag,
        "mag_err": np.hypot(err, 0.01), "fwhm": plan["fwhm"][light] + rng.normal(0, 0.1, n),
        "airmass": plan["airmass"][light] + rng.normal(0, 1e-3, n),
        "flags": np.where(rng.random(n) < 0.02, 4, 0).astype(np.int64),
        "in_ensemble": (stars["mag"][star_idx] < 15.0) & (stars["amp"][star_idx] == 0)
        & np.array([c is not None for c in stars["catalog_id"]])[star_idx],
    }


MEASUREMENT_COLUMNS = ("id", "frame_id", "star_id", "filter", "jd_mid", "bjd_tdb", "x", "y",
                       "ra", "dec", "flux", "flux_err", "background", "inst_mag", "inst_mag_err",
                       "mag", "mag_err", "fwhm", "airmass", "flags", "in_ensemble")


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def small_tables(spec: ArchiveSpec, stars: dict, plan: dict, config_text: str) -> dict:
    """runs, masters, frames (lights, then calibration frames), zero_points, stars and
    catalog_matches as lists of dicts, as the pipeline would have written them."""
    dates = _night_dates(spec)
    nights = [d.strftime("%Y%m%d") for d in dates]
    jd0 = [_jd0(d) for d in dates]
    runs, masters, frames, zps = [], [], [], []
    sha = _hex(config_text)
    for i, night in enumerate(nights):
        t = datetime(dates[i].year, dates[i].month, dates[i].day) + timedelta(days=1, hours=7)
        runs.append({"id": i + 1, "started_at": t, "finished_at": t + timedelta(minutes=3),
                     "software_version": "0.9.0", "config_text": config_text,
                     "config_sha256": sha, "host": "observatory", "pid": 1000 + i,
                     "status": "finished", "telescope": "",
                     "summary": json.dumps({"states": {"calibrated": 7}, "new_files": 35,
                                            "masters_built": 4 if i % 2 == 0 else 0,
                                            "lights_done": 7, "failures": 0})})
    master_of: dict[tuple[int, str], int] = {}
    cal_nights = range(0, spec.nights, 2)
    for i in cal_nights:
        for kind, filt in (("bias", None), ("dark", None), ("flat", "V"), ("flat", "R")):
            mid = len(masters) + 1
            master_of[(i, kind + (filt or ""))] = mid
            name = f"{kind}_master" + (f"_{filt}" if filt else "") + ".fits"
            masters.append({"id": mid, "telescope": "", "kind": kind, "binning": 3,
                            "filter": filt, "exptime": 120.0 if kind == "dark" else None,
                            "ccd_temp": -10.0, "night": nights[i], "jd": jd0[i] - 0.3,
                            "shape_y": 844, "shape_x": 1117,
                            "path": f"masters/{nights[i]}/binning3/{name}", "mode": "default",
                            "n_frames": 7, "inputs": json.dumps([]),
                            "input_key": _hex(f"{nights[i]}{kind}{filt}"),
                            "software_version": "0.9.0", "run_id": i + 1,
                            "created_at": runs[i]["started_at"]})
    rng = np.random.default_rng(spec.seed + 2)
    for j in range(spec.lights):
        i = int(plan["night"][j])
        night, filt = nights[i], str(plan["filter"][j])
        cal = i - i % 2
        stem = f"{night}_light_{int(plan['k'][j]) + 1:03d}_{filt}"
        qc = "clouds" if plan["zp"][j] < 21.3 else ""
        frames.append({
            "id": j + 1, "telescope": "", "raw_path": f"{night}/lights/{stem}.fit",
            "sha256": _hex(stem), "size": 1894080,
            "archive_path": f"raw/{night}/light/{stem}.fit", "night": night, "kind": "light",
            "filter": filt, "binning": 3, "exptime": 60.0, "ccd_temp": -10.0,
            "date_obs": (datetime(1970, 1, 1) + timedelta(days=float(plan["jd"][j]) - 2440587.5
                                                         - 30 / 86400)).isoformat(timespec="seconds"),
            "jd_mid": float(plan["jd"][j]), "object": f"FIELD-{int(plan['field'][j]):02d}",
            "naxis1": 1117, "naxis2": 844, "xorg": 0, "yorg": 0, "gain": 0.4,
            "state": "calibrated", "stage": None, "reason": None,
            "calibrated_path": f"calibrated/{night}/{stem}_calibrated.fits",
            "bias_master_id": master_of[(cal, "bias")], "dark_master_id": master_of[(cal, "dark")],
            "flat_master_id": master_of[(cal, "flat" + filt)],
            "fwhm": float(plan["fwhm"][j]), "elongation": float(rng.uniform(1.0, 1.2)),
            "sky": float(plan["sky"][j]), "n_stars": STARS_PER_FIELD,
            "astrometric_rms": float(rng.uniform(0.1, 0.4)), "airmass": float(plan["airmass"][j]),
            "qc": qc, "source_list": "src", "run_id": i + 1,
            "updated_at": runs[i]["finished_at"]})
        zps.append({"id": j + 1, "frame_id": j + 1, "filter": filt, "catalog_band": filt,
                    "value": float(plan["zp"][j]), "error": 0.004, "n_used": 120,
                    "n_candidates": 140, "scatter": 0.02, "color_term": 0.03})
    for i in cal_nights:
        night = nights[i]
        for kind, filt, n in (("bias", None, 7), ("dark", None, 7), ("flat", "V", 7),
                              ("flat", "R", 7)):
            for k in range(n):
                stem = f"{night}_{kind}" + (f"_{filt}" if filt else "") + f"_{k + 1:03d}"
                frames.append({
                    "id": len(frames) + 1, "telescope": "",
                    "raw_path": f"{night}/calibration/{stem}.fit", "sha256": _hex(stem),
                    "size": 1894080, "archive_path": f"raw/{night}/{kind}/{stem}.fit",
                    "night": night, "kind": kind, "filter": filt, "binning": 3,
                    "exptime": {"bias": 0.0, "dark": 120.0}.get(kind, 5.0), "ccd_temp": -10.0,
                    "date_obs": None, "jd_mid": jd0[i] - 0.3 + k * 0.001, "object": None,
                    "naxis1": 1117, "naxis2": 844, "xorg": 0, "yorg": 0, "gain": 0.4,
                    "state": "used", "stage": None, "reason": None, "calibrated_path": None,
                    "bias_master_id": None, "dark_master_id": None, "flat_master_id": None,
                    "fwhm": None, "elongation": None, "sky": None, "n_stars": None,
                    "astrometric_rms": None, "airmass": None, "qc": "", "source_list": None,
                    "run_id": i + 1, "updated_at": runs[i]["finished_at"]})
    per_star = np.zeros(spec.stars, dtype=np.int64)
    np.add.at(per_star, (plan["field"][:, None] * STARS_PER_FIELD
                         + np.arange(STARS_PER_FIELD)[None, :]).ravel(), 1)
    created = runs[0]["started_at"]
    star_rows, matches = [], []
    for s in range(spec.stars):
        cat = stars["catalog_id"][s]
        star_rows.append({"id": s + 1, "ra": float(stars["ra"][s]), "dec": float(stars["dec"][s]),
                          "catalog_id": cat, "name": None, "var_type": None, "var_period": None,
                          "n_measurements": int(per_star[s]), "created_at": created})
        if cat is not None:
            v = float(stars["mag"][s])
            matches.append({"id": len(matches) + 1, "star_id": s + 1, "catalog": "file",
                            "catalog_id": cat, "ra": float(stars["ra"][s]),
                            "dec": float(stars["dec"][s]), "separation": 0.3,
                            "mags": json.dumps({"B": [v + 0.6, 0.02], "V": [v, 0.02],
                                                "R": [v - 0.4, 0.02]})})
    return {"runs": runs, "masters": masters, "frames": frames, "zero_points": zps,
            "stars": star_rows, "catalog_matches": matches}


# ----------------------------------------------------------------------------- SQLite

def fill_sqlite(path: Path, spec: ArchiveSpec, tables: dict, stars: dict, plan: dict) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    con.execute("PRAGMA cache_size = -1048576")
    con.execute("PRAGMA temp_store = MEMORY")
    index_sql = [r[0] for r in con.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'measurements' "
        "AND sql IS NOT NULL")]
    con.execute("BEGIN")
    for name in ("runs", "masters", "frames", "zero_points", "stars", "catalog_matches"):
        rows = tables[name]
        cols = list(rows[0])
        con.executemany(f"INSERT INTO {name} ({', '.join(cols)}) VALUES "
                        f"({', '.join('?' * len(cols))})",
                        [tuple(r[c] for c in cols) for r in rows])
    for sql in index_sql:  # made again after the fill: a sort instead of 10 M random inserts
        con.execute("DROP INDEX " + sql.split()[2])
    insert = (f"INSERT INTO measurements ({', '.join(MEASUREMENT_COLUMNS)}) VALUES "
              f"({', '.join('?' * len(MEASUREMENT_COLUMNS))})")
    t0 = time.perf_counter()
    for lo in range(0, spec.lights, FRAME_CHUNK):
        hi = min(spec.lights, lo + FRAME_CHUNK)
        cols = measurement_chunk(spec, stars, plan, lo, hi)
        con.executemany(insert, zip(*(cols[c].tolist() for c in MEASUREMENT_COLUMNS)))
        if (lo // FRAME_CHUNK) % 25 == 0:
            log(f"    sqlite: {hi * STARS_PER_FIELD:,} measurements "
                f"({time.perf_counter() - t0:.0f} s)")
    t1 = time.perf_counter()
    for sql in index_sql:
        con.execute(sql)
    con.execute("COMMIT")
    log(f"    sqlite: indexes made again in {time.perf_counter() - t1:.0f} s")
    con.execute("PRAGMA journal_mode = WAL")  # as every clinepipe connection leaves it
    con.close()


# ----------------------------------------------------------------------------- PostgreSQL

#: numpy types of PostgreSQL's binary COPY fields (network byte order); text: one byte
_PG_BINARY = {"integer": ">i4", "bigint": ">i8", "double precision": ">f8", "boolean": "u1",
              "character varying": "S1", "text": "S1"}


def _copy_binary(cols: dict, names, types: dict) -> bytes:
    """PostgreSQL binary COPY tuples of equal-length numpy columns (no NULLs; text columns of
    one ASCII character, the filters), built as one record array."""
    fields = [("nf", ">i2")]
    for c in names:
        fields += [(c + "_len", ">i4"), (c, _PG_BINARY[types[c]])]
    rec = np.empty(len(cols[names[0]]), dtype=np.dtype(fields))
    rec["nf"] = len(names)
    for c in names:
        rec[c + "_len"] = rec.dtype[c].itemsize
        rec[c] = cols[c].astype(rec.dtype[c])
    return rec.tobytes()


def fill_postgres(url: str, spec: ArchiveSpec, tables: dict, stars: dict, plan: dict) -> None:
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=False) as con:
        cur = con.cursor()
        cur.execute("SET session_replication_role = replica")  # no FK triggers during the fill
        cur.execute("SET maintenance_work_mem = '1GB'")
        types = dict(cur.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'measurements'").fetchall())
        index_sql = [r[0] for r in cur.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'measurements' AND indexname "
            "NOT IN ('pk_measurements', 'uq_measurements_frame_star')").fetchall()]
        uq = cur.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                         "WHERE conname = 'uq_measurements_frame_star'").fetchone()[0]
        for name in ("runs", "masters", "frames", "zero_points", "stars", "catalog_matches"):
            rows = tables[name]
            cols = list(rows[0])
            with cur.copy(f"COPY {name} ({', '.join(cols)}) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(tuple(r[c] for c in cols))
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"(SELECT max(id) FROM {name}))")
        cur.execute("ALTER TABLE measurements DROP CONSTRAINT uq_measurements_frame_star")
        for sql in index_sql:
            cur.execute("DROP INDEX " + sql.split()[2])
        header = b"PGCOPY\n\xff\r\n\0" + (0).to_bytes(4, "big") * 2
        t0 = time.perf_counter()
        with cur.copy(f"COPY measurements ({', '.join(MEASUREMENT_COLUMNS)}) FROM STDIN "
                      "WITH (FORMAT binary)") as cp:
            cp.write(header)
            for lo in range(0, spec.lights, FRAME_CHUNK):
                hi = min(spec.lights, lo + FRAME_CHUNK)
                cp.write(_copy_binary(measurement_chunk(spec, stars, plan, lo, hi),
                                      MEASUREMENT_COLUMNS, types))
                if (lo // FRAME_CHUNK) % 25 == 0:
                    log(f"    postgresql: {hi * STARS_PER_FIELD:,} measurements "
                        f"({time.perf_counter() - t0:.0f} s)")
            cp.write((-1).to_bytes(2, "big", signed=True))
        t1 = time.perf_counter()
        cur.execute("SELECT setval(pg_get_serial_sequence('measurements', 'id'), "
                    "(SELECT max(id) FROM measurements))")
        cur.execute(f"ALTER TABLE measurements ADD CONSTRAINT uq_measurements_frame_star {uq}")
        for sql in index_sql:
            cur.execute(sql)
        con.commit()
        log(f"    postgresql: indexes made again in {time.perf_counter() - t1:.0f} s")
    with psycopg.connect(conninfo, autocommit=True) as con:
        con.execute("VACUUM ANALYZE")


# ----------------------------------------------------------------------------- the cluster

def _pg_bindir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    import glob

    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not cands:
        raise RuntimeError("PostgreSQL is not installed (no initdb): make system-deps")
    return Path(cands[-1]).parent


class PgCluster:
    """A PostgreSQL cluster kept in ``folder`` (the bench's cache) between runs, started on a
    free 127.0.0.1 port for one bench run and stopped after it. Bench settings: trust
    authentication, fsync off (a crash means a rebuild); shared_buffers at the server's
    default 128 MB, as a stock installation."""

    def __init__(self, folder: Path):
        self.folder = folder.resolve()
        self.data = self.folder / "data"
        self.bindir = _pg_bindir()
        self.port: int | None = None

    def _run(self, *cmd, timeout=300) -> str:
        cmd = [str(c) for c in cmd]
        if os.geteuid() == 0:  # initdb refuses root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, cwd=self.folder, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "LC_ALL": "C", "LANG": "C"})
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def start(self) -> "PgCluster":
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        if not (self.data / "PG_VERSION").exists():
            self._run(self.bindir / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                      "-E", "UTF8", "--locale=C", "--no-sync")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_wal_size=4GB")
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-l", self.folder / "server.log",
                  "-w", "-t", "120", "-o", opts, "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str):
        import psycopg

        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as con:
            cur = con.execute(statement)
            return cur.fetchall() if cur.description else None

    def stop(self) -> None:
        if self.port is not None:
            self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
            self.port = None


# ----------------------------------------------------------------------------- cache

def spec_key(spec: ArchiveSpec, schema: str) -> dict:
    return {**asdict(spec), "schema": schema}


def field0_from_simulation(truth_stars: Path) -> list[tuple]:
    """(ra, dec, catalog id, V, R) of each star of the simulated night's truth."""
    import csv

    with open(truth_stars, newline="") as fh:
        return [(float(r["ra"]), float(r["dec"]), r["catalog_id"] or None, float(r["V"]),
                 float(r["R"])) for r in csv.DictReader(fh)]


def build_archive(backend: str, spec: ArchiveSpec, *, target, field0, config_text: str) -> float:
    """Fill the migrated, empty database ``target`` (a SQLite path or a PostgreSQL URL);
    returns the seconds it took."""
    from clinepipe.store.db import open_database

    t0 = time.perf_counter()
    url = f"sqlite:///{target}" if backend == "sqlite" else target
    open_database(url).dispose()  # the pipeline's own migrations make the schema
    stars = star_table(spec, field0)
    plan = light_plan(spec)
    tables = small_tables(spec, stars, plan, config_text)
    log(f"    {backend}: {spec.lights:,} lights, {len(tables['frames']):,} frames, "
        f"{spec.nights:,} nights, {spec.stars:,} stars; filling ...")
    if backend == "sqlite":
        fill_sqlite(Path(target), spec, tables, stars, plan)
    else:
        fill_postgres(target, spec, tables, stars, plan)
    t1 = time.perf_counter()
    engine = open_database(url)
    try:  # the per star and filter statistics, as revision 0005 fills them on a migration
        from clinepipe.store.db import session_scope
        from clinepipe.variability.points import DEFAULT_EXCLUDE_QC
        from clinepipe.variability.star_stats import (
            rebuild_star_stats,
            update_star_periods,
        )

        with session_scope(engine) as s:
            n = rebuild_star_stats(s)
        log(f"    {backend}: star_stats of {n:,} stars in {time.perf_counter() - t1:.0f} s")
        # the periods of the variable stars, as every run stores those of the stars it
        # changed: without them the first run on the archive would search them all, once
        t2 = time.perf_counter()
        searched = update_star_periods(engine, DEFAULT_EXCLUDE_QC)
        log(f"    {backend}: periods of {searched:,} variable stars in "
            f"{time.perf_counter() - t2:.0f} s")
    finally:
        engine.dispose()
    return time.perf_counter() - t0
