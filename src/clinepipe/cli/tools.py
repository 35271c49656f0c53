"""Stand-alone tools that work on files without a database: masters, reduce, measure, solve,
and transit (which reads the database but writes only its own folder). A configuration is
used when there is one (camera, site, reduction and photometry settings), else the defaults.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

import typer

from clinepipe.cli.common import (
    app,
    check_mode,
    current_config,
    existing_paths,
    open_engine,
    optional_config,
    warn,
)
from clinepipe.errors import ClinepipeError, UsageError


@app.command()
def masters(inputs: list[Path] = typer.Argument(...,
                                                help="Raw calibration frames, or folders (searched recursively)."),
            output: Path = typer.Option(..., "--output",
                                        help="Folder for binning{N}/bias_master.fits, dark_master.fits, "
                                             "flat_master_{FILTER}.fits."),
            mode: Optional[str] = typer.Option(None, "--mode",
                                               help="seed or default (default: the configuration's reduction mode, else default).")):
    """Standalone: master bias, dark and flats from raw calibration frames (no database)."""
    cfg = optional_config()
    mode = check_mode(mode, cfg)
    from clinepipe.ccd.masters import make_masters

    kwargs = {} if cfg is None else {"camera": cfg.camera, "site": cfg.site,
                                     "reduction_cfg": cfg.reduction}
    report = make_masters(existing_paths(inputs), output, mode=mode, **kwargs)
    for item in report["written"]:
        what = item["kind"] + (f" {item['filter']}" if item["filter"] else "")
        typer.echo(f"wrote {item['path']} ({what}, binning {item['binning']}, "
                   f"{item['n']} frame(s))")
    for path, reason in report["rejected"].items():
        typer.echo(f"  left out {path}: {reason}")
    for what, reason in report["failed"].items():
        warn(f"{what}: {reason}.")
    if report["skipped"]:
        typer.echo(f"  {len(report['skipped'])} light frame(s) ignored")
    if not report["written"]:
        first = next(iter(report["failed"].values()), "no bias, dark or flat frames among them")
        raise ClinepipeError(f"{inputs[0]}: no master could be built from the given files ({first}).")


@app.command()
def reduce(lights: list[Path] = typer.Argument(..., help="Raw light frames."),
           masters_dir: Path = typer.Option(..., "--masters",
                                            help="Folder written by `clinepipe masters` (binning{N}/…)."),
           output: Path = typer.Option(..., "--output", help="Folder for <stem>_calibrated.fits."),
           mode: Optional[str] = typer.Option(None, "--mode",
                                              help="seed or default (default: the configuration's reduction mode, else default).")):
    """Standalone: bias, dark and flat correction of lights into DIR/<stem>_calibrated.fits."""
    cfg = optional_config()
    mode = check_mode(mode, cfg)
    if not masters_dir.is_dir():
        raise UsageError(f"{masters_dir}: no such folder of masters.")
    from clinepipe.ccd.reduce_light import reduce_files

    kwargs = {} if cfg is None else {"camera": cfg.camera, "site": cfg.site,
                                     "reduction": cfg.reduction}
    results = reduce_files(existing_paths(lights), masters_dir, output, mode=mode, **kwargs)
    failed = 0
    for light, out in results:
        if isinstance(out, Path):
            typer.echo(f"wrote {out}")
        else:
            failed += 1
            warn(f"{light}: not reduced ({out}).")
    if failed:
        raise ClinepipeError(f"{failed} of {len(results)} light(s) could not be reduced "
                             f"(reasons above); the others were written to {output}.")


@app.command()
def measure(images: list[Path] = typer.Argument(..., help="2-D FITS images (raw or calibrated)."),
            output: Path = typer.Option(..., "--output", help="CSV file to write."),
            aperture: Optional[float] = typer.Option(None, "--aperture",
                                                     help="Aperture radius in pixels (default: the config's, else 5; "
                                                          "<= 0: 1.5 x FWHM)."),
            sources: Optional[Path] = typer.Option(None, "--sources",
                                                   help="A .SRC source list (default: <stem>.SRC beside the image, "
                                                        "else own detection)."),
            catalog: Optional[Path] = typer.Option(None, "--catalog",
                                                   help="Catalog CSV id,ra,dec,<band>…[,e_<band>…] to calibrate against."),
            band: Optional[str] = typer.Option(None, "--filter",
                                               help="Catalog band (column) to calibrate with; needs --catalog.")):
    """Standalone: sources, WCS and photometry of images into a CSV; with a catalog, calibrated
    magnitudes (the zero point is printed).

    CSV columns: x, y (1-based), ra, dec, flux, flux_err, background, inst_mag, inst_mag_err,
    fwhm, flags; with --catalog also catalog_id, mag, mag_err; last the image.
    """
    cfg = optional_config()
    existing_paths(images)
    if sources is not None:
        if len(images) > 1:
            raise UsageError("--sources names one source list, so give one image with it.")
        if not sources.is_file():
            raise UsageError(f"{sources}: no such source list.")
    if aperture is not None and not (aperture == aperture):
        raise UsageError("--aperture must be a number of pixels.")
    if band is not None and catalog is None:
        raise UsageError("--filter needs --catalog.")
    from clinepipe.run.measure import (
        CATALOG_COLUMNS,
        CSV_COLUMNS,
        measure_image,
        result_rows,
    )

    cat = None
    if catalog is not None:
        from clinepipe.catalogs.file_csv import load_file_catalog

        if not catalog.is_file():
            raise UsageError(f"{catalog}: no such catalog file.")
        cat = load_file_catalog(catalog)
        if band is None:
            raise UsageError(f"--catalog {catalog} needs --filter BAND (one of "
                             f"{', '.join(sorted(cat.mags)) or 'none'}).")
        if band not in cat.mags:
            mapped = cfg.catalog.filters.get(band) if cfg is not None else None
            if mapped in cat.mags:
                band = mapped
            else:
                raise UsageError(f"{catalog}: has no band '{band}' (it has "
                                 f"{', '.join(sorted(cat.mags)) or 'none'}).")
    columns = list(CSV_COLUMNS) + (list(CATALOG_COLUMNS) if cat is not None else []) + ["image"]
    rows: list[list[str]] = []
    failed = 0
    for image in images:
        try:
            res = measure_image(image, config=cfg, aperture=aperture, sources=sources,
                                catalog=cat, band=band, gain_from_config=cfg is not None)
        except ClinepipeError as exc:
            if len(images) == 1:
                raise
            failed += 1
            warn(exc.message)
            continue
        for note in res.notes:
            warn(f"{image}: {note}.")
        line = (f"{image}: {len(res.measurements)} star(s) from {res.source_list}, aperture "
                f"{res.aperture:.2f} px, FWHM {res.fwhm:.2f} px")
        if cat is not None:
            zp = res.zero_point
            line += (f"; zero point {zp.value:.4f} ± {zp.error:.4f} mag ({band}, {zp.n_used} "
                     f"comparison stars)" if zp is not None else f"; no zero point ({res.zero_point_note})")
        typer.echo(line)
        rows.extend(result_rows(res, with_catalog=cat is not None))
    from clinepipe.atomic_files import atomic_open, is_stdout

    with atomic_open(output, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        w.writerows(rows)
    typer.echo(f"wrote {output} ({len(rows)} rows)", err=is_stdout(output))
    if failed:
        raise ClinepipeError(f"{failed} of {len(images)} image(s) could not be measured "
                             f"(reasons above); the others are in {output}.")


@app.command()
def solve(image: Path = typer.Argument(..., help="FITS image to plate-solve (never modified)."),
          output: Path = typer.Option(..., "--output", help="Copy of the image with the solved WCS."),
          scale_low: Optional[float] = typer.Option(None, "--scale-low", help="Smallest pixel scale, arcsec/px."),
          scale_high: Optional[float] = typer.Option(None, "--scale-high", help="Largest pixel scale, arcsec/px."),
          ra: Optional[float] = typer.Option(None, "--ra", help="Centre hint, deg."),
          dec: Optional[float] = typer.Option(None, "--dec", help="Centre hint, deg."),
          radius: Optional[float] = typer.Option(None, "--radius", help="Search radius around the hint, deg."),
          timeout: float = typer.Option(120.0, "--timeout", help="Solver CPU limit, s."),
          catalog_index: bool = typer.Option(
              True, "--catalog-index/--no-catalog-index",
              help="With a configuration, also use index files built from its \\[catalog] around "
                   "the field (cached in the archive), as `run` does.")):
    """Plate-solve an image with astrometry.net (solve-field) and write a copy with its WCS.

    With a configuration (--config, $CLINEPIPE_CONFIG or ./clinepipe.toml) the index files
    are built from its reference catalog around the header's pointing, so fields too small
    for the Tycho-2 index solve; without one only the system index files are used.
    """
    if not image.is_file():
        raise UsageError(f"{image}: no such file.")
    from clinepipe.astrometry.solve import solve_field

    cfg = optional_config() if catalog_index else None
    if cfg is not None:
        from clinepipe.astrometry.catalog_index import solve_with_catalog

        out = solve_with_catalog(cfg, image, output, scale_low=scale_low, scale_high=scale_high,
                                 ra=ra, dec=dec, radius=radius, timeout=timeout)
    else:
        out = solve_field(image, output, scale_low=scale_low, scale_high=scale_high, ra=ra,
                          dec=dec, radius=radius, timeout=timeout)
    from astropy.io import fits

    header = fits.getheader(out)
    typer.echo(f"wrote {out} (plate solution: {header.get('ASTRMNUM', '?')} stars matched, "
               f"rms {header.get('ASTRMRMS', float('nan')):.2f} px)")


@app.command()
def transit(target: str = typer.Argument(..., help='Host star: id, catalog id, name or "RA DEC" (degrees or sexagesimal).'),
            period: float = typer.Option(..., "--period", help="Orbital period (days)."),
            t0: float = typer.Option(..., "--t0", help="A mid-transit time (BJD_TDB)."),
            duration: Optional[float] = typer.Option(None, "--duration",
                                                     help="Transit duration, first to fourth contact (hours, as the "
                                                          "NASA Exoplanet Archive's pl_trandur); default from the period."),
            rprs: Optional[float] = typer.Option(None, "--rprs", help="Expected Rp/Rs (a starting value)."),
            night: Optional[str] = typer.Option(None, "--night",
                                                help="Night YYYYMMDD (default: the one with the most in-transit points)."),
            filter: Optional[str] = typer.Option(None, "--filter", help="Only frames in this filter."),
            comps: Optional[str] = typer.Option(None, "--comps", help="Comparison star ids, comma-separated (default: automatic)."),
            detrend: str = typer.Option("airmass", "--detrend",
                                        help="Detrending: airmass (or airmass_exp) and any of sky, fwhm, x, y, comma-separated."),
            tic: Optional[str] = typer.Option(None, "--tic", help="TESS Input Catalog id (123456789 or 'TIC 123456789'): also write the TFOP SG1 package."),
            name: Optional[str] = typer.Option(None, "--name", help="Planet name for the files, e.g. TOI-1234.01 (default: the star's name)."),
            output: Path = typer.Option(..., "--output", help="Folder for fit.json, lightcurve.csv, the plot and the AAVSO report.")):
    """Fit the transit of a planet of TARGET in a night of the database: fit.json,
    lightcurve.csv (bjd_tdb,flux,flux_err,model,detrended,airmass), lightcurve.png and, with an
    [aavso] obscode, aavso_exoplanet.txt; with --tic the TFOP SG1 package. Exit 1 with a
    sentence when no night covers a transit.
    """
    cfg = current_config()
    if not (period > 0 and t0 > 2_400_000):
        raise UsageError("--period must be positive days and --t0 a full BJD_TDB (about 2450000 or later).")
    if duration is not None and not duration > 0:
        raise UsageError("--duration must be a positive number of hours.")
    try:
        comp_ids = [int(c) for c in comps.split(",") if c.strip()] if comps else None
    except ValueError:
        raise UsageError(f"--comps {comps!r} must be star ids separated by commas.") from None
    names = tuple(d.strip() for d in detrend.split(",") if d.strip())
    from clinepipe.transits.fit import DETREND_VECTORS
    from clinepipe.transits.targets import TIC_PATTERN

    if tic is not None and not TIC_PATTERN.match(tic):
        raise UsageError(f"--tic {tic!r} is not a TIC number (e.g. 123456789 or 'TIC 123456789').")

    bad = [d for d in names if d not in ("airmass", "airmass_exp") + DETREND_VECTORS]
    if bad:
        raise UsageError(f"--detrend {', '.join(bad)}: use airmass or airmass_exp and "
                         f"{', '.join(DETREND_VECTORS)}.")
    from clinepipe.run.transit_fits import default_duration, fit_planet_night
    from clinepipe.run.transit_night import in_transit_points, target_nights
    from clinepipe.store.db import session_scope
    from clinepipe.store.models import Star
    from clinepipe.store.queries import resolve_star
    from clinepipe.transits.fit import TransitRefused
    from clinepipe.transits.targets import TransitTarget

    engine = open_engine(cfg)
    with session_scope(engine) as s:
        star = s.get(Star, resolve_star(s, target))
        name = name or star.name or star.catalog_id or f"star {star.id}"
        days = duration / 24.0 if duration else default_duration(period, rprs)
        planet = TransitTarget(name=name, ra=star.ra, dec=star.dec, period=period, t0=t0,
                               duration=days, rprs=rprs, tic_id=tic)
        found = target_nights(cfg, s, star.ra, star.dec, filter=filter,
                              nights=[night] if night else None)
        covered = [(in_transit_points(f, planet), f) for f in found]
        covered = [(n, f) for n, f in covered if n > 0]
        if not covered:
            where = f"night {night}" if night else "any night of the database"
            raise TransitRefused(f"no frame of {where} holding {name}"
                                 f"{' in filter ' + filter if filter else ''} falls inside a "
                                 f"predicted transit (P = {period:g} d, T0 = {t0:.5f}).",
                                 reason="no transit in the data")
        frames = max(covered, key=lambda c: c[0])[1]
        result = fit_planet_night(cfg, s, planet, frames, output, comps=comp_ids,
                                  detrend=names, obscode=cfg.aavso.obscode)
    fit = result.fit
    typer.echo(f"{name}, night {frames.night} ({frames.filter}): Tmid {fit.tmid:.5f} ± "
               f"{fit.tmid_err * 1440:.2f} min (O-C {fit.oc_minutes:+.2f} min), Rp/Rs "
               f"{fit.rprs:.4f} ± {fit.rprs_err:.4f}, aperture {result.aperture:g} px, "
               f"{len(result.comps)} comparison star(s)")
    for path in result.files.values():
        typer.echo(f"wrote {path}")
