"""Binding cache helpers: address classes and sequence comparison (RFC 3775 9.5.1)."""

from __future__ import annotations

from ipaddress import IPv6Address

from hypothesis import given
from hypothesis import strategies as st

from mip6.core.binding_cache import BindingCache, sequence_newer, unicast_routable

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
