"""``labnet bench esp`` runs and reports its figures (timings themselves are never asserted,
ARCHITECTURE 9)."""

from __future__ import annotations

from labnet.bench import esp


def test_bench_esp_reports_both_algorithms() -> None:
    results = esp.run(0.2)
    for key in ("esp_gcm_pps", "esp_cbc_sha1_pps", "gcm_crypto_only_pps"):
        assert isinstance(results[key], int) and results[key] > 0
    assert results["packet_bytes"] == len(esp.tunnelled_packet()) == 1400
