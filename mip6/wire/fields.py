"""Small helpers shared by the codecs: bounds checks that raise our errors, not struct.error."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv6Address

from mip6.wire.errors import EmitError, Truncated


def need(buf: bytes, offset: int, length: int, what: str) -> None:
    """Raise ``Truncated`` unless ``buf[offset:offset+length]`` is entirely present."""
    if offset + length > len(buf):
        raise Truncated(f"{what} needs {length} bytes, {max(len(buf) - offset, 0)} left", offset)


def check_uint(name: str, value: int, bits: int) -> None:
    """Raise ``EmitError`` unless ``value`` fits an unsigned field of ``bits`` bits."""
    if not 0 <= value < (1 << bits):
        raise EmitError(f"{name}={value} does not fit in {bits} bits")


def address(buf: bytes, offset: int) -> IPv6Address:
    """The IPv6 address stored in the 16 bytes at ``offset`` (caller checked the length)."""
    return IPv6Address(bytes(buf[offset : offset + 16]))


def check_addresses(source: bytes, destination: bytes) -> None:
    """Raise ``EmitError`` unless both pseudo-header addresses are 16 bytes."""
    if len(source) != 16 or len(destination) != 16:
        raise EmitError("pseudo-header source and destination must be 16-byte IPv6 addresses")


def check_overrides(
    overrides: Mapping[str, int] | None, allowed: tuple[str, ...]
) -> dict[str, int]:
    """``overrides`` as a dict, refusing names that are not raw fields of the header."""
    if not overrides:
        return {}
    unknown = set(overrides) - set(allowed)
    if unknown:
        raise EmitError(f"no such field to override: {', '.join(sorted(unknown))}")
    return dict(overrides)
