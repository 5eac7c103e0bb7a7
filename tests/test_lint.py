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


def test_roles_are_told_apart_only_by_the_registry() -> None:
    """No ``role == "..."`` test and no isinstance on a role engine outside the role registry
    (mip6/runtime/roles): everything asks the registry entry."""
    import re

    pattern = re.compile(
        r"role\s*[!=]=|isinstance\([^)]*\b(MobileNode|HomeAgent|CorrespondentNode)\b"
    )
    registry = ROOT / "mip6" / "runtime" / "roles"
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in ("mip6", "labnet")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if registry not in path.parents
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
