"""The handoff protocol's member-channel messages: byte fixtures, round trips both ways over
every message type, every truncation, mutations (nothing but a WireError escapes), the bounds,
and an INIT carrying real tcp_migrate snapshots that import on another stack."""

from __future__ import annotations

import os
from dataclasses import replace
from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mip6.dserver import messages as m
from mip6.wire.errors import EmitError, Malformed, Truncated, WireError
from tcp_migrate.stack import Stack

CLIENT = IPv6Address("2001:db8:2::1")

# An INIT by hand from the diagram in mip6/dserver/messages.py: version 1, type 3, handoff id 5,
# the client, next sequence 7, one connection, lifetime 420 s; flags R, snapshot "abc", state "x".
INIT_BYTES = bytes.fromhex(
    "01" "03" "0000" "0000000000000005" "20010db8000200000000000000000001"
    "0007" "0001" "000001a4"
    "01" "000000" "00000003" "00000001" "616263" "78"
)  # fmt: skip
INIT = m.Init(
    handoff_id=5,
    client=CLIENT,
    next_sequence=7,
    lifetime=420,
    connections=(m.ConnectionState(snapshot=b"abc", regenerable=True, application_state=b"x"),),
)


def test_init_fixture_parses_and_emits_byte_for_byte() -> None:
    assert m.parse(INIT_BYTES) == INIT
    assert INIT.emit() == INIT_BYTES


def test_failed_fixture_and_unknown_reason_kept_as_number() -> None:
    header = "01050000ffffffffffffffff20010db8000200000000000000000001"
    timeout = bytes.fromhex(header + "05000000")
    parsed = m.parse(timeout)
    assert parsed == m.Failed(
        handoff_id=(1 << 64) - 1, client=CLIENT, reason=m.FailureReason.TIMEOUT
    )
    unknown = m.parse(bytes.fromhex(header + "c8000000"))
    assert isinstance(unknown, m.Failed) and unknown.reason == 200
    assert not isinstance(unknown.reason, m.FailureReason)
    assert unknown.emit().hex().endswith("c8000000")


addresses = st.integers(0, (1 << 128) - 1).map(IPv6Address)
ids = st.integers(0, (1 << 64) - 1)
connections = st.one_of(
    st.builds(
        m.ConnectionState,
        snapshot=st.binary(max_size=200),
        regenerable=st.booleans(),
        application_state=st.binary(max_size=50),
    ),
    # a UDP flow (mip6.dserver.udp): never regenerable
    st.builds(
        m.ConnectionState,
        snapshot=st.binary(max_size=8),
        datagram=st.just(True),
        application_state=st.binary(max_size=50),
    ),
)
messages = st.one_of(
    st.builds(m.Prepare, handoff_id=ids, client=addresses, tunnelled=st.booleans()),
    st.builds(m.Prepared, handoff_id=ids, client=addresses),
    st.builds(m.Done, handoff_id=ids, client=addresses),
    st.builds(
        m.Failed,
        handoff_id=ids,
        client=addresses,
        reason=st.one_of(st.sampled_from(m.FailureReason), st.integers(6, 255)),
    ),
    st.builds(
        m.Init,
        handoff_id=ids,
        client=addresses,
        next_sequence=st.integers(0, 0xFFFF),
        lifetime=st.integers(0, (1 << 32) - 1),
        connections=st.lists(connections, max_size=5).map(tuple),
        tunnelled=st.booleans(),
        resync=st.booleans(),
    ),
    st.builds(
        m.FrozenInput,
        handoff_id=ids,
        client=addresses,
        packets=st.lists(st.binary(min_size=1, max_size=80), max_size=4).map(tuple),
    ),
    st.builds(m.Tunnel, client=addresses, sequence=st.integers(0, 0xFFFF)),
    st.builds(
        m.TunnelAck,
        client=addresses,
        sequence=st.integers(0, 0xFFFF),
        held=st.integers(0, 0xFFFF),
        status=st.one_of(st.sampled_from(m.TunnelStatus), st.integers(4, 255)),
    ),
)


def round_trips(message: m.Message) -> None:
    """Emit then parse gives the message back, and parse then emit the bytes."""
    data = message.emit()
    assert m.parse(data) == message
    assert m.parse(data).emit() == data


def truncations_refused(message: m.Message) -> None:
    data = message.emit()
    for length in range(len(data)):
        with pytest.raises(Truncated):
            m.parse(data[:length])


def mutations_parse_or_raise(message: m.Message, data: st.DataObject) -> None:
    """A few bytes of ``message`` changed: parsed (and then canonical) or a WireError."""
    raw = bytearray(message.emit())
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] = data.draw(st.integers(0, 255))
    try:
        parsed = m.parse(bytes(raw))
    except WireError as error:
        assert 0 <= error.offset <= len(raw)
        return
    assert parsed.emit() == bytes(raw)  # what parses is canonical


@given(messages)
def test_every_message_round_trips_both_ways(message: m.Message) -> None:
    round_trips(message)


@given(messages)
def test_every_truncation_is_refused_as_truncated(message: m.Message) -> None:
    truncations_refused(message)


@given(messages, st.data())
def test_mutations_parse_or_raise_a_wire_error(message: m.Message, data: st.DataObject) -> None:
    mutations_parse_or_raise(message, data)


