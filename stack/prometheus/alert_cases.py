"""promtool unit tests per profile, written from cases ("12% of sim-balanced requests fail") instead of by hand.

Every alert rule (alertname x severity x reason) gets a case where it must fire and a realistic near miss where
it must stay quiet (except Watchdog, which always fires). A firing case is checked one test interval before the
rule's `for` elapses (not firing yet) and when it elapses (firing, with exact labels and annotations). The expected
alerts come from `Model`, which evaluates the rules' expressions over the input series (series.Timeline); rendering
fails if a case fires other rules than it declares, or if one lacks a firing or a quiet case.

Timings come from the profile and thresholds from alerts.py, so the same code renders the tests of every profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from typing import Callable, Mapping, Sequence

from stack import catalog, topology
from stack.gateway.metrics import LATENCY_BUCKETS_SECONDS
from stack.profiles import Duration, Profile
from stack.prometheus import alerts as A
from stack.prometheus.alerts import alert_rules
from stack.prometheus.rulefiles import rule_files
from stack.prometheus.rules import RECORDING_GROUP, AlertRule
from stack.prometheus.scrape import SCRAPED_SERVICES, lab_jobs
from stack.prometheus.series import (
    InputSeries, Labels, Phase, CaseError, Timeline, Vector, above, bucket_quantile, counter, gauge, histogram,
    labels_of, ramp, ratio, sum_by,
)
from stack.prometheus.series import avg as avg_over_time
from stack.prometheus.templating import render

Key = tuple[str, str, str | None]  # (alertname, severity, reason)
ALWAYS_FIRING = frozenset({"Watchdog"})  # no quiet case can exist for these
RECORDING_TESTS = "recording.yml"
FAST, BALANCED, REASONING = "sim-fast", "sim-balanced", "sim-reasoning"


def rule_key(rule: AlertRule) -> Key:
    return rule.alert, rule.severity, rule.extra_labels.get("reason")


def target(service: str) -> dict[str, str]:
    """The job and instance labels Prometheus gives a service's series (docs/contract.md)."""
    return {"job": service, "instance": topology.load()[service].address}


def unit_test_interval(p: Profile) -> Duration:
    """The sample and evaluation step of the unit tests: the longest one that divides every window and `for`, is a
    multiple of the profile's evaluation interval, leaves >= 4 samples in a rate window, and >= 2 steps in every
    `for` (so "one step before `for` elapses" is a pending alert, not the first evaluation). Production: 1m, so a day
    of budget is 1440 samples, not 5760; classroom: 1s."""
    durations = [p.rate_window, p.baseline_window, p.budget_window, *p.for_durations.values()]
    common = gcd(*(d.seconds for d in durations))
    shortest_for = min(d.seconds for d in p.for_durations.values())
    for step in range(common, 0, -1):
        if (common % step == 0 and step % p.evaluation_interval.seconds == 0
                and p.rate_window.seconds >= 4 * step and shortest_for >= 2 * step):
            return Duration(step)
    raise CaseError(f"profile {p.name}: no unit-test interval divides its windows and `for` durations and is a "
                        f"multiple of its evaluation interval {p.evaluation_interval}")


# ---------------------------------------------------------------- the rules' expressions, evaluated by the model

class Model:
    """The recording rules of rules.py and the alert expressions of alerts.py over one case's input."""

    def __init__(self, profile: Profile, timeline: Timeline) -> None:
        self.p, self.tl = profile, timeline
        self._memo: dict[tuple[str, int], Vector] = {}

    def _cached(self, name: str, t: int, compute: Callable[[int], Vector]) -> Vector:
        if (name, t) not in self._memo:
            self._memo[name, t] = compute(t)
        return self._memo[name, t]

    def sum_rate(self, by: Sequence[str], t: int, name: str, **matchers: str) -> Vector:
        window = self.p.rate_window
        return sum_by(by, ((s, self.tl.rate(s, t, window)) for s in self.tl.select(name, **matchers)))

    def requests(self, t: int) -> Vector:
        return self._cached("requests", t, lambda at: self.sum_rate(
            ("model",), at, "llm_requests_total", job="gateway"))

    def errors(self, t: int) -> Vector:
        return self._cached("errors", t, lambda at: self.sum_rate(
            ("model",), at, "llm_requests_total", job="gateway", status="error"))

    def error_ratio(self, t: int) -> Vector:
        requests = self.requests(t)
        return {model: ratio(errors, requests[model]) for model, errors in self.errors(t).items() if model in requests}

    def p95(self, t: int) -> Vector:
        rates = self.sum_rate(("le", "model"), t, "llm_request_duration_seconds_bucket", job="gateway")
        buckets: dict[Labels, list[tuple[float, float]]] = {}
        for labels, value in rates.items():
            label = dict(labels)
            buckets.setdefault(labels_of({"model": label["model"]}), []).append((float(label["le"]), value))
        return {model: bucket_quantile(0.95, sorted(pairs)) for model, pairs in buckets.items()}

    def cost_rate(self, t: int) -> Vector:
        return self._cached("cost", t, lambda at: self.sum_rate(("job",), at, "llm_cost_usd_total", job="gateway"))

    def cost_baseline(self, t: int) -> Vector:
        step, points = self.tl.interval.seconds, {}
        for at in range(max(0, t - self.p.baseline_window.seconds), t + 1, step):
            for labels, value in self.cost_rate(at).items():
                points.setdefault(labels, []).append(value)
        return {labels: avg_over_time(values) for labels, values in points.items()}


