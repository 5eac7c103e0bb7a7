"""``labnet demo dserver``: the distributed server narrated on the simulator. Each step's key
explanations come in the story's order, the download arrives whole through two handoffs, the
same seed prints the same text, and ``labnet demo [roaming|dserver]`` dispatches."""

from __future__ import annotations

import hashlib
import io
import re

import pytest

from labnet import cli, demo_dserver
from mip6.apps.http import generated_body

SHA256 = hashlib.sha256(b"".join(generated_body(demo_dserver.SIZE, 1))).hexdigest()


@pytest.fixture(scope="module")
def narrated() -> tuple[str, demo_dserver.Played]:
    out = io.StringIO()
    played = demo_dserver.run(out, seed=3)
    return out.getvalue(), played


def _logical(text: str) -> list[str]:
    """The output's lines with wrapped reasons and titles joined again (a continuation is
    indented 8 or more and does not start a reason)."""
    lines: list[str] = []
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if lines and indent >= 8 and not line.lstrip().startswith(". "):
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines


def _positions(lines: list[str], checks: list[tuple[str, ...]]) -> list[int]:
    """For each check (strings that must all be on one line), the first such line at or after
    the previous check's line."""
    found = []
    at = 0
    for words in checks:
        index = next(
            (i for i in range(at, len(lines)) if all(word in lines[i] for word in words)), None
        )
        assert index is not None, f"{words} not found after line {at}:\n" + "\n".join(lines)
        found.append(index)
        at = index
    return found


def test_steps_come_in_order_with_their_explanations(narrated) -> None:  # type: ignore[no-untyped-def]
    text, played = narrated
    assert played.ok
    lines = _logical(text)
    _positions(
        lines,
        [
            # 1. registration of C at the home agent
            ("1. The contact node m1 registers C",),
            ("m1 -> ha", "MH BU", " H ", "HAO 2001:db8:1::80"),
            ("home registration",),
            ("ha -> m1", "MH BA status 0"),
            # 2. the client's SYN to C, tunnelled by the home agent to m1
            ("2. The client connects to C",),
            ("client -> ha", "2001:db8:1::80", "[S]"),
            ("ha -> m1", "IP6-in-IP6", "[S]"),
            ("RFC 2473",),
            # 3. route optimization by the contact node, as a mobile node with home address C
            ("3. m1 starts route optimization",),
            ("m1 -> ha", "IP6-in-IP6", "MH HoTI"),
            ("mobile node whose",),
            ("m1 -> client", "MH CoTI"),
            ("m1 -> client", "MH BU", "HAO 2001:db8:1::80"),
            ("client -> m1", "MH BA status 0"),
            ("data segment", "m1 -> client"),
            # 4. handoff m1 -> m2
            ("4. The demo asks m1 to hand the client to m2",),
            ("member channel:", "PREPARE"),
            ("m2 -> m1", "IP6-in-IP6", "MH HoTI"),
            ("tunnels it to the contact node m1, the relay",),
            ("m2 -> client", "MH CoTI"),
            ("m1 -> ha", "IP6-in-IP6", "MH HoTI"),
            ("relay table",),
            ("client -> m2", "MH CoT"),
            ("ha -> m1", "IP6-in-IP6", "MH HoT "),
            ("m1 -> m2", "IP6-in-IP6", "MH HoT "),
            ("tunnels the HoT to", "m2"),
            ("member channel:", "PREPARED"),
            ("member channel:", "INIT"),
            ("m2 -> client", "MH BU", "HAO 2001:db8:1::80"),
            ("Binding Update from m2's own address with C in the Home Address",),
            ("client -> m2", "MH BA status 0"),
            ("m2 serves the client now",),
            ("data segment", "m2 -> client"),
            ("member channel:", "DONE"),
            # 5. the second handoff, m2 -> m3
            ("5. A second handoff, m2 to m3",),
            ("member channel:", "PREPARE"),
            ("m3 -> m1", "IP6-in-IP6", "MH HoTI"),
            ("m3 -> client", "MH BU", "HAO 2001:db8:1::80"),
            ("client -> m3", "MH BA status 0"),
            ("data segment", "m3 -> client"),
            ("member channel:", "DONE"),
            # 6. the download completes, one connection, no RST
            ("6. The response ends",),
            ("Download complete", "1,000,000 bytes", f"sha256 {SHA256}"),
            ("one TCP connection throughout", "never a RST"),
            ("Summary: packets sent",),
            ("m1 -> m2: asked at", "PREPARE at m2"),
            ("client-observed gap",),
            ("m2 -> m3: asked at", "PREPARE at m3"),
            ("client-observed gap",),
        ],
    )
    # the client's binding moves member to member: BUs from m1, m2, m3 with C as home address
    bus = [line for line in lines if "-> client" in line and "MH BU" in line]
    assert [line.split("->")[0].split()[-1] for line in bus] == ["m1", "m2", "m3"]
    assert all("HAO 2001:db8:1::80" in line for line in bus)
    assert not any(re.search(r"TCP \d+ > \d+ \[[A-Z]*R", line) for line in lines)


def test_data_is_summarized_in_runs(narrated) -> None:  # type: ignore[no-untyped-def]
    text, _ = narrated
    assert len(text.splitlines()) < 400  # 1 MB is over a thousand packets
    assert "data segments m3 -> client" in text
    # no single response segment of 1428 bytes is printed on its own
    assert not any(line.endswith("len 1428 HAO 2001:db8:1::80") for line in text.splitlines())


def test_same_seed_same_output(narrated) -> None:  # type: ignore[no-untyped-def]
    text, _ = narrated
    again = io.StringIO()
    demo_dserver.run(again, seed=3)
    assert again.getvalue() == text
    other = io.StringIO()
    demo_dserver.run(other, seed=4)
    assert other.getvalue() != text  # other random values (sequence numbers, cookies)
    assert f"sha256 {SHA256}" in other.getvalue()


def test_cli_dispatch(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "dserver"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("labnet demo dserver:") and "seed 1" in out
    assert cli.main(["demo", "dserver", "--backend", "netns"]) == 2
    assert "not available on the netns backend yet" in capsys.readouterr().err
    assert cli.main(["demo", "roaming", "--seed", "2"]) == 0
    assert "4 of 4 pings answered" in capsys.readouterr().out
    assert cli.main(["demo"]) == 0  # roaming, as before
    assert capsys.readouterr().out.startswith("labnet demo: topology 'roaming'")
