"""The optional C module ``_speedups``: what it offers, or None where it is not in use.

It is built at install time where a C compiler is found (setup.py) and gives the same
output as the Python code it stands in for, faster. ``LOGXPY_OTEL_PURE_PYTHON=1`` turns
it off.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["speedup", "speedups_in_use"]


def speedup(name: str) -> Any:
    """``_speedups.<name>``, or None where the module was not built, lacks it, or is turned off."""
    if os.environ.get("LOGXPY_OTEL_PURE_PYTHON", "").strip().lower() in ("1", "true", "yes", "on"):
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    # None for a name this build lacks (a build older than the Python code): that part
    # runs in Python instead of the import failing.
    return getattr(_speedups, name, None)


def speedups_in_use() -> bool:
    """Whether the C speed-up runs in this process (built, and not turned off by
    ``LOGXPY_OTEL_PURE_PYTHON``); ``logxpy-otel info`` says why not."""
    return speedup("FastEncoder") is not None
