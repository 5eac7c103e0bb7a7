"""Turn raw IPv6 packets into what people read: one tcpdump-style line, or a JSON tree with
every header and every field by its RFC name (the engine behind ``mip6 decode``).

A packet that fails to parse still shows the headers decoded before the fault, then the fault
with its reason and byte offset, as Wireshark shows a malformed packet.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable
from ipaddress import IPv6Address
from typing import Any

from mip6.wire import esp, icmpv6, protocols, tcp, udp
from mip6.wire import mobility as mh
from mip6.wire.errors import WireError
from mip6.wire.ipv6 import Ipv6Packet, Layer, NoNextHeader, RawPayload
from mip6.wire.ipv6ext import (
    DestinationOptions,
    FragmentHeader,
    HomeAddressOption,
    HopByHopOptions,
    RoutingType0,
    RoutingType2,
    UnknownIpv6Option,
    UnknownRouting,
)
from mip6.wire.tlv import Pad1, PadN


@dataclasses.dataclass(frozen=True, slots=True)
class Dissection:
    """A parsed packet (``packet`` None when parsing failed) and where each header lies."""

    data: bytes
    packet: Ipv6Packet | None
    layers: tuple[Layer, ...]
    error: WireError | None


def dissect(data: bytes) -> Dissection:
    layers: list[Layer] = []
    try:
        packet = Ipv6Packet.parse(data, layers=layers)
    except WireError as error:
        return Dissection(data, None, tuple(layers), error)
    return Dissection(data, packet, tuple(layers), None)


# -- one line per packet ---------------------------------------------------------------------

_MH_NAMES = {
    mh.BindingRefreshRequest: "BRR",
    mh.HomeTestInit: "HoTI",
    mh.CareOfTestInit: "CoTI",
    mh.HomeTest: "HoT",
    mh.CareOfTest: "CoT",
    mh.BindingUpdate: "BU",
    mh.BindingAcknowledgement: "BA",
    mh.BindingError: "BE",
}


def _status_name(enum_type: type[enum.IntEnum], value: int) -> str:
    try:
        return enum_type(value).name.lower().replace("_", " ")
    except ValueError:
        return "unassigned"


def _describe_mobility_option(option: object) -> str | None:
    if isinstance(option, mh.NonceIndices):
        return f"NI {option.home_nonce_index}/{option.care_of_nonce_index}"
    if isinstance(option, mh.BindingAuthorizationData):
        return "BAD"
    if isinstance(option, mh.AlternateCareOfAddress):
        return f"ACoA {option.alternate_care_of_address}"
    if isinstance(option, mh.BindingRefreshAdvice):
        return f"BRA {option.refresh_interval_s}s"
    if isinstance(option, mh.UnknownMobilityOption):
        return f"opt {option.option_type}"
    return None  # padding is not worth a word


def describe_mobility(message: mh.MobilityMessage) -> str:
    if isinstance(message, mh.UnknownMobilityMessage):
        return f"MH type {message.mh_type} len {6 + len(message.message_data)}"
    words = ["MH", _MH_NAMES[type(message)]]
    if isinstance(message, mh.HomeTestInit):
        words.append(f"cookie {message.home_init_cookie.hex()}")
    elif isinstance(message, mh.CareOfTestInit):
        words.append(f"cookie {message.care_of_init_cookie.hex()}")
    elif isinstance(message, mh.HomeTest):
        words.append(
            f"index {message.home_nonce_index} cookie {message.home_init_cookie.hex()}"
            f" token {message.home_keygen_token.hex()}"
        )
    elif isinstance(message, mh.CareOfTest):
        words.append(
            f"index {message.care_of_nonce_index} cookie {message.care_of_init_cookie.hex()}"
            f" token {message.care_of_keygen_token.hex()}"
        )
    elif isinstance(message, mh.BindingUpdate):
        words.append(f"seq {message.sequence}")
        flags = zip(
            "AHLK",
            (
                message.acknowledge,
                message.home_registration,
                message.link_local_address_compatibility,
                message.key_management_mobility_capability,
            ),
            strict=True,
        )
        words.extend(letter for letter, on in flags if on)
        words.append(f"lifetime {message.lifetime_s}s")
    elif isinstance(message, mh.BindingAcknowledgement):
        status = _status_name(mh.BindingAckStatus, message.status)
        words.append(f"status {message.status} ({status}) seq {message.sequence}")
        if message.key_management_mobility_capability:
            words.append("K")
        words.append(f"lifetime {message.lifetime_s}s")
    elif isinstance(message, mh.BindingError):
        status = _status_name(mh.BindingErrorStatus, message.status)
        words.append(f"status {message.status} ({status}) home {message.home_address}")
    words.extend(d for d in map(_describe_mobility_option, message.options) if d)
    return " ".join(words)


_PAYLOAD_DESCRIBERS: dict[type, Callable[[Any], str]] = {
    udp.UdpDatagram: udp.describe,
    tcp.TcpSegment: tcp.describe,
    esp.EspPacket: esp.describe,
}


def describe_payload(payload: object) -> str:
    if isinstance(payload, Ipv6Packet):
        return describe_packet(payload)
    if isinstance(payload, mh.UnknownMobilityMessage) or type(payload) in _MH_NAMES:
        return describe_mobility(payload)  # type: ignore[arg-type]
    describer = _PAYLOAD_DESCRIBERS.get(type(payload))
    if describer is not None:
        return describer(payload)
    if isinstance(payload, NoNextHeader):
        return "no next header" + (f" ({len(payload.data)} bytes ignored)" if payload.data else "")
    if isinstance(payload, RawPayload):
        name = protocols.NAMES.get(payload.protocol, f"proto {payload.protocol}")
        return f"{name} len {len(payload.data)}"
    return icmpv6.describe(payload)  # type: ignore[arg-type]


def _describe_extension(header: object) -> str | None:
    if isinstance(header, RoutingType2):
        return f"RH2 {header.home_address}" + (
            "" if header.segments_left == 1 else f" segleft {header.segments_left}"
        )
    if isinstance(header, RoutingType0):
        hops = ",".join(str(a) for a in header.addresses)
        return f"RH0 (deprecated, RFC 5095) segleft {header.segments_left} [{hops}]"
    if isinstance(header, UnknownRouting):
        return f"RH type {header.routing_type} segleft {header.segments_left}"
    if isinstance(header, FragmentHeader):
        more = " M" if header.more_fragments else ""
        return f"frag id {header.identification:#x} off {header.fragment_offset * 8}{more}"
    if isinstance(header, DestinationOptions | HopByHopOptions):
        words = []
        for option in header.options:
            if isinstance(option, HomeAddressOption):
                words.append(f"HAO {option.home_address}")
            elif isinstance(option, UnknownIpv6Option):
                words.append(f"opt {option.option_type:#04x}")
        if isinstance(header, HopByHopOptions):
            return "HBH" + (" " + " ".join(words) if words else "")
        return " ".join(words) or None
    return None


def describe_packet(packet: Ipv6Packet) -> str:
    """``src > dst: payload summary, extension headers of note`` (tcpdump's order)."""
    notes = [n for n in map(_describe_extension, packet.extension_headers) if n]
    payload = describe_payload(packet.payload)
    if isinstance(packet.payload, Ipv6Packet):
        payload = "IP6-in-IP6 " + payload
    tail = (" " + " ".join(notes)) if notes else ""
    if isinstance(packet.payload, Ipv6Packet) and notes:
        tail, payload = "", " ".join(notes) + " " + payload
    return f"{packet.source} > {packet.destination}: {payload}{tail}"


def summary_line(dissection: Dissection) -> str:
    if dissection.packet is not None:
        return describe_packet(dissection.packet)
    error = dissection.error
    assert error is not None
    prefix = ""
    if len(dissection.data) >= 40 and dissection.data[0] >> 4 == 6:
        source = IPv6Address(dissection.data[8:24])
        destination = IPv6Address(dissection.data[24:40])
        prefix = f"{source} > {destination}: "
    return f"{prefix}[malformed: {error}]"


# -- JSON ------------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def to_json_value(value: object) -> Any:
    """Field values as JSON: addresses as text, bytes as hex, enums as their numbers."""
    if isinstance(value, bool | int | str) or value is None:
        return int(value) if isinstance(value, enum.IntEnum | enum.IntFlag) else value
    if isinstance(value, IPv6Address):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, tuple | list):
        return [to_json_value(v) for v in value]
    if dataclasses.is_dataclass(value):
        return repr_to_json(value)
    raise TypeError(f"no JSON form for {type(value).__name__}")


