"""What may be at the log path besides a regular file: a FIFO, a character device, a
symlink (``/dev/stdout``, ``/dev/null``), a socket.

Lines are written to such a path as they come; rotation (and with it any rename or
deletion) acts only on a regular file reached without a symlink, and is off, with one
warning at start-up, when ``max_bytes``/``rotate_when`` are set for anything else. A FIFO
that no process reads is a clear error at construction, never a hang.

These tests run as root: they never rename or replace a real device. The devices and
FIFOs here are made in ``tmp_path``; a symlink may point at the real ``/dev/null``
(only the link could be renamed), and ``/dev/null`` is checked to be untouched.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import FakeClock, item, records
from _helpers import start_untimed_writer as make
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider

from logxpy_otel import AsyncFileDestination, AsyncWriter, LogxpyLogRecordProcessor

DAY = 1_800_057_600.0


class FifoReader:
    """The read end of a FIFO, opened before the writer's end (so that end finds a
    reader), drained by a thread from :meth:`start` until every writer has closed it."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.set_blocking(self.fd, True)
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._run, name="fifo-reader", daemon=True)

    def start(self) -> None:
        """Call once a writer has the FIFO open: with none, a read is the end of the data."""
        self._thread.start()

    def _run(self) -> None:
        while chunk := os.read(self.fd, 1 << 16):
            self._chunks.append(chunk)

    def data(self) -> bytes:
        """Everything read, once the writers closed the FIFO."""
        self._thread.join(10.0)
        assert not self._thread.is_alive(), "the writer never closed the FIFO"
        return b"".join(self._chunks)

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "app.jsonl"
    os.mkfifo(path)
    return path


@pytest.fixture
def reader(fifo: Path) -> Iterator[FifoReader]:
    r = FifoReader(fifo)
    yield r
    r.close()


@pytest.fixture
def dev_null_before() -> Iterator[os.stat_result]:
    """The real /dev/null, checked to be the same device node after the test."""
    before = os.lstat("/dev/null")
    yield before
    after = os.lstat("/dev/null")
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_ino, after.st_rdev, after.st_mode) == (before.st_ino, before.st_rdev, before.st_mode)


@pytest.fixture
def warnings_(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="logxpy_otel")
    return caplog


def rotation_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "logxpy_otel" and "never rotated" in r.getMessage()
    ]


def rotating(path: Path, clock: FakeClock, **options: Any) -> AsyncFileDestination:
    """A destination that, on a regular file, would rotate before every batch."""
    return AsyncFileDestination(
        path, max_bytes=64, rotate_when="1s", backup_count=1, reopen_check_s=0.01, clock=clock, **options
    )


def write_rounds(writers: list[AsyncWriter], dest: AsyncFileDestination, clock: FakeClock) -> list[Any]:
    """Three flushes of records, far past max_bytes and rotate_when each time; then stop.
    Returns what ``rotation_due()`` and ``room()`` said after each flush."""
    writer = make(writers, dest)
    said = []
    for r in range(3):
        for n in range(10 * r, 10 * r + 10):
            assert writer.enqueue(item(n, trace="ab" * 16 if n % 3 else None, pad="x" * 50))
        clock.t += 2.0
        assert writer.flush(10.0)
        said.append((dest.rotation_due(), getattr(dest, "room", lambda: "no room()")()))
    assert writer.stop(10.0)
    m = writer.metrics
    assert (m.written, m.dropped, m.errors) == (30, 0, 0)
    return said


NOT_DUE = [(False, None)] * 3


# -- a FIFO ---------------------------------------------------------------------------------


def test_a_fifo_with_no_reader_is_a_clear_error_at_once(fifo: Path) -> None:
    outcome: list[BaseException | AsyncFileDestination] = []

    def construct() -> None:
        try:
            outcome.append(AsyncFileDestination(fifo))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=construct, daemon=True)
    thread.start()
    thread.join(10.0)
    if thread.is_alive():  # the old code: blocked in open(); a reader lets it go
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        thread.join(10.0)
        pytest.fail("the constructor waited for a reader instead of failing")
    (error,) = outcome
    assert isinstance(error, OSError), error
    assert error.errno == errno.ENXIO
    assert repr(str(fifo)) in str(error) and "no process has it open for reading" in str(error)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO is left as it was"


