"""``labnet demo dserver``: the distributed server on the simulator, every packet shown and
explained, for a class.

The built-in ``dserver`` topology (DSERVER.md sections 1-4) with its client in host mode:

1. the contact node ``m1`` registers the contact address C at the home agent;
2. the client downloads a 1 MB body (the seeds' 1 MB experiment) from C: its SYN reaches the
   home agent, which tunnels it to ``m1`` (RFC 2473);
3. ``m1`` route-optimizes with the client as a mobile node whose home address is C;
4. the demo asks ``m1`` to hand the client to ``m2`` (as ``mip6 ctl handoff`` does): the member
   channel's PREPARE, PREPARED, INIT and DONE, the acceptor's HoTI relayed by the contact node,
   its Binding Update from its own address with C as home address, then data from ``m2``;
5. ``m2`` hands the client to ``m3`` the same way;
6. the download completes: its size and SHA-256, one TCP connection, never a RST.

Then a summary: packets per sender, each handoff's phases and the gap the client saw.

The contact node's own distribution of new clients is off (``distribute: false``) and the
download service never hands a client on by itself (``handoff_every: 0``): every handoff is the
demo's. Data segments and the client's pure acknowledgements are printed as runs (``N data
segments m2 -> client``) between the signalling packets, which are shown one by one with their
reason; a reason already given is shortened the next time. The member channel is encrypted: its
messages are named by matching each segment's arrival with the phases the members record per
handoff (:attr:`mip6.dserver.member.Member.history`), never by decrypting; the handshake's hello
and confirm are told apart by their offsets in the stream.

Deterministic for a given seed (virtual time): the same seed prints the same text.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from labnet.sim import ON_LINK_LATENCY, SimLab
from labnet.topology import Topology, builtin
from mip6.apps.http import HostDownload, generated_body
from mip6.dissect import dissect, summary_line
from mip6.dserver.channel import CONFIRM_LENGTH, HELLO_LENGTH
from mip6.dserver.member import Member
from mip6.runtime.config import AppConfig
from mip6.runtime.memory import Sent
from mip6.wire import mobility as mh
from mip6.wire.esp import EspPacket
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.ipv6ext import DestinationOptions, HomeAddressOption, RoutingType2
from mip6.wire.tcp import TcpFlags, TcpSegment

SIZE = 1_000_000  # the body the client downloads
BODY_SEED = 1
PORT = 80
CLIENT = "client"
HOME_AGENT = "ha"
CONTACT_NODE = "m1"
MEMBERS = ("m1", "m2", "m3")
PLAN = (("m1", "m2"), ("m2", "m3"))  # the handoffs the demo asks for, donor -> acceptor
START = 1.0  # virtual seconds: the client connects
FIRST_HANDOFF_AT = 60_000  # bytes at the client (m1 bound to it) before m1 hands it to m2
SECOND_HANDOFF_AFTER = 50_000  # bytes from m2 after the first handoff before m2 hands it on
TICK = 0.001  # virtual seconds between checks of the scenario's conditions
DEADLINE = 20.0  # virtual seconds: the scenario gives up
LINGER = 0.3  # virtual seconds run after the download, for the closing segments
WIDTH = 100  # reasons and titles are wrapped to this width
REASON = " " * 31  # where a reason starts: under the packet's summary
_OPTIONS = re.compile(r" options \[[^\]]*\]")
_RECORDED = {  # a phase a member records on a message's arrival -> the message
    "prepare": "PREPARE",
    "init": "INIT",
    "prepared": "PREPARED",
    "done": "DONE",
    "failed": "FAILED",
}
_CHANNEL_WHY = {
    "hello": "in the clear: version, role, the member's own address, 32 random bytes",
    "confirm": "an HMAC under keys derived by HKDF from the group key and both ends' randoms: "
    "it proves the sender holds the group key; every frame after it is encrypted, AES-GCM",
    "PREPARE": "the donor asks the acceptor to run return routability with the client now, "
    "RR in advance, while the donor still serves the client",
    "PREPARED": "the acceptor holds both keygen tokens: the donor freezes the connection, no "
    "output and arriving segments dropped silently, and sends INIT; with a window in flight it "
    "first waits for the client's next acknowledgement and sends what that allows, so that the "
    "client has data to read during the handoff",
    "INIT": "the frozen connection as a regenerable tcp_migrate snapshot, ~110 bytes whatever "
    "its buffers hold, the download's state, the response head, and the next Binding Update "
    "sequence number: the acceptor imports it frozen and binds the client",
    "DONE": "the acceptor holds the client: the donor drops its frozen copy silently, no RST",
    "FAILED": "the acceptor refused or gave up: the donor keeps the client",
}


def topology() -> Topology:
    """The built-in ``dserver`` topology with a host-mode client (the simulator has no kernel
    to run curl in) and members serving a 1 MB download that never hands a client on itself."""
    base = builtin("dserver")
    apps = (AppConfig("download", PORT, size=SIZE, seed=BODY_SEED, handoff_every=0),)
    nodes = dict(base.nodes)
    nodes[CLIENT] = dataclasses.replace(nodes[CLIENT], mode="host")
    for name in MEMBERS:
        nodes[name] = dataclasses.replace(nodes[name], apps=apps)
    return dataclasses.replace(base, nodes=nodes)


@dataclass(slots=True)
class Handoff:
    """One handoff the demo asked for."""

    donor: str
    acceptor: str
    asked: float  # virtual time of the request
    index: int  # trace index at the request


@dataclass(slots=True)
class Played:
    """The scenario as it ran: the lab, the client's download, the handoffs asked for."""

    lab: SimLab
    fetch: HostDownload
    handoffs: list[Handoff] = field(default_factory=list)

    @property
    def expected_sha256(self) -> str:
        return hashlib.sha256(b"".join(generated_body(SIZE, BODY_SEED))).hexdigest()

    @property
    def ok(self) -> bool:
        """The whole body arrived, the right one, and both handoffs completed."""
        fetch = self.fetch
        completed = sum(len(_finished(self.lab, name, "donor")) for name in MEMBERS)
        return (
            fetch.done
            and not fetch.failed
            and fetch.received == SIZE
            and fetch.digest.hexdigest() == self.expected_sha256
            and len(self.handoffs) == len(PLAN)
            and completed == len(PLAN)
        )


