"""The dashboard's transit pages (read-only): every fitted transit, and a page per transit
with its light curve and model, the fitted values, and O−C over all nights of the planet.

The fits are read from where the run writes them, ``archive/transits/<night>/<planet>/``
(``fit.json``, ``lightcurve.csv``, ``lightcurve.png``, ``aavso_exoplanet.txt``): that folder
is the one record of a fit (the database keeps no transit table). A transit's address is
``/transits/<night>/<planet folder>``; anything else under ``/transits`` is a 404 page
with a sentence, and only the files named in :data:`DOWNLOADS` are ever served.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from clinepipe.products.transit_summary import (
    aperture_scatter,
    comparison_rows,
    fitted_values,
    oc_plot_png,
)
from clinepipe.transits.outputs import read_transit_fits
from clinepipe.transits.timing import oc_series
from clinepipe.web.routing import get_route, not_found
from clinepipe.web.values import NIGHT_RE, night_label

__all__ = ["DOWNLOADS", "transits_router"]

#: a planet's folder name as the run makes it (``run.transit_fits.planet_folder``)
FOLDER_RE = re.compile(r"[A-Za-z0-9+-][A-Za-z0-9.+_-]{0,99}")
#: the files of a transit folder the dashboard hands out, with their media types
DOWNLOADS = {"fit.json": "application/json", "lightcurve.csv": "text/csv; charset=utf-8",
             "aavso_exoplanet.txt": "text/plain; charset=utf-8"}


class _TransitArchive:
    """The fits under ``archive/transits``, read afresh on each request (a run may have
    added one), as ``fit.json`` dicts with ``folder`` (Path) and ``url`` added."""

    def __init__(self, archive: Path | None):
        self.root = None if archive is None else Path(archive) / "transits"

    def all(self) -> list[dict]:
        if self.root is None:
            return []
        records = read_transit_fits(self.root.parent)
        for r in records:
            r["url"] = f"/transits/{r['folder'].parent.name}/{r['folder'].name}"
        return records

    def folder(self, night: str, planet: str) -> Path:
        """The folder of one fit; 404 (with a sentence) for anything that is not one."""
        if not NIGHT_RE.fullmatch(night or ""):
            raise not_found(f"“{night[:20]}” is not a night (nights are written YYYYMMDD).")
        if self.root is None:
            raise not_found("This dashboard has no archive folder, so no transit fits.")
        folder = self.root / night / planet
        if not FOLDER_RE.fullmatch(planet or "") or not (folder / "fit.json").is_file() \
                or not folder.resolve().is_relative_to(self.root.resolve()):
            raise not_found(f"No transit of “{planet[:60]}” was fitted in night "
                             f"{night_label(night)}.")
        return folder

    def one(self, night: str, planet: str) -> tuple[dict, list[dict]]:
        """A fit's record (``url`` added) and every fit of the same planet."""
        folder = self.folder(night, planet)
        try:
            record = json.loads((folder / "fit.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise not_found(f"The fit of “{planet[:60]}” in night {night_label(night)} "
                             "cannot be read (fit.json is damaged).") from None
        record.update(folder=folder, url=f"/transits/{night}/{planet}")
        history = [r for r in self.all() if r.get("planet") == record.get("planet")]
        return record, history


def _rows(records: list[dict]) -> list[dict]:
    """The list page's rows: each record with its formatted values by key, newest night
    first, then by planet."""
    rows = [{"r": r, "v": {v.key: v for v in fitted_values(r)}}
            for r in sorted(records, key=lambda r: str(r.get("planet", "")))]
    return sorted(rows, key=lambda x: str(x["r"].get("night", "")), reverse=True)  # stable


def _planets(records: list[dict]) -> list[dict]:
    """Per planet: how many fits, the O−C series against the newest ephemeris."""
    out = []
    for name in sorted({str(r.get("planet", "")) for r in records}):
        series = oc_series(records, planet=name)
        out.append({"planet": name, "n": sum(1 for r in records if r.get("planet") == name),
                    "series": series})
    return out


def _public(record: dict) -> dict:
    """A record as JSON: the ``fit.json`` keys and the page's address."""
    return {k: v for k, v in record.items() if k not in ("folder", "plot")}


def transits_router(dash) -> APIRouter:
    """The transit routes of the dashboard ``dash`` (its ``archive`` and ``render``); also
    gives the templates ``transits_by_night()`` (night → [(planet, url)]) for the nights
    page."""
    router = APIRouter()
    fits = _TransitArchive(dash.archive)

    def get(path: str, **kwargs):
        return get_route(router, path, **kwargs)

    def by_night() -> dict[str, list[tuple[str, str]]]:
        index: dict[str, list[tuple[str, str]]] = {}
        for r in fits.all():
            index.setdefault(str(r.get("night")), []).append((str(r.get("planet")), r["url"]))
        return index

    dash.env.globals["transits_by_night"] = by_night

    @get("/transits", response_class=HTMLResponse)
    def transits_page():
        records = fits.all()
        return dash.render("transits.html", nav="transits", rows=_rows(records),
                           planets=_planets(records), has_archive=fits.root is not None)

    @get("/transits/{night}/{planet}", response_class=HTMLResponse)
    def transit_page(night: str, planet: str):
        record, history = fits.one(night, planet)
        series = oc_series(history, planet=record.get("planet"))
        others = {r.get("night"): r["url"] for r in history}
        folder = record["folder"]
        return dash.render(
            "transit.html", nav="transits", r=record, values=fitted_values(record),
            comps=comparison_rows(record), scatter=aperture_scatter(record), series=series,
            night_urls=others, has_plot=(folder / "lightcurve.png").is_file(),
            downloads=[n for n in DOWNLOADS if (folder / n).is_file()])

    @get("/transits/{night}/{planet}/lightcurve.png")
    def transit_plot(night: str, planet: str):
        png = fits.folder(night, planet) / "lightcurve.png"
        if not png.is_file():
            raise not_found("This fit has no plot (lightcurve.png is missing).")
        return FileResponse(png, media_type="image/png")

    @get("/transits/{night}/{planet}/oc.png")
    def transit_oc_plot(night: str, planet: str):
        record, history = fits.one(night, planet)
        series = oc_series(history, planet=record.get("planet"))
        if series is None:
            raise not_found("This fit has no mid-time, so no O−C.")
        return Response(oc_plot_png(series, highlight=night), media_type="image/png")

    @get("/transits/{night}/{planet}/{name}")
    def transit_file(night: str, planet: str, name: str):
        folder = fits.folder(night, planet)
        if name not in DOWNLOADS or not (folder / name).is_file():
            raise not_found(f"No file “{name[:60]}” in this transit's folder.")
        return FileResponse(folder / name, media_type=DOWNLOADS[name],
                            filename=f"{night}_{planet}_{name}")

    @get("/api/transits")
    def transits_json():
        return JSONResponse([_public(r) for r in fits.all()])

    return router
