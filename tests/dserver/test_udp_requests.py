"""The lookup codec (strict, round trip exact, faults named with their offset) and the
requester's checks: a wrong answer is never taken, and one request answered by two members
is counted as such (what the distributed server's UDP test looks for)."""

from __future__ import annotations

import random
from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mip6.apps.lookup import Answer, Query, value_of
from mip6.apps.udp_requests import ECHO_SIZE, REMEMBERED, Requester, Service
from mip6.dserver.udp import FlowRepr
from mip6.wire.errors import Malformed, Truncated, WireError

M1, M2 = IPv6Address("2001:db8:10::1"), IPv6Address("2001:db8:20::1")
QUERY_BYTES = bytes.fromhex("0101 0007 09") + b"a.example"

names = st.binary(min_size=1, max_size=255).map(lambda raw: bytes(0x21 + byte % 94 for byte in raw))


def test_query_bytes_parse_to_the_query() -> None:
    query = Query.parse(QUERY_BYTES)
    assert query == Query(request_id=7, name=b"a.example")
    assert query.emit() == QUERY_BYTES


@given(st.integers(0, 0xFFFF), names, st.integers(0, (1 << 64) - 1))
def test_query_and_answer_round_trip(request_id: int, name: bytes, value: int) -> None:
    query = Query(request_id=request_id, name=name)
    assert Query.parse(query.emit()) == query
    answer = Answer(request_id=request_id, value=value, member=M2, name=name)
    assert Answer.parse(answer.emit()) == answer


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_a_wire_error(data: bytes) -> None:
    for parse in (Query.parse, Answer.parse, FlowRepr.parse):
        try:
            parse(data)
        except WireError:
            pass


@pytest.mark.parametrize(
    ("data", "error", "field", "offset"),
    [
        (b"\x01\x01\x00", Truncated, "header", 3),
        (b"\x02" + QUERY_BYTES[1:], Malformed, "version", 0),
        (b"\x01\x02" + QUERY_BYTES[2:], Malformed, "kind", 1),
        (QUERY_BYTES[:4] + b"\x00", Malformed, "name_length", 4),
        (QUERY_BYTES[:-1], Truncated, "name", len(QUERY_BYTES) - 1),
        (QUERY_BYTES + b"x", Malformed, "length", len(QUERY_BYTES)),
        (QUERY_BYTES[:5] + b" " + QUERY_BYTES[6:], Malformed, "name", 5),
    ],
)
def test_malformed_query_names_field_and_offset(
    data: bytes, error: type[WireError], field: str, offset: int
) -> None:
    with pytest.raises(error) as raised:
        Query.parse(data)
    assert raised.value.field == field and raised.value.offset == offset


def test_flow_record_round_trips_and_refuses_port_zero() -> None:
    flow = FlowRepr(client_port=40000, service_port=53)
    assert flow.emit() == bytes.fromhex("9c400035")
    assert FlowRepr.parse(flow.emit()) == flow
    with pytest.raises(Malformed) as raised:
        FlowRepr.parse(bytes.fromhex("00000035"))
    assert raised.value.field == "client_port"


def answer_to(datagram: bytes, member: IPv6Address) -> bytes:
    query = Query.parse(datagram)
    return Answer(
        request_id=query.request_id, value=value_of(query.name), member=member, name=query.name
    ).emit()


def requester(service: Service = Service.LOOKUP) -> Requester:
    return Requester(service, b"c1", random.Random(1), timeout=0.5, retries=2)


def test_answer_from_a_second_member_is_counted_two_members() -> None:
    client = requester()
    request_id, datagram = client.request(0.0)
    assert client.expired(0.5, request_id) == datagram  # retried, the same datagram
    assert client.answer(0.6, answer_to(datagram, M1)) == request_id
    assert client.answer(0.7, answer_to(datagram, M1)) is None
    assert client.answer(0.8, answer_to(datagram, M2)) is None
    assert client.counters == {
        "requests": 1,
        "retried": 1,
        "answered": 1,
        "answered_by.2001:db8:10::1": 1,
        "duplicate": 2,
        "two_members": 1,
    }
    assert client.elapsed_max == pytest.approx(0.6)


def test_wrong_value_or_another_clients_name_is_never_taken() -> None:
    client = requester()
    request_id, datagram = client.request(0.0)
    query = Query.parse(datagram)
    wrong = Answer(request_id=request_id, value=0, member=M1, name=query.name)
    other = Answer(
        request_id=request_id, value=value_of(b"x.example"), member=M1, name=b"x.example"
    )
    assert client.answer(0.1, wrong.emit()) is None
    assert client.answer(0.1, other.emit()) is None
    assert client.answer(0.1, b"garbage") is None
    assert client.counters["wrong"] == 3 and client.outstanding == 1


def test_request_given_up_after_its_retries() -> None:
    client = requester()
    request_id, _ = client.request(0.0)
    assert client.expired(0.5, request_id) is not None
    assert client.expired(1.0, request_id) is not None
    assert client.expired(1.5, request_id) is None
    assert client.counters["failed"] == 1 and client.outstanding == 0


def test_echo_requests_are_the_seeds_128_bytes_and_checked_exactly() -> None:
    client = requester(Service.UDP_ECHO)
    request_id, datagram = client.request(0.0)
    assert len(datagram) == ECHO_SIZE
    assert client.answer(0.1, datagram[:-1] + b"!") is None
    assert client.answer(0.1, datagram) == request_id
    assert client.counters["wrong"] == 1 and "answered_by" not in str(client.counters)


def test_memory_of_answered_requests_is_bounded() -> None:
    client = requester()
    _, first = client.request(0.0)
    client.answer(0.0, answer_to(first, M1))
    for _ in range(REMEMBERED):
        _, datagram = client.request(0.0)
        client.answer(0.0, answer_to(datagram, M1))
    assert len(client._answered) == REMEMBERED
    assert client.answer(1.0, answer_to(first, M2)) is None
    assert client.counters["unknown"] == 1 and "two_members" not in client.counters
