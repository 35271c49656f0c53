"""What to simulate (:class:`SimulationSpec`) and what came out (:class:`SimulationResult`).

Units are stated beside every field. "ADU" always means raw camera counts of the *binned*
pixel; magnitudes are Johnson-Cousins B, V, R of the synthetic catalog.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from astropy.table import Table

#: per-filter defaults. The filter wheel of the seed observatory holds B, V, R, Red, Green, Blue,
#: Lum and Halpha; the last five are measured against the catalog band in ``FILTER_BANDS``.
FILTER_BANDS = {"B": "B", "V": "V", "R": "R", "Red": "R", "Green": "V", "Blue": "B",
                "Lum": "V", "Halpha": "R"}
#: magnitude giving 1 ADU/s above the atmosphere (airmass 0); V = 15 gives ~600 ADU/s.
ZP0 = {"B": 21.60, "V": 21.95, "R": 22.05, "Red": 21.90, "Green": 21.90, "Blue": 21.40,
       "Lum": 22.70, "Halpha": 18.50}
#: extinction coefficients (mag per airmass)
EXTINCTION = {"B": 0.30, "V": 0.20, "R": 0.13, "Red": 0.13, "Green": 0.20, "Blue": 0.30,
              "Lum": 0.20, "Halpha": 0.12}
#: the true colour index each catalog band's colour term multiplies (``colour_terms``)
COLOUR_OF_BAND = {"B": ("B", "V"), "V": ("B", "V"), "R": ("V", "R")}
#: dark-sky surface brightness at the zenith (mag/arcsec^2), a suburban site without moon
SKY_MAG = {"B": 20.4, "V": 19.6, "R": 18.9, "Red": 19.0, "Green": 19.6, "Blue": 20.3,
           "Lum": 19.3, "Halpha": 18.0}


@dataclass(frozen=True)
class SimulationSpec:
    """Everything that defines a simulated run; every field has a sensible default.

    Pass changed fields as keyword overrides to :func:`simulate_night` (e.g.
    ``width=256, height=256, n_stars=80, lights_per_filter=4``).
    Dict-valued fields are keyed by the FILTER header value.
    """

    # --- what and when ---------------------------------------------------------------
    nights: int = 1                       #: number of consecutive nights
    first_night: str = "2026-03-14"       #: local date of the evening of night 1 (YYYY-MM-DD)
    binning: int = 3                      #: binning of lights and of their calibration frames
    width: int | None = None              #: binned image width (px); None = camera_width // binning
    height: int | None = None             #: binned image height (px); None = camera_height // binning
    n_stars: int = 400                    #: stars over the image area plus a margin
    field_ra: float = 162.0               #: field centre RA (deg, ICRS/FK5 J2000)
    field_dec: float = 30.0               #: field centre Dec (deg)
    object_name: str = "SIM-FIELD"        #: OBJECT header of the lights
    filters: tuple[str, ...] = ("V", "R")  #: filters of the lights (alternating through the night)
    lights_per_filter: int = 20           #: lights per filter per night
    exptime: dict | float = 60.0          #: light exposure (s), a number or {filter: seconds}
    n_bias: int = 7                       #: bias frames per calibration night
    n_dark: int = 7                       #: dark frames per calibration night
    dark_exptime: float = 120.0           #: dark exposure (s) (lights use other exposures)
    n_flat: int = 7                       #: twilight flats per filter per calibration night
    flat_exptime_range: tuple[float, float] = (2.0, 10.0)          #: flat exposures (s)
    flat_level_range: tuple[float, float] = (20000.0, 30000.0)     #: flat mean raw level (ADU)
    calibration_every: int = 2            #: calibration frames on night 1, then every Nth night
    cosmic_rays: bool = True              #: add cosmic-ray hits to every raw frame
    variables: bool = True                #: one eclipsing binary and one pulsator in the field
    # --- how the files are written (see simulate/styles.py) ------------------------------
    style: str = "thesky"                 #: acquisition program whose header style is written
    calibration_frames: bool = True       #: False = no bias, dark or flat frames at all
    bit_depth: int = 16                   #: ADC bits: 12 or 14 = such a camera in a 16-bit file
    drift_px_per_hour: float = 0.0        #: pointing drift through each night (binned px/h)
    wcs: bool = True                      #: False = lights with pointing and scale keywords only
    #: an astrometry.net index file (e.g. /usr/share/astrometry/index-tycho2-07...): the
    #: field is its real stars (Tycho-2, V = V_T within ``mag_range``), not ``n_stars``
    #: synthetic ones, and has no simulated variables (simulate/tycho.py)
    star_index: str = ""
    # --- bad lights for QC tests (0-based indices of the lights of each night) ---------
    cloudy_frames: tuple[int, ...] = ()   #: transparency 0.3-0.5, sky x1.3 (qc "clouds")
    trailed_frames: tuple[int, ...] = ()  #: stars trailed along x by 3 FWHM (qc "trailed")
    defocused_frames: tuple[int, ...] = ()  #: FWHM x2.5 (qc "focus")
    bright_sky_frames: tuple[int, ...] = ()  #: sky x8, e.g. moonlight (qc "bright-sky")
    warm_frames: tuple[int, ...] = ()     #: CCD-TEMP around +2 C (qc "warm"; above max_ccd_temp)
    # --- camera (SBIG STF-8300 at the seed observatory) -----------------------------
    camera_width: int = 3352              #: unbinned detector width (px)
    camera_height: int = 2532             #: unbinned detector height (px)
    pixel_size_um: float = 5.4            #: unbinned pixel size (micron)
    pixel_scale: float = 0.33             #: unbinned pixel scale (arcsec/px); binned = x binning
    rotation_deg: float = 0.3             #: rotation of the CD matrix (deg)
    pointing_jitter_px: float = 2.0       #: rms pointing jitter between lights (binned px)
    gain: float = 0.4                     #: e-/ADU (EGAIN)
    read_noise: float = 9.3               #: e- rms
    bias_level: float = 1000.0            #: mean bias (ADU)
    bias_column_rms: float = 2.0          #: rms of the fixed per-column bias structure (ADU)
    dark_current: float = 0.05            #: dark current of a normal binned pixel (ADU/s)
    hot_pixel_fraction: float = 0.001     #: fraction of hot pixels
    hot_pixel_rate: tuple[float, float] = (1.0, 50.0)  #: hot-pixel dark current range (ADU/s)
    saturation: int = 65535               #: raw ADU ceiling
    set_temp: float = -10.0               #: SET-TEMP (C)
    ccd_temp_scatter: float = 0.3         #: rms of CCD-TEMP around SET-TEMP (C)
    vignetting: float = 0.12              #: flat-field falloff at the corners (fraction)
    prnu: float = 0.01                    #: pixel response non-uniformity (rms fraction)
    cr_rate: float = 3.0                  #: cosmic-ray hits per 100 s per unbinned megapixel
    cr_energy: tuple[float, float] = (500.0, 20000.0)  #: ADU per hit (1-3 pixels)
    # --- site and sky ------------------------------------------------------------------
    latitude: float = 36.0760             #: deg north
    longitude: float = -79.8089           #: deg, east positive
    elevation: float = 250.0              #: m (Greensboro, NC lies at 240-270 m)
    #: telescope aperture (cm): the seed observatory's is "half-meter class" (Smith & Akins
    #: 2019); 0.33"/px with 5.4 micron pixels means a ~3.4 m focal length, a 20-inch f/6.8
    telescope_diameter_cm: float = 50.8
    #: scintillation: Young's formula times this (1.5: Osborn et al. 2015's median
    #: correction; 1: Young's own; 0: none), see simulate/scintillation.py
    scintillation_factor: float = 1.5
    min_altitude: float = 30.0            #: lights only while the field is this high (deg)
    sun_max_altitude: float = -18.0       #: lights only while the Sun is this low (deg)
    zp0: dict = field(default_factory=lambda: dict(ZP0))            #: mag for 1 ADU/s at X=0
    extinction: dict = field(default_factory=lambda: dict(EXTINCTION))  #: mag/airmass
    sky_mag: dict = field(default_factory=lambda: dict(SKY_MAG))    #: mag/arcsec^2 at the zenith
    filter_bands: dict = field(default_factory=lambda: dict(FILTER_BANDS))  #: FILTER -> catalog band
    #: the instrumental system's colour terms, {FILTER: T}: ``m_std - m_inst = T * colour +
    #: zero point`` with the colour of ``COLOUR_OF_BAND`` (B and V filters B-V, R filters V-R),
    #: as AAVSO names them Tb_bv, Tv_bv, Tr_vr; empty = the filters are the catalog bands
    colour_terms: dict = field(default_factory=dict)
    seeing_arcsec: tuple[float, float] = (2.0, 3.3)  #: FWHM range through a night (arcsec)
    halo_fraction: float = 0.10           #: flux fraction of the PSF's wide Gaussian
    halo_sigma_ratio: float = 2.0         #: sigma(halo) / sigma(core)
    # --- stars and catalog ----------------------------------------------------------------
    mag_range: tuple[float, float] = (9.0, 18.5)  #: V range of the field stars
    mag_slope: float = 0.30               #: dlog10 N / dV of the power-law magnitude distribution
    catalog_limit: float = 16.5           #: catalog holds stars with V brighter than this
    catalog_error_range: tuple[float, float] = (0.01, 0.05)  #: e_mag at the bright end / at the limit
    src_position_sigma: float = 0.03      #: .SRC position error per axis (px), truncated at 7/3 sigma
    src_snr_min: float = 5.0              #: .SRC lists stars with peak S/N above this
    # --- variables ------------------------------------------------------------------------
    var_mag_range: tuple[float, float] = (11.5, 13.5)  #: V of the variables (raised if they would saturate)
    eb_period: float = 0.37               #: eclipsing binary period (d)
    eb_depths: tuple[float, float] = (0.60, 0.25)  #: primary, secondary eclipse depth (mag)
    eb_width: float = 0.08                #: full eclipse width (phase)
    pulsator_period: float = 0.0827       #: pulsator period (d)
    pulsator_amplitude: float = 0.15      #: pulsator semi-amplitude (mag)
    # --- exoplanet transit night (all off by default; see simulate/transit.py) -------------
    #: a transiting planet: {"star": id or None (an isolated star of V 11-12.5 is chosen),
    #: "period": d, "t0": BJD_TDB or None (middle of night 1), "rprs", "ars", "inc": deg,
    #: "u1", "u2", "neighbours": blended stars near the host, some eclipsing (see
    #: simulate.transit.NEIGHBOUR_KEYS)}; missing keys take simulate.transit.TRANSIT_DEFAULTS;
    #: truth/transit.json
    transit: dict | None = None
    red_noise: float = 0.0                #: rms (mag per unit relative FWHM change) of each
    #: star's seeing sensitivity; > 0 also adds colour extinction -0.03 (B-V) (X - 1) mag
    clouds: float = 0.0                   #: depth (0-1) of the transparency dips of passing clouds

    # derived ----------------------------------------------------------------------------
    @property
    def nx(self) -> int:
        return int(self.width) if self.width else self.camera_width // self.binning

    @property
    def ny(self) -> int:
        return int(self.height) if self.height else self.camera_height // self.binning

    @property
    def scale(self) -> float:
        """Binned pixel scale (arcsec/px)."""
        return self.pixel_scale * self.binning

    def exptime_for(self, filt: str) -> float:
        if isinstance(self.exptime, dict):
            return float(self.exptime[filt])
        return float(self.exptime)

    def band_for(self, filt: str) -> str:
        return self.filter_bands.get(filt, "V")

    def colour_term_mag(self, filt: str, b_v, v_r):
        """``m_inst - m_std`` (mag, before the zero point) of stars of true colours ``b_v``,
        ``v_r`` in filter ``filt``: ``-T * colour`` (0 without a colour term)."""
        term = float(self.colour_terms.get(filt, 0.0))
        if term == 0.0:
            return 0.0
        colour = b_v if COLOUR_OF_BAND[self.band_for(filt)] == ("B", "V") else v_r
        return -term * colour

    def check(self) -> None:
        """Raise ValueError for a spec that cannot be simulated."""
        if self.nights < 1 or self.binning < 1 or self.lights_per_filter < 0:
            raise ValueError("nights and binning must be >= 1, lights_per_filter >= 0")
        if self.nx < 16 or self.ny < 16:
            raise ValueError(f"image {self.nx}x{self.ny} is too small (16x16 at least)")
        if self.calibration_every < 1:
            raise ValueError("calibration_every must be >= 1")
        if not (0.0 <= self.clouds < 1.0 and self.red_noise >= 0.0):
            raise ValueError("clouds must be in [0, 1), red_noise >= 0")
        if not (self.telescope_diameter_cm > 0 and self.scintillation_factor >= 0):
            raise ValueError("telescope_diameter_cm must be > 0, scintillation_factor >= 0")
        from .styles import check_style  # styles imports this module
        check_style(self)
        for f, term in self.colour_terms.items():
            if self.band_for(f) not in COLOUR_OF_BAND or not isinstance(term, (int, float)):
                raise ValueError(f"colour_terms[{f!r}] = {term!r}: a number for a filter "
                                 f"measured in B, V or R")
        for f in self.filters:
            for name, table in (("zp0", self.zp0), ("extinction", self.extinction),
                                ("sky_mag", self.sky_mag)):
                if f not in table:
                    raise ValueError(f"filter {f!r} has no {name} value in the spec")


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Where :func:`simulate_night` wrote things, and the truth tables in memory.

    ``stars``, ``variables`` and ``frames`` are astropy Tables with the same columns as
    ``truth/stars.csv``, ``truth/variables.csv`` and ``truth/frames.csv``.
    """

    out_dir: Path
    incoming: Path
    config_path: Path
    catalog_path: Path
    vsx_path: Path
    truth_dir: Path
    stars: Table = field(repr=False)
    variables: Table = field(repr=False)
    frames: Table = field(repr=False)
    spec: SimulationSpec = field(repr=False)
    seed: int = 0
    nights: tuple[str, ...] = ()

    def path(self, rel: str) -> Path:
        """A frame's absolute path from its ``file`` (relative to ``incoming``)."""
        return self.incoming / rel

    def frame_paths(self, kind: str | None = None, night: str | None = None,
                    filter: str | None = None) -> list[Path]:
        """Raw frames, optionally of one kind (bias/dark/flat/light), night, filter."""
        out = []
        for row in self.frames:
            if kind and row["kind"] != kind:
                continue
            if night and row["night"] != night:
                continue
            if filter and row["filter"] != filter:
                continue
            out.append(self.incoming / row["file"])
        return out

    def lights(self, night: str | None = None, filter: str | None = None) -> list[Path]:
        return self.frame_paths("light", night, filter)

    def light_truth(self, light: str | Path) -> Table:
        """The per-star truth of one light (``truth/lights/<stem>.csv``), by path or stem."""
        stem = Path(light).stem
        return read_csv_table(self.truth_dir / "lights" / f"{stem}.csv")

    def frame_row(self, light: str | Path):
        """The ``frames`` row of a raw frame, by path or stem."""
        stem = Path(light).stem
        for row in self.frames:
            if Path(row["file"]).stem == stem:
                return row
        raise KeyError(stem)


