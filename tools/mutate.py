#!/usr/bin/env python3
"""A small mutation runner over a pinned list of mutants (tools/mutants.toml).

Each mutant is one exact, unique source snippet of one module and its replacement: a
flipped comparison, a constant off by one, a dropped state update or call. The list is
data, reviewed by people: every mutant in it changes what the code does (equivalent
ones are kept apart, under ``[[dropped]]``, with why).

For each mutant this script makes a fresh copy of the repository's tracked files
(``git archive HEAD``; never the shared working tree), applies the mutant there, and runs
the mutant's tests (by default the mirrored test files of its module) with
``PYTHONPATH=<copy>`` and ``LOGXPY_OTEL_PURE_PYTHON=1`` (the copy has no compiled module),
or, for a mutant marked ``speedups = true`` (code that runs only beside the C module), with
the C module built from HEAD's sources; one mutant at a time, under a timeout.
A mutant is *killed* when the tests fail, *timeout* when they run past the bound (also
noticed: a hang fails the suite too), *survived* when they pass. The score is (killed +
timeout) / total; the exit status is 1 when it is under ``--threshold`` (default 90), 2 for
a broken list or a baseline that fails.

    tools/mutate.py                      # every mutant: a table and the score
    tools/mutate.py --list               # the mutants, without running them
    tools/mutate.py --only fallback      # ids or files containing "fallback" (or a glob)
    tools/mutate.py --worktree-tests     # the working tree's tests/ over HEAD's (new tests)
"""

from __future__ import annotations

import argparse
import compileall
import fnmatch
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_LIST = REPO / "tools" / "mutants.toml"
KILLED, SURVIVED, TIMEOUT, ERROR = "killed", "survived", "timeout", "error"


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    find: str
    replace: str
    why: str
    tests: tuple[str, ...]
    #: Its code runs only beside the C module: the tests run with it, built from HEAD.
    speedups: bool = False

    def line(self, source: str) -> int:
        return source[: source.index(self.find)].count("\n") + 1


@dataclass
class Result:
    mutant: Mutant
    status: str
    seconds: float
    line: int
    detail: str = ""


@dataclass
class Plan:
    threshold: float
    mutants: list[Mutant]
    dropped: list[dict[str, str]] = field(default_factory=list)


def load_plan(path: Path) -> Plan:
    """The pinned list; ``SystemExit(2)`` naming the entry when it is malformed."""
    with path.open("rb") as f:
        data = tomllib.load(f)
    defaults: dict[str, list[str]] = data.get("tests", {})
    mutants: list[Mutant] = []
    seen: set[str] = set()
    for entry in data.get("mutant", []):
        missing = {"id", "file", "find", "replace", "why"} - set(entry)
        if missing:
            fail(f"{path}: mutant {entry.get('id', entry)!r} lacks {', '.join(sorted(missing))}")
        if entry["id"] in seen:
            fail(f"{path}: mutant id {entry['id']!r} appears twice")
        seen.add(entry["id"])
        tests = entry.get("tests") or defaults.get(entry["file"])
        if not tests:
            fail(f"{path}: mutant {entry['id']!r}: no tests given and no default for {entry['file']}")
        if entry["find"] == entry["replace"]:
            fail(f"{path}: mutant {entry['id']!r} replaces its snippet with itself")
        mutants.append(
            Mutant(
                entry["id"],
                entry["file"],
                entry["find"],
                entry["replace"],
                entry["why"],
                tuple(tests),
                bool(entry.get("speedups", False)),
            )
        )
    return Plan(float(data.get("threshold", 90.0)), mutants, list(data.get("dropped", [])))


def fail(message: str) -> None:
    print(f"mutate: {message}", file=sys.stderr)
    raise SystemExit(2)


def check(mutants: Sequence[Mutant], dropped: Sequence[dict[str, str]], tree: Path) -> None:
    """Every snippet occurs exactly once in its file of ``tree`` (the list is pinned to it),
    those of the dropped mutants too (their notes are about that code)."""
    for d in dropped:
        if not {"id", "file", "find", "replace", "why"} <= set(d):
            fail(f"dropped mutant {d.get('id', d)!r} lacks one of id, file, find, replace, why")
        count = (tree / d["file"]).read_text().count(d["find"])
        if count != 1:
            fail(f"dropped mutant {d['id']}: its snippet occurs {count} times in {d['file']} (must be once)")
    for m in mutants:
        source = (tree / m.file).read_text()
        count = source.count(m.find)
        if count != 1:
            fail(f"mutant {m.id}: its snippet occurs {count} times in {m.file} (must be exactly once)")
        try:
            compile(source.replace(m.find, m.replace, 1), m.file, "exec")
        except SyntaxError as exc:
            fail(f"mutant {m.id}: the mutated {m.file} does not compile: {exc}")
        for test in m.tests:
            if not (tree / test.split("::")[0]).exists():
                fail(f"mutant {m.id}: no test file {test} in the copy")


