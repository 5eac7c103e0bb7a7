"""The daemon on a real network: a link on a kernel interface, and the kernel state each role
keeps beside its engine (ISSUE 18). No lab hub, no UDP link: the box's own Ethernet interface.

**The link** (:class:`InterfaceLink`, ``{type: interface, name: eth0}``). Packets the roles must
see are taken from the interface at ingress, before the kernel's IPv6 stack, by an nftables
table of the netdev family on that device (``mip6_<device>``), which forwards them (``fwd``) to
a TAP device of ours (``m6<device>``, IPv6 disabled on it, so the kernel never uses it); the
daemon reads whole Ethernet frames from the TAP. Taken: Mobility Header packets, type 2
routing headers, IPv6-in-IPv6 and packets with a Destination Options header (a Home Address
option is one), each only when addressed to this box (``fib daddr type local``), and every
packet for a home address the daemon serves or for a member's own address (an nftables set,
:meth:`InterfaceLink.serve`) but Neighbor Discovery: a neighbour's unicast solicitation of a
home address (its reachability check) is the kernel's to answer for the proxy entry, not the
mobile node's, and the kernel answers for a member's address it holds.
A Destination Options header without a Home Address option is rare; behind a shim the engine
hands such a packet on to the kernel, a home agent in router mode (no kernel link) drops it.
With RFC 3776 SAs, ESP for this box with the SPI of one of the node's inbound SAs is taken too
(:meth:`InterfaceLink.take_esp`). Everything else stays with the kernel: the box's other
programs keep working. What the daemon
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
address kept its kernel answer. Throughput and round trips through the daemons on such links
(``python -m tests.runtime.real_network_bench``) and the end-to-end test's movement times are
in README ("Running on a real network").

A mobile node may name several interfaces, most preferred first (``name: [eth0, wlan0]``,
:class:`Uplinks`): a link on each, all read, the daemon's packets sent on the one whose
address is the care-of address (its raw socket is bound to that device, so they leave by that
link's router whatever the box's other default routes), chosen by :class:`MobileNodeKernel`.

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
  static), movement from netlink events (RFC 3775 11.5.1) on one interface or among several
  uplinks (the most preferred one with its carrier, a usable address and a router), the home
  address on the shim's TUN with a policy rule while away and on the interface at home
  (11.5.4).
- :class:`CorrespondentRoutes` (correspondent): a /128 route into the shim's TUN for each bound
  home address, so only route-optimized traffic passes through the daemon.
- :class:`MemberAddress` (distributed-server member, host mode): the member's own address on
  the interface for the kernel's Neighbor Discovery, every other packet for it taken by the
  link (the home agent's tunnel of the contact address, clients' route-optimized packets,
  the member channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from typing import TYPE_CHECKING, Any, Protocol

from mip6.core.actions import Event
from mip6.core.addresses import home_agents_anycast
from mip6.core.datapath import TUNNEL_OVERHEAD
from mip6.core.ipsec.sa import Direction
from mip6.core.node import MINIMUM_MTU
from mip6.runtime.links import MAX_PACKET, Link, Receiver
from mip6.wire import icmpv6 as icmp
from mip6.wire.ipv6 import Ipv6Packet

if TYPE_CHECKING:
    from pyroute2 import AsyncIPRoute

    from mip6.core.engine import Engine
    from mip6.core.ipsec.policy import SecurityPolicyDatabase

log = logging.getLogger(__name__)

ETH_HEADER = 14
ETHERTYPE_IPV6 = b"\x86\xdd"
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
# The ingress chain runs before anything else on the device (tc, other netdev tables).
INGRESS_PRIORITY = -500
NFT = "nft"
HAAD_REQUEST = 144  # ICMPv6 Home Agent Address Discovery Request (RFC 3775 6.5)


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
        self.tap_device = tap_name(device)
        self.ifindex = 0
        self._fd = -1
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._receive: Receiver | None = None
        self.served: set[IPv6Address] = set()
        self.dropped = 0  # packets the kernel would not send
        self._next_warning = 0.0

    async def open(self, loop: asyncio.AbstractEventLoop, receive: Receiver) -> None:
        try:
            self.ifindex = socket.if_nametoindex(self.device)
        except OSError:
            raise OSError(f"link {self.name}: no interface {self.device} on this box") from None
        ipr = await _iproute()
        try:
            await remove_leftovers(ipr, self.device)
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                flags = struct.pack("16sH", self.tap_device.encode(), IFF_TAP | IFF_NO_PI)
                fcntl.ioctl(fd, TUNSETIFF, flags)
                # The kernel must never use our TAP: no addresses, no router solicitations
                write_sysctl(self.tap_device, "disable_ipv6", "1")
                tap = socket.if_nametoindex(self.tap_device)
                await ipr.link("set", index=tap, state="up")
                nft(self._ruleset())
            except BaseException:
                os.close(fd)  # the TAP goes with it
                raise
        finally:
            ipr.close()
        self._fd = fd
        self._sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        # What the link sends leaves on its interface, whatever other routes the box has: a
        # correspondent's /128 route into its shim for a bound home address (CorrespondentRoutes)
        # would otherwise take the daemon's own packets to that address (a Binding Refresh
        # Request, RFC 3775 9.5.5) back into the daemon
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.device.encode())
        # Nor do its multicasts come back to the box's own stack: a home agent's unsolicited
        # Neighbor Advertisement for a home address it starts to proxy (RFC 3775 10.4.1)
        # carries its own link-layer address with Override set, and the box's neighbour cache
        # would take it for the address's own and send itself what it later routes there
        # (the mobile node back home: the BA of its deregistration, RFC 3775 10.3.2)
        self._sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        self._sock.setblocking(False)
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
        ip6 daddr @served meta l4proto != icmpv6 {to}
        ip6 daddr @served icmpv6 type != {{ nd-neighbor-solicit, nd-neighbor-advert }} {to}
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

    def take_esp(self, spis: list[int]) -> None:
        """From now on ESP packets for this box with one of ``spis`` (the SPIs of the node's
        inbound SAs, RFC 3776) are read too: only those, so the box's own IPsec keeps its
        packets. Transport-mode ones (a BU behind a Home Address option, a BA behind a type
        2 routing header) are taken by the rules above already; this is for the tunnel mode of
        HoTI and HoT (RFC 3776 4.2), where ESP follows the IPv6 header."""
        listed = ", ".join(str(spi) for spi in spis)
        nft(
            f"add rule netdev {self.table} ingress fib daddr type local esp spi {{ {listed} }} "
            f'fwd to "{self.tap_device}"\n'
        )

    def take_home_agent_discovery(self, anycast: list[IPv6Address]) -> None:
        """From now on Home Agent Address Discovery Requests (ICMPv6 type 144) to one of
        ``anycast`` are read too: RFC 3775 10.5 has a home agent answer those sent to the
        Mobile IPv6 Home-Agents anycast address of its home subnet, an address the kernel does
        not have (it would forward or drop them)."""
        listed = ", ".join(str(address) for address in anycast)
        nft(
            f"add rule netdev {self.table} ingress ip6 daddr {{ {listed} }} icmpv6 type "
            f'{HAAD_REQUEST} fwd to "{self.tap_device}"\n'
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
        except OSError as error:  # no route, no carrier, a full buffer: dropped, as links drop
            self.dropped += 1
            now = time.monotonic()
            if now >= self._next_warning:  # a burst (an unplugged cable) is one line a second
                self._next_warning = now + 1.0
                log.warning(
                    "link %s: send to %s failed: %s (%d dropped so far)",
                    self.name,
                    destination,
                    error,
                    self.dropped,
                )

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


async def remove_leftovers(ipr: AsyncIPRoute, device: str) -> None:
    """What a daemon that died on ``device`` may have left: its nftables table and TAP (a
    TAP goes with its last descriptor, unless something made it persistent)."""
    if nft(f"delete table netdev {nft_table(device)}\n", check=False).returncode == 0:
        log.warning("removed nftables table %s left by an earlier run", nft_table(device))
    with contextlib.suppress(OSError):
        index = socket.if_nametoindex(tap_name(device))
        await _quietly(ipr.link("del", index=index))
        log.warning("removed device %s left by an earlier run", tap_name(device))


class Uplinks(Link):
    """A mobile node's network side on several interfaces (``name: [eth0, wlan0]``), most
    preferred first: an :class:`InterfaceLink` on each, all of them read; what the daemon
    sends leaves on the active one, the interface whose address is the care-of address
    (:class:`MobileNodeKernel` chooses it). One at a time: RFC 3775 registers one primary
    care-of address with the home agent (3.2, 11.5.3), so packets sourced from it must leave
    where it is on-link, and the other interfaces stand by (their packets, a late one for an
    old care-of address, still reach the engine)."""

    def __init__(self, name: str, devices: tuple[str, ...]) -> None:
        self.name = name
        self.members = tuple(InterfaceLink(name, device) for device in devices)
        self.active = self.members[0]

    async def open(self, loop: asyncio.AbstractEventLoop, receive: Receiver) -> None:
        # one that fails (no such interface) leaves those opened before it to close(), which
        # the daemon calls whenever opening fails half-way
        for member in self.members:
            member.tap = self.tap  # one capture of the node's network side
            await member.open(loop, receive)

    def use(self, member: InterfaceLink) -> None:
        """From now on the daemon's packets leave on ``member``."""
        if member is not self.active:
            log.info("link %s: sending on %s", self.name, member.device)
        self.active = member

    def take_esp(self, spis: list[int]) -> None:
        for member in self.members:
            member.take_esp(spis)

    def send(self, data: bytes) -> None:
        self.active.send(data)

    def close(self) -> None:
        for member in self.members:
            member.tap = None  # closed once, below
            member.close()
        super().close()


