"""The client farm role: :class:`~mip6.farm.Farm`, many correspondent clients in one daemon
(host mode only: its clients' hosts are inside it), for load on a distributed server.

Its block::

    farm:
      prefix: 2001:db8:3::/64        # the farm's prefix (routed to the daemon's link)
      address: 2001:db8:3::1         # the first client's address; client i has address + i
      clients: 200
      server: 2001:db8:1::80         # the distributed server's contact address
      port: 81
      workload: download             # or echo: dialogues with the handoff echo; or lookup,
                                     #   udp_echo: UDP requests (mip6.apps.udp_requests)
      path: /                        # what each GET asks for
      size: 200000                   # the body the server sends (generated from seed): every
      seed: 3                        #   byte of every fetch is checked against it
      requests: 1                    # GETs per connection (more: keep-alive)
      lines: 20                      # echo: lines per dialogue, each checked
      line_size: 64                  # echo: bytes per line
      pause: 0                       # echo: seconds between an echo and the next line
      retransmit: 0.5                # lookup, udp_echo: a request goes again after this many
      retries: 8                     #   seconds unanswered, this many times at most
      think: 0.5                     # seconds between a client's fetches
      fetches: 0                     # per client; 0: forever
      concurrency: 1                 # fetches at once per client
      timeout: 30                    # a fetch with no byte this long fails (stalled)
      ramp: 1                        # first fetches spread over this many seconds
      window: 65536                  # each connection's receive buffer
      binding_cache_size: 16         # each client's correspondent node: as a correspondent's
      nonce_interval: 30
      brr_lead: 10
      constants: {max_nonce_lifetime: 240}

In a lab (labnet) the farm's ``prefix`` is its network's and ``address`` its address in the
topology; the rest comes from the node's ``options``. ``mip6 show stats|clients|bcache|nonce|tcp``
show what it did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mip6.core.config import CorrespondentConfig
from mip6.core.engine import Engine
from mip6.farm import Farm, FarmConfig, FarmConfigError
from mip6.runtime.roles.base import AppContext, BuildContext, LabNode, OptionError, Role

CORRESPONDENT_KEYS = ("binding_cache_size", "nonce_interval", "brr_lead", "constants")


def config(options: Mapping[str, Any]) -> FarmConfig:
    """The engine's configuration from the block's typed options; :class:`FarmConfigError`
    for a block whose keys do not fit together."""
    correspondent = {k: v for k, v in options.items() if k in CORRESPONDENT_KEYS}
    farm = {k: v for k, v in options.items() if k not in CORRESPONDENT_KEYS}
    return FarmConfig(correspondent=CorrespondentConfig(**correspondent), **farm)


def check(options: Mapping[str, Any]) -> None:
    try:
        config(options)
    except FarmConfigError as error:
        raise OptionError(error.key, error.reason) from None


def build(options: dict[str, Any], context: BuildContext) -> Farm:
    return Farm(
        config=config(options),
        rng=context.rng,
        random_bytes=context.random_bytes,
        tcp_config=context.tcp,
    )


def start_apps(
    engine: Engine, apps: tuple[Any, ...], context: AppContext | None
) -> list[Callable[[], None]]:
    """The farm runs no applications but its clients' workload, which its engine starts."""
    return []


def lab_options(node: LabNode) -> dict[str, Any]:
    return {"prefix": str(node.prefixes[0]), "address": str(node.addresses[0])}


ROLE = Role(
    name="farm",
    options={
        "prefix": "network",
        "address": "address",
        "clients": "integer",
        "server": "address",
        "port": "port",
        "workload": "text",
        "path": "text",
        "size": "count",
        "seed": "count",
        "requests": "integer",
        "lines": "count",
        "line_size": "integer",
        "pause": "number",
        "retransmit": "number",
        "retries": "count",
        "think": "number",
        "fetches": "count",
        "concurrency": "integer",
        "timeout": "number",
        "ramp": "number",
        "window": "integer",
        "binding_cache_size": "integer",
        "nonce_interval": "number",
        "brr_lead": "number",
        "constants": "constants",
    },
    required=("prefix", "address", "server"),
    host_address="address",
    build=build,
    lab_options=lab_options,
    default_mode="host",
    modes=("host",),
    owns_prefixes=True,  # a lab routes its network's prefix, every client's address, to it
    apps=(),
    start_apps=start_apps,
    check=check,
)
