"""The package's own diagnostics: a ``logging`` logger and a rate limit on repeated reports.

Diagnostics never carry record content, and the processor refuses records from this
logger (``logxpy_otel``) so a warning about the exporter can never feed back into it.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from types import BuiltinFunctionType, CodeType, FrameType, FunctionType, MethodType
from typing import Final

from . import _lifecycle

__all__ = [
    "LOGGER_NAME",
    "RateLimitedReporter",
    "is_application_error",
    "is_own_scope",
    "logger",
    "raise_if_application_error",
]

LOGGER_NAME = "logxpy_otel"
logger = logging.getLogger(LOGGER_NAME)
_OWN_PREFIX = LOGGER_NAME + "."
#: ``id(scope) -> (scope, own)``: whether records of a scope are our own diagnostics,
#: per scope object (a pure function of its name, so one cache serves every writer).
_own_scopes: dict[int, tuple[object, bool]] = {}


def is_application_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the application's own: raised by its signal handler (an
    alarm-based timeout, say) while our code ran in its thread, blocked in a write, a wait
    or a retry's sleep. Our fault handlers raise it on (:func:`raise_if_application_error`)
    rather than count it as a fault of ours: it leaves our call as it would the SDK's.

    Told by the traceback, in the main thread (the only one Python runs signal handlers
    in): a frame in it was called with ``(signum, frame)`` where ``frame`` is the frame just
    above it there (which is how the interpreter calls a handler), or runs the code of a
    Python signal handler installed now, with nothing but ints, frames and None left of
    its arguments (a decorator's one ``wrapper`` code serves many functions). Only
    this call's own chain of frames is looked at, each called by the one before it (a
    handler of ours that raised it on adds the frame it was caught in again): an exception
    object raised again keeps its earlier traceback after the new one (an application
    raising one prebuilt instance, once from its handler, later from its own callback in
    our encoding), and those frames were called by no frame here. Frames of this package
    are never handlers, and at most :data:`_MAX_FRAMES_READ` frames' arguments are read.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        tb = exc.__traceback__
        seen: set[int] = set()
        above: FrameType | None = None
        handlers: frozenset[CodeType] | None = None
        reads_left = _MAX_FRAMES_READ
        while tb is not None:
            frame = tb.tb_frame
            if above is not None and frame.f_back is not above and not _resumed(frame):
                if id(frame) not in seen:
                    return False  # (an earlier raise of the same object from here on)
            elif frame.f_code is _SETTLE_CODE:
                return True  # (an interrupt noted earlier, raised on by an entry point of ours)
            elif above is not None and reads_left > 0 and not _ours(frame):
                reads_left -= 1
                if handlers is None:
                    handlers = _handler_codes()
                if _called_as_signal_handler(frame, frame.f_code in handlers):
                    return True
            seen.add(id(frame))  # (the frames are alive, held by the traceback: ids are theirs)
            above, tb = frame, tb.tb_next
    except Exception:  # noqa: BLE001 - a frame that cannot be read: counted as ours, as before
        pass
    return False


#: A generator's, a coroutine's: once it has stopped, its frame has no ``f_back``.
_RESUMABLE: Final = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def _resumed(frame: FrameType) -> bool:
    """Whether ``frame`` is a generator's or a coroutine's that has stopped (its caller,
    the frame above it in the traceback, is not kept)."""
    return frame.f_back is None and bool(frame.f_code.co_flags & _RESUMABLE)


def _ours(frame: FrameType) -> bool:
    """Whether ``frame`` runs this package's code (never a signal handler)."""
    return frame.f_code.co_filename.startswith(_PACKAGE_DIR)


#: The frames whose arguments :func:`is_application_error` reads, at most, in one call (each
#: costs its locals as a dict): a deep recursion in the application's code under ours (its
#: ``__str__``) costs a bounded look.
_MAX_FRAMES_READ: Final = 32
_PACKAGE_DIR: Final = os.path.dirname(os.path.abspath(__file__)) + os.sep


