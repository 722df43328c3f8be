"""Security properties: file and directory modes, symlinks, the default path, forged lines,
and diagnostics that never carry record content."""

from __future__ import annotations

import logging
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from _helpers import Failing, Gated, assert_accounting, parse_lines, read_records
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from logxpy_otel import DEFAULT_PATH, AsyncConfig, DropReason, LogxpyLogRecordProcessor
from logxpy_otel._format import LineEncoder

_FILE_ENV = (
    "OTEL_EXPORTER_LOGXPY_FILE",
    "OTEL_EXPORTER_LOGXPY_FILE_PERMISSIONS",
    "OTEL_EXPORTER_LOGXPY_NOFOLLOW",
)


@pytest.fixture(autouse=True)
def _no_file_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults under test, whatever the CI environment sets."""
    for name in _FILE_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def provider() -> Iterator[LoggerProvider]:
    lp = LoggerProvider(resource=Resource.create({"service.name": "sec"}), shutdown_on_exit=False)
    yield lp
    lp.shutdown()


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- modes -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("umask_022")
def test_new_file_is_0600_and_new_directories_0750_by_default(
    tmp_path: Path, provider: LoggerProvider
) -> None:
    path = tmp_path / "new" / "deeper" / "app.jsonl"
    processor = LogxpyLogRecordProcessor(path)
    provider.add_log_record_processor(processor)
    provider.get_logger("sec").emit(body="hello")
    provider.shutdown()
    assert [r["msg"] for r in read_records(path)] == ["hello"]
    assert mode_of(path) == 0o600, oct(mode_of(path))
    assert mode_of(tmp_path / "new") == 0o750, "every directory created, not only the last"
    assert mode_of(tmp_path / "new" / "deeper") == 0o750


@pytest.mark.usefixtures("umask_022")
def test_an_existing_directory_keeps_its_mode(tmp_path: Path, provider: LoggerProvider) -> None:
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    processor = LogxpyLogRecordProcessor(existing / "app.jsonl")
    provider.add_log_record_processor(processor)
    provider.shutdown()
    assert mode_of(existing) == 0o755, "a directory we did not create is not ours to change"
    assert mode_of(existing / "app.jsonl") == 0o600


# -- symlinks ----------------------------------------------------------------------------------


def test_nofollow_refuses_a_symlink_at_the_log_path(tmp_path: Path) -> None:
    target = tmp_path / "target.jsonl"
    target.write_bytes(b"")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    with pytest.raises(OSError, match="symlink") as info:
        LogxpyLogRecordProcessor(link, nofollow=True)
    assert str(link) in str(info.value), "the error names the path"
    assert target.read_bytes() == b""


def test_nofollow_refuses_a_dangling_symlink_and_creates_nothing(tmp_path: Path) -> None:
    """A link planted before the file exists must not make us create the file it points to."""
    target = tmp_path / "elsewhere" / "victim"
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "app.jsonl"
    link.symlink_to(target)
    with pytest.raises(OSError, match="symlink"):
        LogxpyLogRecordProcessor(link, nofollow=True)
    assert not target.exists()


def test_without_nofollow_a_symlink_is_followed(tmp_path: Path, provider: LoggerProvider) -> None:
    """The documented default: a symlink at the path is followed (logs into its target)."""
    target = tmp_path / "target.jsonl"
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    processor = LogxpyLogRecordProcessor(link)
    provider.add_log_record_processor(processor)
    provider.get_logger("sec").emit(body="through the link")
    provider.shutdown()
    assert link.is_symlink()
    assert [r["msg"] for r in read_records(target)] == ["through the link"]


# -- the default path --------------------------------------------------------------------------


def test_default_path_is_relative_to_the_working_directory_never_a_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: LoggerProvider
) -> None:
    assert not os.path.isabs(DEFAULT_PATH)
    assert not DEFAULT_PATH.startswith("/tmp")
    assert not DEFAULT_PATH.startswith(tempfile.gettempdir())
    monkeypatch.chdir(tmp_path)
    processor = LogxpyLogRecordProcessor()
    provider.add_log_record_processor(processor)
    (destination,) = processor.writer.destinations
    assert destination.path == DEFAULT_PATH  # type: ignore[attr-defined]
    provider.get_logger("sec").emit(body="default")
    provider.shutdown()
    assert [r["msg"] for r in read_records(tmp_path / DEFAULT_PATH)] == ["default"]
    assert [p.name for p in tmp_path.iterdir()] == [DEFAULT_PATH]


# -- forged lines ------------------------------------------------------------------------------

FORGED = '\n{"tid":"5b8efff798038103d269b633813fc60c","lvl":[1],"at":"otel:trace","st":"started"}\n'


def test_record_content_cannot_forge_lines_or_structure(tmp_path: Path, provider: LoggerProvider) -> None:
    path = tmp_path / "forge.jsonl"
    processor = LogxpyLogRecordProcessor(path)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("sec")
    bodies = [
        FORGED,
        "a\rb",
        "line\r\n" + FORGED + "\r",
        "a\u2028b\u2029c\u0085d",
        '"},"at":"otel:trace","x":{"',
    ]
    hostile_attrs = {
        "at": "otel:trace",
        "tid": "5b8efff798038103d269b633813fc60c",
        "lvl": (1,),
        "st": "started",
        "evil": FORGED,
        "cr": "x\ry",
        "seps": "\u2028\u2029\u0085",
        FORGED: "a key that tries too",
    }
    reserved = {"at", "tid", "lvl", "st"}
    tracer = TracerProvider().get_tracer("sec")
    emitted = 0
    for body in bodies:
        logger.emit(body=body, attributes=hostile_attrs)
        emitted += 1
    with tracer.start_as_current_span("one trace") as span:
        for body in bodies:
            logger.emit(body=body, attributes=hostile_attrs)
            emitted += 1
    trace_id = f"{span.get_span_context().trace_id:032x}"
    provider.shutdown()

    raw = path.read_bytes()
    for forbidden in (b"\r", "\u2028".encode(), "\u2029".encode(), "\u0085".encode()):
        assert forbidden not in raw, f"a raw {forbidden!r} in the file would split lines for some reader"
    assert len(raw.decode().splitlines()) == raw.count(b"\n"), "every line splitter sees the same lines"
    lines = parse_lines(raw)
    structure = [line for line in lines if "at" in line]
    record_lines = [line for line in lines if "at" not in line]
    assert len(record_lines) == emitted, "exactly one line per record"
    assert structure == [
        {"tid": trace_id, "lvl": [1], "ts": structure[0]["ts"], "at": "otel:trace", "st": "started"},
        {
            "tid": trace_id,
            "lvl": [len(bodies) + 2],
            "ts": structure[1]["ts"],
            "at": "otel:trace",
            "st": "succeeded",
        },
    ], "only the structure lines the writer made (one trace: start and end)"
    assert sum(1 for line in lines if "at" in line) == 2, "lines with 'at': the start and end line only"
    for line, body in zip(record_lines, bodies + bodies, strict=True):
        assert line["msg"] == body, "the body comes back intact"
        assert line["tid"] != "5b8efff798038103d269b633813fc60c"
        assert line["_otel"]["attributes"] == {
            "at": "otel:trace",
            "tid": "5b8efff798038103d269b633813fc60c",
            "lvl": [1],
            "st": "started",
        }, "reserved names go to _otel.attributes, not the top level"
        assert not reserved & (set(line) - {"tid", "lvl"}), "no reserved attribute at the top level"
        assert (line["evil"], line["cr"], line["seps"], line[FORGED]) == (
            FORGED,
            "x\ry",
            "\u2028\u2029\u0085",
            "a key that tries too",
        )
    assert {line["tid"] for line in record_lines[len(bodies) :]} == {trace_id}
    assert all(line["tid"] != trace_id and "." in line["tid"] for line in record_lines[: len(bodies)])


# -- diagnostics carry no record content -------------------------------------------------------

SECRET = "SECRET-123"


def test_diagnostics_never_contain_record_content(
    caplog: pytest.LogCaptureFixture, provider: LoggerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing destination (OSError), a full queue under ``warn``, and a fault inside
    on_emit: each is reported on the ``logxpy_otel`` logger, and no report carries the
    body, an attribute name or an attribute value of a record."""
    caplog.set_level(logging.DEBUG, logger="logxpy_otel")
    exploding = threading.Event()
    encode_python = LineEncoder.encode_python

    def maybe_exploding(self: LineEncoder, *args: Any) -> Any:
        if exploding.is_set():
            raise ValueError(f"cannot encode {SECRET}")
        return encode_python(self, *args)

    # The tuple attribute below takes the Python encoder's path in the C encoder too.
    monkeypatch.setattr(LineEncoder, "encode_python", maybe_exploding)
    failing, gate = Failing(), Gated()
    processor = LogxpyLogRecordProcessor(
        destinations=[failing, gate],
        config=AsyncConfig(max_queue_size=5, batch_size=1, queue_policy="warn", flush_interval_ms=10),
    )
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("sec")
    attributes = {"token": SECRET, SECRET: "in a key", "nested": (SECRET, SECRET)}
    try:
        logger.emit(body=f"the first one carries {SECRET}", attributes=attributes)
        assert gate.entered.wait(10.0), "the writer holds the first batch in the gated destination"
        results = []
        for n in range(30):
            logger.emit(body=f"{SECRET} #{n}", attributes=attributes)
            results.append(processor.metrics.dropped_by_reason.get(DropReason.QUEUE_FULL, 0))
        assert results[-1] >= 20, "the queue overflowed"
    finally:
        gate.open()
    assert processor.force_flush(10_000)

    exploding.set()
    processor._fault_report.reset()  # rate-limited (and shared): make this fault's report due now
    logger.emit(body=SECRET, attributes=attributes)
    exploding.clear()
    provider.shutdown()

    m = processor.metrics
    assert_accounting(m)
    assert m.errors >= 1 and failing.calls >= 1
    assert m.dropped_by_reason[DropReason.INTERNAL_ERROR] == 1
    ours = [r for r in caplog.records if r.name == "logxpy_otel" or r.name.startswith("logxpy_otel.")]
    text = [r.getMessage() for r in ours]
    assert any("queue full" in t for t in text), text
    assert any("destination error" in t for t in text), text
    assert any("internal error" in t for t in text), text
    formatter = logging.Formatter("%(message)s %(exc_info)s")
    for record in ours:
        rendered = formatter.format(record) + repr(record.args) + repr(record.__dict__)
        assert SECRET not in rendered, f"record content leaked into a diagnostic: {record.getMessage()!r}"
    everything = [orjson.loads(line) for line in b"".join(gate.batches).splitlines()]
    assert any(SECRET in line["msg"] for line in everything), "the records themselves were written"


def test_diagnostics_from_many_threads_stay_clean(
    caplog: pytest.LogCaptureFixture, provider: LoggerProvider
) -> None:
    """The same under concurrency: 4 threads overflowing a tiny warn queue behind a failing destination."""
    caplog.set_level(logging.DEBUG, logger="logxpy_otel")
    processor = LogxpyLogRecordProcessor(
        destinations=[Failing()],
        config=AsyncConfig(max_queue_size=2, batch_size=1, queue_policy="warn", report_interval_ms=1),
    )
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("sec")

    def work(t: int) -> None:
        for n in range(500):
            logger.emit(body=f"{SECRET}-{t}-{n}", attributes={"secret": SECRET})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    provider.shutdown()
    m = processor.metrics
    assert_accounting(m)
    assert m.written == 0 and m.dropped == 2000
    ours = [r for r in caplog.records if r.name.startswith("logxpy_otel")]
    assert len(ours) >= 2
    assert not [r.getMessage() for r in ours if SECRET in logging.Formatter().format(r)]
