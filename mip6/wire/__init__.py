"""Packet representations: ``parse`` bytes into frozen ``Repr`` dataclasses, ``emit`` them back.

No state and no I/O. Every malformed input raises a :class:`~mip6.wire.errors.WireError`.
"""
