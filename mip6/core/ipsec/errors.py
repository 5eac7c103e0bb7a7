"""Why ESP refused a packet, one class per cause, so a node counts drops by cause.

Split as :mod:`mip6.wire.errors` splits codec faults (STYLE.md, "errors split by who is at
fault"): an :class:`EspError` is a received packet the receiver discards (RFC 4303 3.4: every
failure is a silent drop, "auditable event" at most); an :class:`EspLocalError` is our own
side unable to protect a packet as asked (a counter about to cycle, an exported SA, a packet
that is not what the SA's mode needs). The two never mix: bad input from the network and a
local condition must not be confused.

Every error carries ``cause`` (a stable counter name), the ``reason`` in words, and the SPI and
Sequence Number when they were read. No error ever carries key material.
"""

from __future__ import annotations

from typing import ClassVar


class EspError(Exception):
    """A received packet that ESP processing (or the inbound policy check) discards."""

    cause: ClassVar[str] = "esp_error"

    def __init__(
        self, reason: str, *, spi: int | None = None, sequence_number: int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.spi = spi
        self.sequence_number = sequence_number

    def __str__(self) -> str:
        where = ""
        if self.spi is not None:
            where = f" (spi 0x{self.spi:08x}"
            if self.sequence_number is not None:
                where += f" seq {self.sequence_number}"
            where += ")"
        return f"{self.cause}: {self.reason}{where}"


class Truncated(EspError):
    """The packet ends before a header, the IV, the trailer or the ICV it must hold."""

    cause = "truncated"


class Malformed(EspError):
    """Structurally wrong: not an IPv6 packet with ESP, a ciphertext that is not a whole number
    of cipher blocks (RFC 4303 2.4), a tunnel-mode payload that is not one IPv6 packet."""

    cause = "malformed"


class UnknownSpi(EspError):
    """RFC 4303 3.4.2: "If no valid Security Association exists for this packet, the receiver
    MUST discard the packet; this is an auditable event." Also an SPI other than the SA's."""

    cause = "unknown_spi"


class Replayed(EspError):
    """RFC 4303 3.4.3: a duplicate, or a Sequence Number left of the receive window.
    ``duplicate`` tells the two apart (False: too old)."""

    cause = "replayed"

    def __init__(
        self,
        reason: str,
        *,
        spi: int | None = None,
        sequence_number: int | None = None,
        duplicate: bool = False,
    ) -> None:
        super().__init__(reason, spi=spi, sequence_number=sequence_number)
        self.duplicate = duplicate


class BadIcv(EspError):
    """RFC 4303 3.4.4: an ICV that does not match the one computed means the datagram is
    discarded (an auditable event). For AES-GCM, the tag check (RFC 4106 6)."""

    cause = "bad_icv"


class BadPadding(EspError):
    """RFC 4303 2.4: Pad Length beyond the plaintext, or Padding bytes that are not the
    default 1, 2, 3, ... sequence the receiver inspects."""

    cause = "bad_padding"


class DummyPacket(EspError):
    """RFC 4303 2.6: Next Header 59 marks a traffic-flow-confidentiality dummy packet, which
    the receiver discards: "a receiver MUST be prepared to discard such packets, without
    indicating an error" (counted, never answered)."""

    cause = "dummy"


class PolicyViolation(EspError):
    """RFC 4301 5.2 step 4: the decrypted packet does not match the selectors of the SA that
    protected it (or the SA's mode), so it is discarded."""

    cause = "policy_mismatch"


class Unprotected(EspError):
    """RFC 4301 5.2 with RFC 3776 4.1: a packet the inbound policy says must arrive
    under ESP (a Binding Update from a mobile node, say) arrived without it."""

    cause = "unprotected"


class EspLocalError(Exception):
    """Our side cannot protect a packet as asked (a local fault, never a network one)."""


class SequenceExhausted(EspLocalError):
    """RFC 4303 3.3.3: "the sender MUST NOT send a packet on an SA if doing so would cause the
    sequence number to cycle" (no Extended Sequence Numbers here): the SA must be replaced."""


class SaRetired(EspLocalError):
    """The SA was exported to another node (:meth:`SecurityAssociation.export` with
    ``retire=True``): two senders on one outbound SA would defeat the peer's replay window."""


class CannotProtect(EspLocalError):
    """The packet is not one the SA can protect in its mode: a non-first fragment (RFC 4303
    3.3.4: fragmentation comes after ESP processing), a tunnel-mode SA given a packet that is not
    IPv6-in-IPv6, a packet too large for a non-jumbo IPv6 payload."""
