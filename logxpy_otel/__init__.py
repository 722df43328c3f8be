"""logxpy-otel: an OpenTelemetry log exporter that writes logxpy JSON lines to local files.

Records are encoded in the caller's thread and appended in batches by a policy-aware
writer thread. See docs/format.md for the line format and README.md for usage.

Names are imported on first use (PEP 562): ``opentelemetry-instrument`` loads this
package's entry points on every run, and a run that does not name ``logxpy`` should not
pay for the writer, the encoder and the SDK glue.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import AsyncConfig, AsyncMetrics, sync_mode
    from ._destinations import DEFAULT_PATH, AsyncConsoleDestination, AsyncFileDestination, Destination
    from ._format import LineMode
    from ._native import speedups_in_use
    from ._policies import DropReason, QueuePolicy
    from ._writer import AsyncWriter
    from .exporter import LogxpyLogRecordExporter
    from .fallback import FallbackLogRecordExporter
    from .logging_handler import LogxpyLoggingHandler
    from .processor import LogxpyLogRecordProcessor
    from .reader import read_file
    from .span_processor import LogxpySpanProcessor

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_WHERE: dict[str, str] = {
    "DEFAULT_PATH": "._destinations",
    "AsyncConsoleDestination": "._destinations",
    "AsyncFileDestination": "._destinations",
    "LineMode": "._format",
    "speedups_in_use": "._native",
    "AsyncConfig": "._config",
    "AsyncMetrics": "._config",
    "AsyncWriter": "._writer",
    "Destination": "._destinations",
    "DropReason": "._policies",
    "QueuePolicy": "._policies",
    "sync_mode": "._config",
    "LogxpyLogRecordExporter": ".exporter",
    "FallbackLogRecordExporter": ".fallback",
    "LogxpyLoggingHandler": ".logging_handler",
    "LogxpyLogRecordProcessor": ".processor",
    "read_file": ".reader",
    "LogxpySpanProcessor": ".span_processor",
}

__all__ = [
    "DEFAULT_PATH",
    "AsyncConfig",
    "AsyncConsoleDestination",
    "AsyncFileDestination",
    "AsyncMetrics",
    "AsyncWriter",
    "Destination",
    "DropReason",
    "FallbackLogRecordExporter",
    "LineMode",
    "LogxpyLogRecordExporter",
    "LogxpyLogRecordProcessor",
    "LogxpyLoggingHandler",
    "LogxpySpanProcessor",
    "QueuePolicy",
    "__version__",
    "read_file",
    "speedups_in_use",
    "sync_mode",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'logxpy_otel' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # the next lookup is a plain global
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
