"""The daily job unattended: bad input, the run lock, kill-and-restart, no terminal.

* A simulated night with a corpus of bad files in ``incoming/``: every bad file ends with its
  named reason in the ``frames`` table and in ``clinepipe status --failed --csv``, the rest of
  the night is calibrated, and no raw file changes (run as cron would: no terminal, stdin
  closed, exit code 0 although some frames failed).
* The lock: a second ``clinepipe run`` exits with code 3 and one sentence; the lock of a
  killed run is taken over.
* ``clinepipe run`` killed with SIGKILL at several points (during ingest, masters, lights, the
  finishing steps; and at fixed delays) and run again ends with exactly the database, export and
  archive of an uninterrupted run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from run_snapshots import assert_same_snapshot, copy_night, pipeline_snapshot
from small_disk import small_tmpfs
from sqlalchemy import select

from clinepipe.config import load_config
from clinepipe.errors import LockHeld
from clinepipe.run.lock import RunLock
from clinepipe.run.pipeline import run_pipeline
from clinepipe.simulate import write_raw_frame
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame, Run

CLI = [sys.executable, "-m", "clinepipe.cli"]


def cli(*args, timeout=180, prefix=(), **kw) -> subprocess.CompletedProcess:
    """``clinepipe ARGS`` as cron runs it: no terminal, stdin closed, its own session."""
    return subprocess.run([*prefix, *CLI, *map(str, args)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout,
                          start_new_session=True, **kw)


def sha_tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


# ----------------------------------------------------------------------------- bad input

WCS_KEYS = ("CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2",
            "CD2_1", "CD2_2", "RADECSYS", "EQUINOX")


def _drop_caps_prefix() -> list[str] | None:
    """As root, a command prefix that removes the file-permission override (so chmod 000
    blocks reads as it does for the observatory's unprivileged user); [] when not root;
    None when it cannot be done here."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    return prefix if probe.returncode == 0 else None


def build_bad_corpus(incoming: Path, night: str, unreadable: bool) -> dict:
    """Write the bad files into ``incoming/<night>/rejects/``; returns
    ``{raw_path: (state, stage, reason)}`` (the reason an exact text or a ``~prefix``)."""
    lights = sorted((incoming / night / "lights").glob("*.fit"))
    biases = sorted((incoming / night / "calibration").glob("*_bias_*.fit"))
    template = lights[0]
    with fits.open(template) as hdul:
        data = np.asarray(hdul[0].data).astype(np.uint16)
        header = hdul[0].header.copy()
    raw = template.read_bytes()
    folder = incoming / night / "rejects"  # sorts after lights/ and calibration/
    folder.mkdir()
    expected = {}

    def rel(name):
        return f"{night}/rejects/{name}"

    def light(name, *, drop=(), data_=None, note=None, **cards):
        h = header.copy()
        for key in drop:
            h.remove(key, ignore_missing=True, remove_all=True)
        for key, value in cards.items():
            h[key.replace("_", "-") if key == "CCD_TEMP" else key] = value
        h["HISTORY"] = f"robustness test: {note or name}"  # distinct bytes: no duplicates
        write_raw_frame(folder / name, data if data_ is None else data_, h)

    (folder / "truncated.fit").write_bytes(raw[: 2 * 2880 + 1000])
    expected[rel("truncated.fit")] = ("failed", "ingest", "truncated FITS")
    (folder / "empty.fit").write_bytes(b"")
    expected[rel("empty.fit")] = ("failed", "ingest", "empty file")
    (folder / "observing_log.fits").write_text("2026-03-14 clear skies, dome opened at 19:40\n")
    expected[rel("observing_log.fits")] = ("failed", "ingest", "not FITS")
    light("no_imagetyp.fit", drop=["IMAGETYP"])
    expected[rel("no_imagetyp.fit")] = ("failed", "ingest", "no frame type")
    light("no_exptime.fit", drop=["EXPTIME", "EXPOSURE"])
    expected[rel("no_exptime.fit")] = ("failed", "ingest", "missing EXPTIME")
    # no filter keyword: [headers] default_filter "C", for which the night has no flat
    light("no_filter.fit", drop=["FILTER"])
    expected[rel("no_filter.fit")] = ("waiting", "reduce", "~waiting for calibration: no C-band flat")
    light("no_dateobs.fit", drop=["DATE-OBS"])
    expected[rel("no_dateobs.fit")] = ("failed", "ingest", "missing DATE-OBS")
    light("bin5.fit", XBINNING=5, YBINNING=5)
    expected[rel("bin5.fit")] = ("failed", "ingest", "unknown binning 5")
    light("temp_frame.fit", IMAGETYP="Temp")
    expected[rel("temp_frame.fit")] = ("skipped", "ingest", "frame type 'Temp' skipped")
    nan = np.full(data.shape, np.nan, dtype=np.float32)
    light("all_nan.fit", data_=nan)
    expected[rel("all_nan.fit")] = ("failed", "ingest", "all-NaN data")
    light("constant.fit", data_=np.zeros_like(data))
    expected[rel("constant.fit")] = ("failed", "ingest", "constant data")
    light("cube.fit", data_=np.stack([data, data]))
    expected[rel("cube.fit")] = ("failed", "ingest", "no image data")
    # a subframe cropped from the full frame, with no XORGSUBF/YORGSUBF to place it
    light("subframe.fit", drop=["XORGSUBF", "YORGSUBF"], data_=data[40:168, 30:158].copy())
    expected[rel("subframe.fit")] = ("failed", "reduce", "subframe without origin")
    light("warm_ccd.fit", CCD_TEMP=5.0)
    expected[rel("warm_ccd.fit")] = ("failed", "reduce", "CCD too warm: 5.0 °C > -3.0 °C")
    # no WCS and no .SRC, no plate solver configured: nothing to put it on the sky
    light("no_wcs.fit", drop=WCS_KEYS)
    expected[rel("no_wcs.fit")] = ("failed", "wcs", "no WCS")
    # a damaged .SRC beside a good light: own detection instead, calibrated, the note kept
    light("bad_src.fit")
    (folder / "bad_src.SRC").write_bytes(b"#HEIGHT= 256\r\n#WIDTH = 256\r\n12.5 13.25 x\r\n\x00\xff")
    expected[rel("bad_src.fit")] = ("calibrated", None, "~malformed .SRC")
    # the same bytes as a bias under another name
    shutil.copy2(biases[0], folder / "bias_again.fit")
    expected[rel("bias_again.fit")] = ("duplicate", "ingest",
                                       f"duplicate of {biases[0].relative_to(incoming).as_posix()}")
    # junk that is no file at all: a folder named like a frame, a dangling link (ignored)
    (folder / "folder.fits").mkdir()
    (folder / "gone.fit").symlink_to(folder / "no-such-target.fit")
    if unreadable:
        light("unreadable.fit", note="unreadable")
        (folder / "unreadable.fit").chmod(0)
        expected[rel("unreadable.fit")] = ("failed", "ingest", "unreadable file (Permission denied)")
    return expected


@pytest.fixture(scope="module")
def bad_night(small_night, tmp_path_factory):
    """A copy of the small night plus the bad corpus, run once as cron would run it."""
    out = tmp_path_factory.mktemp("bad_night")
    cfg_path = copy_night(small_night, out)
    incoming = out / "incoming"
    night = small_night.nights[0]
    prefix = _drop_caps_prefix()
    expected = build_bad_corpus(incoming, night, unreadable=prefix is not None)
    good_lights = sorted(p.relative_to(incoming).as_posix()
                         for p in (incoming / night / "lights").glob("*.fit"))
    before = sha_tree(incoming)
    t0 = time.perf_counter()
    result = cli("--config", cfg_path, "run", prefix=prefix or ())
    elapsed = time.perf_counter() - t0
    cfg = load_config(cfg_path)
    engine = open_database(cfg.database.url)
    with session_scope(engine) as s:
        rows = {f.raw_path: f for f in s.scalars(select(Frame))}
        s.expunge_all()
    engine.dispose()
    yield {"cfg_path": cfg_path, "cfg": cfg, "incoming": incoming, "expected": expected,
           "good_lights": good_lights, "before": before, "result": result, "rows": rows,
           "unreadable_checked": prefix is not None, "elapsed": elapsed}
    unreadable = incoming / night / "rejects" / "unreadable.fit"
    if unreadable.exists():
        unreadable.chmod(0o644)  # let the tmp folder be cleaned


def test_run_is_unattended_and_exits_0_despite_failures(bad_night):
    r = bad_night["result"]
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    summary = r.stdout.splitlines()[0]
    assert summary.startswith("run ") and "new file(s)" in summary and "failed" in summary, r.stdout
    assert "not fully processed" in r.stdout
    log = (bad_night["cfg"].paths.archive / "logs" / "clinepipe.log").read_text(encoding="utf-8")
    assert " finished in " in log
    assert "truncated FITS" in log and "no WCS" in log


def test_every_bad_file_has_its_named_reason(bad_night):
    rows = bad_night["rows"]
    assert len(bad_night["expected"]) >= 17
    problems = []
    for raw_path, (state, stage, reason) in bad_night["expected"].items():
        f = rows.get(raw_path)
        if f is None:
            problems.append(f"{raw_path}: no frames row")
            continue
        ok_reason = (f.reason or "").startswith(reason[1:]) if reason.startswith("~") else f.reason == reason
        if f.state != state or f.stage != stage or not ok_reason:
            problems.append(f"{raw_path}: {f.state}/{f.stage}/{f.reason!r}, expected "
                            f"{state}/{stage}/{reason!r}")
    assert not problems, "\n".join(problems)
    if not bad_night["unreadable_checked"]:
        pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE: chmod 000 cannot "
                    "make a file unreadable here, so the 'unreadable file' case was not run")