Evaluate = Callable[[Model, int], Vector]


def _enough_traffic(m: Model, t: int, vector: Vector) -> Vector:
    """`and model:llm_requests:rate >= min_request_rate`."""
    requests = m.requests(t)
    return {k: v for k, v in vector.items() if k in requests and above(requests[k], m.p.min_request_rate, True)}


def _error_ratio(threshold: float) -> Evaluate:
    return lambda m, t: _enough_traffic(m, t, {k: v for k, v in m.error_ratio(t).items() if above(v, threshold)})


def _latency(m: Model, t: int) -> Vector:
    return {k: v for k, v in m.p95(t).items() if above(v, A.LATENCY_P95_SECONDS)}


def _rate_limited(m: Model, t: int) -> Vector:
    limited = m.sum_rate(("model",), t, "llm_provider_errors_total", job="gateway", error_type="rate_limited")
    requests = m.requests(t)
    shares = {k: ratio(v, requests[k]) for k, v in limited.items() if k in requests}
    return _enough_traffic(m, t, {k: v for k, v in shares.items() if above(v, A.RATE_LIMITED_RATIO)})


def _cost_anomaly(m: Model, t: int) -> Vector:
    baseline = m.cost_baseline(t)
    return {
        k: v * 3600 for k, v in m.cost_rate(t).items()
        if above(v * 3600, A.COST_FLOOR_USD_PER_HOUR)
        and k in baseline and above(v, A.COST_ANOMALY_FACTOR * baseline[k])
    }


def _budget(threshold: float) -> Evaluate:
    def evaluate(m: Model, t: int) -> Vector:
        window = m.p.budget_window
        spent = sum_by((), ((s, m.tl.increase(s, t, window)) for s in m.tl.select("llm_cost_usd_total", job="gateway")))
        budgets = [m.tl.value(s, t) for s in m.tl.select("llm_daily_budget_usd", job="gateway")]
        if not spent or not budgets:
            return {}
        share = max(budgets)
        if window.seconds != A.SECONDS_PER_DAY:
            share = share * window.seconds / A.SECONDS_PER_DAY
        value = ratio(spent[()], share)
        return {(): value} if above(value, threshold) else {}
    return evaluate


def _target_of(s: InputSeries) -> Labels:
    """The labels of `up` and `scrape_samples_scraped` without their name: job and instance."""
    return labels_of({"job": s.labels["job"], "instance": s.labels["instance"]})


def _target_down(m: Model, t: int) -> Vector:
    lab = set(lab_jobs())  # `up{job!="lab"} == 0`: a lab exporter runs only while its notebook does
    return {_target_of(s): 0.0 for s in m.tl.select("up") if s.labels["job"] not in lab and m.tl.value(s, t) == 0}


def _metrics_absent(m: Model, t: int) -> Vector:
    present = [m.tl.value(s, t) for s in m.tl.select("llm_requests_total", job="gateway")]  # (checks coverage)
    return {} if present else {labels_of({"job": "gateway"}): 1.0}


def _growth(m: Model, t: int) -> Vector:
    window = m.p.baseline_window
    deltas = {_target_of(s): m.tl.delta(s, t, window) for s in m.tl.select("scrape_samples_scraped")}
    grown = {k: v for k, v in deltas.items() if v is not None and above(v, A.CARDINALITY_GROWTH_SAMPLES)}
    failed = {_target_of(s) for s in m.tl.select("up") if m.tl.min_over_time(s, t, window) == 0}
    return {k: v for k, v in grown.items() if k not in failed}  # `unless on (job, instance) ... == 0`


def _sample_limit(m: Model, t: int) -> Vector:
    values = {_target_of(s): m.tl.value(s, t) for s in m.tl.select("scrape_samples_scraped", job="gateway")}
    return {k: v for k, v in values.items() if above(v, m.p.gateway_sample_limit)}


def _notifications_failing(m: Model, t: int) -> Vector:
    by = ("job", "instance", "integration")
    failed = m.sum_rate(by, t, "alertmanager_notifications_failed_total", job="alertmanager")
    total = m.sum_rate(by, t, "alertmanager_notifications_total", job="alertmanager")
    shares = {k: ratio(v, total[k]) for k, v in failed.items() if k in total}
    return {k: v for k, v in shares.items() if above(v, A.NOTIFICATION_FAILURE_RATIO)}


