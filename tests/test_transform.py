"""Transformed magnitudes (issue 21, TRANS=YES) against the simulator's truth.

The simulated instrument differs from the standard system by known colour terms
(``SimulationSpec.colour_terms``: m_std - m_inst = T * colour + const, B and V on B-V, R on
V-R). Night 1 of the same field serves as the standard field: ``clinepipe transform`` must
recover the coefficients within their errors. With them in ``[transform]``, night 2 (B, V and
R interleaved) is run: its transformed magnitudes must agree with the true magnitudes of stars
of every colour within their errors, without a colour trend, while the untransformed ones
show the trend the colour terms put in; its AAVSO file says TRANS=YES and is valid.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from clinepipe.calibrate.transform import NightPhotometry, pair_frames
from clinepipe.calibrate.transform_apply import (
    apply_transform,
    implied_colour_coefficient,
)
from clinepipe.calibrate.transform_fit import fit_transform
from clinepipe.config import config_from_dict, load_config
from clinepipe.errors import ConfigError
from clinepipe.products.aavso_format import validate_extended
from clinepipe.run.pipeline import run_pipeline
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame, Measurement, TransformedMag

#: the instrument's colour terms (AAVSO's Tb_bv, Tv_bv, Tr_vr of the simulated camera)
TERMS = {"B": 0.12, "V": -0.06, "R": 0.08}
#: the colour coefficient they imply: b - v = (B - V)(1 - Tb_bv + Tv_bv) + const
TRUE_TBV = 1.0 / (1.0 - TERMS["B"] + TERMS["V"])
NIGHTS = ("20260314", "20260315")
AAVSO_TOML = '\n[aavso]\nobscode = "TEST"\ntargets = ["V0001 Sim"]\n'


# ----------------------------------------------------------------------------- synthetic nights

def _synthetic_night(seed: int, n_stars: int = 60, repeats: int = 8) -> tuple:
    """A night of interleaved B, V, R frames of ``n_stars`` stars with the colour terms
    ``TERMS``, noisy instrumental and catalog magnitudes: (NightPhotometry, true standard
    magnitude per measurement, true colour per measurement)."""
    rng = np.random.default_rng(seed)
    bv = rng.triangular(0.0, 0.6, 1.6, n_stars)
    vr = 0.55 * bv + rng.normal(0.0, 0.03, n_stars)
    v = rng.uniform(10.0, 15.5, n_stars)
    std = {"B": v + bv, "V": v, "R": v - vr}
    bands = np.array(["B", "V", "R"] * repeats)
    jd = 2461000.6 + np.arange(bands.size) * 0.004
    frame = np.repeat(np.arange(bands.size), n_stars)
    star = np.tile(np.arange(n_stars), bands.size)
    fb = bands[frame]
    true = np.select([fb == "B", fb == "V", fb == "R"], [std["B"][star], std["V"][star],
                                                          std["R"][star]])
    colour = np.where(fb == "R", vr[star], bv[star])
    term = np.select([fb == "B", fb == "V", fb == "R"], [TERMS["B"], TERMS["V"], TERMS["R"]])
    err = 0.004 + 0.02 * 10 ** (0.4 * (true - 15.0))
    zp = rng.normal(-21.0, 0.1, bands.size)
    inst = true - term * colour - zp[frame] + rng.normal(0.0, 1.0, frame.size) * err
    cat_err = {b: 0.01 + 0.02 * 10 ** (0.4 * (m - 15.0)) for b, m in std.items()}
    cat = {b: std[b] + rng.normal(0.0, 1.0, n_stars) * cat_err[b] for b in std}
    night = NightPhotometry(frame, star, inst, err, np.ones(frame.size, bool), bands, jd, cat,
                            cat_err)
    return night, true, colour


def test_fitted_coefficient_errors_are_honest_over_many_nights():
    """Over 120 synthetic standard-field nights the coefficients scatter about the truth as
    their stated errors say (errors in both variables, catalog errors shared by a star's
    points, V in both V - v and B - V)."""
    truth = {"Tb_bv": TERMS["B"], "Tv_bv": TERMS["V"], "Tr_vr": TERMS["R"], "Tbv": TRUE_TBV}
    pulls = {name: [] for name in truth}
    for seed in range(120):
        fitted = fit_transform(_synthetic_night(seed)[0])
        for name, value in truth.items():
            pulls[name].append((fitted[name].value - value) / fitted[name].error)
    for name, p in pulls.items():
        p = np.asarray(p)
        assert abs(np.mean(p)) < 0.3, (name, np.mean(p))    # unbiased (0.09 expected scatter)
        assert 0.8 < np.std(p) < 1.25, (name, np.std(p))     # honest errors


def test_apply_recovers_standard_magnitudes_of_every_colour():
    night, true, colour = _synthetic_night(7, n_stars=120)
    fitted = fit_transform(night)
    names = ("Tb_bv", "Tv_bv", "Tr_vr", "Tbv", "Tvr")
    coefficients = {n: fitted[n].value for n in names}
    errors = {n: fitted[n].error for n in names}
    for mode in ("pair", "mean"):
        result = apply_transform(night, coefficients, errors, colour=mode)
        band = night.frame_band[night.frame]
        for b in "BVR":
            sel = band == b
            assert np.isfinite(result.mag[sel]).all()
            pull = (result.mag[sel] - true[sel]) / result.mag_err[sel]
            assert abs(np.mean(pull)) < 0.5 and 0.8 < np.std(pull) < 1.2, (mode, b)
            slope = np.polyfit(colour[sel], result.mag[sel] - true[sel], 1)[0]
            assert abs(slope) < 0.01, (mode, b, slope)     # the colour terms are 0.06-0.12
    tv, tbv = coefficients["Tv_bv"], coefficients["Tbv"]
    assert result.notes["Tv_bv"] == f"Tv_bv={tv:.3f} Tbv={tbv:.3f}"


def test_colour_coefficient_implied_by_both_magnitude_coefficients():
    assert implied_colour_coefficient({"Tb_bv": 0.12, "Tv_bv": -0.06}, "B", "V") == \
        pytest.approx(TRUE_TBV)
    assert implied_colour_coefficient({"Tbv": 1.1, "Tb_bv": 0.12, "Tv_bv": -0.06}, "B", "V") == 1.1
    assert np.isnan(implied_colour_coefficient({"Tv_bv": -0.06}, "B", "V"))
    # a magnitude coefficient without its colour's coefficient transforms nothing, and says why
    night = _synthetic_night(1)[0]
    result = apply_transform(night, {"Tv_bv": -0.06})
    assert np.isnan(result.mag).all() and "Tbv" in result.reasons["V"]


def test_frames_pair_with_the_nearest_frame_of_the_other_band_within_the_gap():
    bands = np.array(["B", "V", "V", "B", "R", "V"])
    jd = np.array([0.0, 0.010, 0.030, 0.032, 0.05, 0.50])
    assert pair_frames(bands, jd, "B", "V", anchor="B", max_gap=0.1).tolist() == \
        [1, -1, -1, 2, -1, -1]
    assert pair_frames(bands, jd, "B", "V", anchor="V", max_gap=0.1).tolist() == \
        [-1, 0, 3, -1, -1, -1]   # the V frame at 0.50 has no B frame within 0.1 d


def test_transform_config():
    cfg = config_from_dict({})
    assert cfg.transform.coefficients == {}
    cfg = config_from_dict({"transform": {"Tv_bv": -0.06, "Tbv": 1, "Tv_bv_sigma": 0.007}})
    assert cfg.transform.coefficients == {"Tv_bv": -0.06, "Tbv": 1.0}
    assert cfg.transform.errors == {"Tv_bv": 0.007}
    with pytest.raises(ConfigError, match="unknown key 'Tv_b'"):
        config_from_dict({"transform": {"Tv_b": 0.1}})
    with pytest.raises(ConfigError, match="transform.Tbv"):
        config_from_dict({"transform": {"Tbv": "one"}})


def test_simulated_colour_terms_change_the_instrumental_fluxes_as_specified():
    from clinepipe.simulate import SimulationSpec, Simulator

    base = dict(width=64, height=64, n_stars=30, variables=False, filters=("B", "V", "R"))
    plain = Simulator(SimulationSpec(**base), seed=4)
    tinted = Simulator(SimulationSpec(**base, colour_terms=TERMS), seed=4)
    st = plain.stars
    colour = {"B": st["B"] - st["V"], "V": st["B"] - st["V"], "R": st["V"] - st["R"]}
    for plan_a, plan_b in zip(plain.light_plans(0)[:3], tinted.light_plans(0)[:3]):
        a = plain.render_light(plan_a, noise=False).truth
        b = tinted.render_light(plan_b, noise=False).truth
        f = plan_a.filter
        np.testing.assert_allclose(np.asarray(a["mag"]), np.asarray(b["mag"]))  # standard
        dm = -2.5 * np.log10(np.asarray(b["flux_adu"]) / np.asarray(a["flux_adu"]))
        np.testing.assert_allclose(dm, -TERMS[f] * np.asarray(colour[f]), atol=1e-9)
    with pytest.raises(ValueError, match="colour_terms"):
        SimulationSpec(**base, colour_terms={"V": "large"}).check()


# ----------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def obs(tmp_path_factory):
    """Two nights of one field in B, V, R: night 1 run and fitted (`clinepipe transform`), the
    coefficients put in [transform], night 2 run with them."""
    from clinepipe.simulate import simulate_night

    out = tmp_path_factory.mktemp("transform")
    sim = simulate_night(out, seed=21, nights=2, width=320, height=320, n_stars=300,
                         lights_per_filter=10, filters=("B", "V", "R"), colour_terms=TERMS)
    text = sim.config_path.read_text(encoding="utf-8")  # its own [aavso] (no obscode) replaced
    start = text.index("\n[aavso]\n")
    end = text.find("\n[", start + 1)
    sim.config_path.write_text(text[:start] + (text[end:] if end >= 0 else "") + AAVSO_TOML,
                               encoding="utf-8")
    held = out / "held"
    shutil.move(str(sim.incoming / NIGHTS[1]), str(held))
    cfg = load_config(sim.config_path)
    run_pipeline(cfg)
    plots = out / "plots"
    fit = CliRunner().invoke(_cli_app(), ["--config", str(sim.config_path), "transform",
                                          "--night", NIGHTS[0], "--output", str(plots)])
    assert fit.exit_code == 0, fit.output
    section = fit.output[fit.output.index("[transform]"):]
    section = section[:section.index("\n\n")] if "\n\n" in section else section
    with sim.config_path.open("a", encoding="utf-8") as fh:
        fh.write("\n" + section.strip() + "\n")
    shutil.move(str(held), str(sim.incoming / NIGHTS[1]))
    cfg = load_config(sim.config_path)
    run_pipeline(cfg)
    engine = open_database(cfg.database.url)
    return {"sim": sim, "cfg": cfg, "engine": engine, "fit_output": fit.output, "plots": plots}


def _cli_app():
    from clinepipe.cli import app

    return app


def _printed(output: str) -> dict[str, tuple[float, float]]:
    """{name: (value, error)} from the table ``clinepipe transform`` prints."""
    found = re.findall(r"^\s+(T\w+)\s+=\s+([+-][\d.]+) ± ([\d.]+)", output, re.M)
    return {n: (float(v), float(e)) for n, v, e in found}


def test_fitted_coefficients_agree_with_the_simulated_instrument(obs):
    printed = _printed(obs["fit_output"])
    cfg = obs["cfg"]
    # the printed [transform] lines are what the config now holds
    for name, (value, _) in printed.items():
        assert getattr(cfg.transform, name) == pytest.approx(value, abs=1e-4)
    # Tvr: V-R against v-r over the field's catalog stars, from their true colours (V enters
    # v through B-V, so the slope is the regression of the true values)
    st = obs["sim"].stars
    vr = np.asarray(st["V"] - st["R"])
    bv = np.asarray(st["B"] - st["V"])
    inst_vr = vr - TERMS["V"] * bv + TERMS["R"] * vr
    true_tvr = np.polyfit(inst_vr, vr, 1)[0]
    truth = {"Tb_bv": TERMS["B"], "Tv_bv": TERMS["V"], "Tr_vr": TERMS["R"], "Tbv": TRUE_TBV,
             "Tvr": true_tvr}
    for name, value in truth.items():
        got, err = printed[name]
        assert err < 0.04, (name, err)                       # a standard field constrains it
        assert abs(got - value) < 3 * err, (name, got, value, err)
    assert (obs["plots"] / f"transform_{NIGHTS[0]}.png").stat().st_size > 10_000


def _night2_measurements(obs):
    """Night 2's transformed measurements with the truth of their star at their time."""
    sim, engine = obs["sim"], obs["engine"]
    with session_scope(engine) as s:
        rows = s.execute(
            select(Frame.raw_path, Frame.filter, Measurement.x, Measurement.y, Measurement.mag,
                   Measurement.mag_err, TransformedMag.mag, TransformedMag.mag_err)
            .join(Measurement, Measurement.frame_id == Frame.id)
            .join(TransformedMag, TransformedMag.measurement_id == Measurement.id)
            .where(Frame.night == NIGHTS[1])).all()
    stars = sim.stars
    out = []
    for raw_path in sorted({r[0] for r in rows}):
        truth = sim.light_truth(Path(raw_path).stem)
        tx, ty = np.asarray(truth["x"], float), np.asarray(truth["y"], float)
        for r in (r for r in rows if r[0] == raw_path):
            d = np.hypot(tx - r[2], ty - r[3])
            k = int(np.argmin(d))
            if d[k] < 1.0:
                sid = int(truth["id"][k])
                colour = (stars["V"][sid] - stars["R"][sid] if r[1] == "R"
                          else stars["B"][sid] - stars["V"][sid])
                out.append((r[1], float(truth["mag"][k]), r[4], r[5], r[6], r[7],
                            float(colour)))
    return out


