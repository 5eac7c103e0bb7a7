"""Running a :class:`~tcp_migrate.stack.Stack` on a TUN device with asyncio, and streams.

:class:`TunDevice` opens a layer-3 TUN device (no packet information header: every read and
write is one IPv6 packet) in the current network namespace; :meth:`TunDevice.move_to` hands it
to another namespace while this process keeps the file descriptor (the device serves that
namespace's kernel, and the stack runs here). :class:`Driver` is the I/O loop: it reads packets
when the descriptor is readable and passes them to the attached stack, writes what the stack
transmits, and calls :meth:`Stack.poll` at the stack's deadlines, on the asyncio event loop's
monotonic clock in milliseconds. A driver can swap stacks (:meth:`Driver.attach`): a migration
on one device. An optional ``shim`` sits between the device and the stack (:class:`DelayLoss`:
delay and loss).

:func:`open_connection` and :func:`start_server` give ``asyncio.StreamReader``s and
:class:`StreamWriter`s that behave like the standard library's: ``write``/``drain`` with flow
control from the send ring, ``close``/``wait_closed``, reading back-pressured through the
receive window (the reader pauses the driver's copying, so the window closes).
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import socket
import subprocess
from collections.abc import Awaitable, Callable
from typing import Protocol

from tcp_migrate.core import CloseReason, TcpState
from tcp_migrate.stack import Listener, Socket, Stack

__all__ = [
    "DatagramDevice",
    "DelayLoss",
    "Driver",
    "Server",
    "Shim",
    "StackTimers",
    "StreamDriver",
    "StreamWriter",
    "TunDevice",
    "open_connection",
    "start_server",
    "wrap_socket",
]

READ_SIZE = 65536


class TunDevice:
    """A TUN device (IFF_TUN | IFF_NO_PI), non-blocking. ``name`` is the interface name."""

    def __init__(self, name: str = "tcpm%d", mtu: int = 1500) -> None:
        import pytun  # python-pytun: only this driver needs it

        self._dev = pytun.TunTapDevice(name=name, flags=pytun.IFF_TUN | pytun.IFF_NO_PI)
        self.name = self._dev.name
        self.fd = self._dev.fileno()
        self.mtu = mtu
        os.set_blocking(self.fd, False)
        self._ip("link", "set", self.name, "mtu", str(mtu))

    def _ip(self, *args: str, netns: str | None = None) -> None:
        prefix = ["ip", "-n", netns] if netns else ["ip"]
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=10)

    def move_to(self, netns: str) -> None:
        """Moves the interface into ``netns``; this process keeps serving it."""
        self._ip("link", "set", self.name, "netns", netns)
        self.netns = netns

    def configure(self, kernel_address: str, our_address: str, netns: str | None = None) -> None:
        """Gives the kernel's side ``kernel_address``/128 (no DAD), a route to
        ``our_address`` through the device, and brings it up."""
        self._ip("addr", "add", f"{kernel_address}/128", "dev", self.name, "nodad", netns=netns)
        self._ip("link", "set", self.name, "up", netns=netns)
        self._ip("route", "add", f"{our_address}/128", "dev", self.name, netns=netns)

    def read(self) -> bytes | None:
        try:
            return os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return None

    def write(self, packet: bytes) -> None:
        try:
            os.write(self.fd, packet)
        except OSError as e:  # a full queue or a device going down drops the packet
            if e.errno not in (errno.EAGAIN, errno.EIO, errno.EINVAL, errno.ENOBUFS):
                raise

    def close(self) -> None:
        self._dev.close()  # the kernel deletes the interface with its last descriptor


class DatagramDevice:
    """A device over a datagram socket (for instance one end of a ``socket.socketpair(AF_UNIX,
    SOCK_DGRAM)``): one IPv6 packet per datagram. Two stacks in one process, no root."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.fd = sock.fileno()

    def read(self) -> bytes | None:
        try:
            return self.sock.recv(READ_SIZE)
        except BlockingIOError:
            return None

    def write(self, packet: bytes) -> None:
        try:
            self.sock.send(packet)
        except (BlockingIOError, ConnectionRefusedError):
            pass  # a full queue or a closed peer drops the packet

    def close(self) -> None:
        self.sock.close()


class Shim(Protocol):
    """Something between the device and the stack: calls ``deliver`` (towards the stack) or
    ``send`` (towards the device) for each packet it lets through, when it likes."""

    def inbound(self, packet: bytes, deliver: Callable[[bytes], None]) -> None: ...
    def outbound(self, packet: bytes, send: Callable[[bytes], None]) -> None: ...


