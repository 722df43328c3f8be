"""``logxpy-otel view``: logxpy-otel files as trees on a terminal.

Each trace (each task of several lines) is drawn as a tree: a header with the short trace
id, the service, the action, its status and its duration (from the ``ts`` of its start
and end lines), then one line per record (time, level, message, attributes). Nested
actions (a line at ``lvl`` ``[2, 3, 1]`` starts a child action under child 3 of child 2)
are drawn as branches with their own status and duration, so span actions written as
nested logxpy actions show as they come. A task of one line (a record outside any trace)
is one line. See docs/format.md for the lines.

What is read: live files, rotated backups and their gzip versions (told by content), a
directory or a glob, in the order replay takes them; the entries are shown in time order
(each tree at its first line's time), read as they are shown (see :func:`render`). A
line that does not parse is reported (``on_problem``) and skipped; a live file's last
line without a newline may still be being written and is left alone.

``--follow`` prints each tree when its end line arrives (or when it has had no line for
``idle`` seconds: then shown as unfinished), follows the live files through rotation, and
runs until ``stop`` is set (Ctrl-C on the command line).

Python use::

    from logxpy_otel.viewer import render
    for entry in render(["logs/app.jsonl"], level="warning", utc=True):
        print(entry)
"""

from __future__ import annotations

import argparse
import gc
import glob
import gzip
import heapq
import io
import itertools
import math
import os
import re
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from datetime import time as day_time
from typing import IO, Any, Final

import orjson

from . import _render as r
from . import reader as _reader
from ._format import RESERVED_KEYS
from ._rotation import backup_of, backups_by_family
from .reader import (
    GZIP_MAGIC,
    _not_utf8,
    checked_lines_stream,
    open_regular,
    past_checked,
    read_head_open,
    read_line,
)
from .replay import UsageError, expand_paths, install_stop_handlers

__all__ = [
    "Unread",
    "ViewOptions",
    "follow",
    "parse_time",
    "render",
    "use_color",
]

_HEX: Final = frozenset("0123456789abcdef")
_CHUNK: Final = 1 << 20
#: At most this much of a followed file is read in one look: ``stop`` is looked at between.
_POLL_BUDGET: Final = 16 * _CHUNK
#: What a damaged or cut gzip file raises while it is read.
_GZIP_ERRORS: Final = (gzip.BadGzipFile, EOFError, zlib.error, OSError)
#: How much of a followed file's beginning identifies it among backups (a tid and a ts).
_HEAD: Final = 512
#: Keys of a structure line that are not shown as its attributes.
_STRUCTURE_KEYS: Final = frozenset(("tid", "lvl", "ts", "at", "st", "dur", "_otel"))

Problem = Callable[[str], None]


class Unread(str):
    """A problem's text that says a file, or the rest of one, was left unread (not a
    regular file, an I/O error, a backup gone before it was read), where other problems
    say lines skipped. ``logxpy-otel view`` then exits 1."""

    __slots__ = ()


#: The non-ASCII characters of a rendering, for ``ascii``.
_ASCII: Final = str.maketrans({"├": "|", "└": "`", "│": "|", "─": "-", "…": "...", "µ": "u"})


# -- options ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ViewOptions:
    """What to show and how. Filters: ``trace`` selects trees (and flat-mode records) whose
    trace id starts with it; ``level``, ``since``, ``until`` and ``grep`` select records,
    and a tree is then shown with its matching records only (and the actions holding them),
    or not at all when none match."""

    #: A trace id prefix (hex); with a ``~``, a prefix of the whole ``tid``.
    trace: str | None = None
    #: The lowest ``mt`` bucket shown: debug, info, warning, error, critical.
    level: str | None = None
    #: Unix times: records from ``since`` (included) to ``until`` (excluded).
    since: float | None = None
    until: float | None = None
    #: Text looked for (case-sensitive) in each record's message and attribute values.
    grep: str | None = None
    #: Also ``_otel``, the full ``tid``, and attribute values uncut.
    verbose: bool = False
    #: ANSI colours.
    color: bool = False
    #: Times in UTC rather than local time.
    utc: bool = False
    #: Longest attribute value shown (characters) unless ``verbose``.
    value_limit: int = 160
    #: ASCII branches (``|--``, ``` `-- ```) for a terminal that cannot show box drawing.
    ascii: bool = False

    def __post_init__(self) -> None:
        if self.level is not None:
            bucket = r.LEVEL_NAMES.get(self.level.strip().lower())
            if bucket is None:
                raise ValueError(f"unknown level {self.level!r}; one of {', '.join(r.LEVEL_NAMES)}")
            object.__setattr__(self, "level", bucket)
        if self.trace is not None:
            object.__setattr__(self, "trace", _tid_key(self.trace.strip()))

    @property
    def filters_records(self) -> bool:
        return any(v is not None for v in (self.level, self.since, self.until, self.grep))


def _tid_key(tid: str) -> str:
    """A ``tid`` (or a prefix of one) as ``--trace`` compares it: the trace id's hex in any
    case, the writer's token after a ``~`` as it is (base62: its case counts)."""
    trace, tilde, token = tid.partition("~")
    return trace.lower() + tilde + token


def _options(options: ViewOptions | None, overrides: dict[str, Any]) -> ViewOptions:
    if options is None:
        return ViewOptions(**overrides)
    if overrides:
        return ViewOptions(**{f.name: getattr(options, f.name) for f in fields(options)} | overrides)
    return options


_UNITS: Final = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$")


def parse_time(text: str, *, utc: bool = False, now: float | None = None) -> float:
    """A Unix time from ``--since``/``--until`` text: an ISO-8601 date and time
    (``2026-11-26T12:04:05Z``, ``2026-11-26 12:04``, ``2026-11-26``), a time of today
    (``12:04``), or a time ago (``30s``, ``10m``, ``2h``, ``1d``, ``1w``). Without a zone,
    local time (UTC with ``utc``). Raises ``ValueError``."""
    now = time.time() if now is None else now
    match = _RELATIVE.match(text)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    zone = UTC if utc else None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            of_day = day_time.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(
                f"{text!r} is not a time: use ISO-8601 (2026-11-26T12:04:05Z, 12:04) or an age (10m, 2h, 1d)"
            ) from None
        today = datetime.fromtimestamp(now, UTC if utc else None).date()
        moment = datetime.combine(today, of_day)
    try:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone) if zone is not None else moment.astimezone()
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):  # (a local time out of the platform's range)
        raise ValueError(f"{text!r} is out of the range of times this machine can show") from None


def use_color(choice: str, stream: IO[str], environ: dict[str, str] | None = None) -> bool:
    """``always``, ``never``, or ``auto``: a terminal, unless ``NO_COLOR`` is set (not empty)
    or ``TERM=dumb``."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# -- lines and trees -----------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Line:
    """One line of a file with its place: ``tid``, ``lvl``, ``ts``, and the reading order."""

    data: dict[str, Any]
    tid: str
    lvl: tuple[int, ...]
    ts: float | None
    seq: int

    @property
    def structure(self) -> bool:
        return "at" in self.data


#: The deepest ``lvl`` shown (ours are at most 34 deep: spans nest 32 actions deep; a tree
#: is drawn by recursion, one level a frame, each line indented by its depth): a deeper
#: line is skipped, as not ours.
MAX_LVL_DEPTH: Final = 64


def _parse(raw: bytes, seq: int) -> _Line | str:
    """The line, or why it is not one of the format."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _not_utf8(raw) or f"not JSON ({exc})"
    if not isinstance(data, dict):
        return "not a JSON object"
    tid, lvl, ts = data.get("tid"), data.get("lvl"), data.get("ts")
    if not isinstance(tid, str) or not tid:
        return "no tid"
    if type(lvl) is not list or not lvl or not all(type(n) is int and n > 0 for n in lvl):
        return "no lvl (a list of positive ints)"
    if len(lvl) > MAX_LVL_DEPTH:
        return f"lvl deeper than {MAX_LVL_DEPTH}"
    when = float(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) else None
    return _Line(data, tid, tuple(lvl), when, seq)


