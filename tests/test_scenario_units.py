"""The scenario registry loader, the naive storm config, and the fault knobs, without a running stack.

(tests/test_scenarios.py runs every scenario on the live stack.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient

from stack import catalog, faults, profiles
from stack.faults import CardinalityFault, GatewayFaults
from stack.gateway.app import create_app
from stack.gateway.faults import FaultState
from stack.llmsim.app import create_app as create_llmsim
from stack.llmsim.settings import Settings
from stack.paths import DOCS_DIR, REPO_ROOT
from stack.scenarios import registry
from stack.scenarios.kinds import alert_storm
from stack.scenarios.kinds.index import KINDS
from stack.scenarios.model import AlertMatcher, Condition, RegistryError
from stack.traffic import steady_body

GOOD = """
scenarios:
  demo-burst:
    kind: provider_fault
    title: Demo
    description: A demo.
    breaks: errors
    signature:
      - {label: ratio, query: 'model:llm_request_error_ratio:rate{model="sim-fast"}', broken: "> 0.2"}
    expected_alerts:
      - LLMHighErrorRatio{severity="critical"}
    params:
      faults: {error_rate: 0.5}
      traffic: [{model: sim-fast, rate: 2}]
"""


def _edit(path: str, value: object) -> str:
    """GOOD with one field of demo-burst replaced (value None removes it)."""
    raw = yaml.safe_load(GOOD)
    node = raw["scenarios"]["demo-burst"]
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return yaml.safe_dump(raw)


# ---------------------------------------------------------------------------------------------- registry

def test_the_registry_loads_and_covers_every_kind_and_the_required_scenarios() -> None:
    scenarios = registry.load()
    assert {s.kind for s in scenarios.values()} == set(KINDS)
    assert {"latency-spike", "rate-limit-storm", "error-burst", "cost-runaway", "cardinality-explosion",
            "alert-storm", "metrics-endpoint-down", "target-gone", "metric-renamed"} <= set(scenarios)
    for scenario in scenarios.values():
        assert scenario.key_signal.broken is not None
        assert 10 <= scenario.duration_seconds <= 900
        for signal in scenario.signature:
            assert "$" not in signal.render(profiles.load("classroom")), signal


def test_every_scenario_has_an_instructor_page_linking_its_alerts_runbooks() -> None:
    for scenario in registry.load().values():
        assert scenario.doc.exists(), f"missing {scenario.doc.relative_to(REPO_ROOT)}"
        text = scenario.doc.read_text()
        for name in {m.alertname for m in scenario.expected_alerts}:
            assert (DOCS_DIR / "runbooks" / f"{name}.md").exists()
            assert f"../runbooks/{name}.md" in text, f"{scenario.doc.name} does not link the {name} runbook"
        assert f"SCENARIO={scenario.name}" in text, f"{scenario.doc.name} does not say how to trigger it"
    script = DOCS_DIR / "instructor" / "demo-script.md"
    assert all(f"SCENARIO={name}" in script.read_text() or name in script.read_text()
               for name in registry.load())


def test_a_good_registry_parses() -> None:
    scenario = registry.parse(GOOD)["demo-burst"]
    assert scenario.duration_seconds == 180 and scenario.params["faults"] == {"error_rate": 0.5}
    assert str(scenario.expected_alerts[0]) == 'LLMHighErrorRatio{severity="critical"}'
    assert scenario.doc == DOCS_DIR / "instructor" / "demo-burst.md"


@pytest.mark.parametrize(("path", "value", "words"), [
    ("kind", "meteor", ["demo-burst", "unknown kind 'meteor'", "provider_fault"]),
    ("titel", "typo", ["demo-burst", "unknown field(s) titel"]),
    ("title", None, ["demo-burst", "missing title"]),
    ("expected_alerts", ["LLMHighErrorRate"], ["no alert rule named 'LLMHighErrorRate'", "LLMHighErrorRatio"]),
    ("expected_alerts", ["LLMHighErrorRatio{severity=critical}"], ["not label=\"value\""]),
    ("expected_alerts", [], ["expected_alerts", "non-empty"]),
    ("duration_seconds", 3600, ["duration_seconds", "outside 10..900"]),
    ("duration_seconds", "5m", ["number of seconds"]),
    ("signature", [{"label": "x", "query": "up", "broken": "above 4"}], ["not a condition"]),
    ("signature", [{"label": "x", "query": "up"}], ["key one and needs `broken`"]),
    ("signature", [{"label": "x", "query": "rate(x[$window])", "broken": "> 1"}], ["unknown placeholder",
                                                                                  "$rate_window"]),
    ("params.faults", {"error_rate": 2}, ["faults: error_rate", "less than or equal to 1"]),
    ("params.faults", {"eror_rate": 0.5}, ["unknown knob(s) eror_rate"]),
    ("params.faults", {"error_rate": 0.5, "duration_seconds": 9}, ["leave duration_seconds out"]),
    ("params.traffic", [{"model": "gpt-9", "rate": 1}], ["traffic #1", "unknown model 'gpt-9'"]),
    ("params.traffic", [{"model": "sim-fast", "rate": 500}], ["rate must be", "(0, 20]"]),
    ("params.traffic", [{"model": "sim-fast", "rate": 1, "department": "hr"}], ["unknown department 'hr'"]),
    ("params.traffic", [{"model": "sim-fast", "rate": 1, "max_tokens": 0}],
     ["max_tokens", f"1 to {catalog.load().max_output_tokens}"]),
    ("params.traffic", [{"model": "sim-fast", "rate": 1, "max_tokens": 2.5}], ["max_tokens", "whole number"]),
    ("params.extra", 1, ["unknown setting(s) extra"]),
])
def test_registry_mistakes_are_named(path: str, value: object, words: list[str]) -> None:
    with pytest.raises(RegistryError) as error:
        registry.parse(_edit(path, value))
    for word in words:
        assert word in str(error.value), f"{word!r} not in: {error.value}"


@pytest.mark.parametrize(("param", "value", "words"), [
    ("job", {"model": "sim-fast", "rate": 15, "floor": 0.2}, ["job: floor", "under the headroom alert's 10%"]),
    ("job", {"model": "sim-balanced", "rate": 15, "floor": 0.06}, ["job: model must be the application's (sim-fast)"]),
    ("job", {"model": "sim-fast", "rate": 1, "floor": 0.06}, ["refills 5 requests/s", "the job's plus the application's"]),
    ("spike_rate", 1, ["spike_rate must be above the application's traffic rate"]),
    ("faults", {"error_rate": 0.5}, ["faults must set rate_limit_scale"]),
])
def test_rate_limit_headroom_mistakes_are_named(param: str, value: object, words: list[str]) -> None:
    raw = yaml.safe_load(registry.REGISTRY_FILE.read_text())
    raw["scenarios"] = {"rate-limit-headroom": raw["scenarios"]["rate-limit-headroom"]}
    raw["scenarios"]["rate-limit-headroom"]["params"][param] = value
    with pytest.raises(RegistryError) as error:
        registry.parse(yaml.safe_dump(raw))
    for word in words:
        assert word in str(error.value), f"{word!r} not in: {error.value}"


def test_traffic_max_tokens_caps_every_answer_of_the_scenario() -> None:
    """provider-outage's traffic to the expensive model asks for short answers, streamed or not."""
    entry = registry.load()["provider-outage"].params["traffic"][0]
    bodies = [steady_body(entry["model"], n, entry["department"], stream_share=0.5, max_tokens=entry["max_tokens"])
              for n in range(4)]
    assert {b["max_tokens"] for b in bodies} == {entry["max_tokens"]} and any(b.get("stream") for b in bodies)
    with TestClient(create_llmsim(Settings(seed=0, latency_scale=0.0))) as llmsim:
        answer = llmsim.post("/v1/chat/completions", json={
            k: v for k, v in bodies[0].items() if k in ("model", "messages", "max_tokens")})
    assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] == entry["max_tokens"]
    assert "max_tokens" not in steady_body("sim-fast", 0)


