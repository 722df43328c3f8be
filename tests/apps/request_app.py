"""A request-handling app under ``opentelemetry-instrument`` (issue 18): requests in spans,
then silence, then more requests and an exit with records still on their way.

argv: the log file to watch. It prints ``IDLE_CLOSED <n>`` once the first requests'
traces have their end lines in the file (a bounded wait: the idle timeout must close
them while the app runs), then logs a last burst and exits at once.
"""

import logging
import sys
import time

from opentelemetry import trace

path = sys.argv[1]
log = logging.getLogger("request_app")
tracer = trace.get_tracer("request_app")


def request(n: int) -> None:
    with tracer.start_as_current_span(f"GET /item/{n}"):
        for step in range(3):
            log.warning("request %d step %d", n, step)


for n in range(5):
    request(n)
deadline = time.monotonic() + 20.0
ends = 0
while ends < 5 and time.monotonic() < deadline:  # what `tail -f` would see, polled
    time.sleep(0.05)
    with open(path, encoding="utf-8") as f:
        ends = sum('"st":"succeeded"' in line for line in f)
print("IDLE_CLOSED", ends, flush=True)
for n in range(5, 25):
    request(n)
# exit now: records may still be queued anywhere in the pipeline
