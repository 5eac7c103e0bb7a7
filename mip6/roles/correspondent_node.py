"""Correspondent node (RFC 3775 9): return routability answers, Binding Update processing,
the binding cache, Binding Refresh Requests and the route-optimized data path.

Sans-I/O (ARCHITECTURE 2): ``handle_packet`` for packets from the network, ``send`` for packets
from the local upper layer, ``handle_timer`` for the timers it asked for. Before a valid Binding
Update the correspondent keeps no state per mobile node (RFC 3775 5.2.8): Home Test and Care-of
Test tokens are recomputed from Kcn and the nonce table when the Binding Update names them.
"""

from __future__ import annotations

import hmac
import logging
import random
import struct
from collections.abc import Hashable
from ipaddress import IPv6Address
from typing import Any

from mip6.core import rr, show
from mip6.core.actions import Action, CancelTimer, Deliver, Event, StartTimer, Transmit
from mip6.core.binding_cache import (
    BindingCache,
    BindingCacheEntry,
    BindingRequest,
    BindingVerdict,
    binding_request,
    decide_binding_update,
    unicast_routable,
)
from mip6.core.config import CorrespondentConfig
from mip6.core.datapath import (
    TYPE2_ROUTING_OVERHEAD,
    FastAction,
    FastDecision,
    Ingress,
    insert_type2_routing,
)
from mip6.core.engine import UnknownCommand
from mip6.core.node import Inbound, NodePipeline, UpperLayerError
from mip6.core.nonces import NonceTable
from mip6.core.ratelimit import TokenBucket
from mip6.wire import mobility as mh
from mip6.wire import protocols
from mip6.wire.checksum import verify_upper_layer
from mip6.wire.errors import WireError
from mip6.wire.ipv6 import Ipv6Packet, RawPayload, fixed_header
from mip6.wire.ipv6ext import RoutingType2
from mip6.wire.walk import walk

log = logging.getLogger(__name__)

Status = mh.BindingAckStatus


_TEST_INIT_PACKET_LENGTH = 40 + 16
# The canonical correspondent Binding Update: IPv6 header; Destination Options (Next Header
# 135, Hdr Ext Len 2, PadN of 4, Home Address option type 201 length 16, the home address);
# Mobility Header (Payload Proto 59, Header Len 3, MH Type 5, Reserved, Checksum, Sequence,
# flags, Lifetime, Nonce Indices at 12, Binding Authorization Data at 18).
_BU_PACKET_LENGTH = 40 + 24 + 32
_BU_PREFIX_AT = 40
_BU_PREFIX = bytes((protocols.MOBILITY, 2)) + b"\x01\x02\x00\x00\xc9\x10"  # then the home address
_BU_MH_AT = 64
_BU_OPTIONS_AT = 76
_BU_FIELDS = struct.Struct("!HHH2xHH")  # from offset 70: Sequence, flags, Lifetime, NI
_TEST_MESSAGE = struct.Struct("!BBBBHH8s8s")  # HoT / CoT (RFC 3775 6.1.5, 6.1.6)

# RFC 3775 6.2.7: Binding Authorization Data at 8n+2, after the 12 fixed bytes of a BA.
_AUTHORIZED_BA_OPTIONS = (
    mh.BindingAcknowledgement(status=0, sequence=0, options=(mh.BindingAuthorizationData(),))
    .aligned()
    .options
)
_PLAIN_BA_OPTIONS = mh.BindingAcknowledgement(status=0, sequence=0).aligned().options


# An accepted-or-refused BA with Binding Authorization Data, as .aligned() lays it out:
# Mobility Header (Payload Proto 59, Header Len 3, MH Type 6), Status, flags, Sequence,
# Lifetime, a 6-byte PadN so the option sits at 8n+2 (RFC 3775 6.2.7), the option's type and
# length, then the 12-byte Authenticator.
_AUTHORIZED_BA = struct.Struct("!BBBBHBBHH6s2s")
_BA_PADDING = b"\x01\x04\x00\x00\x00\x00"
_BA_AUTHORIZATION = bytes((mh.MobilityOptionType.BINDING_AUTHORIZATION_DATA, 12))
_ROUTING_TYPE2 = struct.Struct("!BBBB4x16s")