def test_transformed_magnitudes_agree_with_the_truth_at_every_colour(obs):
    """Night 2, transformed with the coefficients of night 1: the pulls against the truth are
    as honest as the pipeline's own errors (untransformed, once the colour trend is taken
    out), at every colour; the colour trend is gone within the coefficients' own errors, while
    the untransformed magnitudes carry -T per magnitude of colour."""
    rows = _night2_measurements(obs)
    assert len(rows) > 1000
    sigma_t = {"B": obs["cfg"].transform.Tb_bv_sigma, "V": obs["cfg"].transform.Tv_bv_sigma,
               "R": obs["cfg"].transform.Tr_vr_sigma}
    for band in "BVR":
        sel = [r for r in rows if r[0] == band]
        true, mag, mag_err, tmag, terr, colour = (np.array([r[i] for r in sel], float)
                                                  for i in range(1, 7))
        assert np.ptp(colour) > (0.6 if band == "R" else 1.2)    # stars of every colour
        pull = (tmag - true) / terr
        robust = 1.4826 * np.median(np.abs(pull - np.median(pull)))
        assert abs(np.median(pull)) < 0.5 and 0.8 < robust < 1.3, (band, robust)
        raw_trend = np.polyval(np.polyfit(colour, mag - true, 1), colour)
        raw_pull = (mag - true - raw_trend) / mag_err
        assert np.std(pull) < 1.1 * np.std(raw_pull) + 0.05, (band, np.std(pull))
        thirds = np.digitize(colour, np.quantile(colour, [1 / 3, 2 / 3]))
        for k in range(3):
            assert abs(np.median(pull[thirds == k])) < 0.6, (band, k)
        slope, cov = np.polyfit(colour, tmag - true, 1, w=1.0 / terr, cov="unscaled")
        allowed = 3 * np.hypot(np.sqrt(cov[0, 0]), sigma_t[band])
        assert abs(slope[0]) < allowed, (band, slope[0], allowed)
        raw_slope = np.polyfit(colour, mag - true, 1, w=1.0 / mag_err)[0]
        assert abs(raw_slope + TERMS[band]) < 0.015, (band, raw_slope)
        assert abs(raw_slope) > allowed, (band, raw_slope, allowed)


