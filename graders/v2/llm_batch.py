"""Lab V2, exercise 8: a known batch of LLM-shaped traffic through the live gateway, and its ground truth.

Two kinds of requests, sent together:
- streamed provider calls (`"stream": true`, the response cache bypassed), a fixed number per model: the gateway
  times their first token and decode (`llm_time_to_first_token_seconds`, `llm_time_per_output_token_seconds`);
- cacheable requests (a seed, a prompt unique to this run so the first ask of each question misses): each question
  asked a fixed number of times, one after the other, so every later ask is a hit. The models' hit ratios differ on
  purpose (sim-fast 10 of 12, sim-balanced 2 of 3, sim-reasoning 0 of 2), so the gateway-wide ratio of summed rates
  (12 / 17) and the average of per-model ratios (0.5) are far apart.

The ground truth comes from the gateway's answers (`X-Cache`, usage) and, for the p95, from the batch's own bucket
counts in Prometheus (what histogram_quantile must interpolate). Like exercise 3, the batch is bracketed by two
gateway scrapes and retried when other traffic reached the gateway meanwhile."""

from __future__ import annotations

import json
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from graders.v2.promql import PromQuery, delta
from stack import catalog
from stack.llmsim.generation import simulate
from stack.prometheus.series import bucket_quantile

STREAMED_CALLS = {"sim-fast": 6, "sim-balanced": 4, "sim-reasoning": 3}
# model: (distinct questions, times each is asked)
CACHED_QUESTIONS = {"sim-fast": (2, 6), "sim-balanced": (1, 3), "sim-reasoning": (2, 1)}
DEPARTMENT = "research"
SCRAPE_TIMEOUT_SECONDS = 20
ATTEMPTS = 3
_REQUESTS = 'llm_requests_total{job="gateway"}'
_HITS = 'llm_response_cache_hits_total{job="gateway"}'
_TTFT_BUCKETS = 'llm_time_to_first_token_seconds_bucket{job="gateway"}'


class OtherTraffic(RuntimeError):
    """Requests other than the batch's reached the gateway while it ran."""


