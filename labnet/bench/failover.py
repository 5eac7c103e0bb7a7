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
- ``member_failover_ms``, ``replication_overhead_pct``, ``replication_added_latency_ms``:
  None, with the reason: replication of a member's clients to a buddy is not built yet
  (issue 15 item 3).
"""

from __future__ import annotations

import statistics
from typing import Any

from labnet.dserver_lab import CONTACT, MEMBERS, PORT, DServerLab
from mip6.dserver.membership import MembershipConfig
from tcp_migrate.core import TcpState
from tcp_migrate.stack import Socket

PROBE_INTERVAL = 0.01  # a new client's connection attempt every 10 ms


def _one_kill(seed: int) -> tuple[float, float]:
    """(death to the HA's binding at the successor, death to a new client established)."""
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


def run(seconds: float = 4.0, *, kills: int = 20) -> dict[str, Any]:
    del seconds  # virtual time: the figures do not depend on how long one measures
    registered, served = zip(*(_one_kill(seed) for seed in range(1, kills + 1)), strict=True)
    config = MembershipConfig()
    reason = "replication of a member's clients to a buddy is not built yet (issue 15 item 3)"
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
        "member_failover_ms": None,
        "replication_overhead_pct": None,
        "replication_added_latency_ms": None,
        "reason": reason,
    }
