"""A C fast path (the hub's, the daemon's) under AddressSanitizer and UndefinedBehaviorSanitizer.

As tests/tcp_migrate/test_sanitizers.py does for tcp_migrate's core (its docstring explains the
environment; its planted-bug controls show that this setup reports what it should): the fast
path's ``_fast_build.make_builder(sanitize=True)`` compiles the extension into a copy of its
top-level package in a scratch directory, and a child ``python`` that imports the copy first
runs the fast path's tests against it, with the ASan runtime preloaded. The caller checks that
the child loaded the sanitized module, passed, and printed no report
(:func:`assert_clean_under_sanitizers`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from tests.tcp_migrate.test_sanitizers import REPORT_MARKERS, libasan

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 300

CHILD = """
import importlib, sys
sys.path.insert(0, sys.argv[1])
module = importlib.import_module(sys.argv[2])
print("sanitized fast path:", module.__file__, flush=True)
import pytest
sys.exit(pytest.main(sys.argv[3:]))
"""


def sanitized_site(root: Path, build: ModuleType, module: str) -> Path:
    """A directory under ``root`` holding a copy of ``module``'s top-level package (module:
    dotted, e.g. ``labnet.hub._fast``) whose extension ``build`` compiled with the sanitizers."""
    libasan()  # skips (or fails, in CI) before compiling when gcc or libasan is missing
    package, *inner = module.split(".")[:-1]
    site = root / "site"
    shutil.copytree(
        REPO / package, site / package, ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    built = Path(
        build.make_builder(absolute_sources=True, sanitize=True).compile(tmpdir=str(root / "build"))
    )
    assert b"__asan_init" in built.read_bytes(), "the fast path was built without ASan"
    shutil.copy(built, site.joinpath(package, *inner))
    return site


def assert_clean_under_sanitizers(site: Path, module: str, tests: Path) -> None:
    """``tests`` run in a child that imports ``module`` from ``site`` first: it loaded the
    sanitized module, passed, and no sanitizer reported."""
    env = {
        "LD_PRELOAD": libasan(),
        "PYTHONMALLOC": "malloc",
        "ASAN_OPTIONS": "detect_leaks=0:quarantine_size_mb=64:abort_on_error=1",
        "UBSAN_OPTIONS": "print_stacktrace=1:abort_on_error=1",
    }
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(site), module, "-p", "no:cacheprovider", "-q",
         "--capture=sys", str(tests)],
        cwd=REPO,
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    output = child.stdout
    location = site.joinpath(*module.split(".")[:-1])
    assert f"sanitized fast path: {location}{os.sep}_fast" in output, output[-5000:]
    reports = [line for line in output.splitlines() if any(m in line for m in REPORT_MARKERS)]
    assert not reports, output[-20000:]
    assert child.returncode == 0, output[-20000:]
