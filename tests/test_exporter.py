"""LogxpyLogRecordExporter under the SDK's Simple and Batch processors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from _helpers import (
    Collect,
    Failing,
    assert_accounting,
    instrument,
    make_record,
    parse_lines,
    read_records,
    readable_record,
)
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource

from logxpy_otel import AsyncConfig, LogxpyLogRecordExporter


def test_under_simple_processor_each_record_is_in_the_file_on_return(tmp_path: Path) -> None:
    path = tmp_path / "simple.jsonl"
    exporter = LogxpyLogRecordExporter(path)
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    provider.get_logger("x").emit(body="one", attributes={"n": 1})
    assert [r["msg"] for r in read_records(path)] == ["one"]
    provider.shutdown()
    assert exporter.writer.is_running is False


def test_under_batch_processor_everything_arrives(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    exporter = LogxpyLogRecordExporter(path)
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("x")
    for n in range(1_000):
        logger.emit(body=f"r{n}")
    assert provider.force_flush(10_000)
    provider.shutdown()
    assert [r["msg"] for r in read_records(path)] == [f"r{n}" for n in range(1_000)]
    m = exporter.metrics
    assert (m.written, m.dropped) == (1_000, 0)
    assert_accounting(m)


def test_export_results_are_honest(tmp_path: Path) -> None:
    good = LogxpyLogRecordExporter(destinations=[Collect()])
    bad = LogxpyLogRecordExporter(destinations=[Failing()])
    batch = _batch(3)
    assert good.export(batch) is LogRecordExportResult.SUCCESS
    assert bad.export(batch) is LogRecordExportResult.FAILURE
    good.shutdown()
    assert good.export(batch) is LogRecordExportResult.FAILURE
    assert good.metrics.dropped_by_reason == {"shutdown": 3}
    assert_accounting(bad.metrics)


def test_with_an_async_config_export_queues(tmp_path: Path) -> None:
    dest = Collect()
    exporter = LogxpyLogRecordExporter(destinations=[dest], config=AsyncConfig(flush_interval_ms=600_000))
    assert exporter.export(_batch(5)) is LogRecordExportResult.SUCCESS
    assert exporter.writer.is_running
    assert exporter.force_flush(5_000)
    assert len(dest.records()) == 5
    exporter.shutdown()


def _batch(n: int) -> list[ReadableLogRecord]:
    resource = Resource.create({"service.name": "t"})
    return [readable_record(make_record(body=f"r{i}"), resource) for i in range(n)]


def _readable(body: str, scope: str = "app", **fields: Any) -> ReadableLogRecord:
    return readable_record(make_record(body=body, **fields), scope=scope)


def test_one_far_out_timestamp_does_not_cost_the_batch(tmp_path: Path) -> None:
    """Issue 12, item 1: a ns x 1000 unit slip used to lose all 200 records, uncounted."""
    path = tmp_path / "wide.jsonl"
    exporter = LogxpyLogRecordExporter(path)
    batch = [_readable(f"r{n}") for n in range(200)]
    batch[100] = _readable("slip", timestamp=2**64 * 1000)
    assert exporter.export(batch) is LogRecordExportResult.SUCCESS
    lines = read_records(path)
    assert [r["msg"] for r in lines] == [f"r{n}" for n in range(100)] + ["slip"] + [
        f"r{n}" for n in range(101, 200)
    ]
    assert lines[100]["_otel"]["time_unix_nano"] == {"$int": str(2**64 * 1000)}
    m = exporter.metrics
    assert (m.written, m.dropped) == (200, 0)
    exporter.shutdown()


def test_exporter_keeps_its_own_diagnostics_out_of_its_file(tmp_path: Path) -> None:
    """Issue 12, item 2: records of the ``logxpy_otel`` logger are counted, never written."""
    path = tmp_path / "own.jsonl"
    exporter = LogxpyLogRecordExporter(path)
    batch = [
        _readable("app record"),
        _readable("logxpy-otel: 1 destination error(s)", scope="logxpy_otel"),
        _readable("from a child logger", scope="logxpy_otel.fallback"),
        _readable("not ours", scope="logxpy_otel_other"),
    ]
    assert exporter.export(batch) is LogRecordExportResult.SUCCESS
    assert [r["msg"] for r in read_records(path)] == ["app record", "not ours"]
    m = exporter.metrics
    assert m.dropped_by_reason == {"own_diagnostics": 2}
    assert_accounting(m)
    exporter.shutdown()


def test_a_record_that_breaks_the_exporter_is_counted_and_the_rest_written(tmp_path: Path) -> None:
    class Hostile:
        """An object in place of a ReadableLogRecord whose fields raise on access."""

        @property
        def instrumentation_scope(self) -> Any:
            raise RuntimeError("boom")

    path = tmp_path / "hostile.jsonl"
    exporter = LogxpyLogRecordExporter(path)
    result = exporter.export([_readable("before"), Hostile(), _readable("after")])  # type: ignore[list-item]
    assert result is LogRecordExportResult.FAILURE  # one record was lost, and said so
    assert [r["msg"] for r in read_records(path)] == ["before", "after"]
    assert exporter.metrics.dropped_by_reason == {"internal_error": 1}
    exporter.shutdown()


# -- the exporter under the SDK's batch processor in a running application (issue 18) --

TRACE_A = 0x5B8EFFF798038103D269B633813FC60C


def _in_trace(body: str, trace_id: int = TRACE_A) -> ReadableLogRecord:
    return _readable(body, trace_id=trace_id, span_id=1, trace_flags=1)


def test_idle_traces_are_closed_without_a_thread_of_the_exporters_own(tmp_path: Path) -> None:
    """Issue 18, item 1: the exporter writes in its caller's thread; nothing ran the idle
    check, so a trace's end line came only at exit or after 1,000 newer traces."""
    path = tmp_path / "idle.jsonl"
    exporter = LogxpyLogRecordExporter(path, trace_idle_timeout=100)
    assert exporter.export([_in_trace("a"), _in_trace("b")]) is LogRecordExportResult.SUCCESS
    ends: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10.0
    while not ends and time.monotonic() < deadline:  # no event to wait on: the file is the interface
        time.sleep(0.02)
        ends = [line for line in parse_lines(path.read_bytes()) if line.get("st") == "succeeded"]
    assert len(ends) == 1, "the idle trace was never closed"
    assert ends[0]["lvl"] == [4]
    assert exporter.export([_in_trace("c")]) is LogRecordExportResult.SUCCESS  # opens it again
    exporter.shutdown()
    lines = parse_lines(path.read_bytes())
    assert [line.get("st") for line in lines] == [
        "started",
        None,
        None,
        "succeeded",
        "started",
        None,
        "succeeded",
    ]


