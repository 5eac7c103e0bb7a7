"""The client farm engine (mip6.farm) on the in-memory network against one host-mode server:
each client its own address, correspondent and stack; packets dispatched by destination, the
rest counted and dropped; every fetch verified and every failure counted by its cause; state
that stays bounded however long it runs."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv6Address, IPv6Network

import pytest

from mip6.apps.echo import udp_echo
from mip6.apps.fetch import Cause
from mip6.apps.http import Body, HostHttpServer, generated_body
from mip6.apps.lookup import Answer, Query, value_of
from mip6.core import rr
from mip6.core.actions import Event, StartTimer, Transmit
from mip6.core.engine import UnknownCommand
from mip6.farm import RETRY_AFTER, Farm, FarmConfig, FarmConfigError
from mip6.roles.correspondent_node import CorrespondentNode
from mip6.runtime.host import Host
from mip6.runtime.memory import MemoryNetwork, Path
from mip6.wire import icmpv6 as icmp
from mip6.wire import mobility as mh
from mip6.wire.ipv6 import Ipv6Packet
from tcp_migrate.core import Config, TcpState
from tcp_migrate.stack import Listener, Socket

SERVER = IPv6Address("2001:db8:1::80")
PREFIX = IPv6Network("2001:db8:3::/64")
FIRST = IPv6Address("2001:db8:3::1")
SIZE = 150_000
SEED = 7


def config(**overrides: object) -> FarmConfig:
    base = FarmConfig(
        prefix=PREFIX, address=FIRST, server=SERVER, size=SIZE, seed=SEED, clients=4, ramp=0.5
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def body(size: int = SIZE, seed: int = SEED) -> bytes:
    return b"".join(generated_body(size, seed))


def head(length: int, status: str = "200 OK") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n".encode()


class Responder:
    """A server answering every connection, once its request head is in, with ``response``,
    then ending as ``end`` says: "fin" (close), "rst" (abort once half is written) or
    "none" (stays open, silent)."""

    def __init__(self, host: Host, port: int, response: bytes, end: str = "fin") -> None:
        self.response, self.end = response, end
        self.listener = host.listen(port)
        self.listener.on_change = self._accept
        self.requests: list[bytes] = []  # each connection's request head, as received

    def _accept(self, listener: Listener) -> None:
        while (sock := listener.accept()) is not None:
            _Writer(sock, self.response, self.end, self.requests)


class _Writer:
    def __init__(self, sock: Socket, response: bytes, end: str, requests: list[bytes]) -> None:
        self.pending, self.end, self.request = response, end, b""
        self.requests = requests
        self.half = len(response) // 2
        self.written = 0
        sock.on_change = self._changed
        self._changed(sock)

    def _changed(self, sock: Socket) -> None:
        if sock.closed_by_app or sock.state is TcpState.CLOSED:
            return
        if b"\r\n\r\n" not in self.request:
            self.request += sock.recv(4096)
            if b"\r\n\r\n" in self.request:
                self.requests.append(self.request)
        if b"\r\n\r\n" not in self.request or self.end == "none":
            return
        while self.pending and sock.send_space:
            if self.end == "rst" and self.written >= self.half:
                sock.abort()
                return
            sent = sock.send(self.pending[: sock.send_space])
            self.pending = self.pending[sent:]
            self.written += sent
        if not self.pending:
            sock.close() if self.end == "fin" else sock.abort()


class Lab:
    """A farm and a server (a correspondent node with a host) on the in-memory network."""

    def __init__(
        self, farm_config: FarmConfig, serve: Callable[[Host], object] | None = None, seed: int = 1
    ) -> None:
        self.net = MemoryNetwork(seed, Path(latency=0.01))
        # the server closes first: a short TIME-WAIT keeps its table (1,024) from filling
        self.host = Host(addresses=[SERVER], secret=bytes(32), tcp_config=Config(time_wait_ms=2000))
        self.net.add("server", CorrespondentNode(rng=random.Random(seed)), host=self.host)
        self.net.route("2001:db8:1::/64", "server")
        self.app = (serve or (lambda h: HostHttpServer(h, 80, Body(size=SIZE, seed=SEED))))(
            self.host
        )
        rng = random.Random(seed + 1)
        self.farm = Farm(config=farm_config, rng=rng, random_bytes=rng.randbytes)
        self.net.add("farm", self.farm)
        self.net.route(PREFIX, "farm")
        self.net.start("server")
        self.net.start("farm")

    @property
    def counters(self) -> dict[str, int]:
        return self.farm.counters

    def events(self, name: str) -> list[Event]:
        return [event for _, event in self.net.nodes["farm"].events if event.name == name]

    def run_until_ended(self, fetches: int, limit: float = 120.0) -> None:
        while self.net.now < limit:
            self.net.run_for(0.5)
            ended = self.counters.get("fetches_ok", 0) + self.counters.get("fetches_failed", 0)
            if ended >= fetches:
                return


# -- the clients -------------------------------------------------------------------------------


def test_farm_of_four_gives_each_client_its_own_address_correspondent_and_stack() -> None:
    rng = random.Random(3)
    farm = Farm(config=config(), rng=rng, random_bytes=rng.randbytes)
    assert [c.address for c in farm.clients] == [FIRST + i for i in range(4)]
    assert len({id(c.correspondent) for c in farm.clients}) == 4
    assert len({id(c.correspondent.binding_cache) for c in farm.clients}) == 4
    assert len({id(c.host.stack) for c in farm.clients}) == 4
    assert [c.host.addresses for c in farm.clients] == [(FIRST + i,) for i in range(4)]
    kcns = {c.correspondent.nonces.current(0.0).kcn for c in farm.clients}
    assert len(kcns) == 4  # each answers return routability with its own secret


def test_start_spreads_every_slot_within_the_ramp() -> None:
    rng = random.Random(3)
    farm = Farm(config=config(concurrency=2, ramp=2.0), rng=rng, random_bytes=rng.randbytes)
    actions = farm.start(10.0)
    assert all(isinstance(a, StartTimer) and 10.0 <= a.at < 12.0 for a in actions)
    assert sorted(a.token for a in actions if isinstance(a, StartTimer)) == [
        ("start", i, slot) for i in range(4) for slot in range(2)
    ]


def test_home_test_init_for_client_two_is_answered_by_client_two_alone() -> None:
    rng = random.Random(3)
    farm = Farm(config=config(), rng=rng, random_bytes=rng.randbytes)
    client = farm.clients[2]
    hoti = Ipv6Packet(
        source=IPv6Address("2001:db8:1::80"),
        destination=client.address,
        payload=mh.HomeTestInit(home_init_cookie=b"12345678"),
    )
    actions = farm.handle_packet(5.0, hoti.emit())
    (reply,) = [a.data for a in actions if isinstance(a, Transmit)]
    assert reply[8:24] == client.address.packed  # from client two's address
    nonce = client.correspondent.nonces.current(5.0)
    assert reply.endswith(rr.home_keygen_token(nonce.kcn, SERVER, nonce.nonce))
    assert [c.correspondent.counters.get("home_test_sent", 0) for c in farm.clients] == [0, 0, 1, 0]


def test_packet_for_no_client_is_counted_and_dropped() -> None:
    rng = random.Random(3)
    farm = Farm(config=config(), rng=rng, random_bytes=rng.randbytes)
    beyond = FIRST + 4  # in the prefix, past the last client
    echo = Ipv6Packet(
        source=SERVER, destination=beyond, payload=icmp.EchoRequest(identifier=1, sequence=1)
    )
    solicitation = Ipv6Packet(
        source=SERVER,
        destination=IPv6Address("ff02::1:ff00:1"),
        hop_limit=255,
        payload=icmp.NeighborSolicitation(target_address=FIRST),
    )
    assert farm.handle_packet(1.0, echo.emit()) == []
    assert farm.handle_packet(1.0, solicitation.emit()) == []
    assert farm.handle_packet(1.0, b"\x60" + bytes(20)) == []
    assert farm.counters == {"unknown_destination": 2, "malformed": 1}
    assert all(not c.correspondent.counters for c in farm.clients)


def test_garbage_for_a_client_is_counted_never_raised() -> None:
    rng = random.Random(3)
    farm = Farm(config=config(clients=2), rng=rng, random_bytes=rng.randbytes)
    garbage = random.Random(99)
    for i in range(2000):
        length = garbage.randrange(40, 200)
        data = bytearray(garbage.randbytes(length))
        data[0] = 0x60 | (data[0] & 0x0F) if i % 2 else data[0]
        data[24:40] = farm.clients[i % 2].address.packed
        farm.handle_packet(float(i), bytes(data))
    # each client's pipeline counted what it refused (malformed, bad checksums...)
    assert all(sum(c.correspondent.counters.values()) > 100 for c in farm.clients)


def test_timer_that_is_not_the_farms_is_counted() -> None:
    rng = random.Random(3)
    farm = Farm(config=config(), rng=rng, random_bytes=rng.randbytes)
    assert farm.handle_timer(1.0, ("start", 99, 0)) == []
    assert farm.handle_timer(1.0, "tcp") == []
    assert farm.handle_timer(1.0, ("cn", 0, "a", "b")) == []
    assert farm.counters == {"unknown_timer": 3}


# -- fetches -----------------------------------------------------------------------------------


def test_every_fetch_is_verified_and_counted() -> None:
    lab = Lab(config(fetches=3, think=0.2))
    lab.run_until_ended(12)
    counters = lab.counters
    assert counters["fetches_ok"] == 12 and "fetches_failed" not in counters
    assert counters["bytes"] == 12 * SIZE
    assert counters["fetches_started"] == 12
    assert isinstance(lab.app, HostHttpServer) and lab.app.served == 12
    stats = lab.farm.describe("stats", lab.net.now)["counters"]
    assert stats["clients"] == 4 and stats["fetches_active"] == 0
    assert stats["host.tcp_in"] > 0
    rows = lab.farm.describe("clients", lab.net.now)["rows"]
    assert [(r["client"], r["fetches_ok"], r["bytes"]) for r in rows] == [
        (str(FIRST + i), 3, 3 * SIZE) for i in range(4)
    ]
    lab.net.run_for(5.0)
    assert counters["fetches_started"] == 12  # three each, then no more


def test_the_longest_wait_for_a_byte_of_a_whole_fetch_is_counted() -> None:
    """How close a fetch came to its watchdog: a clean path's longest wait is a round trip
    or so; two seconds with nothing from the server, mid-fetch, are counted as such."""
    lab = Lab(config(clients=1, fetches=1))
    lab.run_until_ended(1)
    assert lab.counters["fetches_ok"] == 1 and lab.counters["silence_ms_max"] < 100
    timeout = 4.0
    lab = Lab(config(clients=1, fetches=1, timeout=timeout))
    client = lab.farm.clients[0]
    while not any(slot is not None and slot.received for slot in client.slots):
        lab.net.run_for(0.01)
    silent_from, until = lab.net.now, lab.net.now + 2.0
    while lab.net.now < until:
        lab.net.drop_in_flight(lambda receiver, data: receiver == "farm")
        lab.net.run_for(0.01)
    lab.run_until_ended(1)
    assert lab.counters["fetches_ok"] == 1
    assert 2000 <= lab.counters["silence_ms_max"] < timeout * 1000
    # a third of the way to the watchdog, or more: reported, with when the wait began
    assert lab.counters["fetches_silent"] == 1
    (event,) = lab.events("fetch_silent")
    (at,) = [t for t, e in lab.net.nodes["farm"].events if e is event]
    assert event.fields["silence_ms"] == lab.counters["silence_ms_max"]
    assert abs(at - event.fields["began_s_ago"] - silent_from) < 0.05


def test_concurrent_fetches_run_side_by_side() -> None:
    lab = Lab(config(clients=2, fetches=4, concurrency=2))
    lab.run_until_ended(8)
    assert lab.counters["fetches_ok"] == 8
    assert max(len(c.host.stack.connections) for c in lab.farm.clients) <= 4 * 2 + 4


def test_request_is_the_configured_path_with_the_servers_authority() -> None:
    responders: list[Responder] = []

    def serve(host: Host) -> Responder:
        responders.append(Responder(host, 81, head(SIZE) + body()))
        return responders[0]

    lab = Lab(config(clients=1, fetches=1, port=81, path="/load?x=1"), serve)
    lab.run_until_ended(1)
    assert lab.counters["fetches_ok"] == 1
    assert responders[0].requests == [
        b"GET /load?x=1 HTTP/1.1\r\nHost: [2001:db8:1::80]:81\r\nConnection: close\r\n\r\n"
    ]


@pytest.mark.parametrize(
    ("response", "end", "cause"),
    [
        (head(SIZE) + body()[:70_000] + b"\x00" + body()[70_001:], "fin", Cause.CORRUPT),
        (head(SIZE - 1) + body()[:-1], "fin", Cause.LENGTH),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body(), "fin", Cause.LENGTH),
        (head(SIZE, "404 Not Found") + body(), "fin", Cause.STATUS),
        (b"garbage\r\n\r\n", "fin", Cause.STATUS),
        (b"HTTP/1.1 200 OK\r\n", "fin", Cause.STATUS),
        (head(SIZE) + body()[:-10], "fin", Cause.SHORT),
        (head(SIZE) + body() + b"more", "fin", Cause.LONG),
        (head(SIZE) + body(), "rst", Cause.RESET),
    ],
    ids=["corrupt", "length", "no-length", "status", "garbage", "no-head", "short", "long", "rst"],
)
def test_wrong_answer_fails_the_fetch_with_its_cause(
    response: bytes, end: str, cause: Cause
) -> None:
    lab = Lab(config(clients=1, fetches=1), lambda host: Responder(host, 80, response, end))
    lab.run_until_ended(1)
    assert lab.counters.get("fetches_ok", 0) == 0
    assert lab.counters["fetches_failed"] == 1
    assert lab.counters[f"failed.{cause.value}"] == 1
    (event,) = lab.events("fetch_failed")
    assert event.fields["cause"] == cause.value
    if cause is Cause.CORRUPT:
        assert event.fields["failed_at"] == 70_000
        assert event.fields["received"] == 70_000  # verified up to the wrong byte
    if cause is Cause.RESET:
        assert lab.counters["resets"] == 1
    assert lab.farm.clients[0].last_failure == cause.value


@pytest.mark.parametrize(
    ("response", "cause"),
    [
        (head(SIZE) + body(), Cause.STATUS),  # closed after the first of two: no second head
        (head(SIZE) + body()[:-1], Cause.SHORT),
        (head(SIZE) + body() + b"x", Cause.LONG),  # a byte before the second request
    ],
    ids=["closed-between", "short", "unasked"],
)
def test_a_keep_alive_fetch_fails_where_its_server_breaks_the_connection(
    response: bytes, cause: Cause
) -> None:
    lab = Lab(config(clients=1, fetches=1, requests=2), lambda host: Responder(host, 80, response))
    lab.run_until_ended(1)
    assert lab.counters["fetches_failed"] == 1
    assert lab.counters[f"failed.{cause.value}"] == 1


class EchoResponder:
    """A line echo that answers each line through ``alter`` (the handoff echo's protocol:
    ``Q`` is answered ``bye`` and closed)."""

    def __init__(self, host: Host, alter: Callable[[bytes], bytes]) -> None:
        self.alter = alter
        self.listener = host.listen(7)
        self.listener.on_change = self._accept

    def _accept(self, listener: Listener) -> None:
        while (sock := listener.accept()) is not None:
            buffer = bytearray()

            def changed(sock: Socket, buffer: bytearray = buffer) -> None:
                if sock.closed_by_app or sock.state is TcpState.CLOSED:
                    return
                buffer += sock.recv(1 << 16)
                while (end := buffer.find(b"\n")) >= 0:
                    line = bytes(buffer[: end + 1])
                    del buffer[: end + 1]
                    if line == b"Q\n":
                        sock.send(b"bye\n")
                        sock.close()
                        return
                    sock.send(self.alter(line))

            sock.on_change = changed
            changed(sock)


def echo_config(**overrides: object) -> FarmConfig:
    return config(workload="echo", port=7, lines=5, line_size=40, fetches=1, **overrides)


def test_an_echo_dialogue_checks_every_line_and_ends_with_bye() -> None:
    lab = Lab(echo_config(clients=2, pause=0.1), lambda host: EchoResponder(host, lambda x: x))
    lab.run_until_ended(2)
    assert lab.counters["fetches_ok"] == 2 and "fetches_failed" not in lab.counters
    assert lab.counters["bytes"] == 2 * (5 * 40 + 4)
    assert lab.net.now > 0.5  # four pauses of 0.1 s in each dialogue


@pytest.mark.parametrize(
    ("alter", "cause", "failed_at"),
    [
        (lambda line: line[:9] + b"?" + line[10:], Cause.CORRUPT, 9),
        # echoed twice: the copy is not the next line ("0.0.1 0 " against "0.0.1 1 ")
        (lambda line: line + line, Cause.CORRUPT, 40 + 6),
        (lambda line: line[:-1], Cause.STALLED, None),  # the newline never comes
    ],
    ids=["corrupt", "twice", "cut"],
)
def test_a_wrong_echo_fails_the_dialogue_with_its_cause(
    alter: Callable[[bytes], bytes], cause: Cause, failed_at: int | None
) -> None:
    lab = Lab(echo_config(clients=1, timeout=2.0), lambda host: EchoResponder(host, alter))
    lab.run_until_ended(1)
    assert lab.counters[f"failed.{cause.value}"] == 1
    (event,) = lab.events("fetch_failed")
    assert event.fields.get("failed_at") == failed_at


def test_refused_connection_fails_and_the_client_retries_after_a_pause() -> None:
    lab = Lab(config(clients=1, fetches=2), lambda host: None)  # nothing listens on port 80
    lab.run_until_ended(1)
    first = lab.net.now
    assert lab.counters["failed.refused"] == 1 and lab.counters["resets"] == 1
    lab.run_until_ended(2)
    assert lab.counters["failed.refused"] == 2
    assert lab.net.now - first >= RETRY_AFTER - 0.5  # run_until_ended steps half seconds


def test_stack_that_refuses_to_connect_fails_the_fetch_and_pauses() -> None:
    lab = Lab(config(clients=1, fetches=2, ramp=0.01))
    lab.farm.clients[0].host.stack.max_connections = 0  # every connect: StackError table-full
    lab.net.run_until(0.5)
    assert lab.counters["failed.connect"] == 1 and "fetches_ok" not in lab.counters
    lab.net.run_until(0.5 + RETRY_AFTER)
    assert lab.counters["failed.connect"] == 2
    assert lab.counters["fetches_started"] == 2  # then no more: two fetches per client


def test_send_and_upper_layer_errors_go_through_the_clients_correspondent() -> None:
    rng = random.Random(3)
    farm = Farm(config=config(), rng=rng, random_bytes=rng.randbytes)
    client = farm.clients[1]
    echo = Ipv6Packet(
        source=client.address,
        destination=SERVER,
        payload=icmp.EchoRequest(identifier=1, sequence=2),
    ).emit()
    assert farm.send(1.0, echo) == [Transmit(echo)]
    stranger = Ipv6Packet(
        source=FIRST + 9, destination=SERVER, payload=icmp.EchoRequest(identifier=1, sequence=2)
    ).emit()
    assert farm.send(1.0, stranger) == []
    assert farm.counters == {"send_not_ours": 1}
    invoking = Ipv6Packet(
        source=SERVER,
        destination=client.address,
        payload=icmp.EchoRequest(identifier=1, sequence=3),
    ).emit()
    unreachable = icmp.DestinationUnreachable(code=icmp.PORT_UNREACHABLE)
    (error,) = [
        a.data
        for a in farm.upper_layer_error(1.0, invoking, unreachable)
        if isinstance(a, Transmit)
    ]
    assert error[8:24] == client.address.packed and error[24:40] == SERVER.packed
    assert farm.upper_layer_error(1.0, b"short", unreachable) == []
    assert farm.send_overhead(1.0, client.address.packed, SERVER.packed) == 0
    assert farm.send_overhead(1.0, SERVER.packed, client.address.packed) == 0


def test_silent_server_fails_the_fetch_as_stalled_after_the_timeout() -> None:
    lab = Lab(
        config(clients=1, fetches=1, timeout=3.0),
        lambda host: Responder(host, 80, b"", end="none"),
    )
    lab.net.run_until(3.0)
    assert "fetches_failed" not in lab.counters
    lab.run_until_ended(1)
    assert lab.counters["failed.stalled"] == 1
    assert 3.0 <= lab.net.now <= 4.5
    assert lab.farm.clients[0].host.stack.connections == []  # aborted


def test_stop_abandons_open_fetches_and_starts_no_more() -> None:
    lab = Lab(config(clients=2, fetches=0, ramp=0.01), lambda h: Responder(h, 80, b"", "none"))
    lab.net.run_until(1.0)
    lab.net.call("farm", "stop")
    assert lab.counters["fetches_abandoned"] == 2
    assert all(c.host.stack.connections == [] for c in lab.farm.clients)
    started = lab.counters["fetches_started"]
    lab.net.run_for(30.0)
    assert lab.counters["fetches_started"] == started


def test_drain_lets_the_fetches_under_way_finish_and_starts_no_more() -> None:
    lab = Lab(config(clients=4, fetches=0, think=0.0, ramp=0.01))
    lab.net.run_until(0.3)
    active = lab.farm.describe("stats", lab.net.now)["counters"]["fetches_active"]
    assert active == 4  # every client is fetching
    lab.net.call("farm", "command", "drain", True)
    started = lab.counters["fetches_started"]
    lab.net.run_for(10.0)
    assert lab.counters["fetches_started"] == started
    assert lab.counters["fetches_ok"] == started and "fetches_failed" not in lab.counters
    assert lab.farm.describe("stats", lab.net.now)["counters"]["fetches_active"] == 0
    with pytest.raises(UnknownCommand):
        lab.farm.command(lab.net.now, "move", None)


# -- bounded -----------------------------------------------------------------------------------


def test_state_stays_bounded_over_fetches_forever_and_a_flood_for_nobody() -> None:
    lab = Lab(config(clients=3, fetches=0, concurrency=2, size=20_000), _small_server)
    bound = 4 * 2 + 4
    keys: set[str] | None = None
    for _ in range(15):
        lab.net.run_for(2.0)
        for client in lab.farm.clients:
            assert len(client.host.stack.connections) <= bound
            assert len(client.slots) == 2
            assert len(client.correspondent.binding_cache) <= 1
        assert lab.farm._pending == [] and lab.farm._deferred == [] and not lab.farm._dirty
        if keys is None and lab.counters.get("fetches_ok", 0) > 10:
            keys = set(lab.counters)
    assert lab.counters["fetches_ok"] > 200 and "fetches_failed" not in lab.counters
    assert keys is not None and set(lab.counters) == keys  # no counter per fetch or client
    nobody = FIRST + 50
    for i in range(10_000):
        lab.net.inject("farm", _packet_to(nobody, i))
    lab.net.run_for(1.0)
    assert lab.counters["unknown_destination"] == 10_000
    assert len(lab.net.nodes["farm"].runtime.pending_timers("engine")) <= 3 * (2 * 2 + 2) + 3


def _small_server(host: Host) -> HostHttpServer:
    return HostHttpServer(host, 80, Body(size=20_000, seed=SEED))


def _packet_to(destination: IPv6Address, sequence: int) -> bytes:
    request = icmp.EchoRequest(identifier=7, sequence=sequence & 0xFFFF)
    return Ipv6Packet(source=SERVER, destination=destination, payload=request).emit()


def test_same_seed_gives_the_same_packets() -> None:
    traces = []
    for _ in range(2):
        lab = Lab(config(fetches=2), seed=5)
        lab.run_until_ended(8)
        traces.append([(s.time, s.data) for s in lab.net.trace])
    assert traces[0] == traces[1]


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"clients": 0}, "clients"),
        ({"address": IPv6Address("2001:db8:4::1")}, "address"),
        ({"address": IPv6Address("2001:db8:3::ffff:ffff:ffff:fffe"), "clients": 4}, "clients"),
        ({"path": "no-slash"}, "path"),
        ({"path": "/a b"}, "path"),
        ({"timeout": 0.0}, "timeout"),
        ({"concurrency": 0}, "concurrency"),
        ({"server": FIRST + 2}, "server"),
        ({"workload": "dns"}, "workload"),
        ({"retransmit": 0.0}, "retransmit"),
        ({"retries": -1}, "retries"),
    ],
)
def test_config_that_does_not_fit_together_names_its_key(
    overrides: dict[str, object], key: str
) -> None:
    with pytest.raises(FarmConfigError) as raised:
        config(**overrides)
    assert raised.value.key == key


# -- UDP workloads -------------------------------------------------------------------------------


class LookupResponder:
    """The lookup service's answers from a plain host (as a member would, naming ``member``),
    dropping the first ``drop`` queries of each request id: the farm must send them again."""

    def __init__(self, host: Host, member: IPv6Address, drop: int = 0) -> None:
        self.member, self.drop = member, drop
        self.seen: dict[tuple[str, int], int] = {}
        self.endpoint = host.udp_bind(53, self._received)

    def _received(self, data: bytes, remote: tuple[str, int], local: tuple[str, int]) -> None:
        query = Query.parse(data)
        key = (remote[0], query.request_id)
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] <= self.drop:
            return
        answer = Answer(
            request_id=query.request_id,
            value=value_of(query.name),
            member=self.member,
            name=query.name,
        )
        self.endpoint.sendto(answer.emit(), remote, source=local[0])


def test_lookup_workload_retransmits_until_answered_and_counts_who_answered() -> None:
    lab = Lab(
        config(workload="lookup", port=53, clients=3, fetches=5, retransmit=0.2),
        lambda host: LookupResponder(host, SERVER, drop=1),
    )
    lab.net.run_for(10.0)
    stats = lab.farm.describe("stats", lab.net.now)["counters"]
    assert stats["requests_ok"] == 15 and "requests_failed" not in stats
    assert stats["udp.answered"] == 15 and stats["udp.retried"] == 15  # one each
    assert stats[f"udp.answered_by.{SERVER}"] == 15
    assert stats["fetches_active"] == 0
    rows = lab.farm.describe("clients", lab.net.now)["rows"]
    assert {row["fetches_ok"] for row in rows} == {5}


def test_lookup_workload_gives_up_after_its_retries() -> None:
    lab = Lab(
        config(workload="lookup", port=53, clients=1, fetches=2, retransmit=0.1, retries=3),
        lambda host: LookupResponder(host, SERVER, drop=99),
    )
    lab.net.run_for(10.0)
    stats = lab.farm.describe("stats", lab.net.now)["counters"]
    assert stats["requests_failed"] == 2 and "requests_ok" not in stats
    assert stats["udp.retried"] == 2 * 3
    assert [e.fields["client"] for e in lab.events("request_failed")] == [FIRST, FIRST]


def test_echo_workload_checks_the_echo() -> None:
    lab = Lab(
        config(workload="udp_echo", port=7, clients=2, fetches=4), lambda host: udp_echo(host, 7)
    )
    lab.net.run_for(5.0)
    stats = lab.farm.describe("stats", lab.net.now)["counters"]
    assert stats["requests_ok"] == 8 and stats["udp.answered"] == 8
    assert "udp.wrong" not in stats
