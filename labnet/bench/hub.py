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

As root, the same run also measures the hub as the ``netns`` backend uses it (kernel to kernel,
see :mod:`labnet.netns`); without root these are left out and ``netns_skipped`` says why:

- ``veth_rtt_us``: the baseline, the median ``ping -6`` round trip between two network
  namespaces joined by a bare veth pair.
- ``hub_added_rtt_us``: the median ``ping -6`` round trip between two namespaces attached as
  ``labnet up`` attaches nodes (a correspondent's shim-mode mip6 daemon with its TUN device in
  the namespace and a UDP link to the hub, on networks with no emulated latency), minus
  ``veth_rtt_us``: what the daemons and the hub add per round trip (``hub_rtt_us`` is the
  round trip itself).
- ``hub_tcp_mbps``: kernel TCP throughput (a Python socket sender and receiver, one connection)
  between those two namespaces through the hub with no shaping, in Mbit/s of TCP payload. The
  lab's hub writes its captures, as every netns lab does.

The generator runs near the forwarder's speed, so the relay's rate may be bounded by the
generator rather than the relay; compare the CPU figures for the hub's true overhead.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
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


# -- kernel to kernel, as the netns backend runs it (root) ----------------------------------------

PING_COUNT: Final = 60  # echo requests per RTT figure; the first few are left out (warm-up)
PING_WARMUP: Final = 5
TCP_PORT: Final = 5201
_PING_TIME = re.compile(r"icmp_seq=\d+ ttl=\d+ time=([\d.]+) ms")

# two correspondents (shim-mode daemons, kernel addresses on their TUN devices) on two networks
# with no emulated latency, loss or bandwidth limit: nothing between them but the daemons and
# the hub
_TOPOLOGY = """\
name: bench-hub
networks:
  a: {prefix: "2001:db8:a::/64"}
  b: {prefix: "2001:db8:b::/64"}
nodes:
  a: {role: correspondent, network: a, address: "2001:db8:a::1"}
  b: {role: correspondent, network: b, address: "2001:db8:b::1"}
"""

# the TCP receiver (in one namespace): counts the payload of one connection, accept to EOF
_RECEIVER = """
import socket, sys, time
server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(1)
server.settimeout(30)
print("ready", flush=True)
connection, _ = server.accept()
connection.settimeout(30)
start = time.perf_counter()
buffer = bytearray(1 << 20)
total = 0
while size := connection.recv_into(buffer):
    total += size
print(total, time.perf_counter() - start, flush=True)
connection.close()
"""

# the TCP sender (in the other): writes for the given seconds, then closes
_SENDER = """
import socket, sys, time
data = bytes(1 << 16)
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    sock.sendall(data)
sock.shutdown(socket.SHUT_WR)
sock.recv(1)
sock.close()
"""


