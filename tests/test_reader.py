"""Reading back: encode then decode gives the same OTel record, for anything the SDK accepts."""

from __future__ import annotations

import decimal
import enum
import math
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from _helpers import any_char, clean, nested_values, normalize, span_context, tag_keys
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import TraceFlags

from logxpy_otel import LogxpyLogRecordProcessor, reader
from logxpy_otel._format import LineEncoder
from logxpy_otel._trees import TreeNumberer
from logxpy_otel.reader import BadLine, LineRecord, decode_line, read_file


class Capture(LogRecordProcessor):
    def __init__(self) -> None:
        self.records: list[ReadWriteLogRecord] = []

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self.records.append(log_record)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


capture = Capture()
provider = LoggerProvider(
    resource=Resource({"service.name": "reader", "n": 3, "big": 2**70, "blob": b"\x00"}, "https://schema/1"),
    shutdown_on_exit=False,
)
provider.add_log_record_processor(capture)

text = st.text(max_size=20)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    text,
    st.binary(max_size=10),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)
attribute_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    text,
    st.binary(max_size=10),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.dictionaries(text, st.integers(), max_size=3),
)
attribute_names = st.one_of(st.sampled_from(["msg", "level", "ts", "_otel", "http.route", "a.b"]), text)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _line(record: ReadWriteLogRecord, mode: str) -> dict[str, Any]:
    item = LineEncoder(mode).encode(
        record.log_record, record.resource, record.instrumentation_scope, record.dropped_attributes
    )
    out: list[bytes] = []
    TreeNumberer().number([item], out)
    lines = [orjson.loads(raw) for raw in b"".join(out).splitlines()]
    return next(line for line in lines if "at" not in line)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=values,
    attributes=st.dictionaries(attribute_names, attribute_values, max_size=6),
    severity=st.one_of(st.none(), st.sampled_from(list(SeverityNumber))),
    severity_text=st.one_of(st.none(), text),
    timestamp=st.one_of(st.none(), st.integers(min_value=0, max_value=2**63 - 1)),
    observed=st.integers(min_value=1, max_value=2**63 - 1),
    trace_id=st.one_of(st.just(0), st.integers(min_value=1, max_value=2**128 - 1)),
    span_id=st.integers(min_value=1, max_value=2**64 - 1),
    flags=st.integers(min_value=0, max_value=255),
    event_name=st.one_of(st.none(), text),
    mode=st.sampled_from(["tree", "flat"]),
    scope_version=st.one_of(st.none(), text),
)
def test_any_record_the_sdk_accepts_round_trips(
    body: Any,
    attributes: dict[str, Any],
    severity: SeverityNumber | None,
    severity_text: str | None,
    timestamp: int | None,
    observed: int,
    trace_id: int,
    span_id: int,
    flags: int,
    event_name: str | None,
    mode: str,
    scope_version: str | None,
) -> None:
    capture.records.clear()
    context = span_context(trace_id, span_id, flags) if trace_id else Context()
    logger = provider.get_logger("reader.test", scope_version, "https://scope/1")
    logger.emit(
        timestamp=timestamp,
        observed_timestamp=observed,
        context=context,
        severity_number=severity,
        severity_text=severity_text,
        body=body,
        attributes=attributes,
        event_name=event_name,
    )
    (original,) = capture.records
    back = decode_line(_line(original, mode))
    assert back is not None
    a, b = original.log_record, back.log_record
    assert _same(b.body, a.body)
    assert _same(dict(b.attributes or {}), dict(a.attributes or {}))
    assert (b.severity_number, b.severity_text) == (a.severity_number, a.severity_text)
    assert (b.timestamp, b.observed_timestamp) == (a.timestamp, a.observed_timestamp)
    assert (b.trace_id, b.span_id if a.trace_id else 0) == (a.trace_id, a.span_id if a.trace_id else 0)
    assert int(b.trace_flags or 0) == int(a.trace_flags or 0)
    assert (b.event_name or None) == (a.event_name or None)
    assert back.dropped_attributes == original.dropped_attributes
    assert back.resource.attributes == original.resource.attributes
    assert back.resource.schema_url == original.resource.schema_url
    assert back.instrumentation_scope == original.instrumentation_scope


class _Code(enum.IntEnum):
    OK = 200


