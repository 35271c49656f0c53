"""Raw frames in the header style of each acquisition program (``SimulationSpec.style``).

The scene, camera and truth are the same for every style; a style only decides how a frame is
stored: its path under ``incoming``, its header cards (keyword names, value formats, comments,
order, as the real headers in ``shared/headers/`` show), the row order of its data and, for a
12- or 14-bit camera, how the values sit in the 16-bit file. ``thesky`` with the default
options is the simulator's original output, written by the original code path.

Conventions a reader must undo (``truth/frames.csv`` keeps the true UTC start in ``date_obs``):

* ``DATE-OBS`` is the UTC start except: ``robotic`` (local time with its offset, ``-0500``),
  ``dwarf`` (UTC of the END of the exposure; the Seestar's is the start, its file name the local
  time the file was written, ~3 s after the end); ``maxim_old`` and ``iraf`` hold the
  date only, the time being in ``TIME-OBS`` / ``UT``.
* Fractions are truncated, not rounded, to the digits the program writes (MaxIm 5: 1 s, MaxIm 6:
  10 ms, ``iraf`` UT: 0.1 s); N.I.N.A., SGP, SharpCap (7 digits) and Seestar (6 digits) carry a
  sub-millisecond part the truth (ms) does not: header - truth is in [0, 1) ms.
* ``ROWORDER = 'TOP-DOWN'`` (``maxim``, ``nina``, ``sharpcap``): file row ``j`` is image row
  ``ny - 1 - j``. Every truth pixel position refers to the image after that flip is undone
  (bottom-up, as FITS intends); the WCS in the file counts the stored rows, as a solver of the
  file writes it (:func:`stored_rows_wcs`); ``truth/frames.csv`` says ``row_order = top-down``.
* ``bit_depth`` 12/14: ZWO/QHY-SDK programs (``nina``, ``sgp``, ``sharpcap``, ``indi``) store the
  ADC value left-shifted into 16 bits (multiples of 16 or 4, saturating at 65520 or 65532; as
  SharpCap's EGAINSAV = EGAIN / 16 shows); the others store the ADC value itself (0..4095 or
  0..16383), so the whole camera is simulated in those native ADU (:func:`effective_spec`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import zlib

import erfa
import numpy as np
from astropy.io import fits

from . import ephemeris as eph
from .spec import SimulationSpec

STYLES = ("thesky", "maxim_old", "maxim", "nina", "sgp", "sharpcap", "indi", "lco", "iraf",
          "robotic", "seestar", "dwarf")
TOP_DOWN = frozenset({"maxim", "nina", "sharpcap"})
#: programs whose camera SDK left-shifts a 12/14-bit ADC value into 16 bits
SHIFTED = frozenset({"nina", "sgp", "sharpcap", "indi"})
#: smart telescopes: one filter, always written under the device's own name
DEVICE_FILTER = {"seestar": "IRCUT", "dwarf": "Astro"}
#: no filter wheel: one filter per night (SharpCap writes no FILTER at all)
SINGLE_FILTER = frozenset({"seestar", "dwarf", "sharpcap"})
#: styles with no frame-type keyword: glob on the path relative to incoming -> kind
KIND_BY_PATH = {
    "sharpcap": (("*/darks/*", "dark"), ("*/flats/*", "flat"), ("*/bias/*", "bias")),
    "robotic": (("*/Bias/*", "bias"), ("*/Dark/*", "dark"), ("*/Flat/*", "flat"),
                ("*/Light/*", "light")),
    "dwarf": (("*/DWARF_DARK/*", "dark"), ("*/DWARF_RAW_*", "light")),
}
DEFAULT_KIND = {"sharpcap": "light"}
WCS_KEYS = ("CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2",
            "CD2_1", "CD2_2", "RADECSYS", "EQUINOX")
ARCSEC_PER_RAD = 206264.80624709636


def is_original(spec: SimulationSpec) -> bool:
    """True when the frames are written exactly as before styles existed."""
    return (spec.style == "thesky" and spec.wcs and spec.bit_depth == 16
            and spec.drift_px_per_hour == 0.0)


def check_style(spec: SimulationSpec) -> None:
    """Raise ValueError for a style option the simulator cannot honour."""
    if spec.style not in STYLES:
        raise ValueError(f"unknown style {spec.style!r}; styles: {', '.join(STYLES)}")
    if spec.bit_depth not in (12, 14, 16):
        raise ValueError(f"bit_depth must be 12, 14 or 16, not {spec.bit_depth}")
    if spec.drift_px_per_hour < 0:
        raise ValueError("drift_px_per_hour must be >= 0")


def effective_spec(spec: SimulationSpec) -> SimulationSpec:
    """The spec the camera is simulated with for this style.

    Seestar and DWARF have one filter (the first of ``spec.filters``); a Seestar S50 has a
    12-bit sensor and takes no calibration frames; a DWARF takes its darks at the lights'
    exposure. An unshifted 12/14-bit camera is simulated
    in its own ADU: every ADU quantity divided by 2**(16 - bits) (gain multiplied), so that
    every truth table stays in the units of the file.
    """
    check_style(spec)
    changes: dict = {}
    if spec.style in SINGLE_FILTER:
        changes["filters"] = spec.filters[:1]
    if spec.style == "seestar":
        changes.update(calibration_frames=False, bit_depth=12 if spec.bit_depth == 16
                       else spec.bit_depth)
    if spec.style == "dwarf":  # its dark library is taken at the lights' exposure and gain
        changes["dark_exptime"] = spec.exptime_for(spec.filters[0])
    bits = changes.get("bit_depth", spec.bit_depth)
    k = 2 ** (16 - bits)
    if k > 1 and spec.style in SHIFTED:
        changes["saturation"] = min(spec.saturation, (2 ** bits - 1) * k)
    elif k > 1:
        dmag = 2.5 * math.log10(k)
        changes.update(
            gain=spec.gain * k, bias_level=spec.bias_level / k,
            bias_column_rms=spec.bias_column_rms / k, dark_current=spec.dark_current / k,
            hot_pixel_rate=tuple(r / k for r in spec.hot_pixel_rate),
            saturation=min(spec.saturation, 2 ** bits - 1),
            flat_level_range=tuple(v / k for v in spec.flat_level_range),
            cr_energy=tuple(v / k for v in spec.cr_energy),
            zp0={f: z - dmag for f, z in spec.zp0.items()})
    return dataclasses.replace(spec, **changes) if changes else spec


def writes_frame(spec: SimulationSpec, kind: str) -> bool:
    """Whether this style's night holds a frame of ``kind`` (DWARF takes only darks)."""
    if kind == "light":
        return True
    if not spec.calibration_frames:
        return False
    return spec.style != "dwarf" or kind == "dark"


