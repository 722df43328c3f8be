"""Sending the records of logxpy-otel files on to a collector, resumably.

What is read: live files, rotated backups and their gzip versions (gzip is told by the
file's first bytes, not its name), a directory (every rotated family in it) or a glob.
Several files are sent in time order: each family's backups oldest first (their names
sort in time order), its live file last.

Checkpoints. After every batch the collector accepted, the offset of the first line not
yet dealt with is written (atomically) to ``FILE.replay.json`` beside the file; a replay
that is interrupted or fails resumes there. A compressed backup ``X.gz`` shares the
checkpoint of its plain name ``X`` (offsets count the decompressed lines, which are the
same bytes), so a backup compressed after a partial replay is resumed, not sent again.
A checkpoint applies to a file when the file still starts with the bytes it recorded
(a digest of up to the first 4 KiB that were delivered): that holds across a rename
(rotation) and across compression, and not for a new file at the same path. When the
live file has rotated since its checkpoint was written, the checkpoint goes with the
backup it now describes. A checkpoint that is damaged, not ours, negative or past the
end is reported once and the file is replayed from its beginning.

Records OTLP cannot carry as they are. Before each batch is exported it is encoded
locally with the OTLP encoder. Ints beyond 64 bits (body, attributes, resource, scope)
are sent as decimal strings; a severity number, id, flag or timestamp that its OTLP field
cannot hold is left unset (dropped counts are capped). A record the encoder still refuses
is *set aside* in ``FILE.replay.dead`` (JSON lines: file, byte offset, reason, the line),
reported by name, and never blocks the records after it. Lines that are not records of
the format are set aside there too. Nothing is sent twice to find them.

A last line with no newline in a file that can still grow is left for the next run.
The files replay writes beside the logs (checkpoints, dead letters) are written under a
fresh unpredictable name with ``O_EXCL | O_NOFOLLOW`` and renamed into place: a symlink
planted at their name is never followed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import hashlib
import io
import os
import re
import signal
import stat
import sys
import threading
import time
import zlib
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Final

import orjson
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from ._otlp import OtlpForms, encoded_parts, otlp_encoder, otlp_form
from ._render import safe
from ._rotation import CHECKPOINT_SUFFIX, backup_of, backups, checkpoint_key, create_exclusive
from .reader import GZIP_MAGIC, BadLine, LineRecord, OffsetPastEnd, open_regular, read_head_open, read_open

__all__ = [
    "Checkpoint",
    "ReplayError",
    "ReplaySummary",
    "UsageError",
    "checkpoint_path",
    "dead_letter_path",
    "expand_paths",
    "otlp_form",
    "replay_files",
]

DEAD_LETTER_SUFFIX: Final = ".replay.dead"
#: Of a file's unreadable lines, how many are set aside and listed one by one; the others
#: are counted and said in one line with their bytes (the file itself still holds them): a
#: small file of many bad lines (a gzip of a million empty ones) costs no more than that.
MAX_UNREADABLE_LISTED: Final = 1000
_OURS: Final = (CHECKPOINT_SUFFIX, DEAD_LETTER_SUFFIX, ".partial")
_FORMAT: Final = "logxpy-otel replay checkpoint 1"
#: How much of a file's beginning identifies it (digest kept in its checkpoint).
_HEAD: Final = 4096
#: How long after its last change a rotated backup is taken as final (its torn last line
#: torn for good): a process appending to the file as it was rotated finishes its batch
#: within its write's retries, seconds at the default ``retry_timeout``.
BACKUP_SETTLE_S: Final = 60.0
_CHECKPOINT_MAX: Final = 1 << 16


class UsageError(ValueError):
    """A path that names no file (exit status 2)."""


class ReplayError(Exception):
    """A file or checkpoint that cannot be read or written (exit status 2); the message names it."""


def checkpoint_path(path: str) -> str:
    return checkpoint_key(path) + CHECKPOINT_SUFFIX


def dead_letter_path(path: str) -> str:
    return checkpoint_key(path) + DEAD_LETTER_SUFFIX


def _is_ours(name: str) -> bool:
    """A file replay or rotation writes (checkpoint, dead letters, a temporary file)."""
    return name.startswith(".") or name.endswith(_OURS)


# -- checkpoints ------------------------------------------------------------------------------


class _BadCheckpoint(ValueError):
    pass


@dataclass
class Checkpoint:
    """Where a file's replay stands: the next offset to send from, and what identifies the file.

    ``head_sha256`` is the SHA-256 of the file's first ``head_bytes`` bytes (its lines,
    decompressed), all before ``offset``. None in a checkpoint written by an older
    version: then the file's ``dev``/``ino`` identify it.
    """

    offset: int = 0
    sent: int = 0
    dev: int = 0
    ino: int = 0
    head_sha256: str | None = None
    head_bytes: int = 0

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "format": _FORMAT,
                "offset": self.offset,
                "sent": self.sent,
                "dev": self.dev,
                "ino": self.ino,
                "head_sha256": self.head_sha256,
                "head_bytes": self.head_bytes,
            }
        )

    @classmethod
    def parse(cls, data: bytes) -> Checkpoint:
        """The checkpoint ``data`` holds; ``_BadCheckpoint`` saying why when it holds none."""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise _BadCheckpoint("it is not JSON") from None
        if not isinstance(obj, dict):
            raise _BadCheckpoint("it is not a JSON object")
        legacy = set(obj) == {"offset", "sent", "dev", "ino"}
        if obj.get("format") != _FORMAT and not legacy:
            raise _BadCheckpoint("it is not a logxpy-otel replay checkpoint")
        names = ("offset", "sent", "dev", "ino") + (() if legacy else ("head_bytes",))
        values: list[int] = []
        for name in names:
            value = obj.get(name)
            if type(value) is not int:
                raise _BadCheckpoint(f"its {name} is not an integer")
            if value < 0:
                raise _BadCheckpoint(f"its {name} is negative ({value})")
            values.append(value)
        digest = None if legacy else obj.get("head_sha256")
        if not legacy and not (isinstance(digest, str) and len(digest) == 64):
            raise _BadCheckpoint("its head_sha256 is not a SHA-256 digest")
        offset, sent, dev, ino = values[:4]
        checkpoint = cls(offset, sent, dev, ino, digest, 0 if legacy else values[4])
        if checkpoint.head_bytes > checkpoint.offset:
            raise _BadCheckpoint("its head_bytes is past its offset")
        if not legacy and checkpoint.head_bytes < min(checkpoint.offset, _HEAD):
            # (written by a version that took the head when the file was opened, shorter
            # than what was sent by the time it saved: it would match files it is not of)
            raise _BadCheckpoint("its head_bytes is short of the bytes it covers")
        return checkpoint

    @classmethod
    def load(cls, path: str) -> Checkpoint:
        """The checkpoint at ``path``: ``FileNotFoundError`` when there is none,
        ``_BadCheckpoint`` when what is there is not one (a symlink is not one)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise FileNotFoundError(exc.errno, exc.strerror, path) from None
            if exc.errno == errno.ELOOP:
                raise _BadCheckpoint("it is a symlink") from None
            raise _BadCheckpoint(f"it cannot be read: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            # (looked at before fdopen, which refuses a directory with an error naming no file)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise _BadCheckpoint(
                    "it is not a regular file of its own (a directory, device, FIFO or hard link)"
                )
        except BaseException:
            os.close(fd)
            raise
        with os.fdopen(fd, "rb") as f:
            data = f.read(_CHECKPOINT_MAX + 1)
        if len(data) > _CHECKPOINT_MAX:
            raise _BadCheckpoint("it is far too large")
        return cls.parse(data)

    def save(self, path: str) -> None:
        """Written to a fresh file beside ``path``, synced, then renamed onto ``path``."""
        write_atomically(path, self.to_json())

    def save_before_sending(self, path: str) -> None:
        """:meth:`save`, before anything of its file is sent: a failure is a
        :class:`ReplayError` naming the checkpoint (not the file it is of)."""
        try:
            self.save(path)
        except OSError as exc:
            why = exc.strerror or exc
            raise ReplayError(f"{path}: the replay checkpoint cannot be written: {why}") from exc


