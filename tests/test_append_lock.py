"""Processes appending to one file: a line another process of ours is still writing is
never taken for a torn one (which would add an empty line), no append of ours lands in a
line another left cut while it retries, and a stopped process holding the lock slows a
writer once, never blocks it. (The other process is modelled by a descriptor of the
test's own that holds the lock as our writes do: exclusively.)"""

from __future__ import annotations

import errno
import fcntl
import gzip
import inspect
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from logxpy_otel import AsyncFileDestination, _append_lock, _destinations

OTHER_HALF, OTHER_REST = b'{"who":"other","n":0}\n{"who":"other",', b'"n":1}\n'
MINE = b'{"who":"mine"}\n'


@pytest.fixture
def other(tmp_path: Path) -> Iterator[int]:
    """Another process's descriptor on the shared file, as ours opens it."""
    fd = os.open(tmp_path / "shared.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    yield fd
    os.close(fd)


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits for the lock of 0.05 s (for a file with no retry time: retry_timeout_s=0)."""
    monkeypatch.setattr(_append_lock, "LOCK_TIMEOUT_S", 0.05)


def record_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the lock's waits take from now on (they still pause)."""
    pauses: list[float] = []
    real_pause = _append_lock._pause

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        real_pause(seconds)

    monkeypatch.setattr(_append_lock, "_pause", pause)
    return pauses


def can_lock(fd: int) -> bool:
    """Whether ``fd`` (another open file description) can take the lock now (and let it go)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def lines_of(path: Path) -> list[bytes]:
    """The file's lines; fails on an empty line, or on one that is not a JSON object."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    lines = data[:-1].split(b"\n")
    assert b"" not in lines, f"an empty line in the file: {data!r}"
    for line in lines:
        assert isinstance(orjson.loads(line), dict), line
    return lines


def test_a_line_another_writer_is_still_writing_gets_no_newline_of_ours(
    tmp_path: Path, other: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other process is in the middle of its append (it holds the lock, as our writes
    do, and a reader sees half of its batch) when we open the file and when we first write.
    Our write waits for it, then sees its line ended: no newline of ours, no empty line."""
    path = tmp_path / "shared.jsonl"
    fcntl.flock(other, fcntl.LOCK_EX)
    os.write(other, OTHER_HALF)
    dest = AsyncFileDestination(path)
    waits: list[float] = []

    def the_other_finishes(seconds: float) -> None:
        if not waits:
            os.write(other, OTHER_REST)
            fcntl.flock(other, fcntl.LOCK_UN)
        waits.append(seconds)

    monkeypatch.setattr(_append_lock, "_pause", the_other_finishes)
    dest(MINE)
    dest.close()
    assert waits, "our write waited for the other one"
    assert lines_of(path) == [b'{"who":"other","n":0}', b'{"who":"other","n":1}', MINE[:-1]]


def test_a_line_torn_by_a_crash_is_ended_under_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "crashed.jsonl"
    path.write_bytes(b'{"a":1}\n{"cut')
    dest = AsyncFileDestination(path)
    dest(MINE)
    dest(MINE)
    dest.close()
    assert path.read_bytes() == b'{"a":1}\n{"cut\n' + MINE + MINE


def test_a_line_torn_by_our_full_disk_and_ended_by_another_writer_gets_no_second_newline(
    tmp_path: Path, other: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our write is cut inside a line (disk full); another process appends before our next
    write (its first line is glued to our torn one, which nothing can mend). Its lines
    end the file with a newline, so ours must not add one: that would be an empty line."""
    path = tmp_path / "shared.jsonl"
    dest = AsyncFileDestination(path, retry_timeout_s=0.0)
    real_write = os.write
    wrote: list[int] = []

    def five_bytes_then_full(fd: int, data: Any) -> int:
        if fd == dest._fd and wrote:
            raise OSError(errno.ENOSPC, "No space left on device")
        wrote.append(fd)
        return real_write(fd, bytes(data)[:5])

    monkeypatch.setattr(_destinations.os, "write", five_bytes_then_full)
    with pytest.raises(OSError):
        dest(MINE)  # 5 bytes in, then the disk is full
    monkeypatch.undo()
    os.write(other, b'"x":1}\n{"who":"other"}\n')
    dest(MINE)
    dest.close()
    data = path.read_bytes()
    assert b"\n\n" not in data, data
    assert data == MINE[:5] + b'"x":1}\n{"who":"other"}\n' + MINE


@pytest.mark.parametrize("torn", [False, True])
def test_a_writer_stopped_holding_the_lock_slows_our_writes_once(
    tmp_path: Path, other: int, short_timeout: None, monkeypatch: pytest.MonkeyPatch, torn: bool
) -> None:
    """Another process holds the lock and does not let go (stopped mid-write): our first
    write waits for the timeout and writes; the next ones try the lock once, without
    waiting. Once it is free they hold it again. (Torn: the first write also looks at the
    file's end, which ends mid-line.)"""
    path = tmp_path / "shared.jsonl"
    if torn:
        os.write(other, b'{"cut')
    fcntl.flock(other, fcntl.LOCK_EX)
    dest = AsyncFileDestination(path, retry_timeout_s=0.0)
    waits = record_pauses(monkeypatch)
    started = time.monotonic()
    dest(MINE)
    # The wait's deadline is set after `started`, and it ends only once the clock passes it.
    assert time.monotonic() - started >= 0.05, "the first write waited for the timeout"
    before = len(waits)
    dest(MINE)
    dest(MINE)
    assert len(waits) == before, "the next writes did not wait"
    fcntl.flock(other, fcntl.LOCK_UN)  # the stopped process goes on, and lets go
    assert holds_the_lock_while_writing(dest, other, monkeypatch) == [True]
    # Had again, the lock is waited for again: the other's next append holds it briefly.
    fcntl.flock(other, fcntl.LOCK_EX)
    waited: list[float] = []

    def the_other_lets_go(seconds: float) -> None:
        waited.append(seconds)
        fcntl.flock(other, fcntl.LOCK_UN)

    monkeypatch.setattr(_append_lock, "_pause", the_other_lets_go)
    assert holds_the_lock_while_writing(dest, other, monkeypatch) == [True]
    assert waited, "the write waited for the lock"
    dest.close()
    assert path.read_bytes() == (b'{"cut\n' if torn else b"") + MINE * 5


def test_a_torn_line_is_still_ended_when_the_lock_cannot_be_had(
    tmp_path: Path, other: int, short_timeout: None
) -> None:
    """A process holds the lock and never lets go: our first write cannot look at the file's
    end under the lock. The file has not grown since we opened it, so the line was torn by
    a crash: ours ends it."""
    path = tmp_path / "shared.jsonl"
    os.write(other, b'{"a":1}\n{"cut')
    fcntl.flock(other, fcntl.LOCK_EX)
    dest = AsyncFileDestination(path, retry_timeout_s=0.0)
    dest(MINE)
    dest.close()
    assert path.read_bytes() == b'{"a":1}\n{"cut\n' + MINE


@pytest.mark.parametrize("error", [errno.ENOLCK, errno.EOPNOTSUPP, errno.EBADF])
def test_a_file_system_without_flock_is_written_unlocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    calls: list[int] = []

    def no_flock(fd: int, operation: int) -> None:
        calls.append(operation)
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(_append_lock.fcntl, "flock", no_flock)
    path = tmp_path / "nfs.jsonl"
    path.write_bytes(b'{"a":1}\n{"cut')
    dest = AsyncFileDestination(path)
    dest(MINE)
    dest(MINE)
    dest.close()
    assert len(calls) == 1, "tried once, then not again"
    assert path.read_bytes() == b'{"a":1}\n{"cut\n' + MINE + MINE, "the torn line is still ended"


@pytest.mark.parametrize("why", ["no flock here", "the lock held past a wait"])
def test_a_write_without_the_lock_never_goes_into_a_renamed_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, why: str
) -> None:
    """Unlocked, nothing keeps another process's upkeep from reading a renamed file for
    good and deleting it while we append: our batch goes to the file now at the path (it
    went into the backup, and was lost once that was compressed, counted as written)."""
    path = tmp_path / "shared.jsonl"
    if why == "no flock here":

        def no_flock(fd: int, operation: int) -> None:
            raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

        monkeypatch.setattr(_append_lock.fcntl, "flock", no_flock)
    dest = AsyncFileDestination(path, reopen_check_s=3600.0, max_bytes=1 << 20)
    with caplog.at_level(logging.WARNING, logger="logxpy_otel"):
        dest(MINE)
    holder = None
    if why == "no flock here":
        assert dest._lock is not None and not dest._lock.usable
        assert "has no flock" in caplog.text, "rotation shared by processes is not safe there: said"
    else:
        holder = os.open(path, os.O_RDONLY)
        fcntl.flock(holder, fcntl.LOCK_EX)  # (a process stopped holding it: one try, no wait)
        assert dest._lock is not None
        dest._lock.patient = False
    backup = tmp_path / "shared.20261129T120000.000000Z.jsonl"
    path.rename(backup)  # another process's rotation
    try:
        dest(b'{"b":2}\n')
    finally:
        if holder is not None:
            os.close(holder)
        dest.close()
    assert backup.read_bytes() == MINE
    assert path.read_bytes() == b'{"b":2}\n'


def test_no_lock_is_taken_on_a_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(_append_lock.fcntl, "flock", lambda fd, op: calls.append(op))
    dest = AsyncFileDestination("/dev/null")
    dest(MINE)
    dest.close()
    assert calls == []


def holds_the_lock_while_writing(
    dest: AsyncFileDestination, other: int, monkeypatch: pytest.MonkeyPatch
) -> list[bool]:
    """Write once to ``dest``; for each ``write(2)`` of it, whether ``other`` could not take
    the lock meanwhile (True: ``dest`` held it)."""
    seen: list[bool] = []
    real_write = os.write

    def write(fd: int, data: Any) -> int:
        if fd == dest._fd:
            seen.append(not can_lock(other))
        return real_write(fd, data)

    monkeypatch.setattr(_destinations.os, "write", write)
    try:
        dest(MINE)
    finally:
        monkeypatch.undo()
    return seen


def test_every_write_of_ours_holds_the_lock_and_lets_it_go(
    tmp_path: Path, other: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = AsyncFileDestination(tmp_path / "shared.jsonl")
    assert holds_the_lock_while_writing(dest, other, monkeypatch) == [True]
    assert can_lock(other), "free again afterwards"
    dest.close()


class _Other:
    """Another writer of ours on the same file, writing from its own thread when started:
    ``waiting`` is set once it finds the lock taken."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dest = AsyncFileDestination(path)
        self.waiting = threading.Event()
        self.thread = threading.Thread(target=self.dest, args=(OTHER_LINE,))
        real_pause = _append_lock._pause

        def pause(seconds: float) -> None:
            if threading.current_thread() is self.thread:
                self.waiting.set()
            real_pause(seconds)

        monkeypatch.setattr(_append_lock, "_pause", pause)


OTHER_LINE = b'{"who":"other"}\n'


def retrying_write(
    dest: AsyncFileDestination, other: _Other, monkeypatch: pytest.MonkeyPatch, steps: list[int | None]
) -> None:
    """``dest(TWO_LINES)`` whose ``write(2)`` calls go as ``steps`` say (an int: that many
    bytes get in; None: ENOSPC; then whole), the other writer starting during the first
    retry pause, which lasts until it waits for the lock (or 5 s)."""
    real_write, real_sleep = os.write, time.sleep
    script = list(steps)

    def write(fd: int, data: Any) -> int:
        if fd != dest._fd or not script:
            return real_write(fd, data)
        step = script.pop(0)
        if step is None:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, bytes(data)[:step])

    def sleep(seconds: float) -> None:
        if threading.current_thread() is threading.main_thread() and not other.thread.is_alive():
            other.thread.start()
            other.waiting.wait(5.0)
        real_sleep(seconds)

    monkeypatch.setattr(_destinations.os, "write", write)
    monkeypatch.setattr(_destinations.time, "sleep", sleep)
    try:
        dest(TWO_LINES)
    finally:
        monkeypatch.setattr(_destinations.os, "write", real_write)
        monkeypatch.setattr(_destinations.time, "sleep", real_sleep)
    other.thread.join(10.0)


TWO_LINES = b'{"who":"mine","n":1}\n{"who":"mine","n":2}\n'


def test_no_append_of_ours_lands_in_a_line_another_cut_while_it_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our write stops inside its second line (a short write, then the disk is full for a
    moment); while it waits to retry, another writer of ours appends: it waits for the
    lock, and its line comes after ours, whole."""
    path = tmp_path / "shared.jsonl"
    dest = AsyncFileDestination(path)
    other = _Other(path, monkeypatch)
    retrying_write(dest, other, monkeypatch, [30, None])
    assert other.waiting.is_set(), "the other writer waited for the lock"
    dest.close()
    other.dest.close()
    assert lines_of(path) == [*TWO_LINES.splitlines(), OTHER_LINE[:-1]]


def test_the_newline_for_a_torn_line_still_holds_when_the_write_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """We open a file torn by a crash and decide, under the lock, to end that line; the
    write fails once (nothing gets in). Another writer of ours (it opened the file before
    the crash) appending meanwhile waits, so the decision still holds when the retry goes
    in: no empty line, nothing glued."""
    path = tmp_path / "shared.jsonl"
    path.write_bytes(b'{"a":1}\n')
    other = _Other(path, monkeypatch)  # opened while the file ended well: it looks at nothing
    with path.open("ab") as crashed:
        crashed.write(b'{"cut')
    dest = AsyncFileDestination(path)
    retrying_write(dest, other, monkeypatch, [None])
    assert other.waiting.is_set(), "the other writer waited for the lock"
    dest.close()
    other.dest.close()
    assert path.read_bytes() == b'{"a":1}\n{"cut\n' + TWO_LINES + OTHER_LINE


class RequestTimeout(Exception):
    """What an application's SIGALRM handler might raise."""


@pytest.mark.parametrize("error", [RequestTimeout("alarm"), TimeoutError("alarm"), KeyboardInterrupt()])
def test_a_signal_handler_raising_as_the_lock_is_taken_leaves_it_free(
    tmp_path: Path, other: int, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    """CPython runs a pending signal handler as ``flock`` returns: its exception leaves the
    write with the lock taken. The write lets it go on the way out, and the exception is
    the application's (not taken for a file system without flock)."""
    path = tmp_path / "shared.jsonl"
    dest = AsyncFileDestination(path)
    real_flock = fcntl.flock

    def flock_then_signal(fd: int, operation: int) -> None:
        real_flock(fd, operation)
        if operation & fcntl.LOCK_EX:
            raise error

    monkeypatch.setattr(_append_lock.fcntl, "flock", flock_then_signal)
    with pytest.raises(type(error)):
        dest(MINE)
    monkeypatch.undo()
    assert can_lock(other), "free"
    assert dest._lock is not None and dest._lock.usable, "flock is still in use here"
    dest(MINE)
    dest.close()
    assert path.read_bytes() == MINE


def test_a_cut_write_still_says_how_many_lines_got_in_when_fstat_fails_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The device that failed the write fails fstat too (EIO, ESTALE): the whole line that
    got in is still reported (PartialWriteError), not lost in the count."""
    path = tmp_path / "x.jsonl"
    dest = AsyncFileDestination(path, retry_timeout_s=0.0)
    real_write, real_fstat = os.write, os.fstat
    broken: list[bool] = []

    def write(fd: int, data: Any) -> int:
        if fd != dest._fd:
            return real_write(fd, data)
        if broken:
            raise OSError(errno.EIO, "Input/output error")
        broken.append(True)
        return real_write(fd, bytes(data)[: len(TWO_LINES) // 2 + 3])

    def fstat(fd: int) -> os.stat_result:
        if broken and fd == dest._fd:
            raise OSError(errno.EIO, "Input/output error")
        return real_fstat(fd)

    monkeypatch.setattr(_destinations.os, "write", write)
    monkeypatch.setattr(_destinations.os, "fstat", fstat)
    with pytest.raises(_destinations.PartialWriteError) as caught:
        dest(TWO_LINES)
    monkeypatch.undo()
    assert caught.value.lines == 1
    dest(MINE)  # the size is unknown: the cut line is ended (an empty line costs no record)
    dest.close()
    assert path.read_bytes() == TWO_LINES[: len(TWO_LINES) // 2 + 3] + b"\n" + MINE


def test_a_file_emptied_while_we_look_at_its_end_gets_no_empty_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """logrotate's copytruncate between the size and the read of the last byte: the read
    finds nothing, which says nothing about a torn line."""
    path = tmp_path / "app.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":')  # another process's append, half seen at our open
    dest = AsyncFileDestination(path)
    with open(path, "ab") as f:
        f.write(b"2}\n")  # ... which then completes
    real_pread = os.pread

    def pread(fd: int, n: int, offset: int) -> bytes:
        os.truncate(path, 0)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(_append_lock.os, "pread", pread)
    dest(MINE)
    monkeypatch.undo()
    dest.close()
    assert path.read_bytes() == MINE


_STRESS = """
import multiprocessing, sys
from logxpy_otel import AsyncFileDestination

def worker(path, wid, rounds):
    pad = b"p" * 180
    for r in range(rounds):
        # a batch of many pages, from a file opened afresh each time (as forked pool
        # workers and restarted processes do): many opens land in another's append
        batch = b"".join(b'{"w":%d,"r":%d,"n":%d,"pad":"%s"}\\n' % (wid, r, n, pad) for n in range(200))
        dest = AsyncFileDestination(path)
        dest(batch)
        dest.close()
"""


def run_workers(tmp_path: Path, worker: str, path: Path, procs: int, rounds: int) -> None:
    """Run ``worker`` (the source of ``worker(path, wid, rounds)``) in ``procs`` forked
    processes at once, each for ``rounds``; fails the test if one fails."""
    script = tmp_path / "workers.py"
    script.write_text(textwrap.dedent(worker) + textwrap.dedent(_RUN_WORKERS))
    done = subprocess.run(
        [sys.executable, str(script), str(path), str(procs), str(rounds)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


_RUN_WORKERS = """
if __name__ == "__main__":
    path, procs, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ctx = multiprocessing.get_context("fork")
    ps = [ctx.Process(target=worker, args=(path, w, rounds)) for w in range(procs)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
"""


def test_processes_opening_one_file_while_others_append_add_no_empty_line(tmp_path: Path) -> None:
    """Four processes each open the file 300 times and append a 40 KB batch; without the
    lock a dozen opens or so land mid-append and add an empty line each."""
    path = tmp_path / "shared.jsonl"
    run_workers(tmp_path, _STRESS, path, 4, 300)
    lines = lines_of(path)
    assert len(lines) == 4 * 300 * 200
    assert len(set(lines)) == len(lines), "no line twice"


def test_a_line_torn_by_a_peer_killed_after_we_opened_is_ended_before_ours(tmp_path: Path) -> None:
    """Another process of ours is killed half-way through its append (its lock goes with
    it; its line stays torn) after we opened the file. The file changed since our last
    write, so ours looks at its end under the lock and ends that line."""
    path = tmp_path / "shared.jsonl"
    path.write_bytes(b'{"a":1}\n')
    dest = AsyncFileDestination(path)
    dest(MINE)
    killed = os.open(path, os.O_WRONLY | os.O_APPEND)
    fcntl.flock(killed, fcntl.LOCK_EX)
    os.write(killed, b'{"peer":1}\n{"peer":2,"cu')
    os.close(killed)
    dest(MINE)
    dest.close()
    assert path.read_bytes() == b'{"a":1}\n' + MINE + b'{"peer":1}\n{"peer":2,"cu\n' + MINE


def test_a_write_while_the_file_is_unchanged_since_ours_reads_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end is read only when someone else wrote since our last write."""
    reads: list[int] = []
    real_pread = os.pread

    def pread(fd: int, n: int, offset: int) -> bytes:
        reads.append(offset)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(_append_lock.os, "pread", pread)
    path = tmp_path / "app.jsonl"
    path.write_bytes(b'{"a":1}\n')
    dest = AsyncFileDestination(path)
    reads.clear()  # (opening looks once)
    for _ in range(3):
        dest(MINE)
    assert len(reads) == 1, "only the first write looks (the file was not ours before it)"
    with path.open("ab") as other:
        other.write(b'{"b":2}\n')
    dest(MINE)
    dest.close()
    assert len(reads) == 2


def test_a_failing_rename_does_not_wait_out_a_stopped_holder_at_every_batch(
    tmp_path: Path, other: int, short_timeout: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is past max_bytes and renaming it would fail (the directory is not writable
    for us), so every batch reopens it; a stopped process holds its lock. The reopened
    file is the same one: its holder was waited out once, and is not again (and without
    the lock, nothing is renamed)."""
    path = tmp_path / "shared.jsonl"  # the file ``other`` has open
    os.write(other, b'{"old":1}\n')
    fcntl.flock(other, fcntl.LOCK_EX)

    def no_rename(src: Any, dst: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(_destinations.os, "rename", no_rename)
    pauses = record_pauses(monkeypatch)
    dest = AsyncFileDestination(path, max_bytes=5, retry_timeout_s=0.0, reopen_check_s=0.0)
    waited = 0
    for _ in range(4):
        assert dest.rotation_due()
        before = len(pauses)
        dest.rotate()  # (it takes the lock too, around the rename: not had, no rename)
        assert dest.room() is None, "whole batches meanwhile"
        dest(MINE)
        waited += len(pauses) > before
    dest.close()
    assert waited == 1, f"{waited} batches waited for the lock"
    assert path.read_bytes() == b'{"old":1}\n' + MINE * 4


def test_a_write_nested_in_a_retrying_one_keeps_the_outer_lock(
    tmp_path: Path, other: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal handler logging synchronously runs while our write waits to retry; its
    nested write takes the lock (the same open file: granted) and must not let it go, or
    the outer write would finish unlocked."""
    path = tmp_path / "shared.jsonl"
    dest = AsyncFileDestination(path)
    real_write, real_sleep = os.write, time.sleep
    script: list[int | None] = [10, None]
    nested: list[str] = []
    held_at_retry: list[bool] = []

    def write(fd: int, data: Any) -> int:
        if fd == dest._fd and script:
            step = script.pop(0)
            if step is None:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, bytes(data)[:step])
        if fd == dest._fd and nested == ["in", "out"] and not held_at_retry:
            held_at_retry.append(not can_lock(other))
        return real_write(fd, data)

    def sleep(seconds: float) -> None:
        if not nested:
            nested.append("in")
            dest(b'{"from":"handler"}\n')
            nested.append("out")
        real_sleep(seconds)

    monkeypatch.setattr(_destinations.os, "write", write)
    monkeypatch.setattr(_destinations.time, "sleep", sleep)
    dest(b'{"who":"mine","n":1}\n')
    monkeypatch.undo()
    dest.close()
    assert held_at_retry == [True], "the outer write retried holding the lock"


def test_rotation_holds_the_lock_while_it_renames(
    tmp_path: Path, other: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So another process of ours rotating the same file at once waits, then finds it moved,
    instead of renaming the new file onto our backup."""
    path = tmp_path / "shared.jsonl"  # the file ``other`` has open
    dest = AsyncFileDestination(path, max_bytes=5)
    dest(MINE)
    held: list[bool] = []
    real_rename = os.rename

    def rename(src: Any, dst: Any) -> None:
        held.append(not can_lock(other))
        real_rename(src, dst)

    monkeypatch.setattr(_destinations.os, "rename", rename)
    dest.rotate()
    monkeypatch.undo()
    dest.close()
    assert held == [True]


_ROTATING = """
import multiprocessing, sys
from logxpy_otel import AsyncFileDestination

def worker(path, wid, rounds):
    dest = AsyncFileDestination(path, max_bytes=20000, OPTIONS)
    pad = b"p" * 150
    for r in range(rounds):
        if dest.rotation_due() or (dest.room() is not None and dest.room() < 9000):
            try:
                dest.rotate()
            except OSError as exc:
                print("rotate", exc, file=sys.stderr)
        dest(b"".join(b'{"w":%d,"r":%d,"n":%d,"pad":"%s"}\\n' % (wid, r, n, pad) for n in range(40)))
    dest.close()
"""


@pytest.mark.parametrize(
    "options", ["reopen_check_s=0.0", "compress=True"], ids=["renaming", "renaming and compressing"]
)
def test_processes_rotating_one_file_at_once_lose_no_batch(tmp_path: Path, options: str) -> None:
    """Six processes append to one file and rotate it by size, often at the same moment.
    Without the lock around the rename, one renamed the file another had just opened onto
    the backup the first had just made: 2-8 batches of 40 lost in every run. With
    ``compress`` and the default look at the path (once a second), a process that had not
    noticed another's rename appended to the backup while, or after, the other compressed
    and deleted it (about 200 of 1,800 batches lost a run): now a backup is read and
    deleted under its lock, and a write never goes into a file without a name."""
    logs = tmp_path / "logs"
    logs.mkdir()
    procs, rounds = 6, 300
    run_workers(tmp_path, _ROTATING.replace("OPTIONS", options), logs / "app.jsonl", procs, rounds)
    seen: dict[tuple[int, int, int], int] = {}
    for file in logs.iterdir():
        if file.name.endswith(".gz"):
            lines = gzip.decompress(file.read_bytes()).splitlines()
        else:
            lines = lines_of(file) if file.stat().st_size else []
        for line in lines:
            record = orjson.loads(line)
            key = (record["w"], record["r"], record["n"])
            seen[key] = seen.get(key, 0) + 1
    missing = {(w, r) for w in range(procs) for r in range(rounds)} - {(w, r) for w, r, _ in seen}
    assert not missing, f"{len(missing)} batches lost: {sorted(missing)[:10]}"
    assert len(seen) == procs * rounds * 40
    assert max(seen.values()) == 1


# -- the common case in one call (``_speedups.append_locked``) ------------------------------

needs_c = pytest.mark.skipif(_append_lock._append_locked is None, reason="the C module is not in use")


@needs_c
def test_append_locked_writes_all_and_lets_the_lock_go(tmp_path: Path, other: int) -> None:
    path = tmp_path / "shared.jsonl"
    os.write(other, b'{"a":1}\n')
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        assert _append_lock._append_locked(fd, MINE, 8) == (0, len(MINE))
        assert can_lock(other)
    finally:
        os.close(fd)
    assert path.read_bytes() == b'{"a":1}\n' + MINE


@needs_c
@pytest.mark.parametrize("case", ["locked by another", "grown since"])
def test_append_locked_writes_nothing_unless_it_has_the_lock_and_the_size(
    tmp_path: Path, other: int, case: str
) -> None:
    path = tmp_path / "shared.jsonl"
    os.write(other, b'{"a":1}\n')
    expected = 8
    if case == "locked by another":
        fcntl.flock(other, fcntl.LOCK_EX)
    else:
        expected = 3
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        assert _append_lock._append_locked(fd, MINE, expected) == (1, 0)
        if case == "grown since":
            assert can_lock(other), "the lock was let go"
    finally:
        os.close(fd)
    assert path.read_bytes() == b'{"a":1}\n'


_CUT_SCRIPT = textwrap.dedent(
    """
    import fcntl, json, os, resource, signal, sys, time
    from logxpy_otel import AsyncFileDestination, _append_lock, _destinations

    path, mode = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
    other = os.open(path, os.O_WRONLY | os.O_APPEND)
    calls = []
    real = _append_lock._append_locked

    def append_locked(fd, data, expected):
        result = real(fd, data, expected)
        calls.append(result)
        return result

    _append_lock._append_locked = append_locked
    dest = AsyncFileDestination(path, retry_timeout_s=0.2)
    dest(b'{"n":0}\\n')  # the first write looks at the file's end: the usual way
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 30, hard))
    held = []
    real_sleep = time.sleep

    def sleep(seconds):
        held.append(not can_lock(other))
        if mode == "room":
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        real_sleep(seconds)

    _destinations.time.sleep = sleep
    error = None
    try:
        dest(b'{"n":1,"pad":"xxxxxxxxxx"}\\n{"n":2,"pad":"xxxxxxxxxx"}\\n')
    except OSError as exc:
        error = [type(exc).__name__, getattr(exc, "lines", None)]
    _destinations.time.sleep = real_sleep
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    free = can_lock(other)
    dest(b'{"n":3}\\n')
    dest.close()
    print(json.dumps({"calls": calls, "held": held, "error": error, "free": free}))
    """
)


@needs_c
@pytest.mark.parametrize("mode", ["room", "full"])
def test_a_write_cut_inside_the_one_call_is_finished_or_ended_under_the_lock(
    tmp_path: Path, mode: str
) -> None:
    """The file may grow by 30 bytes only (``RLIMIT_FSIZE``: a real short write, then
    EFBIG), so the one call writes part of a 58-byte batch and returns holding the lock.
    The rest is retried under it (another writer cannot take it meanwhile): with room again
    it goes in whole; without, the batch fails with the one whole line counted, and the
    next write ends the cut line before its own."""
    path = tmp_path / "shared.jsonl"
    path.write_bytes(b"")
    script = tmp_path / "cut.py"
    script.write_text("import fcntl\n" + inspect.getsource(can_lock) + _CUT_SCRIPT)  # (can_lock's own)
    done = subprocess.run(
        [sys.executable, str(script), str(path), mode], capture_output=True, text=True, timeout=60, check=True
    )
    result = orjson.loads(done.stdout.splitlines()[-1])
    assert result["calls"][0] == [2, 30], "the one call wrote what fitted and kept the lock"
    assert result["held"] and all(result["held"]), "every retry held the lock"
    assert result["free"], "and let it go after"
    lines = lines_of(path) if mode == "room" else path.read_bytes().split(b"\n")
    if mode == "room":
        assert result["error"] is None
        assert [orjson.loads(line)["n"] for line in lines] == [0, 1, 2, 3]
    else:
        assert result["error"] == ["PartialWriteError", 1]
        assert lines[:2] == [b'{"n":0}', b'{"n":1,"pad":"xxxxxxxxxx"}']
        assert lines[2:] == [b'{"n', b'{"n":3}', b""], "the cut line was ended before the next"


_RETRYING_OTHER = textwrap.dedent(
    """
    import os, resource, signal, sys
    from logxpy_otel import _destinations, AsyncFileDestination
    path = sys.argv[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
    dest = AsyncFileDestination(path, retry_timeout_s=1.5)
    real_sleep = _destinations.time.sleep
    told = []

    def sleep(seconds):
        if not told:
            told.append(1)
            print("retrying", flush=True)
        real_sleep(seconds)

    _destinations.time.sleep = sleep
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 30, resource.RLIM_INFINITY))
    try:
        dest(b'{"who":"a","n":1,"pad":"' + b"x" * 60 + b'"}\\n')
    except OSError as exc:
        print("cut", type(exc).__name__, flush=True)
    """
)


def test_a_writer_waits_out_another_process_retrying_a_cut_write(tmp_path: Path) -> None:
    """Process A's write is cut by a full disk and retried for its retry time, holding the
    lock. B's wait for the lock used to end after 1 s, and B appended unlocked into A's cut
    line (B's record lost, counted written): the wait outlasts a retry now."""
    path = tmp_path / "shared.jsonl"
    b = AsyncFileDestination(path, retry_timeout_s=1.5)
    b(b'{"who":"b","n":0}\n')
    script = tmp_path / "retrying.py"
    script.write_text(_RETRYING_OTHER)
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "retrying"
        b(b'{"who":"b","n":2}\n')
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    b.close()
    assert "cut" in out
    lines = path.read_bytes().split(b"\n")
    assert b'{"who":"b","n":2}' in lines, f"B's line is not a line of its own: {path.read_bytes()!r}"
