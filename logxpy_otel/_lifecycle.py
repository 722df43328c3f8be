"""What every writer shares with the process: one exit hook, one fork hook (for the
writers, and for whatever else registers with :func:`reset_after_fork`), and one thread
that closes the idle traces of writers with no thread of their own.

The exit hook is registered when this module is imported (with the writer, before any
SDK provider that names our exporter is created), so that ``atexit`` (newest first) runs
the SDK's provider shutdowns, which hand us what their batch processors hold, before it.
"""

from __future__ import annotations

import _thread
import atexit
import itertools
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, set_value

if TYPE_CHECKING:
    from ._writer import AsyncWriter

__all__ = ["IDLE_CLOSER", "call_bounded", "register"]


class _IdleCloser:
    """Closes idle traces of writers that have no thread of their own (synchronous mode,
    the exporter under an SDK processor, the fallback after crashes): one shared daemon
    thread (``logxpy-idle``) for all of them, running only while one is registered."""

    def __init__(self) -> None:
        self._writers: weakref.WeakSet[AsyncWriter] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, writer: AsyncWriter) -> None:
        with self._lock:
            self._writers.add(writer)
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="logxpy-idle", daemon=True)
                try:
                    thread.start()
                except RuntimeError:
                    return  # (CPython 3.12.0/3.12.1 during the exit: its closes come anyway)
                self._thread = thread

    def _run(self) -> None:
        attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        while True:
            with self._lock:
                writers = list(self._writers)
                if not writers:
                    self._thread = None
                    return
            # A trace idle for trace_idle_ms is closed within a quarter of it more (at
            # least every second): what `tail -f` and viewers see of a finished request.
            period = min(w.config.trace_idle_ms for w in writers) / 4000.0
            del writers  # hold no writer while waiting: they may be collected
            time.sleep(min(max(period, _IDLE_TICK_MIN_S), _IDLE_TICK_MAX_S))
            with self._lock:
                writers = list(self._writers)
            for writer in writers:
                if not writer._close_idle_from_outside():
                    with self._lock:
                        self._writers.discard(writer)
            del writers

    def join(self) -> None:
        """Wait until the thread ends: with no writer left, at its next tick (two ticks at
        most)."""
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2 * _IDLE_TICK_MAX_S)

    def reset_after_fork(self) -> None:
        """In a forked child: no thread, no writers (they register again when they start)."""
        self._writers = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread = None


_IDLE_TICK_MIN_S: Final = 0.01
_IDLE_TICK_MAX_S: Final = 1.0
IDLE_CLOSER: Final = _IdleCloser()
#: Every writer not yet collected, by creation number (the exit hook runs them newest first).
_LIVE: Final[weakref.WeakValueDictionary[int, AsyncWriter]] = weakref.WeakValueDictionary()
_NUMBERS: Final = itertools.count()


def _exit_all() -> None:
    """At interpreter exit: each live writer's exit step.

    Registered once, when this module is imported. The SDK's providers register their own
    shutdown when they are created, which is after this import in every set-up where our
    exporter is named (zero-code loads it first), and ``atexit`` runs newest first: the
    SDK's batch processors hand us what they hold before our writers close their traces.
    """
    for writer in reversed(list(_LIVE.values())):
        writer._at_exit()
    if _IN_SUBINTERPRETER:
        _end_threads()


def _subinterpreter() -> bool:
    """Whether this interpreter is not the process's main one (mod_wsgi runs applications
    in subinterpreters): its end refuses threads still running, even daemon ones. Asked
    once, at import: at the exit, interpreter ids made then can end an interpreter."""
    is_main = getattr(_thread, "_is_main_interpreter", None)  # 3.12+
    if is_main is not None:
        return not is_main()
    try:
        import _xxsubinterpreters as interpreters  # type: ignore[import-not-found]  # 3.11
    except ImportError:
        return False
    try:
        return bool(interpreters.get_current() != interpreters.get_main())
    except Exception:  # noqa: BLE001 - an interpreter module of another shape: as the main one
        return False


#: Whether this module was imported in a subinterpreter (see :func:`_subinterpreter`).
_IN_SUBINTERPRETER: Final = _subinterpreter()


