"""Lab V2, exercise 7: a streaming client's time to first token (TTFT) and time per output token (TPOT).

The student's `ask(client, model, prompt, stream)` talks to a scripted provider (`ScriptedProvider`): it answers a
streamed call with server-sent events on a known schedule (real time: the first content chunk after `first_token_at`
seconds, the next ones `gap` seconds apart) and a non-streamed call with one JSON answer. What the student's
histograms recorded is compared with that schedule: TTFT to the first chunk that carries content, TPOT = (last content
chunk - first content chunk) / (output tokens - 1), both for streamed calls only. A schedule lasts a few tenths of a
second, so the whole check takes about a second; the tolerances leave room for a loaded machine (a late wake-up only
makes a chunk later, never earlier)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Histogram

from graders.labcheck import expect, expect_equal, expect_type, fail, not_attempted
from stack import catalog
from stack.gateway.metrics import TIME_PER_OUTPUT_TOKEN_BUCKETS_SECONDS, TTFT_BUCKETS_SECONDS

# variable: metric name (a Histogram labelled by model)
METRIC_SPEC = {"TTFT": "app_llm_time_to_first_token_seconds", "TPOT": "app_llm_time_per_output_token_seconds"}
MAX_BUCKETS = 20
# A loaded machine wakes a sleeping thread late, so a measured time may exceed the schedule: TTFT by this much per
# call (each script's last content chunk comes more than that after its first, so a TTFT timed to the last chunk still
# fails), TPOT by this factor either way (timed per chunk instead of per token, it is 4-5 times too large).
LATE_BY_AT_MOST = 0.1
TPOT_FACTOR = 2.0


def _gateway_buckets(bounds: tuple[float, ...]) -> str:
    return ", ".join(f"{bound:g}" for bound in bounds)


# --- exercise 7 (a): the two histograms ----------------------------------------------------------------------------

def _bounds(histogram: Histogram) -> list[float]:
    return [bound for bound in histogram._upper_bounds if bound != math.inf]


def check_stream_definitions(namespace: Mapping[str, Any], hidden: bool = False) -> None:
    """STREAM_REGISTRY, TTFT and TPOT: types, names, labels and buckets chosen for each (`namespace`: globals())."""
    missing = [name for name in ("STREAM_REGISTRY", *METRIC_SPEC) if name not in namespace]
    if missing:
        not_attempted(f"define {', '.join(missing)} in the exercise 7 cell and run it")
    registry = namespace["STREAM_REGISTRY"]
    expect_type(registry, CollectorRegistry, "STREAM_REGISTRY", "STREAM_REGISTRY = CollectorRegistry()")
    expect(registry is not prometheus_client.REGISTRY, "STREAM_REGISTRY is the global default registry",
           "create its own (CollectorRegistry()) so re-running the cell does not raise 'Duplicated timeseries'")
    families = {family.name for family in registry.collect()}
    for variable, name in METRIC_SPEC.items():
        metric = namespace[variable]
        expect_type(metric, Histogram, variable, f"{variable} = Histogram(...): a distribution, not one number")
        expect_equal(metric._name, name, f"{variable}'s metric name", "use the names in the table above")
        expect_equal(tuple(metric._labelnames), ("model",), f"{variable}'s label names", "only model")
        expect(name in families, f"{variable} ({name}) is not registered on STREAM_REGISTRY",
               "pass registry=STREAM_REGISTRY")
    ttft, tpot = _bounds(namespace["TTFT"]), _bounds(namespace["TPOT"])
    expect(min(ttft) < 0.1, f"TTFT's smallest bucket is {min(ttft):g} s, so every fast first token (50-100 ms) lands "
           "in one bucket and its p95 is a guess",
           f"time to first token runs from tens of ms to ~10 s; latency buckets do not fit it (the gateway's: "
           f"{_gateway_buckets(TTFT_BUCKETS_SECONDS)})")
    expect(max(ttft) >= 5, f"TTFT's largest bucket is {max(ttft):g} s, so a queued provider's first token (several "
           "seconds) only lands in +Inf", "go up to ~10 s")
    expect(min(tpot) <= 0.002 and sum(bound < 0.01 for bound in tpot) >= 3,
           f"TPOT's smallest bucket is {min(tpot):g} s with {sum(b < 0.01 for b in tpot)} bucket(s) under 10 ms, so a "
           "decode of 0.4-4 ms a token all lands in the first bucket",
           f"a token takes about a millisecond to a few tens: buckets from ~1 ms to ~0.5 s, roughly doubling (the "
           f"gateway's: {_gateway_buckets(TIME_PER_OUTPUT_TOKEN_BUCKETS_SECONDS)})")
    expect(max(tpot) >= 0.1, f"TPOT's largest bucket is {max(tpot):g} s", "a slow model can take 0.1 s a token")
    if not hidden:
        return
    for variable, bounds in (("TTFT", ttft), ("TPOT", tpot)):
        expect(len(bounds) <= MAX_BUCKETS, f"{variable} has {len(bounds)} buckets",
               f"each bucket is one more series per model: at most {MAX_BUCKETS}")
    expect(max(ttft) <= 60, f"TTFT's largest bucket is {max(ttft):g} s", "a first token later than a minute is a "
           "timeout, not a measurement")
    expect(max(tpot) <= 1, f"TPOT's largest bucket is {max(tpot):g} s", "no model takes a second a token")
    expect(not any(family.name.startswith("app_llm_time") for family in prometheus_client.REGISTRY.collect()),
           "TTFT or TPOT is registered on the global default registry too", "register them on STREAM_REGISTRY only")


# --- exercise 7 (b): what streamed and non-streamed calls record ---------------------------------------------------

@dataclass(frozen=True)
class Script:
    """One provider answer. Streamed: an optional empty role-only chunk at `role_chunk_at` (as OpenAI sends first),
    content chunk i at first_token_at + i x gap, then the finish chunk and, when asked, the usage chunk."""
    model: str
    stream: bool
    pieces: tuple[str, ...] = ("Histograms", " keep", " every", " request", " countable.")
    output_tokens: int = 12
    first_token_at: float = 0.1
    gap: float = 0.05
    role_chunk_at: float | None = None
    status: int = 200

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def last_token_at(self) -> float:
        return self.first_token_at + self.gap * (len(self.pieces) - 1)

    @property
    def tpot(self) -> float | None:
        if self.output_tokens < 2:
            return None
        return (self.last_token_at - self.first_token_at) / (self.output_tokens - 1)

    def usage(self) -> dict:
        return {"prompt_tokens": 20, "completion_tokens": self.output_tokens, "total_tokens": 20 + self.output_tokens}

    def events(self, include_usage: bool) -> list[tuple[float, str]]:
        """(seconds after the request, SSE line) of a streamed answer."""
        base = {"id": "chatcmpl-lab", "object": "chat.completion.chunk", "created": 0, "model": self.model}
        extra = {"usage": None} if include_usage else {}

        def chunk(delta: dict, finish: str | None = None) -> str:
            return "data: " + json.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                                          **extra})

        found = []
        if self.role_chunk_at is not None:
            found.append((self.role_chunk_at, chunk({"role": "assistant", "content": ""})))
        for i, piece in enumerate(self.pieces):
            found.append((self.first_token_at + i * self.gap, chunk({"content": piece})))
        found.append((self.last_token_at, chunk({}, "stop")))
        if include_usage:
            found.append((self.last_token_at, "data: " + json.dumps({**base, "choices": [], "usage": self.usage()})))
        found.append((self.last_token_at, "data: [DONE]"))
        return found


class _Response:
    """What httpx returns for a non-streamed call: status_code and json()."""

    def __init__(self, status_code: int, body: dict) -> None:
        self.status_code, self._body = status_code, body

    def json(self) -> dict:
        return self._body


class _StreamedResponse:
    """What `httpx.Client.stream(...)` yields: status_code at once, then iter_lines() as the events arrive."""

    def __init__(self, script: Script, include_usage: bool) -> None:
        self.script, self.include_usage = script, include_usage
        self.status_code = script.status
        self.started = time.perf_counter()

    def __enter__(self) -> _StreamedResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def iter_lines(self) -> Iterator[str]:
        if self.status_code != 200:
            yield json.dumps({"error": {"message": "Rate limit reached (scripted).", "type": "rate_limit_exceeded"}})
            return
        for offset, line in self.script.events(self.include_usage):
            time.sleep(max(0.0, self.started + offset - time.perf_counter()))
            yield line
            yield ""

    def json(self) -> dict:
        return {"error": {"message": "a streamed answer is read with iter_lines()"}}


class ScriptedProvider:
    """A provider client (the httpx methods the exercise uses: post and stream) answering from scripts, in order."""

    def __init__(self, scripts: list[Script]) -> None:
        self.scripts = list(scripts)
        self.calls: list[tuple[str, dict]] = []  # (post | stream, the request body)

    def _next(self, how: str, body: dict | None) -> Script:
        body = body or {}
        self.calls.append((how, body))
        expect(bool(self.scripts), "ask made more provider calls than it was asked questions", "one call per ask(...)")
        script = self.scripts.pop(0)
        expect_equal(body.get("model"), script.model, "the model of the provider call", "send the `model` argument")
        return script

    def post(self, url: str, json: dict | None = None, **_: Any) -> _Response:  # noqa: A002 - httpx's name
        script = self._next("post", json)
        expect(not (json or {}).get("stream"), "ask posted a streamed request with client.post",
               'read a streamed answer with client.stream("POST", ...) and iter_lines()')
        if script.status != 200:
            return _Response(script.status, {"error": {"message": "Rate limit reached (scripted)."}})
        return _Response(200, {"id": "chatcmpl-lab", "object": "chat.completion", "model": script.model,
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": script.text},
                                            "finish_reason": "stop"}], "usage": script.usage()})

    def stream(self, method: str, url: str, json: dict | None = None, **_: Any) -> _StreamedResponse:  # noqa: A002
        script = self._next("stream", json)
        include_usage = bool(((json or {}).get("stream_options") or {}).get("include_usage"))
        return _StreamedResponse(script, include_usage)


def _histogram_state(registry: CollectorRegistry, name: str, model: str) -> tuple[float, float]:
    """(count, sum) of one model's child of a histogram."""
    labels = {"model": model}
    return (registry.get_sample_value(f"{name}_count", labels) or 0.0,
            registry.get_sample_value(f"{name}_sum", labels) or 0.0)


