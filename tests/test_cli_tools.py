"""The standalone commands: `clinepipe masters`, `reduce`, `measure` and `solve` (no database)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "clinepipe.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=180)


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    """A small simulated night, its masters and two reduced lights, made with the commands."""
    from clinepipe.simulate import simulate_night

    root = tmp_path_factory.mktemp("tools")
    sim = simulate_night(root / "sim", seed=9, width=256, height=256, n_stars=90,
                         lights_per_filter=2)
    masters = root / "masters"
    r = cli("masters", str(sim.incoming), "--output", str(masters), cwd=root)
    assert r.returncode == 0, r.stderr
    lights = sorted(sim.incoming.rglob("*light*.fit"))
    reduced = root / "reduced"
    r2 = cli("reduce", *map(str, lights[:2]), "--masters", str(masters), "--output", str(reduced),
             cwd=root)
    assert r2.returncode == 0, r2.stderr
    return {"root": root, "sim": sim, "masters": masters, "lights": lights, "reduced": reduced,
            "masters_out": r.stdout, "reduce_out": r2.stdout}


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_masters_command_writes_the_interface_layout(tools):
    m = tools["masters"] / "binning3"
    names = sorted(p.name for p in m.iterdir())
    assert names == ["bias_master.fits", "dark_master.fits", "flat_master_R.fits",
                     "flat_master_V.fits"]
    assert fits.getheader(m / "bias_master.fits")["IMAGETYP"] == "Master Bias"
    assert "light frame(s) ignored" in tools["masters_out"]


def test_reduce_command_names_masters(tools):
    out = sorted(tools["reduced"].glob("*_calibrated.fits"))
    assert [p.name for p in out] == [f"{p.stem}_calibrated.fits" for p in tools["lights"][:2]]
    h = fits.getheader(out[0])
    assert h["CALSTAT"] == "BDF" and h["BIASFILE"] == "bias_master.fits"
    assert h["FLATFILE"].startswith("flat_master_")


def test_measure_with_catalog_prints_zero_point(tools, tmp_path):
    image = sorted(tools["reduced"].glob("*_V_calibrated.fits"))[0]
    out = tmp_path / "m.csv"
    r = cli("measure", str(image), "--catalog", str(tools["sim"].catalog_path), "--filter", "V",
            "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert "zero point" in r.stdout
    rows = read_csv(out)
    assert len(rows) > 20
    cols = ["x", "y", "ra", "dec", "flux", "flux_err", "background", "inst_mag", "inst_mag_err",
            "fwhm", "flags", "catalog_id", "mag", "mag_err"]
    assert list(rows[0])[:len(cols)] == cols
    calibrated = [r for r in rows if r["mag"] and r["catalog_id"] and r["flags"] == "0"]
    assert len(calibrated) >= 5
    # 1-based pixels: every position lies within 1..256
    xs = np.array([float(r["x"]) for r in rows])
    assert xs.min() >= 1.0 and xs.max() <= 256.0


def test_measure_bare_image_says_what_is_missing(tools, tmp_path):
    data, header = fits.getdata(tools["reduced"].glob("*_calibrated.fits").__next__(), header=True)
    bare = tmp_path / "bare.fits"
    fits.PrimaryHDU(data.astype(np.float32)).writeto(bare)  # no WCS, EXPTIME or gain
    out = tmp_path / "bare.csv"
    r = cli("measure", str(bare), "--output", str(out), "--aperture", "4", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no EXPTIME" in r.stderr and "gain 0.4" in r.stderr and "WCS" in r.stderr
    rows = read_csv(out)
    assert rows and rows[0]["ra"] == "" and rows[0]["dec"] == "" and rows[0]["inst_mag"] != ""


def test_standalone_errors_are_one_sentence(tools, tmp_path):
    r = cli("measure", str(tmp_path / "nope.fits"), "--output", str(tmp_path / "x.csv"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "nope.fits" in r.stderr
    r = cli("reduce", str(tools["lights"][0]), "--masters", str(tmp_path / "none"),
            "--output", str(tmp_path / "o"))
    assert r.returncode == 2 and "none" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bias.fits"
    bad.write_text("not FITS at all")
    r = cli("masters", str(bad), "--output", str(tmp_path / "m"))
    assert r.returncode == 1 and "Traceback" not in r.stderr and "not FITS" in r.stderr
    r = cli("masters", str(tools["sim"].incoming), "--output", str(tmp_path / "m"), "--mode", "x")
    assert r.returncode == 2 and "--mode" in r.stderr


def test_solve_without_solver_is_one_sentence(tools, tmp_path):
    image = sorted(tools["reduced"].glob("*_calibrated.fits"))[0]
    env_path = str(tmp_path)  # a PATH without solve-field
    r = subprocess.run([sys.executable, "-m", "clinepipe.cli", "solve", str(image), "--output",
                        str(tmp_path / "s.fits")], capture_output=True, text=True, timeout=120,
                       env={"PATH": env_path, "HOME": str(tmp_path)})
    assert r.returncode == 1, r.stderr
    assert "solve-field" in r.stderr and r.stderr.strip().count("\n") == 0
