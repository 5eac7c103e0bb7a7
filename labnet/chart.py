"""``labnet chart``: a message sequence chart (:mod:`mip6.chart`) of a lab's captures, its
lifelines named after the topology's nodes, the member channel opened with the lab's group key.

Also what ``labnet demo --chart FILE`` and ``labnet demo dserver --chart FILE`` use: the
simulated run's packets are written as per-link captures (:mod:`labnet.sim_capture`) and
charted from those files, as a netns lab's would be.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from ipaddress import IPv6Address
from pathlib import Path

from labnet.nodes import care_of_for, mobile
from labnet.sim import SimLab
from labnet.sim_capture import write_link_captures
from labnet.topology import Topology
from mip6.chart import svg, text
from mip6.chart.model import Chart
from mip6.chart.names import Names
from mip6.chart.read import chart_captures, group_key_of


def topology_names(topology: Topology) -> Names:
    """Every address a node owns named after it: its own addresses and, for a mobile node, its
    home address and its care-of address on every other network. A distributed server's contact
    address is no one node's (it is the group's), so it keeps its address as its name."""
    known: dict[IPv6Address, str] = {}
    for spec in topology.nodes.values():
        for address in spec.addresses:
            known[address] = spec.name
        if mobile(spec):
            assert spec.home_address is not None
            known[spec.home_address] = spec.name
            for network in topology.networks.values():
                care_of = care_of_for(spec, network)
                if care_of is not None:
                    known[care_of] = spec.name
    return Names(known, list(topology.nodes))


def captures_in(paths: Sequence[Path]) -> list[Path]:
    """The capture files named: a directory stands for its ``*.pcap`` and ``*.pcapng``, a netns
    lab's directory (``STATE_DIR/LAB``, kept after ``labnet down``) for its ``pcap/``."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            folder = path / "pcap" if (path / "pcap").is_dir() else path
            found += sorted([*folder.glob("*.pcap"), *folder.glob("*.pcapng")])
        else:
            found.append(path)
    return found


def group_key_in(paths: Sequence[Path]) -> bytes | None:
    """The group key of the first member configuration (``NODE.yaml``, as a netns lab writes
    them) in the lab directories among ``paths``, if any; a configuration that is not a
    member's, or not a node's at all, is passed over."""
    from mip6.runtime.config import ConfigError

    for path in paths:
        if not (path / "pcap").is_dir():
            continue
        for config in sorted(path.glob("*.yaml")):
            try:
                return group_key_of(str(config))
            except ConfigError:
                continue
    return None


def render(chart: Chart, out: Path | None) -> str:
    """The chart as text, or as SVG written to ``out`` when it ends in ``.svg`` (then the
    returned text says where it went)."""
    if out is not None and out.suffix == ".svg":
        out.write_text(svg.render(chart))
        return f"wrote {out}\n"
    rendered = text.render(chart)
    if out is None:
        return rendered
    out.write_text(rendered)
    return f"wrote {out}\n"


def simulated(lab: SimLab, directory: Path | None = None) -> Chart:
    """The chart of a simulated run: its packets written as per-link captures in ``directory``
    (a temporary one when None), read back and charted with the lab's group key."""
    with tempfile.TemporaryDirectory(prefix="labnet-chart-") as temporary:
        where = directory or Path(temporary)
        paths = write_link_captures(lab.net.trace, where)
        chart = chart_captures(list(paths.values()), topology_names(lab.topology), lab.secret)
    return chart


def lab_inputs(name: str | None) -> tuple[list[Path], Topology, bytes | None]:
    """A running netns lab's hub captures (the hub told to write what it holds first), its
    topology and (when it has members) its group key, read from a member's configuration in
    the lab's directory. Raises LabError when there is no such lab."""
    from labnet.netns import NetnsLab

    lab = NetnsLab.open(name)
    lab.hub_query("flush")  # the hub writes its captures in batches
    return captures_in([lab.directory]), lab.topology, group_key_in([lab.directory])
