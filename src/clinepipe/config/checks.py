"""What a value of ``clinepipe.toml`` may be: the choices and ranges of every key, type
coercion, and one sentence naming key, value and file when a value is refused (with
"did you mean" for a typo'd key).
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from clinepipe.config.sections import Config, HeadersConfig
from clinepipe.errors import ConfigError

_CHOICES = {
    ("reduction", "mode"): ("default", "seed"),
    ("reduction", "without_masters"): ("wait", "measure"),
    ("photometry", "sources"): ("auto", "src", "detect"),
    ("catalog", "source"): ("file", "apass", "ucac4", "gaia", "none"),
    ("known_variables", "source"): ("", "file", "vsx"),
    ("execution", "scheduler"): ("local", "serial", "dask"),
    ("archive", "keep_calibrated"): ("image", "all", "none"),
}


@dataclass(frozen=True)
class _Range:
    """The values a numeric key accepts: ``lo``/``hi`` None = unbounded, ``open_lo``/``open_hi``
    = that end excluded; ``unit`` only words the message."""

    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False
    open_hi: bool = False
    unit: str = ""

    def holds(self, v: float) -> bool:
        if not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.open_lo else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.open_hi else v > self.hi))

    def describe(self) -> str:
        def num(x):
            return f"{x:g}"

        unit = f" {self.unit}" if self.unit else ""
        if self.lo is not None and self.hi is not None:
            left = "(" if self.open_lo else "["
            right = ")" if self.open_hi else "]"
            return f"in {left}{num(self.lo)}, {num(self.hi)}{right}{unit}"
        if self.lo is not None:
            return f"{'>' if self.open_lo else '>='} {num(self.lo)}{unit}"
        return f"{'<' if self.open_hi else '<='} {num(self.hi)}{unit}"


def _positive(unit=""):
    return _Range(0, None, open_lo=True, unit=unit)


def _at_least(lo, unit=""):
    return _Range(lo, None, unit=unit)


#: every numeric key's accepted values: a value outside is refused at load, naming key, value,
#: range and file (``latitude = 136`` once ran and stored airmass 38)
_RANGES = {
    ("paths", "settle_seconds"): _at_least(0, "s"),
    ("database", "commit_lights"): _at_least(1),
    ("database", "commit_seconds"): _at_least(0, "s"),
    ("site", "latitude"): _Range(-90, 90, unit="degrees"),
    ("site", "longitude"): _Range(-180, 180, unit="degrees"),
    ("site", "elevation"): _Range(-500, 9000, unit="m"),
    ("camera", "gain"): _positive("e-/ADU"),
    ("camera", "read_noise"): _at_least(0, "e-"),
    ("camera", "max_ccd_temp"): _Range(-150, 60, unit="deg C"),
    ("camera", "saturation"): _positive("ADU"),
    ("camera", "temp_tolerance"): _at_least(0, "deg C"),
    ("reduction", "min_frames"): _at_least(1),
    ("reduction", "max_master_age_days"): _positive("days"),
    ("reduction", "chunk_rows"): _at_least(1, "rows"),
    # 0 means 1.5 x the frame's FWHM (documented)
    ("photometry", "aperture"): _at_least(0, "pixels"),
    ("photometry", "detect_threshold"): _positive("sigma"),
    ("photometry", "background_box"): _at_least(2, "pixels"),
    ("astrometry", "scale_low"): _at_least(0, "arcsec/pixel"),
    ("astrometry", "scale_high"): _at_least(0, "arcsec/pixel"),
    ("astrometry", "timeout"): _positive("s"),
    ("astrometry", "index_margin"): _at_least(0, "degrees"),
    ("astrometry", "solve_sources"): _at_least(1),
    ("catalog", "match_radius"): _positive("arcsec"),
    ("catalog", "timeout"): _positive("s"),
    ("catalog", "min_stars"): _at_least(1),
    ("execution", "workers"): _at_least(0),
    ("stars", "match_radius"): _positive("arcsec"),
    ("qc", "clouds_mag"): _positive("mag"),
    ("qc", "max_elongation"): _at_least(1),
    ("qc", "focus_factor"): _positive(),
    ("qc", "sky_factor"): _positive(),
    ("qc", "few_stars_fraction"): _Range(0, 1),
    ("qc", "max_astrometric_rms"): _positive("arcsec"),
    ("variables", "suspect_chi2"): _at_least(0),
    ("variables", "suspect_min_points"): _at_least(2),
    ("web", "port"): _Range(1, 65535),
}


#: the longest telescope name (the width of the ``telescope`` columns)
TELESCOPE_MAX_LENGTH = 64


def check_telescope(name: str, where: str) -> None:
    """The telescope name is a key of the database's rows: refuse names that would look alike
    in listings (surrounding blanks, control characters) or not fit the column."""
    if len(name) > TELESCOPE_MAX_LENGTH:
        raise ConfigError(f"{where}: site.telescope = {name!r} is longer than "
                          f"{TELESCOPE_MAX_LENGTH} characters.")
    if name != name.strip() or any(not ch.isprintable() for ch in name):
        raise ConfigError(f"{where}: site.telescope = {name!r} must not start or end with "
                          f"blanks or contain control characters.")


def check_headers(headers: HeadersConfig, where: str) -> None:
    """``[headers]`` values the header reader cannot use: one sentence naming the key."""
    if not headers.default_filter.strip():
        raise ConfigError(f"{where}: headers.default_filter must not be empty (it names the "
                          "filter of files without a filter keyword, such as \"C\").",
                          reason="bad [headers] default_filter")
    for glob in headers.kind_by_path:
        if not glob.strip():
            raise ConfigError(f"{where}: [headers.kind_by_path] has an empty pattern.",
                              reason="bad [headers.kind_by_path]")
    for name, alias in headers.filter_aliases.items():
        if not alias.strip():
            raise ConfigError(f"{where}: [headers.filter_aliases] \"{name}\" maps to an empty "
                              "filter name.", reason="bad [headers.filter_aliases]")
    try:
        headers.rules()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}", reason=exc.reason) from None


def read_section(cls, name: str, values: dict, where: str):
    """One ``[name]`` table as the dataclass ``cls``: each key type-checked, range-checked and
    checked against its allowed choices; keys left out keep their defaults.

    Raises :class:`ConfigError` naming ``where`` (the file) and the unknown or bad key, with the
    nearest known key for a misspelling.
    """
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"{where}: unknown key '{key}' in [{name}]"
                              f"{did_you_mean(key, list(hints))}.")
        kwargs[key] = _coerce(hints[key], value, f"{name}.{key}", where)
        limits = _RANGES.get((name, key))
        if limits is not None and not limits.holds(kwargs[key]):
            raise ConfigError(f"{where}: {name}.{key} = {value!r} is out of range: it must be "
                              f"{limits.describe()}.", reason=f"bad {name}.{key}")
        choices = _CHOICES.get((name, key))
        if choices and kwargs[key] not in choices:
            allowed = ", ".join(repr(c) for c in choices if c)
            raise ConfigError(f"{where}: {name}.{key} = {value!r} is not one of {allowed}.")
    return cls(**kwargs)


def did_you_mean(word: str, known: list[str]) -> str:
    """`` (did you mean 'gain'?)`` for the closest known name, else ``""``."""
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_numbers(cfg: Config, where: str) -> None:
    """Checks that involve two keys: the annulus around the aperture, the solver's scale hints."""
    ann = cfg.photometry.annulus
    if ann:
        ap = cfg.photometry.aperture
        if (len(ann) != 2 or not all(math.isfinite(r) for r in ann)
                or not 0 < ann[0] < ann[1] or (ap > 0 and ann[0] <= ap)):
            inner = f"{ap:g} (the aperture)" if ap > 0 else "0"
            raise ConfigError(f"{where}: photometry.annulus = {ann!r} is out of range: it must be "
                              f"[r_in, r_out] pixels with {inner} < r_in < r_out, or [] for the "
                              "global background.", reason="bad photometry.annulus")
    lo, hi = cfg.astrometry.scale_low, cfg.astrometry.scale_high
    if lo > 0 and hi > 0 and hi < lo:
        raise ConfigError(f"{where}: astrometry.scale_high = {hi:g} is below astrometry.scale_low "
                          f"= {lo:g}: it must be >= scale_low (arcsec/pixel).",
                          reason="bad astrometry.scale_high")


def _coerce(kind, value, key: str, where: str):
    origin = typing.get_origin(kind)
    bad = ConfigError(f"{where}: {key} = {value!r} should be {_describe(kind)}.")
    if kind is Path:
        if not isinstance(value, str):
            raise bad
        return Path(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise bad
        return value
    if origin is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise bad
        return [_coerce(item, v, key, where) for v in value]
    if origin is dict:
        _, item = typing.get_args(kind)
        if not isinstance(value, dict):
            raise bad
        return {str(k): _coerce(item, v, f"{key}.{k}", where) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        raise bad
    raise bad


def _describe(kind) -> str:
    names = {Path: "a path (string)", bool: "true or false", int: "a whole number",
             float: "a number", str: "a string"}
    if kind in names:
        return names[kind]
    origin = typing.get_origin(kind)
    if origin is list:
        return "a list"
    if origin is dict:
        return "a table"
    return str(kind)
