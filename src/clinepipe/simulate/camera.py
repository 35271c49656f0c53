"""The detector: true bias, dark and flat images, the PSF renderer and the noise model.

PSF: a circular core Gaussian (flux fraction ``1 - a``, sigma ``s``) plus a concentric halo
Gaussian (fraction ``a``, sigma ``r s``), integrated exactly over each pixel with erf
differences (separable in x and y). A trail of length ``L`` px along x convolves it with a box,
still integrated exactly (see :func:`_trail_cdf`). The flux inside each rendered stamp is the
total flux to better than 1e-8 (stamps reach 6 halo sigmas).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from .spec import SimulationSpec

SQRT2 = math.sqrt(2.0)
SQRT2PI = math.sqrt(2.0 * math.pi)
_erf_object = np.frompyfunc(math.erf, 1, 1)


def erf(x) -> np.ndarray:
    """Element-wise error function (math.erf, exact to double precision)."""
    return np.asarray(_erf_object(np.asarray(x, dtype=np.float64)), dtype=np.float64)


# --- PSF -----------------------------------------------------------------------------------

def psf_profile(r, sigma_core: float, halo_fraction: float, halo_ratio: float):
    """Surface brightness (fraction of the flux per px^2) at radius r of the unpixelated PSF."""
    r2 = np.asarray(r, dtype=np.float64) ** 2
    out = 0.0
    for w, s in ((1 - halo_fraction, sigma_core), (halo_fraction, halo_ratio * sigma_core)):
        out = out + w * np.exp(-0.5 * r2 / s**2) / (2 * np.pi * s**2)
    return out


def fwhm_over_sigma(halo_fraction: float, halo_ratio: float) -> float:
    """FWHM / sigma_core of the (unpixelated) two-Gaussian PSF, by bisection."""
    peak = psf_profile(0.0, 1.0, halo_fraction, halo_ratio)
    lo, hi = 0.0, 10.0 * max(1.0, halo_ratio)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if psf_profile(mid, 1.0, halo_fraction, halo_ratio) > 0.5 * peak:
            lo = mid
        else:
            hi = mid
    return 2.0 * 0.5 * (lo + hi)


def core_sigma(fwhm: float, spec: SimulationSpec) -> float:
    """The sigma (binned px) of the PSF's core Gaussian that gives the whole two-Gaussian PSF of
    ``spec`` (halo fraction and width ratio) a FWHM of ``fwhm`` (binned px)."""
    return fwhm / fwhm_over_sigma(spec.halo_fraction, spec.halo_sigma_ratio)


def _gauss_cdf(u, sigma):
    return 0.5 * (1.0 + erf(u / (sigma * SQRT2)))


def _trail_cdf(u, sigma, length):
    """CDF of a Gaussian convolved with a centred box of width ``length``.

    With psi(v) = v Phi(v/s) + s phi(v/s) (so psi' = Phi), the CDF is
    (psi(u + L/2) - psi(u - L/2)) / L.
    """
    if length <= 0:
        return _gauss_cdf(u, sigma)

    def psi(v):
        return v * _gauss_cdf(v, sigma) + sigma * np.exp(-0.5 * (v / sigma) ** 2) / SQRT2PI

    return (psi(u + 0.5 * length) - psi(u - 0.5 * length)) / length


def pixel_fractions(centre, first_pixel, k, sigma, trail=0.0):
    """(n, k) fraction of each star's flux falling in pixels first_pixel .. first_pixel+k-1.

    ``centre`` is the 0-based star position along the axis (pixel i spans i-0.5 .. i+0.5).
    """
    edges = first_pixel[:, None] + np.arange(k + 1)[None, :] - 0.5 - centre[:, None]
    return np.diff(_trail_cdf(edges, sigma, trail), axis=1)


def render_stars(nx: int, ny: int, x0, y0, flux, fwhm: float, spec: SimulationSpec,
                 trail: float = 0.0):
    """Image (ny, nx) of stars of total ``flux`` (ADU) at 0-based (x0, y0), and each peak pixel.

    Returns ``(image, peak)`` where ``peak`` is each star's brightest pixel value on its own
    (including pixels that fall outside the image).
    """
    x0, y0, flux = (np.asarray(a, dtype=np.float64) for a in (x0, y0, flux))
    image = np.zeros(nx * ny, dtype=np.float64)
    peak = np.zeros(x0.size, dtype=np.float64)
    s1 = core_sigma(fwhm, spec)
    comps = ((1.0 - spec.halo_fraction, s1), (spec.halo_fraction, spec.halo_sigma_ratio * s1))
    half = int(math.ceil(6.0 * comps[1][1] + 0.5 * trail)) + 1
    k = 2 * half + 1
    # only stars whose stamp touches the image
    touch = ((x0 > -half - 1) & (x0 < nx + half) & (y0 > -half - 1) & (y0 < ny + half)
             & (flux > 0))
    idx_all = np.flatnonzero(touch)
    chunk = max(1, int(4_000_000 // (k * k)))
    ar = np.arange(k)
    for start in range(0, idx_all.size, chunk):
        idx = idx_all[start:start + chunk]
        i0 = np.rint(x0[idx]).astype(np.int64) - half
        j0 = np.rint(y0[idx]).astype(np.int64) - half
        stamp = np.zeros((idx.size, k, k))
        for w, s in comps:
            px = pixel_fractions(x0[idx], i0, k, s, trail)
            py = pixel_fractions(y0[idx], j0, k, s, 0.0)
            stamp += w * py[:, :, None] * px[:, None, :]
        stamp *= flux[idx, None, None]
        peak[idx] = stamp.max(axis=(1, 2))
        cols = i0[:, None] + ar[None, :]
        rows = j0[:, None] + ar[None, :]
        valid = ((rows >= 0) & (rows < ny))[:, :, None] & ((cols >= 0) & (cols < nx))[:, None, :]
        flat_idx = rows[:, :, None] * nx + cols[:, None, :]
        image += np.bincount(flat_idx[valid], weights=stamp[valid], minlength=nx * ny)
    return image.reshape(ny, nx), peak


def centre_pixel_fraction(fwhm: float, spec: SimulationSpec) -> float:
    """Largest fraction of a star's flux one pixel can receive (star centred on the pixel)."""
    s1 = core_sigma(fwhm, spec)
    out = 0.0
    for w, s in ((1.0 - spec.halo_fraction, s1), (spec.halo_fraction, spec.halo_sigma_ratio * s1)):
        out += w * math.erf(0.5 / (s * SQRT2)) ** 2
    return out


# --- calibration truth --------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class CameraTruth:
    """Noise-free detector images (binned, shape (ny, nx), float64)."""

    bias: np.ndarray        #: expected bias (ADU)
    dark: np.ndarray        #: dark current (ADU/s)
    hot: np.ndarray         #: bool mask of hot pixels
    flats: dict             #: filter -> flat field, median 1


def stable_int(text: str) -> int:
    """A run-independent integer from a string (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def make_camera(spec: SimulationSpec, seed: int, stream: int) -> CameraTruth:
    """The true, noise-free detector of ``spec``, binned, shape (ny, nx): bias (ADU: level, fixed
    column structure and a gentle ramp), dark current (ADU/s, with hot pixels), and one flat
    (median 1: vignetting, dust donuts, pixel response) per filter.

    ``seed`` and ``stream`` seed its own random generators (``default_rng([seed, stream, ...])``),
    so the camera does not change when other parts of the simulation draw more numbers.
    """
    nx, ny, b = spec.nx, spec.ny, spec.binning
    rng = np.random.default_rng([seed, stream, 0])
    x = np.arange(nx)
    y = np.arange(ny)
    # bias: level + fixed per-column structure + a gentle ramp along columns and rows
    columns = (rng.normal(0.0, spec.bias_column_rms, nx)
               + 1.5 * np.sin(2 * np.pi * x / max(nx, 2) * 1.3 + rng.uniform(0, 2 * np.pi)))
    rows = 0.8 * (y / max(ny - 1, 1) - 0.5)
    bias = spec.bias_level + columns[None, :] + rows[:, None]
    # dark: uniform current plus hot pixels
    rng = np.random.default_rng([seed, stream, 1])
    dark = np.full((ny, nx), spec.dark_current)
    n_hot = int(round(spec.hot_pixel_fraction * nx * ny))
    hot = np.zeros((ny, nx), bool)
    if n_hot:
        where = rng.choice(nx * ny, size=n_hot, replace=False)
        lo, hi = spec.hot_pixel_rate
        dark.ravel()[where] = np.exp(rng.uniform(math.log(lo), math.log(hi), n_hot))
        hot.ravel()[where] = True
    # flat: vignetting x dust donuts (on the window: all filters; on a filter: that one) x PRNU
    rng = np.random.default_rng([seed, stream, 2])
    xc = (nx - 1) / 2 + rng.normal(0, 0.03 * nx)
    yc = (ny - 1) / 2 + rng.normal(0, 0.03 * ny)
    corner2 = max((xc) ** 2, (nx - 1 - xc) ** 2) + max(yc ** 2, (ny - 1 - yc) ** 2)
    r2 = (x[None, :] - xc) ** 2 + (y[:, None] - yc) ** 2
    vignette = 1.0 - spec.vignetting * r2 / corner2
    prnu = 1.0 + rng.normal(0.0, spec.prnu, (ny, nx))
    common = _donuts(rng, nx, ny, b, 2)
    flats = {}
    for filt in spec.filters:
        frng = np.random.default_rng([seed, stream, 3, stable_int(filt)])
        flat = vignette * prnu * common * _donuts(frng, nx, ny, b, int(frng.integers(2, 4)))
        flats[filt] = flat / np.median(flat)
    return CameraTruth(bias=bias, dark=dark, hot=hot, flats=flats)


def _donuts(rng, nx, ny, binning, n) -> np.ndarray:
    """Out-of-focus dust shadows: soft annuli of 2-5% depth, 25-70 unbinned px in radius."""
    out = np.ones((ny, nx))
    for _ in range(n):
        cx, cy = rng.uniform(0, nx), rng.uniform(0, ny)
        r_out = rng.uniform(25.0, 70.0) / binning
        r_in = 0.45 * r_out
        depth = rng.uniform(0.02, 0.05)
        w = max(0.08 * r_out, 0.3)
        x_lo, x_hi = max(0, int(cx - r_out - 6 * w)), min(nx, int(cx + r_out + 6 * w) + 1)
        y_lo, y_hi = max(0, int(cy - r_out - 6 * w)), min(ny, int(cy + r_out + 6 * w) + 1)
        if x_lo >= x_hi or y_lo >= y_hi:
            continue
        xx = np.arange(x_lo, x_hi)[None, :] - cx
        yy = np.arange(y_lo, y_hi)[:, None] - cy
        r = np.sqrt(xx * xx + yy * yy)
        ring = 1.0 / (1.0 + np.exp(-(r_out - r) / w)) / (1.0 + np.exp(-(r - r_in) / w))
        out[y_lo:y_hi, x_lo:x_hi] *= 1.0 - depth * ring
    return out


# --- noise ---------------------------------------------------------------------------------

def cosmic_rays(rng, nx: int, ny: int, seconds: float, spec: SimulationSpec) -> np.ndarray:
    """An (ny, nx) image of cosmic-ray hits (ADU): 1-3 adjacent pixels per hit."""
    out = np.zeros((ny, nx))
    mpix = nx * ny * spec.binning**2 / 1e6
    n = int(rng.poisson(spec.cr_rate * seconds / 100.0 * mpix))
    if n == 0:
        return out
    lo, hi = spec.cr_energy
    energy = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
    npix = rng.integers(1, 4, n)
    x = rng.integers(0, nx, n)
    y = rng.integers(0, ny, n)
    steps = np.array([(1, 0), (0, 1), (1, 1), (-1, 0), (0, -1)])
    for j in range(3):  # pixel j of each hit walks one step from the previous one
        use = npix > j
        share = rng.uniform(0.3, 1.0, n)
        if j:
            step = steps[rng.integers(0, len(steps), n)]
            x = np.clip(x + step[:, 0], 0, nx - 1)
            y = np.clip(y + step[:, 1], 0, ny - 1)
        np.add.at(out, (y[use], x[use]), (energy * share / npix)[use] * (1.5 if j == 0 else 1.0))
    return out


def expose(rng, light_adu, dark_adu, bias, spec: SimulationSpec, cr_adu=None) -> np.ndarray:
    """Raw uint16 frame: Poisson(gain (light + dark)) e- + read noise, / gain, + bias, + CRs.

    ``light_adu`` is what reached the pixel after the flat (sky + stars, ADU); ``dark_adu`` the
    dark charge (ADU); both may be scalars or arrays.
    """
    g = spec.gain
    lam = np.clip(g * (np.asarray(light_adu) + np.asarray(dark_adu)), 0.0, None)
    lam = np.broadcast_to(lam, bias.shape)
    electrons = rng.poisson(lam).astype(np.float64)
    electrons += rng.normal(0.0, spec.read_noise, bias.shape)
    adu = electrons / g + bias
    if cr_adu is not None:
        adu += cr_adu
    return np.clip(np.rint(adu), 0, spec.saturation).astype(np.uint16)
