"""What the OTLP encoder takes: a record in the nearest form OTLP carries, and the records
of a batch it still refuses, found without sending.

The SDK accepts records the OTLP encoder cannot carry. An int beyond 64 bits in a body
makes an OTLP exporter fail the whole batch, as it would for a collector that is down; in
an attribute the encoder drops that attribute with a log line only. Replay and the
fallback's live sends both send the nearest form, and tell refusals from a collector that
is down here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import orjson
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TraceFlags

from ._format import clean_str, encode_value
from .reader import severity

__all__ = ["MAX_NESTING", "encoded_parts", "otlp_encoder", "otlp_form"]

Encoder = Callable[[Sequence[ReadableLogRecord]], Any]


def otlp_encoder() -> Encoder | None:
    """The OTLP exporters' encoder of log records; None where it is not installed."""
    try:
        from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    except ImportError:  # pragma: no cover - the otlp extra is not installed: no check
        return None
    return encode_logs


def encoded_parts(
    records: Sequence[ReadableLogRecord], encode: Encoder, limit: int
) -> tuple[dict[int, str], list[list[int]]]:
    """The records the OTLP encoder refuses or that are larger than ``limit`` alone (by
    index, with the reason), and the others in parts (runs of indexes, in order) that each
    encode within ``limit``: the batch is encoded locally, and halved only where it fails
    or is too large. Nothing is sent."""
    refused: dict[int, str] = {}

    def split(indexes: list[int]) -> list[list[int]]:
        try:
            size = encode([records[i] for i in indexes]).ByteSize()
        except Exception as exc:  # noqa: BLE001 - some record in it is refused: find which
            if len(indexes) == 1:
                refused[indexes[0]] = f"the OTLP encoder cannot take this record: {type(exc).__name__}: {exc}"
                return []
        else:
            if size <= limit:
                return [indexes]
            if len(indexes) == 1:
                refused[indexes[0]] = (
                    f"larger than a collector takes ({size} bytes encoded, more than {limit}; "
                    "see --max-request-bytes)"
                )
                return []
        half = len(indexes) // 2
        return split(indexes[:half]) + split(indexes[half:])

    parts = split(list(range(len(records)))) if records else []
    return refused, parts


# -- the nearest form OTLP can carry ----------------------------------------------------------

_I64: Final = (-(1 << 63), (1 << 63) - 1)
_I32: Final = (-(1 << 31), (1 << 31) - 1)
_U64: Final = (0, (1 << 64) - 1)
_U32: Final = (0, (1 << 32) - 1)


def _decimal(value: int) -> str:
    """Decimal digits of any int (``Decimal`` is not bound by the int-to-str digit limit)."""
    try:
        return str(value)
    except ValueError:
        return str(Decimal(value))


#: How deep lists and maps nest in a value sent as it is. Each level is 2 or 3 protobuf
#: messages deep, under 6 (request, resource, scope, record, key-value, value), and
#: protobuf decoders refuse a message past 100 (upb's default); the OTLP encoder drops an
#: attribute it cannot encode, with a log line only. A container this deep goes as its
#: JSON text.
MAX_NESTING: Final = 16


def _value(value: Any, depth: int = 0) -> Any:
    """``value`` as OTLP's AnyValue can hold it: ints beyond 64 bits as decimal strings, a
    list or map nested ``MAX_NESTING`` deep as its JSON text, lone surrogates in a string
    or key as U+FFFD (as the file has them: protobuf takes only UTF-8). Subclasses and
    other sequences and maps too, as the OTLP encoder tells them apart (``isinstance``).
    The same object when nothing changed."""
    t = type(value)
    if t is str:
        return value if value.isascii() else clean_str(value)
    if t is int:
        return value if _I64[0] <= value <= _I64[1] else _decimal(value)
    if t is bool or t is float or t is bytes or value is None:
        return value
    if t is tuple or t is list or t is dict:
        if depth >= MAX_NESTING:
            return _json_text(value)
        return _pairs(value, depth + 1) if t is dict else _items(value, depth + 1)
    return _other(value, depth)


