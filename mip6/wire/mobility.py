"""The Mobility Header (RFC 3775 6.1), its eight messages and six mobility options (6.2).

    0                   1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   | Payload Proto |  Header Len   |   MH Type     |   Reserved    |
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |           Checksum            |                               |
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               |
   .                       Message Data                            .

One frozen dataclass per MH Type. Each holds its message fields and ``options``: the mobility
options exactly as on the wire, Pad1 and PadN included (see :mod:`mip6.wire.tlv`); ``.aligned()``
returns the message with the padding the alignment rules and the 8-octet length rule need.
Payload Proto, Header Len and Checksum are derived on emit and checked on parse; reserved fields
are ignored on parse (RFC 3775 6.1.1: "MUST be ignored by the receiver") and zero on emit, except
the BU and BA flag bits that later RFCs assigned, which are kept as ``reserved_flags`` so nothing
a peer sends is lost.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv6Address
from typing import ClassVar, Self

from mip6.wire import protocols
from mip6.wire.checksum import upper_layer_checksum, verify_upper_layer
from mip6.wire.errors import BadChecksum, EmitError, Malformed, Truncated
from mip6.wire.fields import address, check_overrides, check_uint, need
from mip6.wire.tlv import Pad1, PadN, TlvOption, aligned, emit_options, parse_options

PAYLOAD_PROTO = 0
HEADER_LEN = 1
MH_TYPE = 2
RESERVED = 3
CHECKSUM = 4
MESSAGE_DATA = 6
_COMMON = struct.Struct("!BBBBH")
_OVERRIDABLE = ("payload_proto", "header_len", "mh_type", "reserved", "checksum")


class MhType(enum.IntEnum):
    """RFC 3775 6.1.2-6.1.9 (Mobility Header Type registry)."""

    BINDING_REFRESH_REQUEST = 0
    HOME_TEST_INIT = 1
    CARE_OF_TEST_INIT = 2
    HOME_TEST = 3
    CARE_OF_TEST = 4
    BINDING_UPDATE = 5
    BINDING_ACKNOWLEDGEMENT = 6
    BINDING_ERROR = 7


class BindingAckStatus(enum.IntEnum):
    """RFC 3775 6.1.8 Status values; values below 128 mean the BU was accepted."""

    ACCEPTED = 0
    ACCEPTED_PREFIX_DISCOVERY_NECESSARY = 1
    REASON_UNSPECIFIED = 128
    ADMINISTRATIVELY_PROHIBITED = 129
    INSUFFICIENT_RESOURCES = 130
    HOME_REGISTRATION_NOT_SUPPORTED = 131
    NOT_HOME_SUBNET = 132
    NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE = 133
    DUPLICATE_ADDRESS_DETECTION_FAILED = 134
    SEQUENCE_NUMBER_OUT_OF_WINDOW = 135
    EXPIRED_HOME_NONCE_INDEX = 136
    EXPIRED_CARE_OF_NONCE_INDEX = 137
    EXPIRED_NONCES = 138
    REGISTRATION_TYPE_CHANGE_DISALLOWED = 139


class BindingErrorStatus(enum.IntEnum):
    """RFC 3775 6.1.9."""

    UNKNOWN_BINDING_FOR_HOME_ADDRESS_OPTION = 1
    UNRECOGNIZED_MH_TYPE = 2


# --- Mobility options (RFC 3775 6.2) --------------------------------------------------------


class MobilityOptionType(enum.IntEnum):
    PAD1 = 0
    PADN = 1
    BINDING_REFRESH_ADVICE = 2
    ALTERNATE_CARE_OF_ADDRESS = 3
    NONCE_INDICES = 4
    BINDING_AUTHORIZATION_DATA = 5


AUTHENTICATOR_LENGTH = 12  # RFC 3775 5.2.6: First(96, HMAC_SHA1(...))


@dataclass(frozen=True, slots=True, kw_only=True)
class BindingRefreshAdvice:
    """RFC 3775 6.2.4: alignment 2n, Option Length 2, Refresh Interval in units of 4 seconds."""

    option_type: ClassVar[int] = MobilityOptionType.BINDING_REFRESH_ADVICE
    alignment: ClassVar[tuple[int, int]] = (2, 0)
    refresh_interval_units_4s: int

    def __post_init__(self) -> None:
        check_uint("refresh_interval_units_4s", self.refresh_interval_units_4s, 16)

    @property
    def refresh_interval_s(self) -> int:
        return self.refresh_interval_units_4s * 4

    def emit_data(self) -> bytes:
        return self.refresh_interval_units_4s.to_bytes(2, "big")


@dataclass(frozen=True, slots=True, kw_only=True)
class AlternateCareOfAddress:
    """RFC 3775 6.2.5: alignment 8n+6, Option Length 16."""

    option_type: ClassVar[int] = MobilityOptionType.ALTERNATE_CARE_OF_ADDRESS
    alignment: ClassVar[tuple[int, int]] = (8, 6)
    alternate_care_of_address: IPv6Address

    def emit_data(self) -> bytes:
        return self.alternate_care_of_address.packed


@dataclass(frozen=True, slots=True, kw_only=True)
class NonceIndices:
    """RFC 3775 6.2.6: alignment 2n, Option Length 4."""

    option_type: ClassVar[int] = MobilityOptionType.NONCE_INDICES
    alignment: ClassVar[tuple[int, int]] = (2, 0)
    home_nonce_index: int
    care_of_nonce_index: int

    def __post_init__(self) -> None:
        check_uint("home_nonce_index", self.home_nonce_index, 16)
        check_uint("care_of_nonce_index", self.care_of_nonce_index, 16)

    def emit_data(self) -> bytes:
        return self.home_nonce_index.to_bytes(2, "big") + self.care_of_nonce_index.to_bytes(
            2, "big"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BindingAuthorizationData:
    """RFC 3775 6.2.7: alignment 8n+2, the 96-bit Authenticator; always the last option."""

    option_type: ClassVar[int] = MobilityOptionType.BINDING_AUTHORIZATION_DATA
    alignment: ClassVar[tuple[int, int]] = (8, 2)
    authenticator: bytes = bytes(AUTHENTICATOR_LENGTH)

    def __post_init__(self) -> None:
        if len(self.authenticator) != AUTHENTICATOR_LENGTH:
            raise EmitError(f"authenticator must be {AUTHENTICATOR_LENGTH} bytes")

    def emit_data(self) -> bytes:
        return self.authenticator


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownMobilityOption:
    """RFC 3775 6.2.1: unrecognized options are skipped by receivers; kept here verbatim."""

    option_type: int
    data: bytes = b""
    alignment: ClassVar[tuple[int, int]] = (1, 0)

    def __post_init__(self) -> None:
        check_uint("option_type", self.option_type, 8)
        if self.option_type in MobilityOptionType.__members__.values():
            raise EmitError(f"mobility option type {self.option_type} has its own Repr")

    def emit_data(self) -> bytes:
        return self.data


MobilityOption = (
    Pad1
    | PadN
    | BindingRefreshAdvice
    | AlternateCareOfAddress
    | NonceIndices
    | BindingAuthorizationData
    | UnknownMobilityOption
)

_FIXED_OPTION_LENGTH = {
    MobilityOptionType.BINDING_REFRESH_ADVICE: 2,
    MobilityOptionType.ALTERNATE_CARE_OF_ADDRESS: 16,
    MobilityOptionType.NONCE_INDICES: 4,
    MobilityOptionType.BINDING_AUTHORIZATION_DATA: AUTHENTICATOR_LENGTH,
}


def _decode_mobility_option(option_type: int, data: bytes, offset: int) -> TlvOption:
    expected = _FIXED_OPTION_LENGTH.get(option_type)  # type: ignore[call-overload]
    if expected is None:
        return UnknownMobilityOption(option_type=option_type, data=data)
    if len(data) != expected:
        raise Malformed(
            f"mobility option {MobilityOptionType(option_type).name} length {len(data)}, "
            f"must be {expected}",
            offset + 1,
            "option_length",
        )
    if option_type == MobilityOptionType.BINDING_REFRESH_ADVICE:
        return BindingRefreshAdvice(refresh_interval_units_4s=int.from_bytes(data, "big"))
    if option_type == MobilityOptionType.ALTERNATE_CARE_OF_ADDRESS:
        return AlternateCareOfAddress(alternate_care_of_address=IPv6Address(data))
    if option_type == MobilityOptionType.NONCE_INDICES:
        return NonceIndices(
            home_nonce_index=int.from_bytes(data[:2], "big"),
            care_of_nonce_index=int.from_bytes(data[2:], "big"),
        )
    return BindingAuthorizationData(authenticator=data)


# --- Messages (RFC 3775 6.1.2 - 6.1.9) ------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Message:
    """Behaviour shared by every MH message; concrete classes add fields and fixed-data codecs."""

    options: tuple[MobilityOption, ...] = ()

    protocol: ClassVar[int] = protocols.MOBILITY
    mh_type: ClassVar[int]
    options_start: ClassVar[int]  # offset of the first option from the start of the MH

    def _fixed_data(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def _from_fixed(cls, buf: bytes, options: tuple[MobilityOption, ...]) -> Self:
        raise NotImplementedError

    def aligned(self) -> Self:
        """This message with canonical padding for RFC 3775 6.2 alignment and 6.1.1's rule that
        the Mobility Header is a multiple of 8 octets."""
        return replace(self, options=aligned(self.options, start=self.options_start))

    def find(self, kind: type) -> MobilityOption | None:
        """The first option of class ``kind``, or None."""
        return next((o for o in self.options if isinstance(o, kind)), None)

    def emit_unchecksummed(self, overrides: Mapping[str, int] | None = None) -> bytes:
        """The Mobility Header with a zero Checksum field: the input of the checksum, and of the
        Binding Authorization Data authenticator (RFC 3775 5.2.6)."""
        options = self.options
        for i, option in enumerate(options):
            if isinstance(option, BindingAuthorizationData) and i != len(options) - 1:
                raise EmitError(
                    "RFC 3775 6.2.7: Binding Authorization Data must be the last option"
                )
        body = self._fixed_data() + emit_options(options, start=self.options_start)
        length = MESSAGE_DATA + len(body)
        if length % 8:
            raise EmitError(
                f"Mobility Header length {length} is not a multiple of 8 (use .aligned())"
            )
        header_len = length // 8 - 1
        if header_len > 255:
            raise EmitError(f"Mobility Header length {length} exceeds Header Len's range")
        o = check_overrides(overrides, _OVERRIDABLE)
        common = _COMMON.pack(
            o.get("payload_proto", protocols.NO_NEXT_HEADER),
            o.get("header_len", header_len),
            o.get("mh_type", self.mh_type),
            o.get("reserved", 0),
            0,
        )
        return common + body

    def emit(
        self,
        *,
        source: bytes,
        destination: bytes,
        overrides: Mapping[str, int] | None = None,
    ) -> bytes:
        """Wire bytes; ``source``/``destination`` are the pseudo-header addresses (RFC 3775 6.1.1:
        home address of the mobile node as source where a Home Address option is present, final
        destination as destination). ``overrides`` forces raw fields (payload_proto, header_len,
        mh_type, reserved, checksum) for tests; the checksum covers the other overrides."""
        data = bytearray(self.emit_unchecksummed(overrides))
        checksum = upper_layer_checksum(source, destination, protocols.MOBILITY, bytes(data))
        if overrides and "checksum" in overrides:
            checksum = overrides["checksum"]
        data[CHECKSUM : CHECKSUM + 2] = checksum.to_bytes(2, "big")
        return bytes(data)

    @classmethod
    def parse(cls, buf: bytes, *, source: bytes, destination: bytes) -> Self:
        message = parse_mobility_header(buf, source=source, destination=destination)
        if not isinstance(message, cls):
            raise Malformed(f"MH Type {buf[MH_TYPE]} is not {cls.__name__}", MH_TYPE, "mh_type")
        return message


def _cookie(name: str, value: bytes) -> None:
    if len(value) != 8:
        raise EmitError(f"{name} must be 8 bytes (64 bits)")


@dataclass(frozen=True, slots=True, kw_only=True)
class BindingRefreshRequest(_Message):
    """RFC 3775 6.1.2: Reserved(16)."""

    mh_type: ClassVar[int] = MhType.BINDING_REFRESH_REQUEST
    options_start: ClassVar[int] = 8

    def _fixed_data(self) -> bytes:
        return bytes(2)

    @classmethod
    def _from_fixed(cls, buf: bytes, options: tuple[MobilityOption, ...]) -> Self:
        return cls(options=options)


_INIT = struct.Struct("!2x8s")


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeTestInit(_Message):
    """RFC 3775 6.1.3: Reserved(16), Home Init Cookie(64)."""

    mh_type: ClassVar[int] = MhType.HOME_TEST_INIT
    options_start: ClassVar[int] = 16
    home_init_cookie: bytes

    def __post_init__(self) -> None:
        _cookie("home_init_cookie", self.home_init_cookie)

    def _fixed_data(self) -> bytes:
        return _INIT.pack(self.home_init_cookie)

    @classmethod
    def _from_fixed(cls, buf: bytes, options: tuple[MobilityOption, ...]) -> Self:
        (cookie,) = _INIT.unpack_from(buf, MESSAGE_DATA)
        return cls(home_init_cookie=cookie, options=options)


@dataclass(frozen=True, slots=True, kw_only=True)
class CareOfTestInit(_Message):
    """RFC 3775 6.1.4: Reserved(16), Care-of Init Cookie(64)."""

    mh_type: ClassVar[int] = MhType.CARE_OF_TEST_INIT
    options_start: ClassVar[int] = 16
    care_of_init_cookie: bytes

    def __post_init__(self) -> None:
        _cookie("care_of_init_cookie", self.care_of_init_cookie)

    def _fixed_data(self) -> bytes:
        return _INIT.pack(self.care_of_init_cookie)

    @classmethod
    def _from_fixed(cls, buf: bytes, options: tuple[MobilityOption, ...]) -> Self:
        (cookie,) = _INIT.unpack_from(buf, MESSAGE_DATA)
        return cls(care_of_init_cookie=cookie, options=options)


_TEST = struct.Struct("!H8s8s")


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeTest(_Message):
    """RFC 3775 6.1.5: Home Nonce Index(16), Home Init Cookie(64), Home Keygen Token(64)."""

    mh_type: ClassVar[int] = MhType.HOME_TEST
    options_start: ClassVar[int] = 24
    home_nonce_index: int
    home_init_cookie: bytes
    home_keygen_token: bytes

    def __post_init__(self) -> None:
        check_uint("home_nonce_index", self.home_nonce_index, 16)
        _cookie("home_init_cookie", self.home_init_cookie)
        _cookie("home_keygen_token", self.home_keygen_token)

    def _fixed_data(self) -> bytes:
        return _TEST.pack(self.home_nonce_index, self.home_init_cookie, self.home_keygen_token)

    @classmethod
    def _from_fixed(cls, buf: bytes, options: tuple[MobilityOption, ...]) -> Self:
        index, cookie, token = _TEST.unpack_from(buf, MESSAGE_DATA)
        return cls(
            home_nonce_index=index,
            home_init_cookie=cookie,
            home_keygen_token=token,
            options=options,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CareOfTest(_Message):
    """RFC 3775 6.1.6: Care-of Nonce Index(16), Care-of Init Cookie(64), Care-of Keygen Token."""

    mh_type: ClassVar[int] = MhType.CARE_OF_TEST
    options_start: ClassVar[int] = 24
    care_of_nonce_index: int
    care_of_init_cookie: bytes
    care_of_keygen_token: bytes

    def __post_init__(self) -> None:
        check_uint("care_of_nonce_index", self.care_of_nonce_index, 16)
        _cookie("care_of_init_cookie", self.care_of_init_cookie)
        _cookie("care_of_keygen_token", self.care_of_keygen_token)

    def _fixed_data(self) -> bytes:
        return _TEST.pack(
            self.care_of_nonce_index, self.care_of_init_cookie, self.care_of_keygen_token
        )

    @classmethod
    def _from_fixed(cls, buf: bytes, options: tuple[MobilityOption, ...]) -> Self:
        index, cookie, token = _TEST.unpack_from(buf, MESSAGE_DATA)
        return cls(
            care_of_nonce_index=index,
            care_of_init_cookie=cookie,
            care_of_keygen_token=token,
            options=options,
        )


#  |          Sequence #           |A|H|L|K|        Reserved       |
#  |           Lifetime            |
_BU = struct.Struct("!HHH")
_BU_A, _BU_H, _BU_L, _BU_K = 0x8000, 0x4000, 0x2000, 0x1000


@dataclass(frozen=True, slots=True, kw_only=True)
class BindingUpdate(_Message):
    """RFC 3775 6.1.7. ``lifetime_units_4s`` is the wire value (one unit = 4 seconds);
    ``reserved_flags`` holds the 12 low bits of the flags word (flags of later RFCs)."""

    mh_type: ClassVar[int] = MhType.BINDING_UPDATE
    options_start: ClassVar[int] = 12
    sequence: int
    acknowledge: bool = False
    home_registration: bool = False
    link_local_address_compatibility: bool = False
    key_management_mobility_capability: bool = False
    reserved_flags: int = 0
    lifetime_units_4s: int = 0

    def __post_init__(self) -> None:
        check_uint("sequence", self.sequence, 16)
        check_uint("reserved_flags", self.reserved_flags, 12)
        check_uint("lifetime_units_4s", self.lifetime_units_4s, 16)

    @property
    def lifetime_s(self) -> int:
        return self.lifetime_units_4s * 4

    def _fixed_data(self) -> bytes:
        flags = (
            (_BU_A if self.acknowledge else 0)
            | (_BU_H if self.home_registration else 0)
            | (_BU_L if self.link_local_address_compatibility else 0)
            | (_BU_K if self.key_management_mobility_capability else 0)
            | self.reserved_flags
        )
        return _BU.pack(self.sequence, flags, self.lifetime_units_4s)

    @classmethod
    def _from_fixed(cls, buf: bytes, options: tuple[MobilityOption, ...]) -> Self:
        sequence, flags, lifetime = _BU.unpack_from(buf, MESSAGE_DATA)
        return cls(
            sequence=sequence,
            acknowledge=bool(flags & _BU_A),
            home_registration=bool(flags & _BU_H),
            link_local_address_compatibility=bool(flags & _BU_L),
            key_management_mobility_capability=bool(flags & _BU_K),
            reserved_flags=flags & 0x0FFF,
            lifetime_units_4s=lifetime,
            options=options,
        )


#  |    Status     |K|  Reserved   |
#  |           Sequence #          |           Lifetime            |
_BA = struct.Struct("!BBHH")


@dataclass(frozen=True, slots=True, kw_only=True)
class BindingAcknowledgement(_Message):
    """RFC 3775 6.1.8. ``status`` is kept as an int so unassigned values survive; compare it with
    :class:`BindingAckStatus`. ``reserved_flags`` holds the 7 bits after K."""

    mh_type: ClassVar[int] = MhType.BINDING_ACKNOWLEDGEMENT
    options_start: ClassVar[int] = 12
    status: int
    sequence: int
    key_management_mobility_capability: bool = False
    reserved_flags: int = 0
    lifetime_units_4s: int = 0

    def __post_init__(self) -> None:
        check_uint("status", self.status, 8)
        check_uint("reserved_flags", self.reserved_flags, 7)
        check_uint("sequence", self.sequence, 16)
        check_uint("lifetime_units_4s", self.lifetime_units_4s, 16)

    @property
    def lifetime_s(self) -> int:
        return self.lifetime_units_4s * 4

    @property
    def accepted(self) -> bool:
        """RFC 3775 6.1.8: "Values of the Status field less than 128 indicate that the Binding
        Update was accepted"."""
        return self.status < 128

    def _fixed_data(self) -> bytes:
        flags = (0x80 if self.key_management_mobility_capability else 0) | self.reserved_flags
        return _BA.pack(self.status, flags, self.sequence, self.lifetime_units_4s)

    @classmethod
    def _from_fixed(cls, buf: bytes, options: tuple[MobilityOption, ...]) -> Self:
        status, flags, sequence, lifetime = _BA.unpack_from(buf, MESSAGE_DATA)
        return cls(
            status=status,
            key_management_mobility_capability=bool(flags & 0x80),
            reserved_flags=flags & 0x7F,
            sequence=sequence,
            lifetime_units_4s=lifetime,
            options=options,
        )


