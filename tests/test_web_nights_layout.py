"""The nights page at 1400 px (issue 19, item 19): the Kinds column wraps between its items
and the table fits the page, nothing hidden behind a horizontal scroll. Checked in the
stylesheet and template, and in headless Chromium on the laid-out page."""

import re
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from web_store import make_engine, populate  # noqa: E402

from clinepipe.store.models import Frame  # noqa: E402
from clinepipe.web import create_app  # noqa: E402

STYLE = Path(__file__).resolve().parents[1] / "src" / "clinepipe" / "web" / "static" / "style.css"
KINDS = ("light", "bias", "dark", "flat", "darkflat", "unknown")
SCOPES = ("CDK20-north-dome", "RC14-south-dome", "Newtonian-roll-off")


def busy_site(root: Path):
    """The test site plus one night with every kind from three telescopes."""
    (root / "archive").mkdir()
    engine = make_engine(root / "clinepipe.db")
    populate(engine, root / "archive")
    with Session(engine) as s:
        for k, kind in enumerate(KINDS):
            for t, scope in enumerate(SCOPES):
                for i in range(3):
                    s.add(Frame(raw_path=f"20250303/{scope}/{kind}_{i}.fits", night="20250303",
                                kind=kind, state="used", telescope=scope))
        s.commit()
    return engine


def css_rules(selector_pattern: str) -> list[str]:
    """The declaration blocks of the stylesheet rules whose selector matches the pattern."""
    text = re.sub(r"/\*.*?\*/", "", STYLE.read_text(), flags=re.S)
    return [body for sel, body in re.findall(r"([^{}]+)\{([^{}]*)\}", text)
            if any(re.fullmatch(selector_pattern, s.strip()) for s in sel.split(","))]


def test_kinds_cell_wraps_between_items_not_inside(tmp_path):
    engine = busy_site(tmp_path)
    with TestClient(create_app(engine, archive=tmp_path / "archive")) as client:
        html = client.get("/").text
    engine.dispose()
    row = re.search(r'<tr id="night-20250303">(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r'<td class="kinds">(.*?)</td>', row, re.S)
    assert cells, "no Kinds cell"
    items = re.findall(r'<span class="kind">([^<]*)</span>', cells[0])
    assert sorted(i.split()[0] for i in items) == sorted(KINDS)
    assert all(i.split()[1] == "9" for i in items)  # 3 frames x 3 telescopes each
    # the cell may wrap (no nowrap on it), its items may not
    kinds_rules = css_rules(r"td\.kinds")
    assert kinds_rules and not any("nowrap" in body for body in kinds_rules)
    assert any("nowrap" in body for body in css_rules(r"td\.kinds \.kind"))


@pytest.mark.chromium
def test_nights_table_fits_at_1400px_in_chromium(tmp_path):
    from browser import CHROMEDRIVER, CHROMIUM, WebDriver, serve_dashboard

    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("headless Chromium / chromedriver not installed")
    pytest.importorskip("httpx")

    engine = busy_site(tmp_path)
    with serve_dashboard(engine, tmp_path / "archive") as url:
        driver = WebDriver(tmp_path / "profile")
        try:
            driver.cmd("POST", "/window/rect", {"width": 1400, "height": 900})
            driver.cmd("POST", "/url", {"url": f"{url}/"})
            layout = driver.script("""
                const box = document.querySelector('table.nights').parentElement;
                const right = box.getBoundingClientRect().right;
                const cells = [...document.querySelectorAll('table.nights td.kinds')];
                return {overflow: box.scrollWidth - box.clientWidth,
                        hidden: cells.filter(c => c.getBoundingClientRect().right > right + 1).length,
                        cells: cells.length, viewport: window.innerWidth};""")
        finally:
            driver.close()
    engine.dispose()
    assert layout["cells"] >= 4 and layout["viewport"] <= 1400
    assert layout["overflow"] <= 1, layout  # no horizontal scroll: every column is in view
    assert layout["hidden"] == 0, layout
