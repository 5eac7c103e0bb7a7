"""Reports: a Markdown test specification with verdicts, JUnit XML and a JSON summary."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from xml.etree import ElementTree as ET

from conformance.runner import PASS, Result

ROLE_NAMES = {"cn": "Correspondent node", "ha": "Home agent", "mn": "Mobile node"}


def summary(results: list[Result]) -> dict[str, Any]:
    by_role: dict[str, Counter[str]] = {}
    for r in results:
        by_role.setdefault(r.case.role, Counter())[r.verdict] += 1
    return {
        "cases": len(results),
        "passed": sum(r.verdict == PASS for r in results),
        "failed": sum(r.verdict != PASS for r in results),
        "roles": {
            role: {
                "cases": sum(c.values()),
                "passed": c["pass"],
                "failed": sum(c.values()) - c["pass"],
                "verdicts": dict(c),
            }
            for role, c in by_role.items()
        },
        "results": [
            {
                "id": r.case.id,
                "role": r.case.role,
                "rfc_section": r.case.rfc_section,
                "level": r.case.level,
                "verdict": r.verdict,
                "findings": r.findings,
            }
            for r in results
        ],
    }


def to_json(results: list[Result]) -> str:
    return json.dumps(summary(results), indent=2)


def to_junit(results: list[Result], target: str) -> str:
    suites = ET.Element("testsuites", name="RFC 3775 conformance")
    for role in dict.fromkeys(r.case.role for r in results):
        mine = [r for r in results if r.case.role == role]
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"conformance.{role}",
            tests=str(len(mine)),
            failures=str(sum(r.verdict == "fail" for r in mine)),
            errors=str(sum(r.verdict in ("error", "inconclusive") for r in mine)),
        )
        for r in mine:
            case = ET.SubElement(
                suite, "testcase", classname=f"conformance.{role}.{target}", name=r.case.id
            )
            detail = "\n".join(r.findings + ["sent:"] + [s for _, s in r.sent])
            detail += "\nreceived:\n" + "\n".join(r.received)
            if r.verdict == "fail":
                ET.SubElement(case, "failure", message=r.case.title).text = detail
            elif r.verdict != PASS:
                ET.SubElement(case, "error", message=r.verdict).text = detail
            ET.SubElement(
                case, "system-out"
            ).text = f"RFC 3775 {r.case.rfc_section} ({r.case.level}): {r.case.requirement}"
    return ET.tostring(suites, encoding="unicode")


def to_markdown(results: list[Result], target: str, notes: dict[str, list[str]]) -> str:
    s = summary(results)
    lines = [
        "# RFC 3775 conformance report",
        "",
        f"Target: `{target}`. {s['cases']} cases, {s['passed']} passed, {s['failed']} not passed.",
        "",
        "Each case checks one requirement of RFC 3775 (section, level, and the sentence, "
        "quoted where in quotation marks and paraphrased otherwise: the RFC text is the "
        "authority). The tester builds and checks packets with scapy and its own checksum and "
        "return routability code, independent of the implementation under test.",
        "",
    ]
    for role in dict.fromkeys(r.case.role for r in results):
        mine = [r for r in results if r.case.role == role]
        counts = s["roles"][role]
        lines += [
            f"## {ROLE_NAMES.get(role, role)} ({counts['passed']}/{counts['cases']} passed)",
            "",
        ]
        lines += [f"- {note}" for note in notes.get(role, [])]
        lines += ["", "| case | section | level | verdict |", "|---|---|---|---|"]
        lines += [
            f"| [{r.case.id}](#{r.case.id.lower()}) | {r.case.rfc_section} | {r.case.level} "
            f"| {r.verdict.upper()} |"
            for r in mine
        ]
        lines.append("")
        for r in mine:
            c = r.case
            lines += [
                f"### {c.id}",
                "",
                f"**{c.title}** (RFC 3775 {c.rfc_section}, {c.level})",
                "",
                f"> {c.requirement}",
                "",
            ]
            if c.iut_config:
                settings = ", ".join(f"`{key}: {value}`" for key, value in c.iut_config)
                lines.append(f"IUT configured with {settings}.")
                lines.append("")
            if c.preconditions:
                lines.append("Preconditions:")
                lines += [f"- {p.describe()}" for p in c.preconditions]
                lines.append("")
            lines += [f"Stimulus: {c.stimulus_text}.", ""]
            lines.append(f"Expected within {c.timeout:g} s:")
            lines += [f"- {e.description}" for e in c.expect]
            lines += ["", "Sent:", "```"]
            lines += [f"t={t:.3f} {line}" for t, line in r.sent] or ["(nothing)"]
            lines += ["```", "Came back:", "```"]
            lines += r.received or ["(nothing)"]
            lines += ["```", "Findings:"]
            lines += [f"- {f}" for f in r.findings]
            lines += ["", f"Verdict: **{r.verdict.upper()}**", ""]
    return "\n".join(lines) + "\n"
