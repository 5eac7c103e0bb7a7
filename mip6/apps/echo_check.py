"""A verifying line-echo client on a sans-I/O :class:`~mip6.runtime.host.Host`: a dialogue with
the distributed server's handoff echo (:mod:`mip6.apps.handoff_echo`), every line's echo
checked against what was sent.

A :class:`Dialogue` sends ``lines`` lines, one at a time: the next goes ``pause`` seconds after
the previous one's echo came back (the caller's ``schedule(at)`` arranges a call to
:meth:`Dialogue.tick` then; with no pause it goes at once). Each line is unique to its
dialogue and place (``<tag> <index> `` and filler to ``line_size`` bytes, never a command of
the echo's), so an echo lost, repeated, reordered or corrupted is caught at the first byte that
differs (:attr:`Dialogue.failed_at`, the offset in the transcript). After the last echo it sends
``Q`` and expects ``bye`` and the server's FIN: the transcript is then whole. The causes of a
failure are the fetch's (:class:`~mip6.apps.fetch.Cause`); :attr:`received` counts the echoed
bytes checked. It is an :class:`~mip6.apps.fetch.Exchange`, as a fetch is, so the farm runs either.
"""

from __future__ import annotations

from collections.abc import Callable

from mip6.apps.fetch import _CLOSED_BY, READ, Cause, Exchange
from mip6.apps.handoff_echo import BYE, QUIT
from tcp_migrate.core import TcpState
from tcp_migrate.stack import Socket

MIN_LINE = 32  # room for the tag and index of any dialogue


def line(tag: str, index: int, size: int) -> bytes:
    """Line ``index`` of the dialogue tagged ``tag``: ``size`` bytes with its newline."""
    start = f"{tag} {index} ".encode()
    filler = bytes(0x61 + (index + i) % 26 for i in range(max(size - len(start) - 1, 0)))
    return start + filler + b"\n"


class Dialogue(Exchange):
    """``lines`` lines on ``sock`` (connected, nothing sent yet), each ``line_size`` bytes,
    tagged ``tag`` (unique per dialogue). ``clock()``, ``on_done`` and ``on_reset`` as
    :class:`~mip6.apps.fetch.Fetch`'s."""

    def __init__(
        self,
        sock: Socket,
        tag: str,
        *,
        lines: int,
        line_size: int,
        pause: float,
        clock: Callable[[], float],
        schedule: Callable[[float], None],
        on_done: Callable[[Dialogue], None],
        on_reset: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(sock, clock, on_done, on_reset)
        self.tag = tag
        self.lines = lines
        self.line_size = max(line_size, MIN_LINE)
        self.pause = pause
        self.schedule = schedule
        self._sent = 0  # lines sent
        self._expected = b""  # the echo awaited: the line last sent, then "bye"
        sock.on_change = self._changed
        self._send_next()

    def tick(self) -> None:
        """The pause after an echo is over: the next line."""
        if not self.done and not self._expected:
            self._send_next()

    def _send_next(self) -> None:
        if self._sent < self.lines:
            data = line(self.tag, self._sent, self.line_size)
            self._sent += 1
        else:
            data, self._sent = QUIT + b"\n", self._sent + 1
        self._expected = data if self._sent <= self.lines else BYE
        if self.sock.send(data) != len(data):  # a line is far below the send ring's size
            self._fail(Cause.CONNECT)

    def _changed(self, sock: Socket) -> None:
        if self.done:
            return
        if sock.state is TcpState.CLOSED:
            self._fail(_CLOSED_BY.get(sock.close_reason, Cause.RESET))
            return
        while data := sock.recv(READ):
            self.progressed()
            if not self._check(data):
                return
        if sock.at_eof:
            if self._sent <= self.lines or self._expected:
                self._fail(Cause.SHORT)  # the FIN before "bye"
                return
            self._close(sock)

    def _check(self, data: bytes) -> bool:
        """Compares what came with the echo awaited; False once the dialogue failed."""
        while data:
            if not self._expected:
                self._fail(Cause.LONG)  # nothing was awaited
                return False
            n = min(len(data), len(self._expected))
            if data[:n] != self._expected[:n]:
                first = next(i for i in range(n) if data[i] != self._expected[i])
                self.failed_at = self.received + first
                self._fail(Cause.CORRUPT)
                return False
            self.received += n
            self._expected, data = self._expected[n:], data[n:]
            if not self._expected and self._sent <= self.lines:
                if self.pause > 0:
                    self.schedule(self.clock() + self.pause)
                else:
                    self._send_next()
        return True
