"""stdlib ``logging`` into a file: our handler against the OTel handler and a plain FileHandler.

What it measures
----------------
Each run logs ``--records`` records (default 40,000) as an application does::

    log.info("user %s signed in", i, extra={"user.name": ..., "http.route": ..., "attempt": ...})

through ``logging.getLogger("bench.app")`` (level INFO, the handler on the root logger),
every record inside an active span (SDK ``TracerProvider``, a new root span per 100
records, started by each producing thread). The records are split evenly over 1 or 4
producer threads. Configurations:

``null``         ``logging.NullHandler``: what ``logging`` itself costs (``makeRecord``,
                 ``findCaller``, the extra fields), the ceiling for any handler.
``file_orjson``  ``logging.FileHandler`` with a formatter that writes one orjson line per
                 record (time, level, logger, message, the extras, trace and span id):
                 a synchronous write per record, the usual "JSON logs" set-up.
``otel``         ``opentelemetry-instrumentation-logging``'s ``LoggingHandler`` ->
                 SDK ``LoggerProvider`` -> ``LogxpyLogRecordProcessor(path)``: the OTel path.
``logxpy``       ``LogxpyLogRecordProcessor(path).logging_handler(logger_provider=...)``:
                 this package's handler, the same processor settings (queue policy block).

Per run: 1,000 warm-up records are logged and flushed first; the lines they produced are
counted and subtracted. Then, timed:

* caller µs/record: the summed wall time of the producer threads' logging loops (span
  creation included) divided by the records: what one ``log.info`` costs the caller.
  Beside it, the same loops' own CPU time (``time.thread_time``): without the time a
  producer waits for the GIL or the machine, so less moved by other load (and by the
  writer thread).
* delivered records/s: records found in the output file / the time from the start of
  logging until the handler's flush and close (and the processor's shutdown) returned.
  For ``null`` (no file) it is records / logging time.
* lost: records logged - records found in the file.

Each configuration and thread count runs ``--repeat`` times (default 5), each in a fresh
subprocess; within a repeat the configurations of one thread count run back to back, in
an order that rotates from repeat to repeat. Each ratio is the median over repeats of the
ratio of two runs of the same repeat (paired: the machine's drifting load cancels out).
Absolute figures drift with load: compare the ratios.

``--instructions`` instead counts instructions per record under valgrind's callgrind (every
thread of the process, the writer thread included; runs of N and 2N records, so start-up
and shutdown cancel out): a figure this noisy machine cannot move, for the 1-thread
caller ratio.

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_logging.py
    .venv/bin/python benchmarks/bench_logging.py --records 20000 --repeat 3 --threads 1
    .venv/bin/python benchmarks/bench_logging.py --instructions --records 5000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

from _common import OUT_ROOT, count_lines, count_logxpy_records, finish, spawn_child

CONFIGS: tuple[str, ...] = ("null", "file_orjson", "otel", "logxpy")
BASELINE = "logxpy"
#: (threads, what, other config, target). "caller": null's µs / ours (ours at least that
#: share of the NullHandler's rate); "rate": our delivered rate / theirs.
TARGETS: tuple[tuple[int, str, str, float], ...] = (
    (1, "caller", "null", 0.75),
    (1, "rate", "otel", 2.0),
    (4, "rate", "otel", 3.0),
    (1, "rate", "file_orjson", 1.2),
    (4, "rate", "file_orjson", 2.5),
)
WARMUP_RECORDS = 1_000
RECORDS_PER_SPAN = 100


# --------------------------------------------------------------------------------------
# The child: one configuration, one thread count, one run.
# --------------------------------------------------------------------------------------


def _orjson_formatter() -> logging.Formatter:
    import orjson
    from opentelemetry.trace import get_current_span

    dumps = orjson.dumps
    standard = frozenset(vars(logging.LogRecord("n", 0, "p", 0, "m", None, None))) | {"message", "asctime"}

    class OrjsonFormatter(logging.Formatter):
        """One JSON object per record: the usual shape of "JSON logs"."""

        def format(self, record: logging.LogRecord) -> str:
            line = {
                "ts": record.created,
                "level": record.levelname,
                "logger": record.name,
                "msg": record.getMessage(),
            }
            for key, value in vars(record).items():
                if key not in standard:
                    line[key] = value
            context = get_current_span().get_span_context()
            if context.trace_id:
                line["trace_id"] = f"{context.trace_id:032x}"
                line["span_id"] = f"{context.span_id:016x}"
            return dumps(line, default=str).decode()

    return OrjsonFormatter()


@dataclass
class _Setup:
    handler: logging.Handler
    path: Path | None
    counter: Callable[[Path], int]
    #: Flush everything handed over (what the warm-up count needs).
    flush: Callable[[], object]
    #: Flush and close: the end of the timed span.
    finish: Callable[[], object]
    metrics: Callable[[], dict[str, Any] | None] = lambda: None


def _writer_metrics(m: Any) -> dict[str, Any]:
    return {
        "written": m.written,
        "dropped": m.dropped,
        "dropped_by_reason": dict(m.dropped_by_reason),
        "max_queue_depth": m.max_queue_depth,
        "batches": m.batches,
    }


def _setup(config: str, out_dir: Path) -> _Setup:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.resources import Resource

    path = out_dir / f"{config}.log"
    if config == "null":
        null = logging.NullHandler()
        return _Setup(null, None, count_lines, lambda: None, lambda: None)
    if config == "file_orjson":
        file_handler = logging.FileHandler(path, encoding="utf-8")
        file_handler.setFormatter(_orjson_formatter())

        def close() -> None:
            file_handler.flush()
            file_handler.close()

        return _Setup(file_handler, path, count_lines, file_handler.flush, close)

    from logxpy_otel import LogxpyLogRecordProcessor

    resource = Resource.create({"service.name": "bench-logging"})
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    processor = LogxpyLogRecordProcessor(path)
    metrics = lambda: _writer_metrics(processor.metrics)  # noqa: E731
    if config == "otel":
        from opentelemetry.instrumentation.logging.handler import LoggingHandler

        provider.add_log_record_processor(processor)
        otel = LoggingHandler(logger_provider=provider)

        def shutdown() -> None:
            provider.force_flush()
            provider.shutdown()

        return _Setup(otel, path, count_logxpy_records, provider.force_flush, shutdown, metrics)
    if config == "logxpy":
        ours = processor.logging_handler(logger_provider=provider)

        def close_ours() -> None:
            ours.flush()
            ours.close()
            processor.shutdown()

        return _Setup(ours, path, count_logxpy_records, processor.force_flush, close_ours, metrics)
    raise SystemExit(f"unknown config {config!r}; choose from {', '.join(CONFIGS)}")


def _log_records(log: logging.Logger, tracer: Any, count: int) -> None:
    info = log.info
    start_span = tracer.start_as_current_span
    done = 0
    while done < count:
        n = min(RECORDS_PER_SPAN, count - done)
        with start_span("request"):
            for i in range(done, done + n):
                info(
                    "user %s signed in",
                    i,
                    extra={"user.name": "alice", "http.route": "/login", "attempt": i % 3},
                )
        done += n


def run_child(config: str, threads: int, records: int) -> dict[str, Any]:
    """One measured run; returns the figures printed as one JSON line."""
    from opentelemetry.sdk.trace import TracerProvider

    OUT_ROOT.mkdir(exist_ok=True)
    out_dir = Path(tempfile.mkdtemp(prefix=f"logging-{config}-t{threads}-", dir=OUT_ROOT))
    try:
        setup = _setup(config, out_dir)
        if os.environ.get(_NO_COUNT):  # instructions: the count's reading is not the handler's cost
            setup.counter = lambda path: 0
        root = logging.getLogger()
        root.handlers[:] = [setup.handler]
        root.setLevel(logging.WARNING)
        log = logging.getLogger("bench.app")
        log.setLevel(logging.INFO)
        tracer = TracerProvider().get_tracer("bench_logging")

        _log_records(log, tracer, WARMUP_RECORDS)
        setup.flush()
        warm_lines = setup.counter(setup.path) if setup.path is not None else 0

        shares = [records // threads + (1 if k < records % threads else 0) for k in range(threads)]
        walls = [0.0] * threads
        cpus = [0.0] * threads
        barrier = threading.Barrier(threads + 1)

        def producer(k: int) -> None:
            barrier.wait()
            t, c = time.perf_counter(), time.thread_time()
            _log_records(log, tracer, shares[k])
            walls[k] = time.perf_counter() - t
            cpus[k] = time.thread_time() - c

        workers = [threading.Thread(target=producer, args=(k,), name=f"producer-{k}") for k in range(threads)]
        for w in workers:
            w.start()
        barrier.wait()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        for w in workers:
            w.join()
        t_emit = time.perf_counter() - t0
        setup.finish()
        t_total = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        root.handlers[:] = []

        if setup.path is None:
            delivered = records
            elapsed = t_emit
        else:
            delivered = setup.counter(setup.path) - warm_lines
            elapsed = t_total
        return {
            "config": config,
            "threads": threads,
            "records": records,
            "delivered": delivered,
            "lost": records - delivered,
            "caller_us": sum(walls) / records * 1e6,
            "caller_cpu_us": sum(cpus) / records * 1e6,
            "rate": delivered / elapsed,
            "emit_s": t_emit,
            "total_s": t_total,
            "cpu_s": cpu,
            "warmup_lines": warm_lines,
            "file_bytes": setup.path.stat().st_size if setup.path is not None else 0,
            "writer_metrics": setup.metrics(),
        }
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------
# The parent: run the children, take medians, print the tables.
# --------------------------------------------------------------------------------------


def _environment() -> dict[str, Any]:
    def ver(name: str) -> str:
        try:
            return dist_version(name)
        except Exception:
            return "not installed"

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "python": platform.python_version(),
        "opentelemetry-sdk": ver("opentelemetry-sdk"),
        "opentelemetry-instrumentation-logging": ver("opentelemetry-instrumentation-logging"),
        "orjson": ver("orjson"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "LOGXPY_OTEL_PURE_PYTHON": os.environ.get("LOGXPY_OTEL_PURE_PYTHON"),
    }


def _paired(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], key: str) -> float:
    """Median over repeats of ours/theirs (``rate``) or theirs/ours (``caller_us``) in one repeat."""
    if key == "caller":
        pairs = [b["caller_us"] / a["caller_us"] for a, b in zip(ours, theirs, strict=False)]
    else:
        pairs = [a["rate"] / b["rate"] for a, b in zip(ours, theirs, strict=False) if b["rate"]]
    return statistics.median(pairs) if pairs else 0.0


#: Set in an instruction-counting child: it does not read its file back to count the lines
#: (about 5,000 instructions a line, which would be charged to the handler).
_NO_COUNT = "BENCH_LOGGING_NO_COUNT"


def _instructions(config: str, records: int) -> int:
    """Instructions of a whole child process (1 thread) logging ``records`` records."""
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    cmd += [str(Path(__file__).resolve()), "--child", config, "1", str(records)]
    env = {**os.environ, _NO_COUNT: "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=3600, env=env)
    match = re.search(r"Collected : ([\d,]+)", out.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{out.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def instructions_main(configs: Sequence[str], records: int) -> int:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    per_record = {}
    for config in configs:
        low, high = _instructions(config, records), _instructions(config, 2 * records)
        per_record[config] = (high - low) / records
        print(f"  {config}: {per_record[config]:,.0f} instructions/record", file=sys.stderr, flush=True)
    print("| config | instructions/record (1 thread, all threads of the process) |")
    print("|---|---:|")
    for config in configs:
        print(f"| {config} | {per_record[config]:,.0f} |")
    if BASELINE in per_record:
        print()
        for other in configs:
            if other != BASELINE:
                print(f"{other} / {BASELINE} by instructions: {per_record[other] / per_record[BASELINE]:.2f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=40_000, help="records per run (default 40000)")
    parser.add_argument("--threads", default="1,4", help="producer thread counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per configuration")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(CONFIGS)}")
    parser.add_argument("--json", dest="json_out", default="", help="also write all results here")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions per record (valgrind) instead"
    )
    parser.add_argument("--child", nargs=3, metavar=("CONFIG", "THREADS", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        config, threads, records = args.child[0], int(args.child[1]), int(args.child[2])
        print(json.dumps(run_child(config, threads, records)), flush=True)
        return 0

    configs = [c.strip() for c in args.only.split(",") if c.strip()] or list(CONFIGS)
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown config(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    if args.instructions:
        return instructions_main(configs, args.records)
    thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
    if args.records < max(thread_counts) or args.repeat < 1 or min(thread_counts) < 1:
        parser.error("need --records >= threads >= 1 and --repeat >= 1")

    env = _environment()
    print(
        f"Python {env['python']}, opentelemetry-sdk {env['opentelemetry-sdk']}, "
        f"instrumentation-logging {env['opentelemetry-instrumentation-logging']}, orjson {env['orjson']}, "
        f"CPUs {env['cpu_count']} ({env['cpus_usable']} usable)"
    )
    print(
        f"{args.records:,} records per run, {RECORDS_PER_SPAN} per span, threads {thread_counts}, "
        f"{args.repeat} paired repeat(s), one fresh process per run"
    )
    sys.stdout.flush()

    started = time.perf_counter()
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {(c, t): [] for c in configs for t in thread_counts}
    failures: list[str] = []
    for k in range(args.repeat):
        order = configs[k % len(configs) :] + configs[: k % len(configs)]  # rotates: A B C D, B C D A, ...
        for threads in thread_counts:
            for config in order:
                label = f"{config} threads={threads}"
                try:
                    result = spawn_child(
                        __file__, [config, str(threads), str(args.records)], 600 + args.records / 200, label
                    )
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    failures.append(str(exc))
                    print(f"  [{k + 1}/{args.repeat}] {config} t={threads}: FAILED", file=sys.stderr)
                    continue
                runs[(config, threads)].append(result)
                print(
                    f"  [{k + 1}/{args.repeat}] {config:<12} t={threads}: {result['caller_us']:7.2f} µs/rec, "
                    f"{result['rate']:>9,.0f} rec/s, lost {result['lost']:,}",
                    file=sys.stderr,
                    flush=True,
                )
    wall = time.perf_counter() - started

    print()
    print("| config | threads | caller µs/record | caller CPU µs/record | delivered records/s | lost (max) |")
    print("|---|---:|---:|---:|---:|---:|")
    for config in configs:
        for threads in thread_counts:
            rs = runs[(config, threads)]
            if not rs:
                print(f"| {config} | {threads} | failed | failed | failed | failed |")
                continue
            caller = statistics.median(r["caller_us"] for r in rs)
            caller_cpu = statistics.median(r["caller_cpu_us"] for r in rs)
            rate = statistics.median(r["rate"] for r in rs)
            lost = max(r["lost"] for r in rs)
            print(f"| {config} | {threads} | {caller:.2f} | {caller_cpu:.2f} | {rate:,.0f} | {lost:,} |")

    ratios: list[dict[str, Any]] = []
    if BASELINE in configs:
        print()
        print("| threads | ratio (paired, median) | value | target | met |")
        print("|---:|---|---:|---:|---|")
        for threads, what, other, target in TARGETS:
            ours, theirs = runs.get((BASELINE, threads)), runs.get((other, threads))
            if not ours or not theirs:
                continue
            value = _paired(ours, theirs, what)
            if what == "caller":
                label = f"{other} µs / {BASELINE} µs (caller)"
            else:
                label = f"{BASELINE} / {other} (delivered)"
            met = value >= target
            ratios.append({"threads": threads, "ratio": label, "value": value, "target": target, "met": met})
            print(f"| {threads} | {label} | {value:.2f} | >= {target:g} | {'yes' if met else 'NO'} |")
        for threads in thread_counts:
            rs = runs.get((BASELINE, threads))
            if rs:
                lost = max(r["lost"] for r in rs)
                met = lost == 0
                ratios.append({"threads": threads, "ratio": "lost", "value": lost, "target": 0, "met": met})
                print(f"| {threads} | {BASELINE} lost (max) | {lost:,} | 0 | {'yes' if met else 'NO'} |")

    print()
    finish(wall, failures)
    if args.json_out:
        payload = {
            "environment": env,
            "records": args.records,
            "repeat": args.repeat,
            "threads": thread_counts,
            "wall_s": wall,
            "runs": [r for rs in runs.values() for r in rs],
            "ratios": ratios,
            "failures": failures,
        }
        Path(args.json_out).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
