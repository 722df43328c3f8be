"""The policy-aware writer: a truly bounded queue, one writer thread, batched appends.

(``Async*`` names a writer *thread*, as in logxpy's async writer; nothing here is asyncio.)

Producers call :meth:`AsyncWriter.enqueue` with already-encoded :data:`LineItem` s. They
wait in a :class:`~logxpy_otel._queue.RecordQueue` (``_queue``: the bound of
``max_queue_size`` records, the :class:`QueuePolicy` for a full queue, flush markers, and
the counts: every record is written or dropped with a reason). This module serves that
queue: the ``logxpy-writer`` thread takes up to ``batch_size`` records at a time and hands
them to its :class:`~logxpy_otel._output.Output` (``_output``: numbering, rotation,
delivery to each destination).

Locks, always taken in this order when nested: ``_io_lock`` (numbering and writing; held
by the writer thread or a synchronous caller), then ``_lock`` (the run state), then the
queue's (counts and slow paths), then a reporter's own. All are re-entrant, so that a
signal handler that logs cannot deadlock the thread it interrupts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from queue import Empty, SimpleQueue
from typing import Final

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, set_value

from . import _lifecycle
from ._config import SYNC_MODE, AsyncConfig, AsyncMetrics, sync_mode
from ._destinations import (
    ClosableDestination,
    Destination,
    FlushableDestination,
    RotatingDestination,
)
from ._diagnostics import RateLimitedReporter, logger, raise_if_application_error
from ._format import LineItem
from ._output import Output
from ._policies import DropReason, QueuePolicy
from ._queue import Gate, Lane, RecordQueue, span_lines
from ._trees import TreeNumberer

__all__ = [
    "SYNC_MODE",
    "AsyncConfig",
    "AsyncMetrics",
    "AsyncWriter",
    "ClosableDestination",
    "Destination",
    "DropReason",
    "FlushableDestination",
    "QueuePolicy",
    "RotatingDestination",
    "sync_mode",
]


class _Wake:
    """Wakes the writer thread: ``set()`` from any thread, or from a signal handler.

    ``threading.Event`` would do, but its ``set()`` takes a plain lock, and a signal
    handler that logs while this thread is inside ``set()`` would wait on it forever. A
    C-level ``SimpleQueue`` put cannot be interrupted half way.
    """

    __slots__ = ("_q",)

    def __init__(self) -> None:
        self._q: SimpleQueue[None] = SimpleQueue()

    def set(self) -> None:
        # One pending wake-up is enough: a put for every call would grow the queue without
        # bound while the writer is busy and producers keep finding the queue full. (A
        # race between threads can put a second one: bounded by the number of threads.)
        if self._q.empty():
            self._q.put(None)

    def wait(self, timeout: float) -> None:
        try:
            self._q.get(timeout=timeout)
        except Empty:
            pass

    def clear(self) -> None:
        get = self._q.get_nowait
        try:
            while True:
                get()
        except Empty:
            pass


_NEW, _RUNNING, _STOPPING, _STOPPED = "new", "running", "stopping", "stopped"
_BACKOFF_FIRST_S: Final = 0.1
_BACKOFF_MAX_S: Final = 30.0


class _IOLock:
    """The writer's I/O lock: re-entrant, and ``after()`` runs each time a thread lets go of
    it for good, so a close that a signal handler asked for while its thread held the lock
    (put off, as the write under way must end first) is done whoever the holder was."""

    __slots__ = ("_lock", "after")

    def __init__(self, after: Callable[[], None]) -> None:
        self._lock = threading.RLock()
        self.after = after

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()
        if not self.held_here():
            self.after()

    def held_here(self) -> bool:
        return bool(self._lock._is_owned())  # type: ignore[attr-defined]

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class AsyncWriter:
    """Writes line items to destinations from one background thread (``logxpy-writer``).

    Thread-safe. Records wait in a :class:`~logxpy_otel._queue.RecordQueue` (the bound, the
    policy, the counts); this class serves it. Its life, in one place:

    ======== =============================================== =========================
    state    who writes                                      queue gate
    ======== =============================================== =========================
    new      nobody yet: the first ``enqueue`` starts it      direct
    running  the thread; after ``max_restarts`` crashes, or   open (direct when sync)
             in synchronous mode, each caller (``write_now``)
    stopping ``stop()``: drains, closes trees and files       closing
    stopped  nobody: what races in is dropped (``shutdown``)  closed
    ======== =============================================== =========================

    A crash restarts the thread after a backoff (0.1 s doubling to 30 s); a forked child
    starts afresh (new); the exit hook flushes, then turns the writer synchronous.
    """

    def __init__(
        self,
        destinations: Iterable[Destination] = (),
        config: AsyncConfig | None = None,
    ) -> None:
        self._config = config = config if config is not None else AsyncConfig()
        self._output = Output(tuple(destinations), self._destination_failed)
        self._interval_s = config.flush_interval_ms / 1000.0
        self._sync = not config.async_enabled
        report_s = config.report_interval_ms / 1000.0
        self._drop_report = RateLimitedReporter(
            "logxpy-otel: queue full, dropped %d record(s) since the last warning%s", interval_s=report_s
        )
        self._error_report = RateLimitedReporter(
            "logxpy-otel: %d destination error(s) since the last report; last: %s", interval_s=report_s
        )
        self._closed = False
        #: The queue's common path while it is open, else None: a list the C on_emit holds,
        #: changed in place (see _set_mode), so a forked child's new queue needs no new emitter.
        self._lane: list[Lane | None] = [None]
        #: Set by the exit hook: stop() then ends by this time too (one bound for the whole exit).
        self._exit_deadline: float | None = None
        #: Called by the exit hook, with its deadline, before the open trees are closed: a
        #: processor in front of this writer hands over what it still holds (a batch
        #: processor whose provider shuts down after this hook), so no trace is split in two.
        self.before_exit_close: Callable[[float], object] | None = None
        self._reset_state()
        _lifecycle.register(self)

    # -- state -------------------------------------------------------------------------

    def _reset_state(self) -> None:
        """Fresh locks, queue, counters and trees: at construction and in a forked child."""
        config = self._config
        #: Guards the run state (re-entrant, like every lock here: a signal handler that
        #: logs may interrupt the thread that holds it). Order: _io_lock, _lock, the queue's.
        self._lock = threading.RLock()
        self._io_lock = _IOLock(self._after_io)
        self._wake = _Wake()
        self._stop_event = threading.Event()
        self._queue = RecordQueue(
            max_size=config.max_queue_size,
            batch_size=config.batch_size,
            policy=config.queue_policy,
            wake=self._wake.set,
            drop_report=self._drop_report,
        )
        #: The batch being written: taken from the queue, still holding its slots.
        self._inflight: list[LineItem] = []
        #: A caller's thread is numbering and writing (``_io_lock`` held): a signal handler
        #: that logs in that thread meanwhile re-enters through the re-entrant lock. Its
        #: items wait in ``_deferred`` and are written right after, never numbered inside
        #: the batch being numbered.
        self._writing: int | None = None  # (the thread's ident)
        self._deferred: list[LineItem] = []
        #: A close such a handler asked for (stop, exit) meanwhile, done when the write ends:
        #: 0 none, 1 the open trees, 2 the trees and the destinations.
        self._close_after_write = 0
        #: stop() ran out of time waiting for the thread: the thread closes when it ends.
        #: Both are read and set under ``_lock``, with ``_ended``: the last thread that ended.
        self._close_left = False
        self._ended: threading.Thread | None = None
        self._restarts = 0
        self._thread: threading.Thread | None = None
        self._output.use_trees(
            TreeNumberer(idle_timeout_s=config.trace_idle_ms / 1000.0, max_open=config.max_open_traces)
        )
        self._drop_report.reset()
        self._error_report.reset()
        self._set_mode(state=_STOPPED if self._closed else _NEW)

    def _set_mode(self, *, state: str | None = None, sync: bool | None = None) -> None:
        """Set the run state and/or synchronous mode, and with them the queue's gate and the
        C ``on_emit``'s lane. Every change of ``_state`` or ``_sync`` goes through here."""
        if state is not None:
            self._state = state
        if sync is not None:
            self._sync = sync
        if self._state is _RUNNING:
            gate = Gate.DIRECT if self._sync else Gate.OPEN
        else:
            gate = {_NEW: Gate.DIRECT, _STOPPING: Gate.CLOSING}.get(self._state, Gate.CLOSED)
        queue = self._queue
        queue.set_gate(gate)
        # (closed while a fork is under way: see _before_fork)
        self._lane[0] = queue.lane() if gate is Gate.OPEN and not queue.forks else None

    def nest_spans(self) -> None:
        """Take span lines too (from ``LogxpySpanProcessor``): each trace's tree then nests
        by its spans. Call before the first span line; records are numbered as before."""
        with self._io_lock:
            self._output.nest_spans()

    @property
    def config(self) -> AsyncConfig:
        return self._config

    @property
    def is_running(self) -> bool:
        """True while a writer thread serves the queue."""
        thread = self._thread
        return self._state == _RUNNING and thread is not None and thread.is_alive()

    @property
    def metrics(self) -> AsyncMetrics:
        """A snapshot of the counts; records on their way in count as pending."""
        return self._queue.metrics(restarts=self._restarts)

    def observe_batches(self, observer: Callable[[int, float, bool], None] | None) -> None:
        """Call ``observer(records, seconds, ok)`` after each batch is written (in the thread
        that wrote it, never the application's unless it writes synchronously); None stops.
        For self-metrics: it must be quick and must not log."""
        self._output.observer = observer

    @property
    def destinations(self) -> tuple[Destination, ...]:
        """Where batches go now."""
        return self._output.destinations

    def add_destination(self, destination: Destination) -> None:
        """Also write to ``destination``, from the next batch on."""
        with self._lock:
            self._output.set_destinations((*self._output.destinations, destination))

    def remove_destination(self, destination: Destination) -> None:
        """Stop writing to ``destination`` (from the next batch on); it is not closed."""
        with self._lock:
            output = self._output
            output.set_destinations(tuple(d for d in output.destinations if d is not destination))

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (idempotent; ``enqueue`` also starts it on first use)."""
        with self._lock:
            if self._state != _NEW:
                return
            self._set_mode(state=_RUNNING)
            if self._sync:
                _lifecycle.IDLE_CLOSER.add(self)  # no thread of our own: idle traces are closed from outside
                return
            self._thread = self._spawn(0.0)

    def _spawn(self, delay_s: float) -> threading.Thread:
        thread = threading.Thread(
            target=self._thread_main, args=(delay_s,), name="logxpy-writer", daemon=True
        )
        thread.start()
        return thread

    def stop(self, timeout: float | None = None) -> bool:
        """Write what is queued, close open trees and the destinations, stop the thread.

        Returns False when ``timeout`` (seconds) ran out first; then what is still pending
        stays counted as pending. Records handed over after this call are dropped
        (reason ``shutdown``). Idempotent. After the exit hook ran, the hook's deadline
        bounds this call too, so the whole exit takes at most one ``shutdown_timeout``.
        """
        bound = self._exit_deadline or _lifecycle.exit_deadline(self._config.shutdown_timeout_ms / 1000.0)
        if bound is not None:
            left = max(0.0, bound - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._state in (_STOPPING, _STOPPED):
                return self._state == _STOPPED
            self._set_mode(state=_STOPPING)
            self._closed = True
            thread = self._thread
        self._wake.set()
        self._stop_event.set()
        finished = True
        if thread is not None and thread.is_alive():
            thread.join(timeout)
            finished = not thread.is_alive()
        if not finished:
            with self._lock:  # (the thread's end decides under it too: one of us closes)
                if thread is not None and self._ended is thread:
                    finished = True  # it ended just now, with no close left to it: here
                else:
                    self._close_left = True  # the thread closes when it ends
        if finished:
            # The thread has ended (or there never was one): finish in this thread, unless a
            # caller's synchronous write holds the I/O lock past the deadline.
            left = -1 if deadline is None else max(0.0, deadline - time.monotonic())
            held = self._io_lock.held_here()
            if self._io_lock.acquire(timeout=left):
                try:
                    finished = self._close_locked(2, deadline, held)
                finally:
                    self._io_lock.release()
            else:
                finished = False
        with self._lock:
            self._set_mode(state=_STOPPED)
        if not finished:
            self._warn_pending("shutdown")
        if finished:
            # A producer that took its slot before stop() and appends after its last drain
            # finds the gate closed and sweeps; one that appended before this point is swept here.
            self._queue.sweep()
        return finished

    # -- producing ---------------------------------------------------------------------

    def enqueue(self, item: LineItem) -> bool:
        """Hand one encoded record over. Never raises.

        Returns True when the record was queued (or, in synchronous mode, written);
        False when it was dropped, which the metrics count with the reason.
        """
        if self._state is _NEW:
            self.start()
        if not SYNC_MODE.get():
            queued = self._queue.put(item)
            if queued is not None:
                return queued
        return self.write_now((item,))

    def discard(self, reason: DropReason | str, count: int = 1, spans: int = 0) -> None:
        """Count ``count`` records dropped before they reached the writer (e.g. by the
        processor), ``spans`` of them span lines."""
        self._queue.discard(reason, count, spans)

    def write_now(self, items: Sequence[LineItem]) -> bool:
        """Write ``items`` in this thread, after everything queued before them. Never raises.

        This is synchronous mode's path, and the fallback once the writer thread has
        crashed more than ``max_restarts`` times. After the exit hook it waits for the I/O
        lock until the exit's deadline at most (the writer thread may hold it inside a write
        that hangs), and writes nothing once that deadline has passed (a batch processor in
        front handing over batch after batch to a slow file): ``items`` are then dropped
        (``shutdown``), so one ``shutdown_timeout`` bounds the exit.
        """
        # (the exit began when it began, whichever exit step or provider shutdown came first)
        deadline = self._exit_deadline or _lifecycle.exit_deadline(self._config.shutdown_timeout_ms / 1000.0)
        if deadline is None:
            with self._io_lock:
                return self._write_now_locked(items)
        self._output.retry_until(deadline)  # (a write under way ends its retries by it too)
        left = deadline - time.monotonic()
        if left <= 0 or not self._io_lock.acquire(timeout=left):
            self._queue.discard(DropReason.SHUTDOWN, len(items), span_lines(items))
            return False
        try:
            return self._write_now_locked(items)
        finally:
            self._io_lock.release()

    def _write_now_locked(self, items: Sequence[LineItem]) -> bool:
        """:meth:`write_now`, ``_io_lock`` held."""
        if self._writing is not None:  # a signal handler of this thread, in the middle of a write
            if self._closed:
                self._queue.discard(DropReason.SHUTDOWN, len(items), span_lines(items))
                return False
            self._deferred.extend(items)
            return True
        self._writing = threading.get_ident()
        try:
            if self._closed:
                self._queue.discard(DropReason.SHUTDOWN, len(items), span_lines(items))
                return False
            self.start()  # on first use, as enqueue does
            self._drain_caller_locked()
            return self._write_locked(items)
        finally:
            try:
                self._write_deferred()
            finally:
                self._writing = None  # (here, not in a call: see _write_deferred)

    def _write_locked(self, items: Sequence[LineItem]) -> bool:
        """Number and write ``items`` (not queued) here; True if every one was written.
        ``_io_lock`` is held."""
        failed: list[object] = []
        ok = True
        while items:
            try:
                taken, written, spans = self._output.write(items, failed)
            except Exception as exc:  # noqa: BLE001 - never into the application
                raise_if_application_error(exc)  # (its own: the call did not finish, nothing counted)
                self._queue.discard(DropReason.INTERNAL_ERROR, len(items), span_lines(items))
                logger.error("logxpy-otel: could not number %d record(s)", len(items), exc_info=exc)
                return False
            self._queue.done(taken, written, failure=self._failure, queued=False, spans=spans)
            ok = ok and written == taken
            items = items[taken:]
        return ok

    @property
    def _failure(self) -> DropReason:
        """The reason a record no destination took is counted under."""
        return DropReason.IO_ERROR if self._output.destinations else DropReason.NO_DESTINATION

    # -- flushing ----------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record handed over before this call is written.

        Returns True only if all of them were written by at least one destination;
        False if one was lost on the way (even before this call: a loss no flush reported
        yet), or when ``timeout`` (seconds) ran out.
        A marker queued behind those records is answered when the writer reaches it, so
        the records that count are exactly those ahead of it in the queue's own order.
        """
        if self._queue.held_here():
            # A signal handler's flush, in this thread, while it held the queue's lock (a
            # producer waiting for a slot): the writer needs that lock to answer, and gets
            # it only once the handler returns. Waiting would only stall the thread.
            return False
        bound_s = self._config.shutdown_timeout_ms / 1000.0
        exit_deadline = self._exit_deadline or _lifecycle.exit_deadline(bound_s)
        if exit_deadline is not None:  # (the exit's one bound holds for a flush during it)
            left = max(0.0, exit_deadline - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        deadline = None if timeout is None else time.monotonic() + timeout
        marker = self._queue.add_marker()
        if self._writing == threading.get_ident():
            # A signal handler's flush, in the middle of a write of its own thread: what it
            # logged is written after that write, not before this returns.
            return False
        if not marker.done.is_set():
            self._wake.set()
            if (self._sync or self._thread is None) and self._io_lock.acquire(
                timeout=-1 if timeout is None else max(0.0, timeout)
            ):
                # (bounded: the thread may hold the lock in a write that hangs, a full FIFO)
                try:
                    self._drain_in_caller()
                finally:
                    self._io_lock.release()
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        result = marker.done.wait(wait) and not marker.lost
        return self._output.flush() and result

    # -- the writer thread -------------------------------------------------------------

    def _thread_main(self, delay_s: float) -> None:
        attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        if delay_s:
            self._stop_event.wait(delay_s)  # backoff after a crash; stop() cuts it short
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - restart, or fall back to sync writes
            self._crashed(exc)
        finally:
            with self._lock:
                self._ended = threading.current_thread()
                close, self._close_left = self._close_left, False
            if close:
                # stop() gave up waiting for this thread (a write that hung, or a signal
                # handler of the thread it interrupted): the close it left is done here.
                with self._io_lock:
                    self._close_locked(2, None)
                self._queue.sweep()

    def _loop(self) -> None:
        interval = self._interval_s
        queue = self._queue
        while True:
            if self._state is _RUNNING and not self._inflight and not queue.has_work:
                self._wake.wait(interval)
            self._wake.clear()
            with self._io_lock:
                self._drain_locked()
                self._output.close_idle()
            if self._state is not _RUNNING and queue.empty:
                return

    def _drain_locked(self) -> None:
        """Write everything queued, batch by batch (the queue answers flush markers on the
        way). ``_io_lock`` is held."""
        if self._inflight:
            self._process_inflight()  # a batch a crashed writer left behind
        # (into the batch in flight itself: an exception a signal handler raises in a
        # caller's drain leaves the records taken there, for the next drain)
        while self._queue.take_batch(self._inflight):
            self._process_inflight()

    def _drain_in_caller(self) -> None:
        """:meth:`_drain_locked` in a caller's thread (synchronous writes, flush, stop, exit,
        the fallback after crashes), where nothing may raise: a batch the numbering refuses
        (a fault of ours: the thread would retry it, and no thread will) is dropped and
        counted as ``internal_error``, and the drain goes on. ``_io_lock`` is held. Records
        a signal handler of this thread logs meanwhile are written after it."""
        if self._writing is not None:
            return  # (a signal handler's flush inside a write of this thread: that write drains)
        self._writing = threading.get_ident()
        try:
            self._drain_caller_locked()
        finally:
            try:
                self._write_deferred()
            finally:
                self._writing = None  # (here, not in a call: see _write_deferred)

    def _after_io(self) -> None:
        """``_io_lock`` let go for good by a thread: a close a signal handler asked for while
        the thread held it (at any step of any holder) is done now."""
        what, self._close_after_write = self._close_after_write, 0
        if what:
            with self._io_lock:
                self._close_locked(what, None)  # (never raises)

    def _close_locked(self, what: int, deadline: float | None, held: bool = False) -> bool:
        """Write what is queued, then close the open trees (``what`` 1) and the destinations
        (2). From a signal handler in the middle of a write of this thread (``held``: it
        held the lock already), put off until that write ends: False. ``_io_lock`` is held."""
        if held or self._writing == threading.get_ident():
            self._close_after_write = max(self._close_after_write, what)
            return False
        self._drain_in_caller()
        try:
            self._output.close_trees()
            if what == 2:
                self._output.close(deadline)
        except Exception as exc:  # noqa: BLE001 - a close in a caller's thread: never into the app
            raise_if_application_error(exc)
            logger.error("logxpy-otel: closing the open trees or the files failed", exc_info=True)
            return False
        return True

    def _write_deferred(self) -> None:
        """The end of a write in a caller's thread: the records signal handlers of this
        thread logged during it are written now (still as part of the write: a handler that
        runs during this defers again, and is written here too). A close a handler asked for
        is done as the lock is let go (``_after_io``). The write's mark (``_writing``) is
        cleared by the caller's own ``finally``, never in a function it calls: an interrupt
        as that function starts would leave it set, and every later record of the thread
        deferred behind a write that never ends."""
        while self._deferred:
            deferred, self._deferred = self._deferred, []
            self._write_locked(deferred)

    def _drain_caller_locked(self) -> None:
        while True:
            try:
                self._drain_locked()
                return
            except Exception as exc:  # noqa: BLE001 - never into the application
                raise_if_application_error(exc)  # (its own: the batch stays in flight, retried)
                count = len(self._inflight)
                spans = (0, span_lines(self._inflight))
                self._inflight = []
                if count:
                    self._queue.done(count, 0, failure=DropReason.INTERNAL_ERROR, spans=spans)
                logger.error("logxpy-otel: could not write %d record(s); dropped", count, exc_info=exc)
                if not count:
                    return  # not a batch's fault: the next drain tries again

    def _process_inflight(self) -> None:
        """Number and write the batch in flight, write by write, accounting for each.
        ``_io_lock`` is held.

        If numbering raises, what is left of the batch stays in flight (holding its slots)
        and the restarted writer retries it: what was written has left it, so nothing is
        written twice.
        """
        failed: list[object] = []
        while self._inflight:
            batch = self._inflight
            taken, written, spans = self._output.write(batch, failed)
            self._inflight = batch[taken:]
            self._queue.done(taken, written, failure=self._failure, spans=spans)

    def _destination_failed(self, exc: BaseException) -> None:
        self._queue.error()
        self._error_report.note(1, _describe(exc))

    def _crashed(self, exc: BaseException) -> None:
        """The writer thread died: restart it with backoff, or fall back to synchronous writes."""
        with self._lock:
            self._restarts += 1
            restarts = self._restarts
            stopping = self._state is not _RUNNING
            fallback = restarts > self._config.max_restarts
            if fallback:
                self._set_mode(sync=True)  # producers waiting for a slot write themselves
                _lifecycle.IDLE_CLOSER.add(self)
        if stopping:
            return
        if fallback:
            logger.error(
                "logxpy-otel: writer thread crashed %d times; writing synchronously from now on",
                restarts,
                exc_info=exc,
            )
            with self._io_lock:
                self._drain_in_caller()
            return
        delay = min(_BACKOFF_FIRST_S * (2 ** (restarts - 1)), _BACKOFF_MAX_S)
        logger.error(
            "logxpy-otel: writer thread crashed (%d of %d); restarting in %.1f s",
            restarts,
            self._config.max_restarts,
            delay,
            exc_info=exc,
        )
        try:
            self._thread = self._spawn(delay)
        except RuntimeError:  # interpreter shutting down: no new threads
            with self._lock:
                self._set_mode(sync=True)

    # -- process hooks -----------------------------------------------------------------

    def _close_idle_from_outside(self) -> bool:
        """For the idle closer's thread: close idle traces unless a write is under way
        (then next time). False once this writer is stopped (it need not be called again)."""
        if self._state is _STOPPED:
            return False
        if self._io_lock.acquire(blocking=False):
            try:
                if self._state is not _STOPPED:
                    self._output.close_idle()
            finally:
                self._io_lock.release()
        return True

    def _at_exit(self) -> None:
        """At interpreter exit: flush (bounded), close open trees, then write synchronously.

        The writer is not stopped: an SDK provider or processor shut down by a later exit
        handler may still hand records over, and they are written in the caller's thread.
        """
        before = self.before_exit_close
        if self._state is not _RUNNING and not (self._state is _NEW and before is not None):
            return  # (a writer never used, as in a forked child, may still be handed records)
        timeout = self._config.shutdown_timeout_ms / 1000.0
        deadline = _lifecycle.exit_deadline(timeout) or time.monotonic() + timeout
        self._exit_deadline = deadline
        self._output.retry_until(deadline)
        if self._state is _RUNNING:
            self.flush(max(0.0, deadline - time.monotonic()))
            with self._lock:
                self._set_mode(sync=True)
        if before is not None:
            try:
                before(deadline)
            except Exception:  # noqa: BLE001 - the trees are closed all the same
                logger.warning("logxpy-otel: handing over held records at exit failed", exc_info=True)
        if self._state is not _RUNNING:
            return  # (nothing was handed over)
        with self._lock:
            self._set_mode(sync=True)
        held = self._io_lock.held_here()
        if self._io_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            try:
                self._close_locked(1, deadline, held)
            finally:
                self._io_lock.release()
        self._warn_pending("the exit")

    def _warn_pending(self, what: str) -> None:
        """Say how many records ``what`` left unwritten when its time ran out: the thread
        may still write them, but a process that ends now loses them (never silently)."""
        pending = self._queue.pending
        if pending:
            try:
                logger.warning(
                    "logxpy-otel: %s ran out of time (shutdown_timeout=%d ms) with %d record(s) "
                    "still pending: lost if the process ends now",
                    what,
                    self._config.shutdown_timeout_ms,
                    pending,
                )
            except Exception:  # noqa: BLE001 - a handler or filter of the app's that raises:
                pass  # never out of a shutdown or the exit hook (the other writers' exit steps)

    def _before_fork(self) -> None:
        """Just before a fork: every record comes through the queue's ``put`` until it is
        done (the C lane closed), which tells the child's records from the parent's (see
        :meth:`_child_after_fork`). No lock is taken here (a list's append is atomic)."""
        self._queue.forks.append(None)
        self._lane[0] = None

    def _after_fork_in_parent(self) -> None:
        """The fork is done: the lane opens again once no other thread's fork is under way
        (as :meth:`_set_mode` would set it, under the same lock)."""
        with self._lock:
            forks = self._queue.forks
            if forks:
                forks.pop()
            self._set_mode()

    def _child_after_fork(self) -> None:
        """In a forked child: forget the parent's queue, locks and thread; start afresh on use.
        Records logged here before this ran (an at-fork hook registered before our import)
        are this process's: queued again, in the new queue."""
        born = self._queue.born_here()
        self._sync = not self._config.async_enabled
        self._reset_state()  # sets the lane
        for item in born:
            self.enqueue(item)


def _describe(exc: BaseException) -> str:
    """An error for our diagnostics: its type and, for OS errors, the errno text. Never the
    message of an arbitrary destination's exception, which could quote record content."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}"
    return type(exc).__name__
