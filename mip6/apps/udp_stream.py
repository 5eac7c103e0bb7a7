"""A stateful UDP stream for the distributed server (SPEC-dserver 4.13: video on demand over UDP
needs "an application-level handoff": the stream id and byte offset), as a member's
:class:`~mip6.dserver.udp.DatagramService`. A client reads stream ``id`` (the generated body of
``size`` bytes from seed ``id``, :func:`~mip6.apps.http.generated_body`) in datagrams of at most
:data:`CHUNK` bytes; it paces the member with cumulative acknowledgements, so the member needs no
clock, and a lost datagram costs a window from the client's offset.

Wire format, network byte order::

    GET  (client -> contact address): "stream Stream Id from Offset", which says that every
         byte before Offset arrived
        | Version (8) = 1 | Kind (8) = 1 | Reserved (16) | Stream Id (32) | Offset (64) |
    DATA (member -> client):
        | Version (8) = 1 | Kind (8) = 2 | Flags (8: E = 0x01, the stream ends here) |
        | Reserved (8) | Stream Id (32) | Offset (64) | Member (128) | Data |

The member sends a GET's window: from the Offset, or from where it had already sent to when the
GET acknowledges more than the last one (the rest is on its way), up to Offset + ``window``
bytes. A GET repeating the last acknowledgement asks again from its Offset (the client lost
something). The flow's state, what a handoff carries (:class:`StreamState`), is the stream id,
the acknowledged offset and the sent offset: the acceptor goes on from where the donor stopped
sending, not from the client's last acknowledgement, so it sends no byte twice.

``handoff_every``: after that many GETs of a flow here, hand its client to another member; 0
never. A datagram that is not a GET, or names an offset past the stream's end, is dropped and
counted (``malformed``).

Not done: a GET of 24 bytes is answered with up to ``window`` bytes, whoever sent it, so a
forged source address makes the service a reflector (as any UDP server that answers one small
datagram with several large ones); a first window of one datagram for a new flow would bound
that, at a round trip's cost to every stream's start.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import TYPE_CHECKING

from mip6.apps.http import generated_body
from mip6.wire.errors import Malformed, Truncated, WireError

if TYPE_CHECKING:
    from mip6.dserver.member import Member
    from mip6.dserver.udp import Flow

VERSION = 1
GET, DATA = 1, 2
END = 0x01
CHUNK = 1024  # bytes of stream per DATA
DEFAULT_WINDOW = 16 * CHUNK
DEFAULT_PORT = 5004  # RTP's
_GET = struct.Struct("!BBHIQ")
_DATA = struct.Struct("!BBBxIQ16s")
_STATE = struct.Struct("!IQQ")


def _check(data: bytes, layout: struct.Struct, kind: int) -> tuple[int, ...]:
    if len(data) < layout.size:
        raise Truncated("shorter than the header", len(data), "header")
    fields = layout.unpack_from(data)
    if fields[0] != VERSION:
        raise Malformed(f"version {fields[0]} (we speak {VERSION})", 0, "version")
    if fields[1] != kind:
        raise Malformed(f"kind {fields[1]}", 1, "kind")
    return fields


@dataclass(frozen=True, slots=True, kw_only=True)
class Get:
    stream_id: int
    offset: int

    @classmethod
    def parse(cls, data: bytes) -> Get:
        _, _, reserved, stream_id, offset = _check(data, _GET, GET)
        if reserved:
            raise Malformed("reserved bits set", 2, "reserved")
        if len(data) != _GET.size:
            raise Malformed("bytes after the request", _GET.size, "length")
        return cls(stream_id=stream_id, offset=offset)

    def emit(self) -> bytes:
        return _GET.pack(VERSION, GET, 0, self.stream_id, self.offset)


@dataclass(frozen=True, slots=True, kw_only=True)
class Data:
    stream_id: int
    offset: int
    member: IPv6Address  # the member that sent it
    data: bytes
    end: bool = False

    @classmethod
    def parse(cls, data: bytes) -> Data:
        _, _, flags, stream_id, offset, member = _check(data, _DATA, DATA)
        if flags & ~END:
            raise Malformed(f"unknown flags {flags:#04x}", 2, "flags")
        if data[3]:
            raise Malformed("reserved bits set", 3, "reserved")
        body = data[_DATA.size :]
        if len(body) > CHUNK:
            raise Malformed(f"{len(body)} bytes of data (at most {CHUNK})", _DATA.size, "data")
        return cls(
            stream_id=stream_id,
            offset=offset,
            member=IPv6Address(member),
            data=body,
            end=bool(flags & END),
        )

    def emit(self) -> bytes:
        flags = END if self.end else 0
        head = _DATA.pack(VERSION, DATA, flags, self.stream_id, self.offset, self.member.packed)
        return head + self.data


class StateError(ValueError):
    """An application state this service cannot have written."""


@dataclass(frozen=True, slots=True)
class StreamState:
    """A flow's place in its stream, as a handoff carries it: ``| Stream Id (32) |
    Acknowledged (64) | Sent (64) |``."""

    stream_id: int
    acknowledged: int
    sent: int

    def encode(self) -> bytes:
        return _STATE.pack(self.stream_id, self.acknowledged, self.sent)

    @classmethod
    def decode(cls, data: bytes, size: int) -> StreamState:
        if len(data) != _STATE.size:
            raise StateError(f"{len(data)} bytes (a stream state is {_STATE.size})")
        state = cls(*_STATE.unpack(data))
        if not state.acknowledged <= state.sent <= size:
            raise StateError(f"offsets {state.acknowledged}/{state.sent} outside the stream")
        return state


class StreamService:
    """The member's stream service (see the module docstring)."""

    def __init__(
        self, member: Member, size: int, handoff_every: int = 0, window: int = DEFAULT_WINDOW
    ) -> None:
        self.member = member
        self.size = size
        self.handoff_every = handoff_every
        self.window = window
        self._states: dict[tuple[IPv6Address, int, int], StreamState] = {}
        self.counters: dict[str, int] = {"malformed": 0, "bad_state": 0, "resumed": 0}

    def received(self, flow: Flow, payload: bytes) -> None:
        try:
            get = Get.parse(payload)
        except WireError:
            self.counters["malformed"] += 1
            return
        if get.offset > self.size:
            self.counters["malformed"] += 1
            return
        state = self._states.get(flow.key)
        if state is None or state.stream_id != get.stream_id:
            state = StreamState(get.stream_id, get.offset, get.offset)
            start = get.offset
        elif get.offset > state.acknowledged:
            start = max(state.sent, get.offset)  # what lies before is on its way
        else:
            start = get.offset  # the same acknowledgement again: the client lost some
        end = min(get.offset + self.window, self.size)
        self._send(flow, get.stream_id, start, end)
        self._states[flow.key] = StreamState(
            get.stream_id, max(state.acknowledged, get.offset), max(state.sent, end)
        )
        if self.handoff_every and flow.requests % self.handoff_every == 0:
            self.member.request_handoff(flow.client)

    def _send(self, flow: Flow, stream_id: int, start: int, end: int) -> None:
        member = self.member.own_address
        if start >= self.size:  # nothing left: say where the stream ends
            flow.send(
                Data(
                    stream_id=stream_id, offset=self.size, member=member, data=b"", end=True
                ).emit()
            )
            return
        offset = start
        body = b"".join(generated_body(end, stream_id, start))
        for at in range(0, len(body), CHUNK):
            piece = body[at : at + CHUNK]
            last = offset + len(piece) == self.size
            flow.send(
                Data(stream_id=stream_id, offset=offset, member=member, data=piece, end=last).emit()
            )
            offset += len(piece)

    def export_state(self, flow: Flow) -> bytes:
        state = self._states.get(flow.key)
        return state.encode() if state is not None else b""

    def handed_in(self, flow: Flow, state: bytes) -> None:
        if not state:
            return
        try:
            self._states[flow.key] = StreamState.decode(state, self.size)
        except StateError:
            self.counters["bad_state"] += 1  # the flow starts afresh from the client's next GET
            return
        self.counters["resumed"] += 1

    def forget(self, flow: Flow) -> None:
        self._states.pop(flow.key, None)


