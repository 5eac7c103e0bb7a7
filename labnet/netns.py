"""The ``netns`` backend (ARCHITECTURE 6): a topology run for real, as root.

One **hub** process (``labnet hub``) for the lab, with one link per node. A node's link carries
its network's uplink emulation in both directions, so a packet between two nodes crosses both
networks' uplinks, as in the ``sim`` backend (:mod:`labnet.sim`). Routes: every node's current
address /128 (a mobile node's care-of address while away, its home address at home) to its
link, and a home agent's home prefixes (the networks its address is in) to its link.

One **network namespace** (``LAB-NODE``) and one **mip6 daemon** (``mip6 run``) per engine
node. The daemon opens its UDP link to the hub in the root namespace, then enters the node's
namespace (config key ``netns``) and creates its TUN device ``mip6k0`` there, so no veth is
needed. Correspondents and mobile nodes run in shim mode: the namespace's kernel owns the
node's address (a mobile node's *home* address) on ``mip6k0`` with the default route into it,
so stock programs (ping, curl) run in the namespace with ``labnet exec``. Home agents run in
router mode (their namespace holds no device; it exists so every engine node has one) with
``allow_unprotected_registration: true``, written out in the generated configuration, unless
the lab runs with ESP. A node with ``mode: host`` in the topology runs a host-mode daemon (its
applications inside it, from the topology's ``apps``; no TUN device, nothing in its namespace).
A client farm (role ``farm``, host mode) is one such daemon: its one hub link carries its whole
network's prefix (the hub routes the prefix to it, as a home agent's home prefixes), every
client's address inside it.
``external`` nodes get a hub link whose UDP address
``labnet status --json`` reports (send it raw IPv6 packets; the hub learns your endpoint).
``kernel`` nodes get a namespace and a hub link of kind ``tun``: the hub creates the TUN device
and moves it into the namespace with the node's addresses and a default route, and no daemon
runs (plain kernel hosts, as in Mininet; ``labnet exec`` runs programs there).

**State.** Everything a lab is lives under ``STATE_DIR/NAME/`` (daemon configurations,
control sockets, logs, the hub's description and captures ``pcap/NODE.pcap``), and
``STATE_DIR/NAME.json`` records the processes and namespaces *before* they are created, so
``down`` removes everything even after ``up`` or a daemon crashed, and is idempotent.
``down`` leaves ``STATE_DIR/NAME/`` (logs, captures) for a look afterwards; nothing runs from
it, and the next ``up`` of that name overwrites it. ``STATE_DIR`` is ``/run/labnet``
(``LABNET_STATE_DIR`` overrides it).

**ESP** (``NetnsLab.up(..., esp=True)``): RFC 3776 manual keying. For every mobile node and
its home agent the lab draws fresh random SPIs and AES-GCM-16 keys and writes the same
``ipsec:`` block (:mod:`mip6.core.ipsec.config`) into both daemons' configurations (files of
mode 0600; keys are never printed or logged), and the home agent then refuses unprotected
home registrations (no ``allow_unprotected_registration``).

**Fast path** (``NetnsLab.up(..., fast_path=False)``, ``labnet up --no-fast-path``): the
daemons run without their C fast path (:mod:`mip6.runtime.fast`; key ``fast_path: false``), so
the engines see every packet. ``LABNET_FAST_PATH=off`` in the environment makes that the
default, which is how the lab tests run again with the fast path off.

**Takeover** (:meth:`NetnsLab.start_standby`, :meth:`NetnsLab.activate`): a standby mobile node
for another node's home address runs in the namespace of an ``external`` node of the topology
(its hub link, network and address, which becomes the standby's care-of address), with the
other node's ``ipsec:`` block (manual keying shares the keys; ``keys="random"`` gives an
intruder fresh ones under the same SPIs). ESP's Sequence Numbers must continue past what the
old holder sent, or the home agent's replay window refuses the standby's Binding Updates: the
standby's daemon (``python -m labnet.netns CONFIG --skip N``) re-imports its outbound SAs with
``SecurityAssociation.import_(..., skip=N)`` (default :data:`TAKEOVER_SKIP`), which stands for
the old holder's exported counter when that holder crashed and exported nothing. The standby
waits at home (no registration) until :meth:`NetnsLab.activate` tells it to register.

**Not modelled yet**: two nodes on the same network still cross their uplinks twice (the sim
backend gives them a small on-link latency).

**Movement.** :meth:`NetnsLab.move` does what :meth:`labnet.sim.SimLab.move` does: the new
care-of address keeps the node's interface identifier under the new network's prefix (the
home address on the home network); the hub's routes and the node's link emulation change to
the new network (control requests ``route del``, ``route add``, ``profile``), then the daemon
is told (``mip6 ctl move``).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

import yaml

from labnet.hub.server import query
from labnet.nodes import (
    care_of_for,
    current_address,
    daemon_config,
    entry,
    group,
    home_prefixes,
    mobile,
    plain,
    registers_home,
)
from labnet.nodes import dump as dump_config
from labnet.topology import NodeSpec, Topology, Uplink, builtin, dump, load
from mip6.runtime.control import control_request

DEFAULT_STATE_DIR = "/run/labnet"
TUN_DEVICE = "mip6k0"
START_TIMEOUT = 20.0  # seconds for the hub and each daemon to come up
REGISTRATION_TIMEOUT = 15.0  # seconds for mobile nodes' home registrations at `up`
STOP_TIMEOUT = 5.0  # seconds a process gets after SIGTERM before SIGKILL
# Sequence Numbers a standby's outbound SAs skip: far above what a mobile node sends over a
# lab's life (a Binding Update and a few HoTIs per registration), far below 2**32.
TAKEOVER_SKIP = 1 << 20
_SA_NAMES = ("binding_update", "binding_acknowledgement", "home_test_init", "home_test")


class LabError(RuntimeError):
    """Something the user asked that cannot be done (no such lab, node, network...)."""


def state_dir() -> Path:
    return Path(os.environ.get("LABNET_STATE_DIR", DEFAULT_STATE_DIR))


def load_topology(spec: str) -> Topology:
    """A topology file, or the name of a built-in one (``roaming``, ``testbed``, ``dserver``,
    ``dserver-farm``, ``dserver-proxy``, ``dserver-udp``)."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load(path)
    try:
        return builtin(spec)
    except FileNotFoundError:
        raise LabError(f"no topology file {spec!r} and no built-in topology of that name") from None


