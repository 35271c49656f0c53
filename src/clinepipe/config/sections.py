"""The sections of ``clinepipe.toml`` as frozen dataclasses, with their defaults and units.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_ENV = "CLINEPIPE_CONFIG"


CONFIG_NAME = "clinepipe.toml"


@dataclass(frozen=True)
class PathsConfig:
    """``[paths]``: where the camera drops its files (``incoming``, only read) and clinepipe's own
    archive; relative paths are relative to the configuration file.
    README.md, *Setting up an observatory*, has the table of its keys."""
    incoming: Path = Path("incoming")
    archive: Path = Path("archive")
    #: a file is ingested only once its size and mtime have been stable this long (s)
    settle_seconds: float = 5.0


@dataclass(frozen=True)
class DatabaseConfig:
    """``[database]``: the SQLAlchemy URL of the database (SQLite or PostgreSQL) and how often a
    run commits its lights.
    README.md, *Setting up an observatory*, has the table of its keys."""
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
    """``[site]``: the observatory's position (latitude and longitude in degrees, east positive;
    elevation in metres), name and telescope; airmass, BJD_TDB and the observing night depend on
    it.
    README.md, *Setting up an observatory*, has the table of its keys."""
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
    """``[camera]``: the camera's gain (e-/ADU), read noise (e-), saturation (raw ADU) and the
    temperatures (deg C) a frame and its dark must keep to.
    README.md, *Setting up an observatory*, has the table of its keys."""
    gain: float = 0.4  # e-/ADU, used when EGAIN is absent
    read_noise: float = 9.3  # e-
    max_ccd_temp: float = -3.0  # deg C; lights and darks warmer are rejected
    saturation: float = 65535.0  # raw ADU at which a pixel is saturated
    #: darks are grouped into masters by CCD-TEMP rounded to this many degrees, and a light
    #: prefers a dark master within this many degrees of its own temperature (0 = ignore)
    temp_tolerance: float = 2.0


@dataclass(frozen=True)
class ReductionConfig:
    """``[reduction]``: how masters are built (fewest frames, oldest usable, stacking chunk) and
    how lights are reduced (overscan, cosmic rays, lights without masters).
    README.md, *Setting up an observatory*, has the table of its keys."""
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
    """``[photometry]``: the aperture (binned pixels), sky annulus, where sources come from and
    how they are detected.
    README.md, *Setting up an observatory*, has the table of its keys."""
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
    """``[archive]``: what of each calibrated light the archive keeps; README.md, *What happens to
    a frame*, explains the choices (the configuration table is in *Setting up an observatory*)."""
    #: what of a calibrated light is kept: "image" (image and mask, tile-compressed; the
    #: uncertainty is recomputed on reading), "all" (also the uncertainty plane), "none"
    keep_calibrated: str = "image"


@dataclass(frozen=True)
class AstrometryConfig:
    """``[astrometry]``: whether and how lights without a WCS are plate-solved with
    astrometry.net (see README.md, *Plate solving*).
    README.md, *Setting up an observatory*, has the table of its keys."""
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
    """``[catalog]``: the photometric catalog of comparison stars (a file or a Vizier catalog),
    its filter columns and how stars are matched to it.
    README.md, *Setting up an observatory*, has the table of its keys."""
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
    """``[known_variables]``: where the names of known variable stars come from (a local CSV
    or the AAVSO VSX); "" = none.
    README.md, *Setting up an observatory*, has the table of its keys."""
    source: str = ""  # "", "file" or "vsx"
    path: Path = Path("vsx.csv")


@dataclass(frozen=True)
class ExecutionConfig:
    """``[execution]``: whether masters and lights are made by worker processes of the run
    ("local"), one after the other in the run's own process ("serial") or as Dask tasks, on how
    many local workers or on an existing scheduler.
    README.md, *Setting up an observatory*, has the table of its keys."""
    scheduler: str = "local"  # "local" (processes forked by the run), "serial" or "dask"
    workers: int = 0  # 0: one per CPU this process may use
    address: str = ""  # an existing Dask scheduler, e.g. tcp://10.0.0.5:8786


@dataclass(frozen=True)
class StarsConfig:
    """``[stars]``: the radius (arcsec) within which a detection is taken for a known star, for
    stable star identities.
    README.md, *Setting up an observatory*, has the table of its keys."""
    match_radius: float = 2.0  # arcsec: a detection this close to a known star is that star


@dataclass(frozen=True)
class QcConfig:
    """``[qc]``: the thresholds of the per-frame quality flags, and which flags keep a frame out of
    the variability statistics.
    README.md, *Setting up an observatory*, has the table of its keys."""
    clouds_mag: float = 0.25  # zero point this far below the night's extinction line
    max_elongation: float = 1.5
    focus_factor: float = 1.6  # FWHM above this x the night's median
    sky_factor: float = 2.0  # sky above this x the night's median
    few_stars_fraction: float = 0.25  # fewer stars than this x the night's median
    max_astrometric_rms: float = 1.0  # arcsec
    exclude_from_variability: list[str] = field(default_factory=lambda: ["clouds", "trailed"])


@dataclass(frozen=True)
class VariablesConfig:
    """``[variables]``: the search for suspected new variables among the catalog (ensemble)
    stars.
    README.md, *Setting up an observatory*, has the table of its keys."""
    #: a catalog star (ensemble candidate) whose reduced chi-square within a night exceeds this
    #: (times the median of stars of similar brightness, when that is above 1) becomes a
    #: "suspected" new variable and leaves the ensemble; 0 turns the search off
    suspect_chi2: float = 10.0
    suspect_min_points: int = 10  # fewest calibrated points per night and filter for the test


@dataclass(frozen=True)
class AavsoConfig:
    """``[aavso]`` and ``[aavso.sequences]``: the observer code, the targets reported each night
    and their VSP comparison sequences.
    README.md, *Setting up an observatory*, has the table of its keys."""
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
    """``[transits]``: the CSV of planets whose transits each run fits; README.md, *Exoplanet
    transits*, gives its columns (the configuration table is in *Setting up an observatory*)."""
    #: the planets whose transits each run fits (NASA Exoplanet Archive columns, see
    #: transits.targets); empty = no transit fits
    path: Path = Path("")


@dataclass(frozen=True)
class WebConfig:
    """``[web]``: the address and port ``clinepipe web`` serves the dashboard on.
    README.md, *Setting up an observatory*, has the table of its keys."""
    host: str = "127.0.0.1"
    port: int = 8765


@dataclass(frozen=True)
class Config:
    """The whole of ``clinepipe.toml``: one attribute per section (each its own dataclass), the
    file it was read from and its text; read with :func:`clinepipe.config.load_config`, passed down
    to every stage (no stage reads the file or the environment itself). README.md, *Setting up
    an observatory*, has the table of the sections and keys."""
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
