"""Internet checksum (RFC 1071) and the IPv6 upper-layer pseudo-header (RFC 8200 8.1).

The one's complement sum of 16-bit big-endian words equals the whole buffer read as one big
integer modulo 0xFFFF, because 2**16 is congruent to 1 modulo 0xFFFF. Python's big integers make
that a single C-level operation, an order of magnitude faster than a loop over words.
"""

from __future__ import annotations

import struct

_PSEUDO_TAIL = struct.Struct("!I3xB")  # Upper-Layer Packet Length (32), zero (24), Next Header (8)


def ones_complement_sum(data: bytes) -> int:
    """The 16-bit one's complement sum of ``data`` (odd length padded with a zero byte)."""
    if len(data) & 1:
        data = data + b"\x00"
    value = int.from_bytes(data, "big")
    folded = value % 0xFFFF
    # 0xFFFF and 0x0000 are both zero in one's complement; the end-around-carry sum of a
    # non-zero buffer never yields +0, so report -0 (0xFFFF) as RFC 1071 adders do.
    if folded == 0 and value != 0:
        return 0xFFFF
    return folded


def pseudo_header(source: bytes, destination: bytes, length: int, next_header: int) -> bytes:
    """RFC 8200 8.1 pseudo-header: Source, Destination, Upper-Layer Packet Length, Next Header.

    ``source`` is the home address when the packet carries a Home Address option (RFC 3775 6.3)
    and ``destination`` the final destination, i.e. the home address of a type 2 routing header;
    :mod:`mip6.wire.ipv6` chooses them, this function only lays them out.
    """
    return source + destination + _PSEUDO_TAIL.pack(length, next_header)


def upper_layer_checksum(
    source: bytes, destination: bytes, next_header: int, segment: bytes
) -> int:
    """The checksum for an upper-layer header whose checksum field is zero in ``segment``."""
    total = ones_complement_sum(
        pseudo_header(source, destination, len(segment), next_header) + segment
    )
    # A computed zero stays zero here; UDP alone (RFC 8200 8.1) must send it as 0xFFFF.
    return ~total & 0xFFFF


def verify_upper_layer(source: bytes, destination: bytes, next_header: int, segment: bytes) -> bool:
    """True when ``segment`` (checksum field included) sums to -0 over the pseudo-header."""
    total = ones_complement_sum(
        pseudo_header(source, destination, len(segment), next_header) + segment
    )
    return total == 0xFFFF
