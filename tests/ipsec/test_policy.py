"""The RFC 3776 SPD of a mobile node and its home agent, end to end through output() and
input(): what gets protected in which mode, what unprotected traffic is refused, and why."""

from __future__ import annotations

import random
from ipaddress import IPv6Address

import pytest

from mip6.core.ipsec import (
    Accepted,
    Algorithm,
    Direction,
    Dropped,
    Mode,
    PairKeys,
    PolicyAction,
    PolicyEntry,
    SaKeys,
    SaRetired,
    SecurityPolicyDatabase,
    Selector,
    SequenceExhausted,
    home_registration_guard,
    protect,
)
from mip6.wire import mobility as mh
from mip6.wire import protocols
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import DestinationOptions, HomeAddressOption
from mip6.wire.udp import UdpDatagram

from .helpers import (
    ALGORITHMS,
    CARE_OF,
    CORRESPONDENT,
    HOME,
    HOME_AGENT,
    binding_acknowledgement,
    binding_update,
    forward_tunnelled,
    home_test,
    home_test_init,
    keys,
    reverse_tunnelled,
)

OTHER_HOME = IPv6Address("2001:db8:1::99")


def pair_keys(algorithm: Algorithm, base: int = 0x1000) -> PairKeys:
    material = keys(algorithm)
    return PairKeys(
        **{
            name: SaKeys(spi=base + i, **material)
            for i, name in enumerate(
                ("binding_update", "binding_acknowledgement", "home_test_init", "home_test"),
                start=1,
            )
        }
    )


def databases(
    algorithm: Algorithm, *, tunnel_all: bool = False, seed: int = 1
) -> tuple[SecurityPolicyDatabase, SecurityPolicyDatabase]:
    """(mobile node, home agent), configured from the same keys as RFC 3776 5.2 shows."""
    rng = random.Random(seed)
    out = []
    for role in ("mobile_node", "home_agent"):
        database = SecurityPolicyDatabase(random_bytes=rng.randbytes)
        database.add_pair(
            role=role,
            home_address=HOME,
            home_agent=HOME_AGENT,
            algorithm=algorithm,
            keys=pair_keys(algorithm),
            tunnel_all=tunnel_all,
        )
        if role == "home_agent":
            for entry in home_registration_guard([HOME_AGENT]):
                database.add_policy(entry)
        out.append(database)
    return out[0], out[1]


def accepted(result: Accepted | Dropped) -> Accepted:
    assert isinstance(result, Accepted), result
    return result


def dropped(result: Accepted | Dropped) -> Dropped:
    assert isinstance(result, Dropped), result
    return result


def udp_packet(source: IPv6Address = HOME, destination: IPv6Address = CORRESPONDENT) -> bytes:
    return Ipv6Packet(
        source=source,
        destination=destination,
        payload=UdpDatagram(source_port=7, destination_port=9, payload=b"data"),
    ).emit()


# -- the four RFC 3776 flows ----------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_bu_transport_mode_mobile_node_to_home_agent(algorithm: Algorithm) -> None:
    mobile, home_agent = databases(algorithm)
    wire = mobile.output(binding_update())
    assert wire is not None and wire[64] == 0x00 and wire[40] == protocols.ESP  # DestOpts -> ESP
    result = accepted(home_agent.input(wire))
    assert result.data == binding_update()
    assert result.sa is not None and result.sa.spi == 0x1001 and result.sa.mode is Mode.TRANSPORT
    assert result.protected and result.inner is None
    assert home_agent.counters["in_protected"] == 1


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_ba_transport_mode_home_agent_to_mobile_node(algorithm: Algorithm) -> None:
    mobile, home_agent = databases(algorithm)
    wire = home_agent.output(binding_acknowledgement())
    assert wire is not None and wire[40] == protocols.ESP  # the RH2's Next Header
    result = accepted(mobile.input(wire))
    assert result.data == binding_acknowledgement()
    assert result.sa is not None and result.sa.spi == 0x1002


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hoti_tunnel_mode_replaces_plain_encapsulation(algorithm: Algorithm) -> None:
    """The mobile node engine transmits HoTI in RFC 2473 IPv6-in-IPv6; output() turns the
    encapsulation into ESP tunnel mode with the same outer addresses (RFC 3776 3.2, 4.3), and
    the home agent's input() gives back exactly the RFC 2473 packet, so its reverse-tunnel
    check of the outer source against the care-of address still applies."""
    mobile, home_agent = databases(algorithm)
    plain = reverse_tunnelled(home_test_init())
    wire = mobile.output(plain)
    assert wire is not None and wire[6] == protocols.ESP and wire[8:24] == CARE_OF.packed
    result = accepted(home_agent.input(wire))
    assert result.data == plain
    assert result.inner == home_test_init()
    assert result.sa is not None and result.sa.spi == 0x1003 and result.sa.mode is Mode.TUNNEL


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hot_tunnel_mode_home_agent_to_mobile_node(algorithm: Algorithm) -> None:
    mobile, home_agent = databases(algorithm)
    plain = forward_tunnelled(home_test())
    wire = home_agent.output(plain)
    assert wire is not None and wire[6] == protocols.ESP
    result = accepted(mobile.input(wire))
    assert result.data == plain and result.inner == home_test()