def repr_to_json(value: object) -> dict[str, Any]:
    """A ``Repr`` as a dict: ``type`` (its class in snake case), class-level code points such as
    ``mh_type`` or ``option_type``, then every field."""
    out: dict[str, Any] = {"type": _snake(type(value).__name__)}
    for code in ("mh_type", "option_type", "routing_type", "icmp_type", "kind"):
        if hasattr(value, code) and code not in {f.name for f in dataclasses.fields(value)}:  # type: ignore[arg-type]
            out[code] = int(getattr(value, code))
    for field in dataclasses.fields(value):  # type: ignore[arg-type]
        out[field.name] = to_json_value(getattr(value, field.name))
    if isinstance(value, Pad1 | PadN):
        out["option_length"] = 0 if isinstance(value, Pad1) else len(value.data)
    return out


# Offsets of the derived wire fields of each upper layer (checksum and length fields), so the
# JSON shows what was on the wire, not only what the Repr keeps.
_CHECKSUM_OFFSET = {protocols.MOBILITY: 4, protocols.ICMPV6: 2, protocols.UDP: 6, protocols.TCP: 16}


def _ipv6_header_json(data: bytes, start: int) -> dict[str, Any]:
    word = int.from_bytes(data[start : start + 4], "big")
    return {
        "type": "ipv6",
        "version": word >> 28,
        "traffic_class": (word >> 20) & 0xFF,
        "flow_label": word & 0xFFFFF,
        "payload_length": int.from_bytes(data[start + 4 : start + 6], "big"),
        "next_header": data[start + 6],
        "hop_limit": data[start + 7],
        "source_address": str(IPv6Address(data[start + 8 : start + 24])),
        "destination_address": str(IPv6Address(data[start + 24 : start + 40])),
    }


