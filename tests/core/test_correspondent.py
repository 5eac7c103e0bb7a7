"""Correspondent node (RFC 3775 9) on virtual time, with exact packets asserted."""

from __future__ import annotations

import random
import tracemalloc
from dataclasses import replace
from ipaddress import IPv6Address

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mip6.core.config import CorrespondentConfig, ProtocolConstants
from mip6.roles.correspondent_node import CorrespondentNode
from mip6.runtime.memory import MemoryNetwork
from mip6.wire import icmpv6 as icmp
from mip6.wire import mobility as mh
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import RoutingType2
from mip6.wire.udp import UdpDatagram

from . import rfc
from .harness import Recorder, Tokens, hao, return_routability, signed_bu

CN = IPv6Address("2001:db8:2::1")
HOME = IPv6Address("2001:db8:1::5")
CARE_OF = IPv6Address("2001:db8:3::5")
Status = mh.BindingAckStatus


class Lab:
    def __init__(self, config: CorrespondentConfig | None = None, seed: int = 7) -> None:
        self.net = MemoryNetwork(seed)
        self.cn = CorrespondentNode(config=config, rng=random.Random(seed))
        self.mn = Recorder()
        self.net.add("cn", self.cn)
        self.net.add("mn", self.mn)
        self.net.route("2001:db8:2::/64", "cn")
        self.net.route("2001:db8:1::/64", "mn")  # the home agent's tunnel, collapsed
        self.net.route("2001:db8:3::/64", "mn")

    def rr(self, home: IPv6Address = HOME, care_of: IPv6Address = CARE_OF) -> Tokens:
        return return_routability(
            self.net, cn="cn", mn=self.mn, home=home, care_of=care_of, correspondent=CN
        )

    def bu(self, tokens: Tokens, sequence: int, **kwargs: object) -> list[Ipv6Packet]:
        kwargs.setdefault("home", HOME)
        kwargs.setdefault("care_of", CARE_OF)
        self.net.inject(
            "cn", signed_bu(correspondent=CN, tokens=tokens, sequence=sequence, **kwargs)
        )
        self.net.run_for(1.0)
        return self.mn.take()


@pytest.fixture
def lab() -> Lab:
    return Lab()


def only_ba(packets: list[Ipv6Packet]) -> tuple[Ipv6Packet, mh.BindingAcknowledgement]:
    (packet,) = packets
    assert isinstance(packet.payload, mh.BindingAcknowledgement)
    return packet, packet.payload


# -- return routability -----------------------------------------------------------------------


def test_hoti_coti_answered_with_tokens_from_kcn_and_nonces(lab: Lab) -> None:
    tokens = lab.rr()
    home_nonce = lab.cn.nonces.lookup(tokens.home_nonce_index, lab.net.now)
    care_of_nonce = lab.cn.nonces.lookup(tokens.care_of_nonce_index, lab.net.now)
    assert home_nonce is not None and care_of_nonce is not None
    assert tokens.home_keygen_token == rfc.home_token(home_nonce.kcn, HOME.packed, home_nonce.nonce)
    assert tokens.care_of_keygen_token == rfc.care_of_token(
        care_of_nonce.kcn, CARE_OF.packed, care_of_nonce.nonce
    )
    assert len(lab.cn.binding_cache) == 0  # RFC 3775 5.2.8: no state per mobile node yet


def test_hot_goes_to_home_address_cot_to_care_of_address(lab: Lab) -> None:
    hoti = Ipv6Packet(
        source=HOME, destination=CN, payload=mh.HomeTestInit(home_init_cookie=b"x" * 8)
    )
    lab.net.inject("cn", hoti.emit())
    lab.net.run_for(1)
    (hot,) = lab.mn.take()
    assert (hot.source, hot.destination, hot.extension_headers) == (CN, HOME, ())


@pytest.mark.parametrize("extra", ["hao", "rh2"])
def test_hoti_with_hao_or_rh2_silently_discarded(lab: Lab, extra: str) -> None:
    header = hao(HOME) if extra == "hao" else RoutingType2(home_address=HOME)
    hoti = Ipv6Packet(
        source=CARE_OF,
        destination=CN,
        extension_headers=(header,),
        payload=mh.HomeTestInit(home_init_cookie=b"x" * 8),
    )
    lab.net.inject("cn", hoti.emit())
    lab.net.run_for(1)
    assert lab.mn.take() == []


