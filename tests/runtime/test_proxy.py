"""The proxy for unmodified servers (mip6.apps.proxy) on real member daemons without root: the
lab of tests/runtime/test_dserver_api.py (a hub in a thread, a home agent, three members and a
client daemon over loopback UDP), each member's proxy relaying to its own stock
``http.server`` (HTTP/1.1, kernel TCP on loopback) serving the same directory. The client is
the client daemon's own TCP stack, speaking HTTP/1.1 through h11."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import hashlib
import http.server
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from ipaddress import IPv6Address
from pathlib import Path

import h11
import pytest

from mip6.apps.proxy import Proxy, ProxySettings, _Backend, start_proxy
from mip6.dserver.policy import BasePolicy, ContentAwarePolicy, RoundRobinPolicy, Selection
from mip6.runtime.dserver_api import HandoffFailed
from tests.runtime.test_dserver_api import CLIENT, MEMBERS, Hub, Lab, hub, until

__all__ = ["hub"]  # the fixture, shared with the API's tests

PORT = 80
FILES = 30


class Backend(http.server.ThreadingHTTPServer):
    """``python -m http.server --protocol HTTP/1.1`` in a thread, counting its connections."""

    address_family = socket.AF_INET6
    daemon_threads = True

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_Handler, directory=str(directory))
        super().__init__(("::1", 0), handler)
        self.accepted = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def get_request(self):  # type: ignore[no-untyped-def]
        self.accepted += 1
        return super().get_request()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "m3").mkdir(parents=True)
    for index in range(FILES):
        (root / f"f{index}").write_bytes(os.urandom(1000 + 997 * index))
    (root / "m3" / "page").write_bytes(b"routed to m3\n" * 100)
    return root


@pytest.fixture
def backends(site: Path) -> Iterator[dict[str, Backend]]:
    servers = {name: Backend(site) for name in MEMBERS}
    yield servers
    for server in servers.values():
        server.stop()


class Client:
    """One keep-alive connection from the client daemon, h11 on top of it."""

    def __init__(self, reader: asyncio.StreamReader, writer: object) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def connect(cls, lab: Lab) -> Client:
        reader, writer = await lab.connect(PORT)
        return cls(reader, writer)

    def send(self, method: str, target: str, **headers: str) -> None:
        self.writer.write(self.expect(method, target, **headers))  # type: ignore[attr-defined]

    def expect(self, method: str, target: str, **headers: str) -> bytes:
        """The request's bytes, and h11 told to expect its response."""
        fields = [("Host", "server"), *headers.items()]
        data = self.h11.send(h11.Request(method=method, target=target, headers=fields))
        return data + (self.h11.send(h11.EndOfMessage()) or b"")

    async def response(self) -> tuple[h11.Response, bytes]:
        head: h11.Response | None = None
        body = b""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(self.reader.read(1 << 16), 10)
                self.h11.receive_data(data)
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                if self.h11.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
                    self.h11.start_next_cycle()  # kept alive
                return head, body

    async def get(self, target: str, method: str = "GET", **headers: str) -> tuple[int, bytes]:
        self.send(method, target, **headers)
        head, body = await self.response()
        return head.status_code, body


def proxies(lab: Lab, backends: dict[str, Backend], **options: object) -> dict[str, Proxy]:
    return {
        name: start_proxy(
            server,
            PORT,
            ProxySettings(server_port=backends[name].server_address[1], **options),  # type: ignore[arg-type]
        )
        for name, server in lab.servers.items()
    }


def run(lab: Lab, scenario: object) -> None:
    async def main() -> None:
        await lab.start()
        try:
            await scenario(lab)  # type: ignore[operator]
        finally:
            await lab.stop()

    asyncio.run(main())


