"""conformance: an RFC 3775 conformance suite that tests any implementation over a link.

Not built yet (its issue comes after the core engines and the lab)."""
