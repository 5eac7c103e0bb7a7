"""Mobile node cases (RFC 3775 11). The tester plays the mobile node's home agent
(2001:db8:1::1) and a correspondent (2001:db8:2::99); the IUT is a mobile node with home
address 2001:db8:1::5 that the IUT control hook moves to 2001:db8:3::5 (or 2001:db8:4::5).

As the correspondent the tester picks its own keygen tokens (it is the one that would derive
them from its Kcn), so it knows the Kbm the mobile node must use. Home registrations and BAs
are exchanged without ESP (the sim target's engines have no RFC 3776 SAs).
Requirement texts quote RFC 3775 where marked with quotation marks, and paraphrase it
otherwise; the section number is the authority.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Any
from unittest import mock

from scapy.layers.inet6 import (
    MIP6MH_BA,
    MIP6MH_BE,
    MIP6MH_BRR,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrRouting,
    MIP6MH_CoT,
    MIP6MH_HoT,
    MIP6OptBindingAuthData,
)
from scapy.packet import Packet, Raw

from conformance import match as m
from conformance.case import Case, Check, Expect, PreconditionFailed, Silence
from conformance.mutate import Fault
from conformance.tester import (
    Act,
    Delay,
    Received,
    Tester,
    authenticator,
    checksum_ok,
    fill_checksum,
    icmp_packet,
    kbm,
    mobility_data,
    tunnel,
    walk,
)
from conformance.transport import ADDRESSES

ROLE = "mn"
PLAN = ADDRESSES
CN = PLAN.tester_correspondent
HOME_TOKEN, CARE_OF_TOKEN = b"HOMETOKN", b"CAREOFTK"
HOME_INDEX, CARE_OF_INDEX = 7, 8
A_FLAG, H_FLAG = 0x80, 0x40


# -- what the mobile node sends --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bu:
    got: Received
    sequence: int
    flags: int
    lifetime_units_4s: int


def binding_updates(got: list[Received], to: IPv6Address) -> list[Bu]:
    """The Binding Updates (RFC 3775 6.1.7) in ``got`` sent to ``to``, checksum verified."""
    out = []
    for r in got:
        mh = r.mh_bytes
        if r.mh_type == 5 and mh is not None and len(mh) >= 12 and r.destination == to:
            if checksum_ok(r.data):
                sequence, flags, _, lifetime = struct.unpack("!HBBH", mh[6:12])
                out.append(Bu(r, sequence, flags, lifetime))
    return out


def _inner(
    got: Received, outer_source: IPv6Address, outer_destination: IPv6Address
) -> bytes | None:
    data = got.data
    if data[6] != 41 or got.source != outer_source or got.destination != outer_destination:
        return None
    return data[40:]


def _inner_mh_type(inner: bytes | None) -> int | None:
    if inner is None or len(inner) < 43:
        return None
    chain = walk(inner)
    return inner[chain.offset + 2] if chain.upper_protocol == 135 else None


def _tunnelled_hoti(t: Tester, got: Received) -> bool:
    """RFC 3775 11.6.1: HoTI from the home address, reverse-tunnelled to the home agent,
    with no Home Address option inside."""
    inner = _inner(got, t.care_of_address, PLAN.home_agent)
    if _inner_mh_type(inner) != 1 or inner is None:
        return False
    chain = walk(inner)
    return (
        IPv6Address(inner[8:24]) == t.home_address
        and IPv6Address(inner[24:40]) == CN
        and chain.home_address_option is None
        and checksum_ok(inner)
    )


def _direct_coti(t: Tester, got: Received) -> bool:
    return (
        got.mh_type == 2
        and got.source == t.care_of_address
        and got.destination == CN
        and got.chain.home_address_option is None
        and checksum_ok(got.data)
    )


def _expired_nonce_case(status: int, expired: str, fresh: str, renewed: str) -> Case:
    """MN-BA-136/137/138-01: the correspondent's BA ``status`` for the captured BU."""
    return Case(
        id=f"MN-BA-{status}-01",
        title=f"BA {status} from the correspondent makes the mobile node renew {renewed}",
        rfc_section="11.7.3, 5.2.7",
        requirement=f"A correspondent's BA with status {status} (expired {expired}) means the "
        "Binding Update used a keygen token the correspondent no longer accepts; the mobile "
        "node restarts return routability for the expired token(s) only (paraphrase).",
        level="SHOULD",
        role=ROLE,
        preconditions=(MnCorrespondentBu(),),
        stimulus=lambda t: [correspondent_ba(t, t.memo["cn_bu"].sequence, status=status)],
        stimulus_text=f"BA status {status} from the correspondent for the captured BU, "
        "authorized under the tester's Kbm",
        expect=_renewal_expectations(fresh),
        timeout=1.0,
    )


def _renewal_expectations(fresh: str) -> tuple[Expect | Silence, ...]:
    """After a BA 136/137/138: the expired kind(s) of test init again, and only those."""
    hoti = Expect("a new HoTI through the reverse tunnel", _tunnelled_hoti)
    coti = Expect("a new CoTI from the care-of address", _direct_coti)
    if fresh == "home":
        return (hoti, Silence("no CoTI (the care-of token is still valid)", _direct_coti))
    if fresh == "care_of":
        return (coti, Silence("no HoTI (the home token is still valid)", _tunnelled_hoti))
    return (hoti, coti)


def _correspondent_signalling(t: Tester, got: Received) -> bool:
    """Any return routability or Binding Update towards the correspondent."""
    return (
        _tunnelled_hoti(t, got)
        or _direct_coti(t, got)
        or (got.mh_type == 5 and got.destination == CN)
    )


# -- what the tester (home agent, correspondent) sends ------------------------------------------


def _mh_packet(
    source: IPv6Address, destination: IPv6Address, mh: bytes, rh2: IPv6Address | None
) -> bytes:
    pkt: Packet = IPv6(src=str(source), dst=str(destination), nh=135)
    if rh2 is not None:
        pkt = IPv6(src=str(source), dst=str(destination)) / IPv6ExtHdrRouting(
            type=2, segleft=1, addresses=[str(rh2)], nh=135
        )
    return fill_checksum(bytes(pkt / Raw(mh)))


def home_agent_ba(
    t: Tester,
    sequence: int,
    status: int = 0,
    lifetime: int = 100,
    *,
    care_of: IPv6Address | None = None,
) -> bytes:
    """BA from the home agent to the care-of address via RH2 (RFC 3775 6.1.8, 10.3.1)."""
    mh = bytes(MIP6MH_BA(status=status, flags=0, seq=sequence, mhtime=lifetime, cksum=0))
    return _mh_packet(PLAN.home_agent, care_of or t.care_of_address, mh, t.home_address)


def binding_error(t: Tester, status: int) -> bytes:
    """A Binding Error (RFC 3775 6.1.9) "from" the correspondent: anyone can send one."""
    home = str(t.home_address) if status == 1 else "::"
    return _mh_packet(
        CN, t.care_of_address, bytes(MIP6MH_BE(status=status, ha=home, cksum=0)), None
    )


