"""A distributed server on a real network (issue 18 item 4): no hub, no UDP link. Namespaces
joined by veth pairs and Linux bridges are the LAN segments; the home agent and three members
are ``mip6 run`` daemons on their namespaces' own interfaces (``type: interface``), the members
in host mode (:class:`mip6.runtime.kernel.MemberAddress`).

::

      home 2001:db8:1::/64 ────── rh ────── core 2001:db8:2::/64
        ha (home agent)           │           cl (stock curl behind a correspondent shim)
                                  │           pc (stock curl, no Mobile IPv6 at all)
                          site 2001:db8:10::/64
                            m1 (contact node), m2, m3

The contact address C lies on the home prefix: the home agent proxies it (RFC 3775 10.4.1) and
tunnels its packets to the contact node. A stock curl downloads from C while the members'
download service hands it on by policy; the client without Mobile IPv6 is served through the
contact node's tunnel (DSERVER 3) and handed on the same way. The bridges' captures show no
RST; after the daemons stop nothing of theirs is left, nor after one was killed and started
again.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from mip6.apps.http import generated_body
from mip6.runtime.control import control_request
from mip6.runtime.kernel import ROUTE_PROTOCOL
from tests.capture_fields import tshark_fields
from tests.conftest import require

from .netns import require_root, sh
from .test_real_network_netns import Lab, _stop, kernel_state, until

pytestmark = pytest.mark.netns

HOME_PREFIX = "2001:db8:1::/64"
ROUTER = {"home": "2001:db8:1::1", "core": "2001:db8:2::a", "site": "2001:db8:10::a"}
HOME_AGENT = "2001:db8:1::2"
CONTACT = "2001:db8:1::80"
CLIENT, PLAIN = "2001:db8:2::1", "2001:db8:2::2"
TOLD = "2001:db8:2::3"  # a second client behind a shim, its download handed on when told
# each member's own address (the daemon's) and its box's (the kernel's, for other programs)
MEMBERS = {"m1": "2001:db8:10::1", "m2": "2001:db8:10::2", "m3": "2001:db8:10::3"}
BOXES = {"m1": "2001:db8:10::11", "m2": "2001:db8:10::12", "m3": "2001:db8:10::13"}
SIZE = 24_000_000
EVERY = 4_000_000  # the download service hands the client on every 4 MB: 5 handoffs
TOLD_PORT, TOLD_SIZE = 81, 10_000_000  # a download handed on by `mip6 ctl handoff` only


class DserverLab(Lab):
    def ns(self, node: str) -> str:
        return f"m6d{node}{self.suffix}"

    def log(self, node: str) -> str:
        """The daemon's log without its DEBUG lines (a packet each): what a failure shows."""
        lines = super().log(node).splitlines()
        return "\n".join(line for line in lines if " DEBUG " not in line)


