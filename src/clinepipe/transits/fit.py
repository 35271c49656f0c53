"""Fit one night's transit: mid-time, Rp/Rs, a/Rs and inclination together with the
detrending and an error scale, by maximum likelihood and then emcee to convergence.

The model of the (normalised) differential flux is

    F(t) = T(t; tmid, rprs, ars, inc) * E(t) * (c0 + c1 X'(t) + sum_k d_k v_k(t))

with T the exposure-averaged Mandel-Agol curve (:mod:`.model`), X' = airmass - its mean, v_k
the other detrending vectors (sky, FWHM, x, y) standardised, and E = exp(a X') for the
exponential airmass model (else 1, and c1 is used). The linear coefficients c, d are
marginalised analytically (flat priors; exact for a Gaussian likelihood), so the MCMC samples
only the non-linear parameters (tmid, rprs, ars, b = ars cos i, ln beta [, a]) and their
errors include the correlation with the detrending. ``beta`` multiplies every point's error
(the "jitter"): it settles above 1 when the residuals scatter more than the errors say.

Correlated ("red") noise -- seeing, guiding, colour-dependent extinction -- survives
averaging, which a white-noise likelihood does not know: its errors are then too small.
The time-averaging method (Pont, Zucchetti & Queloz 2006, MNRAS 373, 231; Winn et al.
2008, ApJ 683, 1076) measures it from the residuals: binned over N points, white residuals
scatter sigma_1 / sqrt(N); the ratio of the measured to that scatter, the median over bins
of 0.5-2 ingress durations, is ``beta_red`` (>= 1). Every per-point error is inflated by
it, which for this posterior (the shape of the likelihood fixed, its width proportional to
the errors) widens the samples of the transit parameters about their median by the same
factor, so that is how it is applied.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from clinepipe.errors import BadInput
from clinepipe.transits.model import TransitCurve, total_duration

__all__ = [
    "DETREND_VECTORS",
    "TransitFit",
    "TransitRefused",
    "check_coverage",
    "fit_transit",
    "ingress_duration",
    "table_priors",
    "time_averaged_beta",
]

MINUTES_PER_DAY = 1440.0
#: detrending names: "airmass" (linear) or "airmass_exp" (exponential), plus these vectors
DETREND_VECTORS = ("sky", "fwhm", "x", "y")
#: bin widths of the time-averaging method, in ingress durations
BETA_BIN_INGRESS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
#: fewest bins a width needs to take part
BETA_MIN_BINS = 6
#: widths of the Gaussian priors built from transits.csv, which carries no errors: loose
#: enough that a night's own data decide when they can
PRIOR_ARS_FRACTION = 0.10
PRIOR_INC_DEG = 1.5


class TransitRefused(BadInput):
    """The night cannot give a transit fit (no transit in the data, or too little baseline)."""


@dataclass(frozen=True, eq=False)
class TransitFit:
    """The result of :func:`fit_transit`. Times BJD_TDB (d), angles deg, durations d.

    Values are posterior medians, ``*_err`` half the 16-84 % range. Arrays are per point of the
    fitted light curve (after dropping non-finite points): ``flux`` normalised differential
    flux, ``flux_err`` its input errors (not scaled by ``error_scale``), ``model`` the full
    model of ``flux``, ``transit_model`` T(t), ``systematics`` the detrending factor,
    ``detrended`` = flux / systematics, ``residuals`` = detrended - transit_model.
    ``error_scale`` is the white-noise factor sampled with the fit, ``red_noise_beta`` the
    time-averaging factor (>= 1) the parameter errors were widened by.
    """

    tmid: float
    tmid_err: float
    rprs: float
    rprs_err: float
    depth: float
    depth_err: float
    ars: float
    ars_err: float
    inc: float
    inc_err: float
    b: float
    b_err: float
    duration: float
    duration_err: float
    predicted_tmid: float
    oc_minutes: float
    oc_err_minutes: float
    rms_residual: float
    error_scale: float
    error_scale_err: float
    red_noise_beta: float
    chi2_red: float
    n_points: int
    period: float
    u: tuple[float, float]
    exptime_s: float
    detrend: tuple[str, ...]
    detrend_coefficients: dict
    n_walkers: int
    n_steps: int
    autocorr_steps: float
    converged: bool
    time: np.ndarray = field(repr=False)
    flux: np.ndarray = field(repr=False)
    flux_err: np.ndarray = field(repr=False)
    airmass: np.ndarray = field(repr=False)
    model: np.ndarray = field(repr=False)
    transit_model: np.ndarray = field(repr=False)
    systematics: np.ndarray = field(repr=False)
    detrended: np.ndarray = field(repr=False)
    residuals: np.ndarray = field(repr=False)
    vectors: dict = field(repr=False, default_factory=dict)


def table_priors(ars: float | None = None, inc: float | None = None) -> dict:
    """Gaussian priors ``{name: (mean, sigma)}`` from a transits.csv row's a/Rs and inclination
    (deg): sigma 10 % of a/Rs and 1.5 deg, as the table carries no errors."""
    priors = {}
    if ars is not None and np.isfinite(ars):
        priors["ars"] = (float(ars), PRIOR_ARS_FRACTION * float(ars))
    if inc is not None and np.isfinite(inc):
        priors["inc"] = (float(inc), PRIOR_INC_DEG)
    return priors


def check_coverage(time, predicted_tmid: float, duration: float,
                   min_baseline_min: float = 20.0) -> None:
    """Raise :class:`TransitRefused` unless points fall inside the predicted transit and
    ``min_baseline_min`` minutes of out-of-transit data lie on both sides.

    Parameters
    ----------
    time : array
        Mid-exposure times (BJD_TDB, d).
    predicted_tmid, duration : float
        Predicted mid-time (BJD_TDB, d) and first-to-fourth-contact duration (d).
    """
    t = np.asarray(time, dtype=np.float64)
    ingress, egress = predicted_tmid - 0.5 * duration, predicted_tmid + 0.5 * duration
    if not np.any((t > ingress) & (t < egress)):
        raise TransitRefused(
            f"no transit in the data: the frames span BJD {t.min():.5f}-{t.max():.5f} and the "
            f"predicted transit {ingress:.5f}-{egress:.5f}.", reason="no transit in the data")
    before = (ingress - t[t <= ingress].min()) * MINUTES_PER_DAY if np.any(t <= ingress) else 0.0
    after = (t[t >= egress].max() - egress) * MINUTES_PER_DAY if np.any(t >= egress) else 0.0
    if min(before, after) < min_baseline_min:
        raise TransitRefused(
            f"too little out-of-transit baseline: {before:.0f} min before ingress and "
            f"{after:.0f} min after egress, the fit needs {min_baseline_min:.0f} min on both "
            "sides.", reason="short out-of-transit baseline")


def ingress_duration(period, rprs, ars, inc_deg) -> float:
    """First-to-second-contact duration (d) of a circular orbit: (T14 - T23) / 2 (Winn 2010,
    eqs. 14-15); T23 = 0 for a grazing transit, whose ingress is then T14 / 2."""
    t14 = float(total_duration(period, rprs, ars, inc_deg))
    b = ars * math.cos(math.radians(inc_deg))
    inner = (1.0 - rprs) ** 2 - b**2
    if inner <= 0.0:
        return 0.5 * t14
    t23 = period / math.pi * math.asin(min(math.sqrt(inner) / (ars * math.sin(math.radians(inc_deg))), 1.0))
    return 0.5 * (t14 - t23)


def time_averaged_beta(time, residuals, sigma, timescale: float,
                       factors=BETA_BIN_INGRESS, min_bins: int = BETA_MIN_BINS) -> float:
    """The red-noise factor beta (>= 1) of the time-averaging method.

    Parameters
    ----------
    time : array (n,)
        Times (d), sorted.
    residuals, sigma : array (n,)
        Residuals of the best fit and their per-point 1-sigma errors (same unit).
    timescale : float
        The time scale that matters (d): the ingress duration.
    factors : sequence of float
        Bin widths in units of ``timescale``.
    min_bins : int
        A width with fewer whole bins is skipped.

    Returns
    -------
    float
        ``max(1, median_N(sigma_N / (sigma_1 / sqrt(N))))`` over the bin sizes N (points),
        sigma_1 the scatter of the normalised residuals and sigma_N that of their means in
        consecutive bins of N (unbiased variances, so white noise gives ~1); 1 when no bin
        size qualifies.
    """
    z = np.asarray(residuals, np.float64) / np.asarray(sigma, np.float64)
    t = np.asarray(time, np.float64)
    if z.size < 2 * min_bins or not timescale > 0:
        return 1.0
    cadence = float(np.median(np.diff(t)))
    sigma_1 = float(np.std(z, ddof=1))
    betas = []
    for n in sorted({int(round(f * timescale / cadence)) for f in factors}):
        m = z.size // n if n >= 2 else 0
        if m < min_bins:
            continue
        means = z[: m * n].reshape(m, n).mean(axis=1)
        betas.append(float(np.std(means, ddof=1)) / (sigma_1 / math.sqrt(n)))
    return max(1.0, float(np.median(betas))) if betas else 1.0


class _Posterior:
    """log-posterior of the non-linear parameters, the linear ones marginalised."""

    def __init__(self, t, f, sigma, airmass, vectors, period, u, exptime_s, exp_airmass,
                 priors, t_bounds):
        self.curve = TransitCurve(t, period, u, exptime_s)
        self.f, self.sigma = f, sigma
        self.x_air = airmass - airmass.mean()
        columns = [np.ones_like(t)] + ([] if exp_airmass else [self.x_air])
        for v in vectors:
            columns.append((v - v.mean()) / (v.std() or 1.0))
        self.basis = np.column_stack(columns)
        self.exp_airmass = exp_airmass
        self.priors = priors
        self.t_bounds = t_bounds
        self.sum_log_sigma = float(np.sum(np.log(sigma)))

    def unpack(self, theta):
        """(tmid, rprs, ars, b, ln_beta, a_exp) columns of theta (m, ndim)."""
        theta = np.atleast_2d(theta)
        a_exp = theta[:, 5] if self.exp_airmass else np.zeros(theta.shape[0])
        return theta[:, 0], theta[:, 1], theta[:, 2], theta[:, 3], theta[:, 4], a_exp

    def log_prior(self, theta) -> np.ndarray:
        """log-prior of each row of theta (m, ndim); -inf outside the bounds."""
        tmid, rprs, ars, b, ln_beta, a_exp = self.unpack(theta)
        inside = ((self.t_bounds[0] < tmid) & (tmid < self.t_bounds[1]) & (0.001 < rprs)
                  & (rprs < 0.5) & (1.2 < ars) & (ars < 300.0) & (0.0 <= b) & (b < 1.0 + rprs)
                  & (-2.5 < ln_beta) & (ln_beta < 2.5) & (-2.0 < a_exp) & (a_exp < 2.0))
        lp = np.zeros(ars.shape)
        ars = np.where(inside, ars, 10.0)  # harmless values where the prior is zero anyway
        b = np.where(inside, b, 0.0)
        inc = np.degrees(np.arccos(np.clip(b / ars, -1.0, 1.0)))
        values = {"rprs": rprs, "ars": ars, "inc": inc, "b": b}
        for name, (mean, sig) in self.priors.items():
            lp = lp - 0.5 * ((values[name] - mean) / sig) ** 2
        if "inc" in self.priors:
            # the walkers move in b; a prior density in inc needs |d inc / d b| = 1/(a sin i)
            lp = lp - np.log(ars * np.sin(np.radians(inc)))
        return np.where(inside, lp, -np.inf)

    def solve(self, theta):
        """(transit, systematics, coefficients, chi2, log-likelihood) for each row of theta;
        the linear algebra is batched over the rows, batman runs once per row."""
        tmid, rprs, ars, b, ln_beta, a_exp = self.unpack(theta)
        with np.errstate(invalid="ignore", divide="ignore"):  # walkers outside the prior (b > a/Rs):
            inc = np.degrees(np.arccos(b / ars))                # NaN, rejected by its -inf log prior
        transit = np.array([self.curve(*p) for p in zip(tmid, rprs, ars, inc)])
        envelope = transit * np.exp(a_exp[:, None] * self.x_air[None, :])
        design = envelope[:, :, None] * self.basis[None, :, :]          # (m, n, k)
        w = np.exp(-2.0 * ln_beta)[:, None] / self.sigma[None, :] ** 2  # (m, n)
        weighted = design * w[:, :, None]
        normal = np.einsum("mnk,mnl->mkl", weighted, design)
        coeffs = np.linalg.solve(normal, np.einsum("mnk,n->mk", weighted, self.f)[..., None])
        model = np.einsum("mnk,mk->mn", design, coeffs[..., 0])
        chi2 = np.sum(w * (self.f[None, :] - model) ** 2, axis=1)
        logdet = np.linalg.slogdet(normal)[1]
        loglike = -0.5 * chi2 - self.f.size * ln_beta - self.sum_log_sigma - 0.5 * logdet
        systematics = model / transit
        return transit, systematics, coeffs[..., 0], chi2, loglike

    def __call__(self, theta) -> np.ndarray:
        """log-posterior of each row of theta (m, ndim) (emcee's vectorize=True)."""
        theta = np.atleast_2d(theta)
        lp = self.log_prior(theta)
        ok = np.isfinite(lp)
        if ok.any():
            lp[ok] += self.solve(theta[ok])[4]
        return lp

    def scalar(self, theta) -> float:
        return float(self(theta)[0])


def _start(post: _Posterior, tmid0, rprs0, ars0, b0, duration, exp_airmass):
    """Maximum-likelihood start: a grid over tmid, then Nelder-Mead on all parameters."""
    from scipy.optimize import minimize

    extra = [0.0] if exp_airmass else []
    grid = tmid0 + np.linspace(-0.5, 0.5, 41) * duration
    thetas = np.array([[tm, rprs0, ars0, b0, 0.0] + extra for tm in grid])
    best = thetas[int(np.argmax(post(thetas)))]

    def cost(theta):
        value = post.scalar(theta)
        return -value if np.isfinite(value) else 1e25

    result = minimize(cost, best, method="Nelder-Mead",
                      options={"maxiter": 4000, "xatol": 1e-7, "fatol": 1e-4})
    return result.x if np.isfinite(post.scalar(result.x)) else best


def _laplace_covariance(post: _Posterior, centre, steps):
    """Inverse of the negative Hessian of the log-posterior at ``centre`` by central
    differences of ``steps`` (one batched call); None when it is not positive definite or a
    difference leaves the prior."""
    n = centre.size
    e = np.diag(steps)
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    signs = ((1, 1), (1, -1), (-1, 1), (-1, -1))
    points = np.array([centre + si * e[i] + sj * e[j] for i, j in pairs for si, sj in signs])
    values = post(points).reshape(len(pairs), 4)
    if not np.all(np.isfinite(values)):
        return None
    hessian = np.zeros((n, n))
    for (i, j), (pp, pm, mp, mm) in zip(pairs, values):
        hessian[i, j] = hessian[j, i] = (pp - pm - mp + mm) / (4.0 * steps[i] * steps[j])
    try:
        cov = np.linalg.inv(-hessian)
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return None
    return cov


def fit_transit(time_bjd, flux, flux_err, airmass, *, period: float, t0_guess: float,
                duration: float | None = None, rprs_guess: float | None = None,
                priors: Mapping[str, tuple[float, float]] | None = None,
                detrend=("airmass",), vectors: Mapping[str, np.ndarray] | None = None,
                exptime: float = 0.0, ld=(0.4, 0.25), min_baseline_min: float = 20.0,
                n_walkers: int = 32, max_steps: int = 20000, check_every: int = 200,
                tau_factor: float = 50.0, tau_rtol: float = 0.05, red_noise: bool = True,
                seed: int | None = None) -> TransitFit:
    """Fit a transit and its detrending to one night's differential light curve.

    Parameters
    ----------
    time_bjd, flux, flux_err, airmass : arrays (n,)
        Mid-exposure BJD_TDB (d), differential flux (any scale; normalised here by its
        out-of-transit median), its 1-sigma error (same scale), airmass (sec z).
    period : float
        Orbital period (d).
    t0_guess : float
        Predicted mid-time of this transit (BJD_TDB, d); O-C is measured against it.
    duration : float, optional
        Predicted first-to-fourth-contact duration (d); default from the starting a/Rs, b.
    rprs_guess : float, optional
        Starting Rp/Rs (default 0.1); Rp/Rs itself has a flat prior on (0.001, 0.5).
    priors : mapping, optional
        Gaussian priors ``{name: (mean, sigma)}`` on ``"ars"``, ``"inc"`` (deg), ``"b"`` or
        ``"rprs"`` (see :func:`table_priors`); others are flat.
    detrend : sequence of str
        ``"airmass"`` (linear) or ``"airmass_exp"`` (exponential) and any of
        :data:`DETREND_VECTORS`, whose arrays come in ``vectors``.
    exptime : float
        Exposure time (s) over which the model is averaged.
    ld : (float, float) or LimbDarkening
        Quadratic limb-darkening coefficients (held fixed).
    min_baseline_min : float
        Out-of-transit minutes required on both sides of the predicted transit.
    n_walkers, max_steps, check_every, tau_factor, tau_rtol :
        emcee: converged when the chain is longer than ``tau_factor`` autocorrelation times
        and the estimate changed by less than ``tau_rtol`` since the last check.
    red_noise : bool
        Widen the errors by the time-averaging factor beta (see the module docstring).
    seed : int, optional
        Seed of the walkers' start and moves.

    Returns
    -------
    TransitFit

    Raises
    ------
    TransitRefused
        No point in the predicted transit, or too little baseline before or after it.
    BadInput
        Unknown detrending names, missing vectors or fewer than 20 usable points.
    """
    import emcee

    from clinepipe.transits.snooker import SnookerMove

    t = np.asarray(time_bjd, dtype=np.float64)
    f = np.asarray(flux, dtype=np.float64)
    e = np.asarray(flux_err, dtype=np.float64)
    x = np.asarray(airmass, dtype=np.float64)
    vectors = {k: np.asarray(v, dtype=np.float64) for k, v in (vectors or {}).items()}
    detrend = tuple(detrend)
    unknown = [d for d in detrend if d not in ("airmass", "airmass_exp") + DETREND_VECTORS]
    if unknown or ("airmass" in detrend and "airmass_exp" in detrend):
        raise BadInput(f"unknown or conflicting detrending {', '.join(unknown) or 'airmass'}: use "
                       f"airmass or airmass_exp and {', '.join(DETREND_VECTORS)}.",
                       reason="bad detrend")
    names = [d for d in detrend if d in DETREND_VECTORS]
    missing = [d for d in names if d not in vectors or vectors[d].shape != t.shape]
    if missing:
        raise BadInput(f"detrending by {', '.join(missing)} needs a vector per point.",
                       reason="bad detrend")
    good = np.isfinite(t) & np.isfinite(f) & np.isfinite(e) & (e > 0) & np.isfinite(x)
    for d in names:
        good &= np.isfinite(vectors[d])
    if good.sum() < 20:
        raise BadInput(f"only {int(good.sum())} usable points in the light curve (20 needed).",
                       reason="too few points")
    order = np.argsort(t[good])
    t, f, e, x = (a[good][order] for a in (t, f, e, x))
    vec = {d: vectors[d][good][order] for d in names}
    u = tuple(float(c) for c in (ld.u if hasattr(ld, "u") else ld))
    priors = dict(priors or {})

    rprs0 = float(rprs_guess) if rprs_guess else 0.1
    b0 = 0.3
    if "ars" in priors:
        ars0 = priors["ars"][0]
    elif duration:
        ars0 = math.sqrt((1 + rprs0) ** 2 - b0**2) / math.sin(math.pi * duration / period)
    else:  # a Sun-like host: a/Rs = 4.2 P^(2/3), P in days
        ars0 = 4.2 * period ** (2.0 / 3.0)
    if "inc" in priors:
        b0 = min(ars0 * math.cos(math.radians(priors["inc"][0])), 0.9)
    if duration is None:
        duration = float(total_duration(period, rprs0, ars0, math.degrees(math.acos(b0 / ars0))))
    check_coverage(t, t0_guess, duration, min_baseline_min)

    oot = np.abs(t - t0_guess) > 0.5 * duration
    scale = float(np.median(f[oot]))
    f, e = f / scale, e / scale
    exp_airmass = "airmass_exp" in detrend
    post = _Posterior(t, f, e, x, [vec[d] for d in names], period, u, exptime, exp_airmass,
                      priors, (t0_guess - duration, t0_guess + duration))
    start = _start(post, t0_guess, rprs0, ars0, b0, duration, exp_airmass)

    rng = np.random.default_rng(seed)
    ndim = start.size
    spread = np.array([2e-4, 2e-3, 0.02 * start[2], 0.02, 0.02] + [0.01] * (ndim - 5))
    # walkers start spread like the posterior (its Laplace approximation), so the ensemble
    # does not have to grow into the a/Rs-b valley from a small ball, which a finite chain
    # may not finish (too narrow errors)
    cov = _laplace_covariance(post, start, 0.5 * spread)
    if cov is not None:
        p0 = rng.multivariate_normal(start, cov, size=n_walkers, method="eigh")
    else:
        p0 = start + spread * rng.standard_normal((n_walkers, ndim))
    p0[:, 3] = np.abs(p0[:, 3])
    for i in range(n_walkers):  # pull any walker started outside the prior back in
        while not np.isfinite(post.scalar(p0[i])):
            p0[i] = start + 0.1 * spread * rng.standard_normal(ndim)
            p0[i, 3] = abs(p0[i, 3])
    # emcee's own DESnookerMove (3.1.6) does not keep the posterior (chains 3.5 % narrow,
    # tails 13 % light at this share, which cost Rp/Rs its 2-sigma coverage): a corrected
    # one (.snooker) helps along the curved a/Rs - b valley without that bias
    sampler = emcee.EnsembleSampler(n_walkers, ndim, post, vectorize=True,
                                    moves=[(emcee.moves.DEMove(), 0.8), (SnookerMove(), 0.2)])
    sampler.random_state = np.random.RandomState(int(rng.integers(2**31))).get_state()
    old_tau, converged, tau = np.inf, False, np.full(ndim, np.nan)
    for _ in sampler.sample(p0, iterations=max_steps):
        it = sampler.iteration
        if it % check_every:
            continue
        tau = sampler.get_autocorr_time(tol=0)
        converged = bool(np.all(tau * tau_factor < it)
                         and np.all(np.abs(old_tau - tau) < tau_rtol * tau))
        if converged:
            break
        old_tau = tau
    tau_max = float(np.nanmax(tau)) if np.all(np.isfinite(tau)) else float(sampler.iteration)
    burn = min(int(3 * tau_max), sampler.iteration // 2)
    thin = max(1, int(tau_max / 2))
    chain = sampler.get_chain(discard=burn, thin=thin, flat=True)
    return _summarise(post, chain, t, f, e, x, vec, names, detrend, period, t0_guess, u, exptime,
                      n_walkers, sampler.iteration, tau_max, converged, red_noise)


def _red_noise_widened(post, chain, t, f, e, period):
    """(chain with the transit parameters widened about their median by beta_red, beta_red)."""
    median = np.median(chain, axis=0)
    transit, systematics = (v[0] for v in post.solve(median)[:2])
    inc = math.degrees(math.acos(min(median[3] / median[2], 1.0)))
    beta = time_averaged_beta(t, f - transit * systematics, e,
                              ingress_duration(period, median[1], median[2], inc))
    if beta > 1.0:
        chain = chain.copy()
        chain[:, :4] = median[:4] + beta * (chain[:, :4] - median[:4])
        chain[:, 3] = np.abs(chain[:, 3])  # b >= 0: reflected at the grazing-free edge
    return chain, beta


def _summarise(post, chain, t, f, e, x, vec, names, detrend, period, t0_guess, u, exptime,
               n_walkers, n_steps, tau_max, converged, red_noise=True) -> TransitFit:
    beta_red = 1.0
    if red_noise:
        chain, beta_red = _red_noise_widened(post, chain, t, f, e, period)
    tmid, rprs, ars, b, ln_beta = (chain[:, k] for k in range(5))
    inc = np.degrees(np.arccos(np.clip(b / ars, -1.0, 1.0)))
    dur = total_duration(period, rprs, ars, inc)

    def stat(v):
        lo, med, hi = np.percentile(v, [15.865, 50.0, 84.135])
        return float(med), float(0.5 * (hi - lo))

    median = np.median(chain, axis=0)
    transit, systematics, coeffs, _, _ = (v[0] for v in post.solve(median))
    detrended = f / systematics
    residuals = detrended - transit
    beta = np.exp(ln_beta)
    coef_names = ["c0"] + ([] if post.exp_airmass else ["airmass"]) + list(names)
    coefficients = dict(zip(coef_names, (float(c) for c in coeffs)))
    if post.exp_airmass:
        coefficients["airmass_exp"] = stat(chain[:, 5])[0]
    out = {name: stat(v) for name, v in (("tmid", tmid), ("rprs", rprs), ("depth", rprs**2),
                                         ("ars", ars), ("inc", inc), ("b", b),
                                         ("duration", dur), ("beta", beta))}
    return TransitFit(
        tmid=out["tmid"][0], tmid_err=out["tmid"][1], rprs=out["rprs"][0],
        rprs_err=out["rprs"][1], depth=out["depth"][0], depth_err=out["depth"][1],
        ars=out["ars"][0], ars_err=out["ars"][1], inc=out["inc"][0], inc_err=out["inc"][1],
        b=out["b"][0], b_err=out["b"][1], duration=out["duration"][0],
        duration_err=out["duration"][1], predicted_tmid=float(t0_guess),
        oc_minutes=(out["tmid"][0] - t0_guess) * MINUTES_PER_DAY,
        oc_err_minutes=out["tmid"][1] * MINUTES_PER_DAY,
        rms_residual=float(np.std(residuals)), error_scale=out["beta"][0],
        error_scale_err=out["beta"][1], red_noise_beta=float(beta_red),
        chi2_red=float(np.sum((residuals * systematics / e) ** 2) / max(t.size - chain.shape[1]
                                                                         - len(coeffs), 1)),
        n_points=int(t.size), period=float(period), u=u, exptime_s=float(exptime),
        detrend=detrend, detrend_coefficients=coefficients, n_walkers=n_walkers,
        n_steps=int(n_steps), autocorr_steps=tau_max, converged=converged,
        time=t, flux=f, flux_err=e, airmass=x, model=transit * systematics,
        transit_model=transit, systematics=systematics, detrended=detrended,
        residuals=residuals, vectors=vec)
