"""The Binding Update List state machine (RFC 3775 11.1): every (state, input) pair against the
transition table, and the mobile node engine, driven through real scenarios, making only the
transitions the table allows."""

from __future__ import annotations

import ast
import copy
import dataclasses
import itertools
import random
import signal
from collections.abc import Callable
from ipaddress import IPv6Address
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from mip6.core.actions import Transmit
from mip6.core.binding_update_list import (
    TRANSITIONS,
    BindingUpdateList,
    BulEntry,
    BulInput,
    BulProtocolError,
    BulState,
    transition,
)
from mip6.core.config import MobileNodeConfig
from mip6.roles import mobile_node
from mip6.roles.mobile_node import MobileNode
from mip6.runtime.memory import MemoryNetwork
from mip6.runtime.memory import Path as NetworkPath
from mip6.wire import mobility as mh
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import RoutingType2

from .harness import Recorder
from .scenario import CN, HA, HOME, VISITED, Roaming

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


def test_mobile_node_assigns_no_state_outside_the_table() -> None:
    tree = ast.parse(Path(mobile_node.__file__).read_text())
    assigned = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute) and target.attr == "state"
    ]
    assert assigned == []


# -- the engine through real scenarios -------------------------------------------------------------


class TransitionLog:
    """Every transition the mobile node engine makes, through the real table (a missing pair
    raises inside the engine and fails the scenario)."""

    def __init__(self) -> None:
        self.made: list[tuple[BulEntry, BulState, BulInput, BulState]] = []

    def transition(self, entry: BulEntry, bul_input: BulInput) -> BulState:
        before = entry.state
        after = transition(entry, bul_input)
        self.made.append((entry, before, bul_input, after))
        return after

    def pairs(self) -> set[tuple[BulState, BulInput]]:
        return {(before, bul_input) for _, before, bul_input, _ in self.made}

    def check(self, mn: MobileNode) -> None:
        """Each entry is where its last transition left it: no state change went around the
        table."""
        for _, before, bul_input, after in self.made:
            assert TRANSITIONS[(before, bul_input)] is after
        for entry in mn.bul:
            mine = [after for made, _, _, after in self.made if made is entry]
            if mine:
                assert entry.state is mine[-1]


def _roaming(log: TransitionLog) -> Roaming:
    lab = Roaming()
    lab.attach("visited1")
    lab.net.run_for(1)
    lab.ping_from_correspondent()  # through the tunnel: route optimization starts
    lab.net.run_for(1)
    log.check(lab.mn)
    assert lab.mn.bul.get(CN).state is BulState.BOUND
    return lab


def _inject_from_correspondent(
    lab: Roaming, message: mh._Message, source: IPv6Address = CN
) -> None:
    packet = Ipv6Packet(
        source=source,
        destination=lab.mn.care_of_address,
        extension_headers=(RoutingType2(home_address=HOME),),
        payload=message,
    )
    lab.net.inject("mn", packet.emit())


def registration_route_optimization_move_and_return_home(log: TransitionLog) -> None:
    lab = _roaming(log)
    lab.attach("visited2")
    lab.net.run_for(2)
    log.check(lab.mn)
    lab.attach(None)
    lab.net.run_for(2)
    log.check(lab.mn)
    assert len(lab.mn.bul) == 0  # deregistered: both entries left the list
    assert {
        (BulState.WAITING_ACK, BulInput.HOME_REGISTRATION_STARTED),
        (BulState.WAITING_ACK, BulInput.BA_ACCEPTED),
        (BulState.RETURN_ROUTABILITY, BulInput.RR_STARTED),
        (BulState.RETURN_ROUTABILITY, BulInput.BU_SENT),
        (BulState.BOUND, BulInput.HOME_REGISTRATION_STARTED),
        (BulState.BOUND, BulInput.MOVED),
    } <= log.pairs()


