"""``LogxpySpanProcessor``: spans as nested actions, records under their span, in any order.

Every file written here passes :func:`check_tree` (the nesting rules of docs/format.md,
"Spans"); the reader's round trip gives back the spans the SDK ended and the records.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from _helpers import parse_lines, trace_of
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import attach, detach
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from logxpy_otel import DropReason, LogxpyLogRecordProcessor, LogxpySpanProcessor
from logxpy_otel._span_format import SpanEncoder
from logxpy_otel.reader import LineRecord, LineSpan, read_file


class Setup:
    """A logger provider and a tracer provider writing one file; spans also kept in memory."""

    def __init__(self, path: Path, **options: Any) -> None:
        self.path = path
        self.logs = LogxpyLogRecordProcessor(path, **options)
        self.logger_provider = LoggerProvider(
            resource=Resource({"service.name": "shop"}), shutdown_on_exit=False
        )
        self.logger_provider.add_log_record_processor(self.logs)
        self.memory = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(
            resource=Resource({"service.name": "shop"}), shutdown_on_exit=False
        )
        self.spans = self.logs.span_processor()
        self.tracer_provider.add_span_processor(self.spans)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.tracer = self.tracer_provider.get_tracer("app")
        self.logger = self.logger_provider.get_logger("app")

    def log(self, msg: str, severity: SeverityNumber = SeverityNumber.INFO) -> None:
        self.logger.emit(body=msg, severity_number=severity)

    def close(self) -> list[dict[str, Any]]:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        return parse_lines(self.path.read_bytes(), raw_tid=True)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path / "spans.jsonl")


def check_tree(lines: list[dict[str, Any]]) -> dict[str, list[int]]:
    """The nesting rules, per tree (a tid from a start at [1] to its end): every lvl is
    used once; an action is started (``[..., k, 1]``) under an action started before it;
    every other line sits in an action started before it; nothing follows the tree's end.
    Returns each span's action (``lvl`` without its last number), by span id."""
    prefixes: dict[str, list[int]] = {}
    trees: dict[str, dict[str, Any]] = {}
    for line in lines:
        tid, lvl = line["tid"], tuple(line["lvl"])
        assert lvl and all(isinstance(n, int) and n > 0 for n in lvl)
        if "." in tid:
            assert lvl == (1,) and "at" not in line  # a record outside any trace: a task of its own
            continue
        if lvl == (1,):
            assert line["at"] == "otel:trace" and line["st"] == "started"
            assert tid not in trees, "a tree starts again only after it ended"
            trees[tid] = {"seen": {lvl}, "started": {()}}
            continue
        tree = trees[tid]
        assert lvl not in tree["seen"], f"lvl {lvl} twice in one tree"
        tree["seen"].add(lvl)
        starts_action = "at" in line and line["st"] == "started"
        under = lvl[:-2] if starts_action else lvl[:-1]
        assert starts_action == (lvl[-1] == 1), f"{lvl}: only an action's start is its first line"
        assert under in tree["started"], f"{lvl}: in action {under}, which was not started before it"
        if starts_action:
            tree["started"].add(lvl[:-1])
            if "_otel" in line:
                prefixes[line["_otel"]["span_id"]] = list(lvl[:-1])
        elif "at" in line and under == ():
            assert line["at"] == "otel:trace" and line["st"] in ("succeeded", "failed")
            del trees[tid]
    return prefixes


def records(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "at" not in line]


