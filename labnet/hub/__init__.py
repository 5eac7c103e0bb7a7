"""The labnet hub (ARCHITECTURE 6): a userspace IPv6 router between links (UDP sockets, or TUN
devices into network namespaces), with per-direction link emulation (latency, jitter, bandwidth,
queue, loss) and one pcap per link.

- :mod:`labnet.hub.emulation`: one direction of a link, sans-I/O, on any clock.
- :mod:`labnet.hub.router`: longest prefix match, Hop Limit, what a router must not forward.
- :mod:`labnet.hub.config`: the YAML/JSON description and its units.
- :mod:`labnet.hub.tun`: the TUN devices of ``tun`` links.
- :mod:`labnet.hub.capture`: one link's capture file, written in batches.
- :mod:`labnet.hub.fast`: the C fast path (``csrc/hub_fast.c``): forwarding and captures of the
  packets the router has decided, between transparent directions.
- :mod:`labnet.hub.server`: the process: links, the event loop, captures, the control port.

Run one with ``labnet hub DESCRIPTION.yaml``; it prints one JSON line (link addresses, control
port, capture paths) once its sockets are bound, and stops cleanly on SIGTERM or SIGINT.
"""

from labnet.hub.config import (
    ConfigError,
    HubConfig,
    LinkConfig,
    TunConfig,
    load_config,
    parse_config,
    parse_link_profiles,
)
from labnet.hub.emulation import (
    DirectionStats,
    DropCause,
    GilbertElliott,
    Jitter,
    LinkEmulator,
    LinkProfile,
)
from labnet.hub.router import Drop, Router
from labnet.hub.server import HubServer, query, serve

__all__ = [
    "ConfigError",
    "DirectionStats",
    "Drop",
    "DropCause",
    "GilbertElliott",
    "HubConfig",
    "HubServer",
    "Jitter",
    "LinkConfig",
    "LinkEmulator",
    "LinkProfile",
    "Router",
    "TunConfig",
    "load_config",
    "parse_config",
    "parse_link_profiles",
    "query",
    "serve",
]
