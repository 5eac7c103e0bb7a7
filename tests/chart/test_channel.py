"""The member channel followed from the wire: hellos, confirms and frames found in the TCP
streams, opened with the group key, and never mistaken for another TCP connection."""

from __future__ import annotations

import itertools
import random
from ipaddress import IPv6Address

from hypothesis import given, settings
from hypothesis import strategies as st

from mip6.chart.channel import (
    MAX_CONNECTIONS,
    MAX_UNKNOWN_BUFFERED,
    ChannelFollower,
    message_label,
)
from mip6.chart.label import Kind, Label
from mip6.chart.names import Names
from mip6.dissect import dissect
from mip6.dserver import channel as c
from mip6.dserver import messages
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.tcp import TcpFlags, TcpSegment
from tests.chart.packets import CLIENT, CONTACT, M1, M2, segment

KEY = bytes(range(32))
PORTS = (40000, 7171)
ISN = {M1: 1000, M2: 0xFFFFFF00}  # M2's stream wraps the 32-bit sequence space


INIT = messages.Init(
    handoff_id=0x1_2345_6789,
    client=CLIENT,
    next_sequence=9,
    lifetime=420,
    connections=(messages.ConnectionState(snapshot=b"s" * 90, regenerable=True),),
)


def streams(
    key: bytes = KEY, initiator: IPv6Address = M1, responder: IPv6Address = M2
) -> tuple[bytes, bytes]:
    """What the initiator (M1) and the responder (M2) write, each naming itself in its hello:
    hellos, confirms, then the initiator an INIT and the responder a DONE."""
    rng = random.Random(7)
    first = c.Channel(
        role=c.Role.INITIATOR, group_key=key, identity=initiator, random_bytes=rng.randbytes
    )
    second = c.Channel(
        role=c.Role.RESPONDER, group_key=key, identity=responder, random_bytes=rng.randbytes
    )
    out = [first.start(), second.start()]
    second.receive_data(out[0])
    first.receive_data(out[1])
    out[0] += first.data_to_send()
    out[1] += second.data_to_send()
    first.receive_data(out[1][c.HELLO_LENGTH :])
    second.receive_data(out[0][c.HELLO_LENGTH :])
    out[0] += first.send(INIT)
    out[1] += second.send(messages.Done(handoff_id=0x1_2345_6789, client=CLIENT))
    return out[0], out[1]


def feed(follower: ChannelFollower, data: bytes) -> list[Label] | None:
    packet = dissect(data).packet
    assert isinstance(packet, Ipv6Packet) and isinstance(packet.payload, TcpSegment)
    return follower.segment(packet, packet.payload)


def handshake(follower: ChannelFollower) -> None:
    feed(follower, segment(M1, M2, PORTS, ISN[M1], flags=TcpFlags.SYN))
    back = (PORTS[1], PORTS[0])
    feed(follower, segment(M2, M1, back, ISN[M2], flags=TcpFlags.SYN | TcpFlags.ACK))


def texts(labels: list[Label] | None) -> list[str]:
    assert labels is not None
    return [label.text for label in labels]


def run(follower: ChannelFollower, chunk: int) -> list[str]:
    """Both streams cut into ``chunk``-byte segments, in the order the protocol allows: both
    hellos, then the responder's confirm and frame, then the initiator's."""
    first, second = streams()
    handshake(follower)
    found: list[str] = []
    back = (PORTS[1], PORTS[0])
    pieces = (
        (M1, M2, PORTS, first, 0, c.HELLO_LENGTH),
        (M2, M1, back, second, 0, len(second)),
        (M1, M2, PORTS, first, c.HELLO_LENGTH, len(first)),
    )
    for source, destination, ports, stream, start, end in pieces:
        for at in range(start, end, chunk):
            sequence = (ISN[source] + 1 + at) % (1 << 32)
            payload = stream[at : min(at + chunk, end)]
            # None: a hello not whole yet, so not known to be a channel
            labels = feed(follower, segment(source, destination, ports, sequence, payload))
            found += texts(labels or [])
    return found


def test_channel_with_group_key_messages_named() -> None:
    names = Names({CLIENT: "client"})
    found = run(ChannelFollower(names, KEY), chunk=1000)
    assert found == [
        "channel hello (initiator)",
        "channel hello (responder)",
        "channel confirm",
        "DONE #23456789 client client",
        "channel confirm",
        f"INIT #23456789 client client seq 9, 1 connection (1 regenerable), "
        f"{len(INIT.emit())} bytes",
    ]


