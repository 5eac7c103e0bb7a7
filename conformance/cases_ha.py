"""Home agent cases (RFC 3775 10, RFC 2473). The tester plays a mobile node (home address
2001:db8:1::5, care-of addresses 2001:db8:3::5 and 2001:db8:4::5) and a correspondent
(2001:db8:2::99); the IUT is the home agent 2001:db8:1::1 serving 2001:db8:1::/64.

Home registrations are sent without ESP (RFC 3776): the targets configure our home agent with
``allow_unprotected_registration``, except for HA-SEC-01, which runs it with its default policy
(protection required) and checks that an unprotected registration is discarded. The tester
itself speaks no ESP, so protected registrations are not exercised here (tests/ipsec and
tests/labnet/test_netns_takeover.py cover them).
Requirement texts quote RFC 3775 where marked with quotation marks, and paraphrase it
otherwise; the section number is the authority.
"""

from __future__ import annotations

import dataclasses
from ipaddress import IPv6Address
from typing import Any

from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6HAADRequest, ICMPv6MPSol, IPv6
from scapy.packet import Raw

from conformance import match as m
from conformance.case import (
    Case,
    CorrespondentBinding,
    Expect,
    HomeRegistration,
    ReturnRoutability,
    Silence,
    Wait,
)
from conformance.mutate import Fault, sequence_without_wraparound
from conformance.tester import (
    COOKIE_HA,
    Delay,
    Received,
    Tester,
    ba_fields,
    checksum_ok,
    fill_checksum,
    icmp_packet,
    tunnel,
)
from conformance.transport import ADDRESSES

ROLE = "ha"
PLAN = ADDRESSES
ANYCAST = IPv6Address("2001:db8:1::fdff:ffff:ffff:fffe")  # RFC 2526 / RFC 3775 10.5
REGISTERED = HomeRegistration(sequence=100, lifetime_units_4s=100)


def _home_bu(**kwargs: Any):  # type: ignore[no-untyped-def]
    """A stimulus: one home registration Binding Update (A and H set, no RR options)."""

    def stimulus(t: Tester) -> list[bytes]:
        args: dict[str, Any] = {
            "home": True,
            "nonce_indices": False,
            "authorization": False,
            "lifetime_units_4s": 100,
        }
        args.update(kwargs)
        args.setdefault("sequence", (t.sequence + 1) & 0xFFFF if t.sequence else 1)
        return [t.binding_update(**args)]

    return stimulus


def _from_correspondent(t: Tester, sequence: int = 1) -> bytes:
    """An Echo Request from the correspondent to the home address (for interception)."""
    assert t.correspondent is not None
    body = ICMPv6EchoRequest(id=0x4841, seq=sequence, data=b"to the home address")
    return icmp_packet(t.correspondent, t.home_address, body)


def _tunnelled_to(care_of: IPv6Address):  # type: ignore[no-untyped-def]
    """RFC 2473 3: outer source the home agent, destination the care-of address, Next
    Header 41, and the correspondent's packet inside unchanged (but for the Hop Limit the
    routers on the way lower)."""

    def match(t: Tester, got: Received) -> bool:
        data = got.data
        if data[6] != 41 or got.source != t.peer or got.destination != care_of:
            return False
        inner = data[40:]
        return (
            len(inner) >= 40
            and IPv6Address(inner[8:24]) == t.correspondent
            and IPv6Address(inner[24:40]) == t.home_address
            and m.forwarded(inner, _from_correspondent(t))
        )

    return match


def _any_tunnelled(t: Tester, got: Received) -> bool:
    return got.data[6] == 41


def _any_ba(t: Tester, got: Received) -> bool:
    return ba_fields(got) is not None


def _forwarded_on_home_link(t: Tester, got: Received) -> bool:
    """The correspondent's packet, untouched (but for the Hop Limit), to the home address (on
    the home link)."""
    return m.forwarded(got.data, _from_correspondent(t))


def _reverse_tunnelled_echo(t: Tester) -> bytes:
    assert t.correspondent is not None
    body = ICMPv6EchoRequest(id=0x4841, seq=9, data=b"from the home address")
    return icmp_packet(t.home_address, t.correspondent, body)


def _reverse_tunnel(source: IPv6Address):  # type: ignore[no-untyped-def]
    def stimulus(t: Tester) -> list[bytes]:
        return [tunnel(source, t.peer, _reverse_tunnelled_echo(t))]

    return stimulus


def _inner_forwarded(t: Tester, got: Received) -> bool:
    return m.forwarded(got.data, _reverse_tunnelled_echo(t))


def _hoti_inner(t: Tester) -> bytes:
    assert t.correspondent is not None
    return t.hoti(COOKIE_HA, destination=t.correspondent)


