"""Small real applications for demos and experiments: :mod:`~mip6.apps.echo` (written against
packets, so it runs on any driver: the in-memory network, the daemon's host mode), the HTTP file
server :mod:`~mip6.apps.http` on tcp_migrate streams, and :mod:`~mip6.apps.builtin`, what a
host-mode daemon's ``apps:`` configuration starts."""
