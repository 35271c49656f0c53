"""The median of a stack of frames in row chunks: memory bounded, NaN-aware, bit-identical to bottleneck."""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import bottleneck as bn
import numpy as np
from astropy.io import fits
from numpy.lib.stride_tricks import as_strided

from clinepipe.errors import BadInput, ClinepipeError
from clinepipe.ingest.fits_reader import brief

#: half-size of the central region used for per-frame statistics (pixels)
_CENTRAL_HALF = 256

#: float32 elements of padding between frames in the chunk buffer: keeps the n frames'
#: rows off the same cache sets (their natural stride is a power of two for 2^k-wide frames)
_PLANE_PAD = 16

_RAW_DTYPES = {8: np.dtype("u1"), 16: np.dtype(">i2"), 32: np.dtype(">i4"), 64: np.dtype(">i8"),
               -32: np.dtype(">f4"), -64: np.dtype(">f8")}

class _Rows:
    """Row-slice access to one 2-D image (a FITS file or an array), converted to float32.

    Rows are numbered bottom-up as FITS intends: a ``ROWORDER = 'TOP-DOWN'`` file's rows are
    read in reverse (as :func:`clinepipe.ingest.fits_reader.read_image` does for a light), so a
    master has the orientation of the lights it calibrates whatever program wrote its frames.
    """

    def __init__(self, source, *, hdu: int | None = None, scratch_dir: Callable[[], Path] | None = None):
        self.label = source if isinstance(source, (str, os.PathLike)) else None
        self.header = fits.Header()
        self._array = None
        self._fh = None
        self._hdul = None
        self._hdu = None
        self.is_float = True
        self._flip = False
        if isinstance(source, np.ndarray):
            if source.ndim != 2:
                raise ValueError(f"median_stack: an array source has shape {source.shape}, not 2-D")
            self._array = source
            self.shape = source.shape
            self.is_float = source.dtype.kind == "f"
            return
        path = Path(source)
        if path.name.lower().endswith(".gz"):
            if scratch_dir is None:
                raise ValueError("gzip sources need a scratch folder")
            plain = scratch_dir() / f"{len(os.listdir(scratch_dir()))}.fits"
            try:
                with gzip.open(path, "rb") as fin, open(plain, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
            except (OSError, EOFError) as exc:
                raise BadInput(f"{path.name}: the gzip data cannot be read ({brief(exc)}).",
                               reason="truncated FITS") from exc
            self._open(plain, hdu, display=path)
        else:
            self._open(path, hdu, display=path)

    def _open(self, path: Path, hdu: int | None, display: Path) -> None:
        from clinepipe.ingest.fits_reader import (
            image_hdu_index,
            mark_bottom_up,
            rows_top_down,
        )

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                hdul = fits.open(path, memmap=False, lazy_load_hdus=True)
            except Exception as exc:
                raise BadInput(f"{display.name}: is not a readable FITS file ({brief(exc)}).",
                               reason="not FITS") from exc
            with hdul:
                index = image_hdu_index(hdul) if hdu is None else hdu
                if index is None:
                    raise BadInput(f"{display.name}: has no 2-D image.", reason="no image data")
                h = hdul[index]
                self.header = h.header.copy()
                if index > 0:
                    for key in ("EXPTIME", "EXPOSURE", "CCD-TEMP", "IMAGETYP", "FILTER", "DATE-OBS",
                                "ROWORDER"):
                        if key not in self.header and key in hdul[0].header:
                            self.header[key] = hdul[0].header[key]
                self._flip = rows_top_down(self.header)
                if self._flip:
                    mark_bottom_up(self.header)
                compressed = isinstance(h, fits.CompImageHDU)
                if compressed:
                    self.shape = tuple(int(n) for n in h.shape)
                else:
                    self.shape = (int(h.header["NAXIS2"]), int(h.header["NAXIS1"]))
                bitpix = int(h.header.get("BITPIX", 0))
                self.is_float = bitpix < 0 or "BLANK" in h.header  # can hold NaN
                fast = (not compressed and bitpix in _RAW_DTYPES
                        and not (bitpix > 0 and "BLANK" in h.header))
                if fast:
                    self._offset = hdul.fileinfo(index)["datLoc"]
                    self._dtype = _RAW_DTYPES[bitpix]
                    self._bzero = float(h.header.get("BZERO", 0.0))
                    self._bscale = float(h.header.get("BSCALE", 1.0))
        if fast:
            self._fh = open(path, "rb")
            self._size = os.fstat(self._fh.fileno()).st_size
            self._display = display
        else:
            self._hdul = fits.open(path, memmap=False)
            self._hdu = self._hdul[index]

    def read(self, r0: int, r1: int, out: np.ndarray, scratch: np.ndarray | None = None) -> None:
        """Fill ``out`` (float32, ``(r1 - r0, nx)``) with rows ``r0:r1`` (bottom-up)."""
        if self._flip:  # image rows r0:r1 are the file's rows ny-r1:ny-r0, in reverse
            ny = self.shape[0]
            self._read_file_rows(ny - r1, ny - r0, out, scratch)
            out[...] = out[::-1].copy()
            return
        self._read_file_rows(r0, r1, out, scratch)

    def _read_file_rows(self, r0: int, r1: int, out: np.ndarray,
                        scratch: np.ndarray | None = None) -> None:
        if self._array is not None:
            out[...] = self._array[r0:r1]
            return
        if self._fh is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[...] = self._hdu.section[r0:r1, :]
            return
        nx = self.shape[1]
        count = (r1 - r0) * nx
        nbytes = count * self._dtype.itemsize
        if scratch is None or scratch.nbytes < nbytes:
            scratch = np.empty(nbytes, np.uint8)
        raw = scratch[:nbytes].view(self._dtype).reshape(r1 - r0, nx)
        start = self._offset + r0 * nx * self._dtype.itemsize
        self._fh.seek(start)
        got = self._fh.readinto(memoryview(raw).cast("B"))
        if got != nbytes:
            raise BadInput(f"{self._display.name}: the file ends before its last image row "
                           "(truncated FITS).", reason="truncated FITS")
        if self._bscale == 1.0:
            np.add(raw, np.float32(self._bzero), out=out, dtype=np.float32, casting="unsafe")
        else:
            np.multiply(raw, np.float32(self._bscale), out=out, dtype=np.float32, casting="unsafe")
            if self._bzero:
                out += np.float32(self._bzero)

    def read_all(self) -> np.ndarray:
        out = np.empty(self.shape, np.float32)
        self.read(0, self.shape[0], out)
        return out

    def central(self) -> np.ndarray:
        """The central region (at most 512 x 512) as float32."""
        ny, nx = self.shape
        (r0, r1), (c0, c1) = _central_box(ny), _central_box(nx)
        rows = np.empty((r1 - r0, nx), np.float32)
        self.read(r0, r1, rows)
        return rows[:, c0:c1]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._hdul is not None:
            self._hdul.close()
            self._hdul = None


def _central_box(n: int) -> tuple[int, int]:
    half = max(1, min(_CENTRAL_HALF, n // 4))
    mid = n // 2
    return max(0, mid - half), min(n, mid + half)


def _central_slices(shape) -> tuple[slice, slice]:
    (r0, r1), (c0, c1) = _central_box(shape[0]), _central_box(shape[1])
    return slice(r0, r1), slice(c0, c1)


@contextlib.contextmanager
def _open_sources(sources, hdu=None, rejected: dict | None = None):
    """Open every source as a :class:`_Rows`; closes them (and removes gzip scratch copies).

    With ``rejected``, a file that cannot be opened is recorded there with its reason and
    left out; without it, the error propagates.
    """
    with contextlib.ExitStack() as stack:
        tmp: list[Path] = []

        def scratch_dir() -> Path:
            if not tmp:
                tmp.append(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clinepipe-"))))
            return tmp[0]

        readers = []
        for src in sources:
            if rejected is not None:
                src = Path(src)
            try:
                rd = _Rows(src, hdu=hdu, scratch_dir=scratch_dir)
            except ClinepipeError as exc:
                if rejected is None:
                    raise
                rejected[src] = exc.reason
                continue
            stack.callback(rd.close)
            readers.append(rd)
        yield readers


Scale = Sequence[float] | Callable[[int, int, int, np.ndarray], "np.ndarray | None"] | None

def median_stack(sources: Sequence[Path | np.ndarray], *, chunk_rows: int = 256,
                 scale: Scale = None, hdu: int | None = None) -> np.ndarray:
    """The pixel-wise median over frames, computed in row chunks (memory bounded).

    Parameters
    ----------
    sources : sequence of Path or numpy.ndarray
        FITS files (plain, ``.gz`` or fpack) or 2-D arrays, all of the same shape.
    chunk_rows : int
        Rows of every frame held at once: memory is about ``n * chunk_rows * nx * 4`` bytes.
    scale : sequence of float, or callable, optional
        Applied to each frame's float32 chunk before the median. A sequence gives one divisor
        per frame (e.g. the frames' medians, to normalise flats). A callable is called as
        ``scale(i, r0, r1, chunk)`` for frame ``i``'s rows ``r0:r1`` and may change ``chunk``
        in place or return a new array of its shape (e.g. subtract ``bias[r0:r1]``, then divide
        by a per-frame level), so a calibration can be applied without loading whole frames.
    hdu : int, optional
        The HDU holding the image; by default the primary, or the first image extension.

    Returns
    -------
    numpy.ndarray
        float32, the frames' shape, equal to ``bottleneck.median`` of the stack. NaN pixels
        are ignored (``bottleneck.nanmedian`` for the chunks that have one); a pixel NaN in
        every frame is NaN. With an even number of frames the two middle values are
        averaged, as ``numpy.median`` does.
    """
    if len(sources) == 0:
        raise ValueError("median_stack needs at least one frame")
    with _open_sources(sources, hdu) as readers:
        return _median_of(readers, chunk_rows=chunk_rows, scale=scale)


def _median_of(readers: list[_Rows], *, chunk_rows: int, scale: Scale) -> np.ndarray:
    shape = readers[0].shape
    for i, rd in enumerate(readers):
        if rd.shape != shape:
            raise ValueError(f"median_stack: frame {i} has shape {rd.shape}, frame 0 has {shape}")
    n = len(readers)
    ny, nx = shape
    rows = max(1, min(int(chunk_rows), ny))
    plane = rows * nx + _PLANE_PAD
    flat = np.empty(n * plane, np.float32)
    buf = as_strided(flat, shape=(n, rows, nx), strides=(plane * 4, nx * 4, 4), writeable=True)
    scratch = np.empty(rows * nx * 8, np.uint8)
    divisors = None
    if scale is not None and not callable(scale):
        divisors = np.asarray(scale, dtype=np.float32)
        if divisors.shape != (n,):
            raise ValueError(f"median_stack: {divisors.size} divisors for {n} frames")
    may_nan = callable(scale) or any(rd.is_float for rd in readers) or (
        divisors is not None and not np.all(np.isfinite(divisors) & (divisors != 0)))
    median = bn.nanmedian if may_nan else bn.median
    network = _median_network(n) if 1 < n <= _NETWORK_MAX_FRAMES else None
    # rows of one selection-network pass: all n planes of it stay in the CPU cache
    sub = max(1, min(rows, _NETWORK_BYTES // (4 * n * nx)), -(-_NETWORK_MIN_ELEMENTS // nx))
    tmp = np.empty(min(sub, rows) * nx, np.float32) if network is not None else None
    out = np.empty(shape, np.float32)
    for r0 in range(0, ny, rows):
        r1 = min(ny, r0 + rows)
        k = r1 - r0
        for i, rd in enumerate(readers):
            chunk = buf[i, :k]
            rd.read(r0, r1, chunk, scratch)
            if divisors is not None:
                chunk /= divisors[i]
            elif scale is not None:
                result = scale(i, r0, r1, chunk)
                if result is not None and result is not chunk:
                    chunk[...] = result
        block = buf[:, :k]
        if n == 1:
            out[r0:r1] = block[0]
        elif network is None or (may_nan and bn.anynan(block)):
            out[r0:r1] = median(block, axis=0)
        else:  # no NaN here: the median by a selection network, same values as bottleneck's
            for s0 in range(0, k, sub):
                s1 = min(k, s0 + sub)
                _network_median(buf[:, s0:s1], out[r0 + s0:r0 + s1], network, tmp)
    return out


#: frames up to which :func:`_median_of` uses a selection network (faster than bottleneck's
#: quickselect up to at least 150 frames; beyond, the Python loop over comparators grows)
_NETWORK_MAX_FRAMES = 128

#: bytes of the n planes one network pass works on (fits the CPU cache) ...
_NETWORK_BYTES = 3 << 20

#: ... but at least this many pixels per numpy call, so the call overhead stays small
_NETWORK_MIN_ELEMENTS = 8192

@functools.lru_cache(maxsize=64)
def _median_network(n: int) -> tuple[tuple[int, int], ...]:
    """Compare-exchange pairs ``(i, j)``, ``i < j``, that bring the median order statistic(s)
    of ``n`` values to lanes ``n // 2`` (odd ``n``) or ``n // 2 - 1`` and ``n // 2`` (even).

    Batcher's odd-even merge sort for ``n`` inputs, pruned backwards to the comparators the
    middle lanes depend on (84 of 112 for 20 frames). After applying them (lane i gets the
    minimum, lane j the maximum) the middle lanes hold exactly the values a full sort would.
    """
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    m = n // 2
    need = {m} if n % 2 else {m - 1, m}
    kept = []
    for i, j in reversed(pairs):
        if i in need or j in need:
            kept.append((i, j))
            need.update((i, j))
    return tuple(reversed(kept))


def _network_median(block: np.ndarray, out: np.ndarray, network, tmp: np.ndarray) -> None:
    """``out[...] = median(block, axis=0)`` for NaN-free float32 ``block`` (changed in place).

    Each comparator is one ``np.minimum`` and one ``np.maximum`` over whole planes, so the
    work is vectorised over pixels instead of a quickselect per pixel. For an even number
    of frames the two middle values are averaged in float32, ``(a + b) * 0.5``, exactly as
    ``bottleneck.median`` does, so the result is bit-identical to it.
    """
    n = block.shape[0]
    lanes = [block[i] for i in range(n)]
    spare = tmp[:lanes[0].size].reshape(lanes[0].shape)
    for i, j in network:
        a, b = lanes[i], lanes[j]
        np.minimum(a, b, out=spare)
        np.maximum(a, b, out=b)
        lanes[i], spare = spare, a
    m = n // 2
    if n % 2:
        out[...] = lanes[m]
    else:
        np.add(lanes[m - 1], lanes[m], out=out)
        out *= np.float32(0.5)