def uplink_profile(uplink: Uplink) -> dict[str, Any]:
    """A network's uplink as a hub link profile (both directions)."""
    profile: dict[str, Any] = {
        "latency": uplink.latency,
        "jitter": uplink.jitter,
        "loss": uplink.loss,
        "queue_packets": uplink.queue,
    }
    if uplink.bandwidth is not None:
        profile["bandwidth"] = uplink.bandwidth
    return profile


def kernel_link(spec: NodeSpec, netns: str) -> dict[str, Any]:
    """The hub link keys that attach a ``kernel`` node: a TUN device the hub creates and moves
    into ``netns``, the node's addresses on it, and a default route through it."""
    return {
        "kind": "tun",
        "netns": netns,
        "addresses": [f"{address}/128" for address in spec.addresses],
        "kernel_routes": ["::/0"],
    }


def esp_pair(spec: NodeSpec, spis: set[int]) -> dict[str, Any]:
    """One ``ipsec.pairs`` entry for mobile node ``spec`` and its home agent: fresh random SPIs
    (not in ``spis``, which gains them) and 20-byte AES-GCM-16 keys (16 key, 4 salt)."""
    pair: dict[str, Any] = {
        "home_address": str(spec.home_address),
        "home_agent": str(spec.home_agent),
    }
    for sa_name in _SA_NAMES:
        spi = 0
        while spi < 0x100 or spi in spis:  # SPIs 1-255 are reserved (RFC 4303 2.1)
            spi = secrets.randbelow(1 << 32)
        spis.add(spi)
        pair[sa_name] = {"spi": spi, "encryption_key": "0x" + secrets.token_hex(20)}
    return pair


def _write_private(path: Path, text: str) -> None:
    """``text`` into ``path``, readable by its owner only (it may hold keys)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)


def fast_path_default() -> bool:
    """Whether a lab's daemons use their C fast path unless told: yes, but for
    ``LABNET_FAST_PATH=off`` (or ``0``, ``no``, ``false``) in the environment."""
    value = os.environ.get("LABNET_FAST_PATH", "on").strip().lower()
    return value not in ("off", "0", "no", "false")


def _environment() -> dict[str, str]:
    """For the hub and daemons: this checkout importable even when it is not installed."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root if not path else f"{root}{os.pathsep}{path}"}