def write_atomically(target: str, data: bytes, mode: int = 0o600) -> None:
    """``data`` into ``target``: written to a new file under an unpredictable name in the
    same directory (``O_EXCL | O_NOFOLLOW``), synced, renamed onto ``target``."""
    aside = WrittenAside(target, data, mode)
    try:
        aside.put_in_place()
    finally:
        aside.discard()


def _remove_written_aside(target: str) -> None:
    """Remove what a replay killed while it sent left beside ``target``: the checkpoint it had
    written aside (:class:`WrittenAside`), never put in place. Only a replay writes those,
    and this one holds the directory's lock (so none is being written now)."""
    directory, name = os.path.split(target)
    pattern = re.compile(r"\." + re.escape(name) + r"\.[0-9a-f]{16}\.partial\Z")
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return
    for left in names:
        if pattern.match(left):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, left))  # (a link there: the link itself)


class WrittenAside:
    """``data`` for ``target``, written and synced to a new file beside it (an unpredictable
    name, ``O_EXCL | O_NOFOLLOW``) now, renamed onto it later (:meth:`put_in_place`): a
    checkpoint that needs no more room once its batch is sent. Raises ``OSError`` (nothing
    left behind) when it cannot be written."""

    def __init__(self, target: str, data: bytes, mode: int = 0o600) -> None:
        self._target = target
        fd, partial = create_exclusive(target, mode)
        self._partial: str | None = partial
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            self.discard()
            raise

    def put_in_place(self) -> None:
        """Rename it onto its target."""
        if self._partial is None:
            raise RuntimeError("written aside once, put in place once")
        os.replace(self._partial, self._target)
        self._partial = None

    def discard(self) -> None:
        """Remove it, unless it was put in place (so: safe to call always, in a finally)."""
        partial, self._partial = self._partial, None
        if partial is not None:
            with contextlib.suppress(OSError):
                os.unlink(partial)


