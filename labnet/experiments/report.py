"""An experiment's files: ``DIR/NAME.json`` (everything), ``DIR/NAME.csv`` (its points),
``DIR/NAME.png`` (its plot, when matplotlib is installed: the ``plots`` extra) and
``DIR/NAME.md`` (a short summary, ours beside the seeds'); and ``labnet report``'s
``DIR/report.md``, every experiment's summary and plot in one document."""

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


@dataclass(frozen=True, slots=True)
class Entry:
    """One experiment in a report: what it measured and the files it wrote, with the
    command that repeats it; or, ``outcome`` None, why it did not run (``skipped``)."""

    name: str
    command: str
    outcome: Outcome | None = None
    written: Written | None = None
    skipped: str | None = None


def write_report(entries: list[Entry], directory: Path, command: str, backend: str) -> Path:
    """``directory/report.md``: every entry's summary, plot and files in one document (the
    entries' own files are written already, beside it); its path."""
    ran = [e for e in entries if e.outcome is not None]
    wall = sum(e.outcome.wall_seconds for e in ran if e.outcome is not None)
    lines = [
        "# The seeds' experiments, reproduced",
        "",
        f"`{command}`: every experiment on the {backend} backend with the report's short "
        f"defaults, {wall:.0f} s of wall clock in all. Each section is the experiment's own "
        "summary (`NAME.md` beside this file), ours beside the seeds' numbers, then its plot; "
        "the command under each heading repeats it alone, and without `--runs` it runs with "
        "its full defaults (`labnet experiment list`).",
        "",
    ]
    lines += [
        f"- [{e.name}](#{e.name})" + (" (not run)" if e.outcome is None else "") for e in entries
    ]
    for entry in entries:
        lines += ["", f'<a id="{entry.name}"></a>', ""]
        if entry.outcome is None or entry.written is None:
            lines += [f"## {entry.name}: not run", "", entry.skipped or "", ""]
            continue
        outcome, written = entry.outcome, entry.written
        lines += [
            f"## {outcome.name}: {outcome.title}",
            "",
            f"`{entry.command}`, {outcome.wall_seconds:.1f} s of wall clock.",
            "",
            outcome.summary,
            "",
        ]
        if written.png is not None:
            lines += [f"![{outcome.name}]({written.png.name})", ""]
        else:
            lines += [f"({written.plot_note})", ""]
        lines += [f"- {note}" for note in outcome.notes]
        lines += ["", "Files: " + ", ".join(f"[`{p.name}`]({p.name})" for p in written.paths())]
    path = directory / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
