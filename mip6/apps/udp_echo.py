"""The distributed server's UDP echo (RFC 862 on the contact address; the seeds' access-latency
application, SPEC-dserver 9.2): each datagram goes back to its sender unchanged. A
:class:`~mip6.dserver.udp.DatagramService`, stateless, so it moves by traffic switching alone.

``handoff_every``: after that many datagrams of a flow echoed here, hand its client to another
member (the group's policy chooses); 0 never. Its answers do not say which member sent them
(RFC 862 echoes exactly): :mod:`mip6.apps.lookup`'s do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mip6.dserver.member import Member
    from mip6.dserver.udp import Flow

DEFAULT_PORT = 7


class UdpEchoService:
    def __init__(self, member: Member, handoff_every: int = 0) -> None:
        self.member = member
        self.handoff_every = handoff_every
        self.counters: dict[str, int] = {}

    def received(self, flow: Flow, payload: bytes) -> None:
        flow.send(payload)
        if self.handoff_every and flow.requests % self.handoff_every == 0:
            self.member.request_handoff(flow.client)

    def export_state(self, flow: Flow) -> bytes:
        return b""

    def handed_in(self, flow: Flow, state: bytes) -> None:
        """Stateless: the flow alone came."""

    def forget(self, flow: Flow) -> None:
        """Stateless: nothing to forget."""
