"""The tester: the node the implementation under test (IUT) talks to, speaking only packets.

It plays a mobile node (a home address and a care-of address) towards a correspondent, a
mobile node towards a home agent, or a home agent and correspondent towards a mobile node.
Everything here is written from the RFCs, sharing no code with ``mip6.wire`` or ``mip6.core``
(so a codec or return-routability bug in the project cannot hide itself):

* packets are built and dissected with scapy, but every upper-layer checksum is computed
  here (RFC 8200 8.1, RFC 3775 6.3): scapy's Mobility Header checksum picks the wrong
  pseudo-header source when a PadN precedes the Home Address option, and its default option
  lengths for Nonce Indices and Binding Authorization Data are wrong (16; RFC 3775 6.2.6 and
  6.2.7 say 4 and 12), so both are always set explicitly;
* the return routability math (RFC 3775 5.2.5, 6.2.7) is plain ``hmac``/``hashlib``.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import Any

from scapy.layers.inet6 import (
    HAO,
    MIP6MH_BU,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
    MIP6MH_CoTI,
    MIP6MH_HoTI,
    MIP6OptBindingAuthData,
    MIP6OptNonceIndices,
    MIP6OptUnknown,
)
from scapy.packet import Packet, Raw

from conformance.transport import Transport

MOBILITY = 135
COOKIE_HA = b"\x48\x41\x2d\x63\x6f\x6f\x6b\x31"  # "HA-cook1"
ICMPV6 = 58
NO_NEXT_HEADER = 59
_EXTENSIONS = (0, 43, 60)  # hop-by-hop, routing, destination options (no fragments here)


# -- RFC 1071 / RFC 8200 8.1 checksums ----------------------------------------------------------


def internet_checksum(data: bytes) -> int:
    """RFC 1071: one's complement of the one's complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass(frozen=True, slots=True)
class Chain:
    """Where a packet's upper layer starts and the pseudo-header addresses it uses."""

    upper_protocol: int
    offset: int
    pseudo_source: bytes  # the Home Address option's address if present (RFC 3775 6.3)
    pseudo_destination: bytes  # a type 2 routing header's address while segments are left
    home_address_option: bytes | None
    routing_type2: bytes | None


def walk(data: bytes) -> Chain:
    """Walk the IPv6 header chain on our own (RFC 8200 4)."""
    source, destination = data[8:24], data[24:40]
    next_header, offset = data[6], 40
    hao = rh2 = None
    while next_header in _EXTENSIONS and offset + 2 <= len(data):
        length = (data[offset + 1] + 1) * 8
        if next_header == 60:
            i = offset + 2
            while i < offset + length:
                if data[i] == 0:
                    i += 1
                    continue
                if data[i] == 0xC9 and i + 18 <= len(data):
                    hao = data[i + 2 : i + 18]
                i += 2 + data[i + 1]
        elif next_header == 43 and data[offset + 2] == 2:
            rh2 = data[offset + 8 : offset + 24]
            if data[offset + 3] > 0:
                destination = rh2
        next_header, offset = data[offset], offset + length
    return Chain(next_header, offset, hao or source, destination, hao, rh2)


def upper_checksum(data: bytes, chain: Chain | None = None) -> int:
    """The checksum the packet's upper layer should carry (over a zeroed checksum field)."""
    chain = chain or walk(data)
    segment = bytearray(data[chain.offset :])
    at = {MOBILITY: 4, ICMPV6: 2}.get(chain.upper_protocol)
    if at is not None:
        segment[at : at + 2] = b"\0\0"
    pseudo = (
        chain.pseudo_source
        + chain.pseudo_destination
        + struct.pack("!I3xB", len(segment), chain.upper_protocol)
    )
    return internet_checksum(pseudo + bytes(segment))


def checksum_ok(data: bytes) -> bool:
    chain = walk(data)
    at = {MOBILITY: 4, ICMPV6: 2}.get(chain.upper_protocol, 0)
    carried = int.from_bytes(data[chain.offset + at : chain.offset + at + 2], "big")
    return carried == upper_checksum(data, chain)


