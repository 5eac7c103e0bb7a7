"""The proxy for unmodified servers on the netns backend (root), issue #16's first must-show:
the built-in ``dserver-proxy`` topology (each member running a proxy, ``type: proxy``) with an
unmodified ``python -m http.server`` (kernel TCP, HTTP/1.1) in each member's namespace behind
it, serving the same directory; a stock ``curl`` in the client's namespace (behind its shim-mode
correspondent daemon) fetches 200 files over one keep-alive connection, handed to another
member after every second request. curl exits 0 having connected once, every file's sha256
is right, the members completed at least 50 handoffs (their own TCP carried in C between
them), and no link's capture (tshark) holds a RST."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labnet.bench.proxy import cpu_seconds
from labnet.netns import NetnsLab, control_request
from labnet.topology import builtin
from tests.capture_fields import tshark_fields
from tests.conftest import require
from tests.labnet.netns_lab import netns_lab
from tests.runtime.netns import require_root

pytestmark = pytest.mark.netns

TOPOLOGY = builtin("dserver-proxy")
CONTACT = TOPOLOGY.nodes["m1"].home_address
MEMBERS = ("m1", "m2", "m3")
SERVER_PORT = 8000
FILES = 200


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    for index in range(FILES):
        # 1 byte to about 200 kB: bodies within one segment, and bodies of many
        (root / f"f{index:03d}").write_bytes(os.urandom(1 + (index * 7919) % 200_000))
    return root


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, site: Path) -> Iterator[NetnsLab]:
    require_root()
    require(shutil.which("curl") is not None, "needs curl (apt-get install curl)")
    require(shutil.which("tshark") is not None, "needs tshark (apt-get install tshark)")
    assert {app.handoff_every for name in MEMBERS for app in TOPOLOGY.nodes[name].apps} == {2}
    state = tmp_path_factory.mktemp("labnet")
    with netns_lab(state, "dserver-proxy", "px") as lab:
        servers = [
            subprocess.Popen(
                lab.exec_argv(
                    name,
                    [
                        sys.executable,
                        "-u",
                        "-m",
                        "http.server",
                        "--protocol",
                        "HTTP/1.1",
                        "--bind",
                        "::1",
                        "--directory",
                        str(site),
                        str(SERVER_PORT),
                    ],
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for name in MEMBERS
        ]
        try:
            for server in servers:
                assert server.stdout is not None
                # printed once the socket listens
                assert "Serving HTTP" in server.stdout.readline()
            yield lab
        finally:
            for server in servers:
                server.terminate()
                server.wait(10)


def test_curl_200_files_over_one_connection_handed_off_between_requests(
    lab: NetnsLab, site: Path, tmp_path: Path
) -> None:
    names = sorted(path.name for path in site.iterdir())
    argv = ["curl", "-sS", "-g", "--max-time", "120", "-w", "%{http_code} %{num_connects}\\n"]
    for name in names:
        argv += ["-o", str(tmp_path / name), f"http://[{CONTACT}]/{name}"]
    started = time.monotonic()
    done = subprocess.run(
        lab.exec_argv("client", argv), capture_output=True, text=True, timeout=150
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    written = [line.split() for line in done.stdout.splitlines()]
    assert [code for code, _ in written] == ["200"] * FILES
    assert sum(int(connects) for _, connects in written) == 1  # one keep-alive connection
    for name in names:
        got = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        assert got == hashlib.sha256((site / name).read_bytes()).hexdigest(), name
    counters = {
        name: control_request(lab.state["nodes"][name]["control"], {"show": "stats"})["counters"]
        for name in MEMBERS
    }
    completed = sum(c.get("handoff_completed", 0) for c in counters.values())
    held = sum(c.get("handoff_waited_movable", 0) for c in counters.values())
    given_up = sum(c.get("handoff_not_movable", 0) for c in counters.values())
    print(
        f"{FILES} files in {took:.1f} s over one connection, {completed} handoffs, "
        f"held for an exchange's end: {held}, given up: {given_up}"
    )
    assert completed >= 50, counters
    assert all(c.get("handoff_accepted", 0) >= 10 for c in counters.values()), counters
    # between handoffs each member's own TCP took the client's segments in C (its fast path)
    assert all(c.get("fast.host.segments", 0) > 0 for c in counters.values()), counters
    for name in lab.state["nodes"]:
        resets = tshark_fields(lab.pcap(name), "tcp.flags.reset == 1")
        assert resets == [], f"a RST in {name}'s capture: {resets[:20]}"


GIGABYTE = 1 << 30


@pytest.mark.skipif(not os.environ.get("MIP6_PROXY_GB"), reason="a minute or more: MIP6_PROXY_GB=1")
def test_one_gigabyte_body_between_handoffs(lab: NetnsLab, site: Path, tmp_path: Path) -> None:
    """Issue #16's second must-show: a 1 GB body through the proxy on the same keep-alive
    connection as small files, the client handed on between requests (never during the
    body); the body's sha256 right; the members' CPU per byte printed."""
    digest = hashlib.sha256()
    with open(site / "gigabyte", "wb") as out:
        for _ in range(GIGABYTE >> 24):
            chunk = os.urandom(1 << 24)
            digest.update(chunk)
            out.write(chunk)
    names = ["f000", "f001", "gigabyte", "f002", "f003"]
    argv = ["curl", "-sS", "-g", "--max-time", "900", "-w", "%{http_code} %{num_connects}\\n"]
    for name in names:
        argv += ["-o", str(tmp_path / name), f"http://[{CONTACT}]/{name}"]
    pids = {name: lab.state["nodes"][name]["pid"] for name in MEMBERS}

    def handoffs() -> int:
        return sum(
            control_request(lab.state["nodes"][name]["control"], {"show": "stats"})["counters"].get(
                "handoff_completed", 0
            )
            for name in MEMBERS
        )

    before, cpu = handoffs(), {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    done = subprocess.run(
        lab.exec_argv("client", argv), capture_output=True, text=True, timeout=1000
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    used = sum(cpu_seconds(pid) - cpu[name] for name, pid in pids.items())
    assert [line.split() for line in done.stdout.splitlines()] == [["200", "1"]] + [
        ["200", "0"]
    ] * (len(names) - 1)
    assert hashlib.sha256((tmp_path / "gigabyte").read_bytes()).hexdigest() == digest.hexdigest()
    for name in names[:2] + names[3:]:
        assert (tmp_path / name).read_bytes() == (site / name).read_bytes()
    moved = handoffs() - before
    print(
        f"1 GiB and 4 files in {took:.1f} s ({GIGABYTE * 8 / took / 1e6:.0f} Mbit/s), "
        f"{moved} handoffs between requests, members' CPU {used:.1f} s: "
        f"{used * 1e9 / GIGABYTE:.1f} ns per byte"
    )
    assert moved >= 2
    (site / "gigabyte").unlink()
