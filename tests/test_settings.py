"""Settings: keywords and YAML keys raise on bad values; environment variables warn and fall back."""

from __future__ import annotations

import logging
import re
import stat
from pathlib import Path

import pytest

from logxpy_otel import AsyncConfig, LogxpyLogRecordExporter, LogxpyLogRecordProcessor, QueuePolicy
from logxpy_otel import environment_variables as ev
from logxpy_otel._settings import OPTIONS, SPANS, from_env, parse_option


def test_every_option_has_its_variable_registered_for_the_instrument_flags() -> None:
    names = {name for name in dir(ev) if name.startswith("OTEL_EXPORTER_LOGXPY_")}
    assert names == {s.env for s in OPTIONS.values()} | {SPANS.env}
    assert all(getattr(ev, name) == name for name in names)


@pytest.mark.parametrize(
    ("key", "raw", "value"),
    [
        ("queue_policy", " Drop_Oldest ", "drop_oldest"),
        ("max_queue_size", "500", 500),
        ("batch_size", 7, 7),
        ("flush_interval", "12.5", 12.5),
        ("mode", "flat", "flat"),
        ("file_permissions", "640", 0o640),
        ("file_permissions", "0o604", 0o604),
        ("file_permissions", "0600", 0o600),
        ("file_permissions", 0o600, 0o600),  # an int that cannot be chmod's digits: a mode
        ("max_restarts", "0", 0),
        ("file", "logs/x.jsonl", "logs/x.jsonl"),
    ],
)
def test_options_parse_strings_and_values(key: str, raw: object, value: object) -> None:
    assert parse_option(key, raw) == value


