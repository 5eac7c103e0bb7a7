"""The conformance suite against our own roles in the sim backend, the mutation run, the CLI
and the IUT control hooks."""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import re
from ipaddress import IPv6Address
from pathlib import Path

import pytest

import conformance
from conformance import __main__ as cli
from conformance import runner
from conformance.cases_cn import CASES as CN_CASES
from conformance.cases_ha import CASES as HA_CASES
from conformance.cases_mn import CASES as MN_CASES
from conformance.iut import DaemonControl, ManualControl
from conformance.mutate import all_faults, mutate
from conformance.runner import ERROR, FAIL, PASS, SimTarget, run_case, run_cases

PACKAGE = Path(conformance.__file__).parent


@pytest.mark.parametrize(
    ("cases", "minimum"), [(CN_CASES, 25), (HA_CASES, 20), (MN_CASES, 15)], ids=["cn", "ha", "mn"]
)
def test_every_case_passes_against_our_role_on_the_sim_backend(cases, minimum) -> None:  # type: ignore[no-untyped-def]
    assert len(cases) >= minimum
    results = run_cases(cases, SimTarget())
    failed = {r.case.id: r.findings for r in results if r.verdict != PASS}
    assert failed == {}


def test_case_ids_are_unique_and_name_their_role() -> None:
    ids = [c.id for c in conformance.ALL_CASES]
    assert len(ids) == len(set(ids))
    for case in conformance.ALL_CASES:
        assert case.id.startswith(case.role.upper() + "-")
        assert case.level in ("MUST", "SHOULD", "MAY")
        assert case.requirement and case.rfc_section and case.expect
        with pytest.raises(dataclasses.FrozenInstanceError):
            case.timeout = 1.0  # type: ignore[misc]


def test_mutation_run_catches_every_injected_fault() -> None:
    by_role: dict[str, list] = {}
    for case in conformance.ALL_CASES:
        by_role.setdefault(case.role, []).append(case)
    baseline, results = mutate(by_role)
    assert baseline == []
    assert len(results) == len(all_faults()) >= 12
    assert [r.fault.name for r in results if not r.caught] == []


def test_a_faulty_engine_fails_the_case_with_a_readable_finding() -> None:
    case = next(c for c in CN_CASES if c.id == "CN-BU-131-01")

    def fault(transport) -> None:  # type: ignore[no-untyped-def]
        transport.engine._is_home_agent = True

    result = run_case(case, SimTarget(patch=fault))
    assert result.verdict == FAIL
    assert result.findings == ["MISSING: expected BA status 131"]


def test_cli_run_writes_report_junit_and_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    report, junit = tmp_path / "cn.md", tmp_path / "cn.xml"
    status = cli.main(
        ["run", "--role", "cn", "--target", "sim", "--cases", "CN-RR-*,WRAP",
         "--report", str(report), "--junit", str(junit), "--json"]
    )  # fmt: skip
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cases"] == summary["passed"] == 8
    assert summary["failed"] == 0 and summary["roles"]["cn"]["passed"] == 8
    text = report.read_text()
    assert "### CN-BU-SEQ-WRAP-01" in text and "Verdict: **PASS**" in text
    assert "free running counter represented modulo 65536" in text
    assert re.search(r"t=\d+\.\d+ 2001:db8:3::5 > 2001:db8:2::1", text)
    assert junit.read_text().count("<testcase") == 8


def test_cli_exit_status_is_non_zero_when_a_case_fails(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    def faulty(spec: str, jobs: int | None) -> SimTarget:
        return SimTarget(patch=lambda t: setattr(t.engine, "_is_home_agent", True))

    monkeypatch.setattr(cli, "_target", faulty)
    assert cli.main(["run", "--role", "cn", "--target", "sim", "--cases", "CN-BU-131*"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_cli_mutate_json_lists_faults_and_caught(capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["mutate", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["caught"] == result["total"] == len(result["faults"]) >= 12


def test_ha_report_says_unprotected_registration_is_allowed(tmp_path: Path) -> None:
    report = tmp_path / "ha.md"
    assert cli.main(["run", "--role", "ha", "--target", "sim", "--cases", "HA-BU-ACCEPT-01",
                     "--report", str(report)]) == 0  # fmt: skip
    assert "allow_unprotected_registration=True" in report.read_text()


def test_manual_control_prints_the_instruction_and_waits() -> None:
    out, waited = io.StringIO(), []
    control = ManualControl(out=out, wait=lambda: waited.append(True))
    control.move(IPv6Address("2001:db8:3::5"))
    control.start_route_optimization(IPv6Address("2001:db8:2::99"))
    assert "move the mobile node to 2001:db8:3::5" in out.getvalue()
    assert "route optimization with 2001:db8:2::99" in out.getvalue()
    assert waited == [True, True]


def test_daemon_control_speaks_the_control_socket_protocol(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import mip6.runtime.control

    requests = []
    monkeypatch.setattr(
        mip6.runtime.control,
        "control_request",
        lambda path, request: requests.append((path, request)) or {},
    )
    control = DaemonControl("/run/mip6.sock")
    control.move(None)
    control.move(IPv6Address("2001:db8:3::5"))
    control.start_route_optimization(IPv6Address("2001:db8:2::99"))
    control.register()
    assert requests == [
        ("/run/mip6.sock", {"move": None}),
        ("/run/mip6.sock", {"move": "2001:db8:3::5"}),
        ("/run/mip6.sock", {"route_optimize": "2001:db8:2::99"}),
        ("/run/mip6.sock", {"register": True}),
    ]


@pytest.mark.parametrize(
    "name", ["tester.py", "match.py", "case.py", "runner.py", "report.py",
             "cases_cn.py", "cases_ha.py", "cases_mn.py"]
)  # fmt: skip
def test_tester_and_cases_do_not_build_or_check_packets_with_our_codec(name: str) -> None:
    # The issue: built on scapy, not on mip6.wire, "so a codec bug cannot hide itself".
    imported = set()
    for node in ast.walk(ast.parse((PACKAGE / name).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not {m for m in imported if m.startswith(("mip6.wire", "mip6.core"))}


def test_parallel_run_starts_longest_case_first_and_keeps_result_order(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    started: list[str] = []

    def recorded(case, target):  # type: ignore[no-untyped-def]
        started.append(case.id)
        return runner.Result(case, ERROR)

    monkeypatch.setattr(runner, "run_case", recorded)
    target = SimTarget()
    target.jobs, target.stale_wait = 2, 9.0
    results = run_cases(CN_CASES, target)
    assert [r.case.id for r in results] == [c.id for c in CN_CASES]
    # CN-BRR-01 (40 s of stimulus, 15 s timeout) is started first, though listed last
    assert started[0] == "CN-BRR-01" == CN_CASES[-1].id
    assert CN_CASES[-1].expected_seconds(9.0) == 55.0


def test_manual_control_runs_action_script_with_values_else_asks_its_fallback() -> None:
    calls: list[str] = []

    class Fallback(DaemonControl):
        def _request(self, request: dict[str, object]) -> None:
            calls.append(json.dumps(request))

    control = ManualControl(
        {"move": "true {interface} {address}"}, values={"interface": "eth9"}, fallback=Fallback("")
    )
    control.move(IPv6Address("2001:db8:4::5"))  # the script (true: exits 0)
    control.register()  # no script: the daemon's control socket
    control.start_route_optimization(IPv6Address("2001:db8:2::99"))
    assert calls == ['{"register": true}', '{"route_optimize": "2001:db8:2::99"}']
