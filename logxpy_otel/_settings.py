"""Every setting in one place: its option name, environment variable, default and parser.

The same parser serves three sources: keyword arguments (and declarative-config YAML
keys), which raise ``ValueError`` on a bad value; and environment variables, which log a
warning naming the variable, the value, what is allowed and the default used, and go
on with the default (an exception there would abort the SDK's whole set-up).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from . import environment_variables as ev
from ._destinations import DEFAULT_PATH
from ._diagnostics import logger
from ._format import LineMode
from ._policies import QueuePolicy
from ._rotation import parse_rotate_when

__all__ = [
    "CONFIG_OPTIONS",
    "FIELD_DEFAULTS",
    "FILE_OPTIONS",
    "OPTIONS",
    "Setting",
    "check_field",
    "from_env",
    "parse_option",
    "sync_requested",
]


def _integer(least: int, most: int) -> Callable[[object], int]:
    """A parser of ints in ``[least, most]`` (decimal strings too)."""

    def parse(value: object) -> int:
        if isinstance(value, str):
            text = value.strip()
            if text.isascii() and text.removeprefix("+").isdigit() and len(text) <= 20:  # no huge conversions
                value = int(text)
        if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
            raise ValueError(f"an integer from {least} to {most}")
        return value

    return parse


def _milliseconds(most: float, least: float = 0.0) -> Callable[[object], float]:
    """A parser of durations in milliseconds, at most ``most``: above 0, or at least
    ``least`` when it is given."""

    bounds = f"from {least:g} to {most:.0f}" if least else f"> 0 and <= {most:.0f}"

    def parse(value: object) -> float:
        if isinstance(value, str) and value.strip().isascii():  # (float() takes any digits)
            try:
                value = float(value.strip())
            except ValueError:
                pass
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 < value <= most
            or value < least
        ):
            raise ValueError(f"a number of milliseconds {bounds}")
        return float(value)

    return parse


#: Ranges: large enough for any real use, small enough that no value can exhaust memory
#: (the queue's slots are allocated up front) or overflow a timeout.
MAX_QUEUE: Final = 1_000_000
HOUR_MS: Final = 3_600_000.0
DAY_MS: Final = 86_400_000.0
_queue_size = _integer(1, MAX_QUEUE)
_hour_ms = _milliseconds(HOUR_MS)
#: The writer wakes this often when idle: a value near 0 (5e-324 passed "> 0") spun it.
_interval_ms = _milliseconds(HOUR_MS, least=1.0)


def _choice(*allowed: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = value.strip().lower() if isinstance(value, str) else value
        if text not in allowed:
            raise ValueError("one of " + ", ".join(allowed))
        return str(text)

    return parse


def _octal_mode(value: object) -> int:
    """Permissions as chmod writes them: a string of octal digits (``"600"``, ``"0o640"``);
    an int is taken as a mode only where it cannot have meant its digits (YAML reads a bare
    ``400`` as the decimal 400, which as a mode is 0o620: group-writable, not what was
    written), so a bare int whose digits are all octal digits is refused."""
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        if text and all(c in "01234567" for c in text):
            value = int(text, 8)
    elif type(value) is int and value > 7 and set(str(value)) <= set("01234567"):
        raise ValueError(
            f'file permissions as a string of octal digits ("{value}" means 0o{value}), or the '
            f"file_mode keyword for an int (the int {value} is the mode 0o{value:o})"
        )
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise ValueError('file permissions in octal, 0 to 777 (e.g. "600" or "0o640")')
    return value


def _bool(value: object) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    if isinstance(value, bool):
        return value
    raise ValueError("true or false")


def _compress(value: object) -> bool:
    text = value.strip().lower() if isinstance(value, str) else value
    if text == "gzip" or text is True:  # (not ``in``: 1 == True would pass)
        return True
    if text in ("none", "") or text is False:
        return False
    raise ValueError("gzip or none")


def _fsync(value: object) -> str | float:
    text = value.strip().lower() if isinstance(value, str) else value
    if text in ("never", "batch"):
        return str(text)
    try:
        return _hour_ms(value)
    except ValueError:
        raise ValueError("never, batch, or a number of milliseconds between syncs, up to 3600000") from None


def _path(value: object) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise ValueError("a non-empty file path without NUL characters")
    return value


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: the keyword/YAML name, the environment variable, the default, the parser."""

    key: str
    env: str
    default: Any
    parse: Callable[[object], Any]
    #: The ``AsyncConfig`` field it sets, if any.
    field: str | None = None
    #: The ``AsyncFileDestination`` keyword it sets, if any, and how the value is turned
    #: into that argument (milliseconds into seconds, say).
    file_arg: str | None = None
    to_arg: Callable[[Any], Any] | None = None
    #: The default as docs/configuration.md says it, where its value would read otherwise
    #: (None: "off"); see :func:`shown_default`.
    shown: str | None = None


