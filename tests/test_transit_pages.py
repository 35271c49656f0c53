"""The transits in the morning report and on the dashboard: two simulated transit nights of one
planet through `clinepipe run`, with a transits.csv whose ephemeris is off (T0 by +3 min, P by
+0.001 d, as a table's can be); the report and the pages must show the fitted values, and the
O−C against that ephemeris, within their errors of the simulator's truth."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from clinepipe.config import load_config
from clinepipe.products.transit_summary import report_section, value_with_error
from clinepipe.run.pipeline import run_pipeline
from clinepipe.simulate import simulate_night
from clinepipe.transits.timing import Ephemeris, fit_ephemeris, oc_series
from clinepipe.web import create_app

#: the table's ephemeris is off by these (d): O−C(E) = −(T0_OFFSET + E · P_OFFSET)
T0_OFFSET, P_OFFSET = 0.002, 0.001
PERIOD = 1.0  # d: a transit in each of two consecutive nights


class _Cells(HTMLParser):
    """Rows of the tables in a page: for each ``<tr data-key=...>`` (fitted values) the texts
    of its ``num`` cells, and for each ``<tr data-night=...>`` the texts of all its cells."""

    def __init__(self):
        super().__init__()
        self.by_key, self.by_night, self._row, self._cell = {}, {}, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and ("data-key" in a or "data-night" in a):
            self._row = []
            target = self.by_key if "data-key" in a else self.by_night
            target.setdefault(a.get("data-key") or a.get("data-night"), []).append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = [a.get("data-key") or "", ""]
            self._row.append(self._cell)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data


def fitted(page: str) -> dict[str, tuple[float, float]]:
    """The fitted-values table of a page: key -> (value, error) as shown."""
    parser = _Cells()
    parser.feed(page)
    out = {}
    for key, rows in parser.by_key.items():
        texts = [t.strip() for _, t in rows[0]]
        numbers = [t for t in texts[1:3]]
        if numbers[0] not in ("—", "") and numbers[1]:
            out[key] = (float(numbers[0]), float(numbers[1]))
    return out


def night_rows(page: str) -> dict[str, list[list[str]]]:
    parser = _Cells()
    parser.feed(page)
    return {n: [[t.strip() for _, t in row] for row in rows] for n, rows in parser.by_night.items()}


def within(shown: tuple[float, float], truth: float, sigmas: float = 3.0) -> bool:
    value, error = shown
    return abs(value - truth) <= sigmas * error


@pytest.fixture(scope="module")
def two_transits(tmp_path_factory):
    """Two nights of 70 lights, each over a 1.8-h transit (P 1 d, Rp/Rs 0.12, a/Rs 4.5,
    i 85 deg) of a bright star, run once with the off ephemeris in transits.csv."""
    out = tmp_path_factory.mktemp("two-transits")
    sim = simulate_night(out, seed=5, nights=2, width=128, height=128, n_stars=40,
                         mag_range=(10.0, 15.5), seeing_arcsec=(3.0, 4.0), filters=("V",),
                         lights_per_filter=70, variables=False, cosmic_rays=False, n_bias=3,
                         n_dark=3, n_flat=3,
                         transit={"rprs": 0.12, "period": PERIOD, "ars": 4.5, "inc": 85.0})
    truth = json.loads((out / "truth" / "transit.json").read_text())
    host = sim.stars[truth["star"]]
    (out / "transits.csv").write_text(
        "pl_name,ra,dec,pl_orbper,pl_tranmid,pl_trandur,pl_ratror\n"
        f"Sim b,{host['ra']:.7f},{host['dec']:.7f},{truth['period'] + P_OFFSET},"
        f"{truth['t0'] + T0_OFFSET:.6f},1.8,0.12\n", encoding="utf-8")
    with open(sim.config_path, "a", encoding="utf-8") as fh:
        fh.write('\n[transits]\npath = "transits.csv"\n')
    cfg = load_config(sim.config_path)
    run_pipeline(cfg, settle_seconds=0)
    archive = cfg.paths.archive
    records = {n: json.loads((archive / "transits" / n / "Sim_b" / "fit.json").read_text())
               for n in sim.nights}
    return {"cfg": cfg, "truth": truth, "nights": list(sim.nights), "records": records,
            "client": TestClient(create_app(cfg)), "archive": archive}


def true_tmid(truth, epoch: int) -> float:
    return truth["t0"] + epoch * truth["period"]


def true_oc_minutes(epoch: int) -> float:
    return -(T0_OFFSET + epoch * P_OFFSET) * 1440.0


@pytest.mark.slow
def test_morning_report_shows_each_nights_transit_against_truth(two_transits):
    truth = two_transits["truth"]
    for epoch, night in enumerate(two_transits["nights"]):
        # written by the run itself: the transit step comes before the reports
        page = (two_transits["archive"] / "reports" / night / "index.html").read_text()
        assert "<h2>Transits</h2>" in page and "data-planet='Sim b'" in page
        shown = fitted(page)
        assert within(shown["tmid"], true_tmid(truth, epoch))
        assert within(shown["oc_minutes"], true_oc_minutes(epoch))
        assert within(shown["rprs"], truth["rprs"])
        assert within(shown["depth"], truth["depth"] * 1000.0)          # ppt
        assert within(shown["ars"], truth["ars"]) and within(shown["inc"], truth["inc"])
        # the report shows the fit's own numbers, rounded to their errors
        record = two_transits["records"][night]
        for key in ("tmid", "rprs", "ars", "inc", "oc_minutes"):
            assert shown[key][0] == pytest.approx(record[key], abs=shown[key][1] / 5), key
        # the comparison stars with their weights, and the aperture chosen among those tried
        comps = re.search(r"Comparison stars \(id, weight\): ([^;]*);", page).group(1)
        assert [int(c.split()[0]) for c in comps.split(", ")] == sorted(
            record["comps"], key=lambda c: -record["comparison_weights"][record["comps"].index(c)])
        assert f"Aperture {record['aperture']:g} px, chosen by the lowest out-of-transit" in page
        assert page.count("data:image/png;base64,") >= 4  # 3 conditions + the light curve
        assert "data-plot='transit'" in page
    # the second night also shows O−C over both nights
    assert "O−C of Sim b over 2 fitted nights" in page and "data-plot='oc'" in page


@pytest.mark.slow
def test_transit_list_page_against_truth(two_transits):
    client, truth = two_transits["client"], two_transits["truth"]
    page = client.get("/transits")
    assert page.status_code == 200
    rows = night_rows(page.text)
    assert set(rows) == set(two_transits["nights"])
    for epoch, night in enumerate(two_transits["nights"]):
        cells = rows[night][0]
        assert cells[1] == "Sim b" and cells[2] == "V"
        values = [tuple(float(x) for x in c.split("±")) for c in cells[3:7]]
        tmid, oc, rprs, depth = values
        assert within(tmid, true_tmid(truth, epoch)) and within(oc, true_oc_minutes(epoch))
        assert within(rprs, truth["rprs"]) and within(depth, truth["depth"] * 1000.0)
        assert f'href="/transits/{night}/Sim_b"' in page.text
    # newest night first
    assert page.text.index(f'data-night="{two_transits["nights"][1]}"') < \
        page.text.index(f'data-night="{two_transits["nights"][0]}"')
    # the nights page and the navigation lead here
    nights = client.get("/").text
    assert 'href="/transits"' in nights
    for night in two_transits["nights"]:
        assert f'href="/transits/{night}/Sim_b"' in nights
    assert client.head("/transits").status_code == 200
    listed = client.get("/api/transits").json()
    assert sorted(r["night"] for r in listed) == two_transits["nights"]


@pytest.mark.slow
def test_transit_page_values_and_oc_over_nights_against_truth(two_transits):
    client, truth, archive = two_transits["client"], two_transits["truth"], two_transits["archive"]
    first, second = two_transits["nights"]
    page = client.get(f"/transits/{second}/Sim_b")
    assert page.status_code == 200
    shown = fitted(page.text)
    assert within(shown["tmid"], true_tmid(truth, 1)) and within(shown["rprs"], truth["rprs"])
    assert within(shown["oc_minutes"], true_oc_minutes(1))
    assert within(shown["depth"], truth["depth"] * 1000.0)
    # O−C over both nights, against the table's ephemeris: the injected offsets, within 3σ
    rows = night_rows(page.text)
    for epoch, night in enumerate((first, second)):
        cells = rows[night][0]
        assert int(cells[1]) == epoch
        assert abs(float(cells[3]) - true_oc_minutes(epoch)) <= 3 * float(cells[4])
    assert f'href="/transits/{first}/Sim_b"' in page.text        # the other night is linked
    # the period the two fitted times give is the true one, within its error
    found = re.search(r"The fitted times themselves give P = ([\d.]+) ± ([\d.]+) d", page.text)
    assert within((float(found.group(1)), float(found.group(2))), truth["period"])
    # the light curve with the model and residuals is the fit's own plot
    plot = client.get(f"/transits/{second}/Sim_b/lightcurve.png")
    assert plot.headers["content-type"] == "image/png"
    assert plot.content == (archive / "transits" / second / "Sim_b" / "lightcurve.png").read_bytes()
    oc = client.get(f"/transits/{second}/Sim_b/oc.png")
    assert oc.status_code == 200 and oc.content[:4] == b"\x89PNG"
    record = client.get(f"/transits/{second}/Sim_b/fit.json").json()
    assert record == two_transits["records"][second]
    # comparison stars link to their star pages; the chosen aperture is marked
    for star in record["comps"]:
        assert f'href="/stars/{star}"' in page.text
    assert f"{record['aperture']:.2f} ✓" in page.text


@pytest.mark.slow
def test_unknown_transits_are_404_with_a_sentence(two_transits):
    client, night = two_transits["client"], two_transits["nights"][0]
    cases = {f"/transits/{night}/Sim_c": "No transit of “Sim_c” was fitted in night",
             "/transits/19990101/Sim_b": "No transit of “Sim_b” was fitted in night 1999-01-01.",
             "/transits/2026-3-1/Sim_b": "is not a night",
             f"/transits/{night}/Sim_b/clinepipe.toml": "No file “clinepipe.toml”",
             f"/transits/{night}/.hidden": "No transit of “.hidden”",
             f"/transits/{night}/%2E%2E": "No transit of “..”"}
    for url, words in cases.items():
        answer = client.get(url)
        assert answer.status_code == 404, url
        assert words in answer.text, url
    assert client.post("/transits").status_code == 405


# --- fast: the numbers behind the pages --------------------------------------------------

def test_values_are_shown_to_their_errors_second_digit():
    assert value_with_error(0.12034, 0.00412) == ("0.1203", "0.0041")
    assert value_with_error(2461115.720652, 0.001056) == ("2461115.7207", "0.0011")
    assert value_with_error(0.0144, 0.0012, scale=1000.0) == ("14.4", "1.2")
    assert value_with_error(87.03, 2.7) == ("87.0", "2.7")
    assert value_with_error(float("nan"), 0.1) == ("—", "")
    assert value_with_error(1.0, None) == ("1", "")


def test_refined_ephemeris_errors_are_honest():
    """Mid-times drawn around a true ephemeris with known errors: the fitted period's error
    matches its scatter over 400 draws, and O−C against the truth has chi2_red about 1."""
    rng = np.random.default_rng(3)
    t0, period = 2460000.3, 2.2185733
    epochs = np.array([0, 3, 4, 11, 25, 40])
    sigma = np.array([0.0010, 0.0006, 0.0015, 0.0008, 0.0012, 0.0009])
    pulls, chi2 = [], []
    for _ in range(400):
        tmid = t0 + epochs * period + sigma * rng.standard_normal(epochs.size)
        eph = fit_ephemeris(epochs, tmid, sigma)
        pulls.append((eph.period - period) / eph.period_err)
        records = [{"planet": "X b", "night": f"2026{k:04d}", "tmid": t, "tmid_err": s}
                   for k, (t, s) in enumerate(zip(tmid, sigma))]
        series = oc_series(records, ephemeris=Ephemeris(t0, period))
        assert series.epoch.tolist() == epochs.tolist()
        chi2.append(series.chi2_red)
    pulls = np.array(pulls)
    assert 0.55 <= np.mean(np.abs(pulls) < 1) <= 0.80 and np.mean(np.abs(pulls) < 2) >= 0.90
    assert np.mean(chi2) == pytest.approx(1.0, abs=0.1)
    assert fit_ephemeris([5, 5], [1.0, 1.0], [0.1, 0.1]) is None  # one epoch: no period


def test_oc_is_against_the_newest_ephemeris():
    """A table corrected between two nights: both O−C are measured against today's."""
    old = {"planet": "X b", "night": "20260101", "tmid": 2460000.5020, "tmid_err": 0.001,
           "period": 1.5, "predicted_tmid": 2460000.5000, "epoch": 0}
    new = {"planet": "X b", "night": "20260110", "tmid": 2460012.5100, "tmid_err": 0.001,
           "period": 1.501, "predicted_tmid": 2460012.5080, "epoch": 8}
    other = {**new, "planet": "Y b", "tmid": 1.0}
    series = oc_series([new, old, other], planet="X b")
    assert series.ephemeris.period == 1.501
    assert series.ephemeris.t0 == pytest.approx(2460012.5080 - 8 * 1.501)
    assert series.nights.tolist() == ["20260101", "20260110"]
    assert series.epoch.tolist() == [0, 8]
    expected = [(2460000.5020 - series.ephemeris.t0) * 1440, 2.0 * 1.44]
    assert series.oc_min == pytest.approx(expected, abs=1e-6)
    assert series.refined.period == pytest.approx((2460012.5100 - 2460000.5020) / 8)


def test_no_fits_no_section_and_no_archive_pages(tmp_path):
    from clinepipe.store.db import open_database

    assert report_section(tmp_path / "archive", "20260101") == []
    assert report_section(None, "20260101") == []
    client = TestClient(create_app(open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")))
    page = client.get("/transits")
    assert page.status_code == 200 and "without an archive folder" in page.text
    answer = client.get("/transits/20260101/X_b")
    assert answer.status_code == 404 and "has no archive folder" in answer.text
