"""The hub's C fast path (labnet.hub.fast, csrc/hub_fast.c) against the Python path it mirrors.

Hubs run in this process over loopback UDP links. The same traffic through ``fast=True`` and
``fast=False`` hubs must leave the same captures (record for record, timestamps aside) and the
same statistics; other tests send what the C path must leave to Python (a new sender, a Hop
Limit of 1, a pinned link, garbage) and check it was handled as Python handles it.
"""

from __future__ import annotations

import random
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import pytest

from labnet.hub.config import HubConfig, LinkConfig
from labnet.hub.fast import DONE, PUNT, FastPath
from labnet.hub.server import HubServer, query
from mip6.wire.pcap import read_capture_file
from tests.labnet.test_hub_server import probe, sequence_of, udp_socket

A = IPv6Address("2001:db8:a::1")
B = IPv6Address("2001:db8:b::1")
C = IPv6Address("2001:db8:c::1")
LOCAL = ("127.0.0.1", 0)


def net(address: IPv6Address) -> IPv6Network:
    return IPv6Network(f"{address}/48", strict=False)


def config(
    pcap_dir: Path | None = None, *, to: dict[str, str] | None = None, links: str = "ab"
) -> HubConfig:
    """Links named by ``links``, each with its letter's /48 routed to it, endpoints learned."""
    to = to or {}
    names = list(links)
    return HubConfig(
        links=tuple(LinkConfig(name=name, bind=LOCAL, to=to.get(name)) for name in names),
        routes=tuple((net(IPv6Address(f"2001:db8:{name}::1")), name) for name in names),
        pcap_dir=pcap_dir,
    )


@contextmanager
def running(hub_config: HubConfig, *, fast: bool = True) -> Iterator[HubServer]:
    """A hub serving in a thread until the block ends; stopped, joined and closed then."""
    hub = HubServer(hub_config, fast=fast)
    thread = threading.Thread(target=hub.serve_forever)
    thread.start()
    try:
        yield hub
    finally:
        hub.stop()
        thread.join(5)
        hub.close()
    assert not thread.is_alive()


def receive(sock: socket.socket, count: int, timeout: float = 2.0) -> list[bytes]:
    """``count`` datagrams, or fewer if none comes for ``timeout`` seconds."""
    sock.settimeout(timeout)
    got = []
    try:
        while len(got) < count:
            got.append(sock.recv(65535))
    except TimeoutError:
        pass
    return got


def nothing_arrives(sock: socket.socket, wait: float = 0.1) -> bool:
    sock.settimeout(wait)
    try:
        sock.recv(65535)
    except TimeoutError:
        return True
    return False


def settle(hub: HubServer, link: str, packets: int) -> dict[str, Any]:
    """``link``'s statistics once ``packets`` have arrived on it (all delivered or dropped)."""
    deadline = time.monotonic() + 2
    while True:
        stats = hub.stats(link)["links"][link]
        if stats["up"]["packets_in"] >= packets or time.monotonic() > deadline:
            return stats
        time.sleep(0.01)


def comparable(stats: dict[str, Any]) -> dict[str, Any]:
    """Statistics without what differs between two hubs: uptime and the hub's own ports."""
    links = {name: {**link, "address": None} for name, link in stats["links"].items()}
    return {**stats, "uptime_s": None, "links": links}


@pytest.fixture
def nodes() -> Iterator[dict[str, socket.socket]]:
    sockets = {name: udp_socket() for name in "abc"}
    yield sockets
    for sock in sockets.values():
        sock.close()


# -- the same traffic through both paths ---------------------------------------------------------


def exchange_burst(hub: HubServer, nodes: dict[str, socket.socket]) -> None:
    """b speaks first (a's endpoint is not known yet), then a burst a -> b, a burst b -> a and
    what the router drops; each phase received before the next starts, so both paths see the
    packets in the same order."""
    a, b = nodes["a"], nodes["b"]
    b.sendto(probe(A, 0, source=B), hub.addresses["b"])  # no endpoint on a yet
    settle(hub, "b", 1)
    for i in range(1, 201):
        a.sendto(probe(B, i, size=64 + i * 7, source=A), hub.addresses["a"])
    assert [sequence_of(p) for p in receive(b, 200)] == list(range(1, 201))
    for i in range(201, 251):
        b.sendto(probe(A, i, source=B), hub.addresses["b"])
    assert [sequence_of(p) for p in receive(a, 50)] == list(range(201, 251))
    expiring = bytearray(probe(B, 251, source=A))
    expiring[7] = 1
    a.sendto(expiring, hub.addresses["a"])
    a.sendto(probe(A, 252, source=A), hub.addresses["a"])  # back out the same link
    a.sendto(b"\x45" + bytes(60), hub.addresses["a"])  # IPv4
    a.sendto(probe(IPv6Address("2001:db9::1"), 253, source=A), hub.addresses["a"])  # no route
    settle(hub, "a", 204)
    assert nothing_arrives(b)