def test_tunnel_follows_the_care_of_address() -> None:
    """RFC 3776 4.3: after a move the tunnel's outer source is the new care-of address; the SA
    is the same, no reconfiguration."""
    mobile, home_agent = databases(Algorithm.AES_GCM_16)
    from mip6.core.datapath import encapsulate

    for care_of in (CARE_OF, IPv6Address("2001:db8:4::7")):
        wire = mobile.output(encapsulate(home_test_init(), care_of, HOME_AGENT))
        assert wire is not None and wire[8:24] == care_of.packed
        assert accepted(home_agent.input(wire)).data[8:24] == care_of.packed


# -- what passes unprotected ----------------------------------------------------------------------


def test_unrelated_traffic_bypasses() -> None:
    mobile, home_agent = databases(Algorithm.AES_GCM_16)
    correspondent_bu = Ipv6Packet(
        source=CARE_OF,
        destination=CORRESPONDENT,
        extension_headers=(DestinationOptions.aligned([HomeAddressOption(home_address=HOME)]),),
        payload=mh.BindingUpdate(sequence=3, acknowledge=True).aligned(),
    ).emit()
    for packet in (udp_packet(), correspondent_bu, reverse_tunnelled(udp_packet())):
        assert mobile.output(packet) == packet
        assert accepted(home_agent.input(packet)).sa is None
    assert mobile.counters["out_bypass"] == 3


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_tunnel_all_protects_reverse_tunnelled_data(algorithm: Algorithm) -> None:
    """RFC 3776 5.2.4: optionally every packet in the MN-HA tunnel, HoTI/HoT included."""
    mobile, home_agent = databases(algorithm, tunnel_all=True)
    for inner in (udp_packet(), home_test_init()):
        plain = reverse_tunnelled(inner)
        wire = mobile.output(plain)
        assert wire is not None and wire[6] == protocols.ESP
        assert accepted(home_agent.input(wire)).inner == inner
        assert dropped(home_agent.input(plain)).cause == "unprotected"
    forward = forward_tunnelled(udp_packet(CORRESPONDENT, HOME))
    assert accepted(mobile.input(home_agent.output(forward) or b"")).data == forward


# -- what must not arrive unprotected --------------------------------------------------------------


def test_unprotected_home_registration_dropped() -> None:
    home_agent = databases(Algorithm.AES_GCM_16)[1]
    result = dropped(home_agent.input(binding_update()))
    assert result.cause == "unprotected"
    assert home_agent.counters["in_drop_unprotected"] == 1


def test_unprotected_home_registration_from_unknown_home_address_dropped() -> None:
    """RFC 3775 10.3.1: every home registration must be protected, even for a home address
    the home agent has no SA for (the guard entry selects on the H bit)."""
    home_agent = databases(Algorithm.AES_GCM_16)[1]
    stranger = Ipv6Packet(
        source=CARE_OF,
        destination=HOME_AGENT,
        extension_headers=(
            DestinationOptions.aligned([HomeAddressOption(home_address=OTHER_HOME)]),
        ),
        payload=mh.BindingUpdate(sequence=1, acknowledge=True, home_registration=True).aligned(),
    ).emit()
    assert dropped(home_agent.input(stranger)).cause == "unprotected"
    not_home = Ipv6Packet(  # H clear: a correspondent registration, the HA's CN role decides
        source=CARE_OF,
        destination=HOME_AGENT,
        extension_headers=(
            DestinationOptions.aligned([HomeAddressOption(home_address=OTHER_HOME)]),
        ),
        payload=mh.BindingUpdate(sequence=1, acknowledge=True).aligned(),
    ).emit()
    assert accepted(home_agent.input(not_home)).sa is None


