"""Every setting read from the environment: its variable, its default, its validation."""

from __future__ import annotations

import os

__all__ = ["LOGXPY_SYNC", "sync_requested"]

#: ``LOGXPY_SYNC=1`` makes every writer write in the caller's thread (logxpy's switch).
LOGXPY_SYNC = "LOGXPY_SYNC"
_TRUE = frozenset(("1", "true", "yes", "on"))


def sync_requested() -> bool:
    """True when ``LOGXPY_SYNC`` asks for synchronous writes (1/true/yes/on, any case)."""
    return os.environ.get(LOGXPY_SYNC, "").strip().lower() in _TRUE
