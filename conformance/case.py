"""The declarative case model: one RFC sentence, one stimulus, one expectation.

A :class:`Case` names the requirement it checks (RFC 3775 section, the sentence, MUST or
SHOULD), the role under test, the preconditions to set up first (bindings, tokens, time
passing, an action asked of the IUT), the stimulus (a function of the :class:`Tester`, since
tokens and nonces are only known at run time) and what must come back: packets matched by a
predicate with a readable description, or silence, within a timeout on the IUT's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from conformance.iut import IutControl
    from conformance.tester import Act, Delay, Received, Tester

Level = Literal["MUST", "SHOULD", "MAY"]
Role = Literal["cn", "ha", "mn"]


class PreconditionFailed(Exception):
    """Setting up a case failed: the verdict is ``inconclusive``, with this reason."""


class Precondition(Protocol):
    def describe(self) -> str: ...

    def apply(self, tester: Tester, iut: IutControl) -> None: ...


@dataclass(frozen=True, slots=True)
class ReturnRoutability:
    """HoTI and CoTI answered; the tester keeps the tokens (RFC 3775 5.2.5)."""

    home: bool = True
    care_of: bool = True

    def describe(self) -> str:
        which = [w for w, on in (("HoTI/HoT", self.home), ("CoTI/CoT", self.care_of)) if on]
        return "return routability done (" + ", ".join(which) + ")"

    def apply(self, tester: Tester, iut: IutControl) -> None:
        if not tester.return_routability(home=self.home, care_of=self.care_of):
            raise PreconditionFailed("the IUT did not answer HoTI/CoTI")


@dataclass(frozen=True, slots=True)
class StaleTokens:
    """Tokens whose nonces the IUT has since expired: return routability, then wait longer
    than MAX_NONCE_LIFETIME (240 s, plus a nonce interval), then fresh tokens for the kinds
    not named stale."""

    home: bool
    care_of: bool

    def describe(self) -> str:
        stale = " and ".join(w for w, on in (("home", self.home), ("care-of", self.care_of)) if on)
        return f"{stale} keygen token(s) older than the IUT's MAX_NONCE_LIFETIME"

    def apply(self, tester: Tester, iut: IutControl) -> None:
        if not tester.return_routability():
            raise PreconditionFailed("the IUT did not answer HoTI/CoTI")
        tester.receive(tester.nonce_expiry_wait)
        fresh_home, fresh_care_of = not self.home, not self.care_of
        if (fresh_home or fresh_care_of) and not tester.return_routability(
            home=fresh_home, care_of=fresh_care_of
        ):
            raise PreconditionFailed("the IUT did not answer the second HoTI/CoTI")


@dataclass(frozen=True, slots=True)
class CorrespondentBinding:
    """A correspondent registration accepted: return routability, BU with A set, BA 0."""

    sequence: int = 100
    lifetime_units_4s: int = 25

    def describe(self) -> str:
        return (
            f"binding at the IUT: BU sequence {self.sequence}, "
            f"lifetime {self.lifetime_units_4s * 4} s, accepted with BA status 0"
        )

    def apply(self, tester: Tester, iut: IutControl) -> None:
        from conformance.tester import ba_fields

        if not tester.return_routability():
            raise PreconditionFailed("the IUT did not answer HoTI/CoTI")
        bu = tester.binding_update(sequence=self.sequence, lifetime_units_4s=self.lifetime_units_4s)
        for got in tester.exchange([bu], 2.0):
            fields = ba_fields(got)
            if fields is not None and fields[0] == 0:
                tester.sequence = self.sequence
                return
        raise PreconditionFailed("the IUT did not accept the setup Binding Update")


@dataclass(frozen=True, slots=True)
class HomeRegistration:
    """A home registration accepted by the IUT (a home agent): BU with A and H, BA 0."""

    sequence: int = 100
    lifetime_units_4s: int = 100
    care_of: IPv6Address | None = None

    def describe(self) -> str:
        where = f" from {self.care_of}" if self.care_of else ""
        return (
            f"home registration{where}: BU sequence {self.sequence} (A, H), "
            f"lifetime {self.lifetime_units_4s * 4} s, accepted with BA status 0"
        )

    def apply(self, tester: Tester, iut: IutControl) -> None:
        from conformance.tester import ba_fields

        bu = tester.binding_update(
            sequence=self.sequence,
            lifetime_units_4s=self.lifetime_units_4s,
            home=True,
            nonce_indices=False,
            authorization=False,
            care_of=self.care_of,
        )
        for got in tester.exchange([bu], 2.0):
            fields = ba_fields(got)
            if fields is not None and fields[0] == 0:
                tester.sequence = self.sequence
                return
        raise PreconditionFailed("the IUT did not accept the setup home registration")


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float

    def describe(self) -> str:
        return f"{self.seconds:g} s pass"

    def apply(self, tester: Tester, iut: IutControl) -> None:
        tester.receive(self.seconds)


@dataclass(frozen=True, slots=True)
class IutAction:
    """Ask the IUT to act through the IUT control hook (see :mod:`conformance.iut`)."""

    action: Literal["move", "route_optimize", "register"]
    address: IPv6Address | None = None

    def describe(self) -> str:
        target = f" {self.address}" if self.address else ""
        return f"IUT control: {self.action}{target}"

    def apply(self, tester: Tester, iut: IutControl) -> None:
        if self.action == "move":
            iut.move(self.address)
        elif self.action == "route_optimize":
            assert self.address is not None
            iut.start_route_optimization(self.address)
        else:
            iut.register()


Matcher = Callable[["Tester", "Received"], bool]


@dataclass(frozen=True, slots=True)
class Expect:
    """At least one received packet satisfies ``match``."""

    description: str
    match: Matcher


@dataclass(frozen=True, slots=True)
class Silence:
    """No received packet satisfies ``match`` (default: no packet at all)."""

    description: str = "no packet at all"
    match: Matcher = field(default=lambda tester, got: True)


@dataclass(frozen=True, slots=True)
class Check:
    """A property of everything received in the window (timing, counts, order)."""

    description: str
    check: Callable[[Tester, list[Received]], bool]


Stimulus = Callable[["Tester"], Sequence["bytes | Delay | Act"]]


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    title: str
    rfc_section: str
    requirement: str  # the RFC sentence the case checks (paraphrased where marked)
    level: Level
    role: Role
    stimulus: Stimulus
    stimulus_text: str  # what the stimulus is, for the report
    expect: tuple[Expect | Silence | Check, ...]
    preconditions: tuple[Precondition, ...] = ()
    timeout: float = 2.0  # seconds on the IUT's clock after the last stimulus packet
    # The IUT's configuration for this case, as keys of its role's block in a `mip6 run`
    # configuration (e.g. ("binding_cache_size", 1)): a rule that only shows under a policy
    # or a limit. Empty: the IUT as the target starts it.
    iut_config: tuple[tuple[str, Any], ...] = ()
    # The stimulus's own delays (its Delay items), seconds: with the preconditions' waits
    # and the timeout, how long the case takes on a wall clock (see ``expected_seconds``)
    stimulus_seconds: float = 0.0

    def expected_seconds(self, stale_wait: float) -> float:
        """About how long the case takes on a wall clock whose IUT expires nonces after
        ``stale_wait`` seconds: its waits, its stimulus's delays and its timeout."""
        waits = sum(
            p.seconds if isinstance(p, Wait) else stale_wait
            for p in self.preconditions
            if isinstance(p, Wait | StaleTokens)
        )
        return waits + self.stimulus_seconds + self.timeout
