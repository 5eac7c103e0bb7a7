"""Host mode without root: a labnet hub in a thread and three daemons in this process's asyncio
loop, over loopback UDP (lab mode). A home agent in router mode; a mobile node in host mode
serving HTTP (generated body) and UDP echo on its home address; a correspondent in host mode
whose own tcp_migrate streams download from the mobile node while it moves."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest
import yaml

from labnet.hub.config import HubConfig, LinkConfig
from labnet.hub.emulation import LinkProfile
from labnet.hub.server import HubServer
from labnet.netns import free_udp_port
from mip6.apps.http import generated_body
from mip6.runtime.config import ConfigError, parse
from mip6.runtime.daemon import Daemon
from mip6.runtime.state import format_rows
from mip6.wire import icmpv6 as icmp
from mip6.wire.ipv6 import Ipv6Packet
from tcp_migrate.tun import StreamWriter

HA = IPv6Address("2001:db8:1::1")
HOME = IPv6Address("2001:db8:1::5")
CN = IPv6Address("2001:db8:2::1")
VISITED1 = IPv6Address("2001:db8:3::5")
VISITED2 = IPv6Address("2001:db8:4::5")
SIZE = 3 * 1024 * 1024
SEED = 7


@pytest.fixture
def hub() -> Iterator[tuple[HubServer, dict[str, int]]]:
    endpoints = {name: free_udp_port() for name in ("ha", "cn", "mn")}
    profile = LinkProfile(latency=0.002)
    config = HubConfig(
        links=tuple(
            LinkConfig(
                name=name,
                bind=("127.0.0.1", 0),
                endpoint=("127.0.0.1", port),
                up=profile,
                down=profile,
            )
            for name, port in endpoints.items()
        ),
        routes=(
            (IPv6Network("2001:db8:1::/64"), "ha"),
            (IPv6Network(f"{CN}/128"), "cn"),
            (IPv6Network(f"{VISITED1}/128"), "mn"),
        ),
        control=None,
    )
    server = HubServer(config)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server, endpoints
    finally:
        server.stop()
        thread.join(2)
        server.close()
    assert not thread.is_alive()


def link(server: HubServer, endpoints: dict[str, int], name: str) -> str:
    host, port = server.addresses[name]
    return f'{{type: udp, remote: "{host}:{port}", local: "127.0.0.1:{endpoints[name]}"}}'


def configs(server: HubServer, endpoints: dict[str, int]) -> dict[str, str]:
    return {
        "ha": f"""node: ha
role: home_agent
links: {{network: {link(server, endpoints, "ha")}}}
home_agent: {{address: "{HA}", home_prefixes: ["2001:db8:1::/64"],
              allow_unprotected_registration: true}}
""",
        "mn": f"""node: mn
role: mobile_node
mode: host
links: {{network: {link(server, endpoints, "mn")}}}
mobile_node: {{home_address: "{HOME}", home_agent: "{HA}", care_of_address: "{VISITED1}"}}
apps:
  - {{type: echo}}
  - {{type: http, port: 80, size: {SIZE}, seed: {SEED}}}
""",
        "cn": f"""node: cn