@pytest.mark.parametrize(
    ("scope_name", "body"),
    [
        ("reader.keys", {_Code.OK: "x", decimal.Decimal("1.50"): "y", ("t", 1): "z"}),
        (None, "a logger named None"),
        ("reader.bytearray", bytearray(b"\x01\x02")),
        ("reader.memoryview", memoryview(b"\x01\x02")),
    ],
    ids=["keys of other types", "scope named None", "bytearray body", "memoryview body"],
)
def test_a_record_read_back_encodes_to_the_otlp_request_the_record_makes(scope_name: Any, body: Any) -> None:
    """What OTLP sends of a record, the record read back sends too: a mapping body's keys
    as ``str()`` gives them (the file had ``repr()``: ``"<Code.OK: 200>"``), a logger
    named None without a scope name (the file said ``"None"``), a bytearray body as the
    array of ints OTLP makes of it (the file had bytes)."""
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs

    capture.records.clear()
    provider.get_logger(scope_name).emit(body=body, observed_timestamp=1, timestamp=2)
    (original,) = capture.records
    back = decode_line(_line(original, "tree"))
    assert back is not None
    assert encode_logs([back]).SerializeToString() == encode_logs([original]).SerializeToString()


def test_dropped_attribute_count_survives() -> None:
    limited = LoggerProvider(shutdown_on_exit=False)
    limited._log_record_limits.max_log_record_attributes = 2  # type: ignore[attr-defined]
    keep = Capture()
    limited.add_log_record_processor(keep)
    limited.get_logger("x").emit(body="b", attributes={"a": 1, "b": 2, "c": 3, "d": 4})
    (original,) = keep.records
    assert original.dropped_attributes == 2
    back = decode_line(_line(original, "tree"))
    assert back is not None and back.dropped_attributes == 2


def test_read_file_yields_records_with_offsets_and_skips_structure(tmp_path: Path) -> None:
    capture.records.clear()
    logger = provider.get_logger("file")
    logger.emit(body="one", context=span_context(7, 9))
    logger.emit(body="two")
    items = [LineEncoder().encode(r.log_record, r.resource, r.instrumentation_scope) for r in capture.records]
    numberer = TreeNumberer()
    out: list[bytes] = []
    numberer.number(items, out)
    numberer.close_all(out)
    data = b"".join(out) + b"not json\n"
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    entries = list(read_file(path))
    records = [e for e in entries if isinstance(e, LineRecord)]
    bad = [e for e in entries if isinstance(e, BadLine)]
    assert [r.record.log_record.body for r in records] == ["one", "two"]
    assert records[0].record.log_record.trace_id == 7
    assert data[: records[-1].end].endswith(b"\n") and data[records[-1].end :].startswith(b'{"tid"')
    assert len(bad) == 1 and not bad[0].torn and data[bad[0].start : bad[0].end] == b"not json\n"
    resumed = [e for e in read_file(path, records[0].end) if isinstance(e, LineRecord)]
    assert [r.record.log_record.body for r in resumed] == ["two"]


@given(st.binary(max_size=40) | st.text(max_size=12).map(str.encode), st.integers(0, 40), st.integers(4, 9))
def test_the_first_byte_that_is_not_utf8_is_found_piece_by_piece(data: bytes, cut: int, piece: int) -> None:
    """_not_utf8 decodes a piece at a time (a huge line is never one str): where a piece ends
    inside a character, or anywhere, it names the byte a whole decode names first."""
    data = data[:cut] + b"\xff" + data[cut:] if cut % 3 == 0 else data
    try:
        data.decode()
        first = None
    except UnicodeDecodeError as exc:
        first = exc.start
    with mock.patch.object(reader, "_UTF8_PIECE", piece):
        said = reader._not_utf8(data)
    byte = data[first : first + 1] if first is not None else b""
    assert said == (None if first is None else f"not UTF-8 at byte {first} of the line ({byte!r})")


def test_a_line_that_is_not_utf8_is_said_so(tmp_path: Path) -> None:
    """orjson calls any byte that is not UTF-8 a surrogate ("surrogates not allowed"); the
    reason says what is wrong, and where, for a line whose JSON is otherwise whole."""
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"tid":"a.1","lvl":[1],"ts":5,"msg":"caf\xe9"}\n{"a":"\\ud800"}\n')
    first, second = list(read_file(path))
    assert isinstance(first, BadLine) and isinstance(second, BadLine)
    assert first.reason == "not a record line: not UTF-8 at byte 40 of the line (b'\\xe9')", first.reason
    assert "surrogate" in second.reason, "an escaped lone surrogate is what orjson says it is"


