"""Real alerts end to end: a fault in the provider → Prometheus rule → Alertmanager route → receiver channel,
where they arrive as Alertmanager rendered them from stack/alertmanager/templates (a PagerDuty event on `pager`, a
Slack message on `chat`)."""

from __future__ import annotations

import re
import shlex
import subprocess
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from stack import promapi
from stack.runner import binaries, control, processes
from stack.traffic import SteadyTraffic
from tests import live
from tests.browser import chromium
from tests.conftest import LiveStack

pytestmark = pytest.mark.stack
# Classroom profile: 20 s rate window, 10 s `for`, 2 s group_wait, 5 s group_interval; generous bounds.
FIRE_TIMEOUT = 60
RESOLVE_TIMEOUT = 75


def _firing_in(channel: str, alertname: str) -> list[dict]:
    return live.notifications(channel=channel, alertname=alertname, status="firing")


def _alert_lines(notification: dict, status: str) -> str:
    """The pager event's lines for its alerts in `status` (`• <summary> · model `<model>``, one per alert)."""
    return notification["payload"]["payload"]["custom_details"].get(status, "")


def _about_model(notifications: list[dict], model: str, status: str = "firing") -> list[dict]:
    """Pager events listing an alert in `status` for `model` (other models' alerts, left over from earlier tests, may
    share the group and make the event as a whole a trigger)."""
    return [n for n in notifications if f"model `{model}`" in _alert_lines(n, status)]


def _links(notification: dict) -> dict[str, str]:
    return {link["text"]: link["url"] for link in notification["message"]["links"]}


def _runbook(alertname: str) -> str:
    return f"{live.url('receiver')}/runbooks/{alertname}"


def _every_notification_links_its_runbook() -> None:
    for notification in live.notifications(limit="1000"):
        urls = [link["url"] for link in notification["message"]["links"]]
        missing = [name for name in notification["alertnames"] if _runbook(name) not in urls]
        assert not missing, f"notification {notification['id']} on #{notification['channel']} has no runbook link " \
                            f"for {missing}: {notification['message']}"


def _warning_inhibited(model: str) -> bool:
    """The warning twin of a critical alert is held back by the inhibit rule (a warning that crossed its lower
    threshold a moment earlier may already have been sent to chat; from now on it is suppressed)."""
    alerts = httpx.get(f"{live.url('alertmanager')}/api/v2/alerts",
                       params={"filter": ['alertname="LLMHighErrorRatio"', f'model="{model}"',
                                          'severity="warning"']}, timeout=5).json()
    return any(a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] for a in alerts)