def _trace_of_tid(tid: str) -> str | None:
    """The trace id (32 hex) a trace's ``tid`` carries (``<trace id>~<token>`` or bare)."""
    head = tid[:32]
    if len(head) == 32 and _HEX.issuperset(head) and (len(tid) == 32 or tid[32] == "~"):
        return head
    return None


def _trace_of_record(line: _Line) -> str | None:
    """A record's trace id: from its ``tid``, else (flat mode) ``_otel.trace_id``."""
    found = _trace_of_tid(line.tid)
    if found is None:
        otel = line.data.get("_otel")
        candidate = otel.get("trace_id") if isinstance(otel, dict) else None
        if isinstance(candidate, str) and len(candidate) == 32 and _HEX.issuperset(candidate):
            found = candidate
    return found


class _Action:
    """One action of a tree: its start and end lines, its records and child actions by position."""

    __slots__ = ("_first_ts", "_order", "actions", "end", "records", "start")

    def __init__(self) -> None:
        self.start: _Line | None = None
        self.end: _Line | None = None
        self.records: list[tuple[int, _Line]] = []
        self.actions: dict[int, _Action] = {}
        #: order() and first_ts() of the subtree, once computed (every level of a drawing
        #: asks for them: computed each time, a deep tree cost the square of its depth);
        #: forgotten when a line is added below (_Tree.add).
        self._order: int | None = None
        self._first_ts: tuple[float | None] | None = None

    def changed(self) -> None:
        self._order = self._first_ts = None

    def children(self) -> list[tuple[int, int, int, _Line | _Action]]:
        """``(position, kind, order, child)`` sorted: records before an action at one position."""
        out: list[tuple[int, int, int, _Line | _Action]] = [
            (pos, 0, line.seq, line) for pos, line in self.records
        ]
        out += [(pos, 1, action.order(), action) for pos, action in self.actions.items()]
        out.sort(key=lambda c: c[:3])
        return out

    def order(self) -> int:
        if self._order is None:
            seqs = [line.seq for line in (self.start, self.end) if line is not None]
            seqs += [line.seq for _, line in self.records]
            seqs += [action.order() for action in self.actions.values()]
            self._order = min(seqs, default=0)
        return self._order

    def lines(self) -> Iterator[_Line]:
        """Every record of this action and its children, depth first in position order."""
        for _, _, _, child in self.children():
            if isinstance(child, _Action):
                yield from child.lines()
            else:
                yield child

    def first_ts(self) -> float | None:
        if self._first_ts is None:
            lines = (self.start, *(rec for _, rec in self.records))
            times = [line.ts for line in lines if line is not None and line.ts is not None]
            times += [t for t in (a.first_ts() for a in self.actions.values()) if t is not None]
            self._first_ts = (min(times, default=None),)
        return self._first_ts[0]


def _bare_run(action: _Action) -> tuple[_Action, int]:
    """The last of the actions from ``action`` down that have no line of their own and one
    child action each (none of their lines is in the file: a start line lost, a hostile
    file), and how many they are: drawn as one line, not one line (indented one step
    more) for each level."""
    levels = 1
    while (
        action.start is None
        and action.end is None
        and not action.records
        and len(action.actions) == 1
        and (child := next(iter(action.actions.values()))).start is None
        and child.end is None
    ):
        action, levels = child, levels + 1
    return action, levels


def _holds_kept(action: _Action, keep: Callable[[_Line], bool], kept: dict[int, bool]) -> bool:
    """Whether ``action`` or an action below it holds a record ``keep`` takes: each action
    looked at once in a drawing (``kept``, by id), not once for each level above it."""
    known = kept.get(id(action))
    if known is None:
        known = any(keep(line) for _, line in action.records) or any(
            _holds_kept(child, keep, kept) for child in action.actions.values()
        )
        kept[id(action)] = known
    return known


class _Tree:
    """The lines of one task (a trace's ``tid``) from its start line on."""

    __slots__ = ("first", "last_active", "last_seq", "root", "tid")

    def __init__(self, tid: str, now: float) -> None:
        self.tid = tid
        self.root = _Action()
        self.first: _Line | None = None
        self.last_active = now
        self.last_seq = -1

    def add(self, line: _Line, now: float) -> None:
        if now > self.last_active:  # (never back: a record may carry an older time)
            self.last_active = now
        self.last_seq = line.seq
        if self.first is None:
            self.first = line
        node = self.root
        node.changed()
        for pos in line.lvl[:-1]:
            node = node.actions.setdefault(pos, _Action())
            node.changed()
        if not line.structure:
            node.records.append((line.lvl[-1], line))
        elif line.data.get("st") == "started":
            if node.start is None:
                node.start = line
        else:
            node.end = line

    @property
    def complete(self) -> bool:
        return self.root.end is not None

    @property
    def empty(self) -> bool:
        """Nothing to show: no line at all. (An end line alone is shown: the end of a tree
        shown as unfinished before, its status and duration.)"""
        return (
            self.root.start is None
            and self.root.end is None
            and not self.root.records
            and not self.root.actions
        )

    def sort_key(self) -> tuple[float, int]:
        """Where the tree goes in time order: at its first line (the start line, whose ``ts``
        is its first record's)."""
        first = self.first
        if first is None:
            return (0.0, 0)
        return (first.ts if first.ts is not None else 0.0, first.seq)


_Item = _Line | _Tree


