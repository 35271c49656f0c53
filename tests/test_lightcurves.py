"""Light-curve plots (``clinepipe.lightcurves``)."""

from __future__ import annotations


def test_light_curve_plot_draws_flagged_points_apart(tmp_path, monkeypatch):
    """Saturated or blended measurements are drawn as their own (open-circle) series, so a
    student does not read a saturated star's jumps as variability."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from clinepipe.products.plots import plot_lightcurve

    labels = []

    def record(fig, *args, **kwargs):
        legend = fig.axes[0].get_legend()
        labels.extend(t.get_text() for t in legend.get_texts())
        series = [c for c in fig.axes[0].containers]
        labels.append(f"{len(series)} series")
        return original(fig, *args, **kwargs)

    original = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", record)
    rows = [{"filter": "V", "jd_mid": 2460000.5 + k / 50, "bjd_tdb": None, "mag": 11.0 + 0.01 * k,
             "mag_err": 0.01, "flags": 1 if k == 3 else 0} for k in range(8)]
    rows += [{"filter": "R", "jd_mid": 2460000.5 + k / 50, "bjd_tdb": None, "mag": 10.0,
              "mag_err": 0.01, "flags": 8} for k in range(3)]  # every R point blended
    for fold in (None, 0.05):
        labels.clear()
        out = plot_lightcurve(rows, tmp_path / f"lc_{fold}.png", fold=fold)
        assert out.stat().st_size > 0
        assert labels == ["R flagged (3)" if fold is None else "R flagged (6)", "V",
                          "V flagged (1)" if fold is None else "V flagged (2)", "3 series"]
