"""The distributed server member role (DSERVER.md): :class:`~mip6.dserver.member.Member`, in
host mode; its engine holds its own host, on which its applications run.

Its block::

    member:
      contact_address: 2001:db8:1::c      # the server's address, on the home agent's prefix
      home_agent: 2001:db8:1::1
      address: 2001:db8:10::1             # this member's own address (its care-of address)
      contact_node: 2001:db8:10::1        # the member that registers the contact address
      members: [2001:db8:10::1, 2001:db8:20::1, 2001:db8:30::1]
      group_key: 64 or more hex digits    # the member channel's pre-shared key (never shown)
      channel_port: 7171
      policy: random                      # round_robin, least_loaded, lowest_latency, local
      prepare: true                       # return routability in advance (PREPARE)
      distribute: true                    # the contact node hands each new client on
      attempt_timeout: 2                  # seconds each handoff phase may take
      mipv6_timeout: 10                   # seconds before a silent new client is taken for
                                          # one without Mobile IPv6 (tunnelled, DSERVER 3)
      tunnel_capacity: 4096               # the contact node's tunnel table: clients
      tunnel_lifetime: 420                # seconds an entry lives after its client's last packet
      membership: {}                      # dynamic membership (timers: MembershipConfig);
                                          # without it, the static members list
      backup: true                        # may take the contact address over (dynamic)
      replication: true                   # clients replicated to a buddy (dynamic)
      hold_until_replicated: true         # SYN-ACKs and answers wait for the buddy's copy
      replica_ack_timeout: 1              # at most this many seconds
      udp_flows: 65536                    # UDP services: flows at most,
      udp_flow_idle: 60                   #   seconds before an idle one is forgotten,
      udp_straggler_time: 2               #   seconds a handed-off client's datagrams drop
      send_buffer: 90000                  # bytes of each connection's send ring
    apps:
      - {type: download, port: 80, size: 50000000, seed: 1, handoff_every: 2000000}
        # handoff_wait: S  the seeds' modified server (004 6.3): write the share, stop, hand
        #                  on S seconds after the last write returned (daemon only)
        # handoff_drained: true  the seeds' Fig. 12 server (004 6.4): write the share, stop,
        #                  hand on once the client acknowledged it (PREPARE at the last write)
      - {type: handoff_echo, port: 7}
      - {type: proxy, port: 8080, server: "::1", server_port: 8000, handoff_every: 3}
      - {type: lookup, port: 53, handoff_every: 0}   # UDP (mip6.dserver.udp): a DNS-like
      - {type: udp_echo, port: 7}                     # service, RFC 862 echo and a
      - {type: stream, port: 5004, size: 10000000}    # stateful stream
      - {type: echo, port: 7}             # UDP echo on every address (the contact address's
                                          # access latency, 004 6.1); UDP never moves

With ``membership``, the contact node founds the group and every other member joins it through
the contact address (``members`` are then the members it may know at first), as a backup that
takes the contact address over when the contact node dies (``backup: false``: an snode, which
never does; with ESP, a backup needs the contact address's ``ipsec`` block as the contact node
has it); ``mip6 show members`` gives the view (role, join id, when each was last heard).

The contact node's ``ipsec`` block is the mobile-node side of the contact address's SA pair with
the home agent (RFC 3776), as a mobile node's.

On a real network (``links: network: {type: interface, name: eth0}``, host mode) the member's
``address`` is the daemon's on the box's interface (:class:`~mip6.runtime.kernel.MemberAddress`):
added there for Neighbor Discovery, every other packet for it taken to the daemon.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from ipaddress import IPv6Address
from typing import TYPE_CHECKING, Any

from mip6.apps.download import DownloadService
from mip6.apps.echo import udp_echo
from mip6.apps.http import Body
from mip6.apps.lookup import LookupService
from mip6.apps.udp_echo import UdpEchoService
from mip6.apps.udp_stream import StreamService
from mip6.core.config import MobileNodeConfig
from mip6.core.engine import Engine
from mip6.dserver.member import TCP_FIXED, Member, MemberConfig
from mip6.dserver.udp import DatagramService
from mip6.runtime.kernel import MemberAddress
from mip6.runtime.roles.base import AppContext, BuildContext, LabNode, OptionError, Role

if TYPE_CHECKING:
    from mip6.apps.proxy import Proxy
    from mip6.runtime.dserver_api import DistributedServer

DEFAULT_PORTS = {"download": 80, "handoff_echo": 7, "echo": 7}


def build(options: dict[str, Any], context: BuildContext) -> Member:
    options = dict(options)
    constants = options.pop("constants", None)
    own = options.pop("address")
    mobile = (
        MobileNodeConfig(
            home_address=options["contact_address"],
            home_agent=options["home_agent"],
            constants=constants,
        )
        if constants is not None
        else None
    )
    config = MemberConfig(own_address=own, mobile_node=mobile, tcp=context.tcp, **options)
    return Member(
        config=config,
        rng=context.rng,
        random_bytes=context.random_bytes,
        security=context.security,
    )


def start_apps(
    engine: Engine, apps: tuple[Any, ...], context: AppContext | None
) -> list[Callable[[], None]]:
    """Each application a service on the contact address's port; the proxies on the member's
    asyncio face (:class:`~mip6.runtime.dserver_api.DistributedServer`), one for all of
    them, in the daemon only (they relay to a server through the kernel)."""
    # here, not at the top: the asyncio API reads configurations, which read this registry
    from mip6.apps.proxy import ProxySettings, start_proxy
    from mip6.runtime.dserver_api import DistributedServer

    assert isinstance(engine, Member)
    stops: list[Callable[[], None]] = []
    server: DistributedServer | None = None
    for app in apps:
        if app.type in ("lookup", "udp_echo", "stream"):
            engine.serve_datagrams(app.port, _datagram_service(engine, app))
            stops.append(lambda port=app.port: engine.udp.stop_serving(port))
            continue
        if app.type == "echo":
            stops.append(udp_echo(engine.host, app.port).close)
            continue
        if app.type == "proxy":
            if context is None:
                raise ValueError(
                    f"a proxy (port {app.port}) relays to a server through the kernel: it runs "
                    "in the mip6 daemon, not in labnet's simulator"
                )
            server = server or DistributedServer(engine, context, context.loop)
            settings = ProxySettings(
                server=app.server,
                server_port=app.server_port,
                http=app.http,
                handoff_every=app.handoff_every,
                route_requests=app.route_requests,
                spares=app.spares,
            )
            proxy = start_proxy(server, app.port, settings)
            stops.append(functools.partial(_stop_proxy, server, proxy, app.port))
            continue
        if app.type == "download":
            service: Any = DownloadService(
                Body(path=app.path, size=app.size, seed=app.seed),
                handoff_every=app.handoff_every,
                regenerable=app.regenerable,
                handoff_drained=app.handoff_drained,
            )
            if app.handoff_wait is not None:
                if context is None:
                    raise ValueError(
                        f"handoff_wait (download on port {app.port}) needs the daemon's clock: "
                        "in labnet's simulator set the service's on_share_written"
                    )
                service.on_share_written = functools.partial(
                    _hand_on_later, engine, context, app.handoff_wait
                )
        else:
            from mip6.apps.handoff_echo import HandoffEchoService

            service = HandoffEchoService(str(engine.own_address))
        engine.serve(app.port, service)
        stops.append(lambda port=app.port: engine.stop_serving(port))
    return stops


def _datagram_service(member: Member, app: Any) -> DatagramService:
    """A UDP service on the contact address (:mod:`mip6.dserver.udp`)."""
    if app.type == "stream":
        return StreamService(member, app.size, app.handoff_every)
    if app.type == "lookup":
        return LookupService(member, app.handoff_every)
    return UdpEchoService(member, app.handoff_every)


def _hand_on_later(engine: Member, context: AppContext, wait: float, sock: Any) -> None:
    """The seeds' modified server (004 6.3): ``wait`` seconds after the share's last write
    returned, the client (the socket's remote address) goes to the policy's member."""
    client = IPv6Address(sock.key[2])

    def hand_on() -> None:
        engine.request_handoff(client)
        context.apply(engine.poll(context.loop.time()))

    context.loop.call_later(wait, hand_on)


def _stop_proxy(server: DistributedServer, proxy: Proxy, port: int) -> None:
    """No new clients on the proxy's port, every connection of it ends (its handler's task
    cancelled; the daemon is stopping), and its spare connections to its server close."""
    server.stop_serving(port)
    for task in server.tasks:
        task.cancel()
    proxy.close()


def check(options: Mapping[str, Any]) -> None:
    # a straggler time of 0 would answer a handed-off client's late datagrams here too
    # (mip6.dserver.udp: a request answered by two members)
    for key in ("udp_flow_idle", "udp_straggler_time"):
        if options.get(key, 1.0) <= 0:
            raise OptionError(key, "must be more than 0 seconds")


def lab_options(node: LabNode) -> dict[str, Any]:
    return {
        "contact_address": str(node.home_address),
        "home_agent": str(node.home_agent),
        "address": str(node.addresses[0]),
        "contact_node": str(node.group[0]),
        "members": [str(address) for address in node.group],
        "group_key": node.lab_secret.hex(),
    }


ROLE = Role(
    name="member",
    options={
        "contact_address": "address",
        "home_agent": "address",
        "address": "address",
        "contact_node": "address",
        "members": "addresses",
        "group_key": "secret",
        "channel_port": "port",
        "home_prefix_length": "integer",
        "policy": "policy",
        "prepare": "boolean",
        "distribute": "boolean",
        "attempt_timeout": "number",
        "rebind_timeout": "number",
        "binding_lifetime": "integer",
        "relay_capacity": "integer",
        "relay_lifetime": "number",
        "mipv6_timeout": "duration",
        "tunnel_capacity": "integer",
        "tunnel_lifetime": "duration",
        "max_handoffs": "integer",
        "max_connections": "integer",
        "time_wait": "number",
        "send_buffer": "integer",
        "constants": "constants",
        "membership": "membership",
        "backup": "boolean",
        "replication": "boolean",
        "hold_until_replicated": "boolean",
        "replica_ack_timeout": "number",
        "udp_flows": "integer",
        "udp_flow_idle": "number",
        "udp_straggler_time": "number",
    },
    required=("contact_address", "home_agent", "address", "contact_node", "members", "group_key"),
    host_address="address",
    build=build,
    lab_options=lab_options,
    default_mode="host",
    security="mobile_node",
    homed=True,  # in a lab: home_address is the contact address, home_agent its home agent
    apps=("download", "handoff_echo", "proxy", "echo", "lookup", "udp_echo", "stream"),
    start_apps=start_apps,
    tcp_fixed=TCP_FIXED,
    check=check,
    network_driver=MemberAddress,
    interface_modes=("host",),
)
