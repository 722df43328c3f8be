"""Text helpers of ``logxpy-otel view``: colours, times, durations, values, tree branches.

Everything here turns parsed line content into one line of terminal text. Text from the
file (messages, names, values) never reaches the terminal raw: control characters
(escape sequences included) and bidirectional overrides are shown as ``\\n``, ``\\x1b``...
"""

from __future__ import annotations

import functools
import json
import math
import re
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "Style",
    "duration",
    "level_label",
    "level_rank",
    "safe",
    "value_text",
]

# -- colours ----------------------------------------------------------------------------------

_RESET: Final = "\x1b[0m"


class Style:
    """SGR colouring when ``color`` is on; otherwise every method returns its text unchanged."""

    __slots__ = ("color",)

    def __init__(self, color: bool) -> None:
        self.color = color

    def paint(self, code: str, text: str) -> str:
        if not self.color or not code or not text:
            return text
        return f"\x1b[{code}m{text}{_RESET}"

    def level(self, mt: str, text: str) -> str:
        return self.paint(_LEVEL_COLORS.get(mt, ""), text)

    def status(self, status: str, text: str) -> str:
        return self.paint(_STATUS_COLORS.get(status, "33"), text)


_LEVEL_COLORS: Final = {"debug": "2", "info": "32", "warning": "33", "error": "31", "critical": "1;31"}
_STATUS_COLORS: Final = {"succeeded": "32", "failed": "1;31", "unfinished": "33"}
#: Parts of a line (see viewer.py): ids, action names, attribute keys, branches.
ID: Final = "36"
NAME: Final = "1"
KEY: Final = "2"
BRANCH: Final = "2"
DATE: Final = "1;34"

# -- levels -----------------------------------------------------------------------------------

#: The ``mt`` buckets of the format (docs/format.md), lowest first.
_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
_LABELS: Final = {"debug": "DEBUG", "info": "INFO", "warning": "WARN", "error": "ERROR", "critical": "CRIT"}
#: What ``--level`` takes, and the bucket each name means.
LEVEL_NAMES: Final = {
    "trace": "debug",
    "debug": "debug",
    "info": "info",
    "warn": "warning",
    "warning": "warning",
    "error": "error",
    "critical": "critical",
    "crit": "critical",
    "fatal": "critical",
}


def level_rank(mt: object) -> int:
    """The rank of an ``mt`` bucket (debug 0 ... critical 4); anything else counts as info."""
    return _LEVELS.index(mt) if mt in _LEVELS else 1


def level_label(mt: object) -> str:
    """Five columns: ``DEBUG``, ``INFO ``, ``WARN ``, ``ERROR``, ``CRIT ``."""
    if not isinstance(mt, str):
        return "INFO "
    label = _LABELS.get(mt) or safe(mt.upper())
    if len(label) <= 5:
        return f"{label:<5}"
    # Cut with a mark, before the escaping: never inside an escape (``in\x1b[2J`` is
    # ``IN…``, not ``IN\x…``).
    raw = mt.upper()[:4]
    unsafe = _UNSAFE.search(raw)
    return f"{safe(raw[: unsafe.start()] if unsafe else raw) + '…':<5}"


# -- text from the file -------------------------------------------------------------------------

#: Control characters (C0, C1), the line and paragraph separators, every format character
#: (Unicode category Cf, as of Unicode 15.1: direction marks and overrides, zero-width
#: spaces and joiners, the soft hyphen, tag characters...) and every other code point
#: Unicode says to show as nothing (Default_Ignorable_Code_Point: variation selectors,
#: the combining grapheme joiner, Hangul fillers...), which steer a terminal or hide text
#: (``ad\u200bmin`` looks like ``admin``).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029"
    "\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u115f\u1160\u17b4\u17b5"
    "\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0"
    "\ufff0-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def safe(text: str) -> str:
    """``text`` with every control and format character (see ``_UNSAFE``) written as an escape."""
    return _UNSAFE.sub(_escape, text)


