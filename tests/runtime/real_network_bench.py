"""What the daemons cost on a real network, outside the test suite (root; README "Running on a
real network"): the end-to-end test's lab (:mod:`tests.runtime.test_real_network_netns`), the
mobile node on the first visited link, then ping round trips and a 50 MB stock curl from the
correspondent to a stock web server on the home address, route optimized or (with
``--no-route-optimization``) through the home agent; plain ping between two routers of the lab
beside them for the kernel's own figure. Prints one JSON object.

    python -m tests.runtime.real_network_bench [--no-route-optimization]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.runtime.test_real_network_netns import (
    CN,
    CORE,
    HOME_ADDRESS,
    HOME_AGENT,
    HOME_PREFIX,
    Lab,
    care_of,
    lab_network,
    start_daemon,
    until,
)

BODY_BYTES = 50_000_000


def rtt_ms(lab: Lab, node: str, address: str) -> float:
    """The average of 20 ping round trips, milliseconds."""
    out = lab.run(node, "ping", "-6", "-n", "-q", "-c", "20", "-i", "0.05", address)
    return float(re.search(r"= [\d.]+/([\d.]+)/", out).group(1))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-route-optimization", action="store_true")
    args = parser.parse_args()
    optimize = "false" if args.no_route_optimization else "true"
    with tempfile.TemporaryDirectory() as directory, lab_network(Path(directory)) as lab:
        until(lambda: care_of(lab, "2001:db8:3:") is not None, 20, "SLAAC on visited1", lab)
        start_daemon(
            lab, "ha",
            "role: home_agent\nmode: router\nlinks:\n  network: {type: interface, name: eth0}\n"
            f'home_agent: {{address: "{HOME_AGENT}", home_prefixes: ["{HOME_PREFIX}"], '
            "allow_unprotected_registration: true}\n",
        )  # fmt: skip
        start_daemon(
            lab, "cn",
            "role: correspondent\nmode: shim\nlinks:\n  kernel: {type: tun, name: m6k0}\n"
            f'  network: {{type: interface, name: eth0}}\ncorrespondent: {{address: "{CN}"}}\n',
        )  # fmt: skip
        start_daemon(
            lab, "mn",
            "role: mobile_node\nmode: shim\nlinks:\n  kernel: {type: tun, name: m6k0}\n"
            "  network: {type: interface, name: eth0}\n"
            f'mobile_node: {{home_address: "{HOME_ADDRESS}", home_agent: "{HOME_AGENT}", '
            f"route_optimization: {optimize}}}\n",
        )  # fmt: skip
        until(lambda: lab.ping("cn", HOME_ADDRESS), 20, "ping to the home address", lab)
        time.sleep(3)  # route optimization, when on, is done by then
        routes = lab.run("cn", "ip", "-6", "route", "show", "proto", "96")
        body = Path(directory) / "www" / "body"
        body.parent.mkdir()
        body.write_bytes(os.urandom(BODY_BYTES))
        server = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("mn"), sys.executable, "-m", "http.server", "8080",
             "--bind", HOME_ADDRESS, "--directory", str(body.parent)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            until(
                lambda: "LISTEN" in lab.run("mn", "ss", "-ltn", "sport", "= :8080"),
                10, "the web server", lab,
            )  # fmt: skip
            started = time.monotonic()
            speed = lab.run(
                "cn", "curl", "-sS", "-g", "-o", "/dev/null", "-w", "%{speed_download}",
                f"http://[{HOME_ADDRESS}]:8080/body", timeout=600,
            )  # fmt: skip
            seconds = time.monotonic() - started
        finally:
            server.terminate()
            server.wait()
        print(
            json.dumps(
                {
                    "route_optimized": HOME_ADDRESS in routes,
                    "kernel_rtt_ms": rtt_ms(lab, "cn", CORE["rh"]),
                    "home_address_rtt_ms": rtt_ms(lab, "cn", HOME_ADDRESS),
                    "curl_seconds": round(seconds, 2),
                    "curl_mbit_s": round(float(speed) * 8 / 1e6, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
