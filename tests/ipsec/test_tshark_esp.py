"""tshark as an independent ESP implementation: given the same keys, it decrypts and
authenticates every packet our databases send (AES-GCM-128/256 and AES-CBC + HMAC-SHA1-96,
transport and tunnel mode) and shows the inner BU, BA, HoTI and HoT with our field values and
nothing malformed; a tampered packet or a wrong key makes it report the ICV as bad.

The Security Associations reach tshark as a Wireshark ``esp_sa`` UAT file in a temporary
configuration directory (``WIRESHARK_CONFIG_DIR``); each line is the UAT's eight quoted CSV
fields: protocol, source, destination, SPI, encryption algorithm, encryption key,
authentication algorithm, authentication key, e.g.::

    "IPv6","2001:db8:1::5","2001:db8:1::1","0x00001001","AES-GCM with 16 octet ICV [RFC4106]",
    "0x<key || salt>","NULL",""

(one line). Wireshark looks transport-mode SAs up by the *home* addresses (the Home Address
option's and the type 2 routing header's), exactly as RFC 3776's selectors name them, and
tunnel-mode SAs by the outer addresses; the file below says so and tshark agrees. Decryption
and the ICV check are switched on with ``-o esp.enable_encryption_decode:TRUE -o
esp.enable_authentication_check:TRUE``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from mip6.core.ipsec import Algorithm, PairKeys, SaKeys, SecurityPolicyDatabase
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.pcap import LINKTYPE_IPV6, PcapWriter
from tests.wire.test_tshark_oracle import expected_fields, flatten

from .helpers import (
    CARE_OF,
    CBC_KEY,
    GCM_KEY,
    GCM_KEY_256,
    HMAC_KEY,
    HOME,
    HOME_AGENT,
    binding_acknowledgement,
    binding_update,
    forward_tunnelled,
    home_test,
    home_test_init,
    reverse_tunnelled,
)

UAT_ENCRYPTION = {
    Algorithm.AES_GCM_16: "AES-GCM with 16 octet ICV [RFC4106]",
    Algorithm.AES_CBC_HMAC_SHA1_96: "AES-CBC [RFC3602]",
}
UAT_AUTHENTICATION = {
    Algorithm.AES_GCM_16: "NULL",  # GCM is combined mode: Wireshark requires NULL here
    Algorithm.AES_CBC_HMAC_SHA1_96: "HMAC-SHA-1-96 [RFC2404]",
}


@dataclass(frozen=True)
class Variant:
    name: str
    algorithm: Algorithm
    encryption_key: bytes
    authentication_key: bytes
    spi_base: int


VARIANTS = (
    Variant("aes128-gcm16", Algorithm.AES_GCM_16, GCM_KEY, b"", 0x1000),
    Variant("aes256-gcm16", Algorithm.AES_GCM_16, GCM_KEY_256, b"", 0x2000),
    Variant("aes128-cbc-hmac-sha1-96", Algorithm.AES_CBC_HMAC_SHA1_96, CBC_KEY, HMAC_KEY, 0x3000),
)
NAMES = ("binding_update", "binding_acknowledgement", "home_test_init", "home_test")


def pair_keys(variant: Variant) -> PairKeys:
    return PairKeys(
        **{
            name: SaKeys(
                spi=variant.spi_base + i,
                encryption_key=variant.encryption_key,
                authentication_key=variant.authentication_key,
            )
            for i, name in enumerate(NAMES, start=1)
        }
    )


def uat_lines(variant: Variant, *, wrong_key: bool = False) -> list[str]:
    """One esp_sa line per SA. Transport mode: the home addresses RFC 3776 selects on; tunnel
    mode: the tunnel's outer addresses."""
    endpoints = {
        "binding_update": (HOME, HOME_AGENT),
        "binding_acknowledgement": (HOME_AGENT, HOME),
        "home_test_init": (CARE_OF, HOME_AGENT),
        "home_test": (HOME_AGENT, CARE_OF),
    }
    key = variant.encryption_key
    if wrong_key:
        key = bytes(b ^ 1 for b in key)
    lines = []
    for i, name in enumerate(NAMES, start=1):
        source, destination = endpoints[name]
        fields = [
            "IPv6",
            str(source),
            str(destination),
            f"0x{variant.spi_base + i:08x}",
            UAT_ENCRYPTION[variant.algorithm],
            "0x" + key.hex(),
            UAT_AUTHENTICATION[variant.algorithm],
            "0x" + variant.authentication_key.hex() if variant.authentication_key else "",
        ]
        lines.append(",".join(f'"{field}"' for field in fields))
    return lines


@dataclass(frozen=True)
class Sent:
    variant: Variant
    plain: Ipv6Packet  # what tshark must show once it has decrypted (inner packet in tunnel)
    wire: bytes


def traffic() -> list[Sent]:
    """Two of each message per variant, as a mobile node and its home agent send them."""
    sent = []
    for index, variant in enumerate(VARIANTS):
        rng = random.Random(index)
        mobile = SecurityPolicyDatabase(random_bytes=rng.randbytes)
        home_agent = SecurityPolicyDatabase(random_bytes=rng.randbytes)
        for role, database in (("mobile_node", mobile), ("home_agent", home_agent)):
            database.add_pair(
                role=role,
                home_address=HOME,
                home_agent=HOME_AGENT,
                algorithm=variant.algorithm,
                keys=pair_keys(variant),
            )
        for sequence in (41, 42):
            cookie = sequence.to_bytes(8, "big")
            flows = [
                (mobile, binding_update(sequence), binding_update(sequence)),
                (home_agent, binding_acknowledgement(sequence), binding_acknowledgement(sequence)),
                (mobile, reverse_tunnelled(home_test_init(cookie)), home_test_init(cookie)),
                (home_agent, forward_tunnelled(home_test(cookie)), home_test(cookie)),
            ]
            for database, packet, plain in flows:
                wire = database.output(packet)
                assert wire is not None and wire != packet
                sent.append(Sent(variant, Ipv6Packet.parse(plain), wire))
    return sent


