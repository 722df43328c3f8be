"""Output: numbering and delivery of a batch. Here: the one-call path (``Output._one_call``),
where a batch for one file is numbered and appended in one release of the GIL
(``Forest.number_append``), held to the usual path (``trees.number``, then ``deliver``)
byte for byte, in each of the answers the one call can give."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _helpers import run_with_subinterpreters, start_body_raises_once
from test_speedups_nesting import check_file, in_span, span_end, span_start

from logxpy_otel import _trees
from logxpy_otel._destinations import AsyncFileDestination
from logxpy_otel._format import LineItem
from logxpy_otel._output import Output
from logxpy_otel._trees import TreeNumberer

needs_c = pytest.mark.skipif(_trees._Forest is None, reason="the C module is not in use")

T1, T2 = "5b8efff798038103d269b633813fc60c", "0123456789abcdef0123456789abcdef"
A, B, C = "a" * 16, "b" * 16, "c" * 16


def batches() -> list[list[LineItem]]:
    """Records in and out of spans, task lines, a span end whose start this file never
    saw (its start line comes from a Python callback) and times below one second (their
    text comes from orjson through the other callback): both callbacks run while the one
    call has let the GIL go."""
    return [
        [
            span_start(T1, A, None, 1000.0),
            in_span(T1, A, 1000.1, "in a"),
            in_span(None, None, 1000.2, "task"),
        ],
        [span_start(T1, B, A, 1000.3), in_span(T1, B, 1000.4, "in b", True), span_end(T1, B, A, 1000.5)],
        [span_end(T2, C, None, 0.75), in_span(T2, None, 0.5, "early"), in_span(T1, A, 1000.6, "late in a")],
        [span_end(T1, A, None, 1000.7), in_span(None, None, 1000.8, "task 2")],
    ]


#: The messages of :func:`batches`' records, in the order they are written.
BATCHES_MESSAGES = ["in a", "task", "in b", "early", "late in a", "task 2"]


def output(path: Path, *, one_call: bool, **options: Any) -> tuple[Output, list[BaseException]]:
    failures: list[BaseException] = []
    out = Output((AsyncFileDestination(path, retry_timeout_s=0.1, **options),), failures.append)
    out.use_trees(TreeNumberer())
    out.nest_spans()
    if not one_call:
        out._one_call = lambda failed: None  # type: ignore[method-assign]
    return out, failures


def tokens_out(data: bytes, numberer: TreeNumberer) -> bytes:
    """``data`` with the numberer's random token written as ``TOKEN``."""
    return data.replace(numberer._token[1:], b"TOKEN")