def test_aavso_file_says_trans_yes_with_the_coefficients(obs):
    cfg = obs["cfg"]
    text = (cfg.paths.archive / "aavso" / NIGHTS[1] / "V0001_Sim.txt").read_text()
    assert validate_extended(text) == []
    lines = [ln.split(",") for ln in text.splitlines() if not ln.startswith("#")]
    assert lines and all(f[5] == "YES" for f in lines)
    assert {f[4] for f in lines} == {"B", "V", "R"}
    tv, tbv = cfg.transform.Tv_bv, cfg.transform.Tbv
    v_notes = [f[14] for f in lines if f[4] == "V"]
    assert all(f"TRANS: Tv_bv={tv:.3f} Tbv={tbv:.3f}" in n for n in v_notes)
    # night 1 was written before [transform] existed: untransformed, and still valid
    old = (cfg.paths.archive / "aavso" / NIGHTS[0] / "V0001_Sim.txt").read_text()
    assert validate_extended(old) == []
    assert {ln.split(",")[5] for ln in old.splitlines() if not ln.startswith("#")} == {"NO"}


def test_transform_command_says_what_is_wrong_in_one_sentence(obs, capsys):
    from clinepipe.cli import main

    config = str(obs["sim"].config_path)
    for night, code, words in (("2026-03-14", 2, "is not a night YYYYMMDD"),
                               ("20991231", 1, "no catalog-calibrated lights")):
        with pytest.raises(SystemExit) as exit_:
            main(["--config", config, "transform", "--night", night])
        err = capsys.readouterr().err
        assert exit_.value.code == code and words in err and err.count("\n") == 1, err
