"""The conformance suite on a cable (issue 18, part 6): ``--target interface`` against our own
``mip6 run`` daemons on real interfaces, as a test engineer points it at any implementation.

No hub, no UDP link: a Linux bridge per station is the LAN segment, in a namespace of its own
(``sw``); on each, the tester's interface (its namespace ``tester``, IPv6 off: the tester
speaks for itself with raw frames) and the IUT's ``eth0`` in the IUT's namespace, where the
daemon runs on an ``{type: interface}`` link. The IUT routes the tester's off-link addresses
to the tester's link-local address, the one thing a test engineer configures on an IUT besides
the plan's addresses. The hooks are ``cable_iut.py``: a fresh daemon per case (the case's IUT
configuration on top of the lab target's role block), the mobile node moved by changing its
interface's address (its daemon sees it through netlink, as on any box).

::

    tester ── br0 ── cn0        (one station per bridge; each role's run on its own
           ── br1 ── cn1         stations, the three runs at once)
           ...
           ── br11 ── mn2

Every case passes on the lab target (``tests/conformance/test_lab.py`` asserts all of them,
``python -m conformance run --role all --target lab``): every case must pass here too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

import conformance
from conformance.lab import STALE_WAIT, role_options
from conformance.neighbour import link_local, parse_mac
from conformance.transport import topology_for
from labnet.nodes import daemon_config
from tests.conformance import cable_iut
from tests.runtime.netns import require_root, sh

pytestmark = pytest.mark.netns

# Stations per role, each role's cases at once on its own (a station keeps its role: a reset
# kills the daemon, the next one of the same role removes what it left)
STATIONS = {"cn": 6, "ha": 3, "mn": 3}
RUN_TIMEOUT = 600.0  # seconds
HOOKS = Path(__file__).with_name("cable_iut.py")
ROOT = Path(__file__).resolve().parents[2]
NETWORK = {"type": "interface", "name": "eth0"}
KERNEL = {"type": "tun", "name": "m6k0"}


def base_config(role: str) -> dict[str, Any]:
    """The lab target's configuration of ``role``'s daemon (its role block, the lab's options)
    on a real interface, and the address its ``eth0`` gets from the plan."""
    topology = topology_for(role)
    spec = topology.nodes["iut"]
    links = {"network": NETWORK} | ({"kernel": KERNEL} if spec.mode == "shim" else {})
    config = daemon_config(topology, spec, links=links, options=role_options(role))
    # on a real box the kernel gives the mobile node its care-of address (RFC 3775 11.5.1)
    config[config["role"]].pop("care_of_address", None)
    # A home agent in router mode is its home link's router (RFC 3775 10.4.1's "routed to the
    # home link" without a registration is the box's forwarding); the others are hosts
    forwarding = "1" if spec.mode == "router" else "0"
    sysctls = {"net.ipv6.conf.all.forwarding": forwarding}
    return {"address": str(spec.addresses[0]), "sysctls": sysctls, "config": config}


@contextmanager
def stations(state: Path) -> Iterator[tuple[str, dict[str, list[str]]]]:
    """The bridges, the tester's namespace and one IUT namespace per station; the tester's
    namespace and, per role, the names of its interfaces (each named after its IUT's
    namespace). Everything, the daemons the hooks started included, is removed on the way
    out."""
    suffix = str(os.getpid())[-4:]
    tester, sw = f"c18t{suffix}", f"c18s{suffix}"
    iuts = {role: [f"c18i{suffix}{role}{k}" for k in range(n)] for role, n in STATIONS.items()}
    every = [iut for names in iuts.values() for iut in names]
    with ExitStack() as stack:
        for ns in (sw, tester, *every):
            sh("ip", "netns", "add", ns)
            stack.callback(sh, "ip", "netns", "delete", ns, check=False)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        stack.callback(_stop_daemons, state)
        for k, iut in enumerate(every):
            bridge = f"br{k}"
            sh("ip", "-n", sw, "link", "add", bridge, "type", "bridge")
            sh("ip", "-n", sw, "link", "set", bridge, "type", "bridge", "mcast_snooping", "0")
            sh("ip", "-n", sw, "link", "set", bridge, "up")
            # the IUT's box: no DAD for its link-local address, so it speaks at once
            sh("ip", "netns", "exec", iut, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
            for ns, device, port in ((iut, "eth0", f"i{k}"), (tester, iut, f"t{k}")):
                sh("ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", device,
                   "netns", ns)  # fmt: skip
                sh("ip", "-n", sw, "link", "set", port, "master", bridge, "up")
            off = f"net.ipv6.conf.{iut}.disable_ipv6=1"
            sh("ip", "netns", "exec", tester, "sysctl", "-qw", off)
            sh("ip", "-n", tester, "link", "set", iut, "up")
            sh("ip", "-n", iut, "link", "set", "eth0", "up")
            mac = sh("ip", "netns", "exec", tester, "cat", f"/sys/class/net/{iut}/address").stdout
            # the tester's off-link addresses (other prefixes of the plan) are through it
            sh("ip", "-n", iut, "-6", "route", "add", "default", "via",
               str(link_local(parse_mac(mac.strip()))), "dev", "eth0")  # fmt: skip
        yield tester, iuts


def _stop_daemons(state: Path) -> None:
    """The daemons the hooks started (their pid files), asked to stop all at once (a mobile
    node waits a little for its deregistration's acknowledgement), killed if they do not."""
    pids = []
    for pid_file in state.glob("*.pid"):
        pid = int(pid_file.read_text().split()[0])
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            pids.append(pid)
    for pid in pids:
        cable_iut.terminate(pid, signal.SIGTERM)


def conformance_run(
    tester: str, role: str, interfaces: list[str], state: Path, out: Path
) -> subprocess.Popen[str]:
    """``python -m conformance run --target interface`` for ``role`` in the tester's
    namespace, as a test engineer runs it, with our hooks: its JSON summary in ``out``.json,
    its report in ``out``.md, its standard error in ``out``.err."""
    python = sys.executable
    command = [
        "ip", "netns", "exec", tester, python, "-m", "conformance", "run", "--role", role,
        "--target", "interface",
        *(word for interface in interfaces for word in ("--interface", interface)),
        "--iut-reset", f"{python} {HOOKS} reset {state} {{interface}} {{role}} {{config}}",
        "--iut-control", f"{state}/{{interface}}.sock",
        "--iut-action", f"move={python} {HOOKS} move {{interface}} {{address}}",
        "--stale-wait", str(STALE_WAIT), "--json", "--report", str(out.with_suffix(".md")),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(out.with_suffix(".json"), "w") as stdout, open(out.with_suffix(".err"), "w") as err:
        return subprocess.Popen(command, stdout=stdout, stderr=err, text=True, env=env)


def test_every_lab_case_passes_on_a_cable_to_our_daemons(tmp_path: Path) -> None:
    require_root()
    if subprocess.run(["which", "nft"], capture_output=True).returncode != 0:
        from tests.conftest import require

        require(False, "nft is not installed (apt-get install nftables)")
    state = tmp_path / "iut"
    state.mkdir()
    for role in STATIONS:
        (state / f"base-{role}.json").write_text(json.dumps(base_config(role)))
    results: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    with stations(state) as (tester, iuts):
        start = time.monotonic()
        runs = {
            role: conformance_run(tester, role, iuts[role], state, tmp_path / role)
            for role in STATIONS
        }
        took: dict[str, float] = {}
        while len(took) < len(runs) and time.monotonic() - start < RUN_TIMEOUT:
            for role, run in runs.items():
                if role not in took and run.poll() is not None:
                    took[role] = time.monotonic() - start
            time.sleep(0.2)
        for role, run in runs.items():
            if run.poll() is None:
                run.kill()
            run.wait()
            out = (tmp_path / f"{role}.json").read_text()
            results += json.loads(out)["results"] if out.strip() else []
            errors[role] = (tmp_path / f"{role}.err").read_text()[-3000:]
            assert run.returncode in (0, 1), errors[role]
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in state.glob("*.log"))
    passed = {r["id"] for r in results if r["verdict"] == "pass"}
    failed = {r["id"]: r["findings"] for r in results if r["verdict"] != "pass"}
    times = ", ".join(f"{role} {seconds:.1f} s" for role, seconds in took.items())
    print(f"interface target: {len(passed)}/{len(results)} passed ({times})")
    # the lab target's pass set: every case (test_lab.py)
    lab_passed = {case.id for case in conformance.ALL_CASES}
    assert lab_passed - passed == set(), (failed, errors, logs[-6000:])
    for role in STATIONS:
        text = (tmp_path / f"{role}.md").read_text()
        assert "on the other end of the tester's interfaces" in text
    # nothing of ours left: no namespace, no daemon
    namespaces = sh("ip", "netns", "list").stdout
    every = [iut for names in iuts.values() for iut in names]
    assert tester not in namespaces and not any(iut in namespaces for iut in every)
    for pid_file in state.glob("*.pid"):
        assert not cable_iut.alive(int(pid_file.read_text().split()[0]))