def _member(lab: SimLab, name: str) -> Member:
    engine = lab.net.nodes[name].engine
    assert isinstance(engine, Member)
    return engine


def _finished(lab: SimLab, name: str, side: str) -> list[dict[str, Any]]:
    """The completed handoffs in member ``name``'s history, on ``side`` (donor, acceptor)."""
    return [
        record
        for record in _member(lab, name).history
        if record["side"] == side and record["outcome"].startswith(("completed", "accepted"))
    ]


def play(seed: int = 1) -> Played:
    """Run the scenario on virtual time (nothing printed)."""
    topo = topology()
    lab = SimLab(topo, seed, options={name: {"distribute": False} for name in MEMBERS})
    client_address = str(topo.nodes[CLIENT].addresses[0])
    lab.start()
    lab.run_until(START)
    client = lab.net.nodes[CLIENT]
    assert client.host is not None
    fetch = HostDownload(client.host, lab.net.now, str(topo.nodes[CONTACT_NODE].home_address), PORT)
    client.runtime.flush_host()
    played = Played(lab, fetch)
    mark = 0  # bytes at the client when the first handoff had completed

    def ask(donor: str, acceptor: str) -> None:
        played.handoffs.append(Handoff(donor, acceptor, lab.net.now, len(lab.net.trace)))
        target = str(topo.nodes[acceptor].addresses[0])
        lab.net.call(donor, "command", "handoff", (client_address, target))

    while not fetch.done and lab.net.now < DEADLINE:
        lab.net.run_for(TICK)
        asked = len(played.handoffs)
        if asked == 0:
            rows = _member(lab, CONTACT_NODE).describe("clients", lab.net.now)["rows"]
            bound = any(r["client"] == client_address and r["binding"] == "bound" for r in rows)
            if bound and fetch.received >= FIRST_HANDOFF_AT:
                ask(*PLAN[0])
        elif asked == 1 and _finished(lab, PLAN[0][0], "donor"):
            if not mark:
                mark = fetch.received
            elif fetch.received >= mark + SECOND_HANDOFF_AFTER:
                ask(*PLAN[1])
    lab.net.run_for(LINGER)
    return played


# -- reading the trace -----------------------------------------------------------------------


@dataclass(slots=True)
class View:
    """One packet of the trace as the narration needs it."""

    sent: Sent
    summary: str  # one line, TCP options left out
    inner: Ipv6Packet | None  # the packet inside a tunnel, or the packet itself
    tunnelled: bool
    upper: object  # the innermost payload

    @property
    def segment(self) -> TcpSegment | None:
        return self.upper if isinstance(self.upper, TcpSegment) else None

    @property
    def hop(self) -> tuple[str, str]:
        return self.sent.sender, self.sent.receiver or "?"


def view(sent: Sent) -> View:
    dissection = dissect(sent.data)
    summary = _OPTIONS.sub("", summary_line(dissection))
    packet = dissection.packet
    if packet is None:
        return View(sent, summary, None, False, None)
    inner = packet.payload if isinstance(packet.payload, Ipv6Packet) else packet
    return View(sent, summary, inner, inner is not packet, inner.payload)


def _home_address_option(packet: Ipv6Packet | None) -> bool:
    return packet is not None and any(
        isinstance(header, DestinationOptions)
        and any(isinstance(option, HomeAddressOption) for option in header.options)
        for header in packet.extension_headers
    )


def _routing_header(packet: Ipv6Packet | None) -> bool:
    return packet is not None and any(
        isinstance(header, RoutingType2) for header in packet.extension_headers
    )


def _flag(segment: TcpSegment | None, flag: TcpFlags) -> bool:
    return segment is not None and bool(segment.flags & flag)


