"""Rotation of log files: when it is due, what backups are called, retention and gzip.

Backups are named ``<stem>.<UTC time, microseconds>Z<suffix>`` next to the live file
(``app.20261126T224005.123456Z.jsonl``, then ``...jsonl.gz`` once compressed), so their
names sort in time order. Compression and retention run on one background thread per
file (``logxpy-rotate``), off the writer's path: a write never waits for gzip.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime
import errno
import gzip
import os
import re
import secrets
import shutil
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from . import _lifecycle
from ._append_lock import AppendLock, deleted
from ._diagnostics import logger

__all__ = [
    "CHECKPOINT_SUFFIX",
    "Maintenance",
    "backup_name",
    "backup_of",
    "backups",
    "backups_by_family",
    "checkpoint_key",
    "create_exclusive",
    "next_rollover",
    "parse_rotate_when",
]

#: What ``logxpy-otel replay`` adds to a file's name (see :func:`checkpoint_key`) for the
#: checkpoint it keeps beside it; retention removes it with the backup.
CHECKPOINT_SUFFIX: Final = ".replay.json"

_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.ASCII)


def parse_rotate_when(value: object) -> str | float:
    """``hourly``, ``daily``, or an interval of at least a second: seconds, or ``"30s"``,
    ``"15m"``, ``"2h"``, ``"1d"`` (ASCII digits: a shorter one would rotate at nearly every batch)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("hourly", "daily"):
            return text
        match = _INTERVAL.match(text)
        if match:
            value = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    allowed = "hourly, daily, or an interval of at least 1 s, such as 3600, 30s, 15m, 2h, 1d"
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value < float("inf"):
        raise ValueError(allowed)
    try:
        return float(value)
    except OverflowError:  # (an int past a float: 10**400)
        raise ValueError(allowed) from None


