"""``RecordQueue`` on its own: the gate, the bound and policies, flush markers, the counts.

The writer's tests (test_writer.py) drive the same queue through its thread; these pin
what the queue itself promises, with no thread serving it.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pytest
from _helpers import interrupt_at, item

from logxpy_otel import DropReason, QueuePolicy
from logxpy_otel._diagnostics import RateLimitedReporter
from logxpy_otel._queue import FlushMarker, Gate, RecordQueue


def make_queue(
    max_size: int = 4, batch_size: int = 2, policy: str = "block"
) -> tuple[RecordQueue, list[int]]:
    """An open queue and the list its wake-ups are counted in."""
    wakes: list[int] = []
    queue = RecordQueue(
        max_size=max_size,
        batch_size=batch_size,
        policy=QueuePolicy(policy),
        wake=lambda: wakes.append(1),
        drop_report=RateLimitedReporter("%d%s"),
    )
    queue.set_gate(Gate.OPEN)
    return queue, wakes


def numbers(batch: list[Any]) -> list[int]:
    """The ``n`` of each line item of ``batch`` (see ``item``)."""
    return [orjson.loads(b"{" + body + tail)["n"] for _, _, _, body, tail, _, _ in batch]


def test_put_follows_the_gate() -> None:
    queue, _ = make_queue()
    queue.set_gate(Gate.DIRECT)
    assert queue.put(item(0)) is None, "direct: the caller writes it"
    queue.set_gate(Gate.CLOSING)
    assert queue.put(item(1)) is False
    queue.set_gate(Gate.CLOSED)
    assert queue.put(item(2)) is False
    m = queue.metrics(restarts=0)
    assert m.dropped_by_reason == {DropReason.SHUTDOWN: 2} and m.pending == 0 and m.enqueued == 2


def test_a_full_batch_wakes_the_writer_and_batches_keep_their_slots_until_done() -> None:
    queue, wakes = make_queue(max_size=4, batch_size=2, policy="drop_newest")
    assert queue.put(item(0)) and not wakes
    assert queue.put(item(1)) and len(wakes) == 1
    batch = queue.take_batch()
    assert numbers(batch) == [0, 1]
    assert queue.put(item(2)) and queue.put(item(3))
    assert queue.put(item(4)) is False, "the batch in flight still holds two of the four slots"
    queue.done(2, 2, failure=DropReason.IO_ERROR)
    assert queue.put(item(5))
    m = queue.metrics(restarts=0)
    assert (m.written, m.pending, m.queue_depth, m.dropped) == (2, 3, 3, 1)
    assert m.enqueued == m.written + m.dropped + m.pending


def test_drop_oldest_evicts_the_oldest_record_not_a_marker_and_only_its_flushes_are_lost() -> None:
    queue, _ = make_queue(max_size=3, batch_size=10, policy="drop_oldest")
    assert queue.add_marker().done.is_set(), "nothing held: answered at once"
    queue.put(item(0))
    before = queue.add_marker()  # waits for record 0 only
    queue.put(item(1))
    after = queue.add_marker()  # waits for record 1 too
    queue.put(item(2))
    assert numbers(queue.take_batch()) == [0], "a batch stops at the first marker"
    assert queue.put(item(3)) is True  # full: evicts record 1, the oldest queued
    assert after.lost and not before.lost
    queue.done(1, 1, failure=DropReason.IO_ERROR)
    assert numbers(queue.take_batch()) == [2, 3], "both markers were first in line in turn"
    assert before.done.is_set() and after.done.is_set()
    assert queue.metrics(restarts=0).dropped_by_reason == {DropReason.EVICTED: 1}


def test_take_batch_stops_at_a_marker_and_answers_it_once_the_records_before_it_are_taken() -> None:
    queue, _ = make_queue(max_size=10, batch_size=10)
    queue.put(item(0))
    marker = queue.add_marker()
    queue.put(item(1))
    assert queue.waiting_flushes == 1 and queue.has_work
    assert numbers(queue.take_batch()) == [0]
    assert not marker.done.is_set(), "answered only after record 0 is done and the writer returns"
    assert numbers(queue.take_batch()) == [1]
    assert marker.done.is_set() and not marker.lost
    assert queue.waiting_flushes == 0


def test_a_failed_write_counts_its_reason_and_every_waiting_flush_is_lost() -> None:
    queue, _ = make_queue(max_size=10, batch_size=10)
    queue.put(item(0))
    queue.put(item(1))
    marker = queue.add_marker()
    batch = queue.take_batch()
    queue.done(len(batch), 1, failure=DropReason.NO_DESTINATION)
    assert marker.lost
    m = queue.metrics(restarts=0)
    assert m.dropped_by_reason == {DropReason.NO_DESTINATION: 1} and m.written == 1 and m.batches == 1


def test_after_the_gate_closes_for_good_a_late_record_is_swept_and_a_flush_cannot_be_served() -> None:
    queue, _ = make_queue(max_size=10, batch_size=10)
    lane = queue.lane()
    lane.take_slot()  # a producer took its slot before the close ...
    queue.set_gate(Gate.CLOSED)
    marker = queue.add_marker()
    assert marker.done.is_set() and marker.lost, "a record is held and no writer will come"
    lane.append(item(0))  # ... and appends after it
    queue.sweep()
    m = queue.metrics(restarts=0)
    assert m.dropped_by_reason == {DropReason.SHUTDOWN: 1} and m.pending == 0 and queue.empty


@pytest.mark.parametrize("gate", [Gate.CLOSING, Gate.DIRECT])
def test_a_producer_blocked_on_a_full_queue_leaves_when_the_gate_changes(gate: Gate) -> None:
    queue, _ = make_queue(max_size=1, batch_size=1)
    assert queue.put(item(0))
    results: list[bool | None] = []
    blocked = threading.Thread(target=lambda: results.append(queue.put(item(1))))
    blocked.start()
    for _ in range(10_000):  # bounded: about 10 s
        if queue.block_waiters == 1:
            break
        blocked.join(0.001)
    assert queue.block_waiters == 1
    queue.set_gate(gate)
    blocked.join(10.0)
    assert not blocked.is_alive()
    assert results == [False if gate is Gate.CLOSING else None]


def test_a_flush_marker_is_not_a_record() -> None:
    queue, _ = make_queue(max_size=3, batch_size=3)
    queue.put(item(0))
    marker = queue.add_marker()
    assert isinstance(marker, FlushMarker) and not marker.done.is_set()
    m = queue.metrics(restarts=0)
    assert m.queue_depth == 1 and m.pending == 1 and m.max_queue_depth == 1


@pytest.mark.parametrize("gate", [Gate.CLOSING, Gate.CLOSED])
def test_a_record_appended_as_the_gate_closes_is_left_to_the_drain_or_swept(gate: Gate) -> None:
    """put() checks the gate, then appends: the writer may stop in between (forced here:
    the wake-up of the append changes the gate). While stop() still drains (closing) the
    record stays queued for it; once no writer will come (closed), put() sweeps it itself."""
    queue = RecordQueue(
        max_size=4,
        batch_size=1,
        policy=QueuePolicy.BLOCK,
        wake=lambda: queue.set_gate(gate),
        drop_report=RateLimitedReporter("%d%s"),
    )
    queue.set_gate(Gate.OPEN)
    assert queue.put(item(0)) is True
    assert queue.gate is gate
    m = queue.metrics(restarts=0)
    if gate is Gate.CLOSING:
        assert (m.pending, m.dropped) == (1, 0), "the draining writer takes it"
        assert numbers(queue.take_batch()) == [0]
    else:
        assert m.dropped_by_reason == {DropReason.SHUTDOWN: 1} and m.pending == 0 and queue.empty
        marker = queue.add_marker()
        assert marker.done.is_set() and not marker.lost, "nothing is left held"


# -- Answer: a one-shot event a signal handler cannot wedge -----------------------------------


@pytest.mark.parametrize("timeout", [float("inf"), 10.0**13, float("nan"), -1.0, 0.0])
def test_an_answer_waits_for_any_timeout_without_raising(timeout: float) -> None:
    from logxpy_otel._queue import Answer

    answer = Answer()
    answer.set()
    assert answer.wait(timeout) is True
    if timeout <= 0 or timeout != timeout:
        assert Answer().wait(timeout) is False


@pytest.mark.parametrize("timeout", [float("inf"), 10.0**13])
def test_an_answer_waits_without_end_for_a_timeout_past_what_a_lock_takes(timeout: float) -> None:
    """``force_flush(math.inf)`` raised OverflowError into the application."""
    from logxpy_otel._queue import Answer

    answer = Answer()
    threading.Timer(0.05, answer.set).start()
    assert answer.wait(timeout) is True


# -- Ctrl-C: a KeyboardInterrupt may land between any two bytecodes of the caller's put() -----


def _interrupt_at(n: int, call: Any) -> bool:
    """:func:`interrupt_at` in the queue module's code."""
    from logxpy_otel import _queue

    return interrupt_at(n, _queue.__file__, call)


