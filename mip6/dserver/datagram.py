"""Membership heartbeats as datagrams (DSERVER.md sections 5 and 6), sans-I/O: HEARTBEAT and
HEARTBEAT_ANSWER travel over UDP between members' own addresses, not on the member channel.

Why: the channel is TCP, and a lost segment holds every later one back until it is
retransmitted (at least the 200 ms minimum RTO, doubled if the retransmission is lost too).
Heartbeats every 100 ms with a 300 ms failure timeout then make one or two losses look like a
dead predecessor: with 1% loss on every link a three-member group saw several false takeovers
of a live contact node a minute. As datagrams, a lost heartbeat is one heartbeat missed; three
in a row must be lost for a suspicion, which is the loss model the membership engine's
failure timeout assumes.

A datagram::

    | Version (8) | Reserved (24) | Epoch (64) | Counter (64) | Sender (128) |
    | AES-256-GCM ciphertext of one membership message (heartbeat or answer) | Tag (128) |

The sender draws a random Epoch when it starts; each datagram it sends carries the next
Counter. Its key is HKDF-SHA256 over the group key with the sender's address and epoch in the
info (:data:`LABEL`), so no two senders (or two lives of one sender) share a key, and the nonce
is the counter; the header is the associated data. A receiver accepts a datagram only if it
authenticates under the key of the sender and epoch it names and its counter is above the
highest it accepted from them (a replayed or reordered heartbeat is dropped: the next one comes
100 ms later). It keeps the highest counter of at most :data:`MAX_SENDERS` (sender, epoch)
pairs, the least recently heard dropped first. Everything refused is counted by cause.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable
from ipaddress import IPv6Address

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mip6.dserver import messages as msg
from mip6.dserver.channel import hkdf_sha256
from mip6.wire.errors import WireError

VERSION = 1
LABEL = b"mip6 dserver heartbeat v1"
_HEADER = struct.Struct("!B3xQQ16s")
HEADER_LENGTH = _HEADER.size
TAG_LENGTH = 16
MAX_SENDERS = 512  # (sender, epoch) pairs whose counters are kept
# the largest membership message a datagram carries (a heartbeat); anything longer is refused
MAX_MESSAGE = 64

Heartbeats = msg.Heartbeat | msg.HeartbeatAnswer


def _key(group_key: bytes, sender: IPv6Address, epoch: int) -> AESGCM:
    info = LABEL + sender.packed + epoch.to_bytes(8, "big")
    return AESGCM(hkdf_sha256(salt=b"", ikm=group_key, info=info, length=32))


def _nonce(counter: int) -> bytes:
    return counter.to_bytes(12, "big")


class HeartbeatSender:
    """Seals this member's heartbeats. ``random_bytes`` draws the epoch."""

    def __init__(
        self, group_key: bytes, address: IPv6Address, random_bytes: Callable[[int], bytes]
    ) -> None:
        self.address = address
        self.epoch = int.from_bytes(random_bytes(8), "big")
        self.counter = 0
        self._aead = _key(group_key, address, self.epoch)

    def seal(self, message: Heartbeats) -> bytes:
        self.counter += 1
        header = _HEADER.pack(VERSION, self.epoch, self.counter, self.address.packed)
        return header + self._aead.encrypt(_nonce(self.counter), message.emit(), header)


class HeartbeatReceiver:
    """Opens the other members' heartbeats: :meth:`open` gives (sender, message) or None,
    the refusal counted in :attr:`counters`."""

    def __init__(self, group_key: bytes, counters: dict[str, int] | None = None) -> None:
        self._group_key = group_key
        # (sender, epoch) -> (its key, the highest counter accepted), least recent first
        self._senders: OrderedDict[tuple[bytes, int], tuple[AESGCM, int]] = OrderedDict()
        self.counters = counters if counters is not None else {}

    def _refuse(self, cause: str) -> None:
        name = f"heartbeat_datagram_{cause}"
        self.counters[name] = self.counters.get(name, 0) + 1

    def open(self, data: bytes) -> tuple[IPv6Address, Heartbeats] | None:
        if len(data) < HEADER_LENGTH + TAG_LENGTH:
            self._refuse("truncated")
            return None
        if len(data) > HEADER_LENGTH + MAX_MESSAGE + TAG_LENGTH:
            self._refuse("too_long")
            return None
        version, epoch, counter, sender = _HEADER.unpack_from(data)
        if version != VERSION or data[1:4] != bytes(3):
            self._refuse("version")
            return None
        known = self._senders.get((sender, epoch))
        if known is not None and counter <= known[1]:
            self._refuse("replayed")
            return None
        aead = known[0] if known is not None else _key(self._group_key, IPv6Address(sender), epoch)
        header = data[:HEADER_LENGTH]
        try:
            plain = aead.decrypt(_nonce(counter), data[HEADER_LENGTH:], header)
        except InvalidTag:
            self._refuse("forged")  # nothing remembered of it: a forger fills no table
            return None
        try:
            message = msg.parse(plain)
        except WireError:
            self._refuse("malformed")
            return None
        if not isinstance(message, msg.Heartbeat | msg.HeartbeatAnswer):
            self._refuse("not_a_heartbeat")
            return None
        self._senders[(sender, epoch)] = (aead, counter)
        self._senders.move_to_end((sender, epoch))
        while len(self._senders) > MAX_SENDERS:
            self._senders.popitem(last=False)
        return IPv6Address(sender), message