def _hot_from_correspondent(t: Tester) -> bytes:
    """A HoT the correspondent sends to the home address (RFC 3775 6.1.5), built raw."""
    assert t.correspondent is not None
    mh = bytes([59, 2, 3, 0, 0, 0, 0x12, 0x34]) + COOKIE_HA + b"TOKEN-64"
    pkt = IPv6(src=str(t.correspondent), dst=str(t.home_address), nh=135)
    return fill_checksum(bytes(pkt / Raw(mh)))  # Payload Length covers the MH


def _tunnelled_inner(expected) -> Any:  # type: ignore[no-untyped-def]
    def match(t: Tester, got: Received) -> bool:
        return (
            got.data[6] == 41
            and got.source == t.peer
            and got.destination == t.care_of_address
            and m.forwarded(got.data[40:], expected(t))
        )

    return match


def _ba_status(status: int, **kw: Any):  # type: ignore[no-untyped-def]
    def match(t: Tester, got: Received) -> bool:
        fields = ba_fields(got)
        if fields is None or not checksum_ok(got.data) or fields[0] != status:
            return False
        return all(
            {"sequence": fields[2], "destination": got.destination}[k] == v for k, v in kw.items()
        )

    return match


def _dhaad_reply(t: Tester, got: Received) -> bool:
    """RFC 3775 6.5: ICMPv6 type 145, same Identifier, the home agent's address listed."""
    chain = got.chain
    body = got.data[chain.offset :]
    if chain.upper_protocol != 58 or len(body) < 24 or body[0] != 145:
        return False
    addresses = [IPv6Address(body[i : i + 16]) for i in range(8, len(body) - 15, 16)]
    return (
        checksum_ok(got.data)
        and int.from_bytes(body[4:6], "big") == 0x4D36
        and got.destination == t.care_of_address
        and t.peer in addresses
    )


def _mpa(t: Tester, got: Received) -> bool:
    """RFC 3775 6.8, 10.6.2: type 147, same Identifier, a Prefix Information option for the
    home prefix; to the care-of address with a type 2 routing header naming the home address."""
    chain = got.chain
    body = got.data[chain.offset :]
    if chain.upper_protocol != 58 or len(body) < 8 or body[0] != 147:
        return False
    prefixes = []
    i = 8
    while i + 2 <= len(body) and body[i + 1]:
        if body[i] == 3 and i + 32 <= len(body):  # Prefix Information (RFC 4861 4.6.2)
            prefixes.append((IPv6Address(body[i + 16 : i + 32]), body[i + 2]))
        i += body[i + 1] * 8
    return (
        checksum_ok(got.data)
        and int.from_bytes(body[4:6], "big") == 0x4D37
        and got.destination == t.care_of_address
        and chain.routing_type2 == t.home_address.packed
        and (PLAN.home_prefix.network_address, 64) in prefixes
    )


