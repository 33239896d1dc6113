"""Lab V2, exercises 1 and 4: the student's prometheus-client metrics (names, types, labels, buckets, what a seeded
batch of calls records) and bounded labels (counting series; a counter that stays bounded however many requests
come). Everything runs in-process: the provider is the course's simulator inside the kernel, no stack needed."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import prometheus_client
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

from graders.labcheck import expect, expect_equal, expect_type, fail, not_attempted, reports_stubs
from stack import catalog
from stack.llmsim.app import create_app as create_llmsim
from stack.llmsim.settings import Settings as LlmsimSettings

# variable: (type, metric name without _total, label names)
METRIC_SPEC = {
    "REQUESTS": (Counter, "app_llm_requests", ("model", "status")),
    "LATENCY": (Histogram, "app_llm_request_duration_seconds", ("model",)),
    "TOKENS": (Counter, "app_llm_tokens", ("model", "token_type")),
    "COST": (Counter, "app_llm_cost_usd", ("model",)),
    "IN_FLIGHT": (Gauge, "app_llm_requests_in_flight", ()),
}
CHECK_SEED = 2024   # the seeded provider of the exercise 1 batch


def _models() -> list[str]:
    return catalog.load().model_names


# --- exercise 1 (a): the metric definitions ------------------------------------------------------------------------

def check_metric_definitions(namespace: Mapping[str, Any], hidden: bool = False) -> None:
    """The metrics, their types, labels and buckets (`namespace`: the notebook's globals())."""
    missing = [name for name in METRIC_SPEC if name not in namespace]
    if missing:
        not_attempted(f"define {', '.join(missing)} in the exercise 1 cell and run it")
    registry = namespace.get("REGISTRY")
    expect_type(registry, CollectorRegistry, "REGISTRY", "REGISTRY = CollectorRegistry()")
    expect(registry is not prometheus_client.REGISTRY, "REGISTRY is the global default registry",
           "create your own (REGISTRY = CollectorRegistry()) so re-running the cell does not raise "
           "'Duplicated timeseries'")
    families = {family.name: family.type for family in registry.collect()}
    for variable, (kind, name, labels) in METRIC_SPEC.items():
        metric = namespace.get(variable)
        expect_type(metric, kind, variable, f"define {variable} = {kind.__name__}(...) in the exercise cell")
        expect_equal(metric._name, name, f"{variable}'s metric name", "use the names in the table above")
        expect_equal(tuple(metric._labelnames), labels, f"{variable}'s label names",
                     "only the bounded labels in the table: ids and free text never become labels")
        expect(name in families, f"{variable} ({name}) is not registered on REGISTRY", "pass registry=REGISTRY")
    bounds = [bound for bound in namespace["LATENCY"]._upper_bounds if bound != math.inf]
    expect(max(bounds) >= 30, f"LATENCY's largest bucket is {max(bounds):g} s, so slow LLM calls all land in +Inf",
           "LLM calls can take up to a minute: the default web buckets stop at 10 s; go up to 60 s")
    expect(sum(bound < 1 for bound in bounds) >= 3, f"LATENCY has {sum(b < 1 for b in bounds)} buckets under 1 s",
           "fast models answer in 50-300 ms: put at least 3 buckets below one second")
    if not hidden:
        return
    expect(len(bounds) <= 20, f"LATENCY has {len(bounds)} buckets", "each bucket is one more series per model: <= 20")
    expect(max(bounds) <= 600, f"LATENCY's largest bucket is {max(bounds):g} s", "LLM calls time out long before that")
    expect(not any(family.name.startswith("app_llm") for family in prometheus_client.REGISTRY.collect()),
           "some app_llm_* metrics are registered on the global default registry too", "register them on REGISTRY only")
    for model in _models():
        for status in ("success", "error"):
            expect(registry.get_sample_value("app_llm_requests_total", {"model": model, "status": status}) is not None,
                   f'app_llm_requests_total{{model="{model}",status="{status}"}} does not exist before any such call',
                   "pre-initialise every model x status with REQUESTS.labels(model, status)")


# --- exercise 1 (b): what a seeded batch of calls records ----------------------------------------------------------

class _Recorder:
    """Passes calls through to the provider and keeps its answers: the ground truth of this check."""

    def __init__(self, client: TestClient, registry: CollectorRegistry) -> None:
        self.client, self.registry = client, registry
        self.answers: list[tuple[str | None, Any]] = []
        self.in_flight_seen: list[float] = []

    def post(self, url: str, **kwargs: Any):  # noqa: ANN201 - whatever the provider's client returns
        self.in_flight_seen.append(self.registry.get_sample_value("app_llm_requests_in_flight") or 0.0)
        response = self.client.post(url, **kwargs)
        self.answers.append(((kwargs.get("json") or {}).get("model"), response))
        return response


def _snapshot(registry: CollectorRegistry) -> dict[str, float]:
    values = {}
    for model in _models():
        for status in ("success", "error"):
            values[f'app_llm_requests_total{{model="{model}",status="{status}"}}'] = (
                "app_llm_requests_total", {"model": model, "status": status})
        for token_type in ("input", "output"):
            values[f'app_llm_tokens_total{{model="{model}",token_type="{token_type}"}}'] = (
                "app_llm_tokens_total", {"model": model, "token_type": token_type})
        values[f'app_llm_cost_usd_total{{model="{model}"}}'] = ("app_llm_cost_usd_total", {"model": model})
        values[f'app_llm_request_duration_seconds_count{{model="{model}"}}'] = (
            "app_llm_request_duration_seconds_count", {"model": model})
    return {key: registry.get_sample_value(name, labels) or 0.0 for key, (name, labels) in values.items()}


def _call(call_llm: Callable, recorder: _Recorder, model: str, prompt: str) -> Any:
    try:
        return call_llm(recorder, model, prompt)
    except Exception as error:  # noqa: BLE001 - the message is for the student
        status = recorder.answers[-1][1].status_code if recorder.answers else "?"
        fail(f"call_llm raised {type(error).__name__} for a {model} call answered with HTTP {status}",
             "None for a failed call, the reply for a successful one", str(error)[:80],
             'count a failed call as status="error" and return None instead of raising')


def _expected_growth(answers: list[tuple[str | None, Any]]) -> dict[str, float]:
    expected: dict[str, float] = defaultdict(float)
    for model, response in answers:
        status = "success" if response.status_code == 200 else "error"
        expected[f'app_llm_requests_total{{model="{model}",status="{status}"}}'] += 1
        expected[f'app_llm_request_duration_seconds_count{{model="{model}"}}'] += 1
        if status == "success":
            usage = response.json()["usage"]
            expected[f'app_llm_tokens_total{{model="{model}",token_type="input"}}'] += usage["prompt_tokens"]
            expected[f'app_llm_tokens_total{{model="{model}",token_type="output"}}'] += usage["completion_tokens"]
            expected[f'app_llm_cost_usd_total{{model="{model}"}}'] += catalog.cost_usd(
                model, usage["prompt_tokens"], usage["completion_tokens"])
    return expected


def _expect_grew(seen: dict[str, float], expected: dict[str, float], prefix: str, hint: str) -> None:
    for key in sorted(k for k in seen if k.startswith(prefix)):
        grew, want = seen[key], expected[key]
        if not math.isclose(grew, want, rel_tol=1e-6, abs_tol=1e-12):
            ratio = grew / want if want else math.inf
            extra = (" (off by a factor of 1000: catalog prices are USD per *million* tokens)"
                     if 900 < ratio < 1100 or 0.0009 < ratio < 0.0011 else "")
            fail(f"{key} grew by", want, grew, hint + extra)


def check_recorded_calls(call_llm: Any, registry: Any, hidden: bool = False) -> None:
    """A seeded batch of calls (some fail on purpose) and what the student's metrics recorded."""
    if not callable(call_llm):
        not_attempted("implement call_llm in the exercise 1 cell and run it")
    expect_type(registry, CollectorRegistry, "REGISTRY", "REGISTRY = CollectorRegistry() in the exercise 1 cell")
    models = _models()
    provider = TestClient(create_llmsim(LlmsimSettings(seed=CHECK_SEED, latency_scale=0)))
    recorder = _Recorder(provider, registry)
    before = _snapshot(registry)
    plan = [(model, f"Check question {i} for {model}") for i in range(4) for model in models]
    results = [_call(call_llm, recorder, model, prompt) for model, prompt in plan]
    provider.post("/faults", json={"error_rate": 1.0, "models": ["sim-balanced"]})        # HTTP 500s
    results += [_call(call_llm, recorder, "sim-balanced", f"Failing question {i}") for i in range(2)]
    provider.post("/faults", json={"error_rate": 0.0, "rate_limit_rate": 1.0, "models": ["sim-fast"]})  # HTTP 429
    results += [_call(call_llm, recorder, "sim-fast", "Rate-limited question")]
    provider.delete("/faults")
    after = _snapshot(registry)
    seen = {key: after[key] - before[key] for key in after}
    expected = _expected_growth(recorder.answers)
    _expect_grew(seen, expected, "app_llm_requests_total",
                 'one increment per call: status="success" for HTTP 200, "error" otherwise')
    _expect_grew(seen, expected, "app_llm_tokens_total",
                 "input = usage.prompt_tokens, output = usage.completion_tokens (successes)")
    _expect_grew(seen, expected, "app_llm_cost_usd_total",
                 "price each successful call with catalog.cost_usd(model, input, output)")
    if not hidden:
        return
    _expect_grew(seen, expected, "app_llm_request_duration_seconds_count",
                 "observe the latency of every call, failed ones included")
    expect(max(recorder.in_flight_seen) >= 1, "app_llm_requests_in_flight stayed at 0 during calls",
           "raise the gauge while a call is under way: with IN_FLIGHT.track_inprogress(): ...")
    expect(registry.get_sample_value("app_llm_requests_in_flight") == 0, "app_llm_requests_in_flight is not back to 0",
           "lower the gauge when the call ends, failed or not")
    expect(all(r is None or isinstance(r, dict) for r in results),
           "call_llm returned something else than a dict or None", "return the reply's JSON (response.json()) or None")
    expect(sum(r is None for r in results) == 3, f"call_llm returned None {sum(r is None for r in results)} times",
           "None for each of the 3 failed calls, the reply for every other one")


# --- exercise 4: bounded labels ------------------------------------------------------------------------------------

def _series(registry: CollectorRegistry) -> int:
    return sum(len(family.samples) for family in registry.collect())


@reports_stubs
def check_count_series(count_series: Callable[[CollectorRegistry], int],
                       make_leaky_metrics: Callable[[], tuple[CollectorRegistry, Counter]],
                       handle_leaky: Callable[..., None], hidden: bool = False) -> None:
    """count_series on a registry of known size; hidden: on the notebook's leaky instrumentation."""
    registry = CollectorRegistry()
    counter = Counter("check_calls", "c", ["model"], registry=registry)
    models = _models()
    for model in models:
        counter.labels(model).inc()
    Histogram("check_seconds", "h", buckets=(0.5, 1.0), registry=registry).observe(0.7)  # 3 buckets + sum + count
    Gauge("check_level", "g", registry=registry).set(3)
    expect_equal(count_series(registry), len(models) + 5 + 1, "count_series of a registry with 3 + 5 + 1 series",
                 "count the samples of every family: sum(len(family.samples) for family in registry.collect())")
    if not hidden:
        return
    leaky_registry, leaky_requests = make_leaky_metrics()
    for number in range(250):
        handle_leaky(leaky_requests, "sim-fast", "user-1", f"req-{number}")
    expect_equal(count_series(leaky_registry), 250, "count_series after 250 requests with distinct request ids")
    expect_equal(count_series(CollectorRegistry()), 0, "count_series of an empty registry")


@reports_stubs
def check_bounded_labels(make_bounded_metrics: Callable[[], tuple[CollectorRegistry, Counter]],
                         handle_bounded: Callable[..., None], hidden: bool = False) -> int:
    """Series stay bounded however many requests come, and nothing counted is lost. Returns the series count after
    2000 requests."""
    registry, requests = make_bounded_metrics()
    models, statuses = _models(), ("success", "error")
    sent: dict[tuple[str, str], int] = defaultdict(int)
    series_at = {}
    for number in range(1, 2001):
        model, status = models[number % len(models)], statuses[int(number % 7 == 0)]
        handle_bounded(requests, model, status, f"user-{number % 300}", f"req-{number:06d}")
        sent[(model, status)] += 1
        if number in (100, 2000):
            series_at[number] = _series(registry)
    expect(series_at[2000] <= len(models) * len(statuses),
           f"the fixed counter grew from {series_at[100]} series (100 requests) to {series_at[2000]} (2000 requests)",
           "labels model and status only: request and user ids make one series per request")
    label_names = {name for family in registry.collect() for sample in family.samples for name in sample.labels}
    expect(label_names <= {"model", "status"}, f"the fixed counter has labels {sorted(label_names)}",
           "only model and status: ids go to logs and exemplars")
    for (model, status), count in sorted(sent.items()):
        expect_equal(registry.get_sample_value("app_chat_requests_total", {"model": model, "status": status}), count,
                     f'app_chat_requests_total{{model="{model}",status="{status}"}}', "count every request once")
    if hidden:
        expect_equal(series_at[100], series_at[2000], "series after 100 and after 2000 requests")
        expect('request_id="req-002000"' in openmetrics(registry).decode(),
               "the last request id is not attached as an exemplar",
               'requests.labels(...).inc(exemplar={"request_id": request_id})')
    return series_at[2000]