EVALUATORS: dict[Key, Evaluate] = {
    ("LLMHighErrorRatio", "warning", None): _error_ratio(A.ERROR_RATIO_WARNING),
    ("LLMHighErrorRatio", "critical", None): _error_ratio(A.ERROR_RATIO_CRITICAL),
    ("LLMLatencyP95High", "warning", None): _latency,
    ("LLMProviderRateLimited", "warning", None): _rate_limited,
    ("LLMCostAnomaly", "warning", None): _cost_anomaly,
    ("LLMDailyBudgetBurn", "warning", None): _budget(A.BUDGET_WARNING),
    ("LLMDailyBudgetBurn", "critical", None): _budget(A.BUDGET_CRITICAL),
    ("TargetDown", "critical", None): _target_down,
    ("LLMMetricsAbsent", "warning", None): _metrics_absent,
    ("CardinalityGrowth", "warning", "growth"): _growth,
    ("CardinalityGrowth", "warning", "sample_limit"): _sample_limit,
    ("AlertmanagerNotificationsFailing", "warning", None): _notifications_failing,
    ("Watchdog", "none", None): lambda m, t: {(): 1.0},
}


@dataclass(frozen=True)
class AlertStates:
    """One rule's alerts at each test step, following Prometheus: pending from the first evaluation that returns a
    series, firing once `for` has elapsed, gone as soon as the series is missing."""

    hold: int
    step: int
    active: list[dict[Labels, tuple[int, float]]]  # per step: labels -> (active since, value)

    def firing(self, index: int) -> Vector:
        t = index * self.step
        return {labels: value for labels, (since, value) in self.active[index].items() if t - since >= self.hold}

    def pending_for(self, index: int) -> int:
        """How long the oldest pending alert has been pending (-1: none is)."""
        t = index * self.step
        return max((t - since for since, _ in self.active[index].values() if t - since < self.hold), default=-1)


def alert_states(rule: AlertRule, m: Model) -> AlertStates:
    evaluate, step = EVALUATORS[rule_key(rule)], m.tl.interval.seconds
    active: dict[Labels, tuple[int, float]] = {}
    over_time = []
    for t in range(0, m.tl.horizon + 1, step):
        now = evaluate(m, t)
        active = {labels: (active[labels][0] if labels in active else t, value) for labels, value in now.items()}
        over_time.append(active)
    return AlertStates(rule.for_.seconds if rule.for_ else 0, step, over_time)


# ---------------------------------------------------------------- cases

@dataclass(frozen=True)
class AlertCase:
    title: str
    alertname: str
    fires: tuple[Key, ...]  # the rules this case must fire; none: every rule of `alertname` stays quiet
    series: tuple[InputSeries, ...]
    also_at: tuple[Duration, ...] = ()  # extra checks, e.g. when a naive version of the rule would fire


@dataclass(frozen=True)
class Ctx:
    """What cases derive their numbers from: the profile's timing and the test interval."""

    p: Profile
    step: Duration

    @property
    def busy(self) -> float:
        """Healthy traffic per model (requests/s): well above the minimum rate the ratio alerts need."""
        return 10 * self.p.min_request_rate

    @property
    def lead(self) -> Duration:
        """Healthy time before a fault, so rate windows are full when it starts."""
        return self.p.rate_window

    def run(self, alertname: str) -> Duration:
        """How long a fault lasts: a window to fill, `for` to elapse, a window to spare."""
        return self.p.rate_window * 2 + self.p.for_(alertname)


GATEWAY = target("gateway")


def _requests(c: Ctx, model: str, phases: Sequence[tuple[Duration, float, float]]) -> list[InputSeries]:
    """llm_requests_total of one model from phases of (duration, requests/s, share of requests that fail)."""
    return [
        counter("llm_requests_total", {**GATEWAY, "model": model, "status": status}, c.step,
                [Phase(d, rate * (share if status == "error" else 1 - share)) for d, rate, share in phases])
        for status in ("success", "error")
    ]


def _models() -> tuple[str, ...]:
    models = tuple(catalog.load().model_names)
    missing = {FAST, BALANCED, REASONING} - set(models)
    if missing:
        raise CaseError(f"cases use models {sorted(missing)} that stack/catalog.yaml lacks")
    return models


