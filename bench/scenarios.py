"""Time from trigger to alert for every failure scenario, classroom profile, as an instructor runs them.

Each scenario starts through stack/scenarios/engine.py (the detached driver `make break` uses); the same live view
that the CLI shows (stack/scenarios/observe.py) is polled until the key signal is broken and every expected alert
fires, then `make heal`'s path runs and the view is polled until it is green again."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from stack import profiles
from stack.paths import run_dir
from stack.scenarios import engine, observe, registry
from stack.scenarios.model import Scenario

RUN_FOR_SECONDS = 150  # longer than any scenario needs to fire: the benchmark, not the timer, heals it
FIRE_TIMEOUT_SECONDS = 90
GREEN_TIMEOUT_SECONDS = 90
POLL_SECONDS = 0.5
NOTIFICATION_GRACE_SECONDS = 10


@dataclass(frozen=True)
class ScenarioTiming:
    name: str
    expected: str
    key_broken_after: float | None
    firing_after: float | None  # the last expected alert to fire, seconds after the trigger
    notified_after: float | None  # the first notification of an expected alert
    green_after_heal: float | None
    problem: str | None = None


def _poll(timeline: observe.Progress, scenario: Scenario, profile: profiles.Profile,
          done: Callable[[observe.Snapshot], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snapshot = observe.take(scenario, profile, timeline.t0)
        timeline.update(snapshot)
        if done(snapshot):
            return True
        time.sleep(POLL_SECONDS)
    return False


def _notified(timeline: observe.Progress, scenario: Scenario) -> float | None:
    """Seconds after the trigger of the first firing notification that names an expected alert."""
    names = {m.alertname for m in scenario.expected_alerts}
    times = [t for (what, _), t in timeline.notified.items()
             if what.startswith("firing ") and what.removeprefix("firing ") in names]
    return min(times) if times else None


def time_one(name: str, profile: profiles.Profile) -> ScenarioTiming:
    scenario = registry.get(name)
    run = run_dir()
    expected = ", ".join(str(m) for m in scenario.expected_alerts)
    state = engine.start(name, run, duration=RUN_FOR_SECONDS)
    timeline = observe.Progress(scenario, state["t0"])
    try:
        caught = _poll(timeline, scenario, profile,
                       lambda _: timeline.key_broken_at is not None and timeline.all_expected_fired(),
                       FIRE_TIMEOUT_SECONDS)
        if caught:  # the class sees it in the receiver a group_wait later (unless an inhibition keeps it quiet)
            _poll(timeline, scenario, profile, lambda _: _notified(timeline, scenario) is not None,
                  NOTIFICATION_GRACE_SECONDS)
    finally:
        engine.heal(run)
        timeline.healed_at = time.time()
    green = _poll(timeline, scenario, profile, timeline.green, GREEN_TIMEOUT_SECONDS)
    green_at = time.time()
    engine.heal(run)  # also ends the driver's recovery recording
    summary = timeline.summary()
    firing = [summary["first_firing"].get(str(m)) for m in scenario.expected_alerts]
    problem = None if caught else f"not caught within {FIRE_TIMEOUT_SECONDS}s: {summary}"
    if caught and not green:
        problem = f"not green within {GREEN_TIMEOUT_SECONDS}s of healing: {summary}"
    return ScenarioTiming(
        name, expected, timeline.key_broken_at,
        max(firing) if firing and None not in firing else None,  # type: ignore[type-var]
        _notified(timeline, scenario),
        round(green_at - timeline.healed_at, 1) if green else None,
        problem)


def measure(progress: Callable[[str], None] = print) -> list[ScenarioTiming]:
    """Every scenario in the registry, one after another, on the running (classroom) stack."""
    profile = engine.running_profile(run_dir())
    timings = []
    engine.heal(run_dir())
    for name in registry.load():
        progress(f"scenario {name}: trigger → alert")
        timing = time_one(name, profile)
        timings.append(timing)
        progress(f"scenario {name}: firing after {timing.firing_after}s, green {timing.green_after_heal}s after heal")
    return timings