def _short_binding_error(t: Tester) -> bytes:
    """A Binding Error status 1 cut to 16 bytes, Header Len 1 (6.1.9: 24 bytes at least)."""
    mh = bytearray(bytes(MIP6MH_BE(status=1, ha=str(t.home_address), cksum=0))[:16])
    mh[1] = 1
    return bytes(mh)


def _corrupt_checksum(data: bytes) -> bytes:
    """``data`` (no extension headers) with its Mobility Header checksum XORed with 0x5a5a."""
    out = bytearray(data)
    out[44] ^= 0x5A
    out[45] ^= 0x5A
    return bytes(out)


def _signalling_from(care_of: IPv6Address):  # type: ignore[no-untyped-def]
    """Return routability or a Binding Update towards the correspondent from ``care_of``:
    a CoTI or BU straight from it, or a HoTI in the reverse tunnel from it."""

    def match(t: Tester, got: Received) -> bool:
        if got.source == care_of and got.destination == CN and got.mh_type in (2, 5):
            return True
        inner = _inner(got, care_of, PLAN.home_agent)
        return _inner_mh_type(inner) == 1 and inner is not None and IPv6Address(inner[24:40]) == CN

    return match


def correspondent_ba(
    t: Tester,
    sequence: int,
    status: int = 0,
    lifetime: int = 100,
    *,
    bad: bool = False,
    reserved: int = 0,
) -> bytes:
    """BA from the correspondent with Binding Authorization Data under the tester's Kbm;
    ``reserved``: the Mobility Header's Reserved byte (6.1.1), covered by the authenticator."""
    mh = bytearray(
        bytes(
            MIP6MH_BA(
                status=status,
                flags=0,
                seq=sequence,
                mhtime=lifetime,
                cksum=0,
                options=[MIP6OptBindingAuthData(olen=12, authenticator=0)],
            )
        )
    )
    mh[3] = reserved
    auth = authenticator(
        kbm(HOME_TOKEN, CARE_OF_TOKEN), t.care_of_address, CN, mobility_data(bytes(mh))
    )
    mh[-12:] = bytes([auth[0] ^ 0xFF]) + auth[1:] if bad else auth
    return _mh_packet(CN, t.care_of_address, bytes(mh), t.home_address)


def _cookie(inner_mh: bytes) -> bytes:
    return inner_mh[8:16]


def _answer_return_routability(t: Tester, got: list[Received]) -> list[bytes]:
    """HoT (tunnelled by the home agent) and CoT (direct) for the HoTI/CoTI in ``got``."""
    answers: list[bytes] = []
    for r in got:
        if _tunnelled_hoti(t, r):
            inner = r.data[40:]
            cookie = _cookie(inner[walk(inner).offset :])
            hot = MIP6MH_HoT(index=HOME_INDEX, cookie=cookie, token=HOME_TOKEN, cksum=0)
            packet = _mh_packet(CN, t.home_address, bytes(hot), None)
            answers.append(tunnel(PLAN.home_agent, t.care_of_address, packet))
        elif _direct_coti(t, r):
            cookie = _cookie(r.mh_bytes or b"")
            cot = MIP6MH_CoT(index=CARE_OF_INDEX, cookie=cookie, token=CARE_OF_TOKEN, cksum=0)
            answers.append(_mh_packet(CN, t.care_of_address, bytes(cot), None))
    return answers


def _echo_from_correspondent(t: Tester) -> bytes:
    return icmp_packet(CN, t.home_address, ICMPv6EchoRequest(id=0x4D4E, seq=1, data=b"hello mn"))


def _echo_reply_inner(t: Tester, data: bytes) -> bool:
    chain = walk(data)
    return (
        chain.upper_protocol == 58
        and data[chain.offset] == 129
        and IPv6Address(chain.pseudo_source) == t.home_address
        and IPv6Address(data[24:40]) == CN
        and checksum_ok(data)
    )


def _reverse_tunnelled_reply(t: Tester, got: Received) -> bool:
    inner = _inner(got, t.care_of_address, PLAN.home_agent)
    return inner is not None and _echo_reply_inner(t, inner)


def _route_optimized_reply(t: Tester, got: Received) -> bool:
    """RFC 3775 11.3.1: from the care-of address with a Home Address option naming the home
    address (checksum over the home address)."""
    return (
        got.source == t.care_of_address
        and got.chain.home_address_option == t.home_address.packed
        and _echo_reply_inner(t, got.data)
    )


def _any_echo_reply(t: Tester, got: Received) -> bool:
    return _reverse_tunnelled_reply(t, got) or _route_optimized_reply(t, got)


# -- preconditions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MnMoved:
    """The IUT moved to ``care_of`` and sent its home registration (not yet acknowledged)."""

    care_of: IPv6Address = PLAN.care_of

    def describe(self) -> str:
        return f"IUT control: move to {self.care_of}; its home registration BU captured"

    def apply(self, tester: Tester, iut: Any) -> None:
        got = tester.exchange([Act("move", self.care_of)], 0.5)
        bus = binding_updates(got, PLAN.home_agent)
        if not bus:
            raise PreconditionFailed("no home registration after moving")
        tester.memo["home_bu"] = bus[-1]


@dataclass(frozen=True, slots=True)
class MnRegistered:
    """Moved, home registration acknowledged by the tester (BA status 0)."""

    def describe(self) -> str:
        return "IUT moved to 2001:db8:3::5; its home registration answered with BA status 0"

    def apply(self, tester: Tester, iut: Any) -> None:
        MnMoved().apply(tester, iut)
        bu: Bu = tester.memo["home_bu"]
        tester.exchange([home_agent_ba(tester, bu.sequence)], 0.5)


@dataclass(frozen=True, slots=True)
class MnTokensSent:
    """Registered; route optimization with the correspondent started through the IUT control
    hook; HoT and CoT sent with the tester's tokens (indices 7 and 8)."""

    def describe(self) -> str:
        return (
            "registered; IUT control: route_optimize 2001:db8:2::99; HoTI/CoTI answered "
            "with HoT (tunnelled by the home agent) and CoT carrying the tester's tokens"
        )

    def apply(self, tester: Tester, iut: Any) -> None:
        MnRegistered().apply(tester, iut)
        got = tester.exchange([Act("route_optimize", CN)], 0.5)
        answers = _answer_return_routability(tester, got)
        if len(answers) != 2:
            raise PreconditionFailed("no HoTI and CoTI to answer")
        for answer in answers:
            tester.send(answer)


@dataclass(frozen=True, slots=True)
class MnTestInitsSent:
    """Registered; route optimization with the correspondent started through the IUT control
    hook; its HoTI and CoTI captured (not answered)."""

    def describe(self) -> str:
        return (
            "registered; IUT control: route_optimize 2001:db8:2::99; its HoTI (in the reverse "
            "tunnel) and CoTI captured, not answered"
        )

    def apply(self, tester: Tester, iut: Any) -> None:
        MnRegistered().apply(tester, iut)
        got = tester.exchange([Act("route_optimize", CN)], 0.5)
        if len(_answer_return_routability(tester, got)) != 2:
            raise PreconditionFailed("no HoTI and CoTI to the correspondent")


