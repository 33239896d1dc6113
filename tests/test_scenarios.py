"""Every failure scenario on the live stack: trigger → its signature moves → the expected alert fires (or, for the
renamed metric, `up` stays 1 while LLMMetricsAbsent fires) → heal → back to green. The storm test counts the
notifications of the tuned and of the naive Alertmanager for the same alerts.

Scenarios run through stack/scenarios/engine.py exactly as `make break` / `make heal` do (a detached driver
process), with a duration longer than the test needs so the test, not the timer, heals them. Classroom profile:
10 s rate window, 10 s `for` (TargetDown 5 s), 1 s scrapes and evaluations.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from stack import profiles, promapi
from stack.scenarios import engine, observe, registry
from stack.scenarios.model import Scenario
from stack.scenarios.kinds import alert_storm
from tests import live
from tests.conftest import LiveStack

pytestmark = pytest.mark.stack

SCENARIOS = registry.load()
PROFILE = profiles.load("classroom")
RUN_FOR_SECONDS = 150  # longer than any test needs
FIRE_TIMEOUT = 75  # the slowest, cardinality-explosion's sample_limit alert, fires ~37 s after the trigger
GREEN_TIMEOUT = 60  # latency-spike needs its slow calls to finish and leave the 10 s window: ~20 s
POLL_SECONDS = 0.5
QUIET_BEFORE_TIMEOUT = 90  # a leftover alert resolves once its rate window has passed
DRIVER_RECORD_TIMEOUT = 30  # the driver's beat is ~1 s, but its traffic and queries share the cores with the suite
GATEWAY_UP = 'up{job="gateway"}'


@pytest.fixture
def clean(stack: LiveStack) -> Iterator[LiveStack]:
    """No scenario running before or after the test (the second heal also ends a driver's recovery recording)."""
    engine.heal(stack.run)
    yield stack
    engine.heal(stack.run)
    engine.heal(stack.run)
    assert engine.driver_pid(stack.run) is None


def _reading(snapshot: observe.Snapshot, query: str) -> list[float]:
    return next(r.numbers for r in snapshot.readings if r.query == query)


class Watch:
    """Polls what the live view shows and remembers what it has seen."""

    def __init__(self, scenario: Scenario, t0: float) -> None:
        self.scenario = scenario
        self.progress = observe.Progress(scenario, t0)
        self.scrape_errors: set[str] = set()
        self.gateway_up: list[list[float]] = []

    def poll(self) -> observe.Snapshot:
        snapshot = observe.take(self.scenario, PROFILE, self.progress.t0)
        assert not snapshot.problems, snapshot.problems
        self.progress.update(snapshot)
        self.scrape_errors.update(snapshot.target_errors.values())
        if any(r.query == GATEWAY_UP for r in snapshot.readings):
            self.gateway_up.append(_reading(snapshot, GATEWAY_UP))
        for matcher in self.scenario.quiet_alerts:
            assert observe.alert_state(matcher, snapshot.alerts) == "inactive", \
                f"{matcher} must stay quiet in {self.scenario.name}: {observe.matching(matcher, snapshot.alerts)}"
        return snapshot

    def broken_and_caught(self) -> bool:
        self.poll()
        return self.progress.key_broken_at is not None and self.progress.all_expected_fired()

    def green(self) -> bool:
        return self.progress.green(self.poll())

    def __repr__(self) -> str:
        return f"progress {self.progress.summary()}, scrape errors {sorted(self.scrape_errors)}"


def _expected_alerts_inactive(scenario: Scenario) -> bool:
    alerts = promapi.alerts()
    return all(observe.alert_state(m, alerts) == "inactive" for m in scenario.expected_alerts)


def _trigger(name: str, run) -> tuple[Scenario, dict, Watch]:  # noqa: ANN001
    scenario = SCENARIOS[name]
    # An earlier test on this worker's stack may have left an expected alert firing (a traffic burst raises
    # LLMCostAnomaly); the driver then counts it only once it has been inactive, as it tells the instructor.
    live.eventually(lambda: _expected_alerts_inactive(scenario), QUIET_BEFORE_TIMEOUT,
                    f"{name}: its expected alerts inactive before the trigger")
    state = engine.start(name, run, duration=RUN_FOR_SECONDS)
    assert state["phase"] == "running" and state["name"] == name, state
    return scenario, state, Watch(scenario, state["t0"])


def _heal_to_green(run, watch: Watch) -> None:  # noqa: ANN001
    healed = engine.heal(run)
    assert healed and healed["phase"] == "healed", healed
    watch.progress.healed_at = time.time()
    expected = ", ".join(str(m) for m in watch.scenario.expected_alerts)
    live.eventually(watch.green, GREEN_TIMEOUT, f"{watch.scenario.name}: {expected} inactive and "
                    f"{watch.scenario.key_signal.label} back to normal ({watch!r})", interval=POLL_SECONDS)


def _takes_the_gateway_down(scenario: registry.Scenario) -> bool:
    return any(m.alertname == "TargetDown" and m.labels.get("job") == "gateway" for m in scenario.expected_alerts)


def _param(name: str) -> object:
    """cardinality-explosion first among the gateway outages (tests/live.py, GATEWAY_OUTAGES)."""
    scenario = SCENARIOS[name]
    marks = [live.GATEWAY_OUTAGES] if _takes_the_gateway_down(scenario) else []
    marks += [pytest.mark.first_in_group] if scenario.kind == "cardinality" else []
    return pytest.param(name, marks=marks, id=name)


def _gateway_scraped_through_the_growth_window() -> bool:
    """CardinalityGrowth's growth rule ignores a target that failed a scrape within the baseline window."""
    return promapi.scalar(f'min_over_time(up{{job="gateway"}}[{PROFILE.baseline_window}])') == 1


def _first_time(expr: str, since: float, moved: Callable[[float, float], bool]) -> float | None:
    """The first time after `since` at which `expr`'s one series moved as `moved(first_value, value)` says."""
    with promapi.Prometheus() as prometheus:
        series = prometheus.range(expr, since, time.time(), 1)
    points = series[0].points if series else []
    return next((t for t, v in points if moved(points[0][1], v)), None)


def _first_rate_limited_answer(since: float) -> float | None:
    """When llmsim first answered a sim-fast call 429 after `since` (its own counter, scraped every second)."""
    return _first_time('sum(llmsim_requests_total{model="sim-fast",outcome="rate_limited"})', since,
                       lambda before, now: now > before)


def _first_firing(alertname: str, since: float) -> float | None:
    return _first_time(f'max(ALERTS{{alertname="{alertname}",alertstate="firing"}})', since,
                       lambda _, now: now == 1)


@pytest.mark.parametrize("name", [_param(name) for name, s in SCENARIOS.items() if s.kind != "alert_storm"])
def test_scenario_breaks_fires_its_alert_and_heals(clean: LiveStack, name: str) -> None:
    if SCENARIOS[name].kind == "cardinality":  # normally at once: it runs first of the gateway outages
        live.eventually(_gateway_scraped_through_the_growth_window, PROFILE.baseline_window.seconds + 15,
                        f"no failed gateway scrape within the last {PROFILE.baseline_window}")
    scenario, state, watch = _trigger(name, clean.run)
    expected = ", ".join(str(m) for m in scenario.expected_alerts)
    live.eventually(watch.broken_and_caught, FIRE_TIMEOUT,
                    f"{name}: {scenario.key_signal.label} {scenario.key_signal.broken.text} and {expected} firing "
                    f"({watch!r})", interval=POLL_SECONDS)

    again = engine.start(name, clean.run, duration=RUN_FOR_SECONDS)  # safe to trigger twice: nothing changes
    assert again.get("already_running") and again["t0"] == state["t0"], again

    def recorded() -> dict:  # the driver records on its own ~1 s beat, which stretches on a busy machine
        first_firing = (engine.read_state(clean.run) or {}).get("progress", {}).get("first_firing", {})
        return first_firing if all(str(m) in first_firing for m in scenario.expected_alerts) else {}

    live.eventually(recorded, DRIVER_RECORD_TIMEOUT, f"the driver's record (state.json) to record {expected} firing")

    if scenario.kind == "cardinality":
        assert any("sample limit exceeded" in error for error in watch.scrape_errors), \
            f"no 'sample limit exceeded' in the gateway target's lastError: {watch.scrape_errors}"
    if name == "metric-renamed":
        assert watch.gateway_up and all(values == [1.0] for values in watch.gateway_up), \
            f"`up` must stay 1 while the metric is renamed: {watch.gateway_up}"
        assert promapi.scalar('sum(llm_calls_total{job="gateway"})') is not None, "the new name holds the requests"

    if name == "budget-exhaustion":  # 90 % warns the chat channel, 100 % pages; past 100 % the policy refuses
        for channel in ("chat", "pager"):
            live.eventually(lambda channel=channel: live.notifications(channel=channel, alertname="LLMDepartmentBudget"),
                            DRIVER_RECORD_TIMEOUT, f"an LLMDepartmentBudget notification in {channel}")
        refused = 'sum(llm_budget_policy_actions_total{job="gateway",department="finance",action="refused"})'
        live.eventually(lambda: (promapi.scalar(refused) or 0) > 0, DRIVER_RECORD_TIMEOUT,
                        "finance's requests refused by the budget policy")
    if name == "rate-limit-headroom":  # the headroom alert is a warning: it fires before the provider's first 429
        first_429 = live.eventually(lambda: _first_rate_limited_answer(state["t0"]), FIRE_TIMEOUT,
                                    "the first 429 from llmsim once the chatbot's users arrive")
        headroom_firing = _first_firing(scenario.expected_alerts[0].alertname, state["t0"])
        assert headroom_firing is not None and headroom_firing < first_429, \
            f"LLMRateLimitHeadroomLow must fire before the first 429: firing at {headroom_firing}, 429 at {first_429}"
        gateway_headroom = promapi.scalar(scenario.key_signal.query)
        assert gateway_headroom is not None and gateway_headroom < 0.1, \
            f"the gateway's headroom gauges follow llmsim's headers: {gateway_headroom}"
    _heal_to_green(clean.run, watch)
    if scenario.params.get("stop") == "gateway":
        assert engine.reset_all(clean.run) == [] and promapi.scalar(GATEWAY_UP) == 1


def test_alert_storm_tuned_alertmanager_sends_fewer_notifications_than_alerts_naive_sends_more(
        clean: LiveStack) -> None:
    scenario, state, watch = _trigger("alert-storm", clean.run)
    t0 = state["t0"]

    def flooded() -> alert_storm.StormCounts | None:
        snapshot = watch.poll()
        counts = alert_storm.counts(scenario, t0, snapshot.notifications, snapshot.alerts)
        enough = counts.alerts_firing >= 6 and counts.tuned_notifications >= 1 and \
            counts.naive_notifications > counts.alerts_firing
        return counts if enough else None

    counts = live.eventually(flooded, FIRE_TIMEOUT, f"the storm's alerts and the naive flood ({watch!r})",
                             interval=POLL_SECONDS)
    # Grouping: tuned sends fewer notifications than there are alerts; naive sends more than there are alerts.
    assert counts.tuned_notifications < counts.alerts_firing < counts.naive_notifications, counts
    assert watch.progress.all_expected_fired(), watch

    _heal_to_green(clean.run, watch)
    assert not alert_storm.stop_naive(clean.run), "heal must stop the naive Alertmanager"