#: A string shown without quotes: no blank, quote, ``=`` or backslash, and not a number,
#: boolean or null (so ``"42"`` and ``42`` read differently).
_BARE = re.compile(r"[^\s\"'=\\]+")
_LOOKS_TYPED = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?|true|false|null|nan|inf|-inf")


def _quoted(text: str) -> str:
    return safe(json.dumps(text, ensure_ascii=False))


#: How deep containers are drawn (JSON allows 1,024 levels; this draws by recursion).
_MAX_NESTING: Final = 64


def _nested(value: Any, depth: int = 0) -> str:
    """JSON-like text of a value inside a container: strings always quoted, tags resolved;
    containers deeper than ``_MAX_NESTING`` as ``[…]`` and ``{…}``."""
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, list):
        if depth >= _MAX_NESTING:
            return "[…]"
        return "[" + ",".join(_nested(v, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        if depth >= _MAX_NESTING:
            return "{…}"
        tagged = _tag(value, depth)
        if tagged is not None:
            return tagged
        return "{" + ",".join(f"{_quoted(str(k))}:{_nested(v, depth + 1)}" for k, v in value.items()) + "}"
    return _scalar(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return json.dumps(value)
    return safe(str(value))


def _tag(value: dict[str, Any], depth: int = 0) -> str | None:
    """A tagged value of the format (``$int``, ``$float``, ``$bytes``, ``$map``), or None."""
    if len(value) != 1:
        return None
    ((tag, inner),) = value.items()
    if tag in ("$int", "$float") and isinstance(inner, str):
        return safe(inner)
    if tag == "$bytes" and isinstance(inner, str):
        return "b64:" + safe(inner)
    if tag == "$map" and isinstance(inner, dict):
        return "{" + ",".join(f"{_quoted(str(k))}:{_nested(v, depth + 1)}" for k, v in inner.items()) + "}"
    return None


def value_text(value: Any, limit: int | None = None) -> str:
    """An attribute value as shown after ``key=``: a plain string bare, anything else as
    compact JSON-like text; cut to ``limit`` characters (then ending with ``…``)."""
    if isinstance(value, str):
        text = value if _BARE.fullmatch(value) and not _LOOKS_TYPED.fullmatch(value) else None
        text = safe(text) if text is not None else _quoted(value)
    else:
        text = _nested(value)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 1)] + "…"
    return text


def search_text(value: Any) -> str:
    """The text ``--grep`` looks in for a value: a string as it is, anything else as shown."""
    return value if isinstance(value, str) else _nested(value)


# -- times --------------------------------------------------------------------------------------


def clock(ts: float | None, utc: bool) -> tuple[str, str]:
    """``(HH:MM:SS.mmm, "YYYY-MM-DD ZONE")`` for a Unix time, in UTC or local time; the
    milliseconds are rounded, not cut (``.123`` stays ``.123`` through the float)."""
    if ts is None:
        return "??:??:??.???", ""
    try:
        seconds, millis = divmod(round(ts * 1000), 1000)
    except (OverflowError, ValueError):
        return "??:??:??.???", ""
    hms, date = _second(seconds, utc)
    return (f"{hms}.{millis:03d}" if date else "??:??:??.???"), date


@functools.lru_cache(maxsize=4096)
def _second(seconds: int, utc: bool) -> tuple[str, str]:
    """``(HH:MM:SS, "YYYY-MM-DD ZONE")`` of a whole second (records come many a second)."""
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
        if not utc:
            moment = moment.astimezone()
    except (OverflowError, OSError, ValueError):
        return "", ""
    return f"{moment:%H:%M:%S}", f"{moment:%Y-%m-%d} {moment.tzname() or ''}".rstrip()


def duration(seconds: float) -> str:
    """``840 µs``, ``12.3 ms``, ``4.52 s``, ``2m 03.4s``, ``1h 02m 03s``; ``?`` when it is
    not a number of seconds (two times too far apart for a float)."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 0:
        return "-" + duration(-seconds)
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{int(minutes)}m {rest:04.1f}s"
    hours, rest = divmod(int(seconds), 3600)
    minutes, rest = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {rest:02d}s"
