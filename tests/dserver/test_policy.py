"""Distribution policies: each picks what its rule says, never a member already tried for the
handoff or one in quarantine after a failure, and answers None when nothing is left."""

from __future__ import annotations

import random
from collections import Counter
from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mip6.dserver.policy import (
    MAX_LATENCIES,
    BasePolicy,
    ContentAwarePolicy,
    GroupView,
    LeastLoadedPolicy,
    LocalPolicy,
    LowestLatencyPolicy,
    RandomPolicy,
    RoundRobinPolicy,
    Selection,
    TargetFailure,
)

LOCAL = IPv6Address("2001:db8:10::1")
M2 = IPv6Address("2001:db8:20::1")
M3 = IPv6Address("2001:db8:30::1")
CLIENT = IPv6Address("2001:db8:99::5")


def view() -> GroupView:
    group = GroupView()
    for member in (LOCAL, M2, M3):
        group.add(member)
    return group


def ask(policy: BasePolicy | LocalPolicy, now: float = 0.0, **kw: object) -> IPv6Address | None:
    return policy.select_target(Selection(client=CLIENT, local=LOCAL, now=now, **kw))  # type: ignore[arg-type]


def test_local_keeps_every_client() -> None:
    assert ask(LocalPolicy(), tried=frozenset({LOCAL})) == LOCAL


def test_random_spreads_over_all_members() -> None:
    policy = RandomPolicy(view(), random.Random(7))
    picks = Counter(ask(policy) for _ in range(600))
    assert set(picks) == {LOCAL, M2, M3} and min(picks.values()) > 150


def test_random_same_seed_same_choices() -> None:
    a, b = RandomPolicy(view(), random.Random(3)), RandomPolicy(view(), random.Random(3))
    assert [ask(a) for _ in range(50)] == [ask(b) for _ in range(50)]


def test_random_not_local_keeps_the_client_only_when_no_other_is_left() -> None:
    policy = RandomPolicy(view(), random.Random(1), local=False)
    assert all(ask(policy) != LOCAL for _ in range(100))
    assert ask(policy, tried=frozenset({M2, M3})) == LOCAL


def test_round_robin_takes_members_in_turn() -> None:
    policy = RoundRobinPolicy(view())
    assert [ask(policy) for _ in range(6)] == [LOCAL, M2, M3, LOCAL, M2, M3]


def test_least_loaded_follows_reported_load_ties_to_lowest_address() -> None:
    group = view()
    policy = LeastLoadedPolicy(group)
    assert ask(policy) == LOCAL  # all zero
    group.set_load(LOCAL, 5)
    group.set_load(M2, 2)
    group.set_load(M3, 9)
    assert ask(policy) == M2
    group.set_load(IPv6Address("2001:db8:77::1"), 0)  # not a member: ignored
    assert ask(policy) == M2


def test_lowest_latency_prefers_measured_and_uses_the_client_64() -> None:
    group = view()
    policy = LowestLatencyPolicy(group)
    group.set_latency(M3, IPv6Address("2001:db8:99::77"), 0.010)  # same /64 as CLIENT
    assert ask(policy) == M3  # the only measured member beats the unmeasured
    group.set_latency(M2, CLIENT, 0.004)
    assert ask(policy) == M2
    group.remove(M2)
    assert ask(policy) == M3 and group.latency(M2, CLIENT) is None


def test_latency_table_is_bounded() -> None:
    group = view()
    for n in range(MAX_LATENCIES + 10):
        group.set_latency(M2, IPv6Address(f"2001:db8:{n:x}::1"), 0.001)
    assert len(group._latency) == MAX_LATENCIES
    assert group.latency(M2, IPv6Address("2001:db8:0::1")) is None  # the oldest went first


def test_content_aware_by_path_with_fallback() -> None:
    def by_path(first: bytes, candidates: object) -> IPv6Address | None:
        if first.startswith(b"GET /video"):
            return M3
        if first.startswith(b"GET /gone"):
            return IPv6Address("2001:db8:66::1")  # not a member: the fallback decides
        return None

    policy = ContentAwarePolicy(view(), by_path, RoundRobinPolicy(view()))
    assert ask(policy, first_bytes=b"GET /video/1 HTTP/1.1\r\n") == M3
    assert ask(policy, first_bytes=b"GET /index HTTP/1.1\r\n") == LOCAL
    assert ask(policy, first_bytes=b"GET /gone HTTP/1.1\r\n") == M2
    policy.notify_failure(M3, TargetFailure.REFUSED, now=0.0)
    assert ask(policy, first_bytes=b"GET /video/2 HTTP/1.1\r\n") != M3


@pytest.mark.parametrize(
    "make",
    [
        lambda g: RandomPolicy(g, random.Random(2)),
        RoundRobinPolicy,
        LeastLoadedPolicy,
        LowestLatencyPolicy,
    ],
)
def test_failed_member_is_quarantined_then_offered_again(make) -> None:  # type: ignore[no-untyped-def]
    policy = make(view())
    policy.notify_failure(M2, TargetFailure.TIMED_OUT, now=10.0)
    assert all(ask(policy, now=10.0 + i / 10) != M2 for i in range(40))
    assert policy.failures == {TargetFailure.TIMED_OUT: 1}
    assert M2 in policy.candidates(Selection(client=CLIENT, local=LOCAL, now=15.0))


@given(
    st.sets(st.sampled_from([LOCAL, M2, M3])),
    st.integers(0, 3),
    st.booleans(),
)
def test_never_a_tried_member_none_when_nothing_is_left(
    tried: set[IPv6Address], which: int, local: bool
) -> None:
    group = view()
    policy = [
        RandomPolicy(group, random.Random(which), local=local),
        RoundRobinPolicy(group, local=local),
        LeastLoadedPolicy(group, local=local),
        LowestLatencyPolicy(group, local=local),
    ][which]
    chosen = ask(policy, tried=frozenset(tried))
    if tried >= {LOCAL, M2, M3}:
        assert chosen is None
    else:
        assert chosen is not None and chosen not in tried
