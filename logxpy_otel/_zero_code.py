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

With ``OTEL_EXPORTER_LOGXPY_SPANS=true`` it also adds a :class:`~logxpy_otel.LogxpySpanProcessor`
sharing that processor's writer to the global tracer provider: spans become nested
actions of their trace's tree in the same file.

This needs private SDK state (:mod:`logxpy_otel._sdk_private`). If it is not what we
expect, the batch processor stays (the records are written, more slowly) and one
warning says so. A run that does not name ``logxpy`` in ``OTEL_LOGS_EXPORTER`` only reads
that variable here: no output, no file, no import.

Python's ``logging``, when captured (logging auto-instrumentation: the
``opentelemetry-instrumentation-logging`` handler, attached by its instrumentor, or the
SDK's deprecated one, attached by the configurator under
``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true``), goes through that OTel
``LoggingHandler`` -> SDK ``emit`` -> processors. :func:`post_instrument`, the
``opentelemetry_post_instrument`` hook (after the instrumentors), puts a
:class:`~logxpy_otel.LogxpyLoggingHandler` in that handler's place on the root logger
when ``logxpy`` is the only logs exporter (the provider holds our processor and nothing
else): the same lines, written straight into our processor's writer, without the SDK's
steps in between. Its level, filters, formatter and code-attribute setting are the
replaced handler's; for the SDK's handler, also its meaning of a record. When other
exporters are configured too, the OTel handler stays: their records must go through the
SDK. Which path a run got shows on the root logger: ``logging.getLogger().handlers``
holds a ``LogxpyLoggingHandler`` where it was replaced, an OTel ``LoggingHandler`` where
not.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

    from .logging_handler import LogxpyLoggingHandler
    from .processor import LogxpyLogRecordProcessor

__all__ = [
    "install",
    "install_logging_handler",
    "install_span_processor",
    "post_instrument",
    "pre_instrument",
]

#: Our exporter's entry-point name in ``opentelemetry_logs_exporter``.
EXPORTER_NAME = "logxpy"
#: The entry-point name this package registered in ``opentelemetry_configurator`` before
#: this hook replaced it; still found in some set-ups, where it now selects no configurator.
_OLD_CONFIGURATOR = "logxpy"


#: The fallback's entry-point name (OTLP, and our file when the collector is down).
FALLBACK_NAME = "logxpy_fallback"
#: ``environment_variables.OTEL_EXPORTER_LOGXPY_SPANS``, read here without importing it
#: (a run that does not ask for ``logxpy`` imports nothing of ours).
_SPANS_VARIABLE = "OTEL_EXPORTER_LOGXPY_SPANS"


def _names() -> list[str]:
    """The exporters ``OTEL_LOGS_EXPORTER`` names, read as the SDK reads it."""
    return [name.strip() for name in os.environ.get("OTEL_LOGS_EXPORTER", "").split(",")]


def _asked() -> bool:
    """Whether ``OTEL_LOGS_EXPORTER`` names ``logxpy``."""
    return EXPORTER_NAME in _names()


def _check_fallback_set_up(names: list[str]) -> None:
    """``logxpy_fallback`` beside what it cannot go with: one warning each."""
    from . import _settings
    from ._diagnostics import logger

    if EXPORTER_NAME in names:
        logger.warning(
            "logxpy-otel: OTEL_LOGS_EXPORTER names both logxpy and logxpy_fallback: both write "
            "the file OTEL_EXPORTER_LOGXPY_FILE names (logxpy every record, logxpy_fallback "
            "those the collector does not take), so those are there twice, and logxpy-otel "
            "replay would send both copies; name one of them"
        )
    elif _settings.from_env(_settings.SPANS):
        logger.warning(
            "logxpy-otel: OTEL_EXPORTER_LOGXPY_SPANS=true needs OTEL_LOGS_EXPORTER=logxpy (spans "
            "nest in our processor's trees; logxpy_fallback's file is written behind the SDK's "
            "batch processor); spans are not written"
        )


