"""Transits end to end: a simulated transit night through `clinepipe run` (the `_transits`
step) and `clinepipe transit`, against the simulator's truth."""

from __future__ import annotations

import csv
import json

import pytest

from clinepipe.cli import main
from clinepipe.config import load_config
from clinepipe.products.aavso_format import validate_exoplanet
from clinepipe.run.pipeline import run_pipeline
from clinepipe.simulate import simulate_night

FIT_KEYS = ("planet", "night", "filter", "tmid", "tmid_err", "rprs", "rprs_err", "depth",
            "depth_err", "ars", "ars_err", "inc", "inc_err", "duration", "rms_residual",
            "n_points", "comps", "aperture", "detrend", "oc_minutes")
#: the ephemeris of transits.csv is off by this much (d), as a table's is
T0_OFFSET = 0.002


@pytest.fixture(scope="module")
def transit_night(tmp_path_factory):
    """One night of 70 lights over a 2.5-h transit (Rp/Rs 0.12) of a bright star in a small
    field of bright stars, run with a transits.csv from the truth's ephemeris (t0 off by
    3 min) and a second planet of the same star that does not transit that night."""
    out = tmp_path_factory.mktemp("transit")
    sim = simulate_night(out, seed=5, width=128, height=128, n_stars=40,
                         mag_range=(10.0, 15.5), seeing_arcsec=(3.0, 4.0), filters=("V",),
                         lights_per_filter=70, variables=False, cosmic_rays=False, n_bias=3,
                         n_dark=3, n_flat=3, transit={"rprs": 0.12})
    truth = json.loads((out / "truth" / "transit.json").read_text())
    host = sim.stars[truth["star"]]
    hours = 2.47  # T14 of P 2.5 d, a/Rs 8, i 87 deg, Rp/Rs 0.12
    rows = [("Sim b", truth["t0"] + T0_OFFSET), ("Sim c", truth["t0"] + 0.5 * truth["period"])]
    (out / "transits.csv").write_text(
        "pl_name,ra,dec,pl_orbper,pl_tranmid,pl_trandur,pl_ratror\n" + "".join(
            f"{name},{host['ra']:.7f},{host['dec']:.7f},{truth['period']},{t0:.6f},{hours},"
            "0.12\n" for name, t0 in rows), encoding="utf-8")
    with open(sim.config_path, "a", encoding="utf-8") as fh:
        fh.write('\n[transits]\npath = "transits.csv"\n\n[aavso]\nobscode = "XYZ"\n')
    cfg = load_config(sim.config_path)
    run_pipeline(cfg, settle_seconds=0)
    folder = cfg.paths.archive / "transits" / sim.nights[0] / "Sim_b"
    return {"sim": sim, "cfg": cfg, "truth": truth, "folder": folder, "hours": hours,
            "t0": truth["t0"] + T0_OFFSET}


