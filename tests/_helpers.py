"""Shared test helpers: in-memory and gated destinations, line items, OTel log records,
values of every kind for hypothesis, accounting checks.

Test modules import these from here; ``conftest.py`` holds only the fixtures.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import strategies as st
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from logxpy_otel import AsyncConfig, AsyncMetrics, AsyncWriter


def item(n: int, trace: str | None = None, failed: bool = False, **extra: Any) -> tuple[Any, ...]:
    """A line item whose record carries ``n`` (and ``extra``) so tests can find it again."""
    body = orjson.dumps({"ts": 1.0 + n, "n": n, **extra})[1:]
    return (trace, 1.0 + n, failed, body[:-1], b"}", None, None)


def parse_lines(data: bytes, *, raw_tid: bool = False) -> list[dict[str, Any]]:
    """Every line of ``data`` as a dict; fails the test on a line that is not one JSON object.

    A trace's ``tid`` is ``<trace id>~<writer token>`` (docs/format.md); unless ``raw_tid``,
    it is checked and cut to the trace id, so that tests compare it with the trace they made.
    """
    assert data == b"" or data.endswith(b"\n"), "the output must end with a newline"
    out = []
    for raw in data.splitlines():
        line = orjson.loads(raw)
        assert isinstance(line, dict)
        tid = line.get("tid")
        if not raw_tid and isinstance(tid, str) and "~" in tid:
            trace, token = tid.split("~")
            assert len(trace) == 32 and token and "." not in token, line
            line["tid"] = trace
        out.append(line)
    return out


def trace_of(tid: str) -> str:
    """The trace id of a trace's ``tid`` (``<trace id>~<writer token>``)."""
    return tid.partition("~")[0]


def records(data: bytes) -> list[dict[str, Any]]:
    """The record lines of ``data`` (structure lines, which have ``at``, left out)."""
    return [line for line in parse_lines(data) if "at" not in line]


def read_records(path: Path) -> list[dict[str, Any]]:
    return records(path.read_bytes())


def assert_accounting(m: AsyncMetrics) -> None:
    """The writer's books balance: every record handed over is written, dropped or pending."""
    assert m.enqueued == m.written + m.dropped + m.pending, m
    assert m.dropped == sum(m.dropped_by_reason.values()), m


class Collect:
    """A destination that keeps every batch in memory."""

    def __init__(self) -> None:
        self.batches: list[bytes] = []
        self._lock = threading.Lock()

    def __call__(self, data: bytes) -> None:
        with self._lock:
            self.batches.append(data)

    @property
    def data(self) -> bytes:
        with self._lock:
            return b"".join(self.batches)

    def records(self) -> list[dict[str, Any]]:
        return records(self.data)


class Gated(Collect):
    """A destination whose calls wait until ``open()``; ``entered`` is set when one is waiting."""

    def __init__(self, timeout: float = 30.0) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()
        self._timeout = timeout

    def __call__(self, data: bytes) -> None:
        self.entered.set()
        assert self.gate.wait(self._timeout), "test gate never opened"
        super().__call__(data)

    def open(self) -> None:
        self.gate.set()


class Failing:
    """A destination that always raises."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, data: bytes) -> None:
        self.calls += 1
        raise OSError(28, "No space left on device")


#: A Python >= 3.12 with the logxpy package (``make test`` builds it and sets this).
LOGXPY_PYTHON = os.environ.get("LOGXPY_PYTHON")
needs_logxpy = pytest.mark.skipif(
    not LOGXPY_PYTHON, reason="set LOGXPY_PYTHON to a Python >= 3.12 with logxpy installed (make test does)"
)

_LOGXPY_READER = """
import json, sys
from logxpy.parse import Parser, WrittenAction
key, report = sys.argv[1], []
for path in sys.argv[2:]:
    with open(path, encoding="utf-8") as f:
        dicts = [json.loads(line) for line in f]
    tasks = []
    for task in Parser.parse_stream(dicts):
        root = task.root()
        if isinstance(root, WrittenAction):
            tasks.append({"tid": root.task_uuid, "kind": "action", "type": root.action_type,
                          "status": root.status, "complete": task.is_complete(),
                          "values": [c.contents[key] for c in root.children]})
        else:
            tasks.append({"tid": root.task_uuid, "kind": "message", "complete": task.is_complete(),
                          "values": [root.contents[key]]})
    report.append(tasks)
