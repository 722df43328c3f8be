"""docs/collector.md: the Collector ``filelog`` configuration that ships our files.

No Collector runs here. What is checked:

- the YAML block parses, and each operator uses only types and fields that the receiver's
  documentation lists (``pkg/stanza/docs/operators/*.md`` of opentelemetry-collector-contrib);
- lines written by ``LogxpyLogRecordProcessor`` (tree and flat mode) run through a small
  model of those operators, written from their documentation and the receiver's source
  (``entry/*_field.go``: a map moved onto a field is merged, anything else replaces;
  ``retain`` keeps only the body fields it names; ``trace_parser`` decodes hex;
  ``severity_parser`` maps the values of its mapping; ``if``/``expr`` with ``nil``):
  every field path an operator names is found in the entries it sees, and each record
  that comes out equals what ``logxpy_otel.reader`` rebuilds from the same line, except
  for the differences the document lists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from test_docs import blocks

from logxpy_otel import LogxpyLogRecordProcessor
from logxpy_otel.reader import decode_line

DOC = Path(__file__).resolve().parent.parent / "docs" / "collector.md"

_COMMON = {"id", "type", "output", "on_error", "if"}
#: The fields each operator's documentation lists (beyond id, type, output, on_error, if).
DOCUMENTED_FIELDS: dict[str, set[str]] = {
    "json_parser": {"parse_from", "parse_to", "timestamp", "severity", "parse_ints"},
    "filter": {"expr", "drop_ratio"},
    "move": {"from", "to"},
    "time_parser": {"parse_from", "layout_type", "layout", "location"},
    "severity_parser": {"parse_from", "preset", "mapping", "overwrite_text"},
    "regex_parser": {"regex", "parse_from", "parse_to", "timestamp", "severity", "cache"},
    "add": {"field", "value"},
    "trace_parser": {"trace_id", "span_id", "trace_flags"},
    "scope_name_parser": {"parse_from"},
    "remove": {"field"},
    "retain": {"fields"},
}
RECEIVER_FIELDS = {
    "include",
    "exclude",
    "start_at",
    "compression",
    "include_file_name",
    "include_file_path",
    "storage",
    "operators",
    "max_log_size",
    "poll_interval",
    "fingerprint_size",
}
#: severity_parser aliases (stanza's entry.Severity) and the numbers they stand for.
ALIASES = {
    name: number
    for number, name in enumerate(
        [
            f"{level}{suffix}"
            for level in ("trace", "debug", "info", "warn", "error", "fatal")
            for suffix in ("", "2", "3", "4")
        ],
        start=1,
    )
}


def collector_config() -> dict[str, Any]:
    (block,) = [b for b in blocks(DOC.read_text(encoding="utf-8"), "docs/collector.md") if b.lang == "yaml"]
    config = yaml.safe_load(block.code)
    assert isinstance(config, dict)
    return config


def receiver() -> dict[str, Any]:
    config = collector_config()
    (name,) = [name for name in config["receivers"] if name.split("/")[0] == "filelog"]
    assert name in config["service"]["pipelines"]["logs"]["receivers"]
    rec = config["receivers"][name]
    assert isinstance(rec, dict)
    return rec


# -- a model of the operators --------------------------------------------------------------------


class OperatorError(Exception):
    pass


@dataclass
class Entry:
    body: Any
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    timestamp: int | None = None
    severity: int = 0
    severity_text: str = ""
    trace_id: bytes | None = None
    span_id: bytes | None = None
    trace_flags: bytes | None = None
    scope_name: str | None = None


def _parse(path: str) -> tuple[str, list[str]]:
    root, *keys = path.split(".")
    if root not in ("body", "attributes", "resource"):
        root, keys = "body", [root, *keys]  # a field not starting with a group is in the body
    return root, keys


def get(entry: Entry, path: str) -> tuple[Any, bool]:
    root, keys = _parse(path)
    value: Any = getattr(entry, root)
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None, False
        value = value[key]
    return value, True


def _nested(current: dict[str, Any], key: str) -> dict[str, Any]:
    child = current.get(key)
    if not isinstance(child, dict):
        child = current[key] = {}
    return child


def set_(entry: Entry, path: str, value: Any) -> None:
    """``Field.Set``: a map is merged at the field (creating maps on the way); anything else
    replaces the value there (the body root included; the attributes or resource root: error)."""
    root, keys = _parse(path)
    if isinstance(value, dict):
        if root == "body" and not isinstance(entry.body, dict):
            entry.body = {}
        current = getattr(entry, root)
        for key in keys:
            current = _nested(current, key)
        current.update(value)
        return
    if not keys:
        if root != "body":
            raise OperatorError(f"cannot set {root} root")
        entry.body = value
        return
    if root == "body" and not isinstance(entry.body, dict):
        entry.body = {}
    current = getattr(entry, root)
    for key in keys[:-1]:
        current = _nested(current, key)
    current[keys[-1]] = value


def delete(entry: Entry, path: str) -> tuple[Any, bool]:
    root, keys = _parse(path)
    if not keys:
        old = getattr(entry, root)
        setattr(entry, root, None if root == "body" else {})
        return old, True
    current: Any = getattr(entry, root)
    for key in keys[:-1]:
        if not isinstance(current, dict) or key not in current:
            return None, False
        current = current[key]
    if not isinstance(current, dict) or keys[-1] not in current:
        return None, False
    return current.pop(keys[-1]), True


_CLAUSE = re.compile(r"^(?P<path>[\w.]+) (?P<op>==|!=) (?P<value>nil|-?\d+)$")
_MATCHES = re.compile(r'^(?P<path>[\w.]+) matches "(?P<regex>[^"]*)"$')


def evaluate(expr: str, entry: Entry, seen: set[str]) -> bool:
    """The subset of the expr language the configuration uses: clauses joined by ``and``
    (short-circuit), each ``PATH == nil``, ``PATH != nil``, ``PATH == INT`` or
    ``PATH matches "RE"``. Reading a member of nil or of a non-map is an error, as in expr."""
    for clause in expr.split(" and "):
        m = _CLAUSE.match(clause) or _MATCHES.match(clause)
        assert m is not None, f"the model does not know this expression: {clause!r}"
        root, keys = _parse(m["path"])
        value: Any = getattr(entry, root)
        for i, key in enumerate(keys):
            if not isinstance(value, dict):
                raise OperatorError(f"cannot fetch {key} from {'.'.join([root, *keys[:i]])}")
            value = value.get(key)
        if value is not None:
            seen.add(m["path"])
        if "regex" in m.groupdict() and m.groupdict().get("regex") is not None:
            ok = isinstance(value, str) and re.search(m["regex"], value) is not None
        elif m["value"] == "nil":
            ok = (value is None) == (m["op"] == "==")
        else:
            ok = (value == int(m["value"])) == (m["op"] == "==")
        if not ok:
            return False
    return True


@dataclass
class Model:
    operators: list[dict[str, Any]]
    #: per operator index: the source paths it names, and those found in some entry
    named: dict[int, set[str]] = field(default_factory=dict)
    found: dict[int, set[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for i, op in enumerate(self.operators):
            paths = set()
            for key in ("parse_from", "from"):
                if key in op:
                    paths.add(op[key])
            if op["type"] == "remove":
                paths.add(op["field"])
            if op["type"] == "trace_parser":
                paths |= {op[part]["parse_from"] for part in ("trace_id", "span_id", "trace_flags")}
            if op["type"] == "retain":
                paths |= set(op["fields"])
            for expr in (op.get("if"), op.get("expr")):
                if expr:
                    paths |= {m.group(1) for m in re.finditer(r"([\w.]+) (?:==|!=|matches)", expr)}
            self.named[i] = paths
            self.found[i] = set()

    def _get(self, i: int, entry: Entry, path: str) -> tuple[Any, bool]:
        value, ok = get(entry, path)
        if ok:
            self.found[i].add(path)
        return value, ok

    def run(self, line: str) -> Entry | None:
        entry = Entry(body=line)
        for i, op in enumerate(self.operators):
            try:
                if "if" in op and not evaluate(op["if"], entry, self.found[i]):
                    continue
                if self._apply(i, op, entry) is None:
                    return None
            except (OperatorError, ValueError) as exc:
                self.errors.append(f"operator {i} ({op['type']}): {exc}")
                if op.get("on_error", "send").startswith("drop"):
                    return None
        return entry

    def _apply(self, i: int, op: dict[str, Any], entry: Entry) -> Entry | None:
        kind = op["type"]
        if kind == "json_parser":
            value, _ = self._get(i, entry, op.get("parse_from", "body"))
            parsed = json.loads(value)
            if not op.get("parse_ints"):
                parsed = json.loads(value, parse_int=float)
            set_(entry, op.get("parse_to", "attributes"), parsed)
        elif kind == "filter":
            if evaluate(op["expr"], entry, self.found[i]):
                return None
        elif kind == "move":
            value, ok = delete(entry, op["from"])
            if not ok:
                raise OperatorError(f"move: field does not exist: {op['from']}")
            self.found[i].add(op["from"])
            set_(entry, op["to"], value)
        elif kind == "remove":
            _, ok = delete(entry, op["field"])
            if not ok:
                raise OperatorError(f"remove: field does not exist: {op['field']}")
            self.found[i].add(op["field"])
        elif kind == "add":
            set_(entry, op["field"], op["value"])
        elif kind == "time_parser":
            value, ok = self._get(i, entry, op["parse_from"])
            if not ok:
                raise OperatorError(f"no {op['parse_from']}")
            assert (op["layout_type"], op["layout"]) == ("epoch", "ns")
            entry.timestamp = int(value)
        elif kind == "severity_parser":
            value, ok = self._get(i, entry, op["parse_from"])
            if not ok:
                raise OperatorError(f"no {op['parse_from']}")
            assert op.get("preset") == "none"
            mapping = {str(v).lower(): ALIASES[alias] for alias, v in op["mapping"].items()}
            if isinstance(value, float) and value != int(value):
                raise OperatorError("a severity must be a whole number")
            text = str(int(value)) if isinstance(value, int | float) else str(value)
            entry.severity = mapping.get(text.lower(), 0)
            names = {n: a.upper() for a, n in ALIASES.items()}
            entry.severity_text = names.get(entry.severity, text) if op.get("overwrite_text") else text
        elif kind == "regex_parser":
            value, ok = self._get(i, entry, op["parse_from"])
            m = re.match(op["regex"], value) if ok and isinstance(value, str) else None
            if m is None:
                raise OperatorError("regex pattern does not match")
            set_(entry, op.get("parse_to", "attributes"), m.groupdict())
        elif kind == "trace_parser":
            decoded = {}
            for part in ("trace_id", "span_id", "trace_flags"):
                value, ok = self._get(i, entry, op[part]["parse_from"])
                decoded[part] = bytes.fromhex(str(value)) if ok else None  # Go: hex of fmt %v
            entry.trace_id, entry.span_id, entry.trace_flags = (
                decoded["trace_id"],
                decoded["span_id"],
                decoded["trace_flags"],
            )
        elif kind == "scope_name_parser":
            value, ok = self._get(i, entry, op["parse_from"])
            if not ok:
                raise OperatorError(f"no {op['parse_from']}")
            entry.scope_name = str(value)
        elif kind == "retain":
            body_fields = [f for f in op["fields"] if _parse(f)[0] == "body"]
            if body_fields:
                kept: dict[str, Any] = {}
                for f in body_fields:
                    value, ok = self._get(i, entry, f)
                    if ok:
                        kept[_parse(f)[1][-1]] = value
                entry.body = kept
            assert all(_parse(f)[0] == "body" for f in op["fields"])
        else:  # pragma: no cover - the documented-fields test names every type
            raise AssertionError(kind)
        return entry


# -- real files ------------------------------------------------------------------------------------


def write_sample(path: Path, mode: str) -> list[str]:
    """A file written by the package: records in and out of spans, every body kind, with and
    without timestamp and severity, attributes colliding with the format's keys, two scopes."""
    provider = LoggerProvider(resource=Resource.create({"service.name": "shop", "deployment.env": "test"}))
    provider.add_log_record_processor(LogxpyLogRecordProcessor(str(path), mode=mode))
    checkout = provider.get_logger("shop.checkout")
    payments = provider.get_logger("shop.payments", "2.0")
    tracer = TracerProvider().get_tracer("shop")
    with tracer.start_as_current_span("POST /checkout"):
        checkout.emit(
            body="order placed",
            severity_number=SeverityNumber.WARN,
            severity_text="WARNING",
            attributes={"order.id": 1042, "ratio": 0.5, "ok": True, "tags": ("a", "b")},
        )
        payments.emit(body={"event": "charged", "amount": 42, "nested": {"k": [1, 2]}})
        checkout.emit(body=[1, 2, 3], severity_number=SeverityNumber.ERROR2)
    checkout.emit(
        body="outside any span",
        severity_number=SeverityNumber.INFO,
        attributes={"msg": "an attribute called msg", "ts": 5, "at": "here", "_otel": "mine", "n": 7},
    )
    checkout.emit(body=None, attributes={"empty": ""})
    payments.emit(body="no severity", timestamp=1_795_722_644_041_077_123)
    provider.shutdown()
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    base = tmp_path_factory.mktemp("collector")
    out = write_sample(base / "tree.jsonl", "tree") + write_sample(base / "flat.jsonl", "flat")
    # A trace tid is the trace id, alone or with the writer's token (<trace id>~<token>):
    # add the form the writer did not use to the first trace record.
    for line in list(out):
        parsed = json.loads(line)
        trace, _, token = parsed["tid"].partition("~")
        if "at" not in parsed and re.fullmatch(r"[0-9a-f]{32}", trace):
            out.append(json.dumps({**parsed, "tid": trace if token else trace + "~w1"}))
            break
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _records(lines: list[str]) -> Iterator[tuple[str, Any]]:
    for line in lines:
        record = decode_line(json.loads(line))
        if record is not None:
            yield line, record