# -- written by the package's writer, read back by the reader (issue 11) ----------------------

#: Any text, often with lone surrogates (as in tests/test_format.py).
_text = st.text(max_size=12) | st.lists(any_char, max_size=8).map("".join)
#: Ints JSON numbers cannot carry, and the edges of the 64-bit ranges.
_wide = st.sampled_from([2**64, 2**64 - 1, 2**63, 2**63 - 1, -(2**63), -(2**63) - 1, 10**30, -(2**70)])
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | _wide
    | st.floats(allow_nan=True, allow_infinity=True)
    | _text
    | st.binary(max_size=12)
    | tag_keys
)
_values = nested_values(_scalars, _text, max_leaves=12)
_names = st.sampled_from(["msg", "level", "ts", "tid", "_otel", "at", "http.route", "a.b"]) | _text
#: Every severity the writer writes: enum members, None, and any int (the SDK takes them).
_severities = (
    st.none()
    | st.sampled_from(list(SeverityNumber))
    | st.integers(min_value=-5, max_value=40)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | _wide
)
_times = st.none() | st.integers(min_value=0, max_value=2**63 - 1) | _wide
_ids = st.just(0) | st.integers(min_value=1, max_value=2**128 - 1) | _wide | st.sampled_from([-5, 2**128])


_record = st.fixed_dictionaries(
    {
        "body": _values,
        "attributes": st.dictionaries(_names, _values, max_size=5),
        "severity_number": _severities,
        "severity_text": st.none() | _text,
        "timestamp": _times,
        "observed_timestamp": st.integers(min_value=1, max_value=2**63 - 1) | _wide,
        "trace_id": _ids,
        "span_id": _ids,
        "trace_flags": st.integers(min_value=0, max_value=255) | _wide,
        "event_name": st.none() | _text,
    }
)


@pytest.mark.parametrize("mode", ["tree", "flat"])
def test_every_record_the_writer_writes_reads_back_equal(tmp_path: Path, mode: str) -> None:
    """Records of every kind the SDK accepts go through the package's real writer (the
    processor, its writer thread, the file), and the reader gives each one back."""
    path = tmp_path / "written.jsonl"
    sdk = LoggerProvider(
        resource=Resource({"service.name": "w", "big": 2**70, "blob": b"\x00", "nan": math.nan}),
        shutdown_on_exit=False,
    )
    kept = Capture()
    sdk.add_log_record_processor(kept)
    processor = LogxpyLogRecordProcessor(path, mode=mode)
    sdk.add_log_record_processor(processor)
    loggers = [sdk.get_logger("w.plain"), sdk.get_logger("w.scoped", "2.0", "https://s/1", {"k": 2**65})]
    offset = [0]

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(records=st.lists(_record, min_size=1, max_size=4), which=st.integers(0, 1))
    def write_then_read(records: list[dict[str, Any]], which: int) -> None:
        kept.records.clear()
        for fields in records:
            flags = fields.pop("trace_flags")
            loggers[which].emit(LogRecord(trace_flags=TraceFlags(flags), **fields))
        assert processor.force_flush(10_000)
        entries = list(read_file(path, offset[0]))
        assert not [e for e in entries if isinstance(e, BadLine)], "every line reads"
        back = [e for e in entries if isinstance(e, LineRecord)]
        assert len(back) == len(kept.records)
        offset[0] = back[-1].end
        for original, entry in zip(kept.records, back, strict=True):
            a, b = original.log_record, entry.record.log_record
            assert _same(b.body, normalize(a.body))
            expected = {clean(k): normalize(v) for k, v in dict(a.attributes or {}).items()}
            assert _same(dict(b.attributes or {}), expected)
            assert getattr(b.severity_number, "value", b.severity_number) == getattr(
                a.severity_number, "value", a.severity_number
            )
            assert type(b.severity_number) is not int, "an enum member, or an int with .value"
            assert b.severity_text == (None if a.severity_text is None else clean(a.severity_text))
            assert (b.timestamp, b.observed_timestamp) == (a.timestamp, a.observed_timestamp)
            assert (b.trace_id, b.span_id, int(b.trace_flags)) == (a.trace_id, a.span_id, int(a.trace_flags))
            assert (b.event_name or None) == (clean(a.event_name) if a.event_name else None)
            assert entry.record.dropped_attributes == original.dropped_attributes
            assert entry.record.instrumentation_scope == original.instrumentation_scope
            resource = dict(original.resource.attributes)
            assert _same(dict(entry.record.resource.attributes), resource)

    try:
        write_then_read()
    finally:
        processor.shutdown()
        sdk.shutdown()