def count_one_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each answer of TreeNumberer.number_append, from now on."""
    answers: list[int] = []
    real = TreeNumberer.number_append

    def spy(self: TreeNumberer, *args: Any) -> tuple[int, int, int]:
        result = real(self, *args)
        answers.append(result[1])
        return result

    monkeypatch.setattr(TreeNumberer, "number_append", spy)
    return answers


@needs_c
@pytest.mark.parametrize("max_bytes", [None, 2000])
def test_the_one_call_path_writes_the_usual_paths_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_bytes: int | None
) -> None:
    """The same lines in the same files; with ``max_bytes``, the same rotations (the size
    the one call leaves decides the next one's room)."""
    answers = count_one_calls(monkeypatch)
    results = []
    for one_call in (True, False):
        folder = tmp_path / str(one_call)
        folder.mkdir()
        out, failures = output(folder / "app.jsonl", one_call=one_call, max_bytes=max_bytes, backup_count=20)
        taken = [out.write(batch, []) for batch in batches() * 3]
        out.close_trees()
        out.close()
        assert failures == []
        # (backups, oldest first, then the file: their names hold the time of the rotation)
        files = [tokens_out(p.read_bytes(), out.trees) for p in sorted(folder.iterdir())]
        results.append((taken, files))
    assert results[0] == results[1]
    assert answers and set(answers) == {0}, "in one call, all in"
    if max_bytes is None:
        assert len(answers) == 11, "all but the first batch (nothing written yet)"
        lines = check_file(results[0][1][-1])
        messages = [line["msg"] for line in lines if "msg" in line]
        assert messages == BATCHES_MESSAGES * 3
    else:
        assert len(results[0][1]) > 3, "rotated"


class _Truthy:
    """A ``failed`` flag that is no bool: its truth is Python code, run with the GIL."""

    def __bool__(self) -> bool:
        return True


class _Item(tuple):  # type: ignore[type-arg]
    """A line item of a tuple subclass: read with the GIL."""


def record_first_batches() -> list[list[Any]]:
    """Batches that start with a log record, so the one call reads them with the GIL let
    go (the writer's common case), and meet part way what it reads with the GIL: a span
    line, an int ts, a ``failed`` that is no bool, a tuple subclass; and a task line whose
    ``failed`` is never read."""
    int_ts = (T1, 1001, False, b'"ts":1001,"msg":"int"', b"}", A, None)
    truthy = (T2, 0.6, _Truthy(), b'"ts":0.6,"msg":"truthy"', b"}", None, None)
    task = (None, 1.0, _Truthy(), b'"ts":1.0,"msg":"task 2"', b"}", None, None)
    a_failed, a_sub = in_span(T1, None, 1000.1, "failed", True), _Item(in_span(T1, A, 1001.2, "subclass"))
    return [
        [in_span(T1, None, 1000.0, "root"), in_span(None, None, 1000.05, "task")],
        [a_failed, span_start(T1, A, None, 1000.2), in_span(T1, A, 1000.3, "a")],
        [in_span(T1, A, 1000.4, "int ts"), int_ts],
        [in_span(T2, None, 0.5, "early"), truthy],
        [in_span(T1, A, 1001.1, "x"), a_sub, span_end(T1, A, None, 1001.3)],
        [task, in_span(T2, None, 0.7, "late")],
    ]


@needs_c
def test_batches_that_start_with_a_record_are_read_without_the_gil_to_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one call reads a batch of records with the GIL let go, and takes the GIL back
    part way for an item it cannot read so: the same lines and the same trees as the usual
    path, whatever the item met part way."""
    answers = count_one_calls(monkeypatch)
    results = []
    for one_call in (True, False):
        path = tmp_path / f"{one_call}.jsonl"
        out, failures = output(path, one_call=one_call)
        taken = [out.write(batch, []) for batch in record_first_batches() * 2]
        count, traces = out.trees._state()
        # (per open trace its id, next lvl, greatest ts, failed flag, open spans: not its
        # token, which is random, nor its last use, which is the clock's)
        state = (count, [(t[0], t[2], t[3], t[4], t[6]) for t in traces])
        out.close_trees()
        out.close()
        assert failures == []
        results.append((taken, state, tokens_out(path.read_bytes(), out.trees)))
    assert answers == [0] * 11, "all but the first batch in one call"
    assert results[0] == results[1]
    lines = check_file(results[0][2])
    assert [line["msg"] for line in lines if "msg" in line].count("truthy") == 2
    ended_failed = {line["tid"][:32] for line in lines if line.get("st") == "failed"}
    assert ended_failed == {T1, T2}, "the failed flags read without the GIL, and the one read with it"


@needs_c
def test_an_item_refused_part_way_through_a_batch_read_without_the_gil_numbers_nothing(
    tmp_path: Path,
) -> None:
    """A bad item after records read with the GIL let go: the batch is refused whole, as
    before any is numbered (the trees as they were, not broken), the lock never taken, and
    the forest takes the next batch."""
    path = tmp_path / "refused.jsonl"
    out, failures = output(path, one_call=True)
    first, *_ = record_first_batches()
    out.write(first, [])
    out.write(first, [])
    size, state = os.path.getsize(path), out.trees._state()
    bad = (T2 + "\u00e9", 2.0, False, b'"ts":2.0', b"}", None, None)  # (not ASCII)
    with pytest.raises(TypeError):
        out.write([in_span(T1, None, 1002.0, "ok"), in_span(T2, None, 2.0, "ok too"), bad], [])
    assert os.path.getsize(path) == size and failures == []
    assert out.trees._state() == state
    assert out.trees._forest is not None and not out.trees._forest.broken
    out.write([in_span(T1, None, 1003.0, "after")], [])
    out.close_trees()
    out.close()
    lines = check_file(path.read_bytes())
    assert [line["msg"] for line in lines if "msg" in line] == ["root", "task", "root", "task", "after"]


def test_a_queued_role_cannot_be_changed() -> None:
    """The one call reads span lines with the GIL let go, trusting that no thread changes
    them meanwhile: a role is a tuple, so nothing can set or delete its fields, nor give it
    a dict (session 30: as ``__slots__`` objects, another thread could set a parent and
    free the str the numbering was reading)."""
    start, end = span_start(T1, A, None, 1.0)[6], span_end(T1, A, None, 2.0)[6]
    for role in (start, end):
        with pytest.raises(AttributeError):
            role.parent = "x"  # type: ignore[misc]
        with pytest.raises(AttributeError):
            del role.parent  # type: ignore[misc]
        with pytest.raises(TypeError):
            vars(role)  # (no instance dict)
    assert isinstance(start, tuple) and isinstance(end, tuple)


@needs_c
@pytest.mark.parametrize("one_call", [True, False])
def test_a_role_short_of_its_fields_is_refused_before_anything_is_numbered(
    tmp_path: Path, one_call: bool
) -> None:
    """A role made past its ``__new__`` with fewer fields, after a record the one call
    reads with the GIL let go and a span line it reads so too: the batch is refused
    (TypeError) before anything is numbered or written, as the Python loop refuses it."""
    from logxpy_otel._format import SpanStart

    path = tmp_path / "app.jsonl"
    out, failures = output(path, one_call=one_call)
    out.write([span_start(T1, A, None, 1000.0)], [])
    size, state = os.path.getsize(path), out.trees._state()
    short = (T1, 1000.2, False, b'"ts":1000.2', b"}", B, tuple.__new__(SpanStart, ()))
    batch = [in_span(T1, A, 1000.05, "x"), span_start(T1, C, A, 1000.1), short]
    with pytest.raises(TypeError):
        out.write(batch, [])
    assert os.path.getsize(path) == size and out.trees._state() == state and failures == []
    slow = TreeNumberer(speedups=False)
    with pytest.raises(TypeError):
        slow.number(batch, [])


@pytest.mark.parametrize("max_bytes", [None, 2000])
def test_a_span_end_short_of_its_fields_is_refused_with_a_type_error(
    tmp_path: Path, max_bytes: int | None
) -> None:
    """With a size limit too (its room is counted first, from the span end's name): a
    TypeError that names the role's type, never the role's own repr failing nor an
    IndexError (hostile review, session 30)."""
    from logxpy_otel._format import SpanEnd

    out, failures = output(tmp_path / "app.jsonl", one_call=True, max_bytes=max_bytes, backup_count=2)
    short = (T1, 1000.2, False, b'"ts":1000.2', b"}", B, tuple.__new__(SpanEnd, (None,)))
    batch: list[Any] = [in_span(T1, None, 1000.1, "x"), short]
    with pytest.raises(TypeError, match="SpanEnd"):
        for _ in range(len(batch)):  # (as the writer does: what a write did not take, next)
            taken, _written, _spans = out.write(batch, [])
            batch = batch[taken:]
    assert failures == [] and batch[-1] is short


@needs_c
def test_a_call_into_a_forest_busy_in_another_thread_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """While number_append has let the GIL go, another thread's call into the same forest
    is refused (RuntimeError), and leaves the running call's references as they were (a
    guard: a refused call once ended by letting go of what the running call held; hostile
    review, session 30)."""
    import sys
    import threading

    trees = TreeNumberer()
    forest = trees._forest
    assert forest is not None
    parent = "".join(["b"] * 16)  # (a str only the items hold)
    items = [in_span(T1, None, 1000.0, "root")]
    items += [span_start(T1, f"{i:016x}", parent, 1000.0 + i * 1e-6) for i in range(30_000)]
    before = sys.getrefcount(parent)
    refused: list[str] = []
    stop = threading.Event()

    def other() -> None:
        while not stop.is_set():
            try:
                forest.number([], [], 0.0, 0)
            except RuntimeError as exc:
                refused.append(str(exc))

    thread = threading.Thread(target=other)
    thread.start()
    try:
        with open(tmp_path / "app.jsonl", "ab") as file:
            for _ in range(20):  # (until the other thread found it busy at least once)
                answer = forest.number_append(items, [], 1000.0, 64, file.fileno(), file.tell())
                assert answer[1] == 0, "all written"
                if refused:
                    break
    finally:
        stop.set()
        thread.join()
    assert refused and set(refused) == {"Forest: called again while a call runs"}
    assert sys.getrefcount(parent) == before
    assert not forest.broken


@needs_c
def test_a_file_another_process_appended_to_takes_the_batch_the_usual_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one call finds the file longer than our last write left it: nothing written, the
    lock let go; the same lines go the usual way, after the other process's line, and the
    next batch is one call again."""
    answers = count_one_calls(monkeypatch)
    usual, _ = output(tmp_path / "usual.jsonl", one_call=False)
    path = tmp_path / "shared.jsonl"
    out, failures = output(path, one_call=True)
    first, second, third, fourth = batches()
    for numbered in (out, usual):
        numbered.write(first, [])
        numbered.write(second, [])
    before = len((tmp_path / "usual.jsonl").read_bytes().splitlines())
    with open(path, "ab") as other:
        other.write(b'{"other":1}\n')
    for numbered in (out, usual):
        numbered.write(third, [])
        numbered.write(fourth, [])
        numbered.close_trees()
        numbered.close()
    assert failures == [] and answers == [0, 1, 0]
    lines = tokens_out(path.read_bytes(), out.trees).splitlines()
    assert lines.index(b'{"other":1}') == before, "after the lines of the first two batches"
    lines.remove(b'{"other":1}')
    assert lines == tokens_out((tmp_path / "usual.jsonl").read_bytes(), usual.trees).splitlines()


_CUT = textwrap.dedent(
    """
    import json, os, resource, signal, sys
    sys.path[:0] = {paths!r}
    from test_output import batches, output, tokens_out
    path, one_call = sys.argv[1], sys.argv[2] == "1"
    out, failures = output(__import__("pathlib").Path(path), one_call=one_call)
    first, second, third, fourth = batches()
    out.write(first, [])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = os.path.getsize(path) + 300  # (the next batch is cut inside its second line)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    taken = [out.write(second, []), out.write(third, [])]
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    taken.append(out.write(fourth, []))
    out.close_trees()
    out.close()
    data = tokens_out(open(path, "rb").read(), out.trees).decode()
    print(json.dumps([taken, [type(f).__name__ for f in failures], data]))
    """
)


@needs_c
def test_a_write_cut_part_way_ends_as_the_usual_paths(tmp_path: Path) -> None:
    """The file size limit (``RLIMIT_FSIZE``) stops a write in the middle of a batch: the
    one call hands back the lines with the lock held, and the rest is retried under it
    until the retries give up, as the usual path does; the same counts, the same file."""
    tests = str(Path(__file__).parent)
    script = _CUT.format(paths=[tests, str(Path(tests).parent)])
    seen = []
    for mode in ("1", "0"):
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / f"cut-{mode}.jsonl"), mode],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        seen.append(done.stdout)
    assert seen[0] == seen[1]
    taken, failures, data = __import__("json").loads(seen[0])
    assert taken[0][0] == 3 and taken[0][1] < 3, "the cut batch: not all of it written"
    assert failures[0] == "PartialWriteError", failures  # (then the next batch: nothing gets in)
    assert data.count("\n") >= 8 and '"msg":"task 2"' in data, "the batch after the limit is in"


