"""``LogxpyLogRecordExporter``: logxpy lines under any SDK log record processor."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from ._format import LineMode
from ._setup import build
from ._writer import AsyncConfig, AsyncMetrics, AsyncWriter, Destination

__all__ = ["LogxpyLogRecordExporter"]


class LogxpyLogRecordExporter(LogRecordExporter):
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

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        destinations: Iterable[Destination] | None = None,
        config: AsyncConfig | None = None,
        mode: LineMode | str | None = None,
        file_mode: int | None = None,
        **options: Any,
    ) -> None:
        self._encoder, self._writer = build(
            path,
            destinations=destinations,
            config=config,
            mode=mode,
            file_mode=file_mode,
            options=options,
            async_default=False,
        )
        self._shutdown = False

    @property
    def writer(self) -> AsyncWriter:
        return self._writer

    @property
    def mode(self) -> LineMode:
        return self._encoder.mode

    @property
    def metrics(self) -> AsyncMetrics:
        return self._writer.metrics

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if self._shutdown:
            self._writer.discard("shutdown", len(batch))
            return LogRecordExportResult.FAILURE
        encode = self._encoder.encode
        items = [
            encode(r.log_record, r.resource, r.instrumentation_scope, r.dropped_attributes) for r in batch
        ]
        writer = self._writer
        if not writer.config.async_enabled:
            ok = writer.write_now(items)
        else:
            ok = True
            for item in items:
                ok = writer.enqueue(item) and ok
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._writer.flush(timeout_millis / 1000.0)

    def shutdown(self) -> None:
        self._shutdown = True
        self._writer.stop(self._writer.config.shutdown_timeout_ms / 1000.0)
