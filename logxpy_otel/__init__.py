"""logxpy-otel: an OpenTelemetry log exporter that writes logxpy JSON lines to local files.

Records are encoded in the caller's thread and appended in batches by a policy-aware
writer thread. See docs/format.md for the line format and README.md for usage.
"""

from ._destinations import DEFAULT_PATH, AsyncConsoleDestination, AsyncFileDestination
from ._format import RESERVED_KEYS, LineEncoder, LineItem, LineMode, decode_value, encode_value
from ._writer import (
    AsyncConfig,
    AsyncMetrics,
    AsyncWriter,
    Destination,
    DropReason,
    QueuePolicy,
    sync_mode,
)
from .exporter import LogxpyLogRecordExporter
from .logging_handler import LogxpyLoggingHandler
from .processor import LogxpyLogRecordProcessor

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PATH",
    "RESERVED_KEYS",
    "AsyncConfig",
    "AsyncConsoleDestination",
    "AsyncFileDestination",
    "AsyncMetrics",
    "AsyncWriter",
    "Destination",
    "DropReason",
    "LineEncoder",
    "LineItem",
    "LineMode",
    "LogxpyLogRecordExporter",
    "LogxpyLogRecordProcessor",
    "LogxpyLoggingHandler",
    "QueuePolicy",
    "__version__",
    "decode_value",
    "encode_value",
    "sync_mode",
]
