"""The web dashboard: pages show the data, the JSON light curve has the export columns and the
right values, odd input gives 404 pages (never 500), nothing is writable, nothing is remote."""

import json
import re
from datetime import datetime
from html.parser import HTMLParser

import pytest
from sqlalchemy.orm import Session

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from web_store import CAT_ID, CSV_FIELDS, PERIOD, VAR_NAME, make_engine, populate  # noqa: E402

from clinepipe.store.models import (  # noqa: E402
    Run,
)
from clinepipe.web import LIGHTCURVE_FIELDS, create_app  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    archive = root / "archive"
    archive.mkdir()
    engine = make_engine(root / "clinepipe.db")
    facts = populate(engine, archive)
    app = create_app(engine, archive=archive)
    with TestClient(app) as client:
        yield client, facts
    engine.dispose()


@pytest.fixture()
def client(site):
    return site[0]


@pytest.fixture()
def facts(site):
    return site[1]


class _Assets(HTMLParser):
    """Every src / href of script, link, img, iframe, source elements (what a page loads)."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "link", "img", "iframe", "source", "embed", "object"):
            self.urls += [v for k, v in attrs if k in ("src", "href", "data") and v]


def assets_of(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


# ----------------------------------------------------------------------------- pages

def test_nights_page_shows_states_failures_and_report_link(client):
    r = client.get("/")
    assert r.status_code == 200
    html = r.text
    assert "2025-03-01" in html and "2025-03-02" in html
    for state in ("calibrated", "waiting", "failed", "used", "rejected", "duplicate"):
        assert state in html
    assert "truncated FITS" in html and "20250301/light_bad.fits" in html
    assert "no flat master for filter B" in html and "reduce" in html
    assert "CCD-TEMP 5.0 warmer than -3.0" in html  # rejected, folded away but listed
    assert 'href="/reports/20250301/"' in html
    assert "/reports/20250302/" not in html
    # a file name from the camera folder is shown escaped, never as markup
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # 24 calibrated lights per night
    row = re.search(r'id="night-20250301".*?</tr>', html, re.S).group(0)
    assert re.findall(r'class="num[^"]*">(\d*)</td>', row)[:2] == ["35", "24"]  # frames, calibrated


def test_morning_report_served_from_the_archive_only(client):
    r = client.get("/reports/20250301/")
    assert r.status_code == 200 and "Morning report 20250301" in r.text
    assert client.get("/reports/20250301/zp.png").headers["content-type"] == "image/png"
    r = client.get("/reports/20250301", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/reports/20250301/"
    for path in ("/reports/20250302/", "/reports/2025/", "/reports/20250301/nope.html",
                 "/reports/20250301/..%2F..%2Fsecret.txt", "/reports/20250301/%2e%2e/%2e%2e/secret.txt",
                 "/reports/..%2F..%2Fsecret.txt/", "/reports/20250301/%2Fetc%2Fpasswd",
                 "/reports/20250301/.hidden", "/reports/20250301/..\\..\\secret.txt"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "top secret" not in r.text


def test_stars_page_lists_and_sorts(client):
    r = client.get("/stars")
    assert r.status_code == 200
    html = r.text
    for text in (VAR_NAME, CAT_ID, 'href="/stars/1"', 'href="/stars/4"', "V mag", "R mag"):
        assert text in html
    assert "10h 00m 00.24s" in html  # star 1 RA 150.001 deg in hours
    order = lambda html: [int(x) for x in re.findall(r'<td class="num"><a href="/stars/(\d+)">', html)]  # noqa: E731
    assert order(html) == [1, 2, 3, 4]
    assert order(client.get("/stars?sort=mag").text) == [2, 1, 3, 4]  # brightest first in V
    assert order(client.get("/stars?sort=var").text)[0] == 1  # the variable first
    assert order(client.get("/stars?sort=evil'--").text) == [1, 2, 3, 4]  # ignored


def test_stars_pagination(client, monkeypatch):
    import clinepipe.web.pages as web_pages

    monkeypatch.setattr(web_pages, "STARS_PER_PAGE", 3)
    first = client.get("/stars")
    assert "page 1 of 2" in first.text and 'href="/stars/4"' not in first.text
    second = client.get("/stars?page=2")
    assert 'href="/stars/4"' in second.text and 'href="/stars/1"' not in second.text
    for odd in ("0", "-3", "999", "abc", "1e9"):
        assert client.get(f"/stars?page={odd}").status_code == 200


@pytest.mark.parametrize("query, star", [("1", 1), (VAR_NAME, 1), (VAR_NAME.upper(), 1),
                                         (CAT_ID, 2), ("150.020 19.990", 3),
                                         ("150.0201,19.9901", 3),
                                         # issue 19 item 12: sexagesimal as typed anywhere
                                         ("10:00:04.80 +19:59:24.0", 3),
                                         ("10 00 04.8 +19 59 24", 3),
                                         ("10h00m04.8s +19d59m24s", 3)])
def test_search_redirects_to_the_star(client, query, star):
    r = client.get("/stars", params={"q": query}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/stars/{star}"


def test_search_partial_and_unknown(client):
    r = client.get("/stars", params={"q": "UCAC4"})
    assert r.status_code == 200 and 'href="/stars/2"' in r.text and 'href="/stars/3"' in r.text
    assert 'href="/stars/1"' not in r.text
    for query in ("nothing like this", "1' OR 1=1 --", "%", "_", "9" * 40, "999999",
                  "400 100", "nan nan", "inf -inf", "\\"):
        r = client.get("/stars", params={"q": query})
        assert r.status_code == 404, query
        assert "No star matches" in r.text


def test_star_page_has_the_plot_and_the_period(client):
    r = client.get("/stars/1")
    assert r.status_code == 200
    html = r.text
    assert VAR_NAME in html and "EW" in html
    assert 'data-src="/api/stars/1/lightcurve"' in html
    assert '<script src="/static/lightcurve.js' in html
    assert "/api/stars/1/lightcurve.csv" in html
    # no observer code configured: no AAVSO download offered, and why (issue 21)
    assert "/api/stars/1/aavso.txt" not in html and "none without an observer code" in html
    period = float(re.search(r'data-role="period"[^>]*value="([0-9.]+)"', html, re.S).group(1))
    assert abs(period - PERIOD) < 0.01  # Lomb–Scargle finds the injected period
    assert re.search(r"<dt>Measurements</dt><dd>48</dd>", html)  # the star's 48 points
    assert 'href="/stars/2" rel="next"' in html
    star2 = client.get("/stars/2").text
    assert CAT_ID in star2 and "11.200" in star2  # catalog match with its magnitudes
    # a constant star: no significant period, so nothing misleading in the fold box
    assert re.search(r'data-role="period"[^>]*value=""', star2, re.S)
    assert client.get("/stars/4").status_code == 200  # a star without measurements


# ----------------------------------------------------------------------------- JSON

def test_lightcurve_json_has_exactly_the_export_fields_and_values(client, facts):
    assert list(LIGHTCURVE_FIELDS) == CSV_FIELDS
    r = client.get("/api/stars/1/lightcurve")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    rows = r.json()
    assert len(rows) == 48
    expected = {p["frame"]: p for p in facts["points"][1]}
    for row in rows:
        assert list(row) == CSV_FIELDS
        want = expected[row["frame"]]
        assert row["star_id"] == 1 and row["filter"] == want["filter"]
        assert row["jd_mid"] == pytest.approx(want["jd_mid"], abs=1e-9)
        assert row["bjd_tdb"] == pytest.approx(want["jd_mid"] + 0.004, abs=1e-9)
        assert row["mag"] == pytest.approx(want["mag"], abs=1e-9)
        assert row["mag_err"] == pytest.approx(want["mag_err"], abs=1e-9)
        assert row["inst_mag"] == pytest.approx(want["mag"] - want["zero_point"], abs=1e-9)
        assert row["zero_point"] == pytest.approx(want["zero_point"], abs=1e-9)
        assert row["exptime"] == 60.0 and row["airmass"] == pytest.approx(1.2)
        assert row["ra"] == pytest.approx(150.001, abs=1e-3)
        assert row["dec"] == pytest.approx(20.002, abs=1e-3)
    v_only = client.get("/api/stars/1/lightcurve?filter=V").json()
    assert len(v_only) == 24 and {r["filter"] for r in v_only} == {"V"}
    since = client.get("/api/stars/1/lightcurve?since=2460737.0").json()
    assert len(since) == 24 and min(r["jd_mid"] for r in since) > 2460737
    assert len(client.get("/api/stars/1/lightcurve?since=junk").json()) == 48  # ignored
    assert client.get("/api/stars/4/lightcurve").json() == []


def test_stars_and_nights_json(client):
    stars = client.get("/api/stars").json()
    assert [s["star_id"] for s in stars] == [1, 2, 3, 4]
    one = stars[0]
    assert one["name"] == VAR_NAME and one["n_measurements"] == 48
    assert set(one["mean_mag"]) == {"V", "R"}
    assert one["chi2_red"] > 100 and stars[1]["chi2_red"] < 5
    assert stars[3]["n_measurements"] == 0 and stars[3]["chi2_red"] is None
    assert [s["star_id"] for s in client.get("/api/stars?sort=mag&limit=2").json()] == [2, 1]
    nights = client.get("/api/nights").json()
    assert [n["night"] for n in nights] == ["20250302", "20250301", None]
    first = nights[1]
    assert first["states"]["calibrated"] == 24 and first["report"] == "/reports/20250301/"
    assert {f["reason"] for f in first["failures"]} == {"truncated FITS",
                                                        "no flat master for filter B"}


def test_downloads(client):
    r = client.get("/api/stars/1/lightcurve.csv")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    lines = r.text.splitlines()
    assert lines[0].split(",")[:len(CSV_FIELDS)] == CSV_FIELDS
    assert len(lines) == 49
    r = client.get("/api/stars/1/aavso.txt")  # no obscode configured: no file (issue 21)
    assert r.status_code == 409 and r.json()["detail"].startswith("no AAVSO observer code")
    assert client.get("/api/stars/77/aavso.txt").status_code == 404


# ----------------------------------------------------------------------------- odd input

@pytest.mark.parametrize("path", [
    "/stars/9999", "/stars/0", "/stars/abc", "/stars/1%27%20OR%201=1", "/stars/1'%20OR%20'1'='1",
    "/stars/99999999999999999999999", "/stars/-1", "/stars/1.5", "/stars/%00", "/stars/１",
    "/stars/../../etc/passwd", "/stars/..%2F..%2Fetc%2Fpasswd", "/nope", "/static/../app.py",
    "/static/..%2Fapp.py", "/api/stars/9999/lightcurve", "/api/stars/abc/lightcurve",
    "/api/stars/99999999999999999999999/lightcurve", "/api/stars/1;DROP%20TABLE%20stars/lightcurve",
    "/api/stars/9999/lightcurve.csv", "/docs", "/openapi.json",
])
def test_odd_paths_are_friendly_404s(client, path):
    r = client.get(path)
    assert r.status_code == 404, path
    if path.startswith("/api/"):
        assert "detail" in r.json()
    elif not path.startswith("/static/"):
        assert "Not found" in r.text and 'href="/stars"' in r.text
    assert "Traceback" not in r.text


def test_database_still_intact_after_odd_input(client):
    client.get("/stars", params={"q": "1; DROP TABLE stars; --"})
    client.get("/api/stars/1;DROP TABLE stars/lightcurve")
    assert len(client.get("/api/stars").json()) == 4


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/", "/stars", "/stars/1", "/api/stars/1/lightcurve",
                                  "/static/lightcurve.js", "/reports/20250301/"])
def test_writes_are_rejected(client, method, path):
    r = client.request(method, path)
    assert r.status_code == 405
    assert "GET" in r.headers["allow"]


def test_head_works(client):
    for path in ("/", "/stars", "/stars/1", "/api/stars/1/lightcurve", "/static/style.css"):
        assert client.head(path).status_code == 200, path


# ----------------------------------------------------------------------------- assets

def test_assets_are_local(client):
    js = client.get("/static/lightcurve.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "data-drawn" in js.text and "eval(" not in js.text and "http" not in js.text
    css = client.get("/static/style.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    assert "http" not in css.text and "@import" not in css.text
    for path in ("/", "/stars", "/stars/1", "/stars/2", "/stars?sort=var", "/stars/9999",
                 "/stars?q=nothing"):
        r = client.get(path)
        urls = assets_of(r.text)
        assert urls, path
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), (path, url)
        assert "'self'" in r.headers["content-security-policy"]
    for url in assets_of(client.get("/stars/1").text):
        assert client.get(url).status_code == 200, url


# ----------------------------------------------------------------------------- empty and config

def test_empty_database(tmp_path):
    engine = make_engine(tmp_path / "empty.db")
    with TestClient(create_app(engine)) as client:
        home = client.get("/")
        assert home.status_code == 200
        assert "No frames yet" in home.text and "clinepipe run" in home.text
        stars = client.get("/stars")
        assert stars.status_code == 200 and "No stars yet" in stars.text
        assert client.get("/api/stars").json() == []
        assert client.get("/api/nights").json() == []
        assert client.get("/stars/1").status_code == 404
        assert client.get("/reports/20250301/").status_code == 404  # no archive known
    engine.dispose()


def test_create_app_from_config(tmp_path):
    from clinepipe.config import load_config

    archive = tmp_path / "archive"
    archive.mkdir()
    engine = make_engine(tmp_path / "clinepipe.db")
    populate(engine, archive)
    engine.dispose()
    (tmp_path / "clinepipe.toml").write_text('[aavso]\nobscode = "ABC"\n[site]\nname = "Test Hill"\n')
    cfg = load_config(tmp_path / "clinepipe.toml")
    with TestClient(create_app(cfg)) as client:
        home = client.get("/")
        assert "Test Hill" in home.text and 'href="/reports/20250301/"' in home.text
        assert "#OBSCODE=ABC" in client.get("/api/stars/1/aavso.txt").text
        assert 'href="/api/stars/1/aavso.txt"' in client.get("/stars/1").text


def test_serve_command_uses_config_and_options(tmp_path, monkeypatch):
    import socket

    import uvicorn
    from typer.testing import CliRunner

    from clinepipe.cli import app as cli_app
    from clinepipe.errors import ClinepipeError

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    (tmp_path / "clinepipe.toml").write_text("[web]\nport = 8999\n")
    from clinepipe.store.db import open_database

    open_database(f"sqlite:///{tmp_path / 'clinepipe.db'}").dispose()  # serve needs a database
    runner = CliRunner()
    cfg = str(tmp_path / "clinepipe.toml")
    result = runner.invoke(cli_app, ["--config", cfg, "serve"])
    assert result.exit_code == 0, result.output
    assert calls[-1][1]["host"] == "127.0.0.1" and calls[-1][1]["port"] == 8999
    result = runner.invoke(cli_app, ["--config", cfg, "serve", "--host", "0.0.0.0", "--port", "9001"])
    assert result.exit_code == 0, result.output
    assert calls[-1][1]["host"] == "0.0.0.0" and calls[-1][1]["port"] == 9001
    assert "--host" in runner.invoke(cli_app, ["serve", "--help"]).output
    with socket.create_server(("127.0.0.1", 0)) as busy:  # a port someone else listens on
        taken = busy.getsockname()[1]
        with pytest.raises(ClinepipeError, match=f"127.0.0.1:{taken}: cannot listen there"):
            runner.invoke(cli_app, ["--config", cfg, "serve", "--port", str(taken)],
                          catch_exceptions=False)
    assert len(calls) == 2


def test_every_page_on_each_backend(db_url):
    """The same pages and numbers on SQLite and PostgreSQL (``db_url`` from conftest)."""
    from clinepipe.store.db import open_database

    engine = open_database(db_url)
    try:
        populate(engine)
        with TestClient(create_app(engine, obscode="TST01")) as c:
            for path in ("/", "/stars", "/stars?sort=mag", "/stars?sort=var", "/stars/1",
                         "/stars/4", "/stars?q=UCAC4", "/api/nights", "/api/stars/1/lightcurve",
                         "/api/stars/1/lightcurve.csv", "/api/stars/1/aavso.txt"):
                assert c.get(path).status_code == 200, path
            for path in ("/stars/9999", "/stars/x", "/stars?q=1'%20OR%201=1"):
                assert c.get(path).status_code == 404, path
            stars = c.get("/api/stars?sort=var").json()
            assert stars[0]["star_id"] == 1 and stars[0]["chi2_red"] > 100
            assert stars[0]["mean_mag"]["V"] == pytest.approx(12.9, abs=0.1)
            assert c.get("/stars", params={"q": VAR_NAME.lower()},
                         follow_redirects=False).headers["location"] == "/stars/1"
            assert len(c.get("/api/stars/1/lightcurve?filter=R").json()) == 24
    finally:
        engine.dispose()


def test_nights_page_says_why_the_last_run_stopped(tmp_path):
    engine = make_engine(tmp_path / "crashed.db")
    populate(engine)
    why = "cannot write /data/archive/calibrated/x.fits: No space left on device (make room…)."
    with Session(engine) as s:
        s.add(Run(started_at=datetime(2025, 3, 3, 7, 0), finished_at=datetime(2025, 3, 3, 7, 1),
                  software_version="test", status="crashed",
                  summary=json.dumps({"error": why})))
        s.commit()
    with TestClient(create_app(engine)) as client:
        page = client.get("/").text
    assert "crashed at 2025-03-03 07:01" in page
    assert '<span class="run-error">cannot write /data/archive/calibrated/x.fits: No space left' in page
    engine.dispose()


def test_the_star_table_is_built_once_when_requests_come_while_it_is_built(tmp_path,
                                                                            monkeypatch):
    """``clinepipe serve`` builds the star table as it starts (``Dashboard.warm``); a request
    that comes meanwhile waits for that table instead of building a second one, and gets the
    same table the warm-up built. A warm-up that fails leaves the page to report it."""
    import threading
    import time

    from clinepipe.variability import star_stats

    engine = make_engine(tmp_path / "clinepipe.db")
    populate(engine)
    dash = create_app(engine).state.dashboard
    built = []
    real = star_stats.read_statistics

    def slow_read(*args, **kwargs):  # long enough for the request to arrive meanwhile
        built.append(1)
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(star_stats, "read_statistics", slow_read)
    warm = threading.Thread(target=dash.warm)
    warm.start()
    while not built:
        time.sleep(0.01)
    table = dash.star_table()  # the request, while the warm-up builds
    warm.join()
    assert len(built) == 1 and dash.star_table() is table and table.rows
    monkeypatch.setattr(star_stats, "read_statistics", lambda *a, **k: 1 / 0)
    fresh = create_app(engine).state.dashboard
    fresh.warm()  # logged, not raised
    with pytest.raises(ZeroDivisionError):
        fresh.star_table()
    engine.dispose()
