"""Manually keyed SAs (RFC 3776 4.1: "Manual configuration of IPsec security associations MUST
be supported") from a node's YAML configuration, already loaded into plain Python values.

The block is the same on the mobile node and on its home agent (copy it to both); the node's
role decides which SAs send and which receive::

    ipsec:
      algorithm: aes-gcm-16          # or aes-cbc-hmac-sha1-96; default for the pairs below
      pairs:
        - home_address: 2001:db8:1::5
          home_agent: 2001:db8:1::1
          tunnel_all: false          # RFC 3776 5.2.4: protect every tunnelled packet too
          binding_update:          {spi: 0x1001, encryption_key: "0x<40 hex digits>"}
          binding_acknowledgement: {spi: 0x1002, encryption_key: "0x..."}
          home_test_init:          {spi: 0x1003, encryption_key: "0x..."}
          home_test:               {spi: 0x1004, encryption_key: "0x..."}

With ``aes-cbc-hmac-sha1-96`` every SA also takes ``authentication_key`` (20 bytes). Keys must
be quoted strings: YAML 1.1 reads an unquoted ``0x0012...`` as an integer and drops its leading
zeros. A home agent also gets :func:`~.policy.home_registration_guard` entries for the
``home_agent`` addresses, so an unprotected home registration is dropped even from a home
address without SAs. Errors (:class:`IpsecConfigError`) name the dotted key and never a key's
value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import AddressValueError, IPv6Address
from typing import Any

from mip6.core.ipsec.policy import (
    MOBILE_SIDE,
    SIDES,
    PairKeys,
    SaKeys,
    SecurityPolicyDatabase,
    home_registration_guard,
)
from mip6.core.ipsec.sa import Algorithm, RandomBytes

_SA_NAMES = ("binding_update", "binding_acknowledgement", "home_test_init", "home_test")
_PAIR_KEYS = frozenset(("home_address", "home_agent", "algorithm", "tunnel_all", *_SA_NAMES))
_SA_KEYS = frozenset(("spi", "encryption_key", "authentication_key"))


class IpsecConfigError(ValueError):
    """A fault in the ``ipsec`` block: ``key`` is the dotted path, ``reason`` what is wrong."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


def database_from_config(
    block: Mapping[str, Any], *, role: str, random_bytes: RandomBytes, key: str = "ipsec"
) -> SecurityPolicyDatabase:
    """The SPD and SAD of a ``mobile_node`` or ``home_agent`` from its ``ipsec`` block."""
    if role not in SIDES:
        raise IpsecConfigError(key, f"ESP between mobile node and home agent; not for {role}")
    if not isinstance(block, Mapping):
        raise IpsecConfigError(key, "must be a mapping")
    unknown = set(block) - {"algorithm", "pairs"}
    if unknown:
        raise IpsecConfigError(key, f"unknown keys: {', '.join(sorted(map(str, unknown)))}")
    default = _algorithm(block.get("algorithm", Algorithm.AES_GCM_16.value), f"{key}.algorithm")
    pairs = block.get("pairs")
    if not isinstance(pairs, Sequence) or isinstance(pairs, str) or not pairs:
        raise IpsecConfigError(f"{key}.pairs", "must be a non-empty list")
    database = SecurityPolicyDatabase(random_bytes=random_bytes)
    home_agents: list[IPv6Address] = []
    spis: set[int] = set()
    for index, pair in enumerate(pairs):
        where = f"{key}.pairs[{index}]"
        if not isinstance(pair, Mapping):
            raise IpsecConfigError(where, "must be a mapping")
        unknown = set(pair) - _PAIR_KEYS
        if unknown:
            raise IpsecConfigError(where, f"unknown keys: {', '.join(sorted(map(str, unknown)))}")
        home_address = _address(pair, "home_address", where)
        home_agent = _address(pair, "home_agent", where)
        algorithm = (
            _algorithm(pair["algorithm"], f"{where}.algorithm") if "algorithm" in pair else default
        )
        tunnel_all = pair.get("tunnel_all", False)
        if not isinstance(tunnel_all, bool):
            raise IpsecConfigError(f"{where}.tunnel_all", "must be true or false")
        sa_keys = {}
        for name in _SA_NAMES:
            sa_keys[name] = _sa_keys(pair.get(name), algorithm, f"{where}.{name}")
            if sa_keys[name].spi in spis:
                # Our SAD is keyed by (direction, SPI); the peer's too. One SPI per SA keeps
                # both ends (and Wireshark's SA table) unambiguous.
                raise IpsecConfigError(f"{where}.{name}.spi", "SPI used twice")
            spis.add(sa_keys[name].spi)
        try:
            database.add_pair(
                role=role,
                home_address=home_address,
                home_agent=home_agent,
                algorithm=algorithm,
                keys=PairKeys(**sa_keys),
                tunnel_all=tunnel_all,
            )
        except ValueError as error:  # key lengths, reserved SPIs: messages hold no key bytes
            raise IpsecConfigError(where, str(error)) from None
        if home_agent not in home_agents:
            home_agents.append(home_agent)
    if role not in MOBILE_SIDE:  # the home agent's end
        for entry in home_registration_guard(home_agents):
            database.add_policy(entry)
    return database


def _algorithm(value: object, where: str) -> Algorithm:
    try:
        return Algorithm(value)
    except ValueError:
        choices = ", ".join(a.value for a in Algorithm)
        raise IpsecConfigError(where, f"{value!r} is not one of {choices}") from None


def _address(pair: Mapping[str, Any], name: str, where: str) -> IPv6Address:
    value = pair.get(name)
    if value is None:
        raise IpsecConfigError(f"{where}.{name}", "missing")
    try:
        return IPv6Address(str(value))
    except AddressValueError:
        raise IpsecConfigError(f"{where}.{name}", f"{value!r} is not an IPv6 address") from None


def _sa_keys(value: object, algorithm: Algorithm, where: str) -> SaKeys:
    if not isinstance(value, Mapping):
        raise IpsecConfigError(where, "missing, or not a mapping")
    unknown = set(value) - _SA_KEYS
    if unknown:
        raise IpsecConfigError(where, f"unknown keys: {', '.join(sorted(map(str, unknown)))}")
    spi = value.get("spi")
    if not isinstance(spi, int) or isinstance(spi, bool):
        raise IpsecConfigError(f"{where}.spi", "must be an integer (e.g. 0x1001)")
    encryption_key = _key(value.get("encryption_key"), f"{where}.encryption_key")
    if algorithm is Algorithm.AES_GCM_16:
        if "authentication_key" in value:
            raise IpsecConfigError(
                f"{where}.authentication_key", "AES-GCM takes no authentication key"
            )
        authentication_key = b""
    else:
        authentication_key = _key(value.get("authentication_key"), f"{where}.authentication_key")
    return SaKeys(spi=spi, encryption_key=encryption_key, authentication_key=authentication_key)


def _key(value: object, where: str) -> bytes:
    if value is None:
        raise IpsecConfigError(where, "missing")
    if not isinstance(value, str):
        raise IpsecConfigError(
            where, "must be a quoted hex string (YAML reads unquoted 0x... as a number)"
        )
    text = value[2:] if value[:2].lower() == "0x" else value
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise IpsecConfigError(where, "is not a hex string") from None
