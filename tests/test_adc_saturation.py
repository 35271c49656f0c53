"""A 12-bit camera in a 16-bit file (a ZWO Seestar: values 0..4095) whose config still says
``[camera] saturation = 65535``: the run sees the ADC's ceiling in the pixels and flags the
stars the simulator saturated (issue 22)."""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from sqlalchemy import select

from clinepipe.config import load_config
from clinepipe.run.pipeline import run_pipeline
from clinepipe.simulate import simulate_night
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame, Measurement


def test_saturated_stars_of_a_12_bit_camera_are_flagged(tmp_path):
    sim = simulate_night(tmp_path, seed=9, style="seestar", width=160, height=160, n_stars=300,
                         lights_per_filter=2, variables=False, mag_range=(7.0, 16.0))
    text = sim.config_path.read_text()
    assert "saturation = 4095.0" in text
    sim.config_path.write_text(text.replace("saturation = 4095.0", "saturation = 65535.0"))
    cfg = load_config(sim.config_path)
    run_pipeline(cfg)
    with session_scope(open_database(cfg.database.url)) as s:
        lights = s.execute(select(Frame.id, Frame.raw_path, Frame.calibrated_path, Frame.state)
                           .where(Frame.kind == "light")).all()
        rows = s.execute(select(Measurement.frame_id, Measurement.x, Measurement.y,
                                Measurement.flags)).all()
    assert lights and {st for *_, st in lights} == {"calibrated"}
    saturated_seen = 0
    for frame_id, raw_path, calibrated, _ in lights:
        assert fits.getheader(cfg.paths.archive / calibrated)["CLPADC"] == 12
        truth = sim.light_truth(raw_path)
        sat = (np.asarray(truth["saturated"]) == 1) & (np.asarray(truth["in_frame"]) == 1)
        tx, ty = np.asarray(truth["x"])[sat], np.asarray(truth["y"])[sat]
        got = [(x, y, f) for fid, x, y, f in rows if fid == frame_id]
        mx = np.array([g[0] for g in got])
        my = np.array([g[1] for g in got])
        flags = np.array([g[2] for g in got])
        for x, y in zip(tx, ty):
            d = np.hypot(mx - x, my - y)
            if d.size and d.min() < 1.0:
                saturated_seen += 1
                assert flags[np.argmin(d)] & 1, (raw_path, x, y)
    assert saturated_seen >= 3, saturated_seen
