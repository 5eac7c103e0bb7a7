"""A client farm (DSERVER.md section 9, issue 12 item 8): many correspondent clients in one
engine, for load on a distributed server.

Each client is what a stock client behind a shim-mode correspondent is, made cheap enough to
run hundreds in one process: its own IPv6 address (``clients`` consecutive addresses from
``address``, inside ``prefix``), its own :class:`~mip6.roles.correspondent_node.
CorrespondentNode` (binding cache, nonces and Kcn: return routability answered per client, each
member's Binding Updates accepted or refused per client) and its own
:class:`~mip6.runtime.host.Host` (a tcp_migrate stack on that one address). Its workload, one
connection after another to ``server``:``port``, ``concurrency`` at once:

- ``workload: download``: ``requests`` HTTP/1.1 GETs of ``path`` on each connection (more than
  one: a keep-alive connection; the distributed server's download service), each response
  verified byte for byte against the generated body of ``size`` bytes from ``seed``
  (:class:`~mip6.apps.fetch.Fetch`);
- ``workload: echo``: a dialogue of ``lines`` lines of ``line_size`` bytes with the handoff
  echo, ``pause`` seconds between an echo and the next line, every echo checked
  (:class:`~mip6.apps.echo_check.Dialogue`).

Each connection is a "fetch" in the counters: ``think`` seconds between a client's fetches,
``fetches`` per client in all (0: forever), first fetches spread over ``ramp`` seconds. A fetch
with no byte for ``timeout`` seconds fails (``stalled``); after a failed fetch the client waits
at least :data:`RETRY_AFTER` before its next.

``workload: lookup`` or ``udp_echo`` makes each "fetch" a UDP request to ``server``:``port``
instead (:class:`~mip6.apps.udp_requests.Requester`: the distributed server's lookup service,
whose answers name the member that answered, or its UDP echo): sent from one port per client,
again every
``retransmit`` seconds unanswered, ``retries`` times at most, then failed
(``requests_failed``, an ``Event("request_failed")``); ``requests_ok`` when answered; the
requesters' own counters summed under ``udp.`` in ``mip6 show stats`` (``answered``,
``retried``, ``duplicate``, ``two_members``: a request answered by two members, ``wrong``,
``answered_by.<member>``). Timers ``("retry", i, request id)``.

One engine, the engine contract (:mod:`mip6.core.engine`), sans-I/O: time comes in with every
call, randomness from the injected ``rng`` (each client's correspondent gets a generator seeded
from it) and ``random_bytes`` (each stack's secret). Packets are dispatched by destination
address (bytes 24-40 of the IPv6 header) to their client's correspondent node; a packet for no
client (an address of the prefix beyond the farm, a multicast Neighbor Solicitation, an ICMPv6
message to the prefix) is counted (``unknown_destination``) and dropped, a packet too short to
hold an IPv6 header is counted as ``malformed``. What a client's correspondent delivers goes to
its host; what its host sends takes its correspondent's send path (the binding cache's type 2
routing header). Timers carry the client's index: ``("cn", i, token)``, ``("host", i)``,
``("start", i, slot)``, ``("watch", i, slot)``, ``("line", i, slot)`` (a dialogue's pause).

The engine keeps counters, not histories: per client a fixed record (fetches ok and failed,
bytes, its ``concurrency`` fetch slots), for the farm ``fetches_*``, ``failed.<cause>``
(:class:`~mip6.apps.fetch.Cause`), ``bytes`` (body bytes verified, counted as each fetch
ends), ``resets`` (connections a RST closed), ``fetch_ms_total`` and ``fetch_ms_max`` (whole
fetches), ``silence_ms_max`` (the longest a whole fetch waited for a byte: its margin to
``timeout``; a fetch whole after a wait of a third of its timeout or more is counted
``fetches_silent`` and reported, ``Event("fetch_silent")``, with how long ago the wait
began), ``bindings_accepted`` (Binding Updates a client's correspondent accepted: each
``binding_added``), and the clients' correspondent and host counters summed (``cn.*``,
``host.*``) in ``mip6 show stats``. The correspondents' events are counted, not passed on (a
farm's hundreds of bindings would flood a daemon's log); a failed fetch is an
``Event("fetch_failed")``. ``mip6 show clients`` lists the clients, ``bcache`` and ``nonce``
their tables (a ``client`` column first), ``tcp`` their connections.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from mip6.apps.echo_check import MIN_LINE, Dialogue
from mip6.apps.fetch import Cause, Fetch, requests
from mip6.apps.handoff_echo import MAX_LINE
from mip6.apps.udp_requests import Requester, Service
from mip6.core import show
from mip6.core.actions import Action, CancelTimer, Deliver, Event, StartTimer, Transmit
from mip6.core.config import CorrespondentConfig
from mip6.core.engine import UnknownCommand
from mip6.core.node import UpperLayerError
from mip6.roles.correspondent_node import CorrespondentNode
from mip6.runtime.host import TCP_TIMER, Host, HostAction, IcmpError, UdpEndpoint
from tcp_migrate.core import Config
from tcp_migrate.stack import StackError

# the first item of a timer token
CN, HOST, START, WATCH, LINE, RETRY = "cn", "host", "start", "watch", "line", "retry"
UDP_WORKLOADS = tuple(service.value for service in Service)  # lookup, udp_echo
WORKLOADS = ("download", "echo", *UDP_WORKLOADS)
RETRY_AFTER = 1.0  # seconds a client waits after a failed fetch (no hot loop on a dead server)
REQUEST_RING = 4096  # each connection's send ring: it carries one request
_PATH = re.compile(r"/[\x21-\x7e]*")  # RFC 9112 3.2.1 origin-form, printable, no spaces
MAX_CLIENTS = 1 << 16
MAX_REQUESTS = 1 << 16


class FarmConfigError(ValueError):
    """A farm configuration fault: ``key`` and ``reason`` (the configuration reader locates it
    in its file)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


