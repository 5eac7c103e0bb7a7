"""``labnet bench tcp``: tcp_migrate's throughput against the kernel's through a TUN hop, its
snapshot costs, and Linux TCP_REPAIR checkpoint/restore of a kernel socket, in one run (root).

- ``tcp_migrate_mbps``: a kernel client (curl, in a namespace) downloads from an HTTP server on
  a tcp_migrate :class:`~tcp_migrate.stack.Stack` that this process runs on the namespace's TUN
  device (MTU 1500, MSS 1440): every packet crosses the TUN device and Python.
- ``kernel_mbps``: the same download (curl from ``python -m http.server``) kernel to kernel
  between two namespaces joined by two TUN devices and a bare Python relay thread in this
  process (MTU 1500): every packet crosses TUN and Python once, as above, but the TCP is the
  kernel's at both ends.
- ``export_us``, ``import_us``: median time of one ``Connection.export`` / ``Connection.import_``
  of an established connection with empty buffers, called from Python (cffi included);
  ``import_us`` includes allocating the new connection's two 256 KiB rings, and
  ``import_into_existing_us`` is ``tcp_import`` alone into an existing connection.
- ``state_bytes_empty``: that snapshot's size; ``state_bytes_full``: with a full 256 KiB send
  ring and ``include_unacked=True``; ``state_bytes_regenerable``: the same connection with
  ``include_unacked=False``.
- ``tcp_repair_checkpoint_us``, ``tcp_repair_restore_us``: median time to checkpoint an
  established kernel socket on loopback with TCP_REPAIR (sequence numbers, both queues read
  with MSG_PEEK, window, MSS/scale/SACK/timestamp options, timestamp clock) and to restore it
  into a new socket after closing the old one in repair mode (no RST), empty queues; and
  ``tcp_repair_ok``: the restored socket then carried data both ways. ``None`` with
  ``tcp_repair_error`` when the kernel refuses (not root, no CAP_NET_ADMIN).
"""

from __future__ import annotations

import asyncio
import os
import platform
import selectors
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from tcp_migrate._core import lib
from tcp_migrate.core import Config, Connection, TcpState
from tcp_migrate.stack import Stack
from tcp_migrate.tun import Driver, TunDevice, start_server

OUR = "fd00:7c9:b::1"
KERNEL = "fd00:7c9:b::2"
LEFT = "fd00:7c9:c::1"
RIGHT = "fd00:7c9:d::1"
SECRET = b"labnet-bench-tcp-secret-32-bytes"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class _Namespace:
    def __init__(self, name: str) -> None:
        self.name = name
        _ip("netns", "add", name)
        _ip("-n", name, "link", "set", "lo", "up")

    def close(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, timeout=10)


def _curl_speed(ns: str, url: str, timeout: float) -> float:
    """Download speed in Mbit/s from curl in ``ns`` (body discarded)."""
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "curl", "-sS", "-g", "-o", "/dev/null",
         "--max-time", str(int(timeout)), "-w", "%{speed_download} %{size_download}", url],
        capture_output=True, text=True, timeout=timeout + 10,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"curl failed ({done.returncode}): {done.stderr.strip()}")
    speed, _ = done.stdout.split()
    return float(speed) * 8 / 1e6


def _download_size(seconds: float) -> int:
    return max(20_000_000, int(seconds * 80e6))


# ---- tcp_migrate server -> kernel client ----------------------------------------------------


