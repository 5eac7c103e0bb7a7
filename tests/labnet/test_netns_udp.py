"""UDP services of the distributed server on the netns backend (root; issue 16 part 4): the
built-in ``dserver-udp`` topology, three member daemons serving the lookup service on the
contact address and handing each client on after 20 of its datagrams, and a client farm of 50
correspondent clients in one daemon asking 200 lookups each. Every request is answered or
retried until it is, no request is answered by two members (each answer names the member that
sent it), and what the members dropped as not theirs the clients sent again; ``mip6 show udp``
reads each member's per-service counters. Then a stock kernel UDP socket in the ``client``
namespace (behind its shim-mode correspondent daemon) asks 500 lookups the same way while a
stock curl beside it downloads 20 MB: one client, its connection and its flow moved together.
Everything the lab started is gone afterwards."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labnet.netns import NetnsLab, control_request
from labnet.topology import builtin
from mip6.apps.http import generated_body
from tests.conftest import require
from tests.labnet.netns_lab import netns_lab
from tests.runtime.netns import require_root

pytestmark = pytest.mark.netns

MEMBERS = ("m1", "m2", "m3")
CONTACT = builtin("dserver-udp").nodes["m1"].home_address
DEADLINE = 120.0  # seconds for all requests (the simulator needs 18 s of virtual time)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsLab]:
    require_root()
    # h16b: this lab's namespaces and processes are told apart from other labs on the box
    with netns_lab(tmp_path_factory.mktemp("labnet"), builtin("dserver-udp"), "h16b") as lab:
        yield lab


def show(lab: NetnsLab, node: str, what: str) -> dict[str, object]:
    reply: dict[str, object] = control_request(lab.state["nodes"][node]["control"], {"show": what})
    return reply


def test_ten_thousand_lookups_from_fifty_clients_moved_between_members(lab: NetnsLab) -> None:
    options = lab.topology.nodes["farm"].options
    total = options["clients"] * options["fetches"]
    assert total == 10_000
    started = time.monotonic()
    while True:
        counters = show(lab, "farm", "stats")["counters"]
        assert isinstance(counters, dict)
        ended = counters.get("requests_ok", 0) + counters.get("requests_failed", 0)
        if ended >= total or time.monotonic() - started > DEADLINE:
            break
        time.sleep(1.0)
    elapsed = time.monotonic() - started
    time.sleep(2.0)  # late answers and stragglers land
    counters = show(lab, "farm", "stats")["counters"]
    assert isinstance(counters, dict)
    assert counters.get("requests_ok", 0) == total, (elapsed, counters)
    assert "requests_failed" not in counters, counters
    assert counters["udp.answered"] == total
    # no request answered by two members, no answer wrong
    assert "udp.two_members" not in counters and "udp.wrong" not in counters, counters
    by = {k: v for k, v in counters.items() if k.startswith("udp.answered_by.")}
    assert len(by) == 3, by
    members = {name: show(lab, name, "stats")["counters"] for name in MEMBERS}
    completed = sum(c.get("handoff_completed", 0) for c in members.values())  # type: ignore[union-attr]
    assert completed >= total // 25, members
    rows = {name: show(lab, name, "udp")["rows"] for name in MEMBERS}
    lookup = {name: next(r for r in rows[name] if r["port"] == 53) for name in MEMBERS}  # type: ignore[union-attr]
    answers = sum(row["answers"] for row in lookup.values())
    requests = sum(row["requests"] for row in lookup.values())
    dropped_not_owned = sum(row["dropped_not_owned"] for row in lookup.values())
    dropped_in_handoff = sum(row["dropped_in_handoff"] for row in lookup.values())
    assert answers == requests - sum(row["malformed"] for row in lookup.values())
    assert answers >= total
    assert counters["udp.retried"] >= dropped_not_owned + dropped_in_handoff
    print(
        json.dumps(
            {
                "requests": total,
                "seconds": round(elapsed, 1),
                "handoffs": completed,
                "retried": counters["udp.retried"],
                "duplicate": counters.get("udp.duplicate", 0),
                "dropped_not_owned": dropped_not_owned,
                "dropped_in_handoff": dropped_in_handoff,
                "answered_by": by,
            }
        )
    )
    # the daemon's inspection path: mip6 show udp, as a person would type it
    control = lab.state["nodes"]["m1"]["control"]
    argv = [sys.executable, "-m", "mip6.cli", "show", "udp", "--control", control]
    text = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert "LookupService" in text and "dropped-not-owned" in text


# A kernel UDP socket asking lookups one after another, each sent again after 0.5 s without
# its answer; the bookkeeping is the farm's (mip6.apps.udp_requests). Prints its counters.
KERNEL_CLIENT = """
import json, random, socket, sys, time
from mip6.apps.udp_requests import Requester, Service
contact, count = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
requester = Requester(Service.LOOKUP, b"kernel", random.Random(1), timeout=0.5, retries=8)
for _ in range(count):
    request_id, datagram = requester.request(time.monotonic())
    sock.sendto(datagram, (contact, 53))
    deadline = time.monotonic() + requester.timeout
    while datagram is not None:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            data, _ = sock.recvfrom(2048)
        except socket.timeout:
            datagram = requester.expired(time.monotonic(), request_id)
            if datagram is not None:
                sock.sendto(datagram, (contact, 53))
                deadline = time.monotonic() + requester.timeout
            continue
        if requester.answer(time.monotonic(), data) == request_id:
            break
