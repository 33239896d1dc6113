"""The gateway books a call in one step: the attribution row, the metrics and the log line all happen, or none does
and the client is told (503 naming the store). Rows equal the call counter after every request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import inprocess

BODY = {"model": "sim-fast", "messages": [{"role": "user", "content": "hello"}],
        "attribution": {"user_id": "u-1", "department": "support", "application": "chatbot"}}
WORKFLOW = {"question": "why?", "model": "sim-fast", "attribution": BODY["attribution"]}


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[inprocess.Stack]:
    with inprocess.stack(tmp_path, monkeypatch) as services:
        yield services


def _read_only(stack: inprocess.Stack, on: bool) -> None:
    """Make the running gateway's own SQLite connection refuse writes, as a read-only database would."""
    stack.gateway.app.state.gateway.store._db.execute(f"PRAGMA query_only={'ON' if on else 'OFF'}")


def test_a_store_that_refuses_the_row_moves_no_metric_and_is_a_503_naming_it(
        stack: inprocess.Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert stack.gateway.post("/v1/chat/completions", json=BODY).status_code == 200
    assert stack.rows() == stack.billed()[0] == 1
    billed = stack.billed()
    capsys.readouterr()

    _read_only(stack, True)
    for path, body in (("/v1/chat/completions", BODY), ("/v1/agent/workflow", WORKFLOW)):
        response = stack.gateway.post(path, json=body)
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert "attribution.db" in error["store"] and "attribution store" in error["message"]
        assert error["request_id"] == response.headers["x-request-id"]
    assert stack.billed() == billed  # calls, tokens and cost unchanged
    logged = capsys.readouterr().out
    assert '"llm_call"' not in logged and logged.count('"call_not_booked"') == 2

    _read_only(stack, False)
    assert stack.gateway.post("/v1/chat/completions", json=BODY).status_code == 200
    assert stack.rows() == stack.billed()[0] == 2


def test_a_failed_provider_call_is_booked_as_one_row_and_one_error(stack: inprocess.Stack) -> None:
    stack.llmsim.post("/faults", json={"error_rate": 1.0})
    assert stack.gateway.post("/v1/chat/completions", json=BODY).status_code == 502
    assert stack.rows() == stack.billed()[0] == 1
    _read_only(stack, True)
    assert stack.gateway.post("/v1/chat/completions", json=BODY).status_code == 503
    assert stack.rows() == stack.billed()[0] == 1
