"""The netns backend's pieces: what it asks of the hub and of the daemons (no root needed), the
daemon's ``netns`` key, and, as root, a lab taken down after its processes were killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from labnet.cli import main
from labnet.netns import NetnsLab, care_of_for, load_topology, uplink_profile
from labnet.sim import SimLab
from labnet.topology import builtin
from mip6.runtime.config import ConfigError, parse
from tests.runtime.netns import namespace, require_root, sh

TOPOLOGY = builtin("roaming")


def test_care_of_address_chosen_as_the_sim_backend_does() -> None:
    sim = SimLab(TOPOLOGY)
    spec = TOPOLOGY.nodes["mn"]
    for network in ("visited2", "home", "visited1"):
        expected = sim.move("mn", network)
        assert care_of_for(spec, TOPOLOGY.networks[network]) == expected
    assert care_of_for(spec, TOPOLOGY.networks["visited2"]) == IPv6Address("2001:db8:4::5")


def test_hub_description_links_and_routes() -> None:
    lab = NetnsLab("x", {})
    described = lab._hub_description(TOPOLOGY, {"ha": 7001, "cn": 7002, "mn": 7003})
    assert described["routes"] == {
        "2001:db8:1::1/128": "ha",
        "2001:db8:1::/64": "ha",  # the home agent's home prefix
        "2001:db8:2::1/128": "cn",
        "2001:db8:3::5/128": "mn",  # the care-of address: the home address is the HA's
        "2001:db8:2::99/128": "probe",
    }
    links = described["links"]
    assert links["mn"]["latency"] == pytest.approx(0.015)  # visited1's uplink, both ways
    assert links["cn"]["latency"] == pytest.approx(0.005)
    assert links["mn"]["endpoint"] == "127.0.0.1:7003"
    assert "endpoint" not in links["probe"]  # external: learned from what it sends
    assert uplink_profile(TOPOLOGY.networks["visited2"].uplink)["latency"] == pytest.approx(0.025)


def test_generated_daemon_configurations_parse(tmp_path: Path) -> None:
    lab = NetnsLab(
        "x",
        {
            "directory": str(tmp_path),
            "hub": {"links": {n: {"address": ["127.0.0.1", 9000]} for n in TOPOLOGY.nodes}},
            "nodes": {n: {"netns": f"x-{n}"} for n in TOPOLOGY.nodes},
        },
    )
    configs = {}
    for name in ("ha", "cn", "mn"):
        text = lab._node_config(TOPOLOGY, TOPOLOGY.nodes[name], 7000)
        assert f"netns: x-{name}\n" in text
        # the namespace does not exist here: any existing namespace file parses the same way
        text = text.replace(f"netns: x-{name}", "netns: /proc/self/ns/net")
        configs[name] = parse(text, f"{name}.yaml")
    ha, cn, mn = configs["ha"], configs["cn"], configs["mn"]
    assert ha.mode == "router" and set(ha.links) == {"network"}
    assert ha.role_options["allow_unprotected_registration"] is True
    assert [str(p) for p in ha.role_options["home_prefixes"]] == ["2001:db8:1::/64"]
    assert cn.mode == "shim" and cn.links["kernel"].device == "mip6k0"
    assert cn.links["network"].remote == ("127.0.0.1", 9000)
    assert cn.links["network"].local == ("127.0.0.1", 7000)
    assert mn.role_options["care_of_address"] == IPv6Address("2001:db8:3::5")
    assert mn.role_options["home_address"] == IPv6Address("2001:db8:1::5")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("'a/b'", "'a/b' is not a namespace name"),
        ("labnet-does-not-exist-0", "no network namespace 'labnet-does-not-exist-0'"),
        ("/nonexistent/ns", "/nonexistent/ns does not exist"),
    ],
)
def test_daemon_netns_key_errors_name_file_line_and_key(value: str, reason: str) -> None:
    text = f"""node: cn
role: correspondent
links:
  kernel: {{type: tun, name: t0}}
  network: {{type: udp, remote: "127.0.0.1:9"}}