CASES: tuple[Case, ...] = (
    Case(
        id="HA-BU-ACCEPT-01",
        title="A home registration is accepted: BA status 0 via RH2, granted lifetime",
        rfc_section="10.3.1",
        requirement="The home agent creates the home registration entry and, A being set, "
        "MUST return a Binding Acknowledgement with status 0 to the care-of address (type 2 "
        "routing header naming the home address), echoing the Sequence Number (paraphrase).",
        level="MUST",
        role=ROLE,
        stimulus=_home_bu(sequence=7, lifetime_units_4s=100),
        stimulus_text="BU seq 7, A and H, lifetime 400 s, from the care-of address with a HAO",
        expect=(
            Expect(
                "BA status 0, seq 7, via RH2 to the care-of address, lifetime 1..100 units",
                lambda t, got: (
                    m.ba(0, sequence=7, to_care_of=True, max_lifetime_units=100)(t, got)
                    and (ba_fields(got) or (0, 0, 0, 0))[3] > 0
                ),
            ),
        ),
    ),
    Case(
        id="HA-BU-132-01",
        title="A home address outside the home prefixes gets BA 132",
        rfc_section="10.3.1",
        requirement="If the home address is not an on-link address with respect to the home "
        "agent's Prefix List, the home agent MUST reject the Binding Update with status 132 "
        "(not home subnet) (paraphrase).",
        level="MUST",
        role=ROLE,
        stimulus=_home_bu(sequence=7, home_address=IPv6Address("2001:db8:5::5")),
        stimulus_text="BU seq 7, A and H, home address 2001:db8:5::5 (not a home prefix)",
        expect=(Expect("BA status 132", _ba_status(132)),),
    ),
    Case(
        id="HA-BU-129-01",
        title="A home address the home agent's policy refuses gets BA 129",
        rfc_section="10.3.1, 6.1.8",
        requirement="A home agent that will not serve a mobile node rejects its home "
        "registration with status 129 (administratively prohibited) (paraphrase).",
        level="MAY",
        role=ROLE,
        iut_config=(("acl_default_allow", False),),
        stimulus=_home_bu(sequence=7),
        stimulus_text="BU seq 7, A and H, for the home address 2001:db8:1::5",
        expect=(
            Expect("BA status 129", _ba_status(129)),
            Silence("no BA status 0", _ba_status(0)),
        ),
    ),
    Case(
        id="HA-BU-130-01",
        title="A home registration that does not fit the binding cache gets BA 130",
        rfc_section="10.3.1, 9.5.2",
        requirement="A home agent that cannot accommodate another binding rejects the "
        "Binding Update with status 130 (insufficient resources) (paraphrase).",
        level="MUST",
        role=ROLE,
        iut_config=(("binding_cache_size", 1),),
        preconditions=(REGISTERED,),
        stimulus=_home_bu(sequence=7, home_address=PLAN.home_link_node, care_of=PLAN.care_of2),
        stimulus_text="a second mobile node: BU seq 7, A and H, home address 2001:db8:1::77 "
        "from 2001:db8:4::5 (the binding cache holds one entry)",
        expect=(
            Expect(
                "BA status 130 to 2001:db8:4::5",
                _ba_status(130, destination=PLAN.care_of2),
            ),
        ),
    ),
    Case(
        id="HA-SEC-01",
        title="A home registration not protected by ESP is silently discarded",
        rfc_section="5.1, 10.3.1; RFC 3776 3",
        requirement="Binding Updates and Acknowledgements between the mobile node and its "
        "home agent MUST be protected by IPsec ESP; a home registration arriving without "
        "that protection is not processed (paraphrase).",
        level="MUST",
        role=ROLE,
        iut_config=(("allow_unprotected_registration", False),),
        stimulus=lambda t: [
            *_home_bu(sequence=7)(t),
            Delay(0.2),
            _from_correspondent(t),
        ],
        stimulus_text="BU seq 7, A and H, in the clear (no ESP), from 2001:db8:3::5; 0.2 s "
        "later an Echo Request from the correspondent to the home address",
        expect=(
            Silence("no Binding Acknowledgement", m.any_binding_ack),
            Silence(
                "nothing tunnelled to the care-of address afterwards",
                _tunnelled_to(PLAN.care_of),
            ),
        ),
        timeout=1.0,
    ),
    Case(
        id="HA-BU-133-01",
        title="Deregistration without a home registration gets BA 133",
        rfc_section="10.3.2",
        requirement='"If the receiving node has no entry marked as a home registration in its '
        "Binding Cache for this mobile node, then this node MUST reject the Binding Update "
        "and SHOULD return a Binding Acknowledgement ..., in which the Status field is set "
        'to 133."',
        level="SHOULD",
        role=ROLE,
        stimulus=_home_bu(sequence=7, lifetime_units_4s=0),
        stimulus_text="BU seq 7, A and H, lifetime 0, no registration before",
        expect=(Expect("BA status 133", _ba_status(133)),),
    ),
    Case(
        id="HA-BU-134-01",
        title="A home address that fails duplicate address detection gets BA 134",
        rfc_section="10.3.1",
        requirement="If Duplicate Address Detection fails for the home address, the home "
        "agent MUST reject the registration with status 134 (paraphrase). The home agent's "
        "own address is certainly in use on the home link.",
        level="MUST",
        role=ROLE,
        stimulus=_home_bu(sequence=7, home_address=PLAN.home_agent),
        stimulus_text="BU seq 7, A and H, home address = the home agent's own address",
        expect=(Expect("BA status 134", _ba_status(134)),),
    ),
    Case(
        id="HA-BU-135-01",
        title="A home registration repeating the sequence number gets BA 135 with the last one",
        rfc_section="9.5.1, 10.3.1",
        requirement="A Sequence Number not greater than the last accepted one gets status 135 "
        "and the last accepted sequence number (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(REGISTERED,),
        stimulus=_home_bu(sequence=90),
        stimulus_text="BU seq 90, A and H (registration holds 100)",
        expect=(Expect("BA status 135 carrying seq 100", _ba_status(135, sequence=100)),),
    ),
    Case(
        id="HA-BU-135-02",
        title="An out-of-window home registration is answered even when A is clear",
        rfc_section="9.5.4",
        requirement='"If the node rejects the Binding Update due to an expired nonce index, '
        "sequence number being out of window (Section 9.5.1), or insufficiency of resources "
        '(Section 9.5.2), a Binding Acknowledgement MUST be sent."',
        level="MUST",
        role=ROLE,
        preconditions=(REGISTERED,),
        stimulus=_home_bu(sequence=90, ack=False),
        stimulus_text="BU seq 90, H set, A clear (registration holds 100)",
        expect=(Expect("BA status 135 carrying seq 100", _ba_status(135, sequence=100)),),
    ),
    Case(
        id="HA-BU-ACK-01",
        title="An accepted home registration with A clear is not acknowledged but takes effect",
        rfc_section="9.5.4, 10.3.1",
        requirement='"If the node accepts the Binding Update, the Binding Acknowledgement '
        'SHOULD NOT be sent" when A is clear; the home agent intercepts for the home address.',
        level="SHOULD",
        role=ROLE,
        stimulus=lambda t: [
            *_home_bu(sequence=7, ack=False)(t),
            Delay(0.5),
            _from_correspondent(t),
        ],
        stimulus_text="BU seq 7, H set, A clear; then a correspondent's packet to the home address",
        expect=(
            Silence("no Binding Acknowledgement", m.any_binding_ack),
            Expect("the packet tunnelled to the care-of address", _tunnelled_to(PLAN.care_of)),
        ),
    ),
    Case(
        id="HA-BU-SEQ-WRAP-01",
        title="Home registration sequence numbers wrap around: 0 is newer than 65535",
        rfc_section="9.5.1",
        requirement='"This Sequence Number comparison MUST be performed modulo 2**16".',
        level="MUST",
        role=ROLE,
        preconditions=(HomeRegistration(sequence=65535),),
        stimulus=_home_bu(sequence=0),
        stimulus_text="BU seq 0, A and H (registration holds 65535)",
        expect=(Expect("BA status 0, seq 0", _ba_status(0, sequence=0)),),
    ),
    Case(
        id="HA-BU-139-01",
        title="A home registration over a correspondent binding gets BA 139",
        rfc_section="9.5.1",
        requirement="If a binding already exists for the home address and its home "
        "registration flag differs from the H bit of the Binding Update, the node MUST send "
        "back a Binding Acknowledgement with status 139 (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(CorrespondentBinding(sequence=50),),
        stimulus=_home_bu(sequence=51),
        stimulus_text="BU seq 51, A and H, while the IUT holds a correspondent binding for "
        "the home address",
        expect=(Expect("BA status 139", _ba_status(139)),),
    ),
    Case(
        id="HA-BU-139-02",
        title="An unauthorized correspondent registration for a registered home address is "
        "silently discarded (no BA 139 before the authenticator is checked)",
        rfc_section="9.5.1",
        requirement="If the Binding Update is not authorized (its Binding Authorization Data "
        "does not verify), it MUST be silently discarded (paraphrase): the BA 139 for a "
        "registration type change comes only after authorization.",
        level="MUST",
        role=ROLE,
        preconditions=(ReturnRoutability(), REGISTERED),
        stimulus=lambda t: [t.binding_update(sequence=101, bad_authenticator=True)],
        stimulus_text="correspondent BU seq 101 (no H) for the registered home address, "
        "current nonce indices, authenticator's first byte flipped",
        expect=(Silence("no Binding Acknowledgement", _any_ba),),
    ),
    Case(
        id="HA-BU-139-03",
        title="An authorized correspondent registration for a registered home address gets "
        "an authenticated BA 139",
        rfc_section="9.5.1",
        requirement="If a binding already exists for the home address and its home "
        "registration flag differs from the H bit of the Binding Update, the node MUST send "
        "back a Binding Acknowledgement with status 139 (paraphrase); for a correspondent "
        "registration that BA carries Binding Authorization Data (6.1.8, 9.5.4).",
        level="MUST",
        role=ROLE,
        preconditions=(ReturnRoutability(), REGISTERED),
        stimulus=lambda t: [t.binding_update(sequence=101)],
        stimulus_text="correspondent BU seq 101 (no H) for the registered home address, "
        "authorized with the tokens of the home agent's correspondent role",
        expect=(
            Expect(
                "BA status 139 whose authenticator verifies under Kbm",
                lambda t, got: _ba_status(139)(t, got) and t.ba_authenticator_ok(got),
            ),
        ),
    ),
    Case(
        id="HA-BU-NI-01",
        title="A home registration carrying a Nonce Indices option is silently discarded",
        rfc_section="9.5.1",
        requirement='"If the Home Registration (H) bit is set, the Nonce Indices mobility '
        'option MUST NOT be present"; otherwise the Binding Update MUST be silently discarded '
        "(paraphrase of the second half).",
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [
            *_home_bu(sequence=1, nonce_indices=True, home_index=1, care_of_index=2)(t),
            Delay(0.5),
            _from_correspondent(t),
        ],
        stimulus_text="BU seq 1, A and H, with a Nonce Indices option; then an Echo Request "
        "from the correspondent to the home address",
        expect=(
            Silence("no Binding Acknowledgement", _any_ba),
            Silence("nothing tunnelled (no binding was made)", _any_tunnelled),
        ),
    ),
    Case(
        id="HA-BU-REREG-01",
        title="Re-registration from a new care-of address moves the binding",
        rfc_section="10.3.1, 10.4.1",
        requirement="A newer home registration replaces the binding: the BA goes to the new "
        "care-of address and packets for the home address are tunnelled there (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(REGISTERED,),
        stimulus=lambda t: [
            *_home_bu(sequence=101, care_of=PLAN.care_of2)(t),
            Delay(0.5),
            _from_correspondent(t),
        ],
        stimulus_text="BU seq 101, A and H, from 2001:db8:4::5; then a correspondent's "
        "packet to the home address",
        expect=(
            Expect("BA status 0 to 2001:db8:4::5", _ba_status(0, destination=PLAN.care_of2)),
            Expect("the packet tunnelled to 2001:db8:4::5", _tunnelled_to(PLAN.care_of2)),
        ),
    ),
    Case(
        id="HA-BU-DEREG-01",
        title="Deregistration (lifetime 0) is acknowledged and stops interception",
        rfc_section="10.3.2",
        requirement="On a valid deregistration the home agent deletes the home registration, "
        "stops intercepting packets for the home address, and acknowledges with status 0 "
        "(paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(REGISTERED,),
        stimulus=lambda t: [
            *_home_bu(sequence=101, lifetime_units_4s=0)(t),
            Delay(0.5),
            _from_correspondent(t),
        ],
        stimulus_text="BU seq 101, A and H, lifetime 0; then a correspondent's packet to "
        "the home address",
        expect=(
            Expect("BA status 0, seq 101", _ba_status(0, sequence=101)),
            Silence("no tunnelled packet", _any_tunnelled),
        ),
    ),
    Case(
        id="HA-BU-DEREG-02",
        title="Deregistration from home (care-of = home address) is acknowledged on the home link",
        rfc_section="10.3.2, 11.5.4",
        requirement="A Binding Update whose care-of address equals the home address "
        "deregisters; the Binding Acknowledgement is sent to the home address (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(REGISTERED,),
        stimulus=_home_bu(sequence=101, from_home=True),
        stimulus_text="BU seq 101, A and H, from the home address (no HAO)",
        expect=(
            Expect("BA status 0 to the home address", _ba_status(0, destination=PLAN.home_address)),
        ),
    ),
    Case(
        id="HA-BU-LIFE-01",
        title="A registration is gone once its lifetime has passed",
        rfc_section="10.3.1, 10.4.1",
        requirement="The home agent intercepts for the home address only while the home "
        "registration's lifetime lasts (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(HomeRegistration(sequence=100, lifetime_units_4s=2), Wait(12)),
        stimulus=lambda t: [_from_correspondent(t)],
        stimulus_text="a correspondent's packet to the home address 12 s after an 8 s registration",
        expect=(Silence("no tunnelled packet", _any_tunnelled),),
    ),
    Case(
        id="HA-BU-CKSUM-01",
        title="A home registration with a wrong checksum is silently discarded",
        rfc_section="9.2",
        requirement="The checksum must be verified; otherwise the node MUST silently discard "
        "the message (paraphrase).",
        level="MUST",
        role=ROLE,
        stimulus=_home_bu(sequence=7, corrupt_checksum=True),
        stimulus_text="BU seq 7, A and H, MH checksum XORed with 0x5a5a",
        expect=(Silence("no packet at all"),),
    ),
    Case(
        id="HA-MH-PROTO-01",
        title="A home registration with Payload Proto not 59 and the payload it announces gets "
        "a Parameter Problem pointing at Payload Proto",
        rfc_section="9.2, 6.1.1",
        requirement="The Payload Proto field MUST be IPPROTO_NONE; otherwise the node MUST "
        "discard the message and SHOULD send ICMP Parameter Problem, Code 0, directly to the "
        "Source Address; the Pointer SHOULD point at the Payload Proto field (paraphrase).",
        level="SHOULD",
        role=ROLE,
        stimulus=lambda t: [
            *_home_bu(sequence=1, payload_proto=6, piggyback=bytes(20))(t),
            Delay(0.5),
            _from_correspondent(t),
        ],
        stimulus_text="BU seq 1, A and H, Payload Proto 6, followed by 20 bytes (a TCP header) "
        "in the IPv6 payload; then an Echo Request from the correspondent to the home address",
        expect=(
            # the Mobility Header starts after the IPv6 header (40) and the Destination
            # Options header carrying the Home Address option (24: PadN to 8n+6, then 18)
            Expect("ICMPv6 Parameter Problem code 0, pointer 64", m.icmp(4, 0, 64)),
            Silence("no Binding Acknowledgement", _any_ba),
            Silence("nothing tunnelled (no binding was made)", _any_tunnelled),
        ),
    ),
    Case(
        id="HA-MH-HDRLEN-01",
        title="A home registration whose Header Len is too small gets a Parameter Problem "
        "pointing at Header Len and makes no binding",
        rfc_section="9.2",
        requirement='"The Header Len field in the Mobility Header MUST NOT be less than the '
        'length specified for this particular type of message in Section 6.1"; such a message '
        "is discarded and SHOULD be answered with ICMP Parameter Problem, Code 0, the Pointer "
        "at the Header Len field (paraphrase of the second half).",
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [
            *_home_bu(sequence=1, header_len=0)(t),
            Delay(0.5),
            _from_correspondent(t),
        ],
        stimulus_text="BU seq 1, A and H, Header Len 0 (a BU needs at least 1); then an Echo "
        "Request from the correspondent to the home address",
        expect=(
            # the Mobility Header starts at 64, after the Destination Options header
            Expect("ICMPv6 Parameter Problem code 0, pointer 65", m.icmp(4, 0, 65)),
            Silence("no Binding Acknowledgement", _any_ba),
            Silence("nothing tunnelled (no binding was made)", _any_tunnelled),
        ),
    ),
    Case(
        id="HA-MH-OPT-01",
        title="A home registration with an option of unknown type is processed as without it",
        rfc_section="6.2.1, 10.3.1",
        requirement="A receiver that does not recognize a mobility option's type MUST skip "
        "over the option and handle the remaining options of the message (paraphrase).",
        level="MUST",
        role=ROLE,
        stimulus=_home_bu(sequence=7, lifetime_units_4s=100, unknown_option=True),
        stimulus_text="BU seq 7, A and H, lifetime 400 s, with an option of type 200 (6 bytes "
        "of zeros), from the care-of address with a HAO",
        expect=(
            Expect(
                "BA status 0, seq 7, via RH2 to the care-of address",
                m.ba(0, sequence=7, to_care_of=True),
            ),
        ),
    ),
    Case(
        id="HA-TUN-01",
        title="Packets for a registered home address are tunnelled to the care-of address",
        rfc_section="10.4.1, RFC 2473 3",
        requirement="While the mobile node is away the home agent intercepts packets for its "
        "home address and tunnels each to the primary care-of address: outer source the home "
        "agent, outer destination the care-of address (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(REGISTERED,),
        stimulus=lambda t: [_from_correspondent(t)],
        stimulus_text="Echo Request from the correspondent 2001:db8:2::99 to the home address",
        expect=(
            Expect(
                "IPv6-in-IPv6 from the home agent to the care-of address, inner unchanged",
                _tunnelled_to(PLAN.care_of),
            ),
        ),
    ),
    Case(
        id="HA-TUN-02",
        title="Without a registration, packets for the home address are not tunnelled",
        rfc_section="10.4.1",
        requirement="Only a home registration makes the home agent intercept and tunnel "
        "(paraphrase); otherwise the packet is routed to the home link unchanged.",
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [_from_correspondent(t)],
        stimulus_text="Echo Request from the correspondent to the home address, no registration",
        expect=(
            Silence("no tunnelled packet", _any_tunnelled),
            Expect("the packet forwarded unchanged to the home link", _forwarded_on_home_link),
        ),
    ),
    Case(
        id="HA-RT-01",
        title="A reverse-tunnelled packet from the registered care-of address is forwarded",
        rfc_section="10.4.5",
        requirement="The home agent decapsulates a packet tunnelled from the mobile node's "
        "registered care-of address and forwards the inner packet (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(REGISTERED,),
        stimulus=_reverse_tunnel(PLAN.care_of),
        stimulus_text="IPv6-in-IPv6 from the care-of address to the home agent; inner Echo "
        "Request home address -> correspondent",
        expect=(Expect("the inner packet forwarded to the correspondent", _inner_forwarded),),
    ),
    Case(
        id="HA-RT-02",
        title="A reverse-tunnelled packet from another address is dropped",
        rfc_section="10.4.5",
        requirement="The home agent accepts a reverse-tunnelled packet only when its outer "
        "source is the registered care-of address of the inner source home address "
        "(paraphrase; RFC 3775 10.4.5 and its security considerations).",
        level="MUST",
        role=ROLE,
        preconditions=(REGISTERED,),
        stimulus=_reverse_tunnel(PLAN.care_of2),
        stimulus_text="IPv6-in-IPv6 from 2001:db8:4::5 (not registered) to the home agent",
        expect=(Silence("the inner packet not forwarded", _inner_forwarded),),
    ),
    Case(
        id="HA-HOTI-01",
        title="A reverse-tunnelled HoTI is forwarded to the correspondent",
        rfc_section="10.4.6, 5.2.5",
        requirement="The home agent forwards the HoTI it receives through the reverse tunnel "
        "from the mobile node to the correspondent (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(REGISTERED,),
        stimulus=lambda t: [tunnel(t.care_of_address, t.peer, _hoti_inner(t))],
        stimulus_text="IPv6-in-IPv6 from the care-of address; inner HoTI home address -> "
        "correspondent",
        expect=(
            Expect(
                "the HoTI forwarded unchanged (but for the Hop Limit) to the correspondent",
                lambda t, got: m.forwarded(got.data, _hoti_inner(t)),
            ),
        ),
    ),
    Case(
        id="HA-HOT-01",
        title="A HoT for a registered home address is tunnelled to the care-of address",
        rfc_section="10.4.6, 10.4.1",
        requirement="The home agent tunnels the correspondent's HoT to the mobile node's "
        "care-of address like any packet for the home address (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(REGISTERED,),
        stimulus=lambda t: [_hot_from_correspondent(t)],
        stimulus_text="HoT from the correspondent to the home address",
        expect=(
            Expect(
                "the HoT tunnelled to the care-of address",
                _tunnelled_inner(_hot_from_correspondent),
            ),
        ),
    ),
    Case(
        id="HA-DHAAD-01",
        title="A DHAAD request to the Home-Agents anycast address is answered",
        rfc_section="10.5, 6.5, 6.6",
        requirement="A home agent receiving a Home Agent Address Discovery Request sent to "
        "the Mobile IPv6 Home-Agents anycast address of its home subnet replies with a Home "
        "Agent Address Discovery Reply, copying the Identifier, listing home agents "
        "(paraphrase).",
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [
            icmp_packet(t.care_of_address, ANYCAST, ICMPv6HAADRequest(id=0x4D36, R=0))
        ],
        stimulus_text="HAAD Request id 0x4d36 from the care-of address to "
        "2001:db8:1::fdff:ffff:ffff:fffe",
        expect=(
            Expect(
                "HAAD Reply id 0x4d36 to the care-of address listing 2001:db8:1::1",
                _dhaad_reply,
            ),
        ),
    ),
    Case(
        id="HA-MPS-01",
        title="A Mobile Prefix Solicitation is answered with the home prefix",
        rfc_section="10.6.2, 6.7, 6.8",
        requirement="The home agent answers a Mobile Prefix Solicitation from a registered "
        "mobile node with a Mobile Prefix Advertisement copying the Identifier and carrying "
        "the home prefix, to the care-of address with a type 2 routing header (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(REGISTERED,),
        stimulus=lambda t: [
            icmp_packet(t.care_of_address, t.peer, ICMPv6MPSol(id=0x4D37), hao=t.home_address)
        ],
        stimulus_text="Mobile Prefix Solicitation id 0x4d37 from the care-of address with a HAO",
        expect=(Expect("MPA id 0x4d37 via RH2 with prefix 2001:db8:1::/64", _mpa),),
    ),
    Case(
        id="HA-BE-1-01",
        title="A Home Address option without a binding gets Binding Error 1",
        rfc_section="9.3.1, 9.3.3",
        requirement="A packet with a Home Address option and no binding is dropped and the "
        "node SHOULD send a Binding Error with status 1 (paraphrase).",
        level="SHOULD",
        role=ROLE,
        stimulus=lambda t: [t.echo_request()],
        stimulus_text="Echo Request from the care-of address with a HAO to the home agent, "
        "no registration",
        expect=(Expect("Binding Error status 1", m.be(1)),),
    ),
    Case(
        id="HA-BE-2-01",
        title="An unknown MH Type gets Binding Error 2",
        rfc_section="9.2",
        requirement="An unknown MH Type is discarded and answered with a Binding Error with "
        "status 2 (paraphrase).",
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [t.raw_mobility(bytes([59, 1, 201, 0, 0, 0]) + bytes(10))],
        stimulus_text="Mobility Header of MH Type 201 from the care-of address",
        expect=(Expect("Binding Error status 2", m.be(2, home_address=False)),),
    ),
)


