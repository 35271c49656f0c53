"""The daily job and what it tells: run, status, frames, report.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Optional

import typer

from clinepipe.cli.common import (
    ProgressBars,
    app,
    console,
    current_config,
    read_engine,
)


@app.command()
def run(reprocess: bool = typer.Option(False, "--reprocess", help="Redo lights already processed."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                              help="Process frames on a Dask cluster of N workers."),
        settle: Optional[float] = typer.Option(None, "--settle",
                                               help="Seconds a file must be unchanged before ingest.")):
    """The daily job: ingest, masters, reduction, photometry, calibration, database."""
    from clinepipe.config import require_site
    from clinepipe.run.pipeline import run_pipeline

    cfg = current_config()
    require_site(cfg)
    with ProgressBars() as progress:
        summary = run_pipeline(cfg, reprocess=reprocess, workers=workers, settle_seconds=settle,
                               progress=progress)
    _print_summary(summary)


def _print_summary(summary) -> None:
    states = ", ".join(f"{k} {v}" for k, v in sorted(summary.states.items())) or "no frames"
    typer.echo(f"run {summary.run_id}: {summary.new_files} new file(s), "
               f"{summary.masters_built} master(s) built, {summary.lights_done} light(s) processed "
               f"in {summary.elapsed:.1f} s; frames: {states}.")
    bad = [f for f in summary.failures if f[1] in ("failed", "waiting")]
    if bad:
        typer.echo(f"{len(bad)} file(s) not fully processed (see `clinepipe status --failed`):")
        groups: dict = {}  # one line per reason: a missing catalog is one line, not 40
        for raw_path, state, stage, reason in bad:
            groups.setdefault((state, stage, reason), []).append(raw_path)
        for i, ((state, stage, reason), paths) in enumerate(groups.items()):
            if i == 20:
                typer.echo(f"  … and {sum(len(p) for p in list(groups.values())[20:])} more")
                break
            if len(paths) == 1:
                typer.echo(f"  {paths[0]}: {state} at {stage}: {reason}")
            else:
                typer.echo(f"  {len(paths)} files (e.g. {paths[0]}): {state} at {stage}: {reason}")
    for note in getattr(summary, "notes", ()):
        typer.echo(note)
    for warning in getattr(summary, "warnings", ()):
        typer.echo(f"warning: {warning}")


@app.command()
def status(failed: bool = typer.Option(False, "--failed", help="List every file not fully processed."),
           as_csv: bool = typer.Option(False, "--csv", help="CSV output.")):
    """Nights and frame counts per state; --failed lists every file with its reason. With more
    than one telescope in the database, each row names its telescope."""
    from sqlalchemy import func, select

    from clinepipe.store.db import session_scope
    from clinepipe.store.measurement_rows import last_run, several_telescopes
    from clinepipe.store.models import Frame

    cfg = current_config()
    engine = read_engine(cfg)
    with session_scope(engine) as s:
        multi = several_telescopes(s)
        if failed:
            rows = s.execute(select(Frame.raw_path, Frame.state, Frame.stage, Frame.reason,
                                    Frame.telescope)
                             .where(Frame.state.in_(("failed", "waiting", "rejected", "duplicate",
                                                     "skipped", "measured")),
                                    Frame.reason.is_not(None))
                             .order_by(Frame.telescope, Frame.raw_path)).all()
            _print_failed(rows, as_csv, multi)
            return
        rows = s.execute(select(Frame.telescope, Frame.night, Frame.state, func.count())
                         .group_by(Frame.telescope, Frame.night, Frame.state)
                         .order_by(Frame.telescope, Frame.night)).all()
        last = last_run(s)
    if not multi:  # one telescope: the columns of a single-telescope observatory
        rows = [r[1:] for r in rows]
    _print_status(rows, as_csv, multi)
    if last is not None and not as_csv:
        typer.echo(_last_run_line(last, multi))


def _last_run_line(run: dict, multi: bool) -> str:
    """``last run #12 (scope-a): crashed 2026-03-15 06:02 UTC: cannot write …``."""
    when = run["finished_at"] or run["started_at"]
    scope = f" ({run['telescope'] or 'unnamed'})" if multi else ""
    text = f"last run #{run['id']}{scope}: {run['status']}"
    if when is not None:
        text += f" {when:%Y-%m-%d %H:%M} UTC"
    return text + (f": {run['error']}" if run["error"] else "")


