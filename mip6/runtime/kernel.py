"""The daemon on a real network: a link on a kernel interface, and the kernel state each role
keeps beside its engine (ISSUE 18). No lab hub, no UDP link: the box's own Ethernet interface.

**The link** (:class:`InterfaceLink`, ``{type: interface, name: eth0}``). Packets the roles must
see are taken from the interface at ingress, before the kernel's IPv6 stack, by an nftables
table of the netdev family on that device (``mip6_<device>``), which forwards them (``fwd``) to
a TAP device of ours (``m6<device>``, IPv6 disabled on it, so the kernel never uses it); the
daemon reads whole Ethernet frames from the TAP. Taken: Mobility Header packets, type 2
routing headers, IPv6-in-IPv6 and packets with a Destination Options header (a Home Address
option is one), each only when addressed to this box (``fib daddr type local``), and every
packet for a home address the daemon serves (an nftables set, :meth:`InterfaceLink.serve`).
Everything else stays with the kernel: the box's other programs keep working. What the daemon
sends goes through a raw IPv6 socket with the header included (IPPROTO_RAW), so the kernel
routes it and resolves neighbours as for its own packets; ingress hooks never see it, so there
is no loop. Neighbor Advertisements can be copied (``dup``) as well, for a home agent's
duplicate address detection (the kernel keeps its copy).

Why this mechanism, measured on the development box (kernel 6.18, ``zcat /proc/config.gz``):
``CONFIG_NFT_QUEUE`` is not set, so nftables cannot queue to user space at all (NFQUEUE exists
only through the xtables compatibility target, i.e. ip6tables and a per-packet verdict round
trip); there is no ip6_tunnel and no kernel Mobile IPv6, so the kernel cannot even decapsulate
what we would leave to it. ``CONFIG_NFT_FWD_NETDEV``, ``CONFIG_NFT_DUP_NETDEV`` and
``CONFIG_NFT_FIB_NETDEV`` are built in: an ingress rule steals the packet in the kernel, with
no verdict to return and no copy left behind for the kernel to answer with an ICMPv6 error
(which is what an AF_PACKET tap plus a separate drop rule would need two mechanisms for, and
policy routing into a TUN cannot do for packets addressed to the box itself: the local table
is looked up first). Tried with two namespaces and a veth (``tests/runtime/
test_interface_netns.py`` does it again): a Mobility Header, an IPv6-in-IPv6 and a type 2
routing header packet sent to the box arrived as frames on the TAP, while ``ping`` to the same
address kept its kernel answer. The end-to-end test's figures are in README ("Running on a
real network").

The nftables table and the TAP are named after the device, so a daemon that crashed leaves
nothing the next start does not remove first (:meth:`InterfaceLink.open`); :meth:`close`
removes both. The table is installed with ``nft -f`` (the nftables package): pyroute2's
nftables support does not cover netdev ``fwd``/``dup`` statements.

**The roles' kernel state** (:class:`NetworkDriver`, made by a role's registry entry,
``network_driver``), through netlink (pyroute2):

- :class:`HomeLinkProxy` (home agent): RFC 3775 10.4.1 proxy Neighbor Discovery: a proxy
  neighbour entry and a member of the link's served set for each home registration, removed
  when it is deleted or expires; the NAs its duplicate address detection waits for.
- :class:`MobileNodeKernel` (mobile node): care-of addresses from the kernel (SLAAC or
  static), movement from netlink events (RFC 3775 11.5.1), the home address on the shim's TUN
  with a policy rule while away and on the interface at home (11.5.4).
- :class:`CorrespondentRoutes` (correspondent): a /128 route into the shim's TUN for each bound
  home address, so only route-optimized traffic passes through the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import socket
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from typing import TYPE_CHECKING, Any, Protocol

from mip6.core.actions import Event
from mip6.runtime.links import MAX_PACKET, Link, Receiver
from mip6.wire import icmpv6 as icmp
from mip6.wire.ipv6 import Ipv6Packet

if TYPE_CHECKING:
    from pyroute2 import IPRoute

    from mip6.core.engine import Engine

log = logging.getLogger(__name__)

ETH_HEADER = 14
ETHERTYPE_IPV6 = b"\x86\xdd"
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
# The ingress chain runs before anything else on the device (tc, other netdev tables).
INGRESS_PRIORITY = -500
NFT = "nft"


def _name(device: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", device)


def nft_table(device: str) -> str:
    """The nftables netdev table of the link on ``device``."""
    return f"mip6_{_name(device)}"


def tap_name(device: str) -> str:
    """The TAP device the link's taken packets are forwarded to (15 characters at most)."""
    return f"m6{device}"[:15]


