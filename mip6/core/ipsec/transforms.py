"""The two ESP transforms, as pure functions of key, header, IV and plaintext.

* AES-GCM with a 16-octet ICV (RFC 4106): the key material is the AES key followed by a 4-octet
  salt; the nonce is salt || the packet's 8-octet explicit IV; the Additional Authenticated Data
  is SPI || Sequence Number; the ICV is the GCM tag.
* AES-CBC (RFC 3602) with HMAC-SHA1-96 (RFC 2404): a 16-octet IV, plaintext padded to the
  16-octet block, and an ICV of the first 96 bits of HMAC-SHA1 over the ESP header, the IV and
  the ciphertext (RFC 4303 2.8 and 3.3.2: the ICV covers everything from the SPI on).

A transform neither chooses IVs nor pads: :mod:`mip6.core.ipsec.esp` does both, so the
transforms stay small enough to check against independent computations (tests/ipsec).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mip6.core.ipsec.errors import BadIcv, Malformed

GCM_SALT_LENGTH = 4  # RFC 4106 8.1: "the remaining four octets are used as the salt value"
GCM_IV_LENGTH = 8  # RFC 4106 3.1: "The AES-GCM IV field MUST be eight octets."
GCM_ICV_LENGTH = 16  # RFC 4106 6: ICV of 8, 12 or 16 octets; we use 16 (the MUST)
CBC_IV_LENGTH = 16  # RFC 3602 3: "The IV field MUST be the same size as the block size"
CBC_BLOCK = 16  # AES block size
HMAC_SHA1_96_LENGTH = 12  # RFC 2404 2: "HMAC-SHA-1-96 ... truncated to 96 bits"


class AesGcm16:
    """RFC 4106 AES-GCM, 16-octet ICV. ``key_material`` is 20, 28 or 36 octets (RFC 4106 8.1:
    AES-128/192/256 key, then the 4-octet salt)."""

    __slots__ = ("_aead", "_salt")

    iv_length = GCM_IV_LENGTH
    icv_length = GCM_ICV_LENGTH
    # RFC 4303 2.4: GCM is a counter mode with no block to fill, so padding only aligns the
    # end of the ciphertext: "the Pad Length and Next Header fields must be right aligned
    # within a 4-byte word".
    pad_to = 4

    def __init__(self, key_material: bytes) -> None:
        self._aead = AESGCM(key_material[:-GCM_SALT_LENGTH])
        self._salt = key_material[-GCM_SALT_LENGTH:]

    def seal(self, header: bytes, iv: bytes, plaintext: bytes) -> bytes:
        """IV || ciphertext || ICV for the 8-octet ESP ``header`` (SPI || Sequence Number)."""
        # RFC 4106 4: nonce = salt || IV; RFC 4106 5: AAD = SPI || 32-bit Sequence Number.
        return iv + self._aead.encrypt(self._salt + iv, plaintext, header)

    def open(self, header: bytes, body: bytes) -> bytes:
        """The plaintext of ``body`` (IV || ciphertext || ICV; the caller checked that it holds
        at least the IV and the ICV). Raises ``BadIcv`` when the tag does not verify."""
        iv = body[:GCM_IV_LENGTH]
        try:
            return self._aead.decrypt(self._salt + iv, body[GCM_IV_LENGTH:], header)
        except InvalidTag:
            raise BadIcv("AES-GCM tag does not verify") from None


class AesCbcHmacSha196:
    """RFC 3602 AES-CBC (16, 24 or 32-octet key) with RFC 2404 HMAC-SHA1-96 (20-octet key).

    Setting up a cipher context costs several times more than encrypting a 1,400-byte packet,
    so one encryptor and one decryptor live as long as the SA, and each packet's IV is folded
    into the CBC chain (the ciphertext is bit for bit what a fresh context would give; tests
    decrypt every packet independently):

    * encrypting, the context's chaining value is the last ciphertext block it produced,
      ``last``; feeding ``P0 ^ IV ^ last`` as the first block yields ``E(P0 ^ IV)``, the first
      block of a CBC encryption under ``IV``, and the rest of the packet chains from there;
    * decrypting, feeding the IV as a block first makes it the chaining value for ``C0``; its
      own output block is discarded.
    """

    __slots__ = ("_decryptor", "_encryptor", "_last", "_mac")

    iv_length = CBC_IV_LENGTH
    icv_length = HMAC_SHA1_96_LENGTH
    pad_to = CBC_BLOCK  # RFC 3602 2.4: the plaintext is padded to a multiple of 16 octets

    def __init__(self, encryption_key: bytes, authentication_key: bytes) -> None:
        aes = algorithms.AES(encryption_key)
        self._last = bytes(CBC_BLOCK)
        self._encryptor = Cipher(aes, modes.CBC(self._last)).encryptor()
        self._decryptor = Cipher(aes, modes.CBC(bytes(CBC_BLOCK))).decryptor()
        # RFC 2404 2: HMAC (RFC 2104) with SHA-1, "truncated" to its first 96 bits. The keyed
        # inner and outer hash states are computed once and copied per packet.
        self._mac = hmac.new(authentication_key, digestmod=hashlib.sha1)

    def _icv(self, *parts: bytes | memoryview) -> bytes:
        mac = self._mac.copy()
        for part in parts:
            mac.update(part)
        return mac.digest()[:HMAC_SHA1_96_LENGTH]

    def seal(self, header: bytes, iv: bytes, plaintext: bytes) -> bytes:
        """IV || ciphertext || ICV. ``plaintext`` is a whole number of 16-octet blocks."""
        if not plaintext or len(plaintext) % CBC_BLOCK:
            # A partial block would stay buffered in the long-lived context and shift every
            # later packet: refuse instead (protect() always pads to whole blocks).
            raise ValueError("AES-CBC plaintext must be a whole number of 16-octet blocks")
        first = int.from_bytes(plaintext[:CBC_BLOCK], "big") ^ int.from_bytes(iv, "big")
        first ^= int.from_bytes(self._last, "big")
        ciphertext = self._encryptor.update(
            first.to_bytes(CBC_BLOCK, "big") + plaintext[CBC_BLOCK:]
        )
        self._last = ciphertext[-CBC_BLOCK:]
        body = iv + ciphertext
        # RFC 4303 3.3.2: encrypt first, then the ICV over header, IV and ciphertext.
        return body + self._icv(header, body)

    def open(self, header: bytes, body: bytes | memoryview) -> bytes:
        """Verify the ICV, then decrypt (RFC 4303 3.4.4.1: with separate confidentiality and
        integrity algorithms, integrity is verified before decryption). The
        caller checked that the ciphertext is a whole, non-zero number of blocks."""
        covered = body[:-HMAC_SHA1_96_LENGTH]
        if len(covered) < 2 * CBC_BLOCK or len(covered) % CBC_BLOCK:
            raise Malformed("AES-CBC IV and ciphertext must be whole 16-octet blocks")
        if not hmac.compare_digest(self._icv(header, covered), body[-HMAC_SHA1_96_LENGTH:]):
            raise BadIcv("HMAC-SHA1-96 ICV does not verify")
        return self._decryptor.update(covered)[CBC_BLOCK:]


Transform = AesGcm16 | AesCbcHmacSha196
