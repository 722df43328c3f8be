"""Where batches of lines go: an append-only file, or the console.

A destination is any callable taking one ``bytes`` of whole lines; these two also have
``flush()`` and ``close()``, which the writer calls when it has them. The file also
tells the writer how many bytes it can still take (``room()``), and a write that fails
part way says how many whole lines got in (:class:`PartialWriteError`).
"""

from __future__ import annotations

import errno
import io
import os
import re
import resource
import stat
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import IO, TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from . import _append_lock
from ._append_lock import AppendLock, ends_mid_line
from ._append_lock import deleted as _deleted
from ._diagnostics import logger
from ._format import SpanEnd, role_whole
from ._rotation import Maintenance, backup_name, next_rollover, parse_rotate_when
from ._trees import MAX_SPAN_DEPTH

if TYPE_CHECKING:
    from ._format import LineItem

__all__ = [
    "DEFAULT_PATH",
    "END_LINE_MAX",
    "AsyncConsoleDestination",
    "AsyncFileDestination",
    "PartialWriteError",
    "fit",
    "make_destinations",
    "records_in",
    "render_path",
]

# -- the contract: what the writer calls on a destination ------------------------------


class Destination(Protocol):
    """Where batches go: anything that takes one ``bytes`` of complete lines (a plain
    function will do). It may also implement :class:`FlushableDestination` (``flush``),
    :class:`ClosableDestination` (``close``) and :class:`RotatingDestination`
    (``rotation_due``, ``rotate``, ``room``); the writer checks once, when the
    destination is added, which of them it does."""

    def __call__(self, data: bytes, /) -> object: ...


@runtime_checkable
class FlushableDestination(Protocol):
    """``flush()``: called by :meth:`AsyncWriter.flush` after the records are written (fsync)."""

    def flush(self) -> object: ...


@runtime_checkable
class ClosableDestination(Protocol):
    """``close()``: called once, when the writer stops."""

    def close(self) -> object: ...


@runtime_checkable
class RetryingDestination(Protocol):
    """``retry_until(deadline)``: a destination that retries failed writes ends its retries
    by ``deadline`` (``time.monotonic``) from then on: the exit's, so that one
    ``shutdown_timeout`` bounds the exit whatever ``retry_timeout`` says."""

    def retry_until(self, deadline: float) -> object: ...


@runtime_checkable
class RotatingDestination(Protocol):
    """A file that rotates: asked before each write whether a new file is due
    (``rotation_due()``) and how many bytes it still takes (``room()``, None for no
    limit); ``rotate()`` starts the new file, after the writer closed the open traces."""

    def rotation_due(self) -> bool: ...

    def rotate(self) -> object: ...

    def room(self) -> int | None: ...


def room_of(destination: RotatingDestination, reserve: int) -> int | None:
    """The bytes a file with a size limit can still take, less ``reserve``; None for no limit."""
    try:
        left = destination.room()
    except Exception:  # noqa: BLE001 - a broken check must not stop the writes
        return None
    return None if left is None else int(left) - reserve


def rotation_due(destination: RotatingDestination) -> bool:
    """Whether a file wants to rotate now (a broken check is a no)."""
    try:
        return bool(destination.rotation_due())
    except Exception:  # noqa: BLE001 - a broken check must not stop the writes
        return False


#: Where logs go when no path is given: relative to the working directory, never a
#: shared temporary directory.
DEFAULT_PATH: Final = "logxpy-otel.jsonl"
_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC

#: What a failed open at a rotation or after a deletion is not retried for: a directory or
#: a symlink put at the path (``nofollow``), a FIFO nobody reads, a name too long (a
#: template's month name); the batch fails at once.
_OPEN_NOT_RETRIED: Final = frozenset({errno.EISDIR, errno.ELOOP, errno.ENXIO, errno.ENAMETOOLONG})