@contextmanager
def lab_network(tmp: Path) -> Iterator[DserverLab]:
    require_root()
    for tool in ("nft", "curl", "dumpcap", "tshark"):
        require(
            subprocess.run(["which", tool], capture_output=True).returncode == 0,
            f"{tool} is not installed (apt-get install nftables curl tshark)",
        )
    with ExitStack() as stack:
        lab = DserverLab(str(os.getpid())[-4:], tmp, stack)
        for node in ("sw", "rh", "ha", "cl", "c2", "pc", *MEMBERS):
            sh("ip", "netns", "add", lab.ns(node))
            stack.callback(sh, "ip", "netns", "delete", lab.ns(node), check=False)
            sh("ip", "-n", lab.ns(node), "link", "set", "lo", "up")
        sw = lab.ns("sw")
        for bridge in ("br-home", "br-core", "br-site"):
            sh("ip", "-n", sw, "link", "add", bridge, "type", "bridge")
            sh("ip", "-n", sw, "link", "set", bridge, "type", "bridge", "mcast_snooping", "0")
            sh("ip", "-n", sw, "link", "set", bridge, "up")

        def cable(node: str, device: str, bridge: str, address: str, via: str | None) -> None:
            port = f"{node}-{device}"
            sh("ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", device,
               "netns", lab.ns(node))  # fmt: skip
            sh("ip", "-n", sw, "link", "set", port, "master", bridge, "up")
            sh("ip", "-n", lab.ns(node), "addr", "add", f"{address}/64", "dev", device, "nodad")
            sh("ip", "-n", lab.ns(node), "link", "set", device, "up")
            if via is not None:
                sh("ip", "-n", lab.ns(node), "-6", "route", "add", "default", "via", via)

        for leg, address in ROUTER.items():
            cable("rh", leg, f"br-{leg}", address, None)
        lab.run("rh", "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        cable("ha", "eth0", "br-home", HOME_AGENT, ROUTER["home"])
        cable("cl", "eth0", "br-core", CLIENT, ROUTER["core"])
        cable("c2", "eth0", "br-core", TOLD, ROUTER["core"])
        cable("pc", "eth0", "br-core", PLAIN, ROUTER["core"])
        for node, address in BOXES.items():
            cable(node, "eth0", "br-site", address, ROUTER["site"])
        yield lab


def start(lab: Lab, node: str, config: str) -> subprocess.Popen[str]:
    """A daemon in ``node``'s namespace (not waited for: see :func:`up`)."""
    path = lab.tmp / f"{node}.yaml"
    path.write_text(f"node: {node}\ncontrol: {lab.tmp / f'{node}.sock'}\n{config}")
    lab.logs[node] = log = lab.tmp / f"{node}.log"
    daemon = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns(node), sys.executable, "-m", "mip6.cli", "run", "-v",
         str(path)],
        stdout=open(log, "a"), stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    lab.daemons[node] = daemon
    lab.stack.callback(_stop, daemon)
    return daemon


def up(lab: Lab, *nodes: str) -> None:
    """Until each daemon's control socket answers (its kernel state is in place then); on
    a loaded 2-core machine five daemons starting at once take up to 20 s."""

    def ready(node: str) -> bool:
        return (lab.tmp / f"{node}.sock").exists() or lab.daemons[node].poll() is not None

    until(lambda: all(ready(node) for node in nodes), 60, f"{', '.join(nodes)} up", lab)
    for node in nodes:
        if lab.daemons[node].poll() is not None:
            pytest.fail(f"{node} exited: {lab.log(node)}")


def member_config(address: str, ipsec: str) -> str:
    members = ", ".join(f'"{m}"' for m in MEMBERS.values())
    return (
        "role: member\nmode: host\nlinks:\n  network: {type: interface, name: eth0}\n"
        f'member: {{contact_address: "{CONTACT}", home_agent: "{HOME_AGENT}", '
        f'address: "{address}", contact_node: "{MEMBERS["m1"]}", members: [{members}], '
        f'group_key: "{GROUP_KEY}", policy: round_robin}}\n'
        f"apps:\n  - {{type: download, port: 80, size: {SIZE}, seed: 1, "
        f"handoff_every: {EVERY}}}\n"
        # handed on only when told (mip6 ctl handoff)
        f"  - {{type: download, port: {TOLD_PORT}, size: {TOLD_SIZE}, seed: 2}}\n{ipsec}"
    )


def ipsec_block() -> str:
    """RFC 3776 SAs for the contact address at the home agent, the same block on the home
    agent and every member (the contact node registers C under them)."""
    sas = "".join(
        f'      {name}: {{spi: {spi}, encryption_key: "0x{os.urandom(20).hex()}"}}\n'
        for spi, name in enumerate(
            ("binding_update", "binding_acknowledgement", "home_test_init", "home_test"), 0x2001
        )
    )
    return (
        "ipsec:\n  algorithm: aes-gcm-16\n  pairs:\n"
        f"    - home_address: {CONTACT}\n      home_agent: {HOME_AGENT}\n{sas}"
    )


