"""The record line format (docs/format.md, version 1): ``LineEncoder`` and the value tags."""

from __future__ import annotations

import base64
import functools
import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import _helpers
import orjson
import pytest
from _helpers import any_char, clean, nested_values, normalize, tag_keys
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TraceFlags

from logxpy_otel._format import (
    RESERVED_KEYS,
    LineEncoder,
    decode_value,
    encode_value,
    severity_bucket,
)

TS = 1_795_722_644_041_077_001  # not exactly representable as a float: checks the ints stay exact
OBSERVED = 1_795_722_644_041_078_058
TRACE_ID = 0x5B8EFFF798038103D269B633813FC60C
SPAN_ID = 0xEEE19B7EC3C1B174
FALLBACK_MSG = "logxpy-otel could not encode this record"
_UNSET: Any = object()


#: :func:`_helpers.make_record` with this module's timestamps and body (tests/test_speedups.py
#: uses it too).
make_record = functools.partial(_helpers.make_record, timestamp=TS, observed=OBSERVED, body="hello")


def parse_body(body: bytes) -> dict[str, Any]:
    """The line a ``LineItem`` body stands for; fails on anything but one JSON object."""
    assert isinstance(body, bytes)
    assert body.endswith(b"}")
    assert b"\n" not in body and b"\r" not in body
    line = orjson.loads(b"{" + body)
    assert isinstance(line, dict)
    return line


def whole(item: tuple[Any, ...]) -> bytes:
    """A ``LineItem``'s line without its ``{``: its body and the shared tail."""
    return bytes(item[3] + item[4])


def encode_item(
    record: Any, resource: Any = None, scope: Any = None, dropped: int | None = 0, mode: str = "tree"
) -> tuple[Any, ...]:
    """The item of the pure-Python encoder, checked equal to the C encoder's where it is built.

    Every test here goes through both: the C encoder handles the common case itself (once
    it holds the scope/resource tail) and must give exactly the same bytes.
    """
    python = LineEncoder(mode, speedups=False).encode(record, resource, scope, dropped)
    encoder = LineEncoder(mode)
    encoder.encode(record, resource, scope, dropped)  # the first call caches the tail
    assert encoder.encode(record, resource, scope, dropped) == python
    return python


def encode(
    record: LogRecord,
    resource: Any = None,
    scope: Any = None,
    dropped: int = 0,
    mode: str = "tree",
) -> tuple[str | None, float, bool, dict[str, Any], bytes]:
    tid, ts, failed, body, tail, span_id, role = encode_item(record, resource, scope, dropped, mode)
    assert role is None, "a log record's line is never a span's"
    assert span_id == parse_body(body + tail)["_otel"].get("span_id") or span_id is None
    return tid, ts, failed, parse_body(body + tail), body + tail


def encode_line(**kwargs: Any) -> dict[str, Any]:
    return encode(make_record(**kwargs))[3]


