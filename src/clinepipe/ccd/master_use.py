"""Masters as a light uses them: cropped to the light's window, the hot-pixel map and the
flat's usable range derived once per master, masters read once per process.
"""

from __future__ import annotations

import functools
import weakref
from pathlib import Path

import numpy as np

from clinepipe.ccd.frame_median import frame_median
from clinepipe.errors import BadInput

#: a flat outside this range marks the pixel as bad (dead column, dust donut core, vignetting)
FLAT_RANGE = (0.5, 2.0)


#: hot pixel: master dark above its median by this many robust sigma
HOT_SIGMA = 8.0


def crop_master(master: np.ndarray, xorg: int, yorg: int, shape: tuple[int, int], *,
                has_origin: bool = True, name: str = "frame") -> np.ndarray:
    """The part of ``master`` under a (sub)frame of ``shape`` at origin (``xorg``, ``yorg``).

    The origin is XORGSUBF/YORGSUBF in binned pixels, 0-based. A frame of the master's shape at
    (0, 0) gets the master itself. Raises :class:`BadInput`:

    * ``subframe without origin`` — the frame's shape differs from the master's, its origin is
      (0, 0) and ``has_origin`` is False (no XORGSUBF/YORGSUBF in its header): where it sits
      on the sensor is unknown, and guessing the corner would calibrate with the wrong pixels;
    * ``subframe outside the master`` — it does not fit inside the master at that origin
      (or a different binning's master was given).
    """
    ny, nx = (int(shape[0]), int(shape[1]))
    my, mx = master.shape
    if (ny, nx) == (my, mx) and xorg == 0 and yorg == 0:
        return master
    if xorg == 0 and yorg == 0 and not has_origin:
        raise BadInput(f"{name}: is {nx}x{ny} pixels but the master is {mx}x{my} and the header "
                       "has no XORGSUBF/YORGSUBF to place it (subframe without origin).",
                       reason="subframe without origin")
    if xorg < 0 or yorg < 0 or xorg + nx > mx or yorg + ny > my:
        raise BadInput(f"{name}: the {nx}x{ny} subframe at ({xorg}, {yorg}) does not fit in the "
                       f"{mx}x{my} master (subframe outside the master).",
                       reason="subframe outside the master")
    return master[yorg:yorg + ny, xorg:xorg + nx]


def hot_pixel_mask(dark: np.ndarray, *, sigma: float = HOT_SIGMA) -> np.ndarray:
    """Pixels whose master dark is far above the dark's robust distribution (bool array).

    ``dark > median + sigma * 1.4826 MAD`` (the MAD floored at 1 ADU so a noise-free dark
    does not flag every pixel above the median).
    """
    d = np.asarray(dark, dtype=np.float32)
    med = float(frame_median(d))
    spread = max(1.4826 * float(frame_median(np.abs(d - np.float32(med)))), 1.0)
    with np.errstate(invalid="ignore"):
        return d > med + sigma * spread


# Per-master products reused by every light: the hot pixels of a master dark, the square of a
# master flat and its bad pixels. Only read-only arrays are remembered (the masters read from
# files are, see _cached_master): they cannot change under the cache. The key is the memory
# the array describes, so a crop of a master (a new view each time) hits too; a weak
# reference to the memory's owner says when an entry is stale.
_DERIVED: dict = {}


_DERIVED_MAX = 16


def derived_once(kind: str, arr: np.ndarray, compute):
    """``compute(arr)``, remembered per read-only array (hot pixels of a master dark, square of a
    master flat), so that the lights sharing one master compute it once.

    Parameters
    ----------
    kind : str
        What is derived (``"hot"``, ``"flat"``): part of the cache key.
    arr : ndarray
        The master. A writeable array is never remembered (it could change under the cache);
        a read-only one is keyed by the memory it describes, so a crop hits too.
    compute : callable
        ``arr -> value``; the value should be read-only, as it is shared.

    Returns
    -------
    The value of ``compute(arr)``, possibly from an earlier call. At most 16 are kept.
    """
    if arr.flags.writeable:
        return compute(arr)
    owner = arr
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    key = (kind, arr.__array_interface__["data"][0], arr.shape, arr.strides, arr.dtype.str)
    hit = _DERIVED.get(key)
    if hit is not None and hit[0]() is owner:
        return hit[1]
    value = compute(arr)
    if len(_DERIVED) >= _DERIVED_MAX:
        for stale in [k for k, v in _DERIVED.items() if v[0]() is None] or list(_DERIVED)[:1]:
            _DERIVED.pop(stale, None)
    try:
        _DERIVED[key] = (weakref.ref(owner), value)
    except TypeError:  # an owner that cannot be weakly referenced: do not remember
        pass
    return value


def hot_pixels_of(dark: np.ndarray) -> np.ndarray:
    """:func:`hot_pixel_mask` of a master dark, computed once per read-only master."""
    def compute(d):
        mask = hot_pixel_mask(d)
        mask.setflags(write=False)
        return mask

    return derived_once("hot", dark, compute)


def flat_products(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``flat * flat`` and the bad-flat pixels, computed once per read-only master flat."""
    def compute(f):
        sq = np.multiply(f, f)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(f) | (f < FLAT_RANGE[0]) | (f > FLAT_RANGE[1])
        sq.setflags(write=False)
        bad.setflags(write=False)
        return sq, bad

    return derived_once("flat", flat, compute)


@functools.lru_cache(maxsize=6)
def _cached_master(path: str, mtime_ns: int, size: int):
    from clinepipe.ccd.master_files import read_master

    data, header = read_master(Path(path))
    data.setflags(write=False)  # shared between lights: never changed in place
    return data, header


def load_master(path: Path):
    """A master's float32 image (read-only, shared between lights) and primary header, read once
    per file version (the cache key is the resolved path, mtime and size, so a rewritten master
    is read again). Raises :class:`MissingCalibration` or :class:`BadInput` as
    :func:`~clinepipe.ccd.master_files.read_master`."""
    st = Path(path).stat()
    return _cached_master(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def master_parts(obj):
    """(data, header-or-None, noise, exptime, name) of a master given in any accepted form."""
    from clinepipe.ccd.master_result import MasterResult

    if isinstance(obj, dict):
        src = obj.get("data") if obj.get("data") is not None else obj.get("path")
        data, header, noise, exptime, name = master_parts(src)
        noise = obj.get("noise", noise)
        exptime = obj.get("exptime", exptime)
        if obj.get("path") is not None:
            name = Path(obj["path"]).name
        return data, header, noise, exptime, name
    if isinstance(obj, MasterResult):
        return obj.data, None, obj.noise, obj.exptime, ""
    if isinstance(obj, np.ndarray):
        return obj, None, None, None, ""
    data, header = load_master(Path(obj))
    noise = header.get("CLPNOISE")
    exptime = header.get("EXPTIME")
    return data, header, noise, exptime, Path(obj).name


def find_master(masters_dir: Path, kind: str, binning: int, filt: str | None) -> Path | None:
    """The master of ``kind`` (``"bias"``, ``"dark"``, ``"flat"``) for ``binning`` (and filter
    ``filt``, for a flat) in the folder ``masters_dir`` laid out by
    :func:`~clinepipe.ccd.master_files.master_path`, also under the ``.fit`` suffix of the 2018
    MasterCal; None when there is none."""
    from clinepipe.ccd.master_files import master_path

    path = master_path(masters_dir, kind, binning, filt)
    for candidate in (path, path.with_suffix(".fit")):  # the 2018 MasterCal used .fit
        if candidate.is_file():
            return candidate
    return None
