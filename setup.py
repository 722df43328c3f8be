"""The optional C speed-up (``logxpy_otel/_speedups.c``); all else is in pyproject.toml.

Where it cannot be compiled (no C compiler, no Python headers, a compiler error), the
install goes on without it and the package runs in pure Python: same output, slower.
``BuildExt`` says so in one plain line, with the reason, instead of a traceback;
``logxpy-otel info`` tells later which one is in use.
"""

import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _reason(exc: BaseException) -> str:
    """Why the build failed, in a few words: the cause, not the whole command line."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, FileNotFoundError) and cause.filename:
            return f"no C compiler found ({cause.filename!r} does not exist)"
        if isinstance(cause, subprocess.CalledProcessError):
            cmd = cause.cmd
            program = cmd[0] if isinstance(cmd, list | tuple) and cmd else cmd
            status = cause.returncode
            return f"the C compiler ({program}) failed with exit status {status}; see its messages above"
        cause = cause.__cause__ or cause.__context__
    return " ".join(str(exc).split()) or type(exc).__name__


def _fallback_note(what: str, exc: BaseException) -> None:
    reason = _reason(exc)
    print(
        f"logxpy-otel: the optional C speed-up ({what}) could not be built: {reason}. "
        "The pure-Python code will be used instead (same output, slower).",
        file=sys.stderr,
        flush=True,
    )


class BuildExt(build_ext):
    """``build_ext`` for optional extensions: a failure is one line, not the end of the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - set-up before any extension (no compiler at all, ...)
            _fallback_note(", ".join(ext.name for ext in self.extensions), exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001 - CompileError, LinkError, no compiler (OSError), ...
            _fallback_note(ext.name, exc)


setup(
    ext_modules=[
        Extension(
            "logxpy_otel._speedups",
            ["logxpy_otel/_speedups.c"],
            depends=["logxpy_otel/_cjson.h", "logxpy_otel/_forest.h"],
            optional=True,
        ),
        # LogxpyLoggingHandler's common case (a logging.LogRecord into the processor's C on_emit)
        Extension(
            "logxpy_otel._logging_speedups",
            ["logxpy_otel/_logging_speedups.c"],
            depends=["logxpy_otel/_cjson.h"],
            optional=True,
        ),
    ],
    cmdclass={"build_ext": BuildExt},
)
