"""The built-in trace store (stack/tracestore): what the OpenTelemetry SDK exports over OTLP/HTTP is stored and
answered by trace id; it keeps a bounded number of spans; bad input gets a clear 4xx, never a 500. The live tests use
the stack `make up` started: a gateway request's trace (gateway and provider spans) shows up in the store, and the
SDK's own OTLP exporter delivers to it."""

from __future__ import annotations

import gzip
import secrets

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from stack import catalog, promapi, topology
from stack.otlp import PROTOBUF
from stack.traffic import chat_body
from stack.tracestore.app import create_app
from stack.tracestore.store import MAX_SPANS
from tests import live
from tests.conftest import LiveStack

PROTOBUF_HEADERS = {"Content-Type": PROTOBUF}


def _exported(traces: int, spans_per_trace: int = 3, service: str = "gateway") -> tuple[bytes, list[str]]:
    """The protobuf body the SDK's OTLP exporter would send for `traces` traces, and their trace ids."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    trace_ids = []
    for n in range(traces):
        with tracer.start_as_current_span(f"POST /request/{n}", kind=SpanKind.SERVER) as root:
            trace_ids.append(format(root.get_span_context().trace_id, "032x"))
            for step in range(spans_per_trace - 1):
                with tracer.start_as_current_span(f"step {step}", attributes={"llm.step": step,
                                                                              "gen_ai.usage.input_tokens": 12}) as s:
                    s.add_event("llm.first_token", {"gen_ai.response.time_to_first_chunk": 0.25})
                    if step == 1:
                        s.set_status(Status(StatusCode.ERROR, "provider answered 503"))
    return encode_spans(memory.get_finished_spans()).SerializeToString(), trace_ids


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(capacity=30))


def test_exported_spans_are_answered_by_trace_id_with_their_tree(client: TestClient) -> None:
    body, (trace_id,) = _exported(1, spans_per_trace=3)
    reply = client.post("/v1/traces", content=gzip.compress(body),
                        headers={**PROTOBUF_HEADERS, "Content-Encoding": "gzip"})
    assert reply.status_code == 200 and reply.headers["content-type"] == PROTOBUF
    answer = client.get(f"/api/traces/{trace_id.upper()}").json()
    assert (answer["trace_id"], answer["span_count"], answer["services"]) == (trace_id, 3, ["gateway"])
    root, first, second = answer["spans"]
    assert (root["name"], root["kind"], root["parent_id"]) == ("POST /request/0", "SERVER", None)
    assert first["parent_id"] == second["parent_id"] == root["span_id"]
    assert first["attributes"] == {"llm.step": 0, "gen_ai.usage.input_tokens": 12}
    assert first["events"][0]["name"] == "llm.first_token"
    assert first["events"][0]["attributes"] == {"gen_ai.response.time_to_first_chunk": 0.25}
    assert (second["status"], second["status_message"]) == ("ERROR", "provider answered 503")
    listed = client.get("/api/traces").json()["traces"]
    assert [(t["trace_id"], t["root"], t["span_count"], t["errors"]) for t in listed] == [
        (trace_id, "gateway: POST /request/0", 3, 1)]


def test_the_store_keeps_the_most_recent_spans_only(client: TestClient) -> None:
    body, trace_ids = _exported(12, spans_per_trace=3)  # 36 spans into room for 30: the first two traces go
    assert client.post("/v1/traces", content=body, headers=PROTOBUF_HEADERS).status_code == 200
    assert client.get(f"/api/traces/{trace_ids[0]}").status_code == 404
    assert client.get(f"/api/traces/{trace_ids[-1]}").json()["span_count"] == 3
    listed = client.get("/api/traces", params={"limit": 3}).json()
    assert [t["trace_id"] for t in listed["traces"]] == trace_ids[::-1][:3], "most recent first"
    assert (listed["stored_spans"], listed["stored_traces"], listed["capacity_spans"]) == (30, 10, 30)
    metrics = client.get("/metrics").text
    assert "tracestore_spans_received_total 36.0" in metrics and "tracestore_spans_evicted_total 6.0" in metrics
    assert "tracestore_spans_stored 30.0" in metrics


def test_recent_traces_can_be_narrowed_to_one_service(client: TestClient) -> None:
    gateway_body, gateway_ids = _exported(2, service="gateway")
    provider_body, provider_ids = _exported(1, service="llmsim")
    for body in (gateway_body, provider_body):
        client.post("/v1/traces", content=body, headers=PROTOBUF_HEADERS)
    listed = client.get("/api/traces", params={"service": "gateway"}).json()["traces"]
    assert {t["trace_id"] for t in listed} == set(gateway_ids)
    assert client.get("/api/traces", params={"service": "nobody"}).json()["traces"] == []


@pytest.mark.parametrize(("headers", "body", "status", "says"), [
    ({"Content-Type": "application/json"}, b'{"resourceSpans": []}', 415, "OTLP/JSON is not accepted"),
    ({}, b"\x0a\x02", 415, "expected application/x-protobuf"),
    (PROTOBUF_HEADERS, b"\xff\xff\xff\xff not protobuf", 400, "not an OTLP ExportTraceServiceRequest"),
    ({**PROTOBUF_HEADERS, "Content-Encoding": "gzip"}, b"not gzip", 400, "not valid gzip"),
    ({**PROTOBUF_HEADERS, "Content-Encoding": "br"}, b"x", 400, "'br' is not supported"),
])
def test_bad_exports_get_a_clear_4xx(client: TestClient, headers: dict, body: bytes, status: int, says: str) -> None:
    reply = client.post("/v1/traces", content=body, headers=headers)
    assert reply.status_code == status, reply.text
    assert says in reply.json()["error"]["message"]
    assert client.get("/api/traces").json()["stored_spans"] == 0


def test_an_export_over_the_body_limit_is_413(client: TestClient) -> None:
    limit = catalog.load().max_body_bytes["tracestore"]
    reply = client.post("/v1/traces", content=b"\x00" * (limit + 1), headers=PROTOBUF_HEADERS)
    assert reply.status_code == 413 and f"the limit is {limit} bytes" in reply.json()["error"]["message"]


@pytest.mark.parametrize(("path", "status", "says"), [
    ("/api/traces/not-a-trace", 400, "is not a trace id: give the 32 hex digits"),
    ("/api/traces/" + "0" * 31, 400, "is not a trace id"),
    ("/api/traces/" + "ab" * 16, 404, f"no span of trace {'ab' * 16} is stored"),
    ("/api/traces?limit=0", 422, "limit"),
    ("/api/traces?limit=many", 422, "limit"),
])
def test_bad_queries_get_a_clear_4xx(client: TestClient, path: str, status: int, says: str) -> None:
    reply = client.get(path)
    assert reply.status_code == status, reply.text
    assert says in reply.json()["error"]["message"]


def test_the_capacity_is_stated_once_and_reported() -> None:
    with TestClient(create_app()) as default:
        assert default.get("/health").json() == {"status": "ok", "spans": 0, "capacity": MAX_SPANS}


# --- live: the stack `make up` started ---------------------------------------------------------------------------


def _store() -> str:
    return topology.load().services["tracestore"].url


@pytest.mark.stack
def test_a_gateway_request_trace_is_answered_by_the_store(stack: LiveStack) -> None:
    trace_id = secrets.token_hex(16)
    headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}  # the gateway joins the caller's trace
    reply = httpx.post(f"{live.url('gateway')}/v1/chat/completions", json=chat_body("sim-fast", "u-store"),
                       headers=headers, timeout=30)
    assert reply.status_code == 200, reply.text

    def both_services() -> dict | None:
        answer = httpx.get(f"{_store()}/api/traces/{trace_id}", timeout=5)
        return answer.json() if answer.status_code == 200 and {"gateway", "llmsim"} <= set(
            answer.json()["services"]) else None

    trace = live.eventually(both_services, 15, f"trace {trace_id} with gateway and llmsim spans in the store")
    chats = {s["span_id"] for s in trace["spans"] if s["service"] == "gateway" and s["name"].startswith("chat ")}
    provider = [s for s in trace["spans"] if s["service"] == "llmsim" and s["kind"] == "SERVER"]
    assert chats and provider and all(s["parent_id"] in chats for s in provider), trace["spans"]
    received = 'tracestore_spans_received_total{job="tracestore"}'
    live.eventually(lambda: (promapi.scalar(received) or 0) >= trace["span_count"], 15,
                    "Prometheus to scrape the store's span count")


@pytest.mark.stack
def test_the_sdk_exporter_delivers_to_the_live_store(stack: LiveStack) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-test"}))
    exporter = OTLPSpanExporter(endpoint=f"{_store()}/v1/traces", timeout=5)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("sent straight to the store") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    answer = httpx.get(f"{_store()}/api/traces/{trace_id}", timeout=5).json()
    assert [(s["service"], s["name"]) for s in answer["spans"]] == [("sdk-test", "sent straight to the store")]
    recent = httpx.get(f"{_store()}/api/traces", params={"service": "sdk-test", "limit": 1}, timeout=5).json()
    assert recent["traces"][0]["trace_id"] == trace_id
