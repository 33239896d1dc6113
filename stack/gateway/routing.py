"""Which model serves a chat call: the requested one, or the next of its fallbacks (stack/catalog.yaml) when a call
fails or the model's circuit breaker is open.

One circuit breaker per model that has fallbacks (purgatory's asyncio breaker; thresholds in catalog.yaml
`circuit_breaker`). A model with no fallback (the last resort, sim-fast) has none: with nowhere else to send its
callers, every call is tried and gets the provider's own answer, as before.
- closed: calls go through; `failure_threshold` failed calls in a row open it;
- opened: calls to the model are refused at once (CircuitOpen) and go to its fallbacks, for `reset_seconds`;
- half-opened: the first call after that goes through: a success closes the breaker, a failure opens it again.
A 429 (the caller's rate, not the model's health) does not count as a failure, nor does a call that never reached
the provider.

Degradation tier (gateway-wide, `llm_degradation_tier`, read at each scrape):
  1 full service: every breaker is closed;
  2 degraded: some breaker is open or half-open: those models' calls are served by their fallbacks;
  3 last resort only: every breaker is open: every call is served by the models without fallbacks (the cheapest);
  4 cache only: that, and most recent calls to the last-resort models fail too: only cached answers succeed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from stack.catalog import Catalog
from stack.gateway.provider import ProviderError

CLOSED, OPENED, HALF_OPENED = "closed", "opened", "half-opened"  # purgatory's names
NOT_A_MODEL_FAILURE = frozenset({"rate_limited"})
TIER_FULL, TIER_DEGRADED, TIER_LAST_RESORT, TIER_CACHE_ONLY = 1, 2, 3, 4
TIER_NAMES = {TIER_FULL: "full service", TIER_DEGRADED: "degraded (fallbacks serve some models)",
              TIER_LAST_RESORT: "last resort only", TIER_CACHE_ONLY: "cache only"}


class CircuitOpen(Exception):
    """The model's breaker refused the call: it is opened (until `retry_in_seconds`)."""

    def __init__(self, model: str, retry_in_seconds: float) -> None:
        super().__init__(f"circuit breaker of {model} is open (failing calls); retried in {retry_in_seconds:.0f} s")
        self.model = model
        self.retry_in_seconds = retry_in_seconds


class Router:
    def __init__(self, catalog: Catalog, on_transition: Any = None) -> None:
        """`on_transition(model, old_state, new_state)`: called on every breaker state change."""
        self.chains = {name: (name, *model.fallbacks) for name, model in catalog.models.items()}
        self.reset_seconds = catalog.circuit_breaker.reset_seconds
        self.breakers = AsyncCircuitBreakerFactory(
            default_threshold=catalog.circuit_breaker.failure_threshold, default_ttl=self.reset_seconds,
            exclude=[(ProviderError, lambda error: error.error_type in NOT_A_MODEL_FAILURE)])
        self.states: dict[str, str] = {name: CLOSED for name, model in catalog.models.items() if model.fallbacks}
        self.last_resort = tuple(name for name, model in catalog.models.items() if not model.fallbacks)
        self.opened_at: dict[str, float] = {}
        self._on_transition = on_transition
        self.breakers.add_listener(self._hook)

    def candidates(self, model: str) -> tuple[str, ...]:
        """The requested model, then its fallbacks in order."""
        return self.chains[model]

    @asynccontextmanager
    async def guard(self, model: str) -> AsyncIterator[None]:
        """A call to `model` through its breaker: CircuitOpen when it refuses; a ProviderError raised inside counts
        as a failure (but a 429), a normal exit as a success."""
        if model not in self.states:  # no fallback, no breaker
            yield
            return
        breaker = await self.breakers.get_breaker(model)
        try:
            async with breaker:
                yield
        except OpenedState:
            opened = self.opened_at.get(model, time.time())
            raise CircuitOpen(model, max(0.0, opened + self.reset_seconds - time.time())) from None

    def tier(self, failing: Callable[[str], bool]) -> int:
        """`failing(model)`: whether most recent calls to that model failed (stack/gateway/outcomes.py)."""
        if all(state == CLOSED for state in self.states.values()):
            return TIER_FULL
        if any(state != OPENED for state in self.states.values()):
            return TIER_DEGRADED
        return TIER_CACHE_ONLY if all(failing(model) for model in self.last_resort) else TIER_LAST_RESORT

    def open_breakers(self) -> list[str]:
        return sorted(model for model, state in self.states.items() if state == OPENED)

    def _hook(self, name: str, event_type: str, event: Any) -> None:
        if event_type != "state_changed" or name not in self.states:
            return
        old, new = self.states[name], str(event.state)
        self.states[name] = new
        if new == OPENED:
            self.opened_at[name] = event.opened_at or time.time()
        if old != new and self._on_transition is not None:
            self._on_transition(name, old, new)
