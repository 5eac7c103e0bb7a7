"""``labnet bench hub``: how fast the hub forwards, against a bare Python relay, in one run.

A load generator in this process sends small IPv6/UDP packets (64 bytes) from one UDP socket to
the forwarder's first port and receives them on a second socket from the forwarder's second
port, keeping at most :data:`WINDOW` packets outstanding so no socket buffer overflows: the
figures are loss-free forwarding rates, and each run checks that every packet sent arrived. The
forwarder runs in a child process, so on a two-core machine the generator and the forwarder
each have a core.

- ``relay_pps``: the baseline, a bare relay with the hub's loop structure (epoll, non-blocking
  ``recvfrom_into`` until EAGAIN, ``sendto``) and nothing else: no routing, Hop Limit, emulation,
  statistics or capture.
- ``hub_pps``: the hub (:class:`labnet.hub.server.HubServer`) with two links, routing by
  destination prefix, no emulation, no capture.
- ``hub_pcap_pps``: the same hub writing a pcap per link.
- ``hub_emulated_pps``: every packet through the emulator: 1 ms latency on each link's up
  direction (the window is raised so latency does not bound the rate).
- ``hub_overhead``: ``relay_pps / hub_pps``.
- ``*_cpu_us_per_packet``: the forwarder process's CPU time (user + system, from /proc) per
  packet forwarded, and ``hub_cpu_overhead``, the hub's over the relay's. These are the steadier
  figures: the rates move with whatever else the machine runs, the CPU cost per packet much less.
- ``lost_packets``: packets sent that never arrived, per forwarder (0 expected).

The generator runs near the forwarder's speed, so the relay's rate may be bounded by the
generator rather than the relay; compare the CPU figures for the hub's true overhead.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import select
import signal
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

from labnet.hub.config import HubConfig, LinkConfig
from labnet.hub.emulation import LinkProfile
from labnet.hub.server import bind_udp, serve
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.udp import UdpDatagram

WINDOW: Final = 256
PACKET_SIZE: Final = 64
SOURCE = IPv6Address("2001:db8:a::1")
DESTINATION = IPv6Address("2001:db8:b::1")
SOURCE_PREFIX = IPv6Network("2001:db8:a::/48")
DESTINATION_PREFIX = IPv6Network("2001:db8:b::/48")
LOCALHOST: Final = "127.0.0.1"

Address = tuple[str, int]


def small_packet(size: int = PACKET_SIZE) -> bytes:
    """An IPv6/UDP packet of ``size`` bytes from link a's prefix to link b's."""
    payload = bytes(size - 48)
    data = Ipv6Packet(
        source=SOURCE,
        destination=DESTINATION,
        hop_limit=64,
        payload=UdpDatagram(source_port=40000, destination_port=9, payload=payload),
    ).emit()
    assert len(data) == size
    return data


def hub_config(*, pcap_dir: Path | None = None, up_latency: float = 0.0) -> HubConfig:
    profile = LinkProfile(latency=up_latency)
    return HubConfig(
        links=(
            LinkConfig(name="a", bind=(LOCALHOST, 0), up=profile),
            LinkConfig(name="b", bind=(LOCALHOST, 0), up=profile),
        ),
        routes=(
            (SOURCE_PREFIX, "a"),
            (DESTINATION_PREFIX, "b"),
        ),
        control=None,
        pcap_dir=pcap_dir,
    )


# -- forwarders, each run in a child process ---------------------------------------------------


def _run_hub(config: HubConfig, report: Connection) -> None:
    def announce(described: dict[str, Any]) -> None:
        links = described["links"]
        report.send((tuple(links["a"]["address"]), tuple(links["b"]["address"])))

    serve(config, announce)


def _run_relay(report: Connection) -> None:
    """The baseline: two sockets, each datagram sent out of the other to its last sender."""
    first = bind_udp((LOCALHOST, 0))  # the hub's kind of socket: non-blocking, 4 MiB buffers
    second = bind_udp((LOCALHOST, 0))
    report.send((first.getsockname(), second.getsockname()))
    stopping = False

    def on_signal(number: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    poller = select.epoll()
    pairs = {first.fileno(): (first, second), second.fileno(): (second, first)}
    for fd in pairs:
        poller.register(fd, select.EPOLLIN)
    endpoints: dict[socket.socket, Any] = {}
    buffer = bytearray(65535)
    view = memoryview(buffer)
    while not stopping:
        for fd, _ in poller.poll(0.2):
            source, target = pairs[fd]
            while True:
                try:
                    size, sender = source.recvfrom_into(buffer)
                except BlockingIOError:
                    break
                endpoints[source] = sender
                endpoint = endpoints.get(target)
                if endpoint is not None:
                    target.sendto(view[:size], endpoint)


# -- the load generator ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measured:
    pps: float  # packets per second forwarded, median of the rounds
    cpu_us_per_packet: float  # the forwarder's CPU time (user + system) per packet forwarded
    lost: int  # packets sent that never arrived (0 when all is well)


def _measure(
    first: Address,
    second: Address,
    cpu_seconds: Callable[[], float],
    seconds: float,
    window: int,
    rounds: int = 3,
) -> Measured:
    """Forward packets from ``first`` to ``second`` for ``seconds``; ``cpu_seconds`` reads the
    forwarder's CPU time."""
    packet = small_packet()
    sender = bind_udp((LOCALHOST, 0))
    receiver = bind_udp((LOCALHOST, 0))
    try:
        # Attach the receiving side: the forwarder learns its endpoint from this datagram, which
        # carries a packet routed nowhere useful (to link a, so it comes out at the sender).
        reverse = Ipv6Packet.parse(packet)
        attach = Ipv6Packet(
            source=reverse.destination,
            destination=reverse.source,
            hop_limit=64,
            payload=reverse.payload,
        ).emit()
        sender.sendto(packet, first)  # the forwarder learns the sender's endpoint
        time.sleep(0.05)
        receiver.sendto(attach, second)
        time.sleep(0.05)
        _drain(sender)
        _drain(receiver)
        sent = received = 0
        send = sender.sendto
        receive = receiver.recv_into
        scratch = bytearray(2048)
        results = []
        cpu_start = measured_start = 0.0
        for round_ in range(rounds + 1):  # round 0 warms up
            if round_ == 1:
                cpu_start, measured_start = cpu_seconds(), received
            duration = 0.2 if round_ == 0 else seconds / rounds
            start_received = received
            start = time.perf_counter()
            deadline = start + duration
            while True:
                while sent - received < window:
                    send(packet, first)
                    sent += 1
                while True:
                    try:
                        receive(scratch)
                    except BlockingIOError:
                        break
                    received += 1
                if sent - received >= window:
                    select.select([receiver], [], [], 0.1)
                if time.perf_counter() >= deadline:
                    break
            elapsed = time.perf_counter() - start
            if round_:
                results.append((received - start_received) / elapsed)
        cpu = cpu_seconds() - cpu_start
        forwarded = received - measured_start
        receiver.settimeout(0.5)
        while received < sent:  # the packets still in flight
            try:
                receiver.recv_into(scratch)
            except TimeoutError:
                break
            received += 1
        return Measured(statistics.median(results), cpu / forwarded * 1e6, sent - received)
    finally:
        sender.close()
        receiver.close()


