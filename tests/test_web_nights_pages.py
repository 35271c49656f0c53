"""The nights page aggregates only the nights of the page it shows (issue 20 goal 3): on an
archive of many nights every page lists its nights, newest first and the frames without a
night last, with the counts per state, kind and telescope of the frames that were stored."""

import re
from collections import Counter

import numpy as np
import pytest
from sqlalchemy.orm import Session

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from web_store import make_engine  # noqa: E402

from clinepipe.store.models import Frame  # noqa: E402
from clinepipe.web import create_app  # noqa: E402
from clinepipe.web.values import NIGHTS_PER_PAGE  # noqa: E402

STATES = ("calibrated", "used", "failed", "waiting", "duplicate")
KINDS = ("light", "bias", "flat", None)
SCOPES = ("north", "south")


def many_nights(path, n_nights: int):
    """``n_nights`` nights (and frames without a night) of random frames; the stored frames'
    (night, state, kind, telescope) as the truth."""
    rng = np.random.default_rng(7)
    nights = [f"2024{m:02d}{d:02d}" for m in range(1, 13) for d in range(1, 29)][:n_nights]
    stored = []
    engine = make_engine(path)
    with Session(engine) as s:
        for night in [*nights, None]:
            for i in range(int(rng.integers(1, 6))):
                row = (night, STATES[rng.integers(len(STATES))], KINDS[rng.integers(len(KINDS))],
                       SCOPES[rng.integers(len(SCOPES))])
                stored.append(row)
                s.add(Frame(raw_path=f"{night}/{i}.fits", night=row[0], state=row[1],
                            kind=row[2], telescope=row[3]))
        s.commit()
    return engine, stored


def test_every_page_shows_its_nights_with_the_stored_counts(tmp_path):
    engine, stored = many_nights(tmp_path / "clinepipe.db", 2 * NIGHTS_PER_PAGE + 5)
    order = sorted({r[0] for r in stored if r[0]}, reverse=True) + [None]
    pages = -(-len(order) // NIGHTS_PER_PAGE)
    assert pages == 3
    with TestClient(create_app(engine, archive=tmp_path / "archive")) as client:
        for number in range(1, pages + 1):
            html = client.get(f"/?page={number}").text
            assert f"page {number} of {pages}" in html
            shown = re.findall(r'<tr id="night-([^"]+)">', html)
            expect = order[(number - 1) * NIGHTS_PER_PAGE: number * NIGHTS_PER_PAGE]
            assert shown == [n or "none" for n in expect]
            # every state some frame is in has a column, on every page
            header = html.split("<tbody>")[0]
            assert all(f"state-{st}\">{st}" in header for st in STATES)
        dash = client.app.state.dashboard
        for number in range(pages):
            page = order[number * NIGHTS_PER_PAGE: (number + 1) * NIGHTS_PER_PAGE]
            entries = dash.nights(only=page)
            assert [e["night"] for e in entries] == page
            for entry in entries:
                mine = [r for r in stored if r[0] == entry["night"]]
                assert entry["frames"] == len(mine)
                assert entry["states"] == dict(Counter(r[1] for r in mine))
                assert entry["kinds"] == dict(Counter(r[2] or "unknown" for r in mine))
                assert entry["telescopes"] == dict(Counter(r[3] for r in mine))
        # the whole list (the JSON API's) is the pages put together
        assert [e["night"] for e in dash.nights()] == order
    engine.dispose()
