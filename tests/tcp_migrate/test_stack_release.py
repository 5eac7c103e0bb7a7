"""The donor's side of a handoff: :meth:`Stack.release` forgets the connection and keeps its
4-tuple quiet, so segments that still reach the donor (sent before the path moved to the
acceptor) are dropped, not answered with the RST of RFC 9293 3.10.7.1 that would reset the
connection the acceptor now serves. Found by the two-host migration test through 40 ms delay
(``test_migration_twohost.py``): the client's segments in flight reached A after the handoff."""

from __future__ import annotations

from mip6.wire.tcp import TcpFlags

from .test_stack import ADDRESS_A, ADDRESS_B, CONFIG, Net, _established, tcp


def straggler(net: Net, server) -> bytes:
    """An ACK from the client to ``server``'s 4-tuple, as if sent before the handoff."""
    client_port = server.key[3]
    return tcp(ADDRESS_A, ADDRESS_B, sport=client_port, seq=5, ack=9, flags=TcpFlags.ACK)


def test_released_connection_straggler_dropped_silently():
    net = Net()
    _, server = _established(net)
    server.freeze(net.now)
    net.b.release(net.now, server)
    sent = len(net.sent)
    assert net.b.receive(net.now + 10, straggler(net, server)) is None
    assert len(net.sent) == sent
    assert net.b.counters["released_dropped"] == 1 and net.b.counters["rst_sent"] == 0
    assert server not in net.b.connections


def test_released_connection_quiet_for_time_wait_then_rst_again():
    net = Net()
    _, server = _established(net)
    net.b.release(net.now, server)
    later = net.now + CONFIG.time_wait_ms
    sent = len(net.sent)
    net.b.receive(later, straggler(net, server))
    assert len(net.sent) == sent + 1 and net.b.counters["rst_sent"] == 1


def test_released_then_imported_back_connection_receives():
    # A handoff that comes back (A -> B -> A): the table entry wins over the quiet 4-tuple.
    net = Net()
    _, server = _established(net)
    server.freeze(net.now)
    blob = server.export()
    net.b.release(net.now, server)
    back = net.b.import_connection(blob)
    back.thaw(net.now)
    assert net.b.receive(net.now, straggler(net, server)) is back
    assert net.b.counters["released_dropped"] == 0
