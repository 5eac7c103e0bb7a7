"""tcp_migrate: a userspace TCP whose connections can be frozen, moved to another host and resumed.

The design (ARCHITECTURE section 7): a TCP endpoint whose entire state is a C struct plus two
byte rings. A connection can be frozen (no more sends, incoming segments dropped silently, never
a RST), exported as a versioned, portable, checksummed byte string, imported frozen on another
host and thawed there; two frozen instances may exist at once. The C code holds state and does
arithmetic; policy stays in readable code.

The core is C (``csrc/``), compiled with cffi in out-of-line API mode when the package is
installed (``_build.py``; ``python tcp_migrate/_build.py`` builds it in place) and imported as
``from tcp_migrate._core import ffi, lib``. ``tcp_migrate.core.Connection`` is a thin Python
wrapper owning one connection and its ring memory.

What exists:

- ``csrc/tcp_seq.[ch]``: sequence arithmetic modulo 2^32 and the RFC 9293 3.10.7.4 segment
  acceptability test.
- ``csrc/tcp_ring.[ch]``: the bounded byte rings and out-of-order reassembly.
- ``csrc/tcp_conn.[ch]``: ``struct tcp_conn`` (all connection state in fixed-width fields) and
  the sans-I/O engine: active and passive open, ``tcp_input`` (whole TCP segments; the checksum
  is verified in C over the IPv6 pseudo-header from the connection's addresses), ``tcp_output``
  (the next segment due, checksum filled in), ``tcp_timer``/``tcp_next_deadline`` (absolute
  deadlines in ms), ``tcp_send``/``tcp_recv``/``tcp_shutdown_write``/``tcp_abort``,
  ``tcp_freeze``/``tcp_thaw`` and ``tcp_conn_check`` (internal consistency).
- ``csrc/tcp_cc.[ch]``: congestion control behind a function-pointer-free switch; NewReno only.
- ``csrc/tcp_snapshot.[ch]``: ``tcp_export``/``tcp_import`` of a frozen connection, format
  version 1 described in the header (magic, version, length, CRC-32, little-endian and LEB128
  fields, deadlines relative to the freeze); every fault refused with its own code; optional
  short form without the unacknowledged bytes (``include_unacked=False``) whose size does not
  depend on the send ring's fill. Sizes (``python -m tests.tcp_migrate.bench_snapshot``):
  116 bytes idle with every option, 122 bytes in the short form with a full 1 MiB send ring;
  export and import take under a microsecond in C.
- ``core.py``: ``Connection``, ``Config``, ``TcpState``, ``InputResult``, ``SnapshotError``.
- ``ipv6.py``: ``walk``, the IPv6 fixed header and extension-header chain (Hop-by-Hop,
  Routing, Fragment, Destination Options) read as far as TCP needs: addresses, upper-layer
  protocol and offset, fragmented or not; every length bounded, a refusal is a
  ``MalformedPacket`` with a ``Fault``. The package imports nothing of ``mip6`` (``mip6`` builds
  on it, never the reverse).
- ``stack.py``: ``Stack``, sans-I/O above any IPv6 layer (``transmit(packet)`` callable, the
  local addresses, ``receive(now_ms, packet)``, ``poll(now_ms)``/``next_deadline()``):
  demultiplexing by 4-tuple, ``listen`` (accept queue and half-open count bounded by the
  backlog), ``connect`` with RFC 6056 algorithm 3 ephemeral ports, RFC 6528 ISS (keyed BLAKE2s
  of the 4-tuple plus a 4 us clock from the injected time; the secret is an argument), RSTs for
  segments to no connection (RFC 9293 3.10.7.1, rate-limited, never for a bad checksum),
  a bounded connection table, ``import_connection(blob)`` (frozen, owns its 4-tuple at once so
  nothing answers with a RST), ``detach`` for the donor, and ``Socket.freeze/export/thaw`` and
  ``Socket.write_offset`` (where the application writes again after a short-form import).
- ``tun.py``: ``TunDevice`` (layer-3 TUN, movable into a namespace), ``DatagramDevice`` (a
  datagram socket, for tests without root), ``Driver`` (asyncio loop: device reads, stack
  polls at its deadlines, ``attach`` to swap stacks on one device, an optional delay/loss
  shim), and stdlib-like streams: ``open_connection``, ``start_server``, ``wrap_socket``
  (``asyncio.StreamReader`` back-pressured through the receive window; ``StreamWriter`` with
  ``write``/``drain``/``close``/``wait_closed``).

Compliance (tests in ``tests/tcp_migrate/``):

- RFC 9293 state machine, every state of 3.3.2, opening and closing including simultaneous
  open and close: ``test_conn_handshake.py``, ``test_conn_transfer.py::test_close_*``.
- MSS (3.7.1, 1220 by default for IPv6), window scaling and timestamps with PAWS (RFC 7323),
  SACK-permitted: ``test_conn_handshake.py``, ``test_conn_recovery.py::test_timestamps_*``;
  the path MTU bounds it (RFC 8201 5.2): ``Stack(mss_limit=)`` for new connections,
  ``Stack.limit_mss`` lowers open ones (``test_stack.py::test_*mss*``).
- SACK (RFC 2018): blocks for out-of-order data, most recent first
  (``test_conn_transfer.py::test_established_sack_*``); the sender's scoreboard fills holes
  in fast recovery and is forgotten after a timeout (``test_conn_recovery.py::test_sack_*``).
- RFC 6298 RTT estimation and RTO (initial 1 s, backoff, configurable minimum, 3 s after a
  lost SYN, Karn): ``test_conn_recovery.py::test_rto_*``, ``::test_rtt_*``.
- RFC 5681 slow start, congestion avoidance by byte counting, fast retransmit, Limited Transmit
  (RFC 3042) and NewReno recovery (RFC 6582): ``test_conn_recovery.py::test_newreno_*``.
- Tail loss probe (RFC 8985 7) with SACK: PTO = 2 * SRTT (+200 ms for one segment in flight,
  at least 10 ms), new data or the last segment again, the RTO armed after it, one probe per
  episode; its SACK starts fast recovery for what was sent before it (RACK's inference, 6.2),
  a D-SACK or a pure duplicate ACK says the probe was not needed, else congestion control
  hears of the loss it repaired (7.4): ``test_conn_tlp.py``.
- A lost retransmission of the hole at SND.UNA (RFC 8985 6.2), in fast recovery or in a
  timeout's go-back-N: sent again once the peer has SACKed data sent after it and SRTT * 5/4
  has passed since the copy went, at that ACK or at a timer armed for the moment (6.3's
  reordering timer), not at the RTO: ``test_conn_tlp.py``.
- Nagle (3.7.4), sender and receiver SWS avoidance (3.8.6.2), zero-window probing (3.8.6.1),
  delayed ACKs (3.8.6.3, RFC 5681 4.2), keepalive (3.8.4), TIME-WAIT (2 MSL configurable):
  ``test_conn_transfer.py``.
- RFC 5961 RST, SYN and ACK checks with a challenge-ACK throttle; ABORT (3.10.5); malformed
  segments: ``test_conn_rfc5961.py``; floods of arbitrary segments: ``test_flood.py``.
- Freeze, export, import, thaw, handoffs, two frozen copies, abandoned handoff, short-form
  regeneration, refusal of damaged snapshots, 100,000 mutated snapshots: ``test_snapshot.py``.
- IPv6 walk: the same answers and refusals as ``mip6.wire.walk`` on fixed and mutated packets,
  fuzzed; no import of ``mip6``: ``test_ipv6.py``, ``test_standalone.py``.
- Stack: RFC 9293 3.10.7.1 and 3.10.7.2 replies, backlog and table bounds, RFC 6528 ISS, ports,
  handoffs between stacks: ``test_stack.py``; streams, refusal, reset, handoff under streams:
  ``test_streams.py``.
- Against Linux through a TUN device (root): curl downloads 100 MB (sha256), an upload to a
  kernel server (sha256), RST to a closed port (curl: refused), and handoffs A -> B in the
  middle of a download through 40 ms delay and 1% loss, full and short form, and an abandoned
  handoff where A thaws: ``test_kernel_interop.py``. Benchmark: ``labnet/bench/tcp.py``.

Deviations and limits:

- Urgent data is not supported: the urgent pointer is ignored and the bytes are normal data.
- Data and FIN on a SYN are not accepted (no TCP Fast Open); the peer sends them again.
- A SYN in SYN-RECEIVED gets a challenge ACK (RFC 5961 4.2) instead of returning a passive
  connection to LISTEN; the crossing SYN-ACK of a simultaneous open is accepted.
- A segment with a bad option length is dropped (RFC 9293 MUST-7 suggests a reset).
- Out-of-order bytes beyond an in-order FIN are discarded when the FIN is accepted.
- Zero-window probes carry one byte of new data; their answers are not duplicate ACKs.
- Giving up after ``max_retries`` timeouts sends no RST; a keepalive timeout does.
- FIN-WAIT-2 does not time out.
- Not implemented: RFC 6675 pipe and rescue retransmission, RACK beyond the probe's inference
  and the lost retransmission at SND.UNA (no per-segment send times; the one timer watches that
  retransmission alone),
  sending D-SACKs (received ones are read only for a probe), ECN, path MTU discovery, CUBIC (a
  ``tcp_cc_algo`` value and a case in ``tcp_cc.c`` when it comes).
- Not carried in a snapshot: the RTT sample in progress, the loss probe's timer and episode
  (the importer arms its own), the challenge-ACK throttle, a RST owed
  (a frozen connection never sends one); the PAWS idle clock restarts at thaw. Received bytes
  not yet read are always carried: the application reads them first to keep a snapshot small.

Stack limits: IPv6 fragments are dropped (no reassembly), no ICMPv6 (no path MTU discovery, no
reaction to unreachables), one flow label (0) for all segments, no SO_LINGER-style RST when the
application closes with unread data, no IPv4. A listener's SYN beyond its backlog or the table
bound is dropped (no SYN cookies).
"""
