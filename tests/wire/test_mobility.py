"""Mobility Header codec: round trips, byte fixtures, strictness, and scapy as an oracle.

scapy's known MIPv6 faults (STYLE.md) are pinned where they show: the Nonce Indices and Binding
Authorization Data options default to length 16 (RFC 3775 6.2.6/6.2.7: 4 and 12), so every scapy
packet built here sets ``olen`` explicitly.
"""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    MIP6MH_BA,
    MIP6MH_BE,
    MIP6MH_BRR,
    MIP6MH_BU,
    IPv6,
    MIP6MH_CoT,
    MIP6MH_CoTI,
    MIP6MH_HoT,
    MIP6MH_HoTI,
    MIP6OptAltCoA,
    MIP6OptBindingAuthData,
    MIP6OptBRAdvice,
    MIP6OptNonceIndices,
)

from mip6.wire import mobility as mh
from mip6.wire.checksum import upper_layer_checksum
from mip6.wire.errors import BadChecksum, EmitError, Malformed, Truncated, WireError
from mip6.wire.tlv import PadN as OurPadN

from .strategies import mobility_messages, unknown_mobility_messages

CN = IPv6Address("2001:db8:2::1")
MN = IPv6Address("2001:db8:1::5")
S, D = MN.packed, CN.packed


def roundtrip(message: object) -> bytes:
    data = message.emit(source=S, destination=D)
    assert mh.parse_mobility_header(data, source=S, destination=D) == message
    return data


@given(mobility_messages())
def test_any_message_parse_emit_roundtrip(message: mh.MobilityMessage) -> None:
    data = roundtrip(message)
    again = mh.parse_mobility_header(data, source=S, destination=D)
    assert again.emit(source=S, destination=D) == data


@given(unknown_mobility_messages)
def test_unknown_mh_type_kept_verbatim(message: mh.UnknownMobilityMessage) -> None:
    roundtrip(message)


