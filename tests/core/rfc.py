"""Return routability math written again, straight from RFC 3775 5.2.5 and 6.2.7 with hmac and
hashlib, sharing nothing with mip6.core.rr: the oracle the engines' tokens are checked against.
Also the raw "Mobility Data" of 5.2.6 cut from wire bytes, not from our emitter's helper."""

from __future__ import annotations

import hashlib
import hmac


def first(bits: int, data: bytes) -> bytes:
    return data[: bits // 8]


def home_token(kcn: bytes, home: bytes, nonce: bytes) -> bytes:
    return first(64, hmac.new(kcn, home + nonce + bytes([0]), hashlib.sha1).digest())


def care_of_token(kcn: bytes, care_of: bytes, nonce: bytes) -> bytes:
    return first(64, hmac.new(kcn, care_of + nonce + bytes([1]), hashlib.sha1).digest())


def kbm(home: bytes, care_of: bytes | None) -> bytes:
    return hashlib.sha1(home + (care_of if care_of is not None else b"")).digest()


def mobility_data(mh_bytes: bytes) -> bytes:
    """The Mobility Header with the Checksum zeroed and the 12 Authenticator bytes cut off
    (Binding Authorization Data is the last option)."""
    return mh_bytes[:4] + b"\0\0" + mh_bytes[6:-12]


def authenticator(key: bytes, care_of: bytes, correspondent: bytes, mh_bytes: bytes) -> bytes:
    message = care_of + correspondent + mobility_data(mh_bytes)
    return first(96, hmac.new(key, message, hashlib.sha1).digest())
