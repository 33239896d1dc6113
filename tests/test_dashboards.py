"""Dashboards as code: the committed JSON is the generator's output, passes the checker offline and against the
live stack under seeded load, the checker catches the classic mistakes (naming the panel), and the snapshots
render."""

from __future__ import annotations

import collections
import copy
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib import image

from stack import catalog
from stack.grafana import build, check, promql, seed, snapshot
from stack.grafana import variables as gv
from stack.grafana.dashboards import DASHBOARDS
from stack.grafana.panel_data import Series, bucket_grid
from stack.grafana.panels import all_panels, template_variables
from stack.grafana.problems import DATASOURCE, NO_DATA, RATIO, STRUCTURE, UNIT, VARIABLE, Problem
from stack.grafana.provisioning import DASHBOARDS_DIR, datasource_uid
from stack.paths import STACK_DIR
from stack.prometheus import alerts
from stack.tokens import TOKENS_PER_REPLY_PRIMER, count_prompt_tokens
from tests.conftest import LiveStack

COMMITTED = sorted(DASHBOARDS_DIR.rglob("*.json"))
OPERATIONS = DASHBOARDS_DIR / "operations" / "llmobs-operations.json"
EXPERIENCE = DASHBOARDS_DIR / "experience" / "llmobs-experience.json"
RESILIENCE = DASHBOARDS_DIR / "resilience" / "llmobs-resilience.json"
QUALITY = DASHBOARDS_DIR / "quality" / "llmobs-quality.json"
PROVIDER_FILE = STACK_DIR / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml"


def _operations() -> dict:
    return json.loads(OPERATIONS.read_text())


def _panel(dashboard: dict, title: str) -> dict:
    return next(p for p in all_panels(dashboard["panels"]) if p.get("title") == title)


def _about(problems: list[Problem], kind: str, panel: str) -> list[Problem]:
    return [p for p in problems if p.kind == kind and p.panel == panel]


# ---------------------------------------------------------------- generated, committed, provisioned


def test_committed_dashboards_equal_the_generator_output() -> None:
    assert build.stale() == [], "run `make dashboards` and commit stack/grafana/dashboards/"
    assert {p.relative_to(DASHBOARDS_DIR).as_posix() for p in COMMITTED} >= {s.path for s in DASHBOARDS}


def test_each_dashboard_sits_in_its_own_grafana_folder_with_a_unique_uid() -> None:
    provider = yaml.safe_load(PROVIDER_FILE.read_text())["providers"][0]
    assert provider["options"]["foldersFromFilesStructure"] is True
    folders = [spec.folder for spec in DASHBOARDS]
    uids = [json.loads(p.read_text())["uid"] for p in COMMITTED]
    assert len(set(folders)) == len(folders) == 7 and len(set(uids)) == len(uids)
    assert {"llmobs-operations", "llmobs-cost", "llmobs-slo", "llmobs-meta", "llmobs-experience",
            "llmobs-resilience", "llmobs-quality"} <= set(uids)


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_committed_dashboard_passes_the_structural_check(path: Path) -> None:
    problems = check.check_dashboard(path, live=False)
    assert not problems, "\n".join(map(str, problems))
    dashboard = json.loads(path.read_text())
    names = {v["name"] for v in template_variables(dashboard)}
    assert "model" in names or dashboard["uid"] == "llmobs-meta"


@pytest.mark.parametrize(("path", "title", "histogram"), [
    (OPERATIONS, "Request latency distribution", "llm_request_duration_seconds_bucket"),
    (EXPERIENCE, "Time to first token distribution", "llm_time_to_first_token_seconds_bucket"),
], ids=["latency", "ttft"])
def test_heatmaps_read_histogram_buckets_in_heatmap_format(path: Path, title: str, histogram: str) -> None:
    panel = _panel(json.loads(path.read_text()), title)
    [target] = panel["targets"]
    assert panel["type"] == "heatmap" and panel["options"]["calculate"] is False
    assert target["format"] == "heatmap" and target["legendFormat"] == "{{le}}"
    assert target["expr"].startswith(f"sum by (le) (rate({histogram}{{")


def test_experience_thresholds_are_the_alert_thresholds() -> None:
    experience = json.loads(EXPERIENCE.read_text())

    def limits(title: str) -> list[float]:
        steps = _panel(experience, title)["fieldConfig"]["defaults"]["thresholds"]["steps"]
        return [step["value"] for step in steps if step["value"] is not None]

    assert limits("Time to first token p95") == limits("Time to first token p50 / p95 by model") \
        == [alerts.TTFT_P95_SECONDS]
    assert limits("Response-cache hit ratio") == limits("Response-cache hit ratio by model") \
        == [alerts.CACHE_HIT_RATIO_MIN]


