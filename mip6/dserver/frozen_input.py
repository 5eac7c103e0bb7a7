"""What a client sends a donor's frozen connections during a handoff (the FROZEN_INPUT message,
:mod:`mip6.dserver.messages`; our addition to the seeds' handoff, whose donor drops it).

A client's request that crosses the freeze (its next request of a keep-alive download, sent as
the donor froze the connection) reaches a donor that reads nothing more, and the acceptor's
copy of the connection, taken at the freeze, never had it: the client sends it again only when
its retransmission timer runs out, which the freezes and holds it waited through have backed
off to seconds (a chaos run's client: 5.4 s, then 10.8 s; a member died in between, and the
download stalled 30 s). So the donor keeps such packets (:class:`Kept`, bounded), sends them to
each acceptor it sends the INIT to, and the acceptor's stack reads them when its connections
thaw; a donor that keeps the client reads them itself at its thaw.

A connection that resynchronizes from the client's next segment (tcp_migrate's resync: an
acceptor tried before went silent, and may have served the client past the freeze) must take
that position from a segment the client sends now, not from a kept one: there the kept packets
wait until the resync is done, and then go with their timestamp raised to the one the client's
fresh segment set (RFC 7323 5.3's PAWS drops a segment whose TSval is below TS.Recent: it
guards against old duplicates from the network, and these are copies the group kept)."""

from __future__ import annotations

from dataclasses import replace

from mip6.dserver.messages import MAX_FROZEN_PACKET, MAX_FROZEN_PACKETS
from mip6.wire import protocols
from mip6.wire.checksum import upper_layer_checksum
from mip6.wire.errors import WireError
from mip6.wire.tcp import Timestamps, emit_tcp_options, parse_tcp_options
from tcp_migrate.ipv6 import MalformedPacket, walk

_FIN = 0x01


def _segment(packet: bytes) -> tuple[int, int] | None:
    """Where the TCP segment of ``packet`` starts and ends (extension headers walked as the
    stack does); None when it holds none."""
    try:
        _, _, protocol, offset, end, fragmented = walk(packet)
    except MalformedPacket:
        return None
    if protocol != protocols.TCP or fragmented or end - offset < 20:
        return None
    return offset, end


def client_port(packet: bytes) -> int | None:
    """The TCP source port of ``packet`` (the client's), None when it holds no segment."""
    found = _segment(packet)
    return None if found is None else int.from_bytes(packet[found[0] : found[0] + 2], "big")


def carries_data(packet: bytes) -> bool:
    """Whether ``packet`` carries bytes or a FIN: what the acceptor cannot have (a pure ACK
    it does not need)."""
    found = _segment(packet)
    if found is None:
        return False
    offset, end = found
    return end > offset + (packet[offset + 12] >> 4) * 4 or bool(packet[offset + 13] & _FIN)


def with_timestamp_at_least(
    packet: bytes, ts_recent: int, source: bytes, destination: bytes
) -> bytes:
    """``packet`` with its TSval raised to ``ts_recent`` when below it (modulo 2**32, as
    PAWS compares) and its checksum made again over ``source`` and ``destination`` (the
    connection's: a type 2 routing header's home address is the final destination, RFC
    3775 6.4); unchanged when it has no timestamps (or options our codec refuses)."""
    found = _segment(packet)
    if found is None:
        return packet
    offset, end = found
    options_end = offset + (packet[offset + 12] >> 4) * 4
    try:
        options = parse_tcp_options(packet, offset + 20, options_end)
    except WireError:
        return packet
    stamps = next((o for o in options if isinstance(o, Timestamps)), None)
    if stamps is None or (stamps.tsval - ts_recent) & 0xFFFFFFFF < 1 << 31:
        return packet
    raised = tuple(replace(o, tsval=ts_recent) if o is stamps else o for o in options)
    out = bytearray(packet)
    out[offset + 20 : options_end] = emit_tcp_options(raised)  # the same length (round trip)
    out[offset + 16 : offset + 18] = b"\0\0"
    checksum = upper_layer_checksum(source, destination, protocols.TCP, bytes(out[offset:end]))
    out[offset + 16 : offset + 18] = checksum.to_bytes(2, "big")
    return bytes(out)


class Kept:
    """One handoff's kept packets: at most MAX_FROZEN_PACKETS, each at most
    MAX_FROZEN_PACKET bytes (what the FROZEN_INPUT message carries); ``dropped`` counts those
    over the bounds."""

    __slots__ = ("dropped", "packets")

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.dropped = 0

    def add(self, packet: bytes) -> bool:
        """Keep ``packet``; False when it does not fit (counted)."""
        if len(self.packets) >= MAX_FROZEN_PACKETS or len(packet) > MAX_FROZEN_PACKET:
            self.dropped += 1
            return False
        self.packets.append(packet)
        return True

    def extend(self, packets: tuple[bytes, ...]) -> None:
        for packet in packets:
            self.add(packet)

    def take(self) -> list[bytes]:
        packets, self.packets = self.packets, []
        return packets
