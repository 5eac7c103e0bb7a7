"""Robustness (#14, item 4): each malformed input class of the Mobility Header and its options
against each role, checked for the RFC's answer and for no state change.

Each role starts bound (the correspondent holds a binding, the home agent a home registration,
the mobile node a correspondent binding, or awaits its home agent's BA) and is sent a variant of
a message it would act on: the correspondent a deregistering Binding Update (RFC 3775 9.5.1),
the home agent a re-registration (10.3.1), the mobile node a Binding Error status 1 (11.3.6)
or the BA accepting its home registration (11.7.3). The Mobility Header is built here
byte by byte from the message's fixed part and raw option bytes; Header Len and the checksum are
computed unless a class breaks them on purpose, and the correspondent's authenticator is
recomputed over the variant (independent math, :mod:`tests.core.rfc`), so nothing but the
malformation can be why a packet is refused. The drop counter of each class names the field at
fault, and a control case shows each base message does change the state the others must leave.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address

import pytest

from mip6.core.binding_cache import BindingCacheEntry
from mip6.core.binding_update_list import BulState
from mip6.runtime.memory import MemoryNetwork
from mip6.wire import icmpv6 as icmp
from mip6.wire import mobility as mh
from mip6.wire.checksum import upper_layer_checksum
from mip6.wire.ipv6 import Ipv6Packet, Layer
from mip6.wire.ipv6ext import RoutingType2

from . import rfc
from .harness import signed_bu
from .test_correspondent import CN as CN_ADDRESS
from .test_correspondent import Lab as CorrespondentLab
from .test_home_agent import HA as HA_ADDRESS
from .test_home_agent import Lab as HomeAgentLab
from .test_home_agent import home_bu
from .test_mobile_node import CN as MN_CORRESPONDENT
from .test_mobile_node import HA as MN_HOME_AGENT
from .test_mobile_node import Lab as MobileNodeLab
from .test_mobile_node import RoLab, route_optimize

HOME = IPv6Address("2001:db8:1::5")
CARE_OF = IPv6Address("2001:db8:3::5")
MOBILITY = 135
PAYLOAD_LENGTH = struct.Struct("!H")
# RFC 3775 6.1.1: Payload Proto(8) Header Len(8) MH Type(8) Reserved(8) Checksum(16)
PAYLOAD_PROTO, HEADER_LEN, MH_TYPE, CHECKSUM = 0, 1, 2, 4
UNKNOWN_OPTION = bytes([200, 6]) + bytes(6)  # RFC 3775 6.2.1: skipped by the receiver


def nonce_indices(home: int, care_of: int, *, length: int = 4) -> bytes:
    """RFC 3775 6.2.6 (alignment 2n); ``length`` other than 4 is malformed."""
    return bytes([4, length]) + struct.pack("!HH", home, care_of) + bytes(length - 4)


def binding_authorization_data() -> bytes:
    """RFC 3775 6.2.7 (alignment 8n+2); the authenticator is computed when the header is
    complete."""
    return bytes([5, 12]) + bytes(12)


def pad_n(total: int) -> bytes:
    """PadN of ``total`` bytes (RFC 3775 6.2.3)."""
    return bytes([1, total - 2]) + bytes(total - 2)


@dataclass
class Role:
    """A bound role, the message it is sent and how to read its state."""

    net: MemoryNetwork
    node: str
    prefix: bytes  # the IPv6 header and extension headers before the Mobility Header
    fixed: bytes  # the Mobility Header up to its options (Header Len and Checksum filled later)
    options: bytes  # the base message's options, aligned as the RFC asks
    pseudo: tuple[IPv6Address, IPv6Address]  # checksum pseudo-header source and destination
    sender: IPv6Address  # where the RFC's answers go
    state: Callable[[], object]
    changed: Callable[[], bool]  # did the base message's effect happen?
    counters: Callable[[], dict[str, int]]
    authenticate: Callable[[bytearray], None] | None = None  # the correspondent's BAD

    def mobility_header(
        self, *, options: bytes | None = None, mh_type: int | None = None
    ) -> bytearray:
        """The Mobility Header with consistent Header Len, authenticator and checksum."""
        header = bytearray(self.fixed + (self.options if options is None else options))
        assert len(header) % 8 == 0, "a variant must keep the RFC's 8-octet multiple"
        header[HEADER_LEN] = len(header) // 8 - 1
        if mh_type is not None:
            header[MH_TYPE] = mh_type
        if self.authenticate is not None and header[-14:-12] == b"\x05\x0c":
            self.authenticate(header)  # Binding Authorization Data last, as 6.2.7 asks
        return self.checksummed(header)

    def checksummed(self, header: bytearray) -> bytearray:
        header[CHECKSUM : CHECKSUM + 2] = b"\0\0"
        source, destination = (a.packed for a in self.pseudo)
        value = upper_layer_checksum(source, destination, MOBILITY, bytes(header))
        header[CHECKSUM : CHECKSUM + 2] = value.to_bytes(2, "big")
        return header

    def packet(self, header: bytes) -> bytes:
        """``header`` after the prefix, the IPv6 Payload Length set to what follows the fixed
        header."""
        data = bytearray(self.prefix + header)
        PAYLOAD_LENGTH.pack_into(data, 4, len(data) - 40)
        return bytes(data)

    def send(self, data: bytes) -> list[Ipv6Packet]:
        """``data`` arrives; returns what the role sent in answer."""
        mark = len(self.net.trace)
        self.net.inject(self.node, data)
        self.net.run_for(0.01)
        return [Ipv6Packet.parse(s.data) for s in self.net.trace[mark:] if s.sender == self.node]


def _split(data: bytes) -> tuple[bytes, bytes]:
    """The base packet's prefix and Mobility Header (the last header)."""
    layers: list[Layer] = []
    Ipv6Packet.parse(data, layers=layers)
    start = layers[-1].start
    return data[:start], data[start:]


