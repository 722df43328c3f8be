"""Rotation of log files: when it is due, what backups are called, retention and gzip.

Backups are named ``<stem>.<UTC time, microseconds>Z<suffix>`` next to the live file
(``app.20261126T224005.123456Z.jsonl``, then ``...jsonl.gz`` once compressed), so their
names sort in time order. Compression and retention run on one background thread per
file (``logxpy-rotate``), off the writer's path: a write never waits for gzip.
"""

from __future__ import annotations

import calendar
import contextlib
import gzip
import os
import re
import shutil
import threading
import time
from queue import SimpleQueue
from typing import Final

from ._diagnostics import logger

__all__ = ["Maintenance", "backup_name", "backups", "next_rollover", "parse_rotate_when"]

_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_rotate_when(value: object) -> str | float:
    """``hourly``, ``daily``, or an interval: seconds, or ``"30s"``, ``"15m"``, ``"2h"``, ``"1d"``."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("hourly", "daily"):
            return text
        match = _INTERVAL.match(text)
        if match:
            value = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ValueError("hourly, daily, or an interval such as 3600, 30s, 15m, 2h, 1d")
    return float(value)


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
    existing = backups(path)
    if existing:
        match = _STAMP.search(os.path.basename(existing[-1]))
        if match:
            latest = calendar.timegm(time.strptime(match.group(1), "%Y%m%dT%H%M%S")) * 1_000_000
            micros = max(micros, latest + int(match.group(2)) + 1)
    while True:
        seconds, fraction = divmod(micros, 1_000_000)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + f".{fraction:06d}Z"
        candidate = os.path.join(directory, f"{stem}.{stamp}{suffix}")
        if not (os.path.exists(candidate) or os.path.exists(candidate + ".gz")):
            return candidate
        micros += 1


_STAMP = re.compile(r"\.(\d{8}T\d{6})\.(\d{6})Z")


def backups(path: str) -> list[str]:
    """The existing backups of ``path`` (compressed or not), oldest first."""
    directory, stem, suffix = _split(path)
    pattern = re.compile(re.escape(stem) + r"\.\d{8}T\d{6}\.\d{6}Z" + re.escape(suffix) + r"(?:\.gz)?$")
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return []
    return [os.path.join(directory, name) for name in sorted(n for n in names if pattern.match(n))]


class Maintenance:
    """Compresses new backups and enforces ``backup_count``, on its own thread, in order."""

    def __init__(self, backup_count: int | None, compress: bool, file_mode: int) -> None:
        self._backup_count = backup_count
        self._compress = compress
        self._file_mode = file_mode
        self._jobs: SimpleQueue[tuple[str, str] | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0

    def after_rotation(self, live_path: str, backup: str) -> None:
        """Queue the work for a file just rotated to ``backup``."""
        if not self._compress and self._backup_count is None:
            return
        with self._lock:
            self._pending += 1
            self._idle.clear()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="logxpy-rotate", daemon=True)
                self._thread.start()
        self._jobs.put((live_path, backup))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every queued job is done; False at the timeout."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            live_path, backup = job
            try:
                if self._compress:
                    _gzip(backup, self._file_mode)
                if self._backup_count is not None:
                    for old in backups(live_path)[: -self._backup_count or None]:
                        os.unlink(old)
            except OSError as exc:
                logger.warning("logxpy-otel: rotation upkeep of %s failed: %s", backup, exc)
            finally:
                with self._lock:
                    self._pending -= 1
                    if not self._pending:
                        self._idle.set()


def _gzip(path: str, file_mode: int) -> None:
    """``path`` -> ``path.gz`` (written aside, then renamed into place), then ``path`` removed."""
    target = path + ".gz"
    partial = target + ".partial"
    try:
        src = open(path, "rb")  # noqa: SIM115 - closed below; retention may have removed it
    except FileNotFoundError:
        return
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, file_mode)
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(partial, target)
        os.unlink(path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    finally:
        src.close()