def test_keep_alive_client_handed_off_between_requests(
    hub: Hub, tmp_path: Path, site: Path, backends: dict[str, Backend]
) -> None:
    """Every second request goes to another member; every file arrives whole, the client's
    one connection is served by all three members, each through its own server connection."""
    lab = Lab(hub, tmp_path, distribute=False)

    async def scenario(lab: Lab) -> None:
        running = proxies(lab, backends, handoff_every=2)
        for server in lab.servers.values():
            server.policy = RoundRobinPolicy(server.view)
        client = await Client.connect(lab)
        for index in range(FILES):
            status, body = await client.get(f"/f{index}")
            assert status == 200
            assert body == (site / f"f{index}").read_bytes(), index
        asked = sum(p.handoffs_asked for p in running.values())
        failed = sum(p.handoffs_failed for p in running.values())
        assert asked >= FILES // 2 - 1 and failed == 0
        assert all(p.requests >= 5 for p in running.values()), {
            n: p.requests for n, p in running.items()
        }
        assert sum(p.requests for p in running.values()) == FILES
        # each member opened its own connection to its own server
        assert all(backend.accepted >= 1 for backend in backends.values())
        await until(
            lambda: (
                sum(s.member.counters.get("handoff_completed", 0) for s in lab.servers.values())
                == asked
            )
        )

    run(lab, scenario)


def test_pipelined_head_and_conditional_requests(
    hub: Hub, tmp_path: Path, site: Path, backends: dict[str, Backend]
) -> None:
    """Requests sent back to back before any answer (HTTP/1.1 pipelining), a HEAD (a
    Content-Length with no body) and a 304: each answered in order, the client handed on
    between them with the pipelined bytes in the handoff's state."""
    lab = Lab(hub, tmp_path, distribute=False)

    async def scenario(lab: Lab) -> None:
        running = proxies(lab, backends, handoff_every=1)
        for server in lab.servers.values():
            server.policy = RoundRobinPolicy(server.view)
        reader, writer = await lab.connect(PORT)
        requests = (
            b"".join(b"GET /f%d HTTP/1.1\r\nHost: s\r\n\r\n" % index for index in range(6))
            + b"HEAD /f7 HTTP/1.1\r\nHost: s\r\n\r\n"
        )
        writer.write(requests)
        client = Client(reader, writer)
        for index in [*range(6), 7]:
            client.expect("HEAD" if index == 7 else "GET", f"/f{index}")
            head, body = await client.response()
            expected = (site / f"f{index}").read_bytes()
            assert head.status_code == 200
            assert body == (b"" if index == 7 else expected)
            assert dict(head.headers)[b"content-length"] == str(len(expected)).encode()
        assert sum(p.handoffs_asked for p in running.values()) >= 5
        # a conditional request the server answers 304, on the same connection
        stamp = email.utils.formatdate((site / "f1").stat().st_mtime + 60, usegmt=True)
        status, body = await client.get("/f1", **{"If-Modified-Since": stamp})
        assert (status, body) == (304, b"")
        status, body = await client.get("/f2")
        assert (status, body) == (200, (site / "f2").read_bytes())

    run(lab, scenario)


class Stay(BasePolicy):
    """Every request the content-aware chooser declines stays where it is."""

    def _choose(self, selection: Selection, candidates: list[IPv6Address]) -> IPv6Address:
        return selection.local


def test_policy_routes_by_path(
    hub: Hub, tmp_path: Path, site: Path, backends: dict[str, Backend]
) -> None:
    """route_requests: the member's content-aware policy sees each request's first bytes,
    and a request for /m3/ is served by m3, whichever member the client was at."""
    lab = Lab(hub, tmp_path, distribute=False)

    def choose(first: bytes, candidates: Iterable[IPv6Address]) -> IPv6Address | None:
        return MEMBERS["m3"] if first.startswith(b"GET /m3/") else None

    async def scenario(lab: Lab) -> None:
        running = proxies(lab, backends, route_requests=True)
        for server in lab.servers.values():
            server.policy = ContentAwarePolicy(server.view, choose, Stay(server.view))
        client = await Client.connect(lab)
        assert await client.get("/f1") == (200, (site / "f1").read_bytes())
        assert lab.serving(PORT) == ["m1"]
        assert await client.get("/m3/page") == (200, b"routed to m3\n" * 100)
        await until(lambda: lab.serving(PORT) == ["m3"])
        assert running["m3"].requests == 1 and running["m1"].requests == 1
        assert await client.get("/f2") == (200, (site / "f2").read_bytes())
        assert lab.serving(PORT) == ["m3"]  # no one routes /f2 elsewhere
        assert running["m3"].requests == 2 and running["m3"].handoffs_asked == 0

    run(lab, scenario)


