"""Clients without Mobile IPv6 (DSERVER 3, issue 16 part 3): the contact node's tunnel table and
the member's record (numbers, bounds, expiry), the packet tests it makes in place, the TUNNEL
and TUNNEL_ACK codecs and the T flag; then, on the in-memory network, a client with no Mobile
IPv6 (a plain IPv6 node whose host refuses the Mobility Header, as a stock kernel does) detected
at the contact node by its Parameter Problem or by its silence, downloading while it is handed
from member to member through the tunnel; a Mobile IPv6 client that loses its binding (Binding
Error 1, the seeds' B8) tunnelled at once; and a tunnelled client whose contact node dies."""

from __future__ import annotations

import hashlib
from ipaddress import IPv6Address

import pytest

from labnet.dserver_lab import CLIENT, CONTACT, HA, MEMBERS, DServerLab, PlainNode, resets
from mip6.apps.http import generated_body
from mip6.core.actions import Action, Transmit
from mip6.core.datapath import encapsulate
from mip6.dserver import messages as m
from mip6.dserver.membership import MembershipConfig
from mip6.dserver.tunnel import (
    TunnelledClients,
    TunnelTable,
    home_agent_tunnelled_source,
    mobility_header_refused,
)
from mip6.runtime.host import Host, IcmpError
from mip6.runtime.memory import Path
from mip6.wire import mobility as mh
from mip6.wire import protocols
from mip6.wire.errors import Malformed
from mip6.wire.ipv6 import Ipv6Packet
from tests.dserver.test_member import mobility_messages

M2, M3 = MEMBERS["m2"], MEMBERS["m3"]
SEED = 5


# -- the table -----------------------------------------------------------------------------


def test_table_takes_a_later_number_and_refuses_an_earlier_one_with_the_number_it_holds() -> None:
    table = TunnelTable(capacity=4, lifetime=10.0)
    assert table.bind(0.0, CLIENT, M2, 100) == (m.TunnelStatus.ACCEPTED, 100)
    # the same TUNNEL again (a retransmission, an announcement to a new contact node)
    assert table.bind(1.0, CLIENT, M2, 100) == (m.TunnelStatus.ACCEPTED, 100)
    # a late TUNNEL of an earlier handoff never takes the client back
    assert table.bind(1.0, CLIENT, M3, 99) == (m.TunnelStatus.SEQUENCE_OUT_OF_WINDOW, 100)
    assert table.bind(1.0, CLIENT, M3, 100) == (m.TunnelStatus.SEQUENCE_OUT_OF_WINDOW, 100)
    assert table.member_for(1.0, CLIENT) == M2
    # RFC 3775 9.5.1's comparison, modulo 2**16
    assert table.bind(2.0, CLIENT, M3, (100 + 0x7FFF) & 0xFFFF)[0] is m.TunnelStatus.ACCEPTED
    assert table.member_for(2.0, CLIENT) == M3
    assert table.bind(2.0, CLIENT, M2, 100)[0] is m.TunnelStatus.SEQUENCE_OUT_OF_WINDOW
    assert table.counters["out_of_window"] == 3


def test_table_full_of_live_entries_refuses_a_new_client_until_one_expires() -> None:
    table = TunnelTable(capacity=2, lifetime=10.0)
    first, second, third = (IPv6Address(f"2001:db8:2::{n}") for n in (1, 2, 3))
    table.bind(0.0, first, M2, 1)
    table.bind(5.0, second, M2, 1)
    assert table.bind(6.0, third, M3, 1) == (m.TunnelStatus.NO_ROOM, 1)
    assert table.member_for(9.0, first) == M2  # its packet: it lives 10 s from now
    assert table.bind(15.5, third, M3, 1)[0] is m.TunnelStatus.ACCEPTED  # second expired
    assert second not in table and first in table and len(table) == 2
    assert table.member_for(19.5, first) is None  # idle for its lifetime
    assert table.next_expiry() == 25.5
    assert table.counters["expired"] == 2 and table.counters["full"] == 1


def test_a_member_that_left_takes_its_entries_along() -> None:
    table = TunnelTable()
    table.bind(0.0, CLIENT, M2, 1)
    table.bind(0.0, IPv6Address("2001:db8:2::2"), M3, 1)
    assert table.drop_member(M2) == 1
    assert CLIENT not in table and len(table) == 1