@needs_c
def test_a_batch_the_numbering_refuses_raises_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "refused.jsonl"
    out, failures = output(path, one_call=True)
    first, second, *_ = batches()
    out.write(first, [])
    size = os.path.getsize(path)
    with pytest.raises(TypeError):
        out.write([*second, ("t", 1.0)], [])  # type: ignore[list-item]
    assert os.path.getsize(path) == size and failures == []
    out.write(second, [])
    out.close_trees()
    out.close()
    lines = check_file(path.read_bytes())
    assert [line["msg"] for line in lines if "msg" in line] == ["in a", "task", "in b"]


@needs_c
def test_the_writer_thread_appends_in_one_call_where_it_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The processor's writer takes the one-call path for its batches after the first (the
    speed of issue 16's caller row rests on it: a change that turned it off would be a
    slowdown nobody saw)."""
    import logging

    from opentelemetry.sdk._logs import LoggerProvider

    from logxpy_otel import LogxpyLogRecordProcessor

    answers = count_one_calls(monkeypatch)
    processor = LogxpyLogRecordProcessor(tmp_path / "app.jsonl")
    provider = LoggerProvider(shutdown_on_exit=False)
    log = logging.getLogger("test_output.one_call")
    log.addHandler(processor.logging_handler(logger_provider=provider))
    log.propagate = False
    try:
        for round_ in range(4):
            for n in range(200):
                log.warning("record %d of round %d", n, round_)
            assert processor.force_flush()
    finally:
        processor.shutdown()
    assert len(answers) >= 3 and set(answers) == {0}
    assert (tmp_path / "app.jsonl").read_bytes().count(b"\n") == 800


_SUBINTERPRETER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = {paths!r}
    try:
        import _interpreters as interpreters  # 3.13
        made = interpreters.create("legacy")
        run = interpreters.run_string
    except ImportError:
        import _xxsubinterpreters as interpreters  # 3.11, 3.12
        made = interpreters.create(isolated=False)
        run = interpreters.run_string
    code = '''
    import pathlib, sys
    sys.path[:0] = {paths!r}
    from logxpy_otel._trees import TreeNumberer
    from test_output import batches, output
    out = []
    early = ("0123456789abcdef0123456789abcdef", 0.75, False, b'"x":1', b"}}", None, None)
    TreeNumberer().number([early], out)
    written, _ = output(pathlib.Path(sys.argv[1]), one_call=True)
    for batch in batches():
        written.write(batch, [])
    written.close_trees()
    written.close()
    print(len(out), flush=True)
    '''
    run(made, code.replace("sys.argv[1]", repr(sys.argv[1])))
    print("done", flush=True)
    """
)


