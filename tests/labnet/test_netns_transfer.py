"""A 50 MB kernel HTTP transfer on the built-in roaming topology, netns backend (root): a stock
``python -m http.server`` on the mobile node's home address (in its namespace) serves 50 MB of
random bytes; a stock ``curl`` in the correspondent's namespace downloads it, rate-limited so the
transfer spans two moves (visited1 -> visited2 -> visited1) of the mobile node; curl exits 0 (no
reset, no stall) and the file's sha256 is right."""

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

from labnet.cli import main
from labnet.netns import NetnsLab, control_request
from labnet.topology import builtin
from tests.conftest import require
from tests.labnet.netns_lab import netns_lab
from tests.runtime.netns import require_root

pytestmark = pytest.mark.netns

HOME = builtin("roaming").nodes["mn"].home_address
SIZE = 50 * 1024 * 1024
RATE = 3 * 1024 * 1024  # bytes/s (curl --limit-rate): about 17 s for the whole file
MOVES = ((4.0, "visited2"), (9.0, "visited1"))  # seconds into the transfer, network
PORT = 8080


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsLab]:
    require_root()
    require(shutil.which("curl") is not None, "needs curl (apt-get install curl)")
    require(shutil.which("ss") is not None, "needs ss (apt-get install iproute2)")
    with netns_lab(tmp_path_factory.mktemp("labnet"), "roaming", "x") as lab:
        yield lab


def wait_listening(lab: NetnsLab, node: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listening = subprocess.run(
            lab.exec_argv(node, ["ss", "-ltnH", f"sport = :{port}"]),
            capture_output=True,
            text=True,
        )
        if listening.stdout.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} in {node}'s namespace")


def test_50mb_curl_download_survives_two_moves(
    lab: NetnsLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lab.state["nodes"]["mn"]["network"] == "visited1"
    served = tmp_path / "served"
    served.mkdir()
    payload = os.urandom(SIZE)
    (served / "blob").write_bytes(payload)
    expected = hashlib.sha256(payload).hexdigest()
    del payload
    got = tmp_path / "got"
    serve = [sys.executable, "-m", "http.server", str(PORT), "--bind", str(HOME), "-d", str(served)]
    server = subprocess.Popen(
        lab.exec_argv("mn", serve), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    client: subprocess.Popen[str] | None = None
    try:
        wait_listening(lab, "mn", PORT)
        fetch = [
            "curl", "--silent", "--show-error", "--fail", "--globoff",
            "--limit-rate", str(RATE),
            "--max-time", "50",
            # no progress for 15 s counts as a stall (a dead connection), not a slow one
            "--speed-limit", "1", "--speed-time", "15",
            "--output", str(got),
            "--write-out", "%{http_code} %{size_download} %{speed_download}",
            f"http://[{HOME}]:{PORT}/blob",
        ]  # fmt: skip
        start = time.monotonic()
        client = subprocess.Popen(
            lab.exec_argv("cn", fetch), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        progress = []
        for at, network in MOVES:
            time.sleep(max(0.0, start + at - time.monotonic()))
            size = got.stat().st_size if got.exists() else 0
            assert client.poll() is None, f"curl ended before the move to {network}"
            assert 0 < size < SIZE, f"not mid-transfer at the move to {network}: {size} bytes"
            assert main(["move", "mn", network, "--name", lab.name]) == 0
            progress.append((network, round(time.monotonic() - start, 1), size))
        out, errors = client.communicate(timeout=55)
        elapsed = time.monotonic() - start
        assert client.returncode == 0, f"curl exited {client.returncode}: {errors}"
        assert out.split()[:2] == ["200", str(SIZE)], out
        assert got.stat().st_size == SIZE
        digest = hashlib.sha256()
        with open(got, "rb") as data:
            while chunk := data.read(1 << 20):
                digest.update(chunk)
        assert digest.hexdigest() == expected
        assert lab.registered("mn")
        # back on visited1, and the correspondent's binding points there (route optimization)
        bcache = control_request(lab.state["nodes"]["cn"]["control"], {"show": "bcache"})["rows"]
        assert [row["care_of_address"] for row in bcache] == ["2001:db8:3::5"], bcache
        with capsys.disabled():
            print(
                f"\nnetns 50 MB curl transfer across two moves: {elapsed:.1f} s, "
                f"{SIZE * 8 / elapsed / 1e6:.1f} Mbit/s; moves (network, s, bytes so far): "
                f"{progress}"
            )
    finally:
        for process in (client, server):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        shutil.rmtree(served, ignore_errors=True)  # 100 MB that pytest would keep otherwise
        got.unlink(missing_ok=True)
