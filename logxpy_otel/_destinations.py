"""Where batches of lines go: an append-only file, or the console.

A destination is any callable taking one ``bytes`` of whole lines; these two also have
``flush()`` and ``close()``, which the writer calls when it has them.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterable
from typing import IO, Final

__all__ = ["DEFAULT_PATH", "AsyncConsoleDestination", "AsyncFileDestination", "make_destinations"]

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
                raise


class AsyncFileDestination:
    """Appends batches to a file with one ``O_APPEND`` write each, so lines never split.

    The file is created with ``file_mode`` (default ``0o600``, less the umask) and missing
    parent directories with ``dir_mode`` (default ``0o750``). Opening fails at
    construction with an ``OSError`` that names the path and the cause.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_PATH,
        *,
        file_mode: int = 0o600,
        dir_mode: int = 0o750,
    ) -> None:
        self.path = os.fspath(path)
        parent = os.path.dirname(self.path)
        try:
            if parent:
                _make_dirs(parent, dir_mode)
            self._fd: int | None = os.open(self.path, _FLAGS, file_mode)
        except OSError as exc:
            raise type(exc)(exc.errno, f"cannot open log file {self.path!r}: {exc.strerror}") from exc

    def __call__(self, data: bytes) -> None:
        fd = self._fd
        if fd is None:
            raise ValueError(f"log file {self.path!r} is closed")
        written = os.write(fd, data)
        if written < len(data):  # rare (signals, quotas): finish the batch
            view = memoryview(data)[written:]
            while view:
                view = view[os.write(fd, view) :]

    def flush(self) -> None:
        """Nothing to do: every batch goes straight to the OS with ``write(2)``."""

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __repr__(self) -> str:
        return f"AsyncFileDestination({self.path!r})"


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
) -> list[Callable[[bytes], object]]:
    """The destinations the OTel glue writes to: the given ones, plus a file at ``path``.

    With neither, a file at :data:`DEFAULT_PATH`.
    """
    out = list(destinations) if destinations is not None else []
    if path is not None or not out:
        out.append(AsyncFileDestination(DEFAULT_PATH if path is None else path, file_mode=file_mode))
    return out
