"""File and console destinations: modes, directories, appends, errors, the default path."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from _helpers import FakeClock, item
from _helpers import start_untimed_writer as make
from hypothesis import given, settings
from hypothesis import strategies as st
from test_rotation import check_file, rotated_files
from test_writer import wait_until

from logxpy_otel import DEFAULT_PATH, AsyncConsoleDestination, AsyncFileDestination, AsyncWriter
from logxpy_otel._destinations import END_LINE_MAX, fit, make_destinations, records_in
from logxpy_otel._trees import TreeNumberer


@pytest.fixture(autouse=True)
def _umask() -> object:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_file_is_created_0600_in_new_0750_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "log.jsonl"
    dest = AsyncFileDestination(path)
    dest(b'{"x":1}\n')
    dest.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o750
    assert path.read_bytes() == b'{"x":1}\n'


def test_file_mode_as_the_user_asks(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    AsyncFileDestination(path, file_mode=0o640).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"old\n")
    dest = AsyncFileDestination(path)
    dest(b"new\n")
    dest.close()
    assert path.read_bytes() == b"old\nnew\n"


def test_partial_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "log.jsonl"
    dest = AsyncFileDestination(path)
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data)[:3]))
    dest(b"0123456789\n")
    monkeypatch.undo()
    dest.close()
    assert path.read_bytes() == b"0123456789\n"


def test_writing_after_close_raises_for_the_writer_to_count(tmp_path: Path) -> None:
    dest = AsyncFileDestination(tmp_path / "log.jsonl")
    dest.close()
    dest.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        dest(b"x\n")


def test_a_directory_at_the_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        AsyncFileDestination(tmp_path)


def test_a_parent_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="cannot open log file"):
        AsyncFileDestination(tmp_path / "file" / "log.jsonl")


def test_default_path_is_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (dest,) = make_destinations(None, None)
    assert isinstance(dest, AsyncFileDestination)
    assert not os.path.isabs(DEFAULT_PATH)
    assert (tmp_path / DEFAULT_PATH).exists()
    dest.close()


def test_given_destinations_replace_the_default_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sink: list[bytes] = []
    assert make_destinations(None, [sink.append]) == [sink.append]
    assert not (tmp_path / DEFAULT_PATH).exists()
    both = make_destinations(tmp_path / "x.jsonl", [sink.append])
    assert len(both) == 2
    both[1].close()  # type: ignore[attr-defined]


def test_console_writes_bytes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    AsyncConsoleDestination()(b'{"x":1}\n')
    assert capsys.readouterr().out == '{"x":1}\n'


@pytest.mark.parametrize("stream", [io.StringIO(), io.BytesIO()])
def test_console_takes_text_or_binary_streams(stream: io.StringIO | io.BytesIO) -> None:
    dest = AsyncConsoleDestination(stream)
    dest(b'{"x":"\xc3\xa9"}\n')
    dest.flush()
    dest.close()
    value = stream.getvalue()
    assert (value.encode() if isinstance(value, str) else value) == b'{"x":"\xc3\xa9"}\n'


# -- max_bytes is a maximum: room(), and what a numbered record can cost (issue 12 item 7) ------


def test_room_is_what_the_file_takes_before_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"old":1}\n')  # 10 bytes already there
    dest = AsyncFileDestination(path, max_bytes=100)
    assert dest.room() == 90
    dest(b"x" * 29 + b"\n")
    assert dest.room() == 60
    dest(b"y" * 79 + b"\n")
    assert dest.room() == 0, "never below nothing"
    dest.rotate()
    assert dest.room() == 100, "a new file"
    dest.close()
    unlimited = AsyncFileDestination(tmp_path / "other.jsonl", rotate_when="daily")
    assert unlimited.room() is None, "no max_bytes: no limit"
    unlimited.close()


def test_room_is_none_while_the_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing goes on in the same file then: a limit it cannot keep would only cut batches small."""
    dest = AsyncFileDestination(tmp_path / "log.jsonl", max_bytes=10)
    dest(b"x" * 19 + b"\n")

    def no_rename(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "rename", no_rename)
    with pytest.raises(PermissionError):
        dest.rotate()
    assert dest.room() is None
    assert dest.rotation_due() is True, "the next batch tries again"
    monkeypatch.undo()
    dest.rotate()
    assert dest.room() == 10
    dest.close()


