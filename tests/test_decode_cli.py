"""``mip6 decode``: what a user sees, from the sample, hex and captures of several link types."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet6 import MIP6MH_BU, IPv6, MIP6OptNonceIndices
from scapy.layers.l2 import CookedLinux, Ether
from scapy.utils import PcapNgWriter, wrpcap

from mip6.cli import main
from mip6.samples import story


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out
    try:
        status = main(list(argv))
    finally:
        sys.stdout = saved
    return status, out.getvalue()


def test_default_decodes_the_shipped_sample_one_line_per_packet() -> None:
    status, text = run("decode")
    lines = text.splitlines()
    assert status == 0 and len(lines) == len(list(story()))
    assert any(
        "2001:db8:3::5 > 2001:db8:1::1: MH BU seq 1000 A H lifetime 420s" in line
        and line.endswith("HAO 2001:db8:1::5")
        for line in lines
    )
    assert any(
        "MH BA status 0 (accepted) seq 2000" in line and "RH2 2001:db8:1::5" in line
        for line in lines
    )
    assert any(
        "IP6-in-IP6 2001:db8:2::1 > 2001:db8:1::5: ICMP6 echo request" in line for line in lines
    )
    assert (
        "[malformed: Mobility Header checksum does not verify (checksum) at offset 68]" in lines[-1]
    )


def test_json_carries_every_header_and_wire_field() -> None:
    status, text = run("decode", "--json")
    records = [json.loads(line) for line in text.splitlines()]
    assert status == 0
    bu = next(r for r in records if r["summary"].endswith("NI 1/2 BAD HAO 2001:db8:1::5"))
    ipv6, destopts, mobility = bu["layers"]
    assert ipv6["type"] == "ipv6" and ipv6["next_header"] == 60 and ipv6["payload_length"] == 56
    assert destopts["next_header"] == 135 and destopts["hdr_ext_len"] == 2
    assert destopts["options"][1] == {
        "type": "home_address_option",
        "option_type": 201,
        "home_address": "2001:db8:1::5",
    }
    assert mobility["type"] == "binding_update" and mobility["mh_type"] == 5
    assert mobility["payload_proto"] == 59 and mobility["header_len"] == 3
    assert mobility["sequence"] == 2000 and mobility["acknowledge"] is True
    assert mobility["lifetime_units_4s"] == 105 and mobility["checksum_status"] == "good"
    assert mobility["options"][0] == {
        "type": "nonce_indices",
        "option_type": 4,
        "home_nonce_index": 1,
        "care_of_nonce_index": 2,
    }
    assert len(mobility["options"][1]["authenticator"]) == 24
    bad = records[-1]
    assert bad["malformed"] == {
        "reason": "Mobility Header checksum does not verify",
        "offset": 68,
        "field": "checksum",
        "error": "bad_checksum",
    }
    assert [layer["type"] for layer in bad["layers"]] == ["ipv6", "destination_options"]
    tunnel = next(r for r in records if "IP6-in-IP6" in r["summary"])
    assert [layer["type"] for layer in tunnel["layers"]][:2] == ["ipv6", "ipv6"]


def test_hex_input_and_malformed_goes_on() -> None:
    good = bytes(
        IPv6(src="2001:db8::5", dst="2001:db8::1") / MIP6MH_BU(seq=7, flags="AH", mhtime=15)
    ).hex()
    status, text = run("decode", "--hex", good, "--hex", good[:-8], "--hex", "zz", "--hex", good)
    lines = text.splitlines()
    assert status == 0 and len(lines) == 4
    assert lines[0] == "2001:db8::5 > 2001:db8::1: MH BU seq 7 A H lifetime 60s"
    assert lines[1].startswith("2001:db8::5 > 2001:db8::1: [malformed: Payload Length")
    assert lines[2].startswith("[not decoded: not hex")
    assert lines[3] == lines[0]


@pytest.mark.parametrize("kind", ["ether", "sll", "raw", "raw-ip", "pcapng"])
def test_captures_of_each_link_type(tmp_path: Path, kind: str) -> None:
    packet = IPv6(src="2001:db8::5", dst="2001:db8::1") / MIP6MH_BU(
        seq=9, mhtime=1, options=[MIP6OptNonceIndices(olen=4, hni=1, coni=2)]
    )
    path = tmp_path / f"{kind}.cap"
    if kind == "ether":
        wrpcap(str(path), [Ether() / packet, Ether(type=0x0806) / b"\0" * 28])
    elif kind == "sll":
        wrpcap(str(path), [CookedLinux(proto=0x86DD) / packet])
    elif kind == "raw":
        wrpcap(str(path), [packet], linktype=229)
    elif kind == "raw-ip":
        wrpcap(str(path), [packet], linktype=101)
    else:
        with PcapNgWriter(str(path)) as writer:
            writer.write(Ether() / packet)
    status, text = run("decode", str(path))
    lines = text.splitlines()
    assert status == 0
    # scapy sets K, H and A unless told otherwise
    assert lines[0].endswith("2001:db8::5 > 2001:db8::1: MH BU seq 9 A H K lifetime 4s NI 1/2")
    if kind == "ether":
        assert lines[1].endswith("[not decoded: ethertype 0x0806 (not IPv6)]")


def test_corrupt_capture_reports_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pcap"
    path.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(10))
    completed = subprocess.run(
        [sys.executable, "-m", "mip6.cli", "decode", str(path)], capture_output=True, text=True
    )
    assert completed.returncode == 1 and "mip6 decode:" in completed.stderr
