"""The roles on a real network (issue 18): no hub, no UDP link. Namespaces joined by veth pairs
and Linux bridges are the LAN segments; each role is a ``mip6 run`` daemon on its namespace's
own interface (``type: interface``), and movement is a cable moved from one bridge to another.

::

      cn ──────────────── core 2001:db8:2::/64 ──┬───────────┬───────────┐
                                                 rh          r1          r2   (routers)
      home 2001:db8:1::/64 (radvd) ──────────────┤           │           │
        ha (home agent), nb (a plain neighbour)  │  visited1 2001:db8:3::/64 (radvd)
        mn when at home                          │           │  visited2 2001:db8:4::/64 (radvd)
                                                             mn ──moves──> mn

The bridges live in a namespace of their own (``sw``), so nothing of the root namespace
changes; the mobile node's cable is its veth's peer there, moved between bridges with the
carrier dropped in between. The home agent is not the home link's router: packets for the home
address reach it only because it answers Neighbor Solicitations for it (proxy ND).
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from mip6.runtime.kernel import POLICY_PRIORITY, ROUTE_PROTOCOL

from .netns import require_root, sh

pytestmark = pytest.mark.netns

HOME_PREFIX = "2001:db8:1::/64"
HOME_ROUTER = "2001:db8:1::1"
HOME_AGENT = "2001:db8:1::2"
HOME_ADDRESS = "2001:db8:1::5"
NEIGHBOUR = "2001:db8:1::77"  # a plain host on the home link
CN = "2001:db8:2::1"
CORE = {"rh": "2001:db8:2::a", "r1": "2001:db8:2::b", "r2": "2001:db8:2::c"}
VISITED = {"r1": ("2001:db8:3::1", "2001:db8:3::/64"), "r2": ("2001:db8:4::1", "2001:db8:4::/64")}
PROTOCOL = str(ROUTE_PROTOCOL)
BODY_BYTES = 50_000_000


@dataclass
class Lab:
    suffix: str
    tmp: Path
    stack: ExitStack
    daemons: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    prefix: str = "m6"  # of the namespaces' names: each test file its own

    def ns(self, node: str) -> str:
        return f"{self.prefix}{node}{self.suffix}"

    def run(self, node: str, *args: str, check: bool = True, timeout: float = 30) -> str:
        return sh("ip", "netns", "exec", self.ns(node), *args, check=check, timeout=timeout).stdout

    def ping(self, node: str, address: str, *, count: int = 1, wait: int = 2) -> bool:
        result = sh(
            "ip", "netns", "exec", self.ns(node), "ping", "-6", "-n", "-c", str(count),
            "-W", str(wait), address, check=False, timeout=count * wait + 10,
        )  # fmt: skip
        return result.returncode == 0

    def log(self, node: str) -> str:
        return self.logs[node].read_text() if node in self.logs else ""


def until(condition: Callable[[], bool], timeout: float, what: str, lab: Lab) -> float:
    """Seconds ``condition`` took to hold; fails with the daemons' logs after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.1)
    logs = "\n".join(f"--- {n}\n{lab.log(n)[-3000:]}" for n in lab.logs)
    pytest.fail(f"{what}: not within {timeout} s\n{logs}")


