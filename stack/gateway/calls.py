"""One provider call, end to end: metrics, attribution row and log line are written for every outcome."""

from __future__ import annotations

import time
from dataclasses import dataclass

from stack import catalog as catalog_module
from stack.gateway.logs import get_logger, user_hash
from stack.gateway.metrics import GatewayMetrics
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


class CallRecorder:
    def __init__(self, provider: ProviderClient, metrics: GatewayMetrics, store: AttributionStore,
                 user_hash_salt: str) -> None:
        self.provider = provider
        self.metrics = metrics
        self.store = store
        self.user_hash_salt = user_hash_salt
        self.log = get_logger()

    async def call(self, caller: Caller, step: str, payload: dict) -> CallResult:
        model = payload["model"]
        started = time.perf_counter()
        if self.metrics.enabled:
            self.metrics.in_flight.inc()
        try:
            reply = await self.provider.chat(payload, headers={"X-Request-ID": caller.request_id})
        except ProviderError as error:
            self._book(caller, step, model, time.perf_counter() - started, None, 0.0, error)
            raise
        finally:
            if self.metrics.enabled:
                self.metrics.in_flight.dec()
        duration = time.perf_counter() - started
        cost = catalog_module.cost_usd(model, reply.input_tokens, reply.output_tokens)
        self._book(caller, step, model, duration, reply, cost, None)
        return CallResult(reply=reply, cost_usd=cost, duration_seconds=duration)

    def _book(self, caller: Caller, step: str, model: str, duration: float, reply: ProviderReply | None,
              cost: float, error: ProviderError | None) -> None:
        input_tokens = reply.input_tokens if reply else 0
        output_tokens = reply.output_tokens if reply else 0
        status = "success" if error is None else "error"
        error_type = error.error_type if error else None
        self.metrics.record_call(model, caller.department, duration, error is None, input_tokens, output_tokens,
                                 cost, error_type)
        self.store.add(CallRecord(
            request_id=caller.request_id, step=step, ts=time.time(), user_id=caller.user_id,
            department=caller.department, application=caller.application, model=model,
            input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost, duration_seconds=duration,
            status=status, error_type=error_type, synthetic=caller.synthetic,
        ))
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