def json_roundtrip(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def assert_not_fallback(line: dict[str, Any]) -> None:
    assert not str(line["msg"]).startswith(FALLBACK_MSG), line["msg"]


# --- keys, order, timestamps -------------------------------------------------------------------


def test_record_line_keys_in_order() -> None:
    attributes = {"http.route": "/users", "user.id": 42, "zeta": True, "alpha": None}
    line = encode_line(attributes=attributes, severity=SeverityNumber.INFO)
    assert list(line) == ["ts", "mt", "msg", "http.route", "user.id", "zeta", "alpha", "_otel"]
    assert "at" not in line
    assert line["http.route"] == "/users"
    assert line["user.id"] == 42
    assert line["zeta"] is True
    assert line["alpha"] is None


@pytest.mark.parametrize(
    ("timestamp", "observed"),
    [(TS, OBSERVED), (OBSERVED, TS), (0, OBSERVED), (1, 2)],
)
def test_ts_is_timestamp_and_exact_nanos_are_kept(timestamp: int, observed: int) -> None:
    _, ts, _, line, _ = encode(make_record(timestamp=timestamp, observed=observed))
    assert ts == timestamp / 1e9
    assert line["ts"] == timestamp / 1e9
    assert isinstance(line["ts"], float)
    otel = line["_otel"]
    assert type(otel["time_unix_nano"]) is int
    assert otel["time_unix_nano"] == timestamp
    assert type(otel["observed_time_unix_nano"]) is int
    assert otel["observed_time_unix_nano"] == observed


def test_ts_falls_back_to_observed_timestamp() -> None:
    _, ts, _, line, _ = encode(make_record(timestamp=None, observed=OBSERVED))
    assert ts == OBSERVED / 1e9
    assert line["ts"] == OBSERVED / 1e9
    assert "time_unix_nano" not in line["_otel"]
    assert line["_otel"]["observed_time_unix_nano"] == OBSERVED


def test_exact_nanos_in_json_text() -> None:
    body = encode(make_record())[4]
    assert f'"time_unix_nano":{TS}'.encode() in body
    assert f'"observed_time_unix_nano":{OBSERVED}'.encode() in body


# --- severity ------------------------------------------------------------------------------------


def expected_bucket(number: int | None) -> str:
    if not number:
        return "info"
    if number <= 8:
        return "debug"
    if number <= 12:
        return "info"
    if number <= 16:
        return "warning"
    if number <= 20:
        return "error"
    return "critical"


@pytest.mark.parametrize("number", [None, *range(25)])
def test_mt_bucket_and_failed_flag(number: int | None) -> None:
    severity = None if number is None else SeverityNumber(number)
    _, _, failed, line, _ = encode(make_record(severity=severity))
    assert line["mt"] == expected_bucket(number)
    assert severity_bucket(number) == expected_bucket(number)
    assert failed is (number is not None and number >= 17)
    if number is None:
        assert "severity_number" not in line["_otel"]
    else:
        assert line["_otel"]["severity_number"] == number


BUCKET_EDGES = [
    (1, "debug"),
    (8, "debug"),
    (9, "info"),
    (12, "info"),
    (13, "warning"),
    (16, "warning"),
    (17, "error"),
    (20, "error"),
    (21, "critical"),
    (24, "critical"),
    (0, "info"),
    (None, "info"),
]


@pytest.mark.parametrize(("number", "bucket"), BUCKET_EDGES)
def test_severity_bucket_edges(number: int | None, bucket: str) -> None:
    assert severity_bucket(number) == bucket


def test_plain_int_severity_is_accepted() -> None:
    line = encode_line(severity=18)
    assert line["mt"] == "error"
    assert line["_otel"]["severity_number"] == 18


# --- msg and body --------------------------------------------------------------------------------


def test_string_body_is_msg_and_not_repeated() -> None:
    line = encode_line(body="user signed in")
    assert line["msg"] == "user signed in"
    assert "body" not in line["_otel"]


def test_empty_string_body() -> None:
    line = encode_line(body="")
    assert line["msg"] == ""
    assert "body" not in line["_otel"]


def test_none_body_gives_empty_msg_and_null_body() -> None:
    line = encode_line(body=None)
    assert line["msg"] == ""
    assert "body" in line["_otel"]
    assert line["_otel"]["body"] is None


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"a": [1, 2], "b": "c"}, '{"a":[1,2],"b":"c"}'),
        ([1, "two", None], '[1,"two",null]'),
        ((1, 2.5), "[1,2.5]"),
        (42, "42"),
        (2**64, '{"$int":"18446744073709551616"}'),
        (1.0, "1.0"),
        (True, "true"),
        (b"\x00\xff", '{"$bytes":"AP8="}'),
        (float("nan"), '{"$float":"nan"}'),
        ({"$int": "1"}, '{"$map":{"$int":"1"}}'),
    ],
)
def test_non_string_body_is_compact_json_msg(body: Any, text: str) -> None:
    line = encode_line(body=body)
    assert line["msg"] == text
    assert line["msg"] == orjson.dumps(encode_value(body)).decode()
    assert line["_otel"]["body"] == json_roundtrip(encode_value(body))
    assert line["_otel"]["body"] == orjson.loads(text)


def test_str_subclass_body_is_a_string() -> None:
    class Text(str):
        pass

    line = encode_line(body=Text("hello"))
    assert line["msg"] == "hello"
    assert "body" not in line["_otel"]


# --- _otel defaults --------------------------------------------------------------------------------


def test_otel_defaults_are_left_out() -> None:
    line = encode_line(body="x")
    assert line["_otel"] == {
        "time_unix_nano": TS,
        "observed_time_unix_nano": OBSERVED,
        "resource": {"attributes": {}},
    }
    assert list(line) == ["ts", "mt", "msg", "_otel"]


def test_otel_fields_present_when_set() -> None:
    record = make_record(
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        trace_flags=1,
        severity=SeverityNumber.ERROR,
        severity_text="ERROR",
        attributes={"ts": 5, "ok": 1},
        event_name="user.login",
    )
    _, _, failed, line, _ = encode(record, dropped=3)
    otel = line["_otel"]
    assert failed is True
    assert otel["severity_number"] == 17
    assert otel["severity_text"] == "ERROR"
    assert otel["span_id"] == "eee19b7ec3c1b174"
    assert otel["trace_flags"] == 1
    assert otel["event_name"] == "user.login"
    assert otel["attributes"] == {"ts": 5}
    assert otel["dropped_attributes_count"] == 3
    assert "resource" in otel


def test_span_id_is_16_lowercase_hex() -> None:
    otel = encode(make_record(trace_id=TRACE_ID, span_id=0xAB))[3]["_otel"]
    assert otel["span_id"] == "00000000000000ab"


def test_zero_trace_flags_left_out() -> None:
    otel = encode(make_record(trace_id=TRACE_ID, span_id=SPAN_ID, trace_flags=0))[3]["_otel"]
    assert "trace_flags" not in otel
    assert otel["span_id"] == "eee19b7ec3c1b174"


def test_no_span_leaves_out_span_id_and_flags() -> None:
    otel = encode_line()["_otel"]
    assert "span_id" not in otel
    assert "trace_flags" not in otel
    assert "trace_id" not in otel


@pytest.mark.parametrize("event_name", [None, ""])
def test_unset_or_empty_event_name_left_out(event_name: str | None) -> None:
    assert "event_name" not in encode_line(event_name=event_name)["_otel"]


