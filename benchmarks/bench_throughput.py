"""Throughput of logxpy-otel against the stock OpenTelemetry log paths, one fresh process per run.

What it measures
----------------
Each run emits ``--records`` records (default 200,000) through the SDK's
``Logger.emit(body=..., severity_number=..., attributes=...)``: a short string body and
5 attributes (str/int/float/bool/str), every record inside an active span (SDK
``TracerProvider``, a new root span per 100 records, started by each producing thread).
The records are split evenly over 1 or 4 producer threads. Configurations:

``none``             ``LoggerProvider`` with no processor: the SDK's own cost, the ceiling.
``logxpy``           ``LogxpyLogRecordProcessor(path)``, default config (queue policy block).
``logxpy_exporter``  ``BatchLogRecordProcessor(LogxpyLogRecordExporter(path))``.
``console``          ``BatchLogRecordProcessor(ConsoleLogRecordExporter(out=file,
                     formatter=to_json(indent=None)))``.
``orjson_blrp``      ``BatchLogRecordProcessor`` + a minimal exporter (defined here) that
                     orjson-encodes a fresh dict per record and writes each batch with one
                     ``os.write`` to an ``O_APPEND`` fd.
``otlp_json_file``   ``BatchLogRecordProcessor(FileLogExporter(path))`` from
                     ``opentelemetry-exporter-otlp-json-file``.
``env_blrp``         zero-code: ``OTEL_LOGS_EXPORTER=logxpy``, ``OTEL_EXPORTER_LOGXPY_FILE=path``,
                     ``OTEL_TRACES_EXPORTER=none``, ``OTEL_METRICS_EXPORTER=none`` (and
                     ``OTEL_PYTHON_CONFIGURATOR`` unset), then the SDK's own
                     ``_OTelSDKConfigurator().configure()``; the global logger provider then
                     holds ``BatchLogRecordProcessor(LogxpyLogRecordExporter())``, as users get it.
``env_instrument``   the same environment, the same configurator, then the
                     ``opentelemetry_pre_instrument`` entry points, as ``opentelemetry-instrument``
                     runs them: ours puts ``LogxpyLogRecordProcessor`` in the batch processor's
                     place, as users of ``opentelemetry-instrument`` get it.

The two ``env_*`` configurations set the environment inside the child process and go through
the real SDK configurator machinery (``_initialize_components``, which also sets the global
tracer and meter providers); records are emitted through, and ``force_flush``/``shutdown``
go to, ``opentelemetry._logs.get_logger_provider()``. Spans still come from the benchmark's
own SDK ``TracerProvider``, as in every other configuration.

Every ``BatchLogRecordProcessor`` keeps its defaults (queue 2048, batch 512, 1 s delay), as a
user gets it: when its queue is full it drops records, and that shows as "lost".

Per run: 1,000 warm-up records are emitted and flushed first; the lines they produced are
counted and subtracted. Then, timed:

* caller µs/record: the summed wall time of the producer threads' emit loops (span
  creation included) divided by the records: what one ``emit`` costs the caller. With 4
  threads under the GIL this includes the time a thread waits for the GIL.
* delivered records/s: records found in the output file / the time from the start of
  emitting until ``provider.force_flush()`` and ``provider.shutdown()`` returned (and the
  file is closed). For ``none`` (no file) it is records / emit time.
* lost: records emitted - records found in the file.

Records are counted in the file: logxpy lines (also for ``env_*``) without
``"at":"otel:trace"`` (tree start/end lines are not records), one per line for console/orjson, and the
``resourceLogs[].scopeLogs[].logRecords[]`` of each line for the OTLP JSON file. Output
goes to a fresh temporary directory under ``benchmarks/.out/`` and is deleted after counting.

Each configuration and thread count runs ``--repeat`` times (default 3), each time in a
fresh subprocess (this file with the hidden ``--child CONFIG THREADS N``, which prints one
JSON line); within a repeat the configurations of one thread count run back to back. The
first table shows medians; each ratio is the median over repeats of the ratio of two runs
of the same repeat (paired, so the machine's drifting load cancels out). Absolute figures
drift with load: compare the ratios.

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_throughput.py
    .venv/bin/python benchmarks/bench_throughput.py --records 50000 --repeat 1
    .venv/bin/python benchmarks/bench_throughput.py --threads 1 --only none,logxpy --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

CONFIGS: tuple[str, ...] = (
    "none",
    "logxpy",
    "logxpy_exporter",
    "console",
    "orjson_blrp",
    "otlp_json_file",
    "env_blrp",
    "env_instrument",
)
BASELINE = "logxpy"
#: (other config, target for logxpy rate / other rate); "none" is the SDK ceiling.
TARGETS: tuple[tuple[str, float], ...] = (
    ("none", 0.75),
    ("console", 4.0),
    ("orjson_blrp", 1.5),
    ("otlp_json_file", 3.0),
)
LETTERS = {"none": "a", "logxpy": "b", "console": "c", "orjson_blrp": "d", "otlp_json_file": "e"}
#: Zero-code configurations also shown against the SDK ceiling (a), with their losses:
#: (config, target for its rate / none rate or None, target lost or None). ``env_instrument``
#: is our processor, so it has logxpy's targets; ``env_blrp`` (the SDK's batch processor in
#: front of our exporter, which drops when its queue is full) is shown for information.
ENV_ROWS: tuple[tuple[str, float | None, int | None], ...] = (
    ("env_blrp", None, None),
    ("env_instrument", 0.75, 0),
)

WARMUP_RECORDS = 1_000
RECORDS_PER_SPAN = 100


# --------------------------------------------------------------------------------------
# The child: one configuration, one thread count, one run.
# --------------------------------------------------------------------------------------


def _orjson_exporter_class() -> type:
    """The minimal orjson exporter, built lazily so the parent process need not import the SDK."""
    import orjson
    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

    dumps = orjson.dumps

    class OrjsonLinesExporter(LogRecordExporter):
        """One orjson line per record (a fresh dict each), one ``os.write`` per batch."""

        def __init__(self, path: str) -> None:
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

        def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
            fd = self._fd
            if fd is None:
                return LogRecordExportResult.FAILURE
            buf = bytearray()
            for readable in batch:
                rec = readable.log_record
                sev = rec.severity_number
                buf += dumps(
                    {
                        "body": rec.body,
                        "severity": sev.value if sev is not None else None,
                        "attributes": dict(rec.attributes) if rec.attributes else {},
                        "trace_id": format(rec.trace_id, "032x") if rec.trace_id else None,
                        "span_id": format(rec.span_id, "016x") if rec.span_id else None,
                        "ts": rec.timestamp,
                        "observed_ts": rec.observed_timestamp,
                    }
                )
                buf += b"\n"
            view = memoryview(buf)
            while view:
                view = view[os.write(fd, view) :]
            return LogRecordExportResult.SUCCESS

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return True

        def shutdown(self) -> None:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    return OrjsonLinesExporter


@dataclass
class _Setup:
    provider: Any  # LoggerProvider
    path: Path | None
    counter: Callable[[Path], int]
    after_shutdown: Callable[[], None]
    #: logxpy's writer metrics, when the configuration has them.
    metrics: Callable[[], dict[str, Any] | None] | None = None


def _count_otlp(path: Path) -> int:
    count = 0
    with path.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            doc = json.loads(line)
            for rl in doc.get("resourceLogs", doc.get("resource_logs", [])):
                for sl in rl.get("scopeLogs", rl.get("scope_logs", [])):
                    count += len(sl.get("logRecords", sl.get("log_records", [])))
    return count


def _writer_metrics(m: Any) -> dict[str, Any]:
    return {
        "written": m.written,
        "dropped": m.dropped,
        "dropped_by_reason": dict(m.dropped_by_reason),
        "max_queue_depth": m.max_queue_depth,
        "batches": m.batches,
        "errors": m.errors,
    }


def _env_metrics(provider: Any) -> dict[str, Any] | None:
    """logxpy's writer metrics from the processor the configurator installed, if found.

    Reads SDK internals (``_multi_log_record_processor``, the batch processor's exporter);
    returns None rather than failing when a future SDK moves them.
    """
    from logxpy_otel import LogxpyLogRecordExporter, LogxpyLogRecordProcessor

    multi = getattr(provider, "_multi_log_record_processor", None)
    for lp in getattr(multi, "_log_record_processors", ()):
        if isinstance(lp, LogxpyLogRecordProcessor):
            return _writer_metrics(lp.metrics)
        exporter = getattr(getattr(lp, "_batch_processor", None), "_exporter", None)
        if isinstance(exporter, LogxpyLogRecordExporter):
            return _writer_metrics(exporter.metrics)
    return None


def _setup_env(config: str, path: Path) -> _Setup:
    """Zero-code set-up through the SDK configurator machinery; returns the global provider."""
    from opentelemetry._logs import get_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider

    os.environ["OTEL_LOGS_EXPORTER"] = "logxpy"
    os.environ["OTEL_EXPORTER_LOGXPY_FILE"] = str(path)
    os.environ["OTEL_TRACES_EXPORTER"] = "none"
    os.environ["OTEL_METRICS_EXPORTER"] = "none"
    os.environ.pop("OTEL_PYTHON_CONFIGURATOR", None)
    from opentelemetry.sdk._configuration import _OTelSDKConfigurator

    _OTelSDKConfigurator().configure()  # type: ignore[no-untyped-call]
    if config == "env_instrument":
        from importlib.metadata import entry_points

        # What opentelemetry-instrument does right after the configurator (_load_instrumentors).
        hooks = list(entry_points(group="opentelemetry_pre_instrument"))
        if not any(hook.name == "logxpy" for hook in hooks):
            raise SystemExit("env_instrument: logxpy's pre-instrument hook is not installed")
        for hook in hooks:
            hook.load()()
    provider = get_logger_provider()
    if not isinstance(provider, LoggerProvider):
        raise SystemExit(f"{config}: the configurator left no SDK LoggerProvider ({type(provider)!r})")
    return _Setup(provider, path, count_logxpy_records, lambda: None, lambda: _env_metrics(provider))


def _setup(config: str, out_dir: Path) -> _Setup:
    if config in ("env_blrp", "env_instrument"):
        return _setup_env(config, out_dir / f"{config}.log")

    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, ConsoleLogRecordExporter

    provider = LoggerProvider(shutdown_on_exit=False)
    path = out_dir / f"{config}.log"
    after: Callable[[], None] = lambda: None  # noqa: E731
    counter: Callable[[Path], int] = count_lines
    if config == "none":
        return _Setup(provider, None, counter, after)
    if config == "logxpy":
        from logxpy_otel import LogxpyLogRecordProcessor

        processor = LogxpyLogRecordProcessor(path)
        provider.add_log_record_processor(processor)
        return _Setup(provider, path, count_logxpy_records, after, lambda: _writer_metrics(processor.metrics))
    elif config == "logxpy_exporter":
        from logxpy_otel import LogxpyLogRecordExporter

        exporter = LogxpyLogRecordExporter(path)
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        return _Setup(provider, path, count_logxpy_records, after, lambda: _writer_metrics(exporter.metrics))
    elif config == "console":
        out = path.open("w", encoding="utf-8")
        console = ConsoleLogRecordExporter(out=out, formatter=lambda r: r.to_json(indent=None) + "\n")
        provider.add_log_record_processor(BatchLogRecordProcessor(console))
        after = out.close
    elif config == "orjson_blrp":
        provider.add_log_record_processor(BatchLogRecordProcessor(_orjson_exporter_class()(str(path))))
    elif config == "otlp_json_file":
        try:
            from opentelemetry.exporter.otlp.json.file import (  # type: ignore[attr-defined]
                FileLogExporter,
            )
        except ImportError:
            from opentelemetry.exporter.otlp.json.file._log_exporter import FileLogExporter

        provider.add_log_record_processor(BatchLogRecordProcessor(FileLogExporter(path)))
        counter = _count_otlp
    else:
        raise SystemExit(f"unknown config {config!r}; choose from {', '.join(CONFIGS)}")
    return _Setup(provider, path, counter, after)


def _emit_records(logger: Any, tracer: Any, count: int) -> None:
    from opentelemetry._logs import SeverityNumber

    info = SeverityNumber.INFO
    emit = logger.emit
    start_span = tracer.start_as_current_span
    done = 0
    while done < count:
        n = min(RECORDS_PER_SPAN, count - done)
        with start_span("work"):
            for i in range(done, done + n):
                emit(
                    body="request handled",
                    severity_number=info,
                    attributes={
                        "user": "alice",
                        "item": i,
                        "ratio": 0.25,
                        "ok": True,
                        "route": "/api/items",
                    },
                )
        done += n


def run_child(config: str, threads: int, records: int) -> dict[str, Any]:
    """One measured run; returns the figures printed as one JSON line."""
    from opentelemetry.sdk.trace import TracerProvider

    OUT_ROOT.mkdir(exist_ok=True)
    out_dir = Path(tempfile.mkdtemp(prefix=f"{config}-t{threads}-", dir=OUT_ROOT))
    try:
        setup = _setup(config, out_dir)
        provider = setup.provider
        logger = provider.get_logger("bench_throughput")
        tracer = TracerProvider().get_tracer("bench_throughput")

        # Warm-up: same path, flushed, and its lines counted so they can be subtracted.
        _emit_records(logger, tracer, WARMUP_RECORDS)
        provider.force_flush()
        warm_lines = setup.counter(setup.path) if setup.path is not None else 0

        shares = [records // threads + (1 if k < records % threads else 0) for k in range(threads)]
        walls = [0.0] * threads
        barrier = threading.Barrier(threads + 1)

        def producer(k: int) -> None:
            barrier.wait()
            t = time.perf_counter()
            _emit_records(logger, tracer, shares[k])
            walls[k] = time.perf_counter() - t

        workers = [threading.Thread(target=producer, args=(k,), name=f"producer-{k}") for k in range(threads)]
        for w in workers:
            w.start()
        barrier.wait()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        for w in workers:
            w.join()
        t_emit = time.perf_counter() - t0
        flush_ok = provider.force_flush()
        provider.shutdown()
        setup.after_shutdown()
        t_total = time.perf_counter() - t0
        cpu = time.process_time() - cpu0

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
            "rate": delivered / elapsed,
            "emit_s": t_emit,
            "total_s": t_total,
            "cpu_s": cpu,
            "warmup_lines": warm_lines,
            "flush_ok": flush_ok,
            "file_bytes": setup.path.stat().st_size if setup.path is not None else 0,
            "writer_metrics": setup.metrics() if setup.metrics is not None else None,
        }
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------
# The parent: run the children, take medians, print the tables.
# --------------------------------------------------------------------------------------


def _spawn(config: str, threads: int, records: int) -> dict[str, Any]:
    args = [config, str(threads), str(records)]
    return spawn_child(__file__, args, 600 + records / 500, f"{config} threads={threads}")


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
        "implementation": platform.python_implementation(),
        "opentelemetry-sdk": ver("opentelemetry-sdk"),
        "opentelemetry-exporter-otlp-json-file": ver("opentelemetry-exporter-otlp-json-file"),
        "orjson": ver("orjson"),
        "logxpy-otel": ver("logxpy-otel"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "LOGXPY_SYNC": os.environ.get("LOGXPY_SYNC"),
    }


def _fmt_rate(rate: float) -> str:
    return f"{rate:,.0f}"


def _summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "caller_us": statistics.median(r["caller_us"] for r in runs),
        "rate": statistics.median(r["rate"] for r in runs),
        "lost": statistics.median(r["lost"] for r in runs),
        "lost_max": max(r["lost"] for r in runs),
        "total_s": statistics.median(r["total_s"] for r in runs),
        "runs": len(runs),
    }


def _paired_ratio(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> float:
    """The median over repeats of our rate / their rate in the same repeat.

    Runs of one repeat are made back to back, so a pair sees the same machine; the
    median of the pairs is steadier than a ratio of two medians taken minutes apart.
    """
    pairs = [a["rate"] / b["rate"] for a, b in zip(ours, theirs, strict=False) if b["rate"]]
    return statistics.median(pairs) if pairs else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=200_000, help="records per run (default 200000)")
    parser.add_argument("--threads", default="1,4", help="producer thread counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per configuration")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(CONFIGS)}")
    parser.add_argument("--json", dest="json_out", default="", help="also write all results here")
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
    thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
    if args.records < max(thread_counts) or args.repeat < 1 or min(thread_counts) < 1:
        parser.error("need --records >= threads >= 1 and --repeat >= 1")

    env = _environment()
    print(
        f"Python {env['python']} ({env['implementation']}), opentelemetry-sdk {env['opentelemetry-sdk']}, "
        f"orjson {env['orjson']}, otlp-json-file {env['opentelemetry-exporter-otlp-json-file']}, "
        f"logxpy-otel {env['logxpy-otel']}, CPUs {env['cpu_count']} ({env['cpus_usable']} usable)"
    )
    print(
        f"{args.records:,} records per run, {RECORDS_PER_SPAN} per span, threads {thread_counts}, "
        f"median of {args.repeat} fresh process(es) per row"
    )
    if env["LOGXPY_SYNC"]:
        print(f"warning: LOGXPY_SYNC={env['LOGXPY_SYNC']} is set; logxpy rows may run synchronously")
    sys.stdout.flush()

    started = time.perf_counter()
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {(c, t): [] for c in configs for t in thread_counts}
    failures: list[str] = []
    for k in range(args.repeat):
        # Configurations of one thread count run back to back, so that each ratio below
        # compares runs made minutes apart at most (this machine's speed drifts).
        for threads in thread_counts:
            for config in configs:
                try:
                    result = _spawn(config, threads, args.records)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    failures.append(str(exc))
                    print(f"  [{k + 1}/{args.repeat}] {config} t={threads}: FAILED", file=sys.stderr)
                    continue
                runs[(config, threads)].append(result)
                print(
                    f"  [{k + 1}/{args.repeat}] {config:<16} t={threads}: "
                    f"{result['caller_us']:7.2f} µs/rec, {_fmt_rate(result['rate']):>9} rec/s, "
                    f"lost {result['lost']:,}, {result['total_s']:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
    wall = time.perf_counter() - started

    summary = {key: _summarize(rs) for key, rs in runs.items() if rs}
    print()
    print("| config | threads | caller µs/record | delivered records/s | lost |")
    print("|---|---:|---:|---:|---:|")
    for config in configs:
        for threads in thread_counts:
            s = summary.get((config, threads))
            if s is None:
                print(f"| {config} | {threads} | failed | failed | failed |")
                continue
            lost = f"{s['lost']:,.0f}" + (f" (max {s['lost_max']:,})" if s["lost_max"] != s["lost"] else "")
            name = f"({LETTERS[config]}) {config}" if config in LETTERS else config
            print(f"| {name} | {threads} | {s['caller_us']:.2f} | {_fmt_rate(s['rate'])} | {lost} |")

    ratios: list[dict[str, Any]] = []

    def ratio_row(
        threads: int, label: str, value: float, target: float | None, ok: bool | None, key: str = ""
    ) -> None:
        row = {"threads": threads, "ratio": key or label, "value": value, "target": target, "met": ok}
        ratios.append(row)
        shown = f"{value:,}" if isinstance(value, int) else f"{value:.2f}"
        if target is None:
            goal, met = "—", "—"
        else:
            goal = f">= {target:g}" if "/" in label else f"{target:g}"
            met = "yes" if ok else "NO"
        print(f"| {threads} | {label} | {shown} | {goal} | {met} |")

    env_rows = [row for row in ENV_ROWS if row[0] in configs]
    if BASELINE in configs or env_rows:
        print()
        print("| threads | ratio | value | target | met |")
        print("|---:|---|---:|---:|---|")
        ceiling_letter = LETTERS["none"]
        for threads in thread_counts:
            ceiling = summary.get(("none", threads))
            base = summary.get((BASELINE, threads))
            if base is not None:
                for other, target in TARGETS:
                    o = summary.get((other, threads))
                    if o is None or not o["rate"]:
                        continue
                    value = _paired_ratio(runs[(BASELINE, threads)], runs[(other, threads)])
                    label = f"b/{LETTERS[other]} ({BASELINE}/{other})"
                    ratio_row(threads, label, value, target, value >= target)
                lost = base["lost_max"]
                ratio_row(threads, f"b lost ({BASELINE})", lost, 0, lost == 0, key="b lost")
            for config, rate_target, lost_target in env_rows:
                e = summary.get((config, threads))
                if e is None:
                    continue
                if ceiling is not None and ceiling["rate"]:
                    value = _paired_ratio(runs[(config, threads)], runs[("none", threads)])
                    ok = None if rate_target is None else value >= rate_target
                    ratio_row(threads, f"{config}/{ceiling_letter} ({config}/none)", value, rate_target, ok)
                ok = None if lost_target is None else e["lost_max"] <= lost_target
                ratio_row(threads, f"{config} lost", e["lost_max"], lost_target, ok)

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
            "summary": [{"config": c, "threads": t, **s} for (c, t), s in summary.items()],
            "ratios": ratios,
            "failures": failures,
        }
        Path(args.json_out).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