# `ip` rather than pyroute2 for the lab's namespaces (issue 18 item 5, measured on a 2-core
# box by timing this module's subprocess.run calls around NetnsLab.up and down): `up` of the
# dserver topology spends 42-63 ms of its 2.5-2.9 s in its 17 `ip` calls (the rest is the
# daemons starting one after another), and `down` 22-28 ms of 2.3-2.5 s; pyroute2's import
# alone costs 107-180 ms in a fresh `labnet` process, and its NetNS took longer than `ip` for
# the same namespaces' set-up even once imported (a namespace's addr_gen_mode default still
# needs a process inside it).
def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


# A daemon's UDP port is chosen here and bound by the daemon a moment later. A port from the
# kernel's ephemeral range could be handed, in that moment, to another lab's hub binding its
# links to port 0 (conformance runs eight labs at once): the daemon then failed with
# EADDRINUSE. Ports below the ephemeral range are never handed out that way; they are tried in
# an order that starts at random, so labs started together do not pick the same ones.
_PORTS = range(20000, max(20000 + 1024, _ephemeral_low()))
_port_order = itertools.count(secrets.randbelow(len(_PORTS)))


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 free now and below the kernel's ephemeral range (see above):
    for a socket bound a moment later, in a process that may bind others to port 0 meanwhile."""
    for _ in range(len(_PORTS)):
        port = _PORTS.start + next(_port_order) % len(_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise LabError(f"no free UDP port in {_PORTS.start}-{_PORTS.stop - 1}")


def _alive(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` runs and is still ours (its command line mentions ``marker``)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return marker in cmdline


def _stop(pid: int | None, marker: str) -> None:
    """SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT`; only if the process is still ours."""
    if not _alive(pid, marker):
        if pid:
            _reap(pid)  # a child of ours that died (when up and down run in one process)
        return
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not _alive(pid, marker) or _zombie(pid):
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our child (when ``up`` and ``down`` run in one process)."""
    deadline = time.monotonic() + STOP_TIMEOUT
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done or time.monotonic() > deadline:
            return
        time.sleep(0.02)


@dataclass
class NetnsLab:
    """A running (or half-started, or crashed) lab, as its state file records it."""

    name: str
    state: dict[str, Any]
    # while `up` runs with ESP: each mobile node's ipsec pair (keys: never in the state file)
    _esp_pairs: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _lab_secret: bytes = field(default=b"", repr=False)

    # -- finding labs --------------------------------------------------------------------------

    @staticmethod
    def state_file(name: str) -> Path:
        return state_dir() / f"{name}.json"

    @classmethod
    def open(cls, name: str | None = None) -> NetnsLab:
        """The lab ``name``, or the only lab there is."""
        if name is None:
            names = sorted(p.stem for p in state_dir().glob("*.json"))
            if len(names) != 1:
                raise LabError(
                    "no lab is running"
                    if not names
                    else f"several labs: {', '.join(names)}; say which with --name"
                )
            name = names[0]
        path = cls.state_file(name)
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise LabError(f"no lab named {name!r} ({path} does not exist)") from None
        except ValueError as error:
            raise LabError(f"{path} is damaged ({error}): remove it by hand") from None
        return cls(name, state)

    def save(self) -> None:
        path = self.state_file(self.name)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.state, indent=1))
        temporary.replace(path)

    @property
    def directory(self) -> Path:
        return Path(self.state["directory"])

    @property
    def topology(self) -> Topology:
        return load_topology(self.state["topology"])

    # -- up ------------------------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        topology_spec: str | Topology,
        name: str | None = None,
        *,
        esp: bool = False,
        wait: bool = True,
        endpoints: dict[str, tuple[str, int]] | None = None,
        role_options: dict[str, dict[str, Any]] | None = None,
        pinned: dict[str, str] | None = None,
        fast_path: bool | None = None,
        captures: bool = True,
    ) -> NetnsLab:
        """Start the lab; on any failure everything started so far is removed again. ``esp``:
        home registrations under ESP with fresh random keys (see the module's description).

        For a tool driving the lab from Python (the conformance suite): a topology built in
        code (written to the lab's directory as ``topology.yaml``); ``wait=False`` returns
        without waiting for home registrations (the tester plays the home agent);
        ``endpoints`` fixes the UDP address of ``external`` nodes' links, so the hub delivers
        to them from the first packet (otherwise it learns the endpoint when the node first
        sends); ``role_options`` adds keys to a node's role block in its daemon configuration
        (``{"iut": {"constants": {"max_nonce_lifetime": 8}}}``); ``pinned`` sends everything
        arriving on an ``external`` node's link to another node's link whatever its
        destination (hub link key ``to``: a tester cabled to the node under test);
        ``fast_path``: the daemons' C fast path (None: on unless ``LABNET_FAST_PATH=off``);
        ``captures=False``: the hub writes no pcap (``labnet bench hub`` measures the daemons
        with and without the hub's capture cost)."""
        if os.geteuid() != 0:
            raise LabError("the netns backend needs root (network namespaces, TUN devices)")
        topology = (
            topology_spec if isinstance(topology_spec, Topology) else load_topology(topology_spec)
        )
        name = name or topology.name
        if not name.replace("-", "").replace("_", "").isalnum() or len(name) > 32:
            raise LabError(f"lab name {name!r}: up to 32 letters, digits, '-' or '_'")
        state_dir().mkdir(parents=True, exist_ok=True)
        if cls.state_file(name).exists():
            raise LabError(f"lab {name!r} exists: labnet down --name {name} first")
        directory = state_dir() / name
        directory.mkdir(parents=True, exist_ok=True)
        if isinstance(topology_spec, Topology):
            written = directory / "topology.yaml"
            written.write_text(dump(topology))
            spec = str(written)
        else:
            spec_path = Path(topology_spec)
            spec = str(spec_path.resolve()) if spec_path.exists() else topology_spec
        lab = cls(
            name,
            {
                "name": name,
                "backend": "netns",
                "esp": esp,
                "fast_path": fast_path_default() if fast_path is None else fast_path,
                "captures": captures,
                "topology": spec,
                "role_options": role_options or {},
                "pinned": pinned or {},
                "endpoints": {
                    node: f"{host}:{port}" for node, (host, port) in (endpoints or {}).items()
                },
                "directory": str(directory),
                "hub": {"pid": None},
                "nodes": {
                    node.name: {
                        "kind": node.kind,
                        "role": node.role,
                        "network": node.network,
                        "netns": f"{name}-{node.name}" if node.kind != "external" else None,
                        "pid": None,
                    }
                    for node in topology.nodes.values()
                },
            },
        )
        lab.save()
        try:
            lab._start(topology, wait=wait)
        except BaseException:
            lab.down()
            raise
        return lab

    def _start(self, topology: Topology, *, wait: bool) -> None:
        endpoints = {
            node.name: free_udp_port() for node in topology.nodes.values() if node.kind == "engine"
        }
        for node in topology.nodes.values():
            if node.kind == "kernel":  # the hub moves the node's TUN device into it
                self._new_namespace(self.state["nodes"][node.name])
        self._start_hub(topology, endpoints)
        if self.state.get("esp"):
            spis: set[int] = set()
            for node in topology.nodes.values():
                if registers_home(topology, node):
                    self._esp_pairs[node.name] = esp_pair(node, spis)
        self._lab_secret = secrets.token_bytes(32)  # a distributed server's group key
        for node in topology.nodes.values():
            if node.kind == "engine":
                self._start_node(topology, node, endpoints[node.name])
        self._esp_pairs.clear()
        self._lab_secret = b""
        if wait:
            self._wait_registered(topology)

    def _hub_description(self, topology: Topology, endpoints: dict[str, int]) -> dict[str, Any]:
        links: dict[str, Any] = {}
        routes: dict[str, str] = {}
        for node in topology.nodes.values():
            network = topology.networks[node.network]
            link: dict[str, Any] = uplink_profile(network.uplink)
            if node.name in endpoints:
                link["endpoint"] = f"127.0.0.1:{endpoints[node.name]}"
            elif node.name in self.state.get("endpoints", {}):
                link["endpoint"] = self.state["endpoints"][node.name]
            if node.name in self.state.get("pinned", {}):
                link["to"] = self.state["pinned"][node.name]
            if node.kind == "kernel":
                link |= kernel_link(node, self.state["nodes"][node.name]["netns"])
            links[node.name] = link
            addresses = [current_address(node, network), *node.addresses[1:]]
            if node.kind == "external":
                addresses = list(node.addresses)
            for address in addresses:
                routes[f"{address}/128"] = node.name
            found = entry(node)
            if found is not None and found.owns_prefixes:
                for prefix in home_prefixes(topology, node):
                    routes[str(prefix)] = node.name
        return {
            "bind": "127.0.0.1",
            "control": "127.0.0.1:0",
            **({"pcap_dir": "pcap"} if self.state.get("captures", True) else {}),
            "seed": 1,
            "realtime": True,
            "links": links,
            "routes": routes,
        }

    def _start_hub(self, topology: Topology, endpoints: dict[str, int]) -> None:
        description = self.directory / "hub.json"
        description.write_text(json.dumps(self._hub_description(topology, endpoints), indent=1))
        ready = self.directory / "hub.ready"
        ready.unlink(missing_ok=True)
        with open(ready, "w") as out, open(self.directory / "hub.log", "w") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "labnet.cli", "hub", str(description)],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=_environment(),
            )
        self.state["hub"] = {"pid": process.pid, "marker": str(description)}
        self.save()
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.read_text().endswith("\n"):
            if process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "hub.log").read_text()
                raise LabError(f"the hub did not start: {log.strip()[-2000:]}")
            time.sleep(0.02)
        described = json.loads(ready.read_text())
        self.state["hub"] |= {
            "control": described["control"],
            "links": {
                link: {"address": info["address"], "pcap": info["pcap"]}
                for link, info in described["links"].items()
            },
        }
        self.save()

    def _node_config(self, topology: Topology, node: NodeSpec, local_port: int) -> str:
        hub_host, hub_port = self.state["hub"]["links"][node.name]["address"]
        links: dict[str, Any] = {}
        if node.mode == "shim":  # the kernel behind the daemon
            links["kernel"] = {"type": "tun", "name": TUN_DEVICE}
        links["network"] = {
            "type": "udp",
            "remote": f"{hub_host}:{hub_port}",
            "local": f"127.0.0.1:{local_port}",
        }
        pairs = [
            pair
            for owner, pair in self._esp_pairs.items()
            if owner == node.name
            or topology.nodes[owner].home_agent == node.addresses[0]
            # a distributed server's members all hold the contact address's SAs: a backup
            # takes C over with them (DSERVER 5)
            or topology.nodes[owner].addresses[0] in group(topology, node)
        ]
        config = daemon_config(
            topology,
            node,
            links=links,
            options=self.state.get("role_options", {}).get(node.name),
            ipsec_pairs=pairs,
            esp=bool(self.state.get("esp")),
            lab_secret=self._lab_secret,
            extra={
                "netns": self.state["nodes"][node.name]["netns"],
                "control": str(self.directory / f"{node.name}.sock"),
                **({} if self.state.get("fast_path", True) else {"fast_path": False}),
            },
        )
        return dump_config(config, f"generated by labnet up for lab {self.name}, node {node.name}")

    def _start_node(self, topology: Topology, node: NodeSpec, local_port: int) -> None:
        record = self.state["nodes"][node.name]
        netns = self._new_namespace(record)
        config = self.directory / f"{node.name}.yaml"
        text = self._node_config(topology, node, local_port)
        if self.state.get("esp"):
            _write_private(config, text)
        else:
            config.write_text(text)
        self._launch(record, node.name, config, [sys.executable, "-m", "mip6.cli", "run"])
        record["address"] = str(current_address(node, topology.networks[node.network]))
        self.save()
        if node.mode == "shim":  # the kernel behind it owns the node's own address
            found = entry(node)
            assert found is not None
            kernel_address = IPv6Address(yaml.safe_load(text)[found.name][found.host_address])
            self._kernel_address(netns, kernel_address)

    def _launch(
        self,
        record: dict[str, Any],
        name: str,
        config: Path,
        command: list[str],
        *,
        again: bool = False,
    ) -> None:
        """Start ``name``'s daemon on ``config``; return once its control socket exists.
        ``again`` (a restart): its log goes on after the earlier lives' (what they logged
        before they were killed is what a chaos run is read by)."""
        control = self.directory / f"{name}.sock"
        control.unlink(missing_ok=True)
        with open(self.directory / f"{name}.log", "a" if again else "w") as log:
            process = subprocess.Popen(
                [*command, str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=_environment(),
            )
        record |= {
            "pid": process.pid,
            "marker": str(config),
            "config": str(config),
            "control": str(control),
            "log": str(self.directory / f"{name}.log"),
        }
        self.save()
        deadline = time.monotonic() + START_TIMEOUT
        while not control.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                text = Path(record["log"]).read_text()
                raise LabError(f"node {name}'s daemon did not start: {text.strip()[-2000:]}")
            time.sleep(0.02)

    @staticmethod
    def _kernel_address(netns: str, address: IPv6Address) -> None:
        sh(
            "ip", "-n", netns, "-6", "addr", "add", f"{address}/128",
            "dev", TUN_DEVICE, "nodad",
        )  # fmt: skip
        sh("ip", "-n", netns, "-6", "route", "add", "default", "dev", TUN_DEVICE)

    def _new_namespace(self, record: dict[str, Any]) -> str:
        netns: str = record["netns"]
        if Path("/run/netns", netns).exists():
            raise LabError(f"network namespace {netns} exists already (not this lab's)")
        record["netns_created"] = True  # recorded first: `down` deletes it even after a crash
        self.save()
        sh("ip", "netns", "add", netns)
        sh("ip", "-n", netns, "link", "set", "lo", "up")
        # no link-local address (hence no MLD or router solicitations) on the TUN device
        sh(
            "ip", "netns", "exec", netns, "sh", "-c",
            "echo 1 > /proc/sys/net/ipv6/conf/default/addr_gen_mode",
        )  # fmt: skip
        return netns

    def _wait_registered(self, topology: Topology) -> None:
        """Until every mobile node away from home, and every distributed server's contact
        node, has its home registration acknowledged."""
        deadline = time.monotonic() + REGISTRATION_TIMEOUT
        for node in topology.nodes.values():
            if not registers_home(topology, node):
                continue
            if mobile(node) and care_of_for(node, topology.networks[node.network]) is None:
                continue
            while not self.registered(node.name):
                if time.monotonic() > deadline:
                    raise LabError(f"{node.name}'s home registration was not acknowledged")
                time.sleep(0.05)

    def registered(self, node: str) -> bool:
        """Whether ``node`` (a mobile node) has an acknowledged home registration for its
        current care-of address."""
        record = self.state["nodes"][node]
        rows = control_request(record["control"], {"show": "bul"})["rows"]
        return any(
            row["home_registration"]
            and row["state"] == "bound"
            and row["care_of_address"] == record["address"]
            for row in rows
        )

    # -- takeover ------------------------------------------------------------------------------

    def start_standby(
        self, node: str, *, takes_over: str, keys: str = "shared", skip: int = TAKEOVER_SKIP
    ) -> None:
        """Run a standby mobile node for ``takes_over``'s home address on ``external`` node
        ``node`` (its hub link; its address becomes the care-of address). ``keys``: "shared"
        (``takes_over``'s SAs) or "random" (fresh keys under the same SPIs: a node without
        the SA); either way the outbound Sequence Numbers start past ``skip``. It registers on
        :meth:`activate`."""
        if keys not in ("shared", "random"):
            raise LabError(f"keys: {keys!r} is not 'shared' or 'random'")
        record = self._node(node)
        topology = self.topology
        spec = topology.nodes[node]
        holder = topology.nodes.get(takes_over)
        if spec.kind != "external" or record.get("pid"):
            raise LabError(f"{node} is not an unused external node")
        if holder is None or not mobile(holder):
            raise LabError(f"{takes_over} is not a mobile node")
        held = yaml.safe_load(Path(self._node(takes_over)["config"]).read_text())
        if "ipsec" not in held:
            raise LabError(f"lab {self.name} runs without ESP: nothing to take over with")
        pair = held["ipsec"]["pairs"][0]
        if keys == "random":
            for sa_name in _SA_NAMES:
                pair[sa_name]["encryption_key"] = "0x" + secrets.token_hex(20)
        record["netns"] = f"{self.name}-{node}"
        record["role"] = held["role"]
        netns = self._new_namespace(record)
        hub_host, hub_port = self.state["hub"]["links"][node]["address"]
        # the holder's configuration, on this node's link, and at home until activated
        standby = {
            **held,
            "node": node,
            "mode": "shim",
            "netns": netns,
            "control": str(self.directory / f"{node}.sock"),
            "links": {
                "kernel": {"type": "tun", "name": TUN_DEVICE},
                "network": {
                    "type": "udp",
                    "remote": f"{hub_host}:{hub_port}",
                    "local": f"127.0.0.1:{free_udp_port()}",
                },
            },
            "ipsec": {**held["ipsec"], "pairs": [pair]},
        }
        standby[held["role"]].pop("care_of_address", None)
        standby.pop("apps", None)
        config = self.directory / f"{node}.yaml"
        comment = f"generated by labnet for lab {self.name}: standby for {takes_over} on {node}"
        _write_private(config, dump_config(standby, comment))
        command = [
            sys.executable,
            "-m",
            "labnet.netns",
            "--skip",
            str(skip),
        ]
        self._launch(record, node, config, command)
        record["address"] = str(holder.home_address)  # at home until activated
        record["care_of"] = str(spec.addresses[0])
        self.save()
        assert holder.home_address is not None
        self._kernel_address(netns, holder.home_address)

    def activate(self, node: str) -> None:
        """Tell standby ``node`` to register its care-of address (returns at once)."""
        record = self._node(node)
        if "care_of" not in record:
            raise LabError(f"{node} is not a standby (start_standby first)")
        reply = control_request(record["control"], {"move": record["care_of"]})
        if "error" in reply:
            raise LabError(f"{node}: move: {reply['error']}")
        record["address"] = record["care_of"]
        self.save()

    # -- running -------------------------------------------------------------------------------

    # -- crashes --------------------------------------------------------------------------------

    def kill(self, node: str) -> None:
        """SIGKILL ``node``'s daemon, as a crash: it cleans nothing up and says nothing (a
        distributed server's member dies so). Its namespace stays; :meth:`restart` brings the
        daemon back."""
        record = self._node(node)
        pid = record.get("pid")
        marker = record.get("marker", "mip6.cli")
        if not _alive(pid, marker):
            raise LabError(f"node {node}'s daemon is not running")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        _reap(pid)
        record["pid"] = None
        self.save()

    def restart(self, node: str, *, role_options: dict[str, Any] | None = None) -> None:
        """Start killed ``node``'s daemon again on its configuration, ``role_options``
        replacing keys of its role block first (a member that comes back names the contact
        node it joins, not itself)."""
        record = self._node(node)
        if _alive(record.get("pid"), record.get("marker", "mip6.cli")):
            raise LabError(f"node {node}'s daemon is running")
        config = Path(record["config"])
        data = yaml.safe_load(config.read_text())
        data[data["role"]].update(plain(role_options or {}))
        comment = f"generated by labnet for lab {self.name}: {node}, restarted"
        _write_private(config, dump_config(data, comment))
        command = [sys.executable, "-m", "mip6.cli", "run"]
        self._launch(record, node, config, command, again=True)

    def hub_query(self, request: str) -> dict[str, Any]:
        host, port = self.state["hub"]["control"]
        reply = query((host, port), request)
        if "error" in reply:
            raise LabError(f"hub: {request.split()[0]}: {reply['error']}")
        return reply

    def _node(self, node: str) -> dict[str, Any]:
        try:
            record: dict[str, Any] = self.state["nodes"][node]
        except KeyError:
            raise LabError(
                f"no node {node!r} in lab {self.name} (nodes: {', '.join(self.state['nodes'])})"
            ) from None
        return record

    def move(self, node: str, network_name: str) -> IPv6Address | None:
        """Attach mobile node ``node`` to ``network_name``; returns the care-of address (None:
        home)."""
        record = self._node(node)
        topology = self.topology
        spec = topology.nodes[node]
        if not mobile(spec):
            raise LabError(f"{node} is a {spec.role or spec.kind}, not a mobile node")
        if network_name not in topology.networks:
            raise LabError(
                f"no network {network_name!r} (networks: {', '.join(topology.networks)})"
            )
        network = topology.networks[network_name]
        care_of = care_of_for(spec, network)
        new = current_address(spec, network)
        old = record["address"]
        self.hub_query(f"route add {new}/128 {node}")
        if str(new) != old:
            self.hub_query(f"route del {old}/128")
        self.hub_query(f"profile {node} {json.dumps(uplink_profile(network.uplink))}")
        reply = control_request(
            record["control"], {"move": None if care_of is None else str(care_of)}
        )
        if "error" in reply:
            raise LabError(f"{node}: move: {reply['error']}")
        record |= {"network": network_name, "address": str(new)}
        self.save()
        return care_of

    def exec_argv(self, node: str, command: list[str]) -> list[str]:
        record = self._node(node)
        if record["netns"] is None:
            raise LabError(f"{node} is an external node: it has no namespace")
        return ["ip", "netns", "exec", record["netns"], *command]

    def pcap(self, link: str) -> str:
        links = self.state["hub"].get("links", {})
        if link not in links:
            raise LabError(f"no link {link!r} (links: {', '.join(links)})")
        if links[link]["pcap"] is None:
            raise LabError(f"lab {self.name!r} was started without captures")
        with contextlib.suppress(LabError, TimeoutError, OSError):
            self.hub_query("flush")
        return str(links[link]["pcap"])

    def status(self) -> dict[str, Any]:
        hub = self.state["hub"]
        hub_running = _alive(hub.get("pid"), hub.get("marker", "labnet"))
        stats: dict[str, Any] = {}
        if hub_running:
            with contextlib.suppress(TimeoutError, OSError):
                stats = query(tuple(hub["control"]), "stats")  # type: ignore[arg-type]
        nodes: dict[str, Any] = {}
        for name, record in self.state["nodes"].items():
            link = hub.get("links", {}).get(name, {})
            entry: dict[str, Any] = {
                "kind": record["kind"],
                "role": record["role"],
                "network": record["network"],
                "hub_link": link.get("address"),
                "pcap": link.get("pcap"),
            }
            if record["kind"] == "engine":
                entry |= {
                    "netns": record["netns"],
                    "address": record.get("address"),
                    "pid": record.get("pid"),
                    "running": _alive(record.get("pid"), record.get("marker", "mip6")),
                    "control": record.get("control"),
                    "log": record.get("log"),
                }
            else:
                entry["endpoint"] = link.get("address")  # where to send raw IPv6 datagrams
                entry["addresses"] = [str(a) for a in self.topology.nodes[name].addresses]
                if record["kind"] == "kernel":  # no endpoint: a TUN device in its namespace
                    entry["netns"] = record["netns"]
            counters = stats.get("links", {}).get(name)
            if counters is not None:
                entry["packets"] = {
                    "from_node": counters["up"]["packets_in"],
                    "to_node": counters["down"]["packets_out"],
                }
            nodes[name] = entry
        return {
            "name": self.name,
            "backend": "netns",
            "topology": self.state["topology"],
            "directory": str(self.directory),
            "hub": {
                "pid": hub.get("pid"),
                "running": hub_running,
                "control": hub.get("control"),
                "routes": self._routes() if hub_running else None,
            },
            "nodes": nodes,
        }

    def _routes(self) -> dict[str, str] | None:
        try:
            routes: dict[str, str] = self.hub_query("routes")["routes"]
        except (LabError, TimeoutError, OSError):
            return None
        return routes

    # -- down ----------------------------------------------------------------------------------

    def down(self, *, discard: bool = False) -> None:
        """Stop every daemon (a mobile node deregisters), then the hub; delete the namespaces
        and the state file. Safe to repeat, and after a crash. The lab's directory (its logs
        and captures) stays for whoever reads them after, unless ``discard``: a lab a bench or
        an experiment made for itself, whose captures of a 50 MB download would otherwise pile
        up under the state directory (a tmpfs in ``/run``: memory) run after run."""
        # mobile nodes first, while their home agents and correspondents can still answer
        order = {"mobile_node": 0, "correspondent": 1, "home_agent": 2}
        records = sorted(self.state["nodes"].values(), key=lambda r: order.get(r["role"], 3))
        for record in records:
            _stop(record.get("pid"), record.get("marker", "mip6.cli"))
        hub = self.state["hub"]
        _stop(hub.get("pid"), hub.get("marker", "labnet.cli"))
        existing = {
            line.split()[0] for line in sh("ip", "netns", "list", check=False).stdout.splitlines()
        }
        for record in records:
            netns = record.get("netns")
            if netns and record.get("netns_created") and netns in existing:
                # what `labnet exec` left running there (a server in the background)
                for pid in sh("ip", "netns", "pids", netns, check=False).stdout.split():
                    _stop(int(pid), "")
                sh("ip", "netns", "delete", netns, check=False)
        for record in self.state["nodes"].values():
            if record.get("control"):
                Path(record["control"]).unlink(missing_ok=True)
        self.state_file(self.name).unlink(missing_ok=True)
        if discard:
            shutil.rmtree(self.directory, ignore_errors=True)


def down(name: str | None) -> str | None:
    """``labnet down``: the lab's name if there was one to take down, None if there was none."""
    try:
        lab = NetnsLab.open(name)
    except LabError:
        return None
    lab.down()
    return lab.name


def _run_standby(argv: list[str] | None = None) -> int:
    """``python -m labnet.netns [--skip N] CONFIG``: ``mip6 run CONFIG``, with the outbound SAs'
    Sequence Number counters advanced by N (:meth:`NetnsLab.start_standby`)."""
    import asyncio
    import logging

    from mip6.core.ipsec.sa import Direction
    from mip6.runtime.config import ConfigError
    from mip6.runtime.config import load as load_config
    from mip6.runtime.daemon import Daemon

    parser = argparse.ArgumentParser(prog="python -m labnet.netns")
    parser.add_argument("--skip", type=int, default=0)
    parser.add_argument("config")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_config(args.config)
    except (ConfigError, OSError) as error:
        print(f"labnet: {error}", file=sys.stderr)
        return 2
    daemon = Daemon(config)
    security = getattr(daemon.engine, "security", None)
    if args.skip and security is not None:
        for sa in security.security_associations():
            if sa.direction is Direction.OUTBOUND:
                security.import_sa(sa.export(retire=True), skip=args.skip)
    asyncio.run(daemon.run())
    return 0


if __name__ == "__main__":
    sys.exit(_run_standby())