def error_ratio_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMHighErrorRatio"
    warning, critical = (name, "warning", None), (name, "critical", None)
    lead, run = c.lead, c.run(name)

    def failing(model: str, share: float) -> tuple[InputSeries, ...]:
        return tuple(s for m in _models() for s in _requests(
            c, m, [(lead, c.busy, 0.0), (run, c.busy, share if m == model else 0.0)]))

    warning_only, outage = A.ERROR_RATIO_WARNING * 2.4, A.ERROR_RATIO_CRITICAL * 1.75
    noise = A.ERROR_RATIO_WARNING * 0.8
    few = tuple(s for m in _models() for s in _requests(
        c, m, [(lead + run, c.p.min_request_rate / 2 if m == REASONING else c.busy, 0.5 if m == REASONING else 0.0)]))
    return [
        AlertCase(f"{BALANCED}: {warning_only:.0%} of requests fail -> warning only, critical stays quiet", name,
                 (warning,), failing(BALANCED, warning_only)),
        AlertCase(f"{REASONING}: {outage:.0%} of requests fail -> warning and critical (Alertmanager inhibits the "
                 "warning, Prometheus does not)", name, (warning, critical), failing(REASONING, outage)),
        AlertCase(f"{FAST}: {noise:.0%} of requests fail, under the warning threshold -> quiet", name, (),
                 failing(FAST, noise)),
        AlertCase(f"{REASONING}: half of very few requests fail ({c.p.min_request_rate / 2:g}/s, under the minimum "
                 "request rate) -> quiet", name, (), few),
    ]


HEALTHY_LATENCY = {0.5: 0.5, 1.0: 0.3, 2.0: 0.2}  # shares of requests per bucket: p95 1.75 s
SLOW_LATENCY = {2.0: 0.5, 8.0: 0.5}  # p95 7.6 s
P95_3S = {0.5: 0.6, 1.0: 0.2, 2.0: 0.1, 4.0: 0.1}  # p95 3 s
FEW_STRAGGLERS = {0.25: 0.9, 0.5: 0.07, 30.0: 0.03}  # 3% take over 15 s, p95 0.43 s


def _p95(shares: Mapping[float, float]) -> float:
    bounds = [*LATENCY_BUCKETS_SECONDS, float("inf")]
    return bucket_quantile(0.95, [(b, sum(v for upper, v in shares.items() if upper <= b)) for b in bounds])


def _latency_series(c: Ctx, model: str, phases: Sequence[tuple[Duration, Mapping[float, float]]]) -> list[InputSeries]:
    per_second = [(d, {bound: share * c.busy for bound, share in shares.items()}) for d, shares in phases]
    return histogram(c.step, "llm_request_duration_seconds", {**GATEWAY, "model": model}, LATENCY_BUCKETS_SECONDS,
                     per_second)


def latency_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMLatencyP95High"
    total = c.lead + c.run(name)
    slow = [*_latency_series(c, REASONING, [(c.lead, HEALTHY_LATENCY), (c.run(name), SLOW_LATENCY)]),
            *_latency_series(c, FAST, [(total, HEALTHY_LATENCY)])]
    near = [*_latency_series(c, BALANCED, [(total, P95_3S)]), *_latency_series(c, FAST, [(total, FEW_STRAGGLERS)])]
    return [
        AlertCase(f"{REASONING} slows down to a p95 of {_p95(SLOW_LATENCY):.2g}s -> fires", name,
                 ((name, "warning", None),), tuple(slow)),
        AlertCase(f"{BALANCED} has a p95 of {_p95(P95_3S):.2g}s and 3% of {FAST} calls take over 15s (p95 "
                 f"{_p95(FEW_STRAGGLERS):.2g}s) -> quiet", name, (), tuple(near)),
    ]


def _provider_errors(c: Ctx, model: str, error_type: str, phases: Sequence[tuple[Duration, float]]) -> InputSeries:
    labels = {**GATEWAY, "model": model, "error_type": error_type}
    return counter("llm_provider_errors_total", labels, c.step, [Phase(d, share * c.busy) for d, share in phases])


def rate_limited_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMProviderRateLimited"
    lead, run = c.lead, c.run(name)
    limited, near, server_errors = A.RATE_LIMITED_RATIO * 2.7, A.RATE_LIMITED_RATIO * 0.8, 0.3
    traffic = [s for m in (FAST, BALANCED) for s in _requests(c, m, [(lead + run, c.busy, 0.0)])]
    fires = (*traffic, _provider_errors(c, FAST, "rate_limited", [(lead, 0), (run, limited)]),
             _provider_errors(c, FAST, "server_error", [(lead + run, 0)]))
    quiet = (*traffic, _provider_errors(c, FAST, "rate_limited", [(lead + run, near)]),
             _provider_errors(c, BALANCED, "rate_limited", [(lead + run, 0)]),
             _provider_errors(c, BALANCED, "server_error", [(lead + run, server_errors)]))
    return [
        AlertCase(f"the provider answers 429 to {limited:.0%} of {FAST} requests -> fires", name,
                 ((name, "warning", None),), fires),
        AlertCase(f"{near:.0%} of {FAST} requests get 429 and {server_errors:.0%} of {BALANCED} requests get server "
                 "errors (not 429) -> quiet", name, (), quiet),
    ]


def _cost(c: Ctx, model: str, department: str, phases: Sequence[tuple[Duration, float]]) -> InputSeries:
    """llm_cost_usd_total from phases of (duration, USD per hour)."""
    labels = {**GATEWAY, "model": model, "department": department}
    return counter("llm_cost_usd_total", labels, c.step, [Phase(d, usd / 3600) for d, usd in phases])