# -- home agent faults for the mutation run ------------------------------------------------------


def _any_home_prefix(engine: Any) -> None:
    engine._in_home_prefix = lambda home: True


def _reverse_tunnel_from_anywhere(engine: Any) -> None:
    original = engine._reverse_tunnel

    def reverse(now: float, data: bytes, offset: int, *, tunnelled: bool) -> Any:
        inner = data[offset:]
        registered = engine._tunnels.get(inner[8:24])
        if registered is not None:
            data = data[:8] + registered.care_of + data[24:]
        return original(now, data, offset, tunnelled=tunnelled)

    engine._reverse_tunnel = reverse


def _no_tunnel(engine: Any) -> None:
    engine._tunnel = lambda now, data, tunnel: engine._forward_home_link(data)


def _deregistration_keeps_tunnel(engine: Any) -> None:
    engine._remove_home_registration = lambda home: engine.binding_cache.remove(home)


def _no_dhaad(engine: Any) -> None:
    engine._home_agent_address_discovery = lambda now, inbound: []


def _deregistration_without_entry_silent(engine: Any) -> None:
    original = engine._deregister

    def deregister(now: float, request: Any, inbound: Any, entry: Any) -> Any:
        return [] if entry is None else original(now, request, inbound, entry)

    engine._deregister = deregister


