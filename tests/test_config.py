"""Config loading: defaults, relative paths, and one clear sentence for every mistake."""


import pytest

from clinepipe.config import DEFAULT_CONFIG, find_config, load_config
from clinepipe.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "clinepipe.toml"
    p.write_text(text)
    return p


def test_default_config_text_loads_and_resolves_paths(tmp_path):
    cfg = load_config(write(tmp_path, DEFAULT_CONFIG))
    assert cfg.paths.incoming == tmp_path / "incoming"
    assert cfg.paths.archive == tmp_path / "archive"
    assert cfg.database.url == f"sqlite:///{tmp_path / 'clinepipe.db'}"
    assert cfg.camera.gain == 0.4 and cfg.camera.max_ccd_temp == -3.0
    assert cfg.reduction.mode == "default"
    assert cfg.catalog.filters["V"] == "V"
    assert cfg.catalog.path == tmp_path / "catalog.csv"


def test_config_is_frozen(tmp_path):
    cfg = load_config(write(tmp_path, ""))
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.camera.gain = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("text, words", [
    ("[camera]\ngain = 'high'\n", ["camera.gain", "number"]),
    ("[camera]\ngian = 0.4\n", ["unknown key 'gian'", "[camera]"]),
    ("[telescope]\nx = 1\n", ["unknown section [telescope]"]),
    ("[reduction]\nmode = 'fancy'\n", ["reduction.mode", "'default'"]),
    ("[reduction]\nmin_frames = 2.5\n", ["reduction.min_frames", "whole number"]),
    ("[paths\nincoming = 1\n", ["not valid TOML"]),
    ("[photometry]\nannulus = 'wide'\n", ["photometry.annulus", "list"]),
])
def test_bad_config_is_one_sentence_naming_key_and_file(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = err.value.message
    assert str(path) in msg
    for w in words:
        assert w in msg
    assert "\n" not in msg
    assert err.value.exit_code == 2


def test_find_config_order(tmp_path, monkeypatch):
    a = write(tmp_path, "")
    other = tmp_path / "b.toml"
    other.write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLINEPIPE_CONFIG", raising=False)
    assert find_config() == a.resolve()
    monkeypatch.setenv("CLINEPIPE_CONFIG", str(other))
    assert find_config() == other.resolve()
    assert find_config(a) == a.resolve()
    with pytest.raises(ConfigError, match="no configuration file"):
        find_config(tmp_path / "missing.toml")


def test_absolute_sqlite_and_postgres_urls_untouched(tmp_path):
    cfg = load_config(write(tmp_path, '[database]\nurl = "sqlite:////var/db/x.db"\n'))
    assert cfg.database.url == "sqlite:////var/db/x.db"
    cfg = load_config(write(tmp_path, '[database]\nurl = "postgresql+psycopg://u@h:5432/d"\n'))
    assert cfg.database.url == "postgresql+psycopg://u@h:5432/d"


def test_site_telescope_defaults_to_empty_and_is_validated(tmp_path):
    assert load_config(write(tmp_path, "")).site.telescope == ""
    assert load_config(write(tmp_path, '[site]\ntelescope = "scope-a"\n')).site.telescope == "scope-a"
    for bad, words in (('" scope-a"', ["site.telescope", "blanks"]),
                       ('"' + "x" * 65 + '"', ["site.telescope", "longer than 64"]),
                       ("3", ["site.telescope", "string"])):
        path = write(tmp_path, f"[site]\ntelescope = {bad}\n")
        with pytest.raises(ConfigError) as err:
            load_config(path)
        msg = err.value.message
        assert str(path) in msg and "\n" not in msg
        for w in words:
            assert w in msg
