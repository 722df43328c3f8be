"""Zero-code set-up: ``opentelemetry-instrument python app.py`` with only env vars.

The end-to-end tests run the real command in a subprocess (the way users run it, with
``opentelemetry-distro`` installed) and read the file it leaves and what it printed. The
in-process tests at the end take the processor swap (``logxpy_otel._zero_code``) apart.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _helpers import instrument, parse_lines
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, SynchronousMultiLogRecordProcessor
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, InMemoryLogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from logxpy_otel import LogxpyLogRecordExporter, _sdk_private, _zero_code
from logxpy_otel import environment_variables as ev
from logxpy_otel._zero_code import install

from otlp_receiver import HttpReceiver

APP = Path(__file__).parent / "apps" / "zero_code_app.py"
ROOT = Path(__file__).parent.parent


def run(tmp_path: Path, *flags: str, **env: str) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run the app under opentelemetry-instrument with a clean OTel environment plus ``env``."""
    result = instrument(tmp_path, APP, service_name="zero-code-test", flags=flags, env=env)
    (info_line,) = [line for line in result.stdout.splitlines() if line.startswith("ZERO_CODE_APP ")]
    return json.loads(info_line.removeprefix("ZERO_CODE_APP ")), result


def check_file(path: Path, trace_id: str) -> list[dict[str, Any]]:
    """The file holds the four records, the resource, the trace and its structure lines."""
    lines = parse_lines(path.read_bytes())
    records = [line for line in lines if "at" not in line]
    assert sorted(r["msg"] for r in records) == [
        "api inside",
        "api outside",
        "stdlib inside",
        "stdlib outside",
    ]
    for r in records:
        assert r["_otel"]["resource"]["attributes"]["service.name"] == "zero-code-test"
    inside = {r["msg"]: r for r in records if r["tid"] == trace_id}
    assert set(inside) == {"stdlib inside", "api inside"}, "records in the span carry its trace id"
    assert sorted(r["lvl"] for r in inside.values()) == [[2], [3]]
    structure = [line for line in lines if "at" in line]
    assert [(s["lvl"], s["st"]) for s in structure] == [([1], "started"), ([4], "failed")]
    outside = [r for r in records if r["tid"] != trace_id]
    assert all("." in r["tid"] and r["lvl"] == [1] for r in outside)
    by_msg = {r["msg"]: r for r in records}
    assert by_msg["stdlib inside"]["mt"] == "error"
    assert by_msg["api inside"]["n"] == 1
    return records


def _without_paths(text: str) -> str:
    """``text`` without this checkout's and the interpreter's paths (a clone may sit in a
    folder named logxpy-otel; words in paths are not messages)."""
    for path in sorted(
        {str(ROOT), str(Path(sys.executable).parent.parent), sys.prefix}, key=len, reverse=True
    ):
        text = text.replace(path, "<path>")
    return text


