"""Reading logxpy-otel files back into OTel log records (docs/format.md, "Reading back").

Encode then decode gives back everything the format carries: body and attribute types,
trace and span ids, flags, severity number and text, nanosecond timestamps, event name,
scope, resource and the dropped-attribute count. Structure lines are skipped; a line
that does not parse (a torn last line after a crash) is reported, never fatal.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TraceFlags

from ._format import RESERVED_KEYS, decode_value

__all__ = ["BadLine", "LineRecord", "decode_line", "read_file"]

_HEX: Final = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class LineRecord:
    """One record line of a file: the rebuilt record, and where its line ends (for checkpoints)."""

    record: ReadableLogRecord
    #: Byte offset just past this line's newline.
    end: int


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not a record or structure line of the format (reported, then skipped)."""

    start: int
    end: int
    reason: str
    #: True for a last line with no newline: what a crash mid-write leaves.
    torn: bool


class _Cache:
    """Equal resources and scopes decode to one object each, as the SDK shares them."""

    def __init__(self) -> None:
        self.resources: dict[bytes, Resource] = {}
        self.scopes: dict[bytes, InstrumentationScope] = {}

    def resource(self, raw: Any) -> Resource:
        key = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
        hit = self.resources.get(key)
        if hit is None:
            attributes = {k: decode_value(v) for k, v in (raw or {}).get("attributes", {}).items()}
            hit = self.resources[key] = Resource(attributes, (raw or {}).get("schema_url"))
        return hit

    def scope(self, raw: Any) -> InstrumentationScope | None:
        if raw is None:
            return None
        key = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
        hit = self.scopes.get(key)
        if hit is None:
            attributes = {k: decode_value(v) for k, v in raw.get("attributes", {}).items()} or None
            hit = self.scopes[key] = InstrumentationScope(
                raw["name"], raw.get("version"), raw.get("schema_url"), attributes
            )
        return hit


def _is_trace_id(tid: object) -> bool:
    return isinstance(tid, str) and len(tid) == 32 and _HEX.issuperset(tid)


def decode_line(line: dict[str, Any], cache: _Cache | None = None) -> ReadableLogRecord | None:
    """The OTel record a parsed record line stands for; None for a structure line.

    Raises ``ValueError`` (or ``KeyError``/``TypeError``) for a dict that is not a line
    of the format.
    """
    if "at" in line:
        return None
    cache = cache if cache is not None else _Cache()
    otel = line["_otel"]
    tid = line.get("tid")
    trace_hex = tid if _is_trace_id(tid) else otel.get("trace_id")
    body = decode_value(otel["body"]) if "body" in otel else line["msg"]
    attributes: dict[str, Any] = {
        key: decode_value(value) for key, value in line.items() if key not in RESERVED_KEYS
    }
    for key, value in otel.get("attributes", {}).items():
        attributes[key] = decode_value(value)
    number = otel.get("severity_number")
    severity = SeverityNumber(number) if number is not None else None
    record = LogRecord(
        timestamp=otel.get("time_unix_nano"),
        observed_timestamp=otel["observed_time_unix_nano"],
        severity_text=otel.get("severity_text"),
        severity_number=severity,
        body=body,
        attributes=attributes,
        event_name=otel.get("event_name"),
    )
    # Set after construction: LogRecord() takes missing ids from the *current* span.
    record.trace_id = int(trace_hex, 16) if trace_hex else 0
    record.span_id = int(otel["span_id"], 16) if "span_id" in otel else 0
    record.trace_flags = TraceFlags(otel.get("trace_flags", 0))
    bounded = BoundedAttributes(maxlen=None, attributes=attributes, immutable=False)
    bounded.dropped = int(otel.get("dropped_attributes_count", 0))
    record.attributes = bounded
    return ReadableLogRecord(
        log_record=record,
        resource=cache.resource(otel.get("resource")),
        instrumentation_scope=cache.scope(otel.get("scope")),
    )


def read_file(path: str | os.PathLike[str], start: int = 0) -> Iterator[LineRecord | BadLine]:
    """Every record (and every bad line) of a file from byte ``start`` on, in order.

    Structure lines are skipped silently; a bad line is yielded as :class:`BadLine`.
    """
    cache = _Cache()
    with open(path, "rb") as f:
        f.seek(start)
        offset = start
        for raw in f:
            begin, offset = offset, offset + len(raw)
            torn = not raw.endswith(b"\n")
            try:
                line = orjson.loads(raw)
                if not isinstance(line, dict):
                    raise ValueError("not a JSON object")
                record = decode_line(line, cache)
            except (ValueError, KeyError, TypeError) as exc:
                reason = "torn last line (no newline)" if torn else f"not a record line: {exc}"
                yield BadLine(begin, offset, reason, torn)
                continue
            if record is not None:
                yield LineRecord(record, offset)
