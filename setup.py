"""The optional C encoder (``logxpy_otel/_speedups.c``); all else is in pyproject.toml.

``optional=True``: where it cannot be compiled, the install goes on without it and
``LineEncoder`` runs in pure Python (same output, slower).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("logxpy_otel._speedups", ["logxpy_otel/_speedups.c"], optional=True)])
