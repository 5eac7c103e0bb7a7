"""IPv6 fragmentation and reassembly for the host (RFC 8200 4.5), sans-I/O.

:class:`Reassembler` puts received fragments back together with bounded memory: at most
``max_bytes`` buffered (fragment bytes plus a fixed cost per fragment and per datagram, so a
flood of tiny fragments is bounded too) and ``max_datagrams`` reassemblies at once; when either
is reached the oldest reassemblies go (a flood of incomplete fragments pushes out its own
oldest, and a datagram that arrives whole within the flood's turnover still completes).
Its rules:

- RFC 8200 4.5: the Per-Fragment headers and the Next Header come from the fragment whose
  offset is zero; a fragment with M set whose length is not a multiple of 8, or one that would
  make the reassembled Payload Length exceed 65,535, is discarded with a Parameter Problem
  (code 0, pointing at the Payload Length, or at the Fragment Offset); a first fragment without
  the whole header chain through the upper-layer header (RFC 7112) with code 3, pointer 0;
  60 seconds after a datagram's first-arriving fragment it is abandoned, with a Time Exceeded
  (code 1) if the fragment of offset zero had come.
- RFC 5722: a fragment overlapping another of the same datagram abandons the whole datagram,
  silently; its later fragments are discarded until the datagram's 60 seconds are over. An
  exact duplicate (same offset, length, M flag and bytes) is dropped alone, as RFC 5722 4
  allows ("fragments may be duplicated in the network").
- Fragments whose lengths contradict each other (data beyond the last fragment's end, two last
  fragments ending at different places) abandon the datagram as an overlap does.

Atomic fragments (RFC 6946: offset 0, M clear) never reach the reassembler: the host takes the
Fragment header out (:func:`strip_atomic`) and processes the packet on its own.

:func:`fragment` cuts a packet the host sends into fragments of at most a given size.

Every drop is a :class:`Drop` value, reported to the owner's ``on_drop`` (the host counts
them by name).
"""

from __future__ import annotations

import enum
import struct
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from mip6.wire import icmpv6 as icmp
from mip6.wire import protocols

REASSEMBLY_TIMEOUT = 60.0  # RFC 8200 4.5: seconds from the first-arriving fragment
MAX_BYTES = 4 * 1024 * 1024  # Linux's net.ipv6.ip6frag_high_thresh
MAX_DATAGRAMS = 256
# What one buffered fragment and one datagram cost beyond their bytes (the Python objects that
# hold them, as tracemalloc measures them, rounded up), so the bound covers a flood of tiny
# fragments as well as one of big ones; the first fragment is kept whole, with its header.
FRAGMENT_COST = 160
FIRST_FRAGMENT_COST = 512
DATAGRAM_COST = 512
MAX_PAYLOAD = 0xFFFF  # RFC 8200 3: Payload Length is 16 bits (no jumbograms here)

#   RFC 8200 4.5, the Fragment header:
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |                         Identification                        |
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
FRAGMENT_HEADER_LENGTH = 8
FRAGMENT_OFFSET = 2  # Fragment Offset (13 bits, 8-octet units), Res, M
IDENTIFICATION = 4
PAYLOAD_LENGTH = 4  # in the IPv6 header
NEXT_HEADER = 6  # in the IPv6 header
_FRAGMENT = struct.Struct("!BBHI")
_LENGTH = struct.Struct("!H")

_OPTIONS_HEADERS = (protocols.HOP_BY_HOP, protocols.DESTINATION_OPTIONS)
_EXTENSION_HEADERS = frozenset((*_OPTIONS_HEADERS, protocols.ROUTING, protocols.FRAGMENT))
# RFC 7112 5: the first fragment carries the whole header chain, the upper-layer header
# included; these are the fixed parts of the ones the host reads.
_UPPER_HEADER_LENGTH = {protocols.TCP: 20, protocols.UDP: 8, protocols.ICMPV6: 4}


