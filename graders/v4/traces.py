"""Lab V4, exercises 1-3: instrument the agent workflow, find the bottleneck step from traces, and follow a slow
request from its exemplar to its trace to its log lines.

Exercise 1 runs the student's `traced_workflow` in-process against the course's simulated provider, itself traced,
with both tracers writing to one OpenTelemetry `InMemorySpanExporter`: the checks read the finished spans (tree shape,
names, kinds, attributes, parent links, status) deterministically. The ground truth for tokens and cost is what the
provider answered, recorded by a wrapper around the client, never the student's own bookkeeping.
Exercise 2 works on a seeded set of exported workflow spans; exercise 3 on a batch sent through the live gateway.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from fastapi.testclient import TestClient
from opentelemetry import context as otel_context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from graders.labcheck import LabCheckFailed, expect, expect_equal, fail, reports_stubs
from stack import catalog, genai, promapi
from stack import tracing as stack_tracing

SEED = 2026
AGENT_SPAN = "invoke_agent workflow"
# The workflow the gateway runs (stack/gateway/workflow.py): step name and model (None: the request's model).
WORKFLOW = (("classify", "sim-fast"), ("answer", None), ("format", "sim-fast"))
STEPS = tuple(step for step, _ in WORKFLOW)
PROVIDER = genai.PROVIDER  # gen_ai.provider.name of the simulated provider
CHECK_ATTRIBUTION = {"user_id": "dana.scully@fbi.example", "department": "research", "application": "agent"}
HIDDEN_ATTRIBUTION = {"user_id": "u-74125", "department": "finance", "application": "doc-search"}


class ProviderCallError(RuntimeError):
    """A provider call that did not answer 200; raised by the student's code after recording it on the span."""

    def __init__(self, message: str, *, status_code: int, step: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.step = step


def workflow_prompt(step: str, question: str, previous: str) -> str:
    """The prompt of each step, as the gateway builds it."""
    if step == "classify":
        return f"Classify the intent of this question in one word: {question}"
    if step == "answer":
        return f"Intent: {previous}\nAnswer the question: {question}"
    return f"Format this answer as three short bullet points:\n{previous}"


# ---------------------------------------------------------------- exercise 1: tracers, providers, trees


def in_memory_tracer(exporter: InMemorySpanExporter, service: str = "lab-app") -> Tracer:
    """A tracer whose finished spans land in `exporter` at once (SimpleSpanProcessor: no batching, no delay)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("lab-v4")


class _ProviderClient(TestClient):
    """A TestClient that runs the provider outside the caller's OpenTelemetry context, as a separate process would:
    the provider learns about the caller's trace from the request's traceparent header, or not at all."""

    def request(self, *args: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        token = otel_context.attach(otel_context.Context())
        try:
            return super().request(*args, **kwargs)
        finally:
            otel_context.detach(token)


def simulated_provider(exporter: InMemorySpanExporter | None = None, seed: int = SEED,
                       failing_models: tuple[str, ...] = ()) -> TestClient:
    """The course's simulated provider in-process (no waiting), traced into `exporter` as service "llmsim": it joins
    your trace when your request carries a traceparent header. `failing_models` answer HTTP 500."""
    # deferred: importing stack.llmsim.app builds the provider's module-level app, which a notebook kernel that
    # never calls this must not pay for (not an import circle)
    from stack.llmsim.app import create_app
    from stack.llmsim.settings import Settings

    tracing = stack_tracing.Tracing("llmsim", None, None)
    if exporter is not None:
        provider = TracerProvider(resource=stack_tracing.resource("llmsim"))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracing = stack_tracing.Tracing("llmsim", provider, None)
    client = _ProviderClient(create_app(Settings(seed=seed, latency_scale=0), tracing=tracing))
    if failing_models:
        client.post("/faults", json={"error_rate": 1.0, "models": list(failing_models)}).raise_for_status()
    return client


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes.get("service.name", "?"))


def _hex(number: int, width: int) -> str:
    return format(number, f"0{width}x")


def span_tree(spans: list[ReadableSpan]) -> str:
    """The spans as an indented tree per trace: name, kind, service, duration, status."""
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    ids = {span.context.span_id for span in spans}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None and span.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(by_parent.get(parent, []), key=lambda s: s.start_time or 0):
            millis = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
            status = "" if span.status.status_code is StatusCode.UNSET else f"  [{span.status.status_code.name}]"
            prefix = f"trace {_hex(span.context.trace_id, 32)[:8]}…  " if depth == 0 else "  " * depth + "└─ "
            lines.append(f"{prefix}{span.name}  ({span.kind.name.lower()}, {service_of(span)}, {millis:.1f} ms)"
                         f"{status}")
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines) or "(no spans)"


class RecordingClient:
    """Passes calls to the provider and remembers each one: (request JSON, status code, reply JSON or None)."""

    def __init__(self, client: TestClient) -> None:
        self._client = client
        self.calls: list[tuple[dict, int, dict | None]] = []

    def post(self, url: str, *args: Any, **kwargs: Any) -> httpx.Response:
        response = self._client.post(url, *args, **kwargs)
        reply = response.json() if response.status_code == 200 else None
        self.calls.append((kwargs.get("json") or {}, response.status_code, reply))
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@dataclass
class WorkflowRun:
    spans: list[ReadableSpan]
    calls: list[tuple[dict, int, dict | None]]
    result: Any
    error: BaseException | None

    def mine(self) -> list[ReadableSpan]:
        return [s for s in self.spans if service_of(s) != PROVIDER]

    def provider_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans if service_of(s) == PROVIDER]


def run_workflow(traced_workflow: Callable, model: str = "sim-balanced", question: str = "Why is my bill so high?",
                 attribution: dict | None = None, failing_models: tuple[str, ...] = (), seed: int = SEED,
                 runs: int = 1) -> WorkflowRun:
    exporter = InMemorySpanExporter()
    tracer = in_memory_tracer(exporter)
    client = RecordingClient(simulated_provider(exporter, seed, failing_models))
    result, error = None, None
    for _ in range(runs):
        try:
            result = traced_workflow(tracer, client, question, model, dict(attribution or CHECK_ATTRIBUTION))
        except NotImplementedError:
            raise
        except Exception as caught:  # noqa: BLE001 - the checks judge what was raised
            error = caught
    return WorkflowRun(list(exporter.get_finished_spans()), client.calls, result, error)


def _describe(spans: list[ReadableSpan]) -> str:
    names = [s.name for s in sorted(spans, key=lambda s: s.start_time or 0)]
    return ", ".join(names[:12]) + (" ..." if len(names) > 12 else "") if names else "no spans at all"


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return sorted((s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id),
                  key=lambda s: s.start_time or 0)


def _parent_name(spans: list[ReadableSpan], span: ReadableSpan) -> str:
    if span.parent is None:
        return "no parent (a root span)"
    parent = next((s for s in spans if s.context.span_id == span.parent.span_id), None)
    return repr(parent.name) if parent is not None else "a span that is not in the export"


def _tree(run: WorkflowRun, model: str) -> tuple[ReadableSpan, list[ReadableSpan], list[ReadableSpan]]:
    """Checks the shape of one workflow trace; returns the agent span, the step spans and the chat spans."""
    mine = run.mine()
    expect(bool(mine), "your code made no spans",
           f"start them with tracer.start_as_current_span(...) using the `tracer` argument ({AGENT_SPAN!r}, "
           "'step <name>', 'chat <model>')")
    unfinished = [s for s in mine if s.end_time is None]
    expect(not unfinished, f"spans never ended: {[s.name for s in unfinished]}",
           "use `with tracer.start_as_current_span(...)`: the span ends when the block does")
    roots = [s for s in mine if s.parent is None]
    expect_equal([s.name for s in roots], [AGENT_SPAN], "the root span(s) of your trace",
                 f"one trace per request: every other span is inside {AGENT_SPAN!r} (got {_describe(mine)})")
    root = roots[0]
    expect_equal({_hex(s.context.trace_id, 32) for s in mine}, {_hex(root.context.trace_id, 32)},
                 "trace ids of your spans", "all spans of one request belong to one trace")
    steps = _children(mine, root)
    misplaced = [s.name for s in steps if s.name.startswith("chat ")]
    expect(not misplaced, f"{misplaced} are children of {AGENT_SPAN!r}, not of their step spans",
           "make the step span the current span while you call the provider: `with tracer.start_as_current_span("
           "...)`; tracer.start_span(...) makes a span without making it the parent of what follows")
    expect_equal([s.name for s in steps], [f"step {name}" for name in STEPS],
                 f"children of {AGENT_SPAN!r}, in time order",
                 "one 'step <name>' span per step, started inside the workflow span, in the order they run")
    chats = []
    for step, (name, step_model) in zip(steps, WORKFLOW):
        expected = f"chat {step_model or model}"
        children = _children(mine, step)
        if [c.name for c in children] != [expected]:
            stray = next((s for s in mine if s.name == expected and s not in chats), None)
            where = f" (yours is a child of {_parent_name(mine, stray)})" if stray is not None else ""
            fail(f"children of {step.name!r}", [expected], [c.name for c in children],
                 f"the provider call of a step is a span inside that step's span{where}: make the step span the "
                 "current span (`with tracer.start_as_current_span(...)`, not tracer.start_span) while you call")
        chats.append(children[0])
    for span in (root, *steps):
        expect_equal(span.kind, SpanKind.INTERNAL, f"kind of {span.name!r}", "workflow and step spans are INTERNAL")
    for chat in chats:
        expect_equal(chat.kind, SpanKind.CLIENT, f"kind of {chat.name!r}",
                     "a call to another service is a CLIENT span: start_as_current_span(name, kind=SpanKind.CLIENT)")
    for before, after in zip(steps, steps[1:]):
        expect((before.end_time or 0) <= (after.start_time or 0), f"{after.name!r} starts before {before.name!r} ends",
               "the steps run one after the other")
    return root, steps, chats


@reports_stubs
def check_span_tree(traced_workflow: Callable, hidden: bool = False) -> None:
    run = run_workflow(traced_workflow)
    if run.error is not None:
        fail("traced_workflow on a healthy provider", "an answer", f"{type(run.error).__name__}: {run.error}")
    _tree(run, "sim-balanced")
    if hidden:
        run = run_workflow(traced_workflow, model="sim-reasoning", attribution=HIDDEN_ATTRIBUTION)
        _tree(run, "sim-reasoning")
        two = run_workflow(traced_workflow, runs=2)
        traces = {s.context.trace_id for s in two.mine()}
        expect_equal(len(traces), 2, "traces after two workflow runs",
                     "each run starts a new root span; nothing may stay open (or current) after a run returns")


def _attributes_problem(span: ReadableSpan, expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        seen = span.attributes.get(key)
        if isinstance(value, float):
            if not isinstance(seen, (int, float)) or not math.isclose(seen, value, rel_tol=1e-9, abs_tol=1e-15):
                ratio = f" ({seen / value:.4g}x the catalog price)" if isinstance(seen, (int, float)) and value else ""
                fail(f"attribute {key} of {span.name!r}{ratio}", value, seen,
                     "cost = catalog.cost_usd(model, input_tokens, output_tokens): prices are per MILLION tokens")
        elif type(seen) is not type(value) or seen != value:
            hint = ("token counts are int attributes, from the reply's usage" if key.startswith("gen_ai.usage")
                    else "see the attribute table above")
            fail(f"attribute {key} of {span.name!r}", value, seen, hint)


def check_current_conventions(spans: list[ReadableSpan]) -> None:
    """No span carries the GenAI attribute that semconv 1.37 renamed."""
    for span in spans:
        if genai.DEPRECATED_SYSTEM in (span.attributes or {}):
            fail(f"attributes of {span.name!r}", f"{genai.PROVIDER_NAME}={PROVIDER!r} and no {genai.DEPRECATED_SYSTEM}",
                 f"{genai.DEPRECATED_SYSTEM}={span.attributes[genai.DEPRECATED_SYSTEM]!r}",
                 f"{genai.DEPRECATED_SYSTEM} was renamed {genai.PROVIDER_NAME} in semantic conventions "
                 f"{genai.PROVIDER_NAME_SINCE}: use genai.PROVIDER_NAME (the package's constant)")


def _no_user(spans: list[ReadableSpan], user_id: str) -> None:
    for span in spans:
        for key, value in (span.attributes or {}).items():
            text = json.dumps(value, default=str)
            expect(user_id not in text and "user_id" not in key and not key.startswith("enduser"),
                   f"the user id is on span {span.name!r} (attribute {key})",
                   "spans are kept and shown to many people: department and application only, never the user")


def _by_name(spans: list[ReadableSpan], name: str, where: str = "") -> ReadableSpan:
    found = sorted((s for s in spans if s.name == name), key=lambda s: s.start_time or 0)
    expect(bool(found), f"no span named {name!r}{where} (your spans: {_describe(spans)})",
           f"name the spans as the table says: {AGENT_SPAN!r}, 'step <name>', 'chat <model>'")
    return found[0]


def _check_attributes(run: WorkflowRun, model: str, attribution: dict) -> None:
    """Finds the spans by name (the tree shape is the other check's business) and compares their attributes."""
    mine = run.mine()
    root = _by_name(mine, AGENT_SPAN)
    steps = [_by_name(mine, f"step {name}") for name in STEPS]
    chats = sorted((s for s in mine if s.name.startswith("chat ")), key=lambda s: s.start_time or 0)
    expect_equal([c.name for c in chats], [f"chat {m or model}" for _, m in WORKFLOW], "the chat spans, in time order",
                 "one 'chat <model>' span per provider call")
    booked = {"llm.department": attribution["department"], "llm.application": attribution["application"]}
    check_current_conventions(mine)
    ok_calls = [(request, reply) for request, status, reply in run.calls if status == 200 and reply]
    expect_equal(len(ok_calls), len(STEPS), "provider calls made by one workflow run", "one call per step")
    total = 0.0
    for step, chat, (request, reply), (name, step_model) in zip(steps, chats, ok_calls, WORKFLOW):
        _attributes_problem(step, {"llm.step": name})
        called = step_model or model
        usage = reply["usage"]
        cost = catalog.cost_usd(called, usage["prompt_tokens"], usage["completion_tokens"])
        total += cost
        _attributes_problem(chat, {
            genai.OPERATION_NAME: genai.OPERATION_CHAT, genai.PROVIDER_NAME: PROVIDER, genai.REQUEST_MODEL: called,
            genai.USAGE_INPUT_TOKENS: int(usage["prompt_tokens"]),
            genai.USAGE_OUTPUT_TOKENS: int(usage["completion_tokens"]), "llm.cost_usd": cost, **booked})
    _attributes_problem(root, {genai.OPERATION_NAME: genai.OPERATION_INVOKE_AGENT, genai.AGENT_NAME: "workflow",
                               "llm.cost_usd": total, **booked})
    _no_user(run.mine(), attribution["user_id"])
    result_cost = run.result.get("cost_usd") if isinstance(run.result, dict) else None
    expect(isinstance(result_cost, (int, float)) and math.isclose(result_cost, total, rel_tol=1e-9),
           f"traced_workflow returned cost_usd={result_cost!r}; the three calls cost {total!r}",
           'return {"answer": ..., "cost_usd": the sum of the calls\' costs}')


@reports_stubs
def check_span_attributes(traced_workflow: Callable, hidden: bool = False) -> None:
    run = run_workflow(traced_workflow)
    if run.error is not None:
        fail("traced_workflow on a healthy provider", "an answer", f"{type(run.error).__name__}: {run.error}")
    _check_attributes(run, "sim-balanced", CHECK_ATTRIBUTION)
    if hidden:
        run = run_workflow(traced_workflow, model="sim-reasoning", attribution=HIDDEN_ATTRIBUTION, seed=SEED + 1)
        _check_attributes(run, "sim-reasoning", HIDDEN_ATTRIBUTION)


def _ancestors(spans: list[ReadableSpan], span: ReadableSpan) -> list[ReadableSpan]:
    by_id = {s.context.span_id: s for s in spans}
    chain = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


def _check_propagation(run: WorkflowRun) -> None:
    mine = run.mine()
    theirs = [s for s in run.provider_spans() if s.kind is SpanKind.SERVER]
    expect_equal(len(theirs), len(run.calls), "the provider's server spans (one per call)")
    trace_ids = {s.context.trace_id for s in mine}
    outside = [s for s in theirs if s.context.trace_id not in trace_ids]
    expect(not outside, f"{len(outside)} of the provider's {len(theirs)} spans are not in your trace: the trace "
           "context did not travel with the request",
           "headers = {}; propagate.inject(headers) inside the chat span, then client.post(..., headers=headers)")
    for span in theirs:
        names = [a.name for a in _ancestors(run.spans, span)]
        expect(bool(names) and names[0].startswith("chat "),
               f"the provider's span {span.name!r} hangs under {names[0] if names else 'nothing'!r}, not under a "
               "chat span", "inject the headers while the chat span is the current span")


def _check_error(run: WorkflowRun, failing_step: str) -> None:
    expect(isinstance(run.error, ProviderCallError),
           f"traced_workflow with a failing provider raised {type(run.error).__name__ if run.error else 'nothing'}"
           f"{': ' + str(run.error) if run.error else ' (it returned ' + repr(run.result)[:60] + ')'}",
           "raise ProviderCallError(message, status_code=..., step=...) for a non-200 reply, after marking the span")
    mine = run.mine()
    chat = next((s for s in mine if s.name.startswith("chat ") and s.attributes.get("llm.step") == failing_step),
                None)
    if chat is None:
        chat = next((s for s in mine if s.name.startswith("chat ")
                     and any(a.name == f"step {failing_step}" for a in _ancestors(mine, s))), None)
    expect(chat is not None, f"no chat span for the failing {failing_step!r} call")
    expect_equal(chat.status.status_code, StatusCode.ERROR, f"status of the failed call's span {chat.name!r}",
                 "span.set_status(Status(StatusCode.ERROR, ...)), or let the exception leave the `with` block")
    expect(any(event.name == "exception" for event in chat.events),
           f"the failed call's span {chat.name!r} has no exception event",
           "span.record_exception(error), or let the exception leave the `with` block (it records it)")
    expect_equal(chat.attributes.get("error.type"), "500", f"attribute error.type of {chat.name!r}",
                 "error.type is the HTTP status code as text, e.g. '500'")
    for name in (f"step {failing_step}", AGENT_SPAN):
        span = next((s for s in mine if s.name == name), None)
        expect(span is not None and span.status.status_code is StatusCode.ERROR,
               f"{name!r} does not have status ERROR although the call inside it failed",
               "let ProviderCallError propagate through the `with` blocks: they mark each span as failed")
    later = [name for name in STEPS[STEPS.index(failing_step) + 1:] if any(s.name == f"step {name}" for s in mine)]
    expect(not later, f"steps after the failed one still ran: {later}", "a failed step stops the workflow")


@reports_stubs
def check_propagation_and_errors(traced_workflow: Callable, hidden: bool = False) -> None:
    run = run_workflow(traced_workflow)
    if run.error is not None:
        fail("traced_workflow on a healthy provider", "an answer", f"{type(run.error).__name__}: {run.error}")
    _check_propagation(run)
    failed = run_workflow(traced_workflow, failing_models=("sim-balanced",))
    _check_error(failed, "answer")
    if hidden:
        failed = run_workflow(traced_workflow, failing_models=("sim-fast",), attribution=HIDDEN_ATTRIBUTION)
        _check_error(failed, "classify")
        _check_propagation(failed)


# ---------------------------------------------------------------- exercise 2: the bottleneck step


SPAN_COLUMNS = ("trace_id", "span_id", "parent_id", "service", "name", "kind", "step", "model", "start_ns", "end_ns",
                "status")


def workflow_spans(seed: int = SEED, traces: int = 400) -> pd.DataFrame:
    """Seeded spans of `traces` agent-workflow requests, as a trace backend exports them: one row per span.

    Most requests are quick; the answer step is the slowest on average. About 7 % of requests wait seconds in the
    format step (its provider call queues behind a rate limit before llmsim even starts), and those make the p95."""
    rng = random.Random(seed)
    rows: list[tuple] = []
    clock = 1_790_000_000 * 10**9

    def new_id(bits: int) -> str:
        return format(rng.getrandbits(bits), f"0{bits // 4}x")

    def add(trace: str, parent: str | None, service: str, name: str, kind: str, start: int, end: int,
            step: str | None = None, model: str | None = None) -> str:
        span_id = new_id(64)
        rows.append((trace, span_id, parent, service, name, kind, step, model, start, end, "UNSET"))
        return span_id

    for _ in range(traces):
        clock += int(rng.expovariate(1 / 2.0) * 1e9)
        trace = new_id(128)
        answer_model = "sim-reasoning" if rng.random() < 0.3 else "sim-balanced"
        queued = rng.random() < 0.07
        durations = {
            "classify": rng.lognormvariate(math.log(0.22), 0.25),
            "answer": rng.lognormvariate(math.log(2.4 if answer_model == "sim-reasoning" else 1.1), 0.3),
            "format": rng.lognormvariate(math.log(0.18), 0.25),
        }
        waits = {"classify": 0.0, "answer": 0.0, "format": rng.uniform(5.0, 9.0) if queued else 0.0}
        root_start = clock
        cursor = root_start + int(rng.uniform(1, 3) * 1e6)
        root_id = new_id(64)
        agent_id = new_id(64)
        step_rows = []
        for step, model in WORKFLOW:
            model = model or answer_model
            step_start = cursor
            chat_start = step_start + int(rng.uniform(0.2, 0.6) * 1e6)
            server_start = chat_start + int((waits[step] + rng.uniform(0.5, 2.0) / 1e3) * 1e9)
            generate_start = server_start + int(rng.uniform(0.1, 0.4) * 1e6)
            generate_end = generate_start + int(durations[step] * 1e9)
            server_end = generate_end + int(rng.uniform(0.1, 0.3) * 1e6)
            chat_end = server_end + int(rng.uniform(0.5, 2.0) * 1e6)
            step_end = chat_end + int(rng.uniform(0.2, 0.8) * 1e6)
            step_rows.append((step, model, step_start, chat_start, server_start, generate_start, generate_end,
                              server_end, chat_end, step_end))
            cursor = step_end + int(rng.uniform(0.1, 0.5) * 1e6)
        agent_end = cursor
        root_end = agent_end + int(rng.uniform(1, 3) * 1e6)
        rows.append((trace, root_id, None, "gateway", "POST /v1/agent/workflow", "SERVER", None, answer_model,
                     root_start, root_end, "UNSET"))
        rows.append((trace, agent_id, root_id, "gateway", AGENT_SPAN, "INTERNAL", None, answer_model,
                     root_start + int(0.5e6), agent_end, "UNSET"))
        for step, model, s0, c0, v0, g0, g1, v1, c1, s1 in step_rows:
            step_id = add(trace, agent_id, "gateway", f"step {step}", "INTERNAL", s0, s1, step=step)
            chat_id = add(trace, step_id, "gateway", f"chat {model}", "CLIENT", c0, c1, step=step, model=model)
            server_id = add(trace, chat_id, PROVIDER, "POST /v1/chat/completions", "SERVER", v0, v1)
            add(trace, server_id, PROVIDER, f"generate {model}", "INTERNAL", g0, g1, model=model)
        clock = root_end
    frame = pd.DataFrame(rows, columns=list(SPAN_COLUMNS))
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # exports come in no useful order


def reference_step_latency(spans: pd.DataFrame) -> pd.DataFrame:
    steps = spans[spans["name"].str.startswith("step ")].copy()
    steps["seconds"] = (steps["end_ns"] - steps["start_ns"]) / 1e9
    grouped = steps.groupby("step")["seconds"]
    table = pd.DataFrame({"count": grouped.count(), "mean_s": grouped.mean(), "p50_s": grouped.quantile(0.5),
                          "p95_s": grouped.quantile(0.95), "total_s": grouped.sum()})
    return table.reindex(list(STEPS))


def reference_tail_bottleneck(spans: pd.DataFrame, quantile: float = 0.95) -> tuple[str, float]:
    roots = spans[spans["parent_id"].isna()].copy()
    roots["seconds"] = (roots["end_ns"] - roots["start_ns"]) / 1e9
    slow = roots[roots["seconds"] >= roots["seconds"].quantile(quantile)]
    steps = spans[spans["name"].str.startswith("step ") & spans["trace_id"].isin(slow["trace_id"])].copy()
    steps["seconds"] = (steps["end_ns"] - steps["start_ns"]) / 1e9
    per_step = steps.groupby("step")["seconds"].sum()
    return str(per_step.idxmax()), float(per_step.max() / slow["seconds"].sum())


@reports_stubs
def check_step_latency(step_latency: Callable, hidden: bool = False) -> None:
    for seed in (SEED, SEED + 7) if hidden else (SEED,):
        spans = workflow_spans(seed)
        expected = reference_step_latency(spans)
        table = step_latency(spans.copy())
        expect(isinstance(table, pd.DataFrame), f"step_latency returned {type(table).__name__}, not a DataFrame")
        expect_equal([str(i) for i in table.index], list(STEPS), "the rows (index) of step_latency, in order",
                     "one row per step, indexed by step name: classify, answer, format (use .reindex)")
        for column in expected.columns:
            expect(column in table.columns, f"step_latency has no column {column!r}",
                   f"columns: {list(expected.columns)}")
        counts = [int(c) for c in table["count"]]
        if counts != [int(c) for c in expected["count"]]:
            double = " (twice the requests: the chat spans carry the step too)" if counts[0] == 2 * expected[
                "count"].iloc[0] else ""
            fail(f"span counts per step{double}", [int(c) for c in expected["count"]], counts,
                 "keep only the step spans: rows whose name starts with 'step '")
        for column in expected.columns[1:]:
            for step in STEPS:
                seen, want = float(table.loc[step, column]), float(expected.loc[step, column])
                if not math.isclose(seen, want, rel_tol=1e-6):
                    unit = " (durations in milliseconds? start_ns/end_ns are NANOseconds: divide by 1e9)" if \
                        math.isclose(seen, want * 1000, rel_tol=1e-3) else ""
                    fail(f"{column} of step {step!r}{unit}", round(want, 6), round(seen, 6),
                         "duration = (end_ns - start_ns) / 1e9 seconds; quantiles with Series.quantile")


@reports_stubs
def check_tail_bottleneck(tail_bottleneck: Callable, hidden: bool = False) -> None:
    for seed in (SEED, SEED + 7) if hidden else (SEED,):
        spans = workflow_spans(seed)
        step, share = reference_tail_bottleneck(spans)
        answer = tail_bottleneck(spans.copy())
        expect(isinstance(answer, tuple) and len(answer) == 2,
               f"tail_bottleneck returned {answer!r}", "return (step name, share of the slow requests' time)")
        seen_step, seen_share = answer
        if seen_step != step:
            means = reference_step_latency(spans)["mean_s"]
            hint = (f"{seen_step!r} is the slowest step ON AVERAGE; the question is which step makes the slowest 5 % "
                    "of requests slow" if seen_step == means.idxmax() else "sum each step's time over the slow traces")
            fail("the step that dominates the slowest 5 % of requests", step, seen_step, hint)
        expect(isinstance(seen_share, (int, float)) and math.isclose(seen_share, share, rel_tol=1e-6),
               f"the share of the slow requests' time spent in {step!r}: expected {share:.6f}, got {seen_share!r}",
               "that step's summed duration over the slow traces / the slow traces' summed root durations")


# ---------------------------------------------------------------- exercise 3: exemplar -> trace -> log lines


SLOW_MODEL = "sim-balanced"
QUICK_REQUESTS = 10
ADDED_LATENCY_SECONDS = 1.5
EXEMPLAR_METRIC = "llm_request_duration_seconds_bucket"
TRACE_FILE = "student_v4_trace.json"


@dataclass(frozen=True)
class Batch:
    start: float
    slow_start: float
    end: float
    slow_request_id: str
    slow_trace_id: str
    quick_trace_ids: tuple[str, ...]


def _log_events(log_path: Path) -> list[dict]:
    events = []
    for line in Path(log_path).read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _trace_of_request(log_path: Path, request_id: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        ids = {e.get("trace_id") for e in _log_events(log_path) if e.get("request_id") == request_id}
        ids.discard(None)
        if ids:
            return ids.pop()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gateway log {log_path} has no line with trace_id for request {request_id}: is "
                               "the stack running from this checkout (`make up`), with tracing on?")
        time.sleep(0.1)


def _exemplars(prometheus_url: str, start: float, end: float) -> list[dict]:
    with promapi.Prometheus(prometheus_url, timeout=10) as prometheus:
        found = prometheus.exemplars(EXEMPLAR_METRIC, start, end)
    return [{**e["labels"], "value": float(e["value"]), "timestamp": float(e["timestamp"]),
             "model": series["seriesLabels"].get("model")}
            for series in found or [] for e in series.get("exemplars") or []]


def run_exemplar_batch(gateway_url: str, llmsim_url: str, prometheus_url: str, log_path: Path,
                       folder: Path = Path(".")) -> Batch:
    """QUICK_REQUESTS quick workflows (sim-fast answers), then one whose answer step is slowed down by a latency
    fault on SLOW_MODEL; waits until Prometheus holds the slow call's exemplar. Writes TRACE_FILE for `make grade`."""
    body = {"question": "Which of our services is slow today?", "model": "sim-fast", "synthetic": True,
            "attribution": {"user_id": "v4-lab", "department": "engineering", "application": "agent"}}
    start = time.time()
    quick = []
    with httpx.Client(timeout=30) as http:
        for _ in range(QUICK_REQUESTS):
            reply = http.post(f"{gateway_url}/v1/agent/workflow", json=body)
            reply.raise_for_status()
            quick.append(reply.json()["request_id"])
        http.post(f"{llmsim_url}/faults", json={"added_latency_seconds": ADDED_LATENCY_SECONDS,
                                                "models": [SLOW_MODEL]}).raise_for_status()
        slow_start = time.time()
        try:
            reply = http.post(f"{gateway_url}/v1/agent/workflow", json={**body, "model": SLOW_MODEL})
        finally:
            http.delete(f"{llmsim_url}/faults").raise_for_status()
        reply.raise_for_status()
        slow_request = reply.json()["request_id"]
    end = time.time()
    slow_trace = _trace_of_request(log_path, slow_request)
    deadline = time.monotonic() + 15
    while not any(e.get("trace_id") == slow_trace and e["value"] >= ADDED_LATENCY_SECONDS
                  for e in _exemplars(prometheus_url, start, end + 1)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Prometheus at {prometheus_url} holds no exemplar for the slow request's trace "
                               f"{slow_trace} after 15 s: is it running with --enable-feature=exemplar-storage?")
        time.sleep(0.25)
    batch = Batch(start, slow_start, end + 1, slow_request, slow_trace,
                  tuple(_trace_of_request(log_path, r) for r in quick))
    (Path(folder) / TRACE_FILE).write_text(json.dumps({"request_id": slow_request, "trace_id": slow_trace}))
    return batch


@reports_stubs
def check_slowest_exemplar(slowest_exemplar: Callable, batch: Batch | None, prometheus_url: str,
                           hidden: bool = False) -> None:
    expect(batch is not None, "the exercise 3 batch did not run (is the stack up? run `make up`, then the batch cell)")
    found = slowest_exemplar(prometheus_url, batch.start, batch.end)
    expect(isinstance(found, dict), f"slowest_exemplar returned {type(found).__name__}, not a dict",
           'return {"trace_id": ..., "span_id": ..., "value": ..., "model": ...}')
    if found.get("trace_id") != batch.slow_trace_id:
        quick = found.get("trace_id") in batch.quick_trace_ids
        fail("trace_id of the slowest exemplar in the batch", batch.slow_trace_id, found.get("trace_id"),
             "that is one of the quick requests: pick the exemplar with the LARGEST value, not the first or last"
             if quick else "query /api/v1/query_exemplars for llm_request_duration_seconds_bucket between start "
             "and end; each exemplar has labels (trace_id, span_id) and a value")
    value = found.get("value")
    expect(isinstance(value, float) and value >= ADDED_LATENCY_SECONDS,
           f"value of the slowest exemplar: expected a float of at least {ADDED_LATENCY_SECONDS} s, got {value!r}",
           "the exemplar's value is the observed latency in seconds; convert it with float()")
    expect_equal(found.get("model"), SLOW_MODEL, "model of the slowest exemplar",
                 "the model label is on the series the exemplar belongs to (seriesLabels)")
    if hidden:
        quick_only = slowest_exemplar(prometheus_url, batch.start, batch.slow_start)
        expect(isinstance(quick_only, dict) and quick_only.get("trace_id") in batch.quick_trace_ids,
               "slowest_exemplar ignores its start/end window (asked about the quick requests only, it found "
               f"{(quick_only or {}).get('trace_id')!r})", "pass start and end to query_exemplars")


def _story_log(folder: Path) -> tuple[Path, str, list[dict]]:
    """A gateway log with the traps real logs have; returns (path, trace id, its events in time order)."""
    rng = random.Random(SEED)
    traces = [format(rng.getrandbits(128), "032x") for _ in range(3)]
    target = traces[1]
    events = []
    base = 1_790_000_000.0
    for number, trace in enumerate(traces):
        for index, step in enumerate(STEPS):
            moment = base + number * 0.4 + index * 1.0
            events.append({"request_id": f"req-{number}", "step": step, "model": "sim-fast",
                           "duration_ms": round(rng.uniform(50, 900), 1), "status": "success", "event": "llm_call",
                           "level": "info", "trace_id": trace, "span_id": format(rng.getrandbits(64), "016x"),
                           "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment))
                           + f".{int(moment % 1 * 1e6):06d}Z"})
    expected = [e for e in events if e["trace_id"] == target]
    noise = [json.dumps({"event": "request_rejected", "level": "warning", "message":
                         f"retry of trace {target} refused", "trace_id": traces[2]}),
             "INFO:     Uvicorn running on http://127.0.0.1:18700", "Traceback (most recent call last):",
             '  File "app.py", line 1, in <module>', json.dumps(["not", "an", "event"]), "{broken json"]
    lines = [json.dumps(e) for e in events] + noise
    rng.shuffle(lines)
    path = Path(folder) / "gateway.log"
    path.write_text("\n".join(lines) + "\n")
    return path, target, expected


@reports_stubs
def _story(request_story: Callable, log_path: Path, trace_id: str) -> object:
    try:
        return request_story(log_path, trace_id)
    except ValueError as error:  # json.JSONDecodeError included
        raise LabCheckFailed(f"request_story crashed on a log line that is not JSON ({error}). Hint: real logs hold "
                             "tracebacks and startup lines: skip what json.loads cannot read") from None


def check_request_story(request_story: Callable, batch: Batch | None, log_path: Path, hidden: bool = False) -> None:
    expect(batch is not None, "the exercise 3 batch did not run (is the stack up? run `make up`, then the batch cell)")
    story = _story(request_story, log_path, batch.slow_trace_id)
    expect(isinstance(story, list) and all(isinstance(e, dict) for e in story),
           f"request_story returned {type(story).__name__}, not a list of dicts", "one dict per JSON log line")
    steps = [e.get("step") for e in story]
    shuffled = sorted(map(str, steps)) == sorted(STEPS) and steps != list(STEPS)
    expect_equal(steps, list(STEPS), "steps of the slow request's log lines, in time order" +
                 (" (the right lines, out of order)" if shuffled else ""),
                 "keep the lines whose trace_id field equals the trace id, sorted by their timestamp")
    expect(all(e.get("trace_id") == batch.slow_trace_id for e in story), "a line of another trace is in the story")
    slowest = max(story, key=lambda e: e.get("duration_ms") or 0)
    expect_equal(slowest.get("step"), "answer", "the slowest step of the slow request, from its log lines")
    if hidden:
        with tempfile.TemporaryDirectory() as folder:
            path, trace, expected = _story_log(Path(folder))
            story = _story(request_story, path, trace)
            expect(isinstance(story, list), f"request_story returned {type(story).__name__}")
            if [e.get("span_id") for e in story] != [e["span_id"] for e in expected]:
                others = [e for e in story if e.get("trace_id") != trace]
                fail("the story of one trace in a log with several interleaved traces", len(expected),
                     f"{len(story)} events" + (f", {len(others)} of another trace" if others else ", out of order"),
                     "compare the trace_id FIELD (a message may mention a trace id), and sort by timestamp")
