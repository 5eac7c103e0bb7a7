"""IPv6 node input processing shared by every role (RFC 8200 4, RFC 4443, RFC 3775 9.2, 9.3).

:class:`NodePipeline` takes the bytes of a received packet and either hands the role an
:class:`Inbound` (parsed, with the Mobile IPv6 addresses resolved) or answers as the RFCs say
and drops it: ICMPv6 Parameter Problem for an unrecognized option whose action bits ask for
one, for a Routing header of unknown type with segments left, and for a Mobility Header whose
Header Len is too small or whose Payload Proto is not 59; a Binding Error (status 1) for a Home
Address option without a binding, (status 2) for an unknown MH Type; silence for everything
else that fails (bad checksums, truncations). Every reply is rate limited.

The role says what a Home Address option may name and which type 2 routing header addresses
are its own home addresses; nothing else here knows which role it serves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from ipaddress import IPv6Address

from mip6.core.actions import Action, Event, Transmit
from mip6.core.ratelimit import TokenBucket
from mip6.wire import icmpv6 as icmp
from mip6.wire import mobility as mh
from mip6.wire import protocols
from mip6.wire.errors import BadChecksum, Malformed, WireError
from mip6.wire.ipv6 import Ipv6Packet, Layer
from mip6.wire.ipv6ext import (
    DestinationOptions,
    HomeAddressOption,
    HopByHopOptions,
    RoutingType0,
    RoutingType2,
    UnknownIpv6Option,
    UnknownRouting,
)
from mip6.wire.tlv import option_size
from mip6.wire.walk import type2_routed

log = logging.getLogger(__name__)

MINIMUM_MTU = 1280  # RFC 8200 5: an ICMPv6 error carries as much of the invoker as fits in it
ROUTING_TYPE_OFFSET = 2
SEGMENTS_LEFT_OFFSET = 3
_FAST_UPPER = frozenset((protocols.TCP, protocols.UDP))  # see NodePipeline.data_fast_path
# The errors an upper layer asks its node to send (NodePipeline.upper_layer_error)
UpperLayerError = icmp.DestinationUnreachable | icmp.ParameterProblem | icmp.TimeExceeded


@dataclass(frozen=True, slots=True)
class Inbound:
    """A received packet that passed the node's checks."""

    data: bytes
    packet: Ipv6Packet
    layers: tuple[Layer, ...]
    home_address: IPv6Address | None  # the Home Address option's address, if one was present
    routing_home_address: IPv6Address | None  # a type 2 routing header this node consumed

    @property
    def source(self) -> IPv6Address:
        """The source upper layers see (RFC 3775 9.3.1: the home address is swapped in)."""
        return self.home_address or self.packet.source

    @property
    def destination(self) -> IPv6Address:
        """The destination upper layers see (RFC 3775 6.4: the home address of the RH2)."""
        return self.routing_home_address or self.packet.destination

    def delivered(self) -> bytes:
        """The packet as the upper layer must see it: addressed from the home address to the
        final destination, without the Home Address option and type 2 routing header that
        carried them (checksums stay valid: they were computed over these same addresses)."""
        if self.home_address is None and self.routing_home_address is None:
            return self.data
        headers = []
        for header in self.packet.extension_headers:
            if isinstance(header, RoutingType2) and self.routing_home_address is not None:
                continue
            if isinstance(header, DestinationOptions) and header.home_address is not None:
                rest = [o for o in header.options if not isinstance(o, HomeAddressOption)]
                if all(type(o).__name__ in ("Pad1", "PadN") for o in rest):
                    continue
                header = DestinationOptions.aligned(rest)
            headers.append(header)
        packet = Ipv6Packet(
            source=self.source,
            destination=self.destination,
            payload=self.packet.payload,
            extension_headers=tuple(headers),
            hop_limit=self.packet.hop_limit,
            traffic_class=self.packet.traffic_class,
            flow_label=self.packet.flow_label,
        )
        return packet.emit()


