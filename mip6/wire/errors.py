"""The one exception family every codec in :mod:`mip6.wire` raises.

Split the way RFC receivers must react (STYLE.md, "PacketIntegrityError vs PacketSanityError"):
``Truncated`` and ``Malformed`` are structural faults found while reading bytes, ``BadChecksum``
is a structurally sound packet whose checksum does not verify. Each carries the reason, the byte
offset of the fault (from the start of the buffer handed to the outermost ``parse``) and, where
one field is at fault, that field's RFC name, so an engine can answer with the right ICMPv6
Parameter Problem pointer and a decoder can print where decoding stopped.

``EmitError`` is the caller's fault: a ``Repr`` that cannot be put on the wire as asked (a
lifetime too large for 16 bits, a misaligned option). It is deliberately not a ``WireError``:
bad input from the network and a bug in our own packet construction must never be confused.
"""

from __future__ import annotations


class WireError(Exception):
    """A received packet that cannot be parsed. Never raised for our own bugs."""

    def __init__(self, reason: str, offset: int, field: str | None = None) -> None:
        super().__init__(reason, offset, field)
        self.reason = reason
        self.offset = offset
        self.field = field

    def shifted(self, base: int) -> WireError:
        """The same error with its offset made relative to an enclosing buffer."""
        return type(self)(self.reason, self.offset + base, self.field)

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        return f"{self.reason}{where} at offset {self.offset}"


class Truncated(WireError):
    """The buffer ends before a header or field it announces."""


class Malformed(WireError):
    """A field holds a value the RFC does not allow in this position."""


class BadChecksum(WireError):
    """The packet is well formed but its Internet checksum does not verify."""


class EmitError(ValueError):
    """A ``Repr`` that cannot be encoded as requested (a local, not remote, fault)."""
