"""Reading logxpy-otel files back into OTel log records and spans (docs/format.md, "Reading back").

Encode then decode gives back everything the format carries: body and attribute types,
trace and span ids, flags, severity number and text, nanosecond timestamps, event name,
scope, resource and the dropped-attribute count; and, with ``spans=True``, each span
from its end line (ids, parent, kind, times, status, attributes, events, links).
Structure lines are skipped; a line that does not parse is reported, never fatal.

Files compressed with gzip (rotated backups, ``app.<time>Z.jsonl.gz``) are read as the
lines they hold, whatever their name: gzip is told by its first bytes. Offsets are then
offsets in the decompressed lines.

A last line with no newline may still be being written (a reader can see a large append
page by page): in a file that can still grow it is reported as *pending* and reading
stops there, so a checkpoint never passes it. In a file that cannot grow (a gzip file,
or one the caller says is final, such as a rotated backup) it is read if it parses, and
reported as torn if not.
"""

from __future__ import annotations

import codecs
import errno
import gzip
import io
import os
import re
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Final, Literal, cast, overload

import orjson
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from ._format import RESERVED_KEYS, decode_value

__all__ = [
    "BadLine",
    "LineRecord",
    "LineSpan",
    "OffsetPastEnd",
    "OtherSeverity",
    "decode_line",
    "decode_span",
    "is_gzip",
    "read_file",
    "read_head",
    "read_head_open",
    "read_open",
]

_HEX: Final = frozenset("0123456789abcdef")
GZIP_MAGIC: Final = b"\x1f\x8b"
#: What a damaged gzip file raises while it is read.
_GZIP_ERRORS: Final = (gzip.BadGzipFile, EOFError, zlib.error)
_SEVERITIES: Final = {m.value: m for m in SeverityNumber}


class OtherSeverity(int):
    """A severity number outside :class:`SeverityNumber` (the SDK accepts any int, and the
    writer keeps it): the int itself, with ``.value`` and ``.name`` as an enum member has,
    so code that reads ``severity_number.value`` (the OTLP encoder, ``to_json``) gets it."""

    __slots__ = ()

    @property
    def value(self) -> int:
        return int(self)

    @property
    def name(self) -> str:
        return f"SEVERITY_NUMBER_{int(self)}"

    def __repr__(self) -> str:
        return f"OtherSeverity({int(self)})"


class OffsetPastEnd(ValueError):
    """The offset to read from is negative or beyond the end of the file's lines."""


@dataclass(frozen=True, slots=True)
class LineRecord:
    """One record line of a file: the rebuilt record, and where its line ends (for checkpoints)."""

    record: ReadableLogRecord
    #: Byte offset just past this line's newline.
    end: int
    #: Byte offset of the line's first byte.
    start: int = 0
    #: The line as it is in the file.
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class LineSpan:
    """One span's end line (``read_file(..., spans=True)``): the rebuilt span, and where the line is."""

    span: ReadableSpan
    #: Byte offset just past this line's newline.
    end: int
    #: Byte offset of the line's first byte.
    start: int = 0
    #: The line as it is in the file.
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not a record or structure line of the format (reported, then skipped)."""

    start: int
    end: int
    reason: str
    #: True for a last line with no newline: what a crash mid-write leaves.
    torn: bool
    #: True when that line may still be completed (the file can grow): not to be passed.
    pending: bool = False
    #: The line as it is in the file.
    raw: bytes = b""


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


def _tid_trace(tid: object) -> int | None:
    """The trace id a ``tid`` carries: 32 lowercase hex, alone or followed by ``~`` and the
    writer's token (``<trace id>~<token>``); None for a task id."""
    if not isinstance(tid, str):
        return None
    head = tid[:32]
    if _is_trace_id(head) and (len(tid) == 32 or tid[32] == "~"):
        return int(head, 16)
    return None


def _number(value: Any, name: str) -> Any:
    """An int field of ``_otel``: a JSON number, or ``{"$int": ...}`` beyond 64 bits."""
    value = decode_value(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} is not a number: {value!r}")
    return value


