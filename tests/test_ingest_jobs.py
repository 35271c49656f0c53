"""Ingest's per-file work on the run's workers (:mod:`clinepipe.run.ingest_jobs`).

The workers read, hash, classify and stage each new file; the run's process decides in the
files' order (duplicates, archive names) and renames the staging files into place. A batch of
simulated frames with the awkward cases (the same bytes twice, one name for two different
files, a truncated file, a text file named ``.fits``, a focus frame, ``.SRC`` lists) is
ingested by the local pool and by a serial run (threads): the same ``frames`` rows and
byte-identical archives, each copy the very bytes of its incoming file. Staging files a killed
run left behind are removed and never become frames; a run killed while files are staged ends,
after a restart, as the uninterrupted serial run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from astropy.io import fits
from run_snapshots import assert_same_snapshot, copy_night, pipeline_snapshot
from small_disk import small_tmpfs
from sqlalchemy import select

from clinepipe.config import load_config
from clinepipe.run import ingest_jobs, ingest_step
from clinepipe.run.ingest_jobs import (
    BATCH_FILES,
    BATCH_TASKS,
    ThreadMapper,
    ingest_batches,
    staging_folder,
)
from clinepipe.run.ingest_step import ingest_stage
from clinepipe.run.local_pool import LocalPool
from clinepipe.run.pipeline import run_pipeline
from clinepipe.simulate import write_raw_frame
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame, Run
from clinepipe.store.models import utc_now as _now

CLI = [sys.executable, "-m", "clinepipe.cli"]

#: columns that say when or by which run a row was written, not what the file is
_RUN_COLUMNS = {"id", "run_id", "created_at", "updated_at"}


def _add_awkward_files(incoming: Path, night: str) -> dict:
    """Write the awkward cases into ``incoming/<night>/``; returns ``{raw_path: expected}``
    with ``expected`` a (state, reason) pair, reason an exact text (None: a good frame)."""
    lights = sorted((incoming / night / "lights").glob("*.fit"))
    bias = min((incoming / night / "calibration").glob("*_bias_*.fit"))
    extra = incoming / night / "zz_extra"  # sorts after calibration/ and lights/
    extra.mkdir()
    expected = {}
    # the same bytes as a bias, in the same batch: a duplicate of the first one
    shutil.copy2(bias, extra / "bias_copy.fit")
    expected[f"{night}/zz_extra/bias_copy.fit"] = (
        "duplicate", f"duplicate of {bias.relative_to(incoming).as_posix()}")
    # the name of a light of the night, other bytes: archived as <stem>_<sha8>.fit, with its .SRC
    with fits.open(lights[0]) as hdul:
        data, header = hdul[0].data.copy(), hdul[0].header.copy()
    header["HISTORY"] = "the same name as another light, other bytes"
    write_raw_frame(extra / lights[0].name, data, header)
    shutil.copy2(lights[0].with_suffix(".SRC"), (extra / lights[0].name).with_suffix(".SRC"))
    expected[f"{night}/zz_extra/{lights[0].name}"] = ("ingested", None)
    # and its copy, next to it (in the same batch, or the next, before their rows are committed)
    copy = extra / f"{lights[0].stem}_copy.fit"
    shutil.copy2(extra / lights[0].name, copy)
    expected[f"{night}/zz_extra/{copy.name}"] = (
        "duplicate", f"duplicate of {night}/zz_extra/{lights[0].name}")
    focus = header.copy()
    focus["IMAGETYP"] = "Focus"
    write_raw_frame(extra / "focus.fit", data, focus)
    expected[f"{night}/zz_extra/focus.fit"] = ("skipped", "frame type 'Focus' skipped")
    (extra / "truncated.fit").write_bytes(lights[1].read_bytes()[: 2 * 2880 + 1000])
    expected[f"{night}/zz_extra/truncated.fit"] = ("failed", "truncated FITS")
    (extra / "observing_log.fits").write_text("clear skies, dome opened at 19:40\n")
    expected[f"{night}/zz_extra/observing_log.fits"] = ("failed", "not FITS")
    return expected


@pytest.fixture(scope="module")
def awkward_night(small_night, tmp_path_factory):
    """The small night's inputs plus the awkward files: (folder, expected outcomes)."""
    src = tmp_path_factory.mktemp("awkward_night")
    cfg_path = copy_night(small_night, src)
    expected = _add_awkward_files(cfg_path.parent / "incoming", small_night.nights[0])
    return src, expected


