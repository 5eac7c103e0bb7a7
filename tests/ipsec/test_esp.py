"""ESP on whole packets: both algorithms and both modes, checked against independent
computations of AES-GCM and HMAC-SHA1-96, RFC test vectors, tampering and fuzzing."""

from __future__ import annotations

import hashlib
import hmac
import random
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from mip6.core.ipsec import (
    Algorithm,
    BadIcv,
    BadPadding,
    CannotProtect,
    Direction,
    DummyPacket,
    EspError,
    Malformed,
    Mode,
    PolicyViolation,
    Replayed,
    SaParameters,
    SecurityAssociation,
    Truncated,
    UnknownSpi,
    dummy_packet,
    protect,
    protect_tunnel,
    verify,
)
from mip6.core.ipsec.transforms import AesCbcHmacSha196
from mip6.wire import mobility as mh
from mip6.wire import protocols
from mip6.wire.esp import EspPacket
from mip6.wire.ipv6 import Ipv6Packet, RawPayload
from mip6.wire.ipv6ext import (
    DestinationOptions,
    FragmentHeader,
    RoutingType2,
    UnknownIpv6Option,
)

from .helpers import (
    ALGORITHMS,
    CARE_OF,
    CBC_KEY,
    CORRESPONDENT,
    GCM_KEY,
    HMAC_KEY,
    HOME,
    HOME_AGENT,
    binding_acknowledgement,
    binding_update,
    forward_tunnelled,
    home_test,
    home_test_init,
    parameters,
    reverse_tunnelled,
    sa_pair,
)

# -- an independent AES-GCM (NIST SP 800-38D) over a bare AES block function -------------------


