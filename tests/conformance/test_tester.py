"""The tester's own packet math: return routability from RFC 3775 5.2.5/6.2.7 and checksums
from RFC 8200 8.1, checked against vectors computed here and against the independent checksum
walker of tests/wire; scapy's known disagreements with the RFC pinned."""

from __future__ import annotations

import hashlib
import hmac
from ipaddress import IPv6Address

import pytest
from scapy.layers.inet6 import IPv6, MIP6OptBindingAuthData, MIP6OptNonceIndices

from conformance import runner
from conformance.tester import (
    authenticator,
    checksum_ok,
    fill_checksum,
    kbm,
    keygen_token,
    mobility_data,
    walk,
)
from conformance.transport import SimTransport
from tests.core import rfc
from tests.wire.independent import upper_layer_checksum_ok

KCN = bytes(range(20))
NONCE = bytes.fromhex("0102030405060708")
HOME = IPv6Address("2001:db8:1::5")
CARE_OF = IPv6Address("2001:db8:3::5")
CORRESPONDENT = IPv6Address("2001:db8:2::1")


def test_keygen_tokens_kbm_and_authenticator_match_a_vector_computed_here() -> None:
    # RFC 3775 5.2.5: First(64, HMAC_SHA1(Kcn, address | nonce | 0 or 1))
    home = hmac.new(KCN, HOME.packed + NONCE + b"\x00", hashlib.sha1).digest()[:8]
    care_of = hmac.new(KCN, CARE_OF.packed + NONCE + b"\x01", hashlib.sha1).digest()[:8]
    assert keygen_token(KCN, HOME.packed, NONCE, 0) == home
    assert keygen_token(KCN, CARE_OF.packed, NONCE, 1) == care_of
    assert home.hex() == "4886b187e72038e6"
    assert care_of.hex() == "2d52aad20847b03c"
    # Kbm = SHA1(home token | care-of token); from home: SHA1(home token) (5.2.6)
    assert kbm(home, care_of) == hashlib.sha1(home + care_of).digest()
    assert kbm(home, None) == hashlib.sha1(home).digest()
    # 6.2.7: First(96, HMAC_SHA1(Kbm, care-of | correspondent | MH data))
    data = bytes(range(20))
    expected = hmac.new(
        kbm(home, care_of), CARE_OF.packed + CORRESPONDENT.packed + data, hashlib.sha1
    ).digest()[:12]
    assert authenticator(kbm(home, care_of), CARE_OF, CORRESPONDENT, data) == expected
    assert expected.hex() == "72cec03254a3b5a6d4c40317"


def test_rr_math_agrees_with_the_core_tests_oracle() -> None:
    home = keygen_token(KCN, HOME.packed, NONCE, 0)
    care_of = keygen_token(KCN, CARE_OF.packed, NONCE, 1)
    assert home == rfc.home_token(KCN, HOME.packed, NONCE)
    assert care_of == rfc.care_of_token(KCN, CARE_OF.packed, NONCE)
    assert kbm(home, care_of) == rfc.kbm(home, care_of)
    mh = bytes(range(32))
    assert authenticator(kbm(home, care_of), CARE_OF, CORRESPONDENT, mobility_data(mh)) == (
        rfc.authenticator(kbm(home, care_of), CARE_OF.packed, CORRESPONDENT.packed, mh)
    )


def _tester():  # type: ignore[no-untyped-def]
    transport = SimTransport("cn")
    tester = runner.tester_for("cn", transport, transport.plan)
    tester.tokens.home_index, tester.tokens.care_of_index = 1, 2
    tester.tokens.home_token, tester.tokens.care_of_token = b"H" * 8, b"C" * 8
    return tester


def test_binding_update_checksum_uses_the_home_address_and_agrees_with_the_walker() -> None:
    tester = _tester()
    bu = tester.binding_update(sequence=9)
    chain = walk(bu)
    assert chain.home_address_option == HOME.packed
    assert chain.pseudo_source == HOME.packed
    assert checksum_ok(bu)
    assert upper_layer_checksum_ok(bu) == (135, True)
    corrupted = tester.binding_update(sequence=9, corrupt_checksum=True)
    assert not checksum_ok(corrupted)
    assert upper_layer_checksum_ok(corrupted) == (135, False)


