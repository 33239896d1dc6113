"""The stack's alert rules (alerts.py) tested as cases ("12% of sim-balanced requests fail -> warning only"), one
registry entry per alertname: a model of each of its rules and its cases. unit_tests.py writes them as promtool
unit tests for every profile.

Every alert rule (alertname x severity x reason) gets a case where it must fire and a realistic near miss where it
must stay quiet (except an always-firing one like Watchdog). The expected alerts come from the entry's model of the
rule's expression, evaluated over the case's input series (rule_model.py, series.Timeline); rendering fails if a case
fires other rules than it declares, or if a rule lacks a firing or a quiet case, or an entry here.

To add an alert: its rule in alerts.py, an entry in ALERT_TESTS below (model + cases), its runbook
docs/runbooks/<AlertName>.md; then `make generate`. Traffic shapes come from shapes.py and world.py (shared with the
V3 grader), timings from the profile and thresholds from alerts.py, so the same code serves every profile.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from stack import catalog
from stack.gateway import metrics, routing
from stack.profiles import Duration, Profile
from stack.prometheus import alerts as A
from stack.prometheus.rule_model import Evaluate, Model
from stack.prometheus.rules import AlertRule
from stack.prometheus.scrape import lab_jobs
from stack.prometheus.series import InputSeries, Labels, Vector, above, below, labels_of, ratio, sum_by
from stack.prometheus.shapes import (
    BALANCED, FAST, FIRST_TOKEN_NEAR_MISS, HEALTHY_FIRST_TOKEN, P95_3S, REASONING, SLOW_FIRST_TOKEN, SLOW_LATENCY,
    STRAGGLERS, catalog_models, failing_models, first_token_p95, latency_near_miss, p95_of, slow_model,
)
from stack.prometheus.world import GATEWAY, World, target

Key = tuple[str, str, str | None]  # (alertname, severity, reason)


def rule_key(rule: AlertRule) -> Key:
    return rule.alert, rule.severity, rule.extra_labels.get("reason")


@dataclass(frozen=True)
class AlertCase:
    title: str
    alertname: str
    fires: tuple[Key, ...]  # the rules this case must fire; none: every rule of `alertname` stays quiet
    world: World            # its input series
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

    def world(self, length: Duration) -> World:
        return World(length.seconds, self.step)


@dataclass(frozen=True)
class AlertTests:
    """One alertname's entry: a model of each of its rules, by (severity, reason), and its cases."""

    models: Mapping[tuple[str, str | None], Evaluate]
    cases: Callable[[Ctx], list[AlertCase]]
    always_firing: bool = False  # no quiet case can exist


# ---------------------------------------------------------------- LLMHighErrorRatio

def _at_least(rates: Vector, minimum: float, vector: Vector) -> Vector:
    """`vector and rates >= minimum`."""
    return {k: v for k, v in vector.items() if k in rates and above(rates[k], minimum, True)}


def _enough_traffic(m: Model, t: int, vector: Vector) -> Vector:
    """`and model:llm_requests:rate >= min_request_rate`."""
    return _at_least(m.requests(t), m.p.min_request_rate, vector)


def _error_ratio(threshold: float) -> Evaluate:
    return lambda m, t: _enough_traffic(m, t, {k: v for k, v in m.error_ratio(t).items() if above(v, threshold)})


def error_ratio_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMHighErrorRatio"
    warning, critical = (name, "warning", None), (name, "critical", None)
    lead, run = c.lead, c.run(name)

    def failing(model: str, share: float) -> World:
        return failing_models(c.world(lead + run), catalog_models(), c.busy, lead, run, {model: share})

    warning_only, outage = A.ERROR_RATIO_WARNING * 2.4, A.ERROR_RATIO_CRITICAL * 1.75
    noise = A.ERROR_RATIO_WARNING * 0.8
    few = c.world(lead + run)
    for m in catalog_models():
        few.requests(m, [(lead + run, c.p.min_request_rate / 2 if m == REASONING else c.busy,
                          0.5 if m == REASONING else 0.0)])
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


# ---------------------------------------------------------------- LLMLatencyP95High

def _latency(m: Model, t: int) -> Vector:
    return {k: v for k, v in m.p95(t).items() if above(v, A.LATENCY_P95_SECONDS)}


def latency_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMLatencyP95High"
    total = c.lead + c.run(name)
    return [
        AlertCase(f"{REASONING} slows down to a p95 of {p95_of(SLOW_LATENCY):.2g}s -> fires", name,
                  ((name, "warning", None),), slow_model(c.world(total), c.busy, c.lead)),
        AlertCase(f"{BALANCED} has a p95 of {p95_of(P95_3S):.2g}s and 3% of {FAST} calls take over 15s (p95 "
                  f"{p95_of(STRAGGLERS):.2g}s) -> quiet", name, (), latency_near_miss(c.world(total), c.busy)),
    ]


# ---------------------------------------------------------------- LLMTimeToFirstTokenP95High

def _time_to_first_token(m: Model, t: int) -> Vector:
    slow = {k: v for k, v in m.time_to_first_token_p95(t).items() if above(v, A.TTFT_P95_SECONDS)}
    return _at_least(m.streamed_requests(t), m.p.min_request_rate, slow)


