"""Home agent (RFC 3775 10): home registrations, interception and tunnelling to the care-of
address (RFC 2473), the reverse tunnel, Dynamic Home Agent Address Discovery, Mobile Prefix
Solicitations, and the correspondent role for everything else.

Sans-I/O (ARCHITECTURE 2): ``handle_packet`` for every packet that reaches the home agent (its
own address, the Home-Agents anycast address, and addresses of the home prefixes the driver
routes to it), ``send`` for packets its own upper layer originates, ``handle_timer`` for the
timers it asked for. ``start`` gives the timers of a restored engine (:meth:`HomeAgent.restore`).

The data path works on bytes: a packet for a registered home address is found by one dict
lookup on its Destination Address and encapsulated without being parsed beyond
:func:`~mip6.wire.walk.walk`. Only packets addressed to the home agent itself go through the
:class:`~mip6.core.node.NodePipeline` and the full parser.

Home registrations must arrive under ESP (RFC 3776), with an SA of the ``security`` policy
database whose selector names the home address; ``allow_unprotected_registration`` (off by
default) lets unprotected ones through for labs without keys. With ``duplicate_address_detection``
a new home registration waits for DAD on the home link (10.3.1: a Neighbor Solicitation sent, a
Neighbor Advertisement the driver hands back means 134); without it (labs, the simulator) a
configured address list stands in for DAD. Proxy Neighbor Discovery (10.4.1) is the driver's
(:mod:`mip6.runtime.kernel`: the kernel's proxy entries). Not implemented: the Home Agents
List learnt from Router Advertisements (10.5.1; ``other_home_agents`` is configured),
unsolicited Mobile Prefix Advertisements (10.6.2-10.6.3), ICMP errors about tunnelled packets
(10.4.1, RFC 2473 8), the Tunnel Encapsulation Limit option (RFC 2473 5.1), and DAD's answer
to a simultaneous solicitation for the same address (RFC 4862 5.4.3).
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Hashable
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv6Address, IPv6Network
from typing import Any

from mip6.core import show
from mip6.core.actions import Action, CancelTimer, Deliver, Event, StartTimer, Transmit
from mip6.core.addresses import (
    home_agents_anycast,
    is_reserved_anycast,
    solicited_node_multicast,
)
from mip6.core.binding_cache import (
    BindingCache,
    BindingCacheEntry,
    BindingRequest,
    BindingVerdict,
    binding_request,
    decide_binding_update,
    unicast_routable,
)
from mip6.core.config import HomeAgentConfig
from mip6.core.datapath import (
    TUNNEL_OVERHEAD,
    FastAction,
    FastDecision,
    Ingress,
    encapsulate,
)
from mip6.core.engine import UnknownCommand
from mip6.core.ipsec.errors import EspLocalError
from mip6.core.ipsec.policy import Dropped, SecurityPolicyDatabase
from mip6.core.ipsec.sa import SecurityAssociation
from mip6.core.node import MINIMUM_MTU, Inbound, NodePipeline, UpperLayerError
from mip6.core.ratelimit import TokenBucket
from mip6.roles.correspondent_node import CorrespondentNode
from mip6.wire import icmpv6 as icmp
from mip6.wire import mobility as mh
from mip6.wire import protocols
from mip6.wire.errors import WireError
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import RoutingType2
from mip6.wire.walk import walk

log = logging.getLogger(__name__)

Status = mh.BindingAckStatus

SNAPSHOT_FORMAT = "mip6.home_agent.binding_cache"
SNAPSHOT_VERSION = 1
_SNAPSHOT_ENTRY_KEYS = frozenset(
    ("home_address", "care_of_address", "sequence", "lifetime", "expires")
)
# RFC 3775 10.5: the reply lists home agents "in order of preference"; it must not need
# fragmentation, so at most this many 16-byte addresses after the 40 + 8 bytes of headers.
MAX_DHAAD_ADDRESSES = (MINIMUM_MTU - 40 - 8) // 16
_IPV6_HEADER = 40
_TEST_INIT_TYPES = (mh.MhType.HOME_TEST_INIT, mh.MhType.CARE_OF_TEST_INIT)
_NA_TYPE = bytes([icmp.NEIGHBOR_ADVERTISEMENT])


class SnapshotError(ValueError):
    """A binding cache snapshot :meth:`HomeAgent.restore` refuses: not the versioned JSON
    document :meth:`HomeAgent.snapshot` writes, or written by a different home agent."""


@dataclass(slots=True)
class _Tunnel:
    """A home registration as the data path needs it: the entry and its care-of address as
    bytes, so a tunnelled packet costs no address conversion."""

    entry: BindingCacheEntry
    care_of: bytes


@dataclass(slots=True)
class _PendingRegistration:
    """A new home registration waiting for duplicate address detection on the home link."""

    request: BindingRequest
    inbound: Inbound


def _units_4s(seconds: float) -> int:
    return min(int(seconds) // 4, 0xFFFF)


class HomeAgent:
    """The home agent engine. ``config.address`` is its home agent address; the driver hands
    it every packet for that address, for the Home-Agents anycast address of each home prefix,
    for ``config.other_local_addresses``, and for the home addresses it serves (the kernel's
    proxy route). ``Transmit(data, link=config.home_link)`` means "out on the home link"
    (None: the home link is the node's network link); any other Transmit goes wherever its
    destination routes. Counters of the correspondent role are in
    ``self.correspondent.counters``."""

    def __init__(
        self,
        config: HomeAgentConfig,
        rng: random.Random,
        security: SecurityPolicyDatabase | None = None,
    ) -> None:
        if not config.home_prefixes:
            raise ValueError("a home agent needs at least one home prefix")
        if min(config.max_home_registration_lifetime, config.prefix_valid_lifetime) < 4:
            raise ValueError("a home registration lifetime cap below one 4-second unit")
        if not 0 < config.tunnel_hop_limit <= 255:
            raise ValueError("tunnel_hop_limit must be 1..255")
        self.config = config
        self.rng = rng
        # RFC 3776: ESP for the signalling with each mobile node. Packets for this node's own
        # addresses go through its input step, every packet it sends through its output step.
        self.security = security
        self._protection: SecurityAssociation | None = None  # of the packet being processed
        # RFC 3775 9.1: one binding cache per node, shared by the home agent and correspondent
        # roles; entries say which they are (``home_registration``).
        self.binding_cache = BindingCache(config.binding_cache_size)
        self.correspondent = CorrespondentNode(
            config=config.correspondent,
            rng=rng,
            home_agent=True,
            binding_cache=self.binding_cache,
        )
        cn = config.correspondent
        self.pipeline = NodePipeline(
            binding_allows=self._binding_allows,
            icmp_limiter=TokenBucket(cn.icmp_error_rate, cn.icmp_error_burst),
            binding_error_limiter=TokenBucket(cn.binding_error_rate, cn.binding_error_burst),
            primary_address=config.address,
        )
        self.counters = self.pipeline.counters
        self._address = config.address.packed
        # RFC 3775 10.5: the Mobile IPv6 Home-Agents anycast address of each home prefix.
        self._anycast: dict[bytes, IPv6Network] = {
            home_agents_anycast(prefix).packed: prefix for prefix in config.home_prefixes
        }
        self._other_local = frozenset(a.packed for a in config.other_local_addresses)
        self._prefixes = tuple(
            (int(p.network_address), int(p.netmask)) for p in config.home_prefixes
        )
        # Home address (16 bytes) -> its home registration: the data path's only lookup. It
        # mirrors the home registrations in ``binding_cache``, so it is bounded by its capacity.
        self._tunnels: dict[bytes, _Tunnel] = {}
        self._pending: list[Action] = []  # what ``start`` hands a restored engine's driver
        # Home address (16 bytes) -> the home registration held for duplicate address
        # detection (RFC 3775 10.3.1); bounded like the binding cache.
        self._dad: dict[bytes, _PendingRegistration] = {}

    # -- events in ---------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """Actions to perform before the first input: the expiry timers of the registrations
        a restored engine holds (empty for a new engine). Call once after construction."""
        actions, self._pending = self._pending, []
        return actions

    def handle_packet(self, now: float, data: bytes) -> list[Action]:
        if self.security is None:
            return self._receive(now, data)
        if len(data) >= _IPV6_HEADER and (
            data[24:40] == self._address or data[24:40] in self._other_local
        ):
            result = self.security.input(data)
            if isinstance(result, Dropped):
                self._count(f"esp_drop_{result.cause}")
                log.debug("drop: ESP %s: %s", result.cause, result.error)
                return [Event("drop", {"reason": f"ESP {result.cause}"})]
            data = result.data
            self._protection = result.sa
        try:
            return self._secured(self._receive(now, data))
        finally:
            self._protection = None

    def _secured(self, actions: list[Action]) -> list[Action]:
        """Every packet out through the security policy (RFC 3776: BA in transport mode, HoT
        in tunnel mode); a packet the policy discards, or cannot protect, is not sent."""
        assert self.security is not None
        out: list[Action] = []
        for action in actions:
            if isinstance(action, Transmit):
                try:
                    data = self.security.output(action.data)
                except EspLocalError as error:
                    self._count("esp_cannot_protect")
                    log.warning("cannot protect a packet: %s", error)
                    continue
                if data is None:
                    continue
                action = Transmit(data, link=action.link)
            out.append(action)
        return out

    def _receive(self, now: float, data: bytes) -> list[Action]:
        if len(data) < _IPV6_HEADER:
            self._count("malformed_truncated")
            return [Event("drop", {"reason": "shorter than an IPv6 header"})]
        destination = data[24:40]
        tunnel = self._tunnels.get(destination)
        if tunnel is not None:
            return self._tunnel(now, data, tunnel)
        if self._dad and data[6] == protocols.ICMPV6 and data[40:41] == _NA_TYPE:
            return self._neighbor_advertisement(data)
        if destination == self._address or destination in self._anycast:
            return self._local(now, data)
        if destination in self._other_local:
            return self._local(now, data)
        if self._on_home_link(destination):
            return self._forward_home_link(data)
        self._count("not_for_home_agent")
        log.debug("drop: destination %s is not served here", IPv6Address(destination))
        return [Event("drop", {"reason": "destination not served by this home agent"})]

    def send(self, now: float, data: bytes) -> list[Action]:
        actions = self._send(now, data)
        return actions if self.security is None else self._secured(actions)

    def _send(self, now: float, data: bytes) -> list[Action]:
        """A packet from the local upper layer. RFC 3775 10.4.1: one for a registered home
        address is tunnelled like any other; otherwise the correspondent role applies its
        bindings (RFC 3775 9.3.2)."""
        if len(data) < _IPV6_HEADER:
            self._count("send_malformed")
            return []
        tunnel = self._tunnels.get(data[24:40])
        if tunnel is not None:
            return self._tunnel(now, data, tunnel, forwarding=False)
        return self._outputs(now, self.correspondent.send(now, data))

    def handle_timer(self, now: float, token: Hashable) -> list[Action]:
        actions = self._timer(now, token)
        return actions if self.security is None else self._secured(actions)

    def _timer(self, now: float, token: Hashable) -> list[Action]:
        match token:
            case ("home_registration_expiry", IPv6Address() as home):
                return self._expire(now, home)
            case ("duplicate_address_detection", IPv6Address() as home):
                return self._duplicate_address_detection_done(now, home)
            case ("binding_expiry" | "binding_refresh", IPv6Address() as home):
                # The correspondent role's timers; a home registration that has since taken
                # the home address over is not the correspondent's to expire or refresh.
                entry = self.binding_cache.get(home)
                if entry is not None and entry.home_registration:
                    return []
                return self._outputs(now, self.correspondent.handle_timer(now, token))
        return []

    # -- the data path (RFC 3775 10.4, RFC 2473) ---------------------------------------------

    def _tunnel(
        self, now: float, data: bytes, tunnel: _Tunnel, *, forwarding: bool = True
    ) -> list[Action]:
        """RFC 3775 10.4.1: while the mobile node is away, the home agent intercepts packets
        for its home address and tunnels each to the primary care-of address of the binding
        (RFC 2473 3: outer source the home agent, outer destination the care-of address, Next
        Header 41; the inner packet unchanged but for its Hop Limit, 3.1, when the home agent
        forwards it rather than sends it: ``forwarding``)."""
        entry = tunnel.entry
        if entry.expires <= now:
            # The expiry timer has not run yet (a driver may deliver packets first): expire
            # now and treat the packet as one for an address without a binding.
            actions = self._expire(now, entry.home_address)
            self._tunnels.pop(entry.home_address.packed, None)
            return actions + self.handle_packet(now, data)
        hop_limit = data[7]
        if forwarding and hop_limit <= 1:
            # RFC 2473 3.1: the entry point forwards the original packet as a router does
            # (RFC 8200 3): one that would leave with Hop Limit 0 is discarded instead, and
            # its source told (RFC 4443 3.3, code 0)
            self._count("tunnel_hop_limit_exceeded")
            return self.pipeline.icmp_error(
                now,
                data,
                lambda body: icmp.TimeExceeded(code=icmp.HOP_LIMIT_EXCEEDED, invoking_packet=body),
                forwarding=True,
            )
        try:
            walk(data)
            outer = encapsulate(
                # RFC 2473 3.1: the original packet's Hop Limit goes down by one as it is
                # forwarded into the tunnel
                data[:7] + bytes((hop_limit - 1,)) + data[8:] if forwarding else data,
                self.config.address,
                entry.care_of_address,
                self.config.tunnel_hop_limit,
            )
        except (WireError, ValueError) as error:
            self._count("tunnel_malformed")
            log.debug("drop: not tunnelling to %s: %s", entry.home_address, error)
            return [Event("drop", {"reason": f"not tunnelled: {error}"})]
        entry.last_used = now
        if log.isEnabledFor(logging.DEBUG):  # the arguments cost more than the tunnelling
            log.debug(
                "tunnel: %s -> %s via %s (%d bytes)",
                IPv6Address(data[8:24]),
                entry.home_address,
                entry.care_of_address,
                len(data),
            )
        return [Transmit(outer)]

    def _reverse_tunnel(
        self, now: float, data: bytes, offset: int, *, tunnelled: bool
    ) -> list[Action]:
        """RFC 3775 10.4.5: a packet the mobile node reverse-tunnels from its care-of address.
        Only when the inner Source Address is a home address registered here, with the outer
        Source Address as its care-of address, is the inner packet forwarded as it is (this is
        also how a HoTI reaches its correspondent, RFC 3775 5.2.5); anything else is dropped."""
        if tunnelled:
            self._count("reverse_tunnel_nested")
            return [Event("drop", {"reason": "tunnel inside a reverse-tunnelled packet"})]
        inner = data[offset:]
        try:
            walk(inner)
        except WireError as error:
            self._count("reverse_tunnel_malformed")
            return [Event("drop", {"reason": f"reverse tunnel: {error}"})]
        if _IPV6_HEADER + int.from_bytes(inner[4:6], "big") != len(inner):
            self._count("reverse_tunnel_malformed")
            return [Event("drop", {"reason": "reverse tunnel: inner Payload Length mismatch"})]
        tunnel = self._tunnels.get(inner[8:24])
        if tunnel is None or tunnel.care_of != data[8:24] or tunnel.entry.expires <= now:
            self._count("reverse_tunnel_rejected")
            log.debug(
                "drop: reverse tunnel from %s for inner source %s: no such home registration",
                IPv6Address(data[8:24]),
                IPv6Address(inner[8:24]),
            )
            return [Event("drop", {"reason": "reverse tunnel not from a registered care-of"})]
        tunnel.entry.last_used = now
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "reverse tunnel: %s -> %s from care-of %s",
                tunnel.entry.home_address,
                IPv6Address(inner[24:40]),
                tunnel.entry.care_of_address,
            )
        return self._forward(now, inner)

    def _forward(self, now: float, inner: bytes) -> list[Action]:
        """Where a decapsulated packet goes: another mobile node registered here (tunnelled
        again), this node (processed, but never decapsulated twice), the home link, or out."""
        destination = inner[24:40]
        tunnel = self._tunnels.get(destination)
        if tunnel is not None:
            return self._tunnel(now, inner, tunnel)
        if (
            destination == self._address
            or destination in self._anycast
            or destination in self._other_local
        ):
            return self._local(now, inner, tunnelled=True)
        if self._on_home_link(destination):
            return [Transmit(inner, link=self.config.home_link)]
        return [Transmit(inner)]

    def _forward_home_link(self, data: bytes) -> list[Action]:
        """An address of a home prefix with no home registration: the home agent is an
        ordinary router for it and the packet goes onto the home link unchanged (the Hop
        Limit was the forwarding kernel's to decrement, ARCHITECTURE 4)."""
        try:
            walk(data)
        except WireError as error:
            self._count("forward_malformed")
            return [Event("drop", {"reason": str(error)})]
        return [Transmit(data, link=self.config.home_link)]

    def _output(self, now: float, data: bytes) -> list[Action]:
        """A packet this node originates: tunnelled when it is for a registered home address
        (RFC 3775 10.4.1 intercepts every packet for it), else sent on the right link."""
        tunnel = self._tunnels.get(data[24:40])
        if tunnel is not None and tunnel.entry.expires > now:
            return self._tunnel(now, data, tunnel)
        return [Transmit(data, link=self._link_to(data[24:40]))]

    def _outputs(self, now: float, actions: list[Action]) -> list[Action]:
        """The correspondent role's actions, with its packets routed as :meth:`_output` does."""
        out: list[Action] = []
        for action in actions:
            if isinstance(action, Transmit) and action.link is None:
                out += self._output(now, action.data)
            else:
                out.append(action)
        return out

    # -- packets for this node -----------------------------------------------------------------

    def _local(self, now: float, data: bytes, *, tunnelled: bool = False) -> list[Action]:
        destination = data[24:40]
        if (
            data[6] == protocols.MOBILITY
            and len(data) > 42
            and data[42] in _TEST_INIT_TYPES
            and destination not in self._anycast
        ):
            # RFC 3775 9.4: the correspondent role answers return routability for this node;
            # it runs the same input checks, and a fast path for HoTI/CoTI floods.
            log.debug("correspondent role: MH type %d from %s", data[42], IPv6Address(data[8:24]))
            return self._outputs(now, self.correspondent.handle_packet(now, data))
        try:
            chain = walk(data)
        except WireError:
            chain = None  # the pipeline parses it again and answers as the RFCs say
        if (
            chain is not None
            and chain.upper_protocol == protocols.IPV6
            and chain.upper_offset == _IPV6_HEADER
        ):
            # The reverse tunnel's fast path: no extension headers for the pipeline to check.
            if destination != self._address:
                return self._not_here("tunnel packet not addressed to the home agent address")
            return self._reverse_tunnel(now, data, _IPV6_HEADER, tunnelled=tunnelled)
        inbound, actions = self.pipeline.receive(now, data)
        if inbound is None:
            return actions
        payload = inbound.packet.payload
        anycast = destination in self._anycast
        if isinstance(payload, Ipv6Packet):
            if destination != self._address or chain is None or chain.fragmented:
                return actions + self._not_here("tunnel packet not for the home agent address")
            return actions + self._reverse_tunnel(
                now, data, chain.upper_offset, tunnelled=tunnelled
            )
        if isinstance(payload, mh.BindingUpdate):
            return actions + self._binding_update(now, inbound)
        if isinstance(payload, icmp.HomeAgentAddressDiscoveryRequest):
            return actions + self._home_agent_address_discovery(now, inbound)
        if anycast:
            # RFC 3775 10.5: the Home-Agents anycast address is for discovery requests (and
            # the 133 answer to a misdirected home registration); nothing else is served there.
            return actions + self._not_here("only DHAAD requests use the anycast address")
        if isinstance(payload, mh.HomeTestInit | mh.CareOfTestInit):
            # Behind extension headers (the bare ones took the correspondent's path above).
            return actions + self._outputs(now, self.correspondent.handle_packet(now, data))
        if isinstance(payload, icmp.MobilePrefixSolicitation):
            return actions + self._mobile_prefix_solicitation(now, inbound, payload)
        if payload.protocol == protocols.MOBILITY:
            self._count(f"ignored_{type(payload).__name__}")
            return actions
        if inbound.home_address is not None:
            entry = self.binding_cache.get(inbound.home_address)
            if entry is not None:
                entry.last_used = now
        actions.append(Deliver(inbound.delivered()))
        return actions

    def _not_here(self, reason: str) -> list[Action]:
        self._count("not_for_home_agent")
        log.debug("drop: %s", reason)
        return [Event("drop", {"reason": reason})]

    # -- Binding Updates ---------------------------------------------------------------------

    def _binding_update(self, now: float, inbound: Inbound) -> list[Action]:
        update = inbound.packet.payload
        assert isinstance(update, mh.BindingUpdate)
        if update.home_registration:
            return self._home_registration(now, inbound, update)
        if inbound.packet.destination.packed in self._anycast:
            return self._not_here("correspondent Binding Update to the anycast address")
        # A correspondent registration for a home address registered here gets BA 139 from the
        # correspondent role, which shares this binding cache, after it has verified the
        # authenticator: RFC 3775 9.5.1 "If the Binding Update is not authorized ... the
        # Binding Update MUST be silently discarded", so nobody can have a BA 139 sent to a
        # care-of address of their choosing. The 139 comes before the role would store or
        # delete anything, so the home registration is never overwritten.
        log.debug("correspondent role: Binding Update from %s", inbound.packet.source)
        return self._outputs(now, self.correspondent.binding_update(now, inbound))

    def _home_registration(
        self, now: float, inbound: Inbound, update: mh.BindingUpdate
    ) -> list[Action]:
        """RFC 3775 10.3.1 (registration) and 10.3.2 (deregistration)."""
        packet = inbound.packet
        protection = self._protection
        protected = protection is not None and (
            protection.parameters.selector.source == (packet.home_address or packet.source)
        )
        if not protected and not self.config.allow_unprotected_registration:
            # RFC 3775 10.3.1 / RFC 3776 4: home registrations MUST be protected by ESP, with an
            # SA whose selector names this home address: drop and count anything else.
            self._count("unprotected_home_registration")
            log.debug(
                "drop: unprotected home registration from %s seq=%d",
                packet.source,
                update.sequence,
            )
            return [
                Event(
                    "unprotected_home_registration",
                    {"source": str(packet.source), "sequence": update.sequence},
                )
            ]
        if update.find(mh.NonceIndices) is not None:
            # RFC 3775 9.5.1: "If the Home Registration (H) bit is set, the Nonce Indices
            # mobility option MUST NOT be present", else the Binding Update "MUST be silently
            # discarded".
            self._count("home_registration_with_nonce_indices")
            return [
                Event(
                    "drop",
                    {"reason": "home registration with a Nonce Indices option (9.5.1)"},
                )
            ]
        request = binding_request(packet)
        if request is None:
            # RFC 3775 9.5.1: home or care-of address not unicast routable: discard.
            self._count("bu_bad_address")
            return [Event("drop", {"reason": "BU home or care-of address not unicast routable"})]
        home = request.home_address
        care_of = request.care_of_address
        log.debug(
            "home registration: home=%s care_of=%s to=%s seq=%d lifetime=%ds A=%d",
            home,
            care_of,
            packet.destination,
            update.sequence,
            update.lifetime_s,
            update.acknowledge,
        )
        if not self._in_home_prefix(home):
            # RFC 3775 10.3.1: "...not an on-link IPv6 address with respect to the home
            # agent's current Prefix List ... Status field is set to 132".
            return self._acknowledge(request, inbound, Status.NOT_HOME_SUBNET)
        if packet.destination != self.config.address:
            # Sent to the Home-Agents anycast address or another address of this node: the
            # home agent serves registrations at its home agent address only (133).
            return self._acknowledge(request, inbound, Status.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE)
        if not self._acl_allows(home):
            # RFC 3775 10.3.1: "if the home agent chooses to reject the Binding Update for any
            # other reason ... appropriate Status": 129, as UMIP's BindingAclPolicy does.
            return self._acknowledge(request, inbound, Status.ADMINISTRATIVELY_PROHIBITED)
        if not request.deregistration and not self._care_of_acceptable(care_of):
            # RFC 3775 3.1: a care-of address is "associated with a mobile node while visiting
            # a foreign link"; one on the home link (or this node's) would tunnel into a loop.
            return self._acknowledge(request, inbound, Status.REASON_UNSPECIFIED)
        entry = self._live_entry(now, home)
        decision = decide_binding_update(entry, request)
        if decision.status is not None:
            # RFC 3775 9.5.1 / 10.3.1: 139 when a correspondent binding exists for this home
            # address; 135 carrying the last accepted Sequence Number.
            return self._acknowledge(request, inbound, decision.status, sequence=decision.sequence)
        if decision.verdict is BindingVerdict.DELETE:
            return self._deregister(now, request, inbound, entry)
        if self._address_in_use(home):
            # RFC 3775 10.3.1: duplicate address detection on the home link "fails" (134);
            # the configured addresses in use stand in for DAD.
            return self._acknowledge(request, inbound, Status.DUPLICATE_ADDRESS_DETECTION_FAILED)
        if not self.binding_cache.has_room_for(home) or (
            home.packed not in self._dad and len(self._dad) >= self.config.binding_cache_size
        ):
            # RFC 3775 9.5.2 / 10.3.1: insufficient resources (130).
            return self._acknowledge(request, inbound, Status.INSUFFICIENT_RESOURCES)
        if self.config.duplicate_address_detection and entry is None:
            return self._start_duplicate_address_detection(now, request, inbound)
        return self._accept(now, request, inbound)

    def _accept(self, now: float, request: BindingRequest, inbound: Inbound) -> list[Action]:
        """Accept a home registration that passed every check of RFC 3775 10.3.1."""
        update = request.update
        home = request.home_address
        care_of = request.care_of_address
        # RFC 3775 10.3.1: the granted lifetime is at most the requested one, the home agent's
        # own limit (UMIP HaMaxBindingLife), and "MUST NOT be greater than the remaining valid
        # lifetime for the subnet prefix in the mobile node's home address". Whole 4 s units, so
        # the entry lives exactly as long as the Binding Acknowledgement says.
        units = min(
            update.lifetime_units_4s,
            _units_4s(self.config.max_home_registration_lifetime),
            _units_4s(self.config.prefix_valid_lifetime),
        )
        lifetime = units * 4.0
        self._put_home_registration(
            BindingCacheEntry(
                home_address=home,
                care_of_address=care_of,
                expires=now + lifetime,
                sequence=update.sequence,
                home_registration=True,
                lifetime=lifetime,
                last_used=now,
                correspondent_address=self.config.address,
            )
        )
        self._count("home_registration_accepted")
        log.debug(
            "home registration accepted: home=%s care_of=%s seq=%d lifetime=%ds",
            home,
            care_of,
            update.sequence,
            int(lifetime),
        )
        actions: list[Action] = [
            StartTimer(now + lifetime, ("home_registration_expiry", home)),
            Event(
                "binding_added",
                {
                    "home_address": str(home),
                    "care_of_address": str(care_of),
                    "sequence": update.sequence,
                    "lifetime": lifetime,
                    "home_registration": True,
                },
            ),
            self._changed("registered"),
        ]
        if update.acknowledge:
            # RFC 3775 10.3.1: Status 0, the granted Lifetime, K clear (no key management
            # mobility capability), no Binding Authorization Data (that is for RR, 6.2.7).
            actions += self._acknowledge(request, inbound, Status.ACCEPTED, lifetime=lifetime)
        return actions

    def _start_duplicate_address_detection(
        self, now: float, request: BindingRequest, inbound: Inbound
    ) -> list[Action]:
        """RFC 3775 10.3.1: before accepting a new home registration "the home agent MUST
        perform Duplicate Address Detection on the mobile node's home link" (RFC 4862 5.4: one
        Neighbor Solicitation from the unspecified address to the solicited-node multicast
        address of the home address, then RetransTimer for an answer). The Binding Update is
        held meanwhile; the mobile node's retransmissions of it are dropped (the answer to the
        held one is coming)."""
        home = request.home_address
        if home.packed in self._dad:
            self._count("home_registration_dad_in_progress")
            return [Event("drop", {"reason": "home registration waits for DAD"})]
        self._dad[home.packed] = _PendingRegistration(request, inbound)
        solicitation = Ipv6Packet(
            source=IPv6Address(0),
            destination=solicited_node_multicast(home),
            hop_limit=255,  # RFC 4861 7.1.1: receivers drop ND with any other Hop Limit
            payload=icmp.NeighborSolicitation(target_address=home),
        )
        self._count("dad_started")
        return [
            Transmit(solicitation.emit(), link=self.config.home_link),
            StartTimer(now + self.config.dad_retrans_timer, ("duplicate_address_detection", home)),
            Event("dad_started", {"home_address": str(home)}),
        ]

    def _neighbor_advertisement(self, data: bytes) -> list[Action]:
        """RFC 4862 5.4.4: a Neighbor Advertisement for an address under DAD means another node
        has it: the held home registration fails with status 134 (RFC 3775 10.3.1)."""
        try:
            message = icmp.parse_icmpv6(data[40:], source=data[8:24], destination=data[24:40])
        except WireError as error:
            self._count("neighbor_advertisement_malformed")
            return [Event("drop", {"reason": f"neighbor advertisement: {error}"})]
        if not isinstance(message, icmp.NeighborAdvertisement) or data[7] != 255:
            return [Event("drop", {"reason": "not a neighbor advertisement with Hop Limit 255"})]
        pending = self._dad.pop(message.target_address.packed, None)
        if pending is None:
            return []
        self._count("dad_failed")
        home = pending.request.home_address
        return [
            CancelTimer(("duplicate_address_detection", home)),
            Event("dad_failed", {"home_address": str(home), "owner": str(IPv6Address(data[8:24]))}),
            *self._acknowledge(
                pending.request, pending.inbound, Status.DUPLICATE_ADDRESS_DETECTION_FAILED
            ),
        ]

    def _duplicate_address_detection_done(self, now: float, home: IPv6Address) -> list[Action]:
        """RetransTimer passed without an answer: the home address is free (RFC 4862 5.4)."""
        pending = self._dad.pop(home.packed, None)
        if pending is None:
            return []
        if not self.binding_cache.has_room_for(home):  # filled up while we waited
            return self._acknowledge(
                pending.request, pending.inbound, Status.INSUFFICIENT_RESOURCES
            )
        return self._accept(now, pending.request, pending.inbound)

    def _deregister(
        self,
        now: float,
        request: BindingRequest,
        inbound: Inbound,
        entry: BindingCacheEntry | None,
    ) -> list[Action]:
        """RFC 3775 10.3.2: Lifetime 0 or care-of address equal to the home address."""
        home = request.home_address
        if entry is None:
            # RFC 3775 10.3.2: "If the receiving node has no entry marked as a home
            # registration in its Binding Cache for this mobile node, then this node MUST
            # reject the Binding Update and SHOULD return ... Status field ... 133".
            return self._acknowledge(request, inbound, Status.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE)
        # RFC 3775 10.3.2: delete the entry and stop intercepting packets for the home address.
        self._remove_home_registration(home)
        self._count("home_registration_deleted")
        log.debug("home registration deleted: home=%s seq=%d", home, request.update.sequence)
        actions: list[Action] = [
            CancelTimer(("home_registration_expiry", home)),
            Event("binding_deleted", {"home_address": str(home), "home_registration": True}),
            self._changed("deregistered"),
        ]
        if request.update.acknowledge:
            actions += self._acknowledge(request, inbound, Status.ACCEPTED, lifetime=0)
        return actions

    def _acknowledge(
        self,
        request: BindingRequest,
        inbound: Inbound,
        status: int,
        *,
        sequence: int | None = None,
        lifetime: float = 0,
    ) -> list[Action]:
        """A Binding Acknowledgement (RFC 3775 6.1.8, 9.5.4). Rejections are always sent,
        whatever the A bit (RFC 3775 10.3.1 "SHOULD return"); acceptances only when A is set
        (callers decide). It goes to the care-of address with a type 2 routing header naming
        the home address, or straight to the home address on the home link when the two are
        the same (RFC 3775 10.3.1: a mobile node at home is reached on the home link, never
        through its old tunnel; RFC 3775 6.1: Mobility Header messages bypass the binding)."""
        destination = inbound.packet.destination
        # Never from an anycast address: the home agent's own address answers for it.
        source = self.config.address if destination.packed in self._anycast else destination
        ba = mh.BindingAcknowledgement(
            status=status,
            sequence=request.update.sequence if sequence is None else sequence,
            lifetime_units_4s=_units_4s(lifetime),
        ).aligned()
        home = request.home_address
        care_of = request.care_of_address
        if care_of == home:
            packet = Ipv6Packet(source=source, destination=home, payload=ba)
        else:
            packet = Ipv6Packet(
                source=source,
                destination=care_of,
                extension_headers=(RoutingType2(home_address=home),),
                payload=ba,
            )
        target = packet.destination.packed
        self._count(f"ba_status_{status}")
        log.debug(
            "binding ack: home=%s to=%s status=%d seq=%d lifetime=%ds",
            home,
            packet.destination,
            status,
            ba.sequence,
            ba.lifetime_s,
        )
        return [
            Transmit(packet.emit(), link=self._link_to(target)),
            Event(
                "binding_ack_sent",
                {"home_address": str(home), "status": int(status), "sequence": ba.sequence},
            ),
        ]

    # -- discovery and prefixes (RFC 3775 10.5, 10.6) ------------------------------------------

    def _home_agent_address_discovery(self, now: float, inbound: Inbound) -> list[Action]:
        """RFC 3775 10.5: a request to the Home-Agents anycast address of a home prefix gets a
        reply, same Identifier, from this home agent's address to the request's source."""
        request = inbound.packet.payload
        assert isinstance(request, icmp.HomeAgentAddressDiscoveryRequest)
        packet = inbound.packet
        if packet.destination.packed not in self._anycast:
            return self._not_here("DHAAD request not sent to a Home-Agents anycast address")
        if not unicast_routable(packet.source):
            self._count("dhaad_bad_source")
            return [Event("drop", {"reason": "DHAAD request from a non-unicast address"})]
        addresses = self._home_agents_list()
        reply = Ipv6Packet(
            source=self.config.address,
            destination=packet.source,
            payload=icmp.HomeAgentAddressDiscoveryReply(
                identifier=request.identifier, home_agent_addresses=addresses
            ),
        )
        self._count("dhaad_reply_sent")
        log.debug(
            "dhaad reply: to=%s id=%d home agents=%s",
            packet.source,
            request.identifier,
            ",".join(map(str, addresses)),
        )
        return [
            *self._output(now, reply.emit()),
            Event("dhaad_reply_sent", {"to": str(packet.source), "count": len(addresses)}),
        ]

    def _home_agents_list(self) -> tuple[IPv6Address, ...]:
        """RFC 3775 10.5: home agents in decreasing order of preference; those of equal
        preference in a random order each time (10.5.1: to spread mobile nodes over them)."""
        preferences = {self.config.address: self.config.home_agent_preference}
        for address, preference in self.config.other_home_agents:
            preferences.setdefault(address, preference)
        agents = list(preferences.items())
        self.rng.shuffle(agents)
        agents.sort(key=lambda item: -item[1])  # stable: equal preferences stay shuffled
        return tuple(address for address, _ in agents[:MAX_DHAAD_ADDRESSES])

    def _mobile_prefix_solicitation(
        self, now: float, inbound: Inbound, solicitation: icmp.MobilePrefixSolicitation
    ) -> list[Action]:
        """RFC 3775 10.6.1 (and 6.8): a Mobile Prefix Advertisement, same Identifier, with a
        Prefix Information option per home prefix, to the mobile node's care-of address with a
        type 2 routing header naming its home address. The solicitation must come from a
        registered mobile node (the pipeline has checked its Home Address option against the
        binding, RFC 3775 9.3.1)."""
        home = inbound.source
        tunnel = self._tunnels.get(home.packed)
        if tunnel is None or tunnel.entry.expires <= now:
            self._count("mps_without_home_registration")
            log.debug("drop: mobile prefix solicitation from unregistered %s", home)
            return [Event("drop", {"reason": "MPS from a home address not registered here"})]
        advertisement = icmp.MobilePrefixAdvertisement(
            identifier=solicitation.identifier,
            options=tuple(
                icmp.PrefixInformation(
                    prefix_length=prefix.prefixlen,
                    prefix=prefix.network_address,
                    on_link=True,
                    autonomous=True,
                    valid_lifetime=self.config.prefix_valid_lifetime,
                    preferred_lifetime=self.config.prefix_preferred_lifetime,
                )
                for prefix in self.config.home_prefixes
            ),
        )
        self._count("mpa_sent")
        log.debug("mobile prefix advertisement: home=%s id=%d", home, solicitation.identifier)
        event = Event("mobile_prefix_advertisement_sent", {"home_address": str(home)})
        if inbound.home_address is None:
            # It came through the reverse tunnel from the home address: answer the same way.
            packet = Ipv6Packet(source=self.config.address, destination=home, payload=advertisement)
            return [*self._output(now, packet.emit()), event]
        packet = Ipv6Packet(
            source=self.config.address,
            destination=inbound.packet.source,
            extension_headers=(RoutingType2(home_address=home),),
            payload=advertisement,
        )
        return [Transmit(packet.emit()), event]

    # -- binding cache -----------------------------------------------------------------------

    def _put_home_registration(self, entry: BindingCacheEntry) -> None:
        self.binding_cache.put(entry)
        self._tunnels[entry.home_address.packed] = _Tunnel(entry, entry.care_of_address.packed)

    def _remove_home_registration(self, home: IPv6Address) -> None:
        self.binding_cache.remove(home)
        self._tunnels.pop(home.packed, None)

    def _expire(self, now: float, home: IPv6Address) -> list[Action]:
        entry = self.binding_cache.get(home)
        if entry is None or not entry.home_registration or entry.expires > now:
            return []
        self._remove_home_registration(home)
        self._count("home_registration_expired")
        log.debug("home registration expired: home=%s", home)
        return [
            Event("binding_expired", {"home_address": str(home), "home_registration": True}),
            self._changed("expired"),
        ]

    def _changed(self, reason: str) -> Event:
        """RFC 3775 10.1 leaves the binding cache volatile; a driver that persists it (UMIP's
        NonVolatileBindingCache) writes :meth:`snapshot` whenever this event comes."""
        return Event(
            "binding_cache_changed",
            {"reason": reason, "home_registrations": len(self._tunnels)},
        )

    def _live_entry(self, now: float, home: IPv6Address) -> BindingCacheEntry | None:
        """The entry for ``home``, unless its lifetime is over (its timer not yet run)."""
        entry = self.binding_cache.get(home)
        return entry if entry is not None and entry.expires > now else None

    def _binding_allows(self, now: float, home: IPv6Address, care_of: IPv6Address) -> bool:
        entry = self._live_entry(now, home)
        return entry is not None and entry.care_of_address == care_of

    def home_registrations(self) -> list[BindingCacheEntry]:
        """The home registrations (including any whose expiry timer has not run yet), in the
        order they were first made."""
        return [tunnel.entry for tunnel in self._tunnels.values()]

    # -- non-volatile binding cache ------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The home registrations as a versioned JSON document, expiry times absolute on the
        engine's clock. Correspondent bindings are left out: they are cheap to redo (RFC 3775
        9.5.5) and a restarted correspondent's new Kcn would not match them anyway."""
        registrations = [
            {
                "home_address": str(t.entry.home_address),
                "care_of_address": str(t.entry.care_of_address),
                "sequence": t.entry.sequence,
                "lifetime": t.entry.lifetime,
                "expires": t.entry.expires,
            }
            for t in sorted(self._tunnels.values(), key=lambda t: t.entry.home_address)
        ]
        document = {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "home_agent": str(self.config.address),
            "home_registrations": registrations,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def restore(
        cls, config: HomeAgentConfig, rng: random.Random, now: float, blob: bytes
    ) -> HomeAgent:
        """A home agent holding the home registrations of ``blob`` (from :meth:`snapshot`)
        that are still alive at ``now``; call :meth:`start` for their expiry timers. Raises
        :class:`SnapshotError` for a malformed document, another format or version, or a
        snapshot of a different home agent. Registrations this configuration would no longer
        accept (home prefix, ACL) or has no room for are left out and counted."""
        registrations = _parse_snapshot(blob, config)
        engine = cls(config, rng)
        kept = 0
        for entry in registrations:
            home = entry.home_address
            if entry.expires <= now:
                engine._count("restore_expired")
                log.debug("restore: home=%s expired at %s", home, entry.expires)
                continue
            if not engine._in_home_prefix(home) or not engine._acl_allows(home):
                engine._count("restore_refused")
                log.debug("restore: home=%s no longer served", home)
                continue
            if not engine.binding_cache.has_room_for(home):
                engine._count("restore_over_capacity")
                continue
            entry.last_used = now
            engine._put_home_registration(entry)
            engine._pending.append(StartTimer(entry.expires, ("home_registration_expiry", home)))
            kept += 1
        log.debug("restore: %d of %d home registrations kept", kept, len(registrations))
        engine._pending.append(
            Event("binding_cache_restored", {"kept": kept, "dropped": len(registrations) - kept})
        )
        if kept != len(registrations):
            engine._pending.append(engine._changed("restored"))
        return engine

    # -- the engine contract (mip6.core.engine; ``start`` above) --------------------------------

    def upper_layer_error(
        self, now: float, invoking: bytes, message: UpperLayerError
    ) -> list[Action]:
        return self.pipeline.upper_layer_error(now, invoking, message, self.send)

    def send_overhead(self, now: float, source: bytes, destination: bytes) -> int:
        """The tunnel to a registered home address (RFC 3775 10.4.1), else the correspondent
        role's."""
        if destination in self._tunnels:
            return TUNNEL_OVERHEAD
        return self.correspondent.send_overhead(now, source, destination)

    def command(self, now: float, name: str, argument: Any) -> list[Action]:
        raise UnknownCommand(name, "home_agent")

    def fast_version(self) -> int:
        return self.binding_cache.version  # home registrations and the correspondent's

    def fast_decision(
        self, now: float, ingress: Ingress, source: bytes, destination: bytes
    ) -> FastDecision | None:
        """What :meth:`handle_packet` does to data packets: for a registered home address,
        RFC 3775 10.4.1 interception and RFC 2473 tunnelling (:meth:`_tunnel`); from a
        registered care-of address to this node, the reverse tunnel (10.4.5,
        :meth:`_reverse_tunnel`), whose inner packets go where :meth:`_forward` sends them.
        Everything else (packets for this node, the home link's neighbours) stays with the
        engine, as does all of it under a security policy database (which sees every packet
        the home agent sends)."""
        if ingress is Ingress.UPPER or self.security is not None:
            return None
        tunnel = self._tunnels.get(destination)
        if tunnel is not None:
            entry = tunnel.entry
            if entry.expires <= now:
                return None
            return FastDecision(
                action=FastAction.ENCAPSULATE_FORWARDED,
                address=tunnel.care_of,
                source=self._address,
                hop_limit=self.config.tunnel_hop_limit,
                expires=entry.expires,
                binding=entry.home_address,
                touch=entry.touch,
            )
        local = (
            destination == self._address
            or destination in self._anycast
            or destination in self._other_local
        )
        if ingress is Ingress.TUNNEL:
            if local:
                return None  # processed here, never decapsulated twice
            home_link = self.config.home_link if self._on_home_link(destination) else None
            return FastDecision(action=FastAction.FORWARD, link=home_link)
        if destination != self._address:
            return None
        # the reverse tunnel from a care-of address: one home registration per care-of
        # address, or the inner source alone says which (the engine's to check)
        registered = [t for t in self._tunnels.values() if t.care_of == source]
        if len(registered) != 1 or registered[0].entry.expires <= now:
            return None
        entry = registered[0].entry
        return FastDecision(
            action=FastAction.DECAPSULATE,
            address=entry.home_address.packed,
            expires=entry.expires,
            binding=entry.home_address,
            touch=entry.touch,
        )

    def stop(self, now: float) -> list[Action]:
        return []

    def stopped(self) -> bool:
        return True

    def describe(self, what: str, now: float) -> dict[str, Any]:
        """The correspondent role's tables are the home agent's own (one binding cache);
        its counters appear under ``correspondent.``."""
        show.check(what)
        if what == "bcache":
            return show.rows(what, show.binding_cache_rows(self.binding_cache, now))
        if what == "nonce":
            return show.rows(what, show.nonce_rows(self.correspondent.nonces, now))
        if what == "stats":
            return show.counters(
                what, ("", self.counters), ("correspondent.", self.correspondent.counters)
            )
        return show.rows(what, [])

    # -- helpers -------------------------------------------------------------------------------

    def _on_home_link(self, address: bytes) -> bool:
        value = int.from_bytes(address, "big")
        return any(value & mask == network for network, mask in self._prefixes)

    def _link_to(self, destination: bytes) -> str | None:
        """The home link for an address on it, else wherever the destination routes."""
        return self.config.home_link if self._on_home_link(destination) else None

    def _in_home_prefix(self, address: IPv6Address) -> bool:
        return self._on_home_link(address.packed)

    def _acl_allows(self, home: IPv6Address) -> bool:
        """UMIP BindingAclPolicy: the first rule whose network holds ``home`` decides, else
        DefaultBindingAclPolicy."""
        for network, allowed in self.config.binding_acl:
            if home in network:
                return allowed
        return self.config.acl_default_allow

    def _address_in_use(self, home: IPv6Address) -> bool:
        """The duplicate address detection stand-in: this node's addresses, the configured
        home link addresses, and reserved anycast addresses (RFC 4291 2.6.1, RFC 2526)."""
        return (
            home == self.config.address
            or home in self.config.home_link_addresses
            or home in self.config.other_local_addresses
            or any(is_reserved_anycast(home, prefix) for prefix in self.config.home_prefixes)
        )

    def _care_of_acceptable(self, care_of: IPv6Address) -> bool:
        packed = care_of.packed
        return not (
            self._on_home_link(packed)
            or packed == self._address
            or packed in self._other_local
            or packed in self._anycast
        )

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1


def _parse_snapshot(blob: bytes, config: HomeAgentConfig) -> list[BindingCacheEntry]:
    """The entries of a snapshot, checked field by field; :class:`SnapshotError` otherwise."""
    try:
        document = json.loads(blob)
    except (UnicodeDecodeError, ValueError) as error:
        raise SnapshotError(f"snapshot is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise SnapshotError("snapshot is not a JSON object")
    if document.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"snapshot format {document.get('format')!r}, not {SNAPSHOT_FORMAT}")
    version = document.get("version")
    if type(version) is not int or version != SNAPSHOT_VERSION:
        raise SnapshotError(f"snapshot version {version!r}; this engine reads {SNAPSHOT_VERSION}")
    home_agent = _address(document.get("home_agent"), "home_agent")
    if home_agent != config.address:
        raise SnapshotError(f"snapshot of home agent {home_agent}, this is {config.address}")
    items = document.get("home_registrations")
    if not isinstance(items, list):
        raise SnapshotError("home_registrations is not a list")
    entries: list[BindingCacheEntry] = []
    seen: set[IPv6Address] = set()
    for index, item in enumerate(items):
        where = f"home_registrations[{index}]"
        if not isinstance(item, dict) or set(item) != _SNAPSHOT_ENTRY_KEYS:
            raise SnapshotError(f"{where}: needs exactly {sorted(_SNAPSHOT_ENTRY_KEYS)}")
        home = _address(item["home_address"], f"{where}.home_address")
        care_of = _address(item["care_of_address"], f"{where}.care_of_address")
        if home in seen:
            raise SnapshotError(f"{where}: home address {home} appears twice")
        seen.add(home)
        sequence = item["sequence"]
        if type(sequence) is not int or not 0 <= sequence <= 0xFFFF:
            raise SnapshotError(f"{where}.sequence: {sequence!r} is not a 16-bit number")
        lifetime = _number(item["lifetime"], f"{where}.lifetime")
        expires = _number(item["expires"], f"{where}.expires")
        if lifetime < 0:
            raise SnapshotError(f"{where}.lifetime: negative")
        entries.append(
            BindingCacheEntry(
                home_address=home,
                care_of_address=care_of,
                expires=expires,
                sequence=sequence,
                home_registration=True,
                lifetime=lifetime,
                last_used=0.0,
                correspondent_address=config.address,
            )
        )
    return entries


def _address(value: Any, where: str) -> IPv6Address:
    if not isinstance(value, str):
        raise SnapshotError(f"{where}: {value!r} is not an IPv6 address string")
    try:
        return IPv6Address(value)
    except AddressValueError as error:
        raise SnapshotError(f"{where}: {error}") from None


def _number(value: Any, where: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise SnapshotError(f"{where}: {value!r} is not a finite number")
    return float(value)
