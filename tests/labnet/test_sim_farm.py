"""The built-in ``dserver-farm`` topology on the simulator: a client farm of 50 correspondent
clients in one engine fetches from the distributed server's contact address while the members'
download service hands each fetch from member to member; every fetch is verified byte for byte
and none fails."""

from __future__ import annotations

import dataclasses
import time

from labnet.sim import SimLab
from labnet.topology import Topology, builtin
from mip6.farm import Farm

CLIENTS = 50
FETCHES = 2  # per client


def topology(**farm: object) -> Topology:
    base = builtin("dserver-farm")
    nodes = dict(base.nodes)
    options = {
        **nodes["farm"].options,
        "clients": CLIENTS,
        "fetches": FETCHES,
        "think": 0.5,
        **farm,
    }
    nodes["farm"] = dataclasses.replace(nodes["farm"], options=options)
    return dataclasses.replace(base, nodes=nodes)


def run_farm(lab: SimLab, connections: int, limit: float = 120.0) -> dict[str, int]:
    farm = lab.net.nodes["farm"].engine
    assert isinstance(farm, Farm)
    while lab.net.now < limit:
        lab.run_until(lab.net.now + 1.0)
        counters = farm.counters
        if counters.get("fetches_ok", 0) + counters.get("fetches_failed", 0) >= connections:
            break
    return farm.counters


def test_farm_of_fifty_fetches_through_handoffs_without_a_failure() -> None:
    started = time.perf_counter()
    lab = SimLab(topology(), seed=1)
    lab.start()
    farm = lab.net.nodes["farm"].engine
    assert isinstance(farm, Farm) and len(farm.clients) == CLIENTS
    size = farm.config.size
    while lab.net.now < 120:
        lab.run_until(lab.net.now + 1.0)
        counters = farm.counters
        if counters.get("fetches_ok", 0) + counters.get("fetches_failed", 0) >= CLIENTS * FETCHES:
            break
    wall = time.perf_counter() - started
    counters = farm.counters
    assert counters["fetches_ok"] == CLIENTS * FETCHES, counters
    assert "fetches_failed" not in counters and "resets" not in counters
    assert counters["bytes"] == CLIENTS * FETCHES * size
    members = {name: lab.net.nodes[name].engine.counters for name in ("m1", "m2", "m3")}
    completed = sum(c.get("handoff_completed", 0) for c in members.values())
    # each fetch is distributed by the contact node or served there, then handed on every
    # 150 kB while the member still writes it: well over one handoff per fetch in all
    assert completed >= CLIENTS * FETCHES, members
    assert all(c.get("handoff_completed", 0) > 0 for c in members.values()), members
    assert all(c.get("handoff_failed", 0) == 0 for c in members.values()), members
    # each client's own correspondent accepted the members' Binding Updates
    assert counters["bindings_accepted"] >= completed
    assert sum(c.correspondent.counters.get("ba_status_0", 0) > 0 for c in farm.clients) == CLIENTS
    rows = farm.describe("clients", lab.net.now)["rows"]
    assert {row["fetches_ok"] for row in rows} == {FETCHES}
    assert wall < 60, f"{wall:.1f} s of wall clock"


def test_dserver_farm_is_dserver_with_a_farm_and_a_port_for_it() -> None:
    """The same networks, home agent, members, client and probe as ``dserver`` (the members
    serve port 81 as well): the farm loads the distributed server the other lab shows."""
    base, farm = builtin("dserver"), builtin("dserver-farm")
    assert {k: v for k, v in farm.networks.items() if k != "farm"} == base.networks
    assert [n for n in farm.nodes if n != "farm"] == list(base.nodes)
    for name, spec in base.nodes.items():
        loaded = farm.nodes[name]
        assert dataclasses.replace(loaded, apps=spec.apps, line=spec.line) == spec, name
        assert loaded.apps[: len(spec.apps)] == spec.apps
    ports = {app.port for app in farm.nodes["m1"].apps}
    assert farm.nodes["farm"].options["port"] in ports - {app.port for app in base.nodes["m1"].apps}
    assert farm.nodes["farm"].addresses[0] in farm.networks["farm"].prefix


def test_keep_alive_connections_carry_several_requests_through_handoffs() -> None:
    """Three GETs per connection (the first two keep-alive): the download service reads the
    next request after each response, and handoffs in the middle of any of them resume
    where the client stands; every body whole."""
    lab = SimLab(topology(requests=3, clients=20), seed=2)
    lab.start()
    counters = run_farm(lab, 20 * FETCHES)
    size = lab.net.nodes["farm"].engine.config.size
    assert counters["fetches_ok"] == 20 * FETCHES, counters
    assert "fetches_failed" not in counters and "resets" not in counters
    assert counters["bytes"] == 20 * FETCHES * 3 * size
    members = [lab.net.nodes[name].engine.counters for name in ("m1", "m2", "m3")]
    # 1.8 MB a connection, handed on every 150 kB
    assert sum(c.get("handoff_completed", 0) for c in members) >= 20 * FETCHES * 3


def test_echo_dialogues_are_checked_line_by_line_through_handoffs() -> None:
    """The echo workload: dialogues of 30 lines with the members' handoff echo (port 7), the
    contact node handing each client on; every echo came back once, in order."""
    lab = SimLab(
        topology(workload="echo", port=7, lines=30, line_size=100, pause=0.05, clients=20),
        seed=3,
    )
    lab.start()
    counters = run_farm(lab, 20 * FETCHES)
    assert counters["fetches_ok"] == 20 * FETCHES, counters
    assert "fetches_failed" not in counters and "resets" not in counters
    # every line echoed whole, and "bye" for each dialogue
    assert counters["bytes"] == 20 * FETCHES * (30 * 100 + 4)
    # the contact node hands each new client on; its later dialogues go to that member
    members = [lab.net.nodes[name].engine.counters for name in ("m1", "m2", "m3")]
    assert sum(c.get("handoff_completed", 0) for c in members) >= 10
