"""Real OTLP log receivers for the tests, on 127.0.0.1: HTTP (protobuf) and gRPC.

Each keeps every record it receives, decoded back to plain Python values, and can be
stopped (the port then refuses connections: a collector that is down) and started again
on the same port.
"""

from __future__ import annotations

import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2


def any_value(value: common_pb2.AnyValue) -> Any:
    """An OTLP AnyValue as the Python value the SDK would hold (arrays as tuples)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _records(request: logs_service_pb2.ExportLogsServiceRequest) -> list[dict[str, Any]]:
    out = []
    for resource_logs in request.resource_logs:
        resource = {kv.key: any_value(kv.value) for kv in resource_logs.resource.attributes}
        for scope_logs in resource_logs.scope_logs:
            for r in scope_logs.log_records:
                out.append(
                    {
                        "body": any_value(r.body) if r.HasField("body") else None,
                        "attributes": {kv.key: any_value(kv.value) for kv in r.attributes},
                        "severity_number": r.severity_number,
                        "severity_text": r.severity_text,
                        "time_unix_nano": r.time_unix_nano,
                        "observed_time_unix_nano": r.observed_time_unix_nano,
                        "trace_id": r.trace_id.hex(),
                        "span_id": r.span_id.hex(),
                        "flags": r.flags,
                        "event_name": r.event_name,
                        "scope": scope_logs.scope.name,
                        "resource": resource,
                    }
                )
    return out


class _Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        self.requests = 0

    def add(self, request: logs_service_pb2.ExportLogsServiceRequest) -> None:
        decoded = _records(request)
        with self.lock:
            self.records.extend(decoded)
            self.requests += 1

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.records)


class OtlpHttpHandler(BaseHTTPRequestHandler):
    """A quiet handler of OTLP/HTTP log exports, on HTTP/1.0 (no keep-alive: stopping its
    server really takes the collector down); its ``do_POST`` reads with :meth:`read_body`
    and answers with :meth:`accept`."""

    protocol_version = "HTTP/1.0"

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def accept(self) -> None:
        """Answer 200 with an empty ``ExportLogsServiceResponse``: all accepted."""
        reply = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


class HttpReceiver(_Store):
    """``POST /v1/logs`` with a protobuf ``ExportLogsServiceRequest``."""

    def __init__(self) -> None:
        super().__init__()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/logs"

    def start(self) -> None:
        store = self

        class Handler(OtlpHttpHandler):
            def do_POST(self) -> None:
                request = logs_service_pb2.ExportLogsServiceRequest()
                request.ParseFromString(self.read_body())
                store.add(request)
                self.accept()

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="otlp-http", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class GrpcReceiver(_Store):
    """The OTLP gRPC ``LogsService``."""

    def __init__(self) -> None:
        super().__init__()
        self.port = 0
        self._server: grpc.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        store = self

        class Servicer(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                store.add(request)
                return logs_service_pb2.ExportLogsServiceResponse()

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Servicer(), server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            # In-flight exports finish and are answered: a clean shutdown (one cut off after
            # it stored a batch would have the client send that batch to the file as well:
            # at-least-once, as with any collector; a loaded machine needed more than 1 s).
            self._server.stop(grace=5.0).wait(10)
            self._server = None
