"""The read-only web dashboard: nights and failures, the star table, a star's light curve.

``create_app(cfg_or_engine)`` builds a FastAPI app that only *reads* the database: every route
is GET/HEAD, any other method is answered 405 before it reaches a route, and the only SQL it
sends is SELECTs built with SQLAlchemy (bound parameters, never string formatting).
Everything the browser loads comes from the app itself (``/static``); a
Content-Security-Policy tells the browser so too. Pages are Jinja2 templates; the light
curve is drawn by ``static/lightcurve.js`` from ``/api/stars/{id}/lightcurve``.

Odd input (unknown or non-numeric ids, path tricks, unknown sort keys) gives a friendly 404
page or is ignored; it never reaches the database unchecked and never gives a 500.
"""

from __future__ import annotations

import json
import math
import mimetypes
import re
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException

from clinepipe import __version__
from clinepipe.errors import ClinepipeError
from clinepipe.store.db import last_run, several_telescopes
from clinepipe.store.models import CatalogMatch, Frame, Measurement, Star
from clinepipe.finite import finite_or_none

__all__ = ["create_app", "LIGHTCURVE_FIELDS"]

HERE = Path(__file__).resolve().parent

#: the ``export --format csv`` columns, in order: the JSON light curve has exactly these keys
LIGHTCURVE_FIELDS = ("star_id", "ra", "dec", "filter", "jd_mid", "bjd_tdb", "mag", "mag_err",
                     "inst_mag", "inst_mag_err", "zero_point", "airmass", "exptime", "frame",
                     "flags")
