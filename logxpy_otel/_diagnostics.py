"""The package's own diagnostics: a ``logging`` logger and a rate limit on repeated reports.

Diagnostics never carry record content, and the processor refuses records from this
logger (``logxpy_otel``) so a warning about the exporter can never feed back into it.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

from . import _lifecycle

__all__ = [
    "LOGGER_NAME",
    "RateLimitedReporter",
    "is_own_scope",
    "logger",
    "mark_application_error",
    "raise_if_application_error",
]

LOGGER_NAME = "logxpy_otel"
logger = logging.getLogger(LOGGER_NAME)
_OWN_PREFIX = LOGGER_NAME + "."
#: ``id(scope) -> (scope, own)``: whether records of a scope are our own diagnostics,
#: per scope object (a pure function of its name, so one cache serves every writer).
_own_scopes: dict[int, tuple[object, bool]] = {}


#: The mark :func:`mark_application_error` puts in an exception's ``__dict__``.
_APPLICATION_ERROR = "_logxpy_otel_application_error"


def mark_application_error(exc: BaseException) -> None:
    """Mark ``exc`` as the application's own: raised by its signal handler while one of our
    calls waited (a full queue's ``block`` wait), not a fault of ours. Our fault handlers
    raise it on (:func:`raise_if_application_error`) where they count a fault of ours."""
    try:
        exc.__dict__[_APPLICATION_ERROR] = True
    except Exception:  # noqa: BLE001 - (an exception type that keeps no __dict__: counted, as before)
        pass


def raise_if_application_error(exc: BaseException) -> None:
    """Raise ``exc`` on when :func:`mark_application_error` marked it: it leaves our call
    as it would the SDK's, and no record is counted for it (the call did not finish). The
    mark goes with it: the same object raised again later, in a call that did not wait
    (an application that raises one prebuilt instance), is that call's own story."""
    try:
        marked = exc.__dict__.pop(_APPLICATION_ERROR, None) is True
    except Exception:  # noqa: BLE001
        marked = False
    if marked:
        raise exc


class _StderrUnlessShown(logging.Handler):
    """Our warnings on stderr when nothing the application set up shows them.

    An application whose only root handler is OpenTelemetry's ``LoggingHandler`` (logging
    auto-instrumentation) would otherwise see our warnings only inside the very file or
    collector they are about, and ``logging.lastResort`` does not apply once any handler
    exists. A ``StreamHandler`` (console or file) on the way up means the application
    shows them itself: then this handler stays silent.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if self._shown_elsewhere(record):
            return
        try:
            stream = sys.stderr
            if stream is not None:
                stream.write(self.format(record) + "\n")
                stream.flush()
        except Exception:  # noqa: BLE001 - diagnostics never raise
            pass

    def _shown_elsewhere(self, record: logging.LogRecord) -> bool:
        current: logging.Logger | None = logger
        while current is not None:
            for handler in current.handlers:
                shows = isinstance(handler, logging.StreamHandler) and record.levelno >= handler.level
                if shows and handler is not self:
                    return True
            if not current.propagate:
                break
            current = current.parent
        return False


logger.addHandler(_StderrUnlessShown())


def is_own_scope(scope: object) -> bool:
    """Whether records of ``scope`` are our own diagnostics (logger ``logxpy_otel`` or below),
    routed back through an OTel logging handler: they never go into our own files."""
    entry = _own_scopes.get(id(scope))
    if entry is None or entry[0] is not scope:
        name = getattr(scope, "name", None)
        own = isinstance(name, str) and (name == LOGGER_NAME or name.startswith(_OWN_PREFIX))
        if len(_own_scopes) >= 1024:
            _own_scopes.clear()
        entry = _own_scopes[id(scope)] = (scope, own)
    return entry[1]


class RateLimitedReporter:
    """Logs one kind of event at most once per ``interval_s``, with the count since the last report."""

    def __init__(
        self,
        message: str,
        *,
        interval_s: float = 5.0,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._message = message
        self._interval = interval_s
        self._level = level
        self._clock = clock
        self._lock = threading.RLock()
        self._pending = 0
        self._last = -float("inf")
        _lifecycle.reset_after_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.RLock()  # (another thread may have held it at the fork)

    def note(self, count: int = 1, detail: str = "") -> None:
        """Count ``count`` events; log the total since the last report when the interval allows.

        ``message`` is %-formatted with the count and ``detail``. Call it with no lock held:
        a logging handler may call back into the OTel SDK.
        """
        now = self._clock()
        with self._lock:
            self._pending += count
            if now - self._last < self._interval:
                return
            total, self._pending, self._last = self._pending, 0, now
        try:
            logger.log(self._level, self._message, total, detail)
        except Exception:  # noqa: BLE001 - a broken handler must not break the writer
            pass

    def reset(self) -> None:
        """Forget the counts and the last report (after ``fork()``, in the child)."""
        self._lock = threading.RLock()
        self._pending = 0
        self._last = -float("inf")
