"""A small hand-made dashboard database (stars, frames, a variable with a known period) for the
web tests; ``populate`` returns the facts the tests check against."""

import math
from datetime import datetime

import numpy as np
from sqlalchemy.orm import Session

from clinepipe.store.models import (
    CatalogMatch,
    Frame,
    Measurement,
    Run,
    Star,
    ZeroPoint,
)

CSV_FIELDS = ("star_id,ra,dec,filter,jd_mid,bjd_tdb,mag,mag_err,inst_mag,inst_mag_err,"
              "zero_point,airmass,exptime,frame,flags").split(",")
PERIOD = 0.3  # days: star 1 is a sinusoidal variable
VAR_NAME = "V0001 Tst"
CAT_ID = "UCAC4 500-012345"


def make_engine(path):
    """The schema as the pipeline makes it (open_database runs the migrations)."""
    from clinepipe.store.db import open_database

    return open_database(f"sqlite:///{path}")


def populate(engine, archive=None):
    """Two nights: 24 calibrated lights each (V and R), a few failed / waiting / rejected /
    duplicate files; four stars (a variable, a bright and a faint constant, one never
    measured); zero points; a catalog match; a morning report for the first night."""
    rng = np.random.default_rng(1)
    facts = {"points": {}, "zero_points": {}}
    with Session(engine) as s:
        run = Run(started_at=datetime(2025, 3, 2, 7, 0), finished_at=datetime(2025, 3, 2, 7, 5),
                  software_version="test", status="finished")
        s.add(run)
        stars = [Star(id=1, ra=150.001, dec=20.002, name=VAR_NAME, var_type="EW", var_period=None),
                 Star(id=2, ra=150.010, dec=20.010, catalog_id=CAT_ID),
                 Star(id=3, ra=150.020, dec=19.990, catalog_id="UCAC4 500-099999"),
                 Star(id=4, ra=151.000, dec=21.000)]
        s.add_all(stars)
        s.flush()
        s.add(CatalogMatch(star_id=2, catalog="file", catalog_id=CAT_ID, ra=150.0101,
                           dec=20.0099, separation=0.4, mags='{"V": [11.2, 0.02], "R": [10.9, 0.03]}'))
        s.flush()
        base = {1: 12.5, 2: 11.0, 3: 15.0}
        for night, jd0 in (("20250301", 2460736.55), ("20250302", 2460737.55)):
            for i in range(24):
                filt = "V" if i % 2 == 0 else "R"
                jd = jd0 + i * 0.012
                frame = Frame(raw_path=f"{night}/light_{i:03d}_{filt}.fits", night=night,
                              kind="light", filter=filt, exptime=60.0, jd_mid=jd,
                              state="calibrated", airmass=1.2, run_id=run.id, qc="")
                s.add(frame)
                s.flush()
                zp = 21.0 + 0.01 * i
                s.add(ZeroPoint(frame_id=frame.id, filter=filt, catalog_band=filt, value=zp,
                                error=0.01, n_used=10, n_candidates=12, scatter=0.02))
                facts["zero_points"][frame.raw_path] = zp
                for sid, m0 in base.items():
                    mag = m0 + (0.4 if filt == "V" else 0.0)
                    if sid == 1:
                        mag += 0.3 * math.sin(2 * math.pi * (jd - 2460736.0) / PERIOD)
                    mag += rng.normal(0, 0.005)
                    err = 0.005 if sid != 3 else 0.03
                    s.add(Measurement(frame_id=frame.id, star_id=sid, filter=filt, jd_mid=jd,
                                      bjd_tdb=jd + 0.004, x=100.0 + sid, y=200.0, ra=stars[sid - 1].ra,
                                      dec=stars[sid - 1].dec, flux=1e4, flux_err=50.0, background=100.0,
                                      inst_mag=mag - zp, inst_mag_err=err, mag=mag, mag_err=err,
                                      airmass=1.2, flags=0))
                    facts["points"].setdefault(sid, []).append(
                        {"frame": frame.raw_path, "filter": filt, "jd_mid": jd, "mag": mag,
                         "mag_err": err, "zero_point": zp})
            for kind in ("bias", "dark", "flat"):
                for i in range(3):
                    s.add(Frame(raw_path=f"{night}/{kind}_{i}.fits", night=night, kind=kind,
                                state="used", run_id=run.id))
        s.add_all([
            Frame(raw_path="20250301/light_bad.fits", night="20250301", kind="light",
                  state="failed", stage="ingest", reason="truncated FITS"),
            Frame(raw_path="20250301/light_B_001.fits", night="20250301", kind="light",
                  filter="B", state="waiting", stage="reduce", reason="no flat master for filter B"),
            Frame(raw_path="20250302/dark_hot.fits", night="20250302", kind="dark",
                  state="rejected", stage="masters", reason="CCD-TEMP 5.0 warmer than -3.0"),
            Frame(raw_path="20250302/copy_of_light_000.fits", night="20250302", kind="light",
                  state="duplicate", reason="same bytes as 20250302/light_000_V.fits"),
            Frame(raw_path="junk/<script>alert(1)</script>.fits", night=None, state="failed",
                  stage="ingest", reason="not FITS"),
        ])
        s.commit()
    if archive is not None:
        report = archive / "reports" / "20250301"
        report.mkdir(parents=True)
        (report / "index.html").write_text("<html><body><h1>Morning report 20250301</h1>"
                                           "<img src='zp.png'></body></html>")
        (report / "zp.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 32)
        (archive.parent / "secret.txt").write_text("top secret")
    return facts