def _ask(ask: Callable, client: ScriptedProvider, script: Script) -> Any:
    try:
        return ask(client, script.model, "How do I read a histogram?", stream=script.stream)
    except NotImplementedError:
        not_attempted("implement ask (exercise 7)")
    except AssertionError:
        raise
    except Exception as error:  # noqa: BLE001 - the message is for the student
        kind = "a streamed" if script.stream else "a non-streamed"
        fail(f"ask raised {type(error).__name__} on {kind} {script.model} call (HTTP {script.status})",
             "the answer's text, or None for a failed call", str(error)[:80],
             "streamed: with client.stream(...) as response, read sse_events(response); a failed call returns None")


def _expect_counts(before: dict, after: dict, scripts: list[Script]) -> None:
    for model in catalog.load().model_names:
        streamed = [s for s in scripts if s.model == model and s.stream and s.status == 200]
        others = [s for s in scripts if s.model == model and not (s.stream and s.status == 200)]
        grew = after["ttft", model][0] - before["ttft", model][0]
        if grew != len(streamed):
            hint = "observe TTFT once per successful streamed call"
            if grew > len(streamed) and others:
                hint = ("a non-streamed answer arrives whole: it has no first token to time (its wait is request "
                        "latency, exercise 1); observe TTFT for streamed calls only")
                if any(s.status != 200 for s in others):
                    hint += ", and only for a call that answered (HTTP 200)"
            fail(f'app_llm_time_to_first_token_seconds_count{{model="{model}"}} grew by', len(streamed), grew, hint)
        timed = [s for s in streamed if s.tpot is not None]
        grew = after["tpot", model][0] - before["tpot", model][0]
        if grew != len(timed):
            hint = "observe TPOT once per successful streamed call of 2+ output tokens"
            if grew < len(timed):
                hint += ('; the output tokens are in the usage chunk, sent only when you ask for it: '
                         '"stream_options": {"include_usage": True}')
            else:
                hint += " (one token has no time between tokens)"
            fail(f'app_llm_time_per_output_token_seconds_count{{model="{model}"}} grew by', len(timed), grew, hint)


