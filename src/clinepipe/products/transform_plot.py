"""What ``clinepipe transform --night`` shows: the fitted coefficients with their errors, the
lines to paste into ``[transform]``, and the plot of each fit (standard minus instrumental
against colour, each frame's zero point removed, with the fitted line)."""

from __future__ import annotations

import io
import math
import os

import numpy as np

from clinepipe.atomic_files import atomic_write_bytes
from clinepipe.calibrate.transform import (
    COLOUR_COEFFICIENTS,
    MAGNITUDE_COEFFICIENTS,
    Coefficient,
    NightPhotometry,
)
from clinepipe.calibrate.transform_fit import fit_points

__all__ = ["coefficient_table", "config_lines", "write_transform_plot"]


def _meaning(name: str) -> str:
    if name in MAGNITUDE_COEFFICIENTS:
        m, (p, q) = MAGNITUDE_COEFFICIENTS[name]
        return f"{m} - {m.lower()} against {p}-{q}"
    p, q = COLOUR_COEFFICIENTS[name]
    return f"{p}-{q} against {p.lower()}-{q.lower()}"


def coefficient_table(coefficients: dict[str, Coefficient]) -> list[str]:
    """One line per coefficient: name, value ± error, the fit it is the slope of, the stars
    and points used and the reduced chi-square (or why it was not fitted)."""
    lines = []
    for name, c in coefficients.items():
        if math.isfinite(c.value):
            lines.append(f"{name:6s} = {c.value:+.4f} ± {c.error:.4f}   ({_meaning(name)}; "
                         f"{c.n_stars} stars, {c.n_used} points, chi2/dof {c.chi2:.2f})")
        else:
            lines.append(f"{name:6s}   not fitted: {c.reason}")
    return lines


def config_lines(coefficients: dict[str, Coefficient], night: str) -> list[str]:
    """The ``[transform]`` section to paste into clinepipe.toml: every fitted coefficient and
    its 1-sigma error as ``<name>_sigma`` (AAVSO's Transform Generator lists the errors in an
    ``[Error]`` section; one clinepipe section holds both)."""
    lines = [f"[transform]             # fitted by clinepipe transform --night {night}"]
    for name, c in coefficients.items():
        if math.isfinite(c.value):
            lines.append(f"{name} = {c.value:.4f}")
            lines.append(f"{name}_sigma = {c.error:.4f}")
    return lines


def write_transform_plot(path: str | os.PathLike, night: NightPhotometry,
                         coefficients: dict[str, Coefficient], title: str) -> None:
    """A PNG with one panel per fitted coefficient: the comparison stars' ``y`` (standard
    minus instrumental magnitude, or standard colour) less each frame's zero point, against
    the colour, with the fitted line of slope T; points more than 4 sigma off the line are
    drawn as crosses. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fitted = [(n, c) for n, c in coefficients.items() if math.isfinite(c.value)]
    ncol = min(3, max(len(fitted), 1))
    nrow = max(1, math.ceil(len(fitted) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), dpi=100,
                             squeeze=False)
    for ax in axes.flat[len(fitted):]:
        ax.set_visible(False)
    for ax, (name, c) in zip(axes.flat, fitted):
        pts = fit_points(night, name)
        b = c.value
        w = 1.0 / np.maximum(pts.syy + b * b * pts.sxx - 2 * b * pts.sxy, 1e-12)
        _, g = np.unique(pts.group, return_inverse=True)
        sw = np.bincount(g, weights=w)
        offset = np.bincount(g, weights=w * (pts.y - b * pts.x)) / sw
        y = pts.y - offset[g]
        mean_y = float(np.sum(w * y) / np.sum(w))
        mean_x = float(np.sum(w * pts.x) / np.sum(w))
        off = np.abs(y - mean_y - b * (pts.x - mean_x)) * np.sqrt(w) > 4.0
        ax.errorbar(pts.x[~off], y[~off], yerr=np.sqrt(pts.syy[~off]), fmt="o", ms=2.5,
                    lw=0.5, alpha=0.6, color="tab:blue")
        ax.plot(pts.x[off], y[off], "x", color="tab:red", ms=4, label="clipped")
        xs = np.array([pts.x.min(), pts.x.max()])
        ax.plot(xs, mean_y + b * (xs - mean_x), "-", color="k", lw=1.2)
        kind = "magnitude" if name in MAGNITUDE_COEFFICIENTS else "colour"
        ax.set_title(f"{name} = {b:+.4f} ± {c.error:.4f}", fontsize=10)
        p, q = (MAGNITUDE_COEFFICIENTS[name][1] if kind == "magnitude"
                else COLOUR_COEFFICIENTS[name])
        m = MAGNITUDE_COEFFICIENTS[name][0] if kind == "magnitude" else ""
        ax.set_xlabel(f"{p}-{q} (catalog)" if kind == "magnitude"
                      else f"{p.lower()}-{q.lower()} (instrumental)")
        ax.set_ylabel(f"{m} - {m.lower()} - ZP (mag)" if kind == "magnitude"
                      else f"{p}-{q} - ZP (mag)")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, [buf.getvalue()])
