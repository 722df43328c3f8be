"""Line numbering and trace trees (docs/format.md, "Structure lines"): ``TreeNumberer``, ``base62``."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

import orjson
import pytest
from _helpers import c_or_python, start_body_raises_once
from hypothesis import given, settings
from hypothesis import strategies as st

from logxpy_otel import _trees
from logxpy_otel._format import SpanEnd, SpanStart
from logxpy_otel._trees import TreeNumberer, base62

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
T1 = "5b8efff798038103d269b633813fc60c"
T2 = "00000000000000000000000000000abc"
T3 = "ffffffffffffffffffffffffffffffff"
T4 = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True, params=["c", "python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs against the C numbering loop (where built) and the Python one."""
    return c_or_python(request, monkeypatch, _trees, "_Forest")


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def unbase62(s: str) -> int:
    n = 0
    for c in s:
        n = n * 62 + ALPHABET.index(c)
    return n


def item(trace: str | None, ts: float, failed: bool = False, msg: str = "x") -> tuple[Any, ...]:
    return (trace, ts, failed, b'"msg":' + orjson.dumps(msg), b"}", None, None)


def parse(out: list[bytes]) -> list[dict[str, Any]]:
    """The lines in ``out``: each whole, ending with a newline, one JSON object starting tid, lvl.

    A trace's tid is ``<trace id>~<writer token>``: checked here (one token, the same as the
    standalone records' prefix), then cut to the trace id so expectations read plainly."""
    data = b"".join(out)
    assert data == b"" or data.endswith(b"\n")
    lines = []
    tokens = set()
    for raw in data.split(b"\n")[:-1]:
        line = orjson.loads(raw)
        assert isinstance(line, dict)
        assert list(line)[:2] == ["tid", "lvl"]
        if "~" in line["tid"]:
            trace, token = line["tid"].split("~")
            assert len(trace) == 32 and token and "." not in token, line
            tokens.add(token)
            line["tid"] = trace
        lines.append(line)
    assert len(tokens) <= 1, f"one writer, one token: {tokens}"
    return lines


def feed(numberer: TreeNumberer, *items: tuple[Any, ...]) -> list[dict[str, Any]]:
    out: list[bytes] = []
    numberer.number(items, out)
    return parse(out)


def close_all(numberer: TreeNumberer) -> list[dict[str, Any]]:
    out: list[bytes] = []
    numberer.close_all(out)
    return parse(out)


def close_idle(numberer: TreeNumberer) -> list[dict[str, Any]]:
    out: list[bytes] = []
    numberer.close_idle(out)
    return parse(out)


def start(trace: str, ts: float) -> dict[str, Any]:
    return {"tid": trace, "lvl": [1], "ts": ts, "at": "otel:trace", "st": "started"}


def end(trace: str, lvl: int, ts: float, status: str = "succeeded") -> dict[str, Any]:
    return {"tid": trace, "lvl": [lvl], "ts": ts, "at": "otel:trace", "st": status}


def rec(trace: str, lvl: int, msg: str = "x") -> dict[str, Any]:
    return {"tid": trace, "lvl": [lvl], "msg": msg}


# --- untraced records ------------------------------------------------------------------------------


def test_untraced_records_are_tasks_of_their_own() -> None:
    numberer = TreeNumberer(clock=FakeClock())
    lines = feed(numberer, *(item(None, float(i), msg=f"m{i}") for i in range(200)))
    assert len(lines) == 200
    tids = [line["tid"] for line in lines]
    assert len(set(tids)) == 200
    prefixes = {tid.split(".")[0] for tid in tids}
    assert len(prefixes) == 1
    for i, line in enumerate(lines):
        assert line["lvl"] == [1]
        assert "." in line["tid"]
        assert line["tid"].count(".") == 1
        assert "at" not in line
        assert line["msg"] == f"m{i}"
    counters = [unbase62(tid.split(".")[1]) for tid in tids]
    assert counters == sorted(counters)
    assert len(set(counters)) == len(counters)
    assert counters == list(range(counters[0], counters[0] + 200))
    assert numberer.open_traces == 0
    assert close_all(numberer) == []


def test_untraced_tid_prefix_is_pid_and_random_base62() -> None:
    lines = feed(TreeNumberer(clock=FakeClock()), item(None, 1.0))
    prefix, counter = lines[0]["tid"].split(".")
    assert prefix.startswith(base62(os.getpid()))
    assert len(prefix) > len(base62(os.getpid()))
    assert all(c in ALPHABET for c in prefix + counter)
    assert counter