# -- issue 13 item 8: tests that notice when the code is wrong ----------------------------------


def test_the_unterminated_last_line_of_a_file_that_cannot_grow_is_read(tmp_path: Path) -> None:
    """A growing file's last line with no newline may still be being written (pending); a
    rotated backup's (``final``) or a gzip file's is read if it parses."""
    import gzip

    capture.records.clear()
    logger = provider.get_logger("final")
    logger.emit(body="one")
    logger.emit(body="two")
    items = [LineEncoder().encode(r.log_record, r.resource, r.instrumentation_scope) for r in capture.records]
    out: list[bytes] = []
    TreeNumberer().number(items, out)
    data = b"".join(out)[:-1]  # the last line lost its newline (a crash mid-write)
    path = tmp_path / "cut.jsonl"
    path.write_bytes(data)
    growing = list(read_file(path))
    assert isinstance(growing[0], LineRecord) and isinstance(growing[1], BadLine)
    assert growing[1].pending and len(growing) == 2
    final = list(read_file(path, final=True))
    assert all(isinstance(e, LineRecord) for e in final)
    assert [e.record.log_record.body for e in final if isinstance(e, LineRecord)] == ["one", "two"]
    assert final[-1].end == len(data)
    compressed = tmp_path / "cut.jsonl.gz"
    compressed.write_bytes(gzip.compress(data))
    assert [e.record.log_record.body for e in read_file(compressed) if isinstance(e, LineRecord)] == [
        "one",
        "two",
    ], "a gzip file cannot grow"


def test_an_int_tag_with_an_exponent_or_too_many_digits_is_read_in_no_time() -> None:
    """``{"$int": "1e1000000"}`` (212 bytes of line) took 39 s to read (an int of a million
    digits, through Decimal); ten million digits, minutes. Only plain digits are an int,
    and only up to MAX_INT_DIGITS: longer, the digits as they are."""
    import time

    from logxpy_otel._format import MAX_INT_DIGITS, decode_value

    start = time.process_time()
    assert decode_value({"$int": "1e1000000"}) == {"$int": "1e1000000"}
    assert decode_value({"$int": "7" * 200_000}) == "7" * 200_000
    assert decode_value({"$int": "-" + "9" * MAX_INT_DIGITS}) == -(10**MAX_INT_DIGITS - 1)
    assert decode_value({"$int": "\u0661\u0662"}) == {"$int": "\u0661\u0662"}
    assert time.process_time() - start < 5.0  # (it was minutes: any machine does this in ms)


# -- session 28 ---------------------------------------------------------------------------------


def _gzip_source(tmp_path: Path, name: str, count: int, first: int = 0) -> bytes:
    """The bytes of a flat file of ``count`` records (``rec.id`` ``first`` on)."""
    source = tmp_path / name
    local = LoggerProvider(resource=Resource({"service.name": "gz"}), shutdown_on_exit=False)
    local.add_log_record_processor(LogxpyLogRecordProcessor(source, mode="flat"))
    for n in range(first, first + count):
        local.get_logger("gz").emit(body=f"record {n}", attributes={"rec.id": str(n), "n": n})
    local.shutdown()
    return source.read_bytes()


