"""``labnet demo --backend netns``: the roaming scenario of :mod:`labnet.demo` with real kernels.

The built-in ``roaming`` topology runs on the ``netns`` backend (root): a network namespace and a
``mip6 run`` daemon per node, the hub emulating every link. The correspondent's stock ``ping``
pings the mobile node's home address, where the mobile node's kernel answers; the mobile node
moves with ``labnet move``. The timeline is read back from the hub's captures: each packet a
node sent, stamped when it reached the hub, with the same reasons as the ``sim`` demo. (Every
forwarded packet is in two captures, the link it came by and the link it left by; a record is
the sender's when the hub routes its destination elsewhere.)
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from labnet.chart import captures_in, render, topology_names
from labnet.demo import why
from labnet.hub.router import Router
from labnet.netns import NetnsLab
from labnet.topology import builtin
from mip6.chart.read import chart_captures
from mip6.dissect import dissect, summary_line
from mip6.wire.pcap import read_capture_file

SETTLE = 1.5  # seconds after an action before the next step: signalling takes a few RTTs
_RTT = re.compile(r"time=([0-9.]+) ms")


class Timeline:
    """The packets the lab's nodes sent, read from the hub's captures, each printed once."""

    def __init__(self, lab: NetnsLab, out: TextIO, start_ns: int) -> None:
        self.lab = lab
        self.out = out
        self.start_ns = start_ns
        self.seen: dict[str, int] = {}  # link -> records already read

    def narrate(self) -> None:
        links = list(self.lab.state["hub"]["links"])
        router = Router(links)  # the hub's table now, to tell a record's direction
        for prefix, link in self.lab.hub_query("routes")["routes"].items():
            router.add_route(prefix, link)
        sent: list[tuple[int, str, str, bytes]] = []
        for link in links:
            frames = list(read_capture_file(self.lab.pcap(link)))
            for frame in frames[self.seen.get(link, 0) :]:
                data = frame.data
                out = router.lookup(data[24:40]) if len(data) >= 40 else None
                receiver = "?" if out is None else links[out]
                if receiver != link:  # not a record of the hub delivering to this link
                    sent.append((frame.timestamp_ns, link, receiver, data))
            self.seen[link] = len(frames)
        for stamp, sender, receiver, data in sorted(sent, key=lambda item: item[0]):
            summary = summary_line(dissect(data))
            at = (stamp - self.start_ns) / 1e9
            self.out.write(f"  {at:7.3f}  {sender:>5} -> {receiver:<5}  {summary}\n")
            reason = why(summary)
            if reason:
                self.out.write(f"  {'':7}  {'':14}  . {reason}\n")


def run(out: TextIO, name: str | None = None, chart: Path | None = None) -> int:
    """Run the scenario; returns how many of the four pings were answered. ``chart``: where
    to write the run's sequence chart from the hub's captures (SVG if it ends in ``.svg``)."""
    topology = builtin("roaming")
    home = topology.nodes["mn"].home_address
    assert home is not None
    out.write("labnet demo: topology 'roaming' on the netns backend (real kernels, wall clock)\n")
    start_ns = time.time_ns()
    lab = NetnsLab.up("roaming", name or f"demo-{os.getpid()}")
    answered = 0
    try:
        timeline = Timeline(lab, out, start_ns)

        def step(title: str, action: Callable[[], None]) -> None:
            timeline.narrate()
            out.write(f"\n[{(time.time_ns() - start_ns) / 1e9:6.2f} s] {title}\n")
            action()
            time.sleep(SETTLE)

        def ping() -> None:
            nonlocal answered
            result = subprocess.run(
                lab.exec_argv("cn", ["ping", "-6", "-c", "1", "-W", "3", str(home)]),
                capture_output=True,
                text=True,
            )
            rtt = _RTT.search(result.stdout)
            answered += result.returncode == 0
            out.write(
                f"  ping {home}: {'answered in ' + rtt.group(1) + ' ms' if rtt else 'no answer'}\n"
            )

        step(
            "The mobile node is away, on visited1: `labnet up` waited for its home registration "
            "(RFC 3775 11.7.1)",
            lambda: None,
        )
        step(
            "The correspondent's kernel pings the home address: the home agent intercepts and "
            "tunnels it; the answer comes back through the reverse tunnel and the mobile node "
            "starts route optimization (11.7.2). Emulated round trip 80 ms",
            ping,
        )
        step(
            "Ping again: straight to the care-of address with a type 2 routing header, the "
            "answer with a Home Address option. Emulated round trip 40 ms",
            ping,
        )
        step(
            "`labnet move mn visited2`: a new care-of address, a new home registration, a new "
            "care-of test for the correspondent (11.5, 11.7.2)",
            lambda: lab.move("mn", "visited2"),
        )
        step("Ping from visited2. Emulated round trip 60 ms", ping)
        step(
            "`labnet move mn home`: the mobile node deregisters and deletes the correspondent's "
            "binding from home (11.5.4)",
            lambda: lab.move("mn", "home"),
        )
        step("Ping at home: plain IPv6. Emulated round trip 30 ms", ping)
        timeline.narrate()
    finally:
        lab.down()
    out.write(f"\n{answered} of 4 pings answered; captures were in {lab.directory}/pcap.\n")
    if chart is not None:
        paths = captures_in([lab.directory / "pcap"])
        drawn = chart_captures(paths, topology_names(topology))
        out.write(render(drawn, chart))
    return answered