def test_untraced_counter_continues_across_batches() -> None:
    numberer = TreeNumberer(clock=FakeClock())
    first = feed(numberer, item(None, 1.0), item(None, 2.0))
    second = feed(numberer, item(None, 3.0))
    close_all(numberer)
    third = feed(numberer, item(None, 4.0))
    tids = [line["tid"] for line in first + second + third]
    assert len(set(tids)) == 4
    counters = [unbase62(t.split(".")[1]) for t in tids]
    assert counters == sorted(counters)


# --- trace trees ---------------------------------------------------------------------------------


def test_trace_is_framed_by_start_and_end_lines() -> None:
    numberer = TreeNumberer(clock=FakeClock())
    lines = feed(numberer, item(T1, 1.5, msg="a"), item(T1, 2.5, msg="b"), item(T1, 3.25, msg="c"))
    assert lines == [start(T1, 1.5), rec(T1, 2, "a"), rec(T1, 3, "b"), rec(T1, 4, "c")]
    assert numberer.open_traces == 1
    ends = close_all(numberer)
    assert ends == [end(T1, 5, 3.25)]
    assert "dur" not in ends[0]
    assert numberer.open_traces == 0


def test_trace_records_across_batches_continue_numbering() -> None:
    numberer = TreeNumberer(clock=FakeClock())
    assert feed(numberer, item(T1, 1.0)) == [start(T1, 1.0), rec(T1, 2)]
    assert feed(numberer, item(T1, 2.0)) == [rec(T1, 3)]
    assert feed(numberer, item(T1, 3.0), item(T1, 4.0)) == [rec(T1, 4), rec(T1, 5)]
    assert close_all(numberer) == [end(T1, 6, 4.0)]


def test_start_line_keys_in_order() -> None:
    out: list[bytes] = []
    TreeNumberer(clock=FakeClock()).number([item(T1, 7.0)], out)
    first = b"".join(out).split(b"\n")[0]
    assert list(orjson.loads(first)) == ["tid", "lvl", "ts", "at", "st"]


@pytest.mark.parametrize("failed_at", [None, 0, 1, 2])
def test_end_status_failed_if_any_record_failed(failed_at: int | None) -> None:
    numberer = TreeNumberer(clock=FakeClock())
    feed(numberer, *(item(T1, float(i), failed=(i == failed_at)) for i in range(3)))
    status = "succeeded" if failed_at is None else "failed"
    assert close_all(numberer) == [end(T1, 5, 2.0, status)]


def test_single_record_trace() -> None:
    numberer = TreeNumberer(clock=FakeClock())
    assert feed(numberer, item(T2, 9.0, failed=True)) == [start(T2, 9.0), rec(T2, 2)]
    assert close_all(numberer) == [end(T2, 3, 9.0, "failed")]


def test_reopened_trace_starts_anew_and_forgets_failure() -> None:
    numberer = TreeNumberer(clock=FakeClock())
    feed(numberer, item(T1, 1.0, failed=True))
    assert close_all(numberer) == [end(T1, 3, 1.0, "failed")]
    assert feed(numberer, item(T1, 5.0), item(T1, 6.0)) == [start(T1, 5.0), rec(T1, 2), rec(T1, 3)]
    assert close_all(numberer) == [end(T1, 4, 6.0, "succeeded")]


def test_interleaved_traces_keep_independent_counters() -> None:
    numberer = TreeNumberer(clock=FakeClock())
    lines = feed(
        numberer,
        item(T1, 1.0, msg="a1"),
        item(T2, 2.0, msg="b1"),
        item(None, 2.5, msg="u"),
        item(T1, 3.0, msg="a2"),
        item(T2, 4.0, msg="b2", failed=True),
        item(T1, 5.0, msg="a3"),
    )
    assert lines[0] == start(T1, 1.0)
    assert lines[1] == rec(T1, 2, "a1")
    assert lines[2] == start(T2, 2.0)
    assert lines[3] == rec(T2, 2, "b1")
    assert lines[4]["lvl"] == [1]
    assert "." in lines[4]["tid"]
    assert lines[5:] == [rec(T1, 3, "a2"), rec(T2, 3, "b2"), rec(T1, 4, "a3")]
    # close_all: least recently used first (T2's last record came before T1's).
    assert close_all(numberer) == [end(T2, 4, 4.0, "failed"), end(T1, 5, 5.0)]


