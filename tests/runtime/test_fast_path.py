"""The daemon's C fast path (mip6.runtime.fast) held to the engine it stands in for.

Differential: every packet of a corpus (data packets of each shape a decision takes, and
packets next to them that it must not take: signalling, bad checksums, malformed upper-layer
headers, extension headers, trailing bytes) and hypothesis' mutations of them go to the engine
and to C; whenever C does not punt, its packet and link equal the engine's single action, byte
for byte. Then the I/O: packets written into datagram socket pairs standing in for the TUN
device and the hub's UDP link come out of the other side as the engine would send them, and
the punted ones reach the Python path.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mip6.core.actions import Deliver, Transmit
from mip6.core.binding_cache import BindingCacheEntry
from mip6.core.datapath import FastAction, Ingress
from mip6.roles.correspondent_node import CorrespondentNode
from mip6.runtime import offload
from mip6.runtime.config import parse
from mip6.wire import icmpv6 as icmp
from mip6.wire import mobility as mh
from mip6.wire.checksum import ones_complement_sum, pseudo_header
from mip6.wire.ipv6 import Ipv6Packet, Payload
from mip6.wire.ipv6ext import (
    DestinationOptions,
    ExtensionHeader,
    HomeAddressOption,
    HopByHopOptions,
    RoutingType2,
)
from mip6.wire.tcp import MaximumSegmentSize, NoOperation, Sack, TcpFlags, TcpSegment, Timestamps
from mip6.wire.udp import UdpDatagram
from tests.core.scenario import CN, HA, HOME, VISITED, Roaming

fast = pytest.importorskip("mip6.runtime.fast", reason="the fast path is not built")
FastLink, FastPath = fast.FastLink, fast.FastPath

CORRESPONDENT = CN
CARE_OF = IPv6Address("2001:db8:3::5")
OTHER_HOME = IPv6Address("2001:db8:1::6")
STRANGER = IPv6Address("2001:db8:4::9")
NOW = 1000.0
LIFETIME = 60.0
CHUNK = 8


def correspondent(*homes: tuple[IPv6Address, IPv6Address], now: float = NOW) -> CorrespondentNode:
    """A correspondent with a live binding for each (home address, care-of address), made at
    ``now``."""
    import random

    engine = CorrespondentNode(rng=random.Random(1))
    for home, care_of in homes:
        engine.binding_cache.put(
            BindingCacheEntry(
                home_address=home,
                care_of_address=care_of,
                expires=now + LIFETIME,
                sequence=1,
                home_registration=False,
                lifetime=LIFETIME,
                last_used=now,
                correspondent_address=CORRESPONDENT,
            )
        )
    return engine


def packet(
    source: IPv6Address,
    destination: IPv6Address,
    payload: Payload,
    *headers: ExtensionHeader,
) -> bytes:
    return Ipv6Packet(
        source=source, destination=destination, payload=payload, extension_headers=headers
    ).emit()


def hao(home: IPv6Address = HOME) -> DestinationOptions:
    return DestinationOptions.aligned([HomeAddressOption(home_address=home)])


def payloads() -> Iterator[Payload]:
    yield TcpSegment(source_port=80, destination_port=40000, flags=TcpFlags.ACK, payload=b"x" * 99)
    yield TcpSegment(
        source_port=80,
        destination_port=40001,
        flags=TcpFlags.SYN,
        options=(
            MaximumSegmentSize(maximum_segment_size=1440),
            NoOperation(),
            NoOperation(),
            Timestamps(tsval=1, tsecr=2),
        ),
    )
    yield TcpSegment(
        source_port=80,
        destination_port=40002,
        flags=TcpFlags.ACK,
        options=(NoOperation(), NoOperation(), Sack(blocks=((1, 2), (3, 4)))),
        payload=bytes(1200),
    )
    yield UdpDatagram(source_port=7, destination_port=9, payload=b"hello")
    yield UdpDatagram(source_port=7, destination_port=9, payload=bytes(1400))
    yield icmp.EchoRequest(identifier=1, sequence=2, data=b"ping")
    yield icmp.EchoReply(identifier=1, sequence=2, data=b"")
    yield icmp.DestinationUnreachable(code=4, invoking_packet=bytes(48))


def corpus() -> Iterator[tuple[Ingress, bytes]]:
    """Packets from the upper layer and from the network, to and from bound and unbound
    addresses, of every shape a decision takes and beside it."""
    for payload in payloads():
        for destination in (HOME, OTHER_HOME, STRANGER):
            yield Ingress.UPPER, packet(CORRESPONDENT, destination, payload)
        yield Ingress.NETWORK, packet(STRANGER, CORRESPONDENT, payload)
        yield Ingress.NETWORK, packet(CARE_OF, CORRESPONDENT, payload)
        yield Ingress.NETWORK, packet(CARE_OF, CORRESPONDENT, payload, hao())
        yield Ingress.NETWORK, packet(CARE_OF, CORRESPONDENT, payload, hao(OTHER_HOME))
        yield Ingress.NETWORK, packet(HOME, CORRESPONDENT, payload)
        yield Ingress.UPPER, packet(CORRESPONDENT, HOME, payload, HopByHopOptions.aligned([]))
        yield (
            Ingress.NETWORK,
            packet(STRANGER, CORRESPONDENT, payload, RoutingType2(home_address=HOME)),
        )
    yield Ingress.UPPER, packet(CORRESPONDENT, HOME, mh.BindingRefreshRequest())
    yield Ingress.NETWORK, packet(CARE_OF, CORRESPONDENT, mh.BindingRefreshRequest(), hao())


def outcome(
    engine: CorrespondentNode, ingress: Ingress, data: bytes, now: float = NOW
) -> tuple[str, bytes] | None:
    """The engine's single packet action for ``data`` at ``now`` as (link, bytes), None for any
    other."""
    actions = (engine.send if ingress is Ingress.UPPER else engine.handle_packet)(now, data)
    packets = [a for a in actions if isinstance(a, Transmit | Deliver)]
    if len(packets) != 1:
        return None
    (action,) = packets
    if isinstance(action, Deliver):
        return "kernel", action.data
    return action.link or "network", action.data


def fast_path(engine: CorrespondentNode, *, learn: bool = True) -> FastPath:
    """A fast path over two idle descriptors (its transform does no I/O)."""
    fds = [os.open(os.devnull, os.O_RDWR) for _ in range(2)]
    path = FastPath(
        engine,
        [
            FastLink("kernel", fds[0], Ingress.UPPER, lambda data: None),
            FastLink("network", fds[1], Ingress.NETWORK, lambda data: None),
        ],
        "kernel",
        lambda: NOW,
    )
    path.fds = fds  # closed by the fixture's user through close()
    if learn:
        for ingress, data in corpus():
            path.learn(ingress, data)
    return path


def close(path: FastPath) -> None:
    for fd in path.fds:
        os.close(fd)


@pytest.fixture
def engine_and_fast() -> Iterator[tuple[CorrespondentNode, FastPath]]:
    engine = correspondent((HOME, CARE_OF))
    path = fast_path(engine)
    yield engine, path
    close(path)


def test_fast_path_corpus_equals_engine_packet_by_packet(
    engine_and_fast: tuple[CorrespondentNode, FastPath],
) -> None:
    engine, path = engine_and_fast
    taken = set()
    for ingress, data in corpus():
        result = path.transform(ingress, data, NOW)
        if result is not None:
            assert result == outcome(engine, ingress, data), data.hex()
            taken.add(Ipv6Packet.parse(data).extension_headers != ())
    assert taken == {False, True}  # plain packets and the Home Address option both taken


def test_fast_path_established_binding_inserts_type2_routing_header(
    engine_and_fast: tuple[CorrespondentNode, FastPath],
) -> None:
    _, path = engine_and_fast
    data = packet(CORRESPONDENT, HOME, UdpDatagram(source_port=1, destination_port=2))
    link, out = path.transform(Ingress.UPPER, data, NOW)
    routed = Ipv6Packet.parse(out)
    assert (link, routed.destination) == ("network", CARE_OF)
    assert routed.extension_headers == (RoutingType2(home_address=HOME),)


def test_fast_path_bad_checksum_received_punted(
    engine_and_fast: tuple[CorrespondentNode, FastPath],
) -> None:
    engine, path = engine_and_fast
    for payload in payloads():
        data = bytearray(packet(STRANGER, CORRESPONDENT, payload))
        data[-1] ^= 1 if len(data) > 48 else 0
        data[43] ^= 0x40  # a port or the ICMPv6 code: covered by the checksum
        assert path.transform(Ingress.NETWORK, bytes(data), NOW) is None
        assert outcome(engine, Ingress.NETWORK, bytes(data)) is None


def test_fast_path_binding_expired_punted() -> None:
    engine = correspondent((HOME, CARE_OF))
    path = fast_path(engine)
    try:
        data = packet(CORRESPONDENT, HOME, UdpDatagram(source_port=1, destination_port=2))
        assert path.transform(Ingress.UPPER, data, NOW + LIFETIME - 0.001) is not None
        assert path.transform(Ingress.UPPER, data, NOW + LIFETIME) is None
    finally:
        close(path)


def test_fast_path_binding_deleted_decisions_forgotten() -> None:
    engine = correspondent((HOME, CARE_OF))
    path = fast_path(engine)
    try:
        data = packet(CORRESPONDENT, HOME, UdpDatagram(source_port=1, destination_port=2))
        assert path.transform(Ingress.UPPER, data, NOW) is not None
        engine.binding_cache.remove(HOME)
        path.learn(Ingress.UPPER, data)  # what the daemon does after every punt and batch
        assert path.counters()["binding.2001:db8:1::5.packets"] == 1
        assert path.counters()["forgets"] == 1
        assert path.transform(Ingress.UPPER, data, NOW) == ("network", data)  # unbound now
    finally:
        close(path)


def test_fast_path_two_bindings_one_care_of_address_option_punted() -> None:
    engine = correspondent((HOME, CARE_OF), (OTHER_HOME, CARE_OF))
    path = fast_path(engine)
    try:
        payload = UdpDatagram(source_port=1, destination_port=2)
        assert (
            path.transform(Ingress.NETWORK, packet(CARE_OF, CORRESPONDENT, payload, hao()), NOW)
            is None
        )
        plain = packet(CARE_OF, CORRESPONDENT, payload)
        assert path.transform(Ingress.NETWORK, plain, NOW) == ("kernel", plain)
    finally:
        close(path)


def test_fast_path_touch_marks_binding_used() -> None:
    engine = correspondent((HOME, CARE_OF))
    path = fast_path(engine)
    try:
        data = packet(CORRESPONDENT, HOME, UdpDatagram(source_port=1, destination_port=2))
        path.transform(Ingress.UPPER, data, NOW + 5)
        path.touch()
        entry = engine.binding_cache.get(HOME)
        assert entry is not None and entry.last_used == NOW + 5
    finally:
        close(path)


@settings(max_examples=400, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=10_000),
    flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 255)), max_size=3),
    cut=st.integers(min_value=0, max_value=8),
)
def test_fast_path_mutated_packet_punted_or_equal_to_engine(
    index: int, flips: list[tuple[int, int]], cut: int
) -> None:
    packets = list(corpus())
    ingress, original = packets[index % len(packets)]
    data = bytearray(original)
    for at, mask in flips:
        data[at % len(data)] ^= mask
    mutated = bytes(data[: len(data) - cut] if cut < len(data) else data)
    engine = correspondent((HOME, CARE_OF))
    path = fast_path(engine, learn=False)
    try:
        path.learn(ingress, original)
        path.learn(ingress, mutated)
        result = path.transform(ingress, mutated, NOW)
        if result is not None:
            assert result == outcome(engine, ingress, mutated), mutated.hex()
    finally:
        close(path)


# -- I/O over datagram socket pairs -------------------------------------------------------------


@pytest.mark.parametrize("budget", [fast.BUDGET, 1], ids=["budget", "budget_1"])
@pytest.mark.parametrize("datagram_socket", [False, True], ids=["one_by_one", "batched"])
def test_fast_path_drain_writes_engine_packets_and_punts_the_rest(
    datagram_socket: bool, budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # budget 1: a batch read ahead outlives the budget and must still be processed
    monkeypatch.setattr(fast, "BUDGET", budget)
    # C reads CLOCK_MONOTONIC as it reads the links: the bindings live on that clock
    now = time.monotonic()
    engine = correspondent((HOME, CARE_OF), now=now)
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(2)]
    for ours, theirs in pairs:
        ours.setblocking(False)
        theirs.setblocking(False)
    punted: list[tuple[str, bytes]] = []
    reference = correspondent((HOME, CARE_OF), now=now)

    def python_path(name: str, ingress: Ingress):
        def received(data: bytes) -> None:
            punted.append((name, data))
            # the daemon's Python path: the engine, its packet written where it goes
            result = outcome(engine, ingress, data, time.monotonic())
            if result is not None:
                target = pairs[0 if result[0] == "kernel" else 1][0]
                target.send(result[1])

        return received

    path = FastPath(
        engine,
        [
            FastLink(
                "kernel",
                pairs[0][0].fileno(),
                Ingress.UPPER,
                python_path("kernel", Ingress.UPPER),
                datagram_socket,
            ),
            FastLink(
                "network",
                pairs[1][0].fileno(),
                Ingress.NETWORK,
                python_path("network", Ingress.NETWORK),
                datagram_socket,
            ),
        ],
        "kernel",
        time.monotonic,
    )
    try:
        # Chunks of packets from one side, each written before the link is drained, so that
        # a batched link reads several at once (a socket pair queues at most 10 datagrams:
        # net.unix.max_dgram_qlen); the second round finds the decisions the first made.
        packets = list(corpus()) * 2
        for ingress in (Ingress.UPPER, Ingress.NETWORK):
            side = [data for i, data in packets if i is ingress]
            index = 0 if ingress is Ingress.UPPER else 1
            for start in range(0, len(side), CHUNK):
                chunk = side[start : start + CHUNK]
                for data in chunk:
                    pairs[index][1].send(data)
                # the loop calls a reader again while a TUN device stays readable; a socket
                # read ahead must be emptied by the one call, whatever the budget
                for _ in range(1 if datagram_socket else len(chunk)):
                    path.drain(index)
                for data in chunk:
                    expected = outcome(reference, ingress, data, now)
                    if expected is not None:
                        link, out = expected
                        assert pairs[0 if link == "kernel" else 1][1].recv(70000) == out
        counters = path.counters()
        assert counters["kernel.in_packets"] > 0 and counters["network.in_packets"] > 0
        assert counters["kernel.punted"] + counters["network.punted"] == len(punted)
        assert counters["binding.2001:db8:1::5.packets"] > 0
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


def udp_pair() -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on the loopback, each connected to the other (as a daemon's link to
    the lab's hub)."""
    ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    theirs = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for sock in (ours, theirs):
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
    ours.connect(theirs.getsockname())
    theirs.connect(ours.getsockname())
    return ours, theirs


