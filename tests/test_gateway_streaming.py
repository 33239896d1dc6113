"""Streamed answers and the response cache on the live stack, as a client and Prometheus see them: chunks arrive
one by one, time to first token lands in Prometheus for streamed calls only, a repeated seeded request is a cache hit
whose saved cost shows in Prometheus and in the store, and a client that hangs up mid-stream leaves exactly one row."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid

import httpx
import pytest

from stack import catalog, promapi
from stack.paths import run_dir
from tests import live
from tests.conftest import LiveStack

pytestmark = pytest.mark.stack

CHAT = "/v1/chat/completions"


def _body(model: str = "sim-fast", prompt: str | None = None, **extra: object) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt or f"stream test {uuid.uuid4()}"}],
            "attribution": {"user_id": "stream-tester", "department": "research", "application": "chatbot"},
            **extra}


def _stream(body: dict) -> tuple[httpx.Response, list[tuple[float, dict | str]]]:
    """The events of a streamed answer, each with the second it arrived at (from the request's start)."""
    events: list[tuple[float, dict | str]] = []
    started = time.perf_counter()
    with httpx.stream("POST", f"{live.url('gateway')}{CHAT}", json={**body, "stream": True}, timeout=30) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: "):]
                events.append((time.perf_counter() - started, data if data == "[DONE]" else json.loads(data)))
    return response, events


def _rows(request_id: str) -> list[sqlite3.Row]:
    with sqlite3.connect(run_dir() / "gateway" / "attribution.db") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM llm_calls WHERE request_id = ?", (request_id,)).fetchall()


def _prometheus(query: str) -> float:
    return promapi.scalar(query) or 0.0


def test_a_streamed_answer_arrives_chunk_by_chunk_and_is_booked_from_its_usage(stack: LiveStack) -> None:
    response, events = _stream(_body("sim-reasoning", max_tokens=400, stream_options={"include_usage": True}))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    contents = [(at, e) for at, e in events if isinstance(e, dict) and e.get("choices")
                and e["choices"][0]["delta"].get("content")]
    assert len(contents) > 20, f"one chunk per word, got {len(contents)}"
    first_at, last_at = contents[0][0], contents[-1][0]
    assert last_at - first_at > 0.2, f"the first chunk came {last_at - first_at:.3f} s before the last: not streamed"
    assert events[-1][1] == "[DONE]"
    usage = events[-2][1]["usage"]  # type: ignore[index]
    rows = _rows(response.headers["x-request-id"])
    assert len(rows) == 1
    row = rows[0]
    assert (row["input_tokens"], row["output_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    assert row["cost_usd"] == pytest.approx(catalog.cost_usd("sim-reasoning", usage["prompt_tokens"],
                                                             usage["completion_tokens"], cached))
    assert row["streamed"] == 1 and row["finish_reason"] in ("stop", "length")
    assert 0 < row["time_to_first_token_seconds"] < first_at + 0.05


def test_the_usage_chunk_reaches_only_a_client_that_asked_for_it(stack: LiveStack) -> None:
    _, events = _stream(_body())
    assert not any(isinstance(e, dict) and e.get("usage") for _, e in events)
    assert events[-1][1] == "[DONE]"


def test_time_to_first_token_lands_in_prometheus_for_streamed_calls_only(stack: LiveStack) -> None:
    model = "sim-balanced"
    count = f'sum(llm_time_to_first_token_seconds_count{{job="gateway",model="{model}"}})'
    streamed = f'sum(llm_streamed_requests_total{{job="gateway",model="{model}"}})'
    calls = f'sum(llm_requests_total{{job="gateway",model="{model}"}})'
    before = (_prometheus(count), _prometheus(streamed), _prometheus(calls))
    for _ in range(3):
        response, _ = _stream(_body(model))
        assert response.status_code == 200
    for _ in range(2):  # not streamed: no time to first token
        assert httpx.post(f"{live.url('gateway')}{CHAT}", json=_body(model), timeout=30).status_code == 200
    live.eventually(lambda: _prometheus(calls) == before[2] + 5, 20, "Prometheus to scrape the five calls")
    assert _prometheus(count) - before[0] == 3, "the TTFT histogram counts exactly the streamed calls"
    assert _prometheus(streamed) - before[1] == 3
    p95 = promapi.scalar(f'histogram_quantile(0.95, sum by (le) (llm_time_to_first_token_seconds_bucket'
                         f'{{job="gateway",model="{model}"}}))')
    assert p95 is not None and 0 < p95 < 3


def test_a_repeated_seeded_request_is_a_cache_hit_with_its_saved_cost_in_prometheus_and_the_store(
        stack: LiveStack) -> None:
    body = _body("sim-balanced", seed=11)
    url = f"{live.url('gateway')}{CHAT}"
    hits = 'sum(llm_response_cache_hits_total{job="gateway",model="sim-balanced"})'
    saved = 'sum(llm_response_cache_saved_usd_total{job="gateway",model="sim-balanced",department="research"})'
    before_hits, before_saved = _prometheus(hits), _prometheus(saved)
    first = httpx.post(url, json=body, timeout=30)
    second = httpx.post(url, json={**body, "attribution": {**body["attribution"], "user_id": "someone-else"}},
                        timeout=30)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.json()["choices"][0]["message"]["content"] == first.json()["choices"][0]["message"]["content"]
    cost = first.json()["gateway"]["cost_usd"]
    assert cost > 0 and second.json()["gateway"]["cost_usd"] == 0
    assert second.json()["gateway"]["saved_cost_usd"] == pytest.approx(cost)
    row = _rows(second.headers["x-request-id"])[0]
    assert (row["cache_hit"], row["cost_usd"], row["input_tokens"], row["output_tokens"]) == (1, 0, 0, 0)
    assert row["saved_cost_usd"] == pytest.approx(cost)
    live.eventually(lambda: _prometheus(hits) == before_hits + 1, 20, "Prometheus to scrape the hit")
    assert _prometheus(saved) - before_saved == pytest.approx(cost)
    bypassed = httpx.post(url, json={**body, "cache": {"no-cache": True}}, timeout=30)
    assert bypassed.headers["x-cache"] == "BYPASS" and bypassed.json()["gateway"]["cost_usd"] > 0


def test_a_streamed_request_is_served_from_the_cache_and_replayed_as_a_stream(stack: LiveStack) -> None:
    body = _body("sim-fast", seed=5)
    first, first_events = _stream(body)
    again, events = _stream(body)
    assert (first.headers["x-cache"], again.headers["x-cache"]) == ("MISS", "HIT")

    def text(evs: list) -> str:
        return "".join(e["choices"][0]["delta"].get("content", "") for _, e in evs if isinstance(e, dict)
                       and e.get("choices"))

    assert text(events) == text(first_events) and events[-1][1] == "[DONE]"


def test_a_client_that_hangs_up_mid_stream_leaves_exactly_one_row(stack: LiveStack) -> None:
    disconnects = 'sum(llm_client_disconnects_total{job="gateway",model="sim-reasoning"})'
    before = _prometheus(disconnects)
    with httpx.stream("POST", f"{live.url('gateway')}{CHAT}", timeout=30,
                      json={**_body("sim-reasoning", max_tokens=400), "stream": True}) as response:
        request_id = response.headers["x-request-id"]
        received = 0
        for line in response.iter_lines():
            received += line.startswith("data: ")
            if received == 5:
                break  # hang up: closing the response closes the connection
    rows = live.eventually(lambda: _rows(request_id) or None, 10, "the cancelled call's row")
    assert len(rows) == 1
    row = rows[0]
    assert row["finish_reason"] == "cancelled" and row["streamed"] == 1
    assert 0 < row["output_tokens"] < 400 and row["cost_usd"] > 0
    live.eventually(lambda: _prometheus(disconnects) == before + 1, 20, "Prometheus to count the disconnect")
    assert len(_rows(request_id)) == 1, "booked once, never twice (the answer would have ended by now)"
    in_flight = live.metric_sum(live.gateway_metrics(), "llm_requests_in_flight")
    assert in_flight == 0, "the cancelled call is no longer in flight"


def test_stream_errors_before_the_first_chunk_keep_the_provider_status(stack: LiveStack) -> None:
    live.set_faults(error_rate=1.0, models=["sim-fast"])
    try:
        response = httpx.post(f"{live.url('gateway')}{CHAT}", json={**_body(), "stream": True}, timeout=30)
    finally:
        live.heal_faults()
    assert response.status_code == 502 and response.headers["content-type"].startswith("application/json")
    assert "provider" in response.json()["error"]["message"]
    assert len(_rows(response.headers["x-request-id"])) == 1
