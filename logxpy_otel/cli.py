"""``logxpy-otel``: the command line. ``logxpy-otel replay FILE...`` sends files to a collector."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence

from .replay import install_stop_handlers, progress_stream, replay_files

__all__ = ["main"]


def _headers(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` (as ``OTEL_EXPORTER_OTLP_HEADERS``) into a dict."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"header {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logxpy-otel", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    replay = commands.add_parser(
        "replay",
        help="send the records of logxpy-otel files to an OTLP collector, resuming where it stopped",
        description="Send the records of logxpy-otel files to an OTLP collector. A checkpoint beside "
        "each file (FILE.replay.json) makes an interrupted or failed replay resume where it stopped.",
    )
    replay.add_argument("files", nargs="+", metavar="FILE")
    replay.add_argument("--endpoint", help="collector URL (default: OTEL_EXPORTER_OTLP_[LOGS_]ENDPOINT)")
    replay.add_argument(
        "--protocol",
        choices=("http/protobuf", "grpc"),
        help="default: OTEL_EXPORTER_OTLP_[LOGS_]PROTOCOL, else http/protobuf",
    )
    replay.add_argument("--headers", type=_headers, help="k=v,k2=v2 (default: OTEL_EXPORTER_OTLP_HEADERS)")
    replay.add_argument("--timeout", type=float, help="seconds per export (default: the exporter's)")
    replay.add_argument("--batch-size", type=_positive, default=512, help="records per export (default 512)")
    replay.add_argument(
        "--dry-run", action="store_true", help="read and count; send nothing, write no checkpoint"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; the exit status is 0 only when every record was delivered."""
    args = _parser().parse_args(argv)
    from .fallback import otlp_exporter

    exporter = None
    if not args.dry_run:
        try:
            exporter = otlp_exporter(args.protocol, args.endpoint, args.headers, args.timeout)
        except (ImportError, ValueError) as exc:
            print(f"logxpy-otel: {exc}", file=sys.stderr)
            return 2
    stop = threading.Event()
    undo = install_stop_handlers(stop)
    try:
        summary = replay_files(
            args.files, exporter, batch_size=args.batch_size, progress=progress_stream(), stop=stop
        )
    except OSError as exc:
        print(f"logxpy-otel: {exc}", file=sys.stderr)
        return 2
    finally:
        undo()
        if exporter is not None:
            exporter.shutdown()  # type: ignore[no-untyped-call]
    for problem in summary.problems:
        print(f"logxpy-otel: {problem}", file=sys.stderr)
    verb = "would send" if args.dry_run else "sent"
    state = " (interrupted: run again to resume)" if summary.interrupted else ""
    print(f"{verb} {summary.sent}, skipped {summary.skipped}, failed {summary.failed}{state}")
    return 0 if summary.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
