"""Type stub of the optional C encoder (``_speedups.c``)."""

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

class FastEncoder:
    def __init__(
        self,
        *,
        tails: dict[int, tuple[object, object, bytes]],
        dumps: Callable[[Any], bytes],
        reserved: frozenset[str],
        bounded: type,
        record_type: type,
        severities: Sequence[tuple[object, int, str]],
        fallback: Callable[..., tuple[str | None, float, bool, bytes, bytes]],
        flat: bool,
    ) -> None: ...
    def encode(
        self, record: Any, resource: Any = None, scope: Any = None, dropped: int | None = None, /
    ) -> tuple[str | None, float, bool, bytes, bytes]: ...

def number(
    items: Sequence[tuple[str | None, float, bool, bytes, bytes]],
    traces: dict[str, Any],
    task_head: bytes,
    task_count: int,
    now: float,
    open_trace: Callable[[str, float, float, list[bytes]], Any],
    out: list[bytes],
    spans: tuple[type, type, int, int, Callable[[Any], bytes]] | None = None,
    opening: tuple[type, bytes, int, Callable[[Any], bytes]] | None = None,
    /,
) -> tuple[int, int]: ...
def append_locked(fd: int, data: bytes, expected: int, /) -> tuple[int, int]: ...
def deleted(fd: int, /) -> bool: ...
def float_text(d: float, /) -> bytes | None: ...

class Emitter:
    def __init__(
        self,
        *,
        encoder: FastEncoder,
        lane: list[Any],
        enqueue: Callable[[Any], object],
        sync: ContextVar[bool],
        own: Callable[[], object],
        fault: Callable[[BaseException], object],
    ) -> None: ...
    def emit(self, log_record: Any, /) -> None: ...
    def enqueue(self, item: Any, /) -> bool: ...

class SpanEncoder:
    def __init__(
        self,
        *,
        tails: Callable[[Any, Any], bytes],
        dumps: Callable[[Any], bytes],
        reserved: frozenset[str],
        span_types: tuple[type, ...],
        context_type: type,
        empty_state: Any,
        bounded: type,
        bounded_list: type,
        kinds: Sequence[tuple[Any, int, str]],
        internal: Any,
        status_codes: tuple[Any, Any, Any],
        roles: tuple[type, type],
        fallback_start: Callable[[Any], Any],
        fallback_end: Callable[[Any], Any],
    ) -> None: ...
    def start(self, span: Any, /) -> Any: ...
    def end(self, span: Any, /) -> Any: ...

class Action:
    prefix: bytes
    parent: Action | None
    earlier: Action | None
    next: int
    open: bool
    depth: int
    def __init__(self, prefix: bytes, parent: Action | None) -> None: ...