def _expect_times(before: dict, after: dict, scripts: list[Script]) -> None:
    for model in catalog.load().model_names:
        streamed = [s for s in scripts if s.model == model and s.stream and s.status == 200]
        if not streamed:
            continue
        true_ttft = sum(s.first_token_at for s in streamed)
        seen = after["ttft", model][1] - before["ttft", model][1]
        if not true_ttft - 0.005 <= seen <= true_ttft + LATE_BY_AT_MOST * len(streamed):
            hint = "from just before the request to the first chunk that carries content"
            if seen >= sum(s.last_token_at for s in streamed) - 0.01:
                hint = ("that is the time to the LAST chunk (the whole answer): stop the clock at the first chunk "
                        "whose delta has content")
            elif seen < true_ttft and any(s.role_chunk_at is not None for s in streamed):
                hint = ('the first chunk only says {"role": "assistant", "content": ""}: a user sees nothing yet; stop '
                        "the clock at the first chunk whose content is not empty")
            fail(f'seconds observed in TTFT for {model} (sum over {len(streamed)} streamed call(s), scripted)',
                 round(true_ttft, 3), round(seen, 3), hint)
        timed = [s.tpot for s in streamed if s.tpot is not None]
        seen = after["tpot", model][1] - before["tpot", model][1]
        expected = sum(timed)
        if timed and not expected / TPOT_FACTOR <= seen <= expected * TPOT_FACTOR:
            chunks = [s for s in streamed if s.tpot is not None]
            by_chunks = sum((s.last_token_at - s.first_token_at) / max(1, len(s.pieces) - 1) for s in chunks)
            hint = "(last content chunk - first content chunk) / (output tokens - 1)"
            if by_chunks / TPOT_FACTOR <= seen <= by_chunks * TPOT_FACTOR:
                hint = ("you divided by chunks; a chunk can carry several tokens: divide by usage.completion_tokens - 1 "
                        "(the usage chunk at the end of the stream)")
            fail(f"seconds observed in TPOT for {model} (sum over {len(timed)} call(s))", round(expected, 5),
                 round(seen, 5), hint)


