"""The handoff echo (mip6.apps.handoff_echo) on the in-memory distributed server: a line client
on the lab's client host talks to the contact address; m1 (the contact node) keeps it at first
(``distribute=False``), and each 'H' moves it to another member, which announces itself.
Virtual time, deterministic per seed."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable

import pytest

from labnet.dserver_lab import CONTACT, MEMBERS, PORT, DServerLab, resets
from mip6.apps.handoff_echo import (
    ERROR_OVERLONG,
    MAX_LINE,
    EchoState,
    HandoffEchoService,
    StateError,
)
from tcp_migrate.core import CloseReason, TcpState
from tcp_migrate.stack import Socket

SEED = 5
ANNOUNCED = re.compile(rb"member (\S+) took you\n")


def echo_lab(seed: int = SEED, **options: object) -> DServerLab:
    return DServerLab(
        seed,
        distribute=False,
        service=lambda name: HandoffEchoService(str(MEMBERS[name])),
        **options,  # type: ignore[arg-type]
    )


class LineClient:
    """A sans-I/O line client on the lab's client host: what it sends, and every line that
    came back, in order."""

    def __init__(self, lab: DServerLab, at: float = 1.0) -> None:
        self.lab = lab
        lab.net.run_until(at)  # the contact node has registered C by then
        self.sock = lab.client_host.connect(lab.net.now, str(CONTACT), PORT)
        self.sock.on_change = self._changed
        self.received = b""
        self.lines: list[bytes] = []
        self.eof = False
        self.reset = False
        self._flush()

    def _flush(self) -> None:
        self.lab.net.nodes["client"].runtime.flush_host()

    def _changed(self, sock: Socket) -> None:
        while data := sock.recv(1 << 16):
            self.received += data
        *whole, _ = self.received.split(b"\n")
        self.lines = [line + b"\n" for line in whole]
        if sock.at_eof and not self.eof:
            self.eof = True
            sock.close()
        elif sock.state is TcpState.CLOSED and not self.eof:
            self.reset = True

    def send(self, data: bytes) -> None:
        assert self.sock.send(data) == len(data)
        self._flush()

    def wait_for(self, done: Callable[[], bool], limit: float = 10.0) -> None:
        deadline = self.lab.net.now + limit
        while not done():
            assert self.lab.net.now < deadline, (self.lines[-5:], self.received[-200:])
            self.lab.net.run_for(0.005)

    def announcements(self) -> list[str]:
        return [m.group(1).decode() for line in self.lines if (m := ANNOUNCED.fullmatch(line))]

    def quit(self) -> None:
        self.send(b"Q\n")
        self.wait_for(lambda: self.eof)
        self.lab.net.run_for(1.0)
        assert self.lines[-1] == b"bye\n"
        assert self.sock.state is TcpState.CLOSED
        assert self.sock.close_reason is CloseReason.NORMAL
        assert not self.reset


def services(lab: DServerLab) -> dict[str, HandoffEchoService]:
    return lab.services  # type: ignore[return-value]


def handoff_dialogue(client: LineClient, rounds: int, limit: float = 10.0) -> list[bytes]:
    """``rounds`` times: an ordinary line, 'H', and a line sent right behind the 'H' (it waits
    in the TCP receive buffer and travels with the connection); the next round once the
    announcement (or the failure line) is in. The ordinary lines sent, in order."""
    sent: list[bytes] = []
    for i in range(rounds):
        before, after = f"round {i} before\n".encode(), f"round {i} after, Hi\n".encode()
        client.send(before + b"H\n" + after)
        sent += [before, after]
        answers = len(client.announcements())
        client.wait_for(
            lambda a=answers: (
                len(client.announcements()) > a  # type: ignore[misc]
                or any(line.startswith(b"handoff failed") for line in client.lines[-3:])
            ),
            limit,
        )
    client.wait_for(lambda: client.lines[-1:] == [sent[-1]], limit)
    return sent


def echoed(client: LineClient) -> list[bytes]:
    """The lines that came back, without the members' own lines."""
    return [
        line
        for line in client.lines
        if not ANNOUNCED.fullmatch(line) and not line.startswith(b"handoff failed")
    ]