def pre_instrument() -> None:
    """The ``opentelemetry_pre_instrument`` hook: our processor for ``OTEL_LOGS_EXPORTER=logxpy``.

    Never raises: ``opentelemetry-instrument`` would report the whole set-up as failed.
    """
    names = _names()
    if FALLBACK_NAME in names and (EXPORTER_NAME in names or os.environ.get(_SPANS_VARIABLE, "").strip()):
        try:
            _check_fallback_set_up(names)
        except Exception:  # noqa: BLE001 - never into the application's start-up
            pass
    if EXPORTER_NAME not in names or os.environ.get("OTEL_CONFIG_FILE", "").strip():
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
        processors = install(provider)
        from . import _settings

        if _settings.from_env(_settings.SPANS):
            install_span_processor(processors)
    except Exception:  # noqa: BLE001 - never into the application's start-up
        logger.warning("logxpy-otel: zero-code set-up failed; logs may not be written", exc_info=True)


def install_span_processor(processors: list[LogxpyLogRecordProcessor]) -> bool:
    """``OTEL_EXPORTER_LOGXPY_SPANS=true``: spans as nested actions in the file of our (first)
    processor, added to the global SDK tracer provider. False, with one warning, when there
    is none of either (spans need our processor in place: behind a batch processor records
    would reach the file after the end of their span)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import get_tracer_provider

    from ._diagnostics import logger

    tracer_provider = get_tracer_provider()
    if not processors or not isinstance(tracer_provider, TracerProvider):
        missing = "logxpy-otel's log processor" if not processors else "an SDK tracer provider"
        logger.warning(
            "logxpy-otel: OTEL_EXPORTER_LOGXPY_SPANS=true, but there is no %s; spans are not written", missing
        )
        return False
    try:
        span_processor = processors[0].span_processor()
    except ValueError as exc:  # mode=flat: no trees for spans to nest in
        logger.warning("logxpy-otel: OTEL_EXPORTER_LOGXPY_SPANS=true, but %s; spans are not written", exc)
        return False
    tracer_provider.add_span_processor(span_processor)
    return True


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


def post_instrument() -> None:
    """The ``opentelemetry_post_instrument`` hook: our logging handler in the OTel one's place.

    Runs after the instrumentors (the logging instrumentation attaches its handler in
    its own), when ``OTEL_LOGS_EXPORTER`` names ``logxpy``; see the module. Never raises.
    """
    if not _asked() or os.environ.get("OTEL_CONFIG_FILE", "").strip():
        return  # silent, as pre_instrument
    from ._diagnostics import logger

    try:
        from opentelemetry._logs import get_logger_provider

        install_logging_handler(get_logger_provider())
    except Exception:  # noqa: BLE001 - never into the application's start-up
        logger.warning(
            "logxpy-otel: zero-code logging set-up failed; stdlib logging goes through the OTel handler",
            exc_info=True,
        )


#: The private names of ``logging`` and of the OTel handlers that the swap below uses (the
#: SDK's own are in :mod:`logxpy_otel._sdk_private`): the OTel handler's provider
#: (``_logger_provider``) and code-attribute option (``_log_code_attributes``), how we tell
#: the handler the set-up attached from one the application attached with a provider of
#: its own; ``LoggingInstrumentor._logging_handler``, the handler its ``uninstrument()``
#: removes; ``logging._lock``, the lock ``addHandler``/``removeHandler`` hold.
_HANDLER_PROVIDER = "_logger_provider"
_HANDLER_CODE = "_log_code_attributes"
_INSTRUMENTOR_HANDLER = "_logging_handler"


def install_logging_handler(provider: object) -> list[LogxpyLoggingHandler]:
    """Put a :class:`LogxpyLoggingHandler` in the place of each OTel ``LoggingHandler`` of
    ``provider`` on the root logger, if ``provider`` holds our processor and nothing else;
    returns the handlers put in (none: the set-up stays as it is)."""
    import logging

    from opentelemetry.sdk._logs import LoggerProvider

    from . import _sdk_private
    from ._diagnostics import logger
    from .logging_handler import _sdk_flavoured
    from .processor import LogxpyLogRecordProcessor

    if not isinstance(provider, LoggerProvider):
        return []
    try:
        processors = _sdk_private.processors(provider)
    except _sdk_private.UnexpectedShape:
        return []  # pre_instrument said so already; the batch processor is in place anyway
    if len(processors) != 1 or type(processors[0]) is not LogxpyLogRecordProcessor:
        return []  # other exporters (or none of ours): their records need the SDK's path
    processor = processors[0]
    root = logging.getLogger()
    replaced: list[tuple[logging.Handler, LogxpyLoggingHandler]] = []
    for old in list(root.handlers):
        flavour = _otel_handler_flavour(old)
        if flavour is None or getattr(old, _HANDLER_PROVIDER, None) is not provider:
            continue
        code = flavour == "instrumentation" and getattr(old, _HANDLER_CODE, False) is True
        new = processor.logging_handler(level=old.level, logger_provider=provider, log_code_attributes=code)
        if flavour == "sdk":
            _sdk_flavoured(new)
        new.filters[:] = old.filters
        if old.formatter is not None:
            new.setFormatter(old.formatter)
        if not _swap(root, old, new):
            new.close()
            continue
        replaced.append((old, new))
    for old, new in replaced:
        _instrumentor_now_holds(old, new)
        _keep_on_root(new)
        try:
            old.close()  # out of logging's list of handlers; it holds nothing of its own
        except Exception:  # noqa: BLE001
            pass
        logger.debug(
            "logxpy-otel: stdlib logging goes straight to our writer (%s in place of %s)",
            type(new).__name__,
            type(old).__qualname__,
        )
    return [new for _, new in replaced]


def _otel_handler_flavour(handler: object) -> str | None:
    """``"instrumentation"`` for opentelemetry-instrumentation-logging's handler, ``"sdk"``
    for the SDK's deprecated one (exactly those classes), else None."""
    from opentelemetry.sdk._logs import LoggingHandler as SdkHandler

    if type(handler) is SdkHandler:
        return "sdk"
    try:
        from opentelemetry.instrumentation.logging.handler import LoggingHandler
    except ImportError:
        return None
    return "instrumentation" if type(handler) is LoggingHandler else None


