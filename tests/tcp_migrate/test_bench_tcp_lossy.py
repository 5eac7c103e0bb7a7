"""``labnet bench tcp-lossy``: its sender-side counter here; the transfers themselves run as
root in ``test_kernel_interop.py`` at a CI size."""

from __future__ import annotations

from labnet.bench.tcp_lossy import SenderTally

from .test_stack import Net, _established


def test_sender_tally_counts_data_segments_retransmissions_and_rsts():
    net = Net()
    _, server = _established(net)
    tally = SenderTally(net._send)
    net.b.transmit = tally
    before = len(net.sent)
    server.send(b"x" * 3000)
    net.b.poll(net.now)
    first = len(net.sent) - before
    assert first >= 2 and tally.data_segments == first and tally.retransmitted_segments == 0
    # the RTO (past the tail loss probe's earlier deadline): the first segment again
    net.b.poll(server.conn.raw.t_rtx)
    assert tally.data_segments == first + 1 and tally.retransmitted_segments == 1
    assert tally.rst == 0
    server.abort()
    net.b.poll(net.now)
    assert tally.rst == 1
