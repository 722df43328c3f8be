"""OTel log records to logxpy line bytes, and tagged values back (docs/format.md).

Encoding runs in the application's thread, so the common case (string body, flat
attributes) takes a fast path; anything odd is tagged or ``repr()``-ed and never raises.
The result is a :data:`LineItem`: the line without its ``tid``/``lvl`` head, which the
writer thread adds in write order (see ``_trees``).
"""

from __future__ import annotations

import base64
import math
import re
import sys
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, NamedTuple, Protocol, final

import orjson
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.attributes import BoundedAttributes

from ._diagnostics import note_if_interrupt
from ._native import speedup

#: The C encoder (None where not built or turned off): see :class:`LineEncoder`.
_FastEncoder = speedup("FastEncoder")

__all__ = [
    "RESERVED_KEYS",
    "LineEncoder",
    "LineItem",
    "LineMode",
    "SpanEnd",
    "SpanStart",
    "decode_value",
    "encode_value",
    "severity_bucket",
]


@final
class SpanStart(NamedTuple):
    """A span's start line (an action start): which span it opens, and under which span it
    hangs (``parent``, 16 hex, or None for the trace's root). A tuple, so that nothing can
    change it once it is queued: the writer reads it without the GIL."""

    parent: str | None


@final
class SpanEnd(NamedTuple):
    """A span's end line (an action end). Where its start line is not in the file (the span
    started before the processor, or in the file before a rotation), a start line is
    written first (:meth:`start_body`, a structure line), under ``parent`` as
    :class:`SpanStart` would put it. A tuple, as :class:`SpanStart`."""

    parent: str | None
    name: str
    start_ts: float

    def start_body(self) -> bytes:
        """That start line without its ``{`` and head: ``b'"ts":...,"at":...,"st":"started"}'``."""
        name = orjson.dumps(clean_str(self.name))
        return _escape_separators(
            b'"ts":%s,"at":%s,"st":"started"}' % (orjson.dumps(float(self.start_ts)), name)
        )

    def start_body_max(self) -> int:
        """The most bytes :meth:`start_body` can take (a character escapes to at most 6)."""
        return 64 + 6 * len(self.name)


#: Each role's count of fields, fixed here as the C loop fixes it.
_ROLE_FIELDS: Final[Mapping[type, int]] = {SpanStart: len(SpanStart._fields), SpanEnd: len(SpanEnd._fields)}


def role_whole(role: SpanStart | SpanEnd) -> bool:
    """Whether a role (its type already checked) holds all its fields, counted as the C loop
    counts them (tuple's own length, whatever its class says): one made past ``__new__``
    may hold fewer, and is refused when numbered."""
    return tuple.__len__(role) == _ROLE_FIELDS[type(role)]


#: What the writer queues for one line:
#: ``(trace_id_hex or None, ts, failed, body, tail, span_id_hex or None, role)``.
#: ``body + tail`` is the line's JSON object without its opening ``{``
#: (``b'"ts":...}'``). ``tail`` is the end shared by every record of one scope and
#: resource (``b',"scope":{...},"resource":{...}}}'``, or ``b""``): one object for all of
#: them, so a queued record holds only its own bytes. ``failed`` is True when the
#: record's severity is 17 (ERROR) or more, or the span's status is ERROR. ``span_id``
#: is the span the record was logged in (or the span the line opens or ends); ``role``
#: is None for a log record, else :class:`SpanStart` or :class:`SpanEnd`.
LineItem = tuple[str | None, float, bool, bytes, bytes, str | None, SpanStart | SpanEnd | None]


class LineMode(StrEnum):
    """How records are grouped: ``tree`` frames each trace as a logxpy action; ``flat`` does not."""

    TREE = "tree"
    FLAT = "flat"


#: Attribute names that some logxpy reader gives a meaning; they go to ``_otel.attributes``.
RESERVED_KEYS: Final = frozenset(
    """
    ts tid lvl mt msg at st dur fg bg exc reason level status timestamp task_uuid task_level
    message_type message action_type action_status duration duration_ns
    logxpy:traceback logxpy:duration logxpy:foreground logxpy:background
    eliot:timestamp eliot:task_uuid eliot:task_level eliot:message_type
    eliot:action_type eliot:action_status eliot:duration _otel
    """.split()
)