_BE = struct.Struct("!Bx16s")


@dataclass(frozen=True, slots=True, kw_only=True)
class BindingError(_Message):
    """RFC 3775 6.1.9: Status(8), Reserved(8), Home Address(128)."""

    mh_type: ClassVar[int] = MhType.BINDING_ERROR
    options_start: ClassVar[int] = 24
    status: int
    home_address: IPv6Address

    def __post_init__(self) -> None:
        check_uint("status", self.status, 8)

    def _fixed_data(self) -> bytes:
        return _BE.pack(self.status, self.home_address.packed)

    @classmethod
    def _from_fixed(cls, buf: bytes, options: tuple[MobilityOption, ...]) -> Self:
        return cls(
            status=buf[MESSAGE_DATA], home_address=address(buf, MESSAGE_DATA + 2), options=options
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownMobilityMessage:
    """An MH Type this codec does not know (RFC 3775 9.2: answered with Binding Error status 2).
    ``message_data`` is everything after the Checksum field, kept verbatim."""

    protocol: ClassVar[int] = protocols.MOBILITY
    mh_type: int
    message_data: bytes = b"\x00\x00"

    def __post_init__(self) -> None:
        check_uint("mh_type", self.mh_type, 8)
        if self.mh_type in MhType.__members__.values():
            raise EmitError(f"MH Type {self.mh_type} has its own Repr")
        if (MESSAGE_DATA + len(self.message_data)) % 8:
            raise EmitError("Mobility Header length must be a multiple of 8")

    def emit(
        self, *, source: bytes, destination: bytes, overrides: Mapping[str, int] | None = None
    ) -> bytes:
        o = check_overrides(overrides, _OVERRIDABLE)
        length = MESSAGE_DATA + len(self.message_data)
        data = bytearray(
            _COMMON.pack(
                o.get("payload_proto", protocols.NO_NEXT_HEADER),
                o.get("header_len", length // 8 - 1),
                o.get("mh_type", self.mh_type),
                o.get("reserved", 0),
                0,
            )
            + self.message_data
        )
        checksum = o.get(
            "checksum", upper_layer_checksum(source, destination, protocols.MOBILITY, bytes(data))
        )
        data[CHECKSUM : CHECKSUM + 2] = checksum.to_bytes(2, "big")
        return bytes(data)


MobilityMessage = (
    BindingRefreshRequest
    | HomeTestInit
    | CareOfTestInit
    | HomeTest
    | CareOfTest
    | BindingUpdate
    | BindingAcknowledgement
    | BindingError
    | UnknownMobilityMessage
)

MESSAGE_CLASSES: dict[int, type[_Message]] = {
    cls.mh_type: cls
    for cls in (
        BindingRefreshRequest,
        HomeTestInit,
        CareOfTestInit,
        HomeTest,
        CareOfTest,
        BindingUpdate,
        BindingAcknowledgement,
        BindingError,
    )
}


def parse_mobility_header(buf: bytes, *, source: bytes, destination: bytes) -> MobilityMessage:
    """Parse a whole Mobility Header; ``buf`` ends where the IPv6 payload ends.

    Checks, in the order RFC 3775 9.2 lists them for receivers: Payload Proto = 59 (RFC 3775
    6.1.1, and Linux's mip6_mh_filter; Malformed on ``payload_proto``), then the Header Len
    against the buffer and against the minimum for the MH Type (too small: Malformed on
    ``header_len``; the node answers either with a Parameter Problem pointing at the field),
    then the checksum; then the options, strictly.
    """
    need(buf, 0, MESSAGE_DATA, "mobility header")
    payload_proto, header_len, mh_type, _reserved, _checksum = _COMMON.unpack_from(buf, 0)
    if payload_proto != protocols.NO_NEXT_HEADER:
        # RFC 3775 9.2: "The Payload Proto field MUST be IPPROTO_NONE ... The Pointer field in
        # the ICMP message SHOULD point at the Payload Proto field." Checked before the length:
        # a real piggybacked payload follows the Mobility Header, so the bytes after it are
        # the symptom of this fault, not a Header Len fault.
        raise Malformed(
            f"Payload Proto {payload_proto}, must be 59 (IPPROTO_NONE)",
            PAYLOAD_PROTO,
            "payload_proto",
        )
    length = 8 * (header_len + 1)
    if length > len(buf):
        raise Truncated(
            f"Header Len says {length} bytes, {len(buf)} present", HEADER_LEN, "header_len"
        )
    if length < len(buf):
        raise Malformed(
            f"Header Len {header_len} leaves {len(buf) - length} bytes after the Mobility "
            "Header (Payload Proto is 59)",
            HEADER_LEN,
            "header_len",
        )
    cls = MESSAGE_CLASSES.get(mh_type)
    if cls is not None and length < cls.options_start:
        raise Malformed(
            f"Header Len {header_len} is too small for MH Type {mh_type}", HEADER_LEN, "header_len"
        )
    if not verify_upper_layer(source, destination, protocols.MOBILITY, buf):
        raise BadChecksum("Mobility Header checksum does not verify", CHECKSUM, "checksum")
    if cls is None:
        return UnknownMobilityMessage(mh_type=mh_type, message_data=bytes(buf[MESSAGE_DATA:length]))
    options = parse_options(buf, cls.options_start, length, _decode_mobility_option, header_start=0)
    for i, option in enumerate(options):
        if isinstance(option, BindingAuthorizationData) and i != len(options) - 1:
            raise Malformed(
                "Binding Authorization Data is not the last option (RFC 3775 6.2.7)",
                cls.options_start,
                "options",
            )
    return cls._from_fixed(buf, options)  # type: ignore[return-value]


def mobility_data_for_authenticator(message: BindingUpdate | BindingAcknowledgement) -> bytes:
    """RFC 3775 5.2.6 "Mobility Data": the Mobility Header with Checksum zero, up to but not
    including the Authenticator (the last 12 bytes, Binding Authorization Data being last)."""
    if not message.options or not isinstance(message.options[-1], BindingAuthorizationData):
        raise EmitError("message has no Binding Authorization Data option as its last option")
    return message.emit_unchecksummed()[:-AUTHENTICATOR_LENGTH]


def emit_authorized(
    message: BindingUpdate | BindingAcknowledgement,
    *,
    source: bytes,
    destination: bytes,
    authenticator: Callable[[bytes], bytes],
) -> bytes:
    """Emit ``message`` with its Binding Authorization Data filled in, in one pass:
    ``authenticator`` receives the Mobility Data (RFC 3775 5.2.6) and returns the 12 bytes; the
    checksum is then computed over the result with the given pseudo-header addresses. The last
    option of ``message`` must be Binding Authorization Data (its bytes are replaced)."""
    if not message.options or not isinstance(message.options[-1], BindingAuthorizationData):
        raise EmitError("message has no Binding Authorization Data option as its last option")
    unsigned = message.emit_unchecksummed()
    mobility_data = unsigned[:-AUTHENTICATOR_LENGTH]
    signed = authenticator(mobility_data)
    if len(signed) != AUTHENTICATOR_LENGTH:
        raise EmitError(f"authenticator must be {AUTHENTICATOR_LENGTH} bytes")
    return with_checksum(mobility_data + signed, source=source, destination=destination)


def with_checksum(message: bytes, *, source: bytes, destination: bytes) -> bytes:
    """A Mobility Header's bytes, emitted with a zero Checksum field, with the checksum put in
    (``source``/``destination``: the pseudo-header's, as for :meth:`_Message.emit`). For the
    messages built without a Repr too."""
    checksum = upper_layer_checksum(source, destination, protocols.MOBILITY, message)
    return message[:CHECKSUM] + checksum.to_bytes(2, "big") + message[CHECKSUM + 2 :]


def received_mobility_data(header: bytes) -> bytes:
    """RFC 3775 5.2.6 Mobility Data of a received BU or BA, cut from its wire bytes (Checksum
    zeroed, Authenticator removed): what the sender authenticated, bit for bit, even where
    reserved fields or padding differ from what we would emit."""
    return header[:CHECKSUM] + b"\0\0" + header[MESSAGE_DATA:-AUTHENTICATOR_LENGTH]
