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
from stack.gateway.logs import get_logger, user_hash
from stack.gateway.metrics import GatewayMetrics
from stack.gateway.outcomes import RecentOutcomes
from stack.gateway.provider import ProviderClient, ProviderError, ProviderReply
from stack.gateway.store import AttributionStore, CallRecord


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


def reply_attributes(reply: ProviderReply, cost_usd: float) -> dict[str, object]:
    attributes: dict[str, object] = {
        genai.USAGE_INPUT_TOKENS: reply.input_tokens,
        genai.USAGE_OUTPUT_TOKENS: reply.output_tokens,
        "llm.cost_usd": cost_usd,
    }
    if isinstance(reply.body.get("model"), str):
        attributes[genai.RESPONSE_MODEL] = reply.body["model"]
    reasons = genai.finish_reasons(reply.body)
    if reasons:
        attributes[genai.RESPONSE_FINISH_REASONS] = reasons
    return attributes


class CallRecorder:
    def __init__(self, provider: ProviderClient, metrics: GatewayMetrics, store: AttributionStore,
                 user_hash_salt: str, tracer: trace.Tracer | None = None) -> None:
        self.provider = provider
        self.metrics = metrics
        self.store = store
        self.user_hash_salt = user_hash_salt
        self.tracer = tracer or trace.NoOpTracer()
        self.outcomes = RecentOutcomes()  # read by /ready
        self.model_outcomes: dict[str, RecentOutcomes] = defaultdict(RecentOutcomes)  # read by /health/detailed
        self.log = get_logger()

    async def call(self, caller: Caller, step: str, payload: dict) -> CallResult:
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
                self.outcomes.record(False)
                self.model_outcomes[model].record(False)
                self._book(caller, step, model, time.perf_counter() - started, None, 0.0, error)
                if recording:
                    span.set_attribute("error.type", error.error_type)
                    span.record_exception(error)
                    span.set_status(Status(StatusCode.ERROR, f"{error.error_type}: {error}"))
                raise
            finally:
                if self.metrics.enabled:
                    self.metrics.in_flight.dec()
            duration = time.perf_counter() - started
            self.outcomes.record(True)
            self.model_outcomes[model].record(True)
            cost = catalog_module.cost_usd(model, reply.input_tokens, reply.output_tokens)
            if recording:
                span.set_attributes(reply_attributes(reply, cost))
            self._book(caller, step, model, duration, reply, cost, None)
        return CallResult(reply=reply, cost_usd=cost, duration_seconds=duration)

    def _book(self, caller: Caller, step: str, model: str, duration: float, reply: ProviderReply | None,
              cost: float, error: ProviderError | None) -> None:
        input_tokens = reply.input_tokens if reply else 0
        output_tokens = reply.output_tokens if reply else 0
        status = "success" if error is None else "error"
        error_type = error.error_type if error else None
        # The row first: when the store refuses it (StoreUnavailable), no metric moves and no line is logged.
        self.store.add(CallRecord(
            request_id=caller.request_id, step=step, ts=time.time(), user_id=caller.user_id,
            department=caller.department, application=caller.application, model=model,
            input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost, duration_seconds=duration,
            status=status, error_type=error_type, synthetic=caller.synthetic,
        ))
        self.metrics.record_call(model, caller.department, duration, error is None, input_tokens, output_tokens,
                                 cost, error_type, tracing.exemplar())
        log = self.log.warning if error else self.log.info
        log(
            "llm_call",
            request_id=caller.request_id,
            step=step,
            user_hash=user_hash(caller.user_id, self.user_hash_salt),
            department=caller.department,
            application=caller.application,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=round(cost, 8),
            duration_ms=round(duration * 1000, 1),
            status=status,
            error_type=error_type,
            error=str(error) if error else None,
            synthetic=caller.synthetic,
        )
