"""tshark as the tests' independent reader of captures: header fields of the packets a display
filter selects, with TCP reassembly off (the filters read headers only, and reassembling a
50 MB HTTP body cost 40 s per pass over a lab's client capture)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def tshark_fields(pcap: str | Path, display_filter: str, *fields: str) -> list[list[str]]:
    """One row per packet ``display_filter`` selects: ``fields`` (the frame number if none)."""
    argv = ["tshark", "-n", "-o", "tcp.desegment_tcp_streams:FALSE", "-r", str(pcap)]
    argv += ["-Y", display_filter, "-T", "fields"]
    for name in fields or ("frame.number",):
        argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]