def cost_cases(c: Ctx) -> list[AlertCase]:
    name, floor, factor = "LLMCostAnomaly", A.COST_FLOOR_USD_PER_HOUR, A.COST_ANOMALY_FACTOR
    lead, run = c.p.baseline_window + c.p.rate_window, c.run(name)  # a full baseline before the change

    def spend(before: float, after: float) -> tuple[InputSeries, ...]:
        """`before` USD/h (2/3 engineering, 1/3 support), then marketing adds what reaches `after`."""
        return (_cost(c, BALANCED, "engineering", [(lead + run, before * 2 / 3)]),
                _cost(c, FAST, "support", [(lead + run, before / 3)]),
                _cost(c, REASONING, "marketing", [(lead, 0), (run, after - before)]))

    spike, small = (0.6 * floor, 6 * floor), (0.05 * floor, 0.5 * floor)
    steady = (2.4 * floor, (factor - 0.5) * 2.4 * floor)
    return [
        AlertCase(f"a marketing batch job takes spend from {spike[0]:g} to {spike[1]:g} USD/h (10x) -> fires", name,
                 ((name, "warning", None),), spend(*spike)),
        AlertCase(f"spend jumps 10x, from {small[0]:g} to {small[1]:g} USD/h, under the {floor:g} USD/h floor -> quiet",
                 name, (), spend(*small)),
        AlertCase(f"spend grows {steady[1] / steady[0]:g}x, from {steady[0]:g} to {steady[1]:g} USD/h, under "
                 f"{factor:g}x its baseline -> quiet", name, (), spend(*steady)),
    ]


def budget_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMDailyBudgetBurn"
    warning, critical = (name, "warning", None), (name, "critical", None)
    daily, duration = catalog.load().daily_budget_usd, c.p.budget_window + c.run(name)

    def pace(fraction: float) -> tuple[InputSeries, ...]:
        """Spend at `fraction` of the budget's pace (fraction x daily budget per day), from the start."""
        usd_per_hour = fraction * daily / 24
        return (_cost(c, REASONING, "research", [(duration, usd_per_hour * 2 / 3)]),
                _cost(c, BALANCED, "engineering", [(duration, usd_per_hour / 3)]),
                gauge("llm_daily_budget_usd", GATEWAY, c.step, [Phase(duration, daily)]))

    fast, runaway, careful = A.BUDGET_WARNING * 1.15, A.BUDGET_CRITICAL * 1.3, A.BUDGET_WARNING * 0.9
    window = f"the {c.p.budget_window} window"
    return [
        AlertCase(f"spending at {fast:.0%} of the budget's pace over {window} -> warning only", name, (warning,),
                 pace(fast)),
        AlertCase(f"a runaway agent spends at {runaway:.0%} of the budget's pace -> warning, then critical", name,
                 (warning, critical), pace(runaway)),
        AlertCase(f"spending at {careful:.0%} of the budget's pace for all of {window} -> quiet", name, (),
                 pace(careful)),
    ]


def _up(c: Ctx, phases_by_service: Mapping[str, Sequence[Phase]], duration: Duration) -> tuple[InputSeries, ...]:
    """`up` of every scraped job; lab targets are down (no notebook running) unless a phase says otherwise."""
    default = {**{s: 1 for s in SCRAPED_SERVICES}, **{job: 0 for job in lab_jobs()}}
    return tuple(gauge("up", target(job), c.step, phases_by_service.get(job, [Phase(duration, level)]))
                 for job, level in default.items())


def target_down_cases(c: Ctx) -> list[AlertCase]:
    name, for_ = "TargetDown", c.p.for_("TargetDown")
    lead, run = c.lead, c.run(name)
    down = [Phase(lead, 1), Phase(run, 0)]
    blip = [Phase(lead, 1), Phase(for_, 0), Phase(run, 1)]
    cases = [
        AlertCase("llmsim stops answering scrapes (no lab notebook running either) -> fires for llmsim only", name,
                 ((name, "critical", None),), _up(c, {"llmsim": down}, lead + run)),
        AlertCase(f"llmsim fails its scrapes for {for_} (a restart), one evaluation short of firing, and comes back "
                 "-> quiet", name, (),
                 _up(c, {"llmsim": blip}, lead + for_ + run)),
    ]
    for job in lab_jobs():
        stopped = [Phase(lead, 1), Phase(run, 0)]
        cases.append(AlertCase(f"the {job} exporter's notebook is closed: {job} is down for good -> quiet (lab "
                                  "targets only run while a lab notebook does)", name, (),
                                  _up(c, {job: stopped}, lead + run)))
    return cases