class Narrator:
    """Prints the trace: signalling packets one by one with their reason, the download's data
    and acknowledgements as runs, each step's title where it starts."""

    def __init__(self, played: Played, out: TextIO) -> None:
        self.played = played
        self.lab = played.lab
        self.out = out
        topo = self.lab.topology
        self.contact = topo.nodes[CONTACT_NODE].home_address
        self.client = topo.nodes[CLIENT].addresses[0]
        self.channel_port = _member(self.lab, CONTACT_NODE).config.channel_port
        self.views = [view(sent) for sent in self.lab.net.trace]
        self.arrivals = self._arrivals()
        self.acceptors = {handoff.acceptor for handoff in played.handoffs}
        self.cookies: dict[bytes, str] = {}  # HoTI cookie -> the member that sent the HoTI
        self.server_isn: int | None = None
        self.streams: dict[tuple[str, int, str, int], int] = {}  # channel direction -> ISN
        self.told: set[str] = set()  # reasons given in full once already
        self.markers: list[tuple[int, str]] = []  # (trace index, title)
        for item in self.views:
            self.learn(item)

    # -- facts -----------------------------------------------------------------------------

    def latency(self, a: str, b: str) -> float:
        """One way from node ``a`` to node ``b`` on the simulator's paths."""
        network_a, network_b = self.lab.attached[a], self.lab.attached[b]
        if network_a == network_b:
            return ON_LINK_LATENCY
        networks = self.lab.topology.networks
        return networks[network_a].uplink.latency + networks[network_b].uplink.latency

    def _arrivals(self) -> dict[tuple[str, float], list[str]]:
        """(member, time) -> the member-channel messages the member recorded arriving then."""
        found: dict[tuple[str, float], list[str]] = {}
        for name in MEMBERS:
            for record in _member(self.lab, name).history:
                for at, phase in record["phases"]:
                    message = _RECORDED.get(phase)
                    if message is not None:
                        key = (name, round(record["started"] + at, 4))
                        found.setdefault(key, []).append(message)
        return found

    def is_download(self, segment: TcpSegment | None) -> bool:
        return segment is not None and PORT in (segment.source_port, segment.destination_port)

    def is_channel(self, segment: TcpSegment | None) -> bool:
        return segment is not None and self.channel_port in (
            segment.source_port,
            segment.destination_port,
        )

    def bulk(self, item: View) -> str | None:
        """``data`` (a segment of the response), ``ack`` (the client's pure acknowledgement),
        or None: a packet shown on its own."""
        segment = item.segment
        if segment is None or not self.is_download(segment):
            return None
        if segment.flags & (TcpFlags.SYN | TcpFlags.FIN | TcpFlags.RST):
            return None
        if segment.source_port == PORT and segment.payload:
            return "data"
        if segment.destination_port == PORT and not segment.payload:
            return "ack"
        return None

    def offset(self, sequence: int) -> int:
        """A response byte's offset in the stream (0: the first byte of the HTTP head)."""
        return (sequence - (self.server_isn or 0) - 1) & 0xFFFFFFFF

    def once(self, key: str, full: str, short: str) -> str:
        """``full`` the first time ``key`` is explained, ``short`` after."""
        if key in self.told:
            return short
        self.told.add(key)
        return full

    # -- printing --------------------------------------------------------------------------

    def mark(self, index: int | None, title: str) -> None:
        if index is not None:
            self.markers.append((index, title))

    def narrate(self) -> None:
        markers = sorted(self.markers, key=lambda marker: marker[0])
        run: list[View] = []
        for index, item in enumerate(self.views):
            while markers and markers[0][0] <= index:
                self.flush(run)
                run = []
                self.title(markers.pop(0)[1])
            if self.bulk(item) is not None:
                run.append(item)
                continue
            self.flush(run)
            run = []
            self.packet(item)
        self.flush(run)
        for _, title in markers:
            self.title(title)

    def title(self, title: str) -> None:
        self.out.write("\n" + textwrap.fill(title, WIDTH, subsequent_indent=" " * 10) + "\n")

    def reason(self, text: str) -> None:
        if text:
            wrapped = textwrap.fill(
                text, WIDTH, initial_indent=REASON[:-2] + ". ", subsequent_indent=REASON
            )
            self.out.write(wrapped + "\n")

    def packet(self, item: View) -> None:
        sent = item.sent
        sender, receiver = item.hop
        lost = "  [lost]" if sent.lost else ""
        self.out.write(f"  {sent.time:7.3f}  {sender:>6} -> {receiver:<6}  {item.summary}{lost}\n")
        self.reason(self.why(item))

    def learn(self, item: View) -> None:
        """What later packets are explained with: HoTI cookies, initial sequence numbers."""
        if isinstance(item.upper, mh.HomeTestInit):
            self.cookies.setdefault(item.upper.home_init_cookie, item.sent.sender)
        segment = item.segment
        if segment is None or item.inner is None or not segment.flags & TcpFlags.SYN:
            return
        if segment.source_port == PORT and self.server_isn is None:
            self.server_isn = segment.sequence_number
        if self.is_channel(segment):
            key = (
                str(item.inner.source),
                segment.source_port,
                str(item.inner.destination),
                segment.destination_port,
            )
            self.streams.setdefault(key, segment.sequence_number)

    def flush(self, run: list[View]) -> None:
        """One line per (sender, receiver, kind) of a run of data and acknowledgements."""
        groups: dict[tuple[str, str, str], list[View]] = {}
        for item in run:
            kind = self.bulk(item)
            assert kind is not None
            groups.setdefault((*item.hop, kind), []).append(item)
        for (sender, receiver, kind), items in groups.items():
            first, last = items[0].sent.time, items[-1].sent.time
            until = f" until {last:.3f}" if last != first else ""
            segments = [item.segment for item in items if item.segment is not None]
            count = f"{len(items)} {'data segment' if kind == 'data' else 'acknowledgement'}"
            count += "s" if len(items) != 1 else ""
            if kind == "data":
                low = min(self.offset(s.sequence_number) for s in segments)
                high = max(self.offset(s.sequence_number) + len(s.payload) for s in segments)
                extent = f"response bytes {low}-{high}"
            else:
                extent = f"up to byte {max(self.offset(s.acknowledgment_number) for s in segments)}"
            key, full, short = self.route(items[0])
            told = key in self.told
            text = f"{count} {sender} -> {receiver}{until}, {extent}"
            if told:
                text += f"; {short}"
            self.out.write(f"  {first:7.3f}  {sender:>6} -> {receiver:<6}  [{text}]\n")
            if not told:
                self.reason(self.once(key, full, short))

    def route(self, item: View) -> tuple[str, str, str]:
        """How a run's packets travel: a key, the full reason, the short one."""
        sender, receiver = item.hop
        if item.tunnelled and receiver == HOME_AGENT:
            return (
                "reverse tunnel",
                f"from C, in {sender}'s reverse tunnel to the home agent (RFC 3775 11.3.1), "
                "which sends them on from C",
                "reverse-tunnelled",
            )
        if item.tunnelled:
            return (
                "tunnel",
                f"the home agent intercepts them for C and tunnels them to {receiver}, C's "
                "care-of address (RFC 2473)",
                f"tunnelled to {receiver}",
            )
        if sender == HOME_AGENT:
            return (
                "out of tunnel",
                "from C, out of the home agent's tunnel: the client cannot tell which member "
                "sent them",
                "from C via the home agent",
            )
        if _home_address_option(item.inner):
            return (
                "hao",
                f"route-optimized: straight from {sender}'s own address, C in a Home Address "
                "option (RFC 3775 9.3.1): the client's stack puts C back as the source",
                "route-optimized, HAO C",
            )
        if _routing_header(item.inner):
            return (
                "rh2",
                f"route-optimized: straight to {receiver}'s own address, C in a type 2 routing "
                "header (RFC 3775 6.4): the member's stack delivers them to C",
                "route-optimized, RH2 C",
            )
        if receiver == HOME_AGENT:
            return ("to ha", "to C: the home agent intercepts them", "to C via the home agent")
        return ("direct", "direct", "direct")

    # -- reasons ---------------------------------------------------------------------------

    def why(self, item: View) -> str:
        upper, segment = item.upper, item.segment
        if isinstance(upper, EspPacket):
            return "protected by ESP (RFC 3776): C's security association with the home agent"
        if isinstance(upper, mh.MobilityMessage):
            return self.why_mobility(item, upper)
        if segment is not None and self.is_channel(segment):
            return self.why_channel(item, segment)
        if segment is not None and self.is_download(segment):
            return self.why_download(item, segment)
        return ""

    def tunnel(self, item: View) -> str:
        """What the tunnel a packet travels in does, as a prefix (empty when not tunnelled)."""
        if not item.tunnelled:
            return ""
        sender, receiver = item.hop
        if sender == HOME_AGENT:
            return f"the home agent tunnels it to C's care-of address, {receiver} (RFC 2473): "
        if receiver == HOME_AGENT:
            return f"{sender} sends it from C in the reverse tunnel to the home agent: "
        return f"{sender} tunnels it to {receiver}: "

    def why_download(self, item: View, segment: TcpSegment) -> str:
        sender, receiver = item.hop
        from_client = segment.destination_port == PORT
        prefix = self.tunnel(item)
        if segment.flags & TcpFlags.RST:
            return "RST: the connection is reset (it never should be)"
        if segment.flags & TcpFlags.SYN:
            if from_client and sender == CLIENT:
                return (
                    "the client opens a TCP connection to C, port 80. C is an address on the "
                    "home agent's link and the client holds no binding for it: the home agent "
                    "intercepts it"
                )
            if from_client:
                return prefix + f"{receiver}'s stack answers for C"
            return prefix + "SYN-ACK from C" + (" (out of the tunnel)" if sender == "ha" else "")
        if segment.flags & TcpFlags.FIN and not from_client:
            return (
                f"the last bytes of the response with FIN, from {sender}: the server closes "
                "after the body (Connection: close)"
            )
        if segment.flags & TcpFlags.FIN:
            return "the client has the whole body and closes its side"
        if from_client and segment.payload:
            return prefix + "the client's HTTP request: GET / HTTP/1.1"
        return prefix + "acknowledgement"

    def why_mobility(self, item: View, message: mh.MobilityMessage) -> str:
        sender, receiver = item.hop
        prefix = self.tunnel(item)
        if isinstance(message, mh.BindingUpdate) and message.home_registration:
            return (
                f'home registration: {sender}, the contact node, tells the home agent "C is at '
                f"{sender}'s own address\" (RFC 3775 11.7.1). C is the home address of a mobile "
                "node that does not exist; the members answer for it together"
            )
        if isinstance(message, mh.BindingAcknowledgement) and sender == HOME_AGENT:
            return (
                "accepted: from now on the home agent intercepts what is sent to C and tunnels "
                f"it to {receiver}"
            )
        if isinstance(message, mh.HomeTestInit):
            return self.why_home_test_init(item, message)
        if isinstance(message, mh.CareOfTestInit):
            return f"Care-of Test Init straight from {sender}'s own address, its care-of address"
        if isinstance(message, mh.HomeTest):
            origin = self.cookies.get(message.home_init_cookie, "?")
            if sender == CLIENT:
                return self.once(
                    "hot",
                    f"Home Test, the answer to {origin}'s HoTI (the cookie says which): the home "
                    "keygen token, sent to C, so through the home agent",
                    f"Home Test for {origin}'s HoTI, to C",
                )
            if sender == HOME_AGENT:
                whose = "" if origin == receiver else f"; the cookie is {origin}'s"
                return prefix + f"the home keygen token{whose}"
            return self.once(
                "hot relay",
                f"{sender} finds (client, cookie) in its relay table: it tunnels the HoT to "
                f"{receiver} and forgets the entry",
                f"{sender}'s relay table: the HoT goes on to {receiver}",
            )
        if isinstance(message, mh.CareOfTest):
            return f"Care-of Test: the care-of keygen token, to {receiver}'s own address"
        if isinstance(message, mh.BindingUpdate):
            acceptor = sender in self.acceptors
            handed = (
                f"; sequence {message.sequence}, one above the donor's, came in the INIT"
                if acceptor
                else ""
            )
            return self.once(
                "bu acceptor" if acceptor else "bu",
                f"Binding Update from {sender}'s own address with C in the Home Address option: "
                f'"C is now at {sender}", authorized by both tokens (RFC 3775 5.2.6){handed}',
                f"Binding Update from {sender}'s own address, C as home address: \"C is now at "
                f'{sender}"{handed}',
            )
        if isinstance(message, mh.BindingAcknowledgement):
            acceptor = receiver in self.acceptors
            thaw = (
                f"; {receiver} thaws the connection and sends DONE to the donor" if acceptor else ""
            )
            return self.once(
                "ba acceptor" if acceptor else "ba",
                f"the client accepts: its packets for C now go to {receiver}'s own address with "
                f"a type 2 routing header{thaw}",
                f"accepted{thaw}",
            )
        if isinstance(message, mh.BindingRefreshRequest):
            return "Binding Refresh Request: the client asks for a fresh binding"
        if isinstance(message, mh.BindingError):
            return "Binding Error"
        return ""

    def why_home_test_init(self, item: View, message: mh.HomeTestInit) -> str:
        sender, receiver = item.hop
        origin = self.cookies.get(message.home_init_cookie, sender)
        if sender == HOME_AGENT:
            return self.once(
                "hoti out",
                f"out of the tunnel: the client gets a Home Test Init from C (from {origin}, "
                "which it cannot tell)",
                f"out of the tunnel: a HoTI from C (from {origin})",
            )
        if receiver == HOME_AGENT and origin == sender:
            return self.tunnel(item) + (
                f"{sender} starts return routability with the client, as a mobile node whose "
                "home address is C would: Home Test Init from C (RFC 3775 5.2.5)"
            )
        if receiver == HOME_AGENT:
            return self.once(
                "hoti relay",
                f"{sender} remembers (client, cookie) -> {origin} in its relay table and sends "
                "the HoTI on in its tunnel to the home agent, as the registered mobile node",
                f"{sender} relays {origin}'s HoTI via the home agent",
            )
        return self.once(
            "hoti to relay",
            f"{sender}'s Home Test Init from C: only {receiver} is registered at the home agent, "
            f"so {sender} tunnels it to the contact node {receiver}, the relay (DSERVER 4)",
            f"{sender}'s HoTI from C, tunnelled to the relay {receiver}",
        )

    def why_channel(self, item: View, segment: TcpSegment) -> str:
        sender, receiver = item.hop
        flags = segment.flags
        if flags & TcpFlags.SYN and not flags & TcpFlags.ACK:
            return "member channel: " + self.once(
                "channel syn",
                f"{sender} opens TCP to {receiver}'s own address, port {self.channel_port}, on "
                "the members' userspace stacks",
                f"{sender} opens TCP to {receiver}",
            )
        if flags & TcpFlags.SYN:
            return "member channel: accepted"
        if flags & TcpFlags.RST:
            return "member channel: RST"
        if not segment.payload:
            return "member channel: acknowledgement"
        inner = item.inner
        assert inner is not None
        direction = (
            str(inner.source),
            segment.source_port,
            str(inner.destination),
            segment.destination_port,
        )
        isn = self.streams.get(direction)
        names: list[str] = []
        handshake = HELLO_LENGTH + CONFIRM_LENGTH
        end = None
        if isn is not None:
            start = (segment.sequence_number - isn - 1) & 0xFFFFFFFF
            end = start + len(segment.payload)
            if start < HELLO_LENGTH:
                names.append("hello")
            if start < handshake and end > HELLO_LENGTH:
                names.append("confirm")
        if end is None or end > handshake:
            arrival = round(item.sent.time + self.latency(sender, receiver), 4)
            names += self.arrivals.get((receiver, arrival), ["an encrypted frame"])
        parts = [
            f"{name} ({_CHANNEL_WHY[name]})"
            if name in _CHANNEL_WHY and self.once(name, "new", "")
            else name
            for name in names
        ]
        return "member channel: " + " + ".join(parts)


