"""Plate solving small fields with astrometry.net index files built from the reference catalog.

The simulated lights have this observatory's geometry (1117 x 844 binned px at 0.99"/px,
18.4 x 13.9 arcmin): too small for the Tycho-2 index, solved here with an index built from
the simulation's own ``catalog.csv``. Every check is against the simulator's truth (true
star positions and the true WCS), never against the solver's own report.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select

from clinepipe.astrometry import catalog_index
from clinepipe.astrometry.catalog_index import (
    catalog_cone,
    ensure_index,
    index_for_image,
    quad_presets,
    solve_with_catalog,
)
from clinepipe.astrometry.wcs import header_wcs, pixel_scale_arcsec, sky_to_pixel
from clinepipe.config import load_config
from clinepipe.errors import BadInput
from clinepipe.simulate import render_light, simulate_night

WCS_PREFIXES = ("CTYPE", "CRPIX", "CRVAL", "CD1_", "CD2_", "CDELT", "PC1_", "PC2_", "RADECSYS",
                "EQUINOX")
_MISSING = [name for name in ("solve-field", "build-astrometry-index") if shutil.which(name) is None]
needs_solver = [
    pytest.mark.solver,
    pytest.mark.skipif(bool(_MISSING), reason=f"astrometry.net {' and '.join(_MISSING)} not "
                       "installed (`make system-deps` installs the Debian package astrometry.net)"),
]
needs_builder = pytest.mark.skipif(
    shutil.which("build-astrometry-index") is None,
    reason="astrometry.net build-astrometry-index is not installed (`make system-deps`)")

#: this observatory's frames at 3x3 binning (the simulator's defaults), shrunk in time only
OBSERVATORY = dict(filters=("V",), lights_per_filter=2, n_bias=3, n_dark=3, n_flat=3)


@pytest.fixture(scope="module")
def observatory_night(tmp_path_factory):
    """One simulated night of full-size (1117 x 844 px, ~18 arcmin) lights."""
    return simulate_night(tmp_path_factory.mktemp("observatory_night"), seed=21, **OBSERVATORY)


def strip_wcs(src, dest) -> fits.Header:
    """Copy a FITS frame without its WCS keywords (the mount's OBJCTRA/OBJCTDEC stay)."""
    with fits.open(src) as hdus:
        header = hdus[0].header.copy()
        data = hdus[0].data
        for key in [k for k in header if k.startswith(WCS_PREFIXES)]:
            del header[key]
        fits.writeto(dest, data, header, overwrite=True)
    assert header_wcs(fits.getheader(dest)) is None and "OBJCTRA" in header
    return header


def truth_rms_arcsec(sim, light, wcs) -> tuple[float, int]:
    """RMS (arcsec) between the true pixel positions of the light's stars and the pixels
    the solved ``wcs`` puts their true sky positions on."""
    truth = sim.light_truth(light)
    inside = np.asarray(truth["in_frame"]) == 1
    ids = np.asarray(truth["id"])[inside]
    stars = {int(i): k for k, i in enumerate(sim.stars["id"])}
    rows = np.array([stars[int(i)] for i in ids])
    x, y = sky_to_pixel(wcs, np.asarray(sim.stars["ra"])[rows], np.asarray(sim.stars["dec"])[rows])
    dx = x - (np.asarray(truth["x"])[inside] - 1.0)  # truth files are 1-based
    dy = y - (np.asarray(truth["y"])[inside] - 1.0)
    return float(np.sqrt(np.mean(dx * dx + dy * dy)) * pixel_scale_arcsec(wcs)), int(rows.size)


def config_for(sim, **astrometry):
    cfg = load_config(sim.config_path)
    return dataclasses.replace(cfg, astrometry=dataclasses.replace(cfg.astrometry, **astrometry))


# ---------------------------------------------------------------------------------------
# no solver needed
# ---------------------------------------------------------------------------------------

def test_quad_presets_cover_ten_to_sixty_percent_of_the_field():
    diagonal = 23.1  # arcmin: 1117 x 844 px at 0.99"/px
    presets = quad_presets(diagonal)
    assert presets == (0, 1, 2, 3, 4, 5)
    assert quad_presets(None) == tuple(range(7))
    wide = quad_presets(120.0)  # a 2-degree field gets larger quads only
    assert min(wide) >= 4 and max(wide) <= 10
    assert catalog_index.index_radius(diagonal, 0.25) == pytest.approx(0.25 + diagonal / 120)


def test_catalog_cone_is_cut_and_sorted_bright_first():
    from clinepipe.catalogs.types import Catalog

    cat = Catalog("file", np.arange(4).astype(str), np.array([10.0, 10.1, 12.0, 10.05]),
                  np.array([20.0, 20.0, 20.0, 20.02]),
                  {"V": np.array([14.0, 12.0, 9.0, np.nan]), "B": np.array([1.0, np.nan, np.nan, 1])})
    ra, dec, mag, band = catalog_cone(cat, 10.05, 20.0, 0.2)
    assert band == "V" and list(ra) == [10.1, 10.0, 10.05] and mag[-1] == 99.0


@needs_builder
def test_index_is_built_once_and_concurrent_builders_share_it(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    stars = (rng.uniform(161.8, 162.2, 200), rng.uniform(29.8, 30.2, 200),
             np.sort(rng.uniform(9, 16, 200)))
    results = []

    def build():
        results.append(ensure_index(tmp_path / "idx", "file", stars, (162.0, 30.0), 0.3, (2, 3)))

    threads = [threading.Thread(target=build) for _ in range(3)]  # flock per open file
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.built for r in results) == [False, False, True]
    assert len({r.files for r in results}) == 1 and all(f.is_file() for f in results[0].files)
    assert not list((tmp_path / "idx").glob(".build-*"))  # no temporary directory left
    # the cache is used, not rebuilt: building now would fail the test
    monkeypatch.setattr(catalog_index, "_build", lambda *a, **k: pytest.fail("rebuilt"))
    again = ensure_index(tmp_path / "idx", "file", stars, (162.0, 30.0), 0.3, (2, 3))
    assert not again.built and again.files == results[0].files
    # other stars (an edited catalog) make another index
    monkeypatch.undo()
    edited = (stars[0], stars[1] + 1e-4, stars[2])
    assert ensure_index(tmp_path / "idx", "file", edited, (162.0, 30.0), 0.3, (2, 3)).built


# ---------------------------------------------------------------------------------------
# solve-field with the catalog index
# ---------------------------------------------------------------------------------------

def solver(test):
    """Mark ``solver`` and skip, saying what is missing, without astrometry.net."""
    for mark in needs_solver:
        test = mark(test)
    return test


@solver
def test_small_field_solves_with_an_index_built_from_the_catalog(observatory_night, tmp_path,
                                                                 monkeypatch):
    sim = observatory_night
    light = sim.lights()[0]
    raw = tmp_path / "nowcs.fits"
    strip_wcs(light, raw)
    cfg = config_for(sim, system_index=False)  # only the catalog index can solve it
    cfg = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, archive=tmp_path / "arch"))

    t0 = time.perf_counter()
    out = solve_with_catalog(cfg, raw, tmp_path / "solved.fits")
    first = time.perf_counter() - t0
    header = fits.getheader(out)
    rms, n = truth_rms_arcsec(sim, light, header_wcs(header))
    built = list((tmp_path / "arch" / "astrometry-index").glob("*/index-*.fits"))
    print(f"first solve {first:.2f} s (index built: {len(built)} files); "
          f"{header['ASTRMNUM']} matched; rms vs truth {rms:.3f} arcsec over {n} stars")
    assert rms < 0.5 and n > 100 and built

    # the second solve reuses the cached files: a rebuild would fail the test
    monkeypatch.setattr(catalog_index, "_build", lambda *a, **k: pytest.fail("index rebuilt"))
    t0 = time.perf_counter()
    out2 = solve_with_catalog(cfg, raw, tmp_path / "solved2.fits")
    second = time.perf_counter() - t0
    rms2, _ = truth_rms_arcsec(sim, light, header_wcs(fits.getheader(out2)))
    print(f"second solve {second:.2f} s (cached index); rms vs truth {rms2:.3f} arcsec")
    assert rms2 < 0.5 and second < 10.0


