"""The command line around the files a user gets (issues 19 and 21): ``export`` to standard
output, through a symlink, saying what it left out and refusing to write nothing;
``validate``; read-only commands on a missing database; ``run`` without its incoming folder;
``lc --filter`` without such points."""

from __future__ import annotations

import pytest
from small_store import populate_small_store  # noqa: E402
from sqlalchemy import update

from clinepipe.cli import main
from clinepipe.products.aavso_format import validate_extended, validate_file
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Measurement


def _cli(capsys, *args):
    """(exit code, stdout, stderr) of ``clinepipe ARGS``."""
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A config on the hand-made small store (SQLite file); the working folder is empty."""
    db = tmp_path / "db" / "clinepipe.db"
    engine = open_database(f"sqlite:///{db}")
    ids = populate_small_store(engine)
    config = tmp_path / "clinepipe.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{db}"\n[aavso]\nobscode = "TST01"\n')
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield {"config": config, "engine": engine, "ids": ids, "work": work, "tmp": tmp_path}
    engine.dispose()


# ----------------------------------------------------------------------------- export

def test_export_to_standard_output(store, capsys):
    code, out, err = _cli(capsys, "--config", store["config"], "export", "--format", "csv",
                          "--output", "-")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("star_id,ra,dec,filter,jd_mid") and len(lines) == 16
    assert "wrote - (15 rows)" in err
    assert list(store["work"].iterdir()) == []  # no file named "-"
    code, out, err = _cli(capsys, "--config", store["config"], "export", "--format", "aavso",
                          "--star", "V0001 Tst", "--check-star", "none", "--output", "-")
    assert code == 0, err
    assert validate_extended(out) == []
    assert len([ln for ln in out.splitlines() if not ln.startswith("#")]) == 4
    assert ("left out 1 of 5 measurement(s): 1 without a calibrated magnitude (no zero point "
            "on their frame).") in err


def test_export_through_a_symlink_keeps_the_link(store, capsys):
    target = store["tmp"] / "published" / "v0001.txt"
    target.parent.mkdir()
    target.write_text("yesterday\n")
    link = store["work"] / "latest.txt"
    link.symlink_to(target)
    code, _, err = _cli(capsys, "--config", store["config"], "export", "--format", "aavso",
                        "--star", "V0001 Tst", "--output", link)
    assert code == 0, err
    assert link.is_symlink() and validate_file(target) == []


def test_export_says_what_it_left_out_and_zero_rows_is_an_error(store, capsys):
    ids = store["ids"]
    code, out, _ = _cli(capsys, "--config", store["config"], "export", "--format",
                        "sources-csv", "--output", "s.csv")
    assert code == 0 and "wrote s.csv (12 rows)" in out
    assert ("left out 3 of 15 measurement(s): 3 in filter 'Red' (the format has columns for "
            "R, V and B only).") in out
    with session_scope(store["engine"]) as s:  # issue 19 item 2: every point flagged blended
        s.execute(update(Measurement).where(Measurement.star_id == ids["stars"][0])
                  .values(flags=8))
    code, out, err = _cli(capsys, "--config", store["config"], "export", "--format", "aavso",
                          "--star", "V0001 Tst", "--output", "v.txt")
    assert code == 1
    assert "all 5 measurement(s) were left out: 5 flagged blended; nothing written." in err
    assert not (store["work"] / "v.txt").exists()
    code, _, err = _cli(capsys, "--config", store["config"], "export", "--format", "csv",
                        "--star", str(ids["stars"][3]), "--output", "none.csv")
    assert code == 1 and f"no measurements of star {ids['stars'][3]}; nothing written." in err
    assert not (store["work"] / "none.csv").exists()


@pytest.mark.parametrize("obscode", ["", "N/A"])
def test_export_aavso_without_obscode_is_one_sentence_and_no_file(store, capsys, obscode):
    store["config"].write_text(store["config"].read_text().replace('"TST01"', f'"{obscode}"'))
    code, out, err = _cli(capsys, "--config", store["config"], "export", "--format", "aavso",
                          "--star", "V0001 Tst", "--output", "v.txt")
    assert code == 1 and out == ""
    assert err.startswith("clinepipe: no AAVSO observer code: ") and "[aavso] obscode" in err
    assert err.count("\n") == 1 and not (store["work"] / "v.txt").exists()


# ----------------------------------------------------------------------------- validate

def test_validate_command(store, capsys):
    _cli(capsys, "--config", store["config"], "export", "--format", "aavso", "--star",
         "V0001 Tst", "--output", "good.txt")
    bad = store["work"] / "bad.txt"
    bad.write_text((store["work"] / "good.txt").read_text().replace("#OBSCODE=TST01",
                                                                     "#OBSCODE=N/A"))
    code, out, _ = _cli(capsys, "validate", "good.txt")
    assert code == 0 and out == "good.txt: valid AAVSO Extended file (4 data lines)\n"
    code, out, _ = _cli(capsys, "validate", "good.txt", "bad.txt")
    assert code == 1
    assert out.splitlines()[1].startswith("bad.txt:2: #OBSCODE: the observer code is 'N/A'")


# ----------------------------------------------------------------------------- lc

def test_lc_filter_without_points_says_so(store, capsys):
    code, out, err = _cli(capsys, "--config", store["config"], "lc", "V0001 Tst", "--filter",
                          "B", "--csv", "b.csv")
    assert code == 1 and out == ""
    assert "has no measurements in filter B (it has R, Red, V); nothing written." in err
    assert not (store["work"] / "b.csv").exists()
    code, out, err = _cli(capsys, "--config", store["config"], "lc", "V0001 Tst", "--filter",
                          "V", "--csv", "-")
    assert code == 0 and len(out.splitlines()) == 4  # header + 3 V points


# ----------------------------------------------------------------------------- no database

READ_ONLY = [("status",), ("stars",), ("lc", "1"), ("variables",),
             ("export", "--format", "csv", "--output", "x.csv"), ("serve",)]


@pytest.mark.parametrize("folder_exists", [False, True])
@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: c[0])
def test_read_only_commands_on_a_missing_database(tmp_path, monkeypatch, capsys, command,
                                                  folder_exists):
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: served.append(a))
    folder = tmp_path / "data"
    if folder_exists:
        folder.mkdir()
    config = tmp_path / "clinepipe.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{folder / "clinepipe.db"}"\n')
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = _cli(capsys, "--config", config, *command)
    assert code == 2 and out == "" and not served
    assert err == (f"clinepipe: no database at {folder / 'clinepipe.db'}: run `clinepipe run` "
                   f"first.\n")
    assert folder.exists() == folder_exists and (not folder_exists or not any(folder.iterdir()))
    assert list(work.iterdir()) == []


def test_run_without_incoming_creates_nothing(tmp_path, monkeypatch, capsys):
    config = tmp_path / "clinepipe.toml"
    config.write_text('[paths]\nincoming = "no-such-folder"\narchive = "archive"\n'
                      "[site]\nlatitude = 52.2\nlongitude = 0.12\nelevation = 20\n"
                      '[database]\nurl = "sqlite:///db/clinepipe.db"\n')
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(capsys, "--config", config, "run")
    assert code == 2
    assert "no-such-folder: the incoming folder does not exist" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clinepipe.toml"]