def test_fast_and_python_paths_same_captures_and_statistics(
    nodes: dict[str, socket.socket], tmp_path: Path
) -> None:
    results = {}
    for fast in (True, False):
        captures = tmp_path / f"fast-{fast}"
        with running(config(captures), fast=fast) as hub:
            exchange_burst(hub, nodes)
            stats = hub.stats()
            if fast:
                assert hub._fast is not None
                counted = hub._fast.counters(0)  # link a: the C path took the bursts
                assert counted.up_packets >= 199 and counted.down_packets >= 49
        frames = {name: list(read_capture_file(captures / f"{name}.pcap")) for name in "ab"}
        results[fast] = (comparable(stats), {n: [f.data for f in fs] for n, fs in frames.items()})
        # a forwarded packet's two records carry one timestamp, as the Python path stamps them
        arrived = {
            sequence_of(f.data): f.timestamp_ns for f in frames["a"] if f.data[24:40] == B.packed
        }
        left = {
            sequence_of(f.data): f.timestamp_ns for f in frames["b"] if f.data[24:40] == B.packed
        }
        assert all(left[n] == arrived[n] for n in left)
    assert results[True] == results[False]
    stats, captured = results[True]
    a = stats["links"]["a"]
    assert a["router_drops"] == {
        "malformed": 1,
        "no_route": 1,
        "hop_limit": 1,
        "same_link": 1,
        "scope": 0,
    }
    assert a["no_endpoint"] == 1 and a["pcap_frames"] == 200 + 4 + 50
    assert a["up"]["packets_out"] == 204 and stats["links"]["b"]["down"]["packets_out"] == 200
    assert {p[7] for p in captured["b"][1:201]} == {63}  # the burst left with Hop Limit 63


# -- what the C path leaves to Python ------------------------------------------------------------


def test_fast_route_change_mid_stream_takes_effect(nodes: dict[str, socket.socket]) -> None:
    with running(config(links="abc")) as hub:
        for name in "bc":  # the hub learns b's and c's endpoints
            nodes[name].sendto(probe(A, 0, source=B), hub.addresses[name])
        a = nodes["a"]
        for i in range(20):
            a.sendto(probe(B, i, source=A), hub.addresses["a"])
        assert len(receive(nodes["b"], 20)) == 20
        assert hub._fast is not None and hub._fast.decisions >= 1
        control = hub.control_address
        assert control is not None
        assert query(control, f"route add {net(B)} c") == {"ok": True}
        assert hub._fast.decisions == 0
        for i in range(20, 40):
            a.sendto(probe(B, i, source=A), hub.addresses["a"])
        assert [sequence_of(p) for p in receive(nodes["c"], 20)] == list(range(20, 40))
        assert nothing_arrives(nodes["b"])


def test_fast_new_sender_on_learned_link_becomes_endpoint(nodes: dict[str, socket.socket]) -> None:
    with running(config()) as hub, udp_socket() as moved:
        a, b = nodes["a"], nodes["b"]
        b.sendto(probe(A, 0, source=B), hub.addresses["b"])  # a's endpoint is not known yet
        settle(hub, "b", 1)
        a.sendto(probe(B, 0, source=A), hub.addresses["a"])
        assert len(receive(b, 1)) == 1
        for i in range(1, 4):  # the first decides b -> a in Python, the others go through C
            b.sendto(probe(A, i, source=B), hub.addresses["b"])
        assert len(receive(a, 3)) == 3
        moved.sendto(probe(B, 4, source=A), hub.addresses["a"])  # the node, from a new port
        assert sequence_of(receive(b, 1)[0]) == 4
        for i in range(5, 10):
            b.sendto(probe(A, i, source=B), hub.addresses["b"])
        assert [sequence_of(p) for p in receive(moved, 5)] == list(range(5, 10))
        assert nothing_arrives(a)
        stats = hub.stats("a")["links"]["a"]
        assert stats["endpoint_changes"] == 1
        assert stats["endpoint"] == list(moved.getsockname())