@solver
def test_the_cli_uses_the_catalog_index_of_its_configuration(observatory_night, tmp_path):
    from clinepipe.cli import main

    raw = tmp_path / "nowcs.fits"
    light = observatory_night.lights()[1]
    strip_wcs(light, raw)
    cfg_path = tmp_path / "clinepipe.toml"
    cfg_path.write_text(observatory_night.config_path.read_text()
                        .replace('catalog.csv', str(observatory_night.catalog_path))
                        + "\n[astrometry]\nsystem_index = false\ntimeout = 30\n")
    with pytest.raises(SystemExit) as info:
        main(["--config", str(cfg_path), "solve", str(raw), "--output", str(tmp_path / "s.fits")])
    assert info.value.code == 0
    rms, _ = truth_rms_arcsec(observatory_night, light, header_wcs(fits.getheader(tmp_path / "s.fits")))
    assert rms < 0.5
    assert list((tmp_path / "archive" / "astrometry-index").glob("*/manifest.json"))


@solver
def test_a_pointing_outside_the_catalog_fails_with_a_named_reason(observatory_night, tmp_path):
    raw = tmp_path / "elsewhere.fits"
    header = strip_wcs(observatory_night.lights()[0], raw)
    with fits.open(raw, mode="update") as hdus:  # the mount says: 5 degrees further north
        hdus[0].header["OBJCTDEC"] = "+35 00 00.00"
    cfg = config_for(observatory_night, system_index=False, timeout=20)
    cfg = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, archive=tmp_path / "arch"))
    index = index_for_image(cfg, raw)
    assert index.files == () and index.n_stars == 0 and "too few" in index.note
    with pytest.raises(BadInput) as info:
        solve_with_catalog(cfg, raw, tmp_path / "out.fits")
    assert info.value.reason == "field not in catalog", info.value.message
    assert "elsewhere.fits" in info.value.message and "catalog has only 0 star" in info.value.message
    assert not (tmp_path / "out.fits").exists() and header["OBJCTRA"]