def nft(script: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [NFT, "-f", "-"], input=script, capture_output=True, text=True, timeout=10
    )
    if check and result.returncode != 0:
        raise OSError(f"nft failed: {result.stderr.strip()} (script: {script.strip()})")
    return result


def _sysctl(device: str, key: str) -> str:
    return f"/proc/sys/net/ipv6/conf/{device}/{key}"


def read_sysctl(device: str, key: str) -> str:
    with open(_sysctl(device, key), encoding="ascii") as file:
        return file.read().strip()


def write_sysctl(device: str, key: str, value: str) -> None:
    with open(_sysctl(device, key), "w", encoding="ascii") as file:
        file.write(value)


class InterfaceLink(Link):
    """A link on kernel interface ``device`` (see the module docstring)."""

    def __init__(self, name: str, device: str) -> None:
        self.name = name
        self.device = device
        self.table = nft_table(device)
        self.tap = None
        self.tap_device = tap_name(device)
        self.ifindex = 0
        self._fd = -1
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._receive: Receiver | None = None
        self.served: set[IPv6Address] = set()

    async def open(self, loop: asyncio.AbstractEventLoop, receive: Receiver) -> None:
        self.ifindex = socket.if_nametoindex(self.device)  # OSError: no such device
        remove_leftovers(self.device)
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.ioctl(
                fd, TUNSETIFF, struct.pack("16sH", self.tap_device.encode(), IFF_TAP | IFF_NO_PI)
            )
            # The kernel must never use our TAP: no addresses, no router solicitations on it
            write_sysctl(self.tap_device, "disable_ipv6", "1")
            subprocess.run(
                ["ip", "link", "set", self.tap_device, "up"], check=True, capture_output=True
            )
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self._sock.setblocking(False)
        nft(self._ruleset())
        self._loop = loop
        self._receive = receive
        loop.add_reader(fd, self._readable)
        log.info(
            "link %s: interface %s (nftables table netdev %s, tap %s)",
            self.name,
            self.device,
            self.table,
            self.tap_device,
        )

    def _ruleset(self) -> str:
        to = f'fwd to "{self.tap_device}"'
        local = "fib daddr type local"
        return f"""
table netdev {self.table} {{
    set served {{ type ipv6_addr; }}
    chain ingress {{
        type filter hook ingress device "{self.device}" priority {INGRESS_PRIORITY};
        ip6 daddr @served {to}
        {local} meta l4proto 135 {to}
        {local} meta l4proto ipv6 {to}
        {local} rt type 2 {to}
        {local} exthdr dst exists {to}
    }}
}}
"""

    def copy_neighbor_advertisements(self) -> None:
        """From now on a copy of every Neighbor Advertisement reaching the interface is read
        too (the kernel keeps the original): a home agent's duplicate address detection."""
        nft(
            f"add rule netdev {self.table} ingress icmpv6 type nd-neighbor-advert "
            f'dup to "{self.tap_device}"\n'
        )

    def serve(self, address: IPv6Address) -> None:
        """Take every packet for ``address`` (a home address registered here)."""
        nft(f"add element netdev {self.table} served {{ {address} }}\n")
        self.served.add(address)

    def unserve(self, address: IPv6Address) -> None:
        self.served.discard(address)
        nft(f"delete element netdev {self.table} served {{ {address} }}\n", check=False)

    def _readable(self) -> None:
        while True:
            try:
                frame = os.read(self._fd, MAX_PACKET)
            except BlockingIOError:
                return
            except OSError as error:
                log.warning("link %s: read failed: %s", self.name, error)
                return
            if frame[12:14] == ETHERTYPE_IPV6 and len(frame) > ETH_HEADER:
                self.received(frame[ETH_HEADER:])

    def fileno(self) -> int:
        return self._fd

    def received(self, data: bytes) -> None:
        assert self._receive is not None
        self._record(data)
        self._receive(data)

    def take_reading(self, reader: Callable[[], None]) -> None:
        raise NotImplementedError("the fast path does not read interface links")

    def send(self, data: bytes) -> None:
        if self._sock is None or len(data) < 40:
            return
        self._record(data)
        destination = IPv6Address(data[24:40])
        # Link-local and multicast destinations leave on this interface (RFC 4291 2.5.6)
        scope = self.ifindex if destination.is_link_local or destination.is_multicast else 0
        try:
            self._sock.sendto(data, (str(destination), 0, 0, scope))
        except OSError as error:  # no route, a full buffer: dropped, as a link drops
            log.warning("link %s: send to %s failed: %s", self.name, destination, error)

    def close(self) -> None:
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
        if self._fd >= 0:
            nft(f"delete table netdev {self.table}\n", check=False)
            os.close(self._fd)  # a TAP that is not persistent goes with its descriptor
            self._fd = -1
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        super().close()


