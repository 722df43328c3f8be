"""Zero code: under ``opentelemetry-instrument``, ``OTEL_LOGS_EXPORTER=logxpy`` gets our processor.

The SDK's configurator wraps every exporter named in ``OTEL_LOGS_EXPORTER`` in a
``BatchLogRecordProcessor``, whose queue drops records when full whatever our policy
says, and which adds a hop. ``opentelemetry-instrument`` calls every
``opentelemetry_pre_instrument`` entry point right after the configurator, before the
instrumentors. Ours, :func:`pre_instrument`, replaces on the provider the batch
processor around our ``logxpy`` exporter with a :class:`LogxpyLogRecordProcessor` in
its place: the same file (not opened again), encoder and settings, one writer for the
records the batch processor still held and all later ones. Other exporters, and
``logxpy_fallback`` (whose OTLP side must not make the application wait), keep their
batch processor.

This needs private SDK state (:mod:`logxpy_otel._sdk_private`). If it is not what we
expect, the batch processor stays (the records are written, more slowly) and one
warning says so. A run that does not name ``logxpy`` in ``OTEL_LOGS_EXPORTER`` only reads
that variable here: no output, no file, no import.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .processor import LogxpyLogRecordProcessor

__all__ = ["install", "pre_instrument"]

#: Our exporter's entry-point name in ``opentelemetry_logs_exporter``.
EXPORTER_NAME = "logxpy"
#: The entry-point name this package registered in ``opentelemetry_configurator`` before
#: this hook replaced it; still found in some set-ups, where it now selects no configurator.
_OLD_CONFIGURATOR = "logxpy"


def _asked() -> bool:
    """Whether ``OTEL_LOGS_EXPORTER`` names ``logxpy``, read as the SDK reads it."""
    names = os.environ.get("OTEL_LOGS_EXPORTER", "")
    return EXPORTER_NAME in (name.strip() for name in names.split(","))


def pre_instrument() -> None:
    """The ``opentelemetry_pre_instrument`` hook: our processor for ``OTEL_LOGS_EXPORTER=logxpy``.

    Never raises: ``opentelemetry-instrument`` would report the whole set-up as failed.
    """
    if not _asked() or os.environ.get("OTEL_CONFIG_FILE", "").strip():
        return  # not ours to do; a declarative configuration file says which processors it wants
    from ._diagnostics import logger

    try:
        from opentelemetry._logs import get_logger_provider
        from opentelemetry.sdk._logs import LoggerProvider

        provider = get_logger_provider()
        if not isinstance(provider, LoggerProvider):
            if os.environ.get("OTEL_PYTHON_CONFIGURATOR", "").strip() == _OLD_CONFIGURATOR:
                hint = "remove OTEL_PYTHON_CONFIGURATOR=logxpy: it selects no configurator any more"
            else:
                hint = "install opentelemetry-distro, whose configurator sets it up"
            logger.warning(
                "logxpy-otel: OTEL_LOGS_EXPORTER names logxpy, but no OpenTelemetry SDK logger "
                "provider was set up (%s)",
                hint,
            )
            return
        install(provider)
    except Exception:  # noqa: BLE001 - never into the application's start-up
        logger.warning("logxpy-otel: zero-code set-up failed; logs may not be written", exc_info=True)


def install(provider: object) -> list[LogxpyLogRecordProcessor]:
    """Replace each batch processor around a ``logxpy`` exporter on ``provider`` with our
    processor, in its place; returns the processors put in.

    The batch processor is then shut down: what it held goes through the exporter into the
    processor's writer, and the exporter's shutdown leaves that writer running. If the
    SDK's private state is not as expected, nothing changes and one warning is logged.
    """
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from . import _sdk_private
    from ._diagnostics import logger
    from .exporter import LogxpyLogRecordExporter
    from .processor import LogxpyLogRecordProcessor

    if not isinstance(provider, LoggerProvider):
        return []
    try:
        found: list[tuple[BatchLogRecordProcessor, LogxpyLogRecordExporter]] = []
        for batch in _sdk_private.processors(provider):
            if isinstance(batch, BatchLogRecordProcessor):
                exporter = _sdk_private.batch_exporter(batch)
                # exactly ours, as `logxpy` builds it (logxpy_fallback's is another class)
                if type(exporter) is LogxpyLogRecordExporter:
                    found.append((batch, exporter))
        if not found:
            return []
        pairs = [(batch, LogxpyLogRecordProcessor.taking_over(exporter)) for batch, exporter in found]
        replaced = _sdk_private.replace_processors(provider, pairs)
    except _sdk_private.UnexpectedShape as exc:
        logger.warning(
            "logxpy-otel: this opentelemetry-sdk's logger provider is not laid out as expected (%s); "
            "logxpy records go through the SDK's batch processor instead of ours",
            exc,
        )
        return []
    for batch in replaced:
        try:
            batch.shutdown()  # drains into our writer; no new record reaches it
        except Exception:  # noqa: BLE001
            logger.warning("logxpy-otel: the replaced batch processor failed to shut down", exc_info=True)
    return [processor for _, processor in pairs]
