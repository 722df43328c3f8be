"""What each ``fsync`` durability setting of ``LogxpyLogRecordProcessor`` costs, one fresh process per run.

What it measures
----------------
Each run emits ``--records`` records (default 100,000) from 1 thread through the SDK's
``Logger.emit(body=..., severity_number=..., attributes=...)``: a short string body and 5
attributes (str/int/float/bool/str), no active span. The provider holds one
``LogxpyLogRecordProcessor(path, fsync=SETTING)`` (every other option at its default:
queue policy block, batch 1,000, flush interval 200 ms). Rows:

``never``              no fsync (the default): the baseline.
``batch``              ``fsync`` after every batch the writer thread writes.
``100 ms``             ``fsync=100``: at most one fsync per 100 ms of writes.
``1000 ms``            ``fsync=1000``: at most one fsync per second of writes.
``batch, batch_size=100``  ``fsync="batch"`` with ``batch_size=100``: smaller batches, so
                       about ten times the fsyncs of ``batch``; with ``batch`` it gives the
                       cost of one fsync.

Per run: 1,000 warm-up records are emitted and flushed first; the lines they produced are
counted and subtracted. Then, timed from the first emit:

* delivered records/s: records found in the output file / the time until
  ``provider.force_flush()`` and ``provider.shutdown()`` returned (the file is closed).
* ratio to ``never``: that rate / the ``never`` rate.
* fsync calls/s: the child replaces ``os.fsync`` with a counting wrapper before it builds
  the processor; the calls made in the timed interval (including the sync that
  ``force_flush``/``shutdown`` make) / the same time. ``fsyncs`` is the median count.
* µs per extra fsync: (median time of the row - median time of ``never``) / the row's
  median fsync count: what one fsync adds, as seen from the caller's wall clock.
* lost: records emitted - records found in the file (must be 0: the policy is block).

Each row runs ``--repeat`` times (default 3), each time in a fresh subprocess (this file with
the hidden ``--child FSYNC BATCH_SIZE N``, which prints one JSON line); the repeats are
interleaved across rows so machine-load drift spreads over all of them, and the table shows
medians. Output goes to a fresh temporary directory under ``benchmarks/.out/``, deleted after
counting. fsync cost depends entirely on the filesystem and the device under it (and on
whether a VM or container honours it), so the filesystem of ``benchmarks/.out/`` is printed.

Run (from the repository root)::

    .venv/bin/python benchmarks/bench_fsync.py
    .venv/bin/python benchmarks/bench_fsync.py --records 20000 --repeat 1
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
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

from _common import OUT_ROOT, count_logxpy_records, finish, spawn_child


@dataclass(frozen=True)
class Row:
    label: str
    fsync: str  # "never", "batch" or milliseconds, as given to the processor
    batch_size: int | None = None  # None: the processor's default


ROWS: tuple[Row, ...] = (
    Row("never", "never"),
    Row("batch", "batch"),
    Row("100 ms", "100"),
    Row("1000 ms", "1000"),
    Row("batch, batch_size=100", "batch", 100),
)
BASELINE = "never"

WARMUP_RECORDS = 1_000


# --------------------------------------------------------------------------------------
# The child: one setting, one run.
# --------------------------------------------------------------------------------------


def _emit_records(logger: Any, count: int) -> None:
    from opentelemetry._logs import SeverityNumber

    info = SeverityNumber.INFO
    emit = logger.emit
    for i in range(count):
        emit(
            body="request handled",
            severity_number=info,
            attributes={"user": "alice", "item": i, "ratio": 0.25, "ok": True, "route": "/api/items"},
        )


def run_child(fsync: str, batch_size: int | None, records: int) -> dict[str, Any]:
    """One measured run; returns the figures printed as one JSON line."""
    calls = [0]
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls[0] += 1
        real_fsync(fd)

    os.fsync = counting_fsync  # the destination looks up ``os.fsync`` at each call

    from opentelemetry.sdk._logs import LoggerProvider

    from logxpy_otel import LogxpyLogRecordProcessor

    OUT_ROOT.mkdir(exist_ok=True)
    out_dir = Path(tempfile.mkdtemp(prefix=f"fsync-{fsync}-", dir=OUT_ROOT))
    try:
        path = out_dir / "fsync.log"
        options: dict[str, Any] = {"fsync": fsync if fsync in ("never", "batch") else float(fsync)}
        if batch_size is not None:
            options["batch_size"] = batch_size
        processor = LogxpyLogRecordProcessor(path, **options)
        provider = LoggerProvider(shutdown_on_exit=False)
        provider.add_log_record_processor(processor)
        logger = provider.get_logger("bench_fsync")

        # Warm-up: same path, flushed, and its lines counted so they can be subtracted.
        _emit_records(logger, WARMUP_RECORDS)
        provider.force_flush()
        warm_lines = count_logxpy_records(path)
        batches0 = processor.metrics.batches

        calls[0] = 0
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        _emit_records(logger, records)
        t_emit = time.perf_counter() - t0
        flush_ok = provider.force_flush()
        provider.shutdown()
        t_total = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        fsyncs = calls[0]
        m = processor.metrics

        delivered = count_logxpy_records(path) - warm_lines
        return {
            "fsync": fsync,
            "batch_size": processor.writer.config.batch_size,
            "records": records,
            "delivered": delivered,
            "lost": records - delivered,
            "rate": delivered / t_total,
            "fsyncs": fsyncs,
            "fsync_rate": fsyncs / t_total,
            "batches": m.batches - batches0,
            "emit_s": t_emit,
            "total_s": t_total,
            "cpu_s": cpu,
            "warmup_lines": warm_lines,
            "flush_ok": flush_ok,
            "dropped": m.dropped,
            "errors": m.errors,
        }
    finally:
        os.fsync = real_fsync
        shutil.rmtree(out_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------
# The parent: run the children, take medians, print the table.
# --------------------------------------------------------------------------------------


def _spawn(row: Row, records: int) -> dict[str, Any]:
    batch = "default" if row.batch_size is None else str(row.batch_size)
    return spawn_child(__file__, [row.fsync, batch, str(records)], 600 + records / 200, row.label)


def _filesystem(path: Path) -> str:
    """The filesystem type and device of ``path``, from ``df -T`` (else ``stat -f``)."""
    try:
        out = subprocess.run(
            ["df", "-T", str(path)], capture_output=True, text=True, timeout=10, check=True
        ).stdout.splitlines()
        fields = out[-1].split()
        if len(fields) >= 7:
            return f"{fields[1]} ({fields[0]} mounted on {fields[6]})"
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    try:
        return subprocess.run(
            ["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _ver(name: str) -> str:
    try:
        return dist_version(name)
    except Exception:
        return "not installed"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=100_000, help="records per run (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per setting (default 3)")
    parser.add_argument("--json", dest="json_out", default="", help="also write all results here")
    parser.add_argument("--child", nargs=3, metavar=("FSYNC", "BATCH_SIZE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        fsync, batch, records = args.child[0], args.child[1], int(args.child[2])
        batch_size = None if batch == "default" else int(batch)
        print(json.dumps(run_child(fsync, batch_size, records)), flush=True)
        return 0

    if args.records < 1 or args.repeat < 1:
        parser.error("need --records >= 1 and --repeat >= 1")

    OUT_ROOT.mkdir(exist_ok=True)
    fs = _filesystem(OUT_ROOT)
    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"opentelemetry-sdk {_ver('opentelemetry-sdk')}, logxpy-otel {_ver('logxpy-otel')}, "
        f"{platform.platform()}"
    )
    print(f"output dir {OUT_ROOT.name}/ filesystem: {fs}")
    print(
        f"{args.records:,} records per run, 1 thread, no span, "
        f"median of {args.repeat} fresh process(es) per row"
    )
    overrides = sorted(k for k in os.environ if k.startswith("OTEL_EXPORTER_LOGXPY_") or k == "LOGXPY_SYNC")
    if overrides:
        print(f"warning: set in the environment, may change the rows: {', '.join(overrides)}")
    sys.stdout.flush()

    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {row.label: [] for row in ROWS}
    failures: list[str] = []
    for k in range(args.repeat):
        for row in ROWS:
            try:
                result = _spawn(row, args.records)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                failures.append(str(exc))
                print(f"  [{k + 1}/{args.repeat}] {row.label}: FAILED", file=sys.stderr)
                continue
            runs[row.label].append(result)
            print(
                f"  [{k + 1}/{args.repeat}] {row.label:<22} {result['rate']:>9,.0f} rec/s, "
                f"{result['fsyncs']:,} fsyncs, {result['batches']:,} batches, "
                f"lost {result['lost']:,}, {result['total_s']:.2f} s",
                file=sys.stderr,
                flush=True,
            )
    wall = time.perf_counter() - started

    summary: dict[str, dict[str, Any]] = {}
    for label, rs in runs.items():
        if rs:
            summary[label] = {
                "rate": statistics.median(r["rate"] for r in rs),
                "total_s": statistics.median(r["total_s"] for r in rs),
                "fsyncs": statistics.median(r["fsyncs"] for r in rs),
                "fsync_rate": statistics.median(r["fsync_rate"] for r in rs),
                "batches": statistics.median(r["batches"] for r in rs),
                "lost": statistics.median(r["lost"] for r in rs),
                "lost_max": max(r["lost"] for r in rs),
                "runs": len(rs),
            }

    base = summary.get(BASELINE)
    print()
    print(
        "| setting | delivered records/s | ratio to never | fsync calls/s | fsyncs | batches "
        "| µs per extra fsync | lost |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in ROWS:
        s = summary.get(row.label)
        if s is None:
            print(f"| {row.label} | failed | failed | failed | failed | failed | failed | failed |")
            continue
        ratio = f"{s['rate'] / base['rate']:.2f}" if base is not None and base["rate"] else "—"
        if base is not None and row.label != BASELINE and s["fsyncs"]:
            per = f"{(s['total_s'] - base['total_s']) / s['fsyncs'] * 1e6:,.0f}"
        else:
            per = "—"
        lost = f"{s['lost']:,.0f}" + (f" (max {s['lost_max']:,})" if s["lost_max"] != s["lost"] else "")
        print(
            f"| {row.label} | {s['rate']:,.0f} | {ratio} | {s['fsync_rate']:,.1f} | {s['fsyncs']:,.0f} "
            f"| {s['batches']:,.0f} | {per} | {lost} |"
        )
    print()
    print(
        "µs per extra fsync = (row time - never time) / row fsyncs; "
        "near zero or negative means the fsyncs cost less than the run-to-run noise."
    )
    finish(wall, failures)

    if args.json_out:
        payload = {
            "python": platform.python_version(),
            "filesystem": fs,
            "records": args.records,
            "repeat": args.repeat,
            "wall_s": wall,
            "runs": [r for rs in runs.values() for r in rs],
            "summary": summary,
            "failures": failures,
        }
        Path(args.json_out).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