class Drop(enum.Enum):
    """Why a fragment or a whole datagram was discarded (the host counts ``fragment_<value>``)."""

    LENGTH_NOT_MULTIPLE_OF_8 = "length_not_multiple_of_8"  # RFC 8200 4.5, PP code 0
    TOO_BIG = "too_big"  # RFC 8200 4.5: reassembled Payload Length over 65,535, PP code 0
    INCOMPLETE_CHAIN = "incomplete_chain"  # RFC 8200 4.5, RFC 7112: PP code 3
    OVERLAP = "overlap"  # RFC 5722: the datagram abandoned
    ABANDONED = "abandoned"  # a later fragment of a datagram abandoned for an overlap
    DUPLICATE = "duplicate"  # RFC 5722 4: an exact duplicate, dropped alone
    INCONSISTENT = "inconsistent"  # lengths that contradict each other: abandoned
    TIMEOUT = "timeout"  # RFC 8200 4.5: 60 s after the first-arriving fragment
    EVICTED = "evicted"  # pushed out by newer ones at the memory bound


class Header(NamedTuple):
    """One extension header of a packet: its type, where the Next Header byte that names it is,
    and where it starts and ends."""

    kind: int
    named_at: int
    start: int
    end: int


def headers(data: bytes, end: int) -> Iterator[Header]:
    """The extension headers of ``data[:end]`` in order (a packet :func:`mip6.wire.walk.walk`
    accepted, so every length is in bounds), up to and including the first Fragment header;
    then one last entry whose ``kind`` is the header that follows (an upper layer, 59 for
    none), ``start`` where it starts and ``end`` equal to ``end``."""
    kind, named_at, offset = data[NEXT_HEADER], NEXT_HEADER, 40
    while kind in _EXTENSION_HEADERS and offset + 2 <= end:
        if kind == protocols.FRAGMENT:
            stop = offset + FRAGMENT_HEADER_LENGTH
        else:
            stop = offset + ((data[offset + 1] + 1) << 3)
        yield Header(kind, named_at, offset, stop)
        if kind == protocols.FRAGMENT:
            return
        kind, named_at, offset = data[offset], offset, stop
    yield Header(kind, named_at, offset, end)


class Fragment(NamedTuple):
    """Where a packet's Fragment header is and what it says."""

    named_at: int  # the Next Header byte that names the Fragment header
    at: int  # the Fragment header's first byte: the Per-Fragment headers end here
    next_header: int
    offset: int  # in bytes (the field's 8-octet units times 8)
    more: bool
    identification: int


def find_fragment(data: bytes) -> Fragment | None:
    """The first Fragment header of ``data`` (accepted by :func:`mip6.wire.walk.walk`)."""
    end = 40 + _LENGTH.unpack_from(data, PAYLOAD_LENGTH)[0]
    for header in headers(data, end):
        if header.kind == protocols.FRAGMENT and header.end <= end:
            next_header, _, offset_flags, identification = _FRAGMENT.unpack_from(data, header.start)
            return Fragment(
                header.named_at,
                header.start,
                next_header,
                offset_flags & 0xFFF8,
                bool(offset_flags & 1),
                identification,
            )
    return None


def _join(per_fragment: bytes | memoryview, named_at: int, next_header: int, rest: bytes) -> bytes:
    """``per_fragment`` (IPv6 header and Per-Fragment headers) followed by ``rest``, with the
    byte at ``named_at`` set to ``next_header`` and the Payload Length fixed."""
    out = bytearray(per_fragment)
    out[named_at] = next_header
    out += rest
    _LENGTH.pack_into(out, PAYLOAD_LENGTH, len(out) - 40)
    return bytes(out)


def strip_atomic(data: bytes, found: Fragment) -> bytes:
    """RFC 6946 4: an atomic fragment is processed on its own: the packet without its Fragment
    header."""
    end = 40 + _LENGTH.unpack_from(data, PAYLOAD_LENGTH)[0]
    rest = data[found.at + FRAGMENT_HEADER_LENGTH : end]
    return _join(memoryview(data)[: found.at], found.named_at, found.next_header, rest)