def remove_leftovers(device: str) -> None:
    """What a daemon that died on ``device`` may have left: its nftables table and TAP."""
    if nft(f"delete table netdev {nft_table(device)}\n", check=False).returncode == 0:
        log.warning("removed nftables table %s left by an earlier run", nft_table(device))
    with contextlib.suppress(OSError):
        socket.if_nametoindex(tap_name(device))
        subprocess.run(["ip", "link", "delete", tap_name(device)], capture_output=True)
        log.warning("removed device %s left by an earlier run", tap_name(device))


# -- the roles' kernel state ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DriverContext:
    """What a role's network driver is given: its engine and options, the interface link,
    the shim's kernel TUN device (None without one), and how to give the engine a command."""

    engine: Engine
    options: dict[str, Any]
    link: InterfaceLink
    kernel_device: str | None
    command: Callable[[str, Any], None]
    loop: asyncio.AbstractEventLoop


class NetworkDriver(Protocol):
    """Kernel state a role keeps beside its engine on a real network."""

    def open(self) -> None: ...

    def observe(self, event: Event) -> None: ...

    def close(self) -> None: ...


# Routes and rules we add carry this protocol number, so a crashed run's are found and removed
# (rtnetlink protocol values up to RTPROT_STATIC (4) are the kernel's; 96 is unassigned in
# iproute2's rt_protos).
ROUTE_PROTOCOL = 96
# The mobile node's policy routing table and rule priority for packets from its home address.
POLICY_TABLE = 0x6D36
POLICY_PRIORITY = 0x6D36
BINDING_EVENTS = ("binding_added", "binding_deleted", "binding_expired", "binding_cache_restored")


def _iproute() -> IPRoute:
    from pyroute2 import IPRoute

    return IPRoute()


class HomeLinkProxy:
    """RFC 3775 10.4.1: "the home agent MUST ... intercept any packets ... addressed to the
    mobile node's home address ... using proxy Neighbor Discovery". The kernel answers
    Neighbor Solicitations for each registered home address (a proxy entry on the home
    interface; the kernel answers them only with proxy_ndp and forwarding on that interface,
    RFC 4861 7.2.8, so both are turned on and put back at close); the link takes the packets
    that then arrive for it and the engine tunnels them (RFC 2473)."""

    def __init__(self, context: DriverContext) -> None:
        self.context = context
        self.engine = context.engine
        self.link = context.link
        self.prefixes: tuple[IPv6Network, ...] = tuple(context.options["home_prefixes"])
        self.proxied: set[IPv6Address] = set()
        self._saved: dict[str, str] = {}
        self._ipr: IPRoute | None = None

    def open(self) -> None:
        self._ipr = _iproute()
        device = self.link.device
        # A crashed run's proxy entries: nobody else proxies this home agent's home addresses
        for entry in self._ipr.get_neighbours(family=socket.AF_INET6, ifindex=self.link.ifindex):
            address = entry.get_attr("NDA_DST")
            if entry["flags"] & _NTF_PROXY and self._home(address):
                self._ipr.neigh("del", dst=address, ifindex=self.link.ifindex, flags=_NTF_PROXY)
                log.warning("removed proxy entry %s left by an earlier run", address)
        for key, value in (("forwarding", "1"), ("proxy_ndp", "1")):
            self._saved[key] = read_sysctl(device, key)
            write_sysctl(device, key, value)
        if self._saved["forwarding"] == "0" and read_sysctl(device, "accept_ra") == "1":
            # Forwarding would stop the box learning from Router Advertisements on the home
            # link (accept_ra 1); 2 keeps it learning, so it is never left without IPv6
            self._saved["accept_ra"] = "1"
            write_sysctl(device, "accept_ra", "2")
        self.link.copy_neighbor_advertisements()  # the engine's DAD (RFC 3775 10.3.1)
        self._reconcile()

    def _home(self, address: str | None) -> bool:
        return address is not None and any(IPv6Address(address) in p for p in self.prefixes)

    def observe(self, event: Event) -> None:
        if event.name in BINDING_EVENTS:
            self._reconcile()

    def _reconcile(self) -> None:
        """The kernel's proxy entries and the link's served set follow the engine's home
        registrations (RFC 3775 10.3.2: deregistration or expiry stops the interception)."""
        assert self._ipr is not None
        wanted = {
            entry.home_address
            for entry in self.engine.binding_cache  # type: ignore[attr-defined]
            if entry.home_registration
        }
        for home in sorted(wanted - self.proxied):
            self._ipr.neigh("replace", dst=str(home), ifindex=self.link.ifindex, flags=_NTF_PROXY)
            self.link.serve(home)
            self.proxied.add(home)
            log.info("proxy ND for home address %s on %s", home, self.link.device)
        for home in sorted(self.proxied - wanted):
            self._unproxy(home)

    def _unproxy(self, home: IPv6Address) -> None:
        assert self._ipr is not None
        self.link.unserve(home)
        with contextlib.suppress(Exception):  # NetlinkError: already gone
            self._ipr.neigh("del", dst=str(home), ifindex=self.link.ifindex, flags=_NTF_PROXY)
        self.proxied.discard(home)
        log.info("proxy ND for home address %s removed", home)

    def close(self) -> None:
        if self._ipr is None:
            return
        for home in sorted(self.proxied):
            self._unproxy(home)
        for key, value in self._saved.items():
            with contextlib.suppress(OSError):
                write_sysctl(self.link.device, key, value)
        self._ipr.close()
        self._ipr = None