def _id(value: Any, name: str) -> int:
    """A trace or span id: lowercase hex, or ``{"$int": ...}`` for one OTel cannot carry."""
    if isinstance(value, str):
        return int(value, 16)
    value = decode_value(value)
    if type(value) is not int:
        raise ValueError(f"{name} is not an id: {value!r}")
    return value


def severity(number: int | None) -> SeverityNumber | None:
    """The ``severity_number`` of a record whose line says ``number``: the enum member, or
    an :class:`OtherSeverity` for a number outside the enum (kept as it was)."""
    if number is None:
        return None
    member = _SEVERITIES.get(number)
    return member if member is not None else cast(SeverityNumber, OtherSeverity(number))


def decode_line(line: dict[str, Any], cache: _Cache | None = None) -> ReadableLogRecord | None:
    """The OTel record a parsed record line stands for; None for a structure line.

    Raises ``ValueError`` (or ``KeyError``/``TypeError``/``AttributeError``) for a dict
    that is not a line of the format.
    """
    if "at" in line:
        return None
    cache = cache if cache is not None else _Cache()
    otel = line["_otel"]
    if not isinstance(otel, dict):
        raise ValueError("_otel is not an object")
    trace_id = _tid_trace(line.get("tid"))
    if trace_id is None:
        trace_id = _id(otel.get("trace_id", 0), "trace_id")
    body = decode_value(otel["body"]) if "body" in otel else line["msg"]
    attributes: dict[str, Any] = {
        key: decode_value(value) for key, value in line.items() if key not in RESERVED_KEYS
    }
    for key, value in otel.get("attributes", {}).items():
        attributes[key] = decode_value(value)
    number = decode_value(otel.get("severity_number"))
    if number is not None and type(number) is not int:
        raise ValueError(f"severity_number is not an int: {number!r}")
    timestamp = otel.get("time_unix_nano")
    record = LogRecord(
        timestamp=None if timestamp is None else _number(timestamp, "time_unix_nano"),
        observed_timestamp=_number(otel["observed_time_unix_nano"], "observed_time_unix_nano"),
        severity_text=otel.get("severity_text"),
        severity_number=severity(number),
        body=body,
        attributes=attributes,
        event_name=otel.get("event_name"),
    )
    # Set after construction: LogRecord() takes missing ids from the *current* span.
    record.trace_id = trace_id
    record.span_id = _id(otel.get("span_id", 0), "span_id")
    record.trace_flags = TraceFlags(_number(otel.get("trace_flags", 0), "trace_flags"))
    record.attributes = _bounded(attributes, otel)
    return ReadableLogRecord(
        log_record=record,
        resource=cache.resource(otel.get("resource")),
        instrumentation_scope=cache.scope(otel.get("scope")),
    )


def _is_span_end(line: dict[str, Any]) -> bool:
    """A span's end line: an action line (``at``) with ``_otel`` that ended it."""
    return "at" in line and "_otel" in line and line.get("st") in ("succeeded", "failed")