def test_logs_exporter_logxpy(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "app.jsonl"
    info, result = run(tmp_path, OTEL_LOGS_EXPORTER="logxpy", OTEL_EXPORTER_LOGXPY_FILE=str(path))
    check_file(path, info["trace_id"])
    assert info["processors"] == ["LogxpyLogRecordProcessor"], "our processor, no batch processor in front"
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    assert result.stderr == ""


def test_spans_too_with_one_variable(tmp_path: Path) -> None:
    """``OTEL_EXPORTER_LOGXPY_SPANS=true``: the app's span is an action of its trace's tree,
    with the two records logged in it as its children."""
    path = tmp_path / "app.jsonl"
    info, result = run(
        tmp_path,
        OTEL_LOGS_EXPORTER="logxpy",
        OTEL_EXPORTER_LOGXPY_FILE=str(path),
        OTEL_EXPORTER_LOGXPY_SPANS="true",
    )
    # (not stderr == "": CPython 3.12.0/3.12.1 print an exit-time error of the logging
    # instrumentation's own; see the Makefile)
    assert "logxpy-otel:" not in result.stderr, "no warning of ours"
    lines = [line for line in parse_lines(path.read_bytes()) if line["tid"] == info["trace_id"]]
    assert [(line["lvl"], line.get("at") or line["msg"], line.get("st")) for line in lines] == [
        ([1], "otel:trace", "started"),
        ([2, 1], "request", "started"),
        ([2, 2], "stdlib inside", None),
        ([2, 3], "api inside", None),
        ([2, 4], "request", "succeeded"),
        ([3], "otel:trace", "failed"),  # an error record in it
    ]


def test_spans_asked_for_in_flat_mode_get_one_clear_warning_and_the_logs_are_written(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    _, result = run(
        tmp_path,
        OTEL_LOGS_EXPORTER="logxpy",
        OTEL_EXPORTER_LOGXPY_FILE=str(path),
        OTEL_EXPORTER_LOGXPY_SPANS="true",
        OTEL_EXPORTER_LOGXPY_MODE="flat",
    )
    assert "OTEL_EXPORTER_LOGXPY_SPANS=true, but span_processor() needs mode 'tree'" in result.stderr
    assert "set-up failed" not in result.stderr
    lines = parse_lines(path.read_bytes())
    assert len(lines) == 4 and not [line for line in lines if "at" in line], "the four records, flat"


@pytest.mark.parametrize("logs_exporter", ["console", "none"])
@pytest.mark.parametrize("sdk_handler", [False, True], ids=["instrumentation-handler", "sdk-handler"])
def test_a_run_that_does_not_ask_for_logxpy_hears_nothing_of_it(
    tmp_path: Path, logs_exporter: str, sdk_handler: bool
) -> None:
    """Installed but not named in OTEL_LOGS_EXPORTER, the package says and writes nothing."""
    info, result = run(tmp_path, OTEL_LOGS_EXPORTER=logs_exporter, **_handler_env(sdk_handler))
    assert result.stderr == ""
    # (the console records name the app's file, whose path may hold "logxpy": not ours to say)
    assert "logxpy" not in _without_paths(result.stdout).lower()
    assert "Configuration of" not in result.stdout, "no warning about configurators among the records"
    assert list(tmp_path.iterdir()) == [], "no file written"
    if logs_exporter == "console":
        assert info["processors"] == ["BatchLogRecordProcessor"]
        assert info["exporters"] == ["ConsoleLogRecordExporter"]
        assert result.stdout.count('"body": ') == 4, "the app's four records, nothing else"
    else:
        assert info["processors"] == []


@pytest.mark.parametrize("sdk_handler", [False, True], ids=["instrumentation-handler", "sdk-handler"])
def test_logxpy_gets_our_processor_and_a_clean_start(tmp_path: Path, sdk_handler: bool) -> None:
    """With logging captured from the start (the SDK's handler goes on the root logger
    inside the configurator), a warning printed during set-up would be the file's first
    record: there is none, on stderr or in the file."""
    path = tmp_path / "clean.jsonl"
    info, result = run(
        tmp_path,
        OTEL_LOGS_EXPORTER="logxpy",
        OTEL_EXPORTER_LOGXPY_FILE=str(path),
        **_handler_env(sdk_handler),
    )
    assert result.stderr == ""
    records = check_file(path, info["trace_id"])
    assert len(records) == 4, "exactly the app's records"
    assert info["processors"] == ["LogxpyLogRecordProcessor"]
    assert info["exporters"] == ["NoneType"], "no batch processor around our exporter"


def test_other_exporters_keep_their_batch_processor(tmp_path: Path) -> None:
    path = tmp_path / "both.jsonl"
    info, result = run(
        tmp_path,
        OTEL_LOGS_EXPORTER="console,logxpy",
        OTEL_EXPORTER_LOGXPY_FILE=str(path),
        OTEL_EXPORTER_LOGXPY_QUEUE_POLICY="drop_oldest",
    )
    check_file(path, info["trace_id"])
    assert info["processors"] == ["BatchLogRecordProcessor", "LogxpyLogRecordProcessor"], "same places"
    assert info["exporters"] == ["ConsoleLogRecordExporter", "NoneType"]
    assert '"body": "api outside"' in result.stdout, "the console exporter works beside ours"
    assert result.stderr == ""


def test_fallback_stays_under_the_batch_processor(tmp_path: Path) -> None:
    """``logxpy_fallback`` wraps an OTLP exporter: it keeps the SDK's batch processor (its
    worker, not the application, waits for the network). Collector down: the file has all."""
    receiver = HttpReceiver()
    receiver.start()
    endpoint = receiver.endpoint
    receiver.stop()  # the port now refuses connections
    path = tmp_path / "fallback.jsonl"
    info, result = run(
        tmp_path,
        OTEL_LOGS_EXPORTER="logxpy_fallback",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_LOGS_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_LOGS_TIMEOUT="1",
        OTEL_EXPORTER_LOGXPY_FILE=str(path),
    )
    check_file(path, info["trace_id"])
    assert info["processors"] == ["BatchLogRecordProcessor"]
    assert info["exporters"] == ["LogxpyFallbackLogRecordExporter"]
    assert "Configuration of" not in result.stderr
    assert "zero-code" not in result.stderr and "laid out" not in result.stderr


def test_the_old_configurator_setting_is_named_when_nothing_was_set_up(tmp_path: Path) -> None:
    """``OTEL_PYTHON_CONFIGURATOR=logxpy`` (an earlier set-up) now selects no configurator:
    the SDK is not set up, and the warning says which setting to remove."""
    path = tmp_path / "old.jsonl"
    info, result = run(
        tmp_path,
        OTEL_PYTHON_CONFIGURATOR="logxpy",
        OTEL_LOGS_EXPORTER="logxpy",
        OTEL_EXPORTER_LOGXPY_FILE=str(path),
    )
    assert "remove OTEL_PYTHON_CONFIGURATOR=logxpy" in result.stderr
    assert info["processors"] == []
    assert not path.exists()


def test_declarative_config_file(tmp_path: Path) -> None:
    path = tmp_path / "declarative.jsonl"
    info, _ = run(
        tmp_path,
        OTEL_CONFIG_FILE=str(ROOT / "examples" / "otel-config.yaml"),
        LOGXPY_FILE=str(path),
        OTEL_SERVICE_NAME="zero-code-test",
    )
    check_file(path, info["trace_id"])
    assert info["exporters"] == ["LogxpyLogRecordExporter"]


def test_instrument_flags(tmp_path: Path) -> None:
    path = tmp_path / "flags.jsonl"
    info, _ = run(
        tmp_path,
        "--logs_exporter",
        "logxpy",
        "--exporter_logxpy_file",
        str(path),
        "--exporter_logxpy_file_permissions",
        "640",
    )
    check_file(path, info["trace_id"])
    assert oct(path.stat().st_mode & 0o777) == oct(0o640 & ~_umask())


def test_a_bad_value_warns_and_the_default_is_used(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    info, result = run(
        tmp_path,
        OTEL_LOGS_EXPORTER="logxpy",
        OTEL_EXPORTER_LOGXPY_FILE=str(path),
        OTEL_EXPORTER_LOGXPY_QUEUE_POLICY="sometimes",
        OTEL_EXPORTER_LOGXPY_BATCH_SIZE="-3",
    )
    check_file(path, info["trace_id"])
    assert "one of block, drop_oldest, drop_newest, warn; using the default 'block'" in result.stderr
    # Once each: our processor takes the exporter's settings, it does not read them again.
    assert result.stderr.count("OTEL_EXPORTER_LOGXPY_QUEUE_POLICY='sometimes' is not valid") == 1
    assert result.stderr.count("OTEL_EXPORTER_LOGXPY_BATCH_SIZE='-3' is not valid: expected an integer") == 1
    assert info["processors"] == ["LogxpyLogRecordProcessor"]


def _handler_env(sdk_handler: bool) -> dict[str, str]:
    """Which logging handler captures stdlib logging: the logging instrumentation's
    (installed after the configurator), or the SDK's own (installed by the configurator,
    so it captures set-up warnings too; the instrumentation then is turned off, as it
    would warn that it skips its handler)."""
    if not sdk_handler:
        return {}
    return {
        "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "logging",
    }


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


# -- in process: the swap itself -------------------------------------------------------------


def _provider_with_batch(
    path: Path, multi: Any = None, batch_class: type[BatchLogRecordProcessor] = BatchLogRecordProcessor
) -> tuple[LoggerProvider, BatchLogRecordProcessor, LogxpyLogRecordExporter, InMemoryLogRecordExporter]:
    """What ``OTEL_LOGS_EXPORTER=memory,logxpy`` makes: a batch processor per exporter, in order.
    The batch processors wait a minute before exporting: what they hold stays queued."""
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "swap"}),
        shutdown_on_exit=False,
        multi_log_record_processor=multi,
    )
    other = InMemoryLogRecordExporter()
    provider.add_log_record_processor(BatchLogRecordProcessor(other, schedule_delay_millis=60_000))
    exporter = LogxpyLogRecordExporter(path)
    batch = batch_class(exporter, schedule_delay_millis=60_000)
    provider.add_log_record_processor(batch)
    return provider, batch, exporter, other


