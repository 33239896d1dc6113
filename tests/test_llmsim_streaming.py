"""The simulated provider speaks LLM: streamed answers (server-sent events, OpenAI's chunk format), a time to first
token that grows with the prompt, a per-token decode time, all in process and reproducible with the seed; a prompt
cache that bills a recently seen prompt prefix as cached input tokens, at the catalog's cached-input price; and the
fault knobs that break both (stack/faults.py)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from stack import catalog, faults, tracing
from stack.llmsim.app import create_app as create_llmsim
from stack.catalog import PromptCacheSettings
from stack.llmsim.generation import simulate
from stack.llmsim.prompt_cache import PromptCache
from stack.llmsim.settings import Settings as LlmsimSettings

QUESTION = "Explain the difference between a counter and a gauge."


def _app(latency_scale: float = 0.0, seed: int = 7) -> FastAPI:
    return create_llmsim(LlmsimSettings(seed=seed, latency_scale=latency_scale),
                         tracing=tracing.setup("llmsim", enabled=False))


def _body(model: str = "sim-balanced", prompt: str = QUESTION, system: str | None = None, **extra: object) -> dict:
    messages = [{"role": "system", "content": system}] if system is not None else []
    return {"model": model, "messages": [*messages, {"role": "user", "content": prompt}], "seed": 11, **extra}


def _events(text: str) -> list[dict | str]:
    """The `data:` payloads of a server-sent event stream, in order; every event is one `data:` line."""
    blocks = [block for block in text.split("\n\n") if block.strip()]
    assert all(block.startswith("data: ") and "\n" not in block for block in blocks), blocks[:3]
    payloads = [block.removeprefix("data: ") for block in blocks]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]


def _stream(client: TestClient, body: dict) -> list[dict | str]:
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return _events(response.text)


async def _timed_post(app: FastAPI, body: dict) -> tuple[float, list[tuple[float, bytes]]]:
    """POST straight into the ASGI app and note when each piece of the body is sent (no client buffers the stream):
    the request's start and [(seconds since start, bytes)]."""
    data = json.dumps(body).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 50000), "server": ("llmsim.test", 80),
             "headers": [(b"host", b"llmsim.test"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(data)).encode())]}
    sent = False
    pieces: list[tuple[float, bytes]] = []
    start = time.monotonic()

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        await asyncio.Event().wait()  # the client never hangs up
        raise AssertionError

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200
        elif message["type"] == "http.response.body" and message.get("body"):
            pieces.append((time.monotonic() - start, message["body"]))

    await app(scope, receive, send)
    return start, pieces


def _ttft_and_total(app: FastAPI, body: dict) -> tuple[float, float]:
    """Real time to the first content chunk and to the end of the stream."""
    _, pieces = asyncio.run(_timed_post(app, body))
    first = next(at for at, data in pieces if b'"content"' in data)
    assert b"data: [DONE]" in pieces[-1][1]
    return first, pieces[-1][0]


# ---------------------------------------------------------------------------------------------- streaming