# -- binding updates --------------------------------------------------------------------------


def test_valid_bu_creates_binding_and_authenticated_ba_via_rh2(lab: Lab) -> None:
    tokens = lab.rr()
    packet, ba = only_ba(lab.bu(tokens, sequence=10, lifetime_units_4s=60))
    assert (ba.status, ba.sequence, ba.lifetime_units_4s) == (Status.ACCEPTED, 10, 60)
    assert packet.source == CN and packet.destination == CARE_OF
    assert packet.extension_headers == (RoutingType2(home_address=HOME),)
    key = rfc.kbm(tokens.home_keygen_token, tokens.care_of_keygen_token)
    wire = ba.emit(source=CN.packed, destination=HOME.packed)
    assert ba.options[-1].authenticator == rfc.authenticator(key, CARE_OF.packed, CN.packed, wire)
    entry = lab.cn.binding_cache.get(HOME)
    assert entry is not None and entry.care_of_address == CARE_OF and entry.sequence == 10


def test_bad_authenticator_silently_discarded(lab: Lab) -> None:
    tokens = lab.rr()
    assert lab.bu(tokens, sequence=1, tamper=True) == []
    assert len(lab.cn.binding_cache) == 0


def test_home_registration_bit_gets_131(lab: Lab) -> None:
    bu = mh.BindingUpdate(
        sequence=5, acknowledge=True, home_registration=True, lifetime_units_4s=10
    ).aligned()
    packet = Ipv6Packet(source=CARE_OF, destination=CN, extension_headers=(hao(HOME),), payload=bu)
    lab.net.inject("cn", packet.emit())
    lab.net.run_for(1)
    _, ba = only_ba(lab.mn.take())
    assert (ba.status, ba.sequence) == (Status.HOME_REGISTRATION_NOT_SUPPORTED, 5)
    assert ba.find(mh.BindingAuthorizationData) is None  # no Kbm: no authorization data


def test_bu_without_nonce_indices_silently_discarded(lab: Lab) -> None:
    bu = mh.BindingUpdate(sequence=5, acknowledge=True, lifetime_units_4s=10).aligned()
    packet = Ipv6Packet(source=CARE_OF, destination=CN, extension_headers=(hao(HOME),), payload=bu)
    lab.net.inject("cn", packet.emit())
    lab.net.run_for(1)
    assert lab.mn.take() == []


@pytest.mark.parametrize(
    "expire,status",
    [
        ("home", Status.EXPIRED_HOME_NONCE_INDEX),
        ("care_of", Status.EXPIRED_CARE_OF_NONCE_INDEX),
        ("both", Status.EXPIRED_NONCES),
    ],
)
def test_expired_nonce_indices_answered_even_without_ack_bit(
    lab: Lab, expire: str, status: int
) -> None:
    tokens = lab.rr()
    bogus = (tokens.home_nonce_index + 1000) & 0xFFFF
    if expire in ("home", "both"):
        tokens = replace(tokens, home_nonce_index=bogus)
    if expire in ("care_of", "both"):
        tokens = replace(tokens, care_of_nonce_index=(bogus + 1) & 0xFFFF)
    _, ba = only_ba(lab.bu(tokens, sequence=3, acknowledge=False))
    assert (ba.status, ba.sequence) == (status, 3)
    assert len(lab.cn.binding_cache) == 0


def test_nonce_older_than_max_nonce_lifetime_is_expired(lab: Lab) -> None:
    tokens = lab.rr()
    lab.net.run_for(ProtocolConstants().max_nonce_lifetime + 1)
    _, ba = only_ba(lab.bu(tokens, sequence=3))
    assert ba.status == Status.EXPIRED_NONCES


def test_sequence_not_newer_gets_135_with_last_accepted(lab: Lab) -> None:
    tokens = lab.rr()
    lab.bu(tokens, sequence=100)
    _, ba = only_ba(lab.bu(tokens, sequence=100))
    assert (ba.status, ba.sequence) == (Status.SEQUENCE_NUMBER_OUT_OF_WINDOW, 100)
    _, ba = only_ba(lab.bu(tokens, sequence=100 - 5, acknowledge=False))  # answered without A
    assert (ba.status, ba.sequence) == (Status.SEQUENCE_NUMBER_OUT_OF_WINDOW, 100)
    assert ba.find(mh.BindingAuthorizationData) is not None  # authorized: BA carries BAD