def test_empty_severity_text_is_kept_but_none_is_not() -> None:
    assert encode_line(severity_text="")["_otel"]["severity_text"] == ""
    assert "severity_text" not in encode_line(severity_text=None)["_otel"]


def test_no_collision_means_no_otel_attributes() -> None:
    otel = encode_line(attributes={"a": 1, "http.route": "/"})["_otel"]
    assert "attributes" not in otel


def test_zero_dropped_count_left_out() -> None:
    otel = encode(make_record(), dropped=0)[3]["_otel"]
    assert "dropped_attributes_count" not in otel


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (None, {"attributes": {}}),
        (Resource({}), {"attributes": {}}),
        (Resource({"service.name": "shop"}), {"attributes": {"service.name": "shop"}}),
        (
            Resource({"service.name": "shop", "n": 3}, schema_url="https://opentelemetry.io/schemas/1.21.0"),
            {
                "attributes": {"service.name": "shop", "n": 3},
                "schema_url": "https://opentelemetry.io/schemas/1.21.0",
            },
        ),
        (Resource({}, schema_url="https://s"), {"attributes": {}, "schema_url": "https://s"}),
    ],
)
def test_resource_always_present(resource: Any, expected: dict[str, Any]) -> None:
    line = encode(make_record(), resource=resource)[3]
    assert line["_otel"]["resource"] == expected


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (InstrumentationScope("app.auth"), {"name": "app.auth"}),
        (InstrumentationScope("app.auth", "1.2.3"), {"name": "app.auth", "version": "1.2.3"}),
        (
            InstrumentationScope("app", schema_url="https://s"),
            {"name": "app", "schema_url": "https://s"},
        ),
        (
            InstrumentationScope("app", "2", "https://s", {"k": "v", "n": 1}),
            {"name": "app", "version": "2", "schema_url": "https://s", "attributes": {"k": "v", "n": 1}},
        ),
    ],
)
def test_scope(scope: InstrumentationScope, expected: dict[str, Any]) -> None:
    line = encode(make_record(), scope=scope)[3]
    assert line["_otel"]["scope"] == expected


def test_no_scope_key_without_scope() -> None:
    line = encode(make_record(), scope=None)[3]
    assert "scope" not in line["_otel"]


# --- tree / flat trace ids -------------------------------------------------------------------------


def test_tree_mode_trace_id_is_tid() -> None:
    tid, _, _, line, _ = encode(make_record(trace_id=TRACE_ID, span_id=SPAN_ID), mode="tree")
    assert tid == "5b8efff798038103d269b633813fc60c"
    assert re.fullmatch("[0-9a-f]{32}", tid)
    assert "trace_id" not in line["_otel"]
    assert "tid" not in line


def test_tree_mode_small_trace_id_is_zero_padded() -> None:
    tid = encode(make_record(trace_id=0xABC, span_id=1), mode="tree")[0]
    assert tid == "0" * 29 + "abc"


def test_flat_mode_trace_id_in_otel() -> None:
    tid, _, _, line, _ = encode(make_record(trace_id=TRACE_ID, span_id=SPAN_ID), mode="flat")
    assert tid is None
    assert line["_otel"]["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert line["_otel"]["span_id"] == "eee19b7ec3c1b174"


@pytest.mark.parametrize("mode", ["tree", "flat"])
def test_no_trace_means_no_tid_and_no_trace_id(mode: str) -> None:
    tid, _, _, line, body = encode(make_record(), mode=mode)
    assert tid is None
    assert "trace_id" not in line["_otel"]
    assert b"trace_id" not in body


def test_encoder_mode_property() -> None:
    assert LineEncoder().mode == "tree"
    assert LineEncoder("flat").mode == "flat"
    with pytest.raises(ValueError):
        LineEncoder("bushy")


# --- reserved keys ---------------------------------------------------------------------------------


def test_reserved_keys_match_the_docs() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "format.md").read_text("utf-8")
    found = re.search(r"gives it a meaning: `([^`]*)`", text)
    assert found is not None
    assert set(found.group(1).split()) == set(RESERVED_KEYS)


@pytest.mark.parametrize("key", sorted(RESERVED_KEYS))
def test_reserved_attribute_goes_to_otel_attributes(key: str) -> None:
    marker = "reserved-value-" + key
    line = encode_line(attributes={key: marker, "http.route": "/x"})
    assert line["_otel"]["attributes"] == {key: marker}
    assert line.get(key) != marker
    if key not in {"ts", "mt", "msg", "_otel"}:
        assert key not in line
    assert line["http.route"] == "/x"
    assert isinstance(line["ts"], float)
    assert line["msg"] == "hello"
    assert line["mt"] == "info"


def test_several_reserved_attributes_with_encoded_values() -> None:
    line = encode_line(attributes={"level": 2**70, "dur": b"ab", "at": [1, 2], "x": 1})
    assert line["_otel"]["attributes"] == {
        "level": {"$int": str(2**70)},
        "dur": {"$bytes": "YWI="},
        "at": [1, 2],
    }
    assert "at" not in line
    assert line["x"] == 1