@pytest.mark.parametrize("size", [99, 1400])
def test_a_run_written_to_a_udp_link_leaves_as_the_same_datagrams(size: int) -> None:
    """Packets of one size C carries to a UDP link in one drain go out as one message the
    kernel cuts into datagrams (UDP_SEGMENT): the peer receives each packet as the engine
    makes it, one datagram each, in order; a shorter last one ends the run."""
    now = time.monotonic()
    engine = correspondent((HOME, CARE_OF), now=now)
    reference = correspondent((HOME, CARE_OF), now=now)
    pairs = [udp_pair() for _ in range(2)]

    def python_path(ingress: Ingress):
        def received(data: bytes) -> None:
            result = outcome(engine, ingress, data, time.monotonic())
            if result is not None:
                pairs[0 if result[0] == "kernel" else 1][0].send(result[1])

        return received

    links = [
        FastLink("kernel", pairs[0][0].fileno(), Ingress.UPPER, python_path(Ingress.UPPER), True),
        FastLink(
            "network", pairs[1][0].fileno(), Ingress.NETWORK, python_path(Ingress.NETWORK), True
        ),
    ]
    path = FastPath(engine, links, "kernel", time.monotonic)
    try:
        sent = [
            packet(
                CORRESPONDENT,
                HOME,
                TcpSegment(
                    source_port=80,
                    destination_port=40000,
                    sequence_number=n * size,
                    flags=TcpFlags.ACK,
                    payload=bytes([n]) * (size if n < 20 else size // 2),
                ),
            )
            for n in range(21)
        ]
        pairs[0][1].send(sent[0])  # the first one takes the engine and makes the decision
        path.drain(0)
        for data in sent[1:]:
            pairs[0][1].send(data)
        path.drain(0)
        received = []
        deadline = time.monotonic() + 5.0
        while len(received) < len(sent) and time.monotonic() < deadline:
            try:
                received.append(pairs[1][1].recv(70000))
            except BlockingIOError:
                time.sleep(0.01)
        assert received == [outcome(reference, Ingress.UPPER, data, now)[1] for data in sent]
        counters = path.counters()
        assert counters["kernel.punted"] == 1 and counters["network.out_packets"] == 20
        assert counters["network.segmented"] == 20  # one run: 19 of a size, then a shorter one
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


def settle(loop: asyncio.AbstractEventLoop, fds: list[int]) -> None:
    """Run ``loop`` until none of ``fds`` is readable and its callbacks have all run (a punt
    handed over is taken by its link's reader in the same iteration)."""
    for _ in range(1000):
        loop.run_until_complete(asyncio.sleep(0))
        if not select.select(fds, [], [], 0)[0]:
            for _ in range(3):
                loop.run_until_complete(asyncio.sleep(0))
            return
    raise AssertionError("the links stayed readable")


@pytest.mark.parametrize("datagram_socket", [False, True], ids=["one_by_one", "batched"])
def test_fast_selector_waits_in_c_carries_engine_packets_and_hands_the_loop_the_rest(
    datagram_socket: bool,
) -> None:
    # the daemon's loop as run_daemon makes it: C drains the links while the loop waits, and
    # the loop's callbacks see the punts (through the links' readers) and its other descriptors
    now = time.monotonic()
    engine = correspondent((HOME, CARE_OF), now=now)
    reference = correspondent((HOME, CARE_OF), now=now)
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(2)]
    other, other_peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for sock in (*(end for pair in pairs for end in pair), other, other_peer):
        sock.setblocking(False)
    selector = fast.FastSelector()
    loop = asyncio.SelectorEventLoop(selector)
    punted: list[tuple[str, bytes]] = []
    seen: list[bytes] = []

    def python_path(name: str, ingress: Ingress):
        def received(data: bytes) -> None:
            punted.append((name, data))
            result = outcome(engine, ingress, data, time.monotonic())
            if result is not None:
                pairs[0 if result[0] == "kernel" else 1][0].send(result[1])

        return received

    path = FastPath(
        engine,
        [
            FastLink(
                name,
                pairs[index][0].fileno(),
                ingress,
                python_path(name, ingress),
                datagram_socket,
            )
            for index, (name, ingress) in enumerate(
                (("kernel", Ingress.UPPER), ("network", Ingress.NETWORK))
            )
        ],
        "kernel",
        time.monotonic,
    )
    for link in path.links:
        loop.add_reader(link.fd, path.reader(link.name))
    loop.add_reader(other.fileno(), lambda: seen.append(other.recv(100)))
    selector.fast = path
    links = [pair[0].fileno() for pair in pairs]
    try:
        packets = list(corpus()) * 2
        for ingress in (Ingress.UPPER, Ingress.NETWORK):
            side = [data for i, data in packets if i is ingress]
            index = 0 if ingress is Ingress.UPPER else 1
            for start in range(0, len(side), CHUNK):
                chunk = side[start : start + CHUNK]
                for data in chunk:
                    pairs[index][1].send(data)
                other_peer.send(b"%d" % start)
                settle(loop, [*links, other.fileno()])
                assert seen.pop() == b"%d" % start  # a descriptor that is not a link: the loop's
                for data in chunk:
                    expected = outcome(reference, ingress, data, now)
                    if expected is not None:
                        link, out = expected
                        assert pairs[0 if link == "kernel" else 1][1].recv(70000) == out
                for pair in pairs:  # and nothing else came out
                    with pytest.raises(BlockingIOError):
                        pair[1].recv(70000)
        counters = path.counters()
        assert counters["kernel.in_packets"] > 0 and counters["network.in_packets"] > 0
        assert counters["kernel.punted"] + counters["network.punted"] == len(punted)
        # a timer still fires while C waits with nothing to read
        started = time.monotonic()
        loop.run_until_complete(asyncio.sleep(0.02))
        assert time.monotonic() - started >= 0.02
    finally:
        selector.fast = None
        loop.close()
        for sock in (*(end for pair in pairs for end in pair), other, other_peer):
            sock.close()


