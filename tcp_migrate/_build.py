"""cffi build script for ``tcp_migrate._core``, the C core (out-of-line API mode).

``pip install`` runs it through ``setup(cffi_modules=["tcp_migrate/_build.py:ffibuilder"])``.
Run directly, it builds the extension in place so ``from tcp_migrate._core import ffi, lib``
works from the repository root without installing::

    python tcp_migrate/_build.py

The C sources are every ``csrc/*.c`` beside this file, found by absolute path so the build
works from any working directory. The declarations below restate the public headers; the
generated module includes those headers, so a declaration that drifts from them fails the
compile (``-Werror``) rather than misbehaving at run time.

Sanitizers: ``make_builder(..., sanitize=True)`` compiles the core with AddressSanitizer and
UndefinedBehaviorSanitizer, any undefined behaviour aborting instead of printing and carrying
on. ``tests/tcp_migrate/test_sanitizers.py`` builds such a copy of the package in a scratch
directory (the in-place build is left alone) and runs the core's tests against it, with the
ASan runtime preloaded into the uninstrumented CPython; its docstring says how, and the plain
test run includes it::

    python -m pytest tests/tcp_migrate/test_sanitizers.py
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import sysconfig
import tempfile

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")
SOURCES = sorted(glob.glob(os.path.join(CSRC, "*.c")))
HEADERS = ("tcp_seq.h", "tcp_ring.h", "tcp_ring_memory.h", "tcp_conn.h", "tcp_snapshot.h")

CFLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror"]
SANITIZER_FLAGS = [
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
]
# -O1 after CFLAGS' -O2 wins: the level ASan's documentation suggests, fast enough to run the
# tests and with report stacks that still follow the source.
# -fno-wrapv undoes the -fwrapv in CPython's own CFLAGS, which would otherwise make signed
# overflow defined and hide it from UBSan.
SANITIZER_CFLAGS = ["-O1", "-g", "-fno-wrapv", *SANITIZER_FLAGS]

# The public API, as declared in csrc/tcp_seq.h, tcp_ring.h, tcp_ring_memory.h, tcp_conn.h and
# tcp_snapshot.h
# (tcp_cc.h is internal to the core).
CDEF = """
/* tcp_seq.h */
bool seq_lt(uint32_t a, uint32_t b);
bool seq_leq(uint32_t a, uint32_t b);
bool seq_gt(uint32_t a, uint32_t b);
bool seq_geq(uint32_t a, uint32_t b);
bool seq_between(uint32_t a, uint32_t b, uint32_t c);
bool seq_segment_acceptable(uint32_t rcv_nxt, uint32_t rcv_wnd,
                            uint32_t seg_seq, uint32_t seg_len);

/* tcp_ring.h */
#define TCP_RING_MAX_CAPACITY 1073741824
#define TCP_REASM_MAX_INTERVALS 32

enum tcp_ring_status {
    TCP_RING_OK = 0,
    TCP_RING_EINVAL = -1,
    TCP_RING_ENOMEM = -2,
};

struct tcp_ring {
    uint8_t *buf;
    uint32_t capacity;
    uint32_t head;
    uint32_t length;
    uint8_t owned;
};

int ring_init(struct tcp_ring *r, uint8_t *mem, size_t capacity);
int ring_alloc(struct tcp_ring *r, size_t capacity);
void ring_free(struct tcp_ring *r);
bool ring_valid(const struct tcp_ring *r);
size_t ring_capacity(const struct tcp_ring *r);
size_t ring_length(const struct tcp_ring *r);
size_t ring_free_space(const struct tcp_ring *r);
size_t ring_write(struct tcp_ring *r, const uint8_t *src, size_t n);
size_t ring_peek(const struct tcp_ring *r, size_t offset, uint8_t *dst, size_t n);
size_t ring_consume(struct tcp_ring *r, size_t n);
size_t ring_read(struct tcp_ring *r, uint8_t *dst, size_t n);
size_t ring_write_at(struct tcp_ring *r, size_t offset, const uint8_t *src, size_t n);
size_t ring_peek_free(const struct tcp_ring *r, size_t offset, uint8_t *dst, size_t n);
size_t ring_commit(struct tcp_ring *r, size_t n);

