"""Sending the records of logxpy-otel files on to a collector, resumably.

A checkpoint beside each file (``FILE.replay.json``) holds the byte offset of the first
record not yet delivered, written (atomically) after every batch the collector accepted.
A replay that is interrupted or fails resumes there: no record is sent twice and none
is skipped, as long as the process is not killed between a batch's delivery and its
checkpoint (SIGINT/SIGTERM stop between batches). A file that grew since is resumed at
its new records; a file replaced by another (another inode) starts from the beginning.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from .reader import BadLine, LineRecord, read_file

__all__ = ["Checkpoint", "ReplaySummary", "checkpoint_path", "replay_files"]

CHECKPOINT_SUFFIX = ".replay.json"


def checkpoint_path(path: str) -> str:
    return path + CHECKPOINT_SUFFIX


@dataclass
class Checkpoint:
    """Where a file's replay stands: the next offset to send from, and the file's identity."""

    offset: int = 0
    sent: int = 0
    dev: int = 0
    ino: int = 0

    @classmethod
    def load(cls, path: str) -> Checkpoint:
        st = os.stat(path)
        try:
            with open(checkpoint_path(path), "rb") as f:
                data = orjson.loads(f.read())
            saved = cls(int(data["offset"]), int(data["sent"]), int(data["dev"]), int(data["ino"]))
        except (OSError, ValueError, KeyError, TypeError):
            return cls(dev=st.st_dev, ino=st.st_ino)
        if (saved.dev, saved.ino) != (st.st_dev, st.st_ino) or saved.offset > st.st_size:
            return cls(dev=st.st_dev, ino=st.st_ino)  # another file now: start over
        return saved

    def save(self, path: str) -> None:
        target = checkpoint_path(path)
        partial = target + ".partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(
                orjson.dumps({"offset": self.offset, "sent": self.sent, "dev": self.dev, "ino": self.ino})
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, target)


@dataclass
class ReplaySummary:
    """What a replay did: records sent, lines skipped (bad or torn), records not delivered."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0
    interrupted: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.interrupted


def _batches(
    path: str, start: int, size: int, summary: ReplaySummary
) -> Iterator[tuple[list[ReadableLogRecord], int]]:
    """Batches of records with the offset after each; a last, possibly empty, batch carries
    the offset past complete bad lines at the end (a torn last line stays to be re-read)."""
    batch: list[ReadableLogRecord] = []
    end = yielded = start
    for entry in read_file(path, start):
        if isinstance(entry, BadLine):
            summary.skipped += 1
            summary.problems.append(f"{path}: bytes {entry.start}-{entry.end}: {entry.reason}")
            if not entry.torn:
                end = entry.end
            continue
        assert isinstance(entry, LineRecord)
        batch.append(entry.record)
        end = entry.end
        if len(batch) >= size:
            yield batch, end
            batch, yielded = [], end
    if batch or end > yielded:
        yield batch, end


def replay_files(
    paths: Sequence[str],
    exporter: LogRecordExporter | None,
    *,
    batch_size: int = 512,
    progress: IO[str] | None = None,
    stop: threading.Event | None = None,
) -> ReplaySummary:
    """Send every record of ``paths`` (from each one's checkpoint) through ``exporter``.

    ``exporter=None`` is a dry run: records are read and counted, nothing is sent and no
    checkpoint is written. Stops at the first batch the exporter refuses.
    """
    summary = ReplaySummary()
    stop = stop if stop is not None else threading.Event()
    for path in paths:
        checkpoint = Checkpoint.load(path)
        size = os.path.getsize(path)
        for batch, end in _batches(path, checkpoint.offset, batch_size, summary):
            if stop.is_set():
                summary.interrupted = True
                return summary
            if exporter is not None and batch:
                try:
                    result = exporter.export(batch)
                except Exception as exc:  # noqa: BLE001 - reported as a failed batch
                    summary.problems.append(f"{path}: export raised {type(exc).__name__}: {exc}")
                    result = LogRecordExportResult.FAILURE
                if result is not LogRecordExportResult.SUCCESS:
                    summary.failed += len(batch)
                    summary.problems.append(
                        f"{path}: the collector refused a batch at byte {checkpoint.offset}"
                    )
                    return summary
            if exporter is not None:
                checkpoint.offset, checkpoint.sent = end, checkpoint.sent + len(batch)
                checkpoint.save(path)
            summary.sent += len(batch)
            if progress is not None:
                progress.write(f"\r{path}: {end * 100 // max(size, 1):3d}%  {summary.sent} sent")
                progress.flush()
        if progress is not None:
            progress.write("\n")
    return summary


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
