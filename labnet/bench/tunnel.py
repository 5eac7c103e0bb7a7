"""``labnet bench tunnel``: what a client without Mobile IPv6 pays for the detour through the
contact node (DSERVER 3, :mod:`mip6.dserver.tunnel`), against a Mobile IPv6 client in the same
run, on the in-memory network (:class:`labnet.dserver_lab.DServerLab`: Lss = 10 ms, Lcs =
20 ms, the member-to-client paths and the home agent's path to the client at 10 Mbit/s, no
loss). Virtual time: the same for every run and machine. Each client downloads ``size`` bytes
handed on every ``every`` bytes; the download must end whole (sha256) with no RST.

- ``first_byte_ms``: the GET's start to the first byte of the answer. Both clients' first
  connection reaches the contact node through the home agent and is served there; the
  difference is what the contact node does meanwhile.
- ``download_ms``: the GET's start to the whole body (at 0.25 s steps: the loop's granularity);
  the bottleneck is 10 Mbit/s either way, the tunnel adds to the round trip.
- ``handoff_gap_ms``: the client-observed handoff gaps (DSERVER 4, as ``DServerLab.gaps``
  measures them): the last data packet the donor sent the client to the first the acceptor
  sent it, at the members (each path's latency is fixed). Median and max, and how many.
- ``contact_node_forwarded_per_mb``: packets the contact node forwarded for the other members
  per megabyte downloaded (its relay to the home agent and its tunnel to the members; the
  seeds' worry: every such client's traffic, both ways, crosses the contact node). A Mobile
  IPv6 client's are the HoTIs of the acceptors' return routability.

``labnet bench tunnel-netns`` (root): the same question on real daemons and kernels, the netns
backend's built-in ``dserver-plain`` (a plain kernel client: the tunnel) and ``dserver`` (a
stock kernel behind a shim-mode correspondent daemon: route optimization), one after the other
in one run, each a stock ``curl`` of the members' 50 MB download (handed on every 2 MB), twice:
``seconds`` (curl's ``time_total``) and ``mbps`` (its ``speed_download``), medians, and
``contact_node_cpu_s``: the CPU time the contact node's daemon used during each download,
median. Every download is checked (size, sha256).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import statistics
import subprocess
import tempfile
from pathlib import Path as FilePath
from typing import Any

from labnet.bench.proxy import cpu_seconds
from labnet.dserver_lab import MEMBERS, DServerLab, resets
from labnet.netns import NetnsLab
from labnet.topology import builtin
from mip6.apps.http import generated_body
from mip6.runtime.memory import Path

LSS, LCS = 0.010, 0.020
BANDWIDTH = 10e6  # bits per second into the client


def handoff_gaps(lab: DServerLab) -> list[float]:
    """DSERVER 4's client-observed gaps, as sent: the last data packet a member sent the client
    to the first the next member sent it. Through a binding a member sends to the client; through
    the tunnel to the contact node (the contact node's own go to the home agent, among the ones
    it relays for the others, which are the others' packets again and not counted)."""
    relayed = {
        sent.data[40:]
        for sent in lab.net.trace
        if sent.sender in ("m2", "m3") and sent.receiver == "m1" and len(sent.data) > 1000
    }
    origins = [
        (sent.time, sent.sender)
        for sent in lab.net.trace
        if len(sent.data) > 1000
        and (
            (sent.sender in MEMBERS and sent.receiver == "client")
            or (sent.sender in ("m2", "m3") and sent.receiver == "m1")
            or (sent.sender == "m1" and sent.receiver == "ha" and sent.data[40:] not in relayed)
        )
    ]
    return [
        at - before
        for (before, donor), (at, acceptor) in itertools.pairwise(origins)
        if donor != acceptor
    ]


def download(mipv6: bool, *, seed: int, size: int, every: int) -> dict[str, Any]:
    lab = DServerLab(seed, size=size, handoff_every=every, lss=LSS, lcs=LCS, mipv6_client=mipv6)
    for sender in ("ha", "m1", "m2", "m3"):
        latency = LSS if sender == "ha" else LCS
        lab.net.path(sender, "client", Path(latency=latency, bandwidth_bits_per_s=BANDWIDTH))
    fetch = lab.download()
    started = lab.net.now
    first_byte: float | None = None
    while not fetch.done and lab.net.now < 300:
        lab.net.run_for(0.001 if first_byte is None else 0.25)
        if first_byte is None and fetch.received:
            first_byte = lab.net.now
    expected = hashlib.sha256(b"".join(generated_body(size, seed))).hexdigest()
    if not fetch.done or fetch.failed or fetch.digest.hexdigest() != expected:
        raise RuntimeError(f"the download (mipv6={mipv6}) did not end whole")
    if resets(lab.net):
        raise RuntimeError(f"a RST on the wire (mipv6={mipv6})")
    gaps = handoff_gaps(lab)
    contact = lab.members["m1"]
    forwarded = contact.counters.get("relay_forwarded", 0) + contact.tunnels.counters["forwarded"]
    assert first_byte is not None
    return {
        "first_byte_ms": round((first_byte - started) * 1000, 1),
        "download_ms": round((lab.net.now - started) * 1000, 1),
        "gaps": gaps,
        "handoffs": sum(m.counters.get("handoff_completed", 0) for m in lab.members.values()),
        "contact_node_forwarded_per_mb": round(forwarded / (size / 1e6), 1),
    }


def run(seconds: float = 4.0, *, size: int = 6_000_000, every: int = 500_000) -> dict[str, Any]:
    """``seconds`` is not used: the figures are on virtual time, one run of each client."""
    seed = 1
    results: dict[str, Any] = {}
    for mipv6, label in ((False, "tunnel"), (True, "mipv6")):
        figures = download(mipv6, seed=seed, size=size, every=every)
        gaps = figures.pop("gaps")
        results[label] = {
            **figures,
            "handoff_gap_ms": {
                "count": len(gaps),
                "median": round(statistics.median(gaps) * 1000, 1) if gaps else None,
                "max": round(max(gaps) * 1000, 1) if gaps else None,
            },
        }
    results["paths_ms"] = {"lss": LSS * 1000, "lcs": LCS * 1000}
    return results


NETNS_SIZE = 50_000_000  # the built-in topologies' download: seed 1


def run_netns(seconds: float = 4.0, *, downloads: int = 2, prefix: str = "btun") -> dict[str, Any]:
    """``seconds`` is not used. Each lab is named ``prefix`` + this process's id + a letter."""
    if os.geteuid() != 0:
        raise PermissionError("labnet bench tunnel-netns needs root (the netns backend)")
    expected = hashlib.sha256(b"".join(generated_body(NETNS_SIZE, 1))).hexdigest()
    results: dict[str, Any] = {"size": NETNS_SIZE}
    for letter, (label, topology) in zip(
        "ab", (("tunnel", "dserver-plain"), ("mipv6", "dserver")), strict=True
    ):
        contact = builtin(topology).nodes["m1"].home_address
        lab = NetnsLab.up(topology, f"{prefix}{os.getpid() % 100000}{letter}")
        try:
            pid = lab.state["nodes"]["m1"]["pid"]
            times, speeds, cpu = [], [], []
            with tempfile.TemporaryDirectory(prefix="labnet-bench-tunnel-") as tmp:
                out = FilePath(tmp) / "body"
                for _ in range(downloads):
                    before = cpu_seconds(pid)
                    total, speed = _curl(lab, f"http://[{contact}]/", out)
                    cpu.append(cpu_seconds(pid) - before)
                    if hashlib.sha256(out.read_bytes()).hexdigest() != expected:
                        raise RuntimeError(f"{label}: the body's sha256 is wrong")
                    times.append(total)
                    speeds.append(speed * 8 / 1e6)
            results[label] = {
                "seconds": round(statistics.median(times), 2),
                "mbps": round(statistics.median(speeds), 1),
                "contact_node_cpu_s": round(statistics.median(cpu), 2),
            }
        finally:
            lab.down(discard=True)
    return results


def _curl(lab: NetnsLab, url: str, out: FilePath) -> tuple[float, float]:
    """A stock curl in the lab's client namespace: (time_total seconds, speed bytes/s)."""
    argv = ["curl", "-sS", "-g", "--max-time", "900", "-o", str(out), url]
    argv += ["-w", "%{http_code} %{size_download} %{time_total} %{speed_download}"]
    done = subprocess.run(lab.exec_argv("client", argv), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"curl failed ({done.returncode}): {done.stderr.strip()}")
    code, got, total, speed = done.stdout.split()
    if code != "200" or int(got) != NETNS_SIZE:
        raise RuntimeError(f"answered {code} with {got} bytes (of {NETNS_SIZE})")
    return float(total), float(speed)