def return_routability_in_advance(log: TransitionLog) -> None:
    lab = Roaming()
    lab.attach("visited1")
    lab.net.run_for(1)
    lab.net.call("mn", "start_route_optimization", CN, send_binding_update=False)
    lab.net.run_for(1)
    assert lab.mn.bul.get(CN).state is BulState.READY
    lab.net.call("mn", "start_route_optimization", CN, send_binding_update=False)
    lab.net.call("mn", "complete_route_optimization", CN)
    lab.net.run_for(1)
    log.check(lab.mn)
    assert lab.mn.bul.get(CN).state is BulState.BOUND
    assert {
        (BulState.RETURN_ROUTABILITY, BulInput.TOKENS_COMPLETE),
        (BulState.READY, BulInput.TOKENS_FRESH),
        (BulState.READY, BulInput.BU_SENT),
    } <= log.pairs()


def binding_errors(log: TransitionLog) -> None:
    lab = _roaming(log)
    lab.cn.binding_cache.remove(HOME)
    _inject_from_correspondent(lab, mh.BindingError(status=1, home_address=HOME).aligned())
    lab.net.run_for(1)
    log.check(lab.mn)
    assert lab.mn.bul.get(CN).state is BulState.BOUND
    # RFC 3775 11.3.6: not expecting a response (and it acknowledged our binding): ignored
    _inject_from_correspondent(lab, mh.BindingError(status=2, home_address=HOME).aligned())
    lab.net.run_for(0.1)
    assert lab.mn.bul.get(CN).state is BulState.BOUND
    silent = IPv6Address("2001:db8:9::2")  # unrouted: nothing answers its HoTI/CoTI
    lab.net.call("mn", "start_route_optimization", silent)
    lab.net.run_for(0.1)
    _inject_from_correspondent(
        lab, mh.BindingError(status=2, home_address=HOME).aligned(), source=silent
    )
    lab.net.run_for(0.1)
    assert lab.mn.bul.get(silent).state is BulState.FAILED
    lab.attach("visited2")  # a failed correspondent entry is not moved; a bound one is
    lab.net.run_for(2)
    log.check(lab.mn)
    assert lab.mn.bul.get(silent).state is BulState.FAILED
    assert lab.mn.bul.get(CN).state is BulState.BOUND
    assert lab.cn.binding_cache.get(HOME).care_of_address == lab.mn.care_of_address
    assert {
        (BulState.BOUND, BulInput.BINDING_ERROR_UNKNOWN_BINDING),
        (BulState.RETURN_ROUTABILITY, BulInput.BINDING_ERROR_UNRECOGNIZED_MH_TYPE),
    } <= log.pairs()


def expired_nonces_then_deregistration(log: TransitionLog) -> None:
    lab = _roaming(log)
    entry = lab.mn.bul.get(CN)
    lab.net.path("cn", "mn", NetworkPath(loss=1.0), both_ways=False)
    lab.net.call("mn", "complete_route_optimization", CN)
    lab.net.run_for(0.05)
    lab.net.path("cn", "mn", NetworkPath(), both_ways=False)
    ba = mh.BindingAcknowledgement(
        status=mh.BindingAckStatus.EXPIRED_HOME_NONCE_INDEX, sequence=entry.sequence
    ).aligned()
    _inject_from_correspondent(lab, ba)
    lab.net.run_for(1)
    log.check(lab.mn)
    assert lab.mn.bul.get(CN).state is BulState.BOUND
    lab.net.call("mn", "deregister")
    lab.net.run_for(1)
    log.check(lab.mn)
    assert len(lab.mn.bul) == 0
    assert {
        (BulState.WAITING_ACK, BulInput.RR_STARTED),
        (BulState.BOUND, BulInput.BU_SENT),
    } <= log.pairs()