def _end_threads() -> None:
    """At a subinterpreter's exit, after the writers' exit steps: stop every writer (its
    thread ends, within the exit's one deadline) and let the idle closer end (two of its
    ticks at most). A
    subinterpreter that ends with a thread of ours running aborts the whole process
    ("thread still has a frame"; hostile review, session 29). Records handed over after
    this are dropped and counted (``shutdown``), never lost silently."""
    for writer in reversed(list(_LIVE.values())):
        try:
            writer.stop()  # (bounded by the exit's deadline: see AsyncWriter.stop)
        except Exception:  # noqa: BLE001 - the other writers still stop
            pass
    IDLE_CLOSER.join()


#: When this process's exit began, as first seen (the ``atexit`` hooks run): every writer's
#: exit steps and stops share it, so one ``shutdown_timeout`` bounds the exit whichever
#: runs first (our hook, or the SDK providers' shutdowns).
_EXIT_BEGAN: list[float] = []


def exit_deadline(timeout_s: float) -> float | None:
    """During the interpreter's exit, the deadline ``timeout_s`` after the exit began (on
    the ``time.monotonic`` clock); None before it.

    The exit is the ``atexit`` hooks: they run once the main thread has finished
    (``threading.main_thread().is_alive()`` is False from then on) and every non-daemon
    thread has ended, whichever thread asks (a hook may shut down in a thread of its own).
    A finished main thread alone is not the exit: a service whose main thread starts its
    threads and returns runs on in them, and a shutdown there (or in a signal handler of
    the main thread while it waits for them) gets its own time."""
    if _CHILD_EXIT_BEGAN:  # (a multiprocessing child's end: its main thread is still running)
        return _CHILD_EXIT_BEGAN[0] + timeout_s
    main = threading.main_thread()
    if main.is_alive() or any(
        not thread.daemon and thread.is_alive() for thread in threading.enumerate() if thread is not main
    ):
        return None
    if not _EXIT_BEGAN:
        _EXIT_BEGAN.append(time.monotonic())
    return _EXIT_BEGAN[0] + timeout_s


#: What else a forked child resets, held weakly: objects (or modules) with an
#: ``_after_fork_in_child()`` that replaces their locks (another thread may have held one
#: at the fork, and would never let it go in the child) and forgets their threads.
_FORK_RESETS: Final[weakref.WeakSet[Any]] = weakref.WeakSet()


def reset_after_fork(target: Any) -> None:
    """Call ``target._after_fork_in_child()`` in a forked child (``target`` is held weakly)."""
    _FORK_RESETS.add(target)


def _before_fork() -> None:
    for writer in list(_LIVE.values()):
        try:
            writer._before_fork()
        except Exception:  # noqa: BLE001 - never in the way of the application's fork
            pass


def _after_fork_in_parent() -> None:
    for writer in list(_LIVE.values()):
        try:
            writer._after_fork_in_parent()
        except Exception:  # noqa: BLE001
            pass


def _after_fork_in_child() -> None:
    _EXIT_BEGAN.clear()
    _CHILD_EXIT_BEGAN.clear()
    IDLE_CLOSER.reset_after_fork()
    for target in list(_FORK_RESETS):
        target._after_fork_in_child()
    for writer in list(_LIVE.values()):
        writer._child_after_fork()
    _exit_with_multiprocessing()


#: The lowest ``exitpriority``: ``multiprocessing`` runs its finalizers highest first.
_LAST: Final = -(2**31)
#: What else must hand over what it holds before a ``multiprocessing`` child's writers
#: close (held weakly): objects with an ``_at_child_exit()`` (the OTLP fallback: its SDK
#: batch processor and its send under way; at an ordinary exit the SDK's shutdown does it).
_CHILD_EXITS: Final[weakref.WeakSet[Any]] = weakref.WeakSet()
#: The process whose ``multiprocessing`` exit step is registered (once a process).
_EXIT_STEP_IN: list[int] = []


def at_child_exit(target: Any) -> None:
    """Call ``target._at_child_exit()`` when a ``multiprocessing`` child ends (see
    :func:`_exit_with_multiprocessing`); ``target`` is held weakly."""
    _CHILD_EXITS.add(target)


class _Anchor:
    """What ``multiprocessing``'s after-fork registry holds (weakly) for our entry."""


_ANCHOR: Final = _Anchor()


