"""Members killed for real (SIGKILL) on the netns backend: the runs behind ``failover`` there,
and the helpers ``tests/labnet/test_netns_membership.py`` drives the same lab with.

The lab is the built-in ``dserver`` topology with dynamic membership on every member (its
default timers), C's registration under ESP (every member holds C's SAs, so a backup can take
it over), downloads that stay with the member serving them until it dies, and ``newcomer``: a
plain kernel namespace on the clients' network with no Mobile IPv6, a new client each time.

- :func:`contact_kill`: the contact node's daemon is killed while the newcomer opens a new
  connection to C every 20 ms (each its own SYN); the time from the kill to the first one
  established, which its successor's SYN-ACK ends.
- :func:`member_kill`: a stock curl (behind the client's shim correspondent) downloads; the
  member serving it is killed in the middle, and its buddy resumes the connection from the
  replica it holds; the stall is the longest time the download's file did not grow in the
  4 s after the kill (polled every 10 ms).

After each kill the dead member's daemon is started again and joins through the contact
address (:func:`rejoin`), so the next kill finds three members.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Callable
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

from labnet.netns import NetnsLab, control_request
from labnet.topology import NodeSpec, Topology, builtin

BASE = builtin("dserver")
CONTACT = BASE.nodes["m1"].home_address
MEMBERS = {name: BASE.nodes[name].addresses[0] for name in ("m1", "m2", "m3")}
NEWCOMER = "2001:db8:2::50"
DOWNLOAD_SIZE = 50_000_000  # the built-in download (seed 1, regenerable)
PROBE_WINDOW = 5.0  # seconds a new client keeps trying after the contact node's death
STALL_WINDOW = 4.0  # seconds after a member's death the download's pauses are watched

# In the newcomer's namespace: a new connection to C's echo port every 20 ms (each its own
# SYN: a new client), until one is established; prints the wall clock time it was.
CONNECT = """
import selectors, socket, sys, time
selector = selectors.DefaultSelector()
deadline = time.time() + float(sys.argv[2])
while time.time() < deadline:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex((sys.argv[1], 7))
    selector.register(s, selectors.EVENT_WRITE)
    for key, _ in selector.select(0.02):
        if key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            print(repr(time.time()))
            sys.exit(0)
        selector.unregister(key.fileobj)
        key.fileobj.close()
sys.exit(1)
"""


def with_membership() -> Topology:
    """The lab's topology (see the module docstring)."""
    nodes = dict(BASE.nodes)
    for name in MEMBERS:
        # the download stays with a member until that member dies: which one serves it is
        # then known when it is killed
        apps = tuple(
            dataclasses.replace(app, handoff_every=0) if app.type == "download" else app
            for app in nodes[name].apps
        )
        nodes[name] = dataclasses.replace(nodes[name], options={"membership": {}}, apps=apps)
    nodes["newcomer"] = NodeSpec(
        name="newcomer",
        kind="kernel",
        role=None,
        network="clients",
        addresses=(IPv6Address(NEWCOMER),),
    )
    return dataclasses.replace(BASE, nodes=nodes)


def members(lab: NetnsLab, node: str) -> list[dict[str, Any]]:
    """Member ``node``'s view of the group (``mip6 show members``)."""
    control = lab.state["nodes"][node]["control"]
    rows: list[dict[str, Any]] = control_request(control, {"show": "members"})["rows"]
    return rows


def contact_node(lab: NetnsLab, alive: list[str]) -> str:
    """The member every live member's view names as contact node; AssertionError while the
    views disagree."""
    named = set()
    for node in alive:
        rows = members(lab, node)
        named |= {row["member"] for row in rows if row.get("role") == "contact_node"}
    assert len(named) == 1, named
    (address,) = named
    return next(name for name, a in MEMBERS.items() if str(a) == address)


def wait_for_successor(lab: NetnsLab, alive: list[str], dead: str) -> str:
    """The member the live members' views name as contact node once it is not ``dead`` (the
    successor registers C first, then commits the view without the dead one)."""
    deadline = time.monotonic() + 5.0
    while True:
        try:
            successor = contact_node(lab, alive)
        except AssertionError:  # the live members' views disagree for a moment
            successor = dead
        if successor != dead:
            return successor
        if time.monotonic() > deadline:
            raise RuntimeError("no view names a successor")
        time.sleep(0.05)


