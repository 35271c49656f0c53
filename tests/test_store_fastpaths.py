"""The short commands' fast paths in the store: a database already at the head revision is
opened without importing Alembic, and a star given by id is found without loading astropy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clinepipe.store import schema_version as store_db
from clinepipe.store.db import open_database
from clinepipe.store.schema_version import current_revision, head_revision

SRC = Path(__file__).resolve().parents[1] / "src"


def _child(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (so sys.modules starts empty); it prints JSON."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_head_read_from_the_scripts_is_alembics_head():
    assert store_db._head_from_scripts() == head_revision()


def _script(folder: Path, name: str, revision: str, down: str | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(
        f'"""A migration."""\nfrom typing import Union\n\nrevision: str = "{revision}"\n'
        f"down_revision: Union[str, None] = {down!r}\n\ndef upgrade():\n    pass\n")


def test_head_from_scripts_is_inconclusive_with_two_heads(tmp_path, monkeypatch):
    versions = tmp_path / "versions"
    _script(versions, "0001_a.py", "0001", None)
    _script(versions, "0002_b.py", "0002", "0001")
    monkeypatch.setattr(store_db, "MIGRATIONS_DIR", tmp_path)
    assert store_db._head_from_scripts.__wrapped__() == "0002"
    _script(versions, "0003_c.py", "0003", "0001")  # a second branch from 0001: two heads
    assert store_db._head_from_scripts.__wrapped__() is None
    _script(versions, "0004_merge.py", "0004", ("0002", "0003"))  # a merge: one head again
    assert store_db._head_from_scripts.__wrapped__() == "0004"


def test_head_from_scripts_is_inconclusive_for_computed_ids(tmp_path, monkeypatch):
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "0001_x.py").write_text('revision = "00" + "01"\ndown_revision = None\n')
    monkeypatch.setattr(store_db, "MIGRATIONS_DIR", tmp_path)
    assert store_db._head_from_scripts.__wrapped__() is None


OPEN_AT_HEAD = r"""
import json, sys
from clinepipe.store.db import open_database
engine = open_database(sys.argv[1])
with engine.connect() as conn:
    version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
print(json.dumps({"alembic_imported": "alembic" in sys.modules, "version": version}))
"""


def test_a_database_at_the_head_opens_without_alembic(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    open_database(url).dispose()  # made and migrated here
    out = _child(OPEN_AT_HEAD.replace("sys.argv[1]", repr(url)))
    assert out == {"alembic_imported": False, "version": head_revision()}


def test_an_older_database_is_still_upgraded(tmp_path):
    """Revision 0001 on disk: the fast check says "not at head", Alembic upgrades it."""
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = open_database(url, upgrade=False)
    with engine.begin() as conn:
        command.upgrade(store_db.alembic_config(conn), "0001")
    assert current_revision(engine) == "0001"
    engine.dispose()
    out = _child(OPEN_AT_HEAD.replace("sys.argv[1]", repr(url)))
    assert out["alembic_imported"] is True and out["version"] == head_revision()


def test_a_new_database_is_created_at_the_head_without_alembic(tmp_path):
    """A first run creates the tables in one go and stamps them (tests/test_schema_creation.py:
    the same database as the migrations make), never loading Alembic."""
    out = _child(OPEN_AT_HEAD.replace("sys.argv[1]", repr(f"sqlite:///{tmp_path / 'new.db'}")))
    assert out == {"alembic_imported": False, "version": head_revision()}


RESOLVE = r"""
import json, sys
from sqlalchemy.orm import Session
from clinepipe.store.db import open_database
from clinepipe.store.queries import resolve_star
engine = open_database(URL)
with Session(engine) as s:
    found = [resolve_star(s, spec) for spec in SPECS]
print(json.dumps({"found": found, "astropy": "astropy" in sys.modules}))
"""


@pytest.fixture()
def star_db(tmp_path):
    from clinepipe.store.db import session_scope
    from clinepipe.store.models import Star

    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = open_database(url)
    with session_scope(engine) as s:
        s.add_all([Star(id=7, ra=161.99994, dec=30.09783, catalog_id="SIM-000005",
                        n_measurements=0),
                   Star(id=9, ra=10.0, dec=-5.0, name="V0339 Del", n_measurements=0)])
    engine.dispose()
    return url


def test_a_star_by_id_name_or_catalog_id_is_found_without_astropy(star_db):
    code = RESOLVE.replace("URL", repr(star_db)).replace("SPECS", repr(["7", "v0339 del",
                                                                        "SIM-000005"]))
    assert _child(code) == {"found": [7, 9, 7], "astropy": False}


def test_a_star_by_position_is_still_found(star_db):
    code = RESOLVE.replace("URL", repr(star_db)).replace(
        "SPECS", repr(["161.99994 30.09783", "10 47 59.99 +30 05 52.2"]))
    assert _child(code)["found"] == [7, 7]