@pytest.mark.parametrize(
    ("key", "raw", "says"),
    [
        ("queue_policy", "sometimes", "queue_policy must be one of block, drop_oldest, drop_newest, warn"),
        ("max_queue_size", "0", "max_queue_size must be an integer from 1 to 1000000"),
        ("max_queue_size", "1" * 23, "max_queue_size must be an integer from 1 to 1000000"),
        # Two plus signs passed the check, and int()'s own message came out.
        ("max_queue_size", "++5", "max_queue_size must be an integer from 1 to 1000000"),
        ("batch_size", "ten", "batch_size must be an integer from 1 to 1000000"),
        ("flush_interval", "-1", "flush_interval must be a number of milliseconds from 1 to 3600000"),
        # A flush interval of 5e-324 ms passed "> 0": the idle writer woke without end.
        ("flush_interval", "5e-324", "flush_interval must be a number of milliseconds from 1 to 3600000"),
        ("flush_interval", 0.5, "flush_interval must be a number of milliseconds from 1 to 3600000"),
        ("shutdown_timeout", 1e20, "shutdown_timeout must be a number of milliseconds > 0 and <= 3600000"),
        ("max_bytes", 2**70, "max_bytes must be an integer from 1 to 4611686018427387904"),
        ("backup_count", "100001", "backup_count must be an integer from 0 to 100000"),
        # An int past a float was an OverflowError (a review, session 34).
        ("rotate_when", 10**400, "rotate_when must be hourly, daily, or an interval of at least 1 s"),
        ("mode", "forest", "mode must be one of tree, flat"),
        ("file_permissions", "999", "file_permissions must be file permissions in octal"),
        # YAML reads a bare 400 as the int 400: as a mode, 0o620 (group-writable). Refused.
        ("file_permissions", 400, 'as a string of octal digits ("400" means 0o400)'),
        ("file_permissions", 644, "the int 644 is the mode 0o1204"),
        ("file", "  ", "file must be a non-empty file path"),
    ],
)
def test_bad_option_values_raise_naming_the_option_and_the_allowed(key: str, raw: object, says: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_option(key, raw)
    assert says in str(info.value) and repr(raw) in str(info.value)


def test_unknown_option_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown logxpy-otel option 'colour'; known options: file, mode"):
        parse_option("colour", "blue")


def test_env_values_are_resolved_where_the_processor_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13 item 3: the variables are read once, at the edge; AsyncConfig holds plain values."""
    monkeypatch.setenv(ev.OTEL_EXPORTER_LOGXPY_QUEUE_POLICY, "warn")
    monkeypatch.setenv(ev.OTEL_EXPORTER_LOGXPY_MAX_QUEUE_SIZE, "321")
    monkeypatch.setenv(ev.OTEL_EXPORTER_LOGXPY_FLUSH_INTERVAL, "25")
    assert AsyncConfig() == AsyncConfig(queue_policy="block", max_queue_size=10_000), "no env in the core"
    processor = LogxpyLogRecordProcessor(tmp_path / "env.jsonl", max_queue_size=999)
    given = LogxpyLogRecordProcessor(tmp_path / "given.jsonl", config=AsyncConfig(batch_size=7))
    try:
        config = processor.writer.config
        assert (config.queue_policy, config.max_queue_size, config.flush_interval_ms) == (
            QueuePolicy.WARN,
            999,  # a keyword wins over its variable
            25.0,
        )
        assert config.batch_size == 999, "the default batch is capped at the queue size, not an error"
        assert given.writer.config == AsyncConfig(batch_size=7), "a config object is taken as it is"
    finally:
        processor.shutdown()
        given.shutdown()


def test_a_bad_env_value_warns_with_everything_and_uses_the_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="logxpy_otel")
    monkeypatch.setenv(ev.OTEL_EXPORTER_LOGXPY_MAX_QUEUE_SIZE, "lots")
    assert from_env("max_queue_size") == 10_000
    (warning,) = caplog.records
    text = warning.getMessage()
    assert "OTEL_EXPORTER_LOGXPY_MAX_QUEUE_SIZE='lots' is not valid" in text
    assert "expected an integer from 1 to 1000000" in text and "using the default 10000" in text


def test_processor_precedence_argument_then_env_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ev.OTEL_EXPORTER_LOGXPY_FILE, str(tmp_path / "from-env.jsonl"))
    monkeypatch.setenv(ev.OTEL_EXPORTER_LOGXPY_MODE, "flat")
    monkeypatch.setenv(ev.OTEL_EXPORTER_LOGXPY_FILE_PERMISSIONS, "640")
    from_env_proc = LogxpyLogRecordProcessor()
    explicit = LogxpyLogRecordProcessor(tmp_path / "explicit.jsonl", mode="tree", file_mode=0o600)
    try:
        assert from_env_proc.mode == "flat" and explicit.mode == "tree"
        assert stat.S_IMODE((tmp_path / "from-env.jsonl").stat().st_mode) == 0o640 & ~_umask()
        assert stat.S_IMODE((tmp_path / "explicit.jsonl").stat().st_mode) == 0o600
    finally:
        from_env_proc.shutdown()
        explicit.shutdown()


def test_exporter_takes_declarative_keys(tmp_path: Path) -> None:
    exporter = LogxpyLogRecordExporter(
        file=str(tmp_path / "yaml.jsonl"),
        mode="flat",
        file_permissions="600",
        queue_policy="drop_newest",
        max_queue_size="50",
        batch_size=5,
        flush_interval=10,
    )
    try:
        config = exporter.writer.config
        assert (config.queue_policy, config.max_queue_size, config.batch_size) == (
            QueuePolicy.DROP_NEWEST,
            50,
            5,
        )
        assert config.flush_interval_ms == 10.0 and exporter.mode == "flat"
        assert (tmp_path / "yaml.jsonl").exists()
    finally:
        exporter.shutdown()
    with pytest.raises(ValueError, match="queue_policy must be one of"):
        LogxpyLogRecordExporter(file=str(tmp_path / "x.jsonl"), queue_policy="maybe")


def _umask() -> int:
    import os

    old = os.umask(0)
    os.umask(old)
    return old


def test_file_options_from_env_reach_the_file_in_its_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ev.OTEL_EXPORTER_LOGXPY_RETRY_TIMEOUT, "250")
    monkeypatch.setenv(ev.OTEL_EXPORTER_LOGXPY_FSYNC, "batch")
    processor = LogxpyLogRecordProcessor(tmp_path / "units.jsonl", retry_timeout=1500)
    try:
        (dest,) = processor.writer.destinations
        assert dest._retry_timeout_s == 1.5, "explicit milliseconds, as seconds"  # type: ignore[attr-defined]
        assert dest._fsync == "batch"  # type: ignore[attr-defined]
    finally:
        processor.shutdown()
    other = LogxpyLogRecordProcessor(tmp_path / "env.jsonl")
    try:
        (dest,) = other.writer.destinations
        assert dest._retry_timeout_s == 0.25, "the variable's milliseconds, as seconds"  # type: ignore[attr-defined]
    finally:
        other.shutdown()


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        (ev.OTEL_EXPORTER_LOGXPY_MAX_QUEUE_SIZE, "1" * 23),  # was an OverflowError out of the constructor
        (ev.OTEL_EXPORTER_LOGXPY_MAX_QUEUE_SIZE, "4000000000"),  # was a 32 GB deque of slots
        (ev.OTEL_EXPORTER_LOGXPY_SHUTDOWN_TIMEOUT, "1e20"),  # was an OverflowError at shutdown
        (ev.OTEL_EXPORTER_LOGXPY_MAX_OPEN_TRACES, "9" * 30),
    ],
)
def test_a_huge_variable_is_a_warning_and_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, variable: str, raw: str
) -> None:
    """Issue 12, item 10: huge values passed validation and failed later (zero-code set-up aborted)."""
    caplog.set_level(logging.WARNING, logger="logxpy_otel")
    monkeypatch.setenv(variable, raw)
    processor = LogxpyLogRecordProcessor(tmp_path / "huge.jsonl")
    try:
        assert f"{variable}={raw!r} is not valid" in caplog.text
        config = processor.writer.config
        assert config.max_queue_size == 10_000 and config.shutdown_timeout_ms == 5_000.0
        assert config.max_open_traces == 1_000
    finally:
        processor.shutdown()


def test_a_huge_shutdown_timeout_keyword_is_refused_at_construction(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match="shutdown_timeout must be a number of milliseconds > 0 and <= 3600000"
    ):
        LogxpyLogRecordProcessor(tmp_path / "x.jsonl", shutdown_timeout=1e20)


@pytest.mark.parametrize(
    ("keywords", "error", "says"),
    [
        ({"file_mode": -1}, ValueError, "file_mode must be permissions from 0 to 0o777; got -1"),
        ({"file_mode": 0o4777}, ValueError, "file_mode must be permissions from 0 to 0o777"),
        ({"path": 123}, TypeError, "path must be a str or os.PathLike; got int"),
        ({"destinations": 5}, TypeError, "destinations must be an iterable of callables; got int"),
        ({"destinations": "file.jsonl"}, TypeError, "destinations must be an iterable of callables; got str"),
        ({"destinations": [42]}, TypeError, "destinations must be callables taking bytes; got int"),
        ({"config": "x"}, TypeError, "config must be an AsyncConfig; got str"),
    ],
)
def test_keywords_of_the_wrong_type_or_range_name_the_keyword(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keywords: dict[str, object],
    error: type[Exception],
    says: str,
) -> None:
    """Issue 12, item 11: file_mode=-1 made a set-uid, set-gid, sticky log file; wrong types
    raised an AttributeError from deep inside."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error) as info:
        LogxpyLogRecordProcessor(**keywords)  # type: ignore[arg-type]
    assert says in str(info.value)
    assert not any(tmp_path.iterdir()), "nothing was created"


# -- boundaries and spellings (issue 13 item 8: tests that notice when the code is wrong) ------


@pytest.mark.parametrize("key", ["flush_interval", "shutdown_timeout", "retry_timeout"])
def test_a_duration_of_exactly_one_hour_is_allowed_and_zero_is_not(key: str) -> None:
    assert parse_option(key, 3_600_000) == 3_600_000.0
    assert parse_option(key, "3600000") == 3_600_000.0
    for zero in (0, "0", 0.0):
        with pytest.raises(ValueError, match=r"milliseconds (> 0 and <=|from 1 to) 3600000"):
            parse_option(key, zero)


@pytest.mark.parametrize(("raw", "value"), [(True, True), (False, False), ("gzip", True), ("none", False)])
def test_compress_takes_booleans_as_well_as_names(raw: object, value: bool) -> None:
    assert parse_option("compress", raw) is value


def test_an_empty_variable_is_unset_not_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """As the OpenTelemetry spec has it: an empty value is the same as no value."""
    caplog.set_level(logging.WARNING, logger="logxpy_otel")
    monkeypatch.setenv(ev.OTEL_EXPORTER_LOGXPY_MAX_QUEUE_SIZE, "")
    monkeypatch.setenv(ev.OTEL_EXPORTER_LOGXPY_MODE, "  ")
    assert from_env("max_queue_size") == 10_000
    assert from_env("mode") == "tree"
    assert caplog.records == []


@pytest.mark.parametrize(
    ("raw", "sync"), [("1", True), ("TRUE", True), (" Yes ", True), ("On", True), ("0", False)]
)
def test_logxpy_sync_is_read_in_any_case(monkeypatch: pytest.MonkeyPatch, raw: str, sync: bool) -> None:
    from logxpy_otel._settings import sync_requested

    monkeypatch.setenv("LOGXPY_SYNC", raw)
    assert sync_requested() is sync
    assert AsyncConfig().async_enabled is not sync


def test_the_default_mode_is_tree(tmp_path: Path) -> None:
    processor = LogxpyLogRecordProcessor(tmp_path / "default.jsonl")
    try:
        assert processor.mode == "tree"
    finally:
        processor.shutdown()


def test_a_digit_int_refuses_says_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="max_queue_size must be an integer from 1 to 1000000; got '²'"):
        parse_option("max_queue_size", "²")