def _run_amtool(command_line: str) -> str:
    """Runs an `amtool ...` command line as a user pastes it (the binary found as the stack finds it)."""
    words = shlex.split(command_line)
    assert words[0] == "amtool", command_line
    result = subprocess.run([binaries.find("amtool"), *words[1:]], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"`{command_line}` failed: {result.stdout}{result.stderr}"
    return result.stdout.strip()


def test_provider_errors_page_on_the_critical_route_then_resolve(stack: LiveStack) -> None:
    live.set_faults(error_rate=0.6, models=["sim-fast"], duration_seconds=120)
    with SteadyTraffic("sim-fast", rate=4, max_requests=600, max_seconds=180) as traffic:
        paged = live.eventually(lambda: _about_model(_firing_in("pager", "LLMHighErrorRatio"), "sim-fast"),
                                FIRE_TIMEOUT, "LLMHighErrorRatio for sim-fast to reach the pager channel")
        page = paged[-1]["message"]  # the first event of the incident
        assert paged[-1]["format"] == "pagerduty"
        assert re.fullmatch(r"\[FIRING:\d+\] LLMHighErrorRatio critical: .+ of requests fail.*", page["title"]), page
        assert page["severity"] == "critical"
        assert _links(paged[-1])["Runbook"] == _runbook("LLMHighErrorRatio")
        assert page["dedup_key"], page
        live.eventually(lambda: _warning_inhibited("sim-fast"), 15,
                        "Alertmanager to mark the sim-fast warning as inhibited by the critical")
        assert traffic.result.by_status[502] > 0, f"gateway never answered 502: {traffic.result}"

        live.heal_faults()
        live.eventually(
            lambda: _about_model(live.notifications(channel="pager", alertname="LLMHighErrorRatio"), "sim-fast",
                                 status="resolved"),
            RESOLVE_TIMEOUT, "the resolved notification for sim-fast on the pager channel")
    assert traffic.result.transport_errors == 0
    # one incident in PagerDuty: every event of the group, trigger, repeat or resolve, carries the same dedup key
    events = live.notifications(channel="pager", alertname="LLMHighErrorRatio")
    assert len(events) >= 2 and {e["message"]["dedup_key"] for e in events} == {page["dedup_key"]}, events
    _every_notification_links_its_runbook()


def test_a_warning_reads_like_a_slack_message_with_runbook_and_silence_links(stack: LiveStack) -> None:
    live.set_faults(added_latency_seconds=6, models=["sim-fast"], duration_seconds=120)
    with SteadyTraffic("sim-fast", rate=2, max_requests=400, max_seconds=150):
        posted = live.eventually(lambda: _firing_in("chat", "LLMLatencyP95High"), FIRE_TIMEOUT,
                                 "LLMLatencyP95High to reach the chat channel")
    live.heal_faults()
    chat, message = posted[-1], posted[-1]["message"]
    assert chat["format"] == "slack" and chat["receiver"] == "chat"
    assert re.fullmatch(r"\[FIRING:\d+\] LLMLatencyP95High warning", message["title"]), message
    assert message["severity"] == "warning"
    assert re.search(r"^• sim-fast: p95 latency .+ · model `sim-fast`$", message["text"], re.MULTILINE), message
    links = _links(chat)
    assert links["Runbook"] == _runbook("LLMLatencyP95High") and f"<{links['Runbook']}|" in message["text"]
    assert httpx.get(links["Runbook"], timeout=5).status_code == 200

    silence = urlsplit(links["Silence"])
    assert f"{silence.scheme}://{silence.netloc}" == live.url("alertmanager")
    assert f"<{links['Silence']}|" in message["text"]
    assert silence.fragment.startswith("/silences/new?filter=")
    assert unquote(silence.fragment.split("filter=", 1)[1]) == '{alertname="LLMLatencyP95High",severity="warning"}'
    # Debian's Alertmanager has no web UI for that link: the amtool line in the text makes the same silence
    command = message["text"].rsplit("`amtool ", 1)[1].split("`", 1)[0]
    silence_id = _run_amtool("amtool " + command)
    try:
        made = httpx.get(f"{live.url('alertmanager')}/api/v2/silence/{silence_id}", timeout=5).json()
        assert sorted((m["name"], m["value"], m["isEqual"], m["isRegex"]) for m in made["matchers"]) == [
            ("alertname", "LLMLatencyP95High", True, False), ("severity", "warning", True, False)], made
    finally:
        httpx.delete(f"{live.url('alertmanager')}/api/v2/silence/{silence_id}", timeout=5).raise_for_status()
    _the_page_shows(message, links)
    _every_notification_links_its_runbook()


def _the_page_shows(message: dict, links: dict[str, str]) -> None:
    """The receiver's page shows the chat message as rendered: title, severity, text with its links, buttons."""
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(live.url("receiver") + "/")
        article = page.locator('section[data-channel="chat"] article[data-format="slack"]').filter(
            has_text=message["title"]).first
        expect(article.locator(".title")).to_have_text(message["title"] + message["severity"], timeout=10_000)
        expect(article.locator(".text a").first).to_have_attribute("href", links["Runbook"])
        expect(article.locator(".text code", has_text="sim-fast")).to_have_count(1)
        expect(article.locator(".text code", has_text="amtool silence add")).to_have_count(1)
        for text, url in links.items():
            expect(article.locator(".links a", has_text=text)).to_have_attribute("href", url)
        assert errors == [], f"the receiver's page had JavaScript errors: {errors}"


@live.GATEWAY_OUTAGES
def test_a_stopped_gateway_fires_target_down_and_metrics_absent(stack: LiveStack) -> None:
    assert processes.stop(stack.run, "gateway")
    try:
        down = live.eventually(lambda: [n for n in _firing_in("pager", "TargetDown")
                                        if "• gateway at " in _alert_lines(n, "firing")], FIRE_TIMEOUT,
                               "TargetDown for the gateway to reach the pager channel")
        assert down[0]["message"]["severity"] == "critical"
        absent = live.eventually(lambda: _firing_in("chat", "LLMMetricsAbsent"), FIRE_TIMEOUT,
                                 "LLMMetricsAbsent to reach the chat channel")
        assert absent[0]["message"]["severity"] == "warning"
        _every_notification_links_its_runbook()
    finally:
        control.up("classroom", stack.run)
    assert httpx.get(f"{live.url('gateway')}/health", timeout=5).status_code == 200
    live.eventually(lambda: promapi.scalar('up{job="gateway"}') == 1, 30, "the gateway target to be up again")
