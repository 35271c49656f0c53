"""The ``clinepipe`` command line (Typer + Rich).

Every error a user can cause is one sentence on stderr naming the file and the problem, with
the exit codes the README lists: 0 success, 1 failure, 2 bad usage or configuration, 3 locked.
``--debug`` shows the traceback too. Heavy libraries are imported inside the commands so that
``clinepipe --help`` and short commands start quickly.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from clinepipe.errors import ClinepipeError, UsageError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="clinepipe: the nightly photometry pipeline of a small observatory.")
db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")
app.add_typer(db_app, name="db")

_state = {"debug": False, "config": None}


@app.callback()
def _main(config: Optional[Path] = typer.Option(None, "--config", "-c",
                                                help="Configuration file (else $CLINEPIPE_CONFIG, else ./clinepipe.toml)."),
          debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors.")):
    _state["config"] = config
    _state["debug"] = debug


def _config():
    from clinepipe.config import find_config, load_config

    return load_config(find_config(_state["config"]))


def _optional_config():
    """The configuration, or None when none was named and ./clinepipe.toml does not exist
    (a named but missing or broken configuration is still an error)."""
    import os

    from clinepipe.config import CONFIG_ENV, CONFIG_NAME

    if _state["config"] is None and not os.environ.get(CONFIG_ENV) \
            and not (Path.cwd() / CONFIG_NAME).is_file():
        return None
    return _config()


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr)


def _engine(cfg):
    from clinepipe.store.db import open_database

    return open_database(cfg.database.url)


def _sqlite_file(url) -> Path | None:
    """The file of a ``sqlite:///`` URL, None for another backend or an in-memory database."""
    from clinepipe.store.db import normalize_url

    u = normalize_url(url)
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:") \
            or u.database.startswith("file:"):
        return None
    return Path(u.database)


def _read_engine(cfg):
    """The engine of a command that only reads the database: a SQLite file that does not exist
    is exit 2 and nothing is created (no folder, no empty database)."""
    path = _sqlite_file(cfg.database.url)
    if path is not None and not path.is_file():
        raise UsageError(f"no database at {path}: run `clinepipe run` first.",
                         reason="no database")
    return _engine(cfg)


class _Progress:
    """Rich progress bars on a terminal; silent under cron."""

    def __init__(self):
        self._bar = None
        self._task = None

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self._bar = Progress("[bold]{task.description}", BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=_console(stderr=True))
            self._bar.__enter__()
        return self

    def start(self, name: str, total: int):
        if self._bar is not None:
            self._task = self._bar.add_task(name, total=total)

    def advance(self):
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)


# ----------------------------------------------------------------------------- setup

@app.command()
def init(directory: Path = typer.Argument(Path("."), help="Folder for clinepipe.toml and its folders."),
         latitude: Optional[float] = typer.Option(None, "--latitude", min=-90, max=90,
                                                  help="Site latitude, degrees north."),
         longitude: Optional[float] = typer.Option(None, "--longitude", min=-180, max=180,
                                                   help="Site longitude, degrees east (west negative)."),
         elevation: Optional[float] = typer.Option(None, "--elevation", min=-500, max=9000,
                                                   help="Site elevation, metres."),
         name: Optional[str] = typer.Option(None, "--name", help="Observatory name (dashboard, reports).")):
    """Write DIR/clinepipe.toml (commented defaults) and create the incoming and archive folders.

    The site's latitude, longitude and elevation are written from the options, else as
    placeholders to fill in: `run` refuses to start without them."""
    from clinepipe.config import CONFIG_NAME, SITE_KEYS, default_config_text

    target = directory / CONFIG_NAME
    if target.exists():
        raise UsageError(f"{target}: already exists; not overwritten.")
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(default_config_text(latitude=latitude, longitude=longitude,
                                          elevation=elevation, name=name), encoding="utf-8")
    for sub in ("incoming", "archive"):
        (directory / sub).mkdir(exist_ok=True)
    missing = [k for k, v in zip(SITE_KEYS, (latitude, longitude, elevation)) if v is None]
    if missing:
        typer.echo(f"wrote {target}; fill in [site] {', '.join(missing)} there (or rerun "
                   f"`clinepipe init --latitude --longitude --elevation`), put the camera's files "
                   f"in {directory / 'incoming'} and run `clinepipe --config {target} run`.")
    else:
        typer.echo(f"wrote {target}; put the camera's files in {directory / 'incoming'} and run "
                   f"`clinepipe --config {target} run`.")


