"""Lab V1's streamed calls (exercise 7): the course's simulated provider, its server-sent events replayed line by
line on a simulated clock with the timing the real provider gives them, so a check can tell the time to the first
content chunk from the time to the last one without waiting for either.

The schedule is llmsim's own (stack/llmsim/app.py `_stream`, at latency scale 1): content chunk i of n arrives at
queue + prefill + decode x i / n, the finish chunk, the usage and `[DONE]` at queue + prefill + decode, with prefill
and decode from stack/llmsim/generation.py for the same request and seed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from graders.v1.fixtures import SEED, simulated_provider
from stack import catalog
from stack.llmsim.generation import simulate

CLOCK_START = 1000.0   # what the simulated clock reads when a check starts (any number: only differences count)
KEEP_ALIVE_SECONDS = 0.02   # when a provider that opens its stream at once sends its empty first events


class SimulatedClock:
    """Reads like time.perf_counter(), but moves only when a replayed stream hands over its next line."""

    def __init__(self, start: float = CLOCK_START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class ReplayedStream:
    """One streamed answer as the check knows it: what was asked, each line and the clock reading it arrives at."""

    payload: dict
    started: float
    lines: list[str] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    def chunks(self) -> list[tuple[float, dict]]:
        return [(at, json.loads(line[len("data:"):])) for line, at in zip(self.lines, self.arrivals)
                if line.startswith("data:") and line.strip() != "data: [DONE]"]

    @property
    def content_arrivals(self) -> list[float]:
        return [at for at, chunk in self.chunks()
                if any((choice.get("delta") or {}).get("content") for choice in chunk.get("choices") or ())]

    @property
    def text(self) -> str:
        return "".join((choice.get("delta") or {}).get("content") or "" for _, chunk in self.chunks()
                       for choice in chunk.get("choices") or ())

    @property
    def usage(self) -> dict | None:
        return next((chunk["usage"] for _, chunk in self.chunks() if chunk.get("usage")), None)

    @property
    def time_to_first_token(self) -> float:
        return self.content_arrivals[0] - self.started

    @property
    def time_to_last_token(self) -> float:
        return self.content_arrivals[-1] - self.started

    @property
    def duration(self) -> float:
        return self.arrivals[-1] - self.started


class _PacedResponse:
    """The part of an httpx streaming response a client reads: status, headers, iter_lines()."""

    def __init__(self, status_code: int, headers: dict, stream: ReplayedStream, clock: SimulatedClock) -> None:
        self.status_code = status_code
        self.headers = headers
        self._stream = stream
        self._clock = clock

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(f"the provider answered HTTP {self.status_code}")

    def iter_lines(self) -> Iterator[str]:
        for line, at in zip(self._stream.lines, self._stream.arrivals):
            self._clock.now = max(self._clock.now, at)
            yield line


class PacedProvider:
    """The simulated provider for streamed calls: `post` as usual, `stream("POST", url, json=...)` replays the answer
    on `clock`. `queued_seconds`: a queue before the prefill (the slow-first-token fault); `opens_at_once`: the
    stream starts with a keep-alive comment and an empty role chunk before any content (as OpenAI-compatible proxies
    send). Every replayed answer is kept in `streams`, the truth for the checks."""

    def __init__(self, seed: int = SEED, *, queued_seconds: float = 0.0, opens_at_once: bool = False) -> None:
        self.http = simulated_provider(seed)
        self.seed = seed
        self.queued_seconds = queued_seconds
        self.opens_at_once = opens_at_once
        self.clock = SimulatedClock()
        self.streams: list[ReplayedStream] = []

    def post(self, url: str, **kwargs: object):  # noqa: ANN201 - the wrapped client's response
        return self.http.post(url, **kwargs)

    @contextmanager
    def stream(self, method: str, url: str, **kwargs: object) -> Iterator[_PacedResponse]:
        payload = dict(kwargs.get("json") or {})
        status, headers, body = self._whole_answer(method, url, payload)
        lines = body.splitlines()
        replay = ReplayedStream(payload, started=self.clock())
        if status == 200 and payload.get("stream"):
            self._schedule(replay, lines)
        else:
            replay.lines, replay.arrivals = lines, [replay.started] * len(lines)
        self.streams.append(replay)
        yield _PacedResponse(status, headers, replay, self.clock)

    def _whole_answer(self, method: str, url: str, payload: dict) -> tuple[int, dict, str]:
        """The provider's whole answer at once (the clock paces it later). Read in-loop through httpx's ASGI transport
        in a thread of its own: the test client would hop threads for every event, and a notebook's kernel already
        runs an event loop in this one."""
        async def fetch() -> tuple[int, dict, str]:
            transport = httpx.ASGITransport(app=self.http.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://llmsim") as client:
                response = await client.request(method, url, json=payload)
                return response.status_code, dict(response.headers), response.text

        with ThreadPoolExecutor(max_workers=1) as worker:
            return worker.submit(asyncio.run, fetch()).result()

    def _schedule(self, replay: ReplayedStream, lines: list[str]) -> None:
        events = [line for line in lines if line.startswith("data:")]
        chunks = [json.loads(line[len("data:"):]) for line in events if line.strip() != "data: [DONE]"]
        usage = next((chunk["usage"] for chunk in chunks if chunk.get("usage")), None)
        cached = int(((usage or {}).get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        payload = replay.payload
        timing = simulate(catalog.load().models[payload["model"]], payload["messages"], payload.get("max_tokens"),
                          seed=self.seed, cached_tokens=cached)
        first = replay.started + self.queued_seconds + timing.prefill_seconds
        content_lines = [line for line, chunk in zip(events, chunks) if _has_content(chunk)]
        if self.opens_at_once:
            opening = {"id": chunks[0].get("id"), "object": "chat.completion.chunk", "model": payload["model"],
                       "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]}
            for line in (": keep-alive", "", f"data: {json.dumps(opening)}", ""):
                replay.lines.append(line)
                replay.arrivals.append(replay.started + KEEP_ALIVE_SECONDS)
        at = replay.started
        position = 0
        for line in lines:
            if line in content_lines[position:position + 1]:
                at = first + timing.decode_seconds * position / len(content_lines)
                position += 1
            elif line.startswith("data:") and position == len(content_lines):
                at = first + timing.decode_seconds
            replay.lines.append(line)
            replay.arrivals.append(at)


def _has_content(chunk: dict) -> bool:
    return any((choice.get("delta") or {}).get("content") for choice in chunk.get("choices") or ())
