"""Nested numbering (span lines, docs/format.md "Spans"): the loop that
``TreeNumberer()`` uses (C where built) against the Python loop (``speedups=False``).

Both are fed the same batches; after every batch and every close they must have written
the same bytes and be left in the same state (open traces in LRU order, each trace's
fields and span actions). Every file they write must be a well-formed tree
(``check_tree`` of tests/test_span_processor.py, and the checks of :func:`check_file`).

The C side is ``_speedups.Forest`` (the trees as C data, ``_forest.h``); where it is not
built, both sides run the Python loop and the comparisons hold trivially; the tree checks
do not.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from _helpers import FakeClock, memory_kept, parse_lines, run_script, start_body_raises_once
from hypothesis import given, settings
from hypothesis import strategies as st
from test_span_processor import check_tree

from logxpy_otel import _trees
from logxpy_otel._format import LineItem, SpanEnd, SpanStart
from logxpy_otel._trees import MAX_SPAN_DEPTH, TreeNumberer

TRACES = [
    "5b8efff798038103d269b633813fc60c",
    "00000000000000000000000000000abc",
    "0123456789abcdef0123456789abcdef",
    "ffffffffffffffffffffffffffffffff",  # records only: a flat trace among nested ones
]
NESTED = 3  # the first three traces get span lines
POOL = 5  # span ids per trace
UNKNOWN = "e" * 16  # a span id no line ever starts


def span_id(trace: int, n: int) -> str:
    """The ``n``-th span id of trace ``trace`` (16 hex)."""
    return f"{trace + 1:x}{n + 1:015x}"


def chain_id(trace: int, depth: int) -> str:
    """The span id at ``depth`` of trace ``trace``'s deep chain (16 hex)."""
    return f"{trace + 1:x}c{depth:014x}"


def name_of(span: str) -> str:
    """Each span id has its own name: an end line must close the action its span started."""
    return "op-" + span[-4:]


def span_start(trace: str, span: str, parent: str | None, ts: float) -> LineItem:
    body = b'"ts":%s,"at":%s,"st":"started","_otel":{"span_id":"%s"' % (
        orjson.dumps(ts),
        orjson.dumps(name_of(span)),
        span.encode(),
    )
    return (trace, ts, False, body, b"}}", span, SpanStart(parent))


def span_end(trace: str, span: str, parent: str | None, ts: float, failed: bool = False) -> LineItem:
    status = b"failed" if failed else b"succeeded"
    body = b'"ts":%s,"at":%s,"st":"%s","_otel":{"span_id":"%s"' % (
        orjson.dumps(ts),
        orjson.dumps(name_of(span)),
        status,
        span.encode(),
    )
    return (trace, ts, failed, body, b"}}", span, SpanEnd(parent, name_of(span), ts - 0.25))


def in_span(trace: str | None, span: str | None, ts: float, msg: str, failed: bool = False) -> LineItem:
    return (trace, ts, failed, b'"ts":%s,"msg":%s' % (orjson.dumps(ts), orjson.dumps(msg)), b"}", span, None)


# --- the two numberers and their state --------------------------------------------------------


def pair(clock: Callable[[], float], max_open: int = 1000) -> tuple[TreeNumberer, TreeNumberer]:
    """The numberer under test (C where built) and the Python one, one token."""
    fast = TreeNumberer(clock=clock, max_open=max_open, idle_timeout_s=1.5)
    slow = TreeNumberer(clock=clock, max_open=max_open, idle_timeout_s=1.5, speedups=False)
    assert slow._forest is None, "speedups=False numbers in Python"
    assert (fast._forest is not None) is (_trees._Forest is not None), "the C path where built"
    slow._task_head = fast._task_head  # the per-process random token
    slow._token = fast._token
    slow._trace_token = fast._trace_token
    return fast, slow


def state(numberer: TreeNumberer) -> tuple[Any, ...]:
    """Everything that decides the numberer's later lines (TreeNumberer._state): open
    traces in LRU order, each with its fields and span actions. A trace's ``spans`` None
    and ``{}`` number alike, and read alike."""
    return numberer._state()