def _sequence(entry: BindingCacheEntry | None) -> int | None:
    return None if entry is None else entry.sequence


def _bul_sequence(lab: RoLab, destination: IPv6Address) -> int | None:
    entry = lab.mn.bul.get(destination)
    return None if entry is None else entry.sequence


def correspondent() -> Role:
    lab = CorrespondentLab()
    tokens = lab.rr()
    lab.bu(tokens, 10)
    key = rfc.kbm(tokens.home_keygen_token, tokens.care_of_keygen_token)
    prefix, header = _split(
        signed_bu(
            home=HOME,
            care_of=CARE_OF,
            correspondent=CN_ADDRESS,
            tokens=tokens,
            sequence=11,
            lifetime_units_4s=0,
        )
    )
    start = mh.BindingUpdate.options_start

    def authenticate(header: bytearray) -> None:
        header[-12:] = rfc.authenticator(key, CARE_OF.packed, CN_ADDRESS.packed, bytes(header))

    return Role(
        net=lab.net,
        node="cn",
        prefix=prefix,
        fixed=header[:start],
        # RFC 3775 9.5.1: Nonce Indices (2n) at 12, Binding Authorization Data (8n+2) at 18
        options=nonce_indices(tokens.home_nonce_index, tokens.care_of_nonce_index)
        + binding_authorization_data(),
        pseudo=(HOME, CN_ADDRESS),
        sender=CARE_OF,
        state=lambda: copy.deepcopy(list(lab.cn.binding_cache)),
        changed=lambda: lab.cn.binding_cache.get(HOME) is None,  # deregistered
        counters=lambda: lab.cn.counters,
        authenticate=authenticate,
    )


