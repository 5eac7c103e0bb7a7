"""The handoff echo replicated (issue 15 item 3 for output that cannot be made again): with
dynamic membership every connection's full replica (tcp_migrate's send ring with it) is at the
buddy before the client sees an echo or has a line acknowledged, so a member killed at any
moment of a dialogue leaves a transcript the buddy continues exactly: every line echoed once,
in order, nothing reset. In-memory network, virtual time, deterministic per seed."""

from __future__ import annotations

import pytest

from labnet.dserver_lab import CLIENT, MEMBERS, DServerLab, resets
from mip6.apps.handoff_echo import HandoffEchoService
from mip6.dserver.membership import MembershipConfig
from tests.dserver.test_handoff_echo import LineClient

SEED = 7


def replicated_echo_lab(seed: int, *, loss: float = 0.0) -> DServerLab:
    return DServerLab(
        seed,
        distribute=False,
        membership=MembershipConfig(),
        loss=loss,
        service=lambda name: HandoffEchoService(str(MEMBERS[name])),
    )


def dialogue_with_a_kill(seed: int, kill_after: float, *, loss: float = 0.0) -> None:
    """A client served by m2 sends a line every 7 ms (each a few hundred bytes, so several
    are in flight both ways at any time); m2 is killed ``kill_after`` seconds into it; the
    client goes on sending for 3 s more and must get back exactly what it sent."""
    lab = replicated_echo_lab(seed, loss=loss)
    client = LineClient(lab, at=2.0)
    client.send(b"hello\n")
    client.wait_for(lambda: client.lines == [b"hello\n"])
    lab.handoff("m1", "m2")
    m2 = lab.members["m2"]
    client.wait_for(lambda: bool(m2.client_sockets(CLIENT)), 5.0)
    sent = [b"hello\n"]
    start = lab.net.now
    killed = False
    number = 0
    while lab.net.now < start + kill_after + 3.0:
        if not killed and lab.net.now >= start + kill_after:
            lab.kill("m2")
            killed = True
        line = f"line {number} ".encode() + b"x" * (48 + number % 200) + b"\n"
        number += 1
        client.send(line)
        sent.append(line)
        lab.net.run_for(0.007)
    client.wait_for(lambda: len(client.lines) >= len(sent), 20.0)
    assert client.lines == sent
    assert not client.reset and resets(lab.net) == 0
    buddy = next(
        m for n, m in lab.members.items() if n != "m2" and m.counters.get("recover_started")
    )
    assert buddy.counters.get("recover_completed") == 1


@pytest.mark.parametrize("kill_after", [0.2, 0.2035, 0.207, 0.5011])
def test_a_member_killed_mid_dialogue_leaves_a_transcript_its_buddy_continues(
    kill_after: float,
) -> None:
    dialogue_with_a_kill(SEED, kill_after)


def test_a_member_killed_mid_dialogue_with_loss_loses_no_line() -> None:
    for seed in (8, 9):
        dialogue_with_a_kill(seed, 0.3, loss=0.01)


def test_every_echo_waits_for_the_replica_that_holds_it() -> None:
    """Replicated, an echo goes out only after the buddy acknowledged the replica with it:
    the serving member sends nothing the buddy could not resume from."""
    lab = replicated_echo_lab(SEED)
    client = LineClient(lab, at=2.0)
    m1 = lab.members["m1"]
    client.send(b"one\n")
    client.wait_for(lambda: client.lines == [b"one\n"])
    assert m1.counters.get("replica_sent", 0) >= 2  # the SYN-ACK's and the echo's
    assert not m1.counters.get("replica_not_regenerable")