class ScriptedHomeAgent:
    """A mobile node away from home and a home agent the test speaks for."""

    def __init__(self, config: MobileNodeConfig | None = None) -> None:
        self.net = MemoryNetwork(3)
        self.mn = MobileNode(
            config=config or MobileNodeConfig(home_address=HOME, home_agent=HA),
            rng=random.Random(3),
            care_of_address=CARE_OF,
        )
        self.ha = Recorder()
        self.net.add("mn", self.mn)
        self.net.add("ha", self.ha)
        self.net.route("2001:db8:1::/64", "ha")
        self.net.route(VISITED["visited1"][0], "mn")

    def acknowledge(self, status: int, lifetime_units_4s: int = 105, **fields: int) -> None:
        (bu,) = self.ha.payloads(mh.BindingUpdate)[-1:]
        ba = mh.BindingAcknowledgement(
            status=status,
            sequence=fields.get("sequence", bu.sequence),
            lifetime_units_4s=lifetime_units_4s,
        ).aligned()
        packet = Ipv6Packet(
            source=HA,
            destination=CARE_OF,
            extension_headers=(RoutingType2(home_address=HOME),),
            payload=ba,
        )
        self.net.inject("mn", packet.emit())


def home_registration_rejected_then_retried(log: TransitionLog) -> None:
    lab = ScriptedHomeAgent()
    lab.net.call("mn", "register")
    lab.net.run_for(40)  # no answer: retransmitted with back-off, never given up (11.8)
    lab.acknowledge(mh.BindingAckStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW, sequence=9)
    lab.net.run_for(0.5)
    lab.acknowledge(mh.BindingAckStatus.ADMINISTRATIVELY_PROHIBITED)
    lab.net.run_for(0.5)
    log.check(lab.mn)
    assert lab.mn.bul.get(HA).state is BulState.FAILED
    lab.net.call("mn", "register")
    lab.net.run_for(0.5)
    lab.acknowledge(mh.BindingAckStatus.ACCEPTED)
    lab.net.run_for(0.5)
    log.check(lab.mn)
    assert lab.mn.bul.get(HA).state is BulState.BOUND
    retransmissions = [m for m in log.made if m[1:3] == (BulState.WAITING_ACK, BulInput.BU_SENT)]
    assert len(retransmissions) >= 5
    assert {
        (BulState.WAITING_ACK, BulInput.BA_REJECTED),
        (BulState.FAILED, BulInput.HOME_REGISTRATION_STARTED),
    } <= log.pairs()


def expiry_timer_before_refresh(log: TransitionLog) -> None:
    # With no refresh lead, refresh and expiry fall due at the same instant; a driver may fire
    # the expiry timer first.
    config = MobileNodeConfig(home_address=HOME, home_agent=HA, refresh_lead=0.0)
    lab = ScriptedHomeAgent(config)
    lab.net.call("mn", "register")
    lab.net.run_for(0.5)
    lab.acknowledge(mh.BindingAckStatus.ACCEPTED, lifetime_units_4s=2)
    lab.net.run_for(0.5)
    entry = lab.mn.bul.get(HA)
    actions = lab.mn.handle_timer(entry.expires, ("expiry", HA))
    actions += lab.mn.handle_timer(entry.expires, ("refresh", HA))
    log.check(lab.mn)
    assert entry.state is BulState.FAILED
    assert not [a for a in actions if isinstance(a, Transmit)]
    assert (BulState.BOUND, BulInput.EXPIRED) in log.pairs()


SCENARIOS: tuple[Callable[[TransitionLog], None], ...] = (
    registration_route_optimization_move_and_return_home,
    return_routability_in_advance,
    binding_errors,
    expired_nonces_then_deregistration,
    home_registration_rejected_then_retried,
    expiry_timer_before_refresh,
)


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> TransitionLog:
    log = TransitionLog()
    monkeypatch.setattr(mobile_node, "transition", log.transition)
    return log


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
def test_mobile_node_scenario_makes_only_table_transitions(
    log: TransitionLog, scenario: Callable[[TransitionLog], None]
) -> None:
    scenario(log)


def test_mobile_node_scenarios_give_every_input(log: TransitionLog) -> None:
    for scenario in SCENARIOS:
        scenario(log)
    assert {bul_input for _, _, bul_input, _ in log.made} == set(BulInput)


def _livelocked(signum: int, frame: object) -> None:
    raise TimeoutError("the mobile node livelocked: a timer re-armed at the instant it fired")


