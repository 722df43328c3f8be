"""Quickstart: OTel logs inside and outside traces, written by logxpy-otel to a real file.

Run with ``make demo`` (which also renders the file with logxpy's own pretty-printer),
or ``python examples/quickstart.py [PATH]``. The file goes to ``logs/quickstart.jsonl``
under the working directory unless a path is given.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from logxpy_otel import LogxpyLogRecordProcessor


def main(path: Path) -> None:
    path.unlink(missing_ok=True)
    provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}))
    processor = LogxpyLogRecordProcessor(path)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("shop.checkout", "1.0")
    tracer = TracerProvider().get_tracer("shop.checkout")

    logger.emit(body="service started", severity_number=SeverityNumber.INFO, attributes={"port": 8080})
    with tracer.start_as_current_span("POST /checkout"):
        logger.emit(body="cart loaded", severity_number=SeverityNumber.INFO, attributes={"cart.items": 3})
        logger.emit(
            body={"order": 1042, "total": 99.5},
            severity_number=SeverityNumber.INFO,
            attributes={"http.route": "/checkout"},
        )
        logger.emit(
            body="card declined",
            severity_number=SeverityNumber.ERROR,
            attributes={"payment.provider": "acme", "retry": False},
        )
    with tracer.start_as_current_span("GET /health"):
        logger.emit(body="healthy", severity_number=SeverityNumber.DEBUG)

    provider.shutdown()  # flushes, closes the open traces (end lines) and the file
    m = processor.metrics
    print(f"wrote {m.written} records to {path} (dropped {m.dropped}, errors {m.errors})\n")
    print(path.read_text(encoding="utf-8"))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("logs") / "quickstart.jsonl")