def tcp_migrate_mbps(seconds: float) -> float:
    size = _download_size(seconds)
    body = bytes(size)
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n".encode()
    ns = _Namespace(f"bench-tcpm-{os.getpid()}")
    device = None
    try:
        device = TunDevice(name="btcpm%d", mtu=1500)
        device.move_to(ns.name)
        device.configure(KERNEL, OUR, netns=ns.name)

        async def handle(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(head)
            view = memoryview(body)
            for start in range(0, size, 1 << 22):
                writer.write(view[start : start + (1 << 22)])
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        async def main() -> float:
            driver = Driver(device)
            stack = Stack(
                transmit=driver.transmit,
                local_addresses=[OUR],
                secret=SECRET,
                config=Config(mss=1440, delack_ms=40, rto_min_ms=200),
                send_capacity=1 << 20,
                receive_capacity=1 << 20,
            )
            driver.attach(stack)
            server = await start_server(driver, handle, OUR, 8080)
            try:
                return await asyncio.to_thread(
                    _curl_speed, ns.name, f"http://[{OUR}]:8080/", seconds * 5 + 30
                )
            finally:
                server.close()
                driver.close()

        return asyncio.run(main())
    finally:
        if device is not None:
            device.close()
        ns.close()


# ---- kernel -> kernel through a bare Python TUN relay ---------------------------------------


def _relay(a: TunDevice, b: TunDevice, stop: threading.Event) -> None:
    sel = selectors.DefaultSelector()
    sel.register(a.fd, selectors.EVENT_READ, (a, b))
    sel.register(b.fd, selectors.EVENT_READ, (b, a))
    while not stop.is_set():
        for key, _ in sel.select(0.1):
            src, dst = key.data
            for _ in range(256):
                packet = src.read()
                if packet is None:
                    break
                dst.write(packet)
    sel.close()


def kernel_mbps(seconds: float) -> float:
    size = _download_size(seconds)
    left = _Namespace(f"bench-kl-{os.getpid()}")
    right = _Namespace(f"bench-kr-{os.getpid()}")
    devices: list[TunDevice] = []
    stop = threading.Event()
    relay = None
    server = None
    folder = tempfile.mkdtemp(prefix="labnet-bench-tcp-")
    try:
        with open(os.path.join(folder, "file"), "wb") as f:
            f.truncate(size)
        for ns, ours, theirs in ((left, LEFT, RIGHT), (right, RIGHT, LEFT)):
            device = TunDevice(name="bkern%d", mtu=1500)
            devices.append(device)
            device.move_to(ns.name)
            device.configure(ours, theirs, netns=ns.name)
        relay = threading.Thread(target=_relay, args=(devices[0], devices[1], stop), daemon=True)
        relay.start()
        server = subprocess.Popen(
            ["ip", "netns", "exec", right.name, sys.executable, "-m", "http.server",
             "--bind", RIGHT, "--directory", folder, "8081"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:  # wait for the server to listen
            probe = subprocess.run(
                ["ip", "netns", "exec", right.name, "ss", "-Hltn", "sport = :8081"],
                capture_output=True, text=True,
            )  # fmt: skip
            if probe.stdout.strip() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return _curl_speed(left.name, f"http://[{RIGHT}]:8081/file", seconds * 5 + 30)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        stop.set()
        if relay is not None:
            relay.join(5)
        for device in devices:
            device.close()
        left.close()
        right.close()
        shutil.rmtree(folder, ignore_errors=True)


# ---- snapshot costs -------------------------------------------------------------------------


def _established_pair(capacity: int) -> tuple[Connection, Connection, list[int]]:
    """Two stacks over a direct in-memory link; returns the client's and server's connections."""
    queue: list[bytes] = []
    a_addr, b_addr = (
        bytes.fromhex("20010db8" + "0" * 23 + "1"),
        bytes.fromhex("20010db8" + "0" * 23 + "2"),
    )
    kwargs = {"secret": SECRET, "send_capacity": capacity, "receive_capacity": capacity}
    a = Stack(transmit=queue.append, local_addresses=[a_addr], **kwargs)
    b = Stack(transmit=queue.append, local_addresses=[b_addr], **kwargs)
    listener = b.listen(b_addr, 80)
    client = a.connect(0, b_addr, 80)
    now = [0]
    for _ in range(10):
        a.poll(now[0])
        b.poll(now[0])
        while queue:
            packet = queue.pop(0)
            (a if packet[24:40] == a_addr else b).receive(now[0], packet)
        now[0] += 1
    server = listener.accept()
    if server is None or client.state != TcpState.ESTABLISHED:
        raise RuntimeError("in-memory handshake failed")
    return client.conn, server.conn, now


def snapshot_figures(seconds: float) -> dict[str, Any]:
    _, server, now = _established_pair(262144)
    server.freeze(now[0])
    blob = server.export()
    export_ns: list[int] = []
    import_ns: list[int] = []
    import_c_ns: list[int] = []
    target = Connection(
        local_address=bytes(16), local_port=1, remote_address=bytes(16), remote_port=2,
        send_capacity=262144, receive_capacity=262144,
    )  # fmt: skip
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and len(export_ns) < 200_000:
        t0 = time.perf_counter_ns()
        server.export()
        t1 = time.perf_counter_ns()
        Connection.import_(blob, send_capacity=262144, receive_capacity=262144)
        t2 = time.perf_counter_ns()
        status = lib.tcp_import(blob, len(blob), target.raw)
        t3 = time.perf_counter_ns()
        if status != lib.TCP_SNAP_OK:
            raise RuntimeError(f"tcp_import refused the snapshot ({status})")
        export_ns.append(t1 - t0)
        import_ns.append(t2 - t1)
        import_c_ns.append(t3 - t2)
    _, full, now = _established_pair(262144)
    while full.send(bytes(65536)):
        pass
    full.freeze(now[0])
    return {
        "export_us": round(statistics.median(export_ns) / 1000, 2),
        "import_us": round(statistics.median(import_ns) / 1000, 2),
        "import_into_existing_us": round(statistics.median(import_c_ns) / 1000, 2),
        "snapshot_samples": len(export_ns),
        "state_bytes_empty": len(blob),
        "state_bytes_full": len(full.export(include_unacked=True)),
        "state_bytes_regenerable": len(full.export(include_unacked=False)),
        "full_send_ring_bytes": full.send_buffered,
    }


# ---- Linux TCP_REPAIR -----------------------------------------------------------------------

TCP_REPAIR = 19
TCP_REPAIR_QUEUE = 20
TCP_QUEUE_SEQ = 21
TCP_REPAIR_OPTIONS = 22
TCP_TIMESTAMP = 24
TCP_REPAIR_WINDOW = 29
TCP_RECV_QUEUE, TCP_SEND_QUEUE = 1, 2
TCPOPT_MSS, TCPOPT_WINDOW, TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP = 2, 3, 4, 8
TCPI_OPT_TIMESTAMPS, TCPI_OPT_SACK, TCPI_OPT_WSCALE = 1, 2, 4


def _checkpoint(s: socket.socket) -> dict[str, Any]:
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    state: dict[str, Any] = {"local": s.getsockname(), "remote": s.getpeername()}
    for name, queue in (("recv", TCP_RECV_QUEUE), ("send", TCP_SEND_QUEUE)):
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, queue)
        state[f"{name}_seq"] = struct.unpack(
            "I", s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4)
        )[0]
        try:
            state[f"{name}_data"] = s.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            state[f"{name}_data"] = b""
    state["window"] = s.getsockopt(socket.IPPROTO_TCP, TCP_REPAIR_WINDOW, 20)
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    state["options"], state["wscale"] = info[5], info[6]
    state["mss"] = struct.unpack_from("I", info, 16)[0]
    state["timestamp"] = struct.unpack("I", s.getsockopt(socket.IPPROTO_TCP, TCP_TIMESTAMP, 4))[0]
    return state


def _restore(state: dict[str, Any]) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for name, queue in (("recv", TCP_RECV_QUEUE), ("send", TCP_SEND_QUEUE)):
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, queue)
        s.setsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, struct.pack("I", state[f"{name}_seq"]))
    s.setsockopt(socket.IPPROTO_TCP, TCP_TIMESTAMP, struct.pack("I", state["timestamp"]))
    s.bind(state["local"])
    s.connect(state["remote"])  # in repair mode: no SYN, straight to ESTABLISHED
    for name, queue in (("recv", TCP_RECV_QUEUE), ("send", TCP_SEND_QUEUE)):
        if state[f"{name}_data"]:
            s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, queue)
            s.send(state[f"{name}_data"])
    options = [(TCPOPT_MSS, state["mss"])]
    if state["options"] & TCPI_OPT_WSCALE:
        wscale = state["wscale"]
        options.append((TCPOPT_WINDOW, (wscale & 0xF) | ((wscale >> 4) << 16)))
    if state["options"] & TCPI_OPT_SACK:
        options.append((TCPOPT_SACK_PERM, 0))
    if state["options"] & TCPI_OPT_TIMESTAMPS:
        options.append((TCPOPT_TIMESTAMP, 0))
    s.setsockopt(
        socket.IPPROTO_TCP, TCP_REPAIR_OPTIONS, b"".join(struct.pack("II", *o) for o in options)
    )
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_WINDOW, state["window"])
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 0)
    return s


