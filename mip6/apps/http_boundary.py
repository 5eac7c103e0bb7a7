"""Where each HTTP/1.1 message ends in a byte stream, and no more (sans-I/O): what the proxy
(:mod:`mip6.apps.proxy`) needs to hand a keep-alive client to another member between two
requests (DSERVER.md section 8).

A :class:`MessageTracker` follows one message (a request, or the response to a request whose
method it is told) through the bytes it is fed: :meth:`MessageTracker.feed` says how many of
them belong to the message, and once it has ended, the rest of the stream is the next message's.
Nothing is rewritten: the proxy forwards the bytes as they came.

Heads are parsed by httptools (the binding of llhttp, Node.js's HTTP/1.1 parser, that uvicorn
runs on), fed as they arrive so that a stream it refuses is known at its first bad byte. Its
callbacks carry no position, so the head's end is found here: the first empty line after the
start line (RFC 9112 2.1; llhttp, strict, takes no other line ending than CRLF), and httptools
is fed up to it and no further. Chunked bodies are h11's (chunk sizes, extensions and trailers
are its rules, not ours; h11 is fed the head and the body then). A body of known length is
counted here, never parsed: a file's body is almost all of a proxy's traffic, so its cost per
byte is a subtraction per chunk read.

Why two parsers: the heads are on the latency of every exchange the proxy relays (the request's
before it is forwarded, the response's before its first byte goes to the client). h11 took 20
us for curl's request head hot and 90 to 160 us inside a member daemon (its interpreter's caches
cold between two packets; ``labnet bench proxy``), and building its connection for a response
(it frames a response by the request it answers, which it must be sent first) 27 us more;
httptools takes 1.6 us hot and about 25 us cold. h11 keeps the chunked bodies, whose end it
reports as a position and httptools does not.

Framing (RFC 9112 6.3): a response to HEAD, a 1xx, 204 or 304 has no body; then
Transfer-Encoding: chunked; then Content-Length; a response with neither runs until the server
closes (the connection ends with it). A request has a body only with one of the two headers.
A 1xx interim response (100 Continue, 103 Early Hints) is part of the response's bytes: the
message ends with the final response.

Anything else raises :class:`Unsupported`, and the proxy then relays the connection as opaque
bytes where it is, never handing it off: a head either parser refuses (or longer than
:data:`MAX_HEAD`), a version other than HTTP/1.0 and 1.1, an HTTP/1.1 request without exactly
one Host (RFC 9112 3.2), a request that asks to leave HTTP (CONNECT, an ``Upgrade`` header)
and a 101 response.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import h11
import httptools

MAX_HEAD = 32 * 1024  # bytes of a head (request or status line and headers) we follow
_END_OF_HEAD = b"\r\n\r\n"  # the last header line's CRLF and the empty line's
_VERSIONS = frozenset(("1.0", "1.1"))


class Unsupported(Exception):
    """The stream is not HTTP/1.1 this module follows (``reason`` says why)."""


class Kind(enum.Enum):
    REQUEST = "request"
    RESPONSE = "response"


class Framing(enum.Enum):
    """How the message's body ends (RFC 9112 6.3)."""

    NONE = "none"  # no body: the message ends with its head
    LENGTH = "length"  # Content-Length bytes, counted here
    CHUNKED = "chunked"  # the last chunk and the trailers, parsed by h11
    UNTIL_CLOSE = "until_close"  # the server's close ends it (a response only)


@dataclass(frozen=True, slots=True)
class Head:
    """A parsed head. ``method`` is the request's (a response's: the request's it answers);
    ``target`` a request's; ``status`` a final response's (0 for a request); ``length`` the
    body's bytes when ``framing`` is LENGTH; ``keep_alive``: the message lets the connection
    carry another exchange after it (HTTP/1.1 without ``Connection: close``, HTTP/1.0 with
    ``Connection: keep-alive``; never a body that runs until the close)."""

    method: bytes
    target: bytes
    status: int
    framing: Framing
    length: int
    keep_alive: bool