def test_bad_table_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="room for one entry"):
        TunnelTable(capacity=0)
    with pytest.raises(ValueError, match="lifetime above 0"):
        TunnelTable(lifetime=0)


def test_a_member_takes_only_the_answer_it_awaits() -> None:
    clients = TunnelledClients()
    clients.asked(CLIENT, 7)
    assert not clients.answered(CLIENT, 6, m.TunnelStatus.ACCEPTED)  # an earlier TUNNEL's
    assert clients.sequence(CLIENT) == 7 and CLIENT not in clients.serving
    assert clients.answered(CLIENT, 7, m.TunnelStatus.ACCEPTED)
    assert clients.serving == {CLIENT: 7} and not clients.pending
    clients.asked(CLIENT, 23)
    assert clients.answered(CLIENT, 23, m.TunnelStatus.SEQUENCE_OUT_OF_WINDOW)
    assert clients.serving == {CLIENT: 7}  # refused: what it had stays
    clients.forget(CLIENT)
    assert CLIENT not in clients


# -- packets, read in place ----------------------------------------------------------------


def refusal_of(packet: bytes) -> bytes:
    """What a host without Mobile IPv6 sends back for ``packet``: its ICMPv6 error, through a
    plain node's error path."""
    host = Host(addresses=[CLIENT], secret=bytes(32))
    (error,) = host.deliver(0.0, packet)
    assert isinstance(error, IcmpError)
    (sent,) = PlainNode().upper_layer_error(0.0, error.invoking, error.message)
    assert isinstance(sent, Transmit)
    return sent.data


def home_test_init(source: IPv6Address) -> bytes:
    message = mh.HomeTestInit(home_init_cookie=bytes(range(8)))
    return Ipv6Packet(source=source, destination=CLIENT, payload=message).emit()


def test_a_kernels_parameter_problem_for_our_mobility_header_names_the_client() -> None:
    refusal = refusal_of(home_test_init(CONTACT))
    ours = (CONTACT.packed, MEMBERS["m1"].packed)
    assert mobility_header_refused(refusal, ours) == CLIENT
    # about another node's Mobility Header: not ours to judge
    assert mobility_header_refused(refusal_of(home_test_init(M3)), ours) is None
    # the pointer must name a Next Header field holding 135
    moved = bytearray(refusal)
    moved[47] -= 1  # the pointer's low byte: 6 -> 5
    moved[42:44] = (int.from_bytes(moved[42:44], "big") + 1).to_bytes(2, "big")  # checksum
    assert mobility_header_refused(bytes(moved), ours) is None
    # a bad checksum is no refusal
    broken = bytearray(refusal)
    broken[43] ^= 1
    assert mobility_header_refused(bytes(broken), ours) is None


def test_only_the_home_agents_canonical_tunnel_for_c_is_read_in_place() -> None:
    inner = Ipv6Packet(
        source=CLIENT, destination=CONTACT, payload=mh.HomeTestInit(home_init_cookie=bytes(8))
    ).emit()
    own = MEMBERS["m1"]
    tunnelled = encapsulate(inner, HA, own)
    assert home_agent_tunnelled_source(tunnelled, HA.packed, own.packed, CONTACT.packed) == (
        CLIENT.packed
    )
    for wrong in (encapsulate(inner, M2, own), encapsulate(inner, HA, M2), inner):
        assert home_agent_tunnelled_source(wrong, HA.packed, own.packed, CONTACT.packed) is None


# -- the codecs ------------------------------------------------------------------------------

# By hand from the diagrams in mip6/dserver/messages.py
TUNNEL_BYTES = bytes.fromhex("0124000020010db800020000000000000000000101020000")
TUNNEL_ACK_BYTES = bytes.fromhex(
    "01" "25" "0000" "20010db8000200000000000000000001" "0102" "0203" "01" "000000"
)  # fmt: skip


