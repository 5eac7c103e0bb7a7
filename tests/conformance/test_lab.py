"""The whole conformance suite against our daemons in labnet netns labs (``--target lab``), as
a user runs it: the CLI in a subprocess, JSON summary and Markdown report; then nothing of the
labs is left (namespaces, processes, state)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import conformance
from tests.runtime.netns import require_root, sh

pytestmark = pytest.mark.netns


def _namespaces() -> set[str]:
    return {line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines() if line}


def test_every_case_passes_against_our_daemons_in_a_lab(tmp_path: Path) -> None:
    require_root()
    before = _namespaces()
    state = tmp_path / "labnet-state"
    report = tmp_path / "report.md"
    command = ["run", "--role", "all", "--target", "lab", "--json", "--report", str(report)]
    run = subprocess.run(
        [sys.executable, "-m", "conformance", *command],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "LABNET_STATE_DIR": str(state)},
    )
    summary = json.loads(run.stdout)
    failed = {r["id"]: r["findings"] for r in summary["results"] if r["verdict"] != "pass"}
    assert failed == {}, run.stderr[-3000:]
    assert run.returncode == 0
    by_role: dict[str, int] = {}
    for case in conformance.ALL_CASES:
        by_role[case.role] = by_role.get(case.role, 0) + 1
    assert summary["cases"] == summary["passed"] == len(conformance.ALL_CASES)
    assert {role: r["passed"] for role, r in summary["roles"].items()} == by_role
    text = report.read_text()
    assert "labnet netns lab" in text and "MAX_NONCE_LIFETIME = 6 s" in text
    assert text.count("Verdict: **PASS**") == len(conformance.ALL_CASES)
    # every lab taken down: no namespace, no state file or directory, no daemon or hub
    assert _namespaces() == before
    assert list(state.iterdir()) == []
    leftover = sh("pgrep", "-f", str(state), check=False).stdout.split()
    assert leftover == []
