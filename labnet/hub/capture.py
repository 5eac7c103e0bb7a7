"""One link's capture file, written in batches: the hub records every packet twice (on the link
it arrived by and the link it left by), so this is on its per-packet path.

The format is :class:`mip6.wire.pcap.PcapWriter`'s: classic little-endian pcap 2.4, link type
229 (raw IPv6), microsecond timestamps, snaplen 262144 (so no IPv6 packet without a jumbogram is
ever cut). Records are appended to a ``bytearray`` and written with one ``os.write`` per
:data:`CHUNK_BYTES` or :meth:`Capture.flush`: one system call per few hundred packets instead of
two buffered writes per packet, which made ``PcapWriter.write`` ~1 us per packet here.

:class:`Capture` is the hub's capture without its C fast path (``HubServer(fast=False)``);
with it, :class:`labnet.hub.fast.FastCapture` writes the same file from a buffer in C.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Final

from mip6.wire.pcap import LINKTYPE_IPV6, PCAP_MAGIC_MICROSECONDS

CHUNK_BYTES: Final = 256 * 1024
SNAPLEN: Final = 262144
_FILE_HEADER: Final = struct.Struct("<IHHiIII")  # magic, version 2.4, zone, sigfigs, snaplen, type
_RECORD: Final = struct.Struct("<IIII")  # seconds, microseconds, captured length, original length
_pack_record: Final = _RECORD.pack
FILE_HEADER: Final = _FILE_HEADER.pack(PCAP_MAGIC_MICROSECONDS, 2, 4, 0, 0, SNAPLEN, LINKTYPE_IPV6)


def record_header(size: int, stamp_us: int) -> bytes:
    """The record header of a ``size``-byte packet stamped ``stamp_us`` (microseconds since the
    Unix epoch): made once for the two records of a forwarded packet, which differ only in the
    Hop Limit."""
    return _pack_record(stamp_us // 1_000_000, stamp_us % 1_000_000, size, size)


class Capture:
    """A pcap file at ``path``, created (truncated) at construction; :attr:`frames` counts the
    records. Call :meth:`close` to write what is buffered."""

    __slots__ = ("_fd", "buffer", "frames", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        # records not written yet
        self.buffer = bytearray(FILE_HEADER)
        self.frames = 0

    def record(self, packet: bytes | bytearray | memoryview, header: bytes) -> None:
        """Append ``packet`` after its record ``header`` (:func:`record_header`)."""
        buffer = self.buffer
        buffer += header
        buffer += packet
        self.frames += 1
        if len(buffer) >= CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the buffered records to the file."""
        buffer = self.buffer
        if buffer and self._fd >= 0:
            written = os.write(self._fd, buffer)
            while written < len(buffer):  # a regular file takes all at once but for signals
                written += os.write(self._fd, memoryview(buffer)[written:])
            buffer.clear()

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._fd >= 0:
            try:
                self.flush()
            finally:
                os.close(self._fd)
                self._fd = -1
