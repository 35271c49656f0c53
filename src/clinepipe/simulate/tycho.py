"""Real stars for a simulated sky: the Tycho-2 stars an astrometry.net index file holds.

A field made of synthetic stars cannot be plate-solved with the system index files: no quad
of theirs is in it. With ``SimulationSpec.star_index`` naming an index file (the Debian
``astrometry-data-tycho2`` package puts them in ``/usr/share/astrometry``), the simulated
field is the real sky instead: every star of that index near the field, at its catalogued
position, with its Tycho V_T magnitude as V.

How the file holds its stars (astrometry.net ``kdtree`` format, ``kdtree_*_stars`` tables):
``kdtree_data_stars`` are unit vectors (x, y, z) stored as uint32, scaled by the ``scale``
of ``kdtree_range_stars`` (low_x, low_y, low_z, high_x, high_y, high_z, scale):
``xyz = low + value / scale``; the ``TAGALONG`` table carries ``MAG_VT`` in the same order.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from astropy.io import fits


def index_stars(path: str | Path, ra0: float, dec0: float,
                radius_deg: float) -> dict[str, np.ndarray]:
    """Stars of an astrometry.net index file within ``radius_deg`` of (``ra0``, ``dec0``).

    Parameters
    ----------
    path : str or pathlib.Path
        An astrometry.net index file with a ``MAG_VT`` tag-along column (Tycho-2).
    ra0, dec0 : float
        Centre, degrees (ICRS).
    radius_deg : float
        Cone radius, degrees.

    Returns
    -------
    dict
        ``ra``, ``dec`` (degrees) and ``V`` (Tycho V_T, mag), brightest first.

    Raises
    ------
    ValueError
        The file is not an index file with star positions and ``MAG_VT``.
    """
    with fits.open(path, memmap=True) as hdus:
        by_name = {h.header.get("TTYPE1"): h for h in hdus[1:]}
        tagalong = [h for h in hdus[1:] if str(h.header.get("AN_FILE", "")).strip() == "TAGALONG"]
        if ("kdtree_range_stars" not in by_name or "kdtree_data_stars" not in by_name
                or not tagalong or "MAG_VT" not in tagalong[0].columns.names):
            raise ValueError(f"{path}: not an astrometry.net index file with MAG_VT")
        lows = np.frombuffer(by_name["kdtree_range_stars"].data.tobytes(), "<f8")
        raw = np.frombuffer(by_name["kdtree_data_stars"].data.tobytes(), "<u4").reshape(-1, 3)
        centre = np.array([math.cos(math.radians(dec0)) * math.cos(math.radians(ra0)),
                           math.cos(math.radians(dec0)) * math.sin(math.radians(ra0)),
                           math.sin(math.radians(dec0))])
        xyz = lows[:3] + raw * (1.0 / lows[6])
        near = xyz @ centre > math.cos(math.radians(radius_deg))
        xyz = xyz[near]
        mag = np.asarray(tagalong[0].data["MAG_VT"], dtype=np.float64)[near]
    ra = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(xyz[:, 2] / np.linalg.norm(xyz, axis=1), -1.0, 1.0)))
    order = np.argsort(mag, kind="stable")
    return {"ra": ra[order], "dec": dec[order], "V": mag[order]}


def index_field(spec, wcs0, rng, extent_px: tuple[float, float]) -> dict[str, np.ndarray]:
    """The field of ``spec`` made of the index's stars: nominal 0-based pixel positions
    through the nominal WCS ``wcs0``, V, and colours drawn as for synthetic stars.

    ``extent_px`` (binned px along x, y) widens the area towards negative x and y by the
    pointing's drift over the night (stars move by +d when the pointing moves by -d), so
    every drifted light shows the real sky everywhere. Stars outside the simulator's
    magnitude range are left out (``mag_range``; brighter ones would saturate).
    """
    from .field import margin_px

    m = margin_px(spec)
    ex, ey = extent_px
    half_diag = 0.5 * math.hypot(spec.nx + 2 * m + abs(ex), spec.ny + 2 * m + abs(ey))
    cx, cy = (spec.nx - 1) / 2.0 - 0.5 * abs(ex), (spec.ny - 1) / 2.0 - 0.5 * abs(ey)
    ra_c, dec_c = wcs0.all_pix2world(cx, cy, 0)
    stars = index_stars(spec.star_index, float(ra_c), float(dec_c),
                        half_diag * spec.scale / 3600.0 * 1.05)
    x, y = wcs0.all_world2pix(stars["ra"], stars["dec"], 0)
    inside = ((x > -m - abs(ex)) & (x < spec.nx - 1 + m) & (y > -m - abs(ey))
              & (y < spec.ny - 1 + m)
              & (stars["V"] >= spec.mag_range[0]) & (stars["V"] <= spec.mag_range[1]))
    n = int(inside.sum())
    bv = rng.triangular(0.0, 0.6, 1.6, n)
    vr = 0.55 * bv + rng.normal(0.0, 0.03, n)
    return {"x": x[inside], "y": y[inside], "V": stars["V"][inside], "BV": bv, "VR": vr}
