"""Member-channel messages of the handoff protocol (DSERVER.md section 4), as wire codecs.

The seeds wrote C structs raw onto a TCP connection (SPEC-dserver 4.6: encodings, byte order
and enum values "not specified"); here every message is a frozen dataclass with ``parse`` and
``emit``, network byte order, versioned, strict, round-trip exact. The channel
(``mip6.dserver.channel``) authenticates and encrypts each one; these bytes are its plaintext.

Every message starts with the same header::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +---------------+---------------+-------------------------------+
    |    Version    |     Type      |           Reserved            |
    +---------------+---------------+-------------------------------+
    |                                                               |
    +                          Handoff Id                           +
    |                                                               |
    +---------------------------------------------------------------+
    |                                                               |
    +                                                               +
    |                        Client Address                         |
    +                          (128 bits)                           +
    |                                                               |
    +---------------------------------------------------------------+
    |                    Type-specific body ...

- PREPARE (donor -> acceptor, no body): run return routability for (contact address, client)
  now and keep the tokens (RR in advance, seeds 004 6.4).
- PREPARED (acceptor -> donor, no body): the tokens are in hand.
- INIT (donor -> acceptor): the next Binding Update sequence number, the binding lifetime
  (seconds), and every connection of the client (DSERVER 4 rule 1: the binding is per client,
  so all its connections move in one INIT), each a tcp_migrate snapshot, whether it is the
  regenerable form, and the application's state::

    | Next Sequence (16) | Connection Count (16) | Lifetime (32, seconds) |
    then per connection:
    | Flags (8, R = 0x01 regenerable) | Reserved (24) | Snapshot Length (32) |
    | Application State Length (32) | Snapshot | Application State |

- DONE (acceptor -> donor, no body): the acceptor holds the client; the donor drops its frozen
  copies silently.
- FAILED (acceptor -> donor): ``| Reason (8) | Reserved (24) |``; reasons not known here are
  kept as numbers.

Bounds (a peer's frame never makes us allocate beyond them): at most
:data:`MAX_CONNECTIONS` connections, :data:`MAX_SNAPSHOT` bytes per snapshot and
:data:`MAX_APPLICATION_STATE` bytes of application state each.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import ClassVar

from mip6.wire.errors import EmitError, Malformed, Truncated

VERSION = 1
MAX_CONNECTIONS = 64
MAX_SNAPSHOT = 1 << 20  # a full snapshot carries its send and receive rings (256 KiB each here)
MAX_APPLICATION_STATE = 1 << 20

_HEADER = struct.Struct("!BBHQ16s")
HEADER_LENGTH = _HEADER.size  # 28
# Offsets under the diagram above
VERSION_OFFSET = 0
TYPE_OFFSET = 1
RESERVED_OFFSET = 2
HANDOFF_ID_OFFSET = 4
CLIENT_OFFSET = 12
_INIT = struct.Struct("!HHI")
_CONNECTION = struct.Struct("!B3xII")
_FAILED = struct.Struct("!B3x")
# The longest message: an INIT at every bound (what the channel's frame length is capped by).
MAX_MESSAGE_LENGTH = (
    HEADER_LENGTH
    + _INIT.size
    + MAX_CONNECTIONS * (_CONNECTION.size + MAX_SNAPSHOT + MAX_APPLICATION_STATE)
)
REGENERABLE = 0x01


class MessageType(enum.IntEnum):
    PREPARE = 1
    PREPARED = 2
    INIT = 3
    DONE = 4
    FAILED = 5


class FailureReason(enum.IntEnum):
    """Why an acceptor refused or could not finish a handoff (DSERVER.md section 4)."""

    REFUSED = 1  # the acceptor's policy or load said no
    NO_SUCH_APPLICATION = 2  # nothing serves the connection's port here
    IMPORT_FAILED = 3  # a snapshot did not import (version, checksum, 4-tuple in use)
    CLIENT_UNREACHABLE = 4  # return routability or the Binding Update went unanswered
    TIMEOUT = 5  # the attempt's time ran out


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionState:
    """One client connection in an INIT: its tcp_migrate snapshot (``regenerable``: the form
    without unacknowledged send bytes, which the application regenerates) and the
    application's state for it."""

    snapshot: bytes
    regenerable: bool = False
    application_state: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Message:
    handoff_id: int
    client: IPv6Address
    message_type: ClassVar[MessageType]

    def _header(self) -> bytes:
        if not 0 <= self.handoff_id < 1 << 64:
            raise EmitError(f"handoff id {self.handoff_id} does not fit 64 bits")
        return _HEADER.pack(VERSION, self.message_type, 0, self.handoff_id, self.client.packed)

    def emit(self) -> bytes:
        return self._header()


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepare(_Message):
    message_type: ClassVar[MessageType] = MessageType.PREPARE


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared(_Message):
    message_type: ClassVar[MessageType] = MessageType.PREPARED


