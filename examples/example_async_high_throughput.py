"""High throughput from several threads: pick the policy for what overload should cost.

``block`` slows the producers to the disk's pace and loses nothing; ``drop_oldest``
keeps the newest logs and never makes a caller wait long. The metrics say what happened.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider

from logxpy_otel import AsyncConfig, LogxpyLogRecordProcessor, QueuePolicy

THREADS, PER_THREAD = 4, 25_000


def run(policy: QueuePolicy) -> None:
    path = Path("logs") / f"high_throughput_{policy.value}.jsonl"
    path.unlink(missing_ok=True)
    provider = LoggerProvider()
    processor = LogxpyLogRecordProcessor(
        path, config=AsyncConfig(max_queue_size=20_000, batch_size=2_000, queue_policy=policy)
    )
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("load")

    def produce(t: int) -> None:
        for n in range(PER_THREAD):
            logger.emit(
                body="request done",
                severity_number=SeverityNumber.INFO,
                attributes={"thread": t, "n": n, "ms": 1.5, "ok": True, "route": "/api"},
            )

    started = time.perf_counter()
    threads = [threading.Thread(target=produce, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    processor.force_flush()
    elapsed = time.perf_counter() - started
    provider.shutdown()
    m = processor.metrics
    print(
        f"{policy.value:>12}: {m.written:,} written, {m.dropped:,} dropped {dict(m.dropped_by_reason)}, "
        f"{m.written / elapsed:,.0f} records/s, max queue depth {m.max_queue_depth:,}"
    )


if __name__ == "__main__":
    for policy in (QueuePolicy.BLOCK, QueuePolicy.DROP_OLDEST):
        run(policy)