class _Assembler:
    """Groups lines into trees as they are read; hands each tree over when it is complete."""

    def __init__(self) -> None:
        self.open: dict[str, _Tree] = {}
        #: For silent(): the open trees that had a line in the last ``lines`` lines, the one
        #: whose last line came longest ago first (a tree moves to the end at each line) ...
        self._recent: dict[str, _Tree] = {}
        #: ... and the others, by the time of their last line: (that time, order, tid, tree,
        #: its last line's seq then). An entry whose tree had a line since, or is closed, is
        #: stale: dropped when it comes up. Each tree is looked at once a quiet spell, not at
        #: every look (a scan of them all, each time, made a file of many open trees take
        #: time in its square).
        self._quiet: list[tuple[float, int, str, _Tree, int]] = []
        self._order = itertools.count()

    def add(self, line: _Line, now: float) -> list[_Item]:
        if line.lvl == (1,) and not line.structure:
            return [line]  # a task of one record
        out: list[_Item] = []
        tree = self.open.get(line.tid)
        reopened = line.lvl == (1,) and line.structure and line.data.get("st") == "started"
        if tree is not None and reopened and tree.root.start is not None:
            out.append(self._close(line.tid))  # a new start under this tid: the old tree ends here
            tree = None
        if tree is None:
            tree = self.open[line.tid] = _Tree(line.tid, now)
        else:
            self._recent.pop(line.tid, None)  # (to the end: its last line is this one)
        self._recent[line.tid] = tree
        tree.add(line, now)
        if tree.complete:
            out.append(self._close(line.tid))
        return out

    def _close(self, tid: str) -> _Tree:
        """The open tree of ``tid``, forgotten (its entry in ``_quiet``, if any, goes stale)."""
        self._recent.pop(tid, None)
        return self.open.pop(tid)

    def idle(self, now: float, limit: float) -> list[_Item]:
        """The open trees with no line for ``limit`` seconds, oldest first (then forgotten)."""
        return [self._close(tid) for tid, tree in list(self.open.items()) if now - tree.last_active >= limit]

    def silent(self, now: float | None, seq: int, limit: float, lines: int) -> list[_Item]:
        """The open trees whose last line is ``lines`` lines before ``seq`` and ``limit``
        seconds of the lines' time before ``now`` (then forgotten). Both: one line with a
        far-off time must not end every tree, nor a quiet file one it holds cheaply. A tree
        none of whose lines had a time is judged by its lines alone (else it would hold the
        rest of a file without times); with ``now`` None (this line has no time), only
        such trees are."""
        recent, quiet = self._recent, self._quiet
        while recent:
            tid, tree = next(iter(recent.items()))
            if seq - tree.last_seq < lines:
                break  # (this one and all after it had a line since)
            del recent[tid]
            heapq.heappush(quiet, (tree.last_active, next(self._order), tid, tree, tree.last_seq))
        out: list[_Item] = []
        while quiet:
            active, _, tid, tree, last_seq = quiet[0]
            if self.open.get(tid) is not tree or tree.last_seq != last_seq:
                heapq.heappop(quiet)  # (stale: closed, or a line since)
            elif active == -math.inf or (now is not None and now - active >= limit):
                heapq.heappop(quiet)
                out.append(self._close(tid))
            else:
                break  # (this one and all after it had a line since ``now - limit``)
        return out

    def rest(self) -> list[_Item]:
        out: list[_Item] = list(self.open.values())
        self.open.clear()
        self._recent.clear()
        self._quiet.clear()
        return out


def _sort_key(item: _Item) -> tuple[float, int]:
    if isinstance(item, _Tree):
        return item.sort_key()
    return (item.ts if item.ts is not None else 0.0, item.seq)


# -- filters and rendering --------------------------------------------------------------------


def _attributes(data: dict[str, Any], verbose: bool) -> list[tuple[str, Any]]:
    """A record's attributes as shown: its event name, the top-level ones, the colliding
    ones kept in ``_otel.attributes``; ``_otel`` itself when verbose."""
    otel = data.get("_otel")
    otel = otel if isinstance(otel, dict) else {}
    out: list[tuple[str, Any]] = []
    event = otel.get("event_name")
    if isinstance(event, str) and event:
        out.append(("event.name", event))
    out += [(k, v) for k, v in data.items() if k not in RESERVED_KEYS]
    extra = otel.get("attributes")
    if isinstance(extra, dict):
        out += list(extra.items())
    if verbose and "_otel" in data:
        out.append(("_otel", data["_otel"]))
    return out


def _message(data: dict[str, Any]) -> str:
    """A record's ``msg`` (always a string in our lines; anything else as shown)."""
    msg = data.get("msg")
    if isinstance(msg, str):
        return msg
    return "" if msg is None else r.value_text(msg)


def _service(data: dict[str, Any]) -> str | None:
    otel = data.get("_otel")
    resource = otel.get("resource") if isinstance(otel, dict) else None
    attributes = resource.get("attributes") if isinstance(resource, dict) else None
    name = attributes.get("service.name") if isinstance(attributes, dict) else None
    return name if isinstance(name, str) and name else None


class _Selector:
    """The filters of a :class:`ViewOptions`."""

    def __init__(self, options: ViewOptions) -> None:
        self.o = options
        self.min_rank = r.level_rank(options.level) if options.level is not None else None

    def trace_ok(self, item: _Item) -> bool:
        wanted = self.o.trace
        if wanted is None:
            return True
        if "~" in wanted:
            return _tid_key(item.tid).startswith(wanted)
        trace = _trace_of_tid(item.tid) if isinstance(item, _Tree) else _trace_of_record(item)
        return trace is not None and trace.startswith(wanted)

    def record_ok(self, line: _Line) -> bool:
        o = self.o
        if self.min_rank is not None and r.level_rank(line.data.get("mt")) < self.min_rank:
            return False
        if o.since is not None and (line.ts is None or line.ts < o.since):
            return False
        if o.until is not None and (line.ts is None or line.ts >= o.until):
            return False
        if o.grep is not None:
            texts = [_message(line.data)]
            texts += [r.search_text(v) for _, v in _attributes(line.data, False)]
            if not any(o.grep in text for text in texts):
                return False
        return True


