"""``labnet demo``: the roaming scenario with a narrated timeline of what happens and why.

A mobile node away from home registers with its home agent; a correspondent pings the home
address and the home agent tunnels the ping; the mobile node answers through the reverse tunnel
and starts route optimization; the next ping goes directly; the mobile node moves to another
network and everything follows; it comes home and the bindings are deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from labnet.sim import SimLab
from labnet.topology import Topology, builtin
from mip6.dissect import dissect, summary_line

# Why each message is sent, keyed by the start of its summary.
WHY = [
    ("MH BU", 'Binding Update: "my home address is now reachable at this care-of address"'),
    ("MH BA", "Binding Acknowledgement: the binding is accepted (status 0) or refused"),
    ("MH HoTI", "Home Test Init, sent from the home address through the home agent"),
    ("MH CoTI", "Care-of Test Init, sent directly from the care-of address"),
    ("MH HoT", "Home Test: a keygen token only someone at the home address receives"),
    ("MH CoT", "Care-of Test: a keygen token only someone at the care-of address receives"),
    ("MH BRR", "Binding Refresh Request: the correspondent asks for a fresh binding"),
    ("MH BE", "Binding Error"),
    ("ICMP6 echo request", "ping"),
    ("ICMP6 echo reply", "ping answered"),
]


def why(summary: str) -> str:
    body = summary.split(": ", 1)[-1]
    if body.startswith("IP6-in-IP6"):
        inner = body.split(": ", 1)[-1]
        return "tunnelled (RFC 2473): " + why(inner)
    if body.startswith("MH BU") and " lifetime 0s" in body:
        return "Binding Update with lifetime 0: delete the binding"
    for prefix, text in WHY:
        if body.startswith(prefix):
            return text
    return ""


def narrate(lab: SimLab, out: TextIO, since: int) -> int:
    """Print the packets sent since trace index ``since``; returns the new index."""
    trace = lab.net.trace
    for sent in trace[since:]:
        summary = summary_line(dissect(sent.data))
        hop = f"{sent.sender:>5} -> {sent.receiver or '?':<5}"
        lost = "  [lost]" if sent.lost else ""
        out.write(f"  {sent.time:7.3f}  {hop}  {summary}{lost}\n")
        why_text = why(summary)
        if why_text:
            out.write(f"  {'':7}  {'':14}  . {why_text}\n")
    return len(trace)


def run(out: TextIO, seed: int = 1, topology: Topology | None = None) -> SimLab:
    topology = topology or builtin("roaming")
    lab = SimLab(topology, seed)
    cn = topology.nodes["cn"]
    mn = topology.nodes["mn"]
    assert mn.home_address is not None
    home = mn.home_address
    seen = 0

    def step(at: float, title: str, action: Callable[[], None]) -> None:
        nonlocal seen
        lab.run_until(at)
        seen = narrate(lab, out, seen)
        out.write(f"\n[{at:6.2f} s] {title}\n")
        action()

    out.write(
        f"labnet demo: topology {topology.name!r} on the sim backend (virtual time, seed {seed})\n"
    )
    for network in topology.networks.values():
        out.write(
            f"  network {network.name:<14} {network.prefix!s:<20} "
            f"uplink {network.uplink.latency * 1000:.0f} ms one way\n"
        )
    out.write(
        f"  mobile node home address {home}, home agent {mn.home_agent}, "
        f"correspondent {cn.addresses[0]}\n"
    )
    step(
        0.0,
        "The mobile node is away, on visited1: it registers its care-of address with its "
        "home agent (RFC 3775 11.7.1)",
        lab.start,
    )
    step(
        1.0,
        "The correspondent pings the home address: no binding there, so the home agent "
        "intercepts it and tunnels it; the mobile node answers through the reverse tunnel and, "
        "seeing traffic arrive through the tunnel, starts route optimization (11.7.2)",
        lambda: lab.ping("cn", home, 1),
    )
    step(
        3.0,
        "Ping again: the correspondent now holds a binding and sends straight to the "
        "care-of address with a type 2 routing header (9.3.2); the answer carries a Home "
        "Address option (11.3.1)",
        lambda: lab.ping("cn", home, 2),
    )
    step(
        4.0,
        "The mobile node moves to visited2: a new care-of address, a new home "
        "registration, then a new care-of test for the correspondent (11.5, 11.7.2)",
        lambda: lab.move("mn", "visited2"),
    )
    step(7.0, "Ping from visited2", lambda: lab.ping("cn", home, 3))
    step(
        8.0,
        "The mobile node returns home: it deregisters with its home agent and deletes "
        "the correspondent's binding from the home link (11.5.4)",
        lambda: lab.move("mn", "home"),
    )
    step(
        11.0,
        "Ping at home: plain IPv6, no Mobile IPv6 headers at all",
        lambda: lab.ping("cn", home, 4),
    )
    lab.run_until(13.0)
    narrate(lab, out, seen)
    replies = [
        data
        for _, data in lab.net.nodes["cn"].delivered
        if summary_line(dissect(data)).split(": ", 1)[-1].startswith("ICMP6 echo reply")
    ]
    out.write(f"\n{len(replies)} of 4 pings answered; {len(lab.net.trace)} packets on the wire.\n")
    return lab
