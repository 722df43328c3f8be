"""``LogxpyLoggingHandler``: Python's ``logging`` straight into a logxpy writer.

The OpenTelemetry way from ``logging`` to a file is: the OTel ``LoggingHandler`` builds
an API ``LogRecord``, looks up an OTel logger per record, and the SDK's ``Logger.emit``
wraps the attributes (limits, a lock) before any processor sees the record. This
handler writes the same line for the same call, field for field (except the observed
time), without those steps: it turns a ``logging.LogRecord`` into the line with the
processor's encoder and hands it to the processor's writer thread (same file, same
numbering, same queue policy).

What a record becomes is what ``opentelemetry-instrumentation-logging``'s
``LoggingHandler`` (0.66b2) and the SDK's ``Logger.emit`` make of it:

* severity number from the level as the OTel handler maps it (below 10: 0, above 53:
  FATAL4), severity text the level name, ``WARNING`` -> ``WARN``, ``CRITICAL`` -> ``FATAL``;
* body: ``record.getMessage()``, or the handler's formatter when it has one;
* attributes: what ``extra`` (or anything else) added to the record, minus the standard
  ``LogRecord`` fields; ``exception.type``/``message``/``stacktrace`` from ``exc_info``;
  ``code.file.path``/``code.function.name``/``code.line.number`` when asked
  (``log_code_attributes``, default ``OTEL_PYTHON_LOG_CODE_ATTRIBUTES``);
  ``otel.event.name`` (else the deprecated ``event.name``) becomes the event name;
* trace id, span id and flags of the current span; timestamp ``record.created``;
* scope: the logger's name (version ``""``, as ``get_logger`` asks for it); resource and
  attribute limits of the SDK ``LoggerProvider`` (``logger_provider``, default the global
  one), or ``resource`` when given. Values the SDK would clean (a list, an object) or
  limit (``OTEL_ATTRIBUTE_COUNT_LIMIT``, ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` and their
  ``LOGRECORD`` forms) go through the SDK's own ``BoundedAttributes``, so they come out
  as the SDK writes them, with ``dropped_attributes_count``; plain values do not need it.

It never raises into the application: a record whose message cannot be built (a bad
``%`` format) is counted as dropped (``format_error``) and reported the ``logging`` way
(``handleError``), the message built once; a fault of our own is counted as
``internal_error``. (A filter the application adds to this handler is the application's
code: what it raises goes up, as with any ``logging`` handler.) Records of the
``logxpy_otel`` logger are counted as ``own_diagnostics`` and never written (no feedback
loop); a record logged while this handler works on another one in the same thread
(an OTel attribute warning) is skipped as the OTel handler skips it, counted as
``recursive_logging``.

Speed: the common record (no filter, formatter, exception or event name; plain
``extra`` values no limit bites on) takes a fast path, in C
(``_logging_speedups.Fast``, where built, with the C encoder) or else in one Python
frame; everything else takes the general Python path below, the reference. The C fast
path writes the line itself, straight from the ``logging.LogRecord`` (no API record is
built), byte for byte as the processor's encoder writes it; it checks that once per
handler on a probe record (:func:`_probe`), and where the two disagree (the writer's
item or the line format changed) it hands every record to the encoder instead. The tests
run the OTel path against each of them, and the C path's bytes against the encoder's.

What it does not do (the OTel path does): the SDK's own self-metrics
(``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``: ``otel.sdk.log.created``) count no record
that goes this way, and other processors on the provider never see these records: give
the stock handler to a set-up whose records must reach other exporters.
"""

from __future__ import annotations

import importlib
import logging
import operator
import os
import sys
import traceback
import warnings
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from operator import itemgetter
from time import time_ns
from types import FunctionType, NoneType
from typing import TYPE_CHECKING, Any, Final

import orjson
from opentelemetry._logs import LogRecord as _APILogRecord
from opentelemetry._logs import NoOpLogger, SeverityNumber, get_logger_provider
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import attach, detach, get_current
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordDroppedAttributesWarning,
    LogRecordLimits,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    Span,
    SpanContext,
    TraceFlags,
    get_current_span,
    set_span_in_context,
)

from . import _settings
from ._diagnostics import (
    NOTED_INTERRUPTS,
    RateLimitedReporter,
    is_application_error,
    is_own_scope,
    noted_aside,
    raise_if_application_error,
    settle_noted,
)
from ._format import RESERVED_KEYS, LineMode, severity_bucket
from ._native import speedup
from ._writer import DropReason
from .processor import c_emit, lane_enqueue

if TYPE_CHECKING:
    from .processor import LogxpyLogRecordProcessor

__all__ = ["FORMAT_ERROR", "RECURSIVE_LOGGING", "LogxpyLoggingHandler"]

#: The C ``on_emit`` of the processor (``_speedups.Emitter``), where built: encode, then
#: queue through the writer's lane.
_Emitter = speedup("Emitter")


def _load_fast() -> Any:
    """``_logging_speedups.Fast`` (the fast path of ``handle`` in C), or None where it was not
    built, or the C encoder is not in use (``LOGXPY_OTEL_PURE_PYTHON=1``). Its recursion
    guard is the Python paths' own (``_EMITTING``)."""
    if _Emitter is None:
        return None
    try:
        from . import _logging_speedups
    except ImportError:
        return None
    return _logging_speedups.Fast


_Fast = _load_fast()

#: Drop reason: the record's message could not be built (``getMessage()`` or the
#: formatter raised). The OTel handler raises such errors into the application.
FORMAT_ERROR: Final = DropReason.FORMAT_ERROR.value
#: Drop reason: a record logged from inside this handler's own work in the same thread
#: (such as the SDK's warning that an attribute value was truncated). The OTel handler
#: skips these too (it would otherwise recurse).
RECURSIVE_LOGGING: Final = DropReason.RECURSIVE_LOGGING.value

