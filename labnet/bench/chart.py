"""``labnet bench chart``: how fast a sequence chart is drawn from captures, against the plain
decode of the same files in the same run.

The captures are those of ``labnet demo dserver`` (seed 1: a 1 MB download handed m1 -> m2 ->
m3, written per link as the hub would, each packet twice): ``chart_records_per_s`` reads them,
merges the links' records into hops, labels every packet (the member channel opened with the
group key) and collapses the data; the baseline ``decode_records_per_s`` reads them and makes
``mip6 decode``'s line for each record. ``svg_ms`` and ``text_ms`` render the finished chart.
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from labnet import demo_dserver
from labnet.chart import topology_names
from labnet.sim_capture import write_link_captures
from mip6.chart import svg, text
from mip6.chart.read import chart_captures
from mip6.dissect import dissect, summary_line
from mip6.wire.pcap import Ipv6Frame, extract_ipv6, read_capture_file


def _best(seconds: float, operation: Any) -> float:
    """The shortest of the runs of ``operation`` that fit in ``seconds`` (at least three)."""
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        operation()
        times.append(time.perf_counter() - start)
    return min(times)


def run(seconds: float = 4.0) -> dict[str, Any]:
    played = demo_dserver.play(1)
    names = topology_names(played.lab.topology)
    with tempfile.TemporaryDirectory(prefix="labnet-bench-chart-") as directory:
        paths = list(write_link_captures(played.lab.net.trace, Path(directory)).values())
        records = sum(1 for path in paths for _ in read_capture_file(path))

        def chart() -> object:
            return chart_captures(paths, names, played.lab.secret)

        def decode() -> None:
            for path in paths:
                for frame in read_capture_file(path):
                    extracted = extract_ipv6(frame.link_type, frame.data)
                    assert isinstance(extracted, Ipv6Frame)
                    summary_line(dissect(extracted.packet))

        chart_s = _best(seconds / 2, chart)
        decode_s = _best(seconds / 4, decode)
        drawn = chart_captures(paths, names, played.lab.secret)
    svg_s = _best(seconds / 8, lambda: svg.render(drawn))
    text_s = _best(seconds / 8, lambda: text.render(drawn))
    return {
        "records": records,
        "chart_items": len(drawn.items),
        "chart_records_per_s": round(records / chart_s),
        "decode_records_per_s": round(records / decode_s),
        "chart_vs_decode": round(decode_s / chart_s, 2),
        "svg_ms": round(svg_s * 1000, 2),
        "text_ms": round(text_s * 1000, 2),
        "python": platform.python_version(),
    }
