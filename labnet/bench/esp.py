"""``labnet bench esp``: ESP protect + verify of a 1,400-byte packet on one core.

The packet is what RFC 3776 5.2.4's optional protection of tunnelled traffic handles at the
highest rate: a 1,400-byte IPv6-in-IPv6 packet from the mobile node's care-of address to its
home agent (outer header + a 1,360-byte UDP packet from the home address) turned into ESP
tunnel mode by :func:`mip6.core.ipsec.protect`, then checked and opened by
:func:`mip6.core.ipsec.verify` (replay window, ICV, decryption, padding, inner packet). One
operation = one protect + one verify, each with a fresh Sequence Number.

- ``esp_gcm_pps``: AES-128-GCM, 16-octet ICV (RFC 4106).
- ``esp_cbc_sha1_pps``: AES-128-CBC with HMAC-SHA1-96 (RFC 3602, RFC 2404).
- ``*_crypto_only_pps``: the baseline in the same run, the same two algorithms over the same
  bytes through ``cryptography`` and ``hmac`` directly (contexts and keyed hash states reused,
  as the transforms reuse them), with no ESP framing; ``*_framing_share`` is the part of our
  time spent outside the primitives (header walk, padding, replay window, copies).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import platform
from ipaddress import IPv6Address
from typing import Any

import cryptography
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from labnet.bench import rate
from mip6.core.datapath import encapsulate
from mip6.core.ipsec import (
    Algorithm,
    Direction,
    Mode,
    SaParameters,
    SecurityAssociation,
    protect,
    verify,
)
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.udp import UdpDatagram

HOME = IPv6Address("2001:db8:1::5")
CARE_OF = IPv6Address("2001:db8:3::5")
HOME_AGENT = IPv6Address("2001:db8:1::1")
CORRESPONDENT = IPv6Address("2001:db8:2::1")
PACKET_SIZE = 1400


def tunnelled_packet(size: int = PACKET_SIZE) -> bytes:
    """A ``size``-byte reverse-tunnelled UDP packet (RFC 2473), as the mobile node sends it."""
    inner_size = size - 40
    inner = Ipv6Packet(
        source=HOME,
        destination=CORRESPONDENT,
        payload=UdpDatagram(
            source_port=40000, destination_port=9, payload=bytes(inner_size - 40 - 8)
        ),
    ).emit()
    data = encapsulate(inner, CARE_OF, HOME_AGENT)
    assert len(data) == size
    return data


def sa_pair(algorithm: Algorithm) -> tuple[SecurityAssociation, SecurityAssociation]:
    material = os.urandom(20) if algorithm is Algorithm.AES_GCM_16 else os.urandom(16)
    authentication = b"" if algorithm is Algorithm.AES_GCM_16 else os.urandom(20)
    pair = []
    for direction in (Direction.OUTBOUND, Direction.INBOUND):
        parameters = SaParameters(
            spi=0x1000,
            algorithm=algorithm,
            mode=Mode.TUNNEL,
            direction=direction,
            encryption_key=material,
            authentication_key=authentication,
        )
        pair.append(SecurityAssociation(parameters, random_bytes=os.urandom))
    return pair[0], pair[1]


def run(seconds: float = 4.0) -> dict[str, Any]:
    packet = tunnelled_packet()
    results: dict[str, Any] = {}
    share = seconds / 4
    for name, algorithm in (
        ("esp_gcm_pps", Algorithm.AES_GCM_16),
        ("esp_cbc_sha1_pps", Algorithm.AES_CBC_HMAC_SHA1_96),
    ):
        sender, receiver = sa_pair(algorithm)

        def round_trip(
            sender: SecurityAssociation = sender, receiver: SecurityAssociation = receiver
        ) -> bytes:
            return verify(receiver, protect(sender, packet)).packet

        assert round_trip() == packet  # really protects and opens this packet
        results[name] = round(rate(round_trip, share))

    payload = packet[40:] + b"\x01\x02\x02\x29"  # the same bytes, padded as ESP pads them
    aead, salt = AESGCM(os.urandom(16)), os.urandom(4)

    def gcm_only() -> bytes:
        nonce = salt + os.urandom(8)
        return aead.decrypt(nonce, aead.encrypt(nonce, payload, b"\0" * 8), b"\0" * 8)

    aes = algorithms.AES(os.urandom(16))
    encryptor = Cipher(aes, modes.CBC(bytes(16))).encryptor()
    decryptor = Cipher(aes, modes.CBC(bytes(16))).decryptor()
    keyed = hmac.new(os.urandom(20), digestmod=hashlib.sha1)
    block_payload = packet[40:] + bytes(range(1, 15)) + b"\x0e\x29"

    def cbc_sha1_only() -> bytes:
        # Contexts reused as the transform reuses them; both ends chain the same ciphertext.
        ciphertext = encryptor.update(block_payload)
        sent = keyed.copy()
        sent.update(ciphertext)
        received = keyed.copy()
        received.update(ciphertext)
        if not hmac.compare_digest(sent.digest()[:12], received.digest()[:12]):
            raise AssertionError
        return decryptor.update(ciphertext)

    assert gcm_only() == payload and cbc_sha1_only() == block_payload
    results["gcm_crypto_only_pps"] = round(rate(gcm_only, share))
    results["cbc_sha1_crypto_only_pps"] = round(rate(cbc_sha1_only, share))
    results["gcm_framing_share"] = round(
        1 - results["esp_gcm_pps"] / results["gcm_crypto_only_pps"], 2
    )
    results["cbc_sha1_framing_share"] = round(
        1 - results["esp_cbc_sha1_pps"] / results["cbc_sha1_crypto_only_pps"], 2
    )
    results["packet_bytes"] = PACKET_SIZE
    results["mode"] = "tunnel"
    results["python"] = platform.python_version()
    results["cryptography"] = cryptography.__version__
    return results
