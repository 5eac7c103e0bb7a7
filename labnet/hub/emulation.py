"""Link emulation on any clock: one direction of one link, sans-I/O.

A :class:`LinkEmulator` is what netem would be if the kernel here had it. It never reads a clock,
sleeps or opens a socket: the caller passes the time (seconds, any monotonic origin) to
:meth:`LinkEmulator.offer` and :meth:`LinkEmulator.pop_due`, and asks
:meth:`LinkEmulator.next_departure` when to come back. Randomness comes from the
``random.Random`` it is given, so a seeded run is reproducible. Packets are opaque: anything with
a ``len()`` in bytes.

The model of one direction, in the order a packet meets it (netem's order):

1. **Loss** (decided when the packet is offered): the Gilbert-Elliott burst model if configured,
   then independent (Bernoulli) loss. A lost packet takes no queue space and no link time.
2. **Queue** (tail drop): when the link has a bandwidth, a packet waits behind the packets offered
   before it. The queue holds every packet whose serialization has not finished, *including the
   one being serialized*, and is limited in packets and/or bytes; a packet that does not fit is
   dropped. Without a bandwidth there is no queue: serialization takes no time.
3. **Serialization**: a packet of N bytes occupies the link for ``N * 8 / bandwidth`` seconds,
   starting when the link is free (N is the IPv6 packet's length; no link-layer overhead).
4. **Propagation**: one-way ``latency`` plus a jitter sample: uniform on ``[-jitter, +jitter]``
   or normal with standard deviation ``jitter``; the delay is clamped at zero. Unless
   ``reorder`` is set, a packet never departs before the one offered ahead of it (a jittered
   packet holds back those behind it, as on a FIFO link); with ``reorder``, packets depart in
   order of their own departure times and may overtake each other.

A packet *departs* when it has crossed the link, that is, when it arrives at the far end.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Sized
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

Packet = TypeVar("Packet", bound=Sized)

DEFAULT_QUEUE_PACKETS: Final = 1000
"""Queue limit (packets) of a link with a bandwidth when none is given: netem's and Linux's
default ``txqueuelen``."""

DEFAULT_IN_FLIGHT_LIMIT: Final = 100_000
"""Most packets one direction holds at once (queued plus propagating); a bound so a flood into a
long, fast link cannot exhaust memory (ARCHITECTURE 8)."""


class Jitter(enum.Enum):
    """How jitter samples are drawn."""

    UNIFORM = "uniform"  # uniform on [-jitter, +jitter] (netem's default)
    NORMAL = "normal"  # normal, mean 0, standard deviation jitter


class DropCause(enum.Enum):
    """Why the emulator dropped a packet (the keys of :attr:`DirectionStats.drops`)."""

    LOSS = "loss"  # independent random loss
    BURST_LOSS = "burst_loss"  # the Gilbert-Elliott model
    QUEUE = "queue"  # tail drop: the queue was full
    OVERFLOW = "overflow"  # more than in_flight_limit packets held


@dataclass(frozen=True, slots=True, kw_only=True)
class GilbertElliott:
    """The Gilbert-Elliott two-state burst loss model, stepped once per packet.

    ``p``: probability of moving from the good to the bad state; ``r``: from bad to good (the
    mean bad run is ``1 / r`` packets). ``loss_good`` and ``loss_bad``: loss probability in each
    state (netem's ``1 - k`` and ``1 - h``). A packet is lost with the probability of the state the
    chain is in when it arrives; the chain then steps. The long-run loss rate is
    ``(r * loss_good + p * loss_bad) / (p + r)``.
    """

    p: float
    r: float
    loss_good: float = 0.0
    loss_bad: float = 1.0

    def __post_init__(self) -> None:
        for name in ("p", "r", "loss_good", "loss_bad"):
            _check_probability(name, getattr(self, name))
        if self.p + self.r == 0:
            raise ValueError("burst loss needs p + r > 0 (the chain would never move)")

    @property
    def mean_loss(self) -> float:
        """Stationary loss probability."""
        return (self.r * self.loss_good + self.p * self.loss_bad) / (self.p + self.r)


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkProfile:
    """What one direction of a link does to packets. Times in seconds, bandwidth in bits per
    second; ``None`` bandwidth means infinitely fast. Queue limits apply only with a bandwidth;
    with a bandwidth and no limit given, the queue holds :data:`DEFAULT_QUEUE_PACKETS`."""

    latency: float = 0.0
    jitter: float = 0.0
    jitter_distribution: Jitter = Jitter.UNIFORM
    reorder: bool = False
    bandwidth_bits_per_s: float | None = None
    queue_packets: int | None = None
    queue_bytes: int | None = None
    loss: float = 0.0
    burst_loss: GilbertElliott | None = None
    in_flight_limit: int = DEFAULT_IN_FLIGHT_LIMIT

    def __post_init__(self) -> None:
        for name in ("latency", "jitter"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}={value!r} must be a finite number of seconds >= 0")
        bandwidth = self.bandwidth_bits_per_s
        if bandwidth is not None and not (math.isfinite(bandwidth) and bandwidth > 0):
            raise ValueError(f"bandwidth_bits_per_s={bandwidth!r} must be > 0 (None: unlimited)")
        for name in ("queue_packets", "queue_bytes"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}={value!r} must be an integer >= 1 (None: default)")
        if not isinstance(self.in_flight_limit, int) or self.in_flight_limit < 1:
            raise ValueError(f"in_flight_limit={self.in_flight_limit!r} must be an integer >= 1")
        _check_probability("loss", self.loss)
        if not isinstance(self.jitter_distribution, Jitter):
            raise ValueError(f"jitter_distribution={self.jitter_distribution!r} is not a Jitter")

    @property
    def transparent(self) -> bool:
        """True when the direction does nothing: every packet departs the moment it is offered.
        A driver may then skip the emulator (and count with :meth:`LinkEmulator.pass_through`)."""
        return (
            self.latency == 0
            and self.jitter == 0
            and self.bandwidth_bits_per_s is None
            and self.loss == 0
            and self.burst_loss is None
        )

    @property
    def effective_queue_packets(self) -> int | None:
        """The packet limit in force: the configured one; :data:`DEFAULT_QUEUE_PACKETS` when no
        limit is configured; None when only a byte limit is."""
        if self.queue_packets is not None:
            return self.queue_packets
        return None if self.queue_bytes is not None else DEFAULT_QUEUE_PACKETS


@dataclass(slots=True)
class DirectionStats:
    """Counters of one direction. ``packets_in``/``bytes_in``: offered; ``packets_out``/
    ``bytes_out``: departed; ``drops``: per :class:`DropCause` value. Offered = departed +
    dropped + held (:attr:`LinkEmulator.held`)."""

    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    drops: dict[str, int] = field(default_factory=lambda: {c.value: 0 for c in DropCause})

    def as_dict(self) -> dict[str, Any]:
        return {
            "packets_in": self.packets_in,
            "bytes_in": self.bytes_in,
            "packets_out": self.packets_out,
            "bytes_out": self.bytes_out,
            "drops": dict(self.drops),
        }


class LinkEmulator(Generic[Packet]):
    """One direction of one link (see the module docstring for the model).

    Times passed in must not go backwards by more than rounding: an ``offer`` earlier than the
    previous one is treated as happening at the previous one's time.
    """

    __slots__ = (
        "_backlog",
        "_backlog_bytes",
        "_bad_state",
        "_bits_per_s",
        "_fifo",
        "_free_at",
        "_heap",
        "_last_departure",
        "_last_offer",
        "_order",
        "_queue_bytes",
        "_queue_packets",
        "profile",
        "rng",
        "stats",
    )

    def __init__(self, profile: LinkProfile, rng: random.Random | None = None) -> None:
        self.profile = profile
        self.rng = rng if rng is not None else random.Random(0)
        self.stats = DirectionStats()
        self._bits_per_s = profile.bandwidth_bits_per_s
        self._queue_packets = profile.effective_queue_packets
        self._queue_bytes = profile.queue_bytes
        # Serialization queue: (finish time, size) of packets not yet fully on the wire.
        self._backlog: deque[tuple[float, int]] = deque()
        self._backlog_bytes = 0
        self._free_at = -math.inf  # when the link finishes serializing what it holds
        self._last_offer = -math.inf
        self._last_departure = -math.inf
        self._bad_state = False  # Gilbert-Elliott state
        # Packets after serialization, until they depart: a FIFO unless reordering is allowed.
        self._fifo: deque[tuple[float, Packet]] = deque()
        self._heap: list[tuple[float, int, Packet]] = []
        self._order = itertools.count()

    # -- the three calls a driver makes ----------------------------------------------------------

    def offer(self, now: float, packet: Packet) -> bool:
        """A packet enters the link at ``now``. True if it was accepted (it will depart later),
        False if it was dropped (lost or tail-dropped; see :attr:`stats`)."""
        if now < self._last_offer:
            now = self._last_offer
        self._last_offer = now
        size = len(packet)
        stats = self.stats
        stats.packets_in += 1
        stats.bytes_in += size
        profile = self.profile
        rng = self.rng
        burst = profile.burst_loss
        if burst is not None:
            bad = self._bad_state
            lost = rng.random() < (burst.loss_bad if bad else burst.loss_good)
            if rng.random() < (burst.r if bad else burst.p):
                self._bad_state = not bad
            if lost:
                stats.drops["burst_loss"] += 1
                return False
        if profile.loss and rng.random() < profile.loss:
            stats.drops["loss"] += 1
            return False
        if self.held >= profile.in_flight_limit:
            stats.drops["overflow"] += 1
            return False
        departure = now
        bits_per_s = self._bits_per_s
        if bits_per_s is not None:
            backlog = self._backlog
            while backlog and backlog[0][0] <= now:
                self._backlog_bytes -= backlog.popleft()[1]
            if (self._queue_packets is not None and len(backlog) >= self._queue_packets) or (
                self._queue_bytes is not None and self._backlog_bytes + size > self._queue_bytes
            ):
                stats.drops["queue"] += 1
                return False
            start = now if now > self._free_at else self._free_at
            departure = self._free_at = start + size * 8 / bits_per_s
            backlog.append((departure, size))
            self._backlog_bytes += size
        delay = profile.latency
        if profile.jitter:
            if profile.jitter_distribution is Jitter.UNIFORM:
                delay += rng.uniform(-profile.jitter, profile.jitter)
            else:
                delay += rng.gauss(0.0, profile.jitter)
            if delay < 0.0:
                delay = 0.0
        departure += delay
        if profile.reorder:
            heapq.heappush(self._heap, (departure, next(self._order), packet))
        else:
            if departure < self._last_departure:
                departure = self._last_departure
            self._last_departure = departure
            self._fifo.append((departure, packet))
        return True

    def next_departure(self) -> float | None:
        """When the next packet departs, or None if the link holds none."""
        if self._fifo:
            return self._fifo[0][0]
        if self._heap:
            return self._heap[0][0]
        return None

    def pop_due(self, now: float) -> list[tuple[float, Packet]]:
        """Every packet whose departure time is ``<= now``, as ``(departure time, packet)`` in
        departure order. The departure time is the emulated one, which a driver woken late may
        use to keep its downstream timing exact."""
        due: list[tuple[float, Packet]] = []
        fifo = self._fifo
        if fifo:
            while fifo and fifo[0][0] <= now:
                due.append(fifo.popleft())
        elif self._heap:
            heap = self._heap
            while heap and heap[0][0] <= now:
                departure, _, packet = heapq.heappop(heap)
                due.append((departure, packet))
        if due:
            stats = self.stats
            stats.packets_out += len(due)
            stats.bytes_out += sum(len(packet) for _, packet in due)
        return due

    def set_profile(self, profile: LinkProfile) -> None:
        """Change what the link does from now on (labnet moving a node between networks).
        Packets already accepted keep their departure times; counters carry on."""
        self.profile = profile
        self._bits_per_s = profile.bandwidth_bits_per_s
        self._queue_packets = profile.effective_queue_packets
        self._queue_bytes = profile.queue_bytes
        if self._bits_per_s is None:
            self._backlog.clear()
            self._backlog_bytes = 0
            self._free_at = -math.inf

    # -- for drivers and observers ---------------------------------------------------------------

    def pass_through(self, size: int) -> None:
        """Count a packet of ``size`` bytes that a driver forwarded without calling :meth:`offer`
        because the profile is :attr:`LinkProfile.transparent`."""
        stats = self.stats
        stats.packets_in += 1
        stats.bytes_in += size
        stats.packets_out += 1
        stats.bytes_out += size

    @property
    def held(self) -> int:
        """Packets accepted that have not departed yet."""
        return len(self._fifo) + len(self._heap)

    def queued(self, now: float) -> tuple[int, int]:
        """Packets and bytes in the serialization queue at ``now`` (0, 0 without a bandwidth)."""
        packets = bytes_ = 0
        for finish, size in self._backlog:
            if finish > now:
                packets += 1
                bytes_ += size
        return packets, bytes_


def _check_probability(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name}={value!r} must be a probability in [0, 1]")
