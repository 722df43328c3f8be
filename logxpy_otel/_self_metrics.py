"""Self-observability: the health of our processor, exporter and fallback as OpenTelemetry metrics.

Off unless ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true`` (the variable that turns on
the SDK's own processor and exporter metrics; ours then go to the global meter provider)
or a ``meter_provider=`` is given (it wins over the variable). The names, units and
descriptions are those of the semantic conventions (``otel.sdk.*``, taken from
``opentelemetry-semantic-conventions``), so ours sit on the same dashboards as the SDK's
batch processor and the OTLP exporters; the fallback's routing is in the ``logxpy``
namespace. Every instance is one component: ``otel.component.type`` is
``logxpy_log_processor``, ``logxpy_log_exporter`` or ``logxpy_fallback_log_exporter`` and
``otel.component.name`` is ``<type>/<n>`` (``n`` counts instances of that type from 0).

=========================================  ========================  ===================================
instrument                                 who                       value
=========================================  ========================  ===================================
``otel.sdk.processor.log.processed``       processor                 log records written (no ``error.type``)
                                                                     and dropped (``error.type`` = the
                                                                     drop reason: ``queue_full``,
                                                                     ``evicted``, ``shutdown``,
                                                                     ``io_error``...)
``otel.sdk.processor.log.queue.size``      processor, threaded       records in the queue
                                           exporter
``otel.sdk.processor.log.queue.capacity``  the same                  ``max_queue_size``
``otel.sdk.exporter.log.exported``         processor, exporter       records written; failed ones with
                                                                     ``error.type`` (the processor: the
                                                                     write failures ``io_error``,
                                                                     ``no_destination``; the exporter:
                                                                     every drop reason)
``otel.sdk.exporter.log.inflight``         processor, exporter       records in the batch being written
``otel.sdk.exporter.operation.duration``   processor, exporter       seconds per batch write
                                                                     (``error.type`` when it failed)
``logxpy.fallback.records``                fallback                  records by ``logxpy.fallback.route``
                                                                     (``live``: the collector took them;
                                                                     ``file``: written to the file)
``logxpy.fallback.batches``                fallback                  the same, in batches
``logxpy.fallback.failures``               fallback                  live sends and probes that failed
``logxpy.fallback.breaker.status``         fallback                  1 for the breaker's state
                                                                     (``logxpy.fallback.breaker.state``:
                                                                     closed, open, probing), 0 for the
                                                                     others
=========================================  ========================  ===================================

Nothing is added to the application's logging call: counters, queue sizes and the
breaker are observable instruments whose callbacks (run by the metric reader) read the
same snapshot ``.metrics`` gives, so they agree with it exactly; the duration is recorded
by the thread that wrote the batch (``AsyncWriter.observe_batches``): the writer thread,
or the exporter's caller when it writes there (the SDK's batch worker; the application
only under ``SimpleLogRecordProcessor``). The variable also turns on the SDK's own
metrics, among them ``otel.sdk.log.created``, a counter the SDK adds to on every logging
call: that one costs the caller (``meter_provider=`` turns ours on without it). Callbacks never
log and swallow their own failures (the SDK would log them, and a log could come back to
us). They hold no strong reference to a writer or a fallback; after the owner's
``shutdown()`` they report the final values, and nothing new.

One set of instruments per meter provider, whose callbacks go over every live instance:
an SDK meter keeps only the first callbacks of an observable instrument of a given name.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import (
    CallbackOptions,
    Counter,
    Histogram,
    Meter,
    MeterProvider,
    NoOpMeter,
    Observation,
    UpDownCounter,
)
from opentelemetry.semconv._incubating.attributes.otel_attributes import (
    OTEL_COMPONENT_NAME,
    OTEL_COMPONENT_TYPE,
)
from opentelemetry.semconv._incubating.metrics.otel_metrics import (
    create_otel_sdk_exporter_log_exported,
    create_otel_sdk_exporter_log_inflight,
    create_otel_sdk_exporter_operation_duration,
    create_otel_sdk_processor_log_processed,
    create_otel_sdk_processor_log_queue_capacity,
    create_otel_sdk_processor_log_queue_size,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE

from . import _lifecycle
from ._diagnostics import logger
from ._writer import AsyncMetrics, AsyncWriter, DropReason

if TYPE_CHECKING:
    from .fallback import FallbackLogRecordExporter, FallbackMetrics

__all__ = [
    "ENABLED_VARIABLE",
    "EXPORTER_TYPE",
    "FALLBACK_TYPE",
    "PROCESSOR_TYPE",
    "FallbackSource",
    "WriterSource",
    "observe_fallback",
    "observe_writer",
]

#: The SDK's switch for its own metrics (``opentelemetry.sdk.environment_variables``).
ENABLED_VARIABLE: Final = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"

#: ``otel.component.type`` of each of ours (none of the standard values applies).
PROCESSOR_TYPE: Final = "logxpy_log_processor"
EXPORTER_TYPE: Final = "logxpy_log_exporter"
FALLBACK_TYPE: Final = "logxpy_fallback_log_exporter"

#: The fallback's instruments and attributes (no semantic convention covers them).
FALLBACK_RECORDS: Final = "logxpy.fallback.records"
FALLBACK_BATCHES: Final = "logxpy.fallback.batches"
FALLBACK_FAILURES: Final = "logxpy.fallback.failures"
FALLBACK_BREAKER_STATUS: Final = "logxpy.fallback.breaker.status"
#: ``live`` (the collector took them) or ``file`` (written to the local file instead).
FALLBACK_ROUTE: Final = "logxpy.fallback.route"
#: ``closed``, ``open`` or ``probing`` (see ``fallback.BreakerState``).
FALLBACK_BREAKER_STATE: Final = "logxpy.fallback.breaker.state"

#: Drop reasons that are a failed write (the exporter side of the processor).
_WRITE_FAILURES: Final = frozenset({DropReason.IO_ERROR.value, DropReason.NO_DESTINATION.value})

#: Histogram bounds for a batch appended to a local file (the SDK default starts at 5 s).
# fmt: off
_DURATION_BOUNDS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
# fmt: on

_Attributes = Mapping[str, str]


def check_provider(meter_provider: object) -> None:
    """A ``meter_provider=`` keyword of another kind fails at construction, naming it (not
    a warning that self-metrics are off, later)."""
    if meter_provider is not None and not isinstance(meter_provider, MeterProvider):
        raise TypeError(
            f"meter_provider must be an OpenTelemetry MeterProvider; got {type(meter_provider).__name__}"
        )


def resolve(meter_provider: MeterProvider | None) -> MeterProvider | None:
    """The meter provider to report to, or None when self-metrics are off.

    An explicit one wins; else the variable decides, and then the global one is used.
    """
    if meter_provider is not None:
        return meter_provider
    if os.environ.get(ENABLED_VARIABLE, "").strip().lower() != "true":
        return None
    return otel_metrics.get_meter_provider()


# -- names, units and descriptions from the semantic conventions --------------------------


@dataclass(frozen=True, slots=True)
class _Spec:
    name: str
    unit: str
    description: str
    #: True for a counter (monotonic), False for an up-down counter or a histogram.
    monotonic: bool = False


class _SpecMeter(NoOpMeter):
    """Takes down what a semantic-conventions ``create_*`` helper asks a meter for.

    The helpers make synchronous instruments; ours are observable, with the same name,
    unit and description.
    """

    spec: _Spec | None = None

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Counter:
        self.spec = _Spec(name, unit, description, monotonic=True)
        return super().create_counter(name, unit, description)

    def create_up_down_counter(self, name: str, unit: str = "", description: str = "") -> UpDownCounter:
        self.spec = _Spec(name, unit, description)
        return super().create_up_down_counter(name, unit, description)

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
    ) -> Histogram:
        self.spec = _Spec(name, unit, description)
        return super().create_histogram(name, unit, description)


def _spec(helper: Callable[[Meter], object]) -> _Spec:
    meter = _SpecMeter("logxpy_otel")
    helper(meter)
    assert meter.spec is not None
    return meter.spec


# -- instance names -----------------------------------------------------------------------

_numbers_lock = threading.Lock()
_numbers: dict[str, itertools.count[int]] = {}


def _component(component_type: str) -> dict[str, str]:
    """``otel.component.type`` and a unique ``otel.component.name`` (``<type>/<n>``, as the SDK does)."""
    with _numbers_lock:
        number = next(_numbers.setdefault(component_type, itertools.count()))
    return {OTEL_COMPONENT_TYPE: component_type, OTEL_COMPONENT_NAME: f"{component_type}/{number}"}


# -- sources: one per instance, held weakly on their side ---------------------------------


class _Source(Protocol):
    def alive(self) -> bool: ...


_S = TypeVar("_S", bound=_Source)


class WriterSource:
    """What one processor or exporter reports: read from its writer's snapshot."""

    def __init__(self, writer: AsyncWriter, component_type: str, instruments: _Instruments) -> None:
        self.provider = instruments.provider
        self._ref: Callable[[], AsyncWriter | None] = weakref.ref(writer)
        self._final: AsyncMetrics | None = None
        self._processor = component_type == PROCESSOR_TYPE
        #: Whether it has a queue of its own (the processor; an exporter with a writer thread).
        self.queued = self._processor or writer.config.async_enabled
        self._capacity = writer.config.max_queue_size
        self._attrs = _component(component_type)
        self._errors: dict[str, dict[str, str]] = {}
        self._duration = instruments.duration
        writer.observe_batches(self._batch_written)

    @property
    def attributes(self) -> _Attributes:
        return self._attrs

    def alive(self) -> bool:
        return self._final is not None or self._ref() is not None

    def _error(self, reason: str) -> _Attributes:
        attrs = self._errors.get(reason)
        if attrs is None:
            attrs = self._errors[reason] = {**self._attrs, ERROR_TYPE: reason}
        return attrs

    def _snapshot(self) -> AsyncMetrics | None:
        final = self._final
        if final is not None:
            return final
        writer = self._ref()
        return None if writer is None else writer.metrics

    def _batch_written(self, records: int, seconds: float, ok: bool) -> None:
        """In the thread that wrote the batch (the writer's): one duration per batch."""
        attrs: _Attributes
        if ok:
            attrs = self._attrs
        else:
            writer = self._ref()
            no_destination = writer is not None and not writer.destinations
            attrs = self._error(DropReason.NO_DESTINATION if no_destination else DropReason.IO_ERROR)
        try:
            self._duration.record(max(seconds, 0.0), attrs)
        except Exception:  # noqa: BLE001 - never into the writer, never a log
            pass

    def close(self) -> None:
        """At the owner's shutdown: keep the final values, stop observing, let the writer go."""
        writer = self._ref()
        if writer is None:
            return
        try:
            self._final = writer.metrics
        except Exception:  # noqa: BLE001
            self._final = None
        writer.observe_batches(None)
        self._ref = _nothing

    # One method per instrument; each returns the observations of this instance.

    def processed(self) -> list[Observation]:
        m = self._snapshot()
        if m is None or not self._processor:
            return []
        out = [Observation(m.written - m.span_lines_written, self._attrs)]
        out += [Observation(n, self._error(reason)) for reason, n in _log_drops(m).items()]
        return out

    def queue_size(self) -> list[Observation]:
        m = self._snapshot() if self.queued else None
        return [] if m is None else [Observation(m.queue_depth, self._attrs)]

    def queue_capacity(self) -> list[Observation]:
        if not self.queued or not self.alive():
            return []
        return [Observation(self._capacity, self._attrs)]

    def exported(self) -> list[Observation]:
        m = self._snapshot()
        if m is None:
            return []
        out = [Observation(m.written - m.span_lines_written, self._attrs)]
        for reason, n in _log_drops(m).items():
            if not self._processor or reason in _WRITE_FAILURES:
                out.append(Observation(n, self._error(reason)))
        return out

    def inflight(self) -> list[Observation]:
        m = self._snapshot()
        return [] if m is None else [Observation(max(m.pending - m.queue_depth, 0), self._attrs)]


