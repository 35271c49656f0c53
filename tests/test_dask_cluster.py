"""A night through ``[execution] address``: a real ``dask scheduler`` and two ``dask worker``
processes started on their own (loopback), as an observatory's cluster would be.

The run's database, export, archive, masters and morning report (its page and plots, byte for
byte) are those of the serial run of the same night; the scheduler's own counts show that the
new files (read, hashed, staged, a batch of them per task), the masters (one task per calibration group), the lights and
the report's plots were computed on the workers, not in the run's process.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dask_cluster import DaskCluster
from run_snapshots import assert_same_snapshot, copy_night, pipeline_snapshot

pytest.importorskip("dask.distributed")

CLI = [sys.executable, "-m", "clinepipe.cli"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with DaskCluster(tmp_path_factory.mktemp("dask_cluster"), workers=2) as c:
        yield c


def _computed_on_cluster(address: str) -> dict[str, int]:
    """Tasks the scheduler saw finish, by function name (its task prefixes)."""
    from dask.distributed import Client

    def counts(dask_scheduler):
        return {name: prefix.state_counts.get("memory", 0)
                for name, prefix in dask_scheduler.task_prefixes.items()}

    with Client(address) as client:
        return client.run_on_scheduler(counts)


def _run(cfg_path: Path) -> subprocess.CompletedProcess:
    r = subprocess.run([*CLI, "--config", str(cfg_path), "run"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    return r


def _report_files(archive: Path) -> dict[str, str]:
    """SHA-256 of every file of the morning reports (``index.html`` with its plots inline)."""
    root = archive / "reports"
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _master_content(archive: Path) -> dict:
    """Each master's pixels, header (but the time it was written) and inputs table."""
    from astropy.io import fits

    out = {}
    for path in sorted((archive / "masters").rglob("*.fits")):
        with fits.open(path) as hdul:
            header = [(c.keyword, c.value) for c in hdul[0].header.cards if c.keyword != "DATE"]
            inputs = [tuple(row) for row in hdul["INPUTS"].data.tolist()]
            out[path.relative_to(archive).as_posix()] = (np.array(hdul[0].data), header, inputs)
    return out


def test_night_on_a_dask_cluster_equals_serial_run(small_night, cluster, tmp_path):
    serial_cfg = copy_night(small_night, tmp_path / "serial")
    _run(serial_cfg)

    cfg_path = copy_night(small_night, tmp_path / "cluster", scheduler="dask",
                          address=cluster.address)
    before = _computed_on_cluster(cluster.address)
    r = _run(cfg_path)
    after = _computed_on_cluster(cluster.address)
    done = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    assert "8 light(s) processed" in r.stdout, r.stdout

    frames = sum(1 for p in (tmp_path / "cluster" / "incoming").rglob("*") if p.is_file()
                 and p.suffix.lower() in (".fit", ".fits"))
    snapshot = pipeline_snapshot(cfg_path)
    n_masters = len(snapshot["masters"])
    # every new file read, hashed and staged (a few files per task), every group's master
    # built, every light measured on the workers
    log = (tmp_path / "cluster" / "archive" / "logs" / "clinepipe.log").read_text("utf-8")
    batches = re.search(rf"new files \({frames} in batches\) of (\d+) item\(s\) on Dask "
                        + re.escape(f"({cluster.address}, 2 workers)"), log)
    assert batches, log[:3000]
    assert 2 <= int(batches.group(1)) < frames and done.get("stage_files") == int(batches.group(1))
    assert n_masters >= 4 and done.get("make_master") == n_masters
    assert done.get("process_light") == 8
    # the report's plots too (drawn by PlotBatch's `draw`), after the lights, on the same client
    plots = re.search(r"report plots of (\d+) item\(s\) on Dask \(" + re.escape(cluster.address),
                      log)
    assert plots, log[-3000:]
    assert int(plots.group(1)) >= 3 and done.get("draw") == int(plots.group(1))
    reports = _report_files(tmp_path / "cluster" / "archive")
    assert any(name.endswith("index.html") for name in reports)
    assert reports == _report_files(tmp_path / "serial" / "archive")

    assert_same_snapshot(snapshot, pipeline_snapshot(serial_cfg))
    got, want = (_master_content(tmp_path / run / "archive") for run in ("cluster", "serial"))
    assert got.keys() == want.keys()
    for name, (data, header, inputs) in want.items():
        np.testing.assert_array_equal(got[name][0], data, err_msg=name)
        assert got[name][1:] == (header, inputs), name


def test_results_come_in_order_and_a_failed_task_raises_in_its_turn(cluster):
    """Tasks finishing out of order, their results taken slowly (so that several wait to be
    fetched together): in the items' order; a failed task raises after the results before it."""
    import time

    from clinepipe.run.parallel import DaskPool

    def slow_reader(results):
        for value in results:
            time.sleep(0.02)
            yield value

    with DaskPool(2, cluster.address) as pool:
        uneven = lambda x: (time.sleep(0.01 * (x % 4)), x * x)[1]  # noqa: E731 (by value)
        assert list(slow_reader(pool.map(uneven, range(60)))) == [x * x for x in range(60)]
        got = []
        fails = lambda x: x if x != 25 else int(f"item {x}")  # noqa: E731
        with pytest.raises(ValueError, match="item 25"):
            for value in slow_reader(pool.map(fails, range(40))):
                got.append(value)
        assert got == list(range(25))


def test_cluster_processes_stopped_even_when_the_block_fails(tmp_path):
    """The helper's own promise: nothing left running after a failure inside the block."""
    pids = []
    with pytest.raises(RuntimeError, match="a failing test"), \
            DaskCluster(tmp_path / "c", workers=1) as c:
        pids = list(c.pids.values())
        assert len(pids) == 2 and all(Path(f"/proc/{p}").exists() for p in pids)
        raise RuntimeError("a failing test")
    assert len(pids) == 2
    assert not [p for p in pids if Path(f"/proc/{p}").exists()]



def test_no_scheduler_at_the_address_is_one_sentence(small_night, tmp_path):
    """A cluster that is down (or a wrong address): exit 2 and one sentence naming the key."""
    import os
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg_path = copy_night(small_night, tmp_path / "n", scheduler="dask",
                          address=f"tcp://127.0.0.1:{port}")
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"}
    r = subprocess.run([*CLI, "--config", str(cfg_path), "run"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert (f"{cfg_path}: no Dask scheduler answers at [execution] address = "
            f"'tcp://127.0.0.1:{port}'") in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
