"""The built-in roaming topology on the netns backend, for real (root): a stock ``ping -6`` in
the correspondent's namespace (a kernel behind a shim-mode daemon) reaches the mobile node's
home address while it is away: the first reply through the home agent's tunnel, later ones
route-optimized (the mobile node starts return routability when tunnelled traffic arrives);
round-trip times are the emulated latencies plus a small overhead; the node moves and pings
go on; a kernel HTTP transfer survives a move; every capture decodes in tshark."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labnet.cli import main
from labnet.netns import NetnsLab
from labnet.topology import builtin
from mip6.wire import icmpv6 as icmp
from mip6.wire.ipv6 import Ipv6Packet
from tests.conftest import require
from tests.labnet.netns_lab import netns_lab
from tests.runtime.netns import require_root

pytestmark = pytest.mark.netns

TOPOLOGY = builtin("roaming")
HOME = TOPOLOGY.nodes["mn"].home_address
OVERHEAD_MS = 25.0  # generous: two daemons and the hub, all Python, per round trip
_REPLY = re.compile(r"icmp_seq=(\d+) ttl=\d+ time=([\d.]+) ms")


def one_way_ms(a: str, b: str) -> float:
    """Between nodes on networks ``a`` and ``b``: both uplinks, as the hub links emulate."""
    net = TOPOLOGY.networks
    return (net[a].uplink.latency + net[b].uplink.latency) * 1000


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsLab]:
    require_root()
    require(shutil.which("ping") is not None, "needs ping (apt-get install iputils-ping)")
    with netns_lab(tmp_path_factory.mktemp("labnet"), "roaming", "t") as lab:
        yield lab


def ping(lab: NetnsLab, count: int) -> dict[int, float]:
    """``ping -6`` from the correspondent's namespace to the home address: seq -> RTT (ms)."""
    command = ["ping", "-6", "-n", "-c", str(count), "-i", "0.2", "-W", "2", str(HOME)]
    result = subprocess.run(
        lab.exec_argv("cn", command),
        capture_output=True,
        text=True,
        timeout=30,
    )
    return {int(seq): float(rtt) for seq, rtt in _REPLY.findall(result.stdout)}


def tshark_count(tshark: str, path: str, display_filter: str) -> int:
    result = subprocess.run(
        [tshark, "-n", "-r", path, "-Y", display_filter], capture_output=True, text=True, check=True
    )
    return len(result.stdout.splitlines())


def test_ping_via_home_agent_then_route_optimized_then_after_move(
    lab: NetnsLab, tshark: str, capsys: pytest.CaptureFixture[str]
) -> None:
    via_ha = 2 * (one_way_ms("correspondent", "home") + one_way_ms("home", "visited1"))
    optimized = 2 * one_way_ms("correspondent", "visited1")
    rtts = ping(lab, 8)
    assert sorted(rtts) == list(range(1, 9)), rtts
    first, last = rtts[1], [rtts[seq] for seq in (6, 7, 8)]
    assert via_ha <= first <= via_ha + OVERHEAD_MS, rtts
    assert all(optimized <= rtt <= optimized + OVERHEAD_MS for rtt in last), rtts
    bcache = lab_show(lab, "cn", "bcache")
    assert [row["care_of_address"] for row in bcache] == ["2001:db8:3::5"]

    assert main(["move", "mn", "visited2", "--name", lab.name]) == 0
    moved = 2 * one_way_ms("correspondent", "visited2")
    after = ping(lab, 8)
    # a request sent before the correspondent learns the new care-of address may be lost
    assert len(after) >= 6 and {6, 7, 8} <= set(after), after
    assert all(moved <= after[seq] <= moved + OVERHEAD_MS for seq in (6, 7, 8)), after
    assert [row["care_of_address"] for row in lab_show(lab, "cn", "bcache")] == ["2001:db8:4::5"]

    with capsys.disabled():
        print(
            f"\nnetns roaming RTT overheads over the emulated latencies: via the home agent "
            f"{first - via_ha:.2f} ms (of {via_ha:.0f}), route-optimized "
            f"{min(last) - optimized:.2f}-{max(last) - optimized:.2f} ms (of {optimized:.0f}), "
            f"after the move {min(after[s] for s in (6, 7, 8)) - moved:.2f} ms (of {moved:.0f})"
        )

    # the captures: the home agent's link carried the tunnel, the correspondent's the type 2
    # routing header, and tshark finds nothing malformed anywhere
    pcaps = {link: lab.pcap(link) for link in ("ha", "cn", "mn", "probe")}
    time.sleep(1.2)  # the hub flushes its captures every second
    assert tshark_count(tshark, pcaps["ha"], "ipv6.nxt == 41") >= 2
    assert tshark_count(tshark, pcaps["cn"], "ipv6.routing.type == 2 && icmpv6.type == 128") >= 6
    assert tshark_count(tshark, pcaps["mn"], "mip6.mhtype == 5") >= 1  # Binding Update
    for link, path in pcaps.items():
        assert Path(path).exists(), link
        assert tshark_count(tshark, path, "_ws.malformed") == 0, link


