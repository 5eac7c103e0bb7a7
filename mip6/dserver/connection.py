"""The member channel on a member's own TCP stack (DSERVER.md section 6): a
:class:`~mip6.dserver.channel.Channel` over one tcp_migrate connection of the member's
sans-I/O host (:class:`~mip6.runtime.host.Host`), driven by the stack's callbacks, so it runs
the same on virtual time in the simulator and in the daemon.

:class:`MemberConnection` writes what the channel has to send as the send buffer takes it (a
frame larger than the buffer goes out in pieces as the peer acknowledges), hands every byte read
to the channel, and reports its events (:class:`~mip6.dserver.channel.Established`,
:class:`~mip6.dserver.channel.MessageReceived`, :class:`~mip6.dserver.channel.Closed`) to
``on_event``. When the channel closes (a forged, replayed or truncated frame, a wrong group
key, the peer's end of stream) the TCP connection is closed after what is sealed has gone out
(messages not sealed yet go with the channel), and nothing more is read from it.

Messages wait emitted but unsealed until the send buffer has room, in two queues: replicas (and
their drops, which must not overtake them) behind everything else. A frame is sealed when it
goes into the send buffer, so a membership or handoff message waits behind at most what the
buffer holds, never behind a backlog of replicas (a loaded chaos run's contact node had 150 kB
of them queued to a backup, its two-phase commit timed out behind them, and a member could not
join for good). Replicas go into the send buffer only while it holds less than
:data:`BULK_BUFFERED`: a full buffer (256 kB) of them still stood between a member's vote and
its contact node on a path with 1% loss for longer than the vote's timeout, and the group
removed live members (two chaos runs' cascades of false removals and lost connections).
:func:`connect` opens one to another member; :class:`MemberListener` accepts them on the member
channel's port.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from ipaddress import IPv6Address

from mip6.dserver.channel import (
    FRAME_OVERHEAD,
    Channel,
    Closed,
    Established,
    Event,
    Role,
    State,
)
from mip6.dserver.messages import Message, Replica, ReplicaDrop
from tcp_migrate.core import TcpState
from tcp_migrate.stack import Listener, Socket

READ_SIZE = 1 << 16
BULK = (Replica, ReplicaDrop)  # queued behind everything else, in their own order
# bytes in the send buffer (unacknowledged included) above which no replica is added: what a
# membership or handoff message may find ahead of it, about two round trips' worth of a
# lossy path's window
BULK_BUFFERED = 32 * 1024

EventHandler = Callable[["MemberConnection", Event], None]
ChannelFactory = Callable[[Role], Channel]


class MemberConnection:
    def __init__(self, sock: Socket, channel: Channel, on_event: EventHandler) -> None:
        self.sock = sock
        self.peer = IPv6Address(sock.key[2])  # the address connected to (or from)
        self.local = IPv6Address(sock.key[0])  # this end's: own or the contact address
        # the address the peer proved it holds the group key for, in its hello: its own
        # address, also on a channel opened to the contact address (DSERVER 5, Q1)
        self.identity: IPv6Address | None = None
        self.channel = channel
        self.on_event = on_event
        self.closed = False
        self.established = False
        self._waiting: list[Message] = []  # sent before the handshake ended
        self._out = bytearray(channel.start())  # sealed, for the send buffer
        # emitted, not sealed yet (see the module docstring), and their bytes
        self._urgent: deque[bytes] = deque()
        self._bulk: deque[bytes] = deque()
        self._pending = 0
        sock.on_change = self._changed
        self._changed(sock)

    def send(self, message: Message) -> None:
        """Queue ``message``; it leaves at the host's next output, or once the handshake has
        proved the peer holds the group key. Dropped if the channel has closed."""
        if self.closed:
            return
        if not self.established:
            self._waiting.append(message)
            return
        self._queue(message)
        self._flush()

    def _queue(self, message: Message) -> None:
        payload = message.emit()
        (self._bulk if isinstance(message, BULK) else self._urgent).append(payload)
        self._pending += len(payload) + FRAME_OVERHEAD  # as it will go: sealed

    def _changed(self, sock: Socket) -> None:
        if self.closed:
            return
        events: list[Event] = []
        # a connection reset or aborted (the member stopping) has nothing to read: recv would
        # raise in CLOSED; the end of stream below closes the channel
        while (
            not self.closed and sock.state is not TcpState.CLOSED and (data := sock.recv(READ_SIZE))
        ):
            events += self.channel.receive_data(data)
        if sock.at_eof or sock.state is TcpState.CLOSED:
            events += self.channel.receive_data(b"")  # the peer's end of stream
        if self.channel.state is State.CLOSED:
            # closed now, before the flush below: a replica waiting for room (which the same
            # segment's acknowledgement may have made) sealed on a closed channel would raise,
            # and a message an event's handler sends is dropped (the Closed event comes last)
            self.closed = True
        self._out += self.channel.data_to_send()
        self._flush()
        for event in events:
            if isinstance(event, Closed):
                self.closed = True
                self._waiting.clear()
            elif isinstance(event, Established):
                self.established = True
                self.identity = event.peer_identity
                for message in self._waiting:
                    self._queue(message)
                self._waiting.clear()
                self._flush()
            self.on_event(self, event)
        if self.closed:
            self._flush()
            sock.close()

    @property
    def queued(self) -> int:
        """Bytes sent on the channel that the peer has not acknowledged yet (waiting here or in
        the TCP send buffer): what the peer would never get if this member died now."""
        return self._pending + len(self._out) + self.sock.send_buffered

    def _flush(self) -> None:
        sock = self.sock
        # a send with no room would still mark the connection as having output due
        while sock.send_space and not sock.closed_by_app:
            if not self._out:
                queue = self._urgent or (self._bulk if sock.send_buffered < BULK_BUFFERED else None)
                if not queue or self.closed:
                    break
                payload = queue.popleft()
                self._pending -= len(payload) + FRAME_OVERHEAD
                self._out += self.channel.send_emitted(payload)
            sent = sock.send(bytes(self._out[: sock.send_space]))
            del self._out[:sent]


def connect(
    host_connect: Callable[[IPv6Address, int], Socket],
    peer: IPv6Address,
    port: int,
    make_channel: ChannelFactory,
    on_event: EventHandler,
) -> MemberConnection:
    """A member channel to ``peer``: ``host_connect(peer, port)`` opens the TCP connection
    (e.g. ``functools.partial(host.connect, now)``), this member is the channel's initiator."""
    return MemberConnection(host_connect(peer, port), make_channel(Role.INITIATOR), on_event)


class MemberListener:
    """Accepts member channels on ``listener``; each becomes a :class:`MemberConnection` whose
    events go to ``on_event`` (this member is the responder)."""

    def __init__(
        self, listener: Listener, make_channel: ChannelFactory, on_event: EventHandler
    ) -> None:
        self.listener = listener
        self.make_channel = make_channel
        self.on_event = on_event
        self.connections: list[MemberConnection] = []
        listener.on_change = self._accept

    def _accept(self, listener: Listener) -> None:
        while (sock := listener.accept()) is not None:
            self.connections = [c for c in self.connections if not c.closed]
            self.connections.append(
                MemberConnection(sock, self.make_channel(Role.RESPONDER), self.on_event)
            )

    def close(self) -> None:
        self.listener.close()