# -- the roles' kernel state ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DriverContext:
    """What a role's network driver is given: its engine and options, the interface link,
    the shim's kernel TUN device (None without one), and how to give the engine a command."""

    engine: Engine
    options: dict[str, Any]
    link: InterfaceLink | Uplinks  # Uplinks: a mobile node's several interfaces
    kernel_device: str | None
    command: Callable[[str, Any], None]


def one_interface(context: DriverContext, node: str) -> InterfaceLink:
    """The one interface of a node that is not a mobile node (the configuration lets only a
    mobile node name several uplinks)."""
    if not isinstance(context.link, InterfaceLink):
        raise ValueError(f"a {node} runs on one interface, not several uplinks")
    return context.link


class NetworkDriver(Protocol):
    """Kernel state a role keeps beside its engine on a real network. ``observe`` sees every
    event of the engine (it may start work on the loop); ``close`` removes all it added.
    ``before_engine``: ``open`` runs before the engine starts (the engine's first packets
    need what it adds), else right after (it may give the started engine commands)."""

    before_engine: bool

    async def open(self) -> None: ...

    def observe(self, event: Event) -> None: ...

    async def close(self) -> None: ...


# Routes and rules we add carry this protocol number, so a crashed run's are found and removed
# (rtnetlink protocol values up to RTPROT_STATIC (4) are the kernel's; 96 is unassigned in
# iproute2's rt_protos).
ROUTE_PROTOCOL = 96
# The mobile node's policy routing table and rule priority for packets from its home address.
POLICY_TABLE = 0x6D36
POLICY_PRIORITY = 0x6D36
BINDING_EVENTS = ("binding_added", "binding_deleted", "binding_expired", "binding_cache_restored")
MAIN_TABLE = 254
_NTF_PROXY = 0x08  # linux/neighbour.h
_IFA_F_NODAD = 0x02
_IFA_F_DADFAILED = 0x08
_IFA_F_OPTIMISTIC = 0x04
_IFA_F_TENTATIVE = 0x40
_IFA_F_PERMANENT = 0x80
_IFF_LOWER_UP = 0x10000
_RTPROT_RA = 9  # linux/rtnetlink.h: a route learnt from a Router Advertisement
ROUTING_TYPE_2 = 24  # bytes of a type 2 routing header (RFC 3775 6.4)


