"""The distributions and the first commands a newcomer runs (issue 14).

- The sdist holds everything its tests, docs, examples and benchmarks need; the wheel holds
  the package (and the C speed-up where a compiler was found); ``twine check`` passes.
- A build with no working C compiler says so in one line and gives a wheel that runs in
  pure Python; ``logxpy-otel info`` then says why the C speed-up is not in use.
- ``logxpy-otel info``, ``--version`` and every ``--help``.

The distributions are built once per session (:func:`distributions`, also used by
tests/test_docs.py) with ``python -m build`` from a copy of this checkout's files (the
ones git would put in a fresh clone, plus uncommitted work): the sdist, then the wheel from
the sdist, as pip does. That needs the package index (setuptools for the isolated build):
those tests are marked ``network`` (``pytest -m "not network"`` leaves them out). The
heavier check, the unpacked sdist installed into a fresh venv running its own tests, is
``make check-sdist``, by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from logxpy_otel import __version__, _info, _native, cli

ROOT = Path(__file__).resolve().parent.parent

#: Files an unpacked sdist must hold, whatever else is added later (globs, from its root).
SDIST_MUST_HOLD = [
    "LICENSE",
    "README.md",
    "Makefile",
    "pyproject.toml",
    "setup.py",
    ".ci/run",
    ".ci/find-python",
    "logxpy_otel/__init__.py",
    "logxpy_otel/py.typed",
    "logxpy_otel/_speedups.c",
    "logxpy_otel/_speedups.pyi",
    "tests/conftest.py",
    "tests/otlp_receiver.py",
    "tests/apps/zero_code_app.py",
    "tests/test_packaging.py",
    "docs/format.md",
    "docs/collector.md",
    "examples/quickstart.py",
    "examples/otel-config.yaml",
    "benchmarks/bench_throughput.py",
]
#: Trees whose every file (as git has them) must be in the sdist.
SDIST_TREES = ("logxpy_otel", "tests", "docs", "examples", "benchmarks", "tools", ".ci")
#: Never in the sdist: build products and local state.
SDIST_NEVER = ("__pycache__", ".so", ".pyc", ".venv", ".hypothesis", ".mypy_cache", "build/", "dist/")

_IGNORED_WITHOUT_GIT = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.so",
    "*.pyc",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "logs",
)


@dataclass(frozen=True)
class Distributions:
    sdist: Path
    wheel: Path
    #: a directory holding the wheel alone (for ``PIP_FIND_LINKS``)
    wheel_dir: Path


_built: Distributions | None = None


def checkout_files() -> list[str] | None:
    """The files a fresh clone of this checkout would have, plus uncommitted ones (git's view:
    tracked, and untracked but not ignored); None where this is not a git checkout."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return None
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return sorted(name for name in out.decode().split("\0") if name and (ROOT / name).is_file())


