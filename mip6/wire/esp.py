"""IP Encapsulating Security Payload, outer fields only (RFC 4303 2).

Mobile IPv6 protects Binding Updates and Acknowledgements between mobile node and home agent with
ESP (RFC 3775 5.1, RFC 3776); the SAs and the cryptography live elsewhere. This codec reads and
writes the two cleartext fields and keeps the rest (IV, ciphertext, padding, Pad Length, Next
Header and ICV) as one opaque ``data`` string: without the SA, where the ICV starts is unknown.
ESP has no checksum and no pseudo-header, so ``source``/``destination`` are accepted for the
common upper-layer interface and ignored.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from mip6.wire import protocols
from mip6.wire.errors import EmitError, Malformed
from mip6.wire.fields import check_overrides, check_uint, need

#   RFC 4303 2:
#    0                   1                   2                   3
#    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |               Security Parameters Index (SPI)                 |
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |                      Sequence Number                          |
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |                    Payload Data* (variable)                   |
#   ~                                                               ~
#   +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |               |     Padding (0-255 bytes)                     |
#   +-+-+-+-+-+-+-+-+               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |                               |  Pad Length   | Next Header   |
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |         Integrity Check Value-ICV   (variable)                |
#   ~                                                               ~
SPI = 0
SEQUENCE_NUMBER = 4
DATA = 8
HEADER_LENGTH = 8
_HEADER = struct.Struct("!II")

_FIELDS = ("spi", "sequence_number")


@dataclass(frozen=True, slots=True, kw_only=True)
class EspPacket:
    """An ESP packet. ``sequence_number`` is the low 32 bits of the counter (RFC 4303 2.2; the
    high half of an Extended Sequence Number is never sent). ``data`` is opaque: payload, padding,
    trailer and ICV, encrypted and/or authenticated."""

    protocol: ClassVar[int] = protocols.ESP
    spi: int
    sequence_number: int
    data: bytes = b""

    def __post_init__(self) -> None:
        check_uint("spi", self.spi, 32)
        check_uint("sequence_number", self.sequence_number, 32)

    @property
    def iana_reserved_spi(self) -> bool:
        # RFC 4303 2.1: "The set of SPI values in the range 1 through 255 are reserved by the
        # Internet Assigned Numbers Authority (IANA) for future use". Kept, not rejected.
        return 1 <= self.spi <= 255

    @classmethod
    def parse(cls, buf: bytes, *, source: bytes, destination: bytes) -> EspPacket:
        need(buf, 0, HEADER_LENGTH, "ESP header")
        spi, sequence_number = _HEADER.unpack_from(buf, 0)
        # RFC 4303 2.1: "The SPI value of zero (0) is reserved for local, implementation-
        # specific use and MUST NOT be sent on the wire."
        if spi == 0:
            raise Malformed("ESP SPI 0 must not be sent on the wire", SPI, "spi")
        return cls(spi=spi, sequence_number=sequence_number, data=bytes(buf[DATA:]))

    def emit(
        self, *, source: bytes, destination: bytes, overrides: Mapping[str, int] | None = None
    ) -> bytes:
        """The packet; ``overrides`` sets ``spi`` or ``sequence_number`` to a raw value (a zero
        SPI can only be sent this way)."""
        fields = {"spi": self.spi, "sequence_number": self.sequence_number}
        forced = check_overrides(overrides, _FIELDS)
        if "spi" not in forced and self.spi == 0:
            raise EmitError("ESP SPI 0 must not be sent on the wire (RFC 4303 2.1)")
        fields.update(forced)
        for name in _FIELDS:
            check_uint(name, fields[name], 32)
        return _HEADER.pack(fields["spi"], fields["sequence_number"]) + self.data


def describe(packet: EspPacket) -> str:
    """tcpdump-like summary, e.g. ``ESP spi 0x00001000 seq 7 len 64``; as tcpdump's ``ESP(...),
    length N``, ``len`` is the whole ESP packet, header included."""
    return (
        f"ESP spi 0x{packet.spi:08x} seq {packet.sequence_number} "
        f"len {HEADER_LENGTH + len(packet.data)}"
    )
