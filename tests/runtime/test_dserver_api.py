"""The asyncio application API of distributed-server members (mip6.runtime.dserver_api), on real
daemons without root: a labnet hub in a thread, and in this process's asyncio loop a home agent
(router mode), three member daemons (host mode; m1 the contact node) and a client (a
correspondent in host mode whose own streams connect to the contact address), all over loopback
UDP (lab mode). The members' handlers are asyncio code: an echo whose 'H' hands the client on,
and a regenerable download that hands itself on while it streams."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import pytest

from labnet.hub.config import HubConfig, LinkConfig
from labnet.hub.emulation import LinkProfile
from labnet.hub.server import HubServer
from labnet.netns import free_udp_port
from mip6.apps.http import generated_body
from mip6.dserver.policy import BasePolicy, GroupView, Selection, TargetFailure
from mip6.runtime.config import parse
from mip6.runtime.daemon import Daemon
from mip6.runtime.dserver_api import (
    MAX_UNSENT,
    Connection,
    DistributedServer,
    HandedOff,
    Handler,
    HandoffFailed,
    NoTarget,
    StateError,
    TargetError,
    _Envelope,
)
from tcp_migrate.tun import StreamWriter

HA = IPv6Address("2001:db8:1::1")
CONTACT = IPv6Address("2001:db8:1::80")
CLIENT = IPv6Address("2001:db8:2::1")
MEMBERS = {
    "m1": IPv6Address("2001:db8:10::1"),
    "m2": IPv6Address("2001:db8:20::1"),
    "m3": IPv6Address("2001:db8:30::1"),
}
NAMES = {address: name for name, address in MEMBERS.items()}
KEY = "5a" * 32
ECHO = 7
DOWNLOAD = 80
Hub = tuple[HubServer, dict[str, int]]  # the hub, and the UDP port of each node's link
Seen = list[tuple[str, bool, dict[str, Any], int]]  # member, handed in, state, client port


@pytest.fixture
def hub() -> Iterator[Hub]:
    endpoints = {name: free_udp_port() for name in ("ha", "cl", *MEMBERS)}
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
            (IPv6Network("2001:db8:2::/64"), "cl"),
            *(
                (IPv6Network((address, 64), strict=False), name)
                for name, address in MEMBERS.items()
            ),
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


def link(hub: Hub, name: str) -> str:
    server, endpoints = hub
    host, port = server.addresses[name]
    return f'{{type: udp, remote: "{host}:{port}", local: "127.0.0.1:{endpoints[name]}"}}'


def member_yaml(hub: Hub, name: str, distribute: bool, attempt_timeout: float) -> str:
    members = ", ".join(f'"{address}"' for address in MEMBERS.values())
    return f"""node: {name}
role: member
links: {{network: {link(hub, name)}}}
member:
  contact_address: "{CONTACT}"
  home_agent: "{HA}"
  address: "{MEMBERS[name]}"
  contact_node: "{MEMBERS["m1"]}"
  members: [{members}]
  group_key: {KEY}
  distribute: {"true" if distribute else "false"}
  attempt_timeout: {attempt_timeout}
"""


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class NextMember(BasePolicy):
    """A user-written policy: the member after this one in address order, wrapping around."""

    def __init__(self, view: GroupView) -> None:
        super().__init__(view)
        self.reported: list[tuple[IPv6Address, TargetFailure]] = []

    def _choose(self, selection: Selection, candidates: list[IPv6Address]) -> IPv6Address:
        after = [member for member in candidates if member > selection.local]
        return (after or candidates)[0]

    def notify_failure(self, member: IPv6Address, reason: TargetFailure, now: float) -> None:
        self.reported.append((member, reason))
        super().notify_failure(member, reason, now)


class Lab:
    """The five daemons; each member joined through a different door of ``join``."""

    def __init__(
        self,
        hub: Hub,
        tmp: Path,
        distribute: bool,
        attempt_timeout: float = 2.0,
    ) -> None:
        self.hub = hub
        self.ha = Daemon(
            parse(
                f"""node: ha