try:  # (the C function under signal.getsignal: SIG_DFL and SIG_IGN as plain ints, 8 times faster)
    from _signal import getsignal as _getsignal  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - another interpreter
    _getsignal = signal.getsignal

#: Every signal a handler can be set for, here.
_SIGNALS: Final = frozenset(signal.valid_signals())


def _handler_codes() -> frozenset[CodeType]:
    """The code of every Python signal handler installed now (a function's, a method's, a
    ``functools.partial``'s, a callable object's ``__call__``), read without running any
    of the application's code (no attribute looked up on its objects)."""
    codes = set()
    for signum in _SIGNALS:
        try:
            code = _code_of(_getsignal(signum))
        except Exception:  # noqa: BLE001 - one handler that cannot be read: the others are
            continue
        if code is not None:
            codes.add(code)
    return frozenset(codes)


#: What ``getsignal`` gives for a signal with no Python handler: SIG_DFL and SIG_IGN (ints,
#: or their enum members), None (set outside Python), a builtin (``default_int_handler``).
_NO_CODE: Final = frozenset({int, signal.Handlers, type(None), BuiltinFunctionType})


def _code_of(handler: object) -> CodeType | None:
    """The code a Python signal handler runs, or None (a builtin, SIG_DFL, SIG_IGN)."""
    if type(handler) in _NO_CODE:
        return None  # (most signals: asked first, as inspect.getattr_static costs µs a call)
    for _ in range(8):  # (a partial of a partial...: bounded)
        if type(handler) is not functools.partial:
            break
        handler = handler.func
    if type(handler) is MethodType:
        handler = handler.__func__
    if type(handler) is FunctionType:
        return handler.__code__
    call = inspect.getattr_static(type(handler), "__call__", None)
    return call.__code__ if type(call) is FunctionType else None


def _called_as_signal_handler(frame: FrameType, runs_a_handler: bool) -> bool:
    """Whether ``frame``'s arguments hold ``(signum, frame.f_back)`` side by side (a
    method's, a ``functools.partial``'s and a ``*args`` handler's too): also a handler no
    longer installed. Where it ``runs_a_handler``'s code: also when what is left of its
    arguments is ints, frames and None (a handler that deleted or rebound them: ``signum =
    signal.Signals(signum)``, ``del frame``), not when they hold other objects (that code
    serving as the application's method or function called from our encoding: a
    decorator's one ``wrapper``; an application error there is counted as ours)."""
    code = frame.f_code
    count = code.co_argcount + code.co_kwonlyargcount
    names = code.co_varnames[:count]
    star = code.co_varnames[count] if code.co_flags & inspect.CO_VARARGS else None
    local = frame.f_locals
    values = [local[name] for name in names if name in local]
    if star is not None and isinstance(extra := local.get(star), tuple):
        values.extend(extra)
    back = frame.f_back
    if any(isinstance(signum, int) and caught is back for signum, caught in itertools.pairwise(values)):
        return True
    if not runs_a_handler:
        return False
    return all(value is None or isinstance(value, int | FrameType) for value in values)


def raise_if_application_error(exc: BaseException) -> None:
    """Raise ``exc`` on when it is the application's own (:func:`is_application_error`):
    no record is counted for it (the call did not finish), and what the call was doing is
    left as an interrupt (``KeyboardInterrupt``) there leaves it."""
    if is_application_error(exc):
        raise exc


#: The application's interrupt (Ctrl-C, or its signal handler's exception) that landed while
#: its own code ran inside our encoding (a ``__repr__``, a mapping's ``items``), where it
#: cannot go up (orjson turns what its ``default`` raises into a ``TypeError``): the value
#: is written as one that could not be shown, and the entry point of our package that the
#: application called raises it on once its record is queued (:func:`settle_noted`; the C
#: ``Emitter`` and ``Fast`` too). Only the main thread notes and raises (signal handlers
#: run there), so one list serves; it holds the first. An entry point called inside
#: another's (a logging call the application's ``__repr__`` makes) takes the outer call's
#: note aside at its start and puts it back at its end (:func:`noted_aside`).
NOTED_INTERRUPTS: Final[list[tuple[BaseException, object]]] = []


