"""``LogxpyLoggingHandler``: stdlib ``logging`` straight into our writer, with the OTel path's lines.

The equivalence tests put the OTel path (``opentelemetry-instrumentation-logging``'s
``LoggingHandler`` -> SDK ``LoggerProvider`` -> ``LogxpyLogRecordProcessor``) and ours
(``processor.logging_handler()``) on the same logger, so that each call makes one
``logging.LogRecord`` that both handle, and compare the lines each writer wrote, field
for field except the observed time (and the per-writer task ids of records without a
trace). They run with the C encoder and, under ``LOGXPY_OTEL_PURE_PYTHON=1``, without it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import logging.config
import logging.handlers
import math
import os
import queue
import subprocess
import sys
import textwrap
import threading
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from _helpers import Collect, Gated, assert_accounting, interrupt_at, parse_lines, run_script
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context_module
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.instrumentation.log_utils import std_to_otel
from opentelemetry.instrumentation.logging.handler import LoggingHandler as OTelHandler
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits
from opentelemetry.sdk._logs import LoggingHandler as SdkHandler
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from logxpy_otel import AsyncConfig, LogxpyLoggingHandler, LogxpyLogRecordProcessor, QueuePolicy
from logxpy_otel import logging_handler as handler_module
from logxpy_otel.logging_handler import FORMAT_ERROR, RECURSIVE_LOGGING, _sdk_flavoured

TRACER = TracerProvider().get_tracer("test_logging_handler")
#: The longest idle timeout a trace may have (a day): never reached in a test.
DAY_MS = 86_400_000
RESOURCE = Resource.create({"service.name": "logging-handler-test", "deployment": "ci"})


# -- the two paths, side by side -----------------------------------------------------------


class Pair:
    """The OTel path and ours on one ``logging`` logger (``propagate=False``): every call
    makes one record that both handle. ``lines()`` gives each writer's lines, normalised."""

    def __init__(
        self,
        name: str = "pair",
        *,
        limits: LogRecordLimits | None = None,
        code: bool = False,
        sdk_flavour: bool = False,
        formatter: logging.Formatter | None = None,
    ) -> None:
        self.provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False, log_record_limits=limits)
        self.theirs_out, self.ours_out = Collect(), Collect()
        # (no trace closed for idleness: the two writers' idle closers do not run in step,
        # and a pair used for longer than the timeout would differ by an end line)
        self.theirs = LogxpyLogRecordProcessor(destinations=[self.theirs_out], trace_idle_timeout=DAY_MS)
        self.provider.add_log_record_processor(self.theirs)
        self.ours = LogxpyLogRecordProcessor(destinations=[self.ours_out], trace_idle_timeout=DAY_MS)
        if sdk_flavour:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                self.otel: logging.Handler = SdkHandler(logger_provider=self.provider)
            self.handler = _sdk_flavoured(self.ours.logging_handler(logger_provider=self.provider))
        else:
            self.otel = OTelHandler(logger_provider=self.provider, log_code_attributes=code)
            self.handler = self.ours.logging_handler(logger_provider=self.provider, log_code_attributes=code)
        if formatter is not None:
            self.otel.setFormatter(formatter)
            self.handler.setFormatter(formatter)
        self.logger = logging.getLogger(f"test_logging_handler.{name}")
        self.logger.handlers[:] = [self.otel, self.handler]
        self.logger.setLevel(1)
        self.logger.propagate = False

    def lines(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        assert self.theirs.force_flush(10_000) and self.ours.force_flush(10_000)
        return _normalised(self.theirs_out.data), _normalised(self.ours_out.data)

    def clear(self) -> None:
        for out in (self.theirs_out, self.ours_out):
            with out._lock:
                out.batches.clear()

    def close(self) -> None:
        self.logger.handlers[:] = []
        self.handler.close()
        self.provider.shutdown()
        self.ours.shutdown()


def _normalised(data: bytes) -> list[dict[str, Any]]:
    """Parsed lines without the observed time; a record without a trace has a task id of
    its writer's own (``<prefix>.<n>``), the same for both paths once the prefix is cut."""
    out = []
    for line in parse_lines(data):
        line.get("_otel", {}).pop("observed_time_unix_nano", None)
        line["tid"] = _trace_of(line["tid"])
        if "." in line["tid"]:
            line["tid"] = "task." + line["tid"].rsplit(".", 1)[1]
        out.append(line)
    return out


def _trace_of(tid: str) -> str:
    """A line's ``tid`` without the writer's token (``<trace id>~<token>``), if it has one."""
    return tid.split("~", 1)[0]


@contextlib.contextmanager
def pair(**kwargs: Any) -> Iterator[Pair]:
    p = Pair(**kwargs)
    try:
        yield p
    finally:
        p.close()


@contextlib.contextmanager
def quiet_sdk() -> Iterator[None]:
    """The SDK's own warnings (an attribute cleaned or cut) go nowhere while the test runs."""
    sdk = logging.getLogger("opentelemetry")
    saved = sdk.propagate, sdk.handlers[:]
    sdk.propagate = False
    sdk.handlers[:] = [logging.NullHandler()]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sdk.propagate, sdk.handlers[:] = saved


# -- what a call can be ---------------------------------------------------------------------


class Described:
    """An object with a ``__str__`` (the SDK writes it as that string)."""

    def __str__(self) -> str:
        return "described!"


class Plain:
    """An object with neither ``__str__`` nor ``__repr__`` of its own (the SDK drops it to None)."""


class Tag(str):
    """A str subclass (a string to the SDK)."""


def _scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.binary(max_size=6),
    )


VALUES = st.one_of(
    _scalars(),
    st.lists(_scalars(), max_size=3),
    st.tuples(st.integers(), st.text(max_size=4)),
    st.dictionaries(st.sampled_from(["a", "b", "", "$int"]), _scalars(), max_size=3),
    st.builds(Described),
    st.builds(Plain),
    st.text(max_size=6).map(Tag),
)
#: Extra keys: ordinary, dotted, ones logxpy reserves (msg, ts: to ``_otel.attributes``), the
#: event names the OTel handler promotes, the empty key (the SDK drops it) and odd text.
KEYS = st.one_of(
    st.sampled_from(
        ["user.id", "attempt", "http.route", "ts", "tid", "level", "otel.event.name", "event.name", "", "ünï"]
    ),
    st.text(alphabet="abcxyz._", min_size=1, max_size=5),
)
_STANDARD = set(vars(logging.LogRecord("n", 0, "p", 0, "m", None, None))) | {"message", "asctime"}
EXTRAS = st.dictionaries(KEYS.filter(lambda k: k not in _STANDARD), VALUES, max_size=5)
LEVELS = st.one_of(
    st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]),
    st.integers(min_value=1, max_value=70),
)
MESSAGES = st.one_of(
    st.tuples(st.just("user %s signed in"), st.tuples(st.integers() | st.text(max_size=8))),
    st.tuples(st.text(max_size=20).filter(lambda t: "%" not in t), st.just(())),
    st.tuples(st.just("%(who)s did %(what)r"), st.just(({"who": "ann", "what": [1, 2]},))),
    st.tuples(st.builds(Described), st.just(())),
    st.tuples(st.just({"a structured": "msg"}), st.just(())),
    st.tuples(st.just(42), st.just(())),
)
EXCEPTIONS = st.sampled_from(
    [None, ValueError("bad value"), KeyError("k"), RuntimeError(), OSError(2, "gone")]
)
SPANS = st.sampled_from(["none", "sampled", "unsampled"])


@contextlib.contextmanager
def _in_span(kind: str) -> Iterator[None]:
    if kind == "none":
        yield
    elif kind == "sampled":
        with TRACER.start_as_current_span("work"):
            yield
    else:
        context = SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(0))
        with trace.use_span(NonRecordingSpan(context)):
            yield


def _call(
    logger: logging.Logger,
    level: int,
    message: tuple[Any, tuple[Any, ...]],
    extra: dict[str, Any],
    exception: BaseException | None,
    stack: bool = False,
) -> None:
    msg, args = message
    if exception is None:
        logger.log(level, msg, *args, extra=extra, stack_info=stack)
        return
    try:
        raise exception
    except BaseException:
        logger.log(level, msg, *args, extra=extra, exc_info=True, stack_info=stack)


CALLS = st.lists(
    st.tuples(LEVELS, MESSAGES, EXTRAS, EXCEPTIONS, SPANS, st.booleans()), min_size=1, max_size=6
)


def _run_calls(p: Pair, calls: list[tuple[Any, ...]]) -> None:
    for level, message, extra, exception, span, stack in calls:
        with _in_span(span):
            _call(p.logger, level, message, extra, exception, stack)


def _assert_same(p: Pair, count: int | None = None) -> list[dict[str, Any]]:
    theirs, ours = p.lines()
    assert ours == theirs
    if count is not None:
        assert len([line for line in ours if "at" not in line]) == count
    p.clear()
    return ours


# -- equivalence --------------------------------------------------------------------------------


#: The fast paths of ``handle``: in C (``_logging_speedups``, where built and the C encoder is
#: in use) and in Python (one frame). Everything else takes the general Python path.
FAST_PATHS = ["c", "python"] if handler_module._Fast is not None else ["python"]


@contextlib.contextmanager
def fast_path(kind: str) -> Iterator[None]:
    """Handlers made inside take the ``kind`` fast path."""
    saved = handler_module._Fast
    if kind == "python":
        handler_module._Fast = None
    try:
        yield
    finally:
        handler_module._Fast = saved


def _fast_path_of(handler: LogxpyLoggingHandler) -> str:
    handle = handler.__dict__.get("handle")
    if handle is None:
        return "general"
    return "c" if type(handle).__name__ == "builtin_function_or_method" else "python"


@pytest.fixture(scope="module", params=FAST_PATHS)
def plain_pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    with fast_path(request.param):
        p = Pair(name=f"plain_{request.param}")
    try:
        assert _fast_path_of(p.handler) == request.param
        yield p
    finally:
        p.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=CALLS)
def test_the_same_lines_as_the_otel_path(plain_pair: Pair, calls: list[tuple[Any, ...]]) -> None:
    with quiet_sdk():
        _run_calls(plain_pair, calls)
    _assert_same(plain_pair, len(calls))


#: Calls the fast paths take (no exception, a str message, plain extra values): the test
#: below checks that none of them went the general way.
PLAIN_CALLS = st.lists(
    st.tuples(
        LEVELS,
        st.one_of(
            st.tuples(st.just("user %s signed in"), st.tuples(st.integers() | st.text(max_size=8))),
            st.tuples(st.text(max_size=20).filter(lambda t: "%" not in t), st.just(())),
            st.tuples(st.just("%(who)s did %(what)r"), st.just(({"who": "ann", "what": [1, 2]},))),
        ),
        st.dictionaries(
            KEYS.filter(lambda k: k not in _STANDARD and k not in ("", "otel.event.name", "event.name")),
            _scalars().filter(lambda v: not isinstance(v, bytes)),
            max_size=5,
        ),
        st.just(None),
        SPANS,
        st.booleans(),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=80, deadline=None)
@given(calls=PLAIN_CALLS, code=st.booleans(), kind=st.sampled_from(FAST_PATHS))
def test_the_same_lines_on_the_fast_paths(calls: list[tuple[Any, ...]], code: bool, kind: str) -> None:
    with fast_path(kind), pair(name="fast", code=code) as p:
        assert _fast_path_of(p.handler) == kind
        general: list[str] = []
        write = p.handler._write
        p.handler._write = lambda record, *rest: (general.append(record.msg), write(record, *rest))[1]  # type: ignore[method-assign]
        _run_calls(p, calls)
        _assert_same(p, len(calls))
        assert general == [], "plain calls take the fast path"


# -- the C fast path's own lines --------------------------------------------------------------

needs_c = pytest.mark.skipif(handler_module._Fast is None, reason="the C fast path is not in use")

#: Messages the C fast path writes itself (%s and %d of exact strs and ints, %%) and ones it
#: leaves to Python's % (other conversions and argument types, a mapping, ints past 64 bits).
C_MESSAGES = st.one_of(
    st.tuples(
        st.just("user %s signed in"),
        st.tuples(st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=8)),
    ),
    st.tuples(st.just("%d%% of %s: %s"), st.tuples(st.integers(), st.text(max_size=4), st.text(max_size=4))),
    st.tuples(
        st.just('é "%s"\n\u2028%s\x85'), st.tuples(st.text(max_size=4), st.sampled_from(["\ud800", "\x00"]))
    ),
    st.tuples(
        st.just("%5s|%r|%x"), st.tuples(st.text(max_size=3), st.text(max_size=3), st.integers(min_value=0))
    ),
    st.tuples(st.just("flags %s %d %s"), st.tuples(st.booleans(), st.booleans(), st.floats())),
    st.tuples(st.just("subclass %s"), st.tuples(st.text(max_size=4).map(Tag))),
    st.tuples(st.just("%(who)s"), st.just(({"who": "ann"},))),
    st.tuples(st.text(max_size=20), st.just(())),
)
C_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["\u2028", "\x85", "\ud800", 'é\n"\\', "\x1f\x7f"]),
)


def _c_fast(handler: LogxpyLoggingHandler) -> Any:
    """The handler's ``_logging_speedups.Fast``."""
    return handler.__dict__["handle"].__self__