def test_install_puts_our_processor_in_place_and_one_writer_numbers_everything(tmp_path: Path) -> None:
    path = tmp_path / "swap.jsonl"
    provider, batch, exporter, other = _provider_with_batch(path)
    destinations = exporter.writer.destinations
    logger = provider.get_logger("app")
    tracer = TracerProvider().get_tracer("test")
    logger.emit(body="outside")  # queued in the batch processor when the swap comes, as are:
    with tracer.start_as_current_span("request") as span:
        logger.emit(body="held 1")
        logger.emit(body="held 2")
        (processor,) = install(provider)
        logger.emit(body="after 1")
        logger.emit(body="after 2")
    logger.emit(body="outside later")

    assert [type(p).__name__ for p in _sdk_private.processors(provider)] == [
        "BatchLogRecordProcessor",
        "LogxpyLogRecordProcessor",
    ], "in the batch processor's place; the other exporter's stays"
    assert processor.writer is exporter.writer, "what the batch processor held went to the same writer"
    assert processor.writer.destinations == destinations, "the file is not opened a second time"
    assert all(a is b for a, b in zip(processor.writer.destinations, destinations, strict=True))
    assert not batch._batch_processor._worker_thread.is_alive(), "the batch processor is shut down"
    provider.shutdown()

    lines = parse_lines(path.read_bytes())
    trace_id = f"{span.get_span_context().trace_id:032x}"
    in_trace = [(line.get("msg", line.get("st")), line["lvl"]) for line in lines if line["tid"] == trace_id]
    assert in_trace == [
        ("started", [1]),
        ("held 1", [2]),
        ("held 2", [3]),
        ("after 1", [4]),
        ("after 2", [5]),
        ("succeeded", [6]),
    ], "one numbering: one start line, levels in order, one end line"
    standalone = [line for line in lines if line["tid"] != trace_id]
    assert [line["msg"] for line in standalone] == ["outside", "outside later"]
    assert len({line["tid"].rsplit(".", 1)[0] for line in standalone}) == 1, "one writer's task prefix"
    assert processor.metrics.written == 6 and processor.metrics.dropped == 0
    assert len(other.get_finished_logs()) == 6, "the other exporter got every record"


