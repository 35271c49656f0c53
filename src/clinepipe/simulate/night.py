"""``simulate_night``: write simulated nights, their catalog, config and truth to a folder."""

from __future__ import annotations

import os
from pathlib import Path

from astropy.table import Table

from .. import __version__
from . import camera as cam
from .scene import FRAME_COLUMNS, FramePlan, Simulator, replace_plan
from .spec import SimulationResult, SimulationSpec, replace_spec
from .styles import (
    TOP_DOWN,
    effective_spec,
    frame_cards,
    frame_file,
    headers_config,
    is_original,
    stored_data,
    writes_frame,
)
from .writers import (
    config_text,
    write_csv,
    write_float_image,
    write_json,
    write_raw_frame,
    write_src,
    write_styled_frame,
    write_table_csv,
)

STAR_COLUMNS = ["id", "catalog_id", "ra", "dec", "B", "V", "R", "var_type", "x_nominal",
                "y_nominal"]
#: truth of how each frame was stored, after the scene's FRAME_COLUMNS
STYLE_COLUMNS = ["binning", "style", "row_order"]
LIGHT_TRUTH_COLUMNS = ["id", "x", "y", "flux_adu", "scintillation", "mag", "peak_adu",
                       "snr_peak", "saturated", "in_frame", "in_src"]


def make_spec(spec: SimulationSpec | None = None, nights: int | None = None,
              **overrides) -> SimulationSpec:
    """The spec a simulation actually runs with: ``spec`` (default ``SimulationSpec()``) with
    ``nights`` and the field ``overrides`` applied, then adjusted to its acquisition style
    (:func:`~clinepipe.simulate.styles.effective_spec`)."""
    spec = spec or SimulationSpec()
    if nights is not None:
        overrides["nights"] = int(nights)
    return effective_spec(replace_spec(spec, **overrides) if overrides else spec)