@pytest.mark.slow
def test_run_fits_the_transit_against_truth(transit_night):
    folder, truth = transit_night["folder"], transit_night["truth"]
    fit = json.loads((folder / "fit.json").read_text())
    assert set(FIT_KEYS) <= set(fit)
    assert fit["planet"] == "Sim b" and fit["filter"] == "V" and fit["detrend"] == ["airmass"]
    assert abs(fit["tmid"] - truth["t0"]) < 3 * fit["tmid_err"]
    assert abs(fit["rprs"] - truth["rprs"]) < 3 * fit["rprs_err"]
    assert fit["tmid_err"] * 1440 < 5.0 and fit["rprs_err"] < 0.02      # a useful fit
    # O-C against the (offset) table ephemeris: the offset, within the error
    assert abs(fit["oc_minutes"] + T0_OFFSET * 1440) < 3 * fit["tmid_err"] * 1440
    assert fit["depth"] == pytest.approx(fit["rprs"] ** 2, rel=0.05)
    assert len(fit["comps"]) >= 3 and fit["aperture"] in map(float, fit["aperture_scatter"])
    # V, host Teff unknown (5750 K assumed): inside the Magic et al. 2015 table
    assert fit["limb_darkening_model"] == "magic2015" and "assumed" in fit["limb_darkening_source"]
    with open(folder / "lightcurve.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["bjd_tdb", "flux", "flux_err", "model", "detrended", "airmass"]
    assert len(rows) - 1 == fit["n_points"] >= 60
    text = (folder / "aavso_exoplanet.txt").read_text()
    assert validate_exoplanet(text) == []
    assert "#DATE_TYPE=BJD_TDB" in text and "#DETREND_PARAMETERS=AIRMASS" in text
    assert (folder / "lightcurve.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(folder.glob("TIC*"))        # no tic_id: no TFOP package
    # the second planet has no transit that night: one sentence in the log, no folder
    log = (transit_night["cfg"].paths.archive / "logs" / "clinepipe.log").read_text()
    assert "Sim c, night" in log and "no transit of Sim c in the night" in log
    assert not (folder.parent / "Sim_c").exists()


@pytest.mark.slow
def test_rerun_leaves_the_fit_as_it_was(transit_night):
    before = (transit_night["folder"] / "fit.json").read_bytes()
    run_pipeline(transit_night["cfg"], settle_seconds=0)
    assert (transit_night["folder"] / "fit.json").read_bytes() == before


@pytest.mark.slow
def test_transit_command_gives_the_same_fit(transit_night, tmp_path, capsys):
    sim, truth = transit_night["sim"], transit_night["truth"]
    host = sim.stars[truth["star"]]
    out = tmp_path / "by-hand"
    position = f"{host['ra']:.6f} {host['dec']:.6f}"
    with pytest.raises(SystemExit) as done:
        main(["--config", str(sim.config_path), "transit", position, "--period",
              str(truth["period"]), "--t0", f"{transit_night['t0']:.6f}", "--duration",
              str(transit_night["hours"]), "--rprs", "0.12", "--output", str(out)])
    assert done.value.code in (0, None), capsys.readouterr().err
    mine = json.loads((out / "fit.json").read_text())
    run = json.loads((transit_night["folder"] / "fit.json").read_text())
    # the same frames, stars, times and MCMC seed: the same numbers
    for key in ("aperture", "comps", "n_points", "night", "filter", "detrend"):
        assert mine[key] == run[key], key
    for key in ("tmid", "tmid_err", "rprs", "rprs_err", "ars", "inc", "oc_minutes"):
        assert mine[key] == pytest.approx(run[key], rel=1e-9, abs=1e-12), key
    assert validate_exoplanet((out / "aavso_exoplanet.txt").read_text()) == []


@pytest.mark.slow
def test_transit_command_without_a_transit_exits_1(transit_night, tmp_path, capsys):
    sim, truth = transit_night["sim"], transit_night["truth"]
    host = sim.stars[truth["star"]]
    with pytest.raises(SystemExit) as done:
        main(["--config", str(sim.config_path), "transit", f"{host['ra']:.6f} {host['dec']:.6f}",
              "--period", str(truth["period"]), "--t0", f"{truth['t0'] + 1.25:.6f}",
              "--duration", "2.47", "--output", str(tmp_path / "none")])
    assert done.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("clinepipe: no frame of any night") and "predicted transit" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "none").exists()


def test_transits_path_is_relative_to_the_config_and_must_exist(tmp_path):
    from clinepipe.errors import ConfigError

    (tmp_path / "conf").mkdir()
    cfg_file = tmp_path / "conf" / "clinepipe.toml"
    cfg_file.write_text('[transits]\npath = "planets/transits.csv"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(cfg_file)
    assert exc.value.message.count(".") >= 1 and "transits.path" in exc.value.message
    assert str(tmp_path / "conf" / "planets" / "transits.csv") in exc.value.message
    (tmp_path / "conf" / "planets").mkdir()
    (tmp_path / "conf" / "planets" / "transits.csv").write_text("pl_name\n", encoding="utf-8")
    assert load_config(cfg_file).transits.path == tmp_path / "conf" / "planets" / "transits.csv"
    cfg_file.write_text("", encoding="utf-8")
    assert str(load_config(cfg_file).transits.path) == "."      # no section: no transits


@pytest.mark.slow
def test_fits_are_listed_for_the_report(transit_night):
    from clinepipe.transits.outputs import read_transit_fits

    archive = transit_night["cfg"].paths.archive
    night = transit_night["sim"].nights[0]
    fits = read_transit_fits(archive, night)
    assert [f["planet"] for f in fits] == ["Sim b"]
    assert fits[0]["folder"] == transit_night["folder"] and fits[0]["plot"].is_file()
    assert read_transit_fits(archive, "19990101") == []