def _dad_never_fails(engine: Any) -> None:
    engine._address_in_use = lambda home: False
    engine._care_of_acceptable = lambda care_of: True


def _rejections_only_with_ack(engine: Any) -> None:
    original = engine._acknowledge

    def acknowledge(request: Any, inbound: Any, status: int, **kw: Any) -> Any:
        if status >= 128 and not request.update.acknowledge:
            return []
        return original(request, inbound, status, **kw)

    engine._acknowledge = acknowledge


def _registration_type_change_allowed(engine: Any) -> None:
    original = engine._live_entry

    def live(now: float, home: Any) -> Any:
        entry = original(now, home)
        return entry if entry is None or entry.home_registration else None

    engine._live_entry = live


def _accepts_unprotected_registration(engine: Any) -> None:
    engine.config = dataclasses.replace(engine.config, allow_unprotected_registration=True)


def _ignores_binding_acl(engine: Any) -> None:
    engine._acl_allows = lambda home: True


def _unbounded_binding_cache(engine: Any) -> None:
    engine.binding_cache.capacity = 1 << 30


FAULTS: tuple[Fault, ...] = (
    Fault(
        "ha-accepts-unprotected-registration",
        "ha",
        "home registrations accepted without ESP although the policy requires it",
        instance=_accepts_unprotected_registration,
    ),
    Fault(
        "ha-ignores-binding-acl",
        "ha",
        "no BA 129: the binding policy is never consulted",
        instance=_ignores_binding_acl,
    ),
    Fault(
        "ha-binding-cache-unbounded",
        "ha",
        "no BA 130: the binding cache grows past its configured size",
        instance=_unbounded_binding_cache,
    ),
    Fault(
        "ha-rejections-only-with-ack",
        "ha",
        "rejections (135) answered only when A is set",
        instance=_rejections_only_with_ack,
    ),
    Fault(
        "ha-sequence-without-wraparound",
        "ha",
        "home registration sequence compared as plain integers",
        module=sequence_without_wraparound,
    ),
    Fault(
        "ha-any-home-prefix",
        "ha",
        "no BA 132: any home address accepted",
        instance=_any_home_prefix,
    ),
    Fault(
        "ha-reverse-tunnel-from-anywhere",
        "ha",
        "reverse tunnel accepted from any outer source",
        instance=_reverse_tunnel_from_anywhere,
    ),
    Fault(
        "ha-no-tunnel",
        "ha",
        "intercepted packets forwarded instead of tunnelled",
        instance=_no_tunnel,
    ),
    Fault(
        "ha-deregistration-keeps-tunnel",
        "ha",
        "deregistration keeps intercepting",
        instance=_deregistration_keeps_tunnel,
    ),
    Fault("ha-no-dhaad-reply", "ha", "DHAAD requests never answered", instance=_no_dhaad),
    Fault(
        "ha-deregistration-without-entry-silent",
        "ha",
        "no BA 133 for deregistration without a registration",
        instance=_deregistration_without_entry_silent,
    ),
    Fault(
        "ha-dad-never-fails",
        "ha",
        "no BA 134: the home agent's own address can be registered",
        instance=_dad_never_fails,
    ),
    Fault(
        "ha-registration-type-change-allowed",
        "ha",
        "no BA 139: a home registration replaces a correspondent binding",
        instance=_registration_type_change_allowed,
    ),
)

__all__ = ["CASES", "FAULTS", "Delay"]
