"""The file under stress and failure: many processes, a full disk, failed writes, lost
permissions, bad paths at start-up, and fsync.

Whatever the disk does, the application never sees an exception: losses are counted
(``errors``, ``dropped_by_reason['io_error']``) and the file keeps whole lines.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from _helpers import Collect, FakeClock, assert_accounting, fill_disk, item, parse_lines
from _helpers import start_untimed_writer as make
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider

from logxpy_otel import (
    AsyncFileDestination,
    AsyncWriter,
    DropReason,
    LogxpyLogRecordProcessor,
    _destinations,
    reader,
)

HEX32 = re.compile(r"^[0-9a-f]{32}$")
TRACE = "5b8efff798038103d269b633813fc60c"


def check_lines(data: bytes) -> list[dict[str, Any]]:
    """Every line whole and valid (docs/format.md); each trace's lines numbered in order
    and framed by start/end lines. Returns the record lines."""
    lines = parse_lines(data)
    recs = []
    next_lvl: dict[str, int] = {}
    task_ids: set[str] = set()
    for line in lines:
        tid, lvl = line["tid"], line["lvl"]
        assert isinstance(line["ts"], int | float), line
        if not HEX32.match(tid):
            assert lvl == [1] and "." in tid and "at" not in line, line
            assert tid not in task_ids, f"task id {tid} twice"
            task_ids.add(tid)
            recs.append(line)
        elif line.get("st") == "started":
            assert tid not in next_lvl and lvl == [1], line
            next_lvl[tid] = 2
        else:
            assert lvl == [next_lvl[tid]], line
            next_lvl[tid] += 1
            if "at" in line:
                del next_lvl[tid]
            else:
                recs.append(line)
    assert not next_lvl, "every trace ends in the file"
    return recs


class FlakyWrite:
    """Replaces ``os.write`` for one file descriptor with a script of outcomes.

    Each call on that descriptor takes the next step: an int ``k`` writes only the first
    ``k`` bytes, an ``OSError`` is raised, ``"ok"`` writes normally; with the script used
    up, ``after`` applies. Other descriptors are untouched.
    """

    def __init__(self, fd: Callable[[], int | None], steps: list[Any], after: Any = "ok") -> None:
        self._fd = fd
        self._steps = list(steps)
        self._after = after
        self._real = os.write
        self.calls = 0

    def __call__(self, fd: int, data: Any) -> int:
        if fd != self._fd():
            return self._real(fd, data)
        self.calls += 1
        step = self._steps.pop(0) if self._steps else self._after
        if isinstance(step, OSError):
            raise step
        if isinstance(step, int):
            return self._real(fd, bytes(data)[:step])
        return self._real(fd, data)


def enospc() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def part_then_full(dest: AsyncFileDestination, part: Callable[[bytes], int]) -> Callable[[int, Any], int]:
    """An ``os.write`` for ``dest``: the first ``part(data)`` bytes of the first write go
    out, then the disk is full (ENOSPC). Other descriptors write as usual."""
    real_write = os.write
    cut: list[int] = []

    def write(fd: int, data: Any) -> int:
        if fd != dest._fd:
            return real_write(fd, data)
        raw = bytes(data)
        if not cut:
            cut.append(part(raw))
            return real_write(fd, raw[: cut[0]])
        raise enospc()

    return write


# -- many processes, one file ---------------------------------------------------------------

PRODUCER = textwrap.dedent(
    """
    import sys
    import orjson
    from logxpy_otel import AsyncConfig, AsyncFileDestination, AsyncWriter
    path, p, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    writer = AsyncWriter([AsyncFileDestination(path)], AsyncConfig(batch_size=500, max_queue_size=5_000))
    trace = f"{p + 1:032x}"
    assert sys.stdin.readline() == "go\\n"  # all processes start writing together
    for n in range(count):
        body = orjson.dumps({"ts": float(n), "p": p, "n": n, "pad": "x" * (n % 64)})[1:]
        assert writer.enqueue((trace if n % 10 == 0 else None, float(n), False, body, b"", None, None))
    ok = writer.stop(60)
    m = writer.metrics
    sys.exit(0 if ok and (m.written, m.dropped, m.errors) == (count, 0, 0) else 3)
    """
)


def test_four_processes_append_20000_records_each_to_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    procs, count = 4, 20_000
    children = [
        subprocess.Popen(
            [sys.executable, "-c", PRODUCER, str(path), str(p), str(count)],
            stdin=subprocess.PIPE,
            text=True,
        )
        for p in range(procs)
    ]
    try:
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.close()
        codes = [child.wait(60) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert codes == [0] * procs
    data = path.read_bytes()
    recs = check_lines(data)  # every line whole: no two processes' writes interleave inside one
    assert len(recs) == procs * count == 80_000
    by_process: dict[int, list[int]] = {p: [] for p in range(procs)}
    for rec in recs:
        by_process[rec["p"]].append(rec["n"])
        assert rec["pad"] == "x" * (rec["n"] % 64)
    for p in range(procs):
        assert by_process[p] == list(range(count)), f"process {p}: records missing, repeated or reordered"
    prefixes = {rec["tid"].split(".")[0] for rec in recs if "." in rec["tid"]}
    assert len(prefixes) == procs, "each process has its own task-id prefix"


# -- a full disk ---------------------------------------------------------------------------

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")


@needs_dev_full
def test_disk_full_is_survived_and_counted_never_raised() -> None:
    provider = LoggerProvider(shutdown_on_exit=False)
    processor = LogxpyLogRecordProcessor("/dev/full", retry_timeout=50)  # milliseconds
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("app")
    for n in range(30):
        logger.emit(body=f"record {n}", severity_number=SeverityNumber.INFO)  # must not raise
    assert processor.force_flush(10_000) is False, "flush must not claim records the disk refused"
    m = processor.metrics
    assert m.dropped_by_reason == {DropReason.IO_ERROR: 30}
    assert m.written == 0 and m.errors >= 1
    assert_accounting(m)
    provider.shutdown()  # must not raise either
    logger.emit(body="after shutdown")
    assert_accounting(processor.metrics)


@needs_dev_full
def test_disk_full_beside_a_good_destination_loses_nothing_there(
    writers: list[AsyncWriter], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="logxpy_otel")
    full = AsyncFileDestination("/dev/full", retry_timeout_s=0.05)
    good = Collect()
    writer = make(writers, full, good, batch_size=10)
    for n in range(40):
        assert writer.enqueue(item(n, trace=TRACE if n % 2 else None)) is True
    assert writer.flush(10.0) is True, "every record reached one destination"
    m = writer.metrics
    assert m.errors == m.batches >= 4, "each batch the full disk refused is counted"
    assert (m.written, m.dropped) == (40, 0)
    assert [r["n"] for r in good.records()] == list(range(40))
    assert any("No space left on device" in r.getMessage() for r in caplog.records)


def test_a_disk_that_fills_mid_line_counts_written_exactly_what_can_be_read_back(small_disk: Path) -> None:
    """The kernel's own short write (a tmpfs of a few pages), not a scripted one: the line
    it cuts spoils only itself, and ``written`` is what a reader finds."""
    path = small_disk / "app.jsonl"
    provider = LoggerProvider(shutdown_on_exit=False)
    processor = LogxpyLogRecordProcessor(str(path), retry_timeout=1)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("app")
    emitted: list[str] = []

    def log(count: int) -> None:
        for _ in range(count):
            emitted.append(os.urandom(150).hex())
            logger.emit(body=emitted[-1], severity_number=SeverityNumber.INFO)
        processor.force_flush(10_000)

    fill_disk(small_disk / "filler", leave=os.statvfs(small_disk).f_frsize)  # one page free
    log(40)  # about 20 KB: the page takes part of a line, then ENOSPC
    size = path.stat().st_size
    assert size > 0 and not path.read_bytes().endswith(b"\n"), "the kernel cut a line"
    (small_disk / "filler").unlink()
    log(10)
    assert processor.force_flush(10_000)
    provider.shutdown()
    m = processor.metrics
    assert_accounting(m)
    assert m.dropped == m.dropped_by_reason[DropReason.IO_ERROR] > 0
    lines = list(reader.read_file(path))
    bad = [line for line in lines if isinstance(line, reader.BadLine)]
    assert len(bad) == 1 and not bad[0].torn and bad[0].end == size + 1, bad  # ended by the next write
    bodies = [str(line.record.log_record.body) for line in lines if isinstance(line, reader.LineRecord)]
    assert len(bodies) == len(set(bodies)) == m.written
    assert bodies[-10:] == emitted[-10:], "the lines after the cut one are whole"
    assert set(bodies) <= set(emitted) and m.written + m.dropped == len(emitted)


_FILE_SIZE_LIMITED = """
import json, logging, os, resource, sys
from opentelemetry.sdk._logs import LoggerProvider
from logxpy_otel import LogxpyLogRecordProcessor
warnings = []
handler = logging.Handler()
handler.emit = lambda record: warnings.append(record.getMessage())
logging.getLogger("logxpy_otel").addHandler(handler)
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
options = json.loads(sys.argv[2])
processor = LogxpyLogRecordProcessor(sys.argv[1], retry_timeout=1, **options)
provider = LoggerProvider(shutdown_on_exit=False)
provider.add_log_record_processor(processor)
for n in range(100):
    provider.get_logger("app").emit(body="x" * 200)  # about 40 KB in all: twice the limit