@pytest.mark.parametrize(
    "offset,value,field",
    [
        (m.VERSION_OFFSET, 2, "version"),
        (m.TYPE_OFFSET, 9, "type"),
        (m.RESERVED_OFFSET, 1, "reserved"),
        (m.HEADER_LENGTH + 8, 0x04, "flags"),  # an unknown connection flag
        (m.HEADER_LENGTH + 8, 0x03, "flags"),  # a datagram flow marked regenerable
        (m.HEADER_LENGTH + 9, 0x01, "reserved"),  # the connection's reserved bytes
    ],
)
def test_malformed_fields_are_named_with_their_offset(offset: int, value: int, field: str) -> None:
    raw = bytearray(INIT_BYTES)
    raw[offset] = value
    with pytest.raises(Malformed) as caught:
        m.parse(bytes(raw))
    assert caught.value.field == field and caught.value.offset == offset


def test_the_resync_flag_is_inits_alone() -> None:
    raw = replace(INIT, resync=True).emit()
    assert int.from_bytes(raw[m.RESERVED_OFFSET : m.RESERVED_OFFSET + 2]) == m.RESYNC
    assert m.parse(raw) == replace(INIT, resync=True)
    prepare = bytearray(m.Prepare(handoff_id=1, client=CLIENT).emit())
    prepare[m.RESERVED_OFFSET] |= m.RESYNC >> 8
    with pytest.raises(Malformed) as caught:
        m.parse(bytes(prepare))
    assert caught.value.field == "reserved"


def test_init_datagram_flow_round_trips_with_its_flag() -> None:
    flow = m.ConnectionState(snapshot=b"\x30\x39\x00\x35", datagram=True, application_state=b"s")
    init = replace(INIT, connections=(flow,))
    raw = init.emit()
    assert raw[m.HEADER_LENGTH + 8] == m.DATAGRAM
    assert m.parse(raw) == init


def test_emit_datagram_flow_marked_regenerable_refused() -> None:
    flow = m.ConnectionState(snapshot=b"", datagram=True, regenerable=True)
    with pytest.raises(EmitError):
        replace(INIT, connections=(flow,)).emit()


def test_trailing_bytes_are_malformed() -> None:
    with pytest.raises(Malformed) as caught:
        m.parse(INIT_BYTES + b"\0")
    assert caught.value.offset == len(INIT_BYTES) and caught.value.field == "length"


def test_bounds_refuse_before_reading_what_a_peer_announces() -> None:
    header = m.Prepare(handoff_id=1, client=CLIENT).emit()
    header = header[:1] + bytes([m.MessageType.INIT]) + header[2:]
    too_many = header + (m.MAX_CONNECTIONS + 1).to_bytes(2, "big").rjust(4, b"\0") + bytes(4)
    with pytest.raises(Malformed) as caught:
        m.parse(too_many)
    assert caught.value.field == "count"
    huge = header + bytes.fromhex("000000010000000000000000ffffffff00000000")
    with pytest.raises(Malformed) as caught:
        m.parse(huge)
    assert caught.value.field == "snapshot"
    with pytest.raises(EmitError):
        m.Init(
            handoff_id=1,
            client=CLIENT,
            next_sequence=0,
            lifetime=0,
            connections=(m.ConnectionState(snapshot=b""),) * (m.MAX_CONNECTIONS + 1),
        ).emit()
    with pytest.raises(EmitError):
        m.Prepare(handoff_id=1 << 64, client=CLIENT).emit()


def test_init_carries_real_snapshots_that_import_on_the_acceptor() -> None:
    donor_address, client_address = IPv6Address("2001:db8:1::5"), CLIENT
    wire: list[bytes] = []
    donor = Stack(transmit=wire.append, local_addresses=[donor_address], secret=os.urandom(32))
    sockets = [donor.connect(0, client_address, port) for port in (80, 443)]
    for sock in sockets:
        sock.freeze(0)
    init = m.Init(
        handoff_id=42,
        client=client_address,
        next_sequence=1000,
        lifetime=60,
        connections=tuple(
            m.ConnectionState(
                snapshot=sock.export(include_unacked=False),
                regenerable=True,
                application_state=f"offset {n}".encode(),
            )
            for n, sock in enumerate(sockets)
        ),
    )
    received = m.parse(init.emit())
    assert isinstance(received, m.Init)
    acceptor = Stack(transmit=wire.append, local_addresses=[donor_address], secret=os.urandom(32))
    imported = [acceptor.import_connection(c.snapshot) for c in received.connections]
    assert [s.key for s in imported] == [s.key for s in sockets]
    assert all(s.frozen for s in imported)
    assert [c.application_state for c in received.connections] == [b"offset 0", b"offset 1"]


def test_frozen_input_bounds_its_packets_before_reading_them() -> None:
    client = IPv6Address("2001:db8:3::7")
    message = m.FrozenInput(handoff_id=5, client=client, packets=(b"\x60" + bytes(59),))
    raw = message.emit()
    assert raw[m.HEADER_LENGTH : m.HEADER_LENGTH + 6] == bytes.fromhex("0001 0000 003c")
    assert m.parse(raw) == message
    for at, value, field in (
        (m.HEADER_LENGTH, m.MAX_FROZEN_PACKETS + 1, "count"),
        (m.HEADER_LENGTH + 4, 0, "packet length"),
        (m.HEADER_LENGTH + 4, m.MAX_FROZEN_PACKET + 1, "packet length"),
    ):
        bad = bytearray(raw)
        bad[at : at + 2] = value.to_bytes(2, "big")
        with pytest.raises(Malformed) as caught:
            m.parse(bytes(bad))
        assert caught.value.field == field and caught.value.offset == at
    with pytest.raises(EmitError):
        m.FrozenInput(handoff_id=5, client=client, packets=(b"x",) * 17).emit()
    with pytest.raises(EmitError):
        m.FrozenInput(handoff_id=5, client=client, packets=(b"",)).emit()
