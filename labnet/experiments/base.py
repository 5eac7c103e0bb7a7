"""What every experiment is and returns: the registry (:mod:`labnet.experiments`) lists
:class:`Experiment` values, the runner hands each one :class:`Settings` and writes the
:class:`Outcome` it gets back (:mod:`labnet.experiments.report`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)


class BackendUnavailable(Exception):
    """The experiment cannot run on the backend asked for (yet); the text says what can."""


def _log_progress(line: str) -> None:
    log.info("%s", line)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Settings:
    backend: str = "sim"
    runs: int | None = None  # None: the experiment's default
    seed: int = 1
    progress: Callable[[str], None] = _log_progress  # a line per point measured
    every: int = 1  # measure every Nth point of each sweep (:func:`thin`)
    # netns backend: the labs' names start with it (their namespaces are ``NAME-NODE``)
    lab_prefix: str = "xp"


def thin(points: Sequence[T], every: int) -> tuple[T, ...]:
    """Every ``every``-th of a sweep's points, the last one always among them (a short run
    still spans the whole range)."""
    kept = tuple(points[::every])
    return kept if kept[-1] == points[-1] else (*kept, points[-1])


@dataclass(slots=True)
class Outcome:
    """One run of an experiment. ``rows`` are its points (the CSV, one dict per row with the
    keys ``columns``); ``results`` the derived figures (fits, comparisons) for the JSON;
    ``summary`` Markdown with ours and the seeds' numbers side by side; ``plot`` draws the
    figure on an empty matplotlib Figure (matplotlib is imported by the caller, only when
    installed)."""

    name: str
    title: str
    backend: str
    parameters: dict[str, Any]
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    results: dict[str, Any]
    summary: str
    plot: Callable[[Figure], None]
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "experiment": self.name,
            "title": self.title,
            "backend": self.backend,
            "wall_seconds": round(self.wall_seconds, 2),
            "parameters": self.parameters,
            "results": self.results,
            "rows": self.rows,
            "notes": self.notes,
        }


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    title: str  # one line, for ``labnet experiment list``
    run: Callable[[Settings], Outcome]
    default_runs: int
    runs_mean: str  # what one of ``--runs`` is
    default_wall_time: str  # measured on the sim backend, 2-core machine ("" without sim)
    report_runs: int  # ``labnet report``'s short default (on netns at most ``netns_runs``)
    backends: tuple[str, ...] = ("sim",)
    # measured on the netns backend with ``netns_runs``, 2-core machine ("" without netns)
    netns_wall_time: str = ""
    # the netns backend's default ``--runs`` (real clocks: each sample costs real seconds)
    netns_runs: int | None = None
    netns_runs_mean: str = ""  # what one of ``--runs`` is on netns, when not ``runs_mean``
    sweeps: bool = True  # False: ``Settings.every`` changes nothing (no sweep to thin)

    def runs(self, settings: Settings) -> int:
        """``--runs``, or this experiment's default on ``settings.backend``."""
        if settings.runs:
            return settings.runs
        if settings.backend == "netns" and self.netns_runs is not None:
            return self.netns_runs
        return self.default_runs

    def short_runs(self, backend: str) -> int:
        """``labnet report``'s ``--runs`` on ``backend``: its short default."""
        if backend == "netns" and self.netns_runs is not None:
            return min(self.report_runs, self.netns_runs)
        return self.report_runs