def _swap(root: logging.Logger, old: logging.Handler, new: logging.Handler) -> bool:
    """``new`` in ``old``'s place among ``root``'s handlers, in one step (under the lock
    that ``addHandler`` holds): no record goes to both or to neither."""
    import contextlib
    import logging

    lock = getattr(logging, "_lock", None)
    with lock if lock is not None else contextlib.nullcontext():
        handlers = root.handlers
        for i, handler in enumerate(handlers):
            if handler is old:
                handlers[i] = new
                return True
    return False


def _instrumentor_now_holds(old: logging.Handler, new: logging.Handler) -> None:
    """``LoggingInstrumentor().uninstrument()`` removes the handler it attached: ours now."""
    try:
        from opentelemetry.instrumentation.logging import LoggingInstrumentor
    except ImportError:
        return
    if getattr(LoggingInstrumentor, _INSTRUMENTOR_HANDLER, None) is old:
        setattr(LoggingInstrumentor, _INSTRUMENTOR_HANDLER, new)


def _keep_on_root(handler: logging.Handler) -> None:
    """``logging.config.dictConfig``/``fileConfig`` and ``logging.basicConfig`` leave
    ``handler`` on the root logger, as the OTel set-up does for the handler it attached
    (it wraps the same three functions): taken off while they run, put back after."""
    import functools
    import logging
    import logging.config
    from collections.abc import Callable
    from typing import Any

    root = logging.getLogger()

    def keeping(config: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(config)
        def configure(*args: Any, **kwargs: Any) -> Any:
            removed = handler in root.handlers
            if removed:
                root.removeHandler(handler)
            try:
                return config(*args, **kwargs)
            finally:
                if removed:
                    root.addHandler(handler)

        return configure

    logging.config.fileConfig = keeping(logging.config.fileConfig)
    logging.config.dictConfig = keeping(logging.config.dictConfig)
    logging.basicConfig = keeping(logging.basicConfig)