def test_what_the_parser_does_not_follow_stays_and_is_relayed(
    hub: Hub, tmp_path: Path, site: Path, backends: dict[str, Backend]
) -> None:
    """A request h11 refuses (a header line without a colon, which http.server lets pass)
    goes to the server as it is, and from then on the connection is relayed as it is where
    it is: never handed off again, though every request should be."""
    lab = Lab(hub, tmp_path, distribute=False)

    async def scenario(lab: Lab) -> None:
        running = proxies(lab, backends, handoff_every=1)
        for server in lab.servers.values():
            server.policy = RoundRobinPolicy(server.view)
        client = await Client.connect(lab)
        assert await client.get("/f1") == (200, (site / "f1").read_bytes())
        client.expect("GET", "/f2")
        client.writer.write(b"GET /f2 HTTP/1.1\r\nHost: s\r\nno colon here\r\n\r\n")  # type: ignore[attr-defined]
        head, body = await client.response()
        assert (head.status_code, body) == (200, (site / "f2").read_bytes())
        for index in (3, 4):
            assert await client.get(f"/f{index}") == (200, (site / f"f{index}").read_bytes())
        assert [p.opaque for p in running.values()] == [1, 0, 0]
        assert sum(p.handoffs_asked for p in running.values()) == 0
        assert lab.serving(PORT) == ["m1"]

    run(lab, scenario)


def test_unreachable_server_is_a_bad_gateway(hub: Hub, tmp_path: Path) -> None:
    lab = Lab(hub, tmp_path, distribute=False)

    async def scenario(lab: Lab) -> None:
        closed = Backend(tmp_path)
        port = closed.server_address[1]
        closed.stop()  # nothing listens there any more
        for server in lab.servers.values():
            start_proxy(server, PORT, ProxySettings(server_port=port))
        client = await Client.connect(lab)
        assert await client.get("/") == (502, b"")
        assert await asyncio.wait_for(client.reader.read(1), 5) == b""  # and closed

    run(lab, scenario)


