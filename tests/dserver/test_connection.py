"""The member channel over the members' own TCP stacks, on the simulator's virtual time: two
hosts (no Mobile IPv6) open a channel, exchange handoff messages, one a large INIT carrying real
snapshots, over a lossy path; a member with the wrong group key is refused on both sides; the
same seed gives the same packets."""

from __future__ import annotations

import functools
import hashlib
import random
from ipaddress import IPv6Address

from mip6.dserver import messages as m
from mip6.dserver.channel import (
    FRAME_OVERHEAD,
    Channel,
    Closed,
    CloseReason,
    Established,
    MessageReceived,
)
from mip6.dserver.connection import BULK_BUFFERED, MemberConnection, MemberListener, connect
from mip6.runtime.host import Host
from mip6.runtime.memory import MemoryNetwork, Path
from tcp_migrate.core import TcpState
from tests.engines import PassThrough

M1 = IPv6Address("2001:db8:10::1")
M2 = IPv6Address("2001:db8:20::1")
PORT = 7171
KEY = bytes(range(32))


def lab(seed: int, loss: float = 0.0) -> tuple[MemoryNetwork, Host, Host]:
    net = MemoryNetwork(seed, default_path=Path(latency=0.01, loss=loss))
    rng = random.Random(seed)
    hosts = []
    for name, address in (("m1", M1), ("m2", M2)):
        host = Host(addresses=[address], secret=rng.randbytes(32))
        net.add(name, PassThrough([]), host=host)  # type: ignore[arg-type]
        net.route(address, name)
        hosts.append(host)
    return net, hosts[0], hosts[1]


def channel_factory(identity: IPv6Address, key: bytes, rng: random.Random):  # type: ignore[no-untyped-def]
    return lambda role: Channel(
        role=role, group_key=key, identity=identity, random_bytes=rng.randbytes
    )


def run(seed: int, *, loss: float = 0.0, key2: bytes = KEY, snapshot_bytes: int = 200_000):  # type: ignore[no-untyped-def]
    net, h1, h2 = lab(seed, loss)
    rng = random.Random(seed + 1)
    got: dict[str, list[object]] = {"m1": [], "m2": []}

    def on_m2(connection: MemberConnection, event: object) -> None:
        got["m2"].append(event)
        if isinstance(event, MessageReceived) and isinstance(event.message, m.Prepare):
            connection.send(
                m.Prepared(handoff_id=event.message.handoff_id, client=event.message.client)
            )

    MemberListener(h2.listen(PORT), channel_factory(M2, key2, rng), on_m2)
    flush = [net.nodes["m1"].runtime.flush_host, net.nodes["m2"].runtime.flush_host]
    conn = connect(
        functools.partial(h1.connect, net.now),
        M2,
        PORT,
        channel_factory(M1, KEY, rng),
        lambda c, e: got["m1"].append(e),
    )
    client = IPv6Address("2001:db8:99::5")
    conn.send(m.Prepare(handoff_id=7, client=client))
    blob = rng.randbytes(snapshot_bytes)
    init = m.Init(
        handoff_id=7,
        client=client,
        next_sequence=9,
        lifetime=60,
        connections=(m.ConnectionState(snapshot=blob, regenerable=False, application_state=b"s"),),
    )
    conn.send(init)
    for f in flush:
        f()
    net.run_for(20.0)
    trace = hashlib.sha256(b"".join(s.data for s in net.trace)).hexdigest()
    return got, init, trace


def test_channel_over_tcp_carries_prepare_init_and_answers() -> None:
    got, init, _ = run(1, loss=0.02)
    assert [type(e) for e in got["m1"]] == [Established, MessageReceived]
    assert isinstance(got["m1"][1].message, m.Prepared)  # type: ignore[attr-defined]
    received = [e.message for e in got["m2"] if isinstance(e, MessageReceived)]  # type: ignore[attr-defined]
    assert got["m2"][0] == Established(peer_identity=M1)
    assert [type(x) for x in received] == [m.Prepare, m.Init] and received[1] == init


def test_wrong_group_key_is_refused_on_both_sides_and_nothing_delivered() -> None:
    got, _, _ = run(2, key2=bytes(32))
    for side in ("m1", "m2"):
        assert not any(isinstance(e, MessageReceived | Established) for e in got[side])
        closed = [e for e in got[side] if isinstance(e, Closed)]
        assert [c.reason for c in closed] == [CloseReason.WRONG_GROUP_KEY]  # type: ignore[attr-defined]


def test_same_seed_same_packets() -> None:
    assert run(3, loss=0.01)[2] == run(3, loss=0.01)[2]
    assert run(3, loss=0.01)[2] != run(4, loss=0.01)[2]


def test_peer_closing_its_side_is_an_end_of_stream_and_the_connection_closes() -> None:
    net, h1, h2 = lab(5)
    rng = random.Random(5)
    events: list[object] = []
    listener = MemberListener(h2.listen(PORT), channel_factory(M2, KEY, rng), lambda c, e: None)
    connect(
        functools.partial(h1.connect, net.now),
        M2,
        PORT,
        channel_factory(M1, KEY, rng),
        lambda c, e: events.append(e),
    )
    net.nodes["m1"].runtime.flush_host()
    net.run_for(1.0)
    assert events == [Established(peer_identity=M2)]
    (accepted,) = listener.connections
    accepted.sock.close()
    net.nodes["m2"].runtime.flush_host()
    net.run_for(1.0)
    assert events[1:] == [Closed(CloseReason.END_OF_STREAM)]
    assert not h1.stack.connections or all(
        s.state.name in ("FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT", "LAST_ACK", "CLOSING")
        for s in h1.stack.connections
    )


