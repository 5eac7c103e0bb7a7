"""A chart as text for a terminal: a column per lifeline, a row per message or run, time in
seconds from the first packet down the left, the label to the right of the lifelines.

``-`` draws a signalling arrow, ``=`` a run of data (``<`` and ``>`` both ends when it flows both
ways); ``+`` marks a lifeline a packet was seen passing through (a router's link).
"""

from __future__ import annotations

from typing import Final

from mip6.chart.model import Chart, Message, Run

COLUMN: Final = 12  # characters per lifeline
TIME_WIDTH: Final = 10


def _row(
    chart: Chart, sender: str, receiver: str, via: tuple[str, ...], line: str, both: bool
) -> str:
    cells = [" "] * (COLUMN * len(chart.lifelines))
    column = {name: index * COLUMN + COLUMN // 2 for index, name in enumerate(chart.lifelines)}
    for position in column.values():
        cells[position] = "|"
    a, b = column[sender], column[receiver]
    if a == b:
        cells[a] = "o"
        return "".join(cells)
    low, high = min(a, b), max(a, b)
    for position in range(low + 1, high):
        cells[position] = line
    if b > a or both:
        cells[high - 1] = ">"
    if b < a or both:
        cells[low + 1] = "<"
    for name in via:
        cells[column[name]] = "+"
    return "".join(cells)


def _seconds(chart: Chart, ns: int) -> str:
    return f"{(ns - chart.start_ns) / 1e9:{TIME_WIDTH}.4f}"


def render(chart: Chart) -> str:
    header = (
        " " * TIME_WIDTH
        + "  "
        + "".join(f"{name[: COLUMN - 1]:^{COLUMN}}" for name in chart.lifelines)
    )
    lines = [header.rstrip()]
    if any(len(name) >= COLUMN for name in chart.lifelines):  # cut in the header: say them whole
        lines.insert(0, "lifelines: " + " | ".join(chart.lifelines))
    for item in chart.items:
        if isinstance(item, Message):
            row = _row(chart, item.sender, item.receiver, item.via, "-", both=False)
            text = item.text
        else:
            assert isinstance(item, Run)
            row = _row(chart, item.first, item.second, (), "=", both=item.both_ways)
            text = item.text
            if item.end_ns > item.start_ns and item.packets > 1:
                text += f" (over {(item.end_ns - item.start_ns) / 1e9:.3f} s)"
        lines.append(f"{_seconds(chart, item.start_ns)}  {row}  {text}")
    lines.extend(f"note: {note}" for note in chart.notes)
    return "\n".join(lines) + "\n"
