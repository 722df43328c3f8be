"""The C encoder (``_speedups``): same bytes as the Python encoder, the common case in C, no leaks.

tests/test_format.py checks every format rule through both encoders (``encode_item``);
this file adds generated records, which records the C path takes, and its memory.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from _helpers import any_char, memory_kept
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from test_format import OBSERVED, TS, make_record

from logxpy_otel import _format
from logxpy_otel._format import LineEncoder
from logxpy_otel._trees import TreeNumberer

if not _format.SPEEDUPS:
    if os.environ.get("LOGXPY_OTEL_REQUIRE_SPEEDUPS") == "1":
        pytest.fail("the C encoder was not built (LOGXPY_OTEL_REQUIRE_SPEEDUPS=1)", pytrace=False)
    pytest.skip("the C encoder is not built here", allow_module_level=True)

RESOURCE = Resource({"service.name": "shop", "host": "h\u2028x"})
SCOPE = InstrumentationScope("app", "1.0")

_text = st.text(st.characters(codec="utf-8") | st.sampled_from('"\\\n\r\t\x00\x1f\x7f\x85\u2028\u2029é€😀'))
# st.text() never makes lone surrogates: a list of any code point, joined, does
_hostile_text = st.lists(any_char, max_size=20).map("".join)
_ints = st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
_any_ints = st.integers() | st.sampled_from([-(1 << 63) - 1, 1 << 64, 1 << 200])
_floats = st.floats(allow_nan=False, allow_infinity=False)
_plain = _text | _ints | _floats | st.booleans()
_values = (
    _plain
    | _hostile_text
    | _any_ints
    | st.floats()
    | st.binary(max_size=8)
    | st.none()
    | st.lists(_plain, max_size=3).map(tuple)
    | st.dictionaries(_text, _plain, max_size=2)
)
_keys = _text | st.sampled_from(["ts", "msg", "mt", "_otel", "lvl", "$int"]) | _hostile_text
_severities = st.none() | st.sampled_from(list(SeverityNumber))
_ids = st.sampled_from([0, 1, (1 << 64) - 1]) | st.integers(min_value=0, max_value=(1 << 64) - 1)


def records(values: st.SearchStrategy[Any], keys: st.SearchStrategy[str], bodies: Any) -> Any:
    return st.builds(
        make_record,
        timestamp=st.none() | st.integers(min_value=0, max_value=(1 << 63) - 1),
        observed=st.integers(min_value=0, max_value=(1 << 63) - 1),
        trace_id=st.integers(min_value=0, max_value=(1 << 128) - 1),
        span_id=_ids,
        trace_flags=st.integers(min_value=0, max_value=255),
        severity=_severities,
        severity_text=st.none() | _text,
        body=bodies,
        attributes=st.dictionaries(keys, values, max_size=6),
        event_name=st.none() | _text,
    )


def counting_encoder(mode: str, monkeypatch: pytest.MonkeyPatch) -> tuple[LineEncoder, list[int]]:
    """A LineEncoder whose Python path counts its calls (the C encoder hands records to it)."""
    calls = [0]
    python = LineEncoder.encode_python

    def counted(self: LineEncoder, *args: Any) -> Any:
        calls[0] += 1
        return python(self, *args)

    monkeypatch.setattr(LineEncoder, "encode_python", counted)
    return LineEncoder(mode), calls


def both(record: Any, mode: str, dropped: int | None = None) -> tuple[Any, Any]:
    """(Python item, C item) for one record; the C encoder has the tail cached."""
    python = LineEncoder(mode, speedups=False).encode(record, RESOURCE, SCOPE, dropped)
    encoder = LineEncoder(mode)
    encoder.encode(make_record(), RESOURCE, SCOPE)  # caches the tail
    return python, encoder.encode(record, RESOURCE, SCOPE, dropped)


@settings(max_examples=400, deadline=None)
@given(
    record=records(_values, _keys, _text | _hostile_text | _values),
    mode=st.sampled_from(["tree", "flat"]),
    dropped=st.none() | st.integers(min_value=0, max_value=10),
)
def test_same_bytes_as_python_for_any_record(record: Any, mode: str, dropped: int | None) -> None:
    python, fast = both(record, mode, dropped)
    assert fast == python


@settings(max_examples=300, deadline=None)
@given(record=records(_plain, _text.filter(lambda k: k not in _format.RESERVED_KEYS), _text))
def test_plain_records_never_reach_python(record: Any) -> None:
    """Str body, scalar attributes, normal keys, known severity: all in C, same bytes."""
    with pytest.MonkeyPatch.context() as mp:
        encoder, calls = counting_encoder("tree", mp)
    encoder.encode(make_record(), RESOURCE, SCOPE)  # caches the tail (in Python)
    calls[0] = 0
    item = encoder.encode(record, RESOURCE, SCOPE)
    assert calls[0] == 0
    assert item == LineEncoder(speedups=False).encode(record, RESOURCE, SCOPE)


@pytest.mark.parametrize(
    "attributes",
    [
        {"big": 1 << 64},
        {"nan": float("nan")},
        {"inf": float("-inf")},
        {"bytes": b"x"},
        {"seq": ("a", 1)},
        {"none": None},
        {"ts": 1},  # reserved
        {"k\ud800": 1},  # lone surrogate in a key
        {"k": "v\udfff"},  # and in a value
    ],
    ids=repr,
)
def test_odd_attributes_go_to_python_with_the_same_result(
    attributes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder, calls = counting_encoder("tree", monkeypatch)
    encoder.encode(make_record(), RESOURCE, SCOPE)
    assert calls[0] == 1  # the first (scope, resource) pair: Python serializes its tail
    record = make_record(attributes=attributes, severity=SeverityNumber.INFO)
    item = encoder.encode(record, RESOURCE, SCOPE)
    assert calls[0] == 2
    assert item == LineEncoder(speedups=False).encode(record, RESOURCE, SCOPE)


@pytest.mark.parametrize("field", ["trace_id", "span_id", "trace_flags"])
def test_an_id_whose_truth_changes_the_attributes_gives_the_python_bytes(field: str) -> None:
    """A hostile review, session 34: the C encoder asked the ids' and flags' truth after it
    had put the attributes in, the Python one before; an int subclass whose ``__bool__``
    adds an attribute gave other bytes in C."""
    from opentelemetry._logs import LogRecord

    attributes: dict[str, Any] = {"a": "x"}
    armed = [False]

    class Hostile(int):
        def __bool__(self) -> bool:
            if armed[0]:
                attributes["added"] = "by __bool__"
            return True

    def record() -> Any:
        ids: dict[str, Any] = {"trace_id": 0xABC, "span_id": 0x12, "trace_flags": 1}
        ids[field] = Hostile(ids[field])
        attributes.pop("added", None)
        return LogRecord(
            timestamp=TS,
            observed_timestamp=OBSERVED,
            severity_number=SeverityNumber.INFO,  # (the C path's common case)
            body="hello",
            attributes=attributes,
            **ids,
        )

    lines = []
    for speedups in (False, True):
        encoder = LineEncoder("tree", speedups=speedups)
        encoder.encode(record(), RESOURCE, SCOPE)  # (the tail cached)
        hostile = record()  # (made unarmed: the API's LogRecord asks the truth too)
        armed[0] = True
        lines.append(encoder.encode(hostile, RESOURCE, SCOPE)[3])
        armed[0] = False
    assert lines[1] == lines[0]


def test_float_text_is_orjsons() -> None:
    """Floats go through one orjson call per line: exponents and edges as orjson writes them."""
    values = [0.0, -0.0, 1e-7, 1e-5, 1e16, 1e22, 5e-324, 1.7976931348623157e308, 12.5, 1 / 3]
    record = make_record(attributes={f"f{i}": v for i, v in enumerate(values)})
    python, fast = both(record, "tree")
    assert fast == python
    for i, v in enumerate(values):
        assert b'"f%d":%s' % (i, _format.orjson.dumps(v)) in fast[3]


_SPECIALS = ['"', "\\", "\n", "\x00", "\x1f", "\x7f", "\x85", "\u2028", "é", "😀"]


@pytest.mark.parametrize("special", _SPECIALS, ids=repr)
def test_a_character_to_escape_is_found_at_any_place(special: str) -> None:
    """Strings are scanned eight bytes at a time: a special character in any byte of a
    word, in the tail after the last word, or in a key, is escaped as Python escapes it."""
    for place in range(20):
        text = "a" * place + special + "b" * (19 - place)
        record = make_record(body=text, attributes={"k": text, text: 1, "short": special})
        python, fast = both(record, "tree")
        assert fast == python, place


def test_keys_like_a_reserved_one_stay_in_c(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reserved-key filter only lets a key through to the set lookup; the set decides."""
    encoder, calls = counting_encoder("tree", monkeypatch)
    encoder.encode(make_record(), RESOURCE, SCOPE)  # caches the tail (in Python)
    # Each shares its first character and/or its length with a reserved key.
    near = {"duration_ms": 1, "mtx": 2, "m": 3, "Ts": 4, "_otel_": 5, "tsx": 6}
    record = make_record(attributes=near)
    item = encoder.encode(record, RESOURCE, SCOPE)
    assert calls[0] == 1, "none of them is reserved"
    assert item == LineEncoder(speedups=False).encode(record, RESOURCE, SCOPE)
    for key in sorted(_format.RESERVED_KEYS):
        item = encoder.encode(make_record(attributes={key: 1}), RESOURCE, SCOPE)
        assert b'"attributes":{"%s":1}' % key.encode() in item[3], key


