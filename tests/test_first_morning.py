"""Issue 19, a new user's first morning: config values in range with the key, value, range and
file named; "did you mean" for typos; `init` writes placeholders for the site and `run`
refuses without one; `serve --help` keeps its ``[web]``."""

from __future__ import annotations

import tomllib

import pytest

from clinepipe.cli import main
from clinepipe.config import DEFAULT_CONFIG, load_config


def _cli(capsys, *args):
    """(exit code, stdout, stderr) of ``clinepipe ARGS``."""
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


SITE = "[site]\nlatitude = 52.2\nlongitude = 0.12\nelevation = 20\n"


@pytest.mark.parametrize("section, key, value, words", [
    ("site", "latitude", "136.0", ["[-90, 90] degrees"]),
    ("site", "longitude", "-181", ["[-180, 180] degrees"]),
    ("site", "elevation", "12000", ["[-500, 9000] m"]),
    ("camera", "gain", "0", ["> 0 e-/ADU"]),
    ("camera", "read_noise", "-1.0", [">= 0 e-"]),
    ("photometry", "aperture", "-2.0", [">= 0 pixels"]),
    ("astrometry", "timeout", "0", ["> 0 s"]),
    ("catalog", "timeout", "-5", ["> 0 s"]),
    ("photometry", "detect_threshold", "0.0", ["> 0 sigma"]),
    ("reduction", "min_frames", "0", [">= 1"]),
    ("web", "port", "70000", ["[1, 65535]"]),
    ("web", "port", "0", ["[1, 65535]"]),
    ("qc", "few_stars_fraction", "1.5", ["[0, 1]"]),
    ("camera", "gain", "nan", ["> 0 e-/ADU"]),
    ("paths", "settle_seconds", "-1", [">= 0 s"]),
])
def test_out_of_range_value_is_one_sentence_naming_key_value_range_file(
        capsys, tmp_path, section, key, value, words):
    path = tmp_path / "clinepipe.toml"
    path.write_text(f"{SITE if section != 'site' else ''}[{section}]\n{key} = {value}\n")
    code, out, err = _cli(capsys, "--config", path, "status")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and str(path) in err
    assert f"{section}.{key} = " in err and "out of range" in err
    for w in words:
        assert w in err


@pytest.mark.parametrize("text", [
    "[site]\nlatitude = 90\nlongitude = -180\nelevation = -500\n",
    "[photometry]\naperture = 0\n",            # 0 = 1.5 x the frame's FWHM (documented)
    "[camera]\nread_noise = 0\n[web]\nport = 65535\n",
    "[photometry]\naperture = 4.0\nannulus = [6.0, 10.0]\n",
])
def test_values_at_the_edges_of_their_ranges_load(tmp_path, text):
    path = tmp_path / "clinepipe.toml"
    path.write_text(text)
    load_config(path)


@pytest.mark.parametrize("text, words", [
    ("[photometry]\naperture = 5.0\nannulus = [4.0, 10.0]\n", ["photometry.annulus", "5 (the aperture) < r_in"]),
    ("[photometry]\nannulus = [8.0, 6.0]\n", ["photometry.annulus", "r_in < r_out"]),
    ("[photometry]\nannulus = [8.0]\n", ["photometry.annulus"]),
    ("[astrometry]\nscale_low = 2.0\nscale_high = 1.0\n", ["astrometry.scale_high", "scale_low"]),
])
def test_two_key_checks(tmp_path, text, words):
    from clinepipe.errors import ConfigError

    path = tmp_path / "clinepipe.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in err.value.message and "\n" not in err.value.message
    for w in words:
        assert w in err.value.message


@pytest.mark.parametrize("text, hint", [
    ("[camera]\ngian = 0.4\n", "did you mean 'gain'?"),
    ("[photometry]\napperture = 5\n", "did you mean 'aperture'?"),
    ("[stie]\nlatitude = 5\n", "did you mean 'site'?"),
    ("[site]\nlattitude = 5\n", "did you mean 'latitude'?"),
])
def test_typo_gets_did_you_mean(capsys, tmp_path, text, hint):
    path = tmp_path / "clinepipe.toml"
    path.write_text(text)
    code, _, err = _cli(capsys, "--config", path, "status")
    assert code == 2 and hint in err and str(path) in err


def test_unrelated_key_gets_no_guess(capsys, tmp_path):
    path = tmp_path / "clinepipe.toml"
    path.write_text("[camera]\nzzzzzz = 1\n")
    code, _, err = _cli(capsys, "--config", path, "status")
    assert code == 2 and "unknown key 'zzzzzz'" in err and "did you mean" not in err


def test_init_writes_placeholders_and_run_refuses_naming_the_keys(capsys, tmp_path):
    code, out, _ = _cli(capsys, "init", tmp_path / "obs")
    assert code == 0 and "fill in [site] latitude, longitude, elevation" in out
    path = tmp_path / "obs" / "clinepipe.toml"
    text = path.read_text()
    assert "36.076" not in text and "-79.80" not in text and "Cline" not in text
    assert "site" not in tomllib.loads(text) or "latitude" not in tomllib.loads(text)["site"]
    code, out, err = _cli(capsys, "--config", path, "run")
    assert code == 2 and out == ""
    assert err == (f"clinepipe: {path.resolve()}: [site] latitude, [site] longitude, [site] "
                   "elevation not set: give your site's position (degrees north, degrees east, "
                   "metres) before `clinepipe run` measures anything.\n")
    assert not (tmp_path / "obs" / "clinepipe.db").exists()
    assert not any((tmp_path / "obs" / "archive").iterdir())
    # commands that need no site still work: a missing database is their only complaint
    code, _, err = _cli(capsys, "--config", path, "status")
    assert code == 2 and "no database at" in err


def test_a_partial_site_names_only_what_is_missing(capsys, tmp_path):
    path = tmp_path / "clinepipe.toml"
    path.write_text("[site]\nlatitude = 52.2\nlongitude = 0.12\n")
    code, _, err = _cli(capsys, "--config", path, "run")
    assert code == 2 and "[site] elevation not set" in err and "latitude" not in err


def test_init_with_site_options_writes_them(capsys, tmp_path):
    code, out, _ = _cli(capsys, "init", tmp_path / "obs", "--latitude", "-31.27",
                        "--longitude", "149.06", "--elevation", "1165", "--name", "Siding \"S\"")
    assert code == 0 and "fill in" not in out
    cfg = load_config(tmp_path / "obs" / "clinepipe.toml")
    assert (cfg.site.latitude, cfg.site.longitude, cfg.site.elevation) == (-31.27, 149.06, 1165.0)
    assert cfg.site.name == 'Siding "S"' and cfg.site_missing == ()


def test_init_refuses_an_impossible_latitude(capsys, tmp_path):
    code, _, err = _cli(capsys, "init", tmp_path / "obs", "--latitude", "136")
    assert code == 2 and "--latitude" in err and "90" in err
    assert not (tmp_path / "obs").exists()


def test_default_config_text_has_no_site_values():
    site = tomllib.loads(DEFAULT_CONFIG).get("site", {})
    assert not {"latitude", "longitude", "elevation"} & set(site)


def test_serve_help_shows_the_web_section(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = _cli(capsys, "serve", "--help")
    assert code == 0
    assert "(default: [web] port, 8765)" in out
    assert "(default: [web] host, 127.0.0.1)" in out