CORRESPONDENT_CONFIG = """
node: cn
role: correspondent
links:
  kernel: {type: tun, name: k0}
  network: {type: udp, remote: "[::1]:4000", local: "[::1]:0"}
correspondent: {}
"""


def test_config_fast_path_key_turns_it_off() -> None:
    text = CORRESPONDENT_CONFIG
    assert parse(text).fast_path is True
    assert parse(text + "fast_path: false\n").fast_path is False


def test_config_offload_key_turns_the_kernel_devices_offload_off() -> None:
    text = CORRESPONDENT_CONFIG
    assert parse(text).offload is True
    assert parse(text + "offload: false\n").offload is False
    from mip6.runtime.daemon import Daemon
    from mip6.runtime.links import TunLink

    for extra, expected in (("", True), ("offload: false\n", False), ("fast_path: false\n", False)):
        kernel = Daemon(parse(text + extra)).links["kernel"]
        assert isinstance(kernel, TunLink) and kernel.offload is expected


def test_fast_action_values_match_the_c_enum() -> None:
    lib = fast.lib
    assert FastAction.FORWARD == lib.DFAST_FORWARD
    assert FastAction.INSERT_TYPE2_ROUTING == lib.DFAST_INSERT_TYPE2_ROUTING
    assert FastAction.REMOVE_HOME_ADDRESS_OPTION == lib.DFAST_REMOVE_HOME_ADDRESS_OPTION
    assert (Ingress.UPPER, Ingress.NETWORK) == (lib.DFAST_UPPER, lib.DFAST_NETWORK)


