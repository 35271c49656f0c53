"""sep's background model evaluated at given pixels only, bit for bit as ``sep.Background``.

``sep.Background.back()`` and ``rms()`` interpolate the filtered mesh over the whole frame
(~20 ms each per 2048² light, ~70 ms at 3352×2532) although the photometry reads them at a
few thousand pixels (star stamps and positions). This module reads the mesh sep computed
(its ``sep_bkg`` struct, whose layout is sep's public C header ``sep.h``) and repeats sep's
``bkg_line_flt_internal`` (``src/background.c``) in float32 numpy: the natural cubic spline
along y through each mesh column at a row, then the spline along x through those nodes, with
sep's own order of float operations and its running ``dx += xstep`` sums, so the values equal
``back()``/``rms()`` exactly.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SepMesh:
    """The filtered background mesh of one image, as sep keeps it.

    Attributes
    ----------
    width, height : int
        Image size, pixels.
    box_w, box_h : int
        Mesh box size, pixels.
    back, sigma : numpy.ndarray
        ``(ny, nx)`` float32, ADU: the filtered mesh level and rms.
    dback, dsigma : numpy.ndarray
        ``(ny, nx)`` float32: sep's second derivatives of each mesh column along y.
    """

    width: int
    height: int
    box_w: int
    box_h: int
    back: np.ndarray
    dback: np.ndarray
    sigma: np.ndarray
    dsigma: np.ndarray
    _rows: dict = field(default_factory=dict, repr=False, compare=False)

    def level_at(self, x, y) -> np.ndarray:
        """``back()[y, x]`` at integer pixels (x = column, y = row, any broadcastable shapes),
        float32, ADU."""
        return self._at("back", x, y)

    def rms_at(self, x, y) -> np.ndarray:
        """``rms()[y, x]`` at integer pixels, float32, ADU."""
        return self._at("sigma", x, y)

    def _at(self, which: str, x, y) -> np.ndarray:
        x, y = np.broadcast_arrays(np.asarray(x, dtype=np.intp), np.asarray(y, dtype=np.intp))
        if x.size and (x.min() < 0 or x.max() >= self.width or y.min() < 0
                       or y.max() >= self.height):
            raise IndexError(f"pixels outside the {self.width}x{self.height} image")
        node, dnode = self._row_nodes(which)
        nbx = node.shape[1]
        if nbx == 1:  # one mesh column: sep copies the row's node to every pixel
            return node[y, 0].copy()
        seg, dx = self._columns()
        s, d = seg[x], dx[x]
        cdx = np.float32(1) - d
        one = np.float32(1)
        # sep: (float)(cdx*(*blo+(cdx*cdx-1)**dblo) + dx*(*bhi+(dx*dx-1)**dbhi)), all float
        return (cdx * (node[y, s] + (cdx * cdx - one) * dnode[y, s])
                + d * (node[y, s + 1] + (d * d - one) * dnode[y, s + 1]))

    def _row_nodes(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """For every image row: the mesh columns interpolated along y to that row and their
        second derivatives along x, ``(height, nx)`` float32 each (cached per map)."""
        if which in self._rows:
            return self._rows[which]
        values = self.back if which == "back" else self.sigma
        dvalues = self.dback if which == "back" else self.dsigma
        nby, nbx = values.shape
        if nby == 1:
            # sep uses the mesh row itself and its y derivatives (all zero) along x
            node = np.broadcast_to(values[0], (self.height, nbx))
            dnode = np.broadcast_to(dvalues[0], (self.height, nbx))
        else:
            node = _interpolate_rows(values, dvalues, self.height, self.box_h)
            dnode = _natural_spline_d2(node) if nbx > 1 else np.zeros_like(node)
        self._rows[which] = (node, dnode)
        return node, dnode

    def _columns(self) -> tuple[np.ndarray, np.ndarray]:
        """Per image column: the index of the left mesh node and sep's ``dx`` (float32)."""
        if "columns" not in self._rows:
            self._rows["columns"] = _column_steps(self.width, self.box_w, self.back.shape[1])
        return self._rows["columns"]


def _interpolate_rows(values: np.ndarray, dvalues: np.ndarray, height: int,
                      box_h: int) -> np.ndarray:
    """sep's interpolation along y of every mesh column at every row ``0..height-1``."""
    nby = values.shape[0]
    y = np.arange(height)
    # dy = (float)y/bh - 0.5 : a float quotient, the subtraction in double, stored as float
    dy = (np.float64(y.astype(np.float32) / np.float32(box_h)) - 0.5).astype(np.float32)
    yl = np.trunc(dy).astype(np.int64)  # (int64_t)dy truncates towards zero
    dy = dy - yl.astype(np.float32)
    low = yl < 0
    yl[low] = 0
    dy[low] = dy[low] - np.float32(1)
    high = ~low & (yl >= nby - 1)
    yl[high] = nby - 2
    dy[high] = dy[high] + np.float32(1)
    one = np.float32(1)
    cdy = (one - dy)[:, None]
    dy3 = (dy * dy * dy - dy)[:, None]
    cdy3 = cdy * cdy * cdy - cdy
    dy = dy[:, None]
    return (cdy * values[yl] + dy * values[yl + 1]) + cdy3 * dvalues[yl] + dy3 * dvalues[yl + 1]