def stored_data(spec: SimulationSpec, data: np.ndarray) -> np.ndarray:
    """The rendered uint16 image as the program stores it (shifted ADC values, row order)."""
    k = 2 ** (16 - spec.bit_depth)
    if k > 1 and spec.style in SHIFTED:
        data = (np.rint(data / k) * k).clip(0, spec.saturation).astype(np.uint16)
    if spec.style in TOP_DOWN:
        data = data[::-1]
    return data


# --- drift ------------------------------------------------------------------------------

def drift_vector(spec: SimulationSpec) -> tuple[float, float]:
    """Drift of the pointing, binned px per hour along (x, y): mostly in Dec, as a polar
    misalignment drifts, at 30 degrees to the y axis."""
    a = math.radians(30.0)
    return spec.drift_px_per_hour * math.sin(a), spec.drift_px_per_hour * math.cos(a)


def widen_field(sim, hours: float) -> dict:
    """Add stars, at the field's density, over the area the drift of ``hours`` uncovers, so
    a drifted light shows stars everywhere. Existing stars, variables and catalog errors stay
    as they were (new stars are appended). Returns the new field's arrays (0-based x, y,
    V, BV, VR)."""
    spec = sim.spec
    vx, vy = drift_vector(spec)
    ex, ey = abs(vx) * hours, abs(vy) * hours
    st = sim.stars
    x, y = np.asarray(st["x_nominal"]) - 1.0, np.asarray(st["y_nominal"]) - 1.0
    x0, x1, y0, y1 = x.min(), x.max(), y.min(), y.max()
    area = (x1 - x0) * (y1 - y0)
    # stars move by +d when the pointing moves by -d: the new sky lies at -drift
    nx0, ny0 = x0 - ex, y0 - ey
    n_new = int(round(len(st) * ((x1 - nx0) * (y1 - ny0) - area) / area))
    rng = np.random.default_rng([sim.seed, 11, 1])
    px = rng.uniform(nx0, x1, 4 * n_new + 16)
    py = rng.uniform(ny0, y1, 4 * n_new + 16)
    outside = (px < x0) | (py < y0)
    px, py = px[outside][:n_new], py[outside][:n_new]
    from .field import power_law_mags
    v = power_law_mags(rng, px.size, *spec.mag_range, spec.mag_slope)
    bv = rng.triangular(0.0, 0.6, 1.6, px.size)
    vr = 0.55 * bv + rng.normal(0.0, 0.03, px.size)
    old_v = np.asarray(st["V"])
    fields = {"x": np.concatenate([x, px]), "y": np.concatenate([y, py]),
              "V": np.concatenate([old_v, v]),
              "BV": np.concatenate([np.asarray(st["B"]) - old_v, bv]),
              "VR": np.concatenate([old_v - np.asarray(st["R"]), vr])}
    var_type = np.concatenate([np.asarray(st["var_type"], dtype=object),
                               np.array([""] * px.size, dtype=object)])
    names = ("star_id", "type", "period_days", "epoch_jd", "depth_primary", "depth_secondary",
             "eclipse_width_phase", "amplitude", "model")
    var_rows = [{k: row[k] for k in names} for row in sim.variables]
    sim._set_field(fields, var_rows, var_type)  # the Simulator's own bookkeeping of a field
    return fields


