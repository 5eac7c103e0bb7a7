"""The applications a host-mode daemon's ``apps:`` configuration can name (``echo``, ``http``),
started on its :class:`~mip6.runtime.host.AsyncHost`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mip6.apps.echo import udp_echo
from mip6.apps.http import Body, HostHttpServer, HttpServer

if TYPE_CHECKING:
    from mip6.runtime.config import AppConfig
    from mip6.runtime.host import AsyncHost, Host


async def start(host: AsyncHost, app: AppConfig) -> Callable[[], None]:
    """Start ``app`` on ``host``; returns what stops it."""
    if app.type == "echo":
        return udp_echo(host, app.port).close
    if app.type == "http":
        server = HttpServer(Body(path=app.path, size=app.size, seed=app.seed))
        listener = await host.start_server(server.handle, "::", app.port)
        return listener.close
    raise ValueError(f"no built-in application {app.type!r}")


def start_on_host(host: Host, app: AppConfig) -> Callable[[], None]:
    """Start ``app`` on a sans-I/O ``host`` driven by its stack's callbacks (labnet's
    simulator, on virtual time); returns what stops it."""
    if app.type == "echo":
        return udp_echo(host, app.port).close
    if app.type == "http":
        return HostHttpServer(
            host, app.port, Body(path=app.path, size=app.size, seed=app.seed)
        ).close
    raise ValueError(f"no built-in application {app.type!r}")