def test_install_twice_changes_nothing_more(tmp_path: Path) -> None:
    provider, _, _, _ = _provider_with_batch(tmp_path / "twice.jsonl")
    (processor,) = install(provider)
    assert install(provider) == []
    assert _sdk_private.processors(provider)[1] is processor
    provider.shutdown()


class _FutureMulti(SynchronousMultiLogRecordProcessor):
    """A multi-processor of an SDK version that keeps its processors in a list."""

    def __init__(self) -> None:
        super().__init__()
        self._log_record_processors: Any = []

    def add_log_record_processor(self, log_record_processor: LogRecordProcessor) -> None:
        self._log_record_processors.append(log_record_processor)


class _OtherMulti(LogRecordProcessor):
    """A multi-processor of another class altogether, with the same public methods."""

    def __init__(self) -> None:
        self.all: list[LogRecordProcessor] = []

    def add_log_record_processor(self, log_record_processor: LogRecordProcessor) -> None:
        self.all.append(log_record_processor)

    def on_emit(self, log_record: Any) -> None:
        for p in self.all:
            p.on_emit(log_record)

    def shutdown(self) -> None:
        for p in self.all:
            p.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self.all)

    def enabled(self, **_: Any) -> bool:
        return True


class _FutureBatch(BatchLogRecordProcessor):
    """A batch processor of an SDK version that names its inner processor differently."""

    def __init__(self, exporter: Any, **kwargs: Any) -> None:
        super().__init__(exporter, **kwargs)
        self._inner = self.__dict__.pop("_batch_processor")

    def on_emit(self, log_record: Any) -> None:
        self.__dict__["_batch_processor"] = self._inner
        try:
            super().on_emit(log_record)
        finally:
            del self.__dict__["_batch_processor"]

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self._inner.force_flush(timeout_millis))