def test_junk_that_is_not_a_file_is_ignored(bad_night):
    assert not any(p.endswith(("folder.fits", "gone.fit")) for p in bad_night["rows"])


def test_bad_src_falls_back_to_detection_and_is_noted(bad_night):
    f = next(f for p, f in bad_night["rows"].items() if p.endswith("rejects/bad_src.fit"))
    assert f.state == "calibrated" and f.source_list == "detect"
    assert "fell back to own detection" in f.reason
    assert f.n_stars and f.n_stars > 10
    r = cli("--config", bad_night["cfg_path"], "frames", "--csv")
    row = next(x for x in csv.DictReader(io.StringIO(r.stdout)) if x["frame"].endswith("bad_src.fit"))
    assert "malformed .SRC" in row["reason"] and row["state"] == "calibrated"


def test_rest_of_the_night_is_processed(bad_night):
    rows = bad_night["rows"]
    states = {p: rows[p].state for p in bad_night["good_lights"]}
    assert states and set(states.values()) == {"calibrated"}, states
    cal = [f for p, f in rows.items() if f.kind in ("bias", "dark", "flat") and "/rejects/" not in p]
    assert cal and all(f.state in ("used", "rejected") for f in cal)


def test_status_failed_csv_lists_every_bad_file(bad_night):
    r = cli("--config", bad_night["cfg_path"], "status", "--failed", "--csv")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "file,stage,reason"
    listed = {row["file"]: row for row in csv.DictReader(io.StringIO(r.stdout))}
    for raw_path, (state, stage, reason) in bad_night["expected"].items():
        if state == "calibrated":
            assert raw_path not in listed  # fully processed, only a note
            continue
        assert raw_path in listed, f"{raw_path} missing from status --failed --csv"
        assert listed[raw_path]["stage"] == stage
        assert listed[raw_path]["reason"] == bad_night["rows"][raw_path].reason
        assert not Path(listed[raw_path]["file"]).is_absolute()
    assert not [f for f in listed if f in bad_night["good_lights"]]


