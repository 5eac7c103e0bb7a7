"""tcp_migrate's C core under AddressSanitizer and UndefinedBehaviorSanitizer.

The core is compiled with both sanitizers (``_build.make_builder(sanitize=True)``) into a copy
of the ``tcp_migrate`` package in a scratch directory, so the installed or in-place build is
never touched. A child ``python`` then runs this directory's tests against the copy, except
this module and the root-only ``netns`` tests:

- CPython is not instrumented, so the ASan runtime is preloaded (``LD_PRELOAD``) ahead of it;
- ``PYTHONMALLOC=malloc`` bypasses CPython's small-object allocator, so the ``bytes`` the tests
  hand to the core (segments, snapshots) are ASan heap blocks with red zones, as the buffers
  from ``ffi.new`` already are;
- ``detect_leaks=0``: CPython keeps memory until exit by design, and those leaks are not ours;
- ``quarantine_size_mb=64``: the tests churn 1 MiB receive buffers, and ASan's default 256 MiB
  of freed-but-poisoned memory doubles the child's peak to over 1 GB;
- ``abort_on_error=1`` (and ``-fno-sanitize-recover`` at compile time): the first report
  aborts the child, and pytest's faulthandler names the test that was running;
- ``--capture=sys``: pytest's default captures file descriptor 2 into a file that an abort
  never prints, which would swallow the sanitizer's report.

The child imports the copy before pytest puts the repository on ``sys.path`` and prints which
``_core`` it loaded; the test checks that, then that the child passed with no report in its
output. Negative controls plant deliberate bugs in a tiny module built with the same flags and
call them from tests run by the same child, so a setup that catches nothing cannot pass.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cffi
import pytest

from tcp_migrate import _build
from tests.conftest import require

THIS = Path(__file__).resolve()
HERE = THIS.parent
REPO = HERE.parents[1]
REPORT_MARKERS = ("ERROR: AddressSanitizer", "runtime error:")
RUN_TIMEOUT_S = 900  # ~1.5 min on two cores; a hang must not stall CI until its own limit

# The child's first sys.argv entry is the directory holding the sanitized package, the rest are
# pytest's arguments. Importing tcp_migrate first pins the copy in sys.modules, so the tests'
# own imports get it even after pytest has prepended the repository root to sys.path.
CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import tcp_migrate._core
print("sanitized core:", tcp_migrate._core.__file__, flush=True)
import pytest
sys.exit(pytest.main(sys.argv[2:]))
"""
PYTEST_ARGS = ["-p", "no:cacheprovider", "-q", "--capture=sys", "-m", "not netns"]

CONTROL_CDEF = """
int overrun_own_heap(size_t n);
void overrun_caller_buffer(uint8_t *buf, size_t n);
int overread_caller_bytes(const uint8_t *buf, size_t n);
int add(int a, int b);
"""
CONTROL_SOURCE = """
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int overrun_own_heap(size_t n)
{
    uint8_t *p = malloc(n);
    memset(p, 0, n + 1);
    int last = p[n];  /* returned, so the overrun cannot be optimized away */
    free(p);
    return last;
}

void overrun_caller_buffer(uint8_t *buf, size_t n) { buf[n] = 1; }

int overread_caller_bytes(const uint8_t *buf, size_t n)
{
    int sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += buf[i];
    return sum;
}

int add(int a, int b) { return a + b; }
"""
HEAP_OVERFLOW = "ERROR: AddressSanitizer: heap-buffer-overflow"
# Test name -> what the planted bug must produce.
PLANTED = {
    "test_c_heap_overflow": HEAP_OVERFLOW,
    "test_ffi_new_buffer_overflow": HEAP_OVERFLOW,
    # Caught only under PYTHONMALLOC=malloc: pymalloc's pools have no red zones.
    "test_bytes_overread": HEAP_OVERFLOW,
    # Caught only with -fno-wrapv; CPython's CFLAGS have -fwrapv.
    "test_signed_overflow": "runtime error: signed integer overflow",
}
PLANTED_TESTS = """
from sanitizer_control import ffi, lib


def test_c_heap_overflow():
    lib.overrun_own_heap(8)


def test_ffi_new_buffer_overflow():
    lib.overrun_caller_buffer(ffi.new("uint8_t[]", 8), 8)


def test_bytes_overread():
    lib.overread_caller_bytes(b"12345678", 16)  # well past the NUL ending every bytes object


def test_signed_overflow():
    lib.add(2**31 - 1, 1)
"""