def decode_span(line: dict[str, Any], cache: _Cache | None = None) -> ReadableSpan | None:
    """The span a parsed span end line stands for; None for any other line.

    Raises ``ValueError`` (or ``KeyError``/``TypeError``/``AttributeError``) for an end
    line that is not one of the format.
    """
    if not _is_span_end(line):
        return None
    cache = cache if cache is not None else _Cache()
    otel = line["_otel"]
    if not isinstance(otel, dict):
        raise ValueError("_otel is not an object")
    trace_id = _tid_trace(line.get("tid"))
    if trace_id is None:
        trace_id = _id(otel.get("trace_id", 0), "trace_id")
    context = SpanContext(
        trace_id,
        _id(otel["span_id"], "span_id"),
        is_remote=False,
        trace_flags=TraceFlags(_number(otel.get("trace_flags", 0), "trace_flags")),
        trace_state=_trace_state(otel.get("trace_state")),
    )
    parent = None
    if "parent_span_id" in otel:
        remote = otel.get("parent_is_remote") is True
        parent = SpanContext(trace_id, _id(otel["parent_span_id"], "parent_span_id"), is_remote=remote)
    bounded = _bounded(_attributes(line, otel.get("attributes")), otel)
    status = otel.get("status")
    events: BoundedList[Event] = BoundedList(None)
    events.extend(
        [
            Event(
                str(decode_value(event["name"])),
                _bounded(_attributes({}, event.get("attributes")), event),
                decode_value(event["time_unix_nano"]),  # as the span had it (the SDK checks nothing)
            )
            for event in otel.get("events", ())
        ]
    )
    events.dropped = int(_number(otel.get("dropped_events_count", 0), "dropped_events_count"))
    links: BoundedList[Link] = BoundedList(None)
    links.extend(
        [
            Link(
                SpanContext(
                    _id(link["trace_id"], "trace_id"),
                    _id(link["span_id"], "span_id"),
                    is_remote=link.get("is_remote", True) is not False,  # (version 3: not said)
                    trace_flags=TraceFlags(_number(link.get("trace_flags", 0), "trace_flags")),
                    trace_state=_trace_state(link.get("trace_state")),
                ),
                _bounded(_attributes({}, link.get("attributes")), link),
            )
            for link in otel.get("links", ())
        ]
    )
    links.dropped = int(_number(otel.get("dropped_links_count", 0), "dropped_links_count"))
    return ReadableSpan(
        name=str(otel.get("name", line["at"])),  # (a span renamed before its end: its final name)
        context=context,
        parent=parent,
        resource=cache.resource(otel.get("resource")),
        attributes=bounded,
        events=events,
        links=links,
        kind=SpanKind(_number(otel.get("kind", 0), "kind")),
        status=Status(StatusCode[status["code"]], status.get("description")) if status else Status(),
        start_time=_number(otel["start_time_unix_nano"], "start_time_unix_nano"),
        end_time=_number(otel["end_time_unix_nano"], "end_time_unix_nano"),
        instrumentation_scope=cache.scope(otel.get("scope")),
    )


def _trace_state(header: Any) -> TraceState | None:
    """A ``trace_state`` entry (the W3C ``tracestate`` header text) as a TraceState."""
    return TraceState.from_header([header]) if isinstance(header, str) else None


def _bounded(attributes: dict[str, Any], entry: dict[str, Any]) -> BoundedAttributes:
    """Attributes with the count their limit dropped (``entry``'s: a record's or a span's
    ``_otel``, an event, a link)."""
    bounded = BoundedAttributes(maxlen=None, attributes=attributes, immutable=False)
    bounded.dropped = int(_number(entry.get("dropped_attributes_count", 0), "dropped_attributes_count"))
    return bounded


def _attributes(line: dict[str, Any], collided: Any) -> dict[str, Any]:
    """A line's attributes: its top-level keys that are not reserved, then ``collided``
    (``_otel.attributes``, or an event's or link's own), each value decoded."""
    attributes = {key: decode_value(value) for key, value in line.items() if key not in RESERVED_KEYS}
    if collided:
        for key, value in collided.items():
            attributes[key] = decode_value(value)
    return attributes


def is_gzip(path: str | os.PathLike[str]) -> bool:
    """Whether the file holds gzip data (its first two bytes), whatever its name."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def is_gzip_open(raw: IO[bytes]) -> bool:
    """:func:`is_gzip` of a file open at its start (left there)."""
    compressed = raw.read(2) == GZIP_MAGIC
    raw.seek(0)
    return compressed


def lines_stream(raw: IO[bytes]) -> tuple[IO[bytes], bool]:
    """The lines' stream of an open file: itself, or its decompressed content."""
    if is_gzip_open(raw):
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")), True
    return raw, False


def checked_lines_stream(raw: IO[bytes]) -> tuple[IO[bytes], tuple[int, str | None] | None]:
    """:func:`lines_stream` of an open file, to read its records: for gzip data also what
    :func:`gzip_checked` proves of it (None: not compressed). The gzip data is read through
    :class:`_Unchanged`: what the check proved holds only of the file as it was checked."""
    if not is_gzip_open(raw):
        return raw, None
    watched = _Unchanged(raw)
    checked = gzip_checked(raw)
    return cast(IO[bytes], gzip.GzipFile(fileobj=watched, mode="rb")), checked


