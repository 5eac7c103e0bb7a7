"""The donor's and acceptor's handoff machines: the paths of DSERVER.md section 4 step by step,
every (state, input) pair (a pair without an entry is ignored and counted, never a state change),
and hypothesis runs over input sequences checking the rules that must always hold."""

from __future__ import annotations

import itertools
import random
from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mip6.dserver import handoff as h
from mip6.dserver.messages import FailureReason
from mip6.dserver.policy import GroupView, LocalPolicy, RoundRobinPolicy, TargetFailure

LOCAL = IPv6Address("2001:db8:10::1")
M2 = IPv6Address("2001:db8:20::1")
M3 = IPv6Address("2001:db8:30::1")
CLIENT = IPv6Address("2001:db8:99::5")
D = h.DonorInput
A = h.AcceptorInput
DT = ("handoff_donor", 1)  # the timer token of handoff 1's donor
AT = ("handoff_acceptor", 1)


class NotLocal(RoundRobinPolicy):
    def __init__(self, *members: IPv6Address) -> None:
        view = GroupView()
        for member in members:
            view.add(member)
        super().__init__(view, local=False)
        self.notified: list[tuple[IPv6Address, TargetFailure]] = []

    def notify_failure(self, member: IPv6Address, reason: TargetFailure, now: float) -> None:
        super().notify_failure(member, reason, now)
        self.notified.append((member, reason))


def donor(*members: IPv6Address, optimized: bool = True) -> h.Donor:
    return h.Donor(
        handoff_id=1,
        client=CLIENT,
        local=LOCAL,
        policy=NotLocal(LOCAL, *members),
        next_sequence=500,
        lifetime=60,
        optimized=optimized,
    )


def test_optimized_handoff_prepare_init_done() -> None:
    d = donor(M2)
    assert d.start(0.0) == [h.SendPrepare(M2), h.StartTimer(2.0, DT)]
    # the INIT's wait is longer than the acceptor's own (its DONE's way back, with room)
    assert d.handle(0.1, D.PREPARED) == [h.Freeze(), h.SendInit(M2, 500), h.StartTimer(3.1, DT)]
    assert d.state is h.DonorState.INITIATED
    assert d.handle(0.2, D.DONE) == [h.CancelTimer(DT), h.Release(), h.HandoffCompleted(M2)]
    assert d.state is h.DonorState.COMPLETED


def test_plain_handoff_freezes_and_sends_init_at_once() -> None:
    d = donor(M2, optimized=False)
    assert d.start(0.0) == [h.Freeze(), h.SendInit(M2, 500), h.StartTimer(3.0, DT)]


def test_refused_prepare_tries_the_next_member_without_freezing() -> None:
    d = donor(M2, M3)
    d.start(0.0)
    assert d.handle(0.1, D.FAILED, FailureReason.REFUSED) == [
        h.SendPrepare(M3),
        h.StartTimer(2.1, DT),
    ]
    assert d.policy.notified == [(M2, TargetFailure.REFUSED)]  # type: ignore[attr-defined]
    out = d.handle(2.1, D.TIMEOUT)
    assert out == [h.CancelTimer(DT), h.HandoffFailed((M2, M3), kept=True)]
    assert d.state is h.DonorState.KEPT and not d.frozen


def test_preparing_not_movable_keeps_the_client_and_blames_no_member() -> None:
    """The acceptor is ready but the client's connections stayed unmovable (a proxy in the
    middle of an exchange): nothing was frozen, the acceptor is told, the client kept, and
    the policy hears of no failure (the acceptor did nothing wrong)."""
    d = donor(M2, M3)
    d.start(0.0)
    assert d.handle(1.0, D.NOT_MOVABLE) == [
        h.SendAbort(M2),
        h.CancelTimer(DT),
        h.HandoffFailed((M2,), kept=True),
    ]
    assert d.state is h.DonorState.KEPT and not d.frozen
    assert d.policy.notified == []  # type: ignore[attr-defined]
    assert d.handle(1.1, D.PREPARED) == [] and d.unexpected == 1  # a late answer: ignored


def test_failed_init_retries_in_the_next_window_then_rebinds_above_before_thawing() -> None:
    d = donor(M2, M3)
    d.start(0.0)
    d.handle(0.1, D.PREPARED)
    # the INIT's time runs out: the acceptor is told to give up, behind the INIT on the channel
    assert d.handle(3.1, D.TIMEOUT) == [h.SendAbort(M2), h.StartTimer(5.1, DT)]
    assert d.state is h.DonorState.ABORTING
    # it answers FAILED (it released everything): the second target's INIT starts a window
    # above the first's (whose acceptor may have retransmitted its BU with greater numbers,
    # RFC 3775 11.8), and no PREPARE
    assert d.handle(3.2, D.FAILED, FailureReason.TIMEOUT) == [
        h.SendInit(M3, 500 + h.SEQUENCE_WINDOW),
        h.StartTimer(6.2, DT),
    ]
    out = d.handle(3.3, D.FAILED, FailureReason.IMPORT_FAILED)
    rebinding = 500 + 2 * h.SEQUENCE_WINDOW  # above both acceptors' windows
    assert out == [h.Bind(rebinding, 60), h.StartTimer(7.3, DT)]  # never Thaw before our BA
    assert d.state is h.DonorState.REBINDING
    assert d.handle(7.4, D.BOUND) == [h.CancelTimer(DT), h.Thaw(), h.HandoffFailed((M2, M3), True)]
    assert d.state is h.DonorState.KEPT


