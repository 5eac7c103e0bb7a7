"""One netns lab for a test module (root): up, yielded, down, and nothing of it left."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from labnet.cli import main
from labnet.netns import NetnsLab
from labnet.topology import Topology


@contextmanager
def netns_lab(
    state: Path, topology: str | Path | Topology, prefix: str, *, esp: bool = False
) -> Iterator[NetnsLab]:
    """``labnet up`` ``topology`` (a built-in name or a file, through the command line; a
    Topology built in code, through :meth:`NetnsLab.up`) as the lab ``prefix`` + this
    process's id, its state under ``state``; then ``labnet down`` (twice: the second finds
    nothing and must succeed), the environment as it was, and a check that no namespace of
    the lab and no process naming its state directory is left."""
    previous = os.environ.get("LABNET_STATE_DIR")
    os.environ["LABNET_STATE_DIR"] = str(state)
    name = f"{prefix}{os.getpid() % 100000}"
    try:
        if isinstance(topology, Topology):
            NetnsLab.up(topology, name, esp=esp)
        else:
            argv = ["up", str(topology), "--backend", "netns", "--name", name]
            assert main([*argv, "--esp"] if esp else argv) == 0
        yield NetnsLab.open(name)
    finally:
        main(["down", "--name", name])
        main(["down", "--name", name])
        if previous is None:
            os.environ.pop("LABNET_STATE_DIR", None)
        else:
            os.environ["LABNET_STATE_DIR"] = previous
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [line for line in namespaces.splitlines() if line.startswith(f"{name}-")]
    leftovers = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(state) not in leftovers  # no daemon, hub, server or client of the lab is left