def test_raw_files_unchanged(bad_night):
    incoming = bad_night["incoming"]
    unreadable = next(incoming.rglob("unreadable.fit"), None)
    if unreadable is not None:
        assert (unreadable.stat().st_mode & 0o777) == 0  # not even its mode was touched
    assert sha_tree(incoming) == bad_night["before"]


def test_second_run_changes_nothing_and_reports_again(bad_night):
    before = pipeline_snapshot(bad_night["cfg_path"])
    if bad_night["unreadable_checked"]:
        # as the first run: root without CAP_DAC_OVERRIDE, so the unreadable file stays
        # unreadable (failed files are tried again on every run)
        r = cli("--config", bad_night["cfg_path"], "run", prefix=_drop_caps_prefix())
        assert r.returncode == 0, r.stderr
        assert ": 0 new file(s)" in r.stdout and " 0 light(s) processed" in r.stdout, r.stdout
    else:
        summary = run_pipeline(bad_night["cfg"])
        assert summary.new_files == 0 and summary.lights_done == 0
        assert {f[0] for f in summary.failures} >= {p for p, e in bad_night["expected"].items()
                                                    if e[0] != "calibrated"}
    assert_same_snapshot(pipeline_snapshot(bad_night["cfg_path"]), before)


def test_a_failed_file_fixed_in_incoming_is_ingested_by_the_next_run(small_night, tmp_path):
    """The observer re-saves a light that lacked IMAGETYP: the next run ingests and calibrates it
    (the row is updated, not duplicated); an unchanged failure is left as it was."""
    cfg_path = copy_night(small_night, tmp_path)
    cfg = load_config(cfg_path)
    night = small_night.nights[0]
    template = sorted((cfg.paths.incoming / night / "lights").glob("*.fit"))[0]
    with fits.open(template) as hdul:
        data = np.asarray(hdul[0].data).astype(np.uint16)
        header = hdul[0].header.copy()
    header["HISTORY"] = "re-saved by the observer"  # other bytes than the template
    broken = header.copy()
    del broken["IMAGETYP"]
    target = cfg.paths.incoming / night / "late" / "resaved.fit"
    target.parent.mkdir()
    fits.writeto(target, data, broken)
    still_bad = target.with_name("still_bad.fit")
    fits.writeto(still_bad, data + np.uint16(1), broken)
    rel = f"{night}/late/resaved.fit"

    def rows():
        engine = open_database(cfg.database.url)
        with session_scope(engine) as s:
            out = {f.raw_path: (f.id, f.state, f.stage, f.reason, f.run_id)
                   for f in s.scalars(select(Frame).where(Frame.raw_path.like("%/late/%")))}
        engine.dispose()
        return out

    run_pipeline(cfg, settle_seconds=0)
    first = rows()
    assert first[rel][1:4] == ("failed", "ingest", "no frame type")

    fits.writeto(target, data, header, overwrite=True)  # the fix, by the observer
    summary = run_pipeline(cfg, settle_seconds=0)
    assert summary.new_files == 0
    second = rows()
    assert second[rel][0] == first[rel][0]  # the same row, updated
    assert second[rel][1] == "calibrated", second[rel]
    assert second[f"{night}/late/still_bad.fit"] == first[f"{night}/late/still_bad.fit"]
    log = (cfg.paths.archive / "logs" / "clinepipe.log").read_text(encoding="utf-8")
    assert "tried again after it failed at ingest (no frame type): now ingested" in log


