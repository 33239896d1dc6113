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
    cached_tokens: int  # of prompt_tokens, read from the prompt cache
    prefill_seconds: float  # request in to first token out (time to first token), before any fault
    decode_seconds: float  # first token to last token, before any fault

    @property
    def latency_seconds(self) -> float:
        """The whole call: what a non-streamed answer waits."""
        return self.prefill_seconds + self.decode_seconds

    def chunks(self) -> list[str]:
        """The reply as the streamed content pieces (one word each, the space before it included); joined they are
        `text`."""
        words = self.text.split(" ")
        return [words[0]] + [f" {word}" for word in words[1:]]


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
    cached_tokens: int = 0,
) -> Completion:
    """One completion: its tokens, text and timing, the same for the same request and seed (streamed or not).

    Timing (the model's `latency` in stack/catalog.yaml, times one seeded jitter factor and `latency_scale`):
    prefill = base_seconds + prefill_seconds_per_1k_prompt_tokens x (prompt_tokens - cached_tokens) / 1000 is the
    time to first token; decode = seconds_per_output_token x the output tokens the model wanted (the
    token_multiplier fault inflates the tokens billed, not the time) is the time from first to last token. A
    non-streamed answer waits prefill + decode, as it always did plus the prefill of the prompt (a few ms for the
    usual short prompts). The fault knobs add on top (stack/llmsim/app.py): slow_first_token_seconds to the prefill,
    added_latency_seconds to the decode."""
    rng = request_rng(seed, model.name, messages, max_tokens)
    wanted = rng.randint(model.min_output_tokens, model.max_output_tokens)
    latency_tokens = wanted
    wanted = int(wanted * token_multiplier)
    completion_tokens = min(wanted, max_tokens) if max_tokens else wanted
    finish_reason = "length" if max_tokens and wanted > max_tokens else "stop"
    profile = model.latency
    jitter = 1 + profile.jitter * rng.uniform(-1, 1)
    text = _reply_text(rng, min(completion_tokens, 2000))
    prompt_tokens = count_prompt_tokens(m.get("content") for m in messages)
    cached_tokens = min(max(0, cached_tokens), prompt_tokens)
    uncached = prompt_tokens - cached_tokens  # a prompt prefix from the prompt cache is not computed again
    prefill = (profile.base_seconds + profile.prefill_seconds_per_1k_prompt_tokens * uncached / 1000)
    decode = profile.seconds_per_output_token * latency_tokens
    scale = jitter * latency_scale
    return Completion(
        prompt_tokens=prompt_tokens,
        cached_tokens=cached_tokens,
        completion_tokens=completion_tokens,
        finish_reason=finish_reason,
        text=text,
        prefill_seconds=max(0.0, prefill * scale),
        decode_seconds=max(0.0, decode * scale),
    )
