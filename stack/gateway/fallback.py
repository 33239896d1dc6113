"""A request served by the model it asked for or, when that one fails, by the next model of its fallback chain
(catalog.yaml `fallbacks`), each call through that model's circuit breaker (routing.py). Used by chat completions
(chat.py) and by the agent workflow's answer step (workflow.py).

What hands a request over: a failed call (an error, a timeout, an unreachable provider) or an open breaker; not a 429
or a refused request (NOT_A_MODEL_FAILURE: they reach the caller at once). Every call made is booked by `call` (the
first as step `<step>`, the next ones `<step>:fallback<n>`, with the model asked for as `requested_model`);
llm_fallbacks_total counts each hand-over by from_model, to_model and outcome, llm_routed_requests_total the answer by
requested and served model."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from stack.gateway.metrics import GatewayMetrics
from stack.gateway.provider import ProviderError
from stack.gateway.routing import NOT_A_MODEL_FAILURE, CircuitOpen, Router

SUCCESS, ERROR, CIRCUIT_OPEN = "success", "error", "circuit_open"  # outcomes of a hand-over to the next model
T = TypeVar("T")

# call(step, payload with the model to call, requested_model (None: the model asked for), fallback_next)
Call = Callable[[str, dict, str | None, bool], Awaitable[T]]


def step_name(step: str, calls_made: int) -> str:
    return step if calls_made == 0 else f"{step}:fallback{calls_made}"


async def serve_with_fallbacks(router: Router, metrics: GatewayMetrics, requested: str, payload: dict,
                               call: Call[T], step: str) -> tuple[T, str]:
    """`call` on the requested model, then on its fallbacks, until one answers (`fallback_next`: another model follows
    if this one fails). Returns (its result, the model that served). ProviderError when none did: a 429 or a request
    error at once, else the last failure, or a 503 naming the open breakers."""
    previous: str | None = None
    calls_made = 0
    last_error: ProviderError | None = None
    skipped: list[CircuitOpen] = []
    candidates = router.candidates(requested)
    for position, model in enumerate(candidates):
        outcome = SUCCESS
        try:
            async with router.guard(model):
                name = step_name(step, calls_made)
                calls_made += 1
                result = await call(name, {**payload, "model": model}, requested if model != requested else None,
                                    position < len(candidates) - 1)
        except CircuitOpen as refused:
            outcome = CIRCUIT_OPEN
            skipped.append(refused)
        except ProviderError as error:
            outcome = ERROR
            if error.error_type in NOT_A_MODEL_FAILURE:
                raise
            last_error = error
        if previous is not None:
            metrics.record_fallback(previous, model, outcome)
        if outcome == SUCCESS:
            metrics.record_routed(requested, model)
            return result, model
        previous = model
    if last_error is not None:
        raise last_error
    metrics.record_rejection("circuit_open")
    retry_in = min(refused.retry_in_seconds for refused in skipped)
    raise ProviderError("unavailable", f"no model can serve {requested}: the circuit breakers of "
                        f"{', '.join(r.model for r in skipped)} are open after repeated failures; "
                        f"retry in {retry_in:.0f} s", 503, retry_after=str(max(1, round(retry_in))))