_POLICIES = tuple(p.value for p in QueuePolicy)

#: Every option, by its keyword / YAML name.
OPTIONS: Final[Mapping[str, Setting]] = {
    s.key: s
    for s in (
        Setting("file", ev.OTEL_EXPORTER_LOGXPY_FILE, DEFAULT_PATH, _path),
        Setting("mode", ev.OTEL_EXPORTER_LOGXPY_MODE, "tree", _choice(*(m.value for m in LineMode))),
        Setting("file_permissions", ev.OTEL_EXPORTER_LOGXPY_FILE_PERMISSIONS, 0o600, _octal_mode),
        Setting(
            "queue_policy", ev.OTEL_EXPORTER_LOGXPY_QUEUE_POLICY, "block", _choice(*_POLICIES), "queue_policy"
        ),
        Setting(
            "max_queue_size", ev.OTEL_EXPORTER_LOGXPY_MAX_QUEUE_SIZE, 10_000, _queue_size, "max_queue_size"
        ),
        # 4096: each batch costs the writer thread one wait for the GIL, which with
        # several threads logging lasts a few switch intervals; smaller batches let it
        # fall behind under load (README, "Performance").
        Setting("batch_size", ev.OTEL_EXPORTER_LOGXPY_BATCH_SIZE, 4_096, _queue_size, "batch_size"),
        Setting(
            "flush_interval",
            ev.OTEL_EXPORTER_LOGXPY_FLUSH_INTERVAL,
            200.0,
            _interval_ms,
            "flush_interval_ms",
        ),
        Setting("max_restarts", ev.OTEL_EXPORTER_LOGXPY_MAX_RESTARTS, 10, _integer(0, 1_000), "max_restarts"),
        Setting(
            "shutdown_timeout",
            ev.OTEL_EXPORTER_LOGXPY_SHUTDOWN_TIMEOUT,
            5_000.0,
            _hour_ms,
            "shutdown_timeout_ms",
        ),
        Setting(
            "trace_idle_timeout",
            ev.OTEL_EXPORTER_LOGXPY_TRACE_IDLE_TIMEOUT,
            5_000.0,
            _milliseconds(DAY_MS),
            "trace_idle_ms",
        ),
        Setting(
            "max_open_traces",
            ev.OTEL_EXPORTER_LOGXPY_MAX_OPEN_TRACES,
            1_000,
            _integer(1, MAX_QUEUE),
            "max_open_traces",
        ),
        Setting(
            "max_bytes",
            ev.OTEL_EXPORTER_LOGXPY_MAX_BYTES,
            None,
            _integer(1, 2**62),
            file_arg="max_bytes",
            shown="off",
        ),
        Setting(
            "rotate_when",
            ev.OTEL_EXPORTER_LOGXPY_ROTATE_WHEN,
            None,
            parse_rotate_when,
            file_arg="rotate_when",
            shown="off",
        ),
        Setting(
            "backup_count",
            ev.OTEL_EXPORTER_LOGXPY_BACKUP_COUNT,
            None,
            _integer(0, 100_000),
            file_arg="backup_count",
            shown="keep all",
        ),
        Setting(
            "compress", ev.OTEL_EXPORTER_LOGXPY_COMPRESS, False, _compress, file_arg="compress", shown="none"
        ),
        Setting("fsync", ev.OTEL_EXPORTER_LOGXPY_FSYNC, "never", _fsync, file_arg="fsync"),
        Setting("nofollow", ev.OTEL_EXPORTER_LOGXPY_NOFOLLOW, False, _bool, file_arg="nofollow"),
        Setting(
            "retry_timeout",
            ev.OTEL_EXPORTER_LOGXPY_RETRY_TIMEOUT,
            5_000.0,
            _hour_ms,
            file_arg="retry_timeout_s",
            to_arg=lambda ms: ms / 1000.0,
        ),
    )
}