@pytest.mark.parametrize("odd", ["", "k" * 64, "ключ"], ids=["empty", "64 chars", "non-ASCII"])
def test_reserved_keys_the_filter_cannot_hold(odd: str) -> None:
    """A reserved key outside the filter's table (empty, 64+ characters, non-ASCII) turns
    the filter off for that encoder: every key is looked up, and the odd one is caught."""
    from logxpy_otel import _speedups

    python = LineEncoder(speedups=False)
    fast = _speedups.FastEncoder(
        tails=python._tails,
        dumps=_format.orjson.dumps,
        reserved=frozenset({*_format.RESERVED_KEYS, odd}),
        bounded=_format.BoundedAttributes,
        record_type=_format.LogRecord,
        severities=[(m, m.value, _format.severity_bucket(m.value)) for m in SeverityNumber],
        fallback=lambda *args: ("python", *args),
        flat=False,
    )
    python.encode(make_record(), RESOURCE, SCOPE)  # caches the tail
    assert fast.encode(make_record(attributes={"plain": 1}), RESOURCE, SCOPE)[0] != "python"
    assert fast.encode(make_record(attributes={odd: 1}), RESOURCE, SCOPE)[0] == "python"


@pytest.mark.parametrize("count", [63, 64, 65, 200])
def test_many_floats(count: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C encoder holds up to 64 float attributes a line (its ts is written apart); a
    record with more goes to the Python encoder. Same bytes either way."""
    encoder, calls = counting_encoder("tree", monkeypatch)
    encoder.encode(make_record(), RESOURCE, SCOPE)  # caches the tail (in Python)
    record = make_record(attributes={f"f{i}": i + 0.5 for i in range(count)})
    item = encoder.encode(record, RESOURCE, SCOPE)
    assert calls[0] == (1 if count <= 64 else 2)
    assert item == LineEncoder(speedups=False).encode(record, RESOURCE, SCOPE)


def test_many_long_values_grow_the_buffer() -> None:
    attributes = {f"k{i}": "\x01\u2028" * 5_000 for i in range(8)}  # escapes: 6 bytes out per char
    python, fast = both(make_record(body="\n" * 10_000, attributes=attributes), "tree")
    assert fast == python
    assert len(fast[3]) > 8 * 5_000 * 12


def test_no_memory_kept_per_record() -> None:
    """50,000 records through the C path and its hand-overs to Python leave nothing behind."""
    encoder = LineEncoder()
    plain = make_record(trace_id=5, span_id=7, attributes={"a": "x", "n": 1, "f": 2.5, "b": True})
    odd = make_record(trace_id=5, span_id=7, attributes={"a": "x", "nan": float("nan")})
    flat = LineEncoder("flat")
    for e in (encoder, flat):
        e.encode(plain, RESOURCE, SCOPE)

    def run(n: int) -> None:
        for _ in range(n):
            encoder.encode(plain, RESOURCE, SCOPE)
            encoder.encode(odd, RESOURCE, SCOPE)
            flat.encode(plain, RESOURCE, SCOPE, 3)

    run(1_000)
    grown = memory_kept(run, 50_000)
    assert grown < 64 * 1024, f"{grown} bytes kept after 150,000 encodes"


def test_pure_python_switch() -> None:
    """LOGXPY_OTEL_PURE_PYTHON=1 turns the C encoder off; lines are the same."""
    code = (
        "from logxpy_otel import _format; from test_format import make_record;"
        "e = _format.LineEncoder(); e.encode(make_record());"
        "item = e.encode(make_record()); print(_format.SPEEDUPS, (item[3] + item[4]).decode())"
    )
    env = {**os.environ, "LOGXPY_OTEL_PURE_PYTHON": "1", "PYTHONPATH": os.path.dirname(__file__)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    flag, line = out.stdout.strip().split(" ", 1)
    assert flag == "False"
    python = LineEncoder(speedups=False).encode(make_record())
    assert line.encode() == python[3] + python[4]


def test_encode_takes_one_to_four_arguments() -> None:
    encoder = LineEncoder()
    with pytest.raises(TypeError):
        encoder.encode()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        encoder.encode(make_record(), None, None, 0, 1)  # type: ignore[call-arg]
    record = make_record(timestamp=TS, observed=OBSERVED)
    assert encoder.encode(record) == LineEncoder(speedups=False).encode(record)


# --- the numbering loop ---------------------------------------------------------------------

_batches = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from(["t1", "t2", "t3", "t4", None]),
            st.booleans(),
        ),
        max_size=12,
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(batches=_batches, max_open=st.integers(min_value=1, max_value=3), idle=st.booleans())
def test_numbering_same_lines_as_python(
    batches: list[list[tuple[Any, bool]]], max_open: int, idle: bool
) -> None:
    """Batches of interleaved traces, evictions, idle closes: the C loop writes the Python loop's lines."""
    now = [0.0]
    fast = TreeNumberer(max_open=max_open, idle_timeout_s=1.5, clock=lambda: now[0])
    slow = TreeNumberer(max_open=max_open, idle_timeout_s=1.5, clock=lambda: now[0], speedups=False)
    slow._task_head = fast._task_head  # the per-process random token
    slow._trace_token = fast._trace_token
    ts = 0.0
    for batch in batches:
        items = []
        for trace, failed in batch:
            ts += 0.5
            tid = None if trace is None else trace * 8
            body = b'"ts":%s,"n":%d' % (_format.orjson.dumps(ts), len(items))
            items.append((tid, ts, failed, body, b"}", None, None))
        out_fast: list[bytes] = []
        out_slow: list[bytes] = []
        fast.number(items, out_fast)
        slow.number(items, out_slow)
        now[0] += 1.0
        if idle:
            fast.close_idle(out_fast)
            slow.close_idle(out_slow)
        assert b"".join(out_fast) == b"".join(out_slow)
        assert fast._state() == slow._state()
    end_fast: list[bytes] = []
    end_slow: list[bytes] = []
    fast.close_all(end_fast)
    slow.close_all(end_slow)
    assert b"".join(end_fast) == b"".join(end_slow)


def test_numbering_rejects_what_is_not_a_line_item() -> None:
    numberer = TreeNumberer()
    with pytest.raises(TypeError):
        numberer.number([("t", 1.0, False, "not bytes")], [])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        numberer.number([("t", 1.0)], [])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        numberer.number([("t", 1.0, False, b"}")], [])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        numberer.number([("t", 1.0, False, b"", "} not bytes")], [])  # type: ignore[list-item]


def test_numbering_many_structure_lines_in_one_batch() -> None:
    """Hundreds of traces opened (and evicted) in one batch: the batch buffer grows, lines match."""
    now = 100.0
    fast = TreeNumberer(max_open=7, clock=lambda: now)
    slow = TreeNumberer(max_open=7, clock=lambda: now, speedups=False)
    slow._task_head = fast._task_head
    slow._trace_token = fast._trace_token
    items = [(f"{i % 300:032x}", float(i), i % 5 == 0, b'"n":%d' % i, b"}", None, None) for i in range(2_000)]
    items += [(None, 1.0, False, b'"x":1}', b"", None, None)] * 50
    out_fast: list[bytes] = []
    out_slow: list[bytes] = []
    fast.number(items, out_fast)
    slow.number(items, out_slow)
    assert len(out_fast) == 1, "one bytes per batch"
    assert out_fast[0] == b"".join(out_slow)
    assert out_fast[0].count(b'"st":"started"') == 2_000


# --- hardening (found in review: each of these crashed or differed before) -----------------------


@pytest.mark.parametrize("change", ["more floats", "fewer floats"])
def test_attributes_changed_by_a_gc_callback_mid_encode(change: str) -> None:
    """Python code (here a GC callback) that changes the attributes while the C encoder
    works on them: no crash, no stray bytes, one valid line with the attributes as they
    were before or after the change (3.11 collects inside the encoder; 3.12+ only after)."""
    attrs: dict[str, Any] = {f"f{i}": i + 0.5 for i in range(25)}
    attrs.update({f"s{i}": "v" for i in range(200)})
    record = make_record(attributes=None)
    record.attributes = attrs
    encoder = LineEncoder()
    encoder.encode(record, RESOURCE, SCOPE)  # caches the tail
    armed = [True]

    def mutate(phase: str, info: dict[str, Any]) -> None:
        if armed[0] and phase == "start":
            armed[0] = False
            if change == "more floats":
                attrs.update({f"s{i}": 1.25 for i in range(200)})
            else:
                attrs.update({f"f{i}": "x" for i in range(25)})

    before = dict(attrs)
    gc.collect()
    threshold = gc.get_threshold()
    gc.callbacks.append(mutate)
    gc.set_threshold(1)
    try:
        _, _, _, body, tail, _, _ = encoder.encode(record, RESOURCE, SCOPE)
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(mutate)
    line = _format.orjson.loads(b"{" + body + tail)
    written = {k: line[k] for k in attrs}
    assert written in (before, attrs)


def test_objects_not_set_up_raise_instead_of_crashing() -> None:
    from logxpy_otel import _speedups

    with pytest.raises(RuntimeError):
        _speedups.FastEncoder.__new__(_speedups.FastEncoder).encode(make_record())
    with pytest.raises(RuntimeError):
        _speedups.Emitter.__new__(_speedups.Emitter).emit(object())
    with pytest.raises(RuntimeError):
        _speedups.Emitter.__new__(_speedups.Emitter).span_end(object())
    with pytest.raises(RuntimeError):
        _speedups.SpanEncoder.__new__(_speedups.SpanEncoder).start(object())
    bare = _speedups.Forest.__new__(_speedups.Forest)
    with pytest.raises(RuntimeError):
        bare.number([("t" * 32, 1.0, False, b"", b"", None, _format.SpanStart(None))], [], 0.0, 8)
    for call in (bare.close_all, bare.restart):
        with pytest.raises(RuntimeError):
            call([])
    with pytest.raises(RuntimeError):
        bare.close_idle([], 1.0)
    with pytest.raises(RuntimeError):
        bare.state()
    assert bare.open_traces == 0
    forest = TreeNumberer()._forest
    with pytest.raises(RuntimeError, match="already"):
        forest.__init__(b"~T", b"{", 1, 1.0, 1, _format.SpanStart, _format.SpanEnd, _format.orjson.dumps)
    encoder = LineEncoder()
    with pytest.raises(RuntimeError):
        encoder.fast_encoder.__init__(
            tails={},
            dumps=_format.orjson.dumps,
            reserved=frozenset(),
            bounded=dict,
            record_type=object,
            severities=[],
            fallback=print,
            flat=False,
        )


def test_bool_trace_flags_as_python_writes_them() -> None:
    """As their number (JSON ``true`` made the reader refuse the line: session 35)."""
    record = make_record(trace_id=5, span_id=7)
    record.trace_flags = True  # type: ignore[assignment]
    python, fast = both(record, "flat")
    assert fast == python and b'"trace_flags":1,' in fast[3]


def test_numbering_a_truthy_failed_flag_fails_the_trace() -> None:
    out_fast: list[bytes] = []
    out_slow: list[bytes] = []
    fast, slow = TreeNumberer(), TreeNumberer(speedups=False)
    slow._trace_token = fast._trace_token
    items = [("t" * 32, 1.0, 1, b'"n":1}', b"", None, None)]  # an int, not a bool
    fast.number(items, out_fast)  # type: ignore[arg-type]
    slow.number(items, out_slow)  # type: ignore[arg-type]
    fast.close_all(out_fast)
    slow.close_all(out_slow)
    assert b'"st":"failed"' in out_fast[-1] and out_fast[-1] == out_slow[-1]


def test_a_scope_name_that_raises_keyboard_interrupt_propagates() -> None:
    """As from Python code: only AttributeError means "no name"; Ctrl-C goes on."""
    import contextvars

    from logxpy_otel import _speedups

    class Scope:
        @property
        def name(self) -> str:
            raise KeyboardInterrupt

    class Record:
        instrumentation_scope = Scope()
        log_record = make_record()
        resource = None

    queued: list[Any] = []
    emitter = _speedups.Emitter(
        encoder=LineEncoder().fast_encoder,
        lane=[None],
        enqueue=queued.append,
        sync=contextvars.ContextVar("sync", default=False),
        own=lambda: None,
        fault=lambda exc: None,
        noted=[],
        noted_aside=lambda: None,
        settle_noted=lambda outer: None,
    )
    with pytest.raises(KeyboardInterrupt):
        emitter.emit(Record())
    assert queued == []


def test_the_c_pieces_declare_the_names_the_python_side_uses() -> None:
    """The C on_emit reads the writer's lane by position: it declares those names, and is
    used only where they match (a change on one side turns the C piece off instead of
    making it wrong)."""
    from logxpy_otel import _speedups, processor
    from logxpy_otel._diagnostics import LOGGER_NAME
    from logxpy_otel._queue import Lane

    assert Lane._fields == _speedups.LANE_FIELDS
    assert _speedups.OWN_LOGGER == LOGGER_NAME
    # They match, so the C pieces are in use (where the C encoder is: this module's premise).
    assert processor._Emitter is _speedups.Emitter
    assert isinstance(TreeNumberer()._forest, _speedups.Forest)


_EDGE_IDS = [
    0,
    1,
    (1 << 63) - 1,
    1 << 63,
    (1 << 64) - 1,
    1 << 64,
    1 << 127,
    (1 << 128) - 1,
    1 << 128,
    -1,
    -(1 << 64),
]


@pytest.mark.parametrize("trace_id", _EDGE_IDS)
@pytest.mark.parametrize("span_id", [*_EDGE_IDS[:7], -1])
def test_ids_at_the_edges_of_64_and_128_bits_as_python_writes_them(trace_id: int, span_id: int) -> None:
    """The C hex of an id (no format() call) gives what format(id, "032x"/"016x") gives,
    and an id that does not fit is tagged as the Python encoder tags it."""
    record = make_record(trace_id=trace_id, span_id=span_id)
    assert LineEncoder().encode(record, RESOURCE, SCOPE) == LineEncoder(speedups=False).encode(
        record, RESOURCE, SCOPE
    )
    flat = LineEncoder("flat").encode(record, RESOURCE, SCOPE)
    assert flat == LineEncoder("flat", speedups=False).encode(record, RESOURCE, SCOPE)


def test_the_c_numbering_loop_and_span_encoder_are_in_use_where_built() -> None:
    """Each C piece is used only where the names it is coupled to match (LANE_FIELDS): a
    change on either side turns it off rather than wrong. This says when that happened,
    so that it is a decision and not a slowdown nobody saw."""
    from logxpy_otel import _span_format, _trees, processor

    assert _trees._Forest is not None, "the trees as C data are not in use"
    assert _span_format._CSpanEncoder is not None
    assert processor._Emitter is not None, "LANE_FIELDS or OWN_LOGGER no longer match"


def _run_alone(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter: a crash there is a failed test, not a dead suite."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_a_long_chain_of_actions_is_freed_without_a_frame_per_link() -> None:
    """One span id started 20,000 times while open (an id generator that repeats): each start
    keeps the one before; freeing the trace freed that chain one C frame per link and
    overflowed a 128 KiB thread stack (musl's default)."""
    done = _run_alone(
        """
import threading
from logxpy_otel._format import SpanStart
from logxpy_otel._trees import TreeNumberer
numberer = TreeNumberer()
item = ("ab" * 16, 1.0, False, b'"x":1', b"}", "00000000000000aa", SpanStart(None))
def run():
    for _ in range(20):
        numberer.number([item] * 1000, [])
    numberer.close_all([])
    print("closed")
threading.stack_size(128 * 1024)
thread = threading.Thread(target=run)
thread.start()
thread.join()
"""
    )
    assert done.returncode == 0 and done.stdout.strip() == "closed", done.stderr[-2000:]


def test_the_c_on_start_takes_its_arguments_as_the_python_method_does(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from logxpy_otel import LogxpyLogRecordProcessor

    logs = LogxpyLogRecordProcessor(tmp_path / "kw.jsonl")
    spans = logs.span_processor()
    assert "on_start" in vars(spans)
    span = TracerProvider(shutdown_on_exit=False).get_tracer("t").start_span("by keyword")
    spans.on_start(span=span)
    spans.on_start(span, parent_context=None)
    with pytest.raises(TypeError):
        spans.on_start(span, unknown=1)  # as the Python method raises
    with pytest.raises(TypeError):
        spans.on_start()
    spans.shutdown()
    logs.shutdown()
    text = (tmp_path / "kw.jsonl").read_text()
    assert text.count('"at":"by keyword","st":"started"') == 2


def test_a_kind_name_the_span_encoder_would_write_unescaped_is_refused() -> None:
    """Kind names go into a line as they are, between quotes, as severities' do: one with
    a character to escape is refused when the encoder is made, never written broken."""
    from opentelemetry.trace import SpanKind

    from logxpy_otel import _speedups
    from logxpy_otel._span_format import SpanEncoder

    made = SpanEncoder(LineEncoder().tail_for).fast
    assert made is not None
    with pytest.raises(ValueError, match="kinds: a name must be ASCII with nothing to escape"):
        _speedups.SpanEncoder(
            tails=print,
            dumps=_format.orjson.dumps,
            reserved=frozenset(),
            span_types=(),
            context_type=tuple,
            empty_state=None,
            bounded=dict,
            bounded_list=list,
            kinds=[(SpanKind.SERVER, 1, 'ser"ver')],
            internal=SpanKind.INTERNAL,
            status_codes=(0, 1, 2),
            roles=(tuple, tuple),
            fallback_start=print,
            fallback_end=print,
            names={},
            aside={},
            max_names=1,
            status_type=object,
        )


# ---- floats written without orjson (_cjson.h put_float_text) -------------------------

_float_texts = (
    st.floats(min_value=1.0, max_value=2.0**52, exclude_max=True)
    | st.integers(min_value=10**18, max_value=4 * 10**18).map(lambda ns: ns / 1e9)  # times
    | st.integers(min_value=1, max_value=10**15).flatmap(
        lambda n: st.integers(min_value=0, max_value=15).map(lambda e: n / 10**e)  # few digits
    )
    | st.integers(min_value=0, max_value=52).map(lambda e: 2.0**e)  # narrower interval below
    | st.floats(allow_nan=True, allow_infinity=True)
)


@settings(max_examples=3000, deadline=None)
@given(value=_float_texts, negative=st.booleans())
def test_a_float_is_written_as_orjson_writes_it_or_left_to_orjson(value: float, negative: bool) -> None:
    """The shortest text that reads back as the float, the nearest of those, as orjson's."""
    from logxpy_otel import _speedups

    value = -value if negative else value
    text = _speedups.float_text(value)
    if text is None:  # another magnitude (orjson writes it), or a tie or an edge
        assert not 1.0 <= abs(value) < 2.0**52 or len(repr(value)) >= 17
    else:
        assert text == orjson.dumps(value)
        assert float(text) == value


def test_times_in_seconds_are_written_without_orjson() -> None:
    """Every time of a nanosecond clock over a year (a spread sample): all but a few in C."""
    from logxpy_otel import _speedups

    times = [(1_700_000_000_000_000_000 + k * 3_155_692_597_003) / 1e9 for k in range(10_000)]
    texts = [_speedups.float_text(t) for t in times]
    assert sum(text is None for text in texts) <= 5
    assert all(text == orjson.dumps(t) for t, text in zip(times, texts, strict=True) if text is not None)


# --- the trees as C data (_speedups.Forest) -------------------------------------------------------


def _forest(end_type: type = _format.SpanEnd, dumps: Any = orjson.dumps) -> Any:
    from logxpy_otel import _speedups

    return _speedups.Forest(b"~T", b'{"tid":"T.', 1000, 5.0, 32, _format.SpanStart, end_type, dumps)


def _end_item(role: Any, ts: float = 2.0) -> tuple[Any, ...]:
    return ("ab" * 16, ts, False, b'"ts":2.0,"at":"x","st":"succeeded"', b"}", "0" * 15 + "1", role)


def test_a_forest_called_again_from_inside_a_call_refuses_and_stays_whole() -> None:
    """A callback (here a span end's start line) that reaches the same forest again, as a
    signal handler that logs in sync mode could: RuntimeError, never a change of the
    state under the running call; the forest works after it."""

    class Reentrant(_format.SpanEnd):  # (a subclass: only the forest's own tests use one)
        __slots__ = ()

        def start_body(self) -> bytes:
            forest.number([("cd" * 16, 1.0, False, b'"x":1', b"}", None, None)], [], 1.0, 8)
            return super().start_body()

    forest = _forest(Reentrant)
    with pytest.raises(RuntimeError, match="called again"):
        forest.number([_end_item(Reentrant(None, "s", 1.0))], [], 1.0, 8)
    out: list[bytes] = []
    forest.number([("ef" * 16, 3.0, False, b'"x":1', b"}", None, None)], out, 2.0, 8)
    forest.close_all(out)
    lines = [orjson.loads(line) for line in b"".join(out).splitlines()]
    assert [line["lvl"] for line in lines if line["tid"].startswith("ef")] == [[1], [2], [3]]


def test_a_failing_float_text_raises_and_leaves_the_forest_usable() -> None:
    """A ts the C float text declines (below 1 s) goes to ``dumps``; an error there is the
    call's error, and the next call works."""
    calls: list[float] = []

    def dumps(value: Any) -> bytes:
        calls.append(value)
        if len(calls) == 1:
            raise ValueError("no text")
        return orjson.dumps(value)

    forest = _forest(dumps=dumps)
    item = ("ab" * 16, 0.5, False, b'"x":1', b"}", None, None)
    with pytest.raises(ValueError, match="no text"):
        forest.number([item], [], 1.0, 8)
    out: list[bytes] = []
    forest.close_all(out)
    forest.number([item], out, 1.0, 8)
    assert b'"ts":0.5,"at":"otel:trace","st":"started"' in b"".join(out)


@pytest.mark.parametrize("where", [0, 5])
@pytest.mark.parametrize("odd", ["é" * 32, "\ud800", b"ab" * 16])
def test_ids_that_are_not_ascii_str_are_refused_before_anything_is_numbered(where: int, odd: Any) -> None:
    """A trace or span id that is not an ASCII str (the encoders write hex): a TypeError
    from both paths, and no trace changed."""
    for numberer in (TreeNumberer(), TreeNumberer(speedups=False)):
        numberer.number([("ab" * 16, 1.0, False, b'"x":1', b"}", None, None)], [])
        before = numberer._state()
        item: list[Any] = ["cd" * 16, 2.0, False, b'"x":2', b"}", None, None]
        item[where] = odd
        with pytest.raises(TypeError):
            numberer.number([("ab" * 16, 1.5, False, b'"y":1', b"}", None, None), tuple(item)], [])
        assert numberer._state() == before


def test_python_code_that_empties_the_batch_while_it_is_read_cannot_free_its_items() -> None:
    """A ``failed`` flag's ``__bool__``, or a span end's start time's ``__float__`` (run by the
    start line's callback), that clears the batch list: the forest read freed items
    (hostile review, session 29: a segfault, and garbage in the lines under ASan). It
    numbers the batch it was given, as the Python loop does."""
    done = _run_alone(
        """
from logxpy_otel._format import SpanEnd
from logxpy_otel._trees import TreeNumberer
for speedups in (True, False):
    batch = []
    class Failed:
        def __bool__(self):
            batch.clear()
            return True
    class Late:
        def __float__(self):
            batch.clear()
            return 1.0
    batch += [("a" * 32, 1.0, Failed(), b'"x":1', b"}", None, None)]
    batch += [("b" * 32, 2.0, False, b'"x":%d' % n * 50, b"}", "s" * 16, None) for n in range(5)]
    out = []
    TreeNumberer(speedups=speedups).number(batch, out)
    lines = b"".join(out).splitlines()
    batch += [("t" * 32, 1.0, False, b'"ts":1.0', b"}", "1" * 16, SpanEnd(None, "n", Late()))]
    for n in range(5):
        batch.append(("u" * 32, 2.0, False, b'"x":%d' % n * 50, b"}", "2" * 16, SpanEnd(None, "m", 1.5)))
    more = []
    TreeNumberer(speedups=speedups).number(batch, more)
    print(len(lines), len(b"".join(more).splitlines()), b"".join(out + more).count(b'"x":4'))
"""
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\\n")[0] == done.stdout.split("\\n")[1] if False else True
    fast, slow = done.stdout.splitlines()
    assert fast == slow, done.stdout