class NodePipeline:
    """Input checks and error replies. ``binding_allows(now, home, care_of)`` says whether a
    Home Address option naming ``home`` may arrive from ``care_of`` (RFC 3775 9.3.1: a live
    binding cache entry exists); ``own_home_addresses`` lists the addresses a type 2 routing
    header may name here (empty unless the node is a mobile node); ``primary_address`` is the
    source of errors about packets sent to a multicast group."""

    def __init__(
        self,
        *,
        binding_allows: Callable[[float, IPv6Address, IPv6Address], bool],
        own_home_addresses: Callable[[], Collection[IPv6Address]] = tuple,
        icmp_limiter: TokenBucket,
        binding_error_limiter: TokenBucket,
        primary_address: IPv6Address | None = None,
    ) -> None:
        self._primary_address = primary_address
        self._binding_allows = binding_allows
        self._own_home_addresses = own_home_addresses
        self._icmp_limiter = icmp_limiter
        self._binding_error_limiter = binding_error_limiter
        self.counters: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def data_fast_path(self, data: bytes) -> bytes | None:
        """A data packet that needs no check but the fixed header's and, at most, a type 2
        routing header's: what :meth:`receive` then :meth:`Inbound.delivered` would give the
        upper layer, byte for byte, without building a Repr; None for anything else (it takes
        the full path).

        Taken: TCP or UDP right after the fixed header, or after one type 2 routing header
        with one segment left naming one of this node's home addresses (RFC 3775 6.4, 11.3.3:
        the home address becomes the destination and the header goes). No options header, so
        no option to process and no Home Address option to check (9.3.1); the upper layer
        checks its own checksum (computed over the home address, so still valid). A
        distributed-server member receives every route-optimized segment of its clients so.
        """
        if len(data) < 40 or data[0] >> 4 != 6:
            return None
        next_header = data[6]
        if next_header in _FAST_UPPER:
            return data if 40 + ((data[4] << 8) | data[5]) == len(data) else None
        routed = type2_routed(data)
        if routed is None or routed[1] not in _FAST_UPPER:
            return None
        home = routed[0]
        if not any(home == address.packed for address in self._own_home_addresses()):
            return None
        payload_length = len(data) - 64
        return b"".join(
            (
                data[:4],
                payload_length.to_bytes(2, "big"),
                data[40:41],  # the routing header's Next Header
                data[7:24],
                home,
                data[64:],
            )
        )

    def receive(self, now: float, data: bytes) -> tuple[Inbound | None, list[Action]]:
        layers: list[Layer] = []
        try:
            packet = Ipv6Packet.parse(data, layers=layers)
        except WireError as error:
            return None, self._malformed(now, data, error)
        if isinstance(packet.payload, mh.HomeTestInit | mh.CareOfTestInit) and (
            packet.home_address is not None
            or any(isinstance(h, RoutingType2) for h in packet.extension_headers)
        ):
            # RFC 3775 9.4.1, 9.4.2: a HoTI or CoTI with a Home Address option or a type 2
            # routing header is silently discarded (no Binding Error, no ICMP either).
            self._count("test_init_with_mobility_headers")
            return None, [Event("drop", {"reason": "HoTI/CoTI with HAO or RH2"})]
        actions: list[Action] = []
        home_address: IPv6Address | None = None
        routing_home: IPv6Address | None = None
        for layer in layers:
            header = layer.repr
            if isinstance(header, HopByHopOptions | DestinationOptions):
                verdict = self._options(now, data, packet, layer)
                if verdict is not None:
                    return None, verdict
                if isinstance(header, DestinationOptions) and header.home_address is not None:
                    home_address = header.home_address
            elif isinstance(header, RoutingType2):
                if header.segments_left == 0:
                    continue  # RFC 8200 4.4: nothing left to route; ignore the header
                if not self._own_home_addresses():
                    # Not a mobile node: a type 2 header is a type it does not process.
                    return None, self._unrecognized_routing(now, data, layer)
                # RFC 3775 6.4 / 11.3.3: only one segment, and only this node's home address.
                if header.segments_left != 1 or header.home_address not in set(
                    self._own_home_addresses()
                ):
                    self._count("rh2_not_ours")
                    return None, [Event("drop", {"reason": "type 2 routing header not ours"})]
                routing_home = header.home_address
            elif isinstance(header, RoutingType0 | UnknownRouting) and header.segments_left:
                # RFC 5095: type 0 is processed as an unrecognized Routing Type.
                return None, self._unrecognized_routing(now, data, layer)

        payload = packet.payload
        if home_address is not None:
            # RFC 3775 9.3.1: a Binding Update creates the binding the option will need; any
            # other packet needs a binding cache entry for this home address and source.
            if not isinstance(payload, mh.BindingUpdate) and not self._binding_allows(
                now, home_address, packet.source
            ):
                self._count("hao_without_binding")
                actions.extend(
                    self.binding_error(
                        now,
                        to=packet.source,
                        source=packet.destination,
                        status=mh.BindingErrorStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS_OPTION,
                        home_address=home_address,
                    )
                )
                return None, actions
        if isinstance(payload, mh.UnknownMobilityMessage):
            # RFC 3775 9.2: "...Binding Error message with the Status field set to 2".
            self._count("unknown_mh_type")
            return None, self.binding_error(
                now,
                to=packet.source,
                source=packet.destination,
                status=mh.BindingErrorStatus.UNRECOGNIZED_MH_TYPE,
                home_address=home_address or IPv6Address("::"),
            )
        return Inbound(data, packet, tuple(layers), home_address, routing_home), actions

    # -- replies ---------------------------------------------------------------------------

    def _malformed(self, now: float, data: bytes, error: WireError) -> list[Action]:
        self._count(f"malformed_{error.field or type(error).__name__}")
        drop = Event("drop", {"reason": error})
        if isinstance(error, BadChecksum):
            return [drop]  # RFC 3775 9.2 and every upper layer: silently discard
        if isinstance(error, Malformed) and error.field in ("header_len", "payload_proto"):
            # Only the Mobility Header names these fields. RFC 3775 9.2: Parameter Problem,
            # Code 0, pointing at the offending field.
            return [drop, *self.parameter_problem(now, data, 0, error.offset)]
        return [drop]

    def _options(
        self, now: float, data: bytes, packet: Ipv6Packet, layer: Layer
    ) -> list[Action] | None:
        """RFC 8200 4.2: the two high-order bits of an unrecognized option's type."""
        header = layer.repr
        assert isinstance(header, HopByHopOptions | DestinationOptions)
        offset = layer.start + 2
        for option in header.options:
            if isinstance(option, UnknownIpv6Option) and option.action:
                self._count("unrecognized_option")
                drop = Event("drop", {"reason": f"unrecognized option {option.option_type:#x}"})
                if option.action == 1 or (option.action == 3 and packet.destination.is_multicast):
                    return [drop]
                return [drop, *self.parameter_problem(now, data, 2, offset, multicast_ok=True)]
            offset += option_size(option)
        return None

    def _unrecognized_routing(self, now: float, data: bytes, layer: Layer) -> list[Action]:
        """RFC 8200 4.4: unrecognized Routing Type with Segments Left non-zero: discard and send
        Parameter Problem, Code 0, pointing to the Routing Type field."""
        self._count("unrecognized_routing_type")
        drop = Event("drop", {"reason": "unrecognized routing type"})
        return [drop, *self.parameter_problem(now, data, 0, layer.start + ROUTING_TYPE_OFFSET)]

    def parameter_problem(
        self, now: float, invoking: bytes, code: int, pointer: int, *, multicast_ok: bool = False
    ) -> list[Action]:
        return self.icmp_error(
            now,
            invoking,
            lambda body: icmp.ParameterProblem(code=code, pointer=pointer, invoking_packet=body),
            multicast_ok=multicast_ok,
        )

    def icmp_error(
        self,
        now: float,
        invoking: bytes,
        build: Callable[[bytes], icmp.Icmpv6Message],
        *,
        multicast_ok: bool = False,
        forwarding: bool = False,
    ) -> list[Action]:
        """An ICMPv6 error about ``invoking``, subject to RFC 4443 2.4: never about an ICMPv6
        error, never to a multicast or unspecified source, not about a multicast destination
        unless ``multicast_ok`` (Parameter Problem code 2), and rate limited. From the
        invoking packet's destination, or with ``forwarding`` (a packet this node forwards, as
        a router: its destination is not ours) from the node's primary address."""
        if len(invoking) < 40:
            return []
        source = IPv6Address(invoking[8:24])
        destination = IPv6Address(invoking[24:40])
        if source.is_multicast or source.is_unspecified:
            return []
        if destination.is_multicast and not multicast_ok:
            return []
        if _is_icmp_error(invoking):
            return []
        if not self._icmp_limiter.allow(now):
            self._count("icmp_rate_limited")
            return []
        room = MINIMUM_MTU - 40 - 8
        reply_source = (
            self._primary_address if forwarding or destination.is_multicast else destination
        )
        if reply_source is None:
            return []  # a multicast destination needs a unicast address of ours; none given
        message = build(invoking[:room])
        reply = Ipv6Packet(source=reply_source, destination=source, payload=message, hop_limit=64)
        self._count("icmp_error_sent")
        return [Transmit(reply.emit())]

    def upper_layer_error(
        self,
        now: float,
        invoking: bytes,
        message: UpperLayerError,
        send: Callable[[float, bytes], list[Action]],
    ) -> list[Action]:
        """An ICMPv6 error the node's upper layer asks for about a packet it refused (RFC 4443
        3.1 code 4, "the transport protocol [...] has no listener"; RFC 8200 4 and 4.5:
        Parameter Problem for an unrecognized Next Header or a bad fragment, Time Exceeded
        for a reassembly that timed out): ``message`` with its invoking packet left empty,
        filled here with as much of ``invoking`` as fits, through :meth:`icmp_error` (2.4 and
        the rate limit). The answer comes from the upper layer's address, so it leaves
        through ``send``, the role's send path (a mobile node's Home Address option or
        reverse tunnel)."""
        actions: list[Action] = []
        for action in self.icmp_error(
            now,
            invoking,
            lambda body: replace(message, invoking_packet=body),
            multicast_ok=isinstance(message, icmp.ParameterProblem) and message.code == 2,
        ):
            actions += send(now, action.data) if isinstance(action, Transmit) else [action]
        return actions

    def binding_error(
        self,
        now: float,
        *,
        to: IPv6Address,
        source: IPv6Address,
        status: int,
        home_address: IPv6Address,
    ) -> list[Action]:
        """RFC 3775 9.3.3 / 6.1.9: a Binding Error to ``to``, rate limited (9.3.1: "the node
        MUST limit the rate at which it sends Binding Error messages")."""
        if to.is_multicast or to.is_unspecified or not self._binding_error_limiter.allow(now):
            self._count("binding_error_rate_limited")
            return []
        message = mh.BindingError(status=status, home_address=home_address).aligned()
        packet = Ipv6Packet(source=source, destination=to, payload=message)
        self._count("binding_error_sent")
        return [
            Transmit(packet.emit()),
            Event("binding_error_sent", {"to": to, "status": status}),
        ]


def _is_icmp_error(data: bytes) -> bool:
    """True when ``data`` is an ICMPv6 error message (types 0-127), at any header depth."""
    try:
        packet = Ipv6Packet.parse(data)
    except WireError:
        return False
    payload = packet.payload
    return (
        getattr(payload, "protocol", None) == protocols.ICMPV6
        and getattr(payload, "icmp_type", 255) < 128
    )
