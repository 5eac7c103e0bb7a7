"""The hub's C fast path under AddressSanitizer and UndefinedBehaviorSanitizer: test_hub_fast.py,
garbage, the loop's wait in C and batched bursts of up to 60,000-byte datagrams included,
against ``labnet.hub._fast`` built with the sanitizers (tests/sanitized_fast_path.py says
how)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labnet.hub import _fast_build
from tests.sanitized_fast_path import assert_clean_under_sanitizers, sanitized_site

MODULE = "labnet.hub._fast"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sanitized_site(tmp_path_factory.mktemp("sanitized"), _fast_build, MODULE)


def test_fast_path_tests_pass_under_sanitizers_without_reports(site: Path) -> None:
    tests = Path(__file__).resolve().parent / "test_hub_fast.py"
    assert_clean_under_sanitizers(site, MODULE, tests)
