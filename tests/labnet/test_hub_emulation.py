"""The hub's link emulator on virtual time: exact timings where the model is deterministic,
statistics within stated tolerances (seeded, so each run is the same) where it is random."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from labnet.hub.emulation import (
    DEFAULT_QUEUE_PACKETS,
    DropCause,
    GilbertElliott,
    Jitter,
    LinkEmulator,
    LinkProfile,
)


def link(seed: int = 1, **profile: object) -> LinkEmulator[bytes]:
    return LinkEmulator(LinkProfile(**profile), random.Random(seed))  # type: ignore[arg-type]


def packet(number: int, size: int = 100) -> bytes:
    """``size`` bytes that start with ``number``, so order can be checked."""
    return number.to_bytes(4, "big") + bytes(size - 4)


def numbers(due: list[tuple[float, bytes]]) -> list[int]:
    return [int.from_bytes(p[:4], "big") for _, p in due]


def run(
    emulator: LinkEmulator[bytes], offers: list[tuple[float, bytes]]
) -> list[tuple[float, bytes]]:
    """Offer each packet at its time, then collect every departure (in departure order)."""
    for at, data in offers:
        emulator.offer(at, data)
    departures = []
    while (when := emulator.next_departure()) is not None:
        departures.extend(emulator.pop_due(when))
    return departures


def assert_accounted(emulator: LinkEmulator[bytes]) -> None:
    stats = emulator.stats
    assert stats.packets_in == stats.packets_out + sum(stats.drops.values()) + emulator.held


# -- no emulation ---------------------------------------------------------------------------------


def test_transparent_profile_offer_departs_at_once() -> None:
    emulator = link()
    assert emulator.profile.transparent
    assert emulator.offer(5.0, packet(1))
    assert emulator.next_departure() == 5.0
    assert emulator.pop_due(5.0) == [(5.0, packet(1))]
    assert emulator.next_departure() is None
    assert emulator.stats.as_dict() == {
        "packets_in": 1,
        "bytes_in": 100,
        "packets_out": 1,
        "bytes_out": 100,
        "drops": {cause.value: 0 for cause in DropCause},
    }


def test_pass_through_counts_like_an_offer_and_departure() -> None:
    emulator = link()
    emulator.pass_through(60)
    assert (emulator.stats.packets_in, emulator.stats.bytes_out) == (1, 60)
    assert_accounted(emulator)


@pytest.mark.parametrize(
    "profile",
    [
        {"latency": 0.001},
        {"jitter": 0.001},
        {"bandwidth_bits_per_s": 1e6},
        {"loss": 0.01},
        {"burst_loss": GilbertElliott(p=0.1, r=0.5)},
    ],
)
def test_any_emulation_is_not_transparent(profile: dict[str, object]) -> None:
    assert not LinkProfile(**profile).transparent  # type: ignore[arg-type]


# -- latency --------------------------------------------------------------------------------------


def test_latency_packet_departs_exactly_latency_later() -> None:
    emulator = link(latency=0.010)
    emulator.offer(1.0, packet(1))
    assert emulator.next_departure() == pytest.approx(1.010)
    assert emulator.pop_due(1.0099) == []
    assert emulator.pop_due(1.0100001) == [(pytest.approx(1.010), packet(1))]


def test_latency_many_in_flight_fifo_each_delayed() -> None:
    emulator = link(latency=0.050)
    offers = [(i * 0.001, packet(i)) for i in range(100)]
    departures = run(emulator, offers)
    assert numbers(departures) == list(range(100))
    assert [t for t, _ in departures] == [pytest.approx(i * 0.001 + 0.050) for i in range(100)]


def test_offer_time_going_backwards_is_taken_as_previous_time() -> None:
    emulator = link(latency=0.010)
    emulator.offer(2.0, packet(1))
    emulator.offer(1.5, packet(2))
    assert [t for t, _ in run(emulator, [])] == [pytest.approx(2.010)] * 2


# -- bandwidth and queue --------------------------------------------------------------------------


def test_bandwidth_back_to_back_packets_serialize_one_after_another() -> None:
    # 1,000 bytes at 1 Mbit/s: 8 ms each.
    emulator = link(bandwidth_bits_per_s=1e6, latency=0.005)
    departures = run(emulator, [(0.0, packet(i, 1000)) for i in range(3)])
    assert [t for t, _ in departures] == [
        pytest.approx(0.008 + 0.005),
        pytest.approx(0.016 + 0.005),
        pytest.approx(0.024 + 0.005),
    ]


def test_bandwidth_idle_link_starts_serializing_on_arrival() -> None:
    emulator = link(bandwidth_bits_per_s=1e6)
    departures = run(emulator, [(0.0, packet(1, 1000)), (1.0, packet(2, 500))])
    assert [t for t, _ in departures] == [pytest.approx(0.008), pytest.approx(1.004)]


def test_bandwidth_bulk_stream_delivers_the_configured_rate() -> None:
    emulator = link(bandwidth_bits_per_s=10e6, queue_packets=5000)
    departures = run(emulator, [(i * 0.0001, packet(i, 1250)) for i in range(2000)])
    first, last = departures[0][0], departures[-1][0]
    bits = sum(len(p) for _, p in departures[1:]) * 8
    assert bits / (last - first) == pytest.approx(10e6, rel=1e-9)


def test_queue_packets_full_tail_drops() -> None:
    emulator = link(bandwidth_bits_per_s=1e6, queue_packets=3)
    accepted = [emulator.offer(0.0, packet(i, 1000)) for i in range(5)]
    assert accepted == [True, True, True, False, False]
    assert emulator.stats.drops["queue"] == 2
    assert emulator.queued(0.0) == (3, 3000)
    # The first packet has finished serializing at 8 ms: one place is free again.
    assert emulator.offer(0.008, packet(5, 1000))
    assert not emulator.offer(0.008, packet(6, 1000))
    assert numbers(run(emulator, [])) == [0, 1, 2, 5]
    assert_accounted(emulator)


def test_queue_bytes_full_tail_drops_by_size() -> None:
    emulator = link(bandwidth_bits_per_s=1e6, queue_bytes=2500)
    accepted = [
        emulator.offer(0.0, packet(i, size)) for i, size in enumerate([1000, 1000, 600, 400])
    ]
    assert accepted == [True, True, False, True]  # 2,600 bytes would not fit; 2,400 do
    assert emulator.queued(0.0) == (3, 2400)


def test_queue_default_limit_applies_with_bandwidth() -> None:
    emulator = link(bandwidth_bits_per_s=1e6)
    accepted = sum(emulator.offer(0.0, packet(i)) for i in range(DEFAULT_QUEUE_PACKETS + 10))
    assert accepted == DEFAULT_QUEUE_PACKETS
    assert emulator.stats.drops["queue"] == 10


def test_in_flight_limit_overflow_drops() -> None:
    emulator = link(latency=1.0, in_flight_limit=10)
    accepted = sum(emulator.offer(0.0, packet(i)) for i in range(15))
    assert accepted == 10
    assert emulator.stats.drops["overflow"] == 5
    assert_accounted(emulator)


# -- jitter and order -----------------------------------------------------------------------------


def test_jitter_uniform_without_reorder_keeps_fifo_and_bounds() -> None:
    emulator = link(latency=0.020, jitter=0.005)
    sent = [(i * 0.001, packet(i)) for i in range(2000)]
    departures = run(emulator, sent)
    assert numbers(departures) == list(range(2000))  # never reordered
    delays = [t - i * 0.001 for i, (t, _) in enumerate(departures)]
    assert min(delays) >= 0.015 - 1e-12
    # FIFO holds a packet behind a later-departing predecessor, so the upper bound still holds.
    assert max(delays) <= 0.025 + 1e-12
    assert statistics.mean(delays) == pytest.approx(0.020, abs=0.002)


def test_jitter_with_reorder_overtakes_and_keeps_distribution() -> None:
    emulator = link(latency=0.020, jitter=0.005, reorder=True)
    sent = [(i * 0.0005, packet(i)) for i in range(4000)]
    departures = run(emulator, sent)
    order = numbers(departures)
    assert sorted(order) == list(range(4000))
    assert order != list(range(4000))  # some packets overtook others
    times = [t for t, _ in departures]
    assert times == sorted(times)  # departures come out in time order
    delays = [t - n * 0.0005 for n, t in zip(order, times, strict=True)]
    # Uniform on [-5 ms, +5 ms]: mean 0, standard deviation 5 / sqrt(3) ms.
    assert statistics.mean(delays) == pytest.approx(0.020, abs=0.0003)
    assert statistics.stdev(delays) == pytest.approx(0.005 / math.sqrt(3), rel=0.05)


def test_jitter_normal_has_requested_standard_deviation() -> None:
    emulator = link(
        latency=0.050, jitter=0.004, jitter_distribution=Jitter.NORMAL, reorder=True, seed=3
    )
    departures = run(emulator, [(i * 0.001, packet(i)) for i in range(4000)])
    delays = [
        t - n * 0.001 for n, t in zip(numbers(departures), [t for t, _ in departures], strict=True)
    ]
    assert statistics.mean(delays) == pytest.approx(0.050, abs=0.0003)
    assert statistics.stdev(delays) == pytest.approx(0.004, rel=0.05)


def test_jitter_larger_than_latency_never_departs_before_arrival() -> None:
    emulator = link(latency=0.001, jitter=0.010, reorder=True)
    departures = run(emulator, [(1.0, packet(i)) for i in range(500)])
    assert min(t for t, _ in departures) >= 1.0


# -- loss -----------------------------------------------------------------------------------------


def test_loss_ten_percent_within_tolerance() -> None:
    emulator = link(loss=0.10, seed=7)
    count = 20_000
    accepted = sum(emulator.offer(i * 1e-4, packet(i)) for i in range(count))
    lost = count - accepted
    sigma = math.sqrt(count * 0.1 * 0.9)  # binomial: 42.4
    assert abs(lost - 2000) < 4 * sigma
    assert emulator.stats.drops["loss"] == lost
    assert len(run(emulator, [])) == accepted


def test_loss_seeded_runs_are_identical() -> None:
    def lost_pattern(seed: int) -> list[bool]:
        emulator = link(loss=0.3, jitter=0.001, latency=0.01, seed=seed)
        return [emulator.offer(i * 0.001, packet(i)) for i in range(500)]

    assert lost_pattern(11) == lost_pattern(11)
    assert lost_pattern(11) != lost_pattern(12)


def test_burst_loss_gilbert_elliott_mean_and_burst_length() -> None:
    model = GilbertElliott(p=0.01, r=0.25, loss_good=0.0, loss_bad=1.0)
    emulator = link(burst_loss=model, seed=5)
    count = 100_000
    outcome = [emulator.offer(i * 1e-5, packet(i)) for i in range(count)]
    lost = outcome.count(False)
    assert model.mean_loss == pytest.approx(0.01 / 0.26)
    assert lost / count == pytest.approx(model.mean_loss, rel=0.15)
    bursts = [len(run_) for run_ in "".join("x" if not ok else " " for ok in outcome).split()]
    assert statistics.mean(bursts) == pytest.approx(1 / model.r, rel=0.1)  # mean bad run: 4
    assert emulator.stats.drops["burst_loss"] == lost
    assert emulator.stats.drops["loss"] == 0


def test_loss_takes_no_link_time() -> None:
    emulator = link(bandwidth_bits_per_s=1e6, loss=1.0)
    assert not emulator.offer(0.0, packet(1, 1000))
    assert emulator.queued(0.0) == (0, 0)  # the lost packet left the link free
    assert emulator.stats.drops["loss"] == 1


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "field"),
    [
        ({"latency": -0.001}, "latency"),
        ({"jitter": math.inf}, "jitter"),
        ({"bandwidth_bits_per_s": 0}, "bandwidth_bits_per_s"),
        ({"queue_packets": 0}, "queue_packets"),
        ({"queue_bytes": 1.5}, "queue_bytes"),
        ({"loss": 1.5}, "loss"),
        ({"in_flight_limit": 0}, "in_flight_limit"),
    ],
)
def test_profile_invalid_value_raises_naming_field(profile: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        LinkProfile(**profile)  # type: ignore[arg-type]


def test_burst_loss_invalid_raises() -> None:
    with pytest.raises(ValueError, match="r="):
        GilbertElliott(p=0.1, r=2.0)
    with pytest.raises(ValueError, match="p \\+ r"):
        GilbertElliott(p=0.0, r=0.0)
