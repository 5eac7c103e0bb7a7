"""The distributed server's download service (DSERVER.md section 8; the seeds' 1 MB
experiment, at any size): HTTP/1.1 GET answered with one body, a file or a reproducible
generated one (:class:`~mip6.apps.http.Body`), whose output is regenerable: a handoff carries
the short snapshot (no unacknowledged bytes, DSERVER 4 rule 5) and the response head, and the
acceptor makes the rest of the stream again from the acknowledged offset, so the donor never
waits for its buffers to drain. Connections are persistent (RFC 9112 9.3): after a response
to an HTTP/1.1 request without ``Connection: close`` the next request is read (pipelined ones
wait their turn); the state then carries the last response (its stream offset and head) and
the next request's bytes, so a handoff or a replica taken between two requests, or before
the last response was acknowledged, resumes wherever the client stands.

``handoff_every``: hand the client to another member (the group's policy chooses) each time that
many more bytes of the response have been written; 0 never. The same request handling as
:class:`~mip6.apps.http.HostHttpServer` (:func:`~mip6.apps.http.response`).

``on_share_written``: the seeds' modified server instead (004 6.3, the buffer sweep): each
member writes exactly ``handoff_every`` bytes, stops, and calls it with the socket once its
last write has returned; whoever set it hands the client on when it chooses (a service has no
clock). ``handoff_drained``: the seeds' server of Fig. 12 (004 6.4: "the donor sends Prepare
right after its last send(), then waits for the socket to empty"): each member writes its
share, stops, and the client is handed on once it has acknowledged every byte; with PREPARE
the handoff is asked for at the last write and its freeze waits for the drain (:meth:`movable`),
so return routability runs while the buffer empties. Without either, the service writes on and
asks for the handoff itself once the client has acknowledged its share.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator
from ipaddress import IPv6Address
from typing import TYPE_CHECKING

from mip6.apps.http import MAX_HEAD, Body, response
from tcp_migrate.core import TcpState
from tcp_migrate.stack import Socket

if TYPE_CHECKING:
    from mip6.dserver.member import Member

# Unsent bytes the service keeps written ahead (Linux's TCP_NOTSENT_LOWAT): enough that the
# stack never waits for the application, and no more, for a handoff drops what was not sent
# (the acceptor makes it again) and every byte written is a byte generated.
NOT_SENT_LOW_WATER = 1 << 16
REQUEST = b"Q"  # application state: the request head read so far (no response yet)
# application state once a response began: its stream offset, flags and head, then the next
# request's bytes read so far; the stream from that offset is head + body
RESPONDING = b"S"
_RESPONSE = struct.Struct("!QBI")  # stream offset, flags, head length
_WITH_BODY = 0x01
_KEEP_ALIVE = 0x02

log = logging.getLogger(__name__)


class DownloadService:
    # regenerable output is replicated short; the seeds' full snapshots (``regenerable``
    # False) are handoffs only, as in their experiments (Service)
    full_replicas = False

    def __init__(
        self,
        body: Body,
        *,
        handoff_every: int = 0,
        regenerable: bool = True,
        on_share_written: Callable[[Socket], None] | None = None,
        handoff_drained: bool = False,
    ) -> None:
        self.body = body
        self.handoff_every = handoff_every
        self.regenerable = regenerable  # False: full snapshots (the seeds' way)
        self.on_share_written = on_share_written  # see the module docstring
        self.handoff_drained = handoff_drained  # see the module docstring
        self.served = 0
        self.handed_in_count = 0
        self.failed_handoffs = 0
        self._connections: dict[Socket, _Download] = {}

    # -- mip6.dserver.member.Service -----------------------------------------------------------

    def accepted(self, member: Member, sock: Socket) -> None:
        self._connections[sock] = _Download(self, member, sock)

    def export_state(self, sock: Socket) -> tuple[bytes, bool]:
        download = self._connections.get(sock)
        if download is None:
            return REQUEST, self.regenerable
        return download.state(), self.regenerable

    def handed_in(self, member: Member, sock: Socket, state: bytes) -> None:
        self.handed_in_count += 1
        self._connections[sock] = _Download(self, member, sock, state=state)

    def handed_off(self, sock: Socket) -> None:
        download = self._connections.pop(sock, None)
        if download is not None:
            download.gone = True
        sock.on_change = None

    def movable(self, sock: Socket) -> bool:
        # its state describes any point of the connection; only a share written for a
        # handoff_drained one waits until the client has acknowledged all of it
        download = self._connections.get(sock)
        return download is None or not download.draining or sock.send_buffered == 0

    def handoff_failed(self, client: IPv6Address, tried: tuple[IPv6Address, ...]) -> None:
        """The client stayed here: it is handed on again after another ``handoff_every``."""
        self.failed_handoffs += 1
        for sock, download in list(self._connections.items()):
            if sock.key[2] == client.packed and self.handoff_every:
                acknowledged = sock.write_offset - sock.send_buffered
                download.next_handoff = acknowledged + self.handoff_every
                if download.holding:
                    # a share written for that handoff: writing goes on here
                    download.holding = download.draining = False
                    download._changed(sock)

    def _forget(self, sock: Socket) -> None:
        self._connections.pop(sock, None)


class _Download:
    """One connection: a request head, then head + body from the stream offset the socket is
    at (0 for a new connection, the acknowledged offset after an import), then, on a
    keep-alive connection, the next request. The last response is remembered until the next
    one begins: a replica or handoff taken while it was still going out (or not yet
    acknowledged) resumes it wherever the client stands."""

    def __init__(
        self, service: DownloadService, member: Member, sock: Socket, state: bytes = REQUEST
    ) -> None:
        self.service = service
        self.member = member
        self.sock = sock
        self.gone = False
        self.request = b""  # the next request's bytes read so far
        self.response_head: bytes | None = None  # the last response's
        self.response_start = 0  # its stream offset
        self.with_body = False
        self.keep_alive = False  # the connection goes on after it
        # what is left of the chunk being written: a view, so that taking what the send ring
        # took off its front copies nothing (a 64 KiB chunk goes in a window at a time)
        self.pending = memoryview(b"")
        self.chunks: Iterator[bytes] | None = None  # None: reading a request
        self.written = sock.write_offset  # stream offset of the next byte handed to the socket
        self.next_handoff = 0
        self.holding = False  # the share is written (see _write): no more writes here
        # handoff_drained: the share is written and the handoff waits for the client's
        # acknowledgement of all of it (asked for already with PREPARE, at the drain without)
        self.draining = False
        if state.startswith(RESPONDING):
            start, flags, length = _RESPONSE.unpack_from(state, len(RESPONDING))
            at = len(RESPONDING) + _RESPONSE.size
            self.request = state[at + length :]
            self._respond(
                state[at : at + length],
                start,
                sock.write_offset,
                with_body=bool(flags & _WITH_BODY),
                keep_alive=bool(flags & _KEEP_ALIVE),
            )
        else:
            self.request = state[len(REQUEST) :]
        sock.on_change = self._changed
        if not sock.frozen:
            self._changed(sock)

    def state(self) -> bytes:
        if self.response_head is None:
            return REQUEST + self.request
        flags = (_WITH_BODY if self.with_body else 0) | (_KEEP_ALIVE if self.keep_alive else 0)
        head = self.response_head
        return (
            RESPONDING + _RESPONSE.pack(self.response_start, flags, len(head)) + head + self.request
        )

    def _response_end(self) -> int:
        assert self.response_head is not None
        length = self.service.body.length() if self.with_body else 0
        return self.response_start + len(self.response_head) + length

    def _respond(
        self, head: bytes, start: int, offset: int, *, with_body: bool, keep_alive: bool
    ) -> None:
        """The response ``head`` (+ body) beginning at stream offset ``start``, written from
        ``offset`` on."""
        self.response_head = head
        self.response_start = start
        self.with_body = with_body
        self.keep_alive = keep_alive
        self.written = offset
        into = offset - start
        body_start = max(into - len(head), 0)
        self.pending = memoryview(head)[into:] if into < len(head) else memoryview(b"")
        length = self.service.body.length()
        self.chunks = (
            self.service.body.chunks(body_start)
            if self.with_body and body_start < length
            else iter(())
        )
        # each member writes ``handoff_every`` bytes before it hands on: counted from where
        # it resumed (the acknowledged offset), not from multiples of the stream, or a donor's
        # unacknowledged bytes would leave the next member a handful to write
        every = self.service.handoff_every
        self.next_handoff = offset + every if every else 0

    def _changed(self, sock: Socket) -> None:
        if sock.conn.resyncing:
            # resumed from a replica: nothing is written until the client's answer says where
            # the stream stands (what went before would be dropped, and a close would end it)
            return
        if self.gone or sock.frozen or sock.closed_by_app or sock.state is TcpState.CLOSED:
            if sock.state is TcpState.CLOSED:
                self.service._forget(sock)
            return
        if self.response_head is not None and sock.write_offset != self.written:
            # a connection recovered from a replica (tcp_migrate's resync) restarts its
            # stream where the client stands, which the replica did not know: inside the
            # last response, or at its end (the request phase that followed it)
            end = self._response_end()
            if sock.write_offset == end + 1 and not self.keep_alive:
                # the client acknowledged the FIN after the last response too: it has all it
                # asked for (a replica taken before the dead member's FIN went). A FIN now
                # would be a second one, a sequence number past the first, which a client
                # closed by then answers with a RST: the connection ends without one once
                # the client's own FIN is in (the stack acknowledges it)
                if sock.at_eof:
                    self.gone = True
                    self.service._forget(sock)
                    self.member.let_go(sock)
                return
            if sock.write_offset > end:
                self._lost(sock, "the client stands past the last response the replica knew")
                return
            self._respond(
                self.response_head,
                self.response_start,
                sock.write_offset,
                with_body=self.with_body,
                keep_alive=self.keep_alive,
            )
        while True:
            if self.chunks is None:
                if sock.conn.resync_gap:
                    # resumed from a replica taken before the request had come: the dead
                    # member had it (the client's sequence number is past it) and it is lost
                    # with it. Nothing can answer it: a clean reset, never a client waiting
                    self._lost(sock, "the request was lost with a dead member")
                    return
                if not self._read_request(sock):
                    return
            if not self._write(sock):
                return
            self.service.served += 1
            if not self.keep_alive:
                sock.recv(1 << 16)  # what a client sends after its request is not ours
                sock.close()
                return
            self.chunks = None  # the next request

    def _write(self, sock: Socket) -> bool:
        """Writes the response as the send buffer takes it; True once all of it is written."""
        assert self.chunks is not None
        service = self.service
        # the seeds' servers stop at their share (see the module docstring)
        stops = service.on_share_written is not None or service.handoff_drained
        if self.holding:
            if self.draining and sock.send_buffered == 0 and not self.member.config.prepare:
                self.draining = False  # all of it acknowledged: the handoff freezes at once
                self.member.request_handoff(IPv6Address(sock.key[2]))
            return False  # the share is written; the handoff comes (or is the driver's)
        # progress is what the client acknowledged, not what the send buffer took: a member
        # that has just resumed fills its buffer at once
        acknowledged = sock.write_offset - sock.send_buffered
        if not stops and self.next_handoff and acknowledged >= self.next_handoff:
            self.next_handoff = 0  # one request per member: the next one is the acceptor's
            self.member.request_handoff(IPv6Address(sock.key[2]))
        while True:
            if not self.pending:
                self.pending = memoryview(next(self.chunks, b""))
                if not self.pending:
                    return True
            if stops and self.next_handoff and self.written >= self.next_handoff:
                self.holding = True
                if service.on_share_written is not None:
                    service.on_share_written(sock)
                    return False
                self.draining = True
                if self.member.config.prepare:
                    # 004 6.4: PREPARE right after the last send; the freeze waits for the
                    # drain (movable), return routability runs meanwhile
                    self.member.request_handoff(IPv6Address(sock.key[2]))
                    return False
                return self._write(sock)  # asks for it at once when nothing is in flight
            if not sock.send_space or sock.unsent >= NOT_SENT_LOW_WATER:
                return False  # more when the send buffer drains
            share = self.next_handoff - self.written if stops and self.next_handoff else None
            sent = sock.send(self.pending[:share])
            self.pending = self.pending[sent:]
            self.written += sent

    def _lost(self, sock: Socket, why: str) -> None:
        log.warning("download %s: %s: reset", sock.remote, why)
        self.gone = True
        self.service._forget(sock)
        sock.abort()

    def _read_request(self, sock: Socket) -> bool:
        self.request += sock.recv(MAX_HEAD + 1 - len(self.request))
        end = self.request.find(b"\r\n\r\n")
        if end < 0 and len(self.request) <= MAX_HEAD:
            if sock.at_eof:
                sock.close()
            return False
        head = self.request[: end + 4] if end >= 0 else b""
        # a pipelined request behind this one waits for its turn (RFC 9112 9.3.2)
        self.request = self.request[end + 4 :] if end >= 0 else b""
        answer, with_body, keep_alive = response(head, self.service.body, keep_alive=True)
        self._respond(
            answer, self.written, self.written, with_body=with_body, keep_alive=keep_alive
        )
        # a request boundary: the member's buddy gets the connection (issue 15 item 3); the
        # body is regenerable, so this one replica serves for the whole response
        self.member.request_replicate(IPv6Address(sock.key[2]), hold=(sock,))
        return True