processor.force_flush(10_000)
m = processor.metrics
reasons = {str(k): v for k, v in m.dropped_by_reason.items()}
print(json.dumps([m.enqueued, m.written, m.dropped, reasons, warnings]))
"""


@pytest.mark.parametrize("max_bytes", [None, 40_000, 10_000])
def test_a_file_size_limit_is_warned_of_at_set_up_unless_rotation_stays_under_it(
    tmp_path: Path, max_bytes: int | None
) -> None:
    """A process with a file size limit (``ulimit -f``; Python ignores SIGXFSZ, so each
    write past it fails with EFBIG): no rotation under the limit means every record past it
    is lost, so the set-up says so, naming the limit and what to set; with ``max_bytes``
    under it the file rotates in time and nothing is lost."""
    from _helpers import run_script

    options = {} if max_bytes is None else {"max_bytes": max_bytes}
    done = run_script(_FILE_SIZE_LIMITED, str(tmp_path / "app.jsonl"), json.dumps(options))
    assert done.returncode == 0, done.stderr
    enqueued, written, dropped, reasons, warnings = json.loads(done.stdout)
    assert enqueued == written + dropped == 100
    limited = [w for w in warnings if "file size limit" in w]
    if max_bytes == 10_000:
        assert (written, limited) == (100, [])
    else:
        assert dropped > 0 and reasons == {"io_error": dropped}
        assert len(limited) == 1 and "20000 bytes" in limited[0] and "max_bytes" in limited[0], warnings


# -- failed writes, retried ------------------------------------------------------------------


def test_write_errors_within_the_retry_time_lose_and_repeat_nothing(
    writers: list[AsyncWriter], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, retry_timeout_s=10.0)
    # Half a line goes out, then three ENOSPC, then the rest: the batch is completed.
    flaky = FlakyWrite(lambda: dest._fd, [25, enospc(), enospc(), enospc()])
    monkeypatch.setattr(_destinations.os, "write", flaky)
    writer = make(writers, dest)
    for n in range(20):
        writer.enqueue(item(n, trace=TRACE if n % 3 else None))
    assert writer.flush(10.0) is True
    for n in range(20, 25):
        writer.enqueue(item(n))
    assert writer.stop(10.0)
    monkeypatch.undo()
    assert flaky.calls >= 5
    assert [r["n"] for r in check_lines(path.read_bytes())] == list(range(25))
    m = writer.metrics
    assert (m.written, m.dropped, m.errors) == (25, 0, 0)


def test_a_batch_failing_past_the_retry_time_is_dropped_and_the_next_one_is_whole(
    writers: list[AsyncWriter], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, retry_timeout_s=0.03)
    real_write = os.write
    # the whole first line and 10 bytes of the second
    monkeypatch.setattr(_destinations.os, "write", part_then_full(dest, lambda raw: raw.index(b"\n") + 11))
    writer = make(writers, dest)
    for n in range(3):
        assert writer.enqueue(item(n)) is True
    assert writer.flush(10.0) is False, "the batch could not be written"
    m = writer.metrics
    # How many count as written (the first line got in whole): see the test after this one.
    assert set(m.dropped_by_reason) == {DropReason.IO_ERROR} and m.written + m.dropped == 3
    assert m.errors == 1
    monkeypatch.setattr(_destinations.os, "write", real_write)  # the disk has room again
    for n in range(3, 6):
        writer.enqueue(item(n, trace=TRACE))
    assert writer.flush(10.0) is True
    assert writer.stop(10.0)
    assert_accounting(writer.metrics)
    raw_lines = path.read_bytes().split(b"\n")
    assert raw_lines[-1] == b"", "the file ends with a newline"
    # The first line of the failed batch went out whole; the torn start of the second is
    # ended by a newline, so it spoils only itself; the next batch's lines are all whole.
    torn = raw_lines[1]
    assert len(torn) == 10 and torn.startswith(b'{"tid":'), torn
    recs = check_lines(b"\n".join([raw_lines[0], *raw_lines[2:]]))
    assert [r["n"] for r in recs] == [0, 3, 4, 5]


def nth_line_end(raw: bytes, n: int) -> int:
    """The offset just past the ``n``-th newline of ``raw``."""
    end = 0
    for _ in range(n):
        end = raw.index(b"\n", end) + 1
    return end


LINES = [b'{"ts":1.0,"tid":"x.%d","lvl":[1],"pad":"%s"}\n' % (n, b"p" * n) for n in range(4)]


def test_a_write_cut_short_says_how_many_whole_lines_got_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, retry_timeout_s=0.0, max_bytes=10_000)
    data = b"".join(LINES)
    cut = nth_line_end(data, 2) + 10
    monkeypatch.setattr(_destinations.os, "write", part_then_full(dest, lambda raw: cut))
    with pytest.raises(_destinations.PartialWriteError) as info:
        dest(data)
    monkeypatch.undo()
    error = info.value
    assert isinstance(error, OSError)
    assert (error.errno, error.strerror, error.lines) == (errno.ENOSPC, "No space left on device", 2)
    assert isinstance(error.__cause__, OSError) and error.__cause__.errno == errno.ENOSPC
    assert path.read_bytes() == data[:cut]
    assert dest.room() == 10_000 - cut, "what got in takes room in the file"
    dest.close()


@pytest.mark.parametrize("lead", [False, True])
def test_a_line_cut_just_before_its_newline_counts_as_written_and_the_next_write_ends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lead: bool
) -> None:
    """A hostile review (session 35), on a real full disk: a write stopped exactly before a
    line's newline left that line whole but for it, and the next write's newline completes
    it, yet its record was counted ``io_error`` (and the reader, and replay, found it)."""
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, retry_timeout_s=0.0)
    if lead:  # (the write starts with the newline that ends an earlier torn line)
        path.write_bytes(b'{"torn')
        dest._look_at_end(dest._fd, mid_line=True)
    data = b"".join(LINES)
    cut = nth_line_end(data, 2) - 1 + lead
    monkeypatch.setattr(_destinations.os, "write", part_then_full(dest, lambda raw: cut))
    with pytest.raises(_destinations.PartialWriteError) as info:
        dest(data)
    monkeypatch.undo()
    assert info.value.lines == 2
    after = b'{"ts":2.0,"tid":"x.9","lvl":[1]}'
    dest(after + b"\n")
    dest.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[lead : lead + 3] == [*(line.rstrip(b"\n") for line in LINES[:2]), after]


def test_the_newline_that_ends_a_torn_line_is_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, retry_timeout_s=0.0)
    data = b"".join(LINES)
    # Each call: how much of the data (with the newline that ends the torn line before
    # it, from the second call on) gets in, and how many whole lines that makes.
    for part, lines in [(10, 0), (1 + len(LINES[0]) + 5, 1), (1, 0), (len(data), 4)]:
        monkeypatch.undo()  # the real os.write, for part_then_full to wrap
        monkeypatch.setattr(_destinations.os, "write", part_then_full(dest, lambda raw, part=part: part))
        if lines == len(LINES):
            dest(data)  # whole: no error
        else:
            with pytest.raises(_destinations.PartialWriteError) as info:
                dest(data)
            assert info.value.lines == lines, part
    monkeypatch.undo()
    dest.close()
    raw = path.read_bytes().split(b"\n")
    assert raw == [data[:10], LINES[0][:-1], LINES[1][:5], *[line[:-1] for line in LINES], b""]


def test_a_write_failing_before_anything_got_in_still_ends_the_torn_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, retry_timeout_s=0.0)
    monkeypatch.setattr(_destinations.os, "write", part_then_full(dest, lambda raw: 10))
    with pytest.raises(OSError):
        dest(LINES[0])  # a torn line is left
    monkeypatch.undo()
    monkeypatch.setattr(_destinations.os, "write", FlakyWrite(lambda: dest._fd, [enospc()]))
    with pytest.raises(OSError) as info:
        dest(LINES[1])  # nothing gets in, not even the newline that would end the torn line
    assert type(info.value) is OSError and info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    dest(LINES[2])
    dest.close()
    assert path.read_bytes() == LINES[0][:10] + b"\n" + LINES[2], "the torn line still gets its newline"


def test_records_that_got_in_before_the_disk_filled_count_as_written(
    writers: list[AsyncWriter], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, retry_timeout_s=0.0)
    real_write = os.write
    # The lines: T's start line, records 0 and 1 (of T), record 2 (no trace), record 3
    # (T), record 4 (no trace). Four lines and a bit get in: records 0-2, not the start line.
    monkeypatch.setattr(
        _destinations.os, "write", part_then_full(dest, lambda raw: nth_line_end(raw, 4) + 10)
    )
    writer = make(writers, dest, trace_idle_ms=600_000)
    for n in range(5):
        assert writer.enqueue(item(n, trace=None if n in (2, 4) else TRACE)) is True
    assert writer.flush(10.0) is False, "records 3 and 4 were lost"
    m = writer.metrics
    assert (m.written, m.dropped_by_reason, m.errors) == (3, {DropReason.IO_ERROR: 2}, 1)
    assert_accounting(m)
    monkeypatch.setattr(_destinations.os, "write", real_write)
    writer.enqueue(item(5))
    assert writer.flush(10.0) is True
    assert writer.stop(10.0)
    m = writer.metrics
    assert (m.written, m.dropped) == (4, 2)
    raw = path.read_bytes().split(b"\n")
    assert [parse_lines(line + b"\n")[0].get("n") for line in raw[1:4]] == [0, 1, 2], "in the file, whole"
    assert len(raw[4]) == 10, "then the torn start of record 3, ended by a newline"
    assert parse_lines(raw[5] + b"\n")[0]["n"] == 5, "then the next batch, whole"


def test_a_partial_write_in_one_destination_and_none_in_another_counts_the_most(
    writers: list[AsyncWriter], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two files: one takes two lines of the batch, the other none; the two records count
    as written, the rest as lost; the next batch goes to the one that still works."""
    partial = AsyncFileDestination(tmp_path / "partial.jsonl", retry_timeout_s=0.0)
    full = AsyncFileDestination(tmp_path / "full.jsonl", retry_timeout_s=0.0)
    cut = part_then_full(partial, lambda raw: nth_line_end(raw, 2))
    real_write = os.write

    def write(fd: int, data: Any) -> int:
        if fd == full._fd:
            raise enospc()
        return cut(fd, data) if fd == partial._fd else real_write(fd, data)

    monkeypatch.setattr(_destinations.os, "write", write)
    writer = make(writers, partial, full)
    for n in range(4):
        writer.enqueue(item(n))
    assert writer.flush(10.0) is False
    m = writer.metrics
    assert (m.written, m.dropped_by_reason, m.errors) == (2, {DropReason.IO_ERROR: 2}, 2)
    assert [r["n"] for r in check_lines((tmp_path / "partial.jsonl").read_bytes())] == [0, 1]