def test_sequence_wraps_modulo_2_16(lab: Lab) -> None:
    tokens = lab.rr()
    lab.bu(tokens, sequence=65535)
    _, ba = only_ba(lab.bu(tokens, sequence=0))
    assert ba.status == Status.ACCEPTED
    _, ba = only_ba(lab.bu(tokens, sequence=0x8000))  # exactly half the space ahead: not newer
    assert ba.status == Status.SEQUENCE_NUMBER_OUT_OF_WINDOW


def test_lifetime_capped_at_max_rr_binding_lifetime(lab: Lab) -> None:
    tokens = lab.rr()
    _, ba = only_ba(lab.bu(tokens, sequence=1, lifetime_units_4s=1000))
    assert ba.lifetime_s == 420


def test_lifetime_zero_deletes_binding(lab: Lab) -> None:
    tokens = lab.rr()
    lab.bu(tokens, sequence=1)
    _, ba = only_ba(lab.bu(tokens, sequence=2, lifetime_units_4s=0))
    assert (ba.status, ba.lifetime_units_4s) == (Status.ACCEPTED, 0)
    assert lab.cn.binding_cache.get(HOME) is None


def test_deregistration_from_home_uses_home_token_only_kbm(lab: Lab) -> None:
    """RFC 3775 5.2.6: care-of address == home address: Kbm = SHA1(home keygen token)."""
    tokens = lab.rr()
    lab.bu(tokens, sequence=1)
    at_home = lab.rr(care_of=HOME)
    assert lab.cn.binding_cache.get(HOME) is not None
    _, ba = only_ba(
        lab.bu(
            replace(at_home, care_of_nonce_index=0xDEAD), sequence=2, care_of=HOME, from_home=True
        )
    )
    assert ba.status == Status.ACCEPTED
    assert lab.cn.binding_cache.get(HOME) is None
    wire = ba.emit(source=CN.packed, destination=HOME.packed)
    key = rfc.kbm(at_home.home_keygen_token, None)
    assert ba.options[-1].authenticator == rfc.authenticator(key, HOME.packed, CN.packed, wire)


def test_full_cache_gets_130() -> None:
    lab = Lab(CorrespondentConfig(binding_cache_size=1))
    lab.bu(lab.rr(), sequence=1)
    other = IPv6Address("2001:db8:1::6")
    tokens = lab.rr(home=other)
    _, ba = only_ba(lab.bu(tokens, sequence=1, home=other))
    assert ba.status == Status.INSUFFICIENT_RESOURCES


def test_binding_expires(lab: Lab) -> None:
    lab.bu(lab.rr(), sequence=1, lifetime_units_4s=10)  # accepted at t=1, 40 s
    lab.net.run_for(38)
    assert lab.cn.binding_cache.get(HOME) is not None
    lab.net.run_for(2)
    assert lab.cn.binding_cache.get(HOME) is None


# -- data path and errors -----------------------------------------------------------------------


def udp(source: IPv6Address, destination: IPv6Address, *headers: object) -> bytes:
    return Ipv6Packet(
        source=source,
        destination=destination,
        extension_headers=headers,
        payload=UdpDatagram(source_port=9, destination_port=9, payload=b"data"),
    ).emit()


def test_route_optimized_output_and_input(lab: Lab) -> None:
    lab.bu(lab.rr(), sequence=1)
    lab.net.call("cn", "send", udp(CN, HOME))
    lab.net.run_for(1)
    (out,) = lab.mn.take()
    assert out.destination == CARE_OF and out.extension_headers == (
        RoutingType2(home_address=HOME),
    )
    assert out.final_destination == HOME  # and the checksum verified on parse
    lab.net.inject("cn", udp(CARE_OF, CN, hao(HOME)))
    lab.net.run_for(1)
    ((_, delivered),) = lab.net.nodes["cn"].delivered
    assert delivered == udp(HOME, CN)  # Home Address option swapped in and removed


def test_hao_without_binding_gets_binding_error_1(lab: Lab) -> None:
    lab.net.inject("cn", udp(CARE_OF, CN, hao(HOME)))
    lab.net.run_for(1)
    (be,) = lab.mn.take()
    assert be.destination == CARE_OF
    assert be.payload == mh.BindingError(status=1, home_address=HOME).aligned()
    assert lab.net.nodes["cn"].delivered == []


