"""LogxpyLogRecordExporter under the SDK's Simple and Batch processors."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)

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
