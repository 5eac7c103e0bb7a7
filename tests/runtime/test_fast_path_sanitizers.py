"""The daemon's C fast path (mip6/runtime/csrc/daemon_fast.c) under AddressSanitizer and
UndefinedBehaviorSanitizer.

As tests/tcp_migrate/test_sanitizers.py does for tcp_migrate's core (its docstring explains the
environment; its planted-bug controls show that this setup reports what it should):
``_fast_build.make_builder(sanitize=True)`` compiles ``mip6.runtime._fast`` into a copy of the
``mip6`` package in a scratch directory, and a child ``python`` that imports the copy first runs
test_fast_path.py (hypothesis' mutated packets included) against it, with the ASan runtime
preloaded. The test checks that the child loaded the sanitized module, passed, and printed no
report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mip6.runtime import _fast_build
from tests.tcp_migrate.test_sanitizers import REPORT_MARKERS, libasan

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PACKAGE = REPO / "mip6"
RUN_TIMEOUT_S = 300

CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import mip6.runtime._fast
print("sanitized fast path:", mip6.runtime._fast.__file__, flush=True)
import pytest
sys.exit(pytest.main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def sanitized_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding a copy of ``mip6`` whose ``runtime._fast`` is sanitized."""
    libasan()  # skips (or fails, in CI) before compiling when gcc or libasan is missing
    root = tmp_path_factory.mktemp("sanitized")
    site = root / "site"
    shutil.copytree(PACKAGE, site / "mip6", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    built = Path(
        _fast_build.make_builder(absolute_sources=True, sanitize=True).compile(
            tmpdir=str(root / "build")
        )
    )
    assert b"__asan_init" in built.read_bytes(), "the fast path was built without ASan"
    shutil.copy(built, site / "mip6" / "runtime")
    return site


def test_fast_path_tests_pass_under_sanitizers_without_reports(sanitized_site: Path) -> None:
    env = {
        "LD_PRELOAD": libasan(),
        "PYTHONMALLOC": "malloc",
        "ASAN_OPTIONS": "detect_leaks=0:quarantine_size_mb=64:abort_on_error=1",
        "UBSAN_OPTIONS": "print_stacktrace=1:abort_on_error=1",
    }
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(sanitized_site), "-p", "no:cacheprovider", "-q",
         "--capture=sys", str(HERE / "test_fast_path.py")],
        cwd=REPO,
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    output = child.stdout
    assert f"sanitized fast path: {sanitized_site / 'mip6' / 'runtime'}{os.sep}_fast" in output, (
        output[-5000:]
    )
    reports = [line for line in output.splitlines() if any(m in line for m in REPORT_MARKERS)]
    assert not reports, output[-20000:]
    assert child.returncode == 0, output[-20000:]
