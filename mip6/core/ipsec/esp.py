"""ESP processing (RFC 4303 3.3 outbound, 3.4 inbound) on whole IPv6 packets, as bytes.

:func:`protect` takes the packet a Mobile IPv6 engine built and returns it with ESP in place:

* transport mode (RFC 4303 3.1.1): the ESP header goes after the extension headers that must
  stay visible, and everything after them is encrypted. "ESP is viewed as an end-to-end
  payload, and thus should appear after hop-by-hop, routing, and fragmentation extension
  headers. Destination options extension header(s) could appear before, after, or both before
  and after the ESP header." Here a Destination Options header stays outside when it carries a
  Home Address option (RFC 3776 3.1: "IPv6 header (source = care-of address, destination = home
  agent) / Destination Options header / Home Address option (home address) / ESP header in
  transport mode / Mobility header / Binding Update"), and so does any header before the last
  one that stays outside; a type 2 routing header stays outside as every Routing header does
  (RFC 3776 3.1: "IPv6 header (source = home agent, destination = care-of address) / Routing
  header (type 2) / home address / ESP header in transport mode / Mobility header / Binding
  Acknowledgement"). A Destination Options header after all of those (options for the final
  destination only) is encrypted.
* tunnel mode (RFC 4303 3.1.2): the packet must be IPv6-in-IPv6 as RFC 2473 builds it (what
  :func:`mip6.core.datapath.encapsulate` returns, or :func:`protect_tunnel` builds); ESP goes
  between the outer headers and the inner packet, and the inner packet is encrypted whole
  (RFC 3776 3.2: "IPv6 header (source = care-of address, destination = home agent) / ESP header
  in tunnel mode / IPv6 header (source = home address, destination = correspondent node) /
  Mobility Header / Home Test Init"). The outer addresses come from the engine's packet, so the
  tunnel follows the care-of address as RFC 3776 4.3 requires.

:func:`verify` undoes it: it finds the ESP header, checks the SPI, the replay window (RFC 4303
3.4.3), the ICV (3.4.4), decrypts, checks the padding (2.4) and returns the packet with ESP
removed (:class:`Opened`); in tunnel mode that is the RFC 2473 IPv6-in-IPv6 packet, so the
engines' tunnel handling (the home agent's check of the outer source against the care-of
address, RFC 3775 10.4.5) applies unchanged, and :attr:`Opened.inner` is the inner packet. Every
failure raises one :class:`~mip6.core.ipsec.errors.EspError` subclass, whatever the input.
"""

from __future__ import annotations

import struct
from ipaddress import IPv6Address
from typing import NamedTuple

from mip6.core.datapath import encapsulate
from mip6.core.ipsec.errors import (
    BadIcv,
    BadPadding,
    CannotProtect,
    DummyPacket,
    Malformed,
    PolicyViolation,
    Truncated,
    UnknownSpi,
)
from mip6.core.ipsec.sa import Direction, Mode, SecurityAssociation
from mip6.wire import protocols
from mip6.wire.ipv6 import MAX_EXTENSION_HEADERS
from mip6.wire.ipv6ext import HOME_ADDRESS_OPTION

#   RFC 4303 2 (with 2.3's IV at the start of the Payload Data):
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |               Security Parameters Index (SPI)                 |  cleartext, covered
#   |                      Sequence Number                          |  by the ICV (AAD for GCM)
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |                    IV (8 octets GCM, 16 CBC)                  |
#   ~        Payload Data | Padding | Pad Length | Next Header      ~  encrypted
#   |         Integrity Check Value-ICV (16 octets GCM, 12 HMAC)    |
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
ESP_HEADER_LENGTH = 8
TRAILER_LENGTH = 2  # Pad Length, Next Header
_ESP_HEADER = struct.Struct("!II")
_PAYLOAD_LENGTH = struct.Struct("!H")

IPV6_HEADER_LENGTH = 40
_PAYLOAD_LENGTH_AT = 4
_NEXT_HEADER_AT = 6
_MAX_PAYLOAD = 0xFFFF  # no jumbograms (RFC 2675)

# RFC 4303 2.4: "The Padding bytes are initialized with a series of (unsigned, 1-byte) integer
# values. The first padding byte appended to the plaintext is numbered 1, with subsequent
# padding bytes making up a monotonically increasing sequence: 1, 2, 3, ...."
_PADDING = tuple(bytes(range(1, n + 1)) for n in range(256))

_OPTIONS_HEADERS = (protocols.HOP_BY_HOP, protocols.DESTINATION_OPTIONS)
_EXTENSION_HEADERS = (*_OPTIONS_HEADERS, protocols.ROUTING, protocols.FRAGMENT)


