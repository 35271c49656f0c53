"""The HTML pages: nights, a night, the star table (sorted, paginated, searched by id, name or
position), a star and its light curve, a frame behind a light-curve point.
"""

from __future__ import annotations

import math

from fastapi import FastAPI
from fastapi.responses import (
    HTMLResponse,
    RedirectResponse,
    Response,
)
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from clinepipe.finite import finite_or_none
from clinepipe.store.measurement_rows import several_telescopes
from clinepipe.store.models import CatalogMatch, Frame, Measurement, Star
from clinepipe.web.dashboard import Dashboard, StarRow
from clinepipe.web.routing import get_route, not_found
from clinepipe.web.values import (
    ATTENTION_STATES,
    FRAME_STATES,
    MAX_ID_DIGITS,
    NIGHTS_PER_PAGE,
    NOTE_STATES,
    STAR_SORTS,
    STARS_PER_PAGE,
    catalog_mags,
    jd_to_utc,
    parse_float,
    parse_id,
    parse_int,
)


def add_pages(app: FastAPI, dash: Dashboard) -> None:
    """Add the dashboard's HTML pages to ``app``, answered from ``dash``'s read-only queries: the
    nights (``/``), the star list (``/stars``), a star (``/stars/{id}``) and its frames and
    cut-outs (``/stars/{id}/frames/{frame}``). Odd query values fall back to defaults; an
    unknown star or frame is a 404 page."""
    @get_route(app, "/", response_class=HTMLResponse)
    def nights_page(page: str | None = None):
        keys = dash.night_keys()  # only the page's nights are aggregated
        overview = dash.overview(keys)
        pages = max(1, math.ceil(len(keys) / NIGHTS_PER_PAGE))
        number = parse_int(page, 1, 1, pages)
        shown = dash.nights(only=keys[(number - 1) * NIGHTS_PER_PAGE: number * NIGHTS_PER_PAGE])
        present = dash.frame_states()
        states = [st for st in FRAME_STATES] + sorted(present - set(FRAME_STATES))
        attention, n_attention = dash.files_with_reasons(ATTENTION_STATES)
        notes, n_notes = dash.files_with_reasons(NOTE_STATES)
        return dash.render("nights.html", nav="nights", overview=overview, nights=shown,
                           states=states, page=number, pages=pages, attention=attention,
                           n_attention=n_attention, notes=notes, n_notes=n_notes,
                           several=several_telescopes(dash.engine))

    @get_route(app, "/stars", response_class=HTMLResponse)
    def stars_page(q: str | None = None, sort: str | None = None, page: str | None = None):
        table = dash.star_table()
        sort = sort if sort in STAR_SORTS else "id"
        query = (q or "").strip()[:100]
        rows = table.rows
        message = None
        if query:
            found = search_star(dash, query)
            if isinstance(found, int):
                return RedirectResponse(f"/stars/{found}", status_code=303)
            rows = [table.by_id[i] for i in found if i in table.by_id]
            message = (f"{len(rows)} star(s) whose name or catalog id contains “{query}”."
                       if rows else f"No star matches “{query}”. Try a star id, a catalog id, "
                                    f"a variable-star name or “RA Dec” in degrees.")
        ref = table.filters[0] if table.filters else None
        rows = sorted_stars(rows, sort, ref)
        pages = max(1, math.ceil(len(rows) / STARS_PER_PAGE))
        number = parse_int(page, 1, 1, pages)
        shown = rows[(number - 1) * STARS_PER_PAGE: number * STARS_PER_PAGE]
        return dash.render("stars.html", status_code=404 if query and not rows else 200,
                           nav="stars", rows=shown, n_rows=len(rows), n_all=len(table.rows),
                           filters=table.filters[:4], ref=ref, sort=sort, q=query,
                           message=message, page=number, pages=pages,
                           first=(number - 1) * STARS_PER_PAGE + 1)

    @get_route(app, "/stars/{star_id}", response_class=HTMLResponse)
    def star_page(star_id: str):
        sid = parse_id(star_id)
        if sid is None:
            raise not_found(f"“{star_id[:40]}” is not a star id (star ids are whole numbers).")
        with Session(dash.engine) as s:
            star = s.get(Star, sid)
            if star is None:
                raise not_found(f"There is no star {sid} in the database.")
            star = {c: getattr(star, c) for c in ("id", "ra", "dec", "catalog_id", "name",
                                                   "var_type", "var_period")}
            matches = s.execute(select(CatalogMatch.catalog, CatalogMatch.catalog_id,
                                       CatalogMatch.separation, CatalogMatch.mags)
                                .where(CatalogMatch.star_id == sid)
                                .order_by(CatalogMatch.catalog)).all()
            prev_id = s.scalar(select(func.max(Star.id)).where(Star.id < sid))
            next_id = s.scalar(select(func.min(Star.id)).where(Star.id > sid))
        catalog = [{"catalog": c, "catalog_id": cid, "separation": sep, "mags": catalog_mags(mags)}
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
                           first=jd_to_utc(min(jds)) if jds else "—",
                           last=jd_to_utc(max(jds)) if jds else "—",
                           prev_id=prev_id, next_id=next_id, obscode=dash.obscode)

    add_frame_pages(app, dash)