print(json.dumps(report))
"""


def logxpy_tasks(key: str, *paths: Path) -> list[list[dict[str, Any]]]:
    """The tasks ``logxpy.parse.Parser`` reads from each file: tid, kind, completeness, and
    the ``key`` field of each record in it (``values``)."""
    result = subprocess.run(
        [str(LOGXPY_PYTHON), "-c", _LOGXPY_READER, key, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report: list[list[dict[str, Any]]] = json.loads(result.stdout)
    for tasks in report:  # a trace's task id is "<trace id>~<writer token>"
        for task in tasks:
            task["raw_tid"], task["tid"] = task["tid"], trace_of(task["tid"])
    return report


#: ``opentelemetry-instrument`` of this interpreter's environment (None: not installed).
INSTRUMENT = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))


def instrument(
    cwd: Path,
    app: Path,
    *,
    service_name: str,
    env: Mapping[str, str],
    flags: Sequence[str] = (),
    args: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``app`` (with ``args``) under opentelemetry-instrument (with ``flags``) in ``cwd``,
    as a user does, with a clean OTel environment (no traces or metrics exported, every
    instrumentation on) plus ``env``; it must exit with 0. Skips the test where
    opentelemetry-instrument is not installed."""
    if INSTRUMENT is None:
        pytest.skip("opentelemetry-instrument is not installed")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOGXPY_"))}
    base.update(
        {
            "OTEL_SERVICE_NAME": service_name,
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "",
        }
    )
    base.update(env)
    result = subprocess.run(
        [INSTRUMENT, *flags, sys.executable, str(app), *args],
        env=base,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


class FakeClock:
    """An injectable ``clock``: the time is whatever the test sets."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def c_or_python(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, module: Any, name: str
) -> str:
    """For a fixture with params ``["c", "python"]``: with "python", set ``module.name``
    (a C speed-up, or None) to None so the Python code runs; with "c", skip where the C
    module is not built."""
    if request.param == "python":
        monkeypatch.setattr(module, name, None)
    elif getattr(module, name) is None:
        pytest.skip("the C module is not built here")
    return str(request.param)


def logs_and_spans(path: Path, **options: Any) -> tuple[Any, Any, Any]:
    """A ``LogxpyLogRecordProcessor`` writing ``path`` (with ``options``), a logger provider
    and a tracer provider sending their records and spans to it: ``(processor, logs, tracing)``."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.trace import TracerProvider

    from logxpy_otel import LogxpyLogRecordProcessor

    processor = LogxpyLogRecordProcessor(path, **options)
    logs = LoggerProvider(shutdown_on_exit=False)
    logs.add_log_record_processor(processor)
    tracing = TracerProvider(shutdown_on_exit=False)
    tracing.add_span_processor(processor.span_processor())
    return processor, logs, tracing


def start_writer(writers: list[AsyncWriter], *dests: Any, **config: Any) -> AsyncWriter:
    """A started writer with ``config``; kept in ``writers``, which stops it at the end."""
    writer = AsyncWriter(dests, AsyncConfig(**config))
    writers.append(writer)
    writer.start()
    return writer


def start_untimed_writer(writers: list[AsyncWriter], *dests: Any, **config: Any) -> AsyncWriter:
    """:func:`start_writer` whose batches are written on flush (or when full), never on a timer."""
    config.setdefault("flush_interval_ms", 600_000)
    return start_writer(writers, *dests, **config)


# -- OTel log records -------------------------------------------------------------------------


def span_context(trace_id: int, span_id: int, trace_flags: int = 1) -> Context:
    """A context whose current span is a non-recording one with these ids: a record made or
    emitted in it carries them, as one emitted inside a span does."""
    span_ctx = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(trace_flags))
    return set_span_in_context(NonRecordingSpan(span_ctx))


def make_record(
    *,
    body: Any = None,
    severity: SeverityNumber | None = None,
    severity_text: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    event_name: str | None = None,
    timestamp: int | None = None,
    observed: int | None = None,
    trace_id: int = 0,
    span_id: int = 0,
    trace_flags: int = 1,
) -> LogRecord:
    """An OTel API log record, as the SDK's ``Logger.emit`` and exporters take it. With a trace
    or span id it is made in :func:`span_context` of those ids; without, in the current context
    (no span in a test). ``observed`` (the observed timestamp) None is the API's: the time
    of the call."""
    context = span_context(trace_id, span_id, trace_flags) if trace_id or span_id else None
    return LogRecord(
        timestamp=timestamp,
        observed_timestamp=observed,
        context=context,
        severity_number=severity,
        severity_text=severity_text,
        body=body,
        attributes=attributes,
        event_name=event_name,
    )


def readable_record(
    record: LogRecord, resource: Resource | None = None, scope: str | None = None
) -> ReadableLogRecord:
    """``record`` as an exporter gets it: with ``resource`` (none: an empty one) and the
    instrumentation scope named ``scope`` (none: no scope)."""
    return ReadableLogRecord(
        record,
        Resource({}) if resource is None else resource,
        None if scope is None else InstrumentationScope(scope),
    )


# -- values of every kind (hypothesis strategies), and what they read back as --------------------

#: Any character, often a lone surrogate (``st.characters`` alone almost never makes one).
any_char = st.one_of(
    st.characters(codec=None),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, codec=None, exclude_categories=()),
)
#: The keys of the value tags (docs/format.md).
tag_keys = st.sampled_from(["$int", "$bytes", "$float", "$map"])


