"""Tracing on the live stack: one agent-workflow request is one trace whose gateway and llmsim spans are parented
correctly and carry the GenAI attributes, cost and attribution; errors show on the spans; the latency histogram's
exemplar and the gateway's log lines carry the same trace id. The stack's spans arrive at the session's in-process
OTLP receiver (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from stack import catalog, promapi
from stack.paths import run_dir
from tests import live
from tests.conftest import LiveStack
from tests.otlp_collector import OtlpCollector, ReceivedSpan

pytestmark = pytest.mark.stack

USER_ID = "tracing-test-user@example.com"
ATTRIBUTION = {"user_id": USER_ID, "department": "research", "application": "agent"}
STEPS = ("classify", "answer", "format")


def _workflow(model: str = "sim-balanced") -> dict:
    response = httpx.post(f"{live.url('gateway')}/v1/agent/workflow", timeout=30,
                          json={"question": "Why do LLM latencies have long tails?", "model": model,
                                "attribution": ATTRIBUTION})
    assert response.status_code == 200, response.text
    return response.json()


def _trace_of(collector: OtlpCollector, request_id: str, spans_expected: int) -> list[ReceivedSpan]:
    """The spans of the trace whose root carries llm.request_id, once `spans_expected` of them have arrived."""
    def arrived(spans: list[ReceivedSpan]) -> bool:
        roots = [s for s in spans if s.attributes.get("llm.request_id") == request_id and s.kind == "SERVER"]
        return bool(roots) and len([s for s in spans if s.trace_id == roots[0].trace_id]) >= spans_expected

    spans = collector.wait_for(arrived, timeout=15)
    root = next(s for s in spans if s.attributes.get("llm.request_id") == request_id and s.kind == "SERVER")
    return [s for s in spans if s.trace_id == root.trace_id]


def _gateway_chats(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    """The gateway's provider-call spans."""
    return [s for s in spans if s.service == "gateway" and s.name.startswith("chat ")]


def _children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return sorted((s for s in spans if s.parent_id == parent.span_id), key=lambda s: s.start_ns)


@pytest.fixture(scope="module")
def workflow_trace(live_stack: LiveStack, otlp_collector: OtlpCollector) -> tuple[dict, list[ReceivedSpan], float]:
    live.heal_faults()
    started = time.time()
    reply = _workflow()
    return reply, _trace_of(otlp_collector, reply["request_id"], 15), started


def test_a_workflow_request_is_one_trace_across_gateway_and_llmsim(workflow_trace) -> None:
    reply, spans, _ = workflow_trace
    assert len(spans) == 15, sorted(f"{s.service}:{s.name}" for s in spans)
    roots = [s for s in spans if s.parent_id is None]
    assert [(r.service, r.kind, r.name) for r in roots] == [("gateway", "SERVER", "POST /v1/agent/workflow")]
    root = roots[0]
    assert root.attributes["http.route"] == "/v1/agent/workflow" and root.attributes["http.response.status_code"] == 200
    [agent] = _children(spans, root)
    assert (agent.name, agent.kind, agent.service) == ("invoke_agent workflow", "INTERNAL", "gateway")
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    steps = _children(spans, agent)
    assert [s.name for s in steps] == [f"step {name}" for name in STEPS]
    for step, reported in zip(steps, reply["steps"], strict=True):
        children = _children(spans, step)
        if step.name == "step answer":  # the retrieval comes first, then the answer given its passages
            retrieval, chat = children
            assert (retrieval.name, retrieval.kind) == ("retrieval runbooks", "INTERNAL")
            assert retrieval.attributes["gen_ai.operation.name"] == "retrieval"
            assert retrieval.attributes["llm.retrieval.relevance"] == pytest.approx(reply["retrieval"]["relevance"],
                                                                                    abs=1e-4)
            assert retrieval.end_ns <= chat.start_ns
            evaluations = [e for e in chat.event_names if e == "gen_ai.evaluation.result"]
            assert len(evaluations) == 3, "relevance, groundedness and answered, as span events"
        else:
            [chat] = children
        assert (chat.service, chat.kind, chat.name) == ("gateway", "CLIENT", f"chat {reported['model']}")
        [provider] = _children(spans, chat)
        assert (provider.service, provider.kind, provider.name) == ("llmsim", "SERVER", "POST /v1/chat/completions")
        [generate] = _children(spans, provider)
        assert (generate.service, generate.kind, generate.name) == ("llmsim", "INTERNAL", f"generate {reported['model']}")
        # llmsim's generation happens inside the call; its server span may close a moment after the client has the
        # answer (the span ends once the response is sent), so that end is no bound
        assert chat.start_ns <= provider.start_ns <= generate.start_ns and generate.end_ns <= chat.end_ns, \
            "llmsim works inside the call"
        assert step.start_ns <= chat.start_ns and chat.end_ns <= step.end_ns
    assert all(s.status != "ERROR" for s in spans)


