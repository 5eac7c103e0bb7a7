"""The distributed server's membership heartbeats (:mod:`mip6.dserver.datagram`) as seen on the
wire: UDP datagrams between members' own addresses, a header in the clear (version, epoch,
counter, the sender's address) and one AES-GCM sealed HEARTBEAT or HEARTBEAT_ANSWER. They come
every 100 ms, so a chart collapses them into runs: with the group key each is opened by the
members' own :class:`~mip6.dserver.datagram.HeartbeatReceiver` (a datagram that does not open
is said to be so), without it they are named by their clear header alone.
"""

from __future__ import annotations

from ipaddress import IPv6Address
from typing import Final

from mip6.chart.label import Kind, Label
from mip6.dserver.datagram import (
    HEADER_LENGTH,
    MAX_MESSAGE,
    TAG_LENGTH,
    VERSION,
    HeartbeatReceiver,
)
from mip6.wire.udp import UdpDatagram

SENDER_OFFSET: Final = HEADER_LENGTH - 16  # the header's last field: the sender's address
RESERVED: Final = slice(1, 4)
OPENED: Final = "membership heartbeats"
SEALED: Final = "membership heartbeats (encrypted)"
UNOPENED: Final = "membership heartbeats (not opened: another group key, or replayed)"


class HeartbeatLabeler:
    """``group_key``: the group's pre-shared key, or None to name heartbeats by their header."""

    def __init__(self, group_key: bytes | None = None) -> None:
        self._receiver = HeartbeatReceiver(group_key) if group_key is not None else None

    def datagram(self, source: IPv6Address, datagram: UdpDatagram) -> Label | None:
        """The label of a heartbeat datagram from ``source``; None when it is not one."""
        data = datagram.payload
        if not HEADER_LENGTH + TAG_LENGTH <= len(data) <= HEADER_LENGTH + MAX_MESSAGE + TAG_LENGTH:
            return None
        if data[0] != VERSION or data[RESERVED] != bytes(3):
            return None
        if data[SENDER_OFFSET:HEADER_LENGTH] != source.packed:
            return None
        if self._receiver is None:
            run = SEALED
        else:
            run = OPENED if self._receiver.open(data) is not None else UNOPENED
        return Label(Kind.DATA, "", run, len(data), "datagrams")
