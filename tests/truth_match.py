"""Measurements of a simulated night matched to the simulator's truth (nearest true star within
1 px on the same frame), for the truth-based tests of the whole run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import select

from clinepipe.store.db import session_scope
from clinepipe.store.models import Frame, Measurement


def measurements_with_truth(night):
    """Each flagless calibrated measurement with the true magnitude of that star at that time."""
    sim, engine = night["sim"], night["engine"]
    with session_scope(engine) as s:
        rows = s.execute(select(Frame.raw_path, Measurement.x, Measurement.y, Measurement.mag,
                                Measurement.mag_err, Measurement.flux, Measurement.flux_err,
                                Measurement.star_id, Frame.filter)
                         .join(Frame, Frame.id == Measurement.frame_id)
                         .where(Measurement.mag.is_not(None), Measurement.flags == 0)).all()
    out = []
    by_frame: dict[str, list] = {}
    for r in rows:
        by_frame.setdefault(r[0], []).append(r)
    for raw_path, rs in by_frame.items():
        truth = sim.light_truth(Path(raw_path).stem)
        tx, ty = np.asarray(truth["x"], float), np.asarray(truth["y"], float)
        for r in rs:
            d = np.hypot(tx - r[1], ty - r[2])
            k = int(np.argmin(d))
            if d[k] < 1.0:
                out.append({"frame": raw_path, "mag": r[3], "mag_err": r[4], "snr": r[5] / r[6],
                            "true_mag": float(truth["mag"][k]), "true_flux": float(truth["flux_adu"][k]),
                            "flux": r[5], "star_id": r[7], "truth_id": int(truth["id"][k]),
                            "filter": r[8]})
    return out
