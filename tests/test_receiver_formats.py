"""The receiver takes the chat and pager notifications in the shapes Alertmanager posts them (a Slack message on
/hook/<channel>/slack, a PagerDuty Events API v2 event on /hook/<channel>/pagerduty), besides its own webhook on
/hook/<channel>: it files each by its headline, shows what Alertmanager rendered, and refuses a malformed one with a
4xx naming the field, storing nothing. The bodies below are the ones Alertmanager 0.25 posts with the stack's
templates (tests/test_stack_alerts.py sees the real ones)."""

from __future__ import annotations

import copy
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stack.receiver.app import create_app

RUNBOOK = "http://127.0.0.1:18702/runbooks/LLMLatencyP95High"
SILENCE = ("http://127.0.0.1:18793/#/silences/new?filter=%7Balertname%3D%22LLMLatencyP95High%22%2C"
           "severity%3D%22warning%22%7D")
AMTOOL = ("amtool silence add --alertmanager.url=http://127.0.0.1:18793 --duration=2h "
          "--comment='acknowledged from the notification' 'alertname=\"LLMLatencyP95High\"' 'severity=\"warning\"'")
SLACK = {
    "channel": "#chat", "username": "Alertmanager",
    "attachments": [{
        "title": "[FIRING:1] LLMLatencyP95High warning", "title_link": RUNBOOK,
        "text": f"• sim-fast: p95 latency 9.5s · model `sim-fast`\n*Runbook:* <{RUNBOOK}|LLMLatencyP95High>\n"
                f"*Silence:* <{SILENCE}|silence this group>, or from a terminal (Debian's Alertmanager has no web "
                f"UI):\n`{AMTOOL}`",
        "fallback": "[FIRING:1] LLMLatencyP95High warning: sim-fast: p95 latency 9.5s", "callback_id": "",
        "fields": [{"title": "Severity", "value": "warning", "short": True}],
        "actions": [{"type": "button", "text": "Runbook", "url": RUNBOOK},
                    {"type": "button", "text": "Silence", "url": SILENCE}],
        "footer": "", "color": "warning", "mrkdwn_in": ["fallback", "pretext", "text"],
    }],
}
DEDUP_KEY = "5591295c3e04aa5390bff0a74d5e798e595f7006ba3caf2c04fd571c68142a39"
PAGERDUTY = {
    "routing_key": "llmobs-lab", "dedup_key": DEDUP_KEY, "event_action": "trigger",
    "payload": {"summary": "[FIRING:1] TargetDown critical: gateway at 127.0.0.1:18700 is down",
                "source": "Alertmanager", "severity": "critical", "class": "TargetDown",
                "custom_details": {"firing": "• gateway at 127.0.0.1:18700 is down\n", "num_firing": "1",
                                   "num_resolved": "0", "resolved": "", "silence": AMTOOL}},
    "client": "Alertmanager", "client_url": "http://127.0.0.1:18793/#/alerts?receiver=pager",
    "links": [{"href": "http://127.0.0.1:18702/runbooks/TargetDown", "text": "Runbook"},
              {"href": SILENCE, "text": "Silence"}],
}


@pytest.fixture
def receiver(tmp_path: Path) -> TestClient:
    with TestClient(create_app(data_dir=tmp_path)) as client:
        yield client


def _listed(receiver: TestClient, **filters: str) -> list[dict]:
    return receiver.get("/api/notifications", params=filters).json()["notifications"]


def test_a_slack_message_is_filed_by_its_headline_and_shown_as_rendered(receiver: TestClient) -> None:
    response = receiver.post("/hook/chat/slack", json=SLACK)
    assert response.status_code == 200 and response.json()["ok"] is True  # what Alertmanager checks of Slack
    [stored] = _listed(receiver, channel="chat", status="firing", alertname="LLMLatencyP95High")
    assert (stored["format"], stored["receiver"], stored["alert_count"]) == ("slack", "chat", 1)
    assert stored["message"] == {
        "title": "[FIRING:1] LLMLatencyP95High warning", "text": SLACK["attachments"][0]["text"],
        "severity": "warning", "dedup_key": None,
        "links": [{"text": "Runbook", "url": RUNBOOK}, {"text": "Silence", "url": SILENCE}]}
    assert stored["payload"]["attachments"][0]["fields"] == SLACK["attachments"][0]["fields"]


def test_a_pagerduty_event_is_accepted_like_pagerduty_and_keeps_its_dedup_key(receiver: TestClient) -> None:
    response = receiver.post("/hook/pager/pagerduty", json=PAGERDUTY)
    assert response.status_code == 202
    assert response.json()["status"] == "success" and response.json()["dedup_key"] == DEDUP_KEY
    resolve = copy.deepcopy(PAGERDUTY)
    resolve["event_action"] = "resolve"
    resolve["payload"]["summary"] = "[RESOLVED:1] TargetDown critical: gateway at 127.0.0.1:18700 is down"
    assert receiver.post("/hook/pager/pagerduty", json=resolve).status_code == 202
    resolved, triggered = _listed(receiver, channel="pager", alertname="TargetDown")
    assert (triggered["status"], resolved["status"]) == ("firing", "resolved")
    assert triggered["message"]["dedup_key"] == resolved["message"]["dedup_key"] == DEDUP_KEY
    assert triggered["message"]["severity"] == "critical"
    assert triggered["message"]["title"] == PAGERDUTY["payload"]["summary"]
    assert "firing: • gateway at 127.0.0.1:18700 is down" in triggered["message"]["text"]
    assert {"text": "Runbook", "url": "http://127.0.0.1:18702/runbooks/TargetDown"} in triggered["message"]["links"]
    assert triggered["payload"]["payload"]["class"] == "TargetDown"  # stored as sent, not under a Python name