def simulate_night(out_dir: str | os.PathLike, seed: int = 0, nights: int | None = None,
                   spec: SimulationSpec | None = None, **overrides) -> SimulationResult:
    """Simulate ``nights`` nights of the observatory into ``out_dir``; return the truth.

    Parameters
    ----------
    out_dir : path
        Created if needed. Files of the same names are overwritten; nothing is deleted.
    seed : int
        The same seed and parameters give byte-identical files.
    nights : int, optional
        Number of nights (default: ``spec.nights``, i.e. 1).
    spec : SimulationSpec, optional
        The parameters; ``**overrides`` replace its fields (e.g. ``width=256``).

    Writes ``incoming/<YYYYMMDD>/{calibration,lights}/*.fit`` (+ ``.SRC`` beside each light),
    ``catalog.csv``, ``vsx.csv``, ``clinepipe.toml`` and ``truth/`` (see the package docs).
    With ``style`` other than ``"thesky"`` the frames are named, filed and headed as that
    program does (see :mod:`clinepipe.simulate.styles`); ``truth/frames.csv`` keeps the
    true start time, kind, filter, exposure and binning of each.
    """
    spec = make_spec(spec, nights, **overrides)
    sim = Simulator(spec, seed)
    original = is_original(spec)
    out = Path(out_dir)
    incoming, truth_dir = out / "incoming", out / "truth"
    (truth_dir / "lights").mkdir(parents=True, exist_ok=True)
    incoming.mkdir(parents=True, exist_ok=True)

    frame_rows = []
    row_order = "top-down" if spec.style in TOP_DOWN else "bottom-up"
    for n in range(spec.nights):
        plans = sim.plan_night(n)
        for plan in plans:
            if not writes_frame(spec, plan.kind):
                continue
            if not original:
                plan = replace_plan(plan, file=frame_file(spec, plan))
            path = incoming / plan.file
            if plan.kind == "light":
                r = sim.render_light(plan)
                data, header = r.data, r.header
                write_table_csv(truth_dir / "lights" / f"{plan.stem}.csv", r.truth,
                                LIGHT_TRUTH_COLUMNS)
            else:
                data, header = sim.render_calibration(plan)
            if original:
                write_raw_frame(path, data, header)
            else:
                data = stored_data(spec, data)
                write_styled_frame(path, data, frame_cards(spec, plan, header, data))
            if plan.kind == "light" and spec.style == "thesky":  # only Image Link writes one
                write_src(path.with_suffix(".SRC"), r.src, spec.nx, spec.ny, plan.date_obs)
            frame_rows.append({**sim.frame_truth_row(plan), "binning": spec.binning,
                               "style": spec.style, "row_order": row_order})

    columns = FRAME_COLUMNS + STYLE_COLUMNS
    frames = Table(rows=[[r[c] for c in columns] for r in frame_rows],
                   names=columns) if frame_rows else Table(names=columns)
    write_csv(truth_dir / "frames.csv", columns, frame_rows)
    write_table_csv(truth_dir / "stars.csv", sim.stars, STAR_COLUMNS)
    write_table_csv(truth_dir / "variables.csv", sim.variables)
    _write_calibration_truth(sim, truth_dir)
    write_json(truth_dir / "camera.json", camera_description(sim))
    if sim.transit is not None:
        write_json(truth_dir / "transit.json", sim.transit.as_dict())

    catalog_path = out / "catalog.csv"
    write_table_csv(catalog_path, sim.catalog, ["id", "ra", "dec", "B", "V", "R",
                                                "e_B", "e_V", "e_R"])
    vsx_path = out / "vsx.csv"
    eb = [r for r in sim.variables if r["name"]]
    write_csv(vsx_path, ["name", "ra", "dec", "type", "period"],
              [{"name": r["name"], "ra": r["ra"], "dec": r["dec"], "type": r["type"],
                "period": r["period_days"]} for r in eb])
    config_path = out / "clinepipe.toml"
    extra = {} if spec.style == "thesky" else headers_config(spec)
    config_path.write_text(config_text(spec, recommended_aperture(spec), headers=extra,
                                       # a DWARF never takes bias or flat frames
                                       measure_without_masters=(not spec.calibration_frames
                                                                or spec.style == "dwarf")),
                           encoding="utf-8")
    return SimulationResult(
        out_dir=out, incoming=incoming, config_path=config_path, catalog_path=catalog_path,
        vsx_path=vsx_path, truth_dir=truth_dir, stars=sim.stars, variables=sim.variables,
        frames=frames, spec=spec, seed=int(seed), nights=tuple(sim.night_names))


def recommended_aperture(spec: SimulationSpec) -> float:
    """~1.7 x the mean simulated FWHM (binned px), rounded to 0.5 px."""
    fwhm = 0.5 * sum(spec.seeing_arcsec) / spec.scale
    return max(1.5, round(1.7 * fwhm * 2) / 2)


def _write_calibration_truth(sim: Simulator, truth_dir: Path) -> None:
    b = sim.spec.binning
    write_float_image(truth_dir / f"bias_bin{b}.fits", sim.camera.bias,
                      [("BUNIT", "ADU", "expected bias, no noise")])
    write_float_image(truth_dir / f"dark_bin{b}.fits", sim.camera.dark,
                      [("BUNIT", "ADU/s", "dark current")])
    for filt, flat in sim.camera.flats.items():
        write_float_image(truth_dir / f"flat_bin{b}_{filt}.fits", flat,
                          [("FILTER", filt, ""), ("BUNIT", "", "flat field, median 1")])