def check_file(data: bytes) -> list[dict[str, Any]]:
    """``data`` is well-formed: ``check_tree`` (every lvl once per tree, every line in an
    action started before it, nothing after a tree's end), lvl at most MAX_SPAN_DEPTH + 1
    long, and every span end line closes an action its own span started (same name)."""
    lines = parse_lines(data, raw_tid=True)
    check_tree(lines)
    started: dict[str, dict[tuple[int, ...], str]] = {}  # per tid: action -> span name
    for line in lines:
        tid, lvl = line["tid"], tuple(line["lvl"])
        assert len(lvl) <= MAX_SPAN_DEPTH + 1, lvl
        if "at" not in line or "." in tid:
            continue
        if lvl == (1,):
            started[tid] = {}
        elif line["st"] == "started":
            started[tid][lvl[:-1]] = line["at"]
        elif line["at"] != "otel:trace":
            assert started[tid][lvl[:-1]] == line["at"], f"{line}: ends another span's action"
    return lines


class Both:
    """The two numberers fed alike; each step's lines and the states compared."""

    def __init__(self, clock: FakeClock, max_open: int = 1000) -> None:
        self.clock = clock
        self.fast, self.slow = pair(clock, max_open)
        self.written: list[bytes] = []

    def step(self, action: Callable[[TreeNumberer, list[bytes]], None]) -> bytes:
        out_fast: list[bytes] = []
        out_slow: list[bytes] = []
        action(self.fast, out_fast)
        action(self.slow, out_slow)
        data = b"".join(out_slow)
        assert b"".join(out_fast) == data
        assert state(self.fast) == state(self.slow)
        self.written.append(data)
        return data

    def number(self, items: Sequence[LineItem]) -> bytes:
        return self.step(lambda numberer, out: numberer.number(items, out))

    def close_idle(self) -> bytes:
        return self.step(lambda numberer, out: numberer.close_idle(out))

    def close_all(self) -> bytes:
        data = self.step(lambda numberer, out: numberer.close_all(out))
        assert self.fast.open_traces == self.slow.open_traces == 0
        return data

    def check(self) -> list[dict[str, Any]]:
        return check_file(b"".join(self.written))


