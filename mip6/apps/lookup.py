"""A DNS-like request/response service over UDP (DSERVER.md section 8), for the distributed
server: a client asks for a name, the member answers with the name's value and says who it is.
Not DNS: the same shape (a 16-bit request id the client matches answers by, the question echoed
in the answer, one datagram each way), with a record every member holds alike (the first 8
bytes of the name's SHA-256), so that a client checks each answer, and the answering member's own
address in it, so that a client (or a test) sees which member answered which request.

Wire format, network byte order::

    QUERY  (client -> contact address):
        | Version (8) = 1 | Kind (8) = 1 | Request Id (16) | Name Length (8) | Name |
    ANSWER (member -> client):
        | Version (8) = 1 | Kind (8) = 2 | Request Id (16) | Value (64) | Member (128) |
        | Name Length (8) | Name |

The name is 1 to :data:`MAX_NAME` printable ASCII bytes (0x21-0x7e), as a DNS name's text.

:class:`LookupService` is the member's service (:class:`~mip6.dserver.udp.DatagramService`):
stateless, so a handoff carries nothing but the flow (traffic switching alone, SPEC-dserver
4.13). ``handoff_every``: after that many queries of a flow answered here, hand its client to
another member (the group's policy chooses); 0 never. A datagram that is not a query is
dropped and counted (``malformed``).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import TYPE_CHECKING

from mip6.wire.errors import Malformed, Truncated, WireError

if TYPE_CHECKING:
    from mip6.dserver.member import Member
    from mip6.dserver.udp import Flow

VERSION = 1
QUERY, ANSWER = 1, 2
MAX_NAME = 255
_QUERY = struct.Struct("!BBHB")  # version, kind, request id, name length
_ANSWER = struct.Struct("!BBHQ16sB")  # version, kind, request id, value, member, name length
DEFAULT_PORT = 53


def value_of(name: bytes) -> int:
    """The record every member holds for ``name``."""
    return int.from_bytes(hashlib.sha256(name).digest()[:8], "big")


def _check_name(name: bytes, offset: int) -> None:
    if not 1 <= len(name) <= MAX_NAME:
        raise Malformed(f"a name of {len(name)} bytes (1-{MAX_NAME})", offset, "name_length")
    for index, byte in enumerate(name):
        if not 0x21 <= byte <= 0x7E:
            raise Malformed(f"byte {byte:#04x} in the name", offset + 1 + index, "name")


def _head(data: bytes, layout: struct.Struct, kind: int) -> tuple[int, ...]:
    if len(data) < layout.size:
        raise Truncated("shorter than the header", len(data), "header")
    fields = layout.unpack_from(data)
    if fields[0] != VERSION:
        raise Malformed(f"version {fields[0]} (we speak {VERSION})", 0, "version")
    if fields[1] != kind:
        raise Malformed(f"kind {fields[1]}", 1, "kind")
    return fields


def _name(data: bytes, length_at: int, length: int) -> bytes:
    end = length_at + 1 + length
    if len(data) < end:
        raise Truncated("the name runs past the datagram", len(data), "name")
    if len(data) > end:
        raise Malformed("bytes after the name", end, "length")
    name = data[length_at + 1 : end]
    _check_name(name, length_at)
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    request_id: int
    name: bytes

    @classmethod
    def parse(cls, data: bytes) -> Query:
        _, _, request_id, length = _head(data, _QUERY, QUERY)
        return cls(request_id=request_id, name=_name(data, _QUERY.size - 1, length))

    def emit(self) -> bytes:
        _check_name(self.name, _QUERY.size - 1)
        return _QUERY.pack(VERSION, QUERY, self.request_id, len(self.name)) + self.name


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    request_id: int
    value: int
    member: IPv6Address  # the member that answered
    name: bytes

    @classmethod
    def parse(cls, data: bytes) -> Answer:
        _, _, request_id, value, member, length = _head(data, _ANSWER, ANSWER)
        return cls(
            request_id=request_id,
            value=value,
            member=IPv6Address(member),
            name=_name(data, _ANSWER.size - 1, length),
        )

    def emit(self) -> bytes:
        _check_name(self.name, _ANSWER.size - 1)
        head = _ANSWER.pack(
            VERSION, ANSWER, self.request_id, self.value, self.member.packed, len(self.name)
        )
        return head + self.name


class LookupService:
    """The member's lookup service (see the module docstring)."""

    def __init__(self, member: Member, handoff_every: int = 0) -> None:
        self.member = member
        self.handoff_every = handoff_every
        self.counters: dict[str, int] = {"malformed": 0}

    def received(self, flow: Flow, payload: bytes) -> None:
        try:
            query = Query.parse(payload)
        except WireError:
            self.counters["malformed"] += 1
            return
        answer = Answer(
            request_id=query.request_id,
            value=value_of(query.name),
            member=self.member.own_address,
            name=query.name,
        )
        flow.send(answer.emit())
        if self.handoff_every and flow.requests % self.handoff_every == 0:
            self.member.request_handoff(flow.client)

    def export_state(self, flow: Flow) -> bytes:
        return b""

    def handed_in(self, flow: Flow, state: bytes) -> None:
        """Stateless: the flow alone came."""

    def forget(self, flow: Flow) -> None:
        """Stateless: nothing to forget."""
