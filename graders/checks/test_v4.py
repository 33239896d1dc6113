"""Stack check for lab V4: the trace of the exercise 3 slow request reached the trace backend the running stack sends
its spans to (the built-in trace store of `make up`, or Phoenix with `make up TRACES=1`) with the spans of both
services, the provider's joined under the gateway's provider-call spans.

The submission folder is nbgrader's autograded copy, where the notebook has just been re-run: its exercise 3 batch
cell wrote the slow request's trace id (from the gateway's log, not from the student's code) to student_v4_trace.json.
That cell is locked and runs for everyone, so an exercise 3 left untouched scores 0 here too ("not attempted yet").
Without a running trace backend this check scores 0 and says how to start one; nothing else in the lab needs it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import nbformat
import pytest

from graders import trace_backends
from graders.trace_backends import Backend, Span
from graders.v4.traces import TRACE_FILE
from stack.paths import run_dir

WAIT_SECONDS = 20.0
SPANS_OF_THE_SLOW_TRACE = 14  # the agent workflow: gateway request, steps, provider calls and their server spans
EXERCISE = "ex3"
STUB = "raise NotImplementedError"


def _untouched_answers(submission: Path) -> list[str]:
    """The exercise 3 answer cells of the graded notebook whose every function still raises NotImplementedError
    (none when the folder holds no notebook)."""
    untouched = []
    for path in submission.glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            grading = cell.get("metadata", {}).get("nbgrader", {})
            if grading.get("solution") and str(grading.get("grade_id", "")).startswith(EXERCISE):
                if cell.source.count(STUB) >= max(1, cell.source.count("def ")):
                    untouched.append(grading["grade_id"])
    return untouched


@pytest.fixture(scope="module")
def slow_trace(notebook_artifact: Callable[[str, str], object], submission: Path) -> dict:
    untouched = _untouched_answers(submission)
    if untouched:  # the batch cell is locked and runs for everyone: the points follow exercise 3's own work
        pytest.fail(f"not attempted yet: implement exercise 3 ({', '.join(untouched)}) first; this check then follows "
                    "the slow request's trace into the trace backend", pytrace=False)
    trace = notebook_artifact(TRACE_FILE, "the exercise 3 batch cell did not run (it needs the stack: `make up`)")
    if not isinstance(trace, dict):
        pytest.fail(f"{TRACE_FILE} should hold one JSON object with request_id and trace_id: re-run the exercise 3 "
                    "batch cell", pytrace=False)
    return trace


def _complete(spans: list[Span]) -> bool:
    return {"gateway", "llmsim"} <= {s.service for s in spans} and len(spans) >= SPANS_OF_THE_SLOW_TRACE


def _fetch(backend: Backend, trace_id: str) -> list[Span]:
    try:
        return backend.fetch(backend.service, trace_id)
    except (httpx.HTTPError, KeyError, ValueError):
        return []


@pytest.mark.points(2)
def test_the_slow_request_trace_reached_the_backend_with_both_services(slow_trace: dict) -> None:
    """ex3 trace backend: the slow request's trace holds gateway and llmsim spans"""
    endpoint = trace_backends.sends_to(run_dir())
    backends = [b for b in trace_backends.to_ask(endpoint) if b.up()]
    if not backends:
        store = trace_backends.known()[0]
        pytest.fail(f"no trace backend answers: {store.label} is down and Phoenix is not running. Start the stack "
                    "with `make up` (it starts the trace store; `make status` shows it) and run `make grade LAB=v4` "
                    "again", pytrace=False)
    trace_id = slow_trace["trace_id"]
    asked = " and ".join(b.label for b in backends)
    deadline = time.monotonic() + WAIT_SECONDS
    found: dict[str, list[Span]] = {}
    while True:
        found = {b.label: _fetch(b, trace_id) for b in backends}
        if any(_complete(spans) for spans in found.values()) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    label, spans = max(found.items(), key=lambda item: (_complete(item[1]), len(item[1])))
    services = {s.service for s in spans}
    assert spans, (f"asked {asked}: no span of trace {trace_id} after {WAIT_SECONDS:.0f}s. Hint: "
                   f"{trace_backends.hint(endpoint)}")
    assert {"gateway", "llmsim"} <= services, (
        f"the trace in {label} has spans of {sorted(s for s in services if s)} only: both the gateway and the "
        "provider (llmsim) must send theirs")
    chats = {s.span_id for s in spans if s.name.startswith("chat ")}
    provider = [s for s in spans if s.service == "llmsim" and s.name == "POST /v1/chat/completions"]
    orphans = [s for s in provider if s.parent_id not in chats]
    assert provider and not orphans, (
        f"{len(orphans)} of the provider's {len(provider)} request spans in {label} do not hang under a gateway chat "
        "span: the trace context did not travel with the provider calls")