# -- hostile review, session 25 ---------------------------------------------------------------


@pytest.mark.parametrize("raw", [1, 0, 1.0, 0.0, "1", "yes"])
def test_compress_takes_no_number_for_a_boolean(raw: object) -> None:
    """``1 in ("gzip", True)`` is True: ``compress=1`` was taken as gzip, ``0`` as none."""
    with pytest.raises(ValueError, match="compress must be gzip or none"):
        parse_option("compress", raw)


def test_a_path_with_a_nul_character_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file must be a non-empty file path without NUL"):
        parse_option("file", "a\x00b")
    with pytest.raises(ValueError, match="path must be a non-empty file path without NUL"):
        LogxpyLogRecordProcessor(str(tmp_path / "a\x00b"))


def test_a_bad_file_permissions_variable_names_the_default_in_octal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="logxpy_otel")
    monkeypatch.setenv("OTEL_EXPORTER_LOGXPY_FILE_PERMISSIONS", "999")
    assert from_env("file_permissions") == 0o600
    assert "using the default 600" in caplog.text


# -- session 28: a hostile review of the keywords ----------------------------------------------


@pytest.mark.parametrize("path", ["", "  ", "\t"])
def test_an_empty_or_blank_path_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """``path=""`` raised FileNotFoundError from deep inside, and ``path="  "`` made a file
    named two spaces (the variable's parser refuses both)."""
    monkeypatch.chdir(tmp_path)
    says = f"path must be a non-empty file path without NUL characters; got {path!r}"
    with pytest.raises(ValueError, match=re.escape(says)):
        LogxpyLogRecordProcessor(path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["\u0663", "\uff15", "1\u0660"])
