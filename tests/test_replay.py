"""Replay delivers every record the files hold, or names each one it could not (issue 11).

Rotated families (gzip backups, plain backups, the live file) replayed as one directory
to real OTLP receivers on 127.0.0.1; records the OTLP encoder cannot take; files that
grow while they are read; checkpoints that are bad, and symlinks planted where replay
writes its own files.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from _helpers import FakeClock
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import TraceFlags

from logxpy_otel import AsyncFileDestination, LogxpyLogRecordProcessor, _otlp, _rotation, replay
from logxpy_otel.cli import main as cli
from logxpy_otel.replay import ReplayError, checkpoint_path, replay_files

from otlp_receiver import GrpcReceiver, HttpReceiver

if os.name != "posix":  # pragma: no cover
    pytest.skip("POSIX only", allow_module_level=True)

#: Record numbers with something special about them.
HUGE = 7  # ints beyond 64 bits in body and attributes: sent as decimal strings
REFUSED = 11  # a severity_text the SDK let through as an int: nothing OTLP can carry it as
ODD_SEVERITY = (3, 25), (4, -1), (13, 2**40)  # out of the enum; the last beyond OTLP's int32
RESOURCE = {"service.name": "replay-test", "big": 2**70, "blob": b"\x00\xff"}


class Keep(LogRecordExporter):
    """An exporter that keeps every batch; ``stop_after`` sets ``stop`` after that many batches."""

    def __init__(self, stop: threading.Event | None = None, stop_after: int = 0) -> None:
        self.batches: list[Sequence[ReadableLogRecord]] = []
        self._stop = stop
        self._stop_after = stop_after

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.batches.append(list(batch))
        if self._stop is not None and len(self.batches) >= self._stop_after:
            self._stop.set()
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def ids(self) -> list[str]:
        return [str((r.log_record.attributes or {})["rec.id"]) for b in self.batches for r in b]


def severity_of(n: int) -> Any:
    odd = dict(ODD_SEVERITY)
    if n in odd:
        return odd[n]
    return None if n % 9 == 8 else list(SeverityNumber)[n % 25]


def make_record(n: int) -> LogRecord:
    attributes: dict[str, Any] = {
        "rec.id": str(n),
        "n": n,
        "ratio": n / 7,
        "ok": n % 2 == 0,
        "blob": bytes([n % 256, 0, 255]),
        "tags": ("a", f"b{n}"),
        "msg": f"a reserved name {n}",
    }
    body: Any = f"record {n}" if n % 4 else {"n": n, "list": [1, "x", None]}
    if n == HUGE:
        attributes["huge"] = 2**70
        attributes["nested"] = {"deep": [2**64 - 1, -(2**63)]}
        body = 2**65
    traced = n % 3 == 0
    return LogRecord(
        timestamp=1_795_722_644_000_000_000 + n * 1_001,
        observed_timestamp=1_795_722_645_000_000_000 + n,
        trace_id=(0xABC << 64) + n // 6 + 1 if traced else 0,
        span_id=0x1000 + n if traced else 0,
        trace_flags=TraceFlags(1) if traced else TraceFlags(0),
        severity_number=severity_of(n),
        severity_text=5 if n == REFUSED else f"sev{n}",  # type: ignore[arg-type]
        body=body,
        attributes=attributes,
        event_name=f"event.{n}" if n % 5 == 0 else None,
    )


def otlp_value(value: Any) -> Any:
    """A value as the receiver decodes it, after replay's nearest-form rules."""
    if type(value) is int and not -(2**63) <= value < 2**63:
        return str(value)
    if isinstance(value, list | tuple):
        return tuple(otlp_value(v) for v in value)
    if isinstance(value, dict):
        return {k: otlp_value(v) for k, v in value.items()}
    return value


def expected(n: int) -> dict[str, Any]:
    """What the receiver must get for record ``n``: every field as emitted (nearest forms aside)."""
    r = make_record(n)
    severity = severity_of(n)
    number = 0 if severity is None else getattr(severity, "value", severity)
    return {
        "body": otlp_value(r.body),
        "attributes": otlp_value(dict(r.attributes or {})),
        "severity_number": number if -(2**31) <= number < 2**31 else 0,
        "severity_text": r.severity_text,
        "time_unix_nano": r.timestamp,
        "observed_time_unix_nano": r.observed_timestamp,
        "trace_id": f"{r.trace_id:032x}" if r.trace_id else "",
        "span_id": f"{r.span_id:016x}" if r.span_id else "",
        "flags": int(r.trace_flags or 0),
        "event_name": r.event_name or "",
        "scope": "replay.test",
        "resource": otlp_value(RESOURCE),
    }


def write_family(directory: Path, count: int, *, compress: bool = True, per_file: int = 6) -> Path:
    """Records 0..count-1 written by the package's processor into ``directory/app.jsonl``,
    rotating every ``per_file`` records (gzip backups with ``compress``)."""
    path = directory / "app.jsonl"
    clock = FakeClock(1_800_000_000.0)
    # A new file every second of this clock: one for each batch (max_bytes would split one).
    dest = AsyncFileDestination(path, rotate_when=1, compress=compress, clock=clock)
    provider = LoggerProvider(resource=Resource(RESOURCE), shutdown_on_exit=False)
    processor = LogxpyLogRecordProcessor(destinations=[dest], flush_interval=600_000)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("replay.test", "1.0")
    for n in range(count):
        logger.emit(make_record(n))
        if n % per_file == per_file - 1 or n == count - 1:
            assert processor.force_flush(10_000)  # one batch: the next one goes to a new file
            clock.t += 1.0
    provider.shutdown()
    return path


def family_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith("app."))


