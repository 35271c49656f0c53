"""Remote reference catalogs (APASS DR9, UCAC4, Gaia DR3) and the AAVSO VSX, through Vizier.

Each provider answers ``field(ra_deg, dec_deg, radius_deg)`` with **one** Vizier cone query
per field (``astroquery.vizier.Vizier(columns=[…], row_limit=-1, timeout=…).query_region``),
never one query per star as the 2018 code did. Answers are kept

* in memory, per provider instance, and
* on disk under ``[catalog] cache`` (created when needed), one ECSV file per cone::

      <cache>/<catalog>/ra<RA>_dec<±DEC>_r<RADIUS>.ecsv     e.g.  apass/ra283.83_dec+36.58_r0.30.ecsv

  ``<catalog>`` is ``apass``, ``ucac4``, ``gaia`` or ``vsx``; the centre is the requested centre (:mod:`clinepipe.catalogs.cone_cache`)
  rounded to 0.01°, the radius the requested radius plus the rounding offset, rounded *up* to a
  multiple of 0.05°, so that the cached cone always contains the requested one. The file holds
  Vizier's own columns (names and units as Vizier gives them) and, in its header, the query
  (table, centre, radius, filters, time). Files are written atomically (temporary file in the
  same folder, then :func:`os.replace`), so a killed run never leaves half a file behind.

A field is served without the network when any cone in memory or on disk contains it (the
smallest such cone is used); stars are then trimmed to the requested cone, so the answer does
not depend on what happens to be cached. Catalogs do not change, so the cache never expires:
delete the folder to fetch again. An empty but valid answer (no star in the cone) is an empty
:class:`~clinepipe.calibrate.Catalog` and is cached like any other.

Anything that goes wrong on the way (no network, timeout, HTTP error, an answer that cannot be
parsed or lacks the expected columns) raises :class:`~clinepipe.errors.CatalogUnavailable` with
one sentence, e.g. *"the APASS catalog (Vizier II/336/apass9) could not be reached: timed out
after 30 s; frames wait for the next run."* and a short reason (``"APASS unreachable"``), so
the frame waits for the next run instead of failing.

Bands in the returned catalogs
------------------------------
``apass`` (Vizier ``II/336/apass9``) and ``ucac4`` (Vizier ``I/322A/out``, whose photometry is
APASS DR6): ``B``, ``V`` (Johnson), ``g``, ``r``, ``i`` (APASS Sloan g′r′i′) as published, and
``R`` (Cousins) from :func:`~clinepipe.catalogs.photometric_systems.sloan_to_cousins_r`. ``gaia`` (Vizier ``I/355/gaiadr3``): ``G`` as
published and ``V``, ``R``, ``I``, ``B`` from :func:`~clinepipe.catalogs.photometric_systems.gaia_to_johnson_cousins`. Every band has
1-sigma errors (NaN when the catalog gives none).

Ids are strings: ``"APASS9 J283.83012+36.57702"`` (APASS has no stable identifier — Vizier's
``recno`` "should not be used for identification" — so the id is built from the position),
``"UCAC4 633-061403"``, ``"Gaia DR3 2096532876013474432"``.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import numpy as np

from clinepipe.catalogs.cone_cache import CACHE_VERSION, Cone, ConeCache, cone_key
from clinepipe.catalogs.match import separation_deg
from clinepipe.catalogs.photometric_systems import (
    gaia_to_johnson_cousins,
    sloan_to_cousins_r,
)
from clinepipe.catalogs.types import Catalog
from clinepipe.config import Config
from clinepipe.errors import CatalogUnavailable, UsageError

__all__ = ["vizier_catalog", "vsx_known_variables", "VizierCatalog", "VsxKnownVariables"]


log = logging.getLogger(__name__)


#: Largest cone (deg) a remote catalog is asked for; a frame of this telescope is ~0.3°.
MAX_RADIUS_DEG = 5.0


#: Gaia stars fainter than this are not fetched (useless as comparison stars, and a cone in
#: the Galactic plane would otherwise hold hundreds of thousands of rows).
GAIA_G_LIMIT = 18.0


@dataclass(frozen=True)
class _Col:
    """A Vizier column we ask for: its Vizier name, other names astroquery may give it, kind."""

    name: str
    kind: str = "float"            # "float", "int" or "str"
    aliases: tuple[str, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class _Source:
    key: str                       # cache folder and Catalog.name stem
    label: str                     # short, for reasons: "APASS unreachable"
    title: str                     # for messages: "the APASS catalog"
    table: str                     # Vizier table
    columns: tuple[_Col, ...]
    column_filters: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.title} (Vizier {self.table})"


def _mag_cols(*names: str, aliases: dict[str, tuple[str, ...]] | None = None) -> tuple[_Col, ...]:
    aliases = aliases or {}
    cols = []
    for n in names:
        cols.append(_Col(n, aliases=aliases.get(n, ())))
        cols.append(_Col("e_" + n, aliases=tuple("e_" + a for a in aliases.get(n, ()))))
    return tuple(cols)


_PRIME_ALIASES = {"g'mag": ("g_mag", "gpmag"), "r'mag": ("r_mag", "rpmag"), "i'mag": ("i_mag", "ipmag")}


APASS = _Source(
    key="apass", label="APASS", title="the APASS catalog", table="II/336/apass9",
    columns=(_Col("RAJ2000", required=True), _Col("DEJ2000", required=True))
    + _mag_cols("Vmag", "Bmag", "g'mag", "r'mag", "i'mag", aliases=_PRIME_ALIASES))


UCAC4 = _Source(
    key="ucac4", label="UCAC4", title="the UCAC4 catalog", table="I/322A/out",
    columns=(_Col("UCAC4", kind="str", required=True), _Col("RAJ2000", required=True),
             _Col("DEJ2000", required=True)) + _mag_cols("Bmag", "Vmag", "gmag", "rmag", "imag"))


GAIA = _Source(
    key="gaia", label="Gaia DR3", title="the Gaia DR3 catalog", table="I/355/gaiadr3",
    columns=(_Col("Source", kind="int", required=True), _Col("RA_ICRS", required=True),
             _Col("DE_ICRS", required=True)) + _mag_cols("Gmag", "BPmag", "RPmag"),
    column_filters={"Gmag": f"<{GAIA_G_LIMIT:g}"})


VSX = _Source(
    key="vsx", label="VSX", title="the AAVSO VSX", table="B/vsx/vsx",
    columns=(_Col("Name", kind="str", required=True), _Col("RAJ2000", required=True),
             _Col("DEJ2000", required=True), _Col("Type", kind="str"), _Col("Period")))


SOURCES = {"apass": APASS, "ucac4": UCAC4, "gaia": GAIA, "vsx": VSX}


def _describe_failure(exc: BaseException, timeout: float) -> tuple[str, str]:
    """(what happened, kind) for a failed query; kind is 'unreachable' or 'unreadable'."""
    import requests

    if isinstance(exc, requests.exceptions.Timeout):
        return f"timed out after {timeout:g} s", "unreachable"
    if isinstance(exc, requests.exceptions.HTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return (f"the service answered HTTP {status}" if status else "the service answered "
                "with an HTTP error"), "unreachable"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "no connection to the service", "unreachable"
    if isinstance(exc, requests.exceptions.RequestException):
        return f"the request failed ({type(exc).__name__})", "unreachable"
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s", "unreachable"
    if isinstance(exc, OSError):
        return f"no connection to the service ({exc.strerror or type(exc).__name__})", "unreachable"
    return f"it could not be parsed ({type(exc).__name__})", "unreadable"


def _unavailable(source: _Source, what: str, kind: str) -> CatalogUnavailable:
    what = " ".join(str(what).split())[:160]          # one line, bounded
    if kind == "unreachable":
        message = f"{source.where} could not be reached: {what}; frames wait for the next run."
        reason = f"{source.label} unreachable"
    else:
        message = f"{source.where} gave an unusable answer: {what}; frames wait for the next run."
        reason = f"{source.label} answer unusable"
    return CatalogUnavailable(message, reason=reason)


def _query(source: _Source, cone: Cone, timeout: float):
    """One Vizier cone query; returns an astropy Table with our columns (possibly empty)."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from astroquery.vizier import Vizier

    viz = Vizier(columns=[c.name for c in source.columns], row_limit=-1, timeout=timeout,
                 column_filters=dict(source.column_filters))
    centre = SkyCoord(cone.ra * u.deg, cone.dec * u.deg, frame="icrs")
    log.info("querying %s for a %.2f° cone at %.2f %+.2f", source.where, cone.radius, cone.ra,
             cone.dec)
    with warnings.catch_warnings(record=True) as caught:    # astroquery/VOTable parse chatter
        warnings.simplefilter("always")
        try:
            result = viz.query_region(centre, radius=cone.radius * u.deg, catalog=source.table,
                                      cache=False)
        except Exception as exc:  # network, HTTP, parser: all mean "not now"
            log.debug("query to %s failed", source.table, exc_info=True)
            raise _unavailable(source, *_describe_failure(exc, timeout)) from exc
        finally:
            for w in caught:
                log.debug("%s: %s", source.table, w.message)
    return _clean_answer(source, cone, result)


