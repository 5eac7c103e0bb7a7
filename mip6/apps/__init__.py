"""Small real applications for demos and experiments: :mod:`~mip6.apps.echo` (written against
packets, so it runs on any driver: the in-memory network, the daemon's host mode), the HTTP file
server :mod:`~mip6.apps.http` on tcp_migrate streams, and :mod:`~mip6.apps.builtin`, what a
host-mode daemon's ``apps:`` configuration starts. A distributed server's member runs the
download (:mod:`~mip6.apps.download`), the handoff echo (:mod:`~mip6.apps.handoff_echo`), the
proxy (:mod:`~mip6.apps.proxy`) and, on UDP, the DNS-like :mod:`~mip6.apps.lookup`,
:mod:`~mip6.apps.udp_echo` and :mod:`~mip6.apps.udp_stream`; :mod:`~mip6.apps.udp_requests`
is a client of the first two (the farm's UDP workloads)."""
