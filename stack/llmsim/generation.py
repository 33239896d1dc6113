"""Deterministic token counts, reply text and latency for one simulated completion."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass

from stack.catalog import Model
from stack.tokens import count_prompt_tokens

_WORDS = (
    "latency tokens budget model provider gateway request trace metric alert cost department "
    "quantile histogram label series scrape rule route receiver dashboard signal error ratio"
).split()


@dataclass(frozen=True)
class Completion:
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    text: str
    latency_seconds: float


def request_rng(seed: int, model: str, messages: list[dict], max_tokens: int | None) -> random.Random:
    """The same request with the same seed always gets the same answer."""
    digest = hashlib.sha256(json.dumps([seed, model, messages, max_tokens], sort_keys=True).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _reply_text(rng: random.Random, completion_tokens: int) -> str:
    word_count = max(1, completion_tokens * 3 // 4)
    return " ".join(rng.choice(_WORDS) for _ in range(word_count)).capitalize() + "."


def simulate(
    model: Model,
    messages: list[dict],
    max_tokens: int | None,
    seed: int,
    token_multiplier: float = 1.0,
    latency_scale: float = 1.0,
) -> Completion:
    rng = request_rng(seed, model.name, messages, max_tokens)
    wanted = rng.randint(model.min_output_tokens, model.max_output_tokens)
    latency_tokens = wanted
    wanted = int(wanted * token_multiplier)
    completion_tokens = min(wanted, max_tokens) if max_tokens else wanted
    finish_reason = "length" if max_tokens and wanted > max_tokens else "stop"
    profile = model.latency
    jitter = 1 + profile.jitter * rng.uniform(-1, 1)
    latency = (profile.base_seconds + profile.seconds_per_output_token * latency_tokens) * jitter * latency_scale
    return Completion(
        prompt_tokens=count_prompt_tokens(m.get("content") for m in messages),
        completion_tokens=completion_tokens,
        finish_reason=finish_reason,
        text=_reply_text(rng, min(completion_tokens, 2000)),
        latency_seconds=max(0.0, latency),
    )