def _without(body: dict, path: str) -> dict:
    body = copy.deepcopy(body)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = body
    for part in parents:
        node = node[part]
    del node[last]
    return body


def _with(body: dict, path: str, value: object) -> dict:
    body = copy.deepcopy(body)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = body
    for part in parents:
        node = node[part]
    node[last] = value
    return body


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/hook/chat/slack", _with(SLACK, "attachments.0.title", "LLMLatencyP95High is firing"), "attachments.0.title"),
    ("/hook/chat/slack", _with(SLACK, "attachments", []), "attachments"),
    ("/hook/chat/slack", _without(SLACK, "attachments.0.title"), "attachments.0.title"),
    ("/hook/chat/slack", _with(SLACK, "attachments.0.fields.0.value", 3), "attachments.0.fields.0.value"),
    ("/hook/pager/pagerduty", _without(PAGERDUTY, "dedup_key"), "dedup_key"),
    ("/hook/pager/pagerduty", _with(PAGERDUTY, "event_action", "escalate"), "event_action"),
    ("/hook/pager/pagerduty", _with(PAGERDUTY, "payload.severity", "page"), "payload.severity"),
    ("/hook/pager/pagerduty", _with(PAGERDUTY, "payload.summary", "gateway is down"), "payload.summary"),
    ("/hook/pager/pagerduty", _without(PAGERDUTY, "routing_key"), "routing_key"),
    ("/hook/pager/pagerduty", SLACK, "routing_key"),  # a Slack message posted to the PagerDuty hook
    ("/hook/chat/slack", PAGERDUTY, "attachments"),
])
def test_a_malformed_notification_is_refused_naming_the_field_and_nothing_is_stored(
        receiver: TestClient, path: str, body: dict, field: str) -> None:
    response = receiver.post(path, json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"], response.json()
    assert _listed(receiver) == []


def test_a_bad_channel_name_is_refused_for_every_format(receiver: TestClient) -> None:
    for path, body in (("/hook/Chat!/slack", SLACK), ("/hook/Pager!/pagerduty", PAGERDUTY)):
        assert receiver.post(path, json=body).status_code == 404
    assert _listed(receiver) == []


def test_each_channel_keeps_its_own_and_counts_them(receiver: TestClient) -> None:
    assert receiver.post("/hook/chat/slack", json=SLACK).status_code == 200
    assert receiver.post("/hook/pager/pagerduty", json=PAGERDUTY).status_code == 202
    assert [n["format"] for n in _listed(receiver, channel="chat")] == ["slack"]
    assert [n["format"] for n in _listed(receiver, channel="pager")] == ["pagerduty"]
    metrics = receiver.get("/metrics").text
    assert 'alert_receiver_notifications_total{channel="chat",status="firing"} 1.0' in metrics
    assert 'alert_receiver_notifications_total{channel="pager",status="firing"} 1.0' in metrics


def test_a_store_from_before_the_formats_lists_its_webhooks(tmp_path: Path) -> None:
    """A notifications.db written by the previous receiver (no `format` column) opens, and its rows are webhooks."""
    with sqlite3.connect(tmp_path / "notifications.db") as db:
        db.execute("CREATE TABLE notifications (id INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL NOT NULL, "
                   "channel TEXT NOT NULL, receiver TEXT NOT NULL, status TEXT NOT NULL, alertnames TEXT NOT NULL, "
                   "alert_count INTEGER NOT NULL, payload TEXT NOT NULL)")
        db.execute("INSERT INTO notifications VALUES (1, 1.0, 'pager', 'pager', 'firing', 'TargetDown', 1, ?)", (
            '{"status": "firing", "receiver": "pager", "alerts": [{"status": "firing", "labels": {"alertname": '
            '"TargetDown"}, "annotations": {"runbook_url": "http://127.0.0.1:18702/runbooks/TargetDown"}, '
            '"startsAt": "2026-01-01T00:00:00Z"}]}',))
    with TestClient(create_app(data_dir=tmp_path)) as receiver:
        [old] = _listed(receiver)
        assert old["format"] == "webhook"
        assert old["message"]["links"] == [{"text": "Runbook", "url": "http://127.0.0.1:18702/runbooks/TargetDown"}]
        assert receiver.post("/hook/chat/slack", json=SLACK).status_code == 200
        assert [n["format"] for n in _listed(receiver)] == ["slack", "webhook"]