def test_fast_configured_endpoint_refuses_other_senders(nodes: dict[str, socket.socket]) -> None:
    a_link = LinkConfig(name="a", bind=LOCAL, endpoint=nodes["a"].getsockname())
    hub_config = HubConfig(
        links=(a_link, LinkConfig(name="b", bind=LOCAL)),
        routes=((net(A), "a"), (net(B), "b")),
    )
    with running(hub_config) as hub, udp_socket() as intruder:
        nodes["b"].sendto(probe(A, 0, source=B), hub.addresses["b"])
        assert len(receive(nodes["a"], 1)) == 1
        nodes["a"].sendto(probe(B, 1, source=A), hub.addresses["a"])
        assert len(receive(nodes["b"], 1)) == 1
        intruder.sendto(probe(B, 2, source=A), hub.addresses["a"])
        nodes["a"].sendto(probe(B, 3, source=A), hub.addresses["a"])
        assert [sequence_of(p) for p in receive(nodes["b"], 2)] == [3]
        assert hub.stats("a")["links"]["a"]["foreign_datagrams"] == 1


def test_fast_cached_pair_hop_limit_1_and_0_dropped_and_counted(
    nodes: dict[str, socket.socket], tmp_path: Path
) -> None:
    with running(config(tmp_path)) as hub:
        nodes["b"].sendto(probe(A, 0, source=B), hub.addresses["b"])
        nodes["a"].sendto(probe(B, 1, source=A), hub.addresses["a"])  # decides a -> b
        assert len(receive(nodes["b"], 1)) == 1
        for hop_limit in (1, 0, 2):
            packet = bytearray(probe(B, 10 + hop_limit, source=A))
            packet[7] = hop_limit
            nodes["a"].sendto(packet, hub.addresses["a"])
        forwarded = receive(nodes["b"], 1)
        assert [(sequence_of(p), p[7]) for p in forwarded] == [(12, 1)]
        assert nothing_arrives(nodes["b"])
        stats = settle(hub, "a", 4)
        assert stats["router_drops"]["hop_limit"] == 2
    frames = [f.data for f in read_capture_file(tmp_path / "a.pcap")]
    assert [p[7] for p in frames if p[24:40] == B.packed] == [64, 1, 0, 2]  # as they arrived


def test_fast_pinned_link_never_uses_decision_table(nodes: dict[str, socket.socket]) -> None:
    with running(config(links="abc", to={"a": "c"})) as hub:
        for name in "cb":  # learn endpoints: c's probe is dropped (same link), b's reaches c
            nodes[name].sendto(probe(C, 0, source=A), hub.addresses[name])
        assert len(receive(nodes["c"], 1)) == 1
        # c sends from A's address to B: the pair (A, B) -> b is now in the C table
        for i in range(1, 4):
            nodes["c"].sendto(probe(B, i, source=A), hub.addresses["c"])
        assert len(receive(nodes["b"], 3)) == 3
        assert hub._fast is not None
        decisions = hub._fast.decisions
        # the same pair arriving on pinned a leaves on c, and teaches the table nothing
        for i in range(4, 10):
            nodes["a"].sendto(probe(B, i, source=A), hub.addresses["a"])
        assert [sequence_of(p) for p in receive(nodes["c"], 6)] == list(range(4, 10))
        assert nothing_arrives(nodes["b"])
        assert hub._fast.decisions == decisions
        assert hub._fast.counters(0).up_packets == 0  # nothing of a's went through C