def test_a_number_in_other_digits_is_refused_like_the_integer_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """``flush_interval="\u0663"`` (an Arabic-Indic three) passed as 3 ms through float(),
    keyword and variable alike, where the integer settings refuse such digits."""
    with pytest.raises(ValueError, match="flush_interval must be a number of milliseconds"):
        LogxpyLogRecordProcessor(tmp_path / "x.jsonl", flush_interval=value)
    monkeypatch.setenv(str(OPTIONS["flush_interval"].env), value)
    assert from_env("flush_interval") == OPTIONS["flush_interval"].default


def test_a_meter_provider_of_another_kind_is_refused_naming_it(tmp_path: Path) -> None:
    """``meter_provider="not a provider"`` was taken, and only a warning said self-metrics
    were off."""
    with pytest.raises(TypeError, match="meter_provider must be an OpenTelemetry MeterProvider; got str"):
        LogxpyLogRecordProcessor(tmp_path / "x.jsonl", meter_provider="not a provider")
    assert not (tmp_path / "x.jsonl").exists()


# -- hostile review, session 33 ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "default"),
    [
        ("COMPRESS", "zstd", "none"),
        ("ROTATE_WHEN", "weekly", "off"),
        ("MAX_BYTES", "0", "off"),
        ("BACKUP_COUNT", "-1", "keep all"),
        ("NOFOLLOW", "maybe", "false"),
        ("FLUSH_INTERVAL", "soon", "200"),
    ],
)
def test_a_bad_variable_s_warning_names_its_default_as_the_docs_do(
    variable: str, value: str, default: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The warning ended "using the default False" for ``COMPRESS=zstd`` (whose values are
    gzip and none), and "None" for the rotation settings: Python values, not the setting's."""
    from logxpy_otel._settings import from_env

    monkeypatch.setenv(f"OTEL_EXPORTER_LOGXPY_{variable}", value)
    with caplog.at_level("WARNING", logger="logxpy_otel"):
        from_env(variable.lower())
    assert caplog.text.rstrip().endswith(f"using the default {default}"), caplog.text
    documented = Path(__file__).resolve().parents[1].joinpath("docs", "configuration.md").read_text()
    row = next(line for line in documented.splitlines() if line.startswith(f"| `{variable.lower()}` |"))
    assert default in row.split("|")[3], row
