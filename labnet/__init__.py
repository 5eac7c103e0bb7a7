"""labnet: the lab. Today: benchmarks (``labnet bench``). Topologies, link emulation, the
simulator and network namespaces arrive with their issue."""
