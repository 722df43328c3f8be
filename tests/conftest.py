"""Fixtures for every test: a clean environment, and writers stopped at the end.

Helpers live in ``_helpers.py`` (imported by the test modules); the names are also
re-exported here for test modules that still import them from ``conftest``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _helpers import (  # noqa: F401 - re-exported
    LOGXPY_PYTHON,
    Collect,
    Failing,
    FakeClock,
    Gated,
    assert_accounting,
    c_or_python,
    item,
    logxpy_tasks,
    needs_logxpy,
    parse_lines,
    read_records,
    records,
    start_untimed_writer,
    start_writer,
    trace_of,
)

from logxpy_otel import AsyncWriter


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the environment: none from the outer one may leak into a test."""
    for name in list(os.environ):
        if name.startswith("OTEL_EXPORTER_LOGXPY_") or name in ("OTEL_SERVICE_NAME", "LOGXPY_SYNC"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)


@pytest.fixture
def writers() -> Iterator[list[AsyncWriter]]:
    """Writers a test makes; each is stopped at the end so no thread outlives its test."""
    made: list[AsyncWriter] = []
    yield made
    for writer in made:
        writer.stop(5.0)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs of our own: ``write(2)`` cut short, then ``ENOSPC``, as on a real disk.
    Skipped where this process may not mount (not root, or a container without the right)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir(mode=0o700)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
