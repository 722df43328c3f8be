"""``LogxpyLogRecordProcessor``: the SDK hook that encodes in the caller's thread and queues.

Add it with ``LoggerProvider.add_log_record_processor``. It needs no
``BatchLogRecordProcessor`` in front: it is the queue, with its own policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord

from ._diagnostics import (
    LOGGER_NAME,
    NOTED_INTERRUPTS,
    RateLimitedReporter,
    is_own_scope,
    noted_aside,
    raise_if_application_error,
    settle_noted,
)
from ._native import speedup
from ._queue import Lane
from ._setup import WriterOwner
from ._writer import SYNC_MODE, DropReason

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.resources import Resource

    from .logging_handler import LogxpyLoggingHandler

__all__ = ["LogxpyLogRecordProcessor"]

#: ``on_emit`` in C (``_speedups.Emitter``), where built: the steps of the method below.
#: Measured (callgrind, one record through the SDK and this processor): 83,200 instructions
#: with it, 88,800 with the Python on_emit over the C encoder (6 % of the whole path, the
#: cost of a Python frame per record). It reads the writer's lane by position and
#: knows our logger's name; it is used only where it declares the same names as here.
_Emitter = (
    speedup("Emitter")
    if speedup("LANE_FIELDS") == Lane._fields and speedup("OWN_LOGGER") == LOGGER_NAME
    else None
)


def _emitter(
    owner: WriterOwner,
    own: Callable[[], None],
    fault: Callable[[BaseException], None],
    *,
    raises_noted: bool = True,
    **spans: Any,
) -> Any:
    """A C ``Emitter`` over ``owner``'s encoder and writer (its lane), calling ``own``/``fault``
    as the Python steps do (with ``spans=``, ``invalid=``: for spans too); None where the C
    code is not in use. ``raises_noted``: it is an entry point, which raises the
    application's interrupt noted while it encoded (not when another entry point of ours
    calls it, which raises it at its own end)."""
    fast = owner._encoder.fast_encoder
    if _Emitter is None or fast is None:
        return None
    writer = owner.writer
    return _Emitter(
        encoder=fast,
        lane=writer._lane,
        enqueue=writer.enqueue,
        sync=SYNC_MODE,
        own=own,
        fault=fault,
        noted=NOTED_INTERRUPTS if raises_noted else [],
        noted_aside=noted_aside,
        settle_noted=settle_noted,
        **spans,
    )


def c_emit(
    processor: LogxpyLogRecordProcessor,
    own: Callable[[], None],
    fault: Callable[[BaseException], None],
    *,
    raises_noted: bool = True,
) -> Callable[[Any], None] | None:
    """The C ``on_emit`` (encode and queue, no Python frame per record) for ``processor``'s
    encoder and writer; None where the C code is not in use. ``raises_noted``: see
    :func:`_emitter`."""
    emitter = _emitter(processor, own, fault, raises_noted=raises_noted)
    return None if emitter is None else cast("Callable[[Any], None]", emitter.emit)


def lane_enqueue(owner: WriterOwner) -> Callable[[Any], object]:
    """``owner``'s writer's ``enqueue`` for items already encoded (span lines, the logging
    handler's own lines): through the C lane where built, with no Python frame a line (the
    writer's Python ``enqueue`` is two), else the writer's ``enqueue`` itself."""
    emitter = _emitter(owner, _nothing, _ignore)
    return owner.writer.enqueue if emitter is None else cast("Callable[[Any], object]", emitter.enqueue)


def span_emitter(
    owner: WriterOwner, encoder: Any, invalid: Callable[[], None], fault: Callable[[BaseException], None]
) -> Any:
    """A C ``Emitter`` whose ``span_start``/``span_end`` are ``LogxpySpanProcessor``'s
    ``on_start``/``on_end`` (encode with ``encoder``, a C ``SpanEncoder``; queue through the
    lane; count ``invalid`` ids and faults), with no Python frame a span; None where the C
    code is not in use."""
    if encoder is None:
        return None
    return _emitter(owner, _nothing, fault, spans=encoder, invalid=invalid)


def _nothing() -> None:
    """(``own`` of an Emitter used only to enqueue: it never sees a record.)"""


def _ignore(exc: BaseException) -> None:
    """(``fault`` of an Emitter used only to enqueue: it never encodes.)"""


class LogxpyLogRecordProcessor(WriterOwner, LogRecordProcessor):
    """Writes every OTel log record as a logxpy line through a policy-aware writer thread.

    ``path`` (default: ``OTEL_EXPORTER_LOGXPY_FILE``, else ``logxpy-otel.jsonl`` in the
    working directory, when no ``destinations`` are given) is opened at once, so a bad
    path fails here, not later. ``options`` take the names of declarative configuration
    (``queue_policy="drop_oldest"``, ``flush_interval=100``...); settings not given come
    from the ``OTEL_EXPORTER_LOGXPY_*`` environment, then the defaults.
    ``on_emit`` never raises into the application: a fault is counted as a drop with
    reason ``internal_error`` and reported through the ``logxpy_otel`` logger.
    """

    _fault_report: ClassVar[RateLimitedReporter] = RateLimitedReporter(
        "logxpy-otel: %d record(s) dropped by an internal error; last: %s"
    )

    def _built(self) -> None:
        overridden = type(self).on_emit is not LogxpyLogRecordProcessor.on_emit  # a subclass's wins
        emit = None if overridden else c_emit(self, self._own_record, self._fault)
        if emit is not None:
            # The same steps as on_emit below, in C: a Python frame per record is a
            # noticeable part of the cost (docs/speedups.md).
            self.on_emit = emit  # type: ignore[method-assign,assignment]

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        outer = noted_aside() if NOTED_INTERRUPTS else None
        try:
            scope = log_record.instrumentation_scope
            if is_own_scope(scope):
                self._own_record()
                return
            self._writer.enqueue(self._encoder.encode(log_record.log_record, log_record.resource, scope))
        except Exception as exc:  # noqa: BLE001 - the SDK does not catch processor errors
            self._fault(exc)
        finally:
            if NOTED_INTERRUPTS or outer is not None:
                settle_noted(outer)  # the application's interrupt, landed in its code: the record is queued

    def _own_record(self) -> None:
        """A record of our own diagnostics, routed back through an OTel logging handler."""
        self._writer.discard(DropReason.OWN_DIAGNOSTICS)

    def _fault(self, exc: BaseException) -> None:
        """A record lost to an internal error: counted and reported, never raised (the
        application's own exception, from its signal handler, is raised on)."""
        raise_if_application_error(exc)
        try:
            self._writer.discard(DropReason.INTERNAL_ERROR)
            self._fault_report.note(1, type(exc).__name__)
        except Exception:  # noqa: BLE001
            pass

    def enabled(self, **_: object) -> bool:
        return not self._shutdown

    def logging_handler(
        self,
        level: int | str = logging.NOTSET,
        *,
        logger_provider: LoggerProvider | None = None,
        resource: Resource | Mapping[str, Any] | None = None,
        log_code_attributes: bool | None = None,
    ) -> LogxpyLoggingHandler:
        """A ``logging.Handler`` writing stdlib records straight into this processor's file
        and writer thread, as the OTel ``LoggingHandler`` path would write them (see
        :class:`~logxpy_otel.LogxpyLoggingHandler`). Closing it leaves this processor running.
        """
        from .logging_handler import LogxpyLoggingHandler

        return LogxpyLoggingHandler(
            level=level,
            processor=self,
            logger_provider=logger_provider,
            resource=resource,
            log_code_attributes=log_code_attributes,
        )