def home_agent() -> Role:
    lab = HomeAgentLab()
    lab.register(1)
    prefix, header = _split(home_bu(2, lifetime_units_4s=50, alternate=CARE_OF))
    start = mh.BindingUpdate.options_start
    return Role(
        net=lab.net,
        node="ha",
        prefix=prefix,
        fixed=header[:start],
        # RFC 3775 11.7.1: the Alternate Care-of Address option (8n+6) at 14
        options=pad_n(2) + bytes([3, 16]) + CARE_OF.packed,
        pseudo=(HOME, HA_ADDRESS),
        sender=CARE_OF,
        state=lambda: copy.deepcopy(list(lab.ha.binding_cache)),
        changed=lambda: _sequence(lab.ha.binding_cache.get(HOME)) == 2,
        counters=lambda: lab.ha.counters,
    )


def mobile_node() -> Role:
    lab = RoLab()
    route_optimize(lab)
    base = Ipv6Packet(
        source=MN_CORRESPONDENT,
        destination=CARE_OF,
        payload=mh.BindingError(status=1, home_address=HOME).aligned(),
    ).emit()
    prefix, header = _split(base)
    sequence = _bul_sequence(lab, MN_CORRESPONDENT)
    return Role(
        net=lab.net,
        node="mn",
        prefix=prefix,
        fixed=header[: mh.BindingError.options_start],
        options=pad_n(8),  # no option is defined for a Binding Error (6.1.9): padding only
        pseudo=(MN_CORRESPONDENT, CARE_OF),
        sender=MN_CORRESPONDENT,
        state=lambda: copy.deepcopy(list(lab.mn.bul)),
        # RFC 3775 11.3.6: status 1, bind again (a new BU, its tokens being fresh)
        changed=lambda: _bul_sequence(lab, MN_CORRESPONDENT) != sequence,
        counters=lambda: lab.mn.counters,
    )


def mobile_node_registering() -> Role:
    """The mobile node awaiting its home agent's BA (RFC 3775 11.7.3), sent one that accepts
    its home registration with a Binding Refresh Advice (6.2.4, which a home agent's BA may
    carry)."""
    lab = MobileNodeLab()
    lab.net.call("mn", "register")
    lab.net.run_for(0.1)
    ((_, bu),) = lab.bus()
    base = Ipv6Packet(
        source=MN_HOME_AGENT,
        destination=CARE_OF,
        extension_headers=(RoutingType2(home_address=HOME),),
        payload=mh.BindingAcknowledgement(
            status=0, sequence=bu.payload.sequence, lifetime_units_4s=100
        ).aligned(),
    ).emit()
    prefix, header = _split(base)
    return Role(
        net=lab.net,
        node="mn",
        prefix=prefix,
        fixed=header[: mh.BindingAcknowledgement.options_start],
        options=bytes([2, 2, 0, 50]),  # Binding Refresh Advice (2n) at 12
        pseudo=(MN_HOME_AGENT, HOME),
        sender=MN_HOME_AGENT,
        state=lambda: copy.deepcopy(list(lab.mn.bul)),
        changed=lambda: lab.mn.bul.get(MN_HOME_AGENT).state is BulState.BOUND,  # type: ignore[union-attr]
        counters=lambda: lab.mn.counters,
    )


ROLES: dict[str, Callable[[], Role]] = {
    "correspondent": correspondent,
    "home_agent": home_agent,
    "mobile_node": mobile_node,
    "mobile_node_registering": mobile_node_registering,
}


# -- the variants ----------------------------------------------------------------------------


def payload_proto_not_59(role: Role) -> bytes:
    header = role.mobility_header()
    header[PAYLOAD_PROTO] = 6
    return role.packet(role.checksummed(header))


def payload_proto_not_59_with_piggybacked_payload(role: Role) -> bytes:
    """The payload Payload Proto announces really follows (20 bytes of a TCP header): the
    bytes after the Mobility Header are this fault's symptom, not a Header Len fault."""
    header = role.mobility_header()
    header[PAYLOAD_PROTO] = 6
    return role.packet(role.checksummed(header) + bytes(20))


def header_len_too_small(role: Role) -> bytes:
    """Cut to the first 8 octets (Header Len 0): shorter than every fixed part but the BRR's."""
    header = role.mobility_header()[:8]
    header[HEADER_LEN] = 0
    return role.packet(role.checksummed(header))


