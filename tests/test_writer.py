"""AsyncWriter: bounded queue, policies, batching, accounting, errors, restarts, flush, stop, fork, exit."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _helpers import Collect, Failing, Gated, assert_accounting, item, parse_lines, read_records
from _helpers import start_writer as make

from logxpy_otel import (
    AsyncConfig,
    AsyncFileDestination,
    AsyncWriter,
    DropReason,
    QueuePolicy,
    sync_mode,
)
from logxpy_otel._queue import Gate

TRACE = "5b8efff798038103d269b633813fc60c"


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    """Poll a condition the writer exposes no event for (bounded; fails the test on timeout)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


# -- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("max_queue_size", 0, "integer from 1 to 1000000"),
        ("max_queue_size", 1.5, "integer from 1 to 1000000"),
        ("max_queue_size", True, "integer from 1 to 1000000"),
        ("max_queue_size", 4_000_000_000, "integer from 1 to 1000000"),
        ("batch_size", 0, "integer from 1 to 1000000"),
        ("flush_interval_ms", 0, "milliseconds from 1 to 3600000"),
        ("flush_interval_ms", float("inf"), "milliseconds from 1 to 3600000"),
        ("flush_interval_ms", float("nan"), "milliseconds from 1 to 3600000"),
        ("flush_interval_ms", 1e-6, "milliseconds from 1 to 3600000"),  # (it spun the idle writer)
        ("max_restarts", -1, "integer from 0 to 1000"),
        ("trace_idle_ms", -5, "milliseconds > 0"),
        ("shutdown_timeout_ms", 1e20, "milliseconds > 0 and <= 3600000"),
        ("max_open_traces", 0, "integer from 1 to 1000000"),
        ("async_enabled", "yes", "True or False"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field: str, value: Any, says: str) -> None:
    with pytest.raises(ValueError, match=f"AsyncConfig.{field} must be") as info:
        AsyncConfig(**{field: value})
    assert says in str(info.value)
    assert repr(value) in str(info.value)


def test_config_rejects_unknown_policy_listing_the_allowed_ones() -> None:
    with pytest.raises(ValueError) as info:
        AsyncConfig(queue_policy="drop_everything")  # type: ignore[arg-type]
    text = str(info.value)
    assert "queue_policy" in text and "'drop_everything'" in text
    for policy in QueuePolicy:
        assert policy.value in text


def test_config_batch_size_is_capped_at_the_queue_size() -> None:
    assert AsyncConfig(max_queue_size=10, batch_size=11).batch_size == 10
    assert AsyncConfig(max_queue_size=10, batch_size=3).batch_size == 3


def test_config_takes_policy_names_and_is_frozen() -> None:
    config = AsyncConfig(queue_policy="drop_oldest")  # type: ignore[arg-type]
    assert config.queue_policy is QueuePolicy.DROP_OLDEST
    with pytest.raises(AttributeError):
        config.batch_size = 5  # type: ignore[misc]


def test_logxpy_sync_env_sets_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGXPY_SYNC", "1")
    assert AsyncConfig().async_enabled is False
    assert AsyncConfig(async_enabled=True).async_enabled is True  # an explicit value wins
    monkeypatch.setenv("LOGXPY_SYNC", "0")
    assert AsyncConfig().async_enabled is True


# -- writing and batching --------------------------------------------------------------


def test_records_are_written_in_order_with_their_numbering(writers: list[AsyncWriter]) -> None:
    dest = Collect()
    writer = make(writers, dest)
    for n in range(10):
        assert writer.enqueue(item(n, trace=TRACE if n % 2 else None))
    assert writer.flush(5.0)
    lines = parse_lines(dest.data)
    recs = [line for line in lines if "at" not in line]
    assert [r["n"] for r in recs] == list(range(10))
    traced = [r for r in recs if r["tid"] == TRACE]
    assert [r["lvl"] for r in traced] == [[2], [3], [4], [5], [6]]
    assert lines[1] == {"tid": TRACE, "lvl": [1], "ts": 2.0, "at": "otel:trace", "st": "started"}
    m = writer.metrics
    assert (m.enqueued, m.written, m.dropped, m.pending) == (10, 10, 0, 0)
    assert_accounting(m)


def test_a_full_batch_is_written_without_waiting_for_the_interval(writers: list[AsyncWriter]) -> None:
    dest = Collect()
    writer = make(writers, dest, batch_size=50, max_queue_size=1000, flush_interval_ms=600_000)
    written = threading.Event()
    writer.add_destination(lambda data: written.set())
    for n in range(50):
        writer.enqueue(item(n))
    assert written.wait(10.0), "batch_size records waiting must trigger a write"
    assert len(dest.records()) == 50
    assert writer.metrics.batches == 1


def test_the_interval_writes_a_partial_batch(writers: list[AsyncWriter]) -> None:
    written = threading.Event()
    dest = Collect()
    writer = make(writers, dest, batch_size=1000, flush_interval_ms=20)
    writer.add_destination(lambda data: written.set())
    writer.enqueue(item(1))
    assert written.wait(10.0), "flush_interval_ms must bound how long a record waits"
    assert [r["n"] for r in dest.records()] == [1]


def test_each_batch_is_one_call_per_destination(writers: list[AsyncWriter]) -> None:
    dest = Collect()
    writer = make(writers, dest, batch_size=100, max_queue_size=1000, flush_interval_ms=600_000)
    gate = Gated()
    writer.add_destination(gate)
    gate.open()
    for n in range(300):
        writer.enqueue(item(n))
    assert writer.flush(5.0)
    assert len(dest.batches) == writer.metrics.batches
    assert all(batch.count(b"\n") <= 100 for batch in dest.batches)
    assert len(dest.records()) == 300


