"""Self-metrics (issue 17): the processor's, exporter's and fallback's health as OTel metrics.

Read with an ``InMemoryMetricReader``; every count is checked against the snapshot
``.metrics`` gives, which the instruments read too.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from _helpers import Collect, Failing, Gated, assert_accounting, item
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Histogram, InMemoryMetricReader, Sum
from opentelemetry.semconv._incubating.metrics import otel_metrics as semconv

from logxpy_otel import AsyncConfig, DropReason, LogxpyLogRecordExporter, LogxpyLogRecordProcessor
from logxpy_otel import _self_metrics as self_metrics
from logxpy_otel.fallback import BreakerState, FallbackLogRecordExporter

COMPONENT_TYPE, COMPONENT_NAME, ERROR_TYPE = "otel.component.type", "otel.component.name", "error.type"
PROCESSED = semconv.OTEL_SDK_PROCESSOR_LOG_PROCESSED
QUEUE_SIZE = semconv.OTEL_SDK_PROCESSOR_LOG_QUEUE_SIZE
CAPACITY = semconv.OTEL_SDK_PROCESSOR_LOG_QUEUE_CAPACITY
EXPORTED = semconv.OTEL_SDK_EXPORTER_LOG_EXPORTED
INFLIGHT = semconv.OTEL_SDK_EXPORTER_LOG_INFLIGHT
DURATION = semconv.OTEL_SDK_EXPORTER_OPERATION_DURATION


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meters(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield provider
    if not provider._shutdown:  # a test may have shut it down first
        provider.shutdown()


@pytest.fixture
def logs() -> Iterator[LoggerProvider]:
    provider = LoggerProvider(shutdown_on_exit=False)
    yield provider
    provider.shutdown()


#: metric name -> attributes -> data point
Points = dict[str, dict[frozenset[tuple[str, Any]], Any]]


def collect(reader: InMemoryMetricReader) -> Points:
    """Our data points (scope ``logxpy_otel``), by metric name and attribute set."""
    out: Points = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            if sm.scope.name != "logxpy_otel":
                continue
            for metric in sm.metrics:
                points = out.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    points[frozenset(point.attributes.items())] = point
    return out


def attrs(owner: Any, **extra: str) -> frozenset[tuple[str, Any]]:
    """The attribute set of ``owner``'s points (its component), plus ``extra`` (``error_type``...)."""
    source = owner._metrics_source
    assert source is not None, "self-metrics are off for this owner"
    more = {ERROR_TYPE if key == "error_type" else key: value for key, value in extra.items()}
    return frozenset({**source.attributes, **more}.items())


def value(points: Points, name: str, owner: Any, **extra: str) -> Any:
    return points[name][attrs(owner, **extra)].value


