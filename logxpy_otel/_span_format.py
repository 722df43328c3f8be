"""OTel spans to logxpy action lines: a start line and an end line per span (docs/format.md, "Spans").

The start line is the action's start (``at`` the span's name, ``st`` ``started``, its
kind and the attributes it started with at top level, as a record's are); the end line
its end (``st`` ``succeeded``, or ``failed`` for status ERROR with the description in
``reason``) and the whole span in ``_otel``: ids, parent, kind, times, status,
attributes, events and links, so a reader rebuilds the span from the end line alone.
Both are :data:`~logxpy_otel._format.LineItem` s with a role (:class:`SpanStart`,
:class:`SpanEnd`), numbered into the trace's tree by the writer. Never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import DEFAULT_TRACE_STATE, SpanContext, SpanKind, Status, StatusCode

from ._format import (
    RESERVED_KEYS,
    LineItem,
    SpanEnd,
    SpanStart,
    _dumps,
    _escape_separators,
    _id_hex,
    _int_tag,
    _put_attributes,
    _safe_repr,
    _scrub,
    _seconds,
    _tag_wide_ints,
    encode_value,
)
from ._native import speedup
from ._sdk_private import SPAN_TYPES, span_attributes, span_events, span_links

__all__ = ["KIND_KEY", "SpanEncoder"]

#: The top-level key of a span's kind on its start line (not written for INTERNAL).
KIND_KEY: Final = "span.kind"

Tails = Callable[[Any, Any], bytes]


class SpanEncoder:
    """Turns SDK spans into start and end :data:`LineItem` s (tree mode only).

    ``tails(scope, resource)`` gives the line's shared end (``,"scope":...,"resource":...}}``),
    the log encoder's own cache, so a span's lines and its records' share one object.
    The common span (plain attribute values, no reserved names) is one ``orjson.dumps``;
    anything else takes the careful path, which tags and never raises.
    """

    __slots__ = ("_aside", "_last_trace", "_names", "_tails", "end", "fast", "start")

    def __init__(self, tails: Tails, *, speedups: bool = True) -> None:
        self._tails = tails
        #: Each open span's trace id and name at its start, by span id: a span renamed
        #: before it ends (``update_name``: a server span named after its route) keeps it
        #: in its end line's ``at``, which logxpy's tools match the start by (the C
        #: encoder shares it; an entry of another trace, whose span id repeats, is not its).
        #: (The C encoder's entries hold more: the span id's text, the start's ts, the id.)
        self._names: dict[int, tuple[Any, ...]] = {}
        #: The entries a start found in its place, by (trace id, span id), for their own
        #: ends: a span id another open trace repeats, or a span started twice (a span
        #: processor added twice). Rare; while it holds any, ends are the Python encoder's.
        self._aside: dict[tuple[Any, int], list[tuple[Any, ...]]] = {}
        # The last trace id's hex text: a trace's spans come in runs.
        self._last_trace: tuple[int, str] = (0, "")
        #: ``start(span)``: the span's start line; None for a span with no valid ids.
        self.start: Callable[[ReadableSpan], LineItem | None] = self._start
        #: ``end(span)``: the span's end line, with the whole span in ``_otel``.
        self.end: Callable[[ReadableSpan], LineItem | None] = self._end
        #: The C encoder behind :attr:`start` and :attr:`end`, or None when they are Python.
        self.fast: Any = None
        if speedups and _CSpanEncoder is not None:
            # The common span in C (the same bytes); anything else comes back to the
            # methods below.
            fast = _CSpanEncoder(
                tails=tails,
                dumps=orjson.dumps,
                reserved=RESERVED_KEYS | {KIND_KEY},
                span_types=SPAN_TYPES,
                context_type=SpanContext,
                empty_state=DEFAULT_TRACE_STATE,
                bounded=BoundedAttributes,
                bounded_list=BoundedList,
                kinds=[(kind, kind.value, _KIND_NAMES[kind]) for kind in SpanKind if kind is not _INTERNAL],
                internal=_INTERNAL,
                status_codes=(StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR),
                roles=(SpanStart, SpanEnd),
                fallback_start=self._start,
                fallback_end=self._end,
                names=self._names,
                aside=self._aside,
                max_names=MAX_NAMES,
                status_type=Status,
            )
            self.start, self.end, self.fast = fast.start, fast.end, fast

    def _start(self, span: ReadableSpan) -> LineItem | None:
        """The span's start line; None for a span with no valid ids (it has no tree)."""
        ids = self._ids(span)
        if ids is None:
            return None
        trace_hex, otel = ids
        start_ns = span.start_time or 0
        ts = _seconds(start_ns)
        name = _name(span)
        names = self._names
        if len(names) >= MAX_NAMES:
            names.clear()  # (spans that never end: their renames are not seen)
            self._aside.clear()
        context = span.context  # (ids checked above)
        there = names.get(context.span_id)
        if there is not None:
            self._put_aside(there, context.span_id)
        names[context.span_id] = (context.trace_id, name)
        line: dict[str, Any] = {"ts": ts, "at": name, "st": "started"}
        otel["start_time_unix_nano"] = start_ns
        attributes = span_attributes(span)
        kind = span.kind
        if kind is not SpanKind.INTERNAL and (not attributes or KIND_KEY not in attributes):
            line[KIND_KEY] = _KIND_NAMES[kind]
        body = _body(line, attributes, otel, span)
        tail = self._tails(span.instrumentation_scope, span.resource)
        return (trace_hex, ts, False, body, tail, otel["span_id"], SpanStart(otel.get("parent_span_id")))

    def _end(self, span: ReadableSpan) -> LineItem | None:
        """The span's end line, with the whole span in ``_otel``; None without valid ids."""
        ids = self._ids(span)
        if ids is None:
            return None
        trace_hex, otel = ids
        start_ns = span.start_time or 0
        end_ns = span.end_time if span.end_time is not None else start_ns
        ts = _seconds(end_ns)
        status = span.status
        code = status.status_code
        failed = code is StatusCode.ERROR
        name = _name(span)
        context = span.context
        span_id, started = context.span_id, name
        entry = self._names.get(span_id)
        if entry is not None and _same_trace(entry[0], context.trace_id):
            # Only ours, and without a KeyError (which lost the line): another thread may
            # have ended, or started, a span of another trace with this span id meanwhile.
            # (A switch between the look and the pop can still take the other's entry: its
            # renamed end then says its final name in ``at``. It needs span ids that repeat
            # across open traces, and threads.)
            if self._names.get(span_id) is entry:
                self._names.pop(span_id, None)
                if self._aside:  # (the span started twice: the other start's end comes next)
                    kept = self._take_aside(context.trace_id, span_id)
                    if kept is not None:
                        self._names[span_id] = kept
            started = entry[1]
        elif self._aside:
            kept = self._take_aside(context.trace_id, span_id)
            if kept is not None:
                started = kept[1]
        if started != name:
            otel["name"] = name  # renamed: the final name; ``at`` stays the start's
            name = started
        line: dict[str, Any] = {"ts": ts, "at": name, "st": "failed" if failed else "succeeded"}
        if failed and status.description:
            line["reason"] = status.description
        otel["start_time_unix_nano"] = start_ns
        otel["end_time_unix_nano"] = end_ns
        if code is not StatusCode.UNSET:
            otel["status"] = (
                {"code": code.name, "description": status.description}
                if status.description
                else {"code": code.name}
            )
        events = span_events(span)
        if events:
            otel["events"] = [
                _with_attributes(
                    {"name": encode_value(event.name, 1), "time_unix_nano": encode_value(event.timestamp, 1)},
                    event.attributes,
                    event.dropped_attributes,
                )
                for event in events
            ]
        links = span_links(span)
        if links:
            otel["links"] = [_link(link.context, link.attributes, link.dropped_attributes) for link in links]
        if span.dropped_events:
            otel["dropped_events_count"] = span.dropped_events
        if span.dropped_links:
            otel["dropped_links_count"] = span.dropped_links
        body = _body(line, span_attributes(span), otel, span)
        tail = self._tails(span.instrumentation_scope, span.resource)
        role = SpanEnd(
            otel.get("parent_span_id"), name if type(name) is str else str(name), _seconds(start_ns)
        )
        return (trace_hex, ts, failed, body, tail, otel["span_id"], role)

    def _put_aside(self, entry: tuple[Any, ...], span_id: int) -> None:
        """Keep ``entry`` (of span ``span_id``, which a start takes the place of) for its
        own end. One whose trace id cannot be a key is forgotten (that span's rename is
        then not seen; never its line)."""
        aside = self._aside
        if len(aside) >= MAX_NAMES:
            aside.clear()
        try:
            aside.setdefault((entry[0], span_id), []).append(entry)
        except Exception:  # noqa: BLE001 - an unhashable trace id
            pass

    def _take_aside(self, trace_id: int, span_id: int) -> tuple[Any, ...] | None:
        """The entry kept aside last for span ``span_id`` of trace ``trace_id`` (taken out),
        or None."""
        key = (trace_id, span_id)
        try:
            kept = self._aside.get(key)
        except Exception:  # noqa: BLE001 - an unhashable trace id: none kept
            return None
        if not kept:
            return None
        entry = kept.pop()
        if not kept:
            self._aside.pop(key, None)
        return entry

    def _ids(self, span: ReadableSpan) -> tuple[str, dict[str, Any]] | None:
        """The span's trace id as hex, and the ``_otel`` fields every span line has (its id,
        parent, kind, flags, state); None when its ids are not ones OTel can carry."""
        context = span.context
        if context is None:
            return None
        trace_id = context.trace_id
        last = self._last_trace
        if last[0] != trace_id:
            last = self._last_trace = (trace_id, _id_hex(trace_id, 32) if trace_id else "")
        span_hex = _id_hex(context.span_id, 16) if context.span_id else ""
        if not last[1] or not span_hex:
            return None
        otel: dict[str, Any] = {"span_id": span_hex}
        parent = span.parent
        if parent is not None and parent.span_id:
            parent_hex = _id_hex(parent.span_id, 16)
            if parent_hex:
                otel["parent_span_id"] = parent_hex
                if parent.is_remote:
                    otel["parent_is_remote"] = True
        kind = span.kind
        if kind is not SpanKind.INTERNAL:
            otel["kind"] = kind.value
        if context.trace_flags:
            otel["trace_flags"] = int(context.trace_flags)
        if context.trace_state:
            otel["trace_state"] = context.trace_state.to_header()
        return last[1], otel