def _assert_consistent(queue: RecordQueue, taken: int = 0) -> None:
    """Every slot is free, held by a queued record, or by one of ``taken`` records in a batch;
    every record handed in is written, dropped or still held; the lock is free."""
    records = sum(1 for entry in queue._items if type(entry) is not FlushMarker)
    assert len(queue._slots) + records + taken == queue.max_size
    m = queue.metrics(restarts=0)
    assert m.pending == records + taken and m.enqueued == m.written + m.dropped + m.pending
    assert not queue._lock._is_owned()  # type: ignore[attr-defined]


@pytest.mark.parametrize("policy", ["block", "drop_oldest", "drop_newest", "warn"])
@pytest.mark.parametrize("full", [False, True], ids=["room", "full"])
def test_an_interrupt_anywhere_in_put_leaves_no_slot_taken_without_a_record(policy: str, full: bool) -> None:
    """A Ctrl-C in put() between taking a slot and appending leaked the slot for good: the
    queue's bound shrank by one each time until ``block`` blocked for ever (an application
    that catches KeyboardInterrupt, a notebook, keeps logging)."""
    for n in range(10_000):  # bounded: the number of bytecodes put() runs
        served = threading.Event()
        serving: list[threading.Thread] = []

        def serve() -> None:  # the writer's part: free the slots (once put() waits for them)
            batch = queue.take_batch()
            queue.done(len(batch), len(batch), failure=DropReason.IO_ERROR)
            served.set()

        def wake() -> None:
            if full and policy == "block" and not serving:
                serving.append(threading.Thread(target=serve, daemon=True))
                serving[0].start()

        queue = RecordQueue(
            max_size=2,
            batch_size=10,
            policy=QueuePolicy(policy),
            wake=wake,
            drop_report=RateLimitedReporter("%d%s"),
        )
        queue.set_gate(Gate.OPEN)
        for k in range(2 if full else 1):
            assert queue.put(item(k))
        interrupted = _interrupt_at(n, lambda: queue.put(item(9)))
        for thread in serving:
            thread.join(10.0)
            assert served.is_set()
        _assert_consistent(queue)
        if not interrupted:
            assert n > 2, "the interrupt must be able to land"
            return
    raise AssertionError("put() never ended")


