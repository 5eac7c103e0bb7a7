"""Type-length-value options shared by IPv6 Hop-by-Hop/Destination Options (RFC 8200 4.2) and
mobility options (RFC 3775 6.2): both number Pad1 as 0 and PadN as 1, both state alignment as
``xn+y`` (the option's Type byte sits ``y`` bytes past a multiple of ``x`` counted from the start
of the enclosing header), and both are parsed strictly the same way.

Padding is part of the option list, exactly as on the wire: ``parse`` keeps every Pad1 and PadN
it reads so that ``emit(parse(b)) == b`` for every valid ``b``, and a decoder shows what was sent.
Code that builds packets calls :func:`aligned` to insert the padding the alignment rules require;
``emit`` then checks those rules and raises ``EmitError`` rather than send a misaligned option.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, Protocol

from mip6.wire.errors import EmitError, Malformed, Truncated

PAD1 = 0
PADN = 1


class TlvOption(Protocol):
    """What a concrete option offers to the generic parser and emitter."""

    @property
    def option_type(self) -> int: ...

    alignment: ClassVar[tuple[int, int]]

    def emit_data(self) -> bytes: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Pad1:
    """A single zero byte of padding (RFC 8200 4.2, RFC 3775 6.2.2); it has no length byte."""

    option_type: ClassVar[int] = PAD1
    alignment: ClassVar[tuple[int, int]] = (1, 0)

    def emit_data(self) -> bytes:  # never called: Pad1 is emitted as one byte
        return b""


@dataclass(frozen=True, slots=True, kw_only=True)
class PadN:
    """Two or more bytes of padding. ``data`` is normally zeros; receivers ignore it."""

    option_type: ClassVar[int] = PADN
    alignment: ClassVar[tuple[int, int]] = (1, 0)
    data: bytes = b""

    def emit_data(self) -> bytes:
        return self.data


def pad(length: int) -> tuple[Pad1 | PadN, ...]:
    """The canonical padding of ``length`` bytes: nothing, one Pad1, or one PadN."""
    if length == 0:
        return ()
    if length == 1:
        return (Pad1(),)
    return (PadN(data=bytes(length - 2)),)


def option_size(option: TlvOption) -> int:
    if isinstance(option, Pad1):
        return 1
    return 2 + len(option.emit_data())


def aligned(
    options: Iterable[TlvOption], *, start: int, multiple: int = 8
) -> tuple[TlvOption, ...]:
    """``options`` with the padding their alignment rules need, and trailing padding so that the
    enclosing header (whose options begin ``start`` bytes into it) ends on ``multiple`` bytes.
    Existing padding in ``options`` is dropped first so the result is canonical."""
    out: list[TlvOption] = []
    offset = start
    for option in options:
        if isinstance(option, Pad1 | PadN):
            continue
        x, y = option.alignment
        gap = (y - offset) % x
        out.extend(pad(gap))
        offset += gap
        out.append(option)
        offset += option_size(option)
    out.extend(pad(-offset % multiple))
    return tuple(out)


def emit_options(options: Iterable[TlvOption], *, start: int) -> bytes:
    """The options as bytes; ``start`` is where they begin inside their header (for alignment)."""
    parts: list[bytes] = []
    offset = start
    for option in options:
        if isinstance(option, Pad1):
            parts.append(b"\x00")
            offset += 1
            continue
        x, y = option.alignment
        if offset % x != y % x:
            raise EmitError(
                f"option type {option.option_type} at header offset {offset} breaks its "
                f"{x}n+{y} alignment rule"
            )
        data = option.emit_data()
        if len(data) > 255:
            raise EmitError(
                f"option type {option.option_type} data of {len(data)} bytes exceeds 255"
            )
        parts.append(bytes((option.option_type, len(data))) + data)
        offset += 2 + len(data)
    return b"".join(parts)


def parse_options(
    buf: bytes,
    start: int,
    end: int,
    decode: Callable[[int, bytes, int], TlvOption],
    *,
    header_start: int,
) -> tuple[TlvOption, ...]:
    """Parse the options in ``buf[start:end]``. ``decode(option_type, data, offset)`` builds one
    option that is not padding (``offset`` is where its Type byte is, for error reports).

    An option that breaks its own ``xn+y`` alignment rule, counted from ``header_start``, is
    malformed: the rule is part of the option's format (RFC 3775 6.2, "alignment requirement"),
    and refusing it here keeps every parsed ``Repr`` emittable as it came."""
    options: list[TlvOption] = []
    offset = start
    while offset < end:
        option_type = buf[offset]
        if option_type == PAD1:
            options.append(Pad1())
            offset += 1
            continue
        if offset + 2 > end:
            raise Truncated("option length byte missing", offset + 1, "opt_data_len")
        length = buf[offset + 1]
        data_end = offset + 2 + length
        if data_end > end:
            raise Malformed(
                f"option type {option_type} length {length} overruns its header",
                offset + 1,
                "opt_data_len",
            )
        data = bytes(buf[offset + 2 : data_end])
        if option_type == PADN:
            options.append(PadN(data=data))
        else:
            option = decode(option_type, data, offset)
            x, y = option.alignment
            if (offset - header_start) % x != y % x:
                raise Malformed(
                    f"option type {option_type} breaks its {x}n+{y} alignment rule",
                    offset,
                    "alignment",
                )
            options.append(option)
        offset = data_end
    return tuple(options)
