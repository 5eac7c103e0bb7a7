"""The distributed server's member channel (:mod:`mip6.dserver.channel`) as seen on the wire,
followed passively so a chart can name what it carries.

A member channel is a TCP connection between members (their own addresses, or a joining
member and the contact address) whose streams each start with a hello (version, role, the
sender's own address, a random), then a confirm, then length-prefixed AES-GCM frames. A TCP
connection is followed from its SYN; it is taken for a member channel when the first 52 bytes of
a direction form a valid hello whose identity is the address the bytes came from (the contact
node answering a join through the contact address names its own address, not the one its bytes
come from, so one end vouching suffices), and dropped from the table the moment a direction's
first bytes are no hello, or both hellos are in and cannot be a channel's.

Without the group key a frame is labelled by its number and length only (the channel is
encrypted: that is all an observer sees). With it, the two hellos give the connection's keys
(:func:`mip6.dserver.channel.session_keys`), each frame is opened with its direction's key and
implicit sequence number and its message parsed: ``INIT #3 client 2001:db8:2::1 seq 4, 1
connection (regenerable)``. Periodic membership traffic (heartbeats, registrations, replicas) is
labelled as data, so runs of it collapse.

Bounds: :data:`MAX_CONNECTIONS` connections followed, the oldest that has not shown a hello
forgotten first (so a stream of short connections cannot push the channels out), of which at
most :data:`MAX_CHANNELS` member channels (the oldest forgotten); a connection not known to be
a channel holds at most :data:`MAX_UNKNOWN_BUFFERED` bytes per direction (its start, while a
reordered hello completes), a channel :data:`MAX_BUFFERED` (out-of-order data beyond is not
followed); a frame longer than :data:`MAX_FRAME_FOLLOWED` is counted and skipped, not buffered.
At most about
``MAX_CHANNELS * 2 * MAX_BUFFERED + MAX_CONNECTIONS * 2 * MAX_UNKNOWN_BUFFERED`` bytes (288
MiB) are ever held, and that only for captures made to reach it.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mip6.chart.label import Kind, Label
from mip6.chart.names import Names
from mip6.dserver import messages
from mip6.dserver.channel import (
    CONFIRM_LENGTH,
    HELLO_LENGTH,
    IDENTITY_OFFSET,
    LENGTH_PREFIX,
    MAX_FRAME_LENGTH,
    RANDOM_OFFSET,
    RESERVED_OFFSET,
    ROLE_OFFSET,
    TAG_LENGTH,
    VERSION,
    VERSION_OFFSET,
    Role,
    frame_nonce,
    session_keys,
)
from mip6.wire.errors import WireError
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.tcp import TcpFlags, TcpSegment

MAX_CONNECTIONS: Final = 256
MAX_CHANNELS: Final = 32  # a group of a few members has a channel per pair
MAX_UNKNOWN_BUFFERED: Final = 64 << 10  # a connection's start, reordered, until it shows a hello
MAX_BUFFERED: Final = 4 << 20
MAX_FRAME_FOLLOWED: Final = MAX_BUFFERED  # an INIT with a few full snapshots fits
SEQUENCE_SPACE: Final = 1 << 32

# Membership messages that come and go on timers: data to a chart, collapsed into runs
PERIODIC: Final = frozenset(
    {
        messages.MessageType.HEARTBEAT,
        messages.MessageType.HEARTBEAT_ANSWER,
        messages.MessageType.REGISTER,
        messages.MessageType.REGISTERED,
        messages.MessageType.REPLICA,
        messages.MessageType.REPLICA_ACK,
        messages.MessageType.CONTACT_STATE,
    }
)
_HANDOFF = (messages.Prepare, messages.Prepared, messages.Init, messages.Done, messages.Failed)


class _Stage(enum.Enum):
    HELLO = "hello"
    CONFIRM = "confirm"
    FRAMES = "frames"
    STOPPED = "stopped"  # not followed any further (a frame length out of bounds, a gap)


Endpoint = tuple[IPv6Address, int]


@dataclass(slots=True)
class _Direction:
    initial_sequence: int
    received: int = 0  # stream bytes assembled so far
    buffer: bytearray = field(default_factory=bytearray)  # assembled, not consumed
    out_of_order: dict[int, bytes] = field(default_factory=dict)
    stage: _Stage = _Stage.HELLO
    hello: bytes = b""
    role: Role | None = None
    vouched: bool = False  # the hello's identity is the address its bytes came from
    frames: int = 0  # frames seen: the next one's implicit sequence number
    skip: int = 0  # bytes of an oversize frame still to pass over
    aead: AESGCM | None = None
    nonce_base: bytes = b""
    undecryptable: bool = False  # a frame did not open: the key is not this group's


@dataclass(slots=True)
class _Connection:
    directions: dict[Endpoint, _Direction] = field(default_factory=dict)
    channel: bool = False  # a hello verified: a member channel
    keyed: bool = False  # session keys derived (both hellos seen, group key known)


def _held(direction: _Direction) -> int:
    return len(direction.buffer) + sum(map(len, direction.out_of_order.values()))


def message_label(message: messages.Message, length: int, names: Names) -> Label:
    """A decrypted member-channel message: handoff messages as signalling, periodic membership
    traffic as data. A handoff id is shown by its low 32 bits, in hex (enough to pair a
    chart's messages)."""
    name = message.message_type.name
    if isinstance(message, _HANDOFF):
        handoff = f"{message.handoff_id & 0xFFFFFFFF:08x}"
        text = f"{name} #{handoff} client {names.of(message.client)}"
        if isinstance(message, messages.Init):
            count = len(message.connections)
            regenerable = sum(c.regenerable for c in message.connections)
            text += f" seq {message.next_sequence}, {count} connection{'s' * (count != 1)}"
            text += f" ({regenerable} regenerable), {length} bytes"
        elif isinstance(message, messages.Failed):
            reason = message.reason
            text += f" {reason.name.lower() if isinstance(reason, enum.Enum) else reason}"
        return Label(Kind.CHANNEL, text)
    if message.message_type in PERIODIC:
        return Label(Kind.DATA, name, f"member channel {name}", length, "messages")
    return Label(Kind.CHANNEL, name)


class ChannelFollower:
    """Feed it every TCP segment of a capture in order (:meth:`segment`); ``group_key`` the
    group's pre-shared key, or None to label frames without opening them; ``names`` names the
    clients in handoff messages."""

    def __init__(self, names: Names, group_key: bytes | None = None) -> None:
        self._names = names
        self._group_key = group_key
        self._connections: OrderedDict[frozenset[Endpoint], _Connection] = OrderedDict()

    def segment(self, packet: Ipv6Packet, segment: TcpSegment) -> list[Label] | None:
        """None when the segment is not on a member channel (as far as can be told); else the
        labels of the hellos, confirms and frames it completes (none: it carries part of one,
        or only an acknowledgement)."""
        source = (packet.source, segment.source_port)
        destination = (packet.destination, segment.destination_port)
        key = frozenset((source, destination))
        connection = self._connections.get(key)
        if segment.flags & TcpFlags.SYN:
            if connection is None:
                connection = self._connections[key] = _Connection()
                self._forget()
            connection.directions[source] = _Direction(segment.sequence_number)
            return []
        if connection is None:
            return None
        direction = connection.directions.get(source)
        if direction is None or not segment.payload:
            return [] if connection.channel else None
        offset = (segment.sequence_number - direction.initial_sequence - 1) % SEQUENCE_SPACE
        if connection.channel and _repeated(direction, offset, segment.payload):
            size = len(segment.payload)
            return [Label(Kind.DATA, "", "member channel retransmitted", size, "segments")]
        limit = MAX_BUFFERED if connection.channel else MAX_UNKNOWN_BUFFERED
        self._assemble(direction, offset, segment.payload[: max(0, limit - offset)], limit)
        labels = self._records(connection, direction, packet.source)
        if labels is None or _refuted(connection):
            del self._connections[key]
            return None
        if not connection.channel and any(d.vouched for d in connection.directions.values()):
            connection.channel = True
            self._forget()
        return labels if connection.channel else None

    def followed(self) -> int:
        """How many TCP connections are followed now."""
        return len(self._connections)

    def held_bytes(self) -> int:
        """Stream bytes held now, in every direction of every connection."""
        return sum(
            _held(direction)
            for connection in self._connections.values()
            for direction in connection.directions.values()
        )

    def _forget(self) -> None:
        """Keep within the bounds: the oldest connection not known to be a channel goes first,
        then the oldest channel."""
        connections = self._connections
        channels = [key for key, connection in connections.items() if connection.channel]
        if len(channels) > MAX_CHANNELS:
            del connections[channels[0]]
        if len(connections) > MAX_CONNECTIONS:
            unknown = next((k for k, c in connections.items() if not c.channel), None)
            del connections[unknown if unknown is not None else next(iter(connections))]

    @staticmethod
    def _assemble(direction: _Direction, offset: int, payload: bytes, limit: int) -> None:
        if offset > SEQUENCE_SPACE // 2:  # before the stream's start: a stale retransmission
            return
        if offset > direction.received:
            if payload and _held(direction) + len(payload) <= limit:
                direction.out_of_order[offset] = payload
            return
        direction.buffer += payload[direction.received - offset :]
        direction.received = max(direction.received, offset + len(payload))
        while direction.out_of_order:
            start = min(direction.out_of_order)
            if start > direction.received:
                break
            later = direction.out_of_order.pop(start)
            if start + len(later) > direction.received:
                direction.buffer += later[direction.received - start :]
                direction.received = start + len(later)
        if _held(direction) > limit:
            direction.stage = _Stage.STOPPED
            direction.buffer.clear()
            direction.out_of_order.clear()

    def _records(
        self, connection: _Connection, direction: _Direction, sender: IPv6Address
    ) -> list[Label] | None:
        labels: list[Label] = []
        buffer = direction.buffer
        while True:
            if direction.skip:
                passed = min(direction.skip, len(buffer))
                del buffer[:passed]
                direction.skip -= passed
                if direction.skip:
                    return labels
            if direction.stage is _Stage.HELLO:
                if len(buffer) < HELLO_LENGTH:
                    return labels
                hello = bytes(buffer[:HELLO_LENGTH])
                role = _hello_role(hello)
                if role is None:
                    return None
                direction.hello, direction.role = hello, role
                direction.vouched = hello[IDENTITY_OFFSET:RANDOM_OFFSET] == sender.packed
                del buffer[:HELLO_LENGTH]
                direction.stage = _Stage.CONFIRM
                labels.append(Label(Kind.CHANNEL, f"channel hello ({role.name.lower()})"))
            elif direction.stage is _Stage.CONFIRM:
                if len(buffer) < CONFIRM_LENGTH:
                    return labels
                del buffer[:CONFIRM_LENGTH]
                direction.stage = _Stage.FRAMES
                labels.append(Label(Kind.CHANNEL, "channel confirm"))
            elif direction.stage is _Stage.FRAMES:
                if len(buffer) < LENGTH_PREFIX:
                    return labels
                length = int.from_bytes(buffer[:LENGTH_PREFIX], "big")
                if not TAG_LENGTH <= length <= MAX_FRAME_LENGTH:
                    direction.stage = _Stage.STOPPED
                    labels.append(Label(Kind.CONTROL, f"channel frame length {length}: invalid"))
                    return labels
                if length > MAX_FRAME_FOLLOWED:
                    del buffer[:LENGTH_PREFIX]
                    direction.skip = length
                    direction.frames += 1
                    text = f"channel frame {direction.frames}, {length} bytes (not followed)"
                    labels.append(Label(Kind.CHANNEL, text))
                    continue
                if len(buffer) < LENGTH_PREFIX + length:
                    return labels
                record = bytes(buffer[: LENGTH_PREFIX + length])
                del buffer[: LENGTH_PREFIX + length]
                labels.append(self._frame(connection, direction, record))
            else:
                buffer.clear()
                return labels

    def _frame(self, connection: _Connection, direction: _Direction, record: bytes) -> Label:
        number = direction.frames
        direction.frames += 1
        length = len(record) - LENGTH_PREFIX
        encrypted = Label(
            Kind.CHANNEL, f"channel frame {number + 1}, {length} bytes (encrypted)", sealed=True
        )
        if self._group_key is None or direction.undecryptable:
            return encrypted
        if not connection.keyed and not self._derive(connection):
            return encrypted
        assert direction.aead is not None
        nonce = frame_nonce(direction.nonce_base, number)
        try:
            plaintext = direction.aead.decrypt(
                nonce, record[LENGTH_PREFIX:], record[:LENGTH_PREFIX]
            )
        except InvalidTag:
            direction.undecryptable = True
            return Label(
                Kind.CHANNEL, f"channel frame {number + 1}, {length} bytes (not this group key)"
            )
        try:
            message = messages.parse(plaintext)
        except WireError as error:
            return Label(Kind.CONTROL, f"channel frame {number + 1}: not a message ({error})")
        return message_label(message, len(plaintext), self._names)

    def _derive(self, connection: _Connection) -> bool:
        """The connection's keys, once both hellos are in hand."""
        by_role = {d.role: d for d in connection.directions.values() if d.role is not None}
        initiator, responder = by_role.get(Role.INITIATOR), by_role.get(Role.RESPONDER)
        if initiator is None or responder is None or self._group_key is None:
            return False
        keys = session_keys(self._group_key, initiator.hello, responder.hello)
        initiator.aead, initiator.nonce_base = AESGCM(keys.initiator_key), keys.initiator_nonce
        responder.aead, responder.nonce_base = AESGCM(keys.responder_key), keys.responder_nonce
        connection.keyed = True
        return True


def _repeated(direction: _Direction, offset: int, payload: bytes) -> bool:
    """Whether the segment brings no byte not seen yet: a TCP retransmission."""
    return offset <= SEQUENCE_SPACE // 2 and offset + len(payload) <= direction.received


def _refuted(connection: _Connection) -> bool:
    """Whether both ends' hellos are in and cannot be a member channel's: the same role, or
    neither naming the address it came from."""
    hellos = [d for d in connection.directions.values() if d.role is not None]
    if len(hellos) < 2:
        return False
    roles = {d.role for d in hellos}
    return len(roles) < 2 or not any(d.vouched for d in hellos)


def _hello_role(hello: bytes) -> Role | None:
    """The hello's role when it is a well-formed hello, else None."""
    if hello[VERSION_OFFSET] != VERSION or hello[RESERVED_OFFSET:IDENTITY_OFFSET] != b"\0\0":
        return None
    try:
        return Role(hello[ROLE_OFFSET])
    except ValueError:
        return None
