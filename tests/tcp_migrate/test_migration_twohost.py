"""Migration end to end between two hosts (root, network namespaces; ``twohost.py``).

A kernel client (curl) downloads from server A; mid-transfer A freezes and exports, the blob
goes to server B's process over a pipe, B imports, the kernel's route to the server address
is switched to B's TUN device, and B thaws and finishes. A and B are separate processes, each
with its own stack and device. The client must get the right bytes with no reset (curl exits
with 56 on one) and neither stack may send a RST.

Fast cases (20 MB, no emulated path): the full snapshot, the regenerable one (B writes the
stream again from the acknowledged offset) and an abandoned handoff (the route returns to A,
which thaws and finishes). The same three again through 40 ms one-way delay and 1% loss on
each host's link, 1 MB: migration while segments are lost and in flight.
"""

from __future__ import annotations

import pytest

from tests.runtime.netns import require_root
from tests.tcp_migrate.twohost import HostConfig, handoff, make_stream

pytestmark = pytest.mark.netns

FAST_BYTES = 20_000_000
LOSSY_BYTES = 1_000_000
LOSSY_RING = 256 * 1024  # smaller than the stream: A is still writing when it freezes


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root()


def config(size: int, *, include_unacked: bool, lossy: bool) -> HostConfig:
    stream_size = len(make_stream(0, 0)[0]) + size
    return HostConfig(
        size=size,
        seed=size,
        freeze_at=stream_size // 3,
        include_unacked=include_unacked,
        **({"ring": LOSSY_RING, "delay_ms": 40, "loss": 0.01} if lossy else {}),
    )


def check_clean_download(result: dict) -> None:
    assert result["curl_status"] == 0, result["curl_error"]
    assert result["sha_ok"]
    for role, report in result["reports"].items():
        assert report["rst_sent"] == 0 and report["rst_segments"] == 0, (role, report)


@pytest.mark.parametrize("lossy", [False, True], ids=["20mb", "lossy-1mb"])
@pytest.mark.parametrize("include_unacked", [True, False], ids=["full", "regenerable"])
def test_established_download_handoff_a_to_b_rerouted_completes_without_reset(
    include_unacked, lossy
):
    size = LOSSY_BYTES if lossy else FAST_BYTES
    cfg = config(size, include_unacked=include_unacked, lossy=lossy)
    result = handoff("mig", cfg, abandon=False)
    check_clean_download(result)
    assert result["imported_state"] == "ESTABLISHED"
    assert cfg.freeze_at <= result["frozen_at"] < len(make_stream(0, 0)[0]) + size
    a, b = result["reports"]["A"], result["reports"]["B"]
    assert b["served"] and b["close_reason"] != "RESET"
    assert b["data_segments"] > 0  # B sent the rest
    if include_unacked:
        assert result["write_offset"] >= result["frozen_at"]
    else:
        # B refills from the acknowledged offset: nothing carried but the state.
        assert result["blob_size"] < 200
        assert result["send_buffered"] == 0
        assert result["write_offset"] <= result["frozen_at"]
    if lossy:
        assert a["dropped"] + b["dropped"] > 0


@pytest.mark.parametrize("lossy", [False, True], ids=["20mb", "lossy-1mb"])
def test_established_download_abandoned_handoff_rerouted_back_donor_thaws_and_completes(lossy):
    size = LOSSY_BYTES if lossy else FAST_BYTES
    result = handoff("abn", config(size, include_unacked=True, lossy=lossy), abandon=True)
    check_clean_download(result)
    a, b = result["reports"]["A"], result["reports"]["B"]
    assert a["served"] and a["close_reason"] != "RESET"
    assert b["data_segments"] == 0  # B never sent anything