@pytest.fixture
def small_archive_disk(tmp_path):
    """A folder on its own small tmpfs (root only: how a full disk is made for real)."""
    disk = tmp_path / "disk"
    with small_tmpfs(disk) as mount:
        yield disk, mount


def test_a_full_archive_stops_the_run_and_the_next_run_resumes(small_night, serial_reference,
                                                               small_archive_disk, tmp_path):
    """The disk fills up while the lights are written: one sentence, exit 1, no traceback,
    nothing half done; after making room the next run ends as an uninterrupted one."""
    disk, mount = small_archive_disk
    cfg_path = copy_night(small_night, tmp_path / "n")
    text = cfg_path.read_text(encoding="utf-8")
    cfg_path.write_text(text.replace('archive = "archive"', f'archive = "{disk}"'),
                        encoding="utf-8")
    incoming = sum(p.stat().st_size for p in (cfg_path.parent / "incoming").rglob("*")
                   if p.is_file())
    mount(int(1.5 * incoming))  # room for the copies and masters, not for every light
    r = cli("--config", cfg_path, "run")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert r.stderr.startswith("clinepipe: cannot write ") and "No space left on device" in r.stderr
    assert "_calibrated.fits" in r.stderr  # it stopped in the lights, as intended
    assert not list(disk.rglob("*.tmp")), "a temporary file was left behind"
    status = cli("--config", cfg_path, "status").stdout.splitlines()
    assert status[-1].startswith("last run #1: crashed ") and "No space left on device" in status[-1]

    mount(64 * 2 ** 20, remount=True)  # the observer makes room
    run_pipeline(load_config(cfg_path))
    snapshot = pipeline_snapshot(cfg_path)
    assert_same_snapshot(snapshot, serial_reference)
    with session_scope(open_database(load_config(cfg_path).database.url)) as s:
        statuses = [r.status for r in s.scalars(select(Run).order_by(Run.id))]
    assert statuses == ["crashed", "finished"], statuses
    assert cli("--config", cfg_path, "status").stdout.splitlines()[-1].startswith(
        "last run #2: finished ")