@needs_c
@settings(max_examples=300, deadline=None)
@given(
    level=LEVELS,
    message=C_MESSAGES,
    extra=st.dictionaries(KEYS.filter(lambda k: k not in _STANDARD), C_VALUES, max_size=5),
    span=SPANS,
    code=st.booleans(),
    mode=st.sampled_from(["tree", "flat"]),
)
def test_the_c_fast_path_writes_the_encoders_bytes(
    level: int, message: tuple[Any, tuple[Any, ...]], extra: dict[str, Any], span: str, code: bool, mode: str
) -> None:
    """The C fast path writes a record's line itself: the very item (byte for byte) that the
    processor's encoder makes of the API record the OTel handler builds for it, or None
    where it leaves the record to the encoder or to the Python path."""
    processor = LogxpyLogRecordProcessor(destinations=[Collect()], mode=mode)
    try:
        handler = processor.logging_handler(resource=RESOURCE, log_code_attributes=code)
        assert handler._direct_lines
        otel = OTelHandler(logger_provider=LoggerProvider(resource=RESOURCE), log_code_attributes=code)
        scope = handler._current_state().scope("test_logging_handler.c_bytes")[0]
        msg, args = message
        record = logging.LogRecord("test_logging_handler.c_bytes", level, __file__, 7, msg, args, None)
        record.__dict__.update(extra)
        observed = 1_700_000_000_123_456_789
        with _in_span(span):
            ours = _c_fast(handler).encode(record, scope, RESOURCE, observed)
            with quiet_sdk():
                try:
                    api_record = otel._translate(record)
                except Exception:  # a bad format: the Python path reports it
                    api_record = None
        event("written by the C path" if ours is not None else "left to the encoder or Python")
        if ours is None:
            return
        assert api_record is not None
        api_record.observed_timestamp = observed
        assert ours == processor._encoder.encode(api_record, RESOURCE, scope)
    finally:
        processor.shutdown()


@needs_c
@pytest.mark.parametrize("span", ["none", "sampled", "unsampled"])
@pytest.mark.parametrize("code", [False, True])
def test_the_c_fast_path_writes_the_common_records_itself(span: str, code: bool) -> None:
    """Records as applications log them are written by the C fast path itself (not left to the
    encoder): formats of %s and %d, plain extras of each type, non-ASCII text."""
    processor = LogxpyLogRecordProcessor(destinations=[Collect()])
    try:
        handler = processor.logging_handler(resource=RESOURCE, log_code_attributes=code)
        fast = _c_fast(handler)
        scope = handler._current_state().scope("app")[0]
        calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
            ("user %s signed in", (7,), {"user.name": "alice", "http.route": "/login", "attempt": 2}),
            ("%d%% done: %s", (-40, "ünï\n"), {"ratio": 0.25, "ok": False, "none": None, "big": 2**64 - 1}),
            ("no args %s", (), {"status.code": "é\u2028"}),
        ]
        for msg, args, extra in calls:
            record = logging.LogRecord("app", logging.WARNING, __file__, 1, msg, args, None)
            record.__dict__.update(extra)
            with _in_span(span):
                assert fast.encode(record, scope, RESOURCE, 1) is not None, msg
    finally:
        processor.shutdown()


@needs_c
def test_the_c_fast_path_writes_records_with_object_arguments_itself() -> None:
    """Arguments that are not plain (an enum, an object of one's own, a list of those): the
    C path builds the message first, then reads the record again, and writes the line
    itself, the OTel path's line."""
    import enum

    class Color(enum.IntEnum):
        RED = 1

    class Thing:
        def __str__(self) -> str:
            return "thing"

    calls: list[tuple[str, tuple[Any, ...]]] = [
        ("color %s", (Color.RED,)),
        ("%s and %r", (Thing(), [Thing()])),
        ("%(who)s", ({"who": Thing()},)),
    ]
    with fast_path("c"), pair(name="objects") as p:
        general: list[object] = []
        write = p.handler._write
        p.handler._write = lambda record, *rest: (general.append(record.msg), write(record, *rest))[1]  # type: ignore[method-assign]
        for msg, args in calls:
            p.logger.warning(msg, *args, extra={"k": 1})
        lines = [line for line in _assert_same(p, len(calls)) if "at" not in line]
    assert lines[0]["msg"] == f"color {Color.RED!s}"
    assert lines[1]["msg"].startswith("thing and [<") and lines[2]["msg"] == "thing"
    assert general == [], "object arguments take the C fast path"


@needs_c
def test_when_the_probe_disagrees_the_encoder_writes_the_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """The C fast path writes lines itself only after it wrote a probe record's line as the
    encoder does (the writer's item format or the line format may change): otherwise every
    record goes the encoder's way, with the same lines."""
    monkeypatch.setattr(handler_module, "_probe", lambda fast, encode, code: False)
    with pair(name="probe") as p:
        assert _fast_path_of(p.handler) == "c" and not p.handler._direct_lines
        with TRACER.start_as_current_span("s"):
            p.logger.info("user %s signed in", "ann", extra={"attempt": 1, "ratio": 0.5})
        p.logger.warning("outside")
        _assert_same(p, 2)


def test_building_the_handler_leaves_the_applications_records_as_they_were() -> None:
    """The probe record's made-up attributes stay out of the keys every ``LogRecord``'s dict
    shares: there, they made each application record with other extras convert its dict to
    one of its own (about 0.15 us a record, for every handler of the process, seen in the
    logging benchmark). Looked at in a fresh process, where the handler is built before any
    application record, through CPython's dict layout (skipped where it reads otherwise)."""
    script = """
        import ctypes, logging, os, sys, tempfile
        from opentelemetry.sdk._logs import LoggerProvider
        from logxpy_otel import LogxpyLogRecordProcessor

        def shares_keys(d):  # (PyDictObject: its values apart from its keys)
            return ctypes.c_void_p.from_address(id(d) + 40).value is not None

        class Plain:
            pass
        plain = Plain()
        plain.a = 1
        if not shares_keys(vars(plain)) or shares_keys({"a": 1}):
            print("layout"); sys.exit()
        processor = LogxpyLogRecordProcessor(os.path.join(tempfile.mkdtemp(), "x.log"))
        handler = processor.logging_handler(logger_provider=LoggerProvider(shutdown_on_exit=False))
        seen = []
        def look(record):
            seen.append(shares_keys(vars(record)))
            return True
        log = logging.getLogger("app")
        log.propagate = False
        log.addHandler(handler)
        log.addFilter(look)
        for i in range(3):
            log.warning("user %s", i, extra={"user.name": "ann", "http.route": "/", "attempt": i})
        processor.shutdown()
        print(bool(handler._direct_lines), seen)
    """
    done = run_script(script)
    assert done.returncode == 0, done.stderr
    if done.stdout.strip() == "layout":
        pytest.skip("this interpreter's dicts are laid out otherwise")
    probed, _, seen = done.stdout.strip().partition(" ")
    assert seen == "[True, True, True]", done.stdout
    assert probed == str(handler_module._Fast is not None), "the probe ran, and agreed, where the C path is"


class _OtherContextSpan(NonRecordingSpan):
    """A span whose get_span_context is its own (the C path calls it, not reading ``_context``)."""

    def get_span_context(self) -> SpanContext:
        return SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1))


def test_a_span_with_its_own_get_span_context_is_asked(plain_pair: Pair) -> None:
    span = _OtherContextSpan(SpanContext(0x1, 0x2, is_remote=False, trace_flags=TraceFlags(0)))
    with trace.use_span(span):
        plain_pair.logger.info("in a span of another kind")
    (line,) = [line for line in _assert_same(plain_pair, 1) if "at" not in line]
    assert line["_otel"]["span_id"] == f"{0xDEF:016x}"


def test_each_record_has_the_span_of_the_context_it_was_logged_in(plain_pair: Pair) -> None:
    """Contexts attached in turn, one attached again after another and a span made in the
    same frame: each record carries its own context's span (the C path keeps the last
    context it read with its span's ids)."""
    from opentelemetry import context as otel_context

    a, b = TRACER.start_span("a"), TRACER.start_span("b")
    context_a, context_b = trace.set_span_in_context(a), trace.set_span_in_context(b)
    expected = []
    for context, span in [(context_a, a), (context_b, b), (context_a, a), (None, None), (context_b, b)]:
        token = otel_context.attach(context) if context is not None else None
        try:
            plain_pair.logger.info("in %s", span.name if span is not None else "none")
        finally:
            if token is not None:
                otel_context.detach(token)
        expected.append(f"{span.get_span_context().span_id:016x}" if span is not None else None)
    with TRACER.start_as_current_span("c") as c:
        plain_pair.logger.info("in c")
        expected.append(f"{c.get_span_context().span_id:016x}")
    lines = [line for line in _assert_same(plain_pair, 6) if "at" not in line]
    assert [line["_otel"].get("span_id") for line in lines] == expected
    a.end()
    b.end()


