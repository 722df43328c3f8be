"""Hostile spans against the span processor's promises (issue 15): each test here shows a
break found by a hostile review (each failed before its fix).

Promises attacked: a span line is written or counted as dropped with a reason; span
content never breaks the encoder; each file is well formed (logxpy's tools read every
span as an action) and under ``max_bytes`` unless one line is longer; the writer never
hangs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from _helpers import parse_lines
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator

from logxpy_otel import AsyncConfig, LogxpyLogRecordProcessor
from logxpy_otel._format import SpanStart
from logxpy_otel._trees import TreeNumberer
from logxpy_otel.reader import BadLine, LineSpan, read_file


class Setup:
    """One file, a logger provider and a tracer provider writing spans into it."""

    def __init__(self, path: Path, *, id_generator: IdGenerator | None = None, **options: Any) -> None:
        self.path = path
        self.logs = LogxpyLogRecordProcessor(path, **options)
        self.logger_provider = LoggerProvider(
            resource=Resource({"service.name": "s"}), shutdown_on_exit=False
        )
        self.logger_provider.add_log_record_processor(self.logs)
        self.tracer_provider = TracerProvider(
            resource=Resource({"service.name": "s"}), shutdown_on_exit=False, id_generator=id_generator
        )
        self.spans = self.logs.span_processor()
        self.tracer_provider.add_span_processor(self.spans)
        self.tracer = self.tracer_provider.get_tracer("app")
        self.logger = self.logger_provider.get_logger("app")

    def close(self) -> list[dict[str, Any]]:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        return parse_lines(self.path.read_bytes(), raw_tid=True)


def test_a_span_named_none_is_still_an_action_line(tmp_path: Path) -> None:
    setup = Setup(tmp_path / "none.jsonl")
    with setup.tracer.start_as_current_span(None):  # type: ignore[arg-type] - a buggy instrumentation
        setup.logger.emit(body="inside")
    lines = setup.close()
    actions = [line for line in lines if "at" in line and line["at"] != "otel:trace"]
    assert len(actions) == 2
    # logxpy.parse: is_action = message_dict.get("at") is not None
    assert all(isinstance(line["at"], str) for line in actions), [line["at"] for line in actions]


class _Float64(float):
    """As ``numpy.float64``: a float subclass (orjson refuses it without OPT_SERIALIZE_NUMPY)."""


class _Int64(int):
    """As ``numpy.int64`` (a timestamp column of numpy or pandas): ``/`` gives a float64."""

    def __truediv__(self, other: Any) -> _Float64:
        return _Float64(int(self) / other)


def test_a_span_timed_with_numpy_ints_neither_crashes_the_writer_nor_raises_at_shutdown(
    tmp_path: Path,
) -> None:
    setup = Setup(tmp_path / "np.jsonl", shutdown_timeout=1_000)
    problems: list[str] = []
    start = time.time_ns()
    span = setup.tracer.start_span("imported", start_time=_Int64(start))
    span.end(end_time=_Int64(start + 1_000))
    with setup.tracer.start_as_current_span("later"):
        setup.logger.emit(body="a later record")
    if not setup.logs.force_flush(2_000):
        problems.append("flush failed")
    try:
        setup.tracer_provider.shutdown()
        setup.logger_provider.shutdown()
    except Exception as exc:  # the break itself
        problems.append(f"shutdown raised {exc!r}")
    metrics = setup.logs.metrics
    if metrics.pending or metrics.written != metrics.enqueued - metrics.dropped:
        problems.append(f"not accounted: {metrics}")
    lines = parse_lines(setup.path.read_bytes(), raw_tid=True)
    problems += [f"ts not a number: {line['ts']!r}" for line in lines if type(line["ts"]) is not float]
    started: set[str] = set()
    for line in lines:
        if line["lvl"] == [1]:
            started.add(line["tid"])
        elif "~" in line["tid"] and line["tid"] not in started:
            problems.append(f"{line['lvl']} {line.get('at') or line.get('msg')}: its tree has no start line")
    assert problems == [], "\n".join(problems)


def test_an_event_timestamp_in_the_wrong_unit_does_not_lose_the_span_end(tmp_path: Path) -> None:
    setup = Setup(tmp_path / "event.jsonl")
    with setup.tracer.start_as_current_span("pay") as span:
        span.add_event("retry", timestamp=time.time_ns() * 1000)  # microseconds of ns: > 2**64
    lines = setup.close()
    assert dict(setup.logs.metrics.dropped_by_reason) == {}
    assert [line["st"] for line in lines if line.get("at") == "pay"] == ["started", "succeeded"]


class _FixedIds(IdGenerator):
    def __init__(self, trace_id: int) -> None:
        self._trace_id = trace_id

    def generate_trace_id(self) -> int:
        return self._trace_id

    def generate_span_id(self) -> int:
        return 0x5


@pytest.mark.parametrize("trace_id", [0, 1 << 200], ids=["zero", "over-128-bits"])
def test_a_span_with_an_id_otel_cannot_carry_is_written_or_counted(tmp_path: Path, trace_id: int) -> None:
    setup = Setup(tmp_path / "ids.jsonl", id_generator=_FixedIds(trace_id))
    with setup.tracer.start_as_current_span("odd ids"):
        setup.logger.emit(body="inside")
    lines = setup.close()
    written = [line for line in lines if line.get("at") == "odd ids"]
    dropped = sum(setup.logs.metrics.dropped_by_reason.values())
    assert len(written) + dropped == 2, (written, dict(setup.logs.metrics.dropped_by_reason))


def test_a_span_end_with_its_start_brought_along_passes_max_bytes_only_as_one_item(tmp_path: Path) -> None:
    """A span's end after a rotation brings its start line along: the two go into one file
    together, so a pair longer than ``max_bytes`` is written alone, as a single line longer
    than the limit is (docs/configuration.md, ``max_bytes``); every other file keeps under it."""
    limit = 4_000
    path = tmp_path / "rot.jsonl"
    setup = Setup(path, max_bytes=limit, backup_count=100)
    span = setup.tracer.start_span("n" * 1_900)  # a start and an end line of ~2 KB each
    assert setup.logs.force_flush()
    span.end()
    setup.close()
    files = sorted(tmp_path.glob("rot*.jsonl"))
    over = []
    for file in files:
        data = file.read_bytes()
        assert max(len(line) + 1 for line in data.split(b"\n")[:-1]) <= limit
        if len(data) > limit:
            over.append([orjson.loads(line) for line in data.splitlines()])
    assert len(over) == 1, "the pair, alone in its file"
    items = [line for line in over[0] if "_otel" in line]
    assert [(line["at"], line["st"]) for line in items] == [("n" * 1_900, "succeeded")], "one item"
    brought = [line for line in over[0] if line.get("at") == "n" * 1_900 and "_otel" not in line]
    assert [line["st"] for line in brought] == ["started"]


def test_close_idle_with_an_open_span_and_a_tiny_idle_time_returns() -> None:
    AsyncConfig(trace_idle_ms=1e-9)  # accepted: > 0 is the only rule
    trees = TreeNumberer(idle_timeout_s=1e-12, clock=lambda: 100_000.0)
    span_id = "00000000000000aa"
    start = (
        "ab" * 16,
        1.0,
        False,
        b'"ts":1.0,"at":"s","st":"started","_otel":{"span_id":"' + span_id.encode() + b'"',
        b"}}",
        span_id,
        SpanStart(None),
    )
    out: list[bytes] = []
    trees.number([start], out)
    lines = b"".join(out).splitlines()  # (the C loop gives a batch's lines as one bytes)
    assert len(lines) == 2
    for raw in lines:
        assert isinstance(orjson.loads(raw), dict)
    worker = threading.Thread(target=trees.close_idle, args=([],), daemon=True)
    worker.start()
    worker.join(2.0)
    spinning = worker.is_alive()
    for open_trace in list(trees._open.values()):  # let a spinning thread go
        open_trace.open_spans = 0
    worker.join(2.0)
    assert not spinning, "close_idle never returned"


def _unfinished_actions_in_ended_trees(lines: list[dict[str, Any]]) -> list[tuple[str, tuple[int, ...]]]:
    """Actions started in a tree that got its end line without the action's own end."""
    open_actions: dict[str, set[tuple[int, ...]]] = {}
    found = []
    for line in lines:
        tid, lvl = line["tid"], tuple(line["lvl"])
        if "~" not in tid or "at" not in line:
            continue
        if lvl == (1,):
            open_actions[tid] = set()
        elif len(lvl) == 1:  # the trace's end line
            found += [(tid, action) for action in open_actions.pop(tid, set())]
        elif line["st"] == "started":
            open_actions[tid].add(lvl[:-1])
        else:
            open_actions[tid].discard(lvl[:-1])
    return found


