"""A thin Python face on the C connection core (``csrc/tcp_conn.h``, ``csrc/tcp_snapshot.h``).

:class:`Connection` owns one ``struct tcp_conn`` and the memory of its two byte rings. It does
no I/O and reads no clock: every call that needs the time takes ``now_ms`` (milliseconds of a
monotonic clock, an ``int``), the ISS and the timestamp offset are arguments, and segments are
``bytes`` holding a TCP header and payload in network byte order, as carried in an IPv6 packet
whose addresses are the connection's (the core computes and verifies the checksum over the IPv6
pseudo-header itself). The caller drives it::

    conn.input(now_ms, segment)           # each segment received for this 4-tuple
    while (segment := conn.output(now_ms)) is not None:
        transmit(segment)                 # after every input, timer, send, recv, thaw
    if conn.next_deadline() is not None:  # then call conn.timer(now_ms) at that time

Migration: :meth:`Connection.freeze` (nothing sent from then on, input dropped silently, never a
RST), :meth:`Connection.export` (versioned, checksummed bytes), :meth:`Connection.import_` on
another host (a frozen copy), :meth:`Connection.thaw`. The snapshot format is described in
``csrc/tcp_snapshot.h``; import refuses a damaged or foreign snapshot with a
:class:`SnapshotError` whose ``fault`` says which check failed.

The stack (demultiplexing, listening sockets) is built on it in ``stack.py``, the TUN driver and
asyncio streams in ``tun.py``.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

from tcp_migrate._core import ffi, lib

__all__ = [
    "CloseReason",
    "Config",
    "Connection",
    "ConnectionStateError",
    "InputResult",
    "SnapshotError",
    "SnapshotFault",
    "TcpState",
]


class TcpState(enum.IntEnum):
    """RFC 9293 3.3.2."""

    CLOSED = lib.TCP_CLOSED
    LISTEN = lib.TCP_LISTEN
    SYN_SENT = lib.TCP_SYN_SENT
    SYN_RECEIVED = lib.TCP_SYN_RECEIVED
    ESTABLISHED = lib.TCP_ESTABLISHED
    FIN_WAIT_1 = lib.TCP_FIN_WAIT_1
    FIN_WAIT_2 = lib.TCP_FIN_WAIT_2
    CLOSE_WAIT = lib.TCP_CLOSE_WAIT
    CLOSING = lib.TCP_CLOSING
    LAST_ACK = lib.TCP_LAST_ACK
    TIME_WAIT = lib.TCP_TIME_WAIT


# RFC 9293 3.3.2: the states after our FIN was queued or sent (an imported connection closed at
# the donor says so by its state alone: who called CLOSE is not in a snapshot)
WRITE_SHUT_STATES = frozenset(
    {
        TcpState.FIN_WAIT_1,
        TcpState.FIN_WAIT_2,
        TcpState.CLOSING,
        TcpState.LAST_ACK,
        TcpState.TIME_WAIT,
    }
)


class CloseReason(enum.IntEnum):
    NONE = lib.TCP_CLOSE_NONE
    NORMAL = lib.TCP_CLOSE_NORMAL
    RESET = lib.TCP_CLOSE_RESET
    REFUSED = lib.TCP_CLOSE_REFUSED
    TIMEOUT = lib.TCP_CLOSE_TIMEOUT
    ABORTED = lib.TCP_CLOSE_ABORTED
    RESYNC = lib.TCP_CLOSE_RESYNC  # the peer stood beyond what a resync may take (RST sent)


class InputResult(enum.IntEnum):
    """What :meth:`Connection.input` did with a segment (``enum tcp_input_result``)."""

    OK = lib.TCP_IN_OK
    FROZEN = lib.TCP_IN_FROZEN
    MALFORMED = lib.TCP_IN_MALFORMED
    BAD_CHECKSUM = lib.TCP_IN_BAD_CHECKSUM
    WRONG_PORTS = lib.TCP_IN_WRONG_PORTS
    CLOSED = lib.TCP_IN_CLOSED
    UNACCEPTABLE = lib.TCP_IN_UNACCEPTABLE
    PAWS = lib.TCP_IN_PAWS
    CHALLENGE = lib.TCP_IN_CHALLENGE
    CHALLENGE_LIMITED = lib.TCP_IN_CHALLENGE_LIMITED
    RESET = lib.TCP_IN_RESET
    BAD_ACK = lib.TCP_IN_BAD_ACK
    DROPPED = lib.TCP_IN_DROPPED
    RESYNC_REFUSED = lib.TCP_IN_RESYNC_REFUSED


# The members by value, for the per-segment conversions (a dict lookup; calling the enum is
# several times slower, and these run for every segment in and every state check)
_TCP_STATES = {state.value: state for state in TcpState}
_INPUT_RESULTS = {result.value: result for result in InputResult}


class SnapshotFault(enum.IntEnum):
    """Why a snapshot was refused or could not be written (``enum tcp_snap_status``)."""

    INVALID_ARGUMENT = lib.TCP_SNAP_EINVAL
    NOT_FROZEN = lib.TCP_SNAP_ENOTFROZEN
    NO_SPACE = lib.TCP_SNAP_ENOSPC
    RINGS_TOO_SMALL = lib.TCP_SNAP_ERING
    TRUNCATED = lib.TCP_SNAP_ETRUNCATED
    BAD_MAGIC = lib.TCP_SNAP_EMAGIC
    UNKNOWN_VERSION = lib.TCP_SNAP_EVERSION
    BAD_LENGTH = lib.TCP_SNAP_ELENGTH
    BAD_CRC = lib.TCP_SNAP_ECRC
    BAD_VARINT = lib.TCP_SNAP_EVARINT
    BAD_FLAGS = lib.TCP_SNAP_EFLAGS
    BAD_STATE = lib.TCP_SNAP_ESTATE
    BAD_OPTIONS = lib.TCP_SNAP_EOPTIONS
    BAD_SEQUENCE = lib.TCP_SNAP_ESEQUENCE
    BAD_WINDOW = lib.TCP_SNAP_EWINDOW
    BAD_RTT = lib.TCP_SNAP_ERTT
    BAD_CONGESTION = lib.TCP_SNAP_ECONGESTION
    BAD_TIMER = lib.TCP_SNAP_ETIMER
    BAD_SACK = lib.TCP_SNAP_ESACK
    BAD_DATA = lib.TCP_SNAP_EDATA
    TRAILING_BYTES = lib.TCP_SNAP_ETRAILING


class SnapshotError(Exception):
    """A snapshot refused by import or not written by export; ``fault`` says why."""

    def __init__(self, fault: SnapshotFault) -> None:
        super().__init__(fault)
        self.fault = fault

    def __str__(self) -> str:
        return f"snapshot refused: {self.fault.name}"


class ConnectionStateError(Exception):
    """An application call the connection refuses (``enum tcp_status``); ``status`` is the
    C status and ``state`` the connection's state at the time."""

    def __init__(self, operation: str, status: int, state: TcpState) -> None:
        super().__init__(operation, status, state)
        self.operation = operation
        self.status = status
        self.state = state

    def __str__(self) -> str:
        return f"{self.operation} refused with status {self.status} in {self.state.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """``struct tcp_config``: times in milliseconds, sizes in bytes. Defaults as the C
    ``tcp_config_default``. Not part of a snapshot: an imported connection runs with the
    importer's settings."""

    rto_initial_ms: int = 1000
    rto_min_ms: int = 1000
    rto_max_ms: int = 60000
    delack_ms: int = 200
    time_wait_ms: int = 240000
    keepalive_idle_ms: int = 0
    keepalive_intvl_ms: int = 75000
    keepalive_count: int = 9
    challenge_ack_limit: int = 10
    max_retries: int = 15
    syn_retries: int = 6
    mss: int = 1440
    sack: bool = True
    timestamps: bool = True
    window_scaling: bool = True
    nodelay: bool = False
    cc_algo: int = lib.TCP_CC_NEWRENO
    reasm_limit: int = 8
    initial_window: int = 0  # segments (RFC 6928's 10, Linux's); 0: RFC 5681 3.1's 2 to 4

    def to_c(self):
        """The ``struct tcp_config`` (checked), built once per distinct settings: every new
        or imported connection copies it (tcp_conn_init), and building it field by field was
        a third of an import's cost."""
        last = _last_c_config[0]  # one read: a (Config, struct) pair, never half of two
        if last is not None and last[0] is self:
            return last[1]  # the stack's one Config, again: not even hashed
        cfg = _c_config(self)
        _last_c_config[0] = (self, cfg)
        return cfg


