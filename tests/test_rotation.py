"""Log files for months: size and time rotation, retention, gzip, path templates, external rotation.

Every rotated file must stand on its own: each line whole, each trace framed by its start
and end lines inside the file, readable by ``logxpy.parse.Parser``.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import gzip
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _helpers import (
    FakeClock,
    assert_accounting,
    fill_disk,
    item,
    logxpy_tasks,
    needs_logxpy,
    parse_lines,
    run_script,
)
from _helpers import start_untimed_writer as make
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider

from logxpy_otel import (
    AsyncFileDestination,
    AsyncWriter,
    DropReason,
    LogxpyLogRecordProcessor,
    _destinations,
    _rotation,
    reader,
    replay,
)

HEX32 = re.compile(r"^[0-9a-f]{32}$")
#: A UTC day boundary (2027-01-16T00:00:00Z) to put fake clocks near.
DAY = 1_800_057_600.0


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def non_utc_local_time() -> Iterator[None]:
    """Local time 5:30 ahead of UTC, so a backup name in local time would differ."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "IST-5:30"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def utc_stamp(t: float) -> str:
    """The backup-name time of ``t``, computed independently of the package."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def rotated_files(path: Path) -> list[Path]:
    """The backups of ``path`` in name order (oldest first), then the live file."""
    pattern = re.compile(re.escape(path.stem) + r"\.\d{8}T\d{6}\.\d{6}Z(-\d{3})?\.jsonl(\.gz)?$")
    names = sorted(p.name for p in path.parent.iterdir() if pattern.match(p.name))
    return [path.parent / name for name in names] + [path]


def check_file(data: bytes) -> tuple[list[dict[str, Any]], list[tuple[str, list[Any], str]]]:
    """The format checks on one whole file (docs/format.md); fails the test on a violation.

    Returns the record lines in order, and each trace segment (a start line to its end
    line) as ``(tid, [n of each record], status)``.
    """
    lines = parse_lines(data)  # every line one JSON object, the file ends with a newline
    assert b"\n\n" not in data and not data.startswith(b"\n"), "no empty line"
    recs: list[dict[str, Any]] = []
    segments: list[tuple[str, list[Any], str]] = []
    open_traces: dict[str, dict[str, Any]] = {}
    task_ids: set[str] = set()
    for line in lines:
        ts, tid, lvl = line["ts"], line["tid"], line["lvl"]
        assert isinstance(ts, int | float) and not isinstance(ts, bool), line
        assert isinstance(tid, str) and tid, line
        assert isinstance(lvl, list) and lvl and all(isinstance(x, int) and x > 0 for x in lvl), line
        if not HEX32.match(tid):
            assert "at" not in line, line
            assert lvl == [1] and "." in tid, line
            assert tid not in task_ids, f"task id {tid} used twice in one file"
            task_ids.add(tid)
            recs.append(line)
            continue
        seg = open_traces.get(tid)
        if "at" not in line:
            assert seg is not None, f"record of trace {tid} with no start line before it in this file"
            assert lvl == [seg["next"]], f"lvl of trace {tid} not consecutive: {lvl} != [{seg['next']}]"
            if not seg["ns"]:
                assert seg["start_ts"] == ts, "the start line carries the first record's ts"
            seg["next"] += 1
            seg["ns"].append(line.get("n"))
            seg["bad"] = seg["bad"] or bool(line.get("bad"))
            seg["last_ts"] = ts
            recs.append(line)
            continue
        assert line["at"] == "otel:trace" and set(line) == {"ts", "tid", "lvl", "at", "st"}, line
        if line["st"] == "started":
            assert seg is None, f"trace {tid} started twice without an end line between"
            assert lvl == [1], line
            open_traces[tid] = {"next": 2, "ns": [], "bad": False, "start_ts": ts, "last_ts": ts}
        else:
            assert seg is not None, f"end line of trace {tid} without its start line in this file"
            assert seg["ns"], f"trace {tid} framed with no record in it"
            assert lvl == [seg["next"]], line
            assert line["st"] == ("failed" if seg["bad"] else "succeeded"), line
            assert ts == seg["last_ts"], "the end line carries the last record's ts"
            segments.append((tid, seg["ns"], line["st"]))
            del open_traces[tid]
    assert not open_traces, f"traces left open at the end of the file: {sorted(open_traces)}"
    return recs, segments


def read_file(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def ns(path: Path) -> list[int]:
    return [r["n"] for r in check_file(read_file(path))[0]]


# -- size rotation under concurrent producers ---------------------------------------------

THREADS, PER_THREAD, MAX_BYTES = 4, 4_000, 32_768


def produce_rotating(
    writers: list[AsyncWriter],
    path: Path,
    backup_count: int,
    per_thread: int = PER_THREAD,
    max_bytes: int = MAX_BYTES,
) -> AsyncWriter:
    """4 threads log ``per_thread`` records each (3 in 4 inside short traces, some failed)
    into a file rotating at ``max_bytes``; the writer is stopped, so every file is complete."""
    dest = AsyncFileDestination(path, max_bytes=max_bytes, backup_count=backup_count)
    writer = make(
        writers,
        dest,
        batch_size=100,
        max_queue_size=1_000,
        trace_idle_ms=600_000,
        max_open_traces=8,  # traces also get closed (and reopened) inside a file
    )
    start = threading.Barrier(THREADS)

    def produce(t: int) -> None:
        start.wait(10)
        for n in range(per_thread):
            trace = None if n % 4 == 3 else f"{t:08x}{n // 40:024x}"
            failed = trace is not None and n % 97 == 5
            rec = item(n, trace=trace, failed=failed, thread=t, msg=f"t{t} n{n}", mt="info", bad=failed)
            assert writer.enqueue(rec) is True

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    assert writer.stop(30.0) is True
    m = writer.metrics
    assert (m.written, m.dropped, m.pending, m.errors) == (THREADS * per_thread, 0, 0, 0)
    return writer


def test_size_rotation_four_threads_every_record_once_in_self_contained_files(
    writers: list[AsyncWriter], tmp_path: Path
) -> None:
    path = tmp_path / "app.jsonl"
    produce_rotating(writers, path, backup_count=10_000)
    files = rotated_files(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files), "no stray files"
    assert len(files) > 10, "the test must rotate many times"
    seen: dict[int, list[int]] = {t: [] for t in range(THREADS)}
    for f in files:
        recs, _ = check_file(f.read_bytes())
        assert recs, f"{f.name} holds no record"
        for rec in recs:
            seen[rec["thread"]].append(rec["n"])
        if f != path:
            size = f.stat().st_size
            # Never past max_bytes; short of it by less than the end lines of the (at most
            # 8) open traces and one record, which the writer keeps room for.
            assert MAX_BYTES - 2_048 <= size <= MAX_BYTES, f"{f.name}: rotated at the wrong size ({size})"
    for t in range(THREADS):
        assert seen[t] == list(range(PER_THREAD)), f"thread {t}: records missing, repeated or out of order"


def test_size_rotation_four_threads_keeps_at_most_backup_count_newest_files(
    writers: list[AsyncWriter], tmp_path: Path
) -> None:
    path = tmp_path / "app.jsonl"
    produce_rotating(writers, path, backup_count=3)
    files = rotated_files(path)
    assert len(files) == 3 + 1, [f.name for f in files]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files), "no stray files"
    seen: dict[int, list[int]] = {t: [] for t in range(THREADS)}
    for f in files:
        for rec in check_file(f.read_bytes())[0]:
            seen[rec["thread"]].append(rec["n"])
    for t in range(THREADS):
        # Only the oldest files went: what is left of each thread is the end of its sequence
        # (possibly empty: a thread may have finished before the newest files began).
        kept = len(seen[t])
        assert seen[t] == list(range(PER_THREAD - kept, PER_THREAD)), f"thread {t}: not a clean suffix"
    assert 0 < sum(len(v) for v in seen.values()) < THREADS * PER_THREAD, "old backups were deleted"


@needs_logxpy
def test_every_rotated_file_parses_into_complete_tasks_with_logxpy(
    writers: list[AsyncWriter], tmp_path: Path
) -> None:
    path = tmp_path / "app.jsonl"
    produce_rotating(writers, path, backup_count=10_000, per_thread=1_000, max_bytes=8_192)
    files = rotated_files(path)
    assert len(files) > 10
    report = logxpy_tasks("n", *files)
    assert len(report) == len(files)
    for f, tasks in zip(files, report, strict=True):
        recs, segments = check_file(f.read_bytes())
        assert all(t["complete"] for t in tasks), f"{f.name}: incomplete tasks"
        actions = [t for t in tasks if t["kind"] == "action"]
        assert all(t["type"] == "otel:trace" for t in actions)
        assert sorted((t["tid"], t["values"], t["status"]) for t in actions) == sorted(
            (tid, n, st) for tid, n, st in segments
        ), f"{f.name}: Parser's trees differ from the file's traces"
        untraced = [r["n"] for r in recs if "." in r["tid"]]
        assert sorted(n for t in tasks if t["kind"] == "message" for n in t["values"]) == sorted(untraced)


# -- retention and backup names -------------------------------------------------------------

#: Rotation times crossing a second, a day, a minute and an hour: name order must stay time order.
TIMES = [DAY - 1.5, DAY - 0.75, DAY - 0.25, DAY, DAY + 0.5, DAY + 59.75, DAY + 3600.25]


@pytest.mark.parametrize("backup_count", [None, 2, 0])
def test_backups_are_named_in_utc_time_order_and_only_the_newest_are_kept(
    writers: list[AsyncWriter], tmp_path: Path, backup_count: int | None, non_utc_local_time: None
) -> None:
    path = tmp_path / "app.jsonl"
    clock = FakeClock(DAY - 10.0)
    dest = AsyncFileDestination(path, max_bytes=1, backup_count=backup_count, clock=clock)
    writer = make(writers, dest)
    writer.enqueue(item(0))
    assert writer.flush(5.0)
    for n, t in enumerate(TIMES, start=1):
        clock.t = t
        writer.enqueue(item(n))  # the file holds a record: over max_bytes, so this batch rotates
        assert writer.flush(5.0)
    assert writer.stop(10.0)
    # The file holding record n-1 was rotated at TIMES[n-1], when record n came.
    expected = [(f"app.{utc_stamp(t)}.jsonl", [n]) for n, t in enumerate(TIMES)]
    if backup_count is not None:
        expected = expected[len(expected) - backup_count :]
    names = sorted(p.name for p in tmp_path.iterdir() if p != path)
    assert [(name, ns(tmp_path / name)) for name in names] == expected
    assert ns(path) == [len(TIMES)]


def test_backups_rotated_within_one_clock_tick_keep_time_order(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, backup_count=1, clock=FakeClock(DAY))  # a clock that does not move
    for n in range(3):
        dest(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":%d}\n' % n)
        dest.rotate()
        assert dest._maintenance.wait(5.0)  # retention done before the next rotation
    dest.close()
    (backup,) = [p for p in tmp_path.iterdir() if p != path]
    assert ns(backup) == [2], "the one backup kept must be the newest"


# -- time rotation ------------------------------------------------------------------------


def test_hourly_rotation_at_utc_hour_boundaries(
    writers: list[AsyncWriter], tmp_path: Path, non_utc_local_time: None
) -> None:
    path = tmp_path / "app.jsonl"
    hour = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    clock = FakeClock(hour - 0.5)
    dest = AsyncFileDestination(path, rotate_when="hourly", clock=clock)
    writer = make(writers, dest)
    trace = "ab" * 16
    steps = [(hour - 0.5, [0, 1]), (hour + 0.25, [2, 3]), (hour + 3599.75, [4]), (hour + 3600.0, [5])]
    for t, numbers in steps:
        clock.t = t
        for n in numbers:
            writer.enqueue(item(n, trace=trace))
        assert writer.flush(5.0)
    assert writer.stop(10.0)
    files = rotated_files(path)
    assert [f.name for f in files] == [
        "app.20270115T080000.250000Z.jsonl",
        "app.20270115T090000.000000Z.jsonl",
        "app.jsonl",
    ]
    assert [ns(f) for f in files] == [[0, 1], [2, 3, 4], [5]]


def test_interval_rotation_counts_from_each_file_opening(writers: list[AsyncWriter], tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    clock = FakeClock(DAY + 100.0)
    dest = AsyncFileDestination(path, rotate_when="10s", clock=clock)
    writer = make(writers, dest)
    steps = [(100.0, 0), (109.5, 1), (110.0, 2), (119.75, 3), (120.5, 4)]
    for offset, n in steps:
        clock.t = DAY + offset
        writer.enqueue(item(n, trace="cd" * 16 if n % 2 else None))
        assert writer.flush(5.0)
    assert writer.stop(10.0)
    files = rotated_files(path)
    assert [f.name for f in files] == [
        f"app.{utc_stamp(DAY + 110.0)}.jsonl",
        f"app.{utc_stamp(DAY + 120.5)}.jsonl",
        "app.jsonl",
    ]
    assert [ns(f) for f in files] == [[0, 1], [2, 3], [4]]


def test_rotation_closes_open_traces_in_the_old_file_and_reopens_them_in_the_new(
    writers: list[AsyncWriter], tmp_path: Path
) -> None:
    path = tmp_path / "app.jsonl"
    clock = FakeClock(DAY)
    writer = make(writers, AsyncFileDestination(path, rotate_when=60, clock=clock), trace_idle_ms=600_000)
    trace = "ef" * 16
    writer.enqueue(item(0, trace=trace))
    writer.enqueue(item(1, trace=trace, failed=True, bad=True))
    assert writer.flush(5.0)
    clock.t = DAY + 60.0
    writer.enqueue(item(2, trace=trace))
    assert writer.flush(5.0)
    assert writer.stop(10.0)
    old, new = rotated_files(path)
    assert check_file(old.read_bytes())[1] == [(trace, [0, 1], "failed")]
    assert check_file(new.read_bytes())[1] == [(trace, [2], "succeeded")]
    assert parse_lines(new.read_bytes())[0]["lvl"] == [1], "the new file starts the trace afresh"


# -- gzip -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backup_count", [None, 2])
def test_gzip_backups_decompress_to_valid_files(
    writers: list[AsyncWriter], tmp_path: Path, backup_count: int | None, umask_022: None
) -> None:
    path = tmp_path / "app.jsonl"
    clock = FakeClock(DAY)
    # A new file for each group (with max_bytes=1 each record now goes alone into a file).
    dest = AsyncFileDestination(path, rotate_when=1, compress=True, backup_count=backup_count, clock=clock)
    writer = make(writers, dest)
    groups = [[0, 1, 2], [3, 4], [5, 6, 7], [8], [9, 10]]
    for g, numbers in enumerate(groups):
        clock.t = DAY + g
        for n in numbers:
            writer.enqueue(item(n, trace="12" * 16 if n % 3 else None))
        assert writer.flush(5.0)
        # Compression keeps up with rotation here (a backlog is a known bug, tested below).
        assert dest._maintenance.wait(5.0)
    assert writer.stop(10.0)
    files = rotated_files(path)
    backups = files[:-1]
    kept = groups[:-1] if backup_count is None else groups[-1 - backup_count : -1]
    assert len(backups) == len(kept)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files), (
        "no uncompressed backup and no partial .gz left behind"
    )
    for backup, numbers in zip(backups, kept, strict=True):
        assert backup.name.endswith(".jsonl.gz")
        assert stat.S_IMODE(backup.stat().st_mode) == 0o600
        assert ns(backup) == numbers
    assert ns(path) == groups[-1]


def gate_gzip(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Hold every compression until the second event is set; the first says one started."""
    entered, gate = threading.Event(), threading.Event()
    real_gzip = _rotation._gzip

    def slow_gzip(backup: str, file_mode: int) -> None:
        entered.set()
        assert gate.wait(10.0)
        real_gzip(backup, file_mode)

    monkeypatch.setattr(_rotation, "_gzip", slow_gzip)
    return entered, gate