def export_tree(dest: Path, worktree_tests: bool) -> None:
    """HEAD's tracked files into ``dest``; with ``worktree_tests``, the working tree's
    tests/ (tracked and new files, as they are now) over HEAD's."""
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    if worktree_tests:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "tests"],
            cwd=REPO,
            check=True,
            capture_output=True,
        ).stdout
        for name in filter(None, listed.decode().split("\0")):
            source = REPO / name
            if source.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest / name)
    # Compiled once here: each mutant's copy recompiles only the module it changes.
    compileall.compile_dir(dest / "logxpy_otel", quiet=1)


def copy_speedups(tree: Path) -> None:
    """The working tree's built C modules into ``tree``, for the mutants marked ``speedups``:
    only when they were built from HEAD's C sources (unchanged since, and built after)."""
    sources = [p for p in (REPO / "logxpy_otel").iterdir() if p.suffix in (".c", ".h")]
    changed = subprocess.run(
        ["git", "diff", "--quiet", "HEAD", "--", *(str(p.relative_to(REPO)) for p in sources)],
        check=False,
        cwd=REPO,
    )
    built = list((REPO / "logxpy_otel").glob("_*speedups*.so"))
    newest = max(p.stat().st_mtime for p in sources)
    if changed.returncode or not built or min(p.stat().st_mtime for p in built) < newest:
        fail("mutants marked speedups need the C modules built from HEAD: commit, then pip install -e .")
    for module in built:
        shutil.copy2(module, tree / "logxpy_otel" / module.name)