#: frame states shown as columns on the nights page, in this order (others, if any, follow)
FRAME_STATES = ("calibrated", "measured", "waiting", "failed", "used", "rejected", "duplicate")
ATTENTION_STATES = ("failed", "waiting")  # files not fully processed: listed with their reason
NOTE_STATES = ("rejected", "duplicate")  # left out on purpose: listed, folded away
STAR_SORTS = ("id", "mag", "var")
STARS_PER_PAGE = 50
NIGHTS_PER_PAGE = 31
MAX_LISTED_FILES = 1000
MIN_VAR_POINTS = 5  # fewest good points before an rms / chi2 is shown
MAX_ID_DIGITS = 18  # fits a signed 64-bit integer: larger "ids" are simply not found
NIGHT_RE = re.compile(r"\d{8}")
PAGE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'self'")
# the morning report is our own static HTML (inline styles, embedded images): nothing remote
REPORT_CSP = ("default-src 'self' 'unsafe-inline' data:; connect-src 'none'; object-src 'none'; "
              "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


# ----------------------------------------------------------------------------- app factory

def create_app(cfg_or_engine, *, archive: str | Path | None = None,
               obscode: str | None = None) -> FastAPI:
    """The dashboard for a :class:`~clinepipe.config.Config` (its database, archive and AAVSO
    observer code) or for an SQLAlchemy ``Engine`` (then ``archive`` and ``obscode`` may be
    given here). The app never writes to the database."""
    from clinepipe.variability.table import DEFAULT_EXCLUDE_QC

    from clinepipe.config import PhotometryConfig

    exclude_qc = DEFAULT_EXCLUDE_QC
    photometry = PhotometryConfig()
    if isinstance(cfg_or_engine, Engine):
        engine, site_name = cfg_or_engine, "Observatory"
    else:
        from clinepipe.store.db import open_database

        cfg = cfg_or_engine
        engine = open_database(cfg.database.url)
        archive = archive if archive is not None else cfg.paths.archive
        obscode = obscode if obscode is not None else cfg.aavso.obscode
        site_name = cfg.site.name
        exclude_qc = tuple(cfg.qc.exclude_from_variability)
        photometry = cfg.photometry
    dash = _Dashboard(engine, Path(archive) if archive else None, (obscode or "").strip(),
                      site_name, exclude_qc)
    dash.photometry = photometry  # the aperture and annulus the frame cut-outs draw

    app = FastAPI(title="clinepipe dashboard", version=__version__, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.add_middleware(_ReadOnlyHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.state.dashboard = dash
    _add_error_handlers(app, dash)
    _add_pages(app, dash)
    _add_api(app, dash)
    _add_reports(app, dash)
    return app


def _get(app: FastAPI, path: str, **kwargs):
    """``@app.get`` that also answers HEAD (FastAPI routes do not add HEAD by themselves)."""
    return app.api_route(path, methods=["GET", "HEAD"], **kwargs)


class _ReadOnlyHeaders:
    """ASGI middleware: 405 for any method but GET/HEAD; security headers on every answer."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] not in ("GET", "HEAD"):
            response = Response("This dashboard is read-only: only GET and HEAD requests.\n",
                                status_code=405, media_type="text/plain",
                                headers={"Allow": "GET, HEAD"})
            return await response(scope, receive, send)
        csp = REPORT_CSP if scope["path"].startswith("/reports/") else PAGE_CSP

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", csp)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("X-Frame-Options", "SAMEORIGIN")
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ----------------------------------------------------------------------------- data

@dataclass
class FilterStats:
    filter: str
    n: int
    mean_mag: float | None
    rms: float | None
    chi2_red: float | None


@dataclass
class StarRow:
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
class _StarTable:
    key: tuple
    rows: list[StarRow]
    by_id: dict[int, StarRow]
    filters: list[str]  # every filter with calibrated points, most useful first


class _Dashboard:
    """Read-only queries behind the pages, with small caches keyed on the data they summarise."""

    def __init__(self, engine: Engine, archive: Path | None, obscode: str, site_name: str,
                 exclude_qc=()):
        self.engine = engine
        self.exclude_qc = tuple(exclude_qc)
        self.archive = archive
        self.obscode = obscode
        self.site_name = site_name
        self._lock = threading.Lock()
        self._stars: _StarTable | None = None
        self._periods: OrderedDict = OrderedDict()
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(["html"]), trim_blocks=True,
                               lstrip_blocks=True)
        self.env.filters.update(num=_num, ra_hms=_ra_hms, dec_dms=_dec_dms, night=_night_label)
        url = engine.url
        self.env.globals.update(version=__version__, site_name=site_name,
                                database=f"{Path(url.database or '').name or 'the'} "
                                         f"({url.get_backend_name()})")

    def render(self, template: str, status_code: int = 200, **context) -> HTMLResponse:
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status_code)

    # -- stars -------------------------------------------------------------------------

    def star_table(self) -> _StarTable:
        """Every star with its counts and, per filter, the mean magnitude, rms and reduced
        chi-square of its calibrated points, as ``clinepipe variables`` computes them
        (:func:`~clinepipe.variability.statistics.lightcurve_statistics`: flagged points, frames
        with an excluded QC flag and isolated outliers left out) but from 5 points on and
        without the period search. Kept in memory until the measurements or stars change."""
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
        table = _StarTable(key, rows, by_id, ordered_filters(popularity))
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
        from clinepipe.store.db import lightcurve

        several = several_telescopes(self.engine)
        rows = lightcurve(self.engine, star_id, filter=filter, since=since, until=until,
                          telescope=several)
        fields = LIGHTCURVE_FIELDS + (("telescope",) if several else ())
        return [{k: _plain(row.get(k)) for k in fields} for row in rows]

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

    def nights(self) -> list[dict]:
        """Every night, newest first (frames without a night last): counts per state and kind."""
        with Session(self.engine) as s:
            states = s.execute(select(Frame.night, Frame.state, func.count(Frame.id))
                               .group_by(Frame.night, Frame.state)).all()
            kinds = s.execute(select(Frame.night, Frame.kind, func.count(Frame.id))
                              .group_by(Frame.night, Frame.kind)).all()
            scopes = s.execute(select(Frame.night, Frame.telescope, func.count(Frame.id))
                               .group_by(Frame.night, Frame.telescope)).all()
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
        return _newest_first(nights.values())

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

    def overview(self) -> dict:
        with Session(self.engine) as s:
            counts = s.execute(select(
                select(func.count(Frame.id)).scalar_subquery(),
                select(func.count(func.distinct(Frame.night))).scalar_subquery(),
                select(func.count(Star.id)).scalar_subquery(),
                select(func.count(Measurement.id)).scalar_subquery())).one()
            run = last_run(s)  # with why it stopped, as `clinepipe status` shows it
        frames, nights, stars, measurements = counts
        return {"frames": frames, "nights": nights, "stars": stars,
                "measurements": measurements, "last_run": run}


def _newest_first(entries) -> list[dict]:
    dated = sorted((e for e in entries if e["night"]), key=lambda e: e["night"], reverse=True)
    return dated + [e for e in entries if not e["night"]]


# ----------------------------------------------------------------------------- helpers


def _plain(value):
    """Database / numpy scalars as plain JSON values."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
        if not isinstance(value, float):
            return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def _parse_id(text: str) -> int | None:
    """A star id from a URL segment: plain digits that fit the database's integers."""
    if text and text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS:
        return int(text)
    return None


def _parse_int(text: str | None, default: int, lo: int, hi: int) -> int:
    try:
        return min(hi, max(lo, int(text)))
    except (TypeError, ValueError):
        return default


def _parse_float(text: str | None) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _num(value, fmt: str = ".3f", missing: str = "—") -> str:
    value = finite_or_none(value)
    return missing if value is None else format(value, fmt)


def _ra_hms(ra) -> str:
    if finite_or_none(ra) is None:
        return "—"
    centi = round((float(ra) % 360.0) / 15.0 * 3600 * 100)
    h, rest = divmod(centi, 3600 * 100)
    m, cs = divmod(rest, 60 * 100)
    return f"{int(h) % 24:02d}h {int(m):02d}m {cs / 100:05.2f}s"


def _dec_dms(dec) -> str:
    if finite_or_none(dec) is None:
        return "—"
    sign = "−" if dec < 0 else "+"
    deci = round(abs(float(dec)) * 3600 * 10)
    d, rest = divmod(deci, 3600 * 10)
    m, ds = divmod(rest, 60 * 10)
    return f"{sign}{int(d):02d}° {int(m):02d}′ {ds / 10:04.1f}″"


def _night_label(night: str | None) -> str:
    if not night:
        return "no night (file not read)"
    if NIGHT_RE.fullmatch(night):
        return f"{night[:4]}-{night[4:6]}-{night[6:]}"
    return night


def _jd_to_utc(jd) -> str:
    jd = finite_or_none(jd)
    if jd is None:
        return "—"
    try:
        when = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(days=jd - 2440587.5)
    except OverflowError:
        return "—"
    return when.strftime("%Y-%m-%d %H:%M UTC")


# ----------------------------------------------------------------------------- errors

def _add_error_handlers(app: FastAPI, dash: _Dashboard) -> None:
    def error_page(request: Request, status: int, title: str, message: str):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message}, status_code=status)
        return dash.render("error.html", status, status=status, title=title, message=message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if exc.status_code == 404:
            message = exc.detail if isinstance(exc.detail, str) and exc.detail != "Not Found" \
                else "There is no page at this address."
            return error_page(request, 404, "Not found", message)
        if exc.status_code == 405:
            return error_page(request, 405, "Read-only",
                              "This dashboard only shows data; it cannot change anything.")
        return error_page(request, exc.status_code, "Sorry",
                          str(exc.detail) if exc.detail else "That did not work.")

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError):
        return error_page(request, 404, "Not found", "There is no page at this address.")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):  # logged by uvicorn; the reader sees a page
        return error_page(request, 500, "Something went wrong",
                          "This page could not be shown because of a bug in clinepipe; "
                          "the server log has the details.")

    @app.exception_handler(SQLAlchemyError)
    async def database_error(request: Request, exc: SQLAlchemyError):
        return error_page(request, 503, "Database not ready",
                          "The database cannot be read right now (has `clinepipe run` or "
                          "`clinepipe db upgrade` created it?). Try again in a moment.")


