"""The gateway's Prometheus instrumentation: bounded labels only (ids go to logs, never to labels)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stack.catalog import Catalog
from stack.gateway import budget as budget_module
from stack.gateway.label_guard import LabelGuard
from stack.gateway.evaluation import EVALUATORS, SCORE_BUCKETS
from stack.gateway.response_cache import BYPASS_REASONS

# LLM calls range from ~50 ms (small model, short answer) to a minute (reasoning model, long answer).
LATENCY_BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
# Time to first token: a chat user sees an empty box until the first chunk. Fine-grained from 50 ms to 3 s, where a
# TTFT objective (2 s, stack/prometheus/alerts.py) and the models' normal prefill (0.05-1.5 s) lie, so p95 is read
# within a bucket of its true value; coarse above, where the only question is "how bad".
TTFT_BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 15, 30)
# Time per output token once the stream runs: real models decode 5-100 ms a token, the simulated ones 0.4-4 ms;
# roughly doubling buckets from 0.2 ms to 250 ms cover both with the same relative precision.
TIME_PER_OUTPUT_TOKEN_BUCKETS_SECONDS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25)
# fallback: the call failed and the request was handed to the next model of its chain (the caller did not see it)
STATUSES = ("success", "error", "fallback")
CIRCUIT_STATES = ("closed", "opened", "half-opened")
STATE_VALUES = {"closed": 0, "opened": 1, "half-opened": 2}  # llm_circuit_breaker_state
RATELIMIT_KINDS = ("requests", "tokens")
FEEDBACK_RATINGS = ("up", "down")
TOKEN_TYPES = ("input", "output")
PROVIDER_ERROR_TYPES = ("server_error", "rate_limited", "timeout", "unavailable", "bad_response")
REJECTION_REASONS = ("invalid_body", "missing_attribution", "unknown_model", "prompt_too_large", "circuit_open")


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
        self.cached_prompt_tokens = Counter(
            "llm_cached_prompt_tokens", "Prompt tokens the provider served from its prompt cache (billed at the "
            "cached-input price; a part of llm_tokens_total{token_type=\"input\"}).", ["model"], registry=r)
        self.time_to_first_token = Histogram(
            "llm_time_to_first_token_seconds", "Streamed calls only: from the start of the provider call to its "
            "first content chunk.", ["model"], buckets=TTFT_BUCKETS_SECONDS, registry=r)
        self.time_per_output_token = Histogram(
            "llm_time_per_output_token_seconds", "Streamed calls only: (last content chunk - first content chunk) / "
            "(output tokens - 1).", ["model"], buckets=TIME_PER_OUTPUT_TOKEN_BUCKETS_SECONDS, registry=r)
        self.streamed_requests = Counter("llm_streamed_requests", "Streamed provider calls, any outcome (also counted "
                                         "in llm_requests).", ["model"], registry=r)
        self.client_disconnects = Counter("llm_client_disconnects", "Streamed calls whose client hung up before "
                                          "the answer ended (booked with finish_reason cancelled).", ["model"],
                                          registry=r)
        self.cache_hits = Counter("llm_response_cache_hits", "Cacheable requests answered from the response cache.",
                                  ["model"], registry=r)
        self.cache_misses = Counter("llm_response_cache_misses", "Cacheable requests the response cache could not "
                                    "answer (sent to the provider).", ["model"], registry=r)
        self.cache_bypassed = Counter("llm_response_cache_bypassed", "Requests that skipped the response cache: "
                                      "no seed, or \"cache\": {\"no-cache\": true}.", ["reason"], registry=r)
        self.cache_saved_tokens = Counter("llm_response_cache_saved_tokens", "Tokens the response cache's hits did "
                                          "not buy.", ["model", "token_type"], registry=r)
        self.cache_saved_usd = Counter("llm_response_cache_saved_usd", "US dollars the response cache's hits did "
                                       "not spend (each hit saves what its answer cost when it was stored).",
                                       ["model", "department"], registry=r)
        self.circuit_state = Gauge("llm_circuit_breaker_state", "The model's circuit breaker: 0 closed, 1 open, "
                                   "2 half-open (stack/gateway/routing.py).", ["model"], registry=r)
        self.circuit_transitions = Counter("llm_circuit_breaker_transitions", "Circuit breaker state changes, by "
                                           "the state entered.", ["model", "to_state"], registry=r)
        self.fallbacks = Counter("llm_fallbacks", "Calls handed to the next model of a fallback chain, by the model "
                                 "that failed (or whose breaker was open), the one tried next, and how that went.",
                                 ["from_model", "to_model", "outcome"], registry=r)
        self.routed = Counter("llm_routed_requests", "Chat requests and workflow steps answered by a provider call, "
                              "by the model asked for and the model that served.", ["requested_model", "served_model"], registry=r)
        self.degradation_tier = Gauge("llm_degradation_tier", "1 full service, 2 degraded (fallbacks serve some "
                                      "models), 3 last resort only, 4 cache only (stack/gateway/routing.py).",
                                      registry=r)
        self.ratelimit_remaining = Gauge("llm_ratelimit_remaining", "Requests or tokens left in the provider's "
                                         "rate-limit window, from its x-ratelimit-remaining-* headers.",
                                         ["model", "kind"], registry=r)
        self.ratelimit_limit = Gauge("llm_ratelimit_limit", "The provider's rate limit per window, from its "
                                     "x-ratelimit-limit-* headers.", ["model", "kind"], registry=r)
        self.quality_score = Histogram("llm_quality_score", "Scores of answered chat calls by the gateway's "
                                       "evaluators (0..1; stack/gateway/evaluation.py).", ["model", "evaluator"],
                                       buckets=SCORE_BUCKETS, registry=r)
        self.retrieval_relevance = Histogram("llm_retrieval_relevance", "The agent workflow's retrieval step: the "
                                             "best passage's share of the question's content words (0..1).",
                                             buckets=SCORE_BUCKETS, registry=r)
        self.feedback = Counter("llm_feedback", "Ratings of answers by their callers (POST /v1/feedback), by the "
                                "model that served.", ["model", "rating"], registry=r)
        self.cache_entries = Gauge("llm_response_cache_entries", "Answers held by the response cache.", registry=r)
        budget = Gauge("llm_daily_budget_usd", "The daily spending budget from the catalog.", registry=r)
        budget.set(catalog.daily_budget_usd)
        self._monthly_budget_metrics(catalog)
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
            self.cached_prompt_tokens.labels(model)
            self.time_to_first_token.labels(model)
            self.time_per_output_token.labels(model)
            self.streamed_requests.labels(model)
            self.client_disconnects.labels(model)
            self.cache_hits.labels(model)
            self.cache_misses.labels(model)
            for token_type in TOKEN_TYPES:
                self.cache_saved_tokens.labels(model, token_type)
        for name, model in catalog.models.items():
            if not model.fallbacks:
                continue  # no fallback, no breaker (stack/gateway/routing.py)
            self.circuit_state.labels(name).set(0)
            for state in CIRCUIT_STATES:
                self.circuit_transitions.labels(name, state)
        self.degradation_tier.set(1)
        for model in catalog.models:
            for evaluator in EVALUATORS:
                self.quality_score.labels(model, evaluator)
            for rating in FEEDBACK_RATINGS:
                self.feedback.labels(model, rating)
        for reason in BYPASS_REASONS:
            self.cache_bypassed.labels(reason)
        for reason in REJECTION_REASONS:
            self.rejected.labels(reason)
        self.label_overflow.labels("department")

    def department_label(self, department: str) -> str:
        value, folded = self.department_guard(department)
        if folded and self.enabled:
            self.label_overflow.labels("department").inc()
        return value

    def record_call(self, model: str, department: str, duration_seconds: float, status: str,
                    input_tokens: int, output_tokens: int, cost_usd: float, error_type: str | None,
                    exemplar: dict[str, str] | None = None, cached_input_tokens: int = 0) -> None:
        """`exemplar`: the call's trace and span ids, kept with its latency bucket (OpenMetrics exposition)."""
        if not self.enabled:
            return
        self.requests.labels(model, status).inc()
        self.duration.labels(model).observe(duration_seconds, exemplar)
        if error_type:
            self.provider_errors.labels(model, error_type).inc()
        if input_tokens or output_tokens:
            self.tokens.labels(model, "input").inc(input_tokens)
            self.tokens.labels(model, "output").inc(output_tokens)
        if cached_input_tokens:
            self.cached_prompt_tokens.labels(model).inc(cached_input_tokens)
        if cost_usd:
            self.cost.labels(model, self.department_label(department)).inc(cost_usd)

    def record_stream(self, model: str, time_to_first_token: float | None, time_per_output_token: float | None,
                      disconnected: bool, exemplar: dict[str, str] | None = None) -> None:
        """One streamed provider call, whatever its outcome (None: it never produced a first chunk / a second)."""
        if not self.enabled:
            return
        self.streamed_requests.labels(model).inc()
        if time_to_first_token is not None:
            self.time_to_first_token.labels(model).observe(time_to_first_token, exemplar)
        if time_per_output_token is not None:
            self.time_per_output_token.labels(model).observe(time_per_output_token)
        if disconnected:
            self.client_disconnects.labels(model).inc()

    def record_cache_hit(self, model: str, department: str, input_tokens: int, output_tokens: int,
                         saved_usd: float) -> None:
        if not self.enabled:
            return
        self.cache_hits.labels(model).inc()
        self.cache_saved_tokens.labels(model, "input").inc(input_tokens)
        self.cache_saved_tokens.labels(model, "output").inc(output_tokens)
        if saved_usd:
            self.cache_saved_usd.labels(model, self.department_label(department)).inc(saved_usd)

    def record_cache_miss(self, model: str) -> None:
        if self.enabled:
            self.cache_misses.labels(model).inc()

    def record_cache_bypass(self, reason: str) -> None:
        if self.enabled:
            self.cache_bypassed.labels(reason).inc()

    def record_fallback(self, from_model: str, to_model: str, outcome: str) -> None:
        if self.enabled:
            self.fallbacks.labels(from_model, to_model, outcome).inc()

    def record_routed(self, requested_model: str, served_model: str) -> None:
        if self.enabled:
            self.routed.labels(requested_model, served_model).inc()

    def record_breaker(self, model: str, state: str) -> None:
        if not self.enabled:
            return
        self.circuit_state.labels(model).set(STATE_VALUES[state])
        self.circuit_transitions.labels(model, state).inc()

    def record_ratelimit(self, model: str, remaining: dict[str, int], limits: dict[str, int]) -> None:
        if not self.enabled:
            return
        for kind, value in remaining.items():
            self.ratelimit_remaining.labels(model, kind).set(value)
        for kind, value in limits.items():
            self.ratelimit_limit.labels(model, kind).set(value)

    def record_scores(self, model: str, scores: list[tuple[str, float]]) -> None:
        if self.enabled:
            for evaluator, value in scores:
                self.quality_score.labels(model, evaluator).observe(value)

    def record_retrieval(self, relevance: float) -> None:
        if self.enabled:
            self.retrieval_relevance.observe(relevance)

    def record_feedback(self, model: str, rating: str) -> None:
        if self.enabled:
            self.feedback.labels(model, rating).inc()

    def record_rejection(self, reason: str) -> None:
        if self.enabled:
            self.rejected.labels(reason).inc()

    # ---------------------------------------------------------------- monthly budgets per department (budget.py)
    def _monthly_budget_metrics(self, catalog: Catalog) -> None:
        """One series per budget (the catalog's departments and `other`) and per action: bounded by the catalog."""
        r, department = self.registry, ["department"]
        self.budget_monthly = Gauge("llm_budget_monthly_usd", "Monthly budget per department, from the catalog's "
                                    "budgets.monthly_usd (other: every department the catalog does not list).",
                                    department, registry=r)
        self.budget_spent = Gauge("llm_budget_spent_usd", "Month-to-date spend per department (UTC calendar month; "
                                  "rebuilt from the attribution store at start-up).", department, registry=r)
        self.budget_remaining = Gauge("llm_budget_remaining_usd", "Monthly budget minus month-to-date spend "
                                      "(negative: over budget).", department, registry=r)
        self.budget_projected = Gauge("llm_budget_projected_usd", "Month-end spend at the month-to-date pace: "
                                      "spent x month length / elapsed time (at least an hour).", department,
                                      registry=r)
        self.budget_actions = Counter("llm_budget_policy_actions", "Requests the monthly budget policy acted on: "
                                      "refused (HTTP 402) or downgraded to the cheapest model.",
                                      ["department", "action"], registry=r)
        for name in catalog.monthly_budgets.monthly_usd:
            for action in budget_module.ACTIONS:
                self.budget_actions.labels(name, action)

    def watch_budgets(self, budgets: Iterable[str],
                      status: Callable[[str], budget_module.BudgetStatus]) -> None:
        """The budget gauges read `status` at every scrape, so the projection moves with the clock and a new month
        or a healed knob shows without traffic."""
        if not self.enabled:
            return
        for name in budgets:  # the budgets' keys are the values the department guard yields: its list and `other`
            self.budget_monthly.labels(name).set_function(lambda n=name: status(n).monthly_usd)
            self.budget_spent.labels(name).set_function(lambda n=name: status(n).spent_usd)
            self.budget_remaining.labels(name).set_function(lambda n=name: status(n).remaining_usd)
            self.budget_projected.labels(name).set_function(lambda n=name: status(n).projected_usd)

    def record_budget_action(self, department: str, action: str) -> None:
        if self.enabled:
            self.budget_actions.labels(self.department_label(department), action).inc()