# --- time and angle formats -------------------------------------------------------------

def sub_ms(plan) -> int:
    """A fixed sub-millisecond part (units of 0.1 us) for programs that write 7 digits."""
    return zlib.crc32(plan.file.encode()) % 10_000


def iso(ms: int, digits: int, sub: int = 0, offset_h: int = 0, sep: str = "T") -> str:
    """ISO 8601 of ``ms`` (+ ``sub`` x 0.1 us) shifted by ``offset_h`` hours, the fraction
    truncated to ``digits`` digits."""
    t = (int(ms) + offset_h * 3_600_000) * 10_000 + sub
    sec, frac = divmod(t, 10_000_000)
    dt = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=sec)
    text = dt.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    return text + ("." + f"{frac:07d}"[:digits] if digits else "")


def sexa(value: float, decimals: int, sign: bool = False, sep: str = " ",
         lead: int = 2) -> str:
    """'DD MM SS.ss' (any separator), truncated like a display; ``lead`` digits of degrees."""
    neg = value < 0
    scale = 10 ** decimals
    total = math.floor(abs(value) * 3600.0 * scale + 1e-6)
    d, rem = divmod(total, 3600 * scale)
    m, s = divmod(rem, 60 * scale)
    sec = f"{s // scale:02d}" + (f".{s % scale:0{decimals}d}" if decimals else "")
    text = f"{int(d):0{lead}d}{sep}{int(m):02d}{sep}{sec}"
    return ("-" if neg else "+" if sign else "") + text


def jnow(ra: float, dec: float, jd: float) -> tuple[float, float]:
    """J2000 (ICRS) RA, Dec (deg) precessed to the mean equator and equinox of ``jd``."""
    rbp = erfa.pmat06(eph.MJD0, jd - eph.MJD0 + eph.TT_MINUS_UTC)
    v = rbp @ eph._unit_vectors(ra, dec)
    return (math.degrees(math.atan2(v[1], v[0])) % 360.0,
            math.degrees(math.asin(max(-1.0, min(1.0, v[2])))))


# --- the frame as a program stores it ----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Frame:
    """What one style makes of a rendered frame (times in integer UTC ms)."""

    plan: object              #: the scene's FramePlan (kind, filter, exptime, start_ms, ...)
    spec: SimulationSpec
    wcs: tuple                #: the light's WCS cards (astropy Cards), () for calibration
    data: np.ndarray          #: the stored data (for DATAMIN/DATAMAX)

    @property
    def kind(self) -> str:
        return self.plan.kind

    @property
    def light(self) -> bool:
        return self.plan.kind == "light"

    @property
    def start(self) -> int:
        return self.plan.start_ms

    @property
    def end(self) -> int:
        return self.plan.start_ms + int(round(self.plan.exptime * 1000))

    @property
    def tz(self) -> int:
        """Hours from UTC of the observatory clock: the site's standard zone."""
        return int(round(self.spec.longitude / 15.0))

    @property
    def filter(self) -> str:
        return DEVICE_FILTER.get(self.spec.style, self.plan.filter)

    @property
    def b(self) -> int:
        return self.spec.binning

    @property
    def pix_um(self) -> float:
        return round(self.spec.pixel_size_um * self.spec.binning, 6)

    @property
    def focal_mm(self) -> float:
        return round(ARCSEC_PER_RAD * self.spec.pixel_size_um / 1000.0 / self.spec.pixel_scale,
                     1)

    @property
    def radec(self) -> tuple[float, float]:
        if self.light:
            return self.plan.crval
        return self.spec.field_ra, self.spec.field_dec

    @property
    def object(self) -> str:
        return self.spec.object_name

    def wcs_cards(self) -> list:
        return list(self.wcs) if (self.light and self.spec.wcs) else []