def _log_drops(m: AsyncMetrics) -> dict[str, int]:
    """The drops of log records alone, by reason: span lines (a span processor sharing the
    writer) are no ``{log_record}``."""
    spans = m.span_lines_dropped_by_reason
    drops = {reason: n - spans.get(reason, 0) for reason, n in m.dropped_by_reason.items()}
    return {reason: n for reason, n in drops.items() if n}


class FallbackSource:
    """What one :class:`~logxpy_otel.fallback.FallbackLogRecordExporter` reports."""

    def __init__(self, fallback: FallbackLogRecordExporter, instruments: _Instruments) -> None:
        from .fallback import BreakerState

        self.provider = instruments.provider
        self._ref: Callable[[], FallbackLogRecordExporter | None] = weakref.ref(fallback)
        self._final: FallbackMetrics | None = None
        attrs = self._attrs = _component(FALLBACK_TYPE)
        self._live = {**attrs, FALLBACK_ROUTE: "live"}
        self._file = {**attrs, FALLBACK_ROUTE: "file"}
        self._states = {state: {**attrs, FALLBACK_BREAKER_STATE: state.value} for state in BreakerState}

    @property
    def attributes(self) -> _Attributes:
        return self._attrs

    def alive(self) -> bool:
        return self._final is not None or self._ref() is not None

    def _snapshot(self) -> FallbackMetrics | None:
        final = self._final
        if final is not None:
            return final
        fallback = self._ref()
        return None if fallback is None else fallback.metrics

    def close(self) -> None:
        fallback = self._ref()
        if fallback is None:
            return
        try:
            self._final = fallback.metrics
        except Exception:  # noqa: BLE001
            self._final = None
        self._ref = _nothing

    def records(self) -> list[Observation]:
        m = self._snapshot()
        if m is None:
            return []
        return [Observation(m.primary_records, self._live), Observation(m.fallback_records, self._file)]

    def batches(self) -> list[Observation]:
        m = self._snapshot()
        if m is None:
            return []
        return [Observation(m.primary_batches, self._live), Observation(m.fallback_batches, self._file)]

    def failures(self) -> list[Observation]:
        m = self._snapshot()
        return [] if m is None else [Observation(m.primary_failures, self._attrs)]

    def breaker(self) -> list[Observation]:
        m = self._snapshot()
        if m is None:
            return []
        return [Observation(int(state is m.breaker_state), attrs) for state, attrs in self._states.items()]


