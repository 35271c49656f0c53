"""A real Dask cluster on loopback: ``dask scheduler`` and ``dask worker`` processes of their own.

``with DaskCluster(folder, workers=2) as cluster:`` starts ``dask scheduler`` on 127.0.0.1 at a
free port (its address read from the ``--scheduler-file`` it writes), then ``workers``
single-threaded ``dask worker`` processes (no nanny, no dashboard), waits until the scheduler
sees them all, and gives ``cluster.address`` (``tcp://127.0.0.1:PORT``) for ``[execution]
address``. Leaving the block, on success or failure, stops the workers and the scheduler (each
started in a session of its own: SIGTERM, then SIGKILL after a grace period). The processes
run this interpreter with the clinepipe being tested first on ``PYTHONPATH``, so the workers
unpickle the run's jobs with the same code. Their output is in ``folder/*.log``.

Used by ``tests/test_dask_cluster.py`` and ``bench/bench_cluster.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


class ClusterError(RuntimeError):
    """The scheduler or a worker did not come up (the message carries its log's last lines)."""


class DaskCluster:
    """``dask scheduler`` + ``workers`` ``dask worker`` processes on loopback (see the module)."""

    def __init__(self, folder: Path, workers: int = 2, timeout: float = 120.0):
        self.folder, self.n_workers, self.timeout = Path(folder), workers, timeout
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.address = ""

    # ---- start and stop
    def __enter__(self) -> "DaskCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        scheduler_file = self.folder / "scheduler.json"
        scheduler_file.unlink(missing_ok=True)
        self.scheduler = self._spawn("scheduler", [
            "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
            "--scheduler-file", str(scheduler_file),
            # a scheduler orphaned by a killed test ends by itself
            "--idle-timeout", "900s"])
        self.address = self._wait_for_address(scheduler_file)
        for i in range(self.n_workers):
            self.workers.append(self._spawn(f"worker-{i}", [
                "worker", "--scheduler-file", str(scheduler_file), "--name", f"w{i}",
                "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                "--local-directory", str(self.folder / f"worker-{i}"),
                "--death-timeout", "60s"]))
        self._wait_for_workers()

    def stop(self, grace: float = 10.0) -> None:
        """Stop the workers, then the scheduler (SIGTERM; SIGKILL after ``grace`` s)."""
        procs = [p for p in [*self.workers, self.scheduler] if p is not None]
        for p in procs:
            _signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(p, signal.SIGKILL)
                p.wait(timeout=grace)
        for p in procs:
            for stream in (p.stdout, p.stderr):
                if stream is not None:
                    stream.close()
        self.workers, self.scheduler = [], None

    # ---- what the bench reads
    @property
    def pids(self) -> dict[str, int]:
        """Process id of the scheduler and of each worker (``worker-0``…)."""
        out = {"scheduler": self.scheduler.pid} if self.scheduler is not None else {}
        out.update({f"worker-{i}": p.pid for i, p in enumerate(self.workers)})
        return out

    # ---- helpers
    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [_clinepipe_source()] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        logfile = open(self.folder / f"{name}.log", "wb")  # closed in stop() through stdout
        return subprocess.Popen([sys.executable, "-m", "dask", *args], stdin=subprocess.DEVNULL,
                                stdout=logfile, stderr=subprocess.STDOUT, env=env,
                                cwd=self.folder, start_new_session=True)

    def _wait_for_address(self, scheduler_file: Path) -> str:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.scheduler.poll() is not None:
                raise ClusterError(f"dask scheduler exited ({self.scheduler.returncode}): "
                                   + self._tail("scheduler"))
            try:
                address = json.loads(scheduler_file.read_text())["address"]
                if address:
                    return address
            except (OSError, ValueError, KeyError):
                pass  # not written yet, or half written
            time.sleep(0.1)
        raise ClusterError(f"dask scheduler wrote no address in {self.timeout:g} s: "
                           + self._tail("scheduler"))

    def _wait_for_workers(self) -> None:
        from dask.distributed import Client

        deadline = time.monotonic() + self.timeout
        with Client(self.address, timeout=self.timeout) as client:
            while time.monotonic() < deadline:
                dead = [i for i, p in enumerate(self.workers) if p.poll() is not None]
                if dead:
                    raise ClusterError(f"dask worker {dead[0]} exited: "
                                       + self._tail(f"worker-{dead[0]}"))
                if len(client.scheduler_info(n_workers=-1)["workers"]) >= self.n_workers:
                    return
                time.sleep(0.2)
        raise ClusterError(f"{self.n_workers} dask workers not connected in {self.timeout:g} s: "
                           + self._tail("worker-0"))

    def _tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.folder / f"{name}.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _clinepipe_source() -> str:
    """The folder holding the ``clinepipe`` package this interpreter imports."""
    import clinepipe

    return str(Path(clinepipe.__file__).resolve().parents[1])


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the process group ``proc`` leads (its own session: only what it started)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process, all its threads (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
