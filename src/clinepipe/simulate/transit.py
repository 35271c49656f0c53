"""A transiting planet on one star, and what the atmosphere and the telescope add to a
transit night: seeing- and airmass-correlated flux systematics and clouds (a drifting field
is ``drift_px_per_hour``, applied where the pointing plan is made, :mod:`.scene`).

All of it is off unless the spec asks (``transit``, ``red_noise``, ``clouds``), and draws
from its own random stream, so other simulations are unchanged.
The transit is a Mandel & Agol (2002) curve with quadratic limb darkening computed by
``batman`` (a third-party package, not the pipeline), averaged over each exposure on 1 s
steps, in BJD_TDB of the host.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import ephemeris as eph

#: spec.transit keys and defaults: a hot Jupiter around a Sun-like star
TRANSIT_DEFAULTS = {"star": None, "period": 2.5, "t0": None, "rprs": 0.12, "ars": 8.0,
                    "inc": 87.0, "u1": 0.45, "u2": 0.20, "neighbours": ()}
#: keys of one spec.transit["neighbours"] entry: a star ``sep_arcsec`` from the host at
#: position angle ``pa_deg`` (from +y towards -x of the nominal image, i.e. north through
#: east), ``dmag`` fainter in every band (same colour), eclipsed by ``depth`` (a fraction of
#: its own flux at mid-eclipse, 0 = constant) at the planet's ephemeris and shape: a
#: blended eclipsing binary that mimics the transit (a "nearby eclipsing binary", NEB)
NEIGHBOUR_KEYS = ("sep_arcsec", "pa_deg", "dmag", "depth")
#: V range of an automatically chosen host (raised if it would saturate)
HOST_V_RANGE = (11.0, 12.5)
#: second-order (colour) extinction, mag per airmass per mag of B-V: redder stars dim less
COLOUR_EXTINCTION = -0.03


@dataclass(frozen=True)
class TransitTruth:
    """The injected planet (units: d, BJD_TDB, deg); ``star`` is its host's star id."""

    star: int
    period: float
    t0: float
    rprs: float
    ars: float
    inc: float
    u1: float
    u2: float
    #: blended neighbours: dicts of NEIGHBOUR_KEYS plus their ``star`` id
    neighbours: tuple = ()

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["depth"] = self.rprs**2
        d["neighbours"] = [dict(n) for n in self.neighbours]
        d["model"] = ("batman quadratic-limb-darkened Mandel & Agol, circular orbit, averaged "
                      "over the exposure on 1 s steps; time = BJD_TDB of the host at "
                      "mid-exposure (t0 is BJD_TDB); flux_adu of the host is multiplied by it")
        return d


