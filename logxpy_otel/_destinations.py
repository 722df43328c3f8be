"""Where batches of lines go: an append-only file, or the console.

A destination is any callable taking one ``bytes`` of whole lines; these two also have
``flush()`` and ``close()``, which the writer calls when it has them.
"""

from __future__ import annotations

import errno
import io
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import IO, Any, Final

from ._rotation import Maintenance, backup_name, next_rollover, parse_rotate_when

__all__ = [
    "DEFAULT_PATH",
    "AsyncConsoleDestination",
    "AsyncFileDestination",
    "make_destinations",
    "render_path",
]

#: Where logs go when no path is given: relative to the working directory, never a
#: shared temporary directory.
DEFAULT_PATH: Final = "logxpy-otel.jsonl"
_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC


def _make_dirs(path: str, mode: int) -> None:
    """``os.makedirs`` with ``mode`` on every directory it creates, not only the last."""
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise NotADirectoryError(errno.ENOTDIR, f"{directory!r} is a file, not a directory") from None


def render_path(template: str, service_name: str | None = None) -> str:
    """A path template rendered now: ``{pid}``, ``{service.name}`` and strftime fields (``%Y``...)."""
    path = template.replace("{pid}", str(os.getpid()))
    if "{service.name}" in path:
        if service_name is None:
            from opentelemetry.sdk.resources import Resource  # the SDK's own env resolution

            service_name = str(Resource.create().attributes.get("service.name", "unknown_service"))
        path = path.replace("{service.name}", service_name.replace(os.sep, "_"))
    return time.strftime(path) if "%" in path else path