@dataclass(frozen=True, slots=True)
class MnCorrespondentBu:
    """Tokens sent and the mobile node's Binding Update to the correspondent captured (not
    answered)."""

    def describe(self) -> str:
        return MnTokensSent().describe() + "; the BU to the correspondent captured"

    def apply(self, tester: Tester, iut: Any) -> None:
        MnTokensSent().apply(tester, iut)
        bus = binding_updates(tester.receive(0.5), CN)
        if not bus:
            raise PreconditionFailed("no Binding Update to the correspondent")
        tester.memo["cn_bu"] = bus[-1]


@dataclass(frozen=True, slots=True)
class MnRouteOptimized:
    """Tokens sent, the correspondent BU captured and answered with an authorized BA 0."""

    def describe(self) -> str:
        return MnTokensSent().describe() + "; the BU to the correspondent answered with BA 0"

    def apply(self, tester: Tester, iut: Any) -> None:
        MnCorrespondentBu().apply(tester, iut)
        tester.exchange([correspondent_ba(tester, tester.memo["cn_bu"].sequence)], 0.5)


# -- checks ----------------------------------------------------------------------------------------


def _mobility_options(mh: bytes, start: int) -> list[tuple[int, bytes]]:
    """(type, data) of each mobility option from ``start`` (RFC 3775 6.2.1; Pad1 is one
    byte)."""
    options, offset = [], start
    while offset < len(mh):
        if mh[offset] == 0:
            offset += 1
            continue
        if offset + 2 > len(mh):
            break
        length = mh[offset + 1]
        options.append((mh[offset], mh[offset + 2 : offset + 2 + length]))
        offset += 2 + length
    return options


def _alternate_care_of(care_of: IPv6Address):  # type: ignore[no-untyped-def]
    def match(t: Tester, got: Received) -> bool:
        bus = binding_updates([got], PLAN.home_agent)
        if not bus or got.source != care_of or got.mh_bytes is None:
            return False
        # a BU's options start after its 12 fixed bytes (6.1.7); type 3, length 16 (6.2.5)
        return (3, care_of.packed) in _mobility_options(got.mh_bytes, 12)

    return match


def _home_registration_bu(t: Tester, got: Received) -> bool:
    bus = binding_updates([got], PLAN.home_agent)
    return (
        bool(bus)
        and bus[0].flags & (A_FLAG | H_FLAG) == A_FLAG | H_FLAG
        and bus[0].lifetime_units_4s > 0
        and got.source == t.care_of_address
        and got.chain.home_address_option == t.home_address.packed
    )


def _gaps(got: list[Received], to: IPv6Address) -> list[float]:
    times = [b.got.time for b in binding_updates(got, to)]
    return [b - a for a, b in itertools.pairwise(times)]


def _first_retransmission(t: Tester, got: list[Received]) -> bool:
    gaps = _gaps(got, PLAN.home_agent)
    return bool(gaps) and 1.45 <= gaps[0] <= 2.0


def _doubling(t: Tester, got: list[Received]) -> bool:
    gaps = _gaps(got, PLAN.home_agent)
    return len(gaps) >= 3 and all(1.9 <= b / a <= 2.1 for a, b in itertools.pairwise(gaps[:3]))


# Arrival times are the tester's: a sender that keeps exactly one second between its first
# and fourth BU (RFC 3775 11.8) may have them arrive a few milliseconds closer (its send path,
# a loaded box, the link), so the windows the tester counts in are this much shorter
RATE_WINDOW_SLACK = 0.01  # seconds


def _rate_limited(t: Tester, got: list[Received]) -> bool:
    times = [b.got.time for b in binding_updates(got, PLAN.home_agent)]
    window = 1.0 - RATE_WINDOW_SLACK
    return len(times) >= 3 and all(sum(1 for u in times if s <= u < s + window) <= 3 for s in times)


def _bu_newer_than(offset: int):  # type: ignore[no-untyped-def]
    def match(t: Tester, got: Received) -> bool:
        base = (t.memo["home_bu"].sequence + offset) & 0xFFFF
        bus = binding_updates([got], PLAN.home_agent)
        return bool(bus) and 0 < (bus[0].sequence - base) & 0xFFFF < 0x8000

    return match


def _any_home_bu(t: Tester, got: Received) -> bool:
    return bool(binding_updates([got], PLAN.home_agent))


def _correspondent_bu(t: Tester, got: Received) -> bool:
    """RFC 3775 11.7.2, 6.2.6, 6.2.7: from the care-of address with a HAO, Nonce Indices 7
    and 8, Binding Authorization Data verifying under Kbm = SHA1(home token | care-of token)."""
    bus = binding_updates([got], CN)
    if not bus or got.source != t.care_of_address:
        return False
    if got.chain.home_address_option != t.home_address.packed:
        return False
    mh = got.mh_bytes or b""
    indices = None
    i = 12
    while i < len(mh):
        if mh[i] == 0:
            i += 1
            continue
        if mh[i] == 4 and mh[i + 1] == 4:
            indices = struct.unpack("!HH", mh[i + 2 : i + 6])
        i += 2 + mh[i + 1]
    if indices != (HOME_INDEX, CARE_OF_INDEX) or mh[-14:-12] != b"\x05\x0c":
        return False
    expected = authenticator(
        kbm(HOME_TOKEN, CARE_OF_TOKEN), t.care_of_address, CN, mobility_data(mh)
    )
    return expected == mh[-12:]


def _deregistration_from_home(t: Tester, got: Received) -> bool:
    bus = binding_updates([got], PLAN.home_agent)
    return (
        bool(bus)
        and got.source == t.home_address
        and bus[0].flags & H_FLAG == H_FLAG
        and bus[0].flags & A_FLAG == A_FLAG
        and (
            bus[0].lifetime_units_4s == 0
            or got.chain.home_address_option in (None, t.home_address.packed)
        )
    )


def _rh2_echo(t: Tester, home: IPv6Address) -> bytes:
    body = ICMPv6EchoRequest(id=0x4D4E, seq=2, data=b"via rh2")
    return icmp_packet(CN, t.care_of_address, body, rh2=home)


def _test_init_to_home_agent(t: Tester, got: Received) -> bool:
    """A CoTI to the home agent, or a HoTI for it inside the reverse tunnel."""
    if got.mh_type in (1, 2) and got.destination == PLAN.home_agent:
        return True
    inner = _inner(got, t.care_of_address, PLAN.home_agent)
    return (
        _inner_mh_type(inner) in (1, 2)
        and inner is not None
        and IPv6Address(inner[24:40]) == PLAN.home_agent
    )


def _echo_to_home_from(source: IPv6Address, sequence: int = 1) -> bytes:
    body = ICMPv6EchoRequest(id=0x4D4F, seq=sequence, data=b"tunnelled")
    return icmp_packet(source, PLAN.home_address, body)