role: correspondent
mode: host
links: {{network: {link(server, endpoints, "cn")}}}
correspondent: {{address: "{CN}"}}
""",
    }


async def until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def registered(daemon: Daemon, care_of: IPv6Address) -> bool:
    rows = daemon.command({"show": "bul"})["rows"]
    return any(
        r["home_registration"] and r["state"] == "bound" and r["care_of_address"] == str(care_of)
        for r in rows
    )


def test_host_mode_mobile_node_serves_http_and_udp_while_moving(hub) -> None:  # type: ignore[no-untyped-def]
    server, _ = hub
    daemons = {name: Daemon(parse(text, f"{name}.yaml")) for name, text in configs(*hub).items()}
    expected = hashlib.sha256(b"".join(generated_body(SIZE, SEED))).hexdigest()

    async def scenario() -> None:
        tasks = {name: await daemons[name].start() for name in ("ha", "cn", "mn")}
        mn, cn = daemons["mn"], daemons["cn"]
        assert cn.host is not None and mn.host is not None
        try:
            await until(lambda: registered(mn, VISITED1))

            # UDP echo (RFC 862) on the mobile node's home address, from the correspondent's API
            answers: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
            endpoint = cn.host.udp_bind(
                0, lambda data, remote, local: answers.put_nowait((data, remote))
            )
            endpoint.sendto(b"hello", (str(HOME), 7))
            data, remote = await asyncio.wait_for(answers.get(), 5)
            assert (data, remote) == (b"hello", (str(HOME), 7))

            # UDP to a closed port: a Port Unreachable from the mobile node's ICMPv6 error path
            endpoint.sendto(b"anyone?", (str(HOME), 9))
            await until(lambda: cn.host.counters.get("icmp_ignored", 0) == 1, 5)
            assert mn.host.counters["udp_port_unreachable"] == 1
            assert mn.command({"show": "stats"})["counters"]["icmp_error_sent"] == 1

            # TCP to a closed port: the stack's RST, refused
            with pytest.raises(ConnectionRefusedError):
                await cn.host.open_connection(str(HOME), 81)

            # HTTP download across two moves
            reader, writer = await cn.host.open_connection(str(HOME), 80)
            writer.write(b"GET /blob HTTP/1.1\r\nHost: mn\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert f"Content-Length: {SIZE}\r\n".encode() in head
            digest, got, moves = hashlib.sha256(), 0, []
            for fraction, care_of, old in ((0.3, VISITED2, VISITED1), (0.6, VISITED1, VISITED2)):
                while got < SIZE * fraction:
                    chunk = await asyncio.wait_for(reader.read(65536), 10)
                    assert chunk, "connection ended early"
                    digest.update(chunk)
                    got += len(chunk)
                server.add_route(f"{care_of}/128", "mn")
                server.remove_route(f"{old}/128")
                assert mn.command({"move": str(care_of)}) == {"ok": True}
                moves.append(got)
            while chunk := await asyncio.wait_for(reader.read(65536), 10):
                digest.update(chunk)
                got += len(chunk)
            assert got == SIZE and digest.hexdigest() == expected
            assert registered(mn, VISITED1)
            writer.close()

            # the embedding API the other way: a server of ours on the correspondent's stack,
            # a client of ours on the mobile node's (from its home address, through the engine)
            async def shout(reader: asyncio.StreamReader, writer: StreamWriter) -> None:
                writer.write((await reader.readline()).upper())
                await writer.drain()
                writer.close()

            await cn.host.start_server(shout, "::", 9000)
            reader, writer = await mn.host.open_connection(str(CN), 9000)
            assert writer.get_extra_info("sockname")[0] == str(HOME)
            writer.write(b"moved twice\n")
            assert await asyncio.wait_for(reader.read(), 5) == b"MOVED TWICE\n"
            writer.close()

            stats = mn.command({"show": "stats"})["counters"]
            assert stats["host.tcp.rst_sent"] == 1  # the refused connection only: no reset
            assert stats["host.tcp_in"] > 0 and stats["host.udp_in"] == 1

            # ICMPv6 Echo (RFC 4443 4.2), sent as the correspondent's upper layer would
            ping = Ipv6Packet(
                source=CN, destination=HOME, payload=icmp.EchoRequest(identifier=1, sequence=1)
            )
            ignored = cn.host.counters["icmp_ignored"]
            cn.runtime.from_upper_layer(ping.emit())
            await until(lambda: cn.host.counters["icmp_ignored"] == ignored + 1, 5)
            assert mn.host.counters["echo_answered"] == 1
            rows = cn.command({"show": "tcp"})["rows"]
            assert rows and {row["remote"].rpartition(":")[0] for row in rows} == {f"[{HOME}]"}
            assert format_rows(cn.command({"show": "stats"}))
        finally:
            for name in ("mn", "cn", "ha"):  # the mobile node first: it deregisters
                daemons[name].stop()
                await tasks[name]
                if name == "mn":
                    assert not daemons["ha"].command({"show": "bcache"})["rows"]

    asyncio.run(scenario())


def test_host_mode_config_faults_name_file_line_and_key(tmp_path: Path) -> None:
    base = "node: x\nrole: correspondent\n"
    cases = {
        "mode: host\nlinks: {network: {type: tun, name: t0}, kernel: {type: tun, name: t1}}\n"
        "correspondent: {address: 2001:db8::1}\n": "x.yaml:4: links.kernel: mode host has no "
        "kernel link (the daemon is the host)",
        "mode: host\nlinks: {network: {type: tun, name: t0}}\ncorrespondent: {}\n": (
            "x.yaml:5: correspondent.address: missing (mode host needs the node's address)"
        ),
        "links: {network: {type: tun, name: t0}, kernel: {type: tun, name: t1}}\n"
        "correspondent: {}\napps: [{type: echo}]\n": "x.yaml:5: apps: applications need mode "
        "host, not shim",
        "mode: host\nlinks: {network: {type: tun, name: t0}}\n"
        "correspondent: {address: 2001:db8::1}\napps:\n  - {type: http, port: 80}\n": (
            "x.yaml:7: apps[0]: an http app needs either path or size"
        ),
        "mode: host\nlinks: {network: {type: tun, name: t0}}\n"
        "correspondent: {address: 2001:db8::1}\napps:\n  - {type: echo, port: 70000}\n": (
            "x.yaml:7: apps[0].port: 70000 is not a port (1-65535)"
        ),
        "mode: host\nlinks: {network: {type: tun, name: t0}}\n"
        "correspondent: {address: 2001:db8::1}\napps:\n  - {type: http, path: /nonexistent}\n": (
            "x.yaml:7: apps[0].path: no file /nonexistent"
        ),
        "mode: host\nlinks: {network: {type: tun, name: t0}}\n"
        "correspondent: {address: 2001:db8::1}\napps:\n  - {type: echo, size: 3}\n": (
            "x.yaml:7: apps[0].size: unknown key for an app of type echo (expected port, type)"
        ),
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError) as caught:
            parse(base + text, "x.yaml")
        assert str(caught.value) == message, text
    body = tmp_path / "body"
    body.write_bytes(b"x")
    config = parse(
        base + "mode: host\nlinks: {network: {type: tun, name: t0}}\n"
        "correspondent: {address: 2001:db8::1}\n"
        f"apps: [{{type: http, port: 8080, path: {body}}}, {{type: echo}}]\n",
        "x.yaml",
    )
    assert [(a.type, a.port, a.path) for a in config.apps] == [
        ("http", 8080, str(body)),
        ("echo", 7, None),
    ]
    assert config.host_addresses == (IPv6Address("2001:db8::1"),)
    # an application written back as YAML reads the same
    again = parse(
        base + "mode: host\nlinks: {network: {type: tun, name: t0}}\n"
        "correspondent: {address: 2001:db8::1}\n"
        + yaml.safe_dump({"apps": [a.as_dict() for a in config.apps]}),
        "x.yaml",
    )
    assert again.apps == config.apps


def test_embedded_start_failure_raises_and_leaves_nothing_open() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = parse(
            "node: x\nrole: correspondent\nmode: host\n"
            f'links: {{network: {{type: udp, remote: "127.0.0.1:9", local: "127.0.0.1:{port}"}}}}\n'
            f'correspondent: {{address: "{CN}"}}\napps: [{{type: echo}}]\n',
            "x.yaml",
        )
        daemon = Daemon(config)

        async def scenario() -> None:
            with pytest.raises(OSError):
                await daemon.start()

        asyncio.run(scenario())
    assert daemon.host is not None and daemon.host.describe()["counters"]["udp.bound"] == 0