def metrics_absent_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMMetricsAbsent"
    duration = c.lead + c.run(name)
    renamed = tuple(counter("llm_gateway_requests_total", {**GATEWAY, "model": m, "status": "success"}, c.step,
                            [Phase(duration, c.busy)]) for m in _models())
    idle = tuple(gauge("llm_requests_total", {**GATEWAY, "model": m, "status": status}, c.step, [Phase(duration, 0)])
                 for m in _models() for status in ("success", "error"))
    return [
        AlertCase("the gateway exports llm_gateway_requests_total instead (metric renamed) -> fires", name,
                 ((name, "warning", None),), renamed),
        AlertCase("an idle gateway: every llm_requests_total child exported at 0 -> quiet", name, (), idle),
    ]


def cardinality_cases(c: Ctx) -> list[AlertCase]:
    name, threshold, limit = "CardinalityGrowth", A.CARDINALITY_GROWTH_SAMPLES, c.p.gateway_sample_limit
    growth, sample_limit = (name, "warning", "growth"), (name, "warning", "sample_limit")
    window, run = c.p.baseline_window, c.run(name)
    total = window * 3 + run  # a full window before anything changes; an outage, a window to recover, `for`
    usual, prometheus, alertmanager = 600, 900, 800  # samples per scrape

    def scrapes(gateway: Sequence[Phase], gateway_up: Sequence[Phase] = (),
                alertmanager_phases: Sequence[Phase] = ()) -> tuple[InputSeries, ...]:
        """scrape_samples_scraped and up of gateway, prometheus and alertmanager (a failed scrape records 0)."""
        samples = {"gateway": gateway, "prometheus": [Phase(total, prometheus)],
                   "alertmanager": alertmanager_phases or [Phase(total, alertmanager)]}
        ups = {"gateway": gateway_up,
               "alertmanager": [Phase(phase.duration, int(phase.value > 0)) for phase in alertmanager_phases]}
        return tuple(s for job, phases in samples.items() for s in (
            gauge("scrape_samples_scraped", target(job), c.step, phases),
            gauge("up", target(job), c.step, ups.get(job) or [Phase(total, 1)])))

    per_step = 2.2 * threshold / window.steps(c.step)  # 2.2x the threshold per baseline window
    leak = scrapes([])
    leak = (ramp("scrape_samples_scraped", GATEWAY, c.step, usual, window, per_step, window * 2 + run), *leak[1:])
    over = [Phase(window, 0.6 * limit), Phase(window * 2 + run, 1.2 * limit)]
    outage = [Phase(window, alertmanager), Phase(window + c.p.rate_window, 0),
              Phase(Duration(total.seconds - (window * 2 + c.p.rate_window).seconds), alertmanager)]
    return [
        AlertCase(f"a user id leaks into a gateway label: {per_step:.4g} more samples every {c.step} -> fires (growth)",
                 name, (growth,), leak),
        AlertCase(f"a deploy adds {0.6 * threshold:g} samples at once, then stays flat -> quiet", name, (),
                 scrapes([Phase(window, usual), Phase(window * 2 + run, usual + 0.6 * threshold)])),
        AlertCase(f"alertmanager is down for longer than {window}, then back: its sample count climbs from 0 to "
                 f"{alertmanager} -> quiet (failed scrapes are TargetDown's business)", name, (),
                 scrapes([Phase(total, usual)], alertmanager_phases=outage),
                 also_at=(window * 2 + c.p.rate_window + c.p.for_(name) + c.step,)),
        AlertCase(f"the gateway jumps to {1.2 * limit:g} samples, over its sample_limit {limit}, so its scrapes fail -> "
                 "fires (sample_limit; growth leaves failing targets alone)", name, (sample_limit,),
                 scrapes(over, [Phase(window, 1), Phase(window * 2 + run, 0)])),
        AlertCase(f"the gateway steadily exposes {0.9 * limit:g} samples, under its sample_limit {limit} -> quiet", name,
                 (), scrapes([Phase(total, 0.9 * limit)])),
    ]


def notification_cases(c: Ctx) -> list[AlertCase]:
    name = "AlertmanagerNotificationsFailing"
    lead, run, per_second = c.lead, c.run(name), 0.2
    am = target("alertmanager")

    def notifications(failing: Sequence[tuple[Duration, float]]) -> tuple[InputSeries, ...]:
        total = lead + run
        return (
            counter("alertmanager_notifications_total", {**am, "integration": "webhook"}, c.step,
                    [Phase(total, per_second)]),
            counter("alertmanager_notifications_failed_total", {**am, "integration": "webhook"}, c.step,
                    [Phase(d, share * per_second) for d, share in failing]),
            gauge("alertmanager_notifications_total", {**am, "integration": "email"}, c.step, [Phase(total, 0)]),
            gauge("alertmanager_notifications_failed_total", {**am, "integration": "email"}, c.step, [Phase(total, 0)]),
        )

    rare = A.NOTIFICATION_FAILURE_RATIO / 2
    return [
        AlertCase("the receiver is down: every webhook notification fails -> fires", name, ((name, "warning", None),),
                 notifications([(lead, 0), (run, 1)])),
        AlertCase(f"{rare:.1%} of webhook notifications fail (1 in {1 / rare:g}), email sends none -> quiet", name, (),
                 notifications([(lead + run, rare)])),
    ]