def values(points: Points, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
    """Every point's value of ``name`` (no timestamps), by attribute set."""
    return {key: point.value for key, point in points.get(name, {}).items()}


def errors_of(points: Points, name: str, owner: Any) -> dict[str, int]:
    """``error.type -> value`` of ``owner``'s failed points of ``name``."""
    component = dict(attrs(owner))
    out = {}
    for key, point in points.get(name, {}).items():
        a = dict(key)
        if ERROR_TYPE in a and all(a.get(k) == v for k, v in component.items()):
            out[a[ERROR_TYPE]] = point.value
    return out


def emit(logs: LoggerProvider, count: int, scope: str = "app") -> None:
    logger = logs.get_logger(scope)
    for n in range(count):
        logger.emit(body=f"r{n}")


def readable(count: int) -> list[ReadableLogRecord]:
    from opentelemetry._logs import LogRecord
    from opentelemetry.sdk.resources import Resource

    return [ReadableLogRecord(LogRecord(body=f"r{n}"), resource=Resource({})) for n in range(count)]


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    """Poll a state nothing signals (the fallback's breaker); bounded."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


class Collector(LogRecordExporter):
    """A scripted primary: up or down as the test says."""

    def __init__(self) -> None:
        self.up = True

    def export(self, batch: Any) -> LogRecordExportResult:
        if not self.up:
            raise ConnectionRefusedError("collector down")
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class Keep(LogRecordExporter):
    def __init__(self) -> None:
        self.records = 0

    def export(self, batch: Any) -> LogRecordExportResult:
        self.records += len(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


# -- on, off, names -------------------------------------------------------------------------


def test_off_unless_the_variable_or_an_argument_says_so(
    monkeypatch: pytest.MonkeyPatch, meters: MeterProvider, reader: InMemoryMetricReader
) -> None:
    monkeypatch.delenv(self_metrics.ENABLED_VARIABLE, raising=False)
    off = LogxpyLogRecordProcessor(destinations=[Collect()])
    assert off._metrics_source is None
    monkeypatch.setenv(self_metrics.ENABLED_VARIABLE, "false")
    given = LogxpyLogRecordProcessor(destinations=[Collect()], meter_provider=meters)
    assert given._metrics_source is not None, "an explicit meter provider wins over the variable"
    given.writer.enqueue(item(1))
    assert given.force_flush(5_000)
    assert value(collect(reader), PROCESSED, given) == given.metrics.written == 1
    off.shutdown()
    given.shutdown()


def test_the_variable_reports_to_the_global_meter_provider() -> None:
    """In a fresh process: the variable off, on before the global provider is set (through
    the API's proxy), on after it, and an explicit provider, which wins."""
    script = textwrap.dedent(
        """
        import json, os
        from opentelemetry.metrics import set_meter_provider
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from logxpy_otel import LogxpyLogRecordExporter, LogxpyLogRecordProcessor

        VAR = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
        sink = lambda data: None
        os.environ.pop(VAR, None)
        off = LogxpyLogRecordProcessor(destinations=[sink])
        os.environ[VAR] = "true"
        early = LogxpyLogRecordProcessor(destinations=[sink])
        donor = LogxpyLogRecordExporter(destinations=[sink])
        global_reader = InMemoryMetricReader()
        set_meter_provider(MeterProvider(metric_readers=[global_reader]))
        late = LogxpyLogRecordProcessor(destinations=[sink])
        taken = LogxpyLogRecordProcessor.taking_over(donor)  # the donor's provider: the proxy
        own_reader = InMemoryMetricReader()
        own_meters = MeterProvider(metric_readers=[own_reader])
        own = LogxpyLogRecordProcessor(destinations=[sink], meter_provider=own_meters)
        logs = LoggerProvider(shutdown_on_exit=False)
        for p in (off, early, late, taken, own):
            logs.add_log_record_processor(p)
        for n in range(3):
            logs.get_logger("app").emit(body=str(n))
        logs.force_flush()

        def processed(reader):
            out = {}
            for rm in reader.get_metrics_data().resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name == "otel.sdk.processor.log.processed":
                            for p in m.data.data_points:
                                out[p.attributes["otel.component.name"]] = p.value
            return out

        name = lambda p: p._metrics_source and p._metrics_source.attributes["otel.component.name"]
        print(json.dumps({
            "names": [name(p) for p in (off, early, late, taken, own)],
            "global": processed(global_reader),
            "own": processed(own_reader),
        }))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != self_metrics.ENABLED_VARIABLE}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "no warning on the way"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    off, early, late, taken, own = report["names"]
    assert off is None
    assert report["global"] == {early: 3, late: 3, taken: 3}, "through the proxy's instruments, once each"
    assert report["own"] == {own: 3}


def test_names_units_and_kinds_are_the_semantic_conventions(
    meters: MeterProvider, reader: InMemoryMetricReader, logs: LoggerProvider
) -> None:
    processor = LogxpyLogRecordProcessor(destinations=[Collect()], meter_provider=meters)
    logs.add_log_record_processor(processor)
    emit(logs, 2)
    assert processor.force_flush(5_000)
    data = reader.get_metrics_data()
    assert data is not None
    (scope,) = [
        sm for rm in data.resource_metrics for sm in rm.scope_metrics if sm.scope.name == "logxpy_otel"
    ]
    kinds = {m.name: (m.unit, type(m.data), getattr(m.data, "is_monotonic", None)) for m in scope.metrics}
    assert kinds == {
        PROCESSED: ("{log_record}", Sum, True),
        QUEUE_SIZE: ("{log_record}", Sum, False),
        CAPACITY: ("{log_record}", Sum, False),
        EXPORTED: ("{log_record}", Sum, True),
        INFLIGHT: ("{log_record}", Sum, False),
        DURATION: ("s", Histogram, None),
    }
    point = collect(reader)[PROCESSED][attrs(processor)]
    assert dict(point.attributes)[COMPONENT_TYPE] == "logxpy_log_processor"
    assert dict(point.attributes)[COMPONENT_NAME].startswith("logxpy_log_processor/")


def test_every_instance_is_reported_under_its_own_name(
    meters: MeterProvider, reader: InMemoryMetricReader
) -> None:
    """One instrument set per provider whose callbacks cover every instance: an SDK meter
    keeps only the first callbacks of an observable instrument of a given name."""
    first = LogxpyLogRecordProcessor(destinations=[Collect()], meter_provider=meters)
    second = LogxpyLogRecordProcessor(destinations=[Collect()], meter_provider=meters)
    exporter = LogxpyLogRecordExporter(destinations=[Collect()], meter_provider=meters)
    names = {dict(attrs(o))[COMPONENT_NAME] for o in (first, second, exporter)}
    assert len(names) == 3
    for n, owner in enumerate((first, second)):
        for k in range(n + 1):
            owner.writer.enqueue(item(k))
        assert owner.force_flush(5_000)
    assert exporter.export(readable(3)) is LogRecordExportResult.SUCCESS
    points = collect(reader)
    assert value(points, PROCESSED, first) == 1
    assert value(points, PROCESSED, second) == 2
    assert value(points, EXPORTED, exporter) == 3
    assert attrs(exporter) not in points[PROCESSED], "the SDK processor in front counts processed"
    for owner in (first, second, exporter):
        owner.shutdown()


# -- the processor ------------------------------------------------------------------------------


def test_drop_newest_overload_counts_are_the_snapshots(
    meters: MeterProvider, reader: InMemoryMetricReader, logs: LoggerProvider
) -> None:
    gate = Gated()
    config = AsyncConfig(max_queue_size=4, batch_size=1, queue_policy="drop_newest")
    processor = LogxpyLogRecordProcessor(destinations=[gate], config=config, meter_provider=meters)
    logs.add_log_record_processor(processor)
    emit(logs, 1)
    assert gate.entered.wait(10), "the first batch never reached the destination"
    emit(logs, 40)  # one batch held by the destination: 3 more fit, the rest are refused

    points, m = collect(reader), processor.metrics
    assert m.dropped_by_reason[DropReason.QUEUE_FULL] > 0
    assert value(points, PROCESSED, processor, error_type="queue_full") == m.dropped_by_reason["queue_full"]
    assert value(points, PROCESSED, processor) == m.written == 0
    assert value(points, QUEUE_SIZE, processor) == m.queue_depth <= value(points, CAPACITY, processor) == 4
    assert value(points, INFLIGHT, processor) == m.pending - m.queue_depth == 1

    gate.open()
    assert processor.force_flush(10_000)
    points, m = collect(reader), processor.metrics
    assert_accounting(m)
    assert m.written + m.dropped == 41 and m.written > 0
    assert value(points, PROCESSED, processor) == m.written
    assert errors_of(points, PROCESSED, processor) == dict(m.dropped_by_reason)
    assert value(points, EXPORTED, processor) == m.written
    assert errors_of(points, EXPORTED, processor) == {}, "a refused record never reached the exporter side"
    assert value(points, QUEUE_SIZE, processor) == 0
    duration = points[DURATION][attrs(processor)]
    assert duration.count == m.batches and duration.sum > 0
    processor.shutdown()


def test_queue_size_never_exceeds_capacity_under_a_slow_destination(
    meters: MeterProvider, reader: InMemoryMetricReader, logs: LoggerProvider
) -> None:
    def slow(data: bytes) -> None:
        time.sleep(0.002)  # a slow disk, not a synchronisation

    config = AsyncConfig(max_queue_size=8, batch_size=2, queue_policy="drop_newest")
    processor = LogxpyLogRecordProcessor(destinations=[slow], config=config, meter_provider=meters)
    logs.add_log_record_processor(processor)
    producer = threading.Thread(target=emit, args=(logs, 1_000))
    producer.start()
    sizes: list[int] = []
    capacities: set[int] = set()
    while producer.is_alive() or not sizes:
        points = collect(reader)
        sizes.append(value(points, QUEUE_SIZE, processor))
        capacities.add(value(points, CAPACITY, processor))
    producer.join()
    assert capacities == {8}
    assert max(sizes) <= 8, sizes
    assert max(sizes) > 0, "the queue was seen holding records"
    assert processor.force_flush(10_000)
    points, m = collect(reader), processor.metrics
    assert (
        value(points, PROCESSED, processor) + sum(errors_of(points, PROCESSED, processor).values()) == 1_000
    )
    assert value(points, PROCESSED, processor) == m.written
    processor.shutdown()


# -- the exporter -------------------------------------------------------------------------------


def test_exporter_reports_exported_and_one_duration_per_batch(
    meters: MeterProvider, reader: InMemoryMetricReader
) -> None:
    good = LogxpyLogRecordExporter(destinations=[Collect()], meter_provider=meters)
    bad = LogxpyLogRecordExporter(destinations=[Failing()], meter_provider=meters)
    for size in (1, 2, 3, 4):
        assert good.export(readable(size)) is LogRecordExportResult.SUCCESS
        assert bad.export(readable(size)) is LogRecordExportResult.FAILURE
    points = collect(reader)
    assert value(points, EXPORTED, good) == good.metrics.written == 10
    assert errors_of(points, EXPORTED, good) == {}
    assert value(points, EXPORTED, bad) == bad.metrics.written == 0
    assert errors_of(points, EXPORTED, bad) == {"io_error": 10} == dict(bad.metrics.dropped_by_reason)
    assert points[DURATION][attrs(good)].count == good.metrics.batches == 4
    assert points[DURATION][attrs(bad, error_type="io_error")].count == 4
    assert attrs(bad) not in points[DURATION], "a failed write is recorded with its error.type"
    assert value(points, INFLIGHT, good) == 0
    assert attrs(good) not in points.get(QUEUE_SIZE, {}), (
        "no queue of its own when writing in the caller's thread"
    )
    good.shutdown()
    bad.shutdown()


def test_exporter_counts_every_drop_as_a_failed_export(
    meters: MeterProvider, reader: InMemoryMetricReader
) -> None:
    exporter = LogxpyLogRecordExporter(destinations=[Collect()], meter_provider=meters)
    exporter.export(readable(2))
    exporter.shutdown()
    points = collect(reader)
    exporter.export(readable(3))  # after shutdown: dropped, but reported no more
    assert exporter.metrics.dropped_by_reason == {"shutdown": 3}
    assert values(collect(reader), EXPORTED) == values(points, EXPORTED)
    assert value(points, EXPORTED, exporter) == 2

    threaded = LogxpyLogRecordExporter(
        destinations=[Collect()], config=AsyncConfig(max_queue_size=16), meter_provider=meters
    )
    threaded.writer.discard(DropReason.INTERNAL_ERROR, 2)
    assert threaded.export(readable(5)) is LogRecordExportResult.SUCCESS
    assert threaded.force_flush(5_000)
    points = collect(reader)
    assert value(points, EXPORTED, threaded) == 5
    assert errors_of(points, EXPORTED, threaded) == {"internal_error": 2}
    assert value(points, CAPACITY, threaded) == 16, "a writer thread of its own: its queue is reported"
    threaded.shutdown()


def test_taking_over_counts_each_record_once(
    meters: MeterProvider, reader: InMemoryMetricReader, logs: LoggerProvider
) -> None:
    """Zero-code: a processor takes the exporter's place, with the exporter's meter provider."""
    dest = Collect()
    exporter = LogxpyLogRecordExporter(destinations=[dest], meter_provider=meters)
    processor = LogxpyLogRecordProcessor.taking_over(exporter)
    logs.add_log_record_processor(processor)
    emit(logs, 4)
    exporter.export(readable(2))  # what the batch processor still held: through the new writer
    assert processor.force_flush(5_000)
    points = collect(reader)
    assert value(points, PROCESSED, processor) == processor.metrics.written == 6 == len(dest.records())
    assert value(points, EXPORTED, exporter) == 0, "the exporter's own writer wrote nothing"
    exporter.shutdown()
    processor.shutdown()


# -- the fallback -------------------------------------------------------------------------------


def test_fallback_counters_and_breaker_follow_the_collector(
    meters: MeterProvider, reader: InMemoryMetricReader
) -> None:
    collector, keep = Collector(), Keep()
    fb = FallbackLogRecordExporter(
        collector, keep, cooldown_s=0.05, max_cooldown_s=0.05, meter_provider=meters
    )
    live, file = {"logxpy.fallback.route": "live"}, {"logxpy.fallback.route": "file"}

    def state(points: Points) -> dict[str, int]:
        return {
            s.value: value(
                points, "logxpy.fallback.breaker.status", fb, **{"logxpy.fallback.breaker.state": s}
            )
            for s in BreakerState
        }

    def check(points: Points) -> None:
        """Every count equals the snapshot (taken after: nothing moves in between)."""
        m = fb.metrics
        assert value(points, "logxpy.fallback.records", fb, **live) == m.primary_records
        assert value(points, "logxpy.fallback.records", fb, **file) == m.fallback_records
        assert value(points, "logxpy.fallback.batches", fb, **live) == m.primary_batches
        assert value(points, "logxpy.fallback.batches", fb, **file) == m.fallback_batches

    assert fb.export(readable(3)) is LogRecordExportResult.SUCCESS
    points = collect(reader)
    check(points)
    assert value(points, "logxpy.fallback.records", fb, **live) == 3
    assert state(points) == {"closed": 1, "open": 0, "probing": 0}

    collector.up = False
    fb.export(readable(2))  # fails: to the file, the breaker opens
    fb.export(readable(1))  # open: straight to the file
    points = collect(reader)
    assert value(points, "logxpy.fallback.records", fb, **file) == 3 == keep.records
    assert value(points, "logxpy.fallback.failures", fb) >= 1
    down = state(points)
    assert down["closed"] == 0 and sum(down.values()) == 1, "open or probing while the collector is down"

    collector.up = True
    wait_for(lambda: fb.metrics.breaker_state is BreakerState.CLOSED)
    assert fb.export(readable(4)) is LogRecordExportResult.SUCCESS
    points = collect(reader)
    check(points)
    assert value(points, "logxpy.fallback.records", fb, **live) == 7
    assert state(points) == {"closed": 1, "open": 0, "probing": 0}
    fb.shutdown()


# -- lifecycle and safety ------------------------------------------------------------------------


def test_after_shutdown_nothing_new_and_nothing_kept_alive(
    meters: MeterProvider, reader: InMemoryMetricReader
) -> None:
    logs = LoggerProvider(shutdown_on_exit=False)
    processor = LogxpyLogRecordProcessor(destinations=[Collect()], meter_provider=meters)
    logs.add_log_record_processor(processor)
    emit(logs, 2)
    fb = FallbackLogRecordExporter(Collector(), Keep(), meter_provider=meters)
    fb.export(readable(1))
    logs.shutdown()
    fb.shutdown()
    before = collect(reader)
    emit(logs, 3)  # dropped after shutdown: counted by the writer, not reported
    fb.export(readable(5))
    assert processor.metrics.dropped_by_reason == {"shutdown": 3}
    after = collect(reader)
    assert value(after, PROCESSED, processor) == 2
    assert errors_of(after, PROCESSED, processor) == {}
    assert values(after, "logxpy.fallback.records") == values(before, "logxpy.fallback.records")

    writer, fallback = weakref.ref(processor.writer), weakref.ref(fb)
    assert fb._thread is not None
    fb._thread.join(10)
    del logs, processor, fb
    gc.collect()
    assert writer() is None, "the meter provider keeps the writer alive"
    assert fallback() is None, "the meter provider keeps the fallback alive"
    final = values(collect(reader), PROCESSED)
    assert final == values(after, PROCESSED), "the final values stay reported"


def test_a_meter_provider_shut_down_first_is_harmless(
    meters: MeterProvider, reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    logs = LoggerProvider(shutdown_on_exit=False)
    dest = Collect()
    processor = LogxpyLogRecordProcessor(destinations=[dest], meter_provider=meters)
    logs.add_log_record_processor(processor)
    fb = FallbackLogRecordExporter(Collector(), Keep(), meter_provider=meters)
    emit(logs, 2)
    assert processor.force_flush(5_000)
    caplog.set_level(logging.DEBUG)
    meters.shutdown()
    emit(logs, 3)  # batches written after it: durations recorded into a shut-down provider
    fb.export(readable(2))
    assert processor.force_flush(5_000)
    logs.shutdown()
    fb.shutdown()
    assert processor.metrics.written == 5 == len(dest.records())
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_callbacks_never_log_and_nothing_feeds_back_into_the_file(
    meters: MeterProvider,
    reader: InMemoryMetricReader,
    logs: LoggerProvider,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing callback is swallowed by us: the SDK would log it ("Callback failed"), and
    with an OTel logging handler on the root logger that log would be written to our file."""
    from opentelemetry.sdk._logs import LoggingHandler

    def broken(self: Any) -> list[Any]:
        raise RuntimeError("broken callback")

    monkeypatch.setattr(self_metrics.WriterSource, "queue_size", broken)  # before the instruments exist
    dest = Collect()
    processor = LogxpyLogRecordProcessor(destinations=[dest], meter_provider=meters)
    logs.add_log_record_processor(processor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(logger_provider=logs)
    root = logging.getLogger()
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    try:
        logging.getLogger("app").warning("the app's record")
        assert processor.force_flush(5_000)
        points = collect(reader)
        collect(reader)
        assert processor.force_flush(5_000)  # anything a callback logged would be in the file now
    finally:
        root.removeHandler(handler)
    assert attrs(processor) not in points.get(QUEUE_SIZE, {}), "the broken callback gave nothing"
    assert value(points, PROCESSED, processor) == 1, "the other instruments still report"
    assert [r["msg"] for r in dest.records()] == ["the app's record"]
    assert [r.getMessage() for r in caplog.records] == ["the app's record"]
    processor.shutdown()


def test_callbacks_of_a_source_that_fails_do_not_stop_the_others(
    meters: MeterProvider, reader: InMemoryMetricReader
) -> None:
    first = LogxpyLogRecordProcessor(destinations=[Collect()], meter_provider=meters)
    second = LogxpyLogRecordProcessor(destinations=[Collect()], meter_provider=meters)
    source = first._metrics_source
    assert source is not None

    def broken() -> Mapping[str, Any]:
        raise RuntimeError("broken snapshot")

    source._snapshot = broken  # type: ignore[method-assign]
    points = collect(reader)
    assert attrs(first) not in points[PROCESSED]
    assert value(points, PROCESSED, second) == 0
    first.shutdown()
    second.shutdown()


def test_span_lines_are_not_counted_as_log_records(
    reader: InMemoryMetricReader, meters: MeterProvider, logs: LoggerProvider
) -> None:
    """With ``span_processor()`` sharing the writer, ``processed`` and ``exported`` (unit
    ``{log_record}``) counted each span's start and end line: 30 for 10 records in 10 spans.
    The snapshot tells span lines apart (written, and dropped by reason) too."""
    from opentelemetry.sdk.trace import TracerProvider

    out = Collect()
    processor = LogxpyLogRecordProcessor(destinations=[out], meter_provider=meters)
    logs.add_log_record_processor(processor)
    traces = TracerProvider(shutdown_on_exit=False)
    spans = processor.span_processor()
    traces.add_span_processor(spans)
    tracer = traces.get_tracer("t")
    for i in range(10):
        with tracer.start_as_current_span(f"s{i}"):
            logs.get_logger("x").emit(body=f"record {i}")
    assert processor.force_flush()
    spans.shutdown()
    with tracer.start_as_current_span("late"):  # its lines are dropped: shutdown
        logs.get_logger("x").emit(body="record 10")
    m = processor.metrics
    assert (m.written, m.span_lines_written) == (30, 20)
    assert dict(m.span_lines_dropped_by_reason) == {DropReason.SHUTDOWN: 2}
    assert dict(m.dropped_by_reason) == {DropReason.SHUTDOWN: 2}
    assert_accounting(m)
    points = collect(reader)
    assert value(points, "otel.sdk.processor.log.processed", processor) == 10
    assert value(points, "otel.sdk.exporter.log.exported", processor) == 10
    assert errors_of(points, "otel.sdk.processor.log.processed", processor) == {}
    logs.force_flush()
    assert value(collect(reader), "otel.sdk.processor.log.processed", processor) == 11
    traces.shutdown()