class DelayLoss:
    """A :class:`Shim` emulating a path: each packet, either way, is dropped with probability
    ``loss`` (independently, from a generator seeded with ``seed``) or passed on ``delay_ms``
    milliseconds later. Create it on the running loop; ``dropped`` and ``passed`` count packets."""

    def __init__(self, delay_ms: float, loss: float, seed: int = 1) -> None:
        self.delay = delay_ms / 1000
        self.loss = loss
        self.rng = random.Random(seed)
        self.dropped = 0
        self.passed = 0
        self.closed = False
        self.loop = asyncio.get_running_loop()

    def _pass(self, packet: bytes, forward: Callable[[bytes], None]) -> None:
        if self.loss and self.rng.random() < self.loss:
            self.dropped += 1
            return
        self.passed += 1
        self.loop.call_later(self.delay, self._arrive, packet, forward)

    def _arrive(self, packet: bytes, forward: Callable[[bytes], None]) -> None:
        if not self.closed:
            forward(packet)

    def close(self) -> None:
        """Packets still on their way are lost (call it before closing the device)."""
        self.closed = True

    inbound = _pass
    outbound = _pass


class StreamDriver(Protocol):
    """What the streams below need of whatever drives the stack: the loop their futures live
    on, the stack, its clock, ``kick()``, which has the stack polled soon after application
    calls, and ``flush()``, which polls now when a kick is pending (a writer's ``drain``: what
    was written leaves before the task goes on, not a loop iteration later).
    :class:`StackTimers` is one; the mip6 daemon's host (``mip6.runtime.host.AsyncHost``) is
    another."""

    loop: asyncio.AbstractEventLoop
    stack: Stack | None

    def now_ms(self) -> int: ...

    def kick(self) -> None: ...

    def flush(self) -> None: ...


class Coalesced:
    """``call`` run soon on ``loop`` once, however many :meth:`kick` calls came before it ran;
    :meth:`flush` runs it now while a kick is pending, :meth:`run` runs it now in any case (a
    timer's, a read's), and the pending kick's callback then finds nothing to do. What a
    :class:`StreamDriver`'s ``kick`` and ``flush`` are made of."""

    __slots__ = ("_call", "_loop", "_pending")

    def __init__(self, loop: asyncio.AbstractEventLoop, call: Callable[[], None]) -> None:
        self._loop = loop
        self._call = call
        self._pending = False

    def kick(self) -> None:
        if not self._pending:
            self._pending = True
            self._loop.call_soon(self._soon)

    def flush(self) -> None:
        if self._pending:
            self.run()

    def run(self) -> None:
        self._pending = False
        self._call()

    def _soon(self) -> None:
        if self._pending:  # else a flush or a run did it already
            self.run()


class StackTimers:
    """A stack's clock and timers on an asyncio loop, for this module's :class:`Driver` on a
    device: :meth:`kick` polls the stack soon; each poll re-arms one timer at the stack's
    next deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stack: Stack | None) -> None:
        self.loop = loop
        self.stack = stack
        self._timer: asyncio.TimerHandle | None = None
        self._polls = Coalesced(loop, self._poll)

    def now_ms(self) -> int:
        return int(self.loop.time() * 1000)

    def kick(self) -> None:
        """Schedules a poll soon (after application calls, or a burst of received segments)."""
        self._polls.kick()

    def flush(self) -> None:
        """The poll a kick scheduled, now."""
        self._polls.flush()

    def _poll(self) -> None:
        stack = self.stack
        if stack is None:
            return
        stack.poll(self.now_ms())
        deadline = stack.next_deadline()
        self.cancel_timer()
        if deadline is not None:
            self._timer = self.loop.call_at(max(deadline, 0) / 1000, self._polls.run)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Driver(StackTimers):
    """Serves ``device`` (anything with ``fd``, ``read()`` and ``write(packet)``) for the
    attached stack on the running asyncio loop. Create stacks with ``transmit=driver.transmit``.
    """

    def __init__(self, device, *, shim: Shim | None = None) -> None:
        super().__init__(asyncio.get_running_loop(), None)
        self.device = device
        self.shim = shim
        self.loop.add_reader(device.fd, self._readable)

    def attach(self, stack: Stack | None) -> None:
        """Packets from the device go to ``stack`` from now on (None: dropped)."""
        self.stack = stack
        self.kick()

    def transmit(self, packet: bytes) -> None:
        if self.shim is None:
            self.device.write(packet)
        else:
            self.shim.outbound(packet, self.device.write)

    def deliver(self, packet: bytes) -> None:
        stack = self.stack
        if stack is not None:
            stack.receive(self.now_ms(), packet)
            self.kick()

    def _readable(self) -> None:
        read = self.device.read
        for _ in range(256):
            packet = read()
            if packet is None:
                break
            if self.shim is None:
                if self.stack is not None:
                    self.stack.receive(self.now_ms(), packet)
            else:
                self.shim.inbound(packet, self.deliver)
        self._polls.run()

    def close(self) -> None:
        self.loop.remove_reader(self.device.fd)
        self.cancel_timer()


# ---- streams -------------------------------------------------------------------------------


class _Transport(asyncio.Transport):
    """The reader's back-pressure hook: ``StreamReader`` pauses us above twice its limit."""

    def __init__(self, pipe: _Pipe) -> None:
        super().__init__()
        self._pipe = pipe

    def pause_reading(self) -> None:
        self._pipe.paused = True

    def resume_reading(self) -> None:
        # Not at once: StreamReader resumes us from _wait_for_data before it creates the waiter
        # that our data must wake.
        self._pipe.paused = False
        self._pipe.driver.loop.call_soon(self._pipe.pump)

    def is_reading(self) -> bool:
        return not self._pipe.paused

    def get_extra_info(self, name, default=None):
        return self._pipe.extra(name, default)


