"""Reference pipeline written the textbook way with ccdproc and photutils (benchmark only).

This file is the yardstick ``bench/run_all.py`` measures clinepipe against; it is never
imported by the package. Two subcommands:

``combine FILE... --output OUT.fits``
    ``ccdproc.combine(files, method="median", unit="adu")`` with every other option at its
    default, written to OUT (what someone would write for a master bias).

``night NIGHT_DIR --output DIR [--aperture R] [--json OUT.json]``
    A simulated night (``clinepipe simulate``/``simulate_night``) end to end:

    * masters with ccdproc: bias = median combine; dark = median of the bias-subtracted darks;
      flat per filter = median of the bias- and (scaled) dark-subtracted flats, each scaled
      to its median;
    * per light (timed as the "lights stage"): ``CCDData.read``; ``subtract_bias``;
      ``subtract_dark`` scaled by EXPTIME; ``flat_correct``; the calibrated frame written as
      float32 FITS; photutils ``Background2D`` (64 px boxes, 3x3 filter, sigma-clipped
      median), ``DAOStarFinder`` (FWHM 3 px, 5 sigma) on the background-subtracted frame,
      ``aperture_photometry`` with ``calc_total_error`` errors; the header WCS; the catalog
      matched with ``SkyCoord.match_to_catalog_sky`` (2 arcsec); the zero point as the median
      of catalog minus instrumental magnitudes; every measurement stored with the ``sqlite3``
      module (one transaction per frame) in ``DIR/reference.db``.

    Writes timings to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
import warnings
from pathlib import Path


def cmd_combine(args) -> int:
    import ccdproc

    t0 = time.perf_counter()
    ccdproc.combine([str(p) for p in args.files], output_file=str(args.output), method="median",
                    unit="adu", overwrite_output=True)
    print(f"combined {len(args.files)} frames in {time.perf_counter() - t0:.2f} s")
    return 0


def _frames(night_dir: Path):
    """(path, header) of every raw frame of the simulated night, by IMAGETYP."""
    from astropy.io import fits

    groups: dict[str, list] = {"bias": [], "dark": [], "flat": [], "light": []}
    kinds = {"bias frame": "bias", "dark frame": "dark", "flat field": "flat", "light frame": "light"}
    for p in sorted((night_dir / "incoming").rglob("*.fit")):
        h = fits.getheader(p)
        kind = kinds.get(str(h.get("IMAGETYP", "")).strip().lower())
        if kind:
            groups[kind].append((p, h))
    return groups


def cmd_night(args) -> int:
    import astropy.units as u
    import ccdproc
    import numpy as np
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.nddata import CCDData
    from astropy.stats import SigmaClip
    from astropy.table import Table
    from astropy.wcs import WCS, FITSFixedWarning
    from photutils.aperture import CircularAperture, aperture_photometry
    from photutils.background import Background2D, MedianBackground
    from photutils.detection import DAOStarFinder
    from photutils.utils import calc_total_error

    warnings.simplefilter("ignore", FITSFixedWarning)
    warnings.filterwarnings("ignore", module="photutils")
    night = Path(args.night)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict = {}

    # ---------------------------------------------------------------- masters (ccdproc)
    t0 = time.perf_counter()
    groups = _frames(night)
    bias = ccdproc.combine([str(p) for p, _ in groups["bias"]], method="median", unit="adu")
    darks = [ccdproc.subtract_bias(CCDData.read(p, unit="adu"), bias) for p, _ in groups["dark"]]
    dark = ccdproc.combine(darks, method="median")
    dark.header["EXPTIME"] = darks[0].header["EXPTIME"]
    flats = {}
    for filt in sorted({h["FILTER"] for _, h in groups["flat"]}):
        frames = []
        for p, h in groups["flat"]:
            if h["FILTER"] != filt:
                continue
            f = ccdproc.subtract_bias(CCDData.read(p, unit="adu"), bias)
            f = ccdproc.subtract_dark(f, dark, exposure_time="EXPTIME", exposure_unit=u.s,
                                      scale=True)
            frames.append(f)
        flat = ccdproc.combine(frames, method="median", scale=lambda a: 1.0 / np.ma.median(a))
        flat = flat.divide(np.ma.median(flat.data) * u.dimensionless_unscaled)
        flats[filt] = flat
    timings["masters_seconds"] = time.perf_counter() - t0

    # ---------------------------------------------------------------- lights
    t_lights = time.perf_counter()
    cat = Table.read(night / "catalog.csv", format="ascii.csv")
    cat_coord = SkyCoord(np.asarray(cat["ra"], float) * u.deg, np.asarray(cat["dec"], float) * u.deg)
    db_path = out / "reference.db"
    db_path.unlink(missing_ok=True)
    db = sqlite3.connect(db_path)
    db.execute("CREATE TABLE frames (id INTEGER PRIMARY KEY, name TEXT, filter TEXT, "
               "exptime REAL, zero_point REAL, n_stars INTEGER)")
    db.execute("CREATE TABLE measurements (id INTEGER PRIMARY KEY, frame_id INTEGER, x REAL, "
               "y REAL, ra REAL, dec REAL, flux REAL, flux_err REAL, inst_mag REAL, "
               "inst_mag_err REAL, mag REAL, catalog_id TEXT)")
    db.commit()
    gain = float(args.gain)
    per_light = []
    for path, header in groups["light"]:
        t = time.perf_counter()
        ccd = CCDData.read(path, unit="adu")
        ccd = ccdproc.subtract_bias(ccd, bias)
        ccd = ccdproc.subtract_dark(ccd, dark, exposure_time="EXPTIME", exposure_unit=u.s,
                                    scale=True)
        filt = ccd.header["FILTER"]
        ccd = ccdproc.flat_correct(ccd, flats[filt])
        data = np.asarray(ccd.data, dtype=np.float32)
        fits.writeto(out / f"{path.stem}_calibrated.fits", data, ccd.header, overwrite=True)

        bkg = Background2D(data, (64, 64), filter_size=(3, 3), sigma_clip=SigmaClip(sigma=3.0),
                           bkg_estimator=MedianBackground())
        sub = data - bkg.background
        found = DAOStarFinder(threshold=5.0 * float(bkg.background_rms_median), fwhm=3.0)(sub)
        exptime = float(ccd.header["EXPTIME"])
        if found is None or len(found) == 0:
            per_light.append(time.perf_counter() - t)
            continue
        xcol = "x_centroid" if "x_centroid" in found.colnames else "xcentroid"
        ycol = "y_centroid" if "y_centroid" in found.colnames else "ycentroid"
        x = np.asarray(found[xcol], float)
        y = np.asarray(found[ycol], float)
        error = calc_total_error(sub, bkg.background_rms, effective_gain=gain)
        phot = aperture_photometry(sub, CircularAperture(np.transpose([x, y]), r=args.aperture),
                                   error=error)
        flux = np.asarray(phot["aperture_sum"], float)
        flux_err = np.asarray(phot["aperture_sum_err"], float)
        good = flux > 0
        inst = np.full(flux.size, np.nan)
        inst[good] = -2.5 * np.log10(flux[good] / exptime)
        inst_err = np.where(good, 1.0857 * flux_err / np.where(good, flux, 1.0), np.nan)

        wcs = ccd.wcs if ccd.wcs is not None else WCS(header)  # CCDData.read moves it there
        sky = wcs.pixel_to_world(x, y)
        idx, sep, _ = sky.match_to_catalog_sky(cat_coord)
        matched = sep.to_value(u.arcsec) <= 2.0
        band = filt if filt in cat.colnames else "V"
        cat_mag = np.asarray(cat[band], float)[idx]
        use = matched & good & np.isfinite(cat_mag)
        zp = float(np.median(cat_mag[use] - inst[use])) if use.any() else float("nan")
        mag = inst + zp
        ra, dec = sky.ra.deg, sky.dec.deg
        cat_ids = np.asarray(cat["id"]).astype(str)[idx]

        cur = db.execute("INSERT INTO frames (name, filter, exptime, zero_point, n_stars) "
                         "VALUES (?, ?, ?, ?, ?)", (path.stem, filt, exptime, zp, int(len(x))))
        fid = cur.lastrowid
        db.executemany(
            "INSERT INTO measurements (frame_id, x, y, ra, dec, flux, flux_err, inst_mag, "
            "inst_mag_err, mag, catalog_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(fid, float(x[i] + 1.0), float(y[i] + 1.0), float(ra[i]), float(dec[i]),
              float(flux[i]), float(flux_err[i]), None if not good[i] else float(inst[i]),
              None if not good[i] else float(inst_err[i]),
              None if not (good[i] and np.isfinite(zp)) else float(mag[i]),
              str(cat_ids[i]) if matched[i] else None) for i in range(len(x))])
        db.commit()
        per_light.append(time.perf_counter() - t)
    db.close()
    timings["lights_seconds"] = time.perf_counter() - t_lights
    timings["n_lights"] = len(groups["light"])
    timings["per_light_seconds"] = per_light
    timings["database"] = str(db_path)
    if args.json:
        Path(args.json).write_text(json.dumps(timings, indent=2) + "\n")
    print(f"masters {timings['masters_seconds']:.1f} s; {len(per_light)} lights in "
          f"{timings['lights_seconds']:.1f} s ({timings['lights_seconds'] / max(1, len(per_light)):.2f} s per light)")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("combine", help="ccdproc.combine(method='median') of FITS files")
    c.add_argument("files", nargs="+", type=Path)
    c.add_argument("--output", type=Path, required=True)
    n = sub.add_parser("night", help="reference reduction + photometry of a simulated night")
    n.add_argument("night", type=Path)
    n.add_argument("--output", type=Path, required=True)
    n.add_argument("--aperture", type=float, default=4.5)
    n.add_argument("--gain", type=float, default=0.4)
    n.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    return cmd_combine(args) if args.cmd == "combine" else cmd_night(args)


if __name__ == "__main__":
    sys.exit(main())