def test_block_four_producers_slow_destination_everything_once_in_order(writers: list[AsyncWriter]) -> None:
    """4 threads x 50,000 records, queue of 1,000: producers wait; nothing lost or repeated."""
    per_thread, threads_n, max_queue = 50_000, 4, 1_000
    gate = Gated()

    class Slow(Collect):
        """Stalls the first batch until the queue is full, then writes each batch after a pause."""

        def __call__(self, data: bytes) -> None:
            gate.gate.wait(30.0)
            time.sleep(0.0005)
            super().__call__(data)

    dest = Slow()
    writer = make(writers, dest, max_queue_size=max_queue, batch_size=250, queue_policy="block")
    depths: list[int] = []

    def produce(t: int) -> None:
        for n in range(per_thread):
            assert writer.enqueue(item(n, thread=t))

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    wait_until(lambda: writer.metrics.pending == max_queue)  # full: producers now wait
    depths.append(writer.metrics.queue_depth)
    gate.open()
    for t in threads:
        t.join(120)
        assert not t.is_alive()
    assert writer.flush(30.0)
    m = writer.metrics
    assert m.max_queue_depth <= max_queue, "the queue never went past its bound"
    assert max(depths) <= max_queue
    assert (m.written, m.dropped, m.pending) == (per_thread * threads_n, 0, 0)
    assert_accounting(m)
    seen: dict[int, list[int]] = {t: [] for t in range(threads_n)}
    for rec in dest.records():
        seen[rec["thread"]].append(rec["n"])
    for t in range(threads_n):
        assert seen[t] == list(range(per_thread)), f"thread {t}: records missing, repeated or out of order"


def _fill_behind_gate(writer: AsyncWriter, gate: Gated, count: int) -> list[bool]:
    """Make the writer's first batch (one record, holding one slot) hang in ``gate``, then
    offer ``count`` records: ``max_queue_size - 1`` of them find a free slot."""
    results = [writer.enqueue(item(-1))]
    assert writer.flush(0.0) is False
    assert gate.entered.wait(10.0)
    results += [writer.enqueue(item(n)) for n in range(count)]
    return results


def test_drop_newest_refuses_and_counts_exactly(writers: list[AsyncWriter]) -> None:
    gate = Gated()
    writer = make(writers, gate, max_queue_size=100, batch_size=10, queue_policy="drop_newest")
    try:
        results = _fill_behind_gate(writer, gate, 250)
        m = writer.metrics
        assert (m.queue_depth, m.pending) == (99, 100), "the batch in flight holds its slot too"
        assert results[1:].count(True) == 99 and results[1:].count(False) == 151
        assert results[1:100] == [True] * 99, "the first records in keep their place"
    finally:
        gate.open()
    assert writer.flush(10.0)
    m = writer.metrics
    assert m.dropped_by_reason == {DropReason.QUEUE_FULL: 151}
    assert m.written == 100 and m.enqueued == 251
    assert_accounting(m)
    assert [r["n"] for r in gate.records()] == [-1, *range(99)]


FLUSHES = 20


