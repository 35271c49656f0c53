"""Issue 19 item 14: a normal run and its morning report write no library warning on stderr
(cron mails every line of it). Run as the cron job runs them, in a fresh interpreter, with
Python's warnings shown (``PYTHONWARNINGS=default``): a night that calibrates and a night
whose lights all wait for their masters (the report's plots then have no points)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import clinepipe


def _clinepipe(config: Path, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="default",
               PYTHONPATH=str(Path(clinepipe.__file__).parents[1]))
    return subprocess.run([sys.executable, "-m", "clinepipe.cli", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("masters", [True, False], ids=["calibrated", "waiting"])
def test_run_and_report_write_no_warning_on_stderr(tmp_path, masters):
    from clinepipe.simulate import simulate_night

    sim = simulate_night(tmp_path / "night", seed=11, width=256, height=256, n_stars=100,
                         lights_per_filter=4)
    if not masters:
        for folder in list(sim.incoming.rglob("calibration")):
            shutil.rmtree(folder)
    run = _clinepipe(sim.config_path, "run")
    assert run.returncode == 0, run.stderr
    assert ("calibrated 8" if masters else "waiting 8") in run.stdout
    report = _clinepipe(sim.config_path, "report", "--output", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    for out in (run.stderr, report.stderr):
        assert "Warning" not in out and "warnings.warn" not in out, out
    assert (tmp_path / "report" / "index.html").is_file()
