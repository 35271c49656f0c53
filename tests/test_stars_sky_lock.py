"""Star identities, airmass/BJD, and the run lock."""

import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest

from clinepipe.errors import LockHeld
from clinepipe.run.lock import RunLock
from clinepipe.photometry.times import airmass, altitude, bjd_tdb
from clinepipe.catalogs.star_ids import assign_stars


def test_assign_stars_matches_known_and_creates_new():
    known_ra = np.array([100.0, 100.01])
    known_dec = np.array([10.0, 10.0])
    ra = np.array([100.0 + 0.3 / 3600, 100.02, 100.01, 100.01 + 0.5 / 3600])
    dec = np.array([10.0, 10.0, 10.0, 10.0])
    idx = assign_stars(ra, dec, known_ra, known_dec, 2.0)
    assert idx[0] == 0
    assert idx[1] == -1          # new star
    assert idx[2] == 1           # nearest detection wins star 1
    assert idx[3] == -2          # a second detection of star 1 on the same frame is dropped


def test_assign_stars_empty_list():
    idx = assign_stars(np.array([1.0, 1.1]), np.array([0.0, 0.0]), [], [], 2.0)
    assert list(idx) == [-1, -1]


def test_airmass_at_zenith_and_horizon():
    # a star at the site's latitude transiting: altitude 90 deg, airmass 1
    lat, lon = 36.076, -79.8089
    jd = 2461114.75
    gmst = np.mod(280.46061837 + 360.98564736629 * (jd - 2451545.0), 360)
    ra = np.mod(gmst + lon, 360)
    assert abs(altitude(ra, lat, jd, lat, lon) - 90) < 1e-6
    assert abs(airmass(ra, lat, jd, lat, lon) - 1.0) < 1e-3
    assert np.isnan(airmass(np.mod(ra + 180, 360), -lat, jd, lat, lon))
    # 60 deg altitude: about sec(30) = 1.1547
    x = airmass(ra, lat - 30, jd, lat, lon)
    assert abs(x - 1.1547) < 0.002


def test_bjd_correction_bounded_and_seasonal():
    jd = np.array([2461114.7, 2461114.7 + 182.6])
    b = bjd_tdb(jd, 162.0, 30.0, 36.0, -79.8, 250.0)
    corr = (b - jd) * 86400
    # |light travel time| <= 500 s, plus TDB-UTC of ~69 s
    assert np.all(np.abs(corr - 69.2) < 510)
    assert np.sign(corr[0] - 69.2) != np.sign(corr[1] - 69.2)


def _hold(path, ready):
    with RunLock(path):
        ready.set()
        time.sleep(60)


def test_lock_second_run_refused_and_dead_holder_taken_over(tmp_path):
    path = tmp_path / "clinepipe.lock"
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold, args=(path, ready))
    proc.start()
    assert ready.wait(10)
    with pytest.raises(LockHeld) as err:
        with RunLock(path):
            pass
    assert err.value.exit_code == 3 and f"pid {proc.pid}" in err.value.message
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    with RunLock(path):  # stale lock of a dead process is taken over
        pass
