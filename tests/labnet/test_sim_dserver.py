"""The built-in ``dserver`` topology on the simulator, every node built from the configuration
the netns backend writes (role ``member`` through the registry): a client's host downloads from
the contact address while the download service hands it from member to member."""

from __future__ import annotations

import dataclasses
import hashlib

from labnet.sim import SimLab
from labnet.topology import Topology, builtin, dump, parse
from mip6.apps.http import HostDownload, generated_body
from mip6.runtime.config import AppConfig

CONTACT = "2001:db8:1::80"
SIZE = 8_000_000


def topology() -> Topology:
    """The built-in one with a host-mode client (a shim's kernel cannot run HTTP here) and a
    smaller download."""
    base = builtin("dserver")
    apps = (AppConfig("download", 80, size=SIZE, seed=1, handoff_every=300_000),)
    nodes = dict(base.nodes)
    nodes["client"] = dataclasses.replace(nodes["client"], mode="host")
    for name in ("m1", "m2", "m3"):
        nodes[name] = dataclasses.replace(nodes[name], apps=apps)
    return dataclasses.replace(base, nodes=nodes)


def run(seed: int) -> tuple[HostDownload, SimLab]:
    lab = SimLab(topology(), seed=seed)
    lab.start()
    lab.run_until(1.0)
    client = lab.net.nodes["client"]
    assert client.host is not None
    fetch = HostDownload(client.host, lab.net.now, CONTACT, 80)
    client.runtime.flush_host()
    while not fetch.done and lab.net.now < 60:
        lab.net.run_for(0.5)
    return fetch, lab


def test_download_across_members_from_the_built_in_topology() -> None:
    fetch, lab = run(seed=2)
    assert fetch.done and not fetch.failed and fetch.received == SIZE
    assert fetch.digest.hexdigest() == hashlib.sha256(b"".join(generated_body(SIZE, 1))).hexdigest()
    counters = {name: lab.net.nodes[name].engine.counters for name in ("m1", "m2", "m3")}
    assert sum(c.get("handoff_completed", 0) for c in counters.values()) >= 5
    assert all(c.get("handoff_accepted", 0) >= 1 for c in counters.values()), counters
    assert counters["m1"]["clients_accepted"] == 1  # the contact node took the client
    _, second = run(seed=2)
    assert [(s.time, s.data) for s in second.net.trace] == [(s.time, s.data) for s in lab.net.trace]


def test_built_in_topology_round_trips_with_its_applications() -> None:
    base = builtin("dserver")
    again = parse(dump(base), base.path)
    assert again.nodes["m1"].apps == base.nodes["m1"].apps
    assert [n.role for n in again.nodes.values()] == [n.role for n in base.nodes.values()]
