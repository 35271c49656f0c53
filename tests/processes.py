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