@contextmanager
def remembered_spans(n: int) -> Iterator[None]:
    """``_trees._REMEMBERED_SPANS`` set to ``n`` for both numberers (the Python loop reads
    the module's global at each end; a C loop must see the same value)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_trees, "_REMEMBERED_SPANS", n)
        yield


# --- any mix of operations ----------------------------------------------------------------------

_nested = st.integers(0, NESTED - 1)
_parent = st.one_of(st.none(), st.integers(0, POOL - 1), st.just("unknown"))
_operations = st.lists(
    st.one_of(
        st.tuples(st.just("start"), _nested, st.integers(0, POOL - 1), _parent),
        st.tuples(st.just("end"), _nested, st.integers(0, POOL - 1), _parent, st.booleans()),
        st.tuples(
            st.just("record"),
            st.integers(0, len(TRACES) - 1),
            st.one_of(st.none(), st.integers(0, POOL - 1), st.sampled_from(["unknown", "deep"])),
            st.booleans(),
        ),
        st.tuples(st.just("task")),
        st.tuples(st.just("chain"), _nested, st.integers(MAX_SPAN_DEPTH - 2, 40), st.integers(0, 40)),
        st.tuples(st.just("batch")),
        st.tuples(st.just("idle"), st.sampled_from([0.0, 1.0, 2.0])),
        st.tuples(st.just("close_all")),
        st.tuples(st.just("back")),
    ),
    min_size=10,
    max_size=80,
)


def pick(trace: int, choice: int | str | None) -> str | None:
    """A span id (or parent) by its drawn choice: one of the trace's pool, an unknown one,
    the innermost of its deep chain, or None."""
    if choice is None:
        return None
    if choice == "unknown":
        return UNKNOWN
    if choice == "deep":
        return chain_id(trace, 39)
    assert isinstance(choice, int)
    return span_id(trace, choice)


@settings(max_examples=400, deadline=None)
@given(
    operations=_operations,
    max_open=st.sampled_from([1, 2, 3, 1000]),
    remembered=st.sampled_from([2, 3, 4096]),
)
def test_nested_numbering_same_lines_and_state_as_python(
    operations: list[tuple[Any, ...]], max_open: int, remembered: int
) -> None:
    """Spans started (under none, a known, ended or unknown parent, or twice while open),
    ended (started or not), records in known, ended, unknown or no spans, failed ones,
    tasks, chains deeper than MAX_SPAN_DEPTH, ts out of order, batches, idle closes, LRU
    evictions with spans open, close_all, few remembered spans: the same bytes and state."""
    with remembered_spans(remembered):
        both = Both(FakeClock(100.0), max_open)
        pending: list[LineItem] = []
        ts = 1000.0

        def now() -> float:
            nonlocal ts
            ts += 0.25
            return ts

        for operation in operations:
            kind = operation[0]
            if kind == "start":
                _, t, n, parent = operation
                pending.append(span_start(TRACES[t], span_id(t, n), pick(t, parent), now()))
            elif kind == "end":
                _, t, n, parent, failed = operation
                pending.append(span_end(TRACES[t], span_id(t, n), pick(t, parent), now(), failed))
            elif kind == "record":
                _, t, span, failed = operation
                where = pick(t, span) if t < NESTED else None
                pending.append(in_span(TRACES[t], where, now(), f"r{len(pending)}", failed))
            elif kind == "task":
                pending.append(in_span(None, None, now(), "task"))
            elif kind == "chain":
                _, t, depth, ends = operation
                chain = [chain_id(t, d) for d in range(depth)]
                parents = [span_id(t, 0), *chain[:-1]]
                pending += [span_start(TRACES[t], s, p, now()) for s, p in zip(chain, parents, strict=True)]
                pending.append(in_span(TRACES[t], chain[-1], now(), "deepest"))
                for s, p in list(zip(chain, parents, strict=True))[::-1][:ends]:
                    pending.append(span_end(TRACES[t], s, p, now()))
            elif kind == "batch":
                both.number(pending)
                pending = []
                both.clock.t += 0.5
            elif kind == "idle":
                both.number(pending)
                pending = []
                both.clock.t += operation[1]
                both.close_idle()
            elif kind == "close_all":
                both.number(pending)
                pending = []
                both.close_all()
            else:
                ts -= 3.0  # the next lines' ts go back in time
        both.number(pending)
        both.close_all()
        both.check()


# --- the cases one by one ----------------------------------------------------------------------


def test_a_chain_deeper_than_max_span_depth() -> None:
    """40 nested spans, a record in each, ended innermost first over two batches: the
    actions below MAX_SPAN_DEPTH sit beside their ancestor at that depth."""
    both = Both(FakeClock(100.0))
    t = TRACES[0]
    chain = [chain_id(0, d) for d in range(40)]
    parents: list[str | None] = [None, *chain[:-1]]
    items: list[LineItem] = []
    for n, (span, parent) in enumerate(zip(chain, parents, strict=True)):
        items.append(span_start(t, span, parent, 1.0 + n))
        items.append(in_span(t, span, 1.5 + n, f"in {n}"))
    both.number(items)
    ends = [
        span_end(t, span, parent, 50.0 + n)
        for n, (span, parent) in enumerate(zip(chain, parents, strict=True))
    ]
    both.number(ends[::-1][:20])
    both.number(ends[::-1][20:])
    lines = both.check()
    assert both.fast.open_traces == 0, "the last span's end closed the trace"
    depth = {line["msg"]: len(line["lvl"]) for line in lines if "msg" in line}
    assert [depth[f"in {n}"] for n in range(40)] == [min(n + 2, MAX_SPAN_DEPTH + 1) for n in range(40)]
    assert lines[-1]["at"] == "otel:trace" and lines[-1]["lvl"] == [3]


def test_a_span_started_again_while_open_gets_each_end() -> None:
    """The same span id started twice while open (a processor added twice): two actions,
    two ends, the trace closed after the second."""
    both = Both(FakeClock(100.0))
    t, a = TRACES[1], span_id(1, 0)
    both.number([span_start(t, a, None, 1.0), span_start(t, a, None, 1.1), in_span(t, a, 1.2, "in a")])
    assert both.slow._open[t].open_spans == 2
    both.number([span_end(t, a, None, 1.3)])
    assert both.slow._open[t].open_spans == 1
    both.number([in_span(t, a, 1.4, "in the first a"), span_end(t, a, None, 1.5)])
    assert both.slow.open_traces == 0
    lines = both.check()
    assert [line["lvl"] for line in lines if "msg" in line] == [[3, 2], [2, 2]]


def test_forgetting_ended_spans_past_remembered_spans() -> None:
    """With ``_REMEMBERED_SPANS`` at 3, ended spans are forgotten: a record of one then goes
    to the trace's root, not to its open parent. The patch reaches both loops."""
    with remembered_spans(3):
        both = Both(FakeClock(100.0))
        t, top = TRACES[0], span_id(0, 0)
        kids = [span_id(0, n) for n in range(1, 5)]
        items = [span_start(t, top, None, 1.0)]
        for n, kid in enumerate(kids):
            items += [span_start(t, kid, top, 2.0 + n), span_end(t, kid, top, 2.5 + n)]
        both.number(items)
        assert kids[0] not in (both.slow._open[t].spans or {}), "ended children forgotten"
        data = both.number([in_span(t, kids[0], 9.0, "late in a forgotten child")])
        assert orjson.loads(data)["lvl"] == [3], "a forgotten span: under the root"
        both.close_all()
        both.check()


