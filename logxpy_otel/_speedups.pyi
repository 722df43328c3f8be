"""Type stub of the optional C encoder (``_speedups.c``)."""

from collections.abc import Callable, Sequence
from typing import Any

class FastEncoder:
    def __init__(
        self,
        *,
        tails: dict[int, tuple[object, object, bytes]],
        dumps: Callable[[Any], bytes],
        reserved: frozenset[str],
        bounded: type,
        severities: Sequence[tuple[object, int, str]],
        fallback: Callable[..., tuple[str | None, float, bool, bytes]],
        flat: bool,
    ) -> None: ...
    def encode(
        self, record: Any, resource: Any = None, scope: Any = None, dropped: int | None = None, /
    ) -> tuple[str | None, float, bool, bytes]: ...
