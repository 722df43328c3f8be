"""A stdlib ``logging`` application with no OpenTelemetry set-up, run under ``opentelemetry-instrument``.

It logs inside and outside a span (with extras and an exception), then configures
``logging`` itself (``dictConfig``, as applications do) and logs again, and prints which
handlers the root logger held before and after, and the trace id of its span, into
``app-info.json`` in the working directory (stdout may carry a console exporter's output,
written from its own thread).
"""

import json
import logging
import logging.config
from pathlib import Path

from opentelemetry import trace

log = logging.getLogger("zero_code_logging_app")
before = [type(h).__name__ for h in logging.getLogger().handlers]

log.warning("stdlib outside", extra={"user.id": 7})
with trace.get_tracer("zero_code_logging_app").start_as_current_span("request") as span:
    log.error("stdlib inside %s", "the span", extra={"attempt": 2, "otel.event.name": "app.failure"})
    try:
        raise ValueError("bad input")
    except ValueError:
        log.exception("failed")

# The application's own logging configuration: the captured handler stays on the root logger.
logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "root": {"level": "INFO"}})
log.info("after dictConfig")
after = [type(h).__name__ for h in logging.getLogger().handlers]

Path("app-info.json").write_text(
    json.dumps(
        {
            "root_handlers": before,
            "root_handlers_after_config": after,
            "trace_id": f"{span.get_span_context().trace_id:032x}",
        }
    )
)