@pytest.mark.parametrize(
    ("multi", "batch_class", "what"),
    [
        (_FutureMulti, BatchLogRecordProcessor, "_log_record_processors is list"),
        (_OtherMulti, BatchLogRecordProcessor, "_multi_log_record_processor is _OtherMulti"),
        (None, _FutureBatch, "_batch_processor._exporter not found"),
    ],
    ids=["processors-in-a-list", "another-multi-class", "batch-internals-renamed"],
)
def test_an_unexpected_sdk_shape_leaves_the_batch_processor_and_warns_once(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    multi: type[Any] | None,
    batch_class: type[BatchLogRecordProcessor],
    what: str,
) -> None:
    path = tmp_path / "safe.jsonl"
    provider, _, exporter, _ = _provider_with_batch(path, multi() if multi else None, batch_class)
    logger = provider.get_logger("app")
    logger.emit(body="before")
    with caplog.at_level(logging.WARNING, logger="logxpy_otel"):
        assert install(provider) == []
    warnings = [r for r in caplog.records if r.name.startswith("logxpy_otel")]
    assert len(warnings) == 1, warnings
    assert "not laid out as expected" in warnings[0].getMessage() and what in warnings[0].getMessage()
    logger.emit(body="after")
    assert exporter._handed_over is None, "the exporter still writes through its own writer"
    provider.shutdown()
    assert [r["msg"] for r in records_of(path)] == ["before", "after"], "records still written"


def check_hook_never_raises(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    hook: str,
    installer: str,
    logs_exporter: str,
    warning: str,
) -> None:
    """``logxpy_otel._zero_code.<hook>()`` with OTEL_LOGS_EXPORTER=``logs_exporter``, whose
    ``installer`` raises: the hook returns, and says ``warning`` (only that)."""

    def broken(_: object) -> list[Any]:
        raise RuntimeError("boom")

    monkeypatch.setenv("OTEL_LOGS_EXPORTER", logs_exporter)
    monkeypatch.delenv("OTEL_CONFIG_FILE", raising=False)
    monkeypatch.setattr(_zero_code, installer, broken)
    with caplog.at_level(logging.WARNING, logger="logxpy_otel"):
        getattr(_zero_code, hook)()
    assert [r.getMessage() for r in caplog.records] == [warning]


