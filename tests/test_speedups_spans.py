"""The C span encoder (``_speedups``): the Python span encoder's items, the common span in C, no leaks.

``SpanEncoder(tails)`` runs the C ``start``/``end`` where built; ``SpanEncoder(tails,
speedups=False)`` always the Python ones (``_start``/``_end``). Every span here, real SDK
spans made by a real ``TracerProvider``, goes through both, and the two
:data:`~logxpy_otel._format.LineItem` s must be the same: each field of the same type and
value (``ts`` a plain float, bit for bit), the role of the same class with the same slots.
The Python item is also checked on its own (one JSON line, its fields agreeing with the
span), so these tests say something before the C version exists too.

Each span is encoded by the Python encoder first, so that the shared end of its line
(``tails``, cached per scope and resource) is one the Python code made.
"""

from __future__ import annotations

import gc
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import orjson
import pytest
from _helpers import any_char, clean, memory_kept
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider, _Span
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TraceState,
    get_current_span,
    set_span_in_context,
)

from logxpy_otel import _native, _span_format
from logxpy_otel._format import RESERVED_KEYS, LineEncoder, LineItem, LineMode, SpanEnd, SpanStart
from logxpy_otel._span_format import SpanEncoder

#: The real tails: a log encoder's cache, as the span processor uses it (span_processor.py).
TAILS = LineEncoder(LineMode.TREE).tail_for
RESOURCES = (
    Resource({"service.name": "shop"}),
    Resource({"service.name": "shop\u2028\ud800", "n": 1 << 70, "f": math.nan}, "https://s/1"),
)
SCOPE = InstrumentationScope("app", "1.0")
FIELDS = ("trace_hex", "ts", "failed", "body", "tail", "span_hex", "role")
_SEPARATORS = ("\x85", "\u2028", "\u2029")


def c_span_encoder() -> Any:
    """``_speedups.SpanEncoder``, or None where the C module is not in use or has none (yet)."""
    try:
        return _native.speedup("SpanEncoder")
    except AttributeError:  # built, but without a SpanEncoder
        return None


# --- comparing items ---------------------------------------------------------------------------


def same_float(a: object, b: object) -> bool:
    return type(a) is float and type(b) is float and a.hex() == b.hex()


def assert_same(fast: LineItem | None, python: LineItem | None, what: str) -> None:
    """``fast`` is ``python``: None for None; else each field of the same type and value, the
    floats bit for bit, the role of the same class with equal slots (of the same types)."""
    if python is None:
        assert fast is None, what
        return
    assert fast is not None, what
    assert type(fast) is tuple and len(fast) == 7, (what, fast)
    for field, f, p in zip(FIELDS[:6], fast[:6], python[:6], strict=True):
        assert type(f) is type(p) and f == p, (what, field, f, p)
    assert same_float(fast[1], python[1]), (what, fast[1], python[1])
    fast_role, python_role = fast[6], python[6]
    assert isinstance(python_role, SpanStart | SpanEnd), (what, python_role)
    assert type(fast_role) is type(python_role), (what, fast_role, python_role)
    for slot in type(python_role).__slots__:
        f, p = getattr(fast_role, slot), getattr(python_role, slot)
        assert type(f) is type(p) and f == p, (what, slot, f, p)
        if type(p) is float:
            assert same_float(f, p), (what, slot, f, p)


def check_python_item(item: LineItem | None, span: ReadableSpan, role: type[SpanStart | SpanEnd]) -> None:
    """The Python encoder's item on its own: one JSON object on one line, agreeing with ``span``."""
    context = span.context
    assert context is not None
    if item is None:  # only for ids OTel cannot carry
        assert not (0 < context.trace_id < 1 << 128 and 0 < context.span_id < 1 << 64), span
        return
    trace_hex, ts, failed, body, tail, span_hex, item_role = item
    assert type(body) is bytes and type(tail) is bytes
    raw = b"{" + body + tail
    text = raw.decode("utf-8")  # lone surrogates were replaced
    assert "\n" not in text and "\r" not in text and not any(sep in text for sep in _SEPARATORS)
    line = orjson.loads(raw)
    otel = line["_otel"]
    assert trace_hex == f"{context.trace_id:032x}"
    assert span_hex == otel["span_id"] == f"{context.span_id:016x}"
    assert type(ts) is float and line["ts"] == ts
    assert type(line["at"]) is str
    assert "scope" in otel and "resource" in otel
    parent = span.parent
    expected_parent = f"{parent.span_id:016x}" if parent is not None and parent.span_id else None
    if expected_parent is not None and (len(expected_parent) != 16 or expected_parent[0] == "-"):
        expected_parent = None  # a parent id OTel cannot carry is left out
    assert type(item_role) is role
    assert item_role.parent == otel.get("parent_span_id") == expected_parent
    assert otel.get("parent_is_remote", False) is bool(expected_parent and parent and parent.is_remote)
    assert otel.get("kind", 0) == span.kind.value
    if isinstance(item_role, SpanStart):
        assert line["st"] == "started" and failed is False
    else:
        assert isinstance(item_role, SpanEnd)
        assert failed is (span.status.status_code is StatusCode.ERROR)
        assert line["st"] == ("failed" if failed else "succeeded")
        assert type(item_role.name) is str and clean(item_role.name) == line["at"]
        assert type(item_role.start_ts) is float


# --- capturing real spans ----------------------------------------------------------------------


class Captured:
    """One encoding of one span: ``(what, span, role, python item, C item)``."""

    __slots__ = ("fast", "python", "role", "span", "what")

    def __init__(
        self, what: str, span: ReadableSpan, role: type[SpanStart | SpanEnd], python: Any, fast: Any
    ) -> None:
        self.what, self.span, self.role, self.python, self.fast = what, span, role, python, fast