def test_registry_kind_specific_checks() -> None:
    def storm(naive: object) -> str:
        raw = yaml.safe_load(GOOD)
        raw["scenarios"]["demo-burst"].update(kind="alert_storm")
        raw["scenarios"]["demo-burst"]["params"]["naive_alertmanager"] = naive
        return yaml.safe_dump(raw)

    registry.parse(storm({"group_wait": "1s", "group_interval": "5s", "repeat_interval": "10s"}))
    with pytest.raises(RegistryError, match="exactly group_wait, group_interval, repeat_interval"):
        registry.parse(storm({"group_wait": "1s"}))
    with pytest.raises(RegistryError, match="not a number followed by"):
        registry.parse(storm({"group_wait": "soon", "group_interval": "5s", "repeat_interval": "10s"}))
    for params, words in [({"faults": {"teleported": True}}, "unknown knob(s) teleported"),
                          ({"faults": {"cardinality": {}}}, "one of the knobs metrics_down, rename"),
                          ({"stop": "gateway", "traffic": [{"model": "sim-fast", "rate": 1}]}, "only fail"),
                          ({"stop": "gateway", "faults": {"rename": "x_total"}}, "either faults")]:
        raw = yaml.safe_load(GOOD)
        raw["scenarios"]["demo-burst"].update(kind="missing_metrics", params=params)
        with pytest.raises(RegistryError, match=re.escape(words)):
            registry.parse(yaml.safe_dump(raw))
    raw = yaml.safe_load(GOOD)
    raw["scenarios"]["demo-burst"].update(kind="cardinality",
                                          params={"faults": {"cardinality": {"series_per_second": 200}},
                                                  "beyond_sample_limit": 100_000})
    with pytest.raises(RegistryError, match="beyond_sample_limit"):
        registry.parse(yaml.safe_dump(raw))
    raw["scenarios"]["demo-burst"]["params"].update(beyond_sample_limit=100, faults={"cardinality": {"max_series": 9}})
    with pytest.raises(RegistryError, match="leave max_series out"):
        registry.parse(yaml.safe_dump(raw))
    raw = yaml.safe_load(GOOD)
    raw["scenarios"]["demo-burst"]["params"]["faults"] = {"metrics_down": True}
    with pytest.raises(RegistryError, match="metrics_down not a knob of llmsim"):
        registry.parse(yaml.safe_dump(raw))


