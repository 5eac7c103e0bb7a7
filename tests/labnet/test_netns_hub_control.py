"""The hub's runtime control requests that labnet's netns backend uses to move a node: routes
added and removed, and a link's emulation changed, while packets flow (no root needed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from ipaddress import IPv6Address
from typing import Any

import pytest

from labnet.hub.config import HubConfig, LinkConfig, parse_link_profiles
from labnet.hub.server import HubServer, query
from tests.labnet.test_hub_server import probe, sequence_of, udp_socket

SOURCE = IPv6Address("2001:db8:1::1")
CARE_OF = IPv6Address("2001:db8:3::5")
OTHER = IPv6Address("2001:db8:4::5")


@pytest.fixture
def hub() -> Iterator[tuple[HubServer, dict[str, Any]]]:
    nodes = {name: udp_socket() for name in ("src", "mn", "ha")}
    config = HubConfig(
        links=tuple(
            LinkConfig(name=name, bind=("127.0.0.1", 0), endpoint=sock.getsockname())
            for name, sock in nodes.items()
        ),
        routes=(),
    )
    server = HubServer(config)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server, nodes
    finally:
        server.stop()
        thread.join(2)
        server.close()
        for sock in nodes.values():
            sock.close()
    assert not thread.is_alive()


def ask(server: HubServer, request: str) -> dict[str, Any]:
    control = server.control_address
    assert control is not None
    return query(control, request)


def arrives(sock: Any, timeout: float = 1.0) -> int | None:
    sock.settimeout(timeout)
    try:
        return sequence_of(sock.recv(65535))
    except TimeoutError:
        return None


def test_routes_added_replaced_and_removed_at_runtime(hub) -> None:  # type: ignore[no-untyped-def]
    server, nodes = hub
    assert ask(server, "routes") == {"routes": {}}
    assert ask(server, "route add 2001:db8:1::1/128 src") == {"ok": True}
    assert ask(server, f"route add {CARE_OF}/128 mn") == {"ok": True}
    nodes["src"].sendto(probe(CARE_OF, 1), server.addresses["src"])
    assert arrives(nodes["mn"]) == 1
    # the node moves: its old address now leads to the home agent, then nowhere
    assert ask(server, f"route add {CARE_OF}/128 ha") == {"ok": True}
    nodes["src"].sendto(probe(CARE_OF, 2), server.addresses["src"])
    assert arrives(nodes["ha"]) == 2
    assert ask(server, f"route del {CARE_OF}/128") == {"ok": True}
    nodes["src"].sendto(probe(CARE_OF, 3), server.addresses["src"])
    assert arrives(nodes["ha"], 0.3) is None and arrives(nodes["mn"], 0.1) is None
    assert server.stats("src")["links"]["src"]["router_drops"]["no_route"] == 1
    assert ask(server, "routes") == {"routes": {"2001:db8:1::1/128": "src"}}


@pytest.mark.parametrize(
    ("request_text", "error"),
    [
        ("route del 2001:db8:9::/64", "no route for 2001:db8:9::/64"),
        ("route add 2001:db8:9::/64 nowhere", "no link named 'nowhere'"),
        ("route add 2001:db8:9::1/64 mn", "has host bits set"),
        ("route add 2001:db8:9::/64", "route add PREFIX LINK"),
        ("profile nowhere {}", "no link named 'nowhere'"),
        ('profile mn {"latency": "fast"}', "profile.mn.latency"),
        ('profile mn {"colour": 1}', "unknown keys"),
        ("profile mn {not json", "Expecting"),
    ],
)
def test_bad_control_requests_answer_errors(hub, request_text: str, error: str) -> None:  # type: ignore[no-untyped-def]
    server, _ = hub
    reply = ask(server, request_text)
    assert error in reply["error"]


def test_profile_change_applies_to_later_packets(hub) -> None:  # type: ignore[no-untyped-def]
    server, nodes = hub
    ask(server, f"route add {CARE_OF}/128 mn")
    ask(server, f"route add {SOURCE}/128 src")

    def delay(sequence: int) -> float:
        start = time.monotonic()
        nodes["src"].sendto(probe(CARE_OF, sequence), server.addresses["src"])
        assert arrives(nodes["mn"]) == sequence
        return time.monotonic() - start

    assert delay(1) < 0.015
    assert ask(server, 'profile mn {"latency": "30ms", "up": {"latency": "5ms"}}') == {"ok": True}
    assert 0.030 <= delay(2) < 0.060  # the down direction (hub to node) now holds 30 ms
    up, down = parse_link_profiles({"latency": "30ms", "up": {"latency": "5ms"}})
    assert (up.latency, down.latency) == (0.005, 0.030)
    # back to no emulation: the link is transparent again
    assert ask(server, "profile mn {}") == {"ok": True}
    assert delay(3) < 0.015
    assert server.stats("mn")["links"]["mn"]["down"]["packets_out"] == 3
