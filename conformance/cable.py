"""``--target interface``: the tester on a real Ethernet interface, cabled to any implementation.

The implementation under test (IUT) is a box on the same LAN segment as one of the tester's
interfaces (a cable, a switch, a bridge). The tester sends and receives whole Ethernet frames
on that interface (an AF_PACKET socket) and plays every address of the conformance plan
(:class:`conformance.transport.Addresses`) itself:

- it answers Neighbor Solicitations for those addresses and for its link-local address (the
  modified EUI-64 of the interface's MAC), so the IUT can reach the tester's on-link addresses
  directly and its off-link ones through a route via the tester's link-local address (the one
  piece of IUT configuration a test engineer adds besides the plan's addresses);
- it finds the IUT's link-layer address with a Neighbor Solicitation of its own and then sends
  every packet to it whatever the packet's IPv6 destination: the tester is cabled to the IUT
  as the lab target's tester is pinned to the IUT's link, so a packet for a mobile node's home
  address reaches the home agent under test;
- it gives the cases every IPv6 packet unicast to its MAC and addressed to one of its
  addresses, stamped with the kernel's receive time (SO_TIMESTAMPNS).

The neighbour discovery is :mod:`conformance.neighbour` (sans-I/O); a reader thread per case
answers it at once, so the IUT's address resolution never waits for the case to receive.

Each case wants a fresh IUT (an empty binding cache, the case's ``iut_config``): the target
runs the engineer's reset command before each case (``--iut-reset``, with ``{interface}``,
``{role}`` and ``{config}``, the case's configuration as JSON) and the IUT control hook's
actions through scripts (``--iut-action move=...``) or our daemon's control socket
(``--iut-control``). Several interfaces, each cabled to its own instance of the IUT, run
that many cases at once.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import select
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import Any, Final

from conformance.arrival import ANCILLARY_SIZE, arrival
from conformance.arrival import enable as enable_timestamps
from conformance.iut import DaemonControl, IutControl, ManualControl, substitute
from conformance.neighbour import Neighbours, format_mac, frame, link_local, parse_mac
from conformance.runner import Target
from conformance.transport import ADDRESSES, Addresses, Transport, topology_for

log = logging.getLogger(__name__)

ETH_P_IPV6: Final = 0x86DD
MAX_FRAME: Final = 65536 + 14
RESOLVE_TIMEOUT: Final = 10.0  # seconds for the IUT to answer the tester's solicitation
RESOLVE_INTERVAL: Final = 0.5  # seconds between solicitations (RFC 4861 10: RetransTimer 1 s)
RESET_TIMEOUT: Final = 60.0  # seconds the reset command may take
SETTLE: Final = 0.05  # seconds at most for the reader to catch up at the end of a window


def tester_addresses(role: str, plan: Addresses = ADDRESSES) -> tuple[IPv6Address, ...]:
    """The addresses the tester plays against an IUT of ``role`` (the lab target's)."""
    return topology_for(role, plan).nodes["tester"].addresses


def iut_address(role: str, plan: Addresses = ADDRESSES) -> IPv6Address:
    """The address the IUT of ``role`` starts with (a mobile node's first care-of address)."""
    return topology_for(role, plan).nodes["iut"].addresses[0]


def interface_mac(interface: str) -> bytes:
    with open(f"/sys/class/net/{interface}/address", encoding="ascii") as file:
        return parse_mac(file.read().strip())


def kernel_ipv6_enabled(interface: str) -> bool:
    try:
        with open(f"/proc/sys/net/ipv6/conf/{interface}/disable_ipv6", encoding="ascii") as f:
            return f.read().strip() == "0"
    except OSError:
        return False


class InterfaceTransport(Transport):
    """The tester's frames on ``interface`` (see the module description)."""

    def __init__(
        self,
        interface: str,
        addresses: Sequence[IPv6Address],
        iut: IPv6Address,
        *,
        mac: bytes | None = None,
    ) -> None:
        self.interface = interface
        self.neighbours = Neighbours.of(mac or interface_mac(interface), addresses, iut)
        self._got: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()
        self._stop_reader, self._wake = os.pipe()
        self.socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            enable_timestamps(self.socket)
            self.socket.bind((interface, ETH_P_IPV6))
        except BaseException:
            self._close_fds()
            raise
        self._reader = threading.Thread(target=self._read, name=f"tester-{interface}", daemon=True)
        self._reader.start()

    # -- the reader thread ------------------------------------------------------------------

    def _read(self) -> None:
        while True:
            readable, _, _ = select.select([self.socket, self._stop_reader], [], [])
            if self._stop_reader in readable:
                return
            try:
                data, ancillary, _, address = self.socket.recvmsg(MAX_FRAME, ANCILLARY_SIZE)
            except OSError:
                return
            if address[2] == socket.PACKET_OUTGOING:  # our own frames, looped back to us
                continue
            reply, deliver = self.neighbours.handle(data)
            if reply is not None:
                self._send_frame(reply)
            if deliver:
                with self._lock:
                    self._got.append((arrival(ancillary), data[14:]))

    def _send_frame(self, data: bytes) -> None:
        try:
            self.socket.send(data)
        except OSError as error:  # the interface went down: the case will see silence
            log.warning("tester on %s: cannot send: %s", self.interface, error)

    # -- Transport --------------------------------------------------------------------------

    def resolve(self, timeout: float = RESOLVE_TIMEOUT) -> bytes:
        """The IUT's link-layer address, soliciting it until it answers (RFC 4861 7.2.2)."""
        deadline = time.monotonic() + timeout
        while self.neighbours.iut_mac is None:
            if time.monotonic() >= deadline:
                raise OSError(
                    f"the IUT ({self.neighbours.iut_address}) did not answer neighbour "
                    f"solicitation on {self.interface} within {timeout:g} s"
                )
            self._send_frame(self.neighbours.solicit())
            step = time.monotonic() + RESOLVE_INTERVAL
            while self.neighbours.iut_mac is None and time.monotonic() < min(step, deadline):
                time.sleep(0.01)
        return self.neighbours.iut_mac

    def send(self, data: bytes) -> None:
        iut = self.neighbours.iut_mac or self.resolve()
        self._send_frame(frame(iut, self.neighbours.mac, data))

    def receive(self, timeout: float) -> list[tuple[float, bytes]]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(left)
        # what the kernel took in by the deadline and the reader has not read yet belongs to
        # this window: give the reader a moment to empty the socket
        settle = time.monotonic() + SETTLE
        while select.select([self.socket], [], [], 0)[0] and time.monotonic() < settle:
            time.sleep(0.001)
        with self._lock:
            got = [item for item in self._got if item[0] <= deadline]
            self._got = [item for item in self._got if item[0] > deadline]
        return got

    def now(self) -> float:
        return time.monotonic()

    def close(self) -> None:
        if self._reader.is_alive():
            os.write(self._wake, b"x")
            self._reader.join(timeout=5)
        self._close_fds()

    def _close_fds(self) -> None:
        self.socket.close()
        for fd in (self._stop_reader, self._wake):
            try:
                os.close(fd)
            except OSError:
                pass
        self._stop_reader = self._wake = -1


class _CaseTransport(InterfaceTransport):
    """An :class:`InterfaceTransport` that gives its interface back to the target's pool."""

    def __init__(self, release: queue.Queue[str], interface: str, *args: Any, **kw: Any):
        super().__init__(interface, *args, **kw)
        self._release = release
        self._released = False

    def close(self) -> None:
        if self._released:
            return
        self._released = True
        try:
            super().close()
        finally:
            self._release.put(self.interface)


@dataclass
class InterfaceTarget(Target):
    """The IUT on the other end of ``interfaces`` (one instance of it per interface): see the
    module description for the hooks."""

    interfaces: Sequence[str]
    reset: str | None = None  # a command: {interface}, {role}, {config}
    control: str | None = None  # a mip6 control socket path: {interface}
    actions: dict[str, str] = field(default_factory=dict)  # move, route_optimize, register
    stale_wait: float = 300.0
    name: str = "interface"
    _free: queue.Queue[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.interfaces:
            raise ValueError("the interface target needs at least one interface")
        self.jobs = len(self.interfaces)
        self._free = queue.Queue()
        for interface in self.interfaces:
            self._free.put(interface)
            if kernel_ipv6_enabled(interface):
                log.warning(
                    "IPv6 is enabled on %s: the kernel will speak there too (its own router "
                    "solicitations, MLD, answers for its link-local address); "
                    "sysctl net.ipv6.conf.%s.disable_ipv6=1 leaves the interface to the tester",
                    interface,
                    interface,
                )

    def describe(self, interface: str) -> str:
        mac = interface_mac(interface)
        return (
            f"tester on {interface}: MAC {format_mac(mac)}, link-local {link_local(mac)} (the "
            "IUT routes the tester's off-link addresses to it)"
        )

    def open(
        self, role: str, iut_config: dict[str, Any] | None = None
    ) -> tuple[Transport, IutControl]:
        config = iut_config or {}
        if config and self.reset is None:
            raise RuntimeError(
                f"the case needs the IUT configured with {json.dumps(config)}: give a reset "
                "command (--iut-reset) that starts the IUT so"
            )
        interface = self._free.get()
        try:
            transport = _CaseTransport(
                self._free,
                interface,
                tester_addresses(role, self.plan),
                iut_address(role, self.plan),
            )
        except BaseException:
            self._free.put(interface)
            raise
        values = {"interface": interface, "role": role}
        try:
            if self.reset is not None:
                command = substitute(self.reset, {**values, "config": json.dumps(config)})
                log.info("resetting the IUT: %s", shlex.join(command))
                subprocess.run(command, check=True, timeout=RESET_TIMEOUT)
            transport.resolve()
        except BaseException:
            transport.close()
            raise
        fallback = None if self.control is None else DaemonControl(self.control.format(**values))
        return transport, ManualControl(self.actions, values=values, fallback=fallback)

    def notes(self, role: str) -> list[str]:
        notes = [
            f"IUT: on the other end of the tester's interface{'s' if self.jobs > 1 else ''} "
            f"{', '.join(self.interfaces)} (raw Ethernet frames; the tester answers neighbour "
            "discovery for its addresses and solicits the IUT's link-layer address); "
            "wall-clock time."
        ]
        if self.reset is not None:
            notes.append(f"The IUT is reset before each case by `{self.reset}`.")
        else:
            notes.append(
                "The IUT is not reset between cases: a case may see an earlier one's state."
            )
        if self.stale_wait != 300.0:
            notes.append(
                f"The expired-nonce cases wait {self.stale_wait:g} s (the IUT's "
                "MAX_NONCE_LIFETIME plus a nonce interval; RFC 3775 section 12: 240 s)."
            )
        return notes