def test_pre_instrument_never_raises(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import opentelemetry._logs

    provider = LoggerProvider(shutdown_on_exit=False)
    monkeypatch.setattr(opentelemetry._logs, "get_logger_provider", lambda: provider)
    check_hook_never_raises(
        monkeypatch,
        caplog,
        "pre_instrument",
        "install",
        "otlp, logxpy",
        "logxpy-otel: zero-code set-up failed; logs may not be written",
    )


def check_hook_imports_nothing_when_logxpy_is_not_asked_for(hook: str) -> None:
    """``logxpy_otel._zero_code.<hook>()`` run where OTEL_LOGS_EXPORTER does not name logxpy
    imports nothing but its own module and prints nothing."""
    code = (
        "import sys, logxpy_otel; before = set(sys.modules); "
        f"from logxpy_otel._zero_code import {hook}; {hook}(); "
        "print(sorted(set(sys.modules) - before))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    for value in ("console", "otlp,logxpy_fallback", "none", ""):
        env["OTEL_LOGS_EXPORTER"] = value
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
        )
        assert (out.stdout.strip(), out.stderr) == ("['logxpy_otel._zero_code']", ""), value


def test_the_hook_reads_one_variable_and_imports_nothing_when_logxpy_is_not_asked_for() -> None:
    check_hook_imports_nothing_when_logxpy_is_not_asked_for("pre_instrument")


def records_of(path: Path) -> list[dict[str, Any]]:
    return [line for line in parse_lines(path.read_bytes()) if "at" not in line]


# -- stdlib logging: our handler in the OTel LoggingHandler's place (issue 16) -----------------

LOGGING_APP = Path(__file__).parent / "apps" / "zero_code_logging_app.py"


def run_logging_app(
    tmp_path: Path, sdk_handler: bool = False, **env: str
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """The stdlib-logging app under opentelemetry-instrument, with logging captured by the
    logging instrumentation's handler (or the SDK's own, ``sdk_handler``)."""
    result = instrument(
        tmp_path, LOGGING_APP, service_name="zero-code-logging", env={**_handler_env(sdk_handler), **env}
    )
    info = tmp_path / "app-info.json"
    try:
        return json.loads(info.read_text()), result
    finally:
        info.unlink()


def _comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without what differs from run to run: times, ids, the service instance."""
    out = []
    for record in records:
        record = {k: v for k, v in record.items() if k not in ("ts", "tid", "lvl")}
        otel = dict(record["_otel"])
        for key in ("time_unix_nano", "observed_time_unix_nano", "span_id"):
            otel.pop(key, None)
        attributes = dict(otel["resource"]["attributes"])
        attributes.pop("service.instance.id", None)
        otel["resource"] = {**otel["resource"], "attributes": attributes}
        record["_otel"] = otel
        out.append(record)
    return out


@pytest.mark.parametrize("sdk_handler", [False, True], ids=["instrumentation-handler", "sdk-handler"])
def test_logging_goes_straight_to_our_writer_with_the_otel_paths_lines(
    tmp_path: Path, sdk_handler: bool
) -> None:
    """``OTEL_LOGS_EXPORTER=logxpy`` with logging captured: our handler is on the root logger
    in the OTel handler's place (and stays there through the application's dictConfig), and
    the file holds the records the OTel handler's path writes for the same application
    (that path runs when another exporter is named too: ``console,logxpy``)."""
    ours_path, theirs_path = tmp_path / "ours.jsonl", tmp_path / "theirs.jsonl"
    info, result = run_logging_app(
        tmp_path, sdk_handler, OTEL_LOGS_EXPORTER="logxpy", OTEL_EXPORTER_LOGXPY_FILE=str(ours_path)
    )
    assert info["root_handlers"] == ["LogxpyLoggingHandler"], "our handler, not the OTel one"
    assert info["root_handlers_after_config"] == ["LogxpyLoggingHandler"], "kept through dictConfig"
    assert result.stderr == ""
    their_info, _ = run_logging_app(
        tmp_path, sdk_handler, OTEL_LOGS_EXPORTER="console,logxpy", OTEL_EXPORTER_LOGXPY_FILE=str(theirs_path)
    )
    assert their_info["root_handlers"] == ["LoggingHandler"], "another exporter: the OTel handler stays"
    ours, theirs = records_of(ours_path), records_of(theirs_path)
    assert [r["msg"] for r in ours] == [
        "stdlib outside",
        "stdlib inside the span",
        "failed",
        "after dictConfig",
    ]
    assert _comparable(ours) == _comparable(theirs)
    inside = [r for r in ours if r["tid"].split("~")[0] == info["trace_id"]]
    assert [r["msg"] for r in inside] == ["stdlib inside the span", "failed"], "the span's trace"
    assert ours[2]["exception.type"] == "ValueError" and ours[2]["exception.message"] == "bad input"
    assert ours[0]["_otel"]["resource"]["attributes"]["service.name"] == "zero-code-logging"
    if sdk_handler:  # the SDK handler's meaning: code attributes, no event name promotion
        assert ours[1]["code.function.name"] == "<module>" and ours[1]["otel.event.name"] == "app.failure"
    else:
        assert "code.function.name" not in ours[1] and ours[1]["_otel"]["event_name"] == "app.failure"


def test_logging_handler_options_carry_over(tmp_path: Path) -> None:
    """The instrumentation's handler settings (level, code attributes) are ours too."""
    path = tmp_path / "options.jsonl"
    info, result = run_logging_app(
        tmp_path,
        OTEL_LOGS_EXPORTER="logxpy",
        OTEL_EXPORTER_LOGXPY_FILE=str(path),
        OTEL_PYTHON_LOG_CODE_ATTRIBUTES="true",
        OTEL_PYTHON_LOG_HANDLER_LEVEL="error",
    )
    assert info["root_handlers"] == ["LogxpyLoggingHandler"] and result.stderr == ""
    records = records_of(path)
    assert [r["msg"] for r in records] == ["stdlib inside the span", "failed"], "warning and info below ERROR"
    assert all(r["code.file.path"] == str(LOGGING_APP) for r in records)


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_LOGS_EXPORTER": "console"},
        {"OTEL_LOGS_EXPORTER": "console,logxpy"},
        {"OTEL_LOGS_EXPORTER": "logxpy_fallback", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://127.0.0.1:9"},
    ],
    ids=["not-asked", "another-exporter", "fallback"],
)
def test_the_otel_logging_handler_stays_unless_logxpy_is_the_only_exporter(
    tmp_path: Path, env: dict[str, str]
) -> None:
    env = {
        **env,
        "OTEL_EXPORTER_LOGXPY_FILE": str(tmp_path / "x.jsonl"),
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "1",
    }
    info, result = run_logging_app(tmp_path, **env)
    assert info["root_handlers"] == info["root_handlers_after_config"] == ["LoggingHandler"]
    assert "logxpy-otel: zero-code" not in result.stderr


