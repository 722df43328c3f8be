"""The names a writer's behaviour is described in: queue policies and drop reasons.

Their own module, so that the settings (``_settings``) and the writer (``_writer``) share
one definition of each name; both are public through ``logxpy_otel``.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DropReason", "QueuePolicy"]


class QueuePolicy(StrEnum):
    """What :meth:`AsyncWriter.enqueue` does when the queue holds ``max_queue_size`` records."""

    #: Wait for room: nothing is lost, the caller slows down to the disk's pace.
    BLOCK = "block"
    #: Make room by dropping the oldest queued record (keep the most recent logs).
    DROP_OLDEST = "drop_oldest"
    #: Refuse the new record (keep the logs that led up to the overload).
    DROP_NEWEST = "drop_newest"
    #: As ``drop_newest``, plus a rate-limited warning with the count dropped.
    WARN = "warn"


class DropReason(StrEnum):
    """Why a record was dropped; the keys of :attr:`AsyncMetrics.dropped_by_reason`."""

    QUEUE_FULL = "queue_full"  # drop_newest / warn refused a record
    EVICTED = "evicted"  # drop_oldest pushed a queued record out
    SHUTDOWN = "shutdown"  # handed over after stop() began
    IO_ERROR = "io_error"  # no destination accepted the batch
    NO_DESTINATION = "no_destination"  # the writer had no destination
    INTERNAL_ERROR = "internal_error"  # a fault in logxpy-otel itself (reported)
    OWN_DIAGNOSTICS = "own_diagnostics"  # logxpy-otel's own warnings, kept out of its files
    FORMAT_ERROR = "format_error"  # a logging record whose message could not be formatted
    RECURSIVE_LOGGING = "recursive_logging"  # logged while a logging record was being handled
    INVALID_ID = "invalid_id"  # a span line whose trace or span id OTel cannot carry: no tree for it
