"""Host mode (ARCHITECTURE 4): the IPv6 host above a role engine, sans-I/O.

A :class:`Host` owns the node's addresses (several: a member of a distributed server holds the
contact address and its own), a tcp_migrate :class:`~tcp_migrate.stack.Stack` bound to them,
its bound UDP ports and the ICMPv6 Echo answers. Events in, actions out, like the engines: the
driver hands it what the engine delivers (:meth:`Host.deliver`), the timers it asked for
(:meth:`Host.handle_timer`), and collects the output of application calls with
:meth:`Host.poll`. What it returns:

- :class:`~mip6.core.actions.Transmit`: a packet for the engine's send path (binding cache
  translation, Home Address option, reverse tunnelling), as the kernel's packets take it in
  shim mode;
- :class:`IcmpError`: an ICMPv6 error the engine sends through its own error path (rate
  limited, from the right address);
- timers (:data:`TCP_TIMER`) and :class:`~mip6.core.actions.Event`.

IPv6 (RFC 8200): fragments are reassembled (:mod:`mip6.runtime.fragments`: bounded memory,
the 60 s timeout with its Time Exceeded, RFC 5722's overlaps, the Parameter Problems of 4.5),
atomic fragments processed on their own (RFC 6946); a packet whose upper layer the host does
not know gets a Parameter Problem, code 1, pointing at the Next Header that names it (RFC 8200
4), and one with No Next Header (59) is ignored (4.7). What the host sends is fragmented when
it is bigger than the path takes (4.5): the path MTU per destination (:mod:`mip6.runtime.pmtu`,
RFC 8201, lowered by Packet Too Big messages about our packets, aged back after 10 minutes)
less what the engine's send path adds (``send_overhead``: a tunnel, a Home Address option, a
type 2 routing header). TCP sizes its segments to fit instead: a new connection's MSS from the
path, an open one's lowered by a Packet Too Big or by a segment that had to be fragmented.

TCP goes to the stack, which answers a segment for no connection and no listener with a RST
(RFC 9293 3.10.7.1); UDP goes to the port bound with :meth:`Host.udp_bind`, and a datagram for
a port nobody bound gets an ICMPv6 Destination Unreachable, code 4 (RFC 4443 3.1); ICMPv6 Echo
Requests are answered (:func:`mip6.apps.echo.echo`).

Time comes in as seconds (the engines' clock); the stack counts integer milliseconds. They meet
in one place, :func:`stack_ms` and :func:`stack_seconds`.

Connections move: :meth:`Host.export` freezes one and returns its snapshot,
:meth:`Host.import_connection` takes one in frozen, :meth:`Host.release` gives one up without a
RST (segments still reaching it are dropped silently), and :meth:`Host.close` aborts the open
connections but releases the frozen ones, which are being handed off.

:class:`AsyncHost` is the asyncio adapter the daemon gives applications: tcp_migrate's streams
(``open_connection``, ``start_server``, :meth:`AsyncHost.streams` over an accepted or imported
connection) and the UDP API.

Not here: multicast groups; options in extension headers after a Fragment header (the
engine's pipeline processes those before it, the host steps over those after it).
"""

from __future__ import annotations

import asyncio
import errno
import random
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Any

from mip6.apps.echo import echo
from mip6.core.actions import CancelTimer, Event, StartTimer, Transmit
from mip6.core.datapath import TUNNEL_OVERHEAD
from mip6.core.node import UpperLayerError
from mip6.runtime import fragments, pmtu
from mip6.wire import icmpv6 as icmp
from mip6.wire import protocols
from mip6.wire.errors import WireError
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.udp import UdpDatagram
from mip6.wire.walk import walk
from tcp_migrate.core import Config
from tcp_migrate.stack import Listener, Socket, Stack
from tcp_migrate.tun import (
    ClientConnected,
    Coalesced,
    Server,
    StreamWriter,
    open_connection,
    start_server,
    wrap_socket,
)

