"""Arrival times from the kernel: a socket's receive timestamps on the monotonic clock.

A wall-clock target measures retransmission timing at the socket (SO_TIMESTAMPNS, the time
the kernel took the packet in), not when the tester got round to reading it."""

from __future__ import annotations

import socket
import struct
import time
from typing import Final

SO_TIMESTAMPNS: Final = getattr(socket, "SO_TIMESTAMPNS", 35)
ANCILLARY_SIZE: Final = 64  # room for one struct timespec


def enable(sock: socket.socket) -> None:
    """Have the kernel stamp every datagram or frame ``sock`` receives."""
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def arrival(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The kernel's receive time (wall clock) moved onto the monotonic clock; now if the
    kernel gave none."""
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
            seconds, nanoseconds = struct.unpack("@qq", value[:16])
            age = time.time() - (seconds + nanoseconds * 1e-9)
            return time.monotonic() - max(age, 0.0)
    return time.monotonic()
