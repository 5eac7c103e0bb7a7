"""cffi build script for ``labnet.hub._fast``, the hub's C fast path (out-of-line API mode).

``pip install`` runs it through ``setup(cffi_modules=[...])`` (setup.py), as tcp_migrate's core.
Run directly, it builds the extension in place so ``from labnet.hub._fast import ffi, lib``
works from the repository root without installing::

    python labnet/hub/_fast_build.py

The C source is ``csrc/hub_fast.c`` beside this file; the declarations below restate
``csrc/hub_fast.h``, which the generated module includes, so a declaration that drifts from it
fails the compile (``-Werror``). ``make_builder(..., sanitize=True)`` adds AddressSanitizer and
UndefinedBehaviorSanitizer, as tcp_migrate's build does. Self-contained on purpose: setuptools
executes this file outside any package.
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
SOURCES = [os.path.join(CSRC, "hub_fast.c")]
HEADER = "hub_fast.h"

CFLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror"]
SANITIZER_FLAGS = [
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
]
SANITIZER_CFLAGS = ["-O1", "-g", "-fno-wrapv", *SANITIZER_FLAGS]  # see tcp_migrate/_build.py

CDEF = """
#define FAST_MAX_PACKET 65535
#define FAST_CAPTURE_CHUNK 262144
#define FAST_DECISIONS 8192
#define FAST_MAX_DECISIONS 4096

enum fast_status {
    FAST_DONE = 0,
    FAST_PUNT = 1,
};

struct fast_counters {
    uint64_t up_packets;
    uint64_t up_bytes;
    uint64_t down_packets;
    uint64_t down_bytes;
    uint64_t send_errors;
    uint64_t receive_errors;
    uint64_t pcap_frames;
};

struct fast_punt {
    uint32_t size;
    uint32_t used;
    int stranger;
    int family;
    uint8_t address[16];
    uint16_t port;
    uint32_t flowinfo;
    uint32_t scope_id;
};

struct fast_hub;

struct fast_hub *fast_new(int links, uint8_t *buffer, size_t capacity);
void fast_free(struct fast_hub *hub);
int fast_set_link(struct fast_hub *hub, int link, int fd, int udp, int pinned);
int fast_set_down_transparent(struct fast_hub *hub, int link, int transparent);
int fast_set_endpoint(struct fast_hub *hub, int link, int family, const uint8_t *address,
                      uint16_t port, uint32_t flowinfo, uint32_t scope_id);
int fast_decide(struct fast_hub *hub, const uint8_t *key, int out);
void fast_forget(struct fast_hub *hub);
int fast_decisions(const struct fast_hub *hub);
int fast_capture(struct fast_hub *hub, int link, int fd);
int fast_record(struct fast_hub *hub, int link, const uint8_t *header, const uint8_t *packet,
                size_t size);
int fast_flush(struct fast_hub *hub, int link);
int fast_drain(struct fast_hub *hub, int link, int budget, struct fast_punt *punt);
const struct fast_counters *fast_counters(const struct fast_hub *hub, int link);
"""

# As tcp_migrate/_build.py: the stable ABI where the interpreter supports it, so the in-place
# build and the installed one have the same file name.
PY_LIMITED_API = not hasattr(sys, "gettotalrefcount") and not sysconfig.get_config_var(
    "Py_GIL_DISABLED"
)


def make_builder(*, absolute_sources: bool, sanitize: bool = False) -> cffi.FFI:
    """The cffi builder: sources relative to the project root for setuptools (which refuses
    absolute paths), absolute for :func:`build_in_place` (cffi compiles in a scratch
    directory). ``sanitize`` adds ASan and UBSan; such a module only loads with the ASan
    runtime preloaded."""
    builder = cffi.FFI()
    builder.cdef(CDEF)
    builder.set_source(
        "labnet.hub._fast",
        f'#include "{HEADER}"\n',
        sources=SOURCES if absolute_sources else [os.path.relpath(p) for p in SOURCES],
        include_dirs=[CSRC],
        depends=[os.path.join(CSRC, HEADER)],
        extra_compile_args=CFLAGS + SANITIZER_CFLAGS if sanitize else CFLAGS,
        extra_link_args=SANITIZER_FLAGS if sanitize else [],
        py_limited_api=PY_LIMITED_API,
        define_macros=[] if PY_LIMITED_API else [("_CFFI_NO_LIMITED_API", None)],
    )
    return builder


ffibuilder = make_builder(absolute_sources=False)


def build_in_place() -> str:
    """Compiles in a scratch directory and copies the extension next to this file; returns its
    path. (The scratch directory keeps cffi's generated C and the objects out of the tree.)"""
    with tempfile.TemporaryDirectory(prefix="labnet_hub_fast_build_") as tmpdir:
        built = make_builder(absolute_sources=True).compile(tmpdir=tmpdir, verbose=True)
        target = os.path.join(HERE, os.path.basename(built))
        for pattern in ("_fast.*so", "_fast.*pyd"):
            for stale in glob.glob(os.path.join(HERE, pattern)):
                os.remove(stale)  # an extension under another tag could be imported first
        shutil.copyfile(built, target)
    return target


if __name__ == "__main__":
    print(build_in_place(), file=sys.stderr)
