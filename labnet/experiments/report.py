"""An experiment's files: ``DIR/NAME.json`` (everything), ``DIR/NAME.csv`` (its points),
``DIR/NAME.png`` (its plot, when matplotlib is installed: the ``plots`` extra) and
``DIR/NAME.md`` (a short summary, ours beside the seeds')."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from labnet.experiments.base import Outcome

log = logging.getLogger(__name__)

PLOTS_HINT = "no plot: matplotlib is not installed; for plots: pip install '.[plots]'"


@dataclass(frozen=True, slots=True)
class Written:
    json: Path
    csv: Path
    markdown: Path
    png: Path | None  # None: matplotlib is missing (``plot_note`` says how to get it)
    plot_note: str | None

    def paths(self) -> list[Path]:
        return [p for p in (self.json, self.csv, self.png, self.markdown) if p is not None]


def write(outcome: Outcome, directory: Path, command: str) -> Written:
    """Write the four files (three without matplotlib) into ``directory``, made if missing;
    ``command`` is what reproduces the run, for the summary."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / outcome.name
    png, note = _plot(outcome, stem.with_suffix(".png"))
    written = Written(
        stem.with_suffix(".json"), stem.with_suffix(".csv"), stem.with_suffix(".md"), png, note
    )
    with written.csv.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=outcome.columns)
        writer.writeheader()
        writer.writerows(outcome.rows)
    document = outcome.as_json() | {"files": [p.name for p in written.paths()]}
    written.json.write_text(json.dumps(document, indent=1) + "\n")
    written.markdown.write_text(_markdown(outcome, written, command))
    return written


def _plot(outcome: Outcome, path: Path) -> tuple[Path | None, str | None]:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        from matplotlib.figure import Figure
    except ImportError:
        log.info("matplotlib is not installed: %s has no plot", outcome.name)
        return None, PLOTS_HINT
    figure = Figure(figsize=(11, 5), layout="constrained")
    outcome.plot(figure)
    figure.savefig(path, dpi=110)
    return path, None


def _markdown(outcome: Outcome, written: Written, command: str) -> str:
    lines = [
        f"# {outcome.name}: {outcome.title}",
        "",
        f"`{command}` on the {outcome.backend} backend, {outcome.wall_seconds:.1f} s of wall "
        "clock.",
        "",
        outcome.summary,
        "",
    ]
    if written.png is not None:
        lines += [f"![{outcome.name}]({written.png.name})", ""]
    else:
        lines += [f"({written.plot_note})", ""]
    lines += [f"- {note}" for note in outcome.notes]
    lines += ["", "Files: " + ", ".join(f"`{p.name}`" for p in written.paths()), ""]
    return "\n".join(lines)