@pytest.mark.parametrize(
    "key",
    [
        "http.route",
        "exception.stacktrace",
        "message.id",
        "ts.unit",
        "eliot.task_uuid",
        "logxpy.x",
        "Message",
        "msg ",
        "otel",
    ],
)
def test_normal_names_stay_top_level(key: str) -> None:
    line = encode_line(attributes={key: "v"})
    assert line[key] == "v"
    assert "attributes" not in line["_otel"]


# --- value tags ------------------------------------------------------------------------------------


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class NonStrRepr:
    def __repr__(self) -> Any:
        return 42


class Thing:
    def __repr__(self) -> str:
        return "Thing<7>"


VALUE_CASES: list[tuple[Any, Any]] = [
    (2**64, {"$int": "18446744073709551616"}),
    (2**63, 9223372036854775808),
    (2**64 - 1, 18446744073709551615),
    (-(2**63) - 1, {"$int": "-9223372036854775809"}),
    (2**63 - 1, 9223372036854775807),
    (-(2**63), -9223372036854775808),
    (10**30, {"$int": "1" + "0" * 30}),
    (0, 0),
    (b"", {"$bytes": ""}),
    (b"\x00\xffhello", {"$bytes": base64.b64encode(b"\x00\xffhello").decode()}),
    (bytearray(b"ab"), [97, 98]),  # (a sequence of ints, as OTLP sends it)
    (memoryview(b"ab"), [97, 98]),  # (so too: it was bytes until session 33)
    (float("nan"), {"$float": "nan"}),
    (float("inf"), {"$float": "inf"}),
    (float("-inf"), {"$float": "-inf"}),
    (1.0, 1.0),
    (-0.5, -0.5),
    (True, True),
    (None, None),
    ("plain", "plain"),
    ((1, "a", None), [1, "a", None]),
    ([1, [2, (3,)]], [1, [2, [3]]]),
    ((), []),
    ({"$int": "5"}, {"$map": {"$int": "5"}}),
    ({"$bytes": "AA=="}, {"$map": {"$bytes": "AA=="}}),
    ({"$float": "nan"}, {"$map": {"$float": "nan"}}),
    ({"$map": {"a": 1}}, {"$map": {"$map": {"a": 1}}}),
    ({"$int": 3}, {"$map": {"$int": 3}}),
    ({"$int": "5", "x": 1}, {"$int": "5", "x": 1}),
    ({"$map": 1, "$int": "2"}, {"$map": 1, "$int": "2"}),
    ({"$other": "x"}, {"$other": "x"}),
    ({}, {}),
    ({"n": {"$float": "inf"}}, {"n": {"$map": {"$float": "inf"}}}),
    ({"big": 2**64, "f": float("-inf")}, {"big": {"$int": str(2**64)}, "f": {"$float": "-inf"}}),
    ("a\ud800b", "a\ufffdb"),
    ("\udfff\ud800", "\ufffd\ufffd"),
    (["x\udc00"], ["x\ufffd"]),
    ({"k\ud800": "v\udfff"}, {"k\ufffd": "v\ufffd"}),
    ({"outer": [{"in\udbff": ("\ud834",)}]}, {"outer": [{"in\ufffd": ["\ufffd"]}]}),
    (Thing(), "Thing<7>"),
    ({1: "a", None: "b"}, {"1": "a", "None": "b"}),
]


def value_id(case: Any) -> str:
    return repr(case)[:40]


@pytest.mark.parametrize(("value", "expected"), VALUE_CASES, ids=value_id)
def test_encode_value_tags(value: Any, expected: Any) -> None:
    assert json_roundtrip(encode_value(value)) == expected


@pytest.mark.parametrize(("value", "expected"), VALUE_CASES, ids=value_id)
def test_attribute_value_tags(value: Any, expected: Any) -> None:
    line = encode_line(attributes={"attr": value})
    assert_not_fallback(line)
    assert line["attr"] == expected


@pytest.mark.parametrize(("value", "expected"), VALUE_CASES, ids=value_id)
def test_body_value_tags(value: Any, expected: Any) -> None:
    line = encode_line(body=value)
    assert_not_fallback(line)
    if type(value) is str:
        assert line["msg"] == expected
        assert "body" not in line["_otel"]
    else:
        assert line["_otel"]["body"] == expected


def test_int_range_edges_in_json_text() -> None:
    assert orjson.dumps(encode_value(2**63 - 1)) == b"9223372036854775807"
    assert orjson.dumps(encode_value(-(2**63))) == b"-9223372036854775808"
    assert orjson.dumps(encode_value(2**64 - 1)) == b"18446744073709551615"
    assert orjson.dumps(encode_value(2**64)) == b'{"$int":"18446744073709551616"}'
    assert orjson.dumps(encode_value(-(2**63) - 1)) == b'{"$int":"-9223372036854775809"}'


def test_float_stays_float_in_json_text() -> None:
    assert orjson.dumps(encode_value(1.0)) == b"1.0"
    body = encode(make_record(attributes={"f": 1.0, "g": [2.0]}))[4]
    assert b'"f":1.0' in body
    assert b'"g":[2.0]' in body
    line = parse_body(body)
    assert type(line["f"]) is float


