"""The :class:`Simulator`: one star field and one camera, the plan of every night, and the
rendering of each planned frame into raw data, a header and its truth.

Random streams are ``numpy.random.default_rng([seed, STREAM, ...])``, so each part (field,
camera, a night's plan, one frame's noise) depends only on the seed and its own key: the same
seed and spec give identical files, and e.g. more lights do not change the star field.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.table import Table

from .. import __version__
from . import camera as cam
from . import ephemeris as eph
from . import transit as tr
from .field import (
    EB_MODEL,
    EB_TYPE,
    PULSATOR_MODEL,
    PULSATOR_TYPE,
    catalog_errors,
    header_roundtrip,
    make_stars,
    nominal_wcs,
    place_isolated,
    true_light_curve,
    wcs_cards,
    wcs_from_header,
)
from .scintillation import young_scintillation
from .spec import SimulationSpec
from .styles import drift_vector, widen_field
from .tycho import index_field

# random streams
S_FIELD, S_CAMERA, S_VAR, S_CATALOG, S_PLAN, S_NOISE, S_SRC, S_TRANSIT = 1, 2, 3, 4, 5, 6, 7, 8
S_SCINT = 9
KIND_CODE = {"bias": 1, "dark": 2, "flat": 3, "light": 4}
IMAGETYP = {"bias": "Bias Frame", "dark": "Dark Frame", "flat": "Flat Field",
            "light": "Light Frame"}
INSTRUMENT = "SBIG STF-8300 3 CCD Camera"
NAN = float("nan")


@dataclass(frozen=True)
class FramePlan:
    """Everything that defines one raw frame (before noise). Times are integer UTC ms."""

    kind: str                 #: "bias", "dark", "flat" or "light"
    night_index: int          #: 0-based night
    night: str                #: YYYYMMDD, local date of the evening
    index: int                #: 0-based sequence number among this night's frames of this kind
    file: str                 #: path relative to incoming (POSIX separators)
    filter: str               #: "" for bias and dark
    exptime: float            #: s
    start_ms: int             #: DATE-OBS as ms since 1970-01-01 UTC
    ccd_temp: float           #: deg C
    airmass: float = NAN      #: lights: sec z at mid-exposure
    fwhm_px: float = NAN      #: lights: FWHM of the PSF (binned px)
    sky_rate: float = NAN     #: lights: sky at the image centre, ADU/s/px, before the flat
    sky_gradient: tuple[float, float] = (0.0, 0.0)  #: fractional sky change across (width, height)
    transparency: float = NAN  #: lights: fraction of the light passing the clouds
    trail_px: float = 0.0     #: lights: trail length along x (px)
    qc: str = ""              #: lights: "", "clouds", "trailed", "focus", "bright-sky", "warm"
    dx: float = 0.0           #: lights: pointing offset (binned px) of every star along x
    dy: float = 0.0           #: lights: ... along y
    crval: tuple[float, float] = (NAN, NAN)  #: lights: RA, Dec at the image centre (deg)
    flat_level: float = NAN   #: flats: mean raw level (ADU)

    @property
    def date_obs(self) -> str:
        return eph.ms_to_isot(self.start_ms)

    @property
    def jd_start(self) -> float:
        return float(eph.ms_to_jd(self.start_ms))

    @property
    def jd_mid(self) -> float:
        return float(eph.ms_to_jd(self.start_ms + self.exptime * 500.0))

    @property
    def stem(self) -> str:
        return self.file.rsplit("/", 1)[-1].rsplit(".", 1)[0]


@dataclass(frozen=True, eq=False)
class LightRender:
    """One rendered light: the raw image (binned, shape (ny, nx)), its FITS header, the truth of
    every star in or near it, its .SRC rows and the plan it was made from; see the comments on
    the fields for units."""
    data: np.ndarray          #: uint16 raw frame, or float64 expected ADU when noise=False
    header: fits.Header
    truth: Table              #: per-star truth (see Simulator.render_light)
    src: Table                #: the .SRC rows (1-based positions)
    plan: FramePlan


class Simulator:
    """A star field, a camera and a site; plans nights and renders frames.

    ``Simulator(spec, seed)``; ``plan_night(n)`` lists the frames of night ``n`` (0-based);
    ``render_light(plan)`` / ``render_calibration(plan)`` make them. ``stars``,
    ``variables`` and ``catalog`` are astropy Tables; ``camera`` holds the true bias (ADU),
    dark current (ADU/s) and flats (median 1).
    """

    def __init__(self, spec: SimulationSpec | None = None, seed: int = 0):
        self.spec = spec = spec or SimulationSpec()
        spec.check()
        self.seed = int(seed)
        self.wcs0 = nominal_wcs(spec)
        first = eph.parse_date(spec.first_night)
        self.evenings = [first + datetime.timedelta(days=n) for n in range(spec.nights)]
        self.night_names = [d.strftime("%Y%m%d") for d in self.evenings]
        self.windows = [eph.observing_window(d, spec.field_ra, spec.field_dec, spec.latitude,
                                             spec.longitude, spec.min_altitude,
                                             spec.sun_max_altitude) for d in self.evenings]
        self._make_field()
        self.camera = cam.make_camera(spec, self.seed, S_CAMERA)
        self._plans: dict[int, list[FramePlan]] = {}

    # --- the field ------------------------------------------------------------------------
    def _make_field(self) -> None:
        spec = self.spec
        rng = np.random.default_rng([self.seed, S_FIELD])
        if spec.star_index:  # the real sky (Tycho-2), over all the drift will show
            hours = max(end - start for start, end, _ in self.windows) / 3.6e6
            vx, vy = drift_vector(spec)
            st = index_field(spec, self.wcs0, rng, (vx * hours, vy * hours))
        else:
            st = make_stars(spec, rng)
        n = st["x"].size
        var_type = np.array([""] * n, dtype=object)
        var_rows = []
        if spec.variables and n >= 2 and not spec.star_index:
            rng = np.random.default_rng([self.seed, S_VAR])
            t_ref = float(eph.ms_to_jd(self.windows[0][0]))
            chosen = [int(i) for i in rng.choice(n, size=2, replace=False)]
            for j, (i, kind) in enumerate(zip(chosen, (EB_TYPE, PULSATOR_TYPE))):
                st["x"][i], st["y"][i] = place_isolated(rng, st["x"], st["y"], [i] + chosen[j + 1:],
                                                        spec)
                st["BV"][i] = rng.uniform(0.2, 0.5)
                st["VR"][i] = 0.55 * st["BV"][i]
                brightening = spec.pulsator_amplitude if kind == PULSATOR_TYPE else 0.0
                lo, hi = self._variable_v_range(st["BV"][i], st["VR"][i], brightening)
                st["V"][i] = rng.uniform(lo, hi)
                var_type[i] = kind
                if kind == EB_TYPE:
                    var_rows.append(dict(
                        star_id=i, type=kind, period_days=spec.eb_period,
                        epoch_jd=round(t_ref + rng.uniform(0.04, 0.10), 6),
                        depth_primary=spec.eb_depths[0], depth_secondary=spec.eb_depths[1],
                        eclipse_width_phase=spec.eb_width, amplitude=0.0, model=EB_MODEL))
                else:
                    var_rows.append(dict(
                        star_id=i, type=kind, period_days=spec.pulsator_period,
                        epoch_jd=round(t_ref + rng.uniform(0.0, spec.pulsator_period), 6),
                        depth_primary=0.0, depth_secondary=0.0, eclipse_width_phase=0.0,
                        amplitude=spec.pulsator_amplitude, model=PULSATOR_MODEL))
        self.transit = self._make_transit(st, [r["star_id"] for r in var_rows])
        var_type = np.concatenate([var_type, np.array([""] * (st["x"].size - n), dtype=object)])
        self._set_field(st, var_rows, var_type)
        if spec.drift_px_per_hour and not spec.star_index:  # the sky the drift uncovers
            st = widen_field(self, max(end - start for start, end, _ in self.windows) / 3.6e6)
        self._set_systematics(st)

    def _make_transit(self, st: dict, variables: list[int]):
        """The planet's host (moved to an isolated spot when chosen here) and its truth."""
        spec = self.spec
        if spec.transit is None:
            return None
        p = tr.transit_params(spec.transit)
        rng = np.random.default_rng([self.seed, S_TRANSIT])
        star = p["star"]
        if star is None:
            free = np.setdiff1d(np.arange(st["x"].size), variables)
            star = int(rng.choice(free))
            st["x"][star], st["y"][star] = place_isolated(rng, st["x"], st["y"],
                                                          [star] + list(variables), spec)
            lo, _ = self._variable_v_range(st["BV"][star], st["VR"][star], 0.0)
            lo = max(lo, tr.HOST_V_RANGE[0])
            st["V"][star] = rng.uniform(lo, max(tr.HOST_V_RANGE[1], lo + 0.5))
        t0 = p["t0"] if p["t0"] is not None else None
        neighbours = tr.add_neighbours(st, int(star), p["neighbours"], spec.scale)
        return dict(star=int(star), period=float(p["period"]), t0=t0, rprs=float(p["rprs"]),
                    ars=float(p["ars"]), inc=float(p["inc"]), u1=float(p["u1"]),
                    u2=float(p["u2"]), neighbours=tuple(neighbours))

    def _set_systematics(self, st: dict) -> None:
        """Per-star seeing sensitivities (mag per unit relative FWHM change) for red noise,
        and the transit truth with its host's position (t0 defaults to mid night 1)."""
        spec = self.spec
        rng = np.random.default_rng([self.seed, S_TRANSIT, 1])
        self._seeing_sensitivity = rng.normal(0.0, spec.red_noise, st["x"].size)
        self._bv = np.asarray(st["BV"], dtype=np.float64)
        if self.transit is not None:
            host = self.stars[self.transit["star"]]
            t0 = self.transit["t0"]
            if t0 is None:
                t0 = tr.default_t0(self.windows[0], float(host["ra"]), float(host["dec"]))
            self.transit = tr.TransitTruth(**{**self.transit, "t0": float(t0)})

    def place_stars(self, x, y, v, b_v=0.6, v_r=None) -> None:
        """Replace the field by stars at 1-based nominal pixel positions ``x, y`` with
        magnitudes ``v`` (V), ``b_v`` and ``v_r`` (default 0.55 b_v); no variables.

        For tests that need a hand-made scene; the catalog is rebuilt the same way.
        """
        x = np.atleast_1d(np.asarray(x, dtype=np.float64)) - 1.0
        y = np.atleast_1d(np.asarray(y, dtype=np.float64)) - 1.0
        n = x.size
        bv = np.broadcast_to(np.asarray(b_v, dtype=np.float64), (n,)).copy()
        vr = 0.55 * bv if v_r is None else np.broadcast_to(np.asarray(v_r, float), (n,)).copy()
        st = {"x": x, "y": y, "V": np.broadcast_to(np.asarray(v, float), (n,)).copy(),
              "BV": bv, "VR": vr}
        self._set_field(st, [], np.array([""] * n, dtype=object))
        self.transit = None
        self._set_systematics(st)

    def _set_field(self, st: dict, var_rows: list[dict], var_type) -> None:
        spec = self.spec
        n = st["x"].size
        ra, dec = self.wcs0.all_pix2world(st["x"], st["y"], 0)
        ra = np.mod(ra, 360.0)
        V = st["V"]
        B = V + st["BV"]
        R = V - st["VR"]
        in_cat = V < spec.catalog_limit
        ids = np.arange(n)
        cat_id = np.array([f"SIM-{i:06d}" if c else "" for i, c in zip(ids, in_cat)], dtype=object)
        self.stars = Table({
            "id": ids, "catalog_id": cat_id.astype(str), "ra": ra, "dec": dec,
            "B": B, "V": V, "R": R, "var_type": var_type.astype(str),
            "x_nominal": st["x"] + 1.0, "y_nominal": st["y"] + 1.0})
        names = ["star_id", "catalog_id", "name", "type", "period_days", "epoch_jd", "B", "V",
                 "R", "depth_primary", "depth_secondary", "eclipse_width_phase", "amplitude",
                 "ra", "dec", "model"]
        rows = []
        for r in var_rows:
            i = r["star_id"]
            r.update(catalog_id=str(cat_id[i]), name="V0001 Sim" if r["type"] == EB_TYPE else "",
                     B=float(B[i]), V=float(V[i]), R=float(R[i]), ra=float(ra[i]),
                     dec=float(dec[i]))
            rows.append([r[c] for c in names])
        self.variables = Table(rows=rows, names=names) if rows else Table(names=names, dtype=[
            int, str, str, str, float, float, float, float, float, float, float, float, float,
            float, float, str])
        self._var_index = np.array([r["star_id"] for r in var_rows], dtype=int)
        # the catalog: true (out-of-eclipse / mean) magnitudes + Gaussian errors
        rng = np.random.default_rng([self.seed, S_CATALOG])
        sel = np.flatnonzero(in_cat)
        cols = {"id": cat_id[sel].astype(str), "ra": ra[sel], "dec": dec[sel]}
        errs = {}
        for band, mags in (("B", B), ("V", V), ("R", R)):
            e = catalog_errors(mags[sel], spec)
            cols[band] = mags[sel] + rng.normal(0.0, 1.0, sel.size) * e
            errs["e_" + band] = e
        cols.update(errs)
        self.catalog = Table(cols)

    def _variable_v_range(self, bv: float, vr: float, brightening: float) -> tuple[float, float]:
        """V range for a variable so that its peak pixel stays below 70% of saturation."""
        spec = self.spec
        lo, hi = spec.var_mag_range
        frac = cam.centre_pixel_fraction(spec.seeing_arcsec[0] / spec.scale, spec)
        need = lo
        for f in spec.filters:
            t = spec.exptime_for(f)
            sky = self.sky0(f) * t * 2.0
            allowed = 0.7 * spec.saturation - spec.bias_level - spec.dark_current * t - sky
            rate = max(allowed, 1.0) / (t * frac * 1.05) / 10 ** (-0.4 * spec.extinction[f])
            m_band = spec.zp0[f] - 2.5 * math.log10(rate) + brightening
            offset = {"B": bv, "V": 0.0, "R": -vr}[spec.band_for(f)]
            need = max(need, m_band - offset)
        return need, max(hi, need + 0.5)

    def sky0(self, filt: str) -> float:
        """Dark-sky background at the zenith (ADU/s per binned pixel, before the flat)."""
        spec = self.spec
        return 10 ** (-0.4 * (spec.sky_mag[filt] - spec.zp0[filt])) * spec.scale**2

    def delta_mag(self, jd: float, exptime: float = 0.0) -> np.ndarray:
        """Per-star magnitude offset (0 for constant stars) at UTC JD ``jd`` (mid-exposure);
        the transit host's is averaged over ``exptime`` seconds."""
        dm = np.zeros(len(self.stars))
        for i, row in zip(self._var_index, self.variables):
            dm[i] = true_light_curve(row, jd)
        if self.transit is not None:
            host = self.stars[self.transit.star]
            bjd = eph.bjd_tdb(jd, float(host["ra"]), float(host["dec"]))
            dm[self.transit.star] += -2.5 * math.log10(
                float(tr.host_flux_factor(self.transit, bjd, exptime)[0]))
            for n in self.transit.neighbours:
                if n["depth"] > 0:
                    dm[n["star"]] += -2.5 * math.log10(float(tr.neighbour_flux_factor(
                        self.transit, n["depth"], bjd, exptime)[0]))
        return dm

    # --- planning ---------------------------------------------------------------------------
    def is_calibration_night(self, n: int) -> bool:
        return n % self.spec.calibration_every == 0

    def plan_night(self, n: int) -> list[FramePlan]:
        """All frames of night ``n`` (0-based): flats, lights, then bias and darks."""
        if n not in self._plans:
            self._plans[n] = self._plan_night(n)
        return self._plans[n]

    def light_plans(self, n: int) -> list[FramePlan]:
        return [p for p in self.plan_night(n) if p.kind == "light"]

    def _plan_night(self, n: int) -> list[FramePlan]:
        plans = self._plan_night_frames(n)
        rng = np.random.default_rng([self.seed, S_TRANSIT, 2, n])
        return self._drift(tr.adjust_lights(plans, rng, self.spec))

    def _drift(self, plans: list[FramePlan]) -> list[FramePlan]:
        """The lights' pointing moved by ``drift_px_per_hour`` since the night's first light
        (direction :func:`.styles.drift_vector`), the pointing (crval) with it."""
        spec = self.spec
        starts = [p.start_ms for p in plans if p.kind == "light"]
        if spec.drift_px_per_hour == 0.0 or not starts:
            return plans
        vx, vy = drift_vector(spec)
        cx, cy = (spec.nx - 1) / 2.0, (spec.ny - 1) / 2.0
        out = []
        for p in plans:
            if p.kind == "light":
                hours = (p.start_ms - min(starts)) / 3.6e6
                dx, dy = p.dx + vx * hours, p.dy + vy * hours
                ra, dec = self.wcs0.all_pix2world(cx - dx, cy - dy, 0)
                p = dataclasses.replace(p, dx=dx, dy=dy, crval=(round(float(ra) % 360.0, 8),
                                                                round(float(dec), 8)))
            out.append(p)
        return out

    def _plan_night_frames(self, n: int) -> list[FramePlan]:
        spec = self.spec
        night = self.night_names[n]
        start, end, twilight = self.windows[n]
        rng = np.random.default_rng([self.seed, S_PLAN, n])
        def temp() -> float:
            scatter = spec.ccd_temp_scatter
            return round(float(spec.set_temp + np.clip(rng.normal(0, scatter), -3 * scatter,
                                                       3 * scatter)), 2)

        plans: list[FramePlan] = []
        calib = self.is_calibration_night(n)
        # twilight flats, exposures growing as the sky darkens
        if calib:
            t = twilight
            k = 0
            for filt in spec.filters:
                exps = np.sort(rng.uniform(*spec.flat_exptime_range, spec.n_flat))
                for j, e in enumerate(exps):
                    e = round(float(e), 2)
                    plans.append(FramePlan(
                        "flat", n, night, k,
                        f"{night}/calibration/{night}_flat_{filt}_{j + 1:03d}.fit",
                        filt, e, t, temp(), flat_level=float(rng.uniform(*spec.flat_level_range))))
                    t += int(e * 1000) + 20_000
                    k += 1
        # lights: evenly through the dark window, filters alternating
        nf = len(spec.filters)
        n_lights = spec.lights_per_filter * nf
        texp_max = max(spec.exptime_for(f) for f in spec.filters)
        span = max(end - start - int(texp_max * 1000) - 60_000, 0)
        fwhm_lo, fwhm_hi = (s / spec.scale for s in spec.seeing_arcsec)
        cycles, phase = rng.uniform(0.5, 1.3), rng.uniform(0, 1)
        t_cycles, t_phase = rng.uniform(0.5, 1.5), rng.uniform(0, 1)
        sky_night = rng.uniform(0.9, 1.15)
        grad_angle, grad_amp = rng.uniform(0, 2 * np.pi), rng.uniform(0.02, 0.05)
        for i in range(n_lights):
            filt = spec.filters[i % nf]
            texp = spec.exptime_for(filt)
            u = i / (n_lights - 1) if n_lights > 1 else 0.0
            t0 = start + int(round(u * span)) + int(rng.integers(0, 30_000))
            t0 = t0 // 1000 * 1000 + int(rng.integers(0, 1000))  # ms like a real clock
            jd_mid = float(eph.ms_to_jd(t0 + texp * 500.0))
            alt = float(eph.altitude(jd_mid, spec.field_ra, spec.field_dec, spec.latitude,
                                     spec.longitude)[0])
            X = float(eph.airmass(alt))
            # smooth through the night: seeing over its whole range, transparency within 1.5%
            wave = 0.5 + 0.5 * math.sin(2 * math.pi * (cycles * u + phase))
            fwhm = fwhm_lo + (fwhm_hi - fwhm_lo) * wave
            t_wave = 0.5 + 0.5 * math.sin(2 * math.pi * (t_cycles * u + t_phase))
            transparency = 1.0 - 0.015 * t_wave
            hours_from_edge = min(t0 - start, end - t0) / 3.6e6
            sky = (self.sky0(filt) * sky_night * (1.0 + 0.25 * (X - 1.0))
                   * (1.0 + 0.5 * math.exp(-hours_from_edge / 0.4)))
            ang = grad_angle + 0.8 * u
            gradient = (grad_amp * math.cos(ang), grad_amp * math.sin(ang))
            ccd = temp()
            dx, dy = (float(np.clip(v, -3 * spec.pointing_jitter_px, 3 * spec.pointing_jitter_px))
                      for v in rng.normal(0, spec.pointing_jitter_px, 2))
            cloud_t = rng.uniform(0.3, 0.5)
            warm_t = round(float(rng.uniform(1.5, 3.0)), 2)
            qc, trail = [], 0.0
            if i in spec.cloudy_frames:
                qc.append("clouds")
                transparency, sky = float(cloud_t), sky * 1.3
            if i in spec.defocused_frames:
                qc.append("focus")
                fwhm *= 2.5
            if i in spec.trailed_frames:
                qc.append("trailed")
                trail = 3.0 * fwhm
            if i in spec.bright_sky_frames:
                qc.append("bright-sky")
                sky *= 8.0
            if i in spec.warm_frames:
                qc.append("warm")
                ccd = warm_t
            cx, cy = (spec.nx - 1) / 2.0, (spec.ny - 1) / 2.0
            ra, dec = self.wcs0.all_pix2world(cx - dx, cy - dy, 0)
            crval = (round(float(ra) % 360.0, 8), round(float(dec), 8))
            plans.append(FramePlan(
                "light", n, night, i, f"{night}/lights/{night}_light_{i + 1:03d}_{filt}.fit",
                filt, texp, t0, ccd, airmass=X, fwhm_px=fwhm, sky_rate=sky,
                sky_gradient=gradient, transparency=float(transparency), trail_px=trail,
                qc=";".join(qc), dx=dx, dy=dy, crval=crval))
        # bias and darks in the morning
        if calib:
            t = end + 15 * 60_000
            for j in range(spec.n_bias):
                plans.append(FramePlan("bias", n, night, j,
                                       f"{night}/calibration/{night}_bias_{j + 1:03d}.fit",
                                       "", 0.0, t, temp()))
                t += 12_000
            e = float(spec.dark_exptime)
            for j in range(spec.n_dark):
                plans.append(FramePlan("dark", n, night, j,
                                       f"{night}/calibration/{night}_dark_{e:g}s_{j + 1:03d}.fit",
                                       "", e, t, temp()))
                t += int(e * 1000) + 12_000
        return plans

    def zero_point(self, plan: FramePlan) -> float:
        """True zero point: mag = -2.5 log10(flux_ADU / EXPTIME) + zero_point."""
        spec = self.spec
        return (spec.zp0[plan.filter] - spec.extinction[plan.filter] * plan.airmass
                + 2.5 * math.log10(plan.transparency))

    # --- rendering ------------------------------------------------------------------------
    def header_cards(self, plan: FramePlan) -> list[tuple[str, object, str]]:
        spec, b = self.spec, self.spec.binning
        cards = []
        if plan.kind == "light":
            cards.append(("OBJECT", spec.object_name, "target"))
        cards += [
            ("TELESCOP", "Paramount ME", "telescope mount"),
            ("INSTRUME", INSTRUMENT, "camera"),
            ("DATE-OBS", plan.date_obs, "UTC start of the exposure"),
            ("EXPTIME", float(plan.exptime), "exposure (s)"),
            ("EXPOSURE", float(plan.exptime), "exposure (s)"),
            ("SET-TEMP", float(spec.set_temp), "CCD set point (C)"),
            ("CCD-TEMP", float(plan.ccd_temp), "CCD temperature (C)"),
            ("XPIXSZ", round(spec.pixel_size_um * b, 6), "binned pixel width (micron)"),
            ("YPIXSZ", round(spec.pixel_size_um * b, 6), "binned pixel height (micron)"),
            ("XBINNING", b, "binning in x"),
            ("YBINNING", b, "binning in y"),
            ("XORGSUBF", 0, "subframe origin x (binned px)"),
            ("YORGSUBF", 0, "subframe origin y (binned px)"),
            ("READOUTM", "Raw", "readout mode"),
        ]
        if plan.kind in ("flat", "light"):
            cards.append(("FILTER", plan.filter, "filter"))
        cards += [
            ("IMAGETYP", IMAGETYP[plan.kind], "frame type"),
            ("SITELAT", _sexagesimal(spec.latitude, 2, sign=True), "site latitude (deg N)"),
            ("SITELONG", _sexagesimal(spec.longitude, 2, sign=True), "site longitude (deg E)"),
            ("EGAIN", float(spec.gain), "gain (e-/ADU)"),
            ("PEDESTAL", -100, "informational only"),
            ("SWCREATE", f"clinepipe.simulate {__version__}", "simulated frame"),
        ]
        if plan.kind == "light":
            cards += [("OBJCTRA", _sexagesimal(plan.crval[0] / 15.0, 3), "pointing RA (h)"),
                      ("OBJCTDEC", _sexagesimal(plan.crval[1], 2, sign=True), "pointing Dec (deg)")]
            cards += wcs_cards(spec.nx, spec.ny, plan.crval[0], plan.crval[1], spec.scale,
                               spec.rotation_deg)
        return cards

    def sky_image(self, plan: FramePlan) -> np.ndarray:
        """Sky (ADU per px over the exposure, before the flat)."""
        spec = self.spec
        gx, gy = plan.sky_gradient
        x = (np.arange(spec.nx) - (spec.nx - 1) / 2.0) / spec.nx
        y = (np.arange(spec.ny) - (spec.ny - 1) / 2.0) / spec.ny
        return plan.sky_rate * plan.exptime * (1.0 + gx * x[None, :] + gy * y[:, None])

    def render_light(self, plan: FramePlan, noise: bool = True, cosmic_rays: bool | None = None,
                     flat: bool = True) -> LightRender:
        """Render one light.

        ``noise=False`` gives the float64 expected image bias + dark + flat * (sky + stars)
        (ADU, no Poisson/read noise, no cosmic rays, no clipping); ``flat=False`` uses a
        flat of ones. The truth Table has, per star: ``id``, ``x``, ``y`` (1-based true
        centre), ``flux_adu`` (true total flux in the frame before the flat, scintillation included),
        ``scintillation`` (the factor it multiplied the flux by), ``mag`` (true
        magnitude in the filter's catalog band at mid-exposure), ``peak_adu`` (expected raw
        value of its brightest pixel), ``snr_peak``, ``saturated``, ``in_frame``, ``in_src``.
        """
        spec, nx, ny = self.spec, self.spec.nx, self.spec.ny
        cards = self.header_cards(plan)
        header = header_roundtrip(cards)
        w = wcs_from_header(header)
        x0, y0 = w.all_world2pix(np.asarray(self.stars["ra"]), np.asarray(self.stars["dec"]), 0)
        band = spec.band_for(plan.filter)
        mag = (np.asarray(self.stars[band], dtype=np.float64)
               + self.delta_mag(plan.jd_mid, plan.exptime))
        # the filter differs from the catalog band by the spec's colour term (AAVSO's T)
        if spec.colour_terms:  # from the star table, which a widened field extends
            st = self.stars
            instrumental = mag + spec.colour_term_mag(
                plan.filter, np.asarray(st["B"], float) - np.asarray(st["V"], float),
                np.asarray(st["V"], float) - np.asarray(st["R"], float))
        else:
            instrumental = mag
        if spec.red_noise > 0:
            fwhm_mid = 0.5 * sum(spec.seeing_arcsec) / spec.scale
            instrumental = instrumental + tr.systematics_mag(self._seeing_sensitivity, self._bv,
                                                    plan.airmass, plan.fwhm_px / fwhm_mid)
        flux = (plan.exptime * 10 ** (-0.4 * (instrumental - spec.zp0[plan.filter]))
                * 10 ** (-0.4 * spec.extinction[plan.filter] * plan.airmass) * plan.transparency)
        scint = self.scintillation(plan, flux.size) if noise else np.ones(flux.size)
        flux = flux * scint
        stars_img, peak = cam.render_stars(nx, ny, x0, y0, flux, plan.fwhm_px, spec,
                                           trail=plan.trail_px)
        sky = self.sky_image(plan)
        flat_img = self.camera.flats[plan.filter] if flat else np.ones((ny, nx))
        light = (sky + stars_img) * flat_img
        dark = self.camera.dark * plan.exptime
        if noise:
            rng = np.random.default_rng([self.seed, S_NOISE, plan.night_index,
                                         KIND_CODE["light"], plan.index])
            crs = self._cosmic_rays(rng, plan, cosmic_rays)
            data = cam.expose(rng, light, dark, self.camera.bias, spec, crs)
        else:
            data = self.camera.bias + dark + light
        # per-star truth
        ix = np.clip(np.rint(x0), 0, nx - 1).astype(int)
        iy = np.clip(np.rint(y0), 0, ny - 1).astype(int)
        fc = flat_img[iy, ix]
        bkg = sky[iy, ix] * fc
        dk = dark[iy, ix]
        peak_adu = self.camera.bias[iy, ix] + dk + bkg + peak * fc
        g = spec.gain
        snr = peak * fc * g / np.sqrt(g * (peak * fc + bkg + dk) + spec.read_noise**2)
        in_frame = (x0 >= -0.5) & (x0 <= nx - 0.5) & (y0 >= -0.5) & (y0 <= ny - 0.5)
        inside = (x0 >= 0) & (x0 <= nx - 1) & (y0 >= 0) & (y0 <= ny - 1)
        saturated = peak_adu >= spec.saturation
        in_src = inside & (snr >= spec.src_snr_min)
        truth = Table({"id": np.asarray(self.stars["id"]), "x": x0 + 1.0, "y": y0 + 1.0,
                       "flux_adu": flux, "scintillation": scint, "mag": mag, "peak_adu": peak_adu, "snr_peak": snr,
                       "saturated": saturated.astype(int), "in_frame": in_frame.astype(int),
                       "in_src": in_src.astype(int)})
        src = self._src_table(plan, truth, fc, bkg, dk)
        return LightRender(data=data, header=header, truth=truth, src=src, plan=plan)

    def scintillation_rms(self, plan: FramePlan) -> float:
        """Relative flux rms of every star on a light from scintillation (0 when off)."""
        spec = self.spec
        if spec.scintillation_factor <= 0 or not plan.exptime > 0:
            return 0.0
        return young_scintillation(spec.telescope_diameter_cm, plan.airmass, spec.elevation,
                                   plan.exptime, spec.scintillation_factor)

    def scintillation(self, plan: FramePlan, n: int) -> np.ndarray:
        """Each star's flux factor on a light, 1 + N(0, scintillation_rms), from its own
        random stream (so the pixel noise of a frame is drawn as without it)."""
        rms = self.scintillation_rms(plan)
        if rms == 0.0:
            return np.ones(n)
        rng = np.random.default_rng([self.seed, S_SCINT, plan.night_index, plan.index])
        return 1.0 + rms * rng.standard_normal(n)

    def _cosmic_rays(self, rng, plan: FramePlan, enabled: bool | None):
        if enabled is None:
            enabled = self.spec.cosmic_rays
        if not enabled:
            return None
        return cam.cosmic_rays(rng, self.spec.nx, self.spec.ny, plan.exptime + 10.0, self.spec)

    def _src_table(self, plan: FramePlan, truth: Table, fc, bkg, dk) -> Table:
        """TheSkyX Image Link source list: true positions + N(0, src_position_sigma)."""
        spec = self.spec
        rng = np.random.default_rng([self.seed, S_SRC, plan.night_index, plan.index])
        sel = np.flatnonzero(np.asarray(truth["in_src"]) == 1)
        n = sel.size
        g = spec.gain
        fwhm = plan.fwhm_px
        flux = np.asarray(truth["flux_adu"])[sel] * fc[sel]
        npix = math.pi * (1.5 * fwhm) ** 2
        noise_e = np.sqrt(g * flux + npix * (g * (bkg[sel] + dk[sel]) + spec.read_noise**2))
        snr = np.maximum(g * flux / noise_e, 1.0)
        sigma = fwhm / 2.3548
        a = np.sqrt(sigma**2 + plan.trail_px**2 / 12.0) * (1 + rng.normal(0, 0.03, n))
        b = sigma * (1 + rng.normal(0, 0.03, n))
        a, b = np.maximum(a, b), np.minimum(a, b)
        theta = (rng.normal(0.0, 1.0, n) if plan.trail_px > 0 else rng.uniform(-90, 90, n))
        saturated = np.asarray(truth["saturated"])[sel] == 1
        # position errors N(0, sigma) truncated at 7/3 sigma per axis, so that every .SRC
        # position lies within 0.1 px of the truth for the default sigma of 0.03 px
        lim = 7.0 / 3.0 * spec.src_position_sigma
        ex = np.clip(rng.normal(0, spec.src_position_sigma, n), -lim, lim)
        ey = np.clip(rng.normal(0, spec.src_position_sigma, n), -lim, lim)
        table = Table({
            "X_IMAGE": np.asarray(truth["x"])[sel] + ex,
            "Y_IMAGE": np.asarray(truth["y"])[sel] + ey,
            "MAG_APER": -2.5 * np.log10(flux) + rng.normal(0, 1.0857 / snr),
            "FWHM_IMAGE": 2.3548 * np.sqrt(a * b),
            "FLAGS": np.where(saturated, 4, 0),
            "CLASS_STAR": np.clip(rng.normal(0.97, 0.015, n) - 0.3 * saturated, 0, 1),
            "ELONGATION": a / b, "ELLIPTICITY": 1 - b / a, "A_IMAGE": a, "B_IMAGE": b,
            "THETA_IMAGE": theta, "id": np.asarray(truth["id"])[sel]})
        table.sort("MAG_APER")
        return table

    def render_calibration(self, plan: FramePlan) -> tuple[np.ndarray, fits.Header]:
        """Raw uint16 bias / dark / flat frame and its header."""
        spec = self.spec
        header = header_roundtrip(self.header_cards(plan))
        rng = np.random.default_rng([self.seed, S_NOISE, plan.night_index,
                                     KIND_CODE[plan.kind], plan.index])
        dark = self.camera.dark * plan.exptime
        light = 0.0
        if plan.kind == "flat":
            flat = self.camera.flats[plan.filter]
            base = float(np.mean(self.camera.bias)) + float(np.mean(dark))
            light = flat * (plan.flat_level - base) / float(np.mean(flat))
        crs = self._cosmic_rays(rng, plan, None)
        return cam.expose(rng, light, dark, self.camera.bias, spec, crs), header

    def frame_truth_row(self, plan: FramePlan) -> dict:
        light = plan.kind == "light"
        return {
            "file": plan.file, "kind": plan.kind, "night": plan.night, "filter": plan.filter,
            "exptime": plan.exptime, "date_obs": plan.date_obs, "jd_mid": plan.jd_mid,
            "ccd_temp": plan.ccd_temp,
            "airmass": plan.airmass if light else NAN,
            "fwhm_px": plan.fwhm_px if light else NAN,
            "sky_adu_per_pixel": plan.sky_rate * plan.exptime if light else NAN,
            "transparency": plan.transparency if light else NAN,
            "zero_point": self.zero_point(plan) if light else NAN,
            "scintillation_rms": self.scintillation_rms(plan) if light else NAN,
            "qc": plan.qc, "dx": plan.dx if light else NAN, "dy": plan.dy if light else NAN,
            "trail_px": plan.trail_px if light else NAN,
            "flat_level_adu": plan.flat_level,
        }


FRAME_COLUMNS = ["file", "kind", "night", "filter", "exptime", "date_obs", "jd_mid", "ccd_temp",
                 "airmass", "fwhm_px", "sky_adu_per_pixel", "transparency", "zero_point",
                 "scintillation_rms", "qc",
                 "dx", "dy", "trail_px", "flat_level_adu"]


def _sexagesimal(value: float, decimals: int, sign: bool = False) -> str:
    """'DD MM SS.ss' (TheSkyX OBJCTRA/OBJCTDEC/SITELAT style)."""
    neg = value < 0
    total = round(abs(value) * 3600.0, decimals)
    d, rem = divmod(total, 3600.0)
    m, s = divmod(rem, 60.0)
    width = 3 + decimals if decimals else 2
    text = f"{int(d):02d} {int(m):02d} {s:0{width}.{decimals}f}"
    if sign:
        return ("-" if neg else "+") + text
    return ("-" if neg else "") + text


def replace_plan(plan: FramePlan, **changes) -> FramePlan:
    """``plan`` with ``changes`` (FramePlan field names), e.g. another file name or sky."""
    return dataclasses.replace(plan, **changes)
