"""Home agent (RFC 3775 10) on virtual time, with exact packets asserted.

The memory network routes by address only, so the home link is modelled by /128 routes from
the home link's hosts (the mobile node's home address among them) to a recorder: whatever the
home agent puts on the home link lands there. Packets "reaching the home agent" for a home
address are injected at it directly, as the kernel's proxy route would hand them over.
"""

from __future__ import annotations

import json
import logging
import random
from ipaddress import IPv6Address, IPv6Network

import pytest

from mip6.core.actions import Event, Transmit
from mip6.core.addresses import home_agents_anycast
from mip6.core.config import HomeAgentConfig
from mip6.roles.home_agent import HomeAgent, SnapshotError
from mip6.runtime.memory import MemoryNetwork
from mip6.wire import icmpv6 as icmp
from mip6.wire import mobility as mh
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import DestinationOptions, RoutingType2
from mip6.wire.udp import UdpDatagram

from .harness import Recorder, hao, return_routability, signed_bu

HA = IPv6Address("2001:db8:1::1")
PREFIX = IPv6Network("2001:db8:1::/64")
ANYCAST = IPv6Address("2001:db8:1:0:fdff:ffff:ffff:fffe")  # RFC 2526 ID 126 for a /64
HOME = IPv6Address("2001:db8:1::5")
HOME2 = IPv6Address("2001:db8:1::6")
HOST = IPv6Address("2001:db8:1::77")  # a stationary host on the home link
OTHER_LOCAL = IPv6Address("2001:db8:1::2")  # another address of the home agent's node
CARE_OF = IPv6Address("2001:db8:3::5")
CARE_OF2 = IPv6Address("2001:db8:3::6")
ELSEWHERE = IPv6Address("2001:db8:4::9")  # on-path, but not the registered care-of address
CN = IPv6Address("2001:db8:2::1")
Status = mh.BindingAckStatus


def config(**kwargs: object) -> HomeAgentConfig:
    kwargs.setdefault("allow_unprotected_registration", True)
    return HomeAgentConfig(address=HA, home_prefixes=(PREFIX,), **kwargs)  # type: ignore[arg-type]


class Lab:
    def __init__(
        self,
        cfg: HomeAgentConfig | None = None,
        *,
        seed: int = 7,
        restore: bytes | None = None,
        at: float = 0.0,
    ) -> None:
        self.net = MemoryNetwork(seed)
        self.net.run_until(at)
        self.config = cfg or config()
        rng = random.Random(seed)
        self.ha = (
            HomeAgent(self.config, rng)
            if restore is None
            else HomeAgent.restore(self.config, rng, self.net.now, restore)
        )
        self.mn, self.cn, self.home_link, self.elsewhere = (Recorder() for _ in range(4))
        self.net.add("ha", self.ha)
        for name in ("mn", "cn", "home_link", "elsewhere"):
            self.net.add(name, getattr(self, name))
        self.net.route(PREFIX, "ha")
        self.net.route("2001:db8:3::/64", "mn")
        self.net.route("2001:db8:2::/64", "cn")
        self.net.route("2001:db8:4::/64", "elsewhere")
        self.net.route(IPv6Network(f"{HOME}/128"), "home_link")
        self.net.route(IPv6Network(f"{HOST}/128"), "home_link")
        self.net.call("ha", "start")

    def register(self, sequence: int, **kwargs: object) -> list[Ipv6Packet]:
        """A home registration; returns what the mobile node's care-of addresses received."""
        self.net.inject("ha", home_bu(sequence, **kwargs))  # type: ignore[arg-type]
        self.net.run_for(1.0)
        return self.mn.take()

    def arrive(self, data: bytes) -> None:
        """``data`` reaches the home agent (from a correspondent, or tunnelled by the MN)."""
        self.net.inject("ha", data)
        self.net.run_for(1.0)

    def wire(self, receiver: str) -> list[bytes]:
        """The exact bytes ``receiver`` was sent (and got), oldest first."""
        return [s.data for s in self.net.trace if s.receiver == receiver and not s.lost]

    def events(self, name: str) -> list[Event]:
        return [e for _, e in self.net.nodes["ha"].events if e.name == name]


def home_bu(
    sequence: int,
    *,
    lifetime_units_4s: int = 100,
    acknowledge: bool = True,
    home: IPv6Address = HOME,
    care_of: IPv6Address = CARE_OF,
    destination: IPv6Address = HA,
    alternate: IPv6Address | None = None,
    nonce_indices: bool = False,
) -> bytes:
    """A home registration as the mobile node sends it (RFC 3775 11.7.1): from the care-of
    address with a Home Address option; from the home address itself when they are equal.
    ``nonce_indices``: with a Nonce Indices option, which 9.5.1 forbids here."""
    options: tuple[mh.MobilityOption, ...] = (
        (mh.AlternateCareOfAddress(alternate_care_of_address=alternate),) if alternate else ()
    )
    if nonce_indices:
        options += (mh.NonceIndices(home_nonce_index=1, care_of_nonce_index=2),)
    bu = mh.BindingUpdate(
        sequence=sequence,
        acknowledge=acknowledge,
        home_registration=True,
        lifetime_units_4s=lifetime_units_4s,
        options=options,
    ).aligned()
    if care_of == home:
        return Ipv6Packet(source=home, destination=destination, payload=bu).emit()
    return Ipv6Packet(
        source=care_of, destination=destination, extension_headers=(hao(home),), payload=bu
    ).emit()


