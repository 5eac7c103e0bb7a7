"""cffi build script for ``tcp_migrate._core``, the C core (out-of-line API mode).

``pip install`` runs it through ``setup(cffi_modules=["tcp_migrate/_build.py:ffibuilder"])``.
Run directly, it builds the extension in place so ``from tcp_migrate._core import ffi, lib``
works from the repository root without installing::

    python tcp_migrate/_build.py

The C sources are every ``csrc/*.c`` beside this file, found by absolute path so the build
works from any working directory. The declarations below restate the public headers; the
generated module includes those headers, so a declaration that drifts from them fails the
compile (``-Werror``) rather than misbehaving at run time.

Sanitizers: with ``TCP_MIGRATE_SANITIZE=1`` in the environment, the core is compiled with
AddressSanitizer and UndefinedBehaviorSanitizer, and any undefined behaviour aborts instead of
printing and carrying on. CPython itself is not instrumented, so the ASan runtime has to be
preloaded, and CPython's small-object allocator must be bypassed for ASan to see overruns of
buffers allocated from Python (``ffi.new``). Build and test with, from the repository root::

    TCP_MIGRATE_SANITIZE=1 python tcp_migrate/_build.py
    LD_PRELOAD=$(gcc -print-file-name=libasan.so) PYTHONMALLOC=malloc \\
        ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \\
        python -m pytest -p no:cacheprovider tests/tcp_migrate
    python tcp_migrate/_build.py    # rebuild without sanitizers afterwards

``detect_leaks=0`` because CPython keeps memory until exit by design. The sanitized build
replaces the in-place ``_core`` extension, and importing it without the ``LD_PRELOAD`` fails
("ASan runtime does not come first"), hence the rebuild. The first error aborts the run with
a report on stderr; a clean run is a plain pytest pass.
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
HEADERS = ("tcp_seq.h", "tcp_ring.h")

CFLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror"]
LDFLAGS: list[str] = []
SANITIZE = os.environ.get("TCP_MIGRATE_SANITIZE", "") not in ("", "0")
if SANITIZE:
    _sanitizers = [
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
        "-fno-omit-frame-pointer",
    ]
    # -fno-wrapv undoes the -fwrapv in CPython's own CFLAGS, which would otherwise make signed
    # overflow defined and hide it from UBSan.
    CFLAGS += ["-g", "-fno-wrapv", *_sanitizers]
    LDFLAGS += _sanitizers

# The public API, as declared in csrc/tcp_seq.h and csrc/tcp_ring.h.
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
"""

# Stable ABI (``_core.abi3.so``) on the same terms as cffi's setuptools hook, which would choose
# it anyway: not on debug or free-threaded CPython. Saying it here makes ``build_in_place`` and
# ``pip install`` produce the same file name, so a stale in-place build cannot shadow a newer one
# (CPython tries ``_core.cpython-311-*.so`` before ``_core.abi3.so``).
PY_LIMITED_API = not hasattr(sys, "gettotalrefcount") and not sysconfig.get_config_var(
    "Py_GIL_DISABLED"
)

def make_builder(*, absolute_sources: bool) -> cffi.FFI:
    """The cffi builder. setuptools refuses absolute source paths and runs from the project
    root, so the install gets paths relative to it; ``build_in_place`` compiles after cffi has
    changed into a scratch directory, so it needs absolute ones."""
    builder = cffi.FFI()
    builder.cdef(CDEF)
    builder.set_source(
        "tcp_migrate._core",
        "".join(f'#include "{header}"\n' for header in HEADERS),
        sources=SOURCES if absolute_sources else [os.path.relpath(p) for p in SOURCES],
        include_dirs=[CSRC],
        depends=[os.path.join(CSRC, header) for header in HEADERS],
        extra_compile_args=CFLAGS,
        extra_link_args=LDFLAGS,
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
    print(build_in_place(), "(sanitized)" if SANITIZE else "", file=sys.stderr)
