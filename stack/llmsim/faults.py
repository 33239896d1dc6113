"""Runtime fault knobs of the simulated provider, as listed in stack/faults.py (LlmsimFaults). Every fault heals
itself when its duration ends; `draw_outcome` and the knobs' values decide each call's failure."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from stack import faults
from stack.faults import LlmsimFaults


class Outcome(str, Enum):
    OK = "ok"
    ERROR = "error"
    RATE_LIMITED = "rate_limited"
    OUTAGE = "outage"


@dataclass
class Knobs:
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_seconds: int = 2
    added_latency_seconds: float = 0.0
    token_multiplier: float = 1.0
    outage: bool = False
    slow_first_token_seconds: float = 0.0
    prompt_cache_off: bool = False
    cache_busting_nonce: bool = False
    rate_limit_scale: float = 1.0
    quality_drift: float = 0.0
    refusal_share: float = 0.1
    models: frozenset[str] = frozenset()


KNOB_NAMES = faults.knobs_of("llmsim")
SETTING_NAMES = ("retry_after_seconds", "refusal_share")  # settings of other knobs (the 429s, the drifted answers)
FAULT_NAMES = tuple(name for name in KNOB_NAMES if name not in SETTING_NAMES)


@dataclass
class FaultState:
    knobs: Knobs = field(default_factory=Knobs)
    expires_at: float | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def current(self) -> Knobs:
        if self.expires_at is not None and time.monotonic() >= self.expires_at:
            self.heal()
        return self.knobs

    def heal(self) -> None:
        self.knobs = Knobs()
        self.expires_at = None

    def heal_knob(self, name: str) -> None:
        """Put one knob back to its healthy value; with none left on, everything is healed (models included)."""
        setattr(self.current(), name, getattr(Knobs(), name))
        if not self.active():
            self.heal()

    def apply(self, request: LlmsimFaults) -> None:
        knobs = self.current()
        for name in KNOB_NAMES:
            value = getattr(request, name)
            if value is not None:
                setattr(knobs, name, value)
        if request.models is not None:
            knobs.models = frozenset(request.models)
        self.expires_at = time.monotonic() + request.duration_seconds
        if not self.active():
            self.heal()

    def active(self) -> dict[str, float]:
        """The knobs that currently differ from a healthy provider."""
        knobs = self.current()
        values = {
            "error_rate": knobs.error_rate,
            "rate_limit_rate": knobs.rate_limit_rate,
            "added_latency_seconds": knobs.added_latency_seconds,
            "token_multiplier": knobs.token_multiplier if knobs.token_multiplier != 1.0 else 0.0,
            "outage": 1.0 if knobs.outage else 0.0,
            "slow_first_token_seconds": knobs.slow_first_token_seconds,
            "prompt_cache_off": 1.0 if knobs.prompt_cache_off else 0.0,
            "cache_busting_nonce": 1.0 if knobs.cache_busting_nonce else 0.0,
            "rate_limit_scale": knobs.rate_limit_scale if knobs.rate_limit_scale != 1.0 else 0.0,
            "quality_drift": knobs.quality_drift,
        }
        return {name: value for name, value in values.items() if value}

    def applies_to(self, model: str) -> bool:
        models = self.current().models
        return not models or model in models

    def models_out(self, catalog_models: Iterable[str]) -> list[str]:
        """The models the outage knob takes down."""
        return sorted(m for m in catalog_models if self.current().outage and self.applies_to(m))

    def draw_outcome(self, model: str) -> Outcome:
        knobs = self.current()
        if not self.applies_to(model):
            return Outcome.OK
        if knobs.outage:
            return Outcome.OUTAGE
        roll = self.rng.random()
        if roll < knobs.rate_limit_rate:
            return Outcome.RATE_LIMITED
        if roll < knobs.rate_limit_rate + knobs.error_rate:
            return Outcome.ERROR
        return Outcome.OK

    def describe(self) -> dict:
        active = self.active()
        remaining = None if self.expires_at is None else max(0.0, round(self.expires_at - time.monotonic(), 1))
        heals_in = remaining if active else None
        return {
            "service": "llmsim",
            "healthy": not active,
            "active": active,
            "knobs": {name: {"value": getattr(self.knobs, name), "active": name in active,
                             "heals_in_seconds": heals_in if name in active else None} for name in KNOB_NAMES},
            "models": sorted(self.knobs.models) or "all",
            "retry_after_seconds": self.knobs.retry_after_seconds,
            "refusal_share": self.knobs.refusal_share,
            "heals_in_seconds": heals_in,
        }