# -- the tests -------------------------------------------------------------------------------------


def test_the_configuration_parses_with_documented_operators_and_fields() -> None:
    config = collector_config()
    rec = receiver()
    assert set(rec) <= RECEIVER_FIELDS, set(rec) - RECEIVER_FIELDS
    assert rec["compression"] in ("auto", "gzip")
    assert rec["start_at"] == "beginning"
    assert rec["storage"] in config["extensions"]
    assert any(p.endswith(".jsonl") for p in rec["include"])
    assert any(p.endswith(".jsonl.gz") for p in rec["include"])
    for op in rec["operators"]:
        assert op["type"] in DOCUMENTED_FIELDS, op
        assert set(op) - _COMMON <= DOCUMENTED_FIELDS[op["type"]], op
        assert op.get("on_error", "send") in ("send", "drop", "send_quiet", "drop_quiet")
    for name in ("trace", "info", "warn", "error", "fatal4"):
        severity = next(op for op in rec["operators"] if op["type"] == "severity_parser")
        assert severity["mapping"][name] == ALIASES[name]


def test_the_include_patterns_take_live_files_and_backups_not_checkpoints() -> None:
    from fnmatch import fnmatch

    patterns = [Path(p).name for p in receiver()["include"]]
    names = {
        "app.jsonl": True,
        "app.20261126T224005.123456Z.jsonl": True,
        "app.20261126T224005.123456Z.jsonl.gz": True,
        "app.jsonl.replay.json": False,
        "app.jsonl.replay.dead": False,
        "app.20261126T224005.123456Z.jsonl.replay.json": False,
    }
    for name, taken in names.items():
        assert any(fnmatch(name, p) for p in patterns) == taken, name