def test_a_record_whose_fields_were_set_again_in_another_order_is_read_right(plain_pair: Pair) -> None:
    """The C path reads a field at its usual place in the record's dict only when the key
    there is its name: a record factory that deletes and sets fields again (they move to
    the end) still gives the OTel path's lines."""
    made = logging.getLogRecordFactory()

    def moved(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = made(*args, **kwargs)
        for name in ("msg", "levelno", "created", "name", "exc_info", "args", "levelname"):
            value = record.__dict__.pop(name)
            record.__dict__[name] = value
        return record

    logging.setLogRecordFactory(moved)
    try:
        with TRACER.start_as_current_span("s"):
            plain_pair.logger.warning("moved %s %d", "fields", 3, extra={"k": 1.5})
        plain_pair.logger.error("moved, no args")
    finally:
        logging.setLogRecordFactory(made)
    lines = [line for line in _assert_same(plain_pair, 2) if "at" not in line]
    assert [line["msg"] for line in lines] == ["moved fields 3", "moved, no args"]


class _MutableContext(otel_context_module.Context):
    """A Context subclass that allows item assignment."""

    def __setitem__(self, key: str, value: object) -> None:
        dict.__setitem__(self, key, value)


def _remote_span(n: int) -> NonRecordingSpan:
    return NonRecordingSpan(SpanContext(0x1000 + n, 0x2000 + n, False, TraceFlags(1)))


@pytest.mark.parametrize("how", ["subclass", "dict.__setitem__", "span._context"])
def test_a_context_or_span_changed_in_place_gives_the_new_ids(plain_pair: Pair, how: str) -> None:
    """The span of the current Context is read for every record, as the OTel handler reads
    it: a Context changed in place, or its span's context set again, gives the new ids."""
    key = trace.propagation._SPAN_KEY
    context = (_MutableContext if how == "subclass" else otel_context_module.Context)({key: _remote_span(1)})
    token = otel_context_module.attach(context)
    try:
        plain_pair.logger.warning("first")
        if how == "subclass":
            context[key] = _remote_span(2)
        elif how == "dict.__setitem__":
            dict.__setitem__(context, key, _remote_span(2))
        else:
            context[key]._context = _remote_span(2).get_span_context()
        plain_pair.logger.warning("second")
    finally:
        otel_context_module.detach(token)
    lines = [line for line in _assert_same(plain_pair, 2) if "at" not in line]
    assert [line["_otel"]["span_id"] for line in lines] == [f"{0x2001:016x}", f"{0x2002:016x}"]


def test_nothing_of_a_request_s_context_is_kept_after_it(plain_pair: Pair) -> None:
    """A record logged in a request's Context keeps nothing of it alive once detached."""
    import gc
    import weakref

    class Request:
        pass

    request = Request()
    kept = weakref.ref(request)
    context = otel_context_module.set_value("request", request, trace.set_span_in_context(_remote_span(3)))
    token = otel_context_module.attach(context)
    plain_pair.logger.warning("in the request")
    otel_context_module.detach(token)
    del context, request, token
    gc.collect()
    assert kept() is None
    _assert_same(plain_pair, 1)


def test_a_record_whose_dict_is_another_mapping_type_is_written_without_raising(plain_pair: Pair) -> None:
    """A filter that replaces a record's __dict__ with a dict subclass: the record is
    written as the OTel path writes it, and nothing raises into the logging call."""

    class Fields(dict[str, Any]):
        pass

    def replace(record: logging.LogRecord) -> bool:
        record.__dict__ = Fields(record.__dict__)
        return True

    plain_pair.logger.addFilter(replace)
    try:
        plain_pair.logger.warning("hello %s", "there", extra={"k": 1})
    finally:
        plain_pair.logger.removeFilter(replace)
    (line,) = [line for line in _assert_same(plain_pair, 1) if "at" not in line]
    assert line["msg"] == "hello there" and line["k"] == 1


@pytest.mark.parametrize("order", ["moved", "rebuilt"])
def test_extras_are_kept_whatever_the_order_of_the_record_s_fields(plain_pair: Pair, order: str) -> None:
    """A filter that moves some of LogRecord.__init__'s fields to the end, or rebuilds the
    dict with an extra among them and the last of them where it would be: the extras are
    the OTel path's (a record's fields are taken as __init__'s only when the dict starts
    with exactly those, in their order)."""
    init = list(vars(logging.LogRecord("n", 0, "p", 0, "m", None, None)))

    def reorder(record: logging.LogRecord) -> bool:
        fields = record.__dict__
        if order == "moved":
            for key in (init[-1], "msg", "exc_info"):
                fields[key] = fields.pop(key)
        else:  # "a" second, __init__'s last field at its place, "s" after it
            keys = ["msg", "a", *[k for k in init if k not in ("msg", "name")], "name", "s"]
            items = [(k, fields.pop(k)) for k in keys]
            fields.update(items)
        return True

    plain_pair.logger.addFilter(reorder)
    try:
        plain_pair.logger.warning("hello", extra={"a": 1, "s": "t"})
    finally:
        plain_pair.logger.removeFilter(reorder)
    (line,) = [line for line in _assert_same(plain_pair, 1) if "at" not in line]
    assert (line.get("a"), line.get("s")) == (1, "t")


class _Changing:
    """An argument that changes its record while the message is built (its ``__str__``,
    or its ``__bool__`` when it is the whole ``args``)."""

    def __init__(self, what: str) -> None:
        self.record: logging.LogRecord | None = None
        self.what = what

    def __str__(self) -> str:
        assert self.record is not None
        if self.what == "levelname":
            self.record.levelname = "NOTICE"
        elif self.what == "extra added":
            self.record.added = "by __str__"
        elif self.what == "extra changed":
            self.record.k = "changed by __str__"
        return "arg"

    def __bool__(self) -> bool:
        if self.record is not None:  # (LogRecord.__init__ asks too, before it is set)
            self.record.msg = "".join(["replaced ", self.what])  # (the old msg's only reference goes)
        return False


def _strip_times(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        if "at" in line:
            continue
        line = {k: v for k, v in line.items() if k != "ts"}
        line["_otel"] = {k: v for k, v in line["_otel"].items() if k != "time_unix_nano"}
        out.append(line)
    return out


@pytest.mark.parametrize("what", ["levelname", "extra added", "extra changed", "msg by args"])
@pytest.mark.parametrize("moved", [False, True])
def test_a_record_changed_while_its_message_is_built_gives_the_otel_path_s_line(
    plain_pair: Pair, what: str, moved: bool
) -> None:
    """An argument whose __str__ (or the args' __bool__) changes the record: the OTel
    handler reads the level name and the attributes after getMessage(), and getMessage()
    takes str(msg) before it looks at the args; ours writes the same line (such a record
    goes the way that builds the message first), also with the record's fields out of
    LogRecord.__init__'s order (each field held while the record is read). Each handler
    gets its own record, made alike."""

    def record() -> logging.LogRecord:
        changing = _Changing(what)
        args: Any = changing if what == "msg by args" else (changing,)
        message = "".join(["m %s ", what])
        made = plain_pair.logger.makeRecord(
            plain_pair.logger.name, logging.WARNING, "f", 1, message, args, None, extra={"k": "v"}
        )
        changing.record = made
        if moved:
            made.__dict__["exc_info"] = made.__dict__.pop("exc_info")
        return made

    for _ in range(3):
        plain_pair.otel.handle(record())
        plain_pair.handler.handle(record())
    theirs, ours = plain_pair.lines()
    plain_pair.clear()
    assert len(_strip_times(ours)) == 3
    assert _strip_times(ours) == _strip_times(theirs)


def _rebuilt_extra_first(record: logging.LogRecord) -> None:
    items = list(record.__dict__.items())
    record.__dict__.clear()
    record.__dict__.update(reversed(items))


def _exception_set(record: logging.LogRecord) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()


def _dict_replaced(record: logging.LogRecord) -> None:
    record.__dict__ = {**record.__dict__, "levelname": "NOTICE", "added": "x"}


def _surrogate(record: logging.LogRecord) -> str:
    record.levelname = "NOTICE"
    return "\ud800"  # (a lone surrogate: the encoder's way)


def _time_and_level(record: logging.LogRecord) -> None:
    record.levelno, record.created = logging.ERROR, 1e6
    record.tags = ["t"]  # type: ignore[attr-defined]  # (a list: the general way)


#: (what the argument's __str__ does to its record, the record's extra, code attributes)
_CHANGED_AFTER = {
    "level name, then the encoder's way (a NaN)": (
        lambda r: setattr(r, "levelname", "NOTICE"),
        {"k": math.nan},
        False,
    ),
    "level name, then the encoder's way (a lone surrogate)": (_surrogate, {"k": "v"}, False),
    "level name no str": (lambda r: setattr(r, "levelname", 3), {"k": "v"}, False),
    "line number, code attributes, a NaN": (lambda r: setattr(r, "lineno", 999), {"k": math.nan}, True),
    "dict rebuilt with the extra first, a NaN": (_rebuilt_extra_first, {"k": math.nan}, False),
    "exception set": (_exception_set, {"k": "v"}, False),
    "dict replaced": (_dict_replaced, {"k": "v"}, False),
    "a list attribute added": (lambda r: setattr(r, "tags", ["t"]), {"k": "v"}, False),
    "time and level number, then the general way": (_time_and_level, {"k": "v"}, False),
}


@pytest.mark.parametrize("kind", FAST_PATHS)
@pytest.mark.parametrize("case", list(_CHANGED_AFTER))
def test_what_an_argument_changes_is_read_after_its_message_whatever_way_the_line_goes(
    kind: str, case: str
) -> None:
    """An argument's __str__ that changes its record, when the line then goes the encoder's
    way or the general way: the OTel handler reads everything but the time and the level
    number after getMessage(), and the message is built once. The C path handed those ways
    the record as read before the message (the old level name, line number, attributes;
    an exception set meanwhile left out; a replaced __dict__ not seen) and the general way
    built the message a second time."""
    change, extra, code = _CHANGED_AFTER[case]
    calls: list[int] = []

    class Changing:
        def __init__(self) -> None:
            self.record: logging.LogRecord | None = None
            self.calls = 0
            calls.append(0)

        def __str__(self) -> str:
            assert self.record is not None
            calls[-1] += 1
            text = change(self.record)
            return text if isinstance(text, str) else "arg"

    with fast_path(kind), pair(name=f"changed_after_{kind}", code=code) as p:

        def record() -> logging.LogRecord:
            arg = Changing()
            made = p.logger.makeRecord(
                p.logger.name, logging.WARNING, "f", 1, "m %s", (arg,), None, extra=extra
            )
            arg.record = made
            return made

        with quiet_sdk():
            p.otel.handle(record())
            p.handler.handle(record())
        theirs, ours = p.lines()
    assert calls == [1, 1], "the message is built once"
    assert len(_strip_times(ours)) == 1
    assert _strip_times(ours) == _strip_times(theirs)


@pytest.mark.parametrize("kind", FAST_PATHS)
@pytest.mark.parametrize("fails", ["exc_info's truth", "the current span"])
def test_a_record_failing_after_its_message_was_built_never_builds_it_again(kind: str, fails: str) -> None:
    """An argument's __str__ that sets an exc_info whose truth raises, or a current span
    whose context raises: the record is counted (internal_error), nothing is raised into
    the application, and the argument's str() ran once (the C path dropped the message it
    had built and the general way built it a second time)."""
    calls: list[int] = []

    class NoTruth:
        def __bool__(self) -> bool:
            raise ValueError("no truth")

    class BrokenSpan(NonRecordingSpan):
        def get_span_context(self) -> SpanContext:
            raise RuntimeError("no context")

    class Arg:
        record: logging.LogRecord | None = None

        def __str__(self) -> str:
            calls.append(1)
            if fails == "exc_info's truth":
                assert self.record is not None
                self.record.exc_info = NoTruth()  # type: ignore[assignment]
            return "arg"

    out = Collect()
    processor = LogxpyLogRecordProcessor(destinations=[out])
    with fast_path(kind):
        handler = processor.logging_handler(resource=RESOURCE)
    try:
        assert _fast_path_of(handler) == kind
        logger = logging.getLogger(f"test_logging_handler.fails_after_{kind}")
        arg = Arg()
        made = logger.makeRecord(logger.name, logging.INFO, "f", 1, "m %s", (arg,), None, extra={"k": "v"})
        arg.record = made
        span = BrokenSpan(SpanContext(1, 2, False)) if fails == "the current span" else None
        token = otel_context_module.attach(trace.set_span_in_context(span)) if span is not None else None
        try:
            with quiet_sdk():
                handler.handle(made)
        finally:
            if token is not None:
                otel_context_module.detach(token)
        assert calls == [1]
        assert processor.force_flush(10_000)
        assert dict(processor.metrics.dropped_by_reason) == {"internal_error": 1}
    finally:
        handler.close()
        processor.shutdown()


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_a_message_of_a_str_subclass_built_by_args_reads_the_record_after(kind: str) -> None:
    """``args`` a str subclass whose __rmod__ changes the record and gives a message of a
    str subclass (the encoder's way): the level name and attributes are read after it
    (the C path took that way before it read the record again: the old level name)."""

    class Tag(str):
        pass

    class Args(str):
        record: logging.LogRecord | None = None

        def __rmod__(self, msg: str) -> str:
            assert self.record is not None
            self.record.levelname = "NOTICE"
            self.record.added = "after"  # type: ignore[attr-defined]
            return Tag("built")

    with fast_path(kind), pair(name=f"rmod_{kind}") as p:
        for handler in (p.otel, p.handler):
            args = Args("x")
            made = p.logger.makeRecord(
                p.logger.name, logging.INFO, "f", 1, "m %s", None, None, extra={"k": "v"}
            )
            made.args = args  # type: ignore[assignment]
            args.record = made
            handler.handle(made)
        theirs, ours = p.lines()
    assert [(line["msg"], line.get("added")) for line in _strip_times(ours)] == [("built", "after")]
    assert _strip_times(ours) == _strip_times(theirs)


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_a_message_built_as_none_is_not_built_again(kind: str) -> None:
    """``args`` whose __rmod__ gives None and adds a list attribute (the general way): the
    general way took the None message for "not built" and built it a second time."""
    calls: list[int] = []

    class Args(str):
        record: logging.LogRecord | None = None

        def __rmod__(self, msg: str) -> None:
            assert self.record is not None
            calls.append(1)
            self.record.tags = ["t"]  # type: ignore[attr-defined]

    with fast_path(kind), pair(name=f"rmod_none_{kind}") as p:
        for handler in (p.otel, p.handler):
            args = Args("x")
            made = p.logger.makeRecord(p.logger.name, logging.INFO, "f", 1, "m %s", None, None)
            made.args = args  # type: ignore[assignment]
            args.record = made
            with quiet_sdk():
                handler.handle(made)
        theirs, ours = p.lines()
    assert calls == [1, 1], "built once on each path"
    assert _strip_times(ours) == _strip_times(theirs)


class _Asked(NonRecordingSpan):
    """A span whose context, asked, is counted and may change the record being handled."""

    def __init__(self, context: SpanContext, record: list[logging.LogRecord]) -> None:
        super().__init__(context)
        self.asked = 0
        self.record = record

    def get_span_context(self) -> SpanContext:
        self.asked += 1
        if self.record:
            self.record[-1].added = "by the span"  # type: ignore[attr-defined]
        return SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(1))


@pytest.mark.parametrize("kind", FAST_PATHS)
@pytest.mark.parametrize(
    "msg", ["plain", "lone \ud800", "m %s %s"], ids=["written", "encoder's way", "bad format"]
)
def test_the_current_span_is_asked_once_after_the_attributes_and_the_message(kind: str, msg: str) -> None:
    """The OTel handler asks the current span once a record, after it read the record's
    attributes and built the message (never, when the message fails). The C path asked it
    before writing the message: a line that then went the encoder's way asked it twice and
    took attributes the span had added; a bad format had asked it already."""
    being_handled: list[logging.LogRecord] = []
    span = _Asked(SpanContext(1, 2, False), being_handled)
    asked = []
    with fast_path(kind), pair(name=f"asked_{kind}") as p, trace.use_span(span), quiet_sdk():
        for handler in (p.otel, p.handler):
            made = p.logger.makeRecord(
                p.logger.name, logging.INFO, "f", 1, msg, ("x",) if "%" in msg else None, None
            )
            being_handled.append(made)
            before = span.asked
            with contextlib.suppress(TypeError), contextlib.redirect_stderr(io.StringIO()):
                handler.handle(made)  # (the OTel handler raises a bad format into the application)
            asked.append(span.asked - before)
            being_handled.pop()
        theirs, ours = p.lines()
    assert asked == ([0, 0] if "%" in msg else [1, 1])
    assert _strip_times(ours) == _strip_times(theirs)


_OTHER = SpanContext(0xAAAA, 0xBBBB, is_remote=False, trace_flags=TraceFlags(1))


class _SubContext(SpanContext):
    """A SpanContext subclass: not the exact tuple type the C path reads in place."""


class _Answering(NonRecordingSpan):
    """A span whose get_span_context is counted, changes the record being handled (an
    attribute added, one changed) and returns (or raises) ``answer``."""

    def __init__(self, answer: Any, change: bool = True) -> None:
        super().__init__(SpanContext(1, 2, False))
        self.answer, self.change, self.asked = answer, change, 0
        self.being_handled: list[logging.LogRecord] = []

    def get_span_context(self) -> Any:
        self.asked += 1
        if self.change and self.being_handled:
            self.being_handled[-1].added = "by the span"  # type: ignore[attr-defined]
            self.being_handled[-1].user = "changed"  # type: ignore[attr-defined]
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def _asked_on_both(kind: str, span: _Answering) -> tuple[list[int], list[Any], list[Any]]:
    """One record on each path inside ``span``: how often each asked it, and the lines."""
    asked = []
    with fast_path(kind), pair(name=f"answering_{kind}") as p, trace.use_span(span), quiet_sdk():
        for handler in (p.otel, p.handler):
            made = p.logger.makeRecord(
                p.logger.name, logging.INFO, "f", 1, "m %s", ("x",), None, extra={"user": "orig"}
            )
            span.being_handled.append(made)
            before = span.asked
            with contextlib.suppress(Exception), contextlib.redirect_stderr(io.StringIO()):
                handler.handle(made)  # (the OTel handler raises a failing span into the application)
            asked.append(span.asked - before)
            span.being_handled.pop()
        theirs, ours = p.lines()
    return asked, _strip_times(theirs), _strip_times(ours)


@pytest.mark.parametrize("kind", FAST_PATHS)
@pytest.mark.parametrize(
    "answer",
    [
        _SubContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(1)),
        SpanContext(2**130, 0x5678, is_remote=False, trace_flags=TraceFlags(1)),
        types.SimpleNamespace(trace_id=0x1234, span_id=0x5678, trace_flags=TraceFlags(1)),
        ValueError("no context"),
        object(),
    ],
    ids=["a SpanContext subclass", "an id too wide", "not a SpanContext", "raises", "no ids"],
)
def test_a_span_is_asked_once_and_what_it_changes_is_not_read(kind: str, answer: Any) -> None:
    """The current span asked, the line then goes the encoder's way (a context the C path
    does not read in place) or fails: the C path read the attributes again after the span
    had changed them, and asked a span that failed a second time on the general way."""
    asked, theirs, ours = _asked_on_both(kind, _Answering(answer))
    assert asked == [1, 1]
    assert ours == theirs


