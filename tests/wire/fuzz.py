"""Mutation fuzzer for the decoder: real packets, mutated, fed to :func:`mip6.dissect.dissect`.

Seeds are every packet of the shipped sample story (all MH types and options, HAO, RH2,
ICMPv6 incl. 144-147 and ND, UDP, TCP, ESP, IPv6-in-IPv6). Each input is a seed with a few
mutations (bit flips, interesting byte values, insertions, deletions, truncation, splicing two
seeds); most inputs then get their IPv6 Payload Length and upper-layer checksum repaired, so the
fuzzer gets past the first checks and reaches option and message parsing. The property:
nothing but ``WireError`` escapes, and a packet that parses re-emits to bytes that parse to the
same ``Repr``.

Run the long campaign with ``python -m tests.wire.fuzz --inputs 1000000``; the test suite runs
a short one (tests/wire/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator

from mip6.dissect import dissect
from mip6.samples import story
from mip6.wire.checksum import upper_layer_checksum
from mip6.wire.errors import WireError
from mip6.wire.ipv6 import Ipv6Packet
from mip6.wire.walk import walk

INTERESTING = (0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 41, 43, 44, 58, 59, 60, 127, 128, 135, 201, 255)
CHECKSUM_AT = {135: 4, 58: 2, 17: 6, 6: 16}


def seeds() -> list[bytes]:
    return [p if isinstance(p, bytes) else p.emit() for p in story()]


def mutate(rng: random.Random, data: bytearray, corpus: list[bytes]) -> bytearray:
    for _ in range(rng.choice((1, 1, 2, 3, 5))):
        choice = rng.randrange(7)
        if not data:
            data = bytearray(rng.choice(corpus))
        position = rng.randrange(len(data))
        if choice == 0:
            data[position] ^= 1 << rng.randrange(8)
        elif choice == 1:
            data[position] = rng.choice(INTERESTING)
        elif choice == 2:
            data[position] = rng.randrange(256)
        elif choice == 3:
            data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        elif choice == 4:
            del data[position : position + rng.randrange(1, 9)]
        elif choice == 5:
            data = data[: rng.randrange(len(data) + 1)]
        else:
            other = rng.choice(corpus)
            cut = rng.randrange(len(other) + 1)
            data = data[:position] + bytearray(other[cut:])
    return data


def repair(data: bytearray) -> None:
    """Make Payload Length and the upper-layer checksum right, where the chain allows it."""
    if len(data) < 40:
        return
    data[4:6] = min(len(data) - 40, 0xFFFF).to_bytes(2, "big")
    try:
        chain = walk(bytes(data))
    except WireError:
        return
    at = CHECKSUM_AT.get(chain.upper_protocol)
    offset = chain.upper_offset
    if at is None or chain.fragmented or offset + at + 2 > len(data):
        return
    data[offset + at : offset + at + 2] = b"\0\0"
    source = chain.home_address or chain.source
    destination = chain.routing_home_address or chain.destination
    segment = bytes(data[offset:])
    checksum = upper_layer_checksum(source, destination, chain.upper_protocol, segment)
    if chain.upper_protocol == 17 and checksum == 0:
        checksum = 0xFFFF
    data[offset + at : offset + at + 2] = checksum.to_bytes(2, "big")


def inputs(seed: int, count: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    corpus = seeds()
    for _ in range(count):
        data = mutate(rng, bytearray(rng.choice(corpus)), corpus)
        if rng.random() < 0.8:
            repair(data)
        yield bytes(data)


def check(data: bytes) -> bool:
    """Decode one input; True when it parsed. Raises AssertionError on a property violation;
    any exception other than WireError propagates (that is the bug the fuzzer looks for)."""
    result = dissect(data)
    if result.packet is None:
        assert isinstance(result.error, WireError)
        return False
    emitted = result.packet.emit()
    assert Ipv6Packet.parse(emitted) == result.packet, data.hex()
    return True


def run(seed: int, count: int) -> dict[str, object]:
    started = time.perf_counter()
    parsed = 0
    for data in inputs(seed, count):
        try:
            parsed += check(data)
        except Exception:
            print(f"fuzz: failing input (seed {seed}): {data.hex()}", file=sys.stderr)
            raise
    elapsed = time.perf_counter() - started
    return {
        "inputs": count,
        "parsed": parsed,
        "rejected": count - parsed,
        "seed": seed,
        "seconds": round(elapsed, 1),
        "inputs_per_s": round(count / elapsed),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(run(args.seed, args.inputs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
