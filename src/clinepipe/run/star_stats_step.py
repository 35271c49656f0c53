"""The run's ``star_stats`` step, beside the steps after it.

On a long archive the step reads the whole light curves of the night's stars (10^5-10^6
points) and searches the periods of the variable ones among them: most of what a new night's
run costs more on ten years of archive than on an empty database (``bench/bench_archive.py``).
Nothing after it reads ``star_stats`` or ``star_periods`` (the colour terms, the transformed
magnitudes, the AAVSO files, the transits and the morning report read measurements and
frames), and nothing after it changes a measurement or a frame's QC flags. So
:func:`start_star_stats` reads the stars to recompute (and their pending marks) and computes
their rows and periods in a thread of the run's process, while the run writes its reports;
:func:`finish_star_stats`, the run's last step, stores them in one transaction
(:func:`~clinepipe.variability.star_stats.store_update`).

A run killed before the last step stored nothing and cleared no mark: the next run computes
those stars again. A change another program commits meanwhile marks its stars again, and the
store clears only the marks it read. The thread reads through its own connection (SQLite in
WAL mode: a reader never waits for the run's writes); an in-memory SQLite database, one
connection shared by the whole process, is computed in the run's thread instead.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class StarStatsWork:
    """The update under way: what is recomputed, and the computation's result or error."""

    update: object
    result: object = None
    error: BaseException | None = None
    seconds: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)

    def compute(self, engine) -> None:
        from clinepipe.variability.star_stats import compute_update

        t0 = time.perf_counter()
        try:
            with engine.connect() as conn:
                self.result = compute_update(conn, self.update)
        except BaseException as exc:  # re-raised by finish_star_stats, in the run's thread
            self.error = exc
        finally:
            self.seconds = time.perf_counter() - t0
            self.done.set()


def start_star_stats(engine, exclude_qc, telescope: str, nights) -> StarStatsWork:
    """Read the stars to recompute and start computing their rows and periods."""
    from clinepipe.store.engines import is_memory
    from clinepipe.variability.star_stats import stars_to_update

    work = StarStatsWork(stars_to_update(engine, exclude_qc, telescope, nights))
    if not work.update.ids or is_memory(engine.url):
        work.compute(engine)
    else:
        # a daemon: Ctrl-C or a failed step ends the run without waiting for it
        threading.Thread(target=work.compute, args=(engine,), name="clinepipe-star-stats",
                         daemon=True).start()
    return work


def finish_star_stats(engine, work: StarStatsWork) -> int:
    """Wait for the computation, store its rows and periods, then search the period of any
    other variable star without one (after an upgrade, once each). Returns the number of stars
    recomputed."""
    from clinepipe.variability.star_stats import store_update, update_star_periods

    t0 = time.perf_counter()
    work.done.wait()
    waited = time.perf_counter() - t0
    if work.error is not None:
        raise work.error
    n = store_update(engine, work.update, work.result)
    searched = update_star_periods(engine, work.update.exclude_qc)
    log.info("variability statistics of %d star(s) recomputed in %.2f s (the run waited "
             "%.2f s for them); periods of %d variable star(s) searched", n, work.seconds,
             waited, len(work.result.periods) + searched)
    return n