def received_by_id(receiver: HttpReceiver | GrpcReceiver) -> Counter[str]:
    return Counter(str(r["attributes"]["rec.id"]) for r in receiver.snapshot())


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    """``logxpy-otel replay ARGS --json``: exit status, the summary, stderr."""
    code = cli(["replay", *args, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


# -- the whole family, end to end -------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_directory_of_gzip_backups_plain_backup_and_live_file_each_record_once(
    tmp_path: Path, protocol: str, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = tmp_path / "logs"
    count = 40
    live = write_family(logs, count)
    files = family_files(logs)
    gz = [p for p in files if p.name.endswith(".gz")]
    assert len(gz) >= 4 and live in files, [p.name for p in files]
    # One backup not compressed (yet): the family has plain and gzip backups.
    plain = gz[1].with_name(gz[1].name[: -len(".gz")])
    plain.write_bytes(gzip.decompress(gz[1].read_bytes()))
    gz[1].unlink()
    receiver = HttpReceiver() if protocol == "http/protobuf" else GrpcReceiver()
    receiver.start()
    try:
        endpoint = ["--endpoint", receiver.endpoint, "--protocol", protocol, "--batch-size", "4"]
        code, summary, err = run_cli(capsys, str(logs), *endpoint)
        assert code == 1, "one record could not be delivered: exit 1"
        assert (summary["sent"], summary["set_aside"], summary["unreadable"], summary["refused"]) == (
            count - 1,
            1,
            0,
            0,
        )
        got = received_by_id(receiver)
        assert set(got) == {str(n) for n in range(count)} - {str(REFUSED)}
        assert set(got.values()) == {1}, "each record once"
        for record in receiver.snapshot():
            n = int(record["attributes"]["rec.id"])
            assert record == expected(n), f"record {n} changed on the way"
        # The refused record is named: its file and byte offset, and where it was set aside.
        (dead,) = summary["dead_letters"]
        assert Path(dead).parent == logs and Path(dead).name.endswith(".replay.dead")
        (entry,) = [orjson.loads(line) for line in Path(dead).read_bytes().splitlines()]
        assert entry["kind"] == "set_aside" and entry["file"] in err and str(entry["start"]) in err
        assert dead in err
        data = Path(entry["file"]).read_bytes()
        if entry["file"].endswith(".gz"):
            data = gzip.decompress(data)
        line = data[entry["start"] : entry["end"]]
        assert line.endswith(b"\n") and orjson.loads(line)["rec.id"] == str(REFUSED)
        assert entry["line"] == line.decode().rstrip("\n")
        # A second run sends nothing twice, and has nothing left to name.
        code, again, _ = run_cli(capsys, str(logs), *endpoint)
        assert (code, again["sent"], again["set_aside"]) == (0, 0, 0)
        assert received_by_id(receiver) == got
        assert len(Path(dead).read_bytes().splitlines()) == 1
    finally:
        receiver.stop()


def test_a_glob_of_a_family_replays_it_in_time_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = write_family(tmp_path, 30, compress=True)
    code, summary, _ = run_cli(capsys, str(tmp_path / "app*"), "--dry-run")
    assert code == 1 and (summary["sent"], summary["set_aside"]) == (29, 1)
    files = [Path(f) for f in summary["files"]]
    assert files[-1] == live and len(files) == len(family_files(tmp_path)) >= 4
    assert all(f.name.endswith(".jsonl.gz") for f in files[:-1])
    assert [f.name for f in files[:-1]] == sorted(f.name for f in files[:-1]), "oldest first"
    keep = Keep()
    replay_files([str(f) for f in reversed(files)], keep)
    assert [int(i) for i in keep.ids()] == [n for n in range(30) if n != REFUSED], "in time order"


def test_backups_and_live_file_given_out_of_order_are_sent_in_time_order(tmp_path: Path) -> None:
    write_family(tmp_path, 25, compress=False)
    files = family_files(tmp_path)
    keep = Keep()
    summary = replay_files([str(p) for p in reversed(files)], keep, batch_size=100)
    assert summary.sent == 24
    assert [int(i) for i in keep.ids()] == [n for n in range(25) if n != REFUSED]


def test_a_backup_compressed_after_a_partial_replay_is_not_sent_again(tmp_path: Path) -> None:
    path = write_family(tmp_path, 30, compress=False, per_file=10)
    backups = [p for p in family_files(tmp_path) if p != path]
    assert len(backups) == 2
    stop = threading.Event()
    first = Keep(stop, stop_after=1)
    summary = replay_files([str(backups[0])], first, batch_size=4, stop=stop)
    assert summary.interrupted and first.ids() == ["0", "1", "2", "3"]
    # The live file too, part way; then it rotates (renamed to a backup) and both get compressed.
    stop.clear()
    part = Keep(stop, stop_after=1)
    replay_files([str(path)], part, batch_size=3, stop=stop)
    assert part.ids() == ["20", "21", "22"]
    rotated = _rotation.backup_name(str(path), 4_000_000_000.0)
    os.rename(path, rotated)
    path.write_bytes(b"")
    _rotation._gzip(str(backups[0]), 0o600)
    _rotation._gzip(rotated, 0o600)
    rest = Keep()
    summary = replay_files([str(tmp_path)], rest, batch_size=4)
    sent = first.ids() + part.ids() + rest.ids()
    assert sorted(sent, key=int) == [str(n) for n in range(30) if n != REFUSED], "each record once"
    assert summary.sent == len(rest.ids()) == 29 - 7


def test_a_plain_backup_given_by_name_after_it_was_compressed(tmp_path: Path) -> None:
    path = write_family(tmp_path, 12, compress=False, per_file=6)
    (backup,) = [p for p in family_files(tmp_path) if p != path]
    _rotation._gzip(str(backup), 0o600)
    keep = Keep()
    summary = replay_files([str(backup)], keep)
    assert summary.sent == 6 and keep.ids() == [str(n) for n in range(6)]


def test_gzip_is_detected_by_content_not_by_name(tmp_path: Path) -> None:
    path = write_family(tmp_path, 6, compress=False, per_file=100)
    packed = tmp_path / "app.jsonl.1"  # what logrotate's compress-less naming would leave
    packed.write_bytes(gzip.compress(path.read_bytes()))
    keep = Keep()
    summary = replay_files([str(packed)], keep)
    assert (summary.sent, summary.skipped) == (6, 0) and keep.ids() == [str(n) for n in range(6)]


# -- records the OTLP encoder cannot take -------------------------------------------------------


def test_an_unencodable_record_never_blocks_the_others_even_one_by_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_family(tmp_path, 16, compress=False, per_file=100)
    receiver = GrpcReceiver()
    receiver.start()
    try:
        args = (str(path), "--endpoint", receiver.endpoint, "--protocol", "grpc", "--batch-size", "1")
        code, summary, err = run_cli(capsys, *args)
        assert code == 1 and (summary["sent"], summary["set_aside"], summary["refused"]) == (15, 1, 0)
        assert "collector" not in err, "a local failure is never the collector's refusal"
        assert f"{path}: bytes " in err and f"set aside in {path}.replay.dead" in err
        by_id = {r["attributes"]["rec.id"]: r for r in receiver.snapshot()}
        assert set(by_id) == {str(n) for n in range(16)} - {str(REFUSED)}
        # Nearest forms: ints beyond 64 bits as decimal strings; odd severities kept, or
        # left unset where OTLP's int32 cannot hold them.
        assert by_id[str(HUGE)]["body"] == str(2**65)
        assert by_id[str(HUGE)]["attributes"]["huge"] == str(2**70)
        assert by_id[str(HUGE)]["attributes"]["nested"] == {"deep": (str(2**64 - 1), -(2**63))}
        assert by_id["3"]["severity_number"] == 25 and by_id["4"]["severity_number"] == -1
        assert by_id["13"]["severity_number"] == 0
        assert by_id["0"]["resource"]["big"] == str(2**70)
        assert summary["converted"] == 16 - 1, "every record carries the resource's huge int"
        code, summary, _ = run_cli(capsys, *args)
        assert (code, summary["sent"]) == (0, 0), "the run does not stop at the same place forever"
    finally:
        receiver.stop()


# -- lines still being written ------------------------------------------------------------------


def _record_lines(directory: Path, count: int) -> list[bytes]:
    """The record lines (each with its newline) the package writes for records 0..count-1."""
    source = write_family(directory, count, compress=False, per_file=100)
    return [line + b"\n" for line in source.read_bytes().splitlines() if b'"rec.id"' in line]


def test_a_file_growing_while_it_is_replayed_delivers_each_record_once(tmp_path: Path) -> None:
    lines = [line for line in _record_lines(tmp_path / "src", 10) if b'"rec.id":"11"' not in line]
    path = tmp_path / "grow.jsonl"
    path.write_bytes(b"")
    total = 150
    abort = threading.Event()
    moved = threading.Event()  # set by each export and after each run: the writer goes on
    done = threading.Event()

    class Pacing(Keep):
        def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
            moved.set()
            return super().export(batch)

    def grow() -> None:
        """Appends each line in two writes, and stops between them until replay moves on:
        replay keeps meeting a half-written last line."""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            for i in range(total):
                line = lines[i % len(lines)].replace(b'"rec.id":"', b'"rec.id":"%d-' % i)
                cut = len(line) // 2
                os.write(fd, line[:cut])
                moved.wait(5.0)  # bounded: a stuck replay fails the test below, it does not hang it
                moved.clear()
                if abort.is_set():
                    return
                os.write(fd, line[cut:])
        finally:
            os.close(fd)
            done.set()

    keep = Pacing()
    writer = threading.Thread(target=grow, daemon=True)
    writer.start()
    runs = pending = 0
    try:
        while not done.is_set() and runs < 10 * total:  # bounded
            summary = replay_files([str(path)], keep, batch_size=3)
            runs += 1
            pending += summary.pending
            assert summary.ok and summary.unreadable == 0, summary.problems
            moved.set()
    finally:
        if not done.is_set():
            abort.set()
            moved.set()
        writer.join(30)
    assert not writer.is_alive()
    replay_files([str(path)], keep, batch_size=3)
    assert pending > 0, "the replay met half-written lines"
    ids = Counter(i.split("-")[0] for i in keep.ids())
    assert sum(ids.values()) == total and len(ids) == total, "each record once, none skipped"


def test_the_rest_of_a_half_written_line_arriving_during_the_run_is_not_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remainder comes just after the reader met the half line, within one run (as a
    concurrent writer's second page would): it must not be read as a line of its own."""
    from logxpy_otel import replay

    lines = _record_lines(tmp_path / "src", 4)
    path = tmp_path / "grow.jsonl"
    whole = b"".join(lines[:3])
    last = lines[3]
    path.write_bytes(whole + last[:25])
    real_read_open = replay.read_open

    def remainder_arrives(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for entry in real_read_open(*args, **kwargs):
            yield entry
            if getattr(entry, "pending", False):
                with path.open("ab") as f:
                    f.write(last[25:])

    monkeypatch.setattr(replay, "read_open", remainder_arrives)
    keep = Keep()
    first = replay_files([str(path)], keep)
    assert (first.sent, first.pending, first.unreadable) == (3, 1, 0)
    second = replay_files([str(path)], keep)
    assert (second.sent, second.unreadable) == (1, 0)
    assert keep.ids() == ["0", "1", "2", "3"]


def test_a_torn_last_line_is_not_passed_and_is_sent_once_complete(tmp_path: Path) -> None:
    path = write_family(tmp_path, 6, compress=False, per_file=100)
    data = path.read_bytes()
    first_record = data.index(b'"rec.id":"0"')
    start = data.rindex(b"\n", 0, first_record) + 1 if b"\n" in data[:first_record] else 0
    end = data.index(b"\n", start) + 1
    line = data[start:end].replace(b'"rec.id":"0"', b'"rec.id":"late"')
    with path.open("ab") as f:
        f.write(line[:20])
    keep = Keep()
    summary = replay_files([str(path)], keep)
    assert (summary.sent, summary.pending, summary.ok) == (6, 1, True)
    with path.open("ab") as f:
        f.write(line[20:])
    summary = replay_files([str(path)], keep)
    assert (summary.sent, summary.skipped, summary.unreadable) == (1, 0, 0)
    assert keep.ids()[-1] == "late"


# -- exit status and summary ---------------------------------------------------------------------


def test_an_unreadable_line_is_counted_named_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_family(tmp_path, 8, compress=False, per_file=100)
    size = path.stat().st_size
    with path.open("ab") as f:
        f.write(b"{this is not json}\n")
    code, summary, err = run_cli(capsys, str(path), "--dry-run")
    assert code == 1
    assert (summary["sent"], summary["unreadable"], summary["set_aside"], summary["ok"]) == (8, 1, 0, False)
    assert f"{path}: bytes {size}-{size + 19}" in err


def test_usage_errors_name_the_file_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.jsonl"
    assert cli(["replay", str(missing), "--dry-run"]) == 2
    assert str(missing) in capsys.readouterr().err
    assert cli(["replay", str(tmp_path / "nothing*.jsonl"), "--dry-run"]) == 2
    assert "nothing*.jsonl" in capsys.readouterr().err


def test_help_text_is_plain(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["replay", "--help"]):
        with pytest.raises(SystemExit):
            cli(argv)
        out = capsys.readouterr().out
        assert "``" not in out and "replay" in out
    assert "DIR" in out and "exit status" in out.lower()


# -- bad checkpoints ----------------------------------------------------------------------------


def _checkpoint(path: Path) -> Path:
    return path.with_name(path.name + ".replay.json")


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda st: {"offset": -5, "sent": 1, "dev": st.st_dev, "ino": st.st_ino}, id="negative"),
        pytest.param(
            lambda st: {"offset": st.st_size + 100, "sent": 1, "dev": st.st_dev, "ino": st.st_ino},
            id="past-the-end",
        ),
        pytest.param(lambda st: {"hello": "world"}, id="not-ours"),
        pytest.param(lambda st: [1, 2, 3], id="not-an-object"),
        pytest.param(lambda st: b"{\x00garbage", id="corrupt"),
        pytest.param(
            lambda st: {"offset": "12", "sent": 0, "dev": st.st_dev, "ino": st.st_ino}, id="wrong-type"
        ),
    ],
)
def test_a_bad_checkpoint_restarts_from_the_beginning_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: Any
) -> None:
    path = write_family(tmp_path, 6, compress=False, per_file=100)
    value = content(path.stat())
    _checkpoint(path).write_bytes(value if isinstance(value, bytes) else orjson.dumps(value))
    code, summary, err = run_cli(capsys, str(path), "--dry-run")
    assert (code, summary["sent"]) == (0, 6), err
    warnings = [line for line in err.splitlines() if "checkpoint" in line]
    assert len(warnings) == 1 and str(path) in warnings[0] and str(_checkpoint(path)) in warnings[0], err
    keep = Keep()
    summary = replay_files([str(path)], keep)
    assert keep.ids() == [str(n) for n in range(6)], "from the beginning"
    assert len(summary.warnings) == 1 and summary.ok
    again = replay_files([str(path)], keep)
    assert again.sent == 0 and not again.warnings, "the rewritten checkpoint is good"