@pytest.mark.parametrize("kind", FAST_PATHS)
@pytest.mark.parametrize("how", ["method patched", "registered as a Span"])
def test_a_span_class_changed_after_it_was_seen_is_read_as_it_is_now(kind: str, how: str) -> None:
    """The C path remembered a span class's way to its context for good: a class whose
    get_span_context was patched after a record was still read through ``_context``, and a
    class registered as a Span afterwards still gave no trace."""

    class Patched(NonRecordingSpan):
        pass

    class Duck:
        def get_span_context(self) -> SpanContext:
            return _OTHER

    span: Any = (
        Patched(SpanContext(0x1234, 0x5678, False, TraceFlags(1))) if how == "method patched" else Duck()
    )
    with fast_path(kind), pair(name=f"class_changed_{kind}") as p, quiet_sdk():
        token = otel_context_module.attach(trace.set_span_in_context(span))
        try:
            p.logger.info("first")
            if how == "method patched":
                Patched.get_span_context = lambda self: _OTHER  # type: ignore[method-assign]
            else:
                trace.Span.register(Duck)
            p.logger.info("second")
        finally:
            otel_context_module.detach(token)
        theirs, ours = p.lines()
    assert [line["_otel"].get("span_id") for line in _strip_times(ours)][-1] == f"{0xBBBB:016x}"
    assert _strip_times(ours) == _strip_times(theirs)


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_a_descriptor_on_the_logger_s_class_that_becomes_a_data_descriptor_is_asked(kind: str) -> None:
    """The C path checked the logger's class once per version: a class attribute that was
    a plain (non-data) descriptor, whose own class got a ``__set__`` later, made a data
    descriptor without changing the logger class's version; its answer was not read."""
    from opentelemetry.sdk._logs._internal import Logger as SdkLogger
    from opentelemetry.sdk._logs._internal import _LoggerConfig

    class Off:
        def __get__(self, obj: object, owner: object = None) -> _LoggerConfig:
            return _LoggerConfig(is_enabled=False)

    class Patchable(SdkLogger):
        _logger_config = Off()

    with fast_path(kind), pair(name=f"descriptor_{kind}") as p:
        live = p.provider.get_logger(p.logger.name, "", None, None)
        live.__class__ = Patchable
        p.logger.info("first")
        Off.__set__ = lambda self, obj, value: None  # type: ignore[attr-defined]
        p.logger.info("second: turned off")
        lines = _assert_same(p)
    assert [line["msg"] for line in lines] == ["first"]


@pytest.mark.parametrize("kind", FAST_PATHS)
@pytest.mark.parametrize("how", ["class", "instance"])
def test_a_logger_s_resource_and_config_changed_after_it_was_seen_are_read_as_they_are_now(
    kind: str, how: str
) -> None:
    """The C path reads the SDK logger's ``_resource`` and ``_logger_config`` from its
    instance dict once its class was seen to have nothing of those names that comes first:
    a property patched onto the class later, or the logger's config and resource set
    again, are what both paths write from then on."""
    from opentelemetry.sdk._logs._internal import Logger as SdkLogger
    from opentelemetry.sdk._logs._internal import _LoggerConfig

    other = Resource.create({"service.name": "changed"})

    class Patchable(SdkLogger):
        pass

    with fast_path(kind), pair(name=f"logger_changed_{kind}_{how}") as p:
        live = p.provider.get_logger(p.logger.name, "", None, None)
        live.__class__ = Patchable
        p.logger.info("first")
        if how == "class":
            Patchable._resource = property(lambda self: other)  # type: ignore[assignment,method-assign]
        else:
            live._set_resource(other)  # type: ignore[attr-defined]
        p.logger.info("second")
        if how == "class":
            Patchable._logger_config = property(  # type: ignore[assignment,method-assign]
                lambda self: _LoggerConfig(is_enabled=False)
            )
        else:
            live._set_logger_config(_LoggerConfig(is_enabled=False))  # type: ignore[attr-defined]
        p.logger.info("third: turned off")
        lines = _assert_same(p)
    assert [line["msg"] for line in lines] == ["first", "second"]
    services = [line["_otel"]["resource"]["attributes"]["service.name"] for line in lines]
    assert services == ["logging-handler-test", "changed"]


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_a_context_subclass_s_own_get_is_asked(kind: str) -> None:
    """get_current_span() calls ``context.get(key)``: a Context subclass whose get gives
    another span was read as a plain dict by the C path (the other span's ids lost)."""
    other = NonRecordingSpan(_OTHER)

    class Redirecting(otel_context_module.Context):
        def get(self, key: str, default: Any = None) -> Any:
            return other if key == trace.propagation._SPAN_KEY else super().get(key, default)

    base = trace.set_span_in_context(NonRecordingSpan(SpanContext(0x1234, 0x5678, False, TraceFlags(1))))
    with fast_path(kind), pair(name=f"context_get_{kind}") as p, quiet_sdk():
        token = otel_context_module.attach(Redirecting(base))
        try:
            p.logger.info("m")
        finally:
            otel_context_module.detach(token)
        theirs, ours = p.lines()
    assert [line["_otel"]["span_id"] for line in _strip_times(ours)] == [f"{0xBBBB:016x}"]
    assert _strip_times(ours) == _strip_times(theirs)


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_getmessage_s_second_read_of_args_is_the_one_formatted(kind: str) -> None:
    """getMessage() reads record.args for ``if self.args`` and again to format: arguments
    whose __bool__ set others are formatted as those others (the C path formatted the
    ones it had read first)."""

    class Swapping(dict[str, int]):
        record: logging.LogRecord | None = None

        def __bool__(self) -> bool:
            assert self.record is not None
            self.record.args = ("new",)
            return True

    with fast_path(kind), pair(name=f"args_bool_{kind}") as p:
        for handler in (p.otel, p.handler):
            args = Swapping(x=1)
            made = p.logger.makeRecord(p.logger.name, logging.INFO, "f", 1, "m %s", None, None)
            made.args = args  # type: ignore[assignment]
            args.record = made
            handler.handle(made)
        theirs, ours = p.lines()
    assert [line["msg"] for line in _strip_times(ours)] == ["m new"]
    assert _strip_times(ours) == _strip_times(theirs)


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_an_exc_info_whose_truth_runs_code_is_asked_where_the_otel_handler_asks_it(kind: str) -> None:
    """An exc_info object (not a tuple) whose __bool__ changes the level name and is false:
    the OTel handler asks it after the attributes and before the level name; the C path
    asked it first of all, and wrote the old level name."""

    class Falsy:
        record: logging.LogRecord | None = None

        def __bool__(self) -> bool:
            assert self.record is not None
            self.record.levelname = "NOTICE"
            return False

    with fast_path(kind), pair(name=f"exc_bool_{kind}") as p:
        for handler in (p.otel, p.handler):
            made = p.logger.makeRecord(p.logger.name, logging.INFO, "f", 1, "plain %s", ("x",), None)
            falsy = Falsy()
            falsy.record = made
            made.exc_info = falsy  # type: ignore[assignment]
            handler.handle(made)
        theirs, ours = p.lines()
    assert [line["_otel"]["severity_text"] for line in _strip_times(ours)] == ["NOTICE"]
    assert _strip_times(ours) == _strip_times(theirs)


#: A child's handler of ours (the C path where built) on the logger ``log``, writing to
#: argv[1]; the test's code follows, then :data:`_CHILD_END` prints what was dropped.
_CHILD_START = """
import gc, logging, sys
from logxpy_otel import LogxpyLogRecordProcessor
from logxpy_otel import logging_handler as handler_module
processor = LogxpyLogRecordProcessor(sys.argv[1])
handler = processor.logging_handler()
log = logging.getLogger("child")
log.handlers[:] = [handler]
log.propagate = False
"""
_CHILD_END = """
processor.force_flush()
print(sum(processor.metrics.dropped_by_reason.values()))
processor.shutdown()
"""


def _each_record_written_or_counted(tmp_path: Path, code: str, records: int) -> int:
    """Run ``code`` in a child with our handler: it ends well (a freed object used would
    crash it), and each of its ``records`` is written or counted as dropped. Returns how
    many were written."""
    path = tmp_path / "child.log"
    done = run_script(_CHILD_START + textwrap.dedent(code) + _CHILD_END, str(path), timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-1000:]}"
    written = [line for line in path.read_bytes().splitlines() if b'"at":' not in line]
    assert len(written) + int(done.stdout.split()[-1]) == records
    return len(written)


def test_a_gc_callback_emptying_the_extras_while_the_encoder_s_way_takes_them_crashes_nothing(
    tmp_path: Path,
) -> None:
    """Collections at every allocation while a record goes the encoder's way (a NaN), and a
    callback that deletes its extras: the C path put a key and value it had borrowed from
    the record's dict, freed meanwhile, into the attributes (a crash, exit -11)."""
    code = """
        current = []
        def emptied(phase, info):
            if phase == "start" and current and handler_module._EMITTING.get():
                fields = current[-1].__dict__
                fields.pop("a1", None)
                fields.pop("a2", None)
        gc.callbacks.append(emptied)
        for i in range(500):
            # (keys made at run time: a literal's string is kept alive by the code object)
            extra = {"".join(["a", "1"]): "".join(["v-", str(i), "-x" * 20]),
                     "".join(["a", "2"]): "".join(["w-", str(i), "-y" * 20]), "n": float("nan")}
            record = log.makeRecord("child", 20, "f", 1, "hello", None, None, extra=extra)
            del extra  # (the record's dict holds its extras' only references)
            keep = [{} for _ in range(200)]  # (no free dict left: the next one is a new GC object)
            gc.set_threshold(1, 1, 1)
            current.append(record)
            del record
            handler.handle(current[-1])
            current.pop()
            gc.set_threshold(700, 10, 10)
            del keep
        gc.callbacks.remove(emptied)
    """
    _each_record_written_or_counted(tmp_path, code, 500)


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_a_message_is_built_once_when_the_record_goes_the_general_way_for_its_time(kind: str) -> None:
    """A record rebuilt by makeLogRecord with an int ``created`` (from JSON) and an argument
    whose text can be made once: the C path built the message, found the time no float and
    let the general way build it again ("items: " where the OTel path has "items: a,b")."""

    class Once:
        def __init__(self) -> None:
            self.it = iter(["a", "b"])

        def __str__(self) -> str:
            return ",".join(self.it)

    with fast_path(kind), pair(name=f"int_created_{kind}") as p:
        for handler in (p.otel, p.handler):
            handler.handle(
                logging.makeLogRecord(
                    {
                        "name": p.logger.name,
                        "msg": "items: %s",
                        "args": (Once(),),
                        "levelno": 20,
                        "levelname": "INFO",
                        "created": 1_700_000_000,
                    }
                )
            )
        theirs, ours = p.lines()
    assert [line["msg"] for line in _strip_times(ours)] == ["items: a,b"]
    assert _strip_times(ours) == _strip_times(theirs)


def test_a_key_whose_hash_empties_the_record_crashes_nothing(tmp_path: Path) -> None:
    """A key of another type than str whose __hash__ empties the record's dict, which held
    its last reference: the C path looked the freed key up in a set (a crash, exit -11).
    Now each record is written or counted, as the Python path does (the second goes the
    encoder's way: a NaN)."""
    code = """
        class Key:
            armed = False
            def __init__(self, record): self.record = record
            def __hash__(self):
                if Key.armed:
                    Key.armed = False
                    self.record.__dict__.clear()
                return hash("msg")
            def __eq__(self, other): return False
        for extra in ({}, {"n": float("nan")}):
            fields = {"name": "child", "msg": "hello", "levelno": 20, "levelname": "INFO", **extra}
            record = logging.makeLogRecord(fields)
            record.__dict__[Key(record)] = "x"
            Key.armed = True
            log.handle(record)
    """
    _each_record_written_or_counted(tmp_path, code, 2)