def watchdog_cases(c: Ctx) -> list[AlertCase]:
    return [AlertCase("always firing, whatever the input", "Watchdog", (("Watchdog", "none", None),),
                     _up(c, {}, c.lead))]


CASES: dict[str, Callable[[Ctx], list[AlertCase]]] = {
    "LLMHighErrorRatio": error_ratio_cases,
    "LLMLatencyP95High": latency_cases,
    "LLMProviderRateLimited": rate_limited_cases,
    "LLMCostAnomaly": cost_cases,
    "LLMDailyBudgetBurn": budget_cases,
    "TargetDown": target_down_cases,
    "LLMMetricsAbsent": metrics_absent_cases,
    "CardinalityGrowth": cardinality_cases,
    "AlertmanagerNotificationsFailing": notification_cases,
    "Watchdog": watchdog_cases,
}


# ---------------------------------------------------------------- promtool test files

def _expected_alerts(rules: Sequence[AlertRule], states: Sequence[AlertStates], index: int) -> list[dict]:
    alerts = []
    for rule, rule_states in zip(rules, states):
        for labels, value in sorted(rule_states.firing(index).items()):
            label = dict(labels)
            annotations = {key: render(text, label, value) for key, text in rule.annotations.items()}
            alerts.append({"exp_labels": {**label, **rule.labels}, "exp_annotations": annotations})
    return alerts


def _check_steps(case: AlertCase, keys: Sequence[Key], states: Sequence[AlertStates], step: int) -> list[int]:
    """Firing: one step before each declared rule fires (pending), and when it fires. Quiet: halfway, at the end,
    and when an alert came closest to firing (if one was ever pending)."""
    steps = range(len(states[0].active))
    extra = {at.steps(Duration(step)) for at in case.also_at}
    if not case.fires:
        closest = max(steps, key=lambda i: max(s.pending_for(i) for s in states))
        pending = any(s.pending_for(closest) >= 0 for s in states)
        return sorted({len(steps) // 2, steps[-1], *extra, *([closest] if pending else [])})
    chosen = set(extra)
    for key in case.fires:
        first = next(i for i in steps if states[keys.index(key)].firing(i))
        chosen |= {first - 1, first} if first else {0, steps[-1]}
    return sorted(chosen)


def _alert_test_group(p: Profile, step: Duration, case: AlertCase, rules: Sequence[AlertRule]) -> dict:
    model = Model(p, Timeline(step, case.series))
    keys = [rule_key(rule) for rule in rules]
    try:
        states = [alert_states(rule, model) for rule in rules]
    except CaseError as error:
        raise CaseError(f"profile {p.name}, {case.alertname}: {case.title!r}: {error}") from None
    fired = {key for key, s in zip(keys, states) if any(s.firing(i) for i in range(len(s.active)))}
    if fired != set(case.fires):
        raise CaseError(f"profile {p.name}, {case.alertname}: {case.title!r} declares that "
                        f"{sorted(case.fires, key=str)} fire, but {sorted(fired, key=str)} do")
    checks = [
        {"eval_time": str(step * i), "alertname": case.alertname, "exp_alerts": _expected_alerts(rules, states, i)}
        for i in _check_steps(case, keys, states, step.seconds)
    ]
    return {"name": f"{case.alertname}: {case.title}", "interval": str(step),
            "input_series": [s.as_dict() for s in case.series], "alert_rule_test": checks}


def _check_coverage(p: Profile, keys: Sequence[Key], cases: Sequence[AlertCase]) -> None:
    missing = [f"{key} has no firing case" for key in keys if not any(key in s.fires for s in cases)]
    missing += [f"{key} has no quiet case" for key in keys if key[0] not in ALWAYS_FIRING
                and not any(s.alertname == key[0] and key not in s.fires for s in cases)]
    if missing:
        raise CaseError(f"profile {p.name}: " + "; ".join(missing))


def _sample(record: str, labels: Labels, value: float) -> dict:
    inner = ",".join(f'{key}="{label}"' for key, label in labels)
    return {"labels": f"{record}{{{inner}}}", "value": value}


def _expr_test(record: str, t: int, vector: Vector) -> dict:
    return {"expr": record, "eval_time": str(Duration(t)),
            "exp_samples": [_sample(record, labels, value) for labels, value in sorted(vector.items())]}


def recording_test_groups(p: Profile, step: Duration) -> list[dict]:
    """The recording rules on numbers a reader can check by hand; counts per step are exact binary fractions."""
    c, w = Ctx(p, step), p.rate_window
    replica = {**GATEWAY, "instance": "replica-2"}  # a second gateway replica: rates must add up across instances
    per_second = (  # (instance labels, model, status, requests/s)
        (GATEWAY, FAST, "success", 2), (GATEWAY, FAST, "error", 1), (replica, FAST, "success", 1),
        (replica, FAST, "error", 0), (GATEWAY, BALANCED, "success", 3), (GATEWAY, BALANCED, "error", 0),
    )
    duration = w * 2
    requests = tuple(counter("llm_requests_total", {**where, "model": m, "status": status}, step,
                             [Phase(duration, rate)]) for where, m, status, rate in per_second)
    latency = (*histogram(step, "llm_request_duration_seconds", {**GATEWAY, "model": REASONING},
                          LATENCY_BUCKETS_SECONDS, [(duration, {0.5: 10, 1.0: 8})]),
               *histogram(step, "llm_request_duration_seconds", {**replica, "model": REASONING},
                          LATENCY_BUCKETS_SECONDS, [(duration, {2.0: 2})]))
    cost_duration = p.baseline_window + w * 2
    per_step_usd = (2 ** -6, 2 ** -7)
    costs = tuple(counter("llm_cost_usd_total", {**GATEWAY, "model": m, "department": d}, step,
                          [Phase(cost_duration, usd / step.seconds)])
                  for (m, d), usd in zip(((BALANCED, "engineering"), (FAST, "support")), per_step_usd))
    ratio_model, latency_model, cost_model = (Model(p, Timeline(step, s)) for s in (requests, latency, costs))
    if ratio_model.error_ratio(w.seconds) == {labels_of({"model": FAST}): 1.0}:
        raise CaseError("the error-ratio case cannot tell aggregated from per-series division")
    steady = p.baseline_window.seconds + w.seconds
    return [
        {"name": f"error ratio: {FAST} errors / all {FAST} requests, summed over status and instance before dividing "
                 "(not 1, which per-series division gives)",
         "interval": str(step), "input_series": [s.as_dict() for s in requests],
         "promql_expr_test": [
             _expr_test(record, t, compute(t)) for t in (w.seconds, duration.seconds)
             for record, compute in (("model:llm_requests:rate", ratio_model.requests),
                                     ("model:llm_request_errors:rate", ratio_model.errors),
                                     ("model:llm_request_error_ratio:rate", ratio_model.error_ratio))]},
        {"name": "p95 per model from bucket rates summed over instances (one replica holds the slow calls)",
         "interval": str(step), "input_series": [s.as_dict() for s in latency],
         "promql_expr_test": [_expr_test("model:llm_request_duration_seconds:p95", duration.seconds,
                                         latency_model.p95(duration.seconds))]},
        {"name": f"cost rate per job, and its {p.baseline_window} baseline",
         "interval": str(step), "input_series": [s.as_dict() for s in costs],
         "promql_expr_test": [
             _expr_test("job:llm_cost_usd:rate", steady, cost_model.cost_rate(steady)),
             _expr_test("job:llm_cost_usd:rate_baseline", steady, cost_model.cost_baseline(steady)),
         ]},
    ]


def _test_file(rule_files: Sequence[str], groups: Sequence[str], step: Duration, tests: list[dict]) -> dict:
    return {"rule_files": [f"../rules/{name}" for name in rule_files], "evaluation_interval": str(step),
            "group_eval_order": list(groups), "tests": tests}


def _rule_file_of(files: Mapping[str, dict]) -> dict[str, tuple[str, str]]:
    """Alert or record name → (rule file name, group name), from the rule files as generated."""
    where = {}
    for file_name, content in files.items():
        for group in content["groups"]:
            for rule in group["rules"]:
                where[rule.get("alert") or rule["record"]] = (file_name, group["name"])
    return where


def promtool_tests(profile: Profile) -> dict[str, dict]:
    """Test file name (under tests/) → content: one file per alertname, and one for the recording rules."""
    step = unit_test_interval(profile)
    where = _rule_file_of(rule_files(profile))
    recording_file, _ = where["model:llm_requests:rate"]
    rules = alert_rules(profile)
    keys = [rule_key(rule) for rule in rules]
    if set(keys) != set(EVALUATORS):
        raise CaseError(f"alert rules {sorted(set(keys) ^ set(EVALUATORS), key=str)} lack a model (EVALUATORS)")
    result = {RECORDING_TESTS: _test_file([recording_file], [RECORDING_GROUP], step,
                                          recording_test_groups(profile, step))}
    every_case = []
    for alertname in dict.fromkeys(rule.alert for rule in rules):
        cases = CASES[alertname](Ctx(profile, step))
        every_case += cases
        same_name = [rule for rule in rules if rule.alert == alertname]
        alert_file, group = where[alertname]
        tests = [_alert_test_group(profile, step, case, same_name) for case in cases]
        result[f"{alertname}.yml"] = _test_file([recording_file, alert_file], [RECORDING_GROUP, group], step, tests)
    _check_coverage(profile, keys, every_case)
    return result