def test_tunnel_fixtures_parse_and_emit_byte_for_byte() -> None:
    tunnel = m.Tunnel(client=CLIENT, sequence=0x102)
    ack = m.TunnelAck(
        client=CLIENT, sequence=0x102, held=0x203, status=m.TunnelStatus.SEQUENCE_OUT_OF_WINDOW
    )
    assert m.parse(TUNNEL_BYTES) == tunnel and tunnel.emit() == TUNNEL_BYTES
    assert m.parse(TUNNEL_ACK_BYTES) == ack and ack.emit() == TUNNEL_ACK_BYTES
    unknown = m.parse(TUNNEL_ACK_BYTES[:-4] + b"\xc8\0\0\0")
    assert isinstance(unknown, m.TunnelAck) and unknown.status == 200
    with pytest.raises(Malformed) as caught:
        m.parse(TUNNEL_ACK_BYTES[:-1] + b"\1")
    assert (caught.value.field, caught.value.offset) == ("reserved", len(TUNNEL_ACK_BYTES) - 3)


def test_the_t_flag_rides_on_prepare_and_init_and_nowhere_else() -> None:
    prepare = m.Prepare(handoff_id=9, client=CLIENT, tunnelled=True)
    data = prepare.emit()
    assert data[2:4] == b"\x80\x00" and m.parse(data) == prepare
    done = bytearray(m.Done(handoff_id=9, client=CLIENT).emit())
    done[2] = 0x80
    with pytest.raises(Malformed) as caught:
        m.parse(bytes(done))
    assert caught.value.field == "reserved"


# -- on the in-memory network -------------------------------------------------------------


def expected(size: int, seed: int) -> str:
    return hashlib.sha256(b"".join(generated_body(size, seed))).hexdigest()


def to_client(lab: DServerLab) -> list[object]:
    """Every Mobility Header message sent to the client."""
    return [
        message for _, receiver, _, message, _ in mobility_messages(lab) if receiver == "client"
    ]


def test_a_client_without_mipv6_is_handed_from_member_to_member_through_the_tunnel() -> None:
    size = 4_000_000
    lab = DServerLab(SEED, size=size, handoff_every=200_000, loss=0.01, mipv6_client=False)
    fetch = lab.download()
    serving: list[dict] = []
    while not fetch.done and lab.net.now < 120:
        lab.net.run_for(0.25)
        for member in lab.members.values():
            serving += member.describe("clients", lab.net.now)["rows"]
    assert fetch.done and not fetch.failed and fetch.received == size
    assert fetch.digest.hexdigest() == expected(size, SEED)
    counters = {name: member.counters for name, member in lab.members.items()}
    assert counters["m1"]["client_without_mipv6"] == 1
    assert all(c.get("handoff_accepted", 0) >= 2 for c in counters.values()), counters
    assert sum(c.get("handoff_completed", 0) for c in counters.values()) >= 8
    assert sum(c.get("handoff_failed", 0) for c in counters.values()) == 0
    assert resets(lab.net) == 0
    # served through the tunnel wherever it was, and shown so
    assert serving and all(row["via"] == "tunnel" and not row["mipv6"] for row in serving)
    # every member sent it data, every packet through the contact node and the home agent
    assert {sender for _, sender in lab.data_senders()} == {"ha"}
    assert lab.members["m1"].tunnels.counters["forwarded"] > 100
    # the contact node's first HoTI and CoTI only: refused at once, never a Binding Update
    sent = to_client(lab)
    assert sent and all(isinstance(x, mh.HomeTestInit | mh.CareOfTestInit) for x in sent), sent
    assert len(sent) == 2
    # and nothing stays: no handoff, frozen connection or relay entry
    lab.net.run_for(10.0)
    for member in lab.members.values():
        assert not member._outgoing and not member._incoming
        assert not [s for s in member.host.stack.connections if s.frozen]