def test_flat_and_nested_traces_in_one_batch() -> None:
    """Traces that never had a span line, nested ones and tasks, interleaved in one batch
    and then across batches: the flat ones keep [2], [3], ... at their root."""
    both = Both(FakeClock(100.0), max_open=3)
    flat, nested = TRACES[3], TRACES[0]
    a, b = span_id(0, 0), span_id(0, 1)
    batch = [
        in_span(flat, None, 1.0, "flat 1"),
        span_start(nested, a, None, 1.1),
        in_span(flat, "0" * 16, 1.2, "flat 2"),  # a span id on a record of a trace without spans
        in_span(None, None, 1.3, "task"),
        in_span(nested, a, 1.4, "nested 1"),
        span_start(nested, b, a, 1.5),
        in_span(flat, None, 1.6, "flat 3", failed=True),
        in_span(TRACES[1], None, 1.7, "other flat"),
        in_span(nested, b, 1.8, "nested 2"),
    ]
    both.number(batch)
    both.number(
        [in_span(flat, None, 2.0, "flat 4"), span_end(nested, b, a, 2.1), span_end(nested, a, None, 2.2)]
    )
    both.close_all()
    lines = both.check()
    assert [line["lvl"] for line in lines if line["tid"].startswith(flat)] == [[1], [2], [3], [4], [5], [6]]
    assert lines[-1]["st"] == "failed" and lines[-1]["tid"].startswith(flat)


_BAD_ITEMS: dict[str, Any] = {
    "a 6-tuple": (TRACES[1], 5.0, False, b'"x":1', b"}", None),
    "an 8-tuple": (TRACES[1], 5.0, False, b'"x":1', b"}", None, None, None),
    "not a tuple": 42,
    "a str body": (TRACES[1], 5.0, False, '"x":1', b"}", None, None),
    "a str tail": (TRACES[0], 5.0, False, b'"x":1', "}", span_id(0, 0), None),
}


def test_a_span_lines_ids_are_checked_before_its_parent_in_both_loops() -> None:
    """A span line with a trace id that is not ASCII and a role short of its fields: both
    loops refuse it (TypeError), as _check_items looks at the ids first (the C loop once
    asked for the parent first, and raised AttributeError: hostile review, session 30)."""
    both = Both(FakeClock(100.0))
    item = (*span_start("\u00e9" * 32, span_id(0, 0), None, 1.0)[:6], tuple.__new__(SpanStart, ()))
    for numberer in (both.slow, both.fast):
        with pytest.raises(TypeError):
            numberer.number([item], [])


