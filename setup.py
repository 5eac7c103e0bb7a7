"""Compiles the C code with cffi in out-of-line API mode at install time: tcp_migrate's core,
the labnet hub's fast path and the mip6 daemon's fast path.

Everything else about the package lives in pyproject.toml; setuptools reads ``cffi_modules``
only from here.
"""

from setuptools import setup

setup(
    cffi_modules=[
        "tcp_migrate/_build.py:ffibuilder",
        "labnet/hub/_fast_build.py:ffibuilder",
        "mip6/runtime/_fast_build.py:ffibuilder",
    ]
)