# -- the story -------------------------------------------------------------------------------


def _first(views: list[View], start: int, test: Callable[[View], bool]) -> int | None:
    return next((i for i in range(start, len(views)) if test(views[i])), None)


def _steps(played: Played, narrator: Narrator) -> None:
    """Each step's title, where it starts in the trace."""
    views = narrator.views
    nodes = played.lab.topology.nodes
    address = {name: nodes[name].addresses[0] for name in nodes}
    narrator.mark(
        0,
        "[0.000 s] 1. The contact node m1 registers C at the home agent: a Binding Update with C "
        "as home address and m1's own address as care-of address, and its acknowledgement. (The "
        "simulator runs without IPsec; on the netns backend `labnet up dserver --esp` sends "
        "these two under ESP, RFC 3776.)",
    )
    start = _first(views, 0, lambda v: v.sent.time >= START) or 0
    narrator.mark(
        start,
        f"[{START:.3f} s] 2. The client connects to C and sends GET /. It holds no binding for "
        "C, so the SYN goes towards C's home link: the home agent intercepts it and tunnels it "
        "to the care-of address registered for C, m1 (RFC 2473). m1's answers go back in the "
        "reverse tunnel.",
    )
    optimizing = _first(
        views,
        start,
        lambda v: isinstance(v.upper, mh.HomeTestInit) and v.sent.sender == CONTACT_NODE,
    )
    if optimizing is not None:
        narrator.mark(
            optimizing,
            f"[{views[optimizing].sent.time:.3f} s] 3. m1 starts route optimization with the "
            "client at once (DSERVER 3): it pretends to be a mobile node whose home address is "
            "the server's address C. HoTI from C via the home agent, CoTI from m1's own address, "
            "then a Binding Update; once the client accepts it, the client and m1 talk directly "
            "and the home agent is out of the path.",
        )
    texts = (
        "4. The demo asks m1 to hand the client to m2 (`mip6 ctl handoff {client} {target}` on "
        "a netns lab). The member channel, encrypted TCP between the members' own addresses, "
        "carries PREPARE, PREPARED, INIT and DONE, named here from the members' handoff history. "
        "m2's HoTI must come from C: it is tunnelled to m1, the relay, which sends it on via the "
        "home agent, and the HoT comes back the same way. m2's Binding Update goes from its own "
        "address with C as home address; at the acknowledgement m2 thaws the connection.",
        "5. A second handoff, m2 to m3, the same way. For the client nothing changes but the "
        "address its binding for C points to: the same connection, the same C.",
    )
    for handoff, text in zip(played.handoffs, texts, strict=False):
        target = address[handoff.acceptor]
        narrator.mark(
            handoff.index,
            f"[{handoff.asked:.3f} s] " + text.format(client=address[CLIENT], target=target),
        )
        _serving(narrator, handoff)
    end = _first(
        views,
        played.handoffs[-1].index if played.handoffs else start,
        lambda v: (
            v.segment is not None
            and v.segment.source_port == PORT
            and bool(v.segment.flags & TcpFlags.FIN)
        ),
    )
    if end is not None:
        narrator.mark(
            end, f"[{views[end].sent.time:.3f} s] 6. The response ends; both sides close."
        )


