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
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from ._format import (
    LineItem,
    SpanEnd,
    SpanStart,
    _dumps,
    _escape_separators,
    _id_hex,
    _int_tag,
    _put_attributes,
    _scrub,
    _seconds,
    _tag_wide_ints,
    encode_value,
)

__all__ = ["KIND_KEY", "SpanEncoder"]

#: The top-level key of a span's kind on its start line (not written for INTERNAL).
KIND_KEY: Final = "span.kind"

Tails = Callable[[Any, Any], bytes]


class SpanEncoder:
    """Turns SDK spans into start and end :data:`LineItem` s (tree mode only).

    ``tails(scope, resource)`` gives the line's shared end (``,"scope":...,"resource":...}}``),
    the log encoder's own cache, so a span's lines and its records' share one object.
    """

    __slots__ = ("_tails",)

    def __init__(self, tails: Tails) -> None:
        self._tails = tails

    def start(self, span: ReadableSpan) -> LineItem | None:
        """The span's start line; None for a span with no valid ids (it has no tree)."""
        ids = _ids(span)
        if ids is None:
            return None
        trace_hex, span_hex, parent_hex = ids
        start_ns = span.start_time or 0
        ts = _seconds(start_ns)
        line: dict[str, Any] = {"ts": ts, "at": _name(span), "st": "started"}
        otel = _span_ids(span, span_hex, parent_hex)
        otel["start_time_unix_nano"] = start_ns
        attributes = span.attributes or {}
        kind = span.kind
        if kind is not SpanKind.INTERNAL and KIND_KEY not in attributes:
            line[KIND_KEY] = kind.name.lower()
        body = self._body(line, attributes, otel, span)
        return (trace_hex, ts, False, body, self._tail(span), span_hex, SpanStart(parent_hex))

    def end(self, span: ReadableSpan) -> LineItem | None:
        """The span's end line, with the whole span in ``_otel``; None without valid ids."""
        ids = _ids(span)
        if ids is None:
            return None
        trace_hex, span_hex, parent_hex = ids
        start_ns = span.start_time or 0
        end_ns = span.end_time if span.end_time is not None else start_ns
        ts = _seconds(end_ns)
        status = span.status
        failed = status.status_code is StatusCode.ERROR
        name = _name(span)
        line: dict[str, Any] = {"ts": ts, "at": name, "st": "failed" if failed else "succeeded"}
        if failed and status.description:
            line["reason"] = status.description
        otel = _span_ids(span, span_hex, parent_hex)
        otel["start_time_unix_nano"] = start_ns
        otel["end_time_unix_nano"] = end_ns
        if status.status_code is not StatusCode.UNSET:
            otel["status"] = {"code": status.status_code.name}
            if status.description:
                otel["status"]["description"] = status.description
        if span.events:
            otel["events"] = [
                _with_attributes({"name": event.name, "time_unix_nano": event.timestamp}, event.attributes)
                for event in span.events
            ]
        if span.links:
            otel["links"] = [_link(link.context, link.attributes) for link in span.links]
        for key, count in (
            ("dropped_events_count", span.dropped_events),
            ("dropped_links_count", span.dropped_links),
        ):
            if count:
                otel[key] = count
        body = self._body(line, span.attributes or {}, otel, span)
        start_body = _escape_separators(
            b'"ts":%s,"at":%s,"st":"started"}' % (orjson.dumps(_seconds(start_ns)), _dumps(_scrub(name)))
        )
        return (trace_hex, ts, failed, body, self._tail(span), span_hex, SpanEnd(parent_hex, start_body))

    def _body(
        self, line: dict[str, Any], attributes: Mapping[str, Any], otel: dict[str, Any], span: Any
    ) -> bytes:
        """The line's own bytes (``line`` with the attributes, then ``_otel``), without its
        ``{`` and the two closing braces the tail brings."""
        _put_attributes(attributes, line, otel)
        dropped = getattr(span, "dropped_attributes", 0)
        if dropped:
            otel["dropped_attributes_count"] = dropped
        _tag_wide_ints(otel)
        for key in ("start_time_unix_nano", "end_time_unix_nano"):
            value = otel.get(key)
            if isinstance(value, int) and not 0 <= value < 1 << 64:
                otel[key] = _int_tag(value)
        line["_otel"] = otel
        try:
            head = _dumps(line)
        except orjson.JSONEncodeError:  # lone surrogates in a top-level string or key
            head = _dumps(_scrub(line))
        return _escape_separators(head[1:-2])

    def _tail(self, span: ReadableSpan) -> bytes:
        return self._tails(span.instrumentation_scope, span.resource)


def _ids(span: ReadableSpan) -> tuple[str, str, str | None] | None:
    """The span's trace and span ids and its parent's span id, as hex; None if not valid."""
    context = span.context
    if context is None or not context.is_valid:
        return None
    trace_hex = _id_hex(context.trace_id, 32)
    span_hex = _id_hex(context.span_id, 16)
    if not trace_hex or not span_hex:
        return None
    parent = span.parent
    parent_hex = _id_hex(parent.span_id, 16) or None if parent is not None and parent.span_id else None
    return trace_hex, span_hex, parent_hex


def _span_ids(span: ReadableSpan, span_hex: str, parent_hex: str | None) -> dict[str, Any]:
    """The ``_otel`` fields every span line has: its id, parent, kind, flags and state."""
    otel: dict[str, Any] = {"span_id": span_hex}
    if parent_hex is not None:
        otel["parent_span_id"] = parent_hex
        if span.parent is not None and span.parent.is_remote:
            otel["parent_is_remote"] = True
    if span.kind is not SpanKind.INTERNAL:
        otel["kind"] = span.kind.value
    context = span.context
    if context is not None:
        if context.trace_flags:
            otel["trace_flags"] = int(context.trace_flags)
        if context.trace_state:
            otel["trace_state"] = context.trace_state.to_header()
    return otel


def _name(span: ReadableSpan) -> str:
    name = span.name
    return name if type(name) is str else str(name)


def _with_attributes(out: dict[str, Any], attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    if attributes:
        out["attributes"] = {str(k): encode_value(v, 1) for k, v in attributes.items()}
    return out


def _link(context: Any, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "trace_id": _id_hex(context.trace_id, 32) or _int_tag(context.trace_id),
        "span_id": _id_hex(context.span_id, 16) or _int_tag(context.span_id),
    }
    if context.trace_flags:
        out["trace_flags"] = int(context.trace_flags)
    return _with_attributes(out, attributes)