def test_a_checkpoint_of_an_older_version_is_still_honoured(tmp_path: Path) -> None:
    path = write_family(tmp_path, 6, compress=False, per_file=100)
    first = Keep()
    replay_files([str(path)], first, batch_size=2, stop=_stop_after(first, 1))
    offset = orjson.loads(_checkpoint(path).read_bytes())["offset"]
    st = path.stat()
    _checkpoint(path).write_bytes(
        orjson.dumps({"offset": offset, "sent": 2, "dev": st.st_dev, "ino": st.st_ino})
    )
    rest = Keep()
    summary = replay_files([str(path)], rest)
    assert first.ids() + rest.ids() == [str(n) for n in range(6)] and not summary.warnings


def _stop_after(keep: Keep, batches: int) -> threading.Event:
    stop = threading.Event()
    keep._stop, keep._stop_after = stop, batches
    return stop


# -- files written beside the logs: never through a planted symlink ------------------------------


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[Path]:
    """A file a planted symlink points at; it must come out of every test unchanged."""
    target = tmp_path / "elsewhere" / "victim"
    target.parent.mkdir()
    target.write_bytes(b"precious")
    yield target
    assert target.read_bytes() == b"precious", "a symlink was followed"


def test_a_symlink_at_the_old_checkpoint_partial_name_is_not_followed(tmp_path: Path, victim: Path) -> None:
    path = write_family(tmp_path / "logs", 6, compress=False, per_file=100)
    (path.parent / (path.name + ".replay.json.partial")).symlink_to(victim)
    keep = Keep()
    assert replay_files([str(path)], keep).sent == 6
    assert _checkpoint(path).is_file() and not _checkpoint(path).is_symlink()


