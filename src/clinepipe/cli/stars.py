"""The stars and their light curves: stars, lc, variables.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Optional

import typer

from clinepipe.cli.common import app, current_config, read_engine
from clinepipe.errors import ClinepipeError, UsageError


@app.command()
def stars(as_csv: bool = typer.Option(False, "--csv", help="CSV output.")):
    """Stars known to the database: star_id,ra,dec,n_measurements,catalog_id,name,type, then
    mean_<FILTER> per filter (error-weighted mean magnitude of the flag-free points, as
    `variables` computes it). `type` is the known variable's type (e.g. EA), `suspected` for a
    suspected new variable found in our own data, else empty."""
    import numpy as np
    from sqlalchemy import select

    from clinepipe.store.fetch import fetch_tuples
    from clinepipe.store.tables import stars as star_table
    from clinepipe.variability.star_stats import read_statistics
    from clinepipe.variability.statistics import ordered_filters

    cfg = current_config()
    engine = read_engine(cfg)
    c = star_table.c
    with engine.connect() as conn:
        rows = fetch_tuples(conn, select(c.id, c.ra, c.dec, c.catalog_id, c.name, c.var_type)
                            .order_by(c.id))
    stored = read_statistics(engine, tuple(cfg.qc.exclude_from_variability))
    g = stored.groups
    filters = ordered_filters({f: int(g.n[g.labels[1] == f].sum())
                               for f in np.unique(g.labels[1]).tolist()})
    header = ["star_id", "ra", "dec", "n_measurements", "catalog_id", "name", "type"]
    # column by column: each star's mean in each filter put at its row by its id (the groups
    # and the rows are both ordered by star), then the whole table formatted in memory and
    # written at once (one write, not a system call per line on a line-buffered stdout)
    sid, ra, dec, cat, name, var_type = zip(*rows) if rows else ([],) * 6
    ids = np.array(sid, dtype=np.int64)
    means = []
    for f in filters:
        mine = g.labels[1] == f
        at = np.searchsorted(ids, g.labels[0][mine])
        found = at < ids.size
        found[found] &= ids[at[found]] == g.labels[0][mine][found]  # a star added since
        column = np.full(ids.size, "", dtype=object)
        column[at[found]] = [f"{mean:.4f}" for mean in g.mean_mag[mine][found].tolist()]
        means.append(column.tolist())
    n_all = stored.n_all
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n", delimiter="," if as_csv else "\t")
    w.writerow(header + [f"mean_{f}" for f in filters])
    w.writerows(zip(sid, [f"{v:.6f}" for v in ra], [f"{v:.6f}" for v in dec],
                    [n_all.get(i, 0) for i in sid], [v or "" for v in cat],
                    [v or "" for v in name], [v or "" for v in var_type], *means))
    sys.stdout.write(out.getvalue())


@app.command()
def lc(star: str = typer.Argument(..., help='Star id, catalog id, known-variable name or "RA DEC".'),
       filter: Optional[str] = typer.Option(None, "--filter", help="Only this filter."),
       since: Optional[float] = typer.Option(None, "--since", help="From this JD."),
       until: Optional[float] = typer.Option(None, "--until", help="Until this JD."),
       plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG light curve."),
       fold: Optional[float] = typer.Option(None, "--fold",
                                            help="Phase-fold with this period (days)."),
       epoch: Optional[float] = typer.Option(None, "--epoch",
                                             help="With --fold: phase 0 at this BJD_TDB (default: "
                                                  "the time of minimum light)."),
       out_csv: Optional[Path] = typer.Option(None, "--csv", help="Write the points as CSV.")):
    """A star's light curve: printed, or as --plot PNG / --csv file. With --fold P the printed
    points get their phase, 0 at --epoch, else at the time of minimum light (the faintest
    point), as in the plot."""
    from clinepipe.products.plots import (
        fold_phase,
        minimum_light_epoch,
        plot_lightcurve,
        point_times,
    )
    from clinepipe.store.measurement_rows import LIGHTCURVE_COLUMNS, lightcurve
    from clinepipe.store.queries import resolve_star

    cfg = current_config()
    engine = read_engine(cfg)
    with engine.connect() as conn:
        star_id = resolve_star(conn, star)
    rows = lightcurve(engine, star_id, filter=filter, since=since, until=until)
    if not rows:
        raise ClinepipeError(_no_points(engine, star, star_id, filter, since, until),
                             reason="no measurements")
    if epoch is not None and fold is None:
        raise UsageError("--epoch needs --fold PERIOD.")
    if fold is not None and not fold > 0:
        raise UsageError(f"--fold {fold}: the period must be a positive number of days.")
    if fold is not None and epoch is None:
        epoch = minimum_light_epoch(rows)
    if out_csv:
        _write_rows_csv(out_csv, rows, LIGHTCURVE_COLUMNS)  # the export's CSV_COLUMNS
        typer.echo(f"wrote {len(rows)} point(s) to {out_csv}", err=str(out_csv) == "-")
    if plot:
        title = f"star {star_id}" + ("" if star.strip() == str(star_id) else f" ({star})")
        plot_lightcurve(rows, plot, title=title, fold=fold, epoch=epoch)
        typer.echo(f"wrote {plot}", err=str(plot) == "-")
    if not plot and not out_csv:
        phases = fold_phase(point_times(rows), fold, epoch) if fold else None
        lines = ["jd_mid\tfilter\tmag\tmag_err\tflags" + ("\tphase" if fold else "")]
        for i, r in enumerate(rows):
            mag = f"{r['mag']:.4f}" if r["mag"] is not None else "nan"
            err = f"{r['mag_err']:.4f}" if r["mag_err"] is not None else "nan"
            phase = f"\t{phases[i]:.4f}" if fold else ""
            lines.append(f"{r['jd_mid']:.6f}\t{r['filter']}\t{mag}\t{err}\t{r['flags']}{phase}")
        typer.echo("\n".join(lines))  # one write and flush, not one per point
    _print_lc_statistics(engine, cfg, star_id, filter)


def _print_lc_statistics(engine, cfg, star_id: int, filter: Optional[str]) -> None:
    """Per filter n, mean, rms, reduced chi-square and the star's period, as `variables` gives
    them (on standard error, so the printed points stay a clean table)."""
    from clinepipe.variability.table import variability_table

    rows = variability_table(engine, exclude_qc=tuple(cfg.qc.exclude_from_variability),
                             star_ids=[star_id])
    for r in rows:
        if filter is not None and r.filter != filter:
            continue
        period = (f", period {r.period_days:.6f} d (false-alarm probability {r.fap:.2g})"
                  if r.period_days else "")
        typer.echo(f"{r.filter}: {r.n} points, mean {r.mean_mag:.4f}, rms {r.rms:.4f}, "
                   f"reduced chi-square {r.chi2_red:.2f}{period}", err=True)


def _no_points(engine, star: str, star_id: int, filter, since, until) -> str:
    """Why ``lc`` has nothing to show: the star's filters, or that it has no measurement."""
    from sqlalchemy import select

    from clinepipe.store.tables import measurements

    m = measurements.c
    with engine.connect() as conn:
        filters = sorted(conn.scalars(select(m.filter).distinct()
                                      .where(m.star_id == star_id)).all())
    name = f"star {star_id}" + ("" if star.strip() == str(star_id) else f" ({star})")
    if not filters:
        return f"{name} has no measurements; nothing written."
    if filter is not None and filter not in filters:
        return (f"{name} has no measurements in filter {filter} (it has {', '.join(filters)}); "
                f"nothing written.")
    return f"{name} has no measurements between --since and --until; nothing written."


