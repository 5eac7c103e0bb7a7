"""The membership messages (SPEC-dserver 8.1) on the member channel: byte fixtures from the
diagrams in mip6/dserver/messages.py, round trips both ways over every type, every truncation,
mutations and random bytes (nothing but a WireError escapes, and what parses is canonical),
the view's rules and its bounds."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mip6.dserver import messages as m
from mip6.wire.errors import EmitError, Malformed, WireError

from .test_messages import mutations_parse_or_raise, round_trips, truncations_refused

A = IPv6Address("2001:db8:1::1")
B = IPv6Address("2001:db8:1::2")
S = IPv6Address("2001:db8:5::9")

VIEW = m.View(
    number=9,
    next_join_id=6,
    core=(m.MemberEntry(join_id=2, address=A), m.MemberEntry(join_id=4, address=B)),
    snodes=(m.MemberEntry(join_id=5, address=S),),
)
# VIEW_PREPARE by hand: version 1, type 23, transaction 0x0102030405060708, the view above
PREPARE_BYTES = bytes.fromhex(
    "01" "17" "0000" "0102030405060708"
    "0000000000000009" "0000000000000006" "02" "00" "0001"
    "0000000000000002" "20010db8000100000000000000000001"
    "0000000000000004" "20010db8000100000000000000000002"
    "0000000000000005" "20010db8000500000000000000000009"
)  # fmt: skip
HEARTBEAT_BYTES = bytes.fromhex("0114000000000007000000060000000000000009")


def test_view_prepare_fixture_parses_and_emits_byte_for_byte() -> None:
    prepare = m.ViewPrepare(transaction=0x0102030405060708, view=VIEW)
    assert m.parse(PREPARE_BYTES) == prepare
    assert prepare.emit() == PREPARE_BYTES
    assert prepare.view.contact == m.MemberEntry(join_id=2, address=A)


def test_heartbeat_fixture_parses_and_emits_byte_for_byte() -> None:
    heartbeat = m.Heartbeat(sequence=7, echo=6, view_number=9)
    assert m.parse(HEARTBEAT_BYTES) == heartbeat
    assert heartbeat.emit() == HEARTBEAT_BYTES


def test_unknown_join_status_and_leave_reason_kept_as_numbers() -> None:
    answer = m.parse(m.JoinAnswer(status=200, request=1, join_id=0, contact=A).emit())
    assert isinstance(answer, m.JoinAnswer) and answer.status == 200
    assert not isinstance(answer.status, m.JoinStatus)
    leave = m.parse(m.Leave(reason=99, join_id=3, member=B).emit())
    assert isinstance(leave, m.Leave) and leave.reason == 99


addresses = st.integers(0, (1 << 128) - 1).map(IPv6Address)
u32 = st.integers(0, (1 << 32) - 1)
u64 = st.integers(0, (1 << 64) - 1)


@st.composite
def views(draw: st.DrawFn) -> m.View:
    count = draw(st.integers(0, 12))
    ids = sorted(draw(st.sets(st.integers(1, 1 << 40), min_size=count, max_size=count)))
    members = draw(st.lists(addresses, min_size=count, max_size=count, unique=True))
    entries = [m.MemberEntry(join_id=i, address=a) for i, a in zip(ids, members, strict=True)]
    in_core = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    core = tuple(e for e, c in zip(entries, in_core, strict=True) if c)[: m.MAX_CORE]
    snodes = tuple(e for e in entries if e not in core)
    return m.View(
        number=draw(u64),
        next_join_id=draw(st.integers(max(ids, default=0) + 1, (1 << 64) - 1)),
        core=core,
        snodes=snodes,
    )


membership_messages = st.one_of(
    st.builds(m.Join, request=u32),
    st.builds(
        m.JoinAnswer,
        status=st.one_of(st.sampled_from(m.JoinStatus), st.integers(4, 255)),
        request=u32,
        join_id=u64,
        contact=addresses,
    ),
    st.builds(m.Register, join_id=u64, view_number=u64),
    st.builds(m.Registered, join_id=u64, view_number=u64),
    st.builds(m.Heartbeat, sequence=u32, echo=u32, view_number=u64),
    st.builds(m.HeartbeatAnswer, sequence=u32, view_number=u64),
    st.builds(m.PleaseRejoin, view_number=u64),
    st.builds(m.ViewPrepare, transaction=u64, view=views()),
    st.builds(m.ViewVote, transaction=u64, highest=u64, yes=st.booleans()),
    st.builds(m.ViewCommit, transaction=u64),
    st.builds(m.ViewAbort, transaction=u64),
    st.builds(m.ViewUpdate, view=views()),
    st.builds(m.ContactQuery, nonce=u32),
    st.builds(m.ContactAnswer, nonce=u32, view_number=u64),
    st.builds(
        m.Leave,
        reason=st.one_of(st.sampled_from(m.LeaveReason), st.integers(3, 255)),
        join_id=u64,
        member=addresses,
    ),
    st.builds(
        m.Replica,
        client=addresses,
        binding_sequence=st.integers(0, 0xFFFF),
        lifetime=u32,
        view_number=u64,
        bound=st.booleans(),
        serial=u32,
        tunnelled=st.booleans(),
        home_token=st.one_of(
            st.none(),
            st.builds(
                m.HomeToken,
                nonce_index=st.integers(0, 0xFFFF),
                keygen_token=st.binary(min_size=8, max_size=8),
                age_ms=u32,
            ),
        ),
        connections=st.lists(
            st.builds(
                m.ConnectionState,
                snapshot=st.binary(max_size=40),
                regenerable=st.booleans(),
                application_state=st.binary(max_size=20),
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(m.ReplicaDrop, client=addresses),
    st.builds(m.ClientClaimed, client=addresses),
    st.builds(m.ClientQuery, client=addresses),
    st.builds(
        m.ClientRecovering,
        client=addresses,
        serial=u32,
        origin=addresses,
        binding_sequence=st.one_of(st.none(), st.integers(0, 0xFFFF)),
        ports=st.lists(st.integers(0, 0xFFFF), max_size=4).map(tuple),
    ),
    st.builds(m.ReplicaAck, client=addresses, serial=u32),
    st.builds(
        m.ContactState,
        binding_sequence=st.integers(0, 0xFFFF),
        counters=st.lists(
            st.builds(m.SaCounter, spi=u32, outbound=st.booleans(), number=u64),
            max_size=m.MAX_SA_COUNTERS,
        ).map(tuple),
    ),
)


@given(membership_messages)
def test_every_membership_message_round_trips_both_ways(message: m.MembershipMessage) -> None:
    round_trips(message)


@given(membership_messages)
def test_every_truncation_is_refused_as_truncated(message: m.MembershipMessage) -> None:
    truncations_refused(message)


@given(membership_messages, st.data())
def test_mutations_parse_or_raise_a_wire_error(
    message: m.MembershipMessage, data: st.DataObject
) -> None:
    mutations_parse_or_raise(message, data)


@given(st.integers(16, 36), st.binary(max_size=120))
def test_random_bodies_parse_or_raise_a_wire_error(kind: int, body: bytes) -> None:
    raw = bytes([m.VERSION, kind, 0, 0]) + body
    try:
        parsed = m.parse(raw)
    except WireError:
        return
    assert parsed.emit() == raw


@pytest.mark.parametrize(
    "change,field",
    [
        ({"core": (VIEW.core[1], VIEW.core[0])}, "join_id"),  # the contact node is not first
        ({"snodes": (m.MemberEntry(join_id=4, address=S),)}, "join_id"),  # a join id twice
        ({"snodes": (m.MemberEntry(join_id=5, address=A),)}, "address"),  # an address twice
        ({"next_join_id": 5}, "join_id"),  # a member's id not below the counter
        ({"core": (m.MemberEntry(join_id=0, address=A),)}, "join_id"),  # 0 is "none"
    ],
)
def test_views_breaking_the_rules_neither_emit_nor_parse(change: dict, field: str) -> None:
    bad = dataclasses.replace(VIEW, **change)
    with pytest.raises(EmitError):
        bad.emit()
    # the same bytes built by hand (the codec of a good view, entries swapped in)
    raw = bytearray(m.ViewUpdate(view=VIEW).emit())
    entries = bad.core + bad.snodes
    offset = m.WORD_LENGTH
    raw[offset + 8 : offset + 16] = bad.next_join_id.to_bytes(8, "big")
    raw[offset + 16] = len(bad.core)
    raw[offset + 18 : offset + 20] = len(bad.snodes).to_bytes(2, "big")
    body = b"".join(e.join_id.to_bytes(8, "big") + e.address.packed for e in entries)
    raw = raw[: offset + 20] + body
    with pytest.raises(Malformed) as caught:
        m.parse(bytes(raw))
    assert caught.value.field == field


@pytest.mark.parametrize(
    "offset,value,field",
    [
        (m.WORD_LENGTH + 16, m.MAX_CORE + 1, "core_count"),
        (m.WORD_LENGTH + 17, 1, "reserved"),
        (m.WORD_LENGTH + 18, 0xFF, "snode_count"),  # 65280 snodes announced
    ],
)
def test_view_counts_are_bounded_before_any_entry_is_read(
    offset: int, value: int, field: str
) -> None:
    raw = bytearray(m.ViewUpdate(view=VIEW).emit())
    raw[offset] = value
    with pytest.raises(Malformed) as caught:
        m.parse(bytes(raw))
    assert caught.value.field == field and caught.value.offset == offset


def test_a_full_view_fits_its_bound_and_the_channel() -> None:
    entries = [
        m.MemberEntry(join_id=i + 1, address=IPv6Address(0x20010DB8 << 96 | i))
        for i in range(m.MAX_CORE + m.MAX_SNODES)
    ]
    view = m.View(
        number=1,
        next_join_id=len(entries) + 1,
        core=tuple(entries[: m.MAX_CORE]),
        snodes=tuple(entries[m.MAX_CORE :]),
    )
    data = m.ViewPrepare(transaction=1, view=view).emit()
    assert len(data) == m.WORD_LENGTH + 8 + m.MAX_VIEW_LENGTH < m.MAX_MESSAGE_LENGTH
    assert m.parse(data) == m.ViewPrepare(transaction=1, view=view)
    with pytest.raises(EmitError):
        dataclasses.replace(view, core=(*view.core, m.MemberEntry(join_id=9999, address=S))).emit()


def test_a_vote_is_yes_or_no_and_reserved_bytes_are_zero() -> None:
    raw = bytearray(m.ViewVote(transaction=1, highest=2, yes=True).emit())
    raw[m.WORD_LENGTH + 16] = 2
    with pytest.raises(Malformed) as caught:
        m.parse(bytes(raw))
    assert caught.value.field == "vote"
    raw = bytearray(m.Join(request=5).emit())
    raw[-1] = 1
    with pytest.raises(Malformed) as caught:
        m.parse(bytes(raw))
    assert caught.value.field == "reserved" and caught.value.offset == len(raw) - 4


# CONTACT_STATE by hand: version 1, type 31, binding sequence 0x1234, two counters
CONTACT_STATE_BYTES = bytes.fromhex(
    "01" "1f" "0000" "1234" "02" "00"
    "00001001" "01" "000000" "0000000000000102"
    "00001002" "00" "000000" "00000000000000ff"
)  # fmt: skip


def test_contact_state_fixture_parses_and_emits_byte_for_byte() -> None:
    state = m.ContactState(
        binding_sequence=0x1234,
        counters=(
            m.SaCounter(spi=0x1001, outbound=True, number=0x102),
            m.SaCounter(spi=0x1002, outbound=False, number=0xFF),
        ),
    )
    assert m.parse(CONTACT_STATE_BYTES) == state
    assert state.emit() == CONTACT_STATE_BYTES
    raw = bytearray(CONTACT_STATE_BYTES)
    raw[m.WORD_LENGTH + 4 + 4] = 2  # the first counter's direction
    with pytest.raises(Malformed) as caught:
        m.parse(bytes(raw))
    assert caught.value.field == "direction"
    raw = bytearray(CONTACT_STATE_BYTES)
    raw[m.WORD_LENGTH + 2] = m.MAX_SA_COUNTERS + 1  # the count, checked before any counter
    with pytest.raises(Malformed) as caught:
        m.parse(bytes(raw))
    assert caught.value.field == "count"
    with pytest.raises(EmitError):
        m.ContactState(binding_sequence=1 << 16).emit()


def test_emit_refuses_values_that_do_not_fit() -> None:
    with pytest.raises(EmitError):
        m.Heartbeat(sequence=1 << 32, echo=0, view_number=0).emit()
    with pytest.raises(EmitError):
        m.Register(join_id=-1, view_number=0).emit()
    replica = m.Replica(
        client=IPv6Address("2001:db8::1"),
        binding_sequence=1,
        lifetime=60,
        view_number=1,
        connections=(),
    )
    for token in (
        m.HomeToken(nonce_index=1, keygen_token=bytes(7), age_ms=0),
        m.HomeToken(nonce_index=1 << 16, keygen_token=bytes(8), age_ms=0),
        m.HomeToken(nonce_index=1, keygen_token=bytes(8), age_ms=1 << 32),
    ):
        with pytest.raises(EmitError):
            dataclasses.replace(replica, home_token=token).emit()


def test_client_recovering_carries_its_ports_and_bounds_their_count() -> None:
    client, origin = IPv6Address("2001:db8:3::7"), IPv6Address("2001:db8:20::1")
    message = m.ClientRecovering(
        client=client, serial=9, origin=origin, binding_sequence=29402, ports=(57712, 80)
    )
    raw = message.emit()
    count_at = m.WORD_LENGTH + 20  # after the client and the serial
    # two ports, the bound flag, reserved, 29402 (0x72da), the origin, then the ports
    assert raw[count_at : count_at + 6] == bytes.fromhex("0002010072da")
    assert raw[count_at + 6 : count_at + 22] == origin.packed
    assert raw[-4:] == bytes.fromhex("e1700050")  # 57712, 80
    assert m.parse(raw) == message
    unbound = dataclasses.replace(message, binding_sequence=None)
    assert m.parse(unbound.emit()).binding_sequence is None
    bad = bytearray(unbound.emit())
    bad[count_at + 4 : count_at + 6] = b"\x00\x01"  # a number, the bound flag clear
    with pytest.raises(Malformed) as caught:
        m.parse(bytes(bad))
    assert caught.value.field == "sequence"
    bad = bytearray(raw)
    bad[count_at : count_at + 2] = (m.MAX_CONNECTIONS + 1).to_bytes(2, "big")
    with pytest.raises(Malformed) as caught:
        m.parse(bytes(bad))
    assert caught.value.field == "count" and caught.value.offset == count_at
    with pytest.raises(EmitError):
        dataclasses.replace(message, ports=(0,) * (m.MAX_CONNECTIONS + 1)).emit()
    with pytest.raises(EmitError):
        dataclasses.replace(message, ports=(1 << 16,)).emit()
    with pytest.raises(EmitError):
        dataclasses.replace(message, binding_sequence=1 << 16).emit()
