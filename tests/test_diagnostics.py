"""The package's own diagnostics: where our warnings show, and that they never feed back."""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
import textwrap
from typing import Any

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


class Timeout(Exception):
    """What an application's alarm handler raises."""


def _function_handler(signum: int, frame: object) -> None:
    raise Timeout("function")


class _Handlers:
    def method(self, signum: int, frame: object) -> None:
        raise Timeout("method")

    def __call__(self, signum: int, frame: object) -> None:
        raise Timeout("callable")


def _partial_target(note: str, signum: int, frame: object) -> None:
    raise Timeout(note)


def _forgets_its_arguments(signum: int, frame: object) -> None:
    del frame  # (a review of session 34: the arguments' shape alone missed it)
    signum = 0
    raise Timeout(f"forgets {signum}")


def _names_its_signal(signum: int, frame: object) -> None:
    signum = signal.Signals(signum)  # (a review of session 34: an IntEnum, not an int)
    raise Timeout(signum.name)


def _lambda_target(signum: int) -> None:
    raise Timeout("lambda")


def _star_handler(*args: object) -> None:
    raise Timeout("star")


def _caught_in_our_call(handler: Any, *, in_a_generator: bool = False) -> BaseException:
    """What a fault handler of ours catches when ``handler`` runs for a signal in our call
    (raised on by a handler of ours on the way, as the write path does); with
    ``in_a_generator``, while a generator expression of ours runs."""
    from logxpy_otel._diagnostics import raise_if_application_error

    def our_write() -> None:
        if in_a_generator:  # (a review of session 34: a stopped generator's frame has no f_back)
            any(signal.raise_signal(signal.SIGUSR1) for _ in [1])
        signal.raise_signal(signal.SIGUSR1)  # (its handler runs here, as an alarm's in a write)

    def our_layer() -> None:
        try:
            our_write()
        except Exception as exc:
            raise_if_application_error(exc)
            raise AssertionError("not taken for the application's") from exc

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        our_layer()  # (which asks while the handler is installed, as our fault handlers do)
    except Exception as exc:
        return exc
    finally:
        signal.signal(signal.SIGUSR1, old)
    raise AssertionError("the handler raised nothing")


@pytest.mark.parametrize(
    "handler",
    [
        _function_handler,
        _Handlers().method,
        _Handlers(),
        functools.partial(_partial_target, "partial"),
        _star_handler,
        lambda signum, frame: _lambda_target(signum),
        _forgets_its_arguments,
        _names_its_signal,
    ],
    ids=["function", "method", "callable", "partial", "star-args", "lambda", "forgets-args", "names-it"],
)
def test_an_exception_a_signal_handler_raised_in_our_call_is_the_application_s(handler: Any) -> None:
    """Session 34: told by its traceback (a frame called as a signal handler is, with
    ``(signum, frame)``), wherever in our call it landed and however the handler is written."""
    from logxpy_otel._diagnostics import is_application_error

    exc = _caught_in_our_call(handler)
    assert isinstance(exc, Timeout)  # (raised on by our layer: taken for the application's)
    if handler is not _forgets_its_arguments:  # (told by its code while it is installed)
        assert is_application_error(exc)  # (its arguments' shape: also once it is not)


def test_our_own_fault_and_a_prebuilt_exception_raised_again_are_not_the_application_s() -> None:
    """An exception of ours is counted as ours. One prebuilt instance the application raised
    once from its handler (the traceback of that raise stays on it) and later from its
    own callback inside our encoding is that later call's: counted as ours (session 33's
    review found a mark kept on the object did this wrong)."""
    from logxpy_otel._diagnostics import is_application_error, raise_if_application_error

    def ours() -> None:
        raise ValueError("a fault of ours")

    try:
        ours()
    except ValueError as exc:
        assert not is_application_error(exc)
        raise_if_application_error(exc)  # (nothing)

    prebuilt = Timeout("prebuilt")

    def handler(signum: int, frame: object) -> None:
        raise prebuilt

    assert is_application_error(_caught_in_our_call(handler))

    def callback() -> None:  # (the application's __str__, say, run by our encoder)
        raise prebuilt

    def our_encoding() -> None:
        callback()

    try:
        our_encoding()
    except Timeout as exc:
        assert exc is prebuilt
        assert not is_application_error(exc)

    class Unreadable(Exception):
        @property
        def __traceback__(self) -> Any:  # type: ignore[override]
            raise RuntimeError("hostile")

    assert not is_application_error(Unreadable())  # (never raises: counted as ours)


def _guarded(function: Any) -> Any:
    """An application's decorator: one ``wrapper`` code for every function it wraps."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    return wrapper


def _not_the_guarded_handler_s(call: Any, error: type[Exception]) -> None:
    """``call()`` (our code, calling the application's) raises ``error`` while a handler
    made by the same decorator is installed: not taken for the handler's."""
    from logxpy_otel._diagnostics import is_application_error

    old = signal.signal(signal.SIGUSR1, _guarded(_function_handler))
    try:
        with pytest.raises(error) as raised:
            call()
        assert not is_application_error(raised.value)  # (asked while the handler is installed)
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_code_a_handler_shares_with_a_method_our_encoding_calls_is_not_the_handler() -> None:
    """A review of session 34: the installed handlers' code matched any frame running it,
    and an application decorator's ``wrapper`` serves its signal handler and its methods
    alike: a ``__str__`` of the application's failing under our encoding was raised into
    its logging call (uncounted) rather than counted as ours."""

    class OrderId:
        @_guarded
        def __str__(self) -> str:
            raise LookupError("no such order")

    def our_encoding() -> str:
        return str(OrderId())

    _not_the_guarded_handler_s(our_encoding, LookupError)
    exc = _caught_in_our_call(_guarded(_function_handler))  # (the handler itself: taken)
    assert isinstance(exc, Timeout)


def test_a_hostile_handler_object_elsewhere_is_never_asked_and_hides_nothing() -> None:
    """A review of session 34: the handlers' code was read with getattr, which ran a
    handler object's ``__getattr__`` (on another signal) inside our fault path; one that
    raised made the whole check say "ours", and the alarm's exception was swallowed."""
    asked: list[str] = []

    class Hostile:
        def __call__(self, signum: int, frame: object) -> None:
            pass

        def __getattr__(self, name: str) -> Any:
            asked.append(name)
            raise KeyError(name)

    old = signal.signal(signal.SIGUSR2, Hostile())
    try:
        exc = _caught_in_our_call(_function_handler)
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert isinstance(exc, Timeout)
    assert asked == []


def test_a_handler_that_ran_inside_a_generator_of_ours_is_told() -> None:
    """A review of session 34: a generator in the chain (a stopped one has no ``f_back``)
    broke it, and the handler's exception was counted as ours."""
    assert isinstance(_caught_in_our_call(_function_handler, in_a_generator=True), Timeout)


def test_an_application_function_sharing_the_handler_s_code_is_not_the_handler() -> None:
    """A review of session 34: a decorator's ``wrapper`` serving the handler and a function
    our code calls with ``(bytes, int)`` (a destination's ``send(chunk, retries)``): an
    int among its arguments made its error the application's, raised into the logging
    call. Only ints, frames and None (what a handler's arguments can be left as) count."""

    @_guarded
    def send(chunk: bytes, retries: int) -> None:
        raise ConnectionError("down")

    def our_write() -> None:
        send(b"data", 3)

    _not_the_guarded_handler_s(our_write, ConnectionError)
