"""Local-file fallback for a network exporter: when the collector is down, logs go to disk.

``FallbackLogRecordExporter(primary, fallback)`` exports to ``primary`` (an OTLP
exporter, or any); a batch it fails (FAILURE or an exception) goes to ``fallback``, a
:class:`LogxpyLogRecordExporter` by default. A circuit breaker keeps a dead collector
from costing a network timeout on every batch: after a failure, batches go straight to
the file for a cool-down that doubles while the collector stays down (1 s up to 60 s by
default); then one batch probes the primary. ``logxpy-otel replay`` sends the file on.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from ._diagnostics import RateLimitedReporter
from .exporter import LogxpyLogRecordExporter

__all__ = ["FallbackLogRecordExporter", "FallbackMetrics", "LogxpyFallbackLogRecordExporter", "otlp_exporter"]


@dataclass(frozen=True, slots=True)
class FallbackMetrics:
    """Batches and records that went to each side, and how often the primary failed."""

    primary_batches: int
    primary_records: int
    fallback_batches: int
    fallback_records: int
    primary_failures: int
    breaker_open: bool


class FallbackLogRecordExporter(LogRecordExporter):
    """Exports to ``primary``; what it cannot take goes to ``fallback`` (a local file).

    ``shutdown()`` and ``force_flush()`` are bounded in time even when the collector
    hangs: the primary's are run on a helper thread and abandoned at the timeout.
    """

    def __init__(
        self,
        primary: LogRecordExporter,
        fallback: LogRecordExporter | None = None,
        *,
        cooldown_s: float = 1.0,
        max_cooldown_s: float = 60.0,
        shutdown_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < cooldown_s <= max_cooldown_s:
            raise ValueError(
                f"cooldown_s must be > 0 and <= max_cooldown_s; got {cooldown_s!r}, {max_cooldown_s!r}"
            )
        self.primary = primary
        self.fallback = fallback if fallback is not None else LogxpyLogRecordExporter()
        self._first_cooldown = cooldown_s
        self._max_cooldown = max_cooldown_s
        self._cooldown = cooldown_s
        self._shutdown_timeout = shutdown_timeout_s
        self._clock = clock
        self._open_until: float | None = None
        self._lock = threading.Lock()
        self._counts = [0, 0, 0, 0, 0]  # primary batches/records, fallback batches/records, failures
        self._report = RateLimitedReporter(
            "logxpy-otel: the primary exporter failed %d time(s); batches go to the local file%s"
        )

    @property
    def metrics(self) -> FallbackMetrics:
        with self._lock:
            c = self._counts
            return FallbackMetrics(c[0], c[1], c[2], c[3], c[4], self._open_until is not None)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        with self._lock:
            skip = self._open_until is not None and self._clock() < self._open_until
        if not skip:
            try:
                result = self.primary.export(batch)
            except Exception:  # noqa: BLE001 - a raising exporter is a failed export
                result = LogRecordExportResult.FAILURE
            with self._lock:
                if result is LogRecordExportResult.SUCCESS:
                    self._open_until = None
                    self._cooldown = self._first_cooldown
                    self._counts[0] += 1
                    self._counts[1] += len(batch)
                    return result
                self._counts[4] += 1
                self._open_until = self._clock() + self._cooldown
                cooldown, self._cooldown = self._cooldown, min(self._cooldown * 2, self._max_cooldown)
            self._report.note(1, f" (next try in {cooldown:.1f} s)")
        result = self.fallback.export(batch)
        with self._lock:
            self._counts[2] += 1
            self._counts[3] += len(batch)
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000.0
        primary_ok = _bounded(lambda: self.primary.force_flush(timeout_millis), timeout_millis / 1000.0)
        left = max(0, int((deadline - time.monotonic()) * 1000))
        return bool(primary_ok) and self.fallback.force_flush(left)

    def shutdown(self) -> None:
        _bounded(self.primary.shutdown, self._shutdown_timeout)
        self.fallback.shutdown()  # type: ignore[no-untyped-call]


def _bounded(call: Callable[[], Any], timeout: float) -> Any:
    """``call()`` on a daemon thread, waited for at most ``timeout`` seconds (None if it hangs)."""
    result: list[Any] = [None]

    def run() -> None:
        try:
            result[0] = call()
        except Exception:  # noqa: BLE001 - a failing flush or shutdown is a False/None result
            result[0] = False

    thread = threading.Thread(target=run, name="logxpy-fallback-bounded", daemon=True)
    thread.start()
    thread.join(timeout)
    return None if thread.is_alive() else result[0]


_PROTOCOLS = ("http/protobuf", "grpc")


def otlp_exporter(
    protocol: str | None = None,
    endpoint: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
) -> LogRecordExporter:
    """An OTLP log exporter; what is not given comes from ``OTEL_EXPORTER_OTLP_*`` as usual.

    ``protocol``: ``http/protobuf`` (default, as the OTel spec says) or ``grpc``; unset, it
    is ``OTEL_EXPORTER_OTLP_LOGS_PROTOCOL``, then ``OTEL_EXPORTER_OTLP_PROTOCOL``.
    """
    if protocol is None:
        protocol = (
            os.environ.get("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL")
            or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        ).strip()
    if protocol not in _PROTOCOLS:
        raise ValueError(f"OTLP protocol must be one of {', '.join(_PROTOCOLS)}; got {protocol!r}")
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as Grpc

            insecure = endpoint.startswith("http://") if endpoint else None
            return Grpc(endpoint=endpoint, insecure=insecure, headers=headers, timeout=timeout)
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as Http

        if endpoint and endpoint.rstrip("/").count("/") == 2:  # scheme://host:port only
            endpoint = endpoint.rstrip("/") + "/v1/logs"
        return Http(endpoint=endpoint, headers=headers, timeout=timeout)
    except ImportError as exc:
        raise ImportError(
            f"the OTLP {protocol} log exporter is not installed; "
            "install it with: pip install 'logxpy-otel[otlp]'"
        ) from exc


class LogxpyFallbackLogRecordExporter(FallbackLogRecordExporter):
    """``OTEL_LOGS_EXPORTER=logxpy_fallback``: OTLP (from the ``OTEL_EXPORTER_OTLP_*``
    variables), falling back to the logxpy file (``OTEL_EXPORTER_LOGXPY_*``)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(otlp_exporter(), LogxpyLogRecordExporter(**options))