def test_provider_call_spans_follow_the_genai_conventions_with_cost_and_attribution(workflow_trace) -> None:
    reply, spans, _ = workflow_trace
    chats = sorted(_gateway_chats(spans), key=lambda s: s.start_ns)
    generations = sorted((s for s in spans if s.service == "llmsim" and s.name.startswith("generate ")),
                         key=lambda s: s.start_ns)
    for chat, generation, reported in zip(chats, generations, reply["steps"], strict=True):
        for attributes in (chat.attributes, generation.attributes):  # both sides of the call, same conventions
            assert attributes["gen_ai.operation.name"] == "chat"
            assert attributes["gen_ai.provider.name"] == "llmsim"
            assert attributes["gen_ai.request.model"] == reported["model"]
            assert attributes["gen_ai.response.model"] == reported["model"]
            assert attributes["gen_ai.usage.input_tokens"] == reported["input_tokens"]
            assert attributes["gen_ai.usage.output_tokens"] == reported["output_tokens"]
            assert list(attributes["gen_ai.response.finish_reasons"]) in (["stop"], ["length"])
        attributes = chat.attributes
        assert attributes["llm.cost_usd"] == pytest.approx(catalog.cost_usd(
            reported["model"], reported["input_tokens"], reported["output_tokens"]))
        assert (attributes["llm.department"], attributes["llm.application"]) == ("research", "agent")
        assert attributes["llm.step"] == reported["step"]
    agent = next(s for s in spans if s.name == "invoke_agent workflow")
    assert agent.attributes["llm.cost_usd"] == pytest.approx(reply["cost_usd"])
    root = next(s for s in spans if s.parent_id is None)
    assert root.attributes["llm.request_id"] == reply["request_id"]
    values = [str(v) for s in spans for v in s.attributes.values()]
    assert not [v for v in values if USER_ID in v], "the raw user id must never be on a span"
    assert not [k for s in spans for k in s.attributes if "user_id" in k or k.startswith("enduser")], \
        "no user attribute at all"


def test_no_span_carries_the_deprecated_gen_ai_system(workflow_trace) -> None:
    """gen_ai.system was renamed gen_ai.provider.name in semconv 1.37 (stack/genai.py): no span of either service
    carries the old name, and every GenAI span names its provider."""
    _, spans, _ = workflow_trace
    assert {s.service for s in spans} == {"gateway", "llmsim"}
    assert not [f"{s.service}:{s.name}" for s in spans if "gen_ai.system" in s.attributes]
    genai_spans = [s for s in spans if "gen_ai.operation.name" in s.attributes]
    assert len(genai_spans) == 8, "1 invoke_agent + 1 retrieval + 3 gateway chat + 3 llmsim generate"
    calls = [s for s in genai_spans if s.attributes["gen_ai.operation.name"] != "retrieval"]
    assert all(s.attributes["gen_ai.provider.name"] == "llmsim" for s in calls), \
        "every model call names its provider (the retrieval reads a local corpus: no provider)"


def test_the_latency_exemplar_carries_the_trace_id(workflow_trace) -> None:
    _, spans, started = workflow_trace
    trace_id = spans[0].trace_id
    chat_span_ids = {s.span_id for s in _gateway_chats(spans)}

    def exemplars() -> list[dict]:
        with promapi.Prometheus(live.url("prometheus"), timeout=5) as prometheus:
            series = prometheus.exemplars("llm_request_duration_seconds_bucket", started - 1, time.time() + 1)
        found = [e["labels"] for one in series for e in one["exemplars"]]
        return [labels for labels in found if labels.get("trace_id") == trace_id]

    ours = live.eventually(exemplars, 15, "an exemplar with the workflow's trace id in Prometheus")
    assert {labels.get("span_id") for labels in ours} <= chat_span_ids, "each exemplar names its provider call span"


def test_every_log_line_inside_the_request_carries_its_trace_and_span_ids(workflow_trace) -> None:
    reply, spans, _ = workflow_trace
    chats = {s.attributes["llm.step"]: s for s in _gateway_chats(spans)}
    log = run_dir() / "logs" / "gateway.log"
    lines = live.eventually(lambda: [json.loads(line) for line in log.read_text().splitlines()
                                     if reply["request_id"] in line and line.startswith("{")],
                            5, "the workflow's log lines")
    assert [line["step"] for line in lines] == list(STEPS)
    for line in lines:
        assert line["trace_id"] == chats[line["step"]].trace_id
        assert line["span_id"] == chats[line["step"]].span_id


