"""The member channel's security layer (DSERVER.md section 6): a handshake that proves both ends
hold the group's pre-shared key, then AES-256-GCM records each carrying one
:mod:`mip6.dserver.messages` message. This closes the seeds' unauthenticated handover requests
and join password (their B21, B22).

Sans-I/O in the manner of h2: :class:`Channel` never touches a socket, a clock or global
randomness (``random_bytes(n)`` is injected). The caller writes what :meth:`Channel.start`,
:meth:`Channel.send` and :meth:`Channel.data_to_send` return to the TCP connection, in the order
it got them, and hands every byte read to :meth:`Channel.receive_data`, which returns
:class:`Established`, :class:`MessageReceived` and :class:`Closed` events; ``receive_data(b"")``
says the peer closed its side (h11's convention).

Handshake
---------
Both ends send a hello at once (neither waits for the other), then, on the peer's hello, a
confirm; a channel is established when the peer's confirm verifies. One round trip::

    | Version (8) | Role (8, 1 initiator, 2 responder) | Reserved (16, zero) |
    | Identity (128): the member's own address M, the address the channel runs between |
    | Random (256): fresh from random_bytes |

The identity is the member's own 16-byte address (DSERVER 2: members are told apart by M;
the runtime can check it against the TCP peer's address). It is authenticated only as "sent by a
holder of the group key": every member holds the same key, so one member can claim to be another.

Keys (RFC 5869)::

    PRK = HKDF-Extract(salt = initiator random | responder random, IKM = group key)
    OKM = HKDF-Expand(PRK, info = LABEL | initiator hello | responder hello, 152)
        = initiator->responder key (32) | nonce base (12) | responder->initiator key (32)
          | nonce base (12) | initiator confirm key (32) | responder confirm key (32)
    confirm = HMAC-SHA256(the sender's confirm key, initiator hello | responder hello)

Why this shape:

- The randoms go in the salt, as RFC 5869 3.1 describes for "public nonces exchanged and
  authenticated between communicating parties" (the IKEv2 approach, SKEYSEED = prf(Ni | Nr,
  ...)); ours are authenticated after the fact, since both hellos are in ``info`` and so in the
  confirms. The group key is the secret (the IKM); the salt need not be. Its 64 bytes are
  within SHA-256's block, so HMAC uses them as its key unhashed. What the randoms buy is
  freshness: an end that draws its own 32 random bytes gets keys no earlier connection had even
  if the peer (or someone replaying the peer's old hello) repeats itself, and that is what makes
  implicit nonces counting from zero safe: AES-GCM with a repeated (key, nonce) leaks the
  authentication key.
- Both hellos whole go in ``info`` (RFC 5869 3.2: info binds the keys to "application- and
  context-specific information"), so the keys also depend on the version, the roles and the
  identities: a hello altered in transit leaves the two ends with different keys, and the
  confirms fail.
- Each direction has its own AES key and nonce base (a frame can never be reflected back to its
  sender and decrypt), and each end its own confirm key (a reflected confirm does not verify).
- Why a confirm after the hellos rather than a MAC inside each hello: the initiator's hello goes
  out before the responder's random is known, so a MAC in it could only be keyed by the group
  key alone, and an old hello replayed would verify: a stranger holding a recorded hello would
  be "established" and found out at its first frame, or never if it stays silent. The confirm is
  a MAC keyed from both randoms, so it proves the key was known in this connection. This is the
  pattern of TLS 1.3's Finished (RFC 8446 4.4.4: HMAC of the transcript under a key from the
  key schedule) and IKEv2's pre-shared-key AUTH payload (RFC 7296 2.15).
- A confirm that does not verify closes the channel with WRONG_GROUP_KEY: the other end holds a
  different key, or someone altered a hello (the two cannot be told apart, and are refused alike).

Frames
------
::

    | Length (32): of ciphertext + tag | Ciphertext | Tag (16) |

AES-256-GCM with the direction's key; the 96-bit nonce is the direction's nonce base XOR the
frame's sequence number, big-endian (the construction of TLS 1.3, RFC 8446 5.3); the sequence
number counts frames in that direction from zero and is never sent, so a replayed, reordered or
dropped frame fails authentication. The Length field is the associated data, so a changed length
fails too. The plaintext is one message, parsed with :func:`mip6.dserver.messages.parse`.

Bounds: :data:`MAX_FRAME_LENGTH` is :data:`MAX_MESSAGE_LENGTH`, the largest INIT the messages
module can emit at its bounds (64 connections of 1 MiB snapshot and 1 MiB state), plus the tag:
about 128 MiB. A larger Length closes
the channel as soon as its four bytes arrive, before anything is allocated for it. A frame up to
the cap is buffered whole before it is decrypted (GCM releases no plaintext before the tag
checks), so a peer holding the group key can make us hold up to that much per channel.

Failure: a bad hello, a confirm or frame that does not verify, an oversize length, a plaintext
that is not a message, or a stream that ends mid-record puts the channel in CLOSED for good with a
:class:`CloseReason`, counted in ``counters`` (``closed_<reason>``); nothing after is processed or
queued (our confirm excepted, if it was queued before the close: it lets a peer with another key
find out too). Nothing is sent to say why: the caller closes the TCP connection.

Not done: rekeying. The sequence number never wraps (:func:`frame_nonce` refuses past 2**96
rather than reuse a nonce), but AES-GCM's safety margin shrinks with the total data under one
key (RFC 8446 5.5 rekeys after 2**24.5 full records); a member should reopen a channel that has
carried some hundreds of gigabytes. Not counted or enforced here.

The group key must be random, not a password: every confirm on the wire (and every frame) lets
an eavesdropper test guesses of the key offline.

Secrets: the group key and the derived keys appear in no ``repr``, ``str``, exception or log
(this module logs nothing; the runtime logs the events, which hold no key).
"""

