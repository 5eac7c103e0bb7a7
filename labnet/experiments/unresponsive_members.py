"""``unresponsive-members``: the seeds' recovery from unresponsive replicas (003 6.3.3;
SPEC-dserver 9.9). The seeds ran their echo example on the contact node alone, configured with
bogus replica addresses and a 2 s handover timeout, with a policy that tries every remote
target before the local one: "a new connection attempt was issued every two seconds", and with
the endpoint frozen during the attempts a client "reported a broken connection after 21
seconds on average", the contact node having made 11 attempts.

Here Node 1, the contact node and the only member that exists, runs the handoff echo
(:mod:`mip6.apps.handoff_echo`) with ``bogus`` more members in its static group, addresses no
node holds (their packets are lost). A client connects, sends 'H' (hand me to another member:
the group's policy never picks Node 1 for it, so every bogus member is tried) and, 1 s later,
another line. Measured at the client: the time from the 'H' to Node 1's answer that the
handoff failed, and from the later line to its echo; and whether the connection lives on.
With return routability in advance (PREPARE, our default) an attempt is a PREPARE the bogus
member never answers, the connection keeps running, and each attempt costs the attempt
timeout; without it the donor freezes the connection and sends INIT, and each attempt costs
the INIT's timeout and the abort's (DSERVER 4 rule 6: 1.5 + 1 attempt timeouts). ``--runs``:
clients per point, each on its own seed.

On the netns backend Node 1 is a ``mip6 run`` daemon (one lab per point: the group is its
configuration), the client a Python program on the client namespace's kernel, and the members
tried are counted from the hub's capture of Node 1's link: the member channel's SYNs to the
bogus addresses (the hub has no route for them and drops them). Each point costs its
attempts' real seconds, so the bogus counts are every other one unless ``--every`` says.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import TYPE_CHECKING, Any

from labnet.dserver_lab import innermost
from labnet.experiments import netns_testbed
from labnet.experiments.base import Experiment, Outcome, Settings, thin
from labnet.experiments.fit import line
from labnet.experiments.split_download import NO_NISTNET_DELAY
from labnet.experiments.testbed import CONTACT, NODES, Testbed, sim_lab
from labnet.sim import SimLab
from mip6.dserver import handoff
from mip6.dserver.member import DEFAULT_CHANNEL_PORT
from mip6.runtime.config import AppConfig
from mip6.runtime.host import TCP_DEFAULTS
from mip6.wire import protocols
from mip6.wire.pcap import read_capture_file
from tcp_migrate.core import TcpState
from tcp_migrate.stack import Socket

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NAME = "unresponsive-members"
BOGUS = tuple(range(11))  # the seeds' client saw 11 attempts
ATTEMPT_TIMEOUT = handoff.DEFAULT_ATTEMPT_TIMEOUT  # 2 s, the seeds' handover timeout too
PORT = 7
LATER = 1.0  # seconds after the 'H' that the client sends its next line
VIRTUAL_LIMIT = 300.0
SEEDS_ATTEMPT_S = 2.0  # 003 6.3.3: "a new connection attempt was issued every two seconds"
SEEDS_BROKEN_S, SEEDS_BROKEN_ATTEMPTS = 21.0, 11  # 003 6.3.3, the endpoint frozen
NETNS_EVERY = 2  # netns: every other bogus count (each attempt costs real seconds)


def bogus_member(index: int) -> IPv6Address:
    """A member address no node holds (no route: its packets are lost)."""
    return IPv6Address(f"2001:db8:40::{index + 1:x}")


@dataclass(frozen=True, slots=True)
class Attempts:
    """One client's 'H': seconds from it to the answer and from the later line to its echo,
    the members tried, and whether the connection is still established at the end."""

    answer: float
    later_echo: float
    tried: int
    alive: bool


class _Client:
    """Connects to the handoff echo, sends 'H' once established (after ``settle``), the later
    line ``LATER`` after it, and times the lines that come back."""

    def __init__(self, lab: SimLab, settle: float) -> None:
        self.net = lab.net
        self.node = lab.net.nodes["client"]
        assert self.node.host is not None
        self.sock = self.node.host.connect(self.net.now, str(CONTACT), PORT)
        self.sock.on_change = self._changed
        self.settle = settle
        self.buffer = b""
        self.sent_h: float | None = None
        self.sent_later: float | None = None
        self.answer: float | None = None
        self.later_echo: float | None = None
        self.node.runtime.flush_host()

    def _send(self, line: bytes) -> float:
        self.sock.send(line)
        self.node.runtime.flush_host()
        return self.net.now

    def _send_h(self) -> None:
        self.sent_h = self._send(b"H\n")
        self.net.call_at(self.net.now + LATER, self._send_later)

    def _send_later(self) -> None:
        self.sent_later = self._send(b"later\n")

    def _changed(self, sock: Socket) -> None:
        if self.sent_h is None and sock.state is TcpState.ESTABLISHED:
            self.sent_h = -1.0  # scheduled
            self.net.call_at(self.net.now + self.settle, self._send_h)
        self.buffer += sock.recv(1 << 16)
        *lines, self.buffer = self.buffer.split(b"\n")
        for line_ in lines:
            if line_.startswith(b"handoff failed") and self.answer is None:
                self.answer = self.net.now
            elif line_ == b"later" and self.later_echo is None:
                self.later_echo = self.net.now


def _testbed(bogus: int, prepare: bool, latency: float) -> Testbed:
    """The contact node alone, ``bogus`` unresponsive members in its group."""
    members = (NODES["node1"], *(bogus_member(i) for i in range(bogus)))
    return Testbed(
        latency,
        latency,
        latency,
        members=("node1",),
        apps=(AppConfig("handoff_echo", PORT),),
        member_options={
            "members": [str(m) for m in members],
            "prepare": prepare,
            "distribute": False,  # the client stays at the contact node until its 'H'
            "attempt_timeout": ATTEMPT_TIMEOUT,
        },
    )


# the netns client: connects, sends 'H' after a second, the later line LATER after it, and
# prints the seconds to the "handoff failed" answer and to the later line's echo, and
# whether the connection still carries a line after them
_CLIENT = """
import json, select, socket, sys, time
address, port, later, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
sock = socket.create_connection((address, port), timeout=limit)
time.sleep(1.0)
sent_h = time.monotonic()
sock.sendall(b"H\\n")
deadline = sent_h + limit
buffer, answer, echo, sent_later = b"", None, None, None
while echo is None and time.monotonic() < deadline:
    if sent_later is None and time.monotonic() >= sent_h + later:
        sent_later = time.monotonic()
        sock.sendall(b"later\\n")
    until = sent_h + later if sent_later is None else deadline
    ready, _, _ = select.select([sock], [], [], max(until - time.monotonic(), 0))
    if not ready:
        continue
    data = sock.recv(65536)
    if not data:
        sys.exit("the server closed the connection")
    now = time.monotonic()
    *lines, buffer = (buffer + data).split(b"\\n")
    for line in lines:
        if line.startswith(b"handoff failed") and answer is None:
            answer = now - sent_h
        elif line == b"later" and sent_later is not None:
            echo = now - sent_later