# -- the roaming triangle: every role's decisions in the states a real exchange leaves -------


def triangle_packets(lab: Roaming) -> Iterator[tuple[Ingress, bytes]]:
    """Packets between the triangle's addresses in every shape the three roles' decisions take
    and beside them: plain, with a Home Address option, a type 2 routing header, tunnelled,
    with Hop Limit 1."""
    care_of = VISITED["visited1"][1]
    addresses = (HA, CN, HOME, care_of, STRANGER)
    for payload in payloads():
        for source in addresses:
            for destination in addresses:
                if source == destination:
                    continue
                plain = packet(source, destination, payload)
                yield Ingress.UPPER, plain
                yield Ingress.NETWORK, plain
                last_hop = bytearray(plain)
                last_hop[7] = 1
                yield Ingress.NETWORK, bytes(last_hop)
        yield Ingress.NETWORK, packet(care_of, CN, payload, hao())
        yield Ingress.NETWORK, packet(CN, care_of, payload, RoutingType2(home_address=HOME))
        yield Ingress.NETWORK, packet(CN, care_of, payload, RoutingType2(home_address=CN))
        # the reverse tunnel: to a correspondent, to the home agent itself, to a home address
        # (tunnelled again), from another source, nested, with inner Hop Limit 1
        for inner_source, inner_destination in ((HOME, CN), (HOME, HA), (HOME, HOME), (CN, CN)):
            inner = Ipv6Packet(source=inner_source, destination=inner_destination, payload=payload)
            yield Ingress.NETWORK, packet(care_of, HA, inner)
        inner = Ipv6Packet(source=HOME, destination=CN, payload=payload, hop_limit=1)
        yield Ingress.NETWORK, packet(care_of, HA, inner)
        nested = Ipv6Packet(source=care_of, destination=HA, payload=inner)
        yield Ingress.NETWORK, packet(care_of, HA, nested)
        inner = Ipv6Packet(source=CN, destination=HOME, payload=payload)
        yield Ingress.NETWORK, packet(HA, care_of, inner)