@given(st.binary(min_size=8, max_size=80), st.integers(0, 255))
def test_emit_parse_on_arbitrary_aligned_bytes_is_exact_or_raises(
    body: bytes, mh_type: int
) -> None:
    """Any byte string with a valid checksum either parses and re-emits to itself, or raises
    only WireError (emit(parse(b)) == b for canonical b: reserved fields zero)."""
    body = body[: len(body) // 8 * 8]
    raw = bytearray(bytes([59, len(body) // 8 - 1, mh_type, 0, 0, 0]) + body[6:])
    raw[4:6] = upper_layer_checksum(S, D, 135, bytes(raw)).to_bytes(2, "big")
    try:
        message = mh.parse_mobility_header(bytes(raw), source=S, destination=D)
    except WireError:
        return
    canonical = message.emit(source=S, destination=D)
    assert mh.parse_mobility_header(canonical, source=S, destination=D) == message


# -- byte fixtures -------------------------------------------------------------------------

BU_BYTES = bytes.fromhex(
    "3b03 0500 0000"  # Payload Proto 59, Header Len 3 (32 bytes), BU, reserved, checksum (patched)
    "0007 c000 000f"  # sequence 7, A H, lifetime 15 units (60 s)
    "0404 0003 0004"  # Nonce Indices at 12: home 3, care-of 4
    "050c 0102030405060708090a0b0c"  # Binding Authorization Data at 18 = 8n+2, no padding
)


def test_binding_update_parse_fixture() -> None:
    raw = bytearray(BU_BYTES)
    raw[4:6] = upper_layer_checksum(S, D, 135, bytes(raw)).to_bytes(2, "big")
    bu = mh.BindingUpdate.parse(bytes(raw), source=S, destination=D)
    assert bu.sequence == 7 and bu.acknowledge and bu.home_registration
    assert not bu.link_local_address_compatibility and bu.lifetime_s == 60
    assert bu.find(mh.NonceIndices) == mh.NonceIndices(home_nonce_index=3, care_of_nonce_index=4)
    assert bu.find(mh.BindingAuthorizationData).authenticator == bytes(range(1, 13))
    assert bu.emit(source=S, destination=D) == bytes(raw)


def test_binding_update_aligned_emit_fixture() -> None:
    bu = mh.BindingUpdate(
        sequence=7,
        acknowledge=True,
        home_registration=True,
        lifetime_units_4s=15,
        options=(
            mh.NonceIndices(home_nonce_index=3, care_of_nonce_index=4),
            mh.BindingAuthorizationData(authenticator=bytes(range(1, 13))),
        ),
    ).aligned()
    data = bu.emit(source=S, destination=D)
    assert data[:4] + data[6:] == BU_BYTES[:4] + BU_BYTES[6:]


def test_bu_without_options_aligned_pads_to_16_bytes() -> None:
    data = mh.BindingUpdate(sequence=1).aligned().emit(source=S, destination=D)
    assert len(data) == 16 and data[1] == 1
    assert data[12:] == b"\x01\x02\x00\x00"  # PadN carrying 2 zero bytes


def test_authenticator_input_excludes_checksum_and_authenticator() -> None:
    bu = mh.BindingUpdate(
        sequence=9,
        options=(
            mh.NonceIndices(home_nonce_index=1, care_of_nonce_index=2),
            mh.BindingAuthorizationData(),
        ),
    ).aligned()
    data = mh.mobility_data_for_authenticator(bu)
    wire = bu.emit(source=S, destination=D)
    assert data == wire[:4] + b"\0\0" + wire[6:-12]


# -- strictness ----------------------------------------------------------------------------


def emitted(message: object, **overrides: int) -> bytes:
    return message.emit(source=S, destination=D, overrides=overrides)


HOT = mh.HomeTest(home_nonce_index=1, home_init_cookie=b"c" * 8, home_keygen_token=b"t" * 8)


def test_bad_checksum_raises_bad_checksum() -> None:
    with pytest.raises(BadChecksum) as info:
        mh.parse_mobility_header(emitted(HOT, checksum=0x1234), source=S, destination=D)
    assert info.value.offset == 4 and info.value.field == "checksum"


def test_wrong_pseudo_header_raises_bad_checksum() -> None:
    with pytest.raises(BadChecksum):
        mh.parse_mobility_header(emitted(HOT), source=D, destination=D)


def test_payload_proto_not_59_is_malformed_at_offset_0() -> None:
    with pytest.raises(Malformed) as info:
        mh.parse_mobility_header(emitted(HOT, payload_proto=6), source=S, destination=D)
    assert (info.value.field, info.value.offset) == ("payload_proto", 0)


def test_payload_proto_not_59_with_piggybacked_payload_is_malformed_at_offset_0() -> None:
    """RFC 3775 9.2: a real piggybacked payload follows the Mobility Header; the fault is the
    Payload Proto field (offset 0), not the Header Len that no longer spans the buffer."""
    with pytest.raises(Malformed) as info:
        mh.parse_mobility_header(emitted(HOT, payload_proto=6) + bytes(20), source=S, destination=D)
    assert (info.value.field, info.value.offset) == ("payload_proto", 0)


def test_header_len_too_small_for_type_is_malformed_at_header_len() -> None:
    """RFC 3775 9.2: the node discards it and answers Parameter Problem code 0 at Header Len."""
    bu = emitted(mh.BindingUpdate(sequence=1).aligned())
    shrunk = mh.BindingUpdate(sequence=1).aligned()
    raw = bytearray(shrunk.emit_unchecksummed(overrides={"mh_type": 3}))  # a HoT needs 24 bytes
    raw[4:6] = upper_layer_checksum(S, D, 135, bytes(raw)).to_bytes(2, "big")
    with pytest.raises(Malformed) as info:
        mh.parse_mobility_header(bytes(raw), source=S, destination=D)
    assert (info.value.field, info.value.offset) == ("header_len", 1)
    assert len(bu) == 16


def test_header_len_beyond_buffer_is_truncated() -> None:
    data = emitted(HOT)
    with pytest.raises(Truncated):
        mh.parse_mobility_header(data[:-8], source=S, destination=D)


def test_every_truncation_raises_only_wire_errors() -> None:
    data = emitted(mh.BindingUpdate(sequence=1, options=(mh.BindingAuthorizationData(),)).aligned())
    for cut in range(len(data)):
        with pytest.raises(WireError):
            mh.parse_mobility_header(data[:cut], source=S, destination=D)


def test_nonce_indices_wrong_length_is_malformed_at_length_byte() -> None:
    bad = mh.BindingUpdate(
        sequence=1, options=(mh.UnknownMobilityOption(option_type=6, data=b"\0\0\0\0\0\0"),)
    ).aligned()
    raw = bytearray(bad.emit_unchecksummed())
    raw[12] = 4  # turn the unknown option into a 6-byte Nonce Indices
    raw[4:6] = upper_layer_checksum(S, D, 135, bytes(raw)).to_bytes(2, "big")
    with pytest.raises(Malformed) as info:
        mh.parse_mobility_header(bytes(raw), source=S, destination=D)
    assert (info.value.field, info.value.offset) == ("option_length", 13)


def test_authorization_data_not_last_is_malformed() -> None:
    bu = mh.BindingUpdate(
        sequence=1, options=(OurPadN(data=bytes(4)), mh.BindingAuthorizationData())
    )
    wire = bytearray(bu.emit_unchecksummed() + b"\x01\x06" + bytes(6))  # PadN after BAD
    wire[1] += 1
    wire[4:6] = upper_layer_checksum(S, D, 135, bytes(wire)).to_bytes(2, "big")
    with pytest.raises(Malformed) as info:
        mh.parse_mobility_header(bytes(wire), source=S, destination=D)
    assert info.value.field == "options"
    options = (mh.BindingAuthorizationData(), OurPadN(data=bytes(2)))
    with pytest.raises(EmitError):
        mh.BindingUpdate(sequence=1, options=options).emit(source=S, destination=D)


def test_misaligned_option_refused_on_emit() -> None:
    bu = mh.BindingUpdate(
        sequence=1, options=(mh.BindingAuthorizationData(), OurPadN(data=bytes(2)))
    )
    with pytest.raises(EmitError):
        bu.emit(source=S, destination=D)


def test_length_not_multiple_of_8_refused_on_emit() -> None:
    with pytest.raises(EmitError):
        mh.BindingUpdate(sequence=1).emit(source=S, destination=D)


def test_out_of_range_field_refused_on_construction() -> None:
    with pytest.raises(EmitError):
        mh.BindingUpdate(sequence=1 << 16)
    with pytest.raises(EmitError):
        mh.HomeTestInit(home_init_cookie=b"short")


# -- scapy as an oracle, both ways -----------------------------------------------------------

NI = MIP6OptNonceIndices(olen=4, hni=0x0102, coni=0x0304)  # scapy's default olen 16 is wrong
BAD = MIP6OptBindingAuthData(olen=12, authenticator=0x0102030405060708090A0B0C)
ACOA = MIP6OptAltCoA(acoa="2001:db8:9::9")
BRA = MIP6OptBRAdvice(rinter=300)


def scapy_cases() -> list[tuple[object, mh._Message]]:
    """(scapy layer, the Repr it must equal once parsed; padding compared separately)."""
    ni = mh.NonceIndices(home_nonce_index=0x0102, care_of_nonce_index=0x0304)
    bad = mh.BindingAuthorizationData(authenticator=bytes(range(1, 13)))
    acoa = mh.AlternateCareOfAddress(alternate_care_of_address=IPv6Address("2001:db8:9::9"))
    return [
        (MIP6MH_BRR(), mh.BindingRefreshRequest()),
        (MIP6MH_HoTI(cookie=b"homecook"), mh.HomeTestInit(home_init_cookie=b"homecook")),
        (MIP6MH_CoTI(cookie=b"coacooki"), mh.CareOfTestInit(care_of_init_cookie=b"coacooki")),
        (
            MIP6MH_HoT(index=77, cookie=b"homecook", token=b"hometokn"),
            mh.HomeTest(
                home_nonce_index=77, home_init_cookie=b"homecook", home_keygen_token=b"hometokn"
            ),
        ),
        (
            MIP6MH_CoT(index=78, cookie=b"coacooki", token=b"coatoken"),
            mh.CareOfTest(
                care_of_nonce_index=78,
                care_of_init_cookie=b"coacooki",
                care_of_keygen_token=b"coatoken",
            ),
        ),
        (
            MIP6MH_BU(seq=4242, flags="AH", mhtime=75, options=[ACOA, NI, BAD]),
            mh.BindingUpdate(
                sequence=4242,
                acknowledge=True,
                home_registration=True,
                lifetime_units_4s=75,
                options=(acoa, ni, bad),
            ),
        ),
        (
            MIP6MH_BU(seq=1, flags="KL", mhtime=0),
            mh.BindingUpdate(
                sequence=1,
                link_local_address_compatibility=True,
                key_management_mobility_capability=True,
            ),
        ),
        (
            MIP6MH_BA(status=135, flags="K", seq=65535, mhtime=105, options=[BRA, BAD]),
            mh.BindingAcknowledgement(
                status=135,
                key_management_mobility_capability=True,
                sequence=65535,
                lifetime_units_4s=105,
                options=(mh.BindingRefreshAdvice(refresh_interval_units_4s=300), bad),
            ),
        ),
        (
            MIP6MH_BE(status=2, ha="2001:db8:1::5"),
            mh.BindingError(status=2, home_address=IPv6Address("2001:db8:1::5")),
        ),
    ]


def without_padding(message: mh._Message) -> tuple:
    return tuple(o for o in message.options if not isinstance(o, mh.Pad1 | mh.PadN))


def strip_padding(message: object) -> object:
    from dataclasses import replace

    return replace(message, options=without_padding(message))


@pytest.mark.parametrize("layer,expected", scapy_cases(), ids=lambda v: type(v).__name__)
def test_scapy_built_mh_parses_to_same_fields(layer: object, expected: mh._Message) -> None:
    wire = bytes(IPv6(src=str(MN), dst=str(CN)) / layer)[40:]
    parsed = mh.parse_mobility_header(wire, source=S, destination=D)
    assert strip_padding(parsed) == expected
    assert parsed.emit(source=S, destination=D) == wire  # and we re-emit scapy's bytes exactly


@pytest.mark.parametrize("layer,expected", scapy_cases(), ids=lambda v: type(v).__name__)
def test_our_mh_dissected_by_scapy_to_same_fields_and_checksum(
    layer: object, expected: mh._Message
) -> None:
    ours = expected.aligned().emit(source=S, destination=D)
    header = bytes(IPv6(src=str(MN), dst=str(CN), nh=135, plen=len(ours)))
    dissected = IPv6(header + ours).payload
    assert type(dissected) is type(layer)
    assert (dissected.mhtype, dissected.len) == (ours[2], ours[1])
    for field in layer.fields:
        if field != "options":
            assert dissected.getfieldval(field) == layer.getfieldval(field), field
    meaningful = [o.otype for o in dissected.options if o.otype not in (0, 1)]
    assert meaningful == [o.option_type for o in without_padding(expected)]
    # scapy recomputes the checksum over its own pseudo-header and gets our value
    dissected.cksum = None
    assert bytes(IPv6(src=str(MN), dst=str(CN)) / dissected)[40:] == ours
