"""The masters step looks only at the nights whose calibration groups can need a new master
(run.master_nights): new or waiting frames, and nights within the master age of a night whose
needed masters changed; every night when a master was made in another reduction mode."""
import dataclasses
from datetime import datetime

from clinepipe.config import Config, ReductionConfig
from clinepipe.run.master_nights import candidate_nights
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame, Master


def _frames(s, kind, night, state, n=3):
    s.add_all([Frame(raw_path=f"{night}/{kind}_{i}.fit", kind=kind, night=night, state=state,
                     binning=1, jd_mid=0.0) for i in range(n)])


def _nights(engine, cfg):
    changed: dict = {}
    with session_scope(engine) as s:
        for kind in ("bias", "dark", "flat"):
            changed[kind] = candidate_nights(s, cfg, kind, changed)
    return changed


def test_only_new_nights_and_the_nights_near_them(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    cfg = Config(reduction=ReductionConfig(max_master_age_days=30))
    with session_scope(engine) as s:
        for night in ("20250101", "20250601", "20260110"):  # years of built masters
            for kind in ("bias", "dark", "flat"):
                _frames(s, kind, night, "used")
        _frames(s, "bias", "20260301", "ingested")   # tonight's new bias frames
        _frames(s, "dark", "20260302", "used")       # darks a day later (built lacking a bias?)
        _frames(s, "flat", "20260215", "waiting")    # flats waiting for their masters
    got = _nights(engine, cfg)
    assert got["bias"] == ["20260301"]
    # a new bias master can give the darks within the master age what they lacked
    assert got["dark"] == ["20260302"]
    # waiting flats, and the flats near the nights whose bias/darks changed
    assert got["flat"] == ["20260215"]
    engine.dispose()


def test_a_change_of_reduction_mode_looks_at_every_night(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    cfg = Config()
    other = "seed" if cfg.reduction.mode != "seed" else "default"
    with session_scope(engine) as s:
        _frames(s, "bias", "20250101", "used")
        s.add(Master(kind="bias", binning=1, night="20250101", jd=0.0, shape_y=1, shape_x=1,
                     path="m.fits", mode=other, n_frames=3, inputs="[]", input_key="k",
                     software_version="t", created_at=datetime(2025, 1, 2)))
    assert _nights(engine, cfg) == {"bias": None, "dark": None, "flat": None}
    same = dataclasses.replace(cfg, reduction=dataclasses.replace(cfg.reduction, mode=other))
    assert _nights(engine, same) == {"bias": [], "dark": [], "flat": []}
    engine.dispose()