async def _iproute() -> AsyncIPRoute:
    # pyroute2's synchronous IPRoute runs an event loop of its own, which cannot run inside
    # the daemon's: the asynchronous API on the daemon's loop instead
    from pyroute2 import AsyncIPRoute

    return AsyncIPRoute()


async def _quietly(call: Awaitable[Any]) -> None:
    """A netlink change whose failure changes nothing (removing what is already gone)."""
    from pyroute2.netlink.exceptions import NetlinkError

    with contextlib.suppress(NetlinkError):
        await call


async def _listed(generator: Awaitable[AsyncIterator[Any]]) -> list[Any]:
    return [message async for message in await generator]


async def size_kernel_device(
    ipr: AsyncIPRoute, tun: int, links: Iterable[int], overhead: int
) -> None:
    """The shim's TUN device gets the interfaces' MTU (the smallest, with several uplinks: a
    connection outlives a move between them) less what the engine adds to a packet at most:
    the kernel sizes its packets (TCP's MSS among them) by the device's MTU, and a packet the
    engine makes too big for the interface cannot be sent (the raw socket refuses it)."""
    smallest = min(
        [info.get_attr("IFLA_MTU") for link in links for info in await _listed(ipr.get_links(link))]
    )
    mtu = max(smallest - overhead, MINIMUM_MTU)
    await ipr.link("set", index=tun, mtu=mtu)
    log.info("kernel device MTU %d (interface %d less %d bytes)", mtu, smallest, overhead)