struct tcp_reasm_interval {
    uint32_t offset;
    uint32_t length;
};

struct tcp_reasm {
    uint32_t count;
    uint32_t limit;
    struct tcp_reasm_interval iv[TCP_REASM_MAX_INTERVALS];
};

enum tcp_reasm_status {
    TCP_REASM_STORED = 0,
    TCP_REASM_EVICTED = 1,
    TCP_REASM_DROPPED = 2,
    TCP_REASM_BEYOND = 3,
    TCP_REASM_INVALID = -1,
};

int reasm_init(struct tcp_reasm *a, uint32_t limit);
bool reasm_valid(const struct tcp_reasm *a);
int reasm_add(struct tcp_reasm *a, uint32_t offset, uint32_t length);
uint32_t reasm_front(const struct tcp_reasm *a);
uint32_t reasm_pop_front(struct tcp_reasm *a);

struct tcp_rx_result {
    int status;
    uint32_t stored;
    uint32_t readable;
};

struct tcp_rx_result ring_receive(struct tcp_ring *r, struct tcp_reasm *a,
                                  size_t offset, const uint8_t *src, size_t n);

/* tcp_conn.h */
#define TCP_HEADER_LEN 20
#define TCP_MAX_HEADER_LEN 60
#define TCP_MIN_MSS 64
#define TCP_DEFAULT_MSS 1220
#define TCP_MAX_WSCALE 14
#define TCP_MAX_WINDOW 1073725440
#define TCP_SACK_MAX 8
#define TCP_RTT_LIMIT_MS 86400000
#define TCP_MAX_BACKOFF 32
#define TCP_NO_DEADLINE ...

enum tcp_state {
    TCP_CLOSED = 0,
    TCP_LISTEN = 1,
    TCP_SYN_SENT = 2,
    TCP_SYN_RECEIVED = 3,
    TCP_ESTABLISHED = 4,
    TCP_FIN_WAIT_1 = 5,
    TCP_FIN_WAIT_2 = 6,
    TCP_CLOSE_WAIT = 7,
    TCP_CLOSING = 8,
    TCP_LAST_ACK = 9,
    TCP_TIME_WAIT = 10,
};

enum tcp_close_reason {
    TCP_CLOSE_NONE = 0,
    TCP_CLOSE_NORMAL = 1,
    TCP_CLOSE_RESET = 2,
    TCP_CLOSE_REFUSED = 3,
    TCP_CLOSE_TIMEOUT = 4,
    TCP_CLOSE_ABORTED = 5,
    TCP_CLOSE_RESYNC = 6,
};

enum tcp_status {
    TCP_OK = 0,
    TCP_EINVAL = -1,
    TCP_ESTATE = -2,
    TCP_ESHUTDOWN = -3,
    TCP_ECLOSED = -4,
};

enum tcp_input_result {
    TCP_IN_OK = 0,
    TCP_IN_FROZEN = 1,
    TCP_IN_MALFORMED = 2,
    TCP_IN_BAD_CHECKSUM = 3,
    TCP_IN_WRONG_PORTS = 4,
    TCP_IN_CLOSED = 5,
    TCP_IN_UNACCEPTABLE = 6,
    TCP_IN_PAWS = 7,
    TCP_IN_CHALLENGE = 8,
    TCP_IN_CHALLENGE_LIMITED = 9,
    TCP_IN_RESET = 10,
    TCP_IN_BAD_ACK = 11,
    TCP_IN_DROPPED = 12,
    TCP_IN_RESYNC_REFUSED = 13,
};

enum tcp_cc_algo {
    TCP_CC_NEWRENO = 0,
    TCP_CC_COUNT = 1,
};