def time_to_first_token_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMTimeToFirstTokenP95High"
    lead, run = c.lead, c.run(name)
    total, few = lead + run, c.p.min_request_rate / 2
    slow_start = (c.world(total).streamed(REASONING, c.busy, [(lead, HEALTHY_FIRST_TOKEN), (run, SLOW_FIRST_TOKEN)])
                  .streamed(FAST, c.busy, [(total, HEALTHY_FIRST_TOKEN)]))
    near_miss = c.world(total).streamed(BALANCED, c.busy, [(total, FIRST_TOKEN_NEAR_MISS)])
    rarely_streamed = (c.world(total).requests(REASONING, [(total, c.busy, 0.0)])
                       .streamed(REASONING, few, [(total, SLOW_FIRST_TOKEN)]))
    long_answers = (c.world(total).latency(REASONING, c.busy, [(total, SLOW_LATENCY)])
                    .streamed(REASONING, c.busy, [(total, HEALTHY_FIRST_TOKEN)]))
    return [
        AlertCase(f"{REASONING}'s first token slows to a p95 of {first_token_p95(SLOW_FIRST_TOKEN):.2g}s -> fires for "
                  f"{REASONING} only", name, ((name, "warning", None),), slow_start),
        AlertCase(f"4% of {BALANCED}'s first tokens take over {A.TTFT_P95_SECONDS:g}s, a p95 of "
                  f"{first_token_p95(FIRST_TOKEN_NEAR_MISS):.4g}s -> quiet", name, (), near_miss),
        AlertCase(f"{REASONING}'s first token takes {first_token_p95(SLOW_FIRST_TOKEN):.2g}s (p95) on its {few:g} "
                  f"streamed calls/s, under the minimum rate (its {c.busy:g} requests/s in all do not count) -> quiet",
                  name, (), rarely_streamed),
        AlertCase(f"{REASONING}'s long answers take {p95_of(SLOW_LATENCY):.2g}s (p95: LLMLatencyP95High's business) "
                  f"but start within {first_token_p95(HEALTHY_FIRST_TOKEN):.2g}s -> quiet", name, (), long_answers),
    ]


# ---------------------------------------------------------------- LLMProviderRateLimited

def _rate_limited(m: Model, t: int) -> Vector:
    limited = m.sum_rate(("model",), t, "llm_provider_errors_total", job="gateway", error_type="rate_limited")
    requests = m.requests(t)
    shares = {k: ratio(v, requests[k]) for k, v in limited.items() if k in requests}
    return _enough_traffic(m, t, {k: v for k, v in shares.items() if above(v, A.RATE_LIMITED_RATIO)})


def rate_limited_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMProviderRateLimited"
    lead, run = c.lead, c.run(name)
    limited, near, server_errors = A.RATE_LIMITED_RATIO * 2.7, A.RATE_LIMITED_RATIO * 0.8, 0.3

    def traffic() -> World:
        world = c.world(lead + run)
        for m in (FAST, BALANCED):
            world.requests(m, [(lead + run, c.busy, 0.0)])
        return world

    def per_request(phases: Sequence[tuple[Duration, float]]) -> list[tuple[Duration, float]]:
        """Phases of (duration, share of requests) as (duration, errors/s)."""
        return [(d, share * c.busy) for d, share in phases]

    fires = (traffic().provider_errors(FAST, "rate_limited", per_request([(lead, 0), (run, limited)]))
             .provider_errors(FAST, "server_error", per_request([(lead + run, 0)])))
    quiet = (traffic().provider_errors(FAST, "rate_limited", per_request([(lead + run, near)]))
             .provider_errors(BALANCED, "rate_limited", per_request([(lead + run, 0)]))
             .provider_errors(BALANCED, "server_error", per_request([(lead + run, server_errors)])))
    return [
        AlertCase(f"the provider answers 429 to {limited:.0%} of {FAST} requests -> fires", name,
                  ((name, "warning", None),), fires),
        AlertCase(f"{near:.0%} of {FAST} requests get 429 and {server_errors:.0%} of {BALANCED} requests get server "
                  "errors (not 429) -> quiet", name, (), quiet),
    ]


# ---------------------------------------------------------------- LLMCostAnomaly

def _cost_anomaly(m: Model, t: int) -> Vector:
    baseline = m.cost_baseline(t)
    return {
        k: v * 3600 for k, v in m.cost_rate(t).items()
        if above(v * 3600, A.COST_FLOOR_USD_PER_HOUR)
        and k in baseline and above(v, A.COST_ANOMALY_FACTOR * baseline[k])
    }


def cost_cases(c: Ctx) -> list[AlertCase]:
    name, floor, factor = "LLMCostAnomaly", A.COST_FLOOR_USD_PER_HOUR, A.COST_ANOMALY_FACTOR
    lead, run = c.p.baseline_window + c.p.rate_window, c.run(name)  # a full baseline before the change

    def spend(before: float, after: float) -> World:
        """`before` USD/h (2/3 engineering, 1/3 support), then marketing adds what reaches `after`."""
        return (c.world(lead + run).cost(BALANCED, "engineering", [(lead + run, before * 2 / 3)])
                .cost(FAST, "support", [(lead + run, before / 3)])
                .cost(REASONING, "marketing", [(lead, 0), (run, after - before)]))

    spike, small = (0.6 * floor, 6 * floor), (0.05 * floor, 0.5 * floor)
    steady = (2.4 * floor, (factor - 0.5) * 2.4 * floor)
    return [
        AlertCase(f"a marketing batch job takes spend from {spike[0]:g} to {spike[1]:g} USD/h (10x) -> fires", name,
                  ((name, "warning", None),), spend(*spike)),
        AlertCase(f"spend jumps 10x, from {small[0]:g} to {small[1]:g} USD/h, under the {floor:g} USD/h floor -> "
                  "quiet", name, (), spend(*small)),
        AlertCase(f"spend grows {steady[1] / steady[0]:g}x, from {steady[0]:g} to {steady[1]:g} USD/h, under "
                  f"{factor:g}x its baseline -> quiet", name, (), spend(*steady)),
    ]


# ---------------------------------------------------------------- LLMResponseCacheHitRatioLow

def _cache_hit_ratio(m: Model, t: int) -> Vector:
    low = {k: v for k, v in m.cache_hit_ratio(t).items() if below(v, A.CACHE_HIT_RATIO_MIN)}
    return _at_least(m.cache_lookups(t), m.p.min_request_rate, low)