def _read_regular(path: str) -> bytes:
    """A file of ours as it is (not through a symlink, nor a hard link); b"" when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            return b""
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        # Ours are only ever made by rename: a hard link there is not, and is not copied.
        return f.read() if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 else b""


class _Source:
    """One file to replay, open: its identity, and its beginning (to match checkpoints
    with), all of the file opened, whatever its path leads to later (it may be rotated
    while it is replayed). Close it when done."""

    def __init__(self, path: str) -> None:
        self.path = path
        raw = open_regular(path)  # (a FIFO named by mistake is refused, never waited on)
        try:
            st = os.fstat(raw.fileno())
            self.dev, self.ino, self.size = st.st_dev, st.st_ino, st.st_size
            self._file = io.BufferedReader(raw)
        except BaseException:
            raw.close()
            raise
        try:
            self._head, self.compressed = read_head_open(self._file, _HEAD)
        except BaseException:
            self._file.close()
            raise
        self.backup = backup_of(path)
        #: A file that no longer grows: a gzip file, or a rotated backup no process has
        #: changed for ``BACKUP_SETTLE_S`` (one that has not seen the rotation yet appends
        #: its batch under way to it: docs/configuration.md, "Many processes, one file").
        self.final = self.compressed or (
            self.backup is not None and time.time() - st.st_mtime >= BACKUP_SETTLE_S
        )

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes of its lines (fewer when it is shorter; at most _HEAD).
        A file that grew since it was opened (the live file, appended to meanwhile) is read
        again: a head shorter than what was sent would match files it is not of."""
        if len(self._head) < min(size, _HEAD) and not self.compressed:  # (a backup can grow too)
            # (pread: the offset it shares with the lines being read stays where it is)
            self._head = os.pread(self._file.fileno(), _HEAD, 0)
        return self._head[:size]

    def lines(self, start: int) -> Iterator[LineRecord | BadLine]:
        """Its lines from byte ``start`` of its lines on (see :func:`reader.read_open`)."""
        raw = os.fdopen(os.dup(self._file.fileno()), "rb")
        raw.seek(0)
        return read_open(raw, start, final=self.final, name=self.path)  # type: ignore[return-value]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def matches(self, checkpoint: Checkpoint) -> bool:
        """Whether ``checkpoint`` describes this file (see :class:`Checkpoint`)."""
        if checkpoint.head_sha256 is None:
            return (checkpoint.dev, checkpoint.ino) == (self.dev, self.ino)
        head = self.head(checkpoint.head_bytes)
        return (
            len(head) == checkpoint.head_bytes and hashlib.sha256(head).hexdigest() == checkpoint.head_sha256
        )

    def checkpoint(self, offset: int, sent: int) -> Checkpoint:
        """A checkpoint of this file at ``offset`` (complete lines were read up to it)."""
        head = self.head(min(offset, _HEAD))
        return Checkpoint(offset, sent, self.dev, self.ino, hashlib.sha256(head).hexdigest(), len(head))


#: The largest request replay sends (encoded): what a collector takes by default (gRPC's
#: 4 MiB receive limit, the OTel Collector's too). A larger batch goes in parts; a record
#: larger alone is set aside (``--max-request-bytes``).
MAX_REQUEST_BYTES: Final = 4 * 1024 * 1024


# -- dead letters -----------------------------------------------------------------------------


def _set_aside(path: str, entries: list[dict[str, Any]]) -> str:
    """Append ``entries`` to the dead-letter file of ``path`` (rewritten whole, atomically);
    an entry already there (same offset and line: a run that stopped before its
    checkpoint) is not added twice. Returns the dead-letter file's path."""
    target = dead_letter_path(path)
    old = _read_regular(target)
    seen = set()
    for raw in old.splitlines():
        try:
            entry = orjson.loads(raw)
            seen.add((entry["start"], entry["line"]))
        except (ValueError, KeyError, TypeError):
            continue
    new = [e for e in entries if (e["start"], e["line"]) not in seen]
    if new:
        if old and not old.endswith(b"\n"):
            old += b"\n"
        write_atomically(target, old + b"".join(orjson.dumps(e) + b"\n" for e in new))
    return target


