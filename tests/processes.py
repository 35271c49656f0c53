"""The processes a test started: every descendant of a pid, and whether one is still alive
(from /proc; Linux). Shared by the tests that kill runs with worker processes."""

from __future__ import annotations

from pathlib import Path


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found.update(kids)
        todo += kids
    return found


def state(pid: int) -> str:
    """The ``State:`` line of ``/proc/PID/status`` in lower case ("zombie" when gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "zombie"
    return next((line for line in text.splitlines() if line.startswith("State:")), "").lower()


def alive(pids) -> set[int]:
    """The processes of ``pids`` that still exist and are not zombies."""
    return {p for p in pids if Path(f"/proc/{p}").exists() and "zombie" not in state(p)}


def kill_when_calibrated(cmd: list[str], calibrated: Path, n: int = 2,
                         timeout: float = 120.0) -> set[int]:
    """Start ``cmd`` (a ``clinepipe run``), SIGKILL it once ``n`` calibrated frames are in
    ``calibrated``; returns every descendant process seen meanwhile (its workers). Fails the
    test when the run ended before it was killed."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    t0, seen = time.perf_counter(), set()
    try:
        while proc.poll() is None and time.perf_counter() - t0 < timeout:
            seen |= descendants(proc.pid)
            if calibrated.is_dir() and sum(1 for _ in calibrated.rglob("*.fits")) >= n:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None and time.perf_counter() - t0 >= timeout:
            proc.kill()
        rc = proc.wait(timeout=30)
    assert rc == -signal.SIGKILL, "the run ended before it was killed"
    return seen


def assert_all_gone(pids, timeout: float = 20.0) -> None:
    """Wait up to ``timeout`` s for ``pids`` to end; fail naming those left behind."""
    import time

    deadline = time.perf_counter() + timeout
    while (left := alive(pids)) and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert not left, f"worker processes left behind: {sorted(left)}"