netns: {value}
correspondent: {{}}
"""
    with pytest.raises(ConfigError) as caught:
        parse(text, "cn.yaml")
    assert str(caught.value).startswith(f"cn.yaml:6: netns: {reason}")


def test_up_on_the_sim_backend_reports_registrations(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["up", "roaming", "--backend", "sim", "--seconds", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "sim"
    assert report["nodes"]["mn"]["bindings"] == {"2001:db8:1::1": "bound"}


def test_topology_names_and_missing_lab(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LABNET_STATE_DIR", str(tmp_path))
    assert load_topology("roaming").name == "roaming"
    assert main(["status", "--name", "nothing"]) == 1
    assert "no lab named 'nothing'" in capsys.readouterr().err
    assert main(["down"]) == 0  # nothing to take down is not an error
    assert "no lab to take down" in capsys.readouterr().out
    assert main(["up", "no-such-topology"]) == 1


def test_daemon_tun_in_namespace_udp_link_in_root(tmp_path: Path) -> None:
    """``netns``: the TUN device appears in the namespace only; the UDP link reaches a socket
    in the root namespace."""
    require_root()
    ns = f"m6t{os.getpid() % 100000}"
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    control = tmp_path / "cn.sock"
    config = tmp_path / "cn.yaml"
    config.write_text(
        f"""node: cn
role: correspondent
netns: {ns}
control: {control}
links:
  kernel: {{type: tun, name: m6nsk0}}
  network: {{type: udp, remote: "127.0.0.1:{peer.getsockname()[1]}"}}
correspondent: {{}}
"""
    )
    with namespace(ns):
        daemon = subprocess.Popen(
            [sys.executable, "-m", "mip6.cli", "run", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            for _ in range(200):
                if control.exists() or daemon.poll() is not None:
                    break
                time.sleep(0.05)
            assert control.exists(), daemon.stdout.read() if daemon.stdout else ""
            assert sh("ip", "-n", ns, "link", "show", "m6nsk0", check=False).returncode == 0
            assert sh("ip", "link", "show", "m6nsk0", check=False).returncode != 0
            sh("ip", "-n", ns, "-6", "addr", "add", "2001:db8:2::1/128", "dev", "m6nsk0", "nodad")
            sh("ip", "-n", ns, "-6", "route", "add", "default", "dev", "m6nsk0")
            sh("ip", "netns", "exec", ns, "ping", "-6", "-c", "1", "-W", "1", "2001:db8:1::5",
               check=False)  # fmt: skip
            # the kernel may also send router solicitations and MLD reports into the device
            for _ in range(20):
                data, _ = peer.recvfrom(70000)
                assert data[0] >> 4 == 6
                if data[24:40] == IPv6Address("2001:db8:1::5").packed:
                    break
            else:
                pytest.fail("the echo request did not reach the root namespace's socket")
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=5)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            if daemon.stdout:
                daemon.stdout.close()
            peer.close()


def test_down_after_everything_was_killed(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    require_root()
    monkeypatch.setenv("LABNET_STATE_DIR", str(tmp_path))
    name = f"k{os.getpid() % 100000}"
    pids: list[int] = []
    try:
        assert main(["up", "roaming", "--name", name]) == 0
        assert main(["up", "roaming", "--name", name]) == 1  # one lab per name
        assert "exists" in capsys.readouterr().err
        state = json.loads((tmp_path / f"{name}.json").read_text())
        pids = [state["hub"]["pid"]] + [n["pid"] for n in state["nodes"].values() if n["pid"]]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    finally:
        assert main(["down", "--name", name]) == 0
    assert not (tmp_path / f"{name}.json").exists()
    listed = sh("ip", "netns", "list").stdout
    assert not [line for line in listed.splitlines() if line.startswith(f"{name}-")]
    assert len(pids) == 4 and not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert main(["down", "--name", name]) == 0  # again: nothing left, still fine


def test_failed_up_removes_what_it_started_and_nothing_else(
    tmp_path: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    require_root()
    monkeypatch.setenv("LABNET_STATE_DIR", str(tmp_path))
    name = f"f{os.getpid() % 100000}"
    with namespace(f"{name}-cn"):  # someone else's namespace, in the lab's way
        assert main(["up", "roaming", "--name", name]) == 1
        assert f"network namespace {name}-cn exists already" in capsys.readouterr().err
        listed = [line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines()]
        assert [ns for ns in listed if ns.startswith(f"{name}-")] == [f"{name}-cn"]
        assert not (tmp_path / f"{name}.json").exists()
        processes = sh("ps", "-eo", "args").stdout
        assert str(tmp_path) not in processes  # the hub and the home agent's daemon stopped