def test_a_key_whose_eq_raises_among_the_record_s_fields_loses_nothing(plain_pair: Pair) -> None:
    """A filter that puts a key of its own, whose __eq__ raises, first in the record's
    dict: the record is written as the OTel path writes it (keys are compared by
    identity, never by a foreign __eq__)."""

    class Weird:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no comparing me")

        def __hash__(self) -> int:
            return 12345

        def __str__(self) -> str:
            return "weird"

    def put_first(record: logging.LogRecord) -> bool:
        record.__dict__ = {Weird(): "w", **record.__dict__}
        return True

    plain_pair.logger.addFilter(put_first)
    try:
        with quiet_sdk():
            plain_pair.logger.warning("hello %s", "there", extra={"k": 1})
    finally:
        plain_pair.logger.removeFilter(put_first)
    (line,) = [line for line in _assert_same(plain_pair, 1) if "at" not in line]
    assert line["msg"] == "hello there"


def test_gc_callbacks_changing_the_record_being_handled_crash_nothing(tmp_path: Path) -> None:
    """A gc callback that changes the record being handled (its fields set again, extras
    added and removed) while collections run at every allocation, with the record's
    fields out of LogRecord.__init__'s order: the child process ends well (a freed field
    used would abort it), every record written or counted."""
    code = """
        import random
        current, rnd = [], random.Random(1)
        def changed(phase, info):
            if phase != "start" or not current:
                return
            record = current[-1]
            fields = record.__dict__
            op = rnd.randrange(5)
            if op == 0:
                record.msg = "".join(["gc msg ", str(rnd.random())])
            elif op == 1:
                record.levelname = "".join(["GC", str(rnd.random())])
            elif op == 2:
                fields["zz" + str(rnd.randrange(3))] = "".join(["v", str(rnd.random())])
            elif op == 3:
                fields.pop("zz0", None)
                fields.pop("k", None)
            else:
                record.args = ("".join(["a", str(rnd.random())]),)
        gc.callbacks.append(changed)
        gc.set_threshold(1, 1, 1)
        for i in range(1500):
            record = log.makeRecord("child", 30, "f", 1, "".join(["m %s ", str(i)]), ("x",), None,
                                    extra={"k": "".join(["v", str(i)]), "f": i + 0.25})
            fields = record.__dict__
            fields["exc_info"] = fields.pop("exc_info")
            current.append(record)
            handler.handle(record)
            current.pop()
        gc.callbacks.remove(changed)
        gc.set_threshold(700, 10, 10)
    """
    # every record written, or counted: a record the callback changed into one whose
    # message cannot be built (a new msg, with the old args) is a format error, as logging says
    assert _each_record_written_or_counted(tmp_path, code, 1500) > 0


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_a_record_logged_from_an_arguments_str_is_skipped(kind: str) -> None:
    """A record logged by an argument's ``__str__`` while the message is built: skipped as
    the OTel handler skips it (its guard covers ``getMessage()``), counted; also by another
    handler of ours on the Python path (one guard for all of them, as the OTel handlers')."""
    out, other_out = Collect(), Collect()
    processor = LogxpyLogRecordProcessor(destinations=[out])
    other_processor = LogxpyLogRecordProcessor(destinations=[other_out])
    with fast_path(kind):
        handler = processor.logging_handler(resource=RESOURCE)
    other = _sdk_flavoured(other_processor.logging_handler(resource=RESOURCE))  # the Python path
    logger = logging.getLogger(f"test_logging_handler.from_str_{kind}")
    inner = logging.getLogger(f"test_logging_handler.from_str_{kind}.inner")
    _only(logger, handler)
    _only(inner, other)
    for each in (logger, inner):
        each.propagate = False
        each.setLevel(logging.INFO)

    class Chatty:
        def __str__(self) -> str:
            logger.info("from __str__")
            inner.info("from __str__, to another handler")
            return "chatty"

    try:
        logger.info("value %s", Chatty())
        logger.info("after")
        inner.info("after, to another handler")
    finally:
        logger.handlers[:] = []
        inner.handlers[:] = []
        processor.shutdown()
        other_processor.shutdown()
    assert [r["msg"] for r in out.records()] == ["value chatty", "after"]
    assert [r["msg"] for r in other_out.records()] == ["after, to another handler"]
    assert _dropped(handler) == {RECURSIVE_LOGGING: 1}
    assert _dropped(other) == {RECURSIVE_LOGGING: 1}