EPHEMERAL_PORTS = (49152, 65535)  # RFC 6335 6: the dynamic range
# The host's one timer: the stack's next deadline or a reassembly's timeout, the earlier
TCP_TIMER = "tcp"
MAX_POLLS = 64  # polls in a row while application callbacks keep leaving output due
TCP_HEADERS = 40 + 20  # an IPv6 header and a TCP header without options: packet = MSS + this
# No send path adds more than a tunnel's header (RFC 2473), so a packet up to this size fits
# any path (RFC 8200 5: 1280 at least) and needs no look-up.
ALWAYS_FITS = pmtu.MINIMUM_MTU - TUNNEL_OVERHEAD
MAX_REASSEMBLY_PASSES = 4  # a reassembled packet that holds a Fragment header again, at most
# Upper layers the host reads; 59 (No Next Header) is known too (RFC 8200 4.7: ignored)
_KNOWN_UPPER = frozenset((protocols.TCP, protocols.UDP, protocols.ICMPV6))
Address = tuple[str, int]
# payload, the sender's (address, port), the (address, port) it was sent to
DatagramReceiver = Callable[[bytes, Address, Address], None]


def stack_ms(now: float) -> int:
    """The stack's clock (integer milliseconds) at ``now`` (seconds). Rounded, not truncated:
    a timer the stack set for millisecond ``d`` fires at ``d / 1000`` seconds, which must read
    back as ``d`` (0.29 * 1000 is 289.99999999999994)."""
    return int(now * 1000 + 0.5)


def stack_seconds(ms: int) -> float:
    return ms / 1000


@dataclass(frozen=True, slots=True)
class IcmpError:
    """Answer ``invoking`` with the ICMPv6 error ``message`` (its invoking packet left empty),
    if the node's error path allows (the engine contract's ``upper_layer_error``)."""

    invoking: bytes
    message: UpperLayerError


HostAction = Transmit | IcmpError | StartTimer | CancelTimer | Event


@dataclass(frozen=True, slots=True, kw_only=True)
class IpSettings:
    """The host's IPv6 layer: ``link_mtu`` (bytes) is the path MTU to every destination until
    a Packet Too Big says less (RFC 8201 4: the first hop's MTU); reassembly holds at most
    ``reassembly_max_bytes`` and ``reassembly_max_datagrams`` at once
    (:mod:`mip6.runtime.fragments`)."""

    link_mtu: int = pmtu.LINK_MTU
    reassembly_max_bytes: int = fragments.MAX_BYTES
    reassembly_max_datagrams: int = fragments.MAX_DATAGRAMS


class UdpEndpoint:
    """One bound UDP port of a :class:`Host` (:meth:`Host.udp_bind`)."""

    def __init__(self, host: Host, port: int, receive: DatagramReceiver) -> None:
        self.host = host
        self.port = port
        self.receive = receive
        self.closed = False

    def sendto(self, data: bytes, remote: Address, source: str | None = None) -> None:
        """One datagram to ``remote`` from this port, from ``source`` (default the host's
        first address: a mobile node's home address). It leaves at the host's next output."""
        if self.closed:
            raise OSError(errno.EBADF, "UDP endpoint closed")
        self.host.send_udp(data, self.port, remote, source)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.host._udp.pop(self.port, None)


# The host's TCP: tcp_migrate's settings but for two of Linux's. The minimum retransmission
# timeout is TCP_RTO_MIN (200 ms) rather than RFC 6298 2.4's 1 s (which it lets an
# implementation lower): after a move, a segment lost on the old path stalled the transfer for
# a whole second. The initial window is RFC 6928's ten segments (TCP_INIT_CWND) rather than
# RFC 5681's three: a 10 kB answer goes in one flight, as a kernel server's does, not three
# (`labnet bench proxy` measured the two round trips more against the kernel server). A
# node's ``tcp`` block (mip6.runtime.config) changes these.
TCP_DEFAULTS = Config(rto_min_ms=200, initial_window=10)


