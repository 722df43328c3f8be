"""Every private name of the OpenTelemetry SDK that logxpy-otel uses, and why, in one place.

The span processor reads a span's own containers (see the end of this module).

Zero-code set-up (:mod:`logxpy_otel._zero_code`) replaces, on the SDK's
``LoggerProvider``, the ``BatchLogRecordProcessor`` that the SDK's configurator put in
front of our exporter. The SDK has no public way to list or replace a provider's
processors, or to reach a batch processor's exporter, so the functions below read (and,
for the list of processors, replace) private state. Each checks the shape it expects and
raises :class:`UnexpectedShape` when it finds another one (another SDK version); the
caller then leaves the set-up as the SDK made it. Written against opentelemetry-sdk
1.39-1.45.

At exit, our exporter asks the batch processor in front of it to hand over what it holds
before the open trees are closed (:func:`batch_feeding` recognises it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import (
    ConcurrentMultiLogRecordProcessor,
    LoggerProvider,
    LogRecordProcessor,
    SynchronousMultiLogRecordProcessor,
)
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, Span, _Span

try:  # the queue and worker behind BatchLogRecordProcessor (and the span one)
    from opentelemetry.sdk._shared_internal import BatchProcessor as _BatchProcessor
except ImportError:  # another SDK layout: no batch processor is recognised at exit
    _BatchProcessor = None  # type: ignore[assignment, misc]

__all__ = [
    "SPAN_TYPES",
    "UnexpectedShape",
    "batch_exporter",
    "batch_feeding",
    "processors",
    "replace_processors",
    "span_attributes",
    "span_events",
    "span_links",
]

#: ``LoggerProvider`` -> the multi-processor it hands every record to. Each ``Logger`` of
#: the provider holds this same object, so what we change in it applies to every logger,
#: created before the change or after.
_MULTI = "_multi_log_record_processor"
#: multi-processor -> the tuple of processors, in the order they were added. ``on_emit``
#: iterates whatever tuple the attribute holds, without a lock, and
#: ``add_log_record_processor`` replaces the whole tuple: so we replace it too, never mutate.
_PROCESSORS = "_log_record_processors"
#: multi-processor -> the ``threading.Lock`` that ``add_log_record_processor`` holds while it
#: replaces the tuple; we hold it while we do, so an ``add`` in another thread is not lost.
_LOCK = "_lock"
#: ``BatchLogRecordProcessor`` -> its ``BatchProcessor`` (queue, worker thread, exporter).
_BATCH = "_batch_processor"
#: ``BatchProcessor`` -> the exporter it exports to: how we recognise the batch processor
#: that the SDK put around our exporter.
_EXPORTER = "_exporter"


class UnexpectedShape(Exception):
    """The SDK's private state is not what this module was written against."""


def _multi(
    provider: LoggerProvider,
) -> SynchronousMultiLogRecordProcessor | ConcurrentMultiLogRecordProcessor:
    multi = getattr(provider, _MULTI, None)
    if not isinstance(multi, SynchronousMultiLogRecordProcessor | ConcurrentMultiLogRecordProcessor):
        raise UnexpectedShape(f"LoggerProvider.{_MULTI} is {type(multi).__name__}")
    lock = getattr(multi, _LOCK, None)
    if not (hasattr(lock, "__enter__") and hasattr(lock, "__exit__")):
        raise UnexpectedShape(f"{type(multi).__name__}.{_LOCK} is {type(lock).__name__}")
    _tuple(multi)
    return multi


def _tuple(multi: object) -> tuple[LogRecordProcessor, ...]:
    current = getattr(multi, _PROCESSORS, None)
    if not isinstance(current, tuple):
        raise UnexpectedShape(f"{type(multi).__name__}.{_PROCESSORS} is {type(current).__name__}")
    return current


def processors(provider: LoggerProvider) -> tuple[LogRecordProcessor, ...]:
    """The processors on ``provider``, in order."""
    return _tuple(_multi(provider))


