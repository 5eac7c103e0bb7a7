"""Handoffs of downloads on the netns testbed (:mod:`labnet.experiments.netns_testbed`), timed
from the hub's captures as the seeds timed theirs with tcpdump on the core router: the runs
behind ``handoff-phases``, ``buffer-sweep`` and ``rr-in-advance`` on the netns backend.

A stock ``curl`` in the client's namespace downloads from the contact address; the members'
download services (``mip6 run`` daemons) hand the client on as each experiment configures them
(:func:`split_apps`: the seeds' modified server, which writes its share, stops and hands on
after a wait, on one port per setting). Every download is checked whole (its SHA-256). Between
downloads the member holding the client's binding deletes it (the member's ``clear_binding``
command, the seeds' ``Close(true)``), so every download starts at the contact node as a new
client's does; the seeds restarted the client's MIPv6 daemon for that.

A download's packets are the hub's captures in its wall-clock window (the captures' stamps are
CLOCK_REALTIME): each packet as it crossed the hub (:func:`netns_testbed.crossings`), past its
sender's uplink (its shaping and latency), before its receiver's. Table 1's phases come from
them by :func:`labnet.experiments.split_download.phases`, the client-perceived gap (004 6.3)
from the data packets the hub sent on to the client.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path

from labnet.experiments import netns_testbed
from labnet.experiments.split_download import (
    ACCEPTOR,
    DONOR,
    Crossing,
    Handoff,
    client_data,
    phases,
    tcp_payload,
)
from labnet.experiments.testbed import CLIENT, CONTACT, NODES, Testbed, handoff_gaps
from labnet.netns import NetnsLab, control_request
from mip6.apps.http import generated_body
from mip6.runtime.config import AppConfig

CURL_TIMEOUT = 300.0  # seconds a download may take (1 MB at 1 Mbit/s: 8 s)
UNBIND_TIMEOUT = 10.0  # seconds for a client's binding to be deleted between downloads
UNBIND_ASK_EVERY = 0.5  # seconds between asks (a handoff still finishing may rebind it)

# a download through the kernel's TCP with a small receive buffer (curl cannot set one): the
# window limits how far ahead of the client a member writes, as rr-in-advance's simulator
# client does (its WINDOW)
_WINDOWED_CLIENT = """
import socket, sys
address, port, window, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, window)
sock.settimeout(60)
sock.connect((address, port))
sock.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
received = bytearray()
while chunk := sock.recv(65536):
    received += chunk
head, _, body = bytes(received).partition(b"\\r\\n\\r\\n")
if not head.startswith(b"HTTP/1.1 200"):
    sys.exit(f"answered {head[:40]!r}")
open(out, "wb").write(body)
"""


@dataclass(frozen=True, slots=True)
class Split:
    """One download service of the split download: on ``port``, ``size`` bytes generated
    from ``seed``, Node 1 writing ``share`` of them and handing on ``wait`` seconds after its
    last write returned, with full or regenerable state; Node 2 writes the rest."""

    port: int
    size: int
    share: int
    regenerable: bool
    wait: float = 0.0
    seed: int = 1


def split_apps(splits: list[Split]) -> dict[str, tuple[AppConfig, ...]]:
    """Each member's applications for ``splits``: Node 1 the seeds' modified server, Node 2
    the same bodies without handing on."""
    donor = tuple(
        AppConfig(
            "download",
            s.port,
            size=s.size,
            seed=s.seed,
            handoff_every=s.share,
            regenerable=s.regenerable,
            handoff_wait=s.wait,
        )
        for s in splits
    )
    acceptor = tuple(dataclasses.replace(app, handoff_every=0, handoff_wait=None) for app in donor)
    return {DONOR: donor, ACCEPTOR: acceptor}


@dataclass(frozen=True, slots=True)
class Window:
    """One download's wall-clock window (seconds since the epoch)."""

    start: float
    end: float


