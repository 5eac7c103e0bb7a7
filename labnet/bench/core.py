"""``labnet bench core``: the MIPv6 engines' hot operations on one core.

- ``rr_bu_per_s``: complete return routability + binding exchanges processed by one
  correspondent engine: HoTI -> HoT, CoTI -> CoT, BU (authenticator verified, binding cache
  updated) -> BA (authenticator computed), each exchange for a different home address. The
  mobile nodes' packets are built beforehand; only the correspondent's work is timed.
- ``cn_ro_pps``: the correspondent's route-optimized output, a type 2 routing header inserted
  into 1,400-byte packets for a home address with a binding.
- ``ha_tunnel_pps``: the home agent's interception of 1,400-byte packets for a registered home
  address, encapsulated to the care-of address (RFC 2473).
"""

from __future__ import annotations

import platform
import random
import statistics
import time
from dataclasses import replace
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from labnet.bench import rate
from mip6.core import rr
from mip6.core.actions import Transmit
from mip6.core.config import CorrespondentConfig, HomeAgentConfig
from mip6.roles.correspondent_node import CorrespondentNode
from mip6.roles.home_agent import HomeAgent
from mip6.wire import mobility as mh
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import DestinationOptions, HomeAddressOption
from mip6.wire.udp import UdpDatagram

CN = IPv6Address("2001:db8:2::1")
NOW = 100.0


def _exchanges(cn: CorrespondentNode, count: int) -> list[tuple[bytes, bytes, bytes]]:
    """HoTI, CoTI and a BU authorized with the tokens ``cn`` will hand out at ``NOW``."""
    nonce = cn.nonces.current(NOW)
    out = []
    for i in range(count):
        home = IPv6Address(f"2001:db8:1::{i + 1:x}")
        care_of = IPv6Address(f"2001:db8:3::{i + 1:x}")
        hoti = Ipv6Packet(
            source=home, destination=CN, payload=mh.HomeTestInit(home_init_cookie=bytes(8))
        )
        coti = Ipv6Packet(
            source=care_of, destination=CN, payload=mh.CareOfTestInit(care_of_init_cookie=bytes(8))
        )
        kbm = rr.binding_management_key(
            rr.home_keygen_token(nonce.kcn, home, nonce.nonce),
            rr.care_of_keygen_token(nonce.kcn, care_of, nonce.nonce),
        )
        bu = mh.BindingUpdate(
            sequence=1,
            acknowledge=True,
            lifetime_units_4s=100,
            options=(
                mh.NonceIndices(home_nonce_index=nonce.index, care_of_nonce_index=nonce.index),
                mh.BindingAuthorizationData(),
            ),
        ).aligned()
        auth = rr.authenticator(kbm, care_of, CN, mh.mobility_data_for_authenticator(bu))
        bu = replace(
            bu, options=(*bu.options[:-1], mh.BindingAuthorizationData(authenticator=auth))
        )
        hao = DestinationOptions.aligned([HomeAddressOption(home_address=home)])
        packet = Ipv6Packet(source=care_of, destination=CN, extension_headers=(hao,), payload=bu)
        out.append((hoti.emit(), coti.emit(), packet.emit()))
    return out


def rr_bu_rate(count: int = 5000, rounds: int = 3) -> float:
    results = []
    config = CorrespondentConfig(binding_cache_size=count)
    for _ in range(rounds):
        cn = CorrespondentNode(config=config, rng=random.Random(1))
        exchanges = _exchanges(cn, count)
        start = time.perf_counter()
        for hoti, coti, bu in exchanges:
            cn.handle_packet(NOW, hoti)
            cn.handle_packet(NOW, coti)
            cn.handle_packet(NOW, bu)
        elapsed = time.perf_counter() - start
        if len(cn.binding_cache) != count:
            raise AssertionError("benchmark exchanges were not all accepted")
        results.append(count / elapsed)
    return statistics.median(results)


def _data_packet(source: IPv6Address, destination: IPv6Address, size: int = 1400) -> bytes:
    datagram = UdpDatagram(source_port=5000, destination_port=5001, payload=bytes(size - 48))
    data = Ipv6Packet(source=source, destination=destination, payload=datagram).emit()
    assert len(data) == size
    return data


def cn_ro_rate(seconds: float) -> float:
    cn = CorrespondentNode(rng=random.Random(1))
    ((hoti, coti, bu),) = _exchanges(cn, 1)
    for packet in (hoti, coti, bu):
        cn.handle_packet(NOW, packet)
    home = IPv6Address("2001:db8:1::1")
    data = _data_packet(CN, home)
    assert len(cn.send(NOW, data)[0].data) == 1400 + 24  # really route-optimized

    def once() -> object:
        return cn.send(NOW, data)

    return rate(once, seconds)


def ha_tunnel_rate(seconds: float) -> float:
    home_prefix = IPv6Network("2001:db8:1::/64")
    ha_address = IPv6Address("2001:db8:1::1")
    home = IPv6Address("2001:db8:1::5")
    care_of = IPv6Address("2001:db8:3::5")
    config = HomeAgentConfig(
        address=ha_address, home_prefixes=(home_prefix,), allow_unprotected_registration=True
    )
    ha = HomeAgent(config, random.Random(1))
    bu = mh.BindingUpdate(
        sequence=1, acknowledge=True, home_registration=True, lifetime_units_4s=100
    ).aligned()
    hao = DestinationOptions.aligned([HomeAddressOption(home_address=home)])
    registration = Ipv6Packet(
        source=care_of, destination=ha_address, extension_headers=(hao,), payload=bu
    )
    ha.handle_packet(NOW, registration.emit())
    data = _data_packet(CN, home)
    (tunnelled,) = [a for a in ha.handle_packet(NOW, data) if isinstance(a, Transmit)]
    assert tunnelled.data[24:40] == care_of.packed and tunnelled.data[40:] == data

    def once() -> object:
        return ha.handle_packet(NOW, data)

    return rate(once, seconds)


def run(seconds: float = 4.0) -> dict[str, Any]:
    results: dict[str, Any] = {
        "rr_bu_per_s": round(rr_bu_rate()),
        "cn_ro_pps": round(cn_ro_rate(seconds / 2)),
        "ha_tunnel_pps": round(ha_tunnel_rate(seconds / 2)),
    }
    results["python"] = platform.python_version()
    return results
