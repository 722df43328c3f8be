"""Where a writer's batches go: numbering, rotation before a file would pass ``max_bytes``,
and delivery to each destination, counting what reached one.

One concern: from a batch of line items to bytes in files. The writer
(:class:`~logxpy_otel._writer.AsyncWriter`) decides when and from which thread; this
module does the writing, always under the writer's I/O lock (one thread at a time), so
it takes no lock of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ._destinations import (
    END_LINE_MAX,
    AsyncFileDestination,
    ClosableDestination,
    Destination,
    FlushableDestination,
    PartialWriteError,
    RetryingDestination,
    RotatingDestination,
    fit,
    records_in,
    room_of,
    rotation_due,
)
from ._diagnostics import is_application_error, raise_if_application_error
from ._format import LineItem
from ._queue import span_lines
from ._trees import TreeNumberer

__all__ = ["Output"]


class Output:
    """The destinations (and which optional methods each has: checked once, when set), the
    tree numbering of the lines, and the observer told of each write.

    ``failed(exc)`` is called for every exception a destination raises (counted and
    reported by the writer); nothing here raises out of a write.
    """

    def __init__(
        self, destinations: tuple[Destination, ...], failed: Callable[[BaseException], None]
    ) -> None:
        self._failed = failed
        self.trees = TreeNumberer()
        self._nested = False
        #: Which destinations (by id) missed the last lines delivered, and whether one took
        #: only part of them since: see _after_delivery.
        self._missing: frozenset[int] = frozenset()
        self._cut = False
        #: ``observer(records, seconds, ok)`` after each write (see AsyncWriter.observe_batches).
        self.observer: Callable[[int, float, bool], None] | None = None
        self.set_destinations(destinations)

    # -- what is written where -----------------------------------------------------------

    @property
    def destinations(self) -> tuple[Destination, ...]:
        return self._destinations

    def set_destinations(self, destinations: tuple[Destination, ...]) -> None:
        self._destinations = destinations
        self._rotating: tuple[RotatingDestination, ...] = tuple(
            d for d in destinations if isinstance(d, RotatingDestination)
        )
        self._flushable = tuple(d for d in destinations if isinstance(d, FlushableDestination))
        self._closable = tuple(d for d in destinations if isinstance(d, ClosableDestination))
        self._retrying = tuple(d for d in destinations if isinstance(d, RetryingDestination))

    def retry_until(self, deadline: float) -> None:
        """Every destination ends its retries of a failed write by ``deadline`` (the exit's)."""
        for destination in self._retrying:
            destination.retry_until(deadline)

    def use_trees(self, trees: TreeNumberer) -> None:
        """Number with ``trees`` from now on (a fresh numbering: at start and in a forked child)."""
        self.trees = trees

    def nest_spans(self) -> None:
        """Span lines come too: each trace's tree nests by its spans (see ``_trees``); a
        batch's room in a file is counted for the longer lines that makes."""
        self._nested = True

    # -- writing -------------------------------------------------------------------------

    def write(self, items: Sequence[LineItem], failed: list[object]) -> tuple[int, int, tuple[int, int]]:
        """Write as many of ``items`` (from the first) as one write to each file can take.

        First rotate the files that are due, or that the next item would take past
        ``max_bytes`` (``room()``), closing open traces first: each file is self-contained.
        Then number as many items as every file has room for, keeping room for the end
        lines of open traces (at least one item: a line longer than ``max_bytes`` goes
        alone into a file), and write them. Destinations in ``failed`` (they raised earlier
        in this batch) are skipped; one that raises is added. Returns how many items were
        taken, how many of those, from the first, reached a destination, and how many span
        lines were among those and among the rest of the taken ones. After a write
        a destination missed (in part), the open traces may start over in new trees
        (:meth:`_after_delivery`).
        """
        trees, nested = self.trees, self._nested
        reserve = trees.open_traces * END_LINE_MAX
        live = [d for d in self._rotating if d not in failed]
        due = [d for d in live if rotation_due(d) or not fit(items[:1], room_of(d, reserve), nested=nested)]
        if due:
            self.close_trees(failed)  # each file is self-contained: traces end in it
            for destination in due:
                try:
                    destination.rotate()
                except Exception as exc:  # noqa: BLE001 - counted; the write below reports too
                    raise_if_application_error(exc)
                    self._failed(exc)
            reserve = trees.open_traces * END_LINE_MAX
        rooms = [room for d in live if (room := room_of(d, reserve)) is not None]
        count = max(1, fit(items, min(rooms), nested=nested)) if rooms else len(items)
        out: list[bytes] = []
        batch = items[:count] if count < len(items) else items
        observer = self.observer
        one_call = self._one_call(failed)
        if one_call is None:
            try:
                spans = trees.number(batch, out)
            except BaseException:
                self._after_broken_numbering()
                raise
            data = b"".join(out)
            started = time.perf_counter() if observer is not None else 0.0
            reached = self.deliver(data, failed)
        else:  # (the observer's seconds then hold the numbering too: it is the same call)
            started = time.perf_counter() if observer is not None else 0.0
            spans, data, reached = self._number_and_append(one_call, batch, out, failed)
        written = count if reached is None else records_in(data, reached)
        if spans and written != count:  # (the numbering counted them; the lost ones are looked for)
            lost = spans - span_lines(items[:written])
            spans_of = (spans - lost, lost)
        else:
            spans_of = (spans, 0)
        self._after_delivery(failed)
        if observer is not None:
            try:
                observer(count, time.perf_counter() - started, written == count)
            except Exception:  # noqa: BLE001 - an observer never affects the writes
                pass
        return count, written, spans_of

    def _one_call(self, failed: list[object]) -> tuple[AsyncFileDestination, int] | None:
        """The one file a batch goes to, and its size, where the batch can be numbered and
        appended in one call that lets the GIL go once (the writer's common case); else None."""
        if failed or len(self._destinations) != 1 or not self.trees.appends:
            return None
        destination = self._destinations[0]
        if not isinstance(destination, AsyncFileDestination):
            return None
        size = destination.one_call_size()
        return None if size is None else (destination, size)

    def _number_and_append(
        self,
        one_call: tuple[AsyncFileDestination, int],
        batch: Sequence[LineItem],
        out: list[bytes],
        failed: list[object],
    ) -> tuple[int, bytes, int | None]:
        """Number ``batch`` and append it to the file in one call: the span lines numbered,
        the lines where not all went in at once (else empty), and what :meth:`deliver`
        answers. The numbering's own error is raised, as :meth:`TreeNumberer.number` raises it."""
        destination, expected = one_call
        numbered: list[int] = []

        def call(fd: int, size: int) -> tuple[int, int]:
            spans, status, written = self.trees.number_append(batch, out, fd, size)
            numbered.append(spans)
            return status, written

        try:
            appended = destination.append_by(call, expected, lambda: b"".join(out))
        except BaseException as exc:
            if not numbered:
                self._after_broken_numbering()
                raise  # (nothing written: as from trees.number)
            if not isinstance(exc, Exception) or is_application_error(exc):
                self._start_trees_over()  # (numbered, and not known to be written: see deliver)
                raise
            return numbered[0], b"".join(out), self._missed(destination, exc, failed, 0)
        if appended:
            return numbered[0], b"", None
        data = b"".join(out)  # (numbered, not written: the usual way)
        return numbered[0], data, self.deliver(data, failed)

    def _after_broken_numbering(self) -> None:
        """After a numbering that raised part way (``trees.broken``): the open trees moved
        on without the lines it numbered, so they are closed (end lines to the files) and
        go on under a new token, as after a write that lost lines; the batch's retry and
        all after it go into whole trees. Nothing here raises over the numbering's error."""
        if not self.trees.broken:
            return  # (refused before anything changed)
        self._start_trees_over()

    def _start_trees_over(self) -> None:
        """Close every open trace (end lines to the files) and go on under a new token, after
        lines its trees counted on did not go out; nothing here raises over the error that
        brought it here (see :meth:`_after_broken_numbering`, :meth:`deliver`)."""
        try:
            out: list[bytes] = []
            self.trees.restart(out)
            if out:
                self.deliver(b"".join(out), [])
        except Exception as exc:  # noqa: BLE001 - counted; the first error goes up
            self._failed(exc)

    def close_trees(self, failed: list[object] | None = None) -> None:
        """Write the end lines of every open trace."""
        out: list[bytes] = []
        self.trees.close_all(out)
        self._deliver_ends(out, failed)

    def _after_delivery(self, failed: list[object]) -> None:
        """After lines went out: when a file missed them that took the last ones (a disk just
        filled), took them after missing the last ones, or took only part of them, or when
        no file took them at all, the trees they were in cannot be completed there: every
        open trace is closed (end lines to the files that take them) and goes on in a new
        tree, whole from its start line, under a new token (see :meth:`TreeNumberer.restart`).
        A file that keeps failing beside others that work does not split their trees at
        every write."""
        missing = frozenset(map(id, failed))
        cut, self._cut = self._cut, False
        if cut or missing != self._missing or (missing and len(missing) >= len(self._destinations)):
            self._missing = missing
            out: list[bytes] = []
            self.trees.restart(out)
            if out:
                self.deliver(b"".join(out), list(failed))
                self._cut = False  # (end lines taken in part cut no tree: the trees are over)

    def close_idle(self) -> None:
        """Write the end lines of the traces idle for their timeout."""
        out: list[bytes] = []
        self.trees.close_idle(out)
        self._deliver_ends(out, None)

    def _deliver_ends(self, out: list[bytes], failed: list[object] | None) -> None:
        """Deliver trees' end lines: to the file their other lines are in. A file deleted
        under us is seen first (``rotation_due``), so the end lines go into it rather than
        make a new file at the path to hold nothing else; the next batch opens one. A file
        that misses them is a file that missed lines (see :meth:`_after_delivery`): a
        trace closed here and opened again must not take up its cut tree's tid."""
        if out:
            for destination in self._rotating:
                rotation_due(destination)
            missed: list[object] = [] if failed is None else failed
            self.deliver(b"".join(out), missed)
            self._after_delivery(missed)

    def deliver(self, data: bytes, failed: list[object] | None = None) -> int | None:
        """Give ``data`` to every destination but those in ``failed`` (which collects the
        ones that raise). None if one took it all; else how many of its lines, from the
        first, reached one (whole: a :class:`PartialWriteError` counts them)."""
        reached: int | None = 0
        for destination in self._destinations:
            if failed is not None and destination in failed:
                continue
            try:
                destination(data)
                reached = None
            except BaseException as exc:
                if isinstance(exc, Exception) and not is_application_error(exc):
                    reached = self._missed(destination, exc, failed, reached)
                    continue  # (one destination must not affect another)
                # Not ours to hold (gevent.Timeout, SystemExit, the application's alarm): it
                # goes up, and the batch is retried; the trees these lines were numbered in
                # start over first, so the retry goes into whole ones (else its lines follow
                # lines no file has).
                self._start_trees_over()
                raise
        return reached

    def _missed(
        self, destination: object, exc: Exception, failed: list[object] | None, reached: int | None
    ) -> int | None:
        """``destination`` raised ``exc`` on a write: counted, added to ``failed``; the new
        ``reached`` (see :meth:`deliver`)."""
        if isinstance(exc, PartialWriteError) and exc.lines:
            self._cut = True  # (a file took part of the lines: see _after_delivery)
        if reached is not None and isinstance(exc, PartialWriteError):
            reached = max(reached, exc.lines)
        if failed is not None:
            failed.append(destination)
        self._failed(exc)
        return reached

    # -- flushing and closing --------------------------------------------------------------

    def flush(self) -> bool:
        """Flush every destination that buffers; False if one raised."""
        ok = True
        for destination in self._flushable:
            try:
                destination.flush()
            except Exception as exc:  # noqa: BLE001 - counted and reported, never raised
                raise_if_application_error(exc)
                ok = False
                self._failed(exc)
        return ok

    def close(self, deadline: float | None = None) -> None:
        """Close every destination that can be closed; a file's background upkeep (a backup
        being compressed) is waited for until ``deadline`` (``time.monotonic``) at most."""
        for destination in self._closable:
            try:
                if isinstance(destination, AsyncFileDestination):
                    destination.close(None if deadline is None else max(0.0, deadline - time.monotonic()))
                else:
                    destination.close()
            except Exception as exc:  # noqa: BLE001
                self._failed(exc)
