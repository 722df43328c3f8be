"""``LogxpyLogRecordExporter``: logxpy lines under any SDK log record processor."""

from __future__ import annotations

import functools
import sys
import time
import weakref
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from . import _lifecycle, _sdk_private
from ._diagnostics import NOTED_INTERRUPTS, RateLimitedReporter, is_own_scope, noted_aside, settle_noted
from ._format import LineItem
from ._setup import WriterOwner
from ._writer import DropReason

__all__ = ["LogxpyLogRecordExporter"]

#: A reference that is always dead: "the caller was looked at, and is not a batch processor".
_NO_FEEDER: Any = weakref.ref(type("_Gone", (), {})())

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

    #: The SDK batch processor that calls :meth:`export` (weakly), once seen; None until
    #: the first export, and a dead reference when the caller is something else. (At exit,
    #: before the first export, it is looked for by its worker thread.)
    _feeder: weakref.ref[Any] | None = None

    def _built(self) -> None:
        self._writer.before_exit_close = self._hand_over_at_exit

    def _hand_over_at_exit(self, deadline: float) -> None:
        """At exit, before the open trees are closed: every batch processor in front hands
        over what it holds. (Its provider's own shutdown comes after our exit hook when the
        provider was made before this package was imported: its records would open the
        closed traces again, a request in two trees.) Each is asked in a thread of its own
        within the exit's bound: the SDK's force_flush exports in its caller's thread, and
        a write that hangs must not hold up the exit."""
        if self._shutdown:
            return
        feeders = _sdk_private.batch_feeders(self)
        known = self._feeder() if self._feeder is not None else None
        if known is not None and all(known is not feeder for feeder in feeders):
            feeders.append(known)
        for feeder in feeders:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            _lifecycle.call_bounded(functools.partial(feeder.force_flush, int(left * 1000)), left)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if self._feeder is None:  # once: is the caller the SDK's batch processor around us?
            caller = _sdk_private.batch_feeding(sys._getframe(1).f_locals.get("self"), self)
            self._feeder = weakref.ref(caller) if caller is not None else _NO_FEEDER
        outer = noted_aside() if NOTED_INTERRUPTS else None
        try:
            return self._export(batch)
        finally:
            if NOTED_INTERRUPTS or outer is not None:
                settle_noted(outer)  # the application's interrupt, landed in its code: the batch is queued

    def _export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Encode and queue (or write, in synchronous mode) ``batch``."""
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