def test_unprotected_ba_and_tunnelled_hoti_hot_dropped() -> None:
    mobile, home_agent = databases(Algorithm.AES_CBC_HMAC_SHA1_96)
    assert dropped(mobile.input(binding_acknowledgement())).cause == "unprotected"
    assert dropped(home_agent.input(reverse_tunnelled(home_test_init()))).cause == "unprotected"
    assert dropped(mobile.input(forward_tunnelled(home_test()))).cause == "unprotected"


# -- protected, but not as the SA says ------------------------------------------------------------


def test_selector_mismatch_after_decryption_dropped() -> None:
    """RFC 4301 5.2 step 4: the HoTI tunnel SA may not carry a Binding Update, and the BU SA
    may not carry another home address's registration."""
    mobile, home_agent = databases(Algorithm.AES_GCM_16)
    hoti_sa = mobile.sa(Direction.OUTBOUND, 0x1003)
    bu_sa = mobile.sa(Direction.OUTBOUND, 0x1001)
    assert hoti_sa is not None and bu_sa is not None
    smuggled = protect(hoti_sa, reverse_tunnelled(udp_packet()))
    assert dropped(home_agent.input(smuggled)).cause == "policy_mismatch"
    other = Ipv6Packet(
        source=CARE_OF,
        destination=HOME_AGENT,
        extension_headers=(
            DestinationOptions.aligned([HomeAddressOption(home_address=OTHER_HOME)]),
        ),
        payload=mh.BindingUpdate(sequence=1, acknowledge=True, home_registration=True).aligned(),
    ).emit()
    assert dropped(home_agent.input(protect(bu_sa, other))).cause == "policy_mismatch"


def test_unknown_spi_replay_and_bad_icv_counted_by_cause() -> None:
    mobile, home_agent = databases(Algorithm.AES_GCM_16)
    wire = mobile.output(binding_update())
    assert wire is not None
    accepted(home_agent.input(wire))
    assert dropped(home_agent.input(wire)).cause == "replayed"
    tampered = bytearray(mobile.output(binding_update()) or b"")  # a fresh number
    tampered[-1] ^= 0x10
    assert dropped(home_agent.input(bytes(tampered))).cause == "bad_icv"
    tampered = bytearray(wire)
    tampered[64:68] = (0x9999).to_bytes(4, "big")
    assert dropped(home_agent.input(bytes(tampered))).cause == "unknown_spi"
    assert dropped(home_agent.input(wire[:70])).cause in ("truncated", "malformed")
    counters = home_agent.counters
    assert counters["in_drop_replayed"] == counters["in_drop_bad_icv"] == 1
    assert counters["in_drop_unknown_spi"] == 1


def test_flips_outside_esp_are_refused_or_not_protected_by_design() -> None:
    """ESP does not cover the IPv6 header (RFC 4303 3.1.1). Every single-bit flip in the
    headers before ESP of a protected Binding Update either gets the packet dropped (by ESP,
    or by the selector check when it changes the home address or the home agent address), or
    leaves a packet that is no longer ESP to the node's own parser, or lands in a field ESP
    never protects: Traffic Class, Flow Label, Hop Limit, the care-of address in the Source
    Address (RFC 3775 11.7.1 puts it in an Alternate Care-of Address option for this reason)
    and the PadN option before the Home Address option."""
    mobile, home_agent = databases(Algorithm.AES_GCM_16)
    unprotected_fields = {0, 1, 2, 3, 7, *range(8, 24), *range(42, 46)}
    accepted_positions = set()
    for position in range(0, 64):
        for bit in range(8):
            wire = mobile.output(binding_update())
            assert wire is not None
            tampered = bytearray(wire)
            tampered[position] ^= 1 << bit
            result = home_agent.input(bytes(tampered))
            if isinstance(result, Accepted) and result.sa is not None:
                accepted_positions.add(position)
    assert accepted_positions <= unprotected_fields
    assert {7, 8, 23} <= accepted_positions


# -- outbound failures ----------------------------------------------------------------------------


def test_output_refuses_with_retired_or_exhausted_sa() -> None:
    mobile = databases(Algorithm.AES_GCM_16)[0]
    sa = mobile.sa(Direction.OUTBOUND, 0x1001)
    assert sa is not None
    sa.sequence_counter = 0xFFFF_FFFF
    with pytest.raises(SequenceExhausted):
        mobile.output(binding_update())
    sa.export(retire=True)
    with pytest.raises(SaRetired):
        mobile.output(binding_update())