def _layer_json(data: bytes, layer: Layer) -> dict[str, Any]:
    if layer.repr is None:
        return _ipv6_header_json(data, layer.start)
    out: dict[str, Any] = {"header": protocols.NAMES.get(getattr(layer.repr, "protocol", -1))}
    out.update(repr_to_json(layer.repr))
    out["offset"] = layer.start
    out["length"] = layer.end - layer.start
    if layer.next_header is not None:  # an extension header
        out["next_header"] = layer.next_header
        if not isinstance(layer.repr, FragmentHeader):
            out["hdr_ext_len"] = data[layer.start + 1]
        return out
    protocol = layer.repr.protocol  # type: ignore[attr-defined]
    if protocol == protocols.MOBILITY:
        out["payload_proto"] = data[layer.start]
        out["header_len"] = data[layer.start + 1]
    if protocol in _CHECKSUM_OFFSET:
        at = layer.start + _CHECKSUM_OFFSET[protocol]
        out["checksum"] = int.from_bytes(data[at : at + 2], "big")
        out["checksum_status"] = "good"  # parse verified it, or it would have raised
    if protocol == protocols.UDP:
        out["length"] = int.from_bytes(data[layer.start + 4 : layer.start + 6], "big")
    if protocol == protocols.TCP:
        out["data_offset"] = data[layer.start + 12] >> 4
    return out


def dissection_json(dissection: Dissection) -> dict[str, Any]:
    """The whole header chain, outermost first (an IPv6-in-IPv6 packet lists both headers)."""
    layers = [_layer_json(dissection.data, layer) for layer in dissection.layers]
    out: dict[str, Any] = {"length": len(dissection.data), "layers": layers}
    if dissection.error is not None:
        out["malformed"] = {
            "reason": dissection.error.reason,
            "offset": dissection.error.offset,
            "field": dissection.error.field,
            "error": _snake(type(dissection.error).__name__),
        }
    out["summary"] = summary_line(dissection)
    return out
