"""The sky background of a frame: sep's mesh level and rms, at given pixels or as full maps,
and their global values (ADU)."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import sep

from clinepipe.photometry.mesh_spline import SepMesh, read_sep_mesh

# Mask dtypes sep reads directly; anything else becomes a boolean "nonzero" mask.
_SEP_MASK_DTYPES = tuple(np.dtype(t)
                         for t in (np.uint8, np.bool_, np.int32, np.float32, np.float64))

class Background:
    """A smooth background model of one image.

    :meth:`level_at` and :meth:`rms_at` evaluate sep's spline at given pixels only, exactly
    as ``back()``/``rms()`` would (see :mod:`clinepipe.photometry.mesh_spline`): the
    photometry reads a few thousand pixels, and each full-frame map costs ~20 ms on a 2048²
    frame (~70 ms at 3352×2532). The full maps :attr:`level` and :attr:`rms`, for callers
    that need every pixel (source detection), are interpolated on first use and then kept.

    Parameters
    ----------
    maps : object
        Anything with sep.Background's ``back(dtype=...)`` and ``rms(dtype=...)`` methods,
        or a ``(level, rms)`` pair of 2-D arrays already evaluated.
    global_level, global_rms : float
        ADU/pixel, the frame's global background and its noise (sep's ``globalback``,
        ``globalrms``).
    box : int
        Mesh box size, pixels.
    filter_size : int
        Median filter size over the mesh, boxes.
    mesh : SepMesh, optional
        sep's mesh of ``maps``, for evaluating it at given pixels; without it those values
        are read from the full maps.
    shape : tuple of int, optional
        ``(rows, columns)`` of the image; default from ``mesh`` or the maps.

    Attributes
    ----------
    level : numpy.ndarray
        2-D, float32, ADU/pixel: the background level at every pixel (evaluated lazily).
    rms : numpy.ndarray
        2-D, float32, ADU/pixel: the 1-sigma noise of a background pixel (evaluated lazily).
    """

    def __init__(self, maps, global_level: float, global_rms: float, box: int = 64,
                 filter_size: int = 3, *, mesh: SepMesh | None = None, shape=None):
        if isinstance(maps, tuple):
            level, rms = maps
            self.__dict__["level"] = np.asarray(level, dtype=np.float32)
            self.__dict__["rms"] = np.asarray(rms, dtype=np.float32)
            maps = None
        self._maps = maps
        self._mesh = mesh
        self.global_level = float(global_level)
        self.global_rms = float(global_rms)
        self.box = int(box)
        self.filter_size = int(filter_size)
        if shape is None:
            shape = (mesh.height, mesh.width) if mesh is not None else self.level.shape
        self.shape = tuple(int(n) for n in shape)

    @cached_property
    def level(self) -> np.ndarray:
        return self._maps.back(dtype=np.float32)

    @cached_property
    def rms(self) -> np.ndarray:
        return self._maps.rms(dtype=np.float32)

    def level_at(self, x, y) -> np.ndarray:
        """:attr:`level` at integer pixels without the full map.

        Parameters
        ----------
        x, y : array_like of int
            Columns and rows, 0-based, inside the image (broadcast together).

        Returns
        -------
        numpy.ndarray
            float32, ADU/pixel, equal to ``level[y, x]``.
        """
        if self._mesh is None or "level" in self.__dict__:
            return self.level[y, x]
        return self._mesh.level_at(x, y)

    def rms_at(self, x, y) -> np.ndarray:
        """:attr:`rms` at integer pixels without the full map (as :meth:`level_at`), float32,
        ADU/pixel."""
        if self._mesh is None or "rms" in self.__dict__:
            return self.rms[y, x]
        return self._mesh.rms_at(x, y)

    def level_error_scale(self, x, y) -> np.ndarray:
        """``sigma_level / rms`` at pixel positions (x, y) (0-based): the level's error per
        unit of pixel noise.

        sep estimates each box's level with the mode estimator ``2.5 median - 1.5 mean`` of
        ``box**2`` pixels, whose error is ``2.1 rms / box`` for Gaussian noise; the median
        filter over ``filter_size**2`` boxes divides it by about ``filter_size / 1.25``
        (the median of n estimates has an error 1.25/sqrt(n) times one's). Within one box of
        the image border the filter sees fewer boxes and the spline extrapolates, which
        raises the error up to ~2.9x at an edge and ~4.7x in a corner. This model was
        calibrated on pure-noise frames (``tests/test_photometry.py`` checks it) and is
        conservative by ~10 % in the interior.

        Parameters
        ----------
        x, y : array_like
            Pixel positions, 0-based.

        Returns
        -------
        numpy.ndarray
            Dimensionless, float64.
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        ny, nx = self.shape
        box = float(self.box)
        interior = _MODE_ERROR / box * min(1.0, 1.25 / max(1, int(self.filter_size)))

        def closeness(c, n):  # 1 at the border, 0 from one box inwards
            d = np.minimum(c + 0.5, n - 0.5 - c)
            return np.clip(1.0 - d / box, 0.0, 1.0)

        edge = 1.0 + _EDGE_ERROR_GROWTH * (closeness(x, nx) + closeness(y, ny))
        return interior * edge

    def level_error(self, x, y) -> np.ndarray:
        """1-sigma error of :attr:`level` at pixel positions (x, y) (0-based), ADU/pixel.

        ``rms * level_error_scale(x, y)``, see :meth:`level_error_scale`.
        """
        iy, ix = _nearest_index(np.asarray(x, dtype=np.float64),
                                np.asarray(y, dtype=np.float64), self.shape)
        return self.rms_at(ix, iy).astype(np.float64) * self.level_error_scale(x, y)


def _sep_image(data) -> np.ndarray:
    """``data`` as a C-contiguous, native-endian float array sep accepts (no copy if it is one).

    float32 and float64 are kept (sep reads both); integers (raw 16-bit frames) and
    big-endian FITS data are converted to native float32/float64.
    """
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {arr.shape}")
    if arr.dtype.kind == "f" and arr.dtype.itemsize in (4, 8):
        dtype = arr.dtype.newbyteorder("=")
    else:
        dtype = np.dtype(np.float32)
    return np.ascontiguousarray(arr, dtype=dtype)


def _sep_mask(mask, shape) -> np.ndarray | None:
    """A mask sep accepts (uint8/bool/int32/float, native) where nonzero means bad."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"mask shape {m.shape} differs from the image shape {shape}")
    if m.dtype in _SEP_MASK_DTYPES:  # dtype equality implies native byte order
        return np.ascontiguousarray(m)
    return np.ascontiguousarray(m != 0)


def measure_background(data, mask=None, box: int = 64, filter_size: int = 3) -> Background:
    """Measure a smooth background level and noise map with ``sep.Background``.

    Parameters
    ----------
    data : numpy.ndarray
        2-D image, ADU (any float or integer dtype, any byte order).
    mask : numpy.ndarray, optional
        2-D, same shape; nonzero pixels (e.g. the reduction's uint8 bitmask) are ignored.
        Non-finite pixels are always ignored.
    box : int
        Mesh box size, pixels (``bw = bh = box``). It should be several times the FWHM.
    filter_size : int
        Median filter over the mesh, in boxes (``fw = fh = filter_size``).

    Returns
    -------
    Background
        ``level_at``/``rms_at`` (float32, ADU/pixel, at given pixels), ``level`` and ``rms``
        (2-D float32, ADU/pixel, interpolated from the mesh on first use), ``global_level``,
        ``global_rms``.
    """
    arr = _sep_image(data)
    sep_mask = _sep_mask(mask, arr.shape)
    # one pass without a temporary: a NaN or infinity makes the float64 sum non-finite
    if not np.isfinite(np.add.reduce(arr, axis=None, dtype=np.float64)):
        nonfinite = ~np.isfinite(arr)
        arr = np.where(nonfinite, 0, arr).astype(arr.dtype, copy=False)
        sep_mask = nonfinite if sep_mask is None else (nonfinite | (sep_mask != 0))
    bkg = sep.Background(arr, mask=sep_mask, bw=int(box), bh=int(box),
                         fw=int(filter_size), fh=int(filter_size))
    return Background(bkg, global_level=float(bkg.globalback), global_rms=float(bkg.globalrms),
                      box=int(box), filter_size=int(filter_size),
                      mesh=read_sep_mesh(bkg, arr.shape, int(box)), shape=arr.shape)


# Error of sep's mode estimate of one mesh box, in units of rms/sqrt(pixels per box), and
# how fast it grows towards the image border (see Background.level_error).
_MODE_ERROR = 2.1


_EDGE_ERROR_GROWTH = 1.85


def _nearest_index(x: np.ndarray, y: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of the pixel nearest to each (x, y), clipped into the frame."""
    ny, nx = shape
    ix = np.rint(np.clip(np.where(np.isfinite(x), x, 0.0), 0, nx - 1)).astype(np.intp)
    iy = np.rint(np.clip(np.where(np.isfinite(y), y, 0.0), 0, ny - 1)).astype(np.intp)
    return iy, ix