def test_three_levels_from_two_threads_each_record_under_its_own_span(setup: Setup) -> None:
    expected: dict[str, str] = {}  # msg -> span id it was logged in

    def request(n: int) -> None:
        with setup.tracer.start_as_current_span(f"request {n}", kind=SpanKind.SERVER) as top:
            setup.log(f"{n} top")
            expected[f"{n} top"] = f"{top.get_span_context().span_id:016x}"
            with setup.tracer.start_as_current_span("query") as middle:
                setup.log(f"{n} middle")
                expected[f"{n} middle"] = f"{middle.get_span_context().span_id:016x}"
                with setup.tracer.start_as_current_span("fetch") as bottom:
                    for i in range(3):
                        setup.log(f"{n} bottom {i}")
                        expected[f"{n} bottom {i}"] = f"{bottom.get_span_context().span_id:016x}"
                setup.log(f"{n} middle again")
                expected[f"{n} middle again"] = f"{middle.get_span_context().span_id:016x}"

    threads = [threading.Thread(target=request, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    lines = setup.close()
    prefixes = check_tree(lines)
    logged = records(lines)
    assert sorted(r["msg"] for r in logged) == sorted(expected)
    for record in logged:
        span = expected[record["msg"]]
        assert record["_otel"]["span_id"] == span
        assert record["lvl"][:-1] == prefixes[span], f"{record['msg']} is not a child of its span's action"
    assert {len(p) for p in prefixes.values()} == {1, 2, 3}, "three levels of actions under each trace root"


def test_a_failing_span_fails_its_action_with_the_status_description(setup: Setup) -> None:
    with setup.tracer.start_as_current_span("pay") as span:
        span.set_status(Status(StatusCode.ERROR, "card declined"))
    lines = setup.close()
    check_tree(lines)
    end = next(line for line in lines if line.get("at") == "pay" and line["st"] != "started")
    assert end["st"] == "failed" and end["reason"] == "card declined"
    trace_end = lines[-1]
    assert trace_end["at"] == "otel:trace" and trace_end["st"] == "failed"


def test_span_lines_read_back_as_the_spans_the_sdk_ended(setup: Setup) -> None:
    link = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))
    with setup.tracer.start_as_current_span(
        "GET /",
        kind=SpanKind.SERVER,
        attributes={"http.route": "/", "reason": "reserved"},
        links=[trace.Link(link, {"l": 1})],
    ) as top:
        top.add_event("cache miss", {"key": "k", "n": 2})
        with setup.tracer.start_as_current_span("child", attributes={"bytes": b"\x00"}):
            setup.log("inside")
        top.set_attribute("http.status_code", 200)
        top.set_status(Status(StatusCode.OK))
    setup.close()
    entries = list(read_file(setup.path, spans=True))
    read = {e.span.name: e.span for e in entries if isinstance(e, LineSpan)}
    assert [e.record.log_record.body for e in entries if isinstance(e, LineRecord)] == ["inside"]
    finished = {s.name: s for s in setup.memory.get_finished_spans()}
    assert read.keys() == finished.keys() == {"GET /", "child"}
    for name, want in finished.items():
        got = read[name]
        assert got.context.trace_id == want.context.trace_id
        assert got.context.span_id == want.context.span_id
        assert got.context.trace_flags == want.context.trace_flags
        assert (got.parent.span_id if got.parent else None) == (want.parent.span_id if want.parent else None)
        assert got.kind == want.kind
        assert (got.start_time, got.end_time) == (want.start_time, want.end_time)
        assert got.status.status_code == want.status.status_code
        assert got.status.description == want.status.description
        assert dict(got.attributes or {}) == dict(want.attributes or {})
        assert [(e.name, e.timestamp, dict(e.attributes or {})) for e in got.events] == [
            (e.name, e.timestamp, dict(e.attributes or {})) for e in want.events
        ]
        assert [(lk.context.trace_id, lk.context.span_id, dict(lk.attributes or {})) for lk in got.links] == [
            (lk.context.trace_id, lk.context.span_id, dict(lk.attributes or {})) for lk in want.links
        ]
        assert got.resource.attributes == want.resource.attributes
        assert got.instrumentation_scope is not None and got.instrumentation_scope.name == "app"
    # Without spans=True the reader sees the records only, as before.
    assert all(isinstance(e, LineRecord) for e in read_file(setup.path))


