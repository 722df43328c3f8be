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

def append_locked(fd: int, data: bytes, expected: int, /) -> tuple[int, int]: ...
def deleted(fd: int, /) -> bool: ...
def float_text(d: float, /) -> bytes | None: ...
def forest_bytes() -> int | None: ...

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

class Forest:
    """The open traces' trees as C data (``_forest.h``): TreeNumberer's C path."""

    open_traces: int
    idle_timeout_s: float
    broken: bool
    def __init__(
        self,
        token: bytes,
        task_head: bytes,
        max_open: int,
        idle_timeout_s: float,
        max_depth: int,
        start_type: type,
        end_type: type,
        dumps: Callable[[Any], bytes],
    ) -> None: ...
    def number(self, items: Sequence[Any], out: list[bytes], now: float, remembered: int, /) -> int: ...
    def number_append(
        self, items: Sequence[Any], out: list[bytes], now: float, remembered: int, fd: int, expected: int, /
    ) -> tuple[int, int, int]: ...
    def close_idle(self, out: list[bytes], now: float, /) -> None: ...
    def close_all(self, out: list[bytes], /) -> None: ...
    def restart(self, out: list[bytes], /) -> None: ...
    def state(self) -> tuple[int, list[tuple[Any, ...]]]: ...