#: ``Handler.filter`` as the stdlib has it: a subclass with its own is asked about every
#: record (the stdlib's ``handle`` always asks; ours skips it only when it has no filters).
_STDLIB_FILTER: Final = logging.Handler.filter

#: The standard ``LogRecord`` fields: never attributes (the OTel handlers' ``_RESERVED_ATTRS``).
_RESERVED_ATTRS: Final = frozenset(
    (
        "asctime",
        "args",
        "created",
        "exc_info",
        "exc_text",
        "filename",
        "funcName",
        "getMessage",
        "message",
        "levelname",
        "levelno",
        "lineno",
        "module",
        "msecs",
        "msg",
        "name",
        "pathname",
        "process",
        "processName",
        "relativeCreated",
        "stack_info",
        "thread",
        "threadName",
        "taskName",
    )
)

#: The fields ``logging.LogRecord.__init__`` sets, in its order. A record whose instance
#: dict starts with exactly them, in that order, has its other attributes after them:
#: only those are looked at. Anything else (fields deleted, moved or set again by a
#: filter or a record factory) takes the full pass.
_INIT_KEYS: Final = tuple(vars(logging.LogRecord("n", 0, "p", 0, "m", None, None)))
_N_INIT: Final = len(_INIT_KEYS) if _RESERVED_ATTRS.issuperset(_INIT_KEYS) else 0
_LAST_INIT: Final = _INIT_KEYS[-1] if _N_INIT else ""

#: Attribute value types the SDK's cleaning leaves as they are (without a length limit):
#: a record whose values are all of these needs no ``BoundedAttributes``.
_PLAIN_VALUES: Final = frozenset((str, int, float, bool, NoneType))
_STR_KEYS: Final = frozenset((str,))
_SDK_BODY_TYPES: Final = (NoneType, bool, bytes, int, float, str, Sequence, Mapping)

_OTEL_EVENT_NAME: Final = "otel.event.name"
_EVENT_NAME: Final = "event.name"  # deprecated; the fallback
_CODE_FILE_PATH: Final = "code.file.path"
_CODE_FUNCTION_NAME: Final = "code.function.name"
_CODE_LINE_NUMBER: Final = "code.line.number"
_EXCEPTION_TYPE: Final = "exception.type"
_EXCEPTION_MESSAGE: Final = "exception.message"
_EXCEPTION_STACKTRACE: Final = "exception.stacktrace"


def _plain_arg(value: Any) -> bool:
    """A value %-formatting writes without running Python code (an exact str, int, float,
    bool or None), or an exact list, tuple or dict (of str keys) of such values."""
    kind = type(value)
    if kind in _PLAIN_VALUES:
        return True
    if kind is list or kind is tuple:
        return _PLAIN_VALUES.issuperset(map(type, value))
    if kind is dict:
        return _STR_KEYS.issuperset(map(type, value)) and _PLAIN_VALUES.issuperset(map(type, value.values()))
    return False


def _plain_args(args: Any) -> bool:
    """Whether a record's ``args`` are ones getMessage() formats without running Python
    code (None, a tuple or a dict of str keys of :func:`_plain_arg` values): then the
    record cannot change while its message is built, and what the fast paths read before
    is what the OTel handler reads after it (as the C path's ``plain_args``)."""
    if args is None:
        return True
    kind = type(args)
    if kind is tuple:
        return all(map(_plain_arg, args))
    if kind is dict:
        return _STR_KEYS.issuperset(map(type, args)) and all(map(_plain_arg, args.values()))
    return False


#: The OTel handlers' severity text for Python's level names that OTel spells otherwise.
_SEVERITY_TEXT: Final = {"WARNING": "WARN", "CRITICAL": "FATAL"}


def _severity(levelno: int) -> SeverityNumber:
    """The OTel handler's ``std_to_otel``: 10-19 DEBUG..DEBUG4, 20-29 INFO.., ... 50-53
    FATAL..FATAL4; below 10 UNSPECIFIED, above 53 FATAL4."""
    if levelno < 10:
        return SeverityNumber.UNSPECIFIED
    if levelno > 53:
        return SeverityNumber.FATAL4
    base, step = divmod(levelno, 10)
    return SeverityNumber(base * 4 + 1 + min(step, 3))


#: ``levelno -> SeverityNumber`` for the levels there are; others go through _severity.
_SEVERITY_BY_LEVEL: Final = {level: _severity(level) for level in range(0, 61)}

#: The SDK's ``LoggingHandler`` (deprecated; installed by
#: ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true``) gives a record another
#: meaning than the instrumentation's handler; zero-code set-up replaces either (see
#: :mod:`logxpy_otel._zero_code`) with a handler of the same meaning.
FLAVOUR_INSTRUMENTATION: Final = "instrumentation"
FLAVOUR_SDK: Final = "sdk"

_CACHE_LIMIT: Final = 4096
_new = object.__new__
_tuple_new = tuple.__new__

#: The API module holding the global logger provider (``_LOGGER_PROVIDER``, private; None
#: until set): a handler not bound to an SDK provider yet looks there, per record, for one
#: to bind to (``get_logger_provider()`` reads the environment each time until then).
_logs_api: Any = importlib.import_module("opentelemetry._logs._internal")
_GLOBAL_PROVIDER: Final = "_LOGGER_PROVIDER"

try:  # the key the API keeps the current span under: private, so looked up with care
    from opentelemetry.trace.propagation import _SPAN_KEY as _span_key

    _SPAN_KEY: str | None = _span_key if isinstance(_span_key, str) else None
except ImportError:  # pragma: no cover - another opentelemetry-api
    _SPAN_KEY = None


def _context_var() -> ContextVar[Any] | None:
    """The ContextVar behind ``opentelemetry.context.get_current()`` (private: the default
    runtime context's ``_current_context``), or None under another runtime context."""
    try:
        from opentelemetry import context as api_context
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
    except ImportError:  # pragma: no cover - another opentelemetry-api
        return None
    runtime = getattr(api_context, "_RUNTIME_CONTEXT", None)
    if type(runtime) is not ContextVarsRuntimeContext:
        return None
    var = getattr(runtime, "_current_context", None)
    return var if isinstance(var, ContextVar) else None