def test_the_counts_are_keyed_by_drop_reason_members_however_the_reason_was_named() -> None:
    """A reason named by its text (the logging handler's) and one by its member made keys
    of two kinds in one mapping (``{<DropReason.EVICTED: 'evicted'>: 2, 'shutdown': 1}``)."""
    queue, _ = make_queue()
    queue.discard("shutdown")
    queue.discard(DropReason.EVICTED, 2)
    queue.discard("something_else")
    reasons = queue.metrics(restarts=0).dropped_by_reason
    assert reasons == {"shutdown": 1, "evicted": 2, "something_else": 1}
    assert {type(key) for key in reasons if key != "something_else"} == {DropReason}


@pytest.mark.parametrize("step", ["add_marker", "take_batch"])
def test_an_interrupt_anywhere_in_a_flush_marker_or_a_batch_loses_nothing(step: str) -> None:
    """In a caller's own drain (synchronous writes, stop, the exit) or flush: an interrupt
    between adding a marker to the set and to the line left one nobody would answer (the
    writer then spun at full CPU for good); one in take_batch lost the records it had
    taken to put back, and a marker it had taken unanswered (a flush waited its timeout)."""
    for n in range(10_000):  # bounded: the number of places the step runs
        queue, _ = make_queue(max_size=4, batch_size=10)
        queue.put(item(0))
        first = queue.add_marker()
        queue.put(item(1))
        taken: list[Any] = []
        if step == "add_marker":
            interrupted = _interrupt_at(n, queue.add_marker)
        else:
            interrupted = _interrupt_at(n, lambda: queue.take_batch(taken))
        queued = [entry for entry in queue._items if type(entry) is FlushMarker]
        assert set(queued) == queue._markers, "every marker waiting is in line, and only those"
        assert queue.has_work == bool(queued)
        _assert_consistent(queue, taken=len(taken))
        rest = []
        for _ in range(5):
            rest += queue.take_batch()
        assert numbers(taken + rest) == [0, 1], "no record lost or taken twice"
        assert first.done.is_set()
        if not interrupted:
            assert n > 1, "the interrupt must be able to land"
            return
    raise AssertionError(f"{step} never ended")


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
def test_span_lines_are_told_apart_in_every_count(policy: str) -> None:
    """A span processor shares the writer: its lines are counted with the records, and
    apart (``span_lines_*``), written and dropped alike, so log record counts can be told."""
    from logxpy_otel._format import SpanStart

    def span_line(n: int) -> Any:
        return ("7" * 32, 1.0 + n, False, b'"n":%d' % n, b"}", "1" * 16, SpanStart(None))

    queue, _ = make_queue(max_size=2, batch_size=10, policy=policy)
    assert queue.put(span_line(0)) and queue.put(item(1))
    queue.put(span_line(2))  # full: drops the new span line, or evicts the old one
    batch = queue.take_batch()
    spans = sum(entry[6] is not None for entry in batch)
    queue.done(len(batch), len(batch), failure=DropReason.IO_ERROR, spans=(spans, 0))
    queue.set_gate(Gate.CLOSED)
    queue.put(span_line(3))
    m = queue.metrics(restarts=0)
    reason = DropReason.QUEUE_FULL if policy == "drop_newest" else DropReason.EVICTED
    assert dict(m.span_lines_dropped_by_reason) == {reason: 1, DropReason.SHUTDOWN: 1}
    assert (m.written, m.span_lines_written) == (2, 1)