def test_no_handler_to_replace_when_logging_is_not_captured(tmp_path: Path) -> None:
    path = tmp_path / "uncaptured.jsonl"
    info, result = run_logging_app(
        tmp_path,
        OTEL_LOGS_EXPORTER="logxpy",
        OTEL_EXPORTER_LOGXPY_FILE=str(path),
        OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION="false",
    )
    assert info["root_handlers"] == [], "nothing captures logging: nothing to replace"
    assert "logxpy-otel" not in _without_paths(result.stderr)  # (logging's last resort prints the warnings)
    assert not path.exists() or records_of(path) == []


def test_the_post_hook_reads_one_variable_and_imports_nothing_when_logxpy_is_not_asked_for() -> None:
    check_hook_imports_nothing_when_logxpy_is_not_asked_for("post_instrument")


# -- in process: the handler swap itself -------------------------------------------------------------


@pytest.fixture
def clean_root(monkeypatch: pytest.MonkeyPatch) -> logging.Logger:
    """The root logger's handlers and the three configuration functions, restored after."""
    import logging.config

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(logging.config, "dictConfig", logging.config.dictConfig)
    monkeypatch.setattr(logging.config, "fileConfig", logging.config.fileConfig)
    monkeypatch.setattr(logging, "basicConfig", logging.basicConfig)
    return root


def test_install_logging_handler_swaps_in_place(
    tmp_path: Path, clean_root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.instrumentation.logging import LoggingInstrumentor
    from opentelemetry.instrumentation.logging.handler import LoggingHandler

    from logxpy_otel import LogxpyLoggingHandler, LogxpyLogRecordProcessor

    provider = LoggerProvider(resource=Resource.create({"service.name": "swap"}), shutdown_on_exit=False)
    processor = LogxpyLogRecordProcessor(tmp_path / "swap.jsonl")
    provider.add_log_record_processor(processor)
    before, after = logging.NullHandler(), logging.NullHandler()
    otel = LoggingHandler(level=logging.INFO, logger_provider=provider, log_code_attributes=True)
    marker = logging.Filter("app")
    otel.addFilter(marker)
    elsewhere = LoggingHandler(logger_provider=LoggerProvider(shutdown_on_exit=False))  # the app's own
    clean_root.handlers[:] = [before, otel, after, elsewhere]
    monkeypatch.setattr(LoggingInstrumentor, "_logging_handler", otel)

    (ours,) = _zero_code.install_logging_handler(provider)
    assert clean_root.handlers == [before, ours, after, elsewhere], "in its place; the app's own stays"
    assert isinstance(ours, LogxpyLoggingHandler) and ours.processor is processor
    assert (ours.level, ours.filters, ours.log_code_attributes) == (logging.INFO, [marker], True)
    assert ours.logger_provider is provider
    assert LoggingInstrumentor._logging_handler is ours, "uninstrument() removes ours"

    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "root": {"level": "INFO"}})
    assert ours in clean_root.handlers, "kept through dictConfig"
    logging.getLogger("app.part").info("through ours")
    logging.getLogger("other").info("filtered out")
    assert _zero_code.install_logging_handler(provider) == [], "nothing more to swap"
    provider.shutdown()
    (record,) = records_of(tmp_path / "swap.jsonl")
    assert record["msg"] == "through ours" and record["code.function.name"] == (
        "test_install_logging_handler_swaps_in_place"
    )


def test_install_logging_handler_leaves_a_provider_with_other_processors(
    tmp_path: Path, clean_root: logging.Logger
) -> None:
    from opentelemetry.instrumentation.logging.handler import LoggingHandler

    from logxpy_otel import LogxpyLogRecordProcessor

    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(InMemoryLogRecordExporter()))
    provider.add_log_record_processor(LogxpyLogRecordProcessor(tmp_path / "two.jsonl"))
    otel = LoggingHandler(logger_provider=provider)
    clean_root.handlers[:] = [otel]
    assert _zero_code.install_logging_handler(provider) == []
    assert clean_root.handlers == [otel]
    provider.shutdown()


