"""`make bench-streaming`: what the gateway adds to a streamed call's time to first token, and how fast a response-
cache hit is. Writes the "Streaming and the response cache" section of docs/performance.md (`make bench` keeps it).

A throw-away llmsim (real prefill and decode times) and a gateway in front of it (as `make up` runs it: metrics,
spans with no exporter, SQLite rows) on free loopback ports. Each round sends the same streamed request straight to
llmsim and through the gateway, in alternating order; llmsim answers the same request with the same timing, so the
difference of the two times to first token (client-side, request sent to first content chunk) is the gateway's.
"""

from __future__ import annotations

import datetime
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console

from bench.sections import Section
from bench.servers import uvicorn_app
from stack.paths import DOCS_DIR

REPORT = DOCS_DIR / "performance.md"
SECTION = Section("<!-- streaming: written by `make bench-streaming` -->", "<!-- /streaming -->")
PAIRS = 300
CACHE_REQUESTS = 300
WARM_UP = 20
MODEL = "sim-fast"
ADDED_TTFT_GOAL_MS = 5.0
ATTRIBUTION = {"user_id": "bench", "department": "engineering", "application": "chatbot"}

console = Console()


@dataclass(frozen=True)
class StreamingNumbers:
    direct_ttft_ms: list[float]
    gateway_ttft_ms: list[float]
    added_ttft_ms: list[float]  # per pair: through the gateway minus straight to llmsim
    hit_ms: list[float]
    miss_ms: list[float]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _first_token_ms(client: httpx.Client, url: str, body: dict) -> float:
    started = time.perf_counter()
    first: float | None = None
    with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if first is None and line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"]
                if delta and delta[0]["delta"].get("content"):
                    first = time.perf_counter() - started
    if first is None:
        raise RuntimeError(f"{url} streamed no content")
    return first * 1000


def _prompt(n: int) -> list[dict]:
    return [{"role": "user", "content": f"Benchmark question {n}: how long until the first token arrives?"}]


def measure(progress: Callable[[str], None] = lambda _: None) -> StreamingNumbers:
    with tempfile.TemporaryDirectory(prefix="llmobs-bench-stream-") as folder:
        logs = Path(folder)
        with uvicorn_app("stack.llmsim.app:app", {}, logs / "llmsim.log") as llmsim, \
                uvicorn_app("stack.gateway.app:app", {"GATEWAY_PROVIDER_URL": llmsim, "GATEWAY_DATA_DIR": folder,
                                                      "OTEL_TRACES_EXPORTER": "none"},
                            logs / "gateway.log") as gateway, \
                httpx.Client(timeout=30) as client:
            direct_url, gateway_url = f"{llmsim}/v1/chat/completions", f"{gateway}/v1/chat/completions"
            direct, through, added = [], [], []
            for n in range(-WARM_UP, PAIRS):
                body = {"model": MODEL, "messages": _prompt(n), "stream": True}
                via_gateway = {**body, "attribution": ATTRIBUTION, "cache": {"no-cache": True}}
                if n % 2:
                    a = _first_token_ms(client, direct_url, body)
                    b = _first_token_ms(client, gateway_url, via_gateway)
                else:
                    b = _first_token_ms(client, gateway_url, via_gateway)
                    a = _first_token_ms(client, direct_url, body)
                if n >= 0:
                    direct.append(a)
                    through.append(b)
                    added.append(b - a)
                if n % 50 == 0:
                    progress(f"time to first token: pair {max(n, 0)}/{PAIRS}")
            hits, misses = [], []
            for n in range(CACHE_REQUESTS):
                body = {"model": MODEL, "messages": _prompt(10_000 + n), "seed": 1, "attribution": ATTRIBUTION}
                for timings in (misses, hits):
                    started = time.perf_counter()
                    response = client.post(gateway_url, json=body)
                    timings.append((time.perf_counter() - started) * 1000)
                    expected = "MISS" if timings is misses else "HIT"
                    if response.headers.get("x-cache") != expected:
                        raise RuntimeError(f"expected a cache {expected}, got {response.headers.get('x-cache')}")
                if n % 50 == 0:
                    progress(f"response cache: request {n}/{CACHE_REQUESTS}")
    return StreamingNumbers(direct, through, added, hits, misses)


def section(numbers: StreamingNumbers, when: str) -> str:
    added_p50 = statistics.median(numbers.added_ttft_ms)
    verdict = "met" if added_p50 < ADDED_TTFT_GOAL_MS else "**not met**"

    def p(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} / {_percentile(values, 0.95):.1f} ms"

    lines = [SECTION.begin, "## Streaming and the response cache", "",
             f"Measured by `make bench-streaming` (bench/streaming.py) on {when}: {PAIRS} pairs of the same streamed "
             f"`{MODEL}` request, straight to llmsim and through the gateway (response cache bypassed), in "
             f"alternating order; then {CACHE_REQUESTS} seeded requests through the gateway, each sent twice "
             "(a miss, then a hit). Times are client-side; llmsim runs with its real prefill and decode times.", "",
             "| what | p50 / p95 | goal | |", "| --- | --- | --- | --- |",
             f"| time to first token, straight to llmsim | {p(numbers.direct_ttft_ms)} | - | - |",
             f"| time to first token, through the gateway | {p(numbers.gateway_ttft_ms)} | - | - |",
             f"| the gateway's added time to first token (per pair) | {p(numbers.added_ttft_ms)} | "
             f"p50 < {ADDED_TTFT_GOAL_MS:g} ms | {verdict} |",
             f"| response-cache miss (provider call), not streamed | {p(numbers.miss_ms)} | - | - |",
             f"| response-cache hit, not streamed | {p(numbers.hit_ms)} | - | - |",
             "", SECTION.end]
    return "\n".join(lines) + "\n"


def main() -> None:
    with console.status("benchmarking streaming and the response cache…") as status:
        numbers = measure(progress=lambda m: status.update(m))
    text = section(numbers, datetime.date.today().isoformat())
    REPORT.write_text(SECTION.replace(REPORT.read_text(), text))
    console.print(text)
    console.print(f"wrote the streaming section of {REPORT}")


if __name__ == "__main__":
    main()