def test_a_gzip_file_damaged_or_cut_gives_no_line_it_did_not_hold(tmp_path: Path) -> None:
    """A bit flipped inside a ``.gz`` backup (a bad disk block, a copy gone wrong) made the
    decompressor give other bytes for a while before gzip's checksum failed at the end:
    lines that parse, with other values (68 of 304 single-bit flips in one run), which
    replay sent on. Cut short as well, the checksum went with the end and nothing was
    noticed (a hostile review: 1,460 of 7,448 flip-and-cut cases). A member's lines are
    now read only once its checksum has passed; the rest is reported, never read."""
    import gzip

    data = _gzip_source(tmp_path, "src.jsonl", 120)
    lines = set(data.splitlines(keepends=True))
    packed = gzip.compress(data, mtime=0)
    damaged = tmp_path / "damaged.jsonl.gz"
    for pos in range(10, len(packed) - 8, max(1, (len(packed) - 18) // 60)):  # (the deflate body)
        for flip, cut in ((0x01, 0), (0x80, 0), (0x04, 20), (0x10, 3)):
            changed = bytearray(packed)
            changed[pos] ^= flip
            damaged.write_bytes(changed[: len(changed) - cut])
            got = list(read_file(damaged))
            foreign = [e.raw for e in got if isinstance(e, LineRecord) and e.raw not in lines]
            assert foreign == [], (pos, flip, cut, foreign[:1])
            if cut or not isinstance(got[-1], LineRecord):  # (a flip zlib ignores: the data is whole)
                assert got == [BadLine(0, 0, got[0].reason, False)], (pos, flip, cut)
                assert "not read, since nothing proves them" in got[0].reason, got[0].reason
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    (only,) = read_file(cut)
    assert isinstance(only, BadLine) and only.reason.startswith("cut short: ") and only.start == 0


def test_the_lines_of_each_gzip_member_whose_checksum_passed_are_read(tmp_path: Path) -> None:
    """Members are checked one by one (``cat a.gz b.gz`` is a gzip file too, and gzip pads
    with zeros): the lines of a whole member are read, those of a damaged or cut one after
    it are not, and the report says from which byte."""
    import gzip

    first, second = _gzip_source(tmp_path, "a.jsonl", 10), _gzip_source(tmp_path, "b.jsonl", 10, first=10)
    one, two = gzip.compress(first, mtime=0), gzip.compress(second, mtime=0)
    path = tmp_path / "two.jsonl.gz"
    path.write_bytes(one + b"\0" * 7 + two)
    got = list(read_file(path))
    assert [e.raw for e in got] == (first + second).splitlines(keepends=True)
    damaged_two = bytearray(two)
    damaged_two[len(two) // 2] ^= 0x08
    for tail in (bytes(damaged_two), two[:-30], b"not gzip"):
        path.write_bytes(one + tail)
        got = list(read_file(path))
        assert [e.raw for e in got[:-1]] == first.splitlines(keepends=True)
        assert got[-1] == BadLine(len(first), len(first), got[-1].reason, False), got[-1]
        assert f"from byte {len(first)} on are not read" in got[-1].reason
        # where a run stopped inside the part nothing proves: that part is not read either
        (resumed,) = read_file(path, len(first) + 5)
        assert isinstance(resumed, BadLine) and resumed.start == len(first) + 5


def test_a_line_longer_than_the_bound_is_skipped_as_it_is_read_never_held_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``readline()`` had no bound: a 70 KB ``.gz`` of zeros with no newline was one line of
    70 MB in memory (and a few MB of gzip, gigabytes), which replay then copied into its
    dead letters. A line past ``MAX_LINE_BYTES`` is now read in pieces and skipped, and
    reported with its bytes (its piece of a growing file that has no newline yet waits,
    as a torn line does); the records around it are read."""
    import gzip
    import tracemalloc

    from logxpy_otel import reader

    monkeypatch.setattr(reader, "MAX_LINE_BYTES", 1 << 20)
    good = _gzip_source(tmp_path, "src.jsonl", 2)
    first, second = good.splitlines(keepends=True)
    long = b"\0" * (8 << 20) + b"\n"
    packed = tmp_path / "long.jsonl.gz"
    packed.write_bytes(gzip.compress(first + long + second, mtime=0))
    plain = tmp_path / "long.jsonl"
    plain.write_bytes(first + long + second + long[:-1])
    for path, final in ((packed, False), (plain, True), (plain, False)):
        tracemalloc.start()
        try:
            got = list(read_file(path, final=final))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 6 << 20, (path, peak)  # (the line's 8 MiB were held before)
        assert [e.raw for e in got if isinstance(e, LineRecord)] == [first, second]
        skipped = got[1]
        assert isinstance(skipped, BadLine) and (skipped.start, skipped.end) == (
            len(first),
            len(first) + len(long),
        )
        assert "longer than 1048576 bytes" in skipped.reason and skipped.raw == b""
        if path == plain:
            last = got[-1]
            assert (
                isinstance(last, BadLine)
                and last.pending is not final
                and last.start == len(first + long + second)
            )


def test_a_line_of_just_the_bound_is_read_and_a_longer_one_ends_at_its_own_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review of the bound above: a line of exactly ``MAX_LINE_BYTES`` bytes and its newline
    was taken for a longer one, and skipping it read on to the *next* newline: the record
    after it was lost (replay sent 0 and 2, the viewer showed 0 and 2); at a growing file's
    end it was reported pending ("no newline"), and swallowed the next record appended."""
    from logxpy_otel import reader

    monkeypatch.setattr(reader, "MAX_LINE_BYTES", 1000)
    rec = _gzip_source(tmp_path, "src.jsonl", 3).splitlines(keepends=True)
    for junk, long in ((b"x" * 1000 + b"\n", False), (b"x" * 1001 + b"\n", True)):
        path = tmp_path / f"{len(junk)}.jsonl"
        path.write_bytes(rec[0] + junk + rec[1] + rec[2])
        got = list(read_file(path))
        assert [e.raw for e in got if isinstance(e, LineRecord)] == rec, len(junk)
        (bad,) = [e for e in got if isinstance(e, BadLine)]
        assert (bad.start, bad.end) == (len(rec[0]), len(rec[0] + junk))
        assert ("longer than 1000 bytes" in bad.reason) is long and not bad.pending
        path.write_bytes(rec[0] + junk)  # (a growing file that ends with it: read, not waited on)
        (_, bad) = read_file(path)
        assert isinstance(bad, BadLine) and not bad.pending and bad.end == len(rec[0] + junk)


def test_a_long_line_is_not_skipped_past_what_the_checksums_prove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: skipping a long line read on into a gzip member nothing proves (cut short),
    so the damage was reported from the long line's end, past the limit, and replay's
    checkpoint went there. The line that runs into it is reported from its own start."""
    import gzip

    from logxpy_otel import reader

    monkeypatch.setattr(reader, "MAX_LINE_BYTES", 1000)
    rec = _gzip_source(tmp_path, "src.jsonl", 2).splitlines(keepends=True)
    first = rec[0] + b"x" * 3000
    path = tmp_path / "long.jsonl.gz"
    cut = gzip.compress(b"x" * 3000 + b"\n" + rec[1], mtime=0)[:-10]
    path.write_bytes(gzip.compress(first, mtime=0) + cut)
    got = list(read_file(path))
    assert [e.raw for e in got] == [rec[0], b""]
    assert (got[1].start, got[1].end) == (len(rec[0]), len(rec[0]))
    assert f"from byte {len(first)} on are not read" in got[1].reason


def test_a_gzip_file_of_many_small_members_is_checked_in_linear_time(tmp_path: Path) -> None:
    """Review: each member's end made zlib copy the rest of the 1 MiB piece it was fed,
    quadratic in the members a piece holds (a 20 MB file of a million empty members took
    18 s). Measured against gzip's own reading of the same file, in the same run."""
    import gzip
    import io
    import time

    from logxpy_otel.reader import gzip_checked

    data = gzip.compress(b"", mtime=0) * 100_000 + gzip.compress(b"{}\n", mtime=0)

    def best(step: Any) -> float:
        times = []
        for _ in range(3):
            start = time.process_time()
            step()
            times.append(time.process_time() - start)
        return min(times)

    ours = best(lambda: gzip_checked(io.BytesIO(data)))
    theirs = best(lambda: gzip.GzipFile(fileobj=io.BytesIO(data)).read())
    assert gzip_checked(io.BytesIO(data)) == (3, None)
    assert ours < 3 * theirs, (ours, theirs)  # (it was 6.7 times, and grows with the file)


# -- session 33 ---------------------------------------------------------------------------------


def test_a_gzip_file_changed_in_place_after_its_check_gives_no_line_of_the_change(tmp_path: Path) -> None:
    """A ``.gz`` is checked whole before any line is read, then read again for its lines:
    a change in place between the two (outside damage, an editor, a copy over it) gave the
    changed lines, which parse, before the checksum failed at the member's end (replay sent
    them on). The file is now watched while it is read: once it is not the file that was
    checked (its size, times or inode), the lines stop, and why is said."""
    import gzip
    import os

    data = _gzip_source(tmp_path, "src.jsonl", 3_000)
    assert len(data) > 4 * 128 * 1024  # (read in several pieces)
    path = tmp_path / "stored.jsonl.gz"
    path.write_bytes(gzip.compress(data, compresslevel=0, mtime=0))  # (stored: the lines as they are)
    lines = data.splitlines(keepends=True)
    late = lines[-2]
    assert b'"rec.id":"2998"' in late
    got = read_file(path)
    first = next(got)
    assert isinstance(first, LineRecord) and first.raw == lines[0]  # (checked, and reading)
    raw = path.read_bytes()
    at = raw.rindex(b'"rec.id":"2998"') + len(b'"rec.id":"')
    before = os.stat(path)
    with path.open("r+b") as f:  # the same size, the same inode: one digit changed
        f.seek(at)
        f.write(b"7")
    # (a change at a later clock tick than the check: file times are coarse, so a change
    # within the same tick as the check's look is said with its time set apart)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    rest = list(got)
    assert not [e for e in rest if isinstance(e, LineRecord) and b'"rec.id":"7998"' in e.raw]
    assert all(e.raw in lines for e in rest if isinstance(e, LineRecord))
    assert isinstance(rest[-1], BadLine) and "changed" in rest[-1].reason, rest[-1]
    assert not rest[-1].torn


@pytest.mark.parametrize("change", ["unlink", "chmod", "rename", "link"])
def test_a_gzip_file_deleted_renamed_or_relinked_while_it_is_read_gives_all_its_lines(
    tmp_path: Path, change: str
) -> None:
    """Review of the change-in-place check: it compared the change time and size too, which
    a delete (``backup_count`` pruning a backup under a replay), a ``chmod``, a rename or a
    hard link change without touching a byte: the lines stopped there (2,899 of 3,000 left
    unsent, reported unreadable). Only the modification time (a write) and the inode count."""
    import gzip
    import os

    data = _gzip_source(tmp_path, "src.jsonl", 3_000)
    path = tmp_path / "app.20260101T000000.000000Z.jsonl.gz"
    path.write_bytes(gzip.compress(data, compresslevel=1, mtime=0))
    got = read_file(path)
    first = next(got)
    assert isinstance(first, LineRecord)
    if change == "unlink":
        path.unlink()
    elif change == "chmod":
        path.chmod(0o400)
    elif change == "rename":
        path.rename(tmp_path / "moved.jsonl.gz")
    else:
        os.link(path, tmp_path / "another.jsonl.gz")
    rest = list(got)
    assert [e.raw for e in [first, *rest]] == data.splitlines(keepends=True)


@pytest.mark.parametrize("mode", ["tree", "flat"])
def test_trace_flags_given_as_a_bool_are_written_and_read_back_as_the_number(mode: str) -> None:
    """A review of replay's fidelity (session 35): ``trace_flags=True``, which the SDK and
    OTLP take as 1, was written as JSON ``true``; the reader refused the line, so replay
    set aside a record the collector took live."""
    capture.records.clear()
    flagged = LogRecord(body="flagged", trace_id=0xABC, span_id=0xDEF, trace_flags=True)  # type: ignore[arg-type]
    provider.get_logger("reader.flags").emit(flagged)
    (original,) = capture.records
    line = _line(original, mode)
    assert line["_otel"]["trace_flags"] == 1 and type(line["_otel"]["trace_flags"]) is int
    back = decode_line(line)
    assert back is not None and back.log_record.trace_flags == TraceFlags(1)


@pytest.mark.parametrize("mode", ["tree", "flat"])
def test_a_str_subclass_with_a_lone_surrogate_as_severity_text_or_event_name_keeps_its_record(
    mode: str,
) -> None:
    """A third review (session 35): a str subclass holding a lone surrogate as the severity
    text or the event name made the encoder give up on the whole record (its line said "could
    not encode", the body lost), while a plain str goes as U+FFFD. Now so does a subclass."""

    class Text(str):
        pass

    capture.records.clear()
    logger = provider.get_logger("reader.texts")
    logger.emit(body="kept", severity_text=Text("x\udc80"), event_name=Text("e\udc80"))
    (original,) = capture.records
    line = _line(original, mode)
    back = decode_line(line)
    assert back is not None and back.log_record.body == "kept"
    assert (back.log_record.severity_text, back.log_record.event_name) == ("x\ufffd", "e\ufffd")
