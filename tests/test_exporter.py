"""LogxpyLogRecordExporter under the SDK's Simple and Batch processors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from logxpy_otel import AsyncConfig, LogxpyLogRecordExporter

from conftest import Collect, Failing, assert_accounting, read_records


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


def _batch(n: int) -> list:
    from opentelemetry._logs import LogRecord
    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.name": "t"})
    return [ReadableLogRecord(LogRecord(body=f"r{i}"), resource=resource) for i in range(n)]


def _readable(body: str, **fields: Any) -> ReadableLogRecord:
    scope = InstrumentationScope(fields.pop("scope", "app"))
    return ReadableLogRecord(LogRecord(body=body, **fields), Resource({}), scope)


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
