"""What the benchmarks share: their output folder, counting the lines of a run, and
running one measured child process that prints its figures as a JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Each child writes under a fresh temporary directory here and deletes it after counting.
OUT_ROOT = Path(__file__).resolve().parent / ".out"
#: In a logxpy file, the trace start/end lines (not records) carry this.
LOGXPY_TRACE_MARK = b'"at":"otel:trace"'


def count_lines(path: Path, skip: bytes | None = None) -> int:
    """The non-blank lines of ``path``; with ``skip``, only those that do not contain it."""
    count = 0
    with path.open("rb") as f:
        for line in f:
            if line.strip() and (skip is None or skip not in line):
                count += 1
    return count


def count_logxpy_records(path: Path) -> int:
    """The record lines of a logxpy file (its trace start/end lines left out)."""
    return count_lines(path, LOGXPY_TRACE_MARK)


def spawn_child(script: str, args: list[str], timeout: float, label: str) -> dict[str, Any]:
    """Run ``script --child ARGS`` in a fresh interpreter; its last JSON line, plus how many
    lines it wrote to stderr. RuntimeError (with the end of its stderr) if it failed."""
    cmd = [sys.executable, str(Path(script).resolve()), "--child", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"child {label} failed (rc={proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["stderr_lines"] = len(proc.stderr.splitlines())
    return result


def finish(wall: float, failures: list[str]) -> None:
    """The end of a run: its wall time, the children that failed, and the output folder
    removed if the children left it empty."""
    print(f"total wall time {wall:.0f} s")
    for failure in failures:
        print(f"\nFAILED: {failure}", file=sys.stderr)
    try:
        OUT_ROOT.rmdir()  # only if empty: children delete their own directories
    except OSError:
        pass
