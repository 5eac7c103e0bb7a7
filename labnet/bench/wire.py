"""``labnet bench wire``: the wire layer's two hot operations, ours and scapy's, in one run.

- ``mh_parse_emit_per_s``: a Binding Update with Home Address option, Nonce Indices and Binding
  Authorization Data (the packet a correspondent verifies most), parsed whole and re-emitted.
- ``data_header_walk_per_s``: the daemon's per-packet fast path over a 1,400-byte route-optimized
  TCP data packet (IPv6, Destination Options with a Home Address option, TCP): find the upper
  layer, its offset and the addresses that decide what to do with the packet.
"""

from __future__ import annotations

import platform
from ipaddress import IPv6Address
from typing import Any

from labnet.bench import rate
from mip6.wire import mobility as mh
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import DestinationOptions, HomeAddressOption
from mip6.wire.tcp import TcpFlags, TcpSegment
from mip6.wire.walk import walk

CARE_OF = IPv6Address("2001:db8:3::5")
HOME = IPv6Address("2001:db8:1::5")
CORRESPONDENT = IPv6Address("2001:db8:2::1")


def binding_update_packet() -> bytes:
    bu = mh.BindingUpdate(
        sequence=7,
        acknowledge=True,
        lifetime_units_4s=105,
        options=(
            mh.NonceIndices(home_nonce_index=3, care_of_nonce_index=4),
            mh.BindingAuthorizationData(authenticator=bytes(range(12))),
        ),
    ).aligned()
    hao = DestinationOptions.aligned([HomeAddressOption(home_address=HOME)])
    return Ipv6Packet(
        source=CARE_OF, destination=CORRESPONDENT, extension_headers=(hao,), payload=bu
    ).emit()


def tcp_data_packet(size: int = 1400) -> bytes:
    hao = DestinationOptions.aligned([HomeAddressOption(home_address=HOME)])
    header_bytes = 40 + 24 + 20
    segment = TcpSegment(
        source_port=40000,
        destination_port=80,
        sequence_number=1,
        acknowledgment_number=1,
        flags=TcpFlags.ACK | TcpFlags.PSH,
        window=65535,
        payload=bytes(size - header_bytes),
    )
    data = Ipv6Packet(
        source=CARE_OF, destination=CORRESPONDENT, extension_headers=(hao,), payload=segment
    ).emit()
    assert len(data) == size
    return data


def run(seconds: float = 2.0) -> dict[str, Any]:
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import HAO, IPv6

    bu = binding_update_packet()
    data = tcp_data_packet()

    def ours_mh() -> bytes:
        return Ipv6Packet.parse(bu).emit()

    def ours_walk() -> object:
        return walk(data)

    def scapy_mh() -> bytes:
        return bytes(IPv6(bu))

    def scapy_walk() -> object:
        packet = IPv6(data)
        tcp = packet.getlayer(TCP)
        hao = packet.getlayer(HAO)
        return tcp.sport, packet.src, packet.dst, hao.hoa if hao else None

    assert ours_mh() == bu and scapy_mh() == bu  # both really round-trip the same bytes
    share = seconds / 4
    results = {
        "mh_parse_emit_per_s": rate(ours_mh, share),
        "scapy_mh_parse_emit_per_s": rate(scapy_mh, share),
        "data_header_walk_per_s": rate(ours_walk, share),
        "scapy_data_header_walk_per_s": rate(scapy_walk, share),
    }
    results = {k: round(v) for k, v in results.items()}
    results["mh_speedup_vs_scapy"] = round(
        results["mh_parse_emit_per_s"] / results["scapy_mh_parse_emit_per_s"], 1
    )
    results["walk_speedup_vs_scapy"] = round(
        results["data_header_walk_per_s"] / results["scapy_data_header_walk_per_s"], 1
    )
    results["python"] = platform.python_version()
    return results
