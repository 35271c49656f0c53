"""A light without WCS goes to the plate solver when [astrometry] solve = true.

The simulator's stars are synthetic, so astrometry.net's Tycho-2 index cannot solve them: with
the catalog index turned off (``catalog_index = false``) the frame must fail with the solver's
named reason while the rest of the night is processed. The solver's success path on real
Tycho-2 stars is tested in test_astrometry.py, with the catalog index in test_catalog_index.py.
"""

import shutil

import pytest
from astropy.io import fits
from sqlalchemy import select

from clinepipe.config import load_config
from clinepipe.run.pipeline import run_pipeline
from clinepipe.store.db import open_database, session_scope
from clinepipe.store.models import Frame

pytestmark = pytest.mark.solver


def test_unsolvable_light_fails_with_solver_reason(small_night, tmp_path):
    if shutil.which("solve-field") is None:
        pytest.skip("astrometry.net solve-field is not installed (`make system-deps` installs it)")
    out = tmp_path / "night"
    shutil.copytree(small_night.out_dir, out)
    light = sorted((out / "incoming").rglob("*_light_*.fit"))[0]
    with fits.open(light) as hdul:
        header = hdul[0].header
        for key in [k for k in header if k.startswith(("CTYPE", "CRPIX", "CRVAL", "CD1_", "CD2_"))]:
            del header[key]
        data = hdul[0].data
        fits.writeto(light, data, header, overwrite=True)
    light.with_suffix(".SRC").unlink()
    cfg_path = out / "clinepipe.toml"
    cfg_path.write_text(cfg_path.read_text() + "\n[astrometry]\nsolve = true\ncatalog_index = false\nscale_low = 0.9\nscale_high = 1.1\ntimeout = 10\n")
    cfg = load_config(cfg_path)
    run_pipeline(cfg)
    with session_scope(open_database(cfg.database.url)) as s:
        rows = dict(s.execute(select(Frame.raw_path, Frame.reason).where(Frame.kind == "light")).all())
        states = s.execute(select(Frame.state).where(Frame.kind == "light")).scalars().all()
    rel = light.relative_to(out / "incoming").as_posix()
    assert rows[rel] in ("plate solving failed", "plate solution rejected"), rows[rel]
    assert states.count("calibrated") == len(states) - 1