def fill_checksum(data: bytes, *, corrupt: bool = False) -> bytes:
    """Write the upper layer's checksum (RFC 8200 8.1, HAO source, RH2 destination)."""
    chain = walk(data)
    at = {MOBILITY: 4, ICMPV6: 2}.get(chain.upper_protocol)
    if at is None:
        return data
    value = upper_checksum(data, chain) ^ (0x5A5A if corrupt else 0)
    out = bytearray(data)
    out[chain.offset + at : chain.offset + at + 2] = value.to_bytes(2, "big")
    return bytes(out)


# -- RFC 3775 5.2.5 / 6.2.7 return routability math ---------------------------------------------


def keygen_token(kcn: bytes, address: bytes, nonce: bytes, which: int) -> bytes:
    """First(64, HMAC_SHA1(Kcn, address | nonce | 0 (home) or 1 (care-of))): what a
    correspondent computes; the tester only uses it to check its own vectors."""
    return hmac.new(kcn, address + nonce + bytes([which]), hashlib.sha1).digest()[:8]


def kbm(home_token: bytes, care_of_token: bytes | None) -> bytes:
    """Kbm = SHA1(home keygen token | care-of keygen token), or SHA1(home token) alone when
    deregistering from home (RFC 3775 5.2.5, 6.2.7)."""
    return hashlib.sha1(home_token + (care_of_token or b"")).digest()


def authenticator(
    key: bytes, care_of: IPv6Address, correspondent: IPv6Address, mobility_data: bytes
) -> bytes:
    """First(96, HMAC_SHA1(Kbm, care-of address | correspondent | MH Data)) (RFC 3775 6.2.7);
    ``mobility_data`` is the Mobility Header with a zero checksum and without the 12
    authenticator bytes."""
    message = care_of.packed + correspondent.packed + mobility_data
    return hmac.new(key, message, hashlib.sha1).digest()[:12]


def mobility_data(mh: bytes) -> bytes:
    return mh[:4] + b"\0\0" + mh[6:-12]


# -- describing packets for the report -------------------------------------------------------------

_MH_NAMES = {0: "BRR", 1: "HoTI", 2: "CoTI", 3: "HoT", 4: "CoT", 5: "BU", 6: "BA", 7: "BE"}


def _mh_fields(mh: bytes) -> str:
    kind = mh[2]
    name = _MH_NAMES.get(kind, f"MH type {kind}")
    extra = [] if mh[0] == NO_NEXT_HEADER else [f"payload-proto={mh[0]}"]
    if kind == 5 and len(mh) >= 12:
        sequence, flags, lifetime = struct.unpack("!HBxH", mh[6:12])
        bits = "".join(
            b for b, m in (("A", 0x80), ("H", 0x40), ("L", 0x20), ("K", 0x10)) if flags & m
        )
        extra += [f"seq={sequence}", f"flags={bits or '-'}", f"lifetime={lifetime * 4}s"]
    elif kind == 6 and len(mh) >= 12:
        status, _, sequence, lifetime = struct.unpack("!BBHH", mh[6:12])
        extra += [f"status={status}", f"seq={sequence}", f"lifetime={lifetime * 4}s"]
    elif kind == 7 and len(mh) >= 24:
        extra += [f"status={mh[6]}", f"home={IPv6Address(mh[8:24])}"]
    elif kind in (3, 4) and len(mh) >= 24:
        extra += [f"index={int.from_bytes(mh[6:8], 'big')}", f"cookie={mh[8:16].hex()}"]
    elif kind in (1, 2) and len(mh) >= 16:
        extra += [f"cookie={mh[8:16].hex()}"]
    if b"\x05\x0c" == mh[-14:-12] and kind in (5, 6):
        extra.append("auth")
    extra.append(f"hdrlen={mh[1]}")
    return " ".join([name, *extra])


