"""cffi build script for ``mip6.runtime._fast``, the daemon's C fast path (out-of-line API mode).

``pip install`` runs it through ``setup(cffi_modules=[...])`` (setup.py), as the hub's fast path
(labnet/hub/_fast_build.py, which this file follows: setuptools runs each build script on its
own, outside any package, so the two cannot share code). Run directly, it builds the extension
in place so ``from mip6.runtime._fast import ffi, lib`` works from the repository root without
installing::

    python mip6/runtime/_fast_build.py

The C source is ``csrc/daemon_fast.c`` beside this file; cffi reads its declarations from
``csrc/daemon_fast.h`` itself (:func:`header_declarations`), which the generated module
includes. ``make_builder(..., sanitize=True)`` adds AddressSanitizer and
UndefinedBehaviorSanitizer, as tcp_migrate's build does.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sys
import sysconfig
import tempfile

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")
# tcp_migrate's headers: the host's connections are its struct tcp_conn (daemon_fast.h)
TCP_CSRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tcp_migrate", "csrc")
SOURCES = [os.path.join(CSRC, name) for name in ("daemon_fast.c", "relay.c", "blake2s.c")]
HEADER = "daemon_fast.h"

CFLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror"]
SANITIZER_FLAGS = [
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
]
SANITIZER_CFLAGS = ["-O1", "-g", "-fno-wrapv", *SANITIZER_FLAGS]  # see tcp_migrate/_build.py


def header_declarations() -> str:
    """``csrc/daemon_fast.h`` as cffi's cdef: the header itself, less its include guard and
    includes (cffi reads plain declarations, comments and integer ``#define``s), so the
    declarations Python sees cannot drift from the ones the C compiles against."""
    with open(os.path.join(CSRC, HEADER), encoding="utf-8") as header:
        lines = header.read().splitlines()
    skipped = re.compile(r"\s*#\s*(ifndef|endif|include)\b|\s*#\s*define\s+DAEMON_FAST_H\s*$")
    return "\n".join(line for line in lines if not skipped.match(line))


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
    builder.cdef(header_declarations())
    builder.set_source(
        "mip6.runtime._fast",
        f'#include "{HEADER}"\n',
        sources=SOURCES if absolute_sources else [os.path.relpath(p) for p in SOURCES],
        include_dirs=[CSRC, TCP_CSRC],
        depends=[
            os.path.join(CSRC, HEADER),
            os.path.join(CSRC, "udp_runs.h"),
            os.path.join(CSRC, "blake2s.h"),
            os.path.join(CSRC, "dfast_internal.h"),
            os.path.join(CSRC, "llhttp_abi.h"),
            *glob.glob(os.path.join(TCP_CSRC, "*.h")),
        ],
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
    with tempfile.TemporaryDirectory(prefix="mip6_runtime_fast_build_") as tmpdir:
        built = make_builder(absolute_sources=True).compile(tmpdir=tmpdir, verbose=True)
        target = os.path.join(HERE, os.path.basename(built))
        for pattern in ("_fast.*so", "_fast.*pyd"):
            for stale in glob.glob(os.path.join(HERE, pattern)):
                os.remove(stale)  # an extension under another tag could be imported first
        shutil.copyfile(built, target)
    return target


if __name__ == "__main__":
    print(build_in_place(), file=sys.stderr)
