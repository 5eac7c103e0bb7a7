"""The client farm on the netns backend (root): the built-in ``dserver-farm`` topology, its farm
of 100 correspondent clients in ONE ``mip6 run`` daemon in ONE namespace, whose one hub link
carries the farm network's whole prefix. Each client fetches the 600 kB body twice from the
contact address while the three members hand each fetch on every 150 kB; every fetch is
verified byte for byte, none fails, no connection is reset, and ``mip6 show`` reads the farm's
counters and clients. Everything the lab started is gone afterwards."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv6Address

import pytest

from labnet.netns import NetnsLab, control_request
from labnet.topology import Topology, builtin
from tests.labnet.netns_lab import netns_lab
from tests.runtime.netns import require_root

pytestmark = pytest.mark.netns

CLIENTS = 100
FETCHES = 2  # per client
MEMBERS = ("m1", "m2", "m3")
DEADLINE = 90.0  # seconds for all fetches (measured: about 35)


def topology() -> Topology:
    base = builtin("dserver-farm")
    nodes = dict(base.nodes)
    farm = nodes["farm"]
    options = {**farm.options, "clients": CLIENTS, "fetches": FETCHES, "think": 0.5, "ramp": 2}
    nodes["farm"] = dataclasses.replace(farm, options=options)
    return dataclasses.replace(base, nodes=nodes)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsLab]:
    require_root()
    with netns_lab(tmp_path_factory.mktemp("labnet"), topology(), "f") as lab:
        yield lab


def stats(lab: NetnsLab, node: str) -> dict[str, int]:
    counters: dict[str, int] = control_request(
        lab.state["nodes"][node]["control"], {"show": "stats"}
    )["counters"]
    return counters


def test_farm_of_a_hundred_fetches_through_handoffs_without_a_failure(lab: NetnsLab) -> None:
    status = lab.status()
    farm = status["nodes"]["farm"]
    assert farm["running"] and farm["netns"] == f"{lab.name}-farm"
    prefix = str(lab.topology.networks["farm"].prefix)
    assert status["hub"]["routes"][prefix] == "farm"  # the whole prefix on its one link
    started = time.monotonic()
    while True:
        counters = stats(lab, "farm")
        ended = counters.get("fetches_ok", 0) + counters.get("fetches_failed", 0)
        if ended >= CLIENTS * FETCHES or time.monotonic() - started > DEADLINE:
            break
        time.sleep(1.0)
    elapsed = time.monotonic() - started
    size = lab.topology.nodes["farm"].options["size"]
    assert counters["clients"] == CLIENTS
    assert counters.get("fetches_ok", 0) == CLIENTS * FETCHES, (elapsed, counters)
    assert "fetches_failed" not in counters and "resets" not in counters, counters
    assert counters["bytes"] == CLIENTS * FETCHES * size
    members = {name: stats(lab, name) for name in MEMBERS}
    completed = sum(c.get("handoff_completed", 0) for c in members.values())
    assert completed >= CLIENTS * FETCHES, members
    assert all(c.get("handoff_accepted", 0) > 0 for c in members.values()), members
    assert counters["bindings_accepted"] >= completed
    assert counters["cn.ba_status_0"] == counters["bindings_accepted"]
    print(f"{CLIENTS * FETCHES} fetches of {size} bytes in {elapsed:.1f} s, {completed} handoffs")
    # the daemon's inspection path: mip6 show, as for every other role
    reply = json.loads(mip6_show(lab, "clients", "--json"))
    assert reply["role"] == "farm"
    rows = reply["rows"]
    assert [IPv6Address(row["client"]) for row in rows] == [
        lab.topology.nodes["farm"].addresses[0] + i for i in range(CLIENTS)
    ]
    assert {row["fetches_ok"] for row in rows} == {FETCHES}
    assert f"fetches_ok {CLIENTS * FETCHES}" in mip6_show(lab, "stats").splitlines()


def mip6_show(lab: NetnsLab, what: str, *flags: str) -> str:
    control = lab.state["nodes"]["farm"]["control"]
    argv = [sys.executable, "-m", "mip6.cli", "show", what, *flags, "--control", control]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout
