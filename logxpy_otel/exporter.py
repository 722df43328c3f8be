"""``LogxpyLogRecordExporter``: logxpy lines under any SDK log record processor."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from ._setup import WriterOwner

__all__ = ["LogxpyLogRecordExporter"]


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
        if self._shutdown:
            self._writer.discard("shutdown", len(batch))
            return LogRecordExportResult.FAILURE
        encode = self._encoder.encode
        # (The dropped-attribute count comes with the SDK's attributes; the encoder reads it.)
        items = [encode(r.log_record, r.resource, r.instrumentation_scope) for r in batch]
        writer = self._writer
        if not writer.config.async_enabled:
            ok = writer.write_now(items)
        else:
            ok = True
            for item in items:
                ok = writer.enqueue(item) and ok
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE
