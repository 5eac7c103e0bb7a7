"""Security Associations: the RFC 4303 3.4.3 replay window, the 3.3.3 counter, export/import
for the distributed server's backups, and keys kept out of every repr."""

from __future__ import annotations

import json
import logging
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mip6.core.ipsec import (
    REPLAY_WINDOW,
    Algorithm,
    Direction,
    Mode,
    Replayed,
    SaImportError,
    SaParameters,
    SaRetired,
    SecurityAssociation,
    SecurityPolicyDatabase,
    Selector,
    SequenceExhausted,
    protect,
    verify,
)
from mip6.core.ipsec.policy import PairKeys, SaKeys

from .helpers import (
    ALGORITHMS,
    CBC_KEY,
    GCM_KEY,
    HMAC_KEY,
    HOME,
    HOME_AGENT,
    binding_update,
    parameters,
    sa_pair,
)


def receiver(algorithm: Algorithm = Algorithm.AES_GCM_16) -> SecurityAssociation:
    return sa_pair(algorithm)[1]


def accept(sa: SecurityAssociation, sequence_number: int) -> None:
    """What verify() does around the ICV check: check, then (ICV good) record."""
    sa.check_replay(sequence_number)
    sa.accept_sequence_number(sequence_number)


# -- RFC 4303 3.4.3 anti-replay window ---------------------------------------------------------


def test_window_fresh_sa_first_packet_accepted() -> None:
    sa = receiver()
    accept(sa, 1)
    assert (sa.replay_top, sa.replay_bitmap) == (1, 1)


def test_window_sequence_zero_refused() -> None:
    # RFC 4303 3.3.3: the first packet carries 1; 0 is never sent.
    with pytest.raises(Replayed):
        receiver().check_replay(0)


def test_window_duplicate_refused() -> None:
    sa = receiver()
    accept(sa, 5)
    with pytest.raises(Replayed) as caught:
        sa.check_replay(5)
    assert caught.value.duplicate and caught.value.cause == "replayed"


def test_window_out_of_order_in_window_accepted_once() -> None:
    sa = receiver()
    for number in (10, 7, 9, 8):
        accept(sa, number)
    for number in (7, 8, 9, 10):
        with pytest.raises(Replayed):
            sa.check_replay(number)
    accept(sa, 6)  # never seen, still in the window


def test_window_left_edge() -> None:
    sa = receiver()
    accept(sa, 100)
    accept(sa, 100 - REPLAY_WINDOW + 1)  # the oldest number the window still holds
    with pytest.raises(Replayed) as caught:
        sa.check_replay(100 - REPLAY_WINDOW)  # one left of the window
    assert not caught.value.duplicate


def test_window_advances_and_forgets() -> None:
    sa = receiver()
    accept(sa, 1)
    accept(sa, 3)
    accept(sa, 70)  # slides 67 to the right: 3 is now left of the window
    with pytest.raises(Replayed):
        sa.check_replay(3)
    accept(sa, 69)
    accept(sa, 70 - REPLAY_WINDOW + 1)
    with pytest.raises(Replayed):
        sa.check_replay(69)


def test_window_jump_beyond_window_resets_bitmap() -> None:
    sa = receiver()
    for number in range(1, 65):
        accept(sa, number)
    accept(sa, 1000)
    assert sa.replay_bitmap == 1
    accept(sa, 999)


def test_window_check_does_not_update() -> None:
    # RFC 4303 3.4.3: "The receive window is updated only if the ICV verification succeeds".
    sa = receiver()
    sa.check_replay(5)
    assert (sa.replay_top, sa.replay_bitmap) == (0, 0)
    sa.check_replay(5)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=300), max_size=120))
def test_window_matches_set_model(numbers: list[int]) -> None:
    """The bitmap behaves as the RFC's words: accepted iff non-zero, never accepted before, and
    not more than 63 below the highest accepted number."""
    sa = receiver()
    seen: set[int] = set()
    for number in numbers:
        highest = max(seen, default=0)
        expected = number != 0 and number not in seen and number > highest - REPLAY_WINDOW
        try:
            sa.check_replay(number)
        except Replayed:
            assert not expected, number
            continue
        assert expected, number
        sa.accept_sequence_number(number)
        seen.add(number)
    assert sa.replay_top == max(seen, default=0)


# -- RFC 4303 3.3.3 sender counter --------------------------------------------------------------