def camera_description(sim: Simulator) -> dict:
    """The simulation's camera, site and signal model as a JSON-ready dict (``truth/camera.json``):
    what a test needs to check recovered values against, with units in the keys or the model
    strings (ADU, e-, ADU/s, arcsec/px, deg C, mag)."""
    spec = sim.spec
    return {
        "simulator": f"clinepipe.simulate {__version__}",
        "seed": sim.seed,
        "binning": spec.binning, "width": spec.nx, "height": spec.ny,
        "pixel_scale_arcsec": spec.scale,
        "gain": spec.gain, "read_noise_e": spec.read_noise, "saturation": spec.saturation,
        "bias_level": spec.bias_level, "dark_current_adu_s": spec.dark_current,
        "hot_pixel_fraction": spec.hot_pixel_fraction, "n_hot_pixels": int(sim.camera.hot.sum()),
        "set_temp": spec.set_temp,
        "filters": list(spec.filters),
        "filter_bands": {f: spec.band_for(f) for f in spec.filters},
        "ZP0": {f: spec.zp0[f] for f in spec.filters},
        "extinction": {f: spec.extinction[f] for f in spec.filters},
        **({"colour_terms": {f: float(v) for f, v in spec.colour_terms.items()},
            "colour_term_model": ("m_inst = m_std - T[f] * colour + const, colour B-V for B "
                                  "and V filters, V-R for R")} if spec.colour_terms else {}),
        "sky_adu_s_zenith": {f: sim.sky0(f) for f in spec.filters},
        "exptime": {f: spec.exptime_for(f) for f in spec.filters},
        "dark_exptime": spec.dark_exptime,
        "flux_model": ("flux_ADU = exptime * 10**(-0.4*(m_band(t) - ZP0[f])) * "
                       "10**(-0.4*k[f]*airmass) * transparency; zero_point = ZP0[f] - "
                       "k[f]*airmass + 2.5*log10(transparency); no colour terms"),
        "scintillation": {
            "model": ("flux_ADU *= 1 + N(0, sigma) per star and light, sigma = factor * 0.09 "
                      "D^(-2/3) X^1.75 exp(-h/8000) (2 t)^(-1/2) (Young 1967; factor from "
                      "Osborn et al. 2015), D cm, X airmass, h m, t s; frames.csv "
                      "scintillation_rms holds sigma"),
            "telescope_diameter_cm": spec.telescope_diameter_cm,
            "factor": spec.scintillation_factor},
        "signal_chain": ("raw = clip(rint((Poisson(gain*(flat*(sky+stars) + dark*t)) + "
                         "N(0, read_noise)) / gain + bias + cosmic_rays), 0, saturation)"),
        "psf": {
            "model": ("two concentric circular Gaussians, integrated over each pixel with erf "
                      "differences; trailed frames convolve it with a box of trail_px along x"),
            "halo_fraction": spec.halo_fraction,
            "halo_sigma_ratio": spec.halo_sigma_ratio,
            "fwhm_over_sigma_core": cam.fwhm_over_sigma(spec.halo_fraction,
                                                        spec.halo_sigma_ratio),
        },
        "site": {"latitude": spec.latitude, "longitude": spec.longitude,
                 "elevation": spec.elevation},
        "airmass": "plane-parallel sec z of the geometric altitude (erfa, UT1 = UTC)",
        "catalog_limit_V": spec.catalog_limit,
        "catalog_error_range": list(spec.catalog_error_range),
        "recommended_aperture_px": recommended_aperture(spec),
    }


def render_light(spec: SimulationSpec | None = None, seed: int = 0, *, night: int = 0,
                 index: int = 0, noise: bool = True, cosmic_rays: bool | None = None,
                 flat: bool = True, frame_overrides: dict | None = None, **overrides):
    """Render one light in memory: ``(data, header, truth_table)``.

    The same frame ``simulate_night(..., seed=seed, **overrides)`` writes as light ``index``
    of night ``night`` (identical data when ``noise=True`` and no ``frame_overrides``).
    ``noise=False`` returns the float64 expected ADU (bias + dark + flat*(sky+stars));
    ``flat=False`` uses a flat of ones; ``cosmic_rays`` overrides the spec;
    ``frame_overrides`` replaces fields of the frame's :class:`FramePlan` (e.g.
    ``{"fwhm_px": 6.0, "trail_px": 10.0, "transparency": 0.4, "exptime": 30.0}``).
    The truth table columns are those of ``truth/lights/<stem>.csv``.
    """
    sim = Simulator(make_spec(spec, **overrides), seed)
    plan: FramePlan = sim.light_plans(night)[index]
    if frame_overrides:
        plan = replace_plan(plan, **frame_overrides)
    r = sim.render_light(plan, noise=noise, cosmic_rays=cosmic_rays, flat=flat)
    return r.data, r.header, r.truth
