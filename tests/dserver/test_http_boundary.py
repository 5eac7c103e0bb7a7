"""The proxy's HTTP/1.1 boundary tracker (mip6.apps.http_boundary), sans-I/O: bytes in, where
each message ends out, whatever the chunking of the stream."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mip6.apps.http_boundary import Framing, Kind, MessageTracker, Unsupported

GET = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED_POST = (
    b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nTrailer: t\r\n\r\n"
)
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"
CHUNKED_OK = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"


def messages(kind: Kind, stream: bytes, cuts: list[int], method: bytes = b"GET") -> list[bytes]:
    """The stream cut into reads at ``cuts``, fed message after message: each message's bytes."""
    reads = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    found, current = [], b""
    tracker = MessageTracker(kind, method)
    for data in reads:
        while data:
            taken = tracker.feed(data)
            current += data[:taken]
            data = data[taken:]
            if tracker.ended:
                found.append(current)
                current = b""
                tracker = MessageTracker(kind, method)
    assert current == b"", "a message left unfinished"
    return found


def test_request_without_body_ends_with_its_head() -> None:
    tracker = MessageTracker(Kind.REQUEST)
    assert tracker.feed(GET + b"GET /b") == len(GET)
    assert tracker.ended and tracker.head is not None
    assert (tracker.head.method, tracker.head.target) == (b"GET", b"/a")
    assert tracker.head.framing is Framing.NONE and tracker.head.keep_alive


def test_head_in_pieces_ends_only_when_complete() -> None:
    tracker = MessageTracker(Kind.REQUEST)
    for byte in range(len(GET) - 1):
        assert tracker.feed(GET[byte : byte + 1]) == 1
        assert tracker.head is None and not tracker.ended
    assert tracker.feed(GET[-1:]) == 1 and tracker.ended


@given(st.lists(st.integers(1, 400), max_size=12))
def test_pipelined_requests_split_at_their_boundaries(raw_cuts: list[int]) -> None:
    stream = GET + POST + CHUNKED_POST + GET
    cuts = sorted({cut % len(stream) for cut in raw_cuts} - {0})
    assert messages(Kind.REQUEST, stream, cuts) == [GET, POST, CHUNKED_POST, GET]


@given(st.lists(st.integers(1, 200), max_size=8))
def test_responses_split_at_their_boundaries(raw_cuts: list[int]) -> None:
    stream = OK + CHUNKED_OK + OK
    cuts = sorted({cut % len(stream) for cut in raw_cuts} - {0})
    assert messages(Kind.RESPONSE, stream, cuts) == [OK, CHUNKED_OK, OK]


def test_content_length_body_is_counted_never_parsed() -> None:
    tracker = MessageTracker(Kind.RESPONSE)
    parsed: list[bytes] = []
    parse = tracker._parse
    tracker._parse = lambda data: (parsed.append(bytes(data)), parse(data))[1]  # type: ignore[method-assign]
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"
    assert tracker.feed(head + b"x" * 100) == len(head) + 100
    for _ in range(99):
        assert tracker.feed(b"x" * 10_000) == 10_000
    assert tracker.feed(b"x" * 9_901) == 9_900 and tracker.ended
    assert b"".join(parsed) == head  # httptools saw the head alone
    assert tracker._h11 is None  # and h11 nothing


def test_a_chunked_body_after_interim_responses_is_h11s() -> None:
    stream = b"HTTP/1.1 100 Continue\r\n\r\n" + CHUNKED_OK
    for cuts in ([], [5], [26], [27, 60], list(range(1, len(stream)))):
        assert messages(Kind.RESPONSE, stream + OK, cuts) == [stream, OK]


def test_empty_lines_before_the_request_line_are_skipped() -> None:
    tracker = MessageTracker(Kind.REQUEST)
    assert tracker.feed(b"\r\n\r\n" + GET + b"GET") == 4 + len(GET) and tracker.ended
    assert tracker.head is not None and tracker.head.target == b"/a"


def test_a_bad_head_is_refused_at_its_first_bad_byte_not_at_its_end() -> None:
    # a head that never ends in CRLF CRLF must not leave the proxy waiting for more
    tracker = MessageTracker(Kind.REQUEST)
    with pytest.raises(Unsupported):
        tracker.feed(b"GET / HTTP/1.1\nHost: x\n")


