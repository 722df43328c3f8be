"""``LogxpySpanProcessor``: spans as nested logxpy actions, in the log processor's file.

Add it with ``TracerProvider.add_span_processor(log_processor.span_processor())``. Each
span becomes an action of its trace's tree (a start line when it starts, an end line
when it ends), its log records that action's children and its child spans nested
actions, written by the same writer thread into the same file. Without it, files look
as before: one flat action per trace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ._config import FLUSH_TIMEOUT_MS, flush_timeout_s
from ._diagnostics import (
    NOTED_INTERRUPTS,
    RateLimitedReporter,
    noted_aside,
    raise_if_application_error,
    settle_noted,
)
from ._format import LineItem, LineMode
from ._span_format import SpanEncoder
from ._writer import DropReason
from .processor import lane_enqueue, span_emitter

if TYPE_CHECKING:
    from ._setup import WriterOwner

__all__ = ["LogxpySpanProcessor"]


class LogxpySpanProcessor(SpanProcessor):
    """Writes each span's start and end as logxpy action lines through ``logs``' writer.

    ``logs`` is the :class:`~logxpy_otel.LogxpyLogRecordProcessor` (or exporter) whose file
    the spans go to; it must write trees (``mode="tree"``, the default), or this raises
    ``ValueError``. ``on_start``/``on_end`` never raise into the application: a fault is
    counted as a drop (``internal_error``). :meth:`shutdown` stops taking spans (later
    ones are counted as ``shutdown`` drops) and flushes; the writer and file stay
    ``logs``' to close.
    """

    _fault_report: ClassVar[RateLimitedReporter] = RateLimitedReporter(
        "logxpy-otel: %d span line(s) dropped by an internal error; last: %s"
    )

    def __init__(self, logs: WriterOwner) -> None:
        if logs.mode is not LineMode.TREE:
            raise ValueError(
                f"span_processor() needs mode 'tree' (the default); this one writes {logs.mode.value!r}"
            )
        self._logs = logs
        encoder = SpanEncoder(logs._encoder.tail_for)
        self._start, self._end = encoder.start, encoder.end
        self._enqueue = lane_enqueue(logs)
        self._shutdown = False
        logs.writer.nest_spans()
        cls = type(self)
        if cls.on_start is LogxpySpanProcessor.on_start and cls.on_end is LogxpySpanProcessor.on_end:
            emitter = span_emitter(logs, encoder.fast, self._invalid, self._fault)
            if emitter is not None:
                # The same steps as on_start/on_end below, in C (no Python frame a span);
                # shutdown() takes them away again.
                self.on_start = emitter.span_start  # type: ignore[method-assign]
                self.on_end = emitter.span_end  # type: ignore[method-assign]

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._hand_over(self._start, span)

    def on_end(self, span: ReadableSpan) -> None:
        self._hand_over(self._end, span)

    def _hand_over(self, encode: Callable[[ReadableSpan], LineItem | None], span: ReadableSpan) -> None:
        """Encode and queue a span line; after shutdown, or for ids OTel cannot carry (no
        tree for it), count it as dropped instead. Never raises: a fault is counted."""
        outer = noted_aside() if NOTED_INTERRUPTS else None
        try:
            if self._shutdown:
                self._logs.writer.discard(DropReason.SHUTDOWN, spans=1)
                return
            item = encode(span)
            if item is None:
                self._invalid()
            else:
                self._enqueue(item)
        except Exception as exc:  # noqa: BLE001 - the SDK does not catch processor errors
            self._fault(exc)
        finally:
            if NOTED_INTERRUPTS or outer is not None:
                settle_noted(outer)  # the application's interrupt, landed in its code: the line is queued

    def _invalid(self) -> None:
        """A span whose ids OTel cannot carry: it has no tree, so its line is dropped."""
        self._logs.writer.discard(DropReason.INVALID_ID, spans=1)

    def _fault(self, exc: BaseException) -> None:
        """A span line lost to an internal error: counted and reported, never raised (the
        application's own exception, from its signal handler, is raised on)."""
        raise_if_application_error(exc)
        try:
            self._logs.writer.discard(DropReason.INTERNAL_ERROR, spans=1)
            self._fault_report.note(1, type(exc).__name__)
        except Exception:  # noqa: BLE001
            pass

    def shutdown(self) -> None:
        """Take no more spans, and wait for the ones handed over (bounded by the writer's
        ``shutdown_timeout``). The file stays open for the log processor."""
        self._shutdown = True
        self.__dict__.pop("on_start", None)  # the C steps, where set: the methods count drops now
        self.__dict__.pop("on_end", None)
        writer = self._logs.writer
        writer.flush(writer.config.shutdown_timeout_ms / 1000.0)

    def force_flush(self, timeout_millis: int | None = FLUSH_TIMEOUT_MS) -> bool:
        """Wait until every span line handed over before the call is in the file."""
        return self._logs.writer.flush(flush_timeout_s(timeout_millis))
