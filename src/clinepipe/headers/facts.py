"""One FITS header (and the file's path) -> :class:`HeaderFacts`: what the frame is, when it
was taken, with what, each fact with the keyword it came from, and what is wrong or odd.

The reading order of every fact is the one of the issue "Any camera's files"; the profile
(:mod:`.profiles`) only changes what a value means where programs disagree.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath

from clinepipe.errors import ConfigError
from clinepipe.headers.kinds import (
    FRAME_TYPE_KEYS,
    KINDS,
    kind_from_path,
    kind_of_value,
    match_kind_by_path,
)
from clinepipe.headers.optics import read_pointing, read_scale, read_site, site_problem
from clinepipe.headers.problem import Problem
from clinepipe.headers.profiles import (
    GAIN_IS_SETTING,
    PROFILES,
    SMART_TELESCOPES,
    detect_profile,
)
from clinepipe.headers.times import iso_ms, read_time
from clinepipe.headers.values import comment, first, number, raw, text

__all__ = ["HeaderFacts", "HeaderRules", "read_header_facts"]

_EXPTIME_KEYS = ("EXPTIME", "EXPOSURE", "EXP_TIME", "ITIME", "TELAPSE", "EXP")
_TEMP_KEYS = ("CCD-TEMP", "CCD_TEMP", "CCDTEMP", "CCDATEMP", "TEMPERAT", "DET-TEMP", "CAMTEMP")
#: FILTER values that mean no filter keyword at all (-> default_filter)
_NO_FILTER = {"", "none", "no filter", "n/a"}
#: the wheel positions with no filter in, for choosing between FILTER1 and FILTER2 ("Clear"
#: alone in FILTER is a filter name, which [headers.filter_aliases] may map, e.g. to CV)
_CLEAR = _NO_FILTER | {"clear", "open", "empty", "air"}


@dataclass(frozen=True)
class HeaderRules:
    """The ``[headers]`` section of ``clinepipe.toml``.

    ``kind_by_path`` is a tuple of ``(glob, kind)`` on the path relative to ``incoming``, first
    match wins, overriding the header; ``filter_aliases`` maps a camera's filter names to the
    names used everywhere else. Invalid values raise :class:`ConfigError` naming the key.
    """

    profile: str = "auto"
    default_kind: str = ""
    default_filter: str = "C"
    kind_by_path: tuple[tuple[str, str], ...] = ()
    filter_aliases: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.profile != "auto" and self.profile not in PROFILES:
            raise ConfigError(f"[headers] profile = '{self.profile}' is not a profile clinepipe "
                              f"knows (auto, {', '.join(PROFILES)}).", reason="bad [headers] profile")
        if self.default_kind not in ("",) + KINDS:
            raise ConfigError(f"[headers] default_kind = '{self.default_kind}' must be \"\", "
                              "\"light\", \"bias\", \"dark\" or \"flat\".",
                              reason="bad [headers] default_kind")
        for glob, kind in self.kind_by_path:
            if kind not in KINDS + ("skipped",):
                raise ConfigError(f"[headers.kind_by_path] \"{glob}\" = '{kind}' must be light, "
                                  "bias, dark, flat or skipped.", reason="bad [headers.kind_by_path]")


@dataclass(frozen=True)
class HeaderFacts:
    """What one header says, each fact with the keyword it came from (``*_source``).

    Units: ``exptime`` s; ``temperature`` deg C; ``gain`` e-/ADU; ``saturation`` ADU;
    ``ra``/``dec`` degrees (as written, J2000 or JNow); ``pixel_scale`` arcsec per binned
    pixel; ``site_lat``/``site_lon`` degrees east-positive, ``site_elevation`` m; ``jd_start``/
    ``jd_mid`` UTC Julian dates; ``date_obs`` the UTC exposure start ``YYYY-MM-DDThh:mm:ss.sss``;
    ``time_precision`` s; ``shape`` numpy ``(ny, nx)``; ``xorg``/``yorg`` binned 0-based.
    ``kind`` is light/bias/dark/flat, ``skipped`` (a frame type clinepipe does not use), or
    ``""`` when unknown. ``problems`` lists what is wrong (``fatal``) or odd.
    """

    path: str
    profile: str
    profile_source: str
    kind: str
    kind_source: str
    kind_value: str
    dark_for_flats: bool
    stacked: bool
    date_obs: str | None
    jd_start: float | None
    jd_mid: float | None
    time_source: str
    time_offset: str
    time_precision: float | None
    time_note: str
    exptime: float | None
    exptime_source: str
    binning: int | None
    binning_source: str
    filter: str | None
    filter_source: str
    temperature: float | None
    temperature_source: str
    gain: float | None
    gain_source: str
    saturation: float | None
    saturation_source: str
    ra: float | None
    dec: float | None
    pointing_source: str
    pixel_scale: float | None
    scale_source: str
    site_lat: float | None
    site_lon: float | None
    site_elevation: float | None
    site_source: str
    top_down: bool
    xorg: int
    yorg: int
    object: str | None
    shape: tuple[int, int] | None
    problems: tuple[Problem, ...]
    start: datetime | None = None

    @property
    def ok(self) -> bool:
        """True when the pipeline can use the file as it is (no fatal problem)."""
        return not any(p.fatal for p in self.problems)

    def site_warning(self, config_lat: float, config_lon: float) -> Problem | None:
        """A :class:`Problem` when this header's site is more than 1 deg from ``[site]`` (degrees,
        east positive) or is it with the other sign of longitude; None when it agrees or the
        header names no site."""
        return site_problem(self.site_lat, self.site_lon, self.site_source, config_lat, config_lon)


def _kind(header, relpath: str, rules: HeaderRules, profile: str, problems: list):
    """``(kind, source, value, master)``; kind "" when nothing says (a fatal problem added)."""
    kind, glob = match_kind_by_path(relpath, rules.kind_by_path)
    if kind:
        return kind, f'[headers.kind_by_path] "{glob}"', "", False
    key, value = first(header, FRAME_TYPE_KEYS)
    if key:
        kind, master = kind_of_value(str(value))
        if kind is None:
            problems.append(Problem(f"frame type '{value}' skipped",
                                    f"{key} = '{value}' is not a frame type clinepipe uses "
                                    "(light, bias, dark, flat): the file is skipped.", ""))
            return "skipped", key, str(value), master
        return kind, key, str(value), master
    name = PurePosixPath(relpath).name
    if profile in SMART_TELESCOPES:
        if name.lower().startswith("failed"):
            problems.append(Problem("rejected by the telescope",
                                    f"the file name '{name}' says the {profile} telescope rejected "
                                    "this frame: it is skipped.", ""))
            return "skipped", "file name", name, False
        kind, part = kind_from_path(relpath)
        if kind:
            return kind, f"path '{part}'", part, False
        return "light", "file name", name, False  # their calibration frames sit in named folders
    if rules.default_kind:
        return rules.default_kind, "[headers] default_kind", "", False
    guess, part = kind_from_path(relpath)
    guess = "dark" if guess == "darkflat" else guess
    fix = f'[headers.kind_by_path] "*{part}*" = "{guess}"' if guess else '[headers] default_kind = "light"'
    problems.append(Problem(
        "no frame type",
        "has no frame-type keyword (" + ", ".join(FRAME_TYPE_KEYS[:5]) + ") and neither "
        "[headers] default_kind nor a [headers.kind_by_path] pattern says what it is.", fix, True))
    return "", "", "", False


_NAME_EXP = re.compile(r"(?:^|[_-])exp_(\d+(?:\.\d+)?)", re.IGNORECASE)
_NAME_BIN = re.compile(r"(?:^|[_-])bin_(\d)", re.IGNORECASE)


def _exptime(header, kind: str, relpath: str, profile: str, problems: list):
    for key in _EXPTIME_KEYS:
        if raw(header, key) is None:
            continue
        value = number(header, key)
        if value is None:
            problems.append(Problem(f"unreadable {key}", f"{key} = '{raw(header, key)}' is not a number.",
                                    "", True))
            return None, key
        if value < 0:
            problems.append(Problem("negative EXPTIME", f"has a negative {key} {value:g}.", "", True))
            return None, key
        return value, key
    if profile == "dwarf" and (m := _NAME_EXP.search(PurePosixPath(relpath).name)):
        return float(m.group(1)), "file name"
    if kind == "bias":
        return 0.0, "bias (no exposure keyword)"
    if kind in ("", "skipped"):
        return None, ""
    problems.append(Problem("missing EXPTIME", "has no exposure time (" + ", ".join(_EXPTIME_KEYS[:5])
                            + ").", "", True))
    return None, ""


def _split_binning(value) -> list:
    return [v for v in re.split(r"[\s*x×,]+", str(value).strip().lower()) if v]


def _binning(header, relpath: str, profile: str, problems: list):
    pairs = [("XBINNING", "YBINNING"), ("BINX", "BINY"), ("CCDSUM", None), ("XBIN", "YBIN"),
             ("CCDXBIN", "CCDYBIN"), ("BINNING", None)]
    for xk, yk in pairs:
        xv = raw(header, xk)
        if xv is None:
            continue
        if yk is None:
            parts = _split_binning(xv)
            xv, yv = (parts + parts)[:2] if parts else (xv, xv)
        else:
            yv = raw(header, yk) if raw(header, yk) is not None else xv
        try:
            xb, yb = float(xv), float(yv)
        except (TypeError, ValueError):
            problems.append(Problem(f"unknown binning {raw(header, xk)!r}",
                                    f"{xk} = {raw(header, xk)!r} is not a binning.", "", True))
            return None, xk
        if xb != yb:
            label = f"{xb:g}x{yb:g}"
            problems.append(Problem(f"unknown binning {label}", f"has unequal binning {label} ({xk}).", "", True))
            return None, xk
        if xb != int(xb) or not 1 <= xb <= 4:
            problems.append(Problem(f"unknown binning {xb:g}",
                                    f"has an unknown binning {xb:g} ({xk}; 1 to 4 expected).", "", True))
            return None, xk
        return int(xb), xk
    if profile == "dwarf" and (m := _NAME_BIN.search(PurePosixPath(relpath).name)):
        return int(m.group(1)), "file name"
    return 1, ""


def _filter(header, kind: str, rules: HeaderRules, problems: list):
    name, source = None, ""
    for key in ("FILTER", "FILTNAME"):
        value = text(header, key)
        if value is not None and value.lower() not in _NO_FILTER:
            name, source = value, key
            break
    if name is None and (text(header, "FILTER1") or text(header, "FILTER2")):
        values = [(k, text(header, k) or "") for k in ("FILTER1", "FILTER2")]
        chosen = [kv for kv in values if kv[1].lower() not in _CLEAR]
        if chosen:
            source, name = chosen[0]
    if name is None and (value := text(header, "FILTERS")) and value.lower() not in _NO_FILTER:
        name, source = value, "FILTERS"
    if name is None:
        if kind in ("light", "flat"):
            written = text(header, "FILTER")
            said = f"FILTER = '{written}'" if written else "no filter keyword (FILTER, FILTNAME, FILTER1/2, FILTERS)"
            problems.append(Problem("no filter", f"has {said}: [headers] default_filter "
                                    f"'{rules.default_filter}' is used.",
                                    f'[headers] default_filter = "{rules.default_filter}"'))
            return rules.default_filter, "[headers] default_filter"
        return None, ""
    aliases = rules.filter_aliases or {}
    lower = {k.lower(): v for k, v in aliases.items()}
    alias = aliases.get(name, lower.get(name.lower()))
    if alias is not None:
        return alias, f"{source} '{name}' via [headers.filter_aliases]"
    return name, source


def _temperature(header):
    for key in _TEMP_KEYS:
        value = number(header, key)
        if value is not None:
            # no camera runs above +150 C; a value that high is Kelvin
            return (value - 273.15 if value > 150.0 else value), key
    return None, ""


def _gain(header, profile: str):
    egain = number(header, "EGAIN")
    if egain is not None and egain > 0:
        return egain, "EGAIN"
    value = number(header, "GAIN")
    if value is None or value <= 0:
        return None, ""
    words = comment(header, "GAIN").lower()
    if any(w in words for w in ("e-/adu", "e/adu", "electrons per", "electrons/count", "e-/dn")):
        return value, "GAIN"
    if profile in GAIN_IS_SETTING or "OFFSET" in header or "iso" in words:
        return None, ""  # the camera's unitless gain setting (N.I.N.A., SharpCap, ZWO...)
    if profile == "lco" or (value != int(value) and value < 100.0):
        return value, "GAIN"  # a fractional gain is e-/ADU; an integer one is a setting
    return None, ""


def _saturation(header):
    for key in ("SATURATE", "DATAMAX", "MAXLIN"):
        value = number(header, key)
        if value is None or value <= 0:
            continue
        # DATAMAX next to DATAMIN is the data's range (KStars), not the saturation level
        if key == "DATAMAX" and "DATAMIN" in header and "satur" not in comment(header, key).lower():
            continue
        return value, key
    return None, ""


def _origin(header, key: str, problems: list) -> int:
    value = raw(header, key)
    if value is None:
        return 0
    v = number(header, key)
    if v is None or v < 0 or v != int(v):
        problems.append(Problem("bad subframe origin", f"has an unusable {key} = {value!r}.", "", True))
        return 0
    return int(v)


def _shape(header, problems: list):
    naxis = number(header, "NAXIS")
    if naxis is None:
        return None
    dims = [int(number(header, f"NAXIS{i}") or 0) for i in range(1, int(naxis) + 1)]
    if len(dims) == 2 and all(dims):
        return dims[1], dims[0]
    what = "no image data" if not all(dims) or not dims else f"not a 2-D image (NAXIS = {int(naxis)})"
    problems.append(Problem(what, f"has {what}" + (": a colour cube, not a raw frame."
                                                   if len(dims) == 3 else "."), "", True))
    return None


def _stack(header, relpath: str, master: bool, problems: list) -> bool:
    count = number(header, "STACKCNT") or number(header, "NCOMBINE")
    name = PurePosixPath(relpath).name.lower()
    if not (master or (count and count > 1) or "stack" in name):
        return False
    total = number(header, "TOTALEXP")
    extra = f"; TOTALEXP = {total:g} s" if total else ""
    problems.append(Problem("a stack, not a raw frame",
                            "is a stack of frames" + (f" ({count:g}, STACKCNT)" if count else "")
                            + extra + ": its EXPTIME may be one sub's or the total.", ""))
    return True


def read_header_facts(header, relpath: str = "", rules: HeaderRules | None = None) -> HeaderFacts:
    """What one header says about its frame.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The image's header (for a multi-extension file, the image extension's merged with the
        primary's); only read.
    relpath : str
        The file's path relative to ``incoming`` (``/``-separated): ``[headers.kind_by_path]``
        and the smart telescopes' frame types are read from it.
    rules : HeaderRules, optional
        The ``[headers]`` config; defaults when None.

    Returns
    -------
    HeaderFacts
        Never raises for a bad header: what cannot be read is a :class:`Problem`.
    """
    with warnings.catch_warnings():  # astropy warns on each non-standard card it meets
        warnings.simplefilter("ignore")
        return _read(header, relpath, rules or HeaderRules())


def _read(header, relpath: str, rules: HeaderRules) -> HeaderFacts:
    relpath = str(relpath).replace("\\", "/")
    problems: list[Problem] = []
    if rules.profile == "auto":
        profile, profile_source = detect_profile(header)
    else:
        profile, profile_source = rules.profile, "[headers] profile"
    kind, kind_source, kind_value, master = _kind(header, relpath, rules, profile, problems)
    dark_for_flats = kind == "darkflat"
    kind = "dark" if dark_for_flats else kind
    exptime, exptime_source = _exptime(header, kind, relpath, profile, problems)
    when = read_time(header, exptime, profile)
    problems.extend(when.problems)
    binning, binning_source = _binning(header, relpath, profile, problems)
    filt, filter_source = _filter(header, kind, rules, problems)
    temperature, temperature_source = _temperature(header)
    gain, gain_source = _gain(header, profile)
    saturation, saturation_source = _saturation(header)
    ra, dec, pointing_source = read_pointing(header)
    scale, scale_source = read_scale(header, binning or 1)
    lat, lon, elevation, site_source, site_problems = read_site(header, profile)
    problems.extend(site_problems)
    xorg, yorg = _origin(header, "XORGSUBF", problems), _origin(header, "YORGSUBF", problems)
    shape = _shape(header, problems)
    stacked = _stack(header, relpath, master, problems)
    if kind == "skipped":  # nothing else matters about a file that is not used
        problems = [p._replace(fatal=False) for p in problems]
    return HeaderFacts(
        path=relpath, profile=profile, profile_source=profile_source,
        kind=kind, kind_source=kind_source, kind_value=kind_value,
        dark_for_flats=dark_for_flats, stacked=stacked,
        date_obs=iso_ms(when.start) if when.start else None, jd_start=when.jd_start,
        jd_mid=when.jd_mid, time_source=when.source, time_offset=when.offset,
        time_precision=when.precision, time_note=when.note,
        exptime=exptime, exptime_source=exptime_source,
        binning=binning, binning_source=binning_source, filter=filt, filter_source=filter_source,
        temperature=temperature, temperature_source=temperature_source,
        gain=gain, gain_source=gain_source, saturation=saturation,
        saturation_source=saturation_source, ra=ra, dec=dec, pointing_source=pointing_source,
        pixel_scale=scale, scale_source=scale_source, site_lat=lat, site_lon=lon,
        site_elevation=elevation, site_source=site_source,
        top_down=(text(header, "ROWORDER") or "").upper() == "TOP-DOWN",
        xorg=xorg, yorg=yorg, object=text(header, "OBJECT"), shape=shape,
        problems=tuple(problems), start=when.start,
    )
