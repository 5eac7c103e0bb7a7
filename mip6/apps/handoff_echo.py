"""The distributed server's handoff echo (DSERVER.md section 8; the seeds' example application,
thesis 6.2.2 and Appendix B, SPEC-dserver 7.8): a line echo server whose client can ask to be
handed to another member.

Protocol, line by line (each line ends with ``\\n``; a ``\\r`` before it is allowed):

- any line is echoed back as received, terminator included;
- ``H`` hands the client to another member (:meth:`Member.request_handoff
  <mip6.dserver.member.Member.request_handoff>`, ``elsewhere``: the group's policy never picks
  this member). The member that takes the client first sends ``member <name> took you``, then
  goes on with whatever the client sent after the ``H``. If no member takes it, the member that
  still holds it sends ``handoff failed, still <name>`` and goes on;
- ``Q`` is answered ``bye`` and the server closes (FIN, never a RST);
- a line longer than :data:`MAX_LINE` bytes (no newline among the first ``MAX_LINE + 1``) is
  answered ``error: line longer than 4096 bytes`` and the server closes;
- at the client's FIN, an unterminated last line is echoed as it is and the server closes.

Lines sent after an ``H`` are not read until the handoff has ended: they wait in the TCP
receive buffer, which travels in the connection's snapshot, so the acceptor echoes them (after
its announcement) and the client never sees them twice or out of order. The application state
that goes with the connection (:meth:`HandoffEchoService.export_state`) is small and bounded:
the bytes read from the socket but not yet processed (at most ``MAX_LINE + 1``), the output
written but not yet taken by the send buffer, and two flags: "announce yourself" (set only by an
``H``, cleared by the acceptor when it queues its announcement, so the client hears exactly one
announcement per ``H``) and "close once the output is out". Echo output cannot be made again
from an offset, so snapshots are full ones (``regenerable`` False: the unacknowledged bytes
travel).

With dynamic membership (issue 15) the buddy holds a full replica of every connection: the
service asks for one (:meth:`Member.request_replicate
<mip6.dserver.member.Member.request_replicate>`, holding the socket) whenever it hands output
to the send buffer, and the member holds the acknowledgement of every line until a replica
covers it; so whatever the client has seen or had acknowledged, the buddy has too, and resumes
the transcript exactly where the client stands if this member dies.

Mapping to the seeds' echo example (SPEC-dserver 7.8):

- seeds: one byte read at a time, any ``H`` byte inside a line hands off (``HiHaHo`` makes three
  handoffs and the echoed line loses its ``H`` s). Here ``H`` is a line of its own: an ordinary
  line can contain the letter, and the command is unambiguous;
- seeds: the state is ``readbuf[1024]`` with every byte ever received (for ``!``, "written so
  far"), and the listing never checks ``bytesread`` against its size. Here nothing grows: the
  state is the unprocessed input and pending output only, and ``!`` is not a command;
- seeds: every worker greets each client it accepts ("Hi, I'm worker %d on %s"), new or handed
  in. Here only an ``H``'s acceptor announces itself: the contact node's initial distribution
  and handoffs a member starts on its own are transparent to the client (thesis 4.2.5);
- seeds: a handoff that fails after ``Handoff`` returned gives the client back to the local
  replica silently. Here the member says so, so the client knows it may ask again;
- seeds: ``Q`` writes the whole history back; here ``bye``.

Sans-I/O: driven by the tcp_migrate sockets' callbacks inside the member's entry points, like
:mod:`mip6.apps.download`.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import TYPE_CHECKING

from tcp_migrate.core import WRITE_SHUT_STATES, TcpState
from tcp_migrate.stack import Socket

if TYPE_CHECKING:
    from mip6.dserver.member import Member

log = logging.getLogger(__name__)

MAX_LINE = 4096  # bytes of one line before its newline
ERROR_OVERLONG = f"error: line longer than {MAX_LINE} bytes\n".encode()
BYE = b"bye\n"
HANDOFF = b"H"
QUIT = b"Q"

STATE_MAGIC = b"E1"  # application state: the format's name and version
_STATE_HEAD = struct.Struct("!2sBI")  # magic, flags, length of the pending output
ANNOUNCE = 0x01  # the next member to run this connection announces itself
CLOSING = 0x02  # close once the pending output is written
# pending output is at most one echoed line plus a few short lines of ours; a state claiming
# more did not come from this service
MAX_STATE_OUTPUT = MAX_LINE + 1 + 1024
MAX_STATE_INPUT = MAX_LINE + 1


class StateError(ValueError):
    """An application state this service cannot have written."""


@dataclass(frozen=True, slots=True)
class EchoState:
    """What travels with a connection (see the module docstring)."""

    announce: bool = False
    closing: bool = False
    output: bytes = b""
    input: bytes = b""

    def encode(self) -> bytes:
        flags = (ANNOUNCE if self.announce else 0) | (CLOSING if self.closing else 0)
        return _STATE_HEAD.pack(STATE_MAGIC, flags, len(self.output)) + self.output + self.input

    @classmethod
    def decode(cls, data: bytes) -> EchoState:
        if len(data) < _STATE_HEAD.size:
            raise StateError("truncated")
        magic, flags, out_length = _STATE_HEAD.unpack_from(data)
        if magic != STATE_MAGIC:
            raise StateError(f"unknown format {magic!r}")
        if flags & ~(ANNOUNCE | CLOSING):
            raise StateError(f"unknown flags {flags:#x}")
        body = data[_STATE_HEAD.size :]
        if out_length > min(len(body), MAX_STATE_OUTPUT):
            raise StateError("pending output too long")
        if len(body) - out_length > MAX_STATE_INPUT:
            raise StateError("unprocessed input too long")
        return cls(
            announce=bool(flags & ANNOUNCE),
            closing=bool(flags & CLOSING),
            output=body[:out_length],
            input=body[out_length:],
        )


class HandoffEchoService:
    """The handoff echo on one member; ``name`` is how it introduces itself to clients (the
    member's own address, or any label)."""

    full_replicas = True  # its state says where the connection stands (Service)

    def __init__(self, name: str) -> None:
        self.name = name
        self.announcement = f"member {name} took you\n".encode()
        self.failure = f"handoff failed, still {name}\n".encode()
        # counters, for tests and ``show``-style inspection
        self.accepted_count = 0
        self.lines_echoed = 0
        self.handoffs_requested = 0
        self.handed_in_count = 0
        self.handed_off_count = 0
        self.failed_handoffs = 0
        self.errors = 0
        self._connections: dict[Socket, _Echo] = {}

    # -- mip6.dserver.member.Service -----------------------------------------------------------

    def accepted(self, member: Member, sock: Socket) -> None:
        self.accepted_count += 1
        self._connections[sock] = _Echo(self, member, sock, EchoState())

    def export_state(self, sock: Socket) -> tuple[bytes, bool]:
        echo = self._connections.get(sock)
        state = echo.state() if echo is not None else EchoState()
        return state.encode(), False  # echo output cannot be regenerated: full snapshots

    def handed_in(self, member: Member, sock: Socket, state: bytes) -> None:
        self.handed_in_count += 1
        try:
            decoded = EchoState.decode(state)
        except StateError as error:
            # not ours to trust: tell the client and close, rather than echo garbage
            self.errors += 1
            log.warning("handoff echo %s: bad state from a donor: %s", self.name, error)
            decoded = EchoState(closing=True, output=b"error: connection state lost\n")
        if decoded.announce:
            # queued now, written once the connection thaws; cleared from the state so that a
            # further handoff of this connection does not announce again
            decoded = EchoState(
                closing=decoded.closing,
                output=decoded.output + self.announcement,
                input=decoded.input,
            )
        self._connections[sock] = _Echo(self, member, sock, decoded)

    def handed_off(self, sock: Socket) -> None:
        echo = self._connections.pop(sock, None)
        if echo is not None:
            echo.gone = True
            self.handed_off_count += 1
        sock.on_change = None

    def movable(self, sock: Socket) -> bool:
        return True  # its state describes any point of the connection

    def handoff_failed(self, client: IPv6Address, tried: tuple[IPv6Address, ...]) -> None:
        self.failed_handoffs += 1
        for sock, echo in list(self._connections.items()):
            if echo.handing_off and sock.remote_address == client:
                echo.handoff_failed()

    def _forget(self, sock: Socket) -> None:
        self._connections.pop(sock, None)


class _Echo:
    """One connection: lines in, echoes out, one line at a time (the next line is read only
    when the previous one's answer is in the send buffer, so the client's unread data waits in
    TCP's receive window, not in our memory)."""

    def __init__(
        self, service: HandoffEchoService, member: Member, sock: Socket, state: EchoState
    ) -> None:
        self.service = service
        self.member = member
        self.sock = sock
        self.gone = False
        self.handing_off = False  # an 'H' was read: nothing more is read until it ends
        self.closing = state.closing
        self.output = state.output  # written by us, not yet taken by the send buffer
        self.input = state.input  # read from the socket, not yet processed
        sock.on_change = self._changed
        if not sock.frozen:
            self._changed(sock)

    def state(self) -> EchoState:
        return EchoState(
            announce=self.handing_off,
            closing=self.closing,
            output=self.output,
            input=self.input,
        )

    def handoff_failed(self) -> None:
        self.handing_off = False
        self.output += self.service.failure
        self._changed(self.sock)

    def _changed(self, sock: Socket) -> None:
        if self.gone:
            return
        if sock.state is TcpState.CLOSED:
            self.gone = True
            self.service._forget(sock)
            return
        if sock.frozen:
            return  # a handoff is under way: its outcome decides who goes on
        if sock.conn.resyncing:
            # resumed from a replica: its send ring is the replica's until the client's
            # answer says which of it the client holds (tcp_migrate's full resync)
            return
        if sock.closed_by_app or sock.state in WRITE_SHUT_STATES:
            self._discard_input(sock)
            return
        while self._flush(sock):
            if self.closing:
                sock.close()
                self._discard_input(sock)
                return
            if self.handing_off:
                return
            line = self._next_line(sock)
            if line is not None:
                self._handle(sock, line)
            elif not self.closing:
                return  # more when the client sends more (on_change again)

    def _flush(self, sock: Socket) -> bool:
        """Hands pending output to the send buffer; True when all of it went. What went is
        held until the buddy has a replica with it (see the module docstring)."""
        sent = False
        while self.output:
            if not sock.send_space:
                break  # more when the send buffer drains (on_change again)
            taken = sock.send(self.output)
            self.output = self.output[taken:]
            sent = sent or taken > 0
        if sent:
            self.member.request_replicate(sock.remote_address, hold=(sock,))
        return not self.output

    def _next_line(self, sock: Socket) -> bytes | None:
        """The next whole line (terminator included), or None when there is none yet. Sets
        ``closing`` with an answer for an overlong line or the client's end of stream."""
        end = self.input.find(b"\n")
        if end < 0 and len(self.input) <= MAX_LINE:
            # read no more than one line's worth: the rest waits in TCP's receive buffer
            self.input += sock.recv(MAX_LINE + 1 - len(self.input))
            end = self.input.find(b"\n")
        if end >= 0:
            line, self.input = self.input[: end + 1], self.input[end + 1 :]
            return line
        if len(self.input) > MAX_LINE:
            self.service.errors += 1
            self.input = b""
            self.output += ERROR_OVERLONG
            self.closing = True
            return None
        if sock.at_eof:
            # the client has finished: its unterminated last line is still its data
            self.output += self.input
            self.input = b""
            self.closing = True
        return None

    def _handle(self, sock: Socket, line: bytes) -> None:
        command = line.rstrip(b"\r\n")
        if command == HANDOFF:
            self.handing_off = True
            self.service.handoffs_requested += 1
            # deferred by the member to the end of this entry point (we are inside the stack)
            self.member.request_handoff(sock.remote_address)
        elif command == QUIT:
            self.output += BYE
            self.closing = True
        else:
            self.service.lines_echoed += 1
            self.output += line

    def _discard_input(self, sock: Socket) -> None:
        """After our close: what the client still sends is acknowledged and dropped (a full
        receive window would stall its close)."""
        self.input = b""
        while sock.state is not TcpState.CLOSED and sock.recv(1 << 16):
            pass