class DownloadLab:
    """The testbed on netns with download services, a client that downloads from them, and
    the captures read back per download."""

    def __init__(self, lab: NetnsLab, bodies: Mapping[int, tuple[int, int]], directory: Path):
        self.lab = lab
        self._bodies = bodies  # port -> (size, seed)
        self._digests: dict[int, str] = {}
        self._directory = directory
        self._crossings: list[Crossing] | None = None

    def shape(self, testbed: Testbed) -> None:
        """The latencies and shaping of ``testbed`` from now on."""
        netns_testbed.set_profiles(self.lab, testbed)

    def download(self, port: int, window: int | None = None) -> Window:
        """One download from the contact address's ``port`` in the client's namespace, by curl
        or, with ``window``, by a Python client whose socket's receive buffer is ``window``
        bytes; checked whole; then the client's binding deleted. RuntimeError when it is not
        whole."""
        size, seed = self._bodies[port]
        out = self._directory / f"download-{port}"
        if window is None:
            url = f"http://[{CONTACT}]:{port}/"
            timeout = str(int(CURL_TIMEOUT))
            argv = ["curl", "-sS", "-g", "--max-time", timeout, "-o", str(out), url]
        else:
            argv = [sys.executable, "-c", _WINDOWED_CLIENT, str(CONTACT), str(port)]
            argv += [str(window), str(out)]
        start = time.time()
        done = netns_testbed.run_argv(self.lab, argv, CURL_TIMEOUT + 10)
        end = time.time()
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()}")
        if port not in self._digests:
            self._digests[port] = hashlib.sha256(b"".join(generated_body(size, seed))).hexdigest()
        if hashlib.sha256(out.read_bytes()).hexdigest() != self._digests[port]:
            raise RuntimeError(f"download from port {port}: {out.stat().st_size} bytes, not whole")
        self._unbind()
        self._crossings = None
        return Window(start, end)

    def _unbind(self) -> None:
        """The client's binding for the contact address deleted by the member it names, and
        still gone a moment later (a handoff that was finishing as the download ended may
        bind it again: the member it names is asked again)."""
        client = self.lab.state["nodes"]["client"]["control"]
        deadline = time.monotonic() + UNBIND_TIMEOUT
        asked: dict[str, float] = {}
        unbound_since: float | None = None
        while True:
            rows = control_request(client, {"show": "bcache"})["rows"]
            holders = [
                member
                for row in rows
                if IPv6Address(row["home_address"]) == CONTACT
                for member, address in NODES.items()
                if IPv6Address(row["care_of_address"]) == address
            ]
            now = time.monotonic()
            if not holders:
                unbound_since = unbound_since or now
                if now - unbound_since >= UNBIND_ASK_EVERY:
                    return
            else:
                unbound_since = None
            for member in holders:
                if now - asked.get(member, -UNBIND_ASK_EVERY) >= UNBIND_ASK_EVERY:
                    control = self.lab.state["nodes"][member]["control"]
                    control_request(control, {"clear_binding": str(CLIENT)})
                    asked[member] = now
            if now > deadline:
                raise RuntimeError(f"the client's binding at {holders} was not deleted")
            time.sleep(0.05)

    def crossings(self, window: Window) -> list[Crossing]:
        """The packets that crossed the hub during ``window``."""
        if self._crossings is None:
            self._crossings = netns_testbed.crossings(self.lab)
        return [c for c in self._crossings if window.start <= c.time <= window.end]

    def gaps(self, window: Window) -> list[float]:
        """The client-perceived handoff times (seconds) from Node 1 to Node 2 in ``window``."""
        arrivals = [
            (c.time, c.sender)
            for c in self.crossings(window)
            if c.receiver == "client" and client_data(c.data)
        ]
        return handoff_gaps(arrivals, DONOR, ACCEPTOR)

    def handoff(self, window: Window) -> Handoff:
        """The one handoff of a split download: its gap, Table 1's phases, the state's bytes.
        RuntimeError unless there was exactly one."""
        crossings = self.crossings(window)
        gaps = self.gaps(window)
        if len(gaps) != 1:
            raise RuntimeError(f"split download: {len(gaps)} donor-to-acceptor gaps, not one")
        first_data = next(
            c
            for c in crossings
            if c.sender == DONOR and c.receiver == "client" and tcp_payload(c.data) > 0
        )
        times, state_bytes = phases(crossings, first_data.time)
        return Handoff(gaps[0], times, state_bytes)


@contextmanager
def download_lab(
    testbed: Testbed,
    name: str,
    apps: Mapping[str, tuple[AppConfig, ...]],
) -> Iterator[DownloadLab]:
    """The testbed up on netns as lab ``name``, its members' applications ``apps`` where given
    (the testbed's otherwise)."""
    every = [*testbed.apps, *(app for member in apps.values() for app in member)]
    bodies = {app.port: (app.size, app.seed) for app in every}
    with (
        tempfile.TemporaryDirectory(prefix="labnet-downloads-") as directory,
        netns_testbed.netns_lab(testbed, name, apps=apps) as lab,
    ):
        yield DownloadLab(lab, bodies, Path(directory))