def _not_found(message: str) -> HTTPException:
    return HTTPException(status_code=404, detail=message)


# ----------------------------------------------------------------------------- pages

def _add_pages(app: FastAPI, dash: _Dashboard) -> None:
    @_get(app, "/", response_class=HTMLResponse)
    def nights_page(page: str | None = None):
        overview = dash.overview()
        nights = dash.nights()
        pages = max(1, math.ceil(len(nights) / NIGHTS_PER_PAGE))
        number = _parse_int(page, 1, 1, pages)
        shown = nights[(number - 1) * NIGHTS_PER_PAGE: number * NIGHTS_PER_PAGE]
        present = {st for n in nights for st in n["states"]}
        states = [st for st in FRAME_STATES] + sorted(present - set(FRAME_STATES))
        attention, n_attention = dash.files_with_reasons(ATTENTION_STATES)
        notes, n_notes = dash.files_with_reasons(NOTE_STATES)
        return dash.render("nights.html", nav="nights", overview=overview, nights=shown,
                           states=states, page=number, pages=pages, attention=attention,
                           n_attention=n_attention, notes=notes, n_notes=n_notes,
                           several=several_telescopes(dash.engine))

    @_get(app, "/stars", response_class=HTMLResponse)
    def stars_page(q: str | None = None, sort: str | None = None, page: str | None = None):
        table = dash.star_table()
        sort = sort if sort in STAR_SORTS else "id"
        query = (q or "").strip()[:100]
        rows = table.rows
        message = None
        if query:
            found = _search_star(dash, query)
            if isinstance(found, int):
                return RedirectResponse(f"/stars/{found}", status_code=303)
            rows = [table.by_id[i] for i in found if i in table.by_id]
            message = (f"{len(rows)} star(s) whose name or catalog id contains “{query}”."
                       if rows else f"No star matches “{query}”. Try a star id, a catalog id, "
                                    f"a variable-star name or “RA Dec” in degrees.")
        ref = table.filters[0] if table.filters else None
        rows = _sorted_stars(rows, sort, ref)
        pages = max(1, math.ceil(len(rows) / STARS_PER_PAGE))
        number = _parse_int(page, 1, 1, pages)
        shown = rows[(number - 1) * STARS_PER_PAGE: number * STARS_PER_PAGE]
        return dash.render("stars.html", status_code=404 if query and not rows else 200,
                           nav="stars", rows=shown, n_rows=len(rows), n_all=len(table.rows),
                           filters=table.filters[:4], ref=ref, sort=sort, q=query,
                           message=message, page=number, pages=pages,
                           first=(number - 1) * STARS_PER_PAGE + 1)

    @_get(app, "/stars/{star_id}", response_class=HTMLResponse)
    def star_page(star_id: str):
        sid = _parse_id(star_id)
        if sid is None:
            raise _not_found(f"“{star_id[:40]}” is not a star id (star ids are whole numbers).")
        with Session(dash.engine) as s:
            star = s.get(Star, sid)
            if star is None:
                raise _not_found(f"There is no star {sid} in the database.")
            star = {c: getattr(star, c) for c in ("id", "ra", "dec", "catalog_id", "name",
                                                   "var_type", "var_period")}
            matches = s.execute(select(CatalogMatch.catalog, CatalogMatch.catalog_id,
                                       CatalogMatch.separation, CatalogMatch.mags)
                                .where(CatalogMatch.star_id == sid)
                                .order_by(CatalogMatch.catalog)).all()
            prev_id = s.scalar(select(func.max(Star.id)).where(Star.id < sid))
            next_id = s.scalar(select(func.min(Star.id)).where(Star.id > sid))
        catalog = [{"catalog": c, "catalog_id": cid, "separation": sep, "mags": _mags(mags)}
                   for c, cid, sep, mags in matches]
        points = dash.lightcurve(sid)
        row = dash.star_table().by_id.get(sid)
        period = dash.star_period(sid, points)
        # the fold box starts with a period worth trying: our own, found only for a star that
        # varies (as in `clinepipe variables`), else the known-variable catalogue's, else
        # empty (a constant star's noise peaks would mislead)
        if period:
            prefill = period["period"]
        else:
            prefill = finite_or_none(star["var_period"])
        jds = [p["jd_mid"] for p in points if p["jd_mid"] is not None]
        return dash.render("star.html", nav="stars", star=star, catalog=catalog,
                           stats=list(row.filters.values()) if row else [],
                           n=len(points), period=period, prefill=prefill,
                           first=_jd_to_utc(min(jds)) if jds else "—",
                           last=_jd_to_utc(max(jds)) if jds else "—",
                           prev_id=prev_id, next_id=next_id, obscode=dash.obscode)

    _add_frame_pages(app, dash)