def ba_packet(
    status: int,
    sequence: int,
    lifetime_units_4s: int = 0,
    *,
    home: IPv6Address = HOME,
    care_of: IPv6Address = CARE_OF,
    source: IPv6Address = HA,
) -> Ipv6Packet:
    """The Binding Acknowledgement RFC 3775 10.3.1 asks for: to the care-of address with a
    type 2 routing header naming the home address, K clear, no Binding Authorization Data."""
    return Ipv6Packet(
        source=source,
        destination=care_of,
        extension_headers=(RoutingType2(home_address=home),),
        payload=mh.BindingAcknowledgement(
            status=status, sequence=sequence, lifetime_units_4s=lifetime_units_4s
        ).aligned(),
    )


def udp(source: IPv6Address, destination: IPv6Address, payload: bytes = b"data") -> bytes:
    return Ipv6Packet(
        source=source,
        destination=destination,
        payload=UdpDatagram(source_port=9, destination_port=9, payload=payload),
    ).emit()


def forwarded(packet: bytes) -> bytes:
    """``packet`` as a router forwards it (RFC 8200 3): one hop off its Hop Limit."""
    return packet[:7] + bytes((packet[7] - 1,)) + packet[8:]


def tunnel(source: IPv6Address, destination: IPv6Address, inner: bytes) -> bytes:
    return Ipv6Packet(
        source=source, destination=destination, payload=Ipv6Packet.parse(inner)
    ).emit()


@pytest.fixture
def lab() -> Lab:
    return Lab()


# -- home registration (RFC 3775 10.3.1) ----------------------------------------------------------


def test_default_config_unprotected_home_registration_dropped_and_counted() -> None:
    assert (
        HomeAgentConfig(address=HA, home_prefixes=(PREFIX,)).allow_unprotected_registration is False
    )
    lab = Lab(HomeAgentConfig(address=HA, home_prefixes=(PREFIX,)))
    assert lab.register(1) == []
    assert lab.home_link.take() == [] and lab.elsewhere.take() == []
    assert lab.ha.counters["unprotected_home_registration"] == 1
    (event,) = lab.events("unprotected_home_registration")
    assert event.fields == {"source": str(CARE_OF), "sequence": 1}
    assert len(lab.ha.binding_cache) == 0


def test_away_home_registration_accepted_with_ba_via_rh2(lab: Lab) -> None:
    (packet,) = lab.register(10, lifetime_units_4s=60)
    assert packet == ba_packet(Status.ACCEPTED, 10, 60)
    ba = packet.payload
    assert isinstance(ba, mh.BindingAcknowledgement)
    assert ba.key_management_mobility_capability is False
    assert ba.find(mh.BindingAuthorizationData) is None
    entry = lab.ha.binding_cache.get(HOME)
    assert entry is not None and entry.home_registration
    assert (entry.care_of_address, entry.sequence, entry.lifetime) == (CARE_OF, 10, 240)
    (changed,) = lab.events("binding_cache_changed")
    assert changed.fields == {"reason": "registered", "home_registrations": 1}


def test_away_home_registration_without_a_bit_registers_silently(lab: Lab) -> None:
    assert lab.register(10, acknowledge=False) == []
    entry = lab.ha.binding_cache.get(HOME)
    assert entry is not None and entry.home_registration


REJECTIONS = {
    "132 home address off the home prefixes": (
        {},
        {"home": IPv6Address("2001:db8:9::5")},
        Status.NOT_HOME_SUBNET,
    ),
    "133 sent to the home-agents anycast address": (
        {},
        {"destination": ANYCAST},
        Status.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE,
    ),
    "133 sent to another address of the node": (
        {"other_local_addresses": (OTHER_LOCAL,)},
        {"destination": OTHER_LOCAL},
        Status.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE,
    ),
    "129 binding ACL": (
        {"binding_acl": ((IPv6Network("2001:db8:1::/120"), False),)},
        {},
        Status.ADMINISTRATIVELY_PROHIBITED,
    ),
    "129 default deny": ({"acl_default_allow": False}, {}, Status.ADMINISTRATIVELY_PROHIBITED),
    "134 the home agent's own address": (
        {},
        {"home": HA},
        Status.DUPLICATE_ADDRESS_DETECTION_FAILED,
    ),
    "134 an address in use on the home link": (
        {"home_link_addresses": (HOME,)},
        {},
        Status.DUPLICATE_ADDRESS_DETECTION_FAILED,
    ),
    "134 the anycast address": (
        {},
        {"home": ANYCAST},
        Status.DUPLICATE_ADDRESS_DETECTION_FAILED,
    ),
}


@pytest.mark.parametrize("acknowledge", [True, False], ids=["A=1", "A=0"])
@pytest.mark.parametrize("case", list(REJECTIONS))
def test_rejected_home_registration_gets_ba_whatever_the_a_bit(
    case: str, acknowledge: bool
) -> None:
    config_kwargs, bu_kwargs, status = REJECTIONS[case]
    lab = Lab(config(**config_kwargs))
    (packet,) = lab.register(7, acknowledge=acknowledge, **bu_kwargs)
    home = bu_kwargs.get("home", HOME)
    # Never from the anycast address; from the other local address it was sent to.
    source = OTHER_LOCAL if bu_kwargs.get("destination") == OTHER_LOCAL else HA
    assert packet == ba_packet(status, 7, home=home, source=source)
    assert len(lab.ha.binding_cache) == 0
    assert lab.ha.counters[f"ba_status_{status}"] == 1


