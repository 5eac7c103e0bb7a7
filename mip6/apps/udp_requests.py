"""One client's request/response exchanges with a UDP service (:mod:`mip6.apps.lookup`, or the
echo of :mod:`mip6.apps.udp_echo`), sans-I/O: what a DNS stub resolver does, with the checks a
test of the distributed server needs. The caller sends the datagrams it is given, arms a timer
for each request at :attr:`Requester.timeout`, and hands back answers and expired timers.

- A request is retransmitted (the same datagram, the same request id) each ``timeout`` without
  its answer, at most ``retries`` times; then it has failed (``failed``).
- An answer is checked: a lookup answer's value against the record of its name, its name against
  the request's; an echo against the datagram sent. A wrong one is counted (``wrong``), never
  taken.
- The first right answer completes the request (``answered``; ``answered_by.<member>`` for a
  lookup, whose answers say which member answered). Another answer to it is ``duplicate``; and
  if it came from another member than the first, also ``two_members``: the distributed server
  answered one request from two members, which its UDP services must never do.
- Answers are matched by request id (16 bits, as DNS's), numbered per client from a random
  start; the answering member of the last :data:`REMEMBERED` requests is kept, an answer to an
  older one is counted ``unknown``.
"""

from __future__ import annotations

import enum
import hashlib
import random
import struct
from collections import OrderedDict
from dataclasses import dataclass
from ipaddress import IPv6Address

from mip6.apps.lookup import Answer, Query, value_of
from mip6.wire.errors import WireError

REMEMBERED = 1024  # requests whose answering member is kept (duplicates of older: "unknown")
ECHO_SIZE = 128  # bytes of an echo request: the seeds' access-latency datagram (SPEC 9.2)
_ECHO_ID = struct.Struct("!H")


class Service(enum.Enum):
    LOOKUP = "lookup"
    UDP_ECHO = "udp_echo"


@dataclass(slots=True)
class _Outstanding:
    datagram: bytes
    sent: float  # the first transmission
    tries: int = 1


class Requester:
    """One client's requests (see the module docstring); ``tag`` makes its names and echo
    payloads its own (e.g. its address)."""

    def __init__(
        self,
        service: Service,
        tag: bytes,
        rng: random.Random,
        *,
        timeout: float,
        retries: int,
    ) -> None:
        self.service = service
        self.tag = tag
        self.timeout = timeout
        self.retries = retries
        self._next_id = rng.randrange(1 << 16)
        self._outstanding: dict[int, _Outstanding] = {}
        # request id -> the member that answered it (None: an echo, which does not say)
        self._answered: OrderedDict[int, IPv6Address | None] = OrderedDict()
        self.counters: dict[str, int] = {}
        # seconds from a request's first transmission to its answer: the longest, the sum
        self.elapsed_max = 0.0
        self.elapsed_total = 0.0

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    def request(self, now: float) -> tuple[int, bytes]:
        """A new request: its id and datagram."""
        request_id = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFF
        self._answered.pop(request_id, None)  # an id used again after 65,536 requests
        datagram = self._datagram(request_id)
        self._outstanding[request_id] = _Outstanding(datagram, now)
        self._count("requests")
        return request_id, datagram

    def expired(self, now: float, request_id: int) -> bytes | None:
        """The request's timer: its datagram again, or None (answered meanwhile, or given up:
        ``failed``)."""
        outstanding = self._outstanding.get(request_id)
        if outstanding is None:
            return None
        if outstanding.tries > self.retries:
            del self._outstanding[request_id]
            self._count("failed")
            return None
        outstanding.tries += 1
        self._count("retried")
        return outstanding.datagram

    def answer(self, now: float, payload: bytes) -> int | None:
        """An answer datagram; the id of the request it completes, or None."""
        checked = self._check(payload)
        if checked is None:
            self._count("wrong")
            return None
        request_id, member = checked
        outstanding = self._outstanding.pop(request_id, None)
        if outstanding is None:
            if request_id not in self._answered:
                self._count("unknown")
                return None
            self._count("duplicate")
            first = self._answered[request_id]
            if member is not None and first is not None and member != first:
                self._count("two_members")
            return None
        self._answered[request_id] = member
        while len(self._answered) > REMEMBERED:
            self._answered.popitem(last=False)
        self._count("answered")
        if member is not None:
            self._count(f"answered_by.{member}")
        self.elapsed_max = max(self.elapsed_max, now - outstanding.sent)
        self.elapsed_total += now - outstanding.sent
        return request_id

    def _name(self, request_id: int) -> bytes:
        return b"r%d.%s.example" % (request_id, self.tag)

    def _datagram(self, request_id: int) -> bytes:
        if self.service is Service.LOOKUP:
            return Query(request_id=request_id, name=self._name(request_id)).emit()
        head = _ECHO_ID.pack(request_id)
        fill = hashlib.sha256(head + self.tag).digest()
        return (head + fill * (ECHO_SIZE // len(fill) + 1))[:ECHO_SIZE]

    def _check(self, payload: bytes) -> tuple[int, IPv6Address | None] | None:
        """(request id, answering member) of a right answer; None for a wrong one."""
        if self.service is Service.UDP_ECHO:
            if len(payload) != ECHO_SIZE:
                return None
            (request_id,) = _ECHO_ID.unpack_from(payload)
            return (request_id, None) if payload == self._datagram(request_id) else None
        try:
            answer = Answer.parse(payload)
        except WireError:
            return None
        if answer.name != self._name(answer.request_id) or answer.value != value_of(answer.name):
            return None
        return answer.request_id, answer.member

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1
