"""Packets for the chart tests, built with mip6.wire."""

from __future__ import annotations

from ipaddress import IPv6Address

from mip6.wire import mobility as mh
from mip6.wire.ipv6 import Ipv6Packet, Payload
from mip6.wire.tcp import TcpFlags, TcpSegment

HA = IPv6Address("2001:db8:1::1")
M1 = IPv6Address("2001:db8:10::1")
M2 = IPv6Address("2001:db8:20::1")
CLIENT = IPv6Address("2001:db8:2::1")
CONTACT = IPv6Address("2001:db8:1::80")


def packet(
    source: IPv6Address, destination: IPv6Address, payload: Payload, hop_limit: int = 64
) -> bytes:
    return Ipv6Packet(
        source=source, destination=destination, payload=payload, hop_limit=hop_limit
    ).emit()


def binding_update(sequence: int, lifetime_s: int = 420) -> mh.BindingUpdate:
    return mh.BindingUpdate(
        sequence=sequence,
        acknowledge=True,
        home_registration=True,
        lifetime_units_4s=lifetime_s // 4,
    ).aligned()


def segment(
    source: IPv6Address,
    destination: IPv6Address,
    ports: tuple[int, int],
    sequence: int,
    payload: bytes = b"",
    flags: TcpFlags = TcpFlags.ACK,
) -> bytes:
    return packet(
        source,
        destination,
        TcpSegment(
            source_port=ports[0],
            destination_port=ports[1],
            sequence_number=sequence,
            flags=flags,
            window=1000,
            payload=payload,
        ),
    )