def test_a_span_read_back_encodes_to_the_otlp_request_the_ended_span_makes(tmp_path: Path) -> None:
    """Replayed as spans, a file sends what an OTLP exporter would have sent of the spans
    the SDK ended: the same request bytes, links' remote flags, trace states and dropped
    attribute counts and events' dropped counts included (the file lost them: every link
    read back as remote, none with a trace state or a dropped count)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import SpanLimits
    from opentelemetry.trace import TraceState

    setup = Setup(tmp_path / "otlp.jsonl")
    limited = TracerProvider(
        resource=Resource({"service.name": "shop"}),
        shutdown_on_exit=False,
        span_limits=SpanLimits(max_event_attributes=1, max_link_attributes=1),
    )
    limited.add_span_processor(setup.spans)
    limited.add_span_processor(SimpleSpanProcessor(setup.memory))
    tracer = limited.get_tracer("app")
    local = SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1))
    remote = SpanContext(
        0x123, 0x456, is_remote=True, trace_flags=TraceFlags(0), trace_state=TraceState([("vendor", "v1")])
    )
    links = [trace.Link(local, {"a": 1, "b": 2}), trace.Link(remote, {"c": "x"}), trace.Link(local)]
    with tracer.start_as_current_span("GET /", links=links) as span:
        span.add_event("retry", {"n": 1, "m": 2})
        span.add_event("plain")
    limited.shutdown()
    setup.close()
    (want,) = setup.memory.get_finished_spans()
    assert [lk.dropped_attributes for lk in want.links] == [1, 0, 0]
    (got,) = [e.span for e in read_file(setup.path, spans=True) if isinstance(e, LineSpan)]
    assert [lk.context.is_remote for lk in got.links] == [False, True, False]
    assert [lk.context.trace_state.to_header() for lk in got.links] == ["", "vendor=v1", ""]
    assert [lk.dropped_attributes for lk in got.links] == [1, 0, 0]
    assert [e.dropped_attributes for e in got.events] == [1, 0]
    assert encode_spans([got]).SerializeToString() == encode_spans([want]).SerializeToString()


def test_a_span_started_before_the_processor_and_a_remote_parent_hang_from_the_root(tmp_path: Path) -> None:
    setup = Setup(tmp_path / "late.jsonl")
    plain = TracerProvider(shutdown_on_exit=False).get_tracer("before")
    remote = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1))
    token = attach(trace.set_span_in_context(NonRecordingSpan(remote)))
    try:
        with setup.tracer.start_as_current_span("handler") as handler:
            with plain.start_as_current_span("unseen"):  # a span no processor of ours saw
                setup.log("in the unseen span")
            setup.log("in the handler")
    finally:
        detach(token)
    lines = setup.close()
    prefixes = check_tree(lines)
    handler_id = f"{handler.get_span_context().span_id:016x}"
    by_msg = {r["msg"]: r for r in records(lines)}
    start = next(line for line in lines if line.get("at") == "handler")
    assert start["_otel"]["parent_span_id"] == "0000000000005678" and start["_otel"]["parent_is_remote"]
    assert prefixes[handler_id] == [2], "a remote parent is not in this tree: under its root"
    assert by_msg["in the handler"]["lvl"][:-1] == [2]
    # The unseen span's record: its span is unknown here, so under the root.
    assert len(by_msg["in the unseen span"]["lvl"]) == 1


def test_sampled_out_spans_write_nothing_and_their_records_stay_flat(tmp_path: Path) -> None:
    setup = Setup(tmp_path / "sampled.jsonl")
    setup.tracer_provider = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    setup.tracer_provider.add_span_processor(setup.spans)
    tracer = setup.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("not sampled"):
        setup.log("inside")
    lines = setup.close()
    check_tree(lines)
    assert not [line for line in lines if line.get("at") == "not sampled"]
    assert [r["msg"] for r in records(lines)] == ["inside"]


def test_an_open_span_keeps_its_trace_open_past_the_idle_time(tmp_path: Path) -> None:
    setup = Setup(tmp_path / "idle.jsonl", trace_idle_timeout=10, flush_interval=10)
    with setup.tracer.start_as_current_span("slow"):
        setup.log("before")
        assert setup.logs.force_flush()
        # Several idle periods pass with the span open: the writer must not close the trace.
        done = threading.Event()
        assert not done.wait(0.3)
        setup.log("after")
    lines = setup.close()
    check_tree(lines)
    starts = [line for line in lines if line.get("at") == "otel:trace" and line["st"] == "started"]
    assert len(starts) == 1, "one tree: the request was not cut by idleness"


def test_traces_pushed_out_while_their_spans_are_open_stay_well_formed(tmp_path: Path) -> None:
    setup = Setup(tmp_path / "lru.jsonl", max_open_traces=1)
    a = setup.tracer.start_span("a")
    with trace.use_span(a):
        setup.log("in a")
    b = setup.tracer.start_span("b")  # another trace: a's is pushed out with a still open
    with trace.use_span(b):
        setup.log("in b")
    a.end()  # its trace opens again: its start is brought along
    b.end()
    lines = setup.close()
    check_tree(lines)
    ends = [line for line in lines if line.get("at") in ("a", "b") and line["st"] != "started"]
    assert sorted(line["at"] for line in ends) == ["a", "b"]
    a_lines = [line for line in lines if line.get("at") == "a"]
    assert [line["st"] for line in a_lines] == ["started", "started", "succeeded"]
    assert "_otel" not in a_lines[1], "the start brought along is a structure line"


def test_rotation_in_the_middle_of_a_span_leaves_each_file_well_formed(tmp_path: Path) -> None:
    path = tmp_path / "rot.jsonl"
    setup = Setup(path, max_bytes=4000, backup_count=50)
    with setup.tracer.start_as_current_span("long"):
        for i in range(40):
            setup.log(f"record {i} " + "x" * 100)
            if i % 10 == 9:
                assert setup.logs.force_flush()
    setup.close()
    files = sorted(tmp_path.glob("rot*.jsonl"))
    assert len(files) > 2, "the file rotated"
    seen = []
    for file in files:
        lines = parse_lines(file.read_bytes(), raw_tid=True)
        check_tree(lines)
        seen += [r["msg"] for r in records(lines)]
        assert file.stat().st_size <= 4000
    assert sorted(seen) == sorted(f"record {i} " + "x" * 100 for i in range(40))


def test_a_span_processor_needs_tree_mode(tmp_path: Path) -> None:
    logs = LogxpyLogRecordProcessor(tmp_path / "flat.jsonl", mode="flat")
    try:
        with pytest.raises(ValueError, match="mode 'tree'"):
            logs.span_processor()
    finally:
        logs.shutdown()


def test_spans_after_shutdown_are_counted_and_faults_never_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Any, span: Any) -> Any:
        raise RuntimeError("boom")

    # The Python encoder's start raises (the C one hands it the span it does not take: NaN)
    monkeypatch.setattr(SpanEncoder, "_start", broken)
    setup = Setup(tmp_path / "spans.jsonl")
    with setup.tracer.start_as_current_span("faulty", attributes={"x": float("nan")}):  # counted
        pass
    monkeypatch.undo()
    setup.spans.shutdown()
    with setup.tracer.start_as_current_span("late"):
        pass
    dropped = setup.logs.metrics.dropped_by_reason
    assert dropped.get(DropReason.INTERNAL_ERROR) == 1
    assert dropped.get(DropReason.SHUTDOWN) == 2, "the late span's start and end"
    lines = setup.close()
    check_tree(lines)
    assert [line["at"] for line in lines if line.get("at") == "faulty"] == ["faulty", "faulty"]


def test_without_the_span_processor_a_trace_is_one_flat_action(tmp_path: Path) -> None:
    logs = LogxpyLogRecordProcessor(tmp_path / "flat-tree.jsonl")
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(logs)
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("t")
    with tracer.start_as_current_span("a"), tracer.start_as_current_span("b"):
        provider.get_logger("x").emit(body="deep")
    provider.shutdown()
    lines = parse_lines((tmp_path / "flat-tree.jsonl").read_bytes())
    assert [(line["lvl"], line.get("at") or line["msg"]) for line in lines] == [
        ([1], "otel:trace"),
        ([2], "deep"),
        ([3], "otel:trace"),
    ]
    assert trace_of(lines[1]["tid"]) == lines[1]["tid"]


def test_the_public_name(tmp_path: Path) -> None:
    logs = LogxpyLogRecordProcessor(tmp_path / "n.jsonl")
    try:
        assert isinstance(logs.span_processor(), LogxpySpanProcessor)
    finally:
        logs.shutdown()


#: The set-up a forked child works with (inherited by fork; no global provider touched).
_FORKED: list[Setup] = []


def _child_work(n: int) -> None:
    """In a forked child: a span of its own under the parent's, with a record in it."""
    setup = _FORKED[0]
    with setup.tracer.start_as_current_span(f"child {n}"):
        setup.log(f"from child {n}")
    setup.tracer_provider.force_flush()
    setup.logs.force_flush()


