"""The JSON API the pages' scripts read: stars, a star's light curve and period, nights.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import (
    JSONResponse,
    Response,
)
from starlette.exceptions import HTTPException

from clinepipe.errors import ClinepipeError
from clinepipe.web.dashboard import Dashboard
from clinepipe.web.pages import sorted_stars
from clinepipe.web.routing import get_route, not_found
from clinepipe.web.values import (
    ATTENTION_STATES,
    STAR_SORTS,
    parse_float,
    parse_id,
    parse_int,
)


def add_api(app: FastAPI, dash: Dashboard) -> None:
    """Add the JSON and download routes under ``/api/`` to ``app``: a star's light curve (JSON,
    CSV, AAVSO extended format), the star list and the nights with their failed files. Light
    curve times are ``jd_mid`` (UTC JD) and ``bjd_tdb`` (days), magnitudes in mag, as in
    ``clinepipe export``."""
    def known_star(star_id: str) -> int:
        sid = parse_id(star_id)
        if sid is None or not dash.star_exists(sid):
            raise not_found(f"no star {star_id[:40]!r} in the database.")
        return sid

    def clean_filter(value: str | None) -> str | None:
        return value.strip()[:32] if value and value.strip() else None

    @get_route(app, "/api/stars/{star_id}/lightcurve")
    def lightcurve_json(star_id: str, filter: str | None = None, since: str | None = None,
                        until: str | None = None):
        sid = known_star(star_id)
        return JSONResponse(dash.lightcurve(sid, clean_filter(filter), parse_float(since),
                                            parse_float(until)))

    @get_route(app, "/api/stars/{star_id}/lightcurve.csv")
    def lightcurve_csv(star_id: str, filter: str | None = None):
        sid = known_star(star_id)
        from clinepipe.products.export import export_csv

        return exported(lambda out: export_csv(dash.engine, out, star_ids=[sid],
                                                filter=clean_filter(filter)),
                         f"star_{sid}_lightcurve.csv", "text/csv; charset=utf-8")

    @get_route(app, "/api/stars/{star_id}/aavso.txt")
    def lightcurve_aavso(star_id: str, filter: str | None = None):
        sid = known_star(star_id)
        from clinepipe.products.export import export_aavso

        try:  # validated before it is written: no observer code, no file (issue 21)
            return exported(lambda out: export_aavso(dash.engine, out, obscode=dash.obscode,
                                                      star_ids=[sid], filter=clean_filter(filter)),
                             f"star_{sid}_aavso.txt", "text/plain; charset=utf-8")
        except ClinepipeError as exc:
            raise HTTPException(409, exc.message) from exc

    @get_route(app, "/api/stars")
    def stars_json(sort: str | None = None, limit: str | None = None, offset: str | None = None):
        table = dash.star_table()
        rows = sorted_stars(table.rows, sort if sort in STAR_SORTS else "id",
                             table.filters[0] if table.filters else None)
        start = parse_int(offset, 0, 0, len(rows))
        count = parse_int(limit, len(rows), 0, len(rows))
        return JSONResponse([r.as_json() for r in rows[start:start + count]])

    @get_route(app, "/api/nights")
    def nights_json():
        attention, _ = dash.files_with_reasons(ATTENTION_STATES, limit=100000)
        by_night: dict = {}
        for f in attention:
            by_night.setdefault(f["night"], []).append(
                {k: f[k] for k in ("raw_path", "state", "stage", "reason")})
        return JSONResponse([{**n, "failures": by_night.get(n["night"], [])}
                             for n in dash.nights()])


def exported(write, filename: str, media_type: str) -> Response:
    """Run an exporter into a temporary file and answer with its bytes as a download."""
    with tempfile.TemporaryDirectory(prefix="clinepipe-web-") as tmp:
        out = Path(tmp) / filename
        write(out)
        content = out.read_bytes()
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
