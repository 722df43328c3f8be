"""The ``logxpy-otel`` command: ``logxpy-otel replay PATH...`` sends log files to a collector;
``logxpy-otel view PATH...`` shows them as trees."""

from __future__ import annotations

import argparse
import re
import sys
import threading
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import orjson

from ._info import VersionAction
from ._info import add_parser as add_info_parser
from ._info import run as run_info
from ._render import safe
from .replay import (
    MAX_REQUEST_BYTES,
    ReplayError,
    ReplaySummary,
    UsageError,
    install_stop_handlers,
    progress_stream,
    replay_files,
)
from .viewer import add_parser as add_view_parser
from .viewer import run as run_view

__all__ = ["main"]

_DESCRIPTION = "logxpy-otel: tools for the files of the logxpy-otel log exporter."

_REPLAY_DESCRIPTION = """\
Send the records of logxpy-otel files to an OTLP collector, resuming where the last
run stopped.

Each argument is a log file (live, rotated backup, or gzip-compressed backup: gzip is
recognised by content), a directory (every rotated family in it: backups named
NAME.<time>Z.SUFFIX[.gz], their live file, and every *.jsonl file), or a quoted glob
such as 'logs/app*'. Each family is sent oldest backup first, its live file last.

A checkpoint beside each file (FILE.replay.json; a compressed backup X.gz shares the
one of X) records what was delivered, batch by batch. A record OTLP cannot carry is
set aside, with its file and byte offset, in FILE.replay.dead (JSON lines), and does
not stop the others. A last line still being written is left for the next run."""

_REPLAY_EPILOG = """\
exit status:
  0  every record line of every file was delivered
  1  some were not: refused by the collector (or unreachable), set aside,
     unreadable lines, or the run was interrupted; run again to resume
  2  usage or set-up error (a path that names no file, a file that cannot be
     read, a checkpoint that cannot be written)"""


def _headers(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` (as ``OTEL_EXPORTER_OTLP_HEADERS``) into a dict."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"header {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _at_least(least: int, unit: str = "") -> Callable[[str], int]:
    """An argument type: an integer of at least ``least``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(f"must be an integer >= {least}{unit}; got {text!r}")
        return value

    return parse


_positive = _at_least(1)
_request_bytes = _at_least(1024, " (bytes)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.0 < value <= 86_400.0:  # (also NaN: no comparison holds)
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, at most 86400; got {text!r}")
    return value


_HOST_PORT = re.compile(r"[A-Za-z0-9.\-]+:[0-9]{1,5}")


def _endpoint(text: str) -> str:
    """A collector address: an http(s) URL with a host, or gRPC's ``host:port``."""
    text = text.strip()
    try:
        parts = urlsplit(text)
        port = parts.port  # (a bad port raises ValueError)
    except ValueError:
        parts, port = None, None
    url = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
    if not (url or _HOST_PORT.fullmatch(text)) or (port is not None and not 0 < port < 65536):
        raise argparse.ArgumentTypeError(f"must be an http(s) URL with a host, or host:port; got {text!r}")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logxpy-otel", description=_DESCRIPTION)
    parser.add_argument("--version", action=VersionAction)
    commands = parser.add_subparsers(dest="command", required=True)
    replay = commands.add_parser(
        "replay",
        help="send the records of logxpy-otel files to an OTLP collector, resuming where it stopped",
        description=_REPLAY_DESCRIPTION,
        epilog=_REPLAY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("paths", nargs="+", metavar="FILE|DIR|GLOB")
    replay.add_argument(
        "--endpoint", type=_endpoint, help="collector URL (default: OTEL_EXPORTER_OTLP_[LOGS_]ENDPOINT)"
    )
    replay.add_argument(
        "--protocol",
        choices=("http/protobuf", "grpc"),
        help="default: OTEL_EXPORTER_OTLP_[LOGS_]PROTOCOL, else http/protobuf",
    )
    replay.add_argument("--headers", type=_headers, help="k=v,k2=v2 (default: OTEL_EXPORTER_OTLP_HEADERS)")
    replay.add_argument("--timeout", type=_seconds, help="seconds per export (default: the exporter's)")
    replay.add_argument("--batch-size", type=_positive, default=512, help="records per export (default 512)")
    replay.add_argument(
        "--max-request-bytes",
        type=_request_bytes,
        default=MAX_REQUEST_BYTES,
        help="largest export request, encoded: a larger batch goes in parts, a larger record is set "
        f"aside (default {MAX_REQUEST_BYTES}: what a collector takes by default)",
    )
    replay.add_argument(
        "--dry-run",
        action="store_true",
        help="read, check and count; send nothing, write no checkpoint and no dead letter",
    )
    replay.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_view_parser(commands)
    add_info_parser(commands)
    return parser


def _report(summary: ReplaySummary, dry_run: bool, as_json: bool, status: int) -> None:
    for warning in summary.warnings:
        print(f"logxpy-otel: warning: {safe(warning)}", file=sys.stderr)
    for problem in summary.problems:
        print(f"logxpy-otel: {safe(problem)}", file=sys.stderr)
    if as_json:
        print(orjson.dumps({**summary.as_dict(), "dry_run": dry_run, "exit_status": status}).decode())
        return
    verb = "would send" if dry_run else "sent"
    line = f"{verb} {summary.sent}, skipped {summary.skipped}, failed {summary.failed}"
    reasons = [
        (summary.refused, "not accepted by the collector"),
        (summary.export_errors, "in exports that raised"),
        (summary.set_aside, "set aside"),
        (summary.unreadable, "unreadable"),
        (summary.pending, "still being written, left for the next run"),
        (summary.converted, "sent in a nearer OTLP form"),
    ]
    details = [f"{count} {what}" for count, what in reasons if count]
    if details:
        line += f" ({'; '.join(details)})"
    if summary.interrupted:
        line += " (interrupted: run again to resume)"
    print(line)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command. Exit status: 0 every record delivered, 1 some not, 2 usage error."""
    args = _parser().parse_args(argv)
    if args.command == "view":
        return run_view(args)
    if args.command == "info":
        return run_info(args)
    from .fallback import otlp_exporter

    exporter = None
    if not args.dry_run:
        try:
            exporter = otlp_exporter(args.protocol, args.endpoint, args.headers, args.timeout)
        except (ImportError, ValueError) as exc:
            print(f"logxpy-otel: {safe(str(exc))}", file=sys.stderr)
            return 2
    stop = threading.Event()
    undo = install_stop_handlers(stop)
    try:
        summary = replay_files(
            args.paths,
            exporter,
            batch_size=args.batch_size,
            progress=progress_stream(),
            stop=stop,
            max_request_bytes=args.max_request_bytes,
        )
    except (UsageError, ReplayError) as exc:
        print(f"logxpy-otel: {safe(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # pragma: no cover - replay_files names the file; this is a last resort
        print(f"logxpy-otel: {safe(str(exc))}", file=sys.stderr)
        return 2
    finally:
        undo()
        if exporter is not None:
            exporter.shutdown()  # type: ignore[no-untyped-call]
    status = 0 if summary.ok else 1
    _report(summary, args.dry_run, args.json, status)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
