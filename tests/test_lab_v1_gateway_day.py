"""Lab V1's gateway day (exercise 8) is written as the course gateway writes its log: the real gateway, in-process,
answers a cache hit, a request that falls back and a plain call, and each of its `llm_call` lines has the same fields,
and the same meaning, as the lines of that kind in graders/v1/gateway_day.py. If the gateway's log line changes,
this names the field, so the lab does not teach students a log they will never see."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from graders.v1.gateway_day import gateway_day
from tests import inprocess

ATTRIBUTION = {"user_id": "u-v1", "department": "support", "application": "chatbot"}
KINDS: dict[str, Callable[[dict], bool]] = {
    "cache hit": lambda line: line.get("cache") == "hit",
    "failed attempt": lambda line: line["status"] == "fallback",
    "served by a fallback": lambda line: line["status"] == "success" and "requested_model" in line,
    "plain call": lambda line: line["status"] == "success" and "requested_model" not in line
                               and "cache" not in line,
}
NOT_IN_THE_LAB = {"trace_id", "span_id"}   # only on lines logged inside a recorded span


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[inprocess.Stack]:
    with inprocess.stack(tmp_path, monkeypatch) as services:
        yield services


def _llm_calls(text: str) -> list[dict]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "llm_call" and not line.get("streamed")]


def _of_kind(lines: list[dict], kind: str) -> dict:
    found = [line for line in lines if KINDS[kind](line)]
    assert found, f"no {kind} line"
    return found[0]


def test_the_lab_day_has_the_fields_and_meaning_of_the_gateways_own_lines(
        stack: inprocess.Stack, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    seeded = {"model": "sim-fast", "seed": 3, "messages": [{"role": "user", "content": "cached?"}],
              "attribution": ATTRIBUTION}
    for _ in range(2):
        assert stack.gateway.post("/v1/chat/completions", json=seeded).status_code == 200
    assert stack.llmsim.post("/faults", json={"outage": True, "models": ["sim-reasoning"]}).status_code == 200
    reply = stack.gateway.post("/v1/chat/completions", json={
        "model": "sim-reasoning", "messages": [{"role": "user", "content": "falls back"}], "attribution": ATTRIBUTION})
    assert reply.status_code == 200 and reply.headers["x-served-model"] == "sim-balanced"
    real = _llm_calls(capsys.readouterr().out)
    lab = _llm_calls("\n".join(gateway_day()[0]))

    for kind in KINDS:
        real_line, lab_line = _of_kind(real, kind), _of_kind(lab, kind)
        assert set(real_line) - NOT_IN_THE_LAB == set(lab_line), \
            f"{kind}: the gateway logs {sorted(set(real_line) - NOT_IN_THE_LAB)}, the lab day {sorted(lab_line)}"
    hit = _of_kind(real, "cache hit")
    assert hit["cost_usd"] == 0 and hit["saved_cost_usd"] > 0
    attempt, served = _of_kind(real, "failed attempt"), _of_kind(real, "served by a fallback")
    assert attempt["request_id"] == served["request_id"] == reply.headers["x-request-id"]
    assert (attempt["step"], attempt["model"]) == ("chat", "sim-reasoning")
    assert (served["step"], served["model"], served["requested_model"]) == ("chat:fallback1", "sim-balanced",
                                                                            "sim-reasoning")
