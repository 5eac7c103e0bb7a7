"""``labnet bench tcp-lossy``: tcp_migrate against the Linux kernel through an emulated long,
lossy path: 40 ms one-way delay and 1% independent loss each way (root).

Four transfers of ``size`` random bytes (100 MB by default), run concurrently: each has its own
namespaces, TUN devices and :class:`~tcp_migrate.tun.DelayLoss` shim, and the paths share no
bottleneck (the shim delays and drops, it does not limit the rate), so they do not slow each
other down; at these rates the CPU is mostly idle.

- ``tcp_migrate_download``: curl in a namespace downloads from an HTTP server on a tcp_migrate
  :class:`~tcp_migrate.stack.Stack` that this process runs on the namespace's TUN device.
- ``tcp_migrate_upload``: a tcp_migrate client sends to a kernel socket server in a namespace,
  which answers with the byte count and sha256 of what it read.
- ``kernel_cubic_download``, ``kernel_reno_download``: the baselines, kernel to kernel. curl
  downloads from a kernel socket server in another namespace, the two joined by TUN devices
  and a relay in this process that applies the same delay and loss. The sender's congestion
  control is set per socket: CUBIC (RFC 9438, Linux's usual default) and Reno (Linux's NewReno
  with SACK, plus its PRR and RACK loss recovery), read back into ``congestion_control``.

tcp_migrate sends in both of its transfers (as HTTP server and as client) with NewReno (RFC
5681, RFC 6582) and SACK loss recovery. Per transfer: ``bytes``, ``seconds`` (from the
request or connect to the last byte and its check), ``mbps``, ``sha_ok``, ``reset`` (curl's
status 56, a reset stream, or a RST from our stack), ``retransmitted_segments`` sent by the
sender and, for tcp_migrate, ``data_segments`` (counted on our transmit path), for the kernel
``out_segments`` (``/proc/net/snmp`` of the sender's namespace, pure ACKs included),
``dropped`` (packets the shim dropped, both ways), and for tcp_migrate ``longest_stall_s``:
the longest time the acknowledged offset did not move (sampled every 50 ms). Expect less than
2 Mbit/s from tcp_migrate (Mathis et al.: MSS / RTT * 1.22 / sqrt(p) = 1.8 Mbit/s with MSS
1440, RTT 80 ms, p 0.01), so 100 MB takes several minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from tcp_migrate.core import Config
from tcp_migrate.stack import Stack
from tcp_migrate.tun import DelayLoss, Driver, TunDevice, open_connection, start_server

DELAY_MS = 40
LOSS = 0.01
DEFAULT_BYTES = 100_000_000
MTU = 1500
OUR = "fd00:7c9:e::1"
KERNEL = "fd00:7c9:e::2"
LEFT = "fd00:7c9:f::1"
RIGHT = "fd00:7c9:f::2"
SECRET = b"labnet-bench-tcp-lossy-secret-32"
_RST = 0x04
_SEQ_HALF = 1 << 31

# The upload's kernel server: reads one connection to its end, answers its size and sha256.
SINK = r"""
import hashlib, socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    h.update(b); n += len(b)
c.sendall(f"{n} {h.hexdigest()}\n".encode())
c.close()
print(n, h.hexdigest(), flush=True)
"""


# The baselines' HTTP server: one GET answered with the file by a kernel socket whose
# congestion control is chosen with TCP_CONGESTION (with CAP_NET_ADMIN, any the kernel has;
# a namespace's default can only be one the host allows, which may leave CUBIC out).
KERNEL_SERVER = r"""
import os, socket, sys
address, port, path, cc = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
s.bind((address, port))
s.listen(1)
used = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode()
print("ready", used, flush=True)
c, _ = s.accept()
request = b""
while b"\r\n\r\n" not in request:
    chunk = c.recv(4096)
    if not chunk:
        sys.exit(1)
    request += chunk
size = os.path.getsize(path)
c.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n".encode())
with open(path, "rb") as f:
    c.sendfile(f)
c.close()
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def _namespace(name: str) -> Iterator[str]:
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10)