def _tuple_context() -> bool:
    """Whether a ``SpanContext`` is a tuple with trace id, span id and flags at 0, 1 and 3
    (what its properties read): the C fast path then reads them there."""
    context = SpanContext(0x1234, 0x56, is_remote=False, trace_flags=TraceFlags(1))
    return (
        isinstance(context, tuple)
        and len(context) >= 4
        and (context[0], context[1], context[3]) == (context.trace_id, context.span_id, context.trace_flags)
        and (context[0], context[1]) == (0x1234, 0x56)
        and type(INVALID_SPAN_CONTEXT) is SpanContext
    )


def _span_kind(span_type: type) -> int:
    """How the C fast path gets the context of a span of ``span_type``: 0 it is not a
    ``Span`` (the invalid context, as ``get_current_span()`` gives), 2 its
    ``get_span_context`` is one known to return just ``self._context`` (the API's
    ``NonRecordingSpan``, the SDK's spans: read there, without a Python call), else 1
    (the method is called)."""
    if not issubclass(span_type, Span):
        return 0
    getter = getattr(span_type, "get_span_context", None)
    known: list[Any] = [NonRecordingSpan.get_span_context]
    sdk_trace = sys.modules.get("opentelemetry.sdk.trace")  # not imported: no span of its kind yet
    if sdk_trace is not None:
        known += [getattr(sdk_trace, name).get_span_context for name in ("Span", "ReadableSpan")]
    return 2 if any(getter is function for function in known) else 1


#: ``levelno -> (severity number, mt)`` as the encoder writes them, for levels 0..60 (the C
#: fast path takes 0 below, 60 above, as the OTel handler maps them).
_LEVEL_FIELDS: Final = [
    (int(_SEVERITY_BY_LEVEL[level].value), severity_bucket(_SEVERITY_BY_LEVEL[level].value))
    for level in range(61)
]

#: A record whose line gives the encoder's shared end (its tail) for a scope and resource.
_TAIL_PROBE: Final = _APILogRecord(timestamp=0, observed_timestamp=0, body="")


def _probe(fast: Any, encode: Any, code: bool) -> bool:
    """Whether ``fast`` (``_logging_speedups.Fast``) writes, for a record in a span, the very
    item the processor's encoder (``encode``) makes of the API ``LogRecord`` the OTel
    handler would build for it: the writer's item format and the line's bytes. The C code
    writes lines as the encoder does; this finds out, once, that both still agree."""
    record = logging.LogRecord(
        "logxpy_otel.probe", logging.WARNING, __file__, 1, 'probe %s: %d %% é\u2028"', ("x\ty", -7), None
    )
    extras = {"a.str": "v\u0085", "an.int": 2**63, "a.float": 0.1, "a.bool": True, "a.none": None}
    # A dict of its own, not record.__dict__.update(extras): keys added to a LogRecord's
    # own dict go into the keys every LogRecord's dict shares, and five made-up ones there
    # made each application record with its own extras convert its dict (~0.15 us each).
    record.__dict__ = {**vars(record), **extras}
    scope = InstrumentationScope("logxpy_otel.probe", "")
    resource = Resource.get_empty()
    context = SpanContext(
        0x0123456789ABCDEF0123456789ABCDEF, 0x00F0E1D2C3B4A596, is_remote=False, trace_flags=TraceFlags(1)
    )
    observed = time_ns()
    token = attach(set_span_in_context(NonRecordingSpan(context)))
    try:
        ours = fast.encode(record, scope, resource, observed)
    finally:
        detach(token)
    line_record = _new(_APILogRecord)
    line_record.__dict__.update(
        timestamp=int(record.created * 1e9),
        observed_timestamp=observed,
        trace_id=context.trace_id,
        span_id=context.span_id,
        trace_flags=context.trace_flags,
        severity_text="WARN",
        severity_number=SeverityNumber.WARN,
        body=record.getMessage(),
        attributes=_attributes(record, code)[0],
        event_name=None,
    )
    theirs = encode(line_record, resource, scope)
    return type(ours) is tuple and ours == theirs


class _RW(tuple[Any, Any, Any]):
    """What the C ``on_emit`` (``_speedups.Emitter``) reads of the SDK's ``ReadWriteLogRecord``:
    ``(log_record, resource, instrumentation_scope)``, with no Python code per field."""

    __slots__ = ()
    log_record = property(itemgetter(0))
    resource = property(itemgetter(1))
    instrumentation_scope = property(itemgetter(2))


#: The API LogRecord's instance dict keys, in the order its __init__ sets them.
_RECORD_FIELDS: Final = tuple(vars(_APILogRecord(timestamp=0, observed_timestamp=0)))
_CONTEXT_VAR: Final = _context_var()
_TUPLE_CONTEXT: Final = _tuple_context()

#: One OTel logger as the handler sees it: ``(scope, live, resource, own, disabled)``.
#: ``live`` is the SDK ``Logger`` whose settings are read per record (its logger
#: configurator's ``is_enabled``, its resource, which changes after a fork), or None;
#: then ``resource`` is the one to use. ``own``: our own diagnostics' logger.
_Entry = tuple[Any, Any, Any, bool, bool]


