"""The policy-aware writer: a truly bounded queue, one writer thread, batched appends.

(``Async*`` names a writer *thread*, as in logxpy's async writer; nothing here is asyncio.)

Producers call :meth:`AsyncWriter.enqueue` with already-encoded :data:`LineItem` s. The
queue never holds more than ``max_queue_size`` records; a full queue is handled by the
:class:`QueuePolicy`, and every record is either written or counted as dropped with a
reason. The ``logxpy-writer`` thread takes up to ``batch_size`` records at a time,
numbers them (``_trees``), and hands each destination one ``bytes`` per batch.

Three locks, always taken in this order when nested: ``_io_lock`` (numbering and
writing; held by the writer thread or a synchronous caller), then ``_lock`` (queue and
counters; held only for a few operations), then a reporter's own lock. All three are
re-entrant, so that a signal handler that logs cannot deadlock the thread it interrupts.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat, starmap
from queue import Empty, SimpleQueue
from types import MappingProxyType
from typing import Any, Final, final

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, set_value

from . import _lifecycle
from ._config import SYNC_MODE, AsyncConfig, AsyncMetrics, sync_mode
from ._destinations import (
    END_LINE_MAX,
    ClosableDestination,
    Destination,
    FlushableDestination,
    PartialWriteError,
    RotatingDestination,
    fit,
    records_in,
    room_of,
    rotation_due,
)
from ._diagnostics import RateLimitedReporter, logger
from ._format import LineItem
from ._policies import DropReason, QueuePolicy
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


@final
class _FlushMarker:
    """A waiting :meth:`AsyncWriter.flush`, queued behind the records handed over before it.

    The writer answers it (``done``) when it reaches it in queue order: every record before
    it is then written or dropped. ``lost`` says one of them was dropped.
    """

    __slots__ = ("done", "lost")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.lost = False


_NEW, _RUNNING, _STOPPING, _STOPPED = "new", "running", "stopping", "stopped"
#: (slots.pop, queue.append, queue, batch_size, wake): see AsyncWriter._set_mode.
_Lane = tuple[Callable[[], None], Callable[[Any], None], deque[Any], int, Callable[[], None]]
_BACKOFF_FIRST_S: Final = 0.1
_BACKOFF_MAX_S: Final = 30.0


class AsyncWriter:
    """Writes line items to destinations from one background thread (``logxpy-writer``).

    Thread-safe. The bound is a pool of ``max_queue_size`` slots (a ``deque`` of tokens:
    ``pop`` and ``extend`` are single C calls): a record takes a slot before it is queued and gives it
    back once it is written or dropped, so the queue, the batch in flight and records on
    their way in never add up to more than ``max_queue_size``. Taking a slot and
    appending to the queue are single C calls, atomic under the GIL: the common path
    takes no lock, which keeps many producer threads from queueing on one
    (PERF-NOTES: a lock per record is 2-3 times slower with 4 threads).
    """

    def __init__(
        self,
        destinations: Iterable[Destination] = (),
        config: AsyncConfig | None = None,
    ) -> None:
        self._config = config = config if config is not None else AsyncConfig()
        self._set_destinations(tuple(destinations))
        self._max = config.max_queue_size
        self._batch_size = config.batch_size
        self._interval_s = config.flush_interval_ms / 1000.0
        self._policy = config.queue_policy
        self._sync = not config.async_enabled
        report_s = config.report_interval_ms / 1000.0
        self._drop_report = RateLimitedReporter(
            "logxpy-otel: queue full, dropped %d record(s) since the last warning%s", interval_s=report_s
        )
        self._error_report = RateLimitedReporter(
            "logxpy-otel: %d destination error(s) since the last report; last: %s", interval_s=report_s
        )
        self._closed = False
        #: The producers' lane, in a one-item list that the C on_emit holds (see _set_mode).
        self._lane: list[_Lane | None] = [None]
        self._batch_observer: Callable[[int, float, bool], None] | None = None
        #: Set by the exit hook: stop() then ends by this time too (one bound for the whole exit).
        self._exit_deadline: float | None = None
        self._reset_state()
        _lifecycle.register(self)

    # -- state -------------------------------------------------------------------------

    def _reset_state(self) -> None:
        """Fresh locks, queue, slots, counters and trees: at construction and in a forked child."""
        config = self._config
        # Re-entrant: a signal handler that logs can interrupt this thread while it holds
        # a lock (only the slow paths take them; the common enqueue takes none).
        self._lock = threading.RLock()
        self._not_full = threading.Condition(self._lock)
        self._io_lock = threading.RLock()
        self._wake = _Wake()
        self._stop_event = threading.Event()
        #: Line items in hand-over order, and the flush markers between them.
        self._queue: deque[LineItem | _FlushMarker] = deque()
        self._slots: deque[None] = deque(repeat(None, self._max))
        self._inflight: list[LineItem] = []
        #: Flush markers in the queue, not yet answered.
        self._markers: set[_FlushMarker] = set()
        self._block_waiters = 0
        self._written = 0
        self._dropped: dict[str, int] = {}
        self._errors = 0
        self._max_depth = 0
        self._batches = 0
        self._restarts = 0
        self._thread: threading.Thread | None = None
        self._trees = TreeNumberer(
            idle_timeout_s=config.trace_idle_ms / 1000.0, max_open=config.max_open_traces
        )
        self._drop_report.reset()
        self._error_report.reset()
        self._set_mode(state=_STOPPED if self._closed else _NEW)

    def _set_mode(self, *, state: str | None = None, sync: bool | None = None) -> None:
        """Set the run state and/or synchronous mode, and with them the producers' lane.

        ``_lane[0]`` is what the C ``on_emit`` (``_speedups.Emitter``) needs to queue a record
        the way :meth:`enqueue` does when the writer runs asynchronously: take a slot,
        append, wake the writer at ``batch_size``. It is None in every other state, and
        then records go through :meth:`enqueue`. Every change of ``_state`` or ``_sync``
        goes through here, so the lane is never stale.
        """
        if state is not None:
            self._state = state
        if sync is not None:
            self._sync = sync
        running = self._state is _RUNNING and not self._sync
        self._lane[0] = (
            (self._slots.pop, self._queue.append, self._queue, self._batch_size, self._wake.set)
            if running
            else None
        )

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
        """A snapshot taken under the writer's lock; records on their way in count as pending."""
        with self._lock:
            depth = len(self._queue) - len(self._markers)
            held = self._max - len(self._slots)
            dropped = sum(self._dropped.values())
            return AsyncMetrics(
                enqueued=self._written + dropped + held,
                written=self._written,
                dropped=dropped,
                dropped_by_reason=MappingProxyType(dict(self._dropped)),
                errors=self._errors,
                queue_depth=depth,
                max_queue_depth=max(self._max_depth, depth),
                pending=held,
                batches=self._batches,
                restarts=self._restarts,
            )

    def observe_batches(self, observer: Callable[[int, float, bool], None] | None) -> None:
        """Call ``observer(records, seconds, ok)`` after each batch is written (in the thread
        that wrote it, never the application's unless it writes synchronously); None stops.
        For self-metrics: it must be quick and must not log."""
        self._batch_observer = observer

    @property
    def destinations(self) -> tuple[Destination, ...]:
        """Where batches go now."""
        return self._destinations

    def add_destination(self, destination: Destination) -> None:
        """Also write to ``destination``, from the next batch on."""
        with self._lock:
            self._set_destinations((*self._destinations, destination))

    def remove_destination(self, destination: Destination) -> None:
        """Stop writing to ``destination`` (from the next batch on); it is not closed."""
        with self._lock:
            self._set_destinations(tuple(d for d in self._destinations if d is not destination))

    def _set_destinations(self, destinations: tuple[Destination, ...]) -> None:
        """The destinations, and which of the optional methods each implements (checked once)."""
        self._destinations = destinations
        self._rotating: tuple[RotatingDestination, ...] = tuple(
            d for d in destinations if isinstance(d, RotatingDestination)
        )
        self._flushable = tuple(d for d in destinations if isinstance(d, FlushableDestination))
        self._closable = tuple(d for d in destinations if isinstance(d, ClosableDestination))

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
        if self._exit_deadline is not None:
            left = max(0.0, self._exit_deadline - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._state in (_STOPPING, _STOPPED):
                return self._state == _STOPPED
            self._set_mode(state=_STOPPING)
            self._closed = True
            self._not_full.notify_all()
            thread = self._thread
        self._wake.set()
        self._stop_event.set()
        finished = True
        if thread is not None and thread.is_alive():
            thread.join(timeout)
            finished = not thread.is_alive()
        if finished:
            # The thread has ended (or there never was one): finish in this thread, unless a
            # caller's synchronous write holds the I/O lock past the deadline.
            left = -1 if deadline is None else max(0.0, deadline - time.monotonic())
            if self._io_lock.acquire(timeout=left):
                try:
                    self._drain_locked()
                    self._close_trees_locked()
                    self._close_destinations()
                finally:
                    self._io_lock.release()
            else:
                finished = False
        with self._lock:
            self._set_mode(state=_STOPPED)
        if finished:
            # A producer that took its slot before stop() and appends after its last drain
            # finds _STOPPED and sweeps; one that appended before this point is swept here.
            self._sweep_after_stop()
        return finished

    # -- producing ---------------------------------------------------------------------

    def enqueue(self, item: LineItem) -> bool:
        """Hand one encoded record over. Never raises.

        Returns True when the record was queued (or, in synchronous mode, written);
        False when it was dropped, which the metrics count with the reason.
        """
        if self._sync or SYNC_MODE.get():
            return self.write_now((item,))
        state = self._state
        if state is not _RUNNING:
            if state is not _NEW:
                return self._refuse_after_stop(1)
            self.start()
        try:
            self._slots.pop()
        except IndexError:
            return self._when_full(item)
        queue = self._queue
        queue.append(item)
        # >=, not ==: another thread can append between these two lines (the C on_emit
        # takes the exact crossing; this path may see the queue past it). set() is cheap
        # when a wake-up is already pending.
        if len(queue) >= self._batch_size:
            self._wake.set()
        if self._state is not _RUNNING:
            self._sweep_after_stop()
        return True

    def _when_full(self, item: LineItem) -> bool:
        """No free slot: apply the policy. Runs with no lock held; takes ``_lock`` as needed."""
        slots = self._slots
        if self._policy is QueuePolicy.BLOCK:
            with self._lock:
                self._block_waiters += 1
                try:
                    while True:
                        if self._state is not _RUNNING:
                            return self._refuse_after_stop_locked(1)
                        if self._sync:
                            break
                        try:
                            slots.pop()
                        except IndexError:
                            self._wake.set()
                            self._not_full.wait()
                            continue
                        self._queue.append(item)
                        return True
                finally:
                    self._block_waiters -= 1
            return self.write_now((item,))  # the writer thread is gone for good
        # A dropping policy: first let the writer have the GIL once, so that a busy
        # producer does not starve it (PERF-NOTES: the GIL decides who drains).
        self._wake.set()
        time.sleep(0)
        try:
            slots.pop()
        except IndexError:
            pass
        else:
            self._queue.append(item)
            if self._state is not _RUNNING:  # stop() may have run in the yield
                self._sweep_after_stop()
            return True
        with self._lock:
            if self._state is not _RUNNING:
                return self._refuse_after_stop_locked(1)
            # drop_oldest: the oldest *queued* record gives its slot to the new one. If every
            # slot is held by the batch being written (batch_size == max_queue_size), there
            # is nothing queued to evict, and the new record is refused like drop_newest.
            if self._policy is QueuePolicy.DROP_OLDEST and self._evict_oldest_locked():
                self._queue.append(item)
                return True
            self._count_locked(DropReason.QUEUE_FULL, 1)
        if self._policy is QueuePolicy.WARN:
            self._drop_report.note(1, f" (max_queue_size={self._max})")
        return False

    def _count_locked(self, reason: str, count: int) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + count

    def _refuse_after_stop(self, count: int) -> bool:
        with self._lock:
            return self._refuse_after_stop_locked(count)

    def _refuse_after_stop_locked(self, count: int) -> bool:
        self._count_locked(DropReason.SHUTDOWN, count)
        return False

    def _evict_oldest_locked(self) -> bool:
        """drop_oldest: drop the oldest queued record (not a flush marker) and count it."""
        queue = self._queue
        ahead: list[_FlushMarker] = []  # flushes answered before that record: not its
        while queue and type(queue[0]) is _FlushMarker:
            ahead.append(queue.popleft())  # type: ignore[arg-type]
        evicted = bool(queue)
        if evicted:
            queue.popleft()
            for marker in self._markers.difference(ahead):
                marker.lost = True
            self._count_locked(DropReason.EVICTED, 1)
        queue.extendleft(reversed(ahead))
        return evicted

    def _sweep_after_stop(self) -> None:
        """A record raced into the queue as stop() finished: drop what stop() can no longer write."""
        with self._lock:
            if self._state is not _STOPPED or not self._queue:
                return  # stop() has not drained yet; it will take the record
            count = sum(1 for entry in self._queue if type(entry) is not _FlushMarker)
            self._queue.clear()
            self._release_locked(count)
            self._count_locked(DropReason.SHUTDOWN, count)
            self._answer_all_locked(lost=bool(count))

    def discard(self, reason: DropReason | str, count: int = 1) -> None:
        """Count ``count`` records dropped before they reached the writer (e.g. by the processor)."""
        with self._lock:
            self._count_locked(str(reason), count)

    def _answer_all_locked(self, *, lost: bool) -> None:
        """Answer every waiting flush (records before them are gone or lost: no writer left)."""
        for marker in self._markers:
            marker.lost = marker.lost or lost
            marker.done.set()
        self._markers.clear()

    def _release_locked(self, count: int) -> None:
        """``count`` slot-holding records are done: give their slots back, wake who waits."""
        self._slots.extend(repeat(None, count))
        if self._block_waiters:
            self._not_full.notify_all()

    def write_now(self, items: Sequence[LineItem]) -> bool:
        """Write ``items`` in this thread, after everything queued before them. Never raises.

        This is synchronous mode's path, and the fallback once the writer thread has
        crashed more than ``max_restarts`` times.
        """
        with self._io_lock:
            if self._closed:
                return self._refuse_after_stop(len(items))
            with self._lock:
                if self._state is _NEW:
                    self._set_mode(state=_RUNNING)
            self._drain_locked()
            failed: list[object] = []
            ok = True
            while items:
                try:
                    taken, written = self._write_batch(items, failed)
                except Exception as exc:  # noqa: BLE001 - never into the application
                    with self._lock:
                        self._count_locked(DropReason.INTERNAL_ERROR, len(items))
                    logger.error("logxpy-otel: could not number %d record(s)", len(items), exc_info=exc)
                    return False
                with self._lock:
                    self._account_locked(taken, written, queued=False)
                ok = ok and written == taken
                items = items[taken:]
            return ok

    # -- flushing ----------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record handed over before this call is written.

        Returns True only if all of them were written by at least one destination;
        False if one was dropped on the way, or when ``timeout`` (seconds) ran out.
        A marker queued behind those records is answered when the writer reaches it, so
        the records that count are exactly those ahead of it in the queue's own order.
        """
        marker = None
        with self._lock:
            if len(self._slots) < self._max:  # records queued, being written, or on their way in
                if self._state is _STOPPED and not self.is_running:
                    return False  # stop() timed out on them: they can no longer be written
                marker = _FlushMarker()
                self._markers.add(marker)
                self._queue.append(marker)
        result = True
        if marker is not None:
            self._wake.set()
            if self._sync or self._thread is None:
                with self._io_lock:
                    self._drain_locked()
            result = marker.done.wait(timeout) and not marker.lost
        return self._flush_destinations() and result

    def _flush_destinations(self) -> bool:
        ok = True
        for destination in self._flushable:
            try:
                destination.flush()
            except Exception as exc:  # noqa: BLE001 - counted and reported, never raised
                ok = False
                self._destination_failed(exc)
        return ok

    # -- the writer thread -------------------------------------------------------------

    def _thread_main(self, delay_s: float) -> None:
        attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        if delay_s:
            self._stop_event.wait(delay_s)  # backoff after a crash; stop() cuts it short
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - restart, or fall back to sync writes
            self._crashed(exc)

    def _loop(self) -> None:
        interval = self._interval_s
        while True:
            idle = len(self._queue) < self._batch_size and not self._markers
            if idle and self._state is _RUNNING and not self._inflight:
                self._wake.wait(interval)
            self._wake.clear()
            with self._io_lock:
                self._drain_locked()
                out: list[bytes] = []
                self._trees.close_idle(out)
                if out:
                    self._deliver(b"".join(out))
            if self._state is not _RUNNING and not self._queue:
                return

    def _drain_locked(self) -> None:
        """Write everything queued, batch by batch, answering flush markers on the way.
        ``_io_lock`` is held."""
        if self._inflight:
            self._process_inflight()  # a batch a crashed writer left behind
        queue = self._queue
        while True:
            with self._lock:
                depth = len(queue)
                records = depth - len(self._markers)
                if records > self._max_depth:
                    self._max_depth = records  # depth only grows between drains: this is its peak
                count = min(depth, self._batch_size)
                if not count:
                    return
                # popleft called count times from C (starmap), not from a Python loop.
                batch = list(starmap(queue.popleft, repeat((), count)))
                if self._markers:
                    batch = self._split_at_marker_locked(batch)
                    if not batch:
                        continue
                self._inflight = batch  # type: ignore[assignment]
            self._process_inflight()

    def _split_at_marker_locked(self, batch: list[Any]) -> list[Any]:
        """The records of ``batch`` before its first flush marker; the rest goes back to the
        queue's front. A marker first in line is answered: all before it is done."""
        index = next((i for i, entry in enumerate(batch) if type(entry) is _FlushMarker), None)
        if index is None:
            return batch
        entry = batch[index]
        if index == 0:
            self._markers.discard(entry)
            entry.done.set()
            self._queue.extendleft(reversed(batch[1:]))
            return []
        self._queue.extendleft(reversed(batch[index:]))
        return batch[:index]

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
            taken, written = self._write_batch(batch, failed)
            with self._lock:
                self._account_locked(taken, written)
                self._inflight = batch[taken:]
                self._release_locked(taken)

    def _account_locked(self, count: int, written: int, *, queued: bool = True) -> None:
        """Count one write of ``count`` records, the first ``written`` of which reached a
        destination; the rest are dropped, and a queued record's loss is also every
        waiting flush's (they all stand behind it)."""
        self._batches += 1
        self._written += written
        if written == count:
            return
        reason = DropReason.IO_ERROR if self._destinations else DropReason.NO_DESTINATION
        self._count_locked(reason, count - written)
        if queued:
            for marker in self._markers:
                marker.lost = True

    def _write_batch(self, items: Sequence[LineItem], failed: list[object]) -> tuple[int, int]:
        """Write as many of ``items`` (from the first) as one write to each file can take.

        First rotate the files that are due, or that the next record would take past
        ``max_bytes`` (``room()``), closing open traces first: each file is self-contained.
        Then number as many records as every file has room for, keeping room for the end
        lines of open traces (at least one record: a line longer than ``max_bytes`` goes
        alone into a file), and write them. ``_io_lock`` is held. Destinations in
        ``failed`` (they raised earlier in this batch) are skipped; one that raises is
        added. Returns how many items were taken, and how many of those, from the first,
        reached a destination.
        """
        reserve = self._trees.open_traces * END_LINE_MAX
        live = [d for d in self._rotating if d not in failed]
        due = [d for d in live if rotation_due(d) or not fit(items[:1], room_of(d, reserve))]
        if due:
            self._close_trees_locked(failed)  # each file is self-contained: traces end in it
            for destination in due:
                try:
                    destination.rotate()
                except Exception as exc:  # noqa: BLE001 - counted; the write below reports too
                    self._destination_failed(exc)
            reserve = self._trees.open_traces * END_LINE_MAX
        rooms = [room for d in live if (room := room_of(d, reserve)) is not None]
        count = max(1, fit(items, min(rooms))) if rooms else len(items)
        out: list[bytes] = []
        self._trees.number(items[:count] if count < len(items) else items, out)
        data = b"".join(out)
        observer = self._batch_observer
        started = time.perf_counter() if observer is not None else 0.0
        reached = self._deliver(data, failed)
        written = count if reached is None else records_in(data, reached)
        if observer is not None:
            try:
                observer(count, time.perf_counter() - started, written == count)
            except Exception:  # noqa: BLE001 - an observer never affects the writes
                pass
        return count, written

    def _close_trees_locked(self, failed: list[object] | None = None) -> None:
        """Write the end lines of every open trace. ``_io_lock`` is held."""
        out: list[bytes] = []
        self._trees.close_all(out)
        if out:
            self._deliver(b"".join(out), failed)

    def _deliver(self, data: bytes, failed: list[object] | None = None) -> int | None:
        """Give ``data`` to every destination but those in ``failed`` (which collects the
        ones that raise). None if one took it all; else how many of its lines, from the
        first, reached one (whole: a :class:`PartialWriteError` counts them)."""
        reached: int | None = 0
        for destination in self._destinations:
            if failed is not None and destination in failed:
                continue
            try:
                destination(data)
                reached = None
            except Exception as exc:  # noqa: BLE001 - one destination must not affect another
                if reached is not None and isinstance(exc, PartialWriteError):
                    reached = max(reached, exc.lines)
                if failed is not None:
                    failed.append(destination)
                self._destination_failed(exc)
        return reached

    def _destination_failed(self, exc: BaseException) -> None:
        with self._lock:
            self._errors += 1
        self._error_report.note(1, _describe(exc))

    def _close_destinations(self) -> None:
        for destination in self._closable:
            try:
                destination.close()
            except Exception as exc:  # noqa: BLE001
                self._destination_failed(exc)

    def _crashed(self, exc: BaseException) -> None:
        """The writer thread died: restart it with backoff, or fall back to synchronous writes."""
        with self._lock:
            self._restarts += 1
            restarts = self._restarts
            stopping = self._state is not _RUNNING
            fallback = restarts > self._config.max_restarts
            if fallback:
                self._set_mode(sync=True)
                self._not_full.notify_all()
                _lifecycle.IDLE_CLOSER.add(self)
        if stopping:
            return
        if fallback:
            logger.error(
                "logxpy-otel: writer thread crashed %d times; writing synchronously from now on",
                restarts,
                exc_info=exc,
            )
            try:
                with self._io_lock:
                    self._drain_locked()
            except Exception:  # noqa: BLE001 - callers' write_now will retry
                logger.exception("logxpy-otel: synchronous fallback drain failed")
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
                    out: list[bytes] = []
                    self._trees.close_idle(out)
                    if out:
                        self._deliver(b"".join(out))
            finally:
                self._io_lock.release()
        return True

    def _at_exit(self) -> None:
        """At interpreter exit: flush (bounded), close open trees, then write synchronously.

        The writer is not stopped: an SDK provider or processor shut down by a later exit
        handler may still hand records over, and they are written in the caller's thread.
        """
        if self._state is not _RUNNING:
            return
        timeout = self._config.shutdown_timeout_ms / 1000.0
        deadline = self._exit_deadline = time.monotonic() + timeout
        self.flush(timeout)
        with self._lock:
            self._set_mode(sync=True)
            self._not_full.notify_all()
        if self._io_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            try:
                self._drain_locked()
                self._close_trees_locked()
            finally:
                self._io_lock.release()

    def _child_after_fork(self) -> None:
        """In a forked child: forget the parent's queue, locks and thread; start afresh on use."""
        self._sync = not self._config.async_enabled
        self._reset_state()  # sets the lane


def _describe(exc: BaseException) -> str:
    """An error for our diagnostics: its type and, for OS errors, the errno text. Never the
    message of an arbitrary destination's exception, which could quote record content."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}"
    return type(exc).__name__