def test_close_waits_for_compression_in_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "app.jsonl"
    entered, gate = gate_gzip(monkeypatch)
    dest = AsyncFileDestination(path, compress=True, clock=FakeClock(DAY))
    dest(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":7}\n')
    dest.rotate()
    assert entered.wait(10.0), "compression runs on its own thread"
    closer = threading.Thread(target=dest.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive(), "close() must wait for the compression in progress"
    gate.set()
    closer.join(10.0)
    assert not closer.is_alive()
    (backup,) = [p for p in tmp_path.iterdir() if p != path]
    assert backup.name == f"app.{utc_stamp(DAY)}.jsonl.gz"
    assert ns(backup) == [7]


@pytest.mark.parametrize("upkeep", ["compress", "retention"])
def test_upkeep_waits_for_a_write_in_progress_in_the_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upkeep: str
) -> None:
    """A writer of another process still appending to the backup (it has not noticed the
    rename yet) holds its lock: the backup is read and deleted only after that write, which
    so ends up in the .gz (or is deleted with the backup, as retention asks) instead of in a
    file nobody reads. Compression read the backup at once, and the late line was lost."""
    backup = tmp_path / f"app.{utc_stamp(DAY)}.jsonl"
    backup.write_bytes(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":1}\n')
    late = os.open(backup, os.O_WRONLY | os.O_APPEND)
    fcntl.flock(late, fcntl.LOCK_EX)
    started = threading.Event()
    real_lock = _rotation.AppendLock

    class Seen(real_lock):  # type: ignore[misc, valid-type]
        def acquire(self) -> bool:
            started.set()
            return super().acquire()

    monkeypatch.setattr(_rotation, "AppendLock", Seen)
    if upkeep == "compress":
        work = threading.Thread(target=_rotation._gzip, args=(str(backup), 0o600))
    else:
        work = threading.Thread(target=_rotation._unlink_locked, args=(str(backup),))
    work.start()
    try:
        assert started.wait(10.0)
        work.join(0.2)
        assert work.is_alive(), "it waits for the lock"
        assert backup.exists()
        os.write(late, b'{"ts":2.0,"tid":"x.2","lvl":[1],"n":2}\n')
    finally:
        fcntl.flock(late, fcntl.LOCK_UN)
        os.close(late)
    work.join(10.0)
    assert not work.is_alive()
    assert not backup.exists()
    if upkeep == "compress":
        assert ns(tmp_path / (backup.name + ".gz")) == [1, 2], "the late line is in the .gz"


def test_upkeep_never_reads_for_good_nor_deletes_a_backup_whose_lock_it_did_not_get(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer of another process holding the backup's lock past upkeep's wait (its cut
    write retrying for up to retry_timeout, or the process stopped): the backup stays as
    it is. Upkeep compressed and deleted it anyway, and the writer's retried batch went
    into a file without a name, counted as written."""
    monkeypatch.setattr(_rotation, "UPKEEP_LOCK_TIMEOUT_S", 0.2)
    backup = tmp_path / f"app.{utc_stamp(DAY)}.jsonl"
    backup.write_bytes(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":1}\n')
    holder = os.open(backup, os.O_WRONLY | os.O_APPEND)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with pytest.raises(_rotation.BackupBusyError):
            _rotation._gzip(str(backup), 0o600)
        with pytest.raises(_rotation.BackupBusyError):
            _rotation._unlink_locked(str(backup))
    finally:
        os.close(holder)
    assert [p.name for p in tmp_path.iterdir()] == [backup.name], "no .gz, no partial, the backup kept"
    _rotation._gzip(str(backup), 0o600)  # its lock free again: compressed as usual
    assert ns(tmp_path / (backup.name + ".gz")) == [1]


def test_a_writer_never_waits_for_gzip_and_what_it_appends_meanwhile_is_compressed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compression copies a backup without its lock, then what came in meanwhile under it:
    a writer of another process that has not noticed the rename yet appends at once
    (it waited for the whole compression: seconds for a large backup), and its line is
    in the .gz."""
    backup = tmp_path / f"app.{utc_stamp(DAY)}.jsonl"
    backup.write_bytes(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":1}\n')
    copying, go_on = threading.Event(), threading.Event()
    real_copy = _rotation.shutil.copyfileobj

    def slow_copy(src: Any, dst: Any, length: int = 0) -> None:
        real_copy(src, dst, length)
        if not copying.is_set():
            copying.set()
            assert go_on.wait(10.0)

    monkeypatch.setattr(_rotation.shutil, "copyfileobj", slow_copy)
    work = threading.Thread(target=_rotation._gzip, args=(str(backup), 0o600))
    work.start()
    late = os.open(backup, os.O_WRONLY | os.O_APPEND)
    try:
        assert copying.wait(10.0)
        fcntl.flock(late, fcntl.LOCK_EX | fcntl.LOCK_NB)  # (raises if gzip held the lock)
        os.write(late, b'{"ts":2.0,"tid":"x.2","lvl":[1],"n":2}\n')
        fcntl.flock(late, fcntl.LOCK_UN)
    finally:
        go_on.set()
        os.close(late)
        work.join(10.0)
    assert not work.is_alive()
    assert not backup.exists()
    assert ns(tmp_path / (backup.name + ".gz")) == [1, 2]


def _compressing(backup: Path, errors: list[BaseException], name: str | None = None) -> threading.Thread:
    """A thread started compressing ``backup`` (``_gzip``); what it raises goes to ``errors``."""

    def compress() -> None:
        try:
            _rotation._gzip(str(backup), 0o600)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=compress, name=name)
    thread.start()
    return thread


def test_gzip_of_a_backup_deleted_meanwhile_brings_nothing_back(tmp_path: Path) -> None:
    """Another process's retention deletes the backup while compression waits for its lock:
    nothing is written (a .gz of the deleted backup came back, past backup_count, with a
    false "could not compress" warning)."""
    backup = tmp_path / f"app.{utc_stamp(DAY)}.jsonl"
    backup.write_bytes(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":1}\n')
    retention = os.open(backup, os.O_RDONLY)
    fcntl.flock(retention, fcntl.LOCK_EX)
    errors: list[BaseException] = []
    work = _compressing(backup, errors)
    work.join(0.2)
    assert work.is_alive(), "it waits for the lock"
    backup.unlink()
    os.close(retention)
    work.join(10.0)
    assert not work.is_alive()
    assert errors == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("when", ["while_copied", "after_the_gz_is_in_place"])
def test_gzip_of_a_backup_moved_away_meanwhile_leaves_no_second_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A shipper moves each new backup to its own directory while compression copies it
    (session 34, a hostile review): the lock saw only a deletion, so the .gz was put in
    place beside the moved file, and every record was on disk twice (replay and the
    shipper sent each twice), with a false "could not compress" warning. The .gz of a
    backup no longer at its name is not kept."""
    backup = tmp_path / f"app.{utc_stamp(DAY)}.jsonl"
    backup.write_bytes(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":1}\n')
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    ship = functools.partial(os.rename, backup, shipped / backup.name)
    if when == "while_copied":
        real_copy = shutil.copyfileobj

        def copy(src: Any, dst: Any, length: int = 0) -> None:
            real_copy(src, dst, length)
            if backup.exists():
                ship()

        monkeypatch.setattr(_rotation.shutil, "copyfileobj", copy)
    else:
        real_replace = os.replace

        def replace(src: Any, dst: Any) -> None:
            real_replace(src, dst)
            ship()  # (between the .gz put in place and the backup's removal)

        monkeypatch.setattr(_rotation.os, "replace", replace)
    _rotation._gzip(str(backup), 0o600)  # (no error: nothing of ours was lost)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shipped"]
    assert [p.name for p in shipped.iterdir()] == [backup.name]


def test_two_compressions_of_one_backup_without_flock_keep_its_gz(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A review of session 34's fix: without a lock that works (some network file
    systems), two processes compressing one backup at once (one its rotation's, the other
    its left-overs): A put its .gz in place and removed the backup; B, which had looked
    before that, put its own .gz in place, found the backup gone, took it for moved away
    and removed the .gz: the directory was empty (1,000 records lost). Without a lock, a
    .gz is never taken back."""
    from logxpy_otel import _append_lock

    def no_flock(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(_append_lock.fcntl, "flock", no_flock)
    backup = tmp_path / f"app.{utc_stamp(DAY)}.jsonl"
    backup.write_bytes(b'{"n":1}\n' * 1000)
    a_replaced, b_looked, a_unlinked = threading.Event(), threading.Event(), threading.Event()
    real_replace, real_unlink, real_named = os.replace, os.unlink, _rotation._named

    def replace(src: Any, dst: Any) -> None:
        if threading.current_thread().name == "B":
            assert a_unlinked.wait(10)
        real_replace(src, dst)
        if threading.current_thread().name == "A":
            a_replaced.set()
            assert b_looked.wait(10)

    def named(path: str, fd: int) -> bool:
        if threading.current_thread().name == "B":
            assert a_replaced.wait(10)
            found = real_named(path, fd)
            b_looked.set()
            return found
        return real_named(path, fd)

    def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        real_unlink(path, *args, **kwargs)
        if threading.current_thread().name == "A" and os.fspath(path) == str(backup):
            a_unlinked.set()

    monkeypatch.setattr(_rotation.os, "replace", replace)
    monkeypatch.setattr(_rotation.os, "unlink", unlink)
    monkeypatch.setattr(_rotation, "_named", named)
    errors: list[BaseException] = []
    threads = [_compressing(backup, errors, name) for name in "AB"]
    for thread in threads:
        thread.join(30)
    monkeypatch.undo()
    assert not any(thread.is_alive() for thread in threads) and not errors, errors
    assert [p.name for p in tmp_path.iterdir()] == [backup.name + ".gz"]
    assert gzip.decompress((tmp_path / (backup.name + ".gz")).read_bytes()).count(b"\n") == 1000


def test_a_template_with_time_fields_keeps_count_per_name_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Session 34: ``backup_count`` on a file name with strftime fields counts each
    rendered name's backups on their own, so another day's files are kept: a review took
    that for unbounded retention, and counting the names a template renders as one family
    deleted other templates' files (three reviews, each finding a new way). So it stays
    per name, and the set-up says so, with the way to a bound (``rotate_when``)."""
    clock = FakeClock(DAY)
    real_gmtime = time.gmtime
    monkeypatch.setattr(
        _destinations.time, "gmtime", lambda *at: real_gmtime(*at) if at else real_gmtime(clock.t)
    )
    with caplog.at_level("WARNING", logger="logxpy_otel"):
        dest = AsyncFileDestination(tmp_path / "app-%Y%m%d.jsonl", max_bytes=10, backup_count=1, clock=clock)
    assert "backup_count counts the backups of each name" in caplog.text
    for day in range(2):
        for n in range(3):
            dest(f'{{"day":{day},"n":{n}}}\n'.encode())
            clock.t += 1
            dest.rotate()
            assert dest._maintenance.wait(10)
        clock.t += 86_400
    dest.close()
    kept = sorted(p.name for p in tmp_path.iterdir() if _rotation.backup_of(str(p)))
    assert [name.split(".")[0] for name in kept] == ["app-20270116", "app-20270117"], kept
    caplog.clear()
    with caplog.at_level("WARNING", logger="logxpy_otel"):
        AsyncFileDestination(tmp_path / "plain.jsonl", rotate_when="daily", backup_count=1).close()
        AsyncFileDestination(tmp_path / "100%%.jsonl", backup_count=1).close()
    assert "backup_count" not in caplog.text


@pytest.mark.parametrize(
    ("template", "planted"),
    [
        ("app-%a.jsonl", "app-audit"),  # letters: a word that is no day's name
        ("worker-%y%m%d.jsonl", "worker-123456"),  # digits: a pid's that make no date
        ("app-%Y%m%d.jsonl", "app-20261131"),  # a 31st of November
    ],
)
def test_retention_never_counts_a_file_the_template_does_not_render(
    tmp_path: Path, template: str, planted: str
) -> None:
    """A review of session 34 (of a retention that counted the names a template renders as
    one family): it took ``app-audit``'s backups (another template's, or another
    program's, with no retention asked) for ``app-%a``'s, and deleted them. Retention is
    per rendered name: it never touches them."""
    clock = FakeClock(DAY)
    others = [tmp_path / f"{planted}.{utc_stamp(DAY - 86_400 * n)}.jsonl" for n in (1, 2, 3)]
    for other in others:
        other.write_bytes(b"{}\n")
    dest = AsyncFileDestination(tmp_path / template, max_bytes=10, backup_count=1, clock=clock)
    for n in range(3):
        dest(f'{{"n":{n}}}\n'.encode())
        clock.t += 1
        dest.rotate()
        assert dest._maintenance.wait(10)
    dest.close()
    assert all(other.exists() for other in others)
    ours = [p for p in tmp_path.iterdir() if p not in others and _rotation.backup_of(str(p))]
    assert len(ours) == 1, ours


def test_a_forked_child_keeps_count_of_its_own_files(tmp_path: Path) -> None:
    """A review of session 34 (of a retention that counted the names a template renders as
    one family, made once with the parent's pid): a forked child kept count of its
    parent's files and never of its own. Each process's ``{pid}`` file keeps its count."""
    template = str(tmp_path / "app-{pid}-%Y%m%d.jsonl")
    clock = FakeClock(DAY)
    dest = AsyncFileDestination(template, max_bytes=10, backup_count=2, clock=clock)

    def rotations(count: int) -> None:
        for n in range(count):
            dest(f'{{"n":{n}}}\n'.encode())
            clock.t += 1
            dest.rotate()
            assert dest._maintenance.wait(10)

    rotations(4)
    pid = os.fork()
    if pid == 0:  # the child: its own file, its own rotations
        code = 1
        try:
            rotations(6)
            dest.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    dest.close()
    by_pid: dict[str, int] = {}
    for path in tmp_path.iterdir():
        if _rotation.backup_of(str(path)):
            owner = path.name.split("-")[1]
            by_pid[owner] = by_pid.get(owner, 0) + 1
    assert by_pid == {str(os.getpid()): 2, str(pid): 2}, by_pid


def test_a_fifo_named_like_a_backup_never_holds_up_upkeep(tmp_path: Path) -> None:
    """Retention opened an old backup to lock it: a FIFO planted at a backup's name blocked
    the upkeep thread for ever (later backups never compressed, every close() waited)."""
    path = tmp_path / "app.jsonl"
    os.mkfifo(tmp_path / "app.20200101T000000.000000Z.jsonl")
    dest = AsyncFileDestination(path, backup_count=0, compress=True, clock=FakeClock(DAY))
    dest(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":1}\n')
    dest.rotate()
    assert dest._maintenance.wait(10.0), "upkeep ends"
    dest.close()
    assert [p.name for p in tmp_path.iterdir()] == ["app.jsonl"], "the FIFO deleted as retention asks"


def test_retention_deletes_the_backups_of_a_write_only_log(tmp_path: Path) -> None:
    """A log its owner may not read (``file_mode=0o200``): retention still deletes its old
    backups (it opened each for reading to lock it, was refused, and kept them all). The
    child runs as an unprivileged user (root reads anything)."""
    script = """
        import _strptime, gzip, os, sys, zlib  # (imported before the rights to read them go)
        from logxpy_otel import AsyncFileDestination, _rotation
        directory = sys.argv[1]
        if os.getuid() == 0:
            os.chown(directory, 65534, 65534)
            os.setgid(65534)
            os.setuid(65534)
        path = os.path.join(directory, "app.jsonl")
        now = [1_800_000_000.0]
        dest = AsyncFileDestination(path, file_mode=0o200, backup_count=1, clock=lambda: now[0])
        for n in range(5):
            dest(b'{"n":%d}\\n' % n)
            dest.rotate()
            now[0] += 1.0
        dest.close()
        print(len(_rotation.backups(path)))
    """
    opened: list[tuple[Path, int]] = []
    if os.getuid() == 0:  # (the unprivileged child must reach tmp_path: search rights on the way)
        for parent in tmp_path.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                opened.append((parent, mode))
                parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    try:
        done = run_script(script, str(tmp_path), timeout=60)
    finally:
        for parent, mode in opened:
            parent.chmod(stat.S_IMODE(mode))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1"], "backup_count kept"
    assert "could not delete" not in done.stderr


def test_a_backup_being_compressed_counts_once_for_retention(tmp_path: Path) -> None:
    """While another process compresses ``X``, both ``X`` and ``X.gz`` exist for a moment:
    retention counted them as two backups and deleted one backup too many."""
    path = tmp_path / "app.jsonl"
    names = [f"app.{utc_stamp(DAY + n)}.jsonl" for n in range(4)]  # O1, O2, X, Y
    for name in [names[0], names[1], names[2], names[2] + ".gz", names[3] + ".gz"]:
        (tmp_path / name).write_bytes(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":1}\n')
    doomed = _rotation._beyond_count(str(path), 3)
    assert [Path(p).name for p in doomed] == [names[0]]
    both = _rotation._beyond_count(str(path), 1)
    assert [Path(p).name for p in both] == [names[0], names[1], names[2], names[2] + ".gz"], "X goes whole"


@pytest.mark.parametrize("upkeep", ["compress", "retention"])
def test_upkeep_lets_a_backup_s_lock_go_before_closing_it(tmp_path: Path, upkeep: str) -> None:
    """A child forked while upkeep held a backup's lock shares the descriptor: the lock
    went only when both closed it, and a writer that had not noticed the rename waited its
    whole lock timeout (6 s) before it followed to the live file."""
    backup = tmp_path / f"app.{utc_stamp(DAY)}.jsonl"
    backup.write_bytes(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":1}\n')
    writer = os.open(backup, os.O_WRONLY | os.O_APPEND)
    shared: list[int] = []
    real_open = _rotation._open_backup

    def open_and_share(path: str, *, for_reading: bool) -> int | None:
        fd = real_open(path, for_reading=for_reading)
        if fd is not None:
            shared.append(os.dup(fd))  # (what a fork makes of it)
        return fd

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_rotation, "_open_backup", open_and_share)
            if upkeep == "compress":
                _rotation._gzip(str(backup), 0o600)
            else:
                _rotation._unlink_locked(str(backup))
        assert shared, "upkeep opened it"
        fcntl.flock(writer, fcntl.LOCK_EX | fcntl.LOCK_NB)  # (raises while the lock is still held)
    finally:
        for fd in (writer, *shared):
            os.close(fd)
    assert not backup.exists()


def test_a_backup_of_the_last_time_a_name_can_carry_stops_no_rotation(tmp_path: Path) -> None:
    """A backup named for the last microsecond of 9999 (planted, or a clock once wrong):
    every later backup was named in year 10000, out of the names backups() knows, so
    retention kept them all."""
    path = tmp_path / "app.jsonl"
    for last in ("999998", "999999"):  # (one before the last too: its successor is the last)
        (tmp_path / f"app.99991231T235959.{last}Z.jsonl").write_bytes(b"")
        name = Path(_rotation.backup_name(str(path), DAY)).name
        assert name == f"app.{utc_stamp(DAY)}.jsonl"
        assert _rotation._stamp_of(name) is not None
    # Passed over, not everything else with it: a real backup newer than the clock (it
    # stepped back) is still followed.
    (tmp_path / f"app.{utc_stamp(DAY + 60)}.jsonl").write_bytes(b"")
    name = Path(_rotation.backup_name(str(path), DAY)).name
    assert name == f"app.{utc_stamp(DAY + 60)[:-8]}.000001Z.jsonl"


def test_a_rotation_without_the_lock_renames_nothing(tmp_path: Path) -> None:
    """The lock not had in time (another process stopped holding it, after which ours tries
    once, without waiting): the rename waits for a later batch. It went ahead unlocked, and
    two processes rotating at once could give two files one backup name: the second rename
    replaced the first backup, whose records were lost, counted as written."""
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, max_bytes=10, clock=FakeClock(DAY))
    dest(b'{"n":1}\n')
    holder = os.open(path, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        assert dest._lock is not None
        dest._lock.patient = False
        dest.rotate()
        dest(b'{"n":2}\n')
    finally:
        os.close(holder)
    assert [p.name for p in tmp_path.iterdir()] == ["app.jsonl"], "nothing renamed"
    assert path.read_bytes() == b'{"n":1}\n{"n":2}\n'
    dest.rotate()  # the lock free again: rotated
    dest.close()
    assert {p.name for p in tmp_path.iterdir()} == {"app.jsonl", f"app.{utc_stamp(DAY)}.jsonl"}


@pytest.mark.parametrize("by", ["size", "time"])
def test_a_rotation_put_off_for_the_lock_keeps_the_file_and_tries_again_after_the_look(
    tmp_path: Path, by: str
) -> None:
    """A rotation put off because another process holds the lock (a process stopped while
    holding it) keeps the file open as it is, takes whole batches, and tries again once
    reopen_check_s has passed. It reopened the file at every batch, so a file past
    max_bytes took one record a batch (each its own tree: 14 times slower, empty lines from
    looks at the file's end without the lock), and a time rotation waited a whole period."""
    path = tmp_path / "app.jsonl"
    clock = FakeClock(DAY - 0.5)
    options: dict[str, Any] = {"max_bytes": 5} if by == "size" else {"rotate_when": "hourly"}
    dest = AsyncFileDestination(path, reopen_check_s=5.0, clock=clock, **options)
    dest(b'{"n":1}\n')
    clock.t = DAY + 0.5  # (past the hour's boundary, for "time")
    holder = os.open(path, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        assert dest._lock is not None
        dest._lock.patient = False  # (its wait ran out before: one try, no wait)
        assert dest.rotation_due()
        fd = dest._fd
        dest.rotate()
        assert dest._fd == fd, "not reopened"
        assert dest.room() is None, "whole batches meanwhile"
        assert not dest.rotation_due(), "not tried again before reopen_check_s"
        dest(b'{"n":2}\n')
        clock.t += 5.0
        assert dest.rotation_due(), "tried again after it"
    finally:
        os.close(holder)
    dest.rotate()
    dest(b'{"n":3}\n')
    dest.close()
    (backup,) = [p for p in tmp_path.iterdir() if p != path]
    assert backup.read_bytes() == b'{"n":1}\n{"n":2}\n'
    assert path.read_bytes() == b'{"n":3}\n'


def test_upkeep_goes_on_after_a_job_fails_with_any_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gzip failing with another exception than OSError (a clock past 2106 makes its header
    fail with struct.error) ended the upkeep thread for good: no backup was compressed or
    deleted after it, and every close() waited its whole timeout."""
    import struct

    path = tmp_path / "app.jsonl"
    real_gzip = _rotation._gzip
    calls: list[str] = []

    def first_fails(backup: str, file_mode: int) -> None:
        calls.append(backup)
        if len(calls) == 1:
            raise struct.error("'L' format requires 0 <= number <= 4294967295")
        real_gzip(backup, file_mode)

    monkeypatch.setattr(_rotation, "_gzip", first_fails)
    clock = FakeClock(DAY)
    dest = AsyncFileDestination(path, compress=True, backup_count=5, clock=clock)
    for n in range(2):
        dest(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":%d}\n' % n)
        dest.rotate()
        clock.t += 1.0
    assert dest._maintenance.wait(10.0), "upkeep ends its work"
    dest.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    # (the backup its failure left uncompressed is compressed with the next one)
    assert names == [f"app.{utc_stamp(DAY)}.jsonl.gz", f"app.{utc_stamp(DAY + 1)}.jsonl.gz", "app.jsonl"]
    assert calls == [str(tmp_path / f"app.{utc_stamp(d)}.jsonl") for d in (DAY, DAY + 1, DAY)]


def test_a_file_another_process_renamed_meanwhile_keeps_its_size_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path gone between the look and the rename (another process rotated it): not a
    failed rename. It was counted as an error, and the next file had no size limit (the
    writer put its whole backlog into one file)."""
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, max_bytes=100, clock=FakeClock(DAY))
    dest(b'{"n":1}\n')

    def renamed_first(src: Any, dst: Any) -> None:
        raise FileNotFoundError(errno.ENOENT, "renamed by another process", src)

    monkeypatch.setattr(_destinations.os, "rename", renamed_first)
    dest.rotate()  # (raises nothing)
    monkeypatch.undo()
    assert dest.room() == 100 - len(b'{"n":1}\n'), "the limit holds for the file at the path"
    dest.close()


def test_a_backup_is_compressed_even_when_the_reopen_after_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename done, the new file cannot be opened (a full disk, a directory made
    read-only for a moment): the backup went into no upkeep queue and stayed uncompressed."""
    path = tmp_path / "app.jsonl"
    dest = AsyncFileDestination(path, compress=True, clock=FakeClock(DAY))
    dest(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":1}\n')
    real_open = AsyncFileDestination._open
    failed: list[int] = []

    def open_once_failing(self: AsyncFileDestination) -> None:
        if not failed:
            failed.append(1)
            raise OSError(errno.ENOSPC, "No space left on device")
        real_open(self)

    monkeypatch.setattr(AsyncFileDestination, "_open", open_once_failing)
    with pytest.raises(OSError):
        dest.rotate()
    assert dest._maintenance.wait(10.0)
    monkeypatch.undo()
    assert ns(tmp_path / f"app.{utc_stamp(DAY)}.jsonl.gz") == [1]
    assert dest.rotation_due(), "the reopen is tried again"
    dest.rotate()
    dest.close()


def test_a_file_shared_by_processes_rotates_at_max_bytes(tmp_path: Path) -> None:
    """Four destinations on one path (as four processes), each rotating by size: each
    counted only its own appends, and the file grew to about four times max_bytes."""
    path = tmp_path / "app.jsonl"
    limit = 10_000
    procs = [AsyncFileDestination(path, max_bytes=limit, reopen_check_s=0.0) for _ in range(4)]
    line = b'{"pad":"%s"}\n' % (b"x" * 88)  # 100 bytes
    biggest = 0
    try:
        for _ in range(200):
            for dest in procs:
                room = dest.room()
                if dest.rotation_due() or (room is not None and room < len(line)):
                    dest.rotate()
                dest(line)
                biggest = max(biggest, path.stat().st_size)
    finally:
        for dest in procs:
            dest.close()
    assert biggest <= limit
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) == 800 * len(line), "every line kept"


def test_compression_backlog_with_retention_leaves_no_partial_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "app.jsonl"
    entered, gate = gate_gzip(monkeypatch)
    clock = FakeClock(DAY)
    dest = AsyncFileDestination(path, compress=True, backup_count=2, clock=clock)
    for n in range(4):  # four rotations while the first compression is still running
        clock.t = DAY + n
        dest(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":%d}\n' % n)
        dest.rotate()
        assert entered.wait(10.0)
    gate.set()
    dest.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"app.{utc_stamp(DAY + 2)}.jsonl.gz", f"app.{utc_stamp(DAY + 3)}.jsonl.gz", "app.jsonl"]
    assert [ns(tmp_path / name) for name in names[:2]] == [[2], [3]]
    assert not [r for r in caplog.records if "upkeep" in r.getMessage()]


# -- path templates ---------------------------------------------------------------------------


def test_path_template_renders_pid_and_strftime_fields(tmp_path: Path) -> None:
    dest = AsyncFileDestination(tmp_path / "{pid}" / "app-%Y.jsonl")
    year = time.strftime("%Y", time.gmtime())  # (in UTC, as rotation's boundaries)
    dest(b'{"ts":1.0,"tid":"x.1","lvl":[1]}\n')
    dest.close()
    expected = tmp_path / str(os.getpid()) / f"app-{year}.jsonl"
    assert dest.path == str(expected)
    assert expected.read_bytes() == b'{"ts":1.0,"tid":"x.1","lvl":[1]}\n'


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"OTEL_SERVICE_NAME": "shop"}, "shop"),
        ({"OTEL_SERVICE_NAME": "shop/api"}, "shop_api"),  # never a path separator from a name
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=billing"}, "billing"),
        ({"OTEL_SERVICE_NAME": "shop", "OTEL_RESOURCE_ATTRIBUTES": "service.name=billing"}, "shop"),
    ],
)
def test_path_template_service_name_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], name: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    processor = LogxpyLogRecordProcessor(tmp_path / "{service.name}.jsonl")
    processor.writer.enqueue(item(1))
    assert processor.force_flush(5_000)
    processor.shutdown()
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.jsonl"]
    assert ns(tmp_path / f"{name}.jsonl") == [1]


def test_pid_template_gives_a_forked_child_its_own_file(writers: list[AsyncWriter], tmp_path: Path) -> None:
    dest = AsyncFileDestination(tmp_path / "app-{pid}.jsonl")
    writer = make(writers, dest)
    writer.enqueue(item(1, who="parent"))
    assert writer.flush(5.0)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            writer.enqueue(item(2, who="child"))
            code = 0 if writer.flush(10.0) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    writer.enqueue(item(3, who="parent"))
    assert writer.stop(10.0)
    assert ns(tmp_path / f"app-{os.getpid()}.jsonl") == [1, 3]
    assert ns(tmp_path / f"app-{pid}.jsonl") == [2]
    assert len(list(tmp_path.iterdir())) == 2, "the child reopens, it never renames the parent's file"


# -- external rotation (logrotate without copytruncate) ---------------------------------------


@pytest.mark.parametrize("how", ["rename", "rename_and_create", "delete"])
def test_file_moved_or_deleted_under_us_continues_in_a_new_file(
    writers: list[AsyncWriter], tmp_path: Path, how: str
) -> None:
    path = tmp_path / "app.jsonl"
    moved = tmp_path / "app.jsonl.1"
    clock = FakeClock(DAY)
    dest = AsyncFileDestination(path, reopen_check_s=0.01, clock=clock)
    writer = make(writers, dest, trace_idle_ms=600_000)
    trace = "34" * 16
    for n in range(3):
        writer.enqueue(item(n, trace=trace if n else None))
    assert writer.flush(5.0)
    if how == "delete":
        path.unlink()
    else:
        path.rename(moved)
        if how == "rename_and_create":
            path.write_bytes(b"")  # logrotate's 'create': a new empty file at the path
    # Until the next check is due, the writer keeps a renamed file: nothing is lost there.
    # A deleted one is seen before the next batch, which goes to a new file at the path.
    for n in range(3, 5):
        writer.enqueue(item(n, trace=trace))
    assert writer.flush(5.0)
    clock.t = DAY + 0.01
    for n in range(5, 8):
        writer.enqueue(item(n, trace=trace if n % 2 else None))
    assert writer.flush(5.0)
    assert writer.stop(10.0)
    m = writer.metrics
    assert (m.written, m.dropped, m.errors) == (8, 0, 0)
    recs, segments = check_file(path.read_bytes())
    if how == "delete":
        assert [r["n"] for r in recs] == [3, 4, 5, 6, 7], "no record went into the deleted file"
        assert segments == [(trace, [3, 4, 5, 7], "succeeded")], "in trees of the new file's own"
        assert [p.name for p in tmp_path.iterdir()] == ["app.jsonl"]
        return
    assert [r["n"] for r in recs] == [5, 6, 7], "every record after the switch is in the new file"
    assert segments == [(trace, [5, 7], "succeeded")]
    old_recs, old_segments = check_file(moved.read_bytes())
    assert [r["n"] for r in old_recs] == [0, 1, 2, 3, 4], "records before the switch stay in the moved file"
    assert old_segments == [(trace, [1, 2, 3, 4], "succeeded")], "its traces are closed in it"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.jsonl", "app.jsonl.1"], "no backup made"


def test_external_rotation_is_noticed_only_once_per_check_interval(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    clock = FakeClock(DAY)
    dest = AsyncFileDestination(path, reopen_check_s=5.0, clock=clock)
    path.rename(tmp_path / "app.jsonl.1")  # (a deletion is seen at once: test_destinations)
    assert dest.rotation_due() is False, "not checked before reopen_check_s passed"
    clock.t = DAY + 5.0
    assert dest.rotation_due() is True
    dest.rotate()
    assert path.exists()
    clock.t = DAY + 100.0
    assert dest.rotation_due() is False, "the new file is in place"
    dest.close()


# -- settings from the environment --------------------------------------------------------------


def test_env_max_bytes_backup_count_and_compress_reach_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_LOGXPY_MAX_BYTES", "300")
    monkeypatch.setenv("OTEL_EXPORTER_LOGXPY_BACKUP_COUNT", "2")
    monkeypatch.setenv("OTEL_EXPORTER_LOGXPY_COMPRESS", "gzip")
    path = tmp_path / "app.jsonl"
    processor = LogxpyLogRecordProcessor(path)
    (dest,) = processor.writer.destinations
    assert isinstance(dest, AsyncFileDestination)
    for g in range(10):
        for n in range(5 * g, 5 * g + 5):  # about 300 bytes a group
            processor.writer.enqueue(item(n, pad="x" * 40))
        assert processor.force_flush(5_000)
        assert dest._maintenance.wait(5.0)  # compression keeps up (a backlog is a known bug)
    processor.shutdown()
    files = rotated_files(path)
    assert len(files) == 2 + 1, [f.name for f in files]
    assert all(f.name.endswith(".jsonl.gz") for f in files[:-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in files)
    kept = [n for f in files for n in ns(f)]
    assert kept == list(range(kept[0], 50)) and kept[0] > 0, "the newest records, in order; older deleted"
    assert all(f.stat().st_size > 0 for f in files)


def test_env_rotate_when_reaches_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_LOGXPY_ROTATE_WHEN", "1s")
    path = tmp_path / "app.jsonl"
    processor = LogxpyLogRecordProcessor(path)
    opened = time.time()
    processor.writer.enqueue(item(1))
    assert processor.force_flush(5_000)
    # Wall-clock time is what is under test here: wait (bounded) until the interval has passed.
    deadline = opened + 1.0
    while time.time() < deadline:
        time.sleep(0.01)
    processor.writer.enqueue(item(2))
    assert processor.force_flush(5_000)
    processor.shutdown()
    files = rotated_files(path)
    assert [ns(f) for f in files] == [[1], [2]]


# -- upkeep failures, threads, and what gzip writes beside the logs (issues 11, 12) ------------


def test_a_failed_gzip_still_deletes_old_backups_and_leaves_the_backup_uncompressed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "app.jsonl"
    clock = FakeClock(DAY)
    dest = AsyncFileDestination(path, compress=True, backup_count=2, clock=clock)
    real_copy = _rotation.shutil.copyfileobj
    failing = {"on": False}

    def copy_or_disk_full(src: Any, dst: Any, length: int = 0) -> None:
        if failing["on"]:
            raise OSError(28, "No space left on device")
        real_copy(src, dst, length)

    monkeypatch.setattr(_rotation.shutil, "copyfileobj", copy_or_disk_full)
    for n in range(5):
        failing["on"] = n >= 2  # the disk fills up after two good rotations
        clock.t = DAY + n
        dest(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":%d}\n' % n)
        dest.rotate()
        assert dest._maintenance.wait(5.0)
    dest.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    # Retention ran after every rotation: only the two newest backups are left, and the
    # ones that could not be compressed stay as they are, with no partial file beside them.
    assert names == [f"app.{utc_stamp(DAY + 3)}.jsonl", f"app.{utc_stamp(DAY + 4)}.jsonl", "app.jsonl"]
    assert [ns(tmp_path / name) for name in names[:2]] == [[3], [4]]
    assert any("could not compress" in r.getMessage() for r in caplog.records)


def _rotate_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "logxpy-rotate"]


@pytest.mark.parametrize("compress", [True, False])
def test_no_upkeep_thread_outlives_its_work(tmp_path: Path, compress: bool) -> None:
    for thread in _rotate_threads():  # from earlier tests: they end on their own
        thread.join(10.0)
    baseline = threading.active_count()
    for i in range(60):
        dest = AsyncFileDestination(tmp_path / f"app{i}.jsonl", compress=compress, backup_count=1)
        dest(b'{"ts":1.0,"tid":"x.1","lvl":[1]}\n')
        dest.rotate()
        dest.close()
    for thread in _rotate_threads():
        thread.join(10.0)  # bounded wait for each to end: none may be left waiting for work
        assert not thread.is_alive()
    assert threading.active_count() <= baseline, "one thread per destination that rotated was left"
    assert len(list(tmp_path.glob("*.gz"))) == (60 if compress else 0)


def test_upkeep_thread_comes_back_for_later_rotations(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    clock = FakeClock(DAY)
    dest = AsyncFileDestination(path, compress=True, clock=clock)
    for n in range(3):
        clock.t = DAY + n
        dest(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":%d}\n' % n)
        dest.rotate()
        assert dest._maintenance.wait(5.0)
        for thread in _rotate_threads():
            thread.join(10.0)  # idle: gone until the next rotation
    dest.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        *(f"app.{utc_stamp(DAY + n)}.jsonl.gz" for n in range(3)),
        "app.jsonl",
    ]


def test_gzip_never_follows_a_symlink_at_the_old_partial_name(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    backup = tmp_path / f"app.{utc_stamp(DAY)}.jsonl"
    backup.write_bytes(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":1}\n')
    partial = tmp_path / (backup.name + ".gz.partial")
    partial.symlink_to(victim)
    _rotation._gzip(str(backup), 0o600)
    assert victim.read_bytes() == b"precious"
    assert ns(Path(str(backup) + ".gz")) == [1] and not backup.exists()
    assert partial.is_symlink(), "left alone"


def test_gzip_writes_only_exclusive_new_files_and_never_reads_through_a_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backup = tmp_path / f"app.{utc_stamp(DAY)}.jsonl"
    backup.write_bytes(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":1}\n')
    opened: list[tuple[str, int]] = []
    real_open = os.open

    def spy(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        opened.append((os.fspath(file), flags))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    _rotation._gzip(str(backup), 0o600)
    created = [(name, flags) for name, flags in opened if flags & os.O_CREAT]
    assert len(created) == 1
    ((name, flags),) = created
    assert flags & os.O_EXCL and flags & os.O_NOFOLLOW
    assert Path(name).parent == tmp_path and Path(name).name.startswith(".")
    assert all(flags & os.O_NOFOLLOW for _, flags in opened), "the backup itself is not read through a link"
    monkeypatch.undo()
    link = tmp_path / f"app.{utc_stamp(DAY + 1)}.jsonl"
    secret = tmp_path / "secret"
    secret.write_bytes(b"not a log")
    link.symlink_to(secret)
    with pytest.raises(OSError):
        _rotation._gzip(str(link), 0o600)
    assert (
        not Path(str(link) + ".gz").exists()
        and [p.name for p in tmp_path.iterdir() if p.name[0] == "."] == []
    )


# -- when, and what names (issue 13 item 8: tests that notice when the code is wrong) ----------


def test_daily_rotation_at_utc_midnight(
    writers: list[AsyncWriter], tmp_path: Path, non_utc_local_time: None
) -> None:
    path = tmp_path / "app.jsonl"
    clock = FakeClock(DAY - 0.5)
    dest = AsyncFileDestination(path, rotate_when="daily", clock=clock)
    writer = make(writers, dest)
    steps = [(DAY - 0.5, [0, 1]), (DAY + 0.25, [2, 3]), (DAY + 86_399.75, [4]), (DAY + 86_400.0, [5])]
    for t, numbers in steps:
        clock.t = t
        for n in numbers:
            writer.enqueue(item(n))
        assert writer.flush(5.0)
    assert writer.stop(10.0)
    files = rotated_files(path)
    assert [f.name for f in files] == [
        f"app.{utc_stamp(DAY + 0.25)}.jsonl",
        f"app.{utc_stamp(DAY + 86_400.0)}.jsonl",
        "app.jsonl",
    ]
    assert [ns(f) for f in files] == [[0, 1], [2, 3, 4], [5]]


@pytest.mark.parametrize(("when", "seconds"), [("90", 90.0), (" 90 ", 90.0), (90, 90.0), ("1.5m", 90.0)])
def test_a_bare_number_for_rotate_when_is_seconds(tmp_path: Path, when: object, seconds: float) -> None:
    assert _rotation.parse_rotate_when(when) == seconds
    clock = FakeClock(DAY)
    dest = AsyncFileDestination(tmp_path / "app.jsonl", rotate_when=when, clock=clock)  # type: ignore[arg-type]
    clock.t = DAY + seconds - 0.25
    assert dest.rotation_due() is False
    clock.t = DAY + seconds
    assert dest.rotation_due() is True
    dest.close()


@pytest.mark.parametrize(
    "when", [0, 0.0, "0", "0s", "0m", "-5", "soon", float("inf"), True, "0.0000001s", 0.5, "\u0661h"]
)
def test_an_interval_of_zero_or_nonsense_is_refused(tmp_path: Path, when: object) -> None:
    with pytest.raises(ValueError, match="hourly, daily, or an interval"):
        _rotation.parse_rotate_when(when)
    with pytest.raises(ValueError, match="hourly, daily, or an interval"):
        AsyncFileDestination(tmp_path / "app.jsonl", rotate_when=when)  # type: ignore[arg-type]
    assert not (tmp_path / "app.jsonl").exists()


def test_backups_of_a_name_with_several_dots_are_stamped_after_its_first_part(tmp_path: Path) -> None:
    """``app.v2.jsonl`` -> ``app.<time>Z.v2.jsonl``: the names replay and retention know again."""
    path = tmp_path / "app.v2.jsonl"
    dest = AsyncFileDestination(path, backup_count=5, clock=FakeClock(DAY))
    dest(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":1}\n')
    dest.rotate()
    dest.close()
    backup = tmp_path / f"app.{utc_stamp(DAY)}.v2.jsonl"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([backup.name, path.name])
    assert _rotation.backups(str(path)) == [str(backup)]
    assert _rotation.backup_of(str(backup)) == (str(path), False)
    assert _rotation.backup_of(str(backup) + ".gz") == (str(path), True)


# -- replay checkpoints of deleted backups ----------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_retention_removes_the_replay_checkpoints_of_the_backups_it_deletes(
    tmp_path: Path, compress: bool
) -> None:
    """A replay leaves ``X.replay.json`` beside each backup it sent (``X.gz`` shares ``X``'s).
    Once retention deletes a backup nothing can resume in it: its checkpoint goes too. The
    kept backups' and the live file's checkpoints stay, and so do dead letters (records)."""
    path = tmp_path / "app.jsonl"
    clock = FakeClock(DAY)
    dest = AsyncFileDestination(path, compress=compress, backup_count=2, clock=clock)
    live_checkpoint = replay.checkpoint_path(str(path))
    Path(live_checkpoint).write_bytes(b"{}")
    for n in range(5):
        clock.t = DAY + n
        dest(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":%d}\n' % n)
        dest.rotate()
        assert dest._maintenance.wait(5.0)
        for backup in _rotation.backups(str(path)):  # a replay sends each backup
            Path(replay.checkpoint_path(backup)).write_bytes(b"{}")
            Path(replay.dead_letter_path(backup)).write_bytes(b"{}\n")
    dest.close()
    suffix = ".jsonl.gz" if compress else ".jsonl"
    kept = [f"app.{utc_stamp(DAY + n)}" for n in (3, 4)]
    checkpoints = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".replay.json"))
    assert checkpoints == sorted([f"{stem}.jsonl.replay.json" for stem in kept] + ["app.jsonl.replay.json"])
    assert _rotation.backups(str(path)) == [str(tmp_path / (stem + suffix)) for stem in kept]
    dead = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".replay.dead"))
    assert len(dead) == 5, "dead letters hold records: never deleted"


def test_the_checkpoint_of_a_backup_deleted_by_hand_goes_at_the_next_retention(tmp_path: Path) -> None:
    """Only this family's checkpoints whose backup is gone (plain and compressed): another
    family's, and one whose backup exists only compressed, stay."""
    path = tmp_path / "app.jsonl"
    clock = FakeClock(DAY)
    gone = tmp_path / f"app.{utc_stamp(DAY - 100)}.jsonl"
    compressed = tmp_path / f"app.{utc_stamp(DAY - 50)}.jsonl"
    other = tmp_path / f"other.{utc_stamp(DAY - 100)}.jsonl"
    (tmp_path / (compressed.name + ".gz")).write_bytes(gzip.compress(b'{"n":1}\n'))
    for backup in (gone, compressed, other):
        Path(replay.checkpoint_path(str(backup))).write_bytes(b"{}")
    dest = AsyncFileDestination(path, backup_count=5, clock=clock)
    dest(b'{"ts":1.0,"tid":"x.1","lvl":[1]}\n')
    dest.rotate()
    assert dest._maintenance.wait(5.0)
    dest.close()
    assert not Path(replay.checkpoint_path(str(gone))).exists()
    assert Path(replay.checkpoint_path(str(compressed))).exists()
    assert Path(replay.checkpoint_path(str(other))).exists()


# -- names that only look like our backups ------------------------------------------------------


def test_a_file_named_like_a_backup_of_a_time_that_does_not_exist_stops_no_rotation(
    writers: list[AsyncWriter], tmp_path: Path
) -> None:
    """Its date could not be read as the newest backup's: every rotation failed (records
    dropped as io_error, a descriptor left open each time)."""
    path = tmp_path / "app.jsonl"
    stranger = tmp_path / "app.99999999T999999.000000Z.jsonl"
    stranger.write_bytes(b"not ours\n")
    open_before = len(os.listdir("/proc/self/fd"))
    dest = AsyncFileDestination(path, max_bytes=200, backup_count=50)
    writer = make(writers, dest)
    for n in range(20):
        writer.enqueue(item(n))
        assert writer.flush(5.0)
    writer.stop(5.0)
    m = writer.metrics
    assert (m.written, m.dropped) == (20, 0), m.dropped_by_reason
    ours = _rotation.backups(str(path))
    assert ours and stranger.name not in {os.path.basename(b) for b in ours}
    assert stranger.read_bytes() == b"not ours\n", "left alone"
    assert len(os.listdir("/proc/self/fd")) <= open_before


@pytest.mark.parametrize(
    "name",
    [
        "app.20200101T000000.000000Z.jsonl\n",
        "app.\u0662\u0660\u0662\u06600101T000000.000000Z.jsonl",
        "app.20201301T000000.000000Z.jsonl",
    ],
    ids=["a newline after", "other digits", "month 13"],
)
def test_retention_deletes_only_names_we_give(tmp_path: Path, name: str) -> None:
    path = tmp_path / "app.jsonl"
    stranger = tmp_path / name
    stranger.write_bytes(b"someone else's\n")
    dest = AsyncFileDestination(path, max_bytes=50, backup_count=1)
    for _ in range(3):
        dest(b'{"a":1}\n' * 10)
        dest.rotate()
    dest.close()
    assert stranger.read_bytes() == b"someone else's\n"
    assert len(_rotation.backups(str(path))) == 1


def test_hourly_rotation_is_aimed_again_when_the_clock_steps_back(tmp_path: Path) -> None:
    """Opened at 10:30, the clock steps back to 08:30 (NTP, a VM resumed): the next
    rotation is at 09:00, not at 11:00 (the file would span the hours lived again)."""
    hour = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    clock = FakeClock(hour + 2.5 * 3600)
    dest = AsyncFileDestination(tmp_path / "app.jsonl", rotate_when="hourly", clock=clock)
    dest(b'{"a":1}\n')
    clock.t = hour + 0.5 * 3600
    assert not dest.rotation_due()
    dest(b'{"a":2}\n')
    clock.t = hour + 0.9 * 3600
    assert not dest.rotation_due()
    clock.t = hour + 1.1 * 3600
    assert dest.rotation_due()
    dest.close()


def test_temporary_files_a_crash_left_are_removed_once_old(tmp_path: Path) -> None:
    """A crash in the middle of a gzip leaves its hidden ``.partial`` copy: nothing removed
    it, ever. An hour old, it goes at the next rotation's upkeep; a fresh one (being
    written) and anyone else's stay."""
    path = tmp_path / "app.jsonl"
    old = tmp_path / ".app.20261126T224005.123456Z.jsonl.gz.0123456789abcdef.partial"
    fresh = tmp_path / ".app.20261126T224006.123456Z.jsonl.gz.fedcba9876543210.partial"
    checkpoint = tmp_path / ".app.jsonl.replay.json.00112233445566aa.partial"
    theirs = tmp_path / ".other.jsonl.gz.0123456789abcdef.partial"
    for leftover in (old, fresh, checkpoint, theirs):
        leftover.write_bytes(b"x")
    hour_ago = time.time() - _rotation.PARTIAL_ORPHAN_S - 1
    for leftover in (old, checkpoint, theirs):
        os.utime(leftover, (hour_ago, hour_ago))
    dest = AsyncFileDestination(path, compress=True)
    dest(b'{"a":1}\n')
    dest.rotate()
    assert dest._maintenance.wait(10.0)
    dest.close()
    assert not old.exists() and not checkpoint.exists()
    assert fresh.exists() and theirs.exists()


def test_strftime_fields_of_a_template_are_in_utc_as_rotation_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In local time a daily file's name and the UTC day it holds differed by the zone's
    offset (here 14 hours)."""
    monkeypatch.setenv("TZ", "Etc/GMT-14")  # UTC+14
    time.tzset()
    try:
        before = time.strftime("app-%Y%m%d%H.jsonl", time.gmtime())
        dest = AsyncFileDestination(tmp_path / "app-%Y%m%d%H.jsonl")
        after = time.strftime("app-%Y%m%d%H.jsonl", time.gmtime())
        dest.close()
        assert time.strftime("%H") != time.strftime("%H", time.gmtime()), "the zone is in effect"
        assert Path(dest.path).name in (before, after)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_backups_a_process_left_uncompressed_are_compressed_at_the_next_rotation(tmp_path: Path) -> None:
    """Hostile review, session 27: processes sharing a file with ``compress`` that ended
    while compressing a backup (a child's ``os._exit``, the exit cutting the upkeep thread
    short) left it uncompressed, or as both ``X`` and ``X.gz`` (renamed into place, not yet
    removed): a reader of every file saw its records twice, and nothing removed ``X``. The
    next rotation's upkeep compresses what was left: ``X.gz`` made again from ``X``, which
    may have taken lines since, and ``X`` removed."""
    path = tmp_path / "app.jsonl"
    older = tmp_path / f"app.{utc_stamp(DAY - 2)}.jsonl"
    half_done = tmp_path / f"app.{utc_stamp(DAY - 1)}.jsonl"
    older.write_bytes(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":1}\n')
    lines = b'{"ts":1.0,"tid":"x.2","lvl":[1],"n":2}\n{"ts":1.0,"tid":"x.3","lvl":[1],"n":3}\n'
    half_done.write_bytes(lines)
    Path(str(half_done) + ".gz").write_bytes(gzip.compress(lines[: len(lines) // 2 + 1]))
    clock = FakeClock(DAY)
    dest = AsyncFileDestination(path, compress=True, clock=clock)
    dest(b'{"ts":1.0,"tid":"x.4","lvl":[1],"n":4}\n')
    dest.rotate()
    assert dest._maintenance.wait(5.0)
    dest.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        [f"{older.name}.gz", f"{half_done.name}.gz", f"app.{utc_stamp(DAY)}.jsonl.gz", "app.jsonl"]
    )
    assert gzip.decompress(Path(str(half_done) + ".gz").read_bytes()) == lines
    assert ns(Path(str(older) + ".gz")) == [1]


def test_left_over_backups_beyond_backup_count_are_deleted_not_compressed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review of the fix above: the left-overs were compressed before retention deleted
    the ones beyond ``backup_count``: 250 of them, 2 MB each, took the whole close bound,
    and 253 backups were left instead of 3. Retention first; then at most a few left-overs
    a rotation (the next rotations take the rest)."""
    path = tmp_path / "app.jsonl"
    for n in range(10):
        old = tmp_path / f"app.{utc_stamp(DAY - 100 + n)}.jsonl"
        old.write_bytes(b'{"ts":1.0,"tid":"x.1","lvl":[1],"n":1}\n')
    compressed: list[str] = []
    real_gzip = _rotation._gzip

    def counted(backup: str, file_mode: int) -> None:
        compressed.append(Path(backup).name)
        real_gzip(backup, file_mode)

    monkeypatch.setattr(_rotation, "_gzip", counted)
    clock = FakeClock(DAY)
    dest = AsyncFileDestination(path, compress=True, backup_count=3, clock=clock)
    dest(b'{"ts":1.0,"tid":"x.4","lvl":[1],"n":4}\n')
    dest.rotate()
    assert dest._maintenance.wait(5.0)
    dest.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    survivors = [f"app.{utc_stamp(DAY - 100 + n)}.jsonl.gz" for n in (8, 9)]
    assert names == sorted([*survivors, f"app.{utc_stamp(DAY)}.jsonl.gz", "app.jsonl"])
    assert len(compressed) == 3  # the new backup and the two left-overs kept: none deleted after


def test_backups_by_family_finds_each_familys_backups_as_backups_does(tmp_path: Path) -> None:
    """One listing a directory, grouped by family (the viewer's, for many families), gives
    each live file what ``backups`` gives it (a review found names with a newline left out)."""
    lives = ["app.jsonl", "app.v2.jsonl", "app", "app..jsonl", "APP.JSONL", "x.json\nl", "é.log"]
    stamps = ["20261126T000000.000000Z", "20261126T000001.000001Z", "99999999T999999.000000Z"]
    for live in lives:
        (tmp_path / live).write_bytes(b"")
        stem, dot, suffix = live.partition(".")
        for n, stamp in enumerate(stamps):
            (tmp_path / f"{stem}.{stamp}{dot}{suffix}{'.gz' if n else ''}").write_bytes(b"")
    grouped = _rotation.backups_by_family(str(tmp_path))
    for live in lives:
        assert grouped.get(live, []) == _rotation.backups(str(tmp_path / live)), live


# -- a disk that really fills (a tmpfs of a few pages: the kernel's own short writes) -------


def test_a_disk_that_fills_while_a_backup_is_compressed_loses_no_record_counted_written(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = small_disk / "app.jsonl"
    provider = LoggerProvider(shutdown_on_exit=False)
    processor = LogxpyLogRecordProcessor(str(path), max_bytes=40_000, compress="gzip", retry_timeout=1)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("app")
    upkeep = processor.writer.destinations[0]._maintenance
    emitted: list[str] = []

    def log(count: int) -> None:
        for _ in range(count):
            emitted.append(os.urandom(100).hex())  # (barely compressible: the .gz needs pages)
            logger.emit(body=emitted[-1], severity_number=SeverityNumber.INFO)
        processor.force_flush(10_000)

    log(60)  # the live file near max_bytes
    size = path.stat().st_size
    assert size < 40_000 and not list(small_disk.glob("*.gz"))
    page = os.statvfs(small_disk).f_frsize
    room = (-(-40_000 // page) - -(-size // page)) * page  # the pages up to max_bytes
    fill_disk(small_disk / "filler", leave=room)
    log(60)  # past max_bytes: rotation, then no room for the new file's lines nor the .gz
    assert upkeep.wait(10.0)
    plain = [p.name for p in small_disk.iterdir() if re.fullmatch(r"app\..*Z\.jsonl", p.name)]
    assert len(plain) == 1, sorted(p.name for p in small_disk.iterdir())
    assert any("could not compress" in r.getMessage() for r in caplog.records), "gzip met the full disk"
    assert processor.metrics.dropped_by_reason.get(DropReason.IO_ERROR, 0) > 0, "so did the writer"

    (small_disk / "filler").unlink()  # room again
    log(150)  # another rotation: its backup is compressed, and so is the one left plain
    assert upkeep.wait(10.0)
    assert processor.force_flush(10_000)
    provider.shutdown()
    names = sorted(p.name for p in small_disk.iterdir())
    assert not [n for n in names if n.endswith(".jsonl") and n != "app.jsonl"], names
    assert not [n for n in names if "partial" in n], names
    m = processor.metrics
    assert_accounting(m)
    assert m.dropped == m.dropped_by_reason[DropReason.IO_ERROR]
    bodies: list[str] = []
    for name in names:
        for line in reader.read_file(small_disk / name):
            assert isinstance(line, reader.LineRecord), line
            bodies.append(str(line.record.log_record.body))
    # Every record the writer counted written is in the files once, and nothing else is.
    assert len(bodies) == len(set(bodies)) == m.written
    assert set(bodies) <= set(emitted) and m.written + m.dropped == len(emitted)
