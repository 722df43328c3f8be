"""Builds the encoder and writer of the OTel glue from arguments, options, environment, defaults.

One resolution for the processor and the exporter alike: an explicit argument wins,
then the ``OTEL_EXPORTER_LOGXPY_*`` variable, then the default (see ``_settings``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Self

from opentelemetry.metrics import MeterProvider

from . import _self_metrics, _settings
from ._config import FLUSH_TIMEOUT_MS, flush_timeout_s
from ._destinations import make_destinations
from ._diagnostics import logger
from ._format import LineEncoder, LineMode
from ._writer import AsyncConfig, AsyncMetrics, AsyncWriter, Destination

if TYPE_CHECKING:
    from .span_processor import LogxpySpanProcessor

__all__ = ["WriterOwner", "build"]


def build(
    path: str | os.PathLike[str] | None,
    *,
    destinations: Iterable[Destination] | None,
    config: AsyncConfig | None,
    mode: LineMode | str | None,
    file_mode: int | None,
    options: Mapping[str, Any],
    async_default: bool,
) -> tuple[LineEncoder, AsyncWriter]:
    """The encoder and the (started) writer for one processor or exporter.

    ``options`` are setting names as in declarative configuration (``file``,
    ``queue_policy``, ``flush_interval``...); a bad one raises ``ValueError``.
    """
    _check_keywords(path, destinations, config, file_mode)
    parsed = {key: _settings.parse_option(key, value) for key, value in options.items()}

    def pick(explicit: Any, key: str, *, env: bool = True) -> Any:
        """An explicit argument, else the option of that name, else (if asked) the env."""
        option = parsed.pop(key, None)
        if explicit is not None:
            return explicit
        return option if option is not None or not env else _settings.from_env(key)

    path = pick(path, "file", env=False)  # the env file only when there is no destination
    mode = _settings.parse_option("mode", pick(mode, "mode"))
    file_mode = pick(file_mode, "file_permissions")
    file_args = {}
    for key in _settings.FILE_OPTIONS:
        value = parsed.pop(key) if key in parsed else _settings.from_env(key)
        setting = _settings.OPTIONS[key]
        if value != setting.default:
            file_args[str(setting.file_arg)] = setting.to_arg(value) if setting.to_arg else value
    fields = {str(_settings.OPTIONS[key].field): value for key, value in parsed.items()}
    if config is None:
        # Resolved here, once: a keyword, else its variable, else the default.
        for key in _settings.CONFIG_OPTIONS:
            field = str(_settings.OPTIONS[key].field)
            if field not in fields:
                fields[field] = _settings.from_env(key)
        config = AsyncConfig(**fields) if async_default else AsyncConfig(async_enabled=False, **fields)
    elif fields:
        config = dataclasses.replace(config, **fields)  # a config object is taken as it is
    encoder = LineEncoder(mode)
    from_env = path is None and not destinations
    if from_env:
        path = _settings.from_env("file")
    file_args.setdefault("reopen_check_s", config.flush_interval_ms / 1000.0)
    destinations = list(destinations) if destinations is not None else None
    for destination in destinations or ():
        if not callable(destination):
            raise TypeError(f"destinations must be callables taking bytes; got {type(destination).__name__}")
    try:
        made = make_destinations(path, destinations, file_mode, **file_args)
    except OSError as exc:
        if not from_env:
            raise  # a path given in code: its error, at once
        made = _env_file_failed(path, exc, lambda p: make_destinations(p, None, file_mode, **file_args))
    writer = AsyncWriter(made, config)
    writer.start()
    return encoder, writer


def _env_file_failed(
    path: str | os.PathLike[str] | None, exc: OSError, make: Callable[[str], list[Destination]]
) -> list[Destination]:
    """The file the environment (or the default) names cannot be opened: as for any bad
    variable, a warning and the default, never the end of the SDK's set-up; when the
    default cannot be opened either, no file (each record counted as ``no_destination``)."""
    setting = _settings.OPTIONS["file"]
    default = str(setting.default)
    named = default if path is None else os.fspath(path)
    if named != default:
        logger.warning(
            "logxpy-otel: %s=%r cannot be opened (%s); using the default, %r",
            setting.env,
            named,
            exc.strerror or exc,
            default,
        )
        try:
            return make(default)
        except OSError as again:
            exc = again
    logger.warning(
        "logxpy-otel: no log file (%r cannot be opened: %s): records are counted as dropped (no_destination)",
        default,
        exc.strerror or exc,
    )
    return []


def _check_keywords(path: object, destinations: object, config: object, file_mode: object) -> None:
    """Keywords of the wrong type fail here, naming the keyword, not deep inside."""
    if path is not None and not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}")
    text = os.fspath(path) if isinstance(path, os.PathLike) else path
    if text is not None and (not isinstance(text, str) or not text.strip() or "\x00" in text):
        raise ValueError(f"path must be a non-empty file path without NUL characters; got {path!r}")
    not_iterable = isinstance(destinations, str | bytes) or not isinstance(destinations, Iterable)
    if destinations is not None and not_iterable:
        raise TypeError(f"destinations must be an iterable of callables; got {type(destinations).__name__}")
    if config is not None and not isinstance(config, AsyncConfig):
        raise TypeError(f"config must be an AsyncConfig; got {type(config).__name__}")
    if file_mode is not None and (
        isinstance(file_mode, bool) or not isinstance(file_mode, int) or not 0 <= file_mode <= 0o777
    ):
        raise ValueError(f"file_mode must be permissions from 0 to 0o777; got {file_mode!r}")


class WriterOwner:
    """What the processor and the exporter share: an encoder and a writer, built from the
    same arguments, with the same flush, shutdown and introspection.

    ``meter_provider``: report self-metrics there (``_self_metrics``); None (the default)
    reports them to the global meter provider when ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true``.
    """

    #: Whether the writer gets a thread by default (the exporter writes in the caller's).
    _ASYNC_DEFAULT = True

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        destinations: Iterable[Destination] | None = None,
        config: AsyncConfig | None = None,
        mode: LineMode | str | None = None,
        file_mode: int | None = None,
        meter_provider: MeterProvider | None = None,
        **options: Any,
    ) -> None:
        _self_metrics.check_provider(meter_provider)
        self._encoder, self._writer = build(
            path,
            destinations=destinations,
            config=config,
            mode=mode,
            file_mode=file_mode,
            options=options,
            async_default=self._ASYNC_DEFAULT,
        )
        self._shutdown = False
        self._built()
        self._observe(meter_provider)

    #: This owner's self-metrics, when they are on.
    _metrics_source: _self_metrics.WriterSource | None = None

    def _observe(self, meter_provider: MeterProvider | None) -> None:
        self._metrics_source = _self_metrics.observe_writer(
            self._writer, _self_metrics.component_type_of(self), meter_provider
        )

    def _built(self) -> None:
        """Called once the encoder and the writer exist; subclasses finish their set-up here."""

    @property
    def writer(self) -> AsyncWriter:
        return self._writer

    def span_processor(self) -> LogxpySpanProcessor:
        """A span processor writing spans as nested actions into this file, through this
        writer: add it with ``TracerProvider.add_span_processor`` (see
        :class:`~logxpy_otel.LogxpySpanProcessor`)."""
        from .span_processor import LogxpySpanProcessor

        return LogxpySpanProcessor(self)

    @property
    def mode(self) -> LineMode:
        return self._encoder.mode

    @property
    def metrics(self) -> AsyncMetrics:
        return self._writer.metrics

    def force_flush(self, timeout_millis: int | None = FLUSH_TIMEOUT_MS) -> bool:
        """Wait until every record handed over before the call is in the file (or the timeout)."""
        return self._writer.flush(flush_timeout_s(timeout_millis))

    def shutdown(self) -> None:
        """Flush, close open traces and the file; later records are dropped and counted."""
        self._shutdown = True
        if self._handed_over is None:
            self._writer.stop(self._writer.config.shutdown_timeout_ms / 1000.0)
        else:
            old = self._handed_over  # the destinations are the successor's now: do not close them
            for destination in old.destinations:
                old.remove_destination(destination)
            old.stop(old.config.shutdown_timeout_ms / 1000.0)
        if self._metrics_source is not None:
            self._metrics_source.close()  # final values from now on; the writer is let go

    #: This owner's own writer, once it writes through a successor's (see :meth:`taking_over`).
    _handed_over: AsyncWriter | None = None

    @classmethod
    def taking_over(cls, donor: WriterOwner) -> Self:
        """A new owner in ``donor``'s place: ``donor``'s encoder, destinations and settings, its own writer.

        For zero-code set-up, where a processor replaces the batch processor the SDK put
        around an exporter. Nothing is opened a second time, and from now on ``donor``
        (draining what its batch processor still holds) writes through the new writer
        too, so every record gets one numbering. ``donor``'s shutdown then leaves that
        writer to its new owner and stops only ``donor``'s own, without closing the
        destinations (that writer's open traces get no end line there: it is meant to
        have written nothing yet).
        """
        own = donor._writer
        threaded = cls._ASYNC_DEFAULT and not _settings.sync_requested()
        new = cls.__new__(cls)
        new._encoder = donor._encoder
        new._writer = AsyncWriter(own.destinations, dataclasses.replace(own.config, async_enabled=threaded))
        new._writer.start()
        new._shutdown = False
        new._built()
        source = donor._metrics_source
        new._observe(source.provider if source is not None else None)
        donor._handed_over, donor._writer = own, new._writer
        return new