class _Renderer:
    """Entries as text; remembers the last date shown, to print a date line when it changes."""

    def __init__(self, options: ViewOptions) -> None:
        self.o = options
        self.s = r.Style(options.color)
        self.select = _Selector(options)
        self.last_date: str | None = None

    # entries

    def entry(self, item: _Item) -> str | None:
        """The text of one tree or record (lines joined by newlines), or None when filtered out."""
        if not self.select.trace_ok(item):
            return None
        if isinstance(item, _Line):
            if not self.select.record_ok(item):
                return None
            return self._dated(item.ts, [self._record(item, None, standalone=True)])
        if item.empty:
            return None
        keep = self.select.record_ok if self.o.filters_records else None
        kept: dict[int, bool] = {}  # (one look at each action, for the tree and its branches)
        if keep is not None and not _holds_kept(item.root, keep, kept):
            return None
        return self._dated(item.first.ts if item.first is not None else None, self._tree(item, keep, kept))

    def _dated(self, ts: float | None, lines: list[str]) -> str:
        _, date = r.clock(ts, self.o.utc)
        if date and date != self.last_date:
            self.last_date = date
            lines.insert(0, self.s.paint(r.DATE, f"── {date} ──"))
        out = "\n".join(lines)
        return out.translate(_ASCII) if self.o.ascii else out

    # trees

    def _tree(self, tree: _Tree, keep: Callable[[_Line], bool] | None, kept: dict[int, bool]) -> list[str]:
        root = tree.root
        service = next(filter(None, (_service(line.data) for line in root.lines())), None)
        trace = _trace_of_tid(tree.tid)
        short = tree.tid if self.o.verbose or trace is None else trace[:8]
        head = self.s.paint(r.ID, r.safe(short))
        if service is not None:
            head += " " + self.s.paint(r.NAME, r.safe(service))
        out = [f"{head}  {self._action(root)}"]
        self._children(root, "", out, service, keep, kept=kept)
        return out

    def _action(self, action: _Action) -> str:
        """``name  status  duration  key=value...`` of an action, from its start and end lines."""
        start, end = action.start, action.end
        named = start or end
        name = named.data.get("at") if named is not None else None
        otel = end.data.get("_otel") if end is not None else None
        if isinstance(otel, dict) and isinstance(otel.get("name"), str):
            name = otel["name"]  # a span renamed before its end: its final name (format.md)
        if named is None:
            parts = ["(start not seen)"]
        else:
            parts = [self.s.paint(r.NAME, r.safe(name) if isinstance(name, str) and name else "?")]
        if end is None:
            parts.append(self.s.status("unfinished", "unfinished"))
        else:
            st = end.data.get("st")
            status = r.safe(st) if isinstance(st, str) and st else "ended"
            parts.append(self.s.status(status, status))
            if start is not None and start.ts is not None and end.ts is not None:
                parts.append(r.duration(end.ts - start.ts))
        if start is None and end is not None:
            parts.append("(start not seen)")
        fields: dict[str, Any] = {}  # the start's, then the end's (a span's final attributes win)
        for line in (start, end):
            if line is not None:
                fields.update((k, v) for k, v in line.data.items() if k not in _STRUCTURE_KEYS)
                otel = line.data.get("_otel")  # (attributes whose names the format reserves)
                if isinstance(otel, dict) and isinstance(otel.get("attributes"), dict):
                    fields.update(otel["attributes"])
        last = end or start
        if self.o.verbose and last is not None and "_otel" in last.data:
            fields["_otel"] = last.data["_otel"]  # the span's ids, kind, status, events, links
        parts += [self._pair(k, v) for k, v in fields.items()]
        return "  ".join(parts)

    def _children(
        self,
        action: _Action,
        prefix: str,
        out: list[str],
        service: str | None,
        keep: Callable[[_Line], bool] | None,
        *,
        kept: dict[int, bool],
    ) -> None:
        shown: list[_Line | _Action] = []
        for _, _, _, child in action.children():
            if keep is None:
                shown.append(child)
            elif isinstance(child, _Action):
                if _holds_kept(child, keep, kept):
                    shown.append(child)
            elif keep(child):
                shown.append(child)
        for i, child in enumerate(shown):
            last = i == len(shown) - 1
            branch = self.s.paint(r.BRANCH, prefix + ("└── " if last else "├── "))
            if isinstance(child, _Action):
                ts = child.start.ts if child.start is not None else child.first_ts()
                time_text, _ = r.clock(ts, self.o.utc)
                below, levels = _bare_run(child)
                more = f"  ({levels} levels)" if levels > 1 else ""
                out.append(f"{branch}{time_text} {self._action(child)}{more}")
                self._children(below, prefix + ("    " if last else "│   "), out, service, keep, kept=kept)
            else:
                out.append(branch + self._record(child, service, standalone=False))

    # records

    def _record(self, line: _Line, context_service: str | None, standalone: bool) -> str:
        data = line.data
        time_text, _ = r.clock(line.ts, self.o.utc)
        mt = data.get("mt")
        head = f"{time_text} {self.s.level(mt if isinstance(mt, str) else 'info', r.level_label(mt))}"
        service = _service(data)
        tag = []
        if service is not None and service != context_service:
            tag.append(r.safe(service))
        if standalone:
            trace = _trace_of_record(line)
            if trace is not None:
                tag.append(self.s.paint(r.ID, trace if self.o.verbose else trace[:8]))
        text = r.safe(_message(data))
        lead = " ".join(filter(None, ["[" + " ".join(tag) + "]" if tag else "", text]))
        pairs = [self._pair(k, v) for k, v in _attributes(data, self.o.verbose)]
        return " ".join(filter(None, [head, "  ".join(filter(None, [lead, *pairs]))]))

    def _pair(self, key: str, value: Any) -> str:
        limit = None if self.o.verbose else self.o.value_limit
        return f"{self.s.paint(r.KEY, r.safe(key) + '=')}{r.value_text(value, limit)}"


# -- reading -------------------------------------------------------------------------------------


def _paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    if isinstance(paths, str | os.PathLike):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def _is_final(path: str) -> bool:
    """A file that can no longer grow: a rotated backup (by name) or a gzip file."""
    if backup_of(path) is not None:
        return True
    try:
        with open_regular(path) as f:
            return f.read(2) == GZIP_MAGIC
    except OSError:
        return False


def _too_long() -> str:
    """Why a line past MAX_LINE_BYTES is skipped."""
    return f"longer than {_reader.MAX_LINE_BYTES} bytes"


#: Of a file's skipped lines, how many are said one by one (as replay lists them); the
#: others are counted and said in one line: a small file of many bad lines (a gzip of a
#: million empty ones) floods no one's terminal.
MAX_SKIPPED_SAID: Final = 1000


class _CappedNotes:
    """``problem`` for one file: its first MAX_SKIPPED_SAID notes said, the rest counted and
    said in one line at :meth:`close` (or, following a file, once when the cap is reached)."""

    __slots__ = ("_path", "_problem", "said", "unsaid")

    def __init__(self, problem: Problem, path: str) -> None:
        self._problem, self._path = problem, path
        self.said = self.unsaid = 0

    def __call__(self, text: str) -> None:
        if self.said < MAX_SKIPPED_SAID:
            self.said += 1
            self._problem(text)
            return
        if not self.unsaid:  # (said when there is one more, as replay does)
            self._problem(f"{self._path}: further skipped lines are counted, not listed")
        self.unsaid += 1

    def close(self) -> None:
        if self.unsaid:
            self._problem(f"{self._path}: {self.unsaid} more line(s) skipped, not listed")
            self.unsaid = 0


#: What a live file was when its directory was looked at: ``(st_dev, st_ino, st_size, its
#: first bytes)``. The same inode alone proves nothing (gzip frees one, the next file
#: gets it; a copy cut in place grows again): its first bytes (a tid and a time) do.
_Mark = tuple[int, int, int, bytes]


def _mark(path: str) -> _Mark | None:
    try:
        with open_regular(path) as f:
            st = os.fstat(f.fileno())
            return (st.st_dev, st.st_ino, st.st_size, os.pread(f.fileno(), _HEAD, 0))
    except OSError:
        return None


#: A directory looked at: its names (keys, :func:`_key`) and the marks of its live files.
_Look = tuple[set[str], dict[str, _Mark]]


def _look(directory: str, live: set[str] | None) -> _Look:
    """``directory``'s names and the marks of the files ``live`` (names; None: every file
    there not named as a backup), taken together: listed again after the marks, and again
    while a name came or went meanwhile (then, after three tries, no marks: a live file
    without one has its backlog looked at)."""
    for _ in range(3):
        try:
            before = os.listdir(directory or ".")
            names = live if live is not None else {n for n in before if backup_of(n) is None}
            marks = {n: m for n in names if (m := _mark(os.path.join(directory, n))) is not None}
            after = os.listdir(directory or ".")
        except OSError:
            return set(), {}
        if set(before) == set(after):
            break
        marks = {}
    return {_key(os.path.join(directory, name)) for name in after}, marks


def _look_before(args: Sequence[str]) -> dict[str, _Look]:
    """The directories the arguments name (a directory; a file's or a glob's, where its
    directory part is plain), looked at before they are listed: a backup there now is
    history (read only if listed); one made at any time after is read before its live
    file. (A glob's directory with wildcards is looked at after its listing.)"""
    wanted: dict[str, tuple[str, set[str] | None]] = {}
    for arg in args:
        whole = os.path.isdir(arg)
        directory = arg if whole else os.path.dirname(arg)
        if glob.has_magic(directory) and not os.path.lexists(directory):
            continue
        key = _key(directory)
        _, live = wanted.get(key, (directory, set()))
        if whole or glob.has_magic(arg) or live is None:
            live = None  # (every file there may be a live file to read)
        else:
            live.add(os.path.basename(arg))
        wanted[key] = (directory, live)
    return {key: _look(directory, live) for key, (directory, live) in wanted.items()}


