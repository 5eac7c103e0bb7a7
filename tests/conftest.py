"""Shared test policy: tests that need a tool or root skip with a reason on a developer's box,
but fail in CI (CI=true), where README's test command installs everything and runs as root."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip (locally) or fail (in CI) unless ``condition`` holds."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must be able to run this test: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tshark() -> str:
    path = shutil.which("tshark")
    require(path is not None, "tshark is not installed (apt-get install tshark)")
    assert path is not None
    return path