class Opened(NamedTuple):
    """A packet :func:`verify` accepted. ``packet``: the whole packet with the ESP header,
    trailer and ICV removed and the Next Header chain and Payload Length repaired (tunnel
    mode: the outer headers with Next Header 41, then the inner packet). ``payload_offset``:
    where the decrypted payload starts in ``packet``."""

    packet: bytes
    next_header: int
    sequence_number: int
    payload_offset: int

    @property
    def inner(self) -> bytes:
        """The decrypted payload: the inner IPv6 packet of a tunnel-mode SA."""
        return self.packet[self.payload_offset :]


class _Header(NamedTuple):
    kind: int  # the Next Header value that announced it
    start: int
    end: int


class _ChainError(Exception):
    def __init__(self, reason: str, truncated: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.truncated = truncated


def _walk(packet: bytes) -> tuple[list[_Header], int, int, int]:
    """The extension headers of ``packet`` in order, then the Next Header value after them,
    where that header starts, and the offset of the byte that holds that Next Header value."""
    if len(packet) < IPV6_HEADER_LENGTH:
        raise _ChainError("shorter than an IPv6 header", True)
    if packet[0] >> 4 != 6:
        raise _ChainError("IP version is not 6", False)
    end = IPV6_HEADER_LENGTH + _PAYLOAD_LENGTH.unpack_from(packet, _PAYLOAD_LENGTH_AT)[0]
    if end > len(packet):
        raise _ChainError("Payload Length overruns the packet", True)
    if end < len(packet):
        raise _ChainError("bytes beyond the Payload Length", False)
    headers: list[_Header] = []
    next_header = packet[_NEXT_HEADER_AT]
    next_header_at = _NEXT_HEADER_AT
    offset = IPV6_HEADER_LENGTH
    while next_header in _EXTENSION_HEADERS:
        if len(headers) == MAX_EXTENSION_HEADERS:
            raise _ChainError("too many extension headers", False)
        if next_header == protocols.FRAGMENT:
            header_end = offset + 8
        else:
            if offset + 2 > end:
                raise _ChainError("extension header cut short", True)
            header_end = offset + 8 * (packet[offset + 1] + 1)
        if header_end > end:
            raise _ChainError("extension header overruns the packet", True)
        headers.append(_Header(next_header, offset, header_end))
        next_header_at = offset
        next_header = packet[offset]
        offset = header_end
    return headers, next_header, offset, next_header_at


def _has_home_address_option(packet: bytes, header: _Header) -> bool:
    """Whether an options header holds a Home Address option (RFC 3775 6.3)."""
    position = header.start + 2
    while position < header.end:
        option_type = packet[position]
        if option_type == 0:  # Pad1
            position += 1
            continue
        if position + 2 > header.end:
            return False
        if option_type == HOME_ADDRESS_OPTION:
            return True
        position += 2 + packet[position + 1]
    return False


def _stays_outside(packet: bytes, header: _Header) -> bool:
    if header.kind == protocols.DESTINATION_OPTIONS:
        return _has_home_address_option(packet, header)
    if header.kind == protocols.FRAGMENT:
        offset_and_flags = _PAYLOAD_LENGTH.unpack_from(packet, header.start + 2)[0]
        if offset_and_flags & 0xFFF9:  # Fragment Offset or M set: a real fragment
            # RFC 4303 3.3.4: fragmentation "is performed after ESP processing" (and 3.4.1:
            # reassembly before it), so ESP never protects a fragment.
            raise CannotProtect("ESP protects whole packets, not fragments (RFC 4303 3.3.4)")
    return True  # Hop-by-Hop, Routing, atomic Fragment: for nodes on the path


def _whole_ipv6_packet(data: bytes, start: int, end: int) -> bool:
    """Whether ``data[start:end]`` is exactly one IPv6 packet (version 6, Payload Length
    matching), checked in place."""
    return (
        end - start >= IPV6_HEADER_LENGTH
        and data[start] >> 4 == 6
        and IPV6_HEADER_LENGTH + _PAYLOAD_LENGTH.unpack_from(data, start + 4)[0] == end - start
    )


def _split(sa: SecurityAssociation, packet: bytes) -> tuple[int, int]:
    """Where the protected part of ``packet`` starts, and the offset of the Next Header byte
    that announces it (and will announce ESP)."""
    try:
        headers, next_header, offset, next_header_at = _walk(packet)
    except _ChainError as error:
        raise CannotProtect(f"not a well-formed IPv6 packet: {error.reason}") from None
    if sa.mode is Mode.TUNNEL:
        if next_header != protocols.IPV6:
            raise CannotProtect(
                f"tunnel-mode SA 0x{sa.spi:08x} needs an IPv6-in-IPv6 packet (RFC 2473), "
                f"got Next Header {next_header}"
            )
        if not _whole_ipv6_packet(packet, offset, len(packet)):
            raise CannotProtect("the tunnelled packet is not one whole IPv6 packet")
        return offset, next_header_at
    start, announced_at = IPV6_HEADER_LENGTH, _NEXT_HEADER_AT
    for header in headers:
        if _stays_outside(packet, header):
            start, announced_at = header.end, header.start
    return start, announced_at


def protect(sa: SecurityAssociation, packet: bytes) -> bytes:
    """``packet`` (a whole IPv6 packet) with ESP applied under ``sa`` (outbound), in the SA's
    mode; see the module docstring for where the ESP header goes. Consumes one Sequence
    Number. Raises :class:`~mip6.core.ipsec.errors.EspLocalError` subclasses when the packet
    cannot be protected, ``ValueError`` for an inbound SA."""
    packet = bytes(packet)
    if sa.direction is not Direction.OUTBOUND:
        raise ValueError(f"SA 0x{sa.spi:08x} is inbound; protect() needs an outbound SA")
    start, announced_at = _split(sa, packet)
    return _seal(sa, packet[:start], announced_at, packet[announced_at], packet[start:])


def _seal(
    sa: SecurityAssociation, outside: bytes, announced_at: int, next_header: int, payload: bytes
) -> bytes:
    """``outside`` (the IPv6 header and the extension headers that stay visible), then ESP
    carrying ``payload`` with ``next_header`` in its trailer; the byte at ``announced_at``
    becomes 50 and the Payload Length is set."""
    transform = sa.transform
    # RFC 4303 2.4: pad so that Payload || Padding || Pad Length || Next Header fills whole
    # cipher blocks (16 octets, AES-CBC) and ends on a 4-octet boundary (both algorithms).
    pad_length = -(len(payload) + TRAILER_LENGTH) % transform.pad_to
    esp_length = (
        ESP_HEADER_LENGTH
        + transform.iv_length
        + len(payload)
        + pad_length
        + TRAILER_LENGTH
        + transform.icv_length
    )
    payload_length = len(outside) - IPV6_HEADER_LENGTH + esp_length
    if payload_length > _MAX_PAYLOAD:
        raise CannotProtect("protected packet would exceed the IPv6 Payload Length (65535)")
    # RFC 4303 3.3.3: a new Sequence Number for every packet; the counter never cycles.
    sequence_number = sa.next_sequence_number()
    header = _ESP_HEADER.pack(sa.spi, sequence_number)
    plaintext = b"".join(
        (payload, _PADDING[pad_length], bytes((pad_length, next_header)))  # RFC 4303 2.5, 2.6
    )
    out = bytearray(outside)
    out[announced_at] = protocols.ESP
    _PAYLOAD_LENGTH.pack_into(out, _PAYLOAD_LENGTH_AT, payload_length)
    out += header
    out += transform.seal(header, sa.iv(sequence_number), plaintext)
    return bytes(out)


def dummy_packet(
    sa: SecurityAssociation,
    *,
    source: IPv6Address,
    destination: IPv6Address,
    length: int = 0,
    hop_limit: int = 64,
) -> bytes:
    """RFC 4303 2.6: "A transmitter MUST be capable of generating dummy packets marked with
    this value [59] in the next protocol field": an IPv6 packet from ``source`` to
    ``destination`` (the tunnel endpoints in tunnel mode) whose ESP payload is ``length`` zero
    bytes and whose Next Header is 59. It consumes a Sequence Number like any packet; the peer
    discards it (:class:`~mip6.core.ipsec.errors.DummyPacket`)."""
    if sa.direction is not Direction.OUTBOUND:
        raise ValueError(f"SA 0x{sa.spi:08x} is inbound; dummy_packet() needs an outbound SA")
    if not 0 <= length <= _MAX_PAYLOAD:
        raise CannotProtect("dummy payload too large")
    outside = encapsulate(b"", source, destination, hop_limit)
    return _seal(sa, outside, _NEXT_HEADER_AT, protocols.NO_NEXT_HEADER, bytes(length))


def protect_tunnel(
    sa: SecurityAssociation,
    inner: bytes,
    *,
    source: IPv6Address,
    destination: IPv6Address,
    hop_limit: int = 64,
) -> bytes:
    """Tunnel mode from scratch: ``inner`` inside a new outer header from ``source`` (the
    mobile node's care-of address, or the home agent) to ``destination``."""
    try:
        tunnelled = encapsulate(bytes(inner), source, destination, hop_limit)
    except (ValueError, OverflowError, struct.error) as error:
        raise CannotProtect(f"cannot encapsulate: {error}") from None
    return protect(sa, tunnelled)


class EspLocation(NamedTuple):
    """Where the ESP header of a received packet is: ``offset`` of the header, the offset of
    the Next Header byte that announced it, and the two cleartext fields."""

    offset: int
    announced_at: int
    spi: int
    sequence_number: int


def locate(packet: bytes) -> EspLocation | None:
    """The ESP header of ``packet``, or None when the packet carries no ESP (its header chain
    ends in another upper layer). Raises ``Truncated``/``Malformed`` for a broken IPv6 packet
    or an ESP header cut short."""
    try:
        _headers, next_header, offset, announced_at = _walk(packet)
    except _ChainError as error:
        raise (Truncated if error.truncated else Malformed)(error.reason) from None
    if next_header != protocols.ESP:
        return None
    if offset + ESP_HEADER_LENGTH > len(packet):
        raise Truncated("ESP header cut short")
    spi, sequence_number = _ESP_HEADER.unpack_from(packet, offset)
    return EspLocation(offset, announced_at, spi, sequence_number)


def verify(sa: SecurityAssociation, packet: bytes, location: EspLocation | None = None) -> Opened:
    """Inbound ESP processing of ``packet`` (a whole received IPv6 packet) with ``sa``
    (inbound). ``location`` (from :func:`locate`) saves a second walk of the header chain.
    Returns the :class:`Opened` packet, or raises an
    :class:`~mip6.core.ipsec.errors.EspError`; never anything else for any input bytes."""
    packet = bytes(packet)
    if sa.direction is not Direction.INBOUND:
        raise ValueError(f"SA 0x{sa.spi:08x} is outbound; verify() needs an inbound SA")
    if location is None:
        location = locate(packet)
        if location is None:
            raise Malformed("no ESP header in the packet")
    spi, sequence_number = location.spi, location.sequence_number
    if spi != sa.spi:
        # RFC 4303 3.4.2: the SA is found from the SPI; this one is not ours.
        raise UnknownSpi("SPI is not this SA's", spi=spi, sequence_number=sequence_number)
    transform = sa.transform
    start = location.offset + ESP_HEADER_LENGTH
    body = memoryview(packet)[start:]  # the transforms read it in place
    ciphertext_length = len(body) - transform.iv_length - transform.icv_length
    if ciphertext_length < TRAILER_LENGTH:
        raise Truncated(
            "too short for IV, trailer and ICV", spi=spi, sequence_number=sequence_number
        )
    if ciphertext_length % transform.pad_to:
        # RFC 4303 2.4: whole cipher blocks, ending on a 4-octet boundary.
        raise Malformed(
            f"ciphertext of {ciphertext_length} bytes is not a multiple of {transform.pad_to}",
            spi=spi,
            sequence_number=sequence_number,
        )
    # RFC 4303 3.4.3: a packet in the window and not a duplicate, or right of the window,
    # goes on to ICV verification; the window moves only once the ICV has verified.
    sa.check_replay(sequence_number)
    header = packet[location.offset : start]
    try:
        plaintext = transform.open(header, body)
    except BadIcv as error:
        raise BadIcv(error.reason, spi=spi, sequence_number=sequence_number) from None
    sa.accept_sequence_number(sequence_number)
    pad_length, next_header = plaintext[-2], plaintext[-1]
    payload_end = len(plaintext) - TRAILER_LENGTH - pad_length
    if payload_end < 0:
        raise BadPadding(
            f"Pad Length {pad_length} exceeds the plaintext",
            spi=spi,
            sequence_number=sequence_number,
        )
    # RFC 4303 2.4: "the receiver SHOULD inspect the Padding field".
    if plaintext[payload_end : payload_end + pad_length] != _PADDING[pad_length]:
        raise BadPadding("Padding is not 1, 2, 3, ...", spi=spi, sequence_number=sequence_number)
    if next_header == protocols.NO_NEXT_HEADER:
        # RFC 4303 2.6: "a receiver MUST be prepared to discard such packets, without
        # indicating an error".
        raise DummyPacket("Next Header 59", spi=spi, sequence_number=sequence_number)
    if sa.mode is Mode.TUNNEL:
        if next_header != protocols.IPV6:
            raise PolicyViolation(
                f"tunnel-mode SA carried Next Header {next_header}, not an IPv6 packet",
                spi=spi,
                sequence_number=sequence_number,
            )
        if not _whole_ipv6_packet(plaintext, 0, payload_end):
            raise Malformed(
                "tunnelled payload is not one whole IPv6 packet",
                spi=spi,
                sequence_number=sequence_number,
            )
    out = bytearray(packet[: location.offset])
    out[location.announced_at] = next_header
    _PAYLOAD_LENGTH.pack_into(
        out, _PAYLOAD_LENGTH_AT, location.offset - IPV6_HEADER_LENGTH + payload_end
    )
    payload_offset = len(out)
    out += memoryview(plaintext)[:payload_end]
    return Opened(bytes(out), next_header, sequence_number, payload_offset)
