"""Predicates on received packets, each read straight off the wire (RFC 3775 6.1)."""

from __future__ import annotations

from ipaddress import IPv6Address

from conformance.case import Matcher
from conformance.tester import Received, Tester, ba_fields, be_fields, checksum_ok

ICMPV6 = 58


def ba(
    status: int | None = None,
    *,
    sequence: int | None = None,
    to_care_of: bool | None = None,
    authorized: bool | None = None,
    from_home: bool = False,
    max_lifetime_units: int | None = None,
    lifetime_units: int | None = None,
) -> Matcher:
    """A Binding Acknowledgement with these fields. ``to_care_of``: sent to the tester's
    care-of address with a type 2 routing header naming the home address (RFC 3775 9.5.4);
    ``authorized``: carries Binding Authorization Data that verifies with Kbm."""

    def match(t: Tester, got: Received) -> bool:
        fields = ba_fields(got)
        if fields is None or not checksum_ok(got.data):
            return False
        got_status, _, got_sequence, lifetime = fields
        if status is not None and got_status != status:
            return False
        if sequence is not None and got_sequence != sequence:
            return False
        if max_lifetime_units is not None and lifetime > max_lifetime_units:
            return False
        if lifetime_units is not None and lifetime != lifetime_units:
            return False
        if to_care_of is not None:
            chain = got.chain
            routed = (
                got.destination == t.care_of_address
                and chain.routing_type2 == t.home_address.packed
            )
            if routed != to_care_of:
                return False
        if authorized is not None and t.ba_authenticator_ok(got, from_home=from_home) != (
            authorized
        ):
            return False
        return True

    return match


def be(status: int, *, home_address: bool = True) -> Matcher:
    """A Binding Error (RFC 3775 6.1.9) with this status, to the packet's source; with
    ``home_address`` its Home Address field names the tester's home address."""

    def match(t: Tester, got: Received) -> bool:
        fields = be_fields(got)
        if fields is None or not checksum_ok(got.data):
            return False
        if fields[0] != status:
            return False
        return not home_address or fields[1] == t.home_address

    return match


def mh_type(kind: int, *, final_destination: IPv6Address | None = None) -> Matcher:
    def match(t: Tester, got: Received) -> bool:
        if got.mh_type != kind or not checksum_ok(got.data):
            return False
        return final_destination is None or got.final_destination == final_destination

    return match


def any_mobility(t: Tester, got: Received) -> bool:
    return got.mh_bytes is not None


def any_binding_ack(t: Tester, got: Received) -> bool:
    return got.mh_type == 6


def icmp(kind: int, code: int | None = None, pointer: int | None = None) -> Matcher:
    def match(t: Tester, got: Received) -> bool:
        chain = got.chain
        if chain.upper_protocol != ICMPV6:
            return False
        body = got.data[chain.offset :]
        if len(body) < 8 or body[0] != kind or (code is not None and body[1] != code):
            return False
        return pointer is None or int.from_bytes(body[4:8], "big") == pointer

    return match


def echo_reply_via_rh2(t: Tester, got: Received) -> bool:
    """An Echo Reply to the care-of address with a type 2 routing header naming the home
    address (RFC 3775 9.3.2), checksum over the home address as final destination."""
    chain = got.chain
    if chain.upper_protocol != ICMPV6 or got.data[chain.offset] != 129:
        return False
    return (
        got.destination == t.care_of_address
        and chain.routing_type2 == t.home_address.packed
        and checksum_ok(got.data)
    )


def forwarded(got: bytes, sent: bytes, *, hops: int = 2) -> bool:
    """``got`` is ``sent`` as routers forward it (RFC 8200 3): every byte the same but the Hop
    Limit (byte 7), lowered by at most ``hops`` (a router between the tester and the IUT, and
    the IUT when it forwards). The Hop Limit is in no upper-layer checksum, so nothing else may
    differ."""
    return (
        len(got) == len(sent) >= 40
        and got[:7] == sent[:7]
        and got[8:] == sent[8:]
        and sent[7] - hops <= got[7] <= sent[7]
    )
