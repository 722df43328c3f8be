"""Spans per second with ``LogxpySpanProcessor`` against no span processor and against
``BatchSpanProcessor(ConsoleSpanExporter())`` writing a file: one fresh process per run,
the configurations taken in turn (paired) so the machine's noise hits each alike.

Each span is a request with one child span and two attributes (two spans: the count).
The rate is spans *delivered* (in the file) per second, until every span is delivered
(``force_flush`` included); "lost" is spans started but not in the file (the console
exporter's batch processor drops what does not fit its queue).

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_spans.py [--spans N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT_ROOT, finish, spawn_child

CONFIGS = ("none", "logxpy", "console")


def _child(config: str, spans: int, directory: str) -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    from logxpy_otel import LogxpyLogRecordProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}), shutdown_on_exit=False)
    path = Path(directory) / "spans.out"
    logs = None
    console_out = None
    if config == "logxpy":
        logs = LogxpyLogRecordProcessor(path)
        provider.add_span_processor(logs.span_processor())
    elif config == "console":
        console_out = path.open("w")
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=console_out)))
    tracer = provider.get_tracer("bench")
    requests = spans // 2
    start = time.perf_counter()
    for i in range(requests):
        with (
            tracer.start_as_current_span("request", attributes={"http.route": "/items", "i": i}),
            tracer.start_as_current_span("query"),
        ):
            pass
    flushed = provider.force_flush(60_000)
    elapsed = time.perf_counter() - start
    provider.shutdown()
    delivered = 0
    if logs is not None:
        metrics = logs.metrics
        logs.shutdown()
        ends = 0
        with path.open("rb") as f:
            for line in f:
                if b'"st":"succeeded","http.route"' in line or b'"at":"query","st":"succeeded"' in line:
                    ends += 1
        delivered = ends
        dropped = metrics.dropped
    elif console_out is not None:
        console_out.close()
        delivered = path.read_text().count('"kind": ')
        dropped = None
    else:
        delivered = requests * 2
        dropped = 0
    print(
        json.dumps(
            {
                "config": config,
                "spans": requests * 2,
                "delivered": delivered,
                "lost": requests * 2 - delivered,
                "dropped_by_writer": dropped,
                "offered": requests * 2 / elapsed,
                "rate": delivered / elapsed,
                "flush_ok": flushed,
            }
        )
    )


def _paired(runs: list[dict[str, object]], other: str) -> tuple[float, list[float]]:
    """The median over rounds of logxpy's rate / ``other``'s in the same round, and each."""
    by_round: dict[int, dict[str, float]] = {}
    for run in runs:
        by_round.setdefault(int(str(run["round"])), {})[str(run["config"])] = float(str(run["rate"]))
    ratios = [r["logxpy"] / r[other] for r in by_round.values() if "logxpy" in r and other in r and r[other]]
    return (statistics.median(ratios) if ratios else 0.0), ratios


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=40_000, help="spans per run (default 40000)")
    parser.add_argument("--repeat", type=int, default=3, help="paired rounds (default 3)")
    parser.add_argument("--json", dest="json_out", help="also write all results here")
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], args.spans, args.child[1])
        return 0
    OUT_ROOT.mkdir(exist_ok=True)
    runs: list[dict[str, object]] = []
    failures: list[str] = []
    wall = time.perf_counter()
    for round_ in range(args.repeat):
        for config in CONFIGS:
            directory = tempfile.mkdtemp(dir=OUT_ROOT)
            try:
                result = spawn_child(__file__, [config, directory, "--spans", str(args.spans)], 600, config)
            except RuntimeError as exc:
                failures.append(str(exc))
                continue
            finally:
                shutil.rmtree(directory, ignore_errors=True)
            result["round"] = round_
            runs.append(result)
            print(
                f"  [{round_ + 1}/{args.repeat}] {config:8} {result['rate']:>10,.0f} spans/s, "
                f"lost {result['lost']}"
            )
    rates = {
        c: statistics.median(float(r["rate"]) for r in runs if r["config"] == c)
        for c in CONFIGS
        if any(r["config"] == c for r in runs)
    }
    lost = {c: sum(int(r["lost"]) for r in runs if r["config"] == c) for c in rates}
    print("\n| spans/s (median) | none | logxpy | console |\n|---|---:|---:|---:|")
    print(
        f"| {args.spans:,} spans, 1 thread | " + " | ".join(f"{rates.get(c, 0):,.0f}" for c in CONFIGS) + " |"
    )
    if {"none", "logxpy", "console"} <= rates.keys():
        # Each round's ratio (its runs back to back, so the machine's drift hits both alike),
        # then their median: steadier than the ratio of the medians on a noisy machine.
        vs_none = _paired(runs, "none")
        vs_console = _paired(runs, "console")
        spread = f"rounds {min(vs_none[1]):.2f}-{max(vs_none[1]):.2f}"
        print(
            f"\nlogxpy / none: {vs_none[0]:.2f} paired median, {spread} "
            f"(target >= 0.8, {'yes' if vs_none[0] >= 0.8 else 'NO'})"
        )
        print(
            f"logxpy / console: {vs_console[0]:.1f}x (target >= 5, {'yes' if vs_console[0] >= 5 else 'NO'})"
        )
        print(f"lost: logxpy {lost['logxpy']} (target 0), console {lost['console']}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"spans": args.spans, "runs": runs}, indent=2) + "\n")
    finish(time.perf_counter() - wall, failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
