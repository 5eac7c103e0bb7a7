"""The distributed server on the netns backend (root), the built-in ``dserver`` topology with 1%
loss on every network: a stock ``curl`` in the client's namespace (behind its shim-mode
correspondent daemon) downloads 50 MB twice at once from the contact address (regenerable and
full snapshots) while the members' download services hand the client on every 1.5 MB, across
the three members. curl exits 0, the sha256
is right, and the captures (read by tshark) show every hop and no RST anywhere."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from labnet.netns import NetnsLab, control_request, uplink_profile
from labnet.topology import Topology, builtin, dump
from mip6.apps.http import generated_body
from mip6.runtime.config import AppConfig
from tests.capture_fields import tshark_fields
from tests.conftest import require
from tests.labnet.netns_lab import netns_lab
from tests.runtime.netns import require_root

pytestmark = pytest.mark.netns

BASE = builtin("dserver")
CONTACT = BASE.nodes["m1"].home_address
MEMBERS = {name: BASE.nodes[name].addresses[0] for name in ("m1", "m2", "m3")}
SIZE = 50_000_000  # the built-in download: seed 1, regenerable
FULL_PORT = 81  # the same size, seed 2, handed off with full snapshots
EVERY = 1_500_000
LOSS = 0.01
# The clients' network 5 ms from the core rather than the built-in 20: at 1% loss on both
# uplinks a connection's rate is bound by its round trip (Mathis: about MSS / (RTT * sqrt(p))),
# and at the built-in 50 ms round trip the two downloads took five minutes of CI.
CLIENTS_LATENCY = 0.005


def lossy() -> Topology:
    """The built-in topology with LOSS on every network's uplink (a path crosses two), the
    clients' network CLIENTS_LATENCY from the core, and the download handed on every 1.5 MB
    (each member's handoff echo is kept)."""
    networks = {
        name: dataclasses.replace(
            network,
            uplink=dataclasses.replace(
                network.uplink,
                loss=LOSS,
                latency=CLIENTS_LATENCY if name == "clients" else network.uplink.latency,
            ),
        )
        for name, network in BASE.networks.items()
    }
    nodes = dict(BASE.nodes)
    full = AppConfig(
        "download", FULL_PORT, size=SIZE, seed=2, handoff_every=EVERY, regenerable=False
    )
    for name in MEMBERS:
        apps = tuple(
            dataclasses.replace(app, handoff_every=EVERY) if app.type == "download" else app
            for app in nodes[name].apps
        )
        nodes[name] = dataclasses.replace(nodes[name], apps=(*apps, full))
    return dataclasses.replace(BASE, networks=networks, nodes=nodes)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsLab]:
    require_root()
    require(shutil.which("curl") is not None, "needs curl (apt-get install curl)")
    require(shutil.which("tshark") is not None, "needs tshark (apt-get install tshark)")
    state = tmp_path_factory.mktemp("labnet")
    topology = state / "dserver-lossy.yaml"
    topology.write_text(dump(lossy()))
    with netns_lab(state, topology, "d") as lab:
        yield lab


def stats(lab: NetnsLab, node: str) -> dict[str, int]:
    control = lab.state["nodes"][node]["control"]
    return control_request(control, {"show": "stats"})["counters"]


