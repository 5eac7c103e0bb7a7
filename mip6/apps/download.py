"""The distributed server's download service (DSERVER.md section 8; the seeds' 1 MB
experiment, at any size): HTTP/1.1 GET answered with one body, a file or a reproducible
generated one (:class:`~mip6.apps.http.Body`), whose output is regenerable: a handoff carries
the short snapshot (no unacknowledged bytes, DSERVER 4 rule 5) and the response head, and the
acceptor makes the rest of the stream again from the acknowledged offset, so the donor never
waits for its buffers to drain.

``handoff_every``: hand the client to another member (the group's policy chooses) each time that
many more bytes of the response have been written; 0 never. The same request handling as
:class:`~mip6.apps.http.HostHttpServer` (:func:`~mip6.apps.http.response`).

``on_share_written``: the seeds' modified server instead (004 6.3, the buffer sweep): each
member writes exactly ``handoff_every`` bytes, stops, and calls it with the socket once its
last write has returned; whoever set it hands the client on when it chooses (a service has no
clock). Without it the service writes on and asks for the handoff itself once the client has
acknowledged its share.
"""

from __future__ import annotations

import logging
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
REQUEST = b"Q"  # application state: the request head read so far
RESPONDING = b"S"  # application state: the response head; the stream is head + body

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
    ) -> None:
        self.body = body
        self.handoff_every = handoff_every
        self.regenerable = regenerable  # False: full snapshots (the seeds' way)
        self.on_share_written = on_share_written  # see the module docstring
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
        if download.response_head is None:
            return REQUEST + download.request, self.regenerable
        body_flag = b"1" if download.with_body else b"0"
        return RESPONDING + body_flag + download.response_head, self.regenerable

    def handed_in(self, member: Member, sock: Socket, state: bytes) -> None:
        self.handed_in_count += 1
        self._connections[sock] = _Download(self, member, sock, state=state)

    def handed_off(self, sock: Socket) -> None:
        download = self._connections.pop(sock, None)
        if download is not None:
            download.gone = True
        sock.on_change = None

    def movable(self, sock: Socket) -> bool:
        return True  # its state describes any point of the connection

    def handoff_failed(self, client: IPv6Address, tried: tuple[IPv6Address, ...]) -> None:
        """The client stayed here: it is handed on again after another ``handoff_every``."""
        self.failed_handoffs += 1
        for sock, download in self._connections.items():
            if sock.key[2] == client.packed and self.handoff_every:
                acknowledged = sock.write_offset - sock.send_buffered
                download.next_handoff = acknowledged + self.handoff_every

    def _forget(self, sock: Socket) -> None:
        self._connections.pop(sock, None)


class _Download:
    """One connection: the request head, then head + body from the stream offset the socket
    is at (0 for a new connection, the acknowledged offset after an import)."""

    def __init__(
        self, service: DownloadService, member: Member, sock: Socket, state: bytes = REQUEST
    ) -> None:
        self.service = service
        self.member = member
        self.sock = sock
        self.gone = False
        self.request = b""
        self.response_head: bytes | None = None
        self.with_body = False
        # what is left of the chunk being written: a view, so that taking what the send ring
        # took off its front copies nothing (a 64 KiB chunk goes in a window at a time)
        self.pending = memoryview(b"")
        self.chunks: Iterator[bytes] | None = None
        self.written = 0  # stream offset of the next byte handed to the socket
        self.next_handoff = 0
        self.holding = False  # on_share_written was called: no more writes here
        if state.startswith(RESPONDING):
            flag, head = state[len(RESPONDING) : len(RESPONDING) + 1], state[len(RESPONDING) + 1 :]
            self._respond(head, sock.write_offset, with_body=flag == b"1")
        else:
            self.request = state[len(REQUEST) :]
        sock.on_change = self._changed
        if not sock.frozen:
            self._changed(sock)

    def _respond(self, head: bytes, offset: int, *, with_body: bool) -> None:
        self.response_head = head
        self.with_body = with_body
        self.written = offset
        body_start = max(offset - len(head), 0)
        self.pending = memoryview(head)[offset:]
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
        if self.chunks is None and sock.conn.resync_gap:
            # resumed from a replica taken before the request had come: the dead member had it
            # (the client's sequence number is past it) and it is lost with it. Nothing can
            # answer it: a clean reset, never a client left waiting
            log.warning("download %s: the request was lost with a dead member: reset", sock.remote)
            self.gone = True
            self.service._forget(sock)
            sock.abort()
            return
        if self.chunks is None and not self._read_request(sock):
            return
        assert self.chunks is not None and self.response_head is not None
        if sock.write_offset != self.written:
            # a connection recovered from a replica (tcp_migrate's resync) restarts its
            # stream where the client stands, which the replica did not know
            self._respond(self.response_head, sock.write_offset, with_body=self.with_body)
        held = self.service.on_share_written
        if self.holding:
            return  # the share is written; the handoff is the driver's
        # progress is what the client acknowledged, not what the send buffer took: a member
        # that has just resumed fills its buffer at once
        acknowledged = sock.write_offset - sock.send_buffered
        if not held and self.next_handoff and acknowledged >= self.next_handoff:
            self.next_handoff = 0  # one request per member: the next one is the acceptor's
            self.member.request_handoff(IPv6Address(sock.key[2]))
        while True:
            if not self.pending:
                self.pending = memoryview(next(self.chunks, b""))
                if not self.pending:
                    break
            if held and self.next_handoff and self.written >= self.next_handoff:
                self.holding = True
                held(sock)
                return
            if not sock.send_space or sock.unsent >= NOT_SENT_LOW_WATER:
                return  # more when the send buffer drains
            share = self.next_handoff - self.written if held and self.next_handoff else None
            sent = sock.send(self.pending[:share])
            self.pending = self.pending[sent:]
            self.written += sent
        sock.recv(1 << 16)  # what a client sends after its request is not ours to keep
        self.service.served += 1
        sock.close()

    def _read_request(self, sock: Socket) -> bool:
        self.request += sock.recv(MAX_HEAD + 1 - len(self.request))
        end = self.request.find(b"\r\n\r\n")
        if end < 0 and len(self.request) <= MAX_HEAD:
            if sock.at_eof:
                sock.close()
            return False
        head = self.request[: end + 4] if end >= 0 else b""
        answer, with_body = response(head, self.service.body)
        self._respond(answer, 0, with_body=with_body)
        # a request boundary: the member's buddy gets the connection (issue 15 item 3); the
        # body is regenerable, so this one replica serves for the whole response
        self.member.request_replicate(IPv6Address(sock.key[2]), hold=(sock,))
        return True
