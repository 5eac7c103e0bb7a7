"""``labnet demo --backend netns``: the roaming scenario with real kernels, narrated from the
hub's captures; every ping answered, each step's signalling shown once, nothing left behind."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from labnet import demo_netns
from tests.runtime.netns import require_root, sh

pytestmark = pytest.mark.netns


def test_netns_demo_narrates_the_roaming_scenario(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    require_root()
    monkeypatch.setenv("LABNET_STATE_DIR", str(tmp_path))
    before = sh("ip", "netns", "list").stdout
    out = io.StringIO()
    assert demo_netns.run(out, name=f"demo-test-{os.getpid()}") == 4
    text = out.getvalue()
    lines = text.splitlines()
    # the sender's record of each packet, once: one home registration at up, one after the move
    home_bus = [line for line in lines if "mn -> ha" in line and "MH BU" in line and " H " in line]
    assert len(home_bus) == 3, text  # registration, re-registration from visited2, from home
    assert any("ACoA 2001:db8:4::5" in line for line in home_bus)
    assert any(
        "ha -> mn" in line and "IP6-in-IP6" in line and "echo request" in line for line in lines
    )
    assert any(
        "cn -> mn" in line and "echo request" in line and "RH2 2001:db8:1::5" in line
        for line in lines
    )
    assert any(
        "mn -> cn" in line and "echo reply" in line and "HAO 2001:db8:1::5" in line
        for line in lines
    )
    assert any("mn -> cn" in line and "lifetime 0s" in line for line in lines)
    assert "4 of 4 pings answered" in text
    assert sh("ip", "netns", "list").stdout == before
    assert not list(tmp_path.glob("*.json"))  # the lab's state file is gone