def test_spans_of_several_processes_in_one_file_are_trees_of_their_own(tmp_path: Path) -> None:
    """The format's multi-process rule with spans: each process numbers its own tree of the
    trace (tid ``<trace id>~<its token>``); a child's span whose parent is in the parent
    process hangs from the root of the child's tree."""
    import multiprocessing

    setup = Setup(tmp_path / "procs.jsonl")
    _FORKED[:] = [setup]
    with setup.tracer.start_as_current_span("parent"):
        setup.log("in the parent")
        with multiprocessing.get_context("fork").Pool(2) as pool:
            pool.map(_child_work, range(2))
    lines = setup.close()
    check_tree(lines)
    tids = {line["tid"] for line in lines if "~" in line["tid"]}
    assert len({trace_of(tid) for tid in tids}) == 1, "one trace"
    assert len(tids) >= 2, "the parent's tree and the children's, each under its own token"
    by_msg = {r["msg"]: r for r in records(lines)}
    assert sorted(by_msg) == ["from child 0", "from child 1", "in the parent"]
    for n in range(2):
        start = next(line for line in lines if line.get("at") == f"child {n}" and line["st"] == "started")
        assert start["lvl"][:-1] == [2], "its parent span is not in this process's tree: under the root"
        assert by_msg[f"from child {n}"]["lvl"][:-1] == start["lvl"][:-1]