def test_binding_errors_are_rate_limited(lab: Lab) -> None:
    for _ in range(50):
        lab.net.inject("cn", udp(CARE_OF, CN, hao(HOME)))
    lab.net.run_for(1)
    assert len(lab.mn.take()) == CorrespondentConfig().binding_error_burst


def test_unknown_mh_type_gets_binding_error_2(lab: Lab) -> None:
    packet = Ipv6Packet(source=HOME, destination=CN, payload=mh.UnknownMobilityMessage(mh_type=42))
    lab.net.inject("cn", packet.emit())
    lab.net.run_for(1)
    (be,) = lab.mn.take()
    assert be.payload == mh.BindingError(status=2, home_address=IPv6Address("::")).aligned()


def test_header_len_too_small_gets_parameter_problem_at_header_len(lab: Lab) -> None:
    bu = mh.BindingUpdate(sequence=1).aligned()
    raw = bytearray(Ipv6Packet(source=HOME, destination=CN, payload=bu).emit())
    raw[41] = 0  # Header Len 0: 8 bytes, less than a BU's 16
    mh_part = bytes(raw[40:48])
    raw = raw[:48]
    raw[4:6] = (8).to_bytes(2, "big")
    from mip6.wire.checksum import upper_layer_checksum

    fixed = bytearray(mh_part)
    fixed[4:6] = b"\0\0"
    fixed[4:6] = upper_layer_checksum(HOME.packed, CN.packed, 135, bytes(fixed)).to_bytes(2, "big")
    raw[40:48] = fixed
    lab.net.inject("cn", bytes(raw))
    lab.net.run_for(1)
    (reply,) = lab.mn.take()
    assert isinstance(reply.payload, icmp.ParameterProblem)
    assert (reply.payload.code, reply.payload.pointer) == (0, 41)
    assert reply.payload.invoking_packet == bytes(raw)


def test_payload_proto_not_59_gets_parameter_problem_at_payload_proto(lab: Lab) -> None:
    bu = mh.BindingUpdate(sequence=1).aligned()
    message = bu.emit(source=HOME.packed, destination=CN.packed, overrides={"payload_proto": 6})
    raw = Ipv6Packet(
        source=HOME,
        destination=CN,
        payload=mh.UnknownMobilityMessage(mh_type=200, message_data=bytes(10)),
    ).emit()
    raw = raw[:40] + message
    raw = raw[:4] + len(message).to_bytes(2, "big") + raw[6:]
    lab.net.inject("cn", raw)
    lab.net.run_for(1)
    (reply,) = lab.mn.take()
    assert (reply.payload.code, reply.payload.pointer) == (0, 40)


def test_payload_proto_not_59_with_piggybacked_payload_gets_parameter_problem_at_40(
    lab: Lab,
) -> None:
    """RFC 3775 9.2: the Pointer SHOULD point at Payload Proto, also when the payload the field
    announces really follows the Mobility Header (here 20 bytes of a TCP header)."""
    bu = mh.BindingUpdate(sequence=1).aligned()
    message = bu.emit(source=HOME.packed, destination=CN.packed, overrides={"payload_proto": 6})
    message += bytes(20)
    raw = Ipv6Packet(
        source=HOME,
        destination=CN,
        payload=mh.UnknownMobilityMessage(mh_type=200, message_data=bytes(10)),
    ).emit()
    raw = raw[:40] + message
    raw = raw[:4] + len(message).to_bytes(2, "big") + raw[6:]
    lab.net.inject("cn", raw)
    lab.net.run_for(1)
    (reply,) = lab.mn.take()
    assert (reply.payload.code, reply.payload.pointer) == (0, 40)


def test_bad_checksum_silently_discarded(lab: Lab) -> None:
    hoti = bytearray(
        Ipv6Packet(
            source=HOME, destination=CN, payload=mh.HomeTestInit(home_init_cookie=b"x" * 8)
        ).emit()
    )
    hoti[44] ^= 0xFF
    lab.net.inject("cn", bytes(hoti))
    lab.net.run_for(1)
    assert lab.mn.take() == []


def test_binding_refresh_request_before_expiry_when_in_use(lab: Lab) -> None:
    lab.bu(lab.rr(), sequence=1, lifetime_units_4s=25)  # 100 s
    for _ in range(9):
        lab.net.run_for(10)
        lab.net.call("cn", "send", udp(CN, HOME))
    lab.net.run_for(1)
    brrs = [p for p in lab.mn.take() if isinstance(p.payload, mh.BindingRefreshRequest)]
    assert len(brrs) == 1
    assert brrs[0].destination == HOME and brrs[0].extension_headers == ()


