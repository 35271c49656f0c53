"""Star identities, airmass/BJD, and the run lock."""

import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest

from clinepipe.catalogs.star_ids import assign_stars
from clinepipe.errors import LockHeld
from clinepipe.photometry.times import airmass, altitude, bjd_tdb
from clinepipe.run.lock import RunLock


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


def _astropy_altaz(ra, dec, jd, lat, lon, elevation=0.0):
    """Altitude (deg) from astropy's AltAz frame: an implementation independent of ours.
    UT1 = UTC and no refraction, as our geometry assumes."""
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers

    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("iers_degraded_accuracy", "ignore"):
        t = Time(jd, format="jd", scale="utc")
        t.delta_ut1_utc = 0.0
        site = EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, elevation * u.m)
        altaz = SkyCoord(ra * u.deg, dec * u.deg).transform_to(AltAz(obstime=t, location=site))
    return altaz.alt.deg


@pytest.mark.parametrize("ra,dec", [(162.0, 30.0), (10.0, 60.0), (250.0, -10.0), (300.0, 45.0)])
def test_altitude_and_airmass_agree_with_astropy(ra, dec):
    """Our fast altitude (no IERS tables, GMST from the JD) against astropy's AltAz through a
    night: within 0.05 deg (nutation and aberration, which astropy applies and a photometric
    airmass needs not), and the airmass within 0.3 % of Kasten & Young (1989)'s formula,
    independent of Pickering's that we use, at astropy's altitude above 20 deg."""
    lat, lon = 36.076, -79.8089
    jd = 2461114.55 + np.linspace(0.0, 0.45, 10)
    ours = altitude(ra, dec, jd, lat, lon)
    theirs = _astropy_altaz(ra, dec, jd, lat, lon)
    assert np.max(np.abs(ours - theirs)) < 0.05, np.max(np.abs(ours - theirs))
    up = theirs > 20
    x = airmass(ra, dec, jd, lat, lon)
    h = theirs[up]
    kasten_young = 1.0 / (np.sin(np.radians(h)) + 0.50572 * (h + 6.07995) ** -1.6364)
    assert np.all(np.abs(x[up] / kasten_young - 1) < 0.003), x[up] / kasten_young - 1
    assert np.all(np.isnan(x[theirs < -1]))


def test_bjd_agrees_with_astropy_to_the_millisecond():
    """BJD_TDB against astropy's own light-travel-time correction (Time.light_travel_time with
    the builtin ephemeris), at two seasons: within 1 ms."""
    import astropy.units as u
    from astropy.coordinates import EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers

    lat, lon, h = 36.0, -79.8, 250.0
    jd = np.array([2461114.7, 2461114.7 + 91.3, 2461114.7 + 182.6])
    ours = bjd_tdb(jd, 162.0, 30.0, lat, lon, h)
    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("iers_degraded_accuracy", "ignore"):
        site = EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, h * u.m)
        t = Time(jd, format="jd", scale="utc", location=site)
        t.delta_ut1_utc = 0.0
        ltt = t.light_travel_time(SkyCoord(162.0 * u.deg, 30.0 * u.deg), kind="barycentric")
        theirs = (t.tdb + ltt).jd
    assert np.max(np.abs(ours - theirs)) * 86400 < 1e-3, (ours - theirs) * 86400


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