def header_len_past_the_packet(role: Role) -> bytes:
    header = role.mobility_header()
    header[HEADER_LEN] += 1
    return role.packet(role.checksummed(header))


def bad_checksum(role: Role) -> bytes:
    header = role.mobility_header()
    header[CHECKSUM] ^= 0x5A
    return role.packet(header)


def unknown_mh_type(role: Role) -> bytes:
    return role.packet(role.mobility_header(mh_type=200))


def option_overrun(role: Role) -> bytes:
    """The last option's length runs 8 bytes past the end of the message."""
    options = bytearray(role.options)
    offset = last = 0
    while offset < len(options):
        last = offset
        offset += 1 if options[offset] == 0 else 2 + options[offset + 1]
    options[last + 1] += 8
    return role.packet(role.mobility_header(options=bytes(options)))


def misaligned_option(role: Role, name: str) -> bytes:
    """An option off its alignment rule (RFC 3775 6.2), the rest as the RFC asks: Nonce Indices
    at 13 (2n; Binding Authorization Data still at 8n+2, 26), the Alternate Care-of Address at
    12 (8n+6), a Binding Refresh Advice at 25 (2n)."""
    options = {
        "correspondent": b"\x00" + nonce_indices(1, 2) + pad_n(7) + binding_authorization_data(),
        "home_agent": bytes([3, 16]) + CARE_OF.packed + pad_n(2),
        "mobile_node": b"\x00" + bytes([2, 2, 0, 10]) + b"\x00\x00\x00",
        "mobile_node_registering": b"\x00" + bytes([2, 2, 0, 50]) + pad_n(7),
    }[name]
    return role.packet(role.mobility_header(options=options))


def wrong_option_length(role: Role, name: str) -> bytes:
    """A fixed-length option with another length: Nonce Indices of 6 (6.2.6 says 4), Alternate
    Care-of Address of 18 (6.2.5: 16), Binding Refresh Advice of 4 (6.2.4: 2)."""
    options = {
        "correspondent": nonce_indices(1, 2, length=6) + pad_n(6) + binding_authorization_data(),
        "home_agent": pad_n(2) + bytes([3, 18]) + CARE_OF.packed + bytes(2) + pad_n(6),
        "mobile_node": bytes([2, 4, 0, 10, 0, 0]) + pad_n(2),
        "mobile_node_registering": bytes([2, 4, 0, 50, 0, 0]) + pad_n(6),
    }[name]
    return role.packet(role.mobility_header(options=options))


def authorization_data_not_last(role: Role) -> bytes:
    """RFC 3775 6.2.7: Binding Authorization Data "MUST be the last option"; here it comes
    before the Nonce Indices (both still aligned)."""
    options = pad_n(6) + binding_authorization_data() + nonce_indices(1, 2) + pad_n(2)
    return role.packet(role.mobility_header(options=options))


def unknown_option_first(role: Role, name: str) -> bytes:
    """The base message with an option of a type nobody defined (200) first, alignment kept:
    before the correspondent's Nonce Indices, in place of the padding for the others."""
    options = {
        "correspondent": UNKNOWN_OPTION
        + role.options[:6]
        + pad_n(8)
        + binding_authorization_data(),
        "home_agent": bytes([200, 0]) + role.options[2:],
        "mobile_node": UNKNOWN_OPTION,
        "mobile_node_registering": UNKNOWN_OPTION + role.options,
    }[name]
    return role.packet(role.mobility_header(options=options))


# -- the RFC's answers -----------------------------------------------------------------------


def parameter_problem(replies: list[Ipv6Packet], role: Role) -> icmp.ParameterProblem:
    (reply,) = replies
    assert reply.destination == role.sender
    assert isinstance(reply.payload, icmp.ParameterProblem)
    return reply.payload


