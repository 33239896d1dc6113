"""The alerting rules (names and severities from docs/contract.md), written once for every profile."""

from __future__ import annotations

from stack.gateway import metrics, routing
from stack.profiles import Duration, Profile
from stack.prometheus.rules import GATEWAY, AlertRule, RuleGroup
from stack.prometheus.scrape import lab_jobs

# Thresholds do not depend on the profile; only windows and `for` durations do.
ERROR_RATIO_WARNING = 0.05
ERROR_RATIO_CRITICAL = 0.20
LATENCY_P95_SECONDS = 4
TTFT_P95_SECONDS = 2
CACHE_HIT_RATIO_MIN = 0.70
RATE_LIMITED_RATIO = 0.10
COST_ANOMALY_FACTOR = 3
COST_FLOOR_USD_PER_HOUR = 1
BUDGET_WARNING = 0.8
BUDGET_CRITICAL = 1.0
# Share of a department's monthly budget spent this month (stack/gateway/budget.py). At 100 % the gateway itself acts
# (catalog budgets.policy: refuse with 402, or downgrade), so critical pages whoever owns the budget.
DEPARTMENT_BUDGET_INFO = 0.8
DEPARTMENT_BUDGET_WARNING = 0.9
DEPARTMENT_BUDGET_CRITICAL = 1.0
CARDINALITY_GROWTH_SAMPLES = 500
NOTIFICATION_FAILURE_RATIO = 0.01
FALLBACK_RATIO_MAX = 0.20
RATELIMIT_HEADROOM_MIN = 0.10
# A breaker that probes (half-open) or closes on one lucky call between openings still counts as open: the state
# gauges are read as their maximum over this many scrapes.
BREAKER_WINDOW_SCRAPES = 4
BREAKER_CLOSED = metrics.STATE_VALUES["closed"]
DEGRADED_TIER_WARNING = routing.TIER_DEGRADED       # fallbacks serve some models
DEGRADED_TIER_CRITICAL = routing.TIER_LAST_RESORT   # only the last-resort models (or the cache) answer
SECONDS_PER_DAY = 86400

LLM_GROUP = "llm-alerts"
STACK_GROUP = "stack-alerts"