@solver
def test_a_field_whose_stars_are_not_in_the_catalog_is_not_solved(observatory_night, tmp_path,
                                                                   monkeypatch):
    """Other stars at the catalog's position: the index is built, but nothing matches it, so
    the frame fails rather than getting a wrong solution."""
    import clinepipe.astrometry.solve as solve_module

    data, header, _ = render_light(seed=99, **OBSERVATORY)  # another sky, the same pointing
    for key in [k for k in header if k.startswith(WCS_PREFIXES)]:
        del header[key]
    raw = tmp_path / "strange.fits"
    fits.writeto(raw, data, header)
    # with the pixel scale known (an 18' field) the Tycho-2 fallback is not tried
    cfg = config_for(observatory_night, scale_low=0.9, scale_high=1.1, timeout=20)
    cfg = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, archive=tmp_path / "arch"))
    attempts = []
    real = solve_module.solve_field

    def spy(*args, **kwargs):
        attempts.append(kwargs.get("system_index"))
        return real(*args, **kwargs)

    monkeypatch.setattr(solve_module, "solve_field", spy)
    with pytest.raises(BadInput) as info:
        solve_with_catalog(cfg, raw, tmp_path / "out.fits")
    assert attempts == [False], attempts  # the catalog index only: no Tycho-2 fallback
    assert info.value.reason in ("plate solving failed", "plate solution rejected")
    assert "strange.fits" in info.value.message and not (tmp_path / "out.fits").exists()
    assert list((tmp_path / "arch" / "astrometry-index").glob("*/manifest.json"))


@solver
def test_pipeline_calibrates_lights_without_wcs_with_the_catalog_index(observatory_night,
                                                                       tmp_path):
    from clinepipe.run.pipeline import run_pipeline
    from clinepipe.store.db import open_database, session_scope
    from clinepipe.store.models import Frame, Measurement

    sim = observatory_night
    out = tmp_path / "night"
    for name in ("incoming",):
        shutil.copytree(sim.out_dir / name, out / name)
    for name in ("catalog.csv", "vsx.csv", "clinepipe.toml"):
        shutil.copy2(sim.out_dir / name, out / name)
    lights = sorted((out / "incoming").rglob("*_light_*.fit"))
    for light in lights:
        strip_wcs(light, light)
    lights[0].with_suffix(".SRC").unlink()  # one light with our own detection
    cfg_path = out / "clinepipe.toml"
    cfg_path.write_text(cfg_path.read_text() + "\n[astrometry]\nsolve = true\ntimeout = 30\n")
    cfg = load_config(cfg_path)
    t0 = time.perf_counter()
    run_pipeline(cfg)
    print(f"pipeline run with {len(lights)} plate-solved lights: {time.perf_counter() - t0:.1f} s")
    with session_scope(open_database(cfg.database.url)) as s:
        frames = s.execute(select(Frame.id, Frame.raw_path, Frame.state, Frame.reason)
                           .where(Frame.kind == "light")).all()
        assert {f.state for f in frames} == {"calibrated"}, frames
        for frame in frames:
            rows = s.execute(select(Measurement.x, Measurement.y, Measurement.ra, Measurement.dec)
                             .where(Measurement.frame_id == frame.id)).all()
            m = np.array([tuple(r) for r in rows], dtype=float)
            truth = sim.light_truth(frame.raw_path)
            bright = (np.asarray(truth["in_frame"]) == 1) & (np.asarray(truth["mag"]) < 15.0)
            tx, ty = np.asarray(truth["x"])[bright], np.asarray(truth["y"])[bright]
            tid = np.asarray(truth["id"])[bright]
            d = np.hypot(m[:, 0][:, None] - tx[None, :], m[:, 1][:, None] - ty[None, :])
            j = d.argmin(axis=1)
            near = d[np.arange(len(m)), j] < 1.0
            star_row = {int(i): k for k, i in enumerate(sim.stars["id"])}
            rows_t = np.array([star_row[int(i)] for i in tid[j[near]]])
            ra_t = np.asarray(sim.stars["ra"])[rows_t]
            dec_t = np.asarray(sim.stars["dec"])[rows_t]
            dra = (m[near, 2] - ra_t) * np.cos(np.radians(dec_t)) * 3600
            ddec = (m[near, 3] - dec_t) * 3600
            rms = float(np.sqrt(np.mean(dra ** 2 + ddec ** 2)))
            print(f"{frame.raw_path}: {near.sum()} bright stars, RA/Dec rms vs truth {rms:.3f}\"")
            assert near.sum() >= 10 and rms < 0.5