def cache_hit_ratio_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMResponseCacheHitRatioLow"
    fires = ((name, "warning", None),)
    lead, run = c.lead, c.run(name)
    total, quiet_night, busy_share = lead + run, c.p.min_request_rate / 2, 0.9
    busy_rate, other_rate = c.busy * busy_share, c.busy * (1 - busy_share)

    def lookups(busy: str, hits_before: float, hits_after: float, other: str, other_hits: float) -> World:
        """`busy` makes 9 in 10 of the lookups (`hits_before`, then `hits_after` of them hit), `other` the rest."""
        return (c.world(total).cache_lookups(busy, [(lead, busy_rate, hits_before), (run, busy_rate, hits_after)])
                .cache_lookups(other, [(total, other_rate, other_hits)]))

    def mix(busy: str, busy_hits: float, other: str, other_hits: float) -> str:
        overall = busy_share * busy_hits + (1 - busy_share) * other_hits
        return (f"{busy} (9 in 10 lookups) hits {busy_hits:.0%}, {other} {other_hits:.0%}: {overall:.0%} of all "
                f"lookups hit (the average of the two ratios is {(busy_hits + other_hits) / 2:.0%})")

    return [
        AlertCase(f"a prompt-template change makes every {BALANCED} request unique: its hits fall from 80% to 5%, "
                  f"{FAST} keeps 90% -> fires", name, fires, lookups(BALANCED, 0.8, 0.05, FAST, 0.9)),
        AlertCase(f"{mix(BALANCED, 0.6, FAST, 0.9)} -> fires; an averaged rule would stay quiet", name, fires,
                  lookups(BALANCED, 0.8, 0.6, FAST, 0.9)),
        AlertCase(f"{mix(FAST, 0.8, REASONING, 0.4)} -> quiet; an averaged rule would fire", name, (),
                  lookups(FAST, 0.8, 0.8, REASONING, 0.4)),
        AlertCase(f"a quiet night: 65% of {quiet_night:g} lookups/s hit, under the minimum rate -> quiet", name, (),
                  c.world(total).cache_lookups(FAST, [(total, quiet_night, 0.65)])),
        AlertCase(f"load starts on an empty cache: 30% of lookups hit for {lead}, then 90% -> quiet (the warm-up "
                  "ends before `for` does)", name, (),
                  c.world(total).cache_lookups(FAST, [(lead, busy_rate, 0.3), (run, busy_rate, 0.9)])),
    ]


# ---------------------------------------------------------------- fallbacks and circuit breakers

def _gauge_maxima(m: Model, t: int, name: str) -> Vector:
    """`max_over_time(<name>{job="gateway"}[breaker window])`: each series' maximum, under its labels (no name).
    The alerts compare these integer-valued gauges (breaker states, tiers) exactly, without `above`: a maximum on
    the threshold is the normal case (tier 2 for `>= 2`), and no float rounding is involved."""
    window = A.breaker_window(m.p)
    return {labels_of(s.labels): m.tl.max_over_time(s, t, window) for s in m.tl.select(name, job="gateway")}


def _breaker_open(m: Model, t: int) -> Vector:
    return {k: v for k, v in _gauge_maxima(m, t, "llm_circuit_breaker_state").items() if v > A.BREAKER_CLOSED}


def _degraded(tier: int) -> Evaluate:
    return lambda m, t: {k: v for k, v in _gauge_maxima(m, t, "llm_degradation_tier").items() if v >= tier}


def _alternating(length: Duration, first: tuple[Duration, float], second: tuple[Duration, float]
                 ) -> list[tuple[Duration, float]]:
    """Phases `first`, `second`, `first`, ... cut to `length`."""
    phases: list[tuple[Duration, float]] = []
    left, turns = length.seconds, itertools.cycle((first, second))
    while left > 0:
        span, value = next(turns)
        phases.append((Duration(min(span.seconds, left)), value))
        left -= span.seconds
    return phases


def _breaker_cycle(c: Ctx) -> Duration:
    """How long a breaker stays open once: catalog.yaml reset_seconds, then the next call probes it (a scrape
    later at the latest), in whole test steps."""
    seconds = catalog.load().circuit_breaker.reset_seconds + 1
    return Duration(math.ceil(seconds / c.step.seconds) * c.step.seconds)


def _closed_spell(c: Ctx) -> Duration:
    """A breaker that closes on one lucky probe and reopens a few calls later: closed for about half the breaker
    window (at least one test step), so the window still sees it open."""
    half = A.breaker_window(c.p).seconds // 2 // c.step.seconds * c.step.seconds
    return Duration(max(c.step.seconds, half))


def breaker_cases(c: Ctx) -> list[AlertCase]:
    name, fires = "LLMCircuitBreakerOpen", (("LLMCircuitBreakerOpen", "warning", None),)
    lead, run = c.lead, c.run(name)
    total, cycle = lead + run, _breaker_cycle(c)
    closed, open_, half_open = (metrics.STATE_VALUES[state] for state in ("closed", "opened", "half-opened"))

    def breakers(reasoning: Sequence[tuple[Duration, float]]) -> World:
        return c.world(total).breaker(REASONING, [(lead, closed), *reasoning]).breaker(BALANCED, [(total, closed)])

    outage = _alternating(run, (cycle, open_), (c.step, half_open))
    intermittent = _alternating(run, (cycle, open_), (_closed_spell(c), closed))
    once = [(cycle, open_), (Duration(run.seconds - cycle.seconds), closed)]
    return [
        AlertCase(f"{REASONING}'s provider is down: its breaker stays open, half-open for a scrape whenever a probe is "
                  f"in flight (every {cycle}) -> fires for {REASONING} only", name, fires, breakers(outage)),
        AlertCase(f"{REASONING} fails intermittently: its breaker closes on a lucky probe for {_closed_spell(c)} "
                  f"and reopens, every {cycle} -> fires (an instant state > 0 would restart `for` at every closed "
                  "scrape)", name, fires, breakers(intermittent)),
        AlertCase(f"{REASONING}'s breaker opens once for {cycle} (one reset period and its probe), then closes -> "
                  "quiet (the breaker did its job)", name, (), breakers(once)),
    ]