_TAGS: Final = frozenset(("$int", "$bytes", "$float", "$map"))
#: Ints in [-2**63, 2**64 - 1] (signed or unsigned 64-bit) are written as JSON numbers,
#: as orjson writes them; beyond, as ``{"$int": "<digits>"}``.
_INT_MIN: Final = -(1 << 63)
_INT_MAX: Final = (1 << 64) - 1
#: Values nested deeper than this are written as their (bounded) repr string. orjson
#: refuses more than 255 levels, and ``$map`` wrapping can double a mapping's depth.
MAX_VALUE_DEPTH: Final = 100
_SURROGATE = re.compile("[\ud800-\udfff]")
_BUCKETS: Final = (
    ("debug", 8),
    ("info", 12),
    ("warning", 16),
    ("error", 20),
    ("critical", 24),
)


def severity_bucket(number: int | None) -> str:
    """The ``mt`` of a severity number: 1-8 debug ... 21-24 critical; unset or 0 is info."""
    if not number:
        return "info"
    for name, top in _BUCKETS:
        if number <= top:
            return name
    return "critical"


def clean_str(s: str) -> str:
    """``s`` with each lone surrogate (not encodable as UTF-8) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", s)


def _safe_repr(value: object) -> str:
    """``repr(value)``, or a placeholder naming the type when ``__repr__`` itself fails (an
    interrupt meanwhile is noted, raised on once the record is queued: ``note_if_interrupt``)."""
    try:
        text = repr(value)
        if type(text) is not str:
            raise TypeError("__repr__ returned a non-string")
        return clean_str(text)
    except BaseException as exc:  # noqa: BLE001 - a broken __repr__ must not reach the app
        note_if_interrupt(exc)
        try:
            name = type(value).__qualname__
        except BaseException:  # noqa: BLE001
            name = "object"
        return f"<{clean_str(str(name))} object: repr() failed>"


def _key(key: object) -> str:
    """A mapping key as a JSON object key: strings as they are, anything else as ``str()``
    gives it, as OTLP's encoder sends it (``repr()`` when ``str()`` fails). Keys that give
    the same text keep the last value: a JSON object has each key once."""
    if isinstance(key, str):
        return clean_str(key[:])  # [:] turns a str subclass into a plain str
    if type(key) is int:
        return _int_text(key)
    try:
        text = str(key)
    except BaseException as exc:  # noqa: BLE001 - a broken __str__ must not reach the app
        note_if_interrupt(exc)
        return _safe_repr(key)
    return clean_str(text[:]) if isinstance(text, str) else _safe_repr(key)


def _plain_str(value: Any) -> Any:
    """A str subclass as a plain str (the careful path puts a plain str's lone surrogates as
    U+FFFD; orjson refused a subclass's, and the whole record was lost); else ``value``."""
    return str.__str__(value) if type(value) is not str and isinstance(value, str) else value


def _int_text(value: int) -> str:
    """Decimal digits of any int; ``Decimal`` is not bound by Python's int-to-str digit limit."""
    try:
        return str(value)
    except ValueError:
        return str(Decimal(value))


def _int_tag(value: int) -> dict[str, str]:
    return {"$int": _int_text(value)}


def _float_tag(value: float) -> Any:
    if math.isnan(value):
        return {"$float": "nan"}
    if math.isinf(value):
        return {"$float": "inf" if value > 0 else "-inf"}
    return float(value)


def encode_value(value: object, _depth: int = 0) -> Any:
    """An OTel ``AnyValue`` as a JSON-ready object, with the format's tags. Never raises."""
    t = type(value)
    if t is str:
        return clean_str(value)  # type: ignore[arg-type]
    if value is None or t is bool:
        return value
    if t is int:
        return value if _INT_MIN <= value <= _INT_MAX else _int_tag(value)  # type: ignore[operator, arg-type]
    if t is float:
        return value if value - value == 0.0 else _float_tag(value)  # type: ignore[operator, arg-type]
    if _depth >= MAX_VALUE_DEPTH:
        return _safe_repr(value)
    try:
        if isinstance(value, bytes):  # (a bytearray or memoryview is a sequence of ints, as OTLP has it)
            return {"$bytes": base64.b64encode(value).decode("ascii")}
        if isinstance(value, str):
            return clean_str(value[:])
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return encode_value(int(value))
        if isinstance(value, float):
            return encode_value(float(value))
        if isinstance(value, Mapping):
            out = {_key(k): encode_value(v, _depth + 1) for k, v in value.items()}
            if len(out) == 1 and next(iter(out)) in _TAGS:
                return {"$map": out}
            return out
        if isinstance(value, Sequence):
            return [encode_value(v, _depth + 1) for v in value]
    except RecursionError:
        pass
    except Exception as exc:  # noqa: BLE001 - a hostile container: fall back to its repr
        note_if_interrupt(exc)
    return _safe_repr(value)


#: An ``$int`` tag's text: the digits the writer writes (``str`` of the int), nothing else
#: (an exponent, ``1e1000000``, would take minutes to make an int of).
_INT_DIGITS: Final = re.compile(r"-?[0-9]+", re.ASCII)
#: The longest ``$int`` read back as an int; a longer one is read as its digits (a str).
MAX_INT_DIGITS: Final = 10_000


def decode_value(value: Any) -> Any:
    """The inverse of :func:`encode_value` on parsed JSON: tags resolved, arrays as tuples."""
    if type(value) is list:
        return tuple(decode_value(v) for v in value)
    if type(value) is dict:
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag == "$int" and type(inner) is str and _INT_DIGITS.fullmatch(inner):
                # exact, and free of the int-from-str digit limit; past MAX_INT_DIGITS its
                # digits as they are (the conversion takes quadratic time: 27 s for 10**6)
                return int(Decimal(inner)) if len(inner.lstrip("-")) <= MAX_INT_DIGITS else inner
            if tag == "$bytes" and type(inner) is str:
                return base64.b64decode(inner)
            if tag == "$float" and type(inner) is str:
                return float(inner)
            if tag == "$map" and type(inner) is dict:
                return {k: decode_value(v) for k, v in inner.items()}
        return {k: decode_value(v) for k, v in value.items()}
    return value


def _encode_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """An attribute map as a JSON object: each value encoded, no ``$map`` wrapping of the map."""
    return {_key(k): encode_value(v, 1) for k, v in attributes.items()}


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_safe_repr)