def test_head_response_has_no_body_whatever_its_content_length() -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
    tracker = MessageTracker(Kind.RESPONSE, b"HEAD")
    assert tracker.feed(response + OK) == len(response) and tracker.ended
    assert tracker.head is not None and tracker.head.keep_alive


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_have_no_body(status: int) -> None:
    response = b"HTTP/1.1 %d X\r\nContent-Length: 12\r\n\r\n" % status
    tracker = MessageTracker(Kind.RESPONSE)
    assert tracker.feed(response + OK) == len(response) and tracker.ended


def test_interim_responses_belong_to_the_final_one() -> None:
    stream = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n" + OK
    assert messages(Kind.RESPONSE, stream, [10, 30, 70]) == [stream]


def test_response_without_length_runs_until_the_close() -> None:
    tracker = MessageTracker(Kind.RESPONSE)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
    assert tracker.feed(head + b"abc") == len(head) + 3
    assert tracker.feed(b"more") == 4 and not tracker.ended
    assert tracker.head is not None and not tracker.head.keep_alive
    tracker.close()
    assert tracker.ended


def test_content_length_zero_ends_at_once_and_keeps_alive() -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    tracker = MessageTracker(Kind.RESPONSE)
    assert tracker.feed(response + OK) == len(response) and tracker.ended
    assert tracker.head is not None and tracker.head.keep_alive


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"1.1", b"", True),
        (b"1.1", b"Connection: close\r\n", False),
        (b"1.1", b"Connection: Keep-Alive, Close\r\n", False),
        (b"1.0", b"", False),
        (b"1.0", b"Connection: keep-alive\r\n", True),
    ],
)
def test_keep_alive_follows_version_and_connection(
    version: bytes, connection: bytes, keep_alive: bool
) -> None:
    response = b"HTTP/%s 200 OK\r\n%sContent-Length: 0\r\n\r\n" % (version, connection)
    tracker = MessageTracker(Kind.RESPONSE)
    tracker.feed(response)
    assert tracker.head is not None and tracker.head.keep_alive is keep_alive
    request = b"GET / HTTP/%s\r\nHost: x\r\n%s\r\n" % (version, connection)
    tracker = MessageTracker(Kind.REQUEST)
    tracker.feed(request)
    assert tracker.head is not None and tracker.head.keep_alive is keep_alive


@pytest.mark.parametrize(
    "stream",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",  # RFC 9112 3.2: one Host
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",  # bare LF (llhttp's strict mode)
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    ],
)
def test_what_the_parser_does_not_follow_is_unsupported(stream: bytes) -> None:
    with pytest.raises(Unsupported):
        MessageTracker(Kind.REQUEST).feed(stream)


def test_garbage_chunk_size_is_unsupported() -> None:
    tracker = MessageTracker(Kind.RESPONSE)
    tracker.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(Unsupported):
        tracker.feed(b"zz\r\nhello\r\n")


def test_switching_protocols_is_unsupported() -> None:
    with pytest.raises(Unsupported):
        MessageTracker(Kind.RESPONSE).feed(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")


def test_overlong_head_is_unsupported() -> None:
    tracker = MessageTracker(Kind.REQUEST)
    tracker.feed(b"GET / HTTP/1.1\r\nHost: x\r\n")
    with pytest.raises(Unsupported):
        for _ in range(100):
            tracker.feed(b"X-Filler: " + b"a" * 1000 + b"\r\n")


def test_cut_short_by_the_close_is_unsupported() -> None:
    tracker = MessageTracker(Kind.RESPONSE)
    tracker.feed(OK[:-3])
    with pytest.raises(Unsupported):
        tracker.close()


@given(
    st.sampled_from([Kind.REQUEST, Kind.RESPONSE]),
    st.sampled_from([b"", GET[:20], OK[:30], b"HTTP/1.1 100 Continue\r\n\r\n", CHUNKED_OK[:48]]),
    st.lists(st.binary(max_size=64), max_size=6),
)
def test_any_bytes_are_followed_or_refused_never_crash(
    kind: Kind, prefix: bytes, reads: list[bytes]
) -> None:
    """Fuzz: whatever follows a plausible start, feed says how much is the message's or raises
    Unsupported; nothing else escapes either parser."""
    tracker = MessageTracker(kind)
    try:
        for data in [prefix, *reads]:
            taken = tracker.feed(data)
            assert 0 <= taken <= len(data)
            if tracker.ended:
                assert tracker.head is not None
                break
            assert taken == len(data)
    except Unsupported:
        pass