_NTF_PROXY = 0x08  # linux/neighbour.h


class CorrespondentRoutes:
    """A /128 route into the shim's TUN device for each home address bound here (RFC 3775
    9.3.2: packets to it take the binding's type 2 routing header): the kernel's other traffic
    never passes through the daemon."""

    def __init__(self, context: DriverContext) -> None:
        if context.kernel_device is None:
            raise ValueError("a correspondent on a real network needs its kernel link (shim)")
        self.context = context
        self.engine = context.engine
        self.kernel_device = context.kernel_device
        self.routed: set[IPv6Address] = set()
        self._ipr: IPRoute | None = None
        self._tun_index = 0

    def open(self) -> None:
        self._ipr = _iproute()
        self._tun_index = self._ipr.link_lookup(ifname=self.kernel_device)[0]
        remove_routes(self._ipr)
        self._reconcile()

    def observe(self, event: Event) -> None:
        if event.name in BINDING_EVENTS:
            self._reconcile()

    def _reconcile(self) -> None:
        assert self._ipr is not None
        wanted = {entry.home_address for entry in self.engine.binding_cache}  # type: ignore[attr-defined]
        for home in sorted(wanted - self.routed):
            self._ipr.route(
                "replace",
                dst=f"{home}/128",
                oif=self._tun_index,
                proto=ROUTE_PROTOCOL,
                family=socket.AF_INET6,
            )
            self.routed.add(home)
            log.info("route optimized: %s through %s", home, self.kernel_device)
        for home in sorted(self.routed - wanted):
            with contextlib.suppress(Exception):
                self._ipr.route("del", dst=f"{home}/128", family=socket.AF_INET6)
            self.routed.discard(home)
            log.info("binding for %s gone: its route removed", home)

    def close(self) -> None:
        if self._ipr is None:
            return
        remove_routes(self._ipr)
        self.routed.clear()
        self._ipr.close()
        self._ipr = None


def remove_routes(ipr: IPRoute) -> None:
    """Every IPv6 route and rule of ours (:data:`ROUTE_PROTOCOL`, :data:`POLICY_TABLE`)."""
    for table in (254, POLICY_TABLE):
        for route in ipr.get_routes(family=socket.AF_INET6, table=table):
            if route["proto"] == ROUTE_PROTOCOL:
                with contextlib.suppress(Exception):
                    ipr.route("del", **_route_key(route))
    for rule in ipr.get_rules(family=socket.AF_INET6):
        if rule.get_attr("FRA_PRIORITY") == POLICY_PRIORITY:
            with contextlib.suppress(Exception):
                ipr.rule("del", family=socket.AF_INET6, priority=POLICY_PRIORITY)


