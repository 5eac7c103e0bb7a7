"""The daemon's C fast path (mip6/runtime/csrc/daemon_fast.c) under AddressSanitizer and
UndefinedBehaviorSanitizer: test_fast_path.py, hypothesis' mutated packets included, and
test_fast_host.py (its TCP host, whose connections are tcp_migrate's unsanitized core) and
test_fast_relay.py (the proxy's relay, llhttp httptools' unsanitized copy), against
``mip6.runtime._fast`` built with the sanitizers (tests/sanitized_fast_path.py says how)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mip6.runtime import _fast_build
from tests.sanitized_fast_path import assert_clean_under_sanitizers, sanitized_site

MODULE = "mip6.runtime._fast"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sanitized_site(tmp_path_factory.mktemp("sanitized"), _fast_build, MODULE)


def test_fast_path_tests_pass_under_sanitizers_without_reports(site: Path) -> None:
    tests = Path(__file__).resolve().parent / "test_fast_path.py"
    assert_clean_under_sanitizers(site, MODULE, tests)


def test_fast_host_tests_pass_under_sanitizers_without_reports(site: Path) -> None:
    tests = Path(__file__).resolve().parent / "test_fast_host.py"
    assert_clean_under_sanitizers(site, MODULE, tests)


def test_fast_relay_tests_pass_under_sanitizers_without_reports(site: Path) -> None:
    tests = Path(__file__).resolve().parent / "test_fast_relay.py"
    assert_clean_under_sanitizers(site, MODULE, tests)