def lab_show(lab: NetnsLab, node: str, what: str) -> list[dict[str, object]]:
    from labnet.netns import control_request

    rows: list[dict[str, object]] = control_request(
        lab.state["nodes"][node]["control"], {"show": what}
    )["rows"]
    return rows


def test_cli_status_exec_pcap(lab: NetnsLab, capfd: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["status", "--json", "--name", lab.name]) == 0
    report = json.loads(capfd.readouterr().out)
    assert report["hub"]["running"]
    assert all(node["running"] for node in report["nodes"].values() if node["kind"] == "engine")
    host, port = report["nodes"]["probe"]["endpoint"]
    assert host == "127.0.0.1" and port > 0
    assert main(["exec", "cn", "--name", lab.name, "--", "true"]) == 0
    assert main(["exec", "cn", "--name", lab.name, "--", "false"]) == 1
    assert main(["exec", "probe", "--name", lab.name, "--", "true"]) == 1  # external: no netns
    assert main(["move", "cn", "home", "--name", lab.name]) == 1  # not a mobile node
    assert main(["pcap", "mn", "--name", lab.name]) == 0
    assert capfd.readouterr().out.strip().endswith("/pcap/mn.pcap")

    # the external node: raw IPv6 packets to and from its hub endpoint; the correspondent's
    # kernel answers an echo request from the probe's address
    probe_address, cn_address = (
        TOPOLOGY.nodes["probe"].addresses[0],
        TOPOLOGY.nodes["cn"].addresses[0],
    )
    request = Ipv6Packet(
        source=probe_address,
        destination=cn_address,
        payload=icmp.EchoRequest(identifier=0x6C62, sequence=1, data=b"labnet external probe"),
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2)
        sock.sendto(request.emit(), (host, port))
        reply = Ipv6Packet.parse(sock.recv(70000))
    assert (reply.source, reply.destination) == (cn_address, probe_address)
    assert isinstance(reply.payload, icmp.EchoReply) and reply.payload.data == request.payload.data


# A stock kernel TCP client in the correspondent's namespace, reading at about 2 MB/s so that
# the transfer spans the move (curl would do as well; this needs nothing more installed).
_CLIENT = """
import sys, time, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=30) as reply, open(sys.argv[2], "wb") as out:
    while chunk := reply.read(65536):
        out.write(chunk)
        time.sleep(0.03)
"""


def test_http_transfer_survives_a_move(lab: NetnsLab, tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    (tmp_path / "blob").write_bytes(payload)
    serve = [sys.executable, "-m", "http.server", "8080", "--bind", str(HOME), "-d", str(tmp_path)]
    server = subprocess.Popen(
        lab.exec_argv("mn", serve), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            listening = subprocess.run(
                lab.exec_argv("mn", ["ss", "-ltnH", "sport = :8080"]),
                capture_output=True,
                text=True,
            )
            if listening.stdout.strip():
                break
            time.sleep(0.05)
        url = f"http://[{HOME}]:8080/blob"
        fetch = [sys.executable, "-c", _CLIENT, url, str(tmp_path / "got")]
        client = subprocess.Popen(lab.exec_argv("cn", fetch), stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        partial = tmp_path / "got"
        assert client.poll() is None and partial.stat().st_size < len(payload)  # mid-transfer
        network = "visited1" if lab.state["nodes"]["mn"]["network"] != "visited1" else "visited2"
        assert main(["move", "mn", network, "--name", lab.name]) == 0
        _, errors = client.communicate(timeout=40)
        assert client.returncode == 0, errors
        got = (tmp_path / "got").read_bytes()
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()
    finally:
        server.terminate()
        server.wait(5)
