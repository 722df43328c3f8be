"""Type stub of the optional C fast path of ``LogxpyLoggingHandler.handle`` (``_logging_speedups.c``)."""

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

class Fast:
    def __init__(
        self,
        *,
        handler_dict: dict[str, Any],
        general: Callable[[Any], Any],
        write: Callable[[Any, Any, Any], Any],
        scopes: dict[str, Any],
        scope_of: Callable[[str], Any],
        flag: ContextVar[bool],
        discard: Callable[[str], object],
        recursive: str,
        own_record: Callable[[], object],
        fault: Callable[[BaseException], object],
        reserved: frozenset[str],
        n_init: int,
        last_init: str,
        otel_event: str,
        event: str,
        severities: list[Any],
        severity_of: Callable[[int], Any],
        texts: dict[str, str],
        span_var: ContextVar[Any] | None,
        get_current: Callable[[], Any],
        span_key: str,
        span_kind: Callable[[type], int],
        invalid: Any,
        context_type: type,
        record_type: type,
        logging_type: type,
        emitter: Callable[[Any], object],
        rw_type: type,
        clock: Callable[[], int],
        logs_api: Any,
        max_count: int,
        limited: bool,
        tuple_context: bool,
        field_order: tuple[str, ...],
        code: bool,
        enqueue: Callable[[Any], object] | None,
        dumps: Callable[[Any], bytes],
        enc_reserved: frozenset[str],
        tail_of: Callable[[Any, Any], bytes],
        levels: list[tuple[int, str]],
        flat: bool,
        item_size: int,
        format_failed: Callable[[Any, BaseException], object],
    ) -> None: ...
    def handle(self, record: Any, /) -> Any: ...
    def encode(self, record: Any, scope: Any, resource: Any, observed: int, /) -> tuple[Any, ...] | None: ...

def busy() -> bool: ...