class StreamReader:
    """A client reading stream ``stream_id`` (sans-I/O): :meth:`start` and :meth:`expired`
    give a GET to send, :meth:`received` takes a datagram and may give one. Bytes are taken in
    order only; a GET acknowledges each half ``window`` read, and the caller sends
    :meth:`expired`'s GET when nothing came for a while. ``counters``: ``duplicate`` (a DATA
    before the offset read to), ``ahead`` (after it: one before was lost), ``wrong``, and
    ``from.<member>`` (bytes each member sent that were taken)."""

    def __init__(self, stream_id: int, window: int = DEFAULT_WINDOW) -> None:
        self.stream_id = stream_id
        self.window = window
        self.offset = 0  # bytes read, in order
        self.data: list[bytes] = []
        self.done = False
        self._acknowledged = 0
        self.counters: dict[str, int] = {}

    def start(self) -> bytes:
        return Get(stream_id=self.stream_id, offset=0).emit()

    def expired(self) -> bytes:
        self._count("retried")
        self._acknowledged = self.offset
        return Get(stream_id=self.stream_id, offset=self.offset).emit()

    def received(self, payload: bytes) -> bytes | None:
        try:
            data = Data.parse(payload)
        except WireError:
            self._count("wrong")
            return None
        if data.stream_id != self.stream_id:
            self._count("wrong")
            return None
        if data.offset != self.offset:
            self._count("duplicate" if data.offset < self.offset else "ahead")
            return None
        if self.done:
            return None
        self.data.append(data.data)
        self.offset += len(data.data)
        self._count(f"from.{data.member}", len(data.data))
        if data.end:
            self.done = True
            return None
        if self.offset - self._acknowledged >= self.window // 2:
            self._acknowledged = self.offset
            return Get(stream_id=self.stream_id, offset=self.offset).emit()
        return None

    def _count(self, name: str, amount: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount
