"""Lab V3, alert quality: labeled timelines (real incidents and harmless noise) replayed through the student's whole
rules file with promtool (graders/v3/timelines.py), scored like a detector: precision, recall, time to detect.

* An alert episode is a true positive when it fires in an incident timeline, after the incident started and before
  it ended (plus a rate window of grace), and its alertname is one the incident should raise.
  Everything else is a false alarm: any alert in a noise timeline, an unrelated alert during an incident.
* precision = true-positive episodes / all episodes; recall = incidents detected by their deadline / incidents.
* time to detect = first true-positive alert of an incident - the incident's start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from graders.v3.rules import BUSY, MIN_RATE as MIN_SCORED, MODELS, SLACK, TIMING, W, _for
from graders.v3.timelines import Episode, replay
from stack import catalog
from stack.gateway.evaluation import RELEVANCE
from stack.prometheus import alerts as A
from stack.prometheus.shapes import BALANCED, FAST, HEALTHY_LATENCY, REASONING, SLOW_LATENCY, STRAGGLERS
from stack.prometheus.world import World

Window = tuple[int, int, float]  # (from second, to second, value)
LATENCY_MODELS = (FAST, REASONING)
HEALTHY_RELEVANCE = 0.95


@dataclass(frozen=True)
class LabeledCase:
    """A replay of the gateway labeled with what happened: an incident the rules should detect, or harmless noise."""

    key: str
    title: str
    kind: str                        # "incident" or "noise"
    world: World
    start: int = 0                   # incident: when it starts and ends
    end: int = 0
    expected: frozenset[str] = frozenset()   # alertnames the incident should raise
    deadline: int = 0                # detected if a true positive fires by this second


def _phases(seconds: int, windows: Sequence[Window], default: float) -> list[tuple[int, float]]:
    """Constant `default`, overridden inside the (from, to, value) windows: phases of (seconds, value)."""
    phases, at = [], 0
    for begin, finish, value in sorted(windows):
        if begin > at:
            phases.append((begin - at, default))
        phases.append((finish - begin, value))
        at = finish
    if seconds > at:
        phases.append((seconds - at, default))
    return phases


def world(seconds: int, errors: Mapping[str, Sequence[Window]] = {}, slow: Mapping[str, Sequence[Window]] = {},
          stragglers: Sequence[str] = (), extra_cost: Sequence[Window] = (), spend: float = 0.6,
          down: Mapping[str, Sequence[tuple[int, int]]] = {}, gaps: Sequence[tuple[str, int, int]] = (),
          renamed_at: int | None = None, night: Mapping[str, float] = {},
          relevance: Mapping[str, tuple[float, Sequence[Window]]] = {},
          served_by: Mapping[str, Sequence[Window]] = {},
          department_spent: Mapping[str, Sequence[Window]] = {}, latency: bool = True) -> World:
    """The whole gateway for `seconds`: traffic, latency, spend and budget, `up` of every target, with faults; and,
    where given, answer quality (model -> (scored answers/s, windows of mean relevance, 0.95 otherwise)), answers
    served by the first fallback (requested model -> windows of the share handed over) and departments' month-to-date
    spend (department -> windows of the share of its monthly budget spent, 0.5 otherwise). `latency`: the latency
    histograms (most of a timeline's series), left out where no latency rule could matter."""
    w = World(seconds)
    for model in MODELS:
        rate = night.get(model, BUSY)
        w.requests(model, [(s, rate, share) for s, share in _phases(seconds, errors.get(model, ()), 0.0)])
        if not latency or model not in LATENCY_MODELS:
            continue  # the latency rule is per model: two models' histograms tell as much as three, and cost less
        healthy = STRAGGLERS if model in stragglers else HEALTHY_LATENCY
        latency = [(s, SLOW_LATENCY if value else healthy)
                   for s, value in _phases(seconds, [(a, b, 1.0) for a, b, _ in slow.get(model, ())], 0.0)]
        w.latency(model, rate, latency)
    w.cost(BALANCED, "engineering", [(seconds, spend * 2 / 3)]).cost(FAST, "support", [(seconds, spend / 3)])
    w.cost(REASONING, "marketing", _phases(seconds, extra_cost, 0.0))
    w.budget(catalog.load().daily_budget_usd).up(down)
    for job, start, length in gaps:
        w.gap(job, start, length)
    for model, (rate, windows) in relevance.items():
        w.quality(model, RELEVANCE, [(s, rate, mean) for s, mean in _phases(seconds, windows, HEALTHY_RELEVANCE)])
    for requested, windows in served_by.items():
        fallback = catalog.load().models[requested].fallbacks[0]
        w.routed(requested, BUSY, [(s, {requested: 1 - share, fallback: share})
                                   for s, share in _phases(seconds, windows, 0.0)])
    budgets = catalog.load().monthly_budgets.monthly_usd
    for department, windows in department_spent.items():
        w.department_budget(department, budgets[department],
                            [(s, share * budgets[department]) for s, share in _phases(seconds, windows, 0.5)])
    if renamed_at is not None:
        w.end("llm_requests_total", renamed_at)
        for model in MODELS:
            w.requests(model, [(seconds, BUSY, 0.0)], name="llm_gateway_requests_total")
    return w


def labeled_cases() -> list[LabeledCase]:
    daily = catalog.load().daily_budget_usd
    short, fault, until = 12 * W, 3 * W, 9 * W
    baseline = TIMING.baseline_window.seconds + W       # a full baseline of normal spend before the change
    # The relevance baseline is a mean (a ratio of two rates): a few rate windows of healthy answers make a baseline.
    drift = 6 * W
    runaway = A.BUDGET_CRITICAL * 3                     # an agent loop: three times the budget's pace
    budget_seconds = math.ceil(TIMING.budget_window.seconds * A.BUDGET_WARNING / runaway) + _for(
        "LLMDailyBudgetBurn") + 4 * SLACK

    def deadline(start: int, alertname: str) -> int:
        return start + W + _for(alertname) + SLACK

    errors_ratio = A.ERROR_RATIO_CRITICAL * 1.75
    return [
        LabeledCase("provider-errors", f"{errors_ratio:.0%} of {BALANCED} requests fail for a minute", "incident",
                 world(short, errors={BALANCED: [(fault, until, errors_ratio)]}), fault, until,
                 frozenset({"LLMHighErrorRatio", "LLMErrorBudgetBurn"}), deadline(fault, "LLMHighErrorRatio")),
        LabeledCase("slow-model", f"{REASONING} slows down to a p95 of about 7.6 s for a minute", "incident",
                 world(short, slow={REASONING: [(fault, until, 1.0)]}), fault, until,
                 frozenset({"LLMLatencyP95High"}), deadline(fault, "LLMLatencyP95High")),
        LabeledCase("provider-outage", "llmsim is down for a minute: every request fails", "incident",
                 world(short, errors={m: [(fault, until, 1.0)] for m in MODELS},
                       down={"llmsim": [(fault, until - fault)]}), fault, until,
                 frozenset({"TargetDown", "LLMHighErrorRatio", "LLMErrorBudgetBurn"}), deadline(fault, "TargetDown")),
        LabeledCase("runaway-batch", "a marketing batch job takes spend from 0.6 to 6 USD/h", "incident",
                 world(baseline + 4 * W, extra_cost=[(baseline, baseline + 4 * W, 5.4)]), baseline,
                 baseline + 4 * W, frozenset({"LLMCostAnomaly", "LLMDailyBudgetBurn"}),
                 deadline(baseline, "LLMCostAnomaly")),
        LabeledCase("budget-burn", f"an agent loop spends at {runaway:.0%} of the daily budget's pace all along",
                 "incident", world(budget_seconds, spend=runaway * daily / 24), 0, budget_seconds,
                 frozenset({"LLMDailyBudgetBurn"}), budget_seconds - 2 * SLACK),
        LabeledCase("metric-renamed", "a deploy renames llm_requests_total", "incident",
                 world(fault + 6 * W, renamed_at=fault), fault, fault + 6 * W, frozenset({"LLMMetricsAbsent"}),
                 deadline(fault, "LLMMetricsAbsent")),
        LabeledCase("quality-drift", f"{FAST}'s answers drift: mean relevance {HEALTHY_RELEVANCE:.0%} -> 88%, every "
                 "call still a fast HTTP 200", "incident",
                 world(drift + 4 * W, relevance={FAST: (BUSY, [(drift, drift + 4 * W, 0.88)])}, latency=False), drift,
                 drift + 4 * W, frozenset({"LLMAnswerQualityDrop"}), deadline(drift, "LLMAnswerQualityDrop")),
        LabeledCase("fallback-outage", f"{REASONING}'s provider fails for {4 * W}s: {BALANCED} answers everyone "
                 "(no error reaches a caller)", "incident",
                 world(fault + 6 * W, served_by={REASONING: [(fault, fault + 4 * W, 1.0)], BALANCED: []},
                       latency=False), fault, fault + 4 * W,
                 frozenset({"LLMFallbackRatioHigh", "LLMCircuitBreakerOpen", "LLMDegradedService"}),
                 deadline(fault, "LLMFallbackRatioHigh")),
        LabeledCase("department-budget", "research runs a big evaluation: 70% -> 104% of its monthly budget",
                 "incident", world(fault + 4 * W, department_spent={"research": [(0, fault, 0.7),
                                                                                  (fault, fault + 4 * W, 1.04)],
                                                                     "support": []}, latency=False),
                 fault, fault + 4 * W, frozenset({"LLMDepartmentBudget"}), fault + _for("LLMDepartmentBudget") + SLACK),
        LabeledCase("gateway-restart", "the gateway restarts: 3 missed scrapes", "noise",
                 world(short, gaps=[("gateway", until, 3)])),
        LabeledCase("background-noise", f"4% of {FAST} requests fail and 3% of its calls take over 15 s", "noise",
                 world(short, errors={FAST: [(0, short, 0.04)]}, stragglers=(FAST,))),
        LabeledCase("busy-day", "a launch doubles spend (0.6 to 1.2 USD/h)", "noise",
                 world(baseline + 4 * W, extra_cost=[(baseline, baseline + 4 * W, 0.6)])),
        LabeledCase("llmsim-restart", "llmsim restarts: 3 failed scrapes", "noise",
                 world(short, down={"llmsim": [(until, 3)]})),
        LabeledCase("quiet-night", f"night: {REASONING} gets {BUSY / 20:g} requests/s and half of them fail", "noise",
                 world(short, errors={REASONING: [(0, short, 0.5)]}, night={REASONING: BUSY / 20})),
        LabeledCase("few-ratings", f"night: {REASONING}'s few scored answers ({MIN_SCORED / 2:g}/s) score 80 %",
                 "noise", world(drift + 4 * W, relevance={REASONING: (MIN_SCORED / 2, [(drift, drift + 4 * W, 0.8)])},
                                latency=False)),
    ]


@dataclass
class Quality:
    precision: float            # NaN when nothing fired
    recall: float
    time_to_detect: dict[str, float | None]
    false_alarms: list[Episode] = field(default_factory=list)
    missed: list[LabeledCase] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)   # one per timeline, for a table


def _true_positive(timeline: LabeledCase, episode: Episode) -> bool:
    return (timeline.kind == "incident" and episode.alertname in timeline.expected
            and timeline.start <= episode.first <= timeline.end + W + SLACK)


def score(lines: Sequence[LabeledCase], episodes: Mapping[str, Sequence[Episode]]) -> Quality:
    hits, alarms, detect, missed, rows = 0, [], {}, [], []
    for timeline in lines:
        mine = list(episodes.get(timeline.key, ()))
        good = [e for e in mine if _true_positive(timeline, e)]
        bad = [e for e in mine if not _true_positive(timeline, e)]
        hits += len(good)
        alarms += bad
        first = min((e.first for e in good), default=None)
        if timeline.kind == "incident":
            detected = first is not None and first <= timeline.deadline
            detect[timeline.key] = None if first is None else first - timeline.start
            if not detected:
                missed.append(timeline)
        rows.append({"timeline": timeline.key, "kind": timeline.kind, "what happened": timeline.title,
                     "alerts": ", ".join(sorted({e.describe() for e in mine})) or "-",
                     "detected after (s)": detect.get(timeline.key), "false alarms": len(bad)})
    incidents = sum(t.kind == "incident" for t in lines)
    fired = hits + len(alarms)
    return Quality(precision=hits / fired if fired else math.nan,
                   recall=(incidents - len(missed)) / incidents if incidents else math.nan,
                   time_to_detect=detect, false_alarms=alarms, missed=missed, rows=rows)