# ----------------------------------------------------------------------------- the lock

def test_second_run_exits_3_while_the_lock_is_held(small_night, tmp_path):
    cfg_path = copy_night(small_night, tmp_path / "n")
    archive = load_config(cfg_path).paths.archive
    with RunLock(archive / "clinepipe.lock"):
        r = cli("--config", cfg_path, "run")
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and r.stderr.rstrip().endswith(".")
    assert "clinepipe.lock" in r.stderr and "lock" in r.stderr
    assert f"pid {os.getpid()}" in r.stderr  # names the holder
    assert not (tmp_path / "n" / "clinepipe.db").exists()  # nothing was touched
    assert not (archive / "raw").exists()


def test_lock_of_a_killed_run_is_taken_over(small_night, tmp_path):
    cfg_path = copy_night(small_night, tmp_path / "n")
    shutil.rmtree(tmp_path / "n" / "incoming" / small_night.nights[0] / "lights")  # quicker
    lock = load_config(cfg_path).paths.archive / "clinepipe.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from clinepipe.run.lock import RunLock; "
         "RunLock(sys.argv[1]).__enter__(); print('held', flush=True); time.sleep(600)", str(lock)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld):  # really held
            with RunLock(lock):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert f"pid {holder.pid}" in lock.read_text()  # the stale holder's note is still there
    r = cli("--config", cfg_path, "run")
    assert r.returncode == 0, r.stderr
    assert f"pid {holder.pid}" not in lock.read_text()


# ----------------------------------------------------------------------------- kill and restart

def _count(folder: Path, pattern: str) -> int:
    return sum(1 for _ in folder.rglob(pattern)) if folder.is_dir() else 0


def _log_count(archive: Path, text: str) -> int:
    log = archive / "logs" / "clinepipe.log"
    try:
        return log.read_text(encoding="utf-8", errors="replace").count(text)
    except FileNotFoundError:
        return 0


# Where to kill: a condition on what the run has written so far (polled every few ms), or a
# fixed delay after the start. small_night: 28 calibration frames + 8 lights.
KILL_POINTS = {
    "ingest": lambda a: _count(a / "raw", "*.fit") >= 12,
    "masters": lambda a: _count(a / "masters", "*.fits") >= 2,
    "lights": lambda a: _count(a / "calibrated", "*.fits") >= 3,
    "finishing": lambda a: _log_count(a, ": calibrated, ") >= 8,
    "after-1.5s": 1.5,
}


