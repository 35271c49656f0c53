"""``clinepipe.toml``: loaded with :mod:`tomllib` into frozen dataclasses and validated.

An unknown key or a value of the wrong type is one sentence naming the key and the file.
Relative paths are resolved against the folder of the config file.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from clinepipe.errors import ConfigError

CONFIG_ENV = "CLINEPIPE_CONFIG"
CONFIG_NAME = "clinepipe.toml"


@dataclass(frozen=True)
class PathsConfig:
    incoming: Path = Path("incoming")
    archive: Path = Path("archive")
    #: a file is ingested only once its size and mtime have been stable this long (s)
    settle_seconds: float = 5.0


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///clinepipe.db"
    #: lights stored per write transaction, at most (each light's results are always written
    #: whole); a commit is also made when the oldest uncommitted light is this many seconds old
    commit_lights: int = 10
    commit_seconds: float = 2.0


#: the keys of ``[site]`` a configuration must give before ``clinepipe run`` measures anything
#: (airmass, BJD_TDB and the observing night depend on them)
SITE_KEYS = ("latitude", "longitude", "elevation")


@dataclass(frozen=True)
class SiteConfig:
    # in-memory defaults for library use and tests; a configuration *file* must give the
    # SITE_KEYS itself (Config.site_missing), so no run takes these as a new site's position
    latitude: float = 36.0760
    longitude: float = -79.8089
    elevation: float = 250.0
    name: str = "Observatory"
    #: this telescope's name when several telescopes share one database: its frames, masters
    #: and quality flags are kept apart from the others' ("" = the only telescope; databases
    #: from before the telescope column hold their frames under "")
    telescope: str = ""


@dataclass(frozen=True)
class CameraConfig:
    gain: float = 0.4  # e-/ADU, used when EGAIN is absent
    read_noise: float = 9.3  # e-
    max_ccd_temp: float = -3.0  # deg C; lights and darks warmer are rejected
    saturation: float = 65535.0  # raw ADU at which a pixel is saturated
    #: darks are grouped into masters by CCD-TEMP rounded to this many degrees, and a light
    #: prefers a dark master within this many degrees of its own temperature (0 = ignore)
    temp_tolerance: float = 2.0


@dataclass(frozen=True)
class ReductionConfig:
    mode: str = "default"  # "default" or "seed"
    min_frames: int = 3  # fewest frames for a master
    max_master_age_days: float = 30.0  # a light uses the nearest master within this age
    overscan: bool = False
    cosmic_rays: bool = False
    chunk_rows: int = 256  # rows per chunk when median-stacking (memory bound)
    #: a light some of whose masters are missing: "wait" for them, or "measure" it with those
    #: that exist (CALSTAT says which were applied)
    without_masters: str = "wait"


@dataclass(frozen=True)
class PhotometryConfig:
    aperture: float = 5.0  # radius in binned pixels; <= 0 means 1.5 x the frame's FWHM
    annulus: list[float] = field(default_factory=list)  # [r_in, r_out] for a local sky; [] = global mesh
    sources: str = "auto"  # "auto" (.SRC when present, else detection), "src", "detect"
    detect_threshold: float = 3.0  # sigma above the background for own detection
    background_box: int = 64  # sep mesh size in pixels
    #: flag blended when the neighbours' light in the aperture exceeds this fraction of the
    #: star's flux (or its 1-sigma error)
    blend_fraction: float = 0.01


@dataclass(frozen=True)
class ArchiveConfig:
    #: what of a calibrated light is kept: "image" (image and mask, tile-compressed; the
    #: uncertainty is recomputed on reading), "all" (also the uncertainty plane), "none"
    keep_calibrated: str = "image"


@dataclass(frozen=True)
class AstrometryConfig:
    #: plate-solve lights without a WCS with astrometry.net's solve-field (off by default:
    #: TheSkyX already solves the lights, and a frame it could not solve may cost a minute or
    #: two in the Tycho-2 fallback when the pixel scale is unknown; see README, Plate solving)
    solve: bool = False
    scale_low: float = 0.0  # arcsec/pixel hint; 0 = from the header, else a blind search
    scale_high: float = 0.0
    timeout: float = 120.0  # seconds per frame
    #: build astrometry.net index files from the [catalog] stars around each field (cached in
    #: archive/astrometry-index/), so fields too small for Tycho-2 solve
    catalog_index: bool = True
    #: degrees added to the field's half-diagonal for the catalog cone (pointing error)
    index_margin: float = 0.25
    #: also use the system index files in /usr/share/astrometry (Tycho-2, wide fields)
    system_index: bool = True
    #: brightest detections given to solve-field: enough to hold the catalog's stars, few
    #: enough that a frame that cannot be solved fails in seconds, not minutes
    solve_sources: int = 60


@dataclass(frozen=True)
class HeadersConfig:
    """``[headers]``: how the files of any acquisition program are read.

    ``kind_by_path`` (``[headers.kind_by_path]``) maps a glob on the path relative to
    ``incoming`` to a kind, in file order (the first match wins, over the header);
    ``filter_aliases`` maps a camera's filter names to the ones used everywhere else.
    """

    profile: str = "auto"  # "auto" or a named profile (clinepipe.headers.PROFILES)
    default_kind: str = ""  # kind of files with no frame-type keyword; "" = they fail
    default_filter: str = "C"  # filter of lights and flats with no filter keyword
    kind_by_path: dict[str, str] = field(default_factory=dict)
    filter_aliases: dict[str, str] = field(default_factory=dict)

    def rules(self):
        """These settings as :class:`clinepipe.headers.HeaderRules` (raises ConfigError)."""
        from clinepipe.headers import HeaderRules

        return HeaderRules(profile=self.profile, default_kind=self.default_kind,
                           default_filter=self.default_filter,
                           kind_by_path=tuple(self.kind_by_path.items()),
                           filter_aliases=dict(self.filter_aliases))


@dataclass(frozen=True)
class CatalogConfig:
    source: str = "file"  # "file", "apass", "ucac4", "gaia"
    path: Path = Path("catalog.csv")
    filters: dict[str, str] = field(default_factory=lambda: {"V": "V", "R": "R", "B": "B"})
    match_radius: float = 2.0  # arcsec
    cache: Path = Path("catalog-cache")
    timeout: float = 30.0  # seconds for a remote catalog query
    min_stars: int = 3  # fewest comparison stars for a zero point
    color_term: bool = True  # fit and report a colour term per night and filter


@dataclass(frozen=True)
class KnownVariablesConfig:
    source: str = ""  # "", "file" or "vsx"
    path: Path = Path("vsx.csv")


@dataclass(frozen=True)
class ExecutionConfig:
    scheduler: str = "serial"  # "serial" or "dask"
    workers: int = 2
    address: str = ""  # an existing Dask scheduler, e.g. tcp://10.0.0.5:8786


@dataclass(frozen=True)
class StarsConfig:
    match_radius: float = 2.0  # arcsec: a detection this close to a known star is that star


@dataclass(frozen=True)
class QcConfig:
    clouds_mag: float = 0.25  # zero point this far below the night's extinction line
    max_elongation: float = 1.5
    focus_factor: float = 1.6  # FWHM above this x the night's median
    sky_factor: float = 2.0  # sky above this x the night's median
    few_stars_fraction: float = 0.25  # fewer stars than this x the night's median
    max_astrometric_rms: float = 1.0  # arcsec
    exclude_from_variability: list[str] = field(default_factory=lambda: ["clouds", "trailed"])


@dataclass(frozen=True)
class VariablesConfig:
    #: a catalog star (ensemble candidate) whose reduced chi-square within a night exceeds this
    #: (times the median of stars of similar brightness, when that is above 1) becomes a
    #: "suspected" new variable and leaves the ensemble; 0 turns the search off
    suspect_chi2: float = 10.0
    suspect_min_points: int = 10  # fewest calibrated points per night and filter for the test


@dataclass(frozen=True)
class AavsoConfig:
    obscode: str = ""
    targets: list[str] = field(default_factory=list)
    #: ``[aavso.sequences]``: target name -> VSP comparison sequence file (JSON or CSV), see
    #: :mod:`clinepipe.catalogs.vsp_sequence`
    sequences: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class TransformConfig:
    """``[transform]``: AAVSO's transformation coefficients (``clinepipe transform`` fits
    them; see :mod:`clinepipe.calibrate.transform` for the equations). A key left out (NaN)
    is not used; no key at all = magnitudes are not transformed (TRANS=NO).

    Magnitude coefficients ``Tm_pq``, ``M = m + Tm_pq (P - Q) + ZP``; colour coefficients
    ``Tpq``, ``P - Q = Tpq (p - q) + ZP`` (lower case instrumental, capitals standard);
    ``<name>_sigma`` the 1-sigma error of each."""

    Tb_bv: float = math.nan
    Tv_bv: float = math.nan
    Tv_vr: float = math.nan
    Tv_vi: float = math.nan
    Tr_vr: float = math.nan
    Tr_ri: float = math.nan
    Ti_vi: float = math.nan
    Ti_ri: float = math.nan
    Tbv: float = math.nan
    Tvr: float = math.nan
    Tvi: float = math.nan
    Tri: float = math.nan
    #: their 1-sigma errors (the ``[Error]`` section of AAVSO's Transform Generator),
    #: propagated into the transformed magnitudes' errors
    Tb_bv_sigma: float = math.nan
    Tv_bv_sigma: float = math.nan
    Tv_vr_sigma: float = math.nan
    Tv_vi_sigma: float = math.nan
    Tr_vr_sigma: float = math.nan
    Tr_ri_sigma: float = math.nan
    Ti_vi_sigma: float = math.nan
    Ti_ri_sigma: float = math.nan
    Tbv_sigma: float = math.nan
    Tvr_sigma: float = math.nan
    Tvi_sigma: float = math.nan
    Tri_sigma: float = math.nan

    @property
    def coefficients(self) -> dict[str, float]:
        """{name: value} of the coefficients set; empty = not transformed."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not f.name.endswith("_sigma") and math.isfinite(getattr(self, f.name))}

    @property
    def errors(self) -> dict[str, float]:
        """{name: 1-sigma error} of the coefficients whose ``_sigma`` is set."""
        return {f.name[:-6]: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name.endswith("_sigma") and math.isfinite(getattr(self, f.name))}


