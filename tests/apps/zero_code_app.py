"""An application with no OpenTelemetry set-up of its own, run under ``opentelemetry-instrument``.

It logs through stdlib ``logging`` (picked up by the logging instrumentation) and the
Logs API, inside and outside a span, then prints what the test needs to know about the
SDK set-up that the environment produced: the processors on the logger provider, and
the trace id of its span.
"""

import json
import logging

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber, get_logger, get_logger_provider

log = logging.getLogger("zero_code_app")
api = get_logger("zero_code_app.api")

log.warning("stdlib outside")
with trace.get_tracer("zero_code_app").start_as_current_span("request") as span:
    log.error("stdlib inside")
    api.emit(body="api inside", severity_number=SeverityNumber.INFO, attributes={"n": 1})
api.emit(body="api outside", severity_number=SeverityNumber.WARN)

provider = get_logger_provider()
processors = getattr(getattr(provider, "_multi_log_record_processor", None), "_log_record_processors", ())
print(
    "ZERO_CODE_APP "
    + json.dumps(
        {
            "processors": [type(p).__name__ for p in processors],
            "exporters": [
                type(getattr(getattr(p, "_batch_processor", None), "_exporter", None)).__name__
                for p in processors
            ],
            "trace_id": f"{span.get_span_context().trace_id:032x}",
        }
    )
)