def test_a_streamed_answer_is_sse_chunks_in_order_ending_with_done() -> None:
    with TestClient(_app()) as client:
        whole = client.post("/v1/chat/completions", json=_body()).json()
        events = _stream(client, _body(stream=True))
    assert events[-1] == "[DONE]" and "[DONE]" not in events[:-1]
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "sim-balanced" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1, "every chunk of one answer carries the same id"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c["choices"][0]["delta"]["content"] for c in chunks[:-1]]
    assert len(content) > 3 and all(content), "one content chunk per word"
    assert "".join(content) == whole["choices"][0]["message"]["content"], "the same answer, in order"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    last = chunks[-1]["choices"][0]
    assert last["delta"] == {} and last["finish_reason"] == whole["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks), "no usage unless stream_options.include_usage"


def test_include_usage_adds_a_final_usage_chunk_equal_to_the_non_streamed_usage() -> None:
    with TestClient(_app()) as first, TestClient(_app()) as second:
        whole = first.post("/v1/chat/completions", json=_body(max_tokens=40)).json()
        events = _stream(second, _body(max_tokens=40, stream=True, stream_options={"include_usage": True}))
    assert events[-1] == "[DONE]"
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["object"] == "chat.completion.chunk"
    assert usage_chunk["usage"] == whole["usage"]
    assert usage_chunk["usage"]["completion_tokens"] == 40
    assert events[-3]["choices"][0]["finish_reason"] == "length"
    assert all(c["usage"] is None for c in events[:-2]), "as OpenAI: usage is null on every other chunk"


@pytest.mark.parametrize(("extra", "field"), [
    ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"stream": True, "stream_options": {"include_usage": True, "continuous_usage": True}},
     "stream_options.continuous_usage"),
    ({"stream": True, "stream_options": "include_usage"}, "stream_options"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"stream": "yes"}, "stream"),
])
def test_a_malformed_stream_request_is_a_422_naming_the_field(extra: dict, field: str) -> None:
    with TestClient(_app()) as client:
        response = client.post("/v1/chat/completions", json=_body(**extra))
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]
    assert field.split(".")[-1] in response.json()["error"]["message"]


# ---------------------------------------------------------------------------------------------- timing

def test_time_to_first_token_is_real_shorter_than_the_stream_and_grows_with_the_prompt() -> None:
    app = _app(latency_scale=1.0)
    short_first, short_total = _ttft_and_total(app, _body("sim-fast", stream=True))
    long_prompt = "word " * 7_200  # 36000 characters, about 9000 tokens to prefill
    long_first, long_total = _ttft_and_total(app, _body("sim-fast", prompt=long_prompt, stream=True))
    assert 0.02 < short_first < short_total, (short_first, short_total)
    assert long_first < long_total
    assert long_first > short_first + 0.15, f"a 9000-token prompt takes longer to prefill: {short_first} {long_first}"


def test_prefill_and_decode_are_per_model_reproducible_and_distinct() -> None:
    models = catalog.load().models
    messages = [{"role": "user", "content": QUESTION}]
    long = [{"role": "user", "content": "word " * 8000}]
    for name, model in models.items():
        first, again = simulate(model, messages, None, seed=3), simulate(model, messages, None, seed=3)
        assert (first.prefill_seconds, first.decode_seconds) == (again.prefill_seconds, again.decode_seconds)
        assert first.prefill_seconds > 0 and first.decode_seconds > 0
        assert simulate(model, long, None, seed=3).prefill_seconds > first.prefill_seconds * 1.5, name
        per_token = first.decode_seconds / first.completion_tokens
        assert per_token < first.prefill_seconds, "one output token is much faster than the time to the first"
    fast, slow = (simulate(models[m], long, None, seed=3) for m in ("sim-fast", "sim-reasoning"))
    assert slow.prefill_seconds > 3 * fast.prefill_seconds
    assert slow.decode_seconds / slow.completion_tokens > 3 * fast.decode_seconds / fast.completion_tokens
    # a non-streamed answer (prefill + decode) takes as long as before streaming on average for a usual prompt:
    # (base_seconds + seconds_per_output_token x output tokens) x jitter, mean jitter 1
    for model in models.values():
        mean = statistics.fmean(simulate(model, messages, None, seed=s).latency_seconds for s in range(400))
        profile = model.latency
        before = profile.base_seconds + profile.seconds_per_output_token * (
            model.min_output_tokens + model.max_output_tokens) / 2
        assert mean == pytest.approx(before, rel=0.05), model.name



# ---------------------------------------------------------------------------------------------- prompt caching

SYSTEM = "You are the support assistant of an observability course. Answer briefly and cite the runbook. " * 4