from __future__ import annotations

import enum
import hmac
import struct
from dataclasses import dataclass
from hashlib import sha256
from ipaddress import IPv6Address

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mip6.core.ipsec.sa import RandomBytes
from mip6.dserver import messages
from mip6.wire.errors import WireError

VERSION = 1
LABEL = b"mip6 dserver member channel v1"
MIN_GROUP_KEY_LENGTH = 32  # the group key is the only secret: at least AES-256's strength
RANDOM_LENGTH = 32
KEY_LENGTH = 32  # AES-256
NONCE_LENGTH = 12  # GCM's 96-bit nonce
TAG_LENGTH = 16
CONFIRM_LENGTH = 32  # HMAC-SHA256

_HELLO = struct.Struct("!BBH16s32s")
HELLO_LENGTH = _HELLO.size  # 52
# Offsets under the hello diagram in the module docstring
VERSION_OFFSET = 0
ROLE_OFFSET = 1
RESERVED_OFFSET = 2
IDENTITY_OFFSET = 4
RANDOM_OFFSET = 20

_LENGTH = struct.Struct("!I")
LENGTH_PREFIX = _LENGTH.size

MAX_MESSAGE_LENGTH = messages.MAX_MESSAGE_LENGTH  # the largest plaintext: an INIT at its bounds
MAX_FRAME_LENGTH = MAX_MESSAGE_LENGTH + TAG_LENGTH  # the Length field's cap: 134_218_548
FRAME_OVERHEAD = _LENGTH.size + TAG_LENGTH  # what sealing adds to a message: 20 bytes

# The OKM's layout, in the order of the module docstring
_OKM = struct.Struct(
    f"{KEY_LENGTH}s{NONCE_LENGTH}s{KEY_LENGTH}s{NONCE_LENGTH}s{CONFIRM_LENGTH}s{CONFIRM_LENGTH}s"
)


class Role(enum.IntEnum):
    """Which end opened the TCP connection; on the wire in the hello's Role field."""

    INITIATOR = 1
    RESPONDER = 2


_ROLE_VALUES = frozenset(Role)
_PEER_ROLE = {Role.INITIATOR: Role.RESPONDER, Role.RESPONDER: Role.INITIATOR}


class State(enum.Enum):
    IDLE = "idle"  # start() not called yet
    AWAITING_HELLO = "awaiting_hello"  # our hello is out
    AWAITING_CONFIRM = "awaiting_confirm"  # keys derived, our confirm queued
    ESTABLISHED = "established"  # the peer's confirm verified: frames both ways
    CLOSED = "closed"  # for good; see Channel.close_reason


class Input(enum.Enum):
    START = "start"  # start(): send our hello
    DATA = "data"  # receive_data(): refused in IDLE, ignored in CLOSED
    HELLO = "hello"  # a well-formed peer hello arrived
    CONFIRM = "confirm"  # the peer's confirm verified
    FRAME = "frame"  # a frame was received and verified, or send() made one
    CLOSE = "close"  # a failure, or the end of the stream


_HANDSHAKE = (State.AWAITING_HELLO, State.AWAITING_CONFIRM)
_OPEN = (*_HANDSHAKE, State.ESTABLISHED)
TRANSITIONS: dict[tuple[State, Input], State] = {
    (State.IDLE, Input.START): State.AWAITING_HELLO,
    (State.AWAITING_HELLO, Input.HELLO): State.AWAITING_CONFIRM,
    (State.AWAITING_CONFIRM, Input.CONFIRM): State.ESTABLISHED,
    (State.ESTABLISHED, Input.FRAME): State.ESTABLISHED,
} | {(state, Input.CLOSE): State.CLOSED for state in _OPEN}


