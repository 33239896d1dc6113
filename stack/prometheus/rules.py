"""Rule types and the recording rules. Record names never mention a window; the profile sets the window."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from stack import topology
from stack.profiles import Duration, Profile

GATEWAY = 'job="gateway"'
RECORDING_GROUP = "llm-recording"


@dataclass(frozen=True)
class RecordingRule:
    record: str
    expr: str


@dataclass(frozen=True)
class AlertRule:
    alert: str
    expr: str
    severity: str
    summary: str
    description: str
    for_: Duration | None
    extra_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def labels(self) -> dict[str, str]:
        """The static labels the rule adds to every alert it fires."""
        return {"severity": self.severity, **self.extra_labels}

    @property
    def annotations(self) -> dict[str, str]:
        return {"summary": self.summary, "description": self.description, "runbook_url": runbook_url(self.alert)}


def runbook_url(alertname: str) -> str:
    """The receiver serves docs/runbooks/<AlertName>.md at this address."""
    return f"{topology.load()['receiver'].url}/runbooks/{alertname}"


@dataclass(frozen=True)
class RuleGroup:
    name: str
    rules: tuple[RecordingRule, ...] | tuple[AlertRule, ...]


def _p95_by_model(histogram: str, window: Duration) -> str:
    return f"histogram_quantile(0.95, sum by (le, model) (rate({histogram}_bucket{{{GATEWAY}}}[{window}])))"


def _served_by_a_fallback(window: Duration) -> str:
    """Answered requests/s per requested model that another model served. PromQL cannot compare two labels of a
    series, so the series whose served_model equals its requested_model are removed by joining on a copy of
    requested_model written into served_model (one per requested model: `group` first, so no labels collide)."""
    routed = f"llm_routed_requests_total{{{GATEWAY}}}"
    itself = f'label_replace(group by (requested_model) ({routed}), "served_model", "$1", "requested_model", "(.*)")'
    return (f"sum by (requested_model) (\n  rate({routed}[{window}])\n  unless on (requested_model, served_model)\n"
            f"  {itself}\n)")


def recording_rules(profile: Profile) -> RuleGroup:
    """Per-model request, error, latency and cost rates, the gateway's response-cache hit ratio, and per requested
    model the answered requests and the share a fallback served, that the alerts and dashboards share."""
    w = profile.rate_window
    requests = f"llm_requests_total{{{GATEWAY}}}"
    errors = f'llm_requests_total{{{GATEWAY},status="error"}}'
    cache_hits = f"sum by (job) (rate(llm_response_cache_hits_total{{{GATEWAY}}}[{w}]))"
    cache_lookups = f"{cache_hits}\n+ sum by (job) (rate(llm_response_cache_misses_total{{{GATEWAY}}}[{w}]))"
    routed = f"sum by (requested_model) (rate(llm_routed_requests_total{{{GATEWAY}}}[{w}]))"
    return RuleGroup(RECORDING_GROUP, (
        RecordingRule("model:llm_requests:rate", f"sum by (model) (rate({requests}[{w}]))"),
        RecordingRule("model:llm_request_errors:rate", f"sum by (model) (rate({errors}[{w}]))"),
        # Sum numerator and denominator per model first, then divide: dividing per series compares each
        # series with itself (or with nothing) instead of errors with all requests.
        RecordingRule(
            "model:llm_request_error_ratio:rate",
            f"sum by (model) (rate({errors}[{w}]))\n/\nsum by (model) (rate({requests}[{w}]))",
        ),
        RecordingRule("model:llm_request_duration_seconds:p95", _p95_by_model("llm_request_duration_seconds", w)),
        RecordingRule(
            "model:llm_streamed_requests:rate", f"sum by (model) (rate(llm_streamed_requests_total{{{GATEWAY}}}[{w}]))"
        ),
        RecordingRule(
            "model:llm_time_to_first_token_seconds:p95", _p95_by_model("llm_time_to_first_token_seconds", w)
        ),
        RecordingRule("job:llm_response_cache_lookups:rate", cache_lookups),
        # All hits over all lookups: the average of per-model ratios would weigh a model with 3 lookups like one
        # with 3000.
        RecordingRule("job:llm_response_cache_hit_ratio:rate", f"{cache_hits}\n/\n({cache_lookups})"),
        RecordingRule("requested_model:llm_routed_requests:rate", routed),
        # By requested model, not from llm_fallbacks_total: a request that falls back twice is counted there under
        # the second model that failed (from_model), not under the one the caller asked for. `or 0 * ...`: 0 for a
        # model nothing fell back from, rather than no series.
        RecordingRule(
            "requested_model:llm_fallback_ratio:rate",
            f"(\n{_served_by_a_fallback(w)}\nor\n0 * {routed}\n)\n/\n{routed}",
        ),
        RecordingRule("job:llm_cost_usd:rate", f"sum by (job) (rate(llm_cost_usd_total{{{GATEWAY}}}[{w}]))"),
        # The average of the short rate, so a freshly started Prometheus does not see a tiny baseline.
        RecordingRule(
            "job:llm_cost_usd:rate_baseline", f"avg_over_time(job:llm_cost_usd:rate[{profile.baseline_window}])"
        ),
        *quality_rules(profile),
    ))


def _mean_relevance(window: Duration) -> str:
    """Sum of the scores over their count, each summed per model first: the mean of every scored answer."""
    relevance = f'{{{GATEWAY},evaluator="relevance"}}'
    return (f"sum by (model) (rate(llm_quality_score_sum{relevance}[{window}]))\n/\n"
            f"sum by (model) (rate(llm_quality_score_count{relevance}[{window}]))")


def quality_rules(profile: Profile) -> tuple[RecordingRule, ...]:
    """Answer quality per model: scored answers per second, mean relevance now and over the baseline window (the
    model's own normal, so a model whose answers always score lower is not a drop), share of thumbs-down ratings."""
    w = profile.rate_window
    feedback = f"sum by (model) (rate(llm_feedback_total{{{GATEWAY}}}[{w}]))"
    down = f'sum by (model) (rate(llm_feedback_total{{{GATEWAY},rating="down"}}[{w}]))'
    return (
        RecordingRule(
            "model:llm_relevance_scores:rate",
            f'sum by (model) (rate(llm_quality_score_count{{{GATEWAY},evaluator="relevance"}}[{w}]))',
        ),
        RecordingRule("model:llm_relevance_score:mean", _mean_relevance(w)),
        RecordingRule("model:llm_relevance_score:mean_baseline", _mean_relevance(profile.baseline_window)),
        RecordingRule("model:llm_feedback:rate", feedback),
        RecordingRule("model:llm_feedback_down_ratio:rate", f"{down}\n/\n{feedback}"),
    )