#define TCP_CF_SACK_OK 1
#define TCP_CF_TS_OK 2
#define TCP_CF_WS_OK 4
#define TCP_CF_FIN_QUEUED 8
#define TCP_CF_IN_RECOVERY 16
#define TCP_CF_PARTIAL_SEEN 32
#define TCP_CF_SYN_REXMIT 64
#define TCP_CF_PASSIVE 128
#define TCP_CF_EXPORTED 255
#define TCP_CF_FROZEN 256
#define TCP_CF_RTT_TIMING 512
#define TCP_CF_RCV_FIN 1024
#define TCP_CF_RESYNC 2048
#define TCP_CF_RESYNCED 4096
#define TCP_CF_TLP 8192
#define TCP_CF_TLP_RXT 16384
#define TCP_CF_RXT_WATCH 32768

#define TCP_PEND_ACK 1
#define TCP_PEND_SYN 2
#define TCP_PEND_RXT 4
#define TCP_PEND_PROBE 8
#define TCP_PEND_KA 16
#define TCP_PEND_RST 32
#define TCP_PEND_TLP 64

struct tcp_config {
    uint32_t rto_initial_ms;
    uint32_t rto_min_ms;
    uint32_t rto_max_ms;
    uint32_t delack_ms;
    uint32_t time_wait_ms;
    uint32_t keepalive_idle_ms;
    uint32_t keepalive_intvl_ms;
    uint32_t keepalive_count;
    uint32_t challenge_ack_limit;
    uint32_t max_retries;
    uint32_t syn_retries;
    uint16_t mss;
    uint8_t sack;
    uint8_t timestamps;
    uint8_t window_scaling;
    uint8_t nodelay;
    uint8_t cc_algo;
    uint8_t reasm_limit;
    uint8_t initial_window;
};

struct tcp_sack_block {
    uint32_t start;
    uint32_t end;
};

struct tcp_conn {
    uint8_t local_addr[16];
    uint8_t remote_addr[16];
    uint16_t local_port;
    uint16_t remote_port;
    uint8_t state;
    uint8_t close_reason;
    uint8_t pending;
    uint8_t cc_algo;
    uint16_t flags;
    uint8_t snd_wscale;
    uint8_t rcv_wscale;
    uint8_t dupacks;
    uint8_t backoff;
    uint8_t ka_probes;
    uint8_t sack_count;
    uint8_t unacked_segs;
    uint8_t reply_flags;
    uint16_t snd_mss;
    uint16_t rcv_mss;
    uint32_t iss;
    uint32_t snd_una;
    uint32_t snd_nxt;
    uint32_t snd_max;
    uint32_t snd_wnd;
    uint32_t max_snd_wnd;
    uint32_t snd_wl1;
    uint32_t snd_wl2;
    uint32_t snd_rxt;
    uint32_t snd_missing;
    uint32_t snd_skip;
    uint64_t snd_off;
    uint32_t irs;
    uint32_t rcv_nxt;
    uint32_t rcv_adv;
    uint32_t sack_recent;
    uint64_t rcv_off;
    uint32_t ts_recent;
    uint32_t last_ack_sent;
    uint32_t ts_offset;
    uint64_t ts_recent_ms;
    uint32_t srtt_ms;
    uint32_t rttvar_ms;
    uint32_t rto_ms;
    uint32_t rtt_seq;
    uint64_t rtt_start_ms;
    uint32_t cwnd;
    uint32_t ssthresh;
    uint32_t recover;
    uint32_t cc_priv[4];
    uint64_t t_rtx;
    uint64_t t_delack;
    uint64_t t_persist;
    uint64_t t_keepalive;
    uint64_t t_timewait;
    uint64_t frozen_at_ms;
    uint64_t chack_window_ms;
    uint32_t chack_count;
    uint32_t reply_seq;
    uint32_t reply_ack;
    uint32_t resync_gap;
    uint32_t rcv_resync_to;
    uint32_t dupacks_owed;
    uint64_t t_rcv_resync;
    uint32_t rcv_resync_wait_ms;
    uint64_t t_tlp;
    uint32_t tlp_start;
    uint32_t tlp_end;
    uint64_t rxt_una_ms;
    uint32_t rxt_una_end;
    uint32_t rxt_una_max;
    uint64_t t_rxt_lost;
    struct tcp_sack_block sack[8];
    struct tcp_config cfg;
    struct tcp_ring snd;
    struct tcp_ring rcv;
    struct tcp_reasm reasm;
};

