"""A replica of a running connection (``Connection.replica``) and its resynchronization after
the connection's holder died (``Connection.resync``): the peer's next acknowledgement says where
both directions stand, within bounds; issue 15 item 3's tcp_migrate part.

In the two-connection harness B is the holder (a distributed-server member serving A, the
client). A replica of B is taken while it runs; B goes on sending (and receiving) for a while,
then dies, and the replica, imported, resynchronized and thawed, takes B's place on the link."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from mip6.wire.tcp import NoOperation, Timestamps
from tcp_migrate.core import CloseReason, Connection, ConnectionStateError, InputResult, TcpState

from .pair import ADDRESS_A, ADDRESS_B, Pair, Peer, decode

STREAM = bytes(i * 7 % 251 for i in range(600_000))  # B's regenerable output


def serve(conn: Connection, start: int, end: int) -> int:
    """Writes STREAM[start:end] as the ring takes it; the next offset to write."""
    return start + conn.send(memoryview(STREAM)[start:end])


def download(pair: Pair, received: bytearray, upto: int, written: list[int]) -> None:
    """B writes STREAM up to ``upto`` while A reads it, until A has all of it."""

    def app(p: Pair) -> None:
        assert p.b is not None
        written[0] = serve(p.b, written[0], upto)
        while data := p.a.recv(1 << 16):
            received.extend(data)

    pair.start(app)
    pair.run(lambda: len(received) >= upto)
    pair.app = None


def replica_taken(pair: Pair, received: bytearray, written: list[int]) -> tuple[bytes, int]:
    pair.handshake()
    assert pair.b is not None
    download(pair, received, 100_000, written)
    # B has 30 kB more in flight when the replica is taken
    written[0] = serve(pair.b, written[0], 130_000)
    pair.flush()
    blob = pair.b.replica(pair.now)
    assert pair.b.check() == 0 and not pair.b.frozen  # the running connection unchanged
    return blob, pair.now


def take_over(pair: Pair, blob: bytes, taken: int) -> Connection:
    """B dies; its replica, taken at ``taken``, takes its place (A's segments reach it from
    now on)."""
    replica = Connection.import_(blob)
    replica.resync(age_ms=pair.now - taken)
    pair.b = replica
    replica.thaw(pair.now)
    pair.flush()
    return replica


def test_the_replica_resyncs_from_the_peers_acknowledgement_and_the_stream_goes_on() -> None:
    pair = Pair(seed=3)
    received, written = bytearray(), [0]
    blob, taken = replica_taken(pair, received, written)
    # B goes on after the replica: 200 kB more to A, and A sends B 300 bytes B reads
    assert pair.a.send(b"q" * 300) == 300
    download(pair, received, 300_000, written)
    b = pair.b
    assert b is not None
    pair.run(lambda: pair.a.acked_offset == 300)
    assert b.recv(1 << 16) == b"q" * 300
    replica = take_over(pair, blob, taken)
    assert replica.resyncing
    pair.run(lambda: not replica.resyncing)
    # where A stands: it had all 300 kB, and B had taken its 300 bytes (which A never sends
    # again: the replica waits a retransmission timeout for them, then goes past)
    assert replica.acked_offset == 300_000
    assert replica.resync_gap == 0
    pair.run(lambda: replica.resync_gap == 300, max_ms=5_000)
    assert replica.state is TcpState.ESTABLISHED
    # the replica serves the rest of the stream from there; A gets it whole, in order
    written[0] = replica.acked_offset
    download(pair, received, 600_000, written)
    assert bytes(received) == STREAM
    assert not any(result == InputResult.RESET for _, result in pair.results)
    assert pair.a.state is TcpState.ESTABLISHED


def test_bytes_the_dead_holder_never_acknowledged_come_again_to_the_replica() -> None:
    """A sent its request to B, which died before it acknowledged it (the request's segments
    lost with it): the peer's answer to the probe stands past the request, but the replica
    does not skip it. Its duplicate ACKs have A send the request again at once, and the
    replica reads it whole (skipping to A's sequence number lost the chaos runs' requests
    sent just before a member died: the connection could never be answered)."""
    pair = Pair(seed=6)
    received, written = bytearray(), [0]
    blob, taken = replica_taken(pair, received, written)
    pair.run(lambda: pair.a.acked_offset == 0 and not pair.ab.next_time(), max_ms=1_000)
    pair.filters["ab"] = lambda raw: []  # B dies: the request never reaches it
    request = b"GET /next HTTP/1.1\r\n\r\n"
    assert pair.a.send(request) == len(request)
    pair.flush()
    del pair.filters["ab"]
    replica = take_over(pair, blob, taken)
    got = bytearray()

    def read(p: Pair) -> None:
        got.extend(replica.recv(1 << 16))

    pair.start(read)
    pair.run(lambda: bytes(got) == request, max_ms=2_000)
    assert replica.resync_gap == 0 and not replica.resyncing
    pair.run(lambda: pair.a.acked_offset == len(request), max_ms=1_000)


def request_lost_with_the_holder(pair: Pair, *, holders_window: int | None) -> int:
    """B dies with A's request unacknowledged (it never reached B, nor did anything A sent
    after B's last data), A's retransmission timer backed off as a client's that sent to a
    dead member; the replica resumes. ``holders_window``: the window B advertised last, as
    A holds it (None: the replica's own). How long after the takeover the replica has read
    the request whole."""
    received, written = bytearray(), [0]
    blob, taken = replica_taken(pair, received, written)
    pair.run(lambda: not pair.ba.next_time(), max_ms=1_000)  # B's last data reaches A
    pair.filters["ab"] = lambda raw: []  # and nothing of A's reaches B any more
    request = b"GET /next HTTP/1.1\r\n\r\n"
    assert pair.a.send(request) == len(request)
    pair.flush()
    pair.run(lambda: not pair.ab.next_time() and not pair.ba.next_time(), max_ms=1_000)
    del pair.filters["ab"]
    pair.a.raw.rto_ms = 8_000  # backed off (RFC 6298 5.5)
    pair.a.raw.t_rtx = pair.now + 8_000
    if holders_window is not None:
        pair.a.raw.snd_wnd = holders_window
    started = pair.now
    replica = take_over(pair, blob, taken)
    got = bytearray()
    pair.start(lambda p: got.extend(replica.recv(1 << 16)))
    pair.run(lambda: bytes(got) == request, max_ms=20_000)
    return pair.now - started


@pytest.mark.parametrize("holders_window", [None, 20_000])
def test_a_request_lost_with_the_holder_comes_again_at_the_replicas_duplicate_acks(
    holders_window: int | None,
) -> None:
    """The replica's duplicate ACKs at its RCV.NXT have A send its request again at once
    (RFC 5681 3.2's fast retransmit), not at its backed-off timer: enough of them count as
    duplicates even when the first changes the window A holds for B (its condition (e)).
    With two, A waited for the timer (a chaos run's request came again 10 s later)."""
    waited = request_lost_with_the_holder(Pair(seed=6), holders_window=holders_window)
    assert waited < 200, waited  # the delay each way is 20 ms, A's timer 8 s away


def test_a_peer_that_never_answers_makes_the_replica_give_up_without_a_reset() -> None:
    pair = Pair(seed=4)
    received, written = bytearray(), [0]
    blob, taken = replica_taken(pair, received, written)
    pair.filters["ab"] = lambda raw: []  # nothing from A arrives any more
    replica = take_over(pair, blob, taken)
    pair.record = True
    pair.run(lambda: replica.state is TcpState.CLOSED, max_ms=3_600_000)
    assert replica.close_reason is CloseReason.TIMEOUT
    probes = pair.sent_by("ba")
    assert len(probes) > 3 and all(not s.segment.payload for s in probes)
    gaps = [b.time - a.time for a, b in itertools.pairwise(probes)]
    assert gaps == sorted(gaps)  # backed off


def test_an_acknowledgement_beyond_the_bound_resets_the_replica() -> None:
    pair = Pair(seed=5)
    received, written = bytearray(), [0]
    blob, _ = replica_taken(pair, received, written)
    replica = Connection.import_(blob)
    replica.resync(age_ms=0)
    replica.thaw(pair.now)
    probe = replica.output(pair.now)
    assert probe is not None
    sent = decode(probe, source=ADDRESS_B, destination=ADDRESS_A)
    (stamps,) = [o for o in sent.options if isinstance(o, Timestamps)]
    # the probe is a keepalive's segment, at the replica's SND.UNA - 1
    ack = (sent.sequence_number + 1 + (1 << 30) + 1) & 0xFFFFFFFF
    far = Peer(replica, swap=True).build(
        seq=sent.acknowledgment_number,
        ack=ack,
        options=(
            NoOperation(),
            NoOperation(),
            Timestamps(tsval=stamps.tsecr + 10, tsecr=stamps.tsval),
        ),
    )
    assert replica.input(pair.now, far) == InputResult.RESYNC_REFUSED
    assert replica.state is TcpState.CLOSED and replica.close_reason is CloseReason.RESYNC
    rst = replica.output(pair.now)
    assert rst is not None
    reset = decode(rst, source=ADDRESS_B, destination=ADDRESS_A)
    # at the peer's RCV.NXT, its acknowledgement: the one a peer takes (RFC 5961 3.2)
    assert reset.flags.RST and reset.sequence_number == ack


def test_resync_needs_a_frozen_established_connection() -> None:
    pair = Pair(seed=6)
    pair.handshake()
    assert pair.b is not None
    with pytest.raises(ConnectionStateError, match="resync"):
        pair.b.resync(age_ms=0)


def stamp(raw: bytes, direction: str) -> int:
    source, destination = (ADDRESS_B, ADDRESS_A) if direction == "ba" else (ADDRESS_A, ADDRESS_B)
    (stamps,) = [
        o
        for o in decode(raw, source=source, destination=destination).options
        if isinstance(o, Timestamps)
    ]
    return stamps.tsval


@pytest.mark.parametrize("age", [True, False])
def test_the_probe_is_stamped_past_every_tsval_the_dead_holder_sent(age: bool) -> None:
    """RFC 7323 5.3: the peer holds the dead holder's last TSval as TS.Recent, and Linux
    (6.15 on) drops a pure ACK older than that without the duplicate ACK that would answer
    the probe. With the replica's age the probe is stamped past it; without, it is not (what
    the netns member-kill test ran into: no answer until the clock caught up)."""
    pair = Pair(seed=7, record=True)
    received, written = bytearray(), [0]
    blob, taken = replica_taken(pair, received, written)
    download(pair, received, 400_000, written)  # B runs on for a while
    while pair.now < taken + 3_000:  # and lives 3 s in all, sending now and then
        pair.now += 250
        written[0] = serve(pair.b, written[0], written[0] + 100)
        pair.flush()
        pair.run(lambda: pair.b.acked_offset == written[0])
    last = max(stamp(s.raw, "ba") for s in pair.sent_by("ba"))
    replica = Connection.import_(blob)
    replica.resync(age_ms=pair.now - taken if age else 0)
    replica.thaw(pair.now)
    probe = replica.output(pair.now)
    assert probe is not None
    assert (stamp(probe, "ba") - last) % (1 << 32) < (1 << 31) if age else stamp(probe, "ba") < last


def test_a_replica_taken_after_the_close_sends_the_rest_and_its_fin_again() -> None:
    """B wrote its last bytes and closed (FIN-WAIT-1, the FIN not acknowledged) when the
    replica was taken, then died. The replica goes back to ESTABLISHED on resync: the
    application writes what the peer lacks and closes again; A gets the stream whole, then
    the end of stream."""
    pair = Pair(seed=8)
    received, written = bytearray(), [0]
    pair.handshake()
    b = pair.b
    assert b is not None
    download(pair, received, 200_000, written)
    pair.filters["ba"] = lambda raw: []  # what B sends from now on is lost: it dies soon
    written[0] = serve(b, written[0], 230_000)
    b.shutdown_write()
    pair.flush()
    assert b.state is TcpState.FIN_WAIT_1
    blob, taken = b.replica(pair.now), pair.now
    pair.now += 300
    pair.filters.pop("ba")
    replica = take_over(pair, blob, taken)
    assert replica.state is TcpState.ESTABLISHED and replica.resyncing
    pair.run(lambda: not replica.resyncing)
    assert replica.acked_offset == 200_000
    written[0] = serve(replica, replica.acked_offset, 230_000)
    assert written[0] == 230_000
    replica.shutdown_write()
    pair.flush()

    def read(p: Pair) -> None:
        while data := p.a.recv(1 << 16):
            received.extend(data)

    pair.start(read)
    pair.run(lambda: pair.a.at_eof, max_ms=60_000)
    assert bytes(received) == STREAM[:230_000]
    pair.run(lambda: replica.state is TcpState.FIN_WAIT_2, max_ms=60_000)  # our FIN acked
    assert not any(result == InputResult.RESET for _, result in pair.results)


def probed(pair: Pair, blob: bytes) -> tuple[Connection, int, int, Callable[[int, int], bytes]]:
    """The replica imported, resynced and thawed, its probe taken off: the replica, its
    SND.UNA and stream offset then, and a maker of the peer's ACKs (``offset`` bytes past that
    SND.UNA, the peer's clock ``later`` ticks on from what the replica holds of it)."""
    replica = Connection.import_(blob)
    replica.resync(age_ms=500)
    replica.thaw(pair.now)
    probe = replica.output(pair.now)
    assert probe is not None
    sent = decode(probe, source=ADDRESS_B, destination=ADDRESS_A)
    (stamps,) = [o for o in sent.options if isinstance(o, Timestamps)]
    una = sent.sequence_number + 1

    def ack(offset: int, later: int) -> bytes:
        stamp = Timestamps(tsval=stamps.tsecr + later, tsecr=stamps.tsval)
        return Peer(replica, swap=True).build(
            seq=sent.acknowledgment_number,
            ack=una + offset,
            options=(NoOperation(), NoOperation(), stamp),
        )

    return replica, una, replica.acked_offset, ack


def test_an_answer_to_the_dead_holder_taken_first_is_overtaken_by_the_next() -> None:
    """An ACK the peer sent the dead holder, arriving after the probe went out, may stand
    behind where the peer is now. Taken as the answer, the replica's stream went back; the
    peer's next ACK, past what the replica has sent, moves it on again (a chaos run had the
    two exchange ACKs for 30 s instead: ours for the peer's old bytes, its duplicate ACKs
    past ours)."""
    pair = Pair(seed=9)
    received, written = bytearray(), [0]
    blob, _ = replica_taken(pair, received, written)
    replica, _, base, ack = probed(pair, blob)
    assert replica.input(pair.now, ack(2_000, 1)) == InputResult.OK  # stale
    assert not replica.resyncing and replica.acked_offset == base + 2_000
    assert replica.input(pair.now, ack(9_000, 2)) == InputResult.OK
    assert replica.acked_offset == base + 9_000
    assert replica.state is TcpState.ESTABLISHED


def test_a_later_answer_keeps_what_the_application_wrote_since_the_first() -> None:
    """The stale answer came first; the application then wrote the rest of its stream and
    closed. The peer's later ACK, past what was sent, takes off the ring only the bytes the
    peer holds, and the rest goes out from there (the chaos run's 'short' fetches: the ring was
    dropped and the FIN went out where the peer stood, the response's end lost)."""
    pair = Pair(seed=9)
    received, written = bytearray(), [0]
    blob, _ = replica_taken(pair, received, written)
    replica, una, base, ack = probed(pair, blob)
    assert replica.input(pair.now, ack(2_000, 1)) == InputResult.OK  # stale
    end = base + 2_000 + 20_000
    assert serve(replica, base + 2_000, end) == end  # the rest of the response
    replica.shutdown_write()
    buffered = replica.send_buffered
    assert replica.input(pair.now, ack(9_000, 2)) == InputResult.OK
    assert replica.acked_offset == base + 9_000
    assert replica.send_buffered == buffered - 7_000  # only what the peer holds left the ring
    segments = []
    while (out := replica.output(pair.now)) is not None:
        segments.append(decode(out, source=ADDRESS_B, destination=ADDRESS_A))
    data = [s for s in segments if s.payload]
    assert data and data[0].sequence_number == una + 9_000
    stream = b"".join(bytes(s.payload) for s in data)
    assert stream == STREAM[base + 9_000 : base + 9_000 + len(stream)]


def test_a_replica_taken_in_syn_received_completes_the_handshake_where_the_peer_stands() -> None:
    """The holder answered the SYN and died before the peer's first data (which completes the
    handshake) reached it: the peer is established, the holder's replica is in SYN-RECEIVED.
    Resynced (only its timestamp clock moves: no probe) and thawed, it takes the peer's next
    segment as the handshake's ACK and the stream goes on from the first byte (the chaos
    run's fetches reset after their SYN-ACK: nobody held the connection)."""
    pair = Pair(seed=5)
    pair.open()
    pair.run(lambda: pair.b is not None)
    assert pair.b is not None and pair.b.state is TcpState.SYN_RECEIVED
    pair.flush()  # the SYN-ACK is on its way
    blob, taken = pair.b.replica(pair.now), pair.now
    pair.filters["ab"] = lambda raw: []  # the holder is dead: nothing reaches it
    pair.run(lambda: pair.a.state is TcpState.ESTABLISHED)
    request = b"GET / HTTP/1.1\r\n\r\n"
    assert pair.a.send(request) == len(request)
    pair.flush()
    pair.run(lambda: False if pair.now < taken + 3_000 else True)  # its retransmissions lost
    replica = Connection.import_(blob)
    replica.resync(age_ms=pair.now - taken)
    assert not replica.resyncing  # nothing to ask the peer: its next segment says it all
    del pair.filters["ab"]
    pair.b = replica
    replica.thaw(pair.now)
    pair.flush()
    received = bytearray()

    def app(p: Pair) -> None:
        while data := replica.recv(1 << 16):
            received.extend(data)

    pair.start(app)
    pair.run(lambda: bytes(received) == request, max_ms=30_000)
    assert replica.state is TcpState.ESTABLISHED
    assert replica.send(b"HTTP/1.1 200 OK\r\n\r\n") > 0
    answer = bytearray()
    pair.app = lambda p: answer.extend(p.a.recv(1 << 16))
    pair.flush()
    pair.run(lambda: bytes(answer) == b"HTTP/1.1 200 OK\r\n\r\n", max_ms=30_000)
    assert not any(result == InputResult.RESET for _, result in pair.results)


def closed_by_the_holder(seed: int) -> Pair:
    """B writes b"bye" and closes; A has read it and its end, B is in FIN-WAIT-2."""
    pair = Pair(seed=seed, record=True)
    pair.handshake()
    assert pair.b is not None
    assert pair.b.send(b"bye") == 3
    pair.b.shutdown_write()
    pair.flush()
    pair.run(lambda: pair.b is not None and pair.b.state is TcpState.FIN_WAIT_2)
    assert pair.a.recv(16) == b"bye" and pair.a.at_eof
    return pair


def takes_over_and_answers_the_fin(pair: Pair, blob: bytes, taken: int, last: int) -> None:
    """B's replica, taken at ``taken`` in a closing state, resumes after B's death (every
    filter lifted) and acknowledges A's FIN sent again, stamped past ``last`` (B's last
    TSval) by the replica's age: A closes without a RST, the replica in TIME-WAIT."""
    age = pair.now - taken
    replica = Connection.import_(blob)
    state = replica.state
    replica.resync(age_ms=age)
    assert replica.state is state and not replica.resyncing  # nothing to ask
    pair.filters.clear()
    pair.b = replica
    replica.thaw(pair.now)
    pair.run(lambda: pair.a.state is TcpState.CLOSED, max_ms=30_000)
    assert pair.a.close_reason is CloseReason.NORMAL
    assert replica.state is TcpState.TIME_WAIT
    assert stamp(pair.sent_by("ba")[-1].raw, "ba") - last >= age
    assert not any(result == InputResult.RESET for _, result in pair.results)


def test_a_replica_taken_in_fin_wait_2_acknowledges_the_peers_fin() -> None:
    """The holder's FIN was acknowledged (FIN-WAIT-2) and it died before the peer's FIN
    reached it. Resynced (only its timestamp clock moves: everything it sent was
    acknowledged, so there is nothing to ask) and thawed, the replica acknowledges the
    peer's FIN sent again, stamped the replica's age past the holder's clock (the peer's
    PAWS test): the peer closes without a RST."""
    pair = closed_by_the_holder(seed=9)
    assert pair.b is not None
    pair.filters["ab"] = lambda raw: []  # the holder is dead: nothing reaches it
    blob, taken = pair.b.replica(pair.now), pair.now
    last = max(stamp(s.raw, "ba") for s in pair.sent_by("ba"))
    pair.a.shutdown_write()  # A's FIN, lost on its way to the dead holder
    pair.flush()
    pair.run(lambda: pair.now >= taken + 1_500)
    assert Connection.import_(blob).state is TcpState.FIN_WAIT_2
    takes_over_and_answers_the_fin(pair, blob, taken, last)


def test_a_replica_taken_in_time_wait_acknowledges_the_peers_fin_again() -> None:
    """One step later: the holder took the peer's FIN (TIME-WAIT) and its acknowledgement was
    lost; the replica is taken in TIME-WAIT and the holder dies. Resynced (nothing to ask:
    the only segment still to come is that FIN again) and thawed, the replica acknowledges
    the FIN sent again (RFC 9293 3.10.7.4) stamped past the holder's clock: the peer closes
    without a RST. tcp_migrate's resync refused TIME-WAIT, and a dead member's buddy could
    not take such a replica (a chaos run's client in LAST-ACK was reset)."""
    pair = closed_by_the_holder(seed=10)
    pair.filters["ba"] = lambda raw: []  # the holder's acknowledgement of A's FIN lost
    pair.a.shutdown_write()
    pair.flush()
    pair.run(lambda: pair.b is not None and pair.b.state is TcpState.TIME_WAIT)
    assert pair.b is not None
    blob, taken = pair.b.replica(pair.now), pair.now
    last = max(stamp(s.raw, "ba") for s in pair.sent_by("ba"))
    pair.filters["ab"] = lambda raw: []  # the holder is dead: nothing reaches it
    pair.run(lambda: pair.now >= taken + 1_500)
    assert pair.a.state is TcpState.LAST_ACK
    assert Connection.import_(blob).state is TcpState.TIME_WAIT
    takes_over_and_answers_the_fin(pair, blob, taken, last)


def test_a_full_replica_sends_its_unacknowledged_bytes_again_from_where_the_peer_stands() -> None:
    """A full replica (``include_unacked``) carries B's send ring: output that cannot be made
    again (an echo's). B dies with 30 kB the replica holds in flight, some of it delivered:
    the replica's first answer takes off the ring what A holds and sends the rest, and the
    application writes on after it; A gets the stream whole, nothing twice."""
    pair = Pair(seed=8)
    received, written = bytearray(), [0]
    pair.handshake()
    assert pair.b is not None
    download(pair, received, 100_000, written)
    written[0] = serve(pair.b, written[0], 130_000)
    blob, taken = pair.b.replica(pair.now, include_unacked=True), pair.now
    # a third of the flight reaches A, then B dies (the rest of its segments with it)
    delivered = [0]

    def some(raw: bytes) -> list[bytes]:
        delivered[0] += 1
        return [raw] if delivered[0] <= 7 else []

    pair.filters["ba"] = some
    pair.start(lambda p: received.extend(p.a.recv(1 << 16)))
    pair.run(lambda: not pair.ba.next_time(), max_ms=2_000)
    del pair.filters["ba"]
    assert 100_000 < len(received) < 130_000
    replica = take_over(pair, blob, taken)
    pair.run(lambda: not replica.resyncing, max_ms=2_000)
    # the ring kept what A had not had (the first answer may be an ACK A sent B before it
    # died: a later one takes off the rest)
    assert replica.acked_offset + replica.send_buffered == 130_000
    download(pair, received, 200_000, written)
    assert bytes(received) == STREAM[:200_000]
    assert replica.resync_gap == 0


def test_a_full_replica_resets_when_the_peer_stands_beyond_its_ring() -> None:
    """The holder sent bytes no replica covered (it did not wait for the buddy): the peer
    has output the replica cannot know, and the stream cannot go on right: a reset."""
    pair = Pair(seed=9)
    received, written = bytearray(), [0]
    pair.handshake()
    assert pair.b is not None
    download(pair, received, 100_000, written)
    blob, taken = pair.b.replica(pair.now, include_unacked=True), pair.now
    download(pair, received, 110_000, written)  # 10 kB the replica never had
    replica = take_over(pair, blob, taken)
    pair.run(lambda: replica.state is TcpState.CLOSED, max_ms=2_000)
    assert replica.close_reason is CloseReason.RESYNC
    assert bytes(received) == STREAM[:110_000]
    # and the peer is reset, not left waiting: the RST stands at its RCV.NXT (RFC 5961 3.2
    # drops one at the replica's SND.NXT, behind what the peer holds)
    pair.run(lambda: pair.a.state is TcpState.CLOSED, max_ms=2_000)
    assert pair.a.close_reason is CloseReason.RESET


def test_a_peer_behind_the_replica_sends_again_what_the_replica_has() -> None:
    """B held back its acknowledgement of A's request until a replica covered it (a member
    replicating its connections), then died: A stands behind the replica and sends the
    request again. The replica is not reset and reads the request once."""
    pair = Pair(seed=10)
    received, written = bytearray(), [0]
    pair.handshake()
    assert pair.b is not None
    download(pair, received, 50_000, written)
    pair.filters["ba"] = lambda raw: []  # nothing from B reaches A any more
    request = b"GET /next HTTP/1.1\r\n\r\n"
    assert pair.a.send(request) == len(request)
    pair.run(lambda: pair.b is not None and pair.b.received_offset == len(request), max_ms=1_000)
    blob, taken = pair.b.replica(pair.now, include_unacked=True), pair.now
    replica = take_over(pair, blob, taken)
    # the probe is lost too: A's next segment is its retransmission of the request
    pair.run(lambda: not replica.resyncing, max_ms=3_000)
    del pair.filters["ba"]
    assert replica.state is TcpState.ESTABLISHED and replica.resync_gap == 0
    pair.run(lambda: pair.a.acked_offset == len(request), max_ms=3_000)
    assert replica.recv(1 << 16) == request
    assert replica.recv(1 << 16) == b""


def test_the_replica_waits_for_a_peer_whose_retransmission_timer_backed_off() -> None:
    """A sent its request to B just before B died, and has retransmitted it, unanswered, for
    three seconds (its timer doubling: the next try is four seconds away). The replica, as old,
    learns from A's answer that the request is missing and waits for it past
    A's next retransmission (duplicate ACKs, which a SACK peer does not heed, lost here): it
    reads the request rather than skip it after one of its own timeouts."""
    pair = Pair(seed=11)
    received, written = bytearray(), [0]
    blob, taken = replica_taken(pair, received, written)
    pair.run(lambda: pair.a.acked_offset == 0 and not pair.ab.next_time(), max_ms=1_000)
    tries = [0]

    def dead(raw: bytes) -> list[bytes]:  # B is dead: A's request and its retries are lost
        tries[0] += decode(raw, source=ADDRESS_A, destination=ADDRESS_B).payload == request
        return []

    request = b"GET /next HTTP/1.1\r\n\r\n"
    pair.filters["ab"] = dead
    assert pair.a.send(request) == len(request)
    pair.run(lambda: tries[0] == 3, max_ms=10_000)  # sent, and tried twice again
    del pair.filters["ab"]
    sent_by_replica = [0]

    def probe_only(raw: bytes) -> list[bytes]:
        sent_by_replica[0] += 1
        return [raw] if sent_by_replica[0] == 1 else []  # the duplicate ACKs are lost

    pair.filters["ba"] = probe_only
    replica = take_over(pair, blob, taken)
    got = bytearray()
    pair.start(lambda p: got.extend(replica.recv(1 << 16)))
    pair.run(lambda: bytes(got) == request or replica.resync_gap > 0, max_ms=20_000)
    assert bytes(got) == request and replica.resync_gap == 0


@pytest.mark.parametrize("peer_wait_ms", [None, 45_000])
def test_the_wait_for_the_peers_bytes_is_the_callers_or_twice_the_age(
    peer_wait_ms: int | None,
) -> None:
    """A holder that held its acknowledgements until a replica had the bytes lets the peer
    send them again however late (``peer_wait_ms``: the longest timeout, at most); by
    default the wait is twice the replica's age beyond a retransmission timeout."""
    pair = Pair(seed=12)
    received, written = bytearray(), [0]
    blob, taken = replica_taken(pair, received, written)
    pair.filters["ab"] = lambda raw: []  # B is dead: A's request is lost
    request = b"GET /next HTTP/1.1\r\n\r\n"
    assert pair.a.send(request) == len(request)
    pair.run(lambda: pair.now >= taken + 300, max_ms=5_000)  # before A tries again
    del pair.filters["ab"]
    sent_by_replica = [0]

    def probe_only(raw: bytes) -> list[bytes]:
        sent_by_replica[0] += 1
        return [raw] if sent_by_replica[0] == 1 else []

    pair.filters["ba"] = probe_only
    replica = Connection.import_(blob)
    age = pair.now - taken
    replica.resync(age_ms=age, peer_wait_ms=peer_wait_ms)
    pair.b = replica
    replica.thaw(pair.now)
    pair.flush()
    pair.run(lambda: not replica.resyncing, max_ms=2_000)
    answered = pair.now
    wait = replica.raw.t_rcv_resync - answered
    timeout = max(replica.raw.rto_ms, 200)
    expected = 2 * age if peer_wait_ms is None else peer_wait_ms
    assert timeout + expected - 50 <= wait <= timeout + expected + 50, (wait, timeout, age)


def test_a_hole_the_replica_fills_lets_the_peer_acknowledge_past_what_it_sent() -> None:
    """B dies with a hole in what A holds: three of its last segments were lost, and A holds
    (and reports in SACK blocks) the ones after them. The replica, taken early (its window
    small), resumes from A's acknowledgement at the hole and sends the hole again; A
    acknowledges its first segments, and then jumps past everything the replica has sent: it
    is taken as where A stands, and the stream goes on. Refused as acknowledging data never
    sent (RFC 5961 5.2), every ACK of A's after it was, the replica's window stayed full and
    its retransmission was answered with the same ACK (a chaos run's recovered download
    stalled so)."""
    pair = Pair(seed=10)
    received, written = bytearray(), [0]
    pair.handshake()
    assert pair.b is not None
    download(pair, received, 5_000, written)
    blob, taken = pair.b.replica(pair.now), pair.now
    download(pair, received, 100_000, written)
    pair.start(lambda p: received.extend(p.a.recv(1 << 16)))
    sent = [0]

    def lose_the_first_three(raw: bytes) -> list[bytes]:
        sent[0] += 1
        return [] if sent[0] <= 3 else [raw]

    pair.filters["ba"] = lose_the_first_three
    written[0] = serve(pair.b, written[0], 150_000)
    pair.flush()
    pair.filters["ab"] = lambda raw: []  # B dies: A's acknowledgements never reach it
    pair.run(lambda: not pair.ba.next_time(), max_ms=2_000)
    del pair.filters["ab"], pair.filters["ba"]
    assert len(received) == 100_000  # the hole: A holds what came after it out of order
    replica = take_over(pair, blob, taken)
    pair.run(lambda: not replica.resyncing, max_ms=2_000)
    assert replica.acked_offset == 100_000
    written[0] = replica.acked_offset
    download(pair, received, 200_000, written)
    assert bytes(received) == STREAM[:200_000]
    assert not any(result == InputResult.RESET for _, result in pair.results)
