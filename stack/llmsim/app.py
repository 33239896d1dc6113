"""HTTP surface of the simulated provider: /v1/chat/completions, /v1/models, /faults, /health, /metrics.

A completion is answered whole (JSON, after prefill + decode) or, with `"stream": true`, as OpenAI's server-sent
events: the first `chat.completion.chunk` (carrying the role and the first word) after the prefill (time to first
token), one chunk per word spread evenly over the decode, a last chunk with an empty delta and the finish_reason,
with `stream_options.include_usage` one more chunk with no choices and the usage, then `data: [DONE]`.
Every usage (streamed or not) has `prompt_tokens_details.cached_tokens`: the prompt prefix found in the prompt cache
(stack/llmsim/prompt_cache.py), which is not prefilled again. Every answer for a catalog model carries OpenAI's
x-ratelimit-* headers (stack/llmsim/rate_limits.py); a request over its model's limit is a 429 naming the limit."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, Response, StreamingResponse
from opentelemetry.trace import Span, Status, StatusCode
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator

from stack import catalog, genai
from stack import tracing as tracing_module
from stack.faults import LlmsimFaults
from stack.llmsim import rate_limits
from stack.llmsim.faults import FAULT_NAMES, KNOB_NAMES, FaultState, Outcome
from stack.llmsim.generation import Completion, simulate
from stack.llmsim.prompt_cache import PromptCache
from stack.llmsim.rate_limits import Decision, LimitKind, RateLimiter
from stack.llmsim.settings import Settings
from stack.tokens import count_prompt_tokens
from stack.web import add_metrics_route, install_error_handlers, problem


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str


MAX_MESSAGES = catalog.load().max_messages_per_request
MAX_OUTPUT_TOKENS = catalog.load().max_output_tokens


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt option is a 422 naming it, not silently ignored

    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    model: str
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(None, ge=1, le=MAX_OUTPUT_TOKENS)
    seed: int | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None

    @field_validator("stream_options")
    @classmethod
    def _only_when_streaming(cls, value: StreamOptions | None, info: ValidationInfo) -> StreamOptions | None:
        if value is not None and not info.data.get("stream"):
            raise ValueError("stream_options is only allowed when stream is true")
        return value


def _openai_error(status: int, message: str, kind: str, headers: dict[str, str] | None = None,
                  code: str | None = None) -> JSONResponse:
    error = {"message": message, "type": kind, **({"param": None, "code": code} if code else {})}
    return JSONResponse(status_code=status, content={"error": error}, headers=headers)


_PER_MINUTE = {LimitKind.REQUESTS: "requests per min (RPM)", LimitKind.TOKENS: "tokens per min (TPM)"}


def _over_the_limit(model: str, decision: Decision, kind: LimitKind) -> JSONResponse:
    """OpenAI's 429 for a request over its model's `kind` limit: the body names it (`type` requests or tokens)."""
    allowance = decision.allowance(kind)
    requested = 1 if kind is LimitKind.REQUESTS else decision.requested_tokens
    headers = rate_limits.headers(decision)
    retry_after = rate_limits.retry_after(decision)
    if retry_after is None:
        message = (f"Request too large for {model} on {_PER_MINUTE[kind]}: Limit {allowance.limit}, Requested "
                   f"{requested}. The input or max_tokens must be reduced in order to run successfully.")
    else:
        headers["Retry-After"] = retry_after
        message = (f"Rate limit reached for {model} on {_PER_MINUTE[kind]}: Limit {allowance.limit}, Used "
                   f"{allowance.limit - allowance.remaining}, Requested {requested}. Please try again in "
                   f"{rate_limits.openai_duration(decision.retry_after_seconds or 0.0)}.")
    return _openai_error(429, message, kind.value, headers=headers, code="rate_limit_exceeded")


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def _usage(completion: Completion) -> dict:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": completion.cached_tokens},  # as OpenAI: part of prompt_tokens
    }


def _event(payload: dict | str) -> bytes:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()


async def _stream(completion: Completion, model: str, prefill: float, decode: float, include_usage: bool,
                  span: Span) -> AsyncIterator[bytes]:
    """The answer as server-sent events on a fixed schedule from the request's start: content chunk i of n at
    prefill + decode x i / n (the first one is the time to first token), the finish chunk at prefill + decode."""
    start = time.monotonic()
    base = {"id": _completion_id(), "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    extra = {"usage": None} if include_usage else {}  # as OpenAI: every chunk but the last has usage null

    async def until(offset: float) -> None:
        await asyncio.sleep(max(0.0, start + offset - time.monotonic()))

    try:
        pieces = completion.chunks()
        for i, piece in enumerate(pieces):
            await until(prefill + decode * i / len(pieces))
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            yield _event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}], **extra})
        await until(prefill + decode)
        yield _event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": completion.finish_reason}],
                      **extra})
        if include_usage:
            yield _event({**base, "choices": [], "usage": _usage(completion)})
        yield _event("[DONE]")
    finally:
        span.end()


def create_app(settings: Settings | None = None, tracing: tracing_module.Tracing | None = None) -> FastAPI:
    """`tracing`: where spans go (the labs and tests pass an in-memory exporter); default from the environment.
    Each completion is a SERVER span (joining the caller's trace when it sends a traceparent header) holding a
    `chat <model>` span (INTERNAL, GenAI conventions: stack/genai.py) that lasts as long as the simulated generation."""
    settings = settings or Settings.from_env()
    tracing = tracing or tracing_module.setup("llmsim")
    tracer = tracing.tracer("stack.llmsim")
    limits = catalog.load()
    models = limits.models
    faults = FaultState()
    faults.rng.seed(settings.seed)
    prompt_cache = PromptCache(limits.prompt_cache)
    limiter = RateLimiter({name: model.rate_limits for name, model in models.items()})

    registry = CollectorRegistry()
    requests_total = Counter(
        "llmsim_requests", "Chat completions served by the simulated provider.", ["model", "outcome"],
        registry=registry,
    )
    fault_active = Gauge("llmsim_fault_active", "Current value of each fault knob (0 = healthy).", ["fault"],
                         registry=registry)
    ratelimit_limit = Gauge("llmsim_ratelimit_limit", "Each model's per-minute limit, rate_limit_scale applied.",
                            ["model", "kind"], registry=registry)
    ratelimit_remaining = Gauge("llmsim_ratelimit_remaining", "What each model's limit still admits now (the "
                                "x-ratelimit-remaining-* headers).", ["model", "kind"], registry=registry)
    for model in models:
        for outcome in Outcome:
            requests_total.labels(model, outcome.value)

    def refresh_fault_gauge() -> None:
        active = faults.active()
        for knob in FAULT_NAMES:
            fault_active.labels(knob).set(active.get(knob, 0.0))

    def limit_scale(model: str) -> float:
        return faults.current().rate_limit_scale if faults.applies_to(model) else 1.0

    def before_scrape() -> None:
        refresh_fault_gauge()
        for name in models:
            decision = limiter.peek(name, limit_scale(name))
            for kind in LimitKind:
                ratelimit_limit.labels(name, kind.value).set(decision.allowance(kind).limit)
                ratelimit_remaining.labels(name, kind.value).set(decision.allowance(kind).remaining)

    app = FastAPI(title="Simulated LLM provider", version="1.0")
    app.state.registry = registry  # tests read the counters without a scrape
    app.state.prompt_cache = prompt_cache
    install_error_handlers(app, "llmsim")
    add_metrics_route(app, registry, before_scrape=before_scrape)

    @app.get("/health")
    async def health() -> JSONResponse:
        """503 only when every model is out: an outage of some models leaves the provider up (the others answer)."""
        out = faults.models_out(models)
        if out and len(out) == len(models):
            return JSONResponse(status_code=503, content={"status": "outage", "faults": faults.describe()})
        return JSONResponse({"status": "ok", **({"models_out": out} if out else {})})

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "llmsim"} for name in models]}

    @app.get("/faults")
    async def get_faults() -> dict:
        refresh_fault_gauge()
        return faults.describe()

    @app.post("/faults")
    async def set_faults(request: LlmsimFaults) -> dict:
        unknown = sorted(set(request.models or ()) - set(models))
        if unknown:
            raise HTTPException(422, problem(422, f"unknown model(s) {unknown}; known: {sorted(models)}"))
        faults.apply(request)
        refresh_fault_gauge()
        return faults.describe()

    @app.delete("/faults")
    async def heal() -> dict:
        faults.heal()
        refresh_fault_gauge()
        return faults.describe()

    @app.delete("/faults/{knob}")
    async def heal_one(knob: str) -> dict:
        if knob not in KNOB_NAMES:
            raise HTTPException(404, problem(404, f"llmsim has no fault knob {knob!r}; knobs: {', '.join(KNOB_NAMES)}"))
        faults.heal_knob(knob)
        refresh_fault_gauge()
        return faults.describe()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatCompletionRequest) -> Response:
        model = models.get(request.model)
        if model is None:
            return _openai_error(404, f"The model '{request.model}' does not exist; known: {sorted(models)}",
                                 "invalid_request_error")
        prompt_tokens = count_prompt_tokens(m.content for m in request.messages)
        knobs = faults.current()
        in_scope = faults.applies_to(model.name)
        scale = limit_scale(model.name)
        if prompt_tokens > limits.max_prompt_tokens:
            return _openai_error(400, f"messages: prompt is {prompt_tokens} tokens; the limit is "
                                      f"{limits.max_prompt_tokens}", "context_length_exceeded",
                                 headers=rate_limits.headers(limiter.peek(model.name, scale)))
        outcome = faults.draw_outcome(model.name)
        if outcome in (Outcome.OUTAGE, Outcome.RATE_LIMITED):  # answered by the fault, before the limits: takes nothing
            admission = limiter.peek(model.name, scale)
        else:  # counted as OpenAI does, before the answer exists: the prompt plus the most the answer may take
            estimated_tokens = prompt_tokens + (request.max_tokens or model.max_output_tokens)
            admission = limiter.admit(model.name, estimated_tokens, scale)
        if admission.refused_by is not None:
            outcome = Outcome.RATE_LIMITED
        requests_total.labels(model.name, outcome.value).inc()
        refresh_fault_gauge()
        limit_headers = rate_limits.headers(admission)
        if outcome is Outcome.OUTAGE:
            return _openai_error(503, "The provider is unavailable (simulated outage).", "service_unavailable",
                                 headers=limit_headers)
        if admission.refused_by is not None:
            return _over_the_limit(model.name, admission, admission.refused_by)
        if outcome is Outcome.RATE_LIMITED:  # the rate_limit_rate knob: a 429 whatever the limits say
            return _openai_error(429, "Rate limit reached (simulated).", "rate_limit_exceeded",
                                 headers={**limit_headers, "Retry-After": str(knobs.retry_after_seconds)})
        messages = [m.model_dump() for m in request.messages]
        if in_scope and knobs.prompt_cache_off:
            cached_tokens = 0  # the cache is neither read nor filled
        else:
            nonce = uuid.uuid4().hex if in_scope and knobs.cache_busting_nonce else None
            cached_tokens = prompt_cache.use(model.name, messages, nonce=nonce)
        completion = simulate(
            model,
            messages,
            request.max_tokens,
            seed=settings.seed if request.seed is None else request.seed,
            token_multiplier=knobs.token_multiplier if in_scope else 1.0,
            latency_scale=settings.latency_scale,
            cached_tokens=cached_tokens,
            quality_drift=knobs.quality_drift if in_scope else 0.0,
            refusal_share=knobs.refusal_share,
        )
        # Faults on top of the model's own timing (generation.simulate): slow_first_token_seconds is a queue before
        # the prefill (the time to first token grows by it), added_latency_seconds slows the decode (a streamed
        # answer's chunks are spread over decode + added). A non-streamed answer waits prefill + decode, both added.
        added = knobs.added_latency_seconds if in_scope else 0.0
        queued = knobs.slow_first_token_seconds if in_scope else 0.0
        prefill, decode = queued + completion.prefill_seconds, completion.decode_seconds + added
        # INTERNAL: the model's own work inside llmsim's server span; named apart from the gateway's `chat {model}`
        # call span so a trace shows one chat per call (the V4 lab's exported spans use this name too)
        span = tracer.start_span(f"generate {model.name}")
        if span.is_recording():
            span.set_attributes({
                genai.OPERATION_NAME: genai.OPERATION_CHAT, genai.PROVIDER_NAME: genai.PROVIDER,
                genai.REQUEST_MODEL: model.name, genai.RESPONSE_MODEL: model.name,
                genai.USAGE_INPUT_TOKENS: completion.prompt_tokens,
                genai.USAGE_OUTPUT_TOKENS: completion.completion_tokens,
                genai.USAGE_CACHE_READ_INPUT_TOKENS: completion.cached_tokens,
                genai.RESPONSE_FINISH_REASONS: [completion.finish_reason], "llmsim.outcome": outcome.value,
                "llmsim.latency_seconds": completion.latency_seconds, "llmsim.added_latency_seconds": added,
                "llmsim.queued_seconds": queued,
                "llmsim.time_to_first_token_seconds": prefill, "llmsim.stream": request.stream,
                "llmsim.answer": completion.answer.value,
            })
            if outcome is Outcome.ERROR:
                span.set_status(Status(StatusCode.ERROR, "simulated internal error"))
        if outcome is Outcome.ERROR or not request.stream:
            try:
                await asyncio.sleep(prefill + decode)
            finally:
                span.end()
            if outcome is Outcome.ERROR:
                return _openai_error(500, "The provider had an internal error (simulated).", "server_error",
                                     headers=limit_headers)
            return JSONResponse(headers=limit_headers, content={
                "id": _completion_id(),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model.name,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": completion.text},
                    "finish_reason": completion.finish_reason,
                }],
                "usage": _usage(completion),
            })
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        return StreamingResponse(_stream(completion, model.name, prefill, decode, include_usage, span),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **limit_headers})

    tracing_module.instrument_fastapi(app, tracing)
    return app


app = create_app()
