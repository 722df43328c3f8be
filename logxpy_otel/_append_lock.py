"""How processes appending to one file tell a line torn by a crash from one being written.

A reader sees a large ``write(2)`` arrive page by page, so a file whose last byte is not
a newline may be torn (a crash, a full disk) or half-way through another process's
append. Every write of ours, retries included, holds an exclusive ``flock`` on the file,
so the write that first looks at the file's end never looks while another of ours is
under way, and no append of ours lands inside a line another left cut while it retries.
(``write(2)`` with ``O_APPEND`` already runs one at a time, so the lock costs no
parallelism; it costs two system calls a batch.) In the common case, the file as our last
write left it, :meth:`AppendLock.append` makes the lock, the size, the write and the
release one call that lets the GIL go once (where built: ``_speedups.append_locked``).

All waits are bounded: a process stopped while holding the lock costs each other
process one wait (a file's waits last :data:`LOCK_TIMEOUT_S` more than its retry timeout:
a writer retrying a cut write holds the lock that long); until the lock is free again
they try it once a write, without waiting, and write unlocked when it is taken.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable
from typing import Final

from ._native import speedup

__all__ = ["AppendLock", "deleted", "ends_mid_line"]

#: How much longer than another writer's retries (``retry_timeout_s``, through which it
#: holds the lock) a write waits for the lock before it goes ahead without it.
LOCK_TIMEOUT_S: Final = 1.0

_TRY: Final = fcntl.LOCK_EX | fcntl.LOCK_NB

#: The first and the longest pause between two tries for the lock.
_FIRST_PAUSE_S: Final = 0.0001
_MAX_PAUSE_S: Final = 0.002

#: What ``flock`` fails with where the file system has no such lock (NFS without lock
#: support, FUSE): the file is then written unlocked.
_UNSUPPORTED: Final = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.EBADF})


#: ``_speedups.append_locked`` (see :meth:`AppendLock.append`), or None without the C module.
_append_locked = speedup("append_locked")

#: What it answers: all written and the lock let go; nothing done; a write failed part-way
#: with the lock held.
_DONE, _NOT_DONE, _CUT = 0, 1, 2


def _pause(seconds: float) -> None:
    """Wait between two tries for the lock (a seam: tests finish another writer here)."""
    time.sleep(seconds)


class AppendLock:
    """The exclusive ``flock`` each of our writes to one open file holds."""

    __slots__ = ("_depth", "_fd", "_held", "_timeout_s", "patient", "usable")

    def __init__(self, fd: int, timeout_s: float | None = None, *, patient: bool = True) -> None:
        self._fd = fd
        self._timeout_s = LOCK_TIMEOUT_S if timeout_s is None else timeout_s
        #: False once ``flock`` proved unsupported here: never tried again on this descriptor.
        self.usable = True
        #: False after a wait timed out: until the lock is had again, one try, no wait.
        self.patient = patient
        #: Nested takes (a signal handler logging synchronously inside a write): only the
        #: outermost takes and lets go, so an inner one never lets the outer's lock go.
        self._depth = 0
        self._held = False

    def acquire(self) -> bool:
        """Take the lock; False (and not held) when it is unusable or was not had in time.
        Each call is paired with a :meth:`release`, whatever it returned or raised."""
        self._depth += 1
        if self._depth > 1:
            return self._held
        self._held = False
        if not self.usable:
            return False
        deadline = None
        pause = _FIRST_PAUSE_S
        while True:
            try:
                fcntl.flock(self._fd, _TRY)
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED:
                    raise
                self.usable = False
                return False
            else:
                self.patient = self._held = True
                return True
            if not self.patient:
                return False  # its holder has kept it past a whole wait already
            now = time.monotonic()
            if deadline is None:
                deadline = now + self._timeout_s
            elif now >= deadline:
                self.patient = False
                return False
            _pause(min(pause, deadline - now))
            pause = min(pause * 2, _MAX_PAUSE_S)

    def append(self, data: bytes, expected: int) -> int:
        """Take the lock without waiting, and if the file is ``expected`` bytes long (as our
        last write left it), write all of ``data`` and let the lock go: in one call that
        lets the GIL go once (four from Python, and each taking it back waits while another
        thread runs Python). Returns ``len(data)`` when done; -1 when nothing was written
        and the lock is not held (go the usual way: :meth:`acquire`); else how many bytes
        got in before a write failed, with the lock held: write the rest under it, then
        :meth:`release`."""
        if not self.one_call():
            return -1
        return self.append_by(lambda fd: _append_locked(fd, data, expected))

    def one_call(self) -> bool:
        """Whether an append can be one call now (:meth:`append`, :meth:`append_by`): the C
        module is in use, the lock is not held already, and ``flock`` works here."""
        return _append_locked is not None and not self._depth and self.usable and self.patient

    def append_by(self, call: Callable[[int], tuple[int, int]]) -> int:
        """:meth:`append` through ``call(fd) -> (status, written)``, which takes the lock,
        checks the size and writes as ``_speedups.append_locked`` does (or as
        ``Forest.number_append`` does, which numbers the lines in the same call). The same
        answer as :meth:`append`; :meth:`one_call` must be true."""
        self._depth = 1  # (a nested write from a signal handler sees the lock as taken)
        try:
            status, written = call(self._fd)
        except BaseException:
            self._depth = 0
            raise
        if status == _CUT:
            self._held = True
            return int(written)
        self._depth = 0
        return int(written) if status == _DONE else -1

    def release(self) -> None:
        """Let the lock go at the outermost release (nothing happens when it is not held)."""
        depth = self._depth = self._depth - 1 if self._depth > 0 else 0
        if not depth and self.usable:
            self._held = False
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            except OSError:
                pass


def deleted_by_stat(fd: int) -> bool:
    """Whether the file open at ``fd`` has no name left (False when that cannot be told):
    a writer never appends to such a file, and upkeep deletes a backup only while it holds
    the lock, so a writer that has it and finds a name writes safely."""
    try:
        return os.fstat(fd).st_nlink == 0
    except OSError:
        return False


#: The same, in C where built (asked before every batch: no ``stat_result`` to build).
deleted: Callable[[int], bool] = speedup("deleted") or deleted_by_stat


def ends_mid_line(fd: int) -> bool | None:
    """Whether the file open for reading at ``fd`` ends without a newline; None when that
    cannot be told (a read error, or a file emptied between the size and the read)."""
    try:
        size = os.fstat(fd).st_size
        if not size:
            return False
        last = os.pread(fd, 1, size - 1)
    except OSError:
        return None
    return None if not last else last != b"\n"
