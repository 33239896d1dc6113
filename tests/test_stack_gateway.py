"""The gateway as a client sees it: clear 4xx errors, bounded series, every call booked exactly once."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter

import httpx
import pytest

from stack import catalog, promapi
from stack.traffic import chat_body
from tests import live
from tests.conftest import LiveStack

pytestmark = pytest.mark.stack

DISTINCT_CALLERS = 600  # 30 times the per-label cap of 20: enough to prove the guard, cheap enough to send
GOOD = chat_body("sim-fast", "u-1")
BAD_INPUTS = [
    # (what is wrong, body or raw text, expected status, words the error message must contain)
    ("not JSON", "{model: sim-fast", 422, ["JSON"]),
    ("no messages", {**GOOD, "messages": []}, 422, ["messages"]),
    ("wrong role", {**GOOD, "messages": [{"role": "wizard", "content": "hi"}]}, 422, ["role"]),
    ("no attribution", {k: v for k, v in GOOD.items() if k != "attribution"}, 400,
     ["attribution.user_id", "attribution.department", "attribution.application"]),
    ("blank department", {**GOOD, "attribution": {**GOOD["attribution"], "department": "  "}}, 400,
     ["attribution.department"]),
    ("unknown model", {**GOOD, "model": "gpt-17"}, 400, ["gpt-17", "sim-fast", "sim-balanced"]),
    ("huge prompt", {**GOOD, "messages": [{"role": "user", "content": "x" * 60_000}]}, 413, ["limit"]),
    ("max_tokens over the limit", {**GOOD, "max_tokens": 1_000_000}, 400, ["max_tokens"]),
    ("max_tokens zero", {**GOOD, "max_tokens": 0}, 422, ["max_tokens"]),
]


def _message(response: httpx.Response) -> str:
    body = response.json()
    assert "error" in body, f"error responses carry an 'error' object: {body}"
    return str(body["error"])


@pytest.mark.parametrize(("problem", "body", "status", "words"), BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_gets_a_clear_client_error(stack: LiveStack, problem: str, body: object, status: int,
                                             words: list[str]) -> None:
    url = f"{live.url('gateway')}/v1/chat/completions"
    if isinstance(body, str):
        response = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=10)
    else:
        response = httpx.post(url, json=body, timeout=10)
    assert response.status_code == status, f"{problem}: {response.status_code} {response.text}"
    message = _message(response)
    for word in words:
        assert word in message, f"{problem}: the error does not mention {word!r}: {message}"


def test_bad_workflow_input_and_unknown_paths_are_client_errors(stack: LiveStack) -> None:
    gateway = live.url("gateway")
    empty = httpx.post(f"{gateway}/v1/agent/workflow", json={"question": ""}, timeout=10)
    assert empty.status_code == 422 and "question" in _message(empty)
    assert httpx.get(f"{gateway}/v1/nothing-here", timeout=10).status_code == 404
    wrong_method = httpx.get(f"{gateway}/v1/chat/completions", timeout=10)
    assert wrong_method.status_code == 405


def test_rejections_are_counted_by_reason(stack: LiveStack) -> None:
    before = live.metric_lines(live.gateway_metrics(), "llm_rejected_requests_total")
    httpx.post(f"{live.url('gateway')}/v1/chat/completions", json={**GOOD, "model": "nope"}, timeout=10)
    after = live.gateway_metrics()
    assert before and 'llm_rejected_requests_total{reason="unknown_model"}' in after
    before_value = next(float(l.split()[-1]) for l in before if 'reason="unknown_model"' in l)
    after_value = next(float(l.split()[-1]) for l in live.metric_lines(after, "llm_rejected_requests_total")
                       if 'reason="unknown_model"' in l)
    assert after_value == before_value + 1


def test_provider_failures_map_to_gateway_statuses(stack: LiveStack) -> None:
    live.set_faults(rate_limit_rate=1.0, retry_after_seconds=7, models=["sim-balanced"], duration_seconds=30)
    limited = httpx.post(f"{live.url('gateway')}/v1/chat/completions", json=chat_body("sim-balanced", "u-2"),
                         timeout=30)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert "rate_limited" in limited.text
    live.set_faults(rate_limit_rate=0.0, outage=True, models=[], duration_seconds=30)
    outage = httpx.post(f"{live.url('gateway')}/v1/chat/completions", json=chat_body("sim-fast", "u-2"), timeout=30)
    assert outage.status_code in (502, 503) and "unavailable" in outage.text
    ready = httpx.get(f"{live.url('gateway')}/ready", timeout=10)
    assert ready.status_code == 503 and ready.json()["reasons"], ready.text


async def _burst(requests: list[tuple[str, dict]], concurrency: int) -> list[int]:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=live.url("gateway"), timeout=60,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(path: str, body: dict) -> int:
            async with gate:
                return (await client.post(path, json=body)).status_code
        return await asyncio.gather(*(one(path, body) for path, body in requests))


def _store_rows(stack: LiveStack) -> int:
    with sqlite3.connect(stack.run / "gateway" / "attribution.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0])


def test_concurrent_burst_books_every_call_exactly_once(stack: LiveStack) -> None:
    live.set_faults(error_rate=0.15, duration_seconds=60)
    rows_before = _store_rows(stack)
    calls_before = live.metric_sum(live.gateway_metrics(), "llm_requests_total")
    requests = [("/v1/chat/completions", chat_body(model, f"burst-{n}"))
                for n, model in zip(range(240), ["sim-fast", "sim-balanced", "sim-reasoning"] * 80)]
    requests += [("/v1/agent/workflow", {"question": f"Is invoice {n} overdue?", "model": "sim-fast",
                                         "attribution": {"user_id": f"wf-{n}", "department": "finance",
                                                         "application": "agent"}}) for n in range(30)]
    statuses = asyncio.run(_burst(requests, concurrency=32))
    assert 500 not in statuses and set(statuses) <= {200, 502}, sorted(set(statuses))
    assert statuses.count(502) > 0, "the injected provider errors should show up as 502s"
    rows = _store_rows(stack) - rows_before
    calls = live.metric_sum(live.gateway_metrics(), "llm_requests_total") - calls_before
    assert rows == calls, f"attribution store gained {rows} rows but llm_requests_total grew by {calls}"
    assert rows >= len(requests), "every request makes at least one provider call"


def _gateway_series(exposition: str) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in exposition.splitlines() if line and not line.startswith("#")}


def test_hundreds_of_users_and_departments_do_not_grow_series(stack: LiveStack) -> None:
    """600 distinct users, departments and applications, 30 times the per-label cap (catalog.yaml
    max_values_per_label): the label guard keeps the series bounded."""
    cap = len(catalog.load().models) * (len(catalog.load().departments) + 1)
    exposition = live.gateway_metrics()
    overflow_before = live.metric_sum(exposition, "llm_label_overflow_total")
    requests = [("/v1/chat/completions", chat_body("sim-fast", f"user-{n}", department=f"team-{n}",
                                                   application=f"app-{n}")) for n in range(DISTINCT_CALLERS)]
    statuses = asyncio.run(_burst(requests, concurrency=48))
    assert statuses.count(200) == len(requests), f"not every request succeeded: {Counter(statuses)}"
    after = live.gateway_metrics()
    assert f"user-{DISTINCT_CALLERS - 1}" not in after and f"team-{DISTINCT_CALLERS - 1}" not in after, "request values leaked into labels"
    cost_series = live.metric_lines(after, "llm_cost_usd_total")
    assert len(cost_series) <= cap, f"{len(cost_series)} cost series, more than the {cap} the guard allows"
    assert any('department="other"' in line for line in cost_series)
    assert live.metric_sum(after, "llm_label_overflow_total") - overflow_before == len(requests)
    series_now = len(_gateway_series(after))
    live.eventually(lambda: promapi.scalar('scrape_samples_scraped{job="gateway"}') == series_now, 15,
                    "Prometheus to scrape the gateway after the burst")
    assert series_now < 1000, f"the gateway exposes {series_now} series after {DISTINCT_CALLERS} distinct users"


def test_health_detailed_turns_down_with_503_during_a_provider_outage_and_ok_after(stack: LiveStack) -> None:
    url = f"{live.url('gateway')}/health/detailed"

    def status() -> tuple[int, str, float]:
        started = time.monotonic()
        response = httpx.get(url, timeout=5)
        return response.status_code, response.json()["status"], time.monotonic() - started

    live.heal_faults()
    live.eventually(lambda: status()[:2] == (200, "ok"), 10, "/health/detailed ok before the outage")
    live.set_faults(outage=True)
    try:
        code, overall, elapsed = live.eventually(lambda: (s := status())[:2] == (503, "down") and s, 10,
                                                 "/health/detailed down with a 503 during the outage")
        assert elapsed < 2.0, elapsed
    finally:
        live.heal_faults()
    live.eventually(lambda: status()[:2] == (200, "ok"), 10, "/health/detailed ok after healing")
