"""Every shell and Python block of README.md and docs/*.md runs, as written (issue 14).

What runs: fenced blocks marked ``sh``, ``bash``, ``shell`` or ``python``. Output examples
(``text``, ``console``), configuration (``yaml``, ...) and unmarked blocks are not run. A
block whose fence has ``<!-- not-tested: reason -->`` on the line just before it is not
run; the reason is required. A block that starts a collector or reaches further than this
machine (an address other than localhost, 127.0.0.1, [::1]) must be marked so: the test
checks the addresses it names.

How: each document gets one fresh virtual environment (the Python running the tests, with
only what the document's blocks install) and one empty working directory, and its blocks
run there in order, so an install block serves the blocks after it and a file one block
writes is there for the next. Shell blocks run with ``bash -e``, the venv first on PATH;
Python blocks with the venv's python (``-c``, the working directory on sys.path). A block
that fails fails the test, naming the document, the block's number and line.

``pip install logxpy-otel`` installs this checkout: its wheel, built once per session
(tests/test_packaging.py), is found through ``PIP_FIND_LINKS``; everything else comes from
the package index, through pip's cache. Marked ``network``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_packaging import ROOT, distributions

from logxpy_otel import __version__

DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

#: Fence languages that run, and how.
SHELL = {"sh", "bash", "shell"}
PYTHON = {"python", "py", "python3"}

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[^\s`]*)[^`]*$")
_NOT_TESTED = re.compile(r"^\s*<!--\s*not-tested\s*(?::\s*(?P<reason>.*?))?\s*-->\s*$")
_URL_HOST = re.compile(r"\b[a-z][a-z0-9+.-]*://(?:[^@/\s'\"]*@)?(?P<host>\[[^\]]*\]|[^:/\s'\"]+)", re.I)
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "0.0.0.0"}

#: Seconds one block may take (installs included).
BLOCK_TIMEOUT = 600

#: Blocks known not to run as written yet, until their document is fixed or marks them
#: not-tested: (document, a line of the block) -> why. Such a block still runs (what it
#: installs or writes serves the blocks after it); its failure is a warning, not an error.
#: Keep this empty: an entry is a bug in the document.
KNOWN_FAILING: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Block:
    document: str
    number: int  # 1-based, among the document's fenced blocks
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    not_tested: str | None  # the reason, when marked

    @property
    def runs(self) -> bool:
        return self.not_tested is None and (self.lang in SHELL or self.lang in PYTHON)

    @property
    def known_failing(self) -> str | None:
        lines = [line.strip() for line in self.code.splitlines()]
        for (document, line), why in KNOWN_FAILING.items():
            if document == self.document and line.strip() in lines:
                return why
        return None

    @property
    def name(self) -> str:
        return f"{self.document} block {self.number} (line {self.line}, {self.lang or 'no language'})"


def blocks(text: str, document: str) -> list[Block]:
    """The fenced blocks of a Markdown text, in order."""
    lines = text.splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence, lang = len(opening["indent"]), opening["fence"], opening["lang"].lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                break
            line = lines[i]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            i += 1
        i += 1
        marker = _NOT_TESTED.match(lines[start - 1]) if start else None
        not_tested = None
        if marker is not None:
            not_tested = marker["reason"] or ""
            assert not_tested, f"{document} line {start}: say why (<!-- not-tested: reason -->)"
        code = "\n".join(body) + "\n"
        out.append(Block(document, len(out) + 1, start + 1, lang, code, not_tested))
    return out


def _far_hosts(code: str) -> list[str]:
    return sorted({m["host"] for m in _URL_HOST.finditer(code) if m["host"].lower() not in _LOCAL_HOSTS})


def _document_blocks(path: Path) -> list[Block]:
    return blocks(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))


# -- the extraction itself (no network) ---------------------------------------------------------


def test_blocks_are_found_with_their_language_marker_and_line() -> None:
    text = "\n".join(
        [
            "# Title",
            "```sh",
            "pip install logxpy-otel",
            "```",
            "<!-- not-tested: needs a collector -->",
            "```bash",
            "logxpy-otel replay logs/",
            "```",
            "1. a step",
            "",
            "   ```python",
            "   if True:",
            "       print('indented')",
            "   ```",
            "```text",
            "$ output",
            "```",
            "````",
            "```python",
            "not a fence inside a longer one",
            "````",
        ]
    )
    found = blocks(text, "doc.md")
    assert [(b.number, b.line, b.lang, b.runs) for b in found] == [
        (1, 2, "sh", True),
        (2, 6, "bash", False),
        (3, 11, "python", True),
        (4, 15, "text", False),
        (5, 18, "", False),
    ]
    assert found[1].not_tested == "needs a collector"
    assert found[2].code == "if True:\n    print('indented')\n"
    assert found[4].code == "```python\nnot a fence inside a longer one\n"
    with pytest.raises(AssertionError, match="say why"):
        blocks("<!-- not-tested -->\n```sh\ntrue\n```\n", "doc.md")


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_blocks_that_run_reach_no_further_than_this_machine(path: Path) -> None:
    """A block that names another host (a collector, a service) must be marked not-tested:
    CI must send nothing beyond this machine."""
    far = {b.name: _far_hosts(b.code) for b in _document_blocks(path) if b.runs and _far_hosts(b.code)}
    assert not far, f"mark these <!-- not-tested: reason -->, or use localhost: {far}"


# -- running them (network: pip installs from the package index) --------------------------------


def _environment(venv: Path, wheel_dir: Path) -> dict[str, str]:
    """The environment of a reader who made a venv and activated it: none of the test run's
    own OTel, logxpy-otel or Python path settings; pip finds this checkout's wheel."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "LOGXPY_", "PYTEST_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))
    }
    find_links = " ".join(filter(None, [str(wheel_dir), os.environ.get("PIP_FIND_LINKS", "")]))
    env.update(
        {
            "VIRTUAL_ENV": str(venv),
            "PATH": os.pathsep.join([str(venv / "bin"), env.get("PATH", os.defpath)]),
            "PIP_FIND_LINKS": find_links,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
    )
    return env


def _run(block: Block, venv: Path, work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if block.lang in SHELL:
        argv = ["bash", "-e", "-c", block.code]
    else:
        argv = [str(venv / "bin" / "python"), "-c", block.code]
    try:
        return subprocess.run(
            argv,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.name} still running after {BLOCK_TIMEOUT} s:\n{block.code}\n{exc.output!r}")


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.mark.network
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_document_blocks_run_as_written(
    path: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    runnable = [b for b in _document_blocks(path) if b.runs]
    if not runnable:
        return  # nothing to run: no venv
    wheel_dir = distributions(tmp_path_factory).wheel_dir
    venv, work = tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = _environment(venv, wheel_dir)
    for block in runnable:
        result = _run(block, venv, work, env)
        if result.returncode != 0 and block.known_failing:
            warnings.warn(f"{block.name} does not run as written yet: {block.known_failing}", stacklevel=1)
        elif result.returncode != 0:
            pytest.fail(
                f"{block.name} failed (exit status {result.returncode}); the block:\n{block.code}"
                f"--- its output (last lines) ---\n{_tail(result.stdout)}\n{_tail(result.stderr)}",
                pytrace=False,
            )
    # Where a block installed logxpy-otel, it is this checkout's (not something else named so).
    check = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import logxpy_otel, sys; print(logxpy_otel.__version__)"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode == 0:
        assert check.stdout.strip() == __version__