class _Pipe:
    """Moves bytes between one socket and its reader/writer on ``on_change``."""

    def __init__(self, driver: StreamDriver, sock: Socket, limit: int) -> None:
        self.driver = driver
        self.sock = sock
        self.paused = False
        self.reader = asyncio.StreamReader(limit=limit)
        self.reader.set_transport(_Transport(self))
        self.pending = bytearray()
        self.high_water = 4 * 65536
        self.drain_waiters: list[asyncio.Future] = []
        self.close_waiters: list[asyncio.Future] = []
        self.closing = False
        self.fin_queued = False
        self.eof_fed = False
        sock.on_change = lambda _sock: self.pump()

    def extra(self, name: str, default=None):
        if name == "peername":
            return self.sock.remote
        if name == "sockname":
            return self.sock.local
        if name == "socket":
            return self.sock
        return default

    def pump(self) -> None:
        sock = self.sock
        if sock.frozen or sock.stack is not self.driver.stack:
            return
        moved = False
        # Receive side: copy readable bytes into the reader unless it asked us to pause.
        elsewhere = sock.input_elsewhere  # read by another (Socket.input_elsewhere)
        if elsewhere is not None:
            elsewhere()
        while not self.paused and elsewhere is None and sock.readable:
            data = sock.recv(READ_SIZE)
            if not data:
                break
            self.reader.feed_data(data)
            moved = True
        state = sock.state
        if not self.eof_fed and (sock.at_eof or state == TcpState.CLOSED):
            self.eof_fed = True
            if state == TcpState.CLOSED and sock.close_reason in (
                CloseReason.RESET,
                CloseReason.REFUSED,
                CloseReason.TIMEOUT,
                CloseReason.ABORTED,
            ):
                self.reader.set_exception(ConnectionResetError(sock.close_reason.name))
            else:
                self.reader.feed_eof()
        # Send side: move pending bytes into the send ring.
        if self.pending and state != TcpState.CLOSED:
            space = sock.send_space
            n = sock.send(bytes(self.pending[:space])) if space else 0
            if n:
                del self.pending[:n]
                moved = True
        if self.closing and not self.pending and not self.fin_queued and state != TcpState.CLOSED:
            self.fin_queued = True
            sock.close()
            moved = True
        if len(self.pending) <= self.high_water or state == TcpState.CLOSED:
            self._wake(self.drain_waiters, state)
        if state in (TcpState.CLOSED, TcpState.TIME_WAIT) or (
            self.fin_queued and state == TcpState.FIN_WAIT_2
        ):
            self._wake(self.close_waiters, state)
        if moved:
            self.driver.kick()

    def _wake(self, waiters: list[asyncio.Future], state: TcpState) -> None:
        for fut in waiters:
            if not fut.done():
                if (
                    state == TcpState.CLOSED
                    and self.sock.close_reason != CloseReason.NORMAL
                    and (waiters is self.drain_waiters)
                ):
                    fut.set_exception(ConnectionResetError(self.sock.close_reason.name))
                else:
                    fut.set_result(None)
        waiters.clear()