def _nothing() -> None:
    return None


# -- instruments: one set per meter provider ----------------------------------------------


class _Instruments:
    """The instruments of one meter provider; their callbacks go over its live sources."""

    def __init__(self, provider: MeterProvider) -> None:
        from . import __version__

        self.provider = provider
        self._meter = provider.get_meter("logxpy_otel", __version__)
        self._lock = threading.Lock()
        self._writers: tuple[WriterSource, ...] = ()
        self._fallbacks: tuple[FallbackSource, ...] = ()
        self._writer_instruments = self._fallback_instruments = False
        spec = _spec(create_otel_sdk_exporter_operation_duration)
        #: Per batch, from the writer thread (a synchronous instrument).
        self.duration = self._meter.create_histogram(
            spec.name, spec.unit, spec.description, explicit_bucket_boundaries_advisory=_DURATION_BOUNDS
        )

    def add_writer(self, writer: AsyncWriter, component_type: str) -> WriterSource:
        source = WriterSource(writer, component_type, self)
        with self._lock:
            self._writers = (*self._writers, source)
            if self._writer_instruments:
                return source
            self._writer_instruments = True
        self._observable(create_otel_sdk_processor_log_processed, self._writers_of(WriterSource.processed))
        self._observable(create_otel_sdk_processor_log_queue_size, self._writers_of(WriterSource.queue_size))
        self._observable(
            create_otel_sdk_processor_log_queue_capacity, self._writers_of(WriterSource.queue_capacity)
        )
        self._observable(create_otel_sdk_exporter_log_exported, self._writers_of(WriterSource.exported))
        self._observable(create_otel_sdk_exporter_log_inflight, self._writers_of(WriterSource.inflight))
        return source

    def add_fallback(self, fallback: FallbackLogRecordExporter) -> FallbackSource:
        source = FallbackSource(fallback, self)
        with self._lock:
            self._fallbacks = (*self._fallbacks, source)
            if self._fallback_instruments:
                return source
            self._fallback_instruments = True
        meter = self._meter
        meter.create_observable_counter(
            FALLBACK_RECORDS,
            [self._fallbacks_of(FallbackSource.records)],
            "{log_record}",
            "Log records the fallback exporter sent live to the collector or wrote to the local file.",
        )
        meter.create_observable_counter(
            FALLBACK_BATCHES,
            [self._fallbacks_of(FallbackSource.batches)],
            "{batch}",
            "Batches the fallback exporter sent live to the collector or wrote to the local file.",
        )
        meter.create_observable_counter(
            FALLBACK_FAILURES,
            [self._fallbacks_of(FallbackSource.failures)],
            "{failure}",
            "Live sends and probes of the collector that failed or timed out.",
        )
        meter.create_observable_up_down_counter(
            FALLBACK_BREAKER_STATUS,
            [self._fallbacks_of(FallbackSource.breaker)],
            "1",
            "1 for the state the fallback exporter's breaker is in, 0 for the others.",
        )
        return source

    def _observable(
        self, helper: Callable[[Meter], object], callback: Callable[[CallbackOptions], Iterable[Observation]]
    ) -> None:
        spec = _spec(helper)
        if spec.monotonic:
            self._meter.create_observable_counter(spec.name, [callback], spec.unit, spec.description)
        else:
            self._meter.create_observable_up_down_counter(spec.name, [callback], spec.unit, spec.description)

    def _writers_of(
        self, read: Callable[[WriterSource], list[Observation]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_options: CallbackOptions) -> Iterable[Observation]:
            out, gone = _collect(self._writers, read)
            if gone:
                with self._lock:
                    self._writers = tuple(s for s in self._writers if s.alive())
            return out

        return callback

    def _fallbacks_of(
        self, read: Callable[[FallbackSource], list[Observation]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_options: CallbackOptions) -> Iterable[Observation]:
            out, gone = _collect(self._fallbacks, read)
            if gone:
                with self._lock:
                    self._fallbacks = tuple(s for s in self._fallbacks if s.alive())
            return out

        return callback


def _collect(
    sources: Sequence[_S], read: Callable[[_S], list[Observation]]
) -> tuple[list[Observation], bool]:
    """Every live source's observations (a failing one gives none: never raised, never
    logged), and whether a source is gone (its owner collected without a shutdown)."""
    out: list[Observation] = []
    gone = False
    for source in sources:
        try:
            if source.alive():
                out += read(source)
            else:
                gone = True
        except Exception:  # noqa: BLE001 - the SDK would log it, and the log could come to us
            pass
    return out, gone


_registry_lock = threading.Lock()
_registry: weakref.WeakKeyDictionary[MeterProvider, _Instruments] = weakref.WeakKeyDictionary()
#: The global provider's instruments: made through the first global provider seen (the
#: API's proxy, if none was set yet) and kept for every later instance, so that one meter
#: never gets the same instruments twice (an SDK meter would drop the second callbacks).
_global: list[_Instruments] = []


def _after_fork_in_child() -> None:
    """Fresh locks in a forked child: one held by another thread at the fork (the metric
    reader's collection, a processor being made) would never be let go there."""
    global _numbers_lock, _registry_lock
    _numbers_lock = threading.Lock()
    _registry_lock = threading.Lock()
    for instruments in (*_global, *list(_registry.values())):
        instruments._lock = threading.Lock()


_lifecycle.reset_after_fork(sys.modules[__name__])


def _instruments(provider: MeterProvider) -> _Instruments:
    with _registry_lock:
        if _global and provider is _global[0].provider:
            return _global[0]  # e.g. the proxy, handed on by WriterOwner.taking_over
        if provider is otel_metrics.get_meter_provider():
            if not _global:
                _global.append(_Instruments(provider))
            return _global[0]
        try:
            found = _registry.get(provider)
        except TypeError:  # not weakly referenceable: one set per call would lose callbacks
            found = None
        if found is None:
            found = _Instruments(provider)
            try:
                _registry[provider] = found
            except TypeError:
                pass
        return found


def observe_writer(
    writer: AsyncWriter, component_type: str, meter_provider: MeterProvider | None
) -> WriterSource | None:
    """Report ``writer`` as one processor or exporter, if self-metrics are on; never raises."""
    provider = resolve(meter_provider)
    if provider is None:
        return None
    try:
        return _instruments(provider).add_writer(writer, component_type)
    except Exception as exc:  # noqa: BLE001 - self-metrics are never worth a failed set-up
        logger.warning("logxpy-otel: self-metrics are off: %s", type(exc).__name__)
        return None


def observe_fallback(
    fallback: FallbackLogRecordExporter, meter_provider: MeterProvider | None
) -> FallbackSource | None:
    """Report ``fallback``'s routing and breaker, if self-metrics are on; never raises."""
    provider = resolve(meter_provider)
    if provider is None:
        return None
    try:
        return _instruments(provider).add_fallback(fallback)
    except Exception as exc:  # noqa: BLE001
        logger.warning("logxpy-otel: self-metrics are off: %s", type(exc).__name__)
        return None


def component_type_of(owner: Any) -> str:
    """Ours for a processor or an exporter."""
    from opentelemetry.sdk._logs import LogRecordProcessor

    return PROCESSOR_TYPE if isinstance(owner, LogRecordProcessor) else EXPORTER_TYPE
