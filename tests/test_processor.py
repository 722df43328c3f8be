"""LogxpyLogRecordProcessor under a real LoggerProvider: lines, traces, flush, shutdown, faults."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import Collect, assert_accounting, c_or_python, parse_lines, read_records
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from logxpy_otel import AsyncConfig, DropReason, LogxpyLogRecordProcessor, sync_mode
from logxpy_otel import processor as processor_module
from logxpy_otel._format import LineEncoder


@pytest.fixture
def provider() -> Iterator[LoggerProvider]:
    lp = LoggerProvider(resource=Resource.create({"service.name": "shop"}), shutdown_on_exit=False)
    yield lp
    lp.shutdown()


def test_records_inside_and_outside_spans(tmp_path: Path, provider: LoggerProvider) -> None:
    path = tmp_path / "app.jsonl"
    processor = LogxpyLogRecordProcessor(path)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("app.auth", "1.2")
    tracer = TracerProvider().get_tracer("test")
    logger.emit(body="boot", severity_number=SeverityNumber.INFO, attributes={"k": 1})
    with tracer.start_as_current_span("request") as span:
        logger.emit(body="user signed in", severity_number=SeverityNumber.INFO, attributes={"user.id": 42})
        logger.emit(body="payment failed", severity_number=SeverityNumber.ERROR)
    trace_id = f"{span.get_span_context().trace_id:032x}"
    span_id = f"{span.get_span_context().span_id:016x}"
    assert processor.force_flush(5_000)
    provider.shutdown()
    lines = parse_lines(path.read_bytes())
    boot, start, signed, failed, end = lines
    assert boot["msg"] == "boot" and boot["lvl"] == [1] and "." in boot["tid"]
    assert boot["_otel"]["resource"]["attributes"]["service.name"] == "shop"
    assert boot["_otel"]["scope"] == {"name": "app.auth", "version": "1.2"}
    assert start == {"tid": trace_id, "lvl": [1], "ts": signed["ts"], "at": "otel:trace", "st": "started"}
    assert (signed["tid"], signed["lvl"], signed["user.id"]) == (trace_id, [2], 42)
    assert signed["_otel"]["span_id"] == span_id and "trace_id" not in signed["_otel"]
    assert (failed["lvl"], failed["mt"]) == ([3], "error")
    assert end == {"tid": trace_id, "lvl": [4], "ts": failed["ts"], "at": "otel:trace", "st": "failed"}
    assert_accounting(processor.metrics)


def test_flat_mode_keeps_the_trace_id_in_otel(tmp_path: Path, provider: LoggerProvider) -> None:
    path = tmp_path / "flat.jsonl"
    provider.add_log_record_processor(LogxpyLogRecordProcessor(path, mode="flat"))
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("s") as span:
        provider.get_logger("x").emit(body="hi")
    provider.shutdown()
    (line,) = parse_lines(path.read_bytes())
    assert line["lvl"] == [1] and "." in line["tid"]
    assert line["_otel"]["trace_id"] == f"{span.get_span_context().trace_id:032x}"


@pytest.fixture(params=["c", "python"])
def on_emit_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Processors made in the test use the C on_emit (where built) or the Python one."""
    return c_or_python(request, monkeypatch, processor_module, "_Emitter")