def _dead_letter(path: str, line: LineRecord | BadLine, kind: str, reason: str) -> dict[str, Any]:
    return {
        "file": path,
        "start": line.start,
        "end": line.end,
        "kind": kind,
        "reason": reason,
        "line": line.raw.decode("utf-8", "backslashreplace").rstrip("\n"),
    }


# -- the summary ------------------------------------------------------------------------------


@dataclass
class ReplaySummary:
    """What a replay did. Not delivered, by reason: ``refused`` (records of a batch the
    collector did not accept), ``export_errors`` (records of a batch whose export raised),
    ``set_aside`` (records OTLP cannot carry), ``unreadable`` (lines that are not records);
    ``pending``: last lines still being written, left for the next run."""

    sent: int = 0
    refused: int = 0
    export_errors: int = 0
    set_aside: int = 0
    unreadable: int = 0
    pending: int = 0
    #: Records sent in a nearer form than the file's (docs/format.md, "Replay to OTLP").
    converted: int = 0
    interrupted: bool = False
    files: list[str] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Lines passed over: set aside, unreadable, or left for the next run."""
        return self.set_aside + self.unreadable + self.pending

    @property
    def failed(self) -> int:
        """Records of batches that were not delivered."""
        return self.refused + self.export_errors

    @property
    def ok(self) -> bool:
        """Every record line of every file was delivered (lines still being written aside)."""
        return not (self.failed or self.set_aside or self.unreadable or self.interrupted)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "sent": self.sent,
            "skipped": self.skipped,
            "failed": self.failed,
            "refused": self.refused,
            "export_errors": self.export_errors,
            "set_aside": self.set_aside,
            "unreadable": self.unreadable,
            "pending": self.pending,
            "converted": self.converted,
            "interrupted": self.interrupted,
            "files": self.files,
            "dead_letters": self.dead_letters,
            "problems": self.problems,
            "warnings": self.warnings,
        }


# -- which files, in which order --------------------------------------------------------------


def _family_order(path: str) -> tuple[str, int, str]:
    """Sort key: family (its live file's path), then backups by name (time), the live file last."""
    backup = backup_of(path)
    if backup is None:
        return (os.path.normpath(path), 1, "")
    return (os.path.normpath(backup[0]), 0, os.path.basename(path))


def _plan(paths: Sequence[str], listed: Collection[str] = ()) -> list[str]:
    """``paths`` without repeats, in time order. A backup ``X`` named but since compressed
    is read as ``X.gz``; of ``X`` and ``X.gz`` both present (compression in progress),
    only ``X.gz``. A file named twice (through a symlink, a hard link, ``./``) is replayed
    once, under its first name: each name has a checkpoint of its own, so the second would
    send every record again. Raises :class:`UsageError` for a path that names no file,
    unless it is one of ``listed`` (found in a directory or a glob, and gone since: the
    replay says so)."""
    chosen: dict[str, str] = {}
    files: set[tuple[int, int]] = set()
    for path in paths:
        if not os.path.exists(path):
            backup = backup_of(path)
            if backup is not None and not backup[1] and os.path.exists(path + ".gz"):
                path += ".gz"
            elif path not in listed:
                raise UsageError(f"{path}: no such file")
        if os.path.isdir(path):
            raise UsageError(f"{path}: is a directory (expand_paths() takes directories)")
        try:
            st = os.stat(path)
        except OSError:
            pass  # (gone since it was listed: the replay says so)
        else:
            if (st.st_dev, st.st_ino) in files:
                continue
            files.add((st.st_dev, st.st_ino))
        chosen.setdefault(os.path.normpath(path), path)
    out = [
        path for norm, path in chosen.items() if not (backup_of(norm) is not None and norm + ".gz" in chosen)
    ]
    return sorted(out, key=_family_order)


def _directory(directory: str) -> list[str]:
    """The files of a directory replay takes: every rotated family (backups named
    ``NAME.<time>Z.SUFFIX[.gz]`` and their live file), every ``*.jsonl[.gz]`` file, and
    any other file that holds lines of ours (a live file of any name that has not rotated
    yet: ``fallback.log``). Hidden files, symlinks and replay's own files are left
    out."""
    found: list[str] = []
    lives: set[str] = set()
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        raise UsageError(f"{directory}: {exc.strerror}") from None
    regular = {e.name for e in entries if e.is_file(follow_symlinks=False) and not _is_ours(e.name)}
    for name in sorted(regular):
        backup = backup_of(name)
        if backup is not None:
            found.append(os.path.join(directory, name))
            lives.add(backup[0])
        elif name.endswith((".jsonl", ".jsonl.gz")) or _holds_our_lines(os.path.join(directory, name)):
            lives.add(name)
    found += [os.path.join(directory, name) for name in sorted(lives) if name in regular]
    return found


#: How much of a file :func:`_holds_our_lines` looks at.
_SNIFF_BYTES: Final = 64 * 1024
#: How each of our lines starts: the tree's numbering, first (see ``_trees``).
_OUR_LINE: Final = re.compile(rb'(?:\A|\n)\{"tid":"[^"\n]{1,200}","lvl":\[')


def _holds_our_lines(path: str) -> bool:
    """Whether a line of ours starts in the first 64 KiB of a regular file of any name (a
    ``fallback.log`` not rotated yet, its first line perhaps longer than that, or zeros a
    crash left; logrotate's ``app.jsonl.2.gz``). Of gzip data, what its first 64 KiB of
    compressed bytes give, so a crafted header costs no more; a name that is no longer a
    regular file is not opened (a FIFO is never waited on)."""
    try:
        with open_regular(path) as raw:
            head = raw.read(_SNIFF_BYTES)
    except OSError:
        return False
    if head.startswith(GZIP_MAGIC):
        try:
            head = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(head, _SNIFF_BYTES)
        except zlib.error:
            return False
    return _OUR_LINE.search(head) is not None


def expand_paths(args: Sequence[str]) -> list[str]:
    """The files the command line names, in the order to replay them: a file; a directory
    (every rotated family in it); a glob the shell did not expand (``'logs/app*'``).
    Raises :class:`UsageError` naming a path that names nothing."""
    files: list[str] = []
    listed: set[str] = set()  # found in a listing, not named: one gone since is no usage error
    for arg in args:
        if os.path.isdir(arg):
            found = _directory(arg)
            files += found
            listed.update(found)
        elif not os.path.lexists(arg) and glob.has_magic(arg):
            matches = [
                m for m in sorted(glob.glob(arg)) if os.path.isfile(m) and not _is_ours(os.path.basename(m))
            ]
            if not matches:
                raise UsageError(f"{arg}: no file matches")
            files += matches
            listed.update(matches)
        elif os.path.basename(arg).endswith(_OURS):
            continue  # a checkpoint or dead-letter file in a shell glob: not a log
            # (a hidden file named on purpose is replayed: only listings pass over those)
        else:
            files.append(arg)
    return _plan(files, listed)


# -- replay -----------------------------------------------------------------------------------


@dataclass
class _Run:
    exporter: LogRecordExporter | None
    batch_size: int
    stop: threading.Event
    progress: IO[str] | None
    summary: ReplaySummary
    encode: Callable[[Sequence[ReadableLogRecord]], Any] | None
    max_request_bytes: int = MAX_REQUEST_BYTES
    forms: OtlpForms = field(default_factory=OtlpForms)

    @property
    def writes(self) -> bool:
        """False in a dry run: nothing sent, no checkpoint, no dead letter written."""
        return self.exporter is not None


def _chunks(
    entries: Iterator[LineRecord | BadLine], size: int
) -> Iterator[tuple[list[LineRecord], list[BadLine], int | None]]:
    """Up to ``size`` records at a time with the bad lines among them (up to ``size`` too),
    and the offset just past the last complete line of the chunk (None: no line)."""
    records: list[LineRecord] = []
    bad: list[BadLine] = []
    end: int | None = None
    for entry in entries:
        if isinstance(entry, BadLine):
            bad.append(entry)
            if not entry.pending:
                end = entry.end
            if len(bad) >= size:  # (a file of bad lines: as many at a time as records)
                yield records, bad, end
                records, bad, end = [], [], None
            continue
        records.append(entry)
        end = entry.end
        if len(records) >= size:
            yield records, bad, end
            records, bad, end = [], [], None
    if records or bad or end is not None:
        yield records, bad, end


def _resume(src: _Source, run: _Run) -> Checkpoint:
    """Where to start ``src``: its own checkpoint, or the one its live file left when it
    was that live file (a backup now); the furthest that describes it."""
    own_path = checkpoint_path(src.path)
    found = Checkpoint()
    own: Checkpoint | None = None
    try:
        own = Checkpoint.load(own_path)
    except FileNotFoundError:
        pass
    except _BadCheckpoint as exc:
        run.summary.warnings.append(
            f"checkpoint {own_path} of {src.path} is unusable ({exc}): replaying the file from the beginning"
        )
        if run.writes:
            src.checkpoint(0, 0).save_before_sending(own_path)  # replaced, so it is reported once
    if own is not None:
        if src.matches(own):
            found = own
        elif run.writes and src.backup is None:
            _hand_over(src, own)  # the live file rotated: the checkpoint is its backup's
    if src.backup is not None:
        try:
            theirs = Checkpoint.load(checkpoint_path(src.backup[0]))
        except (OSError, _BadCheckpoint):
            theirs = None  # the live file's own replay reports it
        if theirs is not None and theirs.offset > found.offset and src.matches(theirs):
            found = src.checkpoint(theirs.offset, theirs.sent)
            if run.writes:
                found.save_before_sending(own_path)  # before the live file's checkpoint moves on
    if found.head_sha256 is None and found.offset:
        found = src.checkpoint(found.offset, found.sent)  # an older version's: upgraded
    return found


def _open_backup(path: str) -> _Source:
    """The backup ``path`` opened, or its ``.gz`` when it was compressed (and deleted)
    since it was listed: the same lines."""
    try:
        return _Source(path)
    except FileNotFoundError:
        backup = backup_of(path)
        if backup is None or backup[1]:
            raise
        return _Source(path + ".gz")


def _hand_over(src: _Source, checkpoint: Checkpoint) -> None:
    """Give the live file's checkpoint to the backup it describes (the newest that matches)."""
    for path in reversed(backups(src.path)):
        try:
            backup = _open_backup(path)
        except OSError:
            continue
        with backup:
            if not backup.matches(checkpoint):
                continue
            try:
                theirs: Checkpoint | None = Checkpoint.load(checkpoint_path(path))
            except (OSError, _BadCheckpoint):
                theirs = None
            if theirs is None or not backup.matches(theirs) or theirs.offset < checkpoint.offset:
                backup.checkpoint(checkpoint.offset, checkpoint.sent).save(checkpoint_path(path))
            return


def _open(
    src: _Source, checkpoint: Checkpoint, run: _Run
) -> tuple[Iterator[LineRecord | BadLine], Checkpoint]:
    try:
        return src.lines(checkpoint.offset), checkpoint
    except OffsetPastEnd:
        run.summary.warnings.append(
            f"checkpoint {checkpoint_path(src.path)} points past the end of {src.path} "
            f"(offset {checkpoint.offset}): replaying the file from the beginning"
        )
        fresh = Checkpoint()
        return src.lines(0), fresh


@dataclass
class _Unlisted:
    """A file's unreadable lines past the first ``MAX_UNREADABLE_LISTED``: how many, where."""

    count: int = 0
    start: int = 0
    end: int = 0
    listed: int = 0


def _replay_file(src: _Source, run: _Run) -> bool:
    """Replay one file; False when the whole replay must stop (interrupted, not delivered)."""
    summary = run.summary
    checkpoint = _resume(src, run)
    if not src.compressed and checkpoint.offset > src.size:
        run.summary.warnings.append(
            f"checkpoint {checkpoint_path(src.path)} points past the end of {src.path} "
            f"(offset {checkpoint.offset}, the file has {src.size} bytes): replaying it from the beginning"
        )
        checkpoint = Checkpoint()
    entries, checkpoint = _open(src, checkpoint, run)
    unlisted = _Unlisted()
    try:
        return _replay_lines(src, run, entries, checkpoint, unlisted)
    finally:
        if unlisted.count:
            summary.problems.append(
                f"{src.path}: {unlisted.count} more unreadable lines among bytes {unlisted.start}-"
                f"{unlisted.end}, neither set aside nor listed (past the first {MAX_UNREADABLE_LISTED}; "
                "the file holds them)"
            )


def _replay_lines(
    src: _Source,
    run: _Run,
    entries: Iterator[LineRecord | BadLine],
    checkpoint: Checkpoint,
    unlisted: _Unlisted,
) -> bool:
    """Send the records of ``entries`` batch by batch, setting aside what cannot go, saving
    the checkpoint after each batch; False when the whole replay must stop."""
    summary = run.summary
    sent_before = summary.sent
    for records, bad, end in _chunks(entries, run.batch_size):
        if run.stop.is_set():
            summary.interrupted = True
            return False
        dead: list[dict[str, Any]] = []
        pending = [line for line in bad if line.pending]
        for line in bad:
            if line.pending:
                summary.pending += 1
                continue
            summary.unreadable += 1
            if unlisted.listed < MAX_UNREADABLE_LISTED:
                unlisted.listed += 1
                dead.append(_dead_letter(src.path, line, "unreadable", line.reason))
            else:
                unlisted.start = unlisted.start if unlisted.count else line.start
                unlisted.count += 1
                unlisted.end = line.end
        batch = [entry.record for entry in records]
        parts = [batch] if batch else []
        converted = [0] * len(parts)  # of each part: records in a nearer form than the file's
        if run.encode is not None:
            refused = {}
            formed: list[tuple[int, ReadableLogRecord, bool]] = []  # (index, record, changed)
            for i, record in enumerate(batch):
                try:
                    formed.append((i, *otlp_form(record, run.forms)))
                except Exception as exc:  # noqa: BLE001 - this record only: set aside
                    refused[i] = f"cannot be put in a form OTLP carries: {type(exc).__name__}: {exc}"
            kept = [record for _, record, _ in formed]
            encoder_refused, runs = encoded_parts(kept, run.encode, run.max_request_bytes)
            refused |= {formed[k][0]: reason for k, reason in encoder_refused.items()}
            for i in sorted(refused):
                dead.append(_dead_letter(src.path, records[i], "set_aside", refused[i]))
            summary.set_aside += len(refused)
            parts = [[kept[k] for k in part] for part in runs]
            converted = [sum(formed[k][2] for k in part) for part in runs]  # (counted once sent)
            batch = [record for part in parts for record in part]
        if dead:
            target = _set_aside(src.path, dead) if run.writes else None
            if target is not None and target not in summary.dead_letters:
                summary.dead_letters.append(target)
            aside = f"set aside in {target}" if target else "to be set aside (dry run)"
            for letter in sorted(dead, key=lambda letter: int(letter["start"])):
                where = f"{src.path}: bytes {letter['start']}-{letter['end']}"
                what = "unreadable line, " if letter["kind"] == "unreadable" else ""
                summary.problems.append(f"{where}: {what}{aside}: {letter['reason']}")
        for line in pending:  # the last line of the file: reported after the others
            summary.problems.append(f"{src.path}: bytes {line.start}-{line.end}: {line.reason}")
        # The checkpoint this batch leaves, written aside before it is sent: a disk with no
        # room for it stops the run before anything is sent (else each run would send the
        # batch, fail to keep its checkpoint and send it again the next time).
        written_aside: WrittenAside | None = None
        if end is not None and end != checkpoint.offset and run.writes:
            after = src.checkpoint(end, checkpoint.sent + len(batch))
            try:
                written_aside = WrittenAside(checkpoint_path(src.path), after.to_json())
            except OSError as exc:
                raise ReplayError(
                    f"cannot write the checkpoint {checkpoint_path(src.path)} ({exc.strerror}); "
                    f"the rest of {src.path} was not sent"
                ) from exc
        try:
            first = records[0].start if records else checkpoint.offset
            if not _send(src, run, batch=batch, parts=parts, converted=converted, span=(first, end)):
                return False
            if written_aside is not None:
                try:
                    written_aside.put_in_place()
                except OSError as exc:
                    raise ReplayError(
                        f"cannot write the checkpoint {checkpoint_path(src.path)} "
                        f"({exc.strerror}); the last batch of {src.path} may be sent again",
                    ) from exc
                checkpoint = after
        finally:
            if written_aside is not None:
                written_aside.discard()
        if run.progress is not None:
            done = f"{(end or 0) * 100 // max(src.size, 1):3d}%  " if not src.compressed else ""
            run.progress.write(f"\r{safe(src.path)}: {done}{summary.sent - sent_before} sent")
            run.progress.flush()
    if run.progress is not None:
        run.progress.write("\n")
    return True


def _send(
    src: _Source,
    run: _Run,
    *,
    batch: list[ReadableLogRecord],
    parts: list[list[ReadableLogRecord]],
    converted: list[int],
    span: tuple[int, int | None],
) -> bool:
    """Send one batch of ``src`` (in ``parts``; ``converted``: how many of each part are in
    a nearer form; ``span``: the bytes it is read from), counted in the summary. False when
    it was not all delivered (the problem reported; the run stops there)."""
    summary = run.summary
    first, end = span
    if run.exporter is not None and batch:
        # (a batch too large for one request goes in parts; when a later part fails,
        # the run stops before the checkpoint: the earlier parts go again next run)
        for k, part in enumerate(parts):
            unsent = sum(len(p) for p in parts[k:])
            try:
                result = run.exporter.export(part)
            except Exception as exc:  # noqa: BLE001 - reported: the exporter itself failed
                summary.export_errors += unsent
                summary.problems.append(
                    f"{src.path}: bytes {first}-{end}: exporting {len(part)} records raised "
                    f"{type(exc).__name__}: {exc}; run again to resume"
                )
                return False
            if result is not LogRecordExportResult.SUCCESS:
                summary.refused += unsent
                summary.problems.append(
                    f"{src.path}: bytes {first}-{end}: the collector did not accept {unsent} records "
                    "(refused or unreachable); run again to resume"
                )
                return False
            summary.sent += len(part)
            summary.converted += converted[k]
    else:
        summary.sent += len(batch)
        summary.converted += sum(converted)
    return True


def replay_files(
    paths: Sequence[str],
    exporter: LogRecordExporter | None,
    *,
    batch_size: int = 512,
    progress: IO[str] | None = None,
    stop: threading.Event | None = None,
    otlp: bool = True,
    max_request_bytes: int = MAX_REQUEST_BYTES,
) -> ReplaySummary:
    """Send every record of ``paths`` (from each one's checkpoint) through ``exporter``.

    ``paths`` are files, put in time order (:func:`expand_paths` also takes directories
    and globs). ``exporter=None`` is a dry run: records are read, checked and counted;
    nothing is sent and no checkpoint or dead letter is written. ``otlp``: put records in
    the nearest form OTLP can carry and check each batch with the OTLP encoder first,
    sending it in parts of at most ``max_request_bytes`` encoded (a record larger alone is
    set aside). Stops at the first batch the exporter does not accept. Each directory it replays in
    is locked for the run: a second replay there at the same time raises
    :class:`ReplayError` before it sends anything. Raises :class:`UsageError` for a path
    that names no file and :class:`ReplayError` for a file that cannot be read or a
    checkpoint that cannot be written.
    """
    if type(max_request_bytes) is not int or max_request_bytes < 1024:
        raise ValueError(f"max_request_bytes must be an int of at least 1024; got {max_request_bytes!r}")
    summary = ReplaySummary()
    run = _Run(
        exporter,
        batch_size,
        stop if stop is not None else threading.Event(),
        progress,
        summary,
        otlp_encoder() if otlp else None,
        max_request_bytes,
    )
    locks = _DirectoryLocks(summary)
    try:
        files = expand_paths(paths)
        if exporter is not None:  # (a dry run writes nothing: it needs no lock)
            for path in files:
                locks.take(path)  # all before the first send: a busy one stops the run
                if locks.holds(path):
                    _remove_written_aside(checkpoint_path(path))
        for path in files:
            try:
                src = _open_backup(path) if backup_of(path) is not None else _Source(path)
                path = src.path  # (X.gz when X was compressed since the list was made)
            except FileNotFoundError:
                # (deleted by retention, or a live file being renamed when it was listed: its
                # lines are in a backup that the next run lists)
                summary.warnings.append(f"{path} went away before it could be read (rotated or deleted?)")
                continue
            except OSError as exc:
                raise ReplayError(f"{path}: {exc.strerror or exc}") from exc
            summary.files.append(path)
            try:
                with src:
                    if not _replay_file(src, run):
                        break
            except ReplayError:
                raise
            except OSError as exc:
                raise ReplayError(f"{path}: {exc.strerror or exc}") from exc
    finally:
        locks.release()
    return summary


class _DirectoryLocks:
    """The directories a replay works in, each locked (``flock``, exclusive) for the whole
    run: a second replay of the same files at once stops at once (``ReplayError``) instead
    of reading the same checkpoints and sending their records a second time. A file
    system without ``flock`` is said in a warning, and the replay goes on unlocked."""

    def __init__(self, summary: ReplaySummary) -> None:
        self._summary = summary
        self._held: dict[str, int] = {}

    def take(self, path: str) -> None:
        directory = os.path.dirname(os.path.abspath(path))
        if directory in self._held:
            return
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BaseException:
                os.close(fd)
                raise
        except BlockingIOError:
            raise ReplayError(
                f"{path}: another replay is running in {directory}; run one at a time "
                "(two at once would send the same records twice)"
            ) from None
        except OSError as exc:  # a directory we may not read, a file system without flock
            self._summary.warnings.append(
                f"{directory}: could not be locked ({exc.strerror or exc}); "
                "make sure no other replay runs there"
            )
            fd = -1
        self._held[directory] = fd

    def holds(self, path: str) -> bool:
        """Whether the directory of ``path`` is locked by this run (not only warned of)."""
        return self._held.get(os.path.dirname(os.path.abspath(path)), -1) >= 0

    def release(self) -> None:
        for fd in self._held.values():
            if fd >= 0:
                os.close(fd)  # (the lock goes with it)
        self._held.clear()


def install_stop_handlers(stop: threading.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM set ``stop`` (the replay ends after the batch in flight); returns an undo."""
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)

    def undo() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return undo


def progress_stream() -> IO[str] | None:
    """stderr when it is a terminal: progress is for people, not for logs."""
    return sys.stderr if sys.stderr.isatty() else None
