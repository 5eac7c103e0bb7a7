"""Return routability arithmetic held to independent computations: our HMAC_SHA1 to RFC 2202's
test vectors and to the standard library's ``hmac`` for any key and message; the tokens, Kbm
and authenticator to RFC 3775 5.2.5 and 6.2.7 written out with ``hmac``."""

from __future__ import annotations

import hashlib
import hmac
from ipaddress import IPv6Address

from hypothesis import given
from hypothesis import strategies as st

from mip6.core import rr

# RFC 2202 section 3 (HMAC-SHA-1): key, data, digest.
RFC2202 = [
    (b"\x0b" * 20, b"Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"),
    (b"Jefe", b"what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
    (b"\xaa" * 20, b"\xdd" * 50, "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
    (bytes(range(1, 26)), b"\xcd" * 50, "4c9007f4026250c6bc8414f9bf50c86c2d7235da"),
    (b"\x0c" * 20, b"Test With Truncation", "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"),
    (
        b"\xaa" * 80,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "aa4ae5e15272d00e95705637ce8a3b55ed402112",
    ),
    (
        b"\xaa" * 80,
        b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
        "e8e99d0f45237d786d6bbaa7965c7808bbff1a91",
    ),
]


def test_hmac_sha1_matches_rfc2202() -> None:
    for key, data, digest in RFC2202:
        assert rr.hmac_sha1(key, data).hex() == digest


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_sha1_matches_the_standard_library(key: bytes, message: bytes) -> None:
    assert rr.hmac_sha1(key, message) == hmac.digest(key, message, hashlib.sha1)


ADDRESSES = st.integers(min_value=0, max_value=(1 << 128) - 1).map(IPv6Address)


@given(st.binary(min_size=20, max_size=20), ADDRESSES, st.binary(min_size=8, max_size=8))
def test_keygen_tokens_are_rfc3775_5_2_5(kcn: bytes, address: IPv6Address, nonce: bytes) -> None:
    home = hmac.new(kcn, address.packed + nonce + b"\x00", hashlib.sha1).digest()[:8]
    care_of = hmac.new(kcn, address.packed + nonce + b"\x01", hashlib.sha1).digest()[:8]
    assert rr.home_keygen_token(kcn, address, nonce) == home
    assert rr.care_of_keygen_token(kcn, address, nonce) == care_of


@given(
    st.binary(min_size=8, max_size=8),
    st.binary(min_size=8, max_size=8),
    ADDRESSES,
    ADDRESSES,
    st.binary(max_size=64),
)
def test_authenticator_is_rfc3775_6_2_7(
    home_token: bytes,
    care_of_token: bytes,
    care_of: IPv6Address,
    correspondent: IPv6Address,
    data: bytes,
) -> None:
    kbm = hashlib.sha1(home_token + care_of_token).digest()
    assert rr.binding_management_key(home_token, care_of_token) == kbm
    assert rr.binding_management_key(home_token, None) == hashlib.sha1(home_token).digest()
    expected = hmac.new(kbm, care_of.packed + correspondent.packed + data, hashlib.sha1)
    assert rr.authenticator(kbm, care_of, correspondent, data) == expected.digest()[:12]
