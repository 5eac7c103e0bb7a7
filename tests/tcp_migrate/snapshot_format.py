"""An independent Python reading of the snapshot format described in csrc/tcp_snapshot.h.

``decode`` turns a snapshot into an ordered dict of named fields (checking only the framing,
not the values); ``encode`` writes such a dict back with the length and the CRC-32 recomputed,
so tests can change one field and see how ``tcp_import`` judges it. Written from the header's
description, not from the C code, so the two check each other.
"""

from __future__ import annotations

import struct
import zlib

MAGIC = b"TCPM"
FLAG_IN_RECOVERY = 0x10
FLAG_TS_OK = 0x02
CC_STATE_WORDS = {0: 1}  # NewReno: bytes counted in congestion avoidance
TIMER_NAMES = ("t_rtx", "t_delack", "t_persist", "t_keepalive", "t_timewait")


class Reader:
    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise ValueError("runs past the body")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def le16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def le32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    def zigzag(self) -> int:
        z = self.varint()
        return (z >> 1) ^ -(z & 1)


def put_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def put_zigzag(value: int) -> bytes:
    return put_varint((value << 1) ^ (value >> 31) if value < 0 else value << 1)


# (name, kind) in order; kinds: bytes16, le16, u8, le32, varint, zigzag
FIXED = [
    ("local_addr", "bytes16"),
    ("remote_addr", "bytes16"),
    ("local_port", "le16"),
    ("remote_port", "le16"),
    ("state", "u8"),
    ("flags", "u8"),
    ("wscale", "u8"),
    ("cc_algo", "u8"),
    ("dupacks", "u8"),
    ("backoff", "u8"),
    ("ka_probes", "u8"),
    ("pending", "u8"),
    ("snd_una", "le32"),
    ("rcv_nxt", "le32"),
    ("snd_off", "varint"),
    ("rcv_off", "varint"),
    ("snd_nxt_delta", "varint"),
    ("snd_max_delta", "varint"),
    ("snd_wnd", "varint"),
    ("max_snd_wnd_delta", "varint"),
    ("snd_wl1_delta", "zigzag"),
    ("snd_wl2_delta", "zigzag"),
    ("rcv_adv_delta", "varint"),
    ("snd_mss", "varint"),
    ("rcv_mss", "varint"),
    ("srtt_ms", "varint"),
    ("rttvar_ms", "varint"),
    ("rto_ms", "varint"),
    ("cwnd", "varint"),
    ("ssthresh", "varint"),
]


def decode(blob: bytes) -> dict:
    if blob[:4] != MAGIC:
        raise ValueError("magic")
    fields: dict = {"version": blob[4], "format": blob[5]}
    length = struct.unpack_from("<I", blob, 6)[0]
    if length != len(blob) or zlib.crc32(blob[:-4]) != struct.unpack("<I", blob[-4:])[0]:
        raise ValueError("length or CRC")
    r = Reader(blob, 10, len(blob) - 4)
    for name, kind in FIXED:
        fields[name] = {
            "bytes16": lambda: r.take(16),
            "le16": r.le16,
            "u8": r.u8,
            "le32": r.le32,
            "varint": r.varint,
            "zigzag": r.zigzag,
        }[kind]()
    fields["cc_state"] = [r.varint() for _ in range(CC_STATE_WORDS.get(fields["cc_algo"], 0))]
    fields["recover_delta"] = r.zigzag()
    if fields["flags"] & FLAG_IN_RECOVERY:
        fields["snd_rxt_delta"] = r.varint()
    if fields["flags"] & FLAG_TS_OK:
        fields["ts_recent"] = r.le32()
        fields["tsval"] = r.le32()
        fields["last_ack_lag"] = r.varint()
    timers = r.u8()
    fields["timers"] = {
        name: r.varint() for bit, name in enumerate(TIMER_NAMES) if timers & (1 << bit)
    }
    fields["timer_bits_extra"] = timers & ~0x1F
    fields["sack"] = [(r.varint(), r.varint()) for _ in range(r.u8())]
    present, missing, skip = r.varint(), r.varint(), r.varint()
    fields["snd_missing"], fields["snd_skip"] = missing, skip
    fields["snd_data"] = r.take(present)
    fields["rcv_data"] = r.take(r.varint())
    fields["ooo"] = [(r.varint(), r.take(r.varint())) for _ in range(r.u8())]
    if r.pos != r.end:
        raise ValueError("trailing bytes")
    return fields


def encode(fields: dict) -> bytes:
    body = bytearray()
    for name, kind in FIXED:
        value = fields[name]
        if kind == "bytes16":
            body += value
        elif kind == "le16":
            body += struct.pack("<H", value)
        elif kind == "u8":
            body.append(value)
        elif kind == "le32":
            body += struct.pack("<I", value % 2**32)
        elif kind == "varint":
            body += put_varint(value)
        else:
            body += put_zigzag(value)
    for word in fields["cc_state"]:
        body += put_varint(word)
    body += put_zigzag(fields["recover_delta"])
    if fields["flags"] & FLAG_IN_RECOVERY:
        body += put_varint(fields.get("snd_rxt_delta", 0))
    if fields["flags"] & FLAG_TS_OK:
        body += struct.pack("<II", fields.get("ts_recent", 0), fields.get("tsval", 0))
        body += put_varint(fields.get("last_ack_lag", 0))
    bits = fields.get("timer_bits_extra", 0)
    for bit, name in enumerate(TIMER_NAMES):
        if name in fields["timers"]:
            bits |= 1 << bit
    body.append(bits)
    for name in TIMER_NAMES:
        if name in fields["timers"]:
            body += put_varint(fields["timers"][name])
    body.append(len(fields["sack"]))
    for offset, length in fields["sack"]:
        body += put_varint(offset) + put_varint(length)
    body += put_varint(len(fields["snd_data"]))
    body += put_varint(fields["snd_missing"]) + put_varint(fields["snd_skip"])
    body += fields["snd_data"]
    body += put_varint(len(fields["rcv_data"])) + fields["rcv_data"]
    body.append(len(fields["ooo"]))
    for offset, data in fields["ooo"]:
        body += put_varint(offset) + put_varint(len(data)) + data
    return frame(fields["version"], fields["format"], bytes(body))


def frame(version: int, format_flags: int, body: bytes) -> bytes:
    head = MAGIC + bytes([version, format_flags]) + struct.pack("<I", 10 + len(body) + 4)
    unsigned = head + body
    return unsigned + struct.pack("<I", zlib.crc32(unsigned))


def refresh(blob: bytes) -> bytes:
    """The same bytes with the length field and the CRC recomputed."""
    unsigned = blob[:6] + struct.pack("<I", len(blob)) + blob[10:-4]
    return unsigned + struct.pack("<I", zlib.crc32(unsigned))
