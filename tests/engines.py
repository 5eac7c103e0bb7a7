"""Engines for tests that need a node without Mobile IPv6 (the engine contract kept, nothing
more)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from mip6.core.actions import Action, Deliver, Transmit


class PassThrough:
    """An engine without Mobile IPv6: the upper layer's packets go out as they are, received
    ones are delivered, and Port Unreachable requests are recorded."""

    def __init__(self, unreachable: list[bytes]) -> None:
        self.unreachable = unreachable

    def start(self, now: float) -> list[Action]:
        return []

    def handle_packet(self, now: float, data: bytes) -> list[Action]:
        return [Deliver(data)]

    def send(self, now: float, data: bytes) -> list[Action]:
        return [Transmit(data)]

    def handle_timer(self, now: float, token: Hashable) -> list[Action]:
        return []

    def port_unreachable(self, now: float, invoking: bytes) -> list[Action]:
        self.unreachable.append(invoking)
        return []

    def command(self, now: float, name: str, argument: Any) -> list[Action]:
        return []

    def stop(self, now: float) -> list[Action]:
        return []

    def stopped(self) -> bool:
        return True

    def describe(self, what: str, now: float) -> dict[str, Any]:
        return {}