@contextlib.contextmanager
def _device(ns: str, ours: str, theirs: str) -> Iterator[TunDevice]:
    """A TUN device moved into ``ns``: ``ours``/128 there, ``theirs`` routed through it."""
    device = TunDevice(name="tlossy%d", mtu=MTU)
    try:
        device.move_to(ns)
        device.configure(ours, theirs, netns=ns)
        yield device
    finally:
        device.close()


class SenderTally:
    """Wraps a stack's ``transmit``: counts the TCP segments carrying data, those that start
    before the highest sequence number sent so far (retransmissions), and RSTs. Expects what
    :class:`~tcp_migrate.stack.Stack` emits: a 40-byte IPv6 header, then TCP; one connection."""

    def __init__(self, transmit: Callable[[bytes], object]) -> None:
        self.transmit = transmit
        self.data_segments = 0
        self.retransmitted_segments = 0
        self.rst = 0
        self._highest: int | None = None  # SND.MAX as seen on the wire

    def __call__(self, packet: bytes) -> None:
        flags = packet[53]
        length = len(packet) - 40 - (packet[52] >> 4) * 4
        if flags & _RST:
            self.rst += 1
        if length > 0:
            self.data_segments += 1
            seq = int.from_bytes(packet[44:48], "big")
            end = (seq + length) & 0xFFFFFFFF
            if self._highest is None:
                self._highest = end
            elif (seq - self._highest) & 0xFFFFFFFF >= _SEQ_HALF:  # seq < highest
                self.retransmitted_segments += 1
                if 0 < (end - self._highest) & 0xFFFFFFFF < _SEQ_HALF:
                    self._highest = end
            else:
                self._highest = end
        self.transmit(packet)


def _stack(tally: SenderTally) -> Stack:
    return Stack(
        transmit=tally,
        local_addresses=[OUR],
        secret=SECRET,
        config=Config(mss=MTU - 60, delack_ms=40, rto_min_ms=200),
        send_capacity=1 << 20,
        receive_capacity=1 << 20,
    )


async def _watch_stall(offset: Callable[[], int], stop: asyncio.Event) -> float:
    """The longest time in seconds ``offset()`` stayed unchanged before ``stop``."""
    loop = asyncio.get_running_loop()
    last, since, longest = offset(), loop.time(), 0.0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
        now, value = loop.time(), offset()
        if value != last:
            last, since = value, now
        longest = max(longest, now - since)
    return longest


def _timeout(size: int) -> float:
    return 120 + size * 8 / 0.5e6  # no slower than 0.5 Mbit/s


def _figures(size: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "bytes": size,
        "seconds": round(seconds, 2),
        "mbps": round(size * 8 / seconds / 1e6, 3),
        **extra,
    }


async def _curl_sha256(ns: str, url: str, size: int) -> tuple[int, str, str]:
    """(curl status, sha256 hex of the body, stderr) of a kernel client in ``ns``."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, "bash", "-c",
        f"set -o pipefail; curl -sS -g --max-time {int(_timeout(size))} '{url}' | sha256sum",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode().split()[0] if out else "", err.decode()


async def start_sink(ns: str, address: str, port: int) -> asyncio.subprocess.Process:
    """A kernel TCP server in ``ns`` hashing one connection; answers "<bytes> <sha256>\\n"."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, sys.executable, "-c", SINK, address, str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    line = await asyncio.wait_for(proc.stdout.readline(), 10)
    if line.strip() != b"ready":
        raise RuntimeError(f"the kernel sink did not start: {line!r}")
    return proc


# ---- tcp_migrate server -> kernel curl --------------------------------------------------------