@pytest.mark.parametrize("acknowledge", [True, False], ids=["A=1", "A=0"])
def test_full_cache_gets_130(acknowledge: bool) -> None:
    lab = Lab(config(binding_cache_size=1))
    lab.register(1, home=HOME2, care_of=CARE_OF2)
    (packet,) = lab.register(1, acknowledge=acknowledge)
    assert packet == ba_packet(Status.INSUFFICIENT_RESOURCES, 1)
    assert lab.ha.binding_cache.get(HOME) is None


def test_binding_acl_first_match_wins() -> None:
    acl = ((IPv6Network("2001:db8:1::/120"), True), (PREFIX, False))
    lab = Lab(config(binding_acl=acl, acl_default_allow=True))
    (packet,) = lab.register(1)
    assert packet == ba_packet(Status.ACCEPTED, 1, 100)
    outside = IPv6Address("2001:db8:1::1:5")  # in the /64, not in the /120
    (packet,) = lab.register(1, home=outside)
    assert packet == ba_packet(Status.ADMINISTRATIVELY_PROHIBITED, 1, home=outside)


def test_care_of_address_on_the_home_link_refused_with_128(lab: Lab) -> None:
    lab.register(1, alternate=HOST)
    (packet,) = lab.home_link.take()  # the BA goes to the (refused) care-of address
    assert packet == ba_packet(Status.REASON_UNSPECIFIED, 1, care_of=HOST)
    assert len(lab.ha.binding_cache) == 0


def test_sequence_not_newer_gets_135_with_last_accepted_even_without_a_bit(lab: Lab) -> None:
    lab.register(100)
    (packet,) = lab.register(100)
    assert packet == ba_packet(Status.SEQUENCE_NUMBER_OUT_OF_WINDOW, 100)
    (packet,) = lab.register(95, acknowledge=False, care_of=CARE_OF2)
    assert packet == ba_packet(Status.SEQUENCE_NUMBER_OUT_OF_WINDOW, 100, care_of=CARE_OF2)
    (packet,) = lab.register(100 + 0x8000)  # half the space ahead: not newer
    assert packet.payload.status == Status.SEQUENCE_NUMBER_OUT_OF_WINDOW
    entry = lab.ha.binding_cache.get(HOME)
    assert entry is not None and (entry.sequence, entry.care_of_address) == (100, CARE_OF)
    (packet,) = lab.register(101, care_of=CARE_OF2)  # a move: new care-of address
    assert packet == ba_packet(Status.ACCEPTED, 101, 100, care_of=CARE_OF2)
    entry = lab.ha.binding_cache.get(HOME)
    assert entry is not None and (entry.sequence, entry.care_of_address) == (101, CARE_OF2)


def test_refresh_and_move_announce_binding_cache_changes(lab: Lab) -> None:
    lab.register(1)
    lab.register(2)
    lab.register(3, care_of=CARE_OF2)
    changes = lab.events("binding_cache_changed")
    assert [e.fields for e in changes] == [{"reason": "registered", "home_registrations": 1}] * 3
    assert lab.events("binding_added")[-1].fields["care_of_address"] == str(CARE_OF2)


def test_each_decision_logged_at_debug(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="mip6.roles.home_agent"):
        lab.register(4)
        lab.arrive(udp(CN, HOME))
        lab.arrive(tunnel(ELSEWHERE, HA, udp(HOME, CN)))
    assert [r.getMessage() for r in caplog.records] == [
        f"home registration: home={HOME} care_of={CARE_OF} to={HA} seq=4 lifetime=400s A=1",
        f"home registration accepted: home={HOME} care_of={CARE_OF} seq=4 lifetime=400s",
        f"binding ack: home={HOME} to={CARE_OF} status=0 seq=4 lifetime=400s",
        f"tunnel: {CN} -> {HOME} via {CARE_OF} (52 bytes)",
        f"drop: reverse tunnel from {ELSEWHERE} for inner source {HOME}: no such home registration",
    ]


def test_sequence_wraps_modulo_2_16(lab: Lab) -> None:
    lab.register(65535)
    (packet,) = lab.register(0)
    assert packet == ba_packet(Status.ACCEPTED, 0, 100)


def test_correspondent_binding_then_home_registration_gets_139(lab: Lab) -> None:
    """The home agent's correspondent role binds HOME first (return routability with the
    home agent as correspondent); a home registration may not change its type (9.5.1)."""
    lab.net.route(IPv6Network(f"{HOME}/128"), "mn")  # the HoT to the home address reaches the MN
    tokens = return_routability(
        lab.net, cn="ha", mn=lab.mn, home=HOME, care_of=CARE_OF, correspondent=HA
    )
    lab.arrive(signed_bu(home=HOME, care_of=CARE_OF, correspondent=HA, tokens=tokens, sequence=1))
    (accepted,) = lab.mn.take()
    assert accepted.payload.status == Status.ACCEPTED
    assert accepted.payload.find(mh.BindingAuthorizationData) is not None
    entry = lab.ha.binding_cache.get(HOME)
    assert entry is not None and not entry.home_registration
    (packet,) = lab.register(2)
    assert packet == ba_packet(Status.REGISTRATION_TYPE_CHANGE_DISALLOWED, 2)
    assert not lab.ha.binding_cache.get(HOME).home_registration


