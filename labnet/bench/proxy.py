"""``labnet bench proxy``: what the proxy for unmodified servers (:mod:`mip6.apps.proxy`) costs
a client, against the same unmodified server reached directly, in the same run (root: the
netns backend).

The lab: the built-in ``dserver-proxy`` topology with every latency set to zero (a LAN, as
the seeds' testbed: thesis 6.3.2, SPEC-dserver 9.7), the contact node m1 keeping its clients
(``distribute: false``, so the figures are the proxy's and not a distribution's), the proxy on
port 80 of every member (handing no client on) in front of a stock ``python -m http.server
--protocol HTTP/1.1`` on ``::1`` in the member's namespace, and beside it on m1's network a
plain kernel namespace (``web``, no daemon) running the same ``http.server`` on its own
address: the path from the client to ``web`` crosses the same hub links as the path to m1,
without the member.

- ``proxy_fetch_ms`` vs ``direct_fetch_ms``: a stock ``curl`` in the client's namespace (behind
  its shim-mode correspondent daemon) fetching a 10 kB file, a new connection each time (curl's
  ``time_total``: connect to the last byte, the process's start left out), through the contact
  address and m1's proxy vs from ``web``; medians of ``fetches`` each, interleaved (each round
  in the order the last one ran backwards: none always follows the same one);
  ``proxy_added_fetch_ms`` their difference (the seeds: 23.41 vs 20.23 ms, +3.18).
  ``member_fetch_ms``: the same file from m1's own HTTP server inside the daemon (the
  ``download`` service on port 81: no proxy, no kernel server), which splits the difference
  into the member's part (its TCP and engine, in Python) and the proxy's.
- ``proxy_mbps`` vs ``direct_mbps``: the same for a ``large`` body (curl's
  ``speed_download``), medians of three each, interleaved; ``member_cpu_ns_per_byte``: the
  CPU time (user + system, ``/proc``) the m1 daemon spent per byte of the proxied large
  fetches: its TCP, engine and proxy together; ``member_mbps`` and
  ``member_own_cpu_ns_per_byte``: the same body from m1's own server (no proxy, port 82).
- ``requests_per_s`` vs ``direct_requests_per_s``: one curl fetching the 10 kB file
  ``requests`` times over one keep-alive connection, requests over the sum of the transfers'
  times.
- ``member_request_ms`` and ``member_response_ms``: the m1 daemon's own share of a fresh
  proxied fetch, read off the hub's capture of m1's link and a capture of m1's loopback taken
  during the fetches (medians): from the request's arrival on m1's link to its forward to the
  server on the loopback, and from the server's last response byte on the loopback to the
  response's first segment on m1's link. Both are measured on the same clock within one
  fetch, so they move less with the machine's drift than ``proxy_added_fetch_ms`` (a
  difference between two medians of whole fetches).

Every fetch is checked (status 200 and its size); figures move with the machine's load.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

from labnet.dserver_lab import innermost
from labnet.netns import NetnsLab
from labnet.topology import NodeSpec, Topology, Uplink, builtin
from mip6.runtime.config import AppConfig
from mip6.wire import protocols
from mip6.wire.pcap import Ipv6Frame, extract_ipv6, read_capture_file

SERVER_PORT = 8000  # where dserver-proxy's proxies find their servers
PROXY_PORT = 80  # the proxies', on the contact address
MEMBERS = ("m1", "m2", "m3")
# the member's own HTTP server (the download service, no proxy): the small body, the large one
# on the next port
MEMBER_PORT = 81
WEB = IPv6Address("2001:db8:10::80")  # the direct server, on m1's network
SMALL = 10_000  # bytes: the seeds' "10kb" document
LARGE = 50_000_000
MATCH_WINDOW = 0.01  # s: a capture's segment further than this from its pair is not its pair


def topology(small: Path, large: Path) -> Topology:
    """The built-in ``dserver-proxy`` at zero latency, its proxies never handing a client on,
    the members' own servers beside them, and ``web``."""
    base = builtin("dserver-proxy")
    networks = {
        name: dataclasses.replace(network, uplink=Uplink())
        for name, network in base.networks.items()
    }
    own = AppConfig("download", MEMBER_PORT, path=str(small))
    own_large = AppConfig("download", MEMBER_PORT + 1, path=str(large))
    nodes = dict(base.nodes)
    for name in MEMBERS:
        proxies = tuple(dataclasses.replace(app, handoff_every=0) for app in nodes[name].apps)
        assert [app.server_port for app in proxies] == [SERVER_PORT]
        nodes[name] = dataclasses.replace(nodes[name], apps=(*proxies, own, own_large))
    nodes["web"] = NodeSpec(name="web", kind="kernel", role=None, network="site1", addresses=(WEB,))
    return dataclasses.replace(base, name="dserver-proxy-bench", networks=networks, nodes=nodes)


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) process ``pid`` has used, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Bench:
    def __init__(self, lab: NetnsLab, site: Path) -> None:
        self.lab = lab
        self.site = site  # what every server serves
        contact = builtin("dserver-proxy").nodes["m1"].home_address
        self.proxy = f"http://[{contact}]"
        self.member = f"http://[{contact}]:{MEMBER_PORT}"
        self.member_large = f"http://[{contact}]:{MEMBER_PORT + 1}"
        self.direct = f"http://[{WEB}]:{SERVER_PORT}"

    def curl(self, urls: list[str], size: int) -> list[tuple[float, float]]:
        """Each URL fetched in turn by one curl (one connection, kept alive): per transfer,
        (time_total seconds, speed_download bytes/s); every one checked."""
        argv = ["curl", "-sS", "-g", "--max-time", "300"]
        argv += ["-w", "%{http_code} %{size_download} %{time_total} %{speed_download}\\n"]
        for url in urls:
            argv += ["-o", "/dev/null", url]
        done = subprocess.run(
            self.lab.exec_argv("client", argv), capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            raise RuntimeError(f"curl failed ({done.returncode}): {done.stderr.strip()}")
        out = []
        for line in done.stdout.splitlines():
            code, got, total, speed = line.split()
            if code != "200" or int(got) != size:
                raise RuntimeError(f"a fetch answered {code} with {got} bytes (of {size})")
            out.append((float(total), float(speed)))
        return out

    def fetch_ms(self, base: str) -> float:
        ((total, _),) = self.curl([f"{base}/small"], SMALL)
        return total * 1000


def _servers(lab: NetnsLab, site: Path) -> list[subprocess.Popen[str]]:
    """The stock http.servers: one in each member's namespace on ::1, one on ``web``."""
    where = [(name, "::1", SERVER_PORT) for name in MEMBERS]
    where.append(("web", str(WEB), SERVER_PORT))
    servers = []
    for node, address, port in where:
        argv = [sys.executable, "-u", "-m", "http.server", "--protocol", "HTTP/1.1"]
        argv += ["--bind", address, "--directory", str(site), str(port)]
        servers.append(
            subprocess.Popen(
                lab.exec_argv(node, argv),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        )
    for server in servers:
        assert server.stdout is not None
        line = server.stdout.readline()
        if "Serving HTTP" not in line:
            raise RuntimeError(f"http.server did not start: {line!r}")
    return servers


@contextmanager
def proxy_lab(name: str, large: int = LARGE) -> Iterator[_Bench]:
    """The bench's lab up as ``name`` (see the module docstring), its stock servers serving a
    random ``SMALL``-byte file and a ``large``-byte one; taken down however it ends."""
    if os.geteuid() != 0:
        raise PermissionError("the proxy's lab needs root (the netns backend)")
    with tempfile.TemporaryDirectory(prefix="labnet-bench-proxy-") as tmp:
        site = Path(tmp)
        (site / "small").write_bytes(os.urandom(SMALL))
        (site / "large").write_bytes(os.urandom(large))
        lab = NetnsLab.up(
            topology(site / "small", site / "large"),
            name,
            role_options={"m1": {"distribute": False}},
        )
        servers: list[subprocess.Popen[str]] = []
        try:
            servers = _servers(lab, site)
            yield _Bench(lab, site)
        finally:
            for server in servers:
                server.terminate()
                server.wait(10)
            lab.down(discard=True)


def run(
    seconds: float = 4.0, *, fetches: int = 100, requests: int = 300, large: int = LARGE
) -> dict[str, Any]:
    """``seconds`` is not used: the figures come from counts (the lab's start dominates)."""
    with proxy_lab(f"bproxy{os.getpid() % 100000}", large) as bench:
        return _measure(bench, fetches, requests, large)


@dataclasses.dataclass(frozen=True, slots=True)
class _Segment:
    """A TCP segment with data in a capture: when (seconds since the epoch), its ports."""

    at: float
    source_port: int
    destination_port: int


def _data_segments(path: Path) -> list[_Segment]:
    """The TCP segments carrying data in a capture (tunnelled or not), in capture order."""
    found = []
    for frame in read_capture_file(path):
        extracted = extract_ipv6(frame.link_type, frame.data)
        if not isinstance(extracted, Ipv6Frame) or len(extracted.packet) < 40:
            continue
        packet, protocol, offset = innermost(extracted.packet)
        if protocol != protocols.TCP or len(packet) < offset + 20:
            continue
        payload = 40 + struct.unpack_from("!H", packet, 4)[0] - offset
        if payload > (packet[offset + 12] >> 4) * 4:
            source, destination = struct.unpack_from("!HH", packet, offset)
            found.append(_Segment(frame.timestamp_ns / 1e9, source, destination))
    return found


def _member_shares(
    link: list[_Segment], loopback: list[_Segment]
) -> tuple[list[float], list[float]]:
    """Per fresh proxied fetch (one client port each, one at a time): the request's arrival on
    m1's link to its forward on the loopback, and the server's last byte before the response's
    first segment on m1's link to that segment (seconds)."""
    requests: dict[int, float] = {}
    responses: dict[int, float] = {}
    for segment in link:
        if segment.destination_port == PROXY_PORT:
            requests.setdefault(segment.source_port, segment.at)
        elif segment.source_port == PROXY_PORT:
            responses.setdefault(segment.destination_port, segment.at)
    forwarded = sorted(s.at for s in loopback if s.destination_port == SERVER_PORT)
    answered = sorted(s.at for s in loopback if s.source_port == SERVER_PORT)
    inward, outward = [], []
    for port, arrived in requests.items():
        index = bisect.bisect_left(forwarded, arrived)
        if index < len(forwarded) and forwarded[index] - arrived < MATCH_WINDOW:
            inward.append(forwarded[index] - arrived)
        first = responses.get(port)
        index = bisect.bisect_left(answered, first) - 1 if first is not None else -1
        if first is not None and index >= 0 and first - answered[index] < MATCH_WINDOW:
            outward.append(first - answered[index])
    return inward, outward


@contextmanager
def _loopback_capture(lab: NetnsLab, node: str, path: Path) -> Iterator[None]:
    """dumpcap on ``node``'s loopback into ``path`` while the block runs."""
    dumpcap = subprocess.Popen(
        lab.exec_argv(node, ["dumpcap", "-q", "-i", "lo", "-w", str(path)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not (path.exists() and path.stat().st_size > 0):  # its headers: capturing
            if dumpcap.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dumpcap did not start on the loopback of " + node)
            time.sleep(0.05)
        time.sleep(1.0)  # its headers come before it captures (0.2 s lost fetches)
        yield
        time.sleep(0.3)  # what it read last, written
    finally:
        dumpcap.send_signal(signal.SIGINT)  # as ^C: it writes out what it holds, then exits
        dumpcap.wait(10)


def _measure(bench: _Bench, fetches: int, requests: int, large: int) -> dict[str, Any]:
    # the client's first connection to C takes the home agent's tunnel and route optimization
    for base in (bench.proxy, bench.member, bench.direct):
        bench.fetch_ms(base)
    times: dict[str, list[float]] = {bench.proxy: [], bench.member: [], bench.direct: []}
    order = list(times)
    with tempfile.TemporaryDirectory(prefix="labnet-bench-proxy-lo-") as tmp:
        loopback = Path(tmp) / "m1-lo.pcapng"
        with _loopback_capture(bench.lab, "m1", loopback):
            for _ in range(fetches):
                for base in order:
                    times[base].append(bench.fetch_ms(base))
                order.reverse()
        inward, outward = _member_shares(
            _data_segments(Path(bench.lab.pcap("m1"))), _data_segments(loopback)
        )
    if len(inward) < (fetches + 1) // 2 or len(outward) < (fetches + 1) // 2:
        raise RuntimeError(
            f"the captures matched {len(inward)} requests and {len(outward)} responses of "
            f"{fetches} proxied fetches"
        )
    proxied, member, direct = times[bench.proxy], times[bench.member], times[bench.direct]
    pid = bench.lab.state["nodes"]["m1"]["pid"]
    proxy_mbps: list[float] = []
    member_mbps: list[float] = []
    direct_mbps: list[float] = []
    cpu = member_cpu = 0.0
    for _ in range(3):
        before = cpu_seconds(pid)
        ((_, speed),) = bench.curl([f"{bench.proxy}/large"], large)
        cpu += cpu_seconds(pid) - before
        proxy_mbps.append(speed * 8 / 1e6)
        before = cpu_seconds(pid)
        ((_, speed),) = bench.curl([f"{bench.member_large}/large"], large)
        member_cpu += cpu_seconds(pid) - before
        member_mbps.append(speed * 8 / 1e6)
        ((_, speed),) = bench.curl([f"{bench.direct}/large"], large)
        direct_mbps.append(speed * 8 / 1e6)
    kept = bench.curl([f"{bench.proxy}/small"] * requests, SMALL)
    kept_direct = bench.curl([f"{bench.direct}/small"] * requests, SMALL)
    proxy_ms, direct_ms = statistics.median(proxied), statistics.median(direct)
    return {
        "proxy_fetch_ms": round(proxy_ms, 2),
        "direct_fetch_ms": round(direct_ms, 2),
        "proxy_added_fetch_ms": round(proxy_ms - direct_ms, 2),
        "member_fetch_ms": round(statistics.median(member), 2),
        "fetches": fetches,
        "proxy_mbps": round(statistics.median(proxy_mbps), 1),
        "direct_mbps": round(statistics.median(direct_mbps), 1),
        "member_mbps": round(statistics.median(member_mbps), 1),
        "large_bytes": large,
        "member_cpu_ns_per_byte": round(cpu * 1e9 / (3 * large), 2),
        "member_own_cpu_ns_per_byte": round(member_cpu * 1e9 / (3 * large), 2),
        "requests_per_s": round(requests / sum(total for total, _ in kept), 1),
        "direct_requests_per_s": round(requests / sum(total for total, _ in kept_direct), 1),
        "requests": requests,
        "member_request_ms": round(statistics.median(inward) * 1000, 3),
        "member_response_ms": round(statistics.median(outward) * 1000, 3),
        "member_shares_matched": min(len(inward), len(outward)),
        "seeds_proxy_fetch_ms": 23.41,
        "seeds_direct_fetch_ms": 20.23,
        "cpus": os.cpu_count(),
    }