def wait_for_views(lab: NetnsLab, alive: list[str], timeout: float = 10.0) -> None:
    """Until every live member's view holds exactly the live members."""
    want = {str(MEMBERS[name]) for name in alive}
    deadline = time.monotonic() + timeout
    while True:
        views = [
            {row["member"] for row in members(lab, node) if row.get("join_id")} for node in alive
        ]
        if all(view == want for view in views):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the members' views are not {sorted(want)}: {views}")
        time.sleep(0.1)


def rejoin(lab: NetnsLab, alive: list[str], dead: str) -> None:
    """``dead``'s daemon started again, joining through the successor; ``alive`` gains it."""
    successor = wait_for_successor(lab, alive, dead)
    lab.restart(dead, role_options={"contact_node": str(MEMBERS[successor])})
    alive.append(dead)
    wait_for_views(lab, alive)


def contact_kill(lab: NetnsLab, alive: list[str]) -> tuple[str, float]:
    """Kill the contact node (``alive`` loses it); who it was and the seconds from the kill
    to a new client's connection established. RuntimeError when none was within
    :data:`PROBE_WINDOW`."""
    dead = contact_node(lab, alive)
    probe = subprocess.Popen(
        lab.exec_argv("newcomer", [sys.executable, "-c", CONNECT, str(CONTACT), str(PROBE_WINDOW)]),
        stdout=subprocess.PIPE,
        text=True,
    )
    killed = time.time()
    lab.kill(dead)
    alive.remove(dead)
    out, _ = probe.communicate(timeout=PROBE_WINDOW + 5)
    if probe.returncode != 0:
        raise RuntimeError(f"no new client answered within {PROBE_WINDOW:g} s of killing {dead}")
    return dead, float(out) - killed


def serving(lab: NetnsLab, alive: list[str], client: str) -> str | None:
    """The live member whose clients' table holds ``client`` unfrozen, if any."""
    for node in alive:
        control = lab.state["nodes"][node]["control"]
        for row in control_request(control, {"show": "clients"})["rows"]:
            if row["client"] == client and not row.get("frozen"):
                return node
    return None


def received(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def recoveries(lab: NetnsLab, alive: list[str]) -> int:
    """Clients resumed from a replica, summed over the live members."""
    total = 0
    for node in alive:
        control = lab.state["nodes"][node]["control"]
        total += control_request(control, {"show": "stats"})["counters"].get("recover_completed", 0)
    return total


def replication_counters(lab: NetnsLab, node: str) -> dict[str, int]:
    """What a member counted of replicas and recoveries (a failed recovery's story)."""
    control = lab.state["nodes"][node]["control"]
    counters = control_request(control, {"show": "stats"})["counters"]
    return {k: v for k, v in counters.items() if k.startswith(("replica", "recover"))}


def longest_pause(path: Path, since: float, window: float) -> float:
    """The longest time the download did not grow, from ``since`` (monotonic) for ``window``
    seconds (polled every 10 ms): what was in flight from the dead member still lands at
    first."""
    last_size, last_growth, longest = received(path), since, 0.0
    while time.monotonic() - since < window:
        time.sleep(0.01)
        size = received(path)
        if size > last_size:
            now = time.monotonic()
            longest = max(longest, now - last_growth)
            last_size, last_growth = size, now
    return max(longest, time.monotonic() - last_growth)


@dataclasses.dataclass(frozen=True, slots=True)
class MemberKill:
    """A member killed mid-download: who, the stall its client saw (seconds), and whether a
    live member resumed the client from its replica."""

    dead: str
    stall: float
    recovered: bool


def member_kill(
    lab: NetnsLab,
    alive: list[str],
    current: Callable[[], Path],
    client: str,
    timeout: float = 30.0,
) -> tuple[Path, MemberKill]:
    """Once a download is under way (more than 2 MB in, 15 MB left; ``current`` gives the
    file of the one in progress, starting the next when the last has ended) kill the member
    serving ``client`` (``alive`` loses it) and watch the download's pauses; the download's
    file and what the kill did."""
    deadline = time.monotonic() + timeout
    while True:
        out = current()
        dead = serving(lab, alive, client)
        if dead is not None and 2_000_000 < received(out) < DOWNLOAD_SIZE - 15_000_000:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no member serves a download in progress ({received(out)} bytes)")
        time.sleep(0.05)
    time.sleep(0.3)  # its replica is at the buddy (sent when it took the client)
    before = recoveries(lab, [node for node in alive if node != dead])
    killed = time.monotonic()
    lab.kill(dead)
    alive.remove(dead)
    stall = longest_pause(out, killed, STALL_WINDOW)
    return out, MemberKill(dead, stall, recoveries(lab, alive) == before + 1)
