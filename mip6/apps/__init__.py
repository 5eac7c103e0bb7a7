"""Small real applications for demos and experiments, written against packets so they run on
any driver (the in-memory network, the daemon's host mode)."""