def _log_grows(text: str, n: int, after: str | None = None):
    """Kill point: ``text`` logged ``n`` more times than when the run started (or, with
    ``after``, as soon as ``after`` is logged again and ``text`` not yet): for runs that
    resume an archive whose log already holds earlier runs' lines."""
    base = {}

    def due(archive: Path) -> bool:
        if not base:
            base.update(text=_log_count(archive, text), after=_log_count(archive, after or text))
        if after is not None:
            return (_log_count(archive, after) > base["after"]
                    and _log_count(archive, text) == base["text"])
        return _log_count(archive, text) >= base["text"] + n

    return due


def run_and_kill(cfg_path: Path, when, timeout: float = 120) -> str:
    """Start `clinepipe run` and SIGKILL it at ``when``; returns the log's last line."""
    archive = load_config(cfg_path).paths.archive
    t0 = time.perf_counter()
    due = False
    with open(cfg_path.parent / "killed.out", "w") as out:
        proc = subprocess.Popen([*CLI, "--config", str(cfg_path), "run"], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while proc.poll() is None and time.perf_counter() - t0 < timeout:
                due = (time.perf_counter() - t0 >= when) if isinstance(when, float) else when(archive)
                if due:
                    proc.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.003)
        finally:
            if proc.poll() is None and not due:
                proc.kill()
            rc = proc.wait(timeout=30)
    assert rc == -signal.SIGKILL, f"the run ended (code {rc}) before the kill point was reached"
    log_file = archive / "logs" / "clinepipe.log"
    # a run killed early (a loaded machine starts slowly) may not have logged a line yet
    lines = log_file.read_text().splitlines() if log_file.exists() else []
    return lines[-1] if lines else ""


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_killed_and_restarted_run_ends_as_if_never_killed(point, small_night, serial_reference,
                                                          tmp_path):
    cfg_path = copy_night(small_night, tmp_path / "n")
    last = run_and_kill(cfg_path, KILL_POINTS[point])
    assert " finished in " not in last, f"killed too late: {last}"
    if point == "finishing":  # the next morning's run, as cron starts it, finishes the job
        r = cli("--config", cfg_path, "run")
        assert r.returncode == 0, r.stderr
        assert "were killed" in (cfg_path.parent / "archive/logs/clinepipe.log").read_text()
    else:  # (the same, in this process: quicker)
        run_pipeline(load_config(cfg_path))
    assert_same_snapshot(pipeline_snapshot(cfg_path), serial_reference)
    with session_scope(open_database(load_config(cfg_path).database.url)) as s:
        statuses = [r.status for r in s.scalars(select(Run).order_by(Run.id))]
    # (a kill before the run's row was written leaves no row)
    assert statuses[-1] == "finished" and set(statuses[:-1]) <= {"crashed"}, statuses


def test_killed_repeatedly_then_finished(small_night, serial_reference, tmp_path):
    """Several kills in a row on one archive (each run resumes what the last left)."""
    cfg_path = copy_night(small_night, tmp_path / "n")
    for when in (KILL_POINTS["ingest"], KILL_POINTS["lights"], _log_grows(": calibrated, ", 3),
                 _log_grows(" finished in ", 0, after=": calibrated, ")):
        run_and_kill(cfg_path, when)
    run_pipeline(load_config(cfg_path))
    assert_same_snapshot(pipeline_snapshot(cfg_path), serial_reference)
    with session_scope(open_database(load_config(cfg_path).database.url)) as s:
        statuses = [r.status for r in s.scalars(select(Run).order_by(Run.id))]
    assert statuses[-1] == "finished" and set(statuses[:-1]) == {"crashed"}, statuses