def test_ordinary_lines_are_echoed() -> None:
    lab = echo_lab()
    client = LineClient(lab)
    lines = [b"Please echo my data\n", b"Some more data\r\n", b"HiHaHo is no handoff\n", b"\n"]
    client.send(b"".join(lines[:2]))
    client.wait_for(lambda: len(client.lines) == 2)
    client.send(b"".join(lines[2:]))
    client.wait_for(lambda: len(client.lines) == 4)
    assert client.lines == lines
    # a line of exactly MAX_LINE bytes before its newline is still a line
    longest = b"x" * MAX_LINE + b"\n"
    client.send(longest)
    client.wait_for(lambda: len(client.lines) == 5)
    assert client.lines[-1] == longest
    m1 = services(lab)["m1"]
    assert m1.lines_echoed == 5 and m1.handoffs_requested == 0
    client.quit()
    assert resets(lab.net) == 0


def test_each_handoff_goes_to_another_member_which_announces_itself() -> None:
    lab = echo_lab()
    client = LineClient(lab)
    sent = handoff_dialogue(client, 6)
    names = client.announcements()
    assert len(names) == 6
    holders = [str(MEMBERS["m1"]), *names]
    assert all(a != b for a, b in itertools.pairwise(holders)), holders
    assert set(names) <= {str(a) for a in MEMBERS.values()}
    # the line before each 'H' is the donor's, the announcement comes next, then the line
    # sent behind the 'H', echoed by the acceptor
    expected: list[bytes] = []
    for i, name in enumerate(names):
        expected += [sent[2 * i], f"member {name} took you\n".encode(), sent[2 * i + 1]]
    assert client.lines == expected
    # the serving member answered from its own address: the last data came from the last
    # member announced
    last = next(n for n, a in MEMBERS.items() if str(a) == names[-1])
    assert services(lab)[last].lines_echoed >= 1
    client.quit()
    assert resets(lab.net) == 0


def test_handoffs_back_to_back_in_one_segment_chain() -> None:
    """The seeds' "HiHaHoHeHuHa": 'H' lines behind an 'H' travel unread with the connection,
    and each acceptor announces itself, then reads the next 'H' and hands on."""
    lab = echo_lab()
    client = LineClient(lab)
    client.send(b"H\nH\nH\nafter the chain\n")
    client.wait_for(lambda: client.lines[-1:] == [b"after the chain\n"])
    names = client.announcements()
    assert len(names) == 3 and len(client.lines) == 4
    holders = [str(MEMBERS["m1"]), *names]
    assert all(a != b for a, b in itertools.pairwise(holders)), holders
    client.quit()
    assert resets(lab.net) == 0


def test_handoff_not_asked_for_is_transparent() -> None:
    """A handoff the client did not ask for (an operator's command, a policy) moves the
    connection without a word to the client."""
    lab = echo_lab()
    client = LineClient(lab)
    client.send(b"one\n")
    client.wait_for(lambda: len(client.lines) == 1)
    lab.handoff("m1", "m2")
    lab.net.run_for(0.5)
    assert lab.members["m1"].counters["handoff_completed"] == 1
    client.send(b"two\n")
    client.wait_for(lambda: len(client.lines) == 2)
    assert client.lines == [b"one\n", b"two\n"]
    assert services(lab)["m2"].lines_echoed == 1
    client.quit()
    assert resets(lab.net) == 0


def test_two_hundred_handoffs_lose_nothing() -> None:
    lab = echo_lab()
    client = LineClient(lab)
    sent = handoff_dialogue(client, 200)
    names = client.announcements()
    assert len(names) == 200
    holders = [str(MEMBERS["m1"]), *names]
    assert all(a != b for a, b in itertools.pairwise(holders))
    assert echoed(client) == sent  # every line once, in order
    assert not any(line.startswith(b"handoff failed") for line in client.lines)
    accepted = {n: s.handed_in_count for n, s in services(lab).items()}
    assert sum(accepted.values()) == 200 and all(accepted.values()), accepted
    completed = sum(m.counters.get("handoff_completed", 0) for m in lab.members.values())
    assert completed == 200
    client.quit()
    assert resets(lab.net) == 0
    # nothing left in flight, nothing frozen, no member keeps a connection it handed off
    lab.net.run_for(5.0)
    for name, member in lab.members.items():
        assert not member._outgoing and not member._incoming, name
        assert not [s for s in member.host.stack.connections if s.frozen], name
    # each donor forgot the connection it handed off: only the last holder knows it
    assert sum(len(s._connections) for s in services(lab).values()) == 1