@app.command()
def simulate(out: Path = typer.Argument(..., help="Output folder."),
             nights: int = typer.Option(1, "--nights", min=1, help="Consecutive nights."),
             seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same bytes)."),
             width: Optional[int] = typer.Option(None, help="Image width in binned pixels."),
             height: Optional[int] = typer.Option(None, help="Image height in binned pixels."),
             lights: Optional[int] = typer.Option(None, "--lights", help="Lights per filter per night."),
             style: str = typer.Option("thesky", "--style",
                                       help="Header style: thesky, maxim_old, maxim, nina, sgp, sharpcap, "
                                            "indi, lco, iraf, robotic, seestar, dwarf."),
             no_calibration: bool = typer.Option(False, "--no-calibration",
                                                 help="No bias, dark or flat frames."),
             bit_depth: int = typer.Option(16, "--bit-depth", help="Camera ADC bits: 12, 14 or 16."),
             drift: float = typer.Option(0.0, "--drift", help="Pointing drift (binned px per hour)."),
             no_wcs: bool = typer.Option(False, "--no-wcs", help="Lights without a WCS.")):
    """Simulate observatory nights: raw frames (in an acquisition program's header style), catalog,
    truth and a config."""
    from clinepipe.simulate import simulate_night

    overrides = {k: v for k, v in (("width", width), ("height", height),
                                   ("lights_per_filter", lights)) if v is not None}
    overrides.update(style=style, calibration_frames=not no_calibration, bit_depth=bit_depth,
                     drift_px_per_hour=drift, wcs=not no_wcs)
    t0 = time.perf_counter()
    try:
        result = simulate_night(out, seed=seed, nights=nights, **overrides)
    except ValueError as exc:  # a spec the simulator cannot honour, e.g. an unknown style
        raise UsageError(f"simulate: {exc}.") from exc
    typer.echo(f"simulated {nights} night(s) into {out} in {time.perf_counter() - t0:.1f} s; "
               f"run it with: clinepipe --config {result.config_path} run")


@app.command()
def inspect(dirs: list[Path] = typer.Argument(..., help="Folders (searched at any depth) or FITS files."),
            as_csv: bool = typer.Option(False, "--csv", help="One CSV row per file."),
            write_config: Optional[Path] = typer.Option(None, "--write-config",
                                                        help="Write a ready clinepipe.toml for these files.")):
    """What clinepipe will make of a folder of files, from their headers only: each group of
    frames, its time keyword, what is missing and the config line that fixes it. Exit 0 when
    every file can be classified, 1 when some cannot."""
    from clinepipe.headers.inspect import run_inspect

    cfg = _optional_config()  # [headers] and [site] of an existing config, else the defaults
    rules = cfg.headers.rules() if cfg is not None else None
    site = ((cfg.site.latitude, cfg.site.longitude)
            if cfg is not None and not cfg.site_missing else None)  # no site given: none to check
    code = run_inspect([str(d) for d in dirs], csv=as_csv, write_config=write_config,
                       rules=rules, site=site)
    raise typer.Exit(code)


# ----------------------------------------------------------------------------- the daily job