class _FileChanged(gzip.BadGzipFile):
    """A checked gzip file changed while its lines were read (see :class:`_Unchanged`)."""


class _Unchanged:
    """An open file read for gzip's decompressor, each read followed by a look at the file
    (``fstat``): once it was written since its check (its modification time moved),
    :class:`_FileChanged` is raised, so no line decompressed from data read after a change
    in place is given (the member's checksum, at its end, would only say so after its
    lines). A delete, rename, link or ``chmod`` writes nothing: the open file reads on (a
    backup pruned under a replay). A look costs one system call a read (128 KiB)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._fd = raw.fileno()
        self._was = self._look()
        self.name = getattr(raw, "name", "")
        self.mode = "rb"

    def _look(self) -> int:
        return os.fstat(self._fd).st_mtime_ns

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if self._look() != self._was:
            raise _FileChanged(
                "the file changed after its checksums were checked: the lines from here on are not read"
            )
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd


def gzip_checked(raw: IO[bytes]) -> tuple[int, str | None]:
    """How many bytes of an open gzip file's lines (from their start) its members whose
    checksum passed hold, and why the lines after them are not to be read (None: there are
    none); the file is left at its start.

    A member's data is trusted only once its checksum has passed: damaged data
    decompresses to other bytes for a while before the error shows (often lines that
    parse), and a member cut short (a disk that filled, a copy cut off) has lost its
    checksum with its end, so nothing proves what came before the cut either. Members are
    checked whole before any line is read: a stream of 1 MiB pieces, never the whole file.
    """
    checked = pending = 0
    why: str | None = None
    member: Any = None  # the member being decompressed, or None between members
    piece = _FIRST_PIECE
    try:
        while why is None and (data := raw.read(_CHECK_CHUNK)):
            view, pos = memoryview(data), 0
            while pos < len(data):
                if member is None:
                    start = _NOT_ZERO.search(data, pos)  # (zeros after a member, as gzip allows)
                    if start is None:
                        break
                    pos, member, piece = start.start(), zlib.decompressobj(zlib.MAX_WBITS | 16), _FIRST_PIECE
                # Fed in pieces that grow with the member: what zlib copies out when a
                # member ends (the input after it) stays in proportion to the member, so a
                # file of many small members is checked in linear time.
                fed = view[pos : pos + piece]
                pending += len(member.decompress(fed, _CHECK_CHUNK))
                pos += len(fed) - len(member.unconsumed_tail) - len(member.unused_data)
                if member.eof:
                    checked, pending, member = checked + pending, 0, None
                elif not member.unconsumed_tail:
                    piece = min(2 * piece, _CHECK_CHUNK)
        if member is not None:
            pending += len(member.flush())
            if not member.eof:
                why = "cut short: the end of its last gzip member, which holds the checksum, is missing"
    except zlib.error as exc:
        why = f"compressed data is damaged ({exc})"
    finally:
        raw.seek(0)
    if why is None:
        return checked, None
    return checked, (
        f"{why}: its lines from byte {checked} on are not read, since nothing proves them"
        " (`gzip -dc` gives what is left, for you to judge)"
    )


#: How much :func:`gzip_checked` reads, and decompresses, at a time.
_CHECK_CHUNK: Final = 1 << 20
#: The first piece of a member :func:`gzip_checked` feeds zlib (doubling up to _CHECK_CHUNK).
_FIRST_PIECE: Final = 256
_NOT_ZERO: Final = re.compile(rb"[^\0]")

#: The longest line read whole (64 MiB). A longer one is read in pieces and skipped, never
#: held whole: a run of bytes with no newline (zeros a crash left) or a small gzip of
#: gigabytes would otherwise be one line in memory.
MAX_LINE_BYTES: Final = 64 << 20
#: What a growing file's last line with no newline is (not to be read, nor passed, yet).
_PENDING: Final = "torn last line (no newline): it may still be being written; left for the next run"


def read_line(
    stream: IO[bytes], offset: int, checked: tuple[int, str | None] | None
) -> tuple[bytes, int, bool]:
    """The next line of ``stream`` (at byte ``offset`` of its lines), never read past what
    ``checked`` (from :func:`gzip_checked`) proves: the line, its length, and whether it
    ends with a newline. A line of more than ``MAX_LINE_BYTES`` before its newline is read
    on in pieces and skipped: ``b""`` then, with its length (0: the end of the lines)."""
    left = None if checked is None else max(0, checked[0] - offset)
    size = MAX_LINE_BYTES + 1 if left is None else min(MAX_LINE_BYTES + 1, left)
    line = stream.readline(size)
    length, ended = len(line), line.endswith(b"\n")
    if ended or length <= MAX_LINE_BYTES:
        return line, length, ended
    while left is None or length < left:
        part = stream.readline(_CHECK_CHUNK if left is None else min(_CHECK_CHUNK, left - length))
        length += len(part)
        if part.endswith(b"\n"):
            return b"", length, True
        if not part:
            break
    return b"", length, False


def past_checked(length: int, ended: bool, offset: int, checked: tuple[int, str | None]) -> bool:
    """Whether the line :func:`read_line` read at byte ``offset`` (``length`` bytes, ``ended``
    with a newline or not) is not to be read: the limit ``checked`` proves reached with lines
    after it that nothing proves, or a line it cuts."""
    limit, why = checked
    return why is not None and (length == 0 or (offset + length == limit and not ended))


def read_head(path: str | os.PathLike[str], size: int) -> bytes:
    """The first ``size`` bytes of the file's lines (decompressed), or fewer if it is shorter."""
    with open(path, "rb") as raw:
        return read_head_open(raw, size)[0]


