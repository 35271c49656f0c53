"""Finding and loading ``clinepipe.toml``: the file named, ``$CLINEPIPE_CONFIG`` or
``./clinepipe.toml``, read with :mod:`tomllib`, checked and resolved against its folder.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from pathlib import Path

from clinepipe.config.checks import (
    check_headers,
    check_numbers,
    check_telescope,
    did_you_mean,
    read_section,
)
from clinepipe.config.sections import (
    CONFIG_ENV,
    CONFIG_NAME,
    SITE_KEYS,
    Config,
    TransitsConfig,
)
from clinepipe.errors import ConfigError


def find_config(explicit: str | os.PathLike | None = None) -> Path:
    """The config file: ``--config``, else ``$CLINEPIPE_CONFIG``, else ``./clinepipe.toml``."""
    if explicit:
        path = Path(explicit)
    elif os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
    else:
        path = Path.cwd() / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"{path}: no configuration file there (create one with `clinepipe init`).")
    return path.resolve()


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate ``path``; relative paths become absolute against its folder."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: is not valid TOML ({exc}).") from exc
    return config_from_dict(raw, path, text)


def config_from_dict(raw: dict, path: Path | None = None, text: str = "") -> Config:
    """Validate an already-parsed TOML document and make it a :class:`Config`.

    Parameters
    ----------
    raw : dict
        The document as :func:`tomllib.loads` returns it: section name -> table of keys.
    path : Path, optional
        The file it came from: named in every error, and the folder relative paths are taken
        against (None = the current directory; errors then say "configuration").
    text : str, optional
        The file's text, kept in ``Config.source_text`` for provenance.

    Returns
    -------
    Config
        With paths made absolute and ``site_missing`` listing the ``[site]`` keys not given.

    Raises
    ------
    ConfigError
        One sentence naming the file and the unknown section, key or out-of-range value.
    """
    where = str(path) if path else "configuration"
    hints = typing.get_type_hints(Config)
    sections = {}
    for name, value in raw.items():
        if name not in hints or name in ("source_file", "source_text", "site_missing"):
            known = [k for k in hints if k not in ("source_file", "source_text", "site_missing")]
            raise ConfigError(f"{where}: unknown section [{name}]{did_you_mean(name, known)}.")
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: [{name}] must be a table of keys.")
        sections[name] = read_section(hints[name], name, value, where)
    site_given = raw.get("site", {})
    missing = tuple(k for k in SITE_KEYS if k not in site_given)
    cfg = Config(**sections, source_file=path, source_text=text, site_missing=missing)
    check_telescope(cfg.site.telescope, where)
    check_headers(cfg.headers, where)
    check_numbers(cfg, where)
    return _resolve_paths(cfg)


def require_site(cfg: Config) -> None:
    """Raise :class:`ConfigError` (one sentence naming the missing keys and the file) when the
    configuration does not say where the observatory is."""
    if not cfg.site_missing:
        return
    keys = ", ".join(f"[site] {k}" for k in cfg.site_missing)
    where = cfg.source_file or "the configuration"
    raise ConfigError(f"{where}: {keys} not set: give your site's position (degrees north, "
                      "degrees east, metres) before `clinepipe run` measures anything.",
                      reason="no site")


def _resolve_paths(cfg: Config) -> Config:
    base = cfg.base_dir

    def absolute(p: Path) -> Path:
        return p if p.is_absolute() else (base / p)

    paths = dataclasses.replace(cfg.paths, incoming=absolute(cfg.paths.incoming),
                                archive=absolute(cfg.paths.archive))
    catalog = dataclasses.replace(cfg.catalog, path=absolute(cfg.catalog.path),
                                  cache=absolute(cfg.catalog.cache))
    known = dataclasses.replace(cfg.known_variables, path=absolute(cfg.known_variables.path))
    url = cfg.database.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        url = "sqlite:///" + str(absolute(Path(url[len("sqlite:///"):])))
    database = dataclasses.replace(cfg.database, url=url)
    transits = cfg.transits
    if str(transits.path) not in ("", "."):
        transits = TransitsConfig(path=absolute(transits.path))
        if not transits.path.is_file():
            where = cfg.source_file or "configuration"
            raise ConfigError(f"{where}: transits.path = '{cfg.transits.path}' names "
                              f"{transits.path}, which does not exist.")
    aavso = dataclasses.replace(cfg.aavso, sequences={
        k: absolute(v) for k, v in cfg.aavso.sequences.items()})
    return dataclasses.replace(cfg, paths=paths, catalog=catalog, known_variables=known,
                               database=database, transits=transits, aavso=aavso)