def test_home_registration_then_unauthorized_correspondent_bu_silently_discarded(
    lab: Lab,
) -> None:
    """RFC 3775 9.5.1: a correspondent Binding Update whose authenticator does not verify is
    silently discarded, also for a home address registered here: no BA 139 to a care-of
    address of the sender's choice, and the home registration untouched. (The nonce indices
    are current ones, or the BU would get BA 136-138, which 9.5.1 sends unauthorized.)"""
    lab.net.route(IPv6Network(f"{HOME}/128"), "mn")  # the HoT to the home address reaches the MN
    tokens = return_routability(
        lab.net, cn="ha", mn=lab.mn, home=HOME, care_of=CARE_OF, correspondent=HA
    )
    lab.register(1)
    for lifetime in (100, 0):
        lab.arrive(
            signed_bu(
                home=HOME,
                care_of=ELSEWHERE,
                correspondent=HA,
                tokens=tokens,
                sequence=5,
                lifetime_units_4s=lifetime,
                tamper=True,
            )
        )
        assert lab.elsewhere.take() == []
    assert lab.ha.correspondent.counters["bu_bad_authenticator"] == 2
    entry = lab.ha.binding_cache.get(HOME)
    assert entry is not None and entry.home_registration and entry.care_of_address == CARE_OF


def test_home_registration_then_authorized_correspondent_bu_gets_139_and_registration_stays(
    lab: Lab,
) -> None:
    """RFC 3775 9.5.1: once authorized, a correspondent registration for a home address that
    holds a home registration gets BA 139 (with Binding Authorization Data: it comes after the
    authenticator check), and the home registration is untouched."""
    lab.net.route(IPv6Network(f"{HOME}/128"), "mn")  # the HoT to the home address reaches the MN
    tokens = return_routability(
        lab.net, cn="ha", mn=lab.mn, home=HOME, care_of=CARE_OF, correspondent=HA
    )
    lab.register(1)
    for sequence, lifetime in ((5, 100), (6, 0)):
        lab.arrive(
            signed_bu(
                home=HOME,
                care_of=CARE_OF,
                correspondent=HA,
                tokens=tokens,
                sequence=sequence,
                lifetime_units_4s=lifetime,
            )
        )
        (packet,) = lab.mn.take()
        ba = packet.payload
        assert isinstance(ba, mh.BindingAcknowledgement)
        assert (ba.status, ba.sequence) == (Status.REGISTRATION_TYPE_CHANGE_DISALLOWED, sequence)
        assert ba.find(mh.BindingAuthorizationData) is not None
    entry = lab.ha.binding_cache.get(HOME)
    assert entry is not None and entry.home_registration and entry.care_of_address == CARE_OF


def test_home_registration_with_nonce_indices_silently_discarded(lab: Lab) -> None:
    """RFC 3775 9.5.1: "If the Home Registration (H) bit is set, the Nonce Indices mobility
    option MUST NOT be present"; such a Binding Update is silently discarded."""
    assert lab.register(1, nonce_indices=True) == []
    assert lab.ha.binding_cache.get(HOME) is None
    assert lab.ha.counters["home_registration_with_nonce_indices"] == 1
    lab.arrive(udp(CN, HOME))  # not intercepted: no tunnel to the care-of address
    assert lab.mn.take() == []


@pytest.mark.parametrize(
    "limits,granted_units",
    [
        ({"max_home_registration_lifetime": 1000.0}, 250),
        ({"prefix_valid_lifetime": 600}, 150),
        ({"max_home_registration_lifetime": 1002.0, "prefix_valid_lifetime": 2000}, 250),
        ({}, 21_600),  # defaults: HaMaxBindingLife 262,008 s, prefix valid for 86,400 s
    ],
)
def test_lifetime_capped_by_home_agent_and_prefix_lifetimes(
    limits: dict[str, float], granted_units: int
) -> None:
    lab = Lab(config(**limits))
    (packet,) = lab.register(1, lifetime_units_4s=0xFFFF)
    assert packet == ba_packet(Status.ACCEPTED, 1, granted_units)
    entry = lab.ha.binding_cache.get(HOME)
    assert entry is not None and entry.lifetime == granted_units * 4
    assert entry.expires == granted_units * 4  # injected at the home agent at t = 0


# -- deregistration (RFC 3775 10.3.2) -------------------------------------------------------------


def test_lifetime_zero_deregisters_and_stops_interception(lab: Lab) -> None:
    lab.register(1)
    (packet,) = lab.register(2, lifetime_units_4s=0)
    assert packet == ba_packet(Status.ACCEPTED, 2, 0)
    assert lab.ha.binding_cache.get(HOME) is None
    assert lab.net.pending_timers("ha") == []  # the expiry timer was cancelled
    data = udp(CN, HOME)
    assert lab.ha.handle_packet(lab.net.now, data) == [Transmit(data, link="home")]
    assert [e.fields["reason"] for e in lab.events("binding_cache_changed")] == [
        "registered",
        "deregistered",
    ]


