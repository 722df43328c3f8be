"""The bounded queue between producers and the writer thread: slots, policy, flush markers, counts.

One concern: what happens to a record from the moment it is handed over until it is
written or dropped. Who serves the queue (a thread, a synchronous caller) and when is
:class:`~logxpy_otel._writer.AsyncWriter`'s concern; it tells the queue through its
:class:`Gate`.

The bound is a pool of ``max_size`` slots (a ``deque`` of tokens): a record takes a slot
before it is queued and gives it back once it is written or dropped, so the queue, the
batch in flight and records on their way in never add up to more than ``max_size``.
Taking a slot and appending are one C call (:meth:`RecordQueue._take_slot_and_append`),
atomic under the GIL: the common path takes no lock, which keeps many producer threads
from queueing on one (a lock per record is 2-3 times slower with 4 threads), and no
``KeyboardInterrupt`` (nor anything else a signal handler raises) can land between the
two and leave a slot taken by no record, which would shrink the bound for good.
"""

from __future__ import annotations

import enum
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from itertools import compress, islice, repeat, starmap
from operator import countOf, itemgetter
from queue import Empty, SimpleQueue
from types import MappingProxyType
from typing import Any, Final, NamedTuple, final

from ._config import AsyncMetrics
from ._diagnostics import RateLimitedReporter
from ._format import LineItem
from ._policies import DropReason, QueuePolicy

__all__ = ["Answer", "FlushMarker", "Gate", "Lane", "RecordQueue", "span_lines"]


def span_lines(entries: Sequence[Any]) -> int:
    """How many of ``entries`` (line items) are span start or end lines (they have a role).
    (Counted in C: the writer asks per batch, with a span processor.)"""
    return len(entries) - countOf(map(_ROLE, entries), None)


_ROLE: Final = itemgetter(6)


#: Each drop reason's member, by its value (the counts' keys are members, however named).
_REASONS: Final[dict[str, str]] = {str(reason): reason for reason in DropReason}

#: A free slot in the pool (true: ``compress`` keeps what a slot is taken for).
_SLOT: Final = True
#: What ``slots.pop`` never returns: the end mark of ``iter(slots.pop, _NO_SLOT)``.
_NO_SLOT: Final = False


class Gate(enum.Enum):
    """What a record handed to :meth:`RecordQueue.put` meets."""

    #: Queued for the writer thread (the full queue's policy applies).
    OPEN = "open"
    #: Not queued: the caller writes it itself (synchronous mode, no thread, or not started).
    DIRECT = "direct"
    #: Refused (``shutdown``); what is queued will still be written.
    CLOSING = "closing"
    #: Refused; no writer will come again, so what races in is dropped (``shutdown``).
    CLOSED = "closed"


class Lane(NamedTuple):
    """The queue's common path, for the C ``on_emit`` (``_speedups.Emitter``): take a slot,
    append, wake the writer when the queue reaches ``batch_size``. The C code reads these
    fields by position and declares their names in ``_speedups.LANE_FIELDS``; the
    processor uses it only when they match ``Lane._fields``."""

    take_slot: Callable[[], object]
    append: Callable[[Any], None]
    items: deque[Any]
    batch_size: int
    wake: Callable[[], None]


@final
class Answer:
    """A one-shot event (``set`` once, ``wait`` for it) that a signal handler cannot wedge.

    ``threading.Event.set`` takes the lock that ``Event.wait`` holds while it waits: a
    handler that runs inside that wait, in the waiting thread, and then waits for the
    thread that would ``set`` it (a full queue), waits for good. Here ``set`` is one
    C-level ``SimpleQueue.put``, which never waits on a lock.
    """

    __slots__ = ("_answered", "_q")

    def __init__(self) -> None:
        self._q: SimpleQueue[None] = SimpleQueue()
        self._answered = False

    def set(self) -> None:
        if not self._answered:
            self._answered = True
            self._q.put(None)

    def is_set(self) -> bool:
        return self._answered

    def wait(self, timeout: float | None = None) -> bool:
        """True once answered (``timeout`` seconds at most; None: for as long as it takes)."""
        if self._answered:
            return True
        if timeout is not None:
            # (as Event.wait takes them: at once for <= 0 or NaN; without end past what a
            # lock can wait, where SimpleQueue.get would raise OverflowError)
            timeout = 0.0 if math.isnan(timeout) else max(0.0, timeout)
            if timeout > threading.TIMEOUT_MAX:
                timeout = None
        try:
            self._q.get(timeout=timeout)
        except Empty:
            return self._answered
        self._q.put(None)  # (answered for good: another waiter, or a second wait, sees it too)
        return True


