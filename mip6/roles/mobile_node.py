"""Mobile node (RFC 3775 11): home registration, return routability, correspondent bindings,
movement, returning home, the Binding Update List with RFC 3775 11.8 retransmission and rate
limits, and the data path (Home Address option out, type 2 routing header in, reverse
tunnelling for correspondents without a binding).

Also the primitives the distributed server needs from it (ARCHITECTURE 5): bindings toward one
correspondent only (``home_registration=False`` leaves the home agent alone), return
routability now and the Binding Update later (``send_binding_update=False`` then
``complete_route_optimization``), HoTI/HoT through a relay node instead of the home agent
(``tunnel_relay``), export and import of one correspondent's state, forgetting one
(``forget_correspondent``: another member holds that binding now), clearing a binding with
retries until it is acknowledged, a BA 135 from a correspondent reported instead of answered
(``sequence_recovery=False``: a member learns from it that another member bound the client
later, DSERVER 4 rule 3), Home Tests that match no entry of ours handed to the contact node's
relay (``home_test_relay``), and the decision to route-optimize with a tunnelled sender left to
the caller (``config.route_optimization`` off, :meth:`route_optimize_tunnelled_sender` on).
"""

from __future__ import annotations

import functools
import hmac
import logging
import random
import struct
from collections.abc import Callable, Hashable
from dataclasses import replace
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from mip6.core import rr, show
from mip6.core.actions import Action, CancelTimer, Deliver, Event, StartTimer, Transmit
from mip6.core.addresses import home_agents_anycast
from mip6.core.binding_cache import unicast_routable
from mip6.core.binding_update_list import (
    BindingUpdateList,
    BulEntry,
    BulInput,
    BulState,
    CorrespondentState,
    Tokens,
    transition,
)
from mip6.core.config import MobileNodeConfig
from mip6.core.datapath import (
    HOME_ADDRESS_OPTION_OVERHEAD,
    TUNNEL_OVERHEAD,
    FastAction,
    FastDecision,
    Ingress,
    encapsulate,
    home_address_options,
    insert_home_address_option,
)
from mip6.core.engine import UnknownCommand
from mip6.core.ipsec.errors import EspLocalError
from mip6.core.ipsec.policy import Dropped, SecurityPolicyDatabase
from mip6.core.node import Inbound, NodePipeline, UpperLayerError
from mip6.core.ratelimit import TokenBucket
from mip6.wire import icmpv6 as icmp
from mip6.wire import mobility as mh
from mip6.wire import protocols
from mip6.wire.errors import WireError
from mip6.wire.ipv6 import Ipv6Packet, fixed_header
from mip6.wire.ipv6ext import DestinationOptions, HomeAddressOption
from mip6.wire.walk import walk

log = logging.getLogger(__name__)

Status = mh.BindingAckStatus
EXPIRED_NONCE_STATUSES = (
    Status.EXPIRED_HOME_NONCE_INDEX,
    Status.EXPIRED_CARE_OF_NONCE_INDEX,
    Status.EXPIRED_NONCES,
)


# A correspondent registration's Binding Update from a care-of address, as the codec lays it
# out (RFC 3775 6.1.7, 6.2.7, 6.3): IPv6 header; a Destination Options header (Next Header 135,
# Hdr Ext Len 2) whose PadN puts the Home Address option at 8n+6; the Mobility Header (Payload
# Proto 59, Header Len 3, MH Type 5), Sequence, flags (A), Lifetime, Nonce Indices at 2n and
# Binding Authorization Data at 8n+2 with no padding between, then the 12-byte Authenticator.
_AUTHORIZED_BU = struct.Struct("!BBBBHHHHBBHHBB")
_BU_ACKNOWLEDGE = 0x8000
_PLAIN_UPPER = frozenset((protocols.TCP, protocols.UDP))  # MobileNode.send's shortcut


def _authorized_bu_packet(
    care_of: bytes,
    correspondent: bytes,
    home: bytes,
    sequence: int,
    lifetime_units_4s: int,
    home_nonce_index: int,
    care_of_nonce_index: int,
    kbm: bytes,
) -> bytes:
    """The Binding Update of :meth:`MobileNode._correspondent_packet` away from home, built
    without a Repr (tests hold it byte-identical to the codec's): a distributed server
    member sends one per handoff, and the codec's three passes over the message were half of
    a local handoff's cost. Addresses as packets carry them (16 bytes each)."""
    unsigned = _AUTHORIZED_BU.pack(
        protocols.NO_NEXT_HEADER,
        3,
        mh.MhType.BINDING_UPDATE,
        0,
        0,
        sequence,
        _BU_ACKNOWLEDGE,
        lifetime_units_4s,
        mh.MobilityOptionType.NONCE_INDICES,
        4,
        home_nonce_index,
        care_of_nonce_index,
        mh.MobilityOptionType.BINDING_AUTHORIZATION_DATA,
        rr.AUTHENTICATOR_LENGTH,
    )
    # RFC 3775 6.1.1: the pseudo-header's source is the home address (Home Address option)
    message = mh.with_checksum(
        unsigned + rr.packed_authenticator(kbm, care_of, correspondent, unsigned),
        source=home,
        destination=correspondent,
    )
    options = home_address_options(protocols.MOBILITY, home)
    header = fixed_header(
        len(options) + len(message), protocols.DESTINATION_OPTIONS, care_of, correspondent
    )
    return header + options + message


# A Home or Care-of Test Init (RFC 3775 6.1.3, 6.1.4), as the codec lays it out: the IPv6
# header, then the Mobility Header (Payload Proto 59, Header Len 1, MH Type), Reserved, the
# checksum, 16 reserved bits and the 8-byte cookie.
_TEST_INIT = struct.Struct("!BBBBH2x8s")


def _test_init_packet(
    source: IPv6Address, destination: IPv6Address, mh_type: int, cookie: bytes
) -> bytes:
    """A HoTI or CoTI without a Repr (tests hold it byte-identical to the codec's): an
    acceptor of the distributed server starts return routability for every handoff."""
    source_packed, destination_packed = source.packed, destination.packed
    message = mh.with_checksum(
        _TEST_INIT.pack(protocols.NO_NEXT_HEADER, 1, mh_type, 0, 0, cookie),
        source=source_packed,
        destination=destination_packed,
    )
    return fixed_header(len(message), protocols.MOBILITY, source_packed, destination_packed) + (
        message
    )


def _secure_output(method: Callable[..., list[Action]]) -> Callable[..., list[Action]]:
    """Commands and events may call one another; the packets they send go through the
    security policy database once, when the outermost call returns."""

    @functools.wraps(method)
    def wrapper(self: MobileNode, *args: Any, **kwargs: Any) -> list[Action]:
        if self.security is None:
            return method(self, *args, **kwargs)  # nothing to secure: no depth to keep
        self._depth += 1
        try:
            actions = method(self, *args, **kwargs)
        finally:
            self._depth -= 1
        return actions if self._depth else self._secured(actions)

    return wrapper


