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


def test_an_application_s_exception_is_raised_on_once_per_mark() -> None:
    """Review of session 33's fix: the mark stayed on the exception object, so an
    application raising one prebuilt instance (its alarm's) got it raised out of a later
    call that never waited (its own callback raising it inside our encoding), which is
    counted as ours otherwise. The mark goes with the first raise."""
    from logxpy_otel._diagnostics import mark_application_error, raise_if_application_error

    class Timeout(Exception):
        pass

    prebuilt = Timeout("prebuilt")
    raise_if_application_error(prebuilt)  # (not marked: nothing)
    mark_application_error(prebuilt)
    with pytest.raises(Timeout):
        raise_if_application_error(prebuilt)
    raise_if_application_error(prebuilt)  # (raised once: no mark left)

    class NoDict(Exception):
        __slots__ = ()

        def __getattribute__(self, name: str) -> object:
            raise RuntimeError("hostile")

    odd = NoDict()
    mark_application_error(odd)  # (its __dict__ cannot be read: not marked, and never raises)
    raise_if_application_error(odd)  # (so counted as ours, as before the mark existed)