def test_output_without_installed_sa_drops() -> None:
    mobile = databases(Algorithm.AES_GCM_16)[0]
    mobile.remove_sa(Direction.OUTBOUND, 0x1001)
    assert mobile.output(binding_update()) is None
    assert mobile.counters["out_no_sa"] == 1


def test_discard_and_bypass_entries_first_match_wins() -> None:
    database = SecurityPolicyDatabase(random_bytes=random.Random(1).randbytes)
    database.add_policy(
        PolicyEntry(
            name="no_udp",
            direction=Direction.OUTBOUND,
            selector=Selector(protocol=protocols.UDP),
            action=PolicyAction.DISCARD,
        )
    )
    database.add_policy(
        PolicyEntry(
            name="let_bu_through",
            direction=Direction.INBOUND,
            selector=Selector(mh_types=frozenset({mh.MhType.BINDING_UPDATE})),
            action=PolicyAction.BYPASS,
        )
    )
    database.add_policy(home_registration_guard([HOME_AGENT])[0])
    assert database.output(udp_packet()) is None
    assert accepted(database.input(binding_update())).sa is None  # bypass matched first
    dropping = SecurityPolicyDatabase(random_bytes=random.Random(1).randbytes)
    dropping.add_policy(
        PolicyEntry(
            name="no_udp_in",
            direction=Direction.INBOUND,
            selector=Selector(protocol=protocols.UDP),
            action=PolicyAction.DISCARD,
        )
    )
    assert dropped(dropping.input(udp_packet())).cause == "policy_mismatch"


def test_policy_entry_validation() -> None:
    with pytest.raises(ValueError):
        PolicyEntry(name="x", direction=Direction.OUTBOUND, selector=Selector())
    with pytest.raises(ValueError):
        PolicyEntry(
            name="x",
            direction=Direction.OUTBOUND,
            selector=Selector(),
            action=PolicyAction.BYPASS,
            spi=0x1000,
        )


# -- takeover through the databases ---------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_backup_takes_over_contact_address_registration(algorithm: Algorithm) -> None:
    """The contact node (mobile node for contact address X) registers; a backup configured
    with the same policy imports the contact node's BU SA and re-registers X; the home agent
    accepts the backup and then refuses the old contact node's next Binding Update."""
    contact, home_agent = databases(algorithm, seed=5)
    backup = databases(algorithm, seed=6)[0]
    for sequence in (1, 2):
        accepted(home_agent.input(contact.output(binding_update(sequence)) or b""))
    sa = contact.sa(Direction.OUTBOUND, 0x1001)
    assert sa is not None
    backup.import_sa(sa.export(retire=False))
    for sequence in (3, 4):
        result = accepted(home_agent.input(backup.output(binding_update(sequence)) or b""))
        assert result.data == binding_update(sequence)
    late = contact.output(binding_update(3)) or b""
    refused = dropped(home_agent.input(late))
    assert refused.cause == "replayed" and refused.error.sequence_number == 3


# -- robustness ------------------------------------------------------------------------------------


def test_fuzz_input_never_raises() -> None:
    rng = random.Random(3776)
    mobile, home_agent = databases(Algorithm.AES_GCM_16)
    seeds = [
        mobile.output(binding_update()),
        mobile.output(reverse_tunnelled(home_test_init())),
        home_agent.output(binding_acknowledgement()),
        home_agent.output(forward_tunnelled(home_test())),
        binding_update(),
        reverse_tunnelled(udp_packet()),
    ]
    causes: dict[str, int] = {}
    for _ in range(4000):
        data = bytearray(rng.choice(seeds) or b"")
        for _ in range(rng.choice((1, 2, 4))):
            if not data:
                break
            position = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[position] ^= 1 << rng.randrange(8)
            elif rng.random() < 0.5:
                del data[position:]
            else:
                data[position] = rng.choice((0, 41, 43, 50, 59, 60, 135, 255))
        if rng.random() < 0.6 and len(data) >= 40:
            data[4:6] = (len(data) - 40).to_bytes(2, "big")
        for database in (home_agent, mobile):
            result = database.input(bytes(data))
            name = result.cause if isinstance(result, Dropped) else "accepted"
            causes[name] = causes.get(name, 0) + 1
    assert {"accepted", "bad_icv", "unprotected"} <= set(causes), causes