def _name(span: ReadableSpan) -> str:
    """The span's name as a string (``at`` must be one: logxpy's tools tell an action by it)."""
    name = span.name
    if type(name) is str:
        return name
    # a str subclass (a StrEnum member) by its value, anything else by its repr
    return str.__str__(name) if isinstance(name, str) else _safe_repr(name)


def _same_trace(kept: object, trace_id: int) -> bool:
    """Whether an entry of the names table is of this trace. Not if the comparison raises
    (an entry another span left, of a trace id whose ``==`` does): that would lose this
    span's line."""
    try:
        return bool(kept == trace_id)
    except Exception:  # noqa: BLE001 - not this span's entry, whatever it is
        return False


#: How many open spans' start names an encoder keeps (more are forgotten at once).
MAX_NAMES: Final = 65_536

_INTERNAL: Final = SpanKind.INTERNAL
_KIND_NAMES: Final = {kind: kind.name.lower() for kind in SpanKind}

#: The C span encoder (``_speedups.SpanEncoder``) where built: the common span's lines
#: in C, byte for byte these (tests/test_speedups_spans.py). It reads the SDK span's
#: private fields (``_sdk_private.SPAN_TYPES``); a span it does not take comes here.
_CSpanEncoder: Any = speedup("SpanEncoder")
_TIME_FIELDS: Final = ("start_time_unix_nano", "end_time_unix_nano")


