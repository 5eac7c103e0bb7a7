"""IANA protocol numbers used as IPv6 Next Header values (RFC 8200 4.1, RFC 3775 6.1)."""

HOP_BY_HOP = 0
TCP = 6
UDP = 17
IPV6 = 41  # IPv6-in-IPv6, RFC 2473
ROUTING = 43
FRAGMENT = 44
ESP = 50
AH = 51
ICMPV6 = 58
NO_NEXT_HEADER = 59
DESTINATION_OPTIONS = 60
MOBILITY = 135

NAMES = {
    HOP_BY_HOP: "hop-by-hop",
    TCP: "tcp",
    UDP: "udp",
    IPV6: "ipv6",
    ROUTING: "routing",
    FRAGMENT: "fragment",
    ESP: "esp",
    AH: "ah",
    ICMPV6: "icmpv6",
    NO_NEXT_HEADER: "no-next-header",
    DESTINATION_OPTIONS: "destination-options",
    MOBILITY: "mobility",
}