class _ProviderState:
    """What a handler takes from its SDK ``LoggerProvider``: resource and limits, and the
    OTel logger of each ``logging`` logger name (cached: no ``get_logger`` per record)."""

    __slots__ = ("max_count", "max_length", "provider", "resource", "scopes")

    def __init__(self, provider: LoggerProvider | None, resource: Resource | None) -> None:
        self.provider = provider
        limits = getattr(provider, _sdk_private_names.PROVIDER_LIMITS, None)
        if not isinstance(limits, LogRecordLimits):
            limits = LogRecordLimits()  # what the provider made of the environment
        self.max_count: int | None = limits.max_log_record_attributes
        self.max_length: int | None = limits.max_log_record_attribute_length
        if resource is None and provider is None:
            resource = Resource.create({})  # what a LoggerProvider() would have
        self.resource = resource
        self.scopes: dict[str, _Entry] = {}

    def scope(self, name: str) -> _Entry:
        """The entry for logger ``name``, made and cached."""
        provider = self.provider
        live: Any = None
        resource = self.resource
        disabled = False
        scope: Any
        if provider is None:
            scope = InstrumentationScope(name, "")
        else:
            # what the OTel handler's get_logger(record.name, logger_provider=...) asks for
            otel_logger: Any = provider.get_logger(name, "", None, None)
            if isinstance(otel_logger, NoOpLogger):  # OTEL_SDK_DISABLED
                scope, disabled = InstrumentationScope(name, ""), True
            else:
                scope = otel_logger.instrumentation_scope
                if _sdk_private_names.logger_shape_ok(otel_logger):
                    live = otel_logger
                elif resource is None:
                    resource = otel_logger.resource
        entry = (scope, live, resource, is_own_scope(scope), disabled)
        if len(self.scopes) >= _CACHE_LIMIT:
            self.scopes.clear()
        self.scopes[name] = entry
        return entry


class _SdkPrivateNames:
    """The SDK's private names this module reads (listed here, checked before use).

    ``LoggerProvider._log_record_limits``: the limits its loggers apply (the SDK has no
    public way to read them; without it, the environment's limits are used).
    ``Logger._logger_config.is_enabled`` and ``Logger._resource``: what ``Logger.emit``
    checks and attaches per record (the public ``resource`` property and ``_is_enabled()``
    cost a Python call each). A logger without them is taken as enabled, with its
    ``resource`` read once.
    """

    PROVIDER_LIMITS = "_log_record_limits"
    LOGGER_CONFIG = "_logger_config"
    LOGGER_RESOURCE = "_resource"

    @staticmethod
    def logger_shape_ok(otel_logger: object) -> bool:
        config = getattr(otel_logger, "_logger_config", None)
        return isinstance(getattr(config, "is_enabled", None), bool) and isinstance(
            getattr(otel_logger, "_resource", None), Resource
        )


_sdk_private_names = _SdkPrivateNames()


def _logging_get_message() -> object:
    """``logging.LogRecord.getMessage`` where it is logging's own, else None. The C fast path
    builds a record's message as that one does (``str(msg) % args``), so it takes records
    only while it is the one in place, with its own code: an application's or library's own
    (a redaction or brace-style shim, ``functools.wraps`` or not, wherever it is defined)
    sends every record the general way, which calls it, as the OTel handler does (the C code
    looks again whenever the class changes)."""
    func = vars(logging.LogRecord).get("getMessage")
    own = (
        type(func) is FunctionType
        and func.__globals__ is vars(logging)  # (defined in logging itself)
        and func.__qualname__ == "LogRecord.getMessage"
        and func.__code__.co_name == "getMessage"
        and not hasattr(func, "__wrapped__")
    )
    return func if own else None