def test_fast_profile_change_takes_packets_through_the_emulator(
    nodes: dict[str, socket.socket],
) -> None:
    with running(config()) as hub:
        control = hub.control_address
        assert control is not None
        nodes["b"].sendto(probe(A, 0, source=B), hub.addresses["b"])
        for i in range(1, 4):  # decided, then through C
            nodes["a"].sendto(probe(B, i, source=A), hub.addresses["a"])
        assert len(receive(nodes["b"], 3)) == 3
        assert query(control, 'profile b {"down": {"latency": "30ms"}}') == {"ok": True}
        sent = time.monotonic()
        for i in range(4, 8):
            nodes["a"].sendto(probe(B, i, source=A), hub.addresses["a"])
        assert [sequence_of(p) for p in receive(nodes["b"], 4)] == [4, 5, 6, 7]
        assert time.monotonic() - sent >= 0.030
        assert query(control, "profile b {}") == {"ok": True}
        for i in range(8, 12):
            nodes["a"].sendto(probe(B, i, source=A), hub.addresses["a"])
        assert len(receive(nodes["b"], 4)) == 4
        down = hub.stats("b")["links"]["b"]["down"]
        assert (down["packets_in"], down["packets_out"]) == (11, 11)
        # in C: 2 and 3 (1 came from a new sender), and 8-11 (the decision outlived the profile)
        assert hub._fast is not None and hub._fast.counters(1).down_packets == 2 + 4


def test_fast_captures_written_on_flush_and_at_shutdown(
    nodes: dict[str, socket.socket], tmp_path: Path
) -> None:
    with running(config(tmp_path)) as hub:
        nodes["b"].sendto(probe(A, 0, source=B), hub.addresses["b"])
        for i in range(1, 11):
            nodes["a"].sendto(probe(B, i, source=A), hub.addresses["a"])
        assert len(receive(nodes["b"], 10)) == 10
        control = hub.control_address
        assert control is not None
        assert query(control, "flush") == {"ok": True}
        assert len(list(read_capture_file(tmp_path / "b.pcap"))) == 11
        for i in range(11, 16):
            nodes["a"].sendto(probe(B, i, source=A), hub.addresses["a"])
        assert len(receive(nodes["b"], 5)) == 5
        assert hub.stats("b")["links"]["b"]["pcap_frames"] == 16
    records = list(read_capture_file(tmp_path / "b.pcap"))  # stopped: flushed and closed
    assert [sequence_of(f.data) for f in records] == list(range(16))


def test_fast_capture_chunks_written_by_c_in_order(
    nodes: dict[str, socket.socket], tmp_path: Path
) -> None:
    count = 400  # 1,400-byte packets: two records each, over two 256 KiB chunks per file
    with running(config(tmp_path)) as hub:
        nodes["b"].sendto(probe(A, 0, source=B), hub.addresses["b"])
        for i in range(1, count + 1):
            nodes["a"].sendto(probe(B, i, size=1400, source=A), hub.addresses["a"])
            if i % 50 == 0:
                assert len(receive(nodes["b"], 50)) == 50
        assert (tmp_path / "a.pcap").stat().st_size > 256 * 1024  # written before any flush
    frames = list(read_capture_file(tmp_path / "a.pcap"))
    assert [sequence_of(f.data) for f in frames] == list(range(1, count + 1))


# -- garbage -------------------------------------------------------------------------------------


def garbage(rng: random.Random, template: bytes) -> bytes:
    """Random bytes, a cut packet, or the template with a random version, Hop Limit and length."""
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 120))
    if kind == 1:
        return template[: rng.randrange(0, 40)]
    packet = bytearray(template[:40] + rng.randbytes(rng.randrange(0, 200)))
    packet[0] = rng.choice((0x60, 0x6F, 0x40, 0x00, 0xF6))
    packet[7] = rng.randrange(0, 4)
    return bytes(packet)


def test_fast_drain_garbage_never_crashes_and_matches_python(
    nodes: dict[str, socket.socket],
) -> None:
    template = probe(B, 0, source=A)
    rng = random.Random(4)
    datagrams = [garbage(rng, template) for _ in range(600)]
    malformed = sum(1 for d in datagrams if len(d) < 40 or d[0] >> 4 != 6)
    results = {}
    for fast in (True, False):
        with running(config(), fast=fast) as hub:
            nodes["b"].sendto(probe(A, 0, source=B), hub.addresses["b"])
            nodes["a"].sendto(template, hub.addresses["a"])  # the pair (A, B) is decided
            assert len(receive(nodes["b"], 1)) == 1
            for i, datagram in enumerate(datagrams):
                nodes["a"].sendto(datagram, hub.addresses["a"])
                if i % 100 == 99:
                    settle(hub, "a", i + 2)
            stats = settle(hub, "a", len(datagrams) + 1)
            forwarded = receive(nodes["b"], len(datagrams), timeout=0.3)
            results[fast] = (comparable(hub.stats()), forwarded)
        assert stats["router_drops"]["malformed"] == malformed
        assert stats["up"]["packets_in"] == len(datagrams) + 1
    assert results[True] == results[False]
    assert len(results[True][1]) > 50  # the fast path did forward some of them