def test_handoff_in_the_middle_of_an_exchange_is_refused(
    hub: Hub, tmp_path: Path, backends: dict[str, Backend]
) -> None:
    """A handoff the member is asked for (``mip6 ctl handoff``, the contact node's
    distribution) while a response is on its way waits at its freeze for the exchange's end,
    half an attempt (1 s) at most, then fails with the client kept; the response arrives
    whole; asked again between two exchanges, the handoff completes."""
    lab = Lab(hub, tmp_path, distribute=False)
    release = threading.Event()

    async def held_back(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
        await writer.drain()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        writer.write(b"56789")
        await writer.drain()
        await reader.read()  # until the proxy closes its side
        writer.close()

    async def scenario(lab: Lab) -> None:
        slow = await asyncio.start_server(held_back, "::1", 0)
        port = slow.sockets[0].getsockname()[1]
        for server in lab.servers.values():
            start_proxy(server, PORT, ProxySettings(server_port=port))
        m1 = lab.servers["m1"]
        client = await Client.connect(lab)
        client.send("GET", "/slow")
        await until(lambda: m1.connections and not m1.connections[0].movable)
        with pytest.raises(HandoffFailed):
            await m1.handoff(CLIENT, MEMBERS["m2"])
        assert m1.member.counters["handoff_not_movable"] == 1
        release.set()
        head, body = await client.response()
        assert (head.status_code, body) == (200, b"0123456789")
        await until(lambda: m1.connections[0].movable)
        await m1.handoff(CLIENT, MEMBERS["m2"])
        assert lab.serving(PORT) == ["m2"]
        slow.close()

    run(lab, scenario)


@pytest.mark.parametrize("held_s", [0.2, 1.5])
def test_handoff_prepared_before_an_exchange_waits_for_its_end(
    hub: Hub, tmp_path: Path, held_s: float
) -> None:
    """A handoff begun between two exchanges (movable) whose acceptor is ready once the next
    exchange has begun: the freeze waits for that exchange's end, at most half an attempt
    (the lab's attempt_timeout is 2 s). Ending within it (0.2 s), the handoff then completes;
    not (1.5 s), it ends with the client kept, the acceptor told, no member blamed. The
    response arrives whole either way."""
    lab = Lab(hub, tmp_path, distribute=False)
    release = threading.Event()

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            await serve(reader, writer)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            if head.startswith(b"GET /slow"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
                await writer.drain()
                await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
                writer.write(b"56789")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async def scenario(lab: Lab) -> None:
        server = await asyncio.start_server(backend, "::1", 0)
        port = server.sockets[0].getsockname()[1]
        for member in lab.servers.values():
            start_proxy(member, PORT, ProxySettings(server_port=port))
        m1 = lab.servers["m1"]
        client = await Client.connect(lab)
        assert await client.get("/fast") == (200, b"ok")
        asked = asyncio.ensure_future(m1.handoff(CLIENT, MEMBERS["m2"]))
        client.send("GET", "/slow")  # its head reaches m1 before m2's PREPARED does
        await until(lambda: m1.member.counters.get("handoff_waited_movable", 0) == 1)
        loop = asyncio.get_running_loop()
        loop.call_later(held_s, release.set)
        head, body = await client.response()
        assert (head.status_code, body) == (200, b"0123456789")
        if held_s < 1.0:
            await asyncio.wait_for(asked, 5)
            assert lab.serving(PORT) == ["m2"]
            assert await client.get("/fast") == (200, b"ok")
        else:
            with pytest.raises(HandoffFailed):
                await asyncio.wait_for(asked, 5)
            assert m1.member.counters["handoff_not_movable"] == 1
            assert lab.serving(PORT) == ["m1"]
            assert await client.get("/fast") == (200, b"ok")
            assert not m1.policy._failed  # type: ignore[attr-defined]  # m2 not blamed

            # the acceptor was told and let its preparation go at once (its own wait for
            # the INIT is longer than the test has run)
            def m2_acceptor() -> list[str]:
                rows = lab.servers["m2"].member.describe("handoffs", loop.time())["rows"]
                return [row["state"] for row in rows if row["side"] == "acceptor"]

            await until(lambda: m2_acceptor() == ["finished"])
        server.close()

    run(lab, scenario)


def test_policy_choosing_by_itself_sees_the_request(
    hub: Hub, tmp_path: Path, site: Path, backends: dict[str, Backend]
) -> None:
    """With handoff_every the member's policy chooses the next member itself: its selection
    carries the first bytes of the request that is handed on."""
    lab = Lab(hub, tmp_path, distribute=False)
    seen: list[bytes] = []

    def choose(first: bytes, candidates: Iterable[IPv6Address]) -> IPv6Address | None:
        seen.append(first)
        return None  # the fallback picks

    async def scenario(lab: Lab) -> None:
        proxies(lab, backends, handoff_every=1)
        for server in lab.servers.values():
            server.policy = ContentAwarePolicy(server.view, choose, RoundRobinPolicy(server.view))
        client = await Client.connect(lab)
        for index in range(4):
            assert await client.get(f"/f{index}") == (200, (site / f"f{index}").read_bytes())
        assert [first.split(b"\r\n")[0] for first in seen] == [
            b"GET /f%d HTTP/1.1" % index for index in (1, 2, 3)
        ]

    run(lab, scenario)


def test_request_bodies_and_chunked_responses_between_handoffs(hub: Hub, tmp_path: Path) -> None:
    """A server of our own answers each POST with its body's sha256 in a chunked response
    (trailers included), after a 100 Continue when asked; bodies sent with Content-Length and
    chunked, each request on another member: every answer names the right digest."""
    lab = Lab(hub, tmp_path, distribute=False)

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server = h11.Connection(h11.SERVER)
        digest = hashlib.sha256()
        while True:
            event = server.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(1 << 16)
                if not data:
                    return
                server.receive_data(data)
            elif isinstance(event, h11.Request):
                digest = hashlib.sha256()
                if (b"expect", b"100-continue") in list(event.headers):
                    interim = h11.InformationalResponse(status_code=100, headers=[])
                    writer.write(server.send(interim))
            elif isinstance(event, h11.Data):
                digest.update(event.data)
            elif isinstance(event, h11.EndOfMessage):
                answer = digest.hexdigest().encode()
                head = h11.Response(status_code=200, headers=[(b"transfer-encoding", b"chunked")])
                out = server.send(head)
                for piece in (answer[:10], answer[10:]):
                    out += server.send(h11.Data(data=piece))
                out += server.send(h11.EndOfMessage(headers=[(b"x-digest", b"sha256")]))
                writer.write(out)
                await writer.drain()
                server.start_next_cycle()

    async def scenario(lab: Lab) -> None:
        listener = await asyncio.start_server(backend, "::1", 0)
        port = listener.sockets[0].getsockname()[1]
        running = {
            name: start_proxy(server, PORT, ProxySettings(server_port=port, handoff_every=1))
            for name, server in lab.servers.items()
        }
        for server in lab.servers.values():
            server.policy = RoundRobinPolicy(server.view)
        client = await Client.connect(lab)
        for index in range(6):
            body = os.urandom(1000 * (index + 1) ** 3)
            if index % 2:
                headers = [("Content-Length", str(len(body))), ("Expect", "100-continue")]
                pieces = [body]
            else:
                headers = [("Transfer-Encoding", "chunked")]
                pieces = [body[start : start + 7000] for start in range(0, len(body), 7000)]
            request = h11.Request(method="POST", target="/", headers=[("Host", "s"), *headers])
            data = client.h11.send(request)
            for piece in pieces:
                data += client.h11.send(h11.Data(data=piece))
            data += client.h11.send(h11.EndOfMessage())
            client.writer.write(data)  # type: ignore[attr-defined]
            head, answer = await client.response()
            assert (head.status_code, answer) == (200, hashlib.sha256(body).hexdigest().encode())
        assert sum(p.handoffs_asked for p in running.values()) == 5
        assert sum(p.handoffs_failed for p in running.values()) == 0
        assert sum(p.opaque for p in running.values()) == 0
        listener.close()

    run(lab, scenario)


def test_long_pipeline_through_handoffs(
    hub: Hub, tmp_path: Path, site: Path, backends: dict[str, Backend]
) -> None:
    """120 kB of requests written at once (more than one handoff's state carries: the rest
    waits in the reader and in TCP, and travels there), each handed on: every response
    comes, in order, each request served once."""
    lab = Lab(hub, tmp_path, distribute=False)

    async def scenario(lab: Lab) -> None:
        running = proxies(lab, backends, handoff_every=1)
        for server in lab.servers.values():
            server.policy = RoundRobinPolicy(server.view)
        client = await Client.connect(lab)
        pad = b"p" * 2000
        client.writer.write(  # type: ignore[attr-defined]
            b"".join(
                b"GET /f%d HTTP/1.1\r\nHost: s\r\nX-Pad: %s\r\n\r\n" % (index % FILES, pad)
                for index in range(60)
            )
        )
        for index in range(60):
            client.expect("GET", f"/f{index % FILES}")  # h11 told, nothing sent
            head, body = await client.response()
            assert (head.status_code, body) == (200, (site / f"f{index % FILES}").read_bytes())
        assert sum(p.requests for p in running.values()) == 60
        assert sum(p.handoffs_asked for p in running.values()) >= 10

    run(lab, scenario)


def test_plain_tcp_relays_both_ways_and_stays_once_a_byte_went(hub: Hub, tmp_path: Path) -> None:
    """``http: false``, the seeds' proxy: bytes both ways as they come, to an echo server of
    our own; a handoff asked for before any byte moves the client (the acceptor's proxy then
    relays to its own server), one asked for after a byte went gives up with the client
    kept; the client's end reaches the server, whose close ends the connection."""
    lab = Lab(hub, tmp_path, distribute=False)
    echoes: list[str] = []
    carried: list[str] = []  # the connections that carried a byte

    def echo(name: str) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            echoes.append(name)
            if data := await reader.read(1 << 16):
                carried.append(name)
            while data:
                writer.write(data)
                await writer.drain()
                data = await reader.read(1 << 16)
            writer.close()

        return serve

    async def scenario(lab: Lab) -> None:
        listeners = []
        for name, member in lab.servers.items():
            listener = await asyncio.start_server(echo(name), "::1", 0)
            listeners.append(listener)
            port = listener.sockets[0].getsockname()[1]
            start_proxy(member, PORT, ProxySettings(server_port=port, http=False))
        reader, writer = await lab.connect(PORT)
        m1, m2 = lab.servers["m1"], lab.servers["m2"]
        await until(lambda: m1.connections and m1.connections[0].movable)
        await m1.handoff(CLIENT, MEMBERS["m2"])  # nothing relayed yet
        assert lab.serving(PORT) == ["m2"]
        payload = os.urandom(300_000)
        writer.write(payload)
        echoed = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
        assert echoed == payload
        with pytest.raises(HandoffFailed):
            await m2.handoff(CLIENT, MEMBERS["m3"])
        assert lab.serving(PORT) == ["m2"]
        writer.close()  # our FIN: the echo server closes, and so does the proxy
        assert await asyncio.wait_for(reader.read(), 10) == b""
        # each member connected to its own server (then each opened a spare as the client
        # left it); only m2's carried anything
        assert echoes[:2] == ["m1", "m2"] and carried == ["m2"]
        for listener in listeners:
            listener.close()

    run(lab, scenario)


def test_request_the_server_dropped_at_its_idle_timeout_goes_again(
    hub: Hub, tmp_path: Path
) -> None:
    """A server that closes a kept-alive connection as the next request reaches it (an idle
    timeout firing) answers nothing: a GET goes again on a new connection and is answered;
    a POST is not sent twice: the client gets 502 and the connection closes."""
    lab = Lab(hub, tmp_path, distribute=False)
    connections: list[int] = []

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        with contextlib.suppress(asyncio.IncompleteReadError):
            for served in range(2):
                head = await reader.readuntil(b"\r\n\r\n")
                if served == 1:
                    break  # the idle timeout: closed, the request unanswered
                body = b"answer %d" % len(connections)
                length = (
                    int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                    if b"Content-Length: " in head
                    else 0
                )
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        writer.close()

    async def scenario(lab: Lab) -> None:
        listener = await asyncio.start_server(backend, "::1", 0)
        port = listener.sockets[0].getsockname()[1]
        running = {
            name: start_proxy(server, PORT, ProxySettings(server_port=port))
            for name, server in lab.servers.items()
        }
        client = await Client.connect(lab)
        assert await client.get("/a") == (200, b"answer 1")
        assert await client.get("/b") == (200, b"answer 2")  # sent again, on connection 2
        assert running["m1"].retried == 1
        client.send("POST", "/c", **{"Content-Length": "0"})
        head, _ = await client.response()
        assert head.status_code == 502 and running["m1"].retried == 1
        assert await asyncio.wait_for(client.reader.read(1), 5) == b""
        listener.close()

    run(lab, scenario)


class Recorder:
    """A server on ::1 that answers every request ``200`` and records, per connection it
    accepted, when it accepted it and the ``X-Client`` of each request it carried;
    ``idle_close``: it closes a connection that sent nothing for that many seconds."""

    def __init__(self, idle_close: float | None = None) -> None:
        self.idle_close = idle_close
        self.accepted: list[float] = []  # loop time of each connection's accept
        self.clients: list[list[bytes]] = []  # per connection, the X-Client of each request
        self.ended: list[bool] = []  # per connection, whether it has ended
        self.port = 0
        self._listener: asyncio.Server | None = None

    async def start(self) -> None:
        self._listener = await asyncio.start_server(self._serve, "::1", 0)
        self.port = self._listener.sockets[0].getsockname()[1]

    def stop(self) -> None:
        assert self._listener is not None
        self._listener.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.accepted)
        self.accepted.append(asyncio.get_running_loop().time())
        self.clients.append([])
        self.ended.append(False)
        try:
            first = reader.readuntil(b"\r\n\r\n")
            head = await asyncio.wait_for(first, self.idle_close)
            while True:
                client = head.split(b"X-Client: ")[1].split(b"\r\n")[0]
                self.clients[index].append(client)
                body = b"served %s" % client
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            self.ended[index] = True
            writer.close()


def test_new_client_takes_a_spare_opened_ahead_and_no_server_connection_serves_two_clients(
    hub: Hub, tmp_path: Path
) -> None:
    """Once a client has come and gone, the proxy holds a connection to its server opened
    ahead; the next new client's first request goes over it (the server accepted it before
    that client connected), and every connection to the server carries one client's requests
    only (a spare is never handed to a second client)."""
    lab = Lab(hub, tmp_path, distribute=False)

    async def scenario(lab: Lab) -> None:
        recorder = Recorder()
        await recorder.start()
        running = {
            name: start_proxy(server, PORT, ProxySettings(server_port=recorder.port))
            for name, server in lab.servers.items()
        }
        loop = asyncio.get_running_loop()
        for number in range(1, 5):
            if number > 1:  # the first client finds no spare: one opens once it has gone
                await until(lambda: len(recorder.accepted) > sum(map(bool, recorder.clients)))
            connected = loop.time()
            client = await Client.connect(lab)
            for _ in range(2):
                status, body = await client.get("/", **{"X-Client": str(number)})
                assert (status, body) == (200, b"served %d" % number)
            (serving,) = [
                index
                for index, clients in enumerate(recorder.clients)
                if str(number).encode() in clients
            ]
            if number > 1:  # the first client found no spare yet
                assert recorder.accepted[serving] < connected
            client.writer.close()  # type: ignore[attr-defined]
        assert running["m1"].spares.taken == 3
        assert all(len(set(clients)) <= 1 for clients in recorder.clients), recorder.clients
        recorder.stop()

    run(lab, scenario)


def test_spare_unused_expires_and_one_the_server_closed_is_not_given_out(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spare nobody took is closed after its lifetime and not replaced (an idle member
    holds no connection to its server); a spare the server closed (its timeout for a
    connection that sends nothing) is never given to a client: the client's request goes
    over a connection of its own and is answered."""
    monkeypatch.setattr("mip6.apps.proxy.SPARE_LIFETIME", 0.5)
    lab = Lab(hub, tmp_path, distribute=False)

    async def scenario(lab: Lab) -> None:
        recorder = Recorder()
        await recorder.start()
        proxy = start_proxy(lab.servers["m1"], PORT, ProxySettings(server_port=recorder.port))
        client = await Client.connect(lab)
        assert await client.get("/", **{"X-Client": "1"}) == (200, b"served 1")
        client.writer.close()  # type: ignore[attr-defined]
        await until(lambda: len(recorder.accepted) == 2)  # the spare
        await until(lambda: recorder.ended[1])  # its lifetime over: closed by the proxy
        await asyncio.sleep(0.3)
        assert len(recorder.accepted) == 2 and proxy.spares.taken == 0  # and not replaced
        recorder.stop()

        closing = Recorder(idle_close=0.1)
        await closing.start()
        proxy = start_proxy(lab.servers["m1"], PORT + 1, ProxySettings(server_port=closing.port))
        reader, writer = await lab.connect(PORT + 1)
        client = Client(reader, writer)
        assert await client.get("/", **{"X-Client": "2"}) == (200, b"served 2")
        writer.close()
        await until(lambda: len(closing.accepted) == 2 and closing.ended[1])  # closed by it
        reader, writer = await lab.connect(PORT + 1)
        client = Client(reader, writer)
        assert await client.get("/", **{"X-Client": "3"}) == (200, b"served 3")
        assert proxy.spares.taken == 0 and proxy.bad_gateway == 0
        assert closing.clients[2:] == [[b"3"]]
        closing.stop()

    run(lab, scenario)


class _Script:
    """A server's side for Proxy._response: each read returns the next (delay, bytes)."""

    def __init__(self, *steps: tuple[float, bytes]) -> None:
        self.steps = list(steps)
        self.sent_at: list[float] = []  # when each read's bytes came

    async def read(self) -> bytes:
        # as a StreamReader's: a read cancelled while it waits has taken nothing
        await asyncio.sleep(self.steps[0][0])
        self.sent_at.append(asyncio.get_running_loop().time())
        return self.steps.pop(0)[1]


class _Recorded:
    """A client connection's writer recording its writes and drains, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes, float]] = []
        self.writer = self

    def write(self, data: bytes) -> None:
        self.events.append(("write", data, asyncio.get_running_loop().time()))

    async def drain(self) -> None:
        self.events.append(("drain", b"", asyncio.get_running_loop().time()))


HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
BODY = os.urandom(5000)


def _relay(*steps: tuple[float, bytes]) -> tuple[bool | None, _Recorded, _Script]:
    async def main() -> tuple[bool | None, _Recorded, _Script]:
        proxy = Proxy(None, ProxySettings(server_port=8000))  # type: ignore[arg-type]
        conn, backend = _Recorded(), _Script(*steps)
        keep_alive = await proxy._response(conn, backend, b"GET")  # type: ignore[arg-type]
        return keep_alive, conn, backend

    return asyncio.run(main())


def test_a_head_read_alone_goes_out_with_the_first_bytes_of_its_body() -> None:
    """python's http.server writes a head and its body apart: the proxy hands both to the
    client's TCP in one step (one segment, not a head alone and then the body); a first read
    longer than a head goes at once."""
    keep_alive, conn, _ = _relay((0, HEAD), (0, BODY[:3000]), (0, BODY[3000:]))
    assert keep_alive is True
    kinds = [(kind, len(data)) for kind, data, _ in conn.events]
    assert kinds == [
        ("write", len(HEAD)),
        ("write", 3000),
        ("drain", 0),
        ("write", 2000),
        ("drain", 0),
    ]
    keep_alive, conn, _ = _relay((0, HEAD + BODY[:2000]), (0, BODY[2000:]))
    assert [kind for kind, _, _ in conn.events] == ["write", "drain", "write", "drain"]
    assert b"".join(data for _, data, _ in conn.events) == HEAD + BODY


def test_a_head_whose_body_is_late_is_held_no_longer_than_the_cork_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that takes its time over the body after the head: the head goes alone after
    CORK_WAIT, long before the body, and the response is relayed whole."""
    monkeypatch.setattr("mip6.apps.proxy.CORK_WAIT", 0.05)
    keep_alive, conn, backend = _relay((0, HEAD), (0.5, BODY))
    assert keep_alive is True
    (head_at,) = [at for kind, data, at in conn.events if data == HEAD]
    head_read_at, body_read_at = backend.sent_at
    assert 0.04 < head_at - head_read_at < 0.4 and head_at < body_read_at
    assert b"".join(data for _, data, _ in conn.events) == HEAD + BODY


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's")
def test_what_the_server_answers_a_request_is_acknowledged_as_it_arrives() -> None:
    """A request written within the delayed-ACK timeout of the last response read puts Linux's
    TCP in its interactive (pingpong) mode: the ACK of the next response's head would wait for
    a piggyback, and a server writing head and body apart (python's http.server, Nagle) would
    hold the body until then. After each request the proxy's connection is in quick-ACK
    mode (``getsockopt(TCP_QUICKACK)`` is 1; without it 0 from the second request on)."""

    async def main() -> list[int]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await reader.readline():
                writer.write(b"answer\n")

        server = await asyncio.start_server(answer, "::1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("::1", port)
        backend = _Backend(reader, writer)
        modes = []
        for _ in range(4):
            backend.write(b"request\n")
            modes.append(
                writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK)
            )
            assert await backend.read() == b"answer\n"
        backend.close()
        server.close()
        return modes

    assert asyncio.run(main()) == [1, 1, 1, 1]
