"""Correspondent node cases (RFC 3775 5.2, 6.1, 9). The tester plays a mobile node: home
address 2001:db8:1::5, care-of address 2001:db8:3::5; the IUT is the correspondent.

Requirement texts quote RFC 3775 where marked with quotation marks, and paraphrase it
otherwise; the section number is the authority.
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance import match as m
from conformance.case import (
    Case,
    CorrespondentBinding,
    Expect,
    PreconditionFailed,
    ReturnRoutability,
    Silence,
    StaleTokens,
    Wait,
)
from conformance.iut import IutControl
from conformance.tester import Delay, Received, Tester, checksum_ok
from conformance.transport import ADDRESSES

ROLE = "cn"
SECOND_HOME_ADDRESS = ADDRESSES.home_agent  # an address the tester owns on the home prefix
COOKIE = b"\xc0\x0c\x1e\x5e\x01\x02\x03\x04"
BINDING = CorrespondentBinding(sequence=100, lifetime_units_4s=25)
NO_BINDING = Expect("Binding Error status 1 naming the home address (no binding any more)", m.be(1))
NO_ANSWER = Silence("no packet at all (silently discarded)")
NO_BA = Silence("no Binding Acknowledgement", m.any_binding_ack)


@dataclass(frozen=True, slots=True)
class SecondMobileNode:
    """The tester now plays a second mobile node, home address :data:`SECOND_HOME_ADDRESS`
    at the same care-of address, with its own return routability done."""

    def describe(self) -> str:
        return f"a second mobile node {SECOND_HOME_ADDRESS}: return routability done"

    def apply(self, tester: Tester, iut: IutControl) -> None:
        tester.home_address = SECOND_HOME_ADDRESS
        tester.sequence = 0
        if not tester.return_routability():
            raise PreconditionFailed("the IUT did not answer the second HoTI/CoTI")


def _hot(t: Tester, got: Received) -> bool:
    """HoT to the home address, same cookie, a nonce index and a 64-bit token."""
    mh = got.mh_bytes
    return (
        got.mh_type == 3
        and checksum_ok(got.data)
        and got.destination == t.home_address
        and got.source == t.peer
        and mh is not None
        and len(mh) >= 24
        and mh[8:16] == COOKIE
    )


def _cot(t: Tester, got: Received) -> bool:
    mh = got.mh_bytes
    return (
        got.mh_type == 4
        and checksum_ok(got.data)
        and got.destination == t.care_of_address
        and got.source == t.peer
        and mh is not None
        and len(mh) >= 24
        and mh[8:16] == COOKIE
    )


def _ba_from_home(t: Tester, got: Received) -> bool:
    return (
        m.ba(0, authorized=True, from_home=True)(t, got)
        and got.destination == t.home_address
        and got.chain.routing_type2 is None
    )


def _bu(**kwargs: object):  # type: ignore[no-untyped-def]
    """A stimulus: one Binding Update with these arguments (sequence defaults to the
    binding's plus one, or 1 without a binding)."""

    def stimulus(t: Tester) -> list[bytes]:
        args = dict(kwargs)
        args.setdefault("sequence", (t.sequence + 1) & 0xFFFF if t.sequence else 1)
        return [t.binding_update(**args)]  # type: ignore[arg-type]

    return stimulus


def _then_echo(stimulus):  # type: ignore[no-untyped-def]
    """The stimulus, then (after 0.5 s) an Echo Request with a Home Address option: its
    answer (Echo Reply via RH2, or Binding Error 1) shows whether a binding exists."""

    def both(t: Tester) -> list[bytes | Delay]:
        return [*stimulus(t), Delay(0.5), t.echo_request()]

    return both


CASES: tuple[Case, ...] = (
    # -- return routability (5.2, 9.4) -----------------------------------------------------------
    Case(
        id="CN-RR-HOT-01",
        title="HoTI is answered with a HoT to the home address carrying the same cookie",
        rfc_section="9.4.3",
        requirement="The correspondent node answers a valid Home Test Init with a Home Test "
        "sent to the Source Address of the HoTI, copying the Home Init Cookie, with a home "
        "keygen token and the index of the nonce used.",
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [t.hoti(COOKIE)],
        stimulus_text="HoTI from the home address, cookie c00c1e5e01020304",
        expect=(Expect("HoT to the home address with the same cookie", _hot),),
    ),
    Case(
        id="CN-RR-COT-01",
        title="CoTI is answered with a CoT to the care-of address carrying the same cookie",
        rfc_section="9.4.4",
        requirement="The correspondent node answers a valid Care-of Test Init with a Care-of "
        "Test sent to the Source Address of the CoTI, copying the Care-of Init Cookie.",
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [t.coti(COOKIE)],
        stimulus_text="CoTI from the care-of address, cookie c00c1e5e01020304",
        expect=(Expect("CoT to the care-of address with the same cookie", _cot),),
    ),
    Case(
        id="CN-RR-HOTI-HAO-01",
        title="HoTI carrying a Home Address option is silently ignored",
        rfc_section="9.4.1",
        requirement='"The packet MUST NOT include a Home Address destination option." A '
        "HoTI failing this test MUST be silently ignored.",
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [t.hoti(COOKIE, hao=True, source=t.care_of_address)],
        stimulus_text="HoTI from the care-of address with a Home Address option",
        expect=(NO_ANSWER,),
    ),
    Case(
        id="CN-RR-HOTI-RH2-01",
        title="HoTI carrying a type 2 routing header is silently ignored",
        rfc_section="9.4.1, 6.1.3",
        requirement="A HoTI is sent without Mobile IPv6 extension headers; one carrying a type "
        "2 routing header is silently discarded (paraphrase).",
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [t.hoti(COOKIE, rh2=True)],
        stimulus_text="HoTI from the home address with a type 2 routing header",
        expect=(NO_ANSWER,),
    ),
    Case(
        id="CN-RR-COTI-HAO-01",
        title="CoTI carrying a Home Address option is silently ignored",
        rfc_section="9.4.2",
        requirement='"The packet MUST NOT include a Home Address destination option." A '
        "CoTI failing this test MUST be silently ignored.",
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [t.coti(COOKIE, hao=True)],
        stimulus_text="CoTI from the care-of address with a Home Address option",
        expect=(NO_ANSWER,),
    ),
    Case(
        id="CN-RR-COTI-RH2-01",
        title="CoTI carrying a type 2 routing header is silently ignored",
        rfc_section="9.4.2, 6.1.4",
        requirement="A CoTI is sent without Mobile IPv6 extension headers; one carrying a type "
        "2 routing header is silently discarded (paraphrase).",
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [t.coti(COOKIE, rh2=True)],
        stimulus_text="CoTI from the care-of address with a type 2 routing header",
        expect=(NO_ANSWER,),
    ),
    # -- accepted Binding Updates (9.5.1, 9.5.2, 9.5.4) ------------------------------------------
    Case(
        id="CN-BU-ACCEPT-01",
        title="A valid BU with A set is acknowledged: status 0, via RH2, authenticated with Kbm",
        rfc_section="9.5.1, 9.5.4, 6.2.7",
        requirement="If the Acknowledge (A) bit is set, a Binding Acknowledgement MUST be sent, "
        "to the care-of address with a type 2 routing header naming the home address, "
        "carrying Binding Authorization Data computed with Kbm (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_bu(sequence=7, lifetime_units_4s=25),
        stimulus_text="BU seq 7, A, lifetime 100 s, Nonce Indices, Binding Authorization Data "
        "(authenticator from the tester's own Kbm), from the care-of address with a HAO",
        expect=(
            Expect(
                "BA status 0, seq 7, to the care-of address via RH2 naming the home address, "
                "MH checksum over the home address, authenticator valid under Kbm",
                m.ba(0, sequence=7, to_care_of=True, authorized=True),
            ),
        ),
    ),
    Case(
        id="CN-BU-ACCEPT-02",
        title="A valid BU without A creates the binding and is not acknowledged",
        rfc_section="9.5.4, 9.5.2",
        requirement='"If the node accepts the Binding Update, the Binding Acknowledgement '
        'SHOULD NOT be sent" when A is not set; the binding is created.',
        level="SHOULD",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_then_echo(_bu(sequence=7, ack=False)),
        stimulus_text="BU seq 7 with A clear, then an Echo Request with a HAO",
        expect=(
            NO_BA,
            Expect("Echo Reply to the care-of address via RH2", m.echo_reply_via_rh2),
        ),
    ),
    Case(
        id="CN-DATA-RH2-01",
        title="With a binding, packets to the home address go to the care-of address via RH2",
        rfc_section="9.3.2, 9.3.1",
        requirement="A correspondent with a binding cache entry for the destination sends the "
        "packet to the care-of address with a type 2 routing header holding the home address; "
        "a packet with a Home Address option matching the binding is accepted (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(BINDING,),
        stimulus=lambda t: [t.echo_request()],
        stimulus_text="Echo Request from the care-of address with a HAO naming the home address",
        expect=(Expect("Echo Reply to the care-of address via RH2", m.echo_reply_via_rh2),),
    ),
    Case(
        id="CN-BU-SEQ-01",
        title="Without a binding any sequence number is accepted",
        rfc_section="9.5.1",
        requirement='"If the receiving node has no Binding Cache entry for the indicated home '
        'address, it MUST accept any Sequence Number value in a received Binding Update".',
        level="MUST",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_bu(sequence=50000),
        stimulus_text="BU seq 50000, A, valid authorization, no binding before",
        expect=(Expect("BA status 0, seq 50000", m.ba(0, sequence=50000)),),
    ),
    # -- rejections --------------------------------------------------------------------------------
    Case(
        id="CN-BU-131-01",
        title="A BU with the H bit to a node that is not a home agent gets BA 131",
        rfc_section="9.5.1",
        requirement="A correspondent node that is not a home agent rejects a Binding Update "
        "with the Home Registration (H) bit set with status 131 (home registration not "
        "supported) (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_bu(sequence=7, home=True),
        stimulus_text="BU seq 7 with A and H set (and valid authorization)",
        expect=(Expect("BA status 131", m.ba(131)),),
    ),
    Case(
        id="CN-BU-130-01",
        title="A binding that does not fit the binding cache gets BA 130",
        rfc_section="9.5.2, 6.1.8",
        requirement="A correspondent that cannot accommodate another binding rejects the "
        "Binding Update with status 130 (insufficient resources) (paraphrase).",
        level="MUST",
        role=ROLE,
        iut_config=(("binding_cache_size", 1),),
        preconditions=(BINDING, SecondMobileNode()),
        stimulus=_bu(sequence=7),
        stimulus_text="a second mobile node (home address 2001:db8:1::1, fresh tokens): BU "
        "seq 7 with A (the binding cache holds one entry)",
        expect=(Expect("BA status 130", m.ba(130)),),
    ),
    Case(
        id="CN-BU-136-01",
        title="An expired home nonce index gets BA 136",
        rfc_section="9.5.1",
        requirement='"If the receiving node no longer recognizes the Home Nonce Index value, '
        "Care-of Nonce Index value, or both values from the Binding Update, then the "
        "receiving node MUST send back a Binding Acknowledgement with status code 136, 137, "
        'or 138, respectively."',
        level="MUST",
        role=ROLE,
        preconditions=(StaleTokens(home=True, care_of=False),),
        stimulus=_bu(sequence=7),
        stimulus_text="BU seq 7, A, home nonce index 300 s old, fresh care-of nonce index",
        expect=(Expect("BA status 136, seq 7", m.ba(136, sequence=7)),),
        timeout=2.0,
    ),
    Case(
        id="CN-BU-137-01",
        title="An expired care-of nonce index gets BA 137",
        rfc_section="9.5.1",
        requirement="... the receiving node MUST send back a Binding Acknowledgement with "
        "status code ... 137 (expired care-of nonce index).",
        level="MUST",
        role=ROLE,
        preconditions=(StaleTokens(home=False, care_of=True),),
        stimulus=_bu(sequence=7),
        stimulus_text="BU seq 7, A, fresh home nonce index, care-of nonce index 300 s old",
        expect=(Expect("BA status 137, seq 7", m.ba(137, sequence=7)),),
    ),
    Case(
        id="CN-BU-138-01",
        title="Both nonce indices expired gets BA 138",
        rfc_section="9.5.1",
        requirement="... the receiving node MUST send back a Binding Acknowledgement with "
        "status code ... 138 (expired nonces) when it recognizes neither index.",
        level="MUST",
        role=ROLE,
        preconditions=(StaleTokens(home=True, care_of=True),),
        stimulus=_bu(sequence=7),
        stimulus_text="BU seq 7, A, both nonce indices 300 s old",
        expect=(Expect("BA status 138, seq 7", m.ba(138, sequence=7)),),
    ),
    Case(
        id="CN-BU-136-02",
        title="An expired nonce index is answered even when A is clear",
        rfc_section="9.5.4",
        requirement='"If the node rejects the Binding Update due to an expired nonce index, '
        "sequence number being out of window (Section 9.5.1), or insufficiency of resources "
        '(Section 9.5.2), a Binding Acknowledgement MUST be sent."',
        level="MUST",
        role=ROLE,
        preconditions=(StaleTokens(home=True, care_of=False),),
        stimulus=_bu(sequence=7, ack=False),
        stimulus_text="BU seq 7 with A clear, home nonce index 300 s old",
        expect=(Expect("BA status 136", m.ba(136)),),
    ),
    Case(
        id="CN-BU-138-02",
        title="Expired nonces are answered even when A is clear",
        rfc_section="9.5.4",
        requirement="A Binding Acknowledgement MUST be sent for a Binding Update rejected "
        "because of expired nonce indices, whatever the A bit (paraphrase of 9.5.4).",
        level="MUST",
        role=ROLE,
        preconditions=(StaleTokens(home=True, care_of=True),),
        stimulus=_bu(sequence=7, ack=False),
        stimulus_text="BU seq 7 with A clear, both nonce indices 300 s old",
        expect=(Expect("BA status 138", m.ba(138)),),
    ),
    Case(
        id="CN-BU-AUTH-01",
        title="A BU with a wrong authenticator is silently discarded",
        rfc_section="9.5.1",
        requirement="The Binding Authorization Data option MUST have a valid authenticator; "
        '"Packets carrying Binding Updates that fail to satisfy all of these tests for any '
        "reason other than insufficiency of the Sequence Number, registration type change, or "
        'expired nonce index values, MUST be silently discarded."',
        level="MUST",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_bu(sequence=7, bad_authenticator=True),
        stimulus_text="BU seq 7, A, authenticator with its first byte flipped",
        expect=(NO_ANSWER,),
    ),
    Case(
        id="CN-BU-AUTH-02",
        title="A BU with a wrong authenticator creates no binding",
        rfc_section="9.5.1, 9.3.1",
        requirement="A Binding Update failing the authenticator test MUST be silently "
        "discarded: no binding is created, so a later HAO packet finds none (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_then_echo(_bu(sequence=7, bad_authenticator=True)),
        stimulus_text="BU seq 7 with a bad authenticator, then an Echo Request with a HAO",
        expect=(NO_BINDING, Silence("no Echo Reply", m.echo_reply_via_rh2)),
    ),
    Case(
        id="CN-BU-NI-01",
        title="A correspondent BU without Nonce Indices is silently discarded",
        rfc_section="9.5.1",
        requirement="If the Home Registration (H) bit is not set, the Nonce Indices mobility "
        "option MUST be present; otherwise the Binding Update MUST be silently discarded "
        "(paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_bu(sequence=7, nonce_indices=False),
        stimulus_text="BU seq 7, A, Binding Authorization Data but no Nonce Indices",
        expect=(NO_ANSWER,),
    ),
    Case(
        id="CN-BU-BAD-01",
        title="A correspondent BU without Binding Authorization Data is silently discarded",
        rfc_section="9.5.1",
        requirement="If the Home Registration (H) bit is not set, the Binding Authorization "
        "Data option MUST be present (and last); otherwise the Binding Update MUST be "
        "silently discarded (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_bu(sequence=7, authorization=False),
        stimulus_text="BU seq 7, A, Nonce Indices but no Binding Authorization Data",
        expect=(NO_ANSWER,),
    ),
    # -- sequence numbers (9.5.1) ---------------------------------------------------------------
    Case(
        id="CN-BU-135-01",
        title="A BU repeating the last sequence number gets BA 135 with the last accepted one",
        rfc_section="9.5.1",
        requirement='"...the receiving node MUST send back a Binding Acknowledgement with '
        "status code 135, and the last accepted sequence number in the Sequence Number field "
        'of the Binding Acknowledgement."',
        level="MUST",
        role=ROLE,
        preconditions=(BINDING,),
        stimulus=_bu(sequence=100),
        stimulus_text="BU seq 100 (equal to the binding's), A, valid authorization",
        expect=(Expect("BA status 135 carrying seq 100", m.ba(135, sequence=100)),),
    ),
    Case(
        id="CN-BU-135-02",
        title="A BU with an older sequence number gets BA 135 with the last accepted one",
        rfc_section="9.5.1",
        requirement="A Sequence Number not greater than the last accepted one gets status 135 "
        "and the last accepted sequence number (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(BINDING,),
        stimulus=_bu(sequence=60),
        stimulus_text="BU seq 60 (binding holds 100), A, valid authorization",
        expect=(Expect("BA status 135 carrying seq 100", m.ba(135, sequence=100)),),
    ),
    Case(
        id="CN-BU-135-03",
        title="An out-of-window sequence number is answered even when A is clear",
        rfc_section="9.5.4",
        requirement="A Binding Acknowledgement MUST be sent for a Binding Update rejected "
        "because its sequence number is out of window, whatever the A bit (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(BINDING,),
        stimulus=_bu(sequence=99, ack=False),
        stimulus_text="BU seq 99 with A clear (binding holds 100)",
        expect=(Expect("BA status 135 carrying seq 100", m.ba(135, sequence=100)),),
    ),
    Case(
        id="CN-BU-SEQ-WRAP-01",
        title="Sequence numbers wrap around: 0 is newer than 65535",
        rfc_section="9.5.1",
        requirement='"This Sequence Number comparison MUST be performed modulo 2**16, i.e., '
        'the number is a free running counter represented modulo 65536."',
        level="MUST",
        role=ROLE,
        preconditions=(CorrespondentBinding(sequence=65535),),
        stimulus=_bu(sequence=0),
        stimulus_text="BU seq 0, A (binding holds 65535)",
        expect=(Expect("BA status 0, seq 0", m.ba(0, sequence=0, authorized=True)),),
    ),
    Case(
        id="CN-BU-SEQ-WRAP-02",
        title="Sequence numbers compare modulo 2^16: 40000 is older than 5",
        rfc_section="9.5.1",
        requirement='"A Sequence Number in a received Binding Update is considered less than '
        "or equal to the last received number if its value lies in the range of the last "
        'received number and the preceding 32768 values, inclusive."',
        level="MUST",
        role=ROLE,
        preconditions=(CorrespondentBinding(sequence=5),),
        stimulus=_bu(sequence=40000),
        stimulus_text="BU seq 40000, A (binding holds 5; 40000 is 31541 behind it mod 2^16)",
        expect=(Expect("BA status 135 carrying seq 5", m.ba(135, sequence=5)),),
    ),
    # -- lifetimes and deregistration (9.5.2, 9.5.3, 5.2.6) ---------------------------------------
    Case(
        id="CN-BU-LIFE-01",
        title="A correspondent binding lasts at most MAX_RR_BINDING_LIFETIME",
        rfc_section="5.2.6, 9.5.2, 12",
        requirement="The lifetime of a binding created through return routability is limited "
        "to MAX_RR_BINDING_LIFETIME (420 s) (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_bu(sequence=7, lifetime_units_4s=1000),
        stimulus_text="BU seq 7, A, lifetime 4000 s",
        expect=(Expect("BA status 0 granting at most 420 s", m.ba(0, max_lifetime_units=105)),),
    ),
    Case(
        id="CN-BU-LIFE-02",
        title="A binding is gone once its lifetime has passed",
        rfc_section="9.5.2, 9.3.1",
        requirement="A binding cache entry is used only within its granted lifetime; after it, "
        "a Home Address option has no binding and gets a Binding Error (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(CorrespondentBinding(sequence=100, lifetime_units_4s=2), Wait(12)),
        stimulus=lambda t: [t.echo_request()],
        stimulus_text="Echo Request with a HAO 12 s after an 8 s binding",
        expect=(NO_BINDING,),
    ),
    Case(
        id="CN-BU-DEREG-01",
        title="Lifetime 0 deletes the binding and is acknowledged",
        rfc_section="9.5.3",
        requirement='"If the Lifetime specified in the Binding Update is zero or the specified '
        "care-of address matches the home address for the binding, then this is a request to "
        'delete the cached binding for the home address." The deletion is acknowledged when '
        "A is set.",
        level="MUST",
        role=ROLE,
        preconditions=(BINDING,),
        stimulus=_then_echo(_bu(sequence=101, lifetime_units_4s=0)),
        stimulus_text="BU seq 101, A, lifetime 0; then an Echo Request with a HAO",
        expect=(Expect("BA status 0, seq 101", m.ba(0, sequence=101)), NO_BINDING),
    ),
    Case(
        id="CN-BU-DEREG-02",
        title="A BU from home (care-of = home address) deletes the binding; Kbm from the home "
        "token alone",
        rfc_section="9.5.3, 5.2.6, 6.2.7",
        requirement="A care-of address equal to the home address deletes the binding; the "
        "care-of nonce index is ignored and Kbm = SHA1(home keygen token) (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(BINDING,),
        stimulus=_then_echo(_bu(sequence=101, from_home=True, care_of_index=0xBEEF)),
        stimulus_text="BU seq 101, A, from the home address without HAO, care-of nonce index "
        "0xBEEF (ignored), authenticator from SHA1(home token); then an Echo Request with a HAO",
        expect=(
            Expect(
                "BA status 0 to the home address (no RH2), authenticator valid under "
                "SHA1(home token)",
                _ba_from_home,
            ),
            NO_BINDING,
        ),
    ),
    # -- Binding Errors (9.3.1, 9.2, 9.3.3) -----------------------------------------------------
    Case(
        id="CN-BE-1-01",
        title="A Home Address option without a binding gets Binding Error 1",
        rfc_section="9.3.1, 9.3.3",
        requirement="A packet with a Home Address option and no binding for it is dropped, and "
        "the node SHOULD send a Binding Error with status 1 to the packet's source "
        "(paraphrase).",
        level="SHOULD",
        role=ROLE,
        stimulus=lambda t: [t.echo_request()],
        stimulus_text="Echo Request from the care-of address with a HAO, no binding",
        expect=(NO_BINDING, Silence("no Echo Reply", m.echo_reply_via_rh2)),
    ),
    Case(
        id="CN-BE-2-01",
        title="An unknown MH Type gets Binding Error 2",
        rfc_section="9.2",
        requirement='"The MH Type field MUST have a known value (Section 6.1.1). Otherwise, '
        "the node MUST discard the message and issue a Binding Error message as described in "
        'Section 9.3.3, with Status field set to 2 (unrecognized MH Type value)."',
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [
            t.raw_mobility(bytes([59, 1, 200, 0, 0, 0]) + bytes(10), source=t.care_of_address)
        ],
        stimulus_text="Mobility Header of MH Type 200, Header Len 1, from the care-of address",
        expect=(Expect("Binding Error status 2", m.be(2, home_address=False)),),
    ),
    # -- Mobility Header checks (9.2) ----------------------------------------------------------
    Case(
        id="CN-MH-CKSUM-01",
        title="A HoTI with a wrong checksum is silently discarded",
        rfc_section="9.2",
        requirement='"The checksum must be verified as per Section 6.1. Otherwise, the node '
        'MUST silently discard the message."',
        level="MUST",
        role=ROLE,
        stimulus=lambda t: [t.hoti(COOKIE, corrupt_checksum=True)],
        stimulus_text="HoTI with its MH checksum XORed with 0x5a5a",
        expect=(NO_ANSWER,),
    ),
    Case(
        id="CN-MH-CKSUM-02",
        title="A BU with a wrong checksum is silently discarded",
        rfc_section="9.2",
        requirement="The checksum must be verified; otherwise the node MUST silently discard "
        "the message (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_bu(sequence=7, corrupt_checksum=True),
        stimulus_text="valid BU seq 7, A, with its MH checksum XORed with 0x5a5a",
        expect=(NO_ANSWER,),
    ),
    Case(
        id="CN-MH-HDRLEN-01",
        title="A BU whose Header Len is too small is discarded",
        rfc_section="9.2",
        requirement='"The Header Len field in the Mobility Header MUST NOT be less than the '
        'length specified for this particular type of message in Section 6.1." Such a '
        "message is discarded.",
        level="MUST",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_bu(sequence=7, header_len=0),
        stimulus_text="BU seq 7, A, Header Len 0 (a BU needs at least 1)",
        expect=(NO_BA,),
    ),
    Case(
        id="CN-MH-HDRLEN-02",
        title="A too small Header Len gets a Parameter Problem pointing at Header Len",
        rfc_section="9.2",
        requirement="... the node SHOULD send ICMP Parameter Problem, Code 0, directly to the "
        "Source Address of the packet; the Pointer SHOULD point at the Header Len field "
        "(paraphrase).",
        level="SHOULD",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_bu(sequence=7, header_len=0, from_home=True),
        stimulus_text="BU seq 7 from the home address (no extension headers), Header Len 0",
        expect=(Expect("ICMPv6 Parameter Problem code 0, pointer 41", m.icmp(4, 0, 41)),),
    ),
    Case(
        id="CN-MH-PROTO-01",
        title="A Mobility Header with a piggybacked payload (Payload Proto not 59) is discarded",
        rfc_section="9.2, 6.1.1",
        requirement="The Payload Proto field MUST be IPPROTO_NONE (59); otherwise the node "
        "MUST discard the message (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_bu(sequence=7, payload_proto=6),
        stimulus_text="valid BU seq 7, A, Payload Proto 6 (TCP)",
        expect=(NO_BA,),
    ),
    Case(
        id="CN-MH-PROTO-02",
        title="Payload Proto not 59 gets a Parameter Problem pointing at Payload Proto",
        rfc_section="9.2",
        requirement="... and SHOULD send ICMP Parameter Problem, Code 0, directly to the "
        "Source Address; the Pointer SHOULD point at the Payload Proto field (paraphrase).",
        level="SHOULD",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_bu(sequence=7, payload_proto=6, from_home=True),
        stimulus_text="BU seq 7 from the home address, Payload Proto 6",
        expect=(Expect("ICMPv6 Parameter Problem code 0, pointer 40", m.icmp(4, 0, 40)),),
    ),
    Case(
        id="CN-MH-PROTO-03",
        title="Payload Proto not 59 with the payload it announces after the Mobility Header "
        "gets a Parameter Problem pointing at Payload Proto",
        rfc_section="9.2, 6.1.1",
        requirement="... and SHOULD send ICMP Parameter Problem, Code 0, directly to the "
        "Source Address; the Pointer SHOULD point at the Payload Proto field (paraphrase). "
        "A piggybacked payload really follows the Mobility Header, so the packet is longer "
        "than Header Len says: that is this fault's symptom, not a Header Len fault.",
        level="SHOULD",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_bu(sequence=7, payload_proto=6, piggyback=bytes(20), from_home=True),
        stimulus_text="BU seq 7 from the home address, Payload Proto 6, followed by 20 bytes "
        "(a TCP header) in the IPv6 payload",
        expect=(Expect("ICMPv6 Parameter Problem code 0, pointer 40", m.icmp(4, 0, 40)),),
    ),
    Case(
        id="CN-MH-OPT-01",
        title="A BU with an option of unknown type is processed as without it",
        rfc_section="6.2.1",
        requirement="A receiver that does not recognize a mobility option's type MUST skip "
        "over the option and handle the remaining options of the message (paraphrase).",
        level="MUST",
        role=ROLE,
        preconditions=(ReturnRoutability(),),
        stimulus=_bu(sequence=7, lifetime_units_4s=25, unknown_option=True),
        stimulus_text="BU seq 7, A, lifetime 100 s: an option of type 200 (6 bytes of zeros) "
        "before the Nonce Indices and Binding Authorization Data (authenticator over all of "
        "it), from the care-of address with a HAO",
        expect=(
            Expect(
                "BA status 0, seq 7, to the care-of address via RH2, authenticator valid",
                m.ba(0, sequence=7, to_care_of=True, authorized=True),
            ),
        ),
    ),
    # -- Binding Refresh Request (9.5.5) --------------------------------------------------------
    Case(
        id="CN-BRR-01",
        title="A binding in active use is refreshed with a Binding Refresh Request before expiry",
        rfc_section="9.5.5, 6.1.2",
        requirement="If a binding about to expire is still in active use, the correspondent "
        "MAY send a Binding Refresh Request to the mobile node (paraphrase; checked here as "
        "this implementation's policy).",
        level="MAY",
        role=ROLE,
        preconditions=(CorrespondentBinding(sequence=100, lifetime_units_4s=15),),
        stimulus=lambda t: [
            t.echo_request(sequence=1),
            Delay(20),
            t.echo_request(sequence=2),
            Delay(20),
            t.echo_request(sequence=3),
        ],
        stimulus_text="Echo Requests with a HAO at 0, 20 and 40 s of a 60 s binding",
        stimulus_seconds=40.0,
        expect=(
            Expect(
                "Binding Refresh Request whose final destination is the home address",
                lambda t, got: m.mh_type(0, final_destination=t.home_address)(t, got),
            ),
        ),
        timeout=15.0,
    ),
)