class RoamingMachine(RuleBasedStateMachine):
    """The roaming triangle driven by any sequence of commands, moves, time and Binding Errors:
    the mobile node never gives an entry an input its state has no transition for, and no state
    changes around the table."""

    def __init__(self) -> None:
        super().__init__()
        self.log = TransitionLog()
        # The MAX_UPDATE_RATE check re-arms its timer at the very instant it fires, for ever,
        # when (t + 1.0) - t < 1.0 in floating point. Times that are multiples of 2**-7 add up
        # exactly, so it cannot happen here; if it ever does, the alarm fails the example.
        self.lab = Roaming(latency=2**-7)
        self.patch = mock.patch.object(mobile_node, "transition", self.log.transition)
        self.patch.start()
        self.previous_handler = signal.signal(signal.SIGALRM, _livelocked)
        signal.setitimer(signal.ITIMER_REAL, 20.0)

    def teardown(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, self.previous_handler)
        self.patch.stop()

    @initialize()
    def away_from_home(self) -> None:
        self.lab.attach("visited1")

    @rule(network=st.sampled_from([None, "visited1", "visited2"]))
    def move(self, network: str | None) -> None:
        self.lab.attach(network)

    @rule(seconds=st.sampled_from([2**-7, 0.25, 2.0, 32.0, 512.0]))
    def run(self, seconds: float) -> None:
        self.lab.net.run_for(seconds)

    @rule()
    def ping_from_correspondent(self) -> None:
        self.lab.ping_from_correspondent()

    @rule(
        command=st.sampled_from(
            ["register", "deregister", "complete_route_optimization", "clear_binding"]
        )
    )
    def command(self, command: str) -> None:
        args = () if command in ("register", "deregister") else (CN,)
        self.lab.net.call("mn", command, *args)

    @rule(send_binding_update=st.booleans())
    def start_route_optimization(self, send_binding_update: bool) -> None:
        self.lab.net.call(
            "mn", "start_route_optimization", CN, send_binding_update=send_binding_update
        )

    @rule(status=st.sampled_from([1, 2]))
    def binding_error(self, status: int) -> None:
        if self.lab.mn.care_of_address is not None:
            error = mh.BindingError(status=status, home_address=HOME).aligned()
            _inject_from_correspondent(self.lab, error)

    @invariant()
    def only_table_transitions(self) -> None:
        self.log.check(self.lab.mn)


TestRoamingMachine = RoamingMachine.TestCase
TestRoamingMachine.settings = settings(max_examples=100, stateful_step_count=20, deadline=None)


def test_version_moves_with_what_fast_decisions_read_and_only_with_it() -> None:
    """The list's version (the mobile node's fast_version reads it, O(1), before every wait
    of the daemon's fast path) moves at each put and remove of an entry and each change of
    a field MobileNode.fast_decision reads; other bookkeeping leaves it."""
    bul = BindingUpdateList(capacity=4)
    correspondent = IPv6Address("2001:db8:2::1")
    entry = BulEntry(
        destination=correspondent,
        home_address=IPv6Address("2001:db8:1::80"),
        home_registration=False,
        sequence=1,
        state=BulState.RETURN_ROUTABILITY,
    )
    entry.state = BulState.READY  # not in a list yet: nothing to move
    assert bul.version == 0
    bul.put(entry)
    seen = {bul.version}
    for name, value in (
        ("state", BulState.BOUND),
        ("care_of_address", IPv6Address("2001:db8:9::1")),
        ("expires", 12.5),
        ("deregistering", True),
    ):
        setattr(entry, name, value)
        assert bul.version not in seen, name
        seen.add(bul.version)
    before = bul.version
    entry.sequence = 2
    entry.retransmit_timeout = 3.0
    entry.tokens.home_keygen_token = bytes(8)
    assert bul.version == before
    bul.remove(IPv6Address("2001:db8:2::2"))  # not there
    assert bul.version == before
    bul.remove(correspondent)
    assert bul.version == before + 1
    node = MobileNode.__new__(MobileNode)
    node.bul, node._at_home, node.care_of_address = bul, False, None
    node.home_agent, node.tunnel_relay = IPv6Address("2001:db8:1::1"), None
    version = node.fast_version()
    assert node.fast_version() == version
    bul.put(entry)
    assert node.fast_version() != version
