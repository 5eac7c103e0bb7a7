"""Reserved addresses of a subnet that Mobile IPv6 uses or must not hand out: the Mobile IPv6
Home-Agents anycast address (RFC 3775 10.5, RFC 2526 subnet anycast ID 126), the other reserved
subnet anycast addresses (RFC 2526 2) and the Subnet-Router anycast address (RFC 4291 2.6.1).

Home agents answer Dynamic Home Agent Address Discovery on the first; mobile nodes send their
requests to it. Pure functions of the prefix.
"""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

# RFC 2526 3: "Mobile IPv6 Home-Agents anycast", Anycast ID 0x7E (decimal 126).
HOME_AGENTS_ANYCAST_ID = 0x7E
_ANYCAST_ID_BITS = 7
# RFC 2526 2: with a 64-bit interface identifier in EUI-64 format the universal/local bit is 0,
# every other bit above the 7-bit Anycast ID is 1: fdff:ffff:ffff:ff80 plus the ID.
_EUI64_RESERVED_BASE = 0xFDFF_FFFF_FFFF_FF80


def _reserved_base(prefix: IPv6Network) -> int:
    """Interface identifier bits of the lowest reserved subnet anycast address of ``prefix``."""
    if prefix.prefixlen > 128 - _ANYCAST_ID_BITS:
        raise ValueError(f"{prefix}: no room for a 7-bit subnet anycast ID (RFC 2526 2)")
    if prefix.prefixlen == 64:
        return _EUI64_RESERVED_BASE
    # RFC 2526 2, other formats: all ones in the interface identifier except the Anycast ID.
    return int(prefix.hostmask) & ~((1 << _ANYCAST_ID_BITS) - 1)


def home_agents_anycast(prefix: IPv6Network) -> IPv6Address:
    """The Mobile IPv6 Home-Agents anycast address of ``prefix`` (RFC 3775 10.5 / RFC 2526):
    for a /64, ``prefix:fdff:ffff:ffff:fffe``."""
    return IPv6Address(
        int(prefix.network_address) | _reserved_base(prefix) | HOME_AGENTS_ANYCAST_ID
    )


def is_reserved_anycast(address: IPv6Address, prefix: IPv6Network) -> bool:
    """True when ``address`` is one of ``prefix``'s reserved anycast addresses: the
    Subnet-Router anycast address (RFC 4291 2.6.1: the prefix with an all-zero interface
    identifier) or one of the 128 reserved subnet anycast addresses (RFC 2526 2)."""
    if address not in prefix:
        return False
    host = int(address) & int(prefix.hostmask)
    if host == 0:
        return True
    if prefix.prefixlen > 128 - _ANYCAST_ID_BITS:
        return False
    return host & ~((1 << _ANYCAST_ID_BITS) - 1) == _reserved_base(prefix)


def solicited_node_multicast(address: IPv6Address) -> IPv6Address:
    """RFC 4291 2.7.1: ff02::1:ff00:0/104 and the address's low 24 bits."""
    return IPv6Address(int(IPv6Address("ff02::1:ff00:0")) | (int(address) & 0xFFFFFF))
