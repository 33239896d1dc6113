"""/ready is 503 with a reason when recent provider calls mostly fail, though the provider's /health says ok."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.gateway import outcomes
from stack.gateway.outcomes import RecentOutcomes
from tests import inprocess

BODY = {"model": "sim-fast", "messages": [{"role": "user", "content": "hello"}],
        "attribution": {"user_id": "u-1", "department": "support", "application": "chatbot"}}


def test_ready_turns_503_when_most_recent_calls_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with inprocess.stack(tmp_path, monkeypatch) as stack:
        assert stack.gateway.get("/ready").status_code == 200
        stack.llmsim.post("/faults", json={"error_rate": 1.0})
        assert stack.llmsim.get("/health").status_code == 200  # the provider says it is fine
        for _ in range(outcomes.MIN_CALLS):
            assert stack.gateway.post("/v1/chat/completions", json=BODY).status_code == 502
        ready = stack.gateway.get("/ready")
        assert ready.status_code == 503, ready.text
        assert any(f"{outcomes.MIN_CALLS} of the last {outcomes.MIN_CALLS} provider calls" in reason
                   for reason in ready.json()["reasons"])
        stack.llmsim.delete("/faults")
        for _ in range(outcomes.MIN_CALLS):
            assert stack.gateway.post("/v1/chat/completions", json=BODY).status_code == 200
        assert stack.gateway.get("/ready").status_code == 200  # half failed: not more than half


def test_too_few_or_old_failures_do_not_make_the_gateway_unready() -> None:
    now = [0.0]
    recent = RecentOutcomes(clock=lambda: now[0])
    for _ in range(outcomes.MIN_CALLS - 1):
        recent.record(False)
    assert recent.problem() is None
    recent.record(False)
    assert recent.problem() is not None
    now[0] += outcomes.WINDOW_SECONDS + 1
    assert recent.problem() is None
    for ok in [False] * outcomes.WINDOW_CALLS + [True] * outcomes.WINDOW_CALLS:
        recent.record(ok)
    assert recent.problem() is None  # only the last WINDOW_CALLS count
