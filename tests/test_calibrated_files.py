"""What a calibrated light costs on disk (issue 19, item 21): ``[archive] keep_calibrated``.

The default ("image") keeps the image losslessly tile-compressed with its mask, at most 1.5x
the raw file; the uncertainty plane is recomputed from the image, the masters and the noise
model; the run's measurements are the same as with "all"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select

from clinepipe.ccd.reduced_files import read_calibrated, read_reduced, write_reduced
from clinepipe.config import ArchiveConfig, load_config
from clinepipe.errors import BadInput
from clinepipe.run.pipeline import run_pipeline
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame, Measurement


def _run(root: Path, keep: str):
    from clinepipe.simulate import simulate_night

    # the camera's full 1117x844 frame: on small frames the FITS headers weigh more
    sim = simulate_night(root, seed=11, width=1117, height=844, lights_per_filter=3)
    with sim.config_path.open("a", encoding="utf-8") as f:
        f.write(f'\n[archive]\nkeep_calibrated = "{keep}"\n')
    cfg = load_config(sim.config_path)
    assert cfg.archive == ArchiveConfig(keep_calibrated=keep)
    run_pipeline(cfg)
    engine = open_database(cfg.database.url)
    with session_scope(engine) as s:
        frames = s.execute(select(Frame.raw_path, Frame.calibrated_path, Frame.state)
                           .where(Frame.kind == "light").order_by(Frame.raw_path)).all()
        rows = s.execute(select(Frame.raw_path, Measurement.x, Measurement.y, Measurement.flux,
                                Measurement.flux_err, Measurement.flags, Measurement.mag)
                         .join(Frame, Frame.id == Measurement.frame_id)
                         .order_by(Frame.raw_path, Measurement.x, Measurement.y)).all()
    engine.dispose()
    return {"cfg": cfg, "frames": frames, "rows": rows}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return {keep: _run(tmp_path_factory.mktemp(f"keep_{keep}"), keep)
            for keep in ("image", "all", "none")}


def _files(run):
    archive = run["cfg"].paths.archive
    return [(archive / raw_dir(run, raw), archive / cal) for raw, cal, state in run["frames"]
            if cal]


def raw_dir(run, raw_path):
    """The archive copy of a raw light (its path relative to the archive)."""
    archive = run["cfg"].paths.archive
    name = Path(raw_path).name
    return next(p for p in (archive / "raw").rglob(name)).relative_to(archive)


def test_same_measurements_with_image_as_with_all(runs):
    image, full = runs["image"]["rows"], runs["all"]["rows"]
    assert len(image) > 500 and len(image) == len(full)
    assert image == full  # every row, bit for bit (same frames, same numbers)


def test_default_is_image_and_costs_at_most_1_5x_the_raw_file(runs):
    assert ArchiveConfig().keep_calibrated == "image"
    ratios = [cal.stat().st_size / raw.stat().st_size for raw, cal in _files(runs["image"])]
    assert len(ratios) == 6
    assert max(ratios) <= 1.5, ratios
    full = [cal.stat().st_size / raw.stat().st_size for raw, cal in _files(runs["all"])]
    assert min(full) > 4.0  # float32 image + uncertainty + mask, uncompressed


def test_image_is_lossless_and_uncertainty_recomputed(runs):
    archive_i = runs["image"]["cfg"].paths.archive
    for (_, cal_i), (_, cal_a) in zip(_files(runs["image"]), _files(runs["all"])):
        with fits.open(cal_i) as h:
            assert "UNCERT" not in [x.name for x in h]
            h.verify("exception")
        stored = read_reduced(cal_a)
        got = read_calibrated(cal_i, archive_i)
        np.testing.assert_array_equal(got.data, stored.data)  # lossless: bit-identical floats
        np.testing.assert_array_equal(got.mask, stored.mask)
        np.testing.assert_array_equal(got.uncertainty, stored.uncertainty)  # bit for bit
        assert got.header["CALSTAT"] == stored.header["CALSTAT"] == "BDF"
        assert got.header.get("CRPIX1") == stored.header.get("CRPIX1")


def test_without_its_masters_the_uncertainty_cannot_be_recomputed(runs, tmp_path):
    _, cal = _files(runs["image"])[0]
    with pytest.raises(BadInput) as err:
        read_reduced(cal, masters_dir=tmp_path)
    assert err.value.reason == "master not found" and cal.name in err.value.message


def test_keep_none_writes_nothing(runs, tmp_path):
    _, cal = _files(runs["all"])[0]
    frame = read_reduced(cal)
    write_reduced(tmp_path / "x.fits", frame, keep="none")
    assert not (tmp_path / "x.fits").exists()
    with pytest.raises(ValueError):
        write_reduced(tmp_path / "x.fits", frame, keep="some")


def _cli(capsys, *args):
    from clinepipe.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_.value.code or 0, out.out + out.err


def test_keep_none_stores_no_file_and_no_path_and_measures_the_same(runs):
    none, full = runs["none"], runs["all"]
    assert len(none["frames"]) == len(full["frames"]) >= 6
    assert {(state, cal) for _, cal, state in none["frames"]} == {("calibrated", None)}
    archive = none["cfg"].paths.archive
    assert not [p for p in archive.rglob("*.fits*") if "calibrated" in p.name]
    assert none["rows"] == full["rows"]  # measured in memory: the same numbers


def test_keep_none_readers_say_the_frame_was_not_kept(runs, capsys):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from clinepipe.web import create_app

    cfg = runs["none"]["cfg"]
    engine = open_database(cfg.database.url)
    with session_scope(engine) as s:
        star_id, frame_id = s.execute(select(Measurement.star_id, Measurement.frame_id)
                                      .where(Measurement.mag.is_not(None)).limit(1)).one()
    engine.dispose()
    # the transit fit re-measures calibrated frames: one sentence, exit 1
    code, out = _cli(capsys, "--config", cfg.source_file, "transit", str(star_id), "--period",
                     "1.0", "--t0", "2461114.5", "--output", cfg.paths.archive.parent / "t")
    assert code == 1 and "were not kept ([archive] keep_calibrated = \"none\")" in out
    assert "Traceback" not in out
    # the web's frame page says so, its cut-out is a 404 (not a 500)
    client = TestClient(create_app(cfg))
    page = client.get(f"/stars/{star_id}/frames/{frame_id}")
    assert page.status_code == 200 and "was not kept" in page.text
    assert client.get(f"/stars/{star_id}/frames/{frame_id}/cutout.png").status_code == 404


def test_image_keeps_every_float32_bit_pattern_and_the_mask(tmp_path):
    """The compressed image (byte planes of each 256-row tile, two entropy-coded, two stored)
    reads back bit for bit whatever the values (NaN with its payload, infinities, -0,
    subnormals) and shape (a last tile of 5 rows, an odd width); the mask (run-length coded)
    too, bits and runs alike."""
    from clinepipe.ccd.reduced_files import ReducedFrame

    rng = np.random.default_rng(4)
    data = rng.normal(900.0, 30.0, (517, 301)).astype(np.float32)
    bits = data.view(np.uint32)
    bits[0, :4] = (0x7FC00001, 0xFFC12345, 0x7F800000, 0xFF800000)  # NaNs, +-inf
    bits[1, :3] = (0x80000000, 0x00000001, 0x807FFFFF)  # -0, subnormals
    mask = np.zeros(data.shape, np.uint8)
    mask[rng.random(data.shape) < 0.01] = 4
    mask[100:300, 50:60] = 1
    header = fits.Header({"BUNIT": "ADU", "CLPGAIN": 0.4})
    out = tmp_path / "frame.fits"
    write_reduced(out, ReducedFrame(data, np.ones_like(data), mask, header), keep="image")
    with fits.open(out) as h:
        h.verify("exception")
        np.testing.assert_array_equal(np.asarray(h["IMAGE"].data).view(np.uint32), bits)
        np.testing.assert_array_equal(h["MASK"].data, mask)