@pytest.fixture(params=list(ROLES))
def name(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def role(name: str) -> Role:
    return ROLES[name]()


def test_bound_base_message_changes_state(role: Role) -> None:
    """The control: unmodified, each role acts on its message (so "no state change" below is
    the malformation's doing)."""
    before = role.state()
    role.send(role.packet(role.mobility_header()))
    assert role.state() != before and role.changed()


def test_bound_unknown_option_skipped_and_message_processed(role: Role, name: str) -> None:
    """RFC 3775 6.2.1: an option whose type the receiver does not recognize is skipped, the
    remaining options handled (paraphrase): the message is processed as without it."""
    role.send(unknown_option_first(role, name))
    assert role.changed()


@pytest.mark.parametrize(
    ("variant", "field", "pointer"),
    [
        # RFC 3775 9.2 (paraphrase): Payload Proto not IPPROTO_NONE, or a Header Len less
        # than the length of the type's fixed part: discard, and send an ICMP Parameter
        # Problem, Code 0, whose Pointer points at the field.
        (payload_proto_not_59, "payload_proto", PAYLOAD_PROTO),
        (payload_proto_not_59_with_piggybacked_payload, "payload_proto", PAYLOAD_PROTO),
        (header_len_too_small, "header_len", HEADER_LEN),
    ],
    ids=["payload_proto", "payload_proto_piggybacked", "header_len_too_small"],
)
def test_bound_malformed_common_header_gets_parameter_problem_and_changes_nothing(
    role: Role, variant: Callable[[Role], bytes], field: str, pointer: int
) -> None:
    before = role.state()
    data = variant(role)
    replies = role.send(data)
    problem = parameter_problem(replies, role)
    assert (problem.code, problem.pointer) == (0, len(role.prefix) + pointer)
    assert problem.invoking_packet == data
    assert role.state() == before
    assert role.counters()[f"malformed_{field}"] == 1


@pytest.mark.parametrize(
    ("variant", "counter"),
    [
        # RFC 3775 9.2: a checksum that does not verify: silently discarded.
        (bad_checksum, "malformed_checksum"),
        # Header Len naming bytes the packet does not have: a truncated header, discarded.
        (header_len_past_the_packet, "malformed_header_len"),
        # An option whose length runs past the message: malformed, discarded.
        (option_overrun, "malformed_opt_data_len"),
    ],
    ids=["bad_checksum", "header_len_past_the_packet", "option_overrun"],
)
def test_bound_malformed_header_silently_discarded_and_changes_nothing(
    role: Role, variant: Callable[[Role], bytes], counter: str
) -> None:
    before = role.state()
    assert role.send(variant(role)) == []
    assert role.state() == before
    assert role.counters()[counter] == 1


@pytest.mark.parametrize(
    ("variant", "counter"),
    [
        # RFC 3775 6.2: the alignment requirement is part of the option's format (this
        # implementation discards a misaligned option's message: docs/COMPLIANCE.md).
        (misaligned_option, "malformed_alignment"),
        (wrong_option_length, "malformed_option_length"),
    ],
    ids=["misaligned_option", "wrong_option_length"],
)
def test_bound_malformed_option_silently_discarded_and_changes_nothing(
    role: Role, name: str, variant: Callable[[Role, str], bytes], counter: str
) -> None:
    before = role.state()
    assert role.send(variant(role, name)) == []
    assert role.state() == before
    assert role.counters()[counter] == 1


def test_bound_unknown_mh_type_gets_binding_error_2_and_changes_nothing(role: Role) -> None:
    """RFC 3775 9.2: an MH Type the node does not recognize: the message is discarded and a
    Binding Error with Status 2 sent to its source (paraphrase)."""
    before = role.state()
    (reply,) = role.send(unknown_mh_type(role))
    assert reply.destination == role.sender
    assert isinstance(reply.payload, mh.BindingError)
    assert reply.payload.status == mh.BindingErrorStatus.UNRECOGNIZED_MH_TYPE
    assert role.state() == before
    assert role.counters()["unknown_mh_type"] == 1


def test_bound_correspondent_authorization_data_not_last_silently_discarded() -> None:
    """RFC 3775 6.2.7: Binding Authorization Data "MUST be the last option" of the BU."""
    role = correspondent()
    before = role.state()
    assert role.send(authorization_data_not_last(role)) == []
    assert role.state() == before
    assert role.counters()["malformed_options"] == 1


@pytest.mark.parametrize(
    ("name", "options", "counter"),
    [
        # RFC 3775 9.5.1: a correspondent registration without Nonce Indices or without
        # Binding Authorization Data is silently discarded.
        ("correspondent", nonce_indices(1, 2) + pad_n(6), "bu_without_authorization"),
        ("correspondent", pad_n(6) + binding_authorization_data(), "bu_without_authorization"),
        # RFC 3775 9.5.1: "If the Home Registration (H) bit is set, the Nonce Indices mobility
        # option MUST NOT be present"; such a Binding Update is silently discarded.
        (
            "home_agent",
            nonce_indices(1, 2) + pad_n(4) + bytes([3, 16]) + CARE_OF.packed,
            "home_registration_with_nonce_indices",
        ),
    ],
    ids=["bu_without_authorization_data", "bu_without_nonce_indices", "home_registration_with_ni"],
)
def test_bound_option_rule_broken_silently_discarded_and_changes_nothing(
    name: str, options: bytes, counter: str
) -> None:
    role = ROLES[name]()
    before = role.state()
    assert role.send(role.packet(role.mobility_header(options=options))) == []
    assert role.state() == before
    assert role.counters()[counter] == 1


# -- the correspondent's HoTI, read by its fast path when well formed (RFC 3775 9.4.1) ---------


def correspondent_home_test_init() -> Role:
    lab = CorrespondentLab()
    hoti = Ipv6Packet(
        source=HOME,
        destination=CN_ADDRESS,
        payload=mh.HomeTestInit(home_init_cookie=b"H" * 8),
    ).emit()
    prefix, header = _split(hoti)
    return Role(
        net=lab.net,
        node="cn",
        prefix=prefix,
        fixed=header,  # Reserved and the Home Init Cookie: no options (6.1.3)
        options=b"",
        pseudo=(HOME, CN_ADDRESS),
        sender=HOME,
        # RFC 3775 5.2.8: a HoTI leaves no state; what is sent is what counts
        state=lambda: copy.deepcopy(list(lab.cn.binding_cache)),
        changed=lambda: lab.cn.counters.get("home_test_sent", 0) > 0,
        counters=lambda: lab.cn.counters,
    )


@pytest.mark.parametrize(
    ("variant", "pointer"),
    [
        (payload_proto_not_59, PAYLOAD_PROTO),
        (payload_proto_not_59_with_piggybacked_payload, PAYLOAD_PROTO),
        (header_len_too_small, HEADER_LEN),
        (header_len_past_the_packet, None),
        (bad_checksum, None),
    ],
    ids=[
        "payload_proto",
        "payload_proto_piggybacked",
        "header_len_too_small",
        "header_len_past_the_packet",
        "bad_checksum",
    ],
)
def test_malformed_hoti_gets_no_home_test(
    variant: Callable[[Role], bytes], pointer: int | None
) -> None:
    """The same classes through the HoTI's fast path: never a HoT; a Parameter Problem where
    9.2 asks for one, silence otherwise."""
    role = correspondent_home_test_init()
    before = role.state()
    replies = role.send(variant(role))
    assert not role.changed() and role.state() == before
    if pointer is None:
        assert replies == []
    else:
        problem = parameter_problem(replies, role)
        assert (problem.code, problem.pointer) == (0, len(role.prefix) + pointer)


def test_hoti_well_formed_or_with_unknown_option_gets_home_test() -> None:
    """The control, and RFC 3775 6.2.1 (an option of unknown type skipped) on the general
    path, which a HoTI longer than 16 bytes takes."""
    for options in (b"", UNKNOWN_OPTION):
        role = correspondent_home_test_init()
        (reply,) = role.send(role.packet(role.mobility_header(options=options)))
        assert isinstance(reply.payload, mh.HomeTest) and role.changed()
        assert reply.payload.home_init_cookie == b"H" * 8