def test_a_fifo_is_written_to_and_never_rotated(
    writers: list[AsyncWriter], fifo: Path, reader: FifoReader, warnings_: pytest.LogCaptureFixture
) -> None:
    ino = os.lstat(fifo).st_ino
    clock = FakeClock(DAY)
    dest = rotating(fifo, clock)
    reader.start()
    said = write_rounds(writers, dest, clock)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.lstat(fifo).st_ino == ino, "the FIFO is still there"
    assert [p.name for p in fifo.parent.iterdir()] == [fifo.name], "no backup, no file put in its place"
    assert [r["n"] for r in records(reader.data())] == list(range(30))
    assert said == NOT_DUE
    (warning,) = rotation_warnings(warnings_)
    assert repr(str(fifo)) in warning and "a FIFO" in warning


def test_a_fifo_with_a_reader_takes_writes_larger_than_the_pipe(
    fifo: Path, reader: FifoReader, warnings_: pytest.LogCaptureFixture
) -> None:
    # No retry time: a write that would wait must wait in write(2), not fail (EAGAIN).
    dest = AsyncFileDestination(fifo, retry_timeout_s=0.0)
    assert os.get_blocking(dest._fd)  # type: ignore[arg-type]
    reader.start()
    data = b"".join(b'{"ts":1.0,"tid":"x.%d","lvl":[1],"pad":"%s"}\n' % (n, b"y" * 200) for n in range(1500))
    assert len(data) > 4 * 65536
    dest(data)
    dest.close()
    assert reader.data() == data
    assert not rotation_warnings(warnings_), "no rotation asked: nothing to say"


# -- a character device ------------------------------------------------------------------------


@pytest.fixture
def null_device(tmp_path: Path) -> Path:
    """A character device node in tmp_path for the null device (1, 3), like /dev/null."""
    path = tmp_path / "null"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.close(os.open(path, os.O_WRONLY))
    except OSError as exc:
        pytest.skip(f"cannot make and open a device node here: {exc}")
    return path


def test_a_character_device_is_written_to_and_never_renamed(
    writers: list[AsyncWriter],
    null_device: Path,
    dev_null_before: os.stat_result,
    warnings_: pytest.LogCaptureFixture,
) -> None:
    before = os.lstat(null_device)
    clock = FakeClock(DAY)
    dest = rotating(null_device, clock)
    said = write_rounds(writers, dest, clock)
    dest = rotating(null_device, clock)
    dest.rotate()  # asked directly: a reopen at most
    dest(b'{"ts":1.0,"tid":"x.1","lvl":[1]}\n')
    dest.close()
    after = os.lstat(null_device)
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert [p.name for p in null_device.parent.iterdir()] == ["null"], "no backup, no file put in its place"
    assert said == NOT_DUE
    warnings = rotation_warnings(warnings_)
    assert len(warnings) == 2, "one for each destination, at start-up"
    assert all(repr(str(null_device)) in w and "a character device" in w for w in warnings)


# -- a symlink -------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["file", "fifo", "dev_null"])
def test_a_symlink_is_written_through_and_never_rotated(
    writers: list[AsyncWriter],
    tmp_path: Path,
    target: str,
    dev_null_before: os.stat_result,
    warnings_: pytest.LogCaptureFixture,
) -> None:
    logs, elsewhere = tmp_path / "logs", tmp_path / "elsewhere"
    logs.mkdir()
    elsewhere.mkdir()
    to = Path("/dev/null") if target == "dev_null" else elsewhere / "target"
    fifo_reader = None
    if target == "fifo":
        os.mkfifo(to)
        fifo_reader = FifoReader(to)
    link = logs / "app.jsonl"
    link.symlink_to(to)
    clock = FakeClock(DAY)
    try:
        dest = rotating(link, clock)
        if fifo_reader is not None:
            fifo_reader.start()
        said = write_rounds(writers, dest, clock)
        assert link.is_symlink() and os.readlink(link) == str(to), "the link stays where it was"
        assert [p.name for p in logs.iterdir()] == ["app.jsonl"], "no backup, no file put in its place"
        if fifo_reader is not None:
            assert [r["n"] for r in records(fifo_reader.data())] == list(range(30))
    finally:
        if fifo_reader is not None:
            fifo_reader.close()
    assert said == NOT_DUE
    if target != "dev_null":
        assert [p.name for p in elsewhere.iterdir()] == ["target"]
    if target == "file":
        assert [r["n"] for r in records(to.read_bytes())] == list(range(30))
    (warning,) = rotation_warnings(warnings_)
    assert repr(str(link)) in warning
    assert (
        "a FIFO" if target == "fifo" else "a character device" if target == "dev_null" else "a symlink"
    ) in warning


