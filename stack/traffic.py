"""Steady, bounded chat traffic to the gateway: a few requests per second for tests, demos and scenarios.

Only ever sends to the gateway address in stack/topology.yaml (127.0.0.1); stops after `max_requests` or
`max_seconds`, whichever comes first, or when stopped.

By default every request is the same one-message prompt. `cacheable=True` sends instead a small pool of repeated
questions in turn, each after the application's shared system prompt and with a fixed `seed` (so the gateway can
answer repeats from its response cache and the provider bills the system prompt as cached input); `stream_share`
streams that share of the requests (server-sent events, read to the end).
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Self

import httpx

from stack import topology
from stack.prompts import SAMPLING_SEED, Lengths, question_pool, system_prompt

DEFAULT_DEPARTMENT = "engineering"
DEFAULT_APPLICATION = "chatbot"
# cacheable=True: a pool of this many questions, asked in turn, drawn with this seed and these lengths
REPEATED_QUESTIONS = 8
REPEATED_QUESTIONS_SEED = 0
REPEATED_QUESTION_LENGTHS = Lengths(median=160, sigma=0.5, low=40, high=600)
STREAM_END = "[DONE]"   # the `data:` of the last event of a streamed answer
EVENT_STREAM = "text/event-stream"


@dataclass
class TrafficResult:
    sent: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    by_cache: Counter[str] = field(default_factory=Counter)   # the gateway's X-Cache header of answered requests
    broken_streams: int = 0                                   # answered 200 but the stream did not end properly


def chat_body(model: str, user_id: str, department: str = DEFAULT_DEPARTMENT,
              application: str = DEFAULT_APPLICATION,
              prompt: str = "Summarise the incident report in two sentences.", system: str | None = None,
              seed: int | None = None, stream: bool = False, no_cache: bool = False,
              max_tokens: int | None = None) -> dict:
    """A chat completion request; `system` goes first as a system message, `no_cache` asks the gateway not to
    answer from its response cache, `max_tokens` caps the answer."""
    system_messages = [{"role": "system", "content": system}] if system is not None else []
    body: dict = {
        "model": model,
        "messages": [*system_messages, {"role": "user", "content": prompt}],
        "attribution": {"user_id": user_id, "department": department, "application": application},
        "synthetic": True,
    }
    if seed is not None:
        body["seed"] = seed
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body["stream"] = True
    if no_cache:
        body["cache"] = {"no-cache": True}
    return body


def stream_problem(content_type: str, lines: Iterable[str]) -> str | None:
    """Why a 200 answer to a streamed request is not a whole stream, or None if it is. Reads every line, so the
    caller has consumed the body (the gateway measures a stream until its client has read it)."""
    ended = False
    error = None
    for line in lines:
        payload = line.removeprefix("data:").strip() if line.startswith("data:") else None
        if payload == STREAM_END:
            ended = True
        elif payload and error is None and '"error"' in payload:
            try:
                error = json.loads(payload).get("error")
            except (ValueError, AttributeError):
                pass
    if not content_type.startswith(EVENT_STREAM):
        return f"asked for a stream, the answer is {content_type or 'without Content-Type'}"
    if error is not None:
        message = error.get("message", error) if isinstance(error, dict) else error
        return f"error event in the stream: {str(message)[:200]}"
    if not ended:
        return f"stream ended without data: {STREAM_END}"
    return None


def steady_body(model: str, number: int, department: str = DEFAULT_DEPARTMENT, cacheable: bool = False,
                stream_share: float = 0.0, max_tokens: int | None = None) -> dict:
    """The body of SteadyTraffic's request `number`: streamed for `stream_share` of the numbers, evenly spread;
    answers capped at `max_tokens` when given."""
    streamed = math.floor((number + 1) * stream_share) > math.floor(number * stream_share)
    user_id = f"traffic-{number % 50}"
    if not cacheable:
        return chat_body(model, user_id, department, stream=streamed, max_tokens=max_tokens)
    questions = question_pool(REPEATED_QUESTIONS_SEED, DEFAULT_APPLICATION, REPEATED_QUESTIONS,
                              REPEATED_QUESTION_LENGTHS)
    return chat_body(model, user_id, department, DEFAULT_APPLICATION, prompt=questions[number % len(questions)],
                     system=system_prompt(DEFAULT_APPLICATION), seed=SAMPLING_SEED, stream=streamed,
                     max_tokens=max_tokens)


class BackgroundWork:
    """Work on a daemon thread (`_run`, which should end once `_stop` is set), used as a context manager: leaving it
    stops the thread, waits for it at most `join_timeout` seconds, then `_close()`."""

    join_timeout = 35.0

    def _prepare_thread(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        """What to release once the thread has ended."""

    def _send(self, *args: object) -> None:
        raise NotImplementedError

    def _send_paced(self, rate: Callable[[], float], max_seconds: float, args_of: Callable[[int], tuple],
                    max_calls: int | None = None) -> None:
        """`_send(*args_of(n))` for n = 0, 1, ... at `rate()` a second (read before every call, so it may change),
        each on its own short-lived thread (a slow answer does not lower the rate), until stopped, `max_seconds` or
        `max_calls`; then waits for the calls under way."""
        started = time.monotonic()
        workers: list[threading.Thread] = []
        for number in itertools.count():
            if self._stop.is_set() or (max_calls is not None and number >= max_calls) or \
                    time.monotonic() - started > max_seconds:
                break
            worker = threading.Thread(target=self._send, args=args_of(number), daemon=True)
            worker.start()
            workers.append(worker)
            self.result.sent += 1
            self._stop.wait(1 / rate())
        for worker in workers:
            worker.join(timeout=30)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=self.join_timeout)
        self._close()


MAX_STEADY_RATE = 50.0


def _check_rate(rate: float) -> None:
    if not 0 < rate <= MAX_STEADY_RATE:
        raise ValueError(f"rate must be in (0, {MAX_STEADY_RATE:g}] requests per second")


class SteadyTraffic(BackgroundWork):
    """Sends `rate` chat requests per second from a background thread, each on its own short-lived thread so a
    slow provider does not lower the rate."""

    def __init__(self, model: str, rate: float, max_requests: int = 2000, max_seconds: float = 300.0,
                 department: str = DEFAULT_DEPARTMENT, cacheable: bool = False, stream_share: float = 0.0,
                 max_tokens: int | None = None) -> None:
        _check_rate(rate)
        if not 0 <= stream_share <= 1:
            raise ValueError("stream_share must be between 0 and 1")
        self.model, self.rate, self.department = model, rate, department
        self.cacheable, self.stream_share, self.max_tokens = cacheable, stream_share, max_tokens
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.result = TrafficResult()
        self._lock = threading.Lock()
        self._prepare_thread(f"traffic-{model}")
        self._url = topology.load().services["gateway"].url + "/v1/chat/completions"
        self._client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=64))

    def set_rate(self, rate: float) -> None:
        """Send at `rate` requests per second from the next request on (still bounded by max_requests)."""
        _check_rate(rate)
        self.rate = rate

    def _close(self) -> None:
        self._client.close()

    def _send(self, number: int) -> None:
        body = steady_body(self.model, number, self.department, self.cacheable, self.stream_share, self.max_tokens)
        broken = False
        try:
            if body.get("stream"):
                with self._client.stream("POST", self._url, json=body) as response:
                    problem = stream_problem(response.headers.get("content-type", ""), response.iter_lines())
                    broken = response.status_code == 200 and problem is not None
            else:
                response = self._client.post(self._url, json=body)
            with self._lock:
                self.result.by_status[response.status_code] += 1
                self.result.broken_streams += broken
                if response.status_code == 200 and "x-cache" in response.headers:
                    self.result.by_cache[response.headers["x-cache"]] += 1
        except httpx.HTTPError:
            with self._lock:
                self.result.transport_errors += 1

    def _run(self) -> None:
        self._send_paced(lambda: self.rate, self.max_seconds, lambda number: (number,), self.max_requests)
