"""One provider call, end to end: a span, metrics, attribution row and log line are written for every outcome.

A call is booked in one step: the attribution row is written first, and only then move the metrics and is the log
line written; if the store refuses the row, StoreUnavailable reaches the route (a 503 naming the store) and nothing
is counted.

The span follows the OpenTelemetry GenAI semantic conventions (`chat {model}`, kind CLIENT, gen_ai.* attributes named
in stack/genai.py, which takes them from the opentelemetry-semantic-conventions package)
plus the call's cost and who it is booked to (department and application; never the user id). Its context travels to
the provider in the traceparent header, so the provider's spans join the same trace; the latency histogram keeps the
trace id as an exemplar and the log line carries it too."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from stack import catalog as catalog_module
from stack import genai, tracing
from stack.gateway.evaluation import evaluate
from stack.gateway.budget import DepartmentBudgets
from stack.gateway.logs import get_logger, user_hash
from stack.gateway.metrics import GatewayMetrics
from stack.gateway.outcomes import RecentOutcomes
from stack.gateway.provider import ProviderClient, ProviderError, ProviderReply
from stack.gateway.routing import NOT_A_MODEL_FAILURE
from stack.gateway.store import AttributionStore, CallRecord, StoreUnavailable


@dataclass(frozen=True)
class Caller:
    """Who a call is booked to, after the gateway has checked it."""

    request_id: str
    user_id: str
    department: str
    application: str
    synthetic: bool


@dataclass(frozen=True)
class CallResult:
    reply: ProviderReply
    cost_usd: float
    duration_seconds: float


@dataclass
class Outcome:
    """How one call ended, as it is booked: into the store (a row), the metrics and the log (a line)."""

    duration_seconds: float
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float = 0.0
    error: ProviderError | None = None
    finish_reason: str | None = None
    streamed: bool = False
    time_to_first_token_seconds: float | None = None
    time_per_output_token_seconds: float | None = None
    client_disconnected: bool = False
    tokens_estimated: bool = False  # a stream cut short before its usage arrived: counted with stack/tokens.py
    cache_hit: bool = False
    saved_input_tokens: int = 0  # on a cache hit, the tokens the stored answer was billed
    saved_output_tokens: int = 0
    saved_cost_usd: float = 0.0
    requested_model: str | None = None  # set when the model called is a fallback of the one asked for
    fallback_next: bool = False  # a failure of this call (not a 429) hands the request to the next model


FALLBACK = "fallback"  # the status of a failed call whose request went on to the next model
OPERATION = genai.OPERATION_CHAT
PROVIDER = genai.PROVIDER


# Every attribute costs a few microseconds to record and export on each call; these are the ones the labs, the
# dashboards and Phoenix use (the request id is on the trace's root span, the user id nowhere).
def request_attributes(caller: Caller, step: str, model: str) -> dict[str, str]:
    return {
        genai.OPERATION_NAME: OPERATION,
        genai.PROVIDER_NAME: PROVIDER,
        genai.REQUEST_MODEL: model,
        "openinference.span.kind": "LLM",  # Phoenix shows the span as an LLM call
        "llm.step": step,
        "llm.department": caller.department,
        "llm.application": caller.application,
    }


def reply_attributes(body: dict, input_tokens: int, output_tokens: int, cached_input_tokens: int,
                     cost_usd: float) -> dict[str, object]:
    """`body`: the completion (or, for a stream, its model and finish reasons as a completion would carry them)."""
    attributes: dict[str, object] = {
        genai.USAGE_INPUT_TOKENS: input_tokens,
        genai.USAGE_OUTPUT_TOKENS: output_tokens,
        genai.USAGE_CACHE_READ_INPUT_TOKENS: cached_input_tokens,
        "llm.cost_usd": cost_usd,
    }
    if isinstance(body.get("model"), str):
        attributes[genai.RESPONSE_MODEL] = body["model"]
    reasons = genai.finish_reasons(body)
    if reasons:
        attributes[genai.RESPONSE_FINISH_REASONS] = reasons
    return attributes


def mark_failed(span: trace.Span, error: ProviderError) -> None:
    if span.is_recording():
        span.set_attribute("error.type", error.error_type)
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{error.error_type}: {error}"))


class CallRecorder:
    def __init__(self, provider: ProviderClient, metrics: GatewayMetrics, store: AttributionStore,
                 user_hash_salt: str, tracer: trace.Tracer | None = None,
                 budgets: DepartmentBudgets | None = None) -> None:
        self.provider = provider
        self.metrics = metrics
        self.store = store
        self.user_hash_salt = user_hash_salt
        self.tracer = tracer or trace.NoOpTracer()
        self.budgets = budgets  # month-to-date spend per department: each booked cost is added once
        self.outcomes = RecentOutcomes()  # read by /ready
        self.model_outcomes: dict[str, RecentOutcomes] = defaultdict(RecentOutcomes)  # read by /health/detailed
        self.log = get_logger()

    async def call(self, caller: Caller, step: str, payload: dict, requested_model: str | None = None,
                   fallback_next: bool = False, evaluated: bool = False) -> CallResult:
        """`requested_model`: the model asked for, when `payload`'s model is one of its fallbacks. `fallback_next`:
        a failure is handed to the next model of the chain (booked with status `fallback`). `evaluated`: score the
        answer (stack/gateway/evaluation.py)."""
        model = payload["model"]
        with self.tracer.start_as_current_span(genai.chat_span_name(model), kind=SpanKind.CLIENT,
                                               record_exception=False, set_status_on_exception=False) as span:
            recording = span.is_recording()
            if recording:
                span.set_attributes(request_attributes(caller, step, model))
            started = time.perf_counter()
            if self.metrics.enabled:
                self.metrics.in_flight.inc()
            try:
                headers = tracing.inject({"X-Request-ID": caller.request_id})
                reply = await self.provider.chat(payload, headers=headers)
            except ProviderError as error:
                self.record_provider_outcome(model, ok=False)
                self.book(caller, step, model, Outcome(time.perf_counter() - started, error=error,
                                                       requested_model=requested_model, fallback_next=fallback_next))
                mark_failed(span, error)
                raise
            finally:
                if self.metrics.enabled:
                    self.metrics.in_flight.dec()
            duration = time.perf_counter() - started
            self.record_provider_outcome(model, ok=True)
            cost = catalog_module.cost_usd(model, reply.input_tokens, reply.output_tokens, reply.cached_input_tokens)
            if recording:
                span.set_attributes(reply_attributes(reply.body, reply.input_tokens, reply.output_tokens,
                                                     reply.cached_input_tokens, cost))
            reasons = genai.finish_reasons(reply.body)
            self.book(caller, step, model, Outcome(
                duration, reply.input_tokens, reply.output_tokens, reply.cached_input_tokens, cost,
                finish_reason=reasons[0] if reasons else None, requested_model=requested_model))
            if evaluated:
                self.evaluate(caller, step, model, payload["messages"], reply.text, span)
        return CallResult(reply=reply, cost_usd=cost, duration_seconds=duration)

    def evaluate(self, caller: Caller, step: str, model: str, messages: list[dict], answer: str,
                 span: trace.Span) -> None:
        """Score an answered call: the store first (a refusal is logged, the call stays answered), then the
        histogram and the span's `gen_ai.evaluation.result` events."""
        scores = evaluate(messages, answer)
        try:
            self.store.add_evaluations(caller.request_id, step,
                                       [(s.evaluator, s.value, s.label) for s in scores])
        except StoreUnavailable as error:
            self.log.error("evaluation_not_stored", request_id=caller.request_id, step=step, error=str(error))
            return
        self.metrics.record_scores(model, [(s.evaluator, s.value) for s in scores])
        if span.is_recording():
            for score in scores:
                span.add_event(genai.EVENT_EVALUATION_RESULT, {
                    genai.EVALUATION_NAME: score.evaluator, genai.EVALUATION_SCORE_VALUE: score.value,
                    genai.EVALUATION_SCORE_LABEL: score.label})

    def record_provider_outcome(self, model: str, ok: bool) -> None:
        """For /ready and /health/detailed: the recent outcomes of provider calls, overall and per model."""
        self.outcomes.record(ok)
        self.model_outcomes[model].record(ok)

    def book(self, caller: Caller, step: str, model: str, outcome: Outcome, span: trace.Span | None = None) -> None:
        """Book one call: the attribution row, then the metrics and the log line. `span`: the call's span when it
        is not the current one (a stream is booked after its route returned)."""
        error = outcome.error
        status = "success" if error is None else \
            FALLBACK if outcome.fallback_next and error.error_type not in NOT_A_MODEL_FAILURE else "error"
        error_type = error.error_type if error else None
        # The row first: when the store refuses it (StoreUnavailable), no metric moves and no line is logged.
        self.store.add(CallRecord(
            request_id=caller.request_id, step=step, ts=time.time(), user_id=caller.user_id,
            department=caller.department, application=caller.application, model=model,
            input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens, cost_usd=outcome.cost_usd,
            duration_seconds=outcome.duration_seconds, status=status, error_type=error_type,
            synthetic=caller.synthetic, cached_input_tokens=outcome.cached_input_tokens, streamed=outcome.streamed,
            time_to_first_token_seconds=outcome.time_to_first_token_seconds, finish_reason=outcome.finish_reason,
            cache_hit=outcome.cache_hit, saved_cost_usd=outcome.saved_cost_usd,
            requested_model=outcome.requested_model,
        ))
        if self.budgets is not None and outcome.cost_usd:  # the row is written; a cache hit (cost 0) spends nothing
            self.budgets.record(caller.department, outcome.cost_usd)
        exemplar = tracing.exemplar(span)
        if outcome.cache_hit:
            self.metrics.record_cache_hit(model, caller.department, outcome.saved_input_tokens,
                                          outcome.saved_output_tokens, outcome.saved_cost_usd)
        else:
            self.metrics.record_call(model, caller.department, outcome.duration_seconds, status,
                                     outcome.input_tokens, outcome.output_tokens, outcome.cost_usd, error_type,
                                     exemplar, outcome.cached_input_tokens)
            if outcome.streamed:
                self.metrics.record_stream(model, outcome.time_to_first_token_seconds,
                                           outcome.time_per_output_token_seconds, outcome.client_disconnected,
                                           exemplar)
        fields: dict[str, object] = {}
        if outcome.streamed:
            ttft = outcome.time_to_first_token_seconds
            fields.update(streamed=True, ttft_ms=None if ttft is None else round(ttft * 1000, 1))
        if outcome.tokens_estimated:
            fields["tokens_estimated"] = True
        if outcome.requested_model:
            fields["requested_model"] = outcome.requested_model
        if outcome.cache_hit:
            fields.update(cache="hit", saved_cost_usd=round(outcome.saved_cost_usd, 8))
        log = self.log.warning if error else self.log.info
        log(
            "llm_call",
            request_id=caller.request_id,
            step=step,
            user_hash=user_hash(caller.user_id, self.user_hash_salt),
            department=caller.department,
            application=caller.application,
            model=model,
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
            cached_input_tokens=outcome.cached_input_tokens,
            cost_usd=round(outcome.cost_usd, 8),
            duration_ms=round(outcome.duration_seconds * 1000, 1),
            status=status,
            finish_reason=outcome.finish_reason,
            error_type=error_type,
            error=str(error) if error else None,
            synthetic=caller.synthetic,
            **fields,
        )
