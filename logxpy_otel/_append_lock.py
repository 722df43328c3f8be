"""How processes appending to one file tell a line torn by a crash from one being written.

A reader sees a large ``write(2)`` arrive page by page, so a file whose last byte is not
a newline may be torn (a crash, a full disk) or half-way through another process's
append. Every write of ours holds a shared ``flock`` on the file; the one write that must
first look at the file's end holds it exclusively, so it never looks while a write of
ours is under way. All waits are bounded: a process stopped while holding the lock slows
the others once, never blocks them (after one timeout the lock is given up for that file).
"""

from __future__ import annotations

import fcntl
import os
import time
from typing import Final

__all__ = ["AppendLock", "ends_mid_line"]

#: The longest a write waits for the lock before it goes ahead without it.
LOCK_TIMEOUT_S: Final = 1.0

#: The first and the longest pause between two tries for the lock.
_FIRST_PAUSE_S: Final = 0.0001
_MAX_PAUSE_S: Final = 0.01


def _pause(seconds: float) -> None:
    """Wait between two tries for the lock (a seam: tests finish another writer here)."""
    time.sleep(seconds)


class AppendLock:
    """The ``flock`` our writes to one open file take: shared for a plain append,
    exclusive for the append that first checks how the file ends."""

    __slots__ = ("_fd", "_timeout_s", "usable")

    def __init__(self, fd: int, timeout_s: float | None = None) -> None:
        self._fd = fd
        self._timeout_s = LOCK_TIMEOUT_S if timeout_s is None else timeout_s
        #: False once ``flock`` failed here (not supported) or a wait timed out.
        self.usable = True

    def acquire(self, *, exclusive: bool) -> bool:
        """Take the lock; False (and not held) when it is unusable or the wait timed out."""
        if not self.usable:
            return False
        kind = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = None
        pause = _FIRST_PAUSE_S
        while True:
            try:
                fcntl.flock(self._fd, kind)
                return True
            except BlockingIOError:
                pass
            except OSError:  # no flock on this file system (ENOLCK, EOPNOTSUPP...)
                self.usable = False
                return False
            now = time.monotonic()
            if deadline is None:
                deadline = now + self._timeout_s
            elif now >= deadline:
                if not exclusive:
                    # Only a look at the file's end holds it exclusively, for one write:
                    # a holder that long is stopped. Write on without the lock from now on.
                    self.usable = False
                return False
            _pause(min(pause, deadline - now))
            pause = min(pause * 2, _MAX_PAUSE_S)

    def release(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError:
            pass


def ends_mid_line(path: str, identity: tuple[int, int]) -> bool | None:
    """Whether the file at ``path`` ends without a newline; None when that cannot be told:
    the path no longer leads to the file ``identity`` (``st_dev``, ``st_ino``) names, or
    it cannot be read (a write-only file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != identity:
            return None
        return bool(st.st_size) and os.pread(fd, 1, st.st_size - 1) != b"\n"
    except OSError:
        return None
    finally:
        os.close(fd)