class StreamWriter:
    """Like ``asyncio.StreamWriter``: ``write`` buffers, ``drain`` waits for room."""

    def __init__(self, pipe: _Pipe) -> None:
        self._pipe = pipe
        self.transport = pipe.reader._transport

    @property
    def socket(self) -> Socket:
        return self._pipe.sock

    def write(self, data: bytes) -> None:
        if self._pipe.closing:
            raise RuntimeError("write after close")
        self._pipe.pending += data
        self._pipe.pump()

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.close()

    def get_extra_info(self, name: str, default=None):
        return self._pipe.extra(name, default)

    def is_closing(self) -> bool:
        return self._pipe.closing

    async def drain(self) -> None:
        pipe = self._pipe
        pipe.pump()
        pipe.driver.flush()
        if pipe.sock.state == TcpState.CLOSED and pipe.sock.close_reason != CloseReason.NORMAL:
            raise ConnectionResetError(pipe.sock.close_reason.name)
        if len(pipe.pending) > pipe.high_water:
            fut = pipe.driver.loop.create_future()
            pipe.drain_waiters.append(fut)
            await fut

    def close(self) -> None:
        """A FIN once every written byte is in the send ring."""
        self._pipe.closing = True
        self._pipe.pump()

    async def wait_closed(self) -> None:
        """Until our FIN is acknowledged (FIN-WAIT-2, TIME-WAIT) or the connection closed."""
        pipe = self._pipe
        pipe.pump()
        state = pipe.sock.state
        if state in (TcpState.CLOSED, TcpState.TIME_WAIT) or (
            pipe.fin_queued and state == TcpState.FIN_WAIT_2
        ):
            return
        fut = pipe.driver.loop.create_future()
        pipe.close_waiters.append(fut)
        await fut


def wrap_socket(
    driver: StreamDriver, sock: Socket, *, limit: int = 2**16
) -> tuple[asyncio.StreamReader, StreamWriter]:
    """Streams over an existing socket (an accepted or imported one)."""
    pipe = _Pipe(driver, sock, limit)
    pipe.pump()
    return pipe.reader, StreamWriter(pipe)


async def open_connection(
    driver: StreamDriver, host: str, port: int, *, limit: int = 2**16
) -> tuple[asyncio.StreamReader, StreamWriter]:
    """Active open through the driver's stack; raises ``ConnectionRefusedError`` or
    ``TimeoutError`` (the core's SYN retries) when it fails."""
    stack = driver.stack
    if stack is None:
        raise RuntimeError("no stack attached")
    sock = stack.connect(driver.now_ms(), host, port)
    fut = driver.loop.create_future()

    def on_change(s: Socket) -> None:
        if fut.done():
            return
        if s.state == TcpState.CLOSED:
            exc: Exception = (
                ConnectionRefusedError(host, port)
                if s.close_reason == CloseReason.REFUSED
                else TimeoutError(host, port)
            )
            fut.set_exception(exc)
        elif s.state != TcpState.SYN_SENT:
            fut.set_result(None)

    sock.on_change = on_change
    driver.kick()
    await fut
    return wrap_socket(driver, sock, limit=limit)


ClientConnected = Callable[[asyncio.StreamReader, StreamWriter], Awaitable[None] | None]


class Server:
    """What :func:`start_server` returns: ``close()``, ``wait_closed()``, ``sockets``."""

    def __init__(
        self, driver: StreamDriver, listener: Listener, callback: ClientConnected, limit: int
    ):
        self.driver = driver
        self.listener = listener
        self._callback = callback
        self._limit = limit
        self._tasks: set[asyncio.Task] = set()
        listener.on_change = self._accept

    @property
    def sockets(self) -> list[Listener]:
        return [self.listener]

    def _accept(self, listener: Listener) -> None:
        while (sock := listener.accept()) is not None:
            reader, writer = wrap_socket(self.driver, sock, limit=self._limit)
            result = self._callback(reader, writer)
            if asyncio.iscoroutine(result):
                task = self.driver.loop.create_task(result)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        self.listener.close()

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()
        await self.wait_closed()


async def start_server(
    driver: StreamDriver,
    client_connected_cb: ClientConnected,
    host: str = "::",
    port: int = 0,
    *,
    backlog: int = 128,
    limit: int = 2**16,
) -> Server:
    """Listens on (host, port) of the driver's stack and calls ``client_connected_cb(reader,
    writer)`` for every connection (a coroutine becomes a task)."""
    stack = driver.stack
    if stack is None:
        raise RuntimeError("no stack attached")
    return Server(driver, stack.listen(host, port, backlog), client_connected_cb, limit)