role: home_agent
links: {{network: {link(hub, "ha")}}}
home_agent: {{address: "{HA}", home_prefixes: ["2001:db8:1::/64"],
              allow_unprotected_registration: true}}
""",
                "ha.yaml",
            )
        )
        self.client = Daemon(
            parse(
                f"""node: cl
role: correspondent
mode: host
links: {{network: {link(hub, "cl")}}}
correspondent: {{address: "{CLIENT}"}}
""",
                "cl.yaml",
            )
        )
        self.tmp = tmp
        self.distribute = distribute
        self.attempt_timeout = attempt_timeout
        self.servers: dict[str, DistributedServer] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [await self.ha.start(), await self.client.start()]
        texts = {
            name: member_yaml(self.hub, name, self.distribute, self.attempt_timeout)
            for name in MEMBERS
        }
        m1 = Daemon(parse(texts["m1"], "m1.yaml"))
        m2 = parse(texts["m2"], "m2.yaml")
        m3 = self.tmp / "m3.yaml"
        m3.write_text(texts["m3"])
        self.servers = {
            "m1": await DistributedServer.join(m1),  # a Daemon not started yet
            "m2": await DistributedServer.join(m2),  # a NodeConfig
            "m3": await DistributedServer.join(str(m3)),  # a path
        }
        await until(lambda: registered(self.servers["m1"]))

    async def stop(self) -> None:
        for server in self.servers.values():
            await server.leave()
        for daemon in (self.client, self.ha):
            daemon.stop()
        for task in self._tasks:
            await task

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, StreamWriter]:
        assert self.client.host is not None
        return await self.client.host.open_connection(str(CONTACT), port)

    def serving(self, port: int) -> list[str]:
        """The members that hold a connection of the client on ``port``."""
        return [
            name
            for name, server in self.servers.items()
            if any(conn.port == port for conn in server.connections)
        ]


def registered(server: DistributedServer) -> bool:
    rows = server.member.describe("bul", server.loop.time())["rows"]
    return any(row["home_registration"] and row["state"] == "bound" for row in rows)


def handler_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("dserver port")]


# -- the echo: 'H' hands the client on --------------------------------------------------------


def echo_handler(name: str, seen: Seen) -> Handler:
    """Echo lines prefixed with the member's name. The state: lines echoed so far, the member
    that set it, and whether the next member announces itself (set by 'H' only)."""

    async def handle(conn: Connection) -> None:
        # an empty state handed in: the previous member's handler had not run yet (the contact
        # node's distribution right after the accept)
        fresh = {"lines": 0, "by": None, "announce": 0}
        state: dict[str, Any] = json.loads(conn.state) if conn.state else fresh
        seen.append((name, conn.handed_in, dict(state), conn.peer[1]))
        if state["announce"]:
            conn.writer.write(f"took {name} from {state['by']} lines {state['lines']}\n".encode())
        state.update(by=name, announce=0)
        conn.state = json.dumps(state).encode()

        def nowait_done(future: asyncio.Future[None]) -> None:
            if conn.handed_off:
                return  # the acceptor announces itself
            failure = future.exception()
            assert isinstance(failure, HandoffFailed) and conn.failed_handoff
            state["announce"] = 0
            conn.state = json.dumps(state).encode()
            conn.writer.write(f"nowait failed {name} {type(failure).__name__}\n".encode())

        while line := await conn.reader.readline():
            command, _, argument = line.decode().strip().partition(" ")
            if command in ("H", "N"):
                state["announce"] = 1
                conn.state = json.dumps(state).encode()  # before the await: it travels
                target = MEMBERS[argument] if argument else None
                if command == "N":
                    conn.handoff_nowait(target, callback=nowait_done)
                    conn.writer.write(b"asked\n")
                    continue
                try:
                    await conn.handoff(target)
                except HandoffFailed as failed:
                    state["announce"] = 0
                    conn.state = json.dumps(state).encode()
                    tried = ",".join(NAMES[m] for m in failed.tried)
                    named = NAMES[failed.target] if failed.target else "-"
                    conn.writer.write(
                        f"stayed {name} {type(failed).__name__} tried {tried} target {named}"
                        f" kept {failed.kept}\n".encode()
                    )
                continue
            if command == "Q":
                conn.writer.write(b"bye\n")
                conn.close(clear_binding=True)
                await conn.wait_closed()
                return
            state["lines"] += 1
            conn.state = json.dumps(state).encode()
            conn.writer.write(f"{name} ".encode() + line)
            await conn.writer.drain()

    return handle


async def echo_lab(lab: Lab, seen: Seen) -> None:
    for name, server in lab.servers.items():
        await server.serve(ECHO, echo_handler(name, seen))
        server.policy = NextMember(server.view)


def test_echo_handed_on_by_its_handler(hub: Hub, tmp_path: Path) -> None:
    lab = Lab(hub, tmp_path, distribute=True)
    seen: Seen = []

    async def scenario() -> None:
        await lab.start()
        try:
            await echo_lab(lab, seen)
            reader, writer = await lab.connect(ECHO)

            async def line() -> str:
                return (await asyncio.wait_for(reader.readline(), 5)).decode()

            async def echo(text: str) -> str:
                writer.write(f"{text}\n".encode())
                who, _, rest = (await line()).partition(" ")
                assert rest == f"{text}\n"
                return who

            # the contact node hands every new client to its policy's member: m2 (after m1)
            first = await echo("hello")
            assert first in ("m1", "m2")
            await until(lambda: lab.serving(ECHO) == ["m2"])
            assert await echo("one") == "m2"
            assert seen[1][:2] == ("m2", True)  # handed in, transparently (no announcement)

            # each 'H' to the next member, which announces itself with the state it was given
            lines, at = 2, "m2"
            for following in ("m3", "m1", "m2", "m3", "m1"):
                writer.write(b"H\n")
                assert await line() == f"took {following} from {at} lines {lines}\n"
                assert await echo(f"on {following}") == following
                lines, at = lines + 1, following
            # what the client sent right behind the 'H' was unread at the donor: it travelled
            writer.write(b"H\nright behind\nand more\n")
            assert await line() == f"took m2 from m1 lines {lines}\n"
            assert await line() == "m2 right behind\n"
            assert await line() == "m2 and more\n"
            lines += 2
            # a named target, then a non-blocking handoff
            writer.write(b"H m1\n")
            assert await line() == f"took m1 from m2 lines {lines}\n"
            writer.write(b"N\n")
            assert await line() == "asked\n"
            assert await line() == f"took m2 from m1 lines {lines}\n"
            # an operator's handoff (DistributedServer.handoff) is transparent to the client
            await lab.servers["m2"].handoff(CLIENT, MEMBERS["m3"])
            assert lab.serving(ECHO) == ["m3"]
            assert await echo("after the operator") == "m3"

            lines += 1
            # a second connection of the client goes straight to the member serving it (the
            # client's binding), and a handoff moves both (DSERVER 4 rule 1)
            reader2, writer2 = await lab.connect(ECHO)
            writer2.write(b"second\n")
            assert await asyncio.wait_for(reader2.readline(), 5) == b"m3 second\n"
            assert lab.serving(ECHO) == ["m3"] and len(lab.servers["m3"].connections) == 2
            writer.write(b"H\n")
            assert await line() == f"took m1 from m3 lines {lines}\n"
            writer2.write(b"again\n")
            assert await asyncio.wait_for(reader2.readline(), 5) == b"m1 again\n"
            # two 'H's at once: the acceptor's handler reads the second before its connection
            # thawed, and its handoff starts once the connection is live there
            writer.write(b"H\nH\n")
            assert await line() == f"took m2 from m1 lines {lines}\n"
            assert await line() == f"took m3 from m2 lines {lines}\n"
            assert lab.serving(ECHO) == ["m3"] and len(lab.servers["m3"].connections) == 2
            writer2.close()
            await until(lambda: len(lab.servers["m3"].connections) == 1)

            # each handler handed in started from the state the previous member set
            for port in {peer for *_, peer in seen}:
                starts = [(name, was, state) for name, was, state, peer in seen if peer == port]
                for (before, _, _), (_, was, state) in itertools.pairwise(starts):
                    assert was and state["by"] in (None, before), (port, starts)
            # the handed-off connections left no task and no connection behind
            await until(lambda: len(handler_tasks()) == 1)
            await asyncio.sleep(0)  # the ended tasks' done callbacks (see below)
            for name in ("m1", "m2"):
                assert lab.servers[name].connections == [] and not lab.servers[name].tasks

            # 'Q': bye, our FIN, and the client's binding for the contact address cleared
            assert lab.client.command({"show": "bcache"})["rows"]
            writer.write(b"Q\n")
            assert await line() == "bye\n"
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            await until(lambda: not lab.client.command({"show": "bcache"})["rows"])
            await until(lambda: not handler_tasks())
            counters = {
                name: (server.ports[ECHO].handed_in_count, server.ports[ECHO].handed_off_count)
                for name, server in lab.servers.items()
            }
            # the distribution, 7 'H's, one 'N' and the operator's; then 3 'H's of 2 connections
            assert sum(i for i, _ in counters.values()) == 16, counters
            assert sum(o for _, o in counters.values()) == 16, counters
            assert not any(s.ports[ECHO].failed_handoffs for s in lab.servers.values())
        finally:
            await lab.stop()

    asyncio.run(scenario())


def test_failed_handoff_raises_and_the_handler_goes_on(hub: Hub, tmp_path: Path) -> None:
    server_hub, _ = hub
    lab = Lab(hub, tmp_path, distribute=False, attempt_timeout=0.5)
    seen: Seen = []

    async def scenario() -> None:
        await lab.start()
        try:
            await echo_lab(lab, seen)
            reader, writer = await lab.connect(ECHO)

            async def line() -> str:
                return (await asyncio.wait_for(reader.readline(), 5)).decode()

            writer.write(b"hello\n")
            assert await line() == "m1 hello\n"  # no distribution: the contact node keeps it
            for name in ("m2", "m3"):  # the other members become unreachable
                server_hub.remove_route(IPv6Network((MEMBERS[name], 64), strict=False))

            started = time.monotonic()
            writer.write(b"H\nstill here\n")
            assert await line() == "stayed m1 TargetError tried m2,m3 target - kept True\n"
            assert 0.9 < time.monotonic() - started < 3  # two attempts of 0.5 s
            assert await line() == "m1 still here\n"
            policy = lab.servers["m1"].policy
            assert isinstance(policy, NextMember)
            assert [(NAMES[m], r) for m, r in policy.reported] == [
                ("m2", TargetFailure.TIMED_OUT),
                ("m3", TargetFailure.TIMED_OUT),
            ]
            # both in quarantine now: the policy has no target at all
            writer.write(b"H\n")
            assert await line() == "stayed m1 NoTarget tried  target - kept True\n"
            # a named target is tried whatever the quarantine, and named in the failure
            writer.write(b"H m3\n")
            assert await line() == "stayed m1 TargetError tried m3 target m3 kept True\n"
            # non-blocking: the handler went on at once, the failure came later
            writer.write(b"N\nmeanwhile\n")
            assert await line() == "asked\n"
            assert await line() == "m1 meanwhile\n"  # echoed before the member even started
            assert await line() == "nowait failed m1 NoTarget\n"
            (conn,) = lab.servers["m1"].connections
            assert conn.failed_handoff and conn.failed_handoff_target is None
            assert not conn.handed_in and not conn.handed_off
            assert lab.serving(ECHO) == ["m1"]
            assert [start[0] for start in seen] == ["m1"]  # one handler, never restarted
            writer.close()
            await until(lambda: not handler_tasks())
        finally:
            await lab.stop()

    asyncio.run(scenario())


# -- a regenerable download hands itself on while it streams ---------------------------------


def download_handler(name: str, log: list[tuple[str, bool, int]]) -> Handler:
    """'GET size seed every': the generated body, handed to another member once the client
    acknowledged ``every`` bytes from this member (blocking: the stream waits for the outcome,
    so each member writes between ``every`` and ``every`` + its buffers); regenerable, so each
    member writes the stream on from the offset the client acknowledged. ``log``: (member,
    handed in, offset it started from) for each start, (member, False, -offset) for each
    request."""

    async def handle(conn: Connection) -> None:
        if conn.state:
            size, seed, every = json.loads(conn.state)
        else:  # a new client, or one handed in before the request was read
            size, seed, every = map(int, (await conn.reader.readline()).split()[1:])
            conn.state = json.dumps([size, seed, every]).encode()
        start = conn.offset
        log.append((name, conn.handed_in, start))
        asking_at = start + every
        for chunk in generated_body(size, seed, start):
            conn.writer.write(chunk)
            await conn.writer.drain()
            # progress is what the client acknowledged, not what the writer took: an acceptor
            # fills its buffers at once, and would hand on before sending anything
            if conn.acknowledged >= asking_at:
                log.append((name, False, -conn.acknowledged))
                try:
                    await conn.handoff()  # completed: cancelled here
                except HandoffFailed:
                    asking_at = conn.acknowledged + every

    return handle


def test_regenerable_download_survives_handoffs(hub: Hub, tmp_path: Path) -> None:
    lab = Lab(hub, tmp_path, distribute=True)
    size, seed, every = 3_000_000, 11, 200_000
    expected = hashlib.sha256(b"".join(generated_body(size, seed))).hexdigest()
    log: list[tuple[str, bool, int]] = []

    async def scenario() -> None:
        await lab.start()
        try:
            for name, server in lab.servers.items():
                await server.serve(DOWNLOAD, download_handler(name, log), regenerable=True)
                server.policy = NextMember(server.view)  # so that every member takes a turn
            reader, writer = await lab.connect(DOWNLOAD)
            writer.write(f"GET {size} {seed} {every}\n".encode())
            digest, got = hashlib.sha256(), 0
            while got < size:
                chunk = await asyncio.wait_for(reader.read(1 << 16), 10)
                assert chunk, f"ended early at {got}"
                digest.update(chunk)
                got += len(chunk)
            assert got == size and digest.hexdigest() == expected
            writer.close()
            await until(lambda: not handler_tasks())
            # a task's done callbacks (server.tasks' discard) run one loop iteration after it
            # ended, which may be the iteration that saw it ended
            await asyncio.sleep(0)
            starts = [(name, was, at) for name, was, at in log if at >= 0]
            asks = [(name, -at) for name, was, at in log if at < 0]
            handed_in = [start for start in starts if start[1]]
            # the handlers asked; past its ask a member's buffers still reach the client: its
            # send ring (256 KiB), the writer's unsent bytes up to drain's mark (256 KiB) and a
            # chunk (64 KiB), and a chunk more before it asks
            assert len(asks) >= size // (every + (5 << 17)), log
            assert len(handed_in) >= len(asks), log  # each ask handed on (+ the distribution)
            # each acceptor wrote on from the acknowledged offset, which only grows
            offsets = [at for _, _, at in starts]
            assert offsets == sorted(offsets) and offsets[-1] > 0, log
            for server in lab.servers.values():
                assert not server.tasks
                assert not any(p.failed_handoffs for p in server.ports.values())
        finally:
            await lab.stop()

    asyncio.run(scenario())


# -- without a network -------------------------------------------------------------------------


def test_envelope_round_trip_and_faults() -> None:
    envelope = _Envelope(
        state=b"s", unread=b"in", unsent=b"out", regenerable=True, clear_binding=True
    )
    assert _Envelope.decode(envelope.encode()) == envelope
    data = envelope.encode()
    for bad, reason in (
        (data[:5], "truncated"),
        (b"X1" + data[2:], "unknown format"),
        (data[:2] + b"\x80" + data[3:], "unknown flags"),
        (data + b"!", "do not add up"),
        (data[:3] + (1 << 20).to_bytes(4, "big") + data[7:], "longer"),
    ):
        with pytest.raises(StateError, match=reason):
            _Envelope.decode(bad)
    assert issubclass(NoTarget, HandoffFailed) and issubclass(TargetError, HandoffFailed)
    assert issubclass(HandedOff, ConnectionError)
    assert MAX_UNSENT > 0
