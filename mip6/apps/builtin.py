"""The applications a host-mode daemon's ``apps:`` configuration can name (``echo``, ``http``),
started on its :class:`~mip6.runtime.host.Host`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mip6.apps.echo import udp_echo
from mip6.apps.http import Body, HttpServer

if TYPE_CHECKING:
    from mip6.runtime.config import AppConfig
    from mip6.runtime.host import Host


async def start(host: Host, app: AppConfig) -> Callable[[], None]:
    """Start ``app`` on ``host``; returns what stops it."""
    if app.type == "echo":
        return udp_echo(host, app.port).close
    if app.type == "http":
        server = HttpServer(Body(path=app.path, size=app.size, seed=app.seed))
        listener = await host.start_server(server.handle, "::", app.port)
        return listener.close
    raise ValueError(f"no built-in application {app.type!r}")
