"""One download split between the two members of the seeds' testbed, timed as the seeds timed
it: the run behind ``handoff-phases`` (Table 1, 004 6.2) and ``buffer-sweep`` (Fig. 10, 004
6.3; SPEC-dserver 9.3 and 9.4).

The client fetches 1 MB from the contact address. Node 1, the contact node, writes the first
500 kB, and once its last write has returned waits ``wait`` (0 for Table 1: "immediately after
the last send() call returns") and hands the client to Node 2 without return routability in
advance (Table 1's phase 4 is the acceptor's); Node 2 writes the rest. The handoff carries the
connection's full state (every unacknowledged byte, the seeds' TCPCP) or our regenerable
snapshot (none: Node 2 makes them again, DSERVER 4 rule 5), the download service's
``regenerable`` flag.

The seeds' socket state was "about 90 kB" with nearly full buffers; each member's send buffer
is sized to that (``send_buffer``), so a full snapshot carries about as much as theirs. Their
tcpdump ran on the core router, "listening on all the network interfaces": every packet here is
timed when it crosses the core (its arrival less its receiver's uplink latency), and the hops
inside a site (a member and its home agent) are not seen, as theirs were not.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address

from labnet.dserver_lab import innermost
from labnet.experiments.testbed import (
    CLIENT,
    CONTACT,
    NETWORKS,
    NODES,
    ROUTERS,
    Testbed,
    handoff_gaps,
    names,
    sim_lab,
)
from labnet.sim import SimLab
from mip6.apps.http import HostDownload, generated_body
from mip6.dserver.member import DEFAULT_CHANNEL_PORT
from mip6.runtime.config import AppConfig
from mip6.wire import protocols
from mip6.wire.mobility import MhType

SIZE = 1_000_000  # 004 6.2: "delivers 1 MB of content upon request"
SHARE = 500_000  # Node 1's part
SEEDS_STATE_BYTES = 90_000  # 004 6.2: "about 90 kB" of socket state, buffers nearly full
NO_NISTNET_DELAY = 0.0001  # seconds, Lss = Lcs1 = Lcs2: Table 1 ran "without NISTnet delays"
VIRTUAL_LIMIT = 60.0  # seconds of virtual time a download may take (8 s at 1 Mbit/s)
DONOR, ACCEPTOR = "node1", "node2"
PHASES = (
    "socket extraction",
    "state transfer",
    "socket re-creation",
    "RR procedure",
    "BU construction",
    "BM procedure",
    "socket activation",
)
# the site of each node: a member's and its home agent's is the member
_SITE = {"client": "client"} | {m: m for m in NODES} | {ROUTERS[m]: m for m in NODES}
_RR_INIT = {MhType.HOME_TEST_INIT, MhType.CARE_OF_TEST_INIT}
_RR_ANSWER = {MhType.HOME_TEST, MhType.CARE_OF_TEST}


@dataclass(frozen=True, slots=True)
class Setting:
    bandwidth: float  # bits per second, every site's uplink
    regenerable: bool  # False: full state, the seeds' TCPCP
    wait: float = 0.0  # seconds from Node 1's last write to its handoff
    lss: float = NO_NISTNET_DELAY  # one way, seconds
    lcs: float = NO_NISTNET_DELAY  # Lcs1 = Lcs2, one way, seconds
    send_buffer: int = SEEDS_STATE_BYTES  # each member's send buffer, bytes


@dataclass(frozen=True, slots=True)
class Crossing:
    """A packet as the core router saw it."""

    time: float
    sender: str
    receiver: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Handoff:
    """One run's handoff. ``gap``: the client-perceived handoff time (004 6.3), from the last
    data packet from the donor to the first from the acceptor, at the client; ``phases``:
    Table 1's seven, seconds each (see :func:`phases`); ``state_bytes``: the member channel's
    TCP payload from donor to acceptor in phase 2 (the snapshot, the application state, the
    INIT's framing and authentication)."""

    gap: float
    phases: tuple[float, ...]
    state_bytes: int


class Core:
    """Every packet that crosses the core, timed there: each node's arrivals (as
    :class:`~labnet.experiments.testbed.ClientTap` does for the client) less its uplink's
    latency; the senders by outer source address (the contact address's packets on the wire
    are HA1's). The client's own arrivals are kept too, for the client-perceived gap."""

    def __init__(self, lab: SimLab, testbed: Testbed) -> None:
        self.crossings: list[Crossing] = []
        self.client_arrivals: list[tuple[float, str, bytes]] = []
        self._net = lab.net
        self._uplinks = testbed.uplinks()
        self._known = names() | {CONTACT: "ha1"}
        for receiver, node in lab.net.nodes.items():
            node.runtime.from_network = functools.partial(  # type: ignore[method-assign]
                self._saw, receiver, node.runtime.from_network
            )

    def _saw(self, receiver: str, deliver: Callable[[bytes], None], data: bytes) -> None:
        now = self._net.now
        sender = self._known.get(IPv6Address(data[8:24]), "")
        if receiver == "client":
            self.client_arrivals.append((now, sender, data))
        if _SITE.get(sender) != _SITE[receiver]:
            at = now - self._uplinks[NETWORKS[receiver]]
            self.crossings.append(Crossing(at, sender, receiver, data))
        deliver(data)

    def ordered(self) -> list[Crossing]:
        return sorted(self.crossings, key=lambda c: c.time)


def run(setting: Setting, seed: int) -> Handoff:
    """One download on the simulator; RuntimeError unless it ends whole (its length and
    SHA-256) after exactly one handoff."""
    download = AppConfig(
        "download",
        80,
        size=SIZE,
        seed=seed,
        handoff_every=SHARE,
        regenerable=setting.regenerable,
    )
    testbed = Testbed(
        setting.lss,
        setting.lcs,
        setting.lcs,
        bandwidth=setting.bandwidth,
        shape_sites=True,
        apps=(download,),
        member_options={"distribute": False, "prepare": False},
    )
    lab = sim_lab(testbed, seed)
    net = lab.net
    core = Core(lab, testbed)
    lab.run_until(1.0)  # the contact node has registered
    for member in (DONOR, ACCEPTOR):
        net.nodes[member].engine.host.stack.send_capacity = setting.send_buffer
    donor = net.nodes[DONOR].engine
    started: list[float] = []

    def hand_on(client: IPv6Address) -> None:
        started.append(net.now)
        donor.request_handoff(client, NODES[ACCEPTOR])
        net.call(DONOR, "poll")

    donor.services[80].on_share_written = lambda sock: net.call_at(
        net.now + setting.wait, hand_on, IPv6Address(sock.key[2])
    )
    net.nodes[ACCEPTOR].engine.services[80].handoff_every = 0  # the rest is Node 2's
    client = net.nodes["client"]
    assert client.host is not None
    fetch = HostDownload(client.host, net.now, str(CONTACT), 80)
    client.runtime.flush_host()
    while not fetch.done and net.now < VIRTUAL_LIMIT:
        net.run_for(1.0)
    body = hashlib.sha256(b"".join(generated_body(SIZE, seed))).hexdigest()
    whole = fetch.done and fetch.received == SIZE and fetch.digest.hexdigest() == body
    if not (whole and len(started) == 1):
        raise RuntimeError(
            f"split download at {setting.bandwidth / 1e6:g} Mbit/s, "
            f"{'regenerable' if setting.regenerable else 'full'} state, wait "
            f"{setting.wait * 1e3:g} ms: {fetch.received} of {SIZE} bytes by {net.now:.0f} s "
            f"({'whole' if whole else 'not whole'}), {len(started)} handoffs"
        )
    arrivals = ((at, sender) for at, sender, data in core.client_arrivals if client_data(data))
    gaps = handoff_gaps(arrivals, DONOR, ACCEPTOR)
    if len(gaps) != 1:
        raise RuntimeError(f"split download: {len(gaps)} donor-to-acceptor gaps, not one")
    times, state_bytes = phases(core.ordered(), started[0])
    return Handoff(gaps[0], times, state_bytes)


def phases(crossings: list[Crossing], started: float) -> tuple[tuple[float, ...], int]:
    """Table 1's seven phases from the packets at the core (seconds), and the state's bytes.
    Their boundaries, each a packet crossing the core:

    1. socket extraction: the donor's last data segment to the client, to its first packet on
       the member channel to the acceptor;
    2. state transfer: to the last of them (the INIT);
    3. socket re-creation: to the acceptor's first return routability message (home or
       care-of test init);
    4. RR procedure: to the last of the home and care-of tests to the acceptor;
    5. BU construction: to the acceptor's Binding Update;
    6. BM procedure: to the client's Binding Acknowledgement;
    7. socket activation: to the acceptor's first data segment to the client.
    """
    after = [c for c in crossings if c.time >= started]
    channel = [c for c in after if _channel(c, DONOR, ACCEPTOR)]
    if not channel:
        raise RuntimeError("no member channel packet from the donor after the handoff began")
    rr_init = _first(after, lambda c: c.sender == ACCEPTOR and _mh(c) in _RR_INIT)
    transfer = [c for c in channel if c.time <= rr_init.time]
    rr_answers = [c for c in after if c.receiver == ACCEPTOR and _mh(c) in _RR_ANSWER]
    rr_done = max((c for c in rr_answers if c.time >= rr_init.time), key=lambda c: c.time)
    update = _first(after, lambda c: c.sender == ACCEPTOR and _mh(c) == MhType.BINDING_UPDATE)
    ack = _first(
        after,
        lambda c: c.receiver == ACCEPTOR and _mh(c) == MhType.BINDING_ACKNOWLEDGEMENT,
    )
    first_data = _first(
        after, lambda c: c.sender == ACCEPTOR and c.receiver == "client" and client_data(c.data)
    )
    last_donor_data = max(
        (
            c
            for c in crossings
            if c.sender == DONOR
            and c.receiver == "client"
            and client_data(c.data)
            and c.time <= transfer[0].time
        ),
        key=lambda c: c.time,
    )
    bounds = [
        last_donor_data.time,
        transfer[0].time,
        transfer[-1].time,
        rr_init.time,
        rr_done.time,
        update.time,
        ack.time,
        first_data.time,
    ]
    state_bytes = sum(tcp_payload(c.data) for c in transfer)
    return tuple(b - a for a, b in itertools.pairwise(bounds)), state_bytes


def _first(crossings: list[Crossing], keep: Callable[[Crossing], bool]) -> Crossing:
    for crossing in crossings:
        if keep(crossing):
            return crossing
    raise RuntimeError("a phase boundary's packet is missing from the capture")


def _tcp(data: bytes) -> tuple[bytes, int] | None:
    packet, protocol, offset = innermost(data)
    if protocol != protocols.TCP or len(packet) < offset + 13:
        return None
    return packet, offset


def tcp_payload(data: bytes) -> int:
    tcp = _tcp(data)
    if tcp is None:
        return 0
    packet, offset = tcp
    return len(packet) - offset - (packet[offset + 12] >> 4) * 4


def client_data(data: bytes) -> bool:
    """A TCP segment with data to or from the client (tunnelled or not)."""
    tcp = _tcp(data)
    return (
        tcp is not None
        and tcp_payload(data) > 0
        and CLIENT.packed
        in (
            tcp[0][8:24],
            tcp[0][24:40],
        )
    )


def _channel(crossing: Crossing, sender: str, receiver: str) -> bool:
    """A packet of the member channel's TCP from ``sender`` to ``receiver`` (SYN included)."""
    tcp = _tcp(crossing.data)
    if tcp is None or (crossing.sender, crossing.receiver) != (sender, receiver):
        return False
    packet, offset = tcp
    ports = (
        int.from_bytes(packet[offset : offset + 2]),
        int.from_bytes(packet[offset + 2 : offset + 4]),
    )
    return DEFAULT_CHANNEL_PORT in ports and (
        tcp_payload(crossing.data) > 0 or bool(packet[offset + 13] & 0x02)
    )


def _mh(crossing: Crossing) -> int | None:
    """The Mobility Header type of the innermost packet, or None."""
    packet, protocol, offset = innermost(crossing.data)
    if protocol != protocols.MOBILITY or len(packet) < offset + 3:
        return None
    return packet[offset + 2]