def test_quit_closes_cleanly() -> None:
    lab = echo_lab()
    client = LineClient(lab)
    client.send(b"one\nH\ntwo\n")
    client.wait_for(lambda: len(client.lines) == 3)
    # 'Q' with more lines behind it: they are never answered, and never reset
    client.send(b"Q\r\nnever echoed\n")
    client.wait_for(lambda: client.eof)
    lab.net.run_for(1.0)
    assert client.lines[-1] == b"bye\n" and b"never echoed" not in client.received
    assert client.sock.state is TcpState.CLOSED
    assert client.sock.close_reason is CloseReason.NORMAL
    assert not client.reset and resets(lab.net) == 0
    # the member that answered 'Q' is in TIME_WAIT (it closed first), nobody else holds it
    holders = [
        name
        for name, member in lab.members.items()
        if any(s.key[0] == CONTACT.packed for s in member.host.stack.connections)
    ]
    assert len(holders) == 1
    (sock,) = [
        s for s in lab.members[holders[0]].host.stack.connections if s.key[0] == CONTACT.packed
    ]
    assert sock.state is TcpState.TIME_WAIT


def test_one_percent_loss_loses_nothing() -> None:
    lab = echo_lab(loss=0.01)
    client = LineClient(lab)
    sent = handoff_dialogue(client, 30, limit=30.0)
    assert echoed(client) == sent
    answers = len(client.announcements()) + sum(
        line.startswith(b"handoff failed") for line in client.lines
    )
    assert answers == 30  # one answer per 'H', whatever the losses did
    assert len(client.announcements()) >= 25
    assert any(s.lost for s in lab.net.trace)
    client.quit()
    assert resets(lab.net) == 0


def test_overlong_line_is_refused_and_closed_cleanly() -> None:
    lab = echo_lab()
    client = LineClient(lab)
    client.send(b"fine\n")
    client.wait_for(lambda: len(client.lines) == 1)
    client.send(b"y" * (3 * MAX_LINE))  # no newline, more than a line and more than a window
    client.wait_for(lambda: client.eof)
    lab.net.run_for(1.0)
    assert client.lines == [b"fine\n", ERROR_OVERLONG]
    assert client.sock.state is TcpState.CLOSED
    assert client.sock.close_reason is CloseReason.NORMAL
    assert not client.reset and resets(lab.net) == 0
    m1 = services(lab)["m1"]
    assert m1.errors == 1
    assert all(len(e.input) == 0 for e in m1._connections.values())


def test_failed_handoff_says_so_and_echo_continues() -> None:
    lab = echo_lab(attempt_timeout=0.5)
    lab.kill("m2")
    lab.kill("m3")
    client = LineClient(lab)
    client.send(b"before\nH\nafter\n")
    client.wait_for(lambda: len(client.lines) == 3, limit=5.0)
    assert client.lines == [
        b"before\n",
        f"handoff failed, still {MEMBERS['m1']}\n".encode(),
        b"after\n",
    ]
    m1 = lab.members["m1"]
    assert m1.counters["handoff_failed"] == 1
    assert m1.history[-1]["outcome"] == "kept"
    assert services(lab)["m1"].failed_handoffs == 1
    client.send(b"still here\n")
    client.wait_for(lambda: len(client.lines) == 4)
    assert client.lines[-1] == b"still here\n"
    client.quit()
    assert resets(lab.net) == 0


def test_same_seed_same_trace() -> None:
    def run() -> tuple[str, bytes]:
        lab = echo_lab(11, loss=0.01)
        client = LineClient(lab)
        handoff_dialogue(client, 8, limit=30.0)
        client.quit()
        digest = hashlib.sha256()
        for sent in lab.net.trace:
            digest.update(f"{sent.time!r} {sent.sender} {sent.receiver} {sent.lost}".encode())
            digest.update(sent.data)
        return digest.hexdigest(), client.received

    assert run() == run()


def test_state_round_trip_and_bad_state() -> None:
    state = EchoState(announce=True, closing=False, output=b"out\n", input=b"partial")
    assert EchoState.decode(state.encode()) == state
    for bad in (
        b"",
        b"XX\x00\x00\x00\x00\x00",
        b"E1\x80\x00\x00\x00\x00",
        b"E1\x00\xff\xff\xff\xff",
    ):
        with pytest.raises(StateError):
            EchoState.decode(bad)
    with pytest.raises(StateError):
        EchoState.decode(EchoState(input=b"z" * (MAX_LINE + 2)).encode())
