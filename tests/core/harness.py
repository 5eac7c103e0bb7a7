"""Test helpers: an engine that only records, and a scripted mobile node's side of return
routability built from the wire codec and the independent math in :mod:`tests.core.rfc`."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace
from ipaddress import IPv6Address

from mip6.core.actions import Action
from mip6.runtime.memory import MemoryNetwork
from mip6.wire import mobility as mh
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import DestinationOptions, HomeAddressOption

from . import rfc


class Recorder:
    """An engine that keeps every packet it receives, parsed."""

    def __init__(self) -> None:
        self.received: list[tuple[float, Ipv6Packet]] = []

    def handle_packet(self, now: float, data: bytes) -> list[Action]:
        self.received.append((now, Ipv6Packet.parse(data)))
        return []

    def handle_timer(self, now: float, token: Hashable) -> list[Action]:
        return []

    def payloads(self, kind: type) -> list[object]:
        return [p.payload for _, p in self.received if isinstance(p.payload, kind)]

    def take(self) -> list[Ipv6Packet]:
        out = [p for _, p in self.received]
        self.received.clear()
        return out


@dataclass
class Tokens:
    home_nonce_index: int
    home_keygen_token: bytes
    care_of_nonce_index: int
    care_of_keygen_token: bytes


def hao(home: IPv6Address) -> DestinationOptions:
    return DestinationOptions.aligned([HomeAddressOption(home_address=home)])


def signed_bu(
    *,
    home: IPv6Address,
    care_of: IPv6Address,
    correspondent: IPv6Address,
    tokens: Tokens,
    sequence: int,
    lifetime_units_4s: int = 100,
    acknowledge: bool = True,
    from_home: bool = False,
    tamper: bool = False,
) -> bytes:
    """A correspondent Binding Update authorized with Kbm computed by the independent math."""
    bu = mh.BindingUpdate(
        sequence=sequence,
        acknowledge=acknowledge,
        lifetime_units_4s=lifetime_units_4s,
        options=(
            mh.NonceIndices(
                home_nonce_index=tokens.home_nonce_index,
                care_of_nonce_index=tokens.care_of_nonce_index,
            ),
            mh.BindingAuthorizationData(),
        ),
    ).aligned()
    key = rfc.kbm(tokens.home_keygen_token, None if from_home else tokens.care_of_keygen_token)
    unsigned = bu.emit(source=home.packed, destination=correspondent.packed)
    auth = rfc.authenticator(key, care_of.packed, correspondent.packed, unsigned)
    if tamper:
        auth = bytes([auth[0] ^ 1]) + auth[1:]
    bu = replace(bu, options=(*bu.options[:-1], mh.BindingAuthorizationData(authenticator=auth)))
    if from_home:
        packet = Ipv6Packet(source=home, destination=correspondent, payload=bu)
    else:
        packet = Ipv6Packet(
            source=care_of, destination=correspondent, extension_headers=(hao(home),), payload=bu
        )
    return packet.emit()


def return_routability(
    net: MemoryNetwork,
    *,
    cn: str,
    mn: Recorder,
    home: IPv6Address,
    care_of: IPv6Address,
    correspondent: IPv6Address,
) -> Tokens:
    """HoTI from the home address and CoTI from the care-of address, straight to the
    correspondent; returns the tokens of the HoT and CoT that come back."""
    hoti = Ipv6Packet(
        source=home, destination=correspondent, payload=mh.HomeTestInit(home_init_cookie=b"H" * 8)
    )
    coti = Ipv6Packet(
        source=care_of,
        destination=correspondent,
        payload=mh.CareOfTestInit(care_of_init_cookie=b"C" * 8),
    )
    net.inject(cn, hoti.emit())
    net.inject(cn, coti.emit())
    net.run_for(1.0)
    (hot,) = mn.payloads(mh.HomeTest)
    (cot,) = mn.payloads(mh.CareOfTest)
    mn.received.clear()
    assert hot.home_init_cookie == b"H" * 8 and cot.care_of_init_cookie == b"C" * 8
    return Tokens(
        hot.home_nonce_index,
        hot.home_keygen_token,
        cot.care_of_nonce_index,
        cot.care_of_keygen_token,
    )
