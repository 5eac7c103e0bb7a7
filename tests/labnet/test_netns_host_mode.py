"""A host-mode mobile node in a netns lab (root): the roaming topology with the mobile node's
daemon in host mode serving HTTP from tcp_migrate on its home address (no kernel behind it);
a stock ``curl`` in the correspondent's namespace (a shim-mode daemon) downloads while the
mobile node moves twice (visited1 -> visited2 -> visited1). curl exits 0 (no reset, no
stall), the body's sha256 is right, and the mobile node's stack sent no RST."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from labnet.cli import main
from labnet.netns import NetnsLab, control_request
from labnet.topology import load
from mip6.apps.http import generated_body
from tests.conftest import require
from tests.labnet.netns_lab import netns_lab
from tests.runtime.netns import require_root

pytestmark = pytest.mark.netns

SIZE = 16 * 1024 * 1024
SEED = 3
RATE = 2 * 1024 * 1024  # bytes/s (curl --limit-rate): at least 8 s for the whole body
MOVES = ((2.5, "visited2"), (5.0, "visited1"))  # seconds into the transfer, network
HOME = "2001:db8:1::5"
TOPOLOGY = f"""name: roaming-host
networks:
  home:          {{prefix: "2001:db8:1::/64", latency: 10ms}}
  correspondent: {{prefix: "2001:db8:2::/64", latency: 5ms}}
  visited1:      {{prefix: "2001:db8:3::/64", latency: 15ms}}
  visited2:      {{prefix: "2001:db8:4::/64", latency: 25ms}}
nodes:
  ha: {{role: home_agent, network: home, address: "2001:db8:1::1"}}
  cn: {{role: correspondent, network: correspondent, address: "2001:db8:2::1"}}
  mn: {{role: mobile_node, mode: host, network: visited1, address: "2001:db8:3::5",
       home_address: "{HOME}", home_agent: "2001:db8:1::1",
       apps: [{{type: http, port: 80, size: {SIZE}, seed: {SEED}}}, {{type: echo}}]}}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsLab]:
    require_root()
    require(shutil.which("curl") is not None, "needs curl (apt-get install curl)")
    tmp_path = tmp_path_factory.mktemp("host-lab")
    topology = tmp_path / "roaming-host.yaml"
    topology.write_text(TOPOLOGY)
    with netns_lab(tmp_path / "labnet", topology, "h") as lab:
        yield lab


def test_topology_host_mode_node_gets_a_host_mode_config(lab: NetnsLab) -> None:
    spec = load(lab.state["topology"]).nodes["mn"]
    assert spec.mode == "host" and [a.type for a in spec.apps] == ["http", "echo"]
    config = Path(lab.state["nodes"]["mn"]["config"]).read_text()
    written = yaml.safe_load(config)
    assert written["mode"] == "host" and "kernel" not in written["links"]
    assert written["apps"][0] == {"type": "http", "port": 80, "size": SIZE, "seed": SEED}
    # nothing in the host-mode node's namespace: the daemon is the host
    links = subprocess.run(
        lab.exec_argv("mn", ["ip", "-o", "link"]), capture_output=True, text=True, check=True
    ).stdout
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"]
    ping = subprocess.run(
        lab.exec_argv("cn", ["ping", "-6", "-c", "1", "-W", "5", HOME]),
        capture_output=True,
        text=True,
    )
    assert ping.returncode == 0, ping.stdout  # answered by the mobile node's host


def test_curl_downloads_from_host_mode_mobile_node_across_two_moves(
    lab: NetnsLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = hashlib.sha256(b"".join(generated_body(SIZE, SEED))).hexdigest()
    got = tmp_path / "got"
    fetch = [
        "curl", "--silent", "--show-error", "--fail", "--globoff",
        "--limit-rate", str(RATE),
        "--max-time", "40",
        "--speed-limit", "1", "--speed-time", "15",
        "--output", str(got),
        "--write-out", "%{http_code} %{size_download}",
        f"http://[{HOME}]/blob",
    ]  # fmt: skip
    start = time.monotonic()
    client = subprocess.Popen(
        lab.exec_argv("cn", fetch), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        progress = []
        for at, network in MOVES:
            time.sleep(max(0.0, start + at - time.monotonic()))
            size = got.stat().st_size if got.exists() else 0
            assert client.poll() is None, f"curl ended before the move to {network}"
            assert 0 < size < SIZE, f"not mid-transfer at the move to {network}: {size} bytes"
            assert main(["move", "mn", network, "--name", lab.name]) == 0
            progress.append((network, round(time.monotonic() - start, 1), size))
        out, errors = client.communicate(timeout=45)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    elapsed = time.monotonic() - start
    assert client.returncode == 0, f"curl exited {client.returncode}: {errors}"
    assert out.split() == ["200", str(SIZE)]
    digest = hashlib.sha256()
    with open(got, "rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == expected
    assert lab.registered("mn")
    stats = control_request(lab.state["nodes"]["mn"]["control"], {"show": "stats"})["counters"]
    assert stats["host.tcp.rst_sent"] == 0
    with capsys.disabled():
        print(
            f"\nhost-mode MN, curl {SIZE >> 20} MB across two moves: {elapsed:.1f} s; "
            f"moves (network, s, bytes so far): {progress}"
        )