class Host:
    """The host-mode upper layers (see the module docstring). ``addresses`` are the node's own
    (the first is the default source); ``secret`` keys the stack's ISS and port hashes;
    ``on_output`` (if given) is called when a datagram was sent outside :meth:`deliver`: the
    driver's cue to :meth:`poll` soon (TCP applications call their driver's ``kick``);
    ``max_connections`` bounds the stack's table (TIME-WAIT included); ``ip`` sets the IPv6
    layer; ``rng`` draws the Fragment headers' Identification (RFC 8200 4.5; RFC 7739:
    unpredictable), by default a generator seeded from ``secret``; ``send_overhead(now,
    source, destination)`` says how many bytes the engine's send path adds to a packet (the
    engine contract's; the node runtime sets it), by default none."""

    def __init__(
        self,
        *,
        addresses: Iterable[IPv6Address],
        secret: bytes,
        tcp_config: Config | None = None,
        on_output: Callable[[], None] | None = None,
        max_connections: int = 1024,
        ip: IpSettings | None = None,
        rng: random.Random | None = None,
        send_overhead: Callable[[float, bytes, bytes], int] | None = None,
    ) -> None:
        self.addresses = tuple(addresses)
        if not self.addresses:
            raise ValueError("a host needs at least one address")
        ip = ip if ip is not None else IpSettings()
        self._out: list[HostAction] = []
        self.stack = Stack(
            transmit=self._transmit,
            local_addresses=self.addresses,
            secret=secret,
            config=tcp_config if tcp_config is not None else TCP_DEFAULTS,
            max_connections=max_connections,
            mss_limit=self._mss_limit,
        )
        self.on_output = on_output
        self.send_overhead = send_overhead
        self.rng = rng if rng is not None else random.Random(secret)
        self.path_mtu = pmtu.PathMtuCache(link_mtu=ip.link_mtu)
        self.reassembler = fragments.Reassembler(
            on_drop=self._fragment_dropped,
            max_bytes=ip.reassembly_max_bytes,
            max_datagrams=ip.reassembly_max_datagrams,
        )
        self._udp: dict[int, UdpEndpoint] = {}
        self._next_port = 0
        self._armed: int | None = None  # the deadline our TCP_TIMER is set for (ms)
        self.counters: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _fragment_dropped(self, drop: fragments.Drop) -> None:
        self._count(f"fragment_{drop.value}")

    def _transmit(self, packet: bytes) -> None:
        # The stack sends only while it runs, inside deliver, handle_timer or poll, which
        # return what it sent.
        self._out.append(Transmit(packet))

    # -- addresses -------------------------------------------------------------------------------

    def add_address(self, address: IPv6Address) -> None:
        if address not in self.addresses:
            self.addresses = (*self.addresses, address)
            self.stack.local_addresses = frozenset(a.packed for a in self.addresses)

    def remove_address(self, address: IPv6Address) -> None:
        """Stop answering for ``address`` (its connections stay until they close)."""
        remaining = tuple(a for a in self.addresses if a != address)
        if not remaining:
            raise ValueError("a host needs at least one address")
        self.addresses = remaining
        self.stack.local_addresses = frozenset(a.packed for a in remaining)

    # -- events in -------------------------------------------------------------------------------

    def deliver(self, now: float, data: bytes) -> list[HostAction]:
        """One packet the engine delivered."""
        if len(data) >= 40 and data[6] == protocols.TCP:
            # no extension header: the stack checks the rest itself (its own walk)
            self._count("tcp_in")
            self.stack.receive(stack_ms(now), data)
            return self._output(now)
        for _ in range(MAX_REASSEMBLY_PASSES):
            whole = self._receive(now, data)
            if whole is None:
                break
            data = whole
        else:
            self._count("fragment_nested")
        return self._output(now)

    def after_input(self, now: float, delivered: list[tuple[Socket, bool]]) -> list[HostAction]:
        """Segments the daemon's C fast path gave connections' cores itself, their answers
        sent (:class:`mip6.runtime.fast.FastHost`): per connection, whether RCV.NXT moved; the
        stack's bookkeeping after them (:meth:`Stack.after_input`) and what it leaves due."""
        ms = stack_ms(now)
        for sock, received in delivered:
            self.stack.after_input(ms, sock, received=received)
        return self._output(now)

    def _receive(self, now: float, data: bytes) -> bytes | None:
        """One packet to its upper layer; a fragment to reassembly. A whole packet to go
        round again (reassembled, or an atomic fragment without its Fragment header)."""
        try:
            chain = walk(data)
        except WireError:
            self._count("malformed")
            return None
        if chain.upper_offset > 40:
            found = fragments.find_fragment(data)
            if found is not None:
                if not chain.fragmented:
                    self._count("atomic_fragment_in")  # RFC 6946 4: on its own
                    return fragments.strip_atomic(data, found)
                return self._fragment_in(now, data, found)
        protocol = chain.upper_protocol
        if protocol == protocols.TCP:
            self._count("tcp_in")
            self.stack.receive(stack_ms(now), data)
        elif protocol == protocols.UDP:
            self._udp_in(data, chain.upper_offset, chain.source, chain.destination)
        elif protocol == protocols.ICMPV6:
            self._icmp_in(now, data, chain.upper_offset)
        elif protocol == protocols.NO_NEXT_HEADER:
            self._count("no_next_header")  # RFC 8200 4.7: nothing follows; ignored
        else:
            # RFC 8200 4: "...it should discard the packet and send an ICMP Parameter Problem
            # message to the source of the packet, with an ICMP Code value of 1
            # ("unrecognized Next Header type encountered") and the ICMP Pointer field
            # containing the offset of the unrecognized value within the original packet."
            self._count("unrecognized_next_header")
            *_, upper = fragments.headers(data, len(data))
            self._error(data, icmp.ParameterProblem(code=1, pointer=upper.named_at))
        return None

    def _fragment_in(self, now: float, data: bytes, found: fragments.Fragment) -> bytes | None:
        self._count("fragments_in")
        result = self.reassembler.receive(now, data, found)
        if isinstance(result, fragments.Refused):
            if result.error is not None:
                self._error(data, result.error)
            return None
        if result is not None:
            self._count("reassembled")
        return result

    def _error(self, invoking: bytes, message: UpperLayerError) -> None:
        self._out.append(IcmpError(invoking, message))

    def _icmp_in(self, now: float, data: bytes, offset: int) -> None:
        if offset < len(data) and data[offset] == icmp.PACKET_TOO_BIG:
            self._packet_too_big(now, data)
            return
        answers = echo(now, data)
        self._count("echo_answered" if answers else "icmp_ignored")
        self._out += [Transmit(answer) for answer in answers]

    def _packet_too_big(self, now: float, data: bytes) -> None:
        """RFC 8201 4: a Packet Too Big about a packet this host sent lowers the estimate for
        its destination, and the open TCP connections to it send smaller segments (5.2)."""
        try:
            message = Ipv6Packet.parse(data).payload
        except WireError:
            self._count("icmp_malformed")
            return
        assert isinstance(message, icmp.PacketTooBig)
        invoking = pmtu.about(message.invoking_packet)
        # RFC 8201 4: "Nodes should appropriately validate the payload of ICMPv6 PTB
        # messages to ensure these are received in response to transmitted traffic"
        if invoking is None or invoking.source not in self.stack.local_addresses:
            self._count("packet_too_big_not_ours")
            return
        lowered = self.path_mtu.lower(now, invoking.destination, message.mtu)
        if lowered is None:
            self._count("packet_too_big_ignored")
            return
        self._count("packet_too_big")
        room = self._room(now, invoking.source, invoking.destination)
        self.stack.limit_mss(invoking.destination, room - TCP_HEADERS)

    def _room(self, now: float, source: bytes, destination: bytes) -> int:
        """The largest packet the host may send from ``source`` to ``destination`` now: the
        path MTU less what the engine's send path adds."""
        overhead = self.send_overhead(now, source, destination) if self.send_overhead else 0
        return self.path_mtu.get(now, destination) - overhead

    def _mss_limit(self, now_ms: int, local: bytes, remote: bytes) -> int:
        """RFC 9293 3.7.1 (and RFC 8201 5.2): a new connection's MSS fits the path."""
        return self._room(stack_seconds(now_ms), local, remote) - TCP_HEADERS

    def handle_timer(self, now: float, token: Hashable) -> list[HostAction]:
        if token == TCP_TIMER:
            self._armed = None
            for expired in self.reassembler.expire(now):
                if expired.first is not None:
                    # RFC 8200 4.5: "If the first fragment (i.e., the one with a Fragment
                    # Offset of zero) has been received, an ICMP Time Exceeded -- Fragment
                    # Reassembly Time Exceeded message should be sent to the source of that
                    # fragment."
                    self._error(
                        expired.first,
                        icmp.TimeExceeded(code=icmp.FRAGMENT_REASSEMBLY_TIME_EXCEEDED),
                    )
        return self._output(now)

    def poll(self, now: float) -> list[HostAction]:
        """What application calls left due (segments, datagrams) and the timer's new time."""
        if not self._out:
            deadline = self._deadline()  # 0 when application calls left output due
            if deadline == self._armed and (deadline is None or deadline > stack_ms(now)):
                return []  # nothing due and the timer already set for it (engines poll a lot)
        return self._output(now)

    def _deadline(self) -> int | None:
        """The host's next deadline (ms): the stack's or the oldest reassembly's."""
        deadline = self.stack.next_deadline()
        reassembly = self.reassembler.next_deadline()
        if reassembly is None:
            return deadline
        reassembly_ms = stack_ms(reassembly)
        return reassembly_ms if deadline is None else min(deadline, reassembly_ms)

    def _output(self, now: float) -> list[HostAction]:
        """Runs the stack at ``now`` until no output is due (callbacks it makes may leave
        more), then re-arms the one timer at its next deadline."""
        stack = self.stack
        ms = stack_ms(now)
        for _ in range(MAX_POLLS):
            stack.poll(ms)
            deadline = stack.next_deadline()
            if deadline is None or deadline > ms:
                break
        out, self._out = self._out, []
        if any(isinstance(a, Transmit) and len(a.data) > ALWAYS_FITS for a in out):
            out = self._fit(now, out)
        deadline = self._deadline()
        if deadline != self._armed:
            self._armed = deadline
            if deadline is None:
                out.append(CancelTimer(TCP_TIMER))
            else:
                # still due after MAX_POLLS (an application that keeps marking output due
                # without sending any): try again a millisecond on, never in a loop at ``now``
                out.append(StartTimer(stack_seconds(max(deadline, ms + 1)), TCP_TIMER))
        return out

    def _fit(self, now: float, actions: list[HostAction]) -> list[HostAction]:
        """RFC 8200 4.5: a packet bigger than its path takes leaves in fragments. A TCP
        segment is also a sign its connection's MSS is too big for the path now (a move into
        the reverse tunnel, an imported connection): it is lowered (RFC 8201 5.2)."""
        out: list[HostAction] = []
        for action in actions:
            if not isinstance(action, Transmit) or len(action.data) <= ALWAYS_FITS:
                out.append(action)
                continue
            data = action.data
            source, destination = data[8:24], data[24:40]
            room = self._room(now, source, destination)
            if len(data) <= room:
                out.append(action)
                continue
            if data[6] == protocols.TCP:
                self._count("tcp_mss_lowered")
                self.stack.limit_mss(destination, room - TCP_HEADERS)
            pieces = fragments.fragment(data, room, self.rng.getrandbits(32))
            self._count("fragmented_out")
            self.counters["fragments_out"] = self.counters.get("fragments_out", 0) + len(pieces)
            out += [Transmit(piece) for piece in pieces]
        return out

    def _udp_in(self, data: bytes, offset: int, source: bytes, destination: bytes) -> None:
        if destination not in self.stack.local_addresses:
            self._count("udp_not_ours")
            return
        end = 40 + ((data[4] << 8) | data[5])
        try:
            datagram = UdpDatagram.parse(data[offset:end], source=source, destination=destination)
        except WireError:
            self._count("udp_malformed")
            return
        endpoint = self._udp.get(datagram.destination_port)
        if endpoint is None:
            self._count("udp_port_unreachable")
            self._error(data, icmp.DestinationUnreachable(code=icmp.PORT_UNREACHABLE))
            return
        self._count("udp_in")
        endpoint.receive(
            datagram.payload,
            (str(IPv6Address(source)), datagram.source_port),
            (str(IPv6Address(destination)), datagram.destination_port),
        )

    # -- UDP -------------------------------------------------------------------------------------

    def udp_bind(self, port: int, receive: DatagramReceiver) -> UdpEndpoint:
        """Datagrams to ``port`` (any of the host's addresses) go to ``receive``; port 0 picks a
        free one from the dynamic range. OSError EADDRINUSE if the port is taken."""
        if port == 0:
            port = self._free_port()
        if not 0 < port <= 0xFFFF:
            raise ValueError(f"UDP port {port} is out of range")
        if port in self._udp:
            raise OSError(errno.EADDRINUSE, f"UDP port {port} is in use")
        endpoint = UdpEndpoint(self, port, receive)
        self._udp[port] = endpoint
        return endpoint

    def _free_port(self) -> int:
        low, high = EPHEMERAL_PORTS
        count = high - low + 1
        for _ in range(count):
            port = low + self._next_port % count
            self._next_port += 1
            if port not in self._udp:
                return port
        raise OSError(errno.EADDRINUSE, "no free UDP port")

    def send_udp(self, data: bytes, port: int, remote: Address, source: str | None) -> None:
        address = IPv6Address(source) if source is not None else self.addresses[0]
        if address not in self.addresses:
            raise OSError(errno.EADDRNOTAVAIL, f"{address} is not this host's")
        packet = Ipv6Packet(
            source=address,
            destination=IPv6Address(remote[0]),
            payload=UdpDatagram(source_port=port, destination_port=remote[1], payload=data),
        )
        self._count("udp_out")
        self._out.append(Transmit(packet.emit()))
        if self.on_output is not None:
            self.on_output()

    # -- TCP -------------------------------------------------------------------------------------

    def connect(
        self,
        now: float,
        address: str | IPv6Address,
        port: int,
        *,
        source: IPv6Address | None = None,
    ) -> Socket:
        """An active open from ``source`` (default the host's first address); the SYN leaves
        at the next :meth:`poll`."""
        return self.stack.connect(
            stack_ms(now), address, port, local_address=source or self.addresses[0]
        )

    def listen(self, port: int, address: str | IPv6Address = "::", backlog: int = 128) -> Listener:
        return self.stack.listen(address, port, backlog)

    def export(self, now: float, sock: Socket, *, include_unacked: bool = True) -> bytes:
        """Freeze ``sock`` (no more output, segments to it dropped silently, never a RST) and
        return its snapshot; without ``include_unacked`` the unacknowledged bytes stay out
        (the application regenerates them from the acknowledged offset)."""
        if not sock.frozen:
            sock.freeze(stack_ms(now))
        return sock.export(include_unacked)

    def import_connection(self, now: float, blob: bytes) -> Socket:
        """A connection from a snapshot, frozen until :meth:`thaw`."""
        return self.stack.import_connection(blob)

    def thaw(self, now: float, sock: Socket) -> None:
        sock.thaw(stack_ms(now))

    def release(self, now: float, sock: Socket) -> None:
        """Give ``sock`` up after a handoff: forgotten without a RST; its stragglers are
        dropped silently for the stack's TIME-WAIT."""
        self.stack.release(stack_ms(now), sock)

    # -- state -----------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """For ``mip6 show``: counters (``tcp.*`` from the stack) and the TCP connections."""
        counters = dict(self.counters) | {f"tcp.{k}": v for k, v in self.stack.counters.items()}
        connections = [
            {
                "local": f"[{sock.local[0]}]:{sock.local[1]}",
                "remote": f"[{sock.remote[0]}]:{sock.remote[1]}",
                "state": sock.state.name,
                "send_buffered": sock.send_buffered,
                "readable": sock.readable,
            }
            for sock in self.stack.connections
        ]
        counters["tcp.connections"] = len(connections)
        counters["udp.bound"] = len(self._udp)
        return {"counters": counters, "connections": connections}

    def close(self, now: float) -> list[HostAction]:
        """Stop: open connections are aborted (a RST each); frozen ones, being handed off,
        are released without one; UDP ports are closed."""
        ms = stack_ms(now)
        for sock in self.stack.connections:
            if sock.frozen:
                self.stack.release(ms, sock)
            else:
                sock.abort()
        for endpoint in list(self._udp.values()):
            endpoint.close()
        return self._output(now)