def test_close_all_with_nothing_open_writes_nothing() -> None:
    numberer = TreeNumberer(clock=FakeClock())
    assert close_all(numberer) == []
    assert close_idle(numberer) == []


# --- idle close ----------------------------------------------------------------------------------


def test_close_idle_closes_only_idle_traces() -> None:
    clock = FakeClock(100.0)
    numberer = TreeNumberer(clock=clock, idle_timeout_s=5.0)
    feed(numberer, item(T1, 1.0), item(T2, 2.0))
    clock.now = 103.0
    feed(numberer, item(T2, 3.0))
    assert close_idle(numberer) == []  # nothing idle yet
    assert numberer.open_traces == 2
    clock.now = 106.0  # T1 idle for 6 s, T2 for 3 s
    assert close_idle(numberer) == [end(T1, 3, 1.0)]
    assert numberer.open_traces == 1
    assert close_idle(numberer) == []
    # T2 is still open and keeps counting; T1 starts anew.
    assert feed(numberer, item(T2, 4.0), item(T1, 5.0)) == [rec(T2, 4), start(T1, 5.0), rec(T1, 2)]
    clock.now = 200.0
    assert close_idle(numberer) == [end(T2, 5, 4.0), end(T1, 3, 5.0)]
    assert numberer.open_traces == 0


def test_close_idle_respects_the_timeout() -> None:
    clock = FakeClock(0.0)
    numberer = TreeNumberer(clock=clock, idle_timeout_s=30.0)
    feed(numberer, item(T1, 1.0))
    clock.now = 29.0
    assert close_idle(numberer) == []
    clock.now = 31.0
    assert close_idle(numberer) == [end(T1, 3, 1.0)]


def test_recent_record_keeps_a_trace_open() -> None:
    clock = FakeClock(0.0)
    numberer = TreeNumberer(clock=clock, idle_timeout_s=5.0)
    for step in range(1, 6):
        clock.now = step * 4.0
        feed(numberer, item(T1, float(step)))
        assert close_idle(numberer) == []
    clock.now = 100.0
    assert close_idle(numberer) == [end(T1, 7, 5.0)]


# --- max_open --------------------------------------------------------------------------------------


def test_max_open_closes_least_recently_opened() -> None:
    numberer = TreeNumberer(clock=FakeClock(), max_open=2)
    feed(numberer, item(T1, 1.0), item(T2, 2.0))
    lines = feed(numberer, item(T3, 3.0))
    assert lines == [end(T1, 3, 1.0), start(T3, 3.0), rec(T3, 2)]
    assert numberer.open_traces == 2
    assert close_all(numberer) == [end(T2, 3, 2.0), end(T3, 3, 3.0)]


def test_max_open_touching_a_trace_makes_it_recent() -> None:
    numberer = TreeNumberer(clock=FakeClock(), max_open=2)
    feed(numberer, item(T1, 1.0), item(T2, 2.0), item(T1, 3.0))
    lines = feed(numberer, item(T3, 4.0))
    assert lines == [end(T2, 3, 2.0), start(T3, 4.0), rec(T3, 2)]
    # T1 survived and keeps its numbering.
    assert feed(numberer, item(T1, 5.0)) == [rec(T1, 4)]
    assert numberer.open_traces == 2


def test_max_open_one() -> None:
    numberer = TreeNumberer(clock=FakeClock(), max_open=1)
    lines = feed(numberer, item(T1, 1.0), item(T2, 2.0, failed=True), item(T1, 3.0))
    assert lines == [
        start(T1, 1.0),
        rec(T1, 2),
        end(T1, 3, 1.0),
        start(T2, 2.0),
        rec(T2, 2),
        end(T2, 3, 2.0, "failed"),
        start(T1, 3.0),
        rec(T1, 2),
    ]


def test_untraced_records_do_not_count_as_open() -> None:
    numberer = TreeNumberer(clock=FakeClock(), max_open=1)
    lines = feed(numberer, item(T1, 1.0), item(None, 2.0), item(None, 3.0), item(T1, 4.0))
    assert [line.get("at") for line in lines] == ["otel:trace", None, None, None, None]
    assert lines[-1] == rec(T1, 3)


# --- invariants --------------------------------------------------------------------------------------

