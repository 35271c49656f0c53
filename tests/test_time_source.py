"""Which time keyword a frame's time came from, and why, is stored per frame and shown by
`frames --csv` and the log (issue 22): a light whose DATE-OBS carries a wrong UTC offset
(summer time left on: -07:00 written, -06:00 meant) beside a right UT-OBS is timed by UT-OBS,
and says so."""

from __future__ import annotations

import csv
import io
from contextlib import redirect_stdout
from datetime import datetime, timedelta

import pytest
from astropy.io import fits
from sqlalchemy import select

from clinepipe.cli import main
from clinepipe.config import load_config
from clinepipe.simulate import simulate_night
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame


def cli(*args) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as done:
        main([str(a) for a in args])
    return done.value.code or 0, out.getvalue()


@pytest.fixture(scope="module")
def offset_night(tmp_path_factory):
    sim = simulate_night(tmp_path_factory.mktemp("offset"), seed=5, width=160, height=160,
                         n_stars=80, filters=("V",), lights_per_filter=3, n_bias=3, n_dark=3,
                         n_flat=3, variables=False)
    light = sim.lights()[1]
    with fits.open(light) as hdul:
        header, data = hdul[0].header, hdul[0].data
        start = datetime.fromisoformat(header["DATE-OBS"])
        # local time of a UTC-6 site, labelled -07:00: read as written it is 1 h late
        local = start - timedelta(hours=6)
        header["DATE-OBS"] = local.isoformat(timespec="milliseconds") + "-07:00"
        header["UT-OBS"] = (start.strftime("%H:%M:%S.%f")[:12], "UTC of exposure start")
        fits.writeto(light, data, header, overwrite=True)
    code, _ = cli("--config", sim.config_path, "run")
    assert code == 0
    rel = light.relative_to(sim.incoming).as_posix()
    return sim, rel


def test_the_keyword_used_and_why_are_stored_and_the_time_is_right(offset_night):
    sim, rel = offset_night
    cfg = load_config(sim.config_path)
    with session_scope(open_database(cfg.database.url)) as s:
        rows = {r[0]: r[1:] for r in s.execute(
            select(Frame.raw_path, Frame.time_source, Frame.time_note, Frame.jd_mid, Frame.kind))}
    source, note, jd_mid, _ = rows[rel]
    assert source == "UT-OBS"
    assert note.startswith("DATE-OBS had a -07:00 offset; used UT-OBS (they differ by 3600.0 s)")
    assert abs(jd_mid - float(sim.frame_row(rel)["jd_mid"])) * 86400.0 < 1e-3
    others = [(r[0], r[1]) for p, r in rows.items() if p != rel]
    assert others and set(others) == {("DATE-OBS", None)}  # TheSkyX: UTC, no zone


def test_frames_csv_and_the_log_say_it(offset_night):
    sim, rel = offset_night
    code, out = cli("--config", sim.config_path, "frames", "--csv")
    assert code == 0
    rows = {r["frame"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows[rel]["time_source"] == "UT-OBS"
    assert rows[rel]["time_note"].startswith("DATE-OBS had a -07:00 offset; used UT-OBS")
    assert {r["time_source"] for p, r in rows.items() if p != rel} == {"DATE-OBS"}
    assert {r["time_note"] for p, r in rows.items() if p != rel} == {""}
    log = (sim.out_dir / "archive" / "logs" / "clinepipe.log").read_text(encoding="utf-8")
    said = [ln for ln in log.splitlines() if rel in ln and "used UT-OBS" in ln]
    assert len(said) == 1 and "DATE-OBS had a -07:00 offset" in said[0]
