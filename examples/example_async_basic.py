"""The writer's settings in one object: a bounded queue, a policy, batches, metrics.

``AsyncConfig`` holds the writer's settings; the processor validates them when it is
built, and ``processor.metrics`` says afterwards what happened to every record.
"""

from __future__ import annotations

from pathlib import Path

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider

from logxpy_otel import AsyncConfig, LogxpyLogRecordProcessor, QueuePolicy


def main() -> None:
    path = Path("logs") / "async_basic.jsonl"
    config = AsyncConfig(
        max_queue_size=5_000,
        batch_size=500,
        flush_interval_ms=100,
        queue_policy=QueuePolicy.BLOCK,  # never lose a record: callers wait for room
    )
    processor = LogxpyLogRecordProcessor(path, config=config)
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("example")
    for n in range(10_000):
        logger.emit(body=f"work item {n}", severity_number=SeverityNumber.INFO, attributes={"n": n})
    assert processor.force_flush(10_000), "everything emitted so far is in the file"
    print(processor.metrics)
    provider.shutdown()
    print(f"{path}: {sum(1 for _ in path.open())} lines")


if __name__ == "__main__":
    main()