class CloseReason(enum.Enum):
    BAD_HELLO = "bad_hello"  # another version, the same role as ours, reserved bits set
    WRONG_GROUP_KEY = "wrong_group_key"  # the peer's confirm did not verify
    AUTHENTICATION_FAILED = "authentication_failed"  # a frame forged, replayed, reordered, cut
    FRAME_TOO_LONG = "frame_too_long"  # a Length above MAX_FRAME_LENGTH
    MALFORMED_MESSAGE = "malformed_message"  # authentic plaintext that is not a message
    TRUNCATED = "truncated"  # the stream ended inside a hello, confirm or frame
    END_OF_STREAM = "end_of_stream"  # the stream ended between frames


class ChannelStateError(Exception):
    """A local call the channel's state does not allow (send before established or after
    closed, start twice, data before start): the caller's bug, never the peer's doing."""

    def __init__(self, state: State, channel_input: Input, reason: CloseReason | None) -> None:
        why = f" ({reason.value})" if reason else ""
        super().__init__(f"member channel: {channel_input.value} not allowed in {state.value}{why}")
        self.state = state
        self.input = channel_input
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Established:
    """The peer proved it holds the group key; it says it is ``peer_identity``."""

    peer_identity: IPv6Address


@dataclass(frozen=True, slots=True)
class MessageReceived:
    message: messages.Message


@dataclass(frozen=True, slots=True)
class Closed:
    reason: CloseReason


Event = Established | MessageReceived | Closed


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SessionKeys:
    """One connection's keys, named by direction and end. ``repr`` names none of them."""

    initiator_key: bytes  # initiator -> responder
    initiator_nonce: bytes
    responder_key: bytes  # responder -> initiator
    responder_nonce: bytes
    initiator_confirm_key: bytes
    responder_confirm_key: bytes

    def __repr__(self) -> str:
        return "SessionKeys(<redacted>)"

    __str__ = __repr__