class _HeadCallbacks:
    """httptools' callbacks for one head: its target, its header lines, and whether it is
    complete."""

    __slots__ = ("complete", "headers", "target")

    def __init__(self) -> None:
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.target += url  # in pieces when the line came in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.complete = True


class MessageTracker:
    """One message of ``kind``; a response's tracker is told the ``method`` of the request it
    answers (a response to HEAD has no body)."""

    def __init__(self, kind: Kind, method: bytes = b"GET") -> None:
        self.kind = kind
        self.method = method
        self.head: Head | None = None
        self.ended = False
        self._heads = bytearray()  # the heads read whole (interim responses' before the final)
        self._remaining = 0  # LENGTH: body bytes still to come
        self._h11: h11.Connection | None = None  # CHUNKED: the body's parser
        self._new_head()

    def feed(self, data: bytes) -> int:
        """How many bytes at the start of ``data`` belong to this message: all of them until
        it ends; after that (``ended``), the rest is the next message's. Raises
        :class:`Unsupported` (see the module docstring). Not after the message ended."""
        if self.ended:
            raise ValueError("the message has ended: track the next one")
        if self.head is None:
            rest = self._feed_head(data)
            if rest is None:
                return len(data)
            return len(data) - len(rest) + self._feed_body(rest, first=True)
        return self._feed_body(data, first=False)

    def close(self) -> None:
        """The stream ended (the peer closed). Ends a body that runs until the close; raises
        :class:`Unsupported` for a message cut short."""
        if self.head is not None and self.head.framing is Framing.UNTIL_CLOSE:
            self.ended = True
        elif not self.ended:
            raise Unsupported(f"the {self.kind.value} was cut short by the close")

    # -- the head ------------------------------------------------------------------------------

    def _new_head(self) -> None:
        self._buffer = bytearray()  # this head's bytes so far
        self._start = -1  # where its start line begins (llhttp skips empty lines before it)
        self._callbacks = _HeadCallbacks()
        if self.kind is Kind.REQUEST:
            self._parser = httptools.HttpRequestParser(self._callbacks)
        else:
            self._parser = httptools.HttpResponseParser(self._callbacks)

    def _feed_head(self, data: bytes) -> bytes | None:
        """Feeds httptools up to the head's end; the bytes after the head once it is complete,
        else None."""
        while True:
            buffer = self._buffer
            before = len(buffer)
            buffer += data
            end = self._end_of_head(before)
            if end < 0:
                if len(self._heads) + len(buffer) > MAX_HEAD:
                    raise Unsupported(f"a head longer than {MAX_HEAD} bytes")
                self._parse(data)  # all of it is head: a bad byte is known now
                return None
            used = end - before
            self._parse(data[:used])
            if not self._callbacks.complete:
                raise Unsupported("the head did not end at its empty line")
            self._heads += buffer[:end]
            self._buffer = bytearray()  # it held the read whole: the body's bytes too
            rest = data[used:]
            if self.kind is Kind.RESPONSE:
                status = self._parser.get_status_code()
                if status == 101:
                    raise Unsupported("101 Switching Protocols")
                if 100 <= status < 200:
                    self._new_head()  # an interim response: the final one follows
                    data = rest
                    continue
                self.head = self._response_head(status)
            else:
                self.head = self._request_head()
            return bytes(rest)

    def _end_of_head(self, before: int) -> int:
        """Where the head in the buffer ends (just after its empty line), -1 if not yet;
        ``before``: bytes of the buffer searched already (less an end they may straddle)."""
        buffer = self._buffer
        if self._start < 0:
            skipped = len(buffer) - len(buffer.lstrip(b"\r\n"))
            if skipped == len(buffer):
                return -1  # empty lines only, so far
            self._start = skipped
        found = buffer.find(_END_OF_HEAD, max(self._start, before - len(_END_OF_HEAD) + 1))
        return found + len(_END_OF_HEAD) if found >= 0 else -1

    def _parse(self, data: bytes | bytearray) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as error:  # CONNECT, or Connection: upgrade
            raise Unsupported("the request asks to leave HTTP") from error
        except httptools.HttpParserError as error:
            raise Unsupported(f"httptools: {error}") from error

    def _version(self) -> str:
        version = self._parser.get_http_version()
        if version not in _VERSIONS:
            raise Unsupported(f"HTTP/{version}")
        return version

    def _request_head(self) -> Head:
        version = self._version()
        lines = self._callbacks.headers
        headers = _headers(lines)
        method = self._parser.get_method()
        if method == b"CONNECT" or b"upgrade" in headers:
            raise Unsupported("the request asks to leave HTTP")
        hosts = sum(1 for name, _ in lines if name == b"host")
        if hosts > 1 or (version == "1.1" and hosts != 1):
            # RFC 9112 3.2: such a request is answered 400 (the server's to say, as it is)
            raise Unsupported(f"{hosts} Host header fields")
        framing, length = _body_framing(headers)
        return Head(
            method=method,
            target=self._callbacks.target,
            status=0,
            framing=framing,
            length=length,
            keep_alive=_keep_alive(version, headers),
        )

    def _response_head(self, status: int) -> Head:
        version = self._version()
        headers = _headers(self._callbacks.headers)
        if self.method == b"HEAD" or status in (204, 304):
            framing, length = Framing.NONE, 0
        else:
            framing, length = _body_framing(headers)
            if framing is Framing.NONE:
                framing = Framing.UNTIL_CLOSE
        keep_alive = framing is not Framing.UNTIL_CLOSE and _keep_alive(version, headers)
        return Head(
            method=self.method,
            target=b"",
            status=status,
            framing=framing,
            length=length,
            keep_alive=keep_alive,
        )

    # -- the body ------------------------------------------------------------------------------

    def _feed_body(self, data: bytes, *, first: bool) -> int:
        head = self.head
        assert head is not None
        if head.framing is Framing.NONE:
            self.ended = True
            return 0
        if head.framing is Framing.UNTIL_CLOSE:
            return len(data)
        if head.framing is Framing.LENGTH:
            if first:  # the head's last read: the count starts here
                self._remaining = head.length
            taken = min(self._remaining, len(data))
            self._remaining -= taken
            self.ended = self._remaining == 0
            return taken
        try:
            if first:
                self._h11 = self._chunked_parser()
            assert self._h11 is not None
            if data:  # h11 takes b"" for the peer's close
                self._h11.receive_data(data)
            while True:
                event = self._h11.next_event()
                if event is h11.NEED_DATA:
                    return len(data)
                if isinstance(event, h11.EndOfMessage):
                    self.ended = True
                    return len(data) - len(self._h11.trailing_data[0])
        except h11.ProtocolError as error:
            raise Unsupported(f"h11: {error}") from error

    def _chunked_parser(self) -> h11.Connection:
        """h11, past the heads (it reads them again: it frames the body by them)."""
        if self.kind is Kind.REQUEST:
            parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        else:
            parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
            # h11 frames a response by the request it answers: only the method matters here
            parser.send(h11.Request(method=self.method, target=b"/", headers=[(b"host", b"-")]))
            parser.send(h11.EndOfMessage())
        parser.receive_data(bytes(self._heads))
        while True:
            event = parser.next_event()
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Request | h11.Response):
                return parser
            raise Unsupported(f"h11 read the head as {event!r}")


def _headers(headers: Sequence[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    """Names (lowercased) to their values, comma-separated lists split."""
    out: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        out.setdefault(name, []).extend(
            token.strip().lower() for token in value.split(b",") if token.strip()
        )
    return out


def _body_framing(headers: dict[bytes, list[bytes]]) -> tuple[Framing, int]:
    # llhttp has checked Content-Length (one number, never beside Transfer-Encoding); h11
    # refuses a Transfer-Encoding other than chunked alone when it reads the body
    if b"transfer-encoding" in headers:
        return Framing.CHUNKED, 0
    if b"content-length" in headers:
        return Framing.LENGTH, int(headers[b"content-length"][0])
    return Framing.NONE, 0


def _keep_alive(version: str, headers: dict[bytes, list[bytes]]) -> bool:
    tokens = headers.get(b"connection", [])
    if b"close" in tokens:
        return False
    return version == "1.1" or b"keep-alive" in tokens