def _tunnelled_from(*sources: IPv6Address):  # type: ignore[no-untyped-def]
    """A stimulus: for each source, its Echo Request to the home address tunnelled by the
    home agent to the care-of address."""

    def stimulus(t: Tester) -> list[bytes]:
        return [
            tunnel(PLAN.home_agent, t.care_of_address, _echo_to_home_from(source, i))
            for i, source in enumerate(sources, 1)
        ]

    return stimulus


def _any_test_init(t: Tester, got: Received) -> bool:
    """A CoTI to anyone, or a HoTI inside the reverse tunnel to anyone."""
    if got.mh_type == 2:
        return True
    return _inner_mh_type(_inner(got, t.care_of_address, PLAN.home_agent)) == 1


def _hoti_destinations(t: Tester, got: list[Received]) -> set[IPv6Address]:
    out = set()
    for r in got:
        inner = _inner(r, t.care_of_address, PLAN.home_agent)
        if _inner_mh_type(inner) == 1 and inner is not None:
            out.add(IPv6Address(inner[24:40]))
    return out


RO_FLOOD = tuple(IPv6Address(int(IPv6Address("2001:db8:2::100")) + i) for i in range(20))


def _cn_bu_again(t: Tester, got: Received) -> bool:
    return bool(binding_updates([got], CN))