def test_rotating_an_empty_file_makes_no_backup(tmp_path: Path) -> None:
    """The writer rotates before a line that does not fit; in an empty file it goes alone."""
    path = tmp_path / "log.jsonl"
    dest = AsyncFileDestination(path, max_bytes=10)
    dest.rotate()
    dest(b"x" * 99 + b"\n")
    dest.rotate()
    dest.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2 and "log.jsonl" in names, names
    (backup,) = [tmp_path / n for n in names if n != "log.jsonl"]
    assert backup.read_bytes() == b"x" * 99 + b"\n"
    assert path.read_bytes() == b""


_TRACES = [f"{n:032x}" for n in range(1, 7)]
_items = st.lists(
    st.tuples(
        st.sampled_from([*_TRACES, None]),
        st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1.0, 1795722644.041078]),
        st.booleans(),
        st.integers(min_value=0, max_value=400),
    ),
    max_size=40,
)


def line_items(specs: list[tuple[str | None, float, bool, int]]) -> list[tuple[Any, ...]]:
    return [
        (trace, ts, failed, b'"ts":' + orjson.dumps(ts) + b',"pad":"' + b"p" * size + b'"', b"}", None, None)
        for trace, ts, failed, size in specs
    ]


@pytest.mark.parametrize("speedups", [True, False])
@settings(max_examples=300, deadline=None)
@given(before=_items, specs=_items, max_open=st.integers(1, 4), room=st.integers(-500, 30_000))
def test_fit_never_counts_more_than_numbering_writes(
    speedups: bool,
    before: list[tuple[str | None, float, bool, int]],
    specs: list[tuple[str | None, float, bool, int]],
    max_open: int,
    room: int,
) -> None:
    """What ``fit`` lets through, numbered, plus the end lines of every trace then open,
    never takes more than ``room`` (when the room kept for traces already open is the
    writer's ``END_LINE_MAX`` each)."""
    trees = TreeNumberer(max_open=max_open, speedups=speedups)
    trees.number(line_items(before), [])  # traces left open, counters moved on
    items = line_items(specs)
    count = fit(items, room - trees.open_traces * END_LINE_MAX)
    assert 0 <= count <= len(items)
    assert fit(items, None) == len(items)
    out: list[bytes] = []
    trees.number(items[:count], out)
    trees.close_all(out)
    if count:
        assert len(b"".join(out)) <= room


@pytest.mark.parametrize("speedups", [True, False])
@settings(max_examples=200, deadline=None)
@given(specs=_items, max_open=st.integers(1, 4), tricky=st.booleans())
def test_records_in_counts_records_not_start_or_end_lines(
    speedups: bool, specs: list[tuple[str | None, float, bool, int]], max_open: int, tricky: bool
) -> None:
    items = line_items(specs)
    if tricky:  # records whose content looks like a structure line's end
        looks_like_end = b',"_otel":{"attributes":{"at":"otel:trace","st":"failed"}}'
        looks_like_start = b',"m":' + orjson.dumps('"st":"started"}')
        items = [
            (trace, ts, failed, body + (looks_like_end if n % 2 else looks_like_start), tail, *rest)
            for n, (trace, ts, failed, body, tail, *rest) in enumerate(items)
        ]
    trees = TreeNumberer(max_open=max_open, speedups=speedups)
    out: list[bytes] = []
    trees.number(items, out)
    trees.close_all(out)
    data = b"".join(out)
    is_record = ["at" not in orjson.loads(line) for line in data.splitlines()]
    for lines in range(len(is_record) + 1):
        assert records_in(data, lines) == sum(is_record[:lines])


def sizes_and_records(path: Path) -> list[tuple[str, int, list[int]]]:
    """Each file (backups oldest first, then the live one): its name, size, record numbers."""
    files = rotated_files(path)
    return [(f.name, f.stat().st_size, [r["n"] for r in check_file(f.read_bytes())[0]]) for f in files]


def test_no_file_passes_max_bytes_though_a_batch_is_far_larger(
    writers: list[AsyncWriter], tmp_path: Path
) -> None:
    """The issue: with the default batch_size (4096), a 100 kB limit gave 2.35 MB files."""
    path = tmp_path / "app.jsonl"
    limit = 100_000
    writer = make(writers, AsyncFileDestination(path, max_bytes=limit), max_queue_size=20_000)
    assert writer.config.batch_size == 4096
    for n in range(12_000):
        trace = f"{n // 50 % 7 + 1:032x}" if n % 3 else None
        assert writer.enqueue(item(n, trace=trace, msg="m" * (n % 200)))
    assert writer.stop(30.0)
    files = sizes_and_records(path)
    assert len(files) > 20
    for name, size, _ in files[:-1]:
        assert limit - 4_096 <= size <= limit, f"{name}: {size} bytes"
    assert files[-1][1] <= limit
    assert [n for _, _, ns in files for n in ns] == list(range(12_000)), "each record once, in order"