@dataclass(frozen=True)
class TransitsConfig:
    #: the planets whose transits each run fits (NASA Exoplanet Archive columns, see
    #: transits.targets); empty = no transit fits
    path: Path = Path("")


@dataclass(frozen=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8765


@dataclass(frozen=True)
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    site: SiteConfig = field(default_factory=SiteConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    reduction: ReductionConfig = field(default_factory=ReductionConfig)
    photometry: PhotometryConfig = field(default_factory=PhotometryConfig)
    astrometry: AstrometryConfig = field(default_factory=AstrometryConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    headers: HeadersConfig = field(default_factory=HeadersConfig)
    known_variables: KnownVariablesConfig = field(default_factory=KnownVariablesConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    stars: StarsConfig = field(default_factory=StarsConfig)
    aavso: AavsoConfig = field(default_factory=AavsoConfig)
    transits: TransitsConfig = field(default_factory=TransitsConfig)
    variables: VariablesConfig = field(default_factory=VariablesConfig)
    qc: QcConfig = field(default_factory=QcConfig)
    web: WebConfig = field(default_factory=WebConfig)
    transform: TransformConfig = field(default_factory=TransformConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    #: the file this was read from (None for defaults) and its text, for provenance
    source_file: Path | None = None
    source_text: str = ""
    #: the SITE_KEYS the file did not give (``clinepipe run`` refuses to start without them)
    site_missing: tuple[str, ...] = ()

    @property
    def base_dir(self) -> Path:
        return self.source_file.parent if self.source_file else Path.cwd()


_CHOICES = {
    ("reduction", "mode"): ("default", "seed"),
    ("reduction", "without_masters"): ("wait", "measure"),
    ("photometry", "sources"): ("auto", "src", "detect"),
    ("catalog", "source"): ("file", "apass", "ucac4", "gaia", "none"),
    ("known_variables", "source"): ("", "file", "vsx"),
    ("execution", "scheduler"): ("serial", "dask"),
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
    ("execution", "workers"): _at_least(1),
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


def find_config(explicit: str | os.PathLike | None = None) -> Path:
    """The config file: ``--config``, else ``$CLINEPIPE_CONFIG``, else ``./clinepipe.toml``."""
    if explicit:
        path = Path(explicit)
    elif os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
    else:
        path = Path.cwd() / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"{path}: no configuration file there (create one with `clinepipe init`).")
    return path.resolve()


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate ``path``; relative paths become absolute against its folder."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: is not valid TOML ({exc}).") from exc
    return config_from_dict(raw, path, text)


def config_from_dict(raw: dict, path: Path | None = None, text: str = "") -> Config:
    where = str(path) if path else "configuration"
    hints = typing.get_type_hints(Config)
    sections = {}
    for name, value in raw.items():
        if name not in hints or name in ("source_file", "source_text", "site_missing"):
            known = [k for k in hints if k not in ("source_file", "source_text", "site_missing")]
            raise ConfigError(f"{where}: unknown section [{name}]{_did_you_mean(name, known)}.")
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: [{name}] must be a table of keys.")
        sections[name] = _section(hints[name], name, value, where)
    site_given = raw.get("site", {})
    missing = tuple(k for k in SITE_KEYS if k not in site_given)
    cfg = Config(**sections, source_file=path, source_text=text, site_missing=missing)
    _check_telescope(cfg.site.telescope, where)
    _check_headers(cfg.headers, where)
    _check_numbers(cfg, where)
    return _resolve_paths(cfg)


def require_site(cfg: Config) -> None:
    """Raise :class:`ConfigError` (one sentence naming the missing keys and the file) when the
    configuration does not say where the observatory is."""
    if not cfg.site_missing:
        return
    keys = ", ".join(f"[site] {k}" for k in cfg.site_missing)
    where = cfg.source_file or "the configuration"
    raise ConfigError(f"{where}: {keys} not set: give your site's position (degrees north, "
                      "degrees east, metres) before `clinepipe run` measures anything.",
                      reason="no site")


#: the longest telescope name (the width of the ``telescope`` columns)
TELESCOPE_MAX_LENGTH = 64


def _check_telescope(name: str, where: str) -> None:
    """The telescope name is a key of the database's rows: refuse names that would look alike
    in listings (surrounding blanks, control characters) or not fit the column."""
    if len(name) > TELESCOPE_MAX_LENGTH:
        raise ConfigError(f"{where}: site.telescope = {name!r} is longer than "
                          f"{TELESCOPE_MAX_LENGTH} characters.")
    if name != name.strip() or any(not ch.isprintable() for ch in name):
        raise ConfigError(f"{where}: site.telescope = {name!r} must not start or end with "
                          f"blanks or contain control characters.")


def _check_headers(headers: HeadersConfig, where: str) -> None:
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


def _section(cls, name: str, values: dict, where: str):
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"{where}: unknown key '{key}' in [{name}]"
                              f"{_did_you_mean(key, list(hints))}.")
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


def _did_you_mean(word: str, known: list[str]) -> str:
    """`` (did you mean 'gain'?)`` for the closest known name, else ``""``."""
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_numbers(cfg: Config, where: str) -> None:
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


def _resolve_paths(cfg: Config) -> Config:
    base = cfg.base_dir

    def absolute(p: Path) -> Path:
        return p if p.is_absolute() else (base / p)

    paths = dataclasses.replace(cfg.paths, incoming=absolute(cfg.paths.incoming),
                                archive=absolute(cfg.paths.archive))
    catalog = dataclasses.replace(cfg.catalog, path=absolute(cfg.catalog.path),
                                  cache=absolute(cfg.catalog.cache))
    known = dataclasses.replace(cfg.known_variables, path=absolute(cfg.known_variables.path))
    url = cfg.database.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        url = "sqlite:///" + str(absolute(Path(url[len("sqlite:///"):])))
    database = dataclasses.replace(cfg.database, url=url)
    transits = cfg.transits
    if str(transits.path) not in ("", "."):
        transits = TransitsConfig(path=absolute(transits.path))
        if not transits.path.is_file():
            where = cfg.source_file or "configuration"
            raise ConfigError(f"{where}: transits.path = '{cfg.transits.path}' names "
                              f"{transits.path}, which does not exist.")
    aavso = dataclasses.replace(cfg.aavso, sequences={
        k: absolute(v) for k, v in cfg.aavso.sequences.items()})
    return dataclasses.replace(cfg, paths=paths, catalog=catalog, known_variables=known,
                               database=database, transits=transits, aavso=aavso)


def default_config_text(*, latitude: float | None = None, longitude: float | None = None,
                        elevation: float | None = None, name: str | None = None) -> str:
    """The commented ``clinepipe.toml`` that ``clinepipe init`` writes: the site keys given
    here are written as values, the others as placeholders the user must fill in (degrees
    north, degrees east, metres)."""
    import json

    lines = [f"name = {json.dumps(name)}".ljust(24) + "# shown on the dashboard and in reports" if name
             else '# name = ""             # shown on the dashboard, e.g. "Backyard Observatory"']
    for key, value, hint in (("latitude", latitude, "degrees north (south negative), e.g. 52.2053"),
                             ("longitude", longitude, "degrees east (west negative), e.g. 0.1218"),
                             ("elevation", elevation, "metres above sea level, e.g. 20")):
        if value is None:
            lines.append(f"# {key} =".ljust(24) + f"# FILL IN: {hint}")
        else:
            lines.append(f"{key} = {float(value)!r}")
    site = "\n".join(lines) + "\n"
    return _DEFAULT_CONFIG_TEMPLATE.replace("{site}", site)


_DEFAULT_CONFIG_TEMPLATE = '''\
# clinepipe configuration. Relative paths are relative to this file.
# Every key but [site] latitude, longitude and elevation is optional; the values shown are
# the defaults.

[paths]
incoming = "incoming"   # camera drop folder, any depth; clinepipe only reads it
archive  = "archive"    # clinepipe's own store: copies, masters, calibrated frames, logs
settle_seconds = 5.0    # a file still being written (changed more recently) waits for the next run

[database]
url = "sqlite:///clinepipe.db"   # or postgresql+psycopg://user@host:port/db for a shared server

[site]                  # YOUR SITE: `clinepipe run` refuses to start until these are set
{site}telescope = ""          # this telescope's name when several share one database, e.g. "scope-a"

[camera]
gain = 0.4              # e-/ADU, when EGAIN is absent from the header
read_noise = 9.3        # e-
max_ccd_temp = -3.0     # lights/darks warmer than this (deg C) are rejected with a reason
saturation = 65535      # raw ADU at which a pixel counts as saturated

[reduction]
mode = "default"        # or "seed": the 2018 formulas
min_frames = 3          # fewest calibration frames for a master
max_master_age_days = 30  # a light uses the master nearest in time within this many days
overscan = false        # subtract the overscan from BIASSEC/TRIMSEC (default mode only)
cosmic_rays = false     # clean cosmic rays with astroscrappy (default mode only)
without_masters = "wait"  # or "measure": reduce a light with the masters that exist

[photometry]
aperture = 5.0          # radius in binned pixels; 0 = 1.5 x the frame's measured FWHM
sources = "auto"        # "auto": the .SRC list when present, else own detection; "src"; "detect"
detect_threshold = 3.0  # detection threshold in sigma of the background
blend_fraction = 0.01   # flag "blended" when neighbours add more light to the aperture than
                        # this fraction of the star's flux (or its 1-sigma error)

[archive]
keep_calibrated = "image"  # "image": calibrated image + mask, compressed losslessly (the
                           # uncertainty is recomputed when read); "all": also the uncertainty
                           # plane; "none": no calibrated files

[astrometry]
solve = false           # plate-solve lights without WCS with astrometry.net (`make system-deps`
                        # installs it); small fields solve with the catalog index below
scale_low = 0.0         # arcsec/pixel hints for the solver; 0 = from the header / blind
scale_high = 0.0
timeout = 120           # seconds per frame
catalog_index = true    # build index files from the [catalog] stars around each field (cached
                        # in archive/astrometry-index/): solves fields too small for Tycho-2
index_margin = 0.25     # degrees beyond the field's half-diagonal in that index (pointing error)
system_index = true     # also use the system's index files (Tycho-2: fields wider than ~30')
solve_sources = 60      # brightest detections given to the solver (more: slower failures)

[catalog]
source = "file"         # "file", "apass", "ucac4", "gaia"
path = "catalog.csv"    # for source = "file": id,ra,dec,<band>...,e_<band>...
match_radius = 2.0      # arcsec
color_term = true       # fit and report (not apply) a colour term per night and filter

[catalog.filters]       # FILTER header value -> catalog column
V = "V"
R = "R"
B = "B"

[headers]               # files from any acquisition program (see `clinepipe inspect DIR`)
profile = "auto"        # or a named profile: "nina", "maxim", "indi", "lco", "iraf", "seestar"...
default_kind = ""       # "light", "bias", "dark" or "flat" for files with no frame-type keyword
default_filter = "C"    # the filter of lights and flats with no filter keyword

[headers.kind_by_path]  # glob on the path relative to incoming -> kind; first match wins and
                        # overrides the header, e.g. "*/Bias/*" = "bias", "*flat*" = "flat"

[headers.filter_aliases]  # the camera's filter name -> the name used everywhere else,
                          # e.g. "Clear" = "CV", "Lum" = "L"

[stars]
match_radius = 2.0      # arcsec: a detection this close to a known star is the same star

[execution]
scheduler = "serial"    # or "dask" (per-frame work on a Dask cluster)
workers = 2
address = ""            # an existing Dask scheduler address; empty = a local cluster

[qc]                    # flags relative to the night; flagged frames are still measured
clouds_mag = 0.25       # zero point this far below the night's extinction line -> clouds
max_elongation = 1.5    # -> trailed
focus_factor = 1.6      # FWHM above this x the night's median -> focus
sky_factor = 2.0        # sky above this x the night's median -> bright-sky
few_stars_fraction = 0.25   # fewer stars than this x the night's median -> few-stars
max_astrometric_rms = 1.0   # arcsec -> astrometry
exclude_from_variability = ["clouds", "trailed"]

[variables]
suspect_chi2 = 10.0     # a catalog star varying more than this (reduced chi2 within a night) is a
                        # "suspected new variable" and leaves the ensemble; 0 = never
suspect_min_points = 10 # fewest points per night and filter for that test

[aavso]
obscode = ""            # your AAVSO observer code, for `clinepipe export --format aavso`
targets = []            # names or "RA DEC" of the stars you report: each night `run` writes
                        # archive/aavso/<night>/<target>.txt, and the morning report plots them
# [aavso.sequences]     # a target's AAVSO comparison sequence, saved from VSP (JSON or CSV):
# "V1234 Her" = "X12345ABC.json"   # its comparison and check stars, CNAME/KNAME and CHART

[transits]
path = ""               # e.g. "transits.csv": planets to fit after each run (columns pl_name,ra,
                        # dec,pl_orbper,pl_tranmid,pl_trandur[,pl_ratror,pl_ratdor,pl_orbincl,...]
                        # as the NASA Exoplanet Archive names them); "" = none

[web]
host = "127.0.0.1"
port = 8765

# [transform]           # AAVSO transformation coefficients, from `clinepipe transform --night
# Tb_bv = 0.0           # YYYYMMDD` on a standard field; with them, nights observed in two or
# Tv_bv = 0.0           # more filters get transformed magnitudes (AAVSO files: TRANS=YES).
# Tr_vr = 0.0           # Also Tv_vr, Tv_vi, Tr_ri, Ti_vi, Ti_ri and the colour coefficients
# Tbv = 1.0             # Tbv, Tvr, Tvi, Tri. Absent: not transformed (TRANS=NO).
# Tvr = 1.0
# Tv_bv_sigma = 0.0     # each coefficient's 1-sigma error (<name>_sigma), propagated
'''

#: what `clinepipe init` writes without site options (the site keys are placeholders)
DEFAULT_CONFIG = default_config_text()
