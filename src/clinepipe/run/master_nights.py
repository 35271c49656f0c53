"""Which nights' calibration groups the masters step must look at: those that can have a new
input key, so that a run's masters step costs what the new nights cost, not the archive's
thousands of calibration frames (issue #20, ``bench/bench_archive.py``).

A group's input key (:func:`clinepipe.ccd.masters.input_key`) is made of the reduction mode,
the checksums of its frames and the masters it had to be made without. So it can change only

* in a night with a frame of its kind that is new (``ingested``) or ``waiting``;
* in a night within ``[reduction] max_master_age_days`` of a night whose groups of a kind it
  needs changed (a master it lacked may now exist);
* anywhere, when a master of the kind was made in another reduction mode (the mode changed
  in the configuration): then every night is looked at, as before.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import or_, select

from clinepipe.config import Config
from clinepipe.store.models import Frame, Master


def _shift(night: str, days: int) -> str:
    d = date(int(night[:4]), int(night[4:6]), int(night[6:8])) + timedelta(days=days)
    return d.strftime("%Y%m%d")


def candidate_nights(s, cfg: Config, kind: str, changed: dict) -> list[str] | None:
    """The nights (YYYYMMDD) whose groups of ``kind`` may need a new master, in session ``s``;
    None for every night. ``changed`` holds the answer for the kinds built before (bias,
    dark), which ``kind`` may need (:data:`clinepipe.ccd.masters.STACKERS`)."""
    from clinepipe.ccd.master_groups import STACKERS

    telescope = cfg.site.telescope
    other_mode = s.scalars(select(Master.id).where(
        Master.telescope == telescope, Master.kind == kind,
        Master.mode != cfg.reduction.mode).limit(1)).first()
    if other_mode is not None:
        return None
    # no DISTINCT nor "night IS NOT NULL": either makes SQLite walk every frame of the kind by
    # night (ix_frames_telescope_kind_night) instead of the few new ones by state (revision 0009)
    nights = set(s.scalars(select(Frame.night).where(
        Frame.telescope == telescope, Frame.kind == kind,
        Frame.state.in_(("ingested", "waiting")))).all()) - {None}
    needed = [changed.get(need, []) for need in STACKERS[kind].needs]
    if any(n is None for n in needed):
        return None
    days = int(cfg.reduction.max_master_age_days) + 2  # whole days either side, and a margin
    try:
        near = [Frame.night.between(_shift(n, -days), _shift(n, days))
                for n in sorted(set().union(*needed))]
    except ValueError:  # a night that is not a date: look at every night
        return None
    for lo in range(0, len(near), 200):
        nights |= set(s.scalars(select(Frame.night).where(
            Frame.telescope == telescope, Frame.kind == kind, or_(*near[lo:lo + 200]))).all())
    return sorted(nights - {None})