def test_a_line_longer_than_max_bytes_goes_alone_into_a_file(
    writers: list[AsyncWriter], tmp_path: Path
) -> None:
    path = tmp_path / "app.jsonl"
    limit = 1_000
    writer = make(writers, AsyncFileDestination(path, max_bytes=limit))
    big = {3, 4, 9}
    for n in range(12):
        writer.enqueue(item(n, trace="ab" * 16 if n % 2 else None, pad="x" * (3_000 if n in big else 10)))
    assert writer.stop(10.0)
    files = sizes_and_records(path)
    assert [n for _, _, ns in files for n in ns] == list(range(12))
    for name, size, ns in files:
        if size > limit:
            assert len(ns) == 1 and ns[0] in big, f"{name}: {size} bytes holding {ns}"
        assert ns, f"{name} holds no record"
    assert [ns for _, size, ns in files if size > limit] == [[3], [4], [9]]


@pytest.mark.parametrize("max_open_traces", [1, 64])
def test_split_batches_keep_every_file_self_contained(
    writers: list[AsyncWriter], tmp_path: Path, max_open_traces: int
) -> None:
    """A batch split over several files: each trace's lines end in the file they start in,
    and the end lines of open traces fit under max_bytes too."""
    path = tmp_path / "app.jsonl"
    limit = 16_384
    writer = make(
        writers,
        AsyncFileDestination(path, max_bytes=limit),
        trace_idle_ms=600_000,
        max_open_traces=max_open_traces,
    )
    for n in range(3_000):
        failed = n % 89 == 0
        writer.enqueue(item(n, trace=f"{n % 61 + 1:032x}" if n % 5 else None, failed=failed, bad=failed))
    assert writer.stop(30.0)
    files = sizes_and_records(path)  # check_file: every trace framed inside each file
    assert len(files) > 10
    assert all(size <= limit for _, size, _ in files), [(name, size) for name, size, _ in files]
    assert [n for _, _, ns in files for n in ns] == list(range(3_000))


@pytest.mark.parametrize(
    ("keyword", "mode"), [("file_mode", -1), ("file_mode", 0o4600), ("dir_mode", 0o1777)]
)
def test_modes_outside_the_permission_bits_are_refused(tmp_path: Path, keyword: str, mode: int) -> None:
    """Issue 12, item 11: file_mode=-1 created a set-uid, set-gid, sticky log file."""
    with pytest.raises(ValueError, match=f"{keyword} must be permissions from 0 to 0o777"):
        AsyncFileDestination(tmp_path / "logs" / "x.jsonl", **{keyword: mode})  # type: ignore[arg-type]
    assert not (tmp_path / "logs").exists()


# -- issue 13 item 8: tests that notice when the code is wrong ----------------------------------


def test_a_file_of_exactly_max_bytes_is_due_for_rotation(tmp_path: Path) -> None:
    dest = AsyncFileDestination(tmp_path / "log.jsonl", max_bytes=20)
    dest(b"x" * 18 + b"\n")
    assert (dest.room(), dest.rotation_due()) == (1, False)
    dest(b"\n")
    assert (dest.room(), dest.rotation_due()) == (0, True), "full: the next batch goes to a new file"
    dest.rotate()
    assert (dest.room(), dest.rotation_due()) == (20, False)
    dest.close()


def test_the_path_is_looked_at_once_per_reopen_check_s(tmp_path: Path) -> None:
    """Each look at the path costs a stat: at most one per reopen_check_s, counted from the
    last one (a file deleted is seen at once, by our own descriptor: see the next test)."""
    from _helpers import FakeClock

    path = tmp_path / "log.jsonl"
    clock = FakeClock(1_000.0)
    dest = AsyncFileDestination(path, reopen_check_s=5.0, clock=clock)
    clock.t = 1_005.0
    assert dest.rotation_due() is False, "checked: the file is in place"
    path.rename(tmp_path / "moved.jsonl")
    clock.t = 1_009.5
    assert dest.rotation_due() is False, "not checked again before 5 s passed"
    clock.t = 1_010.0
    assert dest.rotation_due() is True, "checked again: the file went away"
    dest.close()


