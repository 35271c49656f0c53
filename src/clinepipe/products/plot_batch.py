"""The plots of one page, drawn together when the page is complete.

A page (the morning report) asks for its plots as it is written and gets a placeholder for
each; :meth:`PlotBatch.fill` draws them all at once, through a ``mapper`` when the caller has
worker processes: the run's pool (its local workers, or an existing Dask cluster's) draws the
report's plots in parallel, in processes that imported matplotlib while the run's last steps
ran (matplotlib's import and four plots cost the run's own process over a second). Drawn
here, one after the other, without one. The jobs travel to the workers pickled.
"""

from __future__ import annotations

from collections.abc import Callable


class PlotBatch:
    """Plots requested with :meth:`add` (a function returning text, e.g. base64 PNG, and its
    arguments, all picklable), drawn by :meth:`fill`.

    Parameters
    ----------
    mapper : callable, optional
        ``mapper(func, items)`` yielding ``func(item)`` in the items' order (e.g. a pool's
        ``map``); None draws them here.
    """

    def __init__(self, mapper: Callable | None = None):
        self._jobs: list[tuple[Callable, tuple]] = []
        self._mapper = mapper

    def add(self, func: Callable, *args) -> str:
        """The placeholder that :meth:`fill` replaces with ``func(*args)``."""
        self._jobs.append((func, args))
        return _token(len(self._jobs) - 1)

    def fill(self, text: str) -> str:
        """``text`` with every placeholder replaced by its plot (all drawn now)."""
        if not self._jobs:
            return text
        drawn = (self._mapper(draw, self._jobs) if self._mapper is not None
                 else map(draw, self._jobs))
        for k, result in enumerate(drawn):
            text = text.replace(_token(k), result)
        self._jobs = []
        return text


def draw(job: tuple[Callable, tuple]) -> str:
    """One job of a :class:`PlotBatch`: ``func(*args)``."""
    func, args = job
    return func(*args)


def warm_plotting() -> None:
    """Import what the plots need (matplotlib with its Agg backend, astropy's times), so a
    process that will draw them pays that while it would be idle.

    Only the run's worker processes call it, which draw PNGs and never show a docstring:
    matplotlib's ``artist.kwdoc`` gives "" there. At import, matplotlib writes the docstring
    of every Artist class's ``set()`` (and of the functions taking an artist's properties)
    by inspecting all of its setters: ~40 % of importing pyplot (0.60-0.77 -> 0.36-0.54
    CPU-s per worker). Nothing else reads those docstrings; the plots are the same bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.artist

    matplotlib.artist.kwdoc = _no_kwdoc  # before the Artist subclasses are defined
    import matplotlib.pyplot  # noqa: F401
    from astropy.time import Time

    Time(2460000.5, format="jd").to_datetime()


def _no_kwdoc(artist) -> str:
    return ""


def _token(k: int) -> str:
    return f"\x00plot {k}\x00"
