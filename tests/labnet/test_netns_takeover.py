"""Takeover in the netns lab under ESP (RFC 3776 manual keying, ``NetnsLab.up(esp=True)``):
the mobile node registers at its home agent under ESP and unprotected registrations are
refused; the node is killed (SIGKILL); a standby in another network holding the same SA (its
outbound Sequence Numbers started past the dead node's, ``start_standby(skip=...)``)
re-registers the same home address with its own care-of address within a second of being told
to, and ping6 from the correspondent reaches it; a node with wrong keys cannot do the same; the
dead node's captured Binding Update, replayed, is refused by the home agent's replay window."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv6Address
from pathlib import Path

import pytest
import yaml

from labnet.netns import NetnsLab, control_request
from labnet.topology import builtin
from mip6.core.actions import Transmit
from mip6.core.config import MobileNodeConfig
from mip6.roles.mobile_node import MobileNode
from mip6.wire import protocols
from mip6.wire.pcap import read_capture_file
from mip6.wire.walk import walk
from tests.conftest import require
from tests.labnet.netns_lab import netns_lab
from tests.runtime.netns import require_root

pytestmark = pytest.mark.netns

ROAMING = builtin("roaming")
HOME = ROAMING.nodes["mn"].home_address
HA = ROAMING.nodes["ha"].addresses[0]
CN = ROAMING.nodes["cn"].addresses[0]
BACKUP_COA = "2001:db8:4::5"
INTRUDER_COA = "2001:db8:4::66"
# the roaming topology, plus two external nodes on visited2 the standbys run on
TOPOLOGY = (
    Path(__file__).resolve().parents[2] / "labnet" / "topologies" / "roaming.yaml"
).read_text() + (
    f'  backup:   {{kind: external, network: visited2, addresses: ["{BACKUP_COA}"]}}\n'
    f'  intruder: {{kind: external, network: visited2, addresses: ["{INTRUDER_COA}"]}}\n'
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsLab]:
    require_root()
    require(shutil.which("ping") is not None, "needs ping (apt-get install iputils-ping)")
    directory = tmp_path_factory.mktemp("takeover")
    topology = directory / "takeover.yaml"
    topology.write_text(TOPOLOGY)
    with netns_lab(directory / "state", topology, "k", esp=True) as lab:
        yield lab


def netns_list() -> list[str]:
    result = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def ha_stats(lab: NetnsLab) -> dict[str, int]:
    """The home agent's counters, as ``mip6 show stats --json`` prints them."""
    output = subprocess.run(
        [sys.executable, "-m", "mip6.cli", "show", "stats", "--json", "--control",
         lab.state["nodes"]["ha"]["control"]],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout  # fmt: skip
    counters: dict[str, int] = yaml.safe_load(output)["counters"]
    return counters


def ping(lab: NetnsLab, count: int) -> int:
    """Echo replies the correspondent's kernel got for ``count`` requests to the home address."""
    result = subprocess.run(
        lab.exec_argv("cn", ["ping", "-6", "-n", "-c", str(count), "-i", "0.2", "-W", "2",
                             str(HOME)]),
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return result.stdout.count("bytes from")


def esp_binding_updates(lab: NetnsLab, link: str) -> list[bytes]:
    """Packets the node on ``link`` sent to the home agent under ESP (the hub's capture)."""
    packets = []
    for frame in read_capture_file(lab.pcap(link)):
        headers = walk(frame.data)
        if headers.destination == HA.packed and headers.upper_protocol == protocols.ESP:
            packets.append(frame.data)
    return packets


def send_through_probe(lab: NetnsLab, packet: bytes) -> None:
    """Into the hub on the probe's external link: the hub routes it by its destination."""
    host, port = lab.state["hub"]["links"]["probe"]["address"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(packet, (host, port))


def wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_home_registration_under_esp(lab: NetnsLab) -> None:
    assert lab.registered("mn")
    configs = {node: Path(lab.state["nodes"][node]["config"]) for node in ("ha", "mn")}
    blocks = {node: yaml.safe_load(path.read_text()) for node, path in configs.items()}
    assert blocks["ha"]["ipsec"] == blocks["mn"]["ipsec"]  # the same keys on both ends
    assert "allow_unprotected_registration" not in blocks["ha"]["home_agent"]
    for path in configs.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = [sa["encryption_key"] for sa in blocks["mn"]["ipsec"]["pairs"][0].values()
            if isinstance(sa, dict)]  # fmt: skip
    assert len(set(keys)) == 4 and all(len(bytes.fromhex(k[2:])) == 20 for k in keys)
    for log in Path(lab.directory).glob("*.log"):
        assert not any(key[2:] in log.read_text() for key in keys)
    assert esp_binding_updates(lab, "mn")  # the Binding Update travelled under ESP
    assert ping(lab, 3) == 3


def test_unprotected_registration_refused(lab: NetnsLab) -> None:
    before = ha_stats(lab).get("esp_drop_unprotected", 0)
    forger = MobileNode(
        config=MobileNodeConfig(home_address=HOME, home_agent=HA), rng=random.Random(4)
    )
    actions = forger.move(0.0, IPv6Address("2001:db8:2::99"))
    (bu,) = [a.data for a in actions if isinstance(a, Transmit)]
    send_through_probe(lab, bytes(bu))
    assert wait_for(lambda: ha_stats(lab).get("esp_drop_unprotected", 0) > before, 3)
    rows = control_request(lab.state["nodes"]["ha"]["control"], {"show": "bcache"})["rows"]
    assert [r["care_of_address"] for r in rows if r["home_address"] == str(HOME)] == [
        lab.state["nodes"]["mn"]["address"]
    ]


def test_takeover(lab: NetnsLab) -> None:
    (old_bu, *_) = esp_binding_updates(lab, "mn")
    os.kill(lab.state["nodes"]["mn"]["pid"], signal.SIGKILL)

    # a node with the same SPIs but other keys cannot take the home address over
    before = ha_stats(lab).get("esp_drop_bad_icv", 0)
    lab.start_standby("intruder", takes_over="mn", keys="random")
    lab.activate("intruder")
    assert wait_for(lambda: ha_stats(lab).get("esp_drop_bad_icv", 0) > before, 3)
    assert not lab.registered("intruder")

    # the standby holding the SA registers from its own care-of address within a second
    started = time.monotonic()
    lab.start_standby("backup", takes_over="mn")
    print(f"takeover: standby daemon up in {(time.monotonic() - started) * 1000:.0f} ms")
    started = time.monotonic()
    lab.activate("backup")
    assert wait_for(lambda: lab.registered("backup"), 3)
    elapsed = time.monotonic() - started
    print(f"takeover: binding acknowledged {elapsed * 1000:.0f} ms after activate")
    assert elapsed < 1.0
    rows = control_request(lab.state["nodes"]["ha"]["control"], {"show": "bcache"})["rows"]
    assert [r["care_of_address"] for r in rows if r["home_address"] == str(HOME)] == [BACKUP_COA]

    # the correspondent's binding still names the dead node's care-of address: the backup
    # refreshes it by return routability (its HoT comes through the home agent, now to it)
    control_request(lab.state["nodes"]["backup"]["control"], {"route_optimize": str(CN)})
    cn_control = lab.state["nodes"]["cn"]["control"]

    def cn_bound_to_backup() -> bool:
        rows = control_request(cn_control, {"show": "bcache"})["rows"]
        return any(r.get("care_of_address") == BACKUP_COA for r in rows)

    assert wait_for(cn_bound_to_backup, 3)
    from_backup = lab.status()["nodes"]["backup"]["packets"]["from_node"]
    assert ping(lab, 5) == 5
    # the replies came from the backup's namespace: the dead node's daemon sends nothing
    assert lab.status()["nodes"]["backup"]["packets"]["from_node"] >= from_backup + 5

    # the dead node's Binding Update, replayed, is refused and changes nothing
    replayed = ha_stats(lab).get("esp_drop_replayed", 0)
    send_through_probe(lab, old_bu)
    assert wait_for(lambda: ha_stats(lab).get("esp_drop_replayed", 0) == replayed + 1, 3)
    assert lab.registered("backup")
    rows = control_request(lab.state["nodes"]["ha"]["control"], {"show": "bcache"})["rows"]
    assert [r["care_of_address"] for r in rows if r["home_address"] == str(HOME)] == [BACKUP_COA]