def _scrub(obj: Any) -> Any:
    """A copy of a built line with lone surrogates replaced in every key and string."""
    if type(obj) is str:
        return clean_str(obj)
    if type(obj) is dict:
        return {clean_str(k): _scrub(v) for k, v in obj.items()}
    if type(obj) is list:
        return [_scrub(v) for v in obj]
    return obj


#: Attribute value types orjson writes exactly as the format wants (ints beyond 64 bits
#: make it raise); with floats, a NaN or inf would come out as ``null``.
_PLAIN_TYPES: Final = frozenset((str, int, bool))
_SCALAR_TYPES: Final = frozenset((str, int, bool, float))


def _put_attributes(attributes: Mapping[Any, Any], line: dict[str, Any], otel: dict[str, Any]) -> None:
    """Each attribute into ``line`` (values encoded), or into ``otel["attributes"]`` when reserved."""
    collisions: dict[str, Any] = {}
    for key, value in attributes.items():
        value = encode_value(value, 1)  # this is the careful path: the plain cases are fast there too
        if type(key) is not str:
            key = _key(key)
        if key in RESERVED_KEYS:
            collisions[key] = value
        else:
            line[key] = value
    if collisions:
        otel["attributes"] = collisions


def _severity_of(severity: Any) -> tuple[int | None, str]:
    """``(severity_number, mt)`` for a severity that is not a ``SeverityNumber`` member."""
    if severity is None:
        return None, "info"
    number = int(getattr(severity, "value", severity))
    return number, severity_bucket(number)