def test_registry_rejects_bad_names_and_yaml() -> None:
    with pytest.raises(RegistryError, match="lower-case words"):
        registry.parse(GOOD.replace("demo-burst:", "Demo_Burst:"))
    with pytest.raises(RegistryError, match="not valid YAML"):
        registry.parse("scenarios: [")
    with pytest.raises(RegistryError, match="top-level `scenarios:`"):
        registry.parse("defaults: {}")
    with pytest.raises(RegistryError, match="no scenario named 'nope'"):
        registry.get("nope")


def test_conditions_and_matchers() -> None:
    assert Condition("> 4").holds([1, 5]) and not Condition("> 4").holds([float("nan")])
    assert Condition("== 0").holds([0.0]) and not Condition("== 0").holds([])
    assert Condition("present").holds([0.0]) and Condition("absent").holds([])
    matcher = AlertMatcher.parse('TargetDown{job="gateway"}')
    assert matcher.matches({"alertname": "TargetDown", "job": "gateway", "severity": "critical"})
    assert not matcher.matches({"alertname": "TargetDown", "job": "llmsim"})
    assert str(matcher) == 'TargetDown{job="gateway"}'


def test_signals_use_the_profiles_windows() -> None:
    scenario = registry.get("rate-limit-storm")
    assert "[10s]" in scenario.key_signal.render(profiles.load("classroom"))
    assert "[5m]" in scenario.key_signal.render(profiles.load("production"))


