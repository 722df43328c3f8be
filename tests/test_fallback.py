"""The local-file fallback and replay, against real OTLP receivers on 127.0.0.1.

Collector up, down, up again, with records flowing from several threads: every record
reaches the receiver exactly once (live, or later through ``logxpy-otel replay``), with
body, attribute types, severity, timestamps and ids as they were emitted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest
from _helpers import make_record, readable_record
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from logxpy_otel import LogxpyLogRecordExporter
from logxpy_otel.cli import main as cli
from logxpy_otel.fallback import (
    BreakerState,
    FallbackLogRecordExporter,
    LogxpyFallbackLogRecordExporter,
    otlp_exporter,
)
from logxpy_otel.reader import BadLine, read_file
from logxpy_otel.replay import dead_letter_path

from otlp_receiver import GrpcReceiver, HttpReceiver, OtlpHttpHandler

THREADS, PER_THREAD = 4, 600


class Scripted(LogRecordExporter):
    """A primary whose answers the test decides; keeps every batch it was asked to send."""

    def __init__(self) -> None:
        self.up = True
        self.calls = 0
        self.seen: list[Any] = []
        self.hang = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.block = False

    def export(self, batch: Any) -> LogRecordExportResult:
        self.calls += 1
        self.seen.append(list(batch))
        if self.block and batch:
            self.entered.set()
            assert self.release.wait(30)
        if not self.up:
            raise ConnectionRefusedError("collector down")
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        self.hang.wait(30)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    """Poll a state the exporter signals no event for (bounded; fails the test on timeout)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


