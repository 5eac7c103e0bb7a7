"""tcp_migrate's IPv6 walk: held to ``mip6.wire.walk.walk`` (the walk the stack used before it
stood alone) on fixed packets and on hypothesis mutations of valid ones: the same addresses,
upper protocol, upper offset and fragment answer, and a refusal of the same packets at the same
byte. Fuzzed: nothing but :class:`MalformedPacket` escapes it. The tests may import mip6; the
package under test must not (``test_standalone.py``)."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mip6.wire.errors import WireError
from mip6.wire.ipv6 import Ipv6Packet, Payload, RawPayload
from mip6.wire.ipv6ext import (
    DestinationOptions,
    ExtensionHeader,
    FragmentHeader,
    HomeAddressOption,
    HopByHopOptions,
    RoutingType2,
    UnknownIpv6Option,
)
from mip6.wire.tcp import TcpFlags, TcpSegment
from mip6.wire.walk import walk as reference_walk
from tcp_migrate.ipv6 import Fault, MalformedPacket, walk
from tcp_migrate.stack import Stack
from tests.wire.strategies import extension_headers

SOURCE = IPv6Address("2001:db8:3::5")
DESTINATION = IPv6Address("2001:db8:2::1")
HOME = IPv6Address("2001:db8:1::5")
SECRET = bytes(range(32))

SEGMENT = TcpSegment(
    source_port=40000,
    destination_port=80,
    sequence_number=1,
    acknowledgment_number=0,
    flags=TcpFlags.SYN,
    window=65535,
)
DATA_SEGMENT = TcpSegment(
    source_port=40000,
    destination_port=80,
    sequence_number=1,
    acknowledgment_number=1,
    flags=TcpFlags.ACK,
    window=65535,
    payload=(bytes(range(256)) * 6)[:1340],  # a 1400-byte packet
)


def hop_by_hop() -> HopByHopOptions:
    return HopByHopOptions.aligned([UnknownIpv6Option(option_type=5, data=b"\0\0")])


def home_address_option() -> DestinationOptions:
    return DestinationOptions.aligned([HomeAddressOption(home_address=HOME)])


def build(*headers: ExtensionHeader, payload: Payload = SEGMENT) -> bytes:
    return Ipv6Packet(
        source=SOURCE, destination=DESTINATION, extension_headers=headers, payload=payload
    ).emit()


def with_payload_length(data: bytes | bytearray) -> bytes:
    """``data`` with its Payload Length made to match its size, so that a cut lands inside a
    header instead of being caught by the Payload Length check."""
    fixed = bytearray(data)
    fixed[4:6] = (len(fixed) - 40).to_bytes(2, "big")
    return bytes(fixed)


def agree(data: bytes) -> tuple[bytes, bytes, int, int, int, bool] | None:
    """Both walks on ``data``: the same answer, or both refuse at the same offset (then None)."""
    try:
        expected = reference_walk(data)
    except WireError as error:
        with pytest.raises(MalformedPacket) as info:
            walk(data)
        assert info.value.offset == error.offset, (info.value, error)
        return None
    result = walk(data)
    assert result == (
        expected.source,
        expected.destination,
        expected.upper_protocol,
        expected.upper_offset,
        40 + int.from_bytes(data[4:6], "big"),
        expected.fragmented,
    )
    return result


FRAGMENT_FIRST = FragmentHeader(fragment_offset=0, more_fragments=True, identification=9)
FRAGMENT_LATER = FragmentHeader(fragment_offset=100, more_fragments=False, identification=9)
FRAGMENT_ATOMIC = FragmentHeader(fragment_offset=0, more_fragments=False, identification=9)
TCP_BYTES = SEGMENT.emit(source=SOURCE.packed, destination=DESTINATION.packed)

# (name, packet, upper protocol, upper offset, fragmented)
VALID = [
    ("plain-tcp-1400", build(payload=DATA_SEGMENT), 6, 40, False),
    ("hop-by-hop", build(hop_by_hop()), 6, 48, False),
    ("destination-options-home-address", build(home_address_option()), 6, 64, False),
    ("routing-type-2", build(RoutingType2(home_address=HOME)), 6, 64, False),
    (
        "hop-by-hop-routing-2-home-address",
        build(hop_by_hop(), RoutingType2(home_address=HOME), home_address_option()),
        6,
        96,
        False,
    ),
    (
        "fragment-first",
        build(FRAGMENT_FIRST, payload=RawPayload(protocol=6, data=TCP_BYTES)),
        6,
        48,
        True,
    ),
    (
        "fragment-later",
        build(FRAGMENT_LATER, payload=RawPayload(protocol=6, data=b"x" * 16)),
        6,
        48,
        True,
    ),
    (
        "fragment-atomic",
        build(FRAGMENT_ATOMIC, payload=RawPayload(protocol=6, data=TCP_BYTES)),
        6,
        48,
        False,
    ),
    (
        "fragment-later-after-options",
        build(hop_by_hop(), FRAGMENT_LATER, payload=RawPayload(protocol=60, data=b"x" * 16)),
        60,
        56,
        True,
    ),
    (
        "no-next-header",
        build(home_address_option(), payload=RawPayload(protocol=59, data=b"")),
        59,
        64,
        False,
    ),
    ("udp", build(payload=RawPayload(protocol=17, data=bytes(8))), 17, 40, False),
]


@pytest.mark.parametrize(
    ("packet", "protocol", "offset", "fragmented"),
    [case[1:] for case in VALID],
    ids=[case[0] for case in VALID],
)
def test_valid_packet_same_answer_as_mip6(
    packet: bytes, protocol: int, offset: int, fragmented: bool
) -> None:
    assert agree(packet) == (
        SOURCE.packed,
        DESTINATION.packed,
        protocol,
        offset,
        len(packet),
        fragmented,
    )


@pytest.mark.parametrize("packet", [case[1] for case in VALID], ids=[case[0] for case in VALID])
def test_valid_packet_every_truncation_refused_by_both(packet: bytes) -> None:
    for cut in range(len(packet)):
        assert agree(packet[:cut]) is None
        if cut >= 40:
            # The Payload Length shrunk with the cut: the fault is found inside the chain, or
            # the shorter packet is still whole up to the upper-layer header.
            agree(with_payload_length(packet[:cut]))


def test_trailing_bytes_after_payload_length_ignored_by_both() -> None:
    packet = build(hop_by_hop())
    assert agree(packet + b"\xff" * 7) == agree(packet)


def _rewrite(packet: bytes, *edits: tuple[int, int]) -> bytes:
    data = bytearray(packet)
    for index, value in edits:
        data[index] = value
    return bytes(data)


def _misaligned_home_address() -> bytes:
    # Destination Options: Next Header 59, Hdr Ext Len 2, PadN(2), HAO at header offset 4,
    # PadN(2): 24 bytes, the option at 8n+4.
    options = bytes([59, 2, 1, 0, 201, 16]) + HOME.packed + bytes([1, 0])
    return with_payload_length(
        _rewrite(build(payload=RawPayload(protocol=59, data=b"")), (6, 60)) + options
    )


def _empty_destination_options(count: int) -> bytes:
    return build(
        *(DestinationOptions.aligned([]) for _ in range(count)),
        payload=RawPayload(protocol=59, data=b""),
    )


# (name, packet, fault, offset)
MALFORMED = [
    ("short-header", build()[:39], Fault.SHORT_HEADER, 0),
    ("version-4", _rewrite(build(), (0, 0x45)), Fault.VERSION, 0),
    ("payload-length-overrun", build()[:-1], Fault.PAYLOAD_LENGTH, 4),
    (
        "hop-by-hop-second",
        build(home_address_option(), hop_by_hop()),
        Fault.HOP_BY_HOP_NOT_FIRST,
        64,
    ),
    (
        "hdr-ext-len-overrun",
        _rewrite(build(hop_by_hop(), payload=RawPayload(protocol=59, data=b"")), (41, 1)),
        Fault.HDR_EXT_LEN,
        41,
    ),
    (
        "extension-header-one-byte",
        with_payload_length(build(hop_by_hop())[:41]),
        Fault.EXTENSION_HEADER_SHORT,
        40,
    ),
    (
        "fragment-seven-bytes",
        with_payload_length(build(FRAGMENT_FIRST, payload=RawPayload(protocol=6, data=b""))[:47]),
        Fault.EXTENSION_HEADER_SHORT,
        40,
    ),
    (
        "routing-type-2-hdr-ext-len-4",
        with_payload_length(
            _rewrite(
                build(RoutingType2(home_address=HOME), payload=RawPayload(protocol=59, data=b"")),
                (41, 4),
            )
            + bytes(16)
        ),
        Fault.ROUTING_TYPE_2_LENGTH,
        41,
    ),
    (
        "option-overruns-header",
        _rewrite(build(home_address_option(), payload=RawPayload(protocol=59, data=b"")), (47, 17)),
        Fault.OPTION_LENGTH,
        47,
    ),
    (
        "home-address-length-15",
        _rewrite(build(home_address_option(), payload=RawPayload(protocol=59, data=b"")), (47, 15)),
        Fault.HOME_ADDRESS_LENGTH,
        47,
    ),
    ("home-address-misaligned", _misaligned_home_address(), Fault.HOME_ADDRESS_ALIGNMENT, 44),
    (
        "home-address-twice",
        build(home_address_option(), home_address_option()),
        Fault.HOME_ADDRESS_REPEATED,
        70,
    ),
    ("33-extension-headers", _empty_destination_options(33), Fault.TOO_MANY_HEADERS, 40 + 32 * 8),
]


@pytest.mark.parametrize(
    ("packet", "fault", "offset"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_packet_refused_by_both_with_fault(
    packet: bytes, fault: Fault, offset: int
) -> None:
    assert agree(packet) is None
    with pytest.raises(MalformedPacket) as info:
        walk(packet)
    assert (info.value.fault, info.value.offset) == (fault, offset)


def test_32_extension_headers_accepted_by_both() -> None:
    assert agree(_empty_destination_options(32)) is not None


def test_routing_type_2_segments_left_0_any_length_accepted_by_both() -> None:
    """A type 2 Routing header already processed (Segments Left 0) names no destination, so its
    length does not matter, to either walk."""
    packet = with_payload_length(
        _rewrite(
            build(RoutingType2(home_address=HOME), payload=RawPayload(protocol=59, data=b"")),
            (41, 4),
        )
        + bytes(16)
    )
    packet = _rewrite(packet, (43, 0))
    assert agree(packet) is not None


# ---- hypothesis: mutations of valid chains, and raw bytes ----------------------------------

INTERESTING = (0, 1, 2, 4, 6, 8, 16, 17, 43, 44, 58, 59, 60, 0x60, 0xC9, 0xF9, 0xFF)


@st.composite
def mutated_packets(draw: st.DrawFn) -> bytes:
    headers = draw(st.lists(extension_headers, max_size=4))
    if draw(st.booleans()):
        headers.insert(draw(st.integers(0, len(headers))), hop_by_hop())
    if draw(st.booleans()):
        headers.append(
            FragmentHeader(
                fragment_offset=draw(st.sampled_from((0, 1, 8191))),
                more_fragments=draw(st.booleans()),
                identification=draw(st.integers(0, 2**32 - 1)),
            )
        )
    protocol = draw(st.sampled_from((6, 17, 59, 0, 43, 44, 60)))
    data = bytearray(
        build(*headers, payload=RawPayload(protocol=protocol, data=draw(st.binary(max_size=48))))
    )
    for _ in range(draw(st.integers(0, 3))):
        index = draw(st.integers(0, len(data) - 1))
        data[index] = draw(st.sampled_from(INTERESTING) | st.integers(0, 255))
    how = draw(st.sampled_from(("whole", "cut", "cut-inside")))
    if how == "whole":
        return bytes(data)
    cut = draw(st.integers(0, len(data)))
    if how == "cut":
        return bytes(data[:cut])
    return with_payload_length(data[: max(cut, 40)])


@given(mutated_packets())
def test_mutated_packet_same_answer_or_both_refuse(packet: bytes) -> None:
    agree(packet)


@st.composite
def header_then_bytes(draw: st.DrawFn) -> bytes:
    """A fixed header whose Payload Length fits, an extension header type next, any bytes."""
    body = draw(st.binary(max_size=160))
    header = bytes([0x60, 0, 0, 0]) + len(body).to_bytes(2, "big")
    next_header = draw(st.sampled_from((0, 43, 44, 60)))
    return header + bytes([next_header, 64]) + bytes(32) + body


@given(st.one_of(st.binary(max_size=120), header_then_bytes()))
def test_any_bytes_answer_within_packet_or_malformed(data: bytes) -> None:
    try:
        source, destination, protocol, offset, end, fragmented = walk(data)
    except MalformedPacket as error:
        assert isinstance(error.fault, Fault) and 0 <= error.offset <= len(data)
        return
    assert (source, destination) == (data[8:24], data[24:40])
    assert 40 <= offset <= end <= len(data)
    assert fragmented or protocol not in (0, 43, 44, 60)


@given(header_then_bytes())
def test_any_chain_same_answer_or_both_refuse(data: bytes) -> None:
    agree(data)


# ---- the stack on top of it ----------------------------------------------------------------


def stack() -> tuple[Stack, list[bytes]]:
    sent: list[bytes] = []
    return Stack(transmit=sent.append, local_addresses=[DESTINATION], secret=SECRET), sent


def test_closed_syn_behind_extension_headers_rst() -> None:
    tcp_stack, sent = stack()
    tcp_stack.receive(0, build(hop_by_hop(), DestinationOptions.aligned([])))
    assert len(sent) == 1 and tcp_stack.counters["rst_sent"] == 1


def test_closed_malformed_chain_counted_never_raises() -> None:
    tcp_stack, sent = stack()
    packet = build(hop_by_hop(), DestinationOptions.aligned([]))
    for cut in range(40, len(packet)):
        tcp_stack.receive(0, with_payload_length(packet[:cut]))
    tcp_stack.receive(0, build(home_address_option(), hop_by_hop()))
    # Cuts inside the chain are malformed; the rest end inside the TCP header, also malformed.
    assert tcp_stack.counters["malformed"] == len(packet) - 40 + 1
    assert sent == []


def test_closed_fragment_not_ours() -> None:
    tcp_stack, sent = stack()
    tcp_stack.receive(0, build(FRAGMENT_FIRST, payload=RawPayload(protocol=6, data=TCP_BYTES)))
    assert tcp_stack.counters["not_ours"] == 1 and sent == []