class Capture(SpanProcessor):
    """Encodes each span as the span processor does (start in ``on_start``, end in ``on_end``)
    with both encoders, the Python one first; keeps the spans for later encodings too."""

    def __init__(self, python: SpanEncoder, fast: SpanEncoder) -> None:
        self.python, self.fast = python, fast
        self.spans: list[ReadableSpan] = []
        self.items: list[Captured] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.spans.append(span)
        python = self.python.start(span)
        self.items.append(Captured("on_start", span, SpanStart, python, self.fast.start(span)))

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)
        python = self.python.end(span)
        self.items.append(Captured("on_end", span, SpanEnd, python, self.fast.end(span)))

    def again(self, spans: Sequence[ReadableSpan]) -> Iterator[Captured]:
        """Every span encoded again as it is now (started or not, ended or not)."""
        for span in spans:
            python = self.python.start(span)
            yield Captured("start later", span, SpanStart, python, self.fast.start(span))
            python = self.python.end(span)
            yield Captured("end later", span, SpanEnd, python, self.fast.end(span))


class Ids(IdGenerator):
    """Ids from fixed lists, in turn (hypothesis replays an example with the same ids)."""

    def __init__(self, trace_ids: Sequence[int], span_ids: Sequence[int], random: bool = False) -> None:
        self._trace_ids, self._span_ids, self._random = list(trace_ids), list(span_ids), random
        self._t = self._s = 0

    def generate_trace_id(self) -> int:
        self._t += 1
        return self._trace_ids[self._t % len(self._trace_ids)]

    def generate_span_id(self) -> int:
        self._s += 1
        return self._span_ids[self._s % len(self._span_ids)]

    def is_trace_id_random(self) -> bool:
        return self._random


class ScriptedSampler(Sampler):
    """Records every span; sampled (trace flag 1) or not, with the trace state set here (else
    the parent's), as the test says before each span."""

    def __init__(self) -> None:
        self.decision = Decision.RECORD_AND_SAMPLE
        self.trace_state: TraceState | None = None

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        state = self.trace_state
        if state is None:
            state = get_current_span(parent_context).get_span_context().trace_state
        return SamplingResult(self.decision, attributes, state)

    def get_description(self) -> str:
        return "ScriptedSampler"


class Harness:
    """A tracer provider whose spans both encoders see (through :class:`Capture`)."""

    def __init__(
        self,
        *,
        limits: SpanLimits | None = None,
        ids: IdGenerator | None = None,
        resource: Resource = RESOURCES[0],
        python: SpanEncoder | None = None,
        fast: SpanEncoder | None = None,
    ) -> None:
        self.limits = limits or SpanLimits()
        self.sampler = ScriptedSampler()
        self.provider = TracerProvider(
            resource=resource,
            sampler=self.sampler,
            span_limits=self.limits,
            id_generator=ids,
            shutdown_on_exit=False,
        )
        self.capture = Capture(
            python or SpanEncoder(TAILS, speedups=False), fast if fast is not None else SpanEncoder(TAILS)
        )
        self.provider.add_span_processor(self.capture)
        self.tracer: Tracer = self.provider.get_tracer("app", "1.0")
        self.unstarted: list[ReadableSpan] = []

    def span(self, name: Any = "work", **options: Any) -> Span:
        span = self.tracer.start_span(name, **options)
        assert isinstance(span, Span)
        return span

    def unstarted_span(self, name: Any, context: SpanContext, **options: Any) -> Span:
        """A span built but never started: no processor hears of it."""
        span = _Span(
            name,
            context,
            resource=self.provider.resource,
            limits=self.limits,
            instrumentation_scope=SCOPE,
            **options,
        )
        self.unstarted.append(span)
        return span

    def all_items(self) -> list[Captured]:
        """What the processor encoded, then every span (and the unstarted ones) again."""
        return [*self.capture.items, *self.capture.again([*self.capture.spans, *self.unstarted])]

    def check(self) -> list[Captured]:
        """Every encoding: the Python item checked, the C item the same; returns them."""
        items = self.all_items()
        for n, c in enumerate(items):
            what = f"#{n} {c.what} of {c.span!r}"
            check_python_item(c.python, c.span, c.role)
            assert_same(c.fast, c.python, what)
        return items


# --- what spans are made of (hypothesis) -------------------------------------------------------

