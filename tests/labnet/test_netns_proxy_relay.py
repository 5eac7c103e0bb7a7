"""The proxy's exchanges relayed in C (mip6/runtime/csrc/relay.c) on the netns backend (root):
``labnet bench proxy``'s lab (three members, each a proxy in front of a stock ``python -m
http.server`` on its own loopback, no member handing a client on by itself), where the
members' fast paths carry the exchanges. A stock ``curl`` fetches files over one keep-alive
connection while the test hands the client from member to member (``mip6 ctl handoff``) as
fast as the members take it, so that handoffs come in the middle of exchanges: each waits for
the relay to be between two of them. Every file's sha256 is right, curl connected once, the
members relayed the responses in C and completed handoffs between them, and no capture holds
a RST."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labnet.bench.proxy import MEMBERS, proxy_lab
from labnet.netns import control_request
from labnet.topology import builtin
from tests.capture_fields import tshark_fields
from tests.conftest import require
from tests.runtime.netns import require_root

pytestmark = pytest.mark.netns

TOPOLOGY = builtin("dserver-proxy")
CLIENT = TOPOLOGY.nodes["client"].addresses[0]
ADDRESS = {name: TOPOLOGY.nodes[name].addresses[0] for name in MEMBERS}  # each member's own
FILES = 60


@pytest.fixture(scope="module")
def bench() -> Iterator[object]:
    require_root()
    require(shutil.which("curl") is not None, "needs curl (apt-get install curl)")
    require(shutil.which("tshark") is not None, "needs tshark (apt-get install tshark)")
    with proxy_lab(f"prl{os.getpid() % 100000}", large=1000) as made:
        for index in range(FILES):
            size = 1 + (index * 7919) % 300_000  # within a segment, and many
            (made.site / f"f{index:02d}").write_bytes(os.urandom(size))
        yield made


def test_curl_through_relays_handed_off_between_exchanges(bench, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = bench.lab
    names = [f"f{index:02d}" for index in range(FILES)] * 2
    argv = ["curl", "-sS", "-g", "--max-time", "120", "-w", "%{http_code} %{num_connects}\\n"]
    for number, name in enumerate(names):
        argv += ["-o", str(tmp_path / f"{number}-{name}"), f"{bench.proxy}/{name}"]
    curl = subprocess.Popen(
        lab.exec_argv("client", argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    asked = accepted = 0
    turn = 0
    while curl.poll() is None:
        donor, target = MEMBERS[turn % 3], MEMBERS[(turn + 1) % 3]
        asked += 1
        answer = control_request(
            lab.state["nodes"][donor]["control"],
            {"handoff": [str(CLIENT), str(ADDRESS[target])]},
        )
        if "error" not in answer:
            accepted += 1
            turn += 1
        else:  # not served there (yet), or a handoff under way
            turn += int(asked % 7 == 0)  # another donor now and then
        time.sleep(0.02)
    out, err = curl.communicate(timeout=30)
    assert curl.returncode == 0, err
    written = [line.split() for line in out.splitlines()]
    assert [code for code, _ in written] == ["200"] * len(names)
    assert sum(int(connects) for _, connects in written) == 1  # one keep-alive connection
    for number, name in enumerate(names):
        got = hashlib.sha256((tmp_path / f"{number}-{name}").read_bytes()).hexdigest()
        assert got == hashlib.sha256((bench.site / name).read_bytes()).hexdigest(), name
    counters = {
        name: control_request(lab.state["nodes"][name]["control"], {"show": "stats"})["counters"]
        for name in MEMBERS
    }
    completed = sum(c.get("handoff_completed", 0) for c in counters.values())
    relayed = sum(c.get("fast.host.relay_responses", 0) for c in counters.values())
    waited = sum(c.get("handoff_waited_movable", 0) for c in counters.values())
    print(
        f"{len(names)} files, {accepted} of {asked} handoffs asked accepted, {completed} "
        f"completed, {waited} waited for an exchange's end; {relayed} responses relayed in C"
    )
    assert completed >= 5, counters
    # most responses went through the relays (a handed-in connection's first exchange may
    # start in Python before its relay does)
    assert relayed >= len(names) // 2, counters
    for name in lab.state["nodes"]:
        resets = tshark_fields(lab.pcap(name), "tcp.flags.reset == 1")
        assert resets == [], f"a RST in {name}'s capture: {resets[:20]}"