@app.command()
def run(reprocess: bool = typer.Option(False, "--reprocess", help="Redo lights already processed."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                              help="Process frames on a Dask cluster of N workers."),
        settle: Optional[float] = typer.Option(None, "--settle",
                                               help="Seconds a file must be unchanged before ingest.")):
    """The daily job: ingest, masters, reduction, photometry, calibration, database."""
    from clinepipe.config import require_site
    from clinepipe.run.pipeline import run_pipeline

    cfg = _config()
    require_site(cfg)
    with _Progress() as progress:
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

    from clinepipe.store.db import last_run, session_scope, several_telescopes
    from clinepipe.store.models import Frame

    cfg = _config()
    engine = _read_engine(cfg)
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
    _console().print(table)


@app.command()
def frames(night: Optional[str] = typer.Option(None, "--night", help="Only this night (YYYYMMDD)."),
           as_csv: bool = typer.Option(False, "--csv", help="CSV output.")):
    """Every frame with its state, reason, quality figures and QC flags (and its telescope, when
    the database holds more than one)."""
    from sqlalchemy import select

    from clinepipe.store.db import session_scope, several_telescopes
    from clinepipe.store.models import Frame, ZeroPoint

    cfg = _config()
    with session_scope(_read_engine(cfg)) as s:
        multi = several_telescopes(s)
        q = (select(Frame.raw_path, Frame.night, Frame.kind, Frame.filter, Frame.state, Frame.reason,
                    Frame.fwhm, Frame.elongation, Frame.sky, ZeroPoint.value, Frame.n_stars, Frame.qc,
                    Frame.telescope)
             .outerjoin(ZeroPoint, ZeroPoint.frame_id == Frame.id)
             .order_by(Frame.night, Frame.jd_mid, Frame.telescope, Frame.raw_path))
        if night:
            q = q.where(Frame.night == night)
        rows = s.execute(q).all()
    w = csv.writer(sys.stdout, lineterminator="\n", delimiter="," if as_csv else "\t")
    # with several telescopes a last column names each frame's (frame is relative to its incoming)
    w.writerow(["frame", "night", "type", "filter", "state", "reason", "fwhm", "elongation", "sky",
                "zero_point", "n_stars", "qc"] + (["telescope"] if multi else []))

    def num(v, fmt):
        return format(v, fmt) if v is not None else ""

    for r in rows:
        w.writerow([r[0], r[1] or "", r[2] or "", r[3] or "", r[4], r[5] or "", num(r[6], ".2f"),
                    num(r[7], ".2f"), num(r[8], ".1f"), num(r[9], ".4f"),
                    "" if r[10] is None else r[10], r[11] or ""] + ([r[12]] if multi else []))


@app.command()
def report(night: Optional[str] = typer.Option(None, "--night", help="Night YYYYMMDD (default: the latest)."),
           output: Path = typer.Option(..., "--output", help="Folder for index.html.")):
    """The morning report: DIR/index.html with plots, flagged frames and failures."""
    from clinepipe.products.report import write_report

    cfg = _config()
    out = write_report(_read_engine(cfg), night, output, targets=cfg.aavso.targets)
    typer.echo(f"wrote {out}")


# ----------------------------------------------------------------------------- data access