def read_csv_table(path: Path) -> Table:
    """Read one of the truth CSVs into a Table (numbers as float/int, empty cells as '')."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    cols = {}
    for j, name in enumerate(header):
        raw = [r[j] for r in body]
        cols[name] = raw if name in STRING_COLUMNS else _convert(raw)
    return Table(cols, names=header) if body else Table(names=header)


#: truth columns that stay text even when they look like numbers
STRING_COLUMNS = {"file", "kind", "night", "filter", "qc", "date_obs", "catalog_id", "var_type",
                  "type", "model", "band", "name"}


def _convert(values: list[str]):
    if all(v == "" for v in values):
        return values
    for kind in (int, float):
        try:
            return [kind(v) for v in values]
        except ValueError:
            continue
    try:  # floats with empty cells -> NaN
        return [float(v) if v != "" else float("nan") for v in values]
    except ValueError:
        return values


def replace_spec(spec: SimulationSpec, **overrides) -> SimulationSpec:
    """``spec`` with ``overrides`` (SimulationSpec field names; lists of frames and filters
    become tuples, as the spec is frozen and hashable); an unknown name is a TypeError rather
    than a silently ignored parameter."""
    unknown = set(overrides) - {f.name for f in dataclasses.fields(SimulationSpec)}
    if unknown:
        raise TypeError(f"unknown simulation parameter(s): {', '.join(sorted(unknown))}")
    for key in ("filters", "cloudy_frames", "trailed_frames", "defocused_frames",
                "bright_sky_frames", "warm_frames"):
        if key in overrides and overrides[key] is not None:
            overrides[key] = tuple(overrides[key])
    return dataclasses.replace(spec, **overrides)
