"""Binding cache helpers: address classes, sequence comparison, and the Binding Update rules
the correspondent node and the home agent share (RFC 3775 9.5.1)."""

from __future__ import annotations

import itertools
from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mip6.core.binding_cache import (
    BINDING_RULES,
    BindingCache,
    BindingCacheEntry,
    BindingDecision,
    BindingRequest,
    BindingState,
    BindingUpdateKind,
    BindingVerdict,
    decide_binding_update,
    sequence_newer,
    unicast_routable,
)
from mip6.wire import mobility as mh

interesting = st.one_of(
    st.integers(0, 2**128 - 1),
    st.sampled_from([0xFE80, 0xFEBF, 0xFE7F, 0xFEC0, 0xFF00, 0xFFFF, 0]).flatmap(
        lambda top: st.integers(0, 2**112 - 1).map(lambda low, top=top: (top << 112) | low)
    ),
    st.integers(0, 3),
)


@given(interesting)
def test_unicast_routable_matches_ipaddress_properties(value: int) -> None:
    address = IPv6Address(value)
    expected = not (
        address.is_multicast
        or address.is_link_local
        or address.is_loopback
        or address.is_unspecified
    )
    assert unicast_routable(address) == expected


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_sequence_newer_is_rfc_modular_comparison(new: int, old: int) -> None:
    distance = (new - old) % 65536
    assert sequence_newer(new, old) == (0 < distance < 32768)
    if new != old and distance != 32768:
        assert sequence_newer(new, old) != sequence_newer(old, new)


def test_cache_refuses_beyond_capacity_but_updates_in_place() -> None:
    from mip6.core.binding_cache import BindingCacheEntry

    cache = BindingCache(1)
    home = IPv6Address("2001:db8::1")
    entry = BindingCacheEntry(home, home, 10.0, 1, False, 10.0, 0.0, home)
    cache.put(entry)
    cache.put(entry)
    assert not cache.has_room_for(IPv6Address("2001:db8::2")) and len(cache) == 1


# -- the Binding Update rules shared by the correspondent node and the home agent (9.5.1) ---------

HOME = IPv6Address("2001:db8:1::10")
CARE_OF = IPv6Address("2001:db8:3::10")
CORRESPONDENT = IPv6Address("2001:db8:2::1")


def _entry(state: BindingState, sequence: int) -> BindingCacheEntry | None:
    if state is BindingState.NO_BINDING:
        return None
    return BindingCacheEntry(
        home_address=HOME,
        care_of_address=CARE_OF,
        expires=100.0,
        sequence=sequence,
        home_registration=state is BindingState.HOME_REGISTRATION,
        lifetime=100.0,
        last_used=0.0,
        correspondent_address=CORRESPONDENT,
    )


def _request(
    kind: BindingUpdateKind, sequence: int, *, care_of_is_home: bool = False
) -> BindingRequest:
    home_registration = kind in (
        BindingUpdateKind.HOME_REGISTRATION,
        BindingUpdateKind.HOME_DEREGISTRATION,
    )
    deleting = kind in (
        BindingUpdateKind.HOME_DEREGISTRATION,
        BindingUpdateKind.CORRESPONDENT_DEREGISTRATION,
    )
    # Two ways to ask for deletion (9.5.1): Lifetime 0, or the care-of address = home address.
    lifetime = 0 if deleting and not care_of_is_home else 25
    care_of = HOME if deleting and care_of_is_home else CARE_OF
    update = mh.BindingUpdate(
        sequence=sequence, home_registration=home_registration, lifetime_units_4s=lifetime
    )
    return BindingRequest(update, HOME, care_of, care_of)


def _rfc_verdict(
    entry: BindingCacheEntry | None, request: BindingRequest
) -> tuple[BindingVerdict, int]:
    """RFC 3775 9.5.1 read again, in its own order: registration type change (139), sequence
    number (135, carrying the last accepted one), then delete or store."""
    update = request.update
    if entry is not None and entry.home_registration != update.home_registration:
        return BindingVerdict.REGISTRATION_TYPE_CHANGE_DISALLOWED, update.sequence
    # "...less than or equal to the last received number if its value lies in the range of the
    # last received number and the preceding 32768 values, inclusive."
    if entry is not None and (entry.sequence - update.sequence) % 65536 <= 32768:
        return BindingVerdict.SEQUENCE_NUMBER_OUT_OF_WINDOW, entry.sequence
    if update.lifetime_units_4s == 0 or request.care_of_address == request.home_address:
        return BindingVerdict.DELETE, update.sequence
    return BindingVerdict.STORE, update.sequence


def test_binding_rules_cover_every_state_and_kind() -> None:
    assert set(BINDING_RULES) == set(itertools.product(BindingState, BindingUpdateKind))


@pytest.mark.parametrize(
    ("state", "kind"), list(itertools.product(BindingState, BindingUpdateKind))
)
@pytest.mark.parametrize("care_of_is_home", [False, True])
def test_any_state_newer_sequence_lands_where_the_table_says(
    state: BindingState, kind: BindingUpdateKind, care_of_is_home: bool
) -> None:
    request = _request(kind, 101, care_of_is_home=care_of_is_home)
    decision = decide_binding_update(_entry(state, 100), request)
    assert request.kind is kind
    assert decision.verdict is BINDING_RULES[(state, kind)]
    assert (decision.verdict, decision.sequence) == _rfc_verdict(_entry(state, 100), request)


@pytest.mark.parametrize(
    ("verdict", "status"),
    [
        (BindingVerdict.STORE, None),
        (BindingVerdict.DELETE, None),
        (BindingVerdict.REGISTRATION_TYPE_CHANGE_DISALLOWED, 139),
        (BindingVerdict.SEQUENCE_NUMBER_OUT_OF_WINDOW, 135),
    ],
)
def test_binding_decision_refusals_carry_their_ba_status(
    verdict: BindingVerdict, status: int | None
) -> None:
    assert BindingDecision(verdict, 7).status == status


def test_correspondent_binding_repeated_sequence_gets_135_with_last_accepted() -> None:
    decision = decide_binding_update(
        _entry(BindingState.CORRESPONDENT_BINDING, 100),
        _request(BindingUpdateKind.CORRESPONDENT_DEREGISTRATION, 100),
    )
    assert (decision.verdict, decision.status, decision.sequence) == (
        BindingVerdict.SEQUENCE_NUMBER_OUT_OF_WINDOW,
        135,
        100,
    )


def test_home_registration_correspondent_bu_old_sequence_gets_139_first() -> None:
    decision = decide_binding_update(
        _entry(BindingState.HOME_REGISTRATION, 100),
        _request(BindingUpdateKind.CORRESPONDENT_REGISTRATION, 50),
    )
    assert (decision.status, decision.sequence) == (139, 50)


@given(
    st.sampled_from(BindingState),
    st.sampled_from(BindingUpdateKind),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.booleans(),
)
def test_binding_update_rules_match_rfc_9_5_1(
    state: BindingState,
    kind: BindingUpdateKind,
    last: int,
    sequence: int,
    care_of_is_home: bool,
) -> None:
    entry = _entry(state, last)
    request = _request(kind, sequence, care_of_is_home=care_of_is_home)
    decision = decide_binding_update(entry, request)
    assert (decision.verdict, decision.sequence) == _rfc_verdict(entry, request)