CASES: tuple[Case, ...] = (
    Case(
        id="MN-BU-ALTCOA-01",
        title="A home registration carries the care-of address in an Alternate Care-of "
        "Address option",
        rfc_section="11.7.1, 6.2.5",
        requirement="The Alternate Care-of Address option is included in every home "
        "registration, because ESP does not protect the care-of address in the IPv6 header's "
        "source (paraphrase).",
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [Act("move", PLAN.care_of2)],
        stimulus_text="IUT control: move to 2001:db8:4::5",
        expect=(
            Expect(
                "BU to 2001:db8:1::1 from 2001:db8:4::5 with an Alternate Care-of Address "
                "option naming 2001:db8:4::5",
                _alternate_care_of(PLAN.care_of2),
            ),
        ),
        timeout=1.0,
    ),
    Case(
        id="MN-BU-HOME-01",
        title="After moving, the mobile node registers with its home agent (A and H set)",
        rfc_section="11.5.1, 11.7.1",
        requirement="After a new care-of address is formed, the mobile node sends its home "
        "agent a Binding Update with the Home Registration (H) and Acknowledge (A) bits set, "
        "from the care-of address with a Home Address option (paraphrase).",
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [Act("move", PLAN.care_of)],
        stimulus_text="IUT control: move to 2001:db8:3::5",
        expect=(
            Expect(
                "BU to 2001:db8:1::1 from the care-of address, HAO = home address, A and H "
                "set, lifetime > 0, checksum over the home address",
                _home_registration_bu,
            ),
        ),
        timeout=1.0,
    ),
    Case(
        id="MN-BU-RETX-01",
        title="An unacknowledged first home registration is retransmitted after "
        "InitialBindackTimeoutFirstReg",
        rfc_section="11.8, 13",
        requirement="When the mobile node sends a Binding Update with A set and receives no "
        "Binding Acknowledgement it retransmits, starting from InitialBindackTimeoutFirstReg "
        "(1.5 s) for a first home registration (paraphrase).",
        level="SHOULD",
        role=ROLE,
        stimulus=lambda t: [Act("move", PLAN.care_of)],
        stimulus_text="IUT control: move to 2001:db8:3::5; no BA ever",
        expect=(Check("the second BU 1.5 s (+0.5 s) after the first", _first_retransmission),),
        timeout=3.0,
    ),
    Case(
        id="MN-BU-RETX-02",
        title="Retransmission timeouts double",
        rfc_section="11.8",
        requirement='"The retransmissions by the mobile node MUST use an exponential back-off '
        'process in which the timeout period is doubled upon each retransmission".',
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [Act("move", PLAN.care_of)],
        stimulus_text="IUT control: move to 2001:db8:3::5; no BA ever",
        expect=(Check("gaps between BUs doubling (ratio 2 +-5%)", _doubling),),
        timeout=25.0,
    ),
    Case(
        id="MN-BU-RATE-01",
        title="At most MAX_UPDATE_RATE Binding Updates per second to the home agent",
        rfc_section="11.8, 12",
        requirement="A mobile node MUST NOT send Binding Updates to a particular node more "
        "than MAX_UPDATE_RATE (3) times within a second (paraphrase).",
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [
            item
            for i in range(8)
            for item in (Act("move", PLAN.care_of2 if i % 2 else PLAN.care_of), Delay(0.1))
        ],
        stimulus_text="IUT control: move between 2001:db8:3::5 and 2001:db8:4::5 eight times, "
        "0.1 s apart",
        expect=(Check("never more than 3 BUs to the home agent in one second", _rate_limited),),
        timeout=3.0,
    ),
    Case(
        id="MN-BA-ACCEPT-01",
        title="A matching BA status 0 stops retransmission",
        rfc_section="11.7.3",
        requirement="On a valid Binding Acknowledgement with status 0 for the Binding Update "
        "it sent, the mobile node stops retransmitting it (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(MnMoved(),),
        stimulus=lambda t: [home_agent_ba(t, t.memo["home_bu"].sequence)],
        stimulus_text="BA status 0 echoing the BU's sequence number, from the home agent",
        expect=(Silence("no further BU to the home agent for 10 s", _any_home_bu),),
        timeout=10.0,
    ),
    Case(
        id="MN-BA-SEQ-01",
        title="A BA whose sequence number does not match the BU is ignored",
        rfc_section="11.7.3",
        requirement="The mobile node acts only on a Binding Acknowledgement whose Sequence "
        "Number matches the Binding Update it sent; it keeps retransmitting otherwise "
        "(paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(MnMoved(),),
        stimulus=lambda t: [home_agent_ba(t, (t.memo["home_bu"].sequence + 5) & 0xFFFF)],
        stimulus_text="BA status 0 with the BU's sequence number + 5",
        expect=(Expect("the BU retransmitted", _any_home_bu),),
        timeout=3.0,
    ),
    Case(
        id="MN-BA-135-01",
        title="BA 135 makes the mobile node resend with a sequence number above the BA's",
        rfc_section="11.7.3",
        requirement="On status 135 the mobile node sends a new Binding Update with a "
        "Sequence Number greater than the one in the Binding Acknowledgement (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(MnMoved(),),
        stimulus=lambda t: [home_agent_ba(t, (t.memo["home_bu"].sequence + 1000) & 0xFFFF, 135)],
        stimulus_text="BA status 135 carrying the BU's sequence number + 1000",
        expect=(Expect("a BU with a sequence number newer than BA's", _bu_newer_than(1000)),),
        timeout=1.0,
    ),
    Case(
        id="MN-BA-REJECT-01",
        title="A home registration rejected with BA 129 is not retransmitted",
        rfc_section="11.7.3, 11.8",
        requirement="A Binding Acknowledgement with a rejection status (128 or more, other "
        "than the sequence and nonce statuses the mobile node can correct) answers the Binding "
        "Update: retransmission for it stops (paraphrase).",
        level="SHOULD",
        role=ROLE,
        preconditions=(MnMoved(),),
        stimulus=lambda t: [home_agent_ba(t, t.memo["home_bu"].sequence, 129)],
        stimulus_text="BA status 129 (administratively prohibited) for the captured BU",
        expect=(
            Silence(
                "no Binding Update to the home agent for 3 s (the first retransmission was due "
                "1.5 s after the BU)",
                lambda t, got: bool(binding_updates([got], PLAN.home_agent)),
            ),
        ),
        timeout=3.0,
    ),
    Case(
        id="MN-BA-136-HA-01",
        title="BA 136 from the home agent is a rejection, not a reason for return routability",
        rfc_section="11.7.3, 5.2.7",
        requirement="Statuses 136-138 concern the nonces of return routability, which a home "
        "registration does not use; like any status of 128 or more the mobile node takes it "
        "as a rejection and SHOULD NOT send further Binding Updates to that destination "
        "(paraphrase).",
        level="SHOULD",
        role=ROLE,
        preconditions=(MnMoved(),),
        stimulus=lambda t: [home_agent_ba(t, t.memo["home_bu"].sequence, 136)],
        stimulus_text="BA status 136 (expired home nonce index) for the captured home "
        "registration, from the home agent",
        expect=(
            Silence("no HoTI or CoTI for the home agent", _test_init_to_home_agent),
            Silence(
                "no Binding Update to the home agent for 3 s (the retransmission was due 1.5 s "
                "after the BU)",
                _any_home_bu,
            ),
        ),
        timeout=3.0,
    ),
    Case(
        id="MN-TUN-01",
        title="A packet tunnelled by the home agent is decapsulated; the answer is "
        "reverse-tunnelled",
        rfc_section="11.3.2, 11.3.1",
        requirement="The mobile node accepts packets its home agent tunnels to the care-of "
        "address, and without a binding at the correspondent sends its packets through the "
        "reverse tunnel to the home agent (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(MnRegistered(),),
        stimulus=lambda t: [
            tunnel(PLAN.home_agent, t.care_of_address, _echo_from_correspondent(t))
        ],
        stimulus_text="IPv6-in-IPv6 from the home agent to the care-of address; inner Echo "
        "Request correspondent -> home address",
        expect=(
            Expect(
                "Echo Reply home address -> correspondent inside IPv6-in-IPv6 care-of -> home "
                "agent",
                _reverse_tunnelled_reply,
            ),
        ),
        timeout=1.0,
    ),
    Case(
        id="MN-TUN-02",
        title="A packet tunnelled from another node than the home agent is dropped",
        rfc_section="11.3.2",
        requirement="The mobile node accepts tunnelled packets for its home address only from "
        "its home agent (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(MnRegistered(),),
        stimulus=lambda t: [tunnel(CN, t.care_of_address, _echo_from_correspondent(t))],
        stimulus_text="IPv6-in-IPv6 from 2001:db8:2::99 (not the home agent) to the care-of "
        "address",
        expect=(Silence("no Echo Reply", _any_echo_reply),),
        timeout=1.0,
    ),
    Case(
        id="MN-RR-01",
        title="Return routability: HoTI through the reverse tunnel, CoTI directly",
        rfc_section="11.6.1, 5.2.5",
        requirement="The Home Test Init is sent from the home address, tunnelled to the home "
        "agent; the Care-of Test Init is sent directly from the care-of address; neither "
        "carries a Home Address option (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(MnRegistered(),),
        stimulus=lambda t: [Act("route_optimize", CN)],
        stimulus_text="IUT control: route_optimize 2001:db8:2::99",
        expect=(
            Expect("HoTI home address -> correspondent inside the reverse tunnel", _tunnelled_hoti),
            Expect("CoTI care-of address -> correspondent, no HAO", _direct_coti),
        ),
        timeout=1.0,
    ),
    Case(
        id="MN-RR-02",
        title="The correspondent BU uses the nonce indices and Kbm from the tokens",
        rfc_section="11.7.2, 5.2.6, 6.2.7",
        requirement="The Binding Update to the correspondent carries the Nonce Indices of the "
        "HoT and CoT and Binding Authorization Data computed with Kbm = SHA1(home keygen "
        "token | care-of keygen token) (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(MnTokensSent(),),
        stimulus=lambda t: [],
        stimulus_text="(none: the HoT and CoT of the precondition)",
        expect=(
            Expect(
                "BU to the correspondent from the care-of address with HAO, Nonce Indices 7/8, "
                "authenticator valid under the tester's Kbm",
                _correspondent_bu,
            ),
        ),
        timeout=1.0,
    ),
    Case(
        id="MN-BA-AUTH-01",
        title="A correspondent BA with a bad authenticator is ignored",
        rfc_section="11.7.3",
        requirement="A Binding Acknowledgement from a correspondent whose Binding "
        "Authorization Data does not verify is silently discarded (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(MnCorrespondentBu(),),
        stimulus=lambda t: [correspondent_ba(t, t.memo["cn_bu"].sequence, bad=True)],
        stimulus_text="BA status 0 from the correspondent with its authenticator's first "
        "byte flipped",
        expect=(Expect("the BU to the correspondent retransmitted", _cn_bu_again),),
        timeout=2.0,
    ),
    Case(
        id="MN-BA-AUTH-02",
        title="A correspondent BA is authenticated over its bytes as received (Reserved set)",
        rfc_section="11.7.3, 6.1.1, 5.2.6",
        requirement="The Binding Authorization Data covers the Mobility Data as sent; the "
        'Reserved field is set to zero by the sender and "MUST be ignored by the receiver" '
        "(6.1.1), so a BA whose Reserved byte is not zero and whose authenticator verifies "
        "over its bytes is accepted (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(MnCorrespondentBu(),),
        stimulus=lambda t: [
            correspondent_ba(t, t.memo["cn_bu"].sequence, reserved=0x5A),
            Delay(0.3),
            tunnel(PLAN.home_agent, t.care_of_address, _echo_from_correspondent(t)),
        ],
        stimulus_text="BA status 0 from the correspondent with Reserved = 0x5a, authenticator "
        "computed over those bytes; then an Echo Request tunnelled by the home agent",
        expect=(
            Expect(
                "Echo Reply from the care-of address with a HAO (the binding is in use)",
                _route_optimized_reply,
            ),
        ),
        timeout=1.0,
    ),
    _expired_nonce_case(136, "home nonce index", "home", "the home keygen token"),
    _expired_nonce_case(137, "care-of nonce index", "care_of", "the care-of keygen token"),
    _expired_nonce_case(138, "nonces", "both", "both keygen tokens"),
    Case(
        id="MN-RO-01",
        title="With a correspondent binding, packets go out with a Home Address option",
        rfc_section="11.3.1",
        requirement="With a binding at the correspondent, the mobile node sends packets from "
        "the care-of address with a Home Address option naming the home address (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(MnRouteOptimized(),),
        stimulus=lambda t: [
            tunnel(PLAN.home_agent, t.care_of_address, _echo_from_correspondent(t))
        ],
        stimulus_text="an Echo Request from the correspondent tunnelled by the home agent",
        expect=(Expect("Echo Reply from the care-of address with a HAO", _route_optimized_reply),),
        timeout=1.0,
    ),
    Case(
        id="MN-RO-SRC-01",
        title="Tunnelled packets from the node's own or non-global addresses start no return "
        "routability",
        rfc_section="11.7.2, RFC 4291 2.4",
        requirement="Traffic through the home agent's tunnel may start route optimization "
        "with its sender (11.7.2); a correspondent is another node with a global unicast "
        "address, so the mobile node's own home and care-of addresses, link-local and "
        "IPv4-mapped sources start nothing (this implementation's reading).",
        level="MUST",
        role=ROLE,
        preconditions=(MnRegistered(),),
        stimulus=lambda t: _tunnelled_from(
            t.home_address,
            t.care_of_address,
            IPv6Address("fe80::99"),
            IPv6Address("::ffff:192.0.2.1"),
        )(t),
        stimulus_text="Echo Requests to the home address tunnelled by the home agent, inner "
        "sources the home address, the care-of address, fe80::99 and ::ffff:192.0.2.1",
        expect=(Silence("no HoTI and no CoTI to anyone", _any_test_init),),
        timeout=2.0,
    ),
    Case(
        id="MN-RO-RATE-01",
        title="Return routability started by tunnelled traffic is rate limited",
        rfc_section="11.7.2, 11.8",
        requirement="Starting route optimization on traffic through the home agent is a MAY "
        "(11.7.2); anyone can write the inner source, so the starts are rate limited: at most "
        "the burst of 5 at once (this implementation's policy).",
        level="MAY",
        role=ROLE,
        preconditions=(MnRegistered(),),
        stimulus=_tunnelled_from(*RO_FLOOD),
        stimulus_text="Echo Requests to the home address tunnelled by the home agent from 20 "
        "inner sources 2001:db8:2::100 - 2001:db8:2::113, at once",
        expect=(
            Check(
                "HoTIs toward 1 to 5 of the 20 sources",
                lambda t, got: 1 <= len(_hoti_destinations(t, got) & set(RO_FLOOD)) <= 5,
            ),
        ),
        timeout=1.0,
    ),
    Case(
        id="MN-RH2-01",
        title="A packet with a type 2 routing header naming the home address is accepted",
        rfc_section="11.3.3",
        requirement="The mobile node processes a type 2 routing header whose address is its "
        "home address and delivers the packet to the home address (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(MnRouteOptimized(),),
        stimulus=lambda t: [_rh2_echo(t, t.home_address)],
        stimulus_text="Echo Request correspondent -> care-of address, RH2 naming the home address",
        expect=(Expect("Echo Reply with a HAO", _route_optimized_reply),),
        timeout=1.0,
    ),
    Case(
        id="MN-RH2-02",
        title="A type 2 routing header naming another address is dropped",
        rfc_section="11.3.3, 6.4",
        requirement="A type 2 routing header naming an address that is not the mobile node's "
        "home address is not processed; the packet is dropped (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(MnRouteOptimized(),),
        stimulus=lambda t: [_rh2_echo(t, IPv6Address("2001:db8:1::6"))],
        stimulus_text="Echo Request correspondent -> care-of address, RH2 naming 2001:db8:1::6",
        expect=(Silence("no Echo Reply", _any_echo_reply),),
        timeout=1.0,
    ),
    Case(
        id="MN-BRR-01",
        title="A Binding Refresh Request makes the mobile node refresh the binding",
        rfc_section="11.7.4",
        requirement="On a Binding Refresh Request from a correspondent it has a binding with, "
        "the mobile node refreshes the binding (return routability and a new Binding "
        "Update) (paraphrase).",
        level="SHOULD",
        role=ROLE,
        preconditions=(MnRouteOptimized(),),
        stimulus=lambda t: [
            _mh_packet(CN, t.care_of_address, bytes(MIP6MH_BRR(cksum=0)), t.home_address)
        ],
        stimulus_text="BRR correspondent -> care-of address with RH2 naming the home address",
        expect=(Expect("HoTI, CoTI or BU towards the correspondent", _correspondent_signalling),),
        timeout=2.0,
    ),
    Case(
        id="MN-MH-PROTO-01",
        title="A Mobility Header with Payload Proto not 59 and the payload it announces gets a "
        "Parameter Problem pointing at Payload Proto",
        rfc_section="9.2, 6.1.1",
        requirement="The Payload Proto field MUST be IPPROTO_NONE; otherwise the node MUST "
        "discard the message and SHOULD send ICMP Parameter Problem, Code 0, directly to the "
        "Source Address; the Pointer SHOULD point at the Payload Proto field (paraphrase).",
        level="SHOULD",
        role=ROLE,
        preconditions=(MnRouteOptimized(),),
        stimulus=lambda t: [
            _mh_packet(
                CN,
                t.care_of_address,
                bytes(MIP6MH_BRR(nh=6, cksum=0)) + bytes(20),
                t.home_address,
            )
        ],
        stimulus_text="BRR correspondent -> care-of address with RH2 naming the home address, "
        "Payload Proto 6, followed by 20 bytes (a TCP header) in the IPv6 payload",
        expect=(
            # the Mobility Header starts after the IPv6 header (40) and the type 2 routing
            # header (24)
            Expect("ICMPv6 Parameter Problem code 0, pointer 64", m.icmp(4, 0, 64)),
            Silence(
                "no HoTI, CoTI or BU towards the correspondent (the BRR is not acted upon)",
                _correspondent_signalling,
            ),
        ),
        timeout=1.0,
    ),
    Case(
        id="MN-MH-HDRLEN-01",
        title="A Mobility Header whose Header Len is too small gets a Parameter Problem "
        "pointing at Header Len and is not acted upon",
        rfc_section="9.2",
        requirement='"The Header Len field in the Mobility Header MUST NOT be less than the '
        'length specified for this particular type of message in Section 6.1"; such a message '
        "is discarded and SHOULD be answered with ICMP Parameter Problem, Code 0, the Pointer "
        "at the Header Len field (paraphrase of the second half).",
        level="MUST",
        role=ROLE,
        preconditions=(MnRouteOptimized(),),
        stimulus=lambda t: [_mh_packet(CN, t.care_of_address, _short_binding_error(t), None)],
        stimulus_text="Binding Error status 1 (home address 2001:db8:1::5) from the "
        "correspondent, Header Len 1 and 16 bytes long (a Binding Error needs 24)",
        expect=(
            Expect("ICMPv6 Parameter Problem code 0, pointer 41", m.icmp(4, 0, 41)),
            Silence("no HoTI, CoTI or BU towards the correspondent", _correspondent_signalling),
        ),
        timeout=2.0,
    ),
    Case(
        id="MN-MH-CKSUM-01",
        title="A Mobility Header with a wrong checksum is silently discarded",
        rfc_section="9.2",
        requirement="The checksum must be verified; otherwise the node MUST silently discard "
        "the message (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(MnRouteOptimized(),),
        stimulus=lambda t: [_corrupt_checksum(binding_error(t, 1))],
        stimulus_text="Binding Error status 1 (home address 2001:db8:1::5) from the "
        "correspondent, MH checksum XORed with 0x5a5a",
        expect=(Silence("no packet at all (no HoTI, CoTI or BU; no ICMP error)"),),
        timeout=2.0,
    ),
    Case(
        id="MN-MH-TYPE-01",
        title="An unknown MH Type gets Binding Error 2",
        rfc_section="9.2",
        requirement="An unknown MH Type is discarded and answered with a Binding Error with "
        "status 2 (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(MnRegistered(),),
        stimulus=lambda t: [
            _mh_packet(CN, t.care_of_address, bytes([59, 1, 201, 0, 0, 0]) + bytes(10), None)
        ],
        stimulus_text="Mobility Header of MH Type 201 from the correspondent to the care-of "
        "address",
        expect=(
            Expect(
                "Binding Error status 2 to the correspondent",
                lambda t, got: got.destination == CN and m.be(2, home_address=False)(t, got),
            ),
        ),
        timeout=1.0,
    ),
    Case(
        id="MN-BE-1-01",
        title="Binding Error 1 from the correspondent makes the mobile node bind again",
        rfc_section="11.3.6",
        requirement="On a Binding Error with status 1 the mobile node should send a Binding "
        "Update to the correspondent (after return routability) (paraphrase).",
        level="SHOULD",
        role=ROLE,
        preconditions=(MnRouteOptimized(),),
        stimulus=lambda t: [binding_error(t, 1)],
        stimulus_text="Binding Error status 1 (home address 2001:db8:1::5) from the correspondent",
        expect=(Expect("HoTI, CoTI or BU towards the correspondent", _correspondent_signalling),),
        timeout=2.0,
    ),
    Case(
        id="MN-BE-2-01",
        title="Binding Error 2 while awaiting the correspondent's HoT and CoT stops route "
        "optimization",
        rfc_section="11.3.6",
        requirement="Expecting a response from the correspondent, on a Binding Error with "
        "status 2 the mobile node should cease the attempt to use route optimization with it "
        "(paraphrase; this implementation believes it only before any Binding Update went to "
        "that correspondent, see MN-BE-2-03).",
        level="SHOULD",
        role=ROLE,
        preconditions=(MnTestInitsSent(),),
        stimulus=lambda t: [binding_error(t, 2), Delay(0.5), Act("route_optimize", CN)],
        stimulus_text="Binding Error status 2 from the correspondent while its HoT and CoT are "
        "awaited; then IUT control: route_optimize 2001:db8:2::99",
        expect=(
            Silence(
                "no HoTI, CoTI or BU towards the correspondent (HoTI and CoTI not retransmitted)",
                _correspondent_signalling,
            ),
        ),
        timeout=3.0,
    ),
    Case(
        id="MN-BE-2-02",
        title="A Binding Error 2 from a correspondent that acknowledged our binding does not "
        "stop the mobile node from keeping that binding current",
        rfc_section="11.3.6, 11.7.2",
        requirement='"If the mobile node is not expecting an acknowledgement or response from '
        'the correspondent node, the mobile node SHOULD ignore this message"; and a binding the '
        "mobile node created must not be left naming a care-of address it has left: after a "
        "move it is updated (or deleted) (paraphrase).",
        level="SHOULD",
        role=ROLE,
        preconditions=(MnRouteOptimized(),),
        stimulus=lambda t: [
            binding_error(t, 2),
            Delay(0.5),
            Act("move", PLAN.care_of2),
            Delay(0.3),
            home_agent_ba(t, (t.memo["home_bu"].sequence + 1) & 0xFFFF, care_of=PLAN.care_of2),
        ],
        stimulus_text="Binding Error status 2 from the correspondent that sent an authorized BA "
        "0; IUT control: move to 2001:db8:4::5; the new home registration answered with BA 0",
        expect=(
            Expect(
                "HoTI (in the reverse tunnel), CoTI or BU towards the correspondent from "
                "2001:db8:4::5",
                _signalling_from(PLAN.care_of2),
            ),
        ),
        timeout=2.0,
    ),
    Case(
        id="MN-BE-2-03",
        title="A Binding Error 2 while the correspondent's first BA is awaited does not stop "
        "the mobile node from keeping the binding current",
        rfc_section="11.3.6, 11.7.2",
        requirement="The correspondent may hold the binding the Binding Update created although "
        "its BA has not arrived; Binding Errors are not authenticated, and a binding the mobile "
        "node created must not be left naming a care-of address it has left: after a move it "
        "is updated (or deleted) (this implementation's reading of 11.3.6).",
        level="SHOULD",
        role=ROLE,
        preconditions=(MnCorrespondentBu(),),
        stimulus=lambda t: [
            binding_error(t, 2),
            Delay(0.2),
            Act("move", PLAN.care_of2),
            Delay(0.3),
            home_agent_ba(t, (t.memo["home_bu"].sequence + 1) & 0xFFFF, care_of=PLAN.care_of2),
        ],
        stimulus_text="Binding Error status 2 from the correspondent while the BA to its first "
        "BU is awaited (never sent); IUT control: move to 2001:db8:4::5; the new home "
        "registration answered with BA 0",
        expect=(
            Expect(
                "HoTI (in the reverse tunnel), CoTI or BU towards the correspondent from "
                "2001:db8:4::5",
                _signalling_from(PLAN.care_of2),
            ),
        ),
        timeout=2.0,
    ),
    Case(
        id="MN-BE-1-02",
        title="After a Binding Error 2 was accepted, a Binding Error 1 does not restart route "
        "optimization",
        rfc_section="11.3.6",
        requirement="Having ceased route optimization with a correspondent on a Binding Error "
        "2, the mobile node does not resume it on an (equally unauthenticated) Binding Error 1 "
        "(this implementation's reading).",
        level="SHOULD",
        role=ROLE,
        preconditions=(MnTestInitsSent(),),
        stimulus=lambda t: [binding_error(t, 2), Delay(0.5), binding_error(t, 1)],
        stimulus_text="Binding Error status 2 from the correspondent while its HoT and CoT are "
        "awaited; then Binding Error status 1 (home address 2001:db8:1::5) from it",
        expect=(
            Silence("no HoTI, CoTI or BU towards the correspondent", _correspondent_signalling),
        ),
        timeout=3.0,
    ),
    Case(
        id="MN-DEREG-01",
        title="Returning home, the mobile node deregisters from its home address",
        rfc_section="11.5.4",
        requirement="Back on its home link, the mobile node sends its home agent a Binding "
        "Update from the home address with lifetime 0 or care-of address = home address, "
        "A and H set (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(MnRegistered(),),
        stimulus=lambda t: [Act("move", None)],
        stimulus_text="IUT control: move home",
        expect=(Expect("deregistration BU from the home address", _deregistration_from_home),),
        timeout=1.0,
    ),
)


