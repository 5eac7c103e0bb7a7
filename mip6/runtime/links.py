"""Links the daemon attaches engines to: a TUN device (python-pytun) or a UDP socket to a
labnet hub (one raw IPv6 packet per datagram, ARCHITECTURE 6). Each delivers received packets
to a callback and sends whole packets; an optional pcap tap records both directions."""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import logging
import os
import socket
import time
from collections.abc import Callable

from mip6.runtime import offload
from mip6.wire.pcap import PcapWriter

log = logging.getLogger(__name__)

Receiver = Callable[[bytes], None]
MAX_PACKET = 65_575  # a full IPv6 packet without jumbogram
READ_BUDGET = 64  # datagrams a UDP link reads per readable event
CLONE_NEWNET = 0x40000000  # sched.h
NETNS_DIR = "/run/netns"  # where `ip netns add NAME` mounts a namespace


def netns_path(name: str) -> str:
    """A namespace name as `ip netns` keeps it (``/run/netns/NAME``), or a path such as
    ``/proc/PID/ns/net`` as it is."""
    return name if name.startswith("/") else os.path.join(NETNS_DIR, name)


def enter_netns(name: str) -> None:
    """Move the calling thread into network namespace ``name`` (setns(2), through ctypes:
    os.setns is Python 3.12+). Sockets already open stay in the namespace they were made in;
    devices and sockets made from now on, by this thread and the threads and processes it
    starts, belong to ``name``. OSError if the namespace does not exist or we may not enter."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into network namespace {name}: {os.strerror(errno)}")
    finally:
        os.close(fd)
    log.info("entered network namespace %s", name)


class Link:
    """What the daemon needs of a link."""

    name: str
    tap: PcapWriter | None = None
    datagram_socket = False  # a socket: the fast path reads and writes it in batches

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    async def open(self, loop: asyncio.AbstractEventLoop, receive: Receiver) -> None:
        raise NotImplementedError

    def fileno(self) -> int:
        """The open descriptor: every read gives one packet, every write sends one."""
        raise NotImplementedError

    def received(self, data: bytes) -> None:
        """A packet read from the link: recorded, then handed to the receiver."""
        raise NotImplementedError

    def take_reading(self, reader: Callable[[], None]) -> None:
        """From now on ``reader`` reads the open link when it is readable (the daemon's fast
        path, :mod:`mip6.runtime.fast`), and hands what it does not carry to :meth:`received`."""
        raise NotImplementedError

    def close(self) -> None:
        if self.tap is not None:
            self.tap.close()
            self.tap = None

    def _record(self, data: bytes) -> None:
        if self.tap is not None:
            self.tap.write(data, time.time_ns())


class TunLink(Link):
    """A layer-3 TUN device without packet information headers (IFF_TUN | IFF_NO_PI): every
    read is one IPv6 packet, every write sends one. The device is created (or attached to, if
    it exists) and brought up; addresses and routes are the operator's (or labnet's).

    With ``offload`` (the shim's kernel device when the fast path reads it) the kernel's TCP
    hands over segments of up to 64 kB and leaves checksums to the daemon
    (:mod:`mip6.runtime.offload`): every read is a virtio_net header and such a packet, made
    into whole packets before anything looks at them, and every write carries a header."""

    def __init__(self, name: str, device: str, mtu: int = 1500, *, offload: bool = False) -> None:
        self.name = name
        self.device = device
        self.mtu = mtu
        self.offload = offload
        self.offload_errors = 0  # reads the Python path dropped (offload.OffloadError)
        self._tun: object | None = None
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._receive: Receiver | None = None

    async def open(self, loop: asyncio.AbstractEventLoop, receive: Receiver) -> None:
        import pytun

        flags = pytun.IFF_TUN | pytun.IFF_NO_PI | (offload.IFF_VNET_HDR if self.offload else 0)
        tun = pytun.TunTapDevice(name=self.device, flags=flags)
        tun.mtu = self.mtu
        self._tun = tun
        self._fd = tun.fileno()
        if self.offload:
            # before the device is up: the kernel's TCP sizes its segments from the features
            fcntl.ioctl(self._fd, offload.TUNSETOFFLOAD, offload.OFFLOADS)
        tun.up()
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        fcntl.fcntl(self._fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self._loop = loop
        self._receive = receive

        def readable() -> None:
            while True:
                try:
                    data = os.read(self._fd, MAX_PACKET)
                except BlockingIOError:
                    return
                except OSError as error:
                    log.warning("link %s: read failed: %s", self.name, error)
                    return
                if not self.offload:
                    self.received(data)
                    continue
                try:
                    packets = offload.packets(data)
                except offload.OffloadError as error:  # dropped, as a NIC drops it
                    self.offload_errors += 1
                    log.warning("link %s: %s", self.name, error)
                    continue
                for packet in packets:
                    self.received(packet)

        loop.add_reader(self._fd, readable)
        log.info("link %s: tun %s up", self.name, self.device)

    def fileno(self) -> int:
        return self._fd

    def received(self, data: bytes) -> None:
        assert self._receive is not None
        if data and data[0] >> 4 == 6:  # the kernel also hands us nothing else
            self._record(data)
            self._receive(data)

    def take_reading(self, reader: Callable[[], None]) -> None:
        assert self._loop is not None
        self._loop.remove_reader(self._fd)
        self._loop.add_reader(self._fd, reader)

    def send(self, data: bytes) -> None:
        self._record(data)
        try:
            if self.offload:
                os.writev(self._fd, (offload.PLAIN, data))
            else:
                os.write(self._fd, data)
        except OSError as error:  # e.g. the device went down: drop, as a link would
            log.warning("link %s: write failed: %s", self.name, error)

    def close(self) -> None:
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
        if self._tun is not None:
            self._tun.close()  # type: ignore[attr-defined]
            self._tun = None
        self._fd = -1
        super().close()


# A UDP link's socket buffers: the kernel's default receive buffer (net.core.rmem_default, about
# 200 kB: some 150 full-size packets) overflowed under a busy daemon (a client farm of 200, a chaos
# run: about one datagram in eight dropped there), a loss no topology asked for. 4 MiB is the
# hub's own size, a few thousand packets, like a NIC ring and its qdisc.
LINK_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)


def _large_buffers(sock: socket.socket) -> None:
    """LINK_SOCKET_BUFFER_BYTES each way: past net.core.[rw]mem_max as root (the FORCE
    options), else as much as those allow."""
    for forced, plain in ((_SO_RCVBUFFORCE, socket.SO_RCVBUF), (_SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, forced, LINK_SOCKET_BUFFER_BYTES)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, LINK_SOCKET_BUFFER_BYTES)


class UdpLink(Link):
    """One raw IPv6 packet per UDP datagram, to and from a labnet hub's port for this link.
    The socket is connected to the hub's port, so the kernel hands it no datagram from any
    other address (connect(2)). A datagram the socket cannot take now (a full send buffer) is
    dropped, as a link drops, and counted (``dropped``)."""

    datagram_socket = True

    def __init__(self, name: str, remote: tuple[str, int], local: tuple[str, int]) -> None:
        self.name = name
        self.remote = remote
        self.local = local
        self._sock: socket.socket | None = None
        self._receive: Receiver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0

    async def open(self, loop: asyncio.AbstractEventLoop, receive: Receiver) -> None:
        family = socket.AF_INET6 if ":" in self.remote[0] else socket.AF_INET
        infos = await loop.getaddrinfo(*self.remote, family=family, type=socket.SOCK_DGRAM)
        remote = infos[0][4]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        _large_buffers(sock)
        sock.bind(
            self.local
            if family == socket.AF_INET6
            else (self.local[0].replace("::", "0.0.0.0"), self.local[1])
        )
        sock.connect(remote)
        self._sock = sock
        self._receive = receive
        self._loop = loop

        def readable() -> None:
            # At most READ_BUDGET datagrams per event: a link that is always readable must not
            # keep the loop from its other callbacks (timers, the control socket)
            for _ in range(READ_BUDGET):
                try:
                    data = sock.recv(MAX_PACKET)
                except BlockingIOError:
                    return
                except ConnectionRefusedError:  # an earlier send found no hub: nothing to read
                    continue
                except OSError as error:
                    log.warning("link %s: receive failed: %s", self.name, error)
                    return
                self.received(data)

        loop.add_reader(sock.fileno(), readable)
        log.info("link %s: udp %s -> %s", self.name, sock.getsockname(), remote)

    def fileno(self) -> int:
        assert self._sock is not None
        return self._sock.fileno()

    def received(self, data: bytes) -> None:
        assert self._receive is not None
        self._record(data)
        self._receive(data)

    def take_reading(self, reader: Callable[[], None]) -> None:
        assert self._loop is not None
        self._loop.remove_reader(self.fileno())
        self._loop.add_reader(self.fileno(), reader)

    @property
    def local_address(self) -> tuple[str, int] | None:
        return None if self._sock is None else self._sock.getsockname()

    def send(self, data: bytes) -> None:
        if self._sock is None:
            return
        self._record(data)
        try:
            self._sock.send(data)
        except (BlockingIOError, ConnectionRefusedError):  # full, or no hub listening yet
            self.dropped += 1
        except OSError as error:
            self.dropped += 1
            log.warning("link %s: send failed: %s", self.name, error)

    def close(self) -> None:
        if self._sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        super().close()