@pytest.mark.parametrize("bad", list(_BAD_ITEMS))
def test_an_item_that_is_not_a_line_item_mid_batch(bad: str) -> None:
    """A bad item after good ones (a new trace, a span start, a record in a span, a task)
    raises in both loops, and neither is left half way.

    The two may stop at different points by design: the C loop checks every item before
    it numbers one (as the flat C loop does: it sizes the batch's bytes first), so it
    leaves the state as it was; the Python loop numbers item by item and raises at the
    bad one, the earlier ones numbered (and its tuple unpacking raises ValueError, not
    TypeError, for a tuple of the wrong length). So the state the C loop leaves must be
    either the one before the batch or the Python loop's."""
    both = Both(FakeClock(100.0))
    a = span_id(0, 0)
    both.number([span_start(TRACES[0], a, None, 1.0), in_span(TRACES[0], a, 1.1, "before")])
    before = state(both.slow)
    good = [
        span_start(TRACES[2], span_id(2, 0), None, 2.0),
        in_span(TRACES[2], span_id(2, 0), 2.1, "in a new trace"),
        span_start(TRACES[0], span_id(0, 1), a, 2.2),
        in_span(None, None, 2.3, "task"),
    ]
    items: list[Any] = [*good, _BAD_ITEMS[bad], in_span(TRACES[0], a, 2.4, "after")]
    with pytest.raises((TypeError, ValueError)):
        both.slow.number(items, [])
    with pytest.raises((TypeError, ValueError)):
        both.fast.number(items, [])
    assert state(both.fast) in (before, state(both.slow))
    if state(both.fast) == state(both.slow):
        both.close_all()
    else:
        ended: list[bytes] = []
        both.fast.close_all(ended)
        assert both.fast.open_traces == 0 and ended


# --- nothing kept -----------------------------------------------------------------------------------


def _leak_batches() -> list[list[LineItem]]:
    """Batches that open, nest, evict (max_open 2, spans open), end unseen spans, fail, and
    close traces: one round of them leaves no trace open after close_all."""
    t = [f"{n:032x}" for n in range(1, 5)]  # made at run time: counted references
    s = [f"{n:016x}" for n in range(1, 6)]
    return [
        [
            span_start(t[0], s[0], None, 1.0),
            in_span(t[0], s[0], 1.1, "in"),
            span_start(t[0], s[1], s[0], 1.2),
            span_start(t[0], s[1], s[0], 1.25),  # again while open
            in_span(None, None, 1.3, "task"),
            in_span(t[1], None, 1.4, "flat"),
            span_start(t[2], s[2], UNKNOWN, 1.5),
        ],
        [
            in_span(t[0], s[1], 2.0, "deeper", failed=True),
            span_end(t[0], s[1], s[0], 2.1),
            span_end(t[0], s[1], s[0], 2.15),
            in_span(t[0], s[1], 2.2, "in an ended span"),
            span_end(t[3], s[3], s[4], 2.3),  # never started: its start line comes along
            span_end(t[0], s[0], None, 2.4),
            span_end(t[2], s[2], UNKNOWN, 2.5),  # its trace evicted with the span open
            *[span_start(t[1], s[4], s[4], 2.6 + n / 100) for n in range(MAX_SPAN_DEPTH + 3)],
        ],
    ]


def test_no_memory_kept_per_nested_batch() -> None:
    """Thousands of rounds of nested batches, each then closed: no memory kept, and every
    object the items hold has the references it had."""
    clock = FakeClock(100.0)
    fast, slow = pair(clock, max_open=2)
    batches = _leak_batches()
    # bools and None: shared by everyone, their counts move on their own
    held = {
        id(obj): obj
        for batch in batches
        for item in batch
        for obj in item
        if type(obj) is not bool and obj is not None
    }

    def run(n: int) -> None:
        for _ in range(n):
            for numberer in (fast, slow):
                out: list[bytes] = []
                for batch in batches:
                    numberer.number(batch, out)
                numberer.close_all(out)
            clock.t += 1.0

    run(200)
    out_fast: list[bytes] = []
    out_slow: list[bytes] = []
    for numberer, out in ((fast, out_fast), (slow, out_slow)):
        for batch in batches:
            numberer.number(batch, out)
        numberer.close_all(out)
    assert b"".join(out_fast) == b"".join(out_slow)
    check_file(b"".join(out_fast))
    gc.collect()
    references = {key: sys.getrefcount(obj) for key, obj in held.items()}
    grown = memory_kept(run, 2_000)
    assert grown < 64 * 1024, f"{grown} bytes kept after 2,000 rounds"
    assert {key: sys.getrefcount(obj) for key, obj in held.items()} == references
    assert fast.open_traces == slow.open_traces == 0