def test_counter_starts_at_one() -> None:
    sender = sa_pair(Algorithm.AES_GCM_16)[0]
    assert [sender.next_sequence_number() for _ in range(3)] == [1, 2, 3]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_counter_last_number_then_refuses_to_cycle(algorithm: Algorithm) -> None:
    sender, inbound = sa_pair(algorithm)
    sender.sequence_counter = 0xFFFF_FFFE
    last = protect(sender, binding_update())
    assert verify(inbound, last).sequence_number == 0xFFFF_FFFF
    with pytest.raises(SequenceExhausted):
        protect(sender, binding_update())
    assert sender.sequence_counter == 0xFFFF_FFFF  # nothing consumed by the refusal


def test_continue_after_another_holder_of_the_sa() -> None:
    # a distributed server's successor continues the dead contact node's counters
    sender, inbound = sa_pair(Algorithm.AES_GCM_16)
    sender.continue_after(41, skip=1000)
    assert sender.next_sequence_number() == 1042
    sender.continue_after(5, skip=10)  # never back
    assert sender.next_sequence_number() == 1043
    sender.continue_after(0xFFFF_FFF0, skip=1000)  # capped at the last number
    assert sender.sequence_counter == 0xFFFF_FFFF
    inbound.continue_after(500)
    for seen in (500, 499, 437):  # at and below the reported top: taken as seen
        with pytest.raises(Replayed):
            inbound.check_replay(seen)
    inbound.check_replay(501)
    inbound.continue_after(100)  # never back
    assert inbound.replay_top == 500


def test_counter_inbound_sa_does_not_send() -> None:
    with pytest.raises(ValueError, match="inbound"):
        receiver().next_sequence_number()


# -- parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spi", [0, 1, 255, 1 << 32])
def test_parameters_reserved_spi_refused(spi: int) -> None:
    with pytest.raises(ValueError):
        parameters(Algorithm.AES_GCM_16, Direction.OUTBOUND, spi=spi)


@pytest.mark.parametrize(
    ("algorithm", "encryption_key", "authentication_key"),
    [
        (Algorithm.AES_GCM_16, bytes(range(100, 116)), b""),  # no salt
        (Algorithm.AES_GCM_16, bytes(range(100, 120)), HMAC_KEY),  # GCM takes no HMAC key
        (Algorithm.AES_CBC_HMAC_SHA1_96, bytes(range(100, 120)), HMAC_KEY),
        (Algorithm.AES_CBC_HMAC_SHA1_96, CBC_KEY, HMAC_KEY[:16]),  # RFC 2404 3: 160 bits only
    ],
)
def test_parameters_bad_key_lengths_refused(
    algorithm: Algorithm, encryption_key: bytes, authentication_key: bytes
) -> None:
    with pytest.raises(ValueError) as caught:
        SaParameters(
            spi=0x1001,
            algorithm=algorithm,
            mode=Mode.TRANSPORT,
            direction=Direction.OUTBOUND,
            encryption_key=encryption_key,
            authentication_key=authentication_key,
        )
    for secret in (encryption_key, authentication_key):
        assert not secret or secret.hex() not in str(caught.value).lower()


@pytest.mark.parametrize("length", [20, 28, 36])
def test_parameters_gcm_key_sizes(length: int) -> None:
    sender, inbound = (
        SecurityAssociation(
            SaParameters(
                spi=0x2000,
                algorithm=Algorithm.AES_GCM_16,
                mode=Mode.TRANSPORT,
                direction=direction,
                encryption_key=bytes(range(length)),
            ),
            random_bytes=random.Random(3).randbytes,
        )
        for direction in (Direction.OUTBOUND, Direction.INBOUND)
    )
    assert verify(inbound, protect(sender, binding_update())).packet == binding_update()


# -- keys never shown ---------------------------------------------------------------------------


def test_repr_redacts_keys() -> None:
    sender, inbound = sa_pair(Algorithm.AES_CBC_HMAC_SHA1_96)
    keys = SaKeys(spi=0x1001, encryption_key=CBC_KEY, authentication_key=HMAC_KEY)
    pair = PairKeys(
        binding_update=keys, binding_acknowledgement=keys, home_test_init=keys, home_test=keys
    )
    texts = [repr(sender), str(sender), repr(inbound.parameters), str(keys), repr(pair)]
    for text in texts:
        for secret in (CBC_KEY, HMAC_KEY, GCM_KEY):
            assert secret.hex() not in text.lower()
            assert repr(secret) not in text
        assert "redacted" in text