def test_no_binding_refresh_request_when_idle(lab: Lab) -> None:
    lab.bu(lab.rr(), sequence=1, lifetime_units_4s=25)
    lab.net.run_for(100)
    assert lab.mn.payloads(mh.BindingRefreshRequest) == []


# -- bounded state --------------------------------------------------------------------------------


def test_hoti_coti_flood_leaves_memory_flat() -> None:
    """100,000 HoTI/CoTI from random addresses: no binding, a bounded nonce table, and no
    memory growth in mip6 beyond noise (RFC 3775 5.2.8: no state before a valid BU)."""
    lab = Lab()
    rng = random.Random(1)

    def packets(count: int) -> list[bytes]:
        out = []
        for i in range(count):
            source = IPv6Address(rng.randbytes(16))
            cookie = rng.randbytes(8)
            init = (
                mh.HomeTestInit(home_init_cookie=cookie)
                if i % 2
                else mh.CareOfTestInit(care_of_init_cookie=cookie)
            )
            out.append(Ipv6Packet(source=source, destination=CN, payload=init).emit())
        return out

    warmup, flood = packets(2_000), packets(100_000)
    for i, data in enumerate(warmup):
        lab.cn.handle_packet(i * 0.01, data)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i, data in enumerate(flood):
        replies = lab.cn.handle_packet(20 + i * 0.01, data)  # 1,000 s: nonces rotate too
        assert len(replies) == 1
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(
        stat.size_diff
        for stat in after.compare_to(before, "filename")
        if "/mip6/" in stat.traceback[0].filename
    )
    assert grown < 64 * 1024, grown
    assert len(lab.cn.binding_cache) == 0
    assert len(lab.cn.nonces) <= 10


def test_bad_authenticator_flood_creates_no_entries(lab: Lab) -> None:
    tokens = lab.rr()
    rng = random.Random(2)
    for sequence in range(2_000):
        home = IPv6Address(b"\x20\x01\x0d\xb8\x00\x01" + rng.randbytes(10))
        lab.net.inject(
            "cn",
            signed_bu(
                home=home,
                care_of=CARE_OF,
                correspondent=CN,
                tokens=tokens,
                sequence=sequence,
                tamper=True,
            ),
        )
    lab.net.run_for(1)
    assert len(lab.cn.binding_cache) == 0 and lab.mn.take() == []
    assert lab.cn.counters["bu_bad_authenticator"] == 2_000


def test_fast_test_init_path_answers_like_the_general_path() -> None:
    """A bare HoTI takes the Repr-free path; the same HoTI behind an (empty) Destination
    Options header takes the general one. Same correspondent state, same answer."""
    from mip6.wire.ipv6ext import DestinationOptions

    for init in (
        mh.HomeTestInit(home_init_cookie=b"c" * 8),
        mh.CareOfTestInit(care_of_init_cookie=b"c" * 8),
    ):
        fast_cn = CorrespondentNode(rng=random.Random(5))
        general_cn = CorrespondentNode(rng=random.Random(5))
        bare = Ipv6Packet(source=HOME, destination=CN, payload=init).emit()
        wrapped = Ipv6Packet(
            source=HOME,
            destination=CN,
            payload=init,
            extension_headers=(DestinationOptions.aligned([]),),
        ).emit()
        (fast,) = fast_cn.handle_packet(1.0, bare)
        (general,) = general_cn.handle_packet(1.0, wrapped)
        assert fast.data == general.data
        assert fast_cn.counters == general_cn.counters


@given(
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.binary(min_size=20, max_size=20),
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=16, max_size=16),
)
def test_fast_authorized_ba_is_byte_identical_to_the_codec(
    status: int, sequence: int, lifetime_units: int, kbm: bytes, care_of: bytes, home: bytes
) -> None:
    from mip6.core.binding_cache import BindingRequest
    from mip6.roles.correspondent_node import _authorized_ba_packet

    assume(care_of != home)  # the fast path is for the BA that carries a type 2 routing header
    care_of_address, home_address = IPv6Address(care_of), IPv6Address(home)
    request = BindingRequest(
        mh.BindingUpdate(sequence=sequence), home_address, care_of_address, care_of_address
    )
    cn = CorrespondentNode(rng=random.Random(1))
    generic = cn._ba_packet(request, CN, status, kbm, sequence, lifetime_units * 4)
    fast = _authorized_ba_packet(
        CN, care_of_address, home_address, status, sequence, lifetime_units, kbm
    )
    assert fast == generic


