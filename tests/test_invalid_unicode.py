"""A lone UTF-16 surrogate ("\\ud800": valid JSON, invalid Unicode) in any string of any body is a 4xx naming the field,
refused before anything happens: no provider call, no counter, no attribution row, no stored notification."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import inprocess

SURROGATE = "\\ud800"  # as written inside a JSON string
CHAT = {"model": "sim-fast", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "attribution": {"user_id": "u-1", "department": "support", "application": "chatbot"}}
WORKFLOW = {"question": "why?", "model": "sim-fast",
            "attribution": {"user_id": "u-1", "department": "support", "application": "chatbot"}}
ALERT = {"status": "firing", "receiver": "pager", "groupKey": "g", "externalURL": "http://am",
         "groupLabels": {"alertname": "X"}, "commonLabels": {"alertname": "X"},
         "commonAnnotations": {"summary": "s"},
         "alerts": [{"status": "firing", "labels": {"alertname": "X", "severity": "page"},
                     "annotations": {"summary": "s", "runbook_url": "r"}, "startsAt": "2026-01-01T00:00:00Z",
                     "endsAt": "", "generatorURL": "http://prom", "fingerprint": "f"}]}
SLACK = {"channel": "#chat", "attachments": [{"title": "[FIRING:1] X warning", "text": "t",
                                              "fields": [{"title": "Severity", "value": "warning"}],
                                              "actions": [{"type": "button", "text": "Runbook", "url": "http://r"}]}]}
PAGERDUTY = {"routing_key": "k", "event_action": "trigger", "dedup_key": "d",
             "payload": {"summary": "[FIRING:1] X critical: s", "source": "Alertmanager", "severity": "critical",
                         "custom_details": {"firing": "• s"}},
             "links": [{"href": "http://r", "text": "Runbook"}]}

# (service, path, body, field): every string field of every POST body of the three services.
CASES = [
    *[("gateway", "/v1/chat/completions", CHAT, field) for field in (
        "model", "messages.0.role", "messages.0.content", "messages.1.content", "attribution.user_id",
        "attribution.department", "attribution.application")],
    *[("gateway", "/v1/agent/workflow", WORKFLOW, field) for field in (
        "question", "model", "attribution.user_id", "attribution.department", "attribution.application")],
    ("gateway", "/faults", {"rename": "llm_calls_total"}, "rename"),
    *[("llmsim", "/v1/chat/completions", CHAT, field) for field in (
        "model", "messages.0.role", "messages.1.content")],
    ("llmsim", "/faults", {"models": ["sim-fast"]}, "models.0"),
    *[("receiver", "/hook/pager", ALERT, field) for field in (
        "status", "receiver", "groupKey", "externalURL", "groupLabels.alertname", "commonLabels.alertname",
        "commonAnnotations.summary", "alerts.0.status", "alerts.0.labels.alertname", "alerts.0.labels.severity",
        "alerts.0.annotations.summary", "alerts.0.startsAt", "alerts.0.endsAt", "alerts.0.generatorURL",
        "alerts.0.fingerprint")],
    *[("receiver", "/hook/chat/slack", SLACK, field) for field in (
        "channel", "attachments.0.title", "attachments.0.text", "attachments.0.fields.0.title",
        "attachments.0.fields.0.value", "attachments.0.actions.0.type", "attachments.0.actions.0.text",
        "attachments.0.actions.0.url")],
    *[("receiver", "/hook/pager/pagerduty", PAGERDUTY, field) for field in (
        "routing_key", "event_action", "dedup_key", "payload.summary", "payload.source", "payload.severity",
        "payload.custom_details.firing", "links.0.href", "links.0.text")],
]


def with_surrogate(body: dict, field: str) -> str:
    """`body` as JSON text, the string at `field` ending in a lone surrogate escape."""
    marker = "@@SURROGATE@@"
    body = copy.deepcopy(body)
    *parents, last = [int(p) if p.isdigit() else p for p in field.split(".")]
    node = body
    for part in parents:
        node = node[part]
    node[last] = node[last] + marker
    return json.dumps(body).replace(marker, SURROGATE)


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[inprocess.Stack]:
    with inprocess.stack(tmp_path, monkeypatch) as services:
        yield services


@pytest.mark.parametrize(("service", "path", "body", "field"), CASES,
                         ids=[f"{case[0]}{case[1]}:{case[3]}" for case in CASES])
def test_a_lone_surrogate_is_a_client_error_naming_the_field(stack: inprocess.Stack, service: str, path: str,
                                                             body: dict, field: str) -> None:
    before = stack.side_effects()
    client = getattr(stack, service)
    response = client.post(path, content=with_surrogate(body, field), headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
    error = response.json()["error"]
    assert error["fields"] == [field] and field in error["message"] and "surrogate" in error["message"]
    assert stack.side_effects() == before


def test_a_key_with_a_surrogate_is_refused_too(stack: inprocess.Stack) -> None:
    body = '{"status": "firing", "receiver": "r", "alerts": [{"status": "firing", "labels": {"a\\udfff": "x"}, ' \
           '"startsAt": "now"}]}'
    response = stack.receiver.post("/hook/chat", content=body)
    assert response.status_code == 422 and "alerts.0.labels" in response.json()["error"]["message"]
    assert stack.notifications() == 0


def test_invalid_utf8_bytes_are_a_client_error(stack: inprocess.Stack) -> None:
    before = stack.side_effects()
    body = b'{"model": "sim-fast", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}'
    response = stack.gateway.post("/v1/chat/completions", content=body)
    assert response.status_code == 400 and "UTF-8" in response.json()["error"]["message"]
    assert stack.side_effects() == before


def test_a_valid_surrogate_pair_still_passes(stack: inprocess.Stack) -> None:
    body = with_surrogate(CHAT, "messages.1.content").replace(SURROGATE, "\\ud83d\\ude00")
    response = stack.gateway.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert stack.rows() == 1 and stack.billed()[0] == 1