def test_logs_never_hold_keys(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    database = SecurityPolicyDatabase(random_bytes=random.Random(1).randbytes)
    sa = database.add_sa(parameters(Algorithm.AES_CBC_HMAC_SHA1_96, Direction.INBOUND))
    sender = sa_pair(Algorithm.AES_CBC_HMAC_SHA1_96)[0]
    packet = protect(sender, binding_update())
    database.input(packet)
    database.input(packet)  # replay: logged drop
    database.input(packet[:-1] + bytes([packet[-1] ^ 1]))  # bad ICV: logged drop
    logging.getLogger("test").debug("%r %s", sa, sa.parameters)
    assert caplog.records
    for record in caplog.records:
        message = record.getMessage().lower()
        assert CBC_KEY.hex() not in message and HMAC_KEY.hex() not in message


# -- export / import ----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_export_import_round_trip(algorithm: Algorithm) -> None:
    selector = Selector(source=HOME, destination=HOME_AGENT, mh_types=frozenset({5}))
    sender, inbound = sa_pair(algorithm, selector=selector)
    for _ in range(3):
        accept(inbound, sender.next_sequence_number())
    for sa in (sender, inbound):
        copy = SecurityAssociation.import_(
            sa.export(retire=False), random_bytes=random.Random(9).randbytes
        )
        assert copy.parameters == sa.parameters
        assert (copy.sequence_counter, copy.replay_top, copy.replay_bitmap) == (
            sa.sequence_counter,
            sa.replay_top,
            sa.replay_bitmap,
        )


def test_export_is_versioned_checksummed_json() -> None:
    document = json.loads(sa_pair(Algorithm.AES_GCM_16)[0].export(retire=False))
    assert document["format"] == "mip6.ipsec.sa" and document["version"] == 1
    assert len(document["checksum"]) == 64


def _reexport(document: dict[str, object]) -> bytes:
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "mutation",
    [
        lambda d: d["sa"].__setitem__("sequence_counter", 99),  # checksum no longer matches
        lambda d: d.__setitem__("version", 2),
        lambda d: d.__setitem__("format", "other"),
        lambda d: d.__setitem__("checksum", "0" * 64),
        lambda d: d.pop("sa"),
    ],
)
def test_import_refuses_altered_exports(mutation: object) -> None:
    document = json.loads(sa_pair(Algorithm.AES_GCM_16)[0].export(retire=False))
    mutation(document)  # type: ignore[operator]
    with pytest.raises(SaImportError):
        SecurityAssociation.import_(_reexport(document), random_bytes=random.Random(1).randbytes)


@pytest.mark.parametrize("data", [b"", b"\xff\xfe", b"[]", b"{}", b"null", b'{"format": 1}'])
def test_import_refuses_garbage(data: bytes) -> None:
    with pytest.raises(SaImportError):
        SecurityAssociation.import_(data, random_bytes=random.Random(1).randbytes)


def test_import_refuses_consistent_but_invalid_fields() -> None:
    """A document whose checksum matches but whose values are impossible (written by a buggy
    exporter) is refused field by field, without naming key bytes."""
    from mip6.core.ipsec.sa import _checksum

    document = json.loads(sa_pair(Algorithm.AES_GCM_16)[0].export(retire=False))
    for field, value in [
        ("encryption_key", "00"),
        ("spi", 7),
        ("sequence_counter", -1),
        ("replay_bitmap", 1 << 64),
        ("algorithm", "des"),
        ("spi", True),
    ]:
        body = dict(document["sa"], **{field: value})
        altered = dict(document, sa=body, checksum=_checksum(body))
        with pytest.raises(SaImportError) as caught:
            SecurityAssociation.import_(_reexport(altered), random_bytes=random.Random(1).randbytes)
        assert GCM_KEY.hex() not in str(caught.value)


def test_export_retire_stops_the_old_holder() -> None:
    sender = sa_pair(Algorithm.AES_GCM_16)[0]
    sender.export(retire=True)
    with pytest.raises(SaRetired):
        protect(sender, binding_update())


def test_import_skip_advances_counter() -> None:
    sender = sa_pair(Algorithm.AES_GCM_16)[0]
    sender.sequence_counter = 41
    copy = SecurityAssociation.import_(
        sender.export(retire=False), random_bytes=random.Random(2).randbytes, skip=1000
    )
    assert copy.next_sequence_number() == 1042


