"""``logxpy-otel info`` and ``logxpy-otel --version``: what is installed and what is in use.

The first thing to run after an install, and what to paste into a bug report: the
package's version and place, the Python, the OpenTelemetry SDK and API versions, and
whether the optional C speed-up runs (and, when it does not, why: not built for this
Python, or turned off by ``LOGXPY_OTEL_PURE_PYTHON``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from . import __version__

__all__ = ["VersionAction", "add_parser", "collect", "run", "version_line"]

#: The optional C modules (setup.py) and what each does.
_C_MODULES = {
    "_speedups": "encoder, batch numbering, processor on_emit",
    "_logging_speedups": "logging handler fast path",
}

_PURE_PYTHON = "LOGXPY_OTEL_PURE_PYTHON"

_DESCRIPTION = """\
Print what is installed and in use: the logxpy-otel version and where it is
installed, the Python running it, the OpenTelemetry SDK and API versions, and
whether the optional C speed-up is in use. When it is not, say why: it was not
built for this Python (no C compiler at install time, or the build failed: the
package then runs its pure-Python code, with the same output, slower), or it is
turned off by LOGXPY_OTEL_PURE_PYTHON=1."""


def _distribution_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _turned_off() -> bool:
    return os.environ.get(_PURE_PYTHON, "").strip().lower() in ("1", "true", "yes", "on")


def _module_state(name: str) -> tuple[bool, str]:
    """Whether ``logxpy_otel.<name>`` imports, and if not the import error in one line."""
    try:
        importlib.import_module(f"logxpy_otel.{name}")
    except ImportError as exc:
        return False, " ".join(str(exc).split()) or type(exc).__name__
    return True, ""


def collect() -> dict[str, Any]:
    """Everything ``info`` prints, as plain data."""
    modules: dict[str, dict[str, Any]] = {}
    for name, role in _C_MODULES.items():
        built, error = _module_state(name)
        modules[name] = {"built": built, "role": role, **({} if built else {"import_error": error})}
    why_not: str | None = None
    if _turned_off():
        why_not = f"turned off by {_PURE_PYTHON}={os.environ[_PURE_PYTHON]}"
    elif not modules["_speedups"]["built"]:
        why_not = "not built for this Python (no C compiler at install time, or the build failed)"
    return {
        "logxpy_otel": {"version": __version__, "location": str(Path(__file__).resolve().parent)},
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "opentelemetry": {
            "sdk": _distribution_version("opentelemetry-sdk"),
            "api": _distribution_version("opentelemetry-api"),
        },
        "c_speedup": {"in_use": why_not is None, "why_not": why_not, "modules": modules},
    }


def _speedup_text(c: dict[str, Any]) -> str:
    if c["in_use"]:
        return "in use"
    return f"not in use: {c['why_not']}; the pure-Python code runs (same output, slower)"


def version_line() -> str:
    """One line for ``--version``."""
    info = collect()
    sdk = info["opentelemetry"]["sdk"] or "not installed"
    speedup = "in use" if info["c_speedup"]["in_use"] else "not in use"
    return (
        f"logxpy-otel {__version__} (Python {info['python']['version']}, "
        f"opentelemetry-sdk {sdk}, C speed-up {speedup})"
    )


class VersionAction(argparse.Action):
    """``--version``: print :func:`version_line` and exit 0 (worked out only when asked for)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        kwargs.setdefault("help", "print the versions in use and whether the C speed-up runs, then exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(version_line())
        parser.exit()


def _text(info: dict[str, Any]) -> str:
    otel = info["opentelemetry"]
    c = info["c_speedup"]
    python = info["python"]
    rows = [
        ("logxpy-otel", f"{info['logxpy_otel']['version']} ({info['logxpy_otel']['location']})"),
        ("Python", f"{python['version']} {python['implementation']} ({python['executable']})"),
        ("OpenTelemetry SDK", f"{otel['sdk'] or 'not installed'} (API {otel['api'] or 'not installed'})"),
        ("C speed-up", _speedup_text(c)),
    ]
    for name, module in c["modules"].items():
        state = "built" if module["built"] else f"not built ({module['import_error']})"
        rows.append((f"  {name}", f"{state}: {module['role']}"))
    width = max(len(label) for label, _ in rows) + 2
    return "\n".join(f"{label:<{width}}{value}" for label, value in rows)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``info`` subcommand."""
    info = commands.add_parser(
        "info",
        help="print the versions in use (logxpy-otel, Python, OpenTelemetry SDK) and whether "
        "the C speed-up runs",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    info.add_argument("--json", action="store_true", help="print it as one JSON object")


def run(args: argparse.Namespace) -> int:
    """Print the information; exit status 0."""
    info = collect()
    print(orjson.dumps(info).decode() if args.json else _text(info))
    return 0
