"""Real alerts end to end: a fault in the provider → Prometheus rule → Alertmanager route → receiver channel."""

from __future__ import annotations

import httpx
import pytest

from stack import promapi
from stack.runner import control, processes
from stack.traffic import SteadyTraffic
from tests import live
from tests.conftest import LiveStack

pytestmark = pytest.mark.stack
# Classroom profile: 20 s rate window, 10 s `for`, 2 s group_wait, 5 s group_interval; generous bounds.
FIRE_TIMEOUT = 60
RESOLVE_TIMEOUT = 75


def _firing_in(channel: str, alertname: str) -> list[dict]:
    return live.notifications(channel=channel, alertname=alertname, status="firing")


def _alert_labels(notification: dict) -> list[dict]:
    return [alert["labels"] for alert in notification["payload"]["alerts"]]


def _about_model(notifications: list[dict], model: str, status: str = "firing") -> list[dict]:
    """Notifications carrying an alert in `status` for `model` (other models' alerts, left over from earlier
    tests, may share the group and make the notification as a whole 'firing')."""
    return [n for n in notifications
            if any(a["labels"].get("model") == model and a["status"] == status for a in n["payload"]["alerts"])]


def _warning_inhibited(model: str) -> bool:
    """The warning twin of a critical alert is held back by the inhibit rule (a warning that crossed its lower
    threshold a moment earlier may already have been sent to chat; from now on it is suppressed)."""
    alerts = httpx.get(f"{live.url('alertmanager')}/api/v2/alerts",
                       params={"filter": ['alertname="LLMHighErrorRatio"', f'model="{model}"',
                                          'severity="warning"']}, timeout=5).json()
    return any(a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] for a in alerts)


def test_provider_errors_page_on_the_critical_route_then_resolve(stack: LiveStack) -> None:
    live.set_faults(error_rate=0.6, models=["sim-fast"], duration_seconds=120)
    with SteadyTraffic("sim-fast", rate=4, max_requests=600, max_seconds=180) as traffic:
        paged = live.eventually(lambda: _about_model(_firing_in("pager", "LLMHighErrorRatio"), "sim-fast"),
                                FIRE_TIMEOUT, "LLMHighErrorRatio for sim-fast to reach the pager channel")
        alert = next(a for a in paged[0]["payload"]["alerts"] if a["labels"]["model"] == "sim-fast")
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["runbook_url"].endswith("/runbooks/LLMHighErrorRatio")
        live.eventually(lambda: _warning_inhibited("sim-fast"), 15,
                        "Alertmanager to mark the sim-fast warning as inhibited by the critical")
        assert traffic.result.by_status[502] > 0, f"gateway never answered 502: {traffic.result}"

        live.heal_faults()
        live.eventually(
            lambda: _about_model(live.notifications(channel="pager", alertname="LLMHighErrorRatio"), "sim-fast",
                                 status="resolved"),
            RESOLVE_TIMEOUT, "the resolved notification for sim-fast on the pager channel")
    assert traffic.result.transport_errors == 0


@live.GATEWAY_OUTAGES
def test_a_stopped_gateway_fires_target_down_and_metrics_absent(stack: LiveStack) -> None:
    assert processes.stop(stack.run, "gateway")
    try:
        down = live.eventually(lambda: _firing_in("pager", "TargetDown"), FIRE_TIMEOUT,
                               "TargetDown to reach the pager channel")
        assert any(labels["job"] == "gateway" for labels in _alert_labels(down[0]))
        absent = live.eventually(lambda: _firing_in("chat", "LLMMetricsAbsent"), FIRE_TIMEOUT,
                                 "LLMMetricsAbsent to reach the chat channel")
        assert _alert_labels(absent[0])[0]["severity"] == "warning"
    finally:
        control.up("classroom", stack.run)
    assert httpx.get(f"{live.url('gateway')}/health", timeout=5).status_code == 200
    live.eventually(lambda: promapi.scalar('up{job="gateway"}') == 1, 30, "the gateway target to be up again")