@contextmanager
def lab_network(
    tmp: Path, *, prefix: str = "m6", uplinks: tuple[tuple[str, str], ...] = (("eth0", "br-v1"),)
) -> Iterator[Lab]:
    """The network above, its namespaces named ``prefix`` + node + a part of this process's
    id; the mobile node has a cable per ``uplinks`` entry (its device, the bridge it is
    plugged into)."""
    require_root()
    for tool in ("nft", "radvd"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            from tests.conftest import require

            require(False, f"{tool} is not installed (apt-get install nftables radvd)")
    with ExitStack() as stack:
        lab = Lab(str(os.getpid())[-4:], tmp, stack, prefix=prefix)
        nodes = ("sw", "cn", "rh", "r1", "r2", "ha", "nb", "mn")
        for node in nodes:
            sh("ip", "netns", "add", lab.ns(node))
            stack.callback(sh, "ip", "netns", "delete", lab.ns(node), check=False)
            sh("ip", "-n", lab.ns(node), "link", "set", "lo", "up")
        sw = lab.ns("sw")
        for bridge in ("br-core", "br-home", "br-v1", "br-v2"):
            sh("ip", "-n", sw, "link", "add", bridge, "type", "bridge")
            # no multicast snooping: RAs and DAD reach every port at once
            sh("ip", "-n", sw, "link", "set", bridge, "type", "bridge", "mcast_snooping", "0")
            sh("ip", "-n", sw, "link", "set", bridge, "up")

        def cable(node: str, device: str, bridge: str, *addresses: str) -> None:
            port = f"{node}-{device}"
            sh("ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", device,
               "netns", lab.ns(node))  # fmt: skip
            sh("ip", "-n", sw, "link", "set", port, "master", bridge, "up")
            for address in addresses:
                sh("ip", "-n", lab.ns(node), "addr", "add", address, "dev", device, "nodad")
            sh("ip", "-n", lab.ns(node), "link", "set", device, "up")

        cable("cn", "eth0", "br-core", f"{CN}/64")
        cable("rh", "core", "br-core", f"{CORE['rh']}/64")
        cable("rh", "home", "br-home", f"{HOME_ROUTER}/64")
        cable("ha", "eth0", "br-home", f"{HOME_AGENT}/64")
        cable("nb", "eth0", "br-home", f"{NEIGHBOUR}/64")
        for router, (address, _) in VISITED.items():
            cable(router, "core", "br-core", f"{CORE[router]}/64")
            cable(router, "edge", "br-v1" if router == "r1" else "br-v2", f"{address}/64")
        # The mobile node's box as a mobile node's should be set up: Optimistic DAD (RFC
        # 4429) and no random delay before its Router Solicitation (RFC 4861 6.3.7 allows
        # skipping it when the node knows it moved), so a new link is usable at its first RA
        if os.environ.get("MIP6_TEST_DEFAULT_DAD") != "1":
            for key, value in (
                ("optimistic_dad", "1"), ("use_optimistic", "1"), ("router_solicitation_delay", "0")
            ):  # fmt: skip
                lab.run("mn", "sysctl", "-qw", f"net.ipv6.conf.default.{key}={value}")
        for device, bridge in uplinks:
            cable("mn", device, bridge)
        routes = {
            "cn": {HOME_PREFIX: CORE["rh"], "2001:db8:3::/64": CORE["r1"],
                   "2001:db8:4::/64": CORE["r2"]},
            "rh": {"2001:db8:3::/64": CORE["r1"], "2001:db8:4::/64": CORE["r2"]},
            "r1": {HOME_PREFIX: CORE["rh"], "2001:db8:4::/64": CORE["r2"]},
            "r2": {HOME_PREFIX: CORE["rh"], "2001:db8:3::/64": CORE["r1"]},
            "ha": {"default": HOME_ROUTER},
            "nb": {"default": HOME_ROUTER},
        }  # fmt: skip
        for node, table in routes.items():
            for prefix, via in table.items():
                sh("ip", "-n", lab.ns(node), "-6", "route", "add", prefix, "via", via)
        for router, (edge, prefix) in {
            "rh": ("home", HOME_PREFIX),
            "r1": ("edge", VISITED["r1"][1]),
            "r2": ("edge", VISITED["r2"][1]),
        }.items():
            lab.run(router, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
            config = tmp / f"radvd-{router}.conf"
            # RFC 3775 7.5 lets routers advertise this often (MinRtrAdvInterval 0.03 s) for
            # mobile nodes; radvd allows it with the Advertisement Interval option on
            config.write_text(
                f"interface {edge} {{\n  AdvSendAdvert on;\n  MinRtrAdvInterval 0.5;\n"
                f"  MaxRtrAdvInterval 1.5;\n  MinDelayBetweenRAs 0.1;\n  AdvIntervalOpt on;\n"
                f"  prefix {prefix} {{ AdvOnLink on; AdvAutonomous on; }};\n}};\n"
            )
            radvd = subprocess.Popen(
                ["ip", "netns", "exec", lab.ns(router), "radvd", "-n", "-C", str(config),
                 "-p", str(tmp / f"radvd-{router}.pid"), "-m", "stderr"],
                stdout=subprocess.DEVNULL, stderr=open(tmp / f"radvd-{router}.log", "w"),
            )  # fmt: skip
            stack.callback(_stop, radvd)
        yield lab


def _stop(process: subprocess.Popen[str], timeout: float = 8) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def start_daemon(lab: Lab, node: str, config: str) -> None:
    path = lab.tmp / f"{node}.yaml"
    control = lab.tmp / f"{node}.sock"
    path.write_text(f"node: {node}\ncontrol: {control}\n{config}")
    log = lab.tmp / f"{node}.log"
    lab.logs[node] = log
    daemon = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns(node), sys.executable, "-m", "mip6.cli", "run", "-v",
         str(path)],
        stdout=open(log, "w"), stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    lab.daemons[node] = daemon
    lab.stack.callback(_stop, daemon)
    until(lambda: control.exists() or daemon.poll() is not None, 20, f"{node} up", lab)
    if daemon.poll() is not None:
        pytest.fail(f"{node} exited: {lab.log(node)}")


def kernel_state(lab: Lab, node: str) -> list[str]:
    """What of a daemon's could be left in ``node``'s namespace."""
    left = []
    tables = lab.run(node, "nft", "list", "tables")
    left += [line for line in tables.splitlines() if "mip6_" in line]
    links = lab.run(node, "ip", "-o", "link", "show")
    left += [line.split(":")[1].strip() for line in links.splitlines() if ": m6" in line]
    left += lab.run(node, "ip", "-6", "neigh", "show", "proxy").splitlines()
    rules = lab.run(node, "ip", "-6", "rule", "show")
    left += [line for line in rules.splitlines() if line.startswith(f"{POLICY_PRIORITY}:")]
    routes = lab.run(node, "ip", "-6", "route", "show", "table", "all", "proto", PROTOCOL)
    left += routes.splitlines()
    return left


def move(lab: Lab, bridge: str) -> None:
    """Unplug the mobile node's cable and plug it into ``bridge``: the carrier drops."""
    sw = lab.ns("sw")
    sh("ip", "-n", sw, "link", "set", "mn-eth0", "down")
    sh("ip", "-n", sw, "link", "set", "mn-eth0", "nomaster")
    time.sleep(0.3)
    sh("ip", "-n", sw, "link", "set", "mn-eth0", "master", bridge)
    sh("ip", "-n", sw, "link", "set", "mn-eth0", "up")


def care_of(lab: Lab, prefix: str) -> str | None:
    """The mobile node's SLAAC address in ``prefix`` (2001:db8:N::), once usable."""
    out = lab.run("mn", "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
    for line in out.splitlines():
        match = re.search(r"inet6 (\S+)/64", line)
        if match and match.group(1).startswith(prefix) and "tentative" not in line:
            return match.group(1)
    return None


def logged(lab: Lab, node: str, text: str) -> float:
    """When ``node``'s daemon first logged ``text`` (its log's wall-clock timestamp)."""
    for line in lab.log(node).splitlines():
        if text in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()
    pytest.fail(f"{node} never logged {text!r}")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bcache(lab: Lab, node: str) -> str:
    from mip6.runtime.control import control_request

    return str(control_request(str(lab.tmp / f"{node}.sock"), {"show": "bcache"}))


REGISTER = """
import socket, sys, time
from ipaddress import IPv6Address
from mip6.wire import mobility as mh
from mip6.wire.errors import WireError
from mip6.wire.ipv6 import Ipv6Packet
from tests.core.test_home_agent import home_bu
home, care_of, agent = (IPv6Address(a) for a in sys.argv[1:4])
capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86DD))
capture.settimeout(0.5)
sender = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
sender.sendto(home_bu(7, home=home, care_of=care_of, destination=agent), (str(agent), 0))
deadline = time.monotonic() + 8
while time.monotonic() < deadline:
    try:
        frame = capture.recv(70000)
    except TimeoutError:
        continue
    try:
        packet = Ipv6Packet.parse(frame[14:])
    except WireError:
        continue
    if isinstance(packet.payload, mh.BindingAcknowledgement) and packet.destination == care_of:
        print(packet.payload.status)
        break
"""


def home_registration_status(lab: Lab, node: str, home: str, care_of: str) -> int | None:
    """The status of the BA a home registration of ``home`` from ``care_of`` (an address of
    ``node``, a namespace without a daemon) gets: a Binding Update sent by hand."""
    out = sh(
        "ip", "netns", "exec", lab.ns(node), "env", f"PYTHONPATH={Path(__file__).parents[2]}",
        sys.executable, "-c", REGISTER, home, care_of, HOME_AGENT,
    ).stdout  # fmt: skip
    return int(out) if out.strip() else None  # no answer at all


def ipsec_block() -> str:
    """RFC 3776 SAs between the mobile node and the home agent (the same block on both): ESP
    transport mode for BU and BA, tunnel mode for HoTI and HoT (AES-GCM, fresh keys)."""
    sas = "".join(
        f'      {name}: {{spi: {spi}, encryption_key: "0x{os.urandom(20).hex()}"}}\n'
        for spi, name in enumerate(
            ("binding_update", "binding_acknowledgement", "home_test_init", "home_test"), 0x1001
        )
    )
    return (
        "ipsec:\n  algorithm: aes-gcm-16\n  pairs:\n"
        f"    - home_address: {HOME_ADDRESS}\n      home_agent: {HOME_AGENT}\n{sas}"
    )


@pytest.mark.parametrize("esp", [False, True], ids=["plain", "esp"])
def test_home_agent_mobile_node_correspondent_on_real_links(tmp_path: Path, esp: bool) -> None:
    ipsec = ipsec_block() if esp else ""
    with lab_network(tmp_path) as lab:
        # plain IPv6 between neighbours before any daemon
        assert lab.ping("cn", CORE["rh"]) and lab.ping("ha", NEIGHBOUR)
        until(lambda: care_of(lab, "2001:db8:3:") is not None, 20, "SLAAC on visited1", lab)
        assert lab.ping("mn", "2001:db8:3::1")

        start_daemon(
            lab, "ha",
            "role: home_agent\nmode: router\nlinks:\n  network: {type: interface, name: eth0}\n"
            f"home_agent: {{address: \"{HOME_AGENT}\", home_prefixes: [\"{HOME_PREFIX}\"], "
            f"allow_unprotected_registration: {str(not esp).lower()}, "
            f"duplicate_address_detection: true}}\n{ipsec}",
        )  # fmt: skip
        start_daemon(
            lab, "cn",
            "role: correspondent\nmode: shim\nlinks:\n  kernel: {type: tun, name: m6k0}\n"
            f"  network: {{type: interface, name: eth0}}\ncorrespondent: {{address: \"{CN}\"}}\n",
        )  # fmt: skip
        start_daemon(
            lab, "mn",
            "role: mobile_node\nmode: shim\nlinks:\n  kernel: {type: tun, name: m6k0}\n"
            "  network: {type: interface, name: eth0}\n"
            f"mobile_node: {{home_address: \"{HOME_ADDRESS}\", home_agent: \"{HOME_AGENT}\"}}\n"
            f"{ipsec}",
        )  # fmt: skip
        coa1 = care_of(lab, "2001:db8:3:")
        # registered (after DAD on the home link): the home agent proxies the home address
        until(
            lambda: HOME_ADDRESS in lab.run("ha", "ip", "-6", "neigh", "show", "proxy"),
            15, "proxy entry for the home address", lab,
        )  # fmt: skip
        assert coa1 in bcache(lab, "ha")
        status = home_registration_status(lab, "r1", NEIGHBOUR, VISITED["r1"][0])
        if esp:
            # RFC 3776 4: an unprotected home registration is dropped, unanswered (the mobile
            # node's own went through under ESP: it is registered)
            assert status is None
        else:
            # RFC 3775 10.3.1: the home agent's DAD on the home link finds the neighbour's
            # address in use (the neighbour's kernel answers its solicitation): status 134
            assert status == 134
            assert "dad_failed" in lab.log("ha")
        assert NEIGHBOUR not in lab.run("ha", "ip", "-6", "neigh", "show", "proxy")

        # a stock ping from the correspondent to the home address: through the home agent's
        # tunnel, then route optimized (the correspondent gets a binding, a route into its shim)
        until(lambda: lab.ping("cn", HOME_ADDRESS), 20, "ping to the home address", lab)
        until(
            lambda: HOME_ADDRESS in lab.run("cn", "ip", "-6", "route", "show", "proto", PROTOCOL),
            20, "route optimization at the correspondent", lab,
        )  # fmt: skip
        assert coa1 in bcache(lab, "cn")
        assert lab.ping("cn", HOME_ADDRESS, count=3)
        # a stock program on the mobile node with the home address as its source
        assert sh("ip", "netns", "exec", lab.ns("mn"), "ping", "-6", "-c", "1", "-W", "2",
                  "-I", HOME_ADDRESS, CN, check=False).returncode == 0  # fmt: skip
        # other programs keep working while the daemons run
        assert lab.ping("cn", CORE["rh"]) and lab.ping("ha", NEIGHBOUR)
        assert lab.ping("mn", "2001:db8:3::1") and lab.ping("nb", HOME_ROUTER)

        # A stock web server on the mobile node's home address, a stock curl of 50 MB from
        # the correspondent; rate-limited so the move falls in its middle
        body = lab.tmp / "www" / "body"
        body.parent.mkdir()
        body.write_bytes(os.urandom(BODY_BYTES))
        server = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("mn"), sys.executable, "-m", "http.server", "8080",
             "--bind", HOME_ADDRESS, "--directory", str(body.parent)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        lab.stack.callback(_stop, server)
        fetched = lab.tmp / "fetched"
        until(
            lambda: "LISTEN" in lab.run("mn", "ss", "-ltn", "sport", "= :8080"),
            10, "the web server", lab,
        )  # fmt: skip
        curl = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("cn"), "curl", "-sS", "-g", "--limit-rate", "6M",
             "--max-time", "120", "-o", str(fetched), f"http://[{HOME_ADDRESS}]:8080/body"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        lab.stack.callback(_stop, curl)
        # the cable moves to visited2: a ping running across the move gets answers after it
        pinger = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("cn"), "ping", "-6", "-n", "-i", "0.2", "-c", "100",
             "-W", "1", HOME_ADDRESS],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(2)
        assert curl.poll() is None  # the transfer is under way when the cable moves
        move(lab, "br-v2")
        replugged = time.time()
        until(lambda: care_of(lab, "2001:db8:4:") is not None, 20, "SLAAC on visited2", lab)
        coa2 = care_of(lab, "2001:db8:4:")
        assert coa2 is not None
        until(lambda: coa2 in bcache(lab, "ha"), 20, "home registration from visited2", lab)
        assert curl.poll() is None  # and still is once the mobile node has registered
        until(lambda: coa2 in bcache(lab, "cn"), 20, "correspondent binding to visited2", lab)
        output, _ = pinger.communicate(timeout=60)
        replies = [float(m) for m in re.findall(r"icmp_seq=(\d+) ", output)]
        assert replies and max(replies) >= 90, output  # answered after the move, to the end
        assert care_of(lab, "2001:db8:3:") is None  # the old link's address was forgotten
        assert lab.ping("mn", "2001:db8:4::1")
        detected = logged(lab, "mn", f"movement detected: care-of address {coa2}")
        registered = logged(lab, "ha", f"binding_added {{'home_address': '{HOME_ADDRESS}', "
                            f"'care_of_address': '{coa2}'")  # fmt: skip
        print(
            f"re-plugged into visited2: movement detected after {detected - replugged:.3f} s, "
            f"home agent's binding after {registered - replugged:.3f} s"
        )
        output, _ = curl.communicate(timeout=150)
        assert curl.returncode == 0, output
        assert fetched.stat().st_size == BODY_BYTES
        assert sha256(fetched) == sha256(body)

        # home again: deregistered, no proxy entry, the home address on the interface
        move(lab, "br-home")
        until(
            lambda: HOME_ADDRESS not in lab.run("ha", "ip", "-6", "neigh", "show", "proxy"),
            20, "deregistration at home", lab,
        )  # fmt: skip
        assert HOME_ADDRESS in lab.run("mn", "ip", "-6", "addr", "show", "dev", "eth0")
        until(lambda: lab.ping("cn", HOME_ADDRESS), 30, "ping to the mobile node at home", lab)
        assert lab.ping("nb", HOME_ADDRESS)

        for node in ("mn", "cn", "ha"):
            assert _stop(lab.daemons[node]) == 0, lab.log(node)
        for node in ("mn", "cn", "ha"):
            assert kernel_state(lab, node) == [], node
        # the home agent's interface is as it found it (proxy ND and forwarding were its own)
        for key, value in (("proxy_ndp", "0"), ("forwarding", "0"), ("accept_ra", "1")):
            assert lab.run("ha", "sysctl", "-n", f"net.ipv6.conf.eth0.{key}").strip() == value
        # and the box still works without them
        assert lab.ping("cn", CORE["rh"]) and lab.ping("ha", NEIGHBOUR)
        assert lab.ping("mn", HOME_ROUTER)