def fragment(packet: bytes, size: int, identification: int) -> list[bytes]:
    """``packet`` (whole, with no Fragment header) as fragments of at most ``size`` bytes
    (RFC 8200 4.5). The Per-Fragment headers, repeated in every fragment, are the IPv6 header
    and every extension header up to and including the last Routing header, else the
    Hop-by-Hop Options header; and a Destination Options header carrying a Home Address option
    (RFC 3775 6.3: "before the Fragment Header"). Every fragment but the last carries a
    multiple of 8 bytes of the rest."""
    end = 40 + _LENGTH.unpack_from(packet, PAYLOAD_LENGTH)[0]
    per_fragment_end, named_at = 40, NEXT_HEADER
    for header in headers(packet, end):
        if header.kind == protocols.FRAGMENT:
            raise ValueError("the packet is a fragment already")
        if (
            header.kind == protocols.HOP_BY_HOP
            or header.kind == protocols.ROUTING
            or (header.kind == protocols.DESTINATION_OPTIONS and _has_home_address(packet, header))
        ):
            per_fragment_end, named_at = header.end, header.start
    room = (size - per_fragment_end - FRAGMENT_HEADER_LENGTH) & ~7
    if room < 8:
        raise ValueError(f"{size} bytes leave no room for a fragment's data")
    head = memoryview(packet)[:per_fragment_end]
    next_header = packet[named_at]
    fragments = []
    for offset in range(per_fragment_end, end, room):
        chunk = packet[offset : min(offset + room, end)]
        more = offset + room < end
        header = _FRAGMENT.pack(next_header, 0, (offset - per_fragment_end) | more, identification)
        fragments.append(_join(head, named_at, protocols.FRAGMENT, header + chunk))
    return fragments


def _has_home_address(data: bytes, header: Header) -> bool:
    offset = header.start + 2
    while offset < header.end:
        if data[offset] == 0:  # Pad1
            offset += 1
            continue
        if data[offset] == 201:  # RFC 3775 6.3: the Home Address option
            return True
        offset += 2 + data[offset + 1]
    return False


def complete_chain(data: bytes, found: Fragment, end: int) -> bool:
    """RFC 7112 5 for a first fragment: the extension headers after the Fragment header and the
    upper-layer header's fixed part all lie within ``data[:end]``."""
    kind, offset = found.next_header, found.at + FRAGMENT_HEADER_LENGTH
    for _ in range(32):
        if kind not in _EXTENSION_HEADERS:
            return offset + _UPPER_HEADER_LENGTH.get(kind, 0) <= end
        if offset + 2 > end:
            return False
        stop = offset + (
            FRAGMENT_HEADER_LENGTH if kind == protocols.FRAGMENT else (data[offset + 1] + 1) << 3
        )
        if stop > end:
            return False
        kind, offset = data[offset], stop
    return False


@dataclass(frozen=True, slots=True)
class Refused:
    """A fragment discarded; ``error``: the ICMPv6 error to answer with (its invoking packet
    left empty for the sender's error path to fill), or None to stay silent."""

    cause: Drop
    error: icmp.ParameterProblem | None = None


@dataclass(frozen=True, slots=True)
class Expired:
    """A datagram abandoned at its timeout; ``first``: its fragment of offset zero, if it
    came (RFC 8200 4.5: then answered with a Time Exceeded, code 1)."""

    first: bytes | None


class _Datagram:
    """One reassembly: its fragments as sorted, disjoint byte ranges of the Fragmentable Part."""

    __slots__ = (
        "abandoned",
        "cost",
        "deadline",
        "first",
        "pieces",
        "received",
        "starts",
        "total",
    )

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.starts: list[int] = []
        self.pieces: list[tuple[int, int, bool, bytes | memoryview]] = []  # start, end, M, data
        self.received = 0
        self.total: int | None = None  # known once the last fragment (M clear) came
        self.first: tuple[bytes, Fragment] | None = None
        self.cost = DATAGRAM_COST
        self.abandoned = False


Key = tuple[bytes, bytes, int]  # RFC 8200 4.5: source, destination, Identification


