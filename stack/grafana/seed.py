"""Traffic that gives every dashboard panel data: a few seconds of seeded chat requests (before the live check),
and a scripted few minutes with faults (before drawing the docs pictures). Both go through the gateway on every
catalog model and department: plain calls with stack.traffic.SteadyTraffic, and the calls of a chat product with
ChatExperienceTraffic (streamed answers, repeated seeded questions the response cache answers, a shared system
prompt the provider's prompt cache holds, cache bypasses and clients that hang up), which the LLM experience
dashboard needs.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from stack import catalog, topology
from stack.grafana import variables as gv
from stack.promapi import Prometheus, QueryError
from stack.traffic import SteadyTraffic

# One system prompt shared by every chat call: about 55 tokens (stack/tokens.py counts ~4 characters a token), above
# llmsim's prompt_cache.min_prefix_tokens (32), so from a model's second call on it is billed as cached input.
SYSTEM_PROMPT = ("You are the help desk assistant of the course's online shop. Answer in at most two short sentences "
                 "of plain English, without lists or code. Say so when you do not know, and never invent order "
                 "numbers, prices or delivery dates.")
QUESTIONS = ("How do I return a parcel?", "When will my order arrive?", "Can I change the delivery address?",
             "Do you ship abroad?", "How do I reset my password?", "Which payment methods do you accept?")
# Cacheable questions are asked CACHE_WINDOW at a time, round-robin, ASKS_PER_QUESTION times each: the first ask
# misses and the others hit (a 75 % hit ratio, above the 70 % minimum), and a question comes back only CACHE_WINDOW
# cacheable calls later, when its first answer is usually stored.
CACHE_WINDOW = 4
ASKS_PER_QUESTION = 4
STREAMED, CACHEABLE, NO_CACHE = "streamed", "cacheable", "no-cache"
CALL_KINDS = (STREAMED, CACHEABLE, CACHEABLE, NO_CACHE, CACHEABLE)  # each model's calls cycle through these
HANG_UP_AFTER_EVENTS = 5
HANG_UP_MAX_TOKENS = 400  # a long answer, still streaming when the client hangs up
CHAT_RATE_PER_MODEL = 3.0  # seed_load's ChatExperienceTraffic


@dataclass
class ChatResult:
    sent: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_cache: Counter[str] = field(default_factory=Counter)  # the X-Cache header: HIT, MISS or BYPASS
    hung_up: int = 0
    transport_errors: int = 0

    @property
    def provider_calls(self) -> int:
        """Answers that reached the provider (a cache hit does not)."""
        return sum(self.by_status.values()) - self.by_cache["HIT"]


class ChatExperienceTraffic:
    """Chat calls to one model as a chat product makes them, `rate` per second from a background thread, each on its
    own thread: streamed answers, seeded questions asked again (response-cache misses, then hits), seeded calls that
    bypass the cache, all behind SYSTEM_PROMPT; and every `hang_up_every`-th call a long streamed answer the client
    abandons after a few chunks. Stops after `max_seconds` or when stopped; sends only to the gateway."""

    def __init__(self, model: str, rate: float, max_seconds: float, department: str = "support",
                 hang_up_every: int | None = None, seed: int | None = None) -> None:
        if rate <= 0 or rate > 20:
            raise ValueError("rate must be in (0, 20] calls per second")
        self.model, self.rate, self.max_seconds, self.department = model, rate, max_seconds, department
        self.hang_up_every = hang_up_every
        # Part of every cacheable request: a new run asks new questions (misses first) instead of hitting the answers
        # a run of the last 10 minutes left in the cache.
        self.seed = seed if seed is not None else time.time_ns() % 1_000_000_007
        self.result = ChatResult()
        self._cacheable_asked = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"chat-{model}", daemon=True)
        self._url = topology.load().services["gateway"].url + "/v1/chat/completions"
        self._client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=64))

    def __enter__(self) -> ChatExperienceTraffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=35)
        self._client.close()

    def _next_question(self) -> str:
        asked = self._cacheable_asked
        self._cacheable_asked += 1
        number = asked % CACHE_WINDOW + CACHE_WINDOW * (asked // (CACHE_WINDOW * ASKS_PER_QUESTION))
        return f"{QUESTIONS[number % len(QUESTIONS)]} (ticket {number})"

    def next_call(self, number: int) -> tuple[dict, bool]:
        """The `number`-th call's request body, and whether the client hangs up on it (calls are made in order: each
        cacheable one asks the next question of the schedule)."""
        hang_up = bool(self.hang_up_every) and number % self.hang_up_every == self.hang_up_every - 1
        kind = STREAMED if hang_up else CALL_KINDS[number % len(CALL_KINDS)]
        question = f"Question {number} of this chat: {QUESTIONS[number % len(QUESTIONS)]}"
        body: dict = {"model": self.model, "stream": kind != CACHEABLE or number % 2 == 1,
                      "attribution": {"user_id": f"chat-{number % 20}", "department": self.department,
                                      "application": "chatbot"},
                      "synthetic": True}
        if kind == CACHEABLE:
            question = self._next_question()
            body["seed"] = self.seed
        elif kind == NO_CACHE:
            body["seed"] = self.seed
            body["cache"] = {"no-cache": True}
        if hang_up:
            body["max_tokens"] = HANG_UP_MAX_TOKENS
        body["messages"] = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]
        return body, hang_up

    def _send(self, body: dict, hang_up: bool) -> None:
        try:
            with self._client.stream("POST", self._url, json=body) as response:
                events = 0
                for line in response.iter_lines():  # read to the end: a streamed call ends with its last chunk
                    events += line.startswith("data: ")
                    if hang_up and events >= HANG_UP_AFTER_EVENTS:
                        break  # closing the response closes the connection: the gateway sees the client go
            hung_up = hang_up and events >= HANG_UP_AFTER_EVENTS
            with self._lock:
                self.result.by_status[response.status_code] += 1
                self.result.by_cache[response.headers.get("x-cache", "")] += 1
                self.result.hung_up += int(hung_up)
        except httpx.HTTPError:
            with self._lock:
                self.result.transport_errors += 1

    def _run(self) -> None:
        started = time.monotonic()
        workers: list[threading.Thread] = []
        for number in itertools.count():
            if self._stop.is_set() or time.monotonic() - started > self.max_seconds:
                break
            worker = threading.Thread(target=self._send, args=self.next_call(number), daemon=True)
            worker.start()
            workers.append(worker)
            self.result.sent += 1
            self._stop.wait(1 / self.rate)
        for worker in workers:
            worker.join(timeout=30)


def chat_traffic(seconds: float, rate_per_model: float, hang_up_every: int) -> list[ChatExperienceTraffic]:
    """ChatExperienceTraffic on every catalog model, each for another department; the slowest model's clients hang
    up (its answers last long enough to be abandoned mid-stream)."""
    cat = catalog.load()
    slowest = max(cat.model_names, key=lambda name: cat.models[name].latency.seconds_per_output_token)
    return [ChatExperienceTraffic(model, rate_per_model, seconds, cat.departments[index % len(cat.departments)],
                                  hang_up_every=hang_up_every if model == slowest else None)
            for index, model in enumerate(cat.model_names)]


def seed_load(seconds: float | None = None, rate_per_model: float = 3.0) -> dict[int, int]:
    """A few seconds of chat traffic through the gateway for every catalog model and department (plain calls and a
    chat product's: ChatExperienceTraffic), then wait until Prometheus has scraped it, so every panel has something
    to show. Returns the HTTP status counts."""
    with Prometheus() as prometheus:
        scrape = _prometheus_scrape_interval(prometheus)
        before = _requests_seen(prometheus)
    # Two samples of every new series (rate() needs two) and a little more.
    seconds = seconds if seconds is not None else max(5.0, 3 * scrape)
    cat = catalog.load()
    departments = list(cat.departments)
    generators = []
    for index, model in enumerate(cat.model_names):
        for offset in (0, len(cat.model_names)):
            department = departments[(index + offset) % len(departments)]
            generators.append(SteadyTraffic(model, rate=rate_per_model / 2, max_seconds=seconds,
                                            max_requests=int(seconds * rate_per_model) + 1, department=department))
    # Every kind of call, questions asked again once their first answer is stored, and two clients hanging up.
    chat_calls = int(seconds * CHAT_RATE_PER_MODEL)
    chats = chat_traffic(seconds, CHAT_RATE_PER_MODEL, hang_up_every=max(len(CALL_KINDS), chat_calls // 2))
    for generator in [*generators, *chats]:
        generator.__enter__()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
    statuses: dict[int, int] = {}
    for generator in [*generators, *chats]:
        generator.stop()
        for status, count in generator.result.by_status.items():
            statuses[status] = statuses.get(status, 0) + count
    answered = sum(sum(g.result.by_status.values()) for g in generators) + sum(c.result.provider_calls for c in chats)
    with Prometheus() as prometheus:
        wait_until = time.monotonic() + 3 * scrape + 10
        while time.monotonic() < wait_until and _requests_seen(prometheus) < before + answered * 0.9:
            time.sleep(0.5)
    time.sleep(min(scrape, 15) + 1)  # one more scrape and rule evaluation: rate() needs two samples
    return statuses


def _requests_seen(prometheus: Prometheus) -> float:
    return prometheus.scalar('sum(llm_requests_total{job="gateway"})') or 0.0


def _prometheus_scrape_interval(prometheus: Prometheus) -> float:
    try:
        config = prometheus.config_yaml()
        match = re.search(r"^\s*scrape_interval:\s*(\S+)", config, re.M)
        return gv.parse_duration(match.group(1)) if match else 15.0
    except (QueryError, KeyError, ValueError):
        return 15.0


def demo_traffic(seconds: float) -> None:
    """Traffic on every model and department for `seconds`, plain calls and a chat product's (streamed, cacheable,
    a client hanging up now and then), with faults so the pictures show something: 30 % errors and 10 % rate
    limiting on sim-balanced from 30 % of the time, slow (+3 s, first token +2.5 s) and verbose (3x tokens)
    sim-reasoning answers from 60 %, each for a fifth of the time."""
    cat = catalog.load()
    llmsim = topology.load().services["llmsim"].url
    generators = []
    for index, model in enumerate(cat.model_names):
        for offset, rate in ((0, 1.0), (3, 0.5)):
            department = cat.departments[(index + offset) % len(cat.departments)]
            generators.append(SteadyTraffic(model, rate=rate, max_seconds=seconds,
                                            max_requests=int(seconds * rate) + 1, department=department))
    # A department outside the catalog: the gateway records it as "other" (Department labels folded).
    generators.append(SteadyTraffic("sim-fast", rate=0.3, max_seconds=seconds, max_requests=int(seconds * 0.3) + 1,
                                    department="legal"))
    chats = chat_traffic(seconds, rate_per_model=0.5, hang_up_every=20)
    for generator in [*generators, *chats]:
        generator.__enter__()
    started = time.monotonic()
    script = [
        (0.30, {"error_rate": 0.3, "rate_limit_rate": 0.1, "models": ["sim-balanced"],
                "duration_seconds": seconds * 0.2}),
        (0.60, {"added_latency_seconds": 3.0, "slow_first_token_seconds": 2.5, "token_multiplier": 3.0,
                "models": ["sim-reasoning"], "duration_seconds": seconds * 0.2}),
    ]
    try:
        for share, knobs in script:
            time.sleep(max(0.0, started + share * seconds - time.monotonic()))
            httpx.post(f"{llmsim}/faults", json=knobs, timeout=5).raise_for_status()
            print(f"  t={time.monotonic() - started:.0f}s faults {knobs}")
        time.sleep(max(0.0, started + seconds - time.monotonic()))
    finally:
        httpx.delete(f"{llmsim}/faults", timeout=5)
        for generator in [*generators, *chats]:
            generator.stop()