def test_on_emit_never_raises_and_counts_the_fault(
    provider: LoggerProvider, monkeypatch: pytest.MonkeyPatch, on_emit_kind: str
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("encoder bug")

    # A structured body takes the Python encoder's path in the C encoder too.
    monkeypatch.setattr(LineEncoder, "encode_python", broken)
    dest = Collect()
    processor = LogxpyLogRecordProcessor(destinations=[dest])
    assert (processor.on_emit.__self__ is processor) == (on_emit_kind == "python")
    provider.add_log_record_processor(processor)
    provider.get_logger("x").emit(body={"structured": True})  # must not raise
    m = processor.metrics
    assert m.dropped_by_reason == {DropReason.INTERNAL_ERROR: 1}
    assert_accounting(m)


def test_on_emit_lets_keyboard_interrupt_through(
    provider: LoggerProvider, monkeypatch: pytest.MonkeyPatch, on_emit_kind: str
) -> None:
    """Only errors are caught (as ``except Exception`` would): Ctrl-C still stops the app."""

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(LineEncoder, "encode_python", interrupted)
    processor = LogxpyLogRecordProcessor(destinations=[Collect()])
    provider.add_log_record_processor(processor)
    with pytest.raises(KeyboardInterrupt):
        provider.get_logger("x").emit(body={"structured": True})


def test_own_diagnostics_never_feed_back(provider: LoggerProvider, on_emit_kind: str) -> None:
    """A warning from the ``logxpy_otel`` logger, routed into OTel, is kept out of the file."""
    dest = Collect()
    processor = LogxpyLogRecordProcessor(destinations=[dest])
    provider.add_log_record_processor(processor)
    provider.get_logger("logxpy_otel").emit(body="queue full")
    provider.get_logger("logxpy_otel.writer").emit(body="queue full")
    provider.get_logger("logxpy_otel_other").emit(body="not ours")
    assert processor.force_flush(5_000)
    assert [r["msg"] for r in dest.records()] == ["not ours"]
    assert processor.metrics.dropped_by_reason == {DropReason.OWN_DIAGNOSTICS: 2}


def test_stdlib_logging_through_the_sdk_handler(provider: LoggerProvider) -> None:
    from opentelemetry.sdk._logs import LoggingHandler

    dest = Collect()
    processor = LogxpyLogRecordProcessor(destinations=[dest])
    provider.add_log_record_processor(processor)
    with pytest.warns(DeprecationWarning):
        handler = LoggingHandler(logger_provider=provider)
    log = logging.getLogger("test.stdlib")
    log.addHandler(handler)
    try:
        log.warning("disk %s low", "/var", extra={"disk.free": 3})
    finally:
        log.removeHandler(handler)
    assert processor.force_flush(5_000)
    (rec,) = dest.records()
    assert (rec["msg"], rec["mt"], rec["disk.free"]) == ("disk /var low", "warning", 3)


def test_after_shutdown_records_are_dropped_not_raised(provider: LoggerProvider) -> None:
    dest = Collect()
    processor = LogxpyLogRecordProcessor(destinations=[dest])
    provider.add_log_record_processor(processor)
    provider.get_logger("x").emit(body="before")
    processor.shutdown()
    assert processor.enabled() is False
    processor.on_emit(_any_record(provider))
    assert [r["msg"] for r in dest.records()] == ["before"]
    assert processor.metrics.dropped_by_reason == {DropReason.SHUTDOWN: 1}


def _any_record(provider: LoggerProvider) -> object:
    from opentelemetry._logs import LogRecord
    from opentelemetry.sdk._logs import ReadWriteLogRecord

    return ReadWriteLogRecord(LogRecord(body="after"), resource=provider.resource)


def test_config_reaches_the_writer(tmp_path: Path) -> None:
    config = AsyncConfig(max_queue_size=7, batch_size=3, queue_policy="drop_oldest")  # type: ignore[arg-type]
    processor = LogxpyLogRecordProcessor(tmp_path / "x.jsonl", config=config)
    try:
        assert processor.writer.config is config
        assert processor.writer.is_running
    finally:
        processor.shutdown()


def test_bad_mode_and_bad_path_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"mode must be one of tree, flat; got 'trees'"):
        LogxpyLogRecordProcessor(tmp_path / "x.jsonl", mode="trees")
    with pytest.raises(IsADirectoryError, match="cannot open log file"):
        LogxpyLogRecordProcessor(tmp_path)


def test_force_flush_means_in_the_file(tmp_path: Path, provider: LoggerProvider) -> None:
    path = tmp_path / "f.jsonl"
    processor = LogxpyLogRecordProcessor(path, config=AsyncConfig(flush_interval_ms=600_000))
    provider.add_log_record_processor(processor)
    for n in range(50):
        provider.get_logger("x").emit(body=f"r{n}")
    assert processor.force_flush(5_000) is True
    assert [r["msg"] for r in read_records(path)] == [f"r{n}" for n in range(50)]


# -- the C on_emit queues as enqueue does ---------------------------------------------------------


class Slow(Collect):
    """A destination that takes a little while per batch, so the queue fills up."""

    def __call__(self, data: bytes) -> None:
        time.sleep(0.002)  # a deliberately slow disk, not a wait for anything
        super().__call__(data)