class LogxpyLoggingHandler(logging.Handler):
    """A ``logging.Handler`` writing each record as the line the OTel ``LoggingHandler``
    path would write for it (docs/format.md), straight into a logxpy writer.

    Give either ``processor`` (a :class:`LogxpyLogRecordProcessor`: its file, writer thread
    and settings are shared; ``processor.logging_handler()`` does this) or ``path`` and
    processor ``options`` (``queue_policy="drop_oldest"``, ``max_bytes=...``), for a
    processor of its own, which :meth:`close` shuts down. Neither: a processor of its own
    on ``OTEL_EXPORTER_LOGXPY_FILE`` (else ``logxpy-otel.jsonl``).

    ``logger_provider`` (an SDK ``LoggerProvider``; default: the global one once it is set)
    gives the resource, the attribute limits and which loggers are enabled, as the OTel
    handler would get them; ``resource`` (a ``Resource``, or a mapping of attributes for
    ``Resource.create``) overrides the resource. With no SDK provider at all, the resource
    is ``Resource.create({})`` (the environment's service name).

    ``log_code_attributes`` as the OTel handler's option (None: the
    ``OTEL_PYTHON_LOG_CODE_ATTRIBUTES`` variable). A logging configuration can name the
    class and these arguments: ``{"class": "logxpy_otel.LogxpyLoggingHandler", "path":
    "logs/app.jsonl"}``, or ``"processor": "ext://myapp.telemetry.processor"``.

    Records are handled without the handler's lock unless a formatter is set (the encoder
    and the writer are thread-safe).
    """

    _fault_report = RateLimitedReporter(
        "logxpy-otel: %d logging record(s) dropped by an internal error; last: %s"
    )

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        level: int | str = logging.NOTSET,
        *,
        processor: LogxpyLogRecordProcessor | None = None,
        logger_provider: LoggerProvider | None = None,
        resource: Resource | Mapping[str, Any] | None = None,
        log_code_attributes: bool | None = None,
        **options: Any,
    ) -> None:
        from .processor import LogxpyLogRecordProcessor

        if processor is not None and (path is not None or options):
            raise TypeError("give either processor or path and options, not both")
        if processor is not None and not isinstance(processor, LogxpyLogRecordProcessor):
            raise TypeError(f"processor must be a LogxpyLogRecordProcessor; got {type(processor).__name__}")
        if logger_provider is not None and not isinstance(logger_provider, LoggerProvider):
            raise TypeError(
                f"logger_provider must be an SDK LoggerProvider; got {type(logger_provider).__name__}"
            )
        if isinstance(resource, Mapping):  # from a logging configuration file: the attributes
            resource = Resource.create(dict(resource))
        if resource is not None and not isinstance(resource, Resource):
            raise TypeError(
                f"resource must be an SDK Resource or a mapping of attributes; got {type(resource).__name__}"
            )
        if log_code_attributes is None:
            log_code_attributes = (
                os.environ.get("OTEL_PYTHON_LOG_CODE_ATTRIBUTES", "false").strip().lower() == "true"
            )
        else:  # (a configuration file gives "false" as a string: read as any true/false setting)
            log_code_attributes = _settings.parse_flag("log_code_attributes", log_code_attributes)
        # The level as logging.Handler will take it, before a file is opened or a thread started.
        logging._checkLevel(level)  # type: ignore[attr-defined]
        state = _ProviderState(logger_provider, resource) if logger_provider is not None else None
        owned = processor is None
        if processor is None:
            processor = LogxpyLogRecordProcessor(path, **options)
        super().__init__(level)
        self._processor = processor
        self._owns_processor = owned
        self._log_code_attributes = log_code_attributes
        self._flavour = FLAVOUR_INSTRUMENTATION
        self._resource_arg = resource
        self._writer = processor._writer
        self._encode = processor._encoder.encode
        # (the application's interrupt noted while it encodes is raised at our own end)
        self._emitter: Any = c_emit(processor, self._own_record, self._fault, raises_noted=False)
        #: None until bound: no provider was given and the global one is not an SDK one yet.
        self._state: _ProviderState | None = state
        self._unbound: _ProviderState | None = None
        #: Whether the C fast path writes the lines itself (see _c_fast_path).
        self._direct_lines = False
        self._install_fast_path(self._current_state())

    # -- set-up ----------------------------------------------------------------------------

    @property
    def processor(self) -> LogxpyLogRecordProcessor:
        """The processor whose writer this handler writes through."""
        return self._processor

    @property
    def log_code_attributes(self) -> bool:
        return self._log_code_attributes

    @property
    def logger_provider(self) -> LoggerProvider | None:
        """The SDK provider the resource, limits and logger settings come from (None: none yet)."""
        state = self._state
        return state.provider if state is not None else None

    def _current_state(self) -> _ProviderState:
        """The provider state: the given provider's; else the global SDK provider's once
        there is one (then for good: the global provider is set once). Until then, one
        with the default resource, and the global provider is looked at again next time."""
        state = self._state
        if state is not None:
            return state
        provider = get_logger_provider()
        if isinstance(provider, LoggerProvider):
            state = self._state = _ProviderState(provider, self._resource_arg)
            self._install_fast_path(state)
            return state
        unbound = self._unbound
        if unbound is None:
            unbound = self._unbound = _ProviderState(None, self._resource_arg)
        return unbound

    def __setattr__(self, name: str, value: Any) -> None:
        """A ``filter`` set on the handler itself is asked about every record, as by the
        stdlib's ``handle``: the fast paths (which ask only ``filters``) step aside."""
        super().__setattr__(name, value)
        if name == "filter":
            self.__dict__.pop("handle", None)

    # -- records: the general path -----------------------------------------------------------

    def handle(self, record: logging.LogRecord) -> Any:
        """Filters, then :meth:`emit`; the handler's lock only when a formatter is set."""
        # (a subclass's own filter, or one set on the handler itself, is asked too)
        filtering = self.filters or getattr(self.filter, "__func__", None) is not _STDLIB_FILTER
        rv: Any = self.filter(record) if filtering else True
        if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may return a record
            record = rv
        if rv:
            if self.formatter is None:
                self.emit(record)
            else:
                with self.lock:  # type: ignore[union-attr]
                    self.emit(record)
        return rv

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` as the OTel handler's path would. Never raises (see the module)."""
        if _EMITTING.get():
            self._discard(RECURSIVE_LOGGING)
            return
        outer = noted_aside() if NOTED_INTERRUPTS else None
        try:
            _EMITTING.set(True)  # (in the try: an alarm right after it must not leave it set)
            state = self._current_state()
            entry = state.scopes.get(record.name)
            if entry is None:
                entry = state.scope(record.name)
            scope, live, resource, own, disabled = entry
            if own:
                self._own_record()
            elif disabled:
                pass  # the OTel handler's logger is a NoOpLogger: nothing is written
            elif live is None:
                self._write(record, scope, resource, state)
            elif live._logger_config.is_enabled:  # else the logger configurator turned it off
                self._write(record, scope, resource if resource is not None else live._resource, state)
        except Exception as exc:  # noqa: BLE001 - never into the application
            self._fault(exc)
        finally:
            _EMITTING.set(False)  # (it was not set: see above)
            if NOTED_INTERRUPTS or outer is not None:
                settle_noted(outer)  # the application's interrupt, landed in its code: the record is queued

    def _write(
        self,
        record: logging.LogRecord,
        scope: Any,
        resource: Any,
        state: _ProviderState,
        built: tuple[Any, Any, Any] | None = None,
    ) -> None:
        """The OTel handler's ``_translate`` and the SDK's ``emit``, then encode and queue.
        ``built``: (message, created, levelno) when the C path built the message already
        (an argument's ``str()`` runs once; the time and the level number as read before
        it, as the OTel handler reads them), else None."""
        body: Any
        if built is None:
            body, created, levelno = None, record.created, record.levelno
        else:
            body, created, levelno = built
        timestamp = int(created * 1e9)
        observed = time_ns()
        severity = _SEVERITY_BY_LEVEL.get(levelno)
        if severity is None:
            severity = _severity(levelno)
        sdk = self._flavour == FLAVOUR_SDK
        attributes: Any = None
        event_name = None
        if sdk:
            attributes = _attributes_sdk(record)  # (the SDK's handler reads them before formatting)
        try:
            if built is not None:
                pass  # (the C path's message, whatever it is: None too)
            elif self.formatter is not None:
                body = self.format(record)
            elif sdk:
                body = _sdk_body(record)
            else:
                body = record.getMessage()
        except Exception as exc:  # noqa: BLE001 - the application's record: logging's own report
            raise_if_application_error(exc)  # (its alarm, in an argument's __str__: its own)
            self._format_error(record)
            return
        if not sdk:
            # The instrumentation's handler formats first: a field its formatter adds to
            # the record is an attribute too.
            attributes, event_name = _attributes(record, self._log_code_attributes)
        levelname = record.levelname
        text = _SEVERITY_TEXT.get(levelname, levelname)
        dropped = None
        if not attributes:
            attributes = None
        elif not _plain(attributes, state.max_count, state.max_length):
            attributes, dropped = _bounded(attributes, state.max_count, state.max_length)
        span_context = get_current_span().get_span_context()
        line_record = _new(_APILogRecord)
        line_record.__dict__.update(
            timestamp=timestamp,
            observed_timestamp=observed,
            trace_id=span_context.trace_id,
            span_id=span_context.span_id,
            trace_flags=span_context.trace_flags,
            severity_text=text,
            severity_number=severity,
            body=body,
            attributes=attributes,
            event_name=event_name,
        )
        self._writer.enqueue(self._encode(line_record, resource, scope, dropped))

    # -- records: the common case, in one Python frame -------------------------------------

    def _install_fast_path(self, state: _ProviderState) -> None:
        """``handle`` for the common case: no filter, formatter, exception or event name;
        plain attribute values (code attributes too) that no limit bites on. The same steps as
        ``handle`` -> ``emit`` -> ``_write`` above (anything else goes there), in C where
        built (``_logging_speedups.Fast``), else in one Python function: each Python call is
        a noticeable part of the cost.
        """
        cls = type(self)
        overridden = (
            cls.handle is not LogxpyLoggingHandler.handle
            or cls.filter is not _STDLIB_FILTER
            or "filter" in self.__dict__
            or cls.emit is not LogxpyLoggingHandler.emit
            or cls._write is not LogxpyLoggingHandler._write
        )
        unbound = state.provider is None and self._state is None
        if (
            overridden
            or self._flavour != FLAVOUR_INSTRUMENTATION
            or (unbound and not hasattr(_logs_api, _GLOBAL_PROVIDER))
        ):
            self.__dict__.pop("handle", None)
            return
        logs_api = _logs_api
        if _Fast is not None and self._emitter is not None and _SPAN_KEY is not None:
            fast = self._c_fast_path(state, unbound)
            self.__dict__["handle"] = fast.handle
            return
        general = LogxpyLoggingHandler.handle.__get__(self)
        scopes_get = state.scopes.get
        scope_of = state.scope
        max_count = state.max_count if state.max_count is not None else sys.maxsize
        limited = state.max_length is not None
        flag_get, flag_set = _EMITTING.get, _EMITTING.set
        n_init, init_keys, same = _N_INIT, _INIT_KEYS, operator.is_
        plain_args = _plain_args
        reserved = _RESERVED_ATTRS
        disjoint = reserved.isdisjoint
        otel_event, event = _OTEL_EVENT_NAME, _EVENT_NAME
        code = self._log_code_attributes
        plain_values = _PLAIN_VALUES.issuperset
        str_keys = _STR_KEYS.issuperset
        severities = _SEVERITY_BY_LEVEL
        texts = _SEVERITY_TEXT.get
        span_key = _SPAN_KEY
        context_now = get_current
        span_types: set[type] = set()
        invalid = INVALID_SPAN_CONTEXT
        log_record_type = _APILogRecord
        new = _new
        tuple_new = _tuple_new
        rw_type = _RW
        emitter = self._emitter
        encode = self._encode
        enqueue = self._writer.enqueue
        discard = self._discard
        own_record = self._own_record
        fault = self._fault
        recursive = RECURSIVE_LOGGING
        format_failed = self._format_error
        clock = time_ns

        def handle(record: logging.LogRecord) -> Any:
            if self.filters or self.formatter is not None:
                return general(record)
            if unbound and logs_api._LOGGER_PROVIDER is not None:
                return general(record)  # a global provider to bind to, at last
            if flag_get():
                discard(recursive)
                return True
            outer = noted_aside() if NOTED_INTERRUPTS else None
            try:
                flag_set(True)  # (in the try: an alarm right after it must not leave it set)
                entry = scopes_get(record.name)
                if entry is None:
                    entry = scope_of(record.name)
                scope, live, resource, own, disabled = entry
                if own:
                    own_record()
                    return True
                if disabled:
                    return True
                if live is not None:
                    if not live._logger_config.is_enabled:
                        return True
                    if resource is None:
                        resource = live._resource
                fields = record.__dict__
                exc_info = fields["exc_info"]
                if (
                    (exc_info is not None and (type(exc_info) is not tuple or exc_info))
                    or type(fields.get("msg")) is not str
                    or not plain_args(fields.get("args"))
                ):
                    # an exception (or an exc_info whose truth may run code: asked where the
                    # OTel handler asks it), or a message whose building may run Python code
                    # (a msg of another type, arguments whose str() may change the record):
                    # the general way, which builds the message before it reads the rest
                    self._write(record, scope, resource, state)
                    return True
                keys = [*fields]
                attributes: Any = None
                # (the keys compared by identity: a foreign key's __eq__ is never called)
                if n_init and len(keys) >= n_init and all(map(same, keys[:n_init], init_keys)):
                    if len(keys) > n_init:
                        tail = keys[n_init:]
                        if disjoint(tail):
                            attributes = {k: fields[k] for k in tail}
                        else:
                            attributes = {k: fields[k] for k in tail if k not in reserved} or None
                else:
                    attributes = {k: v for k, v in fields.items() if k not in reserved} or None
                if code:
                    if attributes is None:
                        attributes = {}
                    attributes[_CODE_FILE_PATH] = fields["pathname"]
                    attributes[_CODE_FUNCTION_NAME] = fields["funcName"]
                    attributes[_CODE_LINE_NUMBER] = fields["lineno"]
                if attributes is not None and (
                    len(attributes) > max_count
                    or limited
                    or otel_event in attributes
                    or event in attributes
                    or not plain_values(map(type, attributes.values()))
                    or not str_keys(map(type, attributes))
                    or "" in attributes
                ):
                    self._write(record, scope, resource, state)
                    return True
                try:
                    body = record.getMessage()
                except Exception as exc:  # noqa: BLE001 - the application's record: logging's own report
                    raise_if_application_error(exc)  # (its alarm, in an argument's __str__: its own)
                    format_failed(record)
                    return True
                levelno = record.levelno
                severity = severities.get(levelno)
                if severity is None:
                    severity = _severity(levelno)
                levelname = record.levelname
                if span_key is not None:
                    span: Any = context_now().get(span_key)
                    if span is None:
                        span_context = invalid
                    elif type(span) in span_types:
                        span_context = span.get_span_context()
                    elif isinstance(span, Span):
                        span_types.add(type(span))
                        span_context = span.get_span_context()
                    else:
                        span_context = invalid
                else:
                    span_context = get_current_span().get_span_context()
                line_record = new(log_record_type)
                line_record.__dict__.update(
                    timestamp=int(record.created * 1e9),
                    observed_timestamp=clock(),
                    trace_id=span_context.trace_id,
                    span_id=span_context.span_id,
                    trace_flags=span_context.trace_flags,
                    severity_text=texts(levelname, levelname),
                    severity_number=severity,
                    body=body,
                    attributes=attributes,
                    event_name=None,
                )
                if emitter is not None:
                    emitter(tuple_new(rw_type, (line_record, resource, scope)))
                else:
                    enqueue(encode(line_record, resource, scope, None))
            except Exception as exc:  # noqa: BLE001 - never into the application
                fault(exc)
            finally:
                flag_set(False)  # (it was not set: see above)
                if NOTED_INTERRUPTS or outer is not None:
                    settle_noted(outer)  # the application's interrupt, landed in its code: queued now
            return True

        self.__dict__["handle"] = handle

    def _c_fast_path(self, state: _ProviderState, unbound: bool) -> Any:
        """``_logging_speedups.Fast`` for this handler. It writes each line itself (and hands
        it to the writer's ``enqueue``) when it writes, for a probe record, the very item the
        processor's encoder makes of the API record the OTel handler would build (the item
        format and the line's bytes, see :func:`_probe`); else every record goes the
        encoder's way (the API record, through the processor's C ``on_emit``)."""
        encode = self._encode
        encoder = self._processor._encoder

        def tail_of(scope: Any, resource: Any) -> bytes:
            """The end the encoder writes (and caches) for this scope and resource."""
            tail: bytes = encode(_TAIL_PROBE, resource, scope)[4]
            return tail

        queue = lane_enqueue(self._processor)  # the writer's lane, no Python frame a line

        def build(direct: bool, item_size: int) -> Any:
            return _Fast(
                handler_dict=self.__dict__,
                general=LogxpyLoggingHandler.handle.__get__(self),
                write=lambda record, scope, resource, body: self._write(record, scope, resource, state, body),
                scopes=state.scopes,
                scope_of=state.scope,
                flag=_EMITTING,
                discard=self._discard,
                recursive=RECURSIVE_LOGGING,
                own_record=self._own_record,
                fault=self._fault,
                reserved=_RESERVED_ATTRS,
                n_init=_N_INIT,
                last_init=_LAST_INIT,
                otel_event=_OTEL_EVENT_NAME,
                event=_EVENT_NAME,
                severities=[_SEVERITY_BY_LEVEL[level] for level in range(61)],
                severity_of=_severity,
                texts=dict(_SEVERITY_TEXT),
                span_var=_CONTEXT_VAR,
                get_current=get_current,
                span_key=_SPAN_KEY,
                span_kind=_span_kind,
                invalid=INVALID_SPAN_CONTEXT,
                context_type=SpanContext,
                record_type=_APILogRecord,
                logging_type=logging.LogRecord,
                emitter=self._emitter,
                rw_type=_RW,
                clock=time_ns,
                logs_api=_logs_api if unbound else None,
                max_count=-1 if state.max_count is None else state.max_count,
                limited=state.max_length is not None,
                tuple_context=_TUPLE_CONTEXT,
                field_order=_RECORD_FIELDS,
                code=self._log_code_attributes,
                enqueue=queue if direct else None,
                dumps=orjson.dumps,
                enc_reserved=RESERVED_KEYS,
                tail_of=tail_of,
                levels=list(_LEVEL_FIELDS),
                flat=encoder.mode is LineMode.FLAT,
                item_size=item_size,
                format_failed=self._format_failed,
                get_message=_logging_get_message(),
                noted=NOTED_INTERRUPTS,
                noted_aside=noted_aside,
                settle_noted=settle_noted,
            )

        item_size = len(encode(_TAIL_PROBE, None, None))
        if item_size in (5, 7) and _TUPLE_CONTEXT:
            fast = build(True, item_size)
            try:
                agrees = _probe(fast, encode, self._log_code_attributes)
            except Exception:  # noqa: BLE001 - the probe must not stop the handler: the encoder's way
                agrees = False
            if agrees:
                self._direct_lines = True
                return fast
        self._direct_lines = False
        return build(False, 5)

    # -- faults ------------------------------------------------------------------------------

    def _own_record(self) -> None:
        """A record of our own diagnostics (the ``logxpy_otel`` logger): never written."""
        self._discard(DropReason.OWN_DIAGNOSTICS)

    def _format_failed(self, record: logging.LogRecord, exc: BaseException) -> BaseException | None:
        """The C fast path could not build ``record``'s message: counted and reported as
        :meth:`_write` does, without building it again (its arguments' ``__str__`` may do
        anything, and may succeed the second time). ``exc`` is given back where it is the
        application's own (its alarm, landed in an argument's ``__str__``), for the C path
        to raise on: a return value, not a raise, so that nothing else raised here can be
        taken for it."""
        if is_application_error(exc):
            return exc
        traceback = exc.__traceback__
        try:
            raise exc
        except Exception:  # noqa: BLE001 - logging's own report, with exc as the one handled
            self._format_error(record)
        finally:
            exc.__traceback__ = traceback  # (raised again, it grew by this frame: not for ever)
        return None

    def _format_error(self, record: logging.LogRecord) -> None:
        """``record``'s message could not be built: counted (``format_error``) and reported
        by logging's ``handleError``, called inside the ``except`` of that error. A
        ``handleError`` that raises (pytest's does) goes no further: the record is counted
        once, and the logging call does not raise."""
        self._discard(FORMAT_ERROR)
        try:
            self.handleError(record)
        except Exception:  # noqa: BLE001 - counted already; never into the application
            pass

    def _discard(self, reason: str) -> None:
        try:
            self._writer.discard(reason)
        except Exception:  # noqa: BLE001
            pass

    def _fault(self, exc: BaseException) -> None:
        """A record lost to an internal error: counted and reported, never raised (the
        application's own exception, from its signal handler, is raised on)."""
        raise_if_application_error(exc)
        self._discard(DropReason.INTERNAL_ERROR)
        try:
            self._fault_report.note(1, type(exc).__name__)
        except Exception:  # noqa: BLE001
            pass

    # -- flush and close ---------------------------------------------------------------------

    def flush(self) -> None:
        """Wait (at most the writer's shutdown timeout) until every record handed over is written."""
        try:
            writer = self._writer
            writer.flush(writer.config.shutdown_timeout_ms / 1000.0)
        except Exception:  # noqa: BLE001 - logging.shutdown() calls this at exit
            pass

    def close(self) -> None:
        """Detach from ``logging``; shut the processor down only if this handler built it."""
        try:
            if self._owns_processor:
                self._owns_processor = False
                self._processor.shutdown()
        finally:
            super().close()

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<{type(self).__name__} ({level})>"


#: Per thread (and task): whether a handler of ours is working on a record there; a record
#: logged meanwhile (from the SDK's attribute cleaning, a ``__str__``) is then skipped, as
#: the OTel handler skips it.
_EMITTING: ContextVar[bool] = ContextVar("logxpy_otel_logging_emitting", default=False)


def _attributes(record: logging.LogRecord, code: bool) -> tuple[dict[str, Any], str | None]:
    """The instrumentation handler's ``_get_attributes``: attributes and event name."""
    attributes = {k: v for k, v in vars(record).items() if k not in _RESERVED_ATTRS}
    event_name = attributes.pop(_OTEL_EVENT_NAME, None)
    deprecated = attributes.pop(_EVENT_NAME, None)
    if event_name is None:
        event_name = deprecated
    if code:
        attributes[_CODE_FILE_PATH] = record.pathname
        attributes[_CODE_FUNCTION_NAME] = record.funcName
        attributes[_CODE_LINE_NUMBER] = record.lineno
    if record.exc_info:
        _exception_attributes(record, attributes)
    return attributes, event_name


def _attributes_sdk(record: logging.LogRecord) -> dict[str, Any]:
    """The SDK handler's ``_get_attributes``: no event name, code attributes always."""
    attributes = {k: v for k, v in vars(record).items() if k not in _RESERVED_ATTRS}
    attributes[_CODE_FILE_PATH] = record.pathname
    attributes[_CODE_FUNCTION_NAME] = record.funcName
    attributes[_CODE_LINE_NUMBER] = record.lineno
    if record.exc_info:
        _exception_attributes(record, attributes)
    return attributes


def _exception_attributes(record: logging.LogRecord, attributes: dict[str, Any]) -> None:
    exc_info: Any = record.exc_info
    exctype, value, tb = exc_info
    if exctype is not None:
        attributes[_EXCEPTION_TYPE] = exctype.__name__
    if value is not None and value.args:
        attributes[_EXCEPTION_MESSAGE] = str(value.args[0])
    if tb is not None:
        attributes[_EXCEPTION_STACKTRACE] = "".join(traceback.format_exception(*exc_info))


def _plain(attributes: dict[Any, Any], max_count: int | None, max_length: int | None) -> bool:
    """Whether the SDK's ``BoundedAttributes`` would keep ``attributes`` as they are: no
    limit bites, every key a non-empty str, every value a str, int, float, bool or None."""
    return (
        (max_count is None or len(attributes) <= max_count)
        and max_length is None
        and _PLAIN_VALUES.issuperset(map(type, attributes.values()))
        and _STR_KEYS.issuperset(map(type, attributes))
        and "" not in attributes
    )


def _bounded(
    attributes: dict[Any, Any], max_count: int | None, max_length: int | None
) -> tuple[BoundedAttributes, int]:
    """As the SDK's ``ReadWriteLogRecord`` makes them: values cleaned, limits applied, the
    dropped count (and its warning, once, as the SDK warns)."""
    bounded = BoundedAttributes(
        maxlen=max_count, attributes=attributes, immutable=False, max_value_len=max_length
    )
    dropped = bounded.dropped
    if dropped:
        warnings.warn(
            "Log record attributes were dropped due to limits",
            LogRecordDroppedAttributesWarning,
            stacklevel=2,
        )
    return bounded, dropped


def _sdk_body(record: logging.LogRecord) -> Any:
    """The SDK handler's body: a non-str ``msg`` without args is kept (when an AnyValue)."""
    msg = record.msg
    if not record.args and not isinstance(msg, str):
        return msg if isinstance(msg, _SDK_BODY_TYPES) else str(msg)
    return record.getMessage()


def _sdk_flavoured(handler: LogxpyLoggingHandler) -> LogxpyLoggingHandler:
    """``handler`` giving records the meaning of the SDK's (deprecated) ``LoggingHandler``:
    code attributes always, ``otel.event.name`` an attribute like any other, a non-str
    ``msg`` without args as the body. For zero-code set-up, which replaces that handler."""
    handler._flavour = FLAVOUR_SDK
    handler._log_code_attributes = True
    handler.__dict__.pop("handle", None)  # the fast path is the instrumentation handler's
    return handler