def open_regular(path: str) -> io.FileIO:
    """``path`` opened to read, if it is a regular file: a FIFO, a device or a pipe is
    refused (``OSError``), never waited on, never read as a file (it cannot seek)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        os.set_blocking(fd, True)
        return io.FileIO(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_head_open(raw: IO[bytes], size: int) -> tuple[bytes, bool]:
    """:func:`read_head` of a file opened already (binary), and whether it is compressed;
    the file is left at its start."""
    stream, compressed = lines_stream(raw)
    # read1: what one read of the file gives, so that a gzip file cut short (or damaged)
    # keeps what came before the cut, as far as its lines are read (a read(size) that
    # meets the cut fails whole, and a head shorter than the lines read is not trusted).
    read = getattr(stream, "read1", stream.read)
    out = b""
    try:
        while len(out) < size:
            chunk = read(size - len(out))
            if not chunk:
                break
            out += chunk
    except _GZIP_ERRORS:
        pass
    raw.seek(0)
    return out, compressed


@overload
def read_file(
    path: str | os.PathLike[str], start: int = 0, *, final: bool = False, spans: Literal[False] = False
) -> Iterator[LineRecord | BadLine]: ...


@overload
def read_file(
    path: str | os.PathLike[str], start: int = 0, *, final: bool = False, spans: bool
) -> Iterator[LineRecord | LineSpan | BadLine]: ...


def read_file(
    path: str | os.PathLike[str], start: int = 0, *, final: bool = False, spans: bool = False
) -> Iterator[LineRecord | LineSpan | BadLine]:
    """Every record (and every bad line) of a file from byte ``start`` on, in order.

    Structure lines are skipped silently; a bad line is yielded as :class:`BadLine`. A
    gzip file is decompressed (``start`` is an offset in its lines). ``final``: the file
    can no longer grow (a rotated backup); gzip files always are. ``spans``: also yield
    each span's end line as a :class:`LineSpan` (else span lines are skipped as structure).

    Raises :class:`OffsetPastEnd` at once (not at the first item) when ``start`` is
    negative or past the end, and ``OSError`` when the file cannot be opened.
    """
    return read_open(open(path, "rb"), start, final=final, spans=spans, name=os.fspath(path))


def read_open(
    raw: IO[bytes], start: int = 0, *, final: bool = False, spans: bool = False, name: str = "the file"
) -> Iterator[LineRecord | LineSpan | BadLine]:
    """:func:`read_file` of a file opened already (binary, at its start), which it takes
    over (and closes when done, or at once when it raises): what was opened is read, even
    if its path has led elsewhere since (a rotation)."""
    if start < 0:
        raw.close()
        raise OffsetPastEnd(f"{name}: offset {start} is negative")
    try:
        stream, checked = checked_lines_stream(raw)
        compressed = checked is not None
        if checked is not None and start >= checked[0] and checked[1] is not None:
            # (a run that stopped past what can be proved now: nothing after it is read)
            return _unreadable(raw, BadLine(start, start, checked[1], False))
        if compressed:
            try:
                reached = stream.seek(start)
            except _GZIP_ERRORS as exc:  # (the file changed since it was checked)
                return _unreadable(raw, BadLine(start, start, _damaged(exc), False))
        else:
            reached = start if start <= os.fstat(raw.fileno()).st_size else -1
            stream.seek(start)
        if reached != start:
            raise OffsetPastEnd(f"{name}: offset {start} is past the end of its lines")
    except BaseException:
        raw.close()
        raise
    return _lines(raw, stream, start, final or compressed, checked, spans=spans)


def _damaged(exc: BaseException) -> str:
    """Why a checked gzip file's lines stop part way: it changed, or what gzip raised."""
    return str(exc) if isinstance(exc, _FileChanged) else f"compressed data is damaged or cut short: {exc}"