def degraded_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMDegradedService"
    warning, critical = (name, "warning", None), (name, "critical", None)
    lead, run = c.lead, c.run(name)
    total, cycle = lead + run, _breaker_cycle(c)
    full, degraded, last_resort = routing.TIER_FULL, A.DEGRADED_TIER_WARNING, A.DEGRADED_TIER_CRITICAL

    def tiers(after: Sequence[tuple[Duration, float]]) -> World:
        return c.world(total).tier([(lead, full), *after])

    everything_down = _alternating(run, (cycle, last_resort), (c.step, degraded))
    once = [(cycle, degraded), (Duration(run.seconds - cycle.seconds), full)]
    return [
        AlertCase(f"{REASONING}'s breaker is open: tier {degraded}, its callers get {BALANCED} -> warning only",
                  name, (warning,), tiers([(run, degraded)])),
        AlertCase(f"every breaker is open: tier {last_resort} ({FAST} answers everything), tier {degraded} for a "
                  f"scrape whenever a breaker probes (every {cycle}) -> warning and critical (Alertmanager inhibits "
                  "the warning)", name, (warning, critical), tiers(everything_down)),
        AlertCase(f"one breaker opens once: tier {degraded} for {cycle}, then {full} -> quiet", name, (),
                  tiers(once)),
    ]


def _fallback_ratio(m: Model, t: int) -> Vector:
    high = {k: v for k, v in m.fallback_ratio(t).items() if above(v, A.FALLBACK_RATIO_MAX)}
    return _at_least(m.routed(t), m.p.min_request_rate, high)


def fallback_ratio_cases(c: Ctx) -> list[AlertCase]:
    name, fires = "LLMFallbackRatioHigh", (("LLMFallbackRatioHigh", "warning", None),)
    lead, run = c.lead, c.run(name)
    total, busy, few = lead + run, c.busy, c.p.min_request_rate / 2
    flaky, near, transient = 0.12, A.FALLBACK_RATIO_MAX * 0.75, 0.02
    # A normal day: a transient error now and then hands 2% of the answers to the first fallback.
    usual = {REASONING: {REASONING: 1 - transient, BALANCED: transient},
             BALANCED: {BALANCED: 1 - transient, FAST: transient}}

    def answers(reasoning: dict[str, float], balanced: dict[str, float], reasoning_rate: float = busy) -> World:
        return (c.world(total).routed(REASONING, reasoning_rate, [(lead, usual[REASONING]), (run, reasoning)])
                .routed(BALANCED, busy, [(lead, usual[BALANCED]), (run, balanced)])
                .routed(FAST, busy, [(total, {FAST: 1.0})]))

    return [
        AlertCase(f"{REASONING}'s provider is down: all its answers come from {BALANCED} -> fires for {REASONING} "
                  f"only ({transient:.0%} before)", name, fires, answers({BALANCED: 1.0}, usual[BALANCED])),
        AlertCase(f"{REASONING} is down and {BALANCED} fails {flaky:.0%} of its calls: {1 - flaky:.0%} of "
                  f"{REASONING}'s answers come from {BALANCED}, {flaky:.0%} from {FAST} -> fires for {REASONING} "
                  f"only; {BALANCED}'s own callers got {FAST} {flaky:.0%} of the time (llm_fallbacks_total counts "
                  f"{2 * flaky:.0%} of {BALANCED}'s answers under from_model {BALANCED}: {REASONING}'s second "
                  "hand-overs too)", name, fires,
                  answers({BALANCED: 1 - flaky, FAST: flaky}, {BALANCED: 1 - flaky, FAST: flaky})),
        AlertCase(f"{BALANCED} fails {near:.0%} of its calls, {FAST} answers them -> quiet", name, (),
                  answers(usual[REASONING], {BALANCED: 1 - near, FAST: near})),
        AlertCase(f"{REASONING} is down but gets only {few:g} requests/s (under the minimum rate), all answered by "
                  f"{BALANCED} -> quiet", name, (), answers({BALANCED: 1.0}, usual[BALANCED], reasoning_rate=few)),
    ]


# ---------------------------------------------------------------- LLMRateLimitHeadroomLow

def _ratelimit_headroom(m: Model, t: int) -> Vector:
    """`min by (model, kind) (remaining / limit) < threshold and on (model) model:llm_requests:rate > 0` (one gateway
    instance per model and kind in the cases, so the minimum is that series)."""
    limits = {labels_of(s.labels): m.tl.value(s, t) for s in m.tl.select("llm_ratelimit_limit", job="gateway")}
    headroom = {labels_of({"model": s.labels["model"], "kind": s.labels["kind"]}):
                ratio(m.tl.value(s, t), limits[labels_of(s.labels)])
                for s in m.tl.select("llm_ratelimit_remaining", job="gateway") if labels_of(s.labels) in limits}
    # A rate is exactly 0 when the counter did not move: no rounding can decide `> 0`.
    called = {dict(k)["model"] for k, rate in m.requests(t).items() if rate > 0}
    return {k: v for k, v in headroom.items() if below(v, A.RATELIMIT_HEADROOM_MIN) and dict(k)["model"] in called}