def test_a_symlink_at_the_checkpoint_name_is_replaced_not_followed(
    tmp_path: Path, victim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_family(tmp_path / "logs", 6, compress=False, per_file=100)
    _checkpoint(path).symlink_to(victim)
    assert cli(["replay", str(path), "--dry-run"]) == 0
    keep = Keep()
    summary = replay_files([str(path)], keep)
    assert summary.sent == 6 and len(summary.warnings) == 1
    assert _checkpoint(path).is_file() and not _checkpoint(path).is_symlink()


def test_a_symlink_at_the_dead_letter_name_is_not_followed(tmp_path: Path, victim: Path) -> None:
    path = write_family(tmp_path / "logs", 14, compress=False, per_file=100)  # record 11 is set aside
    dead = path.with_name(path.name + ".replay.dead")
    dead.symlink_to(victim)
    summary = replay_files([str(path)], Keep())
    assert (summary.sent, summary.set_aside) == (13, 1)
    assert dead.is_file() and not dead.is_symlink()
    (entry,) = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert orjson.loads(entry["line"])["rec.id"] == str(REFUSED)


def test_every_file_replay_creates_is_exclusive_and_never_follows_a_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_family(tmp_path, 14, compress=False, per_file=100)
    with path.open("ab") as f:
        f.write(b"not json\n")
    created: list[tuple[str, int]] = []
    real_open = os.open

    def spy(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            created.append((os.fspath(file), flags))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    summary = replay_files([str(path)], Keep())
    assert (summary.sent, summary.set_aside, summary.unreadable) == (13, 1, 1)
    assert len(created) >= 2, "a checkpoint and a dead-letter file were written"
    for name, flags in created:
        assert flags & os.O_EXCL and flags & os.O_NOFOLLOW, name
        assert Path(name).parent == tmp_path and Path(name).name.startswith("."), name
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert leftovers == [], "no temporary file left behind"


# -- checkpoints across rotation; runs that stop part way ----------------------------------------


def test_the_live_files_checkpoint_goes_with_it_when_it_rotates(tmp_path: Path) -> None:
    """Replay the live file part way; it rotates; replay the (new) live file alone, then the
    whole directory: the old content resumes in its backup, nothing is sent twice."""
    path = write_family(tmp_path, 10, compress=False, per_file=100)
    first = Keep()
    replay_files([str(path)], first, batch_size=4, stop=_stop_after(first, 1))
    assert first.ids() == ["0", "1", "2", "3"]
    os.rename(path, _rotation.backup_name(str(path), 4_000_000_000.0))
    newer = write_family(tmp_path / "next", 3, compress=False, per_file=100).read_bytes()
    path.write_bytes(newer.replace(b'"rec.id":"', b'"rec.id":"new-'))
    live_only = Keep()
    assert replay_files([str(path)], live_only).sent == 3
    (backup,) = [p for p in family_files(tmp_path) if p != path and not p.name.endswith(".replay.json")]
    _rotation._gzip(str(backup), 0o600)  # and the backup gets compressed meanwhile
    rest = Keep()
    summary = replay_files([str(tmp_path)], rest)
    assert rest.ids() == ["4", "5", "6", "7", "8", "9"] and summary.sent == 6
    assert live_only.ids() == ["new-0", "new-1", "new-2"]


class Refusing(Keep):
    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return LogRecordExportResult.FAILURE


class Raising(Keep):
    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        raise RuntimeError("exporter bug")


def test_a_run_that_stops_before_its_checkpoint_does_not_set_aside_twice(tmp_path: Path) -> None:
    path = write_family(tmp_path, 14, compress=False, per_file=100)
    dead = path.with_name(path.name + ".replay.dead")
    for _ in range(2):  # the collector refuses the batch holding the set-aside record: twice
        summary = replay_files([str(path)], Refusing(), batch_size=100)
        assert (summary.sent, summary.refused, summary.set_aside, summary.ok) == (0, 13, 1, False)
        assert any("the collector did not accept 13 records" in p for p in summary.problems)
    keep = Keep()
    summary = replay_files([str(path)], keep, batch_size=100)
    assert (summary.sent, summary.set_aside) == (13, 1)
    assert len(dead.read_bytes().splitlines()) == 1, "one dead letter for one record"


def test_an_exporter_that_raises_is_reported_as_such_and_resumed(tmp_path: Path) -> None:
    path = write_family(tmp_path, 6, compress=False, per_file=100)
    summary = replay_files([str(path)], Raising(), batch_size=4)
    assert (summary.sent, summary.export_errors, summary.refused, summary.ok) == (0, 4, 0, False)
    (problem,) = summary.problems
    assert "raised RuntimeError: exporter bug" in problem and "collector" not in problem
    keep = Keep()
    assert replay_files([str(path)], keep).sent == 6 and keep.ids() == [str(n) for n in range(6)]


def test_a_hard_link_at_the_dead_letter_name_is_neither_copied_nor_written(tmp_path: Path) -> None:
    path = write_family(tmp_path, 14, compress=False, per_file=100)
    secret = tmp_path / "secret"
    secret.write_bytes(b"do not copy me\n")
    dead = path.with_name(path.name + ".replay.dead")
    os.link(secret, dead)
    assert replay_files([str(path)], Keep()).set_aside == 1
    assert secret.read_bytes() == b"do not copy me\n"
    assert b"do not copy me" not in dead.read_bytes() and dead.stat().st_nlink == 1


# -- issue 13 item 8: tests that notice when the code is wrong ----------------------------------


def _flat_file(path: Path, count: int, first: int = 0) -> Path:
    """Records ``first`` .. ``first + count - 1`` appended to ``path`` in flat mode (no
    structure lines: the file ends with a record)."""
    provider = LoggerProvider(resource=Resource({"service.name": "replay-test"}), shutdown_on_exit=False)
    provider.add_log_record_processor(LogxpyLogRecordProcessor(path, mode="flat"))
    logger = provider.get_logger("replay.test", "1.0")
    for n in range(first, first + count):
        logger.emit(body=f"record {n}", attributes={"rec.id": str(n)})
    provider.shutdown()
    return path


def _rotate(path: Path) -> Path:
    backup = Path(_rotation.backup_name(str(path), 4_000_000_000.0))
    os.rename(path, backup)
    return backup


def test_a_file_replayed_to_its_last_byte_is_not_replayed_again(tmp_path: Path) -> None:
    path = _flat_file(tmp_path / "app.jsonl", 5)
    keep = Keep()
    assert replay_files([str(path)], keep).sent == 5
    assert orjson.loads(_checkpoint(path).read_bytes())["offset"] == path.stat().st_size
    again = replay_files([str(path)], keep)
    assert (again.sent, again.warnings) == (0, [])
    _flat_file(path, 2, first=5)
    more = replay_files([str(path)], keep)
    assert (more.sent, more.warnings) == (2, [])
    assert keep.ids() == [str(n) for n in range(7)]


def test_bad_lines_after_an_exactly_full_last_batch_are_reported_once(tmp_path: Path) -> None:
    path = _flat_file(tmp_path / "app.jsonl", 4)
    with path.open("ab") as f:
        f.write(b"not json\n")
    keep = Keep()
    first = replay_files([str(path)], keep, batch_size=4)
    assert (first.sent, first.unreadable) == (4, 1)
    again = replay_files([str(path)], keep, batch_size=4)
    assert (again.sent, again.unreadable, again.problems) == (0, 0, [])


def test_an_older_versions_checkpoint_does_not_apply_to_a_new_file_at_its_path(tmp_path: Path) -> None:
    """Such a checkpoint knows its file by device and inode only: another file put at the
    path (a new inode) is replayed from its beginning."""
    path = _flat_file(tmp_path / "app.jsonl", 3)
    replay_files([str(path)], Keep())
    st = path.stat()
    legacy = {"offset": st.st_size, "sent": 3, "dev": st.st_dev, "ino": st.st_ino}
    _checkpoint(path).write_bytes(orjson.dumps(legacy))
    os.replace(_flat_file(tmp_path / "new.jsonl", 6, first=100), path)
    fresh = Keep()
    summary = replay_files([str(path)], fresh)
    assert fresh.ids() == [str(n) for n in range(100, 106)] and summary.ok


def test_checkpoints_and_dead_letters_are_synced_before_they_are_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _flat_file(tmp_path / "app.jsonl", 3)
    with path.open("ab") as f:
        f.write(b"not json\n")
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        events.append("replace " + Path(dst).name)
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    summary = replay_files([str(path)], Keep())
    assert (summary.sent, summary.unreadable) == (3, 1)
    renamed = [e for e in events if e.startswith("replace")]
    assert {"replace app.jsonl.replay.json", "replace app.jsonl.replay.dead"} <= set(renamed), events
    assert all(events[i - 1] == "fsync" for i, e in enumerate(events) if e.startswith("replace")), events


def test_a_backups_own_checkpoint_is_not_moved_back_by_the_live_files_older_one(tmp_path: Path) -> None:
    path = _flat_file(tmp_path / "app.jsonl", 10)
    first = Keep()
    replay_files([str(path)], first, batch_size=4, stop=_stop_after(first, 1))
    backup = _rotate(path)
    rest = Keep()
    assert replay_files([str(backup)], rest).sent == 6, "the backup resumes where its live file stopped"
    _flat_file(path, 2, first=100)
    assert replay_files([str(path)], Keep()).sent == 2  # the new live file
    again = Keep()
    assert replay_files([str(tmp_path)], again).sent == 0
    assert first.ids() + rest.ids() == [str(n) for n in range(10)]


def test_a_backup_being_compressed_is_read_once_from_its_gz(tmp_path: Path) -> None:
    """Both ``X`` and ``X.gz`` there (gzip under way): one of them is read, the .gz. A dry
    run, which writes no checkpoint, counts each record once."""
    path = _flat_file(tmp_path / "app.jsonl", 4)
    backup = _rotate(path)
    with gzip.open(str(backup) + ".gz", "wb") as f:
        f.write(backup.read_bytes())
    _flat_file(path, 2, first=100)
    summary = replay_files([str(tmp_path)], None)
    assert (summary.sent, summary.files) == (6, [str(backup) + ".gz", str(path)])


def test_hidden_files_in_a_directory_are_left_out(tmp_path: Path) -> None:
    path = _flat_file(tmp_path / "app.jsonl", 2)
    _flat_file(tmp_path / ".scratch.jsonl", 3, first=50)
    keep = Keep()
    summary = replay_files([str(tmp_path)], keep)
    assert (summary.files, keep.ids()) == ([str(path)], ["0", "1"])


def test_a_hard_link_at_the_checkpoint_name_is_not_trusted(tmp_path: Path) -> None:
    path = _flat_file(tmp_path / "app.jsonl", 3)
    keep = Keep()
    replay_files([str(path)], keep)
    os.link(_checkpoint(path), tmp_path / "elsewhere.json")
    summary = replay_files([str(path)], keep)
    (warning,) = summary.warnings
    assert "hard link" in warning and "from the beginning" in warning
    assert summary.sent == 3
    assert _checkpoint(path).stat().st_nlink == 1, "replaced by a file of its own"


def test_after_a_refused_batch_no_later_file_is_sent(tmp_path: Path) -> None:
    """Files go in time order: the live file never before the backup the collector refused."""
    backup = _rotate(_flat_file(tmp_path / "app.jsonl", 3))
    path = _flat_file(tmp_path / "app.jsonl", 2, first=100)

    class RefuseOnce(Keep):
        refused = 0

        def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
            if not self.refused:
                self.refused += 1
                return LogRecordExportResult.FAILURE
            return super().export(batch)

    exporter = RefuseOnce()
    summary = replay_files([str(tmp_path)], exporter)
    assert (summary.sent, summary.refused, summary.files, exporter.batches) == (0, 3, [str(backup)], [])
    keep = Keep()
    assert replay_files([str(tmp_path)], keep).sent == 5
    assert keep.ids() == ["0", "1", "2", "100", "101"]
    assert str(path) in replay_files([str(tmp_path)], keep).files


def test_a_dropped_count_beyond_uint32_is_sent_capped(tmp_path: Path) -> None:
    path = _flat_file(tmp_path / "app.jsonl", 1)
    line = orjson.loads(path.read_bytes())
    line["_otel"]["dropped_attributes_count"] = 2**40
    path.write_bytes(orjson.dumps(line) + b"\n")
    keep = Keep()
    summary = replay_files([str(path)], keep)
    assert (summary.sent, summary.set_aside, summary.converted) == (1, 0, 1)
    ((record,),) = keep.batches
    assert record.dropped_attributes == 2**32 - 1


# -- one replay at a time -----------------------------------------------------------------------


def test_a_second_replay_in_the_same_directory_stops_before_sending_anything(tmp_path: Path) -> None:
    """Two replays at once read the same checkpoints and would send the same records twice:
    while one runs (it holds the directory's lock), another stops at once, exit status 2."""
    import fcntl

    path = write_family(tmp_path, 14, compress=False, per_file=100)
    held = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a replay running in another process
        second = Keep()
        with pytest.raises(ReplayError, match="another replay is running"):
            replay_files([str(path)], second)
        assert second.batches == []
        assert not Path(checkpoint_path(str(path))).exists()
        assert cli(["replay", str(path), "--endpoint", "http://127.0.0.1:9", "--json"]) == 2
        dry = replay_files([str(path)], None)  # a dry run sends and writes nothing: no lock
        assert (dry.sent, dry.set_aside) == (13, 1)  # (one record OTLP cannot carry)
    finally:
        os.close(held)
    first = Keep()
    assert replay_files([str(path)], first).sent == 13
    assert len(first.ids()) == 13


def test_the_directory_lock_is_let_go_when_the_replay_ends(tmp_path: Path) -> None:
    import fcntl

    path = write_family(tmp_path, 3, compress=False, per_file=100)
    keep = Keep()
    replay_files([str(path)], keep)
    probe = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again: this does not raise
    finally:
        os.close(probe)
    assert len(keep.ids()) == 3


def test_a_directory_that_cannot_be_locked_is_replayed_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system without ``flock`` (some network ones), or a directory the replay may
    not read: the replay goes on unlocked, and says so."""
    import errno
    import fcntl

    path = write_family(tmp_path, 3, compress=False, per_file=100)

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    keep = Keep()
    summary = replay_files([str(path)], keep)
    assert len(keep.ids()) == 3
    assert [w for w in summary.warnings if "could not be locked" in w] == [
        f"{tmp_path}: could not be locked (No locks available); make sure no other replay runs there"
    ]


def test_the_live_file_rotating_during_a_replay_costs_no_record_and_sends_none_twice(tmp_path: Path) -> None:
    """The live file is renamed to a backup while its first batch is being exported (as the
    writer's rotation does), and the writer goes on in a new file at the path: the run went
    on reading the old file but wrote checkpoints made of the new one's first bytes, so the
    next runs sent the old file's records twice and skipped some of the new one's."""
    live = _flat_file(tmp_path / "app.jsonl", 10)

    class RotatingDuringExport(Keep):
        rotated = False

        def export(self, batch: Any) -> LogRecordExportResult:
            result = super().export(batch)
            if not self.rotated:
                self.rotated = True
                _rotate(live)
                _flat_file(live, 4, first=100)
            return result

    first = RotatingDuringExport()
    replay_files([str(tmp_path)], first, batch_size=3)
    _flat_file(live, 30, first=104)  # the application goes on logging
    second, third = Keep(), Keep()
    replay_files([str(tmp_path)], second, batch_size=3)
    replay_files([str(tmp_path)], third, batch_size=3)
    sent = first.ids() + second.ids() + third.ids()
    assert sorted(sent, key=int) == [str(n) for n in [*range(10), *range(100, 134)]]


def test_a_fifo_named_to_replay_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "app.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(ReplayError, match="not a regular file"):
        replay_files([str(fifo)], None)


def test_a_hidden_file_named_on_the_command_line_is_replayed(tmp_path: Path) -> None:
    """A name starting with a dot was passed over as one of replay's own files: exit 0,
    nothing sent."""
    path = _flat_file(tmp_path / ".fallback.jsonl", 5)
    keep = Keep()
    summary = replay_files([str(path)], keep)
    assert (summary.files, summary.sent) == ([str(path)], 5)
    assert keep.ids() == [str(n) for n in range(5)]


# -- hostile review, session 25 ---------------------------------------------------------------


def test_a_file_that_grows_between_its_opening_and_its_reading_gets_a_checkpoint_of_its_real_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replay opened the live file while it was empty (just after a rotation); the
    application appended before replay read it. The checkpoint was saved with the head
    read at opening: 0 bytes, which matches any file. After the next rotation the new
    live file resumed at the old offset, and its first records were never sent."""
    path = tmp_path / "app.jsonl"
    path.write_bytes(b"")
    lines = _flat_file(tmp_path / "src" / "src.jsonl", 30).read_bytes()
    opened = replay._Source.__init__

    def open_then_grow(self: Any, name: str) -> None:
        opened(self, name)
        if name == str(path) and path.stat().st_size == 0:
            with path.open("ab") as f:  # the application appends after replay looked
                f.write(lines)

    monkeypatch.setattr(replay._Source, "__init__", open_then_grow)
    first = Keep()
    assert replay_files([str(path)], first, batch_size=7).sent == 30
    saved = orjson.loads(_checkpoint(path).read_bytes())
    assert saved["head_bytes"] == min(saved["offset"], 4096) > 0
    _rotate(path)
    _flat_file(path, 40, first=100)
    rest = Keep()
    summary = replay_files([str(tmp_path)], rest)
    assert rest.ids() == [str(n) for n in range(100, 140)] and summary.ok


def test_a_checkpoint_whose_head_is_shorter_than_its_offset_is_not_trusted(tmp_path: Path) -> None:
    """Such a checkpoint (written by the version before the fix above) says nothing of the
    file it was taken of: the file is replayed from its beginning, never skipped into."""
    path = _flat_file(tmp_path / "app.jsonl", 5)
    empty = hashlib.sha256(b"").hexdigest()
    st = path.stat()
    stale = {"format": replay._FORMAT, "offset": 200, "sent": 2, "dev": st.st_dev, "ino": st.st_ino}
    stale |= {"head_sha256": empty, "head_bytes": 0}
    _checkpoint(path).write_bytes(orjson.dumps(stale))
    keep = Keep()
    summary = replay_files([str(path)], keep)
    assert keep.ids() == [str(n) for n in range(5)]
    assert any("checkpoint" in w for w in summary.warnings)


def test_a_backup_compressed_while_the_live_checkpoint_is_handed_to_it_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live file rotated; replay hands its checkpoint to the backup ``X`` it lists, and
    the compressing thread finishes ``X.gz`` and deletes ``X`` in between: the checkpoint
    went nowhere, and ``X.gz`` was replayed from its beginning (records sent twice)."""
    path = write_family(tmp_path, 10, compress=False, per_file=100)
    first = Keep()
    replay_files([str(path)], first, batch_size=4, stop=_stop_after(first, 1))
    backup = _rotate(path)
    _flat_file(path, 2, first=100)
    opened = replay._Source.__init__

    def compressed_meanwhile(self: Any, name: str) -> None:
        if name == str(backup) and backup.exists():
            _rotation._gzip(str(backup), 0o600)  # X.gz made, X deleted
        opened(self, name)

    monkeypatch.setattr(replay._Source, "__init__", compressed_meanwhile)
    live = Keep()
    assert replay_files([str(path)], live).sent == 2  # the live file alone: it hands over
    rest = Keep()
    summary = replay_files([str(tmp_path)], rest)
    assert first.ids() + rest.ids() == [str(n) for n in range(10)] and summary.ok


def test_a_live_file_missing_from_a_listing_for_a_moment_is_no_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The directory was listed while the live file was being renamed into a backup (it is
    gone at its name for a moment): that is not a path the user named wrongly (exit 2),
    and the paths are listed once, not once by the command and again by the replay."""
    path = _flat_file(tmp_path / "app.jsonl", 3)
    listed = replay._directory

    def listing_then_rotation(directory: str) -> list[str]:
        found = listed(directory)
        if path.exists():
            _rotate(path)  # renamed after the listing: the live file is missing now
        return found

    monkeypatch.setattr(replay, "_directory", listing_then_rotation)
    code, summary, err = run_cli(capsys, str(tmp_path), "--dry-run")
    assert code == 0, err
    assert any("went away" in w for w in summary["warnings"])
    code, summary, err = run_cli(capsys, str(tmp_path), "--dry-run")
    assert (code, summary["sent"]) == (0, 3), err  # next run: the backup


def test_a_replay_of_two_directories_one_of_them_busy_sends_nothing(tmp_path: Path) -> None:
    """Every directory is locked before the first record is sent: when a second replay
    holds one of them, none of the others' records went out before the stop."""
    import fcntl

    one = _flat_file(tmp_path / "one" / "app.jsonl", 3)
    two = _flat_file(tmp_path / "two" / "app.jsonl", 3)
    held = os.open(two.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        keep = Keep()
        with pytest.raises(ReplayError, match="another replay is running"):
            replay_files([str(one.parent), str(two.parent)], keep)
        assert keep.batches == []
        assert not Path(checkpoint_path(str(one))).exists()
    finally:
        os.close(held)


def _records_file(path: Path, bodies: Sequence[Any], attributes: Sequence[dict[str, Any]] = ()) -> Path:
    """A file holding one record per body (``rec.id`` its index, ``attributes`` merged)."""
    provider = LoggerProvider(resource=Resource({"service.name": "replay-test"}), shutdown_on_exit=False)
    provider.add_log_record_processor(LogxpyLogRecordProcessor(path))
    logger = provider.get_logger("replay.test", "1.0")
    for n, body in enumerate(bodies):
        extra = attributes[n] if n < len(attributes) else {}
        logger.emit(body=body, attributes={"rec.id": str(n), **extra})
    provider.shutdown()
    return path


def test_a_record_larger_than_a_collector_takes_is_set_aside_and_big_batches_are_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A collector takes requests of 4 MiB by default (gRPC's limit, the OTel Collector's
    too): one 5 MB record made every run stop at it ("refused or unreachable"), and so did
    512 records of 10 kB in one batch. Now the record is set aside (by offset, exit 1) and
    a batch is sent in parts each within the limit."""
    bodies = ["small"] + ["x" * 5_000_000] + ["y" * 10_000] * 600
    path = _records_file(tmp_path / "app.jsonl", bodies)
    receiver = GrpcReceiver()
    receiver.start()
    try:
        args = (str(path), "--endpoint", receiver.endpoint, "--protocol", "grpc")
        code, summary, err = run_cli(capsys, *args)
        assert (code, summary["sent"], summary["set_aside"], summary["refused"]) == (1, 601, 1, 0), err
        assert "larger than" in err and "collector" not in err.replace("a collector takes", "")
        assert sorted(int(r["attributes"]["rec.id"]) for r in receiver.snapshot()) == [0, *range(2, 602)]
        code, summary, _ = run_cli(capsys, *args)
        assert (code, summary["sent"]) == (0, 0)
    finally:
        receiver.stop()


def test_a_value_nested_deeper_than_otlp_takes_is_sent_as_its_json_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The OTLP encoder drops an attribute it cannot encode (too deep) with a log line, and
    a receiver refuses a request nested past its limit: a value was lost with exit 0. Now
    its part below the depth OTLP carries is sent as JSON text, counted as converted."""

    def nest(depth: int) -> Any:
        value: Any = "leaf"
        for _ in range(depth):
            value = {"k": value}
        return value

    path = _records_file(tmp_path / "app.jsonl", ["shallow", "deep"], [{"v": nest(3)}, {"v": nest(60)}])
    receiver = HttpReceiver()
    receiver.start()
    try:
        code, summary, err = run_cli(capsys, str(path), "--endpoint", receiver.endpoint)
        assert (code, summary["sent"], summary["converted"]) == (0, 2, 1), err
        by_id = {r["attributes"]["rec.id"]: r for r in receiver.snapshot()}
        assert by_id["0"]["attributes"]["v"] == nest(3)
        deep: Any = by_id["1"]["attributes"]["v"]
        levels = 0
        while isinstance(deep, dict):
            deep, levels = deep["k"], levels + 1
        assert isinstance(deep, str) and json.loads(deep) == nest(60 - levels) and levels >= 8
    finally:
        receiver.stop()


@pytest.mark.parametrize("value", [0, 1023, -5, 2.5, "4096"])
def test_max_request_bytes_below_1024_or_not_an_int_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: Any
) -> None:
    path = _flat_file(tmp_path / "app.jsonl", 1)
    with pytest.raises(ValueError, match="max_request_bytes must be an int of at least 1024"):
        replay_files([str(path)], Keep(), max_request_bytes=value)
    if isinstance(value, int):
        with pytest.raises(SystemExit) as exit_:
            cli(["replay", str(path), "--dry-run", "--max-request-bytes", str(value)])
        assert exit_.value.code == 2 and "--max-request-bytes" in capsys.readouterr().err


def test_a_lower_max_request_bytes_sends_the_same_records_in_more_requests(tmp_path: Path) -> None:
    path = _records_file(tmp_path / "app.jsonl", ["z" * 3000] * 20)
    keep = Keep()
    summary = replay_files([str(path)], keep, max_request_bytes=10_000)
    assert summary.sent == 20 and keep.ids() == [str(n) for n in range(20)]
    assert len(keep.batches) >= 7 and all(len(b) <= 3 for b in keep.batches)


@pytest.mark.parametrize("how", ["symlink", "hard link"])
def test_a_file_named_twice_under_two_names_is_replayed_once(tmp_path: Path, how: str) -> None:
    """Each name has a checkpoint of its own: the file named again through a link was
    replayed a second time, every record sent twice."""
    path = _flat_file(tmp_path / "app.jsonl", 4)
    other = tmp_path / "other" / "same.jsonl"
    other.parent.mkdir()
    if how == "symlink":
        other.symlink_to(path)
    else:
        os.link(path, other)
    keep = Keep()
    summary = replay_files([str(path), str(other)], keep)
    assert keep.ids() == ["0", "1", "2", "3"] and summary.ok


def test_bytes_and_values_past_orjson_s_depth_deep_down_go_in_the_json_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The JSON text of a value nested past 16 levels raised on bytes inside it (the
    writer keeps them), and on more than orjson's 255 levels: replay stopped with a
    traceback at that record on every run. The text is the format's own encoding of the
    value: bytes in its ``$bytes`` form, and past its depth bound the rest as text."""
    path = tmp_path / "app.jsonl"

    def nested(depth: int, leaf: str) -> str:
        return '{"k":' * depth + leaf + "}" * depth

    scope = '"scope":{"name":"t","version":"1.0"},"resource":{"attributes":{"service.name":"t"}}'
    otel = f'"_otel":{{"observed_time_unix_nano":1,{scope}}}'
    lines = [
        f'{{"tid":"Tk.{n}","lvl":[1],"ts":1795984640.{n},"mt":"info","msg":"m{n}","rec.id":"{n}",'
        f'"v":{value},{otel}}}\n'
        for n, value in enumerate(["1", nested(20, '{"$bytes":"AP8="}'), nested(300, "1"), "2"])
    ]
    path.write_text("".join(lines))
    receiver = HttpReceiver()
    receiver.start()
    try:
        code, summary, err = run_cli(capsys, str(path), "--endpoint", receiver.endpoint)
        assert (code, summary["sent"], summary["set_aside"], summary["converted"]) == (0, 4, 0, 2), err
        assert "Traceback" not in err
        by_id = {r["attributes"]["rec.id"]: r for r in receiver.snapshot()}
        deep: Any = by_id["1"]["attributes"]["v"]
        while isinstance(deep, dict):
            deep = deep["k"]
        assert json.loads(deep) == {"k": {"k": {"k": {"k": {"$bytes": "AP8="}}}}}
        assert set(by_id) == {"0", "1", "2", "3"}
    finally:
        receiver.stop()


def test_nan_and_a_tag_like_map_deep_down_keep_their_meaning_in_the_json_text(tmp_path: Path) -> None:
    """orjson writes NaN as null, and a user's map ``{"$bytes": ...}`` came out as bytes do:
    the JSON text is now the format's own encoding of the value (tags and all)."""
    deep: Any = {"nan": float("nan"), "map": {"$bytes": "not bytes"}, "blob": b"\x00"}
    for _ in range(20):
        deep = {"k": deep}
    text = _otlp._value(deep)
    while isinstance(text, dict):
        text = text["k"]
    inner = json.loads(text)
    while "k" in inner:
        inner = inner["k"]
    tagged = {"$map": {"$bytes": "not bytes"}}
    assert inner == {"nan": {"$float": "nan"}, "map": tagged, "blob": {"$bytes": "AA=="}}


# -- hostile review, session 27 ---------------------------------------------------------------


@pytest.mark.parametrize("records", [50, 400])
def test_a_truncated_gzip_backup_is_replayed_once_not_at_every_run(tmp_path: Path, records: int) -> None:
    """A ``.gz`` backup cut short (a disk that filled while it was compressed): the cut is
    reported, and the next run sends nothing again. With less than 4 KiB readable, the
    checkpoint's head came out empty (the head was read in one go, which the cut made fail
    whole) and the next run refused it: the same records were sent again at every run.
    (Since session 28 nothing of a cut member is sent: its checksum went with its end, so
    nothing proves the lines before the cut.) Cut at several places."""
    source = tmp_path / "src.jsonl"
    provider = LoggerProvider(resource=Resource({"service.name": "replay-test"}), shutdown_on_exit=False)
    provider.add_log_record_processor(LogxpyLogRecordProcessor(source))  # (trees: 10 KiB for 50)
    for n in range(records):
        provider.get_logger("replay.test").emit(body="r", attributes={"rec.id": str(n)})
    provider.shutdown()
    packed = gzip.compress(source.read_bytes(), mtime=0)
    for cut in range(len(packed) // 5, len(packed) * 4 // 5, max(1, len(packed) // 12)):
        folder = tmp_path / f"cut{cut}"
        folder.mkdir()
        backup = Path(_rotation.backup_name(str(folder / "app.jsonl"), 4_000_000_000.0) + ".gz")
        backup.write_bytes(packed[:cut])
        first = Keep()
        summary = replay_files([str(backup)], first)
        sent = first.ids()
        assert sent == [], cut
        assert summary.unreadable == 1 and "cut short" in summary.problems[0], cut
        checkpoint = _checkpoint(Path(str(backup).removesuffix(".gz")))
        if sent or checkpoint.exists():  # (nothing readable at all: nothing to resume from)
            saved = orjson.loads(checkpoint.read_bytes())
            assert saved["head_bytes"] == min(saved["offset"], 4096), (cut, saved)
        again = Keep()
        summary = replay_files([str(backup)], again)
        assert (again.ids(), summary.sent) == ([], 0), cut
        assert not any("checkpoint" in w for w in summary.warnings), (cut, summary.warnings)


def test_a_directory_at_the_checkpoint_name_is_named_in_the_error(tmp_path: Path) -> None:
    """The error named the log file ("app.jsonl: Is a directory"), which is a regular file;
    it names the checkpoint now, before anything is sent (it could not be kept)."""
    path = _flat_file(tmp_path / "app.jsonl", 3)
    _checkpoint(path).mkdir()
    keep = Keep()
    with pytest.raises(ReplayError) as caught:
        replay_files([str(path)], keep)
    assert str(caught.value).startswith(f"{_checkpoint(path)}: ") and "Is a directory" in str(caught.value)
    assert keep.ids() == []


def test_a_checkpoint_that_cannot_be_written_after_a_send_says_the_batch_may_go_again(tmp_path: Path) -> None:
    """Review of today's fix above: the error for a checkpoint that could not be written
    after a batch was sent lost its "may be sent again"."""
    path = _flat_file(tmp_path / "app.jsonl", 30)

    class BlockCheckpoint(Keep):
        def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
            result = super().export(batch)
            _checkpoint(path).mkdir(exist_ok=True)  # (after the first batch is sent)
            return result

    keep = BlockCheckpoint()
    with pytest.raises(ReplayError, match="may be sent again"):
        replay_files([str(path)], keep, batch_size=10)
    assert len(keep.ids()) == 10


# -- session 28 ---------------------------------------------------------------------------------


def test_a_gzip_backup_damaged_in_its_middle_sends_nothing_it_did_not_hold(tmp_path: Path) -> None:
    """A bit flipped in the middle of a ``.gz`` backup: the decompressor gave other bytes
    for a while before gzip's checksum failed, and replay sent the records they made
    (garbage the collector took as real). Now nothing of it is sent, it is reported
    unreadable at every run, and the undamaged backups beside it are sent."""
    source = _flat_file(tmp_path / "src.jsonl", 300)
    packed = bytearray(gzip.compress(source.read_bytes(), mtime=0))
    packed[len(packed) // 2] ^= 0x10
    damaged = Path(_rotation.backup_name(str(tmp_path / "app.jsonl"), 4_000_000_000.0) + ".gz")
    damaged.write_bytes(packed)
    whole = Path(_rotation.backup_name(str(tmp_path / "app.jsonl"), 4_000_000_001.0) + ".gz")
    whole.write_bytes(gzip.compress(_flat_file(tmp_path / "other.jsonl", 5, first=1000).read_bytes()))
    for _ in range(2):
        keep = Keep()
        summary = replay_files([str(damaged), str(whole)], keep)
        assert summary.unreadable == 1
        problems = summary.problems
        assert any(p.startswith(f"{damaged}: ") and "damaged" in p for p in problems), problems
        assert keep.ids() in ([str(n) for n in range(1000, 1005)], [])


def test_a_small_file_of_many_unreadable_lines_costs_bounded_memory_and_dead_letters(tmp_path: Path) -> None:
    """A 1 KB ``.gz`` of a million empty lines (a hostile review): each became a problem
    string and a dead letter, 1 GB of memory and 186 MB of dead letters, rewritten whole
    at every batch. Unreadable lines are counted, every one; the first
    ``MAX_UNREADABLE_LISTED`` of a file are set aside and listed, the rest said in one line
    with their bytes (the file itself still holds them)."""
    import tracemalloc

    backup = Path(_rotation.backup_name(str(tmp_path / "app.jsonl"), 4_000_000_000.0) + ".gz")
    lines = replay.MAX_UNREADABLE_LISTED * 30
    good = _flat_file(tmp_path / "ok.jsonl", 3).read_bytes()
    backup.write_bytes(gzip.compress(b"\n" * 100 + good + b"x\n" * lines))
    keep = Keep()
    tracemalloc.start()
    try:
        summary = replay_files([str(backup)], keep)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert keep.ids() == ["0", "1", "2"]
    assert summary.unreadable == lines + 100
    assert len(summary.problems) == replay.MAX_UNREADABLE_LISTED + 1
    more = lines + 100 - replay.MAX_UNREADABLE_LISTED
    assert summary.problems[-1].startswith(f"{backup}: {more} more unreadable lines among bytes ")
    dead = Path(summary.dead_letters[0]).read_bytes().splitlines()
    assert len(dead) == replay.MAX_UNREADABLE_LISTED
    assert peak < 20_000_000, peak  # (the problems and letters of 30,000 lines: far more, before)


# -- hostile review, session 33 ---------------------------------------------------------------


def test_records_are_counted_as_sent_in_a_nearer_form_only_once_sent(tmp_path: Path) -> None:
    """The summary said "10 sent in a nearer OTLP form" of a run whose collector refused
    them all (``sent 0``): the conversions were counted before the export. They are now
    counted with the records sent, part by part (a batch too large for one request)."""
    path = tmp_path / "app.jsonl"
    provider = LoggerProvider(resource=Resource({"service.name": "replay-test"}), shutdown_on_exit=False)
    provider.add_log_record_processor(LogxpyLogRecordProcessor(path, mode="flat"))
    for n in range(10):
        body = 2**70 if n % 2 else f"r{n}"
        provider.get_logger("replay.test").emit(body=body, attributes={"rec.id": str(n), "pad": "p" * 400})
    provider.shutdown()
    refused = replay_files([str(path)], Refusing())
    assert (refused.sent, refused.refused, refused.converted) == (0, 10, 0)

    class SecondRefused(Keep):
        def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
            if self.batches:
                return LogRecordExportResult.FAILURE
            return super().export(batch)

    first = SecondRefused()
    half = replay_files([str(path)], first, max_request_bytes=1024)  # (parts of 2 records)
    assert [len(batch) for batch in first.batches] == [2]
    assert (half.sent, half.converted) == (2, 1)
    keep = Keep()
    rest = replay_files([str(path)], keep, max_request_bytes=1024)
    assert (rest.sent, rest.converted) == (10, 5)  # (the run stopped before its checkpoint)
    assert len(keep.batches) > 1


def test_a_directory_replays_a_live_file_of_any_name_once_it_holds_our_lines(tmp_path: Path) -> None:
    """``replay DIR`` took rotated families and ``*.jsonl`` files only: the fallback's file
    configured as ``fallback.log``, not rotated yet, was passed over, and the run said
    ``sent 0`` and exit 0 (every record delivered). A file of any name whose first line is
    one of ours is now taken; other files (another program's logs, an empty file) are not."""
    ours = _flat_file(tmp_path / "fallback.log", 10)
    (tmp_path / "nginx.log").write_text('127.0.0.1 - - [30/Nov/2026] "GET / HTTP/1.1" 200\n')
    (tmp_path / "other.json").write_text('{"level": "info", "msg": "not ours"}\n')
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "binary.bin").write_bytes(bytes(range(256)) * 64)
    assert replay.expand_paths([str(tmp_path)]) == [str(ours)]
    keep = Keep()
    summary = replay_files([str(tmp_path)], keep)
    assert (summary.sent, summary.files) == (10, [str(ours)])
    assert keep.ids() == [str(n) for n in range(10)]


#: A backup's name, as rotation names it.
_BACKUP_NAME = "app.20260101T000000.000000Z.jsonl"


def test_a_small_backup_that_grows_while_it_is_replayed_gets_a_checkpoint_the_next_run_takes(
    tmp_path: Path,
) -> None:
    """A process that has not seen the rotation yet appends its batch to the backup (docs/
    configuration.md, "Many processes, one file"). A backup under 4 KiB that grew during
    the run got a checkpoint whose head was the bytes it had at its opening, shorter than
    its offset: the next run called it unusable and sent all of it again (30 of 30)."""
    sources = tmp_path / "sources"
    sources.mkdir()
    first = _flat_file(sources / "a", 3).read_bytes()
    later = _flat_file(sources / "b", 27, first=3).read_bytes()
    logs = tmp_path / "logs"
    logs.mkdir()
    backup = logs / _BACKUP_NAME
    backup.write_bytes(first)

    class Lagging(Keep):
        def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
            if not self.batches:
                with backup.open("ab") as f:  # the lagging writer's batch lands now
                    f.write(later)
            return super().export(batch)

    one, two = Lagging(), Keep()
    replay_files([str(logs)], one, batch_size=2)
    second = replay_files([str(logs)], two)
    assert not [p for p in second.problems if "unusable" in p], second.problems
    assert sorted(one.ids() + two.ids(), key=int) == [str(n) for n in range(30)]


def test_a_fresh_backup_s_torn_last_line_is_left_for_the_next_run_an_old_one_s_is_set_aside(
    tmp_path: Path,
) -> None:
    """A backup can still grow while the lagging process's append is under way: its last
    line half written was taken as torn for good, set aside, and the checkpoint passed it;
    once the append ended, the rest of the line was a second bad line, and the record was
    never sent. A backup changed in the last minute is now read as the live file is (its
    torn last line pending); an older one is final, as before."""
    sources = tmp_path / "sources"
    sources.mkdir()
    lines = _flat_file(sources / "a", 5).read_bytes().splitlines(keepends=True)
    logs = tmp_path / "logs"
    logs.mkdir()
    backup = logs / _BACKUP_NAME
    cut = len(lines[4]) // 2
    backup.write_bytes(b"".join(lines[:4]) + lines[4][:cut])
    first = Keep()
    summary = replay_files([str(logs)], first)
    assert (first.ids(), summary.pending, summary.unreadable) == (["0", "1", "2", "3"], 1, 0)
    with backup.open("ab") as f:
        f.write(lines[4][cut:])
    second = Keep()
    assert replay_files([str(logs)], second).unreadable == 0
    assert second.ids() == ["4"]
    # A backup no process has changed for a while: its torn last line is torn for good.
    old = logs / "app.20250101T000000.000000Z.jsonl"
    old.write_bytes(b"".join(lines[:2]) + lines[2][:cut])
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    third = Keep()
    summary = replay_files([str(old)], third)
    assert (third.ids(), summary.pending, summary.unreadable) == (["0", "1"], 0, 1)


@pytest.mark.parametrize("first", ["a record over 64 KiB", "zeros a crash left"])
def test_a_directory_takes_a_live_file_of_any_name_whatever_its_first_line(
    tmp_path: Path, first: str
) -> None:
    """Review of the fix above: the file was taken only when its first line was one of ours
    and shorter than the 64 KiB looked at, so a first record with a 70 kB body, or a first
    line of zeros (a crash), left ``fallback.log`` unsent again (sent 0, exit 0). Any line
    of ours that starts in the first 64 KiB now does it; another program's file does not."""
    path = tmp_path / "fallback.log"
    provider = LoggerProvider(resource=Resource({"service.name": "replay-test"}), shutdown_on_exit=False)
    provider.add_log_record_processor(LogxpyLogRecordProcessor(path, mode="flat"))
    logger = provider.get_logger("replay.test")
    if first == "a record over 64 KiB":
        logger.emit(body="x" * 70_000, attributes={"rec.id": "big"})
    for n in range(5):
        logger.emit(body=f"record {n}", attributes={"rec.id": str(n)})
    provider.shutdown()
    if first == "zeros a crash left":
        path.write_bytes(b"\0" * 512 + b"\n" + path.read_bytes())
    (tmp_path / "other.gz").write_bytes(gzip.compress(b'{"level":"info","msg":"not ours"}\n'))
    assert replay.expand_paths([str(tmp_path)]) == [str(path)]
    keep = Keep()
    replay_files([str(tmp_path)], keep)
    assert keep.ids()[-5:] == ["0", "1", "2", "3", "4"]


def test_a_directory_takes_gzip_files_of_any_name_that_hold_our_lines(tmp_path: Path) -> None:
    """Review: the look for lines of ours skipped gzip data (to bound its cost), so
    logrotate's ``compress`` backups (``app.jsonl.2.gz``) were passed over by ``replay DIR``
    with nothing said (6 of 9 records sent, exit 0). gzip data is looked into again, its
    first 64 KiB of compressed bytes at most."""
    sources = tmp_path / "sources"
    sources.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.jsonl.2.gz").write_bytes(gzip.compress(_flat_file(sources / "a", 3).read_bytes()))
    (logs / "app.jsonl.1").write_bytes(_flat_file(sources / "b", 3, first=3).read_bytes())
    (logs / "notes.gz").write_bytes(gzip.compress(b"not ours\n" * 100))
    found = replay.expand_paths([str(logs)])
    assert sorted(Path(f).name for f in found) == ["app.jsonl.1", "app.jsonl.2.gz"]
    keep = Keep()
    replay_files([str(logs)], keep)
    assert sorted(keep.ids(), key=int) == [str(n) for n in range(6)]


# -- a disk that really fills (session 35) -------------------------------------------------------


def test_a_full_disk_never_has_a_batch_sent_whose_checkpoint_cannot_be_kept(small_disk: Path) -> None:
    """A hostile review on a real full disk: each run sent a batch, then could not write its
    checkpoint, so every run sent that batch again (4 copies after 3 runs). The checkpoint a
    batch will leave is now written aside before the batch is sent (it only needs renaming
    after): a run on a full disk sends nothing, and with room again each record goes once."""
    from _helpers import fill_disk

    path = write_family(small_disk, 30, compress=False, per_file=30)
    fill_disk(small_disk / "filler")
    keep = Keep()
    for _ in range(3):  # (otlp=False: no record set aside, so no dead letter to write either)
        with pytest.raises(ReplayError, match="checkpoint"):
            replay_files([str(path)], keep, batch_size=10, otlp=False)
    assert keep.ids() == [], "nothing is sent that its checkpoint cannot follow"
    assert sorted(p.name for p in small_disk.iterdir()) == ["app.jsonl", "filler"], "no partial file left"
    (small_disk / "filler").unlink()
    summary = replay_files([str(path)], keep, batch_size=10, otlp=False)
    assert summary.sent == 30 and sorted(keep.ids(), key=int) == [str(n) for n in range(30)]
    assert replay_files([str(path)], keep, batch_size=10, otlp=False).sent == 0


def test_a_checkpoint_a_killed_replay_had_written_aside_is_removed_by_the_next(tmp_path: Path) -> None:
    """A review (session 35): the checkpoint a batch leaves is written aside before the batch
    is sent; a replay killed while it sent (SIGKILL, the OOM killer) left that hidden file
    for good, one more each time. The next replay, holding the directory's lock, removes it."""
    path = write_family(tmp_path, 5, compress=False, per_file=5)
    left = tmp_path / ".app.jsonl.replay.json.0123456789abcdef.partial"
    left.write_bytes(b"{}")
    other = tmp_path / ".other.jsonl.replay.json.0123456789abcdef.partial"  # (another file's)
    other.write_bytes(b"{}")
    keep = Keep()
    assert replay_files([str(path)], keep).sent == 5
    assert not left.exists() and other.exists()
