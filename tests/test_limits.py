"""Every size is bounded by a limit written once (catalog.yaml `limits`): bodies per service, messages per request,
prompt characters and tokens, annotation bytes. A refusal is a 4xx naming the field and the limit, before anything
is billed or stored; the receiver cuts long annotations with a visible marker instead of refusing them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stack import catalog
from stack.receiver import app as receiver_app
from stack.receiver.truncate import truncate_text
from tests import inprocess

LIMITS = catalog.load()
ATTRIBUTION = {"user_id": "u-1", "department": "support", "application": "chatbot"}
JSON = {"content-type": "application/json"}


def chat(messages: list[dict]) -> dict:
    return {"model": "sim-fast", "messages": messages, "attribution": ATTRIBUTION}


def alert(annotation: str) -> dict:
    return {"status": "firing", "receiver": "pager", "commonAnnotations": {"summary": annotation},
            "alerts": [{"status": "firing", "labels": {"alertname": "Big"}, "annotations": {"description": annotation},
                        "startsAt": "2026-01-01T00:00:00Z"}]}


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[inprocess.Stack]:
    with inprocess.stack(tmp_path, monkeypatch) as services:
        yield services


@pytest.mark.parametrize("service", ["gateway", "llmsim", "receiver"])
def test_a_body_over_the_service_limit_is_413_from_its_content_length(stack: inprocess.Stack, service: str) -> None:
    limit = LIMITS.max_body_bytes[service]
    before = stack.side_effects()
    path = "/hook/pager" if service == "receiver" else "/v1/chat/completions"
    response = getattr(stack, service).post(path, content=b" " * (limit + 1), headers=JSON)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["fields"] == ["body"] and error["limit_bytes"] == limit and str(limit) in error["message"]
    assert stack.side_effects() == before


def test_a_streamed_body_without_length_is_cut_at_the_limit(stack: inprocess.Stack) -> None:
    limit = LIMITS.max_body_bytes["gateway"]
    sent = []

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            sent.append(1)
            yield b" " * (limit // 8)

    response = stack.gateway.post("/v1/chat/completions", content=chunks(), headers=JSON)
    assert response.status_code == 413 and f"more than {limit}" in response.json()["error"]["message"]


def test_too_many_messages_are_refused_naming_the_field_and_the_limit(stack: inprocess.Stack) -> None:
    before = stack.side_effects()
    many = [{"role": "user", "content": ""}] * (LIMITS.max_messages_per_request + 1)
    for client in (stack.gateway, stack.llmsim):
        response = client.post("/v1/chat/completions", json=chat(many))
        assert response.status_code == 422 and "messages" in response.text
        assert str(LIMITS.max_messages_per_request) in response.text
    assert stack.side_effects() == before


def test_the_prompt_is_bounded_in_tokens_as_well_as_characters(stack: inprocess.Stack) -> None:
    # Within the character and message limits, over the token limit (each message costs 4 tokens of overhead).
    per_message = LIMITS.max_prompt_chars // LIMITS.max_messages_per_request
    messages = [{"role": "user", "content": "x" * per_message}] * LIMITS.max_messages_per_request
    assert sum(len(m["content"]) for m in messages) <= LIMITS.max_prompt_chars
    before = stack.side_effects()
    response = stack.gateway.post("/v1/chat/completions", json=chat(messages))
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["fields"] == ["messages"] and error["limit_tokens"] == LIMITS.max_prompt_tokens
    assert "tokens" in error["message"]
    assert stack.side_effects() == before
    direct = stack.llmsim.post("/v1/chat/completions", json=chat(messages))
    assert direct.status_code == 400 and "tokens" in direct.text


def test_the_prompt_character_limit_names_the_field(stack: inprocess.Stack) -> None:
    response = stack.gateway.post("/v1/chat/completions",
                                  json=chat([{"role": "user", "content": "x" * (LIMITS.max_prompt_chars + 1)}]))
    assert response.status_code == 413 and response.json()["error"]["fields"] == ["messages"]


def test_the_receiver_cuts_long_annotations_with_a_marker(stack: inprocess.Stack) -> None:
    limit = LIMITS.max_annotation_bytes
    response = stack.receiver.post("/hook/pager", json=alert("é" * limit))  # 2 bytes a character
    assert response.status_code == 200
    stored = stack.receiver.get("/api/notifications").json()["notifications"][0]["payload"]
    for text in (stored["commonAnnotations"]["summary"], stored["alerts"][0]["annotations"]["description"]):
        kept, cut = text.split("… [truncated ")
        assert kept == "é" * (limit // 2) and cut == f"{limit} bytes]"
    assert len(json.dumps(stored, ensure_ascii=False).encode()) < 3 * limit


def test_the_receiver_cuts_long_rendered_texts_of_chat_and_pager_with_a_marker(stack: inprocess.Stack) -> None:
    limit = LIMITS.max_annotation_bytes
    long = "é" * limit  # 2 bytes a character
    slack = {"attachments": [{"title": "[FIRING:1] Big warning " + long, "text": long,
                              "fields": [{"title": "Severity", "value": long}]}]}
    pagerduty = {"routing_key": "k", "event_action": "trigger", "dedup_key": "d",
                 "payload": {"summary": "[FIRING:1] Big critical: " + long, "source": "s", "severity": "critical",
                             "custom_details": {"firing": long}}}
    assert stack.receiver.post("/hook/chat/slack", json=slack).status_code == 200
    assert stack.receiver.post("/hook/pager/pagerduty", json=pagerduty).status_code == 202
    event, message = (n["payload"] for n in stack.receiver.get("/api/notifications").json()["notifications"])
    attachment = message["attachments"][0]
    texts = [attachment["title"], attachment["text"], attachment["fields"][0]["value"], event["payload"]["summary"],
             event["payload"]["custom_details"]["firing"]]
    assert all(len(text.encode()) < limit + 40 and text.endswith(" bytes]") for text in texts), texts
    assert attachment["title"].startswith("[FIRING:1] Big warning ")


def test_truncation_keeps_short_text_and_whole_characters() -> None:
    assert truncate_text("short", 10) == "short"
    assert truncate_text("ab€", 3) == "ab… [truncated 3 bytes]"


def test_the_receiver_pages_its_api_by_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page_bytes = 3 * LIMITS.max_annotation_bytes
    monkeypatch.setattr(receiver_app.catalog, "load", lambda: replace(LIMITS, notifications_page_bytes=page_bytes))
    with TestClient(receiver_app.create_app(data_dir=tmp_path)) as receiver:
        for _ in range(7):  # each stored notification holds two annotations cut to the limit: over 16 KB
            assert receiver.post("/hook/pager", json=alert("y" * 50_000)).status_code == 200
        seen: list[int] = []
        before = None
        while True:
            page = receiver.get("/api/notifications", params={"limit": 3, **({"before": before} if before else {})})
            body = page.json()
            assert 1 <= body["count"] <= 3 and len(page.content) < page_bytes + 2 * LIMITS.max_annotation_bytes
            seen += [item["id"] for item in body["notifications"]]
            before = body["next_before"]
            if before is None:
                break
        assert seen == sorted(seen, reverse=True) and len(set(seen)) == 7
