"""Traffic that gives every dashboard panel data: a few seconds of seeded chat requests (before the live check),
and a scripted few minutes with faults (before drawing the docs pictures). Both go through the gateway on every
catalog model and department: plain calls with stack.traffic.SteadyTraffic, and the calls of a chat product with
ChatExperienceTraffic (streamed answers, repeated seeded questions the response cache answers, a shared system
prompt the provider's prompt cache holds, cache bypasses and clients that hang up), which the LLM experience
dashboard needs. For the resilience and quality dashboards: a breaker drill (a short llmsim `outage` of
OUTAGE_MODEL until its circuit breaker opens and calls fall back, then healed and the breaker closed again), rated
answers (POST /v1/feedback, some thumbs down) and agent workflow calls (retrieval, groundedness).
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
from stack.exposition import current_values
from stack.grafana import variables as gv
from stack.promapi import Prometheus, QueryError
from stack.traffic import BackgroundWork, SteadyTraffic

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
# The breaker drill: an llmsim outage of this model (it has fallbacks, so a breaker) until its breaker opens.
OUTAGE_MODEL = "sim-reasoning"
OUTAGE_SAFETY_SECONDS = 60      # the outage heals itself after this even if the drill is interrupted
DRILL_MAX_CALLS = 20            # calls to the failing model before giving up on the breaker opening
BREAKER_OPEN, BREAKER_CLOSED = 1.0, 0.0   # llm_circuit_breaker_state
# Rated answers: each model's answers rated this many times, every FEEDBACK_DOWN_EVERY-th one thumbs down.
RATED_ANSWERS_PER_MODEL = 3
FEEDBACK_DOWN_EVERY = 3
WORKFLOW_QUESTIONS = ("What should I check first when the error ratio alert fires?",
                      "How do I find which department is spending the monthly budget?")


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


class ChatExperienceTraffic(BackgroundWork):
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
        self._lock = threading.Lock()
        self._prepare_thread(f"chat-{model}")
        self._url = topology.load().services["gateway"].url + "/v1/chat/completions"
        self._client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=64))

    def _close(self) -> None:
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
        self._send_paced(lambda: self.rate, self.max_seconds, self.next_call)


def chat_traffic(seconds: float, rate_per_model: float, hang_up_every: int) -> list[ChatExperienceTraffic]:
    """ChatExperienceTraffic on every catalog model, each for another department; the slowest model's clients hang
    up (its answers last long enough to be abandoned mid-stream)."""
    cat = catalog.load()
    slowest = max(cat.model_names, key=lambda name: cat.models[name].latency.seconds_per_output_token)
    return [ChatExperienceTraffic(model, rate_per_model, seconds, cat.departments[index % len(cat.departments)],
                                  hang_up_every=hang_up_every if model == slowest else None)
            for index, model in enumerate(cat.model_names)]


# ---------------------------------------------------------------- resilience and quality signals


def _gateway_url() -> str:
    return topology.load().services["gateway"].url


def _llmsim_url() -> str:
    return topology.load().services["llmsim"].url


def _short_chat(model: str, number: int, department: str = "support") -> dict:
    return {"model": model, "max_tokens": 60, "synthetic": True,
            "attribution": {"user_id": f"rater-{number % 5}", "department": department, "application": "chatbot"},
            "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                         {"role": "user", "content": f"{QUESTIONS[number % len(QUESTIONS)]} (rated {number})"}]}


def breaker_state(client: httpx.Client, model: str) -> float | None:
    """llm_circuit_breaker_state of `model` as the gateway exports it now (None: no breaker, or no answer)."""
    found = current_values(f"{_gateway_url()}/metrics", ["llm_circuit_breaker_state"], {"model": model}, client)
    return (found or {}).get("llm_circuit_breaker_state")


@dataclass
class BreakerDrill:
    """An llmsim outage of one model until the gateway's breaker for it opens (its calls fall back to the next
    model of its chain), then healed; `close()` later sends calls to it until the breaker has closed again (after
    the catalog's reset_seconds it half-opens, and the first success closes it)."""
    model: str = OUTAGE_MODEL
    opened_at: float | None = None
    calls: Counter[int] = field(default_factory=Counter)

    def open(self, client: httpx.Client) -> bool:
        faults = f"{_llmsim_url()}/faults"
        client.post(faults, json={"outage": True, "models": [self.model],
                                  "duration_seconds": OUTAGE_SAFETY_SECONDS}, timeout=5).raise_for_status()
        try:
            for number in range(DRILL_MAX_CALLS):
                self._call(client, number)
                if breaker_state(client, self.model) == BREAKER_OPEN:
                    self.opened_at = time.monotonic()
                    self._call(client, number + 1)  # refused by the open breaker: straight to the fallback
                    break
        finally:
            client.delete(f"{faults}/outage", timeout=5)
        return self.opened_at is not None

    def close(self, client: httpx.Client) -> bool:
        """Calls to the model, one a second once its reset time is over, until its breaker is closed again."""
        if self.opened_at is None:
            return True
        reset = catalog.load().circuit_breaker.reset_seconds
        deadline = self.opened_at + reset + 20
        number = DRILL_MAX_CALLS
        while time.monotonic() < deadline:
            if breaker_state(client, self.model) == BREAKER_CLOSED:
                return True
            still_open = self.opened_at + reset - time.monotonic()
            if still_open > 0:
                time.sleep(min(still_open, 1.0))
                continue
            number += 1
            self._call(client, number)  # half-opened: this trial call closes it
            time.sleep(0.5)
        return breaker_state(client, self.model) == BREAKER_CLOSED

    def _call(self, client: httpx.Client, number: int) -> None:
        try:
            response = client.post(f"{_gateway_url()}/v1/chat/completions", json=_short_chat(self.model, number),
                                   timeout=30)
            self.calls[response.status_code] += 1
        except httpx.HTTPError:
            self.calls[0] += 1


def rate_answers(client: httpx.Client, per_model: int = RATED_ANSWERS_PER_MODEL, start: int = 0) -> Counter[str]:
    """Non-streamed answers on every catalog model, each rated with POST /v1/feedback (every FEEDBACK_DOWN_EVERY-th
    one down): llm_feedback_total. Returns the ratings the gateway accepted, by rating."""
    accepted: Counter[str] = Counter()
    for model in catalog.load().model_names:
        for number in range(start, start + per_model):
            try:
                answer = client.post(f"{_gateway_url()}/v1/chat/completions", json=_short_chat(model, number),
                                     timeout=30)
                request_id = answer.headers.get("x-request-id")
                if answer.status_code != 200 or not request_id:
                    continue
                rating = "down" if number % FEEDBACK_DOWN_EVERY == FEEDBACK_DOWN_EVERY - 1 else "up"
                rated = client.post(f"{_gateway_url()}/v1/feedback", json={"request_id": request_id,
                                                                           "rating": rating}, timeout=10)
                if rated.status_code == 200:
                    accepted[rating] += 1
            except httpx.HTTPError:
                continue
    return accepted


def run_workflows(client: httpx.Client, count: int = len(WORKFLOW_QUESTIONS), start: int = 0) -> Counter[int]:
    """Agent workflow calls (classify, retrieve runbook passages, answer, format): llm_retrieval_relevance and the
    groundedness score. Returns the HTTP status counts."""
    statuses: Counter[int] = Counter()
    for number in range(start, start + count):
        body = {"question": WORKFLOW_QUESTIONS[number % len(WORKFLOW_QUESTIONS)], "synthetic": True,
                "attribution": {"user_id": f"agent-{number % 3}", "department": "engineering",
                                "application": "agent"}}
        try:
            statuses[client.post(f"{_gateway_url()}/v1/agent/workflow", json=body, timeout=60).status_code] += 1
        except httpx.HTTPError:
            statuses[0] += 1
    return statuses


class QualitySignals(BackgroundWork):
    """In a background thread, every `interval` seconds: one round of rated answers (one per model) and, every
    `workflow_every`-th round, a workflow call; for the demo traffic."""

    def __init__(self, max_seconds: float, interval: float = 5.0, workflow_every: int = 3) -> None:
        self.max_seconds, self.interval, self.workflow_every = max_seconds, interval, workflow_every
        self.ratings: Counter[str] = Counter()
        self.workflows: Counter[int] = Counter()
        self._prepare_thread("quality-signals")

    def _run(self) -> None:
        started = time.monotonic()
        with httpx.Client() as client:
            for round_number in itertools.count():
                if self._stop.is_set() or time.monotonic() - started > self.max_seconds:
                    return
                self.ratings += rate_answers(client, per_model=1, start=round_number)
                if round_number % self.workflow_every == 0:
                    self.workflows += run_workflows(client, count=1, start=round_number)
                self._stop.wait(self.interval)


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
    drill = BreakerDrill()
    with httpx.Client() as client:
        # First the breaker drill (a few fast 503s, then fallbacks), so its reset time runs during the traffic.
        drill.open(client)
        for generator in [*generators, *chats]:
            generator.__enter__()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.2)
        for generator in [*generators, *chats]:
            generator.stop()
        drill.close(client)  # leave every breaker closed (tier 1) for whatever runs next
        rate_answers(client)  # now every model serves its own answers, and each gets ratings
        run_workflows(client)
    statuses: dict[int, int] = {}
    for generator in [*generators, *chats]:
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
    sim-reasoning answers from 60 %, each for a fifth of the time; an outage of OUTAGE_MODEL from 82 % for a tenth
    of the time (at least the breaker's reset time: its breaker opens, its calls fall back, and it closes again once
    the outage heals); all along, rated answers and now and then an agent workflow (QualitySignals)."""
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
    signals = QualitySignals(seconds)
    for generator in [*generators, *chats, signals]:
        generator.__enter__()
    started = time.monotonic()
    outage_seconds = max(seconds * 0.1, catalog.load().circuit_breaker.reset_seconds)
    script = [
        (0.30, {"error_rate": 0.3, "rate_limit_rate": 0.1, "models": ["sim-balanced"],
                "duration_seconds": seconds * 0.2}),
        (0.60, {"added_latency_seconds": 3.0, "slow_first_token_seconds": 2.5, "token_multiplier": 3.0,
                "models": ["sim-reasoning"], "duration_seconds": seconds * 0.2}),
        (0.82, {"outage": True, "models": [OUTAGE_MODEL], "duration_seconds": outage_seconds}),
    ]
    try:
        for share, knobs in sorted(script, key=lambda step: step[0]):
            time.sleep(max(0.0, started + share * seconds - time.monotonic()))
            httpx.post(f"{llmsim}/faults", json=knobs, timeout=5).raise_for_status()
            print(f"  t={time.monotonic() - started:.0f}s faults {knobs}")
        time.sleep(max(0.0, started + seconds - time.monotonic()))
    finally:
        httpx.delete(f"{llmsim}/faults", timeout=5)
        for generator in [*generators, *chats, signals]:
            generator.stop()
