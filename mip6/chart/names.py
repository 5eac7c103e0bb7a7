"""Lifeline names: an address is named by the node that owns it when a topology says so (a
node may own several: its own address, a mobile node's home and care-of addresses), else by the
address itself. At most :data:`MAX_LIFELINES` distinct names; the addresses beyond share
:data:`OTHERS`, so a capture of a scan cannot make the chart (or this table) grow without bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv6Address
from typing import Final

MAX_LIFELINES: Final = 24
OTHERS: Final = "others"


class Names:
    """``known``: addresses and the node each belongs to; ``order``: the nodes' lifelines, left
    to right, ahead of the names found in the capture (which follow in order of appearance)."""

    def __init__(
        self, known: Mapping[IPv6Address, str] | None = None, order: Sequence[str] = ()
    ) -> None:
        self._known = dict(known or {})
        self.order = tuple(dict.fromkeys([*order, *self._known.values()]))
        self._unknown: dict[IPv6Address, str] = {}

    def of(self, address: IPv6Address) -> str:
        name = self._known.get(address) or self._unknown.get(address)
        if name is not None:
            return name
        if len(self.order) + len(self._unknown) >= MAX_LIFELINES:
            return OTHERS
        self._unknown[address] = name = str(address)
        return name

    def knows(self, name: str) -> bool:
        """Whether ``name`` is a node's (a capture named after it is that node's link)."""
        return name in self.order