def _alone_on_a_logger(
    kind: str, name: str, handler_type: type[LogxpyLoggingHandler] | None = None
) -> tuple[Collect, LogxpyLogRecordProcessor, LogxpyLoggingHandler, logging.Logger]:
    """A processor writing to memory, its handler (the ``kind`` fast path; of
    ``handler_type``, a subclass, where given) alone on the logger
    ``test_logging_handler.<name>`` at INFO, not propagating."""
    out = Collect()
    processor = LogxpyLogRecordProcessor(destinations=[out])
    with fast_path(kind):
        if handler_type is None:
            handler = processor.logging_handler(resource=RESOURCE)
        else:
            handler = handler_type(processor=processor, resource=RESOURCE)
    logger = logging.getLogger(f"test_logging_handler.{name}")
    _only(logger, handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return out, processor, handler, logger


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_a_record_another_context_logs_while_one_is_handled_is_written(kind: str) -> None:
    """The recursion guard is per context, as the OTel handler's is: a record logged in
    another context (a fresh one, as each greenlet has) while this one is inside the
    handler is not a recursion. The C path's guard was per thread: under gevent every
    record other greenlets logged while one yielded inside the handler (a full queue under
    ``block``, an argument whose ``str()`` does I/O) was dropped as ``recursive_logging``
    (80 of 100 under ``block`` in a review, session 34)."""
    import contextvars

    out, processor, handler, logger = _alone_on_a_logger(kind, f"contexts_{kind}")

    class Yields:
        def __str__(self) -> str:
            contextvars.Context().run(logger.info, "from another context")
            logger.info("from this context")  # (a recursion: skipped, counted)
            return "yields"

    try:
        logger.info("value %s", Yields())
    finally:
        logger.handlers[:] = []
        processor.shutdown()
    assert [r["msg"] for r in out.records()] == ["from another context", "value yields"]
    assert _dropped(handler) == {RECURSIVE_LOGGING: 1}


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_greenlets_that_switch_inside_the_handler_lose_no_record(kind: str) -> None:
    """Greenlets (gevent's unit) share a thread: one that switches away inside the handler
    (here in an argument's ``str()``, as gevent switches at any I/O or full-queue wait)
    lets the others log meanwhile; each of their records is written."""
    greenlet = pytest.importorskip("greenlet")
    out, processor, handler, logger = _alone_on_a_logger(kind, f"greenlets_{kind}")
    hub = greenlet.getcurrent()

    class Switches:
        def __str__(self) -> str:
            hub.switch()  # (to the others: gevent's hub does this at I/O)
            return "after a switch"

    first = greenlet.greenlet(lambda: logger.info("A %s", Switches()))
    others = [greenlet.greenlet(functools.partial(logger.info, "B %d", n)) for n in range(3)]
    try:
        first.switch()  # runs until its argument's str() switches back here
        for other in others:
            other.switch()
        first.switch()  # back into the handler, which ends its record
    finally:
        logger.handlers[:] = []
        processor.shutdown()
    assert first.dead and all(other.dead for other in others)
    assert [r["msg"] for r in out.records()] == ["B 0", "B 1", "B 2", "A after a switch"]
    assert _dropped(handler) == {}


LIMITS = st.sampled_from(
    [
        LogRecordLimits(),  # the defaults (128): no limit bites, the fast paths
        LogRecordLimits(max_attributes=2),
        LogRecordLimits(max_attributes=0),
        LogRecordLimits(max_attribute_length=3),
        LogRecordLimits(max_attributes=3, max_attribute_length=1),
        LogRecordLimits(max_log_record_attributes=1),
    ]
)


@settings(max_examples=80, deadline=None)
@given(limits=LIMITS, calls=CALLS, code=st.booleans(), kind=st.sampled_from(FAST_PATHS))
def test_the_same_lines_under_attribute_limits_and_with_code_attributes(
    limits: LogRecordLimits, calls: list[tuple[Any, ...]], code: bool, kind: str
) -> None:
    """Limits as the SDK applies them (count, value length, ``dropped_attributes_count``);
    code attributes when asked."""
    with quiet_sdk(), fast_path(kind), pair(name="limits", limits=limits, code=code) as p:
        _run_calls(p, calls)
        _assert_same(p, len(calls))


@settings(max_examples=60, deadline=None)
@given(calls=CALLS)
def test_the_same_lines_as_the_sdk_handler_in_its_flavour(calls: list[tuple[Any, ...]]) -> None:
    """Zero-code set-up replaces the SDK's deprecated handler too: its meaning (code
    attributes always, event names not promoted, a non-str msg kept as the body)."""
    with quiet_sdk(), pair(name="sdk", sdk_flavour=True) as p:
        _run_calls(p, calls)
        _assert_same(p, len(calls))


def test_the_same_lines_with_a_formatter() -> None:
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    with pair(name="formatter", formatter=formatter) as p:
        p.logger.warning("disk %s is full", "/var", extra={"disk": "/var"})
        try:
            raise ValueError("nope")
        except ValueError:
            p.logger.exception("failed")
        lines = _assert_same(p, 2)
    assert lines[0]["msg"] == "WARNING test_logging_handler.formatter: disk /var is full"
    assert lines[1]["msg"].startswith("ERROR test_logging_handler.formatter: failed\nTraceback")


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_filters_and_a_formatter_set_later_are_applied(kind: str) -> None:
    """On the fast paths too: a filter added, a filter list replaced, a formatter set after
    the handler was made."""
    out = Collect()
    processor = LogxpyLogRecordProcessor(destinations=[out])
    with fast_path(kind):
        handler = processor.logging_handler(resource=RESOURCE)
    assert _fast_path_of(handler) == kind
    logger = logging.getLogger(f"test_logging_handler.later_{kind}")
    _only(logger, handler)
    logger.propagate = False
    logger.warning("1 kept")
    handler.addFilter(lambda record: "drop" not in record.getMessage())
    logger.warning("2 drop me")
    logger.warning("3 kept")
    handler.filters = [lambda record: "keep" in record.getMessage()]
    logger.warning("4 not this")
    logger.warning("5 keep this")
    handler.filters = []
    handler.setFormatter(logging.Formatter("formatted: %(message)s"))
    logger.warning("6")
    logger.handlers[:] = []
    processor.shutdown()
    assert [r["msg"] for r in out.records()] == ["1 kept", "3 kept", "5 keep this", "formatted: 6"]


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_a_subclass_with_its_own_filter_is_asked_about_every_record(kind: str) -> None:
    """The stdlib's ``Handler.handle`` always calls ``self.filter``; ours called it only
    when filters were added, so a subclass that redacts by overriding ``filter`` had every
    record written, secrets included (as the OTel handler does not)."""

    class OnlyWarnings(LogxpyLoggingHandler):
        def filter(self, record: logging.LogRecord) -> bool:
            return record.levelno >= logging.WARNING

    out, processor, _, logger = _alone_on_a_logger(kind, f"own_filter_{kind}", OnlyWarnings)
    logger.info("secret %s", "password=hunter2")
    logger.warning("a warning")
    logger.handlers[:] = []
    processor.shutdown()
    assert [r["msg"] for r in out.records()] == ["a warning"]


@pytest.mark.parametrize("kind", FAST_PATHS)
@pytest.mark.parametrize("when", ["before", "after"], ids=["set-before-use", "set-after-use"])
def test_a_filter_set_on_the_handler_itself_is_asked_about_every_record(kind: str, when: str) -> None:
    """``handler.filter = f`` (as the stdlib's ``handle`` asks it) was skipped on every path."""
    out, processor, handler, logger = _alone_on_a_logger(kind, f"instance_filter_{kind}_{when}")

    def no_secrets(record: logging.LogRecord) -> bool:
        return "secret" not in record.getMessage()

    if when == "before":
        handler.filter = no_secrets  # type: ignore[method-assign]
    else:
        logger.info("first")
    logger.info("a secret")
    if when == "after":
        handler.filter = no_secrets  # type: ignore[method-assign]
        logger.info("another secret")
    logger.info("last")
    logger.handlers[:] = []
    processor.shutdown()
    expected = ["last"] if when == "before" else ["first", "a secret", "last"]
    assert [r["msg"] for r in out.records()] == expected


def test_what_a_record_becomes() -> None:
    """The fields one by one, for a record with extras inside a span (the common case)."""
    with pair(name="fields") as p, TRACER.start_as_current_span("request") as span:
        p.logger.info("user %s signed in", "ann", extra={"user.id": 7, "ratio": 0.5, "ok": True, "ts": "x"})
        p.logger.warning("careful", extra={"otel.event.name": "auth.retry", "event.name": "old"})
        p.logger.critical("down")
        lines = _assert_same(p, 3)
    context = span.get_span_context()
    info, warn, critical = [line for line in lines if "at" not in line]
    assert _trace_of(info["tid"]) == f"{context.trace_id:032x}"
    assert info["msg"] == "user ann signed in" and info["mt"] == "info"
    assert (info["user.id"], info["ratio"], info["ok"]) == (7, 0.5, True)
    otel = info["_otel"]
    assert otel["attributes"] == {"ts": "x"}, "a reserved name goes to _otel.attributes"
    assert (otel["severity_number"], otel["severity_text"]) == (9, "INFO")
    assert otel["span_id"] == f"{context.span_id:016x}" and otel["trace_flags"] == context.trace_flags
    assert otel["scope"] == {"name": "test_logging_handler.fields", "version": ""}
    assert otel["resource"]["attributes"]["service.name"] == "logging-handler-test"
    assert warn["_otel"]["severity_text"] == "WARN" and warn["_otel"]["event_name"] == "auth.retry"
    assert "otel.event.name" not in warn and "event.name" not in warn
    assert critical["_otel"]["severity_text"] == "FATAL" and critical["mt"] == "critical"


@pytest.mark.parametrize("level", range(0, 101))
def test_severity_of_every_level(level: int) -> None:
    """As the OTel handler maps it: std_to_otel for the number, the level name as the text."""
    from logxpy_otel.logging_handler import _SEVERITY_BY_LEVEL, _severity

    assert _severity(level) is std_to_otel(level)
    assert _SEVERITY_BY_LEVEL.get(level, std_to_otel(level)) is std_to_otel(level)


def test_custom_level_names_and_numbers(plain_pair: Pair) -> None:
    logging.addLevelName(25, "NOTICE")
    logging.addLevelName(5, "TRACE")
    try:
        plain_pair.logger.log(25, "notice")
        plain_pair.logger.log(5, "trace")
        plain_pair.logger.log(99, "beyond")
        lines = _assert_same(plain_pair, 3)
    finally:
        del logging._levelToName[25], logging._nameToLevel["NOTICE"]  # type: ignore[attr-defined]
        del logging._levelToName[5], logging._nameToLevel["TRACE"]  # type: ignore[attr-defined]
    records = [line for line in lines if "at" not in line]
    assert [(r["_otel"]["severity_number"], r["_otel"]["severity_text"]) for r in records] == [
        (SeverityNumber.INFO4.value, "NOTICE"),
        (0, "TRACE"),
        (SeverityNumber.FATAL4.value, "Level 99"),
    ]


# -- never raises, no feedback, no recursion -------------------------------------------------------


@pytest.fixture
def handler_and_output() -> Iterator[tuple[LogxpyLoggingHandler, Collect, logging.Logger]]:
    out = Collect()
    processor = LogxpyLogRecordProcessor(destinations=[out])
    handler = processor.logging_handler(resource=RESOURCE)
    logger = logging.getLogger("test_logging_handler.alone")
    logger.handlers[:] = [handler]
    logger.setLevel(1)
    logger.propagate = False
    try:
        yield handler, out, logger
    finally:
        logger.handlers[:] = []
        handler.close()
        processor.shutdown()


def _only(logger: logging.Logger, handler: logging.Handler) -> None:
    """``handler`` alone on ``logger``: pytest (9.2+) adds its capture handler to loggers that
    do not propagate, and that one raises on a record whose message cannot be built."""
    logger.handlers[:] = [handler]


def _dropped(handler: LogxpyLoggingHandler) -> dict[str, int]:
    return dict(handler.processor.metrics.dropped_by_reason)


def test_a_bad_format_never_raises_and_is_counted(
    handler_and_output: tuple[LogxpyLoggingHandler, Collect, logging.Logger],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The OTel handler raises these into the application; ours counts and reports them as
    ``logging`` handlers do (``handleError``: a traceback on stderr while raiseExceptions)."""
    handler, out, logger = handler_and_output
    _only(logger, handler)
    logger.info("%d items", "not a number")
    logger.info("%s and %s", "only one")  # noqa: PLE1206 - on purpose
    with TRACER.start_as_current_span("s"):
        logger.info("%(missing)s", {"present": 1}, extra={"k": 1})
    logger.info("fine")
    assert handler.processor.force_flush(5000)
    assert [r["msg"] for r in out.records()] == ["fine"]
    assert _dropped(handler) == {FORMAT_ERROR: 3}
    assert capsys.readouterr().err.count("--- Logging error ---") == 3
    assert_accounting(handler.processor.metrics)


def test_an_internal_fault_never_raises_and_is_counted(
    handler_and_output: tuple[LogxpyLoggingHandler, Collect, logging.Logger],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler, out, logger = handler_and_output

    def broken(*_: Any) -> Any:
        raise RuntimeError("encoder broke")

    reported: list[str] = []
    monkeypatch.setattr(LogxpyLoggingHandler._fault_report, "note", lambda n, detail: reported.append(detail))
    monkeypatch.setattr(handler, "_encode", broken)
    monkeypatch.setattr(handler, "_emitter", None)  # (the C fast path needs it: the Python one)
    handler._install_fast_path(handler._current_state())
    assert _fast_path_of(handler) == "python"
    logger.info("plain")  # the fast path
    try:
        raise ValueError("x")
    except ValueError:
        logger.exception("with an exception")  # the general path
    assert handler.processor.force_flush(5000)
    assert out.records() == []
    assert _dropped(handler) == {"internal_error": 2}
    assert reported == ["RuntimeError", "RuntimeError"]


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_a_fault_on_the_fast_path_never_raises_and_is_counted(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider's logger lookup fails (a new logger name): counted, reported, not raised."""
    reported: list[str] = []
    monkeypatch.setattr(LogxpyLoggingHandler._fault_report, "note", lambda n, detail: reported.append(detail))

    def broken(self: Any, name: str) -> Any:
        raise LookupError(name)

    monkeypatch.setattr(handler_module._ProviderState, "scope", broken)
    out = Collect()
    processor = LogxpyLogRecordProcessor(destinations=[out])
    with fast_path(kind):
        handler = processor.logging_handler(logger_provider=LoggerProvider(shutdown_on_exit=False))
    assert _fast_path_of(handler) == kind
    logger = logging.getLogger(f"test_logging_handler.fault_{kind}")
    _only(logger, handler)
    logger.propagate = False
    logger.warning("lost")
    logger.handlers[:] = []
    processor.shutdown()
    assert out.records() == []
    assert _dropped(handler) == {"internal_error": 1} and reported == ["LookupError"]


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_keyboard_interrupt_goes_on_and_the_guard_is_reset(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only errors are caught: Ctrl-C in the middle of a record reaches the application, as
    from any Python code, and the next record is handled (not taken for a recursive one)."""
    interrupt = [True]
    scope = handler_module._ProviderState.scope

    def interrupted(self: Any, name: str) -> Any:
        if interrupt[0]:
            interrupt[0] = False
            raise KeyboardInterrupt
        return scope(self, name)

    monkeypatch.setattr(handler_module._ProviderState, "scope", interrupted)
    out = Collect()
    processor = LogxpyLogRecordProcessor(destinations=[out])
    with fast_path(kind):
        handler = processor.logging_handler(logger_provider=LoggerProvider(shutdown_on_exit=False))
    logger = logging.getLogger(f"test_logging_handler.interrupt_{kind}")
    _only(logger, handler)
    logger.propagate = False
    with pytest.raises(KeyboardInterrupt):
        logger.warning("interrupted")
    logger.warning("next")
    logger.handlers[:] = []
    processor.shutdown()
    assert [r["msg"] for r in out.records()] == ["next"]
    assert _dropped(handler) == {}


def test_a_record_that_breaks_logging_itself_never_raises(
    handler_and_output: tuple[LogxpyLoggingHandler, Collect, logging.Logger],
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Explodes:
        def __str__(self) -> str:
            raise RuntimeError("no string for you")

    handler, out, logger = handler_and_output
    _only(logger, handler)
    logger.info(Explodes())
    logger.info("value %s", Explodes())
    logger.info("after")
    assert handler.processor.force_flush(5000)
    assert [r["msg"] for r in out.records()] == ["after"]
    assert _dropped(handler) == {FORMAT_ERROR: 2}
    assert "RuntimeError: no string for you" in capsys.readouterr().err


def test_our_own_diagnostics_never_go_in(
    handler_and_output: tuple[LogxpyLoggingHandler, Collect, logging.Logger],
) -> None:
    """Records of the ``logxpy_otel`` logger (our warnings) are counted, never written: a
    warning about the file cannot feed back into it."""
    handler, out, _ = handler_and_output
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logging.getLogger("logxpy_otel").warning("a warning about the exporter")
        logging.getLogger("logxpy_otel.writer").error("another")
        logging.getLogger("logxpy_otel_other").warning("not ours: another package's name")
    finally:
        root.removeHandler(handler)
    assert handler.processor.force_flush(5000)
    assert [r["msg"] for r in out.records()] == ["not ours: another package's name"]
    assert _dropped(handler) == {"own_diagnostics": 2}


def test_a_record_logged_while_handling_one_is_skipped_as_the_otel_handler_skips_it() -> None:
    """With a value length limit the SDK's attribute cleaning logs a warning
    (``opentelemetry.attributes``) while a record is being handled. With the handler on the
    root logger, that warning comes back to it in the middle of its own work: the OTel
    handler skips it (re-entry), ours too, counted as ``recursive_logging``."""
    written = {}
    for which in ("theirs", "ours"):
        with pair(name=f"recursion.{which}", limits=LogRecordLimits(max_attribute_length=4)) as p:
            handler = p.otel if which == "theirs" else p.handler
            root = logging.getLogger()
            saved = root.level, root.handlers[:]
            root.handlers[:] = [handler]
            root.setLevel(logging.WARNING)
            internal = logging.getLogger("opentelemetry.instrumentation.logging.handler.internal")
            internal_handlers = internal.handlers[:]
            internal.handlers[:] = [logging.NullHandler()]  # its "recursive logging" notice
            try:
                logging.getLogger("test_logging_handler.recursion.app").warning(
                    "w", extra={"long": "abcdefgh"}
                )
            finally:
                root.setLevel(saved[0])
                root.handlers[:] = saved[1]
                internal.handlers[:] = internal_handlers
            theirs, ours = p.lines()
            written[which] = [(line["msg"], line["long"]) for line in (theirs if which == "theirs" else ours)]
            if which == "ours":
                assert _dropped(p.handler) == {RECURSIVE_LOGGING: 1}
    assert written["ours"] == written["theirs"] == [("w", "abcd")]


def test_the_queue_policy_is_kept() -> None:
    """drop_newest with a full queue: records are refused and counted, the caller never waits."""
    gate = Gated()
    processor = LogxpyLogRecordProcessor(
        destinations=[gate],
        config=AsyncConfig(max_queue_size=4, batch_size=4, queue_policy=QueuePolicy.DROP_NEWEST),
    )
    handler = processor.logging_handler(resource=RESOURCE)
    logger = logging.getLogger("test_logging_handler.policy")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("first")
        assert gate.entered.wait(10)  # the writer holds "first" at the gate
        for n in range(20):
            logger.info("more %d", n)
        # 4 slots: "first" (being written) holds one, 3 more are queued, 17 are refused
        assert processor.metrics.dropped_by_reason == {"queue_full": 17}
        gate.gate.set()
        assert processor.force_flush(10_000)
        assert [r["msg"] for r in gate.records()] == ["first", "more 0", "more 1", "more 2"]
        assert_accounting(processor.metrics)
    finally:
        gate.gate.set()
        logger.handlers[:] = []
        processor.shutdown()


def test_block_loses_nothing_from_many_threads(tmp_path: Path) -> None:
    path = tmp_path / "threads.jsonl"
    processor = LogxpyLogRecordProcessor(path, config=AsyncConfig(max_queue_size=64, batch_size=16))
    handler = processor.logging_handler(resource=RESOURCE)
    logger = logging.getLogger("test_logging_handler.threads")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)

    def work(k: int) -> None:
        for n in range(500):
            with TRACER.start_as_current_span("t"):
                logger.info("thread %d record %d", k, n, extra={"k": k, "n": n})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    logger.handlers[:] = []
    processor.shutdown()
    records = [line for line in parse_lines(path.read_bytes()) if "at" not in line]
    assert sorted((r["k"], r["n"]) for r in records) == [(k, n) for k in range(4) for n in range(500)]
    assert processor.metrics.dropped == 0


# -- sharing the processor; closing ---------------------------------------------------------------


def test_the_handler_shares_the_processors_file_and_numbering(tmp_path: Path) -> None:
    """API records and stdlib records of one trace make one tree in one file."""
    path = tmp_path / "shared.jsonl"
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    processor = LogxpyLogRecordProcessor(path)
    provider.add_log_record_processor(processor)
    handler = processor.logging_handler(logger_provider=provider)
    assert handler.processor is processor
    logger = logging.getLogger("test_logging_handler.shared")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    api = provider.get_logger("api")
    with TRACER.start_as_current_span("request") as span:
        api.emit(body="api first", severity_number=SeverityNumber.INFO)
        logger.info("stdlib second")
        api.emit(body="api third", severity_number=SeverityNumber.INFO)
    handler.close()  # leaves the processor running
    api.emit(body="after the handler closed", severity_number=SeverityNumber.INFO)
    provider.shutdown()
    lines = parse_lines(path.read_bytes())
    trace_id = f"{span.get_span_context().trace_id:032x}"
    in_trace = [line for line in lines if _trace_of(line["tid"]) == trace_id]
    assert [(line.get("msg", line.get("st")), line["lvl"]) for line in in_trace] == [
        ("started", [1]),
        ("api first", [2]),
        ("stdlib second", [3]),
        ("api third", [4]),
        ("succeeded", [5]),
    ]
    assert [line["msg"] for line in lines if line not in in_trace] == ["after the handler closed"]


def test_a_handler_with_a_path_owns_its_processor(tmp_path: Path) -> None:
    path = tmp_path / "own" / "app.jsonl"
    handler = LogxpyLoggingHandler(path, resource={"service.name": "own"}, queue_policy="drop_oldest")
    assert handler.processor.writer.config.queue_policy is QueuePolicy.DROP_OLDEST
    logger = logging.getLogger("test_logging_handler.own")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.warning("kept")
    handler.close()  # shuts its processor down: flushed, file closed
    logger.warning("after close")
    logger.handlers[:] = []
    (line,) = parse_lines(path.read_bytes())
    assert line["msg"] == "kept" and line["_otel"]["resource"]["attributes"]["service.name"] == "own"
    assert handler.processor.metrics.dropped_by_reason == {"shutdown": 1}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"processor": "not one"}, "processor must be a LogxpyLogRecordProcessor"),
        ({"logger_provider": object()}, "logger_provider must be an SDK LoggerProvider"),
        ({"resource": 3}, "resource must be an SDK Resource or a mapping"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        LogxpyLoggingHandler(**kwargs)


def test_processor_and_path_together_are_refused(tmp_path: Path) -> None:
    processor = LogxpyLogRecordProcessor(destinations=[Collect()])
    try:
        with pytest.raises(TypeError, match="either processor or path"):
            LogxpyLoggingHandler(tmp_path / "x.jsonl", processor=processor)
    finally:
        processor.shutdown()


def test_an_sdk_that_is_turned_off_writes_nothing_as_the_otel_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``OTEL_SDK_DISABLED``: the provider's loggers are no-ops; a logger turned off by the
    provider's logger configurator likewise. Neither path writes, neither counts a drop."""
    from opentelemetry.sdk._logs._internal import _LoggerConfig

    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with pair(name="disabled") as p:
        p.logger.warning("not written")
        assert _assert_same(p) == []
        assert p.handler.processor.metrics.dropped == 0
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    with pair(name="configured") as p:
        p.provider._set_logger_configurator(
            logger_configurator=lambda scope: _LoggerConfig(is_enabled=not scope.name.endswith("quiet"))
        )
        quiet = logging.getLogger("test_logging_handler.configured.quiet")
        quiet.handlers[:] = [p.otel, p.handler]
        quiet.propagate = False
        quiet.warning("turned off")
        p.logger.warning("on")
        assert [line["msg"] for line in _assert_same(p)] == ["on"]
        quiet.handlers[:] = []


# -- logging configuration, queues, structlog -------------------------------------------------------


def test_dict_config_builds_a_handler_with_its_own_processor(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "app.jsonl"
    name = "test_logging_handler.dictconfig"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "file": {
                    "class": "logxpy_otel.LogxpyLoggingHandler",
                    "path": str(path),
                    "level": "INFO",
                    "resource": {"service.name": "from-dict-config"},
                    "queue_policy": "drop_oldest",
                    "log_code_attributes": True,
                },
            },
            "loggers": {name: {"handlers": ["file"], "level": "DEBUG", "propagate": False}},
        }
    )
    logger = logging.getLogger(name)
    (handler,) = logger.handlers
    assert isinstance(handler, LogxpyLoggingHandler) and handler.level == logging.INFO
    assert handler.processor.writer.config.queue_policy is QueuePolicy.DROP_OLDEST
    logger.debug("below the handler's level")
    logger.info("user %s signed in", "ann", extra={"user.id": 7})
    logger.handlers[:] = []
    handler.close()
    (line,) = parse_lines(path.read_bytes())
    assert (line["msg"], line["user.id"], line["code.function.name"]) == (
        "user ann signed in",
        7,
        "test_dict_config_builds_a_handler_with_its_own_processor",
    )
    assert line["_otel"]["resource"]["attributes"]["service.name"] == "from-dict-config"
    assert line["_otel"]["scope"]["name"] == name


def test_dict_config_can_name_a_shared_processor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ext://`` names an object the application made: the handler writes through it."""
    path = tmp_path / "shared.jsonl"
    telemetry = types.ModuleType("helper_logging_telemetry")
    telemetry.processor = LogxpyLogRecordProcessor(path)  # type: ignore[attr-defined]
    telemetry.provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "helper_logging_telemetry", telemetry)
    name = "test_logging_handler.dictconfig_shared"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "shared": {
                    "class": "logxpy_otel.LogxpyLoggingHandler",
                    "processor": "ext://helper_logging_telemetry.processor",
                    "logger_provider": "ext://helper_logging_telemetry.provider",
                }
            },
            "loggers": {name: {"handlers": ["shared"], "level": "INFO", "propagate": False}},
        }
    )
    logger = logging.getLogger(name)
    (handler,) = logger.handlers
    assert isinstance(handler, LogxpyLoggingHandler) and handler.processor is telemetry.processor
    logger.warning("through the shared processor")
    logger.handlers[:] = []
    handler.close()  # not its processor: still running
    assert telemetry.processor.writer.is_running
    telemetry.processor.shutdown()
    (line,) = parse_lines(path.read_bytes())
    assert line["msg"] == "through the shared processor"
    assert line["_otel"]["resource"]["attributes"]["service.name"] == "logging-handler-test"


