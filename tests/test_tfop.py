"""TFOP SG1 packages: the NEB arithmetic, the file names, and a package built by `clinepipe
run` (and `clinepipe transit --tic`) from a simulated transit night whose host has blended
neighbours -- one eclipsing with the depth it would need to mimic the transit, one constant
and bright, one too faint to cause it -- checked against the simulator's truth."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest
from astropy.io import fits

from clinepipe.config import SiteConfig
from clinepipe.errors import BadInput
from clinepipe.products.tfop import (
    FILETYPES,
    observatory_name,
    package_name,
    planet_number,
    tic_number,
)
from clinepipe.transits.differential import Comparisons
from clinepipe.transits.neb_check import (
    binned_rms,
    max_delta_mag,
    neb_check,
    needed_depth,
    trapezoid,
    unmeasured,
)
from clinepipe.transits.targets import read_targets

NAME = re.compile(r"^TIC(\d+)-(\d\d)_(\d{8})_([A-Za-z0-9.+-]+)_([A-Za-z0-9.+-]+)"
                  r"(?:_([0-9.]+)px)?_([A-Za-z.-]+)\.(\w+)$")
HOST_TIC = "TIC 123456789"
#: the neighbours of the host (simulate.transit.NEIGHBOUR_KEYS): one eclipsing by the depth
#: it needs to mimic the transit (d (1 + 10^(0.4 dm)) = 0.0144 x 7.31 = 0.105 at dm 2), one
#: constant and 1 mag fainter, one 5 mag fainter (the faintest possible source is dm 4.6)
NEIGHBOURS = [{"sep_arcsec": 11.0, "pa_deg": 60.0, "dmag": 2.0, "depth": 0.11},
              {"sep_arcsec": 24.0, "pa_deg": 270.0, "dmag": 1.0, "depth": 0.0},
              {"sep_arcsec": 32.0, "pa_deg": 300.0, "dmag": 5.0, "depth": 0.0}]


# --- the arithmetic ----------------------------------------------------------------------

@pytest.mark.parametrize("dm", [-1.0, 0.0, 2.0, 4.0])
def test_needed_depth_is_what_dims_the_blend_by_the_observed_depth(dm):
    f_target, f_neighbour, eclipse = 1.0, 10 ** (-0.4 * dm), 0.3
    observed = eclipse * f_neighbour / (f_target + f_neighbour)      # the blend's depth
    assert needed_depth(observed, dm) == pytest.approx(eclipse, rel=1e-12)


def test_faintest_source_needs_a_total_eclipse():
    for depth in (0.001, 0.01, 0.2):
        assert needed_depth(depth, max_delta_mag(depth)) == pytest.approx(1.0, rel=1e-12)
        # for shallow transits the familiar dm <= -2.5 log10(depth), a little fainter
        assert max_delta_mag(depth) < -2.5 * math.log10(depth)
    assert max_delta_mag(0.01) == pytest.approx(-2.5 * math.log10(0.01), abs=0.011)


def test_binned_rms_of_white_noise_falls_as_the_square_root_of_the_bin():
    rng = np.random.default_rng(1)
    t = np.arange(2000) / 1440.0          # one point a minute
    v = rng.normal(0.0, 0.01, t.size)
    assert binned_rms(t, v, 10.0) == pytest.approx(0.01 / math.sqrt(10), rel=0.1)


def _synthetic_night(rng, neighbours, n=180):
    """Fluxes (n, 1 + 4 comps + neighbours) of a host with a 1 % transit and neighbours
    (flux, eclipse depth, noise fraction); photon-like white noise, an airmass trend."""
    t = 2460000.0 + np.arange(n) * 2.0 / 1440.0
    tmid, duration = t[n // 2], 0.1
    airmass = 1.0 + 0.5 * ((t - t[0]) / (t[-1] - t[0]) - 0.4) ** 2
    trend = 10 ** (-0.4 * 0.2 * airmass)
    shape = trapezoid(t, tmid, duration, 0.01)
    columns = [(1e6 * (1 - 0.01 * shape), 1e-3)] + [(1e6, 1e-3)] * 4 + [
        (f * (1 - d * shape), s) for f, d, s in neighbours]
    flux = np.column_stack([f * trend * (1 + rng.normal(0, s, n)) for f, s in columns])
    err = np.column_stack([np.full(n, np.mean(f) * s) for f, s in columns])
    return t, tmid, duration, airmass, flux, err


def test_neb_verdicts_on_synthetic_light_curves():
    rng = np.random.default_rng(7)
    depth = 0.01
    dm = np.array([1.0, 1.0, 3.0, 5.5])
    need = needed_depth(depth, dm)
    #          flux            eclipse    noise per point
    nbrs = [(1e6 * 10 ** (-0.4 * dm[0]), need[0], 2e-3),   # eclipsing: an NEB
            (1e6 * 10 ** (-0.4 * dm[1]), 0.0, 2e-3),       # constant, precise: cleared
            (1e6 * 10 ** (-0.4 * dm[2]), 0.0, 0.25),       # constant, too noisy to tell
            (1e6 * 10 ** (-0.4 * dm[3]), 0.0, 0.05)]       # cannot cause 1 %
    t, tmid, duration, airmass, flux, err = _synthetic_night(rng, nbrs)
    comps = Comparisons(indices=np.arange(1, 5), weights=np.full(4, 0.25))
    m = flux.shape[1]
    rows = neb_check(t, flux, err, airmass, comparisons=comps,
                     sep=np.r_[0.0, np.full(4, 200.0), 10.0, 20.0, 30.0, 40.0],
                     delta_mag=np.r_[np.zeros(5), dm], star_ids=np.arange(m),
                     ra=np.zeros(m), dec=np.zeros(m), depth=depth, tmid=tmid,
                     duration=duration)
    verdicts = {r.star_id: r.verdict for r in rows}
    assert verdicts == {5: "flagged", 6: "cleared", 7: "not cleared", 8: "too faint"}
    nebs = {r.star_id: r for r in rows}
    assert nebs[5].depth_seen == pytest.approx(need[0], abs=4 * nebs[5].depth_seen_err)
    assert abs(nebs[6].depth_seen) < 4 * nebs[6].depth_seen_err
    # 2e-3 per 2-min point (the four comparisons add 5e-4): 9.2e-4 per 10-min bin
    assert nebs[6].rms_binned == pytest.approx(math.hypot(2e-3, 5e-4) / math.sqrt(5), rel=0.3)
    assert [r.sep for r in rows] == sorted(r.sep for r in rows)    # comps are beyond 150"


def test_stars_without_a_light_curve_are_not_measured_unless_too_faint():
    rows = unmeasured([1, 2, 3, 4], [0.0] * 4, [0.0] * 4, [10.0, 20.0, 30.0, 200.0],
                      [1.0, np.nan, 6.0, 1.0], depth=0.01)
    assert [(r.star_id, r.verdict) for r in rows] == [
        (1, "not measured"), (2, "not measured"), (3, "too faint")]     # 4 is beyond 2.5'
    assert rows[0].needed_depth == pytest.approx(needed_depth(0.01, 1.0))


# --- names ---------------------------------------------------------------------------------

def test_planet_numbers_and_file_names():
    assert planet_number("TOI-1234.01") == "01" and planet_number("TOI-1234.02") == "02"
    assert planet_number("HAT-P-32 b") == "01" and planet_number("Kepler-9 c") == "02"
    assert planet_number("WASP-12") == "01"
    assert tic_number("TIC 000123") == "123" and tic_number("987") == "987"
    with pytest.raises(ValueError):
        tic_number("TOI 123.01")
    site = SiteConfig(name="Mount Kent Obs", telescope="CDK 20")
    assert observatory_name(site) == "MountKentObs-CDK20"
    name = package_name("123", "01", "20260315", "MountKentObs", "V", 6.5, "measurements")
    assert name == "TIC123-01_20260315_MountKentObs_V_6.5px_measurements.csv"
    assert package_name("123", "01", "20260315", "Obs", "R", 6.5, "field.wcs") == \
        "TIC123-01_20260315_Obs_R_field.wcs"
    assert all(NAME.match(package_name("1", "02", "20260101", "O", "B", 5.0, t))
               for t in FILETYPES)


def test_tic_id_and_depth_columns_of_transits_csv(tmp_path):
    path = tmp_path / "transits.csv"
    head = "pl_name,ra,dec,pl_orbper,pl_tranmid,pl_trandur,pl_trandep,tic_id\n"
    path.write_text(head + "TOI-1.01,10,20,2.5,2459000.5,2.4,1.44,TIC 123\n")
    target = read_targets(path)[0]
    assert target.tic_id == "TIC 123" and target.depth == pytest.approx(0.0144)
    path.write_text(head + "TOI-1.01,10,20,2.5,2459000.5,2.4,,TOI-1\n")
    with pytest.raises(BadInput) as exc:
        read_targets(path)
    assert str(path) in exc.value.message and "tic_id 'TOI-1'" in exc.value.message
    path.write_text(head + "TOI-1.01,10,20,2.5,2459000.5,2.4,140,123\n")
    with pytest.raises(BadInput) as exc:
        read_targets(path)
    assert "pl_trandep 140" in exc.value.message and "line 2" in exc.value.message


def test_simulated_neighbours_sit_and_eclipse_as_asked():
    from clinepipe.catalogs.match import separation_arcsec
    from clinepipe.simulate import ephemeris
    from clinepipe.simulate.scene import Simulator
    from clinepipe.simulate.spec import SimulationSpec

    spec = SimulationSpec(width=160, height=160, n_stars=40, filters=("V",),
                          transit={"rprs": 0.12, "neighbours": NEIGHBOURS})
    sim = Simulator(spec, seed=5)
    host = sim.stars[sim.transit.star]
    for asked, made in zip(NEIGHBOURS, sim.transit.neighbours):
        star = sim.stars[made["star"]]
        assert separation_arcsec(host["ra"], host["dec"], star["ra"], star["dec"]) == \
            pytest.approx(asked["sep_arcsec"], rel=0.01)
        assert star["V"] - host["V"] == pytest.approx(asked["dmag"])
    # at mid-transit (BJD_TDB t0: the UTC JD found by one correction) the eclipsing
    # neighbour is dimmed by its depth, the constant ones not at all
    t0 = sim.transit.t0
    jd = t0 - (float(ephemeris.bjd_tdb(t0, host["ra"], host["dec"])[0]) - t0)
    dm = sim.delta_mag(jd, exptime=0.0)
    assert [10 ** (-0.4 * dm[n["star"]]) for n in sim.transit.neighbours] == pytest.approx(
        [1 - n["depth"] for n in NEIGHBOURS], abs=1e-6)
    assert 10 ** (-0.4 * dm[sim.transit.star]) < 1 - 0.12**2        # the host transits too


# --- a package from a simulated transit night ------------------------------------------------

@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """70 lights over a 2.5-h transit (Rp/Rs 0.12) of a host with NEIGHBOURS, run with a
    transits.csv naming the TIC id."""
    from clinepipe.config import load_config
    from clinepipe.run.pipeline import run_pipeline
    from clinepipe.simulate import simulate_night

    out = tmp_path_factory.mktemp("tfop")
    sim = simulate_night(out, seed=5, width=160, height=160, n_stars=40,
                         mag_range=(10.0, 15.5), seeing_arcsec=(3.0, 4.0), filters=("V",),
                         lights_per_filter=70, variables=False, cosmic_rays=False, n_bias=3,
                         n_dark=3, n_flat=3,
                         transit={"rprs": 0.12, "neighbours": NEIGHBOURS})
    truth = json.loads((out / "truth" / "transit.json").read_text())
    host = sim.stars[truth["star"]]
    (out / "transits.csv").write_text(
        "pl_name,ra,dec,pl_orbper,pl_tranmid,pl_trandur,pl_ratror,tic_id\n"
        f"TOI-1234.01,{host['ra']:.7f},{host['dec']:.7f},{truth['period']},"
        f"{truth['t0'] + 0.002:.6f},2.47,0.12,{HOST_TIC}\n", encoding="utf-8")
    with open(sim.config_path, "a", encoding="utf-8") as fh:
        fh.write('\n[transits]\npath = "transits.csv"\n')
    cfg = load_config(sim.config_path)
    run_pipeline(cfg, settle_seconds=0)
    folder = cfg.paths.archive / "transits" / sim.nights[0] / "TOI-1234.01"
    files = {}
    for p in folder.iterdir():
        match = NAME.match(p.name)
        if match:
            files[match.group(7) + "." + match.group(8)] = p
    return {"sim": sim, "cfg": cfg, "truth": truth, "folder": folder, "files": files,
            "fit": json.loads((folder / "fit.json").read_text())}


def _lights(package) -> list:
    """The simulated lights (truth/frames.csv rows), in time order."""
    frames = package["sim"].frames
    return sorted((r for r in frames if r["kind"] == "light"), key=lambda r: r["jd_mid"])


def _stem(row) -> str:
    return str(row["file"]).rsplit("/", 1)[-1].rsplit(".", 1)[0]


def _ids(package):
    """Truth star id -> database star id, by position (within 1 arcsec)."""
    from sqlalchemy import select

    from clinepipe.catalogs.match import separation_arcsec
    from clinepipe.store.db import open_database, session_scope
    from clinepipe.store.models import Star

    stars = package["sim"].stars
    with session_scope(open_database(package["cfg"].database.url)) as s:
        rows = s.execute(select(Star.id, Star.ra, Star.dec)).all()
    out = {}
    for star_id, ra, dec in rows:
        sep = separation_arcsec(ra, dec, np.asarray(stars["ra"]), np.asarray(stars["dec"]))
        if sep.min() < 1.0:
            out[int(stars["id"][int(np.argmin(sep))])] = int(star_id)
    return out


@pytest.mark.slow
def test_package_names_and_file_set(package):
    fit = package["fit"]
    wanted = {f"{t.removesuffix('.wcs')}.{ext}" for t, (ext, _) in FILETYPES.items()}
    assert set(package["files"]) == wanted
    first = _lights(package)[0]
    for p in package["files"].values():
        tic, pp, date, obs, band, px, filetype, ext = NAME.match(p.name).groups()
        assert (tic, pp, obs, band) == ("123456789", "01", "Observatory", "V")
        assert date == str(first["date_obs"])[:10].replace("-", "")  # UTC date of the start
        assert (px is not None) == FILETYPES[filetype + (".wcs" if ext == "wcs" else "")][1]
        if px is not None:
            assert float(px) == fit["aperture"]
        if ext == "png":
            assert p.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_measurements_table_has_a_row_per_frame(package):
    from clinepipe.ccd.reduced_files import calibrated_name

    with open(package["files"]["measurements.csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    plans = _lights(package)
    assert [r["Label"] for r in rows] == [calibrated_name(str(p["file"]).rsplit("/", 1)[-1])
                                          for p in plans]
    for key in ("BJD_TDB", "JD_UTC", "AIRMASS", "FWHM_Mean", "rel_flux_T1",
                "rel_flux_err_T1", "Source-Sky_T1", "Source_Error_T1", "Sky/Pixel_T1",
                "X(IJ)_T1", "Y(IJ)_T1", "X(FITS)_T1", "Y(FITS)_T1", "Source-Sky_C2",
                "rel_flux_C2", "tot_C_cnts"):
        values = np.array([float(r[key]) for r in rows])
        assert np.all(np.isfinite(values)), key
    n_comps = len(package["fit"]["comps"])
    assert f"Source-Sky_C{n_comps + 1}" in rows[0] and f"Source-Sky_C{n_comps + 2}" not in rows[0]
    jd = np.array([float(r["JD_UTC"]) for r in rows])
    assert np.abs(jd - [float(p["jd_mid"]) for p in plans]).max() * 86400 < 0.01
    # the fitted light curve is the table's relative flux
    with open(package["folder"] / "lightcurve.csv", newline="") as fh:
        lc = list(csv.DictReader(fh))
    assert np.allclose([float(r["rel_flux_T1"]) for r in rows], [float(r["flux"]) for r in lc],
                       atol=2e-6)
    assert np.allclose([float(r["BJD_TDB"]) for r in rows], [float(r["bjd_tdb"]) for r in lc],
                       atol=2e-6)
    # positions: the host where the simulator put it (1-based FITS; ImageJ's y from the top)
    host = package["truth"]["star"]
    truth_dir = package["cfg"].source_file.parent / "truth" / "lights"
    for r, p in zip(rows[::10], plans[::10]):
        with open(truth_dir / f"{_stem(p)}.csv", newline="") as fh:
            star = next(s for s in csv.DictReader(fh) if int(s["id"]) == host)
        assert abs(float(r["X(FITS)_T1"]) - float(star["x"])) < 0.3
        assert abs(float(r["Y(FITS)_T1"]) - float(star["y"])) < 0.3
        assert float(r["Y(IJ)_T1"]) == pytest.approx(160 - float(r["Y(FITS)_T1"]) + 0.5)


@pytest.mark.slow
def test_neb_verdicts_against_truth(package):
    ids = _ids(package)
    with open(package["files"]["NEB-table.csv"], newline="") as fh:
        rows = {int(r["star_id"]): r for r in csv.DictReader(fh)}
    eclipsing, constant, faint = (ids[n["star"]] for n in package["truth"]["neighbours"])
    assert rows[eclipsing]["verdict"] == "flagged"
    assert rows[constant]["verdict"] == "cleared"
    assert rows[faint]["verdict"] == "too faint"
    # the depth it would need: 0.0144 (1 + 10^(0.4 dm)), dm the measured 2 mag
    assert float(rows[eclipsing]["needed_depth"]) == pytest.approx(
        0.0144 * (1 + 10 ** (0.4 * float(rows[eclipsing]["delta_mag"]))), rel=1e-4)
    assert float(rows[eclipsing]["delta_mag"]) == pytest.approx(2.0, abs=0.1)
    assert float(rows[eclipsing]["depth_seen"]) > 0.5 * 0.11
    # no constant star is taken for an NEB, and every star within 2.5' is listed
    assert [r["verdict"] for s, r in rows.items() if s != eclipsing].count("flagged") == 0
    assert all(float(r["sep_arcsec"]) <= 150.0 for r in rows.values())
    # every star of the database within 2.5' of the host is listed, measured or not
    stars = package["sim"].stars
    host = stars[package["truth"]["star"]]
    from clinepipe.catalogs.match import separation_arcsec

    near = {db for truth_id, db in ids.items() if truth_id != package["truth"]["star"]
            and separation_arcsec(host["ra"], host["dec"], stars["ra"][truth_id],
                                  stars["dec"][truth_id]) < 149.0}
    assert near <= set(rows) and len(rows) >= 10
    measured = [r for r in rows.values() if r["verdict"] not in ("not measured", "too faint")]
    assert all(np.isfinite(float(r["rms_10min"])) for r in measured) and len(measured) >= 8
    notes = package["files"]["notes.txt"].read_text()
    # an eclipsing comparison star is named in the notes
    assert ("WARNING: flagged star(s) " in notes) == (eclipsing in package["fit"]["comps"])
    for text in ("TIC 123456789", "filter: V", "aperture radius: ", "comparison stars",
                 "detrending: airmass", "O-C = ", "1 flagged", "telescope: ", "camera: "):
        assert text in notes, text


@pytest.mark.slow
def test_wcs_file_places_the_host(package):
    from astropy.wcs import WCS

    header = fits.getheader(package["files"]["field.wcs"])
    assert header["NAXIS"] == 0
    wcs = WCS(header)
    host = package["sim"].stars[package["truth"]["star"]]
    x, y = wcs.all_world2pix(host["ra"], host["dec"], 1)
    truth_dir = package["cfg"].source_file.parent / "truth" / "lights"
    frame = header["FRAME"].removesuffix("_calibrated.fits")
    with open(truth_dir / f"{frame}.csv", newline="") as fh:
        star = next(s for s in csv.DictReader(fh) if int(s["id"]) == package["truth"]["star"])
    assert math.hypot(x - float(star["x"]), y - float(star["y"])) < 0.5


@pytest.mark.slow
def test_transit_command_with_tic_writes_the_same_package(package, tmp_path, capsys):
    from clinepipe.cli import main

    truth, host = package["truth"], package["sim"].stars[package["truth"]["star"]]
    out = tmp_path / "by-hand"
    with pytest.raises(SystemExit) as done:
        main(["--config", str(package["cfg"].source_file), "transit",
              f"{host['ra']:.6f} {host['dec']:.6f}", "--period", str(truth["period"]),
              "--t0", f"{truth['t0'] + 0.002:.6f}", "--duration", "2.47", "--rprs", "0.12",
              "--tic", "123456789", "--name", "TOI-1234.01", "--output", str(out)])
    assert done.value.code in (0, None), capsys.readouterr().err
    mine = sorted(p.name for p in out.iterdir() if p.name.startswith("TIC"))
    assert mine == sorted(p.name for p in package["files"].values())
    neb = next(p for p in package["files"].values() if p.name.endswith("NEB-table.csv"))
    assert (out / neb.name).read_text() == neb.read_text()
    with pytest.raises(SystemExit) as done:
        main(["--config", str(package["cfg"].source_file), "transit", "1", "--period", "2.5",
              "--t0", "2461114.7", "--tic", "TOI 5", "--output", str(tmp_path / "no")])
    assert done.value.code == 2 and "--tic 'TOI 5'" in capsys.readouterr().err
