"""The Security Policy Database of RFC 3776 as data, and the ESP steps of a node's data path.

RFC 3776 4.1 decides what must be protected between a mobile node and its home agent:

* "ESP encapsulation of Binding Updates and Acknowledgements between the mobile node and home
  agent MUST be supported and MUST be used" (transport mode, RFC 3776 3.1);
* "ESP encapsulation of the Home Test Init and Home Test messages tunneled between the mobile
  node and home agent MUST be supported and SHOULD be used" (tunnel mode, RFC 3776 3.2);
* "ESP encapsulation of the payload packets tunneled between the mobile node and home agent MAY
  be supported and used" (tunnel mode, RFC 3776 3.4).

A :class:`PolicyEntry` says, for one direction, which traffic (a :class:`~.sa.Selector`) gets
which treatment (protect with an SA, bypass, discard) in which mode; entries are searched in
order and the first match wins (RFC 4301 4.4.1). :func:`rfc3776_entries` builds the entries of
RFC 3776 5.2.1, 5.2.2 and 5.2.4 for one mobile node / home agent pair, seen from either end.

:class:`SecurityPolicyDatabase` holds the entries and the SAs (the SAD, by SPI and direction)
and offers the two steps an engine's driver calls:

* :meth:`~SecurityPolicyDatabase.output` on every packet an engine transmits: a Binding Update
  or Acknowledgement gets ESP in transport mode, an IPv6-in-IPv6 packet whose inner packet is a
  HoTI or HoT (or, optionally, anything) gets ESP in tunnel mode in place of the plain
  encapsulation, and the rest passes unchanged (RFC 4301 5.1);
* :meth:`~SecurityPolicyDatabase.input` on every received packet: ESP is verified and removed
  and the plaintext checked against the selectors of the SA that protected it (RFC 4301 5.2
  step 4), and a packet without ESP that policy says must have it ("this Binding Update with H
  set arrived unprotected") is dropped. The answer is a value, :class:`Accepted` (with the SA,
  if any, so the engine knows the packet was protected) or :class:`Dropped` (with the typed
  reason), and every drop is counted by cause in :attr:`SecurityPolicyDatabase.counters`.

Selectors see the addresses Mobile IPv6 signalling is about: a Home Address option's address
as source, a type 2 routing header's address as destination (RFC 3776 5.2.1 selects on
"source = home_address"; Wireshark's ESP dissector looks SAs up the same way). input() expects
reassembled packets (RFC 4303 3.4.1: reassembly comes before ESP processing).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv6Address

from mip6.core.ipsec.errors import (
    EspError,
    Malformed,
    PolicyViolation,
    Truncated,
    UnknownSpi,
    Unprotected,
)
from mip6.core.ipsec.esp import locate, protect, verify
from mip6.core.ipsec.sa import (
    Algorithm,
    Direction,
    Mode,
    RandomBytes,
    SaParameters,
    SecurityAssociation,
    Selector,
)
from mip6.wire import protocols
from mip6.wire.errors import Truncated as WireTruncated
from mip6.wire.errors import WireError
from mip6.wire.mobility import MhType
from mip6.wire.walk import walk

log = logging.getLogger(__name__)

_MH_TYPE = 2  # offset of MH Type in the Mobility Header (RFC 3775 6.1.1)
_BU_FLAGS = 8  # offset of the A/H/L/K flags byte of a Binding Update (RFC 3775 6.1.7)
_BU_H = 0x40


# The two ends of an RFC 3776 SA pair, as the ``role`` arguments below name them.
MOBILE_SIDE = frozenset({"mobile_node"})
SIDES = frozenset({"mobile_node", "home_agent"})


class PolicyAction(enum.Enum):
    """RFC 4301 4.4.1: "DISCARD, BYPASS, PROTECT"."""

    PROTECT = "protect"
    BYPASS = "bypass"
    DISCARD = "discard"


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyEntry:
    """One SPD entry. ``mode`` says which packet the selector looks at: TRANSPORT the packet
    itself, TUNNEL the inner packet of an IPv6-in-IPv6 packet. An outbound PROTECT entry names
    its SA by ``spi``; an inbound PROTECT entry may name one or leave ``spi`` None ("must
    arrive under ESP, by any SA whose selectors match")."""

    name: str
    direction: Direction
    selector: Selector
    mode: Mode = Mode.TRANSPORT
    action: PolicyAction = PolicyAction.PROTECT
    spi: int | None = None

    def __post_init__(self) -> None:
        if self.action is PolicyAction.PROTECT:
            if self.direction is Direction.OUTBOUND and self.spi is None:
                raise ValueError(f"policy {self.name}: an outbound PROTECT entry needs an SA")
        elif self.spi is not None:
            raise ValueError(f"policy {self.name}: only PROTECT entries name an SA")


@dataclass(frozen=True, slots=True)
class TrafficFields:
    """What selectors compare (addresses as 16-byte strings)."""

    source: bytes
    destination: bytes
    protocol: int
    mh_type: int | None
    home_registration: bool | None

    def selected_by(self, selector: Selector) -> bool:
        return selector.matches(
            self.source, self.destination, self.protocol, self.mh_type, self.home_registration
        )


def traffic_fields(data: bytes) -> tuple[TrafficFields | None, TrafficFields | None]:
    """The selector fields of ``data`` and, when it is IPv6-in-IPv6, of its inner packet.
    (None, None) for a packet whose header chain cannot be walked."""
    outer = _fields(data)
    if outer is None or outer.protocol != protocols.IPV6:
        return outer, None
    try:
        offset = walk(data).upper_offset
    except WireError:  # pragma: no cover - _fields walked it already
        return outer, None
    return outer, _fields(data[offset:])


def _fields(data: bytes) -> TrafficFields | None:
    try:
        chain = walk(data)
    except WireError:
        return None
    mh_type: int | None = None
    home_registration: bool | None = None
    if chain.upper_protocol == protocols.MOBILITY and chain.upper_offset + _MH_TYPE < len(data):
        mh_type = data[chain.upper_offset + _MH_TYPE]
        if mh_type == MhType.BINDING_UPDATE and chain.upper_offset + _BU_FLAGS < len(data):
            home_registration = bool(data[chain.upper_offset + _BU_FLAGS] & _BU_H)
    return TrafficFields(
        # RFC 3776 5.2.1 / RFC 3775 9.3.1: the home address stands in for the source, and a type
        # 2 routing header's home address for the destination.
        source=chain.home_address or chain.source,
        destination=chain.routing_home_address or chain.destination,
        protocol=chain.upper_protocol,
        mh_type=mh_type,
        home_registration=home_registration,
    )


@dataclass(frozen=True, slots=True)
class Accepted:
    """A received packet policy lets through. ``data``: what the node processes next (ESP
    removed; for a tunnel-mode SA the RFC 2473 IPv6-in-IPv6 packet, whose inner packet starts
    at ``inner_offset``). ``sa``: the SA that protected it, None when it came without ESP."""

    data: bytes
    sa: SecurityAssociation | None = None
    inner_offset: int | None = None

    @property
    def protected(self) -> bool:
        return self.sa is not None

    @property
    def inner(self) -> bytes | None:
        return None if self.inner_offset is None else self.data[self.inner_offset :]


@dataclass(frozen=True, slots=True)
class Dropped:
    """A received packet policy or ESP discards, and why (``error.cause`` counts it)."""

    error: EspError

    @property
    def cause(self) -> str:
        return self.error.cause


InputResult = Accepted | Dropped


class SecurityPolicyDatabase:
    """The SPD (ordered :class:`PolicyEntry` list) and the SAD (SAs by SPI, per direction) of
    one node. Sans-I/O: ``random_bytes`` is handed to every SA it creates (IVs)."""

    def __init__(self, *, random_bytes: RandomBytes) -> None:
        self._random_bytes = random_bytes
        self.entries: list[PolicyEntry] = []
        self._sas: dict[tuple[Direction, int], SecurityAssociation] = {}
        self.counters: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # -- configuration ----------------------------------------------------------------------

    def add_sa(self, sa: SaParameters | SecurityAssociation) -> SecurityAssociation:
        """Install an SA (a new one from parameters, or an imported one), replacing any SA with
        the same SPI and direction."""
        if isinstance(sa, SaParameters):
            sa = SecurityAssociation(sa, random_bytes=self._random_bytes)
        self._sas[(sa.direction, sa.spi)] = sa
        return sa

    def sa(self, direction: Direction, spi: int) -> SecurityAssociation | None:
        return self._sas.get((direction, spi))

    def security_associations(self) -> list[SecurityAssociation]:
        return list(self._sas.values())

    def remove_sa(self, direction: Direction, spi: int) -> SecurityAssociation | None:
        return self._sas.pop((direction, spi), None)

    def add_policy(self, entry: PolicyEntry) -> None:
        """Append ``entry`` (it matches after every entry already present)."""
        self.entries.append(entry)

    def add_protection(self, name: str, parameters: SaParameters) -> SecurityAssociation:
        """An SA and the PROTECT entry that uses it for its own selectors and mode."""
        sa = self.add_sa(parameters)
        self.add_policy(
            PolicyEntry(
                name=name,
                direction=parameters.direction,
                selector=parameters.selector,
                mode=parameters.mode,
                spi=parameters.spi,
            )
        )
        return sa

    def add_pair(
        self,
        *,
        role: str,
        home_address: IPv6Address,
        home_agent: IPv6Address,
        algorithm: Algorithm,
        keys: PairKeys,
        tunnel_all: bool = False,
    ) -> list[SecurityAssociation]:
        """The SAs and PROTECT entries of :func:`rfc3776_entries` for one pair."""
        return [
            self.add_protection(name, parameters)
            for name, parameters in rfc3776_entries(
                role=role,
                home_address=home_address,
                home_agent=home_agent,
                algorithm=algorithm,
                keys=keys,
                tunnel_all=tunnel_all,
            )
        ]

    def import_sa(self, data: bytes, *, skip: int = 0) -> SecurityAssociation:
        """Install an SA exported by another node (:meth:`SecurityAssociation.export`) in place
        of this node's SA with the same SPI and direction (the policy entries stay)."""
        return self.add_sa(
            SecurityAssociation.import_(data, random_bytes=self._random_bytes, skip=skip)
        )

    # -- lookups ----------------------------------------------------------------------------

    def _match(
        self,
        direction: Direction,
        outer: TrafficFields | None,
        inner: TrafficFields | None,
    ) -> PolicyEntry | None:
        for entry in self.entries:
            if entry.direction is not direction:
                continue
            fields = inner if entry.mode is Mode.TUNNEL else outer
            if fields is not None and fields.selected_by(entry.selector):
                return entry
        return None

    def lookup_outbound(self, data: bytes) -> PolicyEntry | None:
        """The first outbound entry selecting ``data``; None: no entry (bypass)."""
        outer, inner = traffic_fields(data)
        return self._match(Direction.OUTBOUND, outer, inner)

    # -- the two data-path steps ------------------------------------------------------------

    def output(self, data: bytes) -> bytes | None:
        """RFC 4301 5.1 outbound processing of one packet an engine transmits: the packet to
        send (protected, or unchanged when no entry selects it or the entry says BYPASS), or
        None when an entry says DISCARD. :class:`~.errors.EspLocalError` when it must be
        protected and cannot be (an exhausted or retired SA: the caller counts and drops)."""
        entry = self.lookup_outbound(data)
        if entry is None or entry.action is PolicyAction.BYPASS:
            self._count("out_bypass")
            return data
        if entry.action is PolicyAction.DISCARD:
            self._count("out_discard")
            return None
        assert entry.spi is not None  # PolicyEntry checks it for outbound PROTECT
        sa = self._sas.get((Direction.OUTBOUND, entry.spi))
        if sa is None:
            # RFC 4301 5.1: no SA for a PROTECT entry and no key management to make one.
            self._count("out_no_sa")
            log.debug("drop: policy %s names SA 0x%08x, not installed", entry.name, entry.spi)
            return None
        protected = protect(sa, data)
        self._count(f"out_protected_{entry.name}")
        return protected

    def input(self, data: bytes) -> InputResult:
        """RFC 4301 5.2 inbound processing of one received packet (whole IPv6 packet)."""
        try:
            chain = walk(data)
        except WireError as error:
            # A header chain that cannot be walked cannot be checked against the policy. The
            # node pipeline would drop it silently too (the walk's faults are structural; the
            # faults RFC 3775 9.2 answers are inside the Mobility Header).
            kind = Truncated if isinstance(error, WireTruncated) else Malformed
            return self._drop(kind(f"header chain: {error}"))
        if chain.upper_protocol == protocols.ESP and not chain.fragmented:
            return self._input_protected(data)
        outer, inner = traffic_fields(data)
        entry = self._match(Direction.INBOUND, outer, inner)
        if entry is None or entry.action is PolicyAction.BYPASS:
            self._count("in_bypass")
            return Accepted(data)
        if entry.action is PolicyAction.DISCARD:
            return self._drop(PolicyViolation(f"policy {entry.name} discards this traffic"))
        # RFC 4301 5.2 (unprotected traffic checked against the SPD) / RFC 3776 4.1: this
        # traffic MUST arrive under ESP.
        return self._drop(Unprotected(f"policy {entry.name} requires ESP; none present"))

    def _input_protected(self, data: bytes) -> InputResult:
        try:
            location = locate(data)
            if location is None:  # walk() saw ESP; locate() never disagrees, but be sure
                raise Malformed("no ESP header")
            sa = self._sas.get((Direction.INBOUND, location.spi))
            if sa is None:
                # RFC 4303 3.4.2: "If no valid Security Association exists for this packet
                # the receiver MUST discard the packet; this is an auditable event."
                raise UnknownSpi(
                    "no inbound SA", spi=location.spi, sequence_number=location.sequence_number
                )
            opened = verify(sa, data, location)
        except EspError as error:
            return self._drop(error)
        inner_offset = opened.payload_offset if sa.mode is Mode.TUNNEL else None
        checked = opened.inner if sa.mode is Mode.TUNNEL else opened.packet
        fields = _fields(checked)
        # RFC 4301 5.2 step 4: after ESP processing, the packet must match the inbound
        # selectors of the SA that protected it.
        if fields is None or not fields.selected_by(sa.selector):
            return self._drop(
                PolicyViolation(
                    "decrypted packet is outside the SA's selectors",
                    spi=sa.spi,
                    sequence_number=opened.sequence_number,
                )
            )
        self._count("in_protected")
        return Accepted(opened.packet, sa, inner_offset)

    def _drop(self, error: EspError) -> Dropped:
        self._count(f"in_drop_{error.cause}")
        log.debug("drop: %s", error)
        return Dropped(error)


# -- RFC 3776 5.2: the manual configuration of one mobile node / home agent pair -------------


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SaKeys:
    """The manually configured part of one SA: SPI and keys (``repr`` hides the keys)."""

    spi: int
    encryption_key: bytes
    authentication_key: bytes = b""

    def __repr__(self) -> str:
        return f"SaKeys(spi=0x{self.spi:08x}, keys=<redacted>)"


@dataclass(frozen=True, slots=True, kw_only=True)
class PairKeys:
    """The four SAs of RFC 3776 5.2.1 and 5.2.2 for one mobile node / home agent pair, named
    by what they carry; the same values configure both ends."""

    binding_update: SaKeys
    binding_acknowledgement: SaKeys
    home_test_init: SaKeys
    home_test: SaKeys


def rfc3776_entries(
    *,
    role: str,
    home_address: IPv6Address,
    home_agent: IPv6Address,
    algorithm: Algorithm,
    keys: PairKeys,
    tunnel_all: bool = False,
) -> list[tuple[str, SaParameters]]:
    """The SAs of one mobile node / home agent pair as ``role`` ("mobile_node" or
    "home_agent") sees them, each with the name of its policy entry, in SPD order:

    * RFC 3776 5.2.1: BU from home address to home agent, BA back, transport mode, selectors
      on the home address and the Mobility Header type;
    * RFC 3776 5.2.2: HoTI from the home address to any correspondent, HoT back, tunnel mode
      between care-of address and home agent (the tunnel endpoints are the engines' outer
      addresses, RFC 3776 4.3);
    * RFC 3776 5.2.4 (``tunnel_all``): the two tunnel SAs then select every protocol, so every
      reverse- and forward-tunnelled packet is protected, HoTI and HoT included.
    """
    if role not in SIDES:
        raise ValueError(f"role {role!r} is not mobile_node or home_agent")
    mobile = role in MOBILE_SIDE
    out_if_mobile = Direction.OUTBOUND if mobile else Direction.INBOUND
    in_if_mobile = Direction.INBOUND if mobile else Direction.OUTBOUND
    any_protocol = None if tunnel_all else protocols.MOBILITY
    plan = (
        (
            "binding_update",
            keys.binding_update,
            Mode.TRANSPORT,
            out_if_mobile,
            Selector(
                source=home_address,
                destination=home_agent,
                mh_types=frozenset({MhType.BINDING_UPDATE}),
            ),
        ),
        (
            "binding_acknowledgement",
            keys.binding_acknowledgement,
            Mode.TRANSPORT,
            in_if_mobile,
            Selector(
                source=home_agent,
                destination=home_address,
                mh_types=frozenset({MhType.BINDING_ACKNOWLEDGEMENT}),
            ),
        ),
        (
            "home_test_init" if not tunnel_all else "reverse_tunnel",
            keys.home_test_init,
            Mode.TUNNEL,
            out_if_mobile,
            Selector(
                source=home_address,
                protocol=any_protocol,
                mh_types=frozenset() if tunnel_all else frozenset({MhType.HOME_TEST_INIT}),
            ),
        ),
        (
            "home_test" if not tunnel_all else "forward_tunnel",
            keys.home_test,
            Mode.TUNNEL,
            in_if_mobile,
            Selector(
                destination=home_address,
                protocol=any_protocol,
                mh_types=frozenset() if tunnel_all else frozenset({MhType.HOME_TEST}),
            ),
        ),
    )
    return [
        (
            name,
            SaParameters(
                spi=sa_keys.spi,
                algorithm=algorithm,
                mode=mode,
                direction=direction,
                encryption_key=sa_keys.encryption_key,
                authentication_key=sa_keys.authentication_key,
                selector=selector,
            ),
        )
        for name, sa_keys, mode, direction, selector in plan
    ]


def home_registration_guard(home_agent_addresses: Iterable[IPv6Address]) -> list[PolicyEntry]:
    """Inbound entries for a home agent: a Binding Update with H set to one of its addresses
    must arrive under ESP whoever sends it (RFC 3775 10.3.1, RFC 3776 4.1), so a home address
    without configured SAs cannot register unprotected either. Add them after the per-pair
    entries."""
    return [
        PolicyEntry(
            name="home_registration",
            direction=Direction.INBOUND,
            selector=Selector(
                destination=address,
                mh_types=frozenset({MhType.BINDING_UPDATE}),
                home_registration=True,
            ),
        )
        for address in home_agent_addresses
    ]