_BY_FIELD: Final = {s.field: s for s in OPTIONS.values() if s.field}
#: The options that configure the log file itself.
FILE_OPTIONS: Final = tuple(key for key, s in OPTIONS.items() if s.file_arg)
#: The options that are fields of ``AsyncConfig``.
CONFIG_OPTIONS: Final = tuple(key for key, s in OPTIONS.items() if s.field)
#: ``AsyncConfig``'s field defaults, by field name (written once, above).
FIELD_DEFAULTS: Final[Mapping[str, Any]] = {str(s.field): s.default for s in OPTIONS.values() if s.field}


#: Zero-code only: write spans too (``LogxpySpanProcessor`` on the global tracer provider).
SPANS: Final = Setting("spans", ev.OTEL_EXPORTER_LOGXPY_SPANS, False, _bool)


def from_env(key: str | Setting) -> Any:
    """The setting's value from its environment variable, or its default.

    A bad value is logged as a warning (variable, value, what is allowed, default) and
    the default is used: zero-code set-up must never fail on one typo.
    """
    setting = OPTIONS[key] if isinstance(key, str) else key
    raw = os.environ.get(setting.env)
    if raw is None or not raw.strip():
        return setting.default
    try:
        return setting.parse(raw)
    except ValueError as exc:
        logger.warning(
            "logxpy-otel: %s=%r is not valid: expected %s; using the default %s",
            setting.env,
            raw,
            exc,
            shown_default(setting),
        )
        return setting.default


def shown_default(setting: Setting) -> str:
    """A setting's default as docs/configuration.md shows it (``off``, ``false``, ``200``,
    ``600``), for a warning that says it is used."""
    default = setting.default
    if setting.shown is not None:
        return setting.shown
    if setting.parse is _octal_mode:
        return f"{default:o}"
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return repr(default)


def check_field(field: str, value: object) -> Any:
    """An ``AsyncConfig`` field's value, parsed by its setting's one parser; ``ValueError``
    names ``AsyncConfig.<field>`` and what is allowed."""
    try:
        return _BY_FIELD[field].parse(value)
    except ValueError as exc:
        raise ValueError(f"AsyncConfig.{field} must be {exc}; got {value!r}") from None


def parse_option(key: str, value: object) -> Any:
    """A keyword-argument (or YAML) value, parsed; ``ValueError`` names the option and what is allowed."""
    setting = OPTIONS.get(key)
    if setting is None:
        raise ValueError(f"unknown logxpy-otel option {key!r}; known options: {', '.join(OPTIONS)}")
    try:
        return setting.parse(value)
    except ValueError as exc:
        raise ValueError(f"{key} must be {exc}; got {value!r}") from None


_TRUE: Final = frozenset(("1", "true", "yes", "on"))


def parse_flag(name: str, value: object) -> bool:
    """A true/false keyword that is not an option of the writer (``log_code_attributes``),
    read as options are (``"false"`` is false), and 0 or 1 as a configuration file may
    write them; ``ValueError`` names it."""
    if type(value) is int and value in (0, 1):
        return bool(value)
    try:
        return _bool(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be {exc}; got {value!r}") from None


def sync_requested() -> bool:
    """True when ``LOGXPY_SYNC`` asks for synchronous writes (1/true/yes/on, any case)."""
    return os.environ.get(ev.LOGXPY_SYNC, "").strip().lower() in _TRUE