def _authorized_ba_packet(
    correspondent: IPv6Address,
    care_of: IPv6Address,
    home: IPv6Address,
    status: int,
    sequence: int,
    lifetime_units_4s: int,
    kbm: bytes,
) -> bytes:
    """The BA of :meth:`CorrespondentNode._ba_packet` for its common case (authorized, to a
    care-of address with a type 2 routing header), built without a Repr: it is a third of a
    return routability exchange's cost otherwise."""
    correspondent_packed, home_packed = correspondent.packed, home.packed
    unsigned = _AUTHORIZED_BA.pack(
        protocols.NO_NEXT_HEADER,
        3,
        mh.MhType.BINDING_ACKNOWLEDGEMENT,
        0,
        0,
        status,
        0,
        sequence,
        lifetime_units_4s,
        _BA_PADDING,
        _BA_AUTHORIZATION,
    )
    message = mh.with_checksum(
        unsigned + rr.authenticator(kbm, care_of, correspondent, unsigned),
        source=correspondent_packed,
        destination=home_packed,
    )
    header = fixed_header(
        24 + len(message), protocols.ROUTING, correspondent_packed, care_of.packed
    )
    return header + _ROUTING_TYPE2.pack(protocols.MOBILITY, 2, 2, 1, home_packed) + message