async def tcp_migrate_download(body: bytes, digest: str, seed: int) -> dict[str, Any]:
    size = len(body)
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n".encode()
    with _namespace(f"tl-dl-{os.getpid()}") as ns, _device(ns, KERNEL, OUR) as device:
        shim = DelayLoss(DELAY_MS, LOSS, seed=seed)
        driver = Driver(device, shim=shim)
        tally = SenderTally(driver.transmit)
        stack = _stack(tally)
        driver.attach(stack)
        accepted: asyncio.Future = asyncio.get_running_loop().create_future()

        async def handle(reader, writer) -> None:
            await reader.readuntil(b"\r\n\r\n")
            accepted.set_result(writer.socket)
            writer.write(head)
            view = memoryview(body)
            for start in range(0, size, 1 << 20):
                writer.write(view[start : start + (1 << 20)])
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await start_server(driver, handle, OUR, 8080)
        stop = asyncio.Event()
        started = time.monotonic()
        try:
            curl = asyncio.create_task(_curl_sha256(ns, f"http://[{OUR}]:8080/", size))
            sock = await asyncio.wait_for(accepted, 30)
            stall = asyncio.create_task(_watch_stall(lambda: sock.conn.acked_offset, stop))
            status, got, err = await curl
            seconds = time.monotonic() - started
            stop.set()
            longest_stall = await stall
        finally:
            server.close()
            shim.close()
            driver.close()
    return _figures(
        size,
        seconds,
        sha_ok=got == digest,
        reset=status == 56 or tally.rst + stack.counters["rst_sent"] > 0,
        curl_status=status,
        curl_error=err.strip(),
        data_segments=tally.data_segments,
        retransmitted_segments=tally.retransmitted_segments,
        dropped=shim.dropped,
        longest_stall_s=round(longest_stall, 2),
        congestion_control="newreno-sack",
    )


# ---- tcp_migrate client -> kernel server ------------------------------------------------------


async def tcp_migrate_upload(body: bytes, digest: str, seed: int) -> dict[str, Any]:
    size = len(body)
    with _namespace(f"tl-ul-{os.getpid()}") as ns, _device(ns, KERNEL, OUR) as device:
        shim = DelayLoss(DELAY_MS, LOSS, seed=seed)
        driver = Driver(device, shim=shim)
        tally = SenderTally(driver.transmit)
        stack = _stack(tally)
        driver.attach(stack)
        sink = await start_sink(ns, KERNEL, 9000)
        stop = asyncio.Event()
        reset = False
        answer = b""
        try:
            started = time.monotonic()
            reader, writer = await open_connection(driver, KERNEL, 9000)
            stall = asyncio.create_task(_watch_stall(lambda: writer.socket.conn.acked_offset, stop))
            try:
                view = memoryview(body)
                for start in range(0, size, 1 << 20):
                    writer.write(view[start : start + (1 << 20)])
                    await writer.drain()
                writer.close()  # half-close: the sink answers after our FIN
                answer = await asyncio.wait_for(reader.readline(), _timeout(size))
                seconds = time.monotonic() - started
            except ConnectionResetError:
                reset, seconds = True, time.monotonic() - started
            stop.set()
            longest_stall = await stall
        finally:
            if sink.returncode is None:
                sink.kill()
            await sink.wait()
            shim.close()
            driver.close()
    count, _, got = answer.decode().strip().partition(" ")
    return _figures(
        size,
        seconds,
        sha_ok=got == digest and count == str(size),
        reset=reset or tally.rst + stack.counters["rst_sent"] > 0,
        data_segments=tally.data_segments,
        retransmitted_segments=tally.retransmitted_segments,
        dropped=shim.dropped,
        longest_stall_s=round(longest_stall, 2),
        congestion_control="newreno-sack",
    )


# ---- kernel -> kernel through a relay with the same delay and loss ----------------------------


class _Relay:
    """Forwards packets between two TUN devices through a shim, on the running loop."""

    def __init__(self, a: TunDevice, b: TunDevice, shim: DelayLoss) -> None:
        self.loop = asyncio.get_running_loop()
        self.fds = (a.fd, b.fd)
        self.loop.add_reader(a.fd, self._forward, a, b.write, shim.outbound)
        self.loop.add_reader(b.fd, self._forward, b, a.write, shim.inbound)

    @staticmethod
    def _forward(src: TunDevice, write, through) -> None:
        for _ in range(256):
            packet = src.read()
            if packet is None:
                break
            through(packet, write)

    def close(self) -> None:
        for fd in self.fds:
            self.loop.remove_reader(fd)