def _other(value: Any, depth: int) -> Any:
    """:func:`_value` of what is not of an exact plain type: subclasses (an ``IntFlag``, a
    library's str type, a named tuple) and other sequences and maps."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        plain = str.__str__(value)
        return plain if plain.isascii() else clean_str(plain)
    if isinstance(value, int):
        return value if _I64[0] <= value <= _I64[1] else _decimal(int(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return value  # (its ints all fit: never walked one by one)
    if isinstance(value, Mapping | Sequence):
        if depth >= MAX_NESTING:
            return _json_text(value)
        return _pairs(value, depth + 1) if isinstance(value, Mapping) else _items(value, depth + 1)
    return value


def _items(sequence: Sequence[Any], depth: int) -> Any:
    """:func:`_value` of a sequence's items: ``sequence`` itself when none changed, else
    a tuple."""
    items = [_value(v, depth) for v in sequence]
    return sequence if all(a is b for a, b in zip(items, sequence, strict=True)) else tuple(items)


def _pairs(mapping: Mapping[Any, Any], depth: int) -> Any:
    """:func:`_value` of a map's keys and values: ``mapping`` itself when none changed."""
    pairs = [(_value(k) if isinstance(k, str) else k, _value(v, depth)) for k, v in mapping.items()]
    same = all(a is k and b is v for (a, b), (k, v) in zip(pairs, mapping.items(), strict=True))
    return mapping if same else dict(pairs)


def _json_text(value: Any) -> str:
    """``value`` as the JSON text the file holds for it: the format's own encoding, with its
    tags (``$bytes``, ``$int``, ``$float`` for NaN and inf, ``$map``). Raises ``ValueError``
    for what JSON cannot hold (nested past orjson's 255 levels)."""
    try:
        return orjson.dumps(encode_value(value)).decode()
    except TypeError as exc:  # (orjson's error for depth)
        raise ValueError(f"a value OTLP cannot carry, even as JSON text: {exc}") from None


#: Attribute value types OTLP carries as they are, whatever their value.
_AS_THEY_ARE: Final = frozenset({bool, float, bytes, type(None)})


def _attributes(attributes: Any) -> dict[str, Any] | None:
    """Converted attributes, or None when none changed. (Most records' attributes are
    ASCII strings, 64-bit ints, floats and bools: those are seen in one loop, with no copy.)"""
    if not attributes:
        return None
    for key, value in attributes.items():
        t = type(value)
        if t is str:
            if not value.isascii():
                break
        elif t is int:
            if not _I64[0] <= value <= _I64[1]:
                break
        elif t not in _AS_THEY_ARE:
            break
        if type(key) is not str or not key.isascii():
            break
    else:
        return None
    plain = dict(attributes)
    converted = _pairs(plain, 0)
    return None if converted is plain else converted


def _text(value: Any) -> Any:
    """A str field (a name, a version, a URL, a severity text) with each lone surrogate as
    U+FFFD, as the file has it (protobuf takes only UTF-8); the same object otherwise."""
    if not isinstance(value, str) or value.isascii():
        return value
    plain = str.__str__(value)
    cleaned = clean_str(plain)
    return value if cleaned == plain else cleaned


def _fits(value: Any, bounds: tuple[int, int]) -> bool:
    return not isinstance(value, int) or bounds[0] <= value <= bounds[1]