sock.sendall(b"still there\\n")
alive = sock.makefile("rb").readline() == b"still there\\n"
print(json.dumps({"answer": answer, "later_echo": echo, "alive": alive}))
"""


def measure_netns(bogus: int, prepare: bool, settings: Settings) -> Attempts:
    """One client's 'H' with ``bogus`` unresponsive members in Node 1's group, on netns."""
    # without PREPARE the later line reaches the frozen donor, which keeps it for its thaw;
    # a copy lost on the way waits for the kernel's retransmission, whose backoff doubles:
    # up to twice the attempts' time
    limit = 2 * bogus * ATTEMPT_TIMEOUT * (handoff.INIT_TIMEOUT_FACTOR + 1) + 30
    name = netns_testbed.lab_name(settings.lab_prefix, f"um{bogus}{'p' if prepare else 'n'}")
    with netns_testbed.netns_lab(_testbed(bogus, prepare, 0.0), name) as lab:
        printed = netns_testbed.client_run(
            lab, _CLIENT, str(CONTACT), str(PORT), str(LATER), str(limit), timeout=limit + 30
        )
        tried = _tried(lab.pcap("node1"), bogus)
    result = json.loads(printed)
    if result["answer"] is None or result["later_echo"] is None:
        raise RuntimeError(
            f"{NAME}: {bogus} bogus members, prepare {prepare}: no answer to the 'H' or no "
            f"echo of the later line within {limit:g} s"
        )
    return Attempts(result["answer"], result["later_echo"], tried, result["alive"])


def _tried(pcap: str, bogus: int) -> int:
    """The bogus members Node 1 opened its member channel to (a SYN each), by its capture."""
    wanted = {bogus_member(i).packed for i in range(bogus)}
    tried = set()
    for frame in read_capture_file(pcap):
        packet, protocol, offset = innermost(frame.data)
        if protocol != protocols.TCP or len(packet) < offset + 14:
            continue
        port = int.from_bytes(packet[offset + 2 : offset + 4])
        syn = packet[offset + 13] & 0x12 == 0x02
        if syn and port == DEFAULT_CHANNEL_PORT and packet[24:40] in wanted:
            tried.add(packet[24:40])
    return len(tried)


def measure(bogus: int, prepare: bool, seed: int) -> Attempts:
    """One client's 'H' with ``bogus`` unresponsive members in Node 1's group."""
    testbed = _testbed(bogus, prepare, NO_NISTNET_DELAY)
    lab = sim_lab(testbed, seed)
    lab.run_until(1.0)  # the contact node has registered
    client = _Client(lab, settle=1.0)
    while client.later_echo is None and lab.net.now < VIRTUAL_LIMIT:
        lab.net.run_for(1.0)
    if client.answer is None or client.later_echo is None:
        raise RuntimeError(
            f"{NAME}: {bogus} bogus members, prepare {prepare}: no answer to the 'H' by "
            f"{lab.net.now:.0f} s"
        )
    assert client.sent_h is not None and client.sent_later is not None
    finished = [e.fields for _, e in lab.net.nodes["node1"].events if e.name == "handoff_finished"]
    return Attempts(
        answer=client.answer - client.sent_h,
        later_echo=client.later_echo - client.sent_later,
        tried=len(finished[-1]["tried"]) if finished else 0,
        alive=client.sock.state is TcpState.ESTABLISHED,
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def run(settings: Settings) -> Outcome:
    started = time.perf_counter()
    runs = EXPERIMENT.runs(settings)
    rows: list[dict[str, Any]] = []
    netns = settings.backend == "netns"
    for bogus in thin(BOGUS, settings.every * (NETNS_EVERY if netns else 1)):
        for prepare in (True, False):
            attempts = [
                measure_netns(bogus, prepare, settings)
                if netns
                else measure(bogus, prepare, settings.seed + i)
                for i in range(runs)
            ]
            rows.append(
                {
                    "bogus_members": bogus,
                    "prepare": prepare,
                    "runs": runs,
                    "attempts": statistics.mean(a.tried for a in attempts),
                    "answer_s": round(statistics.mean(a.answer for a in attempts), 4),
                    "later_line_echo_s": round(statistics.mean(a.later_echo for a in attempts), 4),
                    "connections_alive": sum(a.alive for a in attempts),
                }
            )
        with_, without = rows[-2], rows[-1]
        settings.progress(
            f"{NAME} {bogus} bogus members: answer after {with_['answer_s']:g} s with PREPARE, "
            f"{without['answer_s']:g} s without ({with_['attempts']:g} attempts); the later "
            f"line echoed after {with_['later_line_echo_s']:g} s / "
            f"{without['later_line_echo_s']:g} s"
        )
    results = _results(rows)
    return Outcome(
        name=NAME,
        title=EXPERIMENT.title,
        backend=settings.backend,
        parameters={
            "bogus_members": [r["bogus_members"] for r in rows if r["prepare"]],
            "attempt_timeout_s": ATTEMPT_TIMEOUT,
            "later_line_after_s": LATER,
            "clients_per_point": runs,
            "lss_ms": _ms(NO_NISTNET_DELAY),
            "lcs_ms": _ms(NO_NISTNET_DELAY),
            "seed": settings.seed,
        },
        columns=tuple(rows[0]),
        rows=rows,
        results=results,
        summary=_summary(rows, results),
        plot=lambda figure: _plot(figure, rows),
        wall_seconds=time.perf_counter() - started,
        notes=[
            "virtual time: the timers alone set these times; --runs adds samples, not confidence"
            if settings.backend == "sim"
            else "real kernels and clocks: the timers and the machine's load set these times",
            "the seeds' client broke after 21 s because their frozen endpoint was frozen before "
            "connecting; ours are frozen (without PREPARE) only during the attempts",
        ],
    )


def _results(rows: list[dict[str, Any]]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for prepare in (True, False):
        series = [r for r in rows if r["prepare"] is prepare]
        slope, intercept = line([r["attempts"] for r in series], [r["answer_s"] for r in series])
        results["prepare" if prepare else "no_prepare"] = {
            "seconds_per_attempt": round(slope, 3),
            "intercept_s": round(intercept, 3),
            "model_seconds_per_attempt": ATTEMPT_TIMEOUT
            if prepare
            else ATTEMPT_TIMEOUT * (handoff.INIT_TIMEOUT_FACTOR + 1),
            "longest_answer_s": max(r["answer_s"] for r in series),
            "longest_later_line_echo_s": max(r["later_line_echo_s"] for r in series),
            "connections_lost": sum(r["runs"] - r["connections_alive"] for r in series),
        }
    results["seeds_seconds_per_attempt"] = SEEDS_ATTEMPT_S
    results["seeds_broken_after_s"] = SEEDS_BROKEN_S
    results["seeds_attempts_before_broken"] = SEEDS_BROKEN_ATTEMPTS
    return results


def _summary(rows: list[dict[str, Any]], results: dict[str, Any]) -> str:
    lines = [
        "A client of the handoff echo on Node 1 sends 'H' with Node 1's group holding that "
        "many unresponsive members, and another line 1 s later; seconds at the client from "
        "the 'H' to Node 1's \"handoff failed\" and from the later line to its echo; "
        f"{ATTEMPT_TIMEOUT:g} s attempt timeout (the seeds' handover timeout).",
        "",
        "| bogus members | attempts | answer, PREPARE | later line, PREPARE | answer, no PREPARE "
        "| later line, no PREPARE |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    with_ = [r for r in rows if r["prepare"]]
    without = [r for r in rows if not r["prepare"]]
    for a, b in zip(with_, without, strict=True):
        lines.append(
            f"| {a['bogus_members']} | {a['attempts']:g} | {a['answer_s']:.2f} | "
            f"{a['later_line_echo_s']:.2f} | {b['answer_s']:.2f} | {b['later_line_echo_s']:.2f} |"
        )
    p, n = results["prepare"], results["no_prepare"]
    lost = p["connections_lost"] + n["connections_lost"]
    lines += [
        "",
        f"With PREPARE an attempt costs {p['seconds_per_attempt']:g} s (the seeds: a new "
        f"attempt every {SEEDS_ATTEMPT_S:g} s): the bogus member never answers the PREPARE, "
        "and the connection was never frozen, so it stays acknowledged while the attempts "
        "run, but the handoff echo reads no line behind an 'H' until the handoff has ended. "
        f"Without PREPARE an attempt costs {n['seconds_per_attempt']:g} s: the donor freezes "
        "the connection, its INIT waits "
        f"{handoff.INIT_TIMEOUT_FACTOR:g} attempt timeouts and its abort one more before the "
        "next member is tried (DSERVER 4 rule 6). "
        "A line the client sends meanwhile reaches the frozen connection; the donor keeps "
        "it (FROZEN_INPUT) and reads it when it keeps the client, so it is echoed as soon "
        "as the handoff has ended (dropped there, as the seeds' donor did, it waited for the "
        "client's retransmission after the thaw; the longest wait here: "
        f"{n['longest_later_line_echo_s']:.1f} s). {lost} connections were lost: the "
        f"client's TCP gives up only after {TCP_DEFAULTS.max_retries} retransmissions. The "
        f"seeds' client reported a broken connection after {SEEDS_BROKEN_S:g} s and "
        f"{SEEDS_BROKEN_ATTEMPTS} attempts, its endpoint frozen before it connected.",
    ]
    return "\n".join(lines)


def _plot(figure: Figure, rows: list[dict[str, Any]]) -> None:
    axes = figure.subplots()
    for prepare, colour in ((True, "tab:blue"), (False, "tab:red")):
        series = [r for r in rows if r["prepare"] is prepare]
        label = "with PREPARE" if prepare else "without PREPARE"
        bogus = [r["bogus_members"] for r in series]
        axes.plot(
            bogus,
            [r["answer_s"] for r in series],
            "o-",
            color=colour,
            label=f"'H' answered, {label}",
        )
        axes.plot(
            bogus,
            [r["later_line_echo_s"] for r in series],
            "x:",
            color=colour,
            label=f"later line echoed, {label}",
        )
    axes.plot(
        BOGUS,
        [SEEDS_ATTEMPT_S * b for b in BOGUS],
        "--",
        color="tab:gray",
        label="seeds: an attempt every 2 s",
    )
    axes.plot(
        [SEEDS_BROKEN_ATTEMPTS],
        [SEEDS_BROKEN_S],
        "s",
        color="tab:gray",
        label="seeds: client broke (21 s, 11 attempts)",
    )
    axes.set_xlabel("unresponsive members in the group")
    axes.set_ylabel("seconds at the client")
    axes.set_title("recovery from unresponsive members (003 6.3.3), 2 s attempt timeout")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")


EXPERIMENT = Experiment(
    name=NAME,
    title="recovery from unresponsive members (003 6.3.3): attempts and time to answer",
    run=run,
    default_runs=1,
    runs_mean="clients per point",
    default_wall_time="about 1 s",
    report_runs=1,
    backends=("sim", "netns"),
    netns_runs=1,
    netns_wall_time="about 6 min (6 points)",
)
