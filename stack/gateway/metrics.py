"""The gateway's Prometheus instrumentation: bounded labels only (ids go to logs, never to labels)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stack.catalog import Catalog
from stack.gateway.label_guard import LabelGuard

# LLM calls range from ~50 ms (small model, short answer) to a minute (reasoning model, long answer).
LATENCY_BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
STATUSES = ("success", "error")
TOKEN_TYPES = ("input", "output")
PROVIDER_ERROR_TYPES = ("server_error", "rate_limited", "timeout", "unavailable", "bad_response")
REJECTION_REASONS = ("invalid_body", "missing_attribution", "unknown_model", "prompt_too_large")


class GatewayMetrics:
    def __init__(self, catalog: Catalog, enabled: bool = True) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry()
        self.department_guard = LabelGuard("department", catalog.max_values_per_label, catalog.departments)
        r = self.registry
        self.requests = Counter("llm_requests", "Calls to the LLM provider, by outcome.", ["model", "status"],
                                registry=r)
        self.duration = Histogram("llm_request_duration_seconds", "Latency of calls to the LLM provider.",
                                  ["model"], buckets=LATENCY_BUCKETS_SECONDS, registry=r)
        self.tokens = Counter("llm_tokens", "Tokens billed by the provider.", ["model", "token_type"], registry=r)
        self.cost = Counter("llm_cost_usd", "Cost of provider calls in US dollars, from the catalog's prices.",
                            ["model", "department"], registry=r)
        self.in_flight = Gauge("llm_requests_in_flight", "Provider calls under way.", registry=r)
        self.provider_errors = Counter("llm_provider_errors", "Failed provider calls, by kind of failure.",
                                       ["model", "error_type"], registry=r)
        self.rejected = Counter("llm_rejected_requests", "Requests refused before reaching the provider.",
                                ["reason"], registry=r)
        self.label_overflow = Counter("llm_label_overflow", "Label values folded into 'other' by the guard.",
                                      ["label"], registry=r)
        budget = Gauge("llm_daily_budget_usd", "The daily spending budget from the catalog.", registry=r)
        budget.set(catalog.daily_budget_usd)
        self._initialise_children(catalog)

    def _initialise_children(self, catalog: Catalog) -> None:
        """Export zeros for every known combination, so absent() and rate() work before the first failure."""
        for model in catalog.models:
            for status in STATUSES:
                self.requests.labels(model, status)
            for token_type in TOKEN_TYPES:
                self.tokens.labels(model, token_type)
            for error_type in PROVIDER_ERROR_TYPES:
                self.provider_errors.labels(model, error_type)
            self.duration.labels(model)
        for reason in REJECTION_REASONS:
            self.rejected.labels(reason)
        self.label_overflow.labels("department")

    def department_label(self, department: str) -> str:
        value, folded = self.department_guard(department)
        if folded and self.enabled:
            self.label_overflow.labels("department").inc()
        return value

    def record_call(self, model: str, department: str, duration_seconds: float, ok: bool,
                    input_tokens: int, output_tokens: int, cost_usd: float, error_type: str | None,
                    exemplar: dict[str, str] | None = None) -> None:
        """`exemplar`: the call's trace and span ids, kept with its latency bucket (OpenMetrics exposition)."""
        if not self.enabled:
            return
        self.requests.labels(model, "success" if ok else "error").inc()
        self.duration.labels(model).observe(duration_seconds, exemplar)
        if error_type:
            self.provider_errors.labels(model, error_type).inc()
        if input_tokens or output_tokens:
            self.tokens.labels(model, "input").inc(input_tokens)
            self.tokens.labels(model, "output").inc(output_tokens)
        if cost_usd:
            self.cost.labels(model, self.department_label(department)).inc(cost_usd)

    def record_rejection(self, reason: str) -> None:
        if self.enabled:
            self.rejected.labels(reason).inc()