def test_fast_decision_table_emptied_when_full() -> None:
    fast = FastPath(2, bytearray(65535))
    for i in range(5000):
        fast.decide(i.to_bytes(32, "big"), 1)
    assert 0 < fast.decisions <= 4096
    fast.decide(bytes(32), 0)
    fast.decide(bytes(32), 1)  # replaces, not added
    before = fast.decisions
    fast.decide(bytes(32), 0)
    assert fast.decisions == before
    fast.forget()
    assert fast.decisions == 0
    with pytest.raises(OSError):
        fast.decide(bytes(32), 2)  # no such link


# -- the loop's wait in C (fast_wait) -------------------------------------------------------------


@contextmanager
def waiting_path() -> Iterator[tuple[FastPath, bytearray, Any, dict[str, socket.socket]]]:
    """A FastPath over two UDP links a and b (hub sockets ``la``, ``lb``; nodes ``a``, ``b``,
    endpoints known, packets A -> B decided to b) and an epoll holding both links and a
    socket pair's reader ``r`` (written by ``w``), as the hub's loop registers its own."""
    buffer = bytearray(65535)
    fast = FastPath(2, buffer)
    socks = {name: udp_socket() for name in ("la", "lb", "a", "b")}
    socks["r"], socks["w"] = socket.socketpair()
    poller = select.epoll()
    try:
        for index, (link, node) in enumerate((("la", "a"), ("lb", "b"))):
            socks[link].setblocking(False)
            fast.set_link(index, socks[link].fileno(), udp=True, pinned=False)
            fast.set_up_transparent(index, True)
            fast.set_down_transparent(index, True)
            fast.set_endpoint(index, socks[node].getsockname())
            poller.register(socks[link].fileno(), select.EPOLLIN)
        poller.register(socks["r"].fileno(), select.EPOLLIN)
        fast.decide(A.packed + B.packed, 1)
        yield fast, buffer, poller, socks
    finally:
        poller.close()
        for sock in socks.values():
            sock.close()


def test_fast_wait_forwards_in_c_and_returns_at_its_timeout() -> None:
    with waiting_path() as (fast, _, poller, socks):
        for i in range(100):
            socks["a"].sendto(probe(B, i, source=A), socks["la"].getsockname())
        start = time.monotonic()
        assert fast.wait(poller.fileno(), 0.05, 64) == []  # the timer fires: nothing for Python
        assert time.monotonic() - start >= 0.05
        assert [sequence_of(p) for p in receive(socks["b"], 100)] == list(range(100))
        assert fast.counters(0).up_packets == 100 and fast.counters(1).down_packets == 100


def test_fast_wait_returns_a_python_descriptor_while_c_forwards() -> None:
    with waiting_path() as (fast, _, poller, socks):
        socks["a"].sendto(probe(B, 1, source=A), socks["la"].getsockname())
        socks["w"].send(b"x")
        assert fast.wait(poller.fileno(), 2.0, 64) == [socks["r"].fileno()]
        assert [sequence_of(p) for p in receive(socks["b"], 1)] == [1]
        # level-triggered: reported again until the loop's handler reads it
        assert fast.wait(poller.fileno(), 0, 64) == [socks["r"].fileno()]
        socks["r"].recv(16)
        assert fast.wait(poller.fileno(), 0, 64) == []


