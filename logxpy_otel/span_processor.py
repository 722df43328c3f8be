"""``LogxpySpanProcessor``: spans as nested logxpy actions, in the log processor's file.

Add it with ``TracerProvider.add_span_processor(log_processor.span_processor())``. Each
span becomes an action of its trace's tree (a start line when it starts, an end line
when it ends), its log records that action's children and its child spans nested
actions, written by the same writer thread into the same file. Without it, files look
as before: one flat action per trace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ._diagnostics import RateLimitedReporter
from ._format import LineItem, LineMode
from ._span_format import SpanEncoder
from ._writer import DropReason
from .processor import lane_enqueue

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

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            self._hand_over(self._start(span))
        except Exception as exc:  # noqa: BLE001 - the SDK does not catch processor errors
            self._fault(exc)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self._hand_over(self._end(span))
        except Exception as exc:  # noqa: BLE001
            self._fault(exc)

    def _hand_over(self, item: LineItem | None) -> None:
        """Queue a span line; after shutdown, or for ids OTel cannot carry (no tree for it),
        count it as dropped instead."""
        if item is not None and not self._shutdown:
            self._enqueue(item)
        else:
            self._logs.writer.discard(DropReason.SHUTDOWN if self._shutdown else DropReason.INVALID_ID)

    def _fault(self, exc: BaseException) -> None:
        try:
            self._logs.writer.discard(DropReason.INTERNAL_ERROR)
            self._fault_report.note(1, type(exc).__name__)
        except Exception:  # noqa: BLE001
            pass

    def shutdown(self) -> None:
        """Take no more spans, and wait for the ones handed over (bounded by the writer's
        ``shutdown_timeout``). The file stays open for the log processor."""
        self._shutdown = True
        writer = self._logs.writer
        writer.flush(writer.config.shutdown_timeout_ms / 1000.0)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait until every span line handed over before the call is in the file."""
        return self._logs.writer.flush(timeout_millis / 1000.0)