def _owner() -> object:
    """Whose call a note is: a weak reference to the greenlet running now, where greenlets
    are in use (calls of several interleave on the main thread; a greenlet dropped with a
    note is not kept alive by it), else None: the thread's own stack, its root greenlet
    included (greenlet may be imported between a note and its settling)."""
    greenlet = sys.modules.get("greenlet")
    getcurrent = getattr(greenlet, "getcurrent", None)
    if getcurrent is None:
        return None
    current = getcurrent()
    return None if current.parent is None else weakref.ref(current)


def _live(entry: tuple[BaseException, object]) -> bool:
    """Whether a note's owner may still settle it (a dropped greenlet's never will)."""
    owner = entry[1]
    return not isinstance(owner, weakref.ref) or owner() is not None


def _mine_and_the_rest() -> tuple[list[tuple[BaseException, object]], list[tuple[BaseException, object]]]:
    """The notes of the call stack running now (:func:`_owner`), and the others that may
    still be settled (a dropped greenlet's are forgotten)."""
    me = _owner()
    mine = [entry for entry in NOTED_INTERRUPTS if entry[1] == me]
    return mine, [entry for entry in NOTED_INTERRUPTS if entry[1] != me and _live(entry)]


def note_if_interrupt(exc: BaseException) -> None:
    """Note ``exc`` for :func:`settle_noted` when it is the application's interrupt: a
    ``KeyboardInterrupt`` in the main thread, or :func:`is_application_error`. Anything
    else (``SystemExit`` of a broken ``__repr__``, any exception in another thread) is the
    method's own failure, not noted. The first of a call's is kept."""
    if (isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread()) or (
        is_application_error(exc)
    ):
        me = _owner()
        if not any(owner == me for _, owner in NOTED_INTERRUPTS):
            NOTED_INTERRUPTS.append((exc, me))


def noted_aside() -> list[tuple[BaseException, object]] | None:
    """At an entry point's start, with an interrupt noted (by an outer call of ours, in whose
    encoding the application's code called this one): that note, taken out of sight until
    :func:`settle_noted` puts it back. None in another thread (the note is the main
    thread's, untouched), for another greenlet's note, or when there is none."""
    if not NOTED_INTERRUPTS or threading.current_thread() is not threading.main_thread():
        return None
    aside, rest = _mine_and_the_rest()
    NOTED_INTERRUPTS[:] = rest  # (no call from here to the return: see settle_noted)
    return aside or None


def settle_noted(outer: list[tuple[BaseException, object]] | None) -> None:
    """At an entry point's end, in the main thread: the outer call's note (``outer``, from
    :func:`noted_aside`) noted again, and this call's own raised (its record is queued).
    Nothing in another thread. Another interrupt landing here goes up in its place, and
    this call's note is dropped all the same (never left for a later call to raise)."""
    main: bool | None = None  # (None: an interrupt came before it was known; only main gets them)
    own: list[tuple[BaseException, object]] = []
    after: list[tuple[BaseException, object]] | None = None
    try:
        main = threading.current_thread() is threading.main_thread()
        if main:
            own, rest = _mine_and_the_rest()
            after = rest + (outer or [])
    finally:
        # (no call here: a signal lands only at calls, jumps back and a function's start)
        if main is not False:
            NOTED_INTERRUPTS[:] = after if after is not None else outer or []
    if own:
        raise own[0][0]


#: The code :func:`settle_noted` raises from: an exception raised there is an interrupt
#: noted as the application's (:func:`is_application_error` says so), though its earlier
#: traceback, cut by that raise, no longer shows it.
_SETTLE_CODE: Final = settle_noted.__code__

os.register_at_fork(after_in_child=NOTED_INTERRUPTS.clear)  # (the parent's, not the child's)


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