def _snmp_tcp(ns: str) -> dict[str, int]:
    """The ``Tcp:`` counters of ``/proc/net/snmp`` in ``ns``."""
    text = subprocess.run(
        ["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout  # fmt: skip
    names, values = (line.split()[1:] for line in text.splitlines() if line.startswith("Tcp:"))
    return dict(zip(names, map(int, values), strict=True))


async def kernel_download(path: str, digest: str, seed: int, cc: str) -> dict[str, Any]:
    """curl in one namespace downloads ``path`` from a kernel socket with congestion control
    ``cc`` in another (:data:`KERNEL_SERVER`)."""
    pid = os.getpid()
    size = os.path.getsize(path)
    with contextlib.ExitStack() as stack:
        left = stack.enter_context(_namespace(f"tl-{cc}-l-{pid}"))
        right = stack.enter_context(_namespace(f"tl-{cc}-r-{pid}"))
        a = stack.enter_context(_device(left, LEFT, RIGHT))
        b = stack.enter_context(_device(right, RIGHT, LEFT))
        shim = DelayLoss(DELAY_MS, LOSS, seed=seed)
        relay = _Relay(a, b, shim)
        stack.callback(relay.close)
        stack.callback(shim.close)
        server = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", right, sys.executable, "-c", KERNEL_SERVER,
            RIGHT, "8081", path, cc,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            ready, _, used = (
                (await asyncio.wait_for(server.stdout.readline(), 10)).decode().partition(" ")
            )
            if ready != "ready":
                raise RuntimeError("the kernel HTTP server did not start")
            before = _snmp_tcp(right)
            started = time.monotonic()
            status, got, err = await _curl_sha256(left, f"http://[{RIGHT}]:8081/", size)
            seconds = time.monotonic() - started
            after = _snmp_tcp(right)
        finally:
            if server.returncode is None:
                server.kill()
            await server.wait()
    return _figures(
        size,
        seconds,
        sha_ok=got == digest,
        reset=status == 56,
        curl_status=status,
        curl_error=err.strip(),
        out_segments=after["OutSegs"] - before["OutSegs"],
        retransmitted_segments=after["RetransSegs"] - before["RetransSegs"],
        dropped=shim.dropped,
        congestion_control=used.strip(),
    )


BASELINES = ("cubic", "reno")


async def _all(body: bytes, digest: str, path: str, baseline: bool) -> list[dict[str, Any]]:
    runs = [tcp_migrate_download(body, digest, seed=1), tcp_migrate_upload(body, digest, seed=2)]
    if baseline:
        runs += [kernel_download(path, digest, 3 + i, cc) for i, cc in enumerate(BASELINES)]
    return await asyncio.gather(*runs)


def run(size: int = DEFAULT_BYTES, *, baseline: bool = True) -> dict[str, Any]:
    """The four transfers (two without ``baseline``) of ``size`` bytes, concurrently."""
    if os.geteuid() != 0:
        raise PermissionError("labnet bench tcp-lossy needs root (namespaces, TUN devices)")
    body = os.urandom(size)
    digest = hashlib.sha256(body).hexdigest()
    folder = tempfile.mkdtemp(prefix="labnet-bench-tcp-lossy-")
    try:
        path = os.path.join(folder, "file")
        if baseline:
            with open(path, "wb") as f:
                f.write(body)
        started = time.monotonic()
        results = asyncio.run(_all(body, digest, path, baseline))
        wall = time.monotonic() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    figures: dict[str, Any] = {
        "path": {"one_way_delay_ms": DELAY_MS, "loss_each_way": LOSS, "mtu": MTU},
        "tcp_migrate_download": results[0],
        "tcp_migrate_upload": results[1],
    }
    if baseline:
        for cc, result in zip(BASELINES, results[2:], strict=True):
            figures[f"kernel_{cc}_download"] = result
            figures[f"tcp_migrate_vs_kernel_{cc}"] = round(results[0]["mbps"] / result["mbps"], 2)
    figures["wall_seconds"] = round(wall, 1)
    figures["cpus"] = os.cpu_count()
    figures["kernel"] = platform.release()
    figures["python"] = platform.python_version()
    return figures


if __name__ == "__main__":
    import json

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_BYTES), indent=2))