def ratelimit_headroom_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMRateLimitHeadroomLow"
    lead, run = c.lead, c.run(name)
    total, busy = lead + run, c.busy
    requests_limit, tokens_limit, usual, tokens_left = 500, 200_000, 0.6, 0.55
    low, near, spent = A.RATELIMIT_HEADROOM_MIN * 0.8, A.RATELIMIT_HEADROOM_MIN * 1.5, A.RATELIMIT_HEADROOM_MIN / 2

    def calls(phases: Sequence[tuple[Duration, float, float]] = ((total, busy, 0.0),)) -> World:
        """sim-fast's calls, none of them answered 429."""
        return (c.world(total).requests(FAST, phases)
                .provider_errors(FAST, "rate_limited", [(total, 0)]))

    def headroom(requests_left: float, world: World | None = None,
                 tokens: Sequence[tuple[Duration, float]] = ((total, tokens_left),)) -> World:
        return ((world or calls()).ratelimit(FAST, "requests", requests_limit, [(lead, usual), (run, requests_left)])
                .ratelimit(FAST, "tokens", tokens_limit, tokens))

    burst = calls([(lead, busy, 0.0), (run, 0, 0.0)])
    return [
        AlertCase(f"{FAST}'s requests quota runs low: {low:.0%} of x-ratelimit-limit-requests left, not one 429 yet "
                  f"-> fires for {FAST} requests only (tokens: {tokens_left:.0%} left)", name,
                  ((name, "warning", None),), headroom(low)),
        AlertCase(f"{near:.0%} of {FAST}'s requests limit left -> quiet", name, (), headroom(near)),
        AlertCase(f"the provider sends no x-ratelimit-* headers: {FAST} is called, no headroom gauges -> quiet",
                  name, (), calls()),
        AlertCase(f"a batch job ends with {spent:.0%} of {FAST}'s tokens limit left and no call follows: the gauge "
                  "keeps the last answer's value -> quiet (stale, not low)", name, (),
                  headroom(usual, burst, tokens=[(lead, usual), (run, spent)])),
    ]


# ---------------------------------------------------------------- LLMDailyBudgetBurn

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


def budget_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMDailyBudgetBurn"
    warning, critical = (name, "warning", None), (name, "critical", None)
    daily, duration = catalog.load().daily_budget_usd, c.p.budget_window + c.run(name)

    def pace(fraction: float) -> World:
        """Spend at `fraction` of the budget's pace (fraction x daily budget per day), from the start."""
        usd_per_hour = fraction * daily / 24
        return (c.world(duration).cost(REASONING, "research", [(duration, usd_per_hour * 2 / 3)])
                .cost(BALANCED, "engineering", [(duration, usd_per_hour / 3)]).budget(daily))

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


# ---------------------------------------------------------------- LLMDepartmentBudget

def _department_budget(threshold: float) -> Evaluate:
    """`sum by (department) (spent) / max by (department) (monthly) >= threshold`."""
    def evaluate(m: Model, t: int) -> Vector:
        spent = sum_by(("department",), ((s, m.tl.value(s, t)) for s in m.tl.select("llm_budget_spent_usd",
                                                                                      job="gateway")))
        monthly: Vector = {}
        for s in m.tl.select("llm_budget_monthly_usd", job="gateway"):
            key = labels_of({"department": s.labels["department"]})
            monthly[key] = max(monthly.get(key, m.tl.value(s, t)), m.tl.value(s, t))
        used = {k: ratio(v, monthly[k]) for k, v in spent.items() if k in monthly}
        return {k: v for k, v in used.items() if above(v, threshold, inclusive=True)}
    return evaluate


def department_budget_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMDepartmentBudget"
    info, warning, critical = ((name, severity, None) for severity in A.DEPARTMENT_BUDGET_STEPS)
    budgets = catalog.load().monthly_budgets.monthly_usd
    lead, run = c.lead, c.run(name)

    def spending(department: str, before: float, after: float, projected: float | None = None) -> World:
        """`department` has spent `before` of its monthly budget, then `after` (shares); support steadily 30 %."""
        usd = budgets[department]
        return (c.world(lead + run).department_budget(department, usd, [(lead, before * usd), (run, after * usd)],
                                                      projected)
                .department_budget("support", budgets["support"], [(lead + run, 0.3 * budgets["support"])]))

    return [
        AlertCase(f"engineering goes from 60% to 85% of its {budgets['engineering']:g} USD monthly budget -> info only "
                  "(dashboards, no notification)", name, (info,), spending("engineering", 0.6, 0.85)),
        AlertCase(f"marketing goes from 85% to 93% of its {budgets['marketing']:g} USD budget -> info and warning "
                  "(chat), not critical", name, (info, warning), spending("marketing", 0.85, 0.93)),
        AlertCase(f"research has spent 104% of its {budgets['research']:g} USD budget -> info, warning and critical "
                  "(the gateway refuses or downgrades its calls; Alertmanager mutes the warning under the critical)",
                  name, (info, warning, critical), spending("research", 0.95, 1.04)),
        AlertCase(f"departments the catalog does not list share the {budgets['other']:g} USD `other` budget: 101% "
                  "spent -> info, warning and critical for department other", name, (info, warning, critical),
                  spending("other", 0.5, 1.01)),
        AlertCase("sales has spent 79% of its budget, on pace for 150% by the month's end -> quiet (the alert counts "
                  "money spent; the projection is for dashboards)", name, (),
                  spending("sales", 0.7, 0.79, projected=1.5 * budgets["sales"])),
    ]


# ---------------------------------------------------------------- TargetDown

def _target_of(s: InputSeries) -> Labels:
    """The labels of `up` and `scrape_samples_scraped` without their name: job and instance."""
    return labels_of({"job": s.labels["job"], "instance": s.labels["instance"]})


