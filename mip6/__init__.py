"""mip6: a userspace Mobile IPv6 (RFC 3775) stack and the ad hoc distributed server built on it."""

__version__ = "0.1.0"
