"""Interop with the real logxpy tools: ``logxpy.parse.Parser`` and ``logxpy-prettyprint``.

logxpy needs Python >= 3.12, so it lives in its own venv (``make test`` builds it and
sets ``LOGXPY_PYTHON``); the file is produced here and read there.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from _helpers import LOGXPY_PYTHON, logs_and_spans, logxpy_tasks, needs_logxpy
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from logxpy_otel import LogxpyLogRecordProcessor

pytestmark = needs_logxpy


def _produce(path: Path) -> dict[str, list[str]]:
    """Write a file with three traces and untraced records; return each trace's messages."""
    provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}), shutdown_on_exit=False)
    provider.add_log_record_processor(LogxpyLogRecordProcessor(path))
    logger = provider.get_logger("app")
    tracer = TracerProvider().get_tracer("t")
    expected: dict[str, list[str]] = {}
    logger.emit(body="service up", severity_number=SeverityNumber.INFO)
    for t in range(3):
        with tracer.start_as_current_span(f"request {t}") as span:
            trace_id = f"{span.get_span_context().trace_id:032x}"
            msgs = [f"t{t} step {i}" for i in range(t + 2)]
            for i, msg in enumerate(msgs):
                severity = SeverityNumber.ERROR if (t == 1 and i == 1) else SeverityNumber.INFO
                logger.emit(body=msg, severity_number=severity, attributes={"step": i, "level": "x"})
            expected[trace_id] = msgs
    logger.emit(body={"structured": [1, 2]}, severity_number=SeverityNumber.WARN)
    provider.shutdown()
    return expected


def test_parser_reads_one_task_per_trace_with_all_its_records(tmp_path: Path) -> None:
    path = tmp_path / "interop.jsonl"
    expected = _produce(path)
    (tasks,) = logxpy_tasks("msg", path)
    actions = [t for t in tasks if t["kind"] == "action"]
    messages = [t for t in tasks if t["kind"] == "message"]
    assert {t["tid"]: t["values"] for t in actions} == expected
    assert len(actions) == len(expected) == 3
    assert all(t["complete"] and t["type"] == "otel:trace" for t in actions)
    statuses = {t["tid"]: t["status"] for t in actions}
    assert sorted(statuses.values()) == ["failed", "succeeded", "succeeded"]
    assert [t["values"] for t in messages] == [["service up"], ['{"structured":[1,2]}']]
    assert all(t["complete"] and "." in t["tid"] for t in messages)


def test_prettyprint_renders_the_file(tmp_path: Path) -> None:
    path = tmp_path / "interop.jsonl"
    expected = _produce(path)
    prettyprint = Path(str(LOGXPY_PYTHON)).with_name("logxpy-prettyprint")
    with path.open("rb") as stdin:
        result = subprocess.run(
            [str(prettyprint)], stdin=stdin, capture_output=True, timeout=120, check=False
        )
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "Not JSON" not in out and "Not an Eliot message" not in out
    for trace_id, msgs in expected.items():
        assert re.search(f"{trace_id}~[0-9A-Za-z]+ -> /1", out)
        for msg in msgs:
            assert msg in out


