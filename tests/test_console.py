"""The instructor console (stack/console, at /console on the receiver's port) in a real headless browser, and its
JSON API's answers to mistakes.

The browser is Debian's chromium (/usr/bin/chromium, which `make test` installs), driven by the playwright Python
package; Playwright's own browser download is never used. Without chromium the test fails and says how to get it.
The browser test triggers metrics-endpoint-down from the page (TargetDown fires ~7 s after the trigger and reaches
the `pager` channel at ~9 s in the classroom profile), watches its state and the notification feed, heals it from
the page and sees the resolved notification.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from stack import profiles, topology
from stack.scenarios import engine, registry
from tests import live
from tests.browser import chromium
from tests.conftest import LiveStack

pytestmark = pytest.mark.stack

SCENARIO = "metrics-endpoint-down"
KEY_ALERT = 'TargetDown{job="gateway"}'
RUN_FOR_SECONDS = 90  # longer than the test needs: the Heal button, not the timer, ends it
START_MS = 30_000  # engine.start waits for the fault to be applied (~2 s)
NOTIFICATION_MS = 45_000  # TargetDown reaches `pager` ~9 s after the trigger
HEAL_MS = 60_000  # healing metrics-endpoint-down is one HTTP call; resolved follows ~2 s later


def _console_url() -> str:
    return f"{live.url('receiver')}/console"


@pytest.fixture
def console(stack: LiveStack) -> Iterator[LiveStack]:
    """No scenario before or after (the second heal ends the driver's recovery recording too)."""
    engine.heal(stack.run)
    yield stack
    engine.heal(stack.run)
    engine.heal(stack.run)


@live.GATEWAY_OUTAGES
def test_trigger_and_heal_from_the_page(console: LiveStack) -> None:
    with chromium() as browser:
        _trigger_and_heal(browser)


def _trigger_and_heal(browser) -> None:  # noqa: ANN001 - a playwright Browser
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.goto(_console_url())

    card = page.locator(f'section.scenario[data-scenario="{SCENARIO}"]')
    expect(page.locator("section.scenario")).to_have_count(len(registry.load()))
    expect(card.locator(".phase")).to_have_text("idle")
    expect(card.locator("button.heal")).to_be_disabled()

    card.locator("input.duration").fill(str(RUN_FOR_SECONDS))
    card.locator("button.trigger").click()
    expect(card).to_have_attribute("data-phase", re.compile("^(starting|running)$"), timeout=START_MS)
    expect(card).to_have_attribute("data-phase", "running", timeout=START_MS)
    expect(card.locator(".phase")).to_have_text("running")
    expect(card.locator(".head .clock")).to_contain_text("heals by itself in")
    expect(page.locator("#status")).to_contain_text(f"running: {SCENARIO}")

    # the notification arrives in the feed, and the engine's transitions show in the scenario's card
    firing = page.locator('#feed article[data-status="firing"][data-channel="pager"]').filter(has_text="TargetDown")
    expect(firing.first).to_be_visible(timeout=NOTIFICATION_MS)
    expect(firing.first).to_contain_text("after the trigger")
    events = card.locator("ol.events")
    for transition in (f"{KEY_ALERT} pending", f"{KEY_ALERT} firing", "notification firing TargetDown on pager"):
        expect(events).to_contain_text(transition, timeout=10_000)
    pending_and_firing = re.compile(r"expected\s*\+[\d.]+s\s*\+[\d.]+s")  # seconds after the trigger
    expect(card.locator(f"table.alerts tr[data-alert='{KEY_ALERT}']")).to_contain_text(pending_and_firing)

    card.locator("button.heal").click()
    expect(card).to_have_attribute("data-phase", "healed", timeout=HEAL_MS)
    expect(page.locator("#message")).to_contain_text(f"healed {SCENARIO}")
    expect(events).to_contain_text(f"{KEY_ALERT} resolved", timeout=HEAL_MS)
    resolved = page.locator('#feed article[data-status="resolved"][data-channel="pager"]').filter(has_text="TargetDown")
    expect(resolved.first).to_be_visible(timeout=HEAL_MS)
    expect(page.locator("#status")).to_contain_text("no scenario running")

    # the signature link opens Prometheus' classic graph with the query in it
    link = card.locator("a.graph-link").first
    expect(link).to_have_text(registry.get(SCENARIO).key_signal.label)
    graph = browser.new_page()
    graph.goto(link.get_attribute("href"))
    expect(graph.locator("textarea[name=expr]").first).to_have_value('up{job="gateway"}', timeout=15_000)
    assert page_errors == [], f"the console page had JavaScript errors: {page_errors}"


def test_api_lists_every_scenario_with_prometheus_links(stack: LiveStack) -> None:
    body = httpx.get(f"{_console_url()}/api/scenarios", timeout=10).json()
    scenarios = registry.load()
    assert [s["name"] for s in body["scenarios"]] == list(scenarios)
    prometheus = topology.load().services["prometheus"].url
    profile = profiles.load("classroom")
    for item in body["scenarios"]:
        assert item["state"]["phase"] in ("idle", "healed"), item["state"]
        for signal, shown in zip(scenarios[item["name"]].signature, item["signature"], strict=True):
            url = urlsplit(shown["graph_url"])
            assert f"{url.scheme}://{url.netloc}{url.path}" == f"{prometheus}/classic/graph"
            params = parse_qs(url.query)
            assert params["g0.expr"] == [signal.render(profile)] and params["g0.tab"] == ["0"], shown
            assert "=" not in url.query.split("g0.expr=", 1)[1].split("&", 1)[0]  # the classic UI splits on '='
    one = httpx.get(f"{_console_url()}/api/scenarios/{SCENARIO}", timeout=10).json()
    assert one["name"] == SCENARIO and one["expected_alerts"] == [KEY_ALERT, "LLMMetricsAbsent"]


@pytest.mark.parametrize("method, path", [("GET", "/api/scenarios/no-such-thing"),
                                          ("POST", "/api/scenarios/no-such-thing/break")])
def test_unknown_scenario_is_a_404_naming_the_known_ones(stack: LiveStack, method: str, path: str) -> None:
    response = httpx.request(method, _console_url() + path, timeout=10)
    assert response.status_code == 404, response.text
    message = response.json()["error"]["message"]
    assert "no-such-thing" in message and all(name in message for name in registry.load()), message


@pytest.mark.parametrize("body, words", [
    ('{"duration": 5}', ["duration 5s", "10..900"]),
    ('{"duration": 901}', ["duration 901s", "10..900"]),
    ('{"duration": "soon"}', ["duration must be a number", '"soon"']),
    ('{"duration": true}', ["duration must be a number"]),
    ('{"minutes": 3}', ["unknown field", "minutes"]),
    ("not json", ["not valid JSON"]),
])
def test_bad_trigger_is_a_422_naming_the_problem(stack: LiveStack, body: str, words: list[str]) -> None:
    response = httpx.post(f"{_console_url()}/api/scenarios/{SCENARIO}/break", content=body,
                          headers={"content-type": "application/json"}, timeout=10)
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert all(word in message for word in words), message
    assert not engine.is_active(engine.read_state(stack.run), stack.run), "a rejected trigger must change nothing"


def test_cross_site_posts_are_refused(stack: LiveStack) -> None:
    port = topology.load().services["receiver"].port
    for path in (f"/api/scenarios/{SCENARIO}/break", "/api/heal"):
        for headers, words in (({"origin": "http://example.com"}, "cross-site request from http://example.com"),
                               ({"origin": "null"}, "cross-site request from null"),
                               ({"host": f"rebound.example.com:{port}"}, "not 'rebound.example.com")):
            response = httpx.post(_console_url() + path, headers=headers, timeout=10)
            assert response.status_code == 403, response.text
            assert words in response.json()["error"]["message"]
    assert not engine.is_active(engine.read_state(stack.run), stack.run)


def test_only_loopback_clients_may_trigger_or_heal(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from stack.console.app import create_app

    client = TestClient(create_app(data_dir=tmp_path / "receiver"), client=("192.0.2.7", 40000))
    for path in (f"/console/api/scenarios/{SCENARIO}/break", "/console/api/heal"):
        response = client.post(path)
        assert response.status_code == 403, response.text
        assert "192.0.2.7 is not" in response.json()["error"]["message"]
    assert client.get("/console").status_code == 200
