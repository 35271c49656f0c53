"""astrometry.net index files built from the configured reference catalog around a field.

The Debian Tycho-2 index files hold too few stars to solve this observatory's ~18 arcmin
fields, but the reference catalog the photometry already uses (a ``catalog.csv`` or a
cached Vizier cone of APASS/UCAC4/Gaia) is deep enough. So, before plate-solving a frame:

1. the centre hint (mount pointing ``RA``/``DEC`` or ``OBJCTRA``/``OBJCTDEC``, else an old
   WCS) and the pixel-scale hint come from the header, as :func:`clinepipe.astrometry.solve_field`
   reads them;
2. the catalog cone around that centre (the field's half-diagonal plus
   ``[astrometry] index_margin`` for pointing errors) is written as a FITS table
   ``RA, DEC, MAG`` and ``build-astrometry-index`` makes one index file per quad-size preset
   suited to the field (quads of ~10-60 % of the field diagonal);
3. the files are cached in ``<archive>/astrometry-index/<key>/``, the key being the rounded
   centre, the radius, the catalog name and a digest of the stars and build settings, so a
   field is built once and an edited catalog gives a new index. A directory is built under a
   temporary name and renamed into place whole (atomic), under an ``flock`` so that two
   processes do not build the same one; a reader only ever sees complete directories.

:func:`solve_with_catalog` puts it together for ``clinepipe solve`` and the pipeline.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from clinepipe.catalogs.match import separation_deg
from clinepipe.errors import BadInput, ClinepipeError

__all__ = ["INDEX_DIR_NAME", "CatalogIndex", "quad_presets", "index_radius", "catalog_cone",
           "ensure_index", "index_for_image", "solve_with_catalog"]

log = logging.getLogger(__name__)

#: the cache folder under the archive
INDEX_DIR_NAME = "astrometry-index"
#: quad sizes (arcmin) of build-astrometry-index's preset 0; each further preset is sqrt(2)
#: larger (preset 4 ~ 8-11 arcmin quads for ~24 arcmin fields), up to preset 19
_PRESET0_ARCMIN = (2.0, 2.8)
_MAX_PRESET = 19
#: quads from this fraction of the field diagonal to that one: smaller quads hold too few
#: catalog stars, larger ones rarely have all four stars inside the frame
_QUAD_FRACTION = (0.1, 0.6)
#: fewest catalog stars in the cone worth an index (a quad needs 4, verification more)
MIN_INDEX_STARS = 10
#: field diagonal assumed when the header gives no pixel scale (arcmin); presets and cone
#: then cover fields from ~6 arcmin to ~1 degree
_UNKNOWN_FIELD_PRESETS = tuple(range(0, 7))
_UNKNOWN_FIELD_HALF_DIAGONAL = 0.5  # deg
#: centres are rounded to this grid (deg on the sky) so nearby pointings share an index; the
#: cone radius grows by the rounding offset
_CENTRE_GRID = 0.05
#: bands tried, in order, for the brightness that orders the stars (brightest first)
_BAND_PREFERENCE = ("V", "G", "R", "r", "g", "B", "I", "i", "J")
_BUILD_TIMEOUT = 300.0  # s per build-astrometry-index run
_STALE_BUILD = 3600.0  # s: a temporary build directory this old was left by a killed process

_BUILD_HINT = ("build-astrometry-index (astrometry.net) is not installed; run `make system-deps` "
               "or install the Debian package astrometry.net, or set [astrometry] "
               "catalog_index = false.")


@dataclass(frozen=True)
class CatalogIndex:
    """Index files for one field, or why there are none.

    ``files`` are the index files (empty when the catalog has too few stars there);
    ``built`` is True when this call built them (False: reused from the cache);
    ``seconds`` the build time (s, 0 when reused); ``n_stars`` the catalog stars in the cone;
    ``note`` a phrase saying why there is no index (empty when there is one).
    """

    files: tuple[Path, ...] = ()
    directory: Path | None = None
    built: bool = False
    seconds: float = 0.0
    n_stars: int = 0
    centre: tuple[float, float] | None = None
    radius: float = 0.0
    presets: tuple[int, ...] = ()
    note: str = ""
    #: the field's diagonal from the scale hint, arcmin (None: no scale hint)
    field_arcmin: float | None = None


def quad_presets(field_arcmin: float | None) -> tuple[int, ...]:
    """build-astrometry-index ``-P`` presets whose quads suit a field of this diagonal.

    Parameters
    ----------
    field_arcmin : float or None
        Field diagonal, arcmin; None (unknown scale) gives presets 0-6.

    Returns
    -------
    tuple of int
        Every preset whose quad-size range overlaps 10-60 % of the diagonal.
    """
    if field_arcmin is None or not math.isfinite(field_arcmin) or field_arcmin <= 0:
        return _UNKNOWN_FIELD_PRESETS
    low, high = (f * field_arcmin for f in _QUAD_FRACTION)
    out = []
    for p in range(_MAX_PRESET + 1):
        q_low, q_high = (q * math.sqrt(2.0) ** p for q in _PRESET0_ARCMIN)
        if q_high >= low and q_low <= high:
            out.append(p)
    return tuple(out) or (0,)


def index_radius(field_arcmin: float | None, margin_deg: float) -> float:
    """Catalog cone radius, deg: half the field diagonal plus the pointing margin."""
    half = (_UNKNOWN_FIELD_HALF_DIAGONAL if field_arcmin is None
            else 0.5 * field_arcmin / 60.0)
    return half + max(0.0, float(margin_deg))



def _brightness(catalog) -> tuple[str, np.ndarray]:
    """The band (and its magnitudes) with the most values, preferring V-like bands."""
    mags = getattr(catalog, "mags", {}) or {}
    if not mags:
        return "", np.zeros(len(catalog.ra))
    order = [b for b in _BAND_PREFERENCE if b in mags] + [b for b in mags if b not in _BAND_PREFERENCE]
    best = max(order, key=lambda b: (int(np.isfinite(np.asarray(mags[b], float)).sum()),
                                     -order.index(b)))
    return best, np.asarray(mags[best], dtype=np.float64)


def catalog_cone(catalog, ra: float, dec: float, radius_deg: float):
    """Catalog stars within ``radius_deg`` of (ra, dec), brightest first.

    Returns
    -------
    ra, dec, mag : numpy.ndarray
        Degrees and magnitudes (stars without a magnitude get 99, i.e. they come last).
    band : str
        The catalog band used for the order.
    """
    cra = np.asarray(catalog.ra, dtype=np.float64)
    cdec = np.asarray(catalog.dec, dtype=np.float64)
    band, mag = _brightness(catalog)
    ok = np.isfinite(cra) & np.isfinite(cdec)
    ok &= separation_deg(ra, dec, np.where(ok, cra, 0.0), np.where(ok, cdec, 0.0)) <= radius_deg
    mag = np.where(np.isfinite(mag), mag, 99.0)[ok]
    order = np.argsort(mag, kind="stable")
    return cra[ok][order], cdec[ok][order], mag[order], band


def _rounded_centre(ra: float, dec: float) -> tuple[float, float, float]:
    """Centre on the cache grid and its distance from the true centre (deg)."""
    dec_r = round(dec / _CENTRE_GRID) * _CENTRE_GRID
    step = min(360.0, _CENTRE_GRID / max(math.cos(math.radians(dec_r)), 1e-3))
    ra_r = (round(ra / step) * step) % 360.0
    dec_r = max(-90.0, min(90.0, dec_r))
    return ra_r, dec_r, float(separation_deg(ra, dec, ra_r, dec_r))


def _cache_key(name: str, ra: float, dec: float, radius: float, presets, stars) -> str:
    """Directory name: catalog, centre, radius, presets and a digest of the stars."""
    digest = hashlib.sha1()
    for arr in stars:
        digest.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
    digest.update(repr(tuple(presets)).encode())
    safe = "".join(c if c.isalnum() else "_" for c in (name or "catalog"))[:20]
    return (f"{safe}_ra{ra:07.3f}_dec{dec:+07.3f}_r{radius:.3f}"
            f"_P{'-'.join(map(str, presets))}_{digest.hexdigest()[:12]}")


def ensure_index(cache_dir, catalog_name: str, stars, centre: tuple[float, float],
                 radius: float, presets) -> CatalogIndex:
    """The cached index files of a catalog cone, building them if needed.

    Parameters
    ----------
    cache_dir : path
        The cache folder (created).
    catalog_name : str
        Part of the cache key (``file``, ``apass``, ...).
    stars : tuple of numpy.ndarray
        ``(ra, dec, mag)`` of the cone, degrees and magnitudes, brightest first.
    centre : (float, float)
        Rounded cone centre, degrees (part of the key).
    radius : float
        Cone radius, degrees (part of the key).
    presets : iterable of int
        build-astrometry-index ``-P`` presets, one file each.

    Returns
    -------
    CatalogIndex

    Raises
    ------
    ClinepipeError
        build-astrometry-index is missing, fails or times out.
    """
    cache_dir = Path(cache_dir)
    presets = tuple(int(p) for p in presets)
    key = _cache_key(catalog_name, centre[0], centre[1], radius, presets, stars)
    final = cache_dir / key
    base = dict(directory=final, n_stars=int(len(stars[0])), centre=centre, radius=radius,
                presets=presets)
    found = _complete(final)
    if found is not None:
        return CatalogIndex(files=found, built=False, **base)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # one builder per key at a time; the kernel releases the lock if the holder dies
    with open(cache_dir / f"{key}.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        found = _complete(final)  # built by another process while we waited
        if found is not None:
            return CatalogIndex(files=found, built=False, **base)
        t0 = time.perf_counter()
        files = _build(cache_dir, final, stars, presets, key, catalog_name, centre, radius)
        seconds = time.perf_counter() - t0
    log.info("built %d astrometry.net index file(s) from %d %s stars in %.2f s: %s",
             len(files), len(stars[0]), catalog_name, seconds, final)
    return CatalogIndex(files=files, built=True, seconds=seconds, **base)


def _complete(directory: Path) -> tuple[Path, ...] | None:
    """The index files of a finished cache directory (it has its manifest), else None."""
    manifest = directory / "manifest.json"
    try:
        names = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    files = tuple(directory / n for n in names)
    return files if all(f.is_file() for f in files) else None


def _build(cache_dir: Path, final: Path, stars, presets, key: str, catalog_name: str,
           centre, radius) -> tuple[Path, ...]:
    """Build every preset into a temporary directory, then rename it to ``final`` whole."""
    exe = shutil.which("build-astrometry-index")
    if exe is None:
        raise ClinepipeError(f"{final}: cannot build a catalog index: {_BUILD_HINT}",
                             reason="build-astrometry-index not installed")
    _remove_stale_builds(cache_dir)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
    try:
        table = tmp / "stars.fits"
        ra, dec, mag = stars
        Table({"RA": ra, "DEC": dec, "MAG": mag}).write(table, format="fits")
        # the unique id astrometry.net logs with each solution: from the key, per preset
        base_id = int(hashlib.sha1(key.encode()).hexdigest()[:5], 16) * 100
        names = []
        for p in presets:
            name = f"index-{p:02d}.fits"
            _run_build([exe, "-i", str(table), "-o", str(tmp / name), "-P", str(p),
                        "-S", "MAG", "-A", "RA", "-D", "DEC", "-E", "-M",
                        "-I", str(base_id + p), "-t", str(tmp)], tmp, final)
            names.append(name)
        table.unlink()
        manifest = {"files": names, "catalog": catalog_name, "centre": list(centre),
                    "radius_deg": radius, "presets": list(presets), "n_stars": int(len(ra))}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        try:
            os.rename(tmp, final)  # atomic; fails if the directory already exists
        except OSError:
            if _complete(final) is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # someone else's complete copy wins
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tuple(final / n for n in names)


def _run_build(cmd: list[str], cwd: Path, final: Path) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=_BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ClinepipeError(f"{final}: build-astrometry-index took more than "
                             f"{_BUILD_TIMEOUT:.0f} s.", reason="catalog index failed") from None
    if proc.returncode != 0:
        tail = " ".join((proc.stdout or "").strip().splitlines()[-1:])[:200]
        raise ClinepipeError(f"{final}: build-astrometry-index failed (exit {proc.returncode}"
                             + (f": {tail})." if tail else ")."), reason="catalog index failed")


def _remove_stale_builds(cache_dir: Path) -> None:
    """Temporary build directories of killed processes (old enough to be nobody's)."""
    now = time.time()
    for path in cache_dir.glob(".build-*"):
        try:
            if now - path.stat().st_mtime > _STALE_BUILD:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def _image_header(image_path: Path):
    """Header and (width, height) of the first 2-D image HDU."""
    try:
        with fits.open(image_path, memmap=True) as hdus:
            for hdu in hdus:
                if hdu.is_image and hdu.header.get("NAXIS") == 2:
                    return hdu.header.copy(), (int(hdu.header["NAXIS1"]), int(hdu.header["NAXIS2"]))
    except (OSError, ValueError) as exc:
        raise BadInput(f"{image_path}: is not a readable FITS file ({exc}).",
                       reason="plate solving failed") from exc
    raise BadInput(f"{image_path}: has no 2-D image to plate-solve.", reason="plate solving failed")


def index_for_image(cfg, image_path, *, scale_low: float | None = None,
                    scale_high: float | None = None, ra: float | None = None,
                    dec: float | None = None, catalog=None) -> CatalogIndex:
    """The catalog index for an image's field (built or from the cache).

    Parameters
    ----------
    cfg : clinepipe.config.Config
        For ``[catalog]`` (the source), ``[astrometry] index_margin`` and the archive (cache).
    image_path : path
        FITS image; its header gives the centre and scale hints.
    scale_low, scale_high : float, optional
        Pixel-scale bounds, arcsec/pixel, overriding the header.
    ra, dec : float, optional
        Field centre, degrees, overriding the header.
    catalog : optional
        An object with ``field(ra, dec, radius_deg) -> Catalog``; default the configured one.

    Returns
    -------
    CatalogIndex
        With ``files`` empty and a ``note`` when there is no centre hint or the catalog has
        fewer than :data:`MIN_INDEX_STARS` stars around it.

    Raises
    ------
    CatalogUnavailable
        The remote catalog cannot be reached now (the frame waits).
    """
    from clinepipe.astrometry.solve import _header_hints
    from clinepipe.catalogs.sources import catalog_source

    image_path = Path(image_path)
    header, (width, height) = _image_header(image_path)
    hints = _header_hints(header)
    if ra is None or dec is None:
        ra, dec = hints.get("ra"), hints.get("dec")
    if ra is None or dec is None:
        return CatalogIndex(note="the header has no pointing (RA/DEC or OBJCTRA/OBJCTDEC) to "
                                 "build a catalog index around")
    low = scale_low if scale_low is not None else hints.get("scale_low")
    high = scale_high if scale_high is not None else hints.get("scale_high")
    scale = None
    if low is not None or high is not None:
        scale = 0.5 * ((low if low is not None else high) + (high if high is not None else low))
    diagonal = math.hypot(width, height) * scale / 60.0 if scale else None  # arcmin
    ra_r, dec_r, offset = _rounded_centre(float(ra), float(dec))
    radius = round(index_radius(diagonal, cfg.astrometry.index_margin) + offset, 3)
    source = catalog if catalog is not None else catalog_source(cfg)
    cat = source.field(ra_r, dec_r, radius)
    cra, cdec, mag, band = catalog_cone(cat, ra_r, dec_r, radius)
    name = getattr(cat, "name", "") or cfg.catalog.source
    if cra.size < MIN_INDEX_STARS:
        return CatalogIndex(n_stars=int(cra.size), centre=(ra_r, dec_r), radius=radius,
                            note=f"the {name} catalog has only {cra.size} star(s) within "
                                 f"{radius:.2f} deg of the pointing RA {float(ra):.4f} Dec "
                                 f"{float(dec):+.4f}, too few for an index (the field is not "
                                 "in the catalog)")
    index = ensure_index(Path(cfg.paths.archive) / INDEX_DIR_NAME, name, (cra, cdec, mag),
                         (ra_r, dec_r), radius, quad_presets(diagonal))
    return replace(index, field_arcmin=diagonal)


def solve_with_catalog(cfg, image_path, output_path, *, scale_low: float | None = None,
                       scale_high: float | None = None, ra: float | None = None,
                       dec: float | None = None, radius: float | None = None,
                       timeout: float | None = None) -> Path:
    """:func:`clinepipe.astrometry.solve_field` with the catalog index of the field.

    With ``[astrometry] catalog_index = false`` only the system index files are used.
    When the catalog has no stars around the pointing and the system files cannot solve
    the frame either, the error's reason is ``"field not in catalog"``.

    Parameters are those of ``solve_field`` (arcsec/pixel, degrees, seconds); None takes
    ``[astrometry] scale_low``/``scale_high``/``timeout`` from ``cfg``, then the header.
    Only the ``[astrometry] solve_sources`` brightest detections go to the solver: the
    engine tries quads among all it is given, so 300 detections of a frame no index matches
    take minutes (solve-field's own CPU limit is not kept), 60 take seconds.

    Returns
    -------
    pathlib.Path
        ``output_path``.
    """
    from clinepipe.astrometry.solve import solve_field

    a = cfg.astrometry
    scale_low = scale_low if scale_low is not None else (a.scale_low or None)
    scale_high = scale_high if scale_high is not None else (a.scale_high or None)
    timeout = timeout if timeout is not None else a.timeout
    index = CatalogIndex()
    if a.catalog_index and cfg.catalog.source != "none":  # no catalog to build an index from
        if shutil.which("solve-field") is not None:  # else solve_field says it is missing
            index = index_for_image(cfg, image_path, scale_low=scale_low, scale_high=scale_high,
                                    ra=ra, dec=dec)
        if index.note:
            log.info("%s: %s; solving with the system index files only", image_path, index.note)
    def attempt(files, system):
        return solve_field(image_path, output_path, scale_low=scale_low, scale_high=scale_high,
                           ra=ra, dec=dec, radius=radius, timeout=timeout, index_files=files,
                           system_index=system, max_sources=max(5, a.solve_sources))

    try:
        if not index.files:
            return attempt((), a.system_index)
        try:
            # the catalog index alone first: quick to succeed or fail, whereas a search
            # through the 140 MB Tycho-2 files costs a minute on a frame they cannot solve
            return attempt(index.files, False)
        except BadInput as exc:
            if not (a.system_index and _maybe_wide(index) and exc.reason == "plate solving failed"):
                raise
            log.info("%s: not solved with the catalog index; trying the system index files",
                     image_path)
            return attempt((), True)
    except BadInput as exc:
        if exc.reason != "plate solving failed" or not index.note or not a.catalog_index:
            raise
        raise BadInput(f"{exc.message.rstrip('.')}, and {index.note}.",
                       reason="field not in catalog" if index.centre else exc.reason) from exc


#: fields at least this wide (diagonal, arcmin) may hold enough Tycho-2 stars for the system
#: index files
_TYCHO_MIN_FIELD_ARCMIN = 30.0


def _maybe_wide(index: CatalogIndex) -> bool:
    """True unless the scale hint says the field is too small for the Tycho-2 index files."""
    return index.field_arcmin is None or index.field_arcmin >= _TYCHO_MIN_FIELD_ARCMIN
