"""Compiles tcp_migrate's C core with cffi in out-of-line API mode at install time.

Everything else about the package lives in pyproject.toml; setuptools reads ``cffi_modules``
only from here.
"""

from setuptools import setup

setup(cffi_modules=["tcp_migrate/_build.py:ffibuilder"])