_SPECIALS = '"\\\n\r\t\x00\x1f\x7f\x85\u2028\u2029é€😀'
_text = st.text(st.characters(codec="utf-8") | st.sampled_from(_SPECIALS), max_size=10)
_hostile_text = st.lists(any_char, max_size=6).map("".join)  # lone surrogates (st.text drops them)
_names: st.SearchStrategy[Any] = (
    _text
    | _hostile_text
    | st.sampled_from(["", "GET /users/{id}", "otel:trace", "span.kind"])
    | st.sampled_from([None, 42, 1.5, b"bytes", LineMode.TREE])  # what a buggy instrumentation passes
)
_keys = (
    _text.filter(bool)
    | st.sampled_from(sorted(RESERVED_KEYS))
    | st.sampled_from(["span.kind", "$int", "$float", "Ts", "_otel_", "http.method", "k"])
    | _hostile_text.filter(bool)
)
_ints = st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
_wide_ints = st.sampled_from([1 << 64, -(1 << 63) - 1, 1 << 200, -(1 << 100)]) | st.integers()
_floats = st.floats() | st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1e16])
_scalars = _text | _hostile_text | st.booleans() | _ints | _wide_ints | _floats
_values: st.SearchStrategy[Any] = st.one_of(
    _scalars,
    # homogeneous sequences, as the spec has them
    st.lists(_text, max_size=3).map(tuple),
    st.lists(st.booleans(), max_size=3),
    st.lists(_ints | _wide_ints, max_size=3).map(tuple),
    st.lists(_floats, max_size=3),
    # and what the SDK takes beyond them (it stores them as given, sequences as tuples)
    st.none(),
    st.binary(max_size=6),
    st.lists(_scalars | st.none(), max_size=3),
    st.dictionaries(_text.filter(bool), _scalars, max_size=2),
)
_attributes = st.dictionaries(_keys, _values, max_size=5)
_times: st.SearchStrategy[int | None] = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=(1 << 63) - 1),
    st.sampled_from(
        [0, 1, 1_700_000_000_123_456_789, (1 << 63) - 1, (1 << 64) - 1, 1 << 64, 1 << 70, -1, -(1 << 63) - 1]
    ),
)
_trace_states = st.dictionaries(
    st.sampled_from(["vendor", "congo", "rojo", "t@sys"]),
    st.sampled_from(["value", "t61rcWkgMzE", "00f067aa0ba902b7", "a b"]),
    min_size=1,
    max_size=3,
).map(lambda d: TraceState(list(d.items())))
_trace_ids = st.sampled_from([1, (1 << 128) - 1, 0x4BF92F3577B34DA6A3CE929D0E0E4736]) | st.integers(
    min_value=1, max_value=(1 << 128) - 1
)
_span_ids = st.sampled_from([1, (1 << 64) - 1, 0x00F067AA0BA902B7]) | st.integers(
    min_value=1, max_value=(1 << 64) - 1
)
_flags = st.sampled_from([0, 1]).map(TraceFlags)
_link_contexts = st.builds(
    SpanContext,
    trace_id=_trace_ids | st.sampled_from([0, 1 << 128, -1]),
    span_id=_span_ids | st.sampled_from([0, 1 << 64]),
    is_remote=st.booleans(),
    trace_flags=st.sampled_from([0, 1, 3, 255]).map(TraceFlags),
    trace_state=st.none() | _trace_states,
)
_links = st.builds(Link, _link_contexts, st.none() | _attributes)
_statuses: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.builds(Status, st.sampled_from(list(StatusCode)), st.none() | _text | _hostile_text),
    st.tuples(st.sampled_from(list(StatusCode)), st.none() | _text | _hostile_text),
)
_limits = st.builds(
    SpanLimits,
    max_span_attributes=st.none() | st.integers(min_value=0, max_value=3),
    max_events=st.none() | st.integers(min_value=0, max_value=2),
    max_links=st.none() | st.integers(min_value=0, max_value=2),
    max_event_attributes=st.none() | st.integers(min_value=0, max_value=2),
    max_link_attributes=st.none() | st.integers(min_value=0, max_value=2),
    max_attribute_length=st.none() | st.integers(min_value=0, max_value=4),
)


def set_status(span: Span, status: Any) -> None:
    if isinstance(status, Status):
        span.set_status(status)
    elif status is not None:
        span.set_status(*status)


def draw_span(data: st.DataObject, h: Harness, made: list[Span]) -> None:
    """One span of any shape, started and changed through the SDK's own calls."""
    parent_kind = data.draw(st.sampled_from(["root", "local", "remote", "non-recording", "invalid"]))
    context: Context | None = None
    if parent_kind == "local" and made:
        context = set_span_in_context(data.draw(st.sampled_from(made)))
    elif parent_kind in ("remote", "non-recording"):
        parent = SpanContext(
            data.draw(_trace_ids),
            data.draw(_span_ids),
            is_remote=parent_kind == "remote",
            trace_flags=data.draw(_flags),
            trace_state=data.draw(st.none() | _trace_states),
        )
        context = set_span_in_context(NonRecordingSpan(parent))
    elif parent_kind == "invalid":
        context = set_span_in_context(INVALID_SPAN)
    h.sampler.decision = data.draw(st.sampled_from([Decision.RECORD_AND_SAMPLE, Decision.RECORD_ONLY]))
    h.sampler.trace_state = data.draw(st.none() | _trace_states)
    name = data.draw(_names, label="name")
    kind = data.draw(st.sampled_from(list(SpanKind)), label="kind")
    attributes = data.draw(_attributes, label="attributes")
    links = data.draw(st.lists(_links, max_size=3), label="links")
    if data.draw(st.booleans(), label="started"):
        span = h.span(
            name,
            context=context,
            kind=kind,
            attributes=attributes,
            links=links,
            start_time=data.draw(_times, label="start_time"),
        )
        made.append(span)
    else:
        own = SpanContext(
            data.draw(_trace_ids), data.draw(_span_ids), False, data.draw(_flags), data.draw(_trace_states)
        )
        parent_context = get_current_span(context).get_span_context() if context is not None else None
        span = h.unstarted_span(
            name, own, parent=parent_context, kind=kind, attributes=attributes, links=links
        )
    span.set_attributes(data.draw(_attributes, label="more attributes"))
    for event_name, event_attributes, timestamp in data.draw(
        st.lists(st.tuples(_names, st.none() | _attributes, _times), max_size=3), label="events"
    ):
        span.add_event(event_name, event_attributes, timestamp)
    for link in data.draw(st.lists(_links, max_size=2), label="late links"):
        span.add_link(link.context, link.attributes)
    if data.draw(st.booleans(), label="exception"):
        span.record_exception(ValueError("boom\u2028"), {"k": 1}, timestamp=5)
    new_name = data.draw(st.none() | _names, label="new name")
    if new_name is not None:
        span.update_name(new_name)
    set_status(span, data.draw(_statuses, label="status"))
    if span.start_time is not None and data.draw(st.booleans(), label="ended"):
        span.end(end_time=data.draw(_times, label="end_time"))
        set_status(span, Status(StatusCode.ERROR, "after the end"))  # ignored by the SDK
        span.set_attribute("late", 1)  # likewise