def hkdf_sha256(*, salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF with SHA-256 (extract then expand), through ``cryptography``."""
    return HKDF(algorithm=SHA256(), length=length, salt=salt, info=info).derive(ikm)


def session_keys(group_key: bytes, initiator_hello: bytes, responder_hello: bytes) -> SessionKeys:
    """The key schedule of the module docstring, from the two hellos as sent."""
    initiator_random = initiator_hello[RANDOM_OFFSET:HELLO_LENGTH]
    responder_random = responder_hello[RANDOM_OFFSET:HELLO_LENGTH]
    okm = hkdf_sha256(
        salt=initiator_random + responder_random,
        ikm=group_key,
        info=LABEL + initiator_hello + responder_hello,
        length=_OKM.size,
    )
    fields = (
        "initiator_key",
        "initiator_nonce",
        "responder_key",
        "responder_nonce",
        "initiator_confirm_key",
        "responder_confirm_key",
    )
    return SessionKeys(**dict(zip(fields, _OKM.unpack(okm), strict=True)))


def frame_nonce(nonce_base: bytes, sequence: int) -> bytes:
    """RFC 8446 5.3's per-record nonce: the sequence number, big-endian in 96 bits, XOR the base.
    ``to_bytes`` refuses a sequence past 2**96 rather than wrap into a reused nonce."""
    if sequence < 0 or len(nonce_base) != NONCE_LENGTH:
        raise ValueError("a frame nonce needs a 96-bit base and a sequence number from 0")
    # base XOR sequence as integers: a sequence of 2**96 or more makes the result too long
    # for to_bytes, which raises, as the base is below 2**96
    return (int.from_bytes(nonce_base, "big") ^ sequence).to_bytes(NONCE_LENGTH, "big")


class _Secret:
    """Holds the group key so that no dump of a channel's attributes (``vars``, a debugger, a
    traceback's locals) prints it."""

    __slots__ = ("value",)

    def __init__(self, value: bytes) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"<{len(self.value)} bytes redacted>"


class _Direction:
    """One direction's AEAD and implicit sequence number."""

    __slots__ = ("_aead", "_nonce_base", "sequence")

    def __init__(self, key: bytes, nonce_base: bytes) -> None:
        self._aead = AESGCM(key)
        self._nonce_base = nonce_base
        self.sequence = 0

    def seal(self, plaintext: bytes) -> bytes:
        prefix = _LENGTH.pack(len(plaintext) + TAG_LENGTH)
        nonce = frame_nonce(self._nonce_base, self.sequence)
        sealed = self._aead.encrypt(nonce, plaintext, prefix)
        self.sequence += 1
        return prefix + sealed

    def open(self, prefix: bytes, sealed: bytes) -> bytes:
        """The plaintext; raises InvalidTag. The sequence number moves only on success (after a
        failure the channel closes, so it is never used again)."""
        plaintext = self._aead.decrypt(frame_nonce(self._nonce_base, self.sequence), sealed, prefix)
        self.sequence += 1
        return plaintext


class Channel:
    """One end of a member channel. See the module docstring for the protocol.

    ``group_key``: the group's pre-shared key, at least :data:`MIN_GROUP_KEY_LENGTH` bytes.
    ``identity``: this member's own address. ``counters``: where close reasons are counted; pass
    one dict to all of a member's channels to total them (a fresh one by default)."""

    def __init__(
        self,
        *,
        role: Role,
        group_key: bytes,
        identity: IPv6Address,
        random_bytes: RandomBytes,
        counters: dict[str, int] | None = None,
    ) -> None:
        if not isinstance(group_key, bytes):
            raise TypeError("the group key must be bytes")
        if len(group_key) < MIN_GROUP_KEY_LENGTH:
            raise ValueError(
                f"the group key is {len(group_key)} bytes; at least {MIN_GROUP_KEY_LENGTH} needed"
            )
        self.role = role
        self.identity = identity
        self.counters = {} if counters is None else counters
        self.state = State.IDLE
        self.close_reason: CloseReason | None = None
        self.peer_identity: IPv6Address | None = None
        self._group_key = _Secret(group_key)
        self._random_bytes = random_bytes
        self._hello = b""
        self._buffer = bytearray()
        self._offset = 0  # bytes of _buffer already consumed
        self._outgoing = bytearray()
        self._sender: _Direction | None = None
        self._receiver: _Direction | None = None
        self._expected_confirm = b""
        self._claimed_identity = identity  # replaced by the peer's hello

    def __repr__(self) -> str:
        return (
            f"Channel(role={self.role.name}, identity={self.identity}, state={self.state.value}, "
            f"group_key={self._group_key!r})"
        )

    __str__ = __repr__

    # -- local calls ------------------------------------------------------------------------

    def start(self) -> bytes:
        """Our hello, to send first."""
        self._advance(Input.START)
        random = self._random_bytes(RANDOM_LENGTH)
        if not isinstance(random, bytes) or len(random) != RANDOM_LENGTH:
            raise ValueError(f"random_bytes({RANDOM_LENGTH}) must return {RANDOM_LENGTH} bytes")
        self._hello = _HELLO.pack(VERSION, self.role, 0, self.identity.packed, random)
        return self._hello

    def send(self, message: messages.Message) -> bytes:
        """The frame carrying ``message``, after anything still queued (our confirm) so the
        order on the wire is right. Raises :class:`ChannelStateError` unless established, and
        :class:`~mip6.wire.errors.EmitError` for a message that cannot be encoded."""
        return self.send_emitted(message.emit())

    def send_emitted(self, payload: bytes) -> bytes:
        """:meth:`send` for a message emitted already (``Message.emit``): a sender that
        queues messages before sealing them (frames are numbered in the order sealed)."""
        self._advance(Input.FRAME)
        assert self._sender is not None  # set with the keys, before ESTABLISHED
        frame = self._sender.seal(payload)
        return self.data_to_send() + frame

    def data_to_send(self) -> bytes:
        """Bytes that :meth:`receive_data` queued (our confirm, once the peer's hello is in);
        write them after every call to it, even one that ended in :class:`Closed` (the
        confirm, queued before a bad confirm from the peer closed us, tells that peer too)."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    # -- bytes from the peer ----------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the connection, in any pieces; ``b""`` means the peer closed
        its side. Returns what happened, in order; a :class:`Closed` is always last, and once
        closed the channel ignores everything."""
        if self.state is State.IDLE:
            # A peer's hello cannot be answered before ours is out.
            raise ChannelStateError(self.state, Input.DATA, None)
        if self.state is State.CLOSED:
            return []
        if not data:
            # A record cut short by the end of the stream is as bad as a forged one; the end
            # between frames is an ordinary close.
            cut = len(self._buffer) > self._offset or self.state in _HANDSHAKE
            return [self._close(CloseReason.TRUNCATED if cut else CloseReason.END_OF_STREAM)]
        events: list[Event] = []
        self._buffer += data
        while self.state is not State.CLOSED and self._step(events):
            pass
        del self._buffer[: self._offset]
        self._offset = 0
        return events

    def _step(self, events: list[Event]) -> bool:
        """Consume one hello, confirm or frame if it is all here; False when more is needed."""
        if self.state is State.AWAITING_HELLO:
            hello = self._take(HELLO_LENGTH)
            if hello is not None:
                self._peer_hello(hello, events)
            return hello is not None
        if self.state is State.AWAITING_CONFIRM:
            confirm = self._take(CONFIRM_LENGTH)
            if confirm is not None:
                self._peer_confirm(confirm, events)
            return confirm is not None
        return self._frame(events)

    def _take(self, length: int) -> bytes | None:
        if len(self._buffer) - self._offset < length:
            return None
        chunk = bytes(self._buffer[self._offset : self._offset + length])
        self._offset += length
        return chunk

    def _peer_hello(self, hello: bytes, events: list[Event]) -> None:
        version, role_value, reserved, identity, _ = _HELLO.unpack(hello)
        sender = Role(role_value) if role_value in _ROLE_VALUES else None
        # The role check also refuses our own hello reflected back to us.
        if version != VERSION or reserved or sender is not _PEER_ROLE[self.role]:
            events.append(self._close(CloseReason.BAD_HELLO))
            return
        if self.role is Role.INITIATOR:
            keys = session_keys(self._group_key.value, self._hello, hello)
            ours = (keys.initiator_key, keys.initiator_nonce, keys.initiator_confirm_key)
            theirs = (keys.responder_key, keys.responder_nonce, keys.responder_confirm_key)
            transcript = self._hello + hello
        else:
            keys = session_keys(self._group_key.value, hello, self._hello)
            ours = (keys.responder_key, keys.responder_nonce, keys.responder_confirm_key)
            theirs = (keys.initiator_key, keys.initiator_nonce, keys.initiator_confirm_key)
            transcript = hello + self._hello
        self._sender = _Direction(ours[0], ours[1])
        self._receiver = _Direction(theirs[0], theirs[1])
        self._outgoing += hmac.digest(ours[2], transcript, sha256)
        self._expected_confirm = hmac.digest(theirs[2], transcript, sha256)
        self._claimed_identity = IPv6Address(identity)
        self._advance(Input.HELLO)

    def _peer_confirm(self, confirm: bytes, events: list[Event]) -> None:
        if not hmac.compare_digest(confirm, self._expected_confirm):
            events.append(self._close(CloseReason.WRONG_GROUP_KEY))
            return
        self._advance(Input.CONFIRM)
        # Only now is the identity worth anything: a holder of the group key sent it.
        self.peer_identity = self._claimed_identity
        events.append(Established(self.peer_identity))

    def _frame(self, events: list[Event]) -> bool:
        available = len(self._buffer) - self._offset
        if available < LENGTH_PREFIX:
            return False
        (length,) = _LENGTH.unpack_from(self._buffer, self._offset)
        # Refused from the prefix alone: nothing is buffered or allocated for the frame.
        if length > MAX_FRAME_LENGTH:
            events.append(self._close(CloseReason.FRAME_TOO_LONG))
            return False
        if available < LENGTH_PREFIX + length:
            return False
        start = self._offset + LENGTH_PREFIX
        prefix = bytes(self._buffer[self._offset : start])
        sealed = bytes(self._buffer[start : start + length])
        self._offset = start + length
        assert self._receiver is not None  # set with the keys, before ESTABLISHED
        try:
            plaintext = self._receiver.open(prefix, sealed)
        except InvalidTag:
            events.append(self._close(CloseReason.AUTHENTICATION_FAILED))
            return False
        try:
            message = messages.parse(plaintext)
        except WireError:
            events.append(self._close(CloseReason.MALFORMED_MESSAGE))
            return False
        self._advance(Input.FRAME)
        events.append(MessageReceived(message))
        return True

    # -- state ------------------------------------------------------------------------------

    def _advance(self, channel_input: Input) -> None:
        target = TRANSITIONS.get((self.state, channel_input))
        if target is None:
            raise ChannelStateError(self.state, channel_input, self.close_reason)
        self.state = target

    def _close(self, reason: CloseReason) -> Closed:
        self._advance(Input.CLOSE)
        self.close_reason = reason
        name = f"closed_{reason.value}"
        self.counters[name] = self.counters.get(name, 0) + 1
        # Drop what a closed channel must never use: unread bytes, the keys. A confirm queued
        # before the close still goes out: it is how a peer with another key learns so.
        self._buffer.clear()
        self._offset = 0
        self._sender = self._receiver = None
        return Closed(reason)
