"""Captures merged into hops: who sent each packet to whom, and when it left and arrived.

A capture is either a link's (the labnet hub writes one per node link, recording every packet
on the link it arrived by and the link it left by, the two records differing only in the Hop
Limit; the simulator's captures do the same at send and at arrival time) or a vantage point's
(``link`` None: one tcpdump somewhere). The same packet seen by several captures within
:data:`WINDOW_NS` is one hop, from the node of the link that saw it first to the node of the
link that saw it last (the links between are ``via``). A packet seen once is placed by its
addresses: from the link's node to the destination's, or from the source's to the link's node.

Ties at one timestamp (the hub stamps both records of a packet alike) are broken by the Hop
Limit: the record with the higher one is the earlier hop. State is bounded by the window: a
packet not matched within it is final.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import Final

from mip6.chart.names import Names

WINDOW_NS: Final = 2_000_000_000  # the longest one-way trip a packet is followed for
HOP_LIMIT_OFFSET: Final = 7
SOURCE_OFFSET: Final = 8
DESTINATION_OFFSET: Final = 24
HEADER_LENGTH: Final = 40


@dataclass(frozen=True, slots=True)
class Seen:
    """One packet as capture number ``capture`` recorded it; ``link`` the node whose link the
    capture is of (None: a vantage point)."""

    time_ns: int
    capture: int
    link: str | None
    data: bytes


@dataclass(frozen=True, slots=True)
class Hop:
    """One packet from ``sender`` to ``receiver``: sent at ``start_ns``, arrived (or last seen)
    at ``end_ns``."""

    start_ns: int
    end_ns: int
    sender: str
    receiver: str
    data: bytes
    via: tuple[str, ...] = ()
    lost: bool = False  # seen leaving, never arriving, though its receiver's link is captured


@dataclass(slots=True)
class _Group:
    first: Seen
    captures: set[int] = field(default_factory=set)
    links: list[str] = field(default_factory=list)
    last_ns: int = 0

    def add(self, seen: Seen) -> None:
        self.captures.add(seen.capture)
        if seen.link is not None:
            self.links.append(seen.link)
        self.last_ns = seen.time_ns


def _key(data: bytes) -> bytes:
    """The packet with its Hop Limit zeroed: what stays the same from link to link."""
    if len(data) < HEADER_LENGTH:
        return data
    return data[:HOP_LIMIT_OFFSET] + b"\0" + data[HOP_LIMIT_OFFSET + 1 :]


def _order(seen: Seen) -> tuple[int, int]:
    hop_limit = seen.data[HOP_LIMIT_OFFSET] if len(seen.data) > HOP_LIMIT_OFFSET else 0
    return seen.time_ns, -hop_limit


def _ends(data: bytes, names: Names) -> tuple[str, str] | None:
    """The lifelines of the packet's source and destination; None when it is too short to
    name them."""
    if len(data) < HEADER_LENGTH:
        return None
    source = IPv6Address(data[SOURCE_OFFSET : SOURCE_OFFSET + 16])
    destination = IPv6Address(data[DESTINATION_OFFSET : DESTINATION_OFFSET + 16])
    return names.of(source), names.of(destination)


def _hop(group: _Group, names: Names, captured: frozenset[str]) -> Hop:
    data, start, end = group.first.data, group.first.time_ns, group.last_ns
    links = group.links
    if len(links) >= 2:
        return Hop(start, end, links[0], links[-1], data, tuple(links[1:-1]))
    ends = _ends(data, names)
    if ends is None:  # a packet cut short: where it was seen, if that is known
        here = links[0] if links else names.of(IPv6Address(0))
        return Hop(start, end, here, here, data)
    source, destination = ends
    if not links:
        return Hop(start, end, source, destination, data)
    link = links[0]
    if source == link:
        return Hop(start, end, link, destination, data, lost=destination in captured)
    if destination == link:
        return Hop(start, end, source, link, data)
    return Hop(start, end, source, destination, data, (link,))


def merge(
    captures: Iterable[Iterable[Seen]], names: Names, captured: frozenset[str] = frozenset()
) -> Iterator[Hop]:
    """Every capture's packets in time order, each packet once, as hops in order of sending.
    ``captured``: the nodes whose links the captures include, so a packet that left one of
    them for another and never arrived is known to be lost (or dropped on the way)."""
    everything = heapq.merge(*captures, key=_order)  # each capture is in time order
    open_groups: dict[bytes, deque[_Group]] = {}
    pending: deque[tuple[bytes, _Group]] = deque()  # in order of first sighting
    for seen in everything:
        while pending and pending[0][1].first.time_ns < seen.time_ns - WINDOW_NS:
            yield _close(open_groups, pending, names, captured)
        key = _key(seen.data)
        group = _joinable(open_groups.get(key), seen)
        if group is None:
            group = _Group(seen)
            open_groups.setdefault(key, deque()).append(group)
            pending.append((key, group))
        group.add(seen)
    while pending:
        yield _close(open_groups, pending, names, captured)


def _joinable(groups: deque[_Group] | None, seen: Seen) -> _Group | None:
    """The oldest group still open for ``seen``: one its capture has not recorded yet (a
    capture that records the same bytes twice saw two packets)."""
    for group in groups or ():
        if seen.capture not in group.captures:
            return group
    return None


def _close(
    open_groups: dict[bytes, deque[_Group]],
    pending: deque[tuple[bytes, _Group]],
    names: Names,
    captured: frozenset[str],
) -> Hop:
    key, group = pending.popleft()
    groups = open_groups[key]
    groups.remove(group)
    if not groups:
        del open_groups[key]
    return _hop(group, names, captured)