def describe(data: bytes, depth: int = 0) -> str:
    """One line: addresses, extension headers (HAO, RH2), the upper layer with its fields."""
    if len(data) < 40:
        return f"{len(data)} bytes (not IPv6)"
    chain = walk(data)
    parts = [f"{IPv6Address(data[8:24])} > {IPv6Address(data[24:40])}"]
    if chain.home_address_option is not None:
        parts.append(f"HAO={IPv6Address(chain.home_address_option)}")
    if chain.routing_type2 is not None:
        parts.append(f"RH2={IPv6Address(chain.routing_type2)}")
    upper = data[chain.offset :]
    if chain.upper_protocol == MOBILITY and len(upper) >= 6:
        parts.append(_mh_fields(upper))
    elif chain.upper_protocol == 41 and depth == 0:
        parts.append(f"IPv6-in-IPv6 [{describe(upper, 1)}]")
    else:
        try:
            text = IPv6(data).payload.summary()
            while text.startswith("IPv6Ext"):
                text = text.split(" / ", 1)[1] if " / " in text else text
                if " / " not in text:
                    break
        except Exception:  # scapy may refuse what the IUT sent; say so instead
            text = f"next header {chain.upper_protocol}, {len(upper)} bytes"
        parts.append(text)
    if chain.upper_protocol in (MOBILITY, ICMPV6) and not checksum_ok(data):
        parts.append("BAD-CHECKSUM")
    return " ".join(parts)


# -- received packets ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    time: float
    data: bytes

    @property
    def pkt(self) -> Packet:
        return IPv6(self.data)

    @property
    def chain(self) -> Chain:
        return walk(self.data)

    @property
    def mh_bytes(self) -> bytes | None:
        chain = self.chain
        return self.data[chain.offset :] if chain.upper_protocol == MOBILITY else None

    @property
    def mh_type(self) -> int | None:
        mh = self.mh_bytes
        return mh[2] if mh is not None and len(mh) > 2 else None

    def layer(self, cls: type[Packet]) -> Packet | None:
        pkt = self.pkt
        return pkt[cls] if cls in pkt else None

    @property
    def source(self) -> IPv6Address:
        return IPv6Address(self.data[8:24])

    @property
    def destination(self) -> IPv6Address:
        return IPv6Address(self.data[24:40])

    @property
    def final_destination(self) -> IPv6Address:
        return IPv6Address(self.chain.pseudo_destination)

    def summary(self) -> str:
        return f"t={self.time:.3f} {describe(self.data)}"


