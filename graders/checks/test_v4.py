"""Stack check for lab V4: the trace of the exercise 3 slow request reached the trace backend (Phoenix, started by
`make up TRACES=1`) with the spans of both services, the provider's joined under the gateway's provider-call spans.

The submission folder is nbgrader's autograded copy, where the notebook has just been re-run: its exercise 3 batch
cell wrote the slow request's trace id (from the gateway's log, not from the student's code) to student_v4_trace.json.
Without a trace backend this check scores 0 and says how to start one; nothing else in the lab needs it."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from graders.v4.traces import TRACE_FILE
from stack import topology, tracing

WAIT_SECONDS = 20.0


def _backend() -> topology.Service:
    return topology.load()["phoenix"]


def _backend_up(service: topology.Service) -> bool:
    try:
        return httpx.get(service.url + service.health, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def slow_trace(notebook_artifact: Callable[[str, str], object]) -> dict:
    trace = notebook_artifact(TRACE_FILE, "the exercise 3 batch cell did not run (it needs the stack: `make up`)")
    if not isinstance(trace, dict):
        pytest.fail(f"{TRACE_FILE} should hold one JSON object with request_id and trace_id: re-run the exercise 3 "
                    "batch cell", pytrace=False)
    return trace


def _spans(service: topology.Service, trace_id: str) -> list[dict]:
    response = httpx.get(f"{service.url}/v1/projects/{tracing.PHOENIX_PROJECT}/spans", timeout=10,
                         params={"trace_id": trace_id, "limit": 1000})
    if response.status_code == 404:  # the project appears with its first span
        return []
    response.raise_for_status()
    return response.json().get("data") or []


@pytest.mark.points(2)
def test_the_slow_request_trace_reached_the_backend_with_both_services(slow_trace: dict) -> None:
    """ex3 trace backend: the slow request's trace holds gateway and llmsim spans"""
    service = _backend()
    if not _backend_up(service):
        pytest.fail(f"no trace backend answers at {service.url} (Phoenix): this check needs one. Start it with "
                    "`make up TRACES=1` (installs Arize Phoenix into .venv-traces the first time; the stack's services "
                    "then send their spans to it) and run `make grade LAB=v4` again", pytrace=False)
    trace_id = slow_trace["trace_id"]
    deadline = time.monotonic() + WAIT_SECONDS
    spans: list[dict] = []
    while time.monotonic() < deadline:
        spans = _spans(service, trace_id)
        services = {s.get("attributes", {}).get("service.name") for s in spans}
        if {"gateway", "llmsim"} <= services and len(spans) >= 14:
            break
        time.sleep(0.5)
    services = {s.get("attributes", {}).get("service.name") for s in spans}
    assert spans, (f"Phoenix at {service.url} has no span of trace {trace_id} after {WAIT_SECONDS:.0f}s. Hint: was the "
                   "stack started with `make up TRACES=1` (a stack started before Phoenix sends its spans nowhere; "
                   "`make up TRACES=1` restarts it) and is OTEL_EXPORTER_OTLP_ENDPOINT unset in your shell?")
    assert {"gateway", "llmsim"} <= services, (
        f"the trace in Phoenix has spans of {sorted(s for s in services if s)} only: both the gateway and the "
        "provider (llmsim) must send theirs")
    chats = {s["context"]["span_id"] for s in spans if str(s.get("name", "")).startswith("chat ")}
    provider = [s for s in spans if s.get("attributes", {}).get("service.name") == "llmsim"
                and s.get("name") == "POST /v1/chat/completions"]
    orphans = [s for s in provider if s.get("parent_id") not in chats]
    assert provider and not orphans, (
        f"{len(orphans)} of the provider's {len(provider)} request spans do not hang under a gateway chat span: the "
        "trace context did not travel with the provider calls")