def _units_4s(seconds: float) -> int:
    return min(int(seconds) // 4, 0xFFFF)


class CorrespondentNode:
    def __init__(
        self,
        *,
        config: CorrespondentConfig | None = None,
        rng: random.Random,
        home_agent: bool = False,
        binding_cache: BindingCache | None = None,
    ) -> None:
        self.config = config or CorrespondentConfig()
        constants = self.config.constants
        # A home agent passes its own cache: RFC 3775 9.1 has one binding cache per node.
        self.binding_cache = (
            binding_cache
            if binding_cache is not None
            else BindingCache(self.config.binding_cache_size)
        )
        self.nonces = NonceTable(
            rng, interval=self.config.nonce_interval, lifetime=constants.max_nonce_lifetime
        )
        # A home agent composes this engine for its correspondent role and handles H=1 itself.
        self._is_home_agent = home_agent
        self.pipeline = NodePipeline(
            binding_allows=self._binding_allows,
            icmp_limiter=TokenBucket(self.config.icmp_error_rate, self.config.icmp_error_burst),
            binding_error_limiter=TokenBucket(
                self.config.binding_error_rate, self.config.binding_error_burst
            ),
        )
        self.counters = self.pipeline.counters

    # -- events in ---------------------------------------------------------------------------

    def handle_packet(self, now: float, data: bytes) -> list[Action]:
        if len(data) == _TEST_INIT_PACKET_LENGTH and data[6] == protocols.MOBILITY:
            reply = self._fast_test_init(now, data)
            if reply is not None:
                return reply
        elif len(data) == _BU_PACKET_LENGTH and data[6] == protocols.DESTINATION_OPTIONS:
            reply = self._fast_binding_update(now, data)
            if reply is not None:
                return reply
        inbound, actions = self.pipeline.receive(now, data)
        if inbound is None:
            return actions
        payload = inbound.packet.payload
        if isinstance(payload, mh.HomeTestInit):
            actions += self._home_test(now, inbound, payload)
        elif isinstance(payload, mh.CareOfTestInit):
            actions += self._care_of_test(now, inbound, payload)
        elif isinstance(payload, mh.BindingUpdate):
            actions += self.binding_update(now, inbound)
        elif payload.protocol == protocols.MOBILITY:
            self._count(f"ignored_{type(payload).__name__}")
        else:
            if inbound.home_address is not None:
                entry = self.binding_cache.get(inbound.home_address)
                if entry is not None:
                    entry.last_used = now
            actions.append(Deliver(inbound.delivered()))
        return actions

    def send(self, now: float, data: bytes) -> list[Action]:
        """A packet from the local upper layer. RFC 3775 9.3.2: if the destination has a
        binding cache entry, route it to the care-of address with a type 2 routing header.
        Mobility Header messages never use the binding (RFC 3775 6.1)."""
        try:
            chain = walk(data)
        except WireError:
            self._count("send_malformed")
            return []
        if chain.upper_protocol != protocols.MOBILITY and chain.routing_home_address is None:
            entry = self.binding_cache.get(IPv6Address(chain.destination))
            if entry is not None and entry.expires > now:
                entry.last_used = now
                return [Transmit(insert_type2_routing(data, entry.care_of_address))]
        return [Transmit(data)]

    def handle_timer(self, now: float, token: Hashable) -> list[Action]:
        match token:
            case ("binding_expiry", IPv6Address() as home):
                entry = self.binding_cache.get(home)
                # A home agent's home registrations have timers of their own.
                if entry is not None and not entry.home_registration and entry.expires <= now:
                    self.binding_cache.remove(home)
                    return [Event("binding_expired", {"home_address": home})]
            case ("binding_refresh", IPv6Address() as home):
                return self._binding_refresh(now, home)
        return []

    # -- return routability (RFC 3775 9.4) --------------------------------------------------

    def _fast_test_init(self, now: float, data: bytes) -> list[Action] | None:
        """HoTI and CoTI are the messages anyone can send a correspondent in bulk, so they
        get a path that builds no ``Repr``: a bare IPv6 header (no extension header, hence no
        Home Address option or routing header, RFC 3775 9.4.1/9.4.2) and a 16-byte Mobility
        Header. It answers exactly as the general path would; anything it does not
        recognize (returns None) takes the general path."""
        mh_type = data[42]
        if (
            data[0] >> 4 != 6
            or data[4:6] != b"\x00\x10"
            or data[40] != protocols.NO_NEXT_HEADER
            or data[41] != 1
            or mh_type not in (mh.MhType.HOME_TEST_INIT, mh.MhType.CARE_OF_TEST_INIT)
        ):
            return None
        source, destination = data[8:24], data[24:40]
        if not verify_upper_layer(source, destination, protocols.MOBILITY, data[40:]):
            return None  # the general path counts and drops it
        if data[8] == 0xFF or destination[0] == 0xFF:
            return None  # multicast: the general path decides
        nonce = self.nonces.current(now)
        address = IPv6Address(source)
        cookie = data[48:56]
        if mh_type == mh.MhType.HOME_TEST_INIT:
            token = rr.home_keygen_token(nonce.kcn, address, nonce.nonce)
            reply_type = mh.MhType.HOME_TEST
            self._count("home_test_sent")
        else:
            token = rr.care_of_keygen_token(nonce.kcn, address, nonce.nonce)
            reply_type = mh.MhType.CARE_OF_TEST
            self._count("care_of_test_sent")
        message = mh.with_checksum(
            _TEST_MESSAGE.pack(
                protocols.NO_NEXT_HEADER, 2, reply_type, 0, 0, nonce.index, cookie, token
            ),
            source=destination,
            destination=source,
        )
        header = fixed_header(len(message), protocols.MOBILITY, destination, source)
        return [Transmit(header + message)]

    def _home_test(self, now: float, inbound: Inbound, hoti: mh.HomeTestInit) -> list[Action]:
        """RFC 3775 9.4.1/9.4.3: HoT to the HoTI's source (the home address), same cookie."""
        nonce = self.nonces.current(now)
        home = inbound.packet.source
        token = rr.home_keygen_token(nonce.kcn, home, nonce.nonce)
        hot = mh.HomeTest(
            home_nonce_index=nonce.index,
            home_init_cookie=hoti.home_init_cookie,
            home_keygen_token=token,
        )
        reply = Ipv6Packet(source=inbound.packet.destination, destination=home, payload=hot)
        self._count("home_test_sent")
        return [Transmit(reply.emit())]

    def _care_of_test(self, now: float, inbound: Inbound, coti: mh.CareOfTestInit) -> list[Action]:
        """RFC 3775 9.4.2/9.4.4: CoT to the CoTI's source (the care-of address), same cookie."""
        nonce = self.nonces.current(now)
        care_of = inbound.packet.source
        token = rr.care_of_keygen_token(nonce.kcn, care_of, nonce.nonce)
        cot = mh.CareOfTest(
            care_of_nonce_index=nonce.index,
            care_of_init_cookie=coti.care_of_init_cookie,
            care_of_keygen_token=token,
        )
        reply = Ipv6Packet(source=inbound.packet.destination, destination=care_of, payload=cot)
        self._count("care_of_test_sent")
        return [Transmit(reply.emit())]

    # -- Binding Updates (RFC 3775 9.5) -------------------------------------------------------

    def binding_update(self, now: float, inbound: Inbound) -> list[Action]:
        packet = inbound.packet
        request = binding_request(packet)
        if request is None:
            self._count("bu_bad_address")
            return [Event("drop", {"reason": "BU home or care-of address not unicast routable"})]
        header = inbound.layers[-1]
        mobility_data = mh.received_mobility_data(inbound.data[header.start : header.end])
        return self._binding_update(now, request, packet.destination, mobility_data)

    def _fast_binding_update(self, now: float, data: bytes) -> list[Action] | None:
        """The Binding Update every mobile node sends (RFC 3775 11.7.2), laid out as
        ``.aligned()`` lays it out: IPv6 header, a Destination Options header holding only the
        Home Address option, a Mobility Header with Nonce Indices and Binding Authorization
        Data. Read at fixed offsets instead of through the general parser; what it does not
        recognize bit for bit (returns None) takes the general path, and the processing after
        parsing is the same code (:meth:`_binding_update`)."""
        if (
            data[0] >> 4 != 6
            or data[4:6] != b"\x00\x38"
            or data[_BU_PREFIX_AT : _BU_PREFIX_AT + len(_BU_PREFIX)] != _BU_PREFIX
            or data[_BU_OPTIONS_AT : _BU_OPTIONS_AT + 2] != b"\x04\x04"
            or data[_BU_MH_AT : _BU_MH_AT + 3] != b"\x3b\x03\x05"
            or data[_BU_OPTIONS_AT + 6 : _BU_OPTIONS_AT + 8] != b"\x05\x0c"
        ):
            return None
        home, destination = data[48:64], data[24:40]
        if not verify_upper_layer(home, destination, protocols.MOBILITY, data[64:]):
            return None  # the general path counts and drops it
        sequence, flags, lifetime, home_index, care_of_index = _BU_FIELDS.unpack_from(data, 70)
        update = mh.BindingUpdate(
            sequence=sequence,
            acknowledge=bool(flags & 0x8000),
            home_registration=bool(flags & 0x4000),
            link_local_address_compatibility=bool(flags & 0x2000),
            key_management_mobility_capability=bool(flags & 0x1000),
            reserved_flags=flags & 0x0FFF,
            lifetime_units_4s=lifetime,
            options=(
                mh.NonceIndices(home_nonce_index=home_index, care_of_nonce_index=care_of_index),
                mh.BindingAuthorizationData(authenticator=data[84:96]),
            ),
        )
        request = BindingRequest(
            update, IPv6Address(home), IPv6Address(data[8:24]), IPv6Address(data[8:24])
        )
        if not (
            unicast_routable(request.home_address) and unicast_routable(request.care_of_address)
        ):
            return None
        mobility_data = data[64:68] + b"\0\0" + data[70:84]
        return self._binding_update(now, request, IPv6Address(destination), mobility_data)

    def _binding_update(
        self,
        now: float,
        request: BindingRequest,
        correspondent: IPv6Address,
        mobility_data: bytes,
    ) -> list[Action]:
        """RFC 3775 9.5.1-9.5.4 for a Binding Update whose addresses are resolved;
        ``mobility_data`` is what its authenticator covers (5.2.6), as received."""
        update = request.update
        if update.home_registration and not self._is_home_agent:
            # RFC 3775 9.5.1: "...Home Registration (H) bit set ... not a home agent ... 131".
            return self._acknowledge(
                now, request, correspondent, Status.HOME_REGISTRATION_NOT_SUPPORTED, None
            )
        # RFC 3775 9.5.1: a correspondent registration carries Nonce Indices and Binding
        # Authorization Data, or it is silently discarded.
        indices = update.find(mh.NonceIndices)
        authorization = update.find(mh.BindingAuthorizationData)
        if not isinstance(indices, mh.NonceIndices) or not isinstance(
            authorization, mh.BindingAuthorizationData
        ):
            self._count("bu_without_authorization")
            return [Event("drop", {"reason": "BU without Nonce Indices or authorization data"})]
        from_home = request.care_of_address == request.home_address
        home_nonce = self.nonces.lookup(indices.home_nonce_index, now)
        care_of_nonce = None if from_home else self.nonces.lookup(indices.care_of_nonce_index, now)
        # RFC 3775 9.5.1: expired nonce indices are answered even when A is not set. When the
        # care-of address is the home address, the care-of nonce index is ignored (5.2.6).
        home_expired = home_nonce is None
        care_of_expired = not from_home and care_of_nonce is None
        if home_expired or care_of_expired:
            status = (
                Status.EXPIRED_NONCES
                if home_expired and care_of_expired
                else Status.EXPIRED_HOME_NONCE_INDEX
                if home_expired
                else Status.EXPIRED_CARE_OF_NONCE_INDEX
            )
            return self._acknowledge(now, request, correspondent, status, None)
        assert home_nonce is not None
        home_token = rr.home_keygen_token(home_nonce.kcn, request.home_address, home_nonce.nonce)
        care_of_token = (
            None
            if care_of_nonce is None
            else rr.care_of_keygen_token(
                care_of_nonce.kcn, request.care_of_address, care_of_nonce.nonce
            )
        )
        kbm = rr.binding_management_key(home_token, care_of_token)
        expected = rr.authenticator(kbm, request.care_of_address, correspondent, mobility_data)
        if not hmac.compare_digest(expected, authorization.authenticator):
            # RFC 3775 9.5.1: "...the authenticator ... not valid ... silently discarded".
            self._count("bu_bad_authenticator")
            return [Event("drop", {"reason": "BU authenticator does not verify"})]

        entry = self.binding_cache.get(request.home_address)
        decision = decide_binding_update(entry, request)
        if decision.status is not None:
            # RFC 3775 9.5.1: 139 for an address that holds a home registration here (this node
            # is its home agent); 135 carrying the last accepted Sequence Number.
            return self._acknowledge(
                now, request, correspondent, decision.status, kbm, sequence=decision.sequence
            )
        if decision.verdict is BindingVerdict.DELETE:
            # RFC 3775 9.5.3: delete the entry (if any) and acknowledge if asked.
            if entry is not None:
                self.binding_cache.remove(request.home_address)
            actions: list[Action] = [
                CancelTimer(("binding_expiry", request.home_address)),
                CancelTimer(("binding_refresh", request.home_address)),
                Event("binding_deleted", {"home_address": request.home_address}),
            ]
            if update.acknowledge:
                actions += self._acknowledge(
                    now, request, correspondent, Status.ACCEPTED, kbm, lifetime=0
                )
            return actions
        if not self.binding_cache.has_room_for(request.home_address):
            return self._acknowledge(
                now, request, correspondent, Status.INSUFFICIENT_RESOURCES, kbm
            )
        # RFC 3775 9.5.2 / 5.2.6: at most MAX_RR_BINDING_LIFETIME for a correspondent binding.
        lifetime = min(update.lifetime_s, self.config.constants.max_rr_binding_lifetime)
        self.binding_cache.put(
            BindingCacheEntry(
                home_address=request.home_address,
                care_of_address=request.care_of_address,
                expires=now + lifetime,
                sequence=update.sequence,
                home_registration=False,
                lifetime=lifetime,
                last_used=now,
                correspondent_address=correspondent,
            )
        )
        actions = [
            StartTimer(now + lifetime, ("binding_expiry", request.home_address)),
            Event(
                "binding_added",
                {
                    "home_address": request.home_address,
                    "care_of_address": request.care_of_address,
                    "sequence": update.sequence,
                    "lifetime": lifetime,
                },
            ),
        ]
        lead = self.config.brr_lead
        if lifetime > lead:
            actions.append(
                StartTimer(now + lifetime - lead, ("binding_refresh", request.home_address))
            )
        if update.acknowledge:
            actions += self._acknowledge(
                now, request, correspondent, Status.ACCEPTED, kbm, lifetime=lifetime
            )
        return actions

    def _acknowledge(
        self,
        now: float,
        request: BindingRequest,
        correspondent: IPv6Address,
        status: int,
        kbm: bytes | None,
        *,
        sequence: int | None = None,
        lifetime: float = 0,
    ) -> list[Action]:
        """RFC 3775 9.5.4: the BA goes to the care-of address with a type 2 routing header
        naming the home address (directly to the home address when they are the same), and
        carries Binding Authorization Data computed with Kbm when the BU was authorized."""
        sequence = request.update.sequence if sequence is None else sequence
        self._count(f"ba_status_{status}")
        event = Event("binding_ack_sent", {"home_address": request.home_address, "status": status})
        if kbm is not None and request.care_of_address != request.home_address:
            data = _authorized_ba_packet(
                correspondent,
                request.care_of_address,
                request.home_address,
                status,
                sequence,
                _units_4s(lifetime),
                kbm,
            )
            return [Transmit(data), event]
        return [
            Transmit(self._ba_packet(request, correspondent, status, kbm, sequence, lifetime)),
            event,
        ]

    def _ba_packet(
        self,
        request: BindingRequest,
        correspondent: IPv6Address,
        status: int,
        kbm: bytes | None,
        sequence: int,
        lifetime: float,
    ) -> bytes:
        """The BA built with the codec (every case; the common one has a faster twin,
        :func:`_authorized_ba_packet`, that tests hold byte-identical to this)."""
        ba = mh.BindingAcknowledgement(
            status=status,
            sequence=sequence,
            lifetime_units_4s=_units_4s(lifetime),
            options=_AUTHORIZED_BA_OPTIONS if kbm is not None else _PLAIN_BA_OPTIONS,
        )
        payload: mh.BindingAcknowledgement | RawPayload = ba
        if kbm is not None:
            care_of = request.care_of_address
            payload = RawPayload(
                protocol=protocols.MOBILITY,
                data=mh.emit_authorized(
                    ba,
                    source=correspondent.packed,
                    destination=request.home_address.packed,  # the final destination
                    authenticator=lambda data: rr.authenticator(kbm, care_of, correspondent, data),
                ),
            )
        if request.care_of_address == request.home_address:
            packet = Ipv6Packet(
                source=correspondent, destination=request.home_address, payload=payload
            )
        else:
            packet = Ipv6Packet(
                source=correspondent,
                destination=request.care_of_address,
                extension_headers=(RoutingType2(home_address=request.home_address),),
                payload=payload,
            )
        return packet.emit()

    def _binding_refresh(self, now: float, home: IPv6Address) -> list[Action]:
        """RFC 3775 9.5.5: ask for a refresh before expiry if the entry is in active use. The
        request goes to the home address: Mobility Header messages do not use the binding
        (RFC 3775 6.1), so it travels through the home agent."""
        entry = self.binding_cache.get(home)
        if entry is None or now - entry.last_used > self.config.brr_use_window:
            return []
        entry.refresh_requested = True
        brr = Ipv6Packet(
            source=entry.correspondent_address, destination=home, payload=mh.BindingRefreshRequest()
        )
        self._count("brr_sent")
        return [
            Transmit(brr.emit()),
            Event("binding_refresh_requested", {"home_address": home}),
        ]

    # -- the engine contract (mip6.core.engine) ------------------------------------------------

    def start(self, now: float) -> list[Action]:
        return []

    def upper_layer_error(
        self, now: float, invoking: bytes, message: UpperLayerError
    ) -> list[Action]:
        return self.pipeline.upper_layer_error(now, invoking, message, self.send)

    def send_overhead(self, now: float, source: bytes, destination: bytes) -> int:
        """A type 2 routing header when :meth:`send` would route through a binding."""
        entry = self.binding_cache.get(IPv6Address(destination))
        return TYPE2_ROUTING_OVERHEAD if entry is not None and entry.expires > now else 0

    def command(self, now: float, name: str, argument: Any) -> list[Action]:
        raise UnknownCommand(name, "correspondent")

    def fast_version(self) -> int:
        return self.binding_cache.version

    def fast_decision(
        self, now: float, ingress: Ingress, source: bytes, destination: bytes
    ) -> FastDecision | None:
        """What :meth:`send` and :meth:`handle_packet` do to data packets (not Mobility
        Header messages, which the fast path never takes) with these addresses."""
        if ingress is Ingress.TUNNEL:
            return None  # it decapsulates nothing
        if ingress is Ingress.UPPER:
            entry = self.binding_cache.get(IPv6Address(destination))
            if entry is None:
                return FastDecision(action=FastAction.FORWARD)
            if entry.expires <= now:
                return None
            # RFC 3775 9.3.2: to the care-of address, with a type 2 routing header
            return FastDecision(
                action=FastAction.INSERT_TYPE2_ROUTING,
                address=entry.care_of_address.packed,
                expires=entry.expires,
                binding=entry.home_address,
                touch=entry.touch,
            )
        # Received: a data packet that parses is delivered as it came; one from a care-of
        # address may carry the Home Address option of its binding (RFC 3775 9.3.1), removed
        # for the upper layer. With several bindings from one care-of address the option
        # alone says which: such packets stay with the engine.
        care_of = IPv6Address(source)
        entries = [e for e in self.binding_cache if e.care_of_address == care_of]
        if len(entries) != 1:
            return FastDecision(action=FastAction.FORWARD, deliver=True, verify=True)
        (entry,) = entries
        if entry.expires <= now:
            return None
        return FastDecision(
            action=FastAction.REMOVE_HOME_ADDRESS_OPTION,
            deliver=True,
            verify=True,
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
        show.check(what)
        if what == "bcache":
            return show.rows(what, show.binding_cache_rows(self.binding_cache, now))
        if what == "nonce":
            return show.rows(what, show.nonce_rows(self.nonces, now))
        if what == "stats":
            return show.counters(what, ("", self.counters))
        return show.rows(what, [])

    # -- helpers -------------------------------------------------------------------------------

    def _binding_allows(self, now: float, home: IPv6Address, care_of: IPv6Address) -> bool:
        entry = self.binding_cache.get(home)
        return entry is not None and entry.care_of_address == care_of and entry.expires > now

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1
