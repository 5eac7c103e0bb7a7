"""Hypothesis strategies producing valid Reprs of the MIPv6 wire layer."""

from __future__ import annotations

from ipaddress import IPv6Address

from hypothesis import strategies as st

from mip6.wire import ipv6ext as ext
from mip6.wire import mobility as mh
from mip6.wire.tlv import Pad1, PadN

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
addresses = st.binary(min_size=16, max_size=16).map(IPv6Address)
eight = st.binary(min_size=8, max_size=8)

pad_options = st.one_of(st.just(Pad1()), st.binary(max_size=12).map(lambda d: PadN(data=d)))

mobility_options = st.one_of(
    u16.map(lambda v: mh.BindingRefreshAdvice(refresh_interval_units_4s=v)),
    addresses.map(lambda a: mh.AlternateCareOfAddress(alternate_care_of_address=a)),
    st.builds(mh.NonceIndices, home_nonce_index=u16, care_of_nonce_index=u16),
    st.integers(6, 0xFF)
    .map(lambda t: t)
    .flatmap(
        lambda t: st.binary(max_size=20).map(
            lambda d, t=t: mh.UnknownMobilityOption(option_type=t, data=d)
        )
    ),
)
authorization = st.binary(min_size=12, max_size=12).map(
    lambda a: mh.BindingAuthorizationData(authenticator=a)
)


@st.composite
def option_lists(draw: st.DrawFn, *, with_padding: bool = True) -> tuple:
    """Options in any order, with arbitrary extra padding, BAD last when present."""
    items = draw(
        st.lists(
            st.one_of(mobility_options, pad_options) if with_padding else mobility_options,
            max_size=5,
        )
    )
    if draw(st.booleans()):
        items.append(draw(authorization))
    return tuple(items)


def _message_fields(draw: st.DrawFn, cls: type) -> dict:
    if cls is mh.BindingRefreshRequest:
        return {}
    if cls is mh.HomeTestInit:
        return {"home_init_cookie": draw(eight)}
    if cls is mh.CareOfTestInit:
        return {"care_of_init_cookie": draw(eight)}
    if cls is mh.HomeTest:
        return {
            "home_nonce_index": draw(u16),
            "home_init_cookie": draw(eight),
            "home_keygen_token": draw(eight),
        }
    if cls is mh.CareOfTest:
        return {
            "care_of_nonce_index": draw(u16),
            "care_of_init_cookie": draw(eight),
            "care_of_keygen_token": draw(eight),
        }
    if cls is mh.BindingUpdate:
        return {
            "sequence": draw(u16),
            "acknowledge": draw(st.booleans()),
            "home_registration": draw(st.booleans()),
            "link_local_address_compatibility": draw(st.booleans()),
            "key_management_mobility_capability": draw(st.booleans()),
            "reserved_flags": draw(st.integers(0, 0xFFF)),
            "lifetime_units_4s": draw(u16),
        }
    if cls is mh.BindingAcknowledgement:
        return {
            "status": draw(u8),
            "sequence": draw(u16),
            "key_management_mobility_capability": draw(st.booleans()),
            "reserved_flags": draw(st.integers(0, 0x7F)),
            "lifetime_units_4s": draw(u16),
        }
    if cls is mh.BindingError:
        return {"status": draw(u8), "home_address": draw(addresses)}
    raise AssertionError(cls)


@st.composite
def mobility_messages(draw: st.DrawFn, cls: type | None = None) -> object:
    """A valid, aligned mobility message of class ``cls`` (any of the eight when None)."""
    if cls is None:
        cls = draw(st.sampled_from(sorted(mh.MESSAGE_CLASSES.values(), key=lambda c: c.mh_type)))
    message = cls(**_message_fields(draw, cls), options=draw(option_lists(with_padding=False)))
    return message.aligned()


unknown_mobility_messages = st.builds(
    lambda t, n, d: mh.UnknownMobilityMessage(
        mh_type=t, message_data=d[: 2 + 8 * n].ljust(2 + 8 * n, b"\0")
    ),
    st.integers(8, 0xFF),
    st.integers(0, 4),
    st.binary(max_size=34),
)

ipv6_options = st.one_of(
    addresses.map(lambda a: ext.HomeAddressOption(home_address=a)),
    st.builds(
        lambda t, d: ext.UnknownIpv6Option(option_type=t, data=d),
        st.integers(2, 0xFF).filter(lambda t: t != ext.HOME_ADDRESS_OPTION),
        st.binary(max_size=16),
    ),
)

extension_headers = st.one_of(
    st.lists(ipv6_options, max_size=3).map(ext.DestinationOptions.aligned),
    addresses.map(lambda a: ext.RoutingType2(home_address=a)),
    st.builds(
        lambda addrs, sl: ext.RoutingType0(
            addresses=tuple(addrs), segments_left=min(sl, len(addrs))
        ),
        st.lists(addresses, max_size=3),
        st.integers(0, 3),
    ),
    st.builds(
        lambda t, sl, n, d: ext.UnknownRouting(
            routing_type=t, segments_left=sl, data=d[: 4 + 8 * n].ljust(4 + 8 * n, b"\0")
        ),
        st.integers(3, 0xFF),
        u8,
        st.integers(0, 2),
        st.binary(max_size=20),
    ),
    st.builds(
        ext.FragmentHeader,
        fragment_offset=st.just(0),
        more_fragments=st.just(False),
        identification=st.integers(0, 2**32 - 1),
    ),
)