def light_wcs_cards(header: fits.Header) -> tuple:
    """The rendered light's TAN WCS cards, as astropy formats them (solvers write them so)."""
    return tuple(fits.Card(k, header[k], header.comments[k]) for k in WCS_KEYS if k in header)


def stored_rows_wcs(cards: tuple, ny: int) -> tuple:
    """WCS cards of the bottom-up image rewritten for its rows stored top-down, as a solver
    (ASTAP, astrometry.net) of the file writes them: FITS pixel coordinates count the
    stored rows, so ``CRPIX2 -> ny + 1 - CRPIX2`` and the CD matrix's second column
    changes sign."""
    out = []
    for c in cards:
        value = c.value
        if c.keyword == "CRPIX2":
            value = ny + 1.0 - float(value)
        elif c.keyword in ("CD1_2", "CD2_2"):
            value = -float(value)
        out.append(fits.Card(c.keyword, value, c.comment))
    return tuple(out)


def frame_file(spec: SimulationSpec, plan) -> str:
    """Path of a frame relative to ``incoming`` as this program names and files it."""
    if spec.style == "thesky":
        return plan.file
    return FILE_NAMERS[spec.style](Frame(plan, spec, (), np.zeros((1, 1))))


def frame_cards(spec: SimulationSpec, plan, header: fits.Header, data: np.ndarray) -> list:
    """The header cards this program writes for the frame (after the mandatory cards)."""
    from .style_headers import HEADER_MAKERS
    if spec.style == "thesky":  # today's cards; without a WCS, the scale from FOCALLEN
        cards = [fits.Card(k, v, header.comments[k]) for k, v in header.items()
                 if spec.wcs or k not in WCS_KEYS]
        if not spec.wcs and plan.kind == "light":
            cards.append(fits.Card("FOCALLEN", Frame(plan, spec, (), data).focal_mm,
                                   "focal length (mm)"))
        return cards
    wcs = light_wcs_cards(header) if plan.kind == "light" else ()
    if spec.style in TOP_DOWN:
        wcs = stored_rows_wcs(wcs, data.shape[0])
    cards, seen = [], set()
    for c in HEADER_MAKERS[spec.style](Frame(plan, spec, wcs, data)):
        # a solver's WCS repeats e.g. EQUINOX; the program's own card stays
        if c.keyword in seen and c.keyword not in ("COMMENT", "HISTORY"):
            continue
        seen.add(c.keyword)
        cards.append(c)
    return cards


def headers_config(spec: SimulationSpec) -> dict:
    """The ``[headers]`` settings a night of this style needs: kind_by_path, default_kind,
    filter_aliases (the device's filter name -> the simulated filter)."""
    aliases = {}
    if spec.style in DEVICE_FILTER:
        aliases[DEVICE_FILTER[spec.style]] = spec.filters[0]
    default_filter = spec.filters[0] if spec.style == "sharpcap" else ""
    return {"kind_by_path": dict(KIND_BY_PATH.get(spec.style, ())),
            "default_kind": DEFAULT_KIND.get(spec.style, ""),
            "filter_aliases": aliases, "default_filter": default_filter}


# --- file names ------------------------------------------------------------------------------

def _night_iso(fr: Frame) -> str:
    n = fr.plan.night
    return f"{n[:4]}-{n[4:6]}-{n[6:]}"


def _maxim_name(fr: Frame) -> str:
    """MaxIm DL Autosave: <name>-<seq><filter>.fit."""
    i = fr.plan.index + 1
    head = {"light": fr.object, "bias": "Bias", "dark": "Dark", "flat": "Flat"}[fr.kind]
    filt = fr.filter if fr.kind in ("light", "flat") else ""
    return f"{fr.plan.night}/{head}-{i:03d}{filt}.fit"


def _nina_name(fr: Frame) -> str:
    """N.I.N.A.'s default pattern: $$DATEMINUS12$$/$$IMAGETYPE$$/$$DATETIME$$_$$FILTER$$_
    $$SENSORTEMP$$_$$EXPOSURETIME$$s_$$FRAMENR$$.fits (local time)."""
    local = iso(fr.start, 0, 0, fr.tz).replace("T", "_").replace(":", "-")
    filt = fr.filter or fr.spec.filters[-1]
    return (f"{_night_iso(fr)}/{fr.kind.upper()}/{local}_{filt}_{fr.plan.ccd_temp:.2f}_"
            f"{fr.plan.exptime:.2f}s_{fr.plan.index + 1:04d}.fits")