# -- mobile node faults for the mutation run -------------------------------------------------------


def _mn_module() -> Any:
    from mip6.roles import mobile_node

    return mobile_node


def _no_backoff(engine: Any) -> None:
    original = engine._retransmit

    def retransmit(now: float, destination: Any) -> Any:
        entry = engine.bul.get(destination)
        if entry is not None:
            entry.retransmit_timeout = engine.constants.initial_bindack_timeout / 2
        return original(now, destination)

    engine._retransmit = retransmit


def _ignores_135(engine: Any) -> None:
    original = engine._binding_acknowledgement

    def ack(now: float, inbound: Any, ba: Any) -> Any:
        return [] if ba.status == 135 else original(now, inbound, ba)

    engine._binding_acknowledgement = ack


def _retransmits_after_rejection(engine: Any) -> None:
    original = engine._binding_acknowledgement

    def ack(now: float, inbound: Any, ba: Any) -> Any:
        return [] if 128 <= ba.status < 135 else original(now, inbound, ba)

    engine._binding_acknowledgement = ack


def _no_rate_limit(engine: Any) -> None:
    import dataclasses

    engine.constants = dataclasses.replace(engine.constants, max_update_rate=1000)


def _tunnel_from_anyone(engine: Any) -> None:
    engine.tunnel_relay = CN