def test_span_names_and_times_are_written_whatever_their_type(setup: Setup) -> None:
    """A str subclass name (a StrEnum member) is written as its value; a negative start time
    is tagged as the format says, with or without attributes that need care."""
    import enum

    class Op(enum.StrEnum):
        GET = "GET"

    with setup.tracer.start_as_current_span(Op.GET):
        pass
    for attributes in ({}, {"ratio": float("nan")}):
        span = setup.tracer.start_span("early", attributes=attributes, start_time=-5)
        span.end(end_time=10)
    lines = setup.close()
    assert [line["at"] for line in lines if line.get("st") == "started" and line["at"] != "otel:trace"] == [
        "GET",
        "early",
        "early",
    ]
    ends = [line for line in lines if line.get("at") == "early" and line["st"] == "succeeded"]
    assert [line["_otel"]["start_time_unix_nano"] for line in ends] == [{"$int": "-5"}, {"$int": "-5"}]


def test_on_start_and_on_end_run_in_c_where_built_until_shutdown(setup: Setup) -> None:
    from logxpy_otel._native import speedups_in_use

    if not speedups_in_use():
        pytest.skip("the C speed-up is not in use here")
    assert "on_start" in vars(setup.spans) and "on_end" in vars(setup.spans)
    with setup.tracer.start_as_current_span("in c"):
        setup.log("inside")
    setup.spans.shutdown()
    assert "on_start" not in vars(setup.spans), "after shutdown the Python methods count drops"
    with setup.tracer.start_as_current_span("late"):
        pass
    assert setup.logs.metrics.dropped_by_reason.get(DropReason.SHUTDOWN) == 2
    shape = [(line.get("at"), line.get("st"), line.get("msg")) for line in setup.close()]
    assert ("in c", "started", None) in shape and ("in c", "succeeded", None) in shape
    assert (None, None, "inside") in shape
    assert not any(at == "late" for at, _, _ in shape)


