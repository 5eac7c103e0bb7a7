"""Network namespaces and veth pairs for tests, always cleaned up."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from tests.conftest import require


def require_root() -> None:
    require(os.geteuid() == 0, "needs root for network namespaces and TUN devices")
    require(os.path.exists("/dev/net/tun"), "needs /dev/net/tun")


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=timeout)


@contextmanager
def namespace(name: str) -> Iterator[str]:
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        sh("ip", "netns", "delete", name, check=False)


@contextmanager
def veth(
    root_name: str, ns: str, ns_name: str, root_address: str, ns_address: str
) -> Iterator[None]:
    """A veth pair between the root namespace and ``ns``, with /64 addresses (no DAD)."""
    sh("ip", "link", "add", root_name, "type", "veth", "peer", "name", ns_name, "netns", ns)
    try:
        sh("ip", "addr", "add", f"{root_address}/64", "dev", root_name, "nodad")
        sh("ip", "link", "set", root_name, "up")
        sh("ip", "-n", ns, "addr", "add", f"{ns_address}/64", "dev", ns_name, "nodad")
        sh("ip", "-n", ns, "link", "set", ns_name, "up")
        yield
    finally:
        sh("ip", "link", "delete", root_name, check=False)