def add_frame_pages(app: FastAPI, dash: Dashboard) -> None:
    """The frame behind a point of a star's light curve (issue 19, item 20): a page with the
    measurement, the frame's QC and previous/next links, and the cut-out PNG."""
    from clinepipe.web.frames import (
        aperture_of,
        cutout_png,
        frame_view,
        read_frame_image,
    )

    def view(star_id: str, frame_id: str) -> dict:
        sid, fid = parse_id(star_id), parse_id(frame_id)
        found = None if sid is None or fid is None else frame_view(dash.engine, sid, fid)
        if found is None:
            raise not_found(f"Star {star_id[:40]} has no measurement in frame {frame_id[:40]}.")
        found["star_id"] = sid
        return found

    @get_route(app, "/stars/{star_id}/frame")
    def frame_by_path(star_id: str, path: str = "", jd: str | None = None):
        """Where a click on the light curve (which knows the frame's file) goes."""
        sid = parse_id(star_id)
        with Session(dash.engine) as s:
            query = (select(Measurement.frame_id).join(Frame, Frame.id == Measurement.frame_id)
                     .where(Measurement.star_id == sid, Frame.raw_path == path[:1024]))
            jd_mid = parse_float(jd)
            if jd_mid is not None:
                query = query.order_by(func.abs(Measurement.jd_mid - jd_mid))
            fid = s.scalars(query.limit(1)).first() if sid is not None else None
        if fid is None:
            raise not_found(f"Star {star_id[:40]} has no measurement in “{path[:80]}”.")
        return RedirectResponse(f"/stars/{sid}/frames/{fid}", status_code=303)

    @get_route(app, "/stars/{star_id}/frames/{frame_id}", response_class=HTMLResponse)
    def frame_page(star_id: str, frame_id: str):
        found = view(star_id, frame_id)
        fr = found["frame"]
        kept = read_frame_image(dash.archive, fr["calibrated_path"]) is not None
        annulus = tuple(dash.photometry.annulus) if dash.photometry.annulus else None
        return dash.render("frame.html", nav="stars", v=found, kept=kept, annulus=annulus,
                           aperture=aperture_of(dash.photometry, fr["fwhm"]),
                           utc=jd_to_utc(fr["jd_mid"]))

    @get_route(app, "/stars/{star_id}/frames/{frame_id}/cutout.png")
    def frame_cutout(star_id: str, frame_id: str):
        found = view(star_id, frame_id)
        image = read_frame_image(dash.archive, found["frame"]["calibrated_path"])
        if image is None:
            raise not_found("The calibrated frame was not kept ([archive] keep_calibrated).")
        p = found["point"]
        png = cutout_png(image, p["x"] - 1.0, p["y"] - 1.0,  # 1-based in the database
                         aperture=aperture_of(dash.photometry, found["frame"]["fwhm"]),
                         annulus=tuple(dash.photometry.annulus) if dash.photometry.annulus else None,
                         neighbours=[(n["x"] - 1.0, n["y"] - 1.0) for n in found["neighbours"]])
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


def search_star(dash: Dashboard, query: str) -> int | list[int]:
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


def sorted_stars(rows: list[StarRow], sort: str, ref: str | None) -> list[StarRow]:
    """``rows`` ordered for the star list: ``sort = "mag"`` by mean magnitude in filter ``ref``
    (stars without it last), ``"var"`` by largest reduced chi-square first (stars with too few
    points last), else by star id; ties by star id, so pages are stable."""
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