@pytest.mark.parametrize("c_append", [True, False], ids=["C append", "Python append"])
def test_a_batch_never_goes_into_a_deleted_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, c_append: bool
) -> None:
    """Our file deleted under us (by hand, or a backup another process compressed): the
    next batch goes to a new file at the path. It went into the deleted file, lost, until
    the next look at the path (reopen_check_s later)."""
    from logxpy_otel import _append_lock, _destinations

    if not c_append:
        monkeypatch.setattr(_append_lock, "_append_locked", None)
        monkeypatch.setattr(_destinations, "_deleted", _append_lock.deleted_by_stat)
    path = tmp_path / "log.jsonl"
    dest = AsyncFileDestination(path, reopen_check_s=3600.0)
    dest(b'{"n":1}\n')
    dest(b'{"n":2}\n')  # (the second write takes the one-call way where it is built)
    path.unlink()
    dest(b'{"n":3}\n')  # (as when it is deleted between the writer's look and its write)
    assert path.read_bytes() == b'{"n":3}\n'
    assert dest.rotation_due() is True, "the writer closes the traces that went on there"
    dest.rotate()
    assert dest.rotation_due() is False
    assert path.read_bytes() == b'{"n":3}\n', "the new file is kept: not renamed, not reopened"
    path.unlink()
    assert dest.rotation_due() is True, "a deletion is seen at once, before a batch is numbered"
    dest.rotate()
    dest(b'{"n":4}\n')
    dest.close()
    assert path.read_bytes() == b'{"n":4}\n'


def test_a_fifo_put_at_the_path_of_a_deleted_file_fails_the_batch_after_its_retries(tmp_path: Path) -> None:
    """Our file deleted and a FIFO nobody reads put at the path: the batch it would follow
    to fails once its retries are over (an ``OSError`` the writer counts as ``io_error``),
    never waiting on the FIFO itself and never going into the deleted file; once the path
    is free again, the next batch goes to a new file there."""
    path = tmp_path / "log.jsonl"
    dest = AsyncFileDestination(path, reopen_check_s=3600.0, retry_timeout_s=0.05)
    dest(b'{"n":1}\n')
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(OSError):
        dest(b'{"n":2}\n')
    path.unlink()
    dest(b'{"n":3}\n')
    dest.close()
    assert path.read_bytes() == b'{"n":3}\n'


def test_a_line_left_unterminated_is_ended_before_the_first_write_unless_it_is_finished_meanwhile(
    tmp_path: Path,
) -> None:
    """Opening a file whose last line has no newline: a crash left it (the file has not
    grown by our first write: end it), or another process is in the middle of an append
    (it has grown: it finishes its own line, and no empty line is added)."""
    crashed = tmp_path / "crashed.jsonl"
    crashed.write_bytes(b'{"a":1}\n{"cut')
    dest = AsyncFileDestination(crashed)
    dest(b'{"b":2}\n')
    dest.close()
    assert crashed.read_bytes() == b'{"a":1}\n{"cut\n{"b":2}\n'
    shared = tmp_path / "shared.jsonl"
    shared.write_bytes(b'{"a":1}\n{"half')
    dest = AsyncFileDestination(shared)
    with shared.open("ab") as other:
        other.write(b'":2}\n')
    dest(b'{"b":2}\n')
    dest.close()
    assert shared.read_bytes() == b'{"a":1}\n{"half":2}\n{"b":2}\n'


# -- a clock that steps back ------------------------------------------------------------------


def test_a_file_deleted_under_us_is_noticed_after_the_clock_steps_back(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    clock = FakeClock(1_800_000_000.0)
    dest = AsyncFileDestination(path, reopen_check_s=0.2, clock=clock)
    clock.t -= 3600.0
    path.unlink()
    clock.t += 1.0
    assert dest.rotation_due(), "looked at again, not an hour later"
    dest.close()


@pytest.mark.parametrize("closing", ["idle", "shutdown"])
def test_end_lines_of_a_deleted_file_go_where_their_trees_are_not_into_a_new_file(
    writers: list[AsyncWriter], tmp_path: Path, closing: str
) -> None:
    """The file deleted under us (logrotate's remove) with a trace open in it: closing the
    trace for idleness, or at shutdown, made a new file at the path to hold nothing but the
    lone end line of a tree whose other lines were in the deleted file."""
    path = tmp_path / "app.jsonl"
    writer = make(writers, AsyncFileDestination(path), flush_interval_ms=10, trace_idle_ms=600_000)
    writer.enqueue(item(0, trace=f"{7:032x}"))
    assert writer.flush(10.0)
    path.unlink()
    if closing == "idle":
        writer._output.trees.idle_timeout_s = 0.0  # every open trace is idle now: the next round closes it
        wait_until(lambda: writer._output.trees.open_traces == 0)
    assert writer.stop(10.0)
    assert not path.exists(), path.read_bytes()
