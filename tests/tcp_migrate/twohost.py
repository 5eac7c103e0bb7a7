"""Two-host migration lab: a kernel client in a namespace, servers A and B in two processes.

Each server host is its own process (``multiprocessing``, spawned) running its own
:class:`~tcp_migrate.stack.Stack` on its own TUN device, both devices moved into the client's
namespace. The server address ``SERVER`` is routed through A's device; a handoff is a kernel
re-route (``ip -n NS -6 route replace SERVER dev <B's device>``). The client's address is on the
namespace's loopback, so it survives either device.

The test process (:class:`TwoHostLab`) is the orchestrator: it starts curl, tells the hosts
what to do over control pipes and switches the route. The connection's snapshot goes from A's
process to B's over a pipe of their own, as bytes. The hosts serve the same deterministic
``stream`` (an HTTP response, :func:`make_stream`), so B can write it again from any offset.

Host protocol (tuples over the control pipe; every command is answered):

- host -> lab ``("ready",)`` once its device is up in the namespace.
- A: serves one GET on ``SERVER``:8080; when the client has acknowledged ``freeze_at`` stream
  bytes it freezes, exports (``include_unacked`` as configured), sends the blob to B and tells
  the lab ``("frozen", acked_offset, blob_size)``.
- B: imports the blob it receives and tells the lab ``("imported", write_offset,
  send_buffered, state_name)``.
- lab -> B ``("thaw",)``: B thaws and writes the stream from ``write_offset``, then closes.
  lab -> A ``("release",)``: A forgets the connection without sending anything.
- lab -> B ``("drop",)``: B forgets the imported connection; lab -> A ``("thaw",)``: A goes on.
- lab -> host ``("finish",)``: the host answers ``("report", {...})`` and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import multiprocessing
import os
import random
import subprocess
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from labnet.bench.tcp_lossy import SenderTally
from tcp_migrate.core import Config
from tcp_migrate.stack import Socket, Stack
from tcp_migrate.tun import DelayLoss, Driver, TunDevice, start_server, wrap_socket
from tests.runtime.netns import namespace, sh

SERVER = "fd00:7c9:a::1"
CLIENT = "fd00:7c9:a::2"
PORT = 8080
SECRET = b"tcp-migrate-twohost-secret-32-by"
TIMEOUT = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class HostConfig:
    """What both hosts share: the stream (``size`` bytes of body from ``seed``), when A hands
    off (``freeze_at``, a stream offset), the snapshot form, and the path each host's link
    emulates (``delay_ms`` one way, ``loss`` each way; 0 and 0: none)."""

    size: int
    seed: int
    freeze_at: int
    include_unacked: bool
    ring: int = 1 << 20
    delay_ms: float = 0
    loss: float = 0


def make_stream(size: int, seed: int) -> tuple[bytes, str]:
    """(an HTTP response whose body is ``size`` bytes from ``seed``, the body's sha256)."""
    body = random.Random(seed).randbytes(size)
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    return head.encode() + body, hashlib.sha256(body).hexdigest()


# ---- a host process ---------------------------------------------------------------------------


def host_main(
    role: str, ns: str, device_name: str, config: HostConfig, control: Connection, blob: Connection
) -> None:
    """Entry point of host ``role`` ("A" or "B") in its own process."""
    device = TunDevice(name=device_name)
    try:
        device.move_to(ns)
        sh("ip", "-n", ns, "link", "set", device_name, "up")
        asyncio.run(_Host(role, device, config, control, blob).run())
    finally:
        device.close()


class _Host:
    """One server host's stack, driver and part in the protocol (the module docstring)."""

    def __init__(
        self,
        role: str,
        device: TunDevice,
        config: HostConfig,
        control: Connection,
        blob: Connection,
    ) -> None:
        self.role = role
        self.device = device
        self.config = config
        self.control = control
        self.blob = blob
        self.stream, _ = make_stream(config.size, config.seed)
        self.sock: Socket | None = None
        self.served: asyncio.Task | None = None  # writing the stream, while this host owns it
        self.commands: asyncio.Queue[str] = asyncio.Queue()
        self.orphaned = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.shim = DelayLoss(self.config.delay_ms, self.config.loss, seed=ord(self.role))
        delayed = self.config.delay_ms or self.config.loss
        self.driver = Driver(self.device, shim=self.shim if delayed else None)
        self.tally = SenderTally(self.driver.transmit)
        self.stack = Stack(
            transmit=self.tally,
            local_addresses=[SERVER],
            secret=SECRET,
            config=Config(mss=1440, rto_min_ms=200, delack_ms=40),
            send_capacity=self.config.ring,
            receive_capacity=self.config.ring,
        )
        self.driver.attach(self.stack)
        loop.add_reader(self.control.fileno(), self._on_control)
        if self.role == "A":
            await start_server(self.driver, self._serve_a, SERVER, PORT)
        else:
            loop.add_reader(self.blob.fileno(), self._import)
        self.control.send(("ready",))
        try:
            while (command := await self.commands.get()) != "finish":
                self._command(command)
            if self.served is not None:  # its FIN may still be on its way
                await asyncio.wait([self.served], timeout=10)
            if not self.orphaned:
                self.control.send(("report", self._report()))
        finally:
            self.shim.close()
            self.driver.close()

    def _on_control(self) -> None:
        try:
            (command,) = self.control.recv()
        except EOFError:  # the lab is gone: stop
            self.orphaned = True
            command = "finish"
        if command == "finish":
            asyncio.get_running_loop().remove_reader(self.control.fileno())
        self.commands.put_nowait(command)

    # -- A --

    async def _serve_a(self, reader, writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.sock = writer.socket
        self.served = asyncio.current_task()
        watch = asyncio.create_task(self._freeze_when_due(self.sock))
        writer.write(self.stream)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await watch

    async def _freeze_when_due(self, sock: Socket) -> None:
        # frozen by the stack's own callback, at the segment whose acknowledgement crosses
        # freeze_at: a task polling the offset could wake too late on a busy loop (the
        # whole stream sent, the server closed), as it did about one run in ten
        due = asyncio.Event()
        wake = sock.on_change

        def check(changed: Socket) -> None:
            if not due.is_set() and changed.conn.acked_offset >= self.config.freeze_at:
                changed.freeze(self.driver.now_ms())  # once: a thawed donor goes on
                due.set()
            if wake is not None:
                wake(changed)

        sock.on_change = check
        check(sock)
        await due.wait()
        blob = sock.export(include_unacked=self.config.include_unacked)
        self.blob.send_bytes(blob)
        self.control.send(("frozen", sock.conn.acked_offset, len(blob)))

    # -- B --

    def _import(self) -> None:
        asyncio.get_running_loop().remove_reader(self.blob.fileno())
        self.sock = self.stack.import_connection(self.blob.recv_bytes())
        sock = self.sock
        self.control.send(("imported", sock.write_offset, sock.send_buffered, sock.state.name))

    async def _serve_b(self, sock: Socket) -> None:
        _, writer = wrap_socket(self.driver, sock)
        writer.write(self.stream[sock.write_offset :])
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    # -- both --

    def _command(self, command: str) -> None:
        sock = self.sock
        if sock is None:
            raise RuntimeError(f"{self.role}: {command} without a connection")
        if command == "thaw":
            sock.thaw(self.driver.now_ms())
            self.driver.kick()
            if self.role == "B":
                self.served = asyncio.create_task(self._serve_b(sock))
        elif command in ("release", "drop"):
            self.stack.release(self.driver.now_ms(), sock)
            if self.served is not None:
                self.served.cancel()  # A's writer, blocked since the freeze
                self.served = None
        else:
            raise RuntimeError(f"{self.role}: unknown command {command}")

    def _report(self) -> dict[str, Any]:
        sock = self.sock
        return {
            "rst_sent": self.stack.counters["rst_sent"],
            "released_dropped": self.stack.counters["released_dropped"],
            "rst_segments": self.tally.rst,
            "data_segments": self.tally.data_segments,
            "retransmitted_segments": self.tally.retransmitted_segments,
            "dropped": self.shim.dropped,
            "state": sock.state.name if sock is not None else None,
            "close_reason": sock.close_reason.name if sock is not None else None,
            "served": self.served is not None
            and self.served.done()
            and not self.served.cancelled()
            and self.served.exception() is None,
        }


# ---- the orchestrator -------------------------------------------------------------------------


class TwoHostLab:
    """The client namespace and hosts A and B (use as a context manager: everything is
    stopped and deleted on exit, whatever happened). Names carry this process's id."""

    def __init__(self, tag: str, config: HostConfig) -> None:
        pid = os.getpid()
        self.ns_name = f"tcpm2-{tag}-{pid}"
        self.devices = {"A": f"tm2a{pid}", "B": f"tm2b{pid}"}
        self.config = config
        self.controls: dict[str, Connection] = {}
        self.curl: subprocess.Popen | None = None
        self._cleanup = contextlib.ExitStack()

    def __enter__(self) -> TwoHostLab:
        with self._cleanup as cleanup:
            self.ns = cleanup.enter_context(namespace(self.ns_name))
            sh("ip", "-n", self.ns, "addr", "add", f"{CLIENT}/128", "dev", "lo", "nodad")
            context = multiprocessing.get_context("spawn")
            blob_in, blob_out = context.Pipe(duplex=False)  # A -> B, the snapshot
            for role, blob in (("A", blob_out), ("B", blob_in)):
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=host_main,
                    args=(role, self.ns, self.devices[role], self.config, theirs, blob),
                    name=f"tcp_migrate host {role}",
                    daemon=True,
                )
                process.start()
                cleanup.callback(_stop, process)
                cleanup.callback(ours.close)
                theirs.close()
                self.controls[role] = ours
            blob_in.close()
            blob_out.close()
            cleanup.callback(self._stop_curl)
            for role in "AB":
                self.expect(role, "ready")
            self.route("A", "add")
            self._cleanup = cleanup.pop_all()
        return self

    def __exit__(self, *exc) -> None:
        self._cleanup.close()

    def _stop_curl(self) -> None:
        if self.curl is not None and self.curl.poll() is None:
            self.curl.kill()
            self.curl.wait(10)

    def route(self, role: str, verb: str = "replace") -> None:
        """The kernel's route to SERVER through ``role``'s device."""
        sh("ip", "-n", self.ns, "-6", "route", verb, f"{SERVER}/128", "dev", self.devices[role])

    def send(self, role: str, command: str) -> None:
        self.controls[role].send((command,))

    def expect(self, role: str, kind: str, timeout: float = TIMEOUT) -> tuple:
        control = self.controls[role]
        if not control.poll(timeout):
            raise TimeoutError(f"host {role}: no {kind!r} in {timeout} s")
        message = control.recv()
        if message[0] != kind:
            raise AssertionError(f"host {role}: expected {kind!r}, got {message!r}")
        return message[1:]

    def start_curl(self) -> None:
        """curl in the namespace fetching the stream, its body hashed (exit status of curl)."""
        self.curl = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "bash", "-c",
             f"set -o pipefail; curl -sS -g --max-time {TIMEOUT} "
             f"'http://[{SERVER}]:{PORT}/file' | sha256sum"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def curl_result(self) -> tuple[int, str, str]:
        """(curl status, sha256 hex of the body, stderr) once it is done."""
        assert self.curl is not None
        out, err = self.curl.communicate(timeout=TIMEOUT + 10)
        return self.curl.returncode, out.split()[0] if out else "", err

    def finish(self) -> dict[str, dict[str, Any]]:
        """Each host's report (see :meth:`_Host._report`)."""
        reports = {}
        for role in "AB":
            self.send(role, "finish")
        for role in "AB":
            (reports[role],) = self.expect(role, "report")
        return reports


def _stop(process: multiprocessing.process.BaseProcess) -> None:
    process.join(5)  # after "finish" it exits by itself
    if process.is_alive():
        process.kill()
        process.join(5)


def handoff(tag: str, config: HostConfig, *, abandon: bool) -> dict[str, Any]:
    """One download with a handoff from A to B at ``config.freeze_at`` (see the module
    docstring), or with the handoff abandoned after B imported and the route went to B: the
    route comes back to A and A thaws. Returns what the tests check."""
    _, digest = make_stream(config.size, config.seed)
    with TwoHostLab(tag, config) as lab:
        lab.start_curl()
        frozen_at, blob_size = lab.expect("A", "frozen")
        write_offset, send_buffered, state = lab.expect("B", "imported")
        lab.route("B")  # the kernel's packets to SERVER now reach B's device
        if abandon:
            lab.send("B", "drop")
            lab.route("A")
            lab.send("A", "thaw")
        else:
            lab.send("B", "thaw")
            lab.send("A", "release")
        status, got, err = lab.curl_result()
        reports = lab.finish()
    return {
        "curl_status": status,
        "curl_error": err,
        "sha_ok": got == digest,
        "frozen_at": frozen_at,
        "blob_size": blob_size,
        "write_offset": write_offset,
        "send_buffered": send_buffered,
        "imported_state": state,
        "reports": reports,
    }
