"""A verifying HTTP/1.1 client on a sans-I/O :class:`~mip6.runtime.host.Host`: GETs on one
connection, and every byte of each answer checked against the body the server is known to send.

The server is the distributed server's download service (:mod:`mip6.apps.download`) or the
host-mode ``http`` app (:mod:`mip6.apps.http`), with a generated body
(:func:`~mip6.apps.http.generated_body`, ``size`` bytes from ``seed``). A :class:`Fetch` sends
its first request, reads the response head (status 200 and a Content-Length equal to ``size``,
or it fails), then compares each body byte as it arrives with the generated body at that
offset, so a corrupted, duplicated or missing stretch is caught where it happens
(:attr:`Fetch.failed_at`), not only in a digest at the end. On a keep-alive connection (more
than one request, every one but the last without ``Connection: close``) the next request goes
once a body is whole (its Content-Length); the last asks the server to close, and its FIN ends
the fetch: whole when every response came with exactly ``size`` bytes.

Driven by the socket's callbacks (``on_change``), so it runs wherever the host runs: in the
farm's engine (:mod:`mip6.farm`) on virtual time or in the daemon. It reads no clock: the
caller's ``clock`` gives the time of the entry point that is running. A failed fetch aborts its
connection (a RST: the server must not go on sending to a client that gave up). When the fetch
ends, ``on_done`` is called once with it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from ipaddress import IPv6Address
from typing import Any

from mip6.apps.http import MAX_HEAD, generated_body
from tcp_migrate.core import CloseReason, TcpState
from tcp_migrate.stack import Socket

READ = 1 << 16  # bytes per recv


class Cause(enum.Enum):
    """Why a fetch failed (each a counter of the farm: ``failed.<value>``)."""

    STATUS = "status"  # no response head, a malformed one, or a status other than 200
    LENGTH = "length"  # Content-Length missing or not the expected size
    CORRUPT = "corrupt"  # a body byte differs from the generated body at its offset
    SHORT = "short"  # the server's FIN came before the whole body
    LONG = "long"  # more bytes than the body has
    RESET = "reset"  # a RST ended the connection
    REFUSED = "refused"  # a RST answered the SYN
    TIMEOUT = "timeout"  # TCP gave up retransmitting (RFC 9293 3.8.3)
    STALLED = "stalled"  # no byte for the caller's timeout (:meth:`Fetch.stall`)
    CONNECT = "connect"  # the stack refused to open a connection (table full, no port)


_CLOSED_BY = {
    CloseReason.RESET: Cause.RESET,
    CloseReason.REFUSED: Cause.REFUSED,
    CloseReason.TIMEOUT: Cause.TIMEOUT,
}


def request(path: str, server: IPv6Address, port: int, *, close: bool = True) -> bytes:
    """The GET for ``path`` (RFC 9112 3; the Host field of an IPv6 literal in brackets, RFC
    9110 7.2 / RFC 3986 3.2.2; the port only when it is not 80), asking the server to close
    after its answer (RFC 9112 9.6) or, without ``close``, to keep the connection."""
    authority = f"[{server}]" if port == 80 else f"[{server}]:{port}"
    connection = "Connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nHost: {authority}\r\n{connection}\r\n".encode()


def requests(path: str, server: IPv6Address, port: int, count: int) -> tuple[bytes, ...]:
    """``count`` GETs for one connection: keep-alive ones, then one that asks to close."""
    keep = request(path, server, port, close=False)
    return (keep,) * (count - 1) + (request(path, server, port),)


class Exchange:
    """What a verifying client's exchange on one connection (:class:`Fetch`, the echo's
    :class:`~mip6.apps.echo_check.Dialogue`) has for its driver: when it started and last made
    progress, its end (``on_done(exchange)`` once; :attr:`cause` None: whole), the driver's
    watchdog (:meth:`stall`), and ``on_reset()`` if a RST closes the connection after a
    whole exchange (while it closes). ``clock()`` is the time now (the driver's entry
    point)."""

    def __init__(
        self,
        sock: Socket,
        clock: Callable[[], float],
        on_done: Callable[[Any], None],
        on_reset: Callable[[], None] | None,
    ) -> None:
        self.sock = sock
        self.clock = clock
        self.on_done = on_done
        self.on_reset = on_reset
        self.started = clock()
        self.last_progress = self.started  # when a byte last came (or it started)
        self.longest_silence = 0.0  # the longest wait for a byte so far (seconds)
        self.silent_since = self.started  # when that wait began
        self.ended: float | None = None
        self.received = 0  # bytes received and verified
        self.cause: Cause | None = None
        self.failed_at: int | None = None  # offset of the first wrong byte (CORRUPT)
        self.done = False

    def progressed(self) -> None:
        """A byte came: the wait for it is measured (how close the exchange came to its
        driver's watchdog: a member's death, a handoff, a loss backed off)."""
        now = self.clock()
        if now - self.last_progress > self.longest_silence:
            self.longest_silence = now - self.last_progress
            self.silent_since = self.last_progress
        self.last_progress = now

    def stall(self) -> None:
        """The caller's watchdog: no byte came for its timeout."""
        if not self.done:
            self._fail(Cause.STALLED)

    def _closing(self, sock: Socket) -> None:
        """After a whole exchange, until the connection is gone: a RST is still worth
        counting."""
        if sock.state is TcpState.CLOSED:
            sock.on_change = None
            if sock.close_reason is CloseReason.RESET and self.on_reset is not None:
                self.on_reset()

    def _close(self, sock: Socket) -> None:
        """The server's FIN after a whole exchange: ours, then watch for a RST."""
        self._finish(None)
        sock.on_change = self._closing
        sock.close()

    def _fail(self, cause: Cause) -> None:
        if self.sock.state is not TcpState.CLOSED:
            self.sock.abort()
        self._finish(cause)

    def _finish(self, cause: Cause | None) -> None:
        self.done = True
        self.cause = cause
        self.ended = self.clock()
        self.sock.on_change = None
        self.on_done(self)