@pytest.mark.parametrize("policy", ["block", "drop_oldest", "drop_newest", "warn"])
def test_policies_through_the_processor_from_four_threads(
    provider: LoggerProvider, policy: str, on_emit_kind: str
) -> None:
    """The processor's on_emit (C lane or Python enqueue) keeps the bound, the order and the books."""
    dest = Slow()
    max_queue = 64
    processor = LogxpyLogRecordProcessor(
        destinations=[dest],
        config=AsyncConfig(max_queue_size=max_queue, batch_size=16, queue_policy=policy, flush_interval_ms=5),
    )
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("load")
    per_thread = 1_500

    def produce(t: int) -> None:
        for n in range(per_thread):
            logger.emit(body="r", attributes={"t": t, "n": n})

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Records refused at the door (drop_newest, warn) are their callers' to know; records
    # taken in and evicted (drop_oldest) are not in the file: the next flush says so, once.
    m = processor.metrics
    evicted = m.dropped_by_reason.get(DropReason.EVICTED, 0)
    assert processor.force_flush(30_000) is (evicted == 0)
    assert processor.force_flush(30_000) is True
    m = processor.metrics
    assert_accounting(m)
    assert m.enqueued == 4 * per_thread and m.pending == 0
    assert m.max_queue_depth <= max_queue
    seen: dict[int, list[int]] = {t: [] for t in range(4)}
    for line in parse_lines(dest.data):
        seen[line["t"]].append(line["n"])
    for t, ns in seen.items():
        assert ns == sorted(ns), f"thread {t}'s records out of order"
        assert len(ns) == len(set(ns)), f"thread {t}'s records written twice"
    written = sum(len(ns) for ns in seen.values())
    assert written == m.written
    if policy == "block":
        assert written == 4 * per_thread and not m.dropped_by_reason
    else:
        assert written + sum(m.dropped_by_reason.values()) == 4 * per_thread
        assert m.dropped_by_reason, "a queue of 64 against a slow destination overflowed"


def test_sync_mode_through_the_processor(provider: LoggerProvider, on_emit_kind: str) -> None:
    """Inside sync_mode() the record is written before emit returns (the lane is bypassed)."""
    dest = Collect()
    processor = LogxpyLogRecordProcessor(destinations=[dest], config=AsyncConfig(flush_interval_ms=60_000))
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("s")
    logger.emit(body="queued")  # starts the writer: records now go through the lane
    with sync_mode():
        logger.emit(body="now")
        assert [r["msg"] for r in parse_lines(dest.data)] == ["queued", "now"]
    assert processor.force_flush(5_000)


def test_a_full_batch_wakes_the_writer(provider: LoggerProvider, on_emit_kind: str) -> None:
    """``batch_size`` queued records are written without waiting for the flush interval."""
    written = threading.Event()

    def dest(data: bytes) -> None:
        if data.count(b"\n") >= 4:
            written.set()

    processor = LogxpyLogRecordProcessor(
        destinations=[dest], config=AsyncConfig(batch_size=4, flush_interval_ms=600_000)
    )
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("w")
    logger.emit(body="0")  # starts the writer, which then waits for a full batch
    for n in range(1, 5):
        logger.emit(body=str(n))
    assert written.wait(20.0), "a full batch did not wake the writer"


def test_a_subclass_on_emit_is_not_replaced_by_the_c_one(provider: LoggerProvider) -> None:
    """A subclass that overrides on_emit (to filter, say) keeps its own, C speed-up or not."""
    dest = Collect()

    class OnlyErrors(LogxpyLogRecordProcessor):
        def on_emit(self, log_record: Any) -> None:
            number = log_record.log_record.severity_number
            if number is not None and number.value >= SeverityNumber.ERROR.value:
                super().on_emit(log_record)

    processor = OnlyErrors(destinations=[dest])
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("f")
    logger.emit(body="fine", severity_number=SeverityNumber.INFO)
    logger.emit(body="broken", severity_number=SeverityNumber.ERROR)
    assert processor.force_flush(5_000)
    assert [line["msg"] for line in parse_lines(dest.data)] == ["broken"]


# -- issue 13 item 8: tests that notice when the code is wrong ----------------------------------


def test_the_logging_handler_takes_the_resource_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "handler.jsonl"
    processor = LogxpyLogRecordProcessor(path)
    handler = processor.logging_handler(resource={"service.name": "handler-service", "k": 1})
    log = logging.getLogger("test_processor.handler_resource")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("hello")
        assert processor.force_flush(5_000)
    finally:
        log.removeHandler(handler)
        handler.close()
        processor.shutdown()
    (line,) = read_records(path)
    assert line["msg"] == "hello"
    attributes = line["_otel"]["resource"]["attributes"]
    assert (attributes["service.name"], attributes["k"]) == ("handler-service", 1)


@pytest.mark.parametrize("timeout_millis", [10**18, float("inf"), float("nan"), -5, 0])
def test_every_force_flush_takes_any_timeout_a_caller_passes(tmp_path: Path, timeout_millis: float) -> None:
    """The log processor's, the span processor's and the logging handler's flushes take a
    timeout past what a lock can wait, NaN or a negative one without an error; a writer
    with nothing pending says True at once for each."""
    processor = LogxpyLogRecordProcessor(str(tmp_path / "x.log"))
    try:
        handler = processor.logging_handler()
        spans = processor.span_processor()
        assert processor.force_flush(timeout_millis) is True  # type: ignore[arg-type]
        assert spans.force_flush(timeout_millis) is True  # type: ignore[arg-type]
        handler.flush()
    finally:
        processor.shutdown()
