"""The seeds' testbed (:mod:`labnet.experiments.testbed`, 004 Fig. 9) on the netns backend:
one network namespace and one ``mip6 run`` daemon per node (:class:`labnet.netns.NetnsLab`),
the hub in the core router's place, emulating each one-way latency and the shaping as the
seeds' NISTnet router and cbq did, and capturing every packet that crosses it, as their
tcpdump on that router did.

The client is a shim-mode correspondent: a stock kernel in its namespace, behind a daemon that
gives it RFC 3775 correspondent support, so what a client sees is measured by real kernel
programs there (:func:`client_run`). The members run in host mode with the experiment's
applications; the home agents in router mode.

The hub's emulation is per link (a node's link, both directions), so a path's latency is the
sum of its two ends' uplinks, a star as :func:`labnet.experiments.testbed.Testbed.uplinks`
solves it, but for HA1's own link, which has none (:func:`profiles`): the client reaches
Node 1 through HA1 in Lcs1, as in the seeds' testbed. The simulator can give a
member and its home agent an on-link path whatever the star; the hub cannot yet, so on netns
HA1 and Node 1 are on-link (no emulated latency between them, as the seeds' Ethernet) only
when site 1's uplink is zero, which is when Lcs2 = Lcs1 + Lss (:func:`check_on_link`);
otherwise they are site 1's uplink apart, but a path from the client or Node 2 through HA1
to Node 1 still sums to the seeds' latency. Latencies and shaping change between points of a
sweep through the hub's ``profile`` control request, on the running lab.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

from labnet.experiments.split_download import Crossing
from labnet.experiments.testbed import CONTACT, NETWORKS, Testbed, names, topology
from labnet.netns import NetnsLab
from labnet.topology import Topology
from mip6.runtime.config import AppConfig
from mip6.wire.pcap import read_capture_file

CLIENT_TIMEOUT = 600.0  # seconds a client program in the lab may run


def netns_topology(
    testbed: Testbed, apps: Mapping[str, tuple[AppConfig, ...]] | None = None
) -> Topology:
    """The testbed with its client a shim-mode correspondent (a stock kernel behind it);
    ``apps``: members' applications instead of the testbed's (which are every member's)."""
    base = topology(testbed)
    nodes = dict(base.nodes)
    nodes["client"] = dataclasses.replace(nodes["client"], mode="shim")
    for member, own in (apps or {}).items():
        nodes[member] = dataclasses.replace(nodes[member], apps=own)
    return dataclasses.replace(base, nodes=nodes)


def check_on_link(testbed: Testbed) -> None:
    """ValueError unless the star puts no latency between HA1 and Node 1 (see the module
    docstring): the seeds' local configuration needs them on one Ethernet."""
    if testbed.uplinks()["site1"] > 1e-9:
        raise ValueError(
            f"Lcs2 {testbed.lcs2 * 1e3:g} ms is not Lcs1 + Lss: on netns HA1 and Node 1 would "
            "be an emulated latency apart"
        )


def profiles(testbed: Testbed) -> dict[str, dict[str, Any]]:
    """Each node's hub link profile: its network's uplink latency both ways and, when the
    testbed is shaped, the seeds' cbq: what each site (a member, a home agent) sends to the
    core at ``bandwidth``; the client's traffic unshaped."""
    uplinks = testbed.uplinks()
    out: dict[str, dict[str, Any]] = {}
    for node, network in NETWORKS.items():
        # HA1 is the seeds' core-side router of Node 1's site: with no latency on its own
        # link, every path through it (client - HA1 - Node 1, the contact address's tunnel
        # and relay) has the seeds' latency, whatever site 1's uplink
        profile: dict[str, Any] = {"latency": 0.0 if node == "ha1" else uplinks[network]}
        if testbed.bandwidth is not None and node != "client":
            profile["up"] = {"bandwidth": testbed.bandwidth}
        out[node] = profile
    return out


def lab_name(prefix: str, tag: str) -> str:
    """A lab's name: ``prefix``, this process's id and ``tag`` (its namespaces are
    ``NAME-NODE``, so the prefix tells whose they are)."""
    return f"{prefix}{os.getpid() % 100000}{tag}"


@contextmanager
def netns_lab(
    testbed: Testbed, name: str, apps: Mapping[str, tuple[AppConfig, ...]] | None = None
) -> Iterator[NetnsLab]:
    """The testbed up on netns as lab ``name`` (``apps``: see :func:`netns_topology`), its
    contact node registered, the hub's profiles set from ``testbed``; taken down (daemons,
    hub, namespaces) however it ends."""
    lab = NetnsLab.up(netns_topology(testbed, apps), name)
    try:
        set_profiles(lab, testbed)
        yield lab
    finally:
        lab.down(discard=True)


def set_profiles(lab: NetnsLab, testbed: Testbed) -> None:
    """The hub's link profiles for ``testbed``'s latencies and shaping (its members must be
    the lab's)."""
    for node, profile in profiles(testbed).items():
        if node in lab.state["nodes"]:
            lab.hub_query(f"profile {node} {json.dumps(profile)}")


def run_argv(
    lab: NetnsLab, argv: list[str], timeout: float = CLIENT_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """``argv`` run to its end in the client's namespace, its output captured; RuntimeError
    when it runs longer than ``timeout`` seconds (it is killed)."""
    command = lab.exec_argv("client", argv)
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{argv[0]} in the client's namespace ran over {timeout:g} s") from None


def client_run(lab: NetnsLab, script: str, *args: str, timeout: float = CLIENT_TIMEOUT) -> str:
    """Run Python ``script`` with ``args`` in the client's namespace (its kernel's sockets);
    its standard output. RuntimeError with its standard error when it fails."""
    done = run_argv(lab, [sys.executable, "-c", script, *args], timeout)
    if done.returncode != 0:
        raise RuntimeError(f"client program failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def crossings(lab: NetnsLab) -> list[Crossing]:
    """Every packet the hub forwarded, as it crossed it (its capture's timestamp, seconds since
    the epoch), in time order: the sender by the packet's outer source address (the contact
    address's packets on the wire are HA1's), the receiver the link it left by. The hub
    captures each packet on both links; the record on the link it left by is kept."""
    known = names() | {CONTACT: "ha1"}
    owners: dict[str, set[IPv6Address]] = {}
    for address, node in known.items():
        owners.setdefault(node, set()).add(address)
    found: list[Crossing] = []
    for link in lab.state["hub"]["links"]:
        for frame in read_capture_file(Path(lab.pcap(link))):
            data = frame.data
            if len(data) < 40:
                continue
            source = IPv6Address(data[8:24])
            if source in owners.get(link, set()):
                continue  # the record on the link it arrived by
            sender = known.get(source, str(source))
            found.append(Crossing(frame.timestamp_ns / 1e9, sender, link, data))
    found.sort(key=lambda c: c.time)
    return found