def next_rollover(when: str | float, now: float) -> float:
    """The first rotation time after ``now`` (Unix seconds): UTC hour or day boundaries, or now + interval."""
    if when == "hourly":
        return (now // 3600 + 1) * 3600
    if when == "daily":
        return (now // 86400 + 1) * 86400
    assert isinstance(when, float)
    return now + when


def _split(path: str) -> tuple[str, str, str]:
    directory, name = os.path.split(path)
    stem, dot, ext = name.partition(".")
    return directory, stem, (dot + ext) if dot else ""


def backup_name(path: str, now: float) -> str:
    """A free backup name for ``path`` at time ``now`` that sorts after every existing
    backup: on a clash (or a clock that stepped back) the time moves on by a microsecond."""
    directory, stem, suffix = _split(path)
    micros = int(now * 1e6)
    latest = _latest_stamp(path)
    if latest is not None:
        micros = max(micros, latest + 1)
    while True:
        seconds, fraction = divmod(micros, 1_000_000)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + f".{fraction:06d}Z"
        candidate = os.path.join(directory, f"{stem}.{stamp}{suffix}")
        if not (os.path.exists(candidate) or os.path.exists(candidate + ".gz")):
            return candidate
        micros += 1


_STAMP = re.compile(r"\.([0-9]{8}T[0-9]{6})\.([0-9]{6})Z")

#: The last time a backup's name can carry (its successor would need a fifth year digit),
#: less a day: a newest backup's time past this (planted, or a clock once wrong) is not
#: followed, or later names would leave the pattern.
_LAST_FOLLOWED: Final = calendar.timegm((9999, 12, 30, 23, 59, 59, 0, 0, 0)) * 1_000_000 + 999_999


def _latest_stamp(path: str) -> int | None:
    """The time of ``path``'s newest backup (None without one): the greatest name, as
    names sort in time order, that names a real time up to :data:`_LAST_FOLLOWED` (one
    name read, not every backup's: rotation holds the file's lock meanwhile)."""
    directory, pattern = _named_after_backups(path, r"(?:\.gz)?")
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return None
    for name in sorted((n for n in names if pattern.match(n)), reverse=True):
        stamp = _stamp_of(name)
        if stamp is not None and stamp <= _LAST_FOLLOWED:
            return stamp
    return None


def _stamp_of(name: str) -> int | None:
    """The time in a backup's name, in microseconds; None when it names no real time (a
    file of someone else's that looks like a backup: ``app.99999999T999999.000000Z.jsonl``)."""
    match = _STAMP.search(name)
    if match is None:
        return None
    d = match.group(1)
    fields = (int(d[0:4]), int(d[4:6]), int(d[6:8]), int(d[9:11]), int(d[11:13]), int(d[13:15]))
    try:
        datetime.datetime(*fields)  # (a real date and time: refuses month 13, a 31st of June...)
    except ValueError:
        return None
    return calendar.timegm((*fields, 0, 0, 0)) * 1_000_000 + int(match.group(2))


def _named_after_backups(path: str, ending: str) -> tuple[str, re.Pattern[str]]:
    """``path``'s directory, and a pattern of the names of its backups followed by
    ``ending`` (a regular expression)."""
    directory, stem, suffix = _split(path)
    return directory, re.compile(
        re.escape(stem) + r"\.[0-9]{8}T[0-9]{6}\.[0-9]{6}Z" + re.escape(suffix) + ending + r"\Z"
    )


def backups(path: str) -> list[str]:
    """The existing backups of ``path`` (compressed or not), oldest first: names as ours
    are, of a time that exists (never another's file that only looks like one)."""
    directory, pattern = _named_after_backups(path, r"(?:\.gz)?")
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return []
    ours = (n for n in names if pattern.match(n) and _stamp_of(n) is not None)
    return [os.path.join(directory, name) for name in sorted(ours)]


def backups_by_family(directory: str) -> dict[str, list[str]]:
    """The backups in ``directory`` by their live file's name, oldest first: what
    :func:`backups` finds for each, from one listing (a directory of many families)."""
    try:
        names = sorted(os.listdir(directory or "."))
    except OSError:
        return {}
    out: dict[str, list[str]] = {}
    for name in names:
        live = backup_of(name)
        if live is not None and _stamp_of(name) is not None:
            out.setdefault(live[0], []).append(os.path.join(directory, name))
    return out


#: (DOTALL: a name may hold a newline, as backups() takes it.)
_BACKUP_NAME = re.compile(r"([^.]*)\.[0-9]{8}T[0-9]{6}\.[0-9]{6}Z((?:\..*)?)\Z", re.DOTALL)


def backup_of(path: str) -> tuple[str, bool] | None:
    """For a path named as a backup: ``(the live file's path, whether the name says it is
    compressed)``; None for any other name. ``app.20261126T224005.123456Z.jsonl.gz`` ->
    ``("app.jsonl", True)``."""
    directory, name = os.path.split(path)
    candidates = [(name[: -len(".gz")], True), (name, False)] if name.endswith(".gz") else [(name, False)]
    for candidate, compressed in candidates:
        match = _BACKUP_NAME.match(candidate)
        if match:
            return os.path.join(directory, match.group(1) + match.group(2)), compressed
    return None


def checkpoint_key(path: str) -> str:
    """The name a file's replay checkpoint and dead letters go by: the file's own, except
    that a compressed backup ``X.gz`` goes by ``X`` (the same lines, before and after gzip)."""
    backup = backup_of(path)
    return path[: -len(".gz")] if backup is not None and backup[1] else path


#: A temporary file of ours left this long is an orphan (a crash in the middle of a gzip
#: or a checkpoint write): one being written is touched far more often than that.
PARTIAL_ORPHAN_S: Final = 3600.0


def prune_partials(path: str) -> None:
    """Remove the temporary files (``create_exclusive``'s) of ``path``'s family that a crash
    left behind, once they are :data:`PARTIAL_ORPHAN_S` old: each held a whole compressed
    copy of a backup, and nothing else would ever remove them."""
    directory, stem, _ = _split(path)
    pattern = re.compile(r"\." + re.escape(stem) + r"\..+\.[0-9a-f]{16}\.partial\Z")
    now = time.time()

    def orphan(name: str) -> bool:
        return now - os.lstat(os.path.join(directory, name)).st_mtime >= PARTIAL_ORPHAN_S

    _prune(directory, pattern, orphan, "the left-over")


def prune_checkpoints(path: str) -> None:
    """Remove the replay checkpoints of ``path``'s backups that are gone (deleted by retention
    or by hand): nothing can resume in them. Dead letters stay: they hold records."""
    directory, pattern = _named_after_backups(path, re.escape(CHECKPOINT_SUFFIX))

    def orphan(name: str) -> bool:
        backup = os.path.join(directory, name[: -len(CHECKPOINT_SUFFIX)])
        return not (os.path.lexists(backup) or os.path.lexists(backup + ".gz"))

    _prune(directory, pattern, orphan, "the replay checkpoint")


def _prune(directory: str, pattern: re.Pattern[str], orphan: Callable[[str], bool], what: str) -> None:
    """Delete the files of ``directory`` whose names match ``pattern`` and that ``orphan``
    says nothing needs any more; a failure is a warning, never raised."""
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return
    for name in names:
        if not pattern.match(name):
            continue
        doomed = os.path.join(directory, name)
        try:
            if orphan(name):
                os.unlink(doomed)
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("logxpy-otel: could not delete %s %s: %s", what, doomed, exc)


class Maintenance:
    """Compresses new backups and enforces ``backup_count``, on its own thread, in order.

    The thread is started for the first job and ends as soon as no job is left, so a
    destination that is closed (or just idle) holds no thread. Retention runs after
    every rotation whatever compression did: a backup that cannot be compressed (disk
    full, no file descriptors) stays as it is, and old backups are still deleted.
    """

    def __init__(self, backup_count: int | None, compress: bool, file_mode: int) -> None:
        self._backup_count = backup_count
        self._compress = compress
        self._file_mode = file_mode
        self._after_fork_in_child()
        _lifecycle.reset_after_fork(self)

    def _after_fork_in_child(self) -> None:
        """No job, no thread (at construction, and in a forked child: the parent's thread
        and its jobs are the parent's, and its locks may have been held at the fork)."""
        self._jobs: deque[tuple[str, str]] = deque()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()

    def after_rotation(self, live_path: str, backup: str) -> None:
        """Queue the work for a file just rotated to ``backup``."""
        if not self._compress and self._backup_count is None:
            return
        with self._lock:
            self._jobs.append((live_path, backup))
            self._idle.clear()
            if self._thread is not None:
                return  # the running thread takes it
            thread = threading.Thread(target=self._run, name="logxpy-rotate", daemon=True)
            try:
                thread.start()
            except RuntimeError as exc:  # no thread to be had: do the work here, now
                logger.warning("logxpy-otel: no thread for rotation upkeep (%s); doing it inline", exc)
            else:
                self._thread = thread
                return
        self._run()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every queued job is done; False at the timeout."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        while True:
            with self._lock:  # the same lock as after_rotation: a job is never left behind
                if not self._jobs:
                    self._thread = None
                    self._idle.set()
                    return
                live_path, backup = self._jobs.popleft()
            try:
                self._upkeep(live_path, backup)
            except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the next
                logger.warning("logxpy-otel: rotation upkeep after %s failed: %r", backup, exc)

    def _upkeep(self, live_path: str, backup: str) -> None:
        """Compress ``backup``, then enforce ``backup_count`` and remove what a crash left."""
        compressed = False
        if self._compress:
            try:
                _gzip(backup, self._file_mode)
                compressed = True
            except Exception as exc:  # noqa: BLE001 - (a clock past 2106 fails gzip's header: not an OSError)
                logger.warning("logxpy-otel: could not compress %s (it stays uncompressed): %s", backup, exc)
        if self._backup_count is not None:
            for old in _beyond_count(live_path, self._backup_count):
                try:
                    _unlink_locked(old)
                except OSError as exc:
                    logger.warning("logxpy-otel: could not delete old backup %s: %s", old, exc)
            prune_checkpoints(live_path)
        prune_partials(live_path)
        if compressed:  # (after retention: none is compressed only to be deleted)
            self._compress_left_overs(live_path, backup)

    def _compress_left_overs(self, live_path: str, backup: str) -> None:
        """Compress the family's other plain backups: those a process left when it ended while
        compressing them (its upkeep thread cut short by the exit, or ``os._exit``), alone
        or beside the ``.gz`` it had renamed into place but not yet removed them for (then
        read twice by whoever reads every file). ``_gzip`` makes ``X.gz`` again from ``X``,
        which holds all of it and what was appended since. Another process compressing the
        same backup meanwhile is no harm: the second finds it gone. A failure here is
        tried again at the next rotation. At most :data:`_LEFT_OVERS_A_ROTATION`, newest
        first: a directory of many (``compress`` turned on for old files) takes a few
        rotations, never a close's whole bound."""
        plain = [name for name in backups(live_path) if name != backup and not name.endswith(".gz")]
        for name in plain[::-1][:_LEFT_OVERS_A_ROTATION]:
            try:
                _gzip(name, self._file_mode)
            except Exception as exc:  # noqa: BLE001 - left for the next rotation
                logger.debug("logxpy-otel: could not compress the left-over backup %s: %s", name, exc)


#: How many left-over plain backups one rotation's upkeep compresses.
_LEFT_OVERS_A_ROTATION: Final = 2


def _beyond_count(path: str, count: int) -> list[str]:
    """The files of ``path``'s backups older than its ``count`` newest. A backup being
    compressed (by another process too) is there twice for a moment, ``X`` and ``X.gz``:
    one backup, whose files go together."""
    found = backups(path)
    named = [(name[: -len(".gz")] if name.endswith(".gz") else name, name) for name in found]
    stems = list(dict.fromkeys(stem for stem, _ in named))  # (oldest first, as names sort)
    doomed = set(stems[: -count or None])
    return [name for stem, name in named if stem in doomed]


def create_exclusive(target: str, mode: int = 0o600) -> tuple[int, str]:
    """A new file beside ``target`` under an unpredictable hidden name, to be renamed onto
    ``target`` once written: ``(fd, path)``.

    ``O_CREAT | O_EXCL | O_NOFOLLOW``: whatever was planted in the directory (a symlink at
    any name, a file at the name we pick) is never opened, followed or truncated.
    """
    directory, name = os.path.split(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        path = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.partial")
        try:
            return os.open(path, flags, mode), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free temporary name beside {target!r}")


#: Unlocked copies of what a backup received since the last one, before the rest is copied
#: under its lock.
_CATCH_UP_ROUNDS: Final = 4

#: How long upkeep waits for a backup's lock (a writer holds it through a cut write's
#: retries). Past that the backup is left as it is for now: it is never read for good, nor
#: deleted, under a writer.
UPKEEP_LOCK_TIMEOUT_S: Final = 30.0


class BackupBusyError(OSError):
    """A backup's append lock was not had in time: it is left as it is."""


class _Deleted(Exception):
    """The backup was deleted meanwhile (another process's upkeep): nothing to do."""


def _open_backup(path: str, *, for_reading: bool) -> int | None:
    """``path`` open (for reading; else, as a write-only backup allows, for writing: only
    to lock it), never waiting (``O_NONBLOCK``: a FIFO planted at a backup's name) and
    never through a link; None when it is gone. An ``OSError`` when it is not a regular
    file (``ELOOP`` for a link) or cannot be opened."""
    flags = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        try:
            fd = os.open(path, os.O_RDONLY | flags)
        except PermissionError:
            if for_reading:
                raise
            fd = os.open(path, os.O_WRONLY | flags)
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _lock_named(lock: AppendLock, fd: int, path: str) -> None:
    """Take ``lock`` (``fd``'s, waited for, bounded): a writer of another process still
    appending to this backup (it has not noticed the rename yet) finishes first, and one
    that comes after finds it deleted once we are done and writes to the live file (see
    ``AsyncFileDestination``). Raises :class:`BackupBusyError` when it was not had in time,
    :class:`_Deleted` when the file has no name any more. Where ``flock`` is not supported
    (some network file systems) it goes on unlocked, as writers do."""
    if not lock.acquire() and lock.usable:
        lock.release()
        raise BackupBusyError(
            errno.EBUSY, f"a writer held its lock for {UPKEEP_LOCK_TIMEOUT_S:.0f} s; left as it is", path
        )
    if deleted(fd) or not _named(path, fd):
        lock.release()
        raise _Deleted


def _unlink_if_same(path: str, was: os.stat_result) -> None:
    """Delete ``path`` if it is still the file ``was`` describes (its device and inode)."""
    with contextlib.suppress(OSError):
        now = os.lstat(path)
        if (now.st_dev, now.st_ino) == (was.st_dev, was.st_ino):
            os.unlink(path)


def _named(path: str, fd: int) -> bool:
    """Whether ``path`` still names the file ``fd`` has open: a backup moved away (by a
    shipper, by hand) is no more ours to compress or delete than a deleted one."""
    try:
        at, st = os.lstat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (at.st_dev, at.st_ino) == (st.st_dev, st.st_ino)


def _unlink_locked(path: str) -> None:
    """Delete the backup ``path`` under its append lock (see :func:`_lock_named`); anything
    else at a backup's name (a FIFO, a link, a file nobody may open) is deleted as it is."""
    try:
        fd = _open_backup(path, for_reading=False)
    except OSError:  # not a file of our writers (a FIFO, a link, one nobody may open)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    if fd is None:
        return
    lock = AppendLock(fd, UPKEEP_LOCK_TIMEOUT_S)
    try:
        _lock_named(lock, fd, path)
        os.unlink(path)
    except (_Deleted, FileNotFoundError):
        pass
    finally:
        lock.release()  # (now: a child forked meanwhile shares the descriptor and its lock)
        os.close(fd)


def _gzip(path: str, file_mode: int) -> None:
    """``path`` -> ``path.gz`` (written aside under a fresh name, then renamed into place),
    then ``path`` removed. It is copied without its append lock (a writer that has not
    noticed the rename yet never waits for gzip), then, under the lock, whatever came in
    meanwhile, until nothing did; the rename and the removal happen under it. On failure
    ``path`` stays and nothing else is left behind; a backup deleted or moved away
    meanwhile leaves no .gz (its records are where it went)."""
    src_fd = _open_backup(path, for_reading=True)
    if src_fd is None:
        return  # retention removed it already
    lock = AppendLock(src_fd, UPKEEP_LOCK_TIMEOUT_S)
    with os.fdopen(src_fd, "rb") as src:
        fd, partial = create_exclusive(path + ".gz", file_mode)
        try:
            with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as dst:
                for _ in range(_CATCH_UP_ROUNDS):
                    shutil.copyfileobj(src, dst, 1 << 20)  # what is there now
                    _lock_named(lock, src_fd, path)
                    if os.fstat(src_fd).st_size == src.tell():
                        break  # (the lock kept: nothing more comes in)
                    lock.release()
                else:
                    _lock_named(lock, src_fd, path)  # a file that kept growing: the rest locked
                    shutil.copyfileobj(src, dst, 1 << 20)
            written = os.lstat(partial)
            os.replace(partial, path + ".gz")
        except BaseException as exc:
            lock.release()
            with contextlib.suppress(OSError):
                os.unlink(partial)
            if isinstance(exc, _Deleted):
                return
            raise
        try:
            os.unlink(path)
        except FileNotFoundError:
            # Moved away between the look under the lock and now: its records are where it
            # went, and a .gz beside them would be each of them a second time. Taken back
            # only while it is ours, and only under a lock that works: without one, another
            # process compressing the same backup may have removed it after putting its
            # own .gz in place (a record twice is better than one lost).
            if lock.usable:
                _unlink_if_same(path + ".gz", written)
        finally:
            lock.release()  # (now: a child forked meanwhile shares the descriptor and its lock)
