"""Security Associations (RFC 4301 4.4.2, RFC 4303 3.3.3 and 3.4.3), manually keyed.

A :class:`SecurityAssociation` is one direction of protection between a mobile node and its
home agent: the frozen :class:`SaParameters` (SPI, algorithm, keys, mode, direction, traffic
selectors) and the mutable state ESP needs, nothing else:

* outbound: the Sequence Number counter, 32 bits, never allowed to cycle (RFC 4303 3.3.3; no
  Extended Sequence Numbers here, so an SA is good for 2**32 - 1 packets);
* inbound: the 64-packet anti-replay window of RFC 4303 3.4.3 (the highest Sequence Number
  accepted and a bitmap of the 64 numbers ending there).

Randomness comes from the caller (``random_bytes``, a ``Callable[[int], bytes]``): this module
reads no clock and no system RNG. In production pass ``os.urandom`` (or
``secrets.token_bytes``): AES-CBC IVs "MUST be unpredictable" (RFC 3602 3), which
``random.Random`` is not. Tests pass a seeded ``random.Random(...).randbytes``.

AES-GCM IVs are the Sequence Number preceded by a 32-bit per-holder *epoch* drawn from
``random_bytes`` when the SA object is created or imported. RFC 4106 3.1 requires only that an
IV never repeats under one key; the counter makes it unique within one holder, and the epoch
keeps two holders of the same manually keyed SA (the exporter and the importer of a takeover,
or a node restored from an old snapshot) from reusing an IV unless their epochs collide
(2**-32). An IV from the Sequence Number alone would repeat in exactly those cases.

Export and import (:meth:`SecurityAssociation.export`, :meth:`SecurityAssociation.import_`)
carry everything, keys included, as versioned and checksummed JSON, for the distributed
server's backups (ARCHITECTURE 5, 8): see :meth:`~SecurityAssociation.export` for how the
sequence numbers continue and what becomes of the old holder. Keys never appear in ``repr``,
``str`` or error messages.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv6Address
from typing import Any

from mip6.core.ipsec.errors import Replayed, SaRetired, SequenceExhausted
from mip6.core.ipsec.transforms import (
    CBC_IV_LENGTH,
    GCM_SALT_LENGTH,
    AesCbcHmacSha196,
    AesGcm16,
    Transform,
)
from mip6.wire import protocols

REPLAY_WINDOW = 64  # RFC 4303 3.4.3: "a minimum window size of 32 packets MUST be supported"
MAX_SEQUENCE_NUMBER = 0xFFFF_FFFF
_WINDOW_MASK = (1 << REPLAY_WINDOW) - 1

EXPORT_FORMAT = "mip6.ipsec.sa"
EXPORT_VERSION = 1

RandomBytes = Callable[[int], bytes]


class Algorithm(enum.Enum):
    """The two transforms this stack implements (RFC 8221 lists both as MUST for ESP)."""

    AES_GCM_16 = "aes-gcm-16"  # RFC 4106, 16-octet ICV, no separate integrity algorithm
    AES_CBC_HMAC_SHA1_96 = "aes-cbc-hmac-sha1-96"  # RFC 3602 + RFC 2404


class Mode(enum.Enum):
    """RFC 4301 4.1. Transport: ESP after the headers that must stay outside. Tunnel: a whole
    IPv6 packet inside, with a new outer header (RFC 4303 3.1.2)."""

    TRANSPORT = "transport"
    TUNNEL = "tunnel"


class Direction(enum.Enum):
    """SAs are unidirectional (RFC 4301 4.1): outbound ones send, inbound ones receive."""

    OUTBOUND = "outbound"
    INBOUND = "inbound"


# RFC 4106 8.1: the KEYMAT is four octets longer than the AES key (the salt): 20, 28, 36.
_GCM_KEY_MATERIAL_LENGTHS = (16 + GCM_SALT_LENGTH, 24 + GCM_SALT_LENGTH, 32 + GCM_SALT_LENGTH)
# RFC 3602 2.2: AES key sizes 128 (MUST), 192 and 256 bits.
_CBC_KEY_LENGTHS = (16, 24, 32)
# RFC 2404 3: "a fixed key length of 160-bits MUST be supported. Key lengths other than
# 160-bits MUST NOT be supported".
_HMAC_SHA1_KEY_LENGTH = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Selector:
    """Traffic selectors (RFC 4301 4.4.1.1) as RFC 3776 needs them. ``None`` means ANY.

    ``source`` and ``destination`` are the addresses Mobile IPv6 signalling is *about*: the
    home address of a Home Address option stands in for the Source Address, the home address
    of a type 2 routing header for the Destination Address (RFC 3776 5.2.1: the selectors name
    the home address; RFC 3775 11.3.1 and 9.3.1 swap it in before IPsec processing). For a
    tunnel-mode SA they apply to the inner packet. ``protocol`` is the upper-layer Next Header
    (135, Mobility Header, by default); ``mh_types`` the MH Types matched (empty: any);
    ``home_registration`` matches the Binding Update's H bit (None: either). The last is an
    extension: RFC 4301 selectors cannot see the H bit, but RFC 3775 10.3.1 requires a home
    agent to refuse every unprotected home registration, known home address or not.
    """

    source: IPv6Address | None = None
    destination: IPv6Address | None = None
    protocol: int | None = protocols.MOBILITY
    mh_types: frozenset[int] = frozenset()
    home_registration: bool | None = None

    def matches(
        self,
        source: IPv6Address | bytes,
        destination: IPv6Address | bytes,
        protocol: int,
        mh_type: int | None,
        home_registration: bool | None,
    ) -> bool:
        """Whether a packet with these fields is selected. Addresses may be 16-byte strings
        (the data path's form) or ``IPv6Address``."""
        if self.source is not None and _packed(source) != self.source.packed:
            return False
        if self.destination is not None and _packed(destination) != self.destination.packed:
            return False
        if self.protocol is not None and protocol != self.protocol:
            return False
        if self.mh_types and mh_type not in self.mh_types:
            return False
        return self.home_registration is None or home_registration == self.home_registration

    def to_json(self) -> dict[str, Any]:
        return {
            "source": None if self.source is None else str(self.source),
            "destination": None if self.destination is None else str(self.destination),
            "protocol": self.protocol,
            "mh_types": sorted(self.mh_types),
            "home_registration": self.home_registration,
        }


def _packed(address: IPv6Address | bytes) -> bytes:
    return address if isinstance(address, bytes) else address.packed


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SaParameters:
    """The configured, never-changing part of an SA. ``encryption_key`` is the AES-GCM key
    material (key || salt) or the AES-CBC key; ``authentication_key`` the HMAC-SHA1-96 key
    (empty for AES-GCM). ``repr`` and ``str`` name the SA without its keys."""

    spi: int
    algorithm: Algorithm
    mode: Mode
    direction: Direction
    encryption_key: bytes
    authentication_key: bytes = b""
    selector: Selector = Selector()

    def __post_init__(self) -> None:
        # RFC 4303 2.1: SPI 0 "MUST NOT be sent on the wire"; 1-255 are reserved by IANA.
        if not 256 <= self.spi <= MAX_SEQUENCE_NUMBER:
            raise ValueError(f"SPI {self.spi} is reserved (RFC 4303 2.1: 0-255) or too large")
        if not isinstance(self.encryption_key, bytes) or not isinstance(
            self.authentication_key, bytes
        ):
            raise TypeError("keys must be bytes")
        if self.algorithm is Algorithm.AES_GCM_16:
            if len(self.encryption_key) not in _GCM_KEY_MATERIAL_LENGTHS:
                raise ValueError(
                    f"SA 0x{self.spi:08x}: AES-GCM key material must be 20, 28 or 36 bytes "
                    f"(key + 4-byte salt, RFC 4106 8.1), not {len(self.encryption_key)}"
                )
            if self.authentication_key:
                raise ValueError(
                    f"SA 0x{self.spi:08x}: AES-GCM is combined mode, it takes no authentication key"
                )
        else:
            if len(self.encryption_key) not in _CBC_KEY_LENGTHS:
                raise ValueError(
                    f"SA 0x{self.spi:08x}: AES-CBC key must be 16, 24 or 32 bytes (RFC 3602 "
                    f"2.2), not {len(self.encryption_key)}"
                )
            if len(self.authentication_key) != _HMAC_SHA1_KEY_LENGTH:
                raise ValueError(
                    f"SA 0x{self.spi:08x}: HMAC-SHA1-96 key must be 20 bytes (RFC 2404 3), "
                    f"not {len(self.authentication_key)}"
                )

    def transform(self) -> Transform:
        if self.algorithm is Algorithm.AES_GCM_16:
            return AesGcm16(self.encryption_key)
        return AesCbcHmacSha196(self.encryption_key, self.authentication_key)

    def __repr__(self) -> str:
        return (
            f"SaParameters(spi=0x{self.spi:08x}, algorithm={self.algorithm.value}, "
            f"mode={self.mode.value}, direction={self.direction.value}, "
            f"encryption_key=<{len(self.encryption_key)} bytes redacted>, "
            f"authentication_key=<{len(self.authentication_key)} bytes redacted>, "
            f"selector={self.selector!r})"
        )

    __str__ = __repr__


class SaImportError(ValueError):
    """An SA export :meth:`SecurityAssociation.import_` refuses: not our format, another
    version, a checksum that does not match, or a value out of range. Never names a key."""


class SecurityAssociation:
    """One SA: :attr:`parameters` plus the Sequence Number state.

    Outbound: :meth:`next_sequence_number` hands out 1, 2, ... 2**32 - 1 and then raises
    :class:`SequenceExhausted` (RFC 4303 3.3.3). Inbound: :meth:`check_replay` before the ICV
    is verified, :meth:`accept_sequence_number` after (RFC 4303 3.4.3: "The receive window is
    updated only if the ICV verification succeeds").
    """

    __slots__ = (
        "_gcm",
        "_iv_epoch",
        "_random_bytes",
        "direction",
        "mode",
        "parameters",
        "replay_bitmap",
        "replay_top",
        "retired",
        "selector",
        "sequence_counter",
        "spi",
        "transform",
    )

    def __init__(
        self,
        parameters: SaParameters,
        *,
        random_bytes: RandomBytes,
        sequence_counter: int = 0,
        replay_top: int = 0,
        replay_bitmap: int = 0,
    ) -> None:
        if not 0 <= sequence_counter <= MAX_SEQUENCE_NUMBER:
            raise ValueError("sequence_counter out of the 32-bit range")
        if not 0 <= replay_top <= MAX_SEQUENCE_NUMBER or not 0 <= replay_bitmap <= _WINDOW_MASK:
            raise ValueError("replay window state out of range")
        self.parameters = parameters
        self.spi = parameters.spi
        self.mode = parameters.mode
        self.direction = parameters.direction
        self.selector = parameters.selector
        self._gcm = parameters.algorithm is Algorithm.AES_GCM_16
        self.transform = parameters.transform()
        self._random_bytes = random_bytes
        # RFC 4303 3.3.3: "The sender's counter is initialized to 0 when an SA is established"
        # and holds the last Sequence Number sent; the first packet carries 1.
        self.sequence_counter = sequence_counter
        # RFC 4303 3.4.3: the highest Sequence Number authenticated so far ("the right edge
        # of the window") and one bit per number in the window, bit 0 being replay_top itself.
        self.replay_top = replay_top
        self.replay_bitmap = replay_bitmap
        self.retired = False
        self._iv_epoch = self._draw(4)

    # -- convenience views of the parameters (plain attributes: the data path reads them) ----

    spi: int
    mode: Mode
    direction: Direction
    selector: Selector

    def __repr__(self) -> str:
        state = (
            f"sequence_counter={self.sequence_counter}"
            if self.direction is Direction.OUTBOUND
            else f"replay_top={self.replay_top}"
        )
        retired = ", retired" if self.retired else ""
        return f"SecurityAssociation({self.parameters!r}, {state}{retired})"

    # -- randomness -------------------------------------------------------------------------

    def _draw(self, length: int) -> bytes:
        value = self._random_bytes(length)
        if not isinstance(value, bytes) or len(value) != length:
            raise ValueError(f"random_bytes({length}) must return {length} bytes")
        return value

    def iv(self, sequence_number: int) -> bytes:
        """The explicit IV of the packet that carries ``sequence_number``."""
        if self._gcm:
            # RFC 4106 3.1: unique per key; epoch || Sequence Number (see the module doc).
            return self._iv_epoch + sequence_number.to_bytes(4, "big")
        # RFC 3602 3: "The IV MUST be chosen at random, and MUST be unpredictable."
        return self._draw(CBC_IV_LENGTH)

    # -- outbound ---------------------------------------------------------------------------

    def next_sequence_number(self) -> int:
        """Count one packet out and return its Sequence Number."""
        if self.direction is not Direction.OUTBOUND:
            raise ValueError(f"SA 0x{self.spi:08x} is inbound; it sends nothing")
        if self.retired:
            raise SaRetired(f"SA 0x{self.spi:08x} was exported and retired here")
        # RFC 4303 3.3.3: "If anti-replay is enabled (the default), the sender checks to
        # ensure that the counter has not cycled before inserting the new value in the
        # Sequence Number field. In other words, the sender MUST NOT send a packet on an SA if
        # doing so would cause the sequence number to cycle."
        if self.sequence_counter >= MAX_SEQUENCE_NUMBER:
            raise SequenceExhausted(
                f"SA 0x{self.spi:08x} sent 2**32 - 1 packets; establish a new SA"
            )
        self.sequence_counter += 1
        return self.sequence_counter

    # -- inbound (RFC 4303 3.4.3) -----------------------------------------------------------

    def check_replay(self, sequence_number: int) -> None:
        """Raise :class:`Replayed` for a duplicate or a number left of the window; return for
        a number in the window not yet seen, or right of it. Changes nothing."""
        # RFC 4303 3.3.3: the first packet carries 1, so 0 is never a valid Sequence Number.
        if sequence_number == 0:
            raise Replayed(
                "Sequence Number 0 is never sent", spi=self.spi, sequence_number=sequence_number
            )
        if sequence_number > self.replay_top:
            return  # right of the window: new
        offset = self.replay_top - sequence_number
        if offset >= REPLAY_WINDOW:
            # RFC 4303 3.4.3: a number left of the window is rejected.
            raise Replayed(
                f"left of the receive window (highest {self.replay_top})",
                spi=self.spi,
                sequence_number=sequence_number,
            )
        if self.replay_bitmap >> offset & 1:
            # RFC 4303 3.4.3: "Duplicates are rejected through the use of a sliding receive
            # window."
            raise Replayed(
                "duplicate", spi=self.spi, sequence_number=sequence_number, duplicate=True
            )

    def accept_sequence_number(self, sequence_number: int) -> None:
        """Record an authenticated packet's number, sliding the window right if needed."""
        if sequence_number > self.replay_top:
            shift = sequence_number - self.replay_top
            self.replay_bitmap = (
                ((self.replay_bitmap << shift) | 1) & _WINDOW_MASK if shift < REPLAY_WINDOW else 1
            )
            self.replay_top = sequence_number
        else:
            self.replay_bitmap |= 1 << (self.replay_top - sequence_number)

    def continue_after(self, number: int, *, skip: int = 0) -> None:
        """Continue another holder of this SA (a distributed server's contact node, taken
        over) from ``number``, what it reported last: outbound, its Sequence Number counter,
        which this one's goes above by ``skip`` (the numbers it may have sent since: see
        :meth:`export`); inbound, the top of its replay window, at and below which every
        number is taken as seen (the window's bits are not reported). Never moves back."""
        if self.direction is Direction.OUTBOUND:
            counter = min(number + skip, MAX_SEQUENCE_NUMBER)
            self.sequence_counter = max(self.sequence_counter, counter)
        elif number > self.replay_top:
            self.replay_top = min(number, MAX_SEQUENCE_NUMBER)
            self.replay_bitmap = _WINDOW_MASK

    # -- export / import --------------------------------------------------------------------

    def export(self, *, retire: bool) -> bytes:
        """This SA as a versioned, checksummed JSON document (UTF-8 bytes), keys included: send
        it over an authenticated, encrypted channel only (the member channel).

        What continues: an outbound SA's Sequence Number counter (the importer's first packet
        carries the next number, so the peer's replay window, which has seen everything up to
        here, accepts it), an inbound SA's replay window (packets this holder already accepted
        stay refused at the importer). Not exported: the AES-GCM IV epoch (each holder draws
        its own, so the two never share an IV).

        The old holder: with ``retire=True`` (a planned handoff) this object refuses to send
        from now on (:class:`SaRetired`). With ``retire=False`` (a backup kept ready while this
        node goes on sending) the export goes stale as this node sends; the importer must then
        :meth:`import_` with a ``skip`` larger than what this node may send in between, or its
        packets carry numbers the peer has already seen and are refused. ESP cannot tell two
        holders of one SA apart; the Sequence Numbers decide. Once the peer has accepted a
        packet from the importer, the old holder's packets carry lower numbers and are refused
        as replays: duplicates while they are within 64 of the importer's highest, left of the
        window after that. With ``skip`` = k >= 64, the old holder's next k - 63 packets all
        fall left of the window, so a straggler never slips into a gap the importer left; pick
        k above anything the old holder can still send (a crashed one sends nothing, a cut-off
        one at most its Binding Update rate until it notices). Until the peer hears from the
        importer, the old holder is still accepted: the peer cannot know of the takeover.
        """
        if retire:
            self.retired = True
        body = {
            "spi": self.spi,
            "algorithm": self.parameters.algorithm.value,
            "mode": self.mode.value,
            "direction": self.direction.value,
            "encryption_key": self.parameters.encryption_key.hex(),
            "authentication_key": self.parameters.authentication_key.hex(),
            "selector": self.selector.to_json(),
            "sequence_counter": self.sequence_counter,
            "replay_top": self.replay_top,
            "replay_bitmap": self.replay_bitmap,
        }
        document = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "sa": body,
            "checksum": _checksum(body),
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def import_(
        cls, data: bytes, *, random_bytes: RandomBytes, skip: int = 0
    ) -> SecurityAssociation:
        """An SA from :meth:`export`'s document. ``skip`` (outbound SAs only) advances the
        Sequence Number counter past numbers the exporter may have used since it exported
        (see :meth:`export`). Raises :class:`SaImportError`."""
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise SaImportError("not a JSON document") from None
        if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
            raise SaImportError(f"not a {EXPORT_FORMAT} document")
        if document.get("version") != EXPORT_VERSION:
            raise SaImportError(
                f"version {document.get('version')!r}, this code reads {EXPORT_VERSION}"
            )
        body = document.get("sa")
        if not isinstance(body, dict) or document.get("checksum") != _checksum(body):
            raise SaImportError("checksum does not match: the export was altered or cut")
        try:
            parameters = SaParameters(
                spi=_integer(body, "spi"),
                algorithm=Algorithm(body["algorithm"]),
                mode=Mode(body["mode"]),
                direction=Direction(body["direction"]),
                encryption_key=bytes.fromhex(_string(body, "encryption_key")),
                authentication_key=bytes.fromhex(_string(body, "authentication_key")),
                selector=_selector(body["selector"]),
            )
            counter = _integer(body, "sequence_counter")
            top = _integer(body, "replay_top")
            bitmap = _integer(body, "replay_bitmap")
        except (KeyError, TypeError, ValueError) as error:
            # ValueError texts here name fields and lengths, never key bytes.
            raise SaImportError(f"bad SA field: {error}") from None
        if not isinstance(skip, int) or skip < 0:
            raise SaImportError("skip must be a non-negative integer")
        if skip and parameters.direction is not Direction.OUTBOUND:
            raise SaImportError("skip applies to outbound SAs only")
        if counter + skip > MAX_SEQUENCE_NUMBER:
            raise SaImportError("skip would take the Sequence Number past 2**32 - 1")
        try:
            return cls(
                parameters,
                random_bytes=random_bytes,
                sequence_counter=counter + skip,
                replay_top=top,
                replay_bitmap=bitmap,
            )
        except ValueError as error:
            raise SaImportError(str(error)) from None


def _checksum(body: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the SA: catches corruption and truncation (the member
    channel, not this checksum, authenticates the export)."""
    canonical = json.dumps(
        {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "sa": body},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _integer(body: Mapping[str, Any], key: str) -> int:
    value = body[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{key} must be an integer")
    return value


def _string(body: Mapping[str, Any], key: str) -> str:
    value = body[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    return value


def _address(value: object, key: str) -> IPv6Address | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"selector {key} must be an address or null")
    try:
        return IPv6Address(value)
    except AddressValueError:
        raise ValueError(f"selector {key} is not an IPv6 address") from None


def _selector(value: object) -> Selector:
    if not isinstance(value, dict):
        raise TypeError("selector must be a mapping")
    protocol = value["protocol"]
    if protocol is not None and (not isinstance(protocol, int) or not 0 <= protocol <= 255):
        raise ValueError("selector protocol must be 0-255 or null")
    mh_types = value["mh_types"]
    if not isinstance(mh_types, list) or not all(
        isinstance(t, int) and 0 <= t <= 255 for t in mh_types
    ):
        raise ValueError("selector mh_types must be a list of 0-255")
    home_registration = value["home_registration"]
    if home_registration is not None and not isinstance(home_registration, bool):
        raise TypeError("selector home_registration must be a boolean or null")
    return Selector(
        source=_address(value["source"], "source"),
        destination=_address(value["destination"], "destination"),
        protocol=protocol,
        mh_types=frozenset(mh_types),
        home_registration=home_registration,
    )