def _serving(narrator: Narrator, handoff: Handoff) -> None:
    """The title above the acceptor's first data: where its stream starts again, and why."""
    views = narrator.views
    donor_high = 0
    for index in range(handoff.index, len(views)):
        item = views[index]
        if narrator.bulk(item) != "data" or item.segment is None:
            continue
        if item.sent.sender == handoff.donor:
            end = narrator.offset(item.segment.sequence_number) + len(item.segment.payload)
            donor_high = max(donor_high, end)
        elif item.sent.sender == handoff.acceptor:
            start = narrator.offset(item.segment.sequence_number)
            title = (
                f"[{item.sent.time:.3f} s]    {handoff.acceptor} serves the client now: data "
                f"from {handoff.acceptor}'s own address, the same TCP connection."
            )
            if start < donor_high and "regenerated" in narrator.told:
                title += (
                    f" Again it starts at byte {start}, the first {handoff.donor} had not seen "
                    f"acknowledged; the client holds up to byte {donor_high} "
                    "already."
                )
            elif start < donor_high:
                narrator.told.add("regenerated")
                title += (
                    f" It starts at byte {start}, the first byte {handoff.donor} had not seen "
                    f"acknowledged when it froze: the snapshot leaves unacknowledged bytes out "
                    f"and {handoff.acceptor} makes them again from the generated body "
                    f"(regenerable output, DSERVER 4 rule 5). The client, holding up to byte "
                    f"{donor_high} already, says so, and {handoff.acceptor} "
                    "goes on from there."
                )
            narrator.mark(index, title)
            return


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def result(played: Played, narrator: Narrator, out: TextIO) -> None:
    """The download's outcome, and what the client saw of the connection."""
    fetch = played.fetch
    digest = fetch.digest.hexdigest()
    closed = _first(
        narrator.views,
        0,
        lambda v: v.sent.sender == CLIENT and _flag(v.segment, TcpFlags.FIN),
    )
    at = f" at {narrator.views[closed].sent.time:.3f} s" if closed is not None else ""
    if fetch.done and not fetch.failed:
        right = digest == played.expected_sha256
        out.write(
            f"\nDownload complete{at}: {fetch.received:,} bytes, sha256 {digest}\n"
            f"  {'the body the members generate' if right else 'NOT the body the members make'}"
            f" (mip6.apps.http.generated_body({SIZE}, {BODY_SEED}))\n"
        )
    else:
        out.write(f"\nDownload NOT complete: {fetch.received:,} of {SIZE:,} bytes\n")
    ports: set[int] = set()
    resets = 0
    for item in narrator.views:
        segment, inner = item.segment, item.inner
        if segment is None or inner is None:
            continue
        resets += bool(segment.flags & TcpFlags.RST)
        if narrator.is_download(segment) and inner.source == narrator.client:
            ports.add(segment.source_port)
        elif narrator.is_download(segment) and inner.destination == narrator.client:
            ports.add(segment.destination_port)
    if len(ports) == 1:
        connection = (
            f"one TCP connection throughout ([{narrator.client}]:{min(ports)} to "
            f"[{narrator.contact}]:{PORT})"
        )
    else:
        connection = f"{len(ports)} TCP connections"
    rst = "never a RST" if not resets else f"{resets} RST(s)"
    out.write(f"  The client saw {connection}, {rst} on the wire.\n")


