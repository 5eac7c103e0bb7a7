"""The contact node's relay table: a HoT goes to the member whose HoTI carried its cookie, once;
entries expire; the table never holds more than its capacity."""

from __future__ import annotations

from ipaddress import IPv6Address

from hypothesis import given
from hypothesis import strategies as st

from mip6.dserver.relay import RelayTable

CLIENT = IPv6Address("2001:db8:99::5")
A1 = IPv6Address("2001:db8:20::1")
A2 = IPv6Address("2001:db8:30::1")


def test_hot_goes_to_the_acceptor_once() -> None:
    table = RelayTable()
    assert table.add(0.0, CLIENT, b"c" * 8, A1)
    assert table.take(0.1, CLIENT, b"c" * 8) == A1
    assert table.take(0.2, CLIENT, b"c" * 8) is None
    assert table.counters["relayed_hot"] == 1 and table.counters["unknown_hot"] == 1


def test_racing_acceptors_each_get_their_own_hot() -> None:
    table = RelayTable()
    table.add(0.0, CLIENT, b"1" * 8, A1)
    table.add(0.0, CLIENT, b"2" * 8, A2)
    assert table.take(0.1, CLIENT, b"2" * 8) == A2
    assert table.take(0.1, CLIENT, b"1" * 8) == A1


def test_entries_expire_and_a_retransmission_renews() -> None:
    table = RelayTable(lifetime=4.0)
    table.add(0.0, CLIENT, b"a" * 8, A1)
    table.add(1.0, CLIENT, b"b" * 8, A1)
    assert table.next_expiry() == 4.0
    table.add(3.0, CLIENT, b"a" * 8, A1)  # retransmitted HoTI
    assert table.next_expiry() == 5.0
    assert table.take(6.5, CLIENT, b"a" * 8) == A1
    assert table.take(6.5, CLIENT, b"b" * 8) is None and table.counters["expired"] == 1
    assert table.next_expiry() is None and len(table) == 0


def test_full_table_refuses_until_entries_expire() -> None:
    table = RelayTable(capacity=2, lifetime=1.0)
    assert table.add(0.0, CLIENT, b"1" * 8, A1) and table.add(0.0, CLIENT, b"2" * 8, A1)
    assert not table.add(0.5, CLIENT, b"3" * 8, A1) and table.counters["full"] == 1
    assert table.add(1.0, CLIENT, b"3" * 8, A1)  # the first two expired at 1.0
    assert len(table) == 1


@given(st.lists(st.tuples(st.integers(0, 50), st.binary(min_size=8, max_size=8)), max_size=200))
def test_never_more_than_capacity_and_expiry_in_order(adds: list[tuple[int, bytes]]) -> None:
    table = RelayTable(capacity=16, lifetime=3.0)
    now = 0.0
    for step, cookie in adds:
        now += step / 10
        table.add(now, CLIENT, cookie, A1)
        assert len(table) <= 16
        expiries = [entry.expires for entry in table._entries.values()]
        assert expiries == sorted(expiries) and all(e > now for e in expiries)