def _copy_checkout(dest: Path) -> None:
    files = checkout_files()
    if files is None:
        shutil.copytree(ROOT, dest, ignore=_IGNORED_WITHOUT_GIT)
        return
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def distributions(tmp_path_factory: pytest.TempPathFactory) -> Distributions:
    """This checkout's sdist and wheel, built once per session."""
    global _built
    if _built is None:
        base = tmp_path_factory.mktemp("dists")
        source = base / "source"
        _copy_checkout(source)
        out = base / "dist"
        result = subprocess.run(
            [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, (
            f"python -m build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
        (sdist,) = out.glob("*.tar.gz")
        (wheel,) = out.glob("*.whl")
        wheel_dir = base / "wheel"
        wheel_dir.mkdir()
        shutil.copy2(wheel, wheel_dir / wheel.name)
        _built = Distributions(sdist, wheel, wheel_dir)
    return _built


@pytest.fixture
def dists(tmp_path_factory: pytest.TempPathFactory) -> Distributions:
    return distributions(tmp_path_factory)


def _sdist_names(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    top = f"logxpy_otel-{__version__}/"
    assert all(name == top.rstrip("/") or name.startswith(top) for name in names), names[:5]
    return {name.removeprefix(top) for name in names if name.startswith(top)}


# -- the distributions (need the package index) ----------------------------------------------


@pytest.mark.network
@pytest.mark.timeout(900)
def test_sdist_holds_what_its_tests_docs_examples_and_benchmarks_need(dists: Distributions) -> None:
    names = _sdist_names(dists.sdist)
    missing = [pattern for pattern in SDIST_MUST_HOLD if not any(Path(n).match(pattern) for n in names)]
    assert not missing, f"not in the sdist: {missing}"
    files = checkout_files()
    if files is not None:
        wanted = [f for f in files if f.split("/", 1)[0] in SDIST_TREES and not f.endswith(".so")]
        lacking = [f for f in wanted if f not in names]
        assert not lacking, f"files of the checkout the sdist lacks: {lacking}"
        top_docs = {f for f in files if "/" not in f and f.endswith(".md")}
        assert top_docs <= names, f"not in the sdist: {sorted(top_docs - names)}"
    junk = sorted(n for n in names if any(bad in n for bad in SDIST_NEVER))
    assert not junk, f"build products or local state in the sdist: {junk}"
    assert dists.sdist.name == f"logxpy_otel-{__version__}.tar.gz"


@pytest.mark.network
@pytest.mark.timeout(900)
def test_wheel_holds_the_package_its_license_and_entry_points(dists: Distributions) -> None:
    with zipfile.ZipFile(dists.wheel) as whl:
        names = set(whl.namelist())
        info = f"logxpy_otel-{__version__}.dist-info"
        metadata = whl.read(f"{info}/METADATA").decode()
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
    modules = {p.name for p in (ROOT / "logxpy_otel").glob("*.py")} | {
        p.name for p in (ROOT / "logxpy_otel").glob("*.pyi")
    }
    assert {f"logxpy_otel/{m}" for m in modules} <= names
    assert "logxpy_otel/py.typed" in names
    assert f"{info}/licenses/LICENSE" in names
    assert not [n for n in names if n.startswith(("tests/", "docs/", "benchmarks/")) or n.endswith(".c")]
    if shutil.which(os.environ.get("CC", "cc")):
        assert [n for n in names if n.startswith("logxpy_otel/_speedups.") and n.endswith(".so")], (
            "a compiler is here: the wheel should hold the C speed-up"
        )
    assert "License-Expression: MIT" in metadata
    assert "Requires-Python: >=3.11" in metadata
    assert "Description-Content-Type: text/markdown" in metadata
    assert "logxpy-otel = logxpy_otel.cli:main" in entry_points
    assert "[opentelemetry_logs_exporter]" in entry_points


@pytest.mark.network
@pytest.mark.timeout(900)
def test_twine_check_passes(dists: Distributions) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dists.sdist), str(dists.wheel)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.network
@pytest.mark.timeout(900)
def test_the_unpacked_sdist_collects_its_own_tests(dists: Distributions, tmp_path: Path) -> None:
    """Every test module of the unpacked sdist imports (its helpers and data are there)."""
    with tarfile.open(dists.sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    (source,) = tmp_path.iterdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGXPY_", "PYTEST_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    collected = {line.split("::")[0] for line in result.stdout.splitlines() if "::" in line}
    expected = {f"tests/{p.name}" for p in (ROOT / "tests").glob("test_*.py")}
    assert expected <= collected, sorted(expected - collected)


@pytest.mark.network
@pytest.mark.timeout(900)
def test_a_build_without_a_c_compiler_says_why_in_one_line_and_runs_in_pure_python(
    dists: Distributions, tmp_path: Path
) -> None:
    """CC=false: the C speed-up cannot be built. The build goes on, says so in one plain line
    with the reason, and the wheel runs: ``logxpy-otel info`` says the speed-up is not built."""
    with tarfile.open(dists.sdist) as tar:
        tar.extractall(tmp_path / "src", filter="data")
    (source,) = (tmp_path / "src").iterdir()
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path / "out"), str(source)],
        env={**os.environ, "CC": "false"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    notes = [line.strip() for line in output.splitlines() if "logxpy-otel: the optional C speed-up" in line]
    extensions = sorted(re.findall(r"Extension\(\s*\"([\w.]+)\"", (source / "setup.py").read_text()))
    assert "logxpy_otel._speedups" in extensions
    assert sorted(notes) == [
        f"logxpy-otel: the optional C speed-up ({name}) could not be built: the C compiler "
        "(false) failed with exit status 1; see its messages above. The pure-Python code will be used "
        "instead (same output, slower)."
        for name in extensions
    ], output[-4000:]
    (wheel,) = (tmp_path / "out").glob("*.whl")
    with zipfile.ZipFile(wheel) as whl:
        assert not [n for n in whl.namelist() if n.endswith(".so")]
        whl.extractall(tmp_path / "site")
    # The wheel's package first, then this venv's packages for its dependencies; -S: no .pth
    # files, so no editable install of this checkout (its finder would bring back the C module).
    path = [str(tmp_path / "site"), *site.getsitepackages()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGXPY_")}
    run = subprocess.run(
        [sys.executable, "-S", "-m", "logxpy_otel.cli", "info", "--json"],
        env={**env, "PYTHONPATH": os.pathsep.join(path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    info = json.loads(run.stdout)
    assert info["logxpy_otel"]["location"] == str((tmp_path / "site" / "logxpy_otel").resolve())
    assert info["c_speedup"]["in_use"] is False
    assert info["c_speedup"]["why_not"].startswith("not built for this Python")


# -- logxpy-otel info, --version, --help --------------------------------------------------------


def _run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        status = cli.main(list(argv))
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    return status, capsys.readouterr().out


def test_info_says_the_versions_and_whether_the_c_speedup_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOGXPY_OTEL_PURE_PYTHON", raising=False)
    status, out = _run_cli(capsys, "info")
    assert status == 0
    lines = dict(line.split(None, 1) for line in out.splitlines() if not line.startswith(" "))
    labels = [line[:20].strip() for line in out.splitlines()]
    assert labels[:4] == ["logxpy-otel", "Python", "OpenTelemetry SDK", "C speed-up"]
    assert lines["logxpy-otel"].startswith(f"{__version__} (")
    from importlib.metadata import version

    assert f"{sys.version_info[0]}.{sys.version_info[1]}." in out
    assert f"OpenTelemetry SDK    {version('opentelemetry-sdk')} (API {version('opentelemetry-api')})" in out
    speedup = next(line for line in out.splitlines() if line.startswith("C speed-up"))
    if _native.speedups_in_use():
        assert speedup.endswith("  in use")
    else:
        assert "not in use: not built for this Python" in speedup


def test_info_says_when_the_c_speedup_is_turned_off(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGXPY_OTEL_PURE_PYTHON", "1")
    status, out = _run_cli(capsys, "info")
    assert status == 0
    assert (
        "C speed-up           not in use: turned off by LOGXPY_OTEL_PURE_PYTHON=1; the pure-Python code "
        "runs (same output, slower)"
    ) in out
    status, out = _run_cli(capsys, "info", "--json")
    info = json.loads(out)
    assert info["c_speedup"]["in_use"] is False
    assert info["c_speedup"]["why_not"] == "turned off by LOGXPY_OTEL_PURE_PYTHON=1"
    assert set(info["c_speedup"]["modules"]) == {"_speedups", "_logging_speedups"}


def test_info_names_a_module_that_was_not_built(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the C module does not import (not built for this Python), info says so and why."""
    monkeypatch.delenv("LOGXPY_OTEL_PURE_PYTHON", raising=False)
    monkeypatch.setitem(sys.modules, "logxpy_otel._speedups", None)  # import fails as if not built
    status, out = _run_cli(capsys, "info")
    assert status == 0
    assert "C speed-up           not in use: not built for this Python" in out
    assert "  _speedups          not built (" in out


def test_version_is_one_line_with_python_sdk_and_c_speedup(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = _run_cli(capsys, "--version")
    assert status == 0
    assert out == _info.version_line() + "\n"
    assert out.startswith(f"logxpy-otel {__version__} (Python {sys.version_info[0]}.")
    assert "opentelemetry-sdk " in out
    assert "C speed-up " in out


def test_every_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    """No reStructuredText markup (double backticks) in ``--help`` of the command or of any
    subcommand; each subcommand has a help line."""
    parser = cli._parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    names = sorted(commands.choices)
    assert {"replay", "view", "info"} <= set(names)
    for argv in [[], *([name] for name in names)]:
        status, out = _run_cli(capsys, *argv, "--help")
        assert status == 0
        assert out.startswith("usage: logxpy-otel")
        assert "``" not in out, f"logxpy-otel {' '.join(argv)} --help shows markup"
    helped = {action.dest for action in commands._choices_actions if action.help}
    assert helped == set(names), "every subcommand has a one-line help"