def test_nan_never_written_as_bare_token() -> None:
    body = encode(make_record(body=[float("nan")], attributes={"a": float("inf"), "b": float("-inf")}))[4]
    for token in (b"NaN", b"Infinity", b"nan,", b":nan", b":inf"):
        assert token not in body
    line = parse_body(body)
    assert line["a"] == {"$float": "inf"}
    assert line["b"] == {"$float": "-inf"}
    assert line["_otel"]["body"] == [{"$float": "nan"}]


def test_int_and_float_subclasses_encode_as_numbers() -> None:
    class MyInt(int):
        pass

    class MyFloat(float):
        pass

    assert json_roundtrip(encode_value(MyInt(5))) == 5
    assert json_roundtrip(encode_value(MyInt(2**64))) == {"$int": str(2**64)}
    assert json_roundtrip(encode_value(MyFloat("nan"))) == {"$float": "nan"}
    line = encode_line(attributes={"i": MyInt(7), "f": MyFloat(2.5)})
    assert line["i"] == 7
    assert line["f"] == 2.5


def test_huge_int_is_tagged_not_dropped() -> None:
    huge = 10**5000
    assert json_roundtrip(encode_value(huge)) == {"$int": "1" + "0" * 5000}
    line = encode_line(attributes={"huge": huge, "keep": "me"})
    assert_not_fallback(line)
    assert line["keep"] == "me"
    assert line["huge"] == {"$int": "1" + "0" * 5000}


# --- surrogates ------------------------------------------------------------------------------------


def test_surrogates_in_attribute_keys_and_values() -> None:
    line = encode_line(attributes={"k\ud800": "v\udfff", "nested": {"x\udc00": ["\ud800"]}})
    assert_not_fallback(line)
    assert line["k\ufffd"] == "v\ufffd"
    assert line["nested"] == {"x\ufffd": ["\ufffd"]}


def test_surrogates_in_reserved_attribute() -> None:
    line = encode_line(attributes={"message": "bad\ud800"})
    assert line["_otel"]["attributes"] == {"message": "bad\ufffd"}


def test_surrogates_in_string_body() -> None:
    line = encode_line(body="oops \ud800 here")
    assert line["msg"] == "oops \ufffd here"
    assert "body" not in line["_otel"]


def test_surrogates_in_nested_body() -> None:
    line = encode_line(body={"key\udbff": ["a\udc00", {"deep\ud800": "\udfff"}]})
    assert_not_fallback(line)
    expected = {"key\ufffd": ["a\ufffd", {"deep\ufffd": "\ufffd"}]}
    assert line["_otel"]["body"] == expected
    assert orjson.loads(line["msg"]) == expected


def test_surrogates_in_severity_text_event_name_scope_and_resource() -> None:
    record = make_record(severity_text="ERR\ud800", event_name="ev\udfff")
    scope = InstrumentationScope("scope\ud800", "v\ud800", "https://s\ud800", {"a": "b\ud800"})
    resource = Resource({"service.name": "s\udfff"}, schema_url="https://r\ud800")
    line = encode(record, resource=resource, scope=scope)[3]
    assert_not_fallback(line)
    otel = line["_otel"]
    assert otel["severity_text"] == "ERR\ufffd"
    assert otel["event_name"] == "ev\ufffd"
    assert otel["scope"] == {
        "name": "scope\ufffd",
        "version": "v\ufffd",
        "schema_url": "https://s\ufffd",
        "attributes": {"a": "b\ufffd"},
    }
    assert otel["resource"] == {"attributes": {"service.name": "s\ufffd"}, "schema_url": "https://r\ufffd"}


# --- odd objects ---------------------------------------------------------------------------------


def test_failing_repr_names_the_type() -> None:
    out = encode_value(BadRepr())
    assert isinstance(out, str)
    assert "BadRepr" in out
    line = encode_line(attributes={"obj": BadRepr()}, body=BadRepr())
    assert_not_fallback(line)
    assert isinstance(line["obj"], str)
    assert "BadRepr" in line["obj"]
    assert "BadRepr" in line["_otel"]["body"]
    assert "BadRepr" in line["msg"]


def test_non_string_repr_names_the_type() -> None:
    out = encode_value(NonStrRepr())
    assert isinstance(out, str)
    assert "NonStrRepr" in out


def test_unknown_object_is_its_repr() -> None:
    assert encode_value(Thing()) == "Thing<7>"
    obj = object()
    assert encode_value(obj) == repr(obj)
    line = encode_line(attributes={"thing": Thing(), "set": {3}})
    assert line["thing"] == "Thing<7>"
    assert line["set"] == "{3}"


def test_repr_with_surrogates_is_cleaned() -> None:
    class Weird:
        def __repr__(self) -> str:
            return "weird\ud800"

    assert encode_value(Weird()) == "weird\ufffd"
    assert encode_line(attributes={"w": Weird()})["w"] == "weird\ufffd"