def transit_params(spec_transit: dict) -> dict:
    """spec.transit with defaults filled in; ValueError on unknown keys or bad values."""
    unknown = set(spec_transit) - set(TRANSIT_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown transit key(s): {', '.join(sorted(unknown))}")
    p = {**TRANSIT_DEFAULTS, **spec_transit}
    if not (p["period"] > 0 and 0 < p["rprs"] < 0.5 and p["ars"] > 1 and 0 < p["inc"] <= 90):
        raise ValueError("transit needs period > 0, 0 < rprs < 0.5, ars > 1, 0 < inc <= 90")
    for n in p["neighbours"]:
        if set(n) != set(NEIGHBOUR_KEYS) or not (n["sep_arcsec"] > 0 and 0 <= n["depth"] < 1):
            raise ValueError(f"a transit neighbour needs exactly {', '.join(NEIGHBOUR_KEYS)} "
                             "with sep_arcsec > 0 and 0 <= depth < 1")
    return p


def neighbour_flux_factor(truth: TransitTruth, depth: float, bjd_mid,
                          exptime_s: float) -> np.ndarray:
    """Relative flux of a neighbour eclipsed by ``depth`` at mid-eclipse, with the planet's
    ephemeris and the shape of its transit (exposure-averaged), 1 out of eclipse."""
    full = 1.0 - host_flux_factor(truth, [truth.t0], 0.0)[0]
    return 1.0 - depth * (1.0 - host_flux_factor(truth, bjd_mid, exptime_s)) / full


def add_neighbours(st: dict, host: int, neighbours, scale: float) -> list[dict]:
    """Append the ``neighbours`` of star ``host`` to the star arrays ``st`` (x, y 0-based
    nominal px; V, BV, VR), ``scale`` arcsec/px; returns them with their star ids."""
    out = []
    for n in neighbours:
        pa, r = np.radians(n["pa_deg"]), n["sep_arcsec"] / scale
        values = {"x": st["x"][host] - r * np.sin(pa), "y": st["y"][host] + r * np.cos(pa),
                  "V": st["V"][host] + n["dmag"], "BV": st["BV"][host], "VR": st["VR"][host]}
        for key, value in values.items():
            st[key] = np.append(st[key], value)
        out.append({**{k: float(n[k]) for k in NEIGHBOUR_KEYS}, "star": st["x"].size - 1})
    return out


def host_flux_factor(truth: TransitTruth, bjd_mid, exptime_s: float) -> np.ndarray:
    """Relative flux of the host (1 out of transit) averaged over exposures of
    ``exptime_s`` seconds centred on ``bjd_mid`` (BJD_TDB, d)."""
    import batman

    mid = np.atleast_1d(np.asarray(bjd_mid, dtype=np.float64))
    steps = max(int(round(exptime_s)), 1)
    offsets = ((np.arange(steps) + 0.5) / steps - 0.5) * exptime_s / 86400.0
    t = (mid[:, None] + offsets[None, :]).ravel()
    p = batman.TransitParams()
    p.t0, p.per, p.rp, p.a, p.inc = truth.t0, truth.period, truth.rprs, truth.ars, truth.inc
    p.ecc, p.w, p.u, p.limb_dark = 0.0, 90.0, [truth.u1, truth.u2], "quadratic"
    return batman.TransitModel(p, t).light_curve(p).reshape(mid.size, steps).mean(axis=1)


def systematics_mag(sensitivity, bv, airmass: float, fwhm_ratio: float) -> np.ndarray:
    """Per-star magnitude offset on one frame: colour extinction (mag per airmass per mag of
    B-V) and a seeing term (``sensitivity`` mag per unit relative FWHM change, each star its
    own, as blends and flat-field errors under the wings make it)."""
    return COLOUR_EXTINCTION * np.asarray(bv) * (airmass - 1.0) + sensitivity * (fwhm_ratio - 1.0)


def cloud_transparency(rng, u, depth: float) -> np.ndarray:
    """Transparency factor (<= 1) at night fractions ``u`` in [0, 1]: 2-5 passing clouds,
    each a Gaussian dip of up to ``depth`` lasting 1-4 % of the night."""
    n = int(rng.integers(2, 6))
    centres, widths = rng.uniform(0, 1, n), rng.uniform(0.01, 0.04, n)
    depths = depth * rng.uniform(0.3, 1.0, n)
    dips = depths[:, None] * np.exp(-0.5 * ((np.asarray(u)[None, :] - centres[:, None])
                                            / widths[:, None]) ** 2)
    return np.prod(1.0 - dips, axis=0)


def adjust_lights(plans, rng, spec) -> list:
    """Light plans with the clouds' transparency applied; other frames unchanged."""
    lights = [k for k, p in enumerate(plans) if p.kind == "light"]
    if not lights or spec.clouds <= 0:
        return plans
    u = np.linspace(0.0, 1.0, len(lights))
    cloud = cloud_transparency(rng, u, spec.clouds)
    out = list(plans)
    for k, c in zip(lights, cloud):
        out[k] = dataclasses.replace(plans[k], transparency=float(plans[k].transparency * c))
    return out


def default_t0(window_ms: tuple[int, int, int], ra: float, dec: float) -> float:
    """BJD_TDB of the middle of a night's dark window (the transit's default epoch)."""
    mid_ms = 0.5 * (window_ms[0] + window_ms[1])
    return round(float(eph.bjd_tdb(eph.ms_to_jd(mid_ms), ra, dec)[0]), 6)