def summary(played: Played, narrator: Narrator, out: TextIO) -> None:
    """Packets per sender; each handoff's phases and the gap the client saw."""
    columns = ("sent", "data", "acks", "other TCP", "mobility", "channel", "tunnelled")
    counts: dict[str, dict[str, int]] = {}
    for item in narrator.views:
        row = counts.setdefault(item.sent.sender, dict.fromkeys(columns, 0))
        row["sent"] += 1
        row["tunnelled"] += item.tunnelled
        kind = narrator.bulk(item)
        if kind is not None:
            row["data" if kind == "data" else "acks"] += 1
        elif isinstance(item.upper, mh.MobilityMessage):
            row["mobility"] += 1
        elif narrator.is_channel(item.segment):
            row["channel"] += 1
        elif item.segment is not None:
            row["other TCP"] += 1
    out.write("\nSummary: packets sent\n")
    out.write(f"  {'node':<8}" + "".join(f"{column:>11}" for column in columns) + "\n")
    order = [name for name in played.lab.topology.nodes if name in counts]
    for name in order:
        out.write(f"  {name:<8}" + "".join(f"{counts[name][c]:>11}" for c in columns) + "\n")
    totals = {c: sum(counts[name][c] for name in order) for c in columns}
    out.write(f"  {'total':<8}" + "".join(f"{totals[c]:>11}" for c in columns) + "\n")
    out.write(
        textwrap.fill(
            "data: segments of the response; acks: the client's pure acknowledgements; other "
            "TCP: handshake, request, FIN; mobility: Mobility Header messages; channel: "
            "member-channel segments; tunnelled: IPv6-in-IPv6, also counted in the others.",
            WIDTH,
            initial_indent="  ",
            subsequent_indent="  ",
        )
        + "\n"
    )
    lss = narrator.latency("m1", "m2")
    lcs = narrator.latency("m2", CLIENT)
    out.write(
        f"\nSummary: handoffs (Lss = {_ms(lss)} ms member to member, Lcs = {_ms(lcs)} ms member "
        "to client, one way)\n"
    )
    for handoff in played.handoffs:
        line = f"  {handoff.donor} -> {handoff.acceptor}: {phases(played.lab, handoff)}"
        out.write(textwrap.fill(line, WIDTH, subsequent_indent=" " * 4) + "\n")
        out.write(gap(narrator, handoff) + "\n")