def batch_feeding(caller: object, exporter: object) -> Any:
    """``caller`` (the object whose method is calling ``exporter.export``) when it is the
    SDK's batch processor around ``exporter``, else None: one that can be asked to hand
    over what it holds (``force_flush``)."""
    ours = (
        _BatchProcessor is not None
        and isinstance(caller, _BatchProcessor)
        and getattr(caller, _EXPORTER, None) is exporter
        and callable(getattr(caller, "force_flush", None))
    )
    return caller if ours else None


def batch_feeders(exporter: object) -> list[Any]:
    """Every SDK batch processor around ``exporter``, found by its worker thread (a thread
    whose target is one of its methods): also those that have not called ``export`` yet,
    which :func:`batch_feeding` never saw (a short script; a forked child's)."""
    found: list[Any] = []
    for thread in threading.enumerate():
        target = getattr(thread, "_target", None)  # (Thread keeps it while it runs)
        feeder = batch_feeding(getattr(target, "__self__", None), exporter)
        if feeder is not None and all(feeder is not other for other in found):
            found.append(feeder)
    return found


def batch_exporter(processor: BatchLogRecordProcessor) -> object:
    """The exporter of a batch processor."""
    batch = getattr(processor, _BATCH, None)
    if batch is None or not hasattr(batch, _EXPORTER):
        raise UnexpectedShape(f"BatchLogRecordProcessor.{_BATCH}.{_EXPORTER} not found")
    return getattr(batch, _EXPORTER)


def replace_processors(
    provider: LoggerProvider, replacements: Sequence[tuple[LogRecordProcessor, LogRecordProcessor]]
) -> list[LogRecordProcessor]:
    """Put each ``(old, new)`` pair's ``new`` in ``old``'s place on ``provider`` (by
    identity), for every logger at once; returns the ``old`` ones that were on it."""
    multi = _multi(provider)
    by_id = {id(old): new for old, new in replacements}
    with getattr(multi, _LOCK):
        current = _tuple(multi)
        setattr(multi, _PROCESSORS, tuple(by_id.get(id(p), p) for p in current))
    return [p for p in current if id(p) in by_id]


# -- spans (LogxpySpanProcessor) --------------------------------------------------------
#
# ``ReadableSpan.attributes`` wraps the span's ``BoundedAttributes`` in a mapping proxy, so
# reading each value goes through its lock and Python-level methods (about 1.5 us for two
# attributes here, a quarter of a span line's cost), and ``.events``/``.links`` copy the
# span's bounded lists into tuples. The span processor reads the span's own containers
# instead, where they have the shape written against (else the public properties): only
# in ``on_start`` (the span not yet handed to anyone) and ``on_end`` (the span ended,
# no longer changing), so no other thread changes them meanwhile.

#: ``ReadableSpan`` -> its ``BoundedAttributes``; that -> its plain dict.
_SPAN_ATTRIBUTES = "_attributes"
_ATTRIBUTES_DICT = "_dict"
#: ``ReadableSpan`` -> its events and links (``BoundedList`` or a tuple).
_SPAN_EVENTS = "_events"
_SPAN_LINKS = "_links"


#: The span types whose private fields the C span encoder reads by getattr (``_name``,
#: ``_context``, ``_attributes``...: see ``span_field_text`` in _speedups.c): the SDK's
#: own, exactly. A span of another type, or one without those fields, is encoded from its
#: properties.
SPAN_TYPES: Final = (_Span, Span, ReadableSpan)


def span_attributes(span: object) -> Mapping[str, Any] | None:
    """The span's attributes as the SDK holds them (no proxy, no lock per item)."""
    held = getattr(span, _SPAN_ATTRIBUTES, None)
    if type(held) is BoundedAttributes:
        plain = getattr(held, _ATTRIBUTES_DICT, None)
        if type(plain) is dict:
            return plain
    attributes: Mapping[str, Any] | None = getattr(span, "attributes", None)
    return attributes


def span_events(span: object) -> Iterable[Any]:
    """The span's events, without a copy."""
    held = getattr(span, _SPAN_EVENTS, None)
    return held if held is not None else getattr(span, "events", ())


def span_links(span: object) -> Iterable[Any]:
    """The span's links, without a copy."""
    held = getattr(span, _SPAN_LINKS, None)
    return held if held is not None else getattr(span, "links", ())
