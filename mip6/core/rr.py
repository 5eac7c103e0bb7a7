"""Return routability arithmetic (RFC 3775 5.2.5, 5.2.6): keygen tokens, Kbm, authenticator.

Pure functions of their inputs; the nonce table, Kcn rotation and the engines that call these
live beside them. ``|`` below is concatenation and ``First(n, x)`` the first n bits of x.
"""

from __future__ import annotations

import hashlib
from ipaddress import IPv6Address

KCN_LENGTH = 20  # RFC 3775 5.2.3: "a 20-octet ... secret key"
NONCE_LENGTH = 8  # RFC 3775 5.2.3: nonces are 64-bit in the examples; tokens are 64-bit
TOKEN_LENGTH = 8
AUTHENTICATOR_LENGTH = 12

_SHA1_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))  # translate tables: key XOR ipad, key XOR opad
_OPAD = bytes(b ^ 0x5C for b in range(256))
_sha1 = hashlib.sha1


def hmac_sha1(key: bytes, message: bytes) -> bytes:
    """HMAC_SHA1 (RFC 2104 2): H(K XOR opad, H(K XOR ipad, text)), K zero-padded to the
    64-byte block, hashed first when longer. Written out because ``hmac.digest`` sets up an
    OpenSSL MAC context for every call, twice the cost of the two hashes (a distributed
    server computes one per Binding Update, per BA and per keygen token); tests hold it to
    ``hmac.digest`` and to RFC 2202's vectors."""
    if len(key) > _SHA1_BLOCK:
        key = _sha1(key).digest()
    key = key.ljust(_SHA1_BLOCK, b"\x00")
    inner = _sha1(key.translate(_IPAD) + message).digest()
    return _sha1(key.translate(_OPAD) + inner).digest()


def home_keygen_token(kcn: bytes, home_address: IPv6Address, nonce: bytes) -> bytes:
    """RFC 3775 5.2.5: First(64, HMAC_SHA1(Kcn, (home address | nonce | 0)))."""
    return hmac_sha1(kcn, home_address.packed + nonce + b"\x00")[:TOKEN_LENGTH]


def care_of_keygen_token(kcn: bytes, care_of_address: IPv6Address, nonce: bytes) -> bytes:
    """RFC 3775 5.2.5: First(64, HMAC_SHA1(Kcn, (care-of address | nonce | 1)))."""
    return hmac_sha1(kcn, care_of_address.packed + nonce + b"\x01")[:TOKEN_LENGTH]


def binding_management_key(home_token: bytes, care_of_token: bytes | None) -> bytes:
    """RFC 3775 5.2.5: Kbm = SHA1(home keygen token | care-of keygen token); for a
    deregistration from the home link (care-of address = home address) the care-of token is
    not used: Kbm = SHA1(home keygen token)."""
    return hashlib.sha1(home_token + (care_of_token or b"")).digest()


def authenticator(
    kbm: bytes,
    care_of_address: IPv6Address,
    correspondent_address: IPv6Address,
    mobility_data: bytes,
) -> bytes:
    """RFC 3775 6.2.7: First(96, HMAC_SHA1(Kbm, (care-of address | correspondent | MH Data))),
    where MH Data is the Mobility Header with Checksum zero, without the Authenticator."""
    return packed_authenticator(
        kbm, care_of_address.packed, correspondent_address.packed, mobility_data
    )


def packed_authenticator(
    kbm: bytes, care_of_address: bytes, correspondent_address: bytes, mobility_data: bytes
) -> bytes:
    """:func:`authenticator` for addresses as packets carry them (16 bytes each)."""
    return hmac_sha1(kbm, care_of_address + correspondent_address + mobility_data)[
        :AUTHENTICATOR_LENGTH
    ]