def test_a_subclass_overriding_on_start_is_called(tmp_path: Path) -> None:
    seen: list[str] = []

    class Counting(LogxpySpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            seen.append(span.name)
            super().on_start(span, parent_context)

    logs = LogxpyLogRecordProcessor(tmp_path / "sub.jsonl")
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(Counting(logs))
    with provider.get_tracer("app").start_as_current_span("mine"):
        pass
    provider.shutdown()
    logs.shutdown()
    assert seen == ["mine"]
    lines = parse_lines((tmp_path / "sub.jsonl").read_bytes(), raw_tid=True)
    assert [(line["at"], line["st"]) for line in lines if line["at"] == "mine"] == [
        ("mine", "started"),
        ("mine", "succeeded"),
    ]


def test_spans_whose_ids_otel_cannot_carry_are_counted_not_written(tmp_path: Path) -> None:
    """An id generator beyond 64-bit span ids: no tree can hold the span, so its start and
    end lines are dropped and counted (``invalid_id``); the records logged in it are kept."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class TooWide(RandomIdGenerator):
        def generate_span_id(self) -> int:
            return 1 << 64

    setup = Setup(tmp_path / "spans.jsonl")
    wide = TracerProvider(id_generator=TooWide(), shutdown_on_exit=False)
    wide.add_span_processor(setup.spans)
    with wide.get_tracer("app").start_as_current_span("too wide"):
        setup.log("inside")
    assert setup.logs.metrics.dropped_by_reason.get(DropReason.INVALID_ID) == 2
    lines = setup.close()
    assert not any(line.get("at") == "too wide" for line in lines)
    assert [line["msg"] for line in lines if "msg" in line] == ["inside"]


def test_a_shutdown_racing_spans_from_several_threads_loses_no_line_silently(tmp_path: Path) -> None:
    """Threads start and end spans while the span processor shuts down (its C steps taken
    away under them), then the log processor: nothing raises into a thread, and each span
    line is in the file or counted as a shutdown drop."""
    setup = Setup(tmp_path / "race.jsonl")
    started = threading.Event()
    stop = threading.Event()
    made = [0] * 4
    errors: list[BaseException] = []

    def spans(index: int) -> None:
        try:
            for _ in range(3_000):  # bounded: stops by itself
                with setup.tracer.start_as_current_span(f"t{index}"):
                    made[index] += 1
                started.set()
                if stop.is_set():
                    return
        except BaseException as exc:  # the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=spans, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    assert started.wait(10)
    setup.spans.shutdown()
    setup.logs.shutdown()
    stop.set()
    for thread in threads:
        thread.join(30)
    assert errors == []
    written = sum(
        1
        for line in parse_lines(setup.path.read_bytes(), raw_tid=True)
        if str(line.get("at", "")).startswith("t") and line["st"] in ("started", "succeeded")
    )
    dropped = setup.logs.metrics.dropped_by_reason.get(DropReason.SHUTDOWN, 0)
    assert written + dropped == 2 * sum(made)
    assert dropped > 0, "the shutdown came while spans were being made"
    setup.tracer_provider.shutdown()


def _ends(path: Path) -> list[tuple[str, str | None]]:
    """Each span end line's ``at`` and final name (``_otel.name``, None when not renamed)."""
    lines = parse_lines(path.read_bytes())
    return [
        (line["at"], line["_otel"].get("name"))
        for line in lines
        if line.get("st") == "succeeded" and "_otel" in line
    ]


def _one_span_id(path: Path, monkeypatch: pytest.MonkeyPatch, pure: bool) -> tuple[Any, TracerProvider, Any]:
    """A processor writing ``path`` and a tracer whose spans all have one span id, each in
    a trace of its own (an id generator that repeats span ids); ``pure``: Python only."""
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    from logxpy_otel import _span_format

    if pure:
        monkeypatch.setattr(_span_format, "_CSpanEncoder", None)

    class OneSpanId(IdGenerator):
        def __init__(self) -> None:
            self.traces = iter(range(1, 100))

        def generate_span_id(self) -> int:
            return 0x1111

        def generate_trace_id(self) -> int:
            return next(self.traces)

    processor = LogxpyLogRecordProcessor(path)
    tracing = TracerProvider(id_generator=OneSpanId(), shutdown_on_exit=False)
    tracing.add_span_processor(processor.span_processor())
    return processor, tracing, tracing.get_tracer("t")


@pytest.mark.parametrize("pure", [False, True], ids=["c", "python"])
def test_start_names_are_told_apart_by_trace_when_span_ids_repeat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure: bool
) -> None:
    """Review, session 27: the start names kept for renamed spans were keyed by span id
    alone; with an id generator that repeats span ids across traces, span "a" (trace 1)
    ended with "b"'s name in ``at`` (trace 2, the same span id, started after it) and its
    own in ``_otel.name``, and logxpy's Parser raised on the file. Nothing was renamed."""
    path = tmp_path / "ids.jsonl"
    processor, tracing, tracer = _one_span_id(path, monkeypatch, pure)
    a = tracer.start_span("a")
    b = tracer.start_span("b")
    a.end()
    b.update_name("b2")
    b.end()
    tracing.shutdown()
    processor.shutdown()
    assert _ends(path) == [("a", None), ("b", "b2")]