sock.settimeout(1.0)
try:  # late answers: duplicates, or (never) from a second member
    while True:
        requester.answer(time.monotonic(), sock.recvfrom(2048)[0])
except socket.timeout:
    pass
print(json.dumps(requester.counters))
"""


def test_kernel_client_downloading_and_asking_lookups_moves_as_one(
    lab: NetnsLab, tmp_path: Path
) -> None:
    """The kernel client's lookups and a stock curl's 20 MB download at once: its connection
    and its flow share one binding, so every handoff (the lookups' every 20 datagrams, the
    download's every 1 MB) moves both; the file is whole and every lookup answered once."""
    require(shutil.which("curl") is not None, "needs curl (apt-get install curl)")
    lookups = subprocess.Popen(
        lab.exec_argv("client", [sys.executable, "-c", KERNEL_CLIENT, str(CONTACT), "500"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)  # the lookups' flow first: the download joins a client being moved
    out = tmp_path / "body"
    url = f"http://[{CONTACT}]/"
    argv = ["curl", "-sS", "-g", "--max-time", "300", "-o", str(out), url]
    curl = subprocess.run(lab.exec_argv("client", argv), capture_output=True, timeout=400)
    stdout, stderr = lookups.communicate(timeout=600)
    assert curl.returncode == 0, curl.stderr
    size = next(a for a in lab.topology.nodes["m1"].apps if a.type == "download").size
    expected = hashlib.sha256(b"".join(generated_body(size, 1))).hexdigest()
    assert hashlib.sha256(out.read_bytes()).hexdigest() == expected
    assert lookups.returncode == 0, stderr
    counters = json.loads(stdout)
    print(json.dumps(counters))
    assert counters["answered"] == 500 and "failed" not in counters, counters
    assert "two_members" not in counters and "wrong" not in counters, counters
    by = {k: v for k, v in counters.items() if k.startswith("answered_by.")}
    assert len(by) == 3, by  # handed on every 20 datagrams: every member answered it


# A kernel UDP socket reading stream 7 (mip6.apps.udp_stream's StreamReader: in order, a GET
# each half window, again after 0.3 s without a byte). Prints its counters, offset and digest.
STREAM_CLIENT = """
import hashlib, json, socket, sys, time
from mip6.apps.udp_stream import StreamReader
contact, port = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
reader = StreamReader(7)
sock.sendto(reader.start(), (contact, port))
deadline = time.monotonic() + 240
while not reader.done and time.monotonic() < deadline:
    sock.settimeout(0.3)
    try:
        get = reader.received(sock.recvfrom(2048)[0])
    except socket.timeout:
        get = reader.expired()
    if get is not None:
        sock.sendto(get, (contact, port))
digest = hashlib.sha256(b"".join(reader.data)).hexdigest()
print(json.dumps({"offset": reader.offset, "sha256": digest, **reader.counters}))
"""


def test_kernel_client_reads_a_udp_stream_handed_on_across_members(lab: NetnsLab) -> None:
    """The stream's handoff carries its offsets: the acceptor goes on where the donor stopped
    sending, and the client reads the whole stream in order from the members it was handed to."""
    app = next(a for a in lab.topology.nodes["m1"].apps if a.type == "stream")
    done = subprocess.run(
        lab.exec_argv("client", [sys.executable, "-c", STREAM_CLIENT, str(CONTACT), str(app.port)]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    print(json.dumps(result))
    assert result["offset"] == app.size
    assert result["sha256"] == hashlib.sha256(b"".join(generated_body(app.size, 7))).hexdigest()
    sent_by = {k: v for k, v in result.items() if k.startswith("from.")}
    # the group's policy picks the acceptor at random: four handoffs or more, between two
    # members or among all three
    assert len(sent_by) >= 2, result
    resumed = sum(
        row.get("resumed", 0)
        for name in MEMBERS
        for row in show(lab, name, "udp")["rows"]  # type: ignore[union-attr]
        if row["port"] == app.port
    )
    # a GET every 8 kB, handed on every 100 GETs: 4 MB crosses four handoffs (one less
    # allowed for the GETs a freeze drops, counted again at the acceptor)
    assert resumed >= 3, resumed
