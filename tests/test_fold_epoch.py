"""Issue 19 item 18: a folded light curve puts phase 0 at --epoch, else at minimum light (the
faintest point relative to its own filter), not at the first point; the web's fold agrees."""

from __future__ import annotations

import numpy as np
import pytest

from clinepipe.products.plots import fold_phase, minimum_light_epoch, plot_lightcurve

PERIOD = 0.37           # days
T_MIN = 2460736.6123    # the true time of primary minimum (BJD_TDB)


def eclipsing_rows(seed=0, n=300, noise=0.01):
    """An Algol-like binary in V and B (B 0.8 mag fainter: colour), primary eclipse 0.6 mag
    deep at T_MIN + k P, secondary 0.25 mag at phase 0.5; sampled unevenly over 4 nights,
    the first point far from an eclipse; one flagged (saturated-looking) point fainter still."""
    rng = np.random.default_rng(seed)
    t = np.sort(T_MIN - 0.9 + rng.uniform(0, 4, n))
    phase = np.mod((t - T_MIN) / PERIOD + 0.5, 1.0) - 0.5   # -0.5..0.5, 0 at primary minimum
    width = 0.04
    dip = 0.60 * np.exp(-0.5 * (phase / width) ** 2)
    sec = np.mod(phase + 1.0, 1.0) - 0.5
    dip += 0.25 * np.exp(-0.5 * (sec / width) ** 2)
    rows = []
    for i, (ti, di) in enumerate(zip(t, dip)):
        filt = "V" if i % 2 else "B"
        mag = 12.0 + (0.8 if filt == "B" else 0.0) + di + rng.normal(0, noise)
        rows.append({"jd_mid": ti - 0.004, "bjd_tdb": ti, "filter": filt, "mag": mag,
                     "mag_err": noise, "flags": 0})
    rows.append({"jd_mid": T_MIN + 0.1, "bjd_tdb": T_MIN + 0.1 + 0.004, "filter": "V",
                 "mag": 15.0, "mag_err": noise, "flags": 1})
    return rows


def _phase_distance(a, b):
    d = abs(a - b) % 1.0
    return min(d, 1.0 - d)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_minimum_light_is_the_primary_minimum(seed):
    rows = eclipsing_rows(seed)
    epoch = minimum_light_epoch(rows)
    # within the sampling of the eclipse: the faintest point is within ~0.01 in phase of the
    # true minimum (300 points over 10.8 cycles: ~0.004 phase apart per filter)
    assert _phase_distance((epoch - T_MIN) / PERIOD, 0.0) < 0.015
    first = rows[0]["bjd_tdb"]
    assert _phase_distance((first - T_MIN) / PERIOD, 0.0) > 0.1  # the old epoch was wrong


def test_fold_phase_is_zero_at_the_epoch():
    t = np.array([T_MIN, T_MIN + PERIOD, T_MIN + 0.25 * PERIOD, T_MIN - 0.25 * PERIOD])
    np.testing.assert_allclose(fold_phase(t, PERIOD, T_MIN), [0, 0, 0.25, 0.75], atol=1e-9)


def test_plot_writes_with_epoch(tmp_path):
    out = plot_lightcurve(eclipsing_rows(), tmp_path / "lc.png", fold=PERIOD, epoch=T_MIN)
    assert out.stat().st_size > 10_000


from browser import chromium  # noqa: E402


def test_lc_fold_prints_phases_from_epoch_or_minimum(tmp_path, capsys):
    from web_store import PERIOD as WEB_PERIOD
    from web_store import make_engine, populate

    from clinepipe.cli import main
    from clinepipe.store.measurement_rows import lightcurve

    db = tmp_path / "clinepipe.db"
    engine = make_engine(db)
    populate(engine, None)
    config = tmp_path / "clinepipe.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{db}"\n')
    rows = lightcurve(engine, 1)

    def lc(*extra):
        try:
            main(["--config", str(config), "lc", "1", "--fold", str(WEB_PERIOD), *extra])
        except SystemExit as exc:
            assert exc.code == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].endswith("\tphase")
        return np.array([float(line.split("\t")[-1]) for line in out[1:]])

    t = np.array([r["bjd_tdb"] for r in rows])
    epoch = float(t[5])
    phases = lc("--epoch", f"{epoch!r}")
    assert phases[5] == pytest.approx(0.0, abs=1e-4)
    np.testing.assert_allclose(phases, np.mod((t - epoch) / WEB_PERIOD, 1.0), atol=1e-4)
    # without --epoch: phase 0 at the faintest point (relative to its filter), the sine's
    # minimum of light: mag = m0 + 0.3 sin(2 pi (jd - 2460736) / P) is faintest at phase 1/4
    phases = lc()
    expected = minimum_light_epoch(rows)
    np.testing.assert_allclose(phases, np.mod((t - expected) / WEB_PERIOD, 1.0), atol=1e-4)
    true_min = 2460736.0 + 0.25 * WEB_PERIOD + 0.004  # bjd = jd + 0.004 in the fixture
    # points 0.012 d = 0.04 in phase apart: the faintest is within half of that and the noise
    assert _phase_distance((expected - true_min) / WEB_PERIOD, 0.0) < 0.05
    engine.dispose()


def test_lc_epoch_without_fold_is_refused(tmp_path, capsys):
    from clinepipe.cli import main

    config = tmp_path / "clinepipe.toml"
    db = tmp_path / "clinepipe.db"
    from web_store import make_engine, populate

    populate(make_engine(db), None)
    config.write_text(f'[database]\nurl = "sqlite:///{db}"\n')
    with pytest.raises(SystemExit) as exc:
        main(["--config", str(config), "lc", "1", "--epoch", "2460736.5"])
    assert exc.value.code == 2 and "--epoch needs --fold" in capsys.readouterr().err


def test_web_fold_puts_phase_zero_at_minimum_light(server, tmp_path):
    """The dashboard's fold (lightcurve.js) puts phase 0 where `lc --fold` does."""
    import re

    from web_store import make_engine

    from clinepipe.store.measurement_rows import lightcurve

    base, _, root = server
    result = chromium(["--dump-dom", f"{base}/stars/1#fold=0.3"], tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    m = re.search(r"phase 0 = minimum light, ([\d.]+);", result.stdout)
    assert m, result.stdout[-3000:]
    engine = make_engine(root / "clinepipe.db")
    expected = minimum_light_epoch(lightcurve(engine, 1))
    engine.dispose()
    assert float(m[1]) == pytest.approx(expected, abs=1e-5)
    assert "first point" not in result.stdout
