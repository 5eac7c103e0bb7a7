"""Running cases against a target and collecting verdicts."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from conformance.case import Case, Check, Expect, PreconditionFailed
from conformance.iut import IutControl, SimControl
from conformance.tester import Received, Tester
from conformance.transport import ADDRESSES, Addresses, SimTransport, Transport

PASS, FAIL, INCONCLUSIVE, ERROR = "pass", "fail", "inconclusive", "error"


@dataclass(slots=True)
class Result:
    case: Case
    verdict: str
    findings: list[str] = field(default_factory=list)  # one line per expectation
    sent: list[tuple[float, str]] = field(default_factory=list)
    received: list[str] = field(default_factory=list)  # during the stimulus window
    setup_received: int = 0  # packets seen while setting up


class Target:
    """Opens a fresh (transport, IUT control, tester addresses) for one case. ``jobs``: how
    many cases may run at once (each has its own transport); ``stale_wait``: how long until
    the IUT has expired a nonce (see :attr:`conformance.tester.Tester.nonce_expiry_wait`)."""

    name = "target"
    plan: Addresses = ADDRESSES
    jobs = 1
    stale_wait = 300.0

    def open(
        self, role: str, iut_config: dict[str, Any] | None = None
    ) -> tuple[Transport, IutControl]:
        """A fresh IUT of ``role`` (with ``iut_config`` on top of the target's own settings:
        keys of the role's block in a ``mip6 run`` configuration) and the tester's transport."""
        raise NotImplementedError

    def notes(self, role: str) -> list[str]:
        return []


class SimTarget(Target):
    """Our own roles in labnet's sim backend, one fresh lab per case. ``patch`` is called
    with each new transport before the case runs (the mutation run injects faults there)."""

    name = "sim"

    def __init__(self, *, seed: int = 0, patch: Callable[[SimTransport], Any] | None = None):
        self.seed = seed
        self.patch = patch

    def open(
        self, role: str, iut_config: dict[str, Any] | None = None
    ) -> tuple[Transport, IutControl]:
        transport = SimTransport(role, seed=self.seed, plan=self.plan, iut_config=iut_config)
        if self.patch is not None:
            self.patch(transport)
        return transport, SimControl(transport)

    def notes(self, role: str) -> list[str]:
        notes = [
            "IUT: this project's engine in labnet's sim backend (virtual time, seed "
            f"{self.seed}); one fresh lab per case."
        ]
        if role == "ha":
            notes.append(
                "The home agent runs with HomeAgentConfig.allow_unprotected_registration=True "
                "(the sim lab has no ESP keys): home registrations are sent without RFC 3776 "
                "ESP protection. HA-SEC-01 runs it with protection required and checks that "
                "an unprotected registration is discarded."
            )
        return notes


def tester_for(role: str, transport: Transport, plan: Addresses) -> Tester:
    if role == "cn":
        return Tester(
            transport,
            peer=plan.correspondent,
            home_address=plan.home_address,
            care_of_address=plan.care_of,
        )
    if role == "ha":
        return Tester(
            transport,
            peer=plan.home_agent,
            home_address=plan.home_address,
            care_of_address=plan.care_of,
            correspondent=plan.tester_correspondent,
        )
    return Tester(
        transport,
        peer=plan.care_of,
        home_address=plan.home_address,
        care_of_address=plan.care_of,
        correspondent=plan.tester_correspondent,
        home_agent=plan.home_agent,
    )


def run_case(case: Case, target: Target) -> Result:
    try:
        transport, iut = target.open(case.role, dict(case.iut_config))
    except Exception as error:  # the IUT did not start: this case cannot run, the others may
        return Result(case, ERROR, [f"error: the target did not start: {error}"])
    tester = tester_for(case.role, transport, target.plan)
    tester.iut = iut
    tester.nonce_expiry_wait = target.stale_wait
    result = Result(case, PASS)
    try:
        for precondition in case.preconditions:
            precondition.apply(tester, iut)
        result.setup_received = len(tester.received_log)
        mark = len(tester.sent_log)
        got = tester.exchange(case.stimulus(tester), case.timeout)
        result.sent = tester.sent_log[mark:]
        result.received = [r.summary() for r in got]
        for expectation in case.expect:
            hits = (
                []
                if isinstance(expectation, Check)
                else [r for r in got if _safe(expectation.match, tester, r)]
            )
            if isinstance(expectation, Check):
                ok = _safe_check(expectation, tester, got)
                result.findings.append(
                    f"{'ok' if ok else 'NOT MET'}: expected {expectation.description}"
                )
            elif isinstance(expectation, Expect):
                ok = bool(hits)
                result.findings.append(
                    f"{'ok' if ok else 'MISSING'}: expected {expectation.description}"
                )
            else:
                ok = not hits
                seen = "" if ok else f" (got {hits[0].summary()})"
                result.findings.append(
                    f"{'ok' if ok else 'VIOLATED'}: expected {expectation.description}{seen}"
                )
            if not ok:
                result.verdict = FAIL
    except PreconditionFailed as failure:
        result.verdict = INCONCLUSIVE
        result.findings.append(f"precondition failed: {failure}")
        result.sent = tester.sent_log
    except Exception as error:  # a tester bug or an IUT crash: report, do not stop the run
        result.verdict = ERROR
        result.findings.append(f"error: {type(error).__name__}: {error}")
    finally:
        transport.close()
    return result


def _safe(match: Callable[[Tester, Received], bool], tester: Tester, got: Received) -> bool:
    try:
        return bool(match(tester, got))
    except Exception:  # a packet scapy cannot dissect does not match
        return False


def _safe_check(check: Check, tester: Tester, got: list[Received]) -> bool:
    try:
        return bool(check.check(tester, got))
    except Exception:
        return False


def select(cases: Iterable[Case], role: str | None, pattern: str | None) -> list[Case]:
    chosen = [c for c in cases if role in (None, "all", c.role)]
    if pattern:
        patterns = [p.strip() for p in pattern.split(",") if p.strip()]
        chosen = [
            c
            for c in chosen
            if any(fnmatch.fnmatch(c.id, p) or p.lower() in c.id.lower() for p in patterns)
        ]
    return chosen


def run_cases(cases: Iterable[Case], target: Target) -> list[Result]:
    """Every case's result, in the order given; up to ``target.jobs`` at a time, the longest
    first (:meth:`Case.expected_seconds`), so that a minute-long case started last does not
    keep the run going alone."""
    cases = list(cases)
    if target.jobs <= 1:
        return [run_case(case, target) for case in cases]
    longest_first = sorted(
        range(len(cases)), key=lambda i: -cases[i].expected_seconds(target.stale_wait)
    )
    results: list[Result | None] = [None] * len(cases)
    with ThreadPoolExecutor(max_workers=target.jobs) as pool:
        futures = {i: pool.submit(run_case, cases[i], target) for i in longest_first}
        for i, future in futures.items():
            results[i] = future.result()
    return [result for result in results if result is not None]
