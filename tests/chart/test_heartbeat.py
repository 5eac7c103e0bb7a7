"""Membership heartbeat datagrams named on the wire: opened with the group key, named by their
clear header without it, and nothing else taken for one."""

from __future__ import annotations

import random

from mip6.chart.heartbeat import OPENED, SEALED, UNOPENED, HeartbeatLabeler
from mip6.chart.label import Kind
from mip6.dserver import messages
from mip6.dserver.datagram import HeartbeatSender
from mip6.wire.udp import UdpDatagram
from tests.chart.packets import M1, M2

KEY = bytes(range(32))


def beat(key: bytes = KEY) -> UdpDatagram:
    sender = HeartbeatSender(key, M1, random.Random(3).randbytes)
    sealed = sender.seal(messages.Heartbeat(sequence=1, echo=0, view_number=1))
    return UdpDatagram(source_port=7171, destination_port=7171, payload=sealed)


def test_heartbeat_opened_with_group_key() -> None:
    found = HeartbeatLabeler(KEY).datagram(M1, beat())
    assert found is not None and (found.kind, found.run, found.unit) == (
        Kind.DATA,
        OPENED,
        "datagrams",
    )


def test_heartbeat_without_key_named_by_header() -> None:
    found = HeartbeatLabeler().datagram(M1, beat())
    assert found is not None and found.run == SEALED


def test_heartbeat_other_key_not_opened() -> None:
    found = HeartbeatLabeler(bytes(32)).datagram(M1, beat())
    assert found is not None and found.run == UNOPENED


def test_datagram_naming_another_sender_not_a_heartbeat() -> None:
    assert HeartbeatLabeler(KEY).datagram(M2, beat()) is None


def test_other_udp_not_a_heartbeat() -> None:
    echo = UdpDatagram(source_port=5000, destination_port=7, payload=b"\x01" + bytes(70))
    assert HeartbeatLabeler(KEY).datagram(M1, echo) is None