class AsyncHost:
    """A :class:`Host` for asyncio applications: what tcp_migrate's streams need of a driver
    (``loop``, ``stack``, ``now_ms``, ``kick``, ``flush``) and the UDP API. The ``flush`` it is
    given performs the host's pending output (the node runtime's
    :meth:`~mip6.runtime.node.NodeRuntime.flush_host`)."""

    def __init__(
        self, host: Host, loop: asyncio.AbstractEventLoop, flush: Callable[[], None]
    ) -> None:
        self.host = host
        self.loop = loop
        self.stack = host.stack
        self._output = Coalesced(loop, flush)
        self._servers: list[Server] = []
        host.on_output = self.kick

    def now_ms(self) -> int:
        return stack_ms(self.loop.time())

    def kick(self) -> None:
        """Perform the host's output soon (after application calls)."""
        self._output.kick()

    def flush(self) -> None:
        """The output a kick scheduled, now."""
        self._output.flush()

    async def open_connection(
        self, host: str, port: int, *, limit: int = 2**16
    ) -> tuple[asyncio.StreamReader, StreamWriter]:
        """A TCP connection from the host's stack (tcp_migrate's streams)."""
        return await open_connection(self, host, port, limit=limit)

    async def start_server(
        self, client_connected: ClientConnected, host: str = "::", port: int = 0, **kwargs: Any
    ) -> Server:
        """Listen on (host, port) of the host's stack; ``client_connected(reader, writer)``
        for each connection (a coroutine becomes a task). Closed with the host."""
        server = await start_server(self, client_connected, host, port, **kwargs)
        self._servers.append(server)
        return server

    def streams(
        self, sock: Socket, *, limit: int = 2**16
    ) -> tuple[asyncio.StreamReader, StreamWriter]:
        """Streams over a connection the host already holds: accepted, or imported (thaw it
        first or after; reads wait until data arrives)."""
        return wrap_socket(self, sock, limit=limit)

    def udp_bind(self, port: int, receive: DatagramReceiver) -> UdpEndpoint:
        return self.host.udp_bind(port, receive)

    @property
    def counters(self) -> dict[str, int]:
        return self.host.counters

    def describe(self) -> dict[str, Any]:
        return self.host.describe()

    def close_servers(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