def _netns_unavailable() -> str | None:
    """Why the kernel-to-kernel figures cannot be measured here (None: they can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth pairs, TUN devices): run as root"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    for program in ("ip", "ping"):
        if shutil.which(program) is None:
            return f"needs {program} (apt-get install iproute2 iputils-ping)"
    return None


def _sh(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip() or result.returncode}")


def _ping_rtt_us(netns: str, address: str) -> float:
    """Median ``ping -6`` round trip from namespace ``netns`` to ``address``, in µs."""
    command = ["ping", "-6", "-n", "-c", str(PING_COUNT), "-i", "0.02", "-W", "2", address]
    result = subprocess.run(
        ["ip", "netns", "exec", netns, *command], capture_output=True, text=True, timeout=60
    )
    rtts = [float(ms) * 1000 for ms in _PING_TIME.findall(result.stdout)]
    if len(rtts) < PING_COUNT // 2:
        raise RuntimeError(f"ping {address} in {netns}: {len(rtts)} of {PING_COUNT} replies")
    return statistics.median(rtts[PING_WARMUP:])


def _veth_rtt_us() -> float:
    """The baseline: two namespaces joined by a bare veth pair."""
    tag = f"lbh{os.getpid() % 100000}"
    first, second = f"{tag}-a", f"{tag}-b"
    created: list[str] = []
    try:
        for netns in (first, second):
            _sh("ip", "netns", "add", netns)
            created.append(netns)
            _sh("ip", "-n", netns, "link", "set", "lo", "up")
        _sh("ip", "-n", first, "link", "add", "veth0", "type", "veth",
            "peer", "name", "veth0", "netns", second)  # fmt: skip
        for netns, address in ((first, "2001:db8:e::1"), (second, "2001:db8:e::2")):
            _sh("ip", "-n", netns, "-6", "addr", "add", f"{address}/64", "dev", "veth0", "nodad")
            _sh("ip", "-n", netns, "link", "set", "veth0", "up")
        return _ping_rtt_us(first, "2001:db8:e::2")
    finally:
        for netns in created:  # deleting a namespace deletes its end of the pair, hence both
            subprocess.run(["ip", "netns", "delete", netns], capture_output=True, timeout=30)


def _tcp_mbps(sender_netns: str, receiver_netns: str, address: str, seconds: float) -> float:
    """One kernel TCP connection's payload throughput from one namespace to the other."""
    receiver = subprocess.Popen(
        ["ip", "netns", "exec", receiver_netns, sys.executable, "-c", _RECEIVER,
         address, str(TCP_PORT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert receiver.stdout is not None
        if receiver.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the TCP receiver did not start: {receiver.communicate()[1]}")
        sender = subprocess.run(
            ["ip", "netns", "exec", sender_netns, sys.executable, "-c", _SENDER,
             address, str(TCP_PORT), str(seconds)],
            capture_output=True,
            text=True,
            timeout=seconds + 40,
        )  # fmt: skip
        if sender.returncode != 0:
            raise RuntimeError(f"the TCP sender failed: {sender.stderr.strip()[-500:]}")
        out, errors = receiver.communicate(timeout=40)
        if receiver.returncode != 0:
            raise RuntimeError(f"the TCP receiver failed: {errors.strip()[-500:]}")
        total, elapsed = out.split()
        return int(total) * 8 / float(elapsed) / 1e6
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()


def _through_hub(tcp_seconds: float) -> tuple[float, float]:
    """(median ping RTT in µs, TCP Mbit/s) between two nodes of a ``labnet up`` lab (netns
    backend) with no emulation; the lab is taken down again whatever happens."""
    from labnet import netns

    previous = os.environ.get("LABNET_STATE_DIR")
    name = f"benchhub{os.getpid() % 100000}"
    with tempfile.TemporaryDirectory(prefix="labnet-bench-hub-") as directory:
        topology = Path(directory) / "bench-hub.yaml"
        topology.write_text(_TOPOLOGY)
        os.environ["LABNET_STATE_DIR"] = str(Path(directory) / "state")
        try:
            lab = netns.NetnsLab.up(str(topology), name)
            first, second = (lab.state["nodes"][node]["netns"] for node in ("a", "b"))
            rtt = _ping_rtt_us(first, "2001:db8:b::1")
            mbps = _tcp_mbps(first, second, "2001:db8:b::1", tcp_seconds)
            return rtt, mbps
        finally:
            netns.down(name)
            if previous is None:
                os.environ.pop("LABNET_STATE_DIR", None)
            else:
                os.environ["LABNET_STATE_DIR"] = previous


def run_netns(tcp_seconds: float) -> dict[str, Any]:
    """``veth_rtt_us``, ``hub_added_rtt_us`` and ``hub_tcp_mbps``, or ``netns_skipped``."""
    reason = _netns_unavailable()
    if reason is not None:
        return {"netns_skipped": f"veth_rtt_us, hub_added_rtt_us, hub_tcp_mbps: {reason}"}
    veth = _veth_rtt_us()
    hub_rtt, mbps = _through_hub(tcp_seconds)
    return {
        "veth_rtt_us": round(veth, 1),
        "hub_rtt_us": round(hub_rtt, 1),
        "hub_added_rtt_us": round(hub_rtt - veth, 1),
        "hub_tcp_mbps": round(mbps, 1),
    }


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
    results.update(run_netns(max(1.0, 2 * share)))
    results["packet_bytes"] = PACKET_SIZE
    results["cpus"] = os.cpu_count()
    results["python"] = platform.python_version()
    return results