def _file_size_limit() -> int | None:
    """The process's file size limit (``RLIMIT_FSIZE``), or None when there is none."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    except (OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft


#: A strftime field (``%Y``...) in a file name: each time it renders another name, that
#: name's backups are kept count of on their own.
_TIME_FIELD: Final = re.compile(r"%[^%]")

#: How many files at the path a batch follows when each is deleted before it is written.
_FOLLOW_TRIES: Final = 50


class _Backoff:
    """The waits between the tries of a failed write or open: from 10 ms, doubling up to
    1 s, for ``retry_timeout_s`` after the first failure, or until the exit's deadline
    (``retry_until``, read at each try, as it may come in the middle of the retries)."""

    __slots__ = ("_deadline", "_delay", "_owner")

    def __init__(self, owner: AsyncFileDestination) -> None:
        self._owner = owner
        self._deadline: float | None = None
        self._delay = 0.01

    def wait(self) -> bool:
        """After a failed try: wait before the next one (True), or False once it is time to
        give up."""
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self._owner._retry_timeout_s
        give_up = self._owner._give_up_at
        deadline = self._deadline if give_up is None else min(self._deadline, give_up)
        if now >= deadline:
            return False
        time.sleep(min(self._delay, deadline - now))
        self._delay = min(self._delay * 2, 1.0)
        return True


class PartialWriteError(OSError):
    """A write that failed (``errno``/``strerror`` of the cause) after part of the batch
    reached the file: ``lines`` of its lines got in whole, the rest did not."""

    def __init__(self, errno_: int | None, strerror: str | None, lines: int) -> None:
        super().__init__(errno_, strerror)
        self.lines = lines


# -- sizes of numbered lines (docs/format.md): for rotating before a file passes max_bytes --
#
# The writer numbers records (``_trees``) just before it writes them, so what a record
# costs in a file is known only then. These are upper bounds, from the item alone: a
# trace id of 32 characters, a lvl or task counter of at most 20 digits, a ts of at most
# 32 characters (orjson writes a float in 24 at most), a task prefix of at most 15.
_TS_MAX: Final = 32
_LVL_MAX: Final = 20
_TRACE_HEAD: Final = len(b'{"tid":"","lvl":[') + 32
#: Most bytes of a trace's end line.
END_LINE_MAX: Final = _TRACE_HEAD + _LVL_MAX + len(b'],"ts":,"at":"otel:trace","st":"succeeded"}\n') + _TS_MAX
_START_LINE_MAX: Final = _TRACE_HEAD + len(b'1],"ts":,"at":"otel:trace","st":"started"}\n') + _TS_MAX
#: What numbering adds to a record outside any trace: its task id, lvl and newline.
_TASK_EXTRA: Final = len(b'{"tid":"') + 15 + _LVL_MAX + len(b'","lvl":[1],\n')
#: ... and to a record of a trace: its head, and the start line it may open and the end
#: line that trace then gets (now, when another trace pushes it out, or later).
_TRACE_EXTRA: Final = _TRACE_HEAD + _LVL_MAX + len(b"],\n") + _START_LINE_MAX + END_LINE_MAX
#: ... and, nesting by spans, the longest ``lvl`` prefix a line can get (its depth is bounded).
_NEST_EXTRA: Final = MAX_SPAN_DEPTH * (_LVL_MAX + 1)
_BODY: Final = itemgetter(3)
_TAIL: Final = itemgetter(4)
_STRUCTURE_ENDS: Final = tuple(b'"st":"%s"}' % status for status in (b"started", b"succeeded", b"failed"))


def fit(items: Sequence[LineItem], room: int | None, *, nested: bool = False) -> int:
    """How many of ``items``, from the first, surely fit in ``room`` bytes once numbered,
    with the start lines they may open and the end lines their traces get (``None``: no
    limit, all of them). The end lines of traces already open are not counted: keep
    :data:`END_LINE_MAX` for each of them out of ``room``. ``nested``: the numbering nests
    by spans (longer ``lvl`` lists, and a span's end may bring its start line).
    """
    count = len(items)
    if room is None:
        return count
    extra = _TRACE_EXTRA + _NEST_EXTRA if nested else _TRACE_EXTRA
    # Most batches fit whole: sizes summed at C speed decide it in one pass.
    if (
        not nested
        and sum(map(len, map(_BODY, items))) + sum(map(len, map(_TAIL, items))) + count * extra <= room
    ):
        return count
    used = 0
    for index, (trace_id, _ts, _failed, body, tail, _span, role) in enumerate(items):
        used += len(body) + len(tail) + (_TASK_EXTRA if trace_id is None else extra)
        if type(role) is SpanEnd and role_whole(role):  # (else refused when numbered)
            used += role.start_body_max() + _TRACE_HEAD + _NEST_EXTRA + len(b"1],\n")
        if used > room:
            return index
    return count


def records_in(data: bytes, lines: int) -> int:
    """How many of the first ``lines`` lines of ``data`` (numbered lines) are records, not
    a trace's start or end line. Records never have a top-level ``st`` (it is reserved),
    so only a structure line ends with ``"st":"..."}``."""
    pieces = data.split(b"\n", lines)
    head = pieces[: min(lines, len(pieces) - 1)]  # (whole lines only, however many are claimed)
    return sum(1 for line in head if not line.endswith(_STRUCTURE_ENDS))


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
                what = _not_a_directory(directory)
                raise NotADirectoryError(errno.ENOTDIR, f"{directory!r} {what}") from None


def _not_a_directory(path: str) -> str:
    """What is at ``path`` instead of a directory, in words (for messages)."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop (too many levels of symbolic links), not a directory"
        if os.path.islink(path):
            return "is a symlink to nothing, not a directory"
    return "is a file, not a directory"


