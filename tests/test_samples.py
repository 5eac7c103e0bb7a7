"""The shipped sample capture is exactly what mip6.samples builds (no stale binary)."""

from __future__ import annotations

from pathlib import Path

from mip6 import samples


def test_shipped_sample_matches_generator(tmp_path: Path) -> None:
    fresh = tmp_path / "sample.pcap"
    samples.write(fresh)
    assert fresh.read_bytes() == samples.shipped_path().read_bytes()