def test_deregistration_from_home_answered_on_home_link(lab: Lab) -> None:
    lab.register(1)
    actions = lab.ha.handle_packet(lab.net.now, home_bu(2, care_of=HOME))
    (transmit,) = [a for a in actions if isinstance(a, Transmit)]
    assert transmit.link == "home"  # never through the old tunnel (RFC 3775 10.3.1, 6.1)
    assert Ipv6Packet.parse(transmit.data) == Ipv6Packet(
        source=HA,
        destination=HOME,
        payload=mh.BindingAcknowledgement(status=Status.ACCEPTED, sequence=2).aligned(),
    )
    assert lab.ha.binding_cache.get(HOME) is None


def test_deregistration_without_registration_gets_133(lab: Lab) -> None:
    (packet,) = lab.register(1, lifetime_units_4s=0)
    assert packet == ba_packet(Status.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE, 1)


def test_alternate_care_of_address_honoured(lab: Lab) -> None:
    (packet,) = lab.register(1, alternate=CARE_OF2)
    assert packet == ba_packet(Status.ACCEPTED, 1, 100, care_of=CARE_OF2)
    entry = lab.ha.binding_cache.get(HOME)
    assert entry is not None and entry.care_of_address == CARE_OF2
    lab.arrive(udp(CN, HOME))
    (outer,) = lab.mn.take()
    assert outer.destination == CARE_OF2


# -- interception and tunnels (RFC 3775 10.4, RFC 2473) -----------------------------------------


def test_correspondent_packet_to_home_address_tunnelled_to_care_of(lab: Lab) -> None:
    lab.register(1)
    inner = udp(CN, HOME, b"x" * 1000)
    lab.arrive(inner)
    (outer,) = lab.wire("mn")[-1:]
    assert outer[:8] == bytes((0x60, 0, 0, 0)) + len(inner).to_bytes(2, "big") + bytes((41, 64))
    assert outer[8:24] == HA.packed and outer[24:40] == CARE_OF.packed
    # RFC 2473 3: the inner packet unchanged, but for the Hop Limit the entry point lowers
    # as a router forwarding it (3.1)
    assert outer[40:] == forwarded(inner)
    (packet,) = lab.mn.take()
    assert packet.payload == Ipv6Packet.parse(forwarded(inner))
    assert lab.cn.take() == [] and lab.home_link.take() == []


def test_home_agents_own_packet_to_home_address_tunnelled(lab: Lab) -> None:
    lab.register(1)
    data = udp(HA, HOME)
    (action,) = lab.ha.send(lab.net.now, data)
    assert isinstance(action, Transmit) and action.link is None
    assert action.data[8:40] == HA.packed + CARE_OF.packed and action.data[40:] == data


def test_truncated_packet_to_home_address_not_tunnelled(lab: Lab) -> None:
    lab.register(1)
    data = udp(CN, HOME)
    lab.arrive(data[:-2])
    assert lab.mn.take() == []
    assert lab.ha.counters["tunnel_malformed"] == 1


def test_reverse_tunnel_from_registered_care_of_forwarded_unchanged(lab: Lab) -> None:
    lab.register(1)
    inner = udp(HOME, CN, b"y" * 900)
    lab.arrive(tunnel(CARE_OF, HA, inner))
    assert lab.wire("cn") == [inner]


def test_reverse_tunnel_behind_extension_headers_checked_then_forwarded(lab: Lab) -> None:
    lab.register(1)
    inner = udp(HOME, CN)
    outer = Ipv6Packet(
        source=CARE_OF,
        destination=HA,
        extension_headers=(DestinationOptions.aligned([]),),
        payload=Ipv6Packet.parse(inner),
    ).emit()
    lab.arrive(outer)
    assert lab.wire("cn") == [inner]


@pytest.mark.parametrize(
    "outer_source,inner_source,registered",
    [
        (ELSEWHERE, HOME, True),  # not the registered care-of address
        (CARE_OF, HOME2, True),  # inner source not a registered home address
        (CARE_OF, HOST, True),  # an ordinary home link address
        (CARE_OF, HOME, False),  # nothing registered yet
    ],
)
def test_reverse_tunnel_refused_unless_from_the_registered_care_of(
    lab: Lab, outer_source: IPv6Address, inner_source: IPv6Address, registered: bool
) -> None:
    if registered:
        lab.register(1)
    lab.arrive(tunnel(outer_source, HA, udp(inner_source, CN)))
    assert lab.cn.take() == [] and lab.home_link.take() == []
    assert lab.ha.counters["reverse_tunnel_rejected"] == 1


def test_hoti_reverse_tunnelled_out_and_hot_tunnelled_back(lab: Lab) -> None:
    """RFC 3775 10.4.5 / 10.4.6: the HoTI leaves through the reverse tunnel as it is; the HoT
    to the home address is intercepted traffic like any other and tunnelled."""
    lab.register(1)
    hoti = Ipv6Packet(
        source=HOME, destination=CN, payload=mh.HomeTestInit(home_init_cookie=b"H" * 8)
    ).emit()
    lab.arrive(tunnel(CARE_OF, HA, hoti))
    assert lab.wire("cn") == [hoti]
    hot = Ipv6Packet(
        source=CN,
        destination=HOME,
        payload=mh.HomeTest(
            home_nonce_index=3, home_init_cookie=b"H" * 8, home_keygen_token=b"T" * 8
        ),
    ).emit()
    lab.mn.take()
    lab.arrive(hot)
    (outer,) = lab.wire("mn")[-1:]
    assert outer[8:24] == HA.packed and outer[24:40] == CARE_OF.packed
    assert outer[40:] == forwarded(hot)