# -- hostile review, session 33 ---------------------------------------------------------------


@pytest.mark.parametrize("pure", [False, True], ids=["c", "python"])
def test_a_renamed_span_keeps_its_start_name_when_another_open_trace_repeats_its_span_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure: bool
) -> None:
    """Span "s1" (trace A) and span "s2" (trace B) open at once with one span id: s2's start
    took the id's entry of start names, so s1, renamed, ended with its final name in
    ``at`` and none in ``_otel.name``; logxpy's Parser raised on the file and read no
    more of it. The entry it displaces is now kept aside for its own end."""
    from opentelemetry import trace

    path = tmp_path / "ids.jsonl"
    processor, tracing, tracer = _one_span_id(path, monkeypatch, pure)
    root = trace.set_span_in_context(trace.INVALID_SPAN)
    s1 = tracer.start_span("s1 start", context=root)
    s2 = tracer.start_span("s2 start", context=root)
    s3 = tracer.start_span("s3 start", context=root)
    s1.update_name("s1 final")
    s3.update_name("s3 final")
    s1.end()
    s3.end()
    s2.update_name("s2 final")
    s2.end()
    tracing.shutdown()
    processor.shutdown()
    assert _ends(path) == [
        ("s1 start", "s1 final"),
        ("s3 start", "s3 final"),
        ("s2 start", "s2 final"),
    ]


@pytest.mark.parametrize("pure", [False, True], ids=["c", "python"])
def test_a_span_processor_added_twice_writes_both_ends_of_a_renamed_span_under_its_start_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure: bool
) -> None:
    """The same span processor added twice to one provider (a set-up run twice) writes each
    span twice; the first end took the span's entry of start names, so the second end of a
    renamed span said its final name in ``at``, and logxpy's Parser raised on the file.
    Each start now keeps an entry for its own end."""
    from logxpy_otel import _span_format

    if pure:
        monkeypatch.setattr(_span_format, "_CSpanEncoder", None)
    path = tmp_path / "twice.jsonl"
    processor = LogxpyLogRecordProcessor(path)
    spans = processor.span_processor()
    tracing = TracerProvider(shutdown_on_exit=False)
    tracing.add_span_processor(spans)
    tracing.add_span_processor(spans)
    with tracing.get_tracer("t").start_as_current_span("GET") as span:
        span.update_name("GET /users/{id}")
    with tracing.get_tracer("t").start_as_current_span("plain"):
        pass
    tracing.shutdown()
    processor.shutdown()
    lines = [line for line in parse_lines(path.read_bytes()) if "_otel" in line and line.get("st")]
    assert [(line["at"], line["st"], line["_otel"].get("name")) for line in lines] == [
        ("GET", "started", None),
        ("GET", "started", None),
        ("GET", "succeeded", "GET /users/{id}"),
        ("GET", "succeeded", "GET /users/{id}"),
        ("plain", "started", None),
        ("plain", "started", None),
        ("plain", "succeeded", None),
        ("plain", "succeeded", None),
    ]