@dataclass(frozen=True, slots=True, kw_only=True)
class FarmConfig:
    """The farm (see the module docstring). Times in seconds, sizes in bytes."""

    prefix: IPv6Network
    address: IPv6Address  # the first client's; client i has address + i
    server: IPv6Address
    workload: str = "download"  # or "echo", "lookup", "udp_echo" (see the module docstring)
    size: int = 0  # the body every response must carry, generated from ``seed``
    retransmit: float = 0.5  # UDP: seconds a request waits for its answer before it goes again
    retries: int = 8  # UDP: retransmissions of a request before it has failed
    seed: int = 0
    requests: int = 1  # GETs per connection (download)
    lines: int = 20  # lines per dialogue (echo)
    line_size: int = 64  # bytes per line, its newline included (echo)
    pause: float = 0.0  # seconds between an echo and the next line (echo)
    clients: int = 1
    port: int = 80
    path: str = "/"
    think: float = 0.0
    fetches: int = 0  # per client; 0: forever
    concurrency: int = 1  # fetches at once per client
    timeout: float = 30.0  # a fetch with no byte for this long fails (stalled)
    ramp: float = 1.0  # first fetches start at random times in [0, ramp) after start
    window: int = 65536  # each connection's receive buffer (its advertised window)
    correspondent: CorrespondentConfig = field(default_factory=CorrespondentConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.clients <= MAX_CLIENTS:
            raise FarmConfigError("clients", f"{self.clients}: 1 to {MAX_CLIENTS}")
        if self.address not in self.prefix:
            raise FarmConfigError("address", f"{self.address} is not in prefix {self.prefix}")
        last = int(self.address) + self.clients - 1
        if last > int(self.prefix.broadcast_address):
            raise FarmConfigError(
                "clients",
                f"{self.clients} clients from {self.address} do not fit in {self.prefix}",
            )
        if not _PATH.fullmatch(self.path):
            raise FarmConfigError("path", f"{self.path!r} is not a path (/ and printable ASCII)")
        if self.workload not in WORKLOADS:
            raise FarmConfigError("workload", f"{self.workload!r}: one of {', '.join(WORKLOADS)}")
        for name in ("size", "seed", "fetches"):
            if getattr(self, name) < 0:
                raise FarmConfigError(name, f"{getattr(self, name)}: a whole number >= 0")
        if self.retransmit <= 0:
            raise FarmConfigError("retransmit", "must be above 0")
        if self.retries < 0:
            raise FarmConfigError("retries", f"{self.retries}: a whole number >= 0")
        if not 1 <= self.requests <= MAX_REQUESTS:
            raise FarmConfigError("requests", f"{self.requests}: 1 to {MAX_REQUESTS}")
        if self.lines < 0:
            raise FarmConfigError("lines", f"{self.lines}: a whole number >= 0")
        if not MIN_LINE <= self.line_size <= MAX_LINE:
            raise FarmConfigError("line_size", f"{self.line_size}: {MIN_LINE} to {MAX_LINE}")
        if self.pause < 0:
            raise FarmConfigError("pause", f"{self.pause}: at least 0")
        if self.concurrency < 1:
            raise FarmConfigError("concurrency", "at least 1")
        if self.timeout <= 0:
            raise FarmConfigError("timeout", "must be above 0")
        if self.window < 1024:
            raise FarmConfigError("window", f"{self.window}: at least 1024 bytes")
        if int(self.server) in self.addresses_range():
            raise FarmConfigError("server", f"{self.server} is one of the farm's own clients")

    def addresses_range(self) -> range:
        """The clients' addresses as integers."""
        return range(int(self.address), int(self.address) + self.clients)


@dataclass(slots=True, eq=False)
class Client:
    """One client of the farm (identity, not value: a key of dicts)."""

    index: int
    address: IPv6Address
    correspondent: CorrespondentNode
    host: Host
    slots: list[Fetch | Dialogue | None]
    connections: int = 0  # connections begun: each dialogue's tag
    started: int = 0  # fetches begun
    ok: int = 0
    failed: int = 0
    bytes: int = 0
    last_failure: str | None = None
    # UDP workloads: the client's requests, its port, and the slot each request fills
    requester: Requester | None = None
    udp: UdpEndpoint | None = None
    in_flight: dict[int, int] = field(default_factory=dict)  # request id -> slot


class Farm:
    def __init__(
        self,
        *,
        config: FarmConfig,
        rng: random.Random,
        random_bytes: Callable[[int], bytes],
        tcp_config: Config | None = None,
    ) -> None:
        self.config = config
        self.rng = rng
        self._requests = requests(config.path, config.server, config.port, config.requests)
        self.clients: list[Client] = []
        self._by_address: dict[bytes, Client] = {}
        # each connection of a client, plus those closing (LAST-ACK) while the next begins
        max_connections = 4 * config.concurrency + 4
        for index, number in enumerate(config.addresses_range()):
            address = IPv6Address(number)
            secret = random_bytes(32)  # before the correspondent's generator: a seed, one run
            correspondent = CorrespondentNode(
                config=config.correspondent, rng=random.Random(rng.getrandbits(64))
            )
            host = Host(
                addresses=(address,),
                secret=secret,
                tcp_config=tcp_config,
                max_connections=max_connections,
                send_overhead=correspondent.send_overhead,
            )
            host.stack.send_capacity = REQUEST_RING
            host.stack.receive_capacity = config.window
            client = Client(index, address, correspondent, host, [None] * config.concurrency)
            if config.workload in UDP_WORKLOADS:  # (others draw nothing more: same seeded runs)
                client.requester = Requester(
                    Service(config.workload),
                    str(index).encode(),
                    random.Random(rng.getrandbits(64)),
                    timeout=config.retransmit,
                    retries=config.retries,
                )
                client.udp = host.udp_bind(0, functools.partial(self._answer, client))
            self.clients.append(client)
            self._by_address[address.packed] = client
        self.counters: dict[str, int] = {}
        self._now = 0.0
        self._pending: list[Action] = []
        self._deferred: list[Callable[[], None]] = []
        self._dirty: dict[Client, None] = {}  # hosts whose output is due (in order)
        self._stopping = False

    # -- the engine contract -------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """Every client's fetch slots start at random times within ``ramp``."""
        ramp = self.config.ramp
        return [
            StartTimer(now + self.rng.random() * ramp, (START, client.index, slot))
            for client in self.clients
            for slot in range(self.config.concurrency)
        ]

    def handle_packet(self, now: float, data: bytes) -> list[Action]:
        if len(data) < 40:
            self._count("malformed")
            return []
        client = self._by_address.get(data[24:40])
        if client is None:
            self._count("unknown_destination")
            return []
        correspondent = client.correspondent
        return self._run(
            now, lambda: self._correspondent(client, correspondent.handle_packet(now, data))
        )

    def send(self, now: float, data: bytes) -> list[Action]:
        """A packet from an upper layer above the farm (there is none but the clients' hosts,
        whose packets never come this way): sent by the client whose address is its source."""
        client = self._by_address.get(data[8:24]) if len(data) >= 40 else None
        if client is None:
            self._count("send_not_ours")
            return []
        return self._run(
            now, lambda: self._correspondent(client, client.correspondent.send(now, data))
        )

    def handle_timer(self, now: float, token: Hashable) -> list[Action]:
        match token:
            case (str() as kind, int() as index, *rest) if 0 <= index < len(self.clients):
                client = self.clients[index]
            case _:
                self._count("unknown_timer")
                return []
        work: Callable[[], None]
        match kind, rest:
            case "cn", [inner]:
                work = functools.partial(self._correspondent_timer, client, inner)
            case "host", []:
                work = functools.partial(self._host_timer, client)
            case "start", [int() as slot]:
                work = functools.partial(self._start_fetch, client, slot)
            case "watch", [int() as slot]:
                work = functools.partial(self._watch, client, slot)
            case "line", [int() as slot]:
                work = functools.partial(self._line, client, slot)
            case "retry", [int() as request_id]:
                work = functools.partial(self._retry, client, request_id)
            case _:
                self._count("unknown_timer")
                return []
        return self._run(now, work)

    def upper_layer_error(
        self, now: float, invoking: bytes, message: UpperLayerError
    ) -> list[Action]:
        """The invoking packet's destination is one of the clients: its correspondent answers
        (only a host the runtime made would ask; the farm's hosts answer through it)."""
        client = self._by_address.get(invoking[24:40]) if len(invoking) >= 40 else None
        if client is None:
            return []
        return client.correspondent.upper_layer_error(now, invoking, message)

    def send_overhead(self, now: float, source: bytes, destination: bytes) -> int:
        client = self._by_address.get(source)
        return 0 if client is None else client.correspondent.send_overhead(now, source, destination)

    def command(self, now: float, name: str, argument: Any) -> list[Action]:
        """``drain``: no more fetches start; those under way go on to their end (``mip6 show
        stats``: ``fetches_active`` comes down to 0), e.g. to end a load test on whole fetches."""
        if name != "drain":
            raise UnknownCommand(name, "farm")
        self._stopping = True
        return []

    def stop(self, now: float) -> list[Action]:
        """No more fetches; the open ones are abandoned (their connections reset: the server
        must not go on sending to clients that are gone)."""
        self._stopping = True

        def work() -> None:
            for client in self.clients:
                for slot, fetch in enumerate(client.slots):
                    if fetch is not None:
                        fetch.sock.on_change = None
                        client.slots[slot] = None
                        self._count("fetches_abandoned")
                self._host(client, client.host.close(now))

        return self._run(now, work)

    def stopped(self) -> bool:
        return True

    def describe(self, what: str, now: float) -> dict[str, Any]:
        show.check(what)
        if what == "stats":
            active = sum(f is not None for c in self.clients for f in c.slots)
            active += sum(len(c.in_flight) for c in self.clients)
            return show.counters(
                what,
                ("", self.counters | {"clients": len(self.clients), "fetches_active": active}),
                ("cn.", _summed(c.correspondent.counters for c in self.clients)),
                ("host.", _summed(c.host.describe()["counters"] for c in self.clients)),
                ("udp.", _summed(c.requester.counters for c in self.clients if c.requester)),
            )
        if what == "clients":
            return show.rows(what, [self._client_row(client, now) for client in self.clients])
        if what == "bcache":
            return show.rows(
                what,
                [
                    {"client": str(client.address), **row}
                    for client in self.clients
                    for row in show.binding_cache_rows(client.correspondent.binding_cache, now)
                ],
            )
        if what == "nonce":
            return show.rows(
                what,
                [
                    {"client": str(client.address), **row}
                    for client in self.clients
                    for row in show.nonce_rows(client.correspondent.nonces, now)
                ],
            )
        if what == "tcp":
            return show.rows(
                what, [row for c in self.clients for row in c.host.describe()["connections"]]
            )
        return show.rows(what, [])

    # -- one entry point's work ----------------------------------------------------------------

    def _run(self, now: float, work: Callable[[], object]) -> list[Action]:
        """Every entry point: ``work`` at ``now``, then what callbacks deferred, then the
        output of the hosts that application calls left due."""
        self._now = now
        work()
        while self._deferred or self._dirty:
            deferred, self._deferred = self._deferred, []
            for job in deferred:
                job()
            dirty, self._dirty = self._dirty, {}
            for client in dirty:
                self._host(client, client.host.poll(now))
        actions, self._pending = self._pending, []
        return actions

    def _correspondent_timer(self, client: Client, token: Hashable) -> None:
        self._correspondent(client, client.correspondent.handle_timer(self._now, token))

    def _host_timer(self, client: Client) -> None:
        self._host(client, client.host.handle_timer(self._now, TCP_TIMER))

    def _correspondent(self, client: Client, actions: list[Action]) -> None:
        """A client's correspondent node's actions: delivered packets to its host, timers
        under the client's index, events counted."""
        for action in actions:
            if isinstance(action, Transmit):
                self._pending.append(action)
            elif isinstance(action, Deliver):
                self._host(client, client.host.deliver(self._now, action.data))
            elif isinstance(action, StartTimer):
                self._pending.append(StartTimer(action.at, (CN, client.index, action.token)))
            elif isinstance(action, CancelTimer):
                self._pending.append(CancelTimer((CN, client.index, action.token)))
            else:
                self._event(action)

    def _host(self, client: Client, actions: list[HostAction]) -> None:
        """A client's host's actions: its packets take its correspondent's send path."""
        now = self._now
        for action in actions:
            if isinstance(action, Transmit):
                self._correspondent(client, client.correspondent.send(now, action.data))
            elif isinstance(action, IcmpError):
                self._correspondent(
                    client,
                    client.correspondent.upper_layer_error(now, action.invoking, action.message),
                )
            elif isinstance(action, StartTimer):
                self._pending.append(StartTimer(action.at, (HOST, client.index)))
            elif isinstance(action, CancelTimer):
                self._pending.append(CancelTimer((HOST, client.index)))

    def _event(self, event: Event) -> None:
        name = {
            "binding_added": "bindings_accepted",
            "binding_deleted": "bindings_deleted",
            "binding_expired": "bindings_expired",
        }.get(event.name)
        if name is not None:
            self._count(name)

    # -- the workload --------------------------------------------------------------------------

    def _start_fetch(self, client: Client, slot: int) -> None:
        limit = self.config.fetches
        if (
            self._stopping
            or not 0 <= slot < len(client.slots)
            or client.slots[slot] is not None
            or slot in client.in_flight.values()
            or (limit and client.started >= limit)
        ):
            return
        client.started += 1
        if client.requester is not None:
            self._start_request(client, slot)
            return
        self._count("fetches_started")
        config = self.config
        try:
            sock = client.host.connect(self._now, config.server, config.port)
        except StackError:  # its table is full (or no port is free): a failed fetch
            self._failed(client, Cause.CONNECT, 0)
            self._next(client, slot, RETRY_AFTER)
            return
        on_done = functools.partial(self._done, client, slot)
        on_reset = functools.partial(self._count, "resets")
        client.connections += 1
        if config.workload == "echo":
            client.slots[slot] = Dialogue(
                sock,
                f"{client.index}.{slot}.{client.connections}",
                lines=config.lines,
                line_size=config.line_size,
                pause=config.pause,
                clock=self._clock,
                schedule=lambda at: self._pending.append(
                    StartTimer(at, (LINE, client.index, slot))
                ),
                on_done=on_done,
                on_reset=on_reset,
            )
        else:
            client.slots[slot] = Fetch(
                sock,
                self._requests,
                size=config.size,
                seed=config.seed,
                clock=self._clock,
                on_done=on_done,
                on_reset=on_reset,
            )
        self._dirty[client] = None
        self._pending.append(StartTimer(self._now + config.timeout, (WATCH, client.index, slot)))

    def _clock(self) -> float:
        return self._now

    def _watch(self, client: Client, slot: int) -> None:
        """A fetch with no byte for ``timeout`` fails; otherwise look again when it would."""
        fetch = client.slots[slot] if 0 <= slot < len(client.slots) else None
        if fetch is None:
            return
        idle_until = fetch.last_progress + self.config.timeout
        if self._now >= idle_until:
            fetch.stall()
            self._dirty[client] = None
        else:
            self._pending.append(StartTimer(idle_until, (WATCH, client.index, slot)))

    def _line(self, client: Client, slot: int) -> None:
        """A dialogue's pause is over."""
        dialogue = client.slots[slot] if 0 <= slot < len(client.slots) else None
        if isinstance(dialogue, Dialogue):
            dialogue.tick()
            self._dirty[client] = None

    def _done(self, client: Client, slot: int, fetch: Fetch | Dialogue) -> None:
        """A fetch ended (inside its socket's callback): counted, and the slot's next fetch
        scheduled (deferred to the end of the entry point: no connection opened from inside
        the stack's processing)."""
        client.slots[slot] = None
        self._pending.append(CancelTimer((WATCH, client.index, slot)))
        client.bytes += fetch.received
        self._count("bytes", fetch.received)
        if fetch.cause is None:
            client.ok += 1
            self._count("fetches_ok")
            elapsed_ms = round(((fetch.ended or fetch.started) - fetch.started) * 1000)
            self._count("fetch_ms_total", elapsed_ms)
            self.counters["fetch_ms_max"] = max(self.counters.get("fetch_ms_max", 0), elapsed_ms)
            silence = round(fetch.longest_silence * 1000)
            self.counters["silence_ms_max"] = max(self.counters.get("silence_ms_max", 0), silence)
            if fetch.longest_silence >= self.config.timeout / 3:
                # whole, but a third of the way to the watchdog (10 s of the chaos test's 30:
                # its runs' longest waits were 7 to 23 s): when, for whom (a trace's start)
                self._count("fetches_silent")
                fields = {"client": client.address, "silence_ms": silence}
                fields["began_s_ago"] = round(self._now - fetch.silent_since, 3)
                fields["received"] = fetch.received
                self._pending.append(Event("fetch_silent", fields))
            self._next(client, slot, self.config.think)
        else:
            self._failed(client, fetch.cause, fetch.received, fetch.failed_at)
            self._next(client, slot, max(self.config.think, RETRY_AFTER))

    def _failed(
        self, client: Client, cause: Cause, received: int, failed_at: int | None = None
    ) -> None:
        client.failed += 1
        client.last_failure = cause.value
        self._count("fetches_failed")
        self._count(f"failed.{cause.value}")
        if cause in (Cause.RESET, Cause.REFUSED):
            self._count("resets")
        fields: dict[str, Any] = {"client": client.address, "cause": cause.value}
        fields["received"] = received
        if failed_at is not None:
            fields["failed_at"] = failed_at
        self._pending.append(Event("fetch_failed", fields))

    def _start_request(self, client: Client, slot: int) -> None:
        """A UDP workload's "fetch": one request, retransmitted until answered or failed."""
        assert client.requester is not None
        self._count("requests_started")
        request_id, datagram = client.requester.request(self._now)
        client.in_flight[request_id] = slot
        self._send_request(client, request_id, datagram)

    def _send_request(self, client: Client, request_id: int, datagram: bytes) -> None:
        assert client.udp is not None and client.requester is not None
        client.udp.sendto(datagram, (str(self.config.server), self.config.port))
        self._dirty[client] = None
        at = self._now + client.requester.timeout
        self._pending.append(StartTimer(at, (RETRY, client.index, request_id)))

    def _retry(self, client: Client, request_id: int) -> None:
        if client.requester is None or request_id not in client.in_flight:
            return
        datagram = client.requester.expired(self._now, request_id)
        if datagram is not None:
            self._send_request(client, request_id, datagram)
            return
        slot = client.in_flight.pop(request_id)  # given up
        client.failed += 1
        client.last_failure = "unanswered"
        self._count("requests_failed")
        self._pending.append(
            Event("request_failed", {"client": client.address, "request_id": request_id})
        )
        self._next(client, slot, max(self.config.think, RETRY_AFTER))

    def _answer(
        self, client: Client, data: bytes, remote: tuple[str, int], local: tuple[str, int]
    ) -> None:
        """A datagram to the client's UDP port (inside its host's delivery): the answer that
        completes a request frees its slot; the requester counts the rest."""
        assert client.requester is not None
        if remote != (str(self.config.server), self.config.port):
            self._count("udp_not_from_server")
            return
        request_id = client.requester.answer(self._now, data)
        slot = client.in_flight.pop(request_id, None) if request_id is not None else None
        if slot is None:
            return
        self._pending.append(CancelTimer((RETRY, client.index, request_id)))
        client.ok += 1
        self._count("requests_ok")
        self._next(client, slot, self.config.think)

    def _next(self, client: Client, slot: int, wait: float) -> None:
        limit = self.config.fetches
        if self._stopping or (limit and client.started >= limit):
            return
        if wait > 0:
            self._pending.append(StartTimer(self._now + wait, (START, client.index, slot)))
        else:
            self._deferred.append(functools.partial(self._start_fetch, client, slot))

    # -- helpers -------------------------------------------------------------------------------

    def _client_row(self, client: Client, now: float) -> dict[str, Any]:
        binding = client.correspondent.binding_cache.get(self.config.server)
        return {
            "client": str(client.address),
            "fetches_ok": client.ok,
            "fetches_failed": client.failed,
            "bytes": client.bytes,
            "active": sum(f is not None for f in client.slots),
            "bound_to": str(binding.care_of_address) if binding is not None else None,
            "binding_sequence": binding.sequence if binding is not None else None,
            "last_failure": client.last_failure,
        }

    def _count(self, name: str, amount: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount


def _summed(groups: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for counters in groups:
        for name, value in counters.items():
            total[name] = total.get(name, 0) + value
    return total