def _exit_with_multiprocessing() -> None:
    """A ``multiprocessing`` child (the fork and forkserver start methods) ends with
    ``os._exit`` once its target returns: the ``atexit`` hooks never run there, and what
    its writers held was lost. ``multiprocessing``'s exit finalizers do run. A child's
    start clears those it inherited, then runs its after-fork callbacks: ours registers
    the exit step there (:func:`_exit_step_in_child`); a writer made later in the child
    registers it when it is made (:func:`register`). In a child that ends through
    ``atexit`` instead, the step runs twice; the second finds nothing."""
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return  # (no multiprocessing here: a child of os.fork, which ends as its code says)
    try:
        util.register_after_fork(_ANCHOR, _exit_step_in_child)
    except Exception:  # noqa: BLE001 - never in the way of the application's fork
        pass


def _exit_step_in_child(_anchor: object = None) -> None:
    """In a ``multiprocessing`` child, once: the exit step as its last exit finalizer
    (after the application's). In a child still being prepared (a forkserver or spawn
    child importing the main module again, before ``multiprocessing`` calls it a child),
    at its start, through its after-fork callbacks (they come after it clears the
    finalizers it inherited)."""
    process = sys.modules.get("multiprocessing.process")
    if process is None or os.getpid() in _EXIT_STEP_IN:
        return
    try:
        util = sys.modules["multiprocessing.util"]
        if process.parent_process() is None:
            if getattr(process.current_process(), "_inheriting", False):
                util.register_after_fork(_ANCHOR, _exit_step_in_child)
            return
        if _start_method(process) == "spawn":
            return  # (a spawned child ends through atexit, as any interpreter: as before)
        util.Finalize(None, _exit_child, exitpriority=_LAST)
    except Exception:  # noqa: BLE001 - never in the way of the application
        return
    _EXIT_STEP_IN[:] = [os.getpid()]


def _start_method(process: Any) -> str | None:
    """How this ``multiprocessing`` child was started: its process class says, else the
    start method the child was given (``multiprocessing`` sets it in a spawned one)."""
    method = getattr(process.current_process(), "_start_method", None)
    if method is None:
        context = sys.modules.get("multiprocessing.context")
        default = getattr(context, "_default_context", None)
        method = default.get_start_method(allow_none=True) if default is not None else None
    return method if isinstance(method, str) else None


def _exit_child() -> None:
    """A ``multiprocessing`` child's end: what is held in front of our writers is handed
    over, then each writer's exit step, one deadline for all of them.

    Threads the target left running are not waited for: ``multiprocessing`` joins them
    after its finalizers, and some end only then (the idle workers of a thread pool never
    shut down: waiting for them took the whole bound, and the hand-over lost its time).
    What such a thread logs after this step reaches our writers when it goes to them
    directly (they write in its thread from then on); held in an SDK batch processor in
    front, it is lost with the process."""
    _CHILD_EXIT_BEGAN[:] = [time.monotonic()]
    for target in list(_CHILD_EXITS):
        try:
            target._at_child_exit()
        except Exception:  # noqa: BLE001 - the writers' exit steps come all the same
            pass
    _exit_all()


#: When a ``multiprocessing`` child's exit step began (see :func:`exit_deadline`).
_CHILD_EXIT_BEGAN: list[float] = []


atexit.register(_exit_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )


def register(writer: AsyncWriter) -> None:
    """Run ``writer``'s exit and fork steps with the process's (it is held weakly)."""
    _LIVE[next(_NUMBERS)] = writer
    if "multiprocessing.util" in sys.modules:
        _exit_step_in_child()  # (made in a multiprocessing child: its end runs no atexit)


def call_bounded(call: Callable[[], Any], timeout: float) -> Any:
    """``call()`` on a daemon thread, waited for at most ``timeout`` seconds: its result;
    False if it raised; None if it is still running (a flush or shutdown of another
    component that hangs must not hold up ours, nor the exit)."""
    result: list[Any] = [None]

    def run() -> None:
        attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            result[0] = call()
        except Exception:  # noqa: BLE001 - a failing flush or shutdown is a False result
            result[0] = False

    thread = threading.Thread(target=run, name="logxpy-bounded", daemon=True)
    try:
        thread.start()
    except RuntimeError:
        # CPython 3.12.0 and 3.12.1 start no thread once the exit has begun: called here,
        # without the bound (as before there was one), rather than not at all.
        run()
        return result[0]
    thread.join(max(0.0, timeout))
    return None if thread.is_alive() else result[0]
