"""Instructions per record, counted by valgrind's callgrind: a figure this noisy machine cannot move.

The workload is bench_throughput.py's (short body, 5 attributes, inside spans, one
thread), through (a) no processor and (b) ``LogxpyLogRecordProcessor`` writing a file.
Each is run for N and 2N records; the difference divided by N is the cost of one record
(start-up and shutdown cancel out), summed over every thread of the process, the writer
thread included. Needs ``valgrind`` on the PATH (Debian: ``apt install valgrind``).

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_instructions.py [--records N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence

CONFIGS = ("none", "logxpy")


def _child(config: str, records: int, directory: str) -> None:
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from logxpy_otel import LogxpyLogRecordProcessor

    provider = LoggerProvider(resource=Resource.create({"service.name": "bench"}), shutdown_on_exit=False)
    if config == "logxpy":
        provider.add_log_record_processor(LogxpyLogRecordProcessor(os.path.join(directory, "bench.jsonl")))
    logger = provider.get_logger("bench")
    tracer = TracerProvider().get_tracer("bench")
    attributes = {
        "http.route": "/api/items",
        "http.status_code": 200,
        "duration_ms": 12.5,
        "ok": True,
        "user": "alice",
    }
    for _ in range(records // 100):
        with tracer.start_as_current_span("request"):
            for _ in range(100):
                logger.emit(body="request done", severity_number=SeverityNumber.INFO, attributes=attributes)
    provider.shutdown()


def _count(config: str, records: int) -> int:
    """Instructions of a whole child process emitting ``records`` records."""
    with tempfile.TemporaryDirectory(dir=os.getcwd(), prefix=".bench-instr-") as directory:
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                sys.executable,
                __file__,
                "--child",
                config,
                str(records),
                directory,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    match = re.search(r"Collected : ([\d,]+)", out.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{out.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000, help="N (default 10000): runs N and 2N")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        config, records, directory = args.child
        _child(config, int(records), directory)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    n = args.records
    per_record = {}
    for config in CONFIGS:
        low, high = _count(config, n), _count(config, 2 * n)
        per_record[config] = (high - low) / n
    print("| config | instructions/record |")
    print("|---|---:|")
    for config in CONFIGS:
        print(f"| {config} | {per_record[config]:,.0f} |")
    added = per_record["logxpy"] - per_record["none"]
    print(
        f"\nours adds {added:,.0f} instructions/record; b/a by instructions: "
        f"{per_record['none'] / per_record['logxpy']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
