"""Shared material for the ESP tests: addresses, keys, the four RFC 3776 messages, SA pairs."""

from __future__ import annotations

import random
from ipaddress import IPv6Address

from mip6.core.datapath import encapsulate
from mip6.core.ipsec import (
    Algorithm,
    Direction,
    Mode,
    SaParameters,
    SecurityAssociation,
    Selector,
)
from mip6.wire import mobility as mh
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import DestinationOptions, HomeAddressOption, RoutingType2

HOME = IPv6Address("2001:db8:1::5")
HOME_AGENT = IPv6Address("2001:db8:1::1")
CARE_OF = IPv6Address("2001:db8:3::5")
CORRESPONDENT = IPv6Address("2001:db8:2::1")

GCM_KEY = bytes.fromhex("4c80cdefbb5d10da906ac73c3613a634" + "2e443b68")  # AES-128 + salt
GCM_KEY_256 = bytes(range(32)) + b"salt"
CBC_KEY = bytes.fromhex("06a9214036b8a15b512e03d534120006")
HMAC_KEY = bytes(range(0x20, 0x34))

ALGORITHMS = (Algorithm.AES_GCM_16, Algorithm.AES_CBC_HMAC_SHA1_96)


def keys(algorithm: Algorithm) -> dict[str, bytes]:
    if algorithm is Algorithm.AES_GCM_16:
        return {"encryption_key": GCM_KEY, "authentication_key": b""}
    return {"encryption_key": CBC_KEY, "authentication_key": HMAC_KEY}


def parameters(
    algorithm: Algorithm,
    direction: Direction,
    *,
    spi: int = 0x1001,
    mode: Mode = Mode.TRANSPORT,
    selector: Selector | None = None,
) -> SaParameters:
    return SaParameters(
        spi=spi,
        algorithm=algorithm,
        mode=mode,
        direction=direction,
        selector=selector or Selector(),
        **keys(algorithm),
    )


def sa_pair(
    algorithm: Algorithm,
    *,
    spi: int = 0x1001,
    mode: Mode = Mode.TRANSPORT,
    seed: int = 1,
    selector: Selector | None = None,
) -> tuple[SecurityAssociation, SecurityAssociation]:
    """(sender, receiver) sharing SPI and keys."""
    rng = random.Random(seed)
    sender = SecurityAssociation(
        parameters(algorithm, Direction.OUTBOUND, spi=spi, mode=mode, selector=selector),
        random_bytes=rng.randbytes,
    )
    receiver = SecurityAssociation(
        parameters(algorithm, Direction.INBOUND, spi=spi, mode=mode, selector=selector),
        random_bytes=rng.randbytes,
    )
    return sender, receiver


def binding_update(sequence: int = 7) -> bytes:
    """RFC 3776 3.1: from the care-of address, Home Address option, BU with A and H."""
    return Ipv6Packet(
        source=CARE_OF,
        destination=HOME_AGENT,
        extension_headers=(DestinationOptions.aligned([HomeAddressOption(home_address=HOME)]),),
        payload=mh.BindingUpdate(
            sequence=sequence, acknowledge=True, home_registration=True, lifetime_units_4s=105
        ).aligned(),
    ).emit()


def binding_acknowledgement(sequence: int = 7) -> bytes:
    """RFC 3776 3.1: to the care-of address with a type 2 routing header."""
    return Ipv6Packet(
        source=HOME_AGENT,
        destination=CARE_OF,
        extension_headers=(RoutingType2(home_address=HOME),),
        payload=mh.BindingAcknowledgement(
            status=0, sequence=sequence, lifetime_units_4s=105
        ).aligned(),
    ).emit()


def home_test_init(cookie: bytes = b"\x11" * 8) -> bytes:
    """The inner packet of RFC 3776 3.2's HoTI (from the home address to the correspondent)."""
    return Ipv6Packet(
        source=HOME, destination=CORRESPONDENT, payload=mh.HomeTestInit(home_init_cookie=cookie)
    ).emit()


def home_test(cookie: bytes = b"\x11" * 8) -> bytes:
    return Ipv6Packet(
        source=CORRESPONDENT,
        destination=HOME,
        payload=mh.HomeTest(
            home_nonce_index=9, home_init_cookie=cookie, home_keygen_token=b"\x22" * 8
        ),
    ).emit()


def reverse_tunnelled(inner: bytes) -> bytes:
    """What the mobile node engine transmits for a HoTI: RFC 2473 from care-of to home agent."""
    return encapsulate(inner, CARE_OF, HOME_AGENT)


def forward_tunnelled(inner: bytes) -> bytes:
    return encapsulate(inner, HOME_AGENT, CARE_OF)