def test_resilience_states_are_named_and_thresholds_come_from_their_source() -> None:
    resilience = json.loads(RESILIENCE.read_text())
    tier = _panel(resilience, "Degradation tier")
    [tier_names] = tier["fieldConfig"]["defaults"]["mappings"]
    assert {k: v["text"] for k, v in tier_names["options"].items()} == {
        "1": "full service", "2": "degraded", "3": "last resort only", "4": "cache only"}
    assert _panel(resilience, "Circuit breaker state by model")["type"] == "state-timeline"
    assert {"Degradation tier", "Circuit breakers"} <= {p["title"] for p in all_panels(_operations()["panels"])}
    steps = _panel(json.loads(QUALITY.read_text()), "Monthly budget used")["fieldConfig"]["defaults"]["thresholds"]
    assert [s["value"] for s in steps["steps"] if s["value"] is not None] == [
        alerts.DEPARTMENT_BUDGET_INFO, alerts.DEPARTMENT_BUDGET_WARNING, alerts.DEPARTMENT_BUDGET_CRITICAL]


def test_bucket_grid_turns_cumulative_buckets_into_one_row_per_bucket_like_grafana() -> None:
    cumulative = [Series("+Inf", [0, 15], [6.0, 9.0], {"le": "+Inf"}),
                  Series("0.5", [0, 15], [1.0, 2.0], {"le": "0.5"}),
                  Series("2.0", [0, 15], [4.0, float("nan")], {"le": "2.0"})]
    grid = bucket_grid(cumulative)
    assert grid is not None and grid.upper_bounds == [0.5, 2.0, float("inf")]
    assert grid.values[0] == [1.0, 2.0] and grid.values[1][0] == 3.0 and grid.values[2][0] == 2.0
    assert np.isnan(grid.values[1][1]) and np.isnan(grid.values[2][1]), "a missing point stays missing"
    assert bucket_grid([Series("x", [0], [1.0], {"model": "sim-fast"})]) is None


def test_chat_traffic_asks_questions_again_behind_a_system_prompt_the_prompt_cache_keeps() -> None:
    kept = count_prompt_tokens([seed.SYSTEM_PROMPT]) - TOKENS_PER_REPLY_PRIMER
    assert kept >= catalog.load().prompt_cache.min_prefix_tokens, "too short for llmsim's prompt cache"
    chat = seed.ChatExperienceTraffic("sim-reasoning", rate=1, max_seconds=1, hang_up_every=7)
    calls = [chat.next_call(number) for number in range(70)]
    chat.stop()
    bodies = [body for body, _ in calls]
    assert all(body["messages"][0] == {"role": "system", "content": seed.SYSTEM_PROMPT} for body in bodies)
    cacheable = [body for body in bodies if "seed" in body and "cache" not in body]
    asks = collections.Counter(body["messages"][-1]["content"] for body in cacheable)
    assert max(asks.values()) == seed.ASKS_PER_QUESTION and len(asks) < len(cacheable) / 2
    assert any(body.get("cache") == {"no-cache": True} for body in bodies)
    assert any(body["stream"] and "seed" not in body for body in bodies)
    hang_ups = [body for body, hang_up in calls if hang_up]
    assert len(hang_ups) == 10 and all(body["stream"] and "seed" not in body for body in hang_ups)


# ---------------------------------------------------------------- the checker catches mistakes, naming the panel


def test_checker_names_the_panel_with_an_unaggregated_ratio() -> None:
    broken = _operations()
    target = _panel(broken, "Error ratio by model")["targets"][0]
    target["expr"] = ('rate(llm_requests_total{job="gateway",status="error"}[5m])\n/\n'
                      'rate(llm_requests_total{job="gateway"}[5m])')
    found = _about(check.check_dashboard(broken, live=False), RATIO, "Error ratio by model")
    assert found and "sum by" in found[0].message and "'Error ratio by model'" in str(found[0])