class TcpRepairSwaps:
    """One established kernel connection on IPv4 loopback, checkpointed and restored with
    TCP_REPAIR again and again, in as many slices of time as the caller wants: ``labnet bench
    dserver`` interleaves them with its own handoffs, so that the figure and its baseline see
    the same machine (its speed was seen to drift by a third within a minute)."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self._ours = socket.create_connection(self._listener.getsockname())
        self._peer, _ = self._listener.accept()
        self.checkpoint_ns: list[int] = []
        self.restore_ns: list[int] = []
        self.error: str | None = None

    def run(self, seconds: float, limit: int = 20_000) -> None:
        """Swap for ``seconds`` (or until ``limit`` samples in all); an error stops it for
        good and is reported by :meth:`figures`."""
        end = time.perf_counter() + seconds
        try:
            while (
                self.error is None and time.perf_counter() < end and len(self.checkpoint_ns) < limit
            ):
                t0 = time.perf_counter_ns()
                state = _checkpoint(self._ours)
                t1 = time.perf_counter_ns()
                self._ours.close()  # in repair mode: silent, the peer sees nothing
                t2 = time.perf_counter_ns()
                self._ours = _restore(state)
                t3 = time.perf_counter_ns()
                self.checkpoint_ns.append(t1 - t0)
                self.restore_ns.append(t3 - t2)
        except OSError as e:
            self.error = str(e)

    def figures(self) -> dict[str, Any]:
        """The medians, once the restored socket has carried data both ways; closes all."""
        ok = False
        try:
            if self.error is None and self.checkpoint_ns:
                self._ours.sendall(b"ping")
                self._peer.settimeout(5)
                ok = self._peer.recv(4) == b"ping"
                self._peer.sendall(b"pong")
                self._ours.settimeout(5)
                ok = ok and self._ours.recv(4) == b"pong"
        except OSError as e:
            self.error = str(e)
        finally:
            for s in (self._ours, self._peer, self._listener):
                s.close()
        if self.error is not None or not self.checkpoint_ns:
            return {
                "tcp_repair_checkpoint_us": None,
                "tcp_repair_restore_us": None,
                "tcp_repair_ok": False,
                "tcp_repair_error": self.error or "no sample taken",
            }
        return {
            "tcp_repair_checkpoint_us": round(statistics.median(self.checkpoint_ns) / 1000, 2),
            "tcp_repair_restore_us": round(statistics.median(self.restore_ns) / 1000, 2),
            "tcp_repair_samples": len(self.checkpoint_ns),
            "tcp_repair_ok": ok,
        }


def tcp_repair_figures(seconds: float) -> dict[str, Any]:
    swaps = TcpRepairSwaps()
    swaps.run(seconds)
    return swaps.figures()


def run(seconds: float = 4.0) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise PermissionError("labnet bench tcp needs root (namespaces, TUN devices, TCP_REPAIR)")
    share = seconds / 4
    results: dict[str, Any] = {}
    results["tcp_migrate_mbps"] = round(tcp_migrate_mbps(share), 1)
    results["kernel_mbps"] = round(kernel_mbps(share), 1)
    results["tcp_migrate_vs_kernel"] = round(
        results["tcp_migrate_mbps"] / results["kernel_mbps"], 2
    )
    results.update(snapshot_figures(share))
    results.update(tcp_repair_figures(share))
    results["mtu"] = 1500
    results["cpus"] = os.cpu_count()
    results["python"] = platform.python_version()
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(run(float(sys.argv[1]) if len(sys.argv) > 1 else 4.0), indent=2))
