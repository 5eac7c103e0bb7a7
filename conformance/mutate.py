"""Mutation run: our own roles with deliberately injected faults, each of which some case
must catch (a case that passes against the correct engine and fails against the faulty one).

A fault patches the engine instance the sim target starts for each case (``instance``), or a
module-level name the role uses, for the duration of the run (``module``). The faults are
the bugs a Mobile IPv6 implementation is known to get wrong: accepting a bad authenticator,
comparing sequence numbers without wrap-around, never sending Binding Errors, ignoring
expired nonces when A is clear, skipping the lifetime cap, and so on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

from conformance.runner import FAIL, PASS, SimTarget, run_cases
from conformance.transport import SimTransport


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    role: str
    description: str
    instance: Callable[[Any], None] | None = None  # patches the IUT engine of each case
    module: Callable[[], contextlib.AbstractContextManager[Any]] | None = None


# -- correspondent node faults ---------------------------------------------------------------------


def _cn_module() -> Any:
    from mip6.roles import correspondent_node

    return correspondent_node


def _wrap_acknowledge(engine: Any, change: Callable[..., Any]) -> None:
    original = engine._acknowledge

    def acknowledge(now: float, request: Any, correspondent: Any, status: int, kbm: Any, **kw: Any):  # type: ignore[no-untyped-def]
        return change(original, now, request, correspondent, status, kbm, **kw)

    engine._acknowledge = acknowledge


def _silent_expired_without_ack(engine: Any) -> None:
    def change(original, now, request, correspondent, status, kbm, **kw):  # type: ignore[no-untyped-def]
        if status in (136, 137, 138) and not request.update.acknowledge:
            return []
        return original(now, request, correspondent, status, kbm, **kw)

    _wrap_acknowledge(engine, change)


def _ba_135_echoes_bu_sequence(engine: Any) -> None:
    def change(original, now, request, correspondent, status, kbm, **kw):  # type: ignore[no-untyped-def]
        kw.pop("sequence", None)
        return original(now, request, correspondent, status, kbm, **kw)

    _wrap_acknowledge(engine, change)


def _no_lifetime_cap(engine: Any) -> None:
    config = engine.config
    constants = dataclasses.replace(config.constants, max_rr_binding_lifetime=1e9)
    engine.config = dataclasses.replace(config, constants=constants)


def _no_binding_error(engine: Any) -> None:
    engine.pipeline.binding_error = lambda *args, **kwargs: []


def _unbounded_binding_cache(engine: Any) -> None:
    engine.binding_cache.capacity = 1 << 30


def _accepts_home_registration(engine: Any) -> None:
    engine._is_home_agent = True


def _deregistration_keeps_binding(engine: Any) -> None:
    engine.binding_cache.remove = lambda home_address: None


def _no_binding_refresh_request(engine: Any) -> None:
    engine._binding_refresh = lambda now, home: []


def _bindings_never_expire(engine: Any) -> None:
    cache = engine.binding_cache

    def allows(now: float, home: Any, care_of: Any) -> bool:
        entry = cache.get(home)
        return entry is not None and entry.care_of_address == care_of

    engine.pipeline._binding_allows = allows
    original = engine.handle_timer
    engine.handle_timer = lambda now, token: (
        [] if token[0] == "binding_expiry" else original(now, token)
    )


def _hot_with_wrong_cookie(engine: Any) -> None:
    engine._fast_test_init = lambda now, data: None
    original = engine._home_test

    def home_test(now: float, inbound: Any, hoti: Any) -> Any:
        return original(now, inbound, dataclasses.replace(hoti, home_init_cookie=bytes(8)))

    engine._home_test = home_test


@contextlib.contextmanager
def _accept_bad_authenticator() -> Iterator[None]:
    fake = types.SimpleNamespace(compare_digest=lambda a, b: True)
    with mock.patch.object(_cn_module(), "hmac", fake):
        yield


@contextlib.contextmanager
def sequence_without_wraparound() -> Iterator[None]:
    """The correspondent node and the home agent share the 9.5.1 sequence rule (the binding
    cache module's): one fault for both, run against each role's cases."""
    from mip6.core import binding_cache

    with mock.patch.object(binding_cache, "sequence_newer", lambda new, old: new > old):
        yield


@contextlib.contextmanager
def _checksum_not_verified() -> Iterator[None]:
    with mock.patch.object(_cn_module(), "verify_upper_layer", lambda *args: True):
        yield


@contextlib.contextmanager
def _ba_authenticator_with_wrong_key() -> Iterator[None]:
    module = _cn_module()
    original = module._authorized_ba_packet

    def build(correspondent, care_of, home, status, sequence, lifetime, kbm):  # type: ignore[no-untyped-def]
        return original(correspondent, care_of, home, status, sequence, lifetime, bytes(20))

    with mock.patch.object(module, "_authorized_ba_packet", build):
        yield


@contextlib.contextmanager
def _ba_to_home_address() -> Iterator[None]:
    module = _cn_module()
    original = module._authorized_ba_packet

    def build(correspondent, care_of, home, status, sequence, lifetime, kbm):  # type: ignore[no-untyped-def]
        return original(correspondent, home, home, status, sequence, lifetime, kbm)

    with mock.patch.object(module, "_authorized_ba_packet", build):
        yield


@contextlib.contextmanager
def _test_init_with_mobility_headers_answered() -> Iterator[None]:
    from mip6.core import node
    from mip6.wire import mobility

    class Never:  # no HoTI/CoTI is ever recognized by the HAO/RH2 check
        pass

    proxy = types.SimpleNamespace(**vars(mobility))
    proxy.HomeTestInit = proxy.CareOfTestInit = Never
    with mock.patch.object(node, "mh", proxy):
        yield


@contextlib.contextmanager
def _trailing_bytes_before_payload_proto() -> Iterator[None]:
    """The parser reports bytes after the Mobility Header as a Header Len fault before it
    looks at Payload Proto (RFC 3775 9.2 asks for the pointer at Payload Proto). Every role
    parses with it: one fault, run against each role's cases."""
    from mip6.wire import ipv6, mobility, protocols
    from mip6.wire.errors import Malformed

    original = mobility.parse_mobility_header

    def parse(buf: bytes, *, source: bytes, destination: bytes) -> Any:
        if len(buf) >= 2 and 8 * (buf[1] + 1) < len(buf):
            raise Malformed("bytes after the Mobility Header", mobility.HEADER_LEN, "header_len")
        return original(buf, source=source, destination=destination)

    with mock.patch.dict(ipv6._UPPER_PARSERS, {protocols.MOBILITY: parse}):
        yield


def _header_len_silently_discarded(engine: Any) -> None:
    """A Header Len fault discarded without the Parameter Problem pointing at the field that
    RFC 3775 9.2 asks for (every role's pipeline answers it: run against each role's cases)."""
    pipeline = engine.pipeline
    original = pipeline._malformed

    def malformed(now: float, data: bytes, error: Any) -> Any:
        actions = original(now, data, error)
        return actions[:1] if error.field == "header_len" else actions  # the drop Event only

    pipeline._malformed = malformed


@contextlib.contextmanager
def _unknown_option_rejected() -> Iterator[None]:
    """A mobility option of an unknown type makes the whole message malformed, where RFC 3775
    6.2.1 has the receiver skip it (run against each role's cases)."""
    from mip6.wire import mobility
    from mip6.wire.errors import Malformed

    original = mobility._decode_mobility_option

    def decode(option_type: int, data: bytes, offset: int) -> Any:
        option = original(option_type, data, offset)
        if isinstance(option, mobility.UnknownMobilityOption):
            raise Malformed(f"unknown mobility option type {option_type}", offset, "options")
        return option

    with mock.patch.object(mobility, "_decode_mobility_option", decode):
        yield


@contextlib.contextmanager
def _mobility_checksum_not_verified() -> Iterator[None]:
    """The Mobility Header parser's checksum check skipped (RFC 3775 9.2: silently discard)."""
    from mip6.wire import mobility

    with mock.patch.object(mobility, "verify_upper_layer", lambda *args: True):
        yield


# -- home agent and mobile node faults that need our codec (the case modules may not import it) --


def _home_registration_ignores_nonce_indices(engine: Any) -> None:
    from mip6.wire import mobility as mh

    original = engine._home_registration

    def home_registration(now: float, inbound: Any, update: Any) -> Any:
        options = tuple(o for o in update.options if not isinstance(o, mh.NonceIndices))
        return original(now, inbound, dataclasses.replace(update, options=options))

    engine._home_registration = home_registration


def _registration_type_change_before_authorization(engine: Any) -> None:
    from mip6.core.binding_cache import binding_request

    original = engine._binding_update

    def binding_update(now: float, inbound: Any) -> Any:
        request = binding_request(inbound.packet)
        if request is not None and not request.update.home_registration:
            entry = engine._live_entry(now, request.home_address)
            if entry is not None and entry.home_registration:
                return engine._acknowledge(request, inbound, 139)
        return original(now, inbound)

    engine._binding_update = binding_update


@contextlib.contextmanager
def _ba_authenticator_over_re_emitted_bytes() -> Iterator[None]:
    """The BA's Mobility Data taken from our own emission of what we parsed (Reserved zero)
    instead of the bytes received."""
    from mip6.roles import mobile_node
    from mip6.wire import mobility

    proxy = types.SimpleNamespace(**vars(mobility))
    proxy.received_mobility_data = lambda header: mobility.received_mobility_data(
        header[:3] + b"\0" + header[4:]
    )
    with mock.patch.object(mobile_node, "mh", proxy):
        yield


def _binding_error_2_believed_until_acknowledged(engine: Any) -> None:
    """The earlier rule: a Binding Error 2 believed while a Binding Update is
    outstanding, as long as no BA of the correspondent was ever authenticated (its binding may
    stand all the same: the BA may have been lost)."""
    from mip6.core.binding_update_list import BulState

    expecting = (BulState.RETURN_ROUTABILITY, BulState.WAITING_ACK)
    engine._unrecognized_mh_type_applies = lambda entry: (
        entry.state in expecting and entry.acknowledged_sequence is None
    )


FAULTS: tuple[Fault, ...] = (
    Fault(
        "cn-accept-bad-authenticator",
        "cn",
        "BU authenticator never checked",
        module=_accept_bad_authenticator,
    ),
    Fault(
        "cn-sequence-without-wraparound",
        "cn",
        "sequence numbers compared as plain integers, not modulo 2^16",
        module=sequence_without_wraparound,
    ),
    Fault(
        "cn-never-send-binding-error", "cn", "Binding Errors never sent", instance=_no_binding_error
    ),
    Fault(
        "cn-binding-cache-unbounded",
        "cn",
        "no BA 130: the binding cache grows past its configured size",
        instance=_unbounded_binding_cache,
    ),
    Fault(
        "cn-expired-nonces-silent-without-ack",
        "cn",
        "BA 136/137/138 only sent when A is set",
        instance=_silent_expired_without_ack,
    ),
    Fault(
        "cn-no-lifetime-cap", "cn", "MAX_RR_BINDING_LIFETIME not applied", instance=_no_lifetime_cap
    ),
    Fault(
        "cn-accept-home-registration",
        "cn",
        "H bit treated as at a home agent (no BA 131)",
        instance=_accepts_home_registration,
    ),
    Fault(
        "cn-135-echoes-bu-sequence",
        "cn",
        "BA 135 carries the BU's sequence number, not the last accepted one",
        instance=_ba_135_echoes_bu_sequence,
    ),
    Fault(
        "cn-test-init-with-hao-or-rh2-processed",
        "cn",
        "HoTI/CoTI carrying a HAO or RH2 processed instead of silently discarded",
        module=_test_init_with_mobility_headers_answered,
    ),
    Fault(
        "cn-mh-checksum-not-verified",
        "cn",
        "fast-path HoTI/CoTI/BU checksum not verified",
        module=_checksum_not_verified,
    ),
    Fault(
        "cn-trailing-bytes-before-payload-proto",
        "cn",
        "a piggybacked payload reported at Header Len instead of Payload Proto",
        module=_trailing_bytes_before_payload_proto,
    ),
    Fault(
        "ha-trailing-bytes-before-payload-proto",
        "ha",
        "a piggybacked payload after a home registration reported at Header Len",
        module=_trailing_bytes_before_payload_proto,
    ),
    Fault(
        "mn-trailing-bytes-before-payload-proto",
        "mn",
        "a piggybacked payload after a correspondent's message reported at Header Len",
        module=_trailing_bytes_before_payload_proto,
    ),
    Fault(
        "cn-header-len-without-parameter-problem",
        "cn",
        "a too small Header Len discarded without a Parameter Problem",
        instance=_header_len_silently_discarded,
    ),
    Fault(
        "ha-header-len-without-parameter-problem",
        "ha",
        "a too small Header Len discarded without a Parameter Problem",
        instance=_header_len_silently_discarded,
    ),
    Fault(
        "mn-header-len-without-parameter-problem",
        "mn",
        "a too small Header Len discarded without a Parameter Problem",
        instance=_header_len_silently_discarded,
    ),
    Fault(
        "cn-unknown-option-rejected",
        "cn",
        "a BU with an option of unknown type discarded instead of the option skipped",
        module=_unknown_option_rejected,
    ),
    Fault(
        "ha-unknown-option-rejected",
        "ha",
        "a home registration with an option of unknown type discarded, not the option skipped",
        module=_unknown_option_rejected,
    ),
    Fault(
        "mn-mh-checksum-not-verified",
        "mn",
        "Mobility Header checksum not verified",
        module=_mobility_checksum_not_verified,
    ),
    Fault(
        "mn-never-send-binding-error",
        "mn",
        "Binding Errors never sent",
        instance=_no_binding_error,
    ),
    Fault(
        "cn-ba-authenticator-wrong-key",
        "cn",
        "BA authenticator computed with a wrong Kbm",
        module=_ba_authenticator_with_wrong_key,
    ),
    Fault(
        "cn-ba-to-home-address",
        "cn",
        "BA sent to the home address instead of the care-of address via RH2",
        module=_ba_to_home_address,
    ),
    Fault(
        "cn-deregistration-keeps-binding",
        "cn",
        "lifetime 0 / CoA = HoA deletes nothing",
        instance=_deregistration_keeps_binding,
    ),
    Fault(
        "cn-never-send-brr",
        "cn",
        "no Binding Refresh Request for bindings in use",
        instance=_no_binding_refresh_request,
    ),
    Fault(
        "cn-bindings-never-expire",
        "cn",
        "binding lifetimes not enforced",
        instance=_bindings_never_expire,
    ),
    Fault(
        "cn-hot-wrong-cookie",
        "cn",
        "HoT does not copy the Home Init Cookie",
        instance=_hot_with_wrong_cookie,
    ),
    Fault(
        "ha-home-registration-ignores-nonce-indices",
        "ha",
        "a home registration with a Nonce Indices option accepted instead of discarded",
        instance=_home_registration_ignores_nonce_indices,
    ),
    Fault(
        "ha-139-before-authorization",
        "ha",
        "BA 139 for a correspondent registration sent before its authenticator is verified",
        instance=_registration_type_change_before_authorization,
    ),
    Fault(
        "mn-ba-authenticator-over-re-emitted-bytes",
        "mn",
        "correspondent BA authenticated over our re-emission, not the bytes received",
        module=_ba_authenticator_over_re_emitted_bytes,
    ),
    Fault(
        "mn-binding-error-2-believed-until-acknowledged",
        "mn",
        "Binding Error 2 stops managing a binding whose BU went out but whose BA was lost",
        instance=_binding_error_2_believed_until_acknowledged,
    ),
)


@dataclass(slots=True)
class FaultResult:
    fault: Fault
    caught_by: list[str]

    @property
    def caught(self) -> bool:
        return bool(self.caught_by)


def _patch_engine(instance: Callable[[Any], None] | None) -> Callable[[SimTransport], None]:
    def patch(transport: SimTransport) -> None:
        if instance is not None:
            instance(transport.engine)

    return patch


def all_faults() -> tuple[Fault, ...]:
    from conformance.cases_ha import FAULTS as HA_FAULTS
    from conformance.cases_mn import FAULTS as MN_FAULTS

    return FAULTS + HA_FAULTS + MN_FAULTS


def mutate(
    cases_by_role: dict[str, list[Any]], faults: tuple[Fault, ...] | None = None
) -> tuple[list[str], list[FaultResult]]:
    """Run the cases of each fault's role against the faulty engine. Returns the ids of the
    cases that fail against the correct engines (should be none) and each fault's result."""
    baseline_failures = [
        r.case.id
        for cases in cases_by_role.values()
        for r in run_cases(cases, SimTarget())
        if r.verdict != PASS
    ]
    results = []
    for fault in faults if faults is not None else all_faults():
        cases = cases_by_role.get(fault.role, [])
        context = fault.module() if fault.module is not None else contextlib.nullcontext()
        with context:
            run = run_cases(cases, SimTarget(patch=_patch_engine(fault.instance)))
        results.append(FaultResult(fault, [r.case.id for r in run if r.verdict == FAIL]))
    return baseline_failures, results