class _Pair:
    """m1's channel to m2, established, on the lab of ``seed``: what m2 received, m1's
    events."""

    def __init__(self, seed: int) -> None:
        self.net, self.h1, self.h2 = lab(seed)
        self.rng = random.Random(seed + 1)
        self.received: list[m.Message] = []
        self.events: list[object] = []
        self.listener = MemberListener(
            self.h2.listen(PORT), channel_factory(M2, KEY, self.rng), self._on_m2
        )
        self.conn = connect(
            functools.partial(self.h1.connect, self.net.now),
            M2,
            PORT,
            channel_factory(M1, KEY, self.rng),
            lambda c, e: self.events.append(e),
        )
        self.net.nodes["m1"].runtime.flush_host()
        while not self.conn.established:
            self.net.run_for(0.01)

    def _on_m2(self, connection: MemberConnection, event: object) -> None:
        if isinstance(event, MessageReceived):
            self.received.append(event.message)

    def replicas(self, count: int) -> list[m.Message]:
        """``count`` 30 kB replicas of one client."""
        state = m.ConnectionState(snapshot=self.rng.randbytes(30_000), regenerable=True)
        return [
            m.Replica(
                client=CLIENT_OF_REPLICAS,
                binding_sequence=1,
                lifetime=60,
                view_number=1,
                connections=(state,),
                serial=serial,
            )
            for serial in range(count)
        ]


CLIENT_OF_REPLICAS = IPv6Address("2001:db8:99::5")


def test_a_heartbeat_goes_out_ahead_of_queued_replicas_and_a_drop_stays_behind_them() -> None:
    """Twenty 30 kB replicas queued on the channel, then a REPLICA_DROP and a heartbeat: the
    heartbeat waits behind the replicas the send buffer took (no more once it held
    BULK_BUFFERED), not behind the replicas still waiting (a loaded chaos run's two-phase
    commit timed out behind 150 kB of them, and behind a full 256 kB buffer of them with 1%
    loss), and the drop, whose client's replica must not come after it, arrives after every
    replica."""
    pair = _Pair(11)
    net, conn, got = pair.net, pair.conn, pair.received
    assert conn.sock.send_space > 4 * BULK_BUFFERED  # the buffer alone would take 8 replicas
    sent = pair.replicas(20)
    client = CLIENT_OF_REPLICAS
    sent += [m.ReplicaDrop(client=client), m.Heartbeat(sequence=1, echo=0, view_number=1)]
    before = conn.queued  # (the handshake's last bytes, not acknowledged yet)
    for message in sent:
        conn.send(message)
    # what the peer would miss now: every frame as it goes, sealed (a length and a tag each)
    assert conn.queued - before == sum(len(message.emit()) + FRAME_OVERHEAD for message in sent)
    net.nodes["m1"].runtime.flush_host()
    net.run_for(20.0)
    kinds = [type(message).__name__ for message in got]
    assert len(kinds) == 22 and kinds[-1] == "ReplicaDrop", kinds
    # the replicas in the buffer before it was BULK_BUFFERED full, and the one that filled it
    assert kinds.index("Heartbeat") <= BULK_BUFFERED // 30_000 + 1, kinds
    serials = [message.serial for message in got if isinstance(message, m.Replica)]
    assert serials == list(range(20))
    assert conn.queued == 0


def test_a_peer_restarted_with_replicas_queued_closes_the_channel_quietly() -> None:
    """Twenty 30 kB replicas queued, two at a time in the send buffer (BULK_BUFFERED) and the
    rest waiting, when the peer is killed and started again (its new stack knows nothing of
    the connection and answers the next segment with a RST): the channel closes (end of
    stream), the replicas still waiting go with it, and nothing raises, neither then nor at a
    later send. The room the reset connection's buffer left was filled with the next waiting
    replica, sealed on the channel the end of stream had just closed: ChannelStateError inside
    the member's entry point, and again at every send after (the connection never learnt it
    was closed). A chaos run's member lost its engine's pending actions so 241 times in 12 s
    after a killed member came back, its replicas to its buddy among them, and the clients it
    served were reset when it died in turn."""
    pair = _Pair(13)
    net, conn, received, events = pair.net, pair.conn, pair.received, pair.events
    for replica in pair.replicas(20):
        conn.send(replica)
    net.nodes["m1"].runtime.flush_host()
    while len(received) < 5:
        net.run_for(0.001)
    assert conn.sock.send_buffered >= BULK_BUFFERED  # and the rest wait
    (accepted,) = pair.listener.connections
    net.drop_in_flight(lambda receiver, data: True)
    pair.h2.stack.detach(accepted.sock)  # m2's new life: no such connection
    while conn.sock.state is not TcpState.CLOSED:
        assert net.now < 10.0
        net.run_for(0.01)
    assert conn.closed and events[1:] == [Closed(CloseReason.END_OF_STREAM)], events
    assert len(received) < 20
    conn.send(m.Heartbeat(sequence=1, echo=0, view_number=1))  # dropped, as on any closed one
    net.run_for(1.0)
