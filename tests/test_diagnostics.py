"""The package's own diagnostics: where our warnings show, and that they never feed back."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = """
import logging, sys
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs._internal import LoggingHandler
import logxpy_otel._diagnostics  # our logger, as any of our modules sets it up
{setup}
logging.getLogger("logxpy_otel").warning("logxpy-otel: the collector is unreachable (test)")
"""


@pytest.mark.parametrize(
    ("setup", "on_stderr", "on_stdout"),
    [
        pytest.param("", True, False, id="no-handlers"),
        pytest.param(
            "logging.getLogger().addHandler(LoggingHandler(logger_provider=LoggerProvider()))",
            True,
            False,
            id="only-the-otel-handler",
        ),
        pytest.param("logging.basicConfig(stream=sys.stdout)", False, True, id="app-shows-logs"),
    ],
)
def test_our_warnings_reach_a_person_exactly_once(setup: str, on_stderr: bool, on_stdout: bool) -> None:
    """Issue 18: with logging auto-instrumentation the root logger's only handler is the
    OTel one, so a failing collector was reported only inside the file it is about."""
    script = textwrap.dedent(SCRIPT.format(setup=setup))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stderr.count("collector is unreachable") == (1 if on_stderr else 0), done.stderr
    assert done.stdout.count("collector is unreachable") == (1 if on_stdout else 0), done.stdout
