"""UDP over IPv6 (RFC 768, with the IPv6 checksum rules of RFC 8200 8.1).

The datagram is the upper-layer payload handed over by :mod:`mip6.wire.ipv6`: ``buf`` runs to
the end of the IPv6 payload, and ``source``/``destination`` are the pseudo-header addresses that
module chose (the home address when a Home Address option or type 2 Routing header is present,
RFC 3775 6.3 and 6.4). The Length and Checksum fields are never stored in the ``Repr``: both are
computed on emit, and ``overrides=`` forces wrong values for tests.

Not implemented: UDP jumbograms (RFC 2675 4: Length 0 when the datagram exceeds 65,535 bytes),
and the zero-checksum exemption for tunnels (RFC 6935/6936); both are rejected on parse.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from mip6.wire import protocols
from mip6.wire.checksum import ones_complement_sum, pseudo_header, verify_upper_layer
from mip6.wire.errors import BadChecksum, EmitError, Malformed
from mip6.wire.fields import check_addresses, check_overrides, check_uint, need

#   RFC 768:
#    0      7 8     15 16    23 24    31
#   +--------+--------+--------+--------+
#   |     Source      |   Destination   |
#   |      Port       |      Port       |
#   +--------+--------+--------+--------+
#   |                 |                 |
#   |     Length      |    Checksum     |
#   +--------+--------+--------+--------+
#   |
#   |          data octets ...
#   +---------------- ...
SOURCE_PORT = 0
DESTINATION_PORT = 2
LENGTH = 4
CHECKSUM = 6
HEADER_LENGTH = 8
_HEADER = struct.Struct("!HHHH")

_FIELDS = ("source_port", "destination_port", "length", "checksum")


@dataclass(frozen=True, slots=True, kw_only=True)
class UdpDatagram:
    """One UDP datagram. ``payload`` is everything after the 8-byte header."""

    protocol: ClassVar[int] = protocols.UDP
    source_port: int
    destination_port: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        check_uint("source_port", self.source_port, 16)
        check_uint("destination_port", self.destination_port, 16)

    @classmethod
    def parse(cls, buf: bytes, *, source: bytes, destination: bytes) -> UdpDatagram:
        need(buf, 0, HEADER_LENGTH, "UDP header")
        source_port, destination_port, length, checksum = _HEADER.unpack_from(buf, 0)
        # RFC 768: "Length is the length in octets of this user datagram including this header
        # and the data." The IPv6 payload ends where the datagram ends, so they must agree.
        if length != len(buf):
            raise Malformed(
                f"UDP Length {length} but the datagram is {len(buf)} bytes", LENGTH, "length"
            )
        # RFC 8200 8.1: "when a UDP packet is originated by an IPv6 node, the UDP checksum is not
        # optional" and "IPv6 receivers must discard UDP packets containing a zero checksum".
        if checksum == 0:
            raise BadChecksum("zero UDP checksum is not allowed over IPv6", CHECKSUM, "checksum")
        if not verify_upper_layer(source, destination, protocols.UDP, buf):
            raise BadChecksum(
                f"UDP checksum 0x{checksum:04x} does not verify", CHECKSUM, "checksum"
            )
        return cls(
            source_port=source_port,
            destination_port=destination_port,
            payload=bytes(buf[HEADER_LENGTH:]),
        )

    def emit(
        self, *, source: bytes, destination: bytes, overrides: Mapping[str, int] | None = None
    ) -> bytes:
        """The datagram with Length and Checksum computed. ``overrides`` sets any of
        ``source_port``, ``destination_port``, ``length``, ``checksum`` to a raw 16-bit value;
        the checksum is computed after the other overrides unless it is overridden itself."""
        check_addresses(source, destination)
        fields = {
            "source_port": self.source_port,
            "destination_port": self.destination_port,
            "length": HEADER_LENGTH + len(self.payload),
            "checksum": 0,
        }
        forced = check_overrides(overrides, _FIELDS)
        if "length" not in forced and fields["length"] > 0xFFFF:
            raise EmitError(
                f"UDP datagram of {fields['length']} bytes needs a jumbogram (RFC 2675)"
            )
        fields.update(forced)
        for name in _FIELDS:
            check_uint(name, fields[name], 16)
        segment = _HEADER.pack(*(fields[name] for name in _FIELDS)) + self.payload
        if "checksum" in forced:
            return segment
        # RFC 8200 8.1: the pseudo-header length is the UDP Length field for protocols that carry
        # their own length; it equals the segment length unless ``length`` is overridden.
        total = ones_complement_sum(
            pseudo_header(source, destination, fields["length"], protocols.UDP) + segment
        )
        # RFC 768 / RFC 8200 8.1: "if that computation yields a result of zero, it must be
        # changed to hex FFFF for placement in the UDP header."
        checksum = (~total & 0xFFFF) or 0xFFFF
        return segment[:CHECKSUM] + checksum.to_bytes(2, "big") + segment[HEADER_LENGTH:]


def describe(datagram: UdpDatagram) -> str:
    """tcpdump-like summary, e.g. ``UDP 5000 > 53 len 12``; ``len`` is the payload length, as
    tcpdump's ``UDP, length N``."""
    return f"UDP {datagram.source_port} > {datagram.destination_port} len {len(datagram.payload)}"
