"""A tiny in-process OTLP/HTTP trace receiver for tests and benchmarks (not a trace backend: no UI, no storage).

    with OtlpCollector() as collector:            # listens on a free loopback port
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
        ...                                        # run services with that environment
        spans = collector.wait_for(lambda spans: ..., timeout=10)

It accepts what the OpenTelemetry OTLP/HTTP exporter sends to /v1/traces (protobuf, optionally gzip) and keeps every
span as a `ReceivedSpan` (the most recent `keep` of them; decoding is stack/otlp.py's, shared with the built-in trace
store). `forward_to` (settable while it runs) also posts each
payload unchanged to another OTLP/HTTP traces URL (a real backend such as Phoenix), so one run can be checked here
and looked at there.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from stack.otlp import EXPORT_REPLY, PROTOBUF, TRACES_PATH, OtlpDecodeError, ReceivedSpan, decode, unpack

__all__ = ["OtlpCollector", "ReceivedSpan"]
HOST = "127.0.0.1"


class OtlpCollector:
    def __init__(self, port: int = 0, decode_spans: bool = True, forward_to: str | None = None,
                 keep: int = 50_000) -> None:
        self.decode_spans = decode_spans
        self.forward_to = forward_to
        self.spans: deque[ReceivedSpan] = deque(maxlen=keep)
        self.payloads = 0
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.rstrip("/") != TRACES_PATH:
                    self.send_error(404, f"only {TRACES_PATH} is served")
                    return
                try:
                    collector._receive(unpack(body, self.headers.get("Content-Encoding")))
                except OtlpDecodeError as error:
                    self.send_error(400, str(error))
                    return
                reply = EXPORT_REPLY
                self.send_response(200)
                self.send_header("Content-Type", PROTOBUF)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-collector", daemon=True)

    @property
    def url(self) -> str:
        """The base URL to give OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/traces)."""
        return f"http://{HOST}:{self._server.server_address[1]}"

    def _receive(self, body: bytes) -> None:
        spans = decode(body) if self.decode_spans else []
        with self._lock:
            self.payloads += 1
            self.spans.extend(spans)
        target = self.forward_to
        if target:
            try:
                httpx.post(target, content=body, headers={"Content-Type": PROTOBUF}, timeout=5)
            except httpx.HTTPError:
                pass

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [span for span in self.snapshot() if span.trace_id == trace_id]

    def wait_for(self, condition: Callable[[list[ReceivedSpan]], bool], timeout: float = 10.0,
                 interval: float = 0.1) -> list[ReceivedSpan]:
        """The spans received so far once `condition(spans)` holds; raises TimeoutError (with what came) if not."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.snapshot()
            if condition(spans):
                return spans
            if time.monotonic() >= deadline:
                names = sorted({f"{s.service}:{s.name}" for s in spans})[:20]
                raise TimeoutError(f"no matching spans after {timeout:.0f}s; received {len(spans)}: {names}")
            time.sleep(interval)

    def start(self) -> "OtlpCollector":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "OtlpCollector":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