def _body(
    line: dict[str, Any], attributes: Mapping[str, Any] | None, otel: dict[str, Any], span: Any
) -> bytes:
    """The line's own bytes (``line`` with the attributes at top level, then ``_otel``),
    without its ``{`` and the two closing braces the tail brings."""
    dropped = span.dropped_attributes
    if dropped:
        otel["dropped_attributes_count"] = dropped
    if _plain_times(otel) and (
        not attributes
        or (RESERVED_KEYS.isdisjoint(attributes) and set(map(type, attributes.values())) <= _PLAIN)
    ):
        # The common case: orjson takes it as it is; it raises on what needs care (an int
        # beyond 64 bits, a lone surrogate, a key that is not a str).
        if attributes:
            line.update(attributes)
        line["_otel"] = otel
        try:
            return _escape_separators(orjson.dumps(line)[1:-2])
        except (TypeError, orjson.JSONEncodeError):
            for key in attributes or ():
                line.pop(key, None)
            del line["_otel"]
    if attributes:
        _put_attributes(attributes, line, otel)
    _tag_wide_ints(otel)
    for key in _TIME_FIELDS:
        value = otel.get(key)
        if isinstance(value, int) and not 0 <= value < 1 << 64:
            otel[key] = _int_tag(value)
    line["_otel"] = otel
    try:
        head = _dumps(line)
    except orjson.JSONEncodeError:  # lone surrogates in a top-level string or key
        head = _dumps(_scrub(line))
    return _escape_separators(head[1:-2])


def _plain_times(otel: dict[str, Any]) -> bool:
    """Whether the span's times are ints the format writes as numbers (others are tagged)."""
    return all(type(t := otel.get(key, 0)) is int and 0 <= t < 1 << 64 for key in _TIME_FIELDS)


#: Attribute value types orjson writes as the format does (a float can be NaN or inf,
#: which it would write as null: those take the careful path).
_PLAIN: Final = frozenset((str, int, bool))


def _with_attributes(
    out: dict[str, Any], attributes: Mapping[str, Any] | None, dropped: int = 0
) -> dict[str, Any]:
    """An event's or a link's ``out`` with its attributes and how many its limit dropped."""
    if attributes:
        out["attributes"] = {str(k): encode_value(v, 1) for k, v in attributes.items()}
    if dropped:
        out["dropped_attributes_count"] = encode_value(dropped, 1)
    return out


def _link(context: Any, attributes: Mapping[str, Any] | None, dropped: int) -> dict[str, Any]:
    """A link's entry: its span's ids, flags, trace state and whether it is remote (left
    out when it is: version 3 files, which did not say, read back so), its attributes."""
    out: dict[str, Any] = {
        "trace_id": _id_hex(context.trace_id, 32) or _int_tag(context.trace_id),
        "span_id": _id_hex(context.span_id, 16) or _int_tag(context.span_id),
    }
    if context.trace_flags:
        out["trace_flags"] = encode_value(int(context.trace_flags), 1)
    if context.trace_state:
        out["trace_state"] = context.trace_state.to_header()
    if not context.is_remote:
        out["is_remote"] = False
    return _with_attributes(out, attributes, dropped)