def test_post_instrument_never_raises(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    check_hook_never_raises(
        monkeypatch,
        caplog,
        "post_instrument",
        "install_logging_handler",
        "logxpy",
        "logxpy-otel: zero-code logging set-up failed; stdlib logging goes through the OTel handler",
    )


# -- a log file the environment names that cannot be opened ---------------------------------


def _a_directory(tmp_path: Path) -> str:
    (tmp_path / "a-directory").mkdir()
    return str(tmp_path / "a-directory")


def _under_a_file(tmp_path: Path) -> str:
    (tmp_path / "plain").write_text("x")
    return str(tmp_path / "plain" / "app.jsonl")


def _a_fifo_nobody_reads(tmp_path: Path) -> str:
    os.mkfifo(tmp_path / "fifo")
    return str(tmp_path / "fifo")


@pytest.mark.parametrize("bad", [_a_directory, _under_a_file, _a_fifo_nobody_reads])
def test_a_log_file_variable_that_cannot_be_opened_is_a_warning_and_the_default(
    tmp_path: Path, bad: Any
) -> None:
    """As for any bad variable: the SDK's whole set-up (traces and metrics too) failed."""
    value = bad(tmp_path)
    info, result = run(tmp_path, OTEL_LOGS_EXPORTER="logxpy", OTEL_EXPORTER_LOGXPY_FILE=value)
    assert "Failed to auto initialize" not in result.stderr, result.stderr[-2000:]
    assert info["processors"], "the logs set-up went on"
    assert "OTEL_EXPORTER_LOGXPY_FILE" in result.stderr and "using the default" in result.stderr
    default = tmp_path / "logxpy-otel.jsonl"
    assert default.exists() and b"stdlib inside" in default.read_bytes(), "records went to the default file"


@pytest.mark.parametrize("protocol", ["http/json", "HTTP/PROTOBUF"])
def test_the_fallback_with_an_otlp_protocol_it_cannot_send_with_warns_and_uses_the_default(
    tmp_path: Path, protocol: str
) -> None:
    info, result = run(
        tmp_path,
        OTEL_LOGS_EXPORTER="logxpy_fallback",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT="http://127.0.0.1:9/v1/logs",
        OTEL_EXPORTER_OTLP_LOGS_PROTOCOL=protocol,
        OTEL_EXPORTER_LOGXPY_FILE=str(tmp_path / "kept.jsonl"),
        OTEL_EXPORTER_OTLP_LOGS_TIMEOUT="1",
    )
    assert "Failed to auto initialize" not in result.stderr, result.stderr[-2000:]
    assert info["processors"], "the logs set-up went on"
    assert ("not a protocol the fallback can send with" in result.stderr) == (protocol == "http/json")


# -- session 28: a hostile review of zero-code set-ups ------------------------------------------


@pytest.mark.parametrize(
    ("names", "says"),
    [
        ("logxpy_fallback", "OTEL_EXPORTER_LOGXPY_SPANS=true needs OTEL_LOGS_EXPORTER=logxpy"),
        ("logxpy,logxpy_fallback", "names both logxpy and logxpy_fallback"),
    ],
)
def test_a_fallback_set_up_that_cannot_do_what_it_asks_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, names: str, says: str
) -> None:
    """``OTEL_EXPORTER_LOGXPY_SPANS=true`` beside ``logxpy_fallback`` alone was ignored
    without a word (flat mode gets one); ``logxpy,logxpy_fallback`` wrote every record twice
    into the one file both name (and replay would send the plain copies too)."""
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", names)
    monkeypatch.setenv("OTEL_EXPORTER_LOGXPY_SPANS", "true")
    monkeypatch.setattr(_zero_code, "install", lambda provider: [])  # (only what is said is looked at)
    with caplog.at_level(logging.WARNING, logger="logxpy_otel"):
        _zero_code.pre_instrument()
    said = [r.getMessage() for r in caplog.records if r.name.startswith("logxpy_otel")]
    assert any(says in message for message in said), said
    assert _zero_code._SPANS_VARIABLE == ev.OTEL_EXPORTER_LOGXPY_SPANS
