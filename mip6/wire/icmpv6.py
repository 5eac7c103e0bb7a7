"""ICMPv6 (RFC 4443), Neighbor Discovery (RFC 4861) and the Mobile IPv6 additions to both:
the Home Agent Address Discovery and Mobile Prefix messages (RFC 3775 6.5-6.8), the Home Agent
(H) flag of Router Advertisements (RFC 3775 7.1), the Router Address (R) flag of Prefix
Information (RFC 3775 7.2) and the Advertisement Interval and Home Agent Information options
(RFC 3775 7.3, 7.4).

Every message is its own frozen ``Repr``. None stores its Type (a class constant, except in
:class:`UnknownIcmpv6`) or its Checksum (computed by ``emit`` over the RFC 8200 8.1
pseudo-header and verified by ``parse``). ``parse`` takes exactly the ICMPv6 message, from the
Type byte to the end of the IPv6 payload, and every error offset is relative to that buffer.

Code values are kept as integers, known or not: RFC 4861 6.1.1-7.1.2 make "ICMP Code is 0" a
receiver's validity check, so even messages whose Code is always 0 keep it for the engine to
check. Packet Too Big is the exception: RFC 4443 3.2 says its Code is "ignored by the receiver",
so it is treated like a reserved field. Reserved fields are zero on emit and ignored on parse;
hence ``parse(emit(r)) == r`` for every valid ``r`` and ``emit(parse(b)) == b`` for every ``b``
whose reserved bits are zero.

Not interpreted (kept as :class:`UnknownIcmpv6` / :class:`UnknownNdOption`): Redirect, MLD,
RFC 4884 extension structures, the Redirected Header option. In Router Advertisements the
RFC 4191 Prf bits and the RFC 4389 P bit fall in what RFC 4861 calls Reserved and are ignored.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import ClassVar

from mip6.wire import protocols
from mip6.wire.checksum import upper_layer_checksum, verify_upper_layer
from mip6.wire.errors import BadChecksum, EmitError, Malformed, Truncated
from mip6.wire.fields import address, check_addresses, check_uint, need

# RFC 4443 2.1:
#   0                   1                   2                   3
#   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |     Type      |     Code      |          Checksum             |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |                                                               |
#  +                         Message Body                          +
TYPE = 0
CODE = 1
CHECKSUM = 2
BODY = 4
_HEADER = struct.Struct("!BBH")
_WORD = struct.Struct("!I")

# ICMPv6 Type values (RFC 4443 2.1, RFC 4861 4, RFC 3775 6.5-6.8).
DESTINATION_UNREACHABLE = 1
PACKET_TOO_BIG = 2
TIME_EXCEEDED = 3
PARAMETER_PROBLEM = 4
ECHO_REQUEST = 128
ECHO_REPLY = 129
ROUTER_SOLICITATION = 133
ROUTER_ADVERTISEMENT = 134
NEIGHBOR_SOLICITATION = 135
NEIGHBOR_ADVERTISEMENT = 136
HOME_AGENT_ADDRESS_DISCOVERY_REQUEST = 144
HOME_AGENT_ADDRESS_DISCOVERY_REPLY = 145
MOBILE_PREFIX_SOLICITATION = 146
MOBILE_PREFIX_ADVERTISEMENT = 147

# RFC 4443 3.1 Destination Unreachable codes.
NO_ROUTE_TO_DESTINATION = 0
ADMINISTRATIVELY_PROHIBITED = 1
BEYOND_SCOPE_OF_SOURCE_ADDRESS = 2
ADDRESS_UNREACHABLE = 3
PORT_UNREACHABLE = 4
SOURCE_ADDRESS_FAILED_POLICY = 5
REJECT_ROUTE_TO_DESTINATION = 6
# RFC 4443 3.3 Time Exceeded codes.
HOP_LIMIT_EXCEEDED = 0
FRAGMENT_REASSEMBLY_TIME_EXCEEDED = 1
# RFC 4443 3.4 Parameter Problem codes (3 from RFC 7112).
ERRONEOUS_HEADER_FIELD = 0
UNRECOGNIZED_NEXT_HEADER = 1
UNRECOGNIZED_IPV6_OPTION = 2
INCOMPLETE_HEADER_CHAIN = 3

_OVERRIDE_BITS = {"type": 8, "code": 8, "checksum": 16}


def _finish(
    icmp_type: int,
    code: int,
    body: bytes,
    source: bytes,
    destination: bytes,
    overrides: Mapping[str, int] | None,
) -> bytes:
    """Header + body with the checksum filled in (RFC 4443 2.3), after applying ``overrides``."""
    fields = {"type": icmp_type, "code": code}
    checksum: int | None = None
    for name, value in (overrides or {}).items():
        if name not in _OVERRIDE_BITS:
            raise EmitError(f"cannot override {name!r}; only type, code, checksum")
        check_uint(name, value, _OVERRIDE_BITS[name])
        if name == "checksum":
            checksum = value
        else:
            fields[name] = value
    check_uint("code", fields["code"], 8)
    segment = _HEADER.pack(fields["type"], fields["code"], 0) + body
    if checksum is None:
        # RFC 4443 2.3: the checksum covers the pseudo-header (RFC 8200 8.1, Next Header 58)
        # and the whole ICMPv6 message with the Checksum field zero.
        check_addresses(source, destination)
        checksum = upper_layer_checksum(source, destination, protocols.ICMPV6, segment)
    return segment[:CHECKSUM] + checksum.to_bytes(2, "big") + segment[BODY:]


# ---------------------------------------------------------------------------------------------
# Neighbor Discovery options (RFC 4861 4.6)
#
#   0                   1                   2                   3
#   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |     Type      |    Length     |              ...              |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  ~                              ...                              ~
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# Length counts the whole option, Type and Length included, in units of 8 octets.
OPTION_TYPE = 0
OPTION_LENGTH = 1
OPTION_DATA = 2

SOURCE_LINK_LAYER_ADDRESS = 1
TARGET_LINK_LAYER_ADDRESS = 2
PREFIX_INFORMATION = 3
REDIRECTED_HEADER = 4
MTU = 5
ADVERTISEMENT_INTERVAL = 7  # RFC 3775 7.3
HOME_AGENT_INFORMATION = 8  # RFC 3775 7.4

INFINITE_LIFETIME = 0xFFFFFFFF  # RFC 4861 4.6.2: "all one bits (0xffffffff) represents infinity"
_MAX_OPTION_DATA = 255 * 8 - 2


def _check_option_data(option_type: int, data: bytes) -> None:
    if (OPTION_DATA + len(data)) % 8 or not data:
        raise EmitError(
            f"ND option type {option_type} data of {len(data)} bytes: option must be 8n bytes"
        )
    if len(data) > _MAX_OPTION_DATA:
        raise EmitError(f"ND option type {option_type} data of {len(data)} bytes exceeds 2038")


class _NdOption:
    """What every ND option offers to :func:`parse_nd_options` and :func:`emit_nd_options`."""

    __slots__ = ()
    option_type: ClassVar[int]
    fixed_length: ClassVar[int | None] = None  # in units of 8 octets, where the RFC fixes it

    def emit_data(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def parse_data(cls, buf: bytes, offset: int, end: int) -> NdOption:
        """The option with its Type byte at ``offset``, ending at ``end`` (length checked)."""
        raise NotImplementedError

    def emit(self) -> bytes:
        data = self.emit_data()
        _check_option_data(self.option_type, data)
        return bytes((self.option_type, (OPTION_DATA + len(data)) // 8)) + data


#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |     Type      |    Length     |    Link-Layer Address ...
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
@dataclass(frozen=True, slots=True, kw_only=True)
class _LinkLayerAddressOption(_NdOption):
    """RFC 4861 4.6.1. ``link_layer_address`` is the whole option data, including any padding
    after the address (its length is link-layer specific: 6 bytes fill Ethernet's option
    exactly), so it is always ``8n - 2`` bytes; :meth:`padded` builds one from a bare address."""

    link_layer_address: bytes

    def __post_init__(self) -> None:
        _check_option_data(self.option_type, self.link_layer_address)

    @classmethod
    def padded(cls, link_layer_address: bytes) -> _LinkLayerAddressOption:
        """The option for ``link_layer_address`` with zero padding to an 8-octet boundary."""
        padding = bytes(-(OPTION_DATA + len(link_layer_address)) % 8)
        return cls(link_layer_address=link_layer_address + padding)

    def emit_data(self) -> bytes:
        return self.link_layer_address

    @classmethod
    def parse_data(cls, buf: bytes, offset: int, end: int) -> _LinkLayerAddressOption:
        return cls(link_layer_address=bytes(buf[offset + OPTION_DATA : end]))


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceLinkLayerAddress(_LinkLayerAddressOption):
    """RFC 4861 4.6.1 Source Link-Layer Address (type 1)."""

    option_type: ClassVar[int] = SOURCE_LINK_LAYER_ADDRESS


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetLinkLayerAddress(_LinkLayerAddressOption):
    """RFC 4861 4.6.1 Target Link-Layer Address (type 2)."""

    option_type: ClassVar[int] = TARGET_LINK_LAYER_ADDRESS


# RFC 4861 4.6.2, R flag from RFC 3775 7.2:
#   0                   1                   2                   3
#   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |     Type      |    Length     | Prefix Length |L|A|R|Reserved1|
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |                         Valid Lifetime                        |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |                       Preferred Lifetime                      |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |                           Reserved2                           |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |                                                               |
#  +                            Prefix                             +
PREFIX_LENGTH = 2
PREFIX_FLAGS = 3
VALID_LIFETIME = 4
PREFERRED_LIFETIME = 8
PREFIX_RESERVED2 = 12
PREFIX = 16
_PREFIX_INFORMATION = struct.Struct("!BBII4x16s")  # from Prefix Length on
_ON_LINK = 0x80
_AUTONOMOUS = 0x40
_ROUTER_ADDRESS = 0x20  # RFC 3775 7.2


@dataclass(frozen=True, slots=True, kw_only=True)
class PrefixInformation(_NdOption):
    """RFC 4861 4.6.2 Prefix Information (type 3, Length 4). Lifetimes are in seconds,
    :data:`INFINITE_LIFETIME` meaning infinity.

    ``prefix`` is kept verbatim, bits past ``prefix_length`` included: with ``router_address``
    set, RFC 3775 7.2 makes the field "a complete IP address assigned to the sending router".
    A ``prefix_length`` above 128 is kept too; consumers ignore such an option.
    """

    option_type: ClassVar[int] = PREFIX_INFORMATION
    fixed_length: ClassVar[int | None] = 4
    prefix_length: int
    prefix: IPv6Address
    on_link: bool = False
    autonomous: bool = False
    router_address: bool = False
    valid_lifetime: int = 0
    preferred_lifetime: int = 0

    def __post_init__(self) -> None:
        check_uint("prefix_length", self.prefix_length, 8)
        check_uint("valid_lifetime", self.valid_lifetime, 32)
        check_uint("preferred_lifetime", self.preferred_lifetime, 32)

    def emit_data(self) -> bytes:
        flags = (
            (_ON_LINK if self.on_link else 0)
            | (_AUTONOMOUS if self.autonomous else 0)
            | (_ROUTER_ADDRESS if self.router_address else 0)
        )
        return _PREFIX_INFORMATION.pack(
            self.prefix_length,
            flags,
            self.valid_lifetime,
            self.preferred_lifetime,
            self.prefix.packed,
        )

    @classmethod
    def parse_data(cls, buf: bytes, offset: int, end: int) -> PrefixInformation:
        prefix_length, flags, valid, preferred, prefix = _PREFIX_INFORMATION.unpack_from(
            buf, offset + PREFIX_LENGTH
        )
        return cls(
            prefix_length=prefix_length,
            prefix=IPv6Address(prefix),
            on_link=bool(flags & _ON_LINK),
            autonomous=bool(flags & _AUTONOMOUS),
            router_address=bool(flags & _ROUTER_ADDRESS),
            valid_lifetime=valid,
            preferred_lifetime=preferred,
        )


# RFC 4861 4.6.4 (MTU) and RFC 3775 7.3 (Advertisement Interval) share one layout:
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |     Type      |    Length     |           Reserved            |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |                    MTU / Advertisement Interval               |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
OPTION_WORD = 4
_OPTION_WORD = struct.Struct("!2xI")  # from the option data on


@dataclass(frozen=True, slots=True, kw_only=True)
class Mtu(_NdOption):
    """RFC 4861 4.6.4 MTU (type 5, Length 1): the recommended link MTU in bytes."""

    option_type: ClassVar[int] = MTU
    fixed_length: ClassVar[int | None] = 1
    mtu: int

    def __post_init__(self) -> None:
        check_uint("mtu", self.mtu, 32)

    def emit_data(self) -> bytes:
        return _OPTION_WORD.pack(self.mtu)

    @classmethod
    def parse_data(cls, buf: bytes, offset: int, end: int) -> Mtu:
        (mtu,) = _OPTION_WORD.unpack_from(buf, offset + OPTION_DATA)
        return cls(mtu=mtu)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdvertisementInterval(_NdOption):
    """RFC 3775 7.3 Advertisement Interval (type 7, Length 1): "the maximum time, in
    milliseconds, between successive unsolicited Router Advertisement messages"."""

    option_type: ClassVar[int] = ADVERTISEMENT_INTERVAL
    fixed_length: ClassVar[int | None] = 1
    advertisement_interval_ms: int

    def __post_init__(self) -> None:
        check_uint("advertisement_interval_ms", self.advertisement_interval_ms, 32)

    def emit_data(self) -> bytes:
        return _OPTION_WORD.pack(self.advertisement_interval_ms)

    @classmethod
    def parse_data(cls, buf: bytes, offset: int, end: int) -> AdvertisementInterval:
        (interval,) = _OPTION_WORD.unpack_from(buf, offset + OPTION_DATA)
        return cls(advertisement_interval_ms=interval)