def _ingest(src: Path | None, dest: Path, pool) -> tuple[object, dict]:
    """Ingest a copy of ``src`` in ``dest`` (None: ``dest`` again, as the next run) with
    ``pool``; (config, {raw_path: row as a dict})."""
    if src is not None:
        shutil.copytree(src, dest, symlinks=True)
    cfg = load_config(dest / "clinepipe.toml")
    engine = open_database(cfg.database.url)
    try:
        with session_scope(engine) as s:
            run = Run(started_at=_now(), software_version="test", telescope="",
                      config_text="", config_sha256="", host="test", pid=0, status="running")
            s.add(run)
            s.flush()
            run_id = run.id
        ingest_stage(cfg, engine, run_id, settle_seconds=0.0, pool=pool)
        with session_scope(engine) as s:
            rows = {f.raw_path: {c.key: getattr(f, c.key) for c in Frame.__table__.columns
                                 if c.key not in _RUN_COLUMNS}
                    for f in s.scalars(select(Frame))}
    finally:
        engine.dispose()
    return cfg, rows


def _tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ingested(awkward_night, tmp_path_factory):
    """The awkward night ingested serially (threads) and on a local pool of 2 workers."""
    src, expected = awkward_night
    out = tmp_path_factory.mktemp("ingested")
    serial = _ingest(src, out / "serial", None)
    with LocalPool(2) as pool:
        pool.start()
        local = _ingest(src, out / "local", pool)
    return {"expected": expected, "serial": serial, "local": local}


def test_local_pool_ingest_equals_serial_ingest(ingested):
    (cfg_s, rows_s), (cfg_l, rows_l) = ingested["serial"], ingested["local"]
    assert rows_l == rows_s
    assert _tree(cfg_l.paths.archive) == _tree(cfg_s.paths.archive)
    assert not staging_folder(cfg_l.paths.archive).exists()


@pytest.mark.parametrize("which", ["serial", "local"])
def test_each_file_has_its_outcome_and_its_own_bytes(ingested, which):
    cfg, rows = ingested[which]
    incoming, archive = cfg.paths.incoming, cfg.paths.archive
    files = sorted(p.relative_to(incoming).as_posix() for p in incoming.rglob("*")
                   if p.suffix.lower() in (".fit", ".fits"))
    assert sorted(rows) == files  # every incoming file is one row, nothing else is
    for rel, (state, reason) in ingested["expected"].items():
        assert (rows[rel]["state"], rows[rel]["reason"]) == (state, reason), rel
    copies = {}
    for rel, row in rows.items():
        raw = (incoming / rel).read_bytes()
        assert (row["sha256"], row["size"]) == (hashlib.sha256(raw).hexdigest(), len(raw)), rel
        if row["state"] != "ingested":
            assert row["archive_path"] is None, rel
            continue
        copy = archive / row["archive_path"]
        assert copy.read_bytes() == raw, rel  # the copy is exactly the incoming file
        assert copy.stat().st_mtime_ns == (incoming / rel).stat().st_mtime_ns, rel
        src_list = (incoming / rel).with_suffix(".SRC")
        if src_list.exists():
            assert copy.with_suffix(".SRC").read_bytes() == src_list.read_bytes(), rel
        copies[rel] = row["archive_path"]
    assert len(set(copies.values())) == len(copies)  # no copy is shared
    # two lights of one name and night: the second is kept under <stem>_<sha8>
    (other,) = [rel for rel in ingested["expected"] if ingested["expected"][rel][0] == "ingested"]
    name = Path(other).name
    first = next(rel for rel in rows if rel.endswith(f"/lights/{name}"))
    assert Path(copies[first]).name == name
    assert Path(copies[other]).name == f"{Path(name).stem}_{rows[other]['sha256'][:8]}.fit"
    # nothing but the copies, their .SRC lists and no staging file in the archive's raw/
    in_raw = {p.relative_to(archive).as_posix() for p in (archive / "raw").rglob("*")
              if p.is_file()}
    assert in_raw == set(copies.values()) | {
        Path(c).with_suffix(".SRC").as_posix() for rel, c in copies.items()
        if (incoming / rel).with_suffix(".SRC").exists()}


