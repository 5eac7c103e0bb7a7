"""tcp_migrate: a userspace TCP whose connections can be frozen, moved to another host and resumed.

The design (ARCHITECTURE section 7): a TCP endpoint whose entire state is a C struct plus two
byte rings. ``export()`` freezes a connection (no more sends, incoming segments dropped
silently, never a RST) and returns a versioned, portable byte string; ``import_(blob)`` on
another host recreates it frozen; ``thaw()`` resumes it. The C code holds state and does
arithmetic; policy stays in readable code.

The core is C (``csrc/``), compiled with cffi in out-of-line API mode when the package is
installed (``_build.py``; ``python tcp_migrate/_build.py`` builds it in place) and imported as
``from tcp_migrate._core import ffi, lib``.

Implemented so far, in the C core only (no Python API yet):

- ``csrc/tcp_seq.[ch]``: sequence number arithmetic modulo 2^32 (RFC 9293 3.4: ``seq_lt``,
  ``seq_leq``, ``seq_gt``, ``seq_geq``, ``seq_between``) and the segment acceptability test
  (RFC 9293 3.10.7.4, ``seq_segment_acceptable``).
- ``csrc/tcp_ring.[ch]``: the bounded byte ring behind the send and receive queues (write,
  peek at an offset for retransmission, consume, read), and out-of-order reassembly for the
  receive side (``struct tcp_reasm``: at most a fixed number of merged intervals;
  ``ring_receive`` stores a segment and makes the contiguous prefix readable). Every function
  checks its bounds and the structure's invariants, whatever the inputs.

Not implemented yet: segment encoding and parsing, the connection state machine (RFC 9293
3.3.2), retransmission timers (RFC 6298), congestion control, options (MSS, window scale,
SACK, timestamps), the frozen state, export/import and its snapshot format, and the Python API.
"""