#: ``id(member) -> (number, mt)``: enum members live forever, and an id lookup is far
#: cheaper than ``member.value`` (a descriptor) on every record.
_SEVERITY_BY_ID: Final[dict[int, tuple[int | None, str]]] = {
    id(m): (m.value, severity_bucket(m.value)) for m in SeverityNumber
}
_SEVERITY_BY_ID[id(None)] = (None, "info")


#: Whether the C encoder (``_speedups``, built when a compiler was there) is in use.
SPEEDUPS: Final = _FastEncoder is not None


class _Encode(Protocol):
    def __call__(
        self, record: Any, resource: Any = None, scope: Any = None, dropped: int | None = None, /
    ) -> LineItem: ...


@final
class LineEncoder:
    """Turns OTel log records into :data:`LineItem` s for one :class:`LineMode`.

    Not meant to be subclassed (``encode`` is set per instance, to the C encoder where
    built): wrap it instead.

    ``encode(record, resource, scope, dropped)`` is the C encoder when it is built (and
    ``speedups`` is true), handing anything out of the ordinary to :meth:`encode_python`;
    both give the same bytes. Resource and scope are serialized once per distinct pair
    and reused. Safe to share between threads (the caches only grow a little when two
    threads race on a new resource).
    """

    _CACHE_LIMIT: Final = 256

    __slots__ = ("_fast", "_flat", "_last_span", "_last_trace", "_tails", "encode")

    encode: _Encode

    def __init__(self, mode: LineMode | str = LineMode.TREE, *, speedups: bool = True) -> None:
        self._flat = LineMode(mode) is LineMode.FLAT
        self._tails: dict[int, tuple[object, object, bytes]] = {}
        # One-entry caches of the last id's hex text: records of one span come in runs.
        self._last_span: tuple[int, str] = (0, "")
        self._last_trace: tuple[int, str] = (0, "")
        self._fast: Any = None
        if speedups and _FastEncoder is not None:
            self._fast = _FastEncoder(
                tails=self._tails,
                dumps=orjson.dumps,
                reserved=RESERVED_KEYS,
                bounded=BoundedAttributes,
                record_type=LogRecord,
                severities=[(m, m.value, severity_bucket(m.value)) for m in SeverityNumber],
                fallback=self.encode_python,
                flat=self._flat,
            )
            self.encode = self._fast.encode
        else:
            self.encode = self.encode_python

    @property
    def mode(self) -> LineMode:
        return LineMode.FLAT if self._flat else LineMode.TREE

    @property
    def fast_encoder(self) -> Any:
        """The C encoder behind :attr:`encode`, or None when it is the Python one."""
        return self._fast

    def tail_for(self, scope: Any, resource: Any) -> bytes:
        """The shared end of a line for this scope and resource (cached): span lines use it too."""
        return self._tail(scope, resource)

    def _tail(self, scope: Any, resource: Any) -> bytes:
        """The end of a line for this scope and resource: ``,"scope":{...},"resource":{...}}}``.

        Serialized once per distinct (scope, resource) pair and reused for every record.
        """
        key = id(scope) ^ id(resource)  # a collision only costs a miss: hits are checked
        hit = self._tails.get(key)
        if hit is not None and hit[0] is scope and hit[1] is resource:
            return hit[2]
        parts: dict[str, Any] = {}
        if scope is not None:
            # (a logger named None has no scope name: OTLP sends none, the reader gives None)
            out: dict[str, Any] = {"name": None if scope.name is None else clean_str(str(scope.name))}
            if scope.version is not None:  # "" stays "", as the SDK keeps it
                out["version"] = clean_str(str(scope.version))
            if scope.schema_url:
                out["schema_url"] = clean_str(str(scope.schema_url))
            if scope.attributes:
                out["attributes"] = _encode_attributes(scope.attributes)
            parts["scope"] = out
        res: dict[str, Any] = {"attributes": {}}
        if resource is not None:
            res["attributes"] = _encode_attributes(resource.attributes)
            if resource.schema_url:
                res["schema_url"] = clean_str(str(resource.schema_url))
        parts["resource"] = res
        tail = _escape_separators(b"," + _dumps(parts)[1:] + b"}")  # escaped once, here
        if len(self._tails) >= self._CACHE_LIMIT:
            self._tails.clear()
        self._tails[key] = (scope, resource, tail)
        return tail

    def encode_python(
        self,
        record: Any,
        resource: Any = None,
        scope: Any = None,
        dropped: int | None = None,
    ) -> LineItem:
        """One API ``LogRecord`` (with its resource, scope and dropped-attribute count) as a
        :data:`LineItem`. ``dropped`` unset: the count the SDK's attributes carry.

        Never raises: a record that cannot be encoded in full still yields a line that
        says so, with its timestamps and severity. (One function, not two: a Python call
        is a noticeable part of the per-record cost.)
        """
        try:
            timestamp = record.timestamp
            observed = record.observed_timestamp
            if observed is None:
                observed = timestamp if timestamp is not None else time.time_ns()
            ts = _seconds(timestamp if timestamp is not None else observed)
            severity = record.severity_number
            known = _SEVERITY_BY_ID.get(id(severity))
            number, mt = known if known is not None else _severity_of(severity)

            otel: dict[str, Any] = (
                {"observed_time_unix_nano": observed}
                if timestamp is None
                else {"time_unix_nano": timestamp, "observed_time_unix_nano": observed}
            )
            if number is not None:
                otel["severity_number"] = number
            if record.severity_text is not None:
                otel["severity_text"] = _plain_str(record.severity_text)
            span_id = record.span_id
            span_hex = None
            if span_id:
                last = self._last_span
                if last[0] != span_id:
                    last = self._last_span = (span_id, _id_hex(span_id, 16))
                span_hex = last[1] or None
                otel["span_id"] = span_hex or _int_tag(span_id)
            flags = record.trace_flags
            if flags:
                # an int subclass: orjson writes the number (a bool as true: its number here)
                otel["trace_flags"] = flags if type(flags) is not bool else int(flags)
            if record.event_name:
                otel["event_name"] = _plain_str(record.event_name)

            body = record.body
            if type(body) is str:
                msg = body
            elif isinstance(body, str):
                msg = clean_str(body[:])  # a str subclass is still a string body
            elif body is None:
                msg = ""
                otel["body"] = None
            else:
                encoded = _dumps(encode_value(body))
                msg = encoded.decode()
                otel["body"] = orjson.Fragment(encoded)

            trace_id = record.trace_id
            tid: str | None = None
            if trace_id:
                last = self._last_trace
                if last[0] != trace_id:
                    last = self._last_trace = (trace_id, _id_hex(trace_id, 32))
                if not last[1]:
                    otel["trace_id"] = _int_tag(trace_id)  # not an id OTel can carry: no tree
                elif self._flat:
                    otel["trace_id"] = last[1]
                else:
                    tid = last[1]

            attributes = record.attributes
            if type(attributes) is BoundedAttributes:
                if dropped is None:
                    dropped = attributes.dropped
                attributes = attributes._dict  # the SDK's own dict: no lock, no copy
            if dropped:
                otel["dropped_attributes_count"] = dropped
            line: dict[str, Any] = {"ts": ts, "mt": mt, "msg": msg}
            head = None
            if not attributes or RESERVED_KEYS.isdisjoint(attributes):
                # Fast path: orjson takes the attributes as they are. The careful path takes
                # over when the result shows anything the format treats specially: an error
                # (huge int, bytes, surrogates, odd keys or types), ``null`` (None, or a
                # NaN/inf that orjson writes as null), or a mapping that starts like a tag.
                if attributes:
                    line.update(attributes)
                line["_otel"] = otel
                try:
                    head = orjson.dumps(line)
                except TypeError:
                    head = None
                else:
                    kinds = set(map(type, attributes.values())) if attributes else _PLAIN_TYPES
                    if not kinds <= _PLAIN_TYPES:
                        # bytes.find, not ``in``: ``in`` first tries its argument as an
                        # int, raising and clearing a TypeError on every call.
                        if kinds <= _SCALAR_TYPES:
                            if head.find(b"null") >= 0:  # a float: NaN and inf come out as null
                                head = None
                        elif head.find(b"null") >= 0 or head.find(b'{"$') >= 0:
                            head = None
            if head is None:
                _tag_wide_ints(otel)
                line = {"ts": ts, "mt": mt, "msg": msg}
                if attributes:
                    _put_attributes(attributes, line, otel)
                line["_otel"] = otel
                try:
                    head = orjson.dumps(line, default=_safe_repr)
                except orjson.JSONEncodeError:  # lone surrogates in a top-level string or key
                    head = orjson.dumps(_scrub(line), default=_safe_repr)
            # head ends with the two braces of "_otel" and of the line; the tail closes both.
            hit = self._tails.get(id(scope) ^ id(resource))
            if hit is not None and hit[0] is scope and hit[1] is resource:
                tail = hit[2]
            else:
                tail = self._tail(scope, resource)
            data = head[1:-2]
            if not data.isascii():
                data = _escape_separators(data)
            return (tid, ts, number is not None and number >= 17, data, tail, span_hex, None)
        except Exception as exc:  # noqa: BLE001 - the last resort; see _fallback_item
            note_if_interrupt(exc)
            return self._fallback_item(record, exc)

    @staticmethod
    def _fallback_item(record: Any, exc: BaseException) -> LineItem:
        """A line for a record the encoder could not handle: its times and severity, and why."""
        observed = getattr(record, "observed_timestamp", None)
        if type(observed) is not int:
            observed = time.time_ns()
        timestamp = getattr(record, "timestamp", None)
        otel: dict[str, Any] = {}
        if type(timestamp) is int:
            otel["time_unix_nano"] = timestamp
        else:
            timestamp = None
        otel["observed_time_unix_nano"] = observed
        number = None
        try:
            severity = record.severity_number
            number = None if severity is None else int(getattr(severity, "value", severity))
            otel["severity_number"] = number
        except Exception:  # noqa: BLE001 - severity unreadable too: leave it out
            number = None
        ts = _seconds(timestamp if timestamp is not None else observed)
        _tag_wide_ints(otel)
        otel["resource"] = {"attributes": {}}
        line = {
            "ts": ts,
            "mt": severity_bucket(number) if number is not None and 0 <= number <= 24 else "error",
            "msg": f"logxpy-otel could not encode this record: {_safe_repr(exc)}",
            "_otel": otel,
        }
        body = _escape_separators(orjson.dumps(_scrub(line), default=_safe_repr))[1:]
        return (None, ts, True, body, b"", None, None)


