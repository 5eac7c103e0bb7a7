"""``labnet bench udp``: the distributed server's UDP services under handoffs, on the simulator
(the built-in ``dserver-udp`` topology: 50 farm clients asking the members' lookup service 200
questions each, one at a time, sent again after 0.5 s unanswered), with each member handing a
client on after 20 of its datagrams against the same run without those handoffs (the contact
node still places each client once). Same seed, same virtual network.

- ``request_ms_mean`` / ``request_ms_max``: from a request's first transmission to its answer,
  virtual time (Lcs 25 ms: a round trip is 50 ms). A request the donor dropped during a
  handoff waits for the client's retransmission: that is the whole cost of moving a UDP
  client, paid by one request per handoff.
- ``handoffs``, ``retried``, ``dropped_in_handoff``, ``dropped_not_owned``, ``two_members``
  (requests answered by two members: must be 0), ``failed`` (requests given up: must be 0).
- ``cpu_s``: the process's CPU time for the whole simulation (members, farm, network), each
  figure the median of ``runs`` interleaved runs.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

from labnet.sim import SimLab
from labnet.topology import Topology, builtin
from mip6.farm import Farm

MEMBERS = ("m1", "m2", "m3")
UDP = ("lookup", "udp_echo")  # the apps whose handoffs are compared (the others are idle)


def topology(handoff_every: int) -> Topology:
    base = builtin("dserver-udp")
    nodes = dict(base.nodes)
    for name in MEMBERS:
        apps = tuple(
            dataclasses.replace(app, handoff_every=handoff_every) if app.type in UDP else app
            for app in nodes[name].apps
        )
        nodes[name] = dataclasses.replace(nodes[name], apps=apps)
    return dataclasses.replace(base, nodes=nodes)


def one_run(handoff_every: int, seed: int = 1) -> dict[str, Any]:
    started = time.process_time()
    lab = SimLab(topology(handoff_every), seed=seed)
    lab.start()
    farm = lab.net.nodes["farm"].engine
    assert isinstance(farm, Farm)
    total = farm.config.clients * farm.config.fetches
    while lab.net.now < 600:
        lab.run_until(lab.net.now + 1.0)
        if farm.counters.get("requests_ok", 0) + farm.counters.get("requests_failed", 0) >= total:
            break
    lab.run_until(lab.net.now + 3.0)
    cpu = time.process_time() - started
    stats = farm.describe("stats", lab.net.now)["counters"]
    requesters = [client.requester for client in farm.clients if client.requester is not None]
    answered = stats.get("udp.answered", 0)
    rows = [
        row
        for name in MEMBERS
        for row in lab.net.nodes[name].engine.describe("udp", lab.net.now)["rows"]
    ]
    return {
        "requests": total,
        "answered": answered,
        "failed": stats.get("requests_failed", 0),
        "two_members": stats.get("udp.two_members", 0),
        "retried": stats.get("udp.retried", 0),
        "handoffs": sum(
            lab.net.nodes[name].engine.counters.get("handoff_completed", 0) for name in MEMBERS
        ),
        "dropped_in_handoff": sum(row["dropped_in_handoff"] for row in rows),
        "dropped_not_owned": sum(row["dropped_not_owned"] for row in rows),
        "request_ms_mean": round(
            1000 * sum(r.elapsed_total for r in requesters) / max(answered, 1), 2
        ),
        "request_ms_max": round(1000 * max(r.elapsed_max for r in requesters), 1),
        "cpu_s": cpu,
    }


def run(seconds: float = 4.0, *, runs: int = 3) -> dict[str, Any]:
    """``seconds`` is not used: the figures are whole simulations, ``runs`` of each."""
    moved, kept = [], []
    for _ in range(runs):  # interleaved: the machine's load falls on both alike
        moved.append(one_run(20))
        kept.append(one_run(0))
    out: dict[str, Any] = {}
    for suffix, results in (("", moved), ("_no_handoff", kept)):
        first = results[0]  # virtual time: every run of a seed is the same
        for key, value in first.items():
            if key != "cpu_s":
                out[f"{key}{suffix}"] = value
        out[f"cpu_s{suffix}"] = round(statistics.median(r["cpu_s"] for r in results), 2)
    return out
