"""A chart as SVG: a lifeline per node, time downwards, an arrow per message and a thick
grey arrow per run of data, built with :mod:`xml.etree.ElementTree` (so it is well-formed and
every label escaped, and no dependency is needed).

Time runs down the page but is not to one scale: a row is at least :data:`ROW_MIN` pixels
below the one before (messages a microsecond apart stay readable) and at most :data:`ROW_MAX`
(a quiet minute does not take a metre); between rows time is linear at :data:`PX_PER_SECOND`,
so an arrow's slope shows its one-way latency where the gaps allow. A run of data is a level
arrow at its first packet over a shaded band that lasts until its last packet arrived. Each
row's time since the first packet is written in the left margin; a gap shortened by the cap is
drawn as a dashed break.
"""

from __future__ import annotations

import bisect
import xml.etree.ElementTree as ET
from typing import Final

from mip6.chart.label import Kind
from mip6.chart.model import Chart, Message, Run

SVG_NAMESPACE: Final = "http://www.w3.org/2000/svg"
ROW_MIN: Final = 24.0
ROW_MAX: Final = 90.0
PX_PER_SECOND: Final = 2000.0
LANE: Final = 170.0  # pixels between lifelines
LEFT: Final = 100.0  # the time margin
TOP: Final = 60.0
LABEL_ROOM: Final = 320.0  # right of the last lifeline, for labels of arrows that end there
COLOURS: Final = {
    Kind.MOBILITY: "#1f4e9c",
    Kind.CHANNEL: "#7b2d8b",
    Kind.CONTROL: "#b35900",
    Kind.DATA: "#8a8a8a",
}


class _TimeAxis:
    """Rows to y, and time (ns) to y: each row (an item, in order) is a knot; between knots
    time is linear, past the last at :data:`PX_PER_SECOND` (capped at :data:`ROW_MAX`). Rows
    at one time stack :data:`ROW_MIN` apart; a time among them maps to the lowest."""

    def __init__(self, times: list[int]) -> None:
        self.times: list[int] = []
        self.rows: list[float] = []
        self.breaks: list[tuple[float, float]] = []  # (y, seconds left out)
        y = TOP + ROW_MIN
        for time in times:
            if self.times:
                seconds = (time - self.times[-1]) / 1e9
                step = seconds * PX_PER_SECOND
                if step > ROW_MAX:
                    self.breaks.append((y + ROW_MAX / 2, seconds))
                y += min(max(step, ROW_MIN), ROW_MAX)
            self.times.append(time)
            self.rows.append(y)

    def y(self, time: int) -> float:
        index = bisect.bisect_right(self.times, time) - 1
        if index < 0:
            return self.rows[0] if self.rows else TOP
        if index == len(self.times) - 1:
            return self.rows[-1] + min((time - self.times[-1]) / 1e9 * PX_PER_SECOND, ROW_MAX)
        t0, t1 = self.times[index], self.times[index + 1]
        y0, y1 = self.rows[index], self.rows[index + 1]
        return y0 + (y1 - y0) * (time - t0) / (t1 - t0)

    @property
    def bottom(self) -> float:
        return (self.rows[-1] if self.rows else TOP) + ROW_MAX


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: object) -> ET.Element:
    element = ET.SubElement(
        parent, tag, {k.rstrip("_").replace("_", "-"): str(v) for k, v in attributes.items()}
    )
    if text is not None:
        element.text = text
    return element


def _markers(svg: ET.Element) -> None:
    defs = _sub(svg, "defs")
    for kind, colour in COLOURS.items():
        marker = _sub(
            defs,
            "marker",
            id=f"head-{kind.value}",
            viewBox="0 0 10 10",
            refX=10,
            refY=5,
            markerUnits="userSpaceOnUse",  # the same head on a thin arrow and a thick run
            markerWidth=9,
            markerHeight=9,
            orient="auto-start-reverse",
        )
        _sub(marker, "path", d="M 0 0 L 10 5 L 0 10 z", fill=colour)


def render(chart: Chart) -> str:
    """The SVG document, as text."""
    axis = _TimeAxis([item.start_ns for item in chart.items])
    x = {name: LEFT + LANE / 2 + index * LANE for index, name in enumerate(chart.lifelines)}
    width = LEFT + LANE * len(chart.lifelines) + LABEL_ROOM
    height = axis.bottom + 20 + 16 * len(chart.notes)
    ET.register_namespace("", SVG_NAMESPACE)
    svg = ET.Element(
        "svg",
        {
            "xmlns": SVG_NAMESPACE,
            "width": f"{width:.0f}",
            "height": f"{height:.0f}",
            "viewBox": f"0 0 {width:.0f} {height:.0f}",
            "font-family": "DejaVu Sans Mono, monospace",
            "font-size": "11",
        },
    )
    _sub(svg, "title", "Message sequence chart")
    _markers(svg)
    _sub(svg, "rect", x=0, y=0, width=f"{width:.0f}", height=f"{height:.0f}", fill="white")
    lifelines = _sub(svg, "g", class_="lifelines")
    for name, at in x.items():
        _sub(lifelines, "line", x1=at, y1=TOP, x2=at, y2=axis.bottom, stroke="#bbbbbb")
        _sub(
            lifelines, "rect", x=at - 70, y=10, width=140, height=26, fill="#f2f2f2", stroke="#555"
        )
        _sub(lifelines, "text", name, x=at, y=28, text_anchor="middle", font_weight="bold")
    _sub(svg, "text", "time (s)", x=8, y=28, fill="#555")
    _legend(svg, LEFT + LANE * len(chart.lifelines) + 10)
    breaks = _sub(svg, "g", class_="breaks")
    for y, seconds in axis.breaks:
        _sub(
            breaks,
            "line",
            x1=LEFT,
            y1=y,
            x2=width - 10,
            y2=y,
            stroke="#cccccc",
            stroke_dasharray="4 4",
        )
        _sub(breaks, "text", f"{seconds:.3f} s later", x=8, y=y + 4, fill="#999")
    rows = _sub(svg, "g", class_="items")
    for row, item in zip(axis.rows, chart.items, strict=True):
        _item(rows, chart, (row, max(row, axis.y(item.end_ns))), x, item)
    for index, note in enumerate(chart.notes):
        _sub(svg, "text", f"note: {note}", x=8, y=axis.bottom + 16 * (index + 1), fill="#555")
    return ET.tostring(svg, encoding="unicode", xml_declaration=True) + "\n"


LEGEND: Final = {
    Kind.MOBILITY: "Mobile IPv6 signalling",
    Kind.CHANNEL: "member channel",
    Kind.CONTROL: "TCP SYN/FIN/RST, ICMPv6 errors",
    Kind.DATA: "data (a run)",
}


def _legend(svg: ET.Element, x: float) -> None:
    """What the colours mean, right of the last lifeline's box."""
    legend = _sub(svg, "g", class_="legend")
    for row, (kind, words) in enumerate(LEGEND.items()):
        y = 14 + 12 * row
        width = 4 if kind is Kind.DATA else 1.5
        _sub(legend, "line", x1=x, y1=y, x2=x + 24, y2=y, stroke=COLOURS[kind], stroke_width=width)
        _sub(legend, "text", words, x=x + 30, y=y + 4, fill=COLOURS[kind])


def _item(
    parent: ET.Element,
    chart: Chart,
    ys: tuple[float, float],
    x: dict[str, float],
    item: Message | Run,
) -> None:
    """One row: the arrow from ``ys[0]`` (its row) down to ``ys[1]`` (its arrival)."""
    if isinstance(item, Message):
        sender, receiver, kind, via = item.sender, item.receiver, item.kind, item.via
        both = False
    else:
        sender, receiver, kind, via = item.first, item.second, Kind.DATA, ()
        both = item.both_ways
    y0, y1 = ys
    colour = COLOURS[kind]
    group = _sub(parent, "g", class_=f"item {kind.value}")
    seconds = (item.start_ns - chart.start_ns) / 1e9
    _sub(group, "title", f"{seconds:.6f} s {sender} -> {receiver}: {item.text}")
    _sub(group, "text", f"{seconds:.4f}", x=8, y=y0 + 4, fill="#555")
    x0, x1 = x[sender], x[receiver]
    if x0 == x1:  # both ends on one lifeline: a vantage point saw a packet to itself
        _sub(group, "circle", cx=x0, cy=y0, r=4, fill=colour)
        _sub(group, "text", item.text, x=x0 + 8, y=y0 - 4, fill=colour)
        return
    if isinstance(item, Run):
        # a run: its span of time shaded between the two lifelines, a level arrow at its start
        # (one arrow cannot slope for packets that left and arrived at many times)
        _sub(
            group,
            "rect",
            x=f"{min(x0, x1):.1f}",
            y=f"{y0:.1f}",
            width=f"{abs(x1 - x0):.1f}",
            height=f"{y1 - y0:.1f}",
            fill=colour,
            fill_opacity=0.15,
        )
        y1 = y0
    line = _sub(
        group,
        "line",
        x1=f"{x0:.1f}",
        y1=f"{y0:.1f}",
        x2=f"{x1:.1f}",
        y2=f"{y1:.1f}",
        stroke=colour,
        stroke_width=4 if kind is Kind.DATA else 1.5,
        marker_end=f"url(#head-{kind.value})",
    )
    if both:
        line.set("marker-start", f"url(#head-{kind.value})")
    for name in via:
        at = x[name]
        _sub(
            group,
            "circle",
            cx=at,
            cy=f"{y0 + (y1 - y0) * (at - x0) / (x1 - x0):.1f}",
            r=3,
            fill=colour,
        )
    rightwards = x1 > x0
    _sub(
        group,
        "text",
        item.text,
        x=f"{x0 + (6 if rightwards else -6):.1f}",
        y=f"{y0 - 4:.1f}",
        fill=colour,
        text_anchor="start" if rightwards else "end",
    )