def _target_down(m: Model, t: int) -> Vector:
    lab = set(lab_jobs())  # `up{job!="lab"} == 0`: a lab exporter runs only while its notebook does
    return {_target_of(s): 0.0 for s in m.tl.select("up") if s.labels["job"] not in lab and m.tl.value(s, t) == 0}


def target_down_cases(c: Ctx) -> list[AlertCase]:
    name, for_ = "TargetDown", c.p.for_("TargetDown")
    lead, run = c.lead, c.run(name)
    down = [(lead, 1), (run, 0)]
    blip = [(lead, 1), (for_, 0), (run, 1)]
    cases = [
        AlertCase("llmsim stops answering scrapes (no lab notebook running either) -> fires for llmsim only", name,
                  ((name, "critical", None),), c.world(lead + run).up_phases({"llmsim": down})),
        AlertCase(f"llmsim fails its scrapes for {for_} (a restart), one evaluation short of firing, and comes back "
                  "-> quiet", name, (), c.world(lead + for_ + run).up_phases({"llmsim": blip})),
    ]
    for job in lab_jobs():
        stopped = [(lead, 1), (run, 0)]
        cases.append(AlertCase(f"the {job} exporter's notebook is closed: {job} is down for good -> quiet (lab "
                               "targets only run while a lab notebook does)", name, (),
                               c.world(lead + run).up_phases({job: stopped})))
    return cases


# ---------------------------------------------------------------- LLMMetricsAbsent

def _metrics_absent(m: Model, t: int) -> Vector:
    present = [m.tl.value(s, t) for s in m.tl.select("llm_requests_total", job="gateway")]  # (checks coverage)
    return {} if present else {labels_of({"job": "gateway"}): 1.0}


def metrics_absent_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMMetricsAbsent"
    duration = c.lead + c.run(name)
    renamed, idle = c.world(duration), c.world(duration)
    for m in catalog_models():
        renamed.counter("llm_gateway_requests_total", {**GATEWAY, "model": m, "status": "success"},
                        [(duration, c.busy)])
        idle.idle(m)
    return [
        AlertCase("the gateway exports llm_gateway_requests_total instead (metric renamed) -> fires", name,
                  ((name, "warning", None),), renamed),
        AlertCase("an idle gateway: every llm_requests_total child exported at 0 -> quiet", name, (), idle),
    ]


# ---------------------------------------------------------------- CardinalityGrowth

def _growth(m: Model, t: int) -> Vector:
    window = m.p.baseline_window
    deltas = {_target_of(s): m.tl.delta(s, t, window) for s in m.tl.select("scrape_samples_scraped")}
    grown = {k: v for k, v in deltas.items() if v is not None and above(v, A.CARDINALITY_GROWTH_SAMPLES)}
    failed = {_target_of(s) for s in m.tl.select("up") if m.tl.min_over_time(s, t, window) == 0}
    return {k: v for k, v in grown.items() if k not in failed}  # `unless on (job, instance) ... == 0`


def _sample_limit(m: Model, t: int) -> Vector:
    values = {_target_of(s): m.tl.value(s, t) for s in m.tl.select("scrape_samples_scraped", job="gateway")}
    return {k: v for k, v in values.items() if above(v, m.p.gateway_sample_limit)}


def cardinality_cases(c: Ctx) -> list[AlertCase]:
    name, threshold, limit = "CardinalityGrowth", A.CARDINALITY_GROWTH_SAMPLES, c.p.gateway_sample_limit
    growth, sample_limit = (name, "warning", "growth"), (name, "warning", "sample_limit")
    window, run = c.p.baseline_window, c.run(name)
    total = window * 3 + run  # a full window before anything changes; an outage, a window to recover, `for`
    usual, prometheus, alertmanager = 600, 900, 800  # samples per scrape
    Phases = Sequence[tuple[Duration, float]]

    def scrapes(gateway: Phases | Callable[[World], World], gateway_up: Phases = (),
                alertmanager_phases: Phases = ()) -> World:
        """scrape_samples_scraped and up of gateway, prometheus and alertmanager (a failed scrape records 0);
        `gateway` is its sample count's phases, or what adds that series to the world."""
        world = c.world(total)
        samples = {"gateway": gateway, "prometheus": [(total, prometheus)],
                   "alertmanager": alertmanager_phases or [(total, alertmanager)]}
        ups = {"gateway": gateway_up, "alertmanager": [(span, int(value > 0)) for span, value in alertmanager_phases]}
        for job, phases in samples.items():
            if callable(phases):
                phases(world)
            else:
                world.gauge("scrape_samples_scraped", target(job), phases)
            world.gauge("up", target(job), ups.get(job) or [(total, 1)])
        return world

    per_step = 2.2 * threshold / window.steps(c.step)  # 2.2x the threshold per baseline window
    leak = scrapes(lambda world: world.ramp("scrape_samples_scraped", GATEWAY, usual, window, per_step))
    over = [(window, 0.6 * limit), (window * 2 + run, 1.2 * limit)]
    outage = [(window, alertmanager), (window + c.p.rate_window, 0),
              (Duration(total.seconds - (window * 2 + c.p.rate_window).seconds), alertmanager)]
    return [
        AlertCase(f"a user id leaks into a gateway label: {per_step:.4g} more samples every {c.step} -> fires "
                  "(growth)", name, (growth,), leak),
        AlertCase(f"a deploy adds {0.6 * threshold:g} samples at once, then stays flat -> quiet", name, (),
                  scrapes([(window, usual), (window * 2 + run, usual + 0.6 * threshold)])),
        AlertCase(f"alertmanager is down for longer than {window}, then back: its sample count climbs from 0 to "
                  f"{alertmanager} -> quiet (failed scrapes are TargetDown's business)", name, (),
                  scrapes([(total, usual)], alertmanager_phases=outage),
                  also_at=(window * 2 + c.p.rate_window + c.p.for_(name) + c.step,)),
        AlertCase(f"the gateway jumps to {1.2 * limit:g} samples, over its sample_limit {limit}, so its scrapes fail "
                  "-> fires (sample_limit; growth leaves failing targets alone)", name, (sample_limit,),
                  scrapes(over, [(window, 1), (window * 2 + run, 0)])),
        AlertCase(f"the gateway steadily exposes {0.9 * limit:g} samples, under its sample_limit {limit} -> quiet",
                  name, (), scrapes([(total, 0.9 * limit)])),
    ]