@pytest.mark.parametrize("n", [0, 1, 5, BATCH_TASKS, BATCH_TASKS + 1, 20,
                               BATCH_TASKS * BATCH_FILES, BATCH_TASKS * BATCH_FILES + 1, 300])
def test_batches_keep_every_file_in_order_and_share_them_out(n):
    files = [(Path(f"/in/{i:04d}.fit"), f"{i:04d}.fit") for i in range(n)]
    batches = ingest_batches(files, "camera", "site", "rules", Path("/staging"))
    assert [f for b in batches for f in b.files] == files  # each file once, in order
    assert all((b.camera, b.site, b.rules, b.staging) == ("camera", "site", "rules",
                                                          Path("/staging")) for b in batches)
    if not n:
        assert batches == []
        return
    sizes = [len(b.files) for b in batches]
    assert max(sizes) <= BATCH_FILES and max(sizes) - min(sizes) <= 1  # even, none too big
    # a small night still goes to several workers; a large one in as few tasks as fit
    assert len(batches) == max(min(n, BATCH_TASKS), -(-n // BATCH_FILES))


def _log_batches(text: str, files: int) -> int:
    """How many tasks the log says the ``files`` new files went to."""
    import re

    m = re.search(rf"new files \({files} in batches\) of (\d+) item\(s\)", text)
    assert m, text[-2000:]
    return int(m.group(1))


def test_files_in_batches_of_two_committed_three_at_a_time_equal_the_serial_ingest(
        awkward_night, ingested, tmp_path, monkeypatch, caplog):
    """Many small batches and commits on the local pool: twins found across batches and
    across commits (the bias and its copy are far apart), the same rows and archive."""
    src, _ = awkward_night
    monkeypatch.setattr(ingest_jobs, "BATCH_FILES", 2)
    monkeypatch.setattr(ingest_jobs, "BATCH_TASKS", 1)
    monkeypatch.setattr(ingest_step, "COMMIT_FILES", 3)
    with LocalPool(2) as pool, caplog.at_level(logging.INFO, logger="clinepipe"):
        cfg, rows = _ingest(src, tmp_path / "n", pool)
    cfg_s, rows_s = ingested["serial"]
    assert _log_batches(caplog.text, len(rows_s)) == -(-len(rows_s) // 2)
    assert rows == rows_s
    assert _tree(cfg.paths.archive) == _tree(cfg_s.paths.archive)


class _Stop(BaseException):
    """The run's process stopped (as by a kill) at a chosen point."""


def test_a_run_stopped_between_two_commits_ends_as_the_uninterrupted_ingest(
        awkward_night, ingested, tmp_path, monkeypatch):
    """Stopped as it was about to commit its second batch of rows: those files' copies are in
    the archive without rows, later batches' files staged; the next ingest records them all
    as the uninterrupted one did (the copies found again, the staging files removed)."""
    src, _ = awkward_night
    monkeypatch.setattr(ingest_jobs, "BATCH_FILES", 2)
    monkeypatch.setattr(ingest_jobs, "BATCH_TASKS", 1)
    monkeypatch.setattr(ingest_step, "COMMIT_FILES", 3)
    flush, calls = ingest_step._Recorder.flush, []

    def stop_at_the_second_commit(recorder):
        if recorder.rows:
            calls.append(len(recorder.rows))
            if len(calls) == 2:
                raise _Stop
        flush(recorder)

    monkeypatch.setattr(ingest_step._Recorder, "flush", stop_at_the_second_commit)
    with pytest.raises(_Stop):
        _ingest(src, tmp_path / "n", None)
    cfg = load_config(tmp_path / "n" / "clinepipe.toml")
    engine = open_database(cfg.database.url)
    with session_scope(engine) as s:
        assert len(s.scalars(select(Frame)).all()) == 3  # the first commit's rows only
    engine.dispose()
    copies = [p for p in (cfg.paths.archive / "raw").rglob("*.fit") if ".staging" not in p.parts]
    assert len(copies) > 3  # the second batch's copies are in place, without rows
    monkeypatch.setattr(ingest_step._Recorder, "flush", flush)
    _, rows = _ingest(None, tmp_path / "n", None)
    cfg_s, rows_s = ingested["serial"]
    assert rows == rows_s
    assert _tree(cfg.paths.archive) == _tree(cfg_s.paths.archive)


def test_the_bytes_of_another_telescopes_frame_are_a_duplicate_named_with_it(awkward_night,
                                                                             tmp_path):
    """Twins are looked for over every telescope (a batch's in one query): a file of the
    west telescope with the bytes of an east frame is its duplicate, named ``east:<path>``;
    a file of new bytes is ingested."""
    import dataclasses

    src, _ = awkward_night
    _ingest(src, tmp_path / "n", None)  # telescope "" (the configuration's default)
    cfg = load_config(tmp_path / "n" / "clinepipe.toml")
    west_in = tmp_path / "west_incoming"
    lights = sorted(cfg.paths.incoming.rglob("*_light_*.fit"))
    night = lights[0].relative_to(cfg.paths.incoming).parts[0]
    (west_in / night).mkdir(parents=True)
    shutil.copy2(lights[0], west_in / night / "w1.fit")  # an east frame's bytes
    with fits.open(lights[1]) as hdul:
        header = hdul[0].header.copy()
        header["HISTORY"] = "west's own light"
        write_raw_frame(west_in / night / "w2.fit", hdul[0].data.copy(), header)
    west = dataclasses.replace(cfg, site=dataclasses.replace(cfg.site, telescope="west"),
                               paths=dataclasses.replace(cfg.paths, incoming=west_in))
    engine = open_database(cfg.database.url)
    try:
        with session_scope(engine) as s:  # the first ingest's rows become east's
            for frame in s.scalars(select(Frame)):
                frame.telescope = "east"
        ingest_stage(west, engine, 1, settle_seconds=0.0)
        with session_scope(engine) as s:
            rows = {f.raw_path: (f.state, f.reason)
                    for f in s.scalars(select(Frame).where(Frame.telescope == "west"))}
    finally:
        engine.dispose()
    first = lights[0].relative_to(cfg.paths.incoming).as_posix()
    assert rows == {f"{night}/w1.fit": ("duplicate", f"duplicate of east:{first}"),
                    f"{night}/w2.fit": ("ingested", None)}


def test_the_thread_mapper_keeps_the_order_and_raises_a_task_error():
    assert list(ThreadMapper(3).map(lambda x: x * x, range(20))) == [x * x for x in range(20)]
    assert list(ThreadMapper().map(abs, [])) == []

    def fail_on_three(x):
        if x == 3:
            raise ValueError("three")
        return x

    got = []
    with pytest.raises(ValueError, match="three"):
        for value in ThreadMapper(2).map(fail_on_three, range(6)):
            got.append(value)
    assert got == [0, 1, 2]


def test_leftover_staging_files_are_removed_and_never_frames(awkward_night, ingested,
                                                              tmp_path, caplog):
    src, _ = awkward_night
    dest = tmp_path / "n"
    shutil.copytree(src, dest, symlinks=True)
    cfg = load_config(dest / "clinepipe.toml")
    staging = staging_folder(cfg.paths.archive)
    staging.mkdir(parents=True)
    # what a killed run leaves: a whole frame's bytes, a partial one, a stray folder
    light = next(cfg.paths.incoming.rglob("*_light_*.fit"))
    shutil.copy2(light, staging / f"{light.name}.k2j4.staging")
    (staging / "dark.fit.x9.staging").write_bytes(light.read_bytes()[:5000])
    (staging / "stray").mkdir()
    cfg_s, rows_s = ingested["serial"]
    with caplog.at_level(logging.INFO, logger="clinepipe"):
        _, rows = _ingest(dest, tmp_path / "again", None)
    assert "ingest: 3 staging file(s) of a killed run removed" in caplog.text
    assert rows == rows_s  # the same frames as a clean archive's, none from the staging files
    archive = tmp_path / "again" / "archive"
    assert not staging_folder(archive).exists()
    assert _tree(archive) == _tree(cfg_s.paths.archive)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="kills a process tree")
def test_run_killed_while_files_are_staged_ends_as_the_serial_run(small_night, serial_reference,
                                                                 tmp_path):
    cfg_path = copy_night(small_night, tmp_path / "n", scheduler="local", workers=2)
    staging = staging_folder(load_config(cfg_path).paths.archive)
    proc = subprocess.Popen([*CLI, "--config", str(cfg_path), "run"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    seen, t0 = 0, time.perf_counter()
    try:
        while proc.poll() is None and time.perf_counter() - t0 < 120:
            seen = sum(1 for _ in staging.glob("*.staging")) if staging.is_dir() else 0
            if seen >= 2:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and seen < 2:
            proc.kill()
        rc = proc.wait(timeout=30)
    if rc != -signal.SIGKILL:
        pytest.skip("the run staged its files too quickly to be killed meanwhile (a fast disk)")
    left = sum(1 for _ in staging.glob("*.staging"))
    run_pipeline(load_config(cfg_path))
    assert not staging.exists()
    assert_same_snapshot(pipeline_snapshot(cfg_path), serial_reference)
    log = (tmp_path / "n" / "archive" / "logs" / "clinepipe.log").read_text(encoding="utf-8")
    # (the killed run may have put the last ones in place between the look and the kill)
    assert (f"ingest: {left} staging file(s) of a killed run removed" in log) == (left > 0)


def test_a_disk_full_while_files_are_staged_stops_the_run_and_the_next_resumes(
        small_night, serial_reference, tmp_path):
    """The archive's disk fills up in the middle of a batch of files on the local pool: one
    sentence, exit 1; after making room the next run ends as an uninterrupted one."""
    cfg_path = copy_night(small_night, tmp_path / "n", scheduler="local", workers=2)
    disk = tmp_path / "disk"
    text = cfg_path.read_text(encoding="utf-8")
    cfg_path.write_text(text.replace('archive = "archive"', f'archive = "{disk}"'),
                        encoding="utf-8")
    incoming = sum(p.stat().st_size for p in (cfg_path.parent / "incoming").rglob("*")
                   if p.is_file())
    with small_tmpfs(disk) as mount:
        mount(incoming // 2)  # room for half the copies
        r = subprocess.run([*CLI, "--config", str(cfg_path), "run"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=300, check=False)
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
        assert r.stderr.startswith("clinepipe: cannot write "), r.stderr
        assert "No space left on device" in r.stderr, r.stderr
        assert not (disk / "masters").exists()  # it stopped in ingest
        mount(64 * 2 ** 20, remount=True)  # the observer makes room
        run_pipeline(load_config(cfg_path))
        assert not staging_folder(disk).exists()
        assert_same_snapshot(pipeline_snapshot(cfg_path), serial_reference)


def test_staged_file_on_another_file_system_is_copied_into_place(tmp_path):
    """A staging folder on another file system than the archive (no rename): the bytes and
    times arrive all the same, and the staging file is gone."""
    from clinepipe.atomic_files import replace_staged, stage_bytes

    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system (/dev/shm) to stage on")
    data = bytes(range(256)) * 4099
    staged = stage_bytes(other / f"clinepipe-test-{tmp_path.name}", data, prefix="x.fit.")
    try:
        when = 1_700_000_000
        os.utime(staged, (when, when))
        target = tmp_path / "raw" / "x.fit"
        target.parent.mkdir()
        assert replace_staged([(staged, target)]) == set()  # copied, not renamed
        assert target.read_bytes() == data and target.stat().st_mtime == when
        assert not staged.exists()
    finally:
        shutil.rmtree(staged.parent, ignore_errors=True)
