"""Fallback chains and circuit breakers, in-process (gateway and llmsim in the test process): a failing model's
callers are served by its fallback, its breaker opens after the threshold and stops calling it, and after the
reset time one call goes through half-opened and closes it; a 429 never falls back."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest

from stack import catalog
from tests import inprocess
from tests.inprocess import metric_sum

ATTRIBUTION = {"user_id": "u-fallback", "department": "research", "application": "agent"}
RESET_SECONDS = 0.5  # the catalog's is 15 s; the test shortens it before the first breaker exists


def _body(model: str, prompt: str = "Which model answers me?") -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "attribution": ATTRIBUTION}


@pytest.fixture()
def stack(tmp_path, monkeypatch) -> Iterator[inprocess.Stack]:
    with inprocess.stack(tmp_path, monkeypatch) as services:
        router = services.gateway.app.state.gateway.chat.router
        router.breakers.default_ttl = router.reset_seconds = RESET_SECONDS
        yield services


def _gauge(stack: inprocess.Stack, name: str, **labels: str) -> float:
    registry = stack.gateway.app.state.gateway.metrics.registry
    return sum(s.value for m in registry.collect() for s in m.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _provider_calls(stack: inprocess.Stack, model: str) -> float:
    return sum(s.value for m in stack.llmsim.app.state.registry.collect() for s in m.samples
               if s.name == "llmsim_requests_total" and s.labels.get("model") == model)


def _rows(stack: inprocess.Stack, request_id: str) -> list[tuple]:
    with sqlite3.connect(stack.data / "gateway" / "attribution.db") as db:
        return db.execute("SELECT step, model, requested_model, status FROM llm_calls WHERE request_id = ? "
                          "ORDER BY step", (request_id,)).fetchall()


def test_an_outage_of_the_primary_is_served_by_its_fallback_and_opens_its_breaker(stack: inprocess.Stack) -> None:
    threshold = catalog.load().circuit_breaker.failure_threshold
    assert stack.llmsim.post("/faults", json={"outage": True, "models": ["sim-reasoning"]}).status_code == 200
    for n in range(threshold):
        response = stack.gateway.post("/v1/chat/completions", json=_body("sim-reasoning", f"question {n}"))
        assert response.status_code == 200, response.text
        assert response.headers["x-served-model"] == "sim-balanced"
        assert response.json()["gateway"]["served_model"] == "sim-balanced"
    assert _rows(stack, response.headers["x-request-id"]) == [
        ("chat", "sim-reasoning", None, "fallback"), ("chat:fallback1", "sim-balanced", "sim-reasoning", "success")]
    assert _gauge(stack, "llm_requests_total", model="sim-reasoning", status="fallback") == threshold
    assert _gauge(stack, "llm_requests_total", model="sim-reasoning", status="error") == 0, \
        "a failure the caller never saw is not an error of the error ratio"
    assert _gauge(stack, "llm_circuit_breaker_state", model="sim-reasoning") == 1
    assert _gauge(stack, "llm_degradation_tier") == 2
    assert _gauge(stack, "llm_fallbacks_total", from_model="sim-reasoning", to_model="sim-balanced",
                  outcome="success") == threshold

    calls_before = _provider_calls(stack, "sim-reasoning")
    response = stack.gateway.post("/v1/chat/completions", json=_body("sim-reasoning", "while it is open"))
    assert response.status_code == 200 and response.headers["x-served-model"] == "sim-balanced"
    assert _provider_calls(stack, "sim-reasoning") == calls_before, "an open breaker does not call the model"
    assert _rows(stack, response.headers["x-request-id"]) == [("chat", "sim-balanced", "sim-reasoning", "success")]
    assert _gauge(stack, "llm_routed_requests_total", requested_model="sim-reasoning",
                  served_model="sim-balanced") == threshold + 1

    assert stack.llmsim.delete("/faults").status_code == 200
    deadline = time.monotonic() + 10
    while True:  # after the reset time, the next call goes through half-opened and closes the breaker
        response = stack.gateway.post("/v1/chat/completions", json=_body("sim-reasoning", "after healing"))
        if response.headers["x-served-model"] == "sim-reasoning" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert response.headers["x-served-model"] == "sim-reasoning"
    assert _gauge(stack, "llm_circuit_breaker_state", model="sim-reasoning") == 0
    assert _gauge(stack, "llm_circuit_breaker_transitions_total", model="sim-reasoning", to_state="half-opened") == 1
    assert _gauge(stack, "llm_circuit_breaker_transitions_total", model="sim-reasoning", to_state="closed") == 1
    assert _gauge(stack, "llm_degradation_tier") == 1


def test_a_rate_limited_call_is_not_a_model_failure_and_does_not_fall_back(stack: inprocess.Stack) -> None:
    stack.llmsim.post("/faults", json={"rate_limit_rate": 1.0, "models": ["sim-balanced"]})
    for _ in range(catalog.load().circuit_breaker.failure_threshold + 1):
        response = stack.gateway.post("/v1/chat/completions", json=_body("sim-balanced"))
        assert response.status_code == 429, response.text
    assert _gauge(stack, "llm_circuit_breaker_state", model="sim-balanced") == 0
    assert metric_sum(stack.gateway.app.state.gateway.metrics.registry, "llm_fallbacks") == 0


def test_a_model_without_fallbacks_has_no_breaker_and_keeps_its_provider_errors(stack: inprocess.Stack) -> None:
    stack.llmsim.post("/faults", json={"error_rate": 1.0, "models": ["sim-fast"]})
    for _ in range(catalog.load().circuit_breaker.failure_threshold + 2):
        assert stack.gateway.post("/v1/chat/completions", json=_body("sim-fast")).status_code == 502
    assert _provider_calls(stack, "sim-fast") == catalog.load().circuit_breaker.failure_threshold + 2


def test_when_every_model_of_the_chain_fails_the_last_error_is_returned_and_every_call_booked(
        stack: inprocess.Stack) -> None:
    stack.llmsim.post("/faults", json={"error_rate": 1.0})
    response = stack.gateway.post("/v1/chat/completions", json=_body("sim-reasoning"))
    assert response.status_code == 502
    assert [row[1:] for row in _rows(stack, response.headers["x-request-id"])] == [
        ("sim-reasoning", None, "fallback"), ("sim-balanced", "sim-reasoning", "fallback"),
        ("sim-fast", "sim-reasoning", "error")], "only the failure the caller saw is an error"
    assert stack.rows() == stack.answered()


def test_a_stream_falls_back_before_its_first_chunk(stack: inprocess.Stack) -> None:
    stack.llmsim.post("/faults", json={"outage": True, "models": ["sim-reasoning"]})
    response = stack.gateway.post("/v1/chat/completions", json={**_body("sim-reasoning"), "stream": True})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-served-model"] == "sim-balanced"
    assert response.text.rstrip().endswith("data: [DONE]")
    assert [row[1:] for row in _rows(stack, response.headers["x-request-id"])] == [
        ("sim-reasoning", None, "fallback"), ("sim-balanced", "sim-reasoning", "success")]


def test_the_headroom_gauges_follow_the_providers_rate_limit_headers(stack: inprocess.Stack) -> None:
    stack.llmsim.post("/faults", json={"rate_limit_scale": 0.001, "models": ["sim-balanced"]})
    seen = []
    for n in range(3):
        response = stack.gateway.post("/v1/chat/completions", json=_body("sim-balanced", f"headroom {n}"))
        assert response.status_code == 200
        seen.append(_gauge(stack, "llm_ratelimit_remaining", model="sim-balanced", kind="requests"))
    limit = _gauge(stack, "llm_ratelimit_limit", model="sim-balanced", kind="requests")
    assert limit == catalog.load().models["sim-balanced"].rate_limits.requests_per_minute * 0.001
    assert seen[0] > seen[1] > seen[2] and seen[2] < limit, f"each call uses one request of {limit}: {seen}"
    assert _gauge(stack, "llm_ratelimit_remaining", model="sim-balanced", kind="tokens") > 0


def test_the_workflow_answer_step_falls_back_too(stack: inprocess.Stack) -> None:
    """An agent workflow asked for sim-reasoning while it is down: still answered, its answer step by sim-balanced, and
    the step's report and rows say so."""
    assert stack.llmsim.post("/faults", json={"outage": True, "models": ["sim-reasoning"]}).status_code == 200
    response = stack.gateway.post("/v1/agent/workflow", json={
        "model": "sim-reasoning", "question": "How do I confirm a circuit breaker is open?", "attribution": ATTRIBUTION})
    assert response.status_code == 200, response.text
    answer = next(step for step in response.json()["steps"] if step["step"] == "answer")
    assert answer["model"] == "sim-balanced" and answer["requested_model"] == "sim-reasoning", answer
    rows = _rows(stack, response.headers["x-request-id"])
    assert ("answer", "sim-reasoning", None, "fallback") in rows, rows
    assert ("answer:fallback1", "sim-balanced", "sim-reasoning", "success") in rows, rows
    assert _gauge(stack, "llm_routed_requests_total", requested_model="sim-reasoning", served_model="sim-balanced") == 1