def test_hostile_sequence_falls_back_to_repr() -> None:
    from collections.abc import Sequence

    class Hostile(Sequence):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: Any) -> Any:
            raise KeyError("nope")

        def __repr__(self) -> str:
            return "Hostile()"

    assert encode_value(Hostile()) == "Hostile()"
    line = encode_line(attributes={"h": Hostile(), "ok": 1})
    assert line["h"] == "Hostile()"
    assert line["ok"] == 1


# --- deep nesting and hostile strings --------------------------------------------------------------


def nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def nested_tag_maps(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"$int": "1"}
    for _ in range(depth):
        value = {"$int": value}
    return value


def self_ref_list() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


def self_ref_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    value["self"] = value
    return value


DEEP_VALUES = [
    pytest.param(lambda: nested_list(10_000), id="list-10000"),
    pytest.param(lambda: nested_list(300), id="list-300"),
    pytest.param(lambda: nested_tag_maps(300), id="tag-maps-300"),
    pytest.param(self_ref_list, id="self-list"),
    pytest.param(self_ref_dict, id="self-dict"),
]


@pytest.mark.parametrize("make", DEEP_VALUES)
def test_deep_values_encode_without_raising(make: Any) -> None:
    out = encode_value(make())
    assert isinstance(orjson.loads(orjson.dumps(out)), list | dict | str)


@pytest.mark.parametrize("make", DEEP_VALUES)
@pytest.mark.parametrize("where", ["attribute", "reserved", "body", "scope"])
def test_deep_values_yield_a_valid_line(make: Any, where: str) -> None:
    value = make()
    resource = None
    scope = None
    if where == "attribute":
        record = make_record(attributes={"deep": value, "keep": 1})
    elif where == "reserved":
        record = make_record(attributes={"message": value, "keep": 1})
    elif where == "body":
        record = make_record(body=value, attributes={"keep": 1})
    else:
        record = make_record(attributes={"keep": 1})
        # The SDK's InstrumentationScope refuses such attributes; the encoder takes any scope.
        scope = SimpleNamespace(name="s", version=None, schema_url=None, attributes={"deep": value})
    _, _, _, line, _ = encode(record, resource, scope)
    assert_not_fallback(line)
    assert line["keep"] == 1
    if where == "attribute":
        assert "deep" in line
    elif where == "reserved":
        assert "message" in line["_otel"]["attributes"]
    elif where == "body":
        assert line["_otel"]["body"] is not None
        assert isinstance(orjson.loads(line["msg"]), list | dict | str)
    else:
        assert line["_otel"]["scope"]["name"] == "s"


HOSTILE = ["\n", "\r", "\r\n", "a\nb", "\u2028", "\u2029", "\x00", '"', "'", "\\", '"}\n{"x":1', "\x85", "\t"]


@pytest.mark.parametrize("s", HOSTILE, ids=repr)
def test_hostile_strings_never_break_the_line(s: str) -> None:
    record = make_record(
        body=s,
        severity_text=s,
        event_name=s,
        attributes={s: s, "k": s, "nested": {s: [s]}},
    )
    scope = InstrumentationScope(s, s, s, {s: s})
    resource = Resource({"r": s}, schema_url=s)
    _, _, _, line, body = encode(record, resource, scope)
    assert b"\n" not in body
    assert b"\r" not in body
    assert line["msg"] == s
    assert line["k"] == s
    assert line[s] == s
    assert line["nested"] == {s: [s]}
    assert line["_otel"]["severity_text"] == s
    assert line["_otel"]["event_name"] == s
    assert line["_otel"]["resource"]["attributes"] == {"r": s}
    assert line["_otel"]["scope"]["name"] == s


@pytest.mark.parametrize("s", HOSTILE, ids=repr)
def test_hostile_strings_in_non_string_body(s: str) -> None:
    line = encode(make_record(body=[s, {s: s}]))[3]
    assert line["_otel"]["body"] == [s, {s: s}]
    assert orjson.loads(line["msg"]) == [s, {s: s}]


# --- caching -------------------------------------------------------------------------------------


def test_same_resource_and_scope_are_serialized_once() -> None:
    encoder = LineEncoder()
    resource = Resource({"service.name": "shop", "n": 1})
    scope = InstrumentationScope("app", "1")
    first_item = encoder.encode(make_record(body="one"), resource, scope)
    second_item = encoder.encode(make_record(body="two"), resource, scope)
    first, second = whole(first_item), whole(second_item)
    assert len(encoder._tails) == 1
    tail1 = first[first.index(b'"scope"') :]
    tail2 = second[second.index(b'"scope"') :]
    assert tail1 == tail2
    ((cached_scope, cached_resource, tail),) = encoder._tails.values()
    assert cached_scope is scope and cached_resource is resource
    assert first.endswith(tail)
    assert first_item[4] is tail and second_item[4] is tail, "items share the tail, not copies of it"
    encoder.encode(make_record(body="three"), resource, scope)
    assert next(iter(encoder._tails.values()))[2] is tail, "reused, not serialized again"


def test_different_resources_get_their_own_entries() -> None:
    encoder = LineEncoder()
    r1 = Resource({"service.name": "a"})
    r2 = Resource({"service.name": "b"})
    l1 = parse_body(whole(encoder.encode(make_record(), r1)))
    l2 = parse_body(whole(encoder.encode(make_record(), r2)))
    assert len(encoder._tails) == 2
    assert l1["_otel"]["resource"] == {"attributes": {"service.name": "a"}}
    assert l2["_otel"]["resource"] == {"attributes": {"service.name": "b"}}