def _write_rows_csv(path: Path, rows: list[dict], columns) -> None:
    from clinepipe.atomic_files import atomic_open

    with atomic_open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


@app.command()
def variables(as_csv: bool = typer.Option(False, "--csv", help="CSV output."),
              min_points: int = typer.Option(10, "--min-points", help="Fewest points per star and filter.")):
    """Stars ranked by variability: star_id,filter,n,rms,chi2_red,period_days,fap,stetson_j,
    name,type (`type`: the known variable's type, `suspected` for a suspected new variable)."""
    from clinepipe.variability.table import variability_table

    cfg = current_config()
    rows = variability_table(read_engine(cfg), min_points=min_points,
                             exclude_qc=tuple(cfg.qc.exclude_from_variability))
    w = csv.writer(sys.stdout, lineterminator="\n", delimiter="," if as_csv else "\t")
    w.writerow(["star_id", "filter", "n", "rms", "chi2_red", "period_days", "fap", "stetson_j", "name",
                "type"])
    for r in rows:
        w.writerow([r.star_id, r.filter, r.n, f"{r.rms:.4f}", f"{r.chi2_red:.2f}",
                    f"{r.period_days:.6f}" if r.period_days else "",
                    f"{r.fap:.3g}" if r.fap is not None else "", f"{r.stetson_j:.3f}", r.name or "",
                    r.var_type or ""])