def _print_failed(rows, as_csv: bool, multi: bool) -> None:
    """``status --failed``: ``file,stage,reason`` (then ``telescope`` when there are several)."""
    if as_csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["file", "stage", "reason"] + (["telescope"] if multi else []))
        for raw_path, state, stage, reason, telescope in rows:
            w.writerow([raw_path, stage or state, reason] + ([telescope] if multi else []))
        return
    for raw_path, state, stage, reason, telescope in rows:
        name = f"{telescope}:{raw_path}" if multi else raw_path
        typer.echo(f"{name}\t{state}\t{stage or ''}\t{reason}")
    if not rows:
        typer.echo("every file is fully processed.")


def _print_status(rows, as_csv: bool, multi: bool) -> None:
    """Frames per night and state: rows of ``(night, state, n)``, or with several telescopes
    ``(telescope, night, state, n)``."""
    keys = ["telescope", "night"] if multi else ["night"]
    if as_csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(keys + ["state", "frames"])
        for *key, state, n in rows:
            w.writerow([k or "" for k in key] + [state, n])
        return
    from rich.table import Table

    groups: dict = {}
    for *key, state, n in rows:
        groups.setdefault(tuple(k or ("?" if name == "night" else "") for k, name
                                in zip(key, keys)), {})[state] = n
    states = sorted({r[-2] for r in rows})
    table = Table(title="frames per " + ("telescope, " if multi else "") + "night and state")
    for name in keys:
        table.add_column(name)
    for st in states:
        table.add_column(st, justify="right")
    for key, counts in groups.items():
        table.add_row(*key, *[str(counts.get(st, "")) for st in states])
    console().print(table)


@app.command()
def frames(night: Optional[str] = typer.Option(None, "--night", help="Only this night (YYYYMMDD)."),
           as_csv: bool = typer.Option(False, "--csv", help="CSV output.")):
    """Every frame with its state, reason, quality figures and QC flags (and its telescope, when
    the database holds more than one), then the time keyword used and why (time_source,
    time_note)."""
    from sqlalchemy import select

    from clinepipe.store.db import session_scope
    from clinepipe.store.measurement_rows import several_telescopes
    from clinepipe.store.models import Frame, ZeroPoint

    cfg = current_config()
    with session_scope(read_engine(cfg)) as s:
        multi = several_telescopes(s)
        q = (select(Frame.raw_path, Frame.night, Frame.kind, Frame.filter, Frame.state, Frame.reason,
                    Frame.fwhm, Frame.elongation, Frame.sky, ZeroPoint.value, Frame.n_stars, Frame.qc,
                    Frame.telescope, Frame.time_source, Frame.time_note)
             .outerjoin(ZeroPoint, ZeroPoint.frame_id == Frame.id)
             .order_by(Frame.night, Frame.jd_mid, Frame.telescope, Frame.raw_path))
        if night:
            q = q.where(Frame.night == night)
        rows = s.execute(q).all()
    w = csv.writer(sys.stdout, lineterminator="\n", delimiter="," if as_csv else "\t")
    # with several telescopes a last column names each frame's (frame is relative to its incoming)
    w.writerow(["frame", "night", "type", "filter", "state", "reason", "fwhm", "elongation", "sky",
                "zero_point", "n_stars", "qc"] + (["telescope"] if multi else [])
               + ["time_source", "time_note"])

    def num(v, fmt):
        return format(v, fmt) if v is not None else ""

    for r in rows:
        w.writerow([r[0], r[1] or "", r[2] or "", r[3] or "", r[4], r[5] or "", num(r[6], ".2f"),
                    num(r[7], ".2f"), num(r[8], ".1f"), num(r[9], ".4f"),
                    "" if r[10] is None else r[10], r[11] or ""] + ([r[12]] if multi else [])
                   + [r[13] or "", r[14] or ""])


@app.command()
def report(night: Optional[str] = typer.Option(None, "--night", help="Night YYYYMMDD (default: the latest)."),
           output: Path = typer.Option(..., "--output", help="Folder for index.html.")):
    """The morning report: DIR/index.html with plots, flagged frames and failures."""
    from clinepipe.products.report import write_report

    cfg = current_config()
    out = write_report(read_engine(cfg), night, output, targets=cfg.aavso.targets,
                       archive=cfg.paths.archive)
    typer.echo(f"wrote {out}")