def test_channel_small_segments_same_records() -> None:
    whole = run(ChannelFollower(Names(), KEY), chunk=1000)
    assert run(ChannelFollower(Names(), KEY), chunk=7) == whole


def test_channel_without_key_frames_sealed() -> None:
    found = run(ChannelFollower(Names()), chunk=1000)
    assert found[3] == "channel frame 1, 44 bytes (encrypted)"  # DONE: 28 bytes + the tag
    assert found[5] == f"channel frame 1, {len(INIT.emit()) + 16} bytes (encrypted)"


def test_channel_wrong_key_says_so() -> None:
    found = run(ChannelFollower(Names(), bytes(32)), chunk=1000)
    assert found[3] == "channel frame 1, 44 bytes (not this group key)"


def test_channel_out_of_order_assembled_and_retransmission_marked() -> None:
    follower = ChannelFollower(Names(), KEY)
    first, _ = streams()
    handshake(follower)
    start = ISN[M1] + 1
    late = segment(M1, M2, PORTS, start + 60, first[60:])
    early = segment(M1, M2, PORTS, start, first[:60])
    assert feed(follower, late) is None  # no hello yet: not known to be a channel, held
    assert len(texts(feed(follower, early))) == 3  # hello, confirm, INIT
    (again,) = feed(follower, early) or []
    assert (again.kind, again.run) == (Kind.DATA, "member channel retransmitted")


def test_other_tcp_not_a_channel() -> None:
    follower = ChannelFollower(Names(), KEY)
    ports = (51000, 80)
    feed(follower, segment(CLIENT, M1, ports, 5, flags=TcpFlags.SYN))
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3  # longer than a hello
    assert feed(follower, segment(CLIENT, M1, ports, 6, request)) is None
    assert feed(follower, segment(CLIENT, M1, ports, 6 + len(request), b"more")) is None


def test_hello_claiming_another_address_not_a_channel() -> None:
    """A hello's identity is its sender's own address: bytes that merely look like a hello
    from elsewhere are ordinary data."""
    follower = ChannelFollower(Names(), KEY)
    first, _ = streams()
    feed(follower, segment(CLIENT, M2, PORTS, 0, flags=TcpFlags.SYN))
    assert feed(follower, segment(CLIENT, M2, PORTS, 1, first)) is None


def test_connection_table_bounded() -> None:
    follower = ChannelFollower(Names())
    for port in range(2000):
        feed(follower, segment(IPv6Address(int(M1) + port), M2, (port, 80), 0, flags=TcpFlags.SYN))
    assert follower.followed() <= MAX_CONNECTIONS


def test_channels_kept_while_many_other_connections_come_and_go() -> None:
    """Short connections that never show a hello are forgotten before a member channel is."""
    follower = ChannelFollower(Names(), KEY)
    first, _ = streams()
    handshake(follower)
    assert texts(feed(follower, segment(M1, M2, PORTS, ISN[M1] + 1, first[: c.HELLO_LENGTH])))
    for port in range(MAX_CONNECTIONS + 10):
        feed(follower, segment(CLIENT, M2, (port, 80), 0, flags=TcpFlags.SYN))
    rest = segment(M1, M2, PORTS, ISN[M1] + 1 + c.HELLO_LENGTH, first[c.HELLO_LENGTH :])
    assert feed(follower, rest) is not None  # still followed


