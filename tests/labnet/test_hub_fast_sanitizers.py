"""The hub's C fast path under AddressSanitizer and UndefinedBehaviorSanitizer.

As tests/tcp_migrate/test_sanitizers.py does for tcp_migrate's core (its docstring explains the
environment; its planted-bug controls show that this setup reports what it should):
``_fast_build.make_builder(sanitize=True)`` compiles ``labnet.hub._fast`` into a copy of the
``labnet`` package in a scratch directory, and a child ``python`` that imports the copy first runs
test_hub_fast.py against it, garbage included, with the ASan runtime preloaded. The test checks
that the child loaded the sanitized module, passed, and printed no report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labnet.hub import _fast_build
from tests.tcp_migrate.test_sanitizers import REPORT_MARKERS, libasan

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PACKAGE = REPO / "labnet"
RUN_TIMEOUT_S = 300

CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import labnet.hub._fast
print("sanitized fast path:", labnet.hub._fast.__file__, flush=True)
import pytest
sys.exit(pytest.main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def sanitized_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding a copy of ``labnet`` whose ``hub._fast`` is sanitized."""
    libasan()  # skips (or fails, in CI) before compiling when gcc or libasan is missing
    root = tmp_path_factory.mktemp("sanitized")
    site = root / "site"
    shutil.copytree(PACKAGE, site / "labnet", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    built = Path(
        _fast_build.make_builder(absolute_sources=True, sanitize=True).compile(
            tmpdir=str(root / "build")
        )
    )
    assert b"__asan_init" in built.read_bytes(), "the fast path was built without ASan"
    shutil.copy(built, site / "labnet" / "hub")
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
         "--capture=sys", str(HERE / "test_hub_fast.py")],
        cwd=REPO,
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    output = child.stdout
    assert f"sanitized fast path: {sanitized_site / 'labnet' / 'hub'}{os.sep}_fast" in output, (
        output[-5000:]
    )
    reports = [line for line in output.splitlines() if any(m in line for m in REPORT_MARKERS)]
    assert not reports, output[-20000:]
    assert child.returncode == 0, output[-20000:]