# ---------------------------------------------------------------------------------------------- the naive storm

def test_the_naive_alertmanager_config_is_naive_and_valid(tmp_path: Path) -> None:
    config = alert_storm.naive_config(registry.get("alert-storm").params)
    assert config["route"]["group_by"] == ["..."] and "inhibit_rules" not in config
    hooks = [c["url"] for r in config["receivers"] for c in r["webhook_configs"]]
    assert all(re.match(r"^http://127\.0\.0\.1:\d+/hook/naive-(pager|chat)$", url) for url in hooks), hooks
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed (make test installs it)")
    path = tmp_path / "naive.yml"
    path.write_text(yaml.safe_dump(config))
    checked = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_storm_counts_only_storm_alerts_since_the_trigger_until_the_heal() -> None:
    scenario = registry.get("alert-storm")

    def note(at: float, channel: str, names: list[str], count: int = 1, status: str = "firing") -> dict:
        return {"received_at": at, "channel": channel, "alertnames": names, "alert_count": count, "status": status}

    notifications = [note(5, "pager", ["LLMHighErrorRatio"]),  # before the trigger
                     note(11, "pager", ["LLMHighErrorRatio"], 3), note(11, "chat", ["LLMCostAnomaly"]),
                     note(12, "naive-pager", ["LLMHighErrorRatio"]), note(12, "naive-chat", ["LLMProviderRateLimited"]),
                     note(13, "chat", ["LLMProviderRateLimited"], status="resolved"),
                     note(40, "chat", ["LLMProviderRateLimited"], 2)]  # after the heal
    alerts = [{"state": "firing", "labels": {"alertname": "LLMHighErrorRatio"}},
              {"state": "pending", "labels": {"alertname": "LLMProviderRateLimited"}},
              {"state": "firing", "labels": {"alertname": "Watchdog"}}]
    counts = alert_storm.counts(scenario, since=10, notifications=notifications, alerts=alerts, until=30)
    assert counts == alert_storm.StormCounts(1, 1, 2, 3, 2)


# ---------------------------------------------------------------------------------------------- fault knobs

@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    with TestClient(create_app(), client=("127.0.0.1", 50000)) as client:
        yield client


@pytest.mark.parametrize(("body", "words"), [
    ({"cardinality": {"max_series": 10**6}}, ["cardinality.max_series", "less than or equal to 25000"]),
    ({"cardinality": {"series_per_second": -1}}, ["cardinality.series_per_second", "greater than or equal to 0"]),
    ({"cardinality": {}, "duration_seconds": 0}, ["duration_seconds", "greater than 0"]),
    ({"metrics_down": True, "duration_seconds": 901}, ["duration_seconds", "less than or equal to 900"]),
    ({"metrics_down": True, "duration": 60}, ["duration", "Extra inputs are not permitted"]),
    ({"metrics-down": True}, ["metrics-down", "Extra inputs are not permitted"]),
    ({"rename": "llm calls"}, ["rename", "not a counter name", "_total"]),
    ({"rename": "llm_calls"}, ["rename", "_total"]),
])
def test_gateway_fault_bad_values_are_422_naming_the_field(gateway: TestClient, body: dict, words: list[str]) -> None:
    response = gateway.post("/faults", json=body)
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert gateway.get("/faults").json()["healthy"], "a rejected knob must change nothing"