def test_import_skip_refused_for_inbound_and_past_the_top() -> None:
    sender, inbound = sa_pair(Algorithm.AES_GCM_16)
    with pytest.raises(SaImportError):
        SecurityAssociation.import_(
            inbound.export(retire=False), random_bytes=random.Random(2).randbytes, skip=1
        )
    sender.sequence_counter = 0xFFFF_FF00
    with pytest.raises(SaImportError):
        SecurityAssociation.import_(
            sender.export(retire=False), random_bytes=random.Random(2).randbytes, skip=0x100
        )


def test_import_draws_new_gcm_iv_epoch() -> None:
    """Exporter and importer never share an AES-GCM IV for the same Sequence Number."""
    sender = sa_pair(Algorithm.AES_GCM_16)[0]
    copy = SecurityAssociation.import_(
        sender.export(retire=False), random_bytes=random.Random(77).randbytes
    )
    assert sender.iv(5) != copy.iv(5)
    assert sender.iv(5)[4:] == copy.iv(5)[4:] == (5).to_bytes(4, "big")


# -- the backup takeover ------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_takeover_importer_accepted_then_old_holder_refused(algorithm: Algorithm) -> None:
    """ARCHITECTURE 5: a backup imports the contact node's outbound SA and re-registers the
    contact address at the home agent. The home agent's window accepts the importer's packets
    (the numbers continue); the old holder's next packet carries a lower number: a replay."""
    contact, home_agent = sa_pair(algorithm, seed=11)
    for sequence in range(1, 6):
        verify(home_agent, protect(contact, binding_update(sequence)))
    blob = contact.export(retire=False)  # the contact node keeps running, unaware
    backup = SecurityAssociation.import_(blob, random_bytes=random.Random(12).randbytes)
    for sequence in range(6, 9):
        opened = verify(home_agent, protect(backup, binding_update(sequence)))
        assert opened.packet == binding_update(sequence)
    stale = protect(contact, binding_update(6))  # Sequence Number 6, already seen
    with pytest.raises(Replayed) as caught:
        verify(home_agent, stale)
    assert caught.value.sequence_number == 6 and caught.value.duplicate


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_takeover_with_skip_puts_old_holder_left_of_window(algorithm: Algorithm) -> None:
    contact, home_agent = sa_pair(algorithm, seed=13)
    verify(home_agent, protect(contact, binding_update(1)))
    backup = SecurityAssociation.import_(
        contact.export(retire=False),
        random_bytes=random.Random(14).randbytes,
        skip=REPLAY_WINDOW * 4,
    )
    verify(home_agent, protect(backup, binding_update(2)))
    for sequence in range(3, 3 + REPLAY_WINDOW):  # the old holder's next packets, all refused
        with pytest.raises(Replayed) as caught:
            verify(home_agent, protect(contact, binding_update(sequence)))
        assert not caught.value.duplicate  # left of the window, not in it


def test_takeover_stale_export_without_skip_is_refused() -> None:
    """Why skip exists: an export taken earlier, while the contact node went on sending,
    restarts at numbers the home agent has already accepted."""
    contact, home_agent = sa_pair(Algorithm.AES_GCM_16, seed=15)
    blob = contact.export(retire=False)
    for sequence in range(1, 4):
        verify(home_agent, protect(contact, binding_update(sequence)))
    backup = SecurityAssociation.import_(blob, random_bytes=random.Random(16).randbytes)
    with pytest.raises(Replayed):
        verify(home_agent, protect(backup, binding_update(4)))
    rescued = SecurityAssociation.import_(blob, random_bytes=random.Random(17).randbytes, skip=100)
    verify(home_agent, protect(rescued, binding_update(4)))


def test_inbound_window_continues_at_importer() -> None:
    """An imported inbound SA refuses what the old holder already accepted."""
    sender, inbound = sa_pair(Algorithm.AES_CBC_HMAC_SHA1_96, seed=18)
    first = protect(sender, binding_update(1))
    verify(inbound, first)
    copy = SecurityAssociation.import_(
        inbound.export(retire=True), random_bytes=random.Random(19).randbytes
    )
    with pytest.raises(Replayed):
        verify(copy, first)
    verify(copy, protect(sender, binding_update(2)))