def test_every_field_path_is_found_in_lines_the_package_writes(lines: list[str]) -> None:
    model = Model(receiver()["operators"])
    for line in lines:
        model.run(line)
    assert not model.errors, model.errors[:10]
    missing = {
        f"{i} {model.operators[i]['type']}": sorted(model.named[i] - model.found[i])
        for i in model.named
        if model.named[i] - model.found[i]
    }
    assert not missing, f"field paths never found in the written lines: {missing}"


def test_records_come_out_as_the_reader_rebuilds_them_but_for_the_documented_differences(
    lines: list[str],
) -> None:
    model = Model(receiver()["operators"])
    structure = [line for line in lines if "at" in json.loads(line)]
    assert structure and all(model.run(line) is None for line in structure), "structure lines are dropped"
    compared = 0
    for line, readable in _records(lines):
        entry = model.run(line)
        assert entry is not None, line
        rec = readable.log_record
        expected_time = rec.timestamp if rec.timestamp is not None else rec.observed_timestamp
        assert entry.timestamp == expected_time, line
        number = rec.severity_number.value if rec.severity_number is not None else 0
        assert entry.severity == number, line
        if number:
            assert entry.severity_text == SeverityNumber(number).name, line
        assert int.from_bytes(entry.trace_id or b"") == rec.trace_id, line
        assert int.from_bytes(entry.span_id or b"") == rec.span_id, line
        assert int.from_bytes(entry.trace_flags or b"") == int(rec.trace_flags or 0) & 3, line
        assert entry.scope_name == readable.instrumentation_scope.name, line
        assert entry.resource == dict(readable.resource.attributes), line
        assert _plain(entry.attributes) == _plain(dict(rec.attributes)), line
        assert _plain(entry.body) == _plain(rec.body if rec.body is not None else ""), line
        compared += 1
    assert not model.errors, model.errors[:10]
    assert compared == 13, "the sample's records, tree and flat, and the one with a writer token"


def test_the_sample_covers_what_the_configuration_handles(lines: list[str]) -> None:
    """Guard for the test above: the written lines hold each case the operators branch on."""
    parsed = [json.loads(line) for line in lines]
    records = [p for p in parsed if "at" not in p]
    otel = [r["_otel"] for r in records]
    assert any(re.fullmatch(r"[0-9a-f]{32}", r["tid"]) for r in records)
    assert any(re.fullmatch(r"[0-9a-f]{32}~.+", r["tid"]) for r in records)
    assert any("trace_id" in o for o in otel), "flat mode: _otel.trace_id"
    assert any("time_unix_nano" not in o for o in otel)
    assert any("severity_number" not in o for o in otel)
    assert any(o.get("trace_flags") in (1, 3) for o in otel)
    assert any(isinstance(o.get("body"), dict) for o in otel)
    assert any(isinstance(o.get("body"), list) for o in otel)
    assert any("body" in o and o["body"] is None for o in otel)
    assert any(set(o.get("attributes", {})) >= {"msg", "ts", "at", "_otel"} for o in otel)
