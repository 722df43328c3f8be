"""A writer's settings (:class:`AsyncConfig`), its counters (:class:`AsyncMetrics`), and the
per-call synchronous switch (:func:`sync_mode`): plain data, shared by the writer and
the glue that builds it.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from . import _settings
from ._policies import QueuePolicy

__all__ = ["FLUSH_TIMEOUT_MS", "SYNC_MODE", "AsyncConfig", "AsyncMetrics", "flush_timeout_s", "sync_mode"]


_DEFAULTS: Final = _settings.FIELD_DEFAULTS


def _default_async() -> bool:
    return not _settings.sync_requested()


@dataclass(frozen=True, slots=True)
class AsyncConfig:
    """Settings of an :class:`AsyncWriter`, as plain values; validated at construction
    (``ValueError``, by the same validator as each setting's keyword and variable).

    The ``OTEL_EXPORTER_LOGXPY_*`` variables are read where the processor and exporter
    are built, for the settings not given there, not here (``LOGXPY_SYNC`` excepted: the
    default of ``async_enabled``, as in logxpy's writer).
    """

    #: Most records queued or being written; the policy decides beyond.
    max_queue_size: int = _DEFAULTS["max_queue_size"]
    #: Records per write; a batch is written as soon as this many wait (at most
    #: ``max_queue_size``: a larger value is capped).
    batch_size: int = _DEFAULTS["batch_size"]
    #: Longest time a record waits in the queue before its batch is written.
    flush_interval_ms: float = _DEFAULTS["flush_interval_ms"]
    queue_policy: QueuePolicy = _DEFAULTS["queue_policy"]  # a name: turned into the enum below
    #: False writes in the caller's thread. Default: True unless ``LOGXPY_SYNC=1``.
    async_enabled: bool = field(default_factory=_default_async)
    #: Writer-thread crashes survived (backoff 0.1 s doubling to 30 s) before falling
    #: back to synchronous writes in the callers' threads.
    max_restarts: int = _DEFAULTS["max_restarts"]
    #: Bound on the flush at shutdown and at process exit.
    shutdown_timeout_ms: float = _DEFAULTS["shutdown_timeout_ms"]
    #: A trace with no record for this long gets its end line.
    trace_idle_ms: float = _DEFAULTS["trace_idle_ms"]
    #: Most traces open at once; beyond, the least recently used is closed.
    max_open_traces: int = _DEFAULTS["max_open_traces"]
    #: Least time between two reports of the same kind (drops, destination errors).
    report_interval_ms: float = 5_000.0

    def __post_init__(self) -> None:
        # One validator per setting, shared with the keywords and the variables (_settings).
        for name in (
            "max_queue_size",
            "batch_size",
            "flush_interval_ms",
            "queue_policy",
            "max_restarts",
            "shutdown_timeout_ms",
            "trace_idle_ms",
            "max_open_traces",
        ):
            object.__setattr__(self, name, _settings.check_field(name, getattr(self, name)))
        object.__setattr__(self, "queue_policy", QueuePolicy(self.queue_policy))
        report = self.report_interval_ms
        if isinstance(report, bool) or not isinstance(report, int | float) or not 0 < report <= _HOUR_MS:
            raise ValueError(
                "AsyncConfig.report_interval_ms must be a number of milliseconds > 0 and <= 3600000; "
                f"got {report!r}"
            )
        if self.batch_size > self.max_queue_size:
            # A batch can never hold more than the queue does (and an env-set queue size
            # must not turn the default batch size into a start-up error).
            object.__setattr__(self, "batch_size", self.max_queue_size)
        if not isinstance(self.async_enabled, bool):
            raise ValueError(f"AsyncConfig.async_enabled must be True or False; got {self.async_enabled!r}")


_HOUR_MS: Final = _settings.HOUR_MS


@dataclass(frozen=True, slots=True)
class AsyncMetrics:
    """A consistent snapshot of a writer's counters.

    ``enqueued == written + dropped + pending`` holds exactly in every snapshot. A
    "record" is a line: with a span processor sharing the writer, span start and end
    lines are counted with the log records, and apart in ``span_lines_*``.
    """

    #: Records handed over (accepted or not): ``written + dropped + pending``, where
    #: pending is counted from the slots records hold, not from a separate counter.
    enqueued: int
    #: Records written to at least one destination.
    written: int
    #: Records dropped, for any reason (see ``dropped_by_reason``).
    dropped: int
    dropped_by_reason: Mapping[str, int]
    #: Destination calls that raised.
    errors: int
    #: Records in the queue now.
    queue_depth: int
    #: Highest queue depth seen (never above ``max_queue_size``).
    max_queue_depth: int
    #: Records holding a queue slot: queued, in the batch being written, or on their way in.
    pending: int
    batches: int
    restarts: int
    #: Of ``written``: span start and end lines (with a span processor sharing the writer).
    span_lines_written: int = 0
    #: Of ``dropped_by_reason``: span start and end lines.
    span_lines_dropped_by_reason: Mapping[str, int] = field(default_factory=dict)


_SYNC: contextvars.ContextVar[bool] = contextvars.ContextVar("logxpy_otel_sync", default=False)
#: Set within :func:`sync_mode` (the C ``on_emit`` checks it too).
SYNC_MODE: Final = _SYNC


@contextlib.contextmanager
def sync_mode() -> Iterator[None]:
    """Within this block (in this thread or task), records are written before the logging call returns."""
    token = _SYNC.set(True)
    try:
        yield
    finally:
        _SYNC.reset(token)


#: ``force_flush``'s bound when none is given (the SDK's processors' default).
FLUSH_TIMEOUT_MS: Final = 30_000


def flush_timeout_s(timeout_millis: float | None) -> float:
    """A ``force_flush`` bound in seconds, one a lock can wait: None (which the SDK's batch
    processor takes) is the default bound; NaN or less than 0 is 0 (at once, as
    ``Event.wait`` takes them); past ``threading.TIMEOUT_MAX`` (infinity too) is that most.
    Never an error out of a flush."""
    if timeout_millis is None:
        return FLUSH_TIMEOUT_MS / 1000.0
    seconds = timeout_millis / 1000.0
    if math.isnan(seconds) or seconds <= 0:
        return 0.0
    return min(seconds, threading.TIMEOUT_MAX)