def test_dev_stdout_as_containers_set_it_from_the_environment(
    tmp_path: Path,
    fifo: Path,
    reader: FifoReader,
    monkeypatch: pytest.MonkeyPatch,
    warnings_: pytest.LogCaptureFixture,
) -> None:
    """OTEL_EXPORTER_LOGXPY_FILE=/dev/stdout with a size limit, /dev/stdout being a symlink
    to the process's stdout, a pipe: here a symlink in tmp_path to a FIFO."""
    stdout = tmp_path / "stdout"
    stdout.symlink_to(fifo)
    monkeypatch.setenv("OTEL_EXPORTER_LOGXPY_FILE", str(stdout))
    monkeypatch.setenv("OTEL_EXPORTER_LOGXPY_MAX_BYTES", "200")
    monkeypatch.setenv("OTEL_EXPORTER_LOGXPY_ROTATE_WHEN", "1s")
    provider = LoggerProvider(shutdown_on_exit=False)
    processor = LogxpyLogRecordProcessor()
    provider.add_log_record_processor(processor)
    reader.start()
    logger = provider.get_logger("app")
    for n in range(50):
        logger.emit(body=f"record {n}", severity_number=SeverityNumber.INFO)
        if n % 10 == 9:
            assert processor.force_flush(10_000)
    provider.shutdown()
    assert [r["msg"] for r in records(reader.data())] == [f"record {n}" for n in range(50)]
    assert stdout.is_symlink() and os.readlink(stdout) == str(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.jsonl", "stdout"]
    assert len(rotation_warnings(warnings_)) == 1


def test_a_log_file_replaced_by_a_symlink_to_it_is_not_renamed(
    tmp_path: Path, warnings_: pytest.LogCaptureFixture
) -> None:
    path, real = tmp_path / "app.jsonl", tmp_path / "real.jsonl"
    dest = AsyncFileDestination(path, max_bytes=64)
    dest(b'{"ts":1.0,"tid":"x.1","lvl":[1],"pad":"' + b"x" * 64 + b'"}\n')
    path.rename(real)
    path.symlink_to(real.name)  # the same file, now behind a link
    assert dest.rotation_due() is True
    dest.rotate()
    dest(b'{"ts":1.0,"tid":"x.2","lvl":[1]}\n')
    said = (dest.rotation_due(), getattr(dest, "room", lambda: "no room()")())
    dest.close()
    assert path.is_symlink() and os.readlink(path) == real.name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.jsonl", "real.jsonl"], "no backup"
    assert [r["tid"] for r in records(real.read_bytes())] == ["x.1", "x.2"]
    assert said == (False, None), "rotation is off from then on"
    (warning,) = rotation_warnings(warnings_)
    assert repr(str(path)) in warning and "a symlink" in warning


# -- a socket --------------------------------------------------------------------------------------


def test_a_socket_at_the_path_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        with pytest.raises(OSError) as info:
            AsyncFileDestination(path)
    assert info.value.errno == errno.ENXIO
    assert repr(str(path)) in str(info.value) and "it is a socket" in str(info.value)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "x%Y"])
def test_a_service_name_stays_one_plain_name_in_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """``..`` led the file out of the directory the template puts it in; a ``%`` in the name
    was taken as a strftime field."""
    monkeypatch.chdir(tmp_path)
    dest = AsyncFileDestination("logs/{service.name}/app.jsonl", service_name=name)
    try:
        where = Path(dest.path)
        assert where.parent.parent == Path("logs") and where.name == "app.jsonl", dest.path
        assert where.parent.name not in ("", ".", "..") and "/" not in where.parent.name
        assert "%" not in name or where.parent.name == name
    finally:
        dest.close()