def test_a_span_processor_added_twice_leaves_no_unfinished_action_in_a_closed_tree(tmp_path: Path) -> None:
    setup = Setup(tmp_path / "twice.jsonl")
    setup.tracer_provider.add_span_processor(setup.spans)  # set-up code run twice
    with setup.tracer.start_as_current_span("request"):
        setup.logger.emit(body="inside")
    lines = setup.close()
    assert _unfinished_actions_in_ended_trees(lines) == []


def test_a_span_with_a_nan_event_timestamp_reads_back(tmp_path: Path) -> None:
    setup = Setup(tmp_path / "nan.jsonl")
    with setup.tracer.start_as_current_span("x") as span:
        span.add_event("e", timestamp=float("nan"))  # type: ignore[arg-type]
    setup.close()
    entries = list(read_file(setup.path, spans=True))
    assert not [e for e in entries if isinstance(e, BadLine)], entries
    assert [e.span.name for e in entries if isinstance(e, LineSpan)] == ["x"]


def test_hostile_span_content_keeps_every_line_one_object_and_reads_back(tmp_path: Path) -> None:
    """What held: separators, quotes, lone surrogates, huge ints, NaN, bytes and reserved
    names in span names, attributes and status descriptions."""
    from opentelemetry.trace import Status, StatusCode

    setup = Setup(tmp_path / "held.jsonl")
    attributes = {
        "big": 1 << 80,
        "nan": float("nan"),
        "s\ud800": "v\ud800\u2028",
        "b": b"\xff\x00",
        "seq": [1 << 70, 1],
        "at": "x",
        "st": "failed",
        "lvl": 5,
        "tid": "q",
        "_otel": 1,
        "\u2028": "\u2029\u0085",
    }
    with setup.tracer.start_as_current_span('n\n\u2028\ud800"}', attributes=attributes) as span:
        span.set_status(Status(StatusCode.ERROR, 'bad\n\u2028\ud800 "q"'))
        with trace.use_span(span):
            setup.logger.emit(body="inside")
    lines = setup.close()
    raw = setup.path.read_bytes()
    assert raw.count(b"\n") == len(lines) == 5  # trace start, span start, record, span end, trace end
    assert all(b not in raw for b in (b"\xe2\x80\xa8", b"\xc2\x85"))
    spans = [e.span for e in read_file(setup.path, spans=True) if isinstance(e, LineSpan)]
    assert [s.name for s in spans] == ['n\n\u2028\ufffd"}']
    assert spans[0].attributes is not None and spans[0].attributes["big"] == 1 << 80
    assert dict(setup.logs.metrics.dropped_by_reason) == {}