# ---------------------------------------------------------------- AlertmanagerNotificationsFailing

def _notifications_failing(m: Model, t: int) -> Vector:
    by = ("job", "instance", "integration")
    failed = m.sum_rate(by, t, "alertmanager_notifications_failed_total", job="alertmanager")
    total = m.sum_rate(by, t, "alertmanager_notifications_total", job="alertmanager")
    shares = {k: ratio(v, total[k]) for k, v in failed.items() if k in total}
    return {k: v for k, v in shares.items() if above(v, A.NOTIFICATION_FAILURE_RATIO)}


def notification_cases(c: Ctx) -> list[AlertCase]:
    name = "AlertmanagerNotificationsFailing"
    lead, run, per_second = c.lead, c.run(name), 0.2
    am = target("alertmanager")

    def notifications(failing: Sequence[tuple[Duration, float]]) -> World:
        total = lead + run
        webhook, email = {**am, "integration": "webhook"}, {**am, "integration": "email"}
        return (c.world(total).counter("alertmanager_notifications_total", webhook, [(total, per_second)])
                .counter("alertmanager_notifications_failed_total", webhook,
                         [(d, share * per_second) for d, share in failing])
                .gauge("alertmanager_notifications_total", email, [(total, 0)])
                .gauge("alertmanager_notifications_failed_total", email, [(total, 0)]))

    rare = A.NOTIFICATION_FAILURE_RATIO / 2
    return [
        AlertCase("the receiver is down: every webhook notification fails -> fires", name, ((name, "warning", None),),
                  notifications([(lead, 0), (run, 1)])),
        AlertCase(f"{rare:.1%} of webhook notifications fail (1 in {1 / rare:g}), email sends none -> quiet", name,
                  (), notifications([(lead + run, rare)])),
    ]


# ---------------------------------------------------------------- Watchdog

def watchdog_cases(c: Ctx) -> list[AlertCase]:
    return [AlertCase("always firing, whatever the input", "Watchdog", (("Watchdog", "none", None),),
                      c.world(c.lead).up_phases())]


# ---------------------------------------------------------------- LLMAnswerQualityDrop

RELEVANCE = "relevance"


def _sum_rate_over(m: Model, window: Duration, t: int, name: str, **matchers: str) -> Vector:
    """`sum by (model) (rate(name{matchers}[window]))`, for any window (Model.sum_rate uses the rate window)."""
    return sum_by(("model",), ((s, m.tl.rate(s, t, window)) for s in m.tl.select(name, **matchers)))


def _mean_relevance(m: Model, t: int, window: Duration) -> Vector:
    """model:llm_relevance_score:mean (rate window) or :mean_baseline (baseline window)."""
    scores = _sum_rate_over(m, window, t, "llm_quality_score_sum", job="gateway", evaluator=RELEVANCE)
    counts = _sum_rate_over(m, window, t, "llm_quality_score_count", job="gateway", evaluator=RELEVANCE)
    return {k: ratio(v, counts[k]) for k, v in scores.items() if k in counts}


def _answer_quality_drop(m: Model, t: int) -> Vector:
    """`mean < mean_baseline - QUALITY_DROP and model:llm_relevance_scores:rate >= min_request_rate`."""
    baseline = _mean_relevance(m, t, m.p.baseline_window)
    dropped = {k: v for k, v in _mean_relevance(m, t, m.p.rate_window).items()
               if k in baseline and below(v, baseline[k] - A.QUALITY_DROP)}
    scored = _sum_rate_over(m, m.p.rate_window, t, "llm_quality_score_count", job="gateway", evaluator=RELEVANCE)
    return _at_least(scored, m.p.min_request_rate, dropped)


