"""The IUT control hook: how the tester asks the implementation under test to *act*.

Some rules can only be checked after the IUT does something no packet asks for: a mobile
node moves, starts route optimization with a correspondent, registers again. A case names
the action (``IutAction`` preconditions in :mod:`conformance.case`); a target supplies one
of these implementations:

* :class:`SimControl`: our engines in the ``sim`` backend (direct calls on virtual time);
* :class:`DaemonControl`: a running ``mip6 run`` daemon, through its control socket
  (``{"move": ADDR|null}``, ``{"route_optimize": ADDR}``, ``{"register": true}``);
* :class:`ManualControl`: any other implementation: prints what to do (or runs a script
  given per action) and waits for the operator.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from ipaddress import IPv6Address
from typing import TextIO

from conformance.transport import SimTransport
from labnet.topology import Topology


class IutControl(ABC):
    @abstractmethod
    def move(self, care_of_address: IPv6Address | None) -> None:
        """The IUT (a mobile node) is now at ``care_of_address`` (None: back home)."""

    @abstractmethod
    def start_route_optimization(self, correspondent: IPv6Address) -> None:
        """The IUT (a mobile node) starts return routability and a binding with
        ``correspondent``."""

    @abstractmethod
    def register(self) -> None:
        """The IUT (a mobile node) sends its home registration again."""


def network_for_move(topology: Topology, care_of_address: IPv6Address | None) -> str:
    """The lab network the IUT (topology node ``iut``, a mobile node) moves to for
    ``care_of_address`` (None: its home network)."""
    target = care_of_address or topology.nodes["iut"].home_address
    network = None if target is None else topology.network_of(target)
    if network is None:
        raise ValueError(f"{care_of_address} is on no network of the lab")
    return network.name


class SimControl(IutControl):
    """Direct calls on our engine in the sim backend; moving also moves its routes."""

    def __init__(self, transport: SimTransport) -> None:
        self.transport = transport

    def move(self, care_of_address: IPv6Address | None) -> None:
        lab = self.transport.lab
        lab.move("iut", network_for_move(lab.topology, care_of_address))

    def start_route_optimization(self, correspondent: IPv6Address) -> None:
        self.transport.lab.net.call("iut", "start_route_optimization", correspondent)

    def register(self) -> None:
        self.transport.lab.net.call("iut", "register")


class DaemonControl(IutControl):
    """Our daemon (``mip6 run``) through its control socket."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _request(self, request: dict[str, object]) -> None:
        from mip6.runtime.control import control_request  # the daemon's client, not its codec

        reply = control_request(self.path, request)
        if "error" in reply:
            raise RuntimeError(f"IUT control {request}: {reply['error']}")

    def move(self, care_of_address: IPv6Address | None) -> None:
        self._request({"move": None if care_of_address is None else str(care_of_address)})

    def start_route_optimization(self, correspondent: IPv6Address) -> None:
        self._request({"route_optimize": str(correspondent)})

    def register(self) -> None:
        self._request({"register": True})


def substitute(command: str, values: dict[str, str]) -> list[str]:
    """``command`` split as a shell would, each word's ``{name}`` replaced (one word each)."""
    return [word.format(**values) for word in shlex.split(command)]


class ManualControl(IutControl):
    """Any other implementation: run ``scripts[action]`` (a shell command with ``{address}``,
    and the keys of ``values``, e.g. ``{interface}``) if given, else ask ``fallback`` (e.g. a
    :class:`DaemonControl`) if there is one, otherwise print the instruction and wait for
    Enter."""

    def __init__(
        self,
        scripts: dict[str, str] | None = None,
        *,
        values: dict[str, str] | None = None,
        fallback: IutControl | None = None,
        out: TextIO = sys.stderr,
        wait: Callable[[], object] = input,
    ) -> None:
        self.scripts = scripts or {}
        self.values = values or {}
        self.fallback = fallback
        self.out = out
        self.wait = wait

    def _do(
        self,
        action: str,
        instruction: str,
        address: str = "",
        fallback: Callable[[IutControl], None] | None = None,
    ) -> None:
        script = self.scripts.get(action)
        if script is not None:
            subprocess.run(substitute(script, {**self.values, "address": address}), check=True)
            return
        if self.fallback is not None and fallback is not None:
            fallback(self.fallback)
            return
        print(f"IUT control: {instruction}, then press Enter", file=self.out)
        self.wait()

    def move(self, care_of_address: IPv6Address | None) -> None:
        where = "home" if care_of_address is None else str(care_of_address)
        self._do(
            "move",
            f"move the mobile node to {where}",
            where,
            lambda control: control.move(care_of_address),
        )

    def start_route_optimization(self, correspondent: IPv6Address) -> None:
        self._do(
            "route_optimize",
            f"make the mobile node start route optimization with {correspondent}",
            str(correspondent),
            lambda control: control.start_route_optimization(correspondent),
        )

    def register(self) -> None:
        self._do(
            "register",
            "make the mobile node send its home registration again",
            fallback=lambda control: control.register(),
        )