def _clean_answer(source: _Source, cone: Cone, result):
    """Our columns of Vizier's answer, as a plain Table with query provenance in ``meta``."""
    from astropy.table import MaskedColumn, Table

    if result is None or not hasattr(result, "__len__") or not hasattr(result, "keys"):
        raise _unavailable(source, "it was not a table (a service error page?)", "unreadable")
    if len(result) == 0:
        raw = None                                   # a valid answer with no star in the cone
    else:
        keys = list(result.keys())
        raw = result[source.table] if source.table in keys else result[0]
        if not hasattr(raw, "colnames"):
            raise _unavailable(source, "it was not a table", "unreadable")

    table = Table()
    for col in source.columns:
        found = None
        if raw is not None:
            found = next((n for n in (col.name,) + col.aliases if n in raw.colnames), None)
            if found is None and col.required:
                raise _unavailable(source, f"it has no column {col.name}", "unreadable")
        dtype = {"float": float, "int": np.int64, "str": str}[col.kind]
        if found is None:
            n = 0 if raw is None else len(raw)
            data = np.zeros(n, dtype=dtype) if col.kind != "str" else np.full(n, "", dtype=str)
            table[col.name] = MaskedColumn(data, mask=np.ones(n, dtype=bool))
            continue
        src = raw[found]
        try:
            if col.kind == "str":
                mask = np.ma.getmaskarray(src)
                values = np.array(["" if m else (v.decode("utf-8", "replace") if isinstance(v, bytes)
                                                 else str(v)).strip()
                                   for v, m in zip(np.ma.getdata(src).tolist(), mask)], dtype=str)
            else:
                values = np.ma.asarray(src).astype(dtype)
                mask = np.ma.getmaskarray(values)
                values = np.ma.getdata(values)
        except (TypeError, ValueError) as exc:
            raise _unavailable(source, f"column {col.name} is not {col.kind}", "unreadable") from exc
        unit = None if src.unit is None else str(src.unit)
        table[col.name] = MaskedColumn(values, mask=mask, unit=unit)
    table.meta.update({
        "clinepipe_cache": CACHE_VERSION, "catalog": source.key, "table": source.table,
        "ra": cone.ra, "dec": cone.dec, "radius": cone.radius,
        "column_filters": dict(source.column_filters),
        "retrieved": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    })
    return table