def test_fast_wait_punts_to_python_in_order() -> None:
    with waiting_path() as (fast, buffer, poller, socks):
        undecided = probe(A, 11, source=B)  # B -> A: no decision
        for i in range(1, 22):
            packet = undecided if i == 11 else probe(B, i, source=A)
            socks["a"].sendto(packet, socks["la"].getsockname())
        la = socks["la"].fileno()
        assert fast.wait(poller.fileno(), 2.0, 64) == [la]
        assert fast.wait(poller.fileno(), 2.0, 64) == [la]  # not taken: reported again
        assert fast.take_punt(1) == DONE  # another link's handler gets nothing
        assert fast.take_punt(0) == PUNT
        assert bytes(buffer[: fast.punt.size]) == undecided and not fast.punt.stranger
        assert fast.take_punt(0) == DONE
        assert [sequence_of(p) for p in receive(socks["b"], 10)] == list(range(1, 11))
        assert fast.drain(0, 64) == DONE  # the rest, after the punt, as the hub's handler does
        assert [sequence_of(p) for p in receive(socks["b"], 10)] == list(range(12, 22))
        assert fast.counters(0).up_packets == 20


def test_fast_wait_batched_burst_nothing_lost_or_reordered() -> None:
    """Datagrams of up to 60,000 bytes, read 32 per recvmmsg and sent per sendmmsg, some
    punted mid-batch: each forwarded once, in order, byte for byte but the Hop Limit, and the
    punted ones handed to Python in order, as the hub's handler takes them."""
    rng = random.Random(13)
    with waiting_path() as (fast, buffer, poller, socks):
        forwarded_expected, punted_expected = [], []
        for i in range(300):
            size = 60000 if i % 97 == 0 else rng.randrange(60, 1500)
            if i % 41 == 40:  # B -> A: no decision
                punted_expected.append(probe(A, i, size=size, source=B))
                packet = punted_expected[-1]
            else:
                packet = probe(B, i, size=size, source=A)
                forwarded_expected.append(packet[:7] + bytes((63,)) + packet[8:])
            socks["a"].sendto(packet, socks["la"].getsockname())
        punted: list[bytes] = []
        deadline = time.monotonic() + 5
        while len(punted) < len(punted_expected) or fast.counters(0).up_packets < len(
            forwarded_expected
        ):
            assert time.monotonic() < deadline
            if fast.wait(poller.fileno(), 0.05, 64) and fast.take_punt(0) == PUNT:
                punted.append(bytes(buffer[: fast.punt.size]))
                while fast.drain(0, 64) == PUNT:
                    punted.append(bytes(buffer[: fast.punt.size]))
        assert punted == punted_expected
        assert receive(socks["b"], len(forwarded_expected)) == forwarded_expected
        assert nothing_arrives(socks["b"])
        counted = fast.counters(1)
        assert counted.down_packets == len(forwarded_expected)
        assert counted.down_bytes == sum(map(len, forwarded_expected))


def test_fast_wait_punts_every_packet_of_an_emulated_up_direction() -> None:
    with waiting_path() as (fast, buffer, poller, socks):
        fast.set_up_transparent(0, False)
        packets = [probe(B, i, source=A) for i in range(3)]
        for packet in packets:
            socks["a"].sendto(packet, socks["la"].getsockname())
        assert fast.wait(poller.fileno(), 2.0, 64) == [socks["la"].fileno()]
        assert fast.take_punt(0) == PUNT and bytes(buffer[: fast.punt.size]) == packets[0]
        for packet in packets[1:]:  # read ahead in one recvmmsg, handed over one by one
            assert fast.drain(0, 0) == PUNT and bytes(buffer[: fast.punt.size]) == packet
        assert fast.drain(0, 0) == DONE
        assert fast.counters(0).up_packets == 0 and nothing_arrives(socks["b"])


def test_fast_hub_burst_nothing_lost_or_reordered_with_control_queries(
    nodes: dict[str, socket.socket],
) -> None:
    with running(config()) as hub:
        a, b = nodes["a"], nodes["b"]
        b.sendto(probe(A, 0, source=B), hub.addresses["b"])  # b's endpoint learned
        settle(hub, "b", 1)
        assert hub.control_address is not None
        got: list[int] = []
        for start in range(1, 3001, 500):  # the control socket answers between bursts C carries
            for i in range(start, start + 500):
                a.sendto(probe(B, i, source=A), hub.addresses["a"])
            got += [sequence_of(p) for p in receive(b, 500)]
            assert query(hub.control_address, "stats a")["links"]["a"]["up"]["packets_in"] >= 1
        assert got == list(range(1, 3001))
        stats = hub.stats()["links"]
        assert stats["a"]["up"]["packets_in"] == 3000 and stats["b"]["down"]["packets_out"] == 3000
        assert hub._fast is not None and hub._fast.counters(0).up_packets >= 2999