def test_records_still_queued_in_the_batch_processor_at_exit_join_their_trees(tmp_path: Path) -> None:
    """Issue 18, item 2: our exit hook closed the open traces before the SDK's provider
    shut down and drained its batch processor: the rest of each trace came after its end
    line, numbered from [1] again (logxpy's Parser saw one request as two)."""
    path = tmp_path / "exit-order.jsonl"
    script = textwrap.dedent(
        f"""
        from opentelemetry.context import attach
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context
        from logxpy_otel import LogxpyLogRecordExporter  # imported first, as zero-code set-up does

        provider = LoggerProvider()  # shutdown_on_exit: its own atexit hook
        exporter = LogxpyLogRecordExporter({str(path)!r})
        batch = BatchLogRecordProcessor(exporter, schedule_delay_millis=600_000)
        provider.add_log_record_processor(batch)
        logger = provider.get_logger("app")
        for trace in range(1, 4):
            span = NonRecordingSpan(SpanContext(trace, 1, False, TraceFlags(1)))
            logger.emit(body=f"first of {{trace}}", context=set_span_in_context(span))
        assert provider.force_flush(10_000)  # the traces are open in our writer now
        for trace in range(1, 4):
            span = NonRecordingSpan(SpanContext(trace, 1, False, TraceFlags(1)))
            logger.emit(body=f"second of {{trace}}", context=set_span_in_context(span))
        # exit with the second records still queued in the SDK's batch processor
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    lines = parse_lines(path.read_bytes())
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_trace.setdefault(line["tid"], []).append(line)
    assert len(by_trace) == 3
    for tid, trace_lines in by_trace.items():
        shape = [(line["lvl"], line.get("st"), line.get("msg")) for line in trace_lines]
        n = int(tid, 16)
        assert shape == [
            ([1], "started", None),
            ([2], None, f"first of {n}"),
            ([3], None, f"second of {n}"),
            ([4], "succeeded", None),
        ], shape


@pytest.mark.parametrize("exporter", ["logxpy", "logxpy_fallback"])
def test_under_opentelemetry_instrument_traces_close_on_time_and_stay_whole_at_exit(
    tmp_path: Path, exporter: str
) -> None:
    """Issue 18, as a user runs it: idle traces get their end lines while the app runs, and
    at exit every trace is one whole tree (start, its records, end), nothing after an end."""
    path = tmp_path / "requests.jsonl"
    env = {
        "OTEL_LOGS_EXPORTER": exporter,
        "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "logging",  # the SDK's handler, one path
        "OTEL_EXPORTER_LOGXPY_FILE": str(path),
        "OTEL_EXPORTER_LOGXPY_TRACE_IDLE_TIMEOUT": "300",
        # logxpy_fallback: a collector that refuses at once, so every batch goes to the file
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://127.0.0.1:9/v1/logs",
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "1",
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
    }
    app = Path(__file__).parent / "apps" / "request_app.py"
    done = instrument(tmp_path, app, service_name="request-app", env=env, args=[str(path)])
    assert "IDLE_CLOSED 5" in done.stdout, "the idle timeout closed the first traces while the app ran"
    trees: dict[str, list[dict[str, Any]]] = {}
    for line in parse_lines(path.read_bytes(), raw_tid=True):
        trees.setdefault(line["tid"], []).append(line)
    traced = {tid: lines for tid, lines in trees.items() if "~" in tid}
    assert len(traced) == 25, "one tree per request, none split"
    for tid, lines in traced.items():
        assert [line.get("st") for line in lines] == ["started", None, None, None, "succeeded"], tid
        assert [line["lvl"] for line in lines] == [[n] for n in range(1, 6)], tid


# -- issue 13 item 8: tests that notice when the code is wrong ----------------------------------


def test_a_batch_whose_every_record_broke_the_encoder_is_a_failure(tmp_path: Path) -> None:
    class Hostile:
        @property
        def instrumentation_scope(self) -> Any:
            raise RuntimeError("boom")

    exporter = LogxpyLogRecordExporter(tmp_path / "none.jsonl")
    result = exporter.export([Hostile(), Hostile()])  # type: ignore[list-item]
    assert result is LogRecordExportResult.FAILURE
    assert exporter.metrics.dropped_by_reason == {"internal_error": 2}
    exporter.shutdown()


def test_with_a_writer_thread_a_batch_is_a_success_only_if_every_record_was_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = LogxpyLogRecordExporter(tmp_path / "queued.jsonl", config=AsyncConfig())
    answers = iter([False, True, True])  # the first record refused (a full queue, say)
    monkeypatch.setattr(exporter.writer, "enqueue", lambda item: next(answers))
    batch = [_readable(f"r{n}") for n in range(3)]
    assert exporter.export(batch) is LogRecordExportResult.FAILURE
    monkeypatch.undo()
    exporter.shutdown()