_MAG_SCALE = {"mag": 1.0, "cmag": 0.01, "mmag": 0.001}


def _floats(table, name: str, *, error: bool = False) -> np.ndarray:
    col = table[name]
    values = np.ma.filled(np.ma.asarray(col).astype(float), np.nan)
    unit = "" if col.unit is None else str(col.unit)
    values = values * _MAG_SCALE.get(unit, 1.0)
    with np.errstate(invalid="ignore"):
        if error:
            values[(values < 0) | (values > 5)] = np.nan
        elif name not in ("RAJ2000", "DEJ2000", "RA_ICRS", "DE_ICRS", "Period"):
            values[(values < -2) | (values > 30)] = np.nan      # catalog fill values
    return values


def _strings(table, name: str) -> np.ndarray:
    return np.array([str(v) for v in np.ma.filled(np.ma.asarray(table[name]).astype(str), "")],
                    dtype=str)


def _in_cone(table, ra_col: str, dec_col: str, ra: float, dec: float, radius: float):
    if len(table) == 0:
        return table
    sep = separation_deg(_floats(table, ra_col), _floats(table, dec_col), ra, dec)
    return table[np.isfinite(sep) & (sep <= radius)]


def _build_apass(table) -> Catalog:
    ra, dec = _floats(table, "RAJ2000"), _floats(table, "DEJ2000")
    ids = np.array([f"APASS9 J{a:09.5f}{d:+09.5f}" for a, d in zip(ra, dec)], dtype=str)
    mags, errors = {}, {}
    for band, col in (("B", "Bmag"), ("V", "Vmag"), ("g", "g'mag"), ("r", "r'mag"), ("i", "i'mag")):
        mags[band] = _floats(table, col)
        errors[band] = _floats(table, "e_" + col, error=True)
    mags["R"], errors["R"] = sloan_to_cousins_r(mags["g"], mags["r"], errors["g"], errors["r"])
    return Catalog("apass9", ids, ra, dec, mags, errors)


def _build_ucac4(table) -> Catalog:
    ids = np.array([f"UCAC4 {s}" for s in _strings(table, "UCAC4")], dtype=str)
    mags, errors = {}, {}
    for band, col in (("B", "Bmag"), ("V", "Vmag"), ("g", "gmag"), ("r", "rmag"), ("i", "imag")):
        mags[band] = _floats(table, col)
        errors[band] = _floats(table, "e_" + col, error=True)
    mags["R"], errors["R"] = sloan_to_cousins_r(mags["g"], mags["r"], errors["g"], errors["r"])
    return Catalog("ucac4", ids, _floats(table, "RAJ2000"), _floats(table, "DEJ2000"), mags, errors)


