"""``labnet bench failover``: how long a distributed server is without a contact node.

- ``takeover_ms``: on the in-memory network (:class:`labnet.dserver_lab.DServerLab`, Lss =
  10 ms, Lcs = 20 ms, dynamic membership with its default timers, C's registration under ESP
  with the SAs configured on every member), the contact node m1 dies at a moment that varies
  with the seed; a new client (no binding for C) opens a connection to C every 10 ms from the
  moment of the death; the figure is the time from the death to the first of those connections
  established, which its SYN-ACK from the successor ends. Median and max over ``kills`` seeds;
  ``takeover_registered_ms`` is the part until the home agent's binding names the successor.
  Virtual time: the same for every run and machine (the membership timers dominate it: the
  successor suspects the dead contact node after ``failure_timeout``, checked at each
  heartbeat tick, then registers C). The netns figure (real daemons, SIGKILL, a stock kernel
  client) is printed by ``tests/labnet/test_netns_membership.py``.
- ``member_failover_ms``: the same lab without ESP; a client downloads 3 MB from m2 (the
  contact node hands it there), and m2 dies mid-download. Its buddy, which holds the replica
  m2 sent when it took the client, imports the connection, binds the client above m2's number
  (return routability through the contact node) and resynchronizes the connection from the
  client's next segment (tcp_migrate's resync). The figure is the stall the client sees: the
  death to the next data packet sent to it. Median and max over ``kills`` seeds, virtual time;
  every download must end whole (sha256) with no RST.
- ``replication_overhead_pct``: the CPU time (``time.process_time``) of the whole simulation
  of a 3 MB download handed on every 500 kB, with replication on against off, interleaved
  runs, medians (virtual time does not show it: a simulated member computes in no time);
  ``replication_added_latency_ms``: what replication adds to the download's first byte on the
  virtual clock (``first_byte_ms`` on against off): the SYN-ACK and the answer to the request
  wait for the buddy's REPLICA_ACK, a round trip between members each; ``replicate_cpu_ms``:
  the median CPU time of one ``Member.replicate`` (it runs at the end of the entry point that
  read the request).
"""

from __future__ import annotations

import hashlib
import statistics
import time
from dataclasses import dataclass
from typing import Any

from labnet.dserver_lab import CLIENT, CONTACT, MEMBERS, PORT, DServerLab, resets
from mip6.apps.http import generated_body
from mip6.dserver.member import Member
from mip6.dserver.membership import MembershipConfig
from tcp_migrate.core import TcpState
from tcp_migrate.stack import Socket

PROBE_INTERVAL = 0.01  # a new client's connection attempt every 10 ms


def contact_kill(seed: int) -> tuple[float, float]:
    """The contact node's death, seconds from it to the HA's binding at the successor and to
    a new client established (see the module docstring)."""
    lab = DServerLab(seed, membership=MembershipConfig(), esp=True)
    lab.net.run_until(1.0 + (seed % 10) * 0.0137)  # the death falls anywhere in a tick
    lab.kill("m1")
    killed = lab.net.now
    registered: float | None = None
    attempts: list[Socket] = []
    while lab.net.now - killed < 5.0:
        attempts.append(lab.client_host.connect(lab.net.now, str(CONTACT), PORT))
        lab.net.nodes["client"].runtime.flush_host()
        lab.net.run_for(PROBE_INTERVAL)
        binding = lab.ha.binding_cache.get(CONTACT)
        if registered is None and binding.care_of_address == MEMBERS["m2"]:
            registered = lab.net.now - killed
        if any(sock.state is TcpState.ESTABLISHED for sock in attempts):
            assert registered is not None
            return registered, lab.net.now - killed
    raise RuntimeError(f"seed {seed}: no new client served within 5 s of the kill")


DOWNLOAD = 3_000_000


@dataclass(frozen=True, slots=True)
class MemberKill:
    """A client's download when the member serving it died: the stall it saw (seconds from
    the death to the next data packet another member sent it; None: none did), whether the
    download ended whole, and the RSTs on the wire."""

    stall: float | None
    whole: bool
    resets: int


