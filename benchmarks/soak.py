"""Bounded soak run of LogxpyLogRecordProcessor against a deliberately slow destination.

Two phases, each half of ``--seconds`` (default 120 s in all): ``drop_oldest``, then
``block``. In each, 8 producer threads call ``Logger.emit`` at full speed through one
``LogxpyLogRecordProcessor`` with a small queue (5,000) whose only destination is a
callable that appends each batch to a file under ``benchmarks/.out/`` and then sleeps
about 1 ms, so the writer (at most ``--batch`` records per ~1 ms) is slower than the
producers and the queue policy is always at work.

Every second the script samples its RSS (``VmRSS`` of ``/proc/self/status``) and the
writer's metrics, and prints one line. At the end of a phase it stops the producers,
shuts the provider down and checks:

* accounting is exact: ``enqueued == written + dropped + pending`` and ``pending == 0``,
  and ``enqueued`` equals the records the producers emitted (every snapshot taken
  during the phase must balance too);
* ``block``: nothing dropped, and the file holds every record exactly once, in each
  thread's order;
* ``drop_oldest``: ``written + dropped == produced``, the file holds exactly ``written``
  records, each thread's ids increasing;
* both: RSS stays flat, i.e. its maximum is at most ``--rss-limit-mb`` (4) above the
  first sample taken after the warm-up. (A creep of a few bytes a record, such as the
  wake-ups that once piled up under overload, adds up to more than that in a phase.)

It prints a table per phase and exits 0 only when every check passed (1 otherwise).
Verification after each phase (reading the file back) adds a few seconds to the total.

Run (from the repository root)::

    .venv/bin/python benchmarks/soak.py              # 120 s
    .venv/bin/python benchmarks/soak.py --seconds 40
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource

from logxpy_otel import AsyncConfig, AsyncMetrics, LogxpyLogRecordProcessor

OUT = Path(__file__).resolve().parent / ".out"
MB = 1024 * 1024


class SlowFile:
    """A slow destination: appends each batch to ``path`` with ``os.write``, then sleeps."""

    def __init__(self, path: Path, delay_s: float) -> None:
        self.path = path
        self._delay_s = delay_s
        self._fd: int | None = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o600
        )

    def __call__(self, data: bytes) -> None:
        fd = self._fd
        if fd is None:
            raise ValueError(f"{self.path} is closed")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        time.sleep(self._delay_s)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def rss_bytes() -> int:
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@dataclass
class Sample:
    elapsed: float
    rss: int
    produced: int
    metrics: AsyncMetrics


@dataclass
class PhaseResult:
    policy: str
    seconds: float
    produced: int = 0
    metrics: AsyncMetrics | None = None
    samples: list[Sample] = field(default_factory=list)
    rss_baseline: int = 0
    failures: list[str] = field(default_factory=list)
    verify_s: float = 0.0

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)


def run_phase(policy: str, seconds: float, args: argparse.Namespace) -> PhaseResult:
    result = PhaseResult(policy, seconds)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"soak-{policy}.jsonl"
    provider = LoggerProvider(resource=Resource({"service.name": "soak"}), shutdown_on_exit=False)
    destination = SlowFile(path, args.delay_ms / 1000.0)
    processor = LogxpyLogRecordProcessor(
        destinations=[destination],
        config=AsyncConfig(
            max_queue_size=args.queue,
            batch_size=args.batch,
            queue_policy=policy,  # type: ignore[arg-type]
            shutdown_timeout_ms=120_000,
        ),
    )
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("soak")
    stop = threading.Event()
    produced = [0] * args.threads

    def produce(t: int) -> None:
        emit = logger.emit
        n = 0
        while not stop.is_set():
            emit(body="soak", attributes={"t": t, "n": n})
            n += 1
            produced[t] = n

    print(
        f"\n== phase {policy}: {args.threads} threads, {seconds:.0f} s, queue {args.queue}, "
        f"batch {args.batch}, destination sleeps {args.delay_ms} ms per batch"
    )
    threads = [
        threading.Thread(target=produce, args=(t,), name=f"producer-{t}", daemon=True)
        for t in range(args.threads)
    ]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    warmup = min(args.warmup, seconds / 4)
    tick = 1
    while True:
        # The sampler's own clock: one sample per second of the phase.
        now = time.monotonic()
        wait = start + tick - now
        if wait > 0:
            time.sleep(wait)
        elapsed = time.monotonic() - start
        m = processor.metrics
        sample = Sample(elapsed, rss_bytes(), sum(produced), m)
        result.samples.append(sample)
        if not result.rss_baseline and elapsed >= warmup:
            result.rss_baseline = sample.rss
        balanced = m.enqueued == m.written + m.dropped + m.pending
        result.check(balanced, f"unbalanced snapshot at {elapsed:.1f} s: {m}")
        print(
            f"  {elapsed:6.1f}s  rss {sample.rss / MB:7.1f} MB  produced {sample.produced:>10,}  "
            f"written {m.written:>10,}  dropped {m.dropped:>10,}  depth {m.queue_depth:>5}  "
            f"pending {m.pending:>5}{'' if balanced else '  UNBALANCED'}",
            flush=True,
        )
        tick += 1
        if elapsed >= seconds:
            break

    stop.set()
    for thread in threads:
        thread.join(60)
    result.check(all(not t.is_alive() for t in threads), "a producer did not stop within 60 s")
    provider.shutdown()
    result.produced = sum(produced)
    m = result.metrics = processor.metrics

    # -- checks ----------------------------------------------------------------------------
    result.check(m.enqueued == m.written + m.dropped + m.pending, f"accounting: {m}")
    result.check(m.pending == 0, f"pending after shutdown: {m.pending}")
    result.check(m.enqueued == result.produced, f"enqueued {m.enqueued:,} != produced {result.produced:,}")
    result.check(m.dropped == sum(m.dropped_by_reason.values()), "dropped != sum of reasons")
    result.check(m.max_queue_depth <= args.queue, f"max queue depth {m.max_queue_depth} > {args.queue}")
    if policy == "block":
        result.check(m.dropped == 0, f"block dropped {m.dropped:,}: {dict(m.dropped_by_reason)}")
    else:
        result.check(
            m.written + m.dropped == result.produced,
            f"written + dropped = {m.written + m.dropped:,} != produced {result.produced:,}",
        )
        result.check(m.dropped > 0, "drop_oldest never dropped: the destination was not the bottleneck")
    started = time.monotonic()
    verify_file(path, policy, produced, m, result)
    result.verify_s = time.monotonic() - started
    if result.rss_baseline:
        peak = max(s.rss for s in result.samples)
        growth = peak - result.rss_baseline
        result.check(
            growth <= args.rss_limit_mb * MB,
            f"RSS grew {growth / MB:.1f} MB over the post-warm-up baseline (limit {args.rss_limit_mb} MB)",
        )
    else:
        result.check(False, "no sample after the warm-up: run longer")
    if not args.keep and not result.failures:
        path.unlink()
    return result


def verify_file(path: Path, policy: str, produced: list[int], m: AsyncMetrics, result: PhaseResult) -> None:
    """Every record line: per thread, ids increase; for block, each id 0..produced-1 exactly once."""
    threads = len(produced)
    last = [-1] * threads
    count = [0] * threads
    order_errors = 0
    bad_lines = 0
    with open(path, "rb") as f:
        for raw in f:
            try:
                line = orjson.loads(raw)
                t, n = line["t"], line["n"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                bad_lines += 1
                continue
            if "at" in line:
                continue
            expected_ok = n == last[t] + 1 if policy == "block" else n > last[t]
            if not expected_ok:
                order_errors += 1
            last[t] = n
            count[t] += 1
    result.check(bad_lines == 0, f"{bad_lines} line(s) in the file are not record lines")
    result.check(order_errors == 0, f"{order_errors} record(s) out of order, missing or repeated")
    result.check(sum(count) == m.written, f"file holds {sum(count):,} records, metrics say {m.written:,}")
    if policy == "block":
        for t in range(threads):
            result.check(
                count[t] == produced[t] and last[t] == produced[t] - 1,
                f"thread {t}: {count[t]:,} records in the file, {produced[t]:,} produced",
            )


def print_table(results: list[PhaseResult]) -> None:
    rows = [
        ("records produced", lambda r: f"{r.produced:,}"),
        ("written", lambda r: f"{r.metrics.written:,}"),
        ("dropped", lambda r: f"{r.metrics.dropped:,}"),
        (
            "dropped by reason",
            lambda r: ", ".join(f"{k}={v:,}" for k, v in r.metrics.dropped_by_reason.items()) or "-",
        ),
        ("produced records/s", lambda r: f"{r.produced / r.samples[-1].elapsed:,.0f}"),
        ("written records/s", lambda r: f"{r.metrics.written / r.samples[-1].elapsed:,.0f}"),
        ("max queue depth", lambda r: f"{r.metrics.max_queue_depth:,}"),
        ("pending at the end", lambda r: f"{r.metrics.pending}"),
        ("batches", lambda r: f"{r.metrics.batches:,}"),
        ("RSS first (post warm-up)", lambda r: f"{r.rss_baseline / MB:.1f} MB"),
        ("RSS max", lambda r: f"{max(s.rss for s in r.samples) / MB:.1f} MB"),
        ("RSS last", lambda r: f"{r.samples[-1].rss / MB:.1f} MB"),
        ("verification time", lambda r: f"{r.verify_s:.1f} s"),
        ("checks", lambda r: "PASS" if not r.failures else f"FAIL ({len(r.failures)})"),
    ]
    for r in results:
        print(f"\n-- {r.policy} ({r.seconds:.0f} s) --")
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"  {name:<{width}}  {value(r)}")
        for failure in r.failures[:20]:
            print(f"  FAILED: {failure}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=120.0, help="total run time, split over 2 phases")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--queue", type=int, default=5_000, help="max_queue_size")
    parser.add_argument("--batch", type=int, default=20, help="batch_size (records per ~1 ms write)")
    parser.add_argument("--delay-ms", type=float, default=1.0, help="destination sleep per batch")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before the RSS baseline")
    parser.add_argument("--rss-limit-mb", type=float, default=4.0)
    parser.add_argument("--keep", action="store_true", help="keep the output files")
    args = parser.parse_args(argv)
    if args.seconds < 4:
        parser.error("--seconds must be at least 4 (two phases with a warm-up each)")
    phase_s = args.seconds / 2
    began = time.monotonic()
    results = [run_phase(policy, phase_s, args) for policy in ("drop_oldest", "block")]
    print_table(results)
    ok = all(not r.failures for r in results)
    print(f"\nsoak {'PASSED' if ok else 'FAILED'} in {time.monotonic() - began:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
