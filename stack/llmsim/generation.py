"""Deterministic token counts, reply text and latency for one simulated completion (the text itself:
stack/llmsim/answers.py)."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass

from stack.catalog import Model
from stack.llmsim.answers import AnswerKind, answer_text
from stack.tokens import count_prompt_tokens

MAX_ANSWER_TOKENS = 2000  # the text of a longer answer is cut here (its usage still counts every token)


@dataclass(frozen=True)
class Completion:
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    text: str
    cached_tokens: int  # of prompt_tokens, read from the prompt cache
    prefill_seconds: float  # request in to first token out (time to first token), before any fault
    decode_seconds: float  # first token to last token, before any fault
    answer: AnswerKind = AnswerKind.NORMAL  # what the quality_drift fault made of the text

    @property
    def latency_seconds(self) -> float:
        """The whole call: what a non-streamed answer waits."""
        return self.prefill_seconds + self.decode_seconds

    def chunks(self) -> list[str]:
        """The reply as the streamed content pieces (one word each, the space before it included); joined they are
        `text`."""
        words = self.text.split(" ")
        return [words[0]] + [f" {word}" for word in words[1:]]


def request_rngs(seed: int, model: str, messages: list[dict],
                 max_tokens: int | None) -> tuple[random.Random, random.Random]:
    """The same request with the same seed always gets the same answer: two independent random streams of the
    request, one for the answer's tokens, timing and words, one for what the quality_drift fault does to it (so
    that a draw of the second leaves the first as it was)."""
    digest = hashlib.sha256(json.dumps([seed, model, messages, max_tokens], sort_keys=True).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big")), random.Random(int.from_bytes(digest[8:16], "big"))


def answer_kind(rng: random.Random, quality_drift: float, refusal_share: float) -> AnswerKind:
    """Whether the quality_drift fault spoils this answer: one draw per request, so raising the knob only adds
    drifted answers (the same request keeps its kind), and a share of the drifted ones are refusals."""
    if rng.random() >= quality_drift:
        return AnswerKind.NORMAL
    return AnswerKind.REFUSAL if rng.random() < refusal_share else AnswerKind.DRIFTED


def simulate(
    model: Model,
    messages: list[dict],
    max_tokens: int | None,
    seed: int,
    token_multiplier: float = 1.0,
    latency_scale: float = 1.0,
    cached_tokens: int = 0,
    quality_drift: float = 0.0,
    refusal_share: float = 0.0,
) -> Completion:
    """One completion: its tokens, text and timing, the same for the same request and seed (streamed or not).

    Timing (the model's `latency` in stack/catalog.yaml, times one seeded jitter factor and `latency_scale`):
    prefill = base_seconds + prefill_seconds_per_1k_prompt_tokens x (prompt_tokens - cached_tokens) / 1000 is the
    time to first token; decode = seconds_per_output_token x the output tokens the model wanted (the
    token_multiplier fault inflates the tokens billed, not the time) is the time from first to last token. A
    non-streamed answer waits prefill + decode, as it always did plus the prefill of the prompt (a few ms for the
    usual short prompts). The fault knobs add on top (stack/llmsim/app.py): slow_first_token_seconds to the prefill,
    added_latency_seconds to the decode.

    Text (stack/llmsim/answers.py): about 3 words for 4 output tokens, relevant to the question and grounded in the
    request's passages; `quality_drift` of the requests (a seeded draw per request) get an off-topic answer instead,
    `refusal_share` of those a refusal. Drifted or not, tokens and timing are the same: only the words change."""
    rng, quality_rng = request_rngs(seed, model.name, messages, max_tokens)
    wanted = rng.randint(model.min_output_tokens, model.max_output_tokens)
    latency_tokens = wanted
    wanted = int(wanted * token_multiplier)
    completion_tokens = min(wanted, max_tokens) if max_tokens else wanted
    finish_reason = "length" if max_tokens and wanted > max_tokens else "stop"
    profile = model.latency
    jitter = 1 + profile.jitter * rng.uniform(-1, 1)
    kind = answer_kind(quality_rng, quality_drift, refusal_share)
    word_count = max(1, min(completion_tokens, MAX_ANSWER_TOKENS) * 3 // 4)
    text = answer_text(rng, messages, word_count, kind)
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
        answer=kind,
    )