def _drain(sock: socket.socket) -> None:
    while True:
        try:
            sock.recv(65535)
        except BlockingIOError:
            return


def _with_forwarder(
    target: Callable[..., None], args: tuple[Any, ...], window: int, seconds: float
) -> Measured:
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    process = context.Process(target=target, args=(*args, theirs), daemon=True)
    process.start()
    try:
        if not ours.poll(10):
            raise RuntimeError("the forwarder did not report its addresses")
        first, second = ours.recv()
        pid = process.pid
        assert pid is not None
        return _measure(first, second, lambda: _cpu_seconds(pid), seconds, window)
    finally:
        if process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
        ours.close()
        theirs.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (proc(5): fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(seconds: float = 4.0) -> dict[str, Any]:
    share = seconds / 4
    measured: dict[str, Measured] = {}
    measured["relay"] = _with_forwarder(_run_relay, (), WINDOW, share)
    measured["hub"] = _with_forwarder(_run_hub, (hub_config(),), WINDOW, share)
    with tempfile.TemporaryDirectory(prefix="labnet-bench-hub-") as captures:
        config = hub_config(pcap_dir=Path(captures))
        measured["hub_pcap"] = _with_forwarder(_run_hub, (config,), WINDOW, share)
    config = hub_config(up_latency=0.001)
    measured["hub_emulated"] = _with_forwarder(_run_hub, (config,), 4 * WINDOW, share)
    results: dict[str, Any] = {f"{name}_pps": round(m.pps) for name, m in measured.items()}
    results.update(
        {f"{name}_cpu_us_per_packet": round(m.cpu_us_per_packet, 2) for name, m in measured.items()}
    )
    results["hub_overhead"] = round(results["relay_pps"] / results["hub_pps"], 2)
    results["hub_cpu_overhead"] = round(
        measured["hub"].cpu_us_per_packet / measured["relay"].cpu_us_per_packet, 2
    )
    results["lost_packets"] = {name: m.lost for name, m in measured.items()}
    results["packet_bytes"] = PACKET_SIZE
    results["cpus"] = os.cpu_count()
    results["python"] = platform.python_version()
    return results