GROUP_KEY = os.urandom(32).hex()


def show(lab: Lab, node: str, what: str) -> dict[str, object]:
    return control_request(str(lab.tmp / f"{node}.sock"), {"show": what})


def counters(lab: Lab) -> dict[str, dict[str, int]]:
    return {node: show(lab, node, "stats")["counters"] for node in MEMBERS}  # type: ignore[misc]


def download(lab: Lab, node: str) -> tuple[float, int]:
    """A stock curl from ``node`` of the download on C: its seconds and the handoffs it saw
    (the members' completed handoffs during it). The body's sha256 must be right."""
    before = sum(c.get("handoff_completed", 0) for c in counters(lab).values())
    started = time.monotonic()
    finished(lab, node, curl(lab, node, 80), SIZE, 1)
    took = time.monotonic() - started
    after = sum(c.get("handoff_completed", 0) for c in counters(lab).values())
    return took, after - before


def curl(lab: Lab, node: str, port: int, *options: str) -> subprocess.Popen[str]:
    out = lab.tmp / f"download-{node}-{port}"
    process = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns(node), "curl", "-sS", "-g", "--max-time", "60",
         *options, "-o", str(out), f"http://[{CONTACT}]:{port}/"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lab.stack.callback(_stop, process)
    return process


def finished(lab: Lab, node: str, process: subprocess.Popen[str], size: int, seed: int) -> None:
    """``process`` (a :func:`curl`) ends well, with the body's right sha256."""
    output, _ = process.communicate(timeout=70)
    logs = "\n".join(f"--- {n}\n{lab.log(n)[-2000:]}" for n in lab.logs)
    assert process.returncode == 0, f"{output}\n{logs}"
    port = process.args[-1].rsplit(":", 1)[1].rstrip("/")  # type: ignore[index,union-attr]
    body = (lab.tmp / f"download-{node}-{port}").read_bytes()
    assert (
        hashlib.sha256(body).hexdigest()
        == hashlib.sha256(b"".join(generated_body(size, seed))).hexdigest()
    ), node


def serving(lab: Lab, client: str, port: int) -> str | None:
    """The member whose stack holds ``client``'s established connection to C's ``port``,
    live there: not frozen (an acceptor's imported copy is frozen until it thaws, a donor's
    until the acceptor's DONE), no handoff of the client under way."""
    for node in MEMBERS:
        rows: list[dict[str, Any]] = show(lab, node, "tcp")["rows"]  # type: ignore[assignment]
        if not any(
            row["local"] == f"[{CONTACT}]:{port}"
            and row["remote"].startswith(f"[{client}]")
            and row["state"] == "ESTABLISHED"
            for row in rows
        ):
            continue
        clients: list[dict[str, Any]] = show(lab, node, "clients")["rows"]  # type: ignore[assignment]
        if any(
            row["client"] == client and row["frozen"] == 0 and not row["handoff"] for row in clients
        ):
            return node
    return None


def distributed(lab: Lab, client: str) -> bool:
    """Whether the contact node's handoff of its new client ``client`` is over."""
    rows: list[dict[str, Any]] = show(lab, "m1", "handoffs")["rows"]  # type: ignore[assignment]
    return any(row["client"] == client and row.get("outcome") for row in rows)


def settled(lab: Lab, client: str, port: int) -> str:
    """The member serving ``client`` once it has stayed the same for half a second (a
    connection that reached the contact node is handed on by policy first)."""
    seen: list[str | None] = []

    def same() -> bool:
        seen.append(serving(lab, client, port))
        time.sleep(0.4)
        return seen[-1] is not None and serving(lab, client, port) == seen[-1]

    until(same, 10, f"{client} served", lab)
    assert seen[-1] is not None
    return seen[-1]


