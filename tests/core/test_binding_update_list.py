"""The Binding Update List state machine (RFC 3775 11.1): every (state, input) pair against the
transition table."""

from __future__ import annotations

import copy
import dataclasses
import itertools

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from mip6.core.binding_update_list import (
    TRANSITIONS,
    BulEntry,
    BulInput,
    BulProtocolError,
    BulState,
    transition,
)

from .scenario import CN, HOME, VISITED

CARE_OF = VISITED["visited1"][1]


def _entry(state: BulState) -> BulEntry:
    return BulEntry(
        destination=CN, home_address=HOME, home_registration=False, sequence=7, state=state
    )


# -- the table ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "bul_input"),
    list(itertools.product(BulState, BulInput)),
    ids=lambda value: value.name,
)
def test_every_state_every_input_lands_where_the_table_says_or_raises(
    state: BulState, bul_input: BulInput
) -> None:
    entry = _entry(state)
    before = copy.deepcopy(entry)
    target = TRANSITIONS.get((state, bul_input))
    if target is None:
        with pytest.raises(BulProtocolError) as raised:
            transition(entry, bul_input)
        assert (raised.value.state, raised.value.input) == (state, bul_input)
        assert entry == before
    else:
        assert transition(entry, bul_input) is target
        assert entry == dataclasses.replace(before, state=target)


def test_guarded_inputs_are_taken_only_where_the_engine_checks_for_them() -> None:
    missing = set(itertools.product(BulState, BulInput)) - set(TRANSITIONS)
    taken_in = {
        bul_input: {state for state in BulState if (state, bul_input) in TRANSITIONS}
        for bul_input in BulInput
    }
    assert taken_in[BulInput.TOKENS_COMPLETE] == {BulState.RETURN_ROUTABILITY}
    assert taken_in[BulInput.BA_ACCEPTED] == {BulState.WAITING_ACK}
    assert taken_in[BulInput.BA_REJECTED] == {BulState.WAITING_ACK}
    assert taken_in[BulInput.EXPIRED] == {BulState.BOUND}
    assert taken_in[BulInput.MOVED] == set(BulState) - {BulState.FAILED}
    assert len(missing) == 17


def test_every_state_is_entered_and_left() -> None:
    moves = {(source, target) for (source, _), target in TRANSITIONS.items() if source != target}
    assert {source for source, _ in moves} == set(BulState)
    assert {target for _, target in moves} == set(BulState)


def test_protocol_error_names_state_and_input() -> None:
    with pytest.raises(BulProtocolError, match="no transition from FAILED on MOVED"):
        transition(_entry(BulState.FAILED), BulInput.MOVED)


class BulMachine(RuleBasedStateMachine):
    """Any sequence of inputs: each lands where the table says, or raises and changes nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.entry = _entry(BulState.RETURN_ROUTABILITY)
        self.expected = self.entry.state

    @initialize(state=st.sampled_from(BulState))
    def start_in(self, state: BulState) -> None:
        self.entry = _entry(state)
        self.expected = state

    @rule(bul_input=st.sampled_from(BulInput))
    def give(self, bul_input: BulInput) -> None:
        before = copy.deepcopy(self.entry)
        target = TRANSITIONS.get((self.expected, bul_input))
        if target is None:
            with pytest.raises(BulProtocolError) as raised:
                transition(self.entry, bul_input)
            assert (raised.value.state, raised.value.input) == (self.expected, bul_input)
            assert self.entry == before
        else:
            assert transition(self.entry, bul_input) is target
            self.expected = target

    @invariant()
    def state_is_the_one_expected(self) -> None:
        assert self.entry.state is self.expected


TestBulMachine = BulMachine.TestCase
