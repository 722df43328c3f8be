"""File and console destinations: modes, directories, appends, errors, the default path."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from logxpy_otel import DEFAULT_PATH, AsyncConsoleDestination, AsyncFileDestination
from logxpy_otel._destinations import make_destinations


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