def _records(lab: SimLab, handoff: Handoff) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The donor's and the acceptor's history records of ``handoff``."""
    donor = next(
        (
            record
            for record in _member(lab, handoff.donor).history
            if record["side"] == "donor" and abs(record["started"] - handoff.asked) < 1e-6
        ),
        None,
    )
    if donor is None:
        return None
    acceptor = next(
        (
            record
            for record in _member(lab, handoff.acceptor).history
            if record["handoff_id"] == donor["handoff_id"]
        ),
        None,
    )
    return None if acceptor is None else (donor, acceptor)


def phases(lab: SimLab, handoff: Handoff) -> str:
    """The handoff's phases in ms after the demo asked, from both members' history."""
    records = _records(lab, handoff)
    if records is None:
        return "not finished"
    donor, acceptor = handoff.donor, handoff.acceptor
    names = {
        ("acceptor", "prepare"): f"PREPARE at {acceptor}",
        ("acceptor", "tokens"): f"RR done at {acceptor}",
        ("donor", "prepared"): f"PREPARED at {donor}",
        ("donor", "frozen"): f"freeze and INIT at {donor}",
        ("acceptor", "init"): f"INIT at {acceptor} (import, BU)",
        ("acceptor", "bound"): f"BA at {acceptor} (thaw, DONE)",
        ("acceptor", "client_packet"): f"client's packet at {acceptor} (thaw, DONE)",
        ("donor", "done"): f"DONE at {donor} (release)",
    }
    events: list[tuple[float, str]] = []
    for side, record in zip(("donor", "acceptor"), records, strict=True):
        for at, phase in record["phases"]:
            name = names.get((side, phase), f"{phase} at the {side}")
            events.append((record["started"] + at - handoff.asked, name))
    events.sort(key=lambda event: event[0])
    timeline = ", ".join(f"{name} {_ms(at)}" for at, name in events)
    return f"asked at {handoff.asked:.3f} s; {timeline} ms; {records[0]['outcome']}"


def gap(narrator: Narrator, handoff: Handoff) -> str:
    """Last segment of the connection from the donor to first from the acceptor, at the client
    (DSERVER 4, the seeds' 004 6.3), on the simulator's paths; and where the time went."""
    last: Sent | None = None
    first: Sent | None = None
    for item in narrator.views[handoff.index :]:
        sent = item.sent
        if sent.receiver != CLIENT or not narrator.is_download(item.segment) or sent.lost:
            continue
        origin = CONTACT_NODE if sent.sender == HOME_AGENT else sent.sender
        if origin == handoff.acceptor:
            first = sent
            break
        if origin == handoff.donor:
            last = sent
    records = _records(narrator.lab, handoff)
    if last is None or first is None or records is None:
        return "    client-observed gap: not measured (no segment from one of the two members)"
    lss = narrator.latency(handoff.donor, handoff.acceptor)
    lcs = narrator.latency(handoff.acceptor, CLIENT)
    seen_last = last.time + narrator.latency(last.sender, CLIENT)
    seen_first = first.time + lcs
    donor = records[0]
    frozen = next(
        (donor["started"] + at for at, phase in donor["phases"] if phase == "frozen"), None
    )
    lines = [
        f"    client-observed gap: {_ms(seen_first - seen_last)} ms, from the last segment from "
        f"{handoff.donor} (at the client at {seen_last:.3f} s) to the first from "
        f"{handoff.acceptor} ({seen_first:.3f} s)"
    ]
    handing = seen_first - seen_last
    if frozen is not None and frozen - last.time > 0.0005:
        idle = frozen - last.time
        handing -= idle
        lines.append(
            f"      {_ms(idle)} ms of it {handoff.donor} had nothing to send before it froze: it "
            "waited for acknowledgements (the simulator has no bandwidth limit: a whole window "
            "leaves at once)"
        )
    lines.append(
        f"      {_ms(handing)} ms of it the handoff: INIT (Lss), BU and BA (2*Lcs); DSERVER 4's "
        f"bound with RR in advance is Lss + 2*Lcs = {_ms(lss + 2 * lcs)} ms"
    )
    return "\n".join(textwrap.fill(line, WIDTH, subsequent_indent=" " * 8) for line in lines)


def run(out: TextIO, seed: int = 1) -> Played:
    """Play the scenario and print it; returns what ran (``ok``: everything went as told)."""
    played = play(seed)
    topo = played.lab.topology
    narrator = Narrator(played, out)
    address = {name: topo.nodes[name].addresses[0] for name in topo.nodes}
    out.write(
        f"labnet demo dserver: topology {topo.name!r} on the sim backend (virtual time, seed "
        f"{seed})\n"
        f"  C = {narrator.contact}: the contact address, the distributed server as every client "
        "sees it (one IPv6 host)\n"
        f"  home agent ha {address[HOME_AGENT]}: C lies on its home link\n"
    )
    for name in MEMBERS:
        role = ", the contact node: it registers C" if name == CONTACT_NODE else ""
        out.write(f"  member {name} {address[name]}{role}\n")
    out.write(
        f"  client {address[CLIENT]}: an RFC 3775 correspondent node, downloading {SIZE:,} "
        f"bytes from [{narrator.contact}]:{PORT}\n"
        "  Each line: virtual time (s), sender -> receiver, the packet (TCP options left out), "
        "then why.\n  Runs of data segments and acknowledgements take one line each.\n"
    )
    _steps(played, narrator)
    narrator.narrate()
    result(played, narrator, out)
    summary(played, narrator, out)
    return played