def test_a_repeated_system_prompt_is_billed_as_cached_input_tokens_at_a_lower_cost() -> None:
    system_tokens = len(SYSTEM) // 4 + 4  # stack/tokens.py: four characters a token, four a message
    with TestClient(_app()) as client:
        first = client.post("/v1/chat/completions", json=_body(system=SYSTEM)).json()["usage"]
        second = client.post("/v1/chat/completions", json=_body(prompt="What is a histogram?", system=SYSTEM)).json()
        streamed = _stream(client, _body(prompt="And a summary?", system=SYSTEM, stream=True,
                                         stream_options={"include_usage": True}))[-2]["usage"]
        other_model = client.post("/v1/chat/completions", json=_body("sim-fast", system=SYSTEM)).json()["usage"]
    usage = second["usage"]
    assert first["prompt_tokens_details"] == {"cached_tokens": 0}, "nothing seen yet"
    assert usage["prompt_tokens_details"]["cached_tokens"] == system_tokens < usage["prompt_tokens"]
    assert streamed["prompt_tokens_details"]["cached_tokens"] == system_tokens, "streamed answers report it too"
    assert other_model["prompt_tokens_details"]["cached_tokens"] == 0, "each model has its own cache"
    tokens = (usage["prompt_tokens"], usage["completion_tokens"])
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    assert catalog.cost_usd("sim-balanced", *tokens, cached) < catalog.cost_usd("sim-balanced", *tokens)


def test_cached_input_is_priced_at_a_discount_in_the_catalog() -> None:
    for name, model in catalog.load().models.items():
        assert 0.1 * model.input_price_per_million <= model.cached_input_price_per_million \
            <= 0.5 * model.input_price_per_million, name
        assert catalog.cost_usd(name, 1_000_000, 0, cached_input_tokens=1_000_000) == pytest.approx(
            model.cached_input_price_per_million)
        assert catalog.cost_usd(name, 1_000_000, 0, 400_000) == pytest.approx(
            0.6 * model.input_price_per_million + 0.4 * model.cached_input_price_per_million)
        assert catalog.cost_usd(name, 100, 10) == catalog.cost_usd(name, 100, 10, 0), "callers without it keep working"
    with pytest.raises(ValueError, match="cached_input_tokens"):
        catalog.cost_usd("sim-fast", 10, 0, 11)


def test_a_cached_prefix_lowers_the_time_to_first_token() -> None:
    model = catalog.load().models["sim-reasoning"]
    messages = [{"role": "system", "content": "word " * 4000}, {"role": "user", "content": QUESTION}]
    cold, warm = simulate(model, messages, None, seed=3), simulate(model, messages, None, seed=3, cached_tokens=5004)
    assert warm.prefill_seconds < cold.prefill_seconds / 3 and warm.decode_seconds == cold.decode_seconds
    assert warm.text == cold.text and warm.cached_tokens == 5004
    # and on a real stream: the second call with the same 8000-token system prompt prefills only the question
    app = _app(latency_scale=1.0)
    long_system = "word " * 6400
    cold_first, _ = _ttft_and_total(app, _body("sim-fast", system=long_system, stream=True))
    warm_first, _ = _ttft_and_total(app, _body("sim-fast", prompt="Another question?", system=long_system,
                                               stream=True))
    assert warm_first < cold_first - 0.1, (cold_first, warm_first)


def test_the_prompt_cache_is_bounded_and_forgets_after_its_ttl() -> None:
    now = [0.0]
    cache = PromptCache(PromptCacheSettings(max_entries=2, ttl_seconds=60, min_prefix_tokens=32),
                        clock=lambda: now[0])
    system = {"role": "system", "content": SYSTEM}

    def ask(system_message: dict, question: str) -> int:
        return cache.use("sim-fast", [system_message, {"role": "user", "content": question}])

    assert ask(system, "a") == 0 and ask(system, "b") > 0
    assert len(cache) <= 2
    assert cache.use("sim-fast", [{"role": "user", "content": SYSTEM}]) == 0, "the last message is never cached"
    now[0] += 61
    assert ask(system, "c") == 0, "expired"
    for other in range(3):  # three other system prompts push it out of a cache of two entries
        ask({"role": "system", "content": f"{other} {SYSTEM}"}, "x")
    assert ask(system, "d") == 0 and len(cache) <= 2, "evicted, least recently used first"
    assert ask({"role": "system", "content": "short"}, "e") == 0 and ask({"role": "system", "content": "short"}, "f") \
        == 0, "prefixes under min_prefix_tokens are not cached"