def libasan() -> str:
    """The ASan runtime matching the compiler, to preload."""
    require(shutil.which("gcc") is not None, "gcc is not installed")
    path = subprocess.run(
        ["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # gcc echoes the bare name back when it has no such library.
    require(os.path.isabs(path) and os.path.exists(path), "gcc has no libasan (libgcc-*-dev)")
    return path


@pytest.fixture(scope="module")
def sanitizer_env() -> dict[str, str]:
    """What the child's environment adds to ours (kept apart so that failures do not print all
    of ours)."""
    return {
        "LD_PRELOAD": libasan(),
        "PYTHONMALLOC": "malloc",
        "ASAN_OPTIONS": "detect_leaks=0:quarantine_size_mb=64:abort_on_error=1",
        "UBSAN_OPTIONS": "print_stacktrace=1:abort_on_error=1",
    }


@pytest.fixture(scope="module")
def sanitized_site(tmp_path_factory: pytest.TempPathFactory, sanitizer_env) -> Path:
    """A directory holding the ``tcp_migrate`` package with the sanitized ``_core``, and the
    ``sanitizer_control`` module. Requests ``sanitizer_env`` first so that a missing gcc or
    libasan skips (or fails, in CI) before anything is compiled."""
    root = tmp_path_factory.mktemp("sanitized")
    package = root / "site" / "tcp_migrate"
    package.mkdir(parents=True)
    for module in Path(_build.HERE).glob("*.py"):
        shutil.copy(module, package)
    core = _build.make_builder(absolute_sources=True, sanitize=True)
    built = Path(core.compile(tmpdir=str(root / "build_core")))
    assert b"__asan_init" in built.read_bytes(), "the core was built without ASan"
    shutil.copy(built, package)

    control = cffi.FFI()
    control.cdef(CONTROL_CDEF)
    control.set_source(
        "sanitizer_control",
        CONTROL_SOURCE,
        extra_compile_args=_build.SANITIZER_CFLAGS,
        extra_link_args=_build.SANITIZER_FLAGS,
    )
    shutil.copy(control.compile(tmpdir=str(root / "build_control")), package.parent)
    return package.parent


def run_pytest_child(
    site: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """Runs pytest with ``args`` against the sanitized package; its output is stdout and stderr
    interleaved, the sanitizers' reports included."""
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(site), *PYTEST_ARGS, *args],
        cwd=REPO,
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=RUN_TIMEOUT_S,
    )
    assert f"sanitized core: {site / 'tcp_migrate'}{os.sep}_core" in child.stdout, child.stdout
    return child


@pytest.mark.parametrize(("name", "report"), PLANTED.items(), ids=list(PLANTED))
def test_sanitizers_planted_bug_reported_and_aborts(
    sanitized_site, sanitizer_env, tmp_path: Path, name, report
):
    planted = tmp_path / "test_planted_bugs.py"
    planted.write_text(PLANTED_TESTS)
    child = run_pytest_child(sanitized_site, sanitizer_env, f"{planted}::{name}")
    assert report in child.stdout, child.stdout
    assert child.returncode == -signal.SIGABRT, child.stdout


def test_sanitizers_core_tests_pass_without_reports(sanitized_site, sanitizer_env):
    child = run_pytest_child(sanitized_site, sanitizer_env, f"--ignore={THIS}", str(HERE))
    output = child.stdout
    reports = [line for line in output.splitlines() if any(m in line for m in REPORT_MARKERS)]
    assert not reports, output[-20000:]
    assert child.returncode == 0, output[-20000:]