def test_equal_but_distinct_resources_are_each_correct() -> None:
    encoder = LineEncoder()
    for name in ("x", "y", "x"):
        line = parse_body(whole(encoder.encode(make_record(), Resource({"service.name": name}))))
        assert line["_otel"]["resource"]["attributes"] == {"service.name": name}


def test_cache_stays_bounded() -> None:
    encoder = LineEncoder()
    keep = [Resource({"i": i}) for i in range(600)]
    for resource in keep:
        line = parse_body(whole(encoder.encode(make_record(), resource)))
        assert line["_otel"]["resource"] == {"attributes": dict(resource.attributes)}
    assert 1 <= len(encoder._tails) <= 256


# --- decode_value --------------------------------------------------------------------------------


def test_decode_map_wrapping_an_untagged_looking_value() -> None:
    assert decode_value({"$map": {"$int": 3}}) == {"$int": 3}
    assert decode_value({"$map": {"$int": "3"}}) == {"$int": "3"}


def test_decode_two_key_dict_is_plain() -> None:
    assert decode_value({"$int": "3", "x": 1}) == {"$int": "3", "x": 1}
    assert decode_value({"$map": {"a": 1}, "b": [1]}) == {"$map": {"a": 1}, "b": (1,)}


def test_decode_tags() -> None:
    assert decode_value({"$int": "-9223372036854775809"}) == -(2**63) - 1
    assert decode_value({"$bytes": "AP8="}) == b"\x00\xff"
    assert math.isnan(decode_value({"$float": "nan"}))
    assert decode_value({"$float": "-inf"}) == float("-inf")
    assert decode_value([1, [2], {"a": [3]}]) == (1, (2,), {"a": (3,)})
    assert decode_value({"$int": 3}) == {"$int": 3}


# --- properties ----------------------------------------------------------------------------------

