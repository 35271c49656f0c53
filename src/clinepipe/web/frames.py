"""The frame behind a point of a light curve: the star's measurement in it, the frame's QC,
its neighbours in the light curve, and a PNG cut-out of the calibrated frame around the star
with the aperture, the annulus and the neighbouring stars drawn (numpy and zlib only: no
plotting library, no outside assets)."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from clinepipe.store.models import Frame, Measurement, ZeroPoint

#: pixels of the PNG per pixel of the frame
SCALE = 6
#: colours (RGB) of what is drawn: none is white, so the star stays the brightest thing
APERTURE_RGB = (60, 220, 90)
ANNULUS_RGB = (70, 160, 255)
NEIGHBOUR_RGB = (255, 150, 40)


def frame_view(engine, star_id: int, frame_id: int) -> dict | None:
    """What the frame page shows of ``star_id`` in ``frame_id``; None when the star has no
    measurement in that frame (or either is unknown).

    Returns ``{"frame": {...}, "point": {...}, "neighbours": [...], "prev_id", "next_id",
    "zero_point"}``: positions 1-based FITS pixels as stored; ``neighbours`` the other stars
    measured in the frame (``star_id``, ``x``, ``y``), ``prev_id``/``next_id`` the frames of
    the star's light curve before and after this one (by mid-exposure time).
    """
    with Session(engine) as s:
        point = s.execute(select(Measurement).where(Measurement.frame_id == frame_id,
                                                    Measurement.star_id == star_id)).scalars().first()
        if point is None:
            return None
        frame = s.get(Frame, frame_id)
        fields = ("id", "raw_path", "night", "filter", "exptime", "jd_mid", "airmass", "fwhm",
                  "elongation", "sky", "n_stars", "qc", "state", "calibrated_path", "telescope",
                  "time_source", "time_note")
        frame_d = {k: getattr(frame, k) for k in fields}
        point_d = {k: getattr(point, k) for k in ("x", "y", "flux", "flux_err", "background",
                                                  "mag", "mag_err", "inst_mag", "inst_mag_err",
                                                  "flags", "jd_mid", "filter")}
        others = s.execute(select(Measurement.star_id, Measurement.x, Measurement.y)
                           .where(Measurement.frame_id == frame_id,
                                  Measurement.star_id != star_id)).all()
        jd = point.jd_mid
        order = select(Measurement.frame_id).where(Measurement.star_id == star_id)
        prev_id = s.scalars(order.where(Measurement.jd_mid < jd)
                            .order_by(Measurement.jd_mid.desc()).limit(1)).first()
        next_id = s.scalars(order.where(Measurement.jd_mid > jd)
                            .order_by(Measurement.jd_mid).limit(1)).first()
        zp = s.scalars(select(ZeroPoint).where(ZeroPoint.frame_id == frame_id)).first()
        zero_point = None if zp is None else {"value": zp.value, "error": zp.error,
                                              "n_used": zp.n_used}
    return {"frame": frame_d, "point": point_d, "prev_id": prev_id, "next_id": next_id,
            "neighbours": [{"star_id": o[0], "x": o[1], "y": o[2]} for o in others],
            "zero_point": zero_point}


def aperture_of(photometry, fwhm: float | None) -> float:
    """The aperture radius (px) the run used: ``[photometry] aperture``, or 1.5 FWHM when
    that is <= 0 (as :func:`clinepipe.run.light_stages.photometry_stage` chooses it)."""
    from clinepipe.photometry.aperture import APERTURE_FWHM_FACTOR

    if photometry.aperture > 0:
        return float(photometry.aperture)
    return APERTURE_FWHM_FACTOR * float(fwhm) if fwhm and math.isfinite(fwhm) else 5.0


def cutout_png(image: np.ndarray, x: float, y: float, *, aperture: float,
               annulus: tuple[float, float] | None, neighbours) -> bytes:
    """A PNG of ``image`` around (``x``, ``y``) with the circles of the photometry drawn.

    Parameters
    ----------
    image : numpy.ndarray
        The calibrated frame, ADU (NaN allowed).
    x, y : float
        The star, 0-based pixels; it is at the centre of the cut-out (rows grow upwards, as
        FITS viewers show them).
    aperture : float
        Aperture radius, px (drawn green, and around each neighbour in orange).
    annulus : (float, float) or None
        Inner and outer radius of the sky annulus, px (drawn blue); None when the sky came
        from the background mesh.
    neighbours : iterable of (x, y)
        Other measured stars, 0-based pixels.

    Returns
    -------
    bytes
        An 8-bit RGB PNG, ``SCALE`` output pixels per frame pixel.
    """
    outer = max(annulus[1] if annulus else 0.0, aperture)
    half = int(math.ceil(max(2.5 * aperture, outer + 4.0, 12.0)))
    cx, cy = int(round(x)), int(round(y))
    ny, nx = image.shape
    box = np.full((2 * half + 1, 2 * half + 1), np.nan, dtype=np.float64)
    y0, y1, x0, x1 = cy - half, cy + half + 1, cx - half, cx + half + 1
    sy, sx = slice(max(y0, 0), min(y1, ny)), slice(max(x0, 0), min(x1, nx))
    if sy.start < sy.stop and sx.start < sx.stop:
        box[sy.start - y0:sy.stop - y0, sx.start - x0:sx.stop - x0] = image[sy, sx]
    gray = _stretch(box)
    big = np.repeat(np.repeat(gray, SCALE, axis=0), SCALE, axis=1)
    rgb = np.repeat(big[:, :, None], 3, axis=2)
    # output pixel centres in frame pixels
    u = x0 + (np.arange(big.shape[1]) + 0.5) / SCALE - 0.5
    v = y0 + (np.arange(big.shape[0]) + 0.5) / SCALE - 0.5
    width = 0.9 / SCALE  # a ring ~2 output pixels wide
    circles = [(x, y, aperture, APERTURE_RGB)]
    if annulus:
        circles += [(x, y, float(annulus[0]), ANNULUS_RGB), (x, y, float(annulus[1]), ANNULUS_RGB)]
    for nxp, nyp in neighbours:
        if abs(nxp - x) <= half + aperture and abs(nyp - y) <= half + aperture:
            circles.append((nxp, nyp, aperture, NEIGHBOUR_RGB))
    for ccx, ccy, r, colour in circles:  # a few circles, each drawn on the whole array at once
        d = np.hypot(u[None, :] - ccx, v[:, None] - ccy)
        rgb[np.abs(d - r) < width] = colour
    return _png(np.ascontiguousarray(rgb[::-1]))  # FITS row 0 at the bottom


def _stretch(box: np.ndarray) -> np.ndarray:
    """uint8 gray of an asinh stretch from the sky (median) to the peak; NaN black."""
    finite = np.isfinite(box)
    if not finite.any():
        return np.zeros(box.shape, np.uint8)
    vals = box[finite]
    sky = float(np.median(vals))
    noise = 1.4826 * float(np.median(np.abs(vals - sky))) or 1.0
    peak = float(vals.max())
    scaled = np.arcsinh(np.clip((np.where(finite, box, sky) - sky) / (3.0 * noise), -1.0, None))
    top = math.asinh(max((peak - sky) / (3.0 * noise), 1.0))
    gray = np.clip(40.0 + 215.0 * scaled / top, 0, 255)
    gray[~finite] = 0
    return gray.astype(np.uint8)


def _png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG (filter 0 on every row) of an (h, w, 3) uint8 array."""
    h, w, _ = rgb.shape
    rows = np.concatenate((np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)), axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def read_frame_image(archive: Path, calibrated_path: str | None) -> np.ndarray | None:
    """The calibrated image of a frame (through :func:`clinepipe.ccd.reduced_files.read_reduced`,
    any ``keep_calibrated``); None when it was not kept or is gone."""
    from clinepipe.ccd.reduced_files import read_reduced

    if archive is None or not calibrated_path:
        return None
    path = (Path(archive) / calibrated_path).resolve()
    if not path.is_relative_to(Path(archive).resolve()) or not path.is_file():
        return None
    return read_reduced(path, uncertainty=False).data