@pytest.mark.parametrize("policy", ["block", "drop_newest"])
def test_every_flush_that_returns_true_has_everything_handed_over_before_it(
    writers: list[AsyncWriter], policy: str
) -> None:
    """Issue 13: synchronous writes in some threads, queued records and flushes in others.
    Each flush that returns True is checked against the destination: every record whose
    hand-over returned before the flush began is there. (A flush used to wait for a
    completion count that synchronous writes also moved.)"""
    dest = Collect()
    writer = make(
        writers, dest, batch_size=16, max_queue_size=64, flush_interval_ms=600_000, queue_policy=policy
    )
    handed: set[tuple[int, int]] = set()
    lock = threading.Lock()
    stop = threading.Event()
    checked: list[int] = []

    def produce(t: int, sync: bool) -> None:
        for n in range(5_000):  # until the flushes are done (bounded)
            if stop.is_set():
                return
            if sync:
                with sync_mode():
                    ok = writer.enqueue(item(n, t=t))
            else:
                ok = writer.enqueue(item(n, t=t))
            if ok:
                with lock:
                    handed.add((t, n))

    def flush_and_check() -> None:
        for _ in range(FLUSHES):
            with lock:
                before = set(handed)
            if writer.flush(10.0):
                written = {(r["t"], r["n"]) for r in dest.records()}
                missing = before - written
                assert not missing, f"flush returned True without {sorted(missing)[:5]}"
                checked.append(len(before))

    failures: list[BaseException] = []

    def guarded(target: Any, *args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:
            failures.append(exc)

    producers = [threading.Thread(target=guarded, args=(produce, t, t == 0)) for t in range(3)]
    flushers = [threading.Thread(target=guarded, args=(flush_and_check,)) for _ in range(2)]
    for thread in producers + flushers:
        thread.start()
    for thread in flushers:
        thread.join(60)
    stop.set()  # the records flowed during every flush
    for thread in producers:
        thread.join(60)
    assert not failures, failures[0]
    assert len(checked) == 2 * FLUSHES, "every flush said True (nothing queued was lost)"
    m = writer.metrics
    assert_accounting(m)
    assert writer.flush(10.0) is True  # refused records were never queued: nothing queued was lost


class Signalled(Collect):
    """A destination that says when it was written to."""

    def __init__(self) -> None:
        super().__init__()
        self.wrote = threading.Event()

    def __call__(self, data: bytes) -> None:
        super().__call__(data)
        self.wrote.set()


def test_a_full_batch_wakes_the_writer_even_past_the_exact_size(writers: list[AsyncWriter]) -> None:
    """Another thread can append between enqueue's append and its length check, so the
    queue may be past batch_size when it looks: that still wakes the writer (no timer)."""

    dest = Signalled()
    writer = make(writers, dest, batch_size=5, max_queue_size=100, flush_interval_ms=600_000)
    writer.enqueue(item(0))
    assert writer.flush(5.0)  # the writer is up and now waits for a batch (or 600 s)
    dest.wrote.clear()
    lane = writer._queue.lane()
    for n in range(1, 7):  # as racing producers would leave it: six queued, none woke it
        lane.take_slot()
        lane.append(item(n))
    writer.enqueue(item(7))
    while len(dest.records()) < 8:
        assert dest.wrote.wait(10.0), "the writer was not woken"
        dest.wrote.clear()
    assert [r["n"] for r in dest.records()] == list(range(8))


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest", "warn"])
def test_wake_ups_do_not_pile_up_while_the_writer_is_busy(writers: list[AsyncWriter], policy: str) -> None:
    """Each record that finds the queue full wakes the writer. While the writer is busy
    (here: stuck in a slow write) those wake-ups must not accumulate: they did, one per
    record, and memory grew without bound under sustained overload."""
    gate = Gated()
    writer = make(writers, gate, max_queue_size=100, batch_size=10, queue_policy=policy)
    try:
        _fill_behind_gate(writer, gate, 5_000)
        assert writer.metrics.dropped == 5_001 - 100  # one record in flight, 99 queued
        assert writer._wake._q.qsize() <= 1
    finally:
        gate.open()
    # drop_oldest evicted records taken in before this flush: it says so, once.
    assert writer.flush(10.0) is (policy != "drop_oldest")
    assert writer.flush(10.0) is True
    assert_accounting(writer.metrics)


def test_drop_oldest_evicts_the_oldest_and_counts_exactly(writers: list[AsyncWriter]) -> None:
    gate = Gated()
    writer = make(writers, gate, max_queue_size=100, batch_size=10, queue_policy="drop_oldest")
    try:
        results = _fill_behind_gate(writer, gate, 250)
        assert all(results), "drop_oldest always takes the new record"
        assert writer.metrics.queue_depth == 99
    finally:
        gate.open()
    assert writer.flush(10.0) is False, "151 records taken in before it were evicted"
    m = writer.metrics
    assert m.dropped_by_reason == {DropReason.EVICTED: 151}
    assert m.written == 100
    assert_accounting(m)
    assert [r["n"] for r in gate.records()] == [-1, *range(151, 250)], "the newest 99 are kept"


def test_warn_drops_the_new_record_and_warns_with_the_count(
    writers: list[AsyncWriter], caplog: pytest.LogCaptureFixture
) -> None:
    gate = Gated()
    writer = make(
        writers, gate, max_queue_size=20, batch_size=5, queue_policy="warn", report_interval_ms=600_000
    )
    caplog.set_level(logging.WARNING, logger="logxpy_otel")
    try:
        results = _fill_behind_gate(writer, gate, 50)
    finally:
        gate.open()
    assert writer.flush(10.0)
    assert results[1:].count(False) == 31
    assert writer.metrics.dropped_by_reason == {DropReason.QUEUE_FULL: 31}
    warnings = [r for r in caplog.records if r.name == "logxpy_otel"]
    assert len(warnings) == 1, "rate-limited: one warning within the interval"
    assert "dropped 1 record(s)" in warnings[0].getMessage()
    assert "max_queue_size=20" in warnings[0].getMessage()


def test_flush_reports_records_evicted_before_they_were_written(writers: list[AsyncWriter]) -> None:
    gate = Gated()
    writer = make(writers, gate, max_queue_size=10, batch_size=5, queue_policy="drop_oldest")
    try:
        _fill_behind_gate(writer, gate, 10)
        result: list[bool] = []
        flusher = threading.Thread(target=lambda: result.append(writer.flush(10.0)))
        flusher.start()
        wait_until(lambda: writer._queue.waiting_flushes > 0)  # the flush is waiting behind the records
        for n in range(100, 105):
            writer.enqueue(item(n))  # evicts five records the flush is waiting for
    finally:
        gate.open()
    flusher.join(10)
    assert result == [False]
    assert writer.flush(10.0) is True, "nothing lost since"


def test_concurrent_snapshots_always_balance(writers: list[AsyncWriter]) -> None:
    writer = make(writers, Collect(), max_queue_size=50, batch_size=10, queue_policy="drop_oldest")
    stop = threading.Event()

    def produce() -> None:
        n = 0
        while not stop.is_set() and n < 200_000:
            writer.enqueue(item(n))
            n += 1

    threads = [threading.Thread(target=produce) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(2_000):
        m = writer.metrics
        assert_accounting(m)
        assert m.queue_depth <= 50
    # (the producers go on until the full queue has evicted a record: a writer that kept
    # up during the snapshots evicted none, and the flush below rightly said True)
    wait_until(lambda: writer.metrics.dropped > 0)
    stop.set()
    for t in threads:
        t.join(30)
    # Records evicted before this flush was asked for are not in the file: it says so, once.
    assert writer.flush(10.0) is False
    assert writer.flush(10.0) is True
    m = writer.metrics
    assert_accounting(m)
    assert m.pending == 0 and m.max_queue_depth <= 50
    # drop_oldest evicts; a record that finds every slot held by records being written
    # (or on their way in) has nothing to evict and is refused.
    assert set(m.dropped_by_reason) <= {DropReason.EVICTED, DropReason.QUEUE_FULL}


# -- destinations that fail ------------------------------------------------------------


def test_a_raising_destination_does_not_affect_a_good_one(
    writers: list[AsyncWriter], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="logxpy_otel")
    good, bad = Collect(), Failing()
    writer = make(writers, bad, good, batch_size=10, report_interval_ms=600_000)
    for n in range(100):
        writer.enqueue(item(n))
    assert writer.flush(10.0)
    m = writer.metrics
    assert [r["n"] for r in good.records()] == list(range(100))
    assert m.errors == bad.calls >= 1
    assert m.written == 100 and m.dropped == 0
    reports = [r for r in caplog.records if "destination error" in r.getMessage()]
    assert len(reports) == 1
    assert "No space left on device" in reports[0].getMessage()


def test_records_no_destination_takes_are_dropped_as_io_errors(writers: list[AsyncWriter]) -> None:
    bad = Failing()
    writer = make(writers, bad, batch_size=10)
    for n in range(25):
        assert writer.enqueue(item(n))
    assert writer.flush(10.0) is False, "flush must not claim records it could not write"
    m = writer.metrics
    assert m.dropped_by_reason == {DropReason.IO_ERROR: 25}
    assert m.written == 0
    assert_accounting(m)


def test_add_and_remove_destination(writers: list[AsyncWriter]) -> None:
    first, second = Collect(), Collect()
    writer = make(writers, first)
    writer.enqueue(item(1))
    assert writer.flush(5.0)
    writer.add_destination(second)
    writer.enqueue(item(2))
    assert writer.flush(5.0)
    writer.remove_destination(first)
    writer.enqueue(item(3))
    assert writer.flush(5.0)
    assert [r["n"] for r in first.records()] == [1, 2]
    assert [r["n"] for r in second.records()] == [2, 3]


# -- crashes -----------------------------------------------------------------------------


def test_writer_thread_crash_restarts_and_loses_nothing(
    writers: list[AsyncWriter], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="logxpy_otel")
    dest = Collect()
    writer = make(writers, dest, batch_size=5, flush_interval_ms=10)
    real = writer._output.trees.number
    crashes = []

    def flaky(items: Any, out: list[bytes]) -> int:
        if not crashes:
            crashes.append(1)
            raise RuntimeError("injected writer fault")
        return real(items, out)

    monkeypatch.setattr(writer._output.trees, "number", flaky)
    for n in range(20):
        writer.enqueue(item(n))
    assert writer.flush(10.0)
    assert [r["n"] for r in dest.records()] == list(range(20)), "each record exactly once, in order"
    m = writer.metrics
    assert m.restarts == 1
    assert writer.is_running
    assert any("crashed (1 of 10)" in r.getMessage() for r in caplog.records)


def test_a_batch_the_numbering_always_refuses_is_dropped_and_counted_never_raised(
    writers: list[AsyncWriter], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A record our numbering cannot take (a fault of ours, as a float subclass ts was): the
    thread crashes on it each time it retries; once writes fall back to the callers' threads
    nothing retries it, and it must neither raise into every later logging call nor hold
    its slot for ever. It is dropped (``internal_error``); the records after it are written."""
    caplog.set_level(logging.ERROR, logger="logxpy_otel")
    dest = Collect()
    writer = make(writers, dest, batch_size=1, flush_interval_ms=10, max_restarts=1)
    real = writer._output.trees.number

    def refuses_poison(items: Any, out: list[bytes]) -> int:
        if any(b"poison" in entry[3] for entry in items):
            raise TypeError("injected: a record the numbering refuses")
        return real(items, out)

    monkeypatch.setattr(writer._output.trees, "number", refuses_poison)
    writer.enqueue(item(0, tag="poison"))
    wait_until(lambda: not writer.is_running)  # crashed, restarted, crashed: synchronous now
    assert writer.enqueue(item(1)) is True  # no exception into the caller
    assert writer.flush(10.0) is False, "record 0, taken in, is not in the file"
    assert writer.flush(10.0) is True
    assert [r["n"] for r in dest.records()] == [1]
    m = writer.metrics
    assert m.dropped_by_reason == {DropReason.INTERNAL_ERROR: 1} and m.pending == 0
    assert_accounting(m)
    assert any("could not write 1 record(s); dropped" in r.getMessage() for r in caplog.records)


def test_after_max_restarts_writes_fall_back_to_the_callers_thread(
    writers: list[AsyncWriter], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="logxpy_otel")
    dest = Collect()
    writer = make(writers, dest, batch_size=5, flush_interval_ms=10, max_restarts=0)
    real = writer._output.trees.number
    calls: list[str] = []

    def once(items: Any, out: list[bytes]) -> int:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            raise RuntimeError("injected writer fault")
        return real(items, out)

    monkeypatch.setattr(writer._output.trees, "number", once)
    for n in range(5):
        writer.enqueue(item(n))
    assert writer.flush(10.0)
    wait_until(lambda: not writer.is_running)
    writer.enqueue(item(99))
    # Synchronous now: the record is written before enqueue returns, by this thread.
    assert [r["n"] for r in dest.records()] == [0, 1, 2, 3, 4, 99]
    assert calls[-1] == threading.current_thread().name
    assert any("writing synchronously" in r.getMessage() for r in caplog.records)
    assert_accounting(writer.metrics)
    assert writer._lane[0] is None, "the C on_emit's lane closed with the thread"


def assert_lane(writer: AsyncWriter) -> None:
    """The producers' lane (used by the C on_emit) is open exactly when enqueue's fast path is."""
    lane = writer._lane[0]
    fast_path = writer._state == "running" and not writer._sync
    assert (writer._queue.gate is Gate.OPEN) == fast_path
    if fast_path:
        assert lane is not None
        current = writer._queue.lane()
        assert lane == current and lane.items is current.items, "the lane of the current queue"
        assert lane.batch_size == writer.config.batch_size and lane.wake == writer._wake.set
    else:
        assert lane is None


def test_a_first_record_written_in_sync_mode_still_starts_the_writer_thread(
    writers: list[AsyncWriter],
) -> None:
    """A writer's first record written under ``sync_mode()`` starts it like any other: the
    records after it are written by the thread, without a flush (they waited for ever)."""

    dest = Signalled()
    writer = AsyncWriter((dest,), AsyncConfig(batch_size=1, flush_interval_ms=10))
    writers.append(writer)  # not started: the first record starts it
    with sync_mode():
        assert writer.enqueue(item(0))
    assert [r["n"] for r in dest.records()] == [0]
    dest.wrote.clear()
    assert writer.enqueue(item(1))
    assert dest.wrote.wait(10.0), "the record waited for a flush: no thread served the queue"
    assert [r["n"] for r in dest.records()] == [0, 1]
    assert writer.is_running


def test_the_lane_follows_every_state_change(writers: list[AsyncWriter]) -> None:
    writer = make(writers, Collect())
    assert_lane(writer)  # new
    writer.enqueue(item(0))
    assert writer._lane[0] is not None
    assert_lane(writer)  # running
    assert writer.flush(5.0)
    writer._child_after_fork()  # as in a forked child: fresh queue and slots, not started
    assert_lane(writer)
    writer.enqueue(item(1))
    assert_lane(writer)  # running again, on the new queue
    assert writer.flush(5.0)
    writer._at_exit()  # synchronous from now on
    assert writer._lane[0] is None
    assert_lane(writer)
    writer.stop(5.0)
    assert_lane(writer)
    sync = make(writers, Collect(), async_enabled=False)
    sync.enqueue(item(2))
    assert sync._lane[0] is None
    assert_lane(sync)


# -- flush and stop ----------------------------------------------------------------------


def test_flush_returns_false_at_its_timeout(writers: list[AsyncWriter]) -> None:
    gate = Gated()
    writer = make(writers, gate)
    try:
        writer.enqueue(item(1))
        started = time.monotonic()
        assert writer.flush(0.05) is False
        assert time.monotonic() - started < 5.0
    finally:
        gate.open()
    assert writer.flush(5.0) is True


def test_flush_from_many_threads(writers: list[AsyncWriter]) -> None:
    dest = Collect()
    writer = make(writers, dest, batch_size=10)
    results: list[bool] = []

    def work(t: int) -> None:
        for n in range(200):
            writer.enqueue(item(n, thread=t))
            if n % 50 == 0:
                results.append(writer.flush(10.0))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results and all(results)
    assert writer.flush(10.0)
    assert len(dest.records()) == 800


def test_stop_writes_pending_closes_trees_then_drops(writers: list[AsyncWriter]) -> None:
    dest = Collect()
    writer = make(writers, dest, flush_interval_ms=600_000)
    for n in range(5):
        writer.enqueue(item(n, trace=TRACE, failed=n == 3))
    assert writer.stop(5.0) is True
    lines = parse_lines(dest.data)
    assert [line["lvl"] for line in lines] == [[1], [2], [3], [4], [5], [6], [7]]
    assert lines[-1]["st"] == "failed"
    assert not writer.is_running
    assert writer.enqueue(item(9)) is False
    assert writer.stop(5.0) is True  # idempotent
    m = writer.metrics
    assert m.dropped_by_reason == {DropReason.SHUTDOWN: 1}
    assert_accounting(m)


def test_stop_is_bounded_when_a_destination_hangs(writers: list[AsyncWriter]) -> None:
    gate = Gated()
    writer = make(writers, gate)
    try:
        writer.enqueue(item(1))
        assert gate.entered.wait(10.0)
        assert writer.flush(0.0) is False  # the record is held at the gate
        started = time.monotonic()
        assert writer.stop(0.1) is False
        assert time.monotonic() - started < 5.0
    finally:
        gate.open()


def test_stop_releases_producers_blocked_on_a_full_queue(writers: list[AsyncWriter]) -> None:
    gate = Gated()
    writer = make(writers, gate, max_queue_size=5, batch_size=5)
    results: list[bool] = []
    try:
        _fill_behind_gate(writer, gate, 4)
        blocked = threading.Thread(target=lambda: results.append(writer.enqueue(item(77))))
        blocked.start()
        wait_until(lambda: writer._queue.block_waiters == 1)
        stopper = threading.Thread(target=writer.stop, args=(10.0,))
        stopper.start()
        blocked.join(10)
        assert results == [False], "a producer blocked at stop gets its record dropped, not a hang"
    finally:
        gate.open()
    stopper.join(10)
    m = writer.metrics
    assert m.dropped_by_reason == {DropReason.SHUTDOWN: 1}
    assert_accounting(m)


# -- synchronous mode ----------------------------------------------------------------------


def test_async_disabled_writes_in_the_callers_thread(writers: list[AsyncWriter]) -> None:
    dest = Collect()
    writer = make(writers, dest, async_enabled=False)
    writer.enqueue(item(1))
    assert [r["n"] for r in dest.records()] == [1]
    assert writer._thread is None and not writer.is_running


def test_logxpy_sync_env_writes_in_the_callers_thread(
    writers: list[AsyncWriter], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGXPY_SYNC", "1")
    dest = Collect()
    writer = make(writers, dest)
    writer.enqueue(item(1))
    assert [r["n"] for r in dest.records()] == [1]
    assert writer._thread is None


def test_sync_mode_context_writes_before_returning_and_keeps_order(writers: list[AsyncWriter]) -> None:
    dest = Collect()
    writer = make(writers, dest, flush_interval_ms=600_000)
    writer.enqueue(item(1))
    writer.enqueue(item(2))
    with sync_mode():
        writer.enqueue(item(3))
        assert [r["n"] for r in dest.records()] == [1, 2, 3]
    writer.enqueue(item(4))
    assert [r["n"] for r in dest.records()] == [1, 2, 3], "outside the block, writes are async again"
    assert writer.flush(5.0)
    assert [r["n"] for r in dest.records()] == [1, 2, 3, 4]


# -- processes -----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_child_writes_only_its_own_records(tmp_path: Path, writers: list[AsyncWriter]) -> None:
    path = tmp_path / "fork.jsonl"
    writer = AsyncWriter(
        [AsyncFileDestination(path)], AsyncConfig(flush_interval_ms=600_000, batch_size=1000)
    )
    writers.append(writer)
    for n in range(100):
        writer.enqueue(item(n, who="parent"))
    assert writer.metrics.pending == 100
    pid = os.fork()
    if pid == 0:  # the child: a fresh writer on first use, none of the parent's records
        code = 1
        try:
            ok_empty = writer.metrics.pending == 0
            for n in range(10):
                writer.enqueue(item(n, who="child"))
            code = 0 if writer.flush(10.0) and ok_empty else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert writer.flush(10.0)
    recs = read_records(path)
    parent = [r["n"] for r in recs if r["who"] == "parent"]
    child = [r["n"] for r in recs if r["who"] == "child"]
    assert parent == list(range(100))
    assert child == list(range(10))
    parent_prefix = {r["tid"].split(".")[0] for r in recs if r["who"] == "parent"}
    child_prefix = {r["tid"].split(".")[0] for r in recs if r["who"] == "child"}
    assert len(parent_prefix) == len(child_prefix) == 1 and parent_prefix != child_prefix


def test_exit_flushes_pending_records_and_closes_trees(tmp_path: Path) -> None:
    path = tmp_path / "exit.jsonl"
    script = textwrap.dedent(
        f"""
        import orjson
        from logxpy_otel import AsyncConfig, AsyncFileDestination, AsyncWriter
        writer = AsyncWriter([AsyncFileDestination({str(path)!r})], AsyncConfig(flush_interval_ms=600_000))
        for n in range(500):
            body = orjson.dumps({{"ts": 1.0, "n": n}})[1:]
            writer.enqueue(({TRACE!r} if n % 2 else None, 1.0, False, body, b"", None, None))
        assert writer.metrics.pending == 500
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    lines = parse_lines(path.read_bytes())
    assert sorted(line["n"] for line in lines if "n" in line) == list(range(500))
    assert lines[-1]["st"] == "succeeded", "open traces are closed at exit"


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest", "warn"])
def test_a_record_handed_over_while_stop_runs_is_never_left_pending(
    writers: list[AsyncWriter], policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12, item 3: a producer that found the queue full yields once, then takes a
    slot and appends. If stop() ran in that yield, the record stayed queued for ever:
    neither written nor counted, and every later flush returned False. The interleaving
    is forced here: stop() runs to its end inside the producer's yield."""
    gate = Gated()
    writer = make(
        writers, gate, max_queue_size=2, batch_size=2, flush_interval_ms=600_000, queue_policy=policy
    )
    writer.enqueue(item(1))
    writer.enqueue(item(2))  # a full batch: the writer takes both and waits at the gate
    assert gate.entered.wait(10)
    real_sleep = time.sleep
    stopped = threading.Event()

    def stop_during_the_yield(seconds: float) -> None:
        if seconds == 0 and not stopped.is_set():
            stopped.set()
            gate.open()
            stopper = threading.Thread(target=writer.stop, args=(10.0,))
            stopper.start()
            stopper.join(10)
            assert not stopper.is_alive()
        real_sleep(seconds)

    monkeypatch.setattr("logxpy_otel._writer.time.sleep", stop_during_the_yield)
    writer.enqueue(item(3))  # the queue is full: the policy path, with stop() in its yield
    assert stopped.is_set()
    m = writer.metrics
    assert m.pending == 0, m
    assert_accounting(m)
    assert m.written == 2
    assert m.dropped_by_reason == {DropReason.SHUTDOWN: 1}
    assert writer.flush(1.0) is True  # nothing left pending for ever


def test_batch_observer_sees_each_batch_and_never_breaks_a_write(writers: list[AsyncWriter]) -> None:
    sink, seen = Collect(), []
    writer = make(writers, sink, batch_size=3, flush_interval_ms=600_000)
    writer.observe_batches(lambda n, seconds, ok: seen.append((n, seconds >= 0, ok)))
    for n in range(3):
        writer.enqueue(item(n))
    assert writer.flush(10)
    assert seen == [(3, True, True)]

    def broken(n: int, seconds: float, ok: bool) -> None:
        raise RuntimeError("observer bug")

    writer.observe_batches(broken)
    writer.enqueue(item(9))
    assert writer.flush(10)
    assert [r["n"] for r in sink.records()] == [0, 1, 2, 9]


def test_the_destination_protocols_say_what_the_writer_calls(
    writers: list[AsyncWriter], tmp_path: Path
) -> None:
    """Issue 13 item 4: the optional methods are written down as protocols; the writer
    checks once which a destination implements, and calls only those."""
    from logxpy_otel._writer import ClosableDestination, FlushableDestination, RotatingDestination

    file = AsyncFileDestination(tmp_path / "p.jsonl")
    assert isinstance(file, RotatingDestination | FlushableDestination | ClosableDestination)
    assert all(isinstance(file, p) for p in (RotatingDestination, FlushableDestination, ClosableDestination))

    calls: list[str] = []

    class OnlyClose:
        def __call__(self, data: bytes) -> None:
            calls.append("write")

        def close(self) -> None:
            calls.append("close")

    class BrokenRoom(Collect):
        def rotation_due(self) -> bool:
            raise RuntimeError("broken check")

        def rotate(self) -> None:
            calls.append("rotate")

        def room(self) -> int | None:
            raise RuntimeError("broken check")

    broken = BrokenRoom()
    writer = make(writers, OnlyClose(), broken, lambda data: calls.append("plain"))
    writer.enqueue(item(1))
    assert writer.flush(10.0) is True
    writer.stop(5.0)
    file.close()
    assert calls == ["write", "plain", "close"], "flush() and rotate() are never looked for where absent"
    assert [r["n"] for r in broken.records()] == [1], "a broken check never stops the writes"


# -- issue 13 item 8: tests that notice when the code is wrong ----------------------------------


def test_max_restarts_crashes_are_survived_with_doubling_backoff_and_the_next_falls_back(
    writers: list[AsyncWriter], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """max_restarts=2: the thread is restarted after crashes 1 and 2 (0.1 s, then 0.2 s
    later), and only the third sends writes to the callers' threads."""
    caplog.set_level(logging.ERROR, logger="logxpy_otel")
    dest = Collect()
    writer = make(writers, dest, batch_size=5, flush_interval_ms=10, max_restarts=2)
    real = writer._output.trees.number
    faults = [2]

    def flaky(items: Any, out: list[bytes]) -> int:
        if faults[0]:
            faults[0] -= 1
            raise RuntimeError("injected writer fault")
        return real(items, out)

    monkeypatch.setattr(writer._output.trees, "number", flaky)
    for n in range(5):
        writer.enqueue(item(n))
    assert writer.flush(10.0)
    assert writer.metrics.restarts == 2
    assert writer.is_running, "two crashes of two allowed: still a thread of its own"
    messages = [r.getMessage() for r in caplog.records]
    assert any("crashed (1 of 2); restarting in 0.1 s" in m for m in messages), messages
    assert any("crashed (2 of 2); restarting in 0.2 s" in m for m in messages), messages
    assert not any("writing synchronously" in m for m in messages)
    faults[0] = 1
    for n in range(5, 10):
        writer.enqueue(item(n))
    assert writer.flush(10.0)
    wait_until(lambda: not writer.is_running)
    assert any("crashed 3 times; writing synchronously" in r.getMessage() for r in caplog.records)
    writer.enqueue(item(10))  # written in this thread before enqueue returns
    assert [r["n"] for r in dest.records()] == list(range(11))


def test_records_behind_a_flush_in_one_batch_are_written_in_order(writers: list[AsyncWriter]) -> None:
    """A flush marker in the middle of a batch: the records after it go back to the queue's
    front in their order, and are written after the marker is answered."""
    gate = Gated()
    writer = make(writers, gate, flush_interval_ms=10)
    writer.enqueue(item(0))
    assert gate.entered.wait(10.0)  # the writer holds record 0 at the gate
    for n in (1, 2, 3):
        writer.enqueue(item(n))
    results: list[bool] = []
    flusher = threading.Thread(target=lambda: results.append(writer.flush(10.0)))
    flusher.start()
    wait_until(lambda: writer._queue.waiting_flushes > 0)  # the flush is queued behind 1, 2, 3
    for n in (4, 5, 6):
        writer.enqueue(item(n))
    gate.open()
    flusher.join(10.0)
    assert results == [True]
    assert writer.flush(10.0)
    assert [r["n"] for r in gate.records()] == list(range(7))


def test_max_queue_depth_keeps_the_peak_after_the_queue_drains(writers: list[AsyncWriter]) -> None:
    writer = make(writers, Collect(), flush_interval_ms=600_000)
    for n in range(7):
        writer.enqueue(item(n))
    assert writer.flush(5.0)
    m = writer.metrics
    assert (m.queue_depth, m.max_queue_depth) == (0, 7)
    writer.enqueue(item(7))
    assert writer.flush(5.0)
    assert writer.metrics.max_queue_depth == 7, "the peak, not the last depth"


def test_the_writer_thread_closes_idle_traces(writers: list[AsyncWriter]) -> None:
    """A trace with no record for trace_idle_ms gets its end line while the app runs."""
    dest = Collect()
    writer = make(writers, dest, flush_interval_ms=10, trace_idle_ms=30)
    writer.enqueue(item(0, trace=TRACE))
    assert writer.flush(5.0)
    wait_until(lambda: b'"st":"succeeded"' in dest.data)
    lines = parse_lines(dest.data)
    assert [line.get("st") for line in lines] == ["started", None, "succeeded"]
    assert writer.is_running


class _SlowFirst:
    """A destination whose first write takes ``delay`` seconds; counts its closes."""

    def __init__(self, delay: float) -> None:
        self.closed = 0
        self.calls = 0
        self.delay = delay
        self.data: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.calls += 1
        if self.calls == 1:
            time.sleep(self.delay)
        self.data.append(data)

    def close(self) -> None:
        self.closed += 1


def test_a_stop_that_runs_out_of_time_just_as_the_thread_ends_still_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """stop() saw the thread alive, and the thread ended before stop() left it the close:
    nobody closed (file open, trees without end lines). Both decide under one lock now."""
    import inspect
    import sys as sys_

    destination = _SlowFirst(0.4)
    writer = AsyncWriter([destination], AsyncConfig(batch_size=10))
    for n in range(20):
        writer.enqueue(item(n, "ab" * 16))
    source, first = inspect.getsourcelines(AsyncWriter.stop)
    at = first + next(i for i, text in enumerate(source) if "if not finished:" in text)

    def local(frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno == at:
            time.sleep(0.5)  # preempted here; the thread ends meanwhile
        return local

    sys_.settrace(lambda f, e, a: local if e == "call" and f.f_code is AsyncWriter.stop.__code__ else None)
    try:
        writer.stop(0.2)
    finally:
        sys_.settrace(None)
    assert writer._thread is not None
    writer._thread.join(5)
    assert destination.closed == 1
    lines = parse_lines(b"".join(destination.data))
    assert [line.get("st") for line in lines if line.get("at")] == ["started", "succeeded"]


def test_a_writer_thread_that_crashes_after_a_stop_ran_out_of_time_still_closes() -> None:
    destination = _SlowFirst(0.6)
    writer = AsyncWriter([destination], AsyncConfig(batch_size=10))
    for n in range(30):
        writer.enqueue(item(n, "ab" * 16))
    trees = writer._output.trees
    real = trees.number
    calls: list[int] = []

    def number(items: Any, out: Any) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("numbering fault")
        return real(items, out)

    trees.number = number  # type: ignore[method-assign]
    assert writer.stop(0.2) is False
    assert writer._thread is not None
    writer._thread.join(5)
    metrics = writer.metrics
    assert destination.closed == 1 and metrics.pending == 0
    assert metrics.written + metrics.dropped == 30


def test_a_flush_by_a_thread_holding_the_queue_lock_says_false_at_once(writers: list[AsyncWriter]) -> None:
    """A signal handler that flushes (``logging.shutdown`` in a SIGTERM handler) landing
    while its thread held the queue's lock (a producer in the full-queue path, between
    waits): the writer cannot take the lock to answer until the handler returns, and the
    flush waited out its whole timeout (5 s; with a repeating signal, nested for good)."""
    dest = Collect()
    writer = make(writers, dest)
    writer.enqueue(item(0))
    with writer._queue._lock:  # (what _when_full holds when the signal lands)
        started = time.monotonic()
        assert writer.flush(5.0) is False
        assert time.monotonic() - started < 1.0
    assert writer.flush(10.0) is True
    assert [r["n"] for r in dest.records()] == [0]


# -- hostile review, session 33 ---------------------------------------------------------------


def test_an_interrupt_anywhere_in_a_synchronous_write_leaves_the_writer_writing(tmp_path: Path) -> None:
    """An interrupt (Ctrl-C, an alarm's exception) that landed as a synchronous write ended,
    before its ``finally`` cleared the mark of a write under way, left it set: every later
    record of that thread was put off behind a write that would never end (10,000 of
    10,000 in a hostile review: none in the file, none counted, memory growing), and
    ``shutdown`` raised RecursionError. The mark is now cleared by the write's own
    ``finally``. Here the interrupt lands at every place in turn."""
    from _helpers import interrupt_at
    from opentelemetry.sdk._logs import LoggerProvider

    from logxpy_otel import LogxpyLogRecordProcessor, _writer

    path = tmp_path / "sync.jsonl"
    processor = LogxpyLogRecordProcessor(path, config=AsyncConfig(async_enabled=False))
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("sync")
    writer = processor._writer
    try:
        for n in range(10_000):  # bounded: the places one write passes
            interrupted = interrupt_at(n, _writer.__file__, lambda: logger.emit(body=f"r{n}"))
            assert writer._writing is None, f"a write stayed under way (place {n})"
            if not interrupted:
                assert n > 2, "the interrupt must be able to land"
                break
        else:
            raise AssertionError("the write never ended")
        logger.emit(body="after")
        assert processor.force_flush(10_000)
        assert any(line.get("msg") == "after" for line in parse_lines(path.read_bytes()))
        m = processor.metrics
        assert m.enqueued == m.written + m.dropped + m.pending and not writer._deferred
    finally:
        provider.shutdown()
        processor.shutdown()


def test_a_destination_s_base_exception_after_numbering_leaves_whole_trees_after_the_retry() -> None:
    """A destination raising a ``BaseException`` (``gevent.Timeout``, ``trio.Cancelled``:
    not ours to hold) after the batch was numbered crashed the writer thread, which retried
    the batch: but the trees had moved on, so the retried lines went on at ``lvl`` [4], with
    no start line before them, and logxpy's Parser never completed the tree (80 of 2,000
    in a stress run). The trees now start over before it goes on, as after a lost write."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.trace import TracerProvider

    from logxpy_otel import LogxpyLogRecordProcessor

    class Cancelled(BaseException):
        pass

    out: list[bytes] = []
    calls = [0]

    def destination(data: bytes) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise Cancelled
        out.append(bytes(data))

    processor = LogxpyLogRecordProcessor(destinations=[destination], flush_interval=5)
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    with TracerProvider(shutdown_on_exit=False).get_tracer("t").start_as_current_span("req"):
        provider.get_logger("x").emit(body="one")
        provider.get_logger("x").emit(body="two")
    assert processor.force_flush(10_000)
    processor.shutdown()
    lines = parse_lines(b"".join(out), raw_tid=True)
    assert [line.get("msg") for line in lines if "msg" in line] == ["one", "two"]
    by_tree: dict[str, list[Any]] = {}
    for line in lines:
        by_tree.setdefault(line["tid"], []).append(line)
    for tid, tree in by_tree.items():
        if any("msg" in line for line in tree):  # (the lost tree's end line stands alone)
            assert [line["lvl"] for line in tree] == [[n] for n in range(1, len(tree) + 1)], tid
            assert tree[0].get("st") == "started" and tree[-1].get("st") == "succeeded", tid
    assert processor.metrics.restarts == 1