# RFC 3775 7.4:
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |     Type      |    Length     |           Reserved            |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |    Home Agent Preference      |      Home Agent Lifetime      |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
HOME_AGENT_PREFERENCE = 4
HOME_AGENT_LIFETIME = 6
_HOME_AGENT_INFORMATION = struct.Struct("!2xhH")  # from the option data on


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeAgentInformation(_NdOption):
    """RFC 3775 7.4 Home Agent Information (type 8, Length 1).

    ``home_agent_preference`` is a 16-bit signed, twos-complement integer (higher values are
    more preferable); ``home_agent_lifetime`` is in seconds. RFC 3775 forbids a zero lifetime;
    it is kept as received for the engine to judge.
    """

    option_type: ClassVar[int] = HOME_AGENT_INFORMATION
    fixed_length: ClassVar[int | None] = 1
    home_agent_lifetime: int
    home_agent_preference: int = 0

    def __post_init__(self) -> None:
        if not -0x8000 <= self.home_agent_preference < 0x8000:
            raise EmitError(
                f"home_agent_preference={self.home_agent_preference} does not fit in a signed "
                "16-bit field"
            )
        check_uint("home_agent_lifetime", self.home_agent_lifetime, 16)

    def emit_data(self) -> bytes:
        return _HOME_AGENT_INFORMATION.pack(self.home_agent_preference, self.home_agent_lifetime)

    @classmethod
    def parse_data(cls, buf: bytes, offset: int, end: int) -> HomeAgentInformation:
        preference, lifetime = _HOME_AGENT_INFORMATION.unpack_from(buf, offset + OPTION_DATA)
        return cls(home_agent_preference=preference, home_agent_lifetime=lifetime)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownNdOption(_NdOption):
    """An ND option this codec does not interpret, data kept verbatim. RFC 4861 4.6: "Receivers
    MUST silently ignore any options they do not recognize and continue processing"."""

    option_type: int  # type: ignore[misc]  # an instance field here, a ClassVar elsewhere
    data: bytes

    def __post_init__(self) -> None:
        check_uint("option_type", self.option_type, 8)
        if self.option_type in _ND_OPTIONS:
            raise EmitError(f"ND option type {self.option_type} has its own Repr")
        _check_option_data(self.option_type, self.data)

    def emit_data(self) -> bytes:
        return self.data