def run_tests(
    tree: Path, tests: Sequence[str], python: str, timeout: float, scratch: Path, *, speedups: bool = False
) -> tuple[str, str]:
    """``(status, last lines of output)``: killed (tests failed), survived, or timeout."""
    env = dict(os.environ)
    env.update(PYTHONPATH=str(tree))
    for name in ("LOGXPY_OTEL_PURE_PYTHON", "LOGXPY_OTEL_REQUIRE_SPEEDUPS", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    if speedups:
        env["LOGXPY_OTEL_REQUIRE_SPEEDUPS"] = "1"  # (a copy without the C module fails, not passes)
    else:
        env["LOGXPY_OTEL_PURE_PYTHON"] = "1"
    command = [
        python,
        "-m",
        "pytest",
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        "--hypothesis-seed=0",
        f"--basetemp={scratch / 'basetemp'}",
        *tests,
    ]
    # A session of its own: on a timeout the whole group (pytest and its children) is ended.
    proc = subprocess.Popen(
        command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return TIMEOUT, f"no result within {timeout:.0f} s"
    tail = " | ".join(out.decode(errors="replace").strip().splitlines()[-3:])
    if proc.returncode == 0:
        return SURVIVED, tail
    # 1: tests failed; 2: collection failed (the mutated module does not import: the
    # list is compiled beforehand, so not a syntax error); 3: an internal error in a test.
    if proc.returncode in (1, 2, 3):
        return KILLED, tail
    return ERROR, f"pytest exited {proc.returncode}: {tail}"


def run_mutant(m: Mutant, pristine: Path, scratch: Path, python: str, timeout: float) -> Result:
    tree = scratch / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(pristine, tree, symlinks=True)
    target = tree / m.file
    source = target.read_text()
    target.write_text(source.replace(m.find, m.replace, 1))
    for stale in (target.parent / "__pycache__").glob(target.stem + ".*.pyc"):
        stale.unlink()
    started = time.monotonic()
    status, detail = run_tests(tree, m.tests, python, timeout, scratch, speedups=m.speedups)
    return Result(m, status, time.monotonic() - started, m.line(source), detail)


def select(mutants: Sequence[Mutant], patterns: Sequence[str] | None) -> list[Mutant]:
    """The mutants whose id or file contains one of ``patterns`` (or matches it as a glob)."""
    if not patterns:
        return list(mutants)

    def chosen(m: Mutant) -> bool:
        return any(
            p in m.id or p in m.file or fnmatch.fnmatch(m.id, p) or fnmatch.fnmatch(m.file, p)
            for p in patterns
        )

    return [m for m in mutants if chosen(m)]


def print_list(mutants: Sequence[Mutant], dropped: Sequence[dict[str, str]], tree: Path) -> None:
    for m in mutants:
        line = m.line((tree / m.file).read_text())
        print(f"{m.id:46} {m.file}:{line}  {m.why}")
        print(f"{'':46}   tests: {' '.join(m.tests)}")
    if dropped:
        print(f"\ndropped as equivalent ({len(dropped)}), not run:")
        for d in dropped:
            print(f"  {d.get('id', '?'):44} {d.get('file', '')}: {d.get('why', '')}")


def print_table(results: Sequence[Result]) -> None:
    width = max((len(r.mutant.id) for r in results), default=10)
    print(f"\n{'mutant':{width}}  {'status':8} {'secs':>6}  where")
    for r in results:
        print(f"{r.mutant.id:{width}}  {r.status:8} {r.seconds:6.1f}  {r.mutant.file}:{r.line}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mutants", type=Path, default=DEFAULT_LIST, help="the pinned list (TOML)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument(
        "--only",
        metavar="PATTERN",
        action="append",
        help="mutants whose id or file contains PATTERN (or matches it as a glob); repeatable",
    )
    parser.add_argument("--threshold", type=float, help="least score in percent (default: the list's, 90)")
    parser.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    parser.add_argument(
        "--timeout", type=float, help="seconds per mutant (default: 3 x its tests' baseline + 30)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of each test set")
    parser.add_argument(
        "--worktree-tests", action="store_true", help="use the working tree's tests/ (uncommitted ones too)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    # Absolute (but not resolved: a venv's python is a symlink that must stay one): the
    # tests run with the copy as their working directory.
    args.python = os.path.abspath(args.python)
    plan = load_plan(args.mutants)
    mutants = select(plan.mutants, args.only)
    threshold = plan.threshold if args.threshold is None else args.threshold
    scratch = Path(tempfile.mkdtemp(prefix="helper-mutate-", dir="/tmp"))
    try:
        pristine = scratch / "pristine"
        pristine.mkdir()
        export_tree(pristine, args.worktree_tests)
        check(plan.mutants, plan.dropped, pristine)
        if args.list:
            print_list(mutants, plan.dropped if args.only is None else [], pristine)
            print(f"\n{len(mutants)} mutant(s)")
            return 0
        if not mutants:
            fail(f"no mutant matches {' or '.join(args.only)!r}")
        began = time.monotonic()
        if any(m.speedups for m in mutants):
            copy_speedups(pristine)
        baseline: dict[tuple[tuple[str, ...], bool], float] = {}
        if not args.no_baseline:
            for tests, speedups in dict.fromkeys((m.tests, m.speedups) for m in mutants):
                started = time.monotonic()
                status, detail = run_tests(pristine, tests, args.python, 1800.0, scratch, speedups=speedups)
                baseline[tests, speedups] = time.monotonic() - started
                outcome = "passed" if status == SURVIVED else status
                took = baseline[tests, speedups]
                print(f"baseline {' '.join(tests)}: {outcome} in {took:.1f} s", flush=True)
                if status != SURVIVED:
                    fail(f"the unmutated code fails {' '.join(tests)}: {detail}")
        results: list[Result] = []
        for n, m in enumerate(mutants, 1):
            timeout = args.timeout or 3 * baseline.get((m.tests, m.speedups), 60.0) + 30.0
            result = run_mutant(m, pristine, scratch, args.python, timeout)
            results.append(result)
            print(f"[{n}/{len(mutants)}] {m.id}: {result.status} ({result.seconds:.1f} s)", flush=True)
            if result.status in (SURVIVED, ERROR):
                print(f"    {m.file}: {m.why}\n    {result.detail}", flush=True)
        elapsed = time.monotonic() - began
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    counts = {s: sum(r.status == s for r in results) for s in (KILLED, TIMEOUT, SURVIVED, ERROR)}
    detected = counts[KILLED] + counts[TIMEOUT]
    score = 100.0 * detected / len(results)
    print_table(results)
    print(
        f"\nscore {score:.1f} %: {detected}/{len(results)} detected "
        f"({counts[KILLED]} killed, {counts[TIMEOUT]} timeout), {counts[SURVIVED]} survived, "
        f"{counts[ERROR]} error; {elapsed / 60:.1f} min; threshold {threshold:g} %"
    )
    survivors = [r.mutant.id for r in results if r.status in (SURVIVED, ERROR)]
    if survivors:
        print("not detected: " + ", ".join(survivors))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "score": score,
                    "threshold": threshold,
                    "counts": counts,
                    "minutes": elapsed / 60,
                    "results": [
                        {
                            "id": r.mutant.id,
                            "file": f"{r.mutant.file}:{r.line}",
                            "status": r.status,
                            "seconds": round(r.seconds, 1),
                        }
                        for r in results
                    ],
                },
                indent=2,
            )
        )
    return 0 if score >= threshold else 1


if __name__ == "__main__":
    sys.exit(main())