def test_a_silent_client_is_taken_for_one_without_mipv6_at_mipv6_timeout() -> None:
    """A client behind a firewall that drops the Mobility Header (no Parameter Problem):
    served through the home agent's tunnel by the contact node until ``mipv6_timeout``,
    then handed on like the others."""
    size = 6_000_000
    lab = DServerLab(SEED, size=size, handoff_every=300_000, mipv6_client=False, mipv6_timeout=0.5)
    client = lab.client
    assert isinstance(client, PlainNode)
    client.upper_layer_error = lambda now, invoking, message: []  # type: ignore[method-assign]
    fetch = lab.download()
    started = lab.net.now
    while "client_without_mipv6" not in lab.members["m1"].counters:
        assert lab.net.now - started < 1.0
        lab.net.run_for(0.01)
    assert lab.net.now - started >= 0.5
    assert not lab.members["m2"].client_sockets(CLIENT)  # nothing handed on before
    assert not fetch.done
    lab.run_to_end(fetch)
    assert fetch.done and not fetch.failed and fetch.digest.hexdigest() == expected(size, SEED)
    assert sum(x.counters.get("handoff_completed", 0) for x in lab.members.values()) >= 2
    assert resets(lab.net) == 0
    assert not any(isinstance(x, mh.BindingUpdate) for x in to_client(lab))


def hand_to(lab: DServerLab, member: str = "m3") -> None:
    """The contact node m1 hands the client to ``member``, which then serves it."""
    lab.handoff("m1", member)
    deadline = lab.net.now + 2.0
    while not lab.members[member].client_sockets(CLIENT) or lab.members["m1"].client_sockets(
        CLIENT
    ):
        assert lab.net.now < deadline, f"not handed to {member}"
        lab.net.run_for(0.01)


def test_binding_error_1_sends_the_client_through_the_tunnel_at_once() -> None:
    """The seeds' B8: a Mobile IPv6 client served by m3 loses its binding (a reboot of its
    stack): m3's next route-optimized packet meets a Binding Error 1. From then on m3 sends
    it nothing route-optimized until it is bound again (here one round trip: its tokens are
    fresh), and whatever the client sends meanwhile, to C through the home agent, reaches m3
    through the contact node's tunnel, bound at the first error: no RST, the download
    whole."""
    size = 3_000_000
    lab = DServerLab(SEED, size=size, distribute=False)
    for name in ("m1", "m3"):  # 10 Mbit/s: the download outlasts the handoff and the error
        lab.net.path(name, "client", Path(latency=0.020, bandwidth_bits_per_s=10e6))
    fetch = lab.download()
    while not fetch.status:
        assert lab.net.now < 5.0
        lab.net.run_for(0.01)
    hand_to(lab)
    lab.net.run_for(0.3)
    client = lab.client
    assert not isinstance(client, PlainNode)
    client.binding_cache.remove(CONTACT)
    lost = lab.net.now
    lab.run_to_end(fetch)
    assert fetch.done and not fetch.failed and fetch.digest.hexdigest() == expected(size, SEED)
    assert resets(lab.net) == 0
    assert lab.members["m3"].counters["binding_error_tunnelled"] == 1  # once, not per error
    assert lab.members["m1"].tunnels.member_for(lab.net.now, CLIENT) == MEMBERS["m3"]
    after = [s for s in lab.net.trace if s.time >= lost and not s.lost]
    (error, *_) = [
        s.time
        for s in after
        if (s.sender, s.receiver) == ("client", "m3") and s.data[6] == protocols.MOBILITY
    ]
    # m3's packets to the client with a Home Address option (RFC 3775 6.3): route-optimized
    # data, and its Binding Updates (the option, then the Mobility Header)
    optimized = [
        s
        for s in after
        if (s.sender, s.receiver) == ("m3", "client") and s.data[6] == protocols.DESTINATION_OPTIONS
    ]
    rebound = next(s.time for s in optimized if s.data[40] == protocols.MOBILITY)
    # from when the error reached m3 (Lcs 20 ms) to its next Binding Update, none
    assert not [s.time for s in optimized if error + 0.020 < s.time < rebound]
    assert any(s.time > rebound for s in optimized)  # bound again, route-optimized again