def test_aborted_acceptor_that_took_the_client_answers_done() -> None:
    d = donor(M2, M3)
    d.start(0.0)
    d.handle(0.1, D.PREPARED)
    d.handle(3.1, D.TIMEOUT)
    assert d.handle(3.2, D.DONE) == [h.CancelTimer(DT), h.Release(), h.HandoffCompleted(M2)]
    silent = donor(M2, M3)
    silent.start(0.0)
    silent.handle(0.1, D.PREPARED)
    silent.handle(3.1, D.TIMEOUT)
    # no answer to the abort either: taken for dead, the next acceptor outbids it, and is
    # told the client may stand past the snapshots (the silent one may have served it)
    assert silent.handle(5.1, D.TIMEOUT) == [
        h.SendInit(M3, 500 + h.SEQUENCE_WINDOW, resync=True),
        h.StartTimer(8.1, DT),
    ]


def test_a_donor_keeping_a_client_after_a_silent_acceptor_resyncs_as_it_thaws() -> None:
    d = donor(M2)
    d.start(0.0)
    d.handle(0.1, D.PREPARED)
    d.handle(3.1, D.TIMEOUT)
    assert d.handle(5.1, D.TIMEOUT) == [
        h.Bind(500 + h.SEQUENCE_WINDOW, 60),
        h.StartTimer(9.1, DT),
    ]
    assert d.handle(5.3, D.BOUND) == [
        h.CancelTimer(DT),
        h.Thaw(resync=True),
        h.HandoffFailed((M2,), True),
    ]


def test_ba_135_to_the_rebinding_means_the_acceptor_holds_the_client() -> None:
    d = donor(M2)
    d.start(0.0)
    d.handle(0.1, D.PREPARED)
    d.handle(3.1, D.TIMEOUT)  # aborting
    d.handle(5.1, D.TIMEOUT)  # no answer: rebinding
    assert d.handle(5.2, D.SUPERSEDED) == [h.CancelTimer(DT), h.Release(), h.HandoffCompleted(M2)]


def test_late_done_during_rebinding_completes_and_rebind_timeout_resets() -> None:
    late = donor(M2)
    late.start(0.0)
    late.handle(0.1, D.PREPARED)
    late.handle(3.1, D.TIMEOUT)
    late.handle(5.1, D.TIMEOUT)
    assert late.state is h.DonorState.REBINDING
    assert late.handle(5.5, D.DONE)[1:] == [h.Release(), h.HandoffCompleted(M2)]
    lost = donor(M2)
    lost.start(0.0)
    lost.handle(0.1, D.PREPARED)
    lost.handle(3.1, D.TIMEOUT)
    lost.handle(5.1, D.TIMEOUT)
    out = lost.handle(9.1, D.TIMEOUT)
    assert isinstance(out[1], h.Reset) and out[2] == h.HandoffFailed((M2,), kept=False)
    assert lost.state is h.DonorState.RESET


def test_local_policy_is_a_local_handoff_without_packets() -> None:
    d = h.Donor(
        handoff_id=2,
        client=CLIENT,
        local=LOCAL,
        policy=LocalPolicy(),
        next_sequence=1,
        lifetime=60,
    )
    assert d.start(0.0) == [h.CancelTimer(("handoff_donor", 2)), h.HandoffCompleted(LOCAL)]
    assert d.state is h.DonorState.COMPLETED


def test_acceptor_paths() -> None:
    a = h.Acceptor(handoff_id=1, client=CLIENT, donor=LOCAL)
    assert a.handle(0.0, A.PREPARE) == [h.RunReturnRoutability(), h.StartTimer(2.0, AT)]
    assert a.handle(0.1, A.TOKENS) == [h.SendPrepared(LOCAL), h.StartTimer(2.1, AT)]
    out = a.handle(0.2, A.INIT, sequence=500, lifetime=60)
    assert out == [h.Import(), h.Bind(500, 60), h.StartTimer(2.2, AT)]
    assert a.handle(0.3, A.CLIENT_PACKET) == [h.CancelTimer(AT), h.Thaw(), h.SendDone(LOCAL)]
    assert a.state is h.AcceptorState.ACTIVE
    assert a.handle(0.4, A.BOUND) == [] and a.unexpected == 1  # the BA after the packet
    refused = h.Acceptor(handoff_id=2, client=CLIENT, donor=LOCAL)
    refused.handle(0.0, A.INIT, sequence=500, lifetime=60)
    assert refused.handle(0.1, A.REJECTED) == [
        h.CancelTimer(("handoff_acceptor", 2)),
        h.Release(),
        h.SendFailed(LOCAL, FailureReason.CLIENT_UNREACHABLE),
    ]
    aborted = h.Acceptor(handoff_id=3, client=CLIENT, donor=LOCAL)
    aborted.handle(0.0, A.INIT, sequence=500, lifetime=60)
    assert aborted.handle(0.1, A.ABORTED) == [
        h.CancelTimer(("handoff_acceptor", 3)),
        h.Release(),
        h.SendFailed(LOCAL, FailureReason.TIMEOUT),
    ]