def evaluate(rules: Mapping) -> tuple[list[LabeledCase], dict[str, list[Episode]], Quality]:
    lines = labeled_cases()
    episodes = replay(rules, {t.key: t.world for t in lines})
    return lines, episodes, score(lines, episodes)


def plot(lines: Sequence[LabeledCase], episodes: Mapping[str, Sequence[Episode]], axis=None):
    """One row per timeline: the incident shaded, each alert episode a bar (red critical, orange warning)."""
    import matplotlib.pyplot as plt

    if axis is None:
        _, axis = plt.subplots(figsize=(13, 0.55 * len(lines) + 1), constrained_layout=True)
    colours = {"critical": "tab:red", "warning": "tab:orange"}
    for row, timeline in enumerate(lines):
        y = len(lines) - 1 - row
        axis.broken_barh([(0, timeline.world.seconds)], (y - 0.4, 0.8), color="whitesmoke")
        if timeline.kind == "incident":
            axis.broken_barh([(timeline.start, timeline.end - timeline.start)], (y - 0.4, 0.8), color="lightsteelblue")
        merged: dict[tuple[str, str], list[Episode]] = {}  # one bar per alert and severity, whatever the model
        for episode in episodes.get(timeline.key, ()):
            merged.setdefault((episode.alertname, episode.severity), []).append(episode)
        bars = sorted(merged.items(), key=lambda item: min(e.first for e in item[1]))
        for index, ((alertname, severity), group) in enumerate(bars):
            height = 0.7 / max(len(bars), 1)
            first, last = min(e.first for e in group), max(e.last for e in group)
            axis.broken_barh([(first, max(last - first, 1))], (y - 0.35 + index * height, height * 0.9),
                             color=colours.get(severity, "tab:gray"))
            count = f" x{len(group)}" if len(group) > 1 else ""
            axis.text(first, y - 0.35 + (index + 0.5) * height, f" {alertname}{count}", fontsize=7, va="center")
    axis.set_yticks(range(len(lines)))
    axis.set_yticklabels([f"{t.key} ({t.kind})" for t in reversed(lines)], fontsize=8)
    axis.set_xlabel("seconds into the timeline (blue: the incident; red: critical, orange: warning)")
    axis.set_title("Your alerts on the labeled timelines")
    return axis