_events = st.lists(
    st.one_of(
        st.tuples(
            st.just("rec"),
            st.sampled_from([T1, T2, T3, T4, None]),
            st.booleans(),
        ),
        st.tuples(st.just("tick"), st.floats(min_value=0.0, max_value=10.0), st.just(False)),
        st.tuples(st.just("idle"), st.none(), st.just(False)),
        st.tuples(st.just("all"), st.none(), st.just(False)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(events=_events, max_open=st.integers(min_value=1, max_value=4))
def test_every_trace_session_is_well_framed(events: list[tuple[Any, Any, bool]], max_open: int) -> None:
    clock = FakeClock(0.0)
    numberer = TreeNumberer(clock=clock, idle_timeout_s=3.0, max_open=max_open)
    out: list[bytes] = []
    ts = 0.0
    for kind, arg, failed in events:
        if kind == "rec":
            ts += 1.0
            numberer.number([(arg, ts, failed, b'"ts":' + orjson.dumps(ts) + b"}", b"", None, None)], out)
        elif kind == "tick":
            clock.now += arg
        elif kind == "idle":
            numberer.close_idle(out)
        else:
            numberer.close_all(out)
        assert numberer.open_traces <= max_open
    numberer.close_all(out)
    assert numberer.open_traces == 0

    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    untraced = []
    for line in parse(out):
        if "." in line["tid"]:
            untraced.append(line["tid"])
            assert line["lvl"] == [1]
            continue
        session = sessions[line["tid"]]
        if not session:
            assert line == start(line["tid"], line["ts"])
        session.append(line)
        if line.get("st") in ("succeeded", "failed"):
            # A closed session: [1] start, records [2]..[n], end [n+1] with the last record's ts
            # (the record bodies here carry their ts).
            body = session[1:-1]
            assert [r["lvl"] for r in session] == [[i] for i in range(1, len(session) + 1)]
            assert all("at" not in r for r in body)
            assert line["ts"] == (body[-1]["ts"] if body else session[0]["ts"])
            sessions[line["tid"]] = []
    assert all(not s for s in sessions.values()), "every trace is closed by close_all"
    assert len(set(untraced)) == len(untraced)


# --- base62 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0"),
        (1, "1"),
        (9, "9"),
        (10, "A"),
        (35, "Z"),
        (36, "a"),
        (61, "z"),
        (62, "10"),
        (63, "11"),
        (3843, "zz"),
        (3844, "100"),
        (62**5, "100000"),
    ],
)
def test_base62_known_values(n: int, text: str) -> None:
    assert base62(n) == text


def test_base62_is_monotone_and_invertible() -> None:
    previous = base62(0)
    for n in range(1, 20_000):
        text = base62(n)
        assert unbase62(text) == n
        assert (len(text), text) > (len(previous), previous)
        assert text[0] != "0"
        previous = text


@given(st.integers(min_value=0, max_value=2**128))
def test_base62_roundtrip_property(n: int) -> None:
    text = base62(n)
    assert all(c in ALPHABET for c in text)
    assert unbase62(text) == n


def test_end_line_carries_the_greatest_ts_of_the_trace() -> None:
    """Issue 12, item 14: the last record written may be older than the first; the end line
    must not carry a time before the start line's, or viewers show a negative duration."""
    numberer = TreeNumberer()
    out: list[bytes] = []
    numberer.number([item(T1, 105.0), item(T1, 130.0)], out)
    numberer.number([item(T1, 101.0), item(T2, 99.0)], out)  # a later batch, older records
    numberer.close_all(out)
    lines = parse(out)
    ends = {line["tid"]: line for line in lines if line.get("st") in ("succeeded", "failed")}
    starts = {line["tid"]: line for line in lines if line.get("st") == "started"}
    assert ends[T1]["ts"] == 130.0 and starts[T1]["ts"] == 105.0
    assert ends[T2]["ts"] == starts[T2]["ts"] == 99.0
    for tid, end in ends.items():
        assert end["ts"] >= starts[tid]["ts"]


def test_a_traces_tid_is_the_trace_id_and_the_writers_token() -> None:
    """Issue 12, item 13: the tid of a trace's lines carries the writer's token, the same one
    its standalone records start with, so several processes can share one file."""
    numberer = TreeNumberer()
    out: list[bytes] = []
    numberer.number([item(None, 1.0), item(T1, 2.0)], out)
    numberer.close_all(out)
    raw = [orjson.loads(line) for line in b"".join(out).splitlines()]
    token = raw[0]["tid"].split(".")[0]
    assert {line["tid"] for line in raw[1:]} == {f"{T1}~{token}"}
    assert ["~" in line["tid"] for line in raw] == [False, True, True, True]


def test_several_writers_of_one_trace_in_one_file_each_frame_their_own_tree() -> None:
    """Three processes logging one trace into one shared file (a multiprocessing pool in a
    parent's span) used to write three start lines at [1] under one tid: logxpy's tools
    then showed 5 of 15 records. Each writer's lines now form a tree of their own."""
    writers = [TreeNumberer() for _ in range(3)]
    shared: list[bytes] = []
    for step in range(5):  # interleaved, as O_APPEND writes from three processes land
        for n, numberer in enumerate(writers):
            numberer.number([item(T1, float(step), msg=f"w{n}-{step}")], shared)
    for numberer in writers:
        numberer.close_all(shared)
    lines = [orjson.loads(raw) for raw in b"".join(shared).splitlines()]
    by_tid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        by_tid[line["tid"]].append(line)
    assert len(by_tid) == 3 and all(tid.startswith(T1 + "~") for tid in by_tid)
    for tree in by_tid.values():
        assert [line["lvl"] for line in tree] == [[1], [2], [3], [4], [5], [6], [7]]
        assert (tree[0]["st"], tree[-1]["st"]) == ("started", "succeeded")
        writer = tree[1]["msg"].split("-")[0]
        assert [line["msg"] for line in tree[1:-1]] == [f"{writer}-{step}" for step in range(5)]


def test_a_trace_idle_for_exactly_the_timeout_is_closed() -> None:
    """A trace idle for exactly ``idle_timeout_s`` is idle: it gets its end line."""
    clock = FakeClock(100.0)
    numberer = TreeNumberer(clock=clock, idle_timeout_s=5.0)
    feed(numberer, item(T1, 1.0))
    clock.now = 104.5
    assert close_idle(numberer) == []
    clock.now = 105.0
    assert close_idle(numberer) == [end(T1, 3, 1.0)]
    assert numberer.open_traces == 0


# --- spans: nested actions (docs/format.md, "Spans") ------------------------------------------------


def span_start(trace: str, span: str, parent: str | None, ts: float, name: str = "op") -> tuple[Any, ...]:
    body = b'"ts":%s,"at":%s,"st":"started","_otel":{"span_id":"%s"' % (
        orjson.dumps(ts),
        orjson.dumps(name),
        span.encode(),
    )
    return (trace, ts, False, body, b"}}", span, SpanStart(parent))


def span_end(
    trace: str, span: str, parent: str | None, ts: float, name: str = "op", failed: bool = False
) -> tuple[Any, ...]:
    status = b"failed" if failed else b"succeeded"
    body = b'"ts":%s,"at":%s,"st":"%s","_otel":{"span_id":"%s"' % (
        orjson.dumps(ts),
        orjson.dumps(name),
        status,
        span.encode(),
    )
    return (trace, ts, failed, body, b"}}", span, SpanEnd(parent, name, 0.5))


def in_span(trace: str, span: str | None, ts: float, msg: str) -> tuple[Any, ...]:
    return (trace, ts, False, b'"msg":' + orjson.dumps(msg), b"}", span, None)


def shape(lines: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each line as (lvl, what): a record's msg, a span line's name and status."""
    return [(line["lvl"], line.get("msg") or f"{line['at']}:{line['st']}") for line in lines]


def nesting() -> TreeNumberer:
    return TreeNumberer(clock=FakeClock())


A, B, C = "a" * 16, "b" * 16, "c" * 16


def test_spans_nest_as_actions_and_records_sit_in_the_span_they_were_logged_in() -> None:
    lines = feed(
        nesting(),
        span_start(T1, A, None, 1.0, "request"),
        in_span(T1, A, 1.1, "in a"),
        span_start(T1, B, A, 1.2, "query"),
        in_span(T1, B, 1.3, "in b"),
        span_start(T1, C, B, 1.4, "fetch"),
        in_span(T1, C, 1.5, "in c"),
        span_end(T1, C, B, 1.6, "fetch", failed=True),
        in_span(T1, B, 1.7, "in b again"),
        span_end(T1, B, A, 1.8, "query"),
        span_end(T1, A, None, 1.9, "request"),
    )
    assert shape(lines) == [
        ([1], "otel:trace:started"),
        ([2, 1], "request:started"),
        ([2, 2], "in a"),
        ([2, 3, 1], "query:started"),
        ([2, 3, 2], "in b"),
        ([2, 3, 3, 1], "fetch:started"),
        ([2, 3, 3, 2], "in c"),
        ([2, 3, 3, 3], "fetch:failed"),
        ([2, 3, 4], "in b again"),
        ([2, 3, 5], "query:succeeded"),
        ([2, 4], "request:succeeded"),
        # the local root ended with nothing open: the trace's tree is complete at once
        ([3], "otel:trace:failed"),
    ]
    assert lines[-1]["ts"] == 1.9


def test_a_record_of_an_unknown_or_ended_span_hangs_from_its_nearest_open_ancestor() -> None:
    numberer = nesting()
    lines = feed(
        numberer,
        in_span(T1, "f" * 16, 1.0, "before any span"),
        span_start(T1, A, "9" * 16, 1.1),  # a remote parent: under the root
        span_start(T1, B, A, 1.2),
        span_end(T1, B, A, 1.3),
        in_span(T1, B, 1.4, "late, in ended b"),
        in_span(T1, "e" * 16, 1.5, "in a span never seen"),
    )
    assert shape(lines)[1:] == [
        ([2], "before any span"),
        ([3, 1], "op:started"),
        ([3, 2, 1], "op:started"),
        ([3, 2, 2], "op:succeeded"),
        ([3, 3], "late, in ended b"),
        ([4], "in a span never seen"),
    ]


def test_a_span_ending_after_its_parent_keeps_its_place() -> None:
    lines = feed(
        nesting(),
        span_start(T1, A, None, 1.0),
        span_start(T1, B, A, 1.1),
        span_end(T1, A, None, 1.2),  # the parent ends first (a child thread still works)
        in_span(T1, B, 1.3, "in b"),
        span_end(T1, B, A, 1.4),
    )
    assert shape(lines) == [
        ([1], "otel:trace:started"),
        ([2, 1], "op:started"),
        ([2, 2, 1], "op:started"),
        ([2, 3], "op:succeeded"),
        ([2, 2, 2], "in b"),
        ([2, 2, 3], "op:succeeded"),
        ([3], "otel:trace:succeeded"),  # closed when the last open span ended
    ]


def test_an_end_whose_start_this_tree_never_saw_brings_its_start_line() -> None:
    lines = feed(nesting(), span_end(T1, A, None, 2.0, "late"))
    assert shape(lines) == [
        ([1], "otel:trace:started"),
        ([2, 1], "late:started"),
        ([2, 2], "late:succeeded"),
        ([3], "otel:trace:succeeded"),
    ]
    assert "_otel" not in lines[1], "the start line brought along is a structure line"
    assert lines[1]["ts"] == 0.5


def test_a_trace_with_an_open_span_is_not_closed_for_idleness_but_is_by_close_all() -> None:
    clock = FakeClock()
    numberer = TreeNumberer(clock=clock, idle_timeout_s=5.0)
    feed(numberer, span_start(T1, A, None, 1.0), in_span(T2, None, 1.0, "other"))
    clock.now += 60
    closed = close_idle(numberer)
    assert [line["tid"] for line in closed] == [T2], "the request is still running"
    assert numberer.open_traces == 1
    rest = close_all(numberer)
    assert shape(rest) == [([3], "otel:trace:succeeded")], "the span stays unfinished in this tree"
    # Its end, later (after a rotation, say): a new tree, with its start brought along.
    lines = feed(numberer, span_end(T1, A, None, 70.0))
    assert shape(lines) == [
        ([1], "otel:trace:started"),
        ([2, 1], "op:started"),
        ([2, 2], "op:succeeded"),
        ([3], "otel:trace:succeeded"),
    ]


def test_nesting_depth_is_bounded() -> None:
    spans = [f"{n:016x}" for n in range(_trees.MAX_SPAN_DEPTH + 5)]
    items = [span_start(T1, span, spans[n - 1] if n else None, 1.0) for n, span in enumerate(spans)]
    items.append(in_span(T1, spans[-1], 2.0, "deepest"))
    lines = feed(nesting(), *items)
    assert max(len(line["lvl"]) for line in lines) == _trees.MAX_SPAN_DEPTH + 1
    assert lines[-1]["msg"] == "deepest"
    assert len(lines[-1]["lvl"]) == _trees.MAX_SPAN_DEPTH + 1


def test_a_span_past_the_depth_bound_never_goes_under_an_ended_action() -> None:
    """The span at depth 31 ends while its child at depth 32 (the bound) is still open; a
    child of that one then goes under the nearest open ancestor above the bound (depth 30),
    not under the ended one after its end line."""
    ids = [f"{n:016x}" for n in range(1, _trees.MAX_SPAN_DEPTH + 2)]
    items = [span_start(T1, span, ids[n - 1] if n else None, 1.0) for n, span in enumerate(ids[:-1])]
    items.append(span_end(T1, ids[30], ids[29], 2.0))
    items.append(span_start(T1, ids[32], ids[31], 3.0))
    lines = feed(nesting(), *items)
    ended = next(line["lvl"] for line in lines if line.get("st") == "succeeded" and len(line["lvl"]) > 1)
    assert len(ended) == 31 + 1, "the depth-31 action's end line"
    newest = lines[-1]["lvl"]
    assert lines[-1]["st"] == "started"
    assert newest[:-2] == ended[:-2], "beside the ended action, under depth 30"
    assert newest[-2] > ended[-2], "after the ended action's place, not inside it"


def test_a_late_record_of_a_recently_ended_span_goes_under_its_open_parent_past_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past ``_REMEMBERED_SPANS`` (8 here), the half most recently started of the ended
    spans are still known: a late record of one goes under its open parent; one of a span
    forgotten since goes under the root (docs/format.md, "Spans")."""
    monkeypatch.setattr(_trees, "_REMEMBERED_SPANS", 8)
    parent = "1" * 16
    children = [f"{n:016x}" for n in range(2, 18)]  # (the last end prunes, old rule and new)
    items = [span_start(T1, parent, None, 1.0)]
    for child in children:
        items += [span_start(T1, child, parent, 1.0), span_end(T1, child, parent, 1.0)]
    items.append(in_span(T1, children[-1], 2.0, "late, recent"))
    items.append(in_span(T1, children[0], 2.0, "late, forgotten"))
    lines = feed(nesting(), *items)
    under_parent = lines[1]["lvl"][:-1]
    assert lines[-2]["msg"] == "late, recent" and lines[-2]["lvl"][:-1] == under_parent
    assert lines[-1]["msg"] == "late, forgotten" and len(lines[-1]["lvl"]) == 1


def test_forgetting_ended_spans_costs_little_however_many_stay_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``_REMEMBERED_SPANS``, ended actions are forgotten only when at least half of the
    remembered ones have ended: with many spans open, each end must not rebuild the whole
    map (it did: ending 16,000 open spans took 9 s)."""
    monkeypatch.setattr(_trees, "_REMEMBERED_SPANS", 8)
    numberer = nesting()
    ids = [f"{n:016x}" for n in range(1, 201)]
    numberer.number([span_start(T1, ids[0], None, 1.0)], [])
    for span in ids[1:]:
        numberer.number([span_start(T1, span, ids[0], 1.0)], [])
    rebuilds = 0
    for span in reversed(ids[1:]):
        held = len(spans_of(numberer))
        numberer.number([span_end(T1, span, ids[0], 2.0)], [])
        rebuilds += len(spans_of(numberer)) < held  # (only a rebuild forgets)
    # Ending 199 of 200 open spans: each rebuild halves what is held, so a handful, not 191.
    assert 1 <= rebuilds <= 8
    assert trace_state(numberer)[6] == 1, "one span open"


def trace_state(numberer: TreeNumberer, trace_id: str = T1) -> tuple[Any, ...]:
    """``trace_id``'s entry in the numberer's state (TreeNumberer._state)."""
    (state,) = [entry for entry in numberer._state()[1] if entry[0] == trace_id]
    return state


def spans_of(numberer: TreeNumberer, trace_id: str = T1) -> dict[str, Any]:
    return dict(trace_state(numberer, trace_id)[7])


@pytest.mark.parametrize(
    "bad",
    [
        ("t",),
        (T1, 1.0, False, "not bytes", b"}", None, None),
        (None, 1.0, False, b"x", b"}", "a" * 16, SpanStart(None)),
    ],
)
def test_a_batch_with_a_bad_item_changes_no_trace(bad: tuple[Any, ...]) -> None:
    """Every item is checked before any is numbered (the writer retries a refused batch,
    then drops it): a half-numbered batch left spans started with no start line written."""
    numberer = nesting()
    feed(numberer, span_start(T1, A, None, 1.0))
    before = numberer._state()
    with pytest.raises(TypeError):
        numberer.number([span_start(T1, B, A, 1.1), in_span(T1, B, 1.2, "x"), bad], [])
    assert numberer._state() == before
    assert set(spans_of(numberer)) == {A}


def _tids(out: list[bytes]) -> list[str]:
    return [orjson.loads(line)["tid"] for line in b"".join(out).splitlines()]


@pytest.mark.parametrize("one_batch", [True, False])
def test_a_trace_closed_with_a_span_open_opens_again_under_a_new_token(one_batch: bool) -> None:
    """Format rule 4 (hostile review, session 27): trace 1 pushed out (``max_open=2``) with
    its span open leaves an unfinished tree; opened again under the same tid, logxpy's
    Parser took the new tree into it. Its next tree, and every trace opened after, take
    the writer's token with a count; a trace closed with no span open changes nothing. In
    one batch too: the C loop opens a trace itself when there is room (here once trace 2's
    span has ended), and must not with the token it was given for the batch."""
    numberer = TreeNumberer(clock=FakeClock(), max_open=2)
    items = [
        span_start(T1, A, None, 1.0),
        in_span(T1, A, 1.1, "a1"),
        span_start(T2, B, None, 1.2),
        in_span(T3, None, 1.3, "c1"),  # trace 1 pushed out, span A open
        span_end(T2, B, None, 1.4),  # trace 2's last span ends: closed, room for one
        in_span(T1, A, 1.5, "a2"),  # trace 1 opens again
        in_span(T4, None, 1.6, "d1"),  # trace 3 pushed out: no span open in its tree
    ]
    out: list[bytes] = []
    for chunk in [items] if one_batch else [[i] for i in items]:
        numberer.number(chunk, out)
    numberer.close_all(out)
    tokens: dict[str, list[str]] = defaultdict(list)
    for tid in _tids(out):
        trace, token = tid.split("~")
        if token not in tokens[trace]:
            tokens[trace].append(token)
    first = tokens[T1][0]
    assert tokens == {T1: [first, first + "-1"], T2: [first], T3: [first + "-1"], T4: [first + "-1"]}


def test_close_idle_asks_the_clock_only_with_a_trace_open() -> None:
    """Both paths ask the clock alike (hostile review, session 29: the C path asked it even
    with no trace open, so a clock that moves at each call drifted between them)."""
    calls: list[int] = []

    def clock() -> float:
        calls.append(1)
        return 100.0 + len(calls)

    numberer = TreeNumberer(clock=clock, idle_timeout_s=0.5)
    numberer.close_idle([])
    assert calls == []
    numberer.number([(T1, 1.0, False, b'"x":1', b"}", None, None)], [])
    out: list[bytes] = []
    numberer.close_idle(out)
    assert len(calls) == 2 and b"".join(out).count(b'"st":"succeeded"') == 1


def test_a_numbering_that_raises_part_way_forgets_the_traces_it_opened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A span end's start line (a callback into Python) raising in the middle of a batch (an
    interrupt, no memory): none of the batch's lines is written, so the traces it opened
    are forgotten (hostile review, session 29: its retry went on a tree with no start line),
    and ``broken`` says the others moved on until a restart closes them."""
    numberer = nesting()
    feed(numberer, in_span(T1, None, 1.0, "before"))
    start_body_raises_once(monkeypatch, KeyboardInterrupt())
    batch = [in_span(T1, None, 2.0, "t1"), in_span(T2, None, 2.1, "t2"), span_end(T3, A, None, 2.2)]
    assert not numberer.broken
    with pytest.raises(KeyboardInterrupt):
        numberer.number(batch, [])
    assert [entry[0] for entry in numberer._state()[1]] == [T1] and numberer.broken
    out: list[bytes] = []
    numberer.restart(out)
    assert not numberer.broken and b'"st":"succeeded"' in b"".join(out)
    numberer.number(batch, out)
    numberer.close_all(out)
    lines = [orjson.loads(line) for line in b"".join(out).splitlines()]
    starts = [line["tid"] for line in lines if line["lvl"] == [1]]
    assert len(starts) == len(set(starts)) == 3, "each trace of the retry in a tree of its own"