@app.command()
def stars(as_csv: bool = typer.Option(False, "--csv", help="CSV output.")):
    """Stars known to the database: star_id,ra,dec,n_measurements,catalog_id,name,type, then
    mean_<FILTER> per filter (error-weighted mean magnitude of the flag-free points, as
    `variables` computes it). `type` is the known variable's type (e.g. EA), `suspected` for a
    suspected new variable found in our own data, else empty."""
    from sqlalchemy import select

    from clinepipe.store.db import session_scope
    from clinepipe.store.models import Star
    from clinepipe.variability.star_stats import read_statistics
    from clinepipe.variability.statistics import ordered_filters

    cfg = _config()
    engine = _read_engine(cfg)
    with session_scope(engine) as s:
        rows = s.execute(select(Star.id, Star.ra, Star.dec, Star.catalog_id, Star.name,
                                Star.var_type).order_by(Star.id)).all()
    stored = read_statistics(engine, tuple(cfg.qc.exclude_from_variability))
    g = stored.groups
    means: dict[int, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for sid, f, n, mean in zip(g.labels[0].tolist(), g.labels[1].tolist(), g.n.tolist(),
                               g.mean_mag.tolist()):
        means.setdefault(sid, {})[f] = mean
        counts[f] = counts.get(f, 0) + n
    filters = ordered_filters(counts)
    header = ["star_id", "ra", "dec", "n_measurements", "catalog_id", "name", "type"]
    w = csv.writer(sys.stdout, lineterminator="\n", delimiter="," if as_csv else "\t")
    w.writerow(header + [f"mean_{f}" for f in filters])
    for sid, ra, dec, cat, name, var_type in rows:
        mine = means.get(sid, {})
        w.writerow([sid, f"{ra:.6f}", f"{dec:.6f}", stored.n_all.get(sid, 0), cat or "",
                    name or "", var_type or ""]
                   + [f"{mine[f]:.4f}" if f in mine else "" for f in filters])


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
    from clinepipe.products.plots import fold_phase, minimum_light_epoch, plot_lightcurve, point_times
    from clinepipe.store.queries import resolve_star
    from clinepipe.store.db import LIGHTCURVE_COLUMNS, lightcurve, session_scope

    cfg = _config()
    engine = _read_engine(cfg)
    with session_scope(engine) as s:
        star_id = resolve_star(s, star)
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
        typer.echo("jd_mid\tfilter\tmag\tmag_err\tflags" + ("\tphase" if fold else ""))
        for i, r in enumerate(rows):
            mag = f"{r['mag']:.4f}" if r["mag"] is not None else "nan"
            err = f"{r['mag_err']:.4f}" if r["mag_err"] is not None else "nan"
            phase = f"\t{phases[i]:.4f}" if fold else ""
            typer.echo(f"{r['jd_mid']:.6f}\t{r['filter']}\t{mag}\t{err}\t{r['flags']}{phase}")
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

    from clinepipe.store.db import session_scope
    from clinepipe.store.models import Measurement

    with session_scope(engine) as s:
        filters = sorted(s.scalars(select(Measurement.filter).distinct()
                                   .where(Measurement.star_id == star_id)).all())
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

    cfg = _config()
    rows = variability_table(_read_engine(cfg), min_points=min_points,
                             exclude_qc=tuple(cfg.qc.exclude_from_variability))
    w = csv.writer(sys.stdout, lineterminator="\n", delimiter="," if as_csv else "\t")
    w.writerow(["star_id", "filter", "n", "rms", "chi2_red", "period_days", "fap", "stetson_j", "name",
                "type"])
    for r in rows:
        w.writerow([r.star_id, r.filter, r.n, f"{r.rms:.4f}", f"{r.chi2_red:.2f}",
                    f"{r.period_days:.6f}" if r.period_days else "",
                    f"{r.fap:.3g}" if r.fap is not None else "", f"{r.stetson_j:.3f}", r.name or "",
                    r.var_type or ""])


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
    from clinepipe.store.queries import resolve_star
    from clinepipe.store import export as ex
    from clinepipe.store.db import session_scope

    if format not in ("csv", "aavso", "sources-csv", "votable"):
        raise UsageError(f"unknown export format '{format}' (csv, aavso, sources-csv, votable).")
    cfg = _config()
    engine = _read_engine(cfg)
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
        n = ex.export_aavso(engine, output, obscode=cfg.aavso.obscode, star_ids=star_ids,
                            filter=filter, check_star_id=_check_star_id(cfg, engine, star_ids[0],
                                                                        check_star))
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
    cfg = _config()
    engine = _read_engine(cfg)
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
        _warn(f"AAVSO target {spec!r} matches no star in the database; skipped.")
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
    prints them with their errors and the lines for [transform]; with --output, the plot
    DIR/transform_<night>.png."""
    from clinepipe.products.transform_plot import (coefficient_table, config_lines,
                                                   write_transform_plot)
    from clinepipe.run.transform_step import fit_night

    cfg = _config()
    fitted, data = fit_night(cfg, _read_engine(cfg), night)
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


@app.command("import-sources-csv")
def import_sources_csv(file: Path = typer.Argument(..., help="A 2018-format sources.csv.")):
    """Bring a 2018-format sources.csv (headerless, mixed line endings, duplicates) into the database."""
    from clinepipe.store.legacy import import_sources_csv as do_import

    cfg = _config()
    if not file.is_file():
        raise UsageError(f"{file}: no such file.")
    summary = do_import(_engine(cfg), file)
    typer.echo(f"{file}: {summary.rows_read} rows read, {summary.rows_imported} imported, "
               f"{summary.duplicates_skipped} duplicates skipped, {summary.bad_lines} bad lines.")


@db_app.command("upgrade")
def db_upgrade():
    """Apply the database migrations (run does this too)."""
    from clinepipe.store.db import upgrade_database

    cfg = _config()
    upgrade_database(cfg.database.url)
    typer.echo("database is at the newest schema.")


# ----------------------------------------------------------------------------- web

@app.command()
def serve(host: Optional[str] = typer.Option(None, "--host",
                                             help="Address to listen on (default: \\[web] host, 127.0.0.1)."),
          port: Optional[int] = typer.Option(None, "--port", min=1, max=65535,
                                             help="Port to listen on (default: \\[web] port, 8765).")):
    """Read-only web dashboard: nights, failures, stars and interactive light curves."""
    import os
    import socket

    import uvicorn

    from clinepipe.web import create_app

    cfg = _config()
    _read_engine(cfg).dispose()
    host = host or cfg.web.host
    port = port or cfg.web.port
    web_app = create_app(cfg)
    try:  # one clear sentence instead of uvicorn's log when the port is taken
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        why = os.strerror(exc.errno) if (exc.errno or 0) > 0 else (exc.strerror or str(exc))
        raise ClinepipeError(f"{host}:{port}: cannot listen there ({why}).") from exc
    typer.echo(f"clinepipe dashboard on http://{host}:{port}/ (read-only; Ctrl-C stops it)")
    uvicorn.run(web_app, host=host, port=port, log_level="warning")


# ----------------------------------------------------------------------------- demo

@app.command()
def demo(directory: Path = typer.Argument(Path("demo-night"), help="Folder for the demo night."),
         nights: int = typer.Option(2, "--nights", min=1),
         seed: int = typer.Option(2026, "--seed")):
    """Simulate a night, run the whole pipeline on it and say where everything is."""
    from clinepipe.demo import run_demo

    run_demo(directory, nights=nights, seed=seed, echo=typer.echo)


# ----------------------------------------------------------------------------- standalone tools
# Work on files without a database; a configuration is used when there is one (camera,
# site, reduction and photometry settings), else the defaults.

def _optional_config():
    """The configuration if one is given or found (``--config``, ``$CLINEPIPE_CONFIG``,
    ``./clinepipe.toml``), else None. A configuration that was asked for must exist."""
    import os

    from clinepipe.config import CONFIG_NAME, find_config, load_config

    if _state["config"] is not None or os.environ.get("CLINEPIPE_CONFIG"):
        return load_config(find_config(_state["config"]))
    if (Path.cwd() / CONFIG_NAME).is_file():
        return load_config(find_config(None))
    return None


def _check_mode(mode: Optional[str], cfg) -> str:
    mode = mode or (cfg.reduction.mode if cfg is not None else "default")
    if mode not in ("seed", "default"):
        raise UsageError(f"--mode {mode}: unknown reduction mode (seed or default).")
    return mode


def _existing(paths: list[Path]) -> list[Path]:
    for p in paths:
        if not p.exists():
            raise UsageError(f"{p}: no such file or folder.")
    return paths


def _warn(text: str) -> None:
    print(f"clinepipe: warning: {text}", file=sys.stderr)


@app.command()
def masters(inputs: list[Path] = typer.Argument(...,
                                                help="Raw calibration frames, or folders (searched recursively)."),
            output: Path = typer.Option(..., "--output",
                                        help="Folder for binning{N}/bias_master.fits, dark_master.fits, "
                                             "flat_master_{FILTER}.fits."),
            mode: Optional[str] = typer.Option(None, "--mode",
                                               help="seed or default (default: the configuration's reduction mode, else default).")):
    """Standalone: master bias, dark and flats from raw calibration frames (no database)."""
    cfg = _optional_config()
    mode = _check_mode(mode, cfg)
    from clinepipe.ccd.masters import make_masters

    kwargs = {} if cfg is None else {"camera": cfg.camera, "site": cfg.site,
                                     "reduction_cfg": cfg.reduction}
    report = make_masters(_existing(inputs), output, mode=mode, **kwargs)
    for item in report["written"]:
        what = item["kind"] + (f" {item['filter']}" if item["filter"] else "")
        typer.echo(f"wrote {item['path']} ({what}, binning {item['binning']}, "
                   f"{item['n']} frame(s))")
    for path, reason in report["rejected"].items():
        typer.echo(f"  left out {path}: {reason}")
    for what, reason in report["failed"].items():
        _warn(f"{what}: {reason}.")
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
    cfg = _optional_config()
    mode = _check_mode(mode, cfg)
    if not masters_dir.is_dir():
        raise UsageError(f"{masters_dir}: no such folder of masters.")
    from clinepipe.ccd.reduce import reduce_files

    kwargs = {} if cfg is None else {"camera": cfg.camera, "site": cfg.site,
                                     "reduction": cfg.reduction}
    results = reduce_files(_existing(lights), masters_dir, output, mode=mode, **kwargs)
    failed = 0
    for light, out in results:
        if isinstance(out, Path):
            typer.echo(f"wrote {out}")
        else:
            failed += 1
            _warn(f"{light}: not reduced ({out}).")
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
    cfg = _optional_config()
    _existing(images)
    if sources is not None:
        if len(images) > 1:
            raise UsageError("--sources names one source list, so give one image with it.")
        if not sources.is_file():
            raise UsageError(f"{sources}: no such source list.")
    if aperture is not None and not (aperture == aperture):
        raise UsageError("--aperture must be a number of pixels.")
    if band is not None and catalog is None:
        raise UsageError("--filter needs --catalog.")
    from clinepipe.run.measure import CATALOG_COLUMNS, CSV_COLUMNS, measure_image, result_rows

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
            _warn(exc.message)
            continue
        for note in res.notes:
            _warn(f"{image}: {note}.")
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
            output: Path = typer.Option(..., "--output", help="Folder for fit.json, lightcurve.csv, the plot and the AAVSO report.")):
    """Fit the transit of a planet of TARGET in a night of the database: fit.json,
    lightcurve.csv (bjd_tdb,flux,flux_err,model,detrended,airmass), lightcurve.png and, with an
    [aavso] obscode, aavso_exoplanet.txt. Exit 1 with a sentence when no night covers a transit.
    """
    cfg = _config()
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

    engine = _engine(cfg)
    with session_scope(engine) as s:
        star = s.get(Star, resolve_star(s, target))
        name = star.name or star.catalog_id or f"star {star.id}"
        days = duration / 24.0 if duration else default_duration(period, rprs)
        planet = TransitTarget(name=name, ra=star.ra, dec=star.dec, period=period, t0=t0,
                               duration=days, rprs=rprs)
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

    cfg = _optional_config() if catalog_index else None
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


# ----------------------------------------------------------------------------- entry point

def main(argv: list[str] | None = None) -> None:
    """Console-script entry: one sentence per error, the README's exit codes."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        app(args=args, prog_name="clinepipe", standalone_mode=True)
    except SystemExit:
        raise
    except ClinepipeError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"clinepipe: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("clinepipe: interrupted.", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # a bug: one sentence, details with --debug
        if debug:
            import traceback

            traceback.print_exc()
        print(f"clinepipe: internal error ({type(exc).__name__}: {exc}); rerun with --debug "
              "for the traceback.", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