def _build_gaia(table) -> Catalog:
    source_ids = np.ma.filled(np.ma.asarray(table["Source"]).astype(np.int64), -1)
    ids = np.array([f"Gaia DR3 {int(s)}" for s in source_ids], dtype=str)
    g, eg = _floats(table, "Gmag"), _floats(table, "e_Gmag", error=True)
    bp, ebp = _floats(table, "BPmag"), _floats(table, "e_BPmag", error=True)
    rp, erp = _floats(table, "RPmag"), _floats(table, "e_RPmag", error=True)
    mags, errors = {"G": g}, {"G": eg}
    for band, (mag, err) in gaia_to_johnson_cousins(g, bp, rp, eg, ebp, erp).items():
        mags[band], errors[band] = mag, err
    return Catalog("gaia-dr3", ids, _floats(table, "RA_ICRS"), _floats(table, "DE_ICRS"), mags,
                   errors)


_BUILDERS: dict[str, tuple[Callable, str, str]] = {
    "apass": (_build_apass, "RAJ2000", "DEJ2000"),
    "ucac4": (_build_ucac4, "RAJ2000", "DEJ2000"),
    "gaia": (_build_gaia, "RA_ICRS", "DE_ICRS"),
}


class _ConeProvider:
    """One cone query per field, cached in memory and on disk."""

    def __init__(self, cfg: Config, source: _Source):
        self.source = source
        self.timeout = float(cfg.catalog.timeout)
        self.cache = ConeCache(cfg.catalog.cache, source)
        self.queries = 0                      # network queries made by this provider

    def _table(self, ra: float, dec: float, radius: float):
        ra, dec, radius = float(ra), float(dec), float(radius)
        if not (math.isfinite(ra) and math.isfinite(dec) and math.isfinite(radius)):
            raise UsageError(f"a catalog field needs finite coordinates (got {ra}, {dec}, {radius}).")
        if radius > MAX_RADIUS_DEG:
            raise UsageError(f"a {radius:.1f}° cone is too large for a query to {self.source.where} "
                             f"(at most {MAX_RADIUS_DEG:g}°).")
        radius = max(radius, 1.0 / 3600.0)
        ra %= 360.0
        table = self.cache.find(ra, dec, radius)
        if table is None:
            cone = cone_key(ra, dec, radius)
            table = _query(self.source, cone, self.timeout)
            self.queries += 1
            self.cache.store(cone, table)
        return table, (ra, dec, radius)


class VizierCatalog(_ConeProvider):
    """A remote reference catalog (``apass``, ``ucac4`` or ``gaia``); see the module docstring."""

    def __init__(self, cfg: Config, key: str):
        if key not in _BUILDERS:
            raise UsageError(f"'{key}' is not a remote catalog (apass, ucac4 or gaia).")
        super().__init__(cfg, SOURCES[key])
        self._build, self._ra_col, self._dec_col = _BUILDERS[key]

    def field(self, ra_deg: float, dec_deg: float, radius_deg: float) -> Catalog:
        """Catalog stars within ``radius_deg`` of (``ra_deg``, ``dec_deg``), ICRS degrees.

        Raises :class:`CatalogUnavailable` when the service cannot be used right now.
        """
        table, (ra, dec, radius) = self._table(ra_deg, dec_deg, radius_deg)
        return self._build(_in_cone(table, self._ra_col, self._dec_col, ra, dec, radius))


class VsxKnownVariables(_ConeProvider):
    """Known variable stars from the AAVSO VSX (Vizier ``B/vsx/vsx``), cached like catalogs."""

    def __init__(self, cfg: Config):
        super().__init__(cfg, VSX)

    def field(self, ra_deg: float, dec_deg: float, radius_deg: float):
        """:class:`~clinepipe.catalogs.KnownVariables` within the cone (periods in days)."""
        from clinepipe.catalogs.types import KnownVariables

        table, (ra, dec, radius) = self._table(ra_deg, dec_deg, radius_deg)
        table = _in_cone(table, "RAJ2000", "DEJ2000", ra, dec, radius)
        return KnownVariables(
            names=_strings(table, "Name"), ra=_floats(table, "RAJ2000"),
            dec=_floats(table, "DEJ2000"), types=_strings(table, "Type"),
            periods=_floats(table, "Period"))


def vizier_catalog(cfg: Config) -> VizierCatalog:
    """The remote reference catalog named by ``cfg.catalog.source`` (apass, ucac4, gaia)."""
    return VizierCatalog(cfg, cfg.catalog.source)


def vsx_known_variables(cfg: Config) -> VsxKnownVariables:
    """The AAVSO VSX known-variable list, per field, through Vizier."""
    return VsxKnownVariables(cfg)