void tcp_config_default(struct tcp_config *cfg);
int tcp_config_check(const struct tcp_config *cfg);
int tcp_conn_init(struct tcp_conn *c, const struct tcp_config *cfg,
                  const uint8_t *local_addr, uint16_t local_port,
                  const uint8_t *remote_addr, uint16_t remote_port,
                  uint8_t *snd_mem, size_t snd_cap, uint8_t *rcv_mem, size_t rcv_cap);
int tcp_open_active(struct tcp_conn *c, uint64_t now_ms, uint32_t iss, uint32_t ts_offset);
int tcp_open_passive(struct tcp_conn *c, uint64_t now_ms, const uint8_t *segment, size_t len,
                     uint32_t iss, uint32_t ts_offset);
int tcp_input(struct tcp_conn *c, uint64_t now_ms, const uint8_t *segment, size_t len);
size_t tcp_output(struct tcp_conn *c, uint64_t now_ms, uint8_t *out, size_t cap);
void tcp_timer(struct tcp_conn *c, uint64_t now_ms);
uint64_t tcp_next_deadline(const struct tcp_conn *c);
int64_t tcp_send(struct tcp_conn *c, const uint8_t *data, size_t n);
int64_t tcp_recv(struct tcp_conn *c, uint8_t *dst, size_t n);
bool tcp_recv_eof(const struct tcp_conn *c);
int tcp_shutdown_write(struct tcp_conn *c);
int tcp_abort(struct tcp_conn *c);
int tcp_freeze(struct tcp_conn *c, uint64_t now_ms);
int tcp_thaw(struct tcp_conn *c, uint64_t now_ms);
int tcp_resync(struct tcp_conn *c, uint32_t age_ms, uint32_t wait_ms);
int tcp_release(struct tcp_conn *c, uint64_t now_ms);
bool tcp_limit_mss(struct tcp_conn *c, uint32_t mss);
int tcp_conn_check(const struct tcp_conn *c);
uint32_t tcp_ts_now(const struct tcp_conn *c, uint64_t now_ms);
uint32_t tcp_smss(const struct tcp_conn *c);
uint16_t tcp_checksum(const uint8_t *src, const uint8_t *dst, const uint8_t *segment, size_t len);

/* tcp_ring_memory.h */
#define RING_MEMORY_CACHE_BYTES ...
#define RING_MEMORY_CACHE_BLOCKS 256
void *ring_memory_alloc(size_t size);
void ring_memory_free(void *mem);
struct tcp_conn *conn_memory_new(const struct tcp_config *cfg,
                                 const uint8_t *local_addr, uint16_t local_port,
                                 const uint8_t *remote_addr,
                                 uint16_t remote_port, size_t snd_cap,
                                 size_t rcv_cap);
void conn_memory_free(struct tcp_conn *c);
size_t ring_memory_cached(void);
size_t ring_memory_release(void);

/* tcp_snapshot.h */
#define TCP_SNAP_VERSION 1
#define TCP_SNAP_HEADER_LEN 10
#define TCP_SNAP_TRAILER_LEN 4
#define TCP_SNAP_FORMAT_UNACKED 1