@pytest.mark.parametrize("datasource", [None, {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"},
                                        {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, "Prometheus"],
                         ids=["missing", "wrong-uid", "export-placeholder", "by-name"])
def test_checker_names_the_panel_with_a_missing_or_wrong_datasource(datasource: object) -> None:
    broken = _operations()
    panel = _panel(broken, "p95 latency")
    for holder in (panel, panel["targets"][0]):
        holder.pop("datasource")
        if datasource is not None:
            holder["datasource"] = copy.deepcopy(datasource)
    found = _about(check.check_dashboard(broken, live=False), DATASOURCE, "p95 latency")
    assert found, f"no datasource problem reported for {datasource!r}"


def test_checker_reports_broken_structure() -> None:
    broken = _operations()
    del broken["uid"]
    broken["panels"][2]["id"] = broken["panels"][1]["id"]
    _panel(broken, "In flight")["fieldConfig"]["defaults"].pop("unit")
    _panel(broken, "Tokens per minute by model")["targets"][0]["expr"] = "sum(rate(llm_tokens_total[$window]))"
    kinds = {(p.kind, p.panel) for p in check.check_dashboard(broken, live=False)}
    assert (STRUCTURE, None) in kinds
    assert (STRUCTURE, broken["panels"][2]["title"]) in kinds
    assert (UNIT, "In flight") in kinds
    assert (VARIABLE, "Tokens per minute by model") in kinds


@pytest.mark.parametrize(("expr", "flagged"), [
    ('rate(x{status="error"}[5m]) / rate(x[5m])', True),
    ("(increase(x[1h])) / (60 * rate(y[1h]))", True),
    ('sum by (model) (rate(x{status="error"}[5m])) / sum by (model) (rate(x[5m]))', False),
    ("rate(x_sum[5m]) / rate(x_count[5m])", True),   # reported only in a ratio panel (different metrics)
    ("model:llm_requests:rate / 2", False),
])
def test_promql_finds_unaggregated_ratios(expr: str, flagged: bool) -> None:
    assert bool(promql.unaggregated_ratios(expr)) is flagged
    assert promql.metric_names('sum(rate(a_total{b="c"}[5m])) / on(x) group_left max(b:c:d)') == ["a_total", "b:c:d"]


def test_grafana_variables_and_intervals_are_substituted_like_grafana() -> None:
    timing = gv.panel_timing(0, 3600, {"gridPos": {"w": 12}}, scrape_interval=15)
    assert (timing.interval, timing.rate_interval) == (15, 60)
    selections = {"model": gv.Selection(("sim-fast", "sim-balanced"), multi=True), **gv.builtin_values(timing)}
    text, unknown = gv.substitute('rate(x{model=~"$model"}[$__rate_interval]) + ${model:raw} [[nope]] "$1"',
                                  selections)
    assert text == 'rate(x{model=~"(sim-fast|sim-balanced)"}[1m]) + sim-fast,sim-balanced [[nope]] "$1"'
    assert unknown == ["nope"]


# ---------------------------------------------------------------- live stack


@pytest.fixture(scope="module")
def seeded(live_stack: LiveStack) -> Iterator[None]:
    statuses = seed.seed_load()
    assert statuses.get(200), f"seeded traffic got no 200 answer: {statuses}"
    yield


@pytest.mark.stack
def test_every_committed_dashboard_passes_the_live_check(stack: LiveStack, seeded: None) -> None:
    assert datasource_uid() == "prometheus"
    problems = check.check_dashboards()
    assert not problems, "\n".join(map(str, problems))


@pytest.mark.stack
def test_checker_names_the_panel_with_a_typo_metric(stack: LiveStack, seeded: None) -> None:
    broken = _operations()
    target = _panel(broken, "Requests by model and status")["targets"][0]
    target["expr"] = target["expr"].replace("llm_requests_total", "llm_request_total")
    problems = check.check_dashboard(broken)
    found = _about(problems, NO_DATA, "Requests by model and status")
    assert found, "\n".join(map(str, problems))
    assert "did you mean llm_requests_total" in found[0].message
    assert [p.panel for p in problems] == ["Requests by model and status"], "\n".join(map(str, problems))


# The last minutes only: every panel has data by then, and Prometheus answers the range queries of a short window
# quickly (a dashboard's own range over 1 s scrapes is most of this test's time).
SNAPSHOT_RANGE_SECONDS = 240


@pytest.mark.stack
def test_snapshots_render_every_panel_to_a_non_blank_png(stack: LiveStack, seeded: None, tmp_path: Path) -> None:
    results = snapshot.render_all(COMMITTED, tmp_path, range_seconds=SNAPSHOT_RANGE_SECONDS)
    assert len(results) == len(COMMITTED)
    for result in results:
        assert result.path.stat().st_size > 30_000, f"{result.path.name} is suspiciously small"
        assert not result.empty_panels, f"{result.dashboard}: no data in {result.empty_panels}"
        pixels = image.imread(result.path)[..., :3].reshape(-1, 3)
        rgb = (pixels * 255).astype(np.uint32)
        colours = np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])  # one number per colour: fast to sort
        background = np.all(np.isclose(pixels, pixels[0], atol=0.02), axis=1).mean()
        assert len(colours) > 200 and background < 0.9, f"{result.path.name} looks blank"