@pytest.mark.parametrize(
    ("role", "route_optimized"),
    [
        *((role, optimized) for role in ("cn", "ha", "mn") for optimized in (False, True)),
        ("mn_without_route_optimization", False),
    ],
)
def test_fast_path_triangle_role_equals_engine_packet_by_packet(
    role: str, route_optimized: bool
) -> None:
    lab = Roaming()
    if role == "mn_without_route_optimization":
        # its home agent's tunnel is then no reason to start route optimization: the fast
        # path takes it too
        lab.mn.config = replace(lab.mn.config, route_optimization=False)
        role = "mn"
    lab.attach("visited1")
    lab.net.run_for(1)
    if route_optimized:
        lab.ping_from_correspondent()
        lab.net.run_for(1)
        assert lab.cn.binding_cache.get(HOME) is not None
    engine = getattr(lab, role)
    now = lab.net.now
    path = fast_path(engine, learn=False)
    path.clock = lambda: now
    try:
        carried = 0
        for ingress, data in triangle_packets(lab):
            path.learn(ingress, data)  # the engine's decision in its present state
            result = path.transform(ingress, data, now)
            expected = outcome(engine, ingress, data, now)
            if result is not None:
                assert result == expected, (ingress, data.hex())
                carried += 1
        assert carried > 0
    finally:
        close(path)