def test_a_run_stopped_before_it_stores_the_star_statistics_ends_as_if_never_stopped(
        small_night, serial_reference, tmp_path, monkeypatch):
    """The star statistics are computed beside the run's later steps and stored by its last
    step: a run that stops just before it (the computation done or not) stored none of them
    and cleared no mark, and the next run ends in the same database as one never stopped."""
    from clinepipe.run import pipeline

    cfg_path = copy_night(small_night, tmp_path / "n")
    steps = pipeline.RUN_STEPS
    assert steps[-1] is pipeline._star_stats_stored

    def stop(run):
        run.star_stats.done.wait()  # the rows computed, never stored
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "RUN_STEPS", (*steps[:-1], stop))
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(load_config(cfg_path))
    monkeypatch.setattr(pipeline, "RUN_STEPS", steps)
    run_pipeline(load_config(cfg_path))
    assert_same_snapshot(pipeline_snapshot(cfg_path), serial_reference)


# ----------------------------------------------------------------------------- several telescopes

def _second_telescope(sim, dest: Path, prefix: str = "B_") -> Path:
    """A copy of ``sim`` as another telescope would write it: the same sky and pixels, its own
    file names (``prefix`` + name) and header (so no file is a byte-for-byte duplicate)."""
    cfg_path = copy_night(sim, dest)
    for path in sorted((dest / "incoming").rglob("*")):
        if not path.is_file():
            continue
        target = path.with_name(prefix + path.name)
        if path.suffix.lower() == ".fit":
            with fits.open(path) as hdul:
                hdul[0].header["OBSERVER"] = "second telescope"
                hdul.writeto(target)
            path.unlink()
        else:
            path.rename(target)
    return cfg_path


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_telescopes_share_one_database(backend, small_night, serial_reference, tmp_path,
                                           new_database_url):
    """Two telescopes (own incoming, archive, config; one database url) run at the same time:
    each calibrates its lights with its own masters, and they share star identities."""
    url = new_database_url(backend)
    configs = [copy_night(small_night, tmp_path / "a"), _second_telescope(small_night, tmp_path / "b")]
    for cfg_path in configs:
        text = cfg_path.read_text().replace('url = "sqlite:///clinepipe.db"', f'url = "{url}"')
        assert url in text
        cfg_path.write_text(text)
    procs = [subprocess.Popen([*CLI, "--config", str(c), "run"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in configs]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs

    from clinepipe.store.models import Master, Measurement, Star

    engine = open_database(url)
    try:
        with session_scope(engine) as s:
            frames = list(s.scalars(select(Frame)))
            masters = {m.id: m for m in s.scalars(select(Master))}
            n_stars = len(list(s.scalars(select(Star.id))))
            per_star = {}
            for sid, raw in s.execute(select(Measurement.star_id, Frame.raw_path)
                                      .join(Frame, Frame.id == Measurement.frame_id)):
                per_star.setdefault(sid, set()).add("b" if Path(raw).name.startswith("B_") else "a")
    finally:
        engine.dispose()

    def scope(raw_path: str) -> str:
        return "b" if Path(raw_path).name.startswith("B_") else "a"

    assert len(frames) == 72
    assert {f.state for f in frames if f.kind == "light"} == {"calibrated"}, \
        [(f.raw_path, f.state, f.reason) for f in frames if f.state != "calibrated"]
    assert {f.state for f in frames if f.kind != "light"} <= {"used", "rejected"}
    assert len(masters) == 8  # bias, dark, flat V, flat R for each telescope
    for m in masters.values():
        assert len({scope(i["raw_path"]) for i in json.loads(m.inputs)}) == 1, m.path
    for f in frames:
        if f.kind == "light":
            used = [masters[i] for i in (f.bias_master_id, f.dark_master_id, f.flat_master_id)]
            assert {scope(i["raw_path"]) for m in used for i in json.loads(m.inputs)} == \
                {scope(f.raw_path)}, f.raw_path
    # one star list: the second telescope's detections are the first's stars
    assert n_stars == len(serial_reference["stars"])
    assert all(v == {"a", "b"} for v in per_star.values())