# No explain phase: on a failure it replays each draw many times over (a minute and more
# here), and the shrunk example says enough.
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
@given(data=st.data())
def test_same_items_as_python_for_any_span(data: st.DataObject) -> None:
    ids = Ids(
        data.draw(st.lists(_trace_ids | st.sampled_from([0, 1 << 128]), min_size=1, max_size=3)),
        data.draw(st.lists(_span_ids | st.sampled_from([0, 1 << 64]), min_size=1, max_size=4)),
        random=data.draw(st.booleans()),
    )
    h = Harness(limits=data.draw(_limits), ids=ids, resource=data.draw(st.sampled_from(RESOURCES)))
    made: list[Span] = []
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="spans")):
        draw_span(data, h, made)
    assert h.check()


# --- which code runs ---------------------------------------------------------------------------


def test_speedups_false_is_always_the_python_code() -> None:
    """The reference of every comparison here is the Python code, and the default is the C
    code exactly where it is built (and not turned off)."""
    python = SpanEncoder(TAILS, speedups=False)
    assert getattr(python.start, "__func__", None) is SpanEncoder._start
    assert getattr(python.end, "__func__", None) is SpanEncoder._end
    default = SpanEncoder(TAILS)
    in_c = c_span_encoder() is not None
    assert (getattr(default.start, "__func__", None) is SpanEncoder._start) is not in_c
    assert (getattr(default.end, "__func__", None) is SpanEncoder._end) is not in_c


def common_spans(h: Harness) -> None:
    """Spans as instrumentations make them: plain attribute values (str, bool, 64-bit ints,
    finite floats, text to escape), every kind, status unset, OK or ERROR with a
    description, a root and a child, attributes set after the start."""
    plain = {
        "http.method": "GET",
        "http.status_code": 200,
        "ok": True,
        "negative": -5,
        "widest": (1 << 64) - 1,
        "elapsed_s": 0.125,
        "edges": 1e16,
        "text": 'é€😀 "quoted" back\\slash\n\u2028',
    }
    statuses: list[Status | None] = [
        None,
        Status(StatusCode.OK),
        Status(StatusCode.ERROR, "boom"),
        Status(StatusCode.ERROR, 'bad "request"\u2028'),
    ]
    start = 1_700_000_000_123_456_789
    for n, kind in enumerate(SpanKind):
        for m, status in enumerate(statuses):
            root = h.span(f"GET /items/{n}", kind=kind, attributes=plain, start_time=start + n)
            child = h.span(
                "SELECT é",
                context=set_span_in_context(root),
                kind=kind,
                attributes={"db.rows": m} if m else None,
            )
            child.set_attribute("db.statement", "SELECT 1")
            set_status(child, status)
            child.end()
            root.set_attributes({"http.route": "/items/{id}", "n": m})
            set_status(root, status)
            root.end(end_time=start + n + 1_000_000)


def needs_c_span_encoder() -> None:
    if not _native.speedups_in_use():
        if os.environ.get("LOGXPY_OTEL_REQUIRE_SPEEDUPS") == "1" and not os.environ.get(
            "LOGXPY_OTEL_PURE_PYTHON"
        ):
            pytest.fail("the C span encoder is not in use (LOGXPY_OTEL_REQUIRE_SPEEDUPS=1)", pytrace=False)
        pytest.skip("the C speed-up is not in use here (not built, or LOGXPY_OTEL_PURE_PYTHON=1)")
    if c_span_encoder() is None:
        pytest.skip("_speedups has no SpanEncoder: the C span encoder is not built (yet)")


def counting_python(mp: pytest.MonkeyPatch) -> dict[str, int]:
    """Wrap the Python ``_start``/``_end`` in counters, at class level: the C encoder gets them
    as its fallbacks (bound methods) when a SpanEncoder is built, so build it after this."""
    calls = {"start": 0, "end": 0}
    python_start, python_end = SpanEncoder._start, SpanEncoder._end

    def counted_start(self: SpanEncoder, span: ReadableSpan) -> LineItem | None:
        calls["start"] += 1
        return python_start(self, span)

    def counted_end(self: SpanEncoder, span: ReadableSpan) -> LineItem | None:
        calls["end"] += 1
        return python_end(self, span)

    mp.setattr(SpanEncoder, "_start", counted_start)
    mp.setattr(SpanEncoder, "_end", counted_end)
    return calls


def test_common_spans_never_reach_the_python_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """The common span is encoded in C: the Python ``_start``/``_end`` (the C encoder's
    fallback) are never called for it."""
    needs_c_span_encoder()
    reference = SpanEncoder(TAILS, speedups=False)  # built before the wrappers: not counted
    calls = counting_python(monkeypatch)
    h = Harness(ids=Ids([0x4BF92F3577B34DA6A3CE929D0E0E4736, 7], range(1, 100)), python=reference)
    common_spans(h)
    items = h.check()
    # per span: on_start, on_end, and start and end again of the live span and of the ended one
    assert len(items) == len(SpanKind) * 4 * 2 * 6
    assert all(c.python is not None for c in items)
    assert calls == {"start": 0, "end": 0}, "the C span encoder handed a common span to Python"
    # The wrappers do count a call of the Python code (else the check above says nothing).
    SpanEncoder(TAILS, speedups=False).end(h.capture.spans[-1])
    assert calls == {"start": 0, "end": 1}