def _route_key(route: Any) -> dict[str, Any]:
    key: dict[str, Any] = {
        "family": socket.AF_INET6,
        "table": route.get_attr("RTA_TABLE") or route["table"],
        "dst_len": route["dst_len"],
        "proto": route["proto"],
    }
    dst = route.get_attr("RTA_DST")
    if dst is not None:
        key["dst"] = dst
    oif = route.get_attr("RTA_OIF")
    if oif is not None:
        key["oif"] = oif
    return key


_IFA_F_NODAD = 0x02
_IFA_F_TENTATIVE = 0x40
_IFA_F_DADFAILED = 0x08
_IFA_F_PERMANENT = 0x80
_IFF_LOWER_UP = 0x10000


class MobileNodeKernel:
    """Movement detection from the kernel (RFC 3775 11.5.1) and the home address's place.

    The care-of address is a global address the kernel has on the interface (SLAAC from the
    link's Router Advertisements, or configured) outside the home prefix, usable (not
    tentative, not failed DAD). Netlink events (addresses, routes, the link) make the driver
    look again; a different care-of address is a movement (the engine's ``move``), a usable
    address of the home prefix on the interface means home (``move`` to None, 11.5.4).

    When the link loses its carrier (unplugged, moved to another switch) the addresses and
    default routes the kernel learnt from the old link's advertisements are removed: RFC 3775
    11.5.1 asks a mobile node to stop trusting the old router and prefixes once it may have
    moved, and the kernel would otherwise keep them for their full lifetimes (a day) and route
    through a router that is no longer there. Configured (permanent) addresses stay.

    Away from home the home address sits on the shim's TUN device (/128) with a policy rule
    sending packets from it into that device, so stock programs can use it as a source and
    what the engine delivers for it is local; at home it is on the interface with the home
    prefix and no DAD (11.5.4: the home agent still defends it until the deregistration is
    acknowledged), and the node announces it with an unsolicited Neighbor Advertisement."""

    def __init__(self, context: DriverContext) -> None:
        if context.kernel_device is None:
            raise ValueError("a mobile node on a real network needs its kernel link (shim)")
        self.context = context
        self.link = context.link
        self.kernel_device = context.kernel_device
        self.home_address: IPv6Address = context.options["home_address"]
        length = context.options.get("home_prefix_length", 64)
        self.home_prefix = IPv6Network(f"{self.home_address}/{length}", strict=False)
        self.care_of: IPv6Address | None = None
        self.at_home: bool | None = None  # unknown until the first look
        self._ipr: IPRoute | None = None
        self._events: IPRoute | None = None
        self._tun_index = 0
        self._carrier = True

    def open(self) -> None:
        from pyroute2.netlink.rtnl import RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE, RTMGRP_LINK

        self._ipr = _iproute()
        self._tun_index = self._ipr.link_lookup(ifname=self.kernel_device)[0]
        remove_routes(self._ipr)
        self._remove_home_address()
        self._ipr.route(
            "replace",
            dst="::/0",
            oif=self._tun_index,
            table=POLICY_TABLE,
            proto=ROUTE_PROTOCOL,
            family=socket.AF_INET6,
        )
        self._events = _iproute()
        self._events.bind(groups=RTMGRP_LINK | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE)
        self.context.loop.add_reader(self._events.fileno(), self._netlink)
        self._carrier = self._has_carrier()
        self._look()

    def _netlink(self) -> None:
        assert self._events is not None
        try:
            messages = self._events.get()
        except OSError as error:
            log.warning("netlink: %s", error)
            return
        carrier = self._has_carrier()
        if self._carrier and not carrier:
            self._forget_link()
        self._carrier = carrier
        if messages:
            self._look()

    def _has_carrier(self) -> bool:
        assert self._ipr is not None
        (info,) = self._ipr.get_links(self.link.ifindex)
        return bool(info["flags"] & _IFF_LOWER_UP)

    def _addresses(self) -> list[tuple[IPv6Address, int, int]]:
        """The interface's global IPv6 addresses with their flags and prefix lengths."""
        assert self._ipr is not None
        out = []
        for message in self._ipr.get_addr(family=socket.AF_INET6, index=self.link.ifindex):
            address = IPv6Address(message.get_attr("IFA_ADDRESS"))
            if address.is_link_local or address.is_multicast:
                continue
            flags = message.get_attr("IFA_FLAGS") or message["flags"]
            out.append((address, flags, message["prefixlen"]))
        return out

    def _forget_link(self) -> None:
        """The carrier went: the old link's learnt addresses and routers go too (see the
        class docstring)."""
        assert self._ipr is not None
        for address, flags, length in self._addresses():
            if not flags & _IFA_F_PERMANENT and address != self.home_address:
                with contextlib.suppress(Exception):
                    self._ipr.addr(
                        "del", index=self.link.ifindex, address=str(address), prefixlen=length
                    )
        for route in self._ipr.get_routes(family=socket.AF_INET6, oif=self.link.ifindex):
            if route["proto"] == _RTPROT_RA:
                with contextlib.suppress(Exception):
                    self._ipr.route("del", **_route_key(route))
        log.info("link %s lost its carrier: forgot the old link's addresses and routers",
                 self.link.device)  # fmt: skip

    def _look(self) -> None:
        """Where are we (RFC 3775 11.5.1)? Tell the engine when that changed."""
        if not self._carrier:
            return
        usable = [
            address
            for address, flags, _ in self._addresses()
            if not flags & (_IFA_F_TENTATIVE | _IFA_F_DADFAILED) and address != self.home_address
        ]
        home = any(address in self.home_prefix for address in usable)
        care_of = next((a for a in usable if a not in self.home_prefix), None)
        if home and self.at_home is not True:
            self.at_home, self.care_of = True, None
            self._home_on_interface()
            log.info("movement detected: at home (%s)", self.home_prefix)
            self.context.command("move", None)
            self._announce_home_address()
        elif (
            not home
            and care_of is not None
            and (self.at_home is not False or care_of != self.care_of)
        ):
            if self.at_home is not False:
                self._home_on_tun()
            self.at_home, self.care_of = False, care_of
            log.info("movement detected: care-of address %s", care_of)
            self.context.command("move", str(care_of))

    def _home_on_tun(self) -> None:
        assert self._ipr is not None
        self._remove_home_address()
        self._ipr.addr(
            "add",
            index=self._tun_index,
            address=str(self.home_address),
            prefixlen=128,
            flags=_IFA_F_NODAD,
        )
        self._ipr.rule(
            "add",
            family=socket.AF_INET6,
            src=str(self.home_address),
            src_len=128,
            table=POLICY_TABLE,
            priority=POLICY_PRIORITY,
        )

    def _home_on_interface(self) -> None:
        assert self._ipr is not None
        self._remove_home_address()
        # RFC 3775 11.5.4: no DAD for the home address on return (the home agent answers
        # for it until the deregistration is done)
        self._ipr.addr(
            "add",
            index=self.link.ifindex,
            address=str(self.home_address),
            prefixlen=self.home_prefix.prefixlen,
            flags=_IFA_F_NODAD,
        )

    def _announce_home_address(self) -> None:
        """RFC 3775 11.5.4: the mobile node multicasts a Neighbor Advertisement for its home
        address (Override set, its own link-layer address) so the home link's nodes stop
        sending to the home agent's."""
        assert self._ipr is not None
        (info,) = self._ipr.get_links(self.link.ifindex)
        mac = bytes.fromhex(info.get_attr("IFLA_ADDRESS").replace(":", ""))
        advertisement = Ipv6Packet(
            source=self.home_address,
            destination=IPv6Address("ff02::1"),
            hop_limit=255,
            payload=icmp.NeighborAdvertisement(
                target_address=self.home_address,
                override=True,
                options=(icmp.TargetLinkLayerAddress.padded(mac),),
            ),
        )
        self.link.send(advertisement.emit())

    def _remove_home_address(self) -> None:
        """The home address wherever we put it, and the rule for it."""
        assert self._ipr is not None
        for index, length in (
            (self._tun_index, 128),
            (self.link.ifindex, self.home_prefix.prefixlen),
        ):
            with contextlib.suppress(Exception):
                self._ipr.addr("del", index=index, address=str(self.home_address), prefixlen=length)
        for rule in self._ipr.get_rules(family=socket.AF_INET6):
            if rule.get_attr("FRA_PRIORITY") == POLICY_PRIORITY:
                with contextlib.suppress(Exception):
                    self._ipr.rule("del", family=socket.AF_INET6, priority=POLICY_PRIORITY)

    def observe(self, event: Event) -> None:
        """The engine's events change nothing here: the kernel's do."""

    def close(self) -> None:
        if self._ipr is None:
            return
        if self._events is not None:
            self.context.loop.remove_reader(self._events.fileno())
            self._events.close()
            self._events = None
        if not self.at_home:
            self._remove_home_address()
        remove_routes(self._ipr)
        self._ipr.close()
        self._ipr = None


_RTPROT_RA = 9  # linux/rtnetlink.h: a route learnt from a Router Advertisement
