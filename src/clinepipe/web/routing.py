"""What every route shares: GET routes that answer HEAD too, the friendly 404, and where the
templates and static files live.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.exceptions import HTTPException

HERE = Path(__file__).resolve().parent


def get_route(app: FastAPI | APIRouter, path: str, **kwargs):
    """``@app.get`` (or a router's) that also answers HEAD (FastAPI routes do not add HEAD by
    themselves)."""
    return app.api_route(path, methods=["GET", "HEAD"], **kwargs)


def not_found(message: str) -> HTTPException:
    """A 404 with ``message`` (one sentence for the reader), to raise from a route; the error
    handlers show it as a page, or as JSON under ``/api/``."""
    return HTTPException(status_code=404, detail=message)
