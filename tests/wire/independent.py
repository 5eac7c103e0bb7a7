"""An independent Internet checksum, written from RFC 1071 and RFC 8200 8.1 / RFC 3775 6.3 with a
plain 16-bit word loop, sharing no code with :mod:`mip6.wire.checksum`. It walks the header
chain on its own to find the pseudo-header addresses: the Home Address option's address as
source, the last address of a type 0 or 2 routing header as destination while segments are
left."""

from __future__ import annotations

import struct

EXTENSION = {0, 43, 44, 60}


def word_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


def upper_layer_checksum_ok(packet: bytes) -> tuple[int, bool]:
    """(upper-layer protocol, whether its checksum verifies) for a whole IPv6 packet."""
    source, destination = packet[8:24], packet[24:40]
    next_header, offset = packet[6], 40
    while next_header in EXTENSION:
        length = 8 if next_header == 44 else (packet[offset + 1] + 1) * 8
        if next_header == 60:
            i = offset + 2
            while i < offset + length:
                if packet[i] == 0:
                    i += 1
                    continue
                if packet[i] == 0xC9:
                    source = packet[i + 2 : i + 18]
                i += 2 + packet[i + 1]
        if next_header == 43 and packet[offset + 2] in (0, 2) and packet[offset + 3] > 0:
            destination = packet[offset + length - 16 : offset + length]  # the last address
        next_header, offset = packet[offset], offset + length
    segment = packet[offset:]
    pseudo = source + destination + struct.pack("!I3xB", len(segment), next_header)
    return next_header, word_sum(pseudo + segment) == 0xFFFF
