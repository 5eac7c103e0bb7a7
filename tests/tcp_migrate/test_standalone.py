"""tcp_migrate depends on nothing of mip6 (dependencies point down: mip6 may use tcp_migrate,
never the reverse), checked twice: at run time, importing the package and its stack and TUN
driver in a fresh interpreter, and in the source, where an import that only runs on some path
would escape the first check."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tcp_migrate"

_IMPORT_CHECK = (
    "import sys, tcp_migrate, tcp_migrate.stack, tcp_migrate.tun; "
    "assert not any(m == 'mip6' or m.startswith('mip6.') for m in sys.modules), "
    "sorted(m for m in sys.modules if m.split('.')[0] == 'mip6'); "
    "print(tcp_migrate.__file__)"
)


def mip6_imports(source: str) -> list[int]:
    """Line numbers of the imports of ``mip6`` or a module under it in ``source``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == "mip6" or name.startswith("mip6.") for name in names):
            lines.append(node.lineno)
    return sorted(lines)


def test_import_stack_and_tun_loads_no_mip6_module() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHECK], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    # The interpreter imported this tree's package, not an installed copy elsewhere.
    assert Path(result.stdout.strip()).parent == PACKAGE


def test_source_has_no_import_of_mip6() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert PACKAGE / "stack.py" in files
    found = {
        str(path.relative_to(ROOT)): lines
        for path in files
        if (lines := mip6_imports(path.read_text()))
    }
    assert found == {}


def test_import_check_finds_every_form_of_import() -> None:
    source = (
        "import mip6\n"
        "import os, mip6.wire.walk as w\n"
        "from mip6.wire.errors import WireError\n"
        "def f():\n"
        "    from mip6 import wire\n"
        "import mip6x\n"
        "from . import mip6\n"
    )
    assert mip6_imports(source) == [1, 2, 3, 5]
