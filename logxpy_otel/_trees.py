"""Line numbering in write order: ``tid``/``lvl`` heads and the start/end lines of trace trees.

With span lines (:class:`SpanStart`, :class:`SpanEnd`), a trace's tree nests: each span
is an action under its parent span's (or the trace's root), and a record logged in a span
is a child of that span's action. A record or span whose parent this tree never saw
(started before the processor, a remote parent, sampled out, in an earlier file) hangs
from its nearest known open ancestor, else the root. See docs/format.md, "Spans".

Only the writer (one thread at a time, under its I/O lock) touches this state, so it
takes no lock of its own. See docs/format.md, "Structure lines".
"""

from __future__ import annotations

import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final

import orjson

from ._format import LineItem, SpanEnd, SpanStart, role_whole
from ._native import speedup

__all__ = ["MAX_SPAN_DEPTH", "TRACE_TID_SEPARATOR", "TreeNumberer", "base62"]

#: How deep span actions nest: a span below this depth hangs from its ancestor at it (its
#: lines stay in the right subtree; ``lvl`` lists stay bounded, which sizing relies on).
MAX_SPAN_DEPTH: Final = 32

#: How many span actions a trace remembers before it forgets the ended ones (a long-lived
#: span with many short children would otherwise hold them all until the trace closes).
_REMEMBERED_SPANS: Final = 4096

_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(n: int) -> str:
    """``n`` (>= 0) in base 62, most significant digit first."""
    if n == 0:
        return "0"
    digits = []
    while n:
        n, r = divmod(n, 62)
        digits.append(_ALPHABET[r])
    return "".join(reversed(digits))


#: Between a trace id and the writer's token in a trace's ``tid`` (docs/format.md).
TRACE_TID_SEPARATOR: Final = "~"


def _task_prefix() -> str:
    """This writer's token (pid and 3 random chars, base62): the per-process part of every
    ``tid`` it writes, so that several processes can share one file."""
    return base62(os.getpid()) + "".join(secrets.choice(_ALPHABET) for _ in range(3))


class _Action:
    """A span's action in a trace's tree: the ``lvl`` prefix of its lines (``b"2,3,"``), its
    next child's number, its parent's action (None: the trace's root), and whether it is open."""

    __slots__ = ("depth", "earlier", "next", "open", "parent", "prefix")

    def __init__(self, prefix: bytes, parent: _Action | None) -> None:
        self.prefix = prefix
        self.next = 2  # [..., 1] is the start line
        self.parent = parent
        self.open = True
        #: An action of the same span id still open when this one started (the same span
        #: seen twice: a processor added twice, an id generator that repeats): it is the
        #: span's again once this one ends, so each start gets its end.
        self.earlier: _Action | None = None
        self.depth: int = 1 if parent is None else parent.depth + 1


class _Trace:
    """One open trace: its line head, next ``lvl``, greatest record ts, and whether it failed;
    with spans, its span actions by span id and how many are open."""

    __slots__ = ("failed", "head", "last_seen", "last_ts", "next_lvl", "open_spans", "spans", "trace_id")

    def __init__(self, trace_id: str, ts: float, now: float, token: bytes) -> None:
        self.trace_id = trace_id
        self.head = b'{"tid":"' + trace_id.encode("ascii") + token + b'","lvl":['
        self.next_lvl = 2
        self.last_ts = ts
        self.failed = False
        self.last_seen = now
        self.spans: dict[str, _Action] | None = None
        self.open_spans = 0

    def place(self, parent: _Action | None) -> bytes:
        """The next ``lvl`` (without its ``]``) under ``parent``, or the root: taken."""
        if parent is None:
            lvl = self.next_lvl
            self.next_lvl = lvl + 1
            return b"%d" % lvl
        lvl = parent.next
        parent.next = lvl + 1
        return parent.prefix + b"%d" % lvl

    def action_of(self, span_id: str | None) -> _Action | None:
        """The open action a line of ``span_id`` goes under: that span's, else its nearest open
        ancestor's, else None (the root)."""
        spans = self.spans
        action = spans.get(span_id) if spans is not None and span_id is not None else None
        while action is not None and not action.open:
            action = action.parent
        return action

    def start(self, span_id: str | None, parent: str | None) -> _Action:
        """Open ``span_id``'s action under ``parent``'s (or the nearest open ancestor, or the root)."""
        under = self.action_of(parent)
        # Too deep: under the nearest open ancestor above the bound (one that has ended
        # already has its end line: nothing goes under it after that).
        while under is not None and (under.depth >= MAX_SPAN_DEPTH or not under.open):
            under = under.parent
        action = _Action(self.place(under) + b",", under)
        spans = self.spans
        if spans is None:
            spans = self.spans = {}
        if span_id is not None:
            earlier = spans.get(span_id)
            if earlier is not None and earlier.open:
                action.earlier = earlier
            spans[span_id] = action
        self.open_spans += 1
        return action

    def end(self, span_id: str | None, action: _Action) -> None:
        """``action`` (``span_id``'s) has ended: the span's earlier open action, if any, is
        the span's again. Ended actions serve only records logged in a span after its end:
        past ``_REMEMBERED_SPANS``, all but the half most recently started are forgotten."""
        action.open = False
        self.open_spans -= 1
        # its earlier action serves only now: let it go (a span id started again and again
        # while open would otherwise chain every one of them)
        earlier, action.earlier = action.earlier, None
        spans = self.spans
        if spans is None or span_id is None:
            return
        if earlier is not None and earlier.open and spans.get(span_id) is action:
            spans[span_id] = earlier
        if len(spans) > _REMEMBERED_SPANS and len(spans) > 2 * self.open_spans:
            # (at least half of them ended: a prune's cost is paid by the ends before it,
            # however many spans stay open)
            forget = len(spans) - self.open_spans - _REMEMBERED_SPANS // 2
            kept = {}
            for key, known in spans.items():
                if known.open or forget <= 0:
                    kept[key] = known
                else:
                    forget -= 1
            self.spans = kept