def _histories(files: list[str], looks: dict[str, _Look]) -> dict[str, tuple[set[str], _Mark | None]]:
    """For each file not named as a backup: its history (the names beside it when its
    directory was looked at, and the backups listed to be read: read as listed, never again
    from a backlog; one set a directory, shared by its families) and its mark then."""
    named = {_key(path) for path in files if backup_of(path) is not None}
    shared: dict[str, set[str]] = {}
    out: dict[str, tuple[set[str], _Mark | None]] = {}
    for path in files:
        if backup_of(path) is None:
            directory = _key(os.path.dirname(path))
            if directory not in looks:  # (a glob's directory with wildcards: looked at now)
                looks[directory] = _look(os.path.dirname(path), None)
            if directory not in shared:
                shared[directory] = looks[directory][0] | named
            out[path] = (shared[directory], looks[directory][1].get(os.path.basename(path)))
    return out


def _listed(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> tuple[list[str], dict[str, tuple[set[str], _Mark | None]]]:
    """The files ``paths`` name (``replay.expand_paths``), and for each live one (not a
    backup, not gzip) its history and mark (:func:`_histories`), its directory looked at
    before the listing, so that a rotation at any time after it is seen."""
    args = _paths(paths)
    looks = _look_before(args)
    files = expand_paths(args)
    histories = _histories(files, looks)
    return files, {path: history for path, history in histories.items() if not _is_final(path)}


def _read_live(
    path: str,
    seq: Iterator[int],
    problem: Problem,
    history: set[str],
    *,
    mark: _Mark | None,
    listings: _Listings,
) -> Iterator[_Line]:
    """A live file's lines, read through once as :class:`_Tail` follows it: unless it is
    still the file ``mark`` says, the backups made since ``history`` (the names beside it
    then) first, so that a rotation meanwhile loses none; a last line with no newline is
    left (it may be being written)."""
    tail = _Tail(path, seq, problem, history, once=True, mark=mark, listings=listings)
    try:
        yield from tail.poll()
        while tail.more:
            yield from tail.poll()
    finally:
        tail.close()


def _read_file(path: str, seq: Iterator[int], problem: Problem) -> Iterator[_Line]:
    """The lines of a file that no longer grows (a backup, a gzip file; gzip told by
    content), a last line with no newline too, where it parses. A backup compressed since
    it was listed is read from its ``.gz``. (A live file is read by :func:`_read_live`.)"""
    try:
        if backup_of(path) is None:
            opened: tuple[IO[bytes], str] | None = (io.BufferedReader(open_regular(path), _CHUNK), path)
        else:
            opened = _open_backup(_backup_key(path))
    except OSError as exc:
        problem(Unread(f"{path}: {exc.strerror or exc}"))
        return
    if opened is None:
        problem(Unread(f"{path}: no such file (gone since it was listed)"))
        return
    yield from _read_open(*opened, seq, problem)  # (which closes it)


def _read_open(
    raw: IO[bytes], path: str, seq: Iterator[int], problem: Problem, *, start: int = 0
) -> Iterator[_Line]:
    """:func:`_read_file` of a file already open (closed here), from the line at byte
    ``start`` of its lines on."""
    with raw:
        try:
            stream, checked = checked_lines_stream(raw)
        except _GZIP_ERRORS as exc:  # (an I/O error on its first bytes: a failing disk, NFS)
            problem(Unread(f"{path}: {getattr(exc, 'strerror', None) or exc}"))
            return
        offset = 0
        capped = _CappedNotes(problem, path)
        try:
            while True:
                try:
                    line, length, ended = read_line(stream, offset, checked)
                    if checked is not None and past_checked(length, ended, offset, checked):
                        problem(Unread(f"{path}: {checked[1]}"))
                        return
                    if length > len(line):
                        if offset >= start:  # (else said already, when it was read before)
                            capped(f"{path}: line at byte {offset} skipped: {_too_long()}")
                        offset += length
                        continue
                except _GZIP_ERRORS as exc:
                    problem(Unread(f"{path}: cannot read on from byte {offset} of its lines: {exc}"))
                    return
                if not line:
                    return
                begin, offset = offset, offset + len(line)
                if begin < start:
                    continue  # shown already
                torn = not line.endswith(b"\n")
                parsed = _parse(line, next(seq))
                if isinstance(parsed, str):
                    what = "torn last line (no newline)" if torn else parsed
                    capped(f"{path}: line at byte {begin} skipped: {what}")
                    continue
                yield parsed
        finally:
            capped.close()


def _emit(renderer: _Renderer, items: Iterable[_Item]) -> Iterator[str]:
    for item in items:
        text = renderer.entry(item)
        if text is not None:
            yield text


def render(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    options: ViewOptions | None = None,
    *,
    on_problem: Problem | None = None,
    window: float = 10.0,
    **overrides: Any,
) -> Iterator[str]:
    """Each tree or one-line task of the files, in time order, as text (one entry per item,
    its lines joined by ``\\n``; a date line comes first when the date changes).

    ``paths``: files, directories or globs (as ``logxpy-otel replay`` takes them). Options
    are a :class:`ViewOptions` or its fields as keywords (``level="warning"``, ``utc=True``).
    Lines that are not of the format go to ``on_problem`` (default: ignored). Raises
    ``logxpy_otel.replay.UsageError`` at once for a path that names nothing.

    Files are read as the entries are taken, each rotated family in its own time order,
    the families merged: memory holds what is still open (trees not ended yet, at most
    ``_OPEN_HORIZON`` seconds of the lines' time and ``_OPEN_LINES`` lines, or those lines
    alone in a file without times: a tree silent longer is shown as unfinished) and the last
    ``window`` seconds of lines, not whole files. A line written more than ``window``
    seconds out of time order is shown as soon as it is read, after what has gone out.
    """
    opts = _options(options, overrides)
    problem = on_problem or (lambda _: None)
    # A live file is read as --follow reads it, through to its end: a rotation between the
    # look and its turn puts its lines into a backup made after the look, read first.
    files, live = _listed(paths)
    listings = _Listings()
    seq = itertools.count()

    def lines(family: list[str]) -> Iterator[_Line]:
        for path in family:
            if path in live:
                history, mark = live[path]
                yield from _read_live(path, seq, problem, history, mark=mark, listings=listings)
            else:
                yield from _read_file(path, seq, problem)

    streams = [_in_time_order(lines(family), window) for family in _families(files)]
    return _emit(_Renderer(opts), heapq.merge(*streams, key=_sort_key))


def _families(files: list[str]) -> list[list[str]]:
    """The files (in replay's order) by rotated family: each family's backups then its live file."""
    out: dict[str, list[str]] = {}
    for path in files:
        backup = backup_of(path)
        out.setdefault(os.path.normpath(backup[0] if backup is not None else path), []).append(path)
    return list(out.values())


#: A tree with no line for this long in the file's own time, and for _OPEN_LINES lines, is
#: shown as unfinished (its writer was killed, say): render holds what comes after an open
#: tree, and would hold the rest of the file. A later line of it starts a second tree (its
#: end line alone shows its status), as in ``--follow``.
_OPEN_HORIZON: Final = 300.0
_OPEN_LINES: Final = 1024
#: How often, in lines, render looks for such trees.
_HORIZON_EVERY: Final = 1024


def _in_time_order(lines: Iterable[_Line], window: float) -> Iterator[_Item]:
    """The items of one stream of lines in time order (:func:`_sort_key`), holding back
    only what a later line could still come before: an item is let go once every open
    tree started after it, and the lines have moved ``window`` seconds past it. A line
    further out of order than that goes out as soon as it is read, and a tree silent for
    ``_OPEN_HORIZON`` seconds of the lines' time as unfinished (nothing is held back for
    ever). Lines without a ``ts`` sort at 0 and go out at once."""
    assembler = _Assembler()
    ready: list[tuple[tuple[float, int], _Item]] = []  # a heap
    starts: list[tuple[tuple[float, int], str, _Tree]] = []  # open trees, some closed since
    latest = -math.inf
    for count, line in enumerate(lines, 1):
        if line.ts is not None and line.ts > latest:
            latest = line.ts
        before = assembler.open.get(line.tid)
        for item in assembler.add(line, line.ts if line.ts is not None else -math.inf):
            heapq.heappush(ready, (_sort_key(item), item))
        if count % _HORIZON_EVERY == 0:
            # (by this line's time, not the greatest seen: one far-off time ends nothing)
            for item in assembler.silent(line.ts, line.seq, _OPEN_HORIZON, _OPEN_LINES):
                heapq.heappush(ready, (_sort_key(item), item))
        opened = assembler.open.get(line.tid)
        if opened is not None and opened is not before:
            heapq.heappush(starts, (opened.sort_key(), line.tid, opened))
        while starts and assembler.open.get(starts[0][1]) is not starts[0][2]:
            heapq.heappop(starts)  # closed since
        limit = (latest - window if latest != -math.inf else 0.0, math.inf)
        if starts and starts[0][0] < limit:
            limit = starts[0][0]
        while ready and ready[0][0] < limit:
            yield heapq.heappop(ready)[1]
    for item in assembler.rest():
        heapq.heappush(ready, (_sort_key(item), item))
    while ready:
        yield heapq.heappop(ready)[1]


# -- follow --------------------------------------------------------------------------------------


def _backup_key(path: str) -> str:
    """A backup's path without ``.gz`` (compressed or not, the same lines)."""
    return path[: -len(".gz")] if path.endswith(".gz") else path


def _key(path: str) -> str:
    """What a file (a backup: with or without ``.gz``) is known by in a history, however
    its path was spelled (absolute, so that ``logs`` and ``/srv/logs`` meet). Only known
    by: a file is opened by the path it was listed or found under."""
    return os.path.abspath(_backup_key(path))


#: How long a directory must have been unchanged before a listing of it is trusted for
#: as long as its mtime stays (coarse file system clocks: a change in the same tick as
#: the listing would keep the mtime; as git's "racily clean" index entries).
_QUIET_S: Final = 2.0


class _Listings:
    """The backups of each live file, from one listing a directory for as long as the
    directory is unchanged (its mtime, once it is older than ``_QUIET_S``), not one a
    family: a directory of thousands of families is listed once, or once a change."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, float, dict[str, list[str]]]] = {}

    def backups(self, path: str) -> list[str]:
        """``_rotation.backups(path)``, from this directory's listing."""
        directory = os.path.dirname(path)
        try:
            mtime = os.stat(directory or ".").st_mtime_ns
        except OSError:
            return []
        seen = self._seen.get(directory)
        if seen is None or seen[0] != mtime or seen[1] - mtime / 1e9 < _QUIET_S:
            seen = (mtime, time.time(), backups_by_family(directory))  # (mtime read before the listing)
            self._seen[directory] = seen
        return seen[2].get(os.path.basename(path), [])


class _Tail:
    """A live file followed like ``tail -f``: its lines as they come, through truncation and
    rotation.

    On rotation the old file is read to its end, then every backup made since the follow
    began that was not read here (a rotation or more between two looks) is read whole,
    then the new live file. A backup is known as read by its first bytes (a file's first
    line holds a tid and a time), or as the open file by its inode (rotated just now).
    Backups there before the follow began are history, not read (as ``tail -f``)."""

    def __init__(
        self,
        path: str,
        seq: Iterator[int],
        problem: Problem,
        history: set[str],
        *,
        once: bool = False,
        mark: _Mark | None = None,
        listings: _Listings | None = None,
    ) -> None:
        self.path = path
        self.seq = seq
        #: Read through once (render), not followed: a file that cannot be read is not looked
        #: at again, and one not there was rotated away (its lines are in a backup) or is gone.
        self.once = once
        #: A read of the open file failed: it is said, and the file is read no further.
        self.dead = False
        self.problem = problem
        #: The notes of skipped lines, capped (a followed file may be anyone's).
        self.skipped = _CappedNotes(problem, path)
        self.file: IO[bytes] | None = None
        self.ident = (0, 0)
        self.offset = 0
        #: The line being read (no newline yet), and whether it is past MAX_LINE_BYTES (skipped).
        self.buf = bytearray()
        self.too_long = False
        #: The last look stopped at _POLL_BUDGET: there is more to read at once.
        self.more = False
        #: The last error opening the live file, said once.
        self.failure: str | None = None
        #: The first bytes of the open file (up to ``_HEAD``), and of the files read before.
        self.head = b""
        self.heads: deque[tuple[bytes, int]] = deque(maxlen=256)
        #: Backups dealt with, by :func:`_key`: history (there before; shared, never
        #: changed here) and those read here since.
        self.history = history
        self.done: set[str] = set()
        #: Where its backups are found (shared: one listing a directory, not one a family).
        self.listings = listings if listings is not None else _Listings()
        #: Backups made since the history was listed are looked at on the first poll, but
        #: where the file opened is still the one ``mark`` says: no backup was made of it
        #: since (neither renamed away, nor copied and cut in place), none to look for.
        self.fresh = self._open() and not (mark is not None and self._is(mark))

    def _open(self) -> bool:
        try:
            f = open_regular(self.path)  # kept open while followed
        except FileNotFoundError:
            return False  # rotated away and the new one not there yet: next poll
        except OSError as exc:  # a directory, a FIFO, a symlink loop, no permission: said once
            why = exc.strerror or exc
            failure = Unread(f"{self.path}: {why}" if self.once else f"{self.path}: cannot follow it ({why})")
            if failure != self.failure:
                self.problem(failure)
            self.failure = failure
            return False
        self.failure = None
        self.skipped = _CappedNotes(self.problem, self.path)  # (the cap is a file's: anew each)
        st = os.fstat(f.fileno())
        self.file, self.ident, self.offset, self.head = f, (st.st_dev, st.st_ino), 0, b""
        self.buf, self.too_long = bytearray(), False
        return True

    def close(self) -> None:
        self.skipped.close()
        if self.file is not None:
            self.file.close()
            self.file = None

    def _is(self, mark: _Mark) -> bool:
        """Whether the open file is the one ``mark`` says: its inode, no shorter, and the
        same first bytes, where they were a whole line or ``_HEAD`` bytes (a tid and a
        time: a file that was empty, or held a torn line's first bytes, proves nothing)."""
        assert self.file is not None
        head = mark[3]
        try:
            st = os.fstat(self.file.fileno())
            now = os.pread(self.file.fileno(), len(head), 0)
        except OSError:
            return False
        telling = b"\n" in head or len(head) == _HEAD
        return telling and (st.st_dev, st.st_ino) == mark[:2] and st.st_size >= mark[2] and now == head

    def _line(self, raw: bytes, offset: int, torn: bool) -> Iterator[_Line]:
        parsed = _parse(raw, next(self.seq))
        if isinstance(parsed, str):
            what = "torn last line (no newline)" if torn else parsed
            self.skipped(f"{self.path}: line at byte {offset} skipped: {what}")
        else:
            yield parsed

    def _drain(self, limited: bool = False) -> Iterator[_Line]:
        """Each complete line up to the end of the open file (``limited``: or up to
        _POLL_BUDGET bytes read, ``more`` says which). A line longer than MAX_LINE_BYTES is
        skipped, never held."""
        f = self.file
        self.more = False
        if f is None:
            return
        budget = _POLL_BUDGET if limited else None
        while True:
            if budget is not None and budget <= 0:
                self.more = True
                return
            try:
                chunk = f.read(_CHUNK)
            except OSError as exc:  # a failing disk, a stale NFS handle: said, and read no further
                where = self.offset + len(self.buf)
                self.problem(Unread(f"{self.path}: cannot read on from byte {where} of its lines: {exc}"))
                self.dead = True
                self.close()
                return
            if not chunk:
                return
            if budget is not None:
                budget -= len(chunk)
            if len(self.head) < _HEAD:
                self.head += chunk[: _HEAD - len(self.head)]
            start = 0
            while (end := chunk.find(b"\n", start)) >= 0:
                offset = self.offset
                self.offset += len(self.buf) + end - start + 1
                if self.too_long:
                    self.too_long = False
                elif len(self.buf) + end - start > _reader.MAX_LINE_BYTES:  # (its last piece: as read_line)
                    self.skipped(f"{self.path}: line at byte {offset} skipped: {_too_long()}")
                else:
                    self.buf += chunk[start : end + 1]  # (with its newline: parsed as a whole file's are)
                    raw = bytes(self.buf)
                    yield from self._line(raw, offset, False)
                self.buf.clear()
                start = end + 1
            if self.too_long:
                self.offset += len(chunk) - start  # (the skipped line's bytes, counted as read)
                continue
            self.buf += chunk[start:]
            if len(self.buf) > _reader.MAX_LINE_BYTES:
                self.skipped(f"{self.path}: line at byte {self.offset} skipped: {_too_long()}")
                self.offset += len(self.buf)
                self.buf.clear()
                self.too_long = True

    def _backlog(self) -> Generator[_Line, None, bool]:
        """The lines of every backup not dealt with yet, oldest first, but those of files
        read here before and of the open file, if one is open (it may have been rotated,
        even compressed, since it was opened: a backup holding what it holds is that file).
        Returns whether there was such a backup."""
        found = {_key(b): _backup_key(b) for b in self.listings.backups(self.path)}
        keys = sorted(set(found) - self.history - self.done)
        if not keys:
            return False
        try:
            current = b"" if self.file is None else os.pread(self.file.fileno(), _HEAD, 0)
        except OSError:
            current = b""  # (the open file's own read says it)
        for key in keys:
            self.done.add(key)
            name = found[key]  # (opened by the path it was found under; known by its key)
            if _ident(name) == self.ident:
                # The open file, rotated already: read it through (to its end) before
                # the backups made after it.
                yield from self._drain()
                continue
            try:
                opened = _open_backup(name)
            except OSError as exc:  # (a FIFO or device by a backup's name: refused, not waited on)
                self.problem(Unread(f"{name}: {exc.strerror or exc}"))
                continue
            if opened is None:
                self.problem(Unread(f"{name}: rotated away and gone before it could be read"))
                continue
            raw, path = opened
            head = read_head_open(raw, _HEAD)[0]
            if head == current:
                raw.close()  # the open file, rotated and compressed already: as above
                yield from self._drain()
                continue
            read = [offset for seen, offset in self.heads if seen and head.startswith(seen)]
            # read here while it was the live file: only what was written after the last
            # look (a copy made as the file was cut in place, copytruncate), if anything
            yield from _read_open(raw, path, self.seq, self.problem, start=max(read, default=0))
        return True

    def _from_the_start(self) -> None:
        """Read the open file from its start again (it was cut in place)."""
        assert self.file is not None
        self.file.seek(0)
        self.heads.append((self.head, self.offset))  # (a copy made as it was cut: read on from here)
        self.offset, self.head = 0, b""
        self.buf, self.too_long = bytearray(), False

    def _head_changed(self, fd: int) -> bool:
        """Whether the open file no longer starts with the bytes read from its start."""
        head = self.head
        if not head:
            return False
        try:
            return os.pread(fd, len(head), 0) != head
        except OSError:
            return False

    def poll(self) -> Iterator[_Line]:
        """The lines written since the last poll (a torn line is kept until it ends)."""
        if self.dead:
            return
        if self.file is None or self.fresh:
            if self.file is None and not self._open():
                if self.once and self.failure is None and not (yield from self._backlog()):
                    self.problem(Unread(f"{self.path}: no such file"))  # (gone since it was listed)
                return
            self.fresh = False
            yield from self._backlog()
        if self.file is None:
            return  # (a read of it failed in the backlog: dead)
        if self._head_changed(self.file.fileno()):
            self._from_the_start()  # cut in place, and written past where we were since
            yield from self._backlog()  # a copy made as it was cut holds what came before
        yield from self._drain(limited=True)
        if self.more or self.dead:
            return  # more to read at once: the caller looks at stop first
        try:
            st = os.stat(self.path)
        except OSError:
            return  # renamed away, the new file not yet there (or not ours to read): keep what is open
        if self.file is None:
            return
        if (st.st_dev, st.st_ino) == self.ident:
            if os.fstat(self.file.fileno()).st_size < self.offset + len(self.buf):
                self._from_the_start()  # truncated in place (copytruncate)
                yield from self._backlog()  # a copy made as it was cut holds what came since
                yield from self._drain()
            return
        yield from self._drain()  # rotated: the writer is done with the old file
        if self.dead:
            return
        if self.buf and not self.too_long:
            yield from self._line(bytes(self.buf), self.offset, True)
        self.heads.append((self.head, self.offset + len(self.buf)))
        self.close()
        if self._open():
            yield from self._backlog()
            yield from self._drain()


def _ident(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _open_backup(key: str) -> tuple[IO[bytes], str] | None:
    """A backup, compressed (``key.gz``) or not yet (``key``): open, with the path opened;
    None when neither is there. Compression may finish between two tries (``key.gz``
    appears whole, then ``key`` goes). Anything but a regular file by that name is refused
    (``OSError``), never waited on (a FIFO)."""
    for path in (key + ".gz", key, key + ".gz"):
        try:
            return io.BufferedReader(open_regular(path), _CHUNK), path  # the caller closes it
        except FileNotFoundError:
            continue
    return None


def follow(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    options: ViewOptions | None = None,
    *,
    stop: threading.Event | None = None,
    idle: float = 10.0,
    poll: float = 0.25,
    on_problem: Problem | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_poll: Callable[[], None] | None = None,
    **overrides: Any,
) -> Iterator[str]:
    """Like :func:`render`, then on and on: each tree is shown when its end line arrives
    or when it has had no new line for ``idle`` seconds (then as unfinished); one-line
    tasks at once. Backups among ``paths`` are read once; live files are followed through
    truncation and rotation, looked at every ``poll`` seconds. Ends when ``stop`` is set
    (or when the caller stops iterating). Entries come in the order they complete.

    Backups that exist when it starts are history (read only when named in ``paths``, or
    in a directory named there); those made later are read as they come.

    ``clock`` (for idleness) and ``on_poll`` (called after each look at the files, before
    any wait) are for tests. Raises ``UsageError`` at once for a path that names nothing."""
    opts = _options(options, overrides)
    files, live = _listed(paths)
    return _follow(
        files,
        history=live,
        renderer=_Renderer(opts),
        stop=stop if stop is not None else threading.Event(),
        idle=idle,
        poll=poll,
        problem=on_problem or (lambda _: None),
        clock=clock,
        on_poll=on_poll,
    )


def _follow(
    files: list[str],
    *,
    history: dict[str, tuple[set[str], _Mark | None]],
    renderer: _Renderer,
    stop: threading.Event,
    idle: float,
    poll: float,
    problem: Problem,
    clock: Callable[[], float],
    on_poll: Callable[[], None] | None,
) -> Iterator[str]:
    assembler = _Assembler()
    seq = itertools.count()
    tails: list[_Tail] = []
    listings = _Listings()

    def feed(lines: Iterable[_Line]) -> Iterator[str]:
        for line in lines:
            yield from _emit(renderer, assembler.add(line, clock()))

    try:
        for path in files:
            if path not in history:  # (a backup, a gzip file: it no longer grows)
                yield from feed(_read_file(path, seq, problem))
            else:
                before, mark = history[path]
                tails.append(_Tail(path, seq, problem, before, mark=mark, listings=listings))
        while not stop.is_set():
            got = False
            for tail in tails:
                for line in tail.poll():
                    got = True
                    yield from feed([line])
                    if stop.is_set():
                        return  # Ctrl-C while a large file is being read
                got = got or tail.more
            yield from _emit(renderer, assembler.idle(clock(), idle))
            if on_poll is not None:
                on_poll()
            if not got and stop.wait(poll):
                break
    finally:
        for tail in tails:
            tail.close()


# -- the command ---------------------------------------------------------------------------------

_DESCRIPTION = """\
Show logxpy-otel files as trees: each trace a tree (header: short trace id, service,
action, status, duration), one line per record (time, level, message, attributes);
nested actions as branches. A record outside any trace is one line. Entries come in
time order (a tree at its first record's time).

Each argument is a log file (live, rotated backup, or gzip backup: told by content), a
directory (every rotated family in it) or a quoted glob such as 'logs/app*'.

Filters: --trace picks trees; --level, --since, --until and --grep pick records (a
tree is shown with its matching records, or not at all)."""

_EPILOG = """\
times: ISO-8601 (2026-11-26T12:04:05Z, '2026-11-26 12:04', 12:04 for today; local
  time unless a zone is given or --utc) or an age: 30s, 10m, 2h, 1d.
colour: --color=auto colours a terminal unless NO_COLOR is set (or TERM=dumb);
  --color=always wins over NO_COLOR.
exit status: 0 shown (lines that are not of the format are skipped, with a note on
  stderr), 1 a file, or part of one, could not be read (not a regular file, an I/O
  error; with --follow, at any time: said on stderr, the rest is shown), 2 usage error
  (a path that names nothing, a bad time or level)."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``view`` subcommand to the ``logxpy-otel`` command's subparsers."""
    view = commands.add_parser(
        "view",
        help="show logxpy-otel files as trees on the terminal (--follow: as they grow)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    view.add_argument("paths", nargs="+", metavar="FILE|DIR|GLOB")
    view.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep reading: show each tree when it completes, follow rotation; Ctrl-C ends",
    )
    view.add_argument("--trace", metavar="ID", help="only the trace(s) whose id starts with ID")
    view.add_argument("--level", metavar="LEVEL", help="only records at LEVEL and above (debug ... critical)")
    view.add_argument("--since", metavar="TIME", help="only records from TIME on")
    view.add_argument("--until", metavar="TIME", help="only records before TIME")
    view.add_argument("--grep", metavar="TEXT", help="only records with TEXT in the message or a value")
    view.add_argument("-v", "--verbose", action="store_true", help="also _otel, full tids and values")
    view.add_argument("--utc", action="store_true", help="times in UTC (default: local time)")
    view.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help="colour (default: auto)"
    )
    view.add_argument("--no-color", dest="color", action="store_const", const="never", help="no colour")
    view.add_argument(
        "--idle",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="with --follow: show a tree with no new line for this long as unfinished (default 10)",
    )


def run(args: argparse.Namespace, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """Run ``logxpy-otel view`` with parsed ``args``. Exit status: 0; 1 when a file, or part
    of one, could not be read (:class:`Unread`); 2 for a usage error."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    unread = False

    def problem(text: str) -> None:
        nonlocal unread
        unread = unread or isinstance(text, Unread)
        print(f"logxpy-otel: {r.safe(text)}", file=err)  # (it names files: anyone's names)

    try:
        options = ViewOptions(
            ascii=not _can_draw(out),
            trace=args.trace,
            level=args.level,
            since=None if args.since is None else parse_time(args.since, utc=args.utc),
            until=None if args.until is None else parse_time(args.until, utc=args.utc),
            grep=args.grep,
            verbose=args.verbose,
            color=use_color(args.color, out),
            utc=args.utc,
        )
        if not (args.idle > 0 and math.isfinite(args.idle)):
            raise ValueError(f"--idle must be a number of seconds > 0; got {args.idle}")
    except ValueError as exc:
        problem(str(exc))
        return 2
    stop = threading.Event()
    undo = install_stop_handlers(stop) if args.follow else (lambda: None)
    # Reading builds a dict per line and no reference cycles: the cyclic collector would
    # only rescan them all, again and again (more than half the time of a large file).
    collecting = gc.isenabled()
    gc.disable()
    try:
        if args.follow:
            entries = follow(args.paths, options, stop=stop, idle=args.idle, on_problem=problem)
        else:
            entries = render(args.paths, options, on_problem=problem)
        for entry in entries:
            print(entry, file=out, flush=args.follow)
    except UsageError as exc:
        problem(str(exc))
        return 2
    except BrokenPipeError:
        # The reader went away (| head): quietly, and without a second error at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, out.fileno())
        except (AttributeError, OSError, ValueError):
            pass
        return 1 if unread else 0
    except KeyboardInterrupt:
        return 130
    finally:
        undo()
        if collecting:
            gc.enable()
    return 1 if unread else 0


def _can_draw(out: IO[str]) -> bool:
    """Whether the stream can write box drawing; if not, it is set to write anything else
    it cannot encode (from the file) as ``\\uXXXX`` rather than fail."""
    try:
        "├─│└…µ".encode(getattr(out, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        reconfigure = getattr(out, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m logxpy_otel.viewer FILE...``: the ``view`` subcommand on its own."""
    parser = argparse.ArgumentParser(prog="logxpy-otel")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["view", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