class Fetch(Exchange):
    """The GETs ``request_bytes`` (one, or a keep-alive connection's: see :func:`requests`)
    on ``sock`` (connected, nothing sent yet), each for a body of ``size`` bytes generated
    from ``seed``; the rest as :class:`Exchange`."""

    def __init__(
        self,
        sock: Socket,
        request_bytes: bytes | tuple[bytes, ...],
        *,
        size: int,
        seed: int,
        clock: Callable[[], float],
        on_done: Callable[[Fetch], None],
        on_reset: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(sock, clock, on_done, on_reset)
        self.size = size
        self.seed = seed
        self.head = b""
        self.in_body = False
        self.responses = 0  # whole responses; received counts every response's body bytes
        self._requests = (request_bytes,) if isinstance(request_bytes, bytes) else request_bytes
        self._in_response = 0  # body bytes of the current response
        self._blocks: Iterator[bytes] = generated_body(size, seed)
        self._block = memoryview(b"")
        self._block_at = 0
        sock.on_change = self._changed
        sock.send(self._requests[0])

    # -- the socket's callback -------------------------------------------------------------------

    def _changed(self, sock: Socket) -> None:
        if self.done:
            return
        if sock.state is TcpState.CLOSED:  # a RST or TCP's timeout: nothing to read any more
            self._fail(_CLOSED_BY.get(sock.close_reason, Cause.RESET))
            return
        while data := sock.recv(READ):
            self.progressed()
            if not self.in_body and not self._read_head(data):
                return
            if self.in_body and not self._verify(self._pending_body(data)):
                return
        if sock.at_eof:
            if self.responses < len(self._requests):
                self._fail(Cause.SHORT if self.in_body else Cause.STATUS)
            else:
                self._close(sock)

    def _read_head(self, data: bytes) -> bool:
        """Accumulates the response head; False once the fetch failed."""
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > MAX_HEAD:
                self._fail(Cause.STATUS)
                return False
            return True
        lines = self.head[:end].split(b"\r\n")
        words = lines[0].split(None, 2)
        if len(words) < 2 or not words[0].startswith(b"HTTP/1.") or words[1] != b"200":
            self._fail(Cause.STATUS)
            return False
        lengths = [
            value.strip()
            for name, _, value in (line.partition(b":") for line in lines[1:])
            if name.strip().lower() == b"content-length"
        ]
        if len(lengths) != 1 or not lengths[0].isdigit() or int(lengths[0]) != self.size:
            self._fail(Cause.LENGTH)
            return False
        self.in_body = True
        if self.size == 0:
            self._response_whole()
        return True

    def _pending_body(self, data: bytes) -> bytes:
        """The body bytes in ``data``: after the head, the rest of what carried it."""
        if self.head:
            body = self.head[self.head.find(b"\r\n\r\n") + 4 :]
            self.head = b""
            return body
        return data

    def _response_whole(self) -> None:
        """A body is whole: the next request, if there is one (keep-alive)."""
        self.responses += 1
        if self.responses < len(self._requests):
            self.in_body = False
            self._in_response = 0
            self._blocks = generated_body(self.size, self.seed)
            self._block, self._block_at = memoryview(b""), 0
            self.sock.send(self._requests[self.responses])

    def _verify(self, data: bytes) -> bool:
        """Compares ``data`` with the generated body at the received offset; False once the
        fetch failed."""
        view = memoryview(data)
        while view:
            if not self.in_body:  # the body before was whole: nothing may follow it yet
                self._fail(Cause.LONG)
                return False
            if self._block_at >= len(self._block):
                block = next(self._blocks, None)
                if block is None:
                    self._fail(Cause.LONG)
                    return False
                self._block, self._block_at = memoryview(block), 0
            n = min(len(view), len(self._block) - self._block_at)
            expected = self._block[self._block_at : self._block_at + n]
            if view[:n] != expected:
                first = next(i for i in range(n) if view[i] != expected[i])
                self.received += first  # the good ones before it
                self.failed_at = self.received
                self._fail(Cause.CORRUPT)
                return False
            self.received += n
            self._in_response += n
            self._block_at += n
            view = view[n:]
            if self._in_response == self.size:
                self._response_whole()
        return True

    def _finish(self, cause: Cause | None) -> None:
        self._blocks = iter(())
        self._block = memoryview(b"")
        super()._finish(cause)
