"""Zero-code set-up, end to end: ``opentelemetry-instrument python app.py`` with only env vars.

Each test runs the real command in a subprocess (the way users run it) and reads the
file it leaves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import parse_lines

APP = Path(__file__).parent / "apps" / "zero_code_app.py"
ROOT = Path(__file__).parent.parent
INSTRUMENT = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(INSTRUMENT is None, reason="opentelemetry-instrument is not installed")


def run(tmp_path: Path, *flags: str, **env: str) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run the app under opentelemetry-instrument with a clean OTel environment plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOGXPY_"))}
    base.update(
        {
            "OTEL_SERVICE_NAME": "zero-code-test",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "",
        }
    )
    base.update(env)
    result = subprocess.run(
        [str(INSTRUMENT), *flags, sys.executable, str(APP)],
        env=base,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (info_line,) = [line for line in result.stdout.splitlines() if line.startswith("ZERO_CODE_APP ")]
    return json.loads(info_line.removeprefix("ZERO_CODE_APP ")), result


def check_file(path: Path, trace_id: str) -> list[dict[str, Any]]:
    """The file holds the four records, the resource, the trace and its structure lines."""
    lines = parse_lines(path.read_bytes())
    records = [line for line in lines if "at" not in line]
    assert sorted(r["msg"] for r in records) == [
        "api inside",
        "api outside",
        "stdlib inside",
        "stdlib outside",
    ]
    for r in records:
        assert r["_otel"]["resource"]["attributes"]["service.name"] == "zero-code-test"
    inside = {r["msg"]: r for r in records if r["tid"] == trace_id}
    assert set(inside) == {"stdlib inside", "api inside"}, "records in the span carry its trace id"
    assert sorted(r["lvl"] for r in inside.values()) == [[2], [3]]
    structure = [line for line in lines if "at" in line]
    assert [(s["lvl"], s["st"]) for s in structure] == [([1], "started"), ([4], "failed")]
    outside = [r for r in records if r["tid"] != trace_id]
    assert all("." in r["tid"] and r["lvl"] == [1] for r in outside)
    by_msg = {r["msg"]: r for r in records}
    assert by_msg["stdlib inside"]["mt"] == "error"
    assert by_msg["api inside"]["n"] == 1
    return records


def test_logs_exporter_logxpy(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "app.jsonl"
    info, _ = run(tmp_path, OTEL_LOGS_EXPORTER="logxpy", OTEL_EXPORTER_LOGXPY_FILE=str(path))
    check_file(path, info["trace_id"])
    assert info["processors"] == ["BatchLogRecordProcessor"]
    assert info["exporters"] == ["LogxpyLogRecordExporter"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)


def test_console_and_logxpy_together(tmp_path: Path) -> None:
    path = tmp_path / "both.jsonl"
    info, result = run(tmp_path, OTEL_LOGS_EXPORTER="console,logxpy", OTEL_EXPORTER_LOGXPY_FILE=str(path))
    check_file(path, info["trace_id"])
    assert sorted(info["exporters"]) == ["ConsoleLogRecordExporter", "LogxpyLogRecordExporter"]
    assert '"body": "api outside"' in result.stdout, "the console exporter works beside ours"


def test_configurator_puts_our_processor_first_hand(tmp_path: Path) -> None:
    path = tmp_path / "configurator.jsonl"
    info, _ = run(
        tmp_path,
        OTEL_PYTHON_CONFIGURATOR="logxpy",
        OTEL_LOGS_EXPORTER="console,logxpy",
        OTEL_EXPORTER_LOGXPY_FILE=str(path),
        OTEL_EXPORTER_LOGXPY_QUEUE_POLICY="drop_oldest",
    )
    check_file(path, info["trace_id"])
    assert sorted(info["processors"]) == ["BatchLogRecordProcessor", "LogxpyLogRecordProcessor"]
    assert info["exporters"].count("LogxpyLogRecordExporter") == 0, "no batch processor in front of ours"
    assert "ConsoleLogRecordExporter" in info["exporters"], "other exporters are set up as the stock way"


def test_declarative_config_file(tmp_path: Path) -> None:
    path = tmp_path / "declarative.jsonl"
    info, _ = run(
        tmp_path,
        OTEL_CONFIG_FILE=str(ROOT / "examples" / "otel-config.yaml"),
        LOGXPY_FILE=str(path),
        OTEL_SERVICE_NAME="zero-code-test",
    )
    check_file(path, info["trace_id"])
    assert info["exporters"] == ["LogxpyLogRecordExporter"]


def test_instrument_flags(tmp_path: Path) -> None:
    path = tmp_path / "flags.jsonl"
    info, _ = run(
        tmp_path,
        "--logs_exporter",
        "logxpy",
        "--exporter_logxpy_file",
        str(path),
        "--exporter_logxpy_file_permissions",
        "640",
    )
    check_file(path, info["trace_id"])
    assert oct(path.stat().st_mode & 0o777) == oct(0o640 & ~_umask())


def test_a_bad_value_warns_and_the_default_is_used(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    info, result = run(
        tmp_path,
        OTEL_LOGS_EXPORTER="logxpy",
        OTEL_EXPORTER_LOGXPY_FILE=str(path),
        OTEL_EXPORTER_LOGXPY_QUEUE_POLICY="sometimes",
        OTEL_EXPORTER_LOGXPY_BATCH_SIZE="-3",
    )
    check_file(path, info["trace_id"])
    assert "OTEL_EXPORTER_LOGXPY_QUEUE_POLICY='sometimes' is not valid" in result.stderr
    assert "one of block, drop_oldest, drop_newest, warn; using the default 'block'" in result.stderr
    assert "OTEL_EXPORTER_LOGXPY_BATCH_SIZE='-3' is not valid: expected an integer >= 1" in result.stderr


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old