def _unreadable(raw: IO[bytes], bad: BadLine) -> Iterator[BadLine]:
    with raw:
        yield bad


def _lines(
    raw: IO[bytes],
    stream: IO[bytes],
    offset: int,
    final: bool,
    checked: tuple[int, str | None] | None,
    *,
    spans: bool,
) -> Iterator[LineRecord | LineSpan | BadLine]:
    """The file's lines from ``offset`` on; of gzip data, only what ``checked`` (from
    :func:`gzip_checked`) proves, then why the rest is not read."""
    cache = _Cache()
    with raw:
        while True:
            try:
                line, length, ended = read_line(stream, offset, checked)
            except _GZIP_ERRORS as exc:  # (the file changed since it was checked)
                yield BadLine(offset, offset, _damaged(exc), False)
                return
            if checked is not None and past_checked(length, ended, offset, checked):
                yield BadLine(offset, offset, str(checked[1]), False)
                return
            if not length:
                return
            begin, offset = offset, offset + length
            torn, long = not ended, length > len(line)
            if torn and not final:
                # May still be being written: not to be read, nor passed, before it ends.
                yield BadLine(begin, offset, _PENDING, True, True, line)
                return
            if long:
                yield BadLine(
                    begin, offset, f"longer than {MAX_LINE_BYTES} bytes: skipped as it was read", torn
                )
                continue
            try:
                parsed = orjson.loads(line)
                if not isinstance(parsed, dict):
                    raise ValueError("not a JSON object")
                record = decode_line(parsed, cache)
                span = decode_span(parsed, cache) if spans and record is None else None
            except Exception as exc:  # noqa: BLE001 - any line that is not ours is reported
                why = _not_utf8(line) or exc  # (a line orjson took is UTF-8: None)
                reason = "torn last line (no newline)" if torn else f"not a record line: {why}"
                yield BadLine(begin, offset, reason, torn, False, line)
                continue
            if record is not None:
                yield LineRecord(record, offset, begin, line)
            elif span is not None:
                yield LineSpan(span, offset, begin, line)


def _not_utf8(line: bytes) -> str | None:
    """Where ``line`` is not UTF-8, said plainly (orjson calls every such byte a surrogate:
    "surrogates not allowed", which no one looking at the line sees), or None. Checked a
    piece at a time: a line of up to MAX_LINE_BYTES is never made a whole ``str``."""
    if line.isascii():
        return None
    view, start = memoryview(line), 0
    try:
        while start < len(line):
            end = start + _UTF8_PIECE
            start += codecs.utf_8_decode(view[start:end], "strict", end >= len(line))[1]
    except UnicodeDecodeError as bad:
        at = start + bad.start
        return f"not UTF-8 at byte {at} of the line ({line[at : at + 1]!r})"
    return None


#: How much of a line :func:`_not_utf8` decodes at a time.
_UTF8_PIECE: Final = 1 << 20
