"""The roaming scenario on the netns backend charted from the hub's real captures: every
forwarded packet is in two of them at one timestamp, told apart by the Hop Limit; the chart
draws it once, from its sender to its receiver, and tshark agrees on every Mobility Header."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labnet import cli, demo_netns
from labnet.chart import captures_in, topology_names
from labnet.topology import builtin
from mip6.chart.model import Message, Run
from mip6.chart.read import chart_captures
from tests.chart import oracle
from tests.conftest import require
from tests.labnet.netns_lab import netns_lab
from tests.runtime.netns import require_root

pytestmark = pytest.mark.netns
SVG = "{http://www.w3.org/2000/svg}"
CONTACT = "2001:db8:1::80"
MEMBERS = ("m1", "m2", "m3")


def test_netns_demo_chart_from_hub_captures(tmp_path: Path, monkeypatch, tshark: str) -> None:  # type: ignore[no-untyped-def]
    require_root()
    monkeypatch.setenv("LABNET_STATE_DIR", str(tmp_path))
    name = f"h17b-chart-{os.getpid()}"  # the namespaces are NAME-NODE
    out = io.StringIO()
    text_chart = tmp_path / "chart.txt"
    assert demo_netns.run(out, name=name, chart=text_chart) == 4
    assert f"wrote {text_chart}" in out.getvalue()
    paths = captures_in([tmp_path / name / "pcap"])
    chart = chart_captures(paths, topology_names(builtin("roaming")))
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


def test_netns_dserver_lab_chart_opens_member_channel(tmp_path: Path, tshark: str) -> None:
    """``labnet chart --name LAB`` on a running distributed server: the hub's captures flushed
    and merged, the member channel opened with the group key from a member's configuration,
    while a stock curl's download is handed from member to member every 2 MB."""
    require_root()
    require(shutil.which("curl") is not None, "needs curl (apt-get install curl)")
    with netns_lab(tmp_path, "dserver", "h17b-d") as lab:
        argv = ["curl", "-sS", "-g", "--max-time", "3", "-o", "/dev/null", f"http://[{CONTACT}]/"]
        curl = subprocess.run(lab.exec_argv("client", argv), capture_output=True, text=True)
        assert curl.returncode in (0, 28), curl.stderr  # 28: the time is up, as meant
        out = tmp_path / "chart.svg"
        assert cli.main(["chart", "--name", lab.name, "--out", str(out)]) == 0
        directory, topology = lab.directory, lab.topology
    # the captures once the hub has closed them: tshark and we read the same packets
    paths = captures_in([directory / "pcap"])
    chart = chart_captures(paths, topology_names(topology), None)
    after = tmp_path / "after.txt"  # the lab's directory, left by labnet down, keeps its key
    assert cli.main(["chart", str(directory), "--topology", "dserver", "--out", str(after)]) == 0
    assert "INIT #" in after.read_text()
    texts = [element.text or "" for element in ET.parse(out).getroot().iter(f"{SVG}text")]
    lifelines = texts[: texts.index("time (s)")]
    order = ["ha", *MEMBERS, "client"]  # members the policy never picked have no lifeline
    assert {"ha", "m1", "client"} <= set(lifelines)
    named = [name for name in lifelines if name in order]
    assert named == [name for name in order if name in named]
    # a packet to the contact address seen leaving the client's link but not arriving (the
    # curl cut off by its time, the lab taken down) is drawn to the address itself
    assert set(lifelines) - set(named) <= {str(CONTACT)}
    inits = [t for t in texts if t.startswith("INIT #")]
    dones = sum(t.startswith("DONE #") for t in texts)
    # the captures are read while the download runs: the last handoff may not be done yet
    # (an acceptor's DONE waits for its buddy's replica)
    assert inits and len(inits) - 1 <= dones <= len(inits)
    assert any(t.startswith("tunnel: HoTI cookie") for t in texts)
    assert "give the group key" in chart.notes[0]  # the same captures without the key
    links = {path.stem: path for path in paths}
    assert sorted(oracle.ours(chart)) == sorted(oracle.theirs(links, tshark))