class Reassembler:
    """Fragments in, whole packets out (see the module docstring). ``max_bytes`` bounds what
    is buffered (bytes), ``max_datagrams`` the reassemblies at once; ``timeout`` in seconds;
    ``on_drop`` hears every drop: one per discarded fragment, one per abandoned datagram."""

    def __init__(
        self,
        *,
        on_drop: Callable[[Drop], None],
        max_bytes: int = MAX_BYTES,
        max_datagrams: int = MAX_DATAGRAMS,
        timeout: float = REASSEMBLY_TIMEOUT,
    ) -> None:
        smallest = DATAGRAM_COST + FIRST_FRAGMENT_COST + FRAGMENT_COST + 1280
        if max_bytes < smallest or max_datagrams < 1 or timeout <= 0:
            raise ValueError("reassembly needs room for one minimum-size datagram")
        self.on_drop = on_drop
        self.max_bytes = max_bytes
        self.max_datagrams = max_datagrams
        self.timeout = timeout
        self.buffered = 0  # bytes, as costed above
        self._datagrams: dict[Key, _Datagram] = {}  # oldest first: deadline order too

    def __len__(self) -> int:
        return len(self._datagrams)

    def next_deadline(self) -> float | None:
        for datagram in self._datagrams.values():
            return datagram.deadline
        return None

    def expire(self, now: float) -> list[Expired]:
        """The datagrams whose 60 seconds are over, oldest first (those abandoned for an
        overlap go silently: RFC 5722 asks for no ICMP error)."""
        expired = []
        datagrams = self._datagrams
        while datagrams:
            key, datagram = next(iter(datagrams.items()))
            if datagram.deadline > now:
                break
            self._remove(key)
            if not datagram.abandoned:
                self.on_drop(Drop.TIMEOUT)
                expired.append(Expired(datagram.first[0] if datagram.first else None))
        return expired

    def receive(self, now: float, data: bytes, found: Fragment) -> bytes | Refused | None:
        """One fragment (``found`` from :func:`find_fragment`, not atomic): the reassembled
        packet when it completes one, :class:`Refused` when it is discarded (reported to
        ``on_drop`` as well), None when it is kept for later."""
        refused = self._receive(now, data, found)
        if isinstance(refused, Refused):
            self.on_drop(refused.cause)
        return refused

    def _receive(self, now: float, data: bytes, found: Fragment) -> bytes | Refused | None:
        end = 40 + _LENGTH.unpack_from(data, PAYLOAD_LENGTH)[0]
        start = found.at + FRAGMENT_HEADER_LENGTH
        length = end - start
        if found.more and length % 8:
            # RFC 8200 4.5: "If the length of a fragment, as derived from the fragment
            # packet's Payload Length field, is not a multiple of 8 octets and the M flag of
            # that fragment is 1, then that fragment must be discarded and an ICMP Parameter
            # Problem, Code 0, message should be sent to the source of the fragment, pointing
            # to the Payload Length field of the fragment packet."
            return Refused(Drop.LENGTH_NOT_MULTIPLE_OF_8, _problem(0, PAYLOAD_LENGTH))
        if found.at - 40 + found.offset + length > MAX_PAYLOAD:
            # RFC 8200 4.5: "...the Payload Length of the packet reassembled from that fragment
            # would exceed 65,535 octets ... discarded and an ICMP Parameter Problem, Code 0,
            # ... pointing to the Fragment Offset field of the fragment packet."
            return Refused(Drop.TOO_BIG, _problem(0, found.at + FRAGMENT_OFFSET))
        if found.offset == 0 and not complete_chain(data, found, end):
            # RFC 8200 4.5 (RFC 7112 5): "...should be discarded and an ICMP Parameter
            # Problem, Code 3, should be sent to the source of the fragment, with the Pointer
            # field set to zero."
            return Refused(Drop.INCOMPLETE_CHAIN, _problem(3, 0))
        key = (data[8:24], data[24:40], found.identification)
        datagram = self._datagrams.get(key)
        if datagram is None:
            datagram = _Datagram(now + self.timeout)
        elif datagram.abandoned:
            return Refused(Drop.ABANDONED)
        piece_end = found.offset + length
        verdict = self._place(datagram, found.offset, piece_end, found.more, data, start)
        if verdict is Drop.DUPLICATE:
            return Refused(verdict)
        if verdict is not None:
            self._abandon(datagram)
            return Refused(verdict)
        cost = FRAGMENT_COST + (len(data) + FIRST_FRAGMENT_COST if found.offset == 0 else length)
        if key not in self._datagrams:
            self._make_room(cost + DATAGRAM_COST, new=True)
            self._datagrams[key] = datagram
            self.buffered += DATAGRAM_COST
        else:
            self._make_room(cost, new=False, keep=key)
        if self.buffered + cost > self.max_bytes:  # it alone is too big for the bound
            self._remove(key)
            return Refused(Drop.EVICTED)
        piece: bytes | memoryview
        if found.offset == 0:
            datagram.first = (data, found)
            piece = memoryview(data)[start:end]  # kept whole for the Time Exceeded anyway
        else:
            piece = data[start:end]
        index = bisect_right(datagram.starts, found.offset)
        datagram.starts.insert(index, found.offset)
        datagram.pieces.insert(index, (found.offset, piece_end, found.more, piece))
        datagram.received += length
        datagram.cost += cost
        self.buffered += cost
        if datagram.total is None or datagram.received != datagram.total or not datagram.first:
            return None
        self._remove(key)
        first, first_found = datagram.first
        if first_found.at - 40 + datagram.total > MAX_PAYLOAD:
            return Refused(Drop.TOO_BIG)  # the first fragment's headers are longer than others'
        return _join(
            memoryview(first)[: first_found.at],
            first_found.named_at,
            first_found.next_header,
            b"".join(piece for _, _, _, piece in datagram.pieces),
        )

    def _place(
        self, datagram: _Datagram, start: int, end: int, more: bool, data: bytes, at: int
    ) -> Drop | None:
        """Whether bytes [start, end) may join ``datagram``: None if so (the datagram's last
        byte set from a last fragment), else why not."""
        index = bisect_right(datagram.starts, start)
        if index:
            before = datagram.pieces[index - 1]
            if before[1] > start:
                if before[:3] == (start, end, more) and before[3] == data[at : at + end - start]:
                    return Drop.DUPLICATE
                return Drop.OVERLAP  # RFC 5722
        if index < len(datagram.pieces) and datagram.pieces[index][0] < end:
            return Drop.OVERLAP
        if datagram.total is not None and (
            end > datagram.total or (not more and end != datagram.total)
        ):
            return Drop.INCONSISTENT
        if not more:
            if datagram.pieces and datagram.pieces[-1][1] > end:
                return Drop.INCONSISTENT
            datagram.total = end
        return None

    def _abandon(self, datagram: _Datagram) -> None:
        """RFC 5722: "reassembly of that packet must be abandoned and all the fragments that
        have been received for that packet must be discarded"; the entry stays, empty, until
        its deadline so that the datagram's later fragments are discarded too."""
        self.buffered -= datagram.cost - DATAGRAM_COST
        datagram.cost = DATAGRAM_COST
        datagram.starts, datagram.pieces, datagram.first = [], [], None
        datagram.abandoned = True

    def _make_room(self, cost: int, *, new: bool, keep: Key | None = None) -> None:
        """Evict the oldest reassemblies (never ``keep``) until ``cost`` more bytes and, for a
        ``new`` datagram, one more entry fit."""
        datagrams = self._datagrams
        for key in list(datagrams):
            if self.buffered + cost <= self.max_bytes and (
                not new or len(datagrams) < self.max_datagrams
            ):
                return
            if key != keep:
                abandoned = datagrams[key].abandoned
                self._remove(key)
                if not abandoned:
                    self.on_drop(Drop.EVICTED)

    def _remove(self, key: Key) -> None:
        self.buffered -= self._datagrams.pop(key).cost


def _problem(code: int, pointer: int) -> icmp.ParameterProblem:
    return icmp.ParameterProblem(code=code, pointer=pointer)