def test_a_failed_batch_cut_at_a_line_end_leaves_no_empty_line(
    writers: list[AsyncWriter], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, retry_timeout_s=0.03)
    real_write = os.write
    # exactly the first line, then the disk is full
    monkeypatch.setattr(_destinations.os, "write", part_then_full(dest, lambda raw: raw.index(b"\n") + 1))
    writer = make(writers, dest)
    for n in range(3):
        writer.enqueue(item(n))
    assert writer.flush(10.0) is False
    monkeypatch.setattr(_destinations.os, "write", real_write)
    writer.enqueue(item(3))
    assert writer.flush(10.0) is True
    assert writer.stop(10.0)
    data = path.read_bytes()
    assert b"\n\n" not in data, f"an empty line in the file: {data!r}"
    assert [r["n"] for r in check_lines(data)] == [0, 3]


# -- permission lost while rotating ------------------------------------------------------------


def deny_open(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """``os.open`` of ``path`` fails as it would once the directory is no longer writable."""
    real_open = os.open

    def guarded(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(file) == str(path):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(_destinations.os, "open", guarded)


def test_permission_lost_at_reopen_is_counted_never_raised(
    writers: list[AsyncWriter], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.jsonl"
    clock = FakeClock(1_000.0)
    # (the reopen is retried for retry_timeout_s, as a write is: a short one here)
    dest = AsyncFileDestination(path, reopen_check_s=0.01, clock=clock, retry_timeout_s=0.05)
    writer = make(writers, dest, trace_idle_ms=600_000)
    for n in range(3):
        writer.enqueue(item(n, trace=TRACE))
    assert writer.flush(10.0)
    path.rename(tmp_path / "app.jsonl.1")  # logrotate moves the file away...
    deny_open(monkeypatch, path)  # ...and we may no longer create one
    clock.t += 1.0
    for n in range(3, 6):
        assert writer.enqueue(item(n)) is True  # never an exception into the application
    assert writer.flush(10.0) is False
    m = writer.metrics
    assert m.dropped_by_reason == {DropReason.IO_ERROR: 3}
    assert m.errors >= 2, "the failed reopen and the failed write are both counted"
    assert_accounting(m)
    # The records written before the move are whole in the moved file, their trace closed there.
    assert [r["n"] for r in check_lines((tmp_path / "app.jsonl.1").read_bytes())] == [0, 1, 2]
    assert not path.exists()


def _retries_seen(monkeypatch: pytest.MonkeyPatch) -> Any:
    """An event set when a file destination first waits to retry (its backoff's sleep)."""
    import threading

    retrying = threading.Event()
    real_sleep = _destinations.time.sleep

    def sleep(seconds: float) -> None:
        retrying.set()
        real_sleep(seconds)

    monkeypatch.setattr(_destinations.time, "sleep", sleep)
    return retrying


@pytest.mark.parametrize("how", ["deleted", "rotated"])
def test_a_reopen_that_fails_is_retried_as_a_write_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Session 34, a hostile review: a file that could not be opened again (its directory
    removed and a file put in its place, a disk out of inodes at a rotation) failed every
    batch at once, while a failed write is retried for ``retry_timeout``: 151 of 200
    records lost to a 1 s outage. The reopen is retried the same way now, and once the
    directory is back every record is written."""
    import shutil
    import threading

    logs = tmp_path / "logs"
    logs.mkdir()
    path = logs / "app.jsonl"
    retrying = _retries_seen(monkeypatch)
    rotation = {"max_bytes": 2_000} if how == "rotated" else {}
    processor = LogxpyLogRecordProcessor(str(path), retry_timeout=20_000, **rotation)  # type: ignore[arg-type]
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("app")
    logger.emit(body="before")
    assert processor.force_flush(10_000)

    def restore() -> None:
        assert retrying.wait(30)  # the writer is retrying: the outage ends
        (tmp_path / "logs").unlink()
        (tmp_path / "logs").mkdir()

    shutil.rmtree(logs)  # (the file with it: the next batch follows to a new one, or rotates)
    (tmp_path / "logs").write_bytes(b"")  # a file where the directory was: no open can succeed
    restorer = threading.Thread(target=restore)
    restorer.start()
    for n in range(200):
        logger.emit(body=f"r{n}" + "x" * 20)
    assert processor.force_flush(30_000)
    restorer.join()
    m = processor.metrics
    provider.shutdown()
    assert (m.written, dict(m.dropped_by_reason)) == (201, {}), m
    kept = [r["msg"] for f in sorted(logs.iterdir()) for r in parse_lines(f.read_bytes()) if "msg" in r]
    assert sorted(kept) == sorted(f"r{n}" + "x" * 20 for n in range(200)), len(kept)


def test_a_shutdown_during_reopen_retries_keeps_its_bound_and_counts_every_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session 34's reopen retries against a racing ``shutdown()``: the writer retrying a
    reopen for a ``retry_timeout`` of 60 s (the directory gone, a file in its place) must not
    hold the shutdown past its own bound, and the records it never wrote are counted."""
    import shutil
    import time

    logs = tmp_path / "logs"
    logs.mkdir()
    retrying = _retries_seen(monkeypatch)
    processor = LogxpyLogRecordProcessor(str(logs / "app.jsonl"), retry_timeout=60_000, shutdown_timeout=500)
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("app")
    logger.emit(body="before")
    assert processor.force_flush(10_000)
    shutil.rmtree(logs)
    logs.write_bytes(b"")  # (no open can succeed: the writer retries for 60 s)
    for n in range(20):
        logger.emit(body=f"r{n}")
    assert retrying.wait(10), "the writer retries the reopen"
    started = time.monotonic()
    processor.shutdown()
    took = time.monotonic() - started
    m = processor.metrics
    provider.shutdown()
    assert took < 30, f"shutdown waited {took:.1f} s of a 60 s retry"  # (its bound: 0.5 s)
    assert m.written == 1
    assert m.enqueued == m.written + m.dropped + m.pending == 21, m


@pytest.mark.parametrize("what", ["directory", "fifo", "symlink"])
def test_a_reopen_waiting_does_not_mend_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    """A review of session 34's reopen retries: a directory, a FIFO nobody reads, or (with
    ``nofollow``) a symlink put at the path of a deleted file made every batch wait out
    ``retry_timeout`` (in synchronous mode, every logging call: 5 s each). Those fail at once;
    the next batch tries again."""
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, nofollow=True, reopen_check_s=0.0)
    dest(b'{"n":1}\n')
    path.unlink()
    if what == "directory":
        path.mkdir()
    elif what == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(tmp_path / "elsewhere.jsonl")
    waits: list[float] = []
    monkeypatch.setattr(_destinations.time, "sleep", waits.append)
    with pytest.raises(OSError):
        dest(b'{"n":2}\n')
    assert waits == [], "no retry"
    dest.close()


@pytest.mark.parametrize("failure", ["reopen_after_external_rotation", "rename_at_size_rotation"])
def test_the_file_recovers_once_permission_is_back(
    writers: list[AsyncWriter], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    path = tmp_path / "app.jsonl"
    clock = FakeClock(1_000.0)
    if failure == "rename_at_size_rotation":
        dest = AsyncFileDestination(path, max_bytes=1, clock=clock)
    else:
        dest = AsyncFileDestination(path, reopen_check_s=0.01, clock=clock, retry_timeout_s=0.05)
    writer = make(writers, dest)
    writer.enqueue(item(0))
    assert writer.flush(10.0)
    if failure == "rename_at_size_rotation":

        def no_rename(src: Any, dst: Any) -> None:
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(_destinations.os, "rename", no_rename)
    else:
        path.rename(tmp_path / "app.jsonl.1")
        deny_open(monkeypatch, path)
    clock.t += 1.0
    writer.enqueue(item(1))
    if failure == "rename_at_size_rotation":
        # The rename failed: the error is counted and writing goes on in the same file.
        assert writer.flush(10.0) is True
        assert writer.metrics.errors >= 1
        assert 1 in [r["n"] for r in check_lines(path.read_bytes())]
    else:
        assert writer.flush(10.0) is False  # no file to write to past the retries: io_error
        assert writer.metrics.dropped_by_reason.get("io_error") == 1
    monkeypatch.undo()  # permission is back
    clock.t += 1.0
    writer.enqueue(item(2))
    assert writer.flush(10.0) is True, "a later batch must be written once the file can be opened"
    assert writer.stop(10.0)
    assert 2 in [r["n"] for r in check_lines(path.read_bytes())]


# -- start-up errors -----------------------------------------------------------------------------


def test_a_directory_at_the_path_names_the_path_and_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "logs"
    path.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        LogxpyLogRecordProcessor(path)
    assert info.value.errno == errno.EISDIR
    assert repr(str(path)) in str(info.value)
    assert "Is a directory" in str(info.value)


def test_a_parent_that_is_a_file_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "sub" / "app.jsonl"
    with pytest.raises(OSError, match="cannot open log file") as info:
        AsyncFileDestination(path)
    assert repr(str(path)) in str(info.value)
    assert info.value.__cause__ is not None, "the original error is kept as the cause"
    assert (tmp_path / "file").read_text() == "x", "the file in the way is left alone"


def test_a_parent_that_is_a_file_says_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError) as info:
        AsyncFileDestination(tmp_path / "file" / "app.jsonl")
    text = str(info.value)
    assert "Not a directory" in text or "not a directory" in text, text


def test_nofollow_refuses_a_symlink_at_the_path(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.jsonl"
    target.write_bytes(b"")
    link = tmp_path / "app.jsonl"
    link.symlink_to(target)
    with pytest.raises(OSError) as info:
        AsyncFileDestination(link, nofollow=True)
    assert info.value.errno == errno.ELOOP
    assert repr(str(link)) in str(info.value) and "symlink" in str(info.value)
    assert target.read_bytes() == b""
    # Without nofollow the link is followed.
    dest = AsyncFileDestination(link)
    dest(b'{"ts":1.0,"tid":"x.1","lvl":[1]}\n')
    dest.close()
    assert target.read_bytes() == b'{"ts":1.0,"tid":"x.1","lvl":[1]}\n'


def test_a_symlink_loop_is_named_as_one_not_as_nofollow(tmp_path: Path) -> None:
    """Every ELOOP was reported as "a symlink (nofollow)", nofollow or not."""
    (tmp_path / "a.jsonl").symlink_to(tmp_path / "b.jsonl")
    (tmp_path / "b.jsonl").symlink_to(tmp_path / "a.jsonl")
    with pytest.raises(OSError, match="symlink loop") as info:
        AsyncFileDestination(tmp_path / "a.jsonl")
    assert "nofollow" not in str(info.value)
    # ... and in a directory on the way to the file, it was called "a file".
    with pytest.raises(OSError, match="symlink loop") as info:
        AsyncFileDestination(tmp_path / "a.jsonl" / "app.jsonl")
    assert "is a file" not in str(info.value)


def test_nofollow_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_LOGXPY_NOFOLLOW", "true")
    link = tmp_path / "app.jsonl"
    link.symlink_to(tmp_path / "elsewhere.jsonl")
    with pytest.raises(OSError, match="symlink"):
        LogxpyLogRecordProcessor(link)
    assert not (tmp_path / "elsewhere.jsonl").exists()


# -- fsync -----------------------------------------------------------------------------------------


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The descriptors ``os.fsync`` was called with (the real call still runs)."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(_destinations.os, "fsync", counting)
    return calls


def test_fsync_batch_syncs_once_per_batch(
    writers: list[AsyncWriter], tmp_path: Path, fsyncs: list[int]
) -> None:
    dest = AsyncFileDestination(tmp_path / "app.jsonl", fsync="batch")
    fd = dest._fd
    writer = make(writers, dest, async_enabled=False)  # one batch per record, no flush() call
    for n in range(5):
        writer.enqueue(item(n))
    assert writer.metrics.batches == 5
    assert fsyncs == [fd] * 5


def test_fsync_interval_syncs_only_when_the_interval_passed(tmp_path: Path, fsyncs: list[int]) -> None:
    clock = FakeClock(1_000.0)
    dest = AsyncFileDestination(tmp_path / "app.jsonl", fsync=250, clock=clock)  # milliseconds
    synced = []
    for offset in (0.125, 0.25, 0.375, 0.5, 0.5, 0.625, 0.875):
        clock.t = 1_000.0 + offset
        dest(b'{"ts":1.0,"tid":"x.1","lvl":[1]}\n')
        synced.append(len(fsyncs))
    assert synced == [0, 1, 1, 2, 2, 2, 3]
    dest.flush()
    assert len(fsyncs) == 4, "flush() syncs when fsync is set"
    dest.close()


def test_fsync_at_an_interval_goes_on_after_the_clock_steps_back(tmp_path: Path, fsyncs: list[int]) -> None:
    """After the clock stepped back an hour, a second of writes at fsync=100 ms got no sync."""
    clock = FakeClock(1_800_000_000.0)
    dest = AsyncFileDestination(tmp_path / "app.jsonl", fsync=100, clock=clock)
    clock.t -= 3600.0
    for _ in range(10):
        clock.t += 0.1
        dest(b'{"a":1}\n')
    dest.close()
    assert len(fsyncs) >= 5, f"{len(fsyncs)} fsyncs in a second of writes at fsync=100 ms"


@pytest.mark.parametrize("fsync", ["batch", 100])
def test_fsync_on_a_device_is_not_asked_and_its_records_are_written(
    writers: list[AsyncWriter], fsync: str | int, fsyncs: list[int]
) -> None:
    """fsync(2) on a device or a FIFO fails (EINVAL): every record was counted as dropped
    though every line reached the device, and flush said False."""
    writer = make(writers, AsyncFileDestination("/dev/null", fsync=fsync))
    for n in range(5):
        writer.enqueue(item(n))
    assert writer.flush(5.0)
    m = writer.metrics
    assert (m.written, dict(m.dropped_by_reason)) == (5, {})
    assert fsyncs == []


def test_fsync_never_never_syncs(tmp_path: Path, fsyncs: list[int], writers: list[AsyncWriter]) -> None:
    dest = AsyncFileDestination(tmp_path / "app.jsonl")  # the default: never
    writer = make(writers, dest)
    for n in range(50):
        writer.enqueue(item(n))
    assert writer.flush(10.0)
    assert writer.stop(10.0)
    assert fsyncs == []


def test_fsync_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsyncs: list[int]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_LOGXPY_FSYNC", "batch")
    processor = LogxpyLogRecordProcessor(tmp_path / "app.jsonl")
    processor.writer.enqueue(item(1))
    assert processor.force_flush(5_000)
    assert len(fsyncs) >= 1
    processor.shutdown()


@pytest.mark.parametrize("got_in", [0, 2], ids=["nothing-got-in", "cut-after-two-lines"])
def test_after_a_write_that_lost_lines_a_trace_goes_on_in_a_whole_tree_of_its_own(
    writers: list[AsyncWriter], got_in: int
) -> None:
    """The trees counted lines as numbered, not as written: after a write the disk refused,
    the trace went on at ``lvl`` [3] with no start line in the file (or, after a cut write,
    jumped from [3] to [6]), a tree no reader can complete. Now its next lines open a new
    tree (a tid of its own), whole from its start line to its end line."""
    written: list[bytes] = []
    full = [True]

    def disk(data: bytes) -> None:
        if full[0]:
            full[0] = False
            written.append(b"".join(line + b"\n" for line in data.split(b"\n")[:got_in]))
            raise _destinations.PartialWriteError(errno.ENOSPC, "No space left on device", got_in)
        written.append(data)

    writer = make(writers, disk)
    for n in range(4):
        writer.enqueue(item(n, trace=TRACE))
    assert writer.flush(10.0) is False
    for n in range(4, 6):
        writer.enqueue(item(n, trace=TRACE))
    assert writer.flush(10.0) is True
    assert writer.stop(10.0)
    trees: dict[str, list[dict[str, Any]]] = {}
    for line in parse_lines(b"".join(written), raw_tid=True):
        trees.setdefault(line["tid"], []).append(line)
    for lines in trees.values():
        assert [line["lvl"] for line in lines] == [[k] for k in range(1, len(lines) + 1)], "no gap in a tree"
    last = list(trees.values())[-1]
    assert [line.get("st") for line in last] == ["started", None, None, "succeeded"]
    assert [line["n"] for line in last[1:3]] == [4, 5]
    assert_accounting(writer.metrics)


def test_a_trace_closed_while_its_end_line_could_not_be_written_opens_again_under_a_new_tid(
    writers: list[AsyncWriter],
) -> None:
    """A trace closed for idleness while the disk was full lost its end line; its next
    record opened it again at [1] under the same tid, after a tree with no end: two trees
    in one, which no reader completes."""
    from test_writer import wait_until

    written: list[bytes] = []
    full = [False]

    def disk(data: bytes) -> None:
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(data)

    writer = make(writers, disk, flush_interval_ms=10, trace_idle_ms=600_000)
    writer.enqueue(item(0, trace=TRACE))
    assert writer.flush(10.0)
    full[0] = True
    writer._output.trees.idle_timeout_s = 0.0  # idle now: the writer's next round closes it
    wait_until(lambda: writer._output.trees.open_traces == 0)
    full[0] = False
    writer.enqueue(item(1, trace=TRACE))
    assert writer.stop(10.0)
    trees: dict[str, list[dict[str, Any]]] = {}
    for line in parse_lines(b"".join(written), raw_tid=True):
        trees.setdefault(line["tid"], []).append(line)
    assert len(trees) == 2, "the record after the lost end line is in a tree of its own"
    for lines in trees.values():
        assert [line["lvl"] for line in lines] == [[k] for k in range(1, len(lines) + 1)]
    assert [line.get("st") for line in list(trees.values())[-1]] == ["started", None, "succeeded"]


def test_a_destination_that_keeps_failing_does_not_split_the_trees_of_one_that_works(
    writers: list[AsyncWriter],
) -> None:
    """Every write a second destination missed closed and reopened every trace: in the
    file that lost nothing, each batch was a tree of its own (200 trees for one trace)."""
    healthy = Collect()

    def broken(data: bytes) -> None:
        raise OSError(errno.EIO, "Input/output error")

    writer = make(writers, healthy, broken)
    for n in range(50):
        writer.enqueue(item(n, trace=TRACE))
        writer.flush(10.0)
    assert writer.stop(10.0)
    tids = {line["tid"] for line in parse_lines(healthy.data, raw_tid=True)}
    assert len(tids) <= 2, f"{len(tids)} trees for one trace in the file that lost nothing"
    assert [r["n"] for r in healthy.records()] == list(range(50))


def test_each_restart_takes_a_token_no_earlier_tree_of_the_writer_had() -> None:
    """The new token was the pid and 3 random characters: one in 238,328 draws repeats, and
    a tree the failure cut could so be continued by a later one."""
    from logxpy_otel._trees import TreeNumberer

    trees = TreeNumberer()
    item = ("ab" * 16, 1.0, False, b'"x":1', b"}", None, None)

    def tid_now() -> str:
        out: list[bytes] = []
        trees.number([item], out)
        return str(orjson.loads(b"".join(out).splitlines()[0])["tid"])

    tids = {tid_now()}
    for _ in range(5_000):
        trees.restart([])
        tids.add(tid_now())
    assert len(tids) == 5_001


class _Scripted:
    """A destination whose writes take the next step: "ok", "full" (nothing gets in), or
    ``k`` (the first ``k`` lines get in, then the disk is full)."""

    def __init__(self, *steps: str | int) -> None:
        self.steps = list(steps)
        self.data = b""

    def __call__(self, data: bytes) -> None:
        step = self.steps.pop(0) if self.steps else "ok"
        if step == "ok":
            self.data += data
            return
        if step == "full":
            raise OSError(errno.ENOSPC, "No space left on device")
        assert isinstance(step, int)
        lines = data.split(b"\n")[:-1][:step]
        self.data += b"".join(line + b"\n" for line in lines)
        raise _destinations.PartialWriteError(errno.ENOSPC, "No space left on device", len(lines))


@pytest.mark.parametrize(
    "steps",
    [("ok", "full", 1, "ok"), ("ok", "full", 1, "full", "ok"), ("ok", 1, 2, "ok"), ("full", 1, "full", 1)],
    ids=["full-cut-ok", "full-cut-full-ok", "cut-cut-ok", "full-cut-full-cut"],
)
def test_a_file_failing_beside_a_working_one_never_holds_a_tree_with_a_gap(
    writers: list[AsyncWriter], steps: tuple[str | int, ...]
) -> None:
    """A file already failing beside a working one that then took part of a write: the
    trees went on, and it held a tree with its start and end line and a record missing
    between them (or a tid cut and then used again), which logxpy's parser reads as whole."""
    failing, working = _Scripted(*steps), Collect()
    writer = make(writers, failing, working, async_enabled=False)
    for n in range(8):
        writer.enqueue(item(n, trace=TRACE if n % 2 else "7" * 32))
    assert writer.stop(10.0)
    trees: dict[str, list[dict[str, Any]]] = {}
    for line in parse_lines(failing.data, raw_tid=True):
        trees.setdefault(line["tid"], []).append(line)
    for tid, lines in trees.items():
        levels = [line["lvl"][0] for line in lines]
        starts = [line.get("st") == "started" for line in lines]
        assert starts.count(True) <= 1, f"{tid}: a tid opened twice in one file"
        if starts[0] and lines[-1].get("st") in ("succeeded", "failed"):
            assert levels == list(range(1, len(lines) + 1)), f"{tid}: a gap in a whole-looking tree: {levels}"
    assert [r["n"] for r in working.records()] == list(range(8))


def test_a_write_said_to_have_got_in_more_lines_than_it_had_counts_only_its_lines(
    writers: list[AsyncWriter],
) -> None:
    """A destination whose PartialWriteError claims more lines than the write had: the
    empty piece after the last newline counted as a record (written 4 of 3, io_error -1)."""
    calls = [0]

    def over_claiming(data: bytes) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise _destinations.PartialWriteError(
                errno.ENOSPC, "No space left on device", data.count(b"\n") + 1
            )

    writer = make(writers, over_claiming, async_enabled=False)
    for n in range(3):
        writer.enqueue(item(n))
    m = writer.metrics
    assert (m.written, dict(m.dropped_by_reason)) == (3, {})
    assert_accounting(m)


def test_end_lines_a_file_takes_in_part_do_not_split_the_next_write(writers: list[AsyncWriter]) -> None:
    """A file that took part of a restart's end lines left the "taken in part" mark set:
    the next write, whole everywhere, split every trace again, in the working file too."""
    working, failing = Collect(), _Scripted("ok", "ok", "full", "full", "full", "ok", 1)
    writer = make(writers, working, failing, async_enabled=False)
    for n, trace in [
        (1, TRACE),
        (2, "7" * 32),
        (3, TRACE),
        (4, TRACE),
        (5, "7" * 32),
        (6, TRACE),
        (7, TRACE),
        (8, TRACE),
    ]:
        writer.enqueue(item(n, trace=trace))
    assert writer.stop(10.0)
    trees: dict[str, list[int]] = {}
    for line in parse_lines(working.data, raw_tid=True):
        if "n" in line:
            trees.setdefault(line["tid"], []).append(line["n"])
    assert [7, 8] in list(trees.values()), trees


def test_a_line_cut_just_before_its_newline_is_ended_at_close_when_no_write_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A third review (session 35): the line counted written was left without its newline
    when no write came after (the process ended): a reader waits on such a last line in a
    live file, so it never found the record. The close ends it when there is room."""
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, retry_timeout_s=0.0)
    line = b'{"ts":1.0,"tid":"x.1","lvl":[1],"msg":"the only one"}\n'
    monkeypatch.setattr(_destinations.os, "write", part_then_full(dest, lambda raw: len(raw) - 1))
    with pytest.raises(_destinations.PartialWriteError) as info:
        dest(line)
    monkeypatch.undo()  # room again, and no write follows
    assert info.value.lines == 1
    dest.close()
    assert path.read_bytes() == line  # (whole: a reader takes it)


@pytest.mark.parametrize("cut_by_us", [False, True])
def test_a_close_never_ends_another_writer_s_line_nor_waits_for_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut_by_us: bool
) -> None:
    """A fourth review (session 35): a close that ends a cut line put a newline inside
    another process's line (unfinished at our opening, the lock its), after waiting out the
    lock for 1.5 s (6 s by default; an interrupt meanwhile left the file open for good). It
    ends only a line a write of ours cut, under the lock had at once, and always closes."""
    import fcntl
    import time

    path = tmp_path / "app.jsonl"
    path.write_bytes(b'{"first":1}\n')
    dest = AsyncFileDestination(path, retry_timeout_s=0.0)
    if cut_by_us:
        line = b'{"ts":1.0,"tid":"x.1","lvl":[1],"msg":"ours"}\n'
        monkeypatch.setattr(_destinations.os, "write", part_then_full(dest, lambda raw: len(raw) - 1))
        with pytest.raises(_destinations.PartialWriteError):
            dest(line)
        monkeypatch.undo()
    other = os.open(path, os.O_WRONLY | os.O_APPEND)  # another writer, its own lock
    fcntl.flock(other, fcntl.LOCK_EX)
    os.write(other, b'{"proc":"B","msg":"half')
    before = path.read_bytes()
    fd = dest._fd
    started = time.monotonic()
    dest.close()
    assert time.monotonic() - started < 0.5, "a close does not wait on another writer's lock"
    assert path.read_bytes() == before, "no newline of ours in another writer's line"
    with pytest.raises(OSError):
        os.fstat(fd)  # (closed)
    os.close(other)


def test_a_close_adds_no_empty_line_after_an_interrupt_that_got_nothing_in(tmp_path: Path) -> None:
    """A fifth review (session 35): an interrupt in a write that got nothing in (the
    application's alarm in a full disk's retry) had the close end a line that was whole:
    an empty line, at shutdown."""
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, retry_timeout_s=0.0)
    dest(b'{"a":1}\n')
    assert dest._fd is not None
    dest._look_at_end(dest._fd, mid_line=False)  # (what an interrupt in _write that got nothing in does)
    dest.close()
    assert path.read_bytes() == b'{"a":1}\n'


def test_a_line_cut_just_before_its_newline_is_ended_at_close_in_a_file_we_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(A sixth review, session 35.) A file we may only write to (``file_mode=0o200``, not
    root) has no reading descriptor to tell how it ends: the close gave up there. What our
    cut write left tells it."""
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, retry_timeout_s=0.0)
    line = b'{"ts":1.0,"tid":"x.1","lvl":[1],"msg":"ours"}\n'
    monkeypatch.setattr(_destinations.os, "write", part_then_full(dest, lambda raw: len(raw) - 1))
    with pytest.raises(_destinations.PartialWriteError):
        dest(line)
    monkeypatch.undo()
    dest._close_reader()  # (as when it could not be opened for reading)
    dest.close()
    assert path.read_bytes() == line