def nested_values(
    scalars: st.SearchStrategy[Any], keys: st.SearchStrategy[str], max_leaves: int
) -> st.SearchStrategy[Any]:
    """``scalars`` and lists, tuples and dicts (keys from ``keys``) of them, nested, with
    one-key dicts whose key is a value tag among them."""
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.lists(children, max_size=4).map(tuple)
            | st.dictionaries(keys, children, max_size=4)
            | st.dictionaries(tag_keys, children, min_size=1, max_size=1)
        ),
        max_leaves=max_leaves,
    )


def clean(s: str) -> str:
    """``s`` as it reads back: lone surrogates as U+FFFD."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)


def normalize(value: Any) -> Any:
    """What a value reads back as: sequences as tuples, lone surrogates as U+FFFD."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, list | tuple):
        return tuple(normalize(v) for v in value)
    if isinstance(value, dict):
        return {clean(k): normalize(v) for k, v in value.items()}
    return value


def start_body_raises_once(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    """The next ``SpanEnd.start_body`` (a callback into Python while a batch is numbered:
    an end whose start the tree never saw) raises ``exc``; the ones after it work."""
    from logxpy_otel._format import SpanEnd

    real = SpanEnd.start_body
    left = [exc]

    def start_body(self: SpanEnd) -> bytes:
        if left:
            raise left.pop()
        return real(self)

    monkeypatch.setattr(SpanEnd, "start_body", start_body)


def memory_kept(run: Callable[[int], object], rounds: int) -> int:
    """Bytes still allocated after ``run(rounds)`` (warm it up first): a leak check. Python's
    allocations by tracemalloc, and the trees' C state by its own count (it allocates
    without the GIL, with the C library's allocator, which tracemalloc does not see)."""
    from logxpy_otel._native import speedup

    forest_bytes = speedup("forest_bytes") or (lambda: 0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0], forest_bytes() or 0
        run(rounds)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before[0] + (forest_bytes() or 0) - before[1]
    finally:
        tracemalloc.stop()


def run_with_subinterpreters(script: str, *args: str, hang: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -c script args...`` (a script that makes a subinterpreter); a hang fails
    the test with ``hang``; where this Python has no subinterpreter module, the test is
    skipped."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(hang)
    if (
        "ImportError" in done.stderr or "ModuleNotFoundError" in done.stderr
    ) and "interpreters" in done.stderr:
        pytest.skip(f"no subinterpreters here: {done.stderr.strip().splitlines()[-1]}")
    return done


def run_script(script: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -c script args...``; a hang fails the test (the child is killed), never the suite."""
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the child did not finish within {timeout} s (deadlock?); stderr:\n{exc.stderr!r}")


def interrupt_at(n: int, module_file: str, call: Any) -> bool:
    """Run ``call()`` with a KeyboardInterrupt raised at the ``n``-th place in the code of
    ``module_file`` where a signal handler's exception can land, in this thread: where a
    function starts, and right after a call returns or a loop jumps back (the places the
    interpreter runs pending signal handlers at). True when it was raised (once).

    A signal's exception after a call is the call's: it is raised here at the next
    instruction, which is the same place unless the two stand in different handlers'
    reach (the first instruction of an inlined ``finally``); such a place is passed over."""
    import dis

    left = [n]
    last: dict[int, tuple[str, int]] = {}  # per frame: the instruction just run, and where
    tables: dict[Any, list[tuple[int, int, int]]] = {}

    def handler_of(code: Any, offset: int) -> int | None:
        table = tables.get(code)
        if table is None:
            table = tables[code] = [(e.start, e.end, e.target) for e in dis._parse_exception_table(code)]
        return next((target for start, end, target in table if start <= offset < end), None)

    def place() -> None:
        left[0] -= 1
        if left[0] == -1:  # (one interrupt, as one signal gives)
            raise KeyboardInterrupt

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != module_file:
            return None
        frame.f_trace_opcodes = True
        if event == "call":  # (a function's start: no opcode event is given for RESUME)
            place()
        elif event == "opcode":
            op = dis.opname[frame.f_code.co_code[frame.f_lasti]]
            before, at = last.get(id(frame), ("", -1))
            last[id(frame)] = (op, frame.f_lasti)
            if before == "JUMP_BACKWARD" or (
                before.startswith("CALL")
                and handler_of(frame.f_code, at) == handler_of(frame.f_code, frame.f_lasti)
            ):
                place()  # (after a call only where the call's handler is this one's: see above)
        return trace

    def opcodes_on(frame: Any, event: str, arg: Any) -> None:
        frame.f_trace_opcodes = True

    def nothing() -> None:
        pass

    # (CPython 3.12.1 reports opcodes only once a frame was traced with them before)
    sys.settrace(opcodes_on)
    try:
        nothing()
    finally:
        sys.settrace(trace)
    try:
        call()
    except KeyboardInterrupt:
        return True
    finally:
        sys.settrace(None)
    return False


def fill_disk(path: Path, leave: int = 0) -> None:
    """Takes every free byte of ``path``'s file system but ``leave``."""
    disk = os.statvfs(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, b"\0" * (disk.f_bavail * disk.f_frsize - leave))
    finally:
        os.close(fd)