def test_queue_handler_and_listener() -> None:
    """``QueueHandler`` -> ``QueueListener`` -> both handlers: the same lines (the listener's
    thread has no current span, for the OTel handler as for ours)."""
    with pair(name="queued") as p:
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        listener = logging.handlers.QueueListener(records, p.otel, p.handler, respect_handler_level=True)
        p.logger.handlers[:] = [logging.handlers.QueueHandler(records)]
        listener.start()
        try:
            p.logger.info("queued %s", 1, extra={"request.id": "r-1"})
            try:
                raise ValueError("x")
            except ValueError:
                p.logger.exception("queued failure")
        finally:
            listener.stop()
        first, second = _assert_same(p, 2)
    assert (first["msg"], first["request.id"]) == ("queued 1", "r-1")
    assert second["msg"].startswith("queued failure\nTraceback") and second["mt"] == "error"


@pytest.mark.parametrize("style", ["render_to_log_kwargs", "ProcessorFormatter"])
def test_structlog_through_the_stdlib(style: str) -> None:
    """structlog's stdlib integration: its key-value pairs as attributes
    (``render_to_log_kwargs``), or its rendering as the body (``ProcessorFormatter``)."""
    structlog = pytest.importorskip("structlog")
    formatter = None
    if style == "ProcessorFormatter":
        formatter = structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(sort_keys=True)
        )
        last = structlog.stdlib.ProcessorFormatter.wrap_for_formatter
    else:
        last = structlog.stdlib.render_to_log_kwargs
    with pair(name=f"structlog_{style}", formatter=formatter) as p:
        structlog.configure(
            processors=[structlog.stdlib.filter_by_level, structlog.stdlib.add_log_level, last],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=False,
        )
        try:
            log = structlog.get_logger(p.logger.name).bind(request_id="r-1")
            with TRACER.start_as_current_span("s"):
                log.info("user signed in", user_id=42)
            log.warning("slow", ms=350)
        finally:
            structlog.reset_defaults()
        lines = [line for line in _assert_same(p) if "at" not in line]
    assert [line["mt"] for line in lines] == ["info", "warning"]
    if style == "render_to_log_kwargs":
        assert [(line["msg"], line["request_id"]) for line in lines] == [
            ("user signed in", "r-1"),
            ("slow", "r-1"),
        ]
        assert (lines[0]["user_id"], lines[1]["ms"]) == (42, 350)
    else:
        assert orjson.loads(lines[0]["msg"]) == {
            "event": "user signed in",
            "level": "info",
            "request_id": "r-1",
            "user_id": 42,
        }