#: The ``_otel`` fields that hold ints: a value outside the 64-bit range (a timestamp
#: in the wrong unit, a hostile severity) is tagged as any such int is.
_INT_FIELDS: Final = ("time_unix_nano", "observed_time_unix_nano", "severity_number", "trace_flags")


def _id_hex(value: int, digits: int) -> str:
    """A trace (32) or span (16) id as lowercase hex; "" when it does not fit (then tagged)."""
    text = f"{value:0{digits}x}"
    return text if len(text) == digits and text[0] != "-" else ""


def _tag_wide_ints(otel: dict[str, Any]) -> None:
    """Tag (``{"$int": ...}``) the int fields of ``otel`` that JSON numbers cannot carry."""
    for name in _INT_FIELDS:
        value = otel.get(name)
        if isinstance(value, int) and not _INT_MIN <= value <= _INT_MAX:
            otel[name] = _int_tag(int(value))


def _seconds(nanos: int) -> float:
    """``nanos`` as Unix seconds (``ts``): a plain float (an int subclass such as numpy's
    ``int64`` divides into a float subclass, which orjson refuses), finite for any int
    (far-out values are clamped)."""
    try:
        return int(nanos) / 1e9
    except OverflowError:
        return sys.float_info.max if nanos > 0 else -sys.float_info.max


def _escape_separators(data: bytes) -> bytes:
    """Escape U+0085, U+2028 and U+2029, which ``str.splitlines()`` readers take for line breaks."""
    if data.isascii():
        return data
    return (
        data.replace(b"\xc2\x85", b"\\u0085")
        .replace(b"\xe2\x80\xa8", b"\\u2028")
        .replace(b"\xe2\x80\xa9", b"\\u2029")
    )
