"""HTTP surface of the built-in trace store: OTLP/HTTP in (POST /v1/traces, protobuf, as an OpenTelemetry Collector
receives it), JSON out (/api/traces, /api/traces/{trace_id}), /health and /metrics."""

from __future__ import annotations

import json
import re

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Gauge

from stack.otlp import EXPORT_REPLY, PROTOBUF, TRACES_PATH, OtlpDecodeError, decode, unpack
from stack.tracestore.store import MAX_SPANS, TraceStore
from stack.web import add_metrics_route, install_error_handlers, problem

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_LISTED_TRACES = 1000
JSON_HINT = ("OTLP/JSON is not accepted here; export protobuf (the Python SDK's OTLP/HTTP exporter does by default; "
             "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf)")


def create_app(capacity: int = MAX_SPANS) -> FastAPI:
    store = TraceStore(capacity)
    registry = CollectorRegistry()
    received = Counter("tracestore_spans_received", "Spans received over OTLP/HTTP and stored.", registry=registry)
    evicted = Counter("tracestore_spans_evicted", "Spans dropped to make room for newer ones (oldest first).",
                      registry=registry)
    rejected = Counter("tracestore_payloads_rejected", "OTLP/HTTP payloads refused, by reason.", ["reason"],
                       registry=registry)
    for reason in ("content_type", "invalid"):
        rejected.labels(reason)
    stored = Gauge("tracestore_spans_stored", "Spans held in memory now.", registry=registry)
    Gauge("tracestore_capacity_spans", "Spans the store holds at most.", registry=registry).set(capacity)
    stored.set_function(lambda: len(store))

    app = FastAPI(title="Trace store", version="1.0")
    install_error_handlers(app, "tracestore", text_bodies=False)
    add_metrics_route(app, registry)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "spans": len(store), "capacity": store.capacity}

    @app.post(TRACES_PATH)
    async def receive(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != PROTOBUF:
            rejected.labels("content_type").inc()
            seen = content_type or "none"
            raise HTTPException(415, problem(415, f"Content-Type is {seen}, expected {PROTOBUF}. {JSON_HINT}"))
        try:
            spans = decode(unpack(await request.body(), request.headers.get("content-encoding")))
        except OtlpDecodeError as error:
            rejected.labels("invalid").inc()
            raise HTTPException(400, problem(400, f"{error}; send what an OpenTelemetry OTLP/HTTP exporter sends "
                                                  f"to {TRACES_PATH}")) from None
        evicted_before = store.evicted
        received.inc(store.add(spans))
        evicted.inc(store.evicted - evicted_before)
        return Response(EXPORT_REPLY, media_type=PROTOBUF)

    @app.get("/api/traces")
    async def recent(limit: int = Query(20, ge=1, le=MAX_LISTED_TRACES),
                     service: str | None = Query(None, max_length=200)) -> dict:
        traces = store.recent(limit, service)
        return {"traces": [summary.as_json() for summary in traces], "stored_spans": len(store),
                "stored_traces": store.trace_count, "capacity_spans": store.capacity}

    @app.get("/api/traces/{trace_id}")
    async def one_trace(trace_id: str) -> Response:
        wanted = trace_id.strip().lower()
        if not TRACE_ID.match(wanted):
            raise HTTPException(400, problem(400, f"{trace_id[:80]!r} is not a trace id: give the 32 hex digits of "
                                                  "a W3C trace id (the trace_id of a gateway log line or exemplar)"))
        spans = store.trace(wanted)
        if not spans:
            raise HTTPException(404, problem(404, f"no span of trace {wanted} is stored. The store keeps the most "
                                                  f"recent {store.capacity} spans of the stack's services; spans "
                                                  "arrive about a second after the request ends"))
        head = json.dumps({"trace_id": wanted, "span_count": len(spans),
                           "services": sorted({span.service for span in spans})})
        return Response(head[:-1].encode() + b',"spans":[' + b",".join(span.json_bytes for span in spans) + b"]}",
                        media_type="application/json")

    return app
