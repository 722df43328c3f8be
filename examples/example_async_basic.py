"""The writer on its own: a bounded queue, a policy, batches, metrics.

``AsyncWriter`` takes already-encoded line items; the OTel processor makes them from
log records with ``LineEncoder``. Here we make them from hand-built API records.
"""

from __future__ import annotations

from pathlib import Path

from opentelemetry._logs import LogRecord, SeverityNumber

from logxpy_otel import AsyncConfig, AsyncFileDestination, AsyncWriter, LineEncoder, QueuePolicy


def main() -> None:
    path = Path("logs") / "async_basic.jsonl"
    config = AsyncConfig(
        max_queue_size=5_000,
        batch_size=500,
        flush_interval_ms=100,
        queue_policy=QueuePolicy.BLOCK,  # never lose a record: callers wait for room
    )
    writer = AsyncWriter([AsyncFileDestination(path)], config)
    writer.start()
    encoder = LineEncoder()
    for n in range(10_000):
        record = LogRecord(body=f"work item {n}", severity_number=SeverityNumber.INFO, attributes={"n": n})
        writer.enqueue(encoder.encode(record))
    assert writer.flush(timeout=10.0), "everything enqueued so far is in the file"
    print(writer.metrics)
    writer.stop(timeout=5.0)
    print(f"{path}: {sum(1 for _ in path.open())} lines")


if __name__ == "__main__":
    main()