@final
class FlushMarker:
    """A waiting flush, queued behind the records handed over before it.

    The writer answers it (``done``) when it reaches it in queue order: every record before
    it is then written or dropped. ``lost`` says one of them was dropped.
    """

    __slots__ = ("done", "lost")

    def __init__(self, *, answered: bool = False, lost: bool = False) -> None:
        self.done = Answer()
        self.lost = lost
        if answered:
            self.done.set()


class RecordQueue:
    """Line items (and flush markers between them) in hand-over order, at most ``max_size``
    records, with the policy for a full queue and the counts every record ends in.

    Thread-safe. Its lock guards the counters, the markers and the slow paths; the common
    :meth:`put` takes none. ``wake`` is called when the writer has work.
    """

    def __init__(
        self,
        *,
        max_size: int,
        batch_size: int,
        policy: QueuePolicy,
        wake: Callable[[], None],
        drop_report: RateLimitedReporter,
    ) -> None:
        self.max_size = max_size
        self.batch_size = batch_size
        self._policy = policy
        self._wake = wake
        self._drop_report = drop_report
        # Re-entrant: a signal handler that logs can interrupt this thread while it holds
        # the lock (only the slow paths take it; the common put takes none).
        self._lock = threading.RLock()
        self._not_full = threading.Condition(self._lock)
        self._gate = Gate.DIRECT
        self._items: deque[LineItem | FlushMarker] = deque()
        self._slots: deque[bool] = deque(repeat(_SLOT, max_size))
        #: Flush markers in the queue, not yet answered.
        self._markers: set[FlushMarker] = set()
        #: Producers waiting in ``block`` for a slot (what tests and metrics read: a
        #: ``KeyboardInterrupt`` between the wait's steps may leave it off by one, so slots
        #: given back always wake the waiters, whatever it says).
        self.block_waiters = 0
        self._written = 0
        self._dropped: dict[str, int] = {}
        #: Of those, span start and end lines (a span processor shares the writer).
        self._span_written = 0
        self._span_dropped: dict[str, int] = {}
        #: Whether a record taken in (queued, or written synchronously) was lost since the
        #: last flush marker was made, and no waiting flush reported it: the next one does.
        self._lost_unflushed = False
        self._errors = 0
        self._max_depth = 0
        self._writes = 0
        #: The process whose queue this is. While it forks (``forks``: one entry for each
        #: fork under way, from the writer's ``before`` fork hook to its ``after_in_parent``,
        #: several when threads fork at once; the C lane closed meanwhile, so every record
        #: comes through :meth:`put`), a record of another process, the child before its
        #: reset, goes to ``_born`` (see :meth:`born_here`), never among the parent's.
        self._pid = os.getpid()
        self.forks: list[None] = []
        self._born: list[LineItem] = []

    # -- the gate ------------------------------------------------------------------------

    @property
    def gate(self) -> Gate:
        return self._gate

    def set_gate(self, gate: Gate) -> None:
        """Change what :meth:`put` does; producers waiting for a slot look again."""
        with self._lock:
            self._gate = gate
            self._not_full.notify_all()

    def lane(self) -> Lane:
        """This queue's common path, for the C ``on_emit`` (valid while the gate is open)."""
        return Lane(self._slots.pop, self._items.append, self._items, self.batch_size, self._wake)

    # -- producers -----------------------------------------------------------------------

    def put(self, item: LineItem) -> bool | None:
        """Queue ``item``: True when queued, False when dropped (and counted), None when the
        gate is :attr:`Gate.DIRECT` and the caller must write it itself. Never raises."""
        if self.forks and os.getpid() != self._pid:
            # A forked child's at-fork hook that runs before our reset (registered before
            # our import): the record is the child's (no thread here would free a slot).
            self._born.append(item)
            return True
        gate = self._gate
        if gate is not Gate.OPEN:
            return None if gate is Gate.DIRECT else self._refuse(1, span_lines((item,)))
        try:
            self._take_slot_and_append(item)
        except IndexError:
            return self._when_full(item)
        items = self._items
        # >=, not ==: another thread can append between these two lines (the C on_emit
        # takes the exact crossing; this path may see the queue past it). wake() is cheap
        # when a wake-up is already pending.
        if len(items) >= self.batch_size:
            self._wake()
        if self._gate is not Gate.OPEN:
            self.sweep()  # the writer may have stopped between the check above and the append
        return True

    def _take_slot_and_append(self, item: LineItem) -> None:
        """Take a free slot and append ``item``, in one C call (``deque.extend`` drawing on
        ``compress``, which pops the slot): a signal handler's exception cannot land in
        between. ``IndexError`` when no slot is free; then nothing is appended."""
        self._items.extend(compress((item,), iter(self._slots.pop, _NO_SLOT)))

    def _when_full(self, item: LineItem) -> bool | None:
        """No free slot: apply the policy. Runs with no lock held; takes it as needed."""
        if self._policy is QueuePolicy.BLOCK:
            with self._lock:
                self.block_waiters += 1
                try:
                    return self._wait_for_slot_locked(item)
                finally:
                    self.block_waiters -= 1
        # A dropping policy: first let the writer have the GIL once, so that a busy
        # producer does not starve it (the GIL decides who drains).
        self._wake()
        time.sleep(0)
        try:
            self._take_slot_and_append(item)
        except IndexError:
            pass
        else:
            if self._gate is not Gate.OPEN:  # the writer may have stopped in the yield
                self.sweep()
            return True
        with self._lock:
            if self._gate is not Gate.OPEN:
                return None if self._gate is Gate.DIRECT else self._refuse(1, span_lines((item,)))
            # drop_oldest: the oldest *queued* record gives its slot to the new one. If every
            # slot is held by the batch being written (batch_size == max_size), there is
            # nothing queued to evict, and the new record is refused like drop_newest.
            if self._policy is QueuePolicy.DROP_OLDEST and self._evict_oldest_locked(item):
                return True
            self._count_locked(DropReason.QUEUE_FULL, 1, span_lines((item,)))
        if self._policy is QueuePolicy.WARN:
            self._drop_report.note(1, f" (max_queue_size={self.max_size})")
        return False

    def _wait_for_slot_locked(self, item: LineItem) -> bool | None:
        """``block``: wait until ``item`` is queued (True), refused after the stop (False), or
        the writer is gone for good (None: the caller writes it). The lock is held.

        A function of its own, with no handler in it: on CPython 3.11 and 3.12 an exception
        a signal handler raises at a loop's jump back is placed before the loop's first
        instruction, which a ``try:`` or ``with`` just above the loop does not cover (the
        lock was never let go). Raised here, it leaves through the call, which the caller's
        ``with`` and ``finally`` do cover."""
        while True:
            if self._gate is Gate.DIRECT:
                return None  # the writer thread is gone for good
            if self._gate is not Gate.OPEN:
                return self._refuse(1, span_lines((item,)))
            if self._took_slot(item):
                return True
            self._wake()
            try:
                self._not_full.wait()
            except BaseException:
                # A signal handler's, the application's own: raised on to it (the fault
                # handlers above tell it from ours, _diagnostics.is_application_error). One
                # that landed between the wait's letting go of the lock and its taking it
                # back left it free: taken again, for the caller's ``with`` to let go (it
                # raised RuntimeError, which hid the exception).
                if not self._lock._is_owned():  # type: ignore[attr-defined]
                    self._lock.acquire()
                raise

    def _took_slot(self, item: LineItem) -> bool:
        """:meth:`_take_slot_and_append`: False, nothing appended, when no slot is free."""
        try:
            self._take_slot_and_append(item)
        except IndexError:
            return False
        return True

    def _evict_oldest_locked(self, item: LineItem) -> bool:
        """drop_oldest: drop the oldest queued record (not a flush marker), count it, and
        queue ``item`` in its slot. False when no record is queued to make room."""
        items = self._items
        index = next((i for i, entry in enumerate(items) if type(entry) is not FlushMarker), None)
        if index is None:
            return False
        behind = self._markers.difference(islice(items, index))  # (flushes ahead of it: not its)
        for marker in behind:
            marker.lost = True
        # Counted first: an exception raised by a signal handler before it goes over-counts
        # the loss, never hides one.
        self._lost_locked(DropReason.EVICTED, 1, reported=bool(behind), spans=span_lines((items[index],)))
        if index == 0:
            # Out with it and in with the new one in one C call (as _take_slot_and_append):
            # the slot cannot be left held by neither.
            items.extend(compress((item,), iter(items.popleft, _NO_SLOT)))
        else:  # (behind a waiting flush: rare enough for two calls)
            del items[index]
            items.append(item)
        return True

    def _refuse(self, count: int, spans: int = 0) -> bool:
        """``count`` records handed over after the writer stopped (``spans`` of them span
        lines): dropped (``shutdown``)."""
        self.discard(DropReason.SHUTDOWN, count, spans)
        return False

    def discard(self, reason: DropReason | str, count: int = 1, spans: int = 0) -> None:
        """Count ``count`` records dropped with ``reason``, ``spans`` of them span lines."""
        with self._lock:
            self._count_locked(str(reason), count, spans)

    def _count_locked(self, reason: str, count: int, spans: int = 0) -> None:
        key = _REASONS.get(reason, reason)  # (one kind of key: the member, where there is one)
        self._dropped[key] = self._dropped.get(key, 0) + count
        if spans:
            self._span_dropped[key] = self._span_dropped.get(key, 0) + spans

    def _lost_locked(self, reason: str, count: int, *, reported: bool, spans: int = 0) -> None:
        """Count records taken in and lost on their way to the file (evicted, a write that
        failed, swept at the close); unless a waiting flush reports them (``reported``:
        they were ahead of it), the next flush made does. (A record refused at the door,
        by the policy or after the stop, is not taken in: its caller is told, not a flush.)"""
        self._count_locked(reason, count, spans)
        if not reported:
            self._lost_unflushed = True

    def sweep(self) -> None:
        """Records that raced in after the gate closed for good: drop them, answer every flush."""
        with self._lock:
            if self._gate is not Gate.CLOSED or not self._items:
                return  # the writer has not drained for the last time yet; it will take them
            records = [entry for entry in self._items if type(entry) is not FlushMarker]
            count = len(records)
            self._items.clear()
            self._release_locked(count)
            # (their callers were told: refused)
            self._count_locked(DropReason.SHUTDOWN, count, span_lines(records))
            for marker in self._markers:
                marker.lost = marker.lost or bool(count)
                marker.done.set()
            self._markers.clear()

    # -- fork -----------------------------------------------------------------------------

    def born_here(self) -> list[LineItem]:
        """In a forked child, before its reset: the records it logged (see ``forks``).
        The rest of the queue is the parent's, to be written by the parent alone."""
        return list(self._born)

    # -- flushes -------------------------------------------------------------------------

    def add_marker(self) -> FlushMarker:
        """A flush marker behind every record handed over so far. It is answered at once
        when there is none, and lost when the gate closed for good with records still held
        (no writer will come for them), or when a record taken in was lost since the last
        marker was made and no flush reported it (it is not in the file)."""
        with self._lock:
            lost, self._lost_unflushed = self._lost_unflushed, False
            if len(self._slots) == self.max_size:  # nothing queued, being written, or on its way in
                return FlushMarker(answered=True, lost=lost)
            if self._gate is Gate.CLOSED:
                return FlushMarker(answered=True, lost=True)
            marker = FlushMarker(lost=lost)
            try:
                self._markers.add(marker)
                self._items.append(marker)
            except BaseException:  # (a signal handler's, between the two: no marker half made)
                if marker not in self._items:
                    self._markers.discard(marker)
                raise
            return marker

    @property
    def waiting_flushes(self) -> int:
        """How many flushes wait for the records ahead of them."""
        return len(self._markers)

    # -- the writer's side ---------------------------------------------------------------

    @property
    def has_work(self) -> bool:
        """A full batch or a flush is waiting: the writer should not wait for its interval."""
        items = self._items
        return len(items) >= self.batch_size or (bool(self._markers) and bool(items))

    @property
    def empty(self) -> bool:
        return not self._items

    def held_here(self) -> bool:
        """Whether this thread holds the queue's lock (a signal handler that interrupted it
        in a slow path: whatever needs the writer to take the lock must not wait for it)."""
        return bool(self._lock._is_owned())  # type: ignore[attr-defined]

    @property
    def pending(self) -> int:
        """Records held: queued, in the batch being written, or on their way in."""
        return self.max_size - len(self._slots)

    def take_batch(self, into: list[Any] | None = None) -> list[Any]:
        """Up to ``batch_size`` records from the front, stopping at the first flush marker,
        moved into ``into`` (the writer's batch in flight; default a new list), which is
        returned; markers reached on the way are answered (all before them is done). None
        taken when none are queued. The records keep their slots until :meth:`done`.

        Nothing is taken that might have to be put back or could be lost on the way: the
        records move into ``into`` in one C call, and a marker is answered before it leaves
        the line, so an exception a signal handler raises at any point (a caller's drain)
        loses neither."""
        items = self._items
        batch = [] if into is None else into
        with self._lock:
            while True:
                depth = len(items)
                records = depth - len(self._markers)
                if records > self._max_depth:
                    self._max_depth = records  # depth only grows between takes: this is its peak
                count = min(depth, self.batch_size)
                if count and self._markers:
                    ahead = islice(items, count)
                    count = next((i for i, entry in enumerate(ahead) if type(entry) is FlushMarker), count)
                if count:
                    # popleft called count times from C (starmap), not from a Python loop.
                    batch.extend(starmap(items.popleft, repeat((), count)))
                    return batch
                if not depth:
                    return batch
                marker: FlushMarker = items[0]  # type: ignore[assignment]
                marker.done.set()  # first in line: everything before it is done
                self._markers.discard(marker)
                items.popleft()

    def done(
        self,
        count: int,
        written: int,
        *,
        failure: DropReason,
        queued: bool = True,
        spans: tuple[int, int] = (0, 0),
    ) -> None:
        """One write of ``count`` records, the first ``written`` of which reached a destination;
        the rest are dropped with ``failure`` (``spans``: how many span lines were among
        each). Queued records give their slots back, and a queued record's loss is also
        every waiting flush's (they all stand behind it)."""
        with self._lock:
            self._writes += 1
            self._written += written
            self._span_written += spans[0]
            if written != count:
                reported = queued and bool(self._markers)
                self._lost_locked(failure, count - written, reported=reported, spans=spans[1])
                if reported:
                    for marker in self._markers:
                        marker.lost = True
            if queued:
                self._release_locked(count)

    def error(self) -> None:
        """Count one destination error."""
        with self._lock:
            self._errors += 1

    def _release_locked(self, count: int) -> None:
        """``count`` slot-holding records are done: give their slots back, wake who waits."""
        self._slots.extend(repeat(_SLOT, count))
        self._not_full.notify_all()

    # -- counts --------------------------------------------------------------------------

    def metrics(self, *, restarts: int) -> AsyncMetrics:
        """A snapshot taken under the lock; records on their way in count as pending."""
        with self._lock:
            depth = len(self._items) - len(self._markers)
            held = self.max_size - len(self._slots)
            dropped = sum(self._dropped.values())
            return AsyncMetrics(
                enqueued=self._written + dropped + held,
                written=self._written,
                dropped=dropped,
                dropped_by_reason=MappingProxyType(dict(self._dropped)),
                span_lines_written=self._span_written,
                span_lines_dropped_by_reason=MappingProxyType(dict(self._span_dropped)),
                errors=self._errors,
                queue_depth=depth,
                max_queue_depth=max(self._max_depth, depth),
                pending=held,
                batches=self._writes,
                restarts=restarts,
            )
