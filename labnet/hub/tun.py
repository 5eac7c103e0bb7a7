"""TUN devices for hub links of kind ``tun``: a kernel network stack attached to the hub directly.

A :class:`TunDevice` is a layer-3 TUN device without packet information (``IFF_TUN |
IFF_NO_PI``, linux/if_tun.h): each read returns one IP packet, each write injects one. It is
opened non-blocking through ``/dev/net/tun`` with the ``TUNSETIFF`` ioctl (no python-pytun
needed), and is not persistent, so the kernel deletes it when the last descriptor closes: when
the hub closes it, and also when the hub is killed. :meth:`TunDevice.attach` may move it into
another network namespace (``ip link set DEV netns NS``): the descriptor stays with the opener,
which keeps reading and writing the device's packets, as Mininet's hosts are served.

Reads and writes go through an unbuffered ``FileIO``, whose ``readinto`` and ``write`` return
None on ``EAGAIN`` instead of raising: cheaper per packet than ``os.read``/``os.write``, and
``readinto`` fills a buffer the caller reuses.
"""

from __future__ import annotations

import fcntl
import io
import os
import struct
import subprocess
from collections.abc import Sequence
from ipaddress import IPv6Interface, IPv6Network
from typing import Final

TUNSETIFF: Final = 0x400454CA  # _IOW('T', 202, int)
IFF_TUN: Final = 0x0001
IFF_NO_PI: Final = 0x1000
IFNAMSIZ: Final = 16
_IFREQ: Final = struct.Struct(f"{IFNAMSIZ}sH22x")  # struct ifreq: name, ifr_flags, union padding
DEFAULT_MTU: Final = 1500


class TunError(OSError):
    """A device that could not be created or configured; the message names the ``ip`` command
    or system call that failed."""


class TunDevice:
    """One TUN device, open and non-blocking. ``name`` may hold ``%d`` for the kernel to number
    it; :attr:`name` is the name it got. Call :meth:`close` (or let the process end) to delete it.
    """

    __slots__ = ("fd", "file", "name", "netns")

    def __init__(self, name: str = "hub%d", mtu: int = DEFAULT_MTU) -> None:
        if not 0 < len(name.encode()) < IFNAMSIZ:
            raise TunError(f"device name {name!r} must be 1-15 bytes")
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            request = _IFREQ.pack(name.encode(), IFF_TUN | IFF_NO_PI)
            try:
                reply = fcntl.ioctl(fd, TUNSETIFF, request)
            except OSError as error:
                raise TunError(error.errno, f"TUNSETIFF {name}: {error.strerror}") from None
            self.name = _IFREQ.unpack(reply)[0].rstrip(b"\0").decode()
            self.file = io.FileIO(fd, "r+", closefd=True)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.netns: str | None = None
        _ip(None, "link", "set", self.name, "mtu", str(mtu))

    def attach(
        self,
        netns: str | None = None,
        addresses: Sequence[IPv6Interface] = (),
        routes: Sequence[IPv6Network] = (),
    ) -> None:
        """Move the device into ``netns`` (a name under /run/netns; None: stay here), give the
        kernel there ``addresses`` (no duplicate address detection) and ``routes`` through the
        device, and bring it up."""
        if netns is not None:
            _ip(None, "link", "set", self.name, "netns", netns)
            self.netns = netns
        for address in addresses:
            _ip(self.netns, "-6", "addr", "add", str(address), "dev", self.name, "nodad")
        _ip(self.netns, "link", "set", self.name, "up")
        for route in routes:
            _ip(self.netns, "-6", "route", "replace", str(route), "dev", self.name)

    def close(self) -> None:
        """Close the descriptor: the kernel deletes the device, wherever it is."""
        self.file.close()


def _ip(netns: str | None, *args: str) -> None:
    command = ["ip", *(("-n", netns) if netns else ()), *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TunError(f"{' '.join(command)}: {error}") from None
    if result.returncode != 0:
        raise TunError(f"{' '.join(command)}: {result.stderr.strip() or result.returncode}")
