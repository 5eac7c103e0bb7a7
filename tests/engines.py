"""Engines for tests that need a node without Mobile IPv6 (the engine contract kept, nothing
more)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from mip6.core.actions import Action, Deliver, Transmit
from mip6.core.node import UpperLayerError
from mip6.wire.icmpv6 import PORT_UNREACHABLE, DestinationUnreachable


class PassThrough:
    """An engine without Mobile IPv6: the upper layer's packets go out as they are, received
    ones are delivered, and the ICMPv6 errors the upper layer asks for are recorded: the
    invoking packets of Port Unreachables in ``unreachable``, every (invoking, message) in
    ``errors``."""

    def __init__(self, unreachable: list[bytes]) -> None:
        self.unreachable = unreachable
        self.errors: list[tuple[bytes, UpperLayerError]] = []

    def start(self, now: float) -> list[Action]:
        return []

    def handle_packet(self, now: float, data: bytes) -> list[Action]:
        return [Deliver(data)]

    def send(self, now: float, data: bytes) -> list[Action]:
        return [Transmit(data)]

    def handle_timer(self, now: float, token: Hashable) -> list[Action]:
        return []

    def upper_layer_error(
        self, now: float, invoking: bytes, message: UpperLayerError
    ) -> list[Action]:
        self.errors.append((invoking, message))
        if isinstance(message, DestinationUnreachable) and message.code == PORT_UNREACHABLE:
            self.unreachable.append(invoking)
        return []

    def send_overhead(self, now: float, source: bytes, destination: bytes) -> int:
        return 0

    def command(self, now: float, name: str, argument: Any) -> list[Action]:
        return []

    def stop(self, now: float) -> list[Action]:
        return []

    def stopped(self) -> bool:
        return True

    def describe(self, what: str, now: float) -> dict[str, Any]:
        return {}
