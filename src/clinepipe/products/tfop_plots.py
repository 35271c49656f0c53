"""The plots of a TFOP SG1 package (matplotlib, Agg): the comparison stars' light curves,
the field with the apertures (whole and zoomed on the target), the target's seeing profile
and the NEB check. Each writes one PNG atomically; the light curve with the model is
:func:`clinepipe.transits.outputs.plot_transit`."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from clinepipe.atomic_files import atomic_write_bytes

__all__ = ["plot_comparisons", "plot_field", "plot_neb", "plot_seeing_profile"]

#: colour of each NEB verdict on the field and NEB plots
VERDICT_COLOURS = {"cleared": "tab:green", "flagged": "tab:red", "not cleared": "tab:orange",
                   "not measured": "tab:brown", "too faint": "0.5"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, [buf.getvalue()])
    return Path(path)


def plot_comparisons(path, hours, target_rel, comp_rel, comp_ids, title: str = "") -> Path:
    """Target (T1) and each comparison (C2...) normalised to its median, offset downwards;
    ``hours`` from mid-transit, ``comp_rel`` (n_frames, n_comps), e.g. AstroImageJ's
    ``rel_flux_C<k>``."""
    plt = _pyplot()
    comp_rel = np.asarray(comp_rel, np.float64)
    series = [("T1 (target)", np.asarray(target_rel, np.float64))] + [
        (f"C{k} (star {sid})", comp_rel[:, k - 2]) for k, sid in enumerate(comp_ids, start=2)]
    spread = [np.nanstd(s / np.nanmedian(s)) for _, s in series]
    step = max(6.0 * float(np.nanmedian(spread)), 0.01)
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.45 * len(series)), dpi=110)
    for k, (label, s) in enumerate(series):
        y = s / np.nanmedian(s) - k * step
        ax.plot(hours, y, ".", ms=3, label=label)
        ax.text(np.nanmax(hours), 1.0 - k * step, f" {label}", fontsize=7, va="center")
    ax.set_xlabel("hours from predicted mid-transit")
    ax.set_ylabel(f"normalised flux (offsets of {step:.3f})")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_field(path, image, stars, *, radius: float, annulus=None, scale: float,
               zoom: float | None = None, neb_radius: float | None = None,
               title: str = "") -> Path:
    """The calibrated frame (square-root stretch of the 1-99.7 % range) with each star's
    aperture: ``stars`` is a list of (x, y, label, colour), 0-based pixels, the target
    first. ``zoom`` (arcsec) crops to that half-width around the target; ``neb_radius``
    (arcsec) draws the NEB search circle; ``scale`` arcsec/px."""
    from matplotlib.patches import Circle

    plt = _pyplot()
    data = np.asarray(image, np.float64)
    lo, hi = np.nanpercentile(data, [1.0, 99.7])
    shown = np.sqrt(np.clip((data - lo) / max(hi - lo, 1e-9), 0.0, 1.0))
    fig, ax = plt.subplots(figsize=(7, 7), dpi=110)
    ax.imshow(shown, origin="lower", cmap="gray_r", interpolation="nearest")
    tx, ty = stars[0][0], stars[0][1]
    for x, y, label, colour in stars:
        ax.add_patch(Circle((x, y), radius, fill=False, color=colour, lw=1))
        if annulus:
            for r in annulus:
                ax.add_patch(Circle((x, y), r, fill=False, color=colour, lw=0.5, ls=":"))
        ax.text(x + 0.75 * radius, y + 0.75 * radius, label, color=colour, fontsize=7,
                clip_on=True)
    if neb_radius:
        ax.add_patch(Circle((tx, ty), neb_radius / scale, fill=False, color="tab:blue",
                            lw=0.8, ls="--"))
    if zoom:
        half = zoom / scale
        ax.set_xlim(tx - half, tx + half)
        ax.set_ylim(ty - half, ty + half)
    else:
        ax.set_xlim(-0.5, data.shape[1] - 0.5)
        ax.set_ylim(-0.5, data.shape[0] - 0.5)
    ax.set_xlabel(f"x (px, {scale:.2f}\"/px)")
    ax.set_ylabel("y (px)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_seeing_profile(path, image, x: float, y: float, *, background: float,
                        fwhm: float, radius: float, annulus=None, scale: float,
                        title: str = "") -> Path:
    """Radial profile of the target at 0-based (x, y): each pixel's background-subtracted
    value against its distance, with a Gaussian of ``fwhm`` (px) scaled to the peak and the
    aperture radius (and annulus) marked, as AstroImageJ's seeing profile."""
    plt = _pyplot()
    data = np.asarray(image, np.float64)
    reach = int(np.ceil(max(radius, *(annulus or [0.0])) * 1.3)) + 2
    x0, x1 = max(int(x) - reach, 0), min(int(x) + reach + 1, data.shape[1])
    y0, y1 = max(int(y) - reach, 0), min(int(y) + reach + 1, data.shape[0])
    yy, xx = np.mgrid[y0:y1, x0:x1]
    r = np.hypot(xx - x, yy - y).ravel()
    v = data[y0:y1, x0:x1].ravel() - background
    peak = float(np.nanmax(v[r <= max(fwhm, 1.5)])) if np.any(r <= max(fwhm, 1.5)) else 1.0
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ax.plot(r, v / peak, ".", ms=3, color="tab:blue", label="pixels")
    if np.isfinite(fwhm) and fwhm > 0:
        grid = np.linspace(0, r.max(), 200)
        sigma = fwhm / 2.3548
        ax.plot(grid, np.exp(-0.5 * (grid / sigma) ** 2), "-", color="tab:red",
                label=f"Gaussian, FWHM {fwhm:.2f} px = {fwhm * scale:.2f}\"")
    ax.axvline(radius, color="k", lw=1, label=f"aperture {radius:g} px")
    for a in annulus or []:
        ax.axvline(a, color="k", lw=0.8, ls=":")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("radius (px)")
    ax.set_ylabel("normalised counts above the sky")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_neb(path, rows, depth: float, max_delta_mag: float, title: str = "") -> Path:
    """Left: the depth each neighbour needs against the depth seen on it (with 1-sigma
    errors) and 3x its binned rms; a star is cleared when its needed depth is above the
    3-rms mark and nothing of that depth is seen. Right: binned rms against delta-mag with
    the curve needed_depth / 3 and the faintest star that can cause the event."""
    from clinepipe.transits.neb_check import needed_depth

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8), dpi=110)
    checked = [r for r in rows if r.verdict not in ("too faint", "not measured")]
    for r in rows:
        c = VERDICT_COLOURS[r.verdict]
        right.plot(r.delta_mag, r.rms_binned, "o", color=c, ms=5)
        right.text(r.delta_mag, r.rms_binned, f" {r.star_id}", fontsize=6)
    for r in checked:
        c = VERDICT_COLOURS[r.verdict]
        left.errorbar(r.needed_depth, r.depth_seen, r.depth_seen_err, fmt="o", color=c, ms=5)
        left.plot(r.needed_depth, 3 * r.rms_binned, "v", color=c, ms=5, mfc="none")
        left.text(r.needed_depth, r.depth_seen, f" {r.star_id}", fontsize=6)
    lim = [min([depth] + [r.needed_depth for r in checked]) * 0.5, 1.2]
    for r in rows:  # no light curve: the needed depth on the axis
        if r.verdict == "not measured":
            left.plot(r.needed_depth, 0.0, "x", color=VERDICT_COLOURS[r.verdict], ms=6)
    left.plot(lim, lim, "-", color="0.5", lw=0.8, label="seen = needed")
    left.axhline(0.0, color="0.7", lw=0.8)
    left.set_xscale("log")
    left.set_xlabel("depth the star would need (fraction of its flux)")
    left.set_ylabel("depth seen (o) and 3 x 10-min rms (v)")
    for verdict, c in VERDICT_COLOURS.items():
        left.plot([], [], "o", color=c, label=verdict)
    left.legend(fontsize=7)
    dm = np.linspace(0.0, np.nanmax([max_delta_mag, 0.0] + [r.delta_mag for r in rows]) + 0.5,
                     100)
    right.plot(dm, needed_depth(depth, dm) / 3.0, "-", color="k", lw=0.8,
               label="needed depth / 3 (cleared below)")
    right.axvline(max_delta_mag, color="tab:blue", ls="--", lw=0.8,
                  label=f"faintest possible source, dm = {max_delta_mag:.2f}")
    right.set_yscale("log")
    right.set_xlabel("delta mag (star - target)")
    right.set_ylabel("10-min binned rms")
    right.legend(fontsize=7, loc="upper right")  # "best" is slow on many points
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