def _accept_ba_any_authenticator(engine: Any) -> None:
    original = engine._binding_acknowledgement

    def ack(now: float, inbound: Any, ba: Any) -> Any:
        entry = engine.bul.get(inbound.packet.source)
        if entry is not None and not entry.home_registration:
            saved = entry.home_registration
            entry.home_registration = True  # skip the correspondent authenticator check
            try:
                return original(now, inbound, ba)
            finally:
                entry.home_registration = saved
        return original(now, inbound, ba)

    engine._binding_acknowledgement = ack


def _ignores_binding_error_2(engine: Any) -> None:
    original = engine._binding_error

    def error(now: float, inbound: Any, be: Any) -> Any:
        return [] if be.status == 2 else original(now, inbound, be)

    engine._binding_error = error


@contextlib.contextmanager
def _expired_nonces_as_rejection() -> Iterator[None]:
    from mip6.roles import mobile_node

    with mock.patch.object(mobile_node, "EXPIRED_NONCE_STATUSES", ()):
        yield


def _no_alternate_care_of(engine: Any) -> None:
    original = engine._home_binding_update

    def without(entry: Any) -> Any:
        packet = original(entry)
        bu = packet.payload
        plain = dataclasses.replace(bu, options=()).aligned()
        return dataclasses.replace(packet, payload=plain)

    engine._home_binding_update = without