@pytest.mark.parametrize("hop_limit", [1, 0])
def test_packet_whose_hop_limit_runs_out_is_not_tunnelled(lab: Lab, hop_limit: int) -> None:
    """RFC 2473 3.1, RFC 8200 3: the entry point forwards as a router; a packet that would
    leave with Hop Limit 0 is discarded and its source gets a Time Exceeded (RFC 4443 3.3,
    code 0) from the home agent's own address, not from the home address it was sent to."""
    lab.register(1)
    inner = udp(CN, HOME)
    inner = inner[:7] + bytes((hop_limit,)) + inner[8:]
    lab.arrive(inner)
    assert lab.mn.take() == []
    assert lab.ha.counters["tunnel_hop_limit_exceeded"] == 1
    (reply,) = lab.cn.take()
    assert reply.source == HA and reply.destination == CN
    assert isinstance(reply.payload, icmp.TimeExceeded)
    assert reply.payload.code == icmp.HOP_LIMIT_EXCEEDED
    assert reply.payload.invoking_packet == inner
    # Hop Limit 2 still goes through, with 1 left
    lab.arrive(inner[:7] + b"\x02" + inner[8:])
    (packet,) = lab.mn.take()
    assert packet.payload.hop_limit == 1


def test_reverse_tunnel_between_two_mobile_nodes_tunnels_again(lab: Lab) -> None:
    lab.register(1)
    lab.register(1, home=HOME2, care_of=CARE_OF2)
    inner = udp(HOME, HOME2)
    lab.arrive(tunnel(CARE_OF, HA, inner))
    (outer,) = lab.wire("mn")[-1:]
    assert outer[24:40] == CARE_OF2.packed and outer[40:] == forwarded(inner)


def test_home_prefix_address_without_binding_forwarded_on_home_link(lab: Lab) -> None:
    data = udp(CN, HOST)
    assert lab.ha.handle_packet(0.0, data) == [Transmit(data, link="home")]
    lab.arrive(data)
    assert lab.wire("home_link") == [data]


def test_packet_for_someone_else_dropped(lab: Lab) -> None:
    lab.arrive(udp(CN, IPv6Address("2001:db8:7::1")))
    assert lab.ha.counters["not_for_home_agent"] == 1


def test_packets_for_the_home_agent_delivered(lab: Lab) -> None:
    data = udp(CN, HA)
    lab.arrive(data)
    assert [d for _, d in lab.net.nodes["ha"].delivered] == [data]


# -- dynamic home agent address discovery (RFC 3775 10.5) ---------------------------------------


def test_home_agents_anycast_address_is_rfc_2526_id_126() -> None:
    assert home_agents_anycast(PREFIX) == ANYCAST
    assert home_agents_anycast(IPv6Network("2001:db8:1::/48")) == IPv6Address(
        "2001:db8:1:ffff:ffff:ffff:ffff:fffe"
    )


def test_dhaad_request_answered_with_home_agents_by_preference() -> None:
    others = (
        (IPv6Address("2001:db8:1::a"), 10),
        (IPv6Address("2001:db8:1::b"), -5),
        (IPv6Address("2001:db8:1::c"), 20),
    )
    lab = Lab(config(other_home_agents=others, home_agent_preference=0))
    request = Ipv6Packet(
        source=CARE_OF,
        destination=ANYCAST,
        payload=icmp.HomeAgentAddressDiscoveryRequest(identifier=0x1234),
    )
    lab.arrive(request.emit())
    (reply,) = lab.mn.take()
    assert reply == Ipv6Packet(
        source=HA,
        destination=CARE_OF,
        payload=icmp.HomeAgentAddressDiscoveryReply(
            identifier=0x1234,
            home_agent_addresses=(
                IPv6Address("2001:db8:1::c"),
                IPv6Address("2001:db8:1::a"),
                HA,
                IPv6Address("2001:db8:1::b"),
            ),
        ),
    )


def test_dhaad_equal_preferences_all_listed_in_varying_order() -> None:
    others = tuple((IPv6Address(f"2001:db8:1::{i:x}"), 0) for i in range(10, 16))
    lab = Lab(config(other_home_agents=others))
    orders = set()
    for identifier in range(8):
        request = Ipv6Packet(
            source=CARE_OF,
            destination=ANYCAST,
            payload=icmp.HomeAgentAddressDiscoveryRequest(identifier=identifier),
        )
        lab.arrive(request.emit())
        (reply,) = lab.mn.take()
        assert reply.payload.identifier == identifier
        addresses = reply.payload.home_agent_addresses
        assert sorted(addresses) == sorted([HA, *(a for a, _ in others)])
        orders.add(addresses)
    assert len(orders) > 1


def test_dhaad_request_to_unicast_address_not_answered(lab: Lab) -> None:
    request = Ipv6Packet(
        source=CARE_OF, destination=HA, payload=icmp.HomeAgentAddressDiscoveryRequest(identifier=1)
    )
    lab.arrive(request.emit())
    assert lab.mn.take() == []


# -- mobile prefix discovery (RFC 3775 10.6) ------------------------------------------------------


def mps(identifier: int, home: IPv6Address = HOME) -> bytes:
    return Ipv6Packet(
        source=CARE_OF,
        destination=HA,
        extension_headers=(hao(home),),
        payload=icmp.MobilePrefixSolicitation(identifier=identifier),
    ).emit()


