"""Stack check for lab V3: the student's rules (student_rules.yml) and routing (student_alertmanager.yml), written by
the re-run notebook into the autograded folder, on the live stack.

A temporary Prometheus (own data folder, free 127.0.0.1 port, evaluation every second) loads the student's
rules and scrapes the live gateway; a temporary Alertmanager (own storage, no clustering) runs the student's routing
with every receiver's webhook pointed at the live receiver's /hook/<receiver>. Every sim-fast call of the live llmsim
fails for a while, bounded traffic (stack/traffic.py) goes through the gateway, and the critical LLMHighErrorRatio
for sim-fast must reach the receiver's pager channel. An external label with a fresh token marks the temporary
Prometheus's alerts, so notifications from the stack's own Alertmanager never count. The fault is healed and the
temporary processes stopped whatever happens. To finish in seconds every `for` and group_wait is cut to 0 s: the
promtool scenarios of the notebook grade the timing."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from graders.v3 import alertmanager as am
from graders.v3.rules import RULES_FILE
from stack import topology
from stack.traffic import SteadyTraffic

FAULT_MODEL = "sim-fast"
TRAFFIC_PER_SECOND = 8
WAIT_SECONDS = 20
FAULT_SECONDS = 60  # llmsim heals the fault by itself after this, should anything below fail to heal it
TOKEN_LABEL = "v3_live_check"
# Prometheus hands its first targets to the scrape and notify managers only after 5 s (its discovery throttle); a
# short scrape interval then gives the rate windows their two samples quickly.
SCRAPE_INTERVAL = "500ms"


def _read_yaml(path: Path, exercise: str) -> dict:
    if not path.is_file():
        pytest.fail(f"no {path.name} in the graded folder: run the notebook to the end ({exercise} writes it)",
                    pytrace=False)
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        pytest.fail(f"{path.name} is not valid YAML ({str(error).splitlines()[0]})", pytrace=False)
    return content if isinstance(content, dict) else {}


def _has_critical_error_ratio(rules: dict) -> bool:
    return any(rule.get("alert") == "LLMHighErrorRatio" and (rule.get("labels") or {}).get("severity") == "critical"
               for group in rules.get("groups") or [] for rule in group.get("rules") or [])


def _stack_problem() -> str | None:
    for name in ("gateway", "llmsim", "receiver"):
        service = topology.load()[name]
        try:
            if httpx.get(service.url + service.health, timeout=2).status_code == 200:
                continue
        except httpx.HTTPError:
            pass
        return f"{name} does not answer at {service.url}"
    return None


def _our_pages(token: str) -> tuple[list[dict], list[dict]]:
    """(pager notifications of our critical sim-fast error ratio, chat notifications of anything critical of ours)."""
    receiver = topology.load()["receiver"].url
    found = httpx.get(f"{receiver}/api/notifications", params={"alertname": "LLMHighErrorRatio", "limit": 500},
                      timeout=5).json()["notifications"]
    # the stack's own Alertmanager posts PagerDuty events and Slack messages (no `alerts`): never ours
    ours = [(n["channel"], alert) for n in found if n["format"] == "webhook" for alert in n["payload"]["alerts"]
            if alert["labels"].get(TOKEN_LABEL) == token]
    pages = [alert for channel, alert in ours if channel == "pager" and alert["labels"].get("severity") == "critical"
             and alert["labels"].get("model") == FAULT_MODEL]
    misrouted = [{**alert, "channel": channel} for channel, alert in ours
                 if channel != "pager" and alert["labels"].get("severity") == "critical"]
    return pages, misrouted


@pytest.mark.points(2)
def test_a_live_fault_pages_through_your_rules_and_routes(submission: Path) -> None:
    """live: a provider fault pages through your rules and routing"""
    rules = _read_yaml(submission / RULES_FILE, "the cell after exercise 9")
    assert _has_critical_error_ratio(rules), (f"{RULES_FILE} has no LLMHighErrorRatio rule with severity critical "
                                              "(exercise 4), so nothing can page. Hint: finish exercise 4 and re-run "
                                              "the notebook")
    config = _read_yaml(submission / am.ALERTMANAGER_FILE, "the cell after exercise 10")
    try:
        am.check_config(config)
    except AssertionError as error:
        pytest.fail(f"{am.ALERTMANAGER_FILE}: {error}", pytrace=False)
    problem = _stack_problem()
    assert problem is None, f"the stack is not running ({problem}). Hint: `make up`, then `make grade LAB=v3` again"

    token = uuid.uuid4().hex[:12]
    gateway, llmsim = topology.load()["gateway"], topology.load()["llmsim"].url
    pages: list[dict] = []
    misrouted: list[dict] = []
    with am.temporary_alertmanager(am.live_alertmanager(config)) as alertmanager:
        prometheus_config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL,
                       "evaluation_interval": "1s", "external_labels": {TOKEN_LABEL: token}},
            "alerting": {"alertmanagers": [{"static_configs": [
                {"targets": [alertmanager.url.removeprefix("http://")]}]}]},
            "scrape_configs": [{"job_name": "gateway", "static_configs": [{"targets": [gateway.address]}]}],
        }
        with am.temporary_prometheus(prometheus_config, am.live_rules(rules)):
            try:
                httpx.post(f"{llmsim}/faults", json={"error_rate": 1.0, "models": [FAULT_MODEL],
                                                     "duration_seconds": FAULT_SECONDS}, timeout=5).raise_for_status()
                with SteadyTraffic(FAULT_MODEL, TRAFFIC_PER_SECOND, max_requests=TRAFFIC_PER_SECOND * WAIT_SECONDS,
                                   max_seconds=WAIT_SECONDS):
                    deadline = time.monotonic() + WAIT_SECONDS
                    while time.monotonic() < deadline:
                        pages, misrouted = _our_pages(token)
                        if pages:
                            break
                        if misrouted:  # it fired and went elsewhere: give the pager a moment, then stop waiting
                            deadline = min(deadline, time.monotonic() + 2)
                        time.sleep(0.25)
            finally:
                httpx.delete(f"{llmsim}/faults", timeout=5)
    assert pages or not misrouted, (f"your critical LLMHighErrorRatio for {FAULT_MODEL} reached the "
                                    f"{misrouted[0].get('channel', 'chat')} channel, not the pager. Hint: route "
                                    "severity=\"critical\" to the pager receiver")
    assert pages, (f"every {FAULT_MODEL} call failed for {WAIT_SECONDS}s, but no critical LLMHighErrorRatio for "
                   f"{FAULT_MODEL} from your rules reached the receiver's pager channel. Hint: load "
                   f"{RULES_FILE} into Prometheus (make up uses the stack's rules) and check that it fires on the "
                   f"live gateway's series, and that {am.ALERTMANAGER_FILE} routes critical alerts to pager")