# -- hostile review, session 33 ---------------------------------------------------------------


def test_a_signal_at_the_block_wait_s_loop_leaves_the_queue_s_lock_free() -> None:
    """On CPython 3.11 and 3.12 an exception a signal handler raises at a loop's jump back
    is placed at the instruction before the loop's first, and where that is a ``try:``
    (here the one that counts the waiters) no handler covers it: the ``with`` around the
    loop never let go of the queue's lock. The writer then waited on it for good, and so
    did every logging thread and ``shutdown`` (a hostile review: 13 to 53 alarms in). The
    loop now runs in a function of its own, whose callers' handlers all cover the call."""
    import signal

    queue, _ = make_queue(max_size=1, batch_size=10, policy="block")
    assert queue.put(item(0))  # the one slot is taken, and no writer frees it

    class Spin(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            return False  # a wake-up with no slot free: the loop goes round again

    queue._not_full = Spin(queue._lock)
    armed = [False]

    def handler(signum: int, frame: Any) -> None:
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.0003, 0.0003)
    try:
        for _ in range(200):  # bounded: each put ends at the next alarm
            with pytest.raises(KeyboardInterrupt):
                armed[0] = True  # (in here: an alarm before the put is the test's too)
                queue.put(item(1))
            assert not queue._lock._is_owned()  # type: ignore[attr-defined]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    _assert_consistent(queue)
    assert queue.block_waiters == 0