def test_mobile_prefix_solicitation_answered_via_rh2(lab: Lab) -> None:
    lab.register(1)
    lab.arrive(mps(77))
    (packet,) = lab.mn.take()
    assert packet == Ipv6Packet(
        source=HA,
        destination=CARE_OF,
        extension_headers=(RoutingType2(home_address=HOME),),
        payload=icmp.MobilePrefixAdvertisement(
            identifier=77,
            options=(
                icmp.PrefixInformation(
                    prefix_length=64,
                    prefix=PREFIX.network_address,
                    on_link=True,
                    autonomous=True,
                    valid_lifetime=86_400,
                    preferred_lifetime=14_400,
                ),
            ),
        ),
    )


def test_mobile_prefix_solicitation_through_reverse_tunnel_answered_through_tunnel(
    lab: Lab,
) -> None:
    lab.register(1)
    solicitation = Ipv6Packet(
        source=HOME, destination=HA, payload=icmp.MobilePrefixSolicitation(identifier=5)
    ).emit()
    lab.mn.take()
    lab.arrive(tunnel(CARE_OF, HA, solicitation))
    (outer,) = lab.mn.take()
    assert (outer.source, outer.destination) == (HA, CARE_OF)
    inner = outer.payload
    assert isinstance(inner, Ipv6Packet) and (inner.source, inner.destination) == (HA, HOME)
    assert isinstance(inner.payload, icmp.MobilePrefixAdvertisement)
    assert inner.payload.identifier == 5


def test_mobile_prefix_solicitation_without_binding_gets_binding_error(lab: Lab) -> None:
    lab.arrive(mps(77))
    (packet,) = lab.mn.take()
    assert packet.payload == mh.BindingError(status=1, home_address=HOME).aligned()


# -- expiry and the non-volatile binding cache ----------------------------------------------------


def test_home_registration_expires(lab: Lab) -> None:
    lab.register(1, lifetime_units_4s=10)  # accepted at t = 0, for 40 s
    lab.net.run_until(39.99)
    assert lab.ha.binding_cache.get(HOME) is not None
    lab.net.run_until(40.0)
    assert lab.ha.binding_cache.get(HOME) is None
    (expired,) = lab.events("binding_expired")
    assert expired.fields["home_address"] == str(HOME)
    assert lab.events("binding_cache_changed")[-1].fields == {
        "reason": "expired",
        "home_registrations": 0,
    }
    data = udp(CN, HOME)
    assert lab.ha.handle_packet(lab.net.now, data) == [Transmit(data, link="home")]


def test_snapshot_is_versioned_json_with_absolute_expiry(lab: Lab) -> None:
    lab.register(9, lifetime_units_4s=25)
    document = json.loads(lab.ha.snapshot())
    assert document == {
        "format": "mip6.home_agent.binding_cache",
        "version": 1,
        "home_agent": str(HA),
        "home_registrations": [
            {
                "home_address": str(HOME),
                "care_of_address": str(CARE_OF),
                "sequence": 9,
                "lifetime": 100.0,
                "expires": 100.0,
            }
        ],
    }


def test_restart_from_snapshot_keeps_tunnelling_and_drops_expired(lab: Lab) -> None:
    lab.register(9, lifetime_units_4s=100)  # 400 s
    lab.register(3, home=HOME2, care_of=CARE_OF2, lifetime_units_4s=10)  # 40 s
    blob = lab.ha.snapshot()

    later = Lab(restore=blob, at=100.0)
    assert later.ha.binding_cache.get(HOME2) is None
    assert later.ha.counters["restore_expired"] == 1
    assert [e.fields["reason"] for e in later.events("binding_cache_changed")] == ["restored"]
    inner = udp(CN, HOME)
    later.arrive(inner)
    (outer,) = later.wire("mn")
    assert outer[24:40] == CARE_OF.packed and outer[40:] == forwarded(inner)
    later.mn.take()
    data = udp(CN, HOME2)
    assert later.ha.handle_packet(later.net.now, data) == [Transmit(data, link="home")]
    (packet,) = later.register(9)  # the sequence number survived the restart
    assert packet == ba_packet(Status.SEQUENCE_NUMBER_OUT_OF_WINDOW, 9)
    later.net.run_until(401.0)  # the restored expiry timer
    assert later.ha.binding_cache.get(HOME) is None


def test_snapshot_round_trips(lab: Lab) -> None:
    lab.register(9)
    lab.register(3, home=HOME2, care_of=CARE_OF2)
    blob = lab.ha.snapshot()
    assert HomeAgent.restore(lab.config, random.Random(1), lab.net.now, blob).snapshot() == blob