@needs_c
def test_the_callbacks_take_the_gil_back_in_a_subinterpreter_too(tmp_path: Path) -> None:
    """A float the C text declines and a span end's unseen start (the callbacks into
    Python) in a subinterpreter (mod_wsgi runs applications in them): the callbacks took
    the GIL with PyGILState_Ensure, which found the thread's main-interpreter state and
    waited for good for the GIL this thread held (hostile review, session 29)."""
    tests = str(Path(__file__).parent)
    script = _SUBINTERPRETER.format(paths=[tests, str(Path(tests).parent)])
    done = run_with_subinterpreters(
        script, str(tmp_path / "sub.jsonl"), hang="the numbering never came back in a subinterpreter"
    )
    assert done.returncode == 0 and done.stdout.split() == ["1", "done"], done.stdout + done.stderr[-3000:]
    lines = check_file((tmp_path / "sub.jsonl").read_bytes())
    assert [line["msg"] for line in lines if "msg" in line] == BATCHES_MESSAGES


@needs_c
@pytest.mark.parametrize("one_call", [True, False])
def test_a_numbering_that_raises_part_way_leaves_whole_trees_after_its_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_call: bool
) -> None:
    """A callback raising in the middle of a batch (an interrupt in sync mode, no memory):
    the open trees are closed and go on under a new token, so the batch, retried as the
    writer retries it, and all after it are in whole trees (hostile review, session 29: the
    retry's lines hung under a tree whose start line was never written)."""
    path = tmp_path / "app.jsonl"
    out, failures = output(path, one_call=one_call)
    first, second, third, fourth = batches()
    out.write(first, [])
    out.write(second, [])
    start_body_raises_once(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        out.write(third, [])
    out.write(third, [])  # (the retry)
    out.write(fourth, [])
    out.close_trees()
    out.close()
    assert failures == []
    lines = check_file(path.read_bytes())
    messages = [line["msg"] for line in lines if "msg" in line]
    assert messages == BATCHES_MESSAGES


@needs_c
@pytest.mark.parametrize("one_call", [True, False])
def test_a_fifo_or_a_device_at_the_path_takes_the_usual_paths_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_call: bool
) -> None:
    """A FIFO (read by another process) or ``/dev/null`` has no size our writes leave, so
    the one call never writes there: the usual path does, with the same lines."""
    from test_destination_paths import FifoReader

    answers = count_one_calls(monkeypatch)
    fifo = tmp_path / "app.jsonl"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    try:
        out, failures = output(fifo, one_call=one_call)
        reader.start()
        for batch in batches():
            out.write(batch, [])
        out.close_trees()
        out.close()
        lines = check_file(reader.data())
    finally:
        reader.close()
    assert failures == [] and 0 not in answers
    assert [line["msg"] for line in lines if "msg" in line] == BATCHES_MESSAGES
    null, failures = output(Path("/dev/null"), one_call=one_call)
    for batch in batches():
        null.write(batch, [])
    null.close_trees()
    null.close()
    assert failures == [] and 0 not in answers
