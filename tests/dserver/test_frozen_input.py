"""mip6.dserver.frozen_input: which kept packets matter, and the timestamp raised for PAWS,
checked against scapy's own TCP codec."""

from __future__ import annotations

from ipaddress import IPv6Address

from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrRouting

from mip6.dserver.frozen_input import Kept, carries_data, client_port, with_timestamp_at_least
from mip6.dserver.messages import MAX_FROZEN_PACKET, MAX_FROZEN_PACKETS

ADDRESSES = (IPv6Address("2001:db8:3::7").packed, IPv6Address("2001:db8:1::80").packed)

CLIENT = "2001:db8:3::7"
CONTACT = "2001:db8:1::80"


def packet(payload: bytes = b"", flags: str = "A", tsval: int | None = 1000) -> bytes:
    options = (
        [("NOP", None), ("NOP", None), ("Timestamp", (tsval, 55))] if tsval is not None else []
    )
    segment = TCP(sport=40000, dport=81, seq=7, ack=9, flags=flags, options=options)
    return bytes(IPv6(src=CLIENT, dst=CONTACT) / segment / payload)


def test_data_and_fin_are_kept_pure_acks_are_not() -> None:
    assert carries_data(packet(b"GET / HTTP/1.1\r\n\r\n"))
    assert carries_data(packet(flags="FA"))
    assert not carries_data(packet())
    assert not carries_data(b"\x60" + bytes(10))  # no IPv6 packet at all
    assert client_port(packet()) == 40000


def test_a_timestamp_below_ts_recent_is_raised_and_the_checksum_is_right() -> None:
    raised = with_timestamp_at_least(packet(b"GET /", tsval=1000), 5000, *ADDRESSES)
    parsed = IPv6(raised)
    assert dict(parsed[TCP].options)["Timestamp"] == (5000, 55)
    checksum = parsed[TCP].chksum
    del parsed[TCP].chksum
    assert IPv6(bytes(parsed))[TCP].chksum == checksum
    assert bytes(parsed[TCP].payload) == b"GET /"


def test_a_timestamp_at_or_above_ts_recent_or_none_at_all_is_left_alone() -> None:
    for original in (packet(tsval=5000), packet(tsval=6000), packet(tsval=None)):
        assert with_timestamp_at_least(original, 5000, *ADDRESSES) is original
    # modulo 2**32, as PAWS compares: 10 is after 0xFFFFFF00
    wrapped = packet(tsval=10)
    assert with_timestamp_at_least(wrapped, 0xFFFFFF00, *ADDRESSES) is wrapped


def test_the_checksum_covers_the_final_destination_of_a_routing_header() -> None:
    """A route-optimized packet (RFC 3775 6.4: a type 2 routing header carrying the home
    address) keeps a checksum over the home address."""
    segment = TCP(sport=40000, dport=81, flags="A", options=[("Timestamp", (1, 0))]) / b"x"
    routed = IPv6(src=CLIENT, dst="2001:db8:20::1") / IPv6ExtHdrRouting(
        type=2, segleft=1, addresses=[CONTACT]
    )
    raised = with_timestamp_at_least(bytes(routed / segment), 99, *ADDRESSES)
    parsed = IPv6(raised)
    checksum = parsed[TCP].chksum
    del parsed[TCP].chksum
    assert IPv6(bytes(parsed))[TCP].chksum == checksum


def test_kept_packets_are_bounded_in_number_and_size() -> None:
    kept = Kept()
    assert not kept.add(bytes(MAX_FROZEN_PACKET + 1))
    for _ in range(MAX_FROZEN_PACKETS):
        assert kept.add(packet(b"x"))
    assert not kept.add(packet(b"x"))
    assert kept.dropped == 2 and len(kept.take()) == MAX_FROZEN_PACKETS and not kept.packets