def _run_plan(ask: Callable, registry: CollectorRegistry, scripts: list[Script]) -> list[Any]:
    models = catalog.load().model_names

    def state() -> dict:
        return {**{("ttft", m): _histogram_state(registry, METRIC_SPEC["TTFT"], m) for m in models},
                **{("tpot", m): _histogram_state(registry, METRIC_SPEC["TPOT"], m) for m in models}}

    provider = ScriptedProvider(scripts)
    before = state()
    answers = [_ask(ask, provider, script) for script in scripts]
    after = state()
    _expect_counts(before, after, scripts)
    _expect_times(before, after, scripts)
    for (how, body), script in zip(provider.calls, scripts):
        expect_equal(how, "stream" if script.stream else "post", f"how ask sent a {script.model} call with "
                     f"stream={script.stream}", 'stream=True: client.stream("POST", ...); stream=False: client.post')
    return answers


VISIBLE = [
    Script("sim-fast", True, first_token_at=0.1, gap=0.05, output_tokens=25,
           pieces=("Time", " to", " first", " token", " is", " what users feel.")),
    Script("sim-balanced", False),
    Script("sim-reasoning", True, first_token_at=0.15, gap=0.05, output_tokens=17),
]
HIDDEN = [
    Script("sim-fast", True, first_token_at=0.12, gap=0.06, output_tokens=17, role_chunk_at=0.01),
    Script("sim-balanced", True, status=429),
    Script("sim-balanced", True, first_token_at=0.08, output_tokens=1, pieces=("Yes.",)),
    Script("sim-reasoning", False),
]


def check_streamed_calls(ask: Any, registry: Any, hidden: bool = False) -> None:
    """Scripted streamed and non-streamed calls, and what TTFT and TPOT recorded (`registry`: STREAM_REGISTRY)."""
    if not callable(ask):
        not_attempted("implement ask in the exercise 7 cell and run it")
    expect_type(registry, CollectorRegistry, "STREAM_REGISTRY", "STREAM_REGISTRY = CollectorRegistry()")
    scripts = HIDDEN if hidden else VISIBLE
    answers = _run_plan(ask, registry, scripts)
    for answer, script in zip(answers, scripts):
        expected = script.text if script.status == 200 else None
        expect_equal(answer, expected, f"what ask returned for a {'streamed' if script.stream else 'non-streamed'} "
                     f"{script.model} call (HTTP {script.status})",
                     "the answer's text (the content pieces joined), None for a failed call")