NdOption = (
    SourceLinkLayerAddress
    | TargetLinkLayerAddress
    | PrefixInformation
    | Mtu
    | AdvertisementInterval
    | HomeAgentInformation
    | UnknownNdOption
)

_ND_OPTIONS: dict[int, type[_NdOption]] = {
    SOURCE_LINK_LAYER_ADDRESS: SourceLinkLayerAddress,
    TARGET_LINK_LAYER_ADDRESS: TargetLinkLayerAddress,
    PREFIX_INFORMATION: PrefixInformation,
    MTU: Mtu,
    ADVERTISEMENT_INTERVAL: AdvertisementInterval,
    HOME_AGENT_INFORMATION: HomeAgentInformation,
}


def parse_nd_options(buf: bytes, start: int) -> tuple[NdOption, ...]:
    """The ND options from ``start`` to the end of ``buf`` (the end of the ICMPv6 message)."""
    options: list[NdOption] = []
    offset = start
    end = len(buf)
    while offset < end:
        if offset + OPTION_DATA > end:
            raise Truncated("ND option length byte missing", offset + OPTION_LENGTH, "length")
        option_type = buf[offset + OPTION_TYPE]
        units = buf[offset + OPTION_LENGTH]
        if units == 0:
            # RFC 4861 4.6: "The value 0 is invalid. Nodes MUST silently discard an ND packet
            # that contains an option with length zero."
            raise Malformed(
                f"ND option type {option_type} has length 0", offset + OPTION_LENGTH, "length"
            )
        option_end = offset + 8 * units
        if option_end > end:
            raise Truncated(
                f"ND option type {option_type} length {units} overruns the message by "
                f"{option_end - end} bytes",
                offset + OPTION_LENGTH,
                "length",
            )
        kind = _ND_OPTIONS.get(option_type)
        if kind is None:
            options.append(
                UnknownNdOption(
                    option_type=option_type, data=bytes(buf[offset + OPTION_DATA : option_end])
                )
            )
        else:
            if kind.fixed_length is not None and units != kind.fixed_length:
                raise Malformed(
                    f"ND option type {option_type} length {units}, must be {kind.fixed_length}",
                    offset + OPTION_LENGTH,
                    "length",
                )
            options.append(kind.parse_data(buf, offset, option_end))
        offset = option_end
    return tuple(options)


