"""Processes appending to one file: a line another process of ours is still writing is
never taken for a torn one (which would add an empty line), and a stopped process
holding the lock slows a writer once, never blocks it."""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
import textwrap
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
    monkeypatch.setattr(_append_lock, "LOCK_TIMEOUT_S", 0.05)


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
    fcntl.flock(other, fcntl.LOCK_SH)
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


def test_a_writer_stopped_holding_the_lock_slows_a_write_once(
    tmp_path: Path, other: int, short_timeout: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the lock exclusively and never lets go (stopped mid-write): our
    write waits for the timeout, writes, and later writes do not wait for the lock again."""
    path = tmp_path / "shared.jsonl"
    fcntl.flock(other, fcntl.LOCK_EX)
    dest = AsyncFileDestination(path)
    waits: list[float] = []
    real_pause = _append_lock._pause

    def pause(seconds: float) -> None:
        waits.append(seconds)
        real_pause(seconds)

    monkeypatch.setattr(_append_lock, "_pause", pause)
    dest(MINE)
    assert waits, "the first write waited"
    before = len(waits)
    dest(MINE)
    dest.close()
    assert len(waits) == before, "the second write did not wait"
    assert path.read_bytes() == MINE * 2


def test_a_torn_line_is_still_ended_when_the_lock_cannot_be_had(
    tmp_path: Path, other: int, short_timeout: None
) -> None:
    """A process holds the lock shared and never lets go: our first write cannot look at the
    file's end under the lock. The file has not grown since we opened it, so the line was
    torn by a crash: ours ends it."""
    path = tmp_path / "shared.jsonl"
    os.write(other, b'{"a":1}\n{"cut')
    fcntl.flock(other, fcntl.LOCK_SH)
    dest = AsyncFileDestination(path)
    dest(MINE)
    dest.close()
    assert path.read_bytes() == b'{"a":1}\n{"cut\n' + MINE


@pytest.mark.parametrize("error", [errno.ENOLCK, errno.EOPNOTSUPP])
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


def test_no_lock_is_taken_on_a_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(_append_lock.fcntl, "flock", lambda fd, op: calls.append(op))
    dest = AsyncFileDestination("/dev/null")
    dest(MINE)
    dest.close()
    assert calls == []


def test_every_write_of_ours_holds_the_lock_and_lets_it_go(
    tmp_path: Path, other: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While our write is under way another process cannot take the lock exclusively;
    once it returns it can."""
    path = tmp_path / "shared.jsonl"
    dest = AsyncFileDestination(path)
    seen: list[bool] = []
    real_write = os.write

    def write(fd: int, data: Any) -> int:
        if fd == dest._fd:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(other, fcntl.LOCK_UN)
                seen.append(True)
            except BlockingIOError:
                seen.append(False)
        return real_write(fd, data)

    monkeypatch.setattr(_destinations.os, "write", write)
    dest(MINE)
    monkeypatch.undo()
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    fcntl.flock(other, fcntl.LOCK_UN)
    dest.close()
    assert seen == [False], "the lock was held during the write"


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

if __name__ == "__main__":
    path, procs, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ctx = multiprocessing.get_context("fork")
    ps = [ctx.Process(target=worker, args=(path, w, rounds)) for w in range(procs)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
        assert p.exitcode == 0
"""


def test_processes_opening_one_file_while_others_append_add_no_empty_line(tmp_path: Path) -> None:
    """Four processes each open the file 300 times and append a 40 KB batch; without the
    lock a dozen opens or so land mid-append and add an empty line each."""
    path = tmp_path / "shared.jsonl"
    script = tmp_path / "stress.py"
    script.write_text(textwrap.dedent(_STRESS))
    done = subprocess.run(
        [sys.executable, str(script), str(path), "4", "300"], capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = lines_of(path)
    assert len(lines) == 4 * 300 * 200
    assert len(set(lines)) == len(lines), "no line twice"