def test_an_ended_span_is_read_from_its_dict_whatever_its_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """An ended span's fields are read at their usual places in its instance dict when the
    key there is theirs: a ReadableSpan whose fields were set again in another order, or
    whose dict lacks one the encoder does not read, gives the Python encoder's item, in C."""
    needs_c_span_encoder()
    reference = SpanEncoder(TAILS, speedups=False)
    calls = counting_python(monkeypatch)
    fast = SpanEncoder(TAILS)
    h = Harness(python=reference, fast=fast)
    parent = h.span("parent", attributes={"k": 1, "f": 2.5})
    child = h.span("child", context=set_span_in_context(parent), kind=SpanKind.CLIENT)
    child.set_status(Status(StatusCode.ERROR, "boom"))
    child.end()
    parent.end()
    for span in (child, parent):
        ended = span._readable_span()
        fields = vars(ended)
        for name in ("_status", "_name", "_start_time", "_context", "_parent", "_end_time", "_attributes"):
            fields[name] = fields.pop(name)
        del fields["_instrumentation_info"]
        assert_same(fast.end(ended), reference.end(ended), f"reordered {span.name}")
    assert calls == {"start": 0, "end": 0}


def test_an_open_spans_id_text_and_start_ts_are_made_once() -> None:
    """The C encoder makes a span's id text and its start's ts at its start and keeps them
    for its end line and its children's lines (the same objects: fewer a span in the
    application's thread). The items are the Python encoder's."""
    needs_c_span_encoder()
    python, fast = SpanEncoder(TAILS, speedups=False), SpanEncoder(TAILS)
    h = Harness()
    parent = h.span("parent", attributes={"k": 1})
    child = h.span("child", context=set_span_in_context(parent))
    child.end()
    parent.end()
    order = [
        ("parent start", "start", parent),
        ("child start", "start", child),
        ("child end", "end", child._readable_span()),
        ("parent end", "end", parent._readable_span()),
    ]
    items = {}
    for what, which, span in order:
        item = getattr(fast, which)(span)
        assert_same(item, getattr(python, which)(span), what)
        assert item is not None
        items[what] = item
    parent_hex = items["parent start"][5]
    assert items["parent end"][5] is parent_hex
    assert items["child start"][6].parent is parent_hex  # type: ignore[union-attr]
    assert items["child end"][6].parent is parent_hex  # type: ignore[union-attr]
    assert items["child end"][5] is items["child start"][5]
    assert items["parent end"][6].start_ts is items["parent start"][1]  # type: ignore[union-attr]


def test_an_end_whose_start_time_is_not_its_starts_gets_its_own_start_ts() -> None:
    """The start's ts is kept for the end line only while the ended span says the same start
    time: a ReadableSpan made with another gets its own, as in Python."""
    needs_c_span_encoder()
    python, fast = SpanEncoder(TAILS, speedups=False), SpanEncoder(TAILS)
    span = Harness().span("work")
    span.end()
    started = fast.start(span)
    assert_same(started, python.start(span), "start")
    ended = span._readable_span()
    vars(ended)["_start_time"] = span.start_time + 1_500  # type: ignore[operator]
    item = fast.end(ended)
    assert_same(item, python.end(ended), "end")
    assert item is not None and started is not None
    assert item[6].start_ts != started[1]  # type: ignore[union-attr]


def _ended(trace_id: int, span_id: int, name: str, resource: Resource, **fields: Any) -> ReadableSpan:
    """A ReadableSpan made by hand, of the parts the SDK gives one (so that the C encoder
    takes it): ``attributes`` a dict, kept as the SDK keeps them."""
    given = fields.pop("attributes", None)
    attributes = None if given is None else BoundedAttributes(attributes=given, immutable=False)
    defaults: dict[str, Any] = {
        "attributes": attributes,
        "events": BoundedList(None),
        "links": BoundedList(None),
        "status": Status(StatusCode.UNSET),
        "start_time": 1_700_000_000_000_000_000,
        "end_time": 1_700_000_001_000_000_000,
    }
    return ReadableSpan(
        name,
        SpanContext(trace_id, span_id, False, TraceFlags(1)),
        None,
        resource,
        instrumentation_scope=SCOPE,
        **{**defaults, **fields},
    )


@pytest.mark.parametrize("speedups", [False, True])
def test_an_end_leaves_the_entry_a_span_started_meanwhile_made(speedups: bool) -> None:
    """Python code that runs inside an end (a GC callback, while the end makes a new tail)
    may start a span of another trace with the same span id: its entry (its name at the
    start) stays, so its renamed end keeps that name in ``at``, as in Python."""
    other = Resource({"service.name": "other"})  # (a tail not made yet: the end calls Python)
    encoder = SpanEncoder(TAILS, speedups=speedups)
    encoder.start(_ended(1111, 0xABC, "A", RESOURCES[0]))
    started_meanwhile = _ended(2222, 0xABC, "GET /users/{id}", RESOURCES[0])
    ended = _ended(1111, 0xABC, "A", other)
    vars(ended)  # (its dict made now, not inside the end)
    armed = [True]

    def start_meanwhile(phase: str, info: object) -> None:
        if phase == "start" and armed:
            armed.clear()
            encoder.start(started_meanwhile)

    threshold = gc.get_threshold()
    gc.callbacks.append(start_meanwhile)
    gc.set_threshold(1)
    try:
        encoder.end(ended)
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(start_meanwhile)
    assert not armed, "the GC callback did not run inside the end"
    item = encoder.end(_ended(2222, 0xABC, "GET /users/42", RESOURCES[0]))
    assert item is not None
    assert item[6] == SpanEnd(None, "GET /users/{id}", item[6].start_ts)  # type: ignore[union-attr]
    assert b'"name":"GET /users/42"' in item[3]


