"""Synchronous writes: every record is in the file when the logging call returns.

Three ways: ``LOGXPY_SYNC=1`` in the environment (all writers), ``async_enabled=False``
(one writer), or the ``sync_mode()`` block (this thread, for a while).
"""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk._logs import LoggerProvider

from logxpy_otel import AsyncConfig, LogxpyLogRecordProcessor, sync_mode


def count(path: Path) -> int:
    return sum(1 for _ in path.open()) if path.exists() else 0


def main() -> None:
    path = Path("logs") / "async_disable.jsonl"
    path.unlink(missing_ok=True)

    provider = LoggerProvider()
    provider.add_log_record_processor(LogxpyLogRecordProcessor(path, config=AsyncConfig(async_enabled=False)))
    provider.get_logger("sync").emit(body="written before emit returns")
    print("async_enabled=False:", count(path), "line(s) already in the file")
    provider.shutdown()

    provider = LoggerProvider()
    provider.add_log_record_processor(
        LogxpyLogRecordProcessor(path, config=AsyncConfig(flush_interval_ms=60_000))
    )
    logger = provider.get_logger("mixed")
    logger.emit(body="queued")
    with sync_mode():
        logger.emit(body="written at once, after the queued one")
    print("sync_mode():", count(path), "line(s) in the file, in order")
    provider.shutdown()


if __name__ == "__main__":
    main()