def answer_quality_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMAnswerQualityDrop"
    lead, run = c.p.baseline_window + c.p.rate_window, c.run(name)  # a full baseline before the change
    total, trickle = lead + run, c.p.min_request_rate / 2
    healthy, drifted, noise, always_lower = 0.95, 0.88, 0.92, 0.7
    for_ = c.p.for_(name)
    dip = Duration(max(c.step.seconds, for_.seconds // 2 // c.step.seconds * c.step.seconds))

    def scores(model: str, rate: float, before: float, after: float) -> World:
        """`model` answers `rate` scored calls/s at mean relevance `before`, then `after`; BALANCED steadily scores
        lower (a model whose answers are shorter), at the busy rate."""
        return (c.world(total).quality(model, RELEVANCE, [(lead, rate, before), (run, rate, after)])
                .quality(BALANCED, RELEVANCE, [(total, c.busy, always_lower)]))

    brief = c.world(total).quality(FAST, RELEVANCE, [(lead, c.busy, healthy), (dip, c.busy, drifted - 0.03),
                                                      (Duration(run.seconds - dip.seconds), c.busy, healthy)])
    return [
        AlertCase(f"{FAST}'s mean relevance drops from {healthy:.0%} to {drifted:.0%} (the provider's model drifted; "
                  f"every call still a fast 200) -> fires for {FAST} only", name, ((name, "warning", None),),
                  scores(FAST, c.busy, healthy, drifted)),
        AlertCase(f"the same drop on {trickle:g} scored answers/s, under the minimum rate -> quiet", name, (),
                  scores(FAST, trickle, healthy, drifted)),
        AlertCase(f"{BALANCED} always scores {always_lower:.0%}, well under the others, but that is its own "
                  f"baseline -> quiet", name, (), scores(FAST, c.busy, healthy, healthy)),
        AlertCase(f"{FAST} wobbles from {healthy:.0%} to {noise:.0%}, under {A.QUALITY_DROP * 100:g} points -> "
                  "quiet", name, (), scores(FAST, c.busy, healthy, noise)),
        AlertCase(f"{FAST} dips to {drifted - 0.03:.0%} for {dip}, shorter than `for` ({for_}) -> quiet", name, (),
                  brief),
    ]


# ---------------------------------------------------------------- LLMNegativeFeedbackHigh

def _negative_feedback(m: Model, t: int) -> Vector:
    """`model:llm_feedback_down_ratio:rate > NEGATIVE_FEEDBACK_RATIO and model:llm_feedback:rate >= min`."""
    ratings = m.sum_rate(("model",), t, "llm_feedback_total", job="gateway")
    down = m.sum_rate(("model",), t, "llm_feedback_total", job="gateway", rating="down")
    shares = {k: ratio(v, ratings[k]) for k, v in down.items() if k in ratings}
    high = {k: v for k, v in shares.items() if above(v, A.NEGATIVE_FEEDBACK_RATIO)}
    return _at_least(ratings, m.p.min_request_rate, high)


def negative_feedback_cases(c: Ctx) -> list[AlertCase]:
    name = "LLMNegativeFeedbackHigh"
    lead, run = c.lead, c.run(name)
    total, few, usual = lead + run, c.p.min_request_rate / 2, 0.1
    angry, grumbling = A.NEGATIVE_FEEDBACK_RATIO * 1.5, A.NEGATIVE_FEEDBACK_RATIO * 2 / 3

    def ratings(model: str, rate: float, down_after: float) -> World:
        """`model` gets `rate` ratings/s, {usual:.0%} of them down, then `down_after`; BALANCED stays content."""
        return (c.world(total).feedback(model, [(lead, rate, usual), (run, rate, down_after)])
                .feedback(BALANCED, [(total, c.busy, usual)]))

    return [
        AlertCase(f"{angry:.0%} of {FAST}'s ratings are thumbs down -> fires for {FAST} only", name,
                  ((name, "warning", None),), ratings(FAST, c.busy, angry)),
        AlertCase(f"{angry:.0%} of very few ratings ({few:g}/s, under the minimum rate) are down -> quiet", name, (),
                  ratings(FAST, few, angry)),
        AlertCase(f"{grumbling:.0%} of {FAST}'s ratings are down, under {A.NEGATIVE_FEEDBACK_RATIO:.0%} -> quiet",
                  name, (), ratings(FAST, c.busy, grumbling)),
    ]


# ---------------------------------------------------------------- the registry: one entry per alertname in alerts.py

ALERT_TESTS: dict[str, AlertTests] = {
    "LLMHighErrorRatio": AlertTests({("warning", None): _error_ratio(A.ERROR_RATIO_WARNING),
                                     ("critical", None): _error_ratio(A.ERROR_RATIO_CRITICAL)}, error_ratio_cases),
    "LLMLatencyP95High": AlertTests({("warning", None): _latency}, latency_cases),
    "LLMTimeToFirstTokenP95High": AlertTests({("warning", None): _time_to_first_token}, time_to_first_token_cases),
    "LLMProviderRateLimited": AlertTests({("warning", None): _rate_limited}, rate_limited_cases),
    "LLMCostAnomaly": AlertTests({("warning", None): _cost_anomaly}, cost_cases),
    "LLMResponseCacheHitRatioLow": AlertTests({("warning", None): _cache_hit_ratio}, cache_hit_ratio_cases),
    "LLMCircuitBreakerOpen": AlertTests({("warning", None): _breaker_open}, breaker_cases),
    "LLMFallbackRatioHigh": AlertTests({("warning", None): _fallback_ratio}, fallback_ratio_cases),
    "LLMDegradedService": AlertTests({("warning", None): _degraded(A.DEGRADED_TIER_WARNING),
                                      ("critical", None): _degraded(A.DEGRADED_TIER_CRITICAL)}, degraded_cases),
    "LLMRateLimitHeadroomLow": AlertTests({("warning", None): _ratelimit_headroom}, ratelimit_headroom_cases),
    "LLMDailyBudgetBurn": AlertTests({("warning", None): _budget(A.BUDGET_WARNING),
                                      ("critical", None): _budget(A.BUDGET_CRITICAL)}, budget_cases),
    "LLMDepartmentBudget": AlertTests({(severity, None): _department_budget(threshold)
                                       for severity, threshold in A.DEPARTMENT_BUDGET_STEPS.items()},
                                      department_budget_cases),
    "TargetDown": AlertTests({("critical", None): _target_down}, target_down_cases),
    "LLMMetricsAbsent": AlertTests({("warning", None): _metrics_absent}, metrics_absent_cases),
    "CardinalityGrowth": AlertTests({("warning", "growth"): _growth, ("warning", "sample_limit"): _sample_limit},
                                    cardinality_cases),
    "AlertmanagerNotificationsFailing": AlertTests({("warning", None): _notifications_failing}, notification_cases),
    "Watchdog": AlertTests({("none", None): lambda m, t: {(): 1.0}}, watchdog_cases, always_firing=True),
}
ALERT_TESTS |= {
    "LLMAnswerQualityDrop": AlertTests({("warning", None): _answer_quality_drop}, answer_quality_cases),
    "LLMNegativeFeedbackHigh": AlertTests({("warning", None): _negative_feedback}, negative_feedback_cases),
}
ALWAYS_FIRING = frozenset(name for name, tests in ALERT_TESTS.items() if tests.always_firing)
