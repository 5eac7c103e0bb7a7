"""Test harness: two C connections over an in-memory link on a virtual millisecond clock.

Every segment a connection emits is decoded by ``mip6.wire.tcp.TcpSegment.parse`` (an
independent decoder that also verifies the checksum over the IPv6 pseudo-header) before the link
carries it, and both connections must pass ``tcp_conn_check`` after every event. Loss,
duplication and reordering come from a seeded ``random.Random``, so every run is reproducible.

:class:`Peer` is the other tool: a hand-driven remote end that builds segments with
``TcpSegment.emit``, for tests that need exact control of what one connection receives.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from mip6.wire.tcp import (
    MaximumSegmentSize,
    NoOperation,
    Sack,
    SackPermitted,
    TcpFlags,
    TcpOption,
    TcpSegment,
    Timestamps,
    WindowScale,
)
from tcp_migrate._core import lib
from tcp_migrate.core import Config, Connection, TcpState

ADDRESS_A = bytes.fromhex("20010db8000000000000000000000001")
ADDRESS_B = bytes.fromhex("20010db8000000000000000000000002")
PORT_A = 40000
PORT_B = 80
ISS_A = 0xFFFFF000  # both sides wrap through 2^32 early in every test
ISS_B = 0x7FFFFF00


def connection_a(**kwargs) -> Connection:
    return Connection(
        local_address=ADDRESS_A,
        local_port=PORT_A,
        remote_address=ADDRESS_B,
        remote_port=PORT_B,
        **kwargs,
    )


def connection_b(**kwargs) -> Connection:
    return Connection(
        local_address=ADDRESS_B,
        local_port=PORT_B,
        remote_address=ADDRESS_A,
        remote_port=PORT_A,
        **kwargs,
    )


def decode(segment: bytes, *, source: bytes, destination: bytes) -> TcpSegment:
    """Independent decoding; raises on a malformed segment or a bad checksum."""
    return TcpSegment.parse(segment, source=source, destination=destination)


@dataclass
class Wire:
    """One direction of the link: segments in flight, delivered in time order."""

    rng: random.Random
    delay_ms: int = 20
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    in_flight: list[tuple[int, int, bytes]] = field(default_factory=list)
    counter: int = 0
    dropped: int = 0

    def send(self, now: int, segment: bytes) -> None:
        if self.loss and self.rng.random() < self.loss:
            self.dropped += 1
            return
        copies = 2 if self.duplicate and self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            at = now + self.delay_ms
            if self.reorder and self.rng.random() < self.reorder:
                at += self.rng.randint(1, 3 * self.delay_ms)
            self.counter += 1
            heapq.heappush(self.in_flight, (at, self.counter, segment))

    def next_time(self) -> int | None:
        return self.in_flight[0][0] if self.in_flight else None

    def due(self, now: int) -> list[bytes]:
        out = []
        while self.in_flight and self.in_flight[0][0] <= now:
            out.append(heapq.heappop(self.in_flight)[2])
        return out


@dataclass
class Sent:
    time: int
    direction: str  # "ab" or "ba"
    raw: bytes
    segment: TcpSegment


class Pair:
    """A (active) and B (passive, created by the first SYN that reaches it)."""

    def __init__(
        self,
        *,
        seed: int = 1,
        delay_ms: int = 20,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        config_a: Config | None = None,
        config_b: Config | None = None,
        capacity_a: int = 65536,
        capacity_b: int = 65536,
        record: bool = False,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 0
        self.config_b = config_b
        self.capacity_b = capacity_b
        self.a = connection_a(
            config=config_a, send_capacity=capacity_a, receive_capacity=capacity_a
        )
        self.b: Connection | None = None
        self.ab = Wire(self.rng, delay_ms, loss, duplicate, reorder)
        self.ba = Wire(self.rng, delay_ms, loss, duplicate, reorder)
        self.record = record
        self.sent: list[Sent] = []
        self.results: list[tuple[str, int]] = []
        # Hooks: replace or drop segments in flight ("ab"/"ba" -> list of segments to send).
        self.filters: dict[str, Callable[[bytes], list[bytes]]] = {}
        self.app: Callable[[Pair], None] | None = None

    # ---- plumbing -------------------------------------------------------------------------

    def connections(self) -> list[tuple[str, Connection]]:
        out = [("a", self.a)]
        if self.b is not None:
            out.append(("b", self.b))
        return out

    def open(self) -> None:
        self.a.connect(self.now, iss=ISS_A, ts_offset=0x10000)
        self.flush()

    def flush(self) -> None:
        for name, conn in self.connections():
            direction, wire = ("ab", self.ab) if name == "a" else ("ba", self.ba)
            source, destination = (ADDRESS_A, ADDRESS_B) if name == "a" else (ADDRESS_B, ADDRESS_A)
            for _ in range(100000):
                raw = conn.output(self.now)
                if raw is None:
                    break
                segment = decode(raw, source=source, destination=destination)
                assert len(raw) <= conn.config.mss + lib.TCP_MAX_HEADER_LEN
                assert conn.check() == 0, conn.check()
                if self.record:
                    self.sent.append(Sent(self.now, direction, raw, segment))
                hook = self.filters.get(direction)
                for out in hook(raw) if hook else [raw]:
                    wire.send(self.now, out)
            else:
                raise AssertionError("tcp_output never returned 0: wedged")

    def deliver(self, direction: str, raw: bytes) -> None:
        if direction == "ab":
            if self.b is None:
                b = connection_b(
                    config=self.config_b,
                    send_capacity=self.capacity_b,
                    receive_capacity=self.capacity_b,
                )
                if b.accept(self.now, raw, iss=ISS_B, ts_offset=0x20000) == 0:
                    self.b = b
                return
            result = self.b.input(self.now, raw)
            assert self.b.check() == 0, self.b.check()
        else:
            result = self.a.input(self.now, raw)
            assert self.a.check() == 0, self.a.check()
        self.results.append((direction, result))

    def next_time(self) -> int | None:
        times = [t for t in (self.ab.next_time(), self.ba.next_time()) if t is not None]
        times += [d for _, c in self.connections() if (d := c.next_deadline()) is not None]
        return min(times) if times else None

    def step(self) -> bool:
        """Moves to the next event (a delivery or a deadline) and handles it; False when
        nothing is scheduled."""
        t = self.next_time()
        if t is None:
            return False
        self.now = max(self.now, t)  # a deadline already past is handled now
        # One segment at a time, each answered before the next arrives, as a driver does.
        for direction, wire in (("ab", self.ab), ("ba", self.ba)):
            for raw in wire.due(self.now):
                self.deliver(direction, raw)
                if self.app is not None:
                    self.app(self)
                self.flush()
        for _, conn in self.connections():
            deadline = conn.next_deadline()
            if deadline is not None and deadline <= self.now:
                conn.timer(self.now)
                assert conn.check() == 0, conn.check()
        if self.app is not None:
            self.app(self)
        self.flush()
        return True

    def run(self, until: Callable[[], bool], *, max_ms: int = 600_000) -> None:
        limit = self.now + max_ms
        while not until():
            if not self.step():
                raise AssertionError(f"nothing scheduled at {self.now} ms and condition unmet")
            if self.now > limit:
                raise AssertionError(f"condition unmet after {max_ms} ms of virtual time")

    def handshake(self) -> None:
        self.open()
        self.run(
            lambda: (
                self.b is not None
                and self.a.state == TcpState.ESTABLISHED
                and self.b.state == TcpState.ESTABLISHED
            )
        )

    def start(self, app: Callable[[Pair], None]) -> None:
        """Installs the application callback and gives it a first turn."""
        self.app = app
        app(self)
        self.flush()

    def sent_by(self, direction: str) -> list[Sent]:
        return [s for s in self.sent if s.direction == direction]


class Transfer:
    """Application data moved through a Pair: A writes ``a_data``, B writes ``b_data``, both
    read everything; optional shutdown once all is written."""

    def __init__(self, a_data: bytes = b"", b_data: bytes = b"", *, close: bool = False) -> None:
        self.data = {"a": a_data, "b": b_data}
        self.written = {"a": 0, "b": 0}
        self.received = {"a": bytearray(), "b": bytearray()}
        self.close = close
        self.closed = {"a": False, "b": False}

    def __call__(self, pair: Pair) -> None:
        for name, conn in pair.connections():
            if conn.state in (TcpState.CLOSED, TcpState.SYN_SENT, TcpState.SYN_RECEIVED):
                continue
            data, done = self.data[name], self.written[name]
            if done < len(data) and not self.closed[name]:
                space = conn.send_space
                if space:
                    self.written[name] += conn.send(data[done : done + space])
            while chunk := conn.recv(1 << 20):
                self.received[name] += chunk
            if self.close and self.written[name] == len(data) and not self.closed[name]:
                conn.shutdown_write()
                self.closed[name] = True

    def complete(self) -> bool:
        return (
            bytes(self.received["b"]) == self.data["a"]
            and bytes(self.received["a"]) == self.data["b"]
        )


# ---- a hand-driven remote end -----------------------------------------------------------------


class Peer:
    """Builds segments from B to a connection ``conn`` at A (or the reverse with ``swap``) and
    decodes what ``conn`` sends."""

    def __init__(self, conn: Connection, *, swap: bool = False) -> None:
        self.conn = conn
        if swap:
            self.source, self.destination = ADDRESS_A, ADDRESS_B
            self.source_port, self.destination_port = PORT_A, PORT_B
        else:
            self.source, self.destination = ADDRESS_B, ADDRESS_A
            self.source_port, self.destination_port = PORT_B, PORT_A

    def build(
        self,
        *,
        seq: int,
        ack: int = 0,
        flags: TcpFlags = TcpFlags.ACK,
        window: int = 65535,
        options: tuple[TcpOption, ...] = (),
        payload: bytes = b"",
    ) -> bytes:
        segment = TcpSegment(
            source_port=self.source_port,
            destination_port=self.destination_port,
            sequence_number=seq % 2**32,
            acknowledgment_number=ack % 2**32,
            flags=flags,
            window=window,
            options=options,
            payload=payload,
        )
        return segment.emit(source=self.source, destination=self.destination)

    def send(self, now: int, **kwargs) -> int:
        return self.conn.input(now, self.build(**kwargs))

    def receive(self, now: int) -> list[TcpSegment]:
        return [
            decode(raw, source=self.destination, destination=self.source)
            for raw in self.conn.output_all(now)
        ]


def syn_options(
    *,
    mss: int | None = 1440,
    wscale: int | None = 7,
    sack: bool = True,
    tsval: int | None = 1,
    tsecr: int = 0,
) -> tuple[TcpOption, ...]:
    options: list[TcpOption] = []
    if mss is not None:
        options.append(MaximumSegmentSize(maximum_segment_size=mss))
    if wscale is not None:
        options += [NoOperation(), WindowScale(shift_count=wscale)]
    if sack:
        options += [NoOperation(), NoOperation(), SackPermitted()]
    if tsval is not None:
        options += [NoOperation(), NoOperation(), Timestamps(tsval=tsval, tsecr=tsecr)]
    return tuple(options)


PLAIN = syn_options(sack=False, tsval=None)  # a peer offering MSS and window scale only
SMSS = 1440  # the sender's MSS against syn_options' 1440 without timestamps


def ts_option(tsval: int, tsecr: int) -> tuple[TcpOption, ...]:
    return (NoOperation(), NoOperation(), Timestamps(tsval=tsval, tsecr=tsecr))


def sack_option(*blocks: tuple[int, int]) -> tuple[TcpOption, ...]:
    return (
        NoOperation(),
        NoOperation(),
        Sack(blocks=tuple((lo % 2**32, hi % 2**32) for lo, hi in blocks)),
    )


def established_with_peer(
    config: Config | None = None,
    *,
    peer_options: tuple[TcpOption, ...] | None = None,
    peer_window: int = 65535,
    capacity: int = 65536,
    now: int = 0,
    rtt_ms: int = 10,
) -> tuple[Connection, Peer, int]:
    """A (active) in ESTABLISHED against a hand-driven Peer; returns (conn, peer, now).
    Peer's ISS is ISS_B, so its next sequence number is ISS_B + 1."""
    conn = connection_a(config=config, send_capacity=capacity, receive_capacity=capacity)
    conn.connect(now, iss=ISS_A, ts_offset=0)
    peer = Peer(conn)
    (syn,) = peer.receive(now)
    assert syn.flags == TcpFlags.SYN
    tsval_syn = syn.find(Timestamps).tsval if syn.find(Timestamps) else 0
    now += rtt_ms
    options = peer_options if peer_options is not None else syn_options(tsecr=tsval_syn)
    result = peer.send(
        now,
        seq=ISS_B,
        ack=ISS_A + 1,
        flags=TcpFlags.SYN | TcpFlags.ACK,
        window=peer_window,
        options=options,
    )
    assert result == 0
    assert conn.state == TcpState.ESTABLISHED
    peer.receive(now)  # the ACK of the SYN-ACK
    return conn, peer, now