enum tcp_snap_status {
    TCP_SNAP_OK = 0,
    TCP_SNAP_EINVAL = -1,
    TCP_SNAP_ENOTFROZEN = -2,
    TCP_SNAP_ENOSPC = -3,
    TCP_SNAP_ERING = -4,
    TCP_SNAP_ETRUNCATED = -5,
    TCP_SNAP_EMAGIC = -6,
    TCP_SNAP_EVERSION = -7,
    TCP_SNAP_ELENGTH = -8,
    TCP_SNAP_ECRC = -9,
    TCP_SNAP_EVARINT = -10,
    TCP_SNAP_EFLAGS = -11,
    TCP_SNAP_ESTATE = -12,
    TCP_SNAP_EOPTIONS = -13,
    TCP_SNAP_ESEQUENCE = -14,
    TCP_SNAP_EWINDOW = -15,
    TCP_SNAP_ERTT = -16,
    TCP_SNAP_ECONGESTION = -17,
    TCP_SNAP_ETIMER = -18,
    TCP_SNAP_ESACK = -19,
    TCP_SNAP_EDATA = -20,
    TCP_SNAP_ETRAILING = -21,
};

uint32_t tcp_crc32(uint32_t crc, const uint8_t *data, size_t len);
int64_t tcp_export_size(const struct tcp_conn *c, int include_unacked);
int64_t tcp_export(const struct tcp_conn *c, int include_unacked, uint8_t *out, size_t cap);
int64_t tcp_replica_size(const struct tcp_conn *c, uint64_t now_ms, int include_unacked);
int64_t tcp_replica(
    const struct tcp_conn *c, uint64_t now_ms, int include_unacked, uint8_t *out, size_t cap);
int tcp_import(const uint8_t *blob, size_t len, struct tcp_conn *c);
"""

# Stable ABI (``_core.abi3.so``) on the same terms as cffi's setuptools hook, which would choose
# it anyway: not on debug or free-threaded CPython. Saying it here makes ``build_in_place`` and
# ``pip install`` produce the same file name, so a stale in-place build cannot shadow a newer one
# (CPython tries ``_core.cpython-311-*.so`` before ``_core.abi3.so``).
PY_LIMITED_API = not hasattr(sys, "gettotalrefcount") and not sysconfig.get_config_var(
    "Py_GIL_DISABLED"
)


def make_builder(*, absolute_sources: bool, sanitize: bool = False) -> cffi.FFI:
    """The cffi builder. setuptools refuses absolute source paths and runs from the project
    root, so the install gets paths relative to it; ``build_in_place`` compiles after cffi has
    changed into a scratch directory, so it needs absolute ones. ``sanitize`` adds ASan and
    UBSan; such a module only loads with the ASan runtime preloaded."""
    builder = cffi.FFI()
    builder.cdef(CDEF)
    builder.set_source(
        "tcp_migrate._core",
        "".join(f'#include "{header}"\n' for header in HEADERS),
        sources=SOURCES if absolute_sources else [os.path.relpath(p) for p in SOURCES],
        include_dirs=[CSRC],
        depends=sorted(glob.glob(os.path.join(CSRC, "*.h"))),  # tcp_cc.h is internal
        extra_compile_args=CFLAGS + SANITIZER_CFLAGS if sanitize else CFLAGS,
        extra_link_args=SANITIZER_FLAGS if sanitize else [],
        py_limited_api=PY_LIMITED_API,
        # Without this cffi's header selects the limited API even when the extension is not
        # built for it.
        define_macros=[] if PY_LIMITED_API else [("_CFFI_NO_LIMITED_API", None)],
    )
    return builder


ffibuilder = make_builder(absolute_sources=False)


def build_in_place() -> str:
    """Compiles in a scratch directory and copies the extension next to this file.

    Returns the path of the copied ``_core`` shared object. Building in a scratch directory
    keeps cffi's generated ``_core.c`` and the object files out of the source tree.
    """
    with tempfile.TemporaryDirectory(prefix="tcp_migrate_build_") as tmpdir:
        built = make_builder(absolute_sources=True).compile(tmpdir=tmpdir, verbose=True)
        target = os.path.join(HERE, os.path.basename(built))
        for pattern in ("_core.*so", "_core.*pyd"):
            for stale in glob.glob(os.path.join(HERE, pattern)):
                os.remove(stale)  # an extension under another tag could be imported first
        shutil.copyfile(built, target)
    return target


if __name__ == "__main__":
    print(build_in_place(), file=sys.stderr)
