"""Where each HTTP/1.1 message ends in a byte stream, and no more (sans-I/O): what the proxy
(:mod:`mip6.apps.proxy`) needs to hand a keep-alive client to another member between two
requests (DSERVER.md section 8).

A :class:`MessageTracker` follows one message (a request, or the response to a request whose
method it is told) through the bytes it is fed: :meth:`MessageTracker.feed` says how many of
them belong to the message, and once it has ended, the rest of the stream is the next message's.
Nothing is rewritten: the proxy forwards the bytes as they came.

The heads are parsed by h11 (the well-kept sans-I/O HTTP/1.1 library STYLE.md holds up), as are
chunked bodies (chunk sizes, extensions and trailers are h11's rules, not ours). A body of known
length is counted here instead, without handing its bytes to h11: h11 would copy every byte into
its buffer and out as a ``Data`` event, and a file's body is almost all of a proxy's traffic.
So the cost per byte of a Content-Length body is a subtraction per chunk read; a chunked body
costs h11's parsing.

Framing (RFC 9112 6.3): a response to HEAD, a 1xx, 204 or 304 has no body; then
Transfer-Encoding: chunked; then Content-Length; a response with neither runs until the server
closes (the connection ends with it). A request has a body only with one of the two headers.
A 1xx interim response (100 Continue, 103 Early Hints) is part of the response's bytes: the
message ends with the final response.

Anything else raises :class:`Unsupported`, and the proxy then relays the connection as opaque
bytes where it is, never handing it off: a head h11 refuses (or longer than
:data:`MAX_HEAD`), a request that asks to leave HTTP (CONNECT, an ``Upgrade`` header) and a
101 response.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import h11

MAX_HEAD = 32 * 1024  # bytes of a head (request or status line and headers) we follow


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


class MessageTracker:
    """One message of ``kind``; a response's tracker is told the ``method`` of the request it
    answers (a response to HEAD has no body)."""

    def __init__(self, kind: Kind, method: bytes = b"GET") -> None:
        self.kind = kind
        self.method = method
        self.head: Head | None = None
        self.ended = False
        self._fed = 0  # bytes of the head fed to h11 so far
        self._remaining = 0  # LENGTH: body bytes still to come
        if kind is Kind.REQUEST:
            self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        else:
            self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
            # h11 frames a response by the request it answers: only the method matters here
            self._h11.send(h11.Request(method=method, target=b"/", headers=[(b"host", b"-")]))
            self._h11.send(h11.EndOfMessage())

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
            return len(data) - len(rest) + self._feed_body(rest, fed_to_h11=True)
        return self._feed_body(data, fed_to_h11=False)

    def close(self) -> None:
        """The stream ended (the peer closed). Ends a body that runs until the close; raises
        :class:`Unsupported` for a message cut short."""
        if self.head is not None and self.head.framing is Framing.UNTIL_CLOSE:
            self.ended = True
        elif not self.ended:
            raise Unsupported(f"the {self.kind.value} was cut short by the close")

    # -- the head ------------------------------------------------------------------------------

    def _feed_head(self, data: bytes) -> bytes | None:
        """Feeds h11; the bytes after the head once it is complete, else None."""
        self._fed += len(data)
        try:
            self._h11.receive_data(data)
            while True:
                event = self._h11.next_event()
                if event is h11.NEED_DATA:
                    if self._fed > MAX_HEAD:
                        raise Unsupported(f"a head longer than {MAX_HEAD} bytes")
                    return None
                if isinstance(event, h11.InformationalResponse):
                    if event.status_code == 101:
                        raise Unsupported("101 Switching Protocols")
                    continue  # an interim response: the final one follows
                if isinstance(event, h11.Request):
                    self.head = self._request_head(event)
                elif isinstance(event, h11.Response):
                    self.head = self._response_head(event)
                else:
                    raise Unsupported(f"unexpected {type(event).__name__}")
                return bytes(self._h11.trailing_data[0])
        except h11.ProtocolError as error:
            raise Unsupported(f"h11: {error}") from error

    def _request_head(self, event: h11.Request) -> Head:
        headers = _headers(event.headers)
        if event.method == b"CONNECT" or b"upgrade" in headers:
            raise Unsupported("the request asks to leave HTTP")
        framing, length = _body_framing(headers)
        return Head(
            method=event.method,
            target=event.target,
            status=0,
            framing=framing,
            length=length,
            keep_alive=_keep_alive(event.http_version, headers),
        )

    def _response_head(self, event: h11.Response) -> Head:
        headers = _headers(event.headers)
        if self.method == b"HEAD" or event.status_code in (204, 304):
            framing, length = Framing.NONE, 0
        else:
            framing, length = _body_framing(headers)
            if framing is Framing.NONE:
                framing = Framing.UNTIL_CLOSE
        keep_alive = framing is not Framing.UNTIL_CLOSE and _keep_alive(event.http_version, headers)
        return Head(
            method=self.method,
            target=b"",
            status=event.status_code,
            framing=framing,
            length=length,
            keep_alive=keep_alive,
        )

    # -- the body ------------------------------------------------------------------------------

    def _feed_body(self, data: bytes, *, fed_to_h11: bool) -> int:
        head = self.head
        assert head is not None
        if head.framing is Framing.NONE:
            self.ended = True
            return 0
        if head.framing is Framing.UNTIL_CLOSE:
            return len(data)
        if head.framing is Framing.LENGTH:
            if fed_to_h11:  # the head's last read: the count starts here
                self._remaining = head.length
            taken = min(self._remaining, len(data))
            self._remaining -= taken
            self.ended = self._remaining == 0
            return taken
        # chunked: h11 holds ``data`` already when it came with the head
        try:
            if not fed_to_h11:
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


def _headers(headers: Sequence[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    """Names (h11 lowercases them) to their values, comma-separated lists split."""
    out: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        out.setdefault(name, []).extend(
            token.strip().lower() for token in value.split(b",") if token.strip()
        )
    return out


def _body_framing(headers: dict[bytes, list[bytes]]) -> tuple[Framing, int]:
    # h11 has checked both: Transfer-Encoding is chunked alone, Content-Length one number
    if b"transfer-encoding" in headers:
        return Framing.CHUNKED, 0
    if b"content-length" in headers:
        return Framing.LENGTH, int(headers[b"content-length"][0])
    return Framing.NONE, 0


def _keep_alive(version: bytes, headers: dict[bytes, list[bytes]]) -> bool:
    tokens = headers.get(b"connection", [])
    if b"close" in tokens:
        return False
    return version == b"1.1" or b"keep-alive" in tokens
