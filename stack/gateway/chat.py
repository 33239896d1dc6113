"""POST /v1/chat/completions after its checks: the monthly budget, the response cache, then the provider call
(streamed or not).

    request ──► monthly budget (budget.py): within it │ over it: 402 (refuse) or the cheapest model (downgrade)
            ──► prompt_template_change knob (a fault: a unique token in the system prompt)
            ──► response cache: bypass (no seed, or "cache": {"no-cache": true}) │ hit ─► answered from the cache
            ──► miss ──► the requested model, then its fallbacks, each through its circuit breaker (fallback.py):
                         provider call, streamed (streamed_call.py) or not (calls.py) ──► kept in the cache if complete

A failed call (an error, a timeout, an unreachable provider; not a 429) or an open breaker hands the request to the
next model of the chain; every call made is booked (the first as step `chat`, the next ones `chat:fallback<n>`, with
`requested_model`), and llm_fallbacks_total counts each hand-over by from_model, to_model and outcome. A stream
falls back only before its first chunk.

Every answer says how the cache treated it in `X-Cache` (HIT, MISS or BYPASS). A hit is booked like a call - one row,
one log line - with cost 0 and the cost it saved, and counted in llm_response_cache_hits_total (not in
llm_requests_total: no provider call was made)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi.responses import JSONResponse, Response
from opentelemetry import trace

from stack.gateway import streamed_call
from stack.gateway.budget import DepartmentBudgets
from stack.gateway.calls import Caller, CallRecorder, Outcome
from stack.gateway.faults import FaultState
from stack.gateway.response_cache import (BYPASS_NO_SEED, BYPASS_REQUESTED, CachedAnswer, ResponseCache,
                                          cache_key)
from stack.gateway.fallback import serve_with_fallbacks
from stack.gateway.routing import Router
from stack.gateway.schemas import ChatRequest
from stack.gateway.streaming import replay
from stack.web import ClosingStreamingResponse

STEP = "chat"
CACHEABLE_FINISH_REASONS = frozenset({"stop", "length"})
HIT, MISS, BYPASS = "HIT", "MISS", "BYPASS"
T = TypeVar("T")


def with_template_nonce(messages: list[dict], nonce: str | None) -> list[dict]:
    """The prompt_template_change knob: the system prompt (a new one when there is none) starts with `nonce`."""
    if nonce is None:
        return messages
    tag = f"[template {nonce}]"
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "content": f"{tag} {messages[0]['content']}"}, *messages[1:]]
    return [{"role": "system", "content": tag}, *messages]


class ChatCompletions:
    def __init__(self, recorder: CallRecorder, cache: ResponseCache, knobs: FaultState, router: Router,
                 budgets: DepartmentBudgets) -> None:
        self.recorder, self.cache, self.knobs, self.router, self.budgets = recorder, cache, knobs, router, budgets
        self.metrics = recorder.metrics

    async def answer(self, caller: Caller, body: ChatRequest) -> Response:
        """ProviderError reaches the route when the provider fails before anything was sent; OverBudget (402) when
        the department has spent its monthly budget and the policy refuses."""
        # Before the cache: the budget decides which model serves the request, and the cache key holds the model, so a
        # downgraded request reads and stores answers of the model that really answers it.
        asked_for = body.model
        decision = self.budgets.admit(caller.department, body.model, caller.request_id)
        body = body.model_copy(update={"model": decision.model})
        started = time.perf_counter()
        payload = body.model_dump(include={"model", "messages", "max_tokens", "seed"}, exclude_none=True)
        payload["messages"] = with_template_nonce(payload["messages"], self.knobs.template_nonce())
        key = self._lookup_key(body, payload)
        cached = self.cache.get(key) if key else None
        state = BYPASS if key is None else HIT if cached else MISS
        server_span = trace.get_current_span()
        if server_span.is_recording():
            server_span.set_attribute("llm.response_cache", state.lower())
        headers = {"X-Request-ID": caller.request_id, "X-Cache": state, **decision.headers()}
        if cached is not None:
            return self._hit(caller, body, cached, started, headers)
        if key is not None:
            self.metrics.record_cache_miss(body.model)
        keep = (lambda answer: self._keep(key, answer)) if key else None
        if body.stream:
            streamed, served = await self._route(caller, body.model, payload, lambda step, routed, requested, more:
                                                 streamed_call.open_stream(self.recorder, caller, step, routed,
                                                                           requested, more))
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return streamed_call.response(streamed, include_usage, {**headers, "X-Served-Model": served}, keep)
        result, served = await self._route(caller, body.model, payload, lambda step, routed, requested, more:
                                           self.recorder.call(caller, step, routed, requested, more,
                                                              evaluated=True))
        headers["X-Served-Model"] = served
        reply = result.reply
        if keep is not None:
            reasons = reply.body.get("choices", [{}])[0].get("finish_reason")
            keep(CachedAnswer(model=served, text=reply.text, finish_reason=str(reasons or "stop"),
                              input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                              cached_input_tokens=reply.cached_input_tokens, cost_usd=result.cost_usd))
        content = dict(reply.body)
        content["gateway"] = {"request_id": caller.request_id, "cost_usd": result.cost_usd,
                              "duration_seconds": round(result.duration_seconds, 4), "cache": state.lower(),
                              "requested_model": asked_for, "served_model": served, **decision.report()}
        return JSONResponse(content, headers=headers)

    async def _route(self, caller: Caller, requested: str, payload: dict,
                     call: Callable[[str, dict, str | None, bool], Awaitable[T]]) -> tuple[T, str]:
        return await serve_with_fallbacks(self.router, self.metrics, requested, payload, call, STEP)

    def _lookup_key(self, body: ChatRequest, payload: dict) -> str | None:
        """The cache key, or None when the request bypasses the cache (counted by reason)."""
        if body.cache is not None and body.cache.no_cache:
            self.metrics.record_cache_bypass(BYPASS_REQUESTED)
            return None
        if body.seed is None:
            self.metrics.record_cache_bypass(BYPASS_NO_SEED)
            return None
        messages = [(m["role"], m["content"]) for m in payload["messages"]]
        return cache_key(body.model, messages, body.max_tokens, body.seed)

    def _keep(self, key: str, answer: CachedAnswer) -> None:
        if answer.finish_reason in CACHEABLE_FINISH_REASONS:
            self.cache.put(key, answer)

    def _hit(self, caller: Caller, body: ChatRequest, answer: CachedAnswer, started: float,
             headers: dict[str, str]) -> Response:
        self.recorder.book(caller, STEP, body.model, Outcome(
            time.perf_counter() - started, finish_reason=answer.finish_reason, streamed=body.stream, cache_hit=True,
            saved_input_tokens=answer.input_tokens, saved_output_tokens=answer.output_tokens,
            saved_cost_usd=answer.cost_usd))
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = replay(answer, include_usage)

            async def stream():  # noqa: ANN202
                for event in events:
                    yield event

            async def nothing() -> None:
                return None

            return ClosingStreamingResponse(stream(), on_close=nothing, media_type="text/event-stream",
                                            headers={"Cache-Control": "no-cache", **headers})
        return JSONResponse({
            "id": f"chatcmpl-cache-{secrets.token_hex(8)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": answer.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                         "finish_reason": answer.finish_reason}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
                      "prompt_tokens_details": {"cached_tokens": 0}},
            "gateway": {"request_id": caller.request_id, "cost_usd": 0.0, "duration_seconds":
                        round(time.perf_counter() - started, 4), "cache": "hit",
                        "saved_cost_usd": answer.cost_usd},
        }, headers=headers)