class Keep(LogRecordExporter):
    def __init__(self) -> None:
        self.batches: list[Any] = []

    def export(self, batch: Any) -> LogRecordExportResult:
        self.batches.append(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


# -- the circuit breaker ------------------------------------------------------------------


def test_breaker_opens_then_probes_with_empty_requests_never_with_a_batch() -> None:
    """Issue 18, item 3: while the collector is known to be down, batches go straight to the
    file and the collector is probed with an empty request from the exporter's own thread."""
    primary, keep = Scripted(), Keep()
    fb = FallbackLogRecordExporter(primary, keep, cooldown_s=0.02, max_cooldown_s=0.05)
    assert fb.export(["a"]) is LogRecordExportResult.SUCCESS and primary.seen == [["a"]] and not keep.batches
    primary.up = False
    fb.export(["b"])  # fails: to the file, the breaker opens
    assert keep.batches == [["b"]] and fb.metrics.breaker_open
    fb.export(["c"])  # open: the primary is not tried
    assert keep.batches[-1] == ["c"]
    wait_for(lambda: primary.seen.count([]) >= 2)  # probes fail, cool-down grows, no batch is sent
    primary.up = True
    wait_for(lambda: fb.metrics.breaker_state is BreakerState.CLOSED)
    fb.export(["d"])
    assert [batch for batch in primary.seen if batch] == [["a"], ["b"], ["d"]], "no batch waited on a probe"
    m = fb.metrics
    assert (m.primary_batches, m.fallback_batches, m.fallback_records) == (2, 2, 2)
    assert m.primary_failures >= 3  # "b" and at least two probes
    primary.hang.set()  # (its own shutdown returns at once)
    fb.shutdown()


@pytest.mark.parametrize("comes_back", [False, True], ids=["then-fails", "then-succeeds"])
def test_a_hung_send_does_not_hold_the_caller_and_its_batch_lands_once(comes_back: bool) -> None:
    primary, keep = Scripted(), Keep()
    primary.block = True
    fb = FallbackLogRecordExporter(primary, keep, cooldown_s=60.0, max_cooldown_s=60.0, live_timeout_s=0.05)
    started = time.monotonic()
    assert fb.export(["x"]) is LogRecordExportResult.SUCCESS  # the batch is the exporter's now
    assert primary.entered.is_set() and time.monotonic() - started < 10
    assert fb.metrics.breaker_open
    fb.export(["y"])  # straight to the file while the send hangs
    assert keep.batches == [["y"]]
    primary.up = comes_back
    primary.release.set()
    assert fb.force_flush(10_000) is True
    assert keep.batches == ([["y"]] if comes_back else [["y"], ["x"]]), "each batch in one place"
    assert fb.metrics.primary_records == (1 if comes_back else 0)
    assert fb.metrics.breaker_open is not comes_back
    # it timed out (the breaker opened on it): one failure, whether it fails later or not
    # (a timeout was not counted at all, hostile review of session 27)
    assert fb.metrics.primary_failures == 1
    primary.hang.set()  # (its own shutdown returns at once)
    fb.shutdown()


def test_shutdown_and_flush_are_bounded_when_the_primary_hangs() -> None:
    primary = Scripted()
    fb = FallbackLogRecordExporter(primary, Keep(), shutdown_timeout_s=0.2)
    started = time.monotonic()
    fb.shutdown()
    assert time.monotonic() - started < 5.0
    primary.hang.set()


# -- end to end: collector up, down, up; then replay ------------------------------------------


def _attributes(t: int, n: int) -> dict[str, Any]:
    return {
        "rec.id": f"t{t}-{n}",
        "n": n,
        "ratio": n / 7,
        "ok": n % 2 == 0,
        "blob": bytes([n % 256, 0, 255]),
        "tags": ("a", f"b{n}"),
    }


def _run_pipeline(
    receiver: HttpReceiver | GrpcReceiver, protocol: str, path: Path
) -> tuple[dict[str, Any], float]:
    """Emit from several threads while the receiver goes down and comes back; return what
    was emitted (by id) and the slowest logging call."""
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "fallback-test"}), shutdown_on_exit=False
    )
    primary = otlp_exporter(protocol, receiver.endpoint, timeout=2)
    fb = FallbackLogRecordExporter(primary, LogxpyLogRecordExporter(path), cooldown_s=0.1, max_cooldown_s=0.3)
    provider.add_log_record_processor(
        BatchLogRecordProcessor(
            fb, schedule_delay_millis=10, max_queue_size=100_000, max_export_batch_size=100
        )
    )
    logger = provider.get_logger("fallback.test", "1.0")
    tracer = TracerProvider().get_tracer("t")
    emitted: dict[str, Any] = {}
    lock = threading.Lock()
    slowest = [0.0]
    switch = threading.Barrier(THREADS + 1)  # producers pause while the collector goes down or up

    def produce(t: int) -> None:
        for n in range(PER_THREAD):
            if n in (PER_THREAD // 3, 2 * PER_THREAD // 3):
                switch.wait(60)
                switch.wait(60)
            with tracer.start_as_current_span("op") as span:
                ctx = span.get_span_context()
                ts = time.time_ns()
                attrs = _attributes(t, n)
                started = time.perf_counter()
                logger.emit(
                    timestamp=ts,
                    body=f"record {t}-{n}",
                    severity_number=SeverityNumber.WARN,
                    severity_text="WARN",
                    attributes=attrs,
                )
                took = time.perf_counter() - started
            with lock:
                slowest[0] = max(slowest[0], took)
                emitted[attrs["rec.id"]] = {
                    "ts": ts,
                    "trace_id": f"{ctx.trace_id:032x}",
                    "span_id": f"{ctx.span_id:016x}",
                    "attrs": attrs,
                }

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    switch.wait(60)
    receiver.stop()  # the collector goes down with a third of the records sent
    switch.wait(60)
    switch.wait(60)
    deadline = time.monotonic() + 60
    while fb.metrics.fallback_records == 0:  # bounded poll: the outage must have been seen
        assert time.monotonic() < deadline, "no batch went to the file while the collector was down"
        time.sleep(0.01)
    receiver.start()  # and comes back
    while fb.metrics.breaker_open:  # bounded poll: an empty probe finds it back
        assert time.monotonic() < deadline, "the breaker never closed again"
        time.sleep(0.01)
    live_before = fb.metrics.primary_records
    switch.wait(60)
    for thread in threads:
        thread.join(120)
    assert provider.force_flush(30_000)
    assert fb.metrics.primary_records > live_before, "the last third went live"
    provider.shutdown()
    assert fb.metrics.fallback_records > 0, "the outage sent records to the file"
    assert fb.metrics.primary_records > 0
    return emitted, slowest[0]


def _check_exactly_once(receiver: HttpReceiver | GrpcReceiver, emitted: dict[str, Any]) -> None:
    received = receiver.snapshot()
    ids = [r["attributes"]["rec.id"] for r in received]
    assert len(ids) == len(set(ids)), "no record delivered twice"
    assert set(ids) == set(emitted), "every record delivered"
    for r in received:
        want = emitted[r["attributes"]["rec.id"]]
        assert r["attributes"] == want["attrs"], "attribute values and types survive the file"
        assert r["body"] == f"record {r['attributes']['rec.id'][1:]}"
        assert (r["severity_number"], r["severity_text"]) == (SeverityNumber.WARN.value, "WARN")
        assert r["time_unix_nano"] == want["ts"]
        assert r["observed_time_unix_nano"] > 0
        assert (r["trace_id"], r["span_id"]) == (want["trace_id"], want["span_id"])
        assert r["resource"]["service.name"] == "fallback-test"
        assert r["scope"] == "fallback.test"


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_collector_up_down_up_then_replay_delivers_everything_once(tmp_path: Path, protocol: str) -> None:
    receiver = HttpReceiver() if protocol == "http/protobuf" else GrpcReceiver()
    receiver.start()
    path = tmp_path / "fallback.jsonl"
    try:
        emitted, slowest = _run_pipeline(receiver, protocol, path)
        assert slowest < 0.5, f"a logging call waited {slowest:.3f} s: the network must never block the app"
        live = len(receiver.snapshot())
        assert 0 < live < len(emitted)
        assert cli(["replay", str(path), "--endpoint", receiver.endpoint, "--protocol", protocol]) == 0
        _check_exactly_once(receiver, emitted)
        assert cli(["replay", str(path), "--endpoint", receiver.endpoint, "--protocol", protocol]) == 0
        _check_exactly_once(receiver, emitted)  # a second replay has nothing left to send
    finally:
        receiver.stop()


# -- replay: interrupted, failing, torn, dry ------------------------------------------------


def _write_file(path: Path, count: int) -> None:
    provider = LoggerProvider(resource=Resource.create({"service.name": "replay"}), shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(LogxpyLogRecordExporter(path)))
    logger = provider.get_logger("replay")
    tracer = TracerProvider().get_tracer("t")
    for n in range(count):
        if n % 10 == 0:
            with tracer.start_as_current_span("s"):
                logger.emit(body=f"r{n}", attributes={"rec.id": str(n)})
        else:
            logger.emit(body=f"r{n}", attributes={"rec.id": str(n)})
    provider.shutdown()


def _ids(receiver: HttpReceiver) -> list[str]:
    return [r["attributes"]["rec.id"] for r in receiver.snapshot()]


def test_replay_killed_half_way_resumes_without_loss_or_repeat(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    _write_file(path, 3_000)
    receiver = HttpReceiver()
    receiver.start()
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "logxpy_otel.cli",
                "replay",
                str(path),
                "--endpoint",
                receiver.endpoint,
                "--batch-size",
                "20",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while (
            len(receiver.snapshot()) < 600 and proc.poll() is None
        ):  # bounded poll: no event crosses processes
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 1 and "interrupted" in out
        half = _ids(receiver)
        assert 0 < len(half) < 3_000
        assert cli(["replay", str(path), "--endpoint", receiver.endpoint, "--batch-size", "20"]) == 0
        ids = _ids(receiver)
        assert len(ids) == 3_000 and set(ids) == {str(n) for n in range(3_000)}, "each record once"
    finally:
        receiver.stop()


def test_replay_stops_at_a_refused_batch_and_resumes_later(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "f.jsonl"
    _write_file(path, 500)
    receiver = HttpReceiver()
    receiver.start()
    endpoint = receiver.endpoint
    receiver.stop()  # collector down
    assert cli(["replay", str(path), "--endpoint", endpoint, "--timeout", "1", "--batch-size", "100"]) == 1
    assert "failed 100" in capsys.readouterr().out
    receiver.start()
    try:
        assert cli(["replay", str(path), "--endpoint", receiver.endpoint, "--batch-size", "100"]) == 0
        assert sorted(_ids(receiver), key=int) == [str(n) for n in range(500)]
    finally:
        receiver.stop()


def test_a_torn_last_line_is_skipped_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "torn.jsonl"
    _write_file(path, 20)
    with path.open("ab") as f:
        f.write(b'{"tid":"x.1","lvl":[1],"ts":1.0,"mt":"info","msg":"cut of')
    entries = list(read_file(path))
    bad = [e for e in entries if isinstance(e, BadLine)]
    assert len(bad) == 1 and bad[0].torn
    assert cli(["replay", str(path), "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "would send 20, skipped 1, failed 0" in captured.out
    assert "torn last line" in captured.err
    assert not Path(str(path) + ".replay.json").exists(), "a dry run writes no checkpoint"


def test_replay_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli(["replay", "x.jsonl", "--batch-size", "0"])
    assert info.value.code == 2
    assert "must be an integer >= 1" in capsys.readouterr().err
    assert cli(["replay", str(tmp_path / "missing.jsonl"), "--dry-run"]) == 2
    for timeout in ("nan", "-1", "0", "inf", "soon"):  # (a NaN timed every export out: exit 1)
        with pytest.raises(SystemExit) as info:
            cli(["replay", "x.jsonl", "--timeout", timeout])
        assert info.value.code == 2
        assert "--timeout: must be a number of seconds" in capsys.readouterr().err
    for endpoint in ("not a url", "ftp://collector", "http://[::1", "http://collector:99999"):
        with pytest.raises(SystemExit) as info:  # (each exited 1 as if the collector refused)
            cli(["replay", "x.jsonl", "--endpoint", endpoint])
        assert info.value.code == 2
        assert "--endpoint: must be an http(s) URL" in capsys.readouterr().err


# -- zero code: OTEL_LOGS_EXPORTER=logxpy_fallback ---------------------------------------------


def test_logxpy_fallback_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = HttpReceiver()
    receiver.start()
    path = tmp_path / "zero.jsonl"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "1")
    monkeypatch.setenv("OTEL_EXPORTER_LOGXPY_FILE", str(path))
    exporter = LogxpyFallbackLogRecordExporter()
    try:
        batch = [_readable("live")]
        assert exporter.export(batch) is LogRecordExportResult.SUCCESS
        receiver.stop()
        assert exporter.export([_readable("kept")]) is LogRecordExportResult.SUCCESS
        assert exporter.force_flush(10_000)  # a send may still be retrying: it ends in the file
        assert [e.record.log_record.body for e in read_file(path) if not isinstance(e, BadLine)] == ["kept"]
        assert [r["body"] for r in receiver.snapshot()] == ["live"]
    finally:
        exporter.shutdown()
        receiver.stop()


def test_without_the_otlp_extra_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http._log_exporter", None)
    with pytest.raises(ImportError, match=r"pip install 'logxpy-otel\[otlp\]'"):
        otlp_exporter("http/protobuf")
    with pytest.raises(ValueError, match="OTLP protocol must be one of http/protobuf, grpc; got 'udp'"):
        otlp_exporter("udp")


def _readable(body: str) -> ReadableLogRecord:
    return readable_record(make_record(body=body), Resource.create({"service.name": "zero"}))


if os.name != "posix":  # pragma: no cover
    pytest.skip("POSIX only", allow_module_level=True)


def test_bad_lines_are_reported_once_but_a_torn_last_line_stays_to_be_read(tmp_path: Path) -> None:
    from logxpy_otel.replay import replay_files

    path = tmp_path / "bad.jsonl"
    _write_file(path, 30)
    with path.open("ab") as f:
        f.write(b"not json\n")
    keep = Keep()
    first = replay_files([str(path)], keep, batch_size=7)
    assert (first.sent, first.skipped, first.failed) == (30, 1, 0)
    again = replay_files([str(path)], keep, batch_size=7)
    assert (again.sent, again.skipped) == (0, 0), "a complete bad line is behind the checkpoint"
    with path.open("ab") as f:
        f.write(b'{"tid":"x.1","lvl":[1],"ts":1.0,"msg":"cut')
    torn = replay_files([str(path)], keep, batch_size=7)
    assert (torn.sent, torn.skipped) == (0, 1)
    assert replay_files([str(path)], keep, batch_size=7).skipped == 1, "a torn last line is read again"
    assert sum(len(b) for b in keep.batches) == 30


def test_a_steady_app_loses_nothing_while_the_collector_is_dead(tmp_path: Path) -> None:
    """Issue 18: OTEL_LOGS_EXPORTER=logxpy_fallback under the SDK's batch processor with its
    default settings (2,048-record queue), 2,000 records/s for 5 s against a collector that
    accepts connections and never answers (the worst case: every request waits out the OTLP
    timeout, 2 s here: a worker held that long gets 4,000 records, past its queue). Every
    probe used to block the batch processor's worker for that timeout and its queue
    overflowed. Then the collector comes back and replay delivers each once."""
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(1024)  # connections queue and are never answered
    path = tmp_path / "outage.jsonl"
    script = textwrap.dedent(
        """
        import sys, time
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from logxpy_otel.fallback import LogxpyFallbackLogRecordExporter

        rate, seconds = 2_000, float(sys.argv[1])
        provider = LoggerProvider()
        provider.add_log_record_processor(BatchLogRecordProcessor(LogxpyFallbackLogRecordExporter()))
        logger = provider.get_logger("app")
        start, sent = time.monotonic(), 0
        while sent < rate * seconds:
            for _ in range(20):
                logger.emit(body="r", attributes={"n": sent})
                sent += 1
            time.sleep(max(0.0, start + sent / rate - time.monotonic()))  # pacing, as an app's load
        provider.shutdown()
        print("SENT", sent)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOGXPY_"))}
    env |= {
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"http://127.0.0.1:{blackhole.getsockname()[1]}/v1/logs",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "2",
        "OTEL_EXPORTER_LOGXPY_FILE": str(path),
    }
    seconds = 5
    done = subprocess.run(
        [sys.executable, "-c", script, str(seconds)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    blackhole.close()
    assert done.returncode == 0, done.stderr[-3000:]
    sent = int(done.stdout.split("SENT", 1)[1])
    assert sent == 2_000 * seconds
    kept = sorted(e.record.log_record.attributes["n"] for e in read_file(path) if not isinstance(e, BadLine))
    assert kept == list(range(sent)), f"{sent - len(set(kept))} record(s) lost"
    assert "Queue full" not in done.stderr, "the SDK's batch processor dropped records"
    assert "collector is unreachable" in done.stderr, "the outage is reported on stderr"
    receiver = HttpReceiver()
    receiver.start()
    try:
        assert cli(["replay", str(path), "--endpoint", receiver.endpoint]) == 0
        assert cli(["replay", str(path), "--endpoint", receiver.endpoint]) == 0  # nothing twice
        received = sorted(r["attributes"]["n"] for r in receiver.snapshot())
    finally:
        receiver.stop()
    assert received == list(range(sent))


# -- issue 13 item 8: tests that notice when the code is wrong ----------------------------------


class Side(Keep):
    """A primary or fallback whose force_flush answers as the test says (or hangs until
    released), and which counts its shutdowns."""

    def __init__(self, flushes: bool = True) -> None:
        super().__init__()
        self.flushes = flushes
        self.hangs = False
        self.release = threading.Event()
        self.shutdowns = 0

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        if self.hangs:
            self.release.wait(30)
        return self.flushes

    def shutdown(self) -> None:
        self.shutdowns += 1


@pytest.mark.parametrize(("primary_flushes", "file_flushes"), [(True, True), (False, True), (True, False)])
def test_force_flush_is_true_only_when_both_sides_flushed(primary_flushes: bool, file_flushes: bool) -> None:
    primary, file = Side(primary_flushes), Side(file_flushes)
    fb = FallbackLogRecordExporter(primary, file)
    assert fb.export(["a"]) is LogRecordExportResult.SUCCESS
    assert fb.force_flush(5_000) is (primary_flushes and file_flushes)
    fb.shutdown()


def test_force_flush_is_false_when_the_primarys_flush_hangs() -> None:
    primary, file = Side(), Side()
    primary.hangs = True
    fb = FallbackLogRecordExporter(primary, file)
    started = time.monotonic()
    assert fb.force_flush(200) is False
    assert time.monotonic() - started < 5.0
    primary.release.set()
    fb.shutdown()


def test_force_flush_takes_its_timeout_once_for_the_send_and_the_primary_flush_together() -> None:
    """The wait for a live send under way and the primary's own flush share one deadline."""

    class Hanging(Scripted):
        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return self.release.wait(30)

    primary = Hanging()
    primary.block = True
    primary.hang.set()  # its shutdown returns at once
    fb = FallbackLogRecordExporter(primary, Keep(), live_timeout_s=0.05, cooldown_s=60.0, max_cooldown_s=60.0)
    assert fb.export(["x"]) is LogRecordExportResult.SUCCESS  # still under way
    started = time.monotonic()
    assert fb.force_flush(1_000) is False
    took = time.monotonic() - started
    assert 0.9 < took < 1.9, f"force_flush(1000 ms) took {took:.2f} s (two timeouts would be 2)"
    primary.release.set()
    fb.shutdown()


def test_fallback_metrics_count_records_and_batches_apart() -> None:
    primary, keep = Scripted(), Keep()
    primary.hang.set()
    fb = FallbackLogRecordExporter(primary, keep, cooldown_s=60.0, max_cooldown_s=60.0)
    assert fb.export(["a", "b", "c"]) is LogRecordExportResult.SUCCESS
    primary.up = False
    fb.export(["d", "e"])  # the send fails: to the file, the breaker opens
    fb.export(["f", "g", "h", "i"])  # open: straight to the file
    m = fb.metrics
    assert (m.primary_batches, m.primary_records) == (1, 3)
    assert (m.fallback_batches, m.fallback_records) == (2, 6)
    assert keep.batches == [["d", "e"], ["f", "g", "h", "i"]]
    fb.shutdown()


class Outage(LogRecordExporter):
    """A collector down for the next ``probes_down`` empty requests (and for every batch
    while it is down), then up."""

    def __init__(self) -> None:
        self.probes_down = 0
        self.batches: list[list[Any]] = []
        self._lock = threading.Lock()

    def export(self, batch: Any) -> LogRecordExportResult:
        with self._lock:
            if batch:
                self.batches.append(list(batch))
            elif self.probes_down:
                self.probes_down -= 1
                raise ConnectionRefusedError("collector down")
            if self.probes_down:
                raise ConnectionRefusedError("collector down")
            return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class Ticking:
    """A clock that moves on 1,000 s at each look: every cool-down has passed by the next."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1_000.0
        return self.t


def test_the_cool_down_doubles_up_to_its_cap_and_starts_afresh_after_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging
    import re

    caplog.set_level(logging.WARNING, logger="logxpy_otel")
    primary = Outage()
    fb = FallbackLogRecordExporter(primary, Keep(), cooldown_s=1.0, max_cooldown_s=3.0, clock=Ticking())
    primary.probes_down = 3
    fb.export(["a"])  # fails; then three probes fail, the fourth finds the collector back
    wait_for(lambda: fb.metrics.breaker_state is BreakerState.CLOSED)
    primary.probes_down = 1
    fb.export(["b"])  # the next outage: one failed probe
    wait_for(lambda: fb.metrics.breaker_state is BreakerState.CLOSED)
    waits = [
        float(m.group(1))
        for r in caplog.records
        if (m := re.search(r"next try in ([\d.]+) s", r.getMessage())) is not None
    ]
    assert waits == [1.0, 2.0, 3.0, 3.0, 1.0, 2.0]
    assert fb.metrics.primary_failures == 6
    fb.shutdown()


@pytest.mark.parametrize(
    "durations",
    [
        {"cooldown_s": 0},
        {"cooldown_s": -1.0},
        {"cooldown_s": 5.0, "max_cooldown_s": 1.0},
        {"max_cooldown_s": 100_000.0},
        {"live_timeout_s": 0},
        {"shutdown_timeout_s": 0.0},
    ],
)
def test_durations_of_zero_or_out_of_order_are_refused(durations: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        FallbackLogRecordExporter(Keep(), Keep(), **durations)


def test_shutdown_shuts_both_sides_down() -> None:
    primary, file = Side(), Side()
    fb = FallbackLogRecordExporter(primary, file)
    fb.export(["a"])
    fb.shutdown()
    assert (primary.shutdowns, file.shutdowns) == (1, 1)


def test_a_send_still_under_way_at_shutdown_is_written_to_the_file_too() -> None:
    """The process may end right after shutdown(): a record sent twice beats one lost."""
    primary, keep = Scripted(), Keep()
    primary.block = True
    primary.hang.set()
    fb = FallbackLogRecordExporter(
        primary, keep, live_timeout_s=0.05, shutdown_timeout_s=0.2, cooldown_s=60.0, max_cooldown_s=60.0
    )
    assert fb.export(["x"]) is LogRecordExportResult.SUCCESS
    assert primary.entered.is_set()
    fb.shutdown()
    assert keep.batches == [["x"]]
    primary.release.set()


def test_batches_after_shutdown_go_to_the_file_never_to_the_collector() -> None:
    primary, keep = Keep(), Keep()
    fb = FallbackLogRecordExporter(primary, keep)
    assert fb.export(["a"]) is LogRecordExportResult.SUCCESS
    fb.shutdown()
    fb.export(["late"])
    assert primary.batches == [["a"]]
    assert keep.batches == [["late"]]


@pytest.mark.parametrize(
    ("path", "posted_to"),
    [("", "/v1/logs"), ("/", "/v1/logs"), ("/v1/logs", "/v1/logs"), ("/gateway/logs", "/gateway/logs")],
)
def test_an_http_endpoint_gets_v1_logs_only_when_it_names_no_path(path: str, posted_to: str) -> None:
    from http.server import ThreadingHTTPServer

    paths: list[str] = []

    class Handler(OtlpHttpHandler):
        def do_POST(self) -> None:
            self.read_body()
            paths.append(self.path)
            self.accept()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        exporter = otlp_exporter(
            "http/protobuf", f"http://127.0.0.1:{server.server_address[1]}{path}", timeout=5
        )
        assert exporter.export([_readable("hello")]) is LogRecordExportResult.SUCCESS
        exporter.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    assert paths == [posted_to]


class _Refusing(Keep):
    """Refuses every batch (keeps none)."""

    def export(self, batch: Any) -> LogRecordExportResult:
        return LogRecordExportResult.FAILURE


def test_records_the_file_did_not_keep_are_not_counted_as_kept() -> None:
    """``fallback_records`` (and the recovery warning's "N record(s) kept in the local file")
    counted every batch handed to the file, kept or not."""
    down = Scripted()
    down.up = False
    down.hang.set()  # (its own shutdown returns at once)
    exporter = FallbackLogRecordExporter(down, _Refusing(), cooldown_s=3600, max_cooldown_s=3600)
    try:
        batch = [readable_record(make_record(body=f"r{n}")) for n in range(3)]
        assert exporter.export(batch) is LogRecordExportResult.FAILURE
        assert exporter.export(batch) is LogRecordExportResult.FAILURE
        assert (exporter.metrics.fallback_batches, exporter.metrics.fallback_records) == (0, 0)
    finally:
        exporter.shutdown()


# -- hostile review, session 27 ---------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_record_otlp_cannot_encode_goes_to_the_file_alone_and_the_breaker_stays_closed(
    tmp_path: Path, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK takes a body of 2**70; the OTLP encoder refused it, and its export failed.
    That was taken for the collector being down: "the collector is unreachable", the
    breaker open and the records after it sent to the file for a second, while the
    collector was up. Now the batch's other records are sent, the refused one goes to the
    file, and the breaker stays closed. (A body of 2**70 is sent live now, in its nearest
    form: a ``severity_text`` that is not a string is what OTLP still refuses, and replay
    sets it aside with the reason.)"""
    receiver = HttpReceiver() if protocol == "http/protobuf" else GrpcReceiver()
    receiver.start()
    path = tmp_path / "fallback.jsonl"
    primary = otlp_exporter(protocol, receiver.endpoint, timeout=5)
    fb = FallbackLogRecordExporter(primary, LogxpyLogRecordExporter(path), live_timeout_s=10.0)
    try:
        resource = Resource({"service.name": "t"})
        batch = [
            readable_record(
                make_record(
                    body=f"r{n}",
                    severity_text=5 if n == 2 else None,  # type: ignore[arg-type]
                    attributes={"rec.id": str(n)},
                ),
                resource,
            )
            for n in range(5)
        ]
        with caplog.at_level("WARNING", logger="logxpy_otel"):
            assert fb.export(batch) is LogRecordExportResult.SUCCESS
            assert fb.export(batch[:1]) is LogRecordExportResult.SUCCESS
        m = fb.metrics
        assert m.breaker_state is BreakerState.CLOSED and m.primary_failures == 0
        assert (m.primary_records, m.fallback_records) == (5, 1)
        assert sorted(_ids(receiver)) == ["0", "0", "1", "3", "4"]
        assert not [r for r in caplog.records if "unreachable" in r.getMessage()]
        fb.shutdown()
        before = len(receiver.snapshot())
        assert cli(["replay", str(path), "--endpoint", receiver.endpoint, "--protocol", protocol]) == 1
        assert len(receiver.snapshot()) == before  # (set aside, not sent)
        assert "TypeError" in Path(dead_letter_path(str(path))).read_text()
    finally:
        fb.shutdown()
        receiver.stop()


def test_a_refused_record_is_filed_once_when_shutdown_comes_during_the_resend(tmp_path: Path) -> None:
    """Review of today's fix: the refused records went to the file, then shutdown wrote the
    send still under way, the whole batch, to the file too: the refused record twice."""
    receiver = HttpReceiver()
    receiver.start()
    path = tmp_path / "fallback.jsonl"
    primary = otlp_exporter("http/protobuf", receiver.endpoint, timeout=5)
    real, calls, resending = primary.export, [0], threading.Event()

    def slow_second(batch: Any) -> LogRecordExportResult:
        calls[0] += 1
        if calls[0] == 2:  # the re-send of the others, slow: shutdown comes meanwhile
            resending.set()
            time.sleep(2)
        return real(batch)

    primary.export = slow_second  # type: ignore[method-assign]
    fb = FallbackLogRecordExporter(
        primary, LogxpyLogRecordExporter(path), live_timeout_s=0.1, shutdown_timeout_s=0.5
    )
    try:
        res = Resource({"service.name": "t"})
        texts: list[Any] = [5, None, None, None]  # (a severity_text OTLP refuses)
        records = [
            make_record(body=f"r{n}", severity_text=text, attributes={"rec.id": str(n)})
            for n, text in enumerate(texts)
        ]
        batch = [readable_record(record, res) for record in records]
        fb.export(batch)
        assert resending.wait(10)
        fb.shutdown()
        filed = [line["rec.id"] for line in _file_records(path)]
        assert sorted(filed) == ["0", "1", "2", "3"]  # the refused one once; the others at shutdown
        assert fb.metrics.fallback_records == 4
    finally:
        receiver.stop()


def _file_records(path: Path) -> list[Any]:
    return [dict(r.record.log_record.attributes or {}) for r in read_file(path) if not isinstance(r, BadLine)]


# -- session 28: a hostile review of zero-code set-ups ------------------------------------------


def test_a_child_forked_during_a_live_send_leaves_the_parent_s_batch_to_the_parent() -> None:
    """With ``logxpy_fallback``, ``os.fork()`` while a live send was under way gave every
    child the parent's send: each child waited out ``shutdown_timeout`` for a sender thread
    it does not have (5 s an exit), then wrote the parent's batch to the file (a reviewer's
    run: 10 records 4 times, 3 children). A child forgets the parent's send; the parent
    delivers it, or files it, alone."""
    primary, keep = Scripted(), Keep()
    primary.block = True
    primary.hang.set()  # (its own shutdown returns at once)
    fb = FallbackLogRecordExporter(primary, keep, live_timeout_s=0.05, shutdown_timeout_s=5.0)
    assert fb.export(["parent"]) is LogRecordExportResult.SUCCESS  # (timed out: under way)
    assert primary.entered.wait(10)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what its shutdown filed, and how long it took
        os.close(read)
        started = time.monotonic()
        fb.export(["child"])
        fb.shutdown()
        took = time.monotonic() - started
        os.write(write, json.dumps([keep.batches, took < 2.0]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        filed, quick = json.loads(pipe.read())
    os.waitpid(pid, 0)
    primary.release.set()
    fb.shutdown()
    assert quick, "the child waited for the parent's send"
    assert ["parent"] not in filed, filed
    assert keep.batches.count(["parent"]) <= 1  # (the parent: delivered, or filed once)


def test_a_send_that_fails_after_shutdown_filed_it_is_not_filed_again() -> None:
    """Shutdown writes a send still under way at its bound to the file, then shuts the OTLP
    exporter down, which ends the send's retries: the send failed, and the sender thread
    filed the same batch again (2 of 5 runs under zero code; every time with
    ``logxpy,logxpy_fallback``). Whoever files a send's batch first files it alone."""
    primary, keep = Scripted(), Keep()
    primary.block = True
    primary.up = False
    fb = FallbackLogRecordExporter(primary, keep, live_timeout_s=0.05, shutdown_timeout_s=0.2)
    fb.export(["once"])
    assert primary.entered.wait(10)
    shut = threading.Thread(target=fb.shutdown)
    shut.start()
    wait_for(lambda: ["once"] in keep.batches)  # (filed by shutdown at its bound)
    primary.release.set()  # the send fails now, after shutdown filed it
    primary.hang.set()
    shut.join(10)
    wait_for(lambda: fb._inflight is None)
    assert keep.batches.count(["once"]) == 1, keep.batches


@pytest.mark.parametrize("state", ["open", "probing"])
def test_a_child_forked_while_the_breaker_is_open_tries_the_collector_again(state: str) -> None:
    """Review of the fork fix: only the sender thread moves the breaker on from open or
    probing, and a child has none until a send starts one, which only a closed breaker
    did: a child forked during an outage (a gunicorn worker forked during a collector
    blip) wrote to the file for good. A child that finds the breaker open starts its own
    sender thread, which probes; a probe under way at the fork was the parent's."""
    primary, keep = Scripted(), Keep()
    fb = FallbackLogRecordExporter(primary, keep, cooldown_s=0.02, max_cooldown_s=0.05, live_timeout_s=0.5)
    primary.up = False
    fb.export(["down"])  # the breaker opens
    probing = threading.Event()
    if state == "probing":
        release = threading.Event()
        plain = primary.export

        def slow_probe(batch: Any) -> LogRecordExportResult:
            if not batch:
                probing.set()
                release.wait(10)
            return plain(batch)

        primary.export = slow_probe  # type: ignore[method-assign]
        assert probing.wait(10)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        primary.up = True
        primary.export = types.MethodType(Scripted.export, primary)  # type: ignore[method-assign]
        before = len(primary.seen)
        deadline = time.monotonic() + 10
        while fb.metrics.breaker_open and time.monotonic() < deadline:
            fb.export(["child"])
            time.sleep(0.01)
        fb.export(["live"])
        answer = [str(fb.metrics.breaker_state), ["live"] in primary.seen[before:]]
        os.write(write, json.dumps(answer).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        breaker, live = json.loads(pipe.read())
    os.waitpid(pid, 0)
    if state == "probing":
        release.set()
    primary.hang.set()
    fb.shutdown()
    assert (breaker, live) == ("closed", True)


def test_records_the_encoder_refuses_are_filed_once_when_shutdown_files_the_send() -> None:
    """Review: shutdown's bound can fall while the sender works out which records the
    encoder refuses: shutdown filed the whole batch, then the sender filed the refused
    ones again. Whoever files first files what is left of the send, once."""
    primary, keep = Scripted(), Keep()
    primary.up = False
    primary.hang.set()
    fb = FallbackLogRecordExporter(primary, keep, live_timeout_s=0.05, shutdown_timeout_s=0.2)
    working = threading.Event()

    def slow_refused(batch: Any) -> list[int]:
        working.set()
        time.sleep(0.5)  # (encoding a large batch)
        return [i for i, record in enumerate(batch) if record == "bad"]

    fb._refused = slow_refused  # type: ignore[method-assign]
    fb.export(["bad", "good"])
    assert working.wait(10)
    fb.shutdown()
    wait_for(lambda: fb._inflight is None)
    filed = [record for batch in keep.batches for record in batch]
    assert sorted(filed) == ["bad", "good"], keep.batches


def test_at_a_child_s_end_a_send_the_breaker_gave_up_on_is_filed_at_once() -> None:
    """Review: with the collector down, each ``multiprocessing`` child's first send hangs
    in the OTLP exporter's retries, and the child's end waited the whole shutdown bound for
    it (8 one-record pool tasks: 20 s). Once the breaker has given up on it, the child's
    end files it at once; and a shutdown after that does not wait for it a second time
    (a spawn child waited twice: 10 s)."""
    primary, keep = Scripted(), Keep()
    primary.block = True
    primary.hang.set()
    fb = FallbackLogRecordExporter(primary, keep, live_timeout_s=0.05, shutdown_timeout_s=3.0)
    fb.export(["hanging"])  # no answer within 0.05 s: the breaker opens, the send goes on
    assert primary.entered.wait(10) and fb.metrics.breaker_open
    started = time.monotonic()
    fb._at_child_exit()
    assert keep.batches == [["hanging"]]
    fb.shutdown()
    took = time.monotonic() - started
    primary.release.set()
    assert took < 1.5, took  # (3 s, then 3 s more, before)
    wait_for(lambda: fb._inflight is None)
    assert keep.batches == [["hanging"]]


class SlowFile(Keep):
    """A fallback whose writes take a while; says whether a batch came after its shutdown."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = threading.Event()
        self.closed = False
        self.after_close = 0

    def export(self, batch: Any) -> LogRecordExportResult:
        self.writing.set()
        time.sleep(0.4)
        if self.closed:
            self.after_close += len(batch)
        return super().export(batch)

    def shutdown(self) -> None:
        self.closed = True


@pytest.mark.parametrize("then", ["force_flush", "shutdown", "child-end"])
def test_a_failed_send_being_filed_is_waited_for_by_flush_shutdown_and_a_child_s_end(then: str) -> None:
    """Review of the day's diff: a send's failure claimed its batch (``filed``) before it
    wrote it, and waiting for sends skipped claimed ones: a flush that came meanwhile said
    True with nothing in the file, and a shutdown closed the file first (20,000 of 20,000
    records dropped as ``shutdown`` behind the real exporter). At a child's end with the
    breaker given up, that write was not waited for either: the process could end in the
    middle of it. Only a batch in the file is waited for no more."""
    primary, slow = Scripted(), SlowFile()
    primary.up = False
    primary.hang.set()
    fb = FallbackLogRecordExporter(primary, slow, live_timeout_s=5.0, shutdown_timeout_s=5.0)
    sending = threading.Thread(target=fb.export, args=(["r1", "r2"],))
    sending.start()
    assert slow.writing.wait(10)  # (the send failed, the breaker opened; the batch is being filed)
    if then == "force_flush":
        assert fb.force_flush(5000) is True
    elif then == "shutdown":
        fb.shutdown()
    else:
        fb._at_child_exit()
    assert slow.batches == [["r1", "r2"]] and slow.after_close == 0
    sending.join(10)


class GateFile(Keep):
    """A fallback whose write of a batch holding ``gated`` waits for ``gate``; says which
    records came after its shutdown."""

    def __init__(self, gated: str = "a") -> None:
        super().__init__()
        self.gate = threading.Event()
        self.writing = threading.Event()
        self.gated = gated
        self.closed = False
        self.after_close: list[Any] = []

    def export(self, batch: Any) -> LogRecordExportResult:
        if self.gated in batch:
            self.writing.set()
            assert self.gate.wait(30)
        if self.closed:
            self.after_close.extend(batch)
            return LogRecordExportResult.FAILURE
        return super().export(batch)

    def shutdown(self) -> None:
        self.closed = True

    def filed(self) -> list[Any]:
        return sorted(record for batch in self.batches for record in batch)


@pytest.mark.parametrize("then", ["child-end", "shutdown"])
def test_the_write_of_refused_records_is_waited_for_before_the_end(then: str) -> None:
    """A last review: the write of the records the encoder refused was not counted as a
    write of the send's: the end filed the rest, called the send settled and returned (a
    flush then said True with a record missing; a shutdown closed the file under it). Every
    write of a send's records is counted, and the end waits for them all."""
    primary, file = Scripted(), GateFile()
    primary.up = False
    primary.hang.set()
    fb = FallbackLogRecordExporter(primary, file, live_timeout_s=5.0, shutdown_timeout_s=0.2)
    fb._refused = lambda batch: [0] if list(batch)[:1] == ["a"] else []  # type: ignore[method-assign]
    sending = threading.Thread(target=fb.export, args=(["a", "b"],))
    sending.start()
    assert file.writing.wait(10)  # (the refused "a" is being written)
    ending = threading.Thread(target=fb._at_child_exit if then == "child-end" else fb.shutdown)
    ending.start()
    ending.join(0.3)  # (past its 0.2 s bound for the send: it waits for the write still)
    assert ending.is_alive(), "it ended before the write of the refused record"
    file.gate.set()
    ending.join(10)
    sending.join(10)
    assert file.filed() == ["a", "b"] and file.after_close == []


def test_two_shutdowns_at_once_never_close_the_file_under_a_write() -> None:
    """A last review: the second of two shutdowns at once found the send claimed by the
    first, left at the same bound and closed the file while the first was writing it
    (6 of 6 runs, with a 5 ms write)."""
    primary, file = Scripted(), GateFile(gated="z")
    primary.block = True
    primary.hang.set()
    fb = FallbackLogRecordExporter(primary, file, live_timeout_s=0.05, shutdown_timeout_s=0.3)
    fb.export(["z"])
    assert primary.entered.wait(10)
    ends = [threading.Thread(target=fb.shutdown) for _ in range(2)]
    for end in ends:
        end.start()
    assert file.writing.wait(10)  # (both shutdowns' 0.3 s bound for the send is over)
    time.sleep(0.1)  # (the first one's write goes on a while)
    file.gate.set()
    for end in ends:
        end.join(10)
    primary.release.set()
    assert file.filed() == ["z"] and file.after_close == []


def test_a_fallback_whose_flush_or_shutdown_raises_raises_nothing_out() -> None:
    class Broken(Keep):
        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            raise OSError("disk")

        def shutdown(self) -> None:
            raise OSError("disk")

    primary = Scripted()
    primary.hang.set()
    fb = FallbackLogRecordExporter(primary, Broken())
    assert fb.force_flush(1000) is False
    fb.shutdown()


@pytest.mark.parametrize("timeout_millis", [10**18, float("inf"), float("nan"), -5])
def test_force_flush_takes_any_timeout_while_a_send_is_under_way(timeout_millis: float) -> None:
    """A timeout past what a lock can wait (or NaN, or negative) is taken as ``Event.wait``
    takes it: never an ``OverflowError`` out of the flush."""
    primary = Scripted()
    primary.block = True
    primary.hang.set()
    fb = FallbackLogRecordExporter(primary, Keep(), live_timeout_s=0.05, cooldown_s=60.0, max_cooldown_s=60.0)
    assert fb.export(["x"]) is LogRecordExportResult.SUCCESS  # still under way
    assert primary.entered.wait(5)
    threading.Timer(0.2, primary.release.set).start()
    flushed = fb.force_flush(timeout_millis)  # type: ignore[arg-type]
    assert flushed is (timeout_millis != -5 and timeout_millis == timeout_millis)  # (NaN: at once)
    fb.shutdown()


# -- hostile review, session 33 ---------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_what_otlp_cannot_carry_is_sent_live_in_its_nearest_form_never_dropped(
    tmp_path: Path, protocol: str
) -> None:
    """The OTLP encoder drops an attribute it cannot encode (an int of 2**63 or more, or
    below -2**63, at any depth; a lone surrogate in a string or a key) with a log line
    only, and sends the rest: with the collector up, those attributes were lost, and the
    fallback never knew (only a body it cannot encode fails a send). The same record
    through the file and replay arrived with them, as decimal strings. Live sends now go
    in the nearest form OTLP carries, as replay sends: nothing dropped, nothing to the
    file, the same values either way."""
    receiver = HttpReceiver() if protocol == "http/protobuf" else GrpcReceiver()
    receiver.start()
    primary = otlp_exporter(protocol, receiver.endpoint, timeout=5)
    kept = Keep()
    fb = FallbackLogRecordExporter(primary, kept, live_timeout_s=10.0)
    try:
        resource = Resource({"service.name": "t"})
        attributes: dict[str, Any] = {
            "rec.id": "0",
            "order.id": 2**64,
            "low": -(2**63) - 1,
            "edge": 2**63,
            "fits": 2**63 - 1,
            "deep": {"list": [1, 2**65], "k\udc00ey": "a\ud800b"},
            "text": "x\ud83dy",
            "k\udfffey": "v",
        }
        batch = [readable_record(make_record(body=2**70, attributes=attributes), resource)]
        assert fb.export(batch) is LogRecordExportResult.SUCCESS
        (got,) = receiver.snapshot()
        assert got["body"] == str(2**70)
        assert got["attributes"] == {
            "rec.id": "0",
            "order.id": str(2**64),
            "low": str(-(2**63) - 1),
            "edge": str(2**63),
            "fits": 2**63 - 1,
            "deep": {"list": (1, str(2**65)), "k\ufffdey": "a\ufffdb"},
            "text": "x\ufffdy",
            "k\ufffdey": "v",
        }
        m = fb.metrics
        assert (m.primary_records, m.fallback_records, m.primary_failures) == (1, 0, 0)
        assert kept.batches == []
        # The application's record itself is left as it was (the file keeps it whole).
        assert batch[0].log_record.attributes is not None
        assert batch[0].log_record.attributes["order.id"] == 2**64
        assert batch[0].log_record.body == 2**70
    finally:
        fb.shutdown()
        receiver.stop()


def test_a_record_whose_nearest_form_cannot_be_made_is_sent_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nearest form is made in the sender thread: a record it fails on (a hostile value
    of the application's) must not end that thread, nor cost its batch; it goes as it is,
    and the OTLP encoder's own checks decide."""
    from logxpy_otel import _otlp, fallback

    real = _otlp.otlp_form

    def fails_on_two(record: ReadableLogRecord, forms: Any = None) -> Any:
        if record.log_record.body == "r2":
            raise RuntimeError("a hostile value")
        return real(record, forms)

    monkeypatch.setattr(fallback, "otlp_form", fails_on_two)
    receiver = HttpReceiver()
    receiver.start()
    fb = FallbackLogRecordExporter(
        otlp_exporter("http/protobuf", receiver.endpoint, timeout=5), Keep(), live_timeout_s=10.0
    )
    try:
        resource = Resource({"service.name": "t"})
        batch = [
            readable_record(make_record(body=f"r{n}", attributes={"rec.id": str(n)}), resource)
            for n in range(4)
        ]
        assert fb.export(batch) is LogRecordExportResult.SUCCESS
        assert sorted(_ids(receiver)) == ["0", "1", "2", "3"]
        assert fb.export(batch[:1]) is LogRecordExportResult.SUCCESS  # (the thread lives on)
        assert fb.metrics.primary_records == 5
    finally:
        fb.shutdown()
        receiver.stop()


def test_the_application_s_alarm_in_a_batch_going_to_the_file_reaches_it_and_claims_nothing(
    tmp_path: Path,
) -> None:
    """Reviews of session 35: with the breaker open the batch goes to the file in the
    caller's thread; the application's alarm landing in its own ``__repr__`` there is raised
    once the batch is queued, through the fallback (which swallowed it first). Counting
    that batch as kept was withdrawn: the alarm does not say whether the file took it
    whole (a full disk in synchronous mode dropped it, and it was counted). The file's own
    metrics count its lines."""

    class RequestTimeout(Exception):
        pass

    def on_alarm(signum: int, frame: Any) -> None:
        raise RequestTimeout

    class Alarms:
        def __repr__(self) -> str:
            os.kill(os.getpid(), signal.SIGALRM)
            for _ in range(1000):  # (bounded: the handler runs at once, here)
                pass
            return "x"

    primary = Scripted()
    primary.up = False
    file = LogxpyLogRecordExporter(tmp_path / "fallback.jsonl")
    fallback = FallbackLogRecordExporter(primary, file, cooldown_s=60, max_cooldown_s=60)
    fallback.export([_readable("opens the breaker")])
    wait_for(lambda: fallback._state is BreakerState.OPEN)
    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        with pytest.raises(RequestTimeout):
            fallback.export([readable_record(make_record(body=[Alarms()])), _readable("c")])
    finally:
        signal.signal(signal.SIGALRM, old)
    assert file.force_flush(10_000) and file.metrics.written == 3
    assert fallback.metrics.fallback_records == 1  # (the batch before the alarm)
    primary.hang.set()  # (its shutdown returns at once)
    fallback.shutdown()
