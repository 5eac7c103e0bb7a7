"""TCP segmentation offload on the shim's kernel TUN device: the reference for the C fast path.

With ``IFF_VNET_HDR`` and ``TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO6)`` the kernel hands the daemon
what its own TCP wrote as it would hand it to a NIC that segments and checksums: each read is a
``struct virtio_net_hdr`` (``linux/virtio_net.h``, native byte order on a TUN device) and one
packet that may be a TCP segment of up to 64 kB to be cut into ``gso_size`` pieces (one read
instead of ~45, and none of the kernel's per-segment work), or a packet whose upper-layer
checksum is left for the device (``VIRTIO_NET_HDR_F_NEEDS_CSUM``: the field holds the
pseudo-header's sum and the sum from ``csum_start`` is to be written at ``csum_offset``). The
engine (and every link beyond the daemon) still sees only whole, checksummed packets no larger
than the device's MTU: :func:`packets` makes them, as the C fast path does (``daemon_fast.c``,
held to this by ``tests/runtime/test_fast_path.py``). Every write to such a device carries a
header too: :data:`PLAIN` (no offload asked of the kernel).
"""

from __future__ import annotations

import struct
from typing import Final

from mip6.wire.checksum import ones_complement_sum, upper_layer_checksum

# linux/if_tun.h
IFF_VNET_HDR: Final = 0x4000
TUNSETOFFLOAD: Final = 0x400454D0  # _IOW('T', 208, unsigned int)
TUN_F_CSUM: Final = 0x01
TUN_F_TSO6: Final = 0x04
OFFLOADS: Final = TUN_F_CSUM | TUN_F_TSO6

# linux/virtio_net.h: struct virtio_net_hdr, the TUN default header size (TUNSETVNETHDRSZ)
VNET_HEADER: Final = struct.Struct("=BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_*
NEEDS_CSUM: Final = 0x01
GSO_NONE: Final = 0
GSO_TCPV6: Final = 4
GSO_ECN: Final = 0x80
PLAIN: Final = bytes(VNET_HEADER.size)

_IPV6_HEADER = 40
_PROTO_TCP = 6
_TCP_FIN, _TCP_PSH, _TCP_CWR = 0x01, 0x08, 0x80


class OffloadError(ValueError):
    """A frame the kernel should not have made: offloads this module does not take, or
    offsets outside the packet. The daemon drops it and counts it."""


def packets(frame: bytes) -> list[bytes]:
    """The packets of one read from an offloading TUN device (its header and packet)."""
    if len(frame) < VNET_HEADER.size:
        raise OffloadError("shorter than the virtio_net header")
    flags, gso_type, _, gso_size, csum_start, csum_offset = VNET_HEADER.unpack_from(frame)
    packet = bytearray(frame[VNET_HEADER.size :])
    kind = gso_type & ~GSO_ECN
    if kind == GSO_NONE:
        if flags & NEEDS_CSUM:
            _complete_checksum(packet, csum_start, csum_offset)
        # the header alone carries no packet (as the C fast path reads it); one asking for a
        # checksum in it is refused above, its offsets outside
        return [bytes(packet)] if packet else []
    if kind != GSO_TCPV6 or not flags & NEEDS_CSUM:
        raise OffloadError(f"gso_type {gso_type}: only TCP over IPv6 is offloaded")
    return _segments(packet, gso_size)


def _complete_checksum(packet: bytearray, start: int, offset: int) -> None:
    """RFC 1071 over ``packet[start:]``, the pseudo-header's sum already in the field (as
    Linux's skb_checksum_help), written at ``start + offset``."""
    field = start + offset
    if start < _IPV6_HEADER or field + 2 > len(packet):
        raise OffloadError(f"csum_start {start}, csum_offset {offset}: outside the packet")
    value = ~ones_complement_sum(bytes(packet[start:])) & 0xFFFF
    # RFC 8200 8.1: a UDP checksum computed as zero is sent as 0xFFFF (a checksum at offset 6
    # is UDP's: TCP's is at 16, ICMPv6's at 2)
    packet[field : field + 2] = struct.pack("!H", value or (0xFFFF if offset == 6 else 0))


def _segments(packet: bytearray, gso_size: int) -> list[bytes]:
    """A TCP segment cut into ``gso_size`` bytes of payload each (RFC 9293 3.1: each piece's
    Sequence Number advanced by the bytes before it; FIN and PSH on the last piece only, CWR on
    the first only, as Linux's tcp_gso_segment), every piece's checksum computed whole."""
    if len(packet) < _IPV6_HEADER + 20 or packet[6] != _PROTO_TCP or gso_size == 0:
        raise OffloadError("a TCP/IPv6 segment without extension headers is offloaded only")
    tcp_length = 4 * (packet[_IPV6_HEADER + 12] >> 4)
    headers = _IPV6_HEADER + tcp_length
    if tcp_length < 20 or headers > len(packet):
        raise OffloadError("TCP header outside the packet")
    payload = packet[headers:]
    (sequence,) = struct.unpack_from("!I", packet, _IPV6_HEADER + 4)
    flags = packet[_IPV6_HEADER + 13]
    out = []
    for start in range(0, max(len(payload), 1), gso_size):
        piece = bytearray(packet[:headers]) + payload[start : start + gso_size]
        struct.pack_into("!H", piece, 4, len(piece) - _IPV6_HEADER)
        struct.pack_into("!I", piece, _IPV6_HEADER + 4, (sequence + start) & 0xFFFFFFFF)
        last = start + gso_size >= len(payload)
        piece[_IPV6_HEADER + 13] = flags & ~(
            (0 if last else _TCP_FIN | _TCP_PSH) | (0 if start == 0 else _TCP_CWR)
        )
        struct.pack_into("!H", piece, _IPV6_HEADER + 16, 0)
        value = upper_layer_checksum(
            bytes(piece[8:24]), bytes(piece[24:40]), _PROTO_TCP, bytes(piece[_IPV6_HEADER:])
        )
        struct.pack_into("!H", piece, _IPV6_HEADER + 16, value)
        out.append(bytes(piece))
    return out