def _messages(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _quick_seeds(model: str, messages: list[dict], count: int) -> list[int]:
    """The `count` seeds (of 40) whose simulated answers come back quickest: the batch then takes a second or two."""
    models = catalog.load().models
    latency = {seed: simulate(models[model], messages, None, seed=seed).latency_seconds for seed in range(40)}
    return sorted(latency, key=latency.get)[:count]


class _Batch:
    def __init__(self, http: httpx.Client, gateway_url: str) -> None:
        self.http, self.url = http, f"{gateway_url}/v1/chat/completions"

    def _body(self, model: str, messages: list[dict], seed: int) -> dict:
        return {"model": model, "messages": messages, "seed": seed, "synthetic": True,
                "attribution": {"user_id": f"lab-v2-ex8-{seed}", "department": DEPARTMENT, "application": "chatbot"}}

    def streamed(self, model: str, messages: list[dict], seed: int) -> dict:
        """One streamed provider call: its model, output tokens and whether it answered."""
        body = {**self._body(model, messages, seed), "stream": True, "stream_options": {"include_usage": True},
                "cache": {"no-cache": True}}
        output_tokens, status = 0, None
        with self.http.stream("POST", self.url, json=body) as response:
            status = response.status_code
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    usage = json.loads(line[len("data: "):]).get("usage")
                    if usage:
                        output_tokens = usage["completion_tokens"]
        return {"model": model, "cache": "BYPASS", "status": status, "output_tokens": output_tokens}

    def cached(self, model: str, messages: list[dict], seed: int, times: int) -> list[dict]:
        """The same cacheable request `times` times in a row: a miss, then hits."""
        found = []
        for _ in range(times):
            response = self.http.post(self.url, json=self._body(model, messages, seed))
            usage = (response.json().get("usage") or {}) if response.status_code == 200 else {}
            found.append({"model": model, "cache": response.headers.get("X-Cache"), "status": response.status_code,
                          "output_tokens": usage.get("completion_tokens", 0)})
        return found


def _last_gateway_scrape(prom_query: PromQuery, gateway_address: str) -> float | None:
    found = prom_query(f'timestamp(up{{job="gateway",instance="{gateway_address}"}})')
    return found[0][1] if found else None


def _scrape_after(prom_query: PromQuery, gateway_address: str, moment: float) -> float:
    deadline = time.monotonic() + SCRAPE_TIMEOUT_SECONDS
    while True:
        scraped = _last_gateway_scrape(prom_query, gateway_address)
        if scraped is not None and scraped > moment:
            return scraped
        if time.monotonic() > deadline:
            raise RuntimeError(f"Prometheus did not scrape the gateway within {SCRAPE_TIMEOUT_SECONDS} s: is the "
                               "stack healthy (`make status`)?")
        time.sleep(0.1)


def _plan() -> tuple[list[tuple[str, list[dict], int]], list[tuple[str, list[dict], int, int]]]:
    run = secrets.token_hex(4)  # this run's questions are new to the response cache
    streamed_prompt = _messages("Lab V2 exercise 8: explain time to first token in one sentence.")
    streamed = [(model, streamed_prompt, seed) for model, count in STREAMED_CALLS.items()
                for seed in _quick_seeds(model, streamed_prompt, count)]
    cached = []
    for model, (questions, times) in CACHED_QUESTIONS.items():
        for number in range(questions):
            messages = _messages(f"Lab V2 exercise 8 (run {run}): cached question {number} for {model}.")
            cached.append((model, messages, _quick_seeds(model, messages, 1)[0], times))
    return streamed, cached


def _run_once(http: httpx.Client, gateway_url: str, gateway_address: str, prom_query: PromQuery) -> dict[str, Any]:
    batch = _Batch(http, gateway_url)
    streamed, cached = _plan()
    start = _scrape_after(prom_query, gateway_address, 0)  # the gateway's last scrape before the first request
    with ThreadPoolExecutor(max_workers=len(streamed) + len(cached)) as pool:
        calls = [pool.submit(batch.streamed, *call) for call in streamed]
        asks = [pool.submit(batch.cached, *question) for question in cached]
        answers = [future.result() for future in calls] + [a for future in asks for a in future.result()]
    end = _scrape_after(prom_query, gateway_address, time.time())  # the first scrape after the last answer
    models = catalog.load().model_names
    provider_calls: dict[str, int] = defaultdict(int)
    output_tokens: dict[str, int] = defaultdict(int)
    hits: dict[str, int] = defaultdict(int)
    lookups: dict[str, int] = defaultdict(int)
    for answer in answers:
        if answer["status"] != 200:
            raise RuntimeError(f"the gateway answered HTTP {answer['status']} to a {answer['model']} request of the "
                               "batch: is a fault still on (`make heal`)?")
        model = answer["model"]
        if answer["cache"] == "HIT":
            hits[model] += 1
        else:
            provider_calls[model] += 1
            output_tokens[model] += answer["output_tokens"]
        if answer["cache"] in ("HIT", "MISS"):
            lookups[model] += 1
    counted = {labels["model"]: value for labels, value in prom_query(f"sum by (model) ({delta(_REQUESTS, start, end)})")}
    counted_hits = sum(value for _, value in prom_query(f"sum({delta(_HITS, start, end)})"))
    if any(counted.get(m) != provider_calls[m] for m in models) or counted_hits != sum(hits.values()):
        raise OtherTraffic(f"other requests reached the gateway while the batch ran (Prometheus counted {counted} "
                           f"provider calls and {counted_hits:g} hits, the batch made {dict(provider_calls)} and "
                           f"{sum(hits.values())})")
    buckets: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for labels, value in prom_query(f"sum by (model, le) ({delta(_TTFT_BUCKETS, start, end)})"):
        buckets[labels["model"]].append((float(labels["le"]), value))
    return {"start": start, "end": end, "seconds": end - start,
            "ttft_p95": {m: bucket_quantile(0.95, sorted(buckets[m])) for m in models},
            "streamed": dict(STREAMED_CALLS), "hits": dict(hits), "lookups": dict(lookups),
            "output_tokens": {m: output_tokens[m] for m in models}}


def run(http: httpx.Client, gateway_url: str, gateway_address: str, prom_query: PromQuery,
        heal: Callable[[], None]) -> dict[str, Any]:
    """The batch and its ground truth; `heal` clears the provider's faults first (a batch never runs broken)."""
    heal()
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _run_once(http, gateway_url, gateway_address, prom_query)
        except OtherTraffic as error:
            if attempt == ATTEMPTS:
                raise RuntimeError(f"{error}: run this cell again when nothing else is sending requests") from None
    raise AssertionError("not reached")