#: The C path of :class:`TreeNumberer` where it is built: the same state as C data
#: (``_forest.h``), numbered by the same rules, held to this module's Python loop line for
#: line and state for state by the tests. No Python object per trace or span action.
_Forest = speedup("Forest")


def _check_items(items: Sequence[LineItem]) -> None:
    """Refuse a batch holding anything that is not a line item, before any of it is
    numbered (a refused batch is retried, then dropped: it must change no trace)."""
    for item in items:
        if not (
            isinstance(item, tuple)
            and len(item) == 7
            and isinstance(item[3], bytes)
            and isinstance(item[4], bytes)
            and (item[6] is None or (type(item[6]) in _ROLES and item[0] is not None))
            and _is_id(item[0])
            and _is_id(item[5])
            and (item[6] is None or _is_role(item[6]))
            and (item[0] is None or isinstance(item[1], float | int))
        ):
            raise TypeError(f"number: each item must be a LineItem tuple, not {_described(item)}")


def _is_role(role: SpanStart | SpanEnd) -> bool:
    """A role (its type checked) with its fields, its parent an id: read as the C loop reads
    it (tuple's own length, whatever the class says)."""
    return role_whole(role) and _is_id(role[0])


def _described(item: object) -> str:
    """``item`` for an error message: its repr, cut short, or its type where a part's repr
    fails (a role made past its ``__new__``)."""
    try:
        return f"{item!r:.80}"
    except Exception:  # noqa: BLE001 - the refusal's message, whatever the item
        return f"a {type(item).__name__}"


def _is_id(value: object) -> bool:
    """A trace or span id as the items hold one: an ASCII str, or None (str's own isascii:
    a subclass's cannot say otherwise, as the C loop reads the characters)."""
    return value is None or (isinstance(value, str) and str.isascii(value))


_ROLES: Final = (SpanStart, SpanEnd)


