"""Our own ``mip6 run`` daemon as the IUT of ``--target interface``: the hooks a test engineer
would write for any implementation, for the namespaces of ``test_interface_target.py``.

``python cable_iut.py reset STATE NAMESPACE ROLE CONFIG``
    Stop the daemon running in NAMESPACE (if any), give the namespace's ``eth0`` the role's
    address of the conformance plan, and start a fresh daemon on it: the role's base
    configuration with CONFIG (the case's IUT configuration, JSON) on top of its role block.
    ``STATE/base-ROLE.json`` (written by the test) holds both and the box's sysctls:
    ``{"address": ..., "sysctls": {...}, "config": ...}``. Returns once the daemon's control
    socket answers.
``python cable_iut.py move NAMESPACE ADDRESS|home``
    The mobile node's cable now gives it ADDRESS (or an address of its home prefix): the old
    global addresses go, the new one comes (no DAD: the tester owns no address of it); the
    daemon sees it through netlink as on any box (RFC 3775 11.5.1).

Only the standard library: the reset runs before every case, so it must start fast.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEVICE = "eth0"
KERNEL_DEVICE = "m6k0"  # the shim's TUN device towards the namespace's own programs
HOME_NEIGHBOUR = "2001:db8:1::6"  # the mobile node's own address on its home link, at home
PREFIX_LENGTH = 64
START_TIMEOUT = 20.0  # seconds
STOP_TIMEOUT = 5.0


def ip(namespace: str, *args: str, check: bool = True) -> None:
    subprocess.run(["ip", "-n", namespace, *args], check=check, capture_output=True)


def stop(state: Path, namespace: str, role: str) -> None:
    """The namespace's daemon (only the process this script started: its pid file). One of
    the same role is killed: the next start removes what it left, as after a crash (its
    link's nftables table and TAP, its role's routes, rules, proxy entries and sysctls), and
    skips a graceful stop's wait (a mobile node's deregistration to a tester that no longer
    listens). One of another role is asked to stop and removes its own kernel state."""
    pid_file = state / f"{namespace}.pid"
    try:
        pid, last_role = pid_file.read_text().split()
    except (OSError, ValueError):
        return
    pid_file.unlink()
    terminate(int(pid), signal.SIGKILL if last_role == role else signal.SIGTERM)


def terminate(pid: int, how: signal.Signals) -> None:
    """Signal ``pid`` and wait for it to go, killing it after STOP_TIMEOUT."""
    try:
        os.kill(pid, how)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while alive(pid):  # not our child (an earlier reset started it): poll it
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = math.inf
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """``pid`` runs (an exited process its parent has not reaped yet does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            return file.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def readdress(namespace: str, address: str) -> None:
    ip(namespace, "-6", "addr", "flush", "dev", DEVICE, "scope", "global")
    ip(namespace, "-6", "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", DEVICE, "nodad")


def config_for(
    state: Path, namespace: str, config: dict[str, Any], case: dict[str, object]
) -> Path:
    config[config["role"]].update(case)
    config["control"] = str(state / f"{namespace}.sock")
    path = state / f"{namespace}.json"
    path.write_text(json.dumps(config))  # JSON is YAML: the daemon reads it as its YAML
    return path


def answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.connect(str(path))
        except OSError:
            return False
    return True


def reset(state: Path, namespace: str, role: str, case_json: str) -> None:
    stop(state, namespace, role)
    base = json.loads((state / f"base-{role}.json").read_text())
    for key, value in base["sysctls"].items():
        subprocess.run(["ip", "netns", "exec", namespace, "sysctl", "-qw", f"{key}={value}"],
                       check=True)  # fmt: skip
    readdress(namespace, base["address"])
    config = config_for(state, namespace, base["config"], json.loads(case_json))
    control = state / f"{namespace}.sock"
    control.unlink(missing_ok=True)
    log = open(state / f"{namespace}.log", "a")  # the daemon's stdout, kept open
    log.write(f"--- reset {role} {case_json}\n")
    log.flush()
    daemon = subprocess.Popen(
        ["ip", "netns", "exec", namespace, sys.executable, "-m", "mip6.cli", "run", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the daemon outlives this script: the next reset stops it
    )
    (state / f"{namespace}.pid").write_text(f"{daemon.pid} {role}")
    deadline = time.monotonic() + START_TIMEOUT
    while not answers(control):
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the daemon in {namespace} did not start (log: {log.name})")
        time.sleep(0.02)


def move(namespace: str, where: str) -> None:
    readdress(namespace, HOME_NEIGHBOUR if where == "home" else where)


def main(argv: list[str]) -> None:
    if argv[:1] == ["reset"] and len(argv) == 5:
        reset(Path(argv[1]), argv[2], argv[3], argv[4])
    elif argv[:1] == ["move"] and len(argv) == 3:
        move(argv[1], argv[2])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
