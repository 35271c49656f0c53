"""Commands that set an installation up or look at one: init, simulate, inspect, demo, serve,
db upgrade and the import of a 2018 sources.csv.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from clinepipe.cli.common import (
    app,
    current_config,
    db_app,
    open_engine,
    optional_config,
    read_engine,
)
from clinepipe.errors import ClinepipeError, UsageError


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

    cfg = optional_config()  # [headers] and [site] of an existing config, else the defaults
    rules = cfg.headers.rules() if cfg is not None else None
    site = ((cfg.site.latitude, cfg.site.longitude)
            if cfg is not None and not cfg.site_missing else None)  # no site given: none to check
    code = run_inspect([str(d) for d in dirs], csv=as_csv, write_config=write_config,
                       rules=rules, site=site)
    raise typer.Exit(code)


@app.command()
def demo(directory: Path = typer.Argument(Path("demo-night"), help="Folder for the demo night."),
         nights: int = typer.Option(2, "--nights", min=1),
         seed: int = typer.Option(2026, "--seed")):
    """Simulate a night, run the whole pipeline on it and say where everything is."""
    from clinepipe.demo import run_demo

    run_demo(directory, nights=nights, seed=seed, echo=typer.echo)


@app.command()
def serve(host: Optional[str] = typer.Option(None, "--host",
                                             help="Address to listen on (default: \\[web] host, 127.0.0.1)."),
          port: Optional[int] = typer.Option(None, "--port", min=1, max=65535,
                                             help="Port to listen on (default: \\[web] port, 8765).")):
    """Read-only web dashboard: nights, failures, stars and interactive light curves."""
    import os
    import socket
    import threading

    import uvicorn

    from clinepipe.web import create_app

    cfg = current_config()
    read_engine(cfg).dispose()
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
    # the star table built while the server starts, not by the first visitor of /stars
    threading.Thread(target=web_app.state.dashboard.warm, name="warm", daemon=True).start()
    uvicorn.run(web_app, host=host, port=port, log_level="warning")


@db_app.command("upgrade")
def db_upgrade():
    """Apply the database migrations (run does this too)."""
    from clinepipe.store.db import upgrade_database

    cfg = current_config()
    upgrade_database(cfg.database.url)
    typer.echo("database is at the newest schema.")


@app.command("import-sources-csv")
def import_sources_csv(file: Path = typer.Argument(..., help="A 2018-format sources.csv.")):
    """Bring a 2018-format sources.csv (headerless, mixed line endings, duplicates) into the database."""
    from clinepipe.store.legacy import import_sources_csv as do_import

    cfg = current_config()
    if not file.is_file():
        raise UsageError(f"{file}: no such file.")
    summary = do_import(open_engine(cfg), file)
    typer.echo(f"{file}: {summary.rows_read} rows read, {summary.rows_imported} imported, "
               f"{summary.duplicates_skipped} duplicates skipped, {summary.bad_lines} bad lines.")