def _sgp_name(fr: Frame) -> str:
    filt = fr.filter if fr.kind in ("light", "flat") else "NoFilter"
    return (f"{fr.plan.night}/{fr.object}/{fr.object}_{fr.kind.capitalize()}_{filt}_"
            f"{fr.plan.exptime:g}s_frame{fr.plan.index + 1}.fit")


def _sharpcap_name(fr: Frame) -> str:
    i = fr.plan.index + 1
    folder = {"light": fr.object, "bias": "bias", "dark": "darks", "flat": "flats"}[fr.kind]
    clock = iso(fr.start, 0, 0, fr.tz)[11:].replace(":", "_")
    return f"{_night_iso(fr)}/{folder}/{clock}_{i:05d}.fits"


def _indi_name(fr: Frame) -> str:
    """Ekos: <target>/<Type>/<filter>/<target>_<Type>_<filter>_<t>_secs_<local>_<n>.fits."""
    typ = fr.kind.capitalize()
    local = iso(fr.start, 0, 0, fr.tz).replace(":", "-")
    obj = fr.object.replace(" ", "_")
    if fr.kind in ("light", "flat"):
        return (f"{fr.plan.night}/{obj}/{typ}/{fr.filter}/{obj}_{typ}_{fr.filter}_"
                f"{fr.plan.exptime:g}_secs_{local}_{fr.plan.index + 1:03d}.fits")
    return (f"{fr.plan.night}/{typ}/{typ}_{fr.plan.exptime:g}_secs_{local}_"
            f"{fr.plan.index + 1:03d}.fits")


def _lco_name(fr: Frame) -> str:
    """LCO: <site><tel>-<inst>-<DAY-OBS>-<frame>-<e|b|d|f>00.fits."""
    code = {"light": "e", "bias": "b", "dark": "d", "flat": "f"}[fr.kind]
    num = {"flat": 0, "light": 200, "bias": 600, "dark": 800}[fr.kind] + fr.plan.index + 1
    return f"{fr.plan.night}/raw/sim1m099-fa99-{fr.plan.night}-{num:04d}-{code}00.fits"


def _iraf_name(fr: Frame) -> str:
    """Sequential numbers: the kind is only in the header."""
    num = {"flat": 0, "light": 200, "bias": 600, "dark": 800}[fr.kind] + fr.plan.index + 1
    return f"{fr.plan.night}/n1.{num:04d}.fits"


def _robotic_name(fr: Frame) -> str:
    folder = fr.kind.capitalize()
    filt = f"_{fr.filter}" if fr.kind in ("light", "flat") else ""
    name = fr.object if fr.light else fr.kind
    return f"{fr.plan.night}/{folder}/{name}{filt}_{fr.plan.index + 1:03d}.fits"


def _seestar_name(fr: Frame) -> str:
    """Light_<target>_<t>s_IRCUT_<local time the file was written>.fit."""
    local = iso(fr.end + 3_000, 0, 0, fr.tz)
    stamp = local[:10].replace("-", "") + "-" + local[11:].replace(":", "")
    return (f"{fr.plan.night}/{fr.object}_sub/Light_{fr.object}_{fr.plan.exptime:.1f}s_"
            f"{fr.filter}_{stamp}.fit")


def _dwarf_name(fr: Frame) -> str:
    local = iso(fr.end, 3, 0, fr.tz)
    stamp = local[:10].replace("-", "") + "-" + local[11:].replace(":", "").replace(".", "")
    t, temp = f"{fr.plan.exptime:g}", round(fr.plan.ccd_temp)
    if fr.kind == "dark":
        return (f"{fr.plan.night}/DWARF_DARK/tele_exp_{t}_gain_60_bin_{fr.b}_{fr.plan.night}/"
                f"raw_{t}s_60_{fr.plan.index + 1:04d}_{stamp}_{temp}C.fits")
    return (f"{fr.plan.night}/DWARF_RAW_TELE_{fr.object}_EXP_{t}_GAIN_60_{fr.plan.night}/"
            f"{fr.object}_{t}s60_Astro_{stamp}_{temp}C.fits")


FILE_NAMERS = {"maxim_old": _maxim_name, "maxim": _maxim_name, "nina": _nina_name,
               "sgp": _sgp_name, "sharpcap": _sharpcap_name, "indi": _indi_name,
               "lco": _lco_name, "iraf": _iraf_name, "robotic": _robotic_name,
               "seestar": _seestar_name, "dwarf": _dwarf_name}