def _natural_spline_d2(node: np.ndarray) -> np.ndarray:
    """Second derivatives of the natural cubic spline through each row of ``node`` (float32),
    by sep's tridiagonal recurrence (the same in ``makebackspline`` and ``bkg_line``),
    vectorised over the rows; the loop runs over the mesh columns only."""
    n = node.shape[1]
    d = np.zeros_like(node)
    u = np.zeros_like(node)
    one, four, six, two = (np.float32(v) for v in (1, 4, 6, 2))
    for k in range(1, n - 1):
        t = -one / (d[:, k - 1] + four)
        d[:, k] = t
        u[:, k] = t * (u[:, k - 1] - six * ((node[:, k + 1] + node[:, k - 1]) - two * node[:, k]))
    for k in range(n - 2, 0, -1):
        # (*dnode*temp + *u)/6.0 : float product and sum, the division in double
        d[:, k] = ((d[:, k] * d[:, k + 1] + u[:, k]).astype(np.float64) / 6.0).astype(np.float32)
    return d


def _column_steps(width: int, box_w: int, nbx: int) -> tuple[np.ndarray, np.ndarray]:
    """sep's walk along a line: the left node of each column and its ``dx`` (float32).

    sep starts at ``dx = (xstep - 1)/2`` on the first node pair and adds ``xstep = 1/bw``
    (in float) per column; at column ``k*bw + bw//2`` (``0 < k < nx-1``) it moves to the next
    node pair and restarts from ``dx0``. The running float sums are repeated with a
    sequential float32 cumulative sum per segment.
    """
    xstep = np.float32(1.0 / box_w)
    half = box_w // 2
    starts = [0]
    if half > 0:
        starts += [k * box_w + half for k in range(1, nbx - 1)]
    starts = np.asarray([s for s in starts if s < width], dtype=np.intp)
    first = (xstep - np.float32(1)) / np.float32(2)
    dx0 = np.float32((box_w + 1) % 2) * xstep / np.float32(2)
    bounds = np.append(starts, width)
    lengths = np.diff(bounds)
    steps = np.full((starts.size, int(lengths.max())), xstep, dtype=np.float32)
    steps[:, 0] = dx0
    steps[0, 0] = first
    sums = np.cumsum(steps, axis=1, dtype=np.float32)  # sequential, like sep's dx += xstep
    keep = np.arange(steps.shape[1])[None, :] < lengths[:, None]
    dx = sums[keep]
    seg = np.repeat(np.arange(starts.size, dtype=np.intp), lengths)
    return seg, dx


# sep_bkg in sep.h (sep >= 1.3): int64 w, h, bw, bh, nx, ny, n; float global, globalrms;
# float *back, *dback, *sigma, *dsigma.
class _SepBkg(ctypes.Structure):
    _fields_ = [("w", ctypes.c_int64), ("h", ctypes.c_int64), ("bw", ctypes.c_int64),
                ("bh", ctypes.c_int64), ("nx", ctypes.c_int64), ("ny", ctypes.c_int64),
                ("n", ctypes.c_int64), ("global_", ctypes.c_float),
                ("globalrms", ctypes.c_float), ("back", ctypes.c_void_p),
                ("dback", ctypes.c_void_p), ("sigma", ctypes.c_void_p),
                ("dsigma", ctypes.c_void_p)]


def read_sep_mesh(bkg, shape: tuple[int, int], box: int) -> SepMesh | None:
    """The mesh of a ``sep.Background`` (copied), or None when it cannot be read safely.

    sep's Python class keeps its ``sep_bkg *`` as its first field after the object header
    (``cdef sep_bkg *ptr; cdef np.dtype orig_dtype``, 32 bytes in all). The struct is read
    only when the class has exactly that size and every scalar field agrees with what is
    known (image size, box, number of boxes, global level and rms); otherwise None, and the
    caller uses sep's full maps.
    """
    import sep

    if type(bkg) is not sep.Background or sep.Background.__basicsize__ != 32:
        return None
    height, width = (int(v) for v in shape)
    header = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)  # refcount, type
    address = ctypes.c_void_p.from_address(id(bkg) + header).value
    if not address:
        return None
    s = _SepBkg.from_address(address)
    nx, ny = (width - 1) // box + 1, (height - 1) // box + 1
    if ((s.w, s.h, s.bw, s.bh, s.nx, s.ny, s.n) != (width, height, box, box, nx, ny, nx * ny)
            or np.float32(s.global_) != np.float32(bkg.globalback)
            or np.float32(s.globalrms) != np.float32(bkg.globalrms)
            or not (s.back and s.dback and s.sigma and s.dsigma)):
        return None

    def copy(ptr):
        return np.ctypeslib.as_array((ctypes.c_float * (nx * ny)).from_address(ptr)
                                     ).reshape(ny, nx).copy()

    return SepMesh(width, height, box, box, copy(s.back), copy(s.dback), copy(s.sigma),
                   copy(s.dsigma))
