"""The read-only web dashboard: nights and failures, the star table, a star's light curve,
the transit fits (:mod:`clinepipe.web.transits`).

``create_app(cfg_or_engine)`` builds a FastAPI app that only *reads* the database: every route
is GET/HEAD, any other method is answered 405 before it reaches a route, and the only SQL it
sends is SELECTs built with SQLAlchemy (bound parameters, never string formatting).
Everything the browser loads comes from the app itself (``/static``); a
Content-Security-Policy tells the browser so too. Pages are Jinja2 templates; the light
curve is drawn by ``static/lightcurve.js`` from ``/api/stars/{id}/lightcurve``.

Odd input (unknown or non-numeric ids, path tricks, unknown sort keys) gives a friendly 404
page or is ignored; it never reaches the database unchecked and never gives a 500.

The pages are in ``pages``, the JSON in ``api``, the database reads in ``dashboard``.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path, PurePosixPath

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException

from clinepipe import __version__
from clinepipe.web.api import add_api
from clinepipe.web.dashboard import Dashboard
from clinepipe.web.pages import add_pages
from clinepipe.web.routing import HERE, get_route, not_found

__all__ = ["create_app"]


PAGE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'self'")


# the morning report is our own static HTML (inline styles, embedded images): nothing remote
REPORT_CSP = ("default-src 'self' 'unsafe-inline' data:; connect-src 'none'; object-src 'none'; "
              "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


def create_app(cfg_or_engine, *, archive: str | Path | None = None,
               obscode: str | None = None) -> FastAPI:
    """The dashboard for a :class:`~clinepipe.config.Config` (its database, archive and AAVSO
    observer code) or for an SQLAlchemy ``Engine`` (then ``archive`` and ``obscode`` may be
    given here). The app never writes to the database."""
    from clinepipe.config import PhotometryConfig
    from clinepipe.variability.table import DEFAULT_EXCLUDE_QC

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
    dash = Dashboard(engine, Path(archive) if archive else None, (obscode or "").strip(),
                      site_name, exclude_qc)
    dash.photometry = photometry  # the aperture and annulus the frame cut-outs draw

    app = FastAPI(title="clinepipe dashboard", version=__version__, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.add_middleware(_ReadOnlyHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.state.dashboard = dash
    add_error_handlers(app, dash)
    add_pages(app, dash)
    add_api(app, dash)
    add_reports(app, dash)
    from clinepipe.web.transits import transits_router

    app.include_router(transits_router(dash))
    return app


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


def add_error_handlers(app: FastAPI, dash: Dashboard) -> None:
    """Make every error a page in the dashboard's style (JSON ``{"detail": ...}`` under
    ``/api/``): 404 with the route's message, 405 "read-only", 503 when the database cannot be
    read, 500 for a bug (logged by the server, never a traceback for the reader). Invalid
    parameters are a 404, as for an address that does not exist."""
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


def add_reports(app: FastAPI, dash: Dashboard) -> None:
    """Serve the morning reports, ``archive/reports/<night>/``, at ``/reports/<night>/``; any
    path leaving that folder (``..``, hidden files, absolute paths, symlinks out) is a 404."""
    @get_route(app, "/reports/{night}")
    def report_redirect(night: str):
        if dash.report_dir(night) is None:
            raise not_found(f"No morning report for night {night[:20]!r}.")
        return RedirectResponse(f"/reports/{night}/", status_code=307)

    @get_route(app, "/reports/{night}/{path:path}")
    def report_file(night: str, path: str):
        folder = dash.report_dir(night)
        if folder is None:
            raise not_found(f"No morning report for night {night[:20]!r}.")
        rel = PurePosixPath(path or "index.html")
        if path.endswith("/"):
            rel = rel / "index.html"
        if rel.is_absolute() or any(part in ("..", "") or part.startswith(".") or "\\" in part
                                    or "\x00" in part for part in rel.parts):
            raise not_found("No such file in the report.")
        root = folder.resolve()
        target = (root / rel).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise not_found("No such file in the report.")
        media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return FileResponse(target, media_type=media_type)