def test_binding_update_layout_nonce_indices_then_authorization_data_at_8n_plus_2() -> None:
    tester = _tester()
    bu = tester.binding_update(sequence=9, lifetime_units_4s=25)
    mh = bu[walk(bu).offset :]
    assert len(mh) == 32 and mh[1] == 3 and mh[2] == 5  # Header Len 3, MH Type 5
    assert mh[12:18] == bytes([4, 4, 0, 1, 0, 2])  # Nonce Indices, length 4 (6.2.6)
    assert mh[18:20] == bytes([5, 12])  # Binding Authorization Data at 18 = 8n+2, length 12
    expected = authenticator(kbm(b"H" * 8, b"C" * 8), CARE_OF, CORRESPONDENT, mobility_data(mh))
    assert mh[-12:] == expected


def test_echo_request_with_hao_and_rh2_packets_verify_with_the_walker() -> None:
    tester = _tester()
    for packet in (tester.echo_request(), tester.hoti(b"12345678", rh2=True)):
        assert checksum_ok(packet)
        assert upper_layer_checksum_ok(packet)[1]


def test_scapy_default_option_lengths_disagree_with_rfc_3775() -> None:
    # RFC 3775 6.2.6 / 6.2.7: Nonce Indices length 4, Binding Authorization Data length 12.
    # scapy defaults both to 16; the tester always sets olen explicitly.
    assert MIP6OptNonceIndices().olen == 16
    assert MIP6OptBindingAuthData().olen == 16


def test_scapy_mh_checksum_with_padn_before_hao_disagrees_with_rfc_8200() -> None:
    # A BU with the Home Address option behind a PadN: scapy re-emitting the dissected packet
    # computes the MH checksum with the care-of address as pseudo-source; RFC 3775 6.3 /
    # RFC 8200 8.1 say the home address (which our checksum, and the walker, use).
    bu = _tester().binding_update(sequence=9)
    dissected = IPv6(bu)
    dissected["MIP6MH_BU"].cksum = None
    rebuilt = bytes(dissected)
    assert checksum_ok(bu)
    assert not upper_layer_checksum_ok(rebuilt)[1]


def _stimulus_of(case_id: str) -> list[bytes]:
    from conformance.cases_cn import CASES

    case = next(c for c in CASES if c.id == case_id)
    return [p for p in case.stimulus(_tester()) if isinstance(p, bytes)]


@pytest.mark.parametrize(
    ("case_id", "message"),
    [
        ("CN-BU-NI-01", "BindingUpdate"),
        ("CN-BU-BAD-01", "BindingUpdate"),
        ("CN-BU-AUTH-01", "BindingUpdate"),
        ("CN-RR-HOTI-HAO-01", "HomeTestInit"),
        ("CN-RR-HOTI-RH2-01", "HomeTestInit"),
        ("CN-RR-COTI-HAO-01", "CareOfTestInit"),
        ("CN-RR-COTI-RH2-01", "CareOfTestInit"),
    ],
)
def test_silence_stimuli_are_well_formed_but_for_the_property_under_test(
    case_id: str, message: str
) -> None:
    # A "silently discarded" case would pass vacuously on a packet broken in another way:
    # our own codec (a second oracle, used only here) parses each stimulus cleanly.
    from mip6.wire.ipv6 import Ipv6Packet

    (packet,) = _stimulus_of(case_id)
    assert type(Ipv6Packet.parse(packet).payload).__name__ == message


def test_corrupted_checksum_is_the_only_defect_of_the_checksum_stimulus() -> None:
    from mip6.wire.errors import WireError
    from mip6.wire.ipv6 import Ipv6Packet

    (packet,) = _stimulus_of("CN-MH-CKSUM-01")
    with pytest.raises(WireError):
        Ipv6Packet.parse(packet)
    assert type(Ipv6Packet.parse(fill_checksum(packet)).payload).__name__ == "HomeTestInit"
