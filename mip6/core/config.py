"""Protocol constants and per-role limits, with RFC 3775 section 12's values as defaults.

Everything a UMIP user can tune is a field here; engines take these objects in their
constructors (no global configuration). Times are in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolConstants:
    """RFC 3775 12 "Protocol Constants"."""

    dhaad_retries: int = 4
    initial_bindack_timeout: float = 1.0
    initial_dhaad_timeout: float = 3.0
    initial_solicit_timer: float = 3.0
    max_bindack_timeout: float = 32.0
    max_nonce_lifetime: float = 240.0
    max_token_lifetime: float = 210.0
    max_update_rate: int = 3  # Binding Updates per second to one destination
    prefix_adv_retries: int = 3
    prefix_adv_timeout: float = 3.0
    # RFC 3775 13: "InitialBindackTimeoutFirstReg" (configuration variable, default 1.5 s)
    initial_bindack_timeout_first_registration: float = 1.5
    max_rr_binding_lifetime: float = 420.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CorrespondentConfig:
    """Limits of a correspondent node (RFC 3775 9)."""

    constants: ProtocolConstants = ProtocolConstants()
    binding_cache_size: int = 4096  # full: BA status 130 (insufficient resources)
    # RFC 3775 5.2.7: a new nonce every so often; tokens stay valid while their nonce is kept.
    nonce_interval: float = 30.0
    # RFC 3775 9.5.5: a Binding Refresh Request this long before expiry, if the entry is in use.
    brr_lead: float = 10.0
    brr_use_window: float = 30.0  # "in use": traffic through the entry within this window
    binding_error_rate: float = 1.0  # Binding Errors per second, at most (RFC 3775 9.3.1)
    binding_error_burst: int = 10
    icmp_error_rate: float = 10.0  # RFC 4443 2.4(f) token bucket: errors per second
    icmp_error_burst: int = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeAgentConfig:
    """A home agent (RFC 3775 10), with the knobs UMIP users know (HaMaxBindingLife,
    BindingAclPolicy, ...). ``home_prefixes`` are the prefixes of the home link(s) it serves."""

    address: IPv6Address  # the home agent's own address on the home link
    home_prefixes: tuple[IPv6Network, ...]
    correspondent: CorrespondentConfig = CorrespondentConfig()
    binding_cache_size: int = 4096
    max_home_registration_lifetime: float = 262_008.0  # UMIP HaMaxBindingLife
    # Which home addresses may register: (network, allowed) rules, first match wins; no match
    # falls back to ``acl_default_allow`` (UMIP's DefaultBindingAclPolicy).
    binding_acl: tuple[tuple[IPv6Network, bool], ...] = ()
    acl_default_allow: bool = True
    # Until ESP protects home registrations (RFC 3776), only this explicit switch lets an
    # unprotected one through. Off by default: an unprotected Binding Update with H set is
    # dropped and counted.
    allow_unprotected_registration: bool = False
    # Other home agents on the home link, with preferences, for DHAAD replies (RFC 3775 10.5).
    other_home_agents: tuple[tuple[IPv6Address, int], ...] = ()
    home_agent_preference: int = 0
    prefix_valid_lifetime: int = 86_400  # advertised in Mobile Prefix Advertisements
    prefix_preferred_lifetime: int = 14_400
    # Addresses known to be in use on the home link (routers, servers, other home agents). A
    # home registration for one of them fails as RFC 3775 10.3.1's duplicate address detection
    # would (BA 134); the home agent's own address and the reserved anycast addresses always do.
    home_link_addresses: tuple[IPv6Address, ...] = ()
    # Other addresses of this node that are not its home agent address (another interface, a
    # service address): a home registration sent to one gets BA 133, as one sent to the
    # Home-Agents anycast address does.
    other_local_addresses: tuple[IPv6Address, ...] = ()
    # RFC 2473 6.3 "Tunnel Hop Limit": the outer Hop Limit of tunnelled packets; default the
    # node's default Hop Limit (RFC 4861 CurHopLimit as Linux sets it).
    tunnel_hop_limit: int = 64
    # The driver's link on the home link, named in ``Transmit.link`` for packets that go out
    # on it; None when the home link is the node's one network link.
    home_link: str | None = "home"
    # RFC 3775 10.3.1: duplicate address detection on the home link before a new home
    # registration is accepted (on a real home link; a lab's home link has only the nodes in
    # ``home_link_addresses``). ``dad_retrans_timer``: RFC 4861 RetransTimer, seconds.
    duplicate_address_detection: bool = False
    dad_retrans_timer: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class MobileNodeConfig:
    """A mobile node (RFC 3775 11)."""

    home_address: IPv6Address
    home_agent: IPv6Address
    home_prefix_length: int = 64  # of the home subnet, for its Home-Agents anycast address
    constants: ProtocolConstants = ProtocolConstants()
    home_registration_lifetime: float = 420.0  # requested; the home agent may grant less
    correspondent_registration_lifetime: float = 420.0  # capped by MAX_RR_BINDING_LIFETIME
    refresh_lead: float = 0.2  # re-register when this fraction of the lifetime remains
    route_optimization: bool = True
    # Route optimization started by traffic arriving through the home agent's tunnel (RFC 3775
    # 11.7.2), whose inner source anyone can write: at most ``rate`` starts per second with
    # ``burst`` saved up, over all sources; toward one source at most one start per
    # ``retry_interval_s`` seconds, remembered for up to ``route_optimization_sources`` sources.
    route_optimization_start_rate: float = 1.0
    route_optimization_start_burst: int = 5
    route_optimization_retry_interval_s: float = 60.0
    route_optimization_sources: int = 256
    binding_update_list_size: int = 1024
    icmp_error_rate: float = 10.0
    icmp_error_burst: int = 10
    binding_error_rate: float = 1.0
    binding_error_burst: int = 10