class OtlpForms:
    """Converted resources and scopes, by object (records of a file share them)."""

    def __init__(self) -> None:
        self.resources: dict[int, tuple[Resource, Resource]] = {}
        self.scopes: dict[int, tuple[InstrumentationScope, InstrumentationScope]] = {}

    def resource(self, resource: Resource) -> Resource:
        hit = self.resources.get(id(resource))
        if hit is None or hit[0] is not resource:
            converted = _attributes(resource.attributes)
            schema_url = _text(resource.schema_url)
            new = (
                resource
                if converted is None and schema_url is resource.schema_url
                else Resource(converted if converted is not None else resource.attributes, schema_url)
            )
            if len(self.resources) > 1024:
                self.resources.clear()
            hit = self.resources[id(resource)] = (resource, new)
        return hit[1]

    def scope(self, scope: InstrumentationScope | None) -> InstrumentationScope | None:
        if scope is None:
            return None
        hit = self.scopes.get(id(scope))
        if hit is None or hit[0] is not scope:
            converted = _attributes(scope.attributes)
            texts = (_text(scope.name), _text(scope.version), _text(scope.schema_url))
            new = (
                scope
                if converted is None and texts == (scope.name, scope.version, scope.schema_url)
                else InstrumentationScope(*texts, converted if converted is not None else scope.attributes)
            )
            if len(self.scopes) > 1024:
                self.scopes.clear()
            hit = self.scopes[id(scope)] = (scope, new)
        return hit[1]


def otlp_form(record: ReadableLogRecord, forms: OtlpForms | None = None) -> tuple[ReadableLogRecord, bool]:
    """``record`` in the nearest form OTLP can carry, and whether anything changed.

    Ints beyond 64 bits (AnyValue's int is int64) in the body, attributes, resource and
    scope become decimal strings, lone surrogates in their strings and keys U+FFFD, lists
    and maps nested ``MAX_NESTING`` deep their JSON text. A severity number beyond int32, a timestamp outside
    uint64, a trace id outside 128 bits, a span id outside 64 bits or flags outside
    uint32 are left unset (OTLP reads 0 there as unknown); a dropped-attribute count
    beyond uint32 is capped. Anything else is left as it is, but a severity number given as
    a plain int goes as that number (the encoder reads ``.value``, which an int has not, and
    would send 0), which is no change of what the record holds.
    """
    forms = forms if forms is not None else OtlpForms()
    old = record.log_record
    body = _value(old.body)
    attributes = _attributes(old.attributes)
    resource = forms.resource(record.resource)
    scope = forms.scope(record.instrumentation_scope)
    number = getattr(old.severity_number, "value", old.severity_number)
    dropped = record.dropped_attributes
    fixes: dict[str, Any] = {}
    if not _fits(number, _I32):
        fixes["severity_number"] = None
    plain_number = (
        severity(int(number))
        if isinstance(number, int) and not hasattr(old.severity_number, "value") and not fixes
        else None
    )
    for name in ("severity_text", "event_name"):
        text = getattr(old, name, None)
        cleaned = _text(text)
        if cleaned is not text:
            fixes[name] = cleaned
    if not _fits(old.timestamp, _U64):
        fixes["timestamp"] = None
    if not _fits(old.observed_timestamp, _U64):
        fixes["observed_timestamp"] = 0
    if not _fits(old.trace_id, (0, (1 << 128) - 1)):
        fixes["trace_id"] = 0
    if not _fits(old.span_id, _U64):
        fixes["span_id"] = 0
    if not _fits(old.trace_flags, _U32):
        fixes["trace_flags"] = TraceFlags(0)
    capped = min(dropped, _U32[1])
    changed = not (
        not fixes
        and body is old.body
        and attributes is None
        and capped == dropped
        and resource is record.resource
        and scope is record.instrumentation_scope
    )
    if not changed and plain_number is None:
        return record, False
    new = copy.copy(old)
    for name, value in fixes.items():
        setattr(new, name, value)
    if plain_number is not None:
        new.severity_number = plain_number
    new.body = body
    if attributes is not None or capped != dropped:
        bounded = BoundedAttributes(
            maxlen=None,
            attributes=attributes if attributes is not None else dict(old.attributes or {}),
            immutable=False,
        )
        bounded.dropped = capped
        new.attributes = bounded
    return ReadableLogRecord(log_record=new, resource=resource, instrumentation_scope=scope), changed