def test_curl_50mb_handed_off_twenty_times_with_loss(lab: NetnsLab, tmp_path: Path) -> None:
    """Two downloads at once from the one client, regenerable (port 80) and full snapshots
    (port 81): every handoff moves both connections in one INIT (DSERVER 4 rule 1)."""
    curls = {}
    for port in (80, FULL_PORT):
        out = tmp_path / f"download-{port}"
        url = f"http://[{CONTACT}]:{port}/"
        argv = ["curl", "-sS", "-g", "--max-time", "900", "-o", str(out), url]
        curl = subprocess.Popen(lab.exec_argv("client", argv), stderr=subprocess.PIPE)
        curls[port] = (out, curl)
    for port, seed in ((80, 1), (FULL_PORT, 2)):
        out, curl = curls[port]
        _, stderr = curl.communicate(timeout=1000)
        assert curl.returncode == 0, (port, stderr)
        expected = hashlib.sha256(b"".join(generated_body(SIZE, seed))).hexdigest()
        assert hashlib.sha256(out.read_bytes()).hexdigest() == expected, port
    counters = {name: stats(lab, name) for name in MEMBERS}
    completed = sum(c.get("handoff_completed", 0) for c in counters.values())
    assert completed >= 20, counters
    assert all(c.get("handoff_accepted", 0) >= 1 for c in counters.values()), counters
    pcaps = {name: lab.pcap(name) for name in lab.state["nodes"]}
    for name, pcap in pcaps.items():
        assert tshark_fields(pcap, "tcp.flags.reset == 1") == [], f"a RST in {name}'s capture"
    contact_node = str(MEMBERS["m1"])
    for name in ("m2", "m3"):
        own = str(MEMBERS[name])
        # its HoTIs go tunnelled to the contact node, from C inside
        hotis = tshark_fields(pcaps[name], "mip6.mhtype == 1", "ipv6.src", "ipv6.dst")
        assert any(
            src.split(",") == [own, str(CONTACT)] and dst.split(",")[0] == contact_node
            for src, dst in hotis
        ), hotis[:3]
        # the HoT comes back to it through the contact node
        hots = tshark_fields(pcaps[name], "mip6.mhtype == 3", "ipv6.src")
        assert any(src.split(",")[0] == contact_node for (src,) in hots), hots[:3]
    for name, address in MEMBERS.items():
        # each member bound the client from its own address, C in the Home Address option
        updates = tshark_fields(
            pcaps[name], "mip6.mhtype == 5", "ipv6.src", "ipv6.opt.mipv6.home_address"
        )
        assert any(src == str(address) and hao == str(CONTACT) for src, hao in updates), name
        # and sent the client data from it, the same way
        data = tshark_fields(
            pcaps[name],
            "tcp.srcport == 80 && tcp.len > 1000",
            "ipv6.src",
            "ipv6.opt.mipv6.home_address",
        )
        assert any(src == str(address) and hao == str(CONTACT) for src, hao in data), name
    # the contact node relayed for the others (the home agent saw only its care-of address)
    assert counters["m1"]["relay.relayed_hot"] >= 2
    rows = control_request(lab.state["nodes"]["ha"]["control"], {"show": "bcache"})["rows"]
    assert [IPv6Address(r["care_of_address"]) for r in rows] == [MEMBERS["m1"]]


ECHO_CLIENT = r"""
import socket, sys
rounds = int(sys.argv[2])
sock = socket.create_connection((sys.argv[1], 7), timeout=30)
lines = sock.makefile("rb")
holder, failed = None, 0
for i in range(rounds):
    sock.sendall(b"line %d\nH\n" % i)
    if lines.readline() != b"line %d\n" % i:
        sys.exit(f"round {i}: echo lost")
    while True:
        answer = lines.readline().split()
        if answer[:2] == [b"handoff", b"failed,"] and answer[-1] == holder and failed < 10:
            failed += 1  # reported, the client still where it was: ask again
            sock.sendall(b"H\n")
            continue
        break
    if answer[:1] != [b"member"] or answer[1] == holder:
        sys.exit(f"round {i}: {answer!r} after {holder!r}")
    holder = answer[1]
sock.sendall(b"Q\n")
if lines.readline() != b"bye\n" or lines.readline() != b"":
    sys.exit("no clean bye")
print(rounds, failed)
"""


def test_handoff_echo_from_a_stock_kernel_client(lab: NetnsLab) -> None:
    """Each 'H' is answered by another member; 200 in a row lose nothing (every line echoed
    once, in order), and 'Q' ends with a FIN. On the built-in topology's links, without the
    loss of the download test: under 2% loss per path a handoff's return routability fails
    at both other members now and then (measured: up to one 'H' in fifteen), which the member
    reports ("handoff failed, still ...") and the client could ask again; here none may."""
    for name, node in BASE.nodes.items():
        uplink = BASE.networks[node.network].uplink
        lab.hub_query(f"profile {name} {json.dumps(uplink_profile(uplink))}")
    done = subprocess.run(
        lab.exec_argv("client", [sys.executable, "-c", ECHO_CLIENT, str(CONTACT), "200"]),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    rounds, failed = map(int, done.stdout.split())
    assert rounds == 200 and failed == 0
