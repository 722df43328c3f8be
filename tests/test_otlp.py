"""The nearest form OTLP carries (``_otlp``): what the OTLP encoder would drop or refuse,
put in a form it takes, for replay and the fallback's live sends alike."""

from __future__ import annotations

import enum
import logging
from collections import namedtuple
from typing import Any

import pytest
from _helpers import make_record, readable_record
from opentelemetry.sdk.resources import Resource

from logxpy_otel._otlp import otlp_encoder, otlp_form

encode = otlp_encoder()
pytestmark = pytest.mark.skipif(encode is None, reason="the otlp extra is not installed")


class Text(str):
    """A str subclass (an enum's value, a library's own string type)."""


class Number(int):
    """An int subclass (``numpy.int64`` is not one, but many are)."""


class Flags(enum.IntFlag):
    HUGE = 2**64


Pair = namedtuple("Pair", "left right")


def _encoded_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    from opentelemetry.proto.common.v1 import common_pb2

    def plain(value: common_pb2.AnyValue) -> Any:
        kind = value.WhichOneof("value")
        if kind == "array_value":
            return [plain(v) for v in value.array_value.values]
        if kind == "kvlist_value":
            return {kv.key: plain(kv.value) for kv in value.kvlist_value.values}
        return getattr(value, kind) if kind else None

    record = readable_record(make_record(body="b", attributes=attributes), Resource({}))
    formed, _changed = otlp_form(record)
    assert encode is not None
    request = encode([formed])
    (sent,) = request.resource_logs[0].scope_logs[0].log_records
    return {kv.key: plain(kv.value) for kv in sent.attributes}


def test_subclasses_of_str_and_int_are_put_in_the_nearest_form_too(caplog: pytest.LogCaptureFixture) -> None:
    """Review of session 33's live nearest form: it looked at exact types only, so a str
    subclass with a lone surrogate, an int subclass or an ``IntFlag`` of 2**64, such a
    key in a map, or such a value in a named tuple, still reached the OTLP encoder, which
    dropped that attribute with a log line only."""
    attributes = {
        "text": Text("a\ud800b"),
        "number": Number(2**64),
        "flag": Flags.HUGE,
        "map": {Text("k\udc00"): 1},
        "pair": Pair(Text("x\ud800"), 2**65),
        "plain": 1,
        "flag_fits": True,
    }
    with caplog.at_level(logging.ERROR):
        sent = _encoded_attributes(attributes)
    assert sent == {
        "text": "a\ufffdb",
        "number": str(2**64),
        "flag": str(2**64),
        "map": {"k\ufffd": 1},
        "pair": ["x\ufffd", str(2**65)],
        "plain": 1,
        "flag_fits": True,
    }
    assert not [r for r in caplog.records if "Failed to encode" in r.getMessage()]


class Blob(bytearray):
    """A bytearray that says so when it is walked item by item."""

    def __iter__(self) -> Any:
        raise AssertionError("walked int by int")


def test_a_bytearray_or_memoryview_is_left_as_it_is_never_walked() -> None:
    """A bytearray (or memoryview) holds ints that fit: left as it is, never walked int by
    int (a megabyte of it would be a million calls on the sender thread); a subclass too,
    which the exact-type path does not catch."""
    blob = Blob(1_000_000)
    view = memoryview(bytearray(16))
    record = readable_record(make_record(body=blob, attributes={"blob": blob, "view": view}), Resource({}))
    formed, changed = otlp_form(record)
    assert not changed and formed is record


# -- a review of replay's fidelity (session 35) ----------------------------------------------


def _sent(record: Any) -> Any:
    """The OTLP record the encoder makes of ``record``'s nearest form, with its resource
    and scope."""
    formed, _changed = otlp_form(record)
    assert encode is not None
    request = encode([formed])
    resource_logs = request.resource_logs[0]
    scope_logs = resource_logs.scope_logs[0]
    return resource_logs, scope_logs, scope_logs.log_records[0]


@pytest.mark.parametrize(("given", "sent"), [(9, 9), (25, 25), (-1, -1), (True, 1)])
def test_a_severity_number_given_as_a_plain_int_is_sent_as_that_number(given: Any, sent: int) -> None:
    """The SDK takes ``emit(severity_number=9)``; the OTLP encoder reads ``.value``, which a
    plain int has not, and sent 0 live, while replay (the reader makes it an enum member or
    an ``OtherSeverity``) sent 9."""
    record = readable_record(make_record(body="b", severity=given), Resource({}))
    assert _sent(record)[2].severity_number == sent


def test_lone_surrogates_in_the_record_s_texts_the_scope_and_the_resource_go_as_u_fffd() -> None:
    """A lone surrogate in the severity text, the event name, the scope's name, version or
    schema URL, or the resource's schema URL made the OTLP encoder refuse the record: live,
    it went to the fallback's file for nothing (replay then sent it, the file holding
    U+FFFD). Each now goes as U+FFFD, as in a body or an attribute."""
    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    bad = "x\udc80y"
    record = ReadableLogRecord(
        make_record(body="b", severity_text=bad, event_name=bad),
        Resource({"service.name": "s"}, schema_url=bad),
        InstrumentationScope(bad, bad, bad),
    )
    resource_logs, scope_logs, sent = _sent(record)
    assert sent.severity_text == sent.event_name == "x\ufffdy"
    assert scope_logs.scope.name == scope_logs.scope.version == scope_logs.schema_url == "x\ufffdy"
    assert resource_logs.schema_url == "x\ufffdy"