class TreeNumberer:
    """Gives each line its ``tid``/``lvl`` and frames each trace with start and end lines.

    A trace is closed (end line) when it has been idle for ``idle_timeout_s``, when more
    than ``max_open`` traces are open (least recently used first), and by
    :meth:`close_all` (shutdown, rotation). A later record of a closed trace opens it again.
    """

    def __init__(
        self,
        *,
        idle_timeout_s: float = 5.0,
        max_open: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        speedups: bool = True,
    ) -> None:
        self._idle = idle_timeout_s
        self._max_open = max_open
        self._clock = clock
        self._open: OrderedDict[str, _Trace] = OrderedDict()
        token = _task_prefix().encode("ascii")
        # A trace's tid is "<trace id>~<token>": the lines one process writes of a trace
        # are one tree of their own, however many processes write that trace to one file.
        self._token = TRACE_TID_SEPARATOR.encode("ascii") + token
        self._trace_token = self._token
        self._restarts = 0
        self._task_head = b'{"tid":"' + token + b"."
        self._task_count = 0
        self._broken = False
        self._forest = (
            _Forest(
                self._token,
                self._task_head,
                max_open,
                idle_timeout_s,
                MAX_SPAN_DEPTH,
                SpanStart,
                SpanEnd,
                orjson.dumps,
            )
            if speedups and _Forest is not None
            else None
        )

    @property
    def idle_timeout_s(self) -> float:
        """How long a trace with no line (and no span open) stays open."""
        return self._idle

    @idle_timeout_s.setter
    def idle_timeout_s(self, seconds: float) -> None:
        self._idle = seconds
        if self._forest is not None:
            self._forest.idle_timeout_s = seconds

    @property
    def open_traces(self) -> int:
        if self._forest is not None:
            return int(self._forest.open_traces)
        return len(self._open)

    @property
    def broken(self) -> bool:
        """A numbering raised part way (a callback's error, an interrupt): the traces it
        opened were forgotten, and the others moved on without their lines. Until
        :meth:`restart` closes them, their trees would go on with holes."""
        return bool(self._forest.broken) if self._forest is not None else self._broken

    @property
    def appends(self) -> bool:
        """Whether :meth:`number_append` can be called (the C path is in use)."""
        return self._forest is not None

    def number_append(
        self, items: Sequence[LineItem], out: list[bytes], fd: int, expected: int
    ) -> tuple[int, int, int]:
        """:meth:`number`, then the lines appended to the file open at ``fd`` under its lock
        when it is ``expected`` bytes long, in one release of the GIL (``Forest.number_append``):
        ``(span_lines, status, written)``, with ``_speedups.append_locked``'s status; the
        lines are in ``out`` unless all were written. Only where :attr:`appends`."""
        assert self._forest is not None
        spans, status, written = self._forest.number_append(
            items, out, self._clock(), _REMEMBERED_SPANS, fd, expected
        )
        return int(spans), int(status), int(written)

    def _state(self) -> tuple[int, list[tuple[object, ...]]]:
        """What decides the later lines, alike for both paths (for the tests): the count of
        task lines, and per open trace (least recently used first) its id, head, next
        ``lvl``, greatest ts, failed flag, last use, open spans, and its span actions by
        span id as ``(prefix, next, open, depth, parent's prefix, earlier's prefix)``."""
        if self._forest is not None:
            count, traces = self._forest.state()
            return int(count), list(traces)

        def prefix(action: _Action | None) -> bytes | None:
            return None if action is None else action.prefix

        return self._task_count, [
            (
                trace.trace_id,
                trace.head,
                trace.next_lvl,
                float(trace.last_ts),
                trace.failed,
                trace.last_seen,
                trace.open_spans,
                {
                    span: (a.prefix, a.next, a.open, a.depth, prefix(a.parent), prefix(a.earlier))
                    for span, a in (trace.spans or {}).items()
                },
            )
            for trace in self._open.values()
        ]

    def number(self, items: Sequence[LineItem], out: list[bytes]) -> int:
        """Append the finished lines for ``items`` (and any structure lines) to ``out``;
        how many of ``items`` were span start or end lines."""
        now = self._clock()
        if self._forest is not None:  # (_REMEMBERED_SPANS read per batch: tests change it)
            return int(self._forest.number(items, out, now, _REMEMBERED_SPANS))
        items = tuple(items)  # (as the C loop: the batch as given, whatever code run here does to it)
        _check_items(items)  # as the C loop: a batch it refuses changes no trace
        opened: list[str] = []
        try:
            return self._number_items(items, now, out, opened)
        except BaseException:
            # As the C loop: the lines numbered so far are not written. The traces this call
            # opened have none in the file: forgotten. The others moved on: ``broken``.
            for trace_id in opened:
                self._open.pop(trace_id, None)
            self._broken = True
            raise

    def _number_items(
        self, items: Sequence[LineItem], now: float, out: list[bytes], opened: list[str]
    ) -> int:
        """The Python loop of :meth:`number` (``opened``: the ids of the traces it opens)."""
        traces = self._open
        last: _Trace | None = None
        spans = 0
        for trace_id, ts, failed, body, tail, span_id, role in items:
            if trace_id is None:
                self._task_count += 1
                out.append(
                    b'%s%s","lvl":[1],%s%s\n'
                    % (self._task_head, base62(self._task_count).encode(), body, tail)
                )
                continue
            if last is not None and last.trace_id == trace_id:
                trace = last  # runs of one trace: it is already the most recently used
            else:
                found = traces.get(trace_id)
                if found is None:
                    trace = self._open_trace(trace_id, ts, now, out)
                    opened.append(trace_id)
                else:
                    trace = found
                    traces.move_to_end(trace_id)
                last = trace
            trace.last_seen = now
            if ts > trace.last_ts:  # the end line carries the greatest ts (never before the start)
                trace.last_ts = ts
            if failed:
                trace.failed = True
            if role is None:
                if trace.spans is None:
                    lvl = trace.next_lvl
                    trace.next_lvl = lvl + 1
                    out.append(b"%s%d],%s%s\n" % (trace.head, lvl, body, tail))
                else:
                    lvl_text = trace.place(trace.action_of(span_id))
                    out.append(b"%s%s],%s%s\n" % (trace.head, lvl_text, body, tail))
            elif type(role) is SpanStart:
                spans += 1
                action = trace.start(span_id, role[0])  # (its parent: as the check and C read it)
                out.append(b"%s%s1],%s%s\n" % (trace.head, action.prefix, body, tail))
            else:
                spans += 1
                if self._end_span(trace, (body, tail, span_id, role), out):
                    del traces[trace_id]  # its last span ended: the trace's tree is complete
                    last = None
        return spans

    def _end_span(
        self, trace: _Trace, line: tuple[bytes, bytes, str | None, SpanEnd], out: list[bytes]
    ) -> bool:
        """Write a span's end line (after its start line, if this tree has not seen it).
        True when this closed the trace: no span of it is open any more, so its tree is
        complete now (a record that comes later opens it again)."""
        body, tail, span_id, role = line
        spans = trace.spans
        action = spans.get(span_id) if spans is not None and span_id is not None else None
        if action is None or not action.open:
            action = trace.start(span_id, role[0])
            out.append(b"%s%s1],%s\n" % (trace.head, action.prefix, role.start_body()))
        out.append(b"%s%s],%s%s\n" % (trace.head, trace.place(action), body, tail))
        trace.end(span_id, action)
        if trace.open_spans:
            return False
        self._close(trace, out)
        return True

    def _open_trace(self, trace_id: str, ts: float, now: float, out: list[bytes]) -> _Trace:
        """Open a trace (its start line), closing the least recently used one if too many are open."""
        traces = self._open
        if len(traces) >= self._max_open:
            self._close(traces.popitem(last=False)[1], out)
        trace = _Trace(trace_id, ts, now, self._trace_token)
        traces[trace_id] = trace
        # float(): a ts is a plain float from our encoders; a subclass would make orjson raise
        out.append(
            trace.head + b'1],"ts":' + orjson.dumps(float(ts)) + b',"at":"otel:trace","st":"started"}\n'
        )
        return trace

    def close_idle(self, out: list[bytes]) -> None:
        """Close every trace with no record for ``idle_timeout_s``."""
        if self._forest is not None:
            if self._forest.open_traces:  # (the clock asked only then, as below)
                self._forest.close_idle(out, self._clock())
            return
        if not self._open:
            return
        now = self._clock()
        limit = now - self._idle
        traces = self._open
        for _ in range(len(traces)):  # each trace looked at once at most
            trace = next(iter(traces.values()))
            if trace.last_seen > limit:
                break
            if trace.open_spans:
                # A span still open is the trace still running (a long request that logs
                # nothing): it stays, as if just seen. Too many open: LRU closes it.
                trace.last_seen = now
                traces.move_to_end(trace.trace_id)
                continue
            self._close(traces.popitem(last=False)[1], out)

    def restart(self, out: list[bytes]) -> None:
        """After a write that lost lines of open traces (a full disk): close every open
        trace (its end line, for the files that took the rest) and take a new token for
        traces (the writer's own and a count: ``<token>-1``, ``<token>-2``...), so that a
        trace's next lines open a new tree, whole in the file, whose tid no cut tree
        shares. (Standalone task ids go on counting: each is one line.)"""
        if self._forest is not None:
            self._forest.restart(out)
            return
        self.close_all(out)
        self._broken = False
        self._new_trace_token()

    def _new_trace_token(self) -> None:
        """The writer's token with the next count (``<token>-1``, ``<token>-2``...) for the
        traces opened from now on: no token this writer used comes back."""
        self._restarts += 1
        self._trace_token = self._token + b"-" + base62(self._restarts).encode("ascii")

    def close_all(self, out: list[bytes]) -> None:
        """Close every open trace, least recently used first."""
        if self._forest is not None:
            self._forest.close_all(out)
            return
        while self._open:
            self._close(self._open.popitem(last=False)[1], out)

    def _close(self, trace: _Trace, out: list[bytes]) -> None:
        """Write ``trace``'s end line. With spans still open (too many open traces, rotation,
        shutdown) its tree stays unfinished, and logxpy's tools would take a later tree of
        the same tid into it: traces opened from now on take a new token (format rule 4)."""
        if trace.open_spans:
            self._new_trace_token()
        status = b"failed" if trace.failed else b"succeeded"
        out.append(
            trace.head
            + str(trace.next_lvl).encode()
            + b'],"ts":'
            + orjson.dumps(float(trace.last_ts))
            + b',"at":"otel:trace","st":"'
            + status
            + b'"}\n'
        )