class _Reconciler:
    """Kernel state that follows the engine's binding cache: ``_reconcile`` runs after binding
    events, one run at a time, again if events came during a run."""

    _task: asyncio.Task[None] | None = None
    _dirty = False

    def observe(self, event: Event) -> None:
        if event.name not in BINDING_EVENTS:
            return
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                await self._reconcile()
            except Exception:  # netlink refused: logged, tried again at the next event
                log.exception("kernel state does not follow the binding cache")

    async def _reconcile(self) -> None:
        raise NotImplementedError

    async def _settle(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


# Where a daemon notes the sysctls it changes before it changes them, so that the next start
# after a crash puts back the box's own values, not the ones the crashed run left
STATE_DIR = "/run/mip6"


def _sysctl_record(device: str) -> str:
    # one namespace's devices: /run is shared between namespaces
    namespace = os.stat("/proc/self/ns/net").st_ino
    return os.path.join(STATE_DIR, f"sysctl-{namespace}-{_name(device)}.json")


def saved_sysctls(device: str) -> dict[str, str] | None:
    """What a run that did not close noted for ``device``; None without a record."""
    try:
        with open(_sysctl_record(device), encoding="utf-8") as file:
            values = json.load(file)
    except (OSError, ValueError):
        return None
    log.warning("sysctls of %s as an earlier run found them: %s", device, values)
    return {str(key): str(value) for key, value in values.items()}


def save_sysctls(device: str, values: dict[str, str]) -> None:
    os.makedirs(STATE_DIR, exist_ok=True)
    with open(_sysctl_record(device), "w", encoding="utf-8") as file:
        json.dump(values, file)


def forget_sysctls(device: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_sysctl_record(device))


class HomeLinkProxy(_Reconciler):
    """RFC 3775 10.4.1: "the home agent MUST ... intercept any packets ... addressed to the
    mobile node's home address ... using proxy Neighbor Discovery". The kernel answers
    Neighbor Solicitations for each registered home address (a proxy entry on the home
    interface; Linux answers for them only with proxy_ndp and forwarding on that interface,
    so both are turned on and put back at close); the link takes the packets that then arrive
    for the address and the engine tunnels them (RFC 2473). When it starts to proxy an address
    it advertises it once, unsolicited, so the home link's caches of the mobile node's own
    link-layer address are overridden (10.4.1; the RFC allows up to MAX_NEIGHBOR_ADVERTISEMENT,
    3)."""

    before_engine = False

    def __init__(self, context: DriverContext) -> None:
        self.engine = context.engine
        self.link = one_interface(context, "home agent")
        self.prefixes: tuple[IPv6Network, ...] = tuple(context.options["home_prefixes"])
        self.address: IPv6Address = context.options["address"]
        self.proxied: set[IPv6Address] = set()
        self._saved: dict[str, str] = {}
        self._ipr: AsyncIPRoute | None = None

    async def open(self) -> None:
        self._ipr = await _iproute()
        device = self.link.device
        # A crashed run's proxy entries: nobody else proxies this home agent's home addresses
        for address in await self._proxy_entries():
            if any(address in prefix for prefix in self.prefixes):
                await _quietly(self._neigh("del", address))
                log.warning("removed proxy entry %s left by an earlier run", address)
        # The values as the box had them: a killed run's record of them, or now
        self._saved = saved_sysctls(device) or {
            key: read_sysctl(device, key) for key in ("forwarding", "proxy_ndp", "accept_ra")
        }
        save_sysctls(device, self._saved)
        write_sysctl(device, "forwarding", "1")
        write_sysctl(device, "proxy_ndp", "1")
        if self._saved["forwarding"] == "0" and self._saved["accept_ra"] == "1":
            # Forwarding would stop the box learning from Router Advertisements on the home
            # link (accept_ra 1); 2 keeps it learning, so it is never left without IPv6
            write_sysctl(device, "accept_ra", "2")
        self.link.copy_neighbor_advertisements()  # the engine's DAD (RFC 3775 10.3.1)
        self.link.take_home_agent_discovery([home_agents_anycast(p) for p in self.prefixes])
        take_esp(self.engine, self.link)
        await self._reconcile()
        log.info(
            "home link %s: proxy ND for home addresses of %s",
            device,
            ", ".join(str(prefix) for prefix in self.prefixes),
        )

    async def _proxy_entries(self) -> list[IPv6Address]:
        """The interface's proxy neighbour entries. The kernel lists them only for a dump
        request with NTF_PROXY in its own flags, which pyroute2's ``neigh("dump")`` does not
        send (it filters what it gets back): the request is made here."""
        from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST
        from pyroute2.netlink.rtnl import RTM_GETNEIGH
        from pyroute2.netlink.rtnl.ndmsg import ndmsg

        assert self._ipr is not None
        request = ndmsg()
        request["family"] = socket.AF_INET6
        request["flags"] = _NTF_PROXY
        entries = await _listed(
            self._ipr.nlm_request(
                request, msg_type=RTM_GETNEIGH, msg_flags=NLM_F_REQUEST | NLM_F_DUMP
            )
        )
        return [
            IPv6Address(entry.get_attr("NDA_DST"))
            for entry in entries
            if entry["ifindex"] == self.link.ifindex and entry.get_attr("NDA_DST")
        ]

    def _neigh(self, command: str, address: IPv6Address) -> Awaitable[Any]:
        assert self._ipr is not None
        return self._ipr.neigh(
            command, dst=str(address), ifindex=self.link.ifindex, flags=_NTF_PROXY
        )

    async def _reconcile(self) -> None:
        """The proxy entries and the link's served set follow the engine's home registrations
        (RFC 3775 10.3.2: deregistration, and expiry, stop the interception)."""
        wanted = {
            entry.home_address
            for entry in self.engine.binding_cache  # type: ignore[attr-defined]
            if entry.home_registration
        }
        for home in sorted(wanted - self.proxied):
            await self._neigh("replace", home)
            self.link.serve(home)
            self.proxied.add(home)
            self.link.send(
                unsolicited_advertisement(self.address, home, await _mac(self._ipr, self.link))
            )
            log.info("proxy ND for home address %s on %s", home, self.link.device)
        for home in sorted(self.proxied - wanted):
            await self._unproxy(home)

    async def _unproxy(self, home: IPv6Address) -> None:
        self.link.unserve(home)
        await _quietly(self._neigh("del", home))
        self.proxied.discard(home)
        log.info("proxy ND for home address %s removed", home)

    async def close(self) -> None:
        if self._ipr is None:
            return
        await self._settle()
        for home in sorted(self.proxied):
            await self._unproxy(home)
        for key, value in self._saved.items():
            with contextlib.suppress(OSError):
                write_sysctl(self.link.device, key, value)
        forget_sysctls(self.link.device)
        self._ipr.close()
        self._ipr = None


class CorrespondentRoutes(_Reconciler):
    """A /128 route into the shim's TUN device for each home address bound here (RFC 3775
    9.3.2: packets to it take the binding's type 2 routing header): the kernel's other traffic
    never passes through the daemon."""

    before_engine = False

    def __init__(self, context: DriverContext) -> None:
        if context.kernel_device is None:
            raise ValueError("a correspondent on a real network needs its kernel link (shim)")
        self.engine = context.engine
        self.link = one_interface(context, "correspondent")
        self.kernel_device = context.kernel_device
        self.routed: set[IPv6Address] = set()
        self._ipr: AsyncIPRoute | None = None
        self._tun_index = 0

    async def open(self) -> None:
        self._ipr = await _iproute()
        self._tun_index = socket.if_nametoindex(self.kernel_device)
        # RFC 3775 6.4: a bound packet grows by a type 2 routing header
        await size_kernel_device(self._ipr, self._tun_index, [self.link.ifindex], ROUTING_TYPE_2)
        await remove_routes(self._ipr)
        await self._reconcile()

    async def _reconcile(self) -> None:
        assert self._ipr is not None
        wanted = {entry.home_address for entry in self.engine.binding_cache}  # type: ignore[attr-defined]
        for home in sorted(wanted - self.routed):
            await self._ipr.route(
                "replace",
                dst=f"{home}/128",
                oif=self._tun_index,
                proto=ROUTE_PROTOCOL,
                family=socket.AF_INET6,
            )
            self.routed.add(home)
            log.info("route optimized: %s through %s", home, self.kernel_device)
        for home in sorted(self.routed - wanted):
            await _quietly(self._ipr.route("del", dst=f"{home}/128", family=socket.AF_INET6))
            self.routed.discard(home)
            log.info("binding for %s gone: its route removed", home)

    async def close(self) -> None:
        if self._ipr is None:
            return
        await self._settle()
        await remove_routes(self._ipr)
        self.routed.clear()
        self._ipr.close()
        self._ipr = None


async def remove_routes(ipr: AsyncIPRoute) -> None:
    """Every IPv6 route and rule of ours (:data:`ROUTE_PROTOCOL`, :data:`POLICY_PRIORITY`)."""
    for table in (MAIN_TABLE, POLICY_TABLE):
        for route in await _listed(ipr.get_routes(family=socket.AF_INET6, table=table)):
            if route["proto"] == ROUTE_PROTOCOL:
                await _quietly(ipr.route("del", **_route_key(route)))
    for rule in await _listed(ipr.get_rules(family=socket.AF_INET6)):
        if rule.get_attr("FRA_PRIORITY") == POLICY_PRIORITY:
            await _quietly(ipr.rule("del", family=socket.AF_INET6, priority=POLICY_PRIORITY))


def _route_key(route: Any) -> dict[str, Any]:
    key: dict[str, Any] = {
        "family": socket.AF_INET6,
        "table": route.get_attr("RTA_TABLE") or route["table"],
        "dst_len": route["dst_len"],
        "proto": route["proto"],
    }
    for attribute, name in (("RTA_DST", "dst"), ("RTA_OIF", "oif"), ("RTA_GATEWAY", "gateway")):
        value = route.get_attr(attribute)
        if value is not None:
            key[name] = value
    return key


def _usable(flags: int) -> bool:
    """An address DAD has not failed for and either finished or lets us use already (RFC 4429
    Optimistic DAD, where the box's optimistic_dad and use_optimistic sysctls allow it)."""
    if flags & _IFA_F_DADFAILED:
        return False
    return not flags & _IFA_F_TENTATIVE or bool(flags & _IFA_F_OPTIMISTIC)


def take_esp(engine: Engine, link: InterfaceLink | Uplinks) -> None:
    """The link takes the ESP of the engine's inbound SAs, if it has an SA database."""
    security: SecurityPolicyDatabase | None = engine.security  # type: ignore[attr-defined]
    if security is None:
        return
    spis = sorted(
        sa.spi for sa in security.security_associations() if sa.direction is Direction.INBOUND
    )
    if spis:
        link.take_esp(spis)


async def _mac(ipr: AsyncIPRoute, link: InterfaceLink) -> bytes:
    (info,) = await _listed(ipr.get_links(link.ifindex))
    return bytes.fromhex(info.get_attr("IFLA_ADDRESS").replace(":", ""))


def unsolicited_advertisement(source: IPv6Address, target: IPv6Address, mac: bytes) -> bytes:
    """A Neighbor Advertisement to all nodes for ``target`` with the Override flag and
    ``mac`` as its Target Link-Layer Address (RFC 4861 7.2.6), as RFC 3775 10.4.1 (a home agent
    starting to proxy) and 11.5.4 (a mobile node back home) have them sent."""
    return Ipv6Packet(
        source=source,
        destination=IPv6Address("ff02::1"),
        hop_limit=255,
        payload=icmp.NeighborAdvertisement(
            target_address=target,
            override=True,
            options=(icmp.TargetLinkLayerAddress.padded(mac),),
        ),
    ).emit()


@dataclass(frozen=True, slots=True)
class UplinkView:
    """What movement detection sees of one uplink: its carrier, whether a default route
    leaves by it, and its usable global addresses (the home address itself left out)."""

    carrier: bool
    router: bool
    addresses: tuple[IPv6Address, ...]


def choose_uplink(
    uplinks: list[UplinkView], home_prefix: IPv6Network
) -> tuple[int, IPv6Address | None] | None:
    """Which uplink (its index in ``uplinks``, most preferred first) the mobile node is on,
    and its care-of address there (None: an address of ``home_prefix``, it is home, RFC 3775
    11.5.4); None when no uplink with its carrier has a usable address. The most preferred
    uplink with a default router wins; one without a router only when none has one (a link of
    static addresses and routes): RFC 3775 11.5.1 counts a router that went as a sign of
    movement."""
    found: list[tuple[bool, int, IPv6Address | None]] = []
    for index, uplink in enumerate(uplinks):
        if not uplink.carrier or not uplink.addresses:
            continue
        if any(address in home_prefix for address in uplink.addresses):
            found.append((not uplink.router, index, None))
        else:
            found.append((not uplink.router, index, uplink.addresses[0]))
    if not found:
        return None
    _, index, care_of = min(found, key=lambda choice: choice[:2])
    return index, care_of


class MobileNodeKernel:
    """Movement detection from the kernel (RFC 3775 11.5.1) and the home address's place.

    The care-of address is a global address the kernel has on an uplink (SLAAC from the
    link's Router Advertisements, or configured) outside the home prefix, usable (DAD done,
    or optimistic: RFC 4429, if the box allows it). A mobile node may have several uplinks
    (:class:`Uplinks`, most preferred first): the care-of address comes from the most
    preferred one that has its carrier, a usable global address and a default router (learnt
    from Router Advertisements, or configured); one with an address but no default router is
    chosen only when no uplink has a router (a link of static addresses and static routes).
    Netlink events (addresses, routes, the links) make the driver look again; a different
    choice is a movement: the daemon's packets are pointed at the chosen uplink, then the
    engine is told (``move`` to its care-of address; to None when the chosen uplink has a
    usable address of the home prefix: home, 11.5.4). So when the preferred uplink loses its
    carrier, its address or its router (11.5.1: all three say the node may have moved) the
    next one takes over at once, and the preferred one takes back when it returns. One
    care-of address at a time: the one registered, RFC 3775's primary care-of address (3.2,
    11.5.3); the others stand by unregistered.

    When an uplink loses its carrier (unplugged, moved to another switch) the addresses and
    default routes the kernel learnt from the old link's advertisements are removed: RFC 3775
    11.5.1 has a mobile node stop trusting the old router and prefixes once it may have moved,
    and the kernel would keep them for their whole lifetimes (a day by default) and route
    through a router that is no longer there. Configured (permanent) addresses stay.

    Away from home the home address sits on the shim's TUN device (/128) with a policy rule
    sending packets from it into that device, so stock programs can use it as a source and
    what the engine delivers for it is local; at home it is on the home uplink with the home
    prefix and no DAD (11.5.4: the home agent still defends it until the deregistration is
    acknowledged), announced with an unsolicited Neighbor Advertisement."""

    before_engine = False

    def __init__(self, context: DriverContext) -> None:
        if context.kernel_device is None:
            raise ValueError("a mobile node on a real network needs its kernel link (shim)")
        self.context = context
        link = context.link
        self.group = link if isinstance(link, Uplinks) else None
        self.uplinks = link.members if isinstance(link, Uplinks) else (link,)
        self.kernel_device = context.kernel_device
        self.home_address: IPv6Address = context.options["home_address"]
        self.home_prefix = IPv6Network(f"{self.home_address}/{HOME_PREFIX_LENGTH}", strict=False)
        self.care_of: IPv6Address | None = None
        self.uplink: InterfaceLink | None = None  # where the care-of (or home) address is
        self.at_home: bool | None = None  # unknown until the first look
        self._ipr: AsyncIPRoute | None = None
        self._events: AsyncIPRoute | None = None
        self._listener: asyncio.Task[None] | None = None
        self._tun_index = 0
        self._carrier: dict[int, bool] = {}  # by uplink interface index

    async def open(self) -> None:
        from pyroute2.netlink.rtnl import RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE, RTMGRP_LINK

        take_esp(self.context.engine, self.context.link)
        self._ipr = ipr = await _iproute()
        self._tun_index = socket.if_nametoindex(self.kernel_device)
        # RFC 2473: the reverse tunnel adds 40 bytes, more than route optimization's Home
        # Address option (24)
        indices = [uplink.ifindex for uplink in self.uplinks]
        await size_kernel_device(ipr, self._tun_index, indices, TUNNEL_OVERHEAD)
        await remove_routes(ipr)
        await self._remove_home_address()
        await ipr.route(
            "replace",
            dst="::/0",
            oif=self._tun_index,
            table=POLICY_TABLE,
            proto=ROUTE_PROTOCOL,
            family=socket.AF_INET6,
        )
        self._events = await _iproute()
        await self._events.bind(groups=RTMGRP_LINK | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE)
        self._carrier = await self._carriers()
        await self._look()
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        assert self._events is not None
        while True:
            async for _ in self._events.get():
                pass  # what changed does not matter: the driver looks at the whole state
            try:
                carrier = await self._carriers()
                for uplink in self.uplinks:
                    if self._carrier.get(uplink.ifindex) and not carrier[uplink.ifindex]:
                        await self._forget_link(uplink)
                self._carrier = carrier
                await self._look()
            except Exception:  # a netlink request refused: logged, looked at again next event
                log.exception("movement detection")

    async def _carriers(self) -> dict[int, bool]:
        """Whether each uplink has its carrier, by interface index."""
        assert self._ipr is not None
        out = {}
        for uplink in self.uplinks:
            (info,) = await _listed(self._ipr.get_links(uplink.ifindex))
            out[uplink.ifindex] = bool(info["flags"] & _IFF_LOWER_UP)
        return out

    async def _routers(self) -> set[int]:
        """The interfaces a default route leaves by (main table: a router learnt from Router
        Advertisements, or a configured one)."""
        assert self._ipr is not None
        out = set()
        for route in await _listed(self._ipr.get_routes(family=socket.AF_INET6, table=MAIN_TABLE)):
            if route["dst_len"] != 0:
                continue
            if route.get_attr("RTA_OIF") is not None:
                out.add(route.get_attr("RTA_OIF"))
            for hop in route.get_attr("RTA_MULTIPATH") or ():
                out.add(hop["oif"])
        return out

    async def _addresses(self, uplink: InterfaceLink) -> list[tuple[IPv6Address, int, int]]:
        """The uplink's global IPv6 addresses with their flags and prefix lengths."""
        assert self._ipr is not None
        out = []
        messages = self._ipr.get_addr(family=socket.AF_INET6, index=uplink.ifindex)
        for message in await _listed(messages):
            address = IPv6Address(message.get_attr("IFA_ADDRESS"))
            if address.is_link_local or address.is_multicast:
                continue
            flags = message.get_attr("IFA_FLAGS") or message["flags"]
            out.append((address, flags, message["prefixlen"]))
        return out

    async def _forget_link(self, uplink: InterfaceLink) -> None:
        """The uplink's carrier went: the old link's learnt addresses and routers go too (see
        the class docstring)."""
        assert self._ipr is not None
        for address, flags, length in await self._addresses(uplink):
            if not flags & _IFA_F_PERMANENT and address != self.home_address:
                await _quietly(
                    self._ipr.addr(
                        "del", index=uplink.ifindex, address=str(address), prefixlen=length
                    )
                )
        routes = await _listed(self._ipr.get_routes(family=socket.AF_INET6, table=MAIN_TABLE))
        for route in routes:
            if route["proto"] == _RTPROT_RA and route.get_attr("RTA_OIF") == uplink.ifindex:
                await _quietly(self._ipr.route("del", **_route_key(route)))
        log.info("link %s lost its carrier: the old link's addresses and routers forgotten",
                 uplink.device)  # fmt: skip

    async def _choose(self) -> tuple[InterfaceLink, IPv6Address | None] | None:
        """The uplink to be on and its care-of address (None: the home link), or None."""
        routers = await self._routers()
        seen = []
        for uplink in self.uplinks:
            addresses = [
                address
                for address, flags, _ in await self._addresses(uplink)
                if _usable(flags) and address != self.home_address
            ]
            carrier = self._carrier.get(uplink.ifindex, False)
            seen.append(UplinkView(carrier, uplink.ifindex in routers, tuple(addresses)))
        chosen = choose_uplink(seen, self.home_prefix)
        if chosen is None:
            return None
        index, care_of = chosen
        return self.uplinks[index], care_of

    async def _look(self) -> None:
        """Where are we (RFC 3775 11.5.1)? The engine is told when that changed."""
        chosen = await self._choose()
        if chosen is None:
            return  # no usable address anywhere: the registration stands until there is one
        uplink, care_of = chosen
        if care_of is None:
            if self.at_home is not True or uplink is not self.uplink:
                self.at_home, self.care_of, self.uplink = True, None, uplink
                self._use(uplink)
                await self._home_on_interface(uplink)
                log.info("movement detected: at home (%s on %s)", self.home_prefix, uplink.device)
                self.context.command("move", None)
                # RFC 3775 11.5.4: the home link's nodes stop sending to the home agent
                assert self._ipr is not None
                mac = await _mac(self._ipr, uplink)
                uplink.send(unsolicited_advertisement(self.home_address, self.home_address, mac))
        elif self.at_home is not False or (care_of, uplink) != (self.care_of, self.uplink):
            if self.at_home is not False:
                await self._home_on_tun()
            self.at_home, self.care_of, self.uplink = False, care_of, uplink
            # before the engine's Binding Update: it must leave where its source is on-link
            self._use(uplink)
            log.info("movement detected: care-of address %s on %s", care_of, uplink.device)
            self.context.command("move", str(care_of))

    def _use(self, uplink: InterfaceLink) -> None:
        if self.group is not None:
            self.group.use(uplink)

    async def _home_on_tun(self) -> None:
        assert self._ipr is not None
        await self._remove_home_address()
        await self._ipr.addr(
            "add",
            index=self._tun_index,
            address=str(self.home_address),
            prefixlen=128,
            flags=_IFA_F_NODAD,
        )
        await self._ipr.rule(
            "add",
            family=socket.AF_INET6,
            src=str(self.home_address),
            src_len=128,
            table=POLICY_TABLE,
            priority=POLICY_PRIORITY,
        )

    async def _home_on_interface(self, uplink: InterfaceLink) -> None:
        assert self._ipr is not None
        await self._remove_home_address()
        # RFC 3775 11.5.4: no DAD for the home address on return (the home agent answers for
        # it until the deregistration is done)
        await self._ipr.addr(
            "add",
            index=uplink.ifindex,
            address=str(self.home_address),
            prefixlen=self.home_prefix.prefixlen,
            flags=_IFA_F_NODAD,
        )

    async def _remove_home_address(self) -> None:
        """The home address wherever we put it, and the rule for it."""
        assert self._ipr is not None
        places = [(self._tun_index, 128)]
        places += [(uplink.ifindex, self.home_prefix.prefixlen) for uplink in self.uplinks]
        for index, length in places:
            await _quietly(
                self._ipr.addr("del", index=index, address=str(self.home_address), prefixlen=length)
            )
        for rule in await _listed(self._ipr.get_rules(family=socket.AF_INET6)):
            if rule.get_attr("FRA_PRIORITY") == POLICY_PRIORITY:
                await _quietly(
                    self._ipr.rule("del", family=socket.AF_INET6, priority=POLICY_PRIORITY)
                )

    def observe(self, event: Event) -> None:
        """The engine's events change nothing here: the kernel's do."""

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._events is not None:
            self._events.close()
            self._events = None
        if self._ipr is None:
            return
        if not self.at_home:  # at home the home address stays: it is the node's address there
            await self._remove_home_address()
        await remove_routes(self._ipr)
        self._ipr.close()
        self._ipr = None


class MemberAddress:
    """A distributed-server member's own address on the box (DSERVER 3: the member's
    permanent care-of address, where the home agent tunnels the contact address's packets to
    the contact node, where clients' route-optimized packets and the member channel arrive).
    The daemon is the host for it (host mode): the link takes every packet for it but Neighbor
    Discovery (:meth:`InterfaceLink.serve`), and the kernel holds it on the interface only so
    that it answers the link's Neighbor Solicitations for it and routes what the daemon sends
    from it. It is added as a /128 (the box's routes stay as they are), deprecated (preferred
    lifetime 0: RFC 6724 rule 3 keeps the box's own programs from choosing it as a source,
    whose answers would be taken), after duplicate address detection (RFC 4862 5.4: a member
    whose address is taken does not start), and marked with :data:`ROUTE_PROTOCOL` as its
    IFA_PROTO, so the next start finds a killed run's address and removes it. An address the
    box already has is refused: it is the box's, and the daemon would take it from its
    programs. Opened before the engine starts: the contact node's first Binding Update asks
    the home agent for an answer to it."""

    before_engine = True

    def __init__(self, context: DriverContext) -> None:
        self.link = one_interface(context, "member")
        self.address: IPv6Address = context.options["address"]
        self._ipr: AsyncIPRoute | None = None
        self._added = False

    async def open(self) -> None:
        self._ipr = ipr = await _iproute()
        for address, _, length, proto in await self._addresses():
            if proto == ROUTE_PROTOCOL:
                await self._delete(address, length)
                log.warning("removed address %s left by an earlier run", address)
            elif address == self.address:
                raise OSError(
                    f"{address} is an address of {self.link.device} already: a member's own "
                    "address is the daemon's alone (the box's programs would lose it), give "
                    "the member one the box does not have"
                )
        # Served before it exists: no packet for it ever meets the kernel's stack (a SYN
        # there would be answered with a RST)
        self.link.serve(self.address)
        await ipr.addr(
            "add",
            index=self.link.ifindex,
            address=str(self.address),
            prefixlen=128,
            preferred=0,
            proto=ROUTE_PROTOCOL,
        )
        self._added = True
        await self._duplicate_address_detection()
        log.info("member address %s on %s", self.address, self.link.device)

    async def _addresses(self) -> list[tuple[IPv6Address, int, int, int | None]]:
        """The interface's IPv6 addresses: flags, prefix length and protocol of each."""
        assert self._ipr is not None
        messages = self._ipr.get_addr(family=socket.AF_INET6, index=self.link.ifindex)
        return [
            (
                IPv6Address(message.get_attr("IFA_ADDRESS")),
                message.get_attr("IFA_FLAGS") or message["flags"],
                message["prefixlen"],
                message.get_attr("IFA_PROTO"),
            )
            for message in await _listed(messages)
        ]

    async def _duplicate_address_detection(self) -> None:
        """Until the kernel's DAD (RFC 4862 5.4) is done: an address in use elsewhere stops
        the start. A link without carrier keeps the address tentative: the daemon starts and
        the kernel finishes DAD when the link comes up."""
        deadline = time.monotonic() + DAD_WAIT
        while time.monotonic() < deadline:
            flags = next(
                (f for address, f, _, _ in await self._addresses() if address == self.address), 0
            )
            if flags & _IFA_F_DADFAILED:
                raise OSError(
                    f"{self.address} is in use on {self.link.device}'s link (RFC 4862 5.4.5: "
                    "duplicate address detection failed)"
                )
            if not flags & _IFA_F_TENTATIVE:
                return
            await asyncio.sleep(0.05)
        log.warning("%s still tentative after %.0f s: starting anyway", self.address, DAD_WAIT)

    async def _delete(self, address: IPv6Address, length: int) -> None:
        assert self._ipr is not None
        await _quietly(
            self._ipr.addr("del", index=self.link.ifindex, address=str(address), prefixlen=length)
        )

    def observe(self, event: Event) -> None:
        """The address is the member's for as long as it runs: no event changes it."""

    async def close(self) -> None:
        if self._ipr is None:
            return
        if self._added:
            await self._delete(self.address, 128)
            self._added = False
        self.link.unserve(self.address)
        self._ipr.close()
        self._ipr = None


# Seconds a member waits for the kernel's duplicate address detection of its address: the
# kernel's defaults take up to 2 s (a random delay of up to rtr_solicit_delay, 1 s, then
# dad_transmits (1) solicitations RetransTimer (1 s) apart, RFC 4862 5.4.2)
DAD_WAIT = 5.0

# The mobile node role's home subnet (MobileNodeConfig.home_prefix_length's default; the role's
# block has no key for it)
HOME_PREFIX_LENGTH = 64