def test_gateway_fault_bodies_that_are_not_json_objects_are_422(gateway: TestClient) -> None:
    for raw in ("{nope", "[1, 2]"):
        response = gateway.post("/faults", content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 422 and "JSON object" in response.json()["error"]["message"]
    metrics = gateway.get("/metrics").text
    assert 'llm_rejected_requests_total{reason="invalid_body"} 0.0' in metrics, \
        "a bad knob is not a rejected LLM request"


def test_renaming_onto_an_existing_metric_is_400_and_unknown_knobs_404(gateway: TestClient) -> None:
    clash = gateway.post("/faults", json={"rename": "llm_tokens_total", "metrics_down": True})
    assert clash.status_code == 400 and "already exported" in clash.json()["error"]["message"]
    assert gateway.get("/faults").json()["healthy"], "a rejected rename sets no other knob either"
    same = gateway.post("/faults", json={"rename": "llm_requests_total"})
    assert same.status_code == 400 and "current name" in same.json()["error"]["message"]
    unknown = gateway.delete("/faults/volume")
    assert unknown.status_code == 404 and "cardinality, metrics_down, rename" in unknown.json()["error"]["message"]


def test_gateway_faults_are_for_loopback_clients_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    with TestClient(create_app(), client=("10.1.2.3", 50000)) as remote:
        response = remote.post("/faults", json={"metrics_down": True})
        assert response.status_code == 403 and "loopback" in response.json()["error"]["message"]


def test_gateway_faults_can_be_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GATEWAY_FAULTS", "off")
    with TestClient(create_app(), client=("127.0.0.1", 50000)) as client:
        assert client.post("/faults", json={"metrics_down": True}).status_code == 404
        assert client.get("/metrics").status_code == 200


def test_rename_and_metrics_down_change_what_metrics_shows_then_heal(gateway: TestClient) -> None:
    assert gateway.post("/faults", json={"rename": "llm_calls_total"}).json()["active"]["rename"] == "llm_calls_total"
    assert gateway.post("/faults", json={"rename": "llm_calls_total"}).status_code == 200, "setting it twice is fine"
    text = gateway.get("/metrics").text
    assert "llm_calls_total{" in text and "llm_requests_total" not in text
    assert gateway.post("/faults", json={"metrics_down": True, "duration_seconds": 60}).status_code == 200
    down = gateway.get("/metrics")
    assert down.status_code == 503 and "metrics_down" in down.text
    assert gateway.get("/health").status_code == 200, "only /metrics is down"
    one = gateway.delete("/faults/metrics_down").json()
    assert set(one["active"]) == {"rename"} and gateway.get("/metrics").status_code == 200, "DELETE /faults/<knob>"
    healed = gateway.delete("/faults").json()
    assert healed["healthy"]
    assert gateway.delete("/faults").json()["healthy"], "healing twice is fine"
    text = gateway.get("/metrics").text
    assert "llm_requests_total{" in text and "llm_calls_total" not in text


def test_both_services_serve_their_knobs_the_same_way(gateway: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """GET lists every knob of stack/faults.py with its value and clock, DELETE /faults/<knob> heals one."""
    with TestClient(create_llmsim()) as llmsim:
        for service, client, knob, value in (("gateway", gateway, "metrics_down", True),
                                             ("llmsim", llmsim, "error_rate", 0.5)):
            listed = client.get("/faults").json()
            assert listed["service"] == service and listed["healthy"]
            assert set(listed["knobs"]) == set(faults.knobs_of(service))
            on = client.post("/faults", json={knob: value, "duration_seconds": 60}).json()
            assert on["active"] == {knob: value} and on["knobs"][knob]["heals_in_seconds"] > 0
            assert client.delete(f"/faults/{knob}").json()["healthy"], service
            missing = client.delete("/faults/volume")
            assert missing.status_code == 404 and knob in missing.json()["error"]["message"]


def test_cardinality_grows_with_time_and_requests_up_to_its_cap_then_expires() -> None:
    now = [1000.0]
    knobs = FaultState(["sim-fast", "sim-balanced"], clock=lambda: now[0])
    knobs.set_cardinality(CardinalityFault(series_per_second=100, max_series=250), seconds=60)
    knobs.observe_request("req-1", "sim-fast")
    now[0] += 1.0
    series = knobs.explosion_series()
    assert len(series) == 101 and ("sim-fast", "req-1") in series
    knobs.apply(GatewayFaults(cardinality=CardinalityFault(series_per_second=100, max_series=250),
                              duration_seconds=60), exported=set())
    assert len(knobs.explosion_series()) == 101, "setting it again keeps the series and does not jump"
    now[0] += 10.0
    assert len(knobs.explosion_series()) == 250, "growth stops at max_series"
    now[0] += 60.0
    assert knobs.explosion_series() == [] and knobs.describe()["healthy"], "the knob expired"


def test_knobs_expire_by_themselves() -> None:
    now = [0.0]
    knobs = FaultState(["sim-fast"], clock=lambda: now[0])
    knobs.set_rename("llm_calls_total", seconds=30, exported={"llm_requests", "llm_tokens"})
    assert knobs.renamed_to() == "llm_calls"
    now[0] = 31.0
    assert knobs.renamed_to() is None


def test_the_knob_registry_lists_every_knob_of_both_services_once() -> None:
    assert set(faults.knobs_of("llmsim")) == {"error_rate", "rate_limit_rate", "retry_after_seconds",
                                              "added_latency_seconds", "token_multiplier", "outage",
                                              "slow_first_token_seconds", "prompt_cache_off", "cache_busting_nonce",
                                              "rate_limit_scale", "quality_drift", "refusal_share"}
    assert set(faults.knobs_of("gateway")) == {"cardinality", "metrics_down", "rename", "prompt_template_change",
                                               "budget_spent_usd"}
    assert all(knob.breaks and knob.params for knob in faults.KNOBS.values())
    named = {name for s in registry.load().values() for name in s.params.get("faults", {}) if name in faults.KNOBS}
    assert {"cardinality", "metrics_down", "rename", "error_rate"} <= named


# ---------------------------------------------------------------------------------------------- make targets

def test_make_targets_are_listed_in_help() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    for target in ("scenarios", "break", "heal"):
        assert re.search(rf"^{target}: .*## ", makefile, re.M), f"make {target} is missing or has no ## help"


# ---------------------------------------------------------------- provider_fault's warm-up


def test_provider_fault_warm_up_sends_healthy_traffic_before_the_knobs_go_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """silent-quality-drift: the baseline must hold healthy answers, so the drift waits for warm_up_seconds."""
    import time

    from stack.scenarios.kinds import provider_fault
    from stack.scenarios.kinds.base import Context

    scenario = registry.get("silent-quality-drift")
    knobs_set: list[dict] = []
    monkeypatch.setattr(provider_fault, "set_faults", lambda knobs, seconds: knobs_set.append(dict(knobs)))
    ctx = Context(scenario, Path("/nonexistent"), profiles.load("classroom"), duration=60.0)
    monkeypatch.setattr(Context, "start_traffic", lambda self: self.state.setdefault("traffic_started", True))
    ctx.started_at = time.time()
    provider_fault.start(ctx)
    assert ctx.state["traffic_started"] and knobs_set == [], "the traffic starts at the trigger, the drift later"
    ctx.started_at -= scenario.params["warm_up_seconds"]
    provider_fault.tick(ctx)
    provider_fault.tick(ctx)
    assert knobs_set == [{"quality_drift": 0.6, "models": ["sim-fast"]}], "the knobs go on once, after the warm-up"


@pytest.mark.parametrize("warm_up", [-1, 121, True, "30"])
def test_provider_fault_refuses_a_warm_up_out_of_bounds(warm_up: object) -> None:
    from stack.scenarios.kinds import provider_fault

    with pytest.raises(ValueError, match="warm_up_seconds"):
        provider_fault.validate({"faults": {"quality_drift": 0.6}, "traffic": [{"model": "sim-fast", "rate": 3}],
                                 "warm_up_seconds": warm_up})