def test_fast_path_no_upper_link_delivery_refused_and_asked_once() -> None:
    engine = correspondent((HOME, CARE_OF))
    asked = []
    decide = engine.fast_decision

    def counting(*args: object) -> object:
        asked.append(args)
        return decide(*args)

    engine.fast_decision = counting  # type: ignore[method-assign]
    fds = [os.open(os.devnull, os.O_RDWR)]
    # host mode: no kernel link, the host (Python) takes what the engine delivers
    path = FastPath(
        engine, [FastLink("network", fds[0], Ingress.NETWORK, print)], None, lambda: NOW
    )
    try:
        data = packet(STRANGER, CORRESPONDENT, UdpDatagram(source_port=1, destination_port=2))
        for _ in range(3):
            path.learn(Ingress.NETWORK, data)
        assert len(asked) == 1
        assert path.transform(Ingress.NETWORK, data, NOW) is None
        assert path.counters()["decisions"] == 0
    finally:
        os.close(fds[0])


# -- TCP segmentation offload on the kernel's TUN device (mip6.runtime.offload) ----------------


def gso_payload(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def gso_frame(
    payload_bytes: int,
    gso_size: int,
    *,
    flags: TcpFlags = TcpFlags.ACK | TcpFlags.PSH,
    gso_type: int = offload.GSO_TCPV6,
    sequence: int = 0xFFFFF000,  # the pieces' sequence numbers wrap
    destination: IPv6Address = HOME,
) -> bytes:
    """What the kernel's TCP hands an offloading TUN device: a header asking to cut a segment
    of ``payload_bytes`` into ``gso_size`` pieces, the checksum field holding only the
    pseudo-header's sum (as Linux leaves it: CHECKSUM_PARTIAL)."""
    segment = TcpSegment(
        source_port=80,
        destination_port=40000,
        sequence_number=sequence,
        acknowledgment_number=7,
        flags=flags,
        options=(NoOperation(), NoOperation(), Timestamps(tsval=1, tsecr=2)),
        payload=gso_payload(payload_bytes),
    )
    data = bytearray(packet(CORRESPONDENT, destination, segment))
    partial = ones_complement_sum(
        pseudo_header(CORRESPONDENT.packed, destination.packed, len(data) - 40, 6)
    )
    data[56:58] = partial.to_bytes(2, "big")
    header = offload.VNET_HEADER.pack(offload.NEEDS_CSUM, gso_type, 72, gso_size, 40, 16)
    return header + bytes(data)


def partial_frame(payload: Payload, offset: int) -> bytes:
    """A packet whose upper-layer checksum the kernel left to the device."""
    data = bytearray(packet(CORRESPONDENT, HOME, payload))
    partial = ones_complement_sum(
        pseudo_header(CORRESPONDENT.packed, HOME.packed, len(data) - 40, data[6])
    )
    data[40 + offset : 42 + offset] = partial.to_bytes(2, "big")
    return offload.VNET_HEADER.pack(offload.NEEDS_CSUM, 0, 0, 0, 40, offset) + bytes(data)


def offload_frames() -> Iterator[bytes]:
    for payload_bytes in (0, 1, 1000, 1428, 1429, 2856, 64000):
        for flags in (TcpFlags.ACK, TcpFlags.ACK | TcpFlags.PSH | TcpFlags.FIN | TcpFlags.CWR):
            yield gso_frame(payload_bytes, 1428, flags=flags)
    yield gso_frame(5000, 1428, gso_type=offload.GSO_TCPV6 | offload.GSO_ECN)
    yield partial_frame(TcpSegment(source_port=1, destination_port=2, payload=b"abc"), 16)
    yield partial_frame(UdpDatagram(source_port=7, destination_port=9, payload=b"odd"), 6)
    yield offload.PLAIN + packet(CORRESPONDENT, HOME, icmp.EchoRequest(identifier=1, sequence=2))
    # what the offloads asked for cannot make: dropped by both
    yield gso_frame(5000, 1428, gso_type=3)  # UDP segmentation was not asked for
    yield gso_frame(5000, 0)
    yield offload.VNET_HEADER.pack(offload.NEEDS_CSUM, 0, 0, 0, 40, 2000) + packet(
        CORRESPONDENT, HOME, UdpDatagram(source_port=7, destination_port=9)
    )
    yield b"\x00" * 5


def python_frame_packets(frame: bytes) -> list[bytes] | None:
    try:
        return offload.packets(frame)
    except offload.OffloadError:
        return None


def test_offload_header_alone_is_no_packet_in_c_and_python() -> None:
    # a read of the virtio_net header and nothing more (hypothesis found C and Python apart,
    # twice): no packet; asking for a checksum in it, refused
    header = bytes(offload.VNET_HEADER.size)
    assert FastPath.frame_packets(header) == python_frame_packets(header) == []
    needs_csum = bytes([offload.NEEDS_CSUM]) + header[1:]
    assert FastPath.frame_packets(needs_csum) is python_frame_packets(needs_csum) is None


@pytest.mark.parametrize("frame", list(offload_frames()))
def test_offload_frame_cut_in_c_equals_the_python_reference(frame: bytes) -> None:
    assert FastPath.frame_packets(frame) == python_frame_packets(frame)


def test_offload_gso_frame_cut_into_valid_segments_of_the_same_bytes() -> None:
    frame = gso_frame(64000, 1428, flags=TcpFlags.ACK | TcpFlags.PSH | TcpFlags.FIN)
    made = offload.packets(frame)
    assert len(made) == 45 and all(len(p) <= 1500 for p in made)
    segments = [Ipv6Packet.parse(p).payload for p in made]  # checksums verified by parse
    assert all(isinstance(s, TcpSegment) for s in segments)
    assert b"".join(s.payload for s in segments) == gso_payload(64000)
    assert [s.sequence_number for s in segments] == [
        (0xFFFFF000 + 1428 * i) & 0xFFFFFFFF for i in range(45)
    ]
    assert all(TcpFlags.FIN not in s.flags and TcpFlags.PSH not in s.flags for s in segments[:-1])
    assert TcpFlags.FIN in segments[-1].flags and TcpFlags.PSH in segments[-1].flags


@settings(max_examples=300, deadline=None)
@given(
    frame=st.sampled_from(list(offload_frames())),
    position=st.integers(min_value=0, max_value=200),
    value=st.integers(min_value=0, max_value=255),
    cut=st.integers(min_value=0, max_value=64),
)
def test_offload_mutated_frame_c_agrees_with_the_python_reference(
    frame: bytes, position: int, value: int, cut: int
) -> None:
    mutated = bytearray(frame[: max(len(frame) - cut, 0)])
    if position < len(mutated):
        mutated[position] = value
    assert FastPath.frame_packets(bytes(mutated)) == python_frame_packets(bytes(mutated))


def test_offload_link_drained_segments_take_the_engine_way_and_writes_carry_a_header() -> None:
    # the kernel's side of an offloading TUN device as a datagram socket pair: each read one
    # frame, each write a header and a packet
    now = time.monotonic()
    engine = correspondent((HOME, CARE_OF), now=now)
    reference = correspondent((HOME, CARE_OF), now=now)
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(2)]
    for ours, theirs in pairs:
        ours.setblocking(False)
        theirs.setblocking(False)
        for sock in (ours, theirs):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)

    def from_kernel(data: bytes) -> None:  # the Python path: the engine, its packet written
        result = outcome(engine, Ingress.UPPER, data, time.monotonic())
        if result is not None:
            assert result[0] == "network"
            pairs[1][0].send(result[1])

    def from_network(data: bytes) -> None:  # ... to the kernel as TunLink.send writes it
        result = outcome(engine, Ingress.NETWORK, data, time.monotonic())
        if result is not None:
            assert result[0] == "kernel"
            pairs[0][0].send(offload.PLAIN + result[1])

    path = FastPath(
        engine,
        [
            FastLink("kernel", pairs[0][0].fileno(), Ingress.UPPER, from_kernel, False, True),
            FastLink("network", pairs[1][0].fileno(), Ingress.NETWORK, from_network),
        ],
        "kernel",
        time.monotonic,
    )
    try:
        for frame in (gso_frame(20000, 1428), gso_frame(20000, 1428)):  # punted, then in C
            pairs[0][1].send(frame)
            path.drain(0)
            for piece in offload.packets(frame):
                expected = outcome(reference, Ingress.UPPER, piece, now)
                assert expected is not None and expected[0] == "network"
                assert pairs[1][1].recv(70000) == expected[1]
        assert path.counters()["kernel.offload_frames"] == 2
        assert path.counters()["kernel.in_packets"] > 0  # the second frame's pieces, in C
        # from the network to the kernel: written with a header asking nothing
        inbound = packet(
            CARE_OF, CORRESPONDENT, TcpSegment(source_port=1, destination_port=2), hao()
        )
        expected = outcome(reference, Ingress.NETWORK, inbound, now)
        assert expected is not None and expected[0] == "kernel"
        for _ in range(2):  # punted and learned, then carried in C
            pairs[1][1].send(inbound)
            path.drain(1)
            assert pairs[0][1].recv(70000) == offload.PLAIN + expected[1]
        assert path.counters()["network.in_packets"] == 1
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


