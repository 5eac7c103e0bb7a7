"""The code base stays ruff clean (pyproject.toml [tool.ruff])."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .conftest import require

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_check_is_clean() -> None:
    ruff = shutil.which("ruff")
    require(ruff is not None, "ruff is not installed (pip install -e '.[test]')")
    assert ruff is not None
    result = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
