"""The hub's batched capture writer: the classic pcap every tool reads, records in order."""

from __future__ import annotations

from pathlib import Path

from labnet.hub.capture import CHUNK_BYTES, Capture, record_header
from mip6.wire.pcap import LINKTYPE_IPV6, read_capture_file


def test_capture_records_read_back_in_order_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "link.pcap"
    capture = Capture(path)
    packets = [bytes([0x60]) + i.to_bytes(4, "big") + bytes(1495) for i in range(400)]
    stamp_us = 1_700_000_000_123_456
    for i, data in enumerate(packets):
        capture.record(memoryview(data), record_header(len(data), stamp_us + i))
    assert 400 * 1516 > CHUNK_BYTES  # some records went out before close
    capture.close()
    capture.close()  # idempotent
    frames = list(read_capture_file(path))
    assert [f.data for f in frames] == packets
    assert {f.link_type for f in frames} == {LINKTYPE_IPV6}
    assert [f.timestamp_ns for f in frames[:2]] == [
        1_700_000_000_123_456_000,
        1_700_000_000_123_457_000,
    ]
    assert capture.frames == 400


def test_capture_without_records_is_a_valid_empty_file(tmp_path: Path) -> None:
    Capture(tmp_path / "empty.pcap").close()
    assert list(read_capture_file(tmp_path / "empty.pcap")) == []