def stream_segment(
    sequence: int, size: int, flags: TcpFlags = TcpFlags.ACK, port: int = 80
) -> bytes:
    """A segment of a download from the mobile node (Home Address option, a binding's)."""
    segment = TcpSegment(
        source_port=port,
        destination_port=40000,
        sequence_number=sequence & 0xFFFFFFFF,
        acknowledgment_number=9,
        flags=flags,
        window=512,
        options=(NoOperation(), NoOperation(), Timestamps(tsval=5, tsecr=6)),
        payload=gso_payload(size),
    )
    return packet(CARE_OF, CORRESPONDENT, segment, hao())


def stream() -> list[bytes]:
    """Segments as a download brings them, with what must end or stay out of a frame: a short
    one, PSH, a gap, another connection in between, an ACK without data, a FIN."""
    start = 0xFFFFF800  # the sequence numbers wrap inside a frame
    out = [stream_segment(start + 1428 * i, 1428) for i in range(5)]
    out.append(stream_segment(start + 1428 * 5, 1428, TcpFlags.ACK | TcpFlags.PSH))
    base = start + 1428 * 6
    out += [stream_segment(base, 1428), stream_segment(base + 1428, 700)]  # short: ends it
    out += [stream_segment(base + 2128, 1428), stream_segment(base + 9999, 1428)]  # a gap
    out += [stream_segment(base + 11427, 1428), stream_segment(7, 1428, port=81)]
    out += [stream_segment(base + 12855, 1428), stream_segment(base + 14283, 0)]
    out += [stream_segment(base + 14283, 1428, TcpFlags.ACK | TcpFlags.FIN)]
    out += [stream_segment(base + 15711 + 1428 * i, 1428) for i in range(50)]  # > 64 kB
    return out