def _expired_nonces_at_home_agent_start_rr(engine: Any) -> None:
    original = engine._binding_acknowledgement

    def ack(now: float, inbound: Any, ba: Any) -> Any:
        entry = engine.bul.get(inbound.packet.source)
        if entry is not None and entry.home_registration and ba.status in (136, 137, 138):
            entry.home_registration = False  # handled as a correspondent's expired nonces
            try:
                return original(now, inbound, ba)
            finally:
                entry.home_registration = True
        return original(now, inbound, ba)

    engine._binding_acknowledgement = ack


def _binding_error_2_always_believed(engine: Any) -> None:
    engine._unrecognized_mh_type_applies = lambda entry: True


def _binding_error_1_after_2_restarts(engine: Any) -> None:
    original = engine._binding_error

    def error(now: float, inbound: Any, be: Any) -> Any:
        entry = engine.bul.get(inbound.packet.source)
        if be.status == 1 and entry is not None:
            entry.mobility_header_unsupported = False
        return original(now, inbound, be)

    engine._binding_error = error


def _route_optimizes_any_source(engine: Any) -> None:
    engine._may_route_optimize_with = lambda correspondent: True


def _route_optimization_starts_unlimited(engine: Any) -> None:
    engine._route_optimization_start_allowed = lambda now, correspondent: True


FAULTS: tuple[Fault, ...] = (
    Fault(
        "mn-no-alternate-care-of-address",
        "mn",
        "home registrations without the Alternate Care-of Address option",
        instance=_no_alternate_care_of,
    ),
    Fault(
        "mn-expired-nonce-ba-is-final",
        "mn",
        "BA 136/137/138 taken as a final rejection: no fresh tokens, no new BU",
        module=_expired_nonces_as_rejection,
    ),
    Fault(
        "mn-no-exponential-backoff",
        "mn",
        "BU retransmission interval does not double",
        instance=_no_backoff,
    ),
    Fault(
        "mn-expired-nonces-from-home-agent-start-rr",
        "mn",
        "BA 136-138 for a home registration starts return routability with the home agent",
        instance=_expired_nonces_at_home_agent_start_rr,
    ),
    Fault("mn-ignores-ba-135", "mn", "BA 135 not acted upon", instance=_ignores_135),
    Fault(
        "mn-ignores-rejection",
        "mn",
        "a rejecting BA (128-134) ignored: the BU keeps being retransmitted",
        instance=_retransmits_after_rejection,
    ),
    Fault("mn-no-max-update-rate", "mn", "MAX_UPDATE_RATE not enforced", instance=_no_rate_limit),
    Fault(
        "mn-accepts-tunnel-from-anyone",
        "mn",
        "tunnelled packets accepted from a node that is not the home agent",
        instance=_tunnel_from_anyone,
    ),
    Fault(
        "mn-route-optimizes-any-source",
        "mn",
        "tunnelled packets from the node's own or non-global addresses start return routability",
        instance=_route_optimizes_any_source,
    ),
    Fault(
        "mn-route-optimization-starts-unlimited",
        "mn",
        "return routability started for every tunnelled source, without a rate limit",
        instance=_route_optimization_starts_unlimited,
    ),
    Fault(
        "mn-ba-authenticator-not-checked",
        "mn",
        "correspondent BA accepted without a valid authenticator",
        instance=_accept_ba_any_authenticator,
    ),
    Fault(
        "mn-ignores-binding-error-2",
        "mn",
        "Binding Error 2 does not stop route optimization",
        instance=_ignores_binding_error_2,
    ),
    Fault(
        "mn-binding-error-2-always-believed",
        "mn",
        "Binding Error 2 stops managing a binding the correspondent acknowledged",
        instance=_binding_error_2_always_believed,
    ),
    Fault(
        "mn-binding-error-1-restarts-after-2",
        "mn",
        "Binding Error 1 restarts route optimization given up on a Binding Error 2",
        instance=_binding_error_1_after_2_restarts,
    ),
)

__all__ = ["CASES", "FAULTS"]