#: Any text, often with lone surrogates (``st.text`` alone almost never makes them).
_text = st.text() | st.lists(any_char, max_size=12).map("".join)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.sampled_from([2**64, 2**64 - 1, 2**63, 2**63 - 1, -(2**63), -(2**63) - 1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | _text
    | st.binary()
    | tag_keys
)
_values = nested_values(_scalars, _text, max_leaves=20)


def same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN and types must match."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def test_same_helper() -> None:
    assert same(float("nan"), float("nan"))
    assert not same(1, 1.0)
    assert not same(True, 1)
    assert same({"a": (float("nan"),)}, {"a": (float("nan"),)})
    assert not same({"a": (1,)}, {"a": (2,)})
    assert not same((1,), (1, 2))
    assert normalize(["\ud800", {"k\udfff": [b"x"]}]) == ("\ufffd", {"k\ufffd": (b"x",)})


@settings(max_examples=300, deadline=None)
@given(_values)
def test_encode_decode_roundtrip(value: Any) -> None:
    data = orjson.dumps(encode_value(value))
    assert b"\n" not in data
    back = decode_value(orjson.loads(data))
    assert same(back, normalize(value)), (back, value)


@settings(max_examples=200, deadline=None)
@given(
    body=_values,
    attributes=st.dictionaries(_text, _values, max_size=6),
    mode=st.sampled_from(["tree", "flat"]),
)
def test_any_record_gives_one_line(body: Any, attributes: dict[str, Any], mode: str) -> None:
    record = make_record(body=body, attributes=attributes, trace_id=TRACE_ID, span_id=SPAN_ID)
    body_bytes = whole(encode_item(record, dropped=None, mode=mode))
    assert b"\n" not in body_bytes
    assert b"\r" not in body_bytes
    line = orjson.loads(b"{" + body_bytes)
    assert isinstance(line, dict)
    assert_not_fallback(line)
    assert list(line)[:3] == ["ts", "mt", "msg"]
    assert list(line)[-1] == "_otel"
    assert isinstance(line["msg"], str)
    # Reading back per docs/format.md gives the body and the attributes.
    got_body = decode_value(line["_otel"]["body"]) if "body" in line["_otel"] else line["msg"]
    assert same(got_body, normalize(body))
    read_attrs = {k: v for k, v in line.items() if k not in RESERVED_KEYS}
    read_attrs.update(line["_otel"].get("attributes", {}))
    expected = {clean(k): normalize(v) for k, v in attributes.items()}
    assert same({k: decode_value(v) for k, v in read_attrs.items()}, expected)


# --- line separators other than \n, and the last-resort line -----------------------------------


def test_unicode_line_separators_are_escaped() -> None:
    """U+0085, U+2028, U+2029 split lines for ``str.splitlines()`` readers: never written raw."""
    text = "a\u2028b\u2029c\x85d é"
    line_bytes = b"{" + whole(encode_item(make_record(body=text, attributes={"k": text})))
    for raw in ("\u2028", "\u2029", "\x85"):
        assert raw.encode() not in line_bytes
    assert len(line_bytes.decode().splitlines()) == 1
    line = orjson.loads(line_bytes)
    assert line["msg"] == text and line["k"] == text


def test_fallback_line_keeps_times_and_severity() -> None:
    class Hostile:
        timestamp = TS
        observed_timestamp = OBSERVED
        severity_number = SeverityNumber.WARN

        @property
        def body(self) -> str:
            raise RuntimeError("no body for you")

    tid, ts, failed, body, tail, _, _ = LineEncoder().encode(Hostile())
    line = orjson.loads(b"{" + body)
    assert tid is None and failed is True and tail == b""
    assert ts == line["ts"] == TS / 1e9
    assert line["mt"] == "warning"
    assert line["msg"].startswith("logxpy-otel could not encode this record")
    assert line["_otel"]["time_unix_nano"] == TS
    assert line["_otel"]["observed_time_unix_nano"] == OBSERVED
    assert line["_otel"]["severity_number"] == SeverityNumber.WARN.value


# --- ints the SDK accepts but JSON numbers cannot carry (issue 12, item 1) -------------------------

WIDE = [2**64, 2**64 * 10**6, -(2**63) - 1, 10**400]


@pytest.mark.parametrize("value", WIDE, ids=lambda v: f"{len(str(v))}digits")
@pytest.mark.parametrize("field", ["timestamp", "observed_timestamp"])
def test_far_out_timestamps_are_tagged_not_lost(field: str, value: int) -> None:
    record = LogRecord(body="keep me", attributes={"a": 1}, **{field: value})
    _, ts, _, line, _ = encode(record)
    assert_not_fallback(line)
    assert line["msg"] == "keep me" and line["a"] == 1
    key = "time_unix_nano" if field == "timestamp" else "observed_time_unix_nano"
    assert decode_value(line["_otel"][key]) == value
    assert line["_otel"][key] == {"$int": str(value)}
    assert math.isfinite(ts) and line["ts"] == ts


@pytest.mark.parametrize("value", [2**64, -(2**70)])
def test_far_out_severity_number_is_tagged(value: int) -> None:
    line = encode(LogRecord(body="x", severity_number=value))[3]  # type: ignore[arg-type]
    assert_not_fallback(line)
    assert line["_otel"]["severity_number"] == {"$int": str(value)}


@pytest.mark.parametrize(
    ("trace_id", "span_id"), [(2**128, 1), (-5, -7), (1, 2**64), (2**200, 2**100)], ids=str
)
def test_ids_otel_cannot_carry_are_tagged_and_make_no_tree(trace_id: int, span_id: int) -> None:
    record = LogRecord(body="x", trace_id=trace_id, span_id=span_id, trace_flags=TraceFlags(1))
    tid, _, _, line, _ = encode(record)
    assert_not_fallback(line)
    otel = line["_otel"]
    if 0 < trace_id < 2**128:
        assert tid == f"{trace_id:032x}" and "trace_id" not in otel
    else:
        assert tid is None and otel["trace_id"] == {"$int": str(trace_id)}
    expected_span = f"{span_id:016x}" if 0 < span_id < 2**64 else {"$int": str(span_id)}
    assert otel["span_id"] == expected_span


def test_wide_trace_flags_are_tagged() -> None:
    record = LogRecord(body="x", trace_id=1, span_id=1, trace_flags=2**70)  # type: ignore[arg-type]
    assert encode(record)[3]["_otel"]["trace_flags"] == {"$int": str(2**70)}


# -- what a record without some of its fields becomes (issue 13 item 8) -------------------------


def test_a_record_without_observed_timestamp_is_observed_at_its_timestamp() -> None:
    """Not at the time it happens to be encoded: a replayed or late record keeps its time."""
    record = make_record(timestamp=TS)
    record.observed_timestamp = None  # the API fills it in; other producers may not
    _, ts, _, line, _ = encode(record)
    assert ts == TS / 1e9
    assert line["_otel"]["time_unix_nano"] == TS
    assert line["_otel"]["observed_time_unix_nano"] == TS


def test_an_empty_scope_version_is_kept_as_the_sdk_keeps_it() -> None:
    line = encode(make_record(), scope=InstrumentationScope("app", ""))[3]
    assert line["_otel"]["scope"] == {"name": "app", "version": ""}


class _NumpyLikeInt(int):
    """As numpy's ``int64`` behaves: dividing it gives a float *subclass* (orjson refuses those)."""

    class Float(float):
        pass

    def __truediv__(self, other: Any) -> Any:
        return _NumpyLikeInt.Float(int(self) / other)


def test_a_timestamp_of_an_int_subclass_gives_a_plain_float_ts() -> None:
    """A timestamp column from numpy or pandas: ``ts`` is still a JSON number, and the item's
    ts a plain float (the writer's trace lines dump it: a float subclass crashed the writer)."""
    record = make_record(timestamp=_NumpyLikeInt(TS), observed=_NumpyLikeInt(OBSERVED))
    _, ts, _, line, _ = encode(record)
    assert type(ts) is float and ts == TS / 1e9
    assert line["ts"] == TS / 1e9 and line["_otel"]["time_unix_nano"] == TS