def emit_nd_options(options: tuple[NdOption, ...]) -> bytes:
    return b"".join(option.emit() for option in options)


# ---------------------------------------------------------------------------------------------
# Messages


class _Icmpv6:
    """What every ICMPv6 message ``Repr`` offers; concrete classes add ``_body`` and
    ``_parse_body``."""

    __slots__ = ()
    protocol: ClassVar[int] = protocols.ICMPV6
    icmp_type: ClassVar[int]
    name: ClassVar[str]
    fixed_size: ClassVar[int]  # bytes of the message body, after the checksum, before options

    @classmethod
    def parse(cls, buf: bytes, *, source: bytes, destination: bytes) -> Icmpv6Message:
        """Any ICMPv6 message (dispatching on its Type, so not necessarily a ``cls``); ``source``
        and ``destination`` are the 16-byte pseudo-header addresses."""
        return parse_icmpv6(buf, source=source, destination=destination)

    @property
    def is_error(self) -> bool:
        """RFC 4443 2.1: error messages have Types 0-127, informational ones 128-255."""
        return self.icmp_type < 128

    def _code(self) -> int:
        return self.code  # type: ignore[attr-defined, no-any-return]

    def _body(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def _parse_body(cls, buf: bytes, code: int) -> Icmpv6Message:
        """The message in ``buf``, whose fixed part is present and checksum verified."""
        raise NotImplementedError

    def emit(
        self,
        *,
        source: bytes,
        destination: bytes,
        overrides: Mapping[str, int] | None = None,
    ) -> bytes:
        """The message with its checksum over the pseudo-header of ``source`` and
        ``destination`` (16 bytes each). ``overrides`` may force raw ``type``, ``code`` or
        ``checksum`` values; the checksum is computed after the other overrides."""
        return _finish(self.icmp_type, self._code(), self._body(), source, destination, overrides)


# RFC 4443 3.1, 3.3 (Unused), 3.2 (MTU), 3.4 (Pointer):
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |     Type      |     Code      |          Checksum             |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |                    Unused / MTU / Pointer                     |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |                    As much of invoking packet                 |
#  +               as possible without the ICMPv6 packet           +
#  |               exceeding the minimum IPv6 MTU [IPv6]           |
ERROR_WORD = 4
INVOKING_PACKET = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationUnreachable(_Icmpv6):
    """RFC 4443 3.1. Unused is zero on emit and ignored on parse (RFC 4884 puts a length there
    for extension structures; this codec does not interpret them)."""

    icmp_type: ClassVar[int] = DESTINATION_UNREACHABLE
    name: ClassVar[str] = "destination unreachable"
    fixed_size: ClassVar[int] = 4
    code: int = NO_ROUTE_TO_DESTINATION
    invoking_packet: bytes = b""

    def __post_init__(self) -> None:
        check_uint("code", self.code, 8)

    def _body(self) -> bytes:
        return bytes(4) + self.invoking_packet

    @classmethod
    def _parse_body(cls, buf: bytes, code: int) -> DestinationUnreachable:
        return cls(code=code, invoking_packet=bytes(buf[INVOKING_PACKET:]))


@dataclass(frozen=True, slots=True, kw_only=True)
class PacketTooBig(_Icmpv6):
    """RFC 4443 3.2. ``mtu`` in bytes. Code: "Set to 0 by the originator and ignored by the
    receiver", so it is not kept."""

    icmp_type: ClassVar[int] = PACKET_TOO_BIG
    name: ClassVar[str] = "packet too big"
    fixed_size: ClassVar[int] = 4
    mtu: int
    invoking_packet: bytes = b""

    def __post_init__(self) -> None:
        check_uint("mtu", self.mtu, 32)

    def _code(self) -> int:
        return 0

    def _body(self) -> bytes:
        return _WORD.pack(self.mtu) + self.invoking_packet

    @classmethod
    def _parse_body(cls, buf: bytes, code: int) -> PacketTooBig:
        (mtu,) = _WORD.unpack_from(buf, ERROR_WORD)
        return cls(mtu=mtu, invoking_packet=bytes(buf[INVOKING_PACKET:]))


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeExceeded(_Icmpv6):
    """RFC 4443 3.3. Unused is zero on emit and ignored on parse."""

    icmp_type: ClassVar[int] = TIME_EXCEEDED
    name: ClassVar[str] = "time exceeded"
    fixed_size: ClassVar[int] = 4
    code: int = HOP_LIMIT_EXCEEDED
    invoking_packet: bytes = b""

    def __post_init__(self) -> None:
        check_uint("code", self.code, 8)

    def _body(self) -> bytes:
        return bytes(4) + self.invoking_packet

    @classmethod
    def _parse_body(cls, buf: bytes, code: int) -> TimeExceeded:
        return cls(code=code, invoking_packet=bytes(buf[INVOKING_PACKET:]))


@dataclass(frozen=True, slots=True, kw_only=True)
class ParameterProblem(_Icmpv6):
    """RFC 4443 3.4. ``pointer``: "the octet offset within the invoking packet where the error
    was detected"."""

    icmp_type: ClassVar[int] = PARAMETER_PROBLEM
    name: ClassVar[str] = "param problem"
    fixed_size: ClassVar[int] = 4
    code: int = ERRONEOUS_HEADER_FIELD
    pointer: int
    invoking_packet: bytes = b""

    def __post_init__(self) -> None:
        check_uint("code", self.code, 8)
        check_uint("pointer", self.pointer, 32)

    def _body(self) -> bytes:
        return _WORD.pack(self.pointer) + self.invoking_packet

    @classmethod
    def _parse_body(cls, buf: bytes, code: int) -> ParameterProblem:
        (pointer,) = _WORD.unpack_from(buf, ERROR_WORD)
        return cls(code=code, pointer=pointer, invoking_packet=bytes(buf[INVOKING_PACKET:]))


# RFC 4443 4.1, 4.2:
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |     Type      |     Code      |          Checksum             |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |           Identifier          |        Sequence Number        |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |     Data ...
ECHO_IDENTIFIER = 4
ECHO_SEQUENCE = 6
ECHO_DATA = 8
_ECHO = struct.Struct("!HH")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Echo(_Icmpv6):
    fixed_size: ClassVar[int] = 4
    identifier: int = 0
    sequence: int = 0
    data: bytes = b""
    code: int = 0

    def __post_init__(self) -> None:
        check_uint("identifier", self.identifier, 16)
        check_uint("sequence", self.sequence, 16)
        check_uint("code", self.code, 8)

    def _body(self) -> bytes:
        return _ECHO.pack(self.identifier, self.sequence) + self.data

    @classmethod
    def _parse_body(cls, buf: bytes, code: int) -> _Echo:
        identifier, sequence = _ECHO.unpack_from(buf, ECHO_IDENTIFIER)
        return cls(identifier=identifier, sequence=sequence, data=bytes(buf[ECHO_DATA:]), code=code)


@dataclass(frozen=True, slots=True, kw_only=True)
class EchoRequest(_Echo):
    """RFC 4443 4.1 Echo Request (Code 0)."""

    icmp_type: ClassVar[int] = ECHO_REQUEST
    name: ClassVar[str] = "echo request"


@dataclass(frozen=True, slots=True, kw_only=True)
class EchoReply(_Echo):
    """RFC 4443 4.2 Echo Reply: identifier, sequence and data copied from the request."""

    icmp_type: ClassVar[int] = ECHO_REPLY
    name: ClassVar[str] = "echo reply"


# RFC 4861 4.1 Router Solicitation:
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |     Type      |     Code      |          Checksum             |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |                            Reserved                           |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |   Options ...
RS_OPTIONS = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterSolicitation(_Icmpv6):
    """RFC 4861 4.1 (Code 0); the one option it defines is Source Link-Layer Address."""

    icmp_type: ClassVar[int] = ROUTER_SOLICITATION
    name: ClassVar[str] = "router solicitation"
    fixed_size: ClassVar[int] = 4
    options: tuple[NdOption, ...] = ()
    code: int = 0

    def __post_init__(self) -> None:
        check_uint("code", self.code, 8)

    def _body(self) -> bytes:
        return bytes(4) + emit_nd_options(self.options)

    @classmethod
    def _parse_body(cls, buf: bytes, code: int) -> RouterSolicitation:
        return cls(options=parse_nd_options(buf, RS_OPTIONS), code=code)


# RFC 4861 4.2 Router Advertisement, H flag from RFC 3775 7.1:
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |     Type      |     Code      |          Checksum             |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  | Cur Hop Limit |M|O|H|Reserved |       Router Lifetime         |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |                         Reachable Time                        |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |                          Retrans Timer                        |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |   Options ...
CUR_HOP_LIMIT = 4
RA_FLAGS = 5
ROUTER_LIFETIME = 6
REACHABLE_TIME = 8
RETRANS_TIMER = 12
RA_OPTIONS = 16
_RA = struct.Struct("!BBHII")
_MANAGED = 0x80
_OTHER = 0x40
_HOME_AGENT = 0x20  # RFC 3775 7.1


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterAdvertisement(_Icmpv6):
    """RFC 4861 4.2 with the RFC 3775 7.1 Home Agent (H) flag. ``router_lifetime`` is in
    seconds, ``reachable_time`` and ``retrans_timer`` in milliseconds (0: unspecified)."""

    icmp_type: ClassVar[int] = ROUTER_ADVERTISEMENT
    name: ClassVar[str] = "router advertisement"
    fixed_size: ClassVar[int] = 12
    cur_hop_limit: int = 0
    managed: bool = False
    other: bool = False
    home_agent: bool = False
    router_lifetime: int = 0
    reachable_time: int = 0
    retrans_timer: int = 0
    options: tuple[NdOption, ...] = ()
    code: int = 0

    def __post_init__(self) -> None:
        check_uint("cur_hop_limit", self.cur_hop_limit, 8)
        check_uint("router_lifetime", self.router_lifetime, 16)
        check_uint("reachable_time", self.reachable_time, 32)
        check_uint("retrans_timer", self.retrans_timer, 32)
        check_uint("code", self.code, 8)

    def _body(self) -> bytes:
        flags = (
            (_MANAGED if self.managed else 0)
            | (_OTHER if self.other else 0)
            | (_HOME_AGENT if self.home_agent else 0)
        )
        fixed = _RA.pack(
            self.cur_hop_limit, flags, self.router_lifetime, self.reachable_time, self.retrans_timer
        )
        return fixed + emit_nd_options(self.options)

    @classmethod
    def _parse_body(cls, buf: bytes, code: int) -> RouterAdvertisement:
        hop_limit, flags, lifetime, reachable, retrans = _RA.unpack_from(buf, CUR_HOP_LIMIT)
        return cls(
            cur_hop_limit=hop_limit,
            managed=bool(flags & _MANAGED),
            other=bool(flags & _OTHER),
            home_agent=bool(flags & _HOME_AGENT),
            router_lifetime=lifetime,
            reachable_time=reachable,
            retrans_timer=retrans,
            options=parse_nd_options(buf, RA_OPTIONS),
            code=code,
        )


# RFC 4861 4.3 Neighbor Solicitation (4.4 Advertisement: R|S|O flags in the first bits):
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |     Type      |     Code      |          Checksum             |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |R|S|O|                     Reserved                            |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |                                                               |
#  +                       Target Address                          +
#  |                                                               |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |   Options ...
NEIGHBOR_FLAGS = 4
TARGET_ADDRESS = 8
NEIGHBOR_OPTIONS = 24
_ROUTER = 0x80000000
_SOLICITED = 0x40000000
_OVERRIDE = 0x20000000


@dataclass(frozen=True, slots=True, kw_only=True)
class NeighborSolicitation(_Icmpv6):
    """RFC 4861 4.3 (Code 0). ``target_address`` must not be multicast (an engine check)."""

    icmp_type: ClassVar[int] = NEIGHBOR_SOLICITATION
    name: ClassVar[str] = "neighbor solicitation"
    fixed_size: ClassVar[int] = 20
    target_address: IPv6Address
    options: tuple[NdOption, ...] = ()
    code: int = 0

    def __post_init__(self) -> None:
        check_uint("code", self.code, 8)

    def _body(self) -> bytes:
        return bytes(4) + self.target_address.packed + emit_nd_options(self.options)

    @classmethod
    def _parse_body(cls, buf: bytes, code: int) -> NeighborSolicitation:
        return cls(
            target_address=address(buf, TARGET_ADDRESS),
            options=parse_nd_options(buf, NEIGHBOR_OPTIONS),
            code=code,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NeighborAdvertisement(_Icmpv6):
    """RFC 4861 4.4 (Code 0): Router, Solicited and Override flags."""

    icmp_type: ClassVar[int] = NEIGHBOR_ADVERTISEMENT
    name: ClassVar[str] = "neighbor advertisement"
    fixed_size: ClassVar[int] = 20
    target_address: IPv6Address
    router: bool = False
    solicited: bool = False
    override: bool = False
    options: tuple[NdOption, ...] = ()
    code: int = 0

    def __post_init__(self) -> None:
        check_uint("code", self.code, 8)

    def _body(self) -> bytes:
        flags = (
            (_ROUTER if self.router else 0)
            | (_SOLICITED if self.solicited else 0)
            | (_OVERRIDE if self.override else 0)
        )
        return _WORD.pack(flags) + self.target_address.packed + emit_nd_options(self.options)

    @classmethod
    def _parse_body(cls, buf: bytes, code: int) -> NeighborAdvertisement:
        (flags,) = _WORD.unpack_from(buf, NEIGHBOR_FLAGS)
        return cls(
            target_address=address(buf, TARGET_ADDRESS),
            router=bool(flags & _ROUTER),
            solicited=bool(flags & _SOLICITED),
            override=bool(flags & _OVERRIDE),
            options=parse_nd_options(buf, NEIGHBOR_OPTIONS),
            code=code,
        )


# RFC 3775 6.5 (request), 6.6 (reply), 6.7 (Mobile Prefix Solicitation):
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |     Type      |     Code      |            Checksum           |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |          Identifier           |            Reserved           |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |   Home Agent Addresses (reply) / Options (solicitation) ...
IDENTIFIER = 4
MIP6_RESERVED = 6
HOME_AGENT_ADDRESSES = 8
MPS_OPTIONS = 8
_IDENTIFIER = struct.Struct("!H2x")


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeAgentAddressDiscoveryRequest(_Icmpv6):
    """RFC 3775 6.5 (type 144, Code 0), sent to the Mobile IPv6 Home-Agents anycast address.
    The format ends after Reserved: bytes beyond it are ``Malformed`` rather than dropped, so
    that what parses re-emits exactly."""

    icmp_type: ClassVar[int] = HOME_AGENT_ADDRESS_DISCOVERY_REQUEST
    name: ClassVar[str] = "HAAD request"
    fixed_size: ClassVar[int] = 4
    identifier: int = 0
    code: int = 0

    def __post_init__(self) -> None:
        check_uint("identifier", self.identifier, 16)
        check_uint("code", self.code, 8)

    def _body(self) -> bytes:
        return _IDENTIFIER.pack(self.identifier)

    @classmethod
    def _parse_body(cls, buf: bytes, code: int) -> HomeAgentAddressDiscoveryRequest:
        if len(buf) > HOME_AGENT_ADDRESSES:
            raise Malformed(
                f"{len(buf) - HOME_AGENT_ADDRESSES} bytes after the end of a HAAD request",
                HOME_AGENT_ADDRESSES,
            )
        (identifier,) = _IDENTIFIER.unpack_from(buf, IDENTIFIER)
        return cls(identifier=identifier, code=code)


@dataclass(frozen=True, slots=True, kw_only=True)
class MobilePrefixSolicitation(_Icmpv6):
    """RFC 3775 6.7 (type 146, Code 0). It may carry options in the Neighbor Discovery format;
    RFC 3775 defines none and home agents ignore those they do not recognize."""

    icmp_type: ClassVar[int] = MOBILE_PREFIX_SOLICITATION
    name: ClassVar[str] = "mobile prefix solicitation"
    fixed_size: ClassVar[int] = 4
    identifier: int = 0
    options: tuple[NdOption, ...] = ()
    code: int = 0

    def __post_init__(self) -> None:
        check_uint("identifier", self.identifier, 16)
        check_uint("code", self.code, 8)

    def _body(self) -> bytes:
        return _IDENTIFIER.pack(self.identifier) + emit_nd_options(self.options)

    @classmethod
    def _parse_body(cls, buf: bytes, code: int) -> MobilePrefixSolicitation:
        (identifier,) = _IDENTIFIER.unpack_from(buf, IDENTIFIER)
        return cls(identifier=identifier, options=parse_nd_options(buf, MPS_OPTIONS), code=code)


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeAgentAddressDiscoveryReply(_Icmpv6):
    """RFC 3775 6.6 (type 145, Code 0): home agents "in order of preference", as many as fit
    without fragmentation; the addresses fill the rest of the message."""

    icmp_type: ClassVar[int] = HOME_AGENT_ADDRESS_DISCOVERY_REPLY
    name: ClassVar[str] = "HAAD reply"
    fixed_size: ClassVar[int] = 4
    identifier: int = 0
    home_agent_addresses: tuple[IPv6Address, ...] = ()
    code: int = 0

    def __post_init__(self) -> None:
        check_uint("identifier", self.identifier, 16)
        check_uint("code", self.code, 8)

    def _body(self) -> bytes:
        return _IDENTIFIER.pack(self.identifier) + b"".join(
            a.packed for a in self.home_agent_addresses
        )

    @classmethod
    def _parse_body(cls, buf: bytes, code: int) -> HomeAgentAddressDiscoveryReply:
        (identifier,) = _IDENTIFIER.unpack_from(buf, IDENTIFIER)
        count, rest = divmod(len(buf) - HOME_AGENT_ADDRESSES, 16)
        if rest:
            raise Malformed(
                f"{rest} bytes after the last whole home agent address",
                HOME_AGENT_ADDRESSES + 16 * count,
                "home_agent_addresses",
            )
        addresses = tuple(address(buf, HOME_AGENT_ADDRESSES + 16 * i) for i in range(count))
        return cls(identifier=identifier, home_agent_addresses=addresses, code=code)


# RFC 3775 6.8 Mobile Prefix Advertisement:
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |     Type      |     Code      |            Checksum           |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |           Identifier          |M|O|        Reserved           |
#  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#  |   Options ...
MPA_FLAGS = 6
MPA_OPTIONS = 8
_MPA = struct.Struct("!HH")
_MPA_MANAGED = 0x8000
_MPA_OTHER = 0x4000


@dataclass(frozen=True, slots=True, kw_only=True)
class MobilePrefixAdvertisement(_Icmpv6):
    """RFC 3775 6.8 (type 147, Code 0). The options are Prefix Information options (RFC 3775
    7.2: with the R flag, "a complete IP address"); other ND options are kept as sent."""

    icmp_type: ClassVar[int] = MOBILE_PREFIX_ADVERTISEMENT
    name: ClassVar[str] = "mobile prefix advertisement"
    fixed_size: ClassVar[int] = 4
    identifier: int = 0
    managed_address_configuration: bool = False
    other_stateful_configuration: bool = False
    options: tuple[NdOption, ...] = ()
    code: int = 0

    def __post_init__(self) -> None:
        check_uint("identifier", self.identifier, 16)
        check_uint("code", self.code, 8)

    def _body(self) -> bytes:
        flags = (_MPA_MANAGED if self.managed_address_configuration else 0) | (
            _MPA_OTHER if self.other_stateful_configuration else 0
        )
        return _MPA.pack(self.identifier, flags) + emit_nd_options(self.options)

    @classmethod
    def _parse_body(cls, buf: bytes, code: int) -> MobilePrefixAdvertisement:
        identifier, flags = _MPA.unpack_from(buf, IDENTIFIER)
        return cls(
            identifier=identifier,
            managed_address_configuration=bool(flags & _MPA_MANAGED),
            other_stateful_configuration=bool(flags & _MPA_OTHER),
            options=parse_nd_options(buf, MPA_OPTIONS),
            code=code,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownIcmpv6(_Icmpv6):
    """A message of a Type this codec does not interpret, body kept verbatim. RFC 4443 2.4:
    an unknown error message (Type < 128) goes to the upper layer, an unknown informational
    message is silently discarded; :attr:`is_error` tells which."""

    name: ClassVar[str] = "unknown"
    fixed_size: ClassVar[int] = 0
    type: int
    code: int = 0
    body: bytes = b""

    def __post_init__(self) -> None:
        check_uint("type", self.type, 8)
        check_uint("code", self.code, 8)
        if self.type in _MESSAGES:
            raise EmitError(f"ICMPv6 type {self.type} has its own Repr")

    @property
    def icmp_type(self) -> int:  # type: ignore[override]
        return self.type

    def _body(self) -> bytes:
        return self.body


Icmpv6Message = (
    DestinationUnreachable
    | PacketTooBig
    | TimeExceeded
    | ParameterProblem
    | EchoRequest
    | EchoReply
    | RouterSolicitation
    | RouterAdvertisement
    | NeighborSolicitation
    | NeighborAdvertisement
    | HomeAgentAddressDiscoveryRequest
    | HomeAgentAddressDiscoveryReply
    | MobilePrefixSolicitation
    | MobilePrefixAdvertisement
    | UnknownIcmpv6
)

_MESSAGES: dict[int, type[_Icmpv6]] = {
    kind.icmp_type: kind
    for kind in (
        DestinationUnreachable,
        PacketTooBig,
        TimeExceeded,
        ParameterProblem,
        EchoRequest,
        EchoReply,
        RouterSolicitation,
        RouterAdvertisement,
        NeighborSolicitation,
        NeighborAdvertisement,
        HomeAgentAddressDiscoveryRequest,
        HomeAgentAddressDiscoveryReply,
        MobilePrefixSolicitation,
        MobilePrefixAdvertisement,
    )
}


def parse_icmpv6(buf: bytes, *, source: bytes, destination: bytes) -> Icmpv6Message:
    """Parse one ICMPv6 message (``buf`` runs from its Type byte to the end of the IPv6 payload).

    Order of checks: the fixed part of the Type's format must be present (``Truncated``), then
    the checksum over the pseudo-header of ``source`` and ``destination`` must verify
    (``BadChecksum``), then options and variable parts are read (``Malformed``/``Truncated``).
    """
    if len(source) != 16 or len(destination) != 16:
        raise ValueError("source and destination must be 16-byte IPv6 addresses")
    need(buf, TYPE, BODY, "ICMPv6 header")
    icmp_type, code, _checksum = _HEADER.unpack_from(buf, TYPE)
    kind = _MESSAGES.get(icmp_type)
    if kind is not None:
        need(buf, BODY, kind.fixed_size, f"ICMPv6 {kind.name}")
    # RFC 4443 2.3/2.4: a message whose checksum does not verify is discarded.
    if not verify_upper_layer(bytes(source), bytes(destination), protocols.ICMPV6, bytes(buf)):
        raise BadChecksum("ICMPv6 checksum does not verify", CHECKSUM, "checksum")
    if kind is None:
        return UnknownIcmpv6(type=icmp_type, code=code, body=bytes(buf[BODY:]))
    return kind._parse_body(buf, code)


# ---------------------------------------------------------------------------------------------
# Presentation

_FLAG_NAMES = (("managed", "M"), ("other", "O"), ("home_agent", "H"))


def _flags(message: object, names: tuple[tuple[str, str], ...]) -> str:
    return "".join(letter for attribute, letter in names if getattr(message, attribute))


def describe_option(option: NdOption) -> str:
    """A short summary of one ND option."""
    match option:
        case SourceLinkLayerAddress() | TargetLinkLayerAddress():
            kind = "source" if isinstance(option, SourceLinkLayerAddress) else "target"
            return f"{kind} link-address {option.link_layer_address.hex(':')}"
        case PrefixInformation():
            flags = _flags(option, (("on_link", "L"), ("autonomous", "A"), ("router_address", "R")))
            text = f"prefix {option.prefix}/{option.prefix_length}"
            text += f" valid {option.valid_lifetime} preferred {option.preferred_lifetime}"
            return text + (f" flags {flags}" if flags else "")
        case Mtu():
            return f"mtu {option.mtu}"
        case AdvertisementInterval():
            return f"adv interval {option.advertisement_interval_ms}ms"
        case HomeAgentInformation():
            return (
                f"home agent pref {option.home_agent_preference}"
                f" lifetime {option.home_agent_lifetime}"
            )
        case UnknownNdOption():
            return f"option {option.option_type} len {len(option.data) + OPTION_DATA}"
    raise TypeError(f"not an ND option: {option!r}")


def _with_options(text: str, options: tuple[NdOption, ...]) -> str:
    if not options:
        return text
    return text + "; " + ", ".join(describe_option(o) for o in options)


def _with_code(text: str, code: int) -> str:
    return text + (f" code {code}" if code else "")


def describe(message: Icmpv6Message) -> str:
    """A tcpdump-like one-line summary: ``ICMP6 echo request id 1 seq 2 len 56`` (``len`` is the
    length of the echo data, as ``ping`` counts it)."""
    match message:
        case EchoRequest() | EchoReply():
            text = _with_code(
                f"{message.name} id {message.identifier} seq {message.sequence}", message.code
            )
            text += f" len {len(message.data)}"
        case DestinationUnreachable() | TimeExceeded():
            text = f"{message.name} code {message.code} len {len(message.invoking_packet)}"
        case PacketTooBig():
            text = f"{message.name} mtu {message.mtu} len {len(message.invoking_packet)}"
        case ParameterProblem():
            text = f"{message.name} code {message.code} pointer {message.pointer}"
        case HomeAgentAddressDiscoveryRequest():
            text = _with_code(f"{message.name} id {message.identifier}", message.code)
        case MobilePrefixSolicitation():
            text = _with_code(f"{message.name} id {message.identifier}", message.code)
            text = _with_options(text, message.options)
        case HomeAgentAddressDiscoveryReply():
            text = _with_code(f"{message.name} id {message.identifier}", message.code)
            if message.home_agent_addresses:
                text += " " + ", ".join(str(a) for a in message.home_agent_addresses)
        case MobilePrefixAdvertisement():
            text = _with_code(f"{message.name} id {message.identifier}", message.code)
            flags = _flags(
                message,
                (("managed_address_configuration", "M"), ("other_stateful_configuration", "O")),
            )
            text = _with_options(text + (f" flags {flags}" if flags else ""), message.options)
        case RouterSolicitation():
            text = _with_options(_with_code(message.name, message.code), message.options)
        case RouterAdvertisement():
            flags = _flags(message, _FLAG_NAMES)
            text = _with_code(
                f"{message.name} hlim {message.cur_hop_limit} lifetime {message.router_lifetime}",
                message.code,
            )
            text = _with_options(text + (f" flags {flags}" if flags else ""), message.options)
        case NeighborSolicitation():
            text = _with_code(f"{message.name} who has {message.target_address}", message.code)
            text = _with_options(text, message.options)
        case NeighborAdvertisement():
            flags = _flags(message, (("router", "R"), ("solicited", "S"), ("override", "O")))
            text = _with_code(f"{message.name} tgt is {message.target_address}", message.code)
            text = _with_options(text + (f" flags {flags}" if flags else ""), message.options)
        case UnknownIcmpv6():
            text = f"type {message.type} code {message.code} len {len(message.body) + BODY}"
        case _:
            raise TypeError(f"not an ICMPv6 message: {message!r}")
    return f"ICMP6 {text}"