def _aes_block(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _gf_multiply(x: int, y: int) -> int:
    """Multiplication in GF(2^128) with GCM's bit order (SP 800-38D 6.3)."""
    r = 0xE1 << 120
    z, v = 0, y
    for i in range(127, -1, -1):
        if x >> i & 1:
            z ^= v
        v = (v >> 1) ^ r if v & 1 else v >> 1
    return z


def _ghash(h: int, data: bytes) -> int:
    y = 0
    for i in range(0, len(data), 16):
        y = _gf_multiply(y ^ int.from_bytes(data[i : i + 16].ljust(16, b"\0"), "big"), h)
    return y


def independent_gcm(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Ciphertext || 16-byte tag for a 96-bit nonce, written from SP 800-38D 7.1."""
    h = int.from_bytes(_aes_block(key, bytes(16)), "big")
    counter = int.from_bytes(nonce + b"\0\0\0\1", "big")
    ciphertext = bytearray()
    for i in range(0, len(plaintext), 16):
        counter = (counter & ~0xFFFFFFFF) | ((counter + 1) & 0xFFFFFFFF)
        stream = _aes_block(key, counter.to_bytes(16, "big"))
        ciphertext += bytes(a ^ b for a, b in zip(plaintext[i : i + 16], stream, strict=False))

    def padded(data: bytes) -> bytes:
        return data + bytes(-len(data) % 16)

    lengths = struct.pack("!QQ", len(aad) * 8, len(ciphertext) * 8)
    s = _ghash(h, padded(aad) + padded(bytes(ciphertext)) + lengths)
    tag = int.from_bytes(_aes_block(key, nonce + b"\0\0\0\1"), "big") ^ s
    return bytes(ciphertext) + tag.to_bytes(16, "big")


def test_independent_gcm_matches_the_gcm_spec_vectors() -> None:
    # McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 1 and 2.
    key, nonce = bytes(16), bytes(12)
    assert independent_gcm(key, nonce, b"", b"").hex() == "58e2fccefa7e3061367f1d57a4e7455a"
    assert independent_gcm(key, nonce, bytes(16), b"").hex() == (
        "0388dace60b6a392f328c2b971b2fe78" + "ab6e47d42cec13bdf53a67b21257bddf"
    )


def independent_hmac_sha1_96(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA1 through cryptography's HMAC (the code under test uses the stdlib's)."""
    mac = crypto_hmac.HMAC(key, hashes.SHA1())
    mac.update(data)
    return mac.finalize()[:12]


def test_hmac_sha1_96_rfc2202_vectors() -> None:
    # RFC 2202 3 test cases 1 and 2; RFC 2404 2 keeps the first 96 bits.
    cases = [
        (b"\x0b" * 20, b"Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"),
        (b"Jefe", b"what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
    ]
    for key, data, digest in cases:
        transform = AesCbcHmacSha196(CBC_KEY, key)
        assert transform._icv(data).hex() == digest[:24]
        assert independent_hmac_sha1_96(key, data).hex() == digest[:24]
        assert hmac.new(key, data, hashlib.sha1).hexdigest() == digest


def test_aes_cbc_rfc3602_vectors() -> None:
    """RFC 3602 4, Case #1 and Case #2, sealed and opened one after the other by the same
    transform (its contexts live across packets, so the second case checks the chaining)."""
    cases = [
        (
            "06a9214036b8a15b512e03d534120006",
            "3dafba429d9eb430b422da802c9fac41",
            b"Single block msg",
            "e353779c1079aeb82708942dbe77181a",
        ),
        (
            "c286696d887c9aa0611bbb3e2025a45a",
            "562e17996d093d28ddb3ba695a2e6f58",
            bytes(range(32)),
            "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
        ),
    ]
    for key, iv, plaintext, ciphertext in cases:
        transform = AesCbcHmacSha196(bytes.fromhex(key), HMAC_KEY)
        for _ in range(3):
            sealed = transform.seal(b"\0" * 8, bytes.fromhex(iv), plaintext)
            assert sealed[16:-12].hex() == ciphertext
            assert transform.open(b"\0" * 8, sealed) == plaintext
        assert transform.open(b"\0" * 8, sealed) == plaintext


# -- the four RFC 3776 packets --------------------------------------------------------------------

CASES = {
    "bu": (Mode.TRANSPORT, binding_update),
    "ba": (Mode.TRANSPORT, binding_acknowledgement),
    "hoti": (Mode.TUNNEL, lambda: reverse_tunnelled(home_test_init())),
    "hot": (Mode.TUNNEL, lambda: forward_tunnelled(home_test())),
}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("case", list(CASES))
def test_round_trip(algorithm: Algorithm, case: str) -> None:
    mode, build = CASES[case]
    sender, receiver = sa_pair(algorithm, mode=mode)
    original = build()
    for expected_sequence in (1, 2, 3):
        protected = protect(sender, original)
        opened = verify(receiver, protected)
        assert opened.packet == original
        assert opened.sequence_number == expected_sequence
    if mode is Mode.TUNNEL:
        assert opened.inner == original[40:]
        assert opened.next_header == protocols.IPV6


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_transport_bu_keeps_home_address_option_outside(algorithm: Algorithm) -> None:
    """RFC 3776 3.1: IPv6 (care-of -> home agent), Destination Options with the Home Address
    option, ESP, then (encrypted) the Mobility Header."""
    protected = Ipv6Packet.parse(protect(sa_pair(algorithm)[0], binding_update()))
    assert (protected.source, protected.destination) == (CARE_OF, HOME_AGENT)
    (options,) = protected.extension_headers
    assert isinstance(options, DestinationOptions) and options.home_address == HOME
    assert isinstance(protected.payload, EspPacket) and protected.payload.spi == 0x1001


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_transport_ba_keeps_type2_routing_header_outside(algorithm: Algorithm) -> None:
    protected = Ipv6Packet.parse(protect(sa_pair(algorithm)[0], binding_acknowledgement()))
    assert protected.extension_headers == (RoutingType2(home_address=HOME),)
    assert isinstance(protected.payload, EspPacket)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_tunnel_hoti_outer_header_then_esp(algorithm: Algorithm) -> None:
    """RFC 3776 3.2: IPv6 (care-of -> home agent), ESP, then the whole inner packet."""
    sender, receiver = sa_pair(algorithm, mode=Mode.TUNNEL)
    protected = protect_tunnel(sender, home_test_init(), source=CARE_OF, destination=HOME_AGENT)
    outer = Ipv6Packet.parse(protected)
    assert (outer.source, outer.destination, outer.extension_headers) == (
        CARE_OF,
        HOME_AGENT,
        (),
    )
    assert isinstance(outer.payload, EspPacket)
    inner = Ipv6Packet.parse(verify(receiver, protected).inner)
    assert (inner.source, inner.destination) == (HOME, CORRESPONDENT)
    assert isinstance(inner.payload, mh.HomeTestInit)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_transport_final_destination_options_encrypted(algorithm: Algorithm) -> None:
    """RFC 4303 3.1.1: Destination Options for the final destination may follow ESP; one after
    the routing header and without a Home Address option is encrypted; an atomic fragment
    header stays outside."""
    original = Ipv6Packet(
        source=HOME_AGENT,
        destination=CARE_OF,
        extension_headers=(
            RoutingType2(home_address=HOME),
            FragmentHeader(identification=5),
            DestinationOptions.aligned([UnknownIpv6Option(option_type=0x1E, data=b"ab")]),
        ),
        payload=mh.BindingAcknowledgement(status=0, sequence=1).aligned(),
    ).emit()
    sender, receiver = sa_pair(algorithm)
    protected = Ipv6Packet.parse(protect(sender, original))
    assert [type(h) for h in protected.extension_headers] == [RoutingType2, FragmentHeader]
    assert verify(receiver, protect(sender, original)).packet == original


# -- what protect() refuses -----------------------------------------------------------------------


def test_protect_refuses_fragments() -> None:
    fragment = Ipv6Packet(
        source=CARE_OF,
        destination=HOME_AGENT,
        extension_headers=(FragmentHeader(more_fragments=True, identification=1),),
        payload=mh.BindingRefreshRequest().aligned(),
    ).emit()
    with pytest.raises(CannotProtect, match=r"3\.3\.4"):
        protect(sa_pair(Algorithm.AES_GCM_16)[0], fragment)


def test_protect_tunnel_sa_needs_ipv6_in_ipv6() -> None:
    sender = sa_pair(Algorithm.AES_GCM_16, mode=Mode.TUNNEL)[0]
    with pytest.raises(CannotProtect):
        protect(sender, binding_update())
    broken = bytearray(reverse_tunnelled(home_test_init()))
    broken[44:46] = b"\x00\x01"  # the inner Payload Length no longer fits
    with pytest.raises(CannotProtect):
        protect(sender, bytes(broken))
    assert sender.sequence_counter == 0


@pytest.mark.parametrize("data", [b"", b"\x60" * 39, b"\x40" + bytes(39), binding_update()[:-1]])
def test_protect_refuses_broken_packets(data: bytes) -> None:
    with pytest.raises(CannotProtect):
        protect(sa_pair(Algorithm.AES_GCM_16)[0], data)


def test_protect_and_verify_refuse_the_wrong_direction() -> None:
    sender, receiver = sa_pair(Algorithm.AES_GCM_16)
    with pytest.raises(ValueError):
        protect(receiver, binding_update())
    with pytest.raises(ValueError):
        verify(sender, protect(sender, binding_update()))


def test_protect_refuses_oversized_packet() -> None:
    big = Ipv6Packet(
        source=HOME,
        destination=CORRESPONDENT,
        payload=RawPayload(protocol=253, data=bytes(65_500)),
    ).emit()
    with pytest.raises(CannotProtect):
        protect(sa_pair(Algorithm.AES_CBC_HMAC_SHA1_96)[0], big)


# -- wire format, checked independently -----------------------------------------------------------


def _expected_plaintext(payload: bytes, next_header: int, block: int) -> bytes:
    pad = -(len(payload) + 2) % block
    return payload + bytes(range(1, pad + 1)) + bytes((pad, next_header))


@pytest.mark.parametrize("size", range(0, 40))
def test_gcm_packet_is_rfc4106_by_independent_computation(size: int) -> None:
    """RFC 4106: nonce = salt || explicit IV, AAD = SPI || Sequence Number, 16-byte tag; RFC
    4303 2.4: padding 1, 2, 3... to a 4-byte boundary."""
    inner = Ipv6Packet(
        source=HOME,
        destination=CORRESPONDENT,
        payload=mh.UnknownMobilityMessage(mh_type=200, message_data=bytes(2 + 8 * (size % 5))),
    ).emit()
    sender = sa_pair(Algorithm.AES_GCM_16, mode=Mode.TUNNEL)[0]
    sender.sequence_counter = size * 1000
    protected = protect(sender, reverse_tunnelled(inner) if size % 2 else forward_tunnelled(inner))
    esp = protected[40:]
    header, iv, rest = esp[:8], esp[8:16], esp[16:]
    assert struct.unpack("!II", header) == (0x1001, size * 1000 + 1)
    assert iv[4:] == (size * 1000 + 1).to_bytes(4, "big")  # epoch || Sequence Number
    expected = independent_gcm(
        GCM_KEY[:16], GCM_KEY[16:] + iv, _expected_plaintext(inner, 41, 4), header
    )
    assert rest == expected
    assert (len(rest) - 16) % 4 == 0


def test_cbc_packets_are_rfc3602_rfc2404_by_independent_computation() -> None:
    """Forty packets of growing size on one SA, each decrypted with a fresh AES-CBC context
    and its ICV recomputed with an independent HMAC: RFC 3602 (random IV, 16-octet blocks),
    RFC 2404 (96-bit HMAC-SHA1 over header, IV and ciphertext), RFC 4303 2.4 padding."""
    sender, receiver = sa_pair(Algorithm.AES_CBC_HMAC_SHA1_96, seed=40)
    for size in range(40):
        original = Ipv6Packet(
            source=HOME,
            destination=CORRESPONDENT,
            payload=mh.UnknownMobilityMessage(mh_type=201, message_data=bytes(2 + 8 * size)),
        ).emit()
        protected = protect(sender, original)
        assert protected[6] == protocols.ESP
        esp = protected[40:]
        header, iv, ciphertext, icv = esp[:8], esp[8:24], esp[24:-12], esp[-12:]
        # RFC 4303 2.8 / 3.3.2: the ICV covers the ESP header, the IV and the ciphertext.
        assert icv == independent_hmac_sha1_96(HMAC_KEY, header + iv + ciphertext)
        decryptor = Cipher(algorithms.AES(CBC_KEY), modes.CBC(iv)).decryptor()
        plaintext = decryptor.update(ciphertext) + decryptor.finalize()
        assert plaintext == _expected_plaintext(original[40:], protocols.MOBILITY, 16)
        assert verify(receiver, protected).packet == original


def test_cbc_ivs_come_from_the_injected_source() -> None:
    """RFC 3602 3: random, unpredictable IVs: drawn from random_bytes for every packet."""
    drawn: list[bytes] = []
    rng = random.Random(5)

    def source(length: int) -> bytes:
        value = rng.randbytes(length)
        drawn.append(value)
        return value

    sender = SecurityAssociation(
        parameters(Algorithm.AES_CBC_HMAC_SHA1_96, Direction.OUTBOUND), random_bytes=source
    )
    ivs = [protect(sender, binding_update())[64 + 8 : 64 + 24] for _ in range(4)]
    assert ivs == drawn[1:]  # drawn[0] is the (unused for CBC) GCM epoch
    assert len(set(ivs)) == 4


# -- what verify() refuses ------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("case", list(CASES))
def test_every_single_bit_flip_of_the_esp_part_refused(algorithm: Algorithm, case: str) -> None:
    """Every bit from the SPI to the end of the ICV is covered: each flip is refused with a
    typed error, and no refused packet moves the replay window."""
    mode, build = CASES[case]
    sender, receiver = sa_pair(algorithm, mode=mode)
    protected = protect(sender, build())
    start = 40 + sum(  # after the outer headers
        8 * (protected[o + 1] + 1) for o in _outer_header_offsets(protected)
    )
    causes: dict[str, int] = {}
    for position in range(start, len(protected)):
        for bit in range(8):
            tampered = bytearray(protected)
            tampered[position] ^= 1 << bit
            with pytest.raises(EspError) as caught:
                verify(receiver, bytes(tampered))
            causes[caught.value.cause] = causes.get(caught.value.cause, 0) + 1
    assert set(causes) <= {"unknown_spi", "bad_icv", "replayed"}
    assert causes["unknown_spi"] == 32
    assert (receiver.replay_top, receiver.replay_bitmap) == (0, 0)
    assert verify(receiver, protected).packet == build()


def _outer_header_offsets(packet: bytes) -> list[int]:
    offsets, next_header, offset = [], packet[6], 40
    while next_header in (0, 43, 60):
        offsets.append(offset)
        next_header, offset = packet[offset], offset + 8 * (packet[offset + 1] + 1)
    return offsets


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_spi_refused(algorithm: Algorithm) -> None:
    sender = sa_pair(algorithm, spi=0x1001)[0]
    receiver = sa_pair(algorithm, spi=0x1002)[1]
    with pytest.raises(UnknownSpi) as caught:
        verify(receiver, protect(sender, binding_update()))
    assert caught.value.spi == 0x1001


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_key_refused(algorithm: Algorithm) -> None:
    sender, receiver = sa_pair(algorithm)
    for field in ("encryption_key", "authentication_key"):
        key = getattr(receiver.parameters, field)
        if not key:
            continue
        other = SaParameters(
            **{
                name: getattr(receiver.parameters, name)
                for name in ("spi", "algorithm", "mode", "direction", "selector")
            },
            **{
                "encryption_key": receiver.parameters.encryption_key,
                "authentication_key": receiver.parameters.authentication_key,
                field: bytes(b ^ 0x80 for b in key),
            },
        )
        wrong = SecurityAssociation(other, random_bytes=random.Random(1).randbytes)
        packet = protect(sender, binding_update())
        # A wrong integrity key (or GCM key) fails the ICV. A wrong AES-CBC key alone passes
        # the HMAC and decrypts to garbage, which the padding check then refuses.
        expected = BadPadding if field == "encryption_key" and key == CBC_KEY else BadIcv
        with pytest.raises(expected):
            verify(wrong, packet)
        verify(receiver, packet)  # the right key still takes it


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_replayed_packet_refused(algorithm: Algorithm) -> None:
    sender, receiver = sa_pair(algorithm)
    packet = protect(sender, binding_update())
    verify(receiver, packet)
    with pytest.raises(Replayed):
        verify(receiver, packet)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_transport_packet_under_tunnel_sa_refused(algorithm: Algorithm) -> None:
    """Same keys, wrong mode: the ICV verifies, the payload is not an IPv6 packet."""
    sender = sa_pair(algorithm, mode=Mode.TRANSPORT)[0]
    receiver = sa_pair(algorithm, mode=Mode.TUNNEL)[1]
    with pytest.raises(PolicyViolation):
        verify(receiver, protect(sender, binding_update()))


# Crafted plaintexts sealed with the right keys, to reach the checks after the ICV.


def seal_raw(sender: SecurityAssociation, prefix: bytes, plaintext: bytes) -> bytes:
    """``prefix`` (an IPv6 header, Next Header 50, Payload Length fixed here) + an ESP packet
    with exactly ``plaintext`` encrypted and a valid ICV."""
    sequence = sender.next_sequence_number()
    header = struct.pack("!II", sender.spi, sequence)
    esp = header + sender.transform.seal(header, sender.iv(sequence), plaintext)
    out = bytearray(prefix[:40]) + esp
    out[6] = protocols.ESP
    out[4:6] = (len(out) - 40).to_bytes(2, "big")
    return bytes(out)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_bad_padding_refused(algorithm: Algorithm) -> None:
    sender, receiver = sa_pair(algorithm)
    block = 4 if algorithm is Algorithm.AES_GCM_16 else 16
    body = bytes(block * 2 - 5)
    good = body + b"\x01\x02\x03" + bytes((3, 135))
    assert verify(receiver, seal_raw(sender, binding_update(), good)).next_header == 135
    for plaintext in (
        body + b"\x01\x02\x04" + bytes((3, 135)),  # not monotonic
        body + b"\x00\x00\x00" + bytes((3, 135)),  # zeros, not 1, 2, 3
        bytes(block - 2) + bytes((block - 1, 135)),  # Pad Length beyond the plaintext
        bytes(block - 2) + bytes((255, 135)),
    ):
        with pytest.raises(BadPadding):
            verify(receiver, seal_raw(sender, binding_update(), plaintext))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_dummy_packet_discarded(algorithm: Algorithm) -> None:
    """RFC 4303 2.6: Next Header 59 is a traffic-flow-confidentiality dummy."""
    sender, receiver = sa_pair(algorithm)
    block = 4 if algorithm is Algorithm.AES_GCM_16 else 16
    with pytest.raises(DummyPacket):
        verify(receiver, seal_raw(sender, binding_update(), bytes(block - 2) + bytes((0, 59))))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("length", [0, 1, 40])
def test_dummy_packet_generated_and_discarded(
    algorithm: Algorithm, mode: Mode, length: int
) -> None:
    """RFC 4303 2.6: a transmitter MUST be able to send dummies; they are valid ESP (the
    window records them) and the receiver discards them without error."""
    sender, receiver = sa_pair(algorithm, mode=mode)
    dummy = dummy_packet(sender, source=CARE_OF, destination=HOME_AGENT, length=length)
    parsed = Ipv6Packet.parse(dummy)
    assert isinstance(parsed.payload, EspPacket) and parsed.source == CARE_OF
    with pytest.raises(DummyPacket):
        verify(receiver, dummy)
    assert receiver.replay_top == 1
    with pytest.raises(Replayed):
        verify(receiver, dummy)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_tunnel_payload_not_an_ipv6_packet_refused(algorithm: Algorithm) -> None:
    sender, receiver = sa_pair(algorithm, mode=Mode.TUNNEL)
    inner = home_test_init()
    block = 4 if algorithm is Algorithm.AES_GCM_16 else 16
    for payload in (inner[:-8], b"\x40" + inner[1:], bytes(block * 3)):
        pad = -(len(payload) + 2) % block
        plaintext = payload + bytes(range(1, pad + 1)) + bytes((pad, 41))
        with pytest.raises(Malformed):
            verify(receiver, seal_raw(sender, reverse_tunnelled(inner), plaintext))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_misaligned_and_short_ciphertexts_refused(algorithm: Algorithm) -> None:
    sender, receiver = sa_pair(algorithm)
    protected = protect(sender, binding_update())
    for cut in range(1, len(protected) - 40):
        short = bytearray(protected[:-cut])
        short[4:6] = (len(short) - 40).to_bytes(2, "big")
        with pytest.raises((Truncated, Malformed, BadIcv)):
            verify(receiver, bytes(short))
    longer = bytearray(protected + b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")
    longer[4:6] = (len(longer) - 40).to_bytes(2, "big")
    with pytest.raises(Malformed):
        verify(receiver, bytes(longer))


def test_packet_without_esp_refused() -> None:
    with pytest.raises(Malformed):
        verify(sa_pair(Algorithm.AES_GCM_16)[1], binding_update())


# -- fuzzing --------------------------------------------------------------------------------------


def _corpus() -> list[tuple[Mode, Algorithm, bytes]]:
    corpus = []
    for algorithm in ALGORITHMS:
        for mode, build in CASES.values():
            sender = sa_pair(algorithm, mode=mode, seed=99)[0]
            for _ in range(3):
                corpus.append((mode, algorithm, protect(sender, build())))
    return corpus


def _mutate(rng: random.Random, data: bytearray) -> bytearray:
    for _ in range(rng.choice((1, 1, 2, 3, 6))):
        if not data:
            return data
        position = rng.randrange(len(data))
        choice = rng.randrange(7)
        if choice == 0:
            data[position] ^= 1 << rng.randrange(8)
        elif choice == 1:
            data[position] = rng.choice((0, 1, 2, 4, 8, 16, 41, 43, 50, 59, 60, 127, 128, 255))
        elif choice == 2:
            data[position] = rng.randrange(256)
        elif choice == 3:
            data[position:position] = rng.randbytes(rng.randrange(1, 20))
        elif choice == 4:
            del data[position : position + rng.randrange(1, 20)]
        elif choice == 5:
            data = data[: rng.randrange(len(data) + 1)]
        else:
            data[position : position + 4] = rng.randbytes(4)
    if rng.random() < 0.7 and len(data) >= 40:  # repair Payload Length to get past the walk
        data[4:6] = min(len(data) - 40, 0xFFFF).to_bytes(2, "big")
    return data


def test_fuzz_verify_mutated_packets_raise_only_typed_errors() -> None:
    rng = random.Random(20260501)
    corpus = _corpus()
    outcomes: dict[str, int] = {}
    for _ in range(6000):
        mode, algorithm, seed = rng.choice(corpus)
        receiver = sa_pair(algorithm, mode=mode, seed=1)[1]
        data = bytes(_mutate(rng, bytearray(seed)))
        try:
            verify(receiver, data)
            outcome = "accepted"
        except EspError as error:
            outcome = error.cause
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    # the fuzzer reaches the structural checks and the ICV, not only the first one
    assert {"truncated", "malformed", "bad_icv", "unknown_spi"} <= set(outcomes), outcomes
    assert outcomes["bad_icv"] > 1000


def test_fuzz_verify_mutated_plaintexts_with_valid_icv() -> None:
    """Structure-aware: mutate what is under the ICV and seal it properly, so the checks
    after decryption (padding, trailer, tunnelled packet) see every kind of garbage."""
    rng = random.Random(7)
    outcomes: dict[str, int] = {}
    for i in range(3000):
        algorithm = ALGORITHMS[i % 2]
        mode = (Mode.TRANSPORT, Mode.TUNNEL)[i // 2 % 2]
        sender, receiver = sa_pair(algorithm, mode=mode, seed=i)
        inner = home_test_init() if mode is Mode.TUNNEL else binding_update()[64:]
        block = 4 if algorithm is Algorithm.AES_GCM_16 else 16
        pad = -(len(inner) + 2) % block
        plaintext = bytearray(inner + bytes(range(1, pad + 1)) + bytes((pad, 41 if i % 4 else 135)))
        plaintext = _mutate(rng, plaintext)
        plaintext += bytes(-len(plaintext) % block or (block if not plaintext else 0))
        try:
            verify(receiver, seal_raw(sender, binding_update(), bytes(plaintext)))
            outcome = "accepted"
        except EspError as error:
            outcome = error.cause
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert {"bad_padding", "malformed", "accepted"} <= set(outcomes), outcomes


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(ALGORITHMS), st.sampled_from(list(Mode)))
def test_fuzz_verify_arbitrary_bytes(data: bytes, algorithm: Algorithm, mode: Mode) -> None:
    receiver = sa_pair(algorithm, mode=mode)[1]
    for candidate in (data, b"\x60\0\0\0" + len(data).to_bytes(2, "big") + b"\x32\x40" + data):
        try:
            verify(receiver, candidate)
        except EspError:
            pass


def test_gcm_sequence_number_is_authenticated() -> None:
    """RFC 4106 5: the Sequence Number is in the AAD; a packet moved to another number (as a
    replay past the window would need) fails the tag."""
    sender, receiver = sa_pair(Algorithm.AES_GCM_16)
    packet = bytearray(protect(sender, binding_update()))
    packet[64 + 7] = 9
    with pytest.raises(BadIcv):
        verify(receiver, bytes(packet))


def test_keys_used_are_the_configured_ones() -> None:
    # Sanity for the independent checks above: the helpers' keys are what the SAs hold.
    sender = sa_pair(Algorithm.AES_GCM_16)[0]
    assert sender.parameters.encryption_key == GCM_KEY
