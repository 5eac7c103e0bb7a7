"""``labnet bench tcp``: the parts that need no root run here briefly; the whole run (TUN,
namespaces, TCP_REPAIR) is exercised as root."""

from __future__ import annotations

import pytest

from labnet.bench import tcp
from tests.runtime.netns import require_root


def test_snapshot_figures_sizes_and_timings():
    figures = tcp.snapshot_figures(0.05)
    assert figures["export_us"] > 0 and figures["import_us"] > 0
    assert figures["state_bytes_empty"] < 200
    assert figures["state_bytes_full"] > figures["full_send_ring_bytes"] == 262144
    assert figures["state_bytes_regenerable"] < 200


@pytest.mark.netns
def test_run_reports_every_figure():
    require_root()
    results = tcp.run(1.0)
    for key in ("tcp_migrate_mbps", "kernel_mbps", "export_us", "import_us"):
        assert results[key] > 0, key
    assert results["tcp_repair_ok"] is True