def _add_frame_pages(app: FastAPI, dash: _Dashboard) -> None:
    """The frame behind a point of a star's light curve (issue 19, item 20): a page with the
    measurement, the frame's QC and previous/next links, and the cut-out PNG."""
    from clinepipe.web.frames import aperture_of, cutout_png, frame_view, read_frame_image

    def view(star_id: str, frame_id: str) -> dict:
        sid, fid = _parse_id(star_id), _parse_id(frame_id)
        found = None if sid is None or fid is None else frame_view(dash.engine, sid, fid)
        if found is None:
            raise _not_found(f"Star {star_id[:40]} has no measurement in frame {frame_id[:40]}.")
        found["star_id"] = sid
        return found

    @_get(app, "/stars/{star_id}/frame")
    def frame_by_path(star_id: str, path: str = "", jd: str | None = None):
        """Where a click on the light curve (which knows the frame's file) goes."""
        sid = _parse_id(star_id)
        with Session(dash.engine) as s:
            query = (select(Measurement.frame_id).join(Frame, Frame.id == Measurement.frame_id)
                     .where(Measurement.star_id == sid, Frame.raw_path == path[:1024]))
            jd_mid = _parse_float(jd)
            if jd_mid is not None:
                query = query.order_by(func.abs(Measurement.jd_mid - jd_mid))
            fid = s.scalars(query.limit(1)).first() if sid is not None else None
        if fid is None:
            raise _not_found(f"Star {star_id[:40]} has no measurement in “{path[:80]}”.")
        return RedirectResponse(f"/stars/{sid}/frames/{fid}", status_code=303)

    @_get(app, "/stars/{star_id}/frames/{frame_id}", response_class=HTMLResponse)
    def frame_page(star_id: str, frame_id: str):
        found = view(star_id, frame_id)
        fr = found["frame"]
        kept = read_frame_image(dash.archive, fr["calibrated_path"]) is not None
        annulus = tuple(dash.photometry.annulus) if dash.photometry.annulus else None
        return dash.render("frame.html", nav="stars", v=found, kept=kept, annulus=annulus,
                           aperture=aperture_of(dash.photometry, fr["fwhm"]),
                           utc=_jd_to_utc(fr["jd_mid"]))

    @_get(app, "/stars/{star_id}/frames/{frame_id}/cutout.png")
    def frame_cutout(star_id: str, frame_id: str):
        found = view(star_id, frame_id)
        image = read_frame_image(dash.archive, found["frame"]["calibrated_path"])
        if image is None:
            raise _not_found("The calibrated frame was not kept ([archive] keep_calibrated).")
        p = found["point"]
        png = cutout_png(image, p["x"] - 1.0, p["y"] - 1.0,  # 1-based in the database
                         aperture=aperture_of(dash.photometry, found["frame"]["fwhm"]),
                         annulus=tuple(dash.photometry.annulus) if dash.photometry.annulus else None,
                         neighbours=[(n["x"] - 1.0, n["y"] - 1.0) for n in found["neighbours"]])
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