def test_unknown_connection_holds_only_its_start() -> None:
    follower = ChannelFollower(Names())
    feed(follower, segment(CLIENT, M2, (1, 80), 0, flags=TcpFlags.SYN))
    for at in range(1, 200):  # a megabyte, out of order: the first 52 bytes never come
        feed(follower, segment(CLIENT, M2, (1, 80), 100 + at * 5000, bytes(5000)))
    assert follower.held_bytes() <= MAX_UNKNOWN_BUFFERED


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_segmentation_and_reordering_same_records(data: st.DataObject) -> None:
    """Each direction's bytes cut anywhere and its segments delivered in any order, some twice:
    the same hellos, confirms and messages, in each direction's order."""
    first, second = streams()
    back = (PORTS[1], PORTS[0])
    follower = ChannelFollower(Names({CLIENT: "client"}), KEY)
    handshake(follower)
    found: dict[IPv6Address, list[str]] = {M1: [], M2: []}
    pieces = (
        (M1, M2, PORTS, first, 0, c.HELLO_LENGTH),
        (M2, M1, back, second, 0, len(second)),
        (M1, M2, PORTS, first, c.HELLO_LENGTH, len(first)),
    )
    for source, destination, ports, stream, start, end in pieces:
        cuts = sorted(data.draw(st.sets(st.integers(start + 1, end - 1), max_size=6)))
        bounds = [start, *cuts, end]
        segments = [
            segment(source, destination, ports, (ISN[source] + 1 + a) % (1 << 32), stream[a:b])
            for a, b in itertools.pairwise(bounds)
        ]
        segments += data.draw(st.lists(st.sampled_from(segments), max_size=2))  # duplicates
        for item in data.draw(st.permutations(segments)):
            found[source] += [
                label.text for label in feed(follower, item) or [] if label.kind is not Kind.DATA
            ]
    assert found[M1] == [
        "channel hello (initiator)",
        "channel confirm",
        f"INIT #23456789 client client seq 9, 1 connection (1 regenerable), "
        f"{len(INIT.emit())} bytes",
    ]
    assert found[M2] == [
        "channel hello (responder)",
        "channel confirm",
        "DONE #23456789 client client",
    ]


def test_membership_messages_periodic_ones_are_data() -> None:
    """Heartbeats come every 100 ms: a chart collapses them into runs; a join is an event."""
    names = Names()
    heartbeat = messages.Heartbeat(sequence=4, echo=3, view_number=1)
    beat = message_label(heartbeat, len(heartbeat.emit()), names)
    assert (beat.kind, beat.run, beat.unit) == (Kind.DATA, "member channel HEARTBEAT", "messages")
    join = message_label(messages.Join(request=1), 12, names)
    assert (join.kind, join.text) == (Kind.CHANNEL, "JOIN")
    failed = messages.Failed(handoff_id=5, client=CLIENT, reason=messages.FailureReason.TIMEOUT)
    assert message_label(failed, 32, names).text == "FAILED #00000005 client 2001:db8:2::1 timeout"


def test_join_through_contact_address_answer_names_contact_node() -> None:
    """A joining member (M2) opens its channel to the contact address; the contact node (M1)
    answers from it, its hello naming M1: the initiator's hello vouches for the channel."""
    joining, contact_node = streams(initiator=M2, responder=M1)
    follower = ChannelFollower(Names({CLIENT: "client"}), KEY)
    back = (PORTS[1], PORTS[0])
    feed(follower, segment(M2, CONTACT, PORTS, 10, flags=TcpFlags.SYN))
    feed(follower, segment(CONTACT, M2, back, 20, flags=TcpFlags.SYN | TcpFlags.ACK))
    hello = segment(CONTACT, M2, back, 21, contact_node[: c.HELLO_LENGTH])
    assert feed(follower, hello) is None  # it names M1, not C: nothing vouches for it yet
    assert texts(feed(follower, segment(M2, CONTACT, PORTS, 11, joining))) == [
        "channel hello (initiator)",
        "channel confirm",
        f"INIT #23456789 client client seq 9, 1 connection (1 regenerable), "
        f"{len(INIT.emit())} bytes",
    ]
    rest = segment(CONTACT, M2, back, 21 + c.HELLO_LENGTH, contact_node[c.HELLO_LENGTH :])
    assert texts(feed(follower, rest)) == ["channel confirm", "DONE #23456789 client client"]


def test_hellos_vouched_by_neither_end_not_a_channel() -> None:
    first, second = streams(initiator=M1, responder=M2)
    follower = ChannelFollower(Names(), KEY)
    back = (PORTS[1], PORTS[0])
    feed(follower, segment(CLIENT, CONTACT, PORTS, 10, flags=TcpFlags.SYN))
    feed(follower, segment(CONTACT, CLIENT, back, 20, flags=TcpFlags.SYN | TcpFlags.ACK))
    assert feed(follower, segment(CONTACT, CLIENT, back, 21, second[: c.HELLO_LENGTH])) is None
    assert feed(follower, segment(CLIENT, CONTACT, PORTS, 11, first[: c.HELLO_LENGTH])) is None
    assert follower.followed() == 0
