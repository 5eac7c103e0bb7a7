"""Bandwidth in the simulator (mip6.runtime.memory.Path): serialization at the path's rate
behind a bounded FIFO per direction, tail drops counted, and no change at all without a rate;
then host-mode TCP (tcp_migrate) over a shaped path fills it."""

from __future__ import annotations

import hashlib
import random
from ipaddress import IPv6Address

import pytest

from mip6.runtime.host import Host
from mip6.runtime.memory import MemoryNetwork, Path
from mip6.wire.ipv6 import Ipv6Packet, RawPayload
from tests.engines import PassThrough

A = IPv6Address("2001:db8:1::a")
B = IPv6Address("2001:db8:2::b")
MBIT = 1e6
NO_NEXT_HEADER = 59


def network(path: Path, *, hosts: bool = False) -> MemoryNetwork:
    """Nodes a and b, every direction on ``path``; with ``hosts``, each has a host (tcp_migrate)
    behind an engine that passes packets through."""
    net = MemoryNetwork(seed=1, default_path=path)
    for name, address in (("a", A), ("b", B)):
        host = Host(addresses=[address], secret=bytes(32), rng=random.Random(2)) if hosts else None
        net.add(name, PassThrough([]), host=host)
        net.route(f"{address}/128", name)
    return net


def packet(size: int) -> bytes:
    """An IPv6 packet of ``size`` bytes from a to b."""
    return Ipv6Packet(
        source=A, destination=B, payload=RawPayload(protocol=NO_NEXT_HEADER, data=bytes(size - 40))
    ).emit()


def arrivals(net: MemoryNetwork, until: float) -> list[float]:
    net.run_until(until)
    return [at for at, _ in net.nodes["b"].delivered]


def test_shaped_path_burst_serialized_back_to_back_then_latency() -> None:
    # 1000 bytes at 8 Mbit/s: 1 ms on the link each, then 10 ms of propagation
    net = network(Path(latency=0.010, bandwidth_bits_per_s=8 * MBIT))
    for _ in range(3):
        net.call("a", "send", packet(1000))
    assert arrivals(net, 1.0) == pytest.approx([0.011, 0.012, 0.013])


def test_shaped_path_idle_link_packet_starts_when_offered() -> None:
    net = network(Path(latency=0.010, bandwidth_bits_per_s=8 * MBIT))
    net.call("a", "send", packet(1000))
    net.run_until(0.5)
    net.call("a", "send", packet(500))
    assert arrivals(net, 1.0) == pytest.approx([0.011, 0.5105])


def test_shaped_path_full_queue_tail_drops_counted_per_direction() -> None:
    # the queue holds two packets, the one being serialized included
    net = network(Path(latency=0.010, bandwidth_bits_per_s=8 * MBIT, queue_packets=2))
    for _ in range(4):
        net.call("a", "send", packet(1000))
    assert net.queue_drops == {("a", "b"): 2}
    assert [sent.lost for sent in net.trace] == [False, False, True, True]
    net.run_until(0.0015)  # the first has left the queue: room for one
    net.call("a", "send", packet(1000))
    assert net.queue_drops == {("a", "b"): 2}
    assert arrivals(net, 1.0) == pytest.approx([0.011, 0.012, 0.013])


def test_shared_queue_one_direction_waits_behind_another() -> None:
    # a third node c behind the same uplink as b's path: a's packet to c leaves the link only
    # after the two to b, as behind one shaped router interface
    uplink = Path(latency=0.010, bandwidth_bits_per_s=8 * MBIT, shared_queue="a uplink")
    net = network(uplink)
    c = IPv6Address("2001:db8:3::c")
    net.add("c", PassThrough([]))
    net.route(f"{c}/128", "c")
    net.path("a", "c", Path(latency=0.002, bandwidth_bits_per_s=8 * MBIT, shared_queue="a uplink"))
    for _ in range(2):
        net.call("a", "send", packet(1000))
    to_c = Ipv6Packet(
        source=A, destination=c, payload=RawPayload(protocol=NO_NEXT_HEADER, data=bytes(960))
    ).emit()
    net.call("a", "send", to_c)
    net.run_until(1.0)
    assert [at for at, _ in net.nodes["c"].delivered] == pytest.approx([0.005])
    assert arrivals(net, 1.0) == pytest.approx([0.011, 0.012])


def test_unshaped_path_burst_arrives_together_after_latency() -> None:
    net = network(Path(latency=0.010))
    for size in (1000, 1500, 60):
        net.call("a", "send", packet(size))
    assert arrivals(net, 1.0) == [0.010, 0.010, 0.010]
    assert not net.queue_drops


@pytest.mark.parametrize("fields", [{"bandwidth_bits_per_s": 0.0}, {"queue_packets": 0}])
def test_path_without_room_or_rate_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Path(**fields)  # type: ignore[arg-type]


def download(path: Path, size: int) -> tuple[float, MemoryNetwork]:
    """Host a fetches ``size`` bytes from host b over ``path``: the virtual time from the
    connection's establishment to the last byte read (seconds), and the network."""
    net = network(path, hosts=True)
    client_host, server_host = net.nodes["a"].host, net.nodes["b"].host
    assert client_host is not None and server_host is not None
    listener = server_host.listen(80)
    client = client_host.connect(net.now, B, 80)
    net.nodes["a"].runtime.flush_host()
    net.run_for(1.0)
    server = listener.accept()
    assert server is not None
    began = net.now
    body = random.Random(size).randbytes(size)
    sent = received = 0
    digest = hashlib.sha256()
    while received < size and net.now < began + 600:
        sent += server.send(body[sent:])
        net.nodes["b"].runtime.flush_host()
        data = client.recv(1 << 20)
        received += len(data)
        digest.update(data)
        net.nodes["a"].runtime.flush_host()
        if received < size:
            net.run_for(0.001)
    assert digest.digest() == hashlib.sha256(body).digest()
    return net.now - began, net


@pytest.mark.parametrize("rate_mbit", [1.0, 2.0, 10.0])
def test_tcp_long_transfer_on_shaped_path_approaches_the_rate(rate_mbit: float) -> None:
    size = 2_000_000
    seconds, net = download(Path(latency=0.010, bandwidth_bits_per_s=rate_mbit * MBIT), size)
    goodput = size * 8 / seconds
    # what the rate allows for TCP payload: 1440 bytes of every 1500 (IPv6 and TCP headers
    # with timestamps: 60 bytes); slow start and the last window's round trip cost the rest
    ceiling = rate_mbit * MBIT * 1440 / 1500
    assert 0.9 * ceiling < goodput <= ceiling
    assert not net.queue_drops


def test_tcp_on_shaped_path_with_short_queue_drops_counted_and_data_whole() -> None:
    seconds, net = download(
        Path(latency=0.010, bandwidth_bits_per_s=2 * MBIT, queue_packets=8), 1_000_000
    )
    assert net.queue_drops[("b", "a")] > 0
    assert net.queue_drops[("b", "a")] == sum(sent.lost for sent in net.trace)
    assert seconds > 1_000_000 * 8 / (2 * MBIT)


def test_tcp_on_shaped_path_same_seed_same_packets_and_times() -> None:
    def fingerprint() -> str:
        _, net = download(
            Path(latency=0.010, bandwidth_bits_per_s=2 * MBIT, queue_packets=8), 300_000
        )
        digest = hashlib.sha256()
        for sent in net.trace:
            digest.update(f"{sent.time!r} {sent.sender} {sent.lost}".encode() + sent.data)
        return digest.hexdigest()

    assert fingerprint() == fingerprint()
