"""tshark as the oracle for a chart's Mobile IPv6 arrows: every Mobility Header it decodes in
per-link captures, against the arrows of ours (each seen on its sender's link and again on its
receiver's)."""

from __future__ import annotations

import subprocess
from decimal import Decimal
from pathlib import Path

from mip6.chart.model import Chart, Message

_TYPES = {"HoTI": 1, "CoTI": 2, "HoT": 3, "CoT": 4, "BU": 5, "BA": 6}
_FIELDS = (
    "frame.time_epoch",
    "mip6.mhtype",
    "mip6.bu.seqnr",
    "mip6.ba.seqnr",
    "mip6.hoti.cookie",
    "mip6.hot.cookie",
    "mip6.coti.cookie",
    "mip6.cot.cookie",
)

Record = tuple[str, int, int, str]  # link, time ns, MH type, sequence number or cookie


def theirs(links: dict[str, Path], tshark: str) -> list[Record]:
    """What tshark decodes in each link's capture (cookies by their first 4 bytes, as ours)."""
    found = []
    for link, path in links.items():
        argv = [tshark, "-n", "-r", str(path), "-Y", "mipv6", "-T", "fields"]
        for field in _FIELDS:
            argv += ["-e", field]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            stamp, kind, *rest = line.split("\t")
            detail = next((value for value in rest if value), "")
            detail = detail[2:10] if detail.startswith("0x") else detail
            found.append((link, int(Decimal(stamp) * 10**9), int(kind), detail))
    return found


def _type_and_detail(message: Message) -> tuple[int, str] | None:
    words = message.text.removeprefix("tunnel: ").split()
    if words[0] not in _TYPES:
        return None
    # BU seq N ..., BA <status> seq N ..., HoTI/HoT/CoTI/CoT cookie C ...
    detail = words[words.index("seq" if words[0] in ("BU", "BA") else "cookie") + 1]
    return _TYPES[words[0]], detail


def ours(chart: Chart) -> list[Record]:
    found = []
    for message in chart.items:
        if not isinstance(message, Message):
            continue
        typed = _type_and_detail(message)
        if typed is not None:
            found.append((message.sender, message.start_ns, *typed))
            found.append((message.receiver, message.end_ns, *typed))
    return found