def run_tshark(
    tshark: str, directory: Path, packets: list[bytes], lines: list[str]
) -> list[dict[str, list[str]]]:
    config = directory / "wireshark"
    config.mkdir(exist_ok=True)
    (config / "esp_sa").write_text(
        "# This file is automatically generated, DO NOT MODIFY.\n" + "\n".join(lines) + "\n"
    )
    capture = directory / "esp.pcap"
    with capture.open("wb") as stream, PcapWriter(stream, link_type=LINKTYPE_IPV6) as writer:
        for i, packet in enumerate(packets):
            writer.write(packet, 1_000_000_000 + i * 1000)
    result = subprocess.run(
        [
            tshark,
            "-r",
            str(capture),
            "-T",
            "json",
            "-o",
            "esp.enable_encryption_decode:TRUE",
            "-o",
            "esp.enable_authentication_check:TRUE",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "WIRESHARK_CONFIG_DIR": str(config)},
    )
    frames = json.loads(result.stdout)
    assert len(frames) == len(packets)
    return [flatten(frame["_source"]["layers"], {}) for frame in frames]


@pytest.fixture(scope="module")
def decoded(
    tshark: str, tmp_path_factory: pytest.TempPathFactory
) -> list[tuple[Sent, dict[str, list[str]]]]:
    sent = traffic()
    lines = [line for variant in VARIANTS for line in uat_lines(variant)]
    fields = run_tshark(tshark, tmp_path_factory.mktemp("esp"), [s.wire for s in sent], lines)
    return list(zip(sent, fields, strict=True))


def test_tshark_authenticates_every_packet(
    decoded: list[tuple[Sent, dict[str, list[str]]]],
) -> None:
    for number, (sent, fields) in enumerate(decoded, 1):
        assert fields.get("esp.icv_good") == ["1"], (number, sent.variant.name, fields)
        assert fields.get("esp.icv_bad") == ["0"], number
        spi = int(fields["esp.spi"][0], 16)
        assert sent.variant.spi_base < spi <= sent.variant.spi_base + 4


def test_tshark_decrypts_and_shows_inner_messages(
    decoded: list[tuple[Sent, dict[str, list[str]]]],
) -> None:
    checked = 0
    kinds = set()
    for number, (sent, fields) in enumerate(decoded, 1):
        assert "esp.decrypted_data" in fields, number
        want = expected_fields(sent.plain)
        want["ipv6.src"] = str(sent.plain.source)
        want["ipv6.dst"] = str(sent.plain.destination)
        for name, value in want.items():
            assert value in fields.get(name, []), (number, name, value, fields.get(name))
            checked += 1
        kinds.add((sent.variant.name, fields["mip6.mhtype"][0]))
    assert len(kinds) == len(VARIANTS) * 4  # BU, BA, HoTI, HoT for each variant
    assert "mip6.bu.seqnr" in {n for _, f in decoded for n in f}
    assert checked >= len(decoded) * 7


def test_tshark_finds_nothing_malformed(
    decoded: list[tuple[Sent, dict[str, list[str]]]],
) -> None:
    for number, (_sent, fields) in enumerate(decoded, 1):
        assert "_ws.malformed" not in fields, number
        severities = fields.get("_ws.expert.severity", [])
        # 4194304 warning, 8388608 error (epan/proto.h PI_* values); ESP sequence analysis is
        # on by default, so a gap or repeat in our Sequence Numbers would show up here too.
        assert not [s for s in severities if int(s) >= 4194304], (
            number,
            fields.get("_ws.expert.message"),
        )


def test_tshark_flags_tampering_and_wrong_keys(tshark: str, tmp_path: Path) -> None:
    """The check is real: a flipped ciphertext bit, or a key off by one bit, is reported bad."""
    sent = [s for s in traffic() if s.variant is not VARIANTS[1]]
    tampered = []
    for s in sent:
        data = bytearray(s.wire)
        data[-20] ^= 0x01  # inside the ciphertext of every packet here
        tampered.append(bytes(data))
    lines = [line for variant in VARIANTS for line in uat_lines(variant)]
    for fields in run_tshark(tshark, tmp_path, tampered, lines):
        assert fields.get("esp.icv_bad") == ["1"]
    wrong = [line for variant in VARIANTS for line in uat_lines(variant, wrong_key=True)]
    for s, fields in zip(
        sent, run_tshark(tshark, tmp_path, [s.wire for s in sent], wrong), strict=True
    ):
        if s.variant.algorithm is Algorithm.AES_GCM_16:
            assert fields.get("esp.icv_bad") == ["1"]  # the GCM key is the integrity key
        else:
            # only the AES key is wrong: the HMAC verifies, the decryption is garbage
            assert fields.get("esp.icv_good") == ["1"]
            assert "mip6.mhtype" not in fields


def test_uat_lines_have_eight_quoted_fields() -> None:
    for variant in VARIANTS:
        for line in uat_lines(variant):
            assert line.count('","') == 7 and line.startswith('"IPv6"')