def render_path(template: str, service_name: str | None = None) -> str:
    """A path template rendered now: ``{pid}``, ``{service.name}`` and strftime fields
    (``%Y``...) in UTC, as time rotation's boundaries and backup names are (in local time, a
    daily file's name and the day it holds would differ by the zone's offset)."""
    path = template.replace("{pid}", str(os.getpid()))
    if "{service.name}" in path:
        if service_name is None:
            from opentelemetry.sdk.resources import Resource  # the SDK's own env resolution

            service_name = str(Resource.create().attributes.get("service.name", "unknown_service"))
        path = path.replace("{service.name}", _one_name(service_name))
    return time.strftime(path, time.gmtime()) if "%" in path else path


def _one_name(service_name: str) -> str:
    """The service name as one plain name in a path: no separator, never ``.`` or ``..``
    (which would lead out of the directory the template puts it in), no NUL, and its ``%``
    kept as it is (not a strftime field)."""
    name = service_name.replace(os.sep, "_").replace("\0", "_")
    if name in ("", ".", ".."):
        name = name.replace(".", "_") or "_"
    return name.replace("%", "%%")


class AsyncFileDestination:
    """Appends batches to a file with one ``O_APPEND`` write each, so lines never split.

    The file is created with ``file_mode`` (default ``0o600``, less the umask) and missing
    parent directories with ``dir_mode`` (default ``0o750``). Opening fails at
    construction with an ``OSError`` that names the path and the cause.

    ``path`` may be a template: ``{pid}``, ``{service.name}`` (``OTEL_SERVICE_NAME`` /
    ``OTEL_RESOURCE_ATTRIBUTES``, unless ``service_name`` is given) and strftime fields,
    rendered whenever the file is opened (at start, after a rotation, in a forked child).

    Rotation (``max_bytes`` and/or ``rotate_when``) happens between writes, when the
    writer asks (:meth:`rotation_due`, :meth:`room`, :meth:`rotate`), so the writer can
    close open traces in the old file first. The same check notices a file renamed or
    deleted under us (logrotate without copytruncate), at most once per ``reopen_check_s``.

    Rotation acts only on a regular file reached without a symlink. When the path is a
    character device, a FIFO or a symlink (``/dev/stdout``, ``/dev/null``...), lines are
    written to it as they come and nothing there is ever renamed or deleted; with
    ``max_bytes`` or ``rotate_when`` set, a warning says so at start-up. A FIFO that no
    process reads is an ``OSError`` at construction, never a wait.

    ``fsync`` is ``"never"`` (default), ``"batch"`` (after every write) or a number of
    milliseconds between syncs. A failed write is retried with backoff for up to
    ``retry_timeout_s``; then the error goes up to the writer, which counts the batch
    as dropped (``io_error``): a :class:`PartialWriteError` when some of its lines got in.
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
        for name, mode in (("file_mode", file_mode), ("dir_mode", dir_mode)):
            if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
                # -1 would ask for a set-uid, set-gid, sticky file
                raise ValueError(f"{name} must be permissions from 0 to 0o777; got {mode!r}")
        self.template = os.fspath(path)
        self._file_mode = file_mode
        self._dir_mode = dir_mode
        self._flags = _FLAGS | (os.O_NOFOLLOW if nofollow else 0)
        self._max_bytes = max_bytes
        self._when = None if rotate_when is None else parse_rotate_when(rotate_when)
        self._fsync: str | float = fsync if fsync in ("never", "batch") else float(fsync) / 1000.0
        self._reopen_check_s = reopen_check_s
        self._retry_timeout_s = retry_timeout_s
        self._give_up_at: float | None = None  # (see retry_until)
        self._service_name = service_name
        self._clock = clock
        self._maintenance = Maintenance(backup_count, compress, file_mode)
        if backup_count is not None and _TIME_FIELD.search(os.path.basename(self.template).replace("%%", "")):
            logger.warning(
                "logxpy-otel: backup_count counts the backups of each name %r renders on its "
                "own: the files of earlier names (another day's) are kept; for a bounded "
                "number of files, name the file without time fields and rotate it with "
                "rotate_when (its backups carry the time)",
                self.template,
            )
        self._check_end = False
        self._reader: int | None = None
        self._lock: AppendLock | None = None
        self._identity: tuple[int, int] | None = None
        self._closed = False
        self._warned = False
        self._fd: int | None = None
        self._followed = False  # a batch went on in a new file at the path (see _follow)
        self._warned_unlocked = False
        self._open()
        limit = _file_size_limit()
        if self._regular and limit is not None and (max_bytes is None or max_bytes > limit):
            logger.warning(
                "logxpy-otel: this process has a file size limit of %d bytes (RLIMIT_FSIZE, "
                "ulimit -f): each write past it fails (EFBIG) and its records are counted "
                "io_error; set max_bytes to %d or less to rotate %r before it",
                limit,
                limit,
                self.template,
            )

    def _open(self) -> None:
        self.path = render_path(self.template, self._service_name)
        parent = os.path.dirname(self.path)
        try:
            if parent:
                _make_dirs(parent, self._dir_mode)
            # O_NONBLOCK: a FIFO with no reader fails (ENXIO) instead of blocking for ever.
            fd = os.open(self.path, self._flags | os.O_NONBLOCK, self._file_mode)
        except OSError as exc:
            cause = _open_failure(self.path, exc)
            raise type(exc)(exc.errno, f"cannot open log file {self.path!r}: {cause}") from exc
        try:
            os.set_blocking(fd, True)  # writes to a FIFO or a device wait for room, as usual
            st = os.fstat(fd)
            self._regular = stat.S_ISREG(st.st_mode)
            self._link = os.path.islink(self.path)
        except BaseException:
            _close_quietly(fd)
            raise
        # Only a regular file reached without a symlink is ours to rename (and its
        # backups to delete): never a device, a FIFO, or a link (nor what it points to).
        self._rotatable = self._regular and not self._link
        asked = self._max_bytes is not None or self._when is not None
        if asked and not self._rotatable and not self._warned:
            self._warned = True
            logger.warning(
                "logxpy-otel: log file %r is %s: it is written to, but never rotated "
                "(max_bytes and rotate_when are ignored for it)",
                self.path,
                _kind(st.st_mode) if not self._regular else "a symlink",
            )
        identity = (st.st_dev, st.st_ino)
        # The same file again (a rename that failed): a holder it waited out is waited out.
        patient = self._lock is None or self._identity != identity or self._lock.patient
        self._identity = identity
        # A last line without its newline: torn by a crash, or half-way through another
        # process's append (readers see those page by page). Looked at under the lock
        # whenever the file changed since our last write (see _ends_torn), through a
        # descriptor kept open for reading (closing one drops a lock NFS emulates).
        self._reader = _open_reader(self.path, identity) if self._regular else None
        self._check_end = self._reader is not None and ends_mid_line(self._reader) is True
        self._end_size: int | None = st.st_size
        self._we_cut = False  # a write of ours left a line cut, not ended since (see close)
        self._cut_mid_line = False
        self._ours: int | None = None  # the file's size after our last locked write
        # The wait outlasts another writer's whole retry (it holds the lock through it, up
        # to retry_timeout_s, so that no line lands in the one it has cut).
        wait_s = _append_lock.LOCK_TIMEOUT_S + self._retry_timeout_s
        self._lock = AppendLock(fd, wait_s, patient=patient) if self._regular else None
        self._fd = fd
        self._size = st.st_size
        self._rename_failed = False
        self._gone = False  # rotation_due found this file deleted: rotate() comes next
        self._retry_at: float | None = None  # a rotation put off for want of the lock: retried then
        self._pid = os.getpid()
        now = self._clock()
        self._rollover_at = None if self._when is None else next_rollover(self._when, now)
        self._rolled_at = now  # when _rollover_at was aimed
        self._next_check = now + self._reopen_check_s
        self._last_sync = now

    def _open_retrying(self) -> None:
        """:meth:`_open`, retried with backoff as a failed write is (for ``retry_timeout_s``,
        or until the exit's deadline): a directory removed and made again, a disk out of
        inodes, permissions given back. Past that, its ``OSError`` goes up; at once for
        what waiting does not mend (:data:`_OPEN_NOT_RETRIED`), as every batch would wait
        it out (in synchronous mode, every logging call)."""
        backoff = _Backoff(self)
        while True:
            try:
                self._open()
                return
            except OSError as exc:
                if exc.errno in _OPEN_NOT_RETRIED or not backoff.wait():
                    raise

    def __call__(self, data: bytes) -> None:
        if self._fd is None:
            if self._closed:
                raise ValueError(f"log file {self.path!r} is closed")
            self._open_retrying()  # (a reopen at rotation failed: retried as a write is)
        # Our file deleted under us (a backup another process compressed or removed after
        # renaming it, or the file removed): the batch goes to the file now at the path,
        # never into a file without a name. The one opened there may be rotated away and
        # deleted too before it is locked (processes rotating every few milliseconds):
        # follow again, a bounded number of times, then fail the batch (counted).
        for _ in range(_FOLLOW_TRIES):
            if self._append(data, follow=not self._gone):
                if self._fd is not None:  # (always: _open_retrying and _follow leave one or raise)
                    self._sync_if_due(self._fd)
                return
            self._follow()
        deleted = f"log file {self.path!r} was deleted {_FOLLOW_TRIES} times before one write"
        raise OSError(errno.ESTALE, deleted)

    def one_call_size(self) -> int | None:
        """Where the next batch can be numbered and appended in one call
        (:meth:`append_by`): the size our last write left the file at. That needs our last
        write locked and whole, and the lock to be had in one call. None: the usual way."""
        lock = self._lock
        if self._fd is None or lock is None or self._ours is None or not lock.one_call():
            return None
        return self._ours

    def append_by(
        self, call: Callable[[int, int], tuple[int, int]], expected: int, lines: Callable[[], bytes]
    ) -> bool:
        """Append the lines ``call(fd, expected)`` numbers and writes in one call, as
        :meth:`_append`'s first step does with its data (``Forest.number_append``; see
        ``AppendLock.append_by``). ``lines()`` gives them as bytes where the call did not
        write them all. False when nothing was written and the lock is not held: give this
        destination ``lines()`` the usual way (``expected`` is :meth:`one_call_size`)."""
        lock, fd = self._lock, self._fd
        assert lock is not None and fd is not None  # (one_call_size said so)
        try:
            written = lock.append_by(lambda locked: call(locked, expected))
        except BaseException:
            self._ours = None  # (whatever got in: look at the file's end before our next write)
            raise
        if written < 0:
            return False
        # (``lines()``: all of them when the write stopped part-way; none when all are in)
        self._one_call_done(fd, lock, expected, written, lines())
        self._sync_if_due(fd)
        return True

    def _one_call_done(self, fd: int, lock: AppendLock, expected: int, written: int, data: bytes) -> None:
        """After a one-call append that wrote ``written`` bytes to a file of ``expected``:
        where it stopped part-way, the rest of ``data`` under the lock it left held (empty
        ``data``: all were written); what the file holds now."""
        self._size = expected  # (the file's size, others' appends included: see room())
        if written < len(data):  # a write failed part-way: the rest under the lock
            self._ours = None  # (stays so if the retries give up)
            try:
                self._write(fd, data, 0, written)
            finally:
                lock.release()
            total = len(data)
        else:
            total = written
            self._size += written
        self._ours = expected + total

    def _append(self, data: bytes, follow: bool) -> bool:
        """Append ``data`` to our file under its lock; False (nothing written, the lock let
        go) when ``follow`` is set and the file has no name any more."""
        fd = self._fd
        assert fd is not None  # (checked by __call__; _follow leaves one or raises)
        lock = self._lock
        ours = self._ours
        if lock is not None and ours is not None:
            # Our last write was locked and whole (else ``_ours`` is None): if the file is as
            # it left it, there is nothing to look at, and the lock, the size check, the
            # write and the release are one call (see AppendLock.append).
            written = lock.append(data, ours)
            if written >= 0:
                self._one_call_done(fd, lock, ours, written, data)
                return True
        held = False
        try:
            if lock is not None:
                held = lock.acquire()
                if not lock.usable and not self._warned_unlocked:
                    self._warn_unlocked()
            # Under the lock, a file deleted now stays unwritten: whoever deletes one of ours
            # (Maintenance) holds its lock from the last read to the unlink. Without it (no
            # flock here, or not had in time) a renamed file may be read for good and
            # deleted at any moment: the file now at the path is written instead.
            if follow and self._regular and (_deleted(fd) if held else self._moved()):
                return False
            size = self._size_now(fd) if held else None
            if size is not None:
                self._size = size  # (others' appends included: a shared file rotates in time)
            lead = 0
            # (Unchanged since our last write, and nothing left to check: no look needed.)
            if (size is None or size != self._ours or self._check_end) and self._ends_torn(size):
                data = b"\n" + data  # a line was left half-written: end it before ours
                lead = 1
            self._ours = None
            self._write(fd, data, lead)
            if size is not None:
                self._ours = size + len(data)
        finally:
            if lock is not None:
                lock.release()  # also when a signal handler raised just after it was taken
        return True

    def _warn_unlocked(self) -> None:
        """Say once that this file has no ``flock``: rotation shared by processes is not safe."""
        self._warned_unlocked = True
        if self._max_bytes is not None or self._when is not None:
            logger.warning(
                "logxpy-otel: log file %r has no flock (a network file system?): processes "
                "sharing it and rotating it may lose records at a rotation; give each its own "
                "file with {pid} in the path",
                self.path,
            )

    def _follow(self) -> None:
        """Go on in the file now at the path, ours having been deleted. Its trees go on
        there too; :meth:`rotation_due` then asks the writer to close them (without a
        rename), so the next batch starts fresh ones. If the path cannot be opened, the
        ``OSError`` goes up (the batch is counted as not written) and ours stays."""
        old_fd, old_reader = self._fd, self._reader
        self._open_retrying()
        if old_fd is not None:
            _close_quietly(old_fd)
        if old_reader is not None:
            _close_quietly(old_reader)
        self._followed = True

    def _sync_if_due(self, fd: int) -> None:
        """``fsync`` after a write, as the ``fsync`` setting asks (a regular file only: a
        device or a FIFO has nothing to sync, and refuses it). A clock that stepped back
        since the last sync makes one due."""
        if self._fsync != "never" and self._regular:
            now = self._clock()
            last = self._last_sync
            if self._fsync == "batch" or now - last >= self._fsync or now < last:  # type: ignore[operator]
                os.fsync(fd)
                self._last_sync = now

    @staticmethod
    def _size_now(fd: int) -> int | None:
        """The file's size (``lseek`` to its end: an ``O_APPEND`` write ignores the offset)."""
        try:
            return os.lseek(fd, 0, os.SEEK_END)
        except OSError:
            return None

    def _ends_torn(self, size: int | None) -> bool:
        """Whether the file ends inside a line nobody is finishing, so ours must end it first;
        asked when the file may have changed since our last write. ``size`` is the file's
        size taken under the lock (None without it). Under the lock no write of ours is
        under way: whoever changed the file (another process, killed half-way through an
        append, or a crash before we opened it), its last byte tells. Without the lock (no
        flock here, or not had in time), only a line seen unterminated at opening or left
        cut by us counts, and only if the file has not grown since (whoever wrote since
        ended that line with a newline of its own); in a FIFO or a device, a line we cut
        always counts."""
        check, self._check_end = self._check_end, False
        self._we_cut = False
        if size is not None and self._reader is not None:
            torn = ends_mid_line(self._reader)
            if torn is not None:
                return torn
        if not check:
            return False
        fd = self._fd
        if not self._regular:
            return True  # (a FIFO's or a device's size tells nothing: what we cut, we end)
        try:
            return self._end_size is None or fd is None or os.fstat(fd).st_size == self._end_size
        except OSError:
            return True  # an empty line costs no record; a line glued to a torn one does

    def _write(self, fd: int, data: bytes, lead: int, start: int = 0) -> None:
        """Write all of ``data`` (its first ``start`` bytes are in already), retrying with
        backoff for up to ``retry_timeout_s`` (the lock held throughout: no append of ours
        lands inside a line this one has cut); past that, raise (a
        :class:`PartialWriteError` when some of it got in). ``lead`` is 1 when ``data``
        starts with the newline that ends a torn line."""
        view = memoryview(data)[start:]
        backoff = _Backoff(self)
        try:
            while view:
                try:
                    view = view[os.write(fd, view) :]
                except OSError as exc:
                    if not backoff.wait():
                        written = self._stopped(fd, data, len(data) - len(view), lead)
                        if not written:
                            raise
                        # The lines that got in whole (not the newline that ended a torn one);
                        # one cut just before its newline is whole too: the next write's
                        # newline, which ends a cut line, ends it (and a reader reads it).
                        lines = data.count(b"\n", 0, written + 1) - lead
                        raise PartialWriteError(exc.errno, exc.strerror, lines) from exc
        except BaseException as exc:
            if not isinstance(exc, OSError):
                # An interrupt (the application's alarm, Ctrl-C): it may have come after a
                # write(2) that took part of the data and before its count was kept, so
                # the file's end is looked at before the next write either way.
                got_in = len(data) - len(view)
                self._size += got_in
                self._look_at_end(fd, mid_line=data[got_in - 1 : got_in] not in (b"", b"\n"))
            raise
        self._size += len(data)

    def _stopped(self, fd: int, data: bytes, written: int, lead: int) -> int:
        """A write of ``data`` given up after ``written`` bytes: counted in the size; where
        what got in stops inside a line (or the torn line still wants its newline), the
        file's end is looked at before the next write. Returns ``written``."""
        self._size += written
        if data[written - 1 : written] != b"\n" if written else lead:
            self._look_at_end(fd, mid_line=True)  # (inside a line of ours, or the torn one it was to end)
        return written

    def _look_at_end(self, fd: int, *, mid_line: bool) -> None:
        """Have the next write look at the file's end first (:meth:`_ends_torn`), and start
        on a line of its own where a line of ours was left cut (``mid_line``: the bytes that
        got in stop inside a line)."""
        self._check_end = self._we_cut = True
        self._cut_mid_line = mid_line
        try:
            self._end_size = os.fstat(fd).st_size
        except OSError:
            self._end_size = None  # unknown: without the lock, taken as torn

    def retry_until(self, deadline: float) -> None:
        """Failed writes are retried until ``deadline`` at most from now on (the exit's)."""
        self._give_up_at = deadline

    def rotation_due(self) -> bool:
        """True when the next batch should go to a new file (size, time, fork, or moved away),
        or already went to one (see :meth:`_follow`): the writer closes the open traces."""
        if self._fd is None:
            return not self._closed  # a reopen failed: try again before this batch
        if self._followed:
            return True
        if self._regular and _deleted(self._fd):
            # (looked at before every batch, whose lines must not go into nothing; the end
            # lines of the traces open in it go where their other lines went, then rotate
            # opens the path afresh)
            self._gone = True
            return True
        if self._pid != os.getpid():
            return True
        now = self._clock()
        if self._rotatable and not (self._retry_at is not None and self._rolled_at <= now < self._retry_at):
            rollover = self._rollover_at
            if rollover is not None and now >= rollover:
                return True
            if rollover is not None and self._when is not None and now < self._rolled_at:
                # The clock stepped back past this period's start: aim at the next boundary
                # from now (an hour's file does not take in the hours the clock lived again).
                self._rollover_at, self._rolled_at = next_rollover(self._when, now), now
            if self._max_bytes is not None and self._size >= self._max_bytes:
                return True
        if now >= self._next_check or now < self._next_check - self._reopen_check_s:
            # (due, or the clock stepped back since it was set: look now)
            self._next_check = now + self._reopen_check_s
            return self._moved()
        return False

    def room(self) -> int | None:
        """How many more bytes this file takes before it reaches ``max_bytes``; None when
        it has no limit (no ``max_bytes``, not rotated, or a rename just failed and
        writing goes on in it). The writer rotates a file before a write that would not
        fit, and writes a line longer than ``max_bytes`` alone into a file.
        """
        if self._max_bytes is None or not self._rotatable or self._rename_failed or self._fd is None:
            return None
        size = self._size_now(self._fd)  # (other processes' appends to a shared file count too)
        if size is not None:
            self._size = size
        return max(0, self._max_bytes - self._size)

    def _moved(self) -> bool:
        """Whether the path no longer leads to our file (renamed or deleted under us)."""
        if not self._regular:
            return False  # a device or a FIFO: the path is the thing, it never moves
        if self._fd is not None and _deleted(self._fd):
            return True  # (a new file at the path may have been given our inode's number)
        try:
            # A symlink is followed (the file it leads to may be rotated by others); else
            # the path itself must still be our file, not a link or a device put there.
            st = os.stat(self.path) if self._link else os.lstat(self.path)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._identity

    def rotate(self) -> None:
        """Start a new file: rename this one to a backup, then open the path afresh.

        Only reopens (no rename) when the file was moved away, when this is a forked
        child, when the path is not a regular file of ours (a device, a FIFO, a symlink),
        and when the file is empty (no empty backups). If the rename fails, writing goes
        on in the same file; if the reopen fails, the destination stays due for rotation
        and the next batch tries again. Either error is raised for the writer to count.
        After a batch went on in a new file (:meth:`_follow`), the writer has closed the
        traces it carried there: nothing more to do.
        """
        followed, self._followed = self._followed, False
        if followed and self._fd is not None and self._pid == os.getpid():
            return
        # Under the file's lock: another process of ours rotating the same file at once
        # waits, then finds it moved, instead of renaming the new file onto our backup.
        # (A forked child only reopens: the file, and the lock, are its parent's.)
        ours = self._pid == os.getpid()
        lock = self._lock if ours and self._fd is not None else None
        if lock is not None and not lock.acquire() and lock.usable:
            # Not had in time (another process holds it, and may be renaming at this very
            # moment): never renamed without it. This file goes on as it is, in whole
            # batches (see room()), until a look after reopen_check_s tries again.
            lock.release()
            self._rename_failed = True
            self._retry_at = self._clock() + self._reopen_check_s
            return
        fd, self._fd = self._fd, None
        backup = None
        failure: OSError | None = None
        if fd is not None:
            try:
                try:
                    rename = self._rotatable and ours and os.fstat(fd).st_size > 0 and not self._moved()
                except OSError:
                    rename = False  # what cannot be checked is not renamed
                if rename:
                    try:
                        backup = backup_name(self.path, self._clock())
                        os.rename(self.path, backup)
                    except FileNotFoundError:
                        backup = None  # another process renamed it meanwhile (no flock here)
                    except OSError as exc:
                        backup, failure = None, exc
            finally:
                if lock is not None:
                    lock.release()
                _close_quietly(fd)  # (whatever was raised: no descriptor is left open)
                self._close_reader()
        live = self.path
        try:
            self._open()
        finally:
            if backup is not None:  # (compressed and kept count of even when the reopen fails)
                self._maintenance.after_rotation(live, backup)
        self._rename_failed = failure is not None
        if failure is not None:
            raise failure

    def flush(self) -> None:
        """Every batch goes straight to the OS with ``write(2)``; with ``fsync`` set, sync it too."""
        if self._fsync != "never" and self._fd is not None and self._regular:
            os.fsync(self._fd)

    def close(self, upkeep_timeout: float | None = 5.0) -> None:
        """Close the file; wait up to ``upkeep_timeout`` seconds (None: 5) for a backup being
        compressed or deleted (its thread is a daemon: an exit would cut it short)."""
        self._closed = True
        fd, self._fd = self._fd, None
        try:
            if fd is not None and self._we_cut and self._regular:
                self._end_cut_line(fd)
        finally:
            self._close_reader()
            if fd is not None:
                os.close(fd)
        self._maintenance.wait(5.0 if upkeep_timeout is None else upkeep_timeout)

    def _end_cut_line(self, fd: int) -> None:
        """At close, a line a write of ours left cut (a full disk) gets its newline if there is
        room now: one cut just before it (counted written) is then whole for readers, who
        wait on a last line without one. The next write would have ended it; none comes.
        Only under the lock, had at once (a close never waits on another writer), only while
        the file is as that write left it, and only if it ends inside a line (an interrupt in
        a write that got nothing in leaves it whole); else the next writer of it ends it."""
        lock = self._lock
        if lock is None:
            return
        lock.patient = False  # (one try)
        try:
            if lock.acquire() and os.fstat(fd).st_size == self._end_size:
                # (a file we cannot read, written to only: what our cut write left tells)
                mid_line = ends_mid_line(self._reader) if self._reader is not None else self._cut_mid_line
                if mid_line is True:
                    os.write(fd, b"\n")
        except OSError:
            pass
        finally:
            lock.release()

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            _close_quietly(reader)

    def __repr__(self) -> str:
        return f"AsyncFileDestination({self.path!r})"


def _open_reader(path: str, identity: tuple[int, int]) -> int | None:
    """A descriptor reading the file at ``path`` if it is still the one ``identity``
    (``st_dev``, ``st_ino``) names; None when it cannot be read (a write-only file) or the
    path now leads elsewhere (rotated by another process meanwhile)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        st = None
    if st is None or (st.st_dev, st.st_ino) != identity:
        _close_quietly(fd)
        return None
    return fd


def _kind(mode: int) -> str:
    """What a file that is not a regular file is, for messages."""
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _open_failure(path: str, exc: OSError) -> str:
    """Why ``path`` could not be opened, in words."""
    if exc.errno == errno.ELOOP:
        try:
            os.stat(path)
        except OSError as again:
            if again.errno == errno.ELOOP:
                return "it is a symlink loop (too many levels of symbolic links)"
        return "it is a symlink (nofollow)"
    if exc.errno == errno.ENXIO:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = 0
        if stat.S_ISFIFO(mode):
            return "it is a FIFO and no process has it open for reading (start the reader first)"
        if stat.S_ISSOCK(mode):
            return "it is a socket, which cannot be opened as a file"
    return str(exc.strerror)


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