def test_a_start_handed_to_python_counts_once_towards_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A start the C encoder hands to the Python encoder (a NaN attribute, found after the
    span's other checks) leaves Python's entry alone in the names table, not the C
    encoder's as well: at the bound, the table is not cleared one span early (which lost
    the start names of the spans open then)."""
    needs_c_span_encoder()
    monkeypatch.setattr(_span_format, "MAX_NAMES", 3)
    encoder = SpanEncoder(TAILS)
    for span_id in (1, 2):
        encoder.start(_ended(5, span_id, "open", RESOURCES[0]))
    encoder.start(_ended(5, 7, "odd", RESOURCES[0], attributes={"n": math.nan}))
    entries = encoder._names
    assert set(entries) == {1, 2, 7}
    assert len(entries[7]) == 2, "the Python encoder's entry: (trace id, name)"
    assert len(entries[1]) == 5, "the C encoder's: (trace id, name, span id's text, start ts, span id)"


def test_a_status_subclass_is_read_through_its_properties() -> None:
    """A Status subclass (set_status keeps it as given) may say another code or description
    through its properties than its fields hold: the Python encoder reads the properties,
    and the C encoder hands such a status to it."""

    class Computed(Status):
        @property
        def status_code(self) -> StatusCode:
            return StatusCode.ERROR

        @property
        def description(self) -> str:
            return "computed"

    python, fast = SpanEncoder(TAILS, speedups=False), SpanEncoder(TAILS)
    span = _ended(5, 7, "work", RESOURCES[0], status=Computed(StatusCode.UNSET))
    item = fast.end(span)
    assert_same(item, python.end(span), "end")
    assert item is not None and b'"st":"failed","reason":"computed"' in item[3]


def test_an_entry_under_a_key_only_equal_to_the_span_id_gives_no_text() -> None:
    """The names table keeps the first key an entry was put under: an id whose ``==`` says
    it equals any int of its hash, left there by a start, then holds the C encoder's entry
    of a plain id. An end of another id of that hash finds it: it writes its own id."""

    class Loose(int):
        def __eq__(self, other: object) -> bool:
            return hash(other) == hash(self)

        __hash__ = int.__hash__

    plain, other = 5, 5 + (1 << 61) - 1  # (one hash: ints hash modulo 2**61 - 1)

    def end_of_other(speedups: bool) -> LineItem | None:
        encoder = SpanEncoder(TAILS, speedups=speedups)
        encoder.start(_ended(9, Loose(plain), "a", RESOURCES[0]))  # (its key stays)
        encoder.start(_ended(9, plain, "b", RESOURCES[0]))
        return encoder.end(_ended(9, other, "b", RESOURCES[0]))

    item = end_of_other(True)
    assert_same(item, end_of_other(False), "end")
    assert item is not None and item[5] == f"{other:016x}"


@pytest.mark.parametrize("speedups", [False, True])
def test_an_entry_whose_trace_id_cannot_be_compared_is_not_this_spans(speedups: bool) -> None:
    """An entry another span left under this span id, of a trace id whose ``==`` raises:
    not this span's, and this span's end line is still made (the error lost it)."""

    class Touchy(int):
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no comparing me")

        __hash__ = int.__hash__

    encoder = SpanEncoder(TAILS, speedups=speedups)
    ordinary = _ended(6, 7, "work", RESOURCES[0])
    encoder.start(ordinary)
    encoder.start(_ended(Touchy(5), 7, "odd", RESOURCES[0]))  # (left open, under the same id)
    item = encoder.end(ordinary)
    assert item is not None and b'"at":"work","st":"succeeded"' in item[3]


def test_the_python_end_of_a_span_whose_entry_went_meanwhile_keeps_its_line() -> None:
    """Another thread may end (or start) a span of another trace with the same span id
    between the Python encoder's look at the names table and its removal of the entry:
    the end line is still made (a KeyError there lost it)."""
    encoder = SpanEncoder(TAILS, speedups=False)

    class Vanishing(int):
        """A trace id whose comparison takes the entry away, as that thread would."""

        def __eq__(self, other: object) -> bool:
            encoder._names.pop(7, None)
            return int(self) == other

        __hash__ = int.__hash__

    trace_id = Vanishing(5)
    encoder.start(_ended(trace_id, 7, "work", RESOURCES[0]))
    item = encoder.end(_ended(trace_id, 7, "work", RESOURCES[0]))
    assert item is not None and b'"at":"work","st":"succeeded"' in item[3]


def test_spans_of_each_status_in_turn_have_their_own() -> None:
    """The C encoder keeps the last Status it read (most spans share the default one): spans
    ended with other statuses in turn, and the default again, each get their own outcome."""
    needs_c_span_encoder()
    h = Harness()
    statuses = [
        None,
        Status(StatusCode.ERROR, "a"),
        Status(StatusCode.ERROR, "b"),
        None,
        Status(StatusCode.OK),
    ]
    for status in statuses:
        span = h.span("s")
        if status is not None:
            span.set_status(status)
        span.end()
    items = h.check()
    ends = [c.python[3] for c in items[: 2 * len(statuses)] if c.python is not None and c.role is SpanEnd]
    assert [(b'"failed"' in end, b'"reason":"a"' in end, b'"reason":"b"' in end) for end in ends] == [
        (False, False, False),
        (True, True, False),
        (True, False, True),
        (False, False, False),
        (False, False, False),
    ]


def test_a_status_changed_in_place_gives_its_new_outcome() -> None:
    """A Status object is read at every end line: one changed in place after a span that
    used it ended gives the next span its new outcome, as the Python encoder reads it."""
    needs_c_span_encoder()
    python, fast = SpanEncoder(TAILS, speedups=False), SpanEncoder(TAILS)
    h = Harness(python=python, fast=fast)
    status = Status(StatusCode.OK)
    for _ in range(2):
        span = h.span("work")
        span.set_status(status)
        span.end()
        ended = span._readable_span()
        assert_same(fast.end(ended), python.end(ended), "ended")
        status._status_code, status._description = StatusCode.ERROR, "boom"
    assert b'"reason":"boom"' in python.end(ended)[3]  # (the second span's line)


_plain_names = st.text(st.characters(codec="utf-8") | st.sampled_from(_SPECIALS), max_size=10)
_plain_attributes = st.dictionaries(
    _plain_names.filter(lambda k: bool(k) and k not in RESERVED_KEYS and k != "span.kind"),
    _plain_names | st.booleans() | _ints | st.floats(allow_nan=False, allow_infinity=False),
    max_size=5,
)
_plain_times = st.none() | st.integers(min_value=0, max_value=(1 << 63) - 1)  # (from 2**63: Python)
_plain_statuses = st.sampled_from([None, Status(StatusCode.OK)]) | st.builds(
    Status, st.just(StatusCode.ERROR), st.none() | _plain_names
)


@settings(max_examples=150, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
@given(data=st.data())
def test_plain_spans_never_reach_the_python_code(data: st.DataObject) -> None:
    """Spans of plain parts only (str names, str/bool/int/finite float attribute values,
    no reserved key, no events, links or trace state, 64-bit times, local parents): all
    in C, the same items."""
    needs_c_span_encoder()
    reference = SpanEncoder(TAILS, speedups=False)
    with pytest.MonkeyPatch.context() as mp:
        calls = counting_python(mp)
        h = Harness(
            ids=Ids(data.draw(st.lists(_trace_ids, min_size=1, max_size=2)), range(1, 20)), python=reference
        )
        made: list[Span] = []
        for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
            parent = data.draw(st.none() | st.sampled_from(made)) if made else None
            span = h.span(
                data.draw(_plain_names),
                context=None if parent is None else set_span_in_context(parent),
                kind=data.draw(st.sampled_from(list(SpanKind))),
                attributes=data.draw(_plain_attributes),
                start_time=data.draw(_plain_times),
            )
            made.append(span)
            span.set_attributes(data.draw(_plain_attributes))
            set_status(span, data.draw(_plain_statuses))
            if data.draw(st.booleans()):
                span.end(end_time=data.draw(_plain_times))
        live = dict(calls)
        items = h.check()
    assert all(c.python is not None for c in items)
    assert live == {"start": 0, "end": 0}, "the C span encoder handed a plain span to Python"
    # (encoded again, a span still open is started twice, as by a processor added twice:
    # that second start, and the ends while its entry is kept aside, are Python's)
    still_open = sum(1 for span in made if span.end_time is None)
    assert calls["start"] <= still_open and calls["end"] <= still_open, (calls, still_open)


# --- odd spans: the careful path, same result, never raises ----------------------------------


class Int64(int):
    """As ``numpy.int64`` (a timestamp from numpy or pandas): an int subclass."""


def odd_huge_int(h: Harness) -> None:
    h.span(attributes={"big": 1 << 70, "small": -(1 << 63) - 1}).end()


def odd_nan(h: Harness) -> None:
    h.span(attributes={"nan": math.nan, "inf": (1.0, math.inf), "x": 1.5}).end()


def odd_reserved(h: Harness) -> None:
    h.span(attributes={"ts": 1, "msg": "m", "_otel": "o", "at": "a", "st": "s", "plain": 2}).end()


def odd_kind_attribute(h: Harness) -> None:
    h.span(kind=SpanKind.SERVER, attributes={"span.kind": "mine"}).end()


def odd_events(h: Harness) -> None:
    span = h.span()
    span.add_event("retry", {"attempt": 2, "ts": 3, "nan": math.nan}, timestamp=5)
    span.add_event("late", timestamp=1 << 70)
    span.record_exception(ValueError("boom"), timestamp=6)
    span.end()


def odd_links(h: Harness) -> None:
    linked = SpanContext(0x5B8EFFF798038103D269B633813FC60C, 0xEEE19B7EC3C1B174, True, TraceFlags(1))
    bad = SpanContext(1 << 128, 1 << 64, False, TraceFlags(0), TraceState([("vendor", "v")]))
    span = h.span(links=[Link(linked, {"why": "batch"}), Link(bad)])
    span.add_link(linked)
    span.end()


class Name(str):
    """A str subclass as a span name (a ``StrEnum`` member is one too)."""


def odd_non_str_names(h: Harness) -> None:
    for name in (42, None, b"bytes", 1.5, Name("subclass"), LineMode.TREE):
        h.span(name).end()


def odd_surrogates(h: Harness) -> None:
    span = h.span("a\ud800b", attributes={"k\udfff": "v\ud800", "seq": ("\udc00",)})
    span.add_event("e\ud800", {"k": "\udfff"})
    span.set_status(Status(StatusCode.ERROR, "why\ud800"))
    span.end()


def odd_other_values(h: Harness) -> None:
    values = {"bytes": b"\x00\xff", "none": None, "map": {"$int": 1}, "mixed": [1, "a", None]}
    h.span(attributes=values).end()


def odd_dropped(h: Harness) -> None:
    link = Link(SpanContext(1, 2, False), {"a": 1, "b": 2, "c": 3})
    span = h.span(attributes={f"a{i}": i for i in range(5)}, links=[link] * 3)
    for i in range(4):
        span.add_event(f"e{i}", {"a": 1, "b": 2, "c": 3})
    span.end()


def odd_times_beyond_64_bits(h: Harness) -> None:
    h.span(start_time=1 << 65).end(end_time=1 << 1100)
    h.span(start_time=-5).end(end_time=-1)
    h.span(start_time=Int64(1_700_000_000_000_000_000)).end(end_time=Int64(1_700_000_000_000_000_001))


def odd_remote_parent(h: Harness) -> None:
    state = TraceState([("vendor", "value"), ("rojo", "00f067aa0ba902b7")])
    for flags in (0, 1):
        parent = SpanContext(
            0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, True, TraceFlags(flags), state
        )
        h.sampler.decision = Decision.RECORD_AND_SAMPLE if flags else Decision.RECORD_ONLY
        h.span(context=set_span_in_context(NonRecordingSpan(parent)), kind=SpanKind.SERVER).end()


def odd_never_started(h: Harness) -> None:
    context = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0xEEE19B7EC3C1B174, False, TraceFlags(1))
    span = h.unstarted_span("never started", context, attributes={"k": 1})
    span.set_status(Status(StatusCode.ERROR, "set before any start"))
    span.add_event("e", {"a": 1})


def odd_never_ended(h: Harness) -> None:
    h.span(attributes={"k": 1}, start_time=10)


def odd_ids_otel_cannot_carry(h: Harness) -> None:
    for _ in range(3):  # (trace, span) ids (2**128, 0), (5, 3), (0, 2**64): see _ODD_HARNESS
        h.span().end()


_ODD: dict[str, tuple[Callable[[Harness], None], list[bytes]]] = {
    "huge int": (
        odd_huge_int,
        [b'"big":{"$int":"1180591620717411303424"}', b'{"$int":"-9223372036854775809"}'],
    ),
    "nan": (odd_nan, [b'"nan":{"$float":"nan"}', b'"inf":[1.0,{"$float":"inf"}]']),
    "reserved key": (odd_reserved, [b'"attributes":{"ts":1,"msg":"m","_otel":"o","at":"a","st":"s"}']),
    "span.kind attribute": (odd_kind_attribute, [b'"span.kind":"mine"']),
    "events": (odd_events, [b'"name":"retry","time_unix_nano":5,"attributes":{"attempt":2']),
    "links": (odd_links, [b'"links":[{"trace_id":"5b8efff798038103d269b633813fc60c"']),
    "non-str name": (odd_non_str_names, [b'"at":"42"', b'"at":"None"', b'"at":"b\'bytes\'"']),
    "lone surrogates": (odd_surrogates, ['"at":"a\ufffdb"'.encode(), '"reason":"why\ufffd"'.encode()]),
    "other values": (odd_other_values, [b'"bytes":{"$bytes":"AP8="}', b'"map":{"$map":{"$int":1}}']),
    "dropped": (odd_dropped, [b'"dropped_events_count":2', b'"dropped_links_count":2']),
    "times": (odd_times_beyond_64_bits, [b'"start_time_unix_nano":{"$int":"36893488147419103232"}']),
    "remote parent": (odd_remote_parent, [b'"parent_is_remote":true', b'"trace_state":"vendor=value,rojo=']),
    "never started": (odd_never_started, [b'"start_time_unix_nano":0', b'"reason":"set before any start"']),
    "never ended": (odd_never_ended, [b'"end_time_unix_nano":10']),
    "ids OTel cannot carry": (odd_ids_otel_cannot_carry, []),
}
_ODD_HARNESS: dict[str, dict[str, Any]] = {
    "dropped": {
        "limits": SpanLimits(
            max_span_attributes=2, max_events=2, max_links=1, max_event_attributes=1, max_link_attributes=1
        )
    },
    "ids OTel cannot carry": {"ids": Ids([0, 1 << 128, 5], [1 << 64, 0, 3])},
}


@pytest.mark.parametrize("case", list(_ODD))
def test_odd_spans_give_the_python_items(case: str) -> None:
    make, markers = _ODD[case]
    h = Harness(**_ODD_HARNESS.get(case, {}))
    make(h)
    items = h.check()  # raises nothing, and the same items
    assert items
    lines = b"\n".join(c.python[3] for c in items if c.python is not None)
    for marker in markers:
        assert marker in lines, marker
    if case == "ids OTel cannot carry":  # check() holds None to exactly the spans with bad ids
        assert sum(c.python is None for c in items) == 12  # two spans, 6 encodings each
        assert sum(c.python is not None for c in items) == 6
    else:
        assert all(c.python is not None for c in items)
    if case == "dropped":
        assert b'"dropped_attributes_count":3' in lines


# --- memory ------------------------------------------------------------------------------------


def test_no_memory_kept_per_span() -> None:
    """Tens of thousands of starts and ends (plain spans, odd ones handed to Python, two
    traces in turn, ended or not) leave nothing behind."""
    h = Harness(ids=Ids([5, 6], range(1, 100)))
    root = h.span("GET /", kind=SpanKind.SERVER, attributes={"a": "x", "n": 1, "b": True})
    child = h.span("child", context=set_span_in_context(root), attributes={"nan": math.nan, "ts": 1})
    child.add_event("e", {"k": 1})
    child.add_link(SpanContext(7, 8, False), {"l": 1})
    child.set_status(Status(StatusCode.ERROR, "boom"))
    child.end()
    h.span("other trace", attributes={"a": "y"})  # never ended
    root.end()
    spans = list(h.capture.spans)
    assert len(spans) == 5
    encoder = SpanEncoder(TAILS)
    SpanEncoder(TAILS, speedups=False).end(root)  # the tail cached

    def run(n: int) -> None:
        for _ in range(n):
            for span in spans:
                encoder.start(span)
                encoder.end(span)

    run(500)
    grown = memory_kept(run, 3_000)
    count = 3_000 * len(spans) * 2
    assert grown < 64 * 1024, f"{grown} bytes kept after {count} encodes"