_last_c_config: list = [None]  # the (Config, struct) asked for last


@functools.lru_cache(maxsize=64)
def _c_config(config: Config):
    cfg = ffi.new("struct tcp_config *")
    for name in config.__dataclass_fields__:
        setattr(cfg, name, int(getattr(config, name)))
    if lib.tcp_config_check(cfg) != lib.TCP_OK:
        raise ValueError(f"invalid TCP settings: {config}")
    return cfg


# Ring memory is not cleared: the rings never expose a byte they were not given (lengths and
# offsets bound every read), and clearing two 256 KiB rings was most of an import's cost (69 of
# the 135 us `labnet bench dserver` measured for a whole local handoff). It comes from the
# core's cache of freed rings (csrc/tcp_ring_memory.h): malloc gave two freed rings back to the
# kernel and took them again for the next connection, 9 of the 15 us an import cost. The
# connection and both rings come in one call (conn_memory_new), given back when ``raw`` is
# collected.


_scratch = ffi.new_allocator(should_clear_after_alloc=False)

_NO_ADDRESS = bytes(16)  # an import's placeholder until the snapshot's addresses are read


class Connection:
    """One TCP connection: a ``struct tcp_conn`` (``raw``) and its rings' memory.

    ``local_address``/``remote_address`` are 16-byte IPv6 addresses (the pseudo-header ones);
    ``send_capacity``/``receive_capacity`` are the ring sizes in bytes.
    """

    def __init__(
        self,
        *,
        local_address: bytes,
        local_port: int,
        remote_address: bytes,
        remote_port: int,
        config: Config | None = None,
        send_capacity: int = 65536,
        receive_capacity: int = 65536,
    ) -> None:
        self.local_address = bytes(local_address)
        self.remote_address = bytes(remote_address)
        if len(self.local_address) != 16 or len(self.remote_address) != 16:
            raise ValueError("IPv6 addresses are 16 bytes")
        self._allocate(
            config,
            self.local_address,
            local_port,
            self.remote_address,
            remote_port,
            send_capacity,
            receive_capacity,
        )

    def _allocate(
        self,
        config: Config | None,
        local_address: bytes,
        local_port: int,
        remote_address: bytes,
        remote_port: int,
        send_capacity: int,
        receive_capacity: int,
    ) -> None:
        """``raw``: a CLOSED connection with its rings (csrc/tcp_ring_memory.h), and the
        output buffer."""
        self.config = config = config if config is not None else Config()
        raw = lib.conn_memory_new(
            config.to_c(),
            local_address,
            local_port,
            remote_address,
            remote_port,
            send_capacity,
            receive_capacity,
        )
        if raw == ffi.NULL:
            if not (
                0 <= send_capacity <= lib.TCP_RING_MAX_CAPACITY
                and 0 <= receive_capacity <= lib.TCP_RING_MAX_CAPACITY
            ):
                raise ValueError(f"ring capacities {send_capacity}, {receive_capacity} refused")
            raise MemoryError("no memory for a connection")
        self.raw = ffi.gc(raw, lib.conn_memory_free)
        self._out_cap = config.mss + lib.TCP_MAX_HEADER_LEN
        self._out = ffi.new("uint8_t[]", self._out_cap)

    # ---- opening -------------------------------------------------------------------------

    def connect(self, now_ms: int, *, iss: int, ts_offset: int = 0) -> None:
        """Active open: SYN-SENT; :meth:`output` emits the SYN."""
        self._check("connect", lib.tcp_open_active(self.raw, now_ms, iss, ts_offset))

    def accept(self, now_ms: int, syn: bytes, *, iss: int, ts_offset: int = 0) -> InputResult:
        """Passive open from a received SYN: SYN-RECEIVED on ``InputResult.OK``, otherwise the
        connection stays CLOSED and the result says why the segment does not open it."""
        result = lib.tcp_open_passive(self.raw, now_ms, syn, len(syn), iss, ts_offset)
        if result < 0:
            self._check("accept", result)
        return InputResult(result)

    @classmethod
    def import_(
        cls,
        blob: bytes,
        *,
        config: Config | None = None,
        send_capacity: int = 65536,
        receive_capacity: int = 65536,
    ) -> Connection:
        """A frozen connection from a snapshot, with this host's settings and ring sizes (the
        addresses and ports are the snapshot's). Built without the constructor's argument
        checks, which have nothing to check here: a third of an import's cost was in them."""
        conn = cls.__new__(cls)
        conn._allocate(config, _NO_ADDRESS, 0, _NO_ADDRESS, 0, send_capacity, receive_capacity)
        raw = conn.raw
        status = lib.tcp_import(blob, len(blob), raw)
        if status != lib.TCP_SNAP_OK:
            raise SnapshotError(SnapshotFault(status))
        # the body of a snapshot (csrc/tcp_snapshot.h) opens with the two addresses, which
        # the import just checked: sliced from it, not read back out of the struct
        body = lib.TCP_SNAP_HEADER_LEN
        conn.local_address = bytes(blob[body : body + 16])  # bytes whatever the buffer type
        conn.remote_address = bytes(blob[body + 16 : body + 32])
        return conn

    @classmethod
    def adopt(cls, raw: int, *, config: Config | None = None) -> Connection:
        """The connection at address ``raw``, made by ``conn_memory_new`` in C by someone else
        (a daemon's fast path opening a connection from a SYN, with ``config``, or one with a
        smaller MSS), now this object's to own and free."""
        conn = cls.__new__(cls)
        conn.config = config = config if config is not None else Config()
        conn.raw = ffi.gc(ffi.cast("struct tcp_conn *", raw), lib.conn_memory_free)
        conn._out_cap = config.mss + lib.TCP_MAX_HEADER_LEN
        conn._out = ffi.new("uint8_t[]", conn._out_cap)
        conn.local_address = bytes(ffi.buffer(conn.raw.local_addr, 16))
        conn.remote_address = bytes(ffi.buffer(conn.raw.remote_addr, 16))
        return conn

    # ---- segments and time ---------------------------------------------------------------

    def input(self, now_ms: int, segment: bytes) -> InputResult:
        return _INPUT_RESULTS[lib.tcp_input(self.raw, now_ms, segment, len(segment))]

    def output(self, now_ms: int) -> bytes | None:
        """The next segment due, or None."""
        n = lib.tcp_output(self.raw, now_ms, self._out, self._out_cap)
        return ffi.buffer(self._out, n)[:] if n else None

    def output_all(self, now_ms: int) -> list[bytes]:
        segments = []
        while (segment := self.output(now_ms)) is not None:
            segments.append(segment)
        return segments

    def timer(self, now_ms: int) -> None:
        lib.tcp_timer(self.raw, now_ms)

    def next_deadline(self) -> int | None:
        deadline = lib.tcp_next_deadline(self.raw)
        return None if deadline == lib.TCP_NO_DEADLINE else deadline

    # ---- the application's side ----------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Copies what fits of ``data`` into the send ring; returns how many bytes. Any
        bytes-like object: an application sending the rest of a large buffer passes a
        memoryview of it, not a copy."""
        buffer = data if type(data) is bytes else ffi.from_buffer("uint8_t[]", data)
        return self._check("send", lib.tcp_send(self.raw, buffer, len(data)))

    def recv(self, n: int) -> bytes:
        """Up to ``n`` readable bytes (b"" when none; see :attr:`at_eof`)."""
        # a buffer for what is there, not for all that was asked (a reader asking for 64 KiB
        # each time had 64 KiB allocated and cleared for every few bytes), not cleared: the
        # core writes every byte it returns
        n = min(n, lib.ring_length(ffi.addressof(self.raw, "rcv")))
        buf = _scratch("uint8_t[]", max(n, 1))
        got = self._check("recv", lib.tcp_recv(self.raw, buf, n))
        return ffi.buffer(buf, got)[:]

    @property
    def at_eof(self) -> bool:
        """The peer's FIN has arrived and every byte before it has been read."""
        return bool(lib.tcp_recv_eof(self.raw))

    def shutdown_write(self) -> None:
        self._check("shutdown_write", lib.tcp_shutdown_write(self.raw))

    def abort(self) -> None:
        self._check("abort", lib.tcp_abort(self.raw))

    # ---- migration -----------------------------------------------------------------------

    def freeze(self, now_ms: int) -> None:
        self._check("freeze", lib.tcp_freeze(self.raw, now_ms))

    def limit_mss(self, mss: int) -> bool:
        """Lower the send MSS to ``mss`` bytes (a narrower path, RFC 8201 5.2); never raises
        it, never below the core's minimum. Whether it changed."""
        return bool(lib.tcp_limit_mss(self.raw, mss))

    def thaw(self, now_ms: int) -> None:
        self._check("thaw", lib.tcp_thaw(self.raw, now_ms))

    def released(self, now_ms: int) -> None:
        """What the program kept back from the wire goes now (``Socket.release_hold``): the
        retransmission timeouts that fired meanwhile lost nothing, so their back-off goes
        and the timer restarts from ``now_ms``."""
        self._check("release", lib.tcp_release(self.raw, now_ms))

    def replica(self, now_ms: int, include_unacked: bool = False) -> bytes:
        """A snapshot of this running connection as if frozen at ``now_ms``, for another
        host to keep: if this one dies, that host imports it, calls :meth:`resync` and thaws
        it. This connection is not changed. Without its unacknowledged bytes (the default)
        the application's output must be regenerable; with them (a full replica) the send
        ring travels and the resumed connection sends on from where the peer stands."""
        size = lib.tcp_replica_size(self.raw, now_ms, int(include_unacked))
        if size < 0:
            raise SnapshotError(SnapshotFault(size))
        buf = ffi.new("uint8_t[]", size)
        written = lib.tcp_replica(self.raw, now_ms, int(include_unacked), buf, size)
        if written < 0:
            raise SnapshotError(SnapshotFault(written))
        return ffi.buffer(buf, written)[:]

    def resync(self, *, age_ms: int, peer_wait_ms: int | None = None) -> None:
        """This frozen connection was imported from a :meth:`replica` taken at least
        ``age_ms`` ago: on thaw it asks the peer where it stands, and the peer's first
        acknowledgement sets both directions (within ``TCP_RESYNC_LIMIT`` of the replica's,
        else the connection is reset with close reason RESYNC). Its timestamp clock resumes
        ``age_ms`` on, where the dead holder's could have been (the peer's PAWS test). When
        the answer shows the peer sent bytes beyond the replica, four duplicate ACKs ask for
        them at once (RFC 5681 3.2's fast retransmission: three that leave the peer's window
        as it was, after one that may change it). The
        application then writes its stream again from :attr:`acked_offset`;
        :attr:`resync_gap` counts received bytes it will never see: bytes beyond the replica
        the peer has not sent again a retransmission timeout plus ``peer_wait_ms`` after its
        answer, which the dead holder had acknowledged. ``peer_wait_ms`` defaults to twice
        the age (the peer's timer backed off while the holder was dead); a holder that never
        acknowledged bytes no replica had (it held the acknowledgement until one did) lets
        the peer send them again however late: the longest retransmission timeout."""
        age = max(0, min(age_ms, 0x7FFFFFFF))
        wait = 0 if peer_wait_ms is None else max(1, min(peer_wait_ms, 0x7FFFFFFF))
        self._check("resync", lib.tcp_resync(self.raw, age, wait))

    @property
    def resyncing(self) -> bool:
        return bool(self.raw.flags & lib.TCP_CF_RESYNC)

    @property
    def resync_gap(self) -> int:
        return int(self.raw.resync_gap)

    @property
    def backoff(self) -> int:
        """Consecutive retransmission (or persist) timeouts without an acknowledgement: above
        0, the peer has not answered for at least one retransmission timeout."""
        return int(self.raw.backoff)

    def export(self, include_unacked: bool = True) -> bytes:
        """The snapshot of this frozen connection (which is not changed)."""
        size = lib.tcp_export_size(self.raw, int(include_unacked))
        if size < 0:
            raise SnapshotError(SnapshotFault(size))
        buf = ffi.new("uint8_t[]", size)
        written = lib.tcp_export(self.raw, int(include_unacked), buf, size)
        if written < 0:
            raise SnapshotError(SnapshotFault(written))
        return ffi.buffer(buf, written)[:]

    # ---- state ---------------------------------------------------------------------------

    @property
    def state(self) -> TcpState:
        return _TCP_STATES[self.raw.state]

    @property
    def close_reason(self) -> CloseReason:
        return CloseReason(self.raw.close_reason)

    @property
    def frozen(self) -> bool:
        return bool(self.raw.flags & lib.TCP_CF_FROZEN)

    @property
    def acked_offset(self) -> int:
        """Stream offset of SND.UNA: how many of our bytes the peer has acknowledged. After
        importing a snapshot exported with ``include_unacked=False`` the application writes
        its stream again from this offset."""
        return self.raw.snd_off

    @property
    def received_offset(self) -> int:
        """Stream offset of RCV.NXT: how many in-order bytes have been received."""
        return self.raw.rcv_off

    @property
    def send_buffered(self) -> int:
        return lib.ring_length(ffi.addressof(self.raw, "snd"))

    @property
    def send_space(self) -> int:
        return lib.ring_free_space(ffi.addressof(self.raw, "snd"))

    @property
    def readable(self) -> int:
        return lib.ring_length(ffi.addressof(self.raw, "rcv"))

    def check(self) -> int:
        """``tcp_conn_check``: 0 when the state is internally consistent, else the
        :class:`SnapshotFault` value of the first inconsistency."""
        return lib.tcp_conn_check(self.raw)

    def _check(self, operation: str, status: int) -> int:
        if status < 0:
            raise ConnectionStateError(operation, status, self.state)
        return status