class MobileNode:
    def __init__(
        self,
        *,
        config: MobileNodeConfig,
        rng: random.Random,
        care_of_address: IPv6Address | None = None,
        care_of_at_start: IPv6Address | None = None,
        home_registration: bool = True,
        tunnel_relay: IPv6Address | None = None,
        security: SecurityPolicyDatabase | None = None,
        sequence_recovery: bool = True,
        home_test_relay: Callable[[float, bytes, mh.HomeTest], list[Action]] | None = None,
        home_sequence_recovery: bool = True,
    ) -> None:
        self.config = config
        self.constants = config.constants
        self.rng = rng
        self.home_address = config.home_address
        self._home_packed = config.home_address.packed  # compared with every packet sent
        self.home_agent = config.home_agent
        self.care_of_address = care_of_address  # None: at home
        self.care_of_at_start = care_of_at_start  # where ``start`` registers from
        self.home_registration = home_registration
        self.tunnel_relay = tunnel_relay
        self.sequence_recovery = sequence_recovery
        self.home_sequence_recovery = home_sequence_recovery
        self.home_test_relay = home_test_relay
        self.bul = BindingUpdateList(config.binding_update_list_size)
        # RFC 3776: every packet in and out through the security policy database (BU/BA in
        # transport mode, HoTI/HoT in the tunnel in tunnel mode) when one is given.
        self.security = security
        self._depth = 0  # nesting of command/event calls (see _secure_output)
        self.pipeline = NodePipeline(
            binding_allows=lambda now, home, care_of: False,  # no correspondent role here
            own_home_addresses=lambda: (self.home_address,),
            icmp_limiter=TokenBucket(config.icmp_error_rate, config.icmp_error_burst),
            binding_error_limiter=TokenBucket(
                config.binding_error_rate, config.binding_error_burst
            ),
        )
        self.counters = self.pipeline.counters
        # Starts of route optimization by tunnelled traffic: one bucket for all sources, and
        # each source's last start (oldest first, at most route_optimization_sources).
        self._route_optimization_starts = TokenBucket(
            config.route_optimization_start_rate, config.route_optimization_start_burst
        )
        self._route_optimization_started: dict[IPv6Address, float] = {}
        self._dhaad: tuple[int, int, float] | None = None  # identifier, tries, timeout
        self._mps: tuple[int, int, float] | None = None

    @property
    def care_of_address(self) -> IPv6Address | None:
        """The primary care-of address; None at home."""
        return self._care_of_address

    @care_of_address.setter
    def care_of_address(self, address: IPv6Address | None) -> None:
        self._care_of_address = address
        # asked several times per packet sent: kept, not compared each time
        self._at_home = address is None or address == self.home_address
        self._care_of_packed = None if address is None else address.packed

    @property
    def at_home(self) -> bool:
        return self._at_home

    # -- commands ----------------------------------------------------------------------------

    @_secure_output
    def register(self, now: float, *, sequence_after: int | None = None) -> list[Action]:
        """Home registration (RFC 3775 11.7.1) at the current care-of address, or
        deregistration if at home (11.5.4). A first one is numbered ``sequence_after`` + 1
        when given (see :meth:`take_home_registration`), else from a random number."""
        entry = self.bul.get(self.home_agent)
        if entry is None:
            first = self.rng.randrange(1 << 16) if sequence_after is None else sequence_after
            entry = BulEntry(
                destination=self.home_agent,
                home_address=self.home_address,
                home_registration=True,
                sequence=first & 0xFFFF,
                state=BulState.WAITING_ACK,
            )
            self.bul.put(entry)
        entry.deregistering = self.at_home
        entry.sequence = (entry.sequence + 1) & 0xFFFF
        entry.retransmit_timeout = (
            self.constants.initial_bindack_timeout_first_registration
            if entry.first_registration
            else self.constants.initial_bindack_timeout
        )
        transition(entry, BulInput.HOME_REGISTRATION_STARTED)
        return self._send_binding_update(now, entry)

    @_secure_output
    def deregister(self, now: float) -> list[Action]:
        """Shutting down away from home: delete every binding (Lifetime 0 Binding Updates to
        the home agent and to each correspondent, RFC 3775 11.7.1/11.7.2), retried until
        acknowledged; the entries leave the Binding Update List as acknowledgements arrive."""
        actions: list[Action] = []
        for entry in self.bul:
            if entry.home_registration:
                entry.deregistering = True
                entry.sequence = (entry.sequence + 1) & 0xFFFF
                entry.retransmit_timeout = self.constants.initial_bindack_timeout
                actions += self._send_binding_update(now, entry)
            elif entry.state is not BulState.FAILED:
                actions += self.clear_binding(now, entry.destination)
        return actions

    @_secure_output
    def move(self, now: float, care_of_address: IPv6Address | None) -> list[Action]:
        """Movement detected (RFC 3775 11.5): a new care-of address, or None for home.
        Re-registers with the home agent; correspondent bindings follow once it accepts
        (11.7.2), or are deregistered from home."""
        registration = self.bul.get(self.home_agent)
        if (
            care_of_address == self.care_of_address
            and self.home_registration
            and registration is not None
            and registration.state in (BulState.WAITING_ACK, BulState.BOUND)
        ):
            # RFC 3775 11.5.1: movement is a change of the primary care-of address. Told again
            # of the address in use, the registration in progress (or done) stands: restarting
            # it would reset the retransmission back-off of 11.8.
            return [Event("moved", {"care_of_address": care_of_address, "unchanged": True})]
        self.care_of_address = care_of_address
        actions: list[Action] = [Event("moved", {"care_of_address": care_of_address})]
        for entry in self.bul:
            if not entry.home_registration and entry.state is not BulState.FAILED:
                transition(entry, BulInput.MOVED)  # old binding no longer usable
        if self.home_registration:
            actions += self.register(now)
        else:
            actions += self._refresh_correspondents(now)
        return actions

    @_secure_output
    def start_route_optimization(
        self, now: float, correspondent: IPv6Address, *, send_binding_update: bool = True
    ) -> list[Action]:
        """Return routability with ``correspondent`` (RFC 3775 11.6) and, unless told to wait,
        the Binding Update once both tokens are in (11.7.2)."""
        entry = self.bul.get(correspondent)
        if entry is None:
            entry = BulEntry(
                destination=correspondent,
                home_address=self.home_address,
                home_registration=False,
                sequence=self.rng.randrange(1 << 16),
                state=BulState.RETURN_ROUTABILITY,
            )
            self.bul.put(entry)
        if entry.mobility_header_unsupported:
            return [Event("route_optimization_unsupported", {"correspondent": correspondent})]
        entry.send_when_ready = send_binding_update
        entry.deregistering = self.at_home
        return self._return_routability(now, entry)

    @_secure_output
    def complete_route_optimization(self, now: float, correspondent: IPv6Address) -> list[Action]:
        """Send the Binding Update for tokens obtained earlier ("RR in advance")."""
        entry = self.bul.get(correspondent)
        if entry is None or not self._tokens_ready(now, entry):
            return self.start_route_optimization(now, correspondent)
        entry.send_when_ready = True
        return self._correspondent_binding_update(now, entry)

    @_secure_output
    def clear_binding(self, now: float, correspondent: IPv6Address) -> list[Action]:
        """Delete the correspondent's binding (Lifetime 0), retrying until acknowledged."""
        entry = self.bul.get(correspondent)
        if entry is None:
            return []
        entry.deregistering = True
        entry.send_when_ready = True
        if self._tokens_ready(now, entry):
            return self._correspondent_binding_update(now, entry)
        return self._return_routability(now, entry)

    def export_correspondent(self, now: float, correspondent: IPv6Address) -> CorrespondentState:
        entry = self.bul.get(correspondent)
        if entry is None:
            raise KeyError(f"no binding update list entry for {correspondent}")
        tokens = entry.tokens
        return CorrespondentState(
            correspondent=correspondent,
            home_address=entry.home_address,
            sequence=entry.sequence,
            home_nonce_index=tokens.home_nonce_index,
            home_keygen_token=tokens.home_keygen_token,
            home_token_age=None if tokens.home_keygen_token is None else now - tokens.home_received,
            care_of_nonce_index=tokens.care_of_nonce_index,
            care_of_keygen_token=tokens.care_of_keygen_token,
            care_of_token_age=(
                None if tokens.care_of_keygen_token is None else now - tokens.care_of_received
            ),
            care_of_for=tokens.care_of_for,
        )

    def import_correspondent(self, now: float, state: CorrespondentState) -> None:
        """Continue another member's binding with ``state.correspondent``: the next Binding
        Update uses ``state.sequence + 1``; a fresh home keygen token is reused, and a fresh
        care-of keygen token obtained for this mobile node's care-of address (RFC 3775 5.2.7:
        both stay usable for MAX_TOKEN_LIFETIME; a member binding the client back after its
        handoff failed then sends its Binding Update at once)."""
        if state.home_address != self.home_address:
            raise ValueError("state is for another home address")
        held = self.bul.get(state.correspondent)
        if held is not None and held.state is BulState.READY:
            # return routability already ran here ("RR in advance", a PREPARE): its tokens,
            # the care-of keygen token among them, are fresher than any imported; the entry
            # stays READY, its Binding Update not sent yet, and continues the sequence
            held.sequence = state.sequence
            held.binding_update_sent = True  # the other member's binding stands
            return
        tokens = Tokens()
        if state.home_keygen_token is not None and state.home_token_age is not None:
            tokens.home_nonce_index = state.home_nonce_index
            tokens.home_keygen_token = state.home_keygen_token
            tokens.home_received = now - state.home_token_age
        if (
            state.care_of_keygen_token is not None
            and state.care_of_token_age is not None
            and state.care_of_for is not None
            and state.care_of_for == self.care_of_address
        ):
            tokens.care_of_nonce_index = state.care_of_nonce_index
            tokens.care_of_keygen_token = state.care_of_keygen_token
            tokens.care_of_received = now - state.care_of_token_age
            tokens.care_of_for = state.care_of_for
        self.bul.put(
            BulEntry(
                destination=state.correspondent,
                home_address=state.home_address,
                home_registration=False,
                sequence=state.sequence,
                state=BulState.RETURN_ROUTABILITY,
                tokens=tokens,
                binding_update_sent=True,  # the other member's binding stands
            )
        )

    def forget_correspondent(self, now: float, correspondent: IPv6Address) -> list[Action]:
        """Drop the Binding Update List entry for ``correspondent`` without telling it: another
        member holds (or is about to hold) the correspondent's binding. Its timers stop; a late
        acknowledgement finds no entry and is ignored."""
        if self.bul.get(correspondent) is None:
            return []
        self.bul.remove(correspondent)
        return [
            CancelTimer((name, correspondent))
            for name in ("bu_retransmit", "bu_send", "refresh", "rr_retransmit", "expiry")
        ]

    @_secure_output
    def take_home_registration(
        self,
        now: float,
        *,
        home_agent: IPv6Address,
        security: SecurityPolicyDatabase | None,
        home_test_relay: Callable[[float, bytes, mh.HomeTest], list[Action]] | None,
        sequence_after: int | None = None,
    ) -> list[Action]:
        """A distributed-server member becomes the contact node (DSERVER 5, takeover):
        from now on it registers the home address at ``home_agent`` itself, from its
        care-of address, under ``security``, and talks to the home agent directly. Its
        correspondents' bindings stay as they are. The first Binding Update is numbered
        ``sequence_after`` + 1 (above the previous contact node's last, as it reported it);
        one numbered below the last the home agent accepted is answered with status 135 and
        sent again above it (RFC 3775 11.7.3)."""
        self.home_agent = home_agent
        self.tunnel_relay = None
        self.home_registration = True
        self.security = security
        self.home_test_relay = home_test_relay
        return self.register(now, sequence_after=sequence_after)

    @_secure_output
    def register_above(self, now: float, sequence: int) -> list[Action]:
        """The home registration again, numbered above ``sequence`` (a BA 135's, RFC 3775
        11.7.3), when the caller decided to outbid it (see ``home_sequence_recovery``)."""
        entry = self.bul.get(self.home_agent)
        if entry is not None and entry.home_registration:
            entry.sequence = sequence & 0xFFFF
        return self.register(now)

    def relay_through(self, now: float, relay: IPv6Address) -> list[Action]:
        """The opposite: another member registers the home address now (it took over, or
        this one stepped down); packets for the home agent go through ``relay``, the contact
        node. This node's home registration is dropped without a deregistration, which would
        delete the binding the other one holds (same home address)."""
        actions: list[Action] = []
        entry = self.bul.get(self.home_agent)
        if entry is not None and entry.home_registration:
            actions += self.forget_correspondent(now, self.home_agent)
        self.home_agent = relay
        self.tunnel_relay = relay
        self.home_registration = False
        self.security = None
        self.home_test_relay = None
        return actions

    @_secure_output
    def rebind(self, now: float, correspondent: IPv6Address, after: int) -> list[Action]:
        """Bind ``correspondent`` here again with a sequence number above ``after`` (a donor
        taking its client back, DSERVER 4 rule 3); return routability first if needed."""
        entry = self.bul.get(correspondent)
        if entry is None:
            return []
        entry.sequence = after & 0xFFFF
        entry.send_when_ready = True
        entry.deregistering = False
        if entry.state is BulState.WAITING_ACK:
            entry.retransmit_timeout = self.constants.initial_bindack_timeout
            entry.sequence = (entry.sequence + 1) & 0xFFFF
            return [
                CancelTimer(("bu_retransmit", correspondent)),
                *self._send_binding_update(now, entry),
            ]
        if entry.state is BulState.FAILED:
            return []
        return self.complete_route_optimization(now, correspondent)

    @_secure_output
    def discover_home_agent(self, now: float) -> list[Action]:
        """Dynamic Home Agent Address Discovery (RFC 3775 11.4.1)."""
        identifier = self.rng.randrange(1 << 16)
        self._dhaad = (identifier, 0, self.constants.initial_dhaad_timeout)
        return self._send_dhaad(now)

    @_secure_output
    def solicit_mobile_prefixes(self, now: float) -> list[Action]:
        """Mobile Prefix Solicitation (RFC 3775 11.4.2), to the home agent."""
        if self.at_home:
            return []
        identifier = self.rng.randrange(1 << 16)
        self._mps = (identifier, 0, self.constants.prefix_adv_timeout)
        return self._send_mps(now)

    # -- the engine contract (mip6.core.engine) ------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """The first registration, from ``care_of_at_start`` when one was configured."""
        if self.care_of_at_start is None:
            return []
        return self.move(now, self.care_of_at_start)

    def upper_layer_error(
        self, now: float, invoking: bytes, message: UpperLayerError
    ) -> list[Action]:
        return self.pipeline.upper_layer_error(now, invoking, message, self.send)

    def send_overhead(self, now: float, source: bytes, destination: bytes) -> int:
        """What :meth:`send` adds: nothing at home or from another address, a Home Address
        option through a correspondent binding, else the reverse tunnel."""
        if self.at_home or source != self._home_packed:
            return 0
        entry = self.bul.get_packed(destination)
        if (
            entry is not None
            and not entry.home_registration
            and entry.usable(now, self.care_of_address)
        ):
            return HOME_ADDRESS_OPTION_OVERHEAD
        return TUNNEL_OVERHEAD

    def fast_version(self) -> Hashable:
        """What the decisions below depend on: where the node is, its tunnels' other ends and
        its bindings (the Binding Update List's version, which every change of what
        fast_decision reads of an entry moves)."""
        return (
            self._at_home,
            self.care_of_address,
            self.home_agent,
            self.tunnel_relay,
            self.bul.version,
        )

    def fast_decision(
        self, now: float, ingress: Ingress, source: bytes, destination: bytes
    ) -> FastDecision | None:
        """What :meth:`send` and :meth:`handle_packet` do to data packets with these
        addresses; nothing under a security policy database (which sees every packet)."""
        if self.security is not None:
            return None
        if ingress is Ingress.TUNNEL:
            # _tunnelled_fast: what the tunnel brings for the home address is delivered
            if destination != self._home_packed:
                return None
            return FastDecision(action=FastAction.FORWARD, deliver=True, verify=True)
        if ingress is Ingress.NETWORK:
            # RFC 3775 11.3.2: the tunnel from the home agent (or the relay, 10.4.6). From the
            # home agent it is the engine's reason to start route optimization (11.7.2), so
            # those stay with the engine unless route optimization is off.
            care_of = self.care_of_address
            senders = {
                self.tunnel_relay,
                None if self.config.route_optimization else self.home_agent,
            }
            if (
                care_of is not None
                and destination == care_of.packed
                and IPv6Address(source) in senders - {None}
            ):
                return FastDecision(action=FastAction.DECAPSULATE)
            # NodePipeline.data_fast_path: delivered as they came, or with a correspondent's
            # type 2 routing header removed (RFC 3775 11.3.3). The fast path checks what the
            # engine's parser would (verify), so it takes a subset.
            if care_of is not None and destination == care_of.packed:
                return FastDecision(
                    action=FastAction.REMOVE_TYPE2_ROUTING,
                    deliver=True,
                    verify=True,
                    address=self._home_packed,
                )
            return FastDecision(action=FastAction.FORWARD, deliver=True, verify=True)
        if self.at_home or source != self._home_packed:
            return FastDecision(action=FastAction.FORWARD)
        assert self.care_of_address is not None
        entry = self.bul.get_packed(destination)
        if (
            entry is not None
            and not entry.home_registration
            and entry.usable(now, self.care_of_address)
        ):
            # RFC 3775 11.3.1: from the care-of address, the home address in the option
            return FastDecision(
                action=FastAction.INSERT_HOME_ADDRESS_OPTION,
                address=self.care_of_address.packed,
                expires=entry.expires,
                binding=entry.destination,
            )
        # RFC 3775 11.3.1: the reverse tunnel to the home agent (encapsulate's Hop Limit)
        return FastDecision(
            action=FastAction.ENCAPSULATE,
            address=self.home_agent.packed,
            source=self.care_of_address.packed,
            hop_limit=64,
        )

    def command(self, now: float, name: str, argument: Any) -> list[Action]:
        """``move`` (a care-of address, or None for home), ``route_optimize`` (a
        correspondent's address), ``register``."""
        if name == "move":
            return self.move(now, IPv6Address(argument) if argument else None)
        if name == "route_optimize":
            return self.start_route_optimization(now, IPv6Address(argument))
        if name == "register":
            return self.register(now)
        raise UnknownCommand(name, "mobile_node")

    def stop(self, now: float) -> list[Action]:
        """Away from home, delete every binding (:meth:`deregister`)."""
        return [] if self.at_home else self.deregister(now)

    def stopped(self) -> bool:
        return self.at_home or not len(self.bul)

    def describe(self, what: str, now: float) -> dict[str, Any]:
        show.check(what)
        if what in ("bul", "rr"):
            return show.rows(what, show.bul_rows(self.bul, what, now))
        if what == "stats":
            return show.counters(what, ("", self.counters))
        return show.rows(what, [])

    # -- data path -----------------------------------------------------------------------------

    @_secure_output
    def send(self, now: float, data: bytes) -> list[Action]:
        """A packet from the local upper layer, normally from the home address. Away from
        home: a Home Address option when the correspondent holds a binding (RFC 3775
        11.3.1), else the reverse tunnel through the home agent (11.3.1, 10.4.5)."""
        if len(data) >= 40 and data[6] in _PLAIN_UPPER:
            # no extension header (what the host's TCP and UDP send): no walk needed
            source, destination, upper = data[8:24], data[24:40], data[6]
        else:
            try:
                chain = walk(data)
            except WireError:
                self._count("send_malformed")
                return []
            source, destination, upper = chain.source, chain.destination, chain.upper_protocol
        if self.at_home or source != self._home_packed:
            return [Transmit(data)]
        assert self.care_of_address is not None
        entry = self.bul.get_packed(destination)
        if (
            entry is not None
            and not entry.home_registration
            and entry.usable(now, self.care_of_address)
            and upper != protocols.MOBILITY
        ):
            return [Transmit(insert_home_address_option(data, self.care_of_address))]
        return [Transmit(encapsulate(data, self.care_of_address, self.home_agent))]

    # -- events in ---------------------------------------------------------------------------

    @_secure_output
    def handle_packet(self, now: float, data: bytes) -> list[Action]:
        if self.security is not None:
            result = self.security.input(data)
            if isinstance(result, Dropped):
                self._count(f"esp_drop_{result.cause}")
                return [Event("drop", {"reason": f"ESP {result.cause}"})]
            data = result.data
        return self._receive(now, data)

    def _receive(self, now: float, data: bytes) -> list[Action]:
        delivered = self.pipeline.data_fast_path(data)
        if delivered is not None:
            return [Deliver(delivered)]
        if data[6] == protocols.IPV6 and len(data) >= 80:
            tunnelled = self._tunnelled_fast(now, data)
            if tunnelled is not None:
                return tunnelled
        inbound, actions = self.pipeline.receive(now, data)
        if inbound is None:
            return actions
        packet = inbound.packet
        if isinstance(packet.payload, Ipv6Packet):
            return actions + self._tunnelled(now, inbound)
        return actions + self._dispatch(now, inbound, tunnelled_from=None)

    @_secure_output
    def handle_timer(self, now: float, token: Hashable) -> list[Action]:
        match token:
            case ("bu_retransmit", IPv6Address() as destination):
                return self._retransmit(now, destination)
            case ("bu_send", IPv6Address() as destination):
                entry = self.bul.get(destination)
                return [] if entry is None else self._send_binding_update(now, entry)
            case ("refresh", IPv6Address() as destination):
                return self._refresh(now, destination)
            case ("rr_retransmit", IPv6Address() as destination):
                return self._rr_retransmit(now, destination)
            case ("expiry", IPv6Address() as destination):
                entry = self.bul.get(destination)
                if entry is not None and entry.state is BulState.BOUND and entry.expires <= now:
                    transition(entry, BulInput.EXPIRED)
                    return [Event("binding_expired", {"destination": destination})]
            case ("dhaad",):
                return self._dhaad_timeout(now)
            case ("mps",):
                return self._mps_timeout(now)
        return []

    def _tunnelled_fast(self, now: float, data: bytes) -> list[Action] | None:
        """:meth:`_tunnelled` for the common tunnel: an outer header with no extension
        header around a data packet the inner pipeline's fast path takes (see
        :meth:`NodePipeline.data_fast_path`), from the home agent or relay to the care-of
        address, for the home address. The same checks and the same result, without parsing
        either packet into a Repr; None for anything else (the full path decides)."""
        care_of = self.care_of_address
        if care_of is None or 40 + ((data[4] << 8) | data[5]) != len(data):
            return None
        inner = data[40:]
        if (
            data[24:40] != care_of.packed
            or inner[24:40] != self._home_packed
            or (delivered := self.pipeline.data_fast_path(inner)) is None
        ):
            return None
        sender = IPv6Address(data[8:24])
        if sender != self.home_agent and sender != self.tunnel_relay:
            return None
        actions: list[Action] = [Deliver(delivered)]
        if sender == self.home_agent and self.config.route_optimization:
            actions += self.route_optimize_tunnelled_sender(now, IPv6Address(inner[8:24]))
        return actions

    def _tunnelled(self, now: float, inbound: Inbound) -> list[Action]:
        """RFC 3775 11.3.2 (and 10.4.6): packets the home agent (or, for a distributed
        server, the relay node) tunnels to the care-of address."""
        outer = inbound.packet
        inner_packet = outer.payload
        assert isinstance(inner_packet, Ipv6Packet)
        senders = {self.home_agent} | ({self.tunnel_relay} if self.tunnel_relay else set())
        if (
            outer.source not in senders
            or outer.destination != self.care_of_address
            or inner_packet.destination != self.home_address
        ):
            self._count("tunnel_refused")
            return [Event("drop", {"reason": "tunnelled packet not from our home agent"})]
        inner_bytes = inbound.data[40 + sum(len(h.emit(0)) for h in outer.extension_headers) :]
        inner, actions = self.pipeline.receive(now, inner_bytes)
        if inner is None:
            return actions
        return actions + self._dispatch(now, inner, tunnelled_from=outer.source)

    def _dispatch(
        self, now: float, inbound: Inbound, *, tunnelled_from: IPv6Address | None
    ) -> list[Action]:
        payload = inbound.packet.payload
        if isinstance(payload, mh.BindingAcknowledgement):
            return self._binding_acknowledgement(now, inbound, payload)
        if isinstance(payload, mh.HomeTest):
            return self._home_test(now, inbound, payload)
        if isinstance(payload, mh.CareOfTest):
            return self._care_of_test(now, inbound, payload)
        if isinstance(payload, mh.BindingRefreshRequest):
            return self._binding_refresh_request(now, inbound)
        if isinstance(payload, mh.BindingError):
            return self._binding_error(now, inbound, payload)
        if payload.protocol == protocols.MOBILITY:
            self._count(f"ignored_{type(payload).__name__}")
            return []
        if isinstance(payload, icmp.HomeAgentAddressDiscoveryReply):
            return self._dhaad_reply(now, payload)
        if isinstance(payload, icmp.MobilePrefixAdvertisement):
            return self._mobile_prefix_advertisement(now, inbound, payload)
        actions: list[Action] = [Deliver(inbound.delivered())]
        if tunnelled_from == self.home_agent and self.config.route_optimization:
            actions += self.route_optimize_tunnelled_sender(now, inbound.packet.source)
        return actions

    @_secure_output
    def route_optimize_tunnelled_sender(
        self, now: float, correspondent: IPv6Address
    ) -> list[Action]:
        """RFC 3775 11.7.2: traffic arriving through the home agent's tunnel is a reason to
        start route optimization with its sender, within the checks and limits below."""
        if (
            self.bul.get(correspondent) is None
            and not self.at_home
            and self._may_route_optimize_with(correspondent)
            and self._route_optimization_start_allowed(now, correspondent)
        ):
            return self.start_route_optimization(now, correspondent)
        return []

    def _may_route_optimize_with(self, correspondent: IPv6Address) -> bool:
        """Whether the inner source of a tunnelled packet can be a correspondent node.

        Not this node's own home or care-of address, nor its home agent (which holds its home
        registration and would answer a correspondent registration with BA 139, 9.5.1). And
        only a global unicast address (RFC 4291 2.4: everything but unspecified, loopback,
        multicast and link-local; the check the correspondent applies to a Binding Update's
        addresses, RFC 3775 9.5.1), minus ::/8 (RFC 4291 2.5.5: IPv4-compatible addresses are
        deprecated, IPv4-mapped ones never appear in IPv6 headers, the rest is reserved by the
        IETF). Unique local addresses (RFC 4193 fc00::/7) are allowed: they are unicast of
        global scope (RFC 4193 3), and a correspondent in the same site is a real one."""
        if correspondent in (self.home_address, self.care_of_address, self.home_agent):
            return False
        return unicast_routable(correspondent) and int(correspondent) >> 120 != 0

    def _route_optimization_start_allowed(self, now: float, correspondent: IPv6Address) -> bool:
        """The rate limits and bounds on starts by tunnelled traffic (see MobileNodeConfig):
        one start per source per retry interval, a token bucket over all sources, a bounded
        memory of sources, and room in the Binding Update List (whose ``put`` refuses to grow
        past its capacity; one place is left for the home registration)."""
        started = self._route_optimization_started
        interval = self.config.route_optimization_retry_interval_s
        last = started.get(correspondent)
        if last is not None and now - last < interval:
            self._count("route_optimization_start_limited_per_source")
            return False
        for source, at in list(started.items()):  # oldest first: forget what has aged out
            if now - at < interval:
                break
            del started[source]
        if (
            len(started) >= self.config.route_optimization_sources
            or len(self.bul) + 1 >= self.bul.capacity
            or not self._route_optimization_starts.allow(now)
        ):
            self._count("route_optimization_start_limited")
            return False
        started[correspondent] = now  # any earlier start of it has aged out above
        return True

    # -- Binding Updates out (RFC 3775 11.7) --------------------------------------------------

    def _send_binding_update(self, now: float, entry: BulEntry) -> list[Action]:
        """Send ``entry``'s current Binding Update, within MAX_UPDATE_RATE per second (11.8)."""
        # The window is written as the timer below computes it (t + 1.0), not as now - t:
        # the two disagree in floating point (1.001 - 0.001 < 1.0), and a timer that fires
        # at t + 1.0 would find the window still full and re-arm at the same instant forever.
        rate = self.constants.max_update_rate
        if len(entry.recent_sends) >= rate:  # else the window cannot be full: not filtered
            recent = [t for t in entry.recent_sends if t + 1.0 > now]
            if len(recent) >= rate:
                return [StartTimer(recent[-rate] + 1.0, ("bu_send", entry.destination))]
        entry.recent_sends.append(now)
        if entry.home_registration:
            packet = self._home_binding_update(entry).emit()
        else:
            correspondent_packet = self._correspondent_packet(now, entry)
            if correspondent_packet is None:
                return self._return_routability(now, entry)
            packet = correspondent_packet
        entry.care_of_address = None if self.at_home else self.care_of_address
        entry.binding_update_sent = True
        transition(entry, BulInput.BU_SENT)
        entry.first_registration = entry.first_registration and entry.home_registration
        self._count("binding_update_sent")
        return [
            Transmit(packet),
            StartTimer(now + entry.retransmit_timeout, ("bu_retransmit", entry.destination)),
            Event(
                "binding_update_sent",
                {
                    "destination": entry.destination,
                    "sequence": entry.sequence,
                    "lifetime": entry.lifetime,
                    "home_registration": entry.home_registration,
                },
            ),
        ]

    def _home_binding_update(self, entry: BulEntry) -> Ipv6Packet:
        """RFC 3775 11.7.1: A and H set; from the care-of address with a Home Address option,
        or from the home address with Lifetime 0 when returning home (11.5.4)."""
        lifetime = 0.0 if entry.deregistering else self.config.home_registration_lifetime
        entry.lifetime = lifetime
        fields = {
            "sequence": entry.sequence,
            "acknowledge": True,
            "home_registration": True,
            "lifetime_units_4s": min(int(lifetime) // 4, 0xFFFF),
        }
        if self.at_home:
            bu = mh.BindingUpdate(**fields).aligned()  # type: ignore[arg-type]
            return Ipv6Packet(source=self.home_address, destination=entry.destination, payload=bu)
        assert self.care_of_address is not None
        # RFC 3775 11.7.1: the Alternate Care-of Address option goes in every home
        # registration: ESP protects the Mobility Header, not the source address carrying the
        # care-of address (6.2.5).
        bu = mh.BindingUpdate(
            **fields,  # type: ignore[arg-type]
            options=(mh.AlternateCareOfAddress(alternate_care_of_address=self.care_of_address),),
        ).aligned()
        return Ipv6Packet(
            source=self.care_of_address,
            destination=entry.destination,
            extension_headers=(
                DestinationOptions.aligned([HomeAddressOption(home_address=self.home_address)]),
            ),
            payload=bu,
        )

    def _correspondent_packet(self, now: float, entry: BulEntry) -> bytes | None:
        """RFC 3775 11.7.2: Nonce Indices and Binding Authorization Data computed with Kbm;
        None when the tokens are not fresh enough to compute it. Away from home, by its
        faster twin :func:`_authorized_bu_packet`."""
        if not self._tokens_ready(now, entry):
            return None
        tokens = entry.tokens
        assert tokens.home_keygen_token is not None and tokens.home_nonce_index is not None
        lifetime = (
            0.0
            if entry.deregistering
            else min(
                self.config.correspondent_registration_lifetime,
                self.constants.max_rr_binding_lifetime,
            )
        )
        entry.lifetime = lifetime
        if self.at_home:
            return self._correspondent_packet_codec(entry, self.home_address, lifetime).emit()
        assert self._care_of_packed is not None
        return _authorized_bu_packet(
            self._care_of_packed,
            entry.destination.packed,
            self._home_packed,
            entry.sequence,
            int(lifetime) // 4,
            tokens.home_nonce_index,
            tokens.care_of_nonce_index or 0,
            self._kbm(entry),
        )

    def _correspondent_packet_codec(
        self, entry: BulEntry, care_of: IPv6Address, lifetime: float
    ) -> Ipv6Packet:
        """The Binding Update of :meth:`_correspondent_packet` built with the codec: from home
        always, away from home in the tests that hold :func:`_authorized_bu_packet` to it."""
        tokens = entry.tokens
        assert tokens.home_nonce_index is not None
        bu = mh.BindingUpdate(
            sequence=entry.sequence,
            acknowledge=True,
            lifetime_units_4s=int(lifetime) // 4,
            options=(
                mh.NonceIndices(
                    home_nonce_index=tokens.home_nonce_index,
                    # RFC 3775 5.2.6: from home the care-of nonce index is ignored.
                    care_of_nonce_index=0 if self.at_home else tokens.care_of_nonce_index or 0,
                ),
                mh.BindingAuthorizationData(),
            ),
        ).aligned()
        kbm = self._kbm(entry)
        authenticator = rr.authenticator(
            kbm, care_of, entry.destination, mh.mobility_data_for_authenticator(bu)
        )
        bu = replace(
            bu, options=(*bu.options[:-1], mh.BindingAuthorizationData(authenticator=authenticator))
        )
        if self.at_home:
            return Ipv6Packet(source=self.home_address, destination=entry.destination, payload=bu)
        return Ipv6Packet(
            source=care_of,
            destination=entry.destination,
            extension_headers=(
                DestinationOptions.aligned([HomeAddressOption(home_address=self.home_address)]),
            ),
            payload=bu,
        )

    def _correspondent_binding_update(self, now: float, entry: BulEntry) -> list[Action]:
        entry.sequence = (entry.sequence + 1) & 0xFFFF
        entry.retransmit_timeout = self.constants.initial_bindack_timeout
        return self._send_binding_update(now, entry)

    def _kbm(self, entry: BulEntry) -> bytes:
        tokens = entry.tokens
        assert tokens.home_keygen_token is not None
        # RFC 3775 5.2.5: from home, Kbm = SHA1(home keygen token).
        care_of_token = None if self.at_home else tokens.care_of_keygen_token
        return rr.binding_management_key(tokens.home_keygen_token, care_of_token)

    def _retransmit(self, now: float, destination: IPv6Address) -> list[Action]:
        """RFC 3775 11.8: no acknowledgement yet; double the timeout up to MAX_BINDACK_TIMEOUT
        and keep retrying at that interval, with a new Sequence Number each time."""
        entry = self.bul.get(destination)
        if entry is None or entry.state is not BulState.WAITING_ACK:
            return []
        entry.retransmit_timeout = min(
            entry.retransmit_timeout * 2, self.constants.max_bindack_timeout
        )
        entry.sequence = (entry.sequence + 1) & 0xFFFF
        self._count("binding_update_retransmitted")
        return self._send_binding_update(now, entry)

    # -- Binding Acknowledgements in (RFC 3775 11.7.3) ------------------------------------------

    def _binding_acknowledgement(
        self, now: float, inbound: Inbound, ba: mh.BindingAcknowledgement
    ) -> list[Action]:
        entry = self.bul.get(inbound.packet.source)
        if entry is None or entry.state is not BulState.WAITING_ACK:
            self._count("ba_unexpected")
            return []
        if not entry.home_registration and ba.status not in EXPIRED_NONCE_STATUSES:
            # RFC 3775 11.7.3: a correspondent's BA must carry a valid authenticator, computed
            # (5.2.6, 6.2.7) over the Mobility Data as received: Reserved bytes and padding
            # contents another sender set differently from our emission are covered as sent.
            # Compared in constant time, as the correspondent compares a BU's.
            authorization = ba.find(mh.BindingAuthorizationData)
            care_of = self.home_address if self.at_home else self.care_of_address
            assert care_of is not None
            header = inbound.layers[-1]
            if (
                not isinstance(authorization, mh.BindingAuthorizationData)
                or not self._tokens_ready(now, entry)
                or not hmac.compare_digest(
                    rr.authenticator(
                        self._kbm(entry),
                        care_of,
                        entry.destination,
                        mh.received_mobility_data(inbound.data[header.start : header.end]),
                    ),
                    authorization.authenticator,
                )
            ):
                self._count("ba_bad_authenticator")
                return [Event("drop", {"reason": "BA authenticator does not verify"})]
        recovery = (
            self.home_sequence_recovery if entry.home_registration else self.sequence_recovery
        )
        if ba.status == Status.SEQUENCE_NUMBER_OUT_OF_WINDOW and not recovery:
            # A member of a distributed server: the client took a later Binding Update from
            # another member (DSERVER 4 rule 3), or the home agent holds C for a member that
            # took the contact address over (DSERVER 5). Whether to outbid it is the member's
            # decision (:meth:`rebind`, :meth:`register_above`); the entry waits, its
            # retransmissions stopped.
            return [
                CancelTimer(("bu_retransmit", entry.destination)),
                Event(
                    "sequence_out_of_window",
                    {"destination": entry.destination, "sequence": ba.sequence},
                ),
            ]
        if ba.status == Status.SEQUENCE_NUMBER_OUT_OF_WINDOW:
            # RFC 3775 11.7.3: take the Sequence Number from the BA and send a new BU.
            entry.sequence = (ba.sequence + 1) & 0xFFFF
            return [
                CancelTimer(("bu_retransmit", entry.destination)),
                *self._send_binding_update(now, entry),
            ]
        if ba.sequence != entry.sequence:
            self._count("ba_stale_sequence")
            return []
        actions: list[Action] = [CancelTimer(("bu_retransmit", entry.destination))]
        if ba.status in EXPIRED_NONCE_STATUSES and not entry.home_registration:
            # RFC 3775 11.7.3: get fresh tokens for what expired, then send the BU again. The
            # nonces are the return routability procedure's (5.2.7), which a home registration
            # does not use: from the home agent these statuses fall through to the rejection
            # rule below ("If the Status field indicates that the Binding Update was rejected
            # (the Status field is greater than or equal to 128) ... the mobile node SHOULD
            # record in its Binding Update List that future Binding Updates SHOULD NOT be sent
            # to this destination"), never to return routability with the home agent.
            if ba.status != Status.EXPIRED_CARE_OF_NONCE_INDEX:
                entry.tokens.home_keygen_token = None
            if ba.status != Status.EXPIRED_HOME_NONCE_INDEX:
                entry.tokens.care_of_keygen_token = None
            entry.send_when_ready = True
            return actions + self._return_routability(now, entry)
        if (
            entry.home_registration
            and entry.deregistering
            and ba.status == Status.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE
        ):
            # RFC 3775 10.3.2: a home agent with no home registration for us answers a
            # deregistration with 133. Every retransmission carries a new Sequence Number
            # (11.8), so an earlier one that arrived late (a neighbour resolution on the home
            # link, a lost acknowledgement) has already deleted it: the deregistration holds.
            self._count("deregistration_found_no_binding")
        elif not ba.accepted:
            transition(entry, BulInput.BA_REJECTED)
            return [
                *actions,
                Event(
                    "binding_rejected",
                    {
                        "destination": entry.destination,
                        "status": ba.status,
                        "sequence": ba.sequence,
                    },
                ),
            ]
        if entry.deregistering:
            self.bul.remove(entry.destination)
            actions += [
                CancelTimer(("refresh", entry.destination)),
                CancelTimer(("expiry", entry.destination)),
            ]
            actions.append(Event("deregistered", {"destination": entry.destination}))
            if entry.home_registration:
                # RFC 3775 11.5.4: back home, correspondents lose their bindings too.
                actions += self._refresh_correspondents(now)
            return actions
        sent_at = entry.recent_sends[-1] if entry.recent_sends else now
        granted = min(entry.lifetime, ba.lifetime_s)
        entry.granted = granted
        entry.expires = sent_at + granted  # RFC 3775 11.7.3: counted from when the BU was sent
        transition(entry, BulInput.BA_ACCEPTED)
        entry.acknowledged_sequence = ba.sequence
        entry.first_registration = False
        actions += [
            StartTimer(
                sent_at + granted * (1 - self.config.refresh_lead), ("refresh", entry.destination)
            ),
            StartTimer(entry.expires, ("expiry", entry.destination)),
        ]
        if entry.home_registration:
            actions.append(
                Event(
                    "home_registered",
                    {"care_of_address": self.care_of_address, "lifetime": granted},
                )
            )
            actions += self._refresh_correspondents(now)
        else:
            actions.append(
                Event(
                    "route_optimized",
                    {"correspondent": entry.destination, "lifetime": granted},
                )
            )
        return actions

    def _refresh_correspondents(self, now: float) -> list[Action]:
        """RFC 3775 11.7.2: after the home registration, bring correspondent bindings to the
        new care-of address (or delete them, from home)."""
        actions: list[Action] = []
        for entry in self.bul:
            if entry.home_registration or entry.state is BulState.FAILED:
                continue
            if not entry.send_when_ready:
                # return routability in advance (start_route_optimization without the BU):
                # its owner sends the Binding Update, with the number it chooses, when it
                # chooses (complete_route_optimization). A distributed server's contact node
                # refreshing its home registration sent one here for an acceptor's PREPARE,
                # with a number of its own, and took the client from the member serving it.
                continue
            if (
                entry.care_of_address != (None if self.at_home else self.care_of_address)
                or entry.state is not BulState.BOUND
            ):
                entry.deregistering = self.at_home
                entry.send_when_ready = True
                actions += self._return_routability(now, entry)
        return actions

    def _refresh(self, now: float, destination: IPv6Address) -> list[Action]:
        entry = self.bul.get(destination)
        if entry is None or entry.state is not BulState.BOUND:
            return []
        if entry.home_registration:
            return self.register(now)
        entry.send_when_ready = True
        if self._tokens_ready(now, entry):
            return self._correspondent_binding_update(now, entry)
        return self._return_routability(now, entry)

    # -- return routability (RFC 3775 11.6) -----------------------------------------------------

    def _tokens_ready(self, now: float, entry: BulEntry) -> bool:
        tokens = entry.tokens
        lifetime = self.constants.max_token_lifetime
        home_ok = tokens.home_keygen_token is not None and now - tokens.home_received <= lifetime
        if self.at_home:
            return home_ok
        return home_ok and self._care_of_token_fresh(now, tokens)

    def _care_of_token_fresh(self, now: float, tokens: Tokens) -> bool:
        """A care-of keygen token for the current care-of address, younger than
        MAX_TOKEN_LIFETIME (RFC 3775 5.2.7)."""
        return (
            tokens.care_of_keygen_token is not None
            # identity first: IPv6Address.__eq__ is Python code, and the tokens usually hold
            # the very address object they were obtained for
            and (
                tokens.care_of_for is self.care_of_address
                or tokens.care_of_for == self.care_of_address
            )
            and now - tokens.care_of_received <= self.constants.max_token_lifetime
        )

    def _return_routability(self, now: float, entry: BulEntry) -> list[Action]:
        if self._tokens_ready(now, entry):
            if entry.send_when_ready:
                return self._correspondent_binding_update(now, entry)
            transition(entry, BulInput.TOKENS_FRESH)
            return [Event("return_routability_complete", {"correspondent": entry.destination})]
        transition(entry, BulInput.RR_STARTED)
        entry.rr_timeout = self.constants.initial_bindack_timeout
        return self._send_test_inits(now, entry)

    def _send_test_inits(self, now: float, entry: BulEntry, *, again: bool = False) -> list[Action]:
        """HoTI through the home agent (or relay) from the home address; CoTI directly from the
        care-of address. Only the tests whose tokens are missing or stale are sent. ``again``:
        a retransmission, which is the message sent before (RFC 3775 11.8 "retransmit the
        message"), its cookie too, so that an answer to an earlier copy still matches: drawn
        anew, a Home Test slower than the retransmission interval (a loaded home agent, or
        many procedures at once through it) was dropped every time, and the procedure never
        ended."""
        lifetime = self.constants.max_token_lifetime
        tokens = entry.tokens
        actions: list[Action] = []
        if tokens.home_keygen_token is None or now - tokens.home_received > lifetime:
            if not again or entry.home_init_cookie is None:
                entry.home_init_cookie = self.rng.randbytes(8)
            hoti = _test_init_packet(
                self.home_address,
                entry.destination,
                mh.MhType.HOME_TEST_INIT,
                entry.home_init_cookie,
            )
            if self.at_home:
                actions.append(Transmit(hoti))
            else:
                assert self.care_of_address is not None
                via = self.tunnel_relay or self.home_agent
                actions.append(Transmit(encapsulate(hoti, self.care_of_address, via)))
        if not self.at_home and not self._care_of_token_fresh(now, tokens):
            assert self.care_of_address is not None
            if not again or entry.care_of_init_cookie is None:
                entry.care_of_init_cookie = self.rng.randbytes(8)
            coti = _test_init_packet(
                self.care_of_address,
                entry.destination,
                mh.MhType.CARE_OF_TEST_INIT,
                entry.care_of_init_cookie,
            )
            actions.append(Transmit(coti))
        self._count("return_routability_started")
        actions.append(StartTimer(now + entry.rr_timeout, ("rr_retransmit", entry.destination)))
        return actions

    def _rr_retransmit(self, now: float, destination: IPv6Address) -> list[Action]:
        entry = self.bul.get(destination)
        if entry is None or entry.state is not BulState.RETURN_ROUTABILITY:
            return []
        # RFC 3775 11.8: back off exponentially, then keep trying at the maximum interval for
        # as long as the binding is wanted (a move or clear_binding changes what is wanted).
        entry.rr_timeout = min(entry.rr_timeout * 2, self.constants.max_bindack_timeout)
        self._count("return_routability_retransmitted")
        return self._send_test_inits(now, entry, again=True)

    def _home_test(self, now: float, inbound: Inbound, hot: mh.HomeTest) -> list[Action]:
        entry = self.bul.get(inbound.packet.source)
        if entry is None or entry.home_init_cookie != hot.home_init_cookie:
            if self.home_test_relay is not None:
                return self.home_test_relay(now, inbound.data, hot)
            self._count("hot_unexpected")
            return []
        entry.home_init_cookie = None
        entry.tokens.home_nonce_index = hot.home_nonce_index
        entry.tokens.home_keygen_token = hot.home_keygen_token
        entry.tokens.home_received = now
        return self._tokens_arrived(now, entry)

    def _care_of_test(self, now: float, inbound: Inbound, cot: mh.CareOfTest) -> list[Action]:
        entry = self.bul.get(inbound.packet.source)
        if (
            entry is None
            or entry.care_of_init_cookie != cot.care_of_init_cookie
            or inbound.packet.destination != self.care_of_address
        ):
            self._count("cot_unexpected")
            return []
        entry.care_of_init_cookie = None
        entry.tokens.care_of_nonce_index = cot.care_of_nonce_index
        entry.tokens.care_of_keygen_token = cot.care_of_keygen_token
        entry.tokens.care_of_received = now
        entry.tokens.care_of_for = self.care_of_address
        return self._tokens_arrived(now, entry)

    def _tokens_arrived(self, now: float, entry: BulEntry) -> list[Action]:
        if entry.state is not BulState.RETURN_ROUTABILITY or not self._tokens_ready(now, entry):
            return []
        actions: list[Action] = [CancelTimer(("rr_retransmit", entry.destination))]
        if entry.send_when_ready:
            return actions + self._correspondent_binding_update(now, entry)
        transition(entry, BulInput.TOKENS_COMPLETE)
        return [
            *actions,
            Event("return_routability_complete", {"correspondent": entry.destination}),
        ]

    # -- requests and errors from others --------------------------------------------------------

    def _binding_refresh_request(self, now: float, inbound: Inbound) -> list[Action]:
        """RFC 3775 11.7.4: refresh the binding the sender holds, if we have one with it."""
        entry = self.bul.get(inbound.packet.source)
        if entry is None or entry.state is not BulState.BOUND:
            return []
        return self._refresh(now, entry.destination)

    def _binding_error(self, now: float, inbound: Inbound, error: mh.BindingError) -> list[Action]:
        """RFC 3775 11.3.6: status 1, the correspondent has no binding for our Home Address
        option: bind again; status 2, it does not speak the Mobility Header: stop trying, when
        :meth:`_unrecognized_mh_type_applies` says the message is believable."""
        entry = self.bul.get(inbound.packet.source)
        if entry is None or entry.home_registration:
            # RFC 3775 11.3.6: no Binding Update List entry for the source: "it MUST ignore
            # the message".
            return []
        if error.status == mh.BindingErrorStatus.UNRECOGNIZED_MH_TYPE:
            if not self._unrecognized_mh_type_applies(entry):
                self._count("binding_error_2_ignored")
                return [
                    Event(
                        "drop",
                        {"reason": "Binding Error 2 from a correspondent not expected to send it"},
                    )
                ]
            entry.mobility_header_unsupported = True
            transition(entry, BulInput.BINDING_ERROR_UNRECOGNIZED_MH_TYPE)
            return [Event("route_optimization_unsupported", {"correspondent": entry.destination})]
        if error.status == mh.BindingErrorStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS_OPTION:
            if entry.mobility_header_unsupported:
                # Route optimization with this correspondent was given up on a Binding Error 2
                # (which we only believe from a node that never showed it speaks the Mobility
                # Header, so it holds no binding of ours): a status 1, just as unauthenticated,
                # does not restart it. The entry stays FAILED and traffic stays in the tunnel.
                self._count("binding_error_1_ignored")
                return []
            was_bound = entry.state is BulState.BOUND
            transition(entry, BulInput.BINDING_ERROR_UNKNOWN_BINDING)
            entry.send_when_ready = True
            # for observers: what the correspondent sends us until it is bound again goes to
            # the home address (a distributed server's member has it tunnelled to itself);
            # ``bound``: this error ended a binding (the ones behind it find none)
            lost = Event(
                "binding_error",
                {"correspondent": entry.destination, "status": 1, "bound": was_bound},
            )
            return [lost, *self._return_routability(now, entry)]
        return []

    def _unrecognized_mh_type_applies(self, entry: BulEntry) -> bool:
        """Whether a Binding Error status 2 may end route optimization with ``entry``'s
        correspondent. Binding Errors carry no authenticator, so anyone can send one.

        RFC 3775 11.3.6: "If the mobile node is not expecting an acknowledgement or response
        from the correspondent node, the mobile node SHOULD ignore this message. Otherwise,
        the mobile node SHOULD cease the use of any extensions ... If no extensions had been
        used, the mobile node should cease the attempt to use route optimization." We believe
        it only while return routability is outstanding and no Binding Update has ever gone
        to this correspondent, i.e. only when it cannot hold a binding of ours: ceasing to
        manage a binding it holds would leave it naming the care-of address we leave on the
        next move (its traffic black-holed for the rest of the binding's lifetime, up to
        MAX_RR_BINDING_LIFETIME). Once a Binding Update has gone out, whether or not its BA
        arrived, the binding is kept current instead (refreshed or deleted on each move,
        11.7.2), and a Binding Error 2 is ignored: a deviation from the second SHOULD that
        costs nothing real, since a correspondent that answered our HoTI and CoTI with HoT
        and CoT speaks the Mobility Header, and we use no extensions it could reject."""
        return entry.state is BulState.RETURN_ROUTABILITY and not entry.binding_update_sent

    # -- discovery (RFC 3775 11.4) ---------------------------------------------------------------

    def _send_dhaad(self, now: float) -> list[Action]:
        assert self._dhaad is not None
        identifier, _, timeout = self._dhaad
        source = self.care_of_address or self.home_address
        request = Ipv6Packet(
            source=source,
            destination=home_agents_anycast(
                IPv6Network((self.home_address, self.config.home_prefix_length), strict=False)
            ),
            payload=icmp.HomeAgentAddressDiscoveryRequest(identifier=identifier),
        )
        return [Transmit(request.emit()), StartTimer(now + timeout, ("dhaad",))]

    def _dhaad_timeout(self, now: float) -> list[Action]:
        if self._dhaad is None:
            return []
        identifier, tries, timeout = self._dhaad
        if tries + 1 >= self.constants.dhaad_retries:
            self._dhaad = None
            return [Event("home_agent_discovery_failed", {})]
        self._dhaad = (identifier, tries + 1, timeout * 2)  # RFC 3775 11.4.1: doubling
        return self._send_dhaad(now)

    def _dhaad_reply(self, now: float, reply: icmp.HomeAgentAddressDiscoveryReply) -> list[Action]:
        if (
            self._dhaad is None
            or reply.identifier != self._dhaad[0]
            or not reply.home_agent_addresses
        ):
            return []
        self._dhaad = None
        self.home_agent = reply.home_agent_addresses[0]  # listed in order of preference
        return [
            CancelTimer(("dhaad",)),
            Event("home_agent_discovered", {"home_agent": self.home_agent}),
        ]

    def _send_mps(self, now: float) -> list[Action]:
        assert self._mps is not None and self.care_of_address is not None
        identifier, _, timeout = self._mps
        solicitation = Ipv6Packet(
            source=self.care_of_address,
            destination=self.home_agent,
            extension_headers=(
                DestinationOptions.aligned([HomeAddressOption(home_address=self.home_address)]),
            ),
            payload=icmp.MobilePrefixSolicitation(identifier=identifier),
        )
        return [Transmit(solicitation.emit()), StartTimer(now + timeout, ("mps",))]

    def _mps_timeout(self, now: float) -> list[Action]:
        if self._mps is None or self.at_home:
            return []
        identifier, tries, timeout = self._mps
        if tries + 1 >= self.constants.prefix_adv_retries:
            self._mps = None
            return [Event("mobile_prefix_solicitation_failed", {})]
        self._mps = (identifier, tries + 1, timeout * 2)
        return self._send_mps(now)

    def _mobile_prefix_advertisement(
        self, now: float, inbound: Inbound, advertisement: icmp.MobilePrefixAdvertisement
    ) -> list[Action]:
        if inbound.packet.source != self.home_agent:
            return []
        actions: list[Action] = []
        if self._mps is not None and advertisement.identifier == self._mps[0]:
            self._mps = None
            actions.append(CancelTimer(("mps",)))
        prefixes = [
            f"{option.prefix}/{option.prefix_length}"
            for option in advertisement.options
            if isinstance(option, icmp.PrefixInformation)
        ]
        return [*actions, Event("mobile_prefixes", {"prefixes": prefixes})]

    def _secured(self, actions: list[Action]) -> list[Action]:
        """Every packet out through the security policy database, if there is one; a packet
        it discards, or cannot protect (an exhausted SA), is not sent."""
        if self.security is None:
            return actions
        out: list[Action] = []
        for action in actions:
            if isinstance(action, Transmit):
                try:
                    data = self.security.output(action.data)
                except EspLocalError:
                    self._count("esp_cannot_protect")
                    continue
                if data is None:
                    continue
                action = Transmit(data, link=action.link)
            out.append(action)
        return out

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1