def test_a_pool_of_processes_in_one_span_writing_one_file_gives_whole_trees(tmp_path: Path) -> None:
    """Issue 12, item 13: a multiprocessing pool working inside the parent's span, one shared
    file. Each process numbered its own lines under the same tid: logxpy's Parser showed
    5 of 15 records and an empty task. Each process's lines are now a task of their own
    (tid ``<trace id>~<writer token>``), all records are there, and the trace id reads back."""
    path = tmp_path / "pool.jsonl"
    script = textwrap.dedent(
        f"""
        import multiprocessing as mp
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry import trace
        from opentelemetry.context import attach
        from opentelemetry.propagate import extract, inject
        from logxpy_otel import LogxpyLogRecordProcessor

        provider = LoggerProvider(shutdown_on_exit=True)
        processor = LogxpyLogRecordProcessor({str(path)!r})
        provider.add_log_record_processor(processor)
        logger = provider.get_logger("pool")

        def work(job):
            n, carrier = job
            # (the parent's span, as an application hands it on: a worker forked by the
            # pool's own thread, to replace one, does not inherit the main thread's context)
            attach(extract(carrier))
            for i in range(5):
                logger.emit(body=f"worker {{n}} step {{i}}")
            processor.force_flush()
            processor.shutdown()
            return n

        if __name__ == "__main__":
            trace.set_tracer_provider(TracerProvider())
            with trace.get_tracer("t").start_as_current_span("parent") as span:
                print(f"{{span.get_span_context().trace_id:032x}}")
                carrier = {{}}
                inject(carrier)
                with mp.get_context("fork").Pool(3, maxtasksperchild=1) as pool:
                    jobs = [(n, carrier) for n in range(3)]
                    assert sorted(pool.map(work, jobs, chunksize=1)) == [0, 1, 2]
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    trace_id = done.stdout.split()[0]
    (tasks,) = logxpy_tasks("msg", path)
    actions = [t for t in tasks if t["kind"] == "action"]
    assert len(actions) == 3 and {t["tid"] for t in actions} == {trace_id}
    assert len({t["raw_tid"] for t in actions}) == 3, "one task per process"
    assert all(t["complete"] and t["status"] == "succeeded" for t in actions)
    values = sorted(v for t in actions for v in t["values"])
    assert values == sorted(f"worker {n} step {i}" for n in range(3) for i in range(5)), "all 15 records"


_TREE_READER = """
import json, sys
from logxpy.parse import Parser, WrittenAction

def tree(node):
    if isinstance(node, WrittenAction):
        return {"action": node.action_type, "status": node.status,
                "children": [tree(child) for child in node.children]}
    return node.contents.get("msg")

with open(sys.argv[1], encoding="utf-8") as f:
    dicts = [json.loads(line) for line in f]
print(json.dumps([{"complete": task.is_complete(), "root": tree(task.root())}
                  for task in Parser.parse_stream(dicts)]))
"""


def _parser_trees(path: Path) -> Any:
    """What logxpy's Parser reads of ``path``: each task's completeness and tree."""
    import json

    command = [str(LOGXPY_PYTHON), "-c", _TREE_READER, str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)


def test_parser_reads_spans_as_nested_actions_with_each_record_in_its_span(tmp_path: Path) -> None:
    """Issue 15: three levels of spans with records at each level, from two threads: logxpy's
    Parser reads one complete task per trace, the spans as nested actions, and each record
    in the action of the span it was logged in."""
    import threading

    path = tmp_path / "spans.jsonl"
    _, logs, tracing = logs_and_spans(path)
    tracer, logger = tracing.get_tracer("t"), logs.get_logger("app")

    def request(n: int) -> None:
        with tracer.start_as_current_span(f"request {n}"):
            logger.emit(body=f"{n}.1")
            with tracer.start_as_current_span("query"):
                logger.emit(body=f"{n}.2")
                with tracer.start_as_current_span("fetch"):
                    logger.emit(body=f"{n}.3", severity_number=SeverityNumber.ERROR)
                logger.emit(body=f"{n}.2b")

    threads = [threading.Thread(target=request, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    tracing.shutdown()
    logs.shutdown()
    tasks = _parser_trees(path)
    assert len(tasks) == 2 and all(task["complete"] for task in tasks)
    shapes = sorted(
        (task["root"]["children"][0]["action"], task["root"]["status"], task["root"]["children"])
        for task in tasks
    )
    for n, (name, trace_status, (request_action,)) in enumerate(shapes):
        assert name == f"request {n}" and trace_status == "failed"  # an ERROR record in it
        assert request_action == {
            "action": f"request {n}",
            "status": "succeeded",
            "children": [
                f"{n}.1",
                {
                    "action": "query",
                    "status": "succeeded",
                    "children": [
                        f"{n}.2",
                        {"action": "fetch", "status": "succeeded", "children": [f"{n}.3"]},
                        f"{n}.2b",
                    ],
                },
            ],
        }


def test_a_trace_pushed_out_with_a_span_open_and_opened_again_loses_no_record_in_the_parser(
    tmp_path: Path,
) -> None:
    """Hostile review, session 27: with ``max_open_traces=1`` trace A was closed (pushed out
    by trace B) with its span open, and opened again under the same tid. logxpy counts a
    task complete only when all its actions are: A's first tree never completes, so the
    Parser took the new tree's lines into it, where their ``lvl`` collided: a record was
    lost (3 of 4 read). A tree closed unfinished now leaves its tid behind (format rule 4)."""
    from opentelemetry import trace

    path = tmp_path / "lru.jsonl"
    _, logs, tracing = logs_and_spans(path, max_open_traces=1)
    tracer, logger = tracing.get_tracer("t"), logs.get_logger("app")
    a = tracer.start_span("a")
    with trace.use_span(a):
        logger.emit(body="a1")
    b = tracer.start_span("b")
    with trace.use_span(b):
        logger.emit(body="b1")  # trace B opens: A is closed, its span "a" unfinished
    with trace.use_span(a):
        logger.emit(body="a2")  # A opens again
        logger.emit(body="a3")
    a.end()
    b.end()
    tracing.shutdown()
    logs.shutdown()

    def messages(node: Any) -> list[str]:
        if not isinstance(node, dict):
            return [node]
        return [m for child in node["children"] for m in messages(child)]

    tasks = _parser_trees(path)
    assert sorted(m for task in tasks for m in messages(task["root"])) == ["a1", "a2", "a3", "b1"]


def test_a_span_renamed_before_its_end_keeps_one_action_type_and_its_final_name(tmp_path: Path) -> None:
    """Review, session 27: an HTTP instrumentation renames its server span to the route
    (``span.update_name``) before it ends. The end line's ``at`` (the final name) then
    differed from the start line's, and logxpy's Parser, which matches an action's end by
    its type, raised (InvalidStartMessage) and read nothing more of the file. The end line
    keeps the start's ``at``; the final name is in ``_otel.name``, and reads back as the
    span's name."""

    from logxpy_otel.reader import LineSpan, read_file

    path = tmp_path / "renamed.jsonl"
    _, logs, tracing = logs_and_spans(path)
    tracer, logger = tracing.get_tracer("t"), logs.get_logger("app")
    with tracer.start_as_current_span("GET") as span:
        logger.emit(body="routing")
        span.update_name("GET /users/{id}")
        with tracer.start_as_current_span("query"):
            logger.emit(body="inner")
    logger.emit(body="after")
    tracing.shutdown()
    logs.shutdown()
    tasks = _parser_trees(path)
    roots = [task["root"] for task in tasks]
    (trace_root,) = [root for root in roots if isinstance(root, dict)]
    (request,) = trace_root["children"]
    assert (request["action"], request["status"]) == ("GET", "succeeded")
    assert request["children"][0] == "routing" and request["children"][1]["children"] == ["inner"]
    assert "after" in roots and all(task["complete"] for task in tasks)
    names = sorted(item.span.name for item in read_file(path, spans=True) if isinstance(item, LineSpan))
    assert names == ["GET /users/{id}", "query"]
