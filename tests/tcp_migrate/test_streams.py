"""The asyncio streams of ``tcp_migrate.tun`` between two stacks in one process, over a
datagram socket pair (no root): echo, a large transfer with back-pressure, half-close, refusal
and reset surfaced as the standard library's exceptions, and a handoff under streams."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from contextlib import asynccontextmanager

import pytest

from tcp_migrate.core import Config, TcpState
from tcp_migrate.stack import Stack
from tcp_migrate.tun import DatagramDevice, Driver, open_connection, start_server, wrap_socket

CLIENT = "2001:db8::1"
SERVER = "2001:db8::2"
SECRET = bytes(32)
CONFIG = Config(rto_min_ms=200, delack_ms=20, time_wait_ms=1000)


@asynccontextmanager
async def two_stacks(**kwargs):
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for s in (left, right):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    devices = [DatagramDevice(left), DatagramDevice(right)]
    drivers = [Driver(d) for d in devices]
    kwargs.setdefault("config", CONFIG)
    stacks = [
        Stack(transmit=drv.transmit, local_addresses=[address], secret=SECRET, **kwargs)
        for drv, address in zip(drivers, (CLIENT, SERVER), strict=True)
    ]
    for drv, stack in zip(drivers, stacks, strict=True):
        drv.attach(stack)
    try:
        yield drivers, stacks
    finally:
        for drv, dev in zip(drivers, devices, strict=True):
            drv.close()
            dev.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_established_echo_readline_then_eof():
    async def main():
        async with two_stacks() as ((client_driver, server_driver), _):

            async def echo(reader, writer):
                while line := await reader.readline():
                    writer.write(line.upper())
                    await writer.drain()
                writer.close()
                await writer.wait_closed()

            server = await start_server(server_driver, echo, SERVER, 7)
            reader, writer = await open_connection(client_driver, SERVER, 7)
            assert writer.get_extra_info("peername") == (SERVER, 7)
            writer.write(b"hello\n")
            assert await reader.readline() == b"HELLO\n"
            writer.write(b"again\n")
            writer.close()
            assert await reader.read() == b"AGAIN\n"
            await writer.wait_closed()
            server.close()
            await server.wait_closed()

    run(main())


def test_established_large_transfer_with_small_reader_limit_back_pressure():
    data = bytes(i * 7 % 256 for i in range(3_000_000))

    async def main():
        async with two_stacks(send_capacity=65536, receive_capacity=65536) as (drivers, _stacks):
            got = asyncio.get_running_loop().create_future()

            async def sink(reader, writer):
                h = hashlib.sha256()
                n = 0
                while chunk := await reader.read(4096):
                    h.update(chunk)
                    n += len(chunk)
                    if n < 200_000:
                        await asyncio.sleep(0.001)  # a slow reader: the window closes
                got.set_result((n, h.hexdigest()))
                writer.close()

            await start_server(drivers[1], sink, SERVER, 9, limit=8192)
            _reader, writer = await open_connection(drivers[0], SERVER, 9)
            writer.write(data)
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            assert await got == (len(data), hashlib.sha256(data).hexdigest())

    run(main())


def test_closed_port_open_connection_refused():
    async def main():
        async with two_stacks() as (drivers, _):
            with pytest.raises(ConnectionRefusedError):
                await open_connection(drivers[0], SERVER, 1234)

    run(main())


def test_established_peer_abort_reader_raises_connection_reset():
    async def main():
        async with two_stacks() as (drivers, _):

            async def rude(reader, writer):
                await reader.readexactly(3)
                writer.socket.abort()
                drivers[1].kick()

            await start_server(drivers[1], rude, SERVER, 80)
            reader, writer = await open_connection(drivers[0], SERVER, 80)
            writer.write(b"abc")
            with pytest.raises(ConnectionResetError):
                await reader.read()

    run(main())


@pytest.mark.parametrize("include_unacked", [True, False], ids=["full", "regenerable"])
def test_established_handoff_under_streams_client_reads_whole_stream(include_unacked):
    stream = bytes(i % 253 for i in range(2_000_000))

    async def main():
        async with two_stacks(send_capacity=65536) as (drivers, stacks):
            accepted = asyncio.get_running_loop().create_future()

            async def serve(reader, writer):
                accepted.set_result(writer.socket)
                writer.write(stream)
                await writer.drain()

            await start_server(drivers[1], serve, SERVER, 80)
            reader, _writer = await open_connection(drivers[0], SERVER, 80)
            first = await reader.readexactly(500_000)
            sock = await accepted
            sock.freeze(drivers[1].now_ms())
            blob = sock.export(include_unacked=include_unacked)
            acceptor = Stack(
                transmit=drivers[1].transmit,
                local_addresses=[SERVER],
                secret=b"another-secret-key",
                config=CONFIG,
                send_capacity=65536,
            )
            moved = acceptor.import_connection(blob)
            drivers[1].attach(acceptor)
            stacks[1].detach(sock)
            moved.thaw(drivers[1].now_ms())
            _, moved_writer = wrap_socket(drivers[1], moved)
            moved_writer.write(stream[moved.write_offset :])
            moved_writer.close()
            rest = await reader.read()
            assert first + rest == stream
            await moved_writer.wait_closed()
            assert moved.state in (TcpState.FIN_WAIT_2, TcpState.TIME_WAIT, TcpState.CLOSED)

    run(main())


def test_drain_sends_what_was_written_before_the_task_goes_on():
    """A writer's drain polls the stack now (the driver's flush), so the written bytes are on
    the device before the task's next statement, not a loop iteration later; the poll its
    write scheduled finds nothing left to do."""

    async def main():
        async with two_stacks() as ((client_driver, server_driver), (client_stack, _)):
            server = await start_server(server_driver, lambda r, w: None, SERVER, 9)
            _, writer = await open_connection(client_driver, SERVER, 9)
            await asyncio.sleep(0.05)  # the handshake's last ACK sent, nothing owed
            sent: list[bytes] = []
            transmit = client_driver.transmit
            client_driver.transmit = lambda packet: (sent.append(packet), transmit(packet))
            client_stack.transmit = client_driver.transmit
            writer.write(b"x" * 100)
            assert sent == []  # write only moves the bytes into the send ring
            await writer.drain()  # returns without yielding: there is room
            assert len(sent) == 1 and sent[0].endswith(b"x" * 100)
            polls = 0
            poll = client_stack.poll

            def counted(now_ms: int) -> None:
                nonlocal polls
                polls += 1
                poll(now_ms)

            client_stack.poll = counted
            await asyncio.sleep(0)  # the kick's own callback runs: nothing left for it
            assert polls == 0 and len(sent) == 1
            server.close()

    run(main())
