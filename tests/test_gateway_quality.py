"""Answer quality at the gateway, in-process: every answered chat call is scored and the scores are stored beside
its row; the workflow retrieves runbook passages and its answer is scored for groundedness; callers rate answers
through POST /v1/feedback, which refuses unknown ids, bad ratings and a second rating by name."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from tests import inprocess

ATTRIBUTION = {"user_id": "u-quality", "department": "support", "application": "chatbot"}


@pytest.fixture()
def stack(tmp_path, monkeypatch) -> Iterator[inprocess.Stack]:
    with inprocess.stack(tmp_path, monkeypatch) as services:
        yield services


def _query(stack: inprocess.Stack, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(stack.data / "gateway" / "attribution.db") as db:
        return db.execute(sql, args).fetchall()


def _histogram_count(stack: inprocess.Stack, **labels: str) -> float:
    registry = stack.gateway.app.state.gateway.metrics.registry
    return sum(s.value for m in registry.collect() for s in m.samples if s.name == "llm_quality_score_count"
               and all(s.labels.get(k) == v for k, v in labels.items()))


def test_every_answered_chat_call_is_scored_and_joinable_with_its_row(stack: inprocess.Stack) -> None:
    response = stack.gateway.post("/v1/chat/completions", json={
        "model": "sim-fast", "attribution": ATTRIBUTION,
        "messages": [{"role": "user", "content": "How do I silence a firing latency alert?"}]})
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    joined = _query(stack, "SELECT e.evaluator, e.label, c.model, c.cost_usd FROM llm_evaluations e JOIN llm_calls c "
                           "USING (request_id, step) WHERE request_id = ? ORDER BY e.evaluator", request_id)
    assert [row[0] for row in joined] == ["answered", "relevance"], "no passages, so no groundedness"
    assert all(row[2] == "sim-fast" and row[3] > 0 for row in joined)
    assert _histogram_count(stack, model="sim-fast", evaluator="relevance") == 1


def test_the_workflow_retrieves_runbook_passages_and_scores_its_answer_against_them(stack: inprocess.Stack) -> None:
    response = stack.gateway.post("/v1/agent/workflow", json={
        "question": "Why does the p95 latency alert fire when the provider slows down?", "attribution": ATTRIBUTION})
    assert response.status_code == 200, response.text
    retrieval = response.json()["retrieval"]
    assert retrieval["relevance"] >= 0.3 and "LLMLatencyP95High.md" in retrieval["sources"], retrieval
    evaluated = _query(stack, "SELECT step, evaluator FROM llm_evaluations WHERE request_id = ? ORDER BY evaluator",
                       response.json()["request_id"])
    assert evaluated == [("answer", "answered"), ("answer", "groundedness"), ("answer", "relevance")], \
        "only the answer step is scored; classify and format are plumbing"
    unrelated = stack.gateway.post("/v1/agent/workflow", json={
        "question": "Suggest a recipe for chocolate cake", "attribution": ATTRIBUTION}).json()["retrieval"]
    assert unrelated == {"relevance": 0.0, "sources": []}, "nothing in the runbooks speaks of cake"


def test_feedback_is_stored_once_per_answered_request_and_counted_by_the_serving_model(stack: inprocess.Stack) -> None:
    answered = stack.gateway.post("/v1/chat/completions", json={
        "model": "sim-balanced", "attribution": ATTRIBUTION, "messages": [{"role": "user", "content": "hello"}]})
    request_id = answered.headers["x-request-id"]
    ok = stack.gateway.post("/v1/feedback", json={"request_id": request_id, "rating": "down", "comment": "off topic"})
    assert ok.status_code == 200 and ok.json()["model"] == "sim-balanced"
    assert _query(stack, "SELECT rating, comment FROM llm_feedback WHERE request_id = ?", request_id) == \
        [("down", "off topic")]
    again = stack.gateway.post("/v1/feedback", json={"request_id": request_id, "rating": "up"})
    assert again.status_code == 409 and request_id in again.json()["error"]["message"]
    registry = stack.gateway.app.state.gateway.metrics.registry
    counted = {s.labels["rating"]: s.value for m in registry.collect() for s in m.samples
               if s.name == "llm_feedback_total" and s.labels["model"] == "sim-balanced"}
    assert counted == {"up": 0, "down": 1}, "counted once, the second rating refused"


@pytest.mark.parametrize(("body", "status", "named"), [
    ({"request_id": "req-that-never-was", "rating": "up"}, 404, "req-that-never-was"),
    ({"request_id": "x", "rating": "5 stars"}, 422, "rating"),
    ({"rating": "up"}, 422, "request_id"),
    ({"request_id": "x", "rating": "up", "stars": 5}, 422, "stars"),
])
def test_bad_feedback_is_refused_naming_what_is_wrong(stack: inprocess.Stack, body: dict, status: int,
                                                      named: str) -> None:
    response = stack.gateway.post("/v1/feedback", json=body)
    assert response.status_code == status and named in response.text, response.text
    assert _query(stack, "SELECT COUNT(*) FROM llm_feedback") == [(0,)]


def _mean_relevance(stack: inprocess.Stack, model: str) -> float:
    registry = stack.gateway.app.state.gateway.metrics.registry
    samples = {s.name: s.value for m in registry.collect() for s in m.samples
               if s.labels.get("model") == model and s.labels.get("evaluator") == "relevance"}
    return samples["llm_quality_score_sum"] / samples["llm_quality_score_count"]


def test_a_silent_quality_drift_is_all_200s_but_the_relevance_score_falls(stack: inprocess.Stack) -> None:
    def ask(n: int) -> int:
        return stack.gateway.post("/v1/chat/completions", json={
            "model": "sim-fast", "attribution": ATTRIBUTION,
            "messages": [{"role": "user", "content": f"Explain the error budget policy, case {n}"}]}).status_code

    assert [ask(n) for n in range(10)] == [200] * 10
    healthy = _mean_relevance(stack, "sim-fast")
    assert healthy > 0.8, healthy
    stack.llmsim.post("/faults", json={"quality_drift": 1.0, "models": ["sim-fast"]})
    assert [ask(n) for n in range(10, 30)] == [200] * 20, "a drifted answer is still a fast 200"
    assert _mean_relevance(stack, "sim-fast") < healthy / 2
