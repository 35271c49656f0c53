"""Files for others: export, aavso, validate, and the transformation coefficients (transform).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from clinepipe.cli.common import app, current_config, read_engine, warn
from clinepipe.errors import ClinepipeError, UsageError


@app.command()
def export(format: str = typer.Option(..., "--format", help="csv, aavso, sources-csv or votable."),
           output: Path = typer.Option(..., "--output", help="File to write ('-': standard output)."),
           star: Optional[str] = typer.Option(None, "--star", help="Only this star (id, name, catalog id, \"RA DEC\")."),
           filter: Optional[str] = typer.Option(None, "--filter", help="Only this filter."),
           check_star: Optional[str] = typer.Option(
               None, "--check-star", help="aavso: the check star (id, name, catalog id, \"RA DEC\", "
               "or 'none'); default: chosen automatically, the same every night.")):
    """Export measurements: csv, aavso (AAVSO extended format), sources-csv (2018 columns), votable.

    Says how many measurements it left out and why; writing no row at all is exit 1."""
    from clinepipe.atomic_files import is_stdout
    from clinepipe.products import export as ex
    from clinepipe.store.db import session_scope
    from clinepipe.store.queries import resolve_star

    if format not in ("csv", "aavso", "sources-csv", "votable"):
        raise UsageError(f"unknown export format '{format}' (csv, aavso, sources-csv, votable).")
    cfg = current_config()
    engine = read_engine(cfg)
    star_ids = None
    if star:
        with session_scope(engine) as s:
            star_ids = [resolve_star(s, star)]
    if format == "aavso":
        from clinepipe.products.aavso_format import check_obscode

        if not star_ids:
            raise UsageError("--format aavso needs --star (one target per file).")
        check_obscode(cfg.aavso.obscode)  # no observer code: no file, exit 1
    selected = _count_measurements(engine, star_ids, filter)
    if not selected:
        what = (f"star {star}" if star else "the database") + (f" in filter {filter}"
                                                               if filter else "")
        raise ClinepipeError(f"{output}: no measurements of {what}; nothing written.",
                             reason="nothing to export")
    if format == "csv":
        n = ex.export_csv(engine, output, star_ids=star_ids, filter=filter)
    elif format == "aavso":
        from clinepipe.catalogs.vsp_sequence import sequence_for

        sequence = sequence_for(cfg, star)  # [aavso.sequences]: the target's AAVSO comparisons
        if sequence is not None and check_star is not None:
            raise UsageError(f"--check-star: the check star of {star} comes from its comparison "
                             f"sequence {sequence.where}; leave --check-star out.")
        n = ex.export_aavso(engine, output, obscode=cfg.aavso.obscode, star_ids=star_ids,
                            filter=filter, sequence=sequence,
                            match_radius=cfg.catalog.match_radius,
                            check_star_id=None if sequence else _check_star_id(
                                cfg, engine, star_ids[0], check_star))
    elif format == "sources-csv":
        n = ex.export_sources_csv(engine, output, star_ids=star_ids, filter=filter)
    else:
        n = ex.export_votable(engine, output, star_ids=star_ids, filter=filter)
    left_out = getattr(n, "left_out", {})
    if n == 0:
        raise ClinepipeError(f"{output}: 0 rows written: all {selected} measurement(s) were left "
                             f"out: {ex.describe_left_out(left_out)}.", reason="nothing to export")
    err = is_stdout(output)  # the data go to standard output: the messages to stderr
    typer.echo(f"wrote {output} ({n} rows)", err=err)
    if left_out:
        typer.echo(f"left out {sum(left_out.values())} of {selected} measurement(s): "
                   f"{ex.describe_left_out(left_out)}.", err=err)


@app.command()
def aavso(night: Optional[str] = typer.Option(None, "--night", help="Only this night (YYYYMMDD)."),
          since: Optional[str] = typer.Option(None, "--since",
                                              help="Nights from this date on (YYYYMMDD or YYYY-MM-DD)."),
          target: Optional[list[str]] = typer.Option(
              None, "--target", help="A target (name, catalog id, star id or \"RA DEC\"); may be "
              "repeated (default: \\[aavso] targets).")):
    """Write (again) the nightly AAVSO files, archive/aavso/<night>/<target>.txt, for past
    nights: all nights with calibrated lights, --night N or --since DATE. Exit 1 when none is
    written."""
    from clinepipe.products.aavso import nights_with_lights, rewrite_aavso
    from clinepipe.products.aavso_format import check_obscode

    if night is not None and since is not None:
        raise UsageError("give --night or --since, not both.")
    night = _night_option("--night", night)
    since = _night_option("--since", since)
    cfg = current_config()
    engine = read_engine(cfg)
    targets = list(target or cfg.aavso.targets)
    if not targets:
        raise UsageError(f"no AAVSO target: give --target NAME or set [aavso] targets in "
                         f"{cfg.source_file}.")
    check_obscode(cfg.aavso.obscode)  # no observer code: no file, exit 1
    nights = nights_with_lights(cfg, engine, night=night, since=since)
    if not nights:
        what = f"night {night}" if night else (f"nights from {since} on" if since else "any night")
        raise ClinepipeError(f"no calibrated lights on {what}; no AAVSO file written.",
                             reason="nothing to export")
    written, unmatched = rewrite_aavso(cfg, engine, nights, targets)
    for spec in unmatched:
        warn(f"AAVSO target {spec!r} matches no star in the database; skipped.")
    for path in written:
        typer.echo(f"wrote {path}")
    if not written:
        raise ClinepipeError(f"no AAVSO file written: {', '.join(map(repr, targets))} "
                             f"{'has' if len(targets) == 1 else 'have'} no usable calibrated "
                             f"measurement on {len(nights)} night(s) {nights[0]}…{nights[-1]} "
                             "(see the log for why).", reason="nothing to export")


def _night_option(option: str, value: Optional[str]) -> Optional[str]:
    """``YYYYMMDD`` from ``YYYYMMDD`` or ``YYYY-MM-DD``; a bad date is exit 2 naming the option."""
    import datetime as dt

    if value is None:
        return None
    text = value.strip().replace("-", "")
    try:
        if len(text) != 8 or not text.isdigit():
            raise ValueError
        dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise UsageError(f"{option} {value}: not a date (YYYYMMDD or YYYY-MM-DD).") from None
    return text


def _count_measurements(engine, star_ids, filter) -> int:
    """Measurements of ``star_ids`` (None: all) in ``filter`` (None: any): the light curve an
    export starts from."""
    from sqlalchemy import func, select

    from clinepipe.store.db import session_scope
    from clinepipe.store.models import Measurement

    stmt = select(func.count()).select_from(Measurement)
    if star_ids is not None:
        stmt = stmt.where(Measurement.star_id.in_(star_ids))
    if filter is not None:
        stmt = stmt.where(Measurement.filter == filter)
    with session_scope(engine) as s:
        return int(s.scalar(stmt) or 0)


def _check_star_id(cfg, engine, star_id: int, check_star: str | None) -> int | None:
    """The check star of ``export --format aavso``: ``--check-star``, none, or the automatic
    choice."""
    from clinepipe.products.aavso import choose_check_star
    from clinepipe.store.db import session_scope
    from clinepipe.store.queries import resolve_star

    if check_star is None:
        return choose_check_star(engine, star_id,
                                 exclude_qc=tuple(cfg.qc.exclude_from_variability))
    if check_star.strip().lower() == "none":
        return None
    with session_scope(engine) as s:
        return resolve_star(s, check_star)


@app.command()
def validate(files: list[Path] = typer.Argument(..., help="AAVSO report files to check.")):
    """Check AAVSO Extended (v1.2) and AAVSO Exoplanet (v0.62) report files, whoever wrote them:
    one line FILE:LINE: rule: message per problem; exit 1 when a file is not valid."""
    from clinepipe.products.aavso_format import run_validate

    status = run_validate(files)
    if status:
        raise typer.Exit(status)


@app.command()
def transform(night: str = typer.Option(..., "--night", help="Night YYYYMMDD on a standard field."),
              output: Optional[Path] = typer.Option(None, "--output",
                                                    help="Folder for the plot of the fits.")):
    """Fit the transformation coefficients (Tv_bv, Tbv, ...) from a night on a standard field:
    prints them with their errors and the lines for \\[transform]; with --output, the plot
    DIR/transform_<night>.png."""
    from clinepipe.products.transform_plot import (
        coefficient_table,
        config_lines,
        write_transform_plot,
    )
    from clinepipe.run.transform_step import fit_night

    cfg = current_config()
    fitted, data = fit_night(cfg, read_engine(cfg), night)
    typer.echo(f"night {night}: transformation coefficients from {data.frame_id.size} lights "
               f"in {', '.join(data.bands)} (1-sigma errors)")
    for line in coefficient_table(fitted):
        typer.echo("  " + line)
    typer.echo("\nFor clinepipe.toml:\n")
    for line in config_lines(fitted, night):
        typer.echo(line)
    if output is not None:
        path = output / f"transform_{night}.png"
        write_transform_plot(path, data.photometry, fitted,
                             f"night {night}: transformation coefficients")
        typer.echo(f"\nwrote {path}", err=True)
