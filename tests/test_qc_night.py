"""QC on a simulated night with cloudy, trailed and defocused frames; the morning report."""

from __future__ import annotations

import base64
import csv
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from clinepipe.config import load_config
from clinepipe.run.pipeline import run_pipeline
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame

BAD = {"clouds": (4,), "trailed": (9,), "focus": (15,)}


@pytest.fixture(scope="module")
def qc_night(tmp_path_factory):
    from clinepipe.simulate import simulate_night

    out = tmp_path_factory.mktemp("qc")
    sim = simulate_night(out, seed=21, width=320, height=320, n_stars=150, lights_per_filter=12,
                         cloudy_frames=BAD["clouds"], trailed_frames=BAD["trailed"],
                         defocused_frames=BAD["focus"])
    cfg = load_config(sim.config_path)
    run_pipeline(cfg)
    return sim, cfg, open_database(cfg.database.url)


def test_exactly_the_bad_frames_are_flagged(qc_night):
    sim, cfg, engine = qc_night
    truth = {r["file"]: r["qc"] or "" for r in sim.frames if r["kind"] == "light"}
    assert sorted(v for v in truth.values() if v) == ["clouds", "focus", "trailed"]
    with session_scope(engine) as s:
        got = dict(s.execute(select(Frame.raw_path, Frame.qc).where(Frame.kind == "light")).all())
    for raw_path, expected in truth.items():
        if expected:
            assert got[raw_path].split(";") == [expected], (raw_path, got[raw_path])
    false_flags = [p for p, q in got.items() if q and not truth[p]]
    assert len(false_flags) <= 1, false_flags


def test_frames_command_lists_qc(qc_night):
    sim, cfg, engine = qc_night
    r = subprocess.run([sys.executable, "-m", "clinepipe.cli", "--config", str(sim.config_path),
                        "frames", "--csv"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == ("frame,night,type,filter,state,reason,fwhm,elongation,sky,zero_point,"
                        "n_stars,qc,time_source,time_note")
    rows = list(csv.DictReader(lines))
    assert {r["time_source"] for r in rows} == {"DATE-OBS"}  # TheSkyX: UTC, no offset
    flagged = [r for r in rows if r["qc"].endswith(("clouds", "trailed", "focus"))]
    assert len(flagged) >= 3


def test_variability_search_excludes_clouds_and_trailed(qc_night):
    from clinepipe.variability.table import variability_table

    sim, cfg, engine = qc_night
    rows = variability_table(engine, min_points=5)
    with session_scope(engine) as s:
        n_clean = {f: len(s.scalars(select(Frame.id).where(
            Frame.kind == "light", Frame.filter == f, Frame.qc.notin_(["clouds", "trailed"]))).all())
            for f in ("V", "R")}
    assert rows and all(r.n <= n_clean[r.filter] for r in rows)


def test_morning_report_written_with_plots_of_the_night(qc_night):
    sim, cfg, engine = qc_night
    night = sim.frames[0]["night"]
    index = cfg.paths.archive / "reports" / str(night) / "index.html"
    assert index.is_file()
    text = index.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained
    for kind in ("value", "fwhm", "sky"):
        assert f"data-plot='{kind}'" in text
    # each plot is a real PNG showing something
    import matplotlib.image as mpimg

    pngs = [p.split("'")[0] for p in text.split("data:image/png;base64,")[1:]]
    # zero point, FWHM and sky, and the light curve of the simulated config's AAVSO target
    assert len(pngs) == 4 and "V0001 Sim" in text
    for b64 in pngs:
        img = mpimg.imread(io.BytesIO(base64.b64decode(b64)), format="png")
        assert img.shape[0] > 200 and img.std() > 0.05
    for q in ("clouds", "trailed", "focus"):
        assert q in text
    assert "Frames per state" in text and "calibrated" in text


def test_report_command_and_screenshot(qc_night, tmp_path):
    sim, cfg, engine = qc_night
    out = tmp_path / "report"
    r = subprocess.run([sys.executable, "-m", "clinepipe.cli", "--config", str(sim.config_path),
                        "report", "--output", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (out / "index.html").is_file()
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium (Debian package) is not installed; run `make system-deps` for the screenshot")
    shot = Path(__file__).parent / "artifacts" / "morning_report.png"
    shot.parent.mkdir(exist_ok=True)
    subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", f"--user-data-dir={tmp_path / 'chrome'}",
                    f"--screenshot={shot}", "--window-size=1200,1600",
                    (out / "index.html").as_uri()], capture_output=True, timeout=90)
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[0] >= 1000 and img.std() > 0.05
