"""The proxy's relay in C (daemon_fast.h, "the proxy's relay"; mip6.runtime.fast.FastRelays):
HTTP/1.1 exchanges between a connection of the daemon's TCP host and a socket to a server,
framed by httptools' llhttp as mip6.apps.http_boundary frames them, one exchange at a time;
anything else stops the relay where Python can go on.

The harness is test_fast_host's (a member's stack carried in C, a client stack beside it) with
the server's socket one end of a stream socket pair; the test plays the server on the other.
The framing is cross-checked against the Python tracker (MessageTracker) on random exchanges.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from mip6.apps.http_boundary import Kind, MessageTracker, Unsupported
from tests.runtime.test_fast_host import Lab, connect

fast = pytest.importorskip("mip6.runtime.fast", reason="the fast path is not built")
lib = fast.lib

GET = b"GET /%d HTTP/1.1\r\nHost: k\r\n\r\n"


class RelayLab:
    def __init__(self) -> None:
        self.lab = Lab()
        relays = self.lab.host.relays
        assert relays is not None, "httptools' llhttp could not be run from C"
        self.relays = relays
        self.client, self.server = connect(self.lab)
        self.proxy_end, self.origin = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.proxy_end.setblocking(False)
        self.origin.setblocking(False)
        self.events = 0
        self.index: int | None = None

    def start(self, held: bytes = b"") -> int:
        index = self.relays.start(self.server, self.proxy_end.fileno(), held, self._event)
        assert index is not None
        self.index = index
        return index

    def _event(self, index: int) -> None:
        assert index == self.index
        self.events += 1

    def state(self) -> fast.RelayState:
        assert self.index is not None
        return self.relays.state(self.index)

    def run(self) -> None:
        for _ in range(4):
            self.lab.run()
            self.relays.ready()
            time.sleep(0.0002)  # timers come due in real time

    def send(self, data: bytes) -> None:
        """``data`` from the client, as its window takes it."""
        sent = 0
        deadline = time.monotonic() + 5
        while sent < len(data) and time.monotonic() < deadline:
            sent += self.client.send(data[sent:])
            self.lab.client._mark(self.client)
            self.run()

    def until(self, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 5
        while not done() and time.monotonic() < deadline:
            self.run()

    def until_stopped(self) -> fast.RelayState:
        self.until(lambda: self.state().reason != lib.DFAST_RELAY_RUNNING)
        return self.state()

    def origin_read(self, expected: int = 0) -> bytes:
        """What reached the server, waiting for ``expected`` bytes at most 5 s."""
        got = bytearray()
        deadline = time.monotonic() + 5
        while True:
            try:
                chunk = self.origin.recv(1 << 20)
            except BlockingIOError:
                if len(got) >= expected or time.monotonic() > deadline:
                    return bytes(got)
                self.run()
                continue
            if not chunk:
                return bytes(got)
            got += chunk

    def answer(self, data: bytes) -> None:
        self.origin.sendall(data)
        self.run()

    def client_read(self, expected: int = 0) -> bytes:
        """What reached the client, waiting for ``expected`` bytes at most 5 s."""
        got = bytearray()
        deadline = time.monotonic() + 5
        while True:
            while chunk := self.client.recv():
                got += chunk
            if len(got) >= expected or time.monotonic() > deadline:
                return bytes(got)
            self.run()

    def close(self) -> None:
        if self.index is not None:
            self.relays.stop(self.index)
        self.proxy_end.close()
        self.origin.close()
        self.lab.close()


@pytest.fixture
def relay() -> Iterator[RelayLab]:
    made = RelayLab()
    yield made
    made.close()


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


def test_keep_alive_exchanges_one_at_a_time(relay: RelayLab) -> None:
    relay.start()
    # two requests pipelined: the second waits for the first's response to end
    relay.send(GET % 1 + GET % 2)
    assert relay.origin_read(len(GET % 1)) == GET % 1
    state = relay.state()
    assert (state.reason, state.idle, state.requests) == (lib.DFAST_RELAY_RUNNING, False, 1)
    relay.answer(ok(b"one" * 1000))
    assert relay.client_read(len(ok(b"one" * 1000))) == ok(b"one" * 1000)
    assert relay.origin_read(len(GET % 2)) == GET % 2
    relay.answer(ok(b"two"))
    assert relay.client_read(len(ok(b"two"))) == ok(b"two")
    state = relay.state()
    assert (state.idle, state.requests, state.responses) == (True, 2, 2)
    assert relay.events == 0
    # the client's close ends it where Python goes on between two exchanges
    relay.client.close()
    relay.lab.client._mark(relay.client)
    state = relay.until_stopped()
    assert (state.reason, state.idle, state.held) == (lib.DFAST_RELAY_CLIENT_CLOSED, True, 0)
    assert relay.events == 1


def test_held_bytes_go_first_and_a_head_in_pieces_waits_whole(relay: RelayLab) -> None:
    relay.start(held=b"GET /a HT")
    relay.run()
    assert relay.origin_read() == b""  # nothing of a head goes before it is whole and checked
    assert relay.state().held == len(b"GET /a HT")
    relay.send(b"TP/1.1\r\nHo")
    assert relay.origin_read() == b""
    relay.send(b"st: k\r\n\r\n")
    assert (
        relay.origin_read(len(b"GET /a HTTP/1.1\r\nHost: k\r\n\r\n"))
        == b"GET /a HTTP/1.1\r\nHost: k\r\n\r\n"
    )


def test_bodies_head_interim_and_chunked(relay: RelayLab) -> None:
    relay.start()
    post = b"POST /p HTTP/1.1\r\nHost: k\r\nContent-Length: 5\r\n\r\nhello"
    relay.send(post)
    assert relay.origin_read(len(post)) == post
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\nTrailer: x\r\n\r\n"
    )
    relay.answer(interim + chunked)
    assert relay.client_read(len(interim + chunked)) == interim + chunked
    # a response to HEAD has no body whatever its Content-Length says
    head = b"HEAD /h HTTP/1.1\r\nHost: k\r\n\r\n"
    relay.send(head + GET % 3)
    assert relay.origin_read(len(head)) == head
    relay.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    assert relay.origin_read(len(GET % 3)) == GET % 3
    relay.answer(b"HTTP/1.1 204 No Content\r\n\r\n")
    state = relay.state()
    assert (state.reason, state.idle, state.responses) == (lib.DFAST_RELAY_RUNNING, True, 3)


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # RFC 9112 3.2
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n",
        b"CONNECT k:443 HTTP/1.1\r\nHost: k:443\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ],
)
def test_a_head_the_tracker_refuses_stops_the_relay_with_it_held(
    relay: RelayLab, request_head: bytes
) -> None:
    tracker = MessageTracker(Kind.REQUEST)
    with pytest.raises(Unsupported):
        tracker.feed(request_head)
    relay.start()
    relay.send(request_head)
    state = relay.until_stopped()
    assert relay.origin_read() == b""
    assert state.reason == lib.DFAST_RELAY_REQUEST
    assert relay.relays.bytes(relay.index, lib.DFAST_RELAY_HELD, state.held) == request_head


def test_a_head_longer_than_max_head_is_pythons(relay: RelayLab) -> None:
    relay.start()
    relay.send(b"GET / HTTP/1.1\r\nHost: k\r\nX: " + b"y" * lib.DFAST_RELAY_MAX_HEAD)
    assert relay.until_stopped().reason == lib.DFAST_RELAY_REQUEST
    assert relay.origin_read() == b""


def test_connection_close_ends_with_the_response_and_drops_what_follows(relay: RelayLab) -> None:
    relay.start()
    relay.send(GET % 1)
    assert relay.origin_read(len(GET % 1)) == GET % 1
    relay.answer(ok(b"last", b"Connection: close\r\n") + b"HTTP/1.1 200 stray")
    assert relay.client_read(len(ok(b"last", b"Connection: close\r\n"))) == ok(
        b"last", b"Connection: close\r\n"
    )
    state = relay.until_stopped()
    assert (state.reason, state.responses) == (lib.DFAST_RELAY_CLOSE, 1)


def test_a_body_until_the_close(relay: RelayLab) -> None:
    relay.start()
    relay.send(GET % 1)
    assert relay.origin_read(len(GET % 1)) == GET % 1
    relay.answer(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
    relay.origin.shutdown(socket.SHUT_WR)
    relay.run()
    assert (
        relay.client_read(len(b"HTTP/1.1 200 OK\r\n\r\nuntil the end"))
        == b"HTTP/1.1 200 OK\r\n\r\nuntil the end"
    )
    state = relay.until_stopped()
    assert (state.reason, state.responses) == (lib.DFAST_RELAY_CLOSE, 1)


def test_server_close_before_an_answer_keeps_the_request_to_send_again(relay: RelayLab) -> None:
    relay.start()
    relay.send(GET % 7)
    assert relay.origin_read(len(GET % 7)) == GET % 7
    relay.origin.shutdown(socket.SHUT_WR)
    state = relay.until_stopped()
    assert (state.reason, state.retry, state.answered) == (
        lib.DFAST_RELAY_SERVER_CLOSED,
        True,
        False,
    )
    assert relay.relays.bytes(relay.index, lib.DFAST_RELAY_RETAINED, state.retained) == GET % 7


def test_a_response_llhttp_refuses_is_left_to_python_unsent(relay: RelayLab) -> None:
    relay.start()
    relay.send(GET % 1)
    assert relay.origin_read(len(GET % 1)) == GET % 1
    relay.answer(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nbody")
    state = relay.until_stopped()
    assert state.reason == lib.DFAST_RELAY_RAW
    assert relay.client_read() == b""
    down = relay.relays.bytes(relay.index, lib.DFAST_RELAY_DOWN, state.down)
    assert down == b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nbody"


def test_a_frozen_connection_is_left_alone_until_it_is_carried_again(relay: RelayLab) -> None:
    relay.start()
    relay.server.freeze(relay.lab.ms)
    relay.lab.host.sync(relay.server)
    relay.answer(b"HTTP/1.1 200 OK\r\n")  # for no request: not read while frozen
    assert relay.state().reason == lib.DFAST_RELAY_RUNNING
    relay.server.thaw(relay.lab.ms)
    relay.lab.host.sync(relay.server)
    state = relay.until_stopped()
    assert state.reason == lib.DFAST_RELAY_CLOSE  # bytes for no request end the connection
    assert relay.client_read() == b""


def _message(rng: random.Random, kind: Kind, method: bytes = b"GET") -> bytes:
    body = rng.randbytes(rng.choice((0, 1, 10, 3000, 70000)))
    if kind is Kind.REQUEST:
        method = rng.choice((b"GET", b"POST", b"HEAD", b"PUT"))
        start = method + b" /%d HTTP/1.1\r\nHost: k\r\n" % rng.randrange(1000)
    else:
        start = b"HTTP/1.1 200 OK\r\n"
        if rng.random() < 0.2:
            start = b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n" + start
    if kind is Kind.RESPONSE and method == b"HEAD":
        return start + b"Content-Length: %d\r\n\r\n" % len(body)
    if rng.random() < 0.3:
        chunks = b""
        at = 0
        while at < len(body):
            size = rng.randrange(1, 5000)
            chunks += b"%x\r\n" % len(body[at : at + size]) + body[at : at + size] + b"\r\n"
            at += size
        return start + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    if kind is Kind.REQUEST and not body and rng.random() < 0.5:
        return start + b"\r\n"
    return start + b"Content-Length: %d\r\n\r\n" % len(body) + body


def _method(request: bytes) -> bytes:
    return request.split(b" ", 1)[0]


def test_random_exchanges_framed_as_the_python_tracker_frames_them(relay: RelayLab) -> None:
    rng = random.Random(1603)
    relay.start()
    requests = [_message(rng, Kind.REQUEST) for _ in range(30)]
    responses = [_message(rng, Kind.RESPONSE, _method(r)) for r in requests]
    # the tracker agrees on every message's end
    for message, kind, method in [(r, Kind.REQUEST, b"") for r in requests] + [
        (r, Kind.RESPONSE, _method(q)) for r, q in zip(responses, requests, strict=True)
    ]:
        tracker = MessageTracker(kind, method or b"GET")
        assert tracker.feed(message + b"NEXT") == len(message) and tracker.ended
    # all the requests at once, in random pieces; each reaches the server only after the
    # response before it ended, whole and alone
    stream = b"".join(requests)
    at = 0
    for index, (request, response) in enumerate(zip(requests, responses, strict=True)):
        while at < len(stream) and rng.random() < 0.7:
            size = rng.randrange(1, 20000)
            relay.send(stream[at : at + size])
            at += size
        if at < len(stream) and at < sum(map(len, requests[: index + 1])):
            relay.send(stream[at : sum(map(len, requests[: index + 1]))])
            at = sum(map(len, requests[: index + 1]))
        got = b""
        for _ in range(200):
            got += relay.origin_read()
            if len(got) >= len(request):
                break
            relay.run()
        assert got == request, index
        got = b""
        sent = 0
        while sent < len(response):
            size = rng.randrange(1, 30000)
            relay.answer(response[sent : sent + size])
            sent += size
            got += relay.client_read()
        for _ in range(200):
            if len(got) >= len(response):
                break
            relay.run()
            got += relay.client_read()
        assert got == response, index
    state = relay.state()
    assert (state.reason, state.idle, state.requests, state.responses) == (
        lib.DFAST_RELAY_RUNNING,
        True,
        30,
        30,
    )
    assert relay.events == 0


def test_random_bytes_from_a_client_never_reach_the_server_unframed(relay: RelayLab) -> None:
    rng = random.Random(77)
    for _ in range(20):
        made = RelayLab()
        try:
            made.start()
            junk = rng.randbytes(rng.randrange(1, 5000))
            made.send(junk)
            state = made.state()
            # refused, or still waiting for a head's end: never forwarded unframed
            assert state.reason in (lib.DFAST_RELAY_RUNNING, lib.DFAST_RELAY_REQUEST)
            assert made.origin_read() == b""
        finally:
            made.close()


def test_not_idle_while_a_response_waits_for_room_in_the_connection(relay: RelayLab) -> None:
    """A response framed whole but not all given to the connection (its send ring full: the
    client reads nothing) is not between two exchanges: a handoff's snapshot would leave the
    rest behind. Asked, the relay tells when it is idle."""
    relay.start()
    relay.send(GET % 1)
    assert relay.origin_read(len(GET % 1)) == GET % 1
    body = bytes(range(256)) * (
        (relay.lab.member.send_capacity + relay.lab.client.receive_capacity + 40_000) // 256
    )
    relay.origin.setblocking(True)
    relay.origin.settimeout(0.001)
    response = ok(body)
    sent = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            sent += relay.origin.send(response[sent:])
        except TimeoutError:
            pass
        relay.run()
        state = relay.state()
        if state.responses == 1:
            break
    assert (state.responses, state.idle) == (1, False)
    assert state.down > 0  # in the relay, waiting for room
    relay.relays.notify_idle(relay.index)
    assert relay.client_read(len(response)) == response
    relay.until(lambda: relay.events > 0)
    state = relay.state()
    assert (state.reason, state.idle, state.down, relay.events) == (
        lib.DFAST_RELAY_RUNNING,
        True,
        0,
        1,
    )


def test_what_the_stack_took_in_python_goes_on_when_the_relay_is_poked(relay: RelayLab) -> None:
    """Segments C punts (its decisions forgotten: a binding changed) reach the connection
    through the stack in Python; the proxy's pipe pokes the relay then (the pump)."""
    relay.start()
    relay.lab.engine.version += 1
    relay.lab.path._check_version()
    punted = len(relay.lab.punted)
    relay.send(GET % 5)
    assert len(relay.lab.punted) > punted
    assert relay.origin_read() == b""  # in the connection, not read by the relay yet
    relay.relays.poke(relay.index)
    assert relay.origin_read(len(GET % 5)) == GET % 5