def test_a_failed_provider_call_is_an_error_on_its_spans(stack: LiveStack, otlp_collector: OtlpCollector) -> None:
    """sim-fast has no fallback: its failure reaches the caller, and every span on the way says so."""
    live.set_faults(error_rate=1.0, models=["sim-fast"])
    try:
        response = httpx.post(f"{live.url('gateway')}/v1/chat/completions", timeout=30, json={
            "model": "sim-fast", "messages": [{"role": "user", "content": "fail, please"}],
            "attribution": ATTRIBUTION})
    finally:
        live.heal_faults()
    assert response.status_code == 502, response.text
    request_id = response.headers["x-request-id"]
    spans = _trace_of(otlp_collector, request_id, 4)
    root = next(s for s in spans if s.parent_id is None)
    assert root.status == "ERROR" and root.attributes["http.response.status_code"] == 502
    chat = next(s for s in _gateway_chats(spans) if s.name == "chat sim-fast")
    assert chat.status == "ERROR" and chat.attributes["error.type"] == "server_error", chat
    assert "exception" in chat.event_names, "the provider error is recorded as an exception event"
    generate = next(s for s in spans if s.service == "llmsim" and s.name == "generate sim-fast")
    assert generate.status == "ERROR" and generate.attributes["llmsim.outcome"] == "error"


def test_a_fallback_is_two_attempts_in_one_trace(stack: LiveStack, otlp_collector: OtlpCollector) -> None:
    """sim-reasoning fails and falls back to sim-balanced: one trace, a failed `chat sim-reasoning` span, then a
    `chat sim-balanced` span whose gen_ai.response.model is the model that served; the caller gets a 200."""
    live.set_faults(error_rate=1.0, models=["sim-reasoning"])
    try:
        response = httpx.post(f"{live.url('gateway')}/v1/chat/completions", timeout=30, json={
            "model": "sim-reasoning", "messages": [{"role": "user", "content": "fall back, please"}],
            "attribution": ATTRIBUTION})
    finally:
        live.heal_faults()
    assert response.status_code == 200 and response.headers["x-served-model"] == "sim-balanced", response.text
    spans = _trace_of(otlp_collector, response.headers["x-request-id"], 7)
    chats = sorted(_gateway_chats(spans), key=lambda s: s.start_ns)
    assert [c.name for c in chats] == ["chat sim-reasoning", "chat sim-balanced"]
    assert chats[0].status == "ERROR" and chats[0].attributes["error.type"] == "server_error"
    assert chats[1].status != "ERROR" and chats[1].attributes["gen_ai.response.model"] == "sim-balanced"
    assert chats[0].end_ns <= chats[1].start_ns, "the fallback starts after the failed attempt"


def test_status_says_where_the_spans_go(stack: LiveStack, otlp_collector: OtlpCollector) -> None:
    status = subprocess.run([sys.executable, "-m", "stack.runner", "status"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert f"Traces: sent over OTLP/HTTP to {otlp_collector.url}/v1/traces" in status.stdout, status.stdout


def test_only_the_latency_histograms_have_exemplars(workflow_trace) -> None:
    """Exemplars come from the OpenMetrics exposition Prometheus asks for: on the request latency histogram (and on
    time to first token once a streamed call was made); the counters have none."""
    text = httpx.get(f"{live.url('gateway')}/metrics", timeout=5,
                     headers={"Accept": "application/openmetrics-text; version=1.0.0"}).text
    with_exemplars = {line.split("{")[0] for line in text.splitlines() if " # {" in line}
    assert "llm_request_duration_seconds_bucket" in with_exemplars, with_exemplars
    assert with_exemplars <= {"llm_request_duration_seconds_bucket", "llm_time_to_first_token_seconds_bucket"}, \
        with_exemplars
    assert promapi.query('llm_request_duration_seconds_count{job="gateway"}'), "the histogram is scraped"


def test_a_streamed_call_shows_its_first_token_on_its_span(stack: LiveStack, otlp_collector: OtlpCollector) -> None:
    """The gateway's `chat {model}` span of a streamed call: an `llm.first_token` event when the first content chunk
    arrived, gen_ai.response.time_to_first_chunk and the usage read from the final chunk; no gen_ai.system."""
    body = {"model": "sim-fast", "messages": [{"role": "user", "content": "Stream me a trace."}], "stream": True,
            "attribution": ATTRIBUTION}
    with httpx.stream("POST", f"{live.url('gateway')}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        assert [line for line in response.iter_lines() if line.startswith("data: ")][-1] == "data: [DONE]"
    spans = _trace_of(otlp_collector, request_id, 4)  # gateway SERVER + chat CLIENT + llmsim SERVER + generate
    chat = next(s for s in _gateway_chats(spans))
    assert "llm.first_token" in chat.event_names
    assert chat.attributes["gen_ai.request.stream"] is True
    ttft = chat.attributes["gen_ai.response.time_to_first_chunk"]
    assert 0 < ttft < chat.duration_seconds
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0 and chat.attributes["gen_ai.response.finish_reasons"]
    assert not [s.name for s in spans if "gen_ai.system" in s.attributes]