def _search_star(dash: _Dashboard, query: str) -> int | list[int]:
    """The star a query names (id, catalog id, name, "RA DEC"), else ids of stars whose
    name or catalog id contains it."""
    import numpy as np

    from clinepipe.errors import UsageError
    from clinepipe.store.queries import resolve_star

    digits = query.replace(" ", "")
    if digits.isdigit() and len(digits) > MAX_ID_DIGITS:
        return []
    with Session(dash.engine) as s:
        try:
            with np.errstate(invalid="ignore"):  # "inf inf" is merely not found
                return resolve_star(s, query)
        except (UsageError, ValueError, OverflowError):
            pass
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return list(s.scalars(select(Star.id).where(or_(
            Star.name.ilike(pattern, escape="\\"), Star.catalog_id.ilike(pattern, escape="\\")))
            .order_by(Star.id).limit(10000)))


def _sorted_stars(rows: list[StarRow], sort: str, ref: str | None) -> list[StarRow]:
    if sort == "mag":
        def key(r):
            stats = r.filters.get(ref) if ref else None
            return (stats is None, stats.mean_mag if stats else 0.0, r.star_id)
    elif sort == "var":
        def key(r):
            var = r.var_filter
            return (var is None, -(var.chi2_red if var else 0.0), r.star_id)
    else:
        def key(r):
            return r.star_id
    return sorted(rows, key=key)


