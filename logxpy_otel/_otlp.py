"""What the OTLP encoder takes: the records of a batch it refuses, found without sending.

The SDK accepts records the OTLP encoder cannot carry (an int beyond 64 bits, say); an
OTLP exporter then fails the whole batch, as it would for a collector that is down.
Replay and the fallback both tell the two apart here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord

__all__ = ["encoded_parts", "otlp_encoder"]

Encoder = Callable[[Sequence[ReadableLogRecord]], Any]


def otlp_encoder() -> Encoder | None:
    """The OTLP exporters' encoder of log records; None where it is not installed."""
    try:
        from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    except ImportError:  # pragma: no cover - the otlp extra is not installed: no check
        return None
    return encode_logs


def encoded_parts(
    records: Sequence[ReadableLogRecord], encode: Encoder, limit: int
) -> tuple[dict[int, str], list[list[int]]]:
    """The records the OTLP encoder refuses or that are larger than ``limit`` alone (by
    index, with the reason), and the others in parts (runs of indexes, in order) that each
    encode within ``limit``: the batch is encoded locally, and halved only where it fails
    or is too large. Nothing is sent."""
    refused: dict[int, str] = {}

    def split(indexes: list[int]) -> list[list[int]]:
        try:
            size = encode([records[i] for i in indexes]).ByteSize()
        except Exception as exc:  # noqa: BLE001 - some record in it is refused: find which
            if len(indexes) == 1:
                refused[indexes[0]] = f"the OTLP encoder cannot take this record: {type(exc).__name__}: {exc}"
                return []
        else:
            if size <= limit:
                return [indexes]
            if len(indexes) == 1:
                refused[indexes[0]] = (
                    f"larger than a collector takes ({size} bytes encoded, more than {limit}; "
                    "see --max-request-bytes)"
                )
                return []
        half = len(indexes) // 2
        return split(indexes[:half]) + split(indexes[half:])

    parts = split(list(range(len(records)))) if records else []
    return refused, parts