def hand_off(lab: Lab, holder: str, client: str, target: str) -> None:
    """``mip6 ctl handoff CLIENT MEMBER`` at the member holding the client."""
    result = subprocess.run(
        [sys.executable, "-m", "mip6.cli", "ctl", "--control", str(lab.tmp / f"{holder}.sock"),
         "handoff", client, MEMBERS[target]],
        capture_output=True, text=True, timeout=10,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def member_addresses(lab: Lab, node: str) -> str:
    """The /128 addresses of ``node``'s interface: the boxes' own are /64, a member daemon
    adds its own address as a /128 (``ip`` here cannot filter by IFA_PROTO)."""
    out = lab.run(node, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
    return "\n".join(line for line in out.splitlines() if "/128" in line)


@pytest.mark.parametrize("esp", [False, True], ids=["plain", "esp"])
def test_members_on_real_links_serve_kernel_clients(tmp_path: Path, esp: bool) -> None:
    ipsec = ipsec_block() if esp else ""
    with lab_network(tmp_path) as lab:
        assert lab.ping("cl", ROUTER["core"]) and lab.ping("m1", ROUTER["site"])
        start(
            lab, "ha",
            "role: home_agent\nmode: router\nlinks:\n  network: {type: interface, name: eth0}\n"
            f'home_agent: {{address: "{HOME_AGENT}", home_prefixes: ["{HOME_PREFIX}"], '
            f"allow_unprotected_registration: {str(not esp).lower()}, "
            "duplicate_address_detection: true, dad_retrans_timer: 0.3}\n" + ipsec,
        )  # fmt: skip
        up(lab, "ha")
        for node, address in MEMBERS.items():
            start(lab, node, member_config(address, ipsec))
        for node, address in (("cl", CLIENT), ("c2", TOLD)):
            start(
                lab, node,
                "role: correspondent\nmode: shim\nlinks:\n  kernel: {type: tun, name: m6k0}\n"
                "  network: {type: interface, name: eth0}\n"
                f'correspondent: {{address: "{address}"}}\n',
            )  # fmt: skip
        up(lab, *MEMBERS, "cl", "c2")
        # the contact node registered C with its own address: the home agent proxies C
        until(
            lambda: CONTACT in lab.run("ha", "ip", "-6", "neigh", "show", "proxy"),
            15, "proxy entry for the contact address", lab,
        )  # fmt: skip
        rows = show(lab, "ha", "bcache")["rows"]
        assert [r["care_of_address"] for r in rows] == [MEMBERS["m1"]]  # type: ignore[index]
        for node, address in MEMBERS.items():
            # the member's address on its box's interface: deprecated, never a source the
            # box's own programs choose
            added = member_addresses(lab, node)
            assert f"{address}/128" in added and "deprecated" in added, added
        # the member's address answers (the daemon's host: ICMPv6 Echo), and the box's own
        # programs keep their own address: a ping from the box leaves from it
        assert lab.ping("cl", MEMBERS["m2"])
        ping = lab.run("m2", "ping", "-6", "-n", "-c", "1", "-W", "2", CLIENT)
        assert "1 received" in ping
        route = lab.run("m2", "ip", "-6", "route", "get", CLIENT)
        assert f"src {BOXES['m2']}" in route, route

        # the bridges' captures: every frame's headers (no payload), read for RSTs at the end
        captures = []
        for bridge in ("br-core", "br-site"):
            pcap = lab.tmp / f"{bridge}.pcap"
            dumpcap = subprocess.Popen(
                ["ip", "netns", "exec", lab.ns("sw"), "dumpcap", "-q", "-i", bridge, "-s",
                 "160", "-w", str(pcap)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            lab.stack.callback(_stop, dumpcap)
            captures.append((dumpcap, pcap))
        until(lambda: all(p.exists() for _, p in captures), 10, "captures", lab)

        # a client with Mobile IPv6 (behind its correspondent shim): route optimized to each
        # member in turn, handed on by the download service
        took, handoffs = download(lab, "cl")
        assert handoffs >= SIZE // EVERY - 1, counters(lab)
        assert CONTACT in lab.run("cl", "ip", "-6", "route", "show", "proto", str(ROUTE_PROTOCOL))
        print(f"client with a shim: {SIZE / took / 1e6 * 8:.0f} Mbit/s, {handoffs} handoffs")
        # a client without Mobile IPv6: through the contact node's tunnel, handed on too
        took, handoffs = download(lab, "pc")
        assert handoffs >= SIZE // EVERY - 1, counters(lab)
        tunnel = show(lab, "m1", "tunnel")
        assert PLAIN in str(tunnel), tunnel
        rate = SIZE / took / 1e6 * 8
        print(f"client without Mobile IPv6: {rate:.0f} Mbit/s, {handoffs} handoffs")
        stats = counters(lab)
        assert all(c.get("handoff_accepted", 0) >= 2 for c in stats.values()), stats
        if esp:  # the contact node's registration went under ESP (RFC 3776 4: the home
            # agent refuses any other), and nothing came unprotected
            ha_stats: dict[str, int] = show(lab, "ha", "stats")["counters"]  # type: ignore[assignment]
            assert ha_stats.get("home_registration_accepted", 0) >= 1, ha_stats
            assert ha_stats.get("unprotected_home_registration", 0) == 0, ha_stats

        # handed on when told: `mip6 ctl handoff CLIENT MEMBER` at the member holding it, in
        # the middle of a download (rate-limited so that it lasts), to each other member
        told = curl(lab, "c2", TOLD_PORT, "--limit-rate", "1M")
        # a new client of the contact node: handed on by policy first (DSERVER 3)
        until(lambda: distributed(lab, TOLD), 10, "the new client distributed", lab)
        holder = settled(lab, TOLD, TOLD_PORT)
        for target in [m for m in MEMBERS if m != holder]:
            before = show(lab, holder, "stats")["counters"]
            hand_off(lab, holder, TOLD, target)
            after = show(lab, holder, "stats")["counters"]
            changed = {k: v for k, v in after.items() if before.get(k) != v}  # type: ignore[union-attr]
            until(
                lambda t=target: serving(lab, TOLD, TOLD_PORT) == t,  # type: ignore[misc]
                5, f"the client at {target} (at {holder}: {changed})", lab,
            )  # fmt: skip
            assert told.poll() is None  # still downloading when it arrived there
            holder = settled(lab, TOLD, TOLD_PORT)
            assert holder == target
        finished(lab, "c2", told, TOLD_SIZE, 2)

        for dumpcap, _ in captures:
            _stop(dumpcap)
        for _, pcap in captures:
            assert tshark_fields(pcap, "tcp.flags.reset == 1") == [], f"RSTs in {pcap.name}"
            handshakes = tshark_fields(pcap, "tcp.flags.syn == 1")
            assert handshakes, f"no TCP in {pcap.name}: not the path"

        # a member killed leaves its address and nftables table; the next start removes them
        lab.daemons["m3"].send_signal(signal.SIGKILL)
        lab.daemons["m3"].wait()
        assert MEMBERS["m3"] in member_addresses(lab, "m3")
        assert kernel_state(lab, "m3") != []
        (lab.tmp / "m3.sock").unlink()
        start(lab, "m3", member_config(MEMBERS["m3"], ipsec))
        up(lab, "m3")
        assert f"removed address {MEMBERS['m3']} left by an earlier run" in lab.log("m3")
        assert lab.ping("cl", MEMBERS["m3"])

        for node in ("cl", "c2", *MEMBERS, "ha"):
            assert _stop(lab.daemons[node]) == 0, lab.log(node)
        for node in ("ha", "cl", "c2", *MEMBERS):
            assert kernel_state(lab, node) == [], node
            assert member_addresses(lab, node).strip() == "", node
        # and the boxes still work without them
        assert lab.ping("cl", BOXES["m1"]) and lab.ping("m3", ROUTER["home"])