def test_the_global_provider_is_taken_once_it_is_set(tmp_path: Path) -> None:
    """A handler made before the SDK is set up (a logging configuration read first) takes
    the global provider's resource from the first record after it is set; until then the
    resource is ``Resource.create({})``. In a child process: the global provider is set once."""
    path = tmp_path / "late.jsonl"
    code = textwrap.dedent(
        f"""
        import logging
        from opentelemetry._logs import set_logger_provider
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk.resources import Resource
        from logxpy_otel import LogxpyLoggingHandler

        handler = LogxpyLoggingHandler({str(path)!r})
        assert handler.logger_provider is None
        log = logging.getLogger("late")
        log.addHandler(handler)
        log.warning("before")
        resource = Resource.create({{"service.name": "late"}})
        provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        set_logger_provider(provider)
        log.warning("after")
        assert handler.logger_provider is provider
        handler.close()
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOGXPY_"))}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60, capture_output=True)
    before, after = parse_lines(path.read_bytes())
    assert before["msg"] == "before" and after["msg"] == "after"
    assert before["_otel"]["resource"]["attributes"]["service.name"].startswith("unknown_service")
    assert after["_otel"]["resource"]["attributes"]["service.name"] == "late"


# -- each path with its own record (a handler that changes the record cannot hide a difference) --

_apart_names = iter(range(1_000_000))


def _normalised_apart(data: bytes) -> list[dict[str, Any]]:
    """Lines without what differs between the records of two calls: times, task ids."""
    out = []
    for line in parse_lines(data):
        otel = line.get("_otel", {})
        for key in ("observed_time_unix_nano", "time_unix_nano"):
            otel.pop(key, None)
        line.pop("ts", None)
        line.pop("tid", None)
        out.append(line)
    return out


def apart(
    kind: str, call: Any, *, formatter: type[logging.Formatter] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``call(logger)`` once through the OTel path and once through ours (the ``kind`` fast
    path), each on a logger of its own, so that each handles a record of its own: their
    lines and ours."""
    name = f"test_logging_handler.apart{next(_apart_names)}"
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    theirs_out, ours_out = Collect(), Collect()
    theirs = LogxpyLogRecordProcessor(destinations=[theirs_out])
    provider.add_log_record_processor(theirs)
    ours = LogxpyLogRecordProcessor(destinations=[ours_out])
    with fast_path(kind):
        handler = ours.logging_handler(logger_provider=provider)
    assert _fast_path_of(handler) == kind
    otel = OTelHandler(logger_provider=provider)
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(1)
    try:
        for h in (otel, handler):
            if formatter is not None:
                h.setFormatter(formatter())
            logger.handlers[:] = [h]
            call(logger)
    finally:
        logger.handlers[:] = []
        provider.shutdown()
        ours.shutdown()
    return _normalised_apart(theirs_out.data), _normalised_apart(ours_out.data)


class _HostFormatter(logging.Formatter):
    """Adds a field to the record while formatting, as "context" formatters do."""

    def format(self, record: logging.LogRecord) -> str:
        record.hostname = "web-1"
        return super().format(record)


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_a_field_the_formatter_adds_is_an_attribute_as_on_the_otel_path(kind: str) -> None:
    """The OTel handler formats first, then reads the record's fields."""
    theirs, ours = apart(kind, lambda log: log.warning("hi %s", "x"), formatter=_HostFormatter)
    assert theirs[0]["hostname"] == "web-1"
    assert ours == theirs


@pytest.mark.parametrize("kind", FAST_PATHS)
@pytest.mark.parametrize("level", [2**63, 10**30])
def test_a_level_beyond_64_bits_maps_as_on_the_otel_path(kind: str, level: int) -> None:
    """Above 53: FATAL4 (the C path read an overflow as a level below 0: unspecified)."""
    theirs, ours = apart(kind, lambda log: log.log(level, "beyond"))
    assert theirs[0]["_otel"]["severity_number"] == 24
    assert ours == theirs


class _FailsFirstTime:
    """Its ``__str__`` raises on the first call only (a lazy value whose first load fails)."""

    def __init__(self) -> None:
        self.calls = 0

    def __str__(self) -> str:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("not loaded")
        return "loaded"


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_a_message_that_fails_to_build_is_a_format_error_and_built_once(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Counted as ``format_error`` and reported by logging's ``handleError`` (on stderr), with
    the exception that failed; the message is not built a second time (the C path used to,
    and wrote the record when the second try worked)."""
    value = _FailsFirstTime()
    out = Collect()
    processor = LogxpyLogRecordProcessor(destinations=[out])
    with fast_path(kind):
        handler = processor.logging_handler(resource=RESOURCE)
    assert _fast_path_of(handler) == kind
    capsys.readouterr()
    logger = logging.getLogger(f"test_logging_handler.flaky_{kind}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    try:
        logger.warning("value %s", value)
    finally:
        logger.handlers[:] = []
        processor.shutdown()
    assert out.records() == []
    assert dict(processor.metrics.dropped_by_reason) == {FORMAT_ERROR: 1}
    assert value.calls == 1
    report = capsys.readouterr().err
    assert report.count("--- Logging error ---") == 1 and "RuntimeError: not loaded" in report


# -- session 28: a hostile review of the handler's set-up -----------------------------------------


@pytest.mark.parametrize(
    ("given", "on"), [("false", False), ("no", False), ("TRUE", True), ("1", True), (1, True), (0, False)]
)
def test_log_code_attributes_from_a_configuration_file_is_read_as_a_setting(
    tmp_path: Path, given: object, on: bool
) -> None:
    """``log_code_attributes: "false"`` (JSON, YAML, templated configuration) went through
    ``bool()``: "false" turned the code attributes on (file paths and function names in
    every line, unasked). It reads as the other true/false settings do, and 0 or 1 (a
    YAML file's) as before."""
    handler = LogxpyLoggingHandler(tmp_path / "app.jsonl", log_code_attributes=given)
    try:
        assert handler.log_code_attributes is on
    finally:
        handler.close()


def test_a_bad_log_code_attributes_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="log_code_attributes must be true or false; got 'maybe'"):
        LogxpyLoggingHandler(tmp_path / "app.jsonl", log_code_attributes="maybe")
    assert not (tmp_path / "app.jsonl").exists()  # (refused before anything is opened)


def test_a_bad_level_opens_no_file_and_starts_no_thread(tmp_path: Path) -> None:
    """``level="NOPE"`` was refused by ``logging.Handler`` after the handler had built its
    processor: each attempt left the file, two descriptors and a writer thread (20 tries,
    20 threads). The level is looked at first."""
    threads = threading.active_count()
    for _ in range(3):
        with pytest.raises(ValueError, match="NOPE"):
            LogxpyLoggingHandler(tmp_path / "app.jsonl", level="NOPE")
    assert not (tmp_path / "app.jsonl").exists()
    assert threading.active_count() == threads


_REAL_GET_MESSAGE = logging.LogRecord.getMessage


def _redacting(self: logging.LogRecord) -> str:
    return _REAL_GET_MESSAGE(self).replace("secret", "******")


@functools.wraps(_REAL_GET_MESSAGE)
def _wrapped(self: logging.LogRecord) -> str:
    return _REAL_GET_MESSAGE(self).replace("secret", "******")


def _brace(self: logging.LogRecord) -> str:
    msg = str(self.msg)
    if not self.args:
        return msg
    try:
        return msg % self.args
    except TypeError:
        return msg.format(*self.args)


_SHIMS: dict[str, Any] = {"redacting": _redacting, "wrapped": _wrapped, "brace": _brace}


@pytest.mark.parametrize("kind", FAST_PATHS)
@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("shim", list(_SHIMS))
def test_a_get_message_put_in_place_by_the_application_is_the_one_called(
    monkeypatch: pytest.MonkeyPatch, kind: str, when: str, shim: str
) -> None:
    """An application's or library's own ``LogRecord.getMessage`` (a redaction shim, one made
    with ``functools.wraps``, a brace-style one), put in place before the handler is made
    or after it: our lines are the OTel path's, which calls it (hostile review, session 30:
    the C path built the message as logging's own does, and so wrote the secret the shim
    hides, and dropped the brace-style record as a format error)."""
    if when == "before":
        monkeypatch.setattr(logging.LogRecord, "getMessage", _SHIMS[shim])
    with fast_path(kind), pair(name=f"get_message_{kind}_{when}_{shim}") as p:
        assert _fast_path_of(p.handler) == kind
        if when == "after":
            monkeypatch.setattr(logging.LogRecord, "getMessage", _SHIMS[shim])
        p.logger.info("password=%s", "secret", extra={"user.name": "alice"})
        if shim == "brace":  # (with the others, a format error: the OTel handler raises it)
            p.logger.info("user {} signed in", "ann")  # noqa: PLE1205 - brace style, as the shim takes it
        theirs, ours = p.lines()
    assert ours == theirs
    messages = [line["msg"] for line in ours]
    if shim == "brace":
        assert messages == ["password=secret", "user ann signed in"], "the brace-style record is kept"
    else:
        assert messages == ["password=******"], "the secret hidden"


@pytest.mark.parametrize("kind", FAST_PATHS)
@pytest.mark.parametrize("field_taken_out", [False, True])
def test_a_get_message_of_the_record_s_own_is_the_one_called(kind: str, field_taken_out: bool) -> None:
    """A filter or factory that gives a record a ``getMessage`` of its own (and, with
    ``field_taken_out``, takes a field out of it, so its dict is no larger than ``__init__``
    made it): our line is the OTel path's, which calls it."""

    def own_message(record: logging.LogRecord) -> bool:
        if field_taken_out:
            del record.__dict__["processName"]
        record.getMessage = lambda: "from the record"  # type: ignore[method-assign]
        return True

    with fast_path(kind), pair(name=f"own_get_message_{kind}_{field_taken_out}") as p:
        p.logger.addFilter(own_message)
        p.logger.info("password=%s", "secret")
        theirs, ours = p.lines()
    assert ours == theirs
    assert [line["msg"] for line in ours] == ["from the record"]


@needs_c
def test_the_c_path_takes_records_again_once_logging_s_own_get_message_is_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The C path looks at the class again whenever it changes: with a shim in place the
    records go the general way; with logging's own back, the C path writes them itself."""
    with pair(name="get_message_back") as p:
        fast = _c_fast(p.handler)
        scope = p.handler._current_state().scope(p.logger.name)[0]
        record = logging.LogRecord(p.logger.name, logging.INFO, __file__, 1, "x=%s", (1,), None)
        assert fast.encode(record, scope, RESOURCE, 1) is not None
        monkeypatch.setattr(logging.LogRecord, "getMessage", _redacting)
        assert fast.encode(record, scope, RESOURCE, 1) is None
        monkeypatch.undo()
        assert fast.encode(record, scope, RESOURCE, 1) is not None


def _redact(text: str) -> str:
    return text.replace("secret", "******")


class _ClassSeesLoggingS:
    """A descriptor that shows the class logging's own getMessage and each record a shim."""

    def __get__(self, record: logging.LogRecord | None, owner: type | None = None) -> Any:
        if record is None:
            return _REAL_GET_MESSAGE
        return lambda: _redact(_REAL_GET_MESSAGE(record))


def _self_contained_redacting(self: logging.LogRecord) -> str:
    """A shim whose code needs no global (it runs with logging's, once swapped in)."""
    msg = str(self.msg)
    if self.args:
        msg = msg % self.args
    return msg.replace("secret", "******")


def _code_swapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_REAL_GET_MESSAGE, "__code__", _self_contained_redacting.__code__)


def _getattribute_shim(monkeypatch: pytest.MonkeyPatch) -> None:
    def getattribute(record: logging.LogRecord, name: str) -> Any:
        if name == "getMessage":
            return lambda: _redact(_REAL_GET_MESSAGE(record))
        return object.__getattribute__(record, name)

    monkeypatch.setattr(logging.LogRecord, "__getattribute__", getattribute, raising=False)


def _args_property(monkeypatch: pytest.MonkeyPatch) -> None:
    def get(record: logging.LogRecord) -> Any:
        args = record.__dict__["args"]
        if not isinstance(args, tuple):
            return args
        return tuple(_redact(a) if isinstance(a, str) else a for a in args)

    def set_(record: logging.LogRecord, value: Any) -> None:
        record.__dict__["args"] = value

    monkeypatch.setattr(logging.LogRecord, "args", property(get, set_), raising=False)


def _levelname_property(monkeypatch: pytest.MonkeyPatch) -> None:
    def set_(record: logging.LogRecord, value: Any) -> None:
        record.__dict__["levelname"] = value

    notice = property(lambda record: "NOTICE", set_)
    monkeypatch.setattr(logging.LogRecord, "levelname", notice, raising=False)


_CLASS_CHANGES: dict[str, Any] = {
    "a descriptor showing the class logging's own": lambda mp: mp.setattr(
        logging.LogRecord, "getMessage", _ClassSeesLoggingS()
    ),
    "logging's own function with new code": _code_swapped,
    "a __getattribute__ of the class's own": _getattribute_shim,
    "a property over args": _args_property,
    "a property over levelname": _levelname_property,
}


@pytest.mark.parametrize("kind", FAST_PATHS)
@pytest.mark.parametrize("change", list(_CLASS_CHANGES))
def test_what_the_class_answers_is_what_both_paths_write(
    monkeypatch: pytest.MonkeyPatch, kind: str, change: str
) -> None:
    """Ways to change what a record answers on ``logging.LogRecord`` itself, after the
    handler is made, that the C path once did not see (hostile review, session 30): the
    C path builds a record's message from its dict only while the class answers as
    logging's own does; else the general way asks the record, as the OTel handler does."""
    with fast_path(kind), pair(name=f"class_change_{kind}_{change.replace(' ', '_')}") as p:
        assert _fast_path_of(p.handler) == kind
        _CLASS_CHANGES[change](monkeypatch)
        p.logger.info("password=%s", "secret")
        theirs, ours = p.lines()
    assert ours == theirs and len(ours) == 1


def test_a_get_message_defined_in_a_package_named_logging_is_not_logging_s_own(tmp_path: Path) -> None:
    """A shim in an application's own ``logging`` package (``myapp/logging/__init__.py``) is
    not taken for logging's own: the C path takes no record while it is in place."""
    package = tmp_path / "myapp" / "logging"
    package.mkdir(parents=True)
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (package / "__init__.py").write_text(
        "import logging\n_real = logging.LogRecord.getMessage\n"
        "def getMessage(self):\n    return _real(self).replace('secret', '******')\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import myapp.logging as shims  # type: ignore[import-not-found]

        saved = logging.LogRecord.getMessage
        logging.LogRecord.getMessage = shims.getMessage  # type: ignore[method-assign]
        try:
            assert handler_module._logging_get_message() is None
        finally:
            logging.LogRecord.getMessage = saved  # type: ignore[method-assign]
        assert handler_module._logging_get_message() is saved
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("myapp.logging", "myapp"):
            sys.modules.pop(name, None)


# -- hostile review, session 33 ---------------------------------------------------------------


@pytest.mark.parametrize("formatter", [False, True], ids=["fast path", "emit"])
def test_an_interrupt_anywhere_in_a_logging_call_leaves_the_handler_working(
    tmp_path: Path, formatter: bool
) -> None:
    """An alarm that landed right after the recursion guard was set, before the ``try``
    that resets it, left it set for the thread: every later record of that thread was
    dropped as ``recursive_logging`` (100 of 100 in a hostile review). It is now set inside
    the ``try``. Here the interrupt lands at every place in turn."""
    processor = LogxpyLogRecordProcessor(tmp_path / "guard.jsonl")
    handler = processor.logging_handler()
    if formatter:
        handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger(f"guard.{formatter}")
    log.propagate, log.level = False, logging.INFO
    log.addHandler(handler)
    try:
        for n in range(10_000):  # bounded: the places one call passes
            interrupted = interrupt_at(n, handler_module.__file__, lambda: log.info("one %s", n))
            assert not handler_module._EMITTING.get(), f"the guard stayed set (place {n})"
            if not interrupted:
                assert n > 2, "the interrupt must be able to land"
                break
        else:
            raise AssertionError("the call never ended")
        before = processor.metrics.dropped_by_reason.get(RECURSIVE_LOGGING, 0)
        log.info("after")
        assert processor.force_flush(10_000)
        assert processor.metrics.dropped_by_reason.get(RECURSIVE_LOGGING, 0) == before
    finally:
        log.removeHandler(handler)
        processor.shutdown()


class _AlarmTimeout(Exception):
    """What an application's alarm handler raises."""


@pytest.mark.parametrize("kind", FAST_PATHS)
@pytest.mark.parametrize("path", ["fast", "with a formatter"])
def test_the_application_s_alarm_while_an_argument_is_formatted_reaches_it(kind: str, path: str) -> None:
    """A review of session 34's kind: the application's alarm landing in an argument's
    ``__str__`` while the message was built was counted as a ``format_error`` (and
    reported by ``handleError``), and its request ran past its timeout. It goes up now;
    an argument whose ``__str__`` fails of itself is still a ``format_error``."""
    import os
    import signal

    out, processor, handler, logger = _alone_on_a_logger(
        kind, f"alarm_in_str_{kind}_{path.replace(' ', '_')}"
    )
    if path == "with a formatter":
        handler.setFormatter(logging.Formatter("%(message)s"))

    class Slow:
        def __str__(self) -> str:
            os.kill(os.getpid(), signal.SIGALRM)
            for _ in range(1000):  # (bounded: the alarm's handler runs at once, here)
                pass
            return "slow"

    class Broken:
        def __str__(self) -> str:
            raise ValueError("broken of itself")

    def on_alarm(signum: int, frame: Any) -> None:
        raise _AlarmTimeout

    old = signal.signal(signal.SIGALRM, on_alarm)
    saved_raise = logging.raiseExceptions
    logging.raiseExceptions = False  # (handleError's report of the broken one: not on stderr)
    try:
        with pytest.raises(_AlarmTimeout):
            logger.info("value %s", Slow())
        logger.info("value %s", Broken())
    finally:
        logging.raiseExceptions = saved_raise
        signal.signal(signal.SIGALRM, old)
        logger.handlers[:] = []
        processor.shutdown()
    assert _dropped(handler) == {FORMAT_ERROR: 1}
    assert out.records() == []


@pytest.mark.parametrize("kind", FAST_PATHS)
def test_a_handle_error_that_raises_is_no_alarm(kind: str) -> None:
    """A review of the change above: the C path took any exception ``format_failed``
    raised again for the application's alarm; a ``handleError`` that raises the error it
    handles (pytest's capture handler does, under ``logging.raiseExceptions``) made a
    bad format raise out of the logging call on the C path only. Both paths agree now, and
    the record is counted once (it was counted twice on both, also as ``internal_error``)."""

    class Loud(LogxpyLoggingHandler):
        def handleError(self, record: logging.LogRecord) -> None:
            raise  # noqa: PLE0704 - (re-raises the error being handled, as pytest's does)

    _, processor, handler, logger = _alone_on_a_logger(kind, f"loud_{kind}", Loud)
    try:
        logger.info("%d items", "x")  # (a bad format: never out of the call)
    finally:
        logger.handlers[:] = []
        processor.shutdown()
    assert _dropped(handler) == {FORMAT_ERROR: 1}, (
        "counted once (it was counted twice, also as internal_error)"
    )