def _mags(text: str | None) -> list[tuple]:
    """``{"V": [mag, err], ...}`` (JSON) as sorted (band, mag, err) triples; junk → []."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return []
    out = []
    if isinstance(data, dict):
        for band, value in sorted(data.items()):
            if isinstance(value, (list, tuple)) and value:
                out.append((str(band), finite_or_none(value[0]),
                            finite_or_none(value[1]) if len(value) > 1 else None))
            else:
                out.append((str(band), finite_or_none(value), None))
    return out


# ----------------------------------------------------------------------------- JSON and files

def _add_api(app: FastAPI, dash: _Dashboard) -> None:
    def known_star(star_id: str) -> int:
        sid = _parse_id(star_id)
        if sid is None or not dash.star_exists(sid):
            raise _not_found(f"no star {star_id[:40]!r} in the database.")
        return sid

    def clean_filter(value: str | None) -> str | None:
        return value.strip()[:32] if value and value.strip() else None

    @_get(app, "/api/stars/{star_id}/lightcurve")
    def lightcurve_json(star_id: str, filter: str | None = None, since: str | None = None,
                        until: str | None = None):
        sid = known_star(star_id)
        return JSONResponse(dash.lightcurve(sid, clean_filter(filter), _parse_float(since),
                                            _parse_float(until)))

    @_get(app, "/api/stars/{star_id}/lightcurve.csv")
    def lightcurve_csv(star_id: str, filter: str | None = None):
        sid = known_star(star_id)
        from clinepipe.store.export import export_csv

        return _exported(lambda out: export_csv(dash.engine, out, star_ids=[sid],
                                                filter=clean_filter(filter)),
                         f"star_{sid}_lightcurve.csv", "text/csv; charset=utf-8")

    @_get(app, "/api/stars/{star_id}/aavso.txt")
    def lightcurve_aavso(star_id: str, filter: str | None = None):
        sid = known_star(star_id)
        from clinepipe.store.export import export_aavso

        try:  # validated before it is written: no observer code, no file (issue 21)
            return _exported(lambda out: export_aavso(dash.engine, out, obscode=dash.obscode,
                                                      star_ids=[sid], filter=clean_filter(filter)),
                             f"star_{sid}_aavso.txt", "text/plain; charset=utf-8")
        except ClinepipeError as exc:
            raise HTTPException(409, exc.message) from exc

    @_get(app, "/api/stars")
    def stars_json(sort: str | None = None, limit: str | None = None, offset: str | None = None):
        table = dash.star_table()
        rows = _sorted_stars(table.rows, sort if sort in STAR_SORTS else "id",
                             table.filters[0] if table.filters else None)
        start = _parse_int(offset, 0, 0, len(rows))
        count = _parse_int(limit, len(rows), 0, len(rows))
        return JSONResponse([r.as_json() for r in rows[start:start + count]])

    @_get(app, "/api/nights")
    def nights_json():
        attention, _ = dash.files_with_reasons(ATTENTION_STATES, limit=100000)
        by_night: dict = {}
        for f in attention:
            by_night.setdefault(f["night"], []).append(
                {k: f[k] for k in ("raw_path", "state", "stage", "reason")})
        return JSONResponse([{**n, "failures": by_night.get(n["night"], [])}
                             for n in dash.nights()])


def _exported(write, filename: str, media_type: str) -> Response:
    """Run an exporter into a temporary file and answer with its bytes as a download."""
    with tempfile.TemporaryDirectory(prefix="clinepipe-web-") as tmp:
        out = Path(tmp) / filename
        write(out)
        content = out.read_bytes()
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# ----------------------------------------------------------------------------- morning reports

def _add_reports(app: FastAPI, dash: _Dashboard) -> None:
    @_get(app, "/reports/{night}")
    def report_redirect(night: str):
        if dash.report_dir(night) is None:
            raise _not_found(f"No morning report for night {night[:20]!r}.")
        return RedirectResponse(f"/reports/{night}/", status_code=307)

    @_get(app, "/reports/{night}/{path:path}")
    def report_file(night: str, path: str):
        folder = dash.report_dir(night)
        if folder is None:
            raise _not_found(f"No morning report for night {night[:20]!r}.")
        rel = PurePosixPath(path or "index.html")
        if path.endswith("/"):
            rel = rel / "index.html"
        if rel.is_absolute() or any(part in ("..", "") or part.startswith(".") or "\\" in part
                                    or "\x00" in part for part in rel.parts):
            raise _not_found("No such file in the report.")
        root = folder.resolve()
        target = (root / rel).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise _not_found("No such file in the report.")
        media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return FileResponse(target, media_type=media_type)
