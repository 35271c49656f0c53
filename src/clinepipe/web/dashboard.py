"""The dashboard's reads of the database: nights, failures, the star table with each star's
statistics per filter, a star's light curve; SELECTs only, cached per database state.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from fastapi.responses import (
    HTMLResponse,
)
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from clinepipe import __version__
from clinepipe.finite import finite_or_none
from clinepipe.store.distinct import distinct_values
from clinepipe.store.measurement_rows import last_run, several_telescopes
from clinepipe.store.models import Frame, Star
from clinepipe.store.tables import frames
from clinepipe.variability.star_stats import count_measurements
from clinepipe.web.routing import HERE
from clinepipe.web.values import (
    ATTENTION_STATES,
    LIGHTCURVE_FIELDS,
    MAX_LISTED_FILES,
    MIN_VAR_POINTS,
    NIGHT_RE,
    dec_dms,
    finite_number,
    night_label,
    plain,
    ra_hms,
)

log = logging.getLogger(__name__)


@dataclass
class FilterStats:
    """One star's calibrated points in one filter, as the star pages show them: ``n`` points, the
    error-weighted ``mean_mag`` (mag), ``rms`` (mag) and reduced ``chi2_red`` about the mean
    (these two None below :data:`~clinepipe.web.values.MIN_VAR_POINTS` points)."""
    filter: str
    n: int
    mean_mag: float | None
    rms: float | None
    chi2_red: float | None


@dataclass
class StarRow:
    """One star of the star list: its id, known-variable name, catalog id, position ``ra``/``dec``
    (degrees, ICRS, mean of its detections), known type and period (``var_period``, days, from
    the known-variable catalog), number of measurements ``n`` and :class:`FilterStats` per
    filter."""
    star_id: int
    name: str | None
    catalog_id: str | None
    ra: float
    dec: float
    var_type: str | None
    var_period: float | None
    n: int = 0
    filters: dict[str, FilterStats] = field(default_factory=dict)

    @property
    def var_filter(self) -> FilterStats | None:
        """The filter in which the star looks most variable (largest reduced chi-square)."""
        ranked = [f for f in self.filters.values() if f.chi2_red is not None]
        return max(ranked, key=lambda f: f.chi2_red) if ranked else None

    def as_json(self) -> dict:
        var = self.var_filter
        return {"star_id": self.star_id, "name": self.name, "catalog_id": self.catalog_id,
                "ra": self.ra, "dec": self.dec, "n_measurements": self.n,
                "mean_mag": {f: finite_or_none(s.mean_mag) for f, s in self.filters.items()},
                "var_filter": var.filter if var else None,
                "rms": finite_or_none(var.rms) if var else None,
                "chi2_red": finite_or_none(var.chi2_red) if var else None,
                "var_type": self.var_type, "var_period": finite_or_none(self.var_period)}


@dataclass
class StarTable:
    """Every star as a :class:`StarRow` (in id order and by id), with the filters that have
    calibrated points; ``key`` (counts and largest ids of measurements and stars) tells the
    cached table from a stale one."""
    key: tuple
    rows: list[StarRow]
    by_id: dict[int, StarRow]
    filters: list[str]  # every filter with calibrated points, most useful first


class Dashboard:
    """Read-only queries behind the pages, with small caches keyed on the data they summarise."""

    def __init__(self, engine: Engine, archive: Path | None, obscode: str, site_name: str,
                 exclude_qc=()):
        self.engine = engine
        self.exclude_qc = tuple(exclude_qc)
        self.archive = archive
        self.obscode = obscode
        self.site_name = site_name
        self._lock = threading.Lock()
        # one star table built at a time: a request that comes while it is being built (at
        # start-up, by warm()) waits for it instead of building a second one
        self._building = threading.Lock()
        self._stars: StarTable | None = None
        self._periods: OrderedDict = OrderedDict()
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(["html"]), trim_blocks=True,
                               lstrip_blocks=True)
        self.env.filters.update(num=finite_number, ra_hms=ra_hms, dec_dms=dec_dms, night=night_label)
        url = engine.url
        self.env.globals.update(version=__version__, site_name=site_name,
                                database=f"{Path(url.database or '').name or 'the'} "
                                         f"({url.get_backend_name()})")

    def render(self, template: str, status_code: int = 200, **context) -> HTMLResponse:
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status_code)

    # -- stars -------------------------------------------------------------------------

    def star_table(self) -> StarTable:
        """Every star with its counts and, per filter, the mean magnitude, rms and reduced
        chi-square of its calibrated points, as ``clinepipe variables`` computes them
        (:func:`~clinepipe.variability.statistics.lightcurve_statistics`: flagged points, frames
        with an excluded QC flag and isolated outliers left out) but from 5 points on and
        without the period search. Kept in memory until the measurements or stars change."""
        with self._building:
            return self._star_table()

    def warm(self) -> None:
        """Build what the first visitors would otherwise wait for (the star table: ~0.5 s on
        ten years of archive), as ``clinepipe serve`` starts; a failure is left for the
        request that meets it to report."""
        try:
            self.star_table()
        except Exception as exc:  # the page that needs it will say what went wrong
            log.warning("the star table could not be built in advance (%s); /stars will "
                        "try again", exc)

    def _star_table(self) -> StarTable:
        from clinepipe.store.models import StarStat, StarStatPending
        from clinepipe.variability.star_stats import read_statistics
        from clinepipe.variability.statistics import ordered_filters

        with Session(self.engine) as s:
            key = tuple(s.execute(select(
                select(func.count(StarStatPending.star_id)).scalar_subquery(),
                select(func.max(StarStat.id)).scalar_subquery(),
                select(func.count(Star.id)).scalar_subquery(),
                select(func.max(Star.id)).scalar_subquery())).one())
            with self._lock:
                if self._stars is not None and self._stars.key == key and not key[0]:
                    return self._stars
            stars = s.execute(select(Star.id, Star.name, Star.catalog_id, Star.ra, Star.dec,
                                     Star.var_type, Star.var_period).order_by(Star.id)).all()
        stored = read_statistics(self.engine, self.exclude_qc)
        g, totals = stored.groups, stored.n_all
        rows = [StarRow(sid, name, cat, ra, dec, vtype, vper, n=int(totals.get(sid, 0)))
                for sid, name, cat, ra, dec, vtype, vper in stars]
        by_id = {r.star_id: r for r in rows}
        popularity: dict[str, int] = {}
        for sid, filt, n, mean, rms, chi2 in zip(g.labels[0].tolist(), g.labels[1].tolist(),
                                                 g.n.tolist(), g.mean_mag.tolist(),
                                                 g.rms.tolist(), g.chi2_red.tolist()):
            row = by_id.get(sid)
            if row is None:
                continue
            popularity[filt] = popularity.get(filt, 0) + n
            enough = n >= MIN_VAR_POINTS
            row.filters[filt] = FilterStats(filt, n, mean, rms if enough else None,
                                            chi2 if enough else None)
        table = StarTable(key, rows, by_id, ordered_filters(popularity))
        with self._lock:
            self._stars = table
        return table

    def star_period(self, star_id: int, points: list[dict]) -> dict | None:
        """The star's period as ``clinepipe variables`` finds it (the same points, statistics
        and search: :func:`~clinepipe.variability.table.variability_table`): ``{"period"
        (days), "fap", "method", "n"}``, or None when the star does not vary enough for a
        search or the data cannot constrain one."""
        from clinepipe.variability.table import variability_table

        key = (star_id, len(points), max((p["jd_mid"] or 0 for p in points), default=0))
        with self._lock:
            if key in self._periods:
                self._periods.move_to_end(key)
                return self._periods[key]
        rows = variability_table(self.engine, exclude_qc=self.exclude_qc, star_ids=[star_id])
        found = next((r for r in rows if r.period_days is not None), None)
        result = None if found is None else {
            "period": float(found.period_days), "fap": float(found.fap),
            "n": sum(r.n for r in rows)}
        with self._lock:
            self._periods[key] = result
            while len(self._periods) > 256:
                self._periods.popitem(last=False)
        return result

    def lightcurve(self, star_id: int, filter: str | None = None, since: float | None = None,
                   until: float | None = None) -> list[dict]:
        """The star's points with exactly the ``export --format csv`` fields (NaN → None):
        with several telescopes in the database, ``telescope`` last, as in the export."""
        from clinepipe.store.measurement_rows import lightcurve

        several = several_telescopes(self.engine)
        rows = lightcurve(self.engine, star_id, filter=filter, since=since, until=until,
                          telescope=several)
        fields = LIGHTCURVE_FIELDS + (("telescope",) if several else ())
        return [{k: plain(row.get(k)) for k in fields} for row in rows]

    def star_exists(self, star_id: int) -> bool:
        with Session(self.engine) as s:
            return s.get(Star, star_id) is not None

    # -- nights ------------------------------------------------------------------------

    def report_dir(self, night: str) -> Path | None:
        """``archive/reports/<night>/`` when ``night`` is a YYYYMMDD night that has one."""
        if self.archive is None or not NIGHT_RE.fullmatch(night or ""):
            return None
        folder = self.archive / "reports" / night
        return folder if (folder / "index.html").is_file() else None

    def night_keys(self) -> list[str | None]:
        """Every night that has frames, newest first (None, frames without a night, last):
        read from the index on ``frames.night`` without touching the frames themselves."""
        with self.engine.connect() as conn:
            keys = distinct_values(conn, frames.c.night)
        return [e["night"] for e in newest_first([{"night": k} for k in keys])]

    def frame_states(self) -> set[str]:
        """Every state some frame is in."""
        with self.engine.connect() as conn:
            return set(distinct_values(conn, frames.c.state))

    def nights(self, only: list[str | None] | None = None) -> list[dict]:
        """Every night (or those in ``only``, the nights of one page), newest first (frames
        without a night last): counts per state and kind. Only the nights asked for are
        aggregated, through the index on ``frames.night``: a page of a ten-year archive
        reads a page of its frames."""
        where = []
        if only is not None:
            dated = [n for n in only if n is not None]
            where = [or_(Frame.night.in_(dated), *([Frame.night.is_(None)]
                                                   if None in only else []))]
        with Session(self.engine) as s:
            states = s.execute(select(Frame.night, Frame.state, func.count(Frame.id))
                               .where(*where).group_by(Frame.night, Frame.state)).all()
            kinds = s.execute(select(Frame.night, Frame.kind, func.count(Frame.id))
                              .where(*where).group_by(Frame.night, Frame.kind)).all()
            scopes = s.execute(select(Frame.night, Frame.telescope, func.count(Frame.id))
                               .where(*where).group_by(Frame.night, Frame.telescope)).all()
        nights: dict = {}
        for night, state, n in states:
            entry = nights.setdefault(night, {"night": night, "states": {}, "kinds": {},
                                              "frames": 0})
            entry["states"][state] = n
            entry["frames"] += n
        for night, kind, n in kinds:
            if night in nights:
                nights[night]["kinds"][kind or "unknown"] = n
        for night, telescope, n in scopes:
            if night in nights:
                nights[night].setdefault("telescopes", {})[telescope or "(unnamed)"] = n
        for entry in nights.values():
            entry["report"] = f"/reports/{entry['night']}/" if entry["night"] and \
                self.report_dir(entry["night"]) else None
            entry["attention"] = sum(entry["states"].get(st, 0) for st in ATTENTION_STATES)
        return newest_first(nights.values())

    def files_with_reasons(self, states, limit: int = MAX_LISTED_FILES) -> tuple[list[dict], int]:
        """Files in ``states`` with stage and reason, newest night first; and how many in all."""
        with Session(self.engine) as s:
            total = s.scalar(select(func.count(Frame.id)).where(Frame.state.in_(states))) or 0
            rows = s.execute(select(Frame.night, Frame.raw_path, Frame.state, Frame.stage,
                                    Frame.reason, Frame.telescope)
                             .where(Frame.state.in_(states))
                             .order_by(Frame.night.desc(), Frame.raw_path).limit(limit)).all()
        return ([{"night": n, "raw_path": p, "state": st, "stage": stage, "reason": reason,
                  "telescope": scope or "(unnamed)"}
                 for n, p, st, stage, reason, scope in rows], total)

    def overview(self, night_keys: list[str | None] | None = None) -> dict:
        """The counts of frames, nights, stars and measurements, and the last run; the nights
        counted from ``night_keys`` (:meth:`night_keys`) when the caller has them."""
        if night_keys is None:
            night_keys = self.night_keys()
        with Session(self.engine) as s:
            # count(*): PostgreSQL counts from the narrowest index, not from each row's id
            frames_n, stars = s.execute(select(
                select(func.count()).select_from(Frame).scalar_subquery(),
                select(func.count()).select_from(Star).scalar_subquery())).one()
            # from the per star and filter statistics: a count of 10 M measurements takes
            # PostgreSQL ~2 s (SQLite 0.14 s over its narrowest index)
            measurements = count_measurements(s)
            run = last_run(s)  # with why it stopped, as `clinepipe status` shows it
        nights = sum(1 for k in night_keys if k is not None)
        return {"frames": frames_n, "nights": nights, "stars": stars,
                "measurements": measurements, "last_run": run}


def newest_first(entries) -> list[dict]:
    """Night entries (dicts with a ``"night"`` key, ``YYYYMMDD``) newest first, those without a
    night (files that could not be read) at the end."""
    dated = sorted((e for e in entries if e["night"]), key=lambda e: e["night"], reverse=True)
    return dated + [e for e in entries if not e["night"]]
