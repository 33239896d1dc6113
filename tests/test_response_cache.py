"""The response cache and the stream tally on their own: what is one entry, how long it lives, what is evicted, and
how time to first token and time per output token are measured from the chunks."""

from __future__ import annotations

import pytest

from stack.catalog import ResponseCacheSettings
from stack.gateway.provider import ProviderError
from stack.gateway.response_cache import CachedAnswer, ResponseCache, cache_key
from stack.gateway.streaming import StreamTally, is_usage_only

ANSWER = CachedAnswer(model="sim-fast", text="an answer", finish_reason="stop", input_tokens=10, output_tokens=3,
                      cached_input_tokens=0, cost_usd=0.001)
MESSAGES = [("system", "You are terse."), ("user", "What is a p95?")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_key_ignores_whitespace_but_not_content_model_max_tokens_or_seed() -> None:
    key = cache_key("sim-fast", MESSAGES, None, 7)
    assert cache_key("sim-fast", [("system", "  You are   terse.\n"), ("user", "What is a p95?")], None, 7) == key
    assert cache_key("sim-fast", [("system", "You are terse."), ("user", "What is a p99?")], None, 7) != key
    assert cache_key("sim-fast", [("user", "You are terse."), ("user", "What is a p95?")], None, 7) != key
    assert cache_key("sim-balanced", MESSAGES, None, 7) != key
    assert cache_key("sim-fast", MESSAGES, 100, 7) != key
    assert cache_key("sim-fast", MESSAGES, None, 8) != key


def test_an_answer_lives_for_its_ttl_then_misses() -> None:
    clock = Clock()
    cache = ResponseCache(ResponseCacheSettings(max_entries=10, ttl_seconds=60), clock)
    assert cache.get("k") is None
    cache.put("k", ANSWER)
    clock.now += 59
    assert cache.get("k") == ANSWER
    clock.now += 2
    assert cache.get("k") is None and len(cache) == 0
    assert (cache.hits, cache.misses) == (1, 2) and cache.hit_ratio() == pytest.approx(1 / 3)


def test_the_least_recently_used_answer_is_evicted_at_the_bound() -> None:
    cache = ResponseCache(ResponseCacheSettings(max_entries=2, ttl_seconds=60), Clock())
    cache.put("a", ANSWER)
    cache.put("b", ANSWER)
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("c", ANSWER)
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") and cache.get("c")


def _chunk(content: str | None = None, finish: str | None = None, usage: dict | None = None) -> dict:
    choices = [] if usage else [{"index": 0, "delta": {"content": content} if content else {},
                                 "finish_reason": finish}]
    return {"model": "sim-fast", "choices": choices, "usage": usage}


def test_the_tally_measures_first_token_and_time_per_output_token_from_content_chunks() -> None:
    tally = StreamTally(started=10.0)
    assert not tally.observe({"model": "sim-fast", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}, 10.1)
    assert tally.observe(_chunk("Hello"), 10.5)
    assert tally.observe(_chunk(" world"), 10.6)
    assert tally.observe(_chunk(" again"), 10.9)
    assert not tally.observe(_chunk(finish="stop"), 11.5)  # the finish chunk carries no content: not the decode
    usage = {"prompt_tokens": 20, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 8}}
    last = _chunk(usage=usage)
    assert is_usage_only(last) and not tally.observe(last, 11.6)
    assert tally.time_to_first_token == pytest.approx(0.5)
    assert tally.time_per_output_token(5) == pytest.approx(0.4 / 4)
    assert tally.time_per_output_token(1) is None
    assert tally.text == "Hello world again" and tally.finish_reason == "stop"
    assert tally.usage is not None and tally.usage.cached_input_tokens == 8


def test_an_impossible_usage_is_a_bad_response() -> None:
    with pytest.raises(ProviderError) as error:
        StreamTally(0.0).observe(_chunk(usage={"prompt_tokens": 5, "completion_tokens": 1,
                                               "prompt_tokens_details": {"cached_tokens": 9}}), 1.0)
    assert error.value.error_type == "bad_response"