DONOR_STATES = list(h.DonorState)
ACCEPTOR_STATES = list(h.AcceptorState)


@pytest.mark.parametrize("state,received", itertools.product(h.DonorState, h.DonorInput))
def test_every_donor_pair_moves_as_the_table_says_or_is_ignored(state, received) -> None:  # type: ignore[no-untyped-def]
    d = donor(M2)
    d.start(0.0)
    d.state, d.target, d.tried = state, M2, [M2]
    d.frozen = state in (h.DonorState.INITIATED, h.DonorState.REBINDING)
    out = d.handle(1.0, received, FailureReason.REFUSED)
    if (state, received) in h._DONOR:
        assert out  # every entry does something
    else:
        assert out == [] and d.state is state and d.unexpected == 1


@pytest.mark.parametrize("state,received", itertools.product(h.AcceptorState, h.AcceptorInput))
def test_every_acceptor_pair_moves_as_the_table_says_or_is_ignored(state, received) -> None:  # type: ignore[no-untyped-def]
    a = h.Acceptor(handoff_id=1, client=CLIENT, donor=LOCAL, state=state)
    out = a.handle(1.0, received, sequence=7, lifetime=60)
    entry = h._ACCEPTOR.get((state, received))
    if entry is None:
        assert out == [] and a.state is state and a.unexpected == 1
    else:
        assert a.state is entry[0] and out


@given(st.lists(st.sampled_from(list(h.DonorInput)), max_size=30), st.integers(0, 2**32))
def test_donor_invariants_over_any_input_sequence(inputs: list[h.DonorInput], seed: int) -> None:
    rng = random.Random(seed)
    d = donor(M2, M3)
    effects = d.start(0.0)
    now = 0.0
    for received in inputs:
        now += 0.5
        effects += d.handle(now, received, rng.choice(list(FailureReason)))
    kinds = [type(e) for e in effects]
    # never thawed unless our own rebinding was acknowledged; never both kept and released
    assert kinds.count(h.Thaw) <= 1
    if h.Thaw in kinds:
        assert D.BOUND in inputs and h.Release not in kinds
    if h.Release in kinds:
        assert h.Thaw not in kinds and d.state is h.DonorState.COMPLETED
    # each INIT starts a window above the previous one's; a frozen client is frozen once
    numbers = [e.next_sequence for e in effects if isinstance(e, h.SendInit)]
    assert numbers == [500 + k * h.SEQUENCE_WINDOW for k in range(len(numbers))]
    rebinds = [e.sequence for e in effects if isinstance(e, h.Bind)]
    assert all(n > max(numbers, default=0) for n in rebinds)
    assert kinds.count(h.Freeze) <= 1
    # a member is asked at most once per handoff
    targets = [e.target for e in effects if isinstance(e, h.SendPrepare | h.SendInit)]
    assert len(set(targets)) == len(set(d.tried)) and set(targets) <= {M2, M3}
    if d.state in h.FINAL_DONOR_STATES:
        assert not d.frozen or d.state is h.DonorState.COMPLETED


def test_an_acceptor_serving_the_client_already_completes_a_frozen_handoff_to_it() -> None:
    # FAILED SERVED after an INIT: the group moved the client on without this donor (an
    # earlier acceptor took it, its DONE lost, and handed it on), so the frozen copies are
    # behind the client and go; binding it back here took it from the member serving it
    d = donor(M2, M3)
    d.start(0.0)
    d.handle(0.1, D.PREPARED)
    assert d.handle(0.2, D.FAILED, FailureReason.SERVED) == [
        h.CancelTimer(DT),
        h.Release(),
        h.HandoffCompleted(M2),
    ]
    assert d.state is h.DonorState.COMPLETED
    aborting = donor(M2, M3)
    aborting.start(0.0)
    aborting.handle(0.1, D.PREPARED)
    aborting.handle(3.1, D.TIMEOUT)
    out = aborting.handle(3.2, D.FAILED, FailureReason.SERVED)
    assert out == [h.CancelTimer(DT), h.Release(), h.HandoffCompleted(M2)]
    # before any freeze the donor serves the client itself: a refusal like another
    preparing = donor(M2, M3)
    preparing.start(0.0)
    assert preparing.handle(0.1, D.FAILED, FailureReason.SERVED) == [
        h.SendPrepare(M3),
        h.StartTimer(2.1, DT),
    ]
    assert preparing.policy.notified == [(M2, TargetFailure.REFUSED)]  # type: ignore[attr-defined]
