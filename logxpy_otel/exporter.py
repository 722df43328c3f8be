"""``LogxpyLogRecordExporter``: logxpy lines under any SDK log record processor."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from ._diagnostics import RateLimitedReporter, is_own_scope
from ._format import LineItem
from ._setup import WriterOwner
from ._writer import DropReason

__all__ = ["LogxpyLogRecordExporter"]

_fault_report = RateLimitedReporter("logxpy-otel: %d record(s) dropped by an internal error; last: %s")


class LogxpyLogRecordExporter(WriterOwner, LogRecordExporter):
    """Encodes each exported batch as logxpy lines and appends it to the file.

    Without a ``config`` it writes in the thread that calls :meth:`export` (the
    ``BatchLogRecordProcessor``'s worker, or the caller under
    ``SimpleLogRecordProcessor``): the processor in front already is the queue, and a
    second one would only add a hop. ``export`` then returns SUCCESS only when the
    batch is written. Pass an :class:`AsyncConfig` to add a writer thread with its policy.

    Constructed with no arguments (as ``OTEL_LOGS_EXPORTER=logxpy`` does) it reads the
    ``OTEL_EXPORTER_LOGXPY_*`` environment; declarative configuration passes its YAML
    keys (``file``, ``mode``, ``file_permissions``, ``flush_interval``...) as keywords.
    """

    _ASYNC_DEFAULT = False

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        writer = self._writer
        if self._shutdown:
            writer.discard(DropReason.SHUTDOWN, len(batch))
            return LogRecordExportResult.FAILURE
        encode = self._encoder.encode
        items: list[LineItem] = []
        own = lost = 0
        for readable in batch:
            try:
                scope = readable.instrumentation_scope
                if is_own_scope(scope):
                    own += 1  # our own diagnostics, routed back by a logging handler
                    continue
                # (The dropped-attribute count comes with the SDK's attributes; the encoder reads it.)
                items.append(encode(readable.log_record, readable.resource, scope))
            except Exception as exc:  # noqa: BLE001 - one record never costs the batch
                lost += 1
                _fault_report.note(1, type(exc).__name__)
        if own:
            writer.discard(DropReason.OWN_DIAGNOSTICS, own)
        if lost:
            writer.discard(DropReason.INTERNAL_ERROR, lost)
        if not items:
            return LogRecordExportResult.FAILURE if lost else LogRecordExportResult.SUCCESS
        if not writer.config.async_enabled:
            ok = writer.write_now(items)
        else:
            ok = True
            for item in items:
                ok = writer.enqueue(item) and ok
        return LogRecordExportResult.SUCCESS if ok and not lost else LogRecordExportResult.FAILURE
