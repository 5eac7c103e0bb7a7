"""``--target lab``: our roles run for real in a labnet ``netns`` lab, the tester on its hub.

Each case gets a fresh lab (:class:`labnet.netns.NetnsLab`) built from the same topology as the
``sim`` target (:func:`conformance.transport.topology_for`): the IUT is a ``mip6 run`` daemon in
its own network namespace (a correspondent or mobile node in shim mode, a home agent in router
mode), on a UDP link to the lab's hub with its network's emulated latency; the tester is the
topology's ``external`` node. :class:`LabTransport` speaks the hub's link protocol (one raw IPv6
packet per UDP datagram) from a socket whose address the hub is given at start, so what the IUT
sends from its first moment (a mobile node's home registration) reaches the tester. The tester's
link is *pinned* to the IUT's (every packet from it crosses to the IUT's link whatever its
destination, as a tester cabled to the IUT's port): a packet for a mobile node's home address
reaches the home agent under test, and what that home agent forwards onto its home link comes
back to the tester through the hub's routes. Arrival times are the kernel's receive timestamps
(SO_TIMESTAMPNS) on the monotonic clock, so retransmission timing is measured at the socket, not
when the tester got round to reading.

Time is the wall clock. Cases run several at a time (``jobs``), each in its own lab: a case
spends most of its time waiting for answers or for silence. Five correspondent cases need nonces
older than MAX_NONCE_LIFETIME (240 s in RFC 3775 section 12); the lab's correspondent runs with
:data:`LAB_MAX_NONCE_LIFETIME` instead (the constant is the implementation's to configure, the
rule it checks is the same), and the tester waits that long plus a nonce interval. The report's
notes say so.

The home agent runs without ESP (``allow_unprotected_registration``), as in the ``sim`` target.
"""

from __future__ import annotations

import itertools
import os
import select
import shutil
import socket
import threading
import time
from ipaddress import IPv6Address
from typing import Any, Final

from conformance.arrival import ANCILLARY_SIZE, arrival
from conformance.arrival import enable as enable_timestamps
from conformance.iut import DaemonControl, IutControl, network_for_move
from conformance.runner import Target
from conformance.transport import ADDRESSES, Addresses, Transport, topology_for
from labnet.netns import NetnsLab
from labnet.topology import Topology

LAB_MAX_NONCE_LIFETIME: Final = 6.0  # seconds (RFC 3775 section 12: 240)
LAB_NONCE_INTERVAL: Final = 1.0  # seconds between the correspondent's new nonces
STALE_WAIT: Final = LAB_MAX_NONCE_LIFETIME + 2 * LAB_NONCE_INTERVAL + 1.0
DEFAULT_JOBS: Final = 8
LOCALHOST: Final = "127.0.0.1"
_names = itertools.count()
_names_lock = threading.Lock()


def lab_name(role: str) -> str:
    """A lab name unique in this machine's labnet state (process id and a counter)."""
    with _names_lock:
        number = next(_names)
    return f"cf{role}-{os.getpid()}-{number}"


def role_options(role: str) -> dict[str, Any]:
    if role == "cn":
        return {
            "nonce_interval": LAB_NONCE_INTERVAL,
            "constants": {"max_nonce_lifetime": LAB_MAX_NONCE_LIFETIME},
        }
    return {}


class LabTransport(Transport):
    """The tester's end of a lab's ``external`` node link (see the module description)."""

    def __init__(
        self, role: str, *, plan: Addresses = ADDRESSES, iut_config: dict[str, Any] | None = None
    ) -> None:
        self.role = role
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.lab: NetnsLab | None = None
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            enable_timestamps(self.socket)
            self.socket.bind((LOCALHOST, 0))
            self.socket.setblocking(False)
            topology: Topology = topology_for(role, plan)
            self.lab = NetnsLab.up(
                topology,
                lab_name(role),
                wait=False,
                endpoints={"tester": self.socket.getsockname()},
                role_options={"iut": role_options(role) | (iut_config or {})},
                pinned={"tester": "iut"},
            )
            host, port = self.lab.state["hub"]["links"]["tester"]["address"]
            self.hub: tuple[str, int] = (host, port)
        except BaseException:
            self.close()
            raise

    @property
    def control_socket(self) -> str:
        assert self.lab is not None
        path: str = self.lab.state["nodes"]["iut"]["control"]
        return path

    def send(self, data: bytes) -> None:
        self.socket.sendto(data, self.hub)

    def receive(self, timeout: float) -> list[tuple[float, bytes]]:
        got: list[tuple[float, bytes]] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable, _, _ = select.select([self.socket], [], [], left)
            if readable:
                self._drain(got)
        self._drain(got)  # what arrived by the deadline
        return got

    def _drain(self, into: list[tuple[float, bytes]]) -> None:
        while True:
            try:
                data, ancillary, _, _ = self.socket.recvmsg(65535, ANCILLARY_SIZE)
            except BlockingIOError:
                return
            into.append((arrival(ancillary), data))

    def now(self) -> float:
        return time.monotonic()

    def close(self) -> None:
        if self.lab is not None:
            self.lab.down()
            # a lab per case: its logs and captures would pile up in labnet's state directory
            shutil.rmtree(self.lab.directory, ignore_errors=True)
            self.lab = None
        self.socket.close()


class LabControl(DaemonControl):
    """The IUT's daemon through its control socket; a move also moves the lab's routes and
    link emulation (:meth:`labnet.netns.NetnsLab.move`), as the ``sim`` target does."""

    def __init__(self, transport: LabTransport) -> None:
        super().__init__(transport.control_socket)
        self.transport = transport

    def move(self, care_of_address: IPv6Address | None) -> None:
        lab = self.transport.lab
        assert lab is not None
        lab.move("iut", network_for_move(lab.topology, care_of_address))


class LabTarget(Target):
    """Our own roles as ``mip6 run`` daemons in a labnet netns lab, one fresh lab per case."""

    name = "lab"
    jobs = DEFAULT_JOBS
    stale_wait = STALE_WAIT

    def open(
        self, role: str, iut_config: dict[str, Any] | None = None
    ) -> tuple[Transport, IutControl]:
        transport = LabTransport(role, plan=self.plan, iut_config=iut_config)
        return transport, LabControl(transport)

    def notes(self, role: str) -> list[str]:
        notes = [
            "IUT: this project's `mip6 run` daemon in a labnet netns lab (its own network "
            "namespace, a UDP link to the lab's hub with the network's emulated latency); the "
            "tester on the hub's link of an external node, pinned to the IUT's link; wall-clock "
            "time; one fresh lab per case."
        ]
        if role == "cn":
            notes.append(
                f"The correspondent runs with MAX_NONCE_LIFETIME = {LAB_MAX_NONCE_LIFETIME:g} s "
                f"and a new nonce every {LAB_NONCE_INTERVAL:g} s (RFC 3775 section 12: 240 s) "
                "so that the expired-nonce cases take seconds; they wait "
                f"{STALE_WAIT:g} s instead of 300 s."
            )
        if role == "ha":
            notes.append(
                "The home agent runs with allow_unprotected_registration (the lab is started "
                "without ESP): home registrations are sent without RFC 3776 ESP protection. "
                "HA-SEC-01 runs it with protection required and checks that an unprotected "
                "registration is discarded."
            )
        return notes