def _snapshot(**changes: object) -> bytes:
    document: dict[str, object] = {
        "format": "mip6.home_agent.binding_cache",
        "version": 1,
        "home_agent": str(HA),
        "home_registrations": [
            {
                "home_address": str(HOME),
                "care_of_address": str(CARE_OF),
                "sequence": 1,
                "lifetime": 400.0,
                "expires": 400.0,
            }
        ],
    }
    entry = document["home_registrations"][0]  # type: ignore[index]
    for key, value in changes.items():
        if key in entry:
            entry[key] = value
        else:
            document[key] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "blob",
    [
        b"\xff\xfe not json",
        b"[]",
        _snapshot(format="umip"),
        _snapshot(version=2),
        _snapshot(version="1"),
        _snapshot(version=True),
        _snapshot(home_agent="2001:db8:1::99"),
        _snapshot(home_agent=None),
        _snapshot(home_registrations={}),
        _snapshot(home_address="not-an-address"),
        _snapshot(care_of_address=42),
        _snapshot(sequence=70_000),
        _snapshot(sequence=1.5),
        _snapshot(expires="soon"),
        _snapshot(lifetime=-1),
        _snapshot(expires=float("nan")),
        json.dumps(
            {"format": "mip6.home_agent.binding_cache", "version": 1, "home_agent": str(HA)}
        ).encode(),
    ],
)
def test_malformed_or_foreign_snapshot_refused(blob: bytes) -> None:
    with pytest.raises(SnapshotError):
        HomeAgent.restore(config(), random.Random(1), 0.0, blob)


def test_snapshot_with_duplicate_or_extra_fields_refused() -> None:
    document = json.loads(_snapshot())
    document["home_registrations"].append(dict(document["home_registrations"][0]))
    with pytest.raises(SnapshotError, match="twice"):
        HomeAgent.restore(config(), random.Random(1), 0.0, json.dumps(document).encode())
    document = json.loads(_snapshot())
    document["home_registrations"][0]["flags"] = 1
    with pytest.raises(SnapshotError, match="exactly"):
        HomeAgent.restore(config(), random.Random(1), 0.0, json.dumps(document).encode())


def test_valid_hand_written_snapshot_restores() -> None:
    engine = HomeAgent.restore(config(), random.Random(1), 10.0, _snapshot())
    (timer, restored) = engine.start(10.0)
    assert timer.at == 400.0 and restored.name == "binding_cache_restored"
    assert engine.start(10.0) == []


# -- duplicate address detection on the home link (RFC 3775 10.3.1, RFC 4862 5.4) ---------------


def dad_engine() -> HomeAgent:
    return HomeAgent(config(duplicate_address_detection=True, home_link=None), random.Random(1))


def neighbor_advertisement(target: IPv6Address, *, hop_limit: int = 255) -> bytes:
    """A defender's answer to DAD (RFC 4861 7.2.4: to all-nodes, the source the unspecified
    address's solicitation could not name)."""
    return Ipv6Packet(
        source=HOST,
        destination=IPv6Address("ff02::1"),
        hop_limit=hop_limit,
        payload=icmp.NeighborAdvertisement(target_address=target, override=True),
    ).emit()


def transmitted(actions: list[object]) -> list[Ipv6Packet]:
    return [Ipv6Packet.parse(a.data) for a in actions if isinstance(a, Transmit)]


def test_dad_new_registration_solicits_then_accepts_after_retrans_timer() -> None:
    ha = dad_engine()
    actions = ha.handle_packet(0.0, home_bu(10))
    (solicitation,) = transmitted(actions)
    assert solicitation.source == IPv6Address("::")
    assert solicitation.destination == IPv6Address("ff02::1:ff00:5")  # RFC 4291 2.7.1
    assert solicitation.hop_limit == 255
    assert solicitation.payload == icmp.NeighborSolicitation(target_address=HOME)
    assert ha.binding_cache.get(HOME) is None  # held, not yet accepted
    # the mobile node's retransmission while DAD runs is not answered twice
    assert transmitted(ha.handle_packet(0.5, home_bu(11))) == []
    (ack,) = transmitted(ha.handle_timer(1.0, ("duplicate_address_detection", HOME)))
    assert ack == ba_packet(Status.ACCEPTED, 10, 100)
    entry = ha.binding_cache.get(HOME)
    assert entry is not None and entry.home_registration


def test_dad_neighbor_advertisement_for_home_address_gets_134() -> None:
    ha = dad_engine()
    ha.handle_packet(0.0, home_bu(10))
    actions = ha.handle_packet(0.2, neighbor_advertisement(HOME))
    (ack,) = transmitted(actions)
    assert ack == ba_packet(Status.DUPLICATE_ADDRESS_DETECTION_FAILED, 10)
    assert any(isinstance(a, Event) and a.name == "dad_failed" for a in actions)
    assert transmitted(ha.handle_timer(1.0, ("duplicate_address_detection", HOME))) == []
    assert ha.binding_cache.get(HOME) is None


def test_dad_advertisement_for_another_target_or_hop_limit_below_255_ignored() -> None:
    ha = dad_engine()
    ha.handle_packet(0.0, home_bu(10))
    assert transmitted(ha.handle_packet(0.1, neighbor_advertisement(HOME2))) == []
    assert transmitted(ha.handle_packet(0.2, neighbor_advertisement(HOME, hop_limit=64))) == []
    (ack,) = transmitted(ha.handle_timer(1.0, ("duplicate_address_detection", HOME)))
    assert ack == ba_packet(Status.ACCEPTED, 10, 100)


def test_dad_refresh_of_existing_registration_accepted_at_once() -> None:
    ha = dad_engine()
    ha.handle_packet(0.0, home_bu(10))
    ha.handle_timer(1.0, ("duplicate_address_detection", HOME))
    (ack,) = transmitted(ha.handle_packet(2.0, home_bu(11)))
    assert ack == ba_packet(Status.ACCEPTED, 11, 100)
