"""Membership heartbeats as datagrams (mip6.dserver.datagram): sealed by one member, opened by
another holding the group key; a forged, replayed, reordered, truncated or foreign datagram is
refused and counted, and a forger fills no table."""

from __future__ import annotations

import random
from ipaddress import IPv6Address

from hypothesis import given
from hypothesis import strategies as st

from mip6.dserver import messages as m
from mip6.dserver.datagram import (
    HEADER_LENGTH,
    MAX_SENDERS,
    HeartbeatReceiver,
    HeartbeatSender,
)

KEY = bytes(range(32))
A = IPv6Address("2001:db8:10::1")
B = IPv6Address("2001:db8:20::1")
BEAT = m.Heartbeat(sequence=7, echo=6, view_number=9)


def sender(address: IPv6Address = A, seed: int = 1, key: bytes = KEY) -> HeartbeatSender:
    return HeartbeatSender(key, address, random.Random(seed).randbytes)


def test_sealed_heartbeats_open_with_the_sender_and_message() -> None:
    a, receiver = sender(), HeartbeatReceiver(KEY)
    answer = m.HeartbeatAnswer(sequence=7, view_number=9)
    assert receiver.open(a.seal(BEAT)) == (A, BEAT)
    assert receiver.open(a.seal(answer)) == (A, answer)
    assert receiver.counters == {}


def test_replayed_and_reordered_datagrams_are_refused() -> None:
    a, receiver = sender(), HeartbeatReceiver(KEY)
    first, second = a.seal(BEAT), a.seal(BEAT)
    assert receiver.open(second) is not None
    assert receiver.open(first) is None  # older than one accepted
    assert receiver.open(second) is None  # the same again
    assert receiver.counters == {"heartbeat_datagram_replayed": 2}


def test_a_new_life_of_a_member_is_heard_from_its_first_datagram() -> None:
    receiver = HeartbeatReceiver(KEY)
    for _ in range(3):
        receiver.open(sender(seed=1).seal(BEAT))
    assert receiver.open(sender(seed=2).seal(BEAT)) == (A, BEAT)  # another epoch, counter 1


def test_another_group_key_or_a_changed_byte_is_forged() -> None:
    receiver = HeartbeatReceiver(KEY)
    assert receiver.open(sender(key=bytes(32)).seal(BEAT)) is None
    sealed = bytearray(sender().seal(BEAT))
    for at in (5, 20, HEADER_LENGTH - 1, HEADER_LENGTH + 2, len(sealed) - 1):
        changed = bytearray(sealed)
        changed[at] ^= 0x01
        assert receiver.open(bytes(changed)) is None
    assert receiver.counters == {"heartbeat_datagram_forged": 6}
    # claiming another sender does not help either: the sender is in the key
    claimed = bytearray(sealed)
    claimed[20:36] = B.packed
    assert receiver.open(bytes(claimed)) is None
    assert receiver.open(bytes(sealed)) == (A, BEAT)  # nothing above changed the real one


def test_short_long_foreign_and_other_messages_are_refused() -> None:
    receiver = HeartbeatReceiver(KEY)
    sealed = sender().seal(BEAT)
    assert receiver.open(sealed[: HEADER_LENGTH + 15]) is None
    assert receiver.open(sealed + bytes(100)) is None
    assert receiver.open(b"\x02" + sealed[1:]) is None
    assert receiver.counters == {
        "heartbeat_datagram_truncated": 1,
        "heartbeat_datagram_too_long": 1,
        "heartbeat_datagram_version": 1,
    }
    # a group member's other message, sealed the same way, is not taken as a heartbeat
    a = sender()
    a_join = a.seal(m.Join(request=1))  # type: ignore[arg-type]
    assert receiver.open(a_join) is None
    assert receiver.counters["heartbeat_datagram_not_a_heartbeat"] == 1


def test_the_senders_table_is_bounded_and_forgers_fill_nothing() -> None:
    receiver = HeartbeatReceiver(KEY)
    for i in range(MAX_SENDERS + 50):
        assert receiver.open(sender(IPv6Address(int(A) + i), seed=i).seal(BEAT)) is not None
    assert len(receiver._senders) == MAX_SENDERS
    for i in range(100):
        receiver.open(sender(seed=1000 + i, key=bytes(32)).seal(BEAT))
    assert len(receiver._senders) == MAX_SENDERS
    assert receiver.counters["heartbeat_datagram_forged"] == 100


@given(st.binary(max_size=200))
def test_random_bytes_are_refused_never_raise(data: bytes) -> None:
    assert HeartbeatReceiver(KEY).open(data) is None