def test_a_callback_that_raises_part_way_leaves_both_loops_in_one_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A span end's start line raising in the middle of a batch: both loops forget the
    traces the batch opened, keep the others as they moved on, and say ``broken``; then a
    restart and the batch again give the same lines."""
    both = Both(FakeClock(100.0))
    t0, t1, t2 = TRACES[0], TRACES[1], TRACES[2]
    both.number([span_start(t0, span_id(0, 0), None, 1.0), in_span(t0, span_id(0, 0), 1.1, "in")])
    batch = [
        span_start(t0, span_id(0, 1), span_id(0, 0), 2.0),
        in_span(t1, None, 2.1, "new trace"),
        span_end(t2, span_id(2, 0), None, 2.2),  # unseen start: the callback
    ]
    for numberer in (both.fast, both.slow):
        start_body_raises_once(monkeypatch, MemoryError())
        with pytest.raises(MemoryError):
            numberer.number(batch, [])
        assert numberer.broken
    assert state(both.fast) == state(both.slow)
    assert [entry[0] for entry in state(both.slow)[1]] == [t0]
    both.step(lambda numberer, out: numberer.restart(out))
    assert not both.fast.broken and not both.slow.broken
    both.number(batch)
    both.close_all()
    both.check()


class _Liar(str):
    """A str subclass whose ``isascii`` says yes whatever its characters."""

    def isascii(self) -> bool:
        return True


@pytest.mark.parametrize("change", ["parent property", "__len__", "lying parent"])
def test_a_role_reads_alike_in_both_loops_whatever_its_class_says(
    monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Both loops read a role as the tuple it is (its first item, tuple's own length, str's
    own isascii), not as its class answers (hostile review, session 30: the Python loop read
    ``role.parent`` and ``len(role)``, the C loop the tuple, and they nested or refused
    differently)."""
    both = Both(FakeClock(100.0))
    a, b = span_id(0, 0), span_id(0, 1)
    both.number([span_start(TRACES[0], a, None, 1.0)])
    child = span_start(TRACES[0], b, a, 1.1)
    if change == "parent property":
        monkeypatch.setattr(SpanStart, "parent", property(lambda role: None))
    elif change == "__len__":
        monkeypatch.setattr(SpanStart, "__len__", lambda role: 7)
    else:
        child = (*child[:6], SpanStart(_Liar("\u00e9" * 16)))
        for numberer in (both.slow, both.fast):
            with pytest.raises(TypeError):
                numberer.number([child], [])
        return
    both.number([child, in_span(TRACES[0], b, 1.2, "in b")])
    lines = both.check()
    assert [line["lvl"] for line in lines if line.get("msg") == "in b"] == [[2, 2, 2]], "under b, under a"


def test_tracemalloc_started_and_stopped_while_spans_are_written_is_no_crash(tmp_path: Path) -> None:
    """A review (session 35): the trees' C state allocated with Python's raw allocator
    without the GIL, and ``tracemalloc.stop()`` racing such an allocation (a leak hunt in
    production: start, snapshot, stop) crashed CPython (3 of 3 runs on 3.11.7, 3.12.1 and
    3.13.0). It allocates with the C library's allocator now."""
    script = """
import sys, tracemalloc
from opentelemetry.sdk.trace import TracerProvider
from logxpy_otel import LogxpyLogRecordProcessor
processor = LogxpyLogRecordProcessor(sys.argv[1], max_queue_size=100_000)
provider = TracerProvider(shutdown_on_exit=False)
provider.add_span_processor(processor.span_processor())
tracer = provider.get_tracer("t")
for _ in range(8):
    tracemalloc.start()
    for i in range(2_000):
        with tracer.start_as_current_span("s%d" % (i % 7), attributes={"k": "v"}):
            pass
    tracemalloc.stop()
assert processor.writer.flush(30.0)
print(processor.metrics.span_lines_written)
processor.shutdown()
"""
    done = run_script(script, str(tmp_path / "app.jsonl"), timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.split() == ["32000"]