@dataclass(frozen=True, slots=True, kw_only=True)
class Done(_Message):
    message_type: ClassVar[MessageType] = MessageType.DONE


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed(_Message):
    reason: FailureReason | int
    message_type: ClassVar[MessageType] = MessageType.FAILED

    def emit(self) -> bytes:
        if not 0 <= self.reason <= 0xFF:
            raise EmitError(f"failure reason {self.reason} does not fit 8 bits")
        return self._header() + _FAILED.pack(self.reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class Init(_Message):
    """``next_sequence``: the Binding Update sequence number the acceptor sends next (DSERVER
    4 rule 3: numbers only grow, and a retry to a second acceptor reuses it); ``lifetime``:
    the binding lifetime to request, seconds."""

    next_sequence: int
    lifetime: int
    connections: tuple[ConnectionState, ...]
    message_type: ClassVar[MessageType] = MessageType.INIT

    def emit(self) -> bytes:
        if not 0 <= self.next_sequence <= 0xFFFF:
            raise EmitError(f"sequence {self.next_sequence} does not fit 16 bits")
        if not 0 <= self.lifetime < 1 << 32:
            raise EmitError(f"lifetime {self.lifetime} does not fit 32 bits")
        if len(self.connections) > MAX_CONNECTIONS:
            raise EmitError(f"{len(self.connections)} connections (at most {MAX_CONNECTIONS})")
        parts = [
            self._header(),
            _INIT.pack(self.next_sequence, len(self.connections), self.lifetime),
        ]
        for connection in self.connections:
            if len(connection.snapshot) > MAX_SNAPSHOT:
                raise EmitError(f"a snapshot of {len(connection.snapshot)} bytes")
            if len(connection.application_state) > MAX_APPLICATION_STATE:
                raise EmitError(f"{len(connection.application_state)} bytes of application state")
            flags = REGENERABLE if connection.regenerable else 0
            parts.append(
                _CONNECTION.pack(flags, len(connection.snapshot), len(connection.application_state))
            )
            parts += [connection.snapshot, connection.application_state]
        return b"".join(parts)


Message = Prepare | Prepared | Init | Done | Failed


def parse(data: bytes) -> Message:
    """One message; :class:`~mip6.wire.errors.Truncated` or
    :class:`~mip6.wire.errors.Malformed` (with the offset and field at fault) otherwise.
    Trailing bytes are malformed: the channel frames exactly one message."""
    if len(data) < HEADER_LENGTH:
        raise Truncated("shorter than the message header", len(data), "header")
    version, kind, reserved, handoff_id, client = _HEADER.unpack_from(data)
    if version != VERSION:
        raise Malformed(f"version {version} (we speak {VERSION})", VERSION_OFFSET, "version")
    if reserved:
        raise Malformed("reserved bits set", RESERVED_OFFSET, "reserved")
    common = {"handoff_id": handoff_id, "client": IPv6Address(client)}
    offset = HEADER_LENGTH
    message: Message
    if kind == MessageType.PREPARE:
        message = Prepare(**common)
    elif kind == MessageType.PREPARED:
        message = Prepared(**common)
    elif kind == MessageType.DONE:
        message = Done(**common)
    elif kind == MessageType.FAILED:
        _need(data, offset, _FAILED.size, "reason")
        (reason,) = _FAILED.unpack_from(data, offset)
        if data[offset + 1 : offset + 4] != bytes(3):
            raise Malformed("reserved bits set", offset + 1, "reserved")
        offset += _FAILED.size
        known = reason in FailureReason._value2member_map_
        message = Failed(**common, reason=FailureReason(reason) if known else reason)
    elif kind == MessageType.INIT:
        message, offset = _init(data, offset, common)
    else:
        raise Malformed(f"unknown message type {kind}", TYPE_OFFSET, "type")
    if offset != len(data):
        raise Malformed("bytes after the message", offset, "length")
    return message


def _init(data: bytes, offset: int, common: dict[str, object]) -> tuple[Init, int]:
    _need(data, offset, _INIT.size, "init")
    next_sequence, count, lifetime = _INIT.unpack_from(data, offset)
    if count > MAX_CONNECTIONS:
        raise Malformed(f"{count} connections (at most {MAX_CONNECTIONS})", offset + 2, "count")
    offset += _INIT.size
    connections = []
    for _ in range(count):
        _need(data, offset, _CONNECTION.size, "connection")
        flags, snapshot_length, state_length = _CONNECTION.unpack_from(data, offset)
        if flags & ~REGENERABLE:
            raise Malformed(f"unknown flags {flags:#04x}", offset, "flags")
        if data[offset + 1 : offset + 4] != bytes(3):
            raise Malformed("reserved bits set", offset + 1, "reserved")
        if snapshot_length > MAX_SNAPSHOT:
            raise Malformed(f"a snapshot of {snapshot_length} bytes", offset + 4, "snapshot")
        if state_length > MAX_APPLICATION_STATE:
            raise Malformed(
                f"{state_length} bytes of application state", offset + 8, "application_state"
            )
        offset += _CONNECTION.size
        _need(data, offset, snapshot_length + state_length, "connection data")
        snapshot = data[offset : offset + snapshot_length]
        offset += snapshot_length
        state = data[offset : offset + state_length]
        offset += state_length
        connections.append(
            ConnectionState(
                snapshot=snapshot, regenerable=bool(flags & REGENERABLE), application_state=state
            )
        )
    init = Init(
        **common,  # type: ignore[arg-type]
        next_sequence=next_sequence,
        lifetime=lifetime,
        connections=tuple(connections),
    )
    return init, offset


def _need(data: bytes, offset: int, length: int, field: str) -> None:
    if len(data) < offset + length:
        raise Truncated(f"{field}: {length} bytes needed, {len(data) - offset} left", offset, field)
