"""The client side of a ``mip6 run`` daemon's control socket: one JSON request line, one JSON
reply line (the daemon side is :meth:`mip6.runtime.daemon.Daemon.command`)."""

from __future__ import annotations

import json
import socket
from typing import Any


def control_request(path: str, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send ``request`` to the daemon listening on the UNIX socket ``path``; its reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode() + b"\n")
        buffer = b""
        while not buffer.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
    reply: dict[str, Any] = json.loads(buffer)
    return reply
