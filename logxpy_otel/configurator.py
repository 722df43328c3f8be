"""``OTEL_PYTHON_CONFIGURATOR=logxpy``: the stock SDK set-up, with our processor for ``logxpy``.

Under ``OTEL_LOGS_EXPORTER`` the SDK wraps every log exporter in a
``BatchLogRecordProcessor``, whose queue drops the oldest records when full whatever
our policy says. Selected by name, this configurator does exactly what the stock one
does, except that the ``logxpy`` entry becomes a :class:`LogxpyLogRecordProcessor`
directly: our bounded queue, our policy, one hop.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter

from .exporter import LogxpyLogRecordExporter
from .processor import LogxpyLogRecordProcessor

__all__ = ["CONFIGURATOR_NAME", "LogxpyConfigurator"]

#: The entry-point name, and the value of ``OTEL_PYTHON_CONFIGURATOR`` that selects it.
CONFIGURATOR_NAME = "logxpy"
_OTEL_PYTHON_CONFIGURATOR = "OTEL_PYTHON_CONFIGURATOR"


def _export_processor(exporter: LogRecordExporter, *args: Any, **kwargs: Any) -> LogRecordProcessor:
    """The SDK's choice (a batch processor) for every exporter but ours."""
    if isinstance(exporter, LogxpyLogRecordExporter):
        return LogxpyLogRecordProcessor(destinations=exporter.writer.destinations, mode=exporter.mode)
    return BatchLogRecordProcessor(exporter, *args, **kwargs)


class LogxpyConfigurator(_OTelSDKConfigurator):
    """The stock configurator; when selected by name, ``logxpy`` logs skip the batch processor.

    ``opentelemetry-instrument`` loads the first configurator it finds when
    ``OTEL_PYTHON_CONFIGURATOR`` is unset; then this one behaves exactly as the stock one.
    """

    def _configure(self, **kwargs: Any) -> None:
        if os.environ.get(_OTEL_PYTHON_CONFIGURATOR, "").strip() == CONFIGURATOR_NAME:
            kwargs.setdefault("export_log_record_processor", _export_processor)
        super()._configure(**kwargs)  # type: ignore[no-untyped-call]
