"""The simulated provider's rate limits, as OpenAI's: per model requests and tokens per minute (catalog.yaml
`rate_limits`), x-ratelimit-* headers on every answer, a 429 naming the limit with a Retry-After once one is used up,
the `rate_limit_scale` knob that shrinks them; and a per-model outage that leaves the provider itself up."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from stack import catalog, faults, tracing
from stack.catalog import RateLimits
from stack.llmsim.app import create_app as create_llmsim
from stack.llmsim.rate_limits import LimitKind, RateLimiter, headers, openai_duration, retry_after
from stack.llmsim.settings import Settings as LlmsimSettings
from stack.loadgen.workload import Mix, model_weights

MODELS = catalog.load().models
LIMIT_HEADERS = [f"x-ratelimit-{what}-{kind}" for kind in ("requests", "tokens")
                 for what in ("limit", "remaining", "reset")]
DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$")  # Go's notation, as OpenAI writes the resets


def _app() -> FastAPI:
    return create_llmsim(LlmsimSettings(seed=7, latency_scale=0.0), tracing=tracing.setup("llmsim", enabled=False))


def _body(model: str = "sim-reasoning", prompt: str = "How full is the bucket?", **extra: object) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], **extra}


def _limits(response: object) -> dict[str, str]:
    found = {name: response.headers.get(name) for name in LIMIT_HEADERS}  # type: ignore[attr-defined]
    assert all(found.values()), (response.status_code, found)  # type: ignore[attr-defined]
    assert DURATION.match(found["x-ratelimit-reset-requests"]) and DURATION.match(found["x-ratelimit-reset-tokens"])
    return found


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------------------------- the limiter

def test_a_bucket_admits_its_limit_then_refuses_naming_requests_and_refills_over_a_minute() -> None:
    clock = Clock()
    limiter = RateLimiter({"m": RateLimits(requests_per_minute=6, tokens_per_minute=10_000)}, clock=clock)
    remaining = [limiter.admit("m", 10).requests.remaining for _ in range(6)]
    assert remaining == [5, 4, 3, 2, 1, 0]
    refused = limiter.admit("m", 10)
    assert not refused.admitted and refused.refused_by is LimitKind.REQUESTS
    assert refused.retry_after_seconds == pytest.approx(10.0) and retry_after(refused) == "10", "6 a minute: 1 per 10 s"
    assert headers(refused)["x-ratelimit-reset-requests"] == "1m0s", "an empty bucket is full again in a minute"
    clock.now += 9.9
    assert not limiter.admit("m", 10).admitted
    clock.now += 0.2
    assert limiter.admit("m", 10).admitted, "one request refilled after 10 s"
    clock.now += 600
    assert limiter.peek("m").requests.remaining == 6, "an idle bucket fills up to its limit, never above"


def test_the_tokens_limit_counts_the_estimate_and_refuses_naming_tokens() -> None:
    clock = Clock()
    limiter = RateLimiter({"m": RateLimits(requests_per_minute=100, tokens_per_minute=1_000)}, clock=clock)
    first = limiter.admit("m", 400)
    assert first.tokens.remaining == 600 and first.requests.remaining == 99
    assert first.tokens.reset_seconds == pytest.approx(24.0) and headers(first)["x-ratelimit-reset-tokens"] == "24s"
    assert limiter.admit("m", 400).admitted
    refused = limiter.admit("m", 400)
    assert refused.refused_by is LimitKind.TOKENS and refused.requests.remaining == 98, "requests were left"
    assert refused.retry_after_seconds == pytest.approx(12.0), "200 more tokens at 1000 a minute"
    too_large = limiter.admit("m", 1_001)
    assert too_large.refused_by is LimitKind.TOKENS and too_large.retry_after_seconds is None, "no wait helps"
    assert retry_after(too_large) is None


def test_remaining_falls_steadily_when_traffic_outruns_the_refill_then_429s_begin() -> None:
    """The rate-limit-headroom shape: 10 req/s against 300 a minute (5 a second refilled)."""
    clock = Clock()
    limiter = RateLimiter({"m": RateLimits(requests_per_minute=300, tokens_per_minute=10**9)}, clock=clock)
    by_second: list[tuple[int, int]] = []  # (remaining at the end of the second, refused in that second)
    for _second in range(75):
        refused = 0
        for _ in range(10):
            clock.now += 0.1
            decision = limiter.admit("m", 100)
            refused += not decision.admitted
        by_second.append((decision.requests.remaining, refused))
    first_refusal = next(second for second, (_, refused) in enumerate(by_second) if refused)
    assert 55 <= first_refusal <= 62, by_second[50:65]
    remaining = [left for left, _ in by_second[:first_refusal]]
    assert all(a > b for a, b in zip(remaining, remaining[1:])), "falls every second until the first 429"
    assert all(refused == 5 for _, refused in by_second[first_refusal + 2:]), "then half the calls are refused"


def test_rate_limit_scale_shrinks_the_limits_and_healing_refills_within_a_minute() -> None:
    clock = Clock()
    limiter = RateLimiter({"m": RateLimits(requests_per_minute=10_000, tokens_per_minute=10**7)}, clock=clock)
    assert limiter.admit("m", 10).requests.remaining == 9_999
    shrunk = limiter.admit("m", 10, scale=0.01)
    assert (shrunk.requests.limit, shrunk.requests.remaining, shrunk.tokens.limit) == (100, 99, 100_000)
    healed = limiter.peek("m")
    assert healed.requests.limit == 10_000 and healed.requests.remaining == 99
    clock.now += 30
    assert limiter.peek("m").requests.remaining == 5_099
    clock.now += 30
    assert limiter.peek("m").requests.remaining == 10_000


@pytest.mark.parametrize(("seconds", "written"), [
    (0, "0s"), (0.0004, "1ms"), (0.02, "20ms"), (0.999, "999ms"), (1, "1s"), (8.64, "8.64s"), (59.9999, "1m0s"),
    (60, "1m0s"), (61.5, "1m1.5s"), (360, "6m0s"), (3723.25, "1h2m3.25s"),
])
def test_resets_are_written_as_openai_does(seconds: float, written: str) -> None:
    assert openai_duration(seconds) == written


def test_the_heaviest_traffic_the_stack_is_sent_is_never_limited() -> None:
    """catalog.yaml sizes the limits above it: the throughput bench (~700 req/s of the bench's sim-fast request, for
    a minute), one locust process of the `make load` mix (~350 req/s over the models in its shares) and the live
    burst test (2,000 sim-fast calls at once)."""
    clock = Clock()
    limiter = RateLimiter({name: model.rate_limits for name, model in MODELS.items()}, clock=clock)
    assert all(limiter.admit("sim-fast", 40 + MODELS["sim-fast"].max_output_tokens).admitted for _ in range(2_000))
    for _ in range(60 * 700):
        clock.now += 1 / 700
        assert limiter.admit("sim-fast", 40 + MODELS["sim-fast"].max_output_tokens).admitted
    shares = model_weights(Mix())
    clock.now += 60
    for _ in range(60):
        clock.now += 1
        for name, share in shares.items():
            for _ in range(round(350 * share)):
                # the mix's prompts: the application's system prompt (~170 tokens) and a question of up to 8000 chars
                assert limiter.admit(name, 700 + MODELS[name].max_output_tokens).admitted, name


# ---------------------------------------------------------------------------------------------- over HTTP

def test_every_answer_carries_the_limits_and_remaining_falls_by_each_request() -> None:
    limits = MODELS["sim-reasoning"].rate_limits
    with TestClient(_app()) as client:
        first = client.post("/v1/chat/completions", json=_body(max_tokens=100))
        assert first.status_code == 200
        spent = first.json()["usage"]["prompt_tokens"] + 100  # prompt + max_tokens, whatever the answer's length
        assert _limits(first) == {
            "x-ratelimit-limit-requests": str(limits.requests_per_minute),
            "x-ratelimit-remaining-requests": str(limits.requests_per_minute - 1),
            "x-ratelimit-reset-requests": openai_duration(60 / limits.requests_per_minute),
            "x-ratelimit-limit-tokens": str(limits.tokens_per_minute),
            "x-ratelimit-remaining-tokens": str(limits.tokens_per_minute - spent),
            "x-ratelimit-reset-tokens": openai_duration(60 * spent / limits.tokens_per_minute),
        }
        # shrunk to 10 requests and 10,000 tokens a minute, so the refill between two calls is negligible
        client.post("/faults", json={"rate_limit_scale": 0.001, "models": ["sim-reasoning"]})
        answers = [client.post("/v1/chat/completions", json=_body(max_tokens=100)),
                   client.post("/v1/chat/completions", json=_body(max_tokens=100, stream=True))]
        assert [a.status_code for a in answers] == [200, 200]
        a, b = (_limits(answer) for answer in answers)
        assert (a["x-ratelimit-limit-requests"], a["x-ratelimit-limit-tokens"]) == ("10", "10000")
        assert (a["x-ratelimit-remaining-requests"], b["x-ratelimit-remaining-requests"]) == ("9", "8")
        assert int(a["x-ratelimit-remaining-tokens"]) == 10_000 - spent
        assert int(b["x-ratelimit-remaining-tokens"]) == pytest.approx(10_000 - 2 * spent, abs=40)
        assert re.fullmatch(r"11\.9\d*s|12s", b["x-ratelimit-reset-requests"]), "2 of 10 a minute: 12 s to refill"
        client.delete("/faults")
        other = _limits(client.post("/v1/chat/completions", json=_body("sim-fast")))
        assert int(other["x-ratelimit-remaining-requests"]) == MODELS["sim-fast"].rate_limits.requests_per_minute - 1
        assert int(other["x-ratelimit-remaining-tokens"]) < \
            MODELS["sim-fast"].rate_limits.tokens_per_minute - MODELS["sim-fast"].max_output_tokens, \
            "without max_tokens the model's longest answer is counted"
        for knobs, status in (({"error_rate": 1.0}, 500), ({"rate_limit_rate": 1.0}, 429), ({"outage": True}, 503)):
            client.post("/faults", json=knobs)
            failed = client.post("/v1/chat/completions", json=_body())
            assert failed.status_code == status and _limits(failed), knobs
            assert ("retry-after" in failed.headers) == (status == 429)
            client.delete("/faults")


def test_a_used_up_limit_is_a_429_naming_it_with_retry_after() -> None:
    app = _app()
    with TestClient(app) as client:
        on = client.post("/faults", json={"rate_limit_scale": 0.001, "models": ["sim-reasoning"]})
        assert on.status_code == 200 and on.json()["active"] == {"rate_limit_scale": 0.001}
        answers = [client.post("/v1/chat/completions", json=_body(max_tokens=10)) for _ in range(11)]
        assert [a.status_code for a in answers] == [200] * 10 + [429], "10 a minute at 0.001 of 10,000"
        assert [int(a.headers["x-ratelimit-remaining-requests"]) for a in answers[:10]] == list(range(9, -1, -1))
        refused = answers[-1]
        assert _limits(refused)["x-ratelimit-remaining-requests"] == "0"
        assert 5 <= int(refused.headers["retry-after"]) <= 6, "one request per 6 s"
        error = refused.json()["error"]
        assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
        assert "sim-reasoning" in error["message"] and "requests per min (RPM): Limit 10" in error["message"]
        assert client.post("/v1/chat/completions", json=_body("sim-fast")).status_code == 200, "other models: as before"
        metrics = client.get("/metrics").text
        assert 'llmsim_requests_total{model="sim-reasoning",outcome="rate_limited"} 1.0' in metrics
        assert 'llmsim_ratelimit_remaining{kind="requests",model="sim-reasoning"} 0.0' in metrics
        assert 'llmsim_ratelimit_limit{kind="requests",model="sim-reasoning"} 10.0' in metrics
        client.delete("/faults")
        healed = _limits(client.post("/v1/chat/completions", json=_body(max_tokens=10)))
        assert healed["x-ratelimit-limit-requests"] == str(MODELS["sim-reasoning"].rate_limits.requests_per_minute)


def test_the_tokens_limit_refuses_large_requests_first_and_too_large_ones_without_retry_after() -> None:
    with TestClient(_app()) as client:
        client.post("/faults", json={"rate_limit_scale": 0.001, "models": ["sim-reasoning"]})  # 10,000 tokens a minute
        statuses = [client.post("/v1/chat/completions", json=_body(max_tokens=4_000)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        refused = client.post("/v1/chat/completions", json=_body(max_tokens=4_000))
        error = refused.json()["error"]
        assert error["type"] == "tokens" and "tokens per min (TPM)" in error["message"]
        assert int(refused.headers["x-ratelimit-remaining-requests"]) == 8 and refused.headers["retry-after"]
        too_large = client.post("/v1/chat/completions", json=_body(prompt="word " * 6_000, max_tokens=4_000))
        assert too_large.status_code == 429 and "retry-after" not in too_large.headers
        error = too_large.json()["error"]
        assert error["type"] == "tokens" and "Request too large" in error["message"]


@pytest.mark.parametrize(("body", "field"), [
    ({"max_tokens": catalog.load().max_output_tokens + 1}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
])
def test_max_tokens_is_bounded_by_the_catalog(body: dict, field: str) -> None:
    with TestClient(_app()) as client:
        response = client.post("/v1/chat/completions", json=_body(**body))
    assert response.status_code == 422 and field in response.json()["error"]["fields"], response.text


@pytest.mark.parametrize("scale", [0, 0.0005, 1.5, "low"])
def test_rate_limit_scale_is_bounded_and_a_bad_value_is_a_422_naming_it(scale: object) -> None:
    with TestClient(_app()) as client:
        response = client.post("/faults", json={"rate_limit_scale": scale})
        assert response.status_code == 422 and "rate_limit_scale" in response.json()["error"]["fields"], response.text
    assert faults.KNOBS["rate_limit_scale"].params == "0.001..1"


# ---------------------------------------------------------------------------------------------- per-model outage

def test_an_outage_of_one_model_leaves_the_others_and_the_provider_up() -> None:
    with TestClient(_app()) as client:
        client.post("/faults", json={"outage": True, "models": ["sim-reasoning"]})
        assert client.post("/v1/chat/completions", json=_body("sim-reasoning")).status_code == 503
        assert client.post("/v1/chat/completions", json=_body("sim-fast")).status_code == 200
        assert client.post("/v1/chat/completions", json=_body("sim-balanced")).status_code == 200
        health = client.get("/health")
        assert health.status_code == 200 and health.json() == {"status": "ok", "models_out": ["sim-reasoning"]}
        client.post("/faults", json={"models": sorted(MODELS)})
        assert client.get("/health").status_code == 503, "every model out: the provider is down"
        client.post("/faults", json={"models": []})
        assert client.get("/health").status_code == 503
        client.delete("/faults")
        assert client.get("/health").json() == {"status": "ok"}
