"""The hub's C fast path (``csrc/hub_fast.c``, built by ``_fast_build.py``), for server.py.

:class:`FastPath` holds, per link, what the C code needs to forward a packet without Python:
the socket or device descriptor, the UDP endpoint, whether the down direction is transparent,
whether the link is pinned, its capture buffer and its counters; plus a table of routing
decisions, (source, destination) -> link, that the hub fills from its Router. ``drain`` reads a
link until ``EAGAIN`` (a UDP link 32 datagrams per ``recvmmsg``, and what it forwards to UDP links
written per ``sendmmsg``) and forwards every packet it can; it stops at the first it cannot (see
``fast_target`` in the C) and leaves that one in the hub's receive buffer for the Python path,
which stays the reference implementation.

:meth:`FastPath.wait` is the hub loop's wait (``fast_wait``): the hub's epoll descriptor, with
the links drained in C as they become readable, so a packet C forwards wakes no Python; the
loop sees its other descriptors (the control socket, the wake-up pair), a link's errors, and a
link with a punted packet (every packet of a link with an emulated up direction is punted),
whose handler takes it first (:meth:`FastPath.take_punt`). As ``mip6.runtime.fast``'s
``dfast_wait`` for the daemon.

:class:`FastCapture` is :class:`labnet.hub.capture.Capture` with its buffer in C, so that records
from C and from Python land in one file in the order they were made.
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from typing import Any, Final

from labnet.hub._fast import ffi, lib
from labnet.hub.capture import FILE_HEADER

DONE: Final = lib.FAST_DONE
PUNT: Final = lib.FAST_PUNT
READY_ENTRIES: Final = 64  # descriptors one wait in C hands the loop at most
_NO_ADDRESS: Final = bytes(16)


class FastPath:
    """The C state of a hub with ``link_count`` links that reads every packet into ``buffer``
    (the hub's, kept alive and not resizable while this exists). After :meth:`drain` returns
    :data:`PUNT`, :attr:`punt` says which packet was left (``size``, ``used``: datagrams read,
    ``stranger``: it came from another address than the link's endpoint, see :meth:`source`)."""

    __slots__ = ("_buffer", "_hub", "_ready", "punt")

    def __init__(self, link_count: int, buffer: bytearray) -> None:
        self._buffer = ffi.from_buffer("uint8_t[]", buffer, require_writable=True)
        hub = lib.fast_new(link_count, self._buffer, len(buffer))
        if hub == ffi.NULL:
            raise MemoryError("fast_new")
        self._hub = ffi.gc(hub, lib.fast_free)
        self.punt = ffi.new("struct fast_punt *")
        self._ready = ffi.new("struct fast_ready[]", READY_ENTRIES)

    def set_link(self, index: int, fd: int, *, udp: bool, pinned: bool) -> None:
        """Link ``index`` reads and writes ``fd``, a UDP socket or (``udp`` false) a TUN device;
        a ``pinned`` link's packets never take the decision table (see Router.decisions)."""
        _check(lib.fast_set_link(self._hub, index, fd, udp, pinned), "fast_set_link")

    def set_down_transparent(self, index: int, transparent: bool) -> None:
        _check(lib.fast_set_down_transparent(self._hub, index, transparent), "set_down")

    def set_up_transparent(self, index: int, transparent: bool) -> None:
        """Whether link ``index``'s up direction is transparent: C forwards only those links'
        packets and punts every packet of the others (an emulated direction is Python's)."""
        _check(lib.fast_set_up_transparent(self._hub, index, transparent), "set_up")

    def set_endpoint(self, index: int, endpoint: Any) -> None:
        """The node's address on UDP link ``index`` as ``recvfrom`` gives it (None: unknown)."""
        if endpoint is None:
            family, address, port, flowinfo, scope_id = 0, _NO_ADDRESS, 0, 0, 0
        elif len(endpoint) == 2:
            family, port, flowinfo, scope_id = socket.AF_INET, endpoint[1], 0, 0
            address = socket.inet_pton(socket.AF_INET, endpoint[0])
        else:
            host, port, flowinfo, scope_id = endpoint
            family = socket.AF_INET6
            address = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
        packed = ffi.from_buffer("uint8_t[]", address)
        status = lib.fast_set_endpoint(self._hub, index, family, packed, port, flowinfo, scope_id)
        _check(status, "fast_set_endpoint")

    def source(self) -> Any:
        """The sender of the punted datagram, as ``recvfrom`` gives it."""
        punt = self.punt
        address = ffi.buffer(punt.address)[:]
        if punt.family == socket.AF_INET:
            return socket.inet_ntop(socket.AF_INET, address[:4]), punt.port
        host = socket.inet_ntop(socket.AF_INET6, address)
        if punt.scope_id:  # as recvfrom names it: fe80::1%eth0
            flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
            host = socket.getnameinfo((host, 0, 0, punt.scope_id), flags)[0]
        return host, punt.port, punt.flowinfo, punt.scope_id

    def decide(self, addresses: bytes, out: int) -> None:
        """Packets with these source and destination addresses (IPv6 header bytes 8-39) leave
        on link ``out``: a decision of Router.forward for a packet from a link not pinned."""
        _check(lib.fast_decide(self._hub, ffi.from_buffer("uint8_t[]", addresses), out), "decide")

    def forget(self) -> None:
        """Forget every decision: the routes changed."""
        lib.fast_forget(self._hub)

    @property
    def decisions(self) -> int:
        return int(lib.fast_decisions(self._hub))

    def drain(self, index: int, budget: int) -> int:
        """Forward what link ``index`` has to read, reading at most ``budget`` datagrams (but
        processing every one a UDP link read ahead: call again after a punt, budget spent or
        not, until :data:`DONE`): :data:`DONE`, or :data:`PUNT` with the packet left in the
        buffer (see :attr:`punt`)."""
        return int(lib.fast_drain(self._hub, index, budget, self.punt))

    def take_punt(self, index: int) -> int:
        """:data:`PUNT` with :attr:`punt` filled and the packet in the buffer if a :meth:`wait`
        left one from link ``index``, else :data:`DONE`."""
        return int(lib.fast_take_punt(self._hub, index, self.punt))

    def wait(self, epoll_fd: int, timeout: float | None, budget: int) -> list[int]:
        """Wait on ``epoll_fd`` (the hub's) at most ``timeout`` seconds (None: no limit),
        draining the links in C meanwhile, ``budget`` datagrams per readiness: the
        descriptors whose handlers must run, a link with a punted packet first."""
        if timeout is None:
            milliseconds = -1
        elif timeout <= 0:
            milliseconds = 0
        else:  # as select.epoll.poll: rounded up, so a departure is never served early
            milliseconds = math.ceil(timeout * 1e3)
        ready = self._ready
        count = lib.fast_wait(self._hub, epoll_fd, milliseconds, budget, ready, READY_ENTRIES)
        _check(count, "fast_wait")
        return [ready[index].fd for index in range(count)]

    def counters(self, index: int) -> Any:
        """What C counted on link ``index`` (struct fast_counters, live)."""
        return lib.fast_counters(self._hub, index)

    def capture(self, index: int, path: Path) -> FastCapture:
        return FastCapture(self, index, path)


class FastCapture:
    """Link ``index``'s capture file at ``path``, created (truncated) with its file header;
    records are buffered in C and written at :data:`labnet.hub.capture.CHUNK_BYTES` (by C or
    by :meth:`record`), on :meth:`flush` and :meth:`close`. A write that fails in C is raised
    by the next :meth:`flush`."""

    __slots__ = ("_fast", "_fd", "_index", "path")

    def __init__(self, fast: FastPath, index: int, path: Path) -> None:
        self.path = path
        self._fast = fast
        self._index = index
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(self._fd, FILE_HEADER)
            _check(lib.fast_capture(fast._hub, index, self._fd), "fast_capture")
        except BaseException:
            os.close(self._fd)
            raise

    @property
    def frames(self) -> int:
        return int(lib.fast_counters(self._fast._hub, self._index).pcap_frames)

    def record(self, packet: bytes | bytearray | memoryview, header: bytes) -> None:
        """Append ``packet`` after its record ``header`` (capture.record_header)."""
        status = lib.fast_record(
            self._fast._hub,
            self._index,
            ffi.from_buffer("uint8_t[]", header),
            ffi.from_buffer("uint8_t[]", packet),
            len(packet),
        )
        _check(status, "fast_record")

    def flush(self) -> None:
        """Write the buffered records to the file."""
        if self._fd >= 0:
            _check(lib.fast_flush(self._fast._hub, self._index), str(self.path))

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._fd >= 0:
            try:
                self.flush()
            finally:
                lib.fast_capture(self._fast._hub, self._index, -1)
                os.close(self._fd)
                self._fd = -1


def _check(status: int, what: str) -> None:
    """-errno from C becomes an OSError (EINVAL: an argument C refused, a bug here)."""
    if status < 0:
        raise OSError(-status, os.strerror(-status), what)