def test_a_tunnelled_client_survives_its_contact_nodes_death() -> None:
    """Issue 15's takeover: the successor's table starts empty; m3, serving a client without
    Mobile IPv6, announces it there again (TUNNEL with the number it had), and the client's
    packets, which the home agent now tunnels to the successor, reach m3 again."""
    size = 3_000_000
    lab = DServerLab(
        SEED, membership=MembershipConfig(), size=size, distribute=False, mipv6_client=False
    )
    # 10 Mbit/s into the client: the download outlasts the handoff and the takeover
    lab.net.path("ha", "client", Path(latency=0.010, bandwidth_bits_per_s=10e6))
    fetch = lab.download(1.0)
    while "client_without_mipv6" not in lab.members["m1"].counters:
        assert lab.net.now < 5.0
        lab.net.run_for(0.01)
    hand_to(lab)
    sequence = lab.members["m3"].tunnelled.serving[CLIENT]
    lab.kill("m1")
    lab.run_to_end(fetch)
    assert fetch.done and not fetch.failed and fetch.digest.hexdigest() == expected(size, SEED)
    assert resets(lab.net) == 0
    m2, m3 = lab.members["m2"], lab.members["m3"]
    assert m2.counters["contact_takeover"] == 1
    assert m3.counters["tunnel_announced"] >= 1
    assert m2.tunnels.sequence(CLIENT) == sequence
    assert m2.tunnels.counters["forwarded"] > 0


def test_a_tunnelled_clients_buddy_resumes_it_when_its_member_dies() -> None:
    """Issue 15's recovery for a client without Mobile IPv6: m2 serves it through the tunnel
    and dies; its buddy m3, holding m2's replica (which says the client is tunnelled, and its
    number), imports the connection and binds the contact node's table a step above that
    number instead of running return routability; the client's next segment, tunnelled to
    it, resumes the download."""
    size = 3_000_000
    lab = DServerLab(
        SEED, membership=MembershipConfig(), size=size, distribute=False, mipv6_client=False
    )
    lab.net.path("ha", "client", Path(latency=0.010, bandwidth_bits_per_s=10e6))
    fetch = lab.download(1.0)
    while "client_without_mipv6" not in lab.members["m1"].counters:
        assert lab.net.now < 5.0
        lab.net.run_for(0.01)
    hand_to(lab, "m2")
    assert lab.members["m2"].buddy() == M3
    while not lab.members["m3"]._replicas.get(M2, {}).get(CLIENT):
        lab.net.run_for(0.01)
    lab.net.run_for(0.2)
    assert not fetch.done
    lab.kill("m2")
    lab.run_to_end(fetch)
    assert fetch.done and not fetch.failed and fetch.digest.hexdigest() == expected(size, SEED)
    assert resets(lab.net) == 0
    resumed = lab.members["m3"]
    assert resumed.counters["recover_completed"] == 1
    assert resumed.counters.get("recover_failed", 0) == 0
    assert lab.members["m1"].tunnels.member_for(lab.net.now, CLIENT) == M3
    # never return routability with it: the contact node's first HoTI and CoTI only
    assert len(to_client(lab)) == 2


class UnrecognizedTypeNode(PlainNode):
    """A node that speaks the Mobility Header but no message of RFC 3775's: every one it gets
    is answered with a Binding Error, status 2 (RFC 3775 9.2), from the address it went to."""

    def handle_packet(self, now: float, data: bytes) -> list[Action]:
        if data[6] != protocols.MOBILITY:
            return super().handle_packet(now, data)
        error = mh.BindingError(
            status=mh.BindingErrorStatus.UNRECOGNIZED_MH_TYPE, home_address=IPv6Address(0)
        )
        source, destination = IPv6Address(data[24:40]), IPv6Address(data[8:24])
        return [Transmit(Ipv6Packet(source=source, destination=destination, payload=error).emit())]


def test_a_binding_error_2_for_the_first_return_routability_means_no_mipv6() -> None:
    size = 2_000_000
    lab = DServerLab(SEED, size=size, handoff_every=300_000, mipv6_client=False)
    node = lab.net.nodes["client"]
    node.engine = node.runtime.engine = UnrecognizedTypeNode()
    fetch = lab.download()
    started = lab.net.now
    while "client_without_mipv6" not in lab.members["m1"].counters:
        assert lab.net.now - started < 1.0  # the error, not mipv6_timeout (10 s)
        lab.net.run_for(0.01)
    lab.run_to_end(fetch)
    assert fetch.done and not fetch.failed and fetch.digest.hexdigest() == expected(size, SEED)
    m1 = lab.members["m1"]
    assert m1.counters["client_without_mipv6"] == 1
    assert m1.mobile.counters.get("binding_error_2_ignored", 0) == 0
    assert sum(x.counters.get("handoff_completed", 0) for x in lab.members.values()) >= 2
    assert resets(lab.net) == 0
