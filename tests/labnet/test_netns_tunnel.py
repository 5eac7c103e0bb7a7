"""A client with no Mobile IPv6 at all on the netns backend (root, issue 16 part 3): the built-in
``dserver-plain`` topology, ``dserver`` with its client a plain kernel namespace (``kind:
kernel``: no shim daemon, a stock Linux kernel that answers the contact node's HoTI and CoTI
with an ICMPv6 Parameter Problem). A stock ``curl`` there downloads 50 MB from the contact
address while the members' download services hand it on every 2 MB: the contact node tunnels
its packets to the member serving it (DSERVER 3, :mod:`mip6.dserver.tunnel`). curl exits 0,
the sha256 is right, the handoffs are real (every member served it), the client was never sent
a Binding Update, and no capture holds a RST."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labnet.netns import NetnsLab, control_request
from labnet.topology import builtin
from mip6.apps.http import generated_body
from tests.capture_fields import tshark_fields
from tests.conftest import require
from tests.labnet.netns_lab import netns_lab
from tests.runtime.netns import require_root

pytestmark = pytest.mark.netns

TOPOLOGY = builtin("dserver-plain")
CONTACT = TOPOLOGY.nodes["m1"].home_address
CLIENT = TOPOLOGY.nodes["client"].addresses[0]
MEMBERS = {name: TOPOLOGY.nodes[name].addresses[0] for name in ("m1", "m2", "m3")}
SIZE = 50_000_000  # the built-in download: seed 1, handed on every 2 MB


def test_the_topology_is_dserver_with_a_plain_kernel_client() -> None:
    base = builtin("dserver")
    assert TOPOLOGY.nodes["client"].kind == "kernel" and TOPOLOGY.nodes["client"].role is None
    assert TOPOLOGY.networks == base.networks
    assert {n: s for n, s in TOPOLOGY.nodes.items() if n != "client"} == {
        n: dataclasses.replace(s, line=TOPOLOGY.nodes[n].line)
        for n, s in base.nodes.items()
        if n != "client"
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsLab]:
    require_root()
    require(shutil.which("curl") is not None, "needs curl (apt-get install curl)")
    require(shutil.which("tshark") is not None, "needs tshark (apt-get install tshark)")
    state = tmp_path_factory.mktemp("labnet")
    with netns_lab(state, "dserver-plain", "h16a") as lab:
        yield lab


def show(lab: NetnsLab, node: str, what: str) -> dict:
    return control_request(lab.state["nodes"][node]["control"], {"show": what})


def test_stock_curl_without_mipv6_downloads_50mb_handed_off_ten_times(
    lab: NetnsLab, tmp_path: Path
) -> None:
    assert lab.state["nodes"]["client"]["kind"] == "kernel"  # no daemon in front of it
    out = tmp_path / "download"
    url = f"http://[{CONTACT}]:80/"
    argv = ["curl", "-sS", "-g", "--max-time", "900", "-o", str(out), url]
    curl = subprocess.Popen(lab.exec_argv("client", argv), stderr=subprocess.PIPE)
    # while it runs, the member serving it says how it reaches the client
    rows: list[dict] = []
    deadline = time.monotonic() + 60
    while not rows and curl.poll() is None and time.monotonic() < deadline:
        for name in MEMBERS:
            rows += [r for r in show(lab, name, "clients")["rows"] if r["client"] == str(CLIENT)]
        time.sleep(0.2)
    _, stderr = curl.communicate(timeout=1000)
    assert curl.returncode == 0, stderr
    expected = hashlib.sha256(b"".join(generated_body(SIZE, 1))).hexdigest()
    assert hashlib.sha256(out.read_bytes()).hexdigest() == expected
    assert rows and all(r["mipv6"] is False and r["via"] == "tunnel" for r in rows), rows
    counters = {name: show(lab, name, "stats")["counters"] for name in MEMBERS}
    assert counters["m1"]["client_without_mipv6"] == 1, counters["m1"]
    completed = sum(c.get("handoff_completed", 0) for c in counters.values())
    assert completed >= 10, counters
    assert all(c.get("handoff_accepted", 0) >= 1 for c in counters.values()), counters
    assert counters["m1"]["tunnel.forwarded"] > 1000  # the client's packets, on to m2 and m3
    pcaps = {name: lab.pcap(name) for name in lab.state["nodes"]}
    for name, pcap in pcaps.items():
        assert tshark_fields(pcap, "tcp.flags.reset == 1") == [], f"a RST in {name}'s capture"
    # what reached the client of the Mobility Header: the contact node's first HoTI and CoTI
    # (and retransmissions before the kernel's refusal came back), never a Binding Update
    reached = tshark_fields(pcaps["client"], "mip6.mhtype", "mip6.mhtype")
    assert {kind for (kind,) in reached} <= {"1", "2"}, reached
    assert len(reached) <= 4, reached
    refusals = tshark_fields(pcaps["client"], "icmpv6.type == 4 && icmpv6.code == 1")
    assert refusals, "the kernel refused no Mobility Header"