@pytest.mark.parametrize("datagram_socket", [False, True], ids=["one_by_one", "batched"])
def test_offload_link_writes_coalesced_frames_that_cut_back_into_the_engine_packets(
    datagram_socket: bool,
) -> None:
    now = time.monotonic()
    engine = correspondent((HOME, CARE_OF), now=now)
    reference = correspondent((HOME, CARE_OF), now=now)
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(2)]
    for ours, theirs in pairs:
        for sock in (ours, theirs):
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

    def from_network(data: bytes) -> None:  # the Python path, as TunLink.send writes
        result = outcome(engine, Ingress.NETWORK, data, time.monotonic())
        if result is not None:
            pairs[0][0].send(offload.PLAIN + result[1])

    path = FastPath(
        engine,
        [
            FastLink("kernel", pairs[0][0].fileno(), Ingress.UPPER, lambda data: None, False, True),
            FastLink(
                "network", pairs[1][0].fileno(), Ingress.NETWORK, from_network, datagram_socket
            ),
        ],
        "kernel",
        time.monotonic,
    )
    try:
        segments = stream()
        expected = []
        for data in segments:
            result = outcome(reference, Ingress.NETWORK, data, now)
            assert result is not None and result[0] == "kernel"
            expected.append(result[1])
        # a socket pair queues only so many datagrams: a few at a time, each lot drained
        frames = []
        for start in range(0, len(segments), CHUNK):
            for data in segments[start : start + CHUNK]:
                pairs[1][1].send(data)
            path.drain(1)
            while True:
                try:
                    frames.append(pairs[0][1].recv(70000))
                except BlockingIOError:
                    break
        assert [piece for frame in frames for piece in offload.packets(frame)] == expected
        assert len(frames) < len(segments)  # some were coalesced
        assert path.counters()["kernel.coalesced"] > 0
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()
