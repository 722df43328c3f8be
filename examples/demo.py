"""The demo: a small shop app logs three requests in spans (nested calls, one failing
step, stdlib logging and the Logs API), its spans written as nested actions beside the
records, then the file is shown as trees.

``make demo`` runs it; ``python examples/demo.py [PATH]`` too. The raw lines are one
command away: ``cat logs/demo.jsonl``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from logxpy_otel import LogxpyLogRecordProcessor
from logxpy_otel.viewer import render

tracer = trace.get_tracer("shop")
log = logging.getLogger("shop.checkout")


def charge(order: int, total: float) -> None:
    with tracer.start_as_current_span("charge card"):
        log.info("charging %.2f", total, extra={"order.id": order, "payment.provider": "acme"})
        if total > 100:
            log.error("card declined", extra={"order.id": order, "decline.code": "insufficient_funds"})
            raise ValueError("card declined")


def reserve(order: int, items: int) -> None:
    with tracer.start_as_current_span("reserve stock", attributes={"cart.items": items}):
        log.info("stock reserved", extra={"order.id": order})


def checkout(order: int, items: int, total: float) -> None:
    with tracer.start_as_current_span("POST /checkout", kind=trace.SpanKind.SERVER):
        log.info("cart loaded", extra={"order.id": order, "cart.items": items})
        reserve(order, items)
        try:
            charge(order, total)
        except ValueError:
            log.warning("order %d not placed", order, extra={"order.id": order})
            return
        log.info("order placed", extra={"order.id": order, "total": total})


def main(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    resource = Resource.create({"service.name": "shop"})
    provider = LoggerProvider(resource=resource)
    processor = LogxpyLogRecordProcessor(path)
    provider.add_log_record_processor(processor)
    tracer_provider = TracerProvider(resource=resource)
    # spans as nested actions in the same file, through the same writer
    tracer_provider.add_span_processor(processor.span_processor())
    trace.set_tracer_provider(tracer_provider)
    # stdlib logging, straight into the same writer (no SDK steps in between)
    logging.getLogger().addHandler(processor.logging_handler(logger_provider=provider))
    logging.getLogger().setLevel(logging.INFO)

    provider.get_logger("shop").emit(body="service started", severity_number=SeverityNumber.INFO)
    checkout(1041, 2, 42.0)
    checkout(1042, 5, 180.5)
    with tracer.start_as_current_span("GET /health"):
        log.debug("not shown: below INFO")
        log.info("healthy")

    tracer_provider.shutdown()
    provider.shutdown()  # flush, close the open traces (end lines) and the file
    m = processor.metrics
    print(f"wrote {m.written} lines (records and span lines) to {path} (dropped {m.dropped}); as trees:\n")
    for line in render([path], color=sys.stdout.isatty() and "NO_COLOR" not in os.environ):
        print(line)
    print(f"\nthe raw lines: cat {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("logs") / "demo.jsonl")