class AsyncFileDestination:
    """Appends batches to a file with one ``O_APPEND`` write each, so lines never split.

    The file is created with ``file_mode`` (default ``0o600``, less the umask) and missing
    parent directories with ``dir_mode`` (default ``0o750``). Opening fails at
    construction with an ``OSError`` that names the path and the cause.

    ``path`` may be a template: ``{pid}``, ``{service.name}`` (``OTEL_SERVICE_NAME`` /
    ``OTEL_RESOURCE_ATTRIBUTES``, unless ``service_name`` is given) and strftime fields,
    rendered whenever the file is opened (at start, after a rotation, in a forked child).

    Rotation (``max_bytes`` and/or ``rotate_when``) happens between batches, when the
    writer asks (:meth:`rotation_due`, :meth:`rotate`), so the writer can close open
    traces in the old file first. The same check notices a file renamed or deleted
    under us (logrotate without copytruncate), at most once per ``reopen_check_s``.

    ``fsync`` is ``"never"`` (default), ``"batch"`` (after every write) or a number of
    milliseconds between syncs. A failed write is retried with backoff for up to
    ``retry_timeout_s``; then the error goes up to the writer, which counts the batch
    as dropped (``io_error``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_PATH,
        *,
        file_mode: int = 0o600,
        dir_mode: int = 0o750,
        max_bytes: int | None = None,
        rotate_when: str | float | None = None,
        backup_count: int | None = None,
        compress: bool = False,
        fsync: str | float = "never",
        nofollow: bool = False,
        reopen_check_s: float = 1.0,
        retry_timeout_s: float = 5.0,
        service_name: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.template = os.fspath(path)
        self._file_mode = file_mode
        self._dir_mode = dir_mode
        self._flags = _FLAGS | (os.O_NOFOLLOW if nofollow else 0)
        self._max_bytes = max_bytes
        self._when = None if rotate_when is None else parse_rotate_when(rotate_when)
        self._fsync: str | float = fsync if fsync in ("never", "batch") else float(fsync) / 1000.0
        self._reopen_check_s = reopen_check_s
        self._retry_timeout_s = retry_timeout_s
        self._service_name = service_name
        self._clock = clock
        self._maintenance = Maintenance(backup_count, compress, file_mode)
        self._torn = False
        self._maybe_torn = False
        self._closed = False
        self._fd: int | None = None
        self._open()

    def _open(self) -> None:
        self.path = render_path(self.template, self._service_name)
        parent = os.path.dirname(self.path)
        try:
            if parent:
                _make_dirs(parent, self._dir_mode)
            fd = os.open(self.path, self._flags, self._file_mode)
        except OSError as exc:
            cause = "it is a symlink (nofollow)" if exc.errno == errno.ELOOP else exc.strerror
            raise type(exc)(exc.errno, f"cannot open log file {self.path!r}: {cause}") from exc
        st = os.fstat(fd)
        # An unterminated last line: torn by a crash, or another live process in the middle
        # of a large append (readers see those page by page). Decided at our first write:
        # if the file has not grown since, nobody is finishing that line.
        self._torn = False
        self._maybe_torn = bool(st.st_size) and _last_byte(self.path, st.st_size) not in (b"\n", None)
        self._open_size = st.st_size
        self._fd = fd
        self._identity = (st.st_dev, st.st_ino)
        self._size = st.st_size
        self._pid = os.getpid()
        now = self._clock()
        self._rollover_at = None if self._when is None else next_rollover(self._when, now)
        self._next_check = now + self._reopen_check_s
        self._last_sync = now

    def __call__(self, data: bytes) -> None:
        fd = self._fd
        if fd is None:
            raise ValueError(f"log file {self.path!r} is closed")
        if self._maybe_torn:
            self._maybe_torn = False
            self._torn = self._torn or os.fstat(fd).st_size == self._open_size
        if self._torn:  # a line was left half-written: end it before ours
            data = b"\n" + data
        view = memoryview(data)
        deadline = None
        delay = 0.01
        while view:
            try:
                view = view[os.write(fd, view) :]
            except OSError:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._retry_timeout_s
                if now >= deadline:
                    written = len(data) - len(view)
                    # Torn only if what went out stops inside a line.
                    self._torn = written > 0 and data[written - 1 : written] != b"\n"
                    raise
                time.sleep(min(delay, deadline - now))
                delay = min(delay * 2, 1.0)
        self._torn = False
        self._size += len(data)
        if self._fsync != "never":
            now = self._clock()
            if self._fsync == "batch" or now - self._last_sync >= self._fsync:  # type: ignore[operator]
                os.fsync(fd)
                self._last_sync = now

    def rotation_due(self) -> bool:
        """True when the next batch should go to a new file (size, time, fork, or moved away)."""
        if self._fd is None:
            return not self._closed  # a reopen failed: try again before this batch
        if self._pid != os.getpid():
            return True
        now = self._clock()
        if self._rollover_at is not None and now >= self._rollover_at:
            return True
        if self._max_bytes is not None and self._size >= self._max_bytes:
            return True
        if now >= self._next_check:
            self._next_check = now + self._reopen_check_s
            return self._moved()
        return False

    def _moved(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._identity

    def rotate(self) -> None:
        """Start a new file: rename this one to a backup (unless it was moved away or this
        is a forked child, which only reopens), then open the path afresh.

        If the rename fails, writing goes on in the same file; if the reopen fails, the
        destination stays due for rotation and the next batch tries again. Either error
        is raised for the writer to count.
        """
        fd, self._fd = self._fd, None
        backup = None
        failure: OSError | None = None
        if fd is not None:
            own = self._pid == os.getpid()
            moved = self._moved()
            _close_quietly(fd)
            if own and not moved:
                try:
                    backup = backup_name(self.path, self._clock())
                    os.rename(self.path, backup)
                except OSError as exc:
                    backup, failure = None, exc
        live = self.path
        self._open()
        if backup is not None:
            self._maintenance.after_rotation(live, backup)
        if failure is not None:
            raise failure

    def flush(self) -> None:
        """Every batch goes straight to the OS with ``write(2)``; with ``fsync`` set, sync it too."""
        if self._fsync != "never" and self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        self._closed = True
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        self._maintenance.wait(5.0)

    def __repr__(self) -> str:
        return f"AsyncFileDestination({self.path!r})"


def _last_byte(path: str, size: int) -> bytes | None:
    """The file's last byte, or None when it cannot be read (a write-only file, a device)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return os.pread(fd, 1, size - 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class AsyncConsoleDestination:
    """Writes batches to a stream: ``sys.stdout`` (looked up at each write) unless given one."""

    def __init__(self, stream: IO[str] | IO[bytes] | None = None) -> None:
        self._stream = stream

    def __call__(self, data: bytes) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            stream.flush()
            buffer.write(data)
            buffer.flush()
        elif isinstance(stream, io.TextIOBase):
            stream.write(data.decode("utf-8"))
            stream.flush()
        else:
            stream.write(data)  # type: ignore[arg-type]
            stream.flush()

    def flush(self) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        stream.flush()

    def close(self) -> None:
        """The console stays open: it is not ours."""


def make_destinations(
    path: str | os.PathLike[str] | None,
    destinations: Iterable[Callable[[bytes], object]] | None,
    file_mode: int = 0o600,
    **file_options: Any,
) -> list[Callable[[bytes], object]]:
    """The destinations the OTel glue writes to: the given ones, plus a file at ``path``
    (opened with ``file_options``). With neither, a file at :data:`DEFAULT_PATH`.
    """
    out = list(destinations) if destinations is not None else []
    if path is not None or not out:
        out.append(
            AsyncFileDestination(DEFAULT_PATH if path is None else path, file_mode=file_mode, **file_options)
        )
    return out
