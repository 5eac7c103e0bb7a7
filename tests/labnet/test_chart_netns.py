"""The roaming scenario on the netns backend charted from the hub's real captures: every
forwarded packet is in two of them at one timestamp, told apart by the Hop Limit; the chart
draws it once, from its sender to its receiver, and tshark agrees on every Mobility Header."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from labnet import demo_netns
from labnet.chart import captures_in, topology_names
from labnet.topology import builtin
from mip6.chart.model import Message, Run
from mip6.chart.read import chart_captures
from tests.chart import oracle
from tests.runtime.netns import require_root

pytestmark = pytest.mark.netns


def test_netns_demo_chart_from_hub_captures(tmp_path: Path, monkeypatch, tshark: str) -> None:  # type: ignore[no-untyped-def]
    require_root()
    monkeypatch.setenv("LABNET_STATE_DIR", str(tmp_path))
    name = f"h17b-chart-{os.getpid()}"  # the namespaces are NAME-NODE
    out = io.StringIO()
    text_chart = tmp_path / "chart.txt"
    assert demo_netns.run(out, name=name, chart=text_chart) == 4
    assert f"wrote {text_chart}" in out.getvalue()
    paths = captures_in([tmp_path / name / "pcap"])
    chart, _ = chart_captures(paths, topology_names(builtin("roaming")))
    assert set(chart.lifelines) >= {"ha", "cn", "mn"}
    arrows = [(m.sender, m.receiver, m.text) for m in chart.items if isinstance(m, Message)]
    home = [(s, r) for s, r, t in arrows if t.startswith("BU ") and t.endswith(" A H")]
    assert home == [("mn", "ha")] * 3  # at up, from visited2, from home (lifetime 0)
    assert ("mn", "ha") in [(s, r) for s, r, t in arrows if t.startswith("tunnel: HoTI")]
    assert ("ha", "cn") in [(s, r) for s, r, t in arrows if t.startswith("HoTI")]
    runs = [(r.first, r.second, r.name) for r in chart.items if isinstance(r, Run)]
    assert ("cn", "mn", "ICMP6 echo route-optimized") in runs
    assert ("ha", "mn", "ICMP6 echo in tunnel") in runs
    links = {path.stem: path for path in paths}
    assert sorted(oracle.ours(chart)) == sorted(oracle.theirs(links, tshark))
    assert text_chart.read_text().splitlines()[0].split()[:3] == ["ha", "cn", "mn"]