def member_kill(seed: int, *, replication: bool = True) -> MemberKill:
    """The member serving a client dies mid-download (see the module docstring); without
    ``replication`` no buddy holds the client's connection."""
    lab = DServerLab(
        seed,
        membership=MembershipConfig(),
        size=DOWNLOAD,
        distribute=False,
        replication=replication,
    )
    fetch = lab.download(1.0)
    while not fetch.status:
        lab.net.run_for(0.01)
    lab.handoff("m1", "m2")
    while not lab.members["m2"].client_sockets(CLIENT):  # m2 serves it (the handoff may
        lab.net.run_for(0.01)  # wait for the contact node to know how to reach the client)
    if replication:  # the buddy holds the client before the death
        buddy = next(n for n, a in MEMBERS.items() if a == lab.members["m2"].buddy())
        while MEMBERS["m2"] not in lab.members[buddy]._replicas:
            lab.net.run_for(0.01)
    lab.net.run_for(0.2 + (seed % 10) * 0.0137)
    lab.kill("m2")
    killed = lab.net.now
    lab.run_to_end(fetch, limit=60.0)
    digest = hashlib.sha256(b"".join(generated_body(DOWNLOAD, seed))).hexdigest()
    whole = fetch.done and not fetch.failed and fetch.digest.hexdigest() == digest
    after = [t for t, sender in lab.data_senders() if t > killed and sender != "m2"]
    return MemberKill(after[0] - killed if after else None, whole, resets(lab.net))


def _replication_cost(replication: bool, seed: int, calls: list[float]) -> tuple[float, float]:
    """CPU seconds of one simulated 3 MB download handed on every 500 kB, and the virtual
    seconds from its start to its first byte."""
    start = time.process_time()
    lab = DServerLab(
        seed,
        membership=MembershipConfig(),
        size=DOWNLOAD,
        handoff_every=500_000,
        replication=replication,
    )
    for member in lab.members.values():
        _time_replicate(member, calls)
    fetch = lab.download(1.0)
    while not fetch.received and lab.net.now < 10.0:
        lab.net.run_for(0.0005)
    first_byte = lab.net.now - 1.0
    lab.run_to_end(fetch, limit=60.0)
    if not fetch.done or fetch.failed:
        raise RuntimeError(f"seed {seed}: the download failed")
    return time.process_time() - start, first_byte


def _time_replicate(member: Member, calls: list[float]) -> None:
    replicate = member.replicate

    def timed(client: Any) -> bool:
        start = time.process_time()
        try:
            return replicate(client)
        finally:
            calls.append(time.process_time() - start)

    member.replicate = timed  # type: ignore[method-assign]


def run(seconds: float = 4.0, *, kills: int = 20, cost_runs: int = 5) -> dict[str, Any]:
    del seconds  # virtual time: the figures do not depend on how long one measures
    registered, served = zip(*(contact_kill(seed) for seed in range(1, kills + 1)), strict=True)
    stalls: list[float] = []
    for seed in range(1, kills + 1):
        killed = member_kill(seed)
        if killed.stall is None or not killed.whole or killed.resets:
            raise RuntimeError(f"seed {seed}: the download did not survive its member's death")
        stalls.append(killed.stall)
    on: list[float] = []
    off: list[float] = []
    first_on: list[float] = []
    first_off: list[float] = []
    calls: list[float] = []
    for seed in range(1, cost_runs + 1):
        cpu, first = _replication_cost(False, seed, [])
        off.append(cpu)
        first_off.append(first)
        cpu, first = _replication_cost(True, seed, calls)
        on.append(cpu)
        first_on.append(first)
    config = MembershipConfig()
    return {
        "takeover_ms": {
            "median": round(statistics.median(served) * 1000, 1),
            "max": round(max(served) * 1000, 1),
            "kills": kills,
            "clock": "virtual (simulator)",
            "probe_interval_ms": PROBE_INTERVAL * 1000,
        },
        "takeover_registered_ms": {
            "median": round(statistics.median(registered) * 1000, 1),
            "max": round(max(registered) * 1000, 1),
        },
        "membership_timers_s": {
            "heartbeat_interval": config.heartbeat_interval,
            "failure_timeout": config.failure_timeout,
        },
        "member_failover_ms": {
            "median": round(statistics.median(stalls) * 1000, 1),
            "max": round(max(stalls) * 1000, 1),
            "kills": kills,
            "clock": "virtual (simulator)",
        },
        "replication_overhead_pct": round(
            (statistics.median(on) / statistics.median(off) - 1) * 100, 1
        ),
        "replication_cpu_s": {
            "on": round(statistics.median(on), 3),
            "off": round(statistics.median(off), 3),
        },
        "replication_added_latency_ms": round(
            (statistics.median(first_on) - statistics.median(first_off)) * 1000, 1
        ),
        "first_byte_ms": {
            "on": round(statistics.median(first_on) * 1000, 1),
            "off": round(statistics.median(first_off) * 1000, 1),
            "clock": "virtual (simulator)",
        },
        "replicate_cpu_ms": round(statistics.median(calls) * 1000, 3) if calls else None,
        "replications_timed": len(calls),
    }