# ---------------------------------------------------------------------------------------------- fault knobs

def _cached(client: TestClient, question: str) -> int:
    response = client.post("/v1/chat/completions", json=_body(prompt=question, system=SYSTEM))
    assert response.status_code == 200, response.text
    return response.json()["usage"]["prompt_tokens_details"]["cached_tokens"]


def test_slow_first_token_delays_the_first_chunk_of_the_chosen_models_only() -> None:
    app = _app(latency_scale=0.0)  # the knobs' time only
    with TestClient(app) as client:
        on = client.post("/faults", json={"slow_first_token_seconds": 0.4, "models": ["sim-fast"]})
        assert on.status_code == 200 and on.json()["active"] == {"slow_first_token_seconds": 0.4}
        slow_first, slow_total = _ttft_and_total(app, _body("sim-fast", stream=True))
        other_first, _ = _ttft_and_total(app, _body("sim-balanced", stream=True))
        assert slow_first >= 0.4 and other_first < 0.2, (slow_first, other_first)
        # added_latency_seconds slows the decode instead: the first token comes at once, the last one later
        client.post("/faults", json={"added_latency_seconds": 0.4, "slow_first_token_seconds": 0, "models": []})
        decode_first, decode_total = _ttft_and_total(app, _body("sim-fast", stream=True))
        assert decode_first < 0.2 and decode_total >= 0.4, (decode_first, decode_total)
        assert client.delete("/faults").json()["healthy"]


def test_prompt_cache_off_and_cache_busting_nonce_stop_prefix_reuse_and_heal() -> None:
    with TestClient(_app()) as client:
        assert _cached(client, "first") == 0 and _cached(client, "second") > 0
        assert client.post("/faults", json={"prompt_cache_off": True}).json()["active"] == {"prompt_cache_off": 1.0}
        assert _cached(client, "third") == 0
        client.delete("/faults/prompt_cache_off")
        assert _cached(client, "fourth") > 0, "healed: the prefix cached before is found again"
        assert client.post("/faults", json={"cache_busting_nonce": True, "models": ["sim-balanced"]}).status_code == 200
        assert _cached(client, "fifth") == 0 and _cached(client, "fifth") == 0, "a new nonce every request"
        other = client.post("/v1/chat/completions", json=_body("sim-fast", prompt="x", system=SYSTEM)).json()
        client.post("/v1/chat/completions", json=_body("sim-fast", prompt="y", system=SYSTEM))
        again = client.post("/v1/chat/completions", json=_body("sim-fast", prompt="z", system=SYSTEM)).json()
        assert other["usage"]["prompt_tokens_details"]["cached_tokens"] == 0 < \
            again["usage"]["prompt_tokens_details"]["cached_tokens"], "models outside the selector keep their cache"
        client.delete("/faults")
        assert _cached(client, "sixth") > 0


@pytest.mark.parametrize(("knobs", "field"), [
    ({"slow_first_token_seconds": -1}, "slow_first_token_seconds"),
    ({"slow_first_token_seconds": 121}, "slow_first_token_seconds"),
    ({"prompt_cache_off": "maybe"}, "prompt_cache_off"),
    ({"cache_busting_nonce": [1]}, "cache_busting_nonce"),
])
def test_the_new_knobs_are_bounded_and_a_bad_value_is_a_422_naming_it(knobs: dict, field: str) -> None:
    with TestClient(_app()) as client:
        response = client.post("/faults", json=knobs)
        assert response.status_code == 422 and field in response.json()["error"]["fields"], response.text
        assert client.get("/faults").json()["healthy"]
    assert faults.KNOBS[field].service == "llmsim" and faults.KNOBS[field].breaks
    with pytest.raises(ValueError, match=field):
        faults.requests(knobs)
