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

import struct

from mip6.dserver.messages import MAX_FROZEN_PACKET, MAX_FROZEN_PACKETS
from mip6.wire import protocols
from mip6.wire.checksum import upper_layer_checksum
from tcp_migrate.ipv6 import MalformedPacket, walk

_FIN = 0x01
_TIMESTAMPS = 8  # RFC 7323 2.1: kind 8, length 10
_WORD = struct.Struct("!I")


def _segment(packet: bytes) -> tuple[bytes, bytes, int, int] | None:
    """The addresses of ``packet`` and where its TCP segment starts and ends (extension
    headers walked as the stack does); None when it holds none."""
    try:
        source, destination, protocol, offset, end, fragmented = walk(packet)
    except MalformedPacket:
        return None
    if protocol != protocols.TCP or fragmented or end - offset < 20:
        return None
    return source, destination, offset, end


def client_port(packet: bytes) -> int | None:
    """The TCP source port of ``packet`` (the client's), None when it holds no segment."""
    found = _segment(packet)
    return None if found is None else int.from_bytes(packet[found[2] : found[2] + 2], "big")


def carries_data(packet: bytes) -> bool:
    """Whether ``packet`` carries bytes or a FIN: what the acceptor cannot have (a pure ACK
    it does not need)."""
    found = _segment(packet)
    if found is None:
        return False
    _, _, offset, end = found
    return end > offset + (packet[offset + 12] >> 4) * 4 or bool(packet[offset + 13] & _FIN)


def with_timestamp_at_least(
    packet: bytes, ts_recent: int, source: bytes, destination: bytes
) -> bytes:
    """``packet`` with its TSval raised to ``ts_recent`` when below it (modulo 2**32, as
    PAWS compares) and its checksum made again over ``source`` and ``destination`` (the
    connection's: a type 2 routing header's home address is the final destination, RFC
    3775 6.4); unchanged when it has no timestamps."""
    found = _segment(packet)
    if found is None:
        return packet
    _, _, offset, end = found
    at = offset + 20
    options_end = offset + (packet[offset + 12] >> 4) * 4
    while at < options_end:
        kind = packet[at]
        if kind == 0:  # end of options
            break
        if kind == 1:  # no-op
            at += 1
            continue
        if at + 1 >= options_end or packet[at + 1] < 2:
            break
        length = packet[at + 1]
        if kind == _TIMESTAMPS and length == 10 and at + 10 <= options_end:
            (tsval,) = _WORD.unpack_from(packet, at + 2)
            if (tsval - ts_recent) & 0xFFFFFFFF < 1 << 31:
                return packet
            out = bytearray(packet)
            _WORD.pack_into(out, at + 2, ts_recent)
            out[offset + 16 : offset + 18] = b"\0\0"
            checksum = upper_layer_checksum(
                source, destination, protocols.TCP, bytes(out[offset:end])
            )
            out[offset + 16 : offset + 18] = checksum.to_bytes(2, "big")
            return bytes(out)
        at += length
    return packet


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