@st.composite
def bu_specs(draw: st.DrawFn) -> dict:
    return {
        "sequence": draw(st.integers(0, 0xFFFF)),
        "flags": draw(st.sampled_from([0x8000, 0x0000, 0xC000, 0x9000, 0xA000, 0x8001, 0x8FFF])),
        "lifetime": draw(st.sampled_from([0, 1, 60, 105, 0xFFFF])),
        "valid_indices": draw(st.booleans()),
        "tamper": draw(st.integers(0, 5)) == 0,
        "home": draw(st.sampled_from(["2001:db8:1::5", "2001:db8:1::6", "fe80::5", "ff02::5"])),
        "care_of": draw(st.sampled_from(["2001:db8:3::5", "2001:db8:1::5", "::1"])),
    }


def canonical_bu(cn: CorrespondentNode, spec: dict, now: float) -> bytes:
    """A Binding Update in the layout the correspondent's fast path reads, authorized with
    the tokens ``cn`` hands out (unless the spec says otherwise)."""
    from dataclasses import replace as dc_replace

    from mip6.core import rr as core_rr

    home, care_of = IPv6Address(spec["home"]), IPv6Address(spec["care_of"])
    nonce = cn.nonces.current(now)
    index = nonce.index if spec["valid_indices"] else (nonce.index + 100) & 0xFFFF
    flags = spec["flags"]
    bu = mh.BindingUpdate(
        sequence=spec["sequence"],
        acknowledge=bool(flags & 0x8000),
        home_registration=bool(flags & 0x4000),
        link_local_address_compatibility=bool(flags & 0x2000),
        key_management_mobility_capability=bool(flags & 0x1000),
        reserved_flags=flags & 0x0FFF,
        lifetime_units_4s=spec["lifetime"],
        options=(
            mh.NonceIndices(home_nonce_index=index, care_of_nonce_index=index),
            mh.BindingAuthorizationData(),
        ),
    ).aligned()
    kbm = core_rr.binding_management_key(
        core_rr.home_keygen_token(nonce.kcn, home, nonce.nonce),
        None if home == care_of else core_rr.care_of_keygen_token(nonce.kcn, care_of, nonce.nonce),
    )
    auth = core_rr.authenticator(kbm, care_of, CN, mh.mobility_data_for_authenticator(bu))
    if spec["tamper"]:
        auth = bytes(12)
    bu = dc_replace(bu, options=(*bu.options[:-1], mh.BindingAuthorizationData(authenticator=auth)))
    return Ipv6Packet(
        source=care_of, destination=CN, extension_headers=(hao(home),), payload=bu
    ).emit()


@given(st.lists(bu_specs(), min_size=1, max_size=6))
def test_fast_binding_update_path_equals_the_general_path(specs: list[dict]) -> None:
    """The fixed-offset reader of the common Binding Update decides exactly as the general
    parser and pipeline do, packet after packet (same actions, counters and cache)."""
    fast, general = CorrespondentNode(rng=random.Random(8)), CorrespondentNode(rng=random.Random(8))
    for step, spec in enumerate(specs):
        now = 1.0 + step
        data = canonical_bu(fast, spec, now)
        assert len(data) == 96
        canonical_bu(general, spec, now)  # same nonce generation on both
        fast_actions = fast._fast_binding_update(now, data)
        routable = not any(
            a in (spec["home"], spec["care_of"]) for a in ("fe80::5", "ff02::5", "::1")
        )
        assert (fast_actions is not None) == routable  # the fast path really took it
        if fast_actions is None:
            fast_actions = fast.handle_packet(now, data)
        inbound, general_actions = general.pipeline.receive(now, data)
        if inbound is not None:
            general_actions += general.binding_update(now, inbound)
        assert fast_actions == general_actions
        assert [
            (e.home_address, e.care_of_address, e.sequence, e.expires) for e in fast.binding_cache
        ] == [
            (e.home_address, e.care_of_address, e.sequence, e.expires)
            for e in general.binding_cache
        ]