# -- the tester ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delay:
    """In a stimulus: let this many seconds pass (on the IUT's clock) before the next packet."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Act:
    """In a stimulus: ask the IUT to act through the IUT control hook (``move``,
    ``route_optimize``, ``register``; see :mod:`conformance.iut`)."""

    action: str
    address: IPv6Address | None = None


@dataclass(slots=True)
class Tokens:
    home_index: int | None = None
    home_token: bytes | None = None
    care_of_index: int | None = None
    care_of_token: bytes | None = None


@dataclass(slots=True)
class Tester:
    """The tester's addresses, its return routability state and a log of the exchange.

    ``home_address``/``care_of_address`` are the mobile node it plays (towards a correspondent
    or home agent); ``peer`` is the IUT's address; ``correspondent`` an address it plays as a
    correspondent (towards a home agent or mobile node)."""

    transport: Transport
    peer: IPv6Address
    home_address: IPv6Address
    care_of_address: IPv6Address
    correspondent: IPv6Address | None = None
    home_agent: IPv6Address | None = None
    tokens: Tokens = field(default_factory=Tokens)
    sequence: int = 0
    sent_log: list[tuple[float, str]] = field(default_factory=list)
    received_log: list[Received] = field(default_factory=list)
    cookie_counter: int = 0
    iut: Any = None  # the IUT control hook (conformance.iut.IutControl)
    # How long until the IUT has expired a nonce: MAX_NONCE_LIFETIME (240 s, RFC 3775 section
    # 12) plus a nonce interval, unless the target runs the IUT with a shorter constant.
    nonce_expiry_wait: float = 300.0
    memo: dict[str, Any] = field(default_factory=dict)  # what preconditions learned

    # -- I/O ---------------------------------------------------------------------------------

    def send(self, data: bytes | Packet, note: str = "") -> None:
        raw = bytes(data)
        line = describe(raw) + (f"  [{note}]" if note else "")
        self.sent_log.append((self.transport.now(), line))
        self.transport.send(raw)

    def receive(self, timeout: float) -> list[Received]:
        got = [Received(at, data) for at, data in self.transport.receive(timeout)]
        self.received_log.extend(got)
        return got

    def exchange(
        self, items: Iterable[bytes | Packet | Delay | Act], timeout: float
    ) -> list[Received]:
        """Send the stimulus (honouring delays and IUT actions) and collect everything for
        ``timeout`` more."""
        got: list[Received] = []
        for item in items:
            if isinstance(item, Delay):
                got += self.receive(item.seconds)
            elif isinstance(item, Act):
                self.act(item)
            else:
                self.send(item)
        return got + self.receive(timeout)

    def act(self, act: Act) -> None:
        where = f" {act.address}" if act.address is not None else ""
        self.sent_log.append((self.transport.now(), f"IUT control: {act.action}{where}"))
        if act.action == "move":
            self.iut.move(act.address)
        elif act.action == "route_optimize":
            self.iut.start_route_optimization(act.address)
        else:
            self.iut.register()

    # -- building ------------------------------------------------------------------------------

    def next_cookie(self) -> bytes:
        self.cookie_counter += 1
        return struct.pack("!II", 0xC0FFEE00, self.cookie_counter)

    def hoti(
        self,
        cookie: bytes,
        *,
        hao: bool = False,
        rh2: bool = False,
        corrupt_checksum: bool = False,
        source: IPv6Address | None = None,
        destination: IPv6Address | None = None,
    ) -> bytes:
        """RFC 3775 6.1.3: HoTI from the home address (to a correspondent it travels the
        reverse tunnel; the correspondent sees the home address as source)."""
        mh = MIP6MH_HoTI(cookie=cookie, cksum=0)
        return self._test_init(
            mh, source or self.home_address, destination, hao, rh2, corrupt_checksum
        )

    def coti(
        self,
        cookie: bytes,
        *,
        hao: bool = False,
        rh2: bool = False,
        corrupt_checksum: bool = False,
        source: IPv6Address | None = None,
    ) -> bytes:
        mh = MIP6MH_CoTI(cookie=cookie, cksum=0)
        return self._test_init(mh, source or self.care_of_address, None, hao, rh2, corrupt_checksum)

    def _test_init(
        self,
        mh: Packet,
        source: IPv6Address,
        destination: IPv6Address | None,
        hao: bool,
        rh2: bool,
        corrupt: bool,
    ) -> bytes:
        pkt: Packet = IPv6(src=str(source), dst=str(destination or self.peer))
        if rh2:
            pkt = pkt / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[str(self.peer)])
        if hao:
            pkt = pkt / IPv6ExtHdrDestOpt(options=[HAO(hoa=str(self.home_address))])
        return fill_checksum(bytes(pkt / mh), corrupt=corrupt)

    def binding_update(
        self,
        *,
        sequence: int,
        lifetime_units_4s: int = 10,
        ack: bool = True,
        home: bool = False,
        nonce_indices: bool = True,
        authorization: bool = True,
        bad_authenticator: bool = False,
        corrupt_checksum: bool = False,
        care_of: IPv6Address | None = None,
        home_address: IPv6Address | None = None,
        from_home: bool = False,
        destination: IPv6Address | None = None,
        header_len: int | None = None,
        payload_proto: int | None = None,
        piggyback: bytes = b"",
        home_index: int | None = None,
        care_of_index: int | None = None,
        unknown_option: bool = False,
    ) -> bytes:
        """A Binding Update (RFC 3775 6.1.7) from the care-of address with a Home Address
        option, or from the home address when ``from_home`` (deregistration from home:
        care-of address = home address, Kbm from the home keygen token alone, 5.2.6).
        ``piggyback``: bytes after the Mobility Header, in the IPv6 payload (the payload a
        Payload Proto other than 59 announces, 6.1.1). ``unknown_option``: first, an option
        of type 200, which no RFC defines (6.2.1: the receiver skips it)."""
        hoa = home_address or self.home_address
        coa = hoa if from_home else (care_of or self.care_of_address)
        dst = destination or self.peer
        flags = ("A" if ack else "") + ("H" if home else "")
        options: list[Packet] = []
        t = self.tokens
        if unknown_option:
            options.append(MIP6OptUnknown(otype=200, olen=6, odata=bytes(6)))
        if nonce_indices:
            options.append(
                MIP6OptNonceIndices(
                    olen=4,
                    hni=t.home_index if home_index is None else home_index,
                    coni=(t.care_of_index or 0) if care_of_index is None else care_of_index,
                )
            )
        if authorization:
            options.append(MIP6OptBindingAuthData(olen=12, authenticator=0))
        mh = bytearray(
            bytes(
                MIP6MH_BU(
                    seq=sequence & 0xFFFF,
                    flags=flags,
                    mhtime=lifetime_units_4s,
                    cksum=0,
                    options=options,
                )
            )
        )
        if payload_proto is not None:
            mh[0] = payload_proto
        if header_len is not None:
            mh[1] = header_len
        if authorization:
            assert t.home_token is not None, "binding update needs a home keygen token"
            key = kbm(t.home_token, None if from_home else t.care_of_token)
            auth = authenticator(key, coa, dst, mobility_data(bytes(mh)))
            if bad_authenticator:
                auth = bytes([auth[0] ^ 0xFF]) + auth[1:]
            mh[-12:] = auth
        pkt: Packet = IPv6(src=str(coa), dst=str(dst))
        if coa != hoa:
            pkt = pkt / IPv6ExtHdrDestOpt(options=[HAO(hoa=str(hoa))])
        data = bytes(pkt / Raw(bytes(mh) + piggyback))
        # the Raw payload needs Next Header 135 in the header before it
        data = _set_last_next_header(data, MOBILITY)
        return fill_checksum(data, corrupt=corrupt_checksum)

    def echo_request(
        self, *, hao: bool = True, source: IPv6Address | None = None, sequence: int = 1
    ) -> bytes:
        """ICMPv6 Echo Request from the care-of address carrying a Home Address option
        (RFC 3775 6.3): a correspondent accepts it only with a matching binding (9.3.1)."""
        pkt: Packet = IPv6(src=str(source or self.care_of_address), dst=str(self.peer))
        if hao:
            pkt = pkt / IPv6ExtHdrDestOpt(options=[HAO(hoa=str(self.home_address))])
        pkt = pkt / ICMPv6EchoRequest(id=0x6D36, seq=sequence, data=b"conformance", cksum=0)
        return fill_checksum(bytes(pkt))

    def raw_mobility(self, mh: bytes, *, source: IPv6Address | None = None) -> bytes:
        """Any Mobility Header bytes in a bare IPv6 packet (checksum filled here)."""
        pkt = IPv6(src=str(source or self.care_of_address), dst=str(self.peer), nh=MOBILITY)
        return fill_checksum(bytes(pkt / Raw(mh)))

    # -- procedures ------------------------------------------------------------------------------

    def return_routability(self, *, home: bool = True, care_of: bool = True) -> bool:
        """HoTI/CoTI and collect the tokens (RFC 3775 5.2.5). True when all answers came."""
        wanted: dict[int, bytes] = {}
        packets = []
        if home:
            cookie = self.next_cookie()
            wanted[3] = cookie
            packets.append(self.hoti(cookie))
        if care_of:
            cookie = self.next_cookie()
            wanted[4] = cookie
            packets.append(self.coti(cookie))
        for got in self.exchange(packets, 2.0):
            mh = got.mh_bytes
            kind = got.mh_type
            # HoT / CoT (RFC 3775 6.1.5, 6.1.6): index(16) at 6, cookie(64) at 8, token(64) at 16
            if kind not in wanted or mh is None or len(mh) < 24 or not checksum_ok(got.data):
                continue
            if mh[8:16] != wanted[kind]:
                continue
            index, token = int.from_bytes(mh[6:8], "big"), mh[16:24]
            if kind == 3:
                self.tokens.home_index, self.tokens.home_token = index, token
            else:
                self.tokens.care_of_index, self.tokens.care_of_token = index, token
            del wanted[kind]
        return not wanted

    def expected_kbm(self, *, from_home: bool = False) -> bytes:
        assert self.tokens.home_token is not None
        return kbm(self.tokens.home_token, None if from_home else self.tokens.care_of_token)

    def ba_authenticator_ok(self, got: Received, *, from_home: bool = False) -> bool:
        """RFC 3775 6.2.7: the BA's Binding Authorization Data verifies with Kbm, computed
        over care-of address | correspondent | BA (checksum zero, authenticator cut off)."""
        mh = got.mh_bytes
        if mh is None or len(mh) < 14 or mh[-14] != 5 or mh[-13] != 12:
            return False
        care_of = self.home_address if from_home else self.care_of_address
        expected = authenticator(
            self.expected_kbm(from_home=from_home), care_of, self.peer, mobility_data(mh)
        )
        return expected == mh[-12:]


def _set_last_next_header(data: bytes, protocol: int) -> bytes:
    """scapy writes Next Header 59 before a Raw payload; point the last header at ``protocol``."""
    out = bytearray(data)
    position, next_header, offset = 6, out[6], 40
    while next_header in _EXTENSIONS:
        position = offset
        next_header, offset = out[offset], offset + (out[offset + 1] + 1) * 8
    out[position] = protocol
    return bytes(out)


def ba_fields(got: Received) -> tuple[int, int, int, int] | None:
    """(status, K flag, sequence, lifetime in 4 s units) of a BA, read straight off the wire
    (RFC 3775 6.1.8)."""
    mh = got.mh_bytes
    if mh is None or len(mh) < 12 or mh[2] != 6:
        return None
    status, flags, sequence, lifetime = struct.unpack("!BBHH", mh[6:12])
    return status, flags >> 7, sequence, lifetime


def be_fields(got: Received) -> tuple[int, IPv6Address] | None:
    """(status, home address) of a Binding Error (RFC 3775 6.1.9)."""
    mh = got.mh_bytes
    if mh is None or len(mh) < 24 or mh[2] != 7:
        return None
    return mh[6], IPv6Address(mh[8:24])


def tunnel(outer_source: IPv6Address, outer_destination: IPv6Address, inner: bytes) -> bytes:
    """RFC 2473 3: the inner packet unchanged behind an outer IPv6 header, Next Header 41."""
    header = IPv6(src=str(outer_source), dst=str(outer_destination), nh=41, plen=len(inner))
    return bytes(header) + inner


def icmp_packet(source: IPv6Address, destination: IPv6Address, body: Packet, **kw: object) -> bytes:
    """An ICMPv6 message (scapy layer) with our own checksum (over the HAO source and RH2
    destination when ``hao=`` or ``rh2=`` are given)."""
    pkt: Packet = IPv6(src=str(source), dst=str(destination))
    if kw.get("rh2") is not None:
        pkt = pkt / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[str(kw["rh2"])])
    if kw.get("hao") is not None:
        pkt = pkt / IPv6ExtHdrDestOpt(options=[HAO(hoa=str(kw["hao"]))])
    return fill_checksum(bytes(pkt / body))