def _percent(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def _error_ratio(p: Profile, severity: str, threshold: float) -> AlertRule:
    return AlertRule(
        alert="LLMHighErrorRatio",
        expr=f"model:llm_request_error_ratio:rate > {threshold:g}\nand\nmodel:llm_requests:rate >= {p.min_request_rate:g}",
        severity=severity,
        summary="{{ $labels.model }}: {{ $value | humanizePercentage }} of requests fail",
        description=(
            f"Over the last {p.rate_window}, {{{{ $value | humanizePercentage }}}} of requests for "
            f"{{{{ $labels.model }}}} ended with status=error (warning above {_percent(ERROR_RATIO_WARNING)}, "
            f"critical above {_percent(ERROR_RATIO_CRITICAL)}; models with fewer than {p.min_request_rate:g} "
            f"requests/s are ignored)."
        ),
        for_=p.for_("LLMHighErrorRatio"),
    )


def _latency(p: Profile) -> AlertRule:
    return AlertRule(
        alert="LLMLatencyP95High",
        expr=f"model:llm_request_duration_seconds:p95 > {LATENCY_P95_SECONDS:g}",
        severity="warning",
        summary="{{ $labels.model }}: p95 latency {{ $value | humanizeDuration }}",
        description=(
            f"95% of {{{{ $labels.model }}}} requests over the last {p.rate_window} took up to "
            f"{{{{ $value | humanizeDuration }}}}, above the {LATENCY_P95_SECONDS:g}s objective: callers are waiting."
        ),
        for_=p.for_("LLMLatencyP95High"),
    )


def _time_to_first_token(p: Profile) -> AlertRule:
    return AlertRule(
        alert="LLMTimeToFirstTokenP95High",
        expr=(
            f"model:llm_time_to_first_token_seconds:p95 > {TTFT_P95_SECONDS:g}\nand\n"
            f"model:llm_streamed_requests:rate >= {p.min_request_rate:g}"
        ),
        severity="warning",
        summary="{{ $labels.model }}: p95 time to first token {{ $value | humanizeDuration }}",
        description=(
            f"95% of streamed {{{{ $labels.model }}}} calls over the last {p.rate_window} showed their first token "
            f"within {{{{ $value | humanizeDuration }}}}, above the {TTFT_P95_SECONDS:g}s objective: a chat user "
            f"stares at an empty box, while total latency may look fine (models with fewer than "
            f"{p.min_request_rate:g} streamed calls/s are ignored)."
        ),
        for_=p.for_("LLMTimeToFirstTokenP95High"),
    )


def _rate_limited(p: Profile) -> AlertRule:
    limited = f'llm_provider_errors_total{{{GATEWAY},error_type="rate_limited"}}'
    return AlertRule(
        alert="LLMProviderRateLimited",
        expr=(
            f"sum by (model) (rate({limited}[{p.rate_window}]))\n/ model:llm_requests:rate\n"
            f"> {RATE_LIMITED_RATIO:g}\nand\nmodel:llm_requests:rate >= {p.min_request_rate:g}"
        ),
        severity="warning",
        summary="{{ $labels.model }}: provider rate-limits {{ $value | humanizePercentage }} of requests",
        description=(
            f"The provider answered HTTP 429 to {{{{ $value | humanizePercentage }}}} of {{{{ $labels.model }}}} "
            f"requests over the last {p.rate_window} (threshold {_percent(RATE_LIMITED_RATIO)}): throughput is "
            f"capped and calls are retried or fail."
        ),
        for_=p.for_("LLMProviderRateLimited"),
    )


def _cost_anomaly(p: Profile) -> AlertRule:
    return AlertRule(
        alert="LLMCostAnomaly",
        expr=(
            f"job:llm_cost_usd:rate * 3600 > {COST_FLOOR_USD_PER_HOUR:g}\nand\n"
            f"job:llm_cost_usd:rate > {COST_ANOMALY_FACTOR:g} * job:llm_cost_usd:rate_baseline"
        ),
        severity="warning",
        summary="LLM spend {{ $value | humanize }} USD/hour, over "
        f"{COST_ANOMALY_FACTOR:g}x its {p.baseline_window} average",
        description=(
            f"The gateway spent {{{{ $value | humanize }}}} USD/hour over the last {p.rate_window}, more than "
            f"{COST_ANOMALY_FACTOR:g} times its average over the last {p.baseline_window} (and above the "
            f"{COST_FLOOR_USD_PER_HOUR:g} USD/hour floor). Look for a model, department or output size that changed."
        ),
        for_=p.for_("LLMCostAnomaly"),
    )


def _cache_hit_ratio(p: Profile) -> AlertRule:
    return AlertRule(
        alert="LLMResponseCacheHitRatioLow",
        expr=(
            f"job:llm_response_cache_hit_ratio:rate < {CACHE_HIT_RATIO_MIN:g}\nand\n"
            f"job:llm_response_cache_lookups:rate >= {p.min_request_rate:g}"
        ),
        severity="warning",
        summary="The response cache answers {{ $value | humanizePercentage }} of cacheable requests",
        description=(
            f"Over the last {p.rate_window}, the gateway's response cache answered "
            f"{{{{ $value | humanizePercentage }}}} of its lookups (all models together; objective at least "
            f"{_percent(CACHE_HIT_RATIO_MIN)}; ignored under {p.min_request_rate:g} lookups/s): every miss is a paid "
            f"provider call, so the cost per request jumps. Look for a prompt-template change that made every request "
            f"unique (a timestamp, a request id)."
        ),
        for_=p.for_("LLMResponseCacheHitRatioLow"),
    )


def breaker_window(p: Profile) -> Duration:
    """The window the breaker and tier gauges are read over: BREAKER_WINDOW_SCRAPES scrapes."""
    return Duration(BREAKER_WINDOW_SCRAPES * p.scrape_interval.seconds)


def _circuit_breaker_open(p: Profile) -> AlertRule:
    window, for_ = breaker_window(p), p.for_("LLMCircuitBreakerOpen")
    return AlertRule(
        alert="LLMCircuitBreakerOpen",
        # Half-open (2) only ever follows open (1): a maximum above closed (0) means open within the window, or
        # probing after having been open. An instant `== 1` would restart `for` at every probe.
        expr=f"max_over_time(llm_circuit_breaker_state{{{GATEWAY}}}[{window}]) > {BREAKER_CLOSED}",
        severity="warning",
        summary="{{ $labels.model }}: circuit breaker open, its calls go to its fallbacks",
        description=(
            f"The gateway's circuit breaker of {{{{ $labels.model }}}} was open (or half-open, probing) at least once "
            f"in every {window} window over the last {for_}: calls to it keep failing, so its callers are served by "
            f"the next models of its fallback chain (cheaper, less capable). The breaker only moves when a call "
            f"arrives."
        ),
        for_=for_,
    )


def _fallback_ratio(p: Profile) -> AlertRule:
    return AlertRule(
        alert="LLMFallbackRatioHigh",
        expr=(
            f"requested_model:llm_fallback_ratio:rate > {FALLBACK_RATIO_MAX:g}\nand\n"
            f"requested_model:llm_routed_requests:rate >= {p.min_request_rate:g}"
        ),
        severity="warning",
        summary="{{ $labels.requested_model }}: {{ $value | humanizePercentage }} of answers come from another model",
        description=(
            f"Over the last {p.rate_window}, {{{{ $value | humanizePercentage }}}} of the answered requests for "
            f"{{{{ $labels.requested_model }}}} were served by a model of its fallback chain instead (threshold "
            f"{_percent(FALLBACK_RATIO_MAX)}; ignored under {p.min_request_rate:g} answered requests/s). Callers get "
            f"answers, so the error ratio stays quiet, but not from the model they asked for."
        ),
        for_=p.for_("LLMFallbackRatioHigh"),
    )


def _degraded_service(p: Profile, severity: str, tier: int) -> AlertRule:
    window, for_ = breaker_window(p), p.for_("LLMDegradedService")
    return AlertRule(
        alert="LLMDegradedService",
        # The tier drops for the moment a breaker probes (half-open): its maximum over a few scrapes does not.
        expr=f"max_over_time(llm_degradation_tier{{{GATEWAY}}}[{window}]) >= {tier}",
        severity=severity,
        summary=f"The gateway runs at degradation tier {{{{ $value | humanize }}}} (tier {tier} or worse)",
        description=(
            f"The gateway's degradation tier (llm_degradation_tier) reached {{{{ $value | humanize }}}} at least once "
            f"in every {window} window over the last {for_} (warning from tier {DEGRADED_TIER_WARNING}: some "
            f"circuit breaker is open and fallbacks serve its "
            f"callers; critical from tier {DEGRADED_TIER_CRITICAL}: every breaker is open, only the last-resort "
            f"models or the cache answer)."
        ),
        for_=for_,
    )


def _ratelimit_headroom(p: Profile) -> AlertRule:
    headroom = f"llm_ratelimit_remaining{{{GATEWAY}}} / llm_ratelimit_limit{{{GATEWAY}}}"
    return AlertRule(
        alert="LLMRateLimitHeadroomLow",
        # The gauges keep the last answer's headers: without calls in the window they are stale, not low.
        expr=(
            f"min by (model, kind) ({headroom}) < {RATELIMIT_HEADROOM_MIN:g}\n"
            f"and on (model)\nmodel:llm_requests:rate > 0"
        ),
        severity="warning",
        summary="{{ $labels.model }}: {{ $value | humanizePercentage }} of the provider's {{ $labels.kind }} "
        "rate limit left",
        description=(
            f"The provider's last answers for {{{{ $labels.model }}}} (x-ratelimit-remaining-{{{{ $labels.kind }}}} / "
            f"x-ratelimit-limit-{{{{ $labels.kind }}}}) leave {{{{ $value | humanizePercentage }}}} of its "
            f"{{{{ $labels.kind }}}} limit (threshold {_percent(RATELIMIT_HEADROOM_MIN)}), with calls in the last "
            f"{p.rate_window}: at this pace the provider starts answering 429 (LLMProviderRateLimited) soon."
        ),
        for_=p.for_("LLMRateLimitHeadroomLow"),
    )


def budget_share_expr(p: Profile) -> str:
    """The pro-rated daily budget for the budget window (the whole budget when the window is a day)."""
    budget = f"max(llm_daily_budget_usd{{{GATEWAY}}})"
    if p.budget_window.seconds == SECONDS_PER_DAY:
        return budget
    return f"({budget} * {p.budget_window.seconds} / {SECONDS_PER_DAY})"


def _budget(p: Profile, severity: str, threshold: float) -> AlertRule:
    window = p.budget_window
    share = "the daily budget" if window.seconds == SECONDS_PER_DAY else f"the {window} share of the daily budget"
    return AlertRule(
        alert="LLMDailyBudgetBurn",
        expr=(
            f"sum(increase(llm_cost_usd_total{{{GATEWAY}}}[{window}]))\n/ {budget_share_expr(p)}\n"
            f"> {threshold:g}"
        ),
        severity=severity,
        summary=f"LLM spend over the last {window} is {{{{ $value | humanizePercentage }}}} of {share}",
        description=(
            f"The gateway spent {{{{ $value | humanizePercentage }}}} of {share} (llm_daily_budget_usd x {window} / 1d) "
            f"over the last {window}. Warning at {_percent(BUDGET_WARNING)}, critical at {_percent(BUDGET_CRITICAL)}: "
            f"at this pace the daily budget runs out early."
        ),
        for_=p.for_("LLMDailyBudgetBurn"),
    )


DEPARTMENT_BUDGET_STEPS = {"info": DEPARTMENT_BUDGET_INFO, "warning": DEPARTMENT_BUDGET_WARNING,
                           "critical": DEPARTMENT_BUDGET_CRITICAL}
_DEPARTMENT_BUDGET_MEANING = {
    "info": "no notification, dashboards only; time to look at who spends it",
    "warning": "a chat notification; at this pace the budget runs out before the month ends, so tell the department",
    "critical": "a page; the gateway now applies budgets.policy to the department's calls (refuse: HTTP 402; downgrade: "
                "the cheapest model answers) until the month ends or the budget is raised",
}


def _department_budget(p: Profile, severity: str) -> AlertRule:
    threshold = DEPARTMENT_BUDGET_STEPS[severity]
    steps = ", ".join(f"{s} at {_percent(t)}" for s, t in DEPARTMENT_BUDGET_STEPS.items())
    return AlertRule(
        alert="LLMDepartmentBudget",
        # One gateway exports each department's month-to-date spend; replicas would each export their share.
        expr=(
            f"sum by (department) (llm_budget_spent_usd{{{GATEWAY}}})\n"
            f"/ max by (department) (llm_budget_monthly_usd{{{GATEWAY}}})\n>= {threshold:g}"
        ),
        severity=severity,
        summary="{{ $labels.department }} has spent {{ $value | humanizePercentage }} of its monthly budget",
        description=(
            f"Department {{{{ $labels.department }}}} has spent {{{{ $value | humanizePercentage }}}} of its monthly "
            f"budget this calendar month (UTC): llm_budget_spent_usd / llm_budget_monthly_usd, from the catalog's "
            f"budgets.monthly_usd ({steps}). At {_percent(threshold)}: {_DEPARTMENT_BUDGET_MEANING[severity]}."
        ),
        for_=p.for_("LLMDepartmentBudget"),
    )


def target_down_selector() -> str:
    """`up` of every job `make up` starts: lab targets (topology.yaml lab_targets) run only while a lab notebook does,
    so their being down is normal and must not page anyone."""
    lab = lab_jobs()
    if not lab:
        return "up"
    if len(lab) == 1:
        return f'up{{job!="{lab[0]}"}}'
    return f'up{{job!~"{"|".join(lab)}"}}'


def _target_down(p: Profile) -> AlertRule:
    for_ = p.for_("TargetDown")
    return AlertRule(
        alert="TargetDown",
        expr=f"{target_down_selector()} == 0",
        severity="critical",
        summary="{{ $labels.job }} at {{ $labels.instance }} is down",
        description=(
            f"Prometheus has failed to scrape {{{{ $labels.job }}}} ({{{{ $labels.instance }}}}) for {for_}: the "
            f"process stopped, is not listening, or its /metrics failed (a scrape over sample_limit also fails)."
        ),
        for_=for_,
    )


def _metrics_absent(p: Profile) -> AlertRule:
    return AlertRule(
        alert="LLMMetricsAbsent",
        expr=f"absent(llm_requests_total{{{GATEWAY}}})",
        severity="warning",
        summary="No llm_requests_total series from the gateway",
        description=(
            'Prometheus holds no llm_requests_total series with job="gateway": the gateway is down, its scrape '
            "fails, or the metric was renamed. Every LLM alert is blind until it is back."
        ),
        for_=p.for_("LLMMetricsAbsent"),
    )


def _cardinality_growth(p: Profile) -> AlertRule:
    window = p.baseline_window
    return AlertRule(
        alert="CardinalityGrowth",
        # A failed scrape records 0 samples, so a target coming back after an outage would look like growth:
        # targets with a failed scrape in the window are left to TargetDown (and to the sample_limit rule).
        expr=(
            f"delta(scrape_samples_scraped[{window}]) > {CARDINALITY_GROWTH_SAMPLES}\n"
            f"unless on (job, instance)\nmin_over_time(up[{window}]) == 0"
        ),
        severity="warning",
        summary=f"{{{{ $labels.job }}}}: {{{{ $value | humanize }}}} more samples per scrape than {window} ago",
        description=(
            f"The samples scraped from {{{{ $labels.job }}}} ({{{{ $labels.instance }}}}) grew by "
            f"{{{{ $value | humanize }}}} over the last {window} (threshold {CARDINALITY_GROWTH_SAMPLES}). "
            f"A label with unbounded values (user id, request id, prompt text) is the usual cause."
        ),
        for_=p.for_("CardinalityGrowth"),
        extra_labels={"reason": "growth"},
    )


def _sample_limit(p: Profile) -> AlertRule:
    limit = p.gateway_sample_limit
    return AlertRule(
        alert="CardinalityGrowth",
        expr=f"scrape_samples_scraped{{{GATEWAY}}} > {limit}",
        severity="warning",
        summary=f"{{{{ $labels.job }}}} exposes {{{{ $value | humanize }}}} samples, over its sample_limit {limit}",
        description=(
            f"{{{{ $labels.job }}}} ({{{{ $labels.instance }}}}) exposes {{{{ $value | humanize }}}} samples, over "
            f"its sample_limit of {limit}: every scrape of it fails, so its metrics are stale and TargetDown fires."
        ),
        for_=p.for_("CardinalityGrowth"),
        extra_labels={"reason": "sample_limit"},
    )


def _notifications_failing(p: Profile) -> AlertRule:
    by = "sum by (job, instance, integration)"
    am = 'job="alertmanager"'
    return AlertRule(
        alert="AlertmanagerNotificationsFailing",
        expr=(
            f"{by} (rate(alertmanager_notifications_failed_total{{{am}}}[{p.rate_window}]))\n/\n"
            f"{by} (rate(alertmanager_notifications_total{{{am}}}[{p.rate_window}]))\n"
            f"> {NOTIFICATION_FAILURE_RATIO:g}"
        ),
        severity="warning",
        summary="Alertmanager: {{ $value | humanizePercentage }} of {{ $labels.integration }} notifications fail",
        description=(
            f"Over the last {p.rate_window}, {{{{ $value | humanizePercentage }}}} of Alertmanager's "
            f"{{{{ $labels.integration }}}} notification attempts failed: alerts are not reaching the receiver."
        ),
        for_=p.for_("AlertmanagerNotificationsFailing"),
    )


def _watchdog(p: Profile) -> AlertRule:
    return AlertRule(
        alert="Watchdog",
        expr="vector(1)",
        severity="none",
        summary="Alerting pipeline is alive",
        description=(
            "Always firing, on purpose. If the watchdog receiver stops getting it (about every "
            f"{p.alertmanager.watchdog_repeat_interval}), Prometheus, Alertmanager or the path between them is broken."
        ),
        for_=None,
    )


# ---------------------------------------------------------------- answer quality (llm_quality_score, llm_feedback_total)

# Relevance scores are shares (0..1) and a window's mean wanders by absolute points (spread / sqrt(scored calls)),
# whatever the baseline, so the drop is absolute: 5 points under the model's own baseline. The course's 95 % -> 88 %
# (7 points) fires with room to spare even after the baseline has absorbed ten minutes of it; 0.8 x baseline or
# baseline - 0.2 would wait for a 19-point collapse.
QUALITY_DROP = 0.05
NEGATIVE_FEEDBACK_RATIO = 0.30


def _answer_quality_drop(p: Profile) -> AlertRule:
    return AlertRule(
        alert="LLMAnswerQualityDrop",
        expr=(
            f"model:llm_relevance_score:mean\n< model:llm_relevance_score:mean_baseline - {QUALITY_DROP:g}\nand\n"
            f"model:llm_relevance_scores:rate >= {p.min_request_rate:g}"
        ),
        severity="warning",
        summary="{{ $labels.model }}: mean answer relevance fell to {{ $value | humanize }}",
        description=(
            f"The mean relevance score of {{{{ $labels.model }}}}'s answers over the last {p.rate_window} is "
            f"{{{{ $value | humanize }}}}, more than {QUALITY_DROP:g} under its own mean over the last "
            f"{p.baseline_window}: answers still come back fast and with HTTP 200, but say less about the question "
            f"(models with fewer than {p.min_request_rate:g} scored answers/s are ignored)."
        ),
        for_=p.for_("LLMAnswerQualityDrop"),
    )


def _negative_feedback(p: Profile) -> AlertRule:
    return AlertRule(
        alert="LLMNegativeFeedbackHigh",
        expr=(
            f"model:llm_feedback_down_ratio:rate > {NEGATIVE_FEEDBACK_RATIO:g}\nand\n"
            f"model:llm_feedback:rate >= {p.min_request_rate:g}"
        ),
        severity="warning",
        summary="{{ $labels.model }}: {{ $value | humanizePercentage }} of user ratings are thumbs down",
        description=(
            f"Over the last {p.rate_window}, {{{{ $value | humanizePercentage }}}} of the ratings users gave "
            f"{{{{ $labels.model }}}}'s answers (POST /v1/feedback) were `down` (threshold "
            f"{_percent(NEGATIVE_FEEDBACK_RATIO)}; models with fewer than {p.min_request_rate:g} ratings/s are "
            f"ignored)."
        ),
        for_=p.for_("LLMNegativeFeedbackHigh"),
    )


def quality_alerts(p: Profile) -> tuple[AlertRule, ...]:
    return _answer_quality_drop(p), _negative_feedback(p)


def alert_groups(p: Profile) -> tuple[RuleGroup, RuleGroup]:
    llm = RuleGroup(LLM_GROUP, (
        _error_ratio(p, "warning", ERROR_RATIO_WARNING),
        _error_ratio(p, "critical", ERROR_RATIO_CRITICAL),
        _latency(p),
        _time_to_first_token(p),
        _rate_limited(p),
        _cost_anomaly(p),
        _cache_hit_ratio(p),
        _circuit_breaker_open(p),
        _fallback_ratio(p),
        _degraded_service(p, "warning", DEGRADED_TIER_WARNING),
        _degraded_service(p, "critical", DEGRADED_TIER_CRITICAL),
        _ratelimit_headroom(p),
        _budget(p, "warning", BUDGET_WARNING),
        _budget(p, "critical", BUDGET_CRITICAL),
        *(_department_budget(p, severity) for severity in DEPARTMENT_BUDGET_STEPS),
        *quality_alerts(p),
    ))
    stack = RuleGroup(STACK_GROUP, (
        _target_down(p),
        _metrics_absent(p),
        _cardinality_growth(p),
        _sample_limit(p),
        _notifications_failing(p),
        _watchdog(p),
    ))
    return llm, stack


def alert_rules(p: Profile) -> list[AlertRule]:
    return [rule for group in alert_groups(p) for rule in group.rules]
