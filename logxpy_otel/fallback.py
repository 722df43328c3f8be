"""Local-file fallback for a network exporter: when the collector is down, logs go to disk.

``FallbackLogRecordExporter(primary, fallback)`` exports to ``primary`` (an OTLP
exporter, or any); a batch it fails (FAILURE or an exception) goes to ``fallback``, a
:class:`LogxpyLogRecordExporter` by default. ``logxpy-otel replay`` sends the file on.

The caller (the SDK's batch processor's worker) never waits on a dead network: live
sends run on this exporter's own thread (``logxpy-fallback``), and the caller waits for
one at most ``live_timeout_s``. A send that fails, or is still under way then, opens the
breaker: from then on batches go straight to the file, and the same thread finds out
when the collector is back with an empty request after a cool-down that doubles while it
stays down (1 s up to 60 s by default). No batch is held hostage by a probe. A send still
under way when it times out stays the thread's: delivered, or written to the file if it
fails, never both.

Self-metrics: with ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true`` (then to the global
meter provider) or a ``meter_provider=``, it reports what an operator needs while the
collector is down, with ``otel.component.type`` ``logxpy_fallback_log_exporter`` and
``otel.component.name`` ``logxpy_fallback_log_exporter/<n>``:

* ``logxpy.fallback.records`` (counter, ``{log_record}``) and ``logxpy.fallback.batches``
  (counter, ``{batch}``), by ``logxpy.fallback.route``: ``live`` (the collector accepted
  them) or ``file`` (written to the local file instead; ``logxpy-otel replay`` sends them on);
* ``logxpy.fallback.failures`` (counter, ``{failure}``): live sends and probes that failed
  or timed out;
* ``logxpy.fallback.breaker.status`` (up-down counter, ``1``): 1 for the breaker's state
  and 0 for the others, by ``logxpy.fallback.breaker.state`` (``closed``, ``open``, ``probing``).

They read the same snapshot as :attr:`FallbackLogRecordExporter.metrics`; after
``shutdown()`` they keep its final values. The file exporter and the OTLP exporter report
their own (``otel.sdk.exporter.*``).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, set_value
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from . import _lifecycle, _sdk_private, _self_metrics
from ._config import FLUSH_TIMEOUT_MS, flush_timeout_s
from ._diagnostics import logger, raise_if_application_error
from ._otlp import OtlpForms, encoded_parts, otlp_encoder, otlp_form
from ._queue import Answer
from .exporter import LogxpyLogRecordExporter

__all__ = [
    "BreakerState",
    "FallbackLogRecordExporter",
    "FallbackMetrics",
    "LogxpyFallbackLogRecordExporter",
    "otlp_exporter",
]

_SUCCESS = LogRecordExportResult.SUCCESS
_FAILURE = LogRecordExportResult.FAILURE


class BreakerState(StrEnum):
    """Where live batches go: ``closed`` to the collector; ``open`` to the file (the
    collector is down); ``probing`` to the file while an empty request tests the collector."""

    CLOSED = "closed"
    OPEN = "open"
    PROBING = "probing"


@dataclass(frozen=True, slots=True)
class FallbackMetrics:
    """Batches and records that went to each side, how often the primary failed, the breaker."""

    #: Batches and records the collector accepted.
    primary_batches: int
    primary_records: int
    #: Batches and records written to the local file instead.
    fallback_batches: int
    fallback_records: int
    #: Live sends and probes that failed or timed out.
    primary_failures: int
    breaker_state: BreakerState

    @property
    def breaker_open(self) -> bool:
        return self.breaker_state is not BreakerState.CLOSED


class _Send:
    """One live send handed to the sender thread; ``done`` is set with its ``result``."""

    __slots__ = ("batch", "counted", "done", "filed", "result")

    def __init__(self, batch: Sequence[ReadableLogRecord]) -> None:
        self.batch = batch
        self.done = Answer()  # (set by the sender thread; a signal handler cannot wedge it)
        self.result = _FAILURE
        #: Counted as a failure already (it timed out; failing after that is the same failure).
        self.counted = False
        #: Its batch is claimed for the file: by shutdown (or a child's end) at its bound,
        #: or by the send's failure (whichever comes first files it; the other does not).
        #: Once no write to the file is under way (``_filing``), it is in the file.
        self.filed = False


class FallbackLogRecordExporter(LogRecordExporter):
    """Exports to ``primary``; what it cannot take goes to ``fallback`` (a local file).

    ``live_timeout_s`` bounds how long :meth:`export` waits for a live send (the SDK's
    batch processor's queue fills meanwhile). ``shutdown()`` and ``force_flush()`` are
    bounded in time even when the collector hangs. ``meter_provider``: where self-metrics
    go (see the module), also those of the default ``fallback``.
    """

    def __init__(
        self,
        primary: LogRecordExporter,
        fallback: LogRecordExporter | None = None,
        *,
        cooldown_s: float = 1.0,
        max_cooldown_s: float = 60.0,
        live_timeout_s: float = 0.5,
        shutdown_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        if not 0 < cooldown_s <= max_cooldown_s <= _MAX_SECONDS:
            raise ValueError(
                f"cooldown_s must be > 0 and <= max_cooldown_s <= {_MAX_SECONDS:g}; "
                f"got {cooldown_s!r}, {max_cooldown_s!r}"
            )
        _self_metrics.check_provider(meter_provider)
        for name, value in (("live_timeout_s", live_timeout_s), ("shutdown_timeout_s", shutdown_timeout_s)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= _MAX_SECONDS:
                raise ValueError(
                    f"{name} must be a number of seconds > 0 and <= {_MAX_SECONDS:g}; got {value!r}"
                )
        self.primary = primary
        self.fallback = (
            fallback if fallback is not None else LogxpyLogRecordExporter(meter_provider=meter_provider)
        )
        self._first_cooldown = cooldown_s
        self._max_cooldown = max_cooldown_s
        self._cooldown = cooldown_s
        self._live_timeout = live_timeout_s
        self._shutdown_timeout = shutdown_timeout_s
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._state = BreakerState.CLOSED
        self._retry_at = 0.0
        self._job: _Send | None = None
        self._inflight: _Send | None = None  # the send under way on the sender thread
        #: Writes to the file of sends' records under way (a failed send's, its refused
        #: records', a shutdown's): flushes and shutdowns wait for them, and the file is
        #: not closed under one.
        self._filing = 0
        self._busy = False  # a send or a probe is under way on the sender thread
        self._closed = False
        self._thread: threading.Thread | None = None
        self._live_batches = self._live_records = 0
        self._file_batches = self._file_records = 0
        self._failures = 0
        #: An OTLP primary's encoder: a failed send is first checked for records it
        #: refuses (the batch's fault), which must not open the breaker.
        self._encode = otlp_encoder() if _is_otlp(primary) else None
        #: Converted resources and scopes, for the sends' nearest forms (sender thread).
        self._forms = OtlpForms()
        self._refusal_said = False
        self._metrics_source = _self_metrics.observe_fallback(self, meter_provider)
        _lifecycle.reset_after_fork(self)
        _lifecycle.at_child_exit(self)

    def _at_child_exit(self) -> None:
        """A ``multiprocessing`` child's end, where no ``atexit`` hook runs (nor the SDK's
        shutdown): the SDK's batch processor in front hands over what it holds, and a send
        still under way at the shutdown bound is filed. Nothing is closed (where the child
        ends through ``atexit`` after all, the SDK's shutdown comes next, as usual)."""
        if self._closed:
            return
        bound = self._shutdown_timeout
        deadline = _lifecycle.exit_deadline(bound) or time.monotonic() + bound
        for feeder in _sdk_private.batch_feeders(self):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            _lifecycle.call_bounded(functools.partial(feeder.force_flush, int(left * 1000)), left)
        with self._cond:
            # (a send the breaker gave up on is hanging in the exporter's retries: the
            # process ends now, and waiting for it would only hold the end up)
            gave_up = self._state is not BreakerState.CLOSED
        self._file_unsettled(max(0.0, deadline - time.monotonic()), close=False, network=not gave_up)

    def _file_unsettled(self, timeout: float, *, close: bool, network: bool = True) -> None:
        """Wait (bounded) until no live send is under way (``network`` False: not for the
        collector's answer); then file a send handed over but not started, and one still
        under way that nobody filed (it may arrive too: said; its failure files nothing
        more); then wait for every file write of sends' records under way, whoever makes
        it (the file must not be closed under one). ``close``: no live send from then on."""
        self._wait_idle(timeout if network else 0.0)
        with self._cond:
            if close:
                self._closed = True
            pending, self._job = self._job, None
            if pending is not None:
                self._busy = False  # (the sender thread will never see it)
                self._filing += 1
            inflight, filing = self._inflight, None
            if inflight is not None and not inflight.filed:
                inflight.filed, filing = True, inflight.batch  # (checked here, under the lock)
                self._filing += 1
            self._cond.notify_all()
        if pending is not None:  # handed over but never started
            pending.result = self._filed(pending.batch)
            pending.done.set()
        if filing is not None:
            self._filed(filing)
            logger.warning(
                "logxpy-otel: a live send was still under way at %s; its batch may arrive twice",
                "shutdown" if close else "the process's end",
            )
        with self._cond:  # (the disk, not the network)
            self._cond.wait_for(lambda: not self._filing, self._shutdown_timeout)

    def _after_fork_in_child(self) -> None:
        """In a forked child: the send under way, or handed over, is the parent's (the
        parent delivers it, or files it, alone); the child has no sender thread yet, and
        new locks (another thread may have held one at the fork)."""
        self._cond = threading.Condition(threading.Lock())
        self._job = self._inflight = None
        self._busy = False
        self._filing = 0  # (the parent's writes)
        self._thread = None
        if self._state is BreakerState.PROBING:  # (the parent's probe: the child makes its own)
            self._state = BreakerState.OPEN
            self._retry_at = self._clock()

    @property
    def metrics(self) -> FallbackMetrics:
        with self._cond:
            return FallbackMetrics(
                primary_batches=self._live_batches,
                primary_records=self._live_records,
                fallback_batches=self._file_batches,
                fallback_records=self._file_records,
                primary_failures=self._failures,
                breaker_state=self._state,
            )

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        with self._cond:
            live = self._state is BreakerState.CLOSED and not self._busy and not self._closed
            if live:
                job = self._job = _Send(batch)
                self._busy = True
                self._start_locked()
                self._cond.notify_all()
            elif self._state is BreakerState.OPEN and not self._closed:
                self._start_locked()  # (a forked child has no thread yet to probe with)
        if not live:
            return self._to_file(batch)
        if job.done.wait(self._live_timeout):
            return job.result
        # Still under way: the sender thread keeps the batch (delivered, or to the file if
        # it fails); meanwhile batches go to the file, without waiting on the network.
        with self._cond:
            if not job.done.is_set():
                self._failed_locked(job)
                if self._state is BreakerState.CLOSED:
                    self._open_locked(f"no answer within {self._live_timeout:g} s")
        return _SUCCESS

    def _to_file(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        try:
            result = self.fallback.export(batch)
        except Exception as exc:  # noqa: BLE001 - a broken fallback must not break the SDK's worker
            # The application's alarm goes on (its batch is not counted kept: whether the
            # file took it whole, that exception does not say; the file's metrics count it).
            raise_if_application_error(exc)
            logger.error("logxpy-otel: the fallback exporter raised %s", type(exc).__name__)
            result = _FAILURE
        if result is _SUCCESS:  # (what the file did not keep is not counted as kept)
            with self._cond:
                self._file_batches += 1
                self._file_records += len(batch)
        return result

    def _filed(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """:meth:`_to_file` of a send's records, counted in ``_filing`` (taken by the
        caller, under the lock) until it is done."""
        try:
            return self._to_file(batch)
        finally:
            with self._cond:
                self._filing -= 1
                self._cond.notify_all()

    # -- the sender thread -------------------------------------------------------------

    def _start_locked(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="logxpy-fallback", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))  # our requests are not the app's
        while True:
            with self._cond:
                while True:
                    job, self._job = self._job, None
                    if job is not None:
                        self._inflight = job
                        break
                    if self._state is BreakerState.OPEN and not self._closed:
                        wait = self._retry_at - self._clock()
                        if wait <= 0:
                            self._state = BreakerState.PROBING
                            self._busy = True
                            break
                        self._cond.wait(wait)
                    elif self._closed:
                        return
                    else:
                        self._cond.wait()
            if job is not None:
                self._send(job)
            else:
                self._probe()

    def _send(self, job: _Send) -> None:
        batch, result = job.batch, _SUCCESS
        sent = self._nearest(batch)
        error = _try_export(self.primary, sent)
        if error is not None and (refused := self._refused(sent)):
            # The batch's fault, not the collector's: those records go to the file (replay
            # sets them aside), the others are sent again.
            skip = set(refused)
            bad = [batch[i] for i in refused]
            batch = [record for i, record in enumerate(batch) if i not in skip]
            sent = [record for i, record in enumerate(sent) if i not in skip]
            with self._cond:
                # (unless shutdown filed the whole batch meanwhile; if it files later, it
                # files what is left of the send)
                mine, job.batch = not job.filed, batch
                self._filing += mine
            if mine:
                result = self._filed(bad)
            error = _try_export(self.primary, sent) if sent else None
        if error is None:
            with self._cond:
                if batch:  # (none left to send: no answer to go by)
                    self._live_batches += 1
                    self._live_records += len(batch)
                    if self._state is not BreakerState.CLOSED:  # it answered after all: it is up
                        self._close_locked()
        else:
            with self._cond:
                self._failed_locked(job)
                if self._state is BreakerState.CLOSED:
                    self._open_locked(error)
                filed, job.filed = job.filed, True
                self._filing += not filed
            if not filed and self._filed(batch) is not _SUCCESS:
                result = _FAILURE
        job.result = result
        with self._cond:
            self._busy = False
            self._inflight = None
            self._cond.notify_all()
        job.done.set()

    def _nearest(self, batch: Sequence[ReadableLogRecord]) -> Sequence[ReadableLogRecord]:
        """``batch`` as an OTLP primary is sent it: each record in the nearest form OTLP
        carries (docs/format.md, "Replay to OTLP"), as replay sends it from the file. The
        encoder would drop an attribute it cannot encode, with a log line only. The records
        themselves are left as they are: the file, if they go there, keeps them whole."""
        if self._encode is None:
            return batch
        sent = []
        for record in batch:
            try:
                sent.append(otlp_form(record, self._forms)[0])
            except Exception:  # noqa: BLE001 - a hostile value: as it is (the encoder decides), never the thread's end
                sent.append(record)
        return sent

    def _refused(self, batch: Sequence[ReadableLogRecord]) -> list[int]:
        """The records of ``batch`` (indexes) an OTLP primary's encoder refuses; none when
        the primary is not an OTLP exporter, or when it takes them all (then a failed send
        is the collector's)."""
        if self._encode is None or not batch:
            return []
        refused = sorted(encoded_parts(batch, self._encode, _NO_LIMIT)[0])
        if refused and not self._refusal_said:
            self._refusal_said = True
            logger.warning(
                "logxpy-otel: the OTLP exporter cannot encode %d record(s) of a batch, even in "
                "the nearest form OTLP carries (a severity_text that is not a string, say): they "
                "go to the local file, where logxpy-otel replay sets them aside with the reason; "
                "the others are sent (said once)",
                len(refused),
            )
        return refused

    def _failed_locked(self, job: _Send) -> None:
        """Count ``job``'s failure, once (a send that timed out and then failed is one)."""
        if not job.counted:
            job.counted = True
            self._failures += 1

    def _probe(self) -> None:
        """An empty request: does the collector answer again? No batch waits on it."""
        error = _try_export(self.primary, ())
        with self._cond:
            self._busy = False
            if error is None:
                self._close_locked()
            else:
                self._failures += 1
                self._open_locked(error)
            self._cond.notify_all()

    def _open_locked(self, why: str) -> None:
        cooldown = self._cooldown
        self._state = BreakerState.OPEN
        self._retry_at = self._clock() + cooldown
        self._cooldown = min(cooldown * 2, self._max_cooldown)
        self._cond.notify_all()
        # Once per cool-down at most: on stderr unless the application routes our logger.
        logger.warning(
            "logxpy-otel: the collector is unreachable (%s); records go to the local file; "
            "next try in %.1f s",
            why,
            cooldown,
        )

    def _close_locked(self) -> None:
        self._state = BreakerState.CLOSED
        self._cooldown = self._first_cooldown
        logger.warning(
            "logxpy-otel: the collector answers again; %d record(s) kept in the local file so far "
            "(send them with: logxpy-otel replay)",
            self._file_records,
        )

    # -- flush and shutdown --------------------------------------------------------------

    def _wait_idle(self, timeout: float) -> bool:
        """Wait until no live send is under way and none of their records is on its way to
        the file (a probe does not hold records; nor does a send whose batch is in the file
        already)."""
        with self._cond:
            return self._cond.wait_for(self._idle_locked, timeout)

    def _idle_locked(self) -> bool:
        """No send handed over, none under way but one whose batch is claimed for the file,
        and no write to the file under way (then a claimed batch is in it)."""
        inflight = self._inflight
        return self._job is None and (inflight is None or inflight.filed) and not self._filing

    def force_flush(self, timeout_millis: int | None = FLUSH_TIMEOUT_MS) -> bool:
        timeout = flush_timeout_s(timeout_millis)
        deadline = time.monotonic() + timeout
        idle = self._wait_idle(timeout)
        left = max(0.0, deadline - time.monotonic())
        primary_ok = _lifecycle.call_bounded(lambda: self.primary.force_flush(int(left * 1000)), left)
        left = max(0, int((deadline - time.monotonic()) * 1000))
        try:
            file_ok = self.fallback.force_flush(left)
        except Exception as exc:  # noqa: BLE001 - a broken fallback must not break the SDK's flush
            logger.error("logxpy-otel: the fallback exporter's flush raised %s", type(exc).__name__)
            file_ok = False
        return idle and primary_ok is True and file_ok is True

    def shutdown(self) -> None:
        """Wait (bounded) for a live send under way, then shut both sides down.

        A send still under way at the bound is also written to the file: the process may
        be about to end, and a record sent twice is better than one lost.
        """
        deadline = time.monotonic() + self._shutdown_timeout
        self._file_unsettled(self._shutdown_timeout, close=True)
        _lifecycle.call_bounded(self.primary.shutdown, max(0.0, deadline - time.monotonic()))
        try:
            self.fallback.shutdown()  # type: ignore[no-untyped-call]
        except Exception as exc:  # noqa: BLE001 - as its export: never into the SDK's shutdown
            logger.error("logxpy-otel: the fallback exporter's shutdown raised %s", type(exc).__name__)
        if self._metrics_source is not None:
            self._metrics_source.close()  # final values from now on


#: The longest cool-down or timeout a setting may ask for (one day).
_MAX_SECONDS = 86_400.0


#: No size limit when looking for the records the encoder refuses (the exporter has its own).
_NO_LIMIT = 1 << 62


def _is_otlp(exporter: LogRecordExporter) -> bool:
    """One of the OpenTelemetry OTLP log exporters (HTTP or gRPC), which encode with ``encode_logs``."""
    return type(exporter).__module__.startswith("opentelemetry.exporter.otlp.proto.")


def _try_export(exporter: LogRecordExporter, batch: Sequence[ReadableLogRecord]) -> str | None:
    """Export; None when accepted, else why not (an exception's type, never its text)."""
    try:
        result = exporter.export(batch)
    except Exception as exc:  # noqa: BLE001 - a raising exporter is a failed export
        return type(exc).__name__
    return None if result is _SUCCESS else "the export failed"


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
        protocol = _protocol_from_env()
    elif protocol not in _PROTOCOLS:
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


def _protocol_from_env() -> str:
    """``OTEL_EXPORTER_OTLP_LOGS_PROTOCOL``, then ``OTEL_EXPORTER_OTLP_PROTOCOL``, then
    ``http/protobuf``; a value this fallback cannot send with (``http/json``, which the
    Python OTLP exporters do not offer; a typo) is a warning and the default, as for any
    bad variable: never the end of the SDK's set-up."""
    for name in ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = os.environ.get(name, "").strip()
        if value:
            if value.lower() in _PROTOCOLS:
                return value.lower()
            logger.warning(
                "logxpy-otel: %s=%r is not a protocol the fallback can send with (%s); using http/protobuf",
                name,
                value,
                ", ".join(_PROTOCOLS),
            )
            break
    return "http/protobuf"


class LogxpyFallbackLogRecordExporter(FallbackLogRecordExporter):
    """``OTEL_LOGS_EXPORTER=logxpy_fallback``: OTLP (from the ``OTEL_EXPORTER_OTLP_*``
    variables), falling back to the logxpy file (``OTEL_EXPORTER_LOGXPY_*``)."""

    def __init__(self, *, meter_provider: MeterProvider | None = None, **options: Any) -> None:
        otlp = otlp_exporter()  # (first: a failure here leaves no file open behind it)
        file = LogxpyLogRecordExporter(meter_provider=meter_provider, **options)
        super().__init__(otlp, file, meter_provider=meter_provider)
